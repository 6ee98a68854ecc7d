/* Tests of the hash map: removal keeps every other key findable (backward shift across
 * the wrap-around of the table), and string maps tell colliding hashes apart. The same
 * for the pointer set (hset), whose values carry their keys, and the sorted key table
 * (ktab), checked against a plain array whatever the order keys come in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hmap.h"

static void test_hmap__remove_keeps_the_rest_findable(void **state)
{
    (void)state;
    struct hmap m = {0};
    int added;
    /* Sequential ids cluster, so long probe runs cross the end of the table. */
    for (uint64_t k = 1; k <= 20000; k++) {
        struct hmap_entry *e = hmap_upsert(&m, k, NULL, NULL, &added);
        assert_non_null(e);
        assert_true(added);
        e->v.u = k * 3;
    }
    for (uint64_t k = 1; k <= 20000; k += 2)
        hmap_remove(&m, hmap_find(&m, k, NULL, NULL));
    assert_int_equal(m.count, 10000);
    for (uint64_t k = 1; k <= 20000; k++) {
        struct hmap_entry *e = hmap_find(&m, k, NULL, NULL);
        if (k % 2) {
            assert_null(e);
        } else {
            assert_non_null(e);
            assert_int_equal(e->v.u, k * 3);
        }
    }
    /* Removed keys can come back. */
    struct hmap_entry *e = hmap_upsert(&m, 7, NULL, NULL, &added);
    assert_true(added);
    assert_int_equal(e->v.u, 0);
    hmap_free(&m);
}

static const char *str_of(const void *v)
{
    return v;
}

static void test_hmap__strings_with_one_hash_stay_apart(void **state)
{
    (void)state;
    struct hmap m = {0};
    int added;
    char a[] = "a", b[] = "b";
    struct hmap_entry *e = hmap_upsert(&m, 42, a, str_of, &added);
    e->v.p = a;
    e = hmap_upsert(&m, 42, b, str_of, &added);
    assert_true(added);
    e->v.p = b;
    assert_ptr_equal(hmap_find(&m, 42, "a", str_of)->v.p, a);
    assert_ptr_equal(hmap_find(&m, 42, "b", str_of)->v.p, b);
    hmap_remove(&m, hmap_find(&m, 42, "a", str_of));
    assert_null(hmap_find(&m, 42, "a", str_of));
    assert_ptr_equal(hmap_find(&m, 42, "b", str_of)->v.p, b);
    hmap_free(&m);
}

/* hset values: an id, hashed by a function that puts many ids on one hash. */
struct item {
    uint64_t id;
};

static uint64_t item_hash_of(uint64_t id)
{
    return (id % 97) * 0x9e3779b97f4a7c15ull + 1; /* 97 hashes for 20,000 ids */
}

static uint64_t item_hash(const void *v, const void *hctx)
{
    (void)hctx;
    return item_hash_of(((const struct item *)v)->id);
}

static int item_is(const void *v, const void *ctx)
{
    return ((const struct item *)v)->id == *(const uint64_t *)ctx;
}

static void count_item(void *v, void *ctx)
{
    (void)v;
    (*(size_t *)ctx)++;
}

/* A reserved set takes that many values without growing (its slots stay where they are),
 * keeps what it held, and a reservation smaller than what it has changes nothing. */
