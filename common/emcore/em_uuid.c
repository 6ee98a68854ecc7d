#include "em_uuid.h"

#include <stdlib.h>
#include <string.h>

static int hex_value(char c, int *upper)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f') {
        *upper |= 1;
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        *upper |= 2;
        return c - 'A' + 10;
    }
    return -1;
}

/* Parses a canonical UUID; the form says which case its letters had (digits only: lower). */
static int parse(const char *s, uint8_t bin[16])
{
    if (strlen(s) != 36)
        return EM_UUID_STRING;
    int cases = 0;
    for (int i = 0, b = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return EM_UUID_STRING;
            continue;
        }
        int hi = hex_value(s[i], &cases), lo = hex_value(s[++i], &cases);
        if (hi < 0 || lo < 0)
            return EM_UUID_STRING;
        bin[b++] = (uint8_t)(hi << 4 | lo);
    }
    return cases == 3 ? EM_UUID_STRING : cases == 2 ? EM_UUID_UPPER : EM_UUID_LOWER;
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
