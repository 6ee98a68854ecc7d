/* The recording format: SHA-256, path checks, writer/reader round trips, archives cut
 * short at every length, unknown fields and operations, and hostile archives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "em_error.h"
#include "recording.h"
#include "sha256.h"
#include "testutil.h"
#include "treestate.h"

static char tmpdir[] = "/tmp/em-test-recording-XXXXXX";

static char *tmp(const char *name)
{
    return tu_path(tmpdir, name);
}

static void test_recording__sha256_matches_the_standard_vectors(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex_bytes("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex_bytes("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex_bytes(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A million 'a' fed in uneven pieces. */
    struct sha256 s;
    sha256_init(&s);
    char a[997];
    memset(a, 'a', sizeof(a));
    size_t left = 1000000;
    for (size_t k = 1; left; k = k % 997 + 1) {
        size_t n = k < left ? k : left;
        sha256_update(&s, a, n);
        left -= n;
    }
    sha256_hex(&s, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_recording__path_check_refuses_paths_that_leave_the_tree(void **state)
{
    (void)state;
    assert_null(rec_path_check("EpuSession.dm"));
    assert_null(rec_path_check("Images-Disc1/GridSquare_1/Data/x.xml"));
    assert_null(rec_path_check("caf\xc3\xa9/..dm"));
    const char *bad[] = {"",   "/etc/passwd", "../x", "a/../../b", "a//b",     "a/./b",   "a/",
                         "..", "a\\..\\b",    "C:x",  "a\x01",     "\xff\xfe", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(rec_path_check(bad[i]));
    char deep[4 * (REC_MAX_DEPTH + 1) + 1] = "";
    for (int i = 0; i <= REC_MAX_DEPTH; i++)
        strcat(deep, i ? "/abc" : "abc");
    assert_non_null(rec_path_check(deep));
}

/* Writes a recording of one of each operation over three segments. */
static void write_sample(const char *path, bool finish)
{
    struct rec_writer *w;
    char err[256];
    struct rec_header h = {"/src", "live", "jpg", "test"};
    assert_int_equal(rec_writer_open(path, &h, false, &w, err, sizeof(err)), 0);
    unsigned char bin[300];
    for (int i = 0; i < 300; i++)
        bin[i] = (unsigned char)(i * 7);
    struct rec_op ops[] = {
        {.t = 0.0, .type = REC_MKDIR, .path = "d"},
        {.t = 0.1,
         .type = REC_CREATE,
         .path = "d/a.xml",
         .size = 5,
         .data = (const void *)"<a/>\n",
         .len = 5,
         .sha256 = "00"},
        {.t = 0.2,
         .type = REC_APPEND,
         .path = "d/a.xml",
         .offset = 5,
         .size = 300 + 5,
         .data = bin,
         .len = 300},
        {.t = 0.3,
         .type = REC_WRITE,
         .path = "d/a.xml",
         .offset = 2,
         .size = 305,
         .data = (const void *)"XY",
         .len = 2},
        {.t = 1.0,
         .type = REC_REWRITE,
         .path = "d/a.xml",
         .size = 3,
         .data = (const void *)"\r\n\0",
         .len = 3},
        {.t = 1.1, .type = REC_REWRITE, .path = "d/a.xml", .size = 3, .same = true},
        {.t = 1.2, .type = REC_TRUNCATE, .path = "d/a.xml", .size = 0},
        {.t = 1.3, .type = REC_PLACEHOLDER, .path = "d/m.jpg", .size = 1u << 30},
        {.t = 2.0, .type = REC_RENAME, .path = "d", .to = "e", .is_dir = true},
        {.t = 2.1, .type = REC_CREATE, .path = "e/empty", .size = 0, .len = 0},
        {.t = 2.2, .type = REC_DELETE, .path = "e/m.jpg"},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        assert_int_equal(rec_writer_add(w, &ops[i]), 0);
        assert_int_equal(ops[i].n, i + 1);
        if (i == 3 || i == 7)
            assert_int_equal(rec_writer_flush(w, err, sizeof(err)), 0);
    }
    struct rec_op evil = {.type = REC_CREATE, .path = "../evil", .size = 0};
    assert_int_equal(rec_writer_add(w, &evil), -EM_EINVAL);
    assert_int_equal(rec_writer_close(w, finish ? 3.0 : -1, err, sizeof(err)), 0);
}

static void test_recording__every_operation_round_trips(void **state)
{
    (void)state;
    char *path = tmp("sample.tar");
    write_sample(path, true);
    struct rec_reader *r;
    char err[256];
    assert_int_equal(rec_reader_open(path, &r, err, sizeof(err)), 0);
    assert_string_equal(rec_reader_header(r, "mode"), "live");
    assert_string_equal(rec_reader_header(r, "placeholders"), "jpg");
    struct rec_op op;
    enum rec_op_type want[] = {REC_MKDIR,   REC_CREATE,  REC_APPEND,   REC_WRITE,
                               REC_REWRITE, REC_REWRITE, REC_TRUNCATE, REC_PLACEHOLDER,
                               REC_RENAME,  REC_CREATE,  REC_DELETE,   REC_END};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(rec_reader_next(r, &op), 1);
        assert_int_equal(op.type, want[i]);
        assert_int_equal(op.n, i + 1);
        if (i == 2) {
            assert_int_equal(op.len, 300);
            assert_int_equal(op.offset, 5);
            assert_int_equal(op.data[299], (unsigned char)(299 * 7));
        }
        if (i == 4) {
            /* Bytes, not text: CR, LF and NUL survive. */
            assert_int_equal(op.len, 3);
            assert_memory_equal(op.data, "\r\n\0", 3);
        }
        if (i == 5)
            assert_true(op.same);
        if (i == 7)
            assert_int_equal(op.size, 1u << 30);
        if (i == 8) {
            assert_string_equal(op.to, "e");
            assert_true(op.is_dir);
        }
    }
    assert_int_equal(rec_reader_next(r, &op), 0);
    assert_true(rec_reader_complete(r));
    rec_reader_close(r);

    /* The final state: e/a.xml (0 bytes), e/empty; m.jpg deleted. */
    assert_int_equal(rec_reader_open(path, &r, err, sizeof(err)), 0);
    rec_reader_skip_data(r, true);
    struct treestate ts;
    treestate_init(&ts);
    while (rec_reader_next(r, &op) > 0)
        assert_int_equal(treestate_apply(&ts, &op), 0);
    uint64_t dirs, files, ph, bytes;
    treestate_count(&ts, &dirs, &files, &ph, &bytes);
    assert_int_equal(dirs, 1);
    assert_int_equal(files, 2);
    assert_int_equal(ph, 0);
    assert_int_equal(bytes, 0);
    treestate_free(&ts);
    rec_reader_close(r);

    /* Compressed copies read the same. */
    char *gz = tmp("sample.tar.gz"), *zst = tmp("sample.tar.zst");
    assert_int_equal(rec_pack(path, gz, REC_GZIP, err, sizeof(err)), 0);
    assert_int_equal(rec_pack(path, zst, REC_ZSTD, err, sizeof(err)), 0);
    const char *packed[] = {gz, zst};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(rec_reader_open(packed[k], &r, err, sizeof(err)), 0);
        int n = 0;
        while (rec_reader_next(r, &op) > 0)
            n++;
        assert_int_equal(n, 12);
        assert_true(rec_reader_complete(r));
        assert_string_equal(rec_reader_compression(r), k == 0 ? "gzip" : "zstd");
        rec_reader_close(r);
    }
    free(gz);
    free(zst);
    free(path);
}