static void test_hset__reserve_then_fill_without_growing(void **state)
{
    (void)state;
    static struct item items[3000];
    struct hset s;
    hset_init(&s, item_hash, NULL);
    hset_prefetch(&s, 1); /* the hints on a set with no slots yet: nothing to load */
    hset_prefetch_value(&s, 1);
    for (uint64_t k = 0; k < 10; k++) {
        items[k].id = k;
        assert_int_equal(hset_add(&s, item_hash_of(k), &items[k]), 0);
    }
    assert_int_equal(hset_reserve(&s, 3000), 0);
    size_t cap = s.cap;
    void **slots = s.v;
    assert_true(cap * 3 >= 3000 * 4);
    for (uint64_t k = 0; k < 10; k++) /* moved into the new slots, still found */
        assert_ptr_equal(*hset_find(&s, item_hash_of(k), item_is, &k), &items[k]);
    for (uint64_t k = 10; k < 3000; k++) {
        items[k].id = k;
        assert_int_equal(hset_add(&s, item_hash_of(k), &items[k]), 0);
    }
    assert_int_equal(s.cap, cap);
    assert_ptr_equal(s.v, slots);
    assert_int_equal(hset_reserve(&s, 5), 0);
    assert_int_equal(s.cap, cap);
    assert_int_equal(hset_reserve(&s, SIZE_MAX / 4), -1);
    for (uint64_t k = 0; k < 3100; k++) { /* hints for values there and not there */
        hset_prefetch(&s, item_hash_of(k));
        hset_prefetch_value(&s, item_hash_of(k));
    }
    assert_int_equal(s.count, 3000);
    for (uint64_t k = 0; k < 3000; k++)
        assert_ptr_equal(*hset_find(&s, item_hash_of(k), item_is, &k), &items[k]);
    hset_free(&s);
}

/* hset_add_unless: a value not there is added (and grows the set as hset_add would); one
 * there (the same id, even colliding with others) comes back in its slot, not added. */
static void test_hset__add_unless_finds_or_adds_in_one_probe(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct item *items = calloc(2 * N + 1, sizeof(*items));
    assert_non_null(items);
    struct hset s;
    hset_init(&s, item_hash, NULL);
    bool added;
    for (uint64_t k = 1; k <= N; k++) {
        items[k].id = k;
        void **slot = hset_add_unless(&s, item_hash_of(k), &items[k], item_is, &k, &added);
        assert_non_null(slot);
        assert_true(added);
        assert_ptr_equal(*slot, &items[k]);
    }
    assert_int_equal(s.count, N);
    for (uint64_t k = 1; k <= N; k++) { /* a second value of the same id: the first stays */
        items[N + k].id = k;
        void **slot = hset_add_unless(&s, item_hash_of(k), &items[N + k], item_is, &k, &added);
        assert_non_null(slot);
        assert_false(added);
        assert_ptr_equal(*slot, &items[k]);
    }
    assert_int_equal(s.count, N);
    for (uint64_t k = 1; k <= N; k++)
        assert_ptr_equal(*hset_find(&s, item_hash_of(k), item_is, &k), &items[k]);
    assert_null(hset_add_unless(&s, 1, NULL, item_is, &(uint64_t){1}, &added));
    hset_free(&s);
    free(items);
}

