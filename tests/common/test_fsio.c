/* fsio: what a read says when it cannot read. A missing file is EM_ENOENT; on Windows a
 * file its writer holds open without sharing is EM_EBUSY (the watch retries it), not a
 * failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#ifdef _WIN32
#include <windows.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsio__read_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
