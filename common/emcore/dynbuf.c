#include "dynbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"

void dynbuf_init(struct dynbuf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

int dynbuf_add(struct dynbuf *b, const void *data, size_t n)
{
    if (n > b->max - b->len)
        return -EM_ELIMIT;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -EM_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int dynbuf_printf(struct dynbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -EM_EINVAL;
    return dynbuf_add(b, tmp, (size_t)n);
}

void dynbuf_reset(struct dynbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void dynbuf_free(struct dynbuf *b)
{
    free(b->p);
    dynbuf_init(b, b->max);
}

void *em_grow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return v;
    if (n == SIZE_MAX || size == 0)
        return NULL;
    size_t c = *cap ? *cap * 2 : first;
    if (c < n + 1 || c > SIZE_MAX / size)
        c = n + 1;
    if (c > SIZE_MAX / size)
        return NULL;
    void *p = realloc(v, c * size);
    if (p)
        *cap = c;
    return p;
}
