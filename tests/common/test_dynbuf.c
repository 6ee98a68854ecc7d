/* em_grow, the one growth rule for arrays: room for element n, doubling from `first`,
 * the contents kept; a request that cannot be met leaves the array and its capacity as
 * they were. dynbuf: its limit holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynbuf.h"

static void test_em_grow__doubles_and_keeps_contents(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0, n = 0;
    size_t caps[8], ncaps = 0;
    for (int i = 0; i < 1000; i++) {
        size_t before = cap;
        int *g = em_grow(v, n, &cap, sizeof(*v), 16);
        assert_non_null(g);
        v = g;
        if (cap != before && ncaps < 8)
            caps[ncaps++] = cap;
        v[n++] = i * 3;
    }
    assert_int_equal(caps[0], 16);
    assert_int_equal(caps[1], 32);
    assert_int_equal(caps[2], 64);
    assert_int_equal(cap, 1024);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(v[i], i * 3);
    /* Room already there: the same array, the same capacity. */
    assert_ptr_equal(em_grow(v, 10, &cap, sizeof(*v), 16), v);
    assert_int_equal(cap, 1024);
    free(v);
}

static void test_em_grow__failure_leaves_the_array(void **state)
{
    (void)state;
    char *v = malloc(4);
    size_t cap = 4;
    memcpy(v, "abcd", 4);
    /* Element SIZE_MAX / 2 of 4-byte elements cannot exist. */
    assert_null(em_grow(v, SIZE_MAX / 2, &cap, 4, 16));
    assert_int_equal(cap, 4);
    assert_null(em_grow(v, SIZE_MAX, &cap, 1, 16));
    assert_int_equal(cap, 4);
    assert_memory_equal(v, "abcd", 4); /* still ours, unchanged */
    free(v);
}

static void test_dynbuf__limit_holds(void **state)
{
    (void)state;
    struct dynbuf b;
    dynbuf_init(&b, 10);
    assert_int_equal(dynbuf_add(&b, "0123456789", 10), 0);
    assert_true(dynbuf_add(&b, "x", 1) < 0);
    assert_int_equal(b.len, 10);
    dynbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_em_grow__doubles_and_keeps_contents),
        cmocka_unit_test(test_em_grow__failure_leaves_the_array),
        cmocka_unit_test(test_dynbuf__limit_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
