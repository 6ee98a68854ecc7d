/* fsio: what a read says when it cannot read. A missing file is EM_ENOENT; on Windows a
 * file its writer holds open without sharing is EM_EBUSY (the watch retries it), not a
 * failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

#include "em_error.h"
#include "fsio.h"
#include "testutil.h"

static void test_fsio__read_errors(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("fsio");
    char *missing = tu_path(dir, "missing.xml"), *file = tu_path(dir, "a.xml");
    struct fsio_buf b = {0};
    int uv_err = 0;
    assert_int_equal(fsio_read(missing, 1024, &b, &uv_err), -EM_ENOENT);
    assert_int_equal(uv_err, UV_ENOENT);
    assert_int_equal(tu_write(file, "<a/>", 4), 0);
    assert_int_equal(fsio_read(file, 1024, &b, NULL), 0);
    assert_int_equal(b.len, 4);
    assert_int_equal(fsio_read(file, 2, &b, NULL), -EM_ELIMIT);
    /* The mapping the watch relies on, on every system. */
    assert_int_equal(fsio_error(UV_EBUSY), -EM_EBUSY);
    assert_int_equal(fsio_error(UV_EACCES), -EM_EACCES);
#ifdef _WIN32
    /* Held without sharing, as a writer that shares nothing holds it. */
    HANDLE h =
        CreateFileA(file, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    assert_int_equal(fsio_read(file, 1024, &b, &uv_err), -EM_EBUSY);
    assert_int_equal(uv_err, UV_EBUSY);
    CloseHandle(h);
    assert_int_equal(fsio_read(file, 1024, &b, NULL), 0);
#endif
    fsio_buf_free(&b);
    free(missing);
    free(file);
    tu_rmtree(dir);
}

/* A listing: every entry but . and .., sorted by bytes, typed; a link to a file is that
 * file, any other link is neither file nor directory (never followed); many long names
 * (past the first blocks the listing grows) come back whole. */
static void test_fsio__list_sorted_and_typed(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("fsio-list");
    enum { MANY = 300 };
    char rel[160];
    for (int i = MANY - 1; i >= 0; i--) { /* names of 100 bytes and more: several blocks */
        snprintf(rel, sizeof(rel), "FoilHole_%04d_%s.xml", i,
                 "Data_0123456789012345678901234567890123456789012345678901234567890123456789");
        char *p = tu_path(dir, rel);
        assert_int_equal(tu_write(p, "x", 1), 0);
        free(p);
    }
    char *sub = tu_path(dir, "B-dir"), *upper = tu_path(dir, "Z.xml");
    assert_int_equal(tu_mkdir(sub), 0);
    assert_int_equal(tu_write(upper, "", 0), 0);
#ifndef _WIN32
    char *lf = tu_path(dir, "link-file"), *ld = tu_path(dir, "link-dir"),
         *dangling = tu_path(dir, "link-none");
    assert_int_equal(symlink("Z.xml", lf), 0);
    assert_int_equal(symlink("B-dir", ld), 0);
    assert_int_equal(symlink("nowhere", dangling), 0);
    const size_t links = 3;
#else
    const size_t links = 0;
#endif
    struct fsio_entry *e;
    size_t n;
    assert_int_equal(fsio_list(dir, &e, &n), 0);
    assert_int_equal(n, MANY + 2 + links);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(e[i - 1].name, e[i].name) < 0);
    assert_string_equal(e[0].name, "B-dir"); /* bytes: uppercase before lowercase */
    assert_int_equal(e[0].type, FSIO_DIR);
    snprintf(rel, sizeof(rel), "FoilHole_%04d_%s.xml", 0,
             "Data_0123456789012345678901234567890123456789012345678901234567890123456789");
    assert_string_equal(e[1].name, rel);
    assert_int_equal(e[1].type, FSIO_FILE);
    assert_string_equal(e[MANY + 1].name, "Z.xml");
#ifndef _WIN32
    assert_string_equal(e[MANY + 2].name, "link-dir");
    assert_int_equal(e[MANY + 2].type, FSIO_OTHER);
    assert_string_equal(e[MANY + 3].name, "link-file");
    assert_int_equal(e[MANY + 3].type, FSIO_FILE);
    assert_string_equal(e[MANY + 4].name, "link-none");
    assert_int_equal(e[MANY + 4].type, FSIO_OTHER);
#endif
    fsio_entries_free(e, n);
    /* Empty, and missing. */
    assert_int_equal(fsio_list(sub, &e, &n), 0);
    assert_int_equal(n, 0);
    fsio_entries_free(e, n);
    char *missing = tu_path(dir, "missing");
    assert_int_equal(fsio_list(missing, &e, &n), -EM_ENOENT);
    assert_null(e);
    assert_int_equal(fsio_list(upper, &e, &n), -EM_ENOENT); /* a file: not a directory */
    free(missing), free(sub), free(upper);
#ifndef _WIN32
    assert_int_equal(unlink(lf), 0); /* before tu_rmtree, which would follow the links */
    assert_int_equal(unlink(ld), 0);
    assert_int_equal(unlink(dangling), 0);
    free(lf), free(ld), free(dangling);
#endif
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsio__read_errors),
        cmocka_unit_test(test_fsio__list_sorted_and_typed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
