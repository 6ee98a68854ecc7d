/* Tests of the outbox: what the reader gets back from the writer, segments and their
 * deletion once confirmed, a torn last line, the confirmed seq across a reopen, a rewind
 * after a lost connection, and lines without a seq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "em_error.h"
#include "outbox.h"
#include "testutil.h"

static size_t count_segments(const char *dir)
{
    char *outbox = tu_path(dir, "outbox");
    size_t n = tu_count_suffix(outbox, "", ".jsonl");
    free(outbox);
    return n;
}

/* Appends events first..last, each line padded to about `pad` bytes. */
static void write_events(struct outbox_writer *o, uint64_t first, uint64_t last, size_t pad)
{
    char *buf = malloc((last - first + 1) * (pad + 64));
    assert_non_null(buf);
    size_t len = 0;
    for (uint64_t s = first; s <= last; s++) {
        len +=
            (size_t)sprintf(buf + len, "{\"v\":1,\"seq\":%llu,\"type\":\"micrograph\",\"pad\":\"",
                            (unsigned long long)s);
        memset(buf + len, 'x', pad);
        len += pad;
        len += (size_t)sprintf(buf + len, "\"}\n");
    }
    assert_int_equal(outbox_write(o, buf, len, first, last), 0);
    free(buf);
}

/* Reads everything there is now; returns how many, checking seqs run on from *expect. */
static size_t read_all(struct outbox_reader *r, uint64_t *expect)
{
    size_t n = 0;
    char *line;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = outbox_reader_next(r, &line, &len, &seq)) == 1) {
        assert_int_equal(seq, *expect);
        assert_int_equal(outbox_line_seq(line, len), seq);
        assert_int_equal(strlen(line), len);
        (*expect)++;
        n++;
    }
    assert_int_equal(rc, 0);
    return n;
}

static void open_writer(struct outbox_writer *o, const char *dir)
{
    char reason[256];
    int rc = outbox_open(o, dir, false, reason, sizeof(reason));
    if (rc != 0)
        fail_msg("outbox_open: %s", reason);
}

static void test_outbox__reader_gets_every_line_across_segments(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("outbox");
    struct outbox_writer o;
    open_writer(&o, dir);
    struct outbox_reader r;
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    uint64_t expect = 1;
    assert_int_equal(read_all(&r, &expect), 0); /* nothing yet */
    /* 3 batches of 1000 lines of ~3 KiB: segments of 4 MiB, so at least two. */
    for (uint64_t b = 0; b < 3; b++) {
        write_events(&o, b * 1000 + 1, b * 1000 + 1000, 3000);
        assert_int_equal(read_all(&r, &expect), 1000);
    }
    size_t nseg = count_segments(dir);
    if (nseg < 2)
        fail_msg("%zu segments", nseg);
    /* Confirming everything deletes every segment but the newest. */
    outbox_reader_confirm(&r, 3000);
    assert_int_equal(count_segments(dir), 1);
    assert_int_equal(outbox_reader_save(&r), 0);
    outbox_reader_close(&r);
    outbox_close(&o);
    /* Reopened with all confirmed: the writer clears the rest; nothing is read again. */
    open_writer(&o, dir);
    assert_int_equal(o.last_seq, 3000);
    assert_int_equal(o.confirmed, 3000);
    assert_int_equal(count_segments(dir), 0);
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    assert_int_equal(r.confirmed, 3000);
    assert_int_equal(read_all(&r, &expect), 0);
    write_events(&o, 3001, 3005, 10);
    assert_int_equal(read_all(&r, &expect), 5);
    outbox_reader_close(&r);
    outbox_close(&o);
    tu_rmtree(dir);
}

