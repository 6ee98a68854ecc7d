#include "em_uuid.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A hex digit's value plus one (the low 5 bits), and which case its letter had (64: lower,
 * 128: upper); 0: not a hex digit. A table, not branches: a restart parses half a million uuids,
 * whose digits and letters come in no order a branch predictor could learn. */
#define L(v) ((v) + 1 + 64)
#define U(v) ((v) + 1 + 128)
static const uint8_t hex_digit[256] = {
    ['0'] = 1,     ['1'] = 2,     ['2'] = 3,     ['3'] = 4,     ['4'] = 5,     ['5'] = 6,
    ['6'] = 7,     ['7'] = 8,     ['8'] = 9,     ['9'] = 10,    ['a'] = L(10), ['b'] = L(11),
    ['c'] = L(12), ['d'] = L(13), ['e'] = L(14), ['f'] = L(15), ['A'] = U(10), ['B'] = U(11),
    ['C'] = U(12), ['D'] = U(13), ['E'] = U(14), ['F'] = U(15),
};
#undef L
#undef U

/* Parses a canonical UUID; the form says which case its letters had (digits only: lower). */
static int parse(const char *s, uint8_t bin[16])
{
    if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return EM_UUID_STRING;
    unsigned ok = 1, cases = 0;
    for (int i = 0, b = 0; i < 36; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            i++;
        unsigned hi = hex_digit[(unsigned char)s[i]], lo = hex_digit[(unsigned char)s[i + 1]];
        ok &= (hi != 0) & (lo != 0);
        cases |= hi | lo;
        bin[b++] = (uint8_t)((((hi & 31) - 1) & 15) << 4 | (((lo & 31) - 1) & 15));
    }
    if (!ok)
        return EM_UUID_STRING;
    cases &= 192;
    return cases == 192 ? EM_UUID_STRING : cases == 128 ? EM_UUID_UPPER : EM_UUID_LOWER;
}

static char *copy_of(const struct em_uuid *k)
{
    char *s;
    memcpy(&s, k->bin, sizeof(s));
    return s;
}

void em_uuid_clear(struct em_uuid *k)
{
    if (k->form == EM_UUID_STRING)
        free(copy_of(k));
    memset(k, 0, sizeof(*k));
}

int em_uuid_set(struct em_uuid *k, const char *s)
{
    em_uuid_clear(k);
    if (!s)
        return 0;
    uint8_t bin[16];
    int form = parse(s, bin);
    if (form == EM_UUID_STRING) {
        char *copy = strdup(s);
        if (!copy)
            return -1;
        memcpy(k->bin, &copy, sizeof(copy));
    } else {
        memcpy(k->bin, bin, 16);
    }
    k->form = (uint8_t)form;
    return 0;
}

const char *em_uuid_get(const struct em_uuid *k, char *buf)
{
    if (k->form == EM_UUID_NONE)
        return NULL;
    if (k->form == EM_UUID_STRING)
        return copy_of(k);
    const char *digits = k->form == EM_UUID_UPPER ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = buf;
    for (int b = 0; b < 16; b++) {
        if (b == 4 || b == 6 || b == 8 || b == 10)
            *p++ = '-';
        *p++ = digits[k->bin[b] >> 4];
        *p++ = digits[k->bin[b] & 15];
    }
    *p = '\0';
    return buf;
}

bool em_uuid_eq(const struct em_uuid *k, const char *s)
{
    char buf[EM_UUID_TEXT];
    const char *mine = em_uuid_get(k, buf);
    return mine && s ? strcmp(mine, s) == 0 : !mine && !s;
}
