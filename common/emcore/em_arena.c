#include "em_arena.h"
#include "em_compat.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_FIRST_CHUNK 256u
/* Chunks stay small: long-lived arenas (the journal's records, the model's slabs) grow
 * while short-lived blocks of similar size come and go around them (a walk's lists of
 * names, freed as it goes); 8 KiB chunks fit into the holes those leave, where 64 KiB
 * ones did not (604k-file watch: 230 -> 210 MB peak RSS). */
#define ARENA_MAX_CHUNK (8u * 1024u)

struct em_arena_chunk {
    struct em_arena_chunk *next;
    uint32_t size;
    uint32_t owner; /* em_arena_set_owner() of the thread that allocated it */
    size_t off;
    alignas(max_align_t) unsigned char data[];
};

static _Thread_local unsigned this_owner;
static _Thread_local struct em_arena_bin *this_bin;

void em_arena_init(struct em_arena *a, size_t max_bytes)
{
    a->head = NULL;
    a->next_chunk = ARENA_FIRST_CHUNK;
    a->used = 0;
    a->max_bytes = max_bytes ? max_bytes : (size_t)1 << 30;
    a->max_chunk = ARENA_MAX_CHUNK;
}

void em_arena_set_max_chunk(struct em_arena *a, size_t max)
{
    a->max_chunk = max ? max : ARENA_MAX_CHUNK;
    if (a->next_chunk > a->max_chunk)
        a->next_chunk = a->max_chunk;
}

void *em_arena_alloc(struct em_arena *a, size_t n)
{
    return em_arena_alloc_align(a, n, alignof(max_align_t));
}

void *em_arena_alloc_align(struct em_arena *a, size_t n, size_t align)
{
    if (align == 0 || align > alignof(max_align_t) || (align & (align - 1)))
        return NULL;
    size_t need = (n + align - 1) & ~(align - 1);
    if (need < n || need > a->max_bytes - a->used)
        return NULL;
    struct em_arena_chunk *c = a->head;
    if (c) { /* chunks start aligned to max_align_t: pad the offset to `align` */
        size_t pad = ((c->off + align - 1) & ~(align - 1)) - c->off;
        if (c->size - c->off >= need + pad) {
            c->off += pad;
            a->used += pad;
        } else {
            c = NULL;
        }
    }
    if (!c) {
        size_t size = a->next_chunk;
        while (size < need)
            size *= 2;
        if (size > UINT32_MAX) /* max_bytes is 1 GiB by default: only a larger cap */
            return NULL;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        em_populate(c->data, size); /* a large chunk is about to be filled */
        c->next = a->head;
        c->size = (uint32_t)size;
        c->owner = this_owner;
        c->off = 0;
        a->head = c;
        if (a->next_chunk < a->max_chunk)
            a->next_chunk *= 2;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    return p;
}

char *em_arena_strndup(struct em_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = em_arena_alloc_align(a, len + 1, 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Appends a chunk (or a block whose first bytes can hold the link) to owner o's list. */
static void bin_append(struct em_arena_bin *bin, unsigned o, struct em_arena_chunk *c)
{
    c->next = NULL;
    if (bin->tail[o])
        bin->tail[o]->next = c;
    else
        bin->head[o] = c;
    bin->tail[o] = c;
    bin->n[o]++;
    bin->count++;
}

void em_arena_free(struct em_arena *a)
{
    struct em_arena_bin *bin = this_bin;
    struct em_arena_chunk *c = a->head;
    while (c) {
        struct em_arena_chunk *next = c->next;
        unsigned o = c->owner;
        if (bin && o && o != this_owner)
            bin_append(bin, o, c);
        else
            free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
    a->next_chunk = ARENA_FIRST_CHUNK;
}

void em_arena_set_owner(unsigned owner)
{
    this_owner = owner < EM_ARENA_OWNERS ? owner : 0;
}

void em_arena_collect(struct em_arena_bin *bin)
{
    this_bin = bin;
}

struct em_arena_chunk *em_arena_bin_take(struct em_arena_bin *bin, unsigned owner)
{
    if (owner >= EM_ARENA_OWNERS || !bin->head[owner])
        return NULL;
    struct em_arena_chunk *c = bin->head[owner];
    bin->count -= bin->n[owner];
    bin->n[owner] = 0;
    bin->head[owner] = bin->tail[owner] = NULL;
    return c;
}

void em_arena_bin_move(struct em_arena_bin *to, struct em_arena_bin *from)
{
    for (unsigned o = 0; o < EM_ARENA_OWNERS && from->count; o++) {
        if (!from->head[o])
            continue;
        if (to->tail[o])
            to->tail[o]->next = from->head[o];
        else
            to->head[o] = from->head[o];
        to->tail[o] = from->tail[o];
        to->n[o] += from->n[o];
        from->n[o] = 0;
        from->head[o] = from->tail[o] = NULL;
    }
    to->count += from->count;
    from->count = 0;
}

void em_arena_bin_put(struct em_arena_bin *bin, unsigned owner, void *block, size_t size)
{
    if (!block)
        return;
    if (!owner || owner >= EM_ARENA_OWNERS || size < sizeof(struct em_arena_chunk *)) {
        free(block);
        return;
    }
    /* Only the link is written, and read: the first member of a chunk. */
    bin_append(bin, owner, block);
}

void em_arena_chunks_free(struct em_arena_chunk *list)
{
    while (list) {
        struct em_arena_chunk *next = list->next;
        free(list);
        list = next;
    }
}

void em_arena_bin_free(struct em_arena_bin *bin)
{
    for (unsigned o = 0; o < EM_ARENA_OWNERS; o++)
        em_arena_chunks_free(em_arena_bin_take(bin, o));
    bin->count = 0;
}

void em_slab_init(struct em_slab *s, size_t size)
{
    em_arena_init(&s->arena, (size_t)1 << 40);
    s->free_list = NULL;
    s->size = size < sizeof(void *) ? sizeof(void *) : (size + 7) & ~(size_t)7;
}

void *em_slab_alloc(struct em_slab *s)
{
    void *p = s->free_list;
    if (p)
        memcpy(&s->free_list, p, sizeof(void *));
    else if (!(p = em_arena_alloc_align(&s->arena, s->size, 8)))
        return NULL;
    memset(p, 0, s->size);
    return p;
}

void em_slab_free(struct em_slab *s, void *p)
{
    if (!p)
        return;
    memcpy(p, &s->free_list, sizeof(void *));
    s->free_list = p;
}

void em_slab_release(struct em_slab *s)
{
    em_arena_free(&s->arena);
    em_slab_init(s, s->size);
}
