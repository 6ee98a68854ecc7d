#include "hmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keys are hashes already; ids are spread with one multiply, and the top bits taken.
 * Each map mixes in its own seed: keys inserted in the slot order of another map (a
 * journal written by walking its map, read back into a new one) would otherwise pile up
 * in long runs, and building a 600k map took seconds instead of milliseconds. */
static size_t slot_of(const struct hmap *m, uint64_t key, size_t cap)
{
    unsigned bits = (unsigned)__builtin_ctzll((unsigned long long)cap);
    uint64_t h = (key ^ m->seed) * 0x9e3779b97f4a7c15ull;
    return bits ? (size_t)(h >> (64 - bits)) : 0;
}

/* A seed that differs between maps and between runs. */
static uint64_t new_seed(const struct hmap *m)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    uint64_t s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)m;
    s ^= s >> 31;
    s *= 0xbf58476d1ce4e5b9ull;
    s ^= s >> 29;
    return s | 1;
}

/* The probe both finds share; inlined into each with its own `eq`. */
static inline struct hmap_entry *probe(const struct hmap *m, uint64_t key, hmap_eq_fn eq,
                                       const void *ctx)
{
    if (!m->cap || !key)
        return NULL;
    for (size_t i = slot_of(m, key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        struct hmap_entry *e = &m->e[i];
        if (e->key == 0)
            return NULL;
        if (e->key == key && eq(e->v.p, ctx))
            return e;
    }
}

struct str_match {
    const char *str;
    hmap_str_fn fn;
};

static int str_eq(const void *value, const void *ctx)
{
    const struct str_match *sm = ctx;
    return !sm->str || strcmp(sm->fn(value), sm->str) == 0;
}

struct hmap_entry *hmap_find(const struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn)
{
    struct str_match sm = {str, fn};
    return probe(m, key, str_eq, &sm);
}

struct hmap_entry *hmap_find_eq(const struct hmap *m, uint64_t key, hmap_eq_fn eq, const void *ctx)
{
    return probe(m, key, eq, ctx);
}

static int grow(struct hmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct hmap_entry *e = calloc(cap, sizeof(*e));
    if (!e)
        return -1;
    if (!m->cap)
        m->seed = new_seed(m);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key)
            continue;
        size_t j = slot_of(m, m->e[i].key, cap);
        while (e[j].key)
            j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

/* Adds `key` (known absent) with a zero value. */
static struct hmap_entry *insert_new(struct hmap *m, uint64_t key, int *added)
{
    /* At most 3/4 full: probes stay short and big maps (100k+ entities) stay small. */
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return NULL;
    size_t i = slot_of(m, key, m->cap);
    while (m->e[i].key)
        i = (i + 1) & (m->cap - 1);
    m->e[i].key = key;
    m->e[i].v.u = 0;
    m->count++;
    *added = 1;
    return &m->e[i];
}

struct hmap_entry *hmap_upsert(struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn,
                               int *added)
{
    *added = 0;
    if (!key)
        return NULL;
    struct hmap_entry *e = hmap_find(m, key, str, fn);
    return e ? e : insert_new(m, key, added);
}

struct hmap_entry *hmap_upsert_eq(struct hmap *m, uint64_t key, hmap_eq_fn eq, const void *ctx,
                                  int *added)
{
    *added = 0;
    if (!key)
        return NULL;
    struct hmap_entry *e = hmap_find_eq(m, key, eq, ctx);
    return e ? e : insert_new(m, key, added);
}

void hmap_remove(struct hmap *m, struct hmap_entry *e)
{
    size_t mask = m->cap - 1, hole = (size_t)(e - m->e);
    /* Backward shift: entries that probed past the hole move into it, so every probe
     * sequence stays unbroken without tombstones. */
    for (size_t j = (hole + 1) & mask; m->e[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->e[j].key, m->cap);
        bool stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->e[hole] = m->e[j];
            hole = j;
        }
    }
    m->e[hole].key = 0;
    m->e[hole].v.u = 0;
    m->count--;
}

void hmap_each(const struct hmap *m, void (*fn)(union hmap_value *v, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].key)
            fn(&m->e[i].v, ctx);
}

void hmap_clear(struct hmap *m)
{
    if (m->cap)
        memset(m->e, 0, m->cap * sizeof(*m->e));
    m->count = 0;
}

void hmap_free(struct hmap *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}
