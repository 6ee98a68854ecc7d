/* em_arena_alloc_align packs to the alignment asked for; em_slab hands out zeroed objects
 * of one size, reuses freed ones first, and releases everything at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_arena.h"

static void test_arena__alignment_asked_for(void **state)
{
    (void)state;
    struct em_arena a;
    em_arena_init(&a, 0);
    char *s1 = em_arena_alloc_align(&a, 3, 1), *s2 = em_arena_alloc_align(&a, 3, 1);
    assert_ptr_equal(s2, s1 + 3); /* strings pack byte to byte */
    uint64_t *w = em_arena_alloc_align(&a, sizeof(*w), 8);
    assert_int_equal((uintptr_t)w % 8, 0);
    assert_ptr_equal((char *)w, s1 + 8);         /* padded from 6 to 8 only */
    assert_null(em_arena_alloc_align(&a, 8, 3)); /* not a power of two */
    assert_null(em_arena_alloc_align(&a, 8, 0));
    for (int i = 0; i < 10000; i++) { /* across many chunks */
        uint64_t *v = em_arena_alloc_align(&a, 24, 8);
        assert_non_null(v);
        assert_int_equal((uintptr_t)v % 8, 0);
    }
    em_arena_free(&a);
}

struct obj {
    uint64_t a, b;
    char c;
};

static void test_slab__reuse_zeroed_release(void **state)
{
    (void)state;
    struct em_slab s;
    em_slab_init(&s, sizeof(struct obj));
    struct obj *o[100];
    for (int i = 0; i < 100; i++) {
        o[i] = em_slab_alloc(&s);
        assert_non_null(o[i]);
        assert_int_equal((uintptr_t)o[i] % 8, 0);
        assert_true(o[i]->a == 0 && o[i]->b == 0 && o[i]->c == 0);
        o[i]->a = o[i]->b = (uint64_t)i + 1;
        o[i]->c = 'x';
    }
    for (int i = 0; i < 100; i++) /* no two objects overlap */
        assert_true(o[i]->a == (uint64_t)i + 1 && o[i]->b == (uint64_t)i + 1);
    em_slab_free(&s, o[10]);
    em_slab_free(&s, o[20]);
    em_slab_free(&s, NULL);
    struct obj *r1 = em_slab_alloc(&s), *r2 = em_slab_alloc(&s);
    assert_ptr_equal(r1, o[20]); /* the last freed first */
    assert_ptr_equal(r2, o[10]);
    assert_true(r1->a == 0 && r1->b == 0 && r1->c == 0); /* zeroed again */
    em_slab_release(&s);
    struct obj *n = em_slab_alloc(&s); /* usable after a release */
    assert_non_null(n);
    assert_true(n->a == 0);
    em_slab_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena__alignment_asked_for),
        cmocka_unit_test(test_slab__reuse_zeroed_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
