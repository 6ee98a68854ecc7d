/* dynbuf.h — a growable byte buffer with a maximum size fixed at init (curl's dynbuf
 * habit): appending past the maximum fails instead of growing without bound. The bytes
 * are always followed by a NUL, so text can be used as a C string.
 *
 * Not thread-safe; any thread may own one.
 */
#ifndef EM_DYNBUF_H
#define EM_DYNBUF_H

#include "em_compat.h"
#include <stddef.h>

struct dynbuf {
    char *p; /* NULL until the first append */
    size_t len, cap, max;
};

/* An empty buffer that may hold up to `max` bytes. */
void dynbuf_init(struct dynbuf *b, size_t max);

/* Appends `n` bytes. Returns 0, EM_ELIMIT (past the maximum) or EM_ENOMEM; on failure
 * the buffer is unchanged. */
int dynbuf_add(struct dynbuf *b, const void *data, size_t n);

/* Appends formatted text (at most 1 KiB per call). Returns 0 or a negative EM_E* code. */
int dynbuf_printf(struct dynbuf *b, const char *fmt, ...) EM_PRINTF(2, 3);

/* Empties the buffer, keeping its memory. */
void dynbuf_reset(struct dynbuf *b);

/* Frees the memory; the buffer can be used again as if just initialised. */
void dynbuf_free(struct dynbuf *b);

/* The one growth rule for arrays: makes room for element `n` of the array `v` of `*cap`
 * elements of `size` bytes, doubling (from `first` for an empty one). Returns the array,
 * perhaps moved, with *cap updated; or NULL when out of memory, leaving `v` and *cap as
 * they were. Use: `p = em_grow(a->v, a->n, &a->cap, sizeof(*a->v), 64); if (!p) fail;
 * a->v = p;`. */
void *em_grow(void *v, size_t n, size_t *cap, size_t size, size_t first);

#endif