/* A recorder killed at any moment leaves a prefix: every cut of the archive reads back
 * a prefix of the operations, each with all its data, and never an error. */
static void test_recording__an_archive_cut_anywhere_reads_back_a_prefix(void **state)
{
    (void)state;
    char *path = tmp("cut-src.tar"), *cut = tmp("cut.tar");
    write_sample(path, false);
    size_t len;
    char *whole = tu_read(path, &len);
    assert_non_null(whole);
    int last = -1;
    for (size_t at = 512; at <= len; at += 97) {
        assert_int_equal(tu_write(cut, whole, at), 0);
        struct rec_reader *r;
        char err[256];
        if (rec_reader_open(cut, &r, err, sizeof(err)) < 0)
            continue; /* not even the first segment */
        struct rec_op op;
        int n = 0, rc;
        while ((rc = rec_reader_next(r, &op)) > 0) {
            n++;
            if (op.type == REC_APPEND)
                assert_int_equal(op.len, 300);
        }
        assert_int_equal(rc, 0);
        assert_false(rec_reader_complete(r));
        assert_true(n >= last); /* more bytes never give fewer operations */
        last = n;
        rec_reader_close(r);
    }
    assert_int_equal(last, 11);
    free(whole);
    free(path);
    free(cut);
}

struct entry {
    const char *name;
    const char *body; /* NULL with link: a symbolic link */
    const char *link;
};

static void make_archive(const char *path, const struct entry *e, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        if (e[i].link) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].link);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)strlen(e[i].body));
        }
        archive_entry_set_perm(ae, 0644);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (!e[i].link)
            archive_write_data(a, e[i].body, strlen(e[i].body));
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
}

#define HEADER                                                                                     \
    "{\"format\":\"em-fsrecording\",\"version\":1,\"mode\":\"live\",\"from\":\"future\"}\n"

