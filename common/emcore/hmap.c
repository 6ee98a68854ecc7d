#include "em_compat.h"
#include "hmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keys are hashes already; ids are spread with one multiply, and the top bits taken.
 * Each map mixes in its own seed: keys inserted in the slot order of another map (a
 * journal written by walking its map, read back into a new one) would otherwise pile up
 * in long runs, and building a 600k map took seconds instead of milliseconds. */
static size_t slot_for(uint64_t seed, uint64_t key, size_t cap)
{
    unsigned bits = (unsigned)__builtin_ctzll((unsigned long long)cap);
    uint64_t h = (key ^ seed) * 0x9e3779b97f4a7c15ull;
    return bits ? (size_t)(h >> (64 - bits)) : 0;
}

static size_t slot_of(const struct hmap *m, uint64_t key, size_t cap)
{
    return slot_for(m->seed, key, cap);
}

/* Backward-shift removal: whether the entry at j, whose home slot is `home`, stays where
 * it is when slot `hole` empties (its probe sequence does not pass through the hole). */
static bool stays_put(size_t hole, size_t j, size_t home)
{
    return hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
}

/* A seed that differs between maps (or sets: `m` is the structure's address) and between
 * runs. */
static uint64_t new_seed(const void *m)
{
    struct timespec ts;
    em_now(&ts);
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
    em_populate(e, cap * sizeof(*e)); /* every slot is written or read soon */
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
        if (!stays_put(hole, j, slot_of(m, m->e[j].key, m->cap))) {
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

/* ---- hset ---- */

void hset_init(struct hset *s, hset_hash_fn hash, const void *hctx)
{
    memset(s, 0, sizeof(*s));
    s->hash = hash;
    s->hctx = hctx;
}

static size_t hset_slot(const struct hset *s, uint64_t hash, size_t cap)
{
    return slot_for(s->seed, hash, cap);
}

/* The byte kept beside a slot: not the bits hset_slot() takes (the top ones), and never
 * 0, which marks a free slot: a probe reads only the small tag array until a tag matches
 * (a lookup that misses, as each of a journal's 600,000 records does when it is loaded,
 * touches no slot of the pointer array). */
static uint8_t hset_tag(uint64_t hash)
{
    uint8_t t = (uint8_t)hash;
    return t ? t : 1;
}

void **hset_find(const struct hset *s, uint64_t hash, hmap_eq_fn eq, const void *ctx)
{
    if (!s->cap)
        return NULL;
    uint8_t tag = hset_tag(hash);
    for (size_t i = hset_slot(s, hash, s->cap);; i = (i + 1) & (s->cap - 1)) {
        uint8_t t = s->tag[i];
        if (t == 0)
            return NULL;
        if (t == tag && eq(s->v[i], ctx))
            return &s->v[i];
    }
}

void hset_prefetch(const struct hset *s, uint64_t hash)
{
    if (!s->cap)
        return;
    size_t i = hset_slot(s, hash, s->cap);
    __builtin_prefetch(&s->tag[i]);
    __builtin_prefetch(&s->v[i]);
}

void hset_prefetch_value(const struct hset *s, uint64_t hash)
{
    if (!s->cap)
        return;
    size_t i = hset_slot(s, hash, s->cap);
    if (s->tag[i] == hset_tag(hash))
        __builtin_prefetch(s->v[i]);
}

/* Moves the values into `cap` slots (a power of two, more than there are values). */
static int hset_resize(struct hset *s, size_t cap)
{
    if (cap > SIZE_MAX / sizeof(void *))
        return -1;
    void **v = calloc(cap, sizeof(*v));
    uint8_t *tag = calloc(cap, 1); /* 0: free */
    if (!v || !tag) {
        free(v);
        free(tag);
        return -1;
    }
    em_populate(v, cap * sizeof(*v));
    em_populate(tag, cap);
    if (!s->cap)
        s->seed = new_seed(s);
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->v[i])
            continue;
        size_t j = hset_slot(s, s->hash(s->v[i], s->hctx), cap);
        while (tag[j])
            j = (j + 1) & (cap - 1);
        v[j] = s->v[i];
        tag[j] = s->tag[i];
    }
    free(s->v);
    free(s->tag);
    s->v = v;
    s->tag = tag;
    s->cap = cap;
    return 0;
}

static int hset_grow(struct hset *s)
{
    return hset_resize(s, s->cap ? s->cap * 2 : 64);
}

int hset_reserve(struct hset *s, size_t n)
{
    size_t cap = s->cap ? s->cap : 64;
    if (n > SIZE_MAX / 8)
        return -1;
    while (n * 4 > cap * 3)
        cap *= 2;
    return cap == s->cap ? 0 : hset_resize(s, cap);
}

