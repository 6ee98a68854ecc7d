/* Tests of the hash map: removal keeps every other key findable (backward shift across
 * the wrap-around of the table), and string maps tell colliding hashes apart. */
#include <setjmp.h>
#include <stdarg.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmap__remove_keeps_the_rest_findable),
        cmocka_unit_test(test_hmap__strings_with_one_hash_stay_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
