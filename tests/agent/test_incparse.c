/* watch's per-file incremental parsing, without a loop: a micrograph written in pieces is
 * finished once, when its root element ends, with the hash of every byte; a file
 * rewritten or shrunk under its parser is parsed again from the start; an unfinished
 * file closed is reported truncated; garbage is malformed; the cap on partials holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "em_error.h"
#include "epu.h"
#include "fsio.h"
#include "hash.h"
#include "incparse.h"
#include "testutil.h"

#define MICROGRAPH                                                                                 \
    EM_TESTDATA "/visit-mini/Supervisor_20250101_100000_1_mini_EPU/Images-Disc1/GridSquare_1001/"  \
                "Data/FoilHole_2002_Data_4001_1_20250101_102200.xml"

#define OTHER                                                                                      \
    EM_TESTDATA "/visit-mini/Supervisor_20250101_100000_1_mini_EPU/Images-Disc2/GridSquare_1002/"  \
                "Data/FoilHole_2101_Data_4001_1_20250101_103000.xml"

static char *dir;
static char *content;
static size_t content_len;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir("incparse");
    content = tu_read(MICROGRAPH, &content_len);
    return dir && content && content_len > 1000 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(dir);
    free(content);
    return 0;
}

/* The key of `path` (incparse takes paths hashed once by its caller); a few at once. */
static const struct pathkey *K(const char *path)
{
    static struct pathkey keys[4];
    static unsigned next;
    struct pathkey *k = &keys[next++ % 4];
    pathkey_init(k, path);
    return k;
}

/* Writes the first n bytes of `p` to `path`, and stats it. */
static void put(const char *path, const char *p, size_t n, struct fsio_stat *st)
{
    assert_int_equal(tu_write(path, p, n), 0);
    assert_int_equal(fsio_stat(path, st), 0);
    assert_int_equal(st->size, n);
}

/* Writes the whole micrograph to `path` and feeds it closed: it must finish cleanly with
 * the hash of its bytes. */
static void finish_whole(struct incparse *ip, const char *path)
{
    struct fsio_stat st;
    struct incparse_done d;
    put(path, content, content_len, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, true, &d), 1);
    assert_int_equal(d.rc, 0);
    assert_non_null(d.doc);
    assert_int_equal(d.hash, hash64c_bytes(content, content_len));
    epu_doc_free(d.doc);
}

static void test_incparse__pieces_finish_once_when_the_root_ends(void **state)
{
    (void)state;
    struct incparse *ip = incparse_new(8);
    char *path = tu_path(dir, "FoilHole_1_Data_2_3_20250101_000000.xml");
    struct fsio_stat st;
    struct incparse_done d;
    /* Everything but the last 40 bytes (the root's end tag is among them), in 7 pieces. */
    size_t upto = content_len - 40;
    for (size_t n = upto / 7; n <= upto; n += upto / 7) {
        put(path, content, n, &st);
        assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, false, &d), 0);
        assert_true(incparse_has(ip, K(path)));
    }
    put(path, content, content_len, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, false, &d), 1);
    assert_int_equal(d.rc, 0);
    assert_non_null(d.doc);
    struct epu_doc *whole = tu_parse_file(EPU_KIND_MICROGRAPH, path); /* ids from its name */
    char *a = tu_json(d.doc), *b = tu_json(whole);
    assert_string_equal(a, b); /* the same document as one read of the whole file */
    free(a), free(b);
    epu_doc_free(whole);
    assert_int_equal(d.hash, hash64c_bytes(content, content_len));
    assert_false(incparse_has(ip, K(path)));
    assert_int_equal(incparse_count(ip), 0);
    assert_int_equal(incparse_bytes(ip), content_len); /* each byte read once */
    epu_doc_free(d.doc);
    incparse_free(ip);
    free(path);
}

static void test_incparse__rewritten_or_shrunk_files_start_again(void **state)
{
    (void)state;
    struct incparse *ip = incparse_new(8);
    char *path = tu_path(dir, "FoilHole_1_Data_2_4_20250101_000000.xml");
    struct fsio_stat st;
    struct incparse_done d;
    /* Another micrograph half fed, then this one written over it: what was fed is not a
     * prefix of the file now, so it is read again from byte 0. */
    size_t other_len;
    char *other = tu_read(OTHER, &other_len);
    assert_non_null(other);
    put(path, other, other_len / 2, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, false, &d), 0);
    finish_whole(ip, path);
    free(other);
    /* Shrunk below what was fed: again from the start. */
    put(path, content, content_len - 100, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, false, &d), 0);
    put(path, content, 500, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, false, &d), 0);
    finish_whole(ip, path);
    incparse_free(ip);
    free(path);
}

static void test_incparse__closed_unfinished_is_truncated_and_garbage_malformed(void **state)
{
    (void)state;
    struct incparse *ip = incparse_new(8);
    char *path = tu_path(dir, "FoilHole_1_Data_2_5_20250101_000000.xml");
    struct fsio_stat st;
    struct incparse_done d;
    put(path, content, content_len / 3, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, true, &d), 1);
    assert_int_equal(d.rc, -EM_ETRUNCATED);
    assert_null(d.doc);
    const char garbage[] = "<?xml version=\"1.0\"?><MicroscopeImage><a></b></MicroscopeImage>";
    put(path, garbage, sizeof(garbage) - 1, &st);
    assert_int_equal(incparse_feed(ip, K(path), EPU_KIND_MICROGRAPH, &st, true, &d), 1);
    assert_true(d.rc < 0 && d.rc != -EM_ETRUNCATED);
    assert_null(d.doc);
    assert_true(d.diag.line >= 1);
    assert_int_equal(incparse_count(ip), 0);
    incparse_free(ip);
    free(path);
}

static void test_incparse__at_most_max_partials_are_fed(void **state)
{
    (void)state;
    struct incparse *ip = incparse_new(2);
    struct fsio_stat st;
    struct incparse_done d;
    char *p[3];
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof(name), "FoilHole_1_Data_2_%d_20250101_000000.xml", 10 + i);
        p[i] = tu_path(dir, name);
        put(p[i], content, 600, &st);
        assert_int_equal(incparse_feed(ip, K(p[i]), EPU_KIND_MICROGRAPH, &st, false, &d), 0);
    }
    assert_int_equal(incparse_count(ip), 2);
    assert_true(incparse_has(ip, K(p[0])) && incparse_has(ip, K(p[1])));
    assert_false(incparse_has(ip, K(p[2]))); /* left to be read whole when it is closed */
    incparse_drop(ip, K(p[0]));
    assert_int_equal(incparse_count(ip), 1);
    /* The third, closed now, is read whole past the cap; the others are freed with ip. */
    finish_whole(ip, p[2]);
    incparse_free(ip);
    for (int i = 0; i < 3; i++)
        free(p[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incparse__pieces_finish_once_when_the_root_ends),
        cmocka_unit_test(test_incparse__rewritten_or_shrunk_files_start_again),
        cmocka_unit_test(test_incparse__closed_unfinished_is_truncated_and_garbage_malformed),
        cmocka_unit_test(test_incparse__at_most_max_partials_are_fed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