int hset_add(struct hset *s, uint64_t hash, void *value)
{
    if (!value || ((s->count + 1) * 4 > s->cap * 3 && hset_grow(s) < 0))
        return -1;
    size_t i = hset_slot(s, hash, s->cap);
    while (s->tag[i])
        i = (i + 1) & (s->cap - 1);
    s->v[i] = value;
    s->tag[i] = hset_tag(hash);
    s->count++;
    return 0;
}

void **hset_add_unless(struct hset *s, uint64_t hash, void *value, hmap_eq_fn eq, const void *ctx,
                       bool *added)
{
    if (!value || ((s->count + 1) * 4 > s->cap * 3 && hset_grow(s) < 0))
        return NULL;
    uint8_t tag = hset_tag(hash);
    size_t i = hset_slot(s, hash, s->cap);
    for (; s->tag[i]; i = (i + 1) & (s->cap - 1)) {
        if (s->tag[i] == tag && eq(s->v[i], ctx)) {
            *added = false;
            return &s->v[i];
        }
    }
    s->v[i] = value;
    s->tag[i] = tag;
    s->count++;
    *added = true;
    return &s->v[i];
}

void hset_remove(struct hset *s, void **slot)
{
    size_t mask = s->cap - 1, hole = (size_t)(slot - s->v);
    for (size_t j = (hole + 1) & mask; s->tag[j]; j = (j + 1) & mask) {
        if (!stays_put(hole, j, hset_slot(s, s->hash(s->v[j], s->hctx), s->cap))) {
            s->v[hole] = s->v[j];
            s->tag[hole] = s->tag[j];
            hole = j;
        }
    }
    s->v[hole] = NULL;
    s->tag[hole] = 0;
    s->count--;
}

void hset_each(const struct hset *s, void (*fn)(void *value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i])
            fn(s->v[i], ctx);
}

void hset_free(struct hset *s)
{
    free(s->v);
    free(s->tag);
    hset_init(s, s->hash, s->hctx);
}

/* ---- ktab ---- */

#define KTAB_MIN_RECENT 256u

static unsigned top_bits(uint64_t key, unsigned bits)
{
    return (unsigned)(key >> (64 - bits));
}