static void test_hset__colliding_values_found_removed_and_added_again(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct item *items = calloc(N + 1, sizeof(*items));
    struct hset s;
    hset_init(&s, item_hash, NULL);
    for (uint64_t k = 1; k <= N; k++) {
        items[k].id = k;
        assert_null(hset_find(&s, item_hash_of(k), item_is, &k));
        assert_int_equal(hset_add(&s, item_hash_of(k), &items[k]), 0);
    }
    assert_int_equal(s.count, N);
    assert_true(s.count * 4 <= s.cap * 3);
    for (uint64_t k = 1; k <= N; k += 3) {
        void **slot = hset_find(&s, item_hash_of(k), item_is, &k);
        assert_non_null(slot);
        assert_ptr_equal(*slot, &items[k]);
        hset_remove(&s, slot);
    }
    for (uint64_t k = 1; k <= N; k++) {
        void **slot = hset_find(&s, item_hash_of(k), item_is, &k);
        if (k % 3 == 1)
            assert_null(slot);
        else
            assert_ptr_equal(*slot, &items[k]);
    }
    size_t n = 0;
    hset_each(&s, count_item, &n);
    assert_int_equal(n, s.count);
    assert_int_equal(n, N - (N + 2) / 3);
    uint64_t k = 1;
    assert_int_equal(hset_add(&s, item_hash_of(k), &items[k]), 0);
    assert_ptr_equal(*hset_find(&s, item_hash_of(k), item_is, &k), &items[1]);
    hset_free(&s);
    assert_int_equal(s.count, 0);
    assert_null(hset_find(&s, item_hash_of(k), item_is, &k));
    free(items);
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

struct walk {
    uint64_t last;
    size_t n, sorted_prefix;
    bool in_order;
};

static void walk_entry(uint64_t key, uint64_t value, void *ctx)
{
    struct walk *w = ctx;
    assert_int_equal(value, key ^ 0x5555);
    if (w->in_order && w->n && key < w->last)
        w->in_order = false;
    if (w->in_order)
        w->sorted_prefix++;
    w->last = key;
    w->n++;
}

/* Keys in `mode`: 0 random, 1 ascending (a journal read back), 2 random with one top
 * 24 bits (every key in one directory bucket). Values are key ^ 0x5555, then updated. */
static void ktab_round(int mode)
{
    enum { N = 100000 };
    uint64_t *keys = malloc(N * sizeof(*keys)), x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < N; i++) {
        uint64_t r = next_rand(&x);
        keys[i] = mode == 1   ? (i + 1) * 0x0000a7c15ull
                  : mode == 2 ? (0xabcdefull << 40) | (r >> 24)
                              : r;
        if (!keys[i])
            keys[i] = 1;
    }
    struct ktab t = {0};
    if (mode == 1) /* as a journal's load does, knowing the count */
        assert_int_equal(ktab_reserve(&t, N), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ktab_set(&t, keys[i], 0), 0);
        /* found straight after being added, wherever it went */
        assert_non_null(ktab_find(&t, keys[i]));
        assert_int_equal(ktab_set(&t, keys[i], keys[i] ^ 0x5555), 0);
    }
    assert_int_equal(ktab_count(&t), N);
    if (mode == 1) {
        assert_int_equal(t.n, N);   /* all appended, none waiting */
        assert_int_equal(t.cap, N); /* into the room reserved, no more */
    } else
        assert_true(t.recent.count <= t.n / 32 + 256); /* merged as it went */
    for (size_t i = 0; i < N; i++) {
        const uint64_t *v = ktab_find(&t, keys[i]);
        assert_non_null(v);
        assert_int_equal(*v, keys[i] ^ 0x5555);
    }
    for (size_t i = 0; i < 1000; i++) { /* keys never added */
        uint64_t k = next_rand(&x) | 1;
        bool known = false;
        for (size_t j = 0; j < N && !known; j++)
            known = keys[j] == k;
        if (!known)
            assert_null(ktab_find(&t, k));
    }
    if (mode == 0) /* some keys wait outside the array: ktab_each merges them in */
        assert_true(t.recent.count > 0);
    struct walk w = {0, 0, 0, true};
    ktab_each(&t, walk_entry, &w);
    assert_int_equal(w.n, N);
    assert_int_equal(w.sorted_prefix, N); /* all of them in key order */
    assert_null(ktab_find(&t, 0));
    assert_int_equal(ktab_set(&t, 0, 1), -1);
    ktab_free(&t);
    free(keys);
}

static void test_ktab__every_key_found_in_any_order(void **state)
{
    (void)state;
    ktab_round(0);
    ktab_round(1);
    ktab_round(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmap__remove_keeps_the_rest_findable),
        cmocka_unit_test(test_hmap__strings_with_one_hash_stay_apart),
        cmocka_unit_test(test_hset__colliding_values_found_removed_and_added_again),
        cmocka_unit_test(test_hset__reserve_then_fill_without_growing),
        cmocka_unit_test(test_hset__add_unless_finds_or_adds_in_one_probe),
        cmocka_unit_test(test_ktab__every_key_found_in_any_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
