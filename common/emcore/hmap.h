/* hmap.h — an open-addressing hash map from 64-bit keys to a pointer or a number.
 *
 * Keys are hashes (hash.h) or ids; 0 is reserved. Maps that stand for strings check the
 * string too: give hmap_find() the string and a function returning a value's string, so
 * two strings whose hashes collide never share an entry. Not thread-safe.
 */
#ifndef EM_HMAP_H
#define EM_HMAP_H

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

#endif