/* The index of `key` in t->a[lo, hi), or hi when absent. */
static size_t ktab_search(const struct ktab *t, uint64_t key, size_t lo, size_t hi)
{
    size_t end = hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->a[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && t->a[lo].key == key ? lo : end;
}

/* Rebuilds the directory for the array as it is: about 4 entries a bucket. */
static int ktab_index(struct ktab *t)
{
    unsigned bits = 4;
    while (bits < 24 && ((size_t)1 << (bits + 2)) < t->n)
        bits++;
    size_t nb = (size_t)1 << bits;
    if (bits != t->dir_bits || !t->dir) {
        uint32_t *d = realloc(t->dir, (nb + 1) * sizeof(*d));
        if (!d)
            return -1;
        t->dir = d;
        t->dir_bits = bits;
    }
    size_t i = 0;
    for (size_t b = 0; b < nb; b++) {
        while (i < t->n && top_bits(t->a[i].key, bits) < b)
            i++;
        t->dir[b] = (uint32_t)i;
    }
    t->dir[nb] = (uint32_t)t->n;
    t->dir_n = t->n;
    return 0;
}

uint64_t *ktab_find(const struct ktab *t, uint64_t key)
{
    if (!key)
        return NULL;
    if (t->n) {
        size_t lo = 0, hi = t->n;
        if (t->dir && t->dir_n == t->n) {
            unsigned b = top_bits(key, t->dir_bits);
            lo = t->dir[b];
            hi = t->dir[b + 1];
        }
        size_t i = ktab_search(t, key, lo, hi);
        if (i < hi)
            return &t->a[i].v.u;
    }
    struct hmap_entry *e = hmap_find(&t->recent, key, NULL, NULL);
    return e ? &e->v.u : NULL;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = ((const struct hmap_entry *)a)->key, y = ((const struct hmap_entry *)b)->key;
    return x < y ? -1 : x > y;
}

/* The array resized to `cap` entries (at least what it holds); `populate`: the new part
 * backed at once. */
static int ktab_resize(struct ktab *t, size_t cap, bool populate)
{
    if (cap > UINT32_MAX)
        return -1;
    struct hmap_entry *a = realloc(t->a, cap * sizeof(*a));
    if (!a)
        return -1;
    if (populate && cap > t->cap)
        em_populate(a + t->cap, (cap - t->cap) * sizeof(*a));
    t->a = a;
    t->cap = cap;
    return 0;
}

/* Room for `need` entries in the array. */
static int ktab_room(struct ktab *t, size_t need)
{
    if (need <= t->cap)
        return 0;
    if (need > UINT32_MAX)
        return -1;
    size_t cap = t->cap + t->cap / 8; /* little slack: the array is most of the memory */
    cap = cap < need ? need : cap < 16 ? 16 : cap;
    return ktab_resize(t, cap, false); /* the slack is left to page faults: it may stay unused */
}

int ktab_reserve(struct ktab *t, size_t n)
{
    return n <= t->cap ? 0 : ktab_resize(t, n, true);
}

/* Moves the waiting keys into the array: sorted, then merged from the back, in place. */
static int ktab_merge(struct ktab *t)
{
    size_t k = t->recent.count, n = t->n;
    struct hmap_entry *add = malloc(k * sizeof(*add));
    if (!add || ktab_room(t, n + k) < 0) {
        free(add);
        return -1;
    }
    size_t w = 0;
    for (size_t i = 0; i < t->recent.cap; i++)
        if (t->recent.e[i].key)
            add[w++] = t->recent.e[i];
    qsort(add, k, sizeof(*add), by_key);
    struct hmap_entry *a = t->a;
    size_t i = n, j = k, out = n + k;
    while (j > 0) {
        if (i > 0 && a[i - 1].key > add[j - 1].key)
            a[--out] = a[--i];
        else
            a[--out] = add[--j];
    }
    free(add);
    t->n = n + k;
    hmap_clear(&t->recent);
    return ktab_index(t);
}

int ktab_set(struct ktab *t, uint64_t key, uint64_t value)
{
    if (!key)
        return -1;
    if (t->recent.count == 0 && (t->n == 0 || t->a[t->n - 1].key < key)) {
        /* In order, so new: straight onto the array. Its directory is rebuilt once, when
         * a key out of order comes (a journal read back appends 600,000 in a row). */
        if (ktab_room(t, t->n + 1) < 0)
            return -1;
        t->a[t->n].key = key;
        t->a[t->n].v.u = value;
        t->n++;
        return 0;
    }
    uint64_t *v = ktab_find(t, key);
    if (v) {
        *v = value;
        return 0;
    }
    /* Out of order: the appending is over for now, so the directory is worth building
     * (until then lookups search the whole array, in O(log n)). */
    if (t->n && (!t->dir || t->dir_n != t->n))
        (void)ktab_index(t);
    int added;
    struct hmap_entry *e = hmap_upsert(&t->recent, key, NULL, NULL, &added);
    if (!e)
        return -1;
    e->v.u = value;
    /* A merge that fails for memory leaves the keys waiting, still found: the value is
     * set either way, and the next addition tries again. */
    if (t->recent.count >= KTAB_MIN_RECENT && t->recent.count >= t->n / 32)
        (void)ktab_merge(t);
    return 0;
}

size_t ktab_count(const struct ktab *t)
{
    return t->n + t->recent.count;
}

void ktab_each(const struct ktab *t, void (*fn)(uint64_t key, uint64_t value, void *ctx), void *ctx)
{
    /* In key order: the array merged with the waiting keys, sorted (a journal compacted
     * in this order reads back by appending; the waiting ones used to come last, in hash
     * order, and made a visit's load search and insert its last 13,000 keys). */
    size_t k = t->recent.count, w = 0;
    struct hmap_entry *add = k ? malloc(k * sizeof(*add)) : NULL;
    if (add) {
        for (size_t i = 0; i < t->recent.cap; i++)
            if (t->recent.e[i].key)
                add[w++] = t->recent.e[i];
        qsort(add, w, sizeof(*add), by_key);
    }
    size_t i = 0, j = 0;
    while (i < t->n || j < w) {
        if (j == w || (i < t->n && t->a[i].key < add[j].key)) {
            fn(t->a[i].key, t->a[i].v.u, ctx);
            i++;
        } else {
            fn(add[j].key, add[j].v.u, ctx);
            j++;
        }
    }
    free(add);
    if (k && !add) /* out of memory for the sorting: the waiting ones last, unsorted */
        for (size_t r = 0; r < t->recent.cap; r++)
            if (t->recent.e[r].key)
                fn(t->recent.e[r].key, t->recent.e[r].v.u, ctx);
}

void ktab_free(struct ktab *t)
{
    free(t->a);
    free(t->dir);
    hmap_free(&t->recent);
    memset(t, 0, sizeof(*t));
}