static void test_outbox__rewind_reads_again_from_the_first_unconfirmed(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("outbox");
    struct outbox_writer o;
    open_writer(&o, dir);
    write_events(&o, 1, 50, 10);
    struct outbox_reader r;
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    uint64_t expect = 1;
    assert_int_equal(read_all(&r, &expect), 50);
    outbox_reader_confirm(&r, 20);
    outbox_reader_rewind(&r); /* a lost connection: 21..50 were never confirmed */
    expect = 21;
    assert_int_equal(read_all(&r, &expect), 30);
    outbox_reader_close(&r);
    outbox_close(&o);
    tu_rmtree(dir);
}

static void test_outbox__unsaved_confirmations_are_sent_again_after_a_crash(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("outbox");
    struct outbox_writer o;
    open_writer(&o, dir);
    write_events(&o, 1, 10, 10);
    struct outbox_reader r;
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    uint64_t expect = 1;
    assert_int_equal(read_all(&r, &expect), 10);
    outbox_reader_confirm(&r, 4);
    assert_int_equal(outbox_reader_save(&r), 0);
    outbox_reader_confirm(&r, 8); /* not saved: the process dies here */
    outbox_reader_close(&r);
    outbox_close(&o);
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    assert_int_equal(r.confirmed, 4);
    expect = 5;
    assert_int_equal(read_all(&r, &expect), 6);
    outbox_reader_close(&r);
    tu_rmtree(dir);
}

static void test_outbox__torn_last_line_is_cut_on_open(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("outbox");
    struct outbox_writer o;
    open_writer(&o, dir);
    write_events(&o, 1, 3, 10);
    /* A kill in the middle of the next write. */
    char torn[] = "{\"v\":1,\"seq\":4,\"type\":\"micro";
    assert_int_equal(outbox_write(&o, torn, strlen(torn), 4, 4), 0);
    outbox_close(&o);
    open_writer(&o, dir);
    assert_int_equal(o.last_seq, 3);
    write_events(&o, 4, 6, 10);
    struct outbox_reader r;
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    uint64_t expect = 1;
    assert_int_equal(read_all(&r, &expect), 6);
    assert_int_equal(r.skipped, 0);
    outbox_reader_close(&r);
    outbox_close(&o);
    tu_rmtree(dir);
}

static void test_outbox__lines_without_a_seq_are_skipped(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("outbox");
    struct outbox_writer o;
    open_writer(&o, dir);
    char lines[] = "{\"v\":1,\"seq\":1}\nnot an event\n{\"v\":1,\"seq\":2}\n{\"seq\":x}\n"
                   "{\"v\":1, \"seq\": 3}\n";
    assert_int_equal(outbox_write(&o, lines, strlen(lines), 1, 3), 0);
    struct outbox_reader r;
    assert_int_equal(outbox_reader_open(&r, dir), 0);
    uint64_t expect = 1;
    assert_int_equal(read_all(&r, &expect), 3);
    assert_int_equal(r.skipped, 2);
    outbox_reader_close(&r);
    outbox_close(&o);
    tu_rmtree(dir);
}

static void test_outbox__line_seq(void **state)
{
    (void)state;
    const char *a = "{\"v\":1,\"seq\":1042,\"agent\":\"k\"}";
    assert_int_equal(outbox_line_seq(a, strlen(a)), 1042);
    const char *b = "{\"seq\":18446744073709551615}"; /* 20 digits: refused */
    assert_int_equal(outbox_line_seq(b, strlen(b)), 0);
    const char *c = "{\"seq\":12"; /* cut short */
    assert_int_equal(outbox_line_seq(c, strlen(c)), 0);
    assert_int_equal(outbox_line_seq("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox__reader_gets_every_line_across_segments),
        cmocka_unit_test(test_outbox__rewind_reads_again_from_the_first_unconfirmed),
        cmocka_unit_test(test_outbox__unsaved_confirmations_are_sent_again_after_a_crash),
        cmocka_unit_test(test_outbox__torn_last_line_is_cut_on_open),
        cmocka_unit_test(test_outbox__lines_without_a_seq_are_skipped),
        cmocka_unit_test(test_outbox__line_seq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
