#include "em_arena.h"

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
    size_t size;
    size_t off;
    alignas(max_align_t) unsigned char data[];
};

void em_arena_init(struct em_arena *a, size_t max_bytes)
{
    a->head = NULL;
    a->next_chunk = ARENA_FIRST_CHUNK;
    a->used = 0;
    a->max_bytes = max_bytes ? max_bytes : (size_t)1 << 30;
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
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = a->head;
        c->size = size;
        c->off = 0;
        a->head = c;
        if (a->next_chunk < ARENA_MAX_CHUNK)
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

void em_arena_free(struct em_arena *a)
{
    struct em_arena_chunk *c = a->head;
    while (c) {
        struct em_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
    a->next_chunk = ARENA_FIRST_CHUNK;
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
