/* pfor runs every index of a loop exactly once, on the caller's thread and its helper
 * together, loop after loop; small loops and a missing helper run on the caller alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "pfor.h"

struct count {
    atomic_uint *hits;
    unsigned sleep_ms; /* per index: slow enough that the helper surely joins */
};

static void count_range(void *ctx, size_t from, size_t to)
{
    struct count *c = ctx;
    for (size_t i = from; i < to; i++) {
        atomic_fetch_add(&c->hits[i], 1);
        if (c->sleep_ms)
            uv_sleep(c->sleep_ms);
    }
}

static void run_and_check(struct pfor *p, size_t n, size_t chunk, unsigned sleep_ms)
{
    atomic_uint *hits = calloc(n ? n : 1, sizeof(*hits));
    assert_non_null(hits);
    struct count c = {hits, sleep_ms};
    pfor_run(p, n, chunk, count_range, &c);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&hits[i]), 1);
    free(hits);
}

static void test_pfor__every_index_once(void **state)
{
    (void)state;
    struct pfor *p = pfor_start();
    assert_non_null(p);
    for (int loop = 0; loop < 300; loop++) /* loops back to back: none mixes into another */
        run_and_check(p, (size_t)(loop * 37 % 5000), (size_t)(loop % 40), 0);
    run_and_check(p, 0, 16, 0);
    run_and_check(p, 5, 16, 0); /* one chunk: the caller alone */
    size_t before = pfor_helped(p);
    run_and_check(p, 200, 1, 1); /* 200 ms of work alone: the helper takes part */
    assert_true(pfor_helped(p) > before);
    pfor_stop(p);
    run_and_check(NULL, 1000, 16, 0); /* no helper: the caller does it all */
    assert_int_equal(pfor_helped(NULL), 0);
    pfor_stop(NULL);
}

/* pfor_begin() hands the loop to the helper and returns at once: the caller works
 * meanwhile, and pfor_finish() completes it; loops one chunk long, or with no helper, start
 * nothing. */
static void test_pfor__begin_then_finish(void **state)
{
    (void)state;
    struct pfor *p = pfor_start();
    assert_non_null(p);
    for (int loop = 0; loop < 200; loop++) {
        size_t n = (size_t)(loop * 53 % 3000) + 40;
        atomic_uint *hits = calloc(n, sizeof(*hits));
        assert_non_null(hits);
        struct count c = {hits, 0};
        assert_true(pfor_begin(p, n, 8, count_range, &c));
        if (loop % 2)
            uv_sleep(1); /* the caller busy elsewhere: the helper may do it all */
        pfor_finish(p);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(atomic_load(&hits[i]), 1);
        free(hits);
    }
    /* 100 ms of work: the helper starts on it without the caller (who waits up to 10 s
     * for a first index done, on a loaded machine). */
    atomic_uint hits[100] = {0};
    struct count c = {hits, 1};
    size_t before = pfor_helped(p);
    assert_true(pfor_begin(p, 100, 1, count_range, &c));
    size_t done = 0;
    for (int t = 0; t < 1000 && done == 0; t++) {
        uv_sleep(10);
        for (size_t i = 0; i < 100; i++)
            done += atomic_load(&hits[i]);
    }
    assert_true(done > 0);
    pfor_finish(p);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(atomic_load(&hits[i]), 1);
    assert_true(pfor_helped(p) > before);
    assert_false(pfor_begin(p, 8, 8, count_range, &c)); /* one chunk */
    pfor_stop(p);
    assert_false(pfor_begin(NULL, 1000, 8, count_range, &c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pfor__every_index_once),
        cmocka_unit_test(test_pfor__begin_then_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
