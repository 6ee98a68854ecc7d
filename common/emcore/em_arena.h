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
    size_t max_chunk;            /* chunks double up to this size (em_arena_set_max_chunk) */
};

/* Prepares an empty arena that will hand out at most `max_bytes` (0: 1 GiB). */
void em_arena_init(struct em_arena *a, size_t max_bytes);

/* Lets chunks grow up to `max` bytes (0: the default, 8 KiB) from now on: for an arena
 * filled in one go on a thread of its own (a restart's model), where each small chunk
 * would grow that thread's malloc heap, and so cost a system call, by itself. */
void em_arena_set_max_chunk(struct em_arena *a, size_t max);

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

/* Frees across threads. A document parsed on a worker thread is usually freed on the
 * thread that consumes it; glibc then takes the worker's malloc-arena lock for every chunk,
 * while the worker allocates in that arena (a visit's cold start: 800,000 futex calls).
 * Instead, a chunk remembers which thread allocated it (em_arena_set_owner), the consumer
 * collects the chunks it frees into a bin, by owner (em_arena_collect), and hands each
 * owner its own back to free (em_arena_bin_take, em_arena_chunks_free). */
#define EM_ARENA_OWNERS 64

struct em_arena_bin {
    struct em_arena_chunk *head[EM_ARENA_OWNERS], *tail[EM_ARENA_OWNERS];
    size_t n[EM_ARENA_OWNERS]; /* chunks held, by owner */
    size_t count;              /* in all */
};

/* The chunks this thread allocates from now on belong to `owner` (1 .. EM_ARENA_OWNERS-1;
 * 0, the default, is no one: freed at once wherever they are freed). */
void em_arena_set_owner(unsigned owner);

/* From now on, em_arena_free() on this thread puts the chunks of other owners into `bin`
 * instead of freeing them; NULL ends that (the bin keeps what it holds). */
void em_arena_collect(struct em_arena_bin *bin);

/* Detaches the chunks of `owner` from `bin` (a list for em_arena_chunks_free; NULL when
 * none). */
struct em_arena_chunk *em_arena_bin_take(struct em_arena_bin *bin, unsigned owner);

/* Appends the chunks of every owner in `from` to `to` (`from` is left empty). */
void em_arena_bin_move(struct em_arena_bin *to, struct em_arena_bin *from);

/* Puts a malloc'd block of `size` bytes that `owner` allocated into `bin`, to be freed
 * with its chunks; a block smaller than a pointer (or of no owner) is freed at once. */
void em_arena_bin_put(struct em_arena_bin *bin, unsigned owner, void *block, size_t size);

/* Frees a list of chunks from em_arena_bin_take(). */
void em_arena_chunks_free(struct em_arena_chunk *list);

/* Frees every chunk `bin` holds. */
void em_arena_bin_free(struct em_arena_bin *bin);

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
