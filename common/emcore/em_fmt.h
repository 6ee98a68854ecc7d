/* em_fmt.h — decimal numbers written without printf, for the records written by the
 * hundred thousand (the journal's, a model snapshot's, JSON): each writes at `p` and
 * returns the end, with no terminator. */
#ifndef EM_FMT_H
#define EM_FMT_H

#include <stdint.h>

/* At most 20 bytes. */
static inline char *em_fmt_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* At most 20 bytes; the most negative value too (its magnitude in unsigned). */
static inline char *em_fmt_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return em_fmt_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return em_fmt_u64(p, (uint64_t)v);
}

#endif
