/* hmap.h — an open-addressing hash map from 64-bit keys to a pointer or a number.
 *
 * Keys are hashes (hash.h) or ids; 0 is reserved. Maps that stand for strings check the
 * string too: give hmap_find() the string and a function returning a value's string, so
 * two strings whose hashes collide never share an entry. Not thread-safe.
 */
#ifndef EM_HMAP_H
#define EM_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

union hmap_value {
    void *p;
    uint64_t u;
};

struct hmap_entry {
    uint64_t key; /* 0: free */
    union hmap_value v;
};

struct hmap {
    struct hmap_entry *e;
    size_t cap; /* a power of two, or 0 */
    size_t count;
    uint64_t seed; /* mixed into every slot: set when the map first grows */
};

/* Returns a value's string, for maps keyed by strings. */
typedef const char *(*hmap_str_fn)(const void *value);

/* The entry for `key` (and, when `str` is not NULL, whose value's string equals `str`),
 * or NULL. Valid until the next insertion. */
struct hmap_entry *hmap_find(const struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn);

/* Finds or adds the entry for `key`/`str`; a new entry's value is zero. *added says
 * which. Returns NULL when out of memory. Valid until the next insertion. */
struct hmap_entry *hmap_upsert(struct hmap *m, uint64_t key, const char *str, hmap_str_fn fn,
                               int *added);

/* Like hmap_find()/hmap_upsert(), for values whose key is not one string: `eq` says
 * whether a value is the one sought (`ctx` is passed through). */
typedef int (*hmap_eq_fn)(const void *value, const void *ctx);
struct hmap_entry *hmap_find_eq(const struct hmap *m, uint64_t key, hmap_eq_fn eq, const void *ctx);
struct hmap_entry *hmap_upsert_eq(struct hmap *m, uint64_t key, hmap_eq_fn eq, const void *ctx,
                                  int *added);

/* Removes the entry `e` (from hmap_find or hmap_upsert on `m`); its value is yours to
 * free first. Entries after it may move: earlier entry pointers are invalid. */
void hmap_remove(struct hmap *m, struct hmap_entry *e);

/* Calls `fn` on each value, in no particular order. */
void hmap_each(const struct hmap *m, void (*fn)(union hmap_value *v, void *ctx), void *ctx);

void hmap_clear(struct hmap *m);
void hmap_free(struct hmap *m);

/* hset — an open-addressing set of pointers, 9 bytes a slot where an hmap takes 16, for
 * big sets whose values carry their own key (the journal's 600,000 file records). Each
 * slot has a byte of its value's hash beside it, so a probe reads a value only when that
 * byte matches (1 in 256 otherwise) and then compares with an hmap_eq_fn. Each value's
 * hash comes from `hash` (given `hctx`), which the set calls when it grows or removes.
 * At most 3/4 full. Not thread-safe. */
typedef uint64_t (*hset_hash_fn)(const void *value, const void *hctx);

struct hset {
    void **v;     /* NULL: free */
    uint8_t *tag; /* a byte of each value's hash */
    size_t cap, count;
    uint64_t seed;
    hset_hash_fn hash;
    const void *hctx;
};

void hset_init(struct hset *s, hset_hash_fn hash, const void *hctx);
/* The slot holding the value `eq` accepts among those hashing to `hash`, or NULL. Valid
 * until the next hset_add or hset_remove. */
void **hset_find(const struct hset *s, uint64_t hash, hmap_eq_fn eq, const void *ctx);
/* Hints for a hset_find(s, hash) that comes soon, in two steps some work apart (a lookup
 * of a large set waits for memory three times: the tag, the slot, the value): the first
 * starts loading the tag and the slot, the second, once they are in, the value the slot
 * holds when its tag matches. Neither changes anything, and both may be skipped. */
void hset_prefetch(const struct hset *s, uint64_t hash);
void hset_prefetch_value(const struct hset *s, uint64_t hash);
/* hset_find(), and hset_add() of `value` when nothing was found, in one probe: the slot of
 * the value found (*added false) or of `value` (*added true); NULL when out of memory. */
void **hset_add_unless(struct hset *s, uint64_t hash, void *value, hmap_eq_fn eq, const void *ctx,
                       bool *added);
/* Adds `value` (not NULL, known absent, hashing to `hash`). -1 when out of memory. */
int hset_add(struct hset *s, uint64_t hash, void *value);
/* Makes room for `n` values in all without growing again (a set about to be filled with
 * a known number: one allocation, no values moved). -1 when out of memory. */
int hset_reserve(struct hset *s, size_t n);
/* Removes the value in `slot` (from hset_find on `s`). */
void hset_remove(struct hset *s, void **slot);
void hset_each(const struct hset *s, void (*fn)(void *value, void *ctx), void *ctx);
/* Frees the slots (not the values); the set is empty and keeps its hash function. */
void hset_free(struct hset *s);

/* ktab — a map from 64-bit keys (hashes; 0 reserved) to 64-bit values, for hundreds of
 * thousands of entries that are mostly looked up and updated once added (the journal's
 * entities, one per micrograph). The bulk is an array sorted by key, 16 bytes an entry
 * with no free slots, found through a directory of the keys' top bits (about 1 byte an
 * entry); new keys wait in a small hmap, merged into the array when it passes 1/32 of
 * the array. About 18 bytes an entry where an hmap takes 21 to 43. Keys added in
 * ascending order while nothing waits (a journal read back) go straight to the array.
 * Lookups stay O(log n) whatever the keys. Not thread-safe. */
struct ktab {
    struct hmap_entry *a; /* sorted by key */
    size_t n, cap;
    uint32_t *dir; /* dir[b]: the first index whose key's top dir_bits are >= b */
    unsigned dir_bits;
    size_t dir_n; /* n when dir was built (dir is used only while n == dir_n) */
    struct hmap recent;
};

/* The value of `key`, or NULL. Valid until the next ktab_set. */
uint64_t *ktab_find(const struct ktab *t, uint64_t key);
/* Sets the value of `key` (not 0), adding it when new. -1 when out of memory. */
int ktab_set(struct ktab *t, uint64_t key, uint64_t value);
size_t ktab_count(const struct ktab *t);
/* Room for `n` keys in all (a load that knows how many come): no growing and no slack
 * until then, and the memory is backed at once (em_populate). -1 when out of memory. */
int ktab_reserve(struct ktab *t, size_t n);
/* Calls `fn` on each entry, in ascending key order (the waiting ones merged in; only when
 * there is no memory to sort them do they come last, unsorted). */
void ktab_each(const struct ktab *t, void (*fn)(uint64_t key, uint64_t value, void *ctx),
               void *ctx);
void ktab_free(struct ktab *t);

#endif
