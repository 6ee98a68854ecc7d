#include "hmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static size_t slot_of(uint64_t key, size_t cap)
{
    /* Keys are hashes already; ids are spread with one multiply. */
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static int matches(const struct hmap_entry *e, uint64_t key, const char *str, hmap_str_fn fn)
{
    return e->key == key && (!str || strcmp(fn(e->v.p), str) == 0);
}

struct hmap_entry *hmap_find(const struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn)
{
    if (!m->cap || !key)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        struct hmap_entry *e = &m->e[i];
        if (e->key == 0)
            return NULL;
        if (matches(e, key, str, fn))
            return e;
    }
}

static int grow(struct hmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct hmap_entry *e = calloc(cap, sizeof(*e));
    if (!e)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key)
            continue;
        size_t j = slot_of(m->e[i].key, cap);
        while (e[j].key)
            j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

struct hmap_entry *hmap_upsert(struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn,
                               int *added)
{
    *added = 0;
    if (!key)
        return NULL;
    struct hmap_entry *e = hmap_find(m, key, str, fn);
    if (e)
        return e;
    /* At most 3/4 full: probes stay short and big maps (100k+ entities) stay small. */
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return NULL;
    size_t i = slot_of(key, m->cap);
    while (m->e[i].key)
        i = (i + 1) & (m->cap - 1);
    m->e[i].key = key;
    m->e[i].v.u = 0;
    m->count++;
    *added = 1;
    return &m->e[i];
}

void hmap_remove(struct hmap *m, struct hmap_entry *e)
{
    size_t mask = m->cap - 1, hole = (size_t)(e - m->e);
    /* Backward shift: entries that probed past the hole move into it, so every probe
     * sequence stays unbroken without tombstones. */
    for (size_t j = (hole + 1) & mask; m->e[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->e[j].key, m->cap);
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
