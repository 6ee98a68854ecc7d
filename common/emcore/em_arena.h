/* em_arena.h — a bump allocator whose allocations are all freed together.
 *
 * A parsed document keeps its strings and lists in one arena, so freeing the document is
 * one call and a small document costs little memory: chunks start small and double up to
 * a cap. Total use is bounded by `max_bytes` fixed at init (curl's dynbuf habit).
 * Not thread-safe; an arena belongs to one owner.
 */
#ifndef EM_ARENA_H
#define EM_ARENA_H

#include <stddef.h>

struct em_arena_chunk;

struct em_arena {
    struct em_arena_chunk *head; /* newest chunk first */
    size_t next_chunk;           /* size of the next chunk to allocate */
    size_t used;                 /* bytes handed out, for the limit */
    size_t max_bytes;            /* hard cap on `used`; 0 means 1 GiB */
};

/* Prepares an empty arena that will hand out at most `max_bytes` (0: 1 GiB). */
void em_arena_init(struct em_arena *a, size_t max_bytes);

/* Returns `n` bytes aligned for any type, or NULL when out of memory or over the cap.
 * The memory is valid until em_arena_free(). */
void *em_arena_alloc(struct em_arena *a, size_t n);

/* em_arena_alloc() aligned to `align` (a power of two, at most alignof(max_align_t))
 * instead of the largest alignment: small records pack closer. */
void *em_arena_alloc_align(struct em_arena *a, size_t n, size_t align);

/* Copies `len` bytes of `s` and a terminating NUL into the arena; NULL on failure. */
char *em_arena_strndup(struct em_arena *a, const char *s, size_t len);

/* Releases every chunk; the arena may be reused after em_arena_init(). */
void em_arena_free(struct em_arena *a);

/* A slab: objects of one size carved from an arena, with a free list, for many small
 * records that live long and are freed one by one now and then (the model's 500,000
 * micrographs): no per-object header, and they do not fragment the heap between the
 * short-lived allocations around them. Not thread-safe. */
struct em_slab {
    struct em_arena arena;
    void *free_list;
    size_t size; /* of an object, rounded up to hold a pointer */
};

void em_slab_init(struct em_slab *s, size_t size);
/* A zeroed object, or NULL when out of memory. */
void *em_slab_alloc(struct em_slab *s);
/* Returns `p` (from em_slab_alloc on `s`, or NULL) to the slab. */
void em_slab_free(struct em_slab *s, void *p);
/* Releases every object at once. */
void em_slab_release(struct em_slab *s);

#endif
