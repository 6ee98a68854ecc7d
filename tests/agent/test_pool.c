/* The parse pool hands jobs over in the source's order whatever the thread count, asks
 * the source only as the window moves, passes markers through, and reports a source
 * failure after the jobs before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_arena.h"
#include "em_error.h"
#include "pool.h"
#include "testutil.h"

#define VISIT EM_TESTDATA "/visit-mini"

struct src {
    const char *const *rels;
    size_t n, next;
    size_t fail_at;   /* 0: never */
    size_t max_ahead; /* most jobs produced beyond those consumed */
    const atomic_size_t *consumed;
};

static int produce(void *ctx, struct pool_job *job)
{
    struct src *s = ctx;
    size_t done = atomic_load(s->consumed);
    if (s->next - done > s->max_ahead)
        s->max_ahead = s->next - done;
    if (s->fail_at && s->next + 1 == s->fail_at)
        return -EM_EIO;
    if (s->next >= s->n)
        return 0;
    size_t i = s->next++;
    if (i % 3 == 0) { /* a marker every third job */
        job->kind = EPU_KIND_NONE;
        job->tag = (void *)(uintptr_t)(i + 1);
        return 1;
    }
    job->path = tu_path(VISIT, s->rels[i % 2]);
    job->rel_off = strlen(VISIT) + 1;
    job->kind = EPU_KIND_SESSION;
    job->tag = (void *)(uintptr_t)(i + 1);
    return 1;
}

static const char *const rels[] = {"Supervisor_20250101_100000_1_mini_EPU/EpuSession.dm",
                                   "no/such/file.dm"};

static void run(unsigned threads, size_t window, size_t n, size_t fail_at)
{
    atomic_size_t consumed;
    atomic_init(&consumed, 0);
    struct src s = {.rels = rels, .n = n, .fail_at = fail_at, .consumed = &consumed};
    struct pool *p = pool_start(produce, &s, threads, window);
    assert_non_null(p);
    struct pool_job j;
    int rc;
    while ((rc = pool_next(p, &j)) == 1) {
        assert_int_equal((uintptr_t)j.tag, consumed + 1);
        if (consumed % 3 == 0) {
            assert_int_equal(j.kind, EPU_KIND_NONE);
            assert_null(j.path);
        } else if (consumed % 2 == 0) {
            assert_int_equal(j.rc, 0);
            assert_non_null(j.doc);
            assert_string_equal(j.path + j.rel_off, rels[0]);
        } else {
            assert_int_equal(j.rc, -EM_ENOENT);
            assert_true(j.read_failed);
            assert_null(j.doc);
        }
        pool_job_clear(&j);
        consumed++;
        assert_int_equal(pool_done(p), consumed);
    }
    pool_free(p);
    if (fail_at) {
        assert_int_equal(rc, -EM_EIO);
        assert_int_equal(consumed, fail_at - 1);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(consumed, n);
    }
    /* The source never ran more than a window ahead of the consumer. */
    assert_true(s.max_ahead <= window);
}

static void test_pool__order_and_window(void **state)
{
    (void)state;
    for (unsigned t = 1; t <= 4; t++) {
        run(t, 1, 50, 0);
        run(t, 8, 200, 0);
        run(t, 128, 300, 0);
    }
}

static void test_pool__source_failure(void **state)
{
    (void)state;
    run(2, 8, 100, 40);
    run(1, 1, 100, 1);
}

static void test_pool__free_with_jobs_left(void **state)
{
    (void)state;
    atomic_size_t consumed;
    atomic_init(&consumed, 0);
    struct src s = {.rels = rels, .n = 1000, .consumed = &consumed};
    struct pool *p = pool_start(produce, &s, 2, 16);
    struct pool_job j;
    assert_int_equal(pool_next(p, &j), 1);
    pool_job_clear(&j);
    pool_free(p); /* jobs claimed and not taken are freed (ASan's leak check sees it) */
}

/* With pool_collect_frees(), the documents the consumer frees go back to the worker that
 * parsed them, which frees them when it takes its next job; what is left at the end is
 * freed by pool_free() (ASan's leak check sees the rest). */
static void test_pool__frees_handed_back_to_their_worker(void **state)
{
    (void)state;
    for (unsigned t = 1; t <= 3; t++) {
        atomic_size_t consumed;
        atomic_init(&consumed, 0);
        struct src s = {.rels = rels, .n = 300, .consumed = &consumed};
        struct pool *p = pool_start(produce, &s, t, 8);
        assert_non_null(p);
        pool_collect_frees(p);
        struct pool_job j;
        size_t docs = 0;
        while (pool_next(p, &j) == 1) {
            docs += j.doc != NULL;
            if (j.kind != EPU_KIND_NONE)
                assert_int_not_equal(j.owner, 0); /* a worker's */
            pool_job_done(p, &j);
            assert_null(j.path);
            consumed++;
        }
        assert_int_equal(docs, 100); /* jobs 2, 8, 14, ...: the session file parsed */
        /* Every worker kept taking jobs after the consumer's first frees, so some came
         * back (a document is at least one chunk, and its path a block). */
        assert_true(pool_freed_by_owner(p) > 0);
        pool_free(p);
        /* The thread collects no more: a chunk freed now is freed at once. */
        struct em_arena a;
        em_arena_init(&a, 0);
        assert_non_null(em_arena_alloc(&a, 100));
        em_arena_free(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool__order_and_window),
        cmocka_unit_test(test_pool__source_failure),
        cmocka_unit_test(test_pool__free_with_jobs_left),
        cmocka_unit_test(test_pool__frees_handed_back_to_their_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