static void test_recording__unknown_fields_and_operations_are_skipped(void **state)
{
    (void)state;
    char *path = tmp("future.tar");
    struct entry e[] = {
        {"manifest/00000001.jsonl",
         HEADER "{\"n\":1,\"t\":0,\"op\":\"mkdir\",\"path\":\"d\",\"owner\":\"epu\"}\n"
                "{\"n\":2,\"t\":0.5,\"op\":\"chmod\",\"path\":\"d\",\"len\":3,\"mode\":7}\n"
                "{\"n\":3,\"t\":1,\"op\":\"create\",\"path\":\"d/x\",\"len\":2,\"size\":2,"
                "\"xattr\":{\"a\":1}}\n",
         NULL},
        {"data/2", "abc", NULL},
        {"data/3", "hi", NULL},
    };
    make_archive(path, e, 3);
    struct rec_reader *r;
    char err[256];
    assert_int_equal(rec_reader_open(path, &r, err, sizeof(err)), 0);
    struct rec_op op;
    assert_int_equal(rec_reader_next(r, &op), 1);
    assert_int_equal(op.type, REC_MKDIR);
    assert_int_equal(rec_reader_next(r, &op), 1);
    assert_int_equal(op.type, REC_UNKNOWN);
    assert_int_equal(rec_reader_next(r, &op), 1);
    assert_int_equal(op.type, REC_CREATE);
    assert_memory_equal(op.data, "hi", 2);
    assert_int_equal(rec_reader_next(r, &op), 0);
    assert_false(rec_reader_complete(r));
    rec_reader_close(r);
    free(path);
}

static int read_all(const char *path, char *err, size_t errlen)
{
    struct rec_reader *r;
    int rc = rec_reader_open(path, &r, err, errlen);
    if (rc < 0)
        return rc;
    struct rec_op op;
    while ((rc = rec_reader_next(r, &op)) > 0)
        ;
    if (rc < 0)
        snprintf(err, errlen, "%s", rec_reader_error(r));
    rec_reader_close(r);
    return rc;
}

static void test_recording__hostile_archives_are_refused(void **state)
{
    (void)state;
    char *path = tmp("hostile.tar");
    char err[256];
    const char *lines[] = {
        "{\"n\":1,\"t\":0,\"op\":\"create\",\"path\":\"../escape\",\"len\":0,\"size\":0}\n",
        "{\"n\":1,\"t\":0,\"op\":\"create\",\"path\":\"/etc/cron.d/x\",\"len\":0,\"size\":0}\n",
        "{\"n\":1,\"t\":0,\"op\":\"rename\",\"path\":\"a\",\"to\":\"a/../../b\"}\n",
        "{\"n\":1,\"t\":0,\"op\":\"create\",\"path\":\"a\",\"len\":-5,\"size\":0}\n",
        "{\"n\":1,\"t\":0,\"op\":\"placeholder\",\"path\":\"a\",\"size\":1e300}\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body), "%s%s", HEADER, lines[i]);
        struct entry e[] = {{"manifest/00000001.jsonl", body, NULL}};
        make_archive(path, e, 1);
        int rc = read_all(path, err, sizeof(err));
        /* Paths are hostile; impossible numbers are refused too. */
        assert_true(i < 3 ? rc == -EM_EHOSTILE : rc < 0);
    }
    /* A symbolic link entry in the archive itself. */
    struct entry link[] = {{"manifest/00000001.jsonl",
                            HEADER "{\"n\":1,\"t\":0,\"op\":\"create\",\"path\":\"x\",\"len\":4,"
                                   "\"size\":4}\n",
                            NULL},
                           {"data/1", NULL, "/etc/passwd"}};
    make_archive(path, link, 2);
    assert_int_equal(read_all(path, err, sizeof(err)), -EM_EHOSTILE);
    /* Data that is not the operation's. */
    struct entry wrong[] = {{"manifest/00000001.jsonl",
                             HEADER "{\"n\":1,\"t\":0,\"op\":\"create\",\"path\":\"x\",\"len\":4,"
                                    "\"size\":4}\n",
                             NULL},
                            {"data/9", "abcd", NULL}};
    make_archive(path, wrong, 2);
    assert_int_equal(read_all(path, err, sizeof(err)), -EM_EMALFORMED);
    /* Not a recording at all, or from a newer format. */
    struct entry other[] = {{"etc/passwd", "root:x:0:0", NULL}};
    make_archive(path, other, 1);
    assert_int_equal(read_all(path, err, sizeof(err)), -EM_EMALFORMED);
    struct entry newer[] = {
        {"manifest/00000001.jsonl", "{\"format\":\"em-fsrecording\",\"version\":2}\n", NULL}};
    make_archive(path, newer, 1);
    assert_int_equal(read_all(path, err, sizeof(err)), -EM_EMALFORMED);
    assert_non_null(strstr(err, "version 2"));
    free(path);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recording__sha256_matches_the_standard_vectors),
        cmocka_unit_test(test_recording__path_check_refuses_paths_that_leave_the_tree),
        cmocka_unit_test(test_recording__every_operation_round_trips),
        cmocka_unit_test(test_recording__an_archive_cut_anywhere_reads_back_a_prefix),
        cmocka_unit_test(test_recording__unknown_fields_and_operations_are_skipped),
        cmocka_unit_test(test_recording__hostile_archives_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
