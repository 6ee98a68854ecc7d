#include "em_utf8.h"

#include <stdint.h>
#include <string.h>

size_t em_utf8_seq(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        k = 1;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        k = 2;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        k = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (k >= n)
        return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[j] & 0x3f);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k + 1;
}

bool em_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    /* ASCII, the common case, eight bytes at a time. */
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    while (i < n) {
        size_t k = em_utf8_seq(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

size_t em_utf8_escape(const void *p, size_t n, char *out, bool json)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = em_utf8_seq(s + i, n - i);
        if (k > 0) {
            for (size_t j = 0; j < k; j++)
                out[o++] = (char)s[i + j];
            i += k;
            continue;
        }
        out[o++] = '\\';
        if (json)
            out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[s[i] >> 4];
        out[o++] = hex[s[i] & 15];
        i++;
    }
    out[o] = '\0';
    return o;
}
