/* Tests of the journal: what a restart reads back, a torn last record, events pending
 * delivery, the lock, the agent name and compaction. */
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
#include "hash.h"
#include "journal.h"
#include "testutil.h"

/* What the journal says of itself now. */
static struct journal_info info(const struct journal *j)
{
    struct journal_info i;
    journal_info(j, &i);
    return i;
}

static void open_ok(struct journal **j, const char *dir, const char *agent)
{
    char reason[256];
    const char *roots[] = {"/data", "/data2/visit"};
    int rc = journal_open(j, dir, agent, roots, 2, reason, sizeof(reason));
    if (rc != 0)
        fail_msg("journal_open: %s", reason);
}

static void test_journal__restart_reads_back_entities_files_and_seq(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    assert_true(b > 1700000000ull * 1000000u); /* a new stream starts at the clock in µs */
    assert_int_equal(info(j).delivered, b);
    assert_int_equal(journal_event(j, b + 1, 11, 101, "{\"seq\":1}"), 0);
    assert_int_equal(journal_event(j, b + 2, 12, 102, "{\"seq\":2}"), 0);
    assert_int_equal(journal_event(j, b + 3, 11, 103, "{\"seq\":3}"), 0);
    struct journal_file *f = journal_file_get(j, "/data/x/File\twith tab.xml");
    assert_non_null(f);
    f->size = 42;
    f->mtime_sec = 1700000000;
    f->mtime_nsec = 123;
    f->hash = 0xabcdef;
    f->state = JFILE_DONE;
    assert_int_equal(journal_file_note(j, f), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 3), 0);
    assert_int_equal(journal_close(j), 0);

    open_ok(&j, dir, "a");
    /* The next run goes on above: at the clock, which has moved on by more than 3 µs. */
    assert_true(info(j).last_seq > b + 3);
    assert_int_equal(info(j).delivered, info(j).last_seq);
    assert_int_equal(info(j).npending, 0);
    assert_true(journal_entity_same(j, 11, 103)); /* the later event wins */
    assert_false(journal_entity_same(j, 11, 101));
    assert_true(journal_entity_same(j, 12, 102));
    f = journal_file_find(j, "/data/x/File\twith tab.xml");
    assert_non_null(f);
    assert_int_equal(f->size, 42);
    assert_int_equal(f->mtime_sec, 1700000000);
    assert_int_equal(f->mtime_nsec, 123);
    assert_int_equal(f->hash, 0xabcdef);
    assert_false(f->seen);
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

static void test_journal__undelivered_events_come_back_pending(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    assert_int_equal(journal_event(j, b + 1, 1, 1, "one"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 1), 0);
    assert_int_equal(journal_event(j, b + 2, 2, 2, "two"), 0);
    assert_int_equal(journal_event(j, b + 3, 3, 3, "three"), 0);
    assert_int_equal(journal_commit(j), 0);
    /* Killed here: 2 and 3 were journaled, never marked delivered. */
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a");
    assert_int_equal(info(j).npending, 2);
    assert_int_equal(info(j).pending[0].seq, b + 2);
    assert_true(info(j).last_seq > b + 3);
    assert_true(info(j).delivered < info(j).last_seq); /* b + 2 and b + 3 are not delivered */
    assert_string_equal(info(j).pending[0].line, "two");
    assert_string_equal(info(j).pending[1].line, "three");
    assert_int_equal(journal_close(j), 0);
    /* Compaction kept them: still pending after another restart. */
    open_ok(&j, dir, "a");
    assert_int_equal(info(j).npending, 2);
    assert_int_equal(info(j).pending[1].seq, b + 3);
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

static void test_journal__torn_last_record_is_dropped(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    assert_int_equal(journal_event(j, b + 1, 1, 1, "one"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_close(j), 0);
    char *path = tu_path(dir, "journal");
    FILE *fp = fopen(path, "ab"); /* binary: records end in \n alone, as the journal writes them */
    assert_non_null(fp);
    fputs("E\t2\t0000000000000002\t00000000000", fp); /* a write cut by a kill */
    fclose(fp);
    open_ok(&j, dir, "a");
    assert_true(info(j).last_seq > b + 1);
    assert_true(journal_entity_same(j, 1, 1));
    assert_false(journal_entity_same(j, 2, 0));
    assert_int_equal(info(j).npending, 1); /* b + 1 was never marked delivered */
    assert_int_equal(journal_close(j), 0);
    free(path);
    tu_rmtree(dir);
}

static void test_journal__one_agent_per_directory(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL, *k = NULL;
    char reason[256];
    open_ok(&j, dir, "a");
    assert_int_equal(journal_open(&k, dir, "a", NULL, 0, reason, sizeof(reason)), -EM_ESTATE);
    assert_non_null(strstr(reason, "in use"));
    journal_close(k);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(journal_open(&k, dir, "b", NULL, 0, reason, sizeof(reason)), -EM_ESTATE);
    assert_non_null(strstr(reason, "belongs to agent 'a'"));
    journal_close(k);
    tu_rmtree(dir);
}

/* A journal that is damaged (not a journal, unreadable records), truncated or deleted
 * never makes seq go back, and a damaged one is set aside and forgotten whole, so that
 * every entity is emitted again rather than some skipped. */
static void test_journal__damage_never_regresses_seq(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    char *path = tu_path(dir, "journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    for (uint64_t i = 1; i <= 100; i++)
        assert_int_equal(journal_event(j, b + i, i, i, "x"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 100), 0);
    assert_int_equal(journal_close(j), 0);

    /* Truncated to its header: the records of the 100 events are gone. */
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    char head[256];
    assert_non_null(fgets(head, sizeof(head), fp));
    fclose(fp);
    assert_int_equal(tu_truncate(path, (long long)strlen(head)), 0);
    open_ok(&j, dir, "a");
    assert_true(info(j).last_seq > b + 100);
    assert_false(journal_entity_same(j, 1, 1)); /* emitted again */
    uint64_t c = info(j).last_seq;
    assert_int_equal(journal_event(j, c + 1, 7, 7, "y"), 0);
    assert_int_equal(journal_close(j), 0);

    /* Unreadable records: set aside, forgotten whole. */
    fp = fopen(path, "ab");
    assert_non_null(fp);
    fputs("K\tnot-hex\t12\n", fp);
    fclose(fp);
    open_ok(&j, dir, "a");
    assert_true(info(j).last_seq > c + 1);
    assert_false(journal_entity_same(j, 7, 7));
    assert_int_equal(info(j).npending, 0);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(tu_count_suffix(dir, "journal.damaged-", ""), 1);

    /* Not a journal at all, then deleted: a new one, seq still above. */
    assert_int_equal(tu_write(path, "hello\n", 6), 0);
    open_ok(&j, dir, "a");
    uint64_t d = info(j).last_seq;
    assert_true(d > c + 1);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(unlink(path), 0);
    open_ok(&j, dir, "a");
    assert_true(info(j).last_seq > d);
    assert_int_equal(journal_close(j), 0);
    free(path);
    tu_rmtree(dir);
}

/* Numbers in records are read exactly up to 2^64 - 1 and a record past it is damage: no
 * silent wraparound. */
static void test_journal__numbers_at_their_limits(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-limits");
    char *path = tu_path(dir, "journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    assert_int_equal(journal_close(j), 0);
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    fputs("K\tffffffffffffffff\tFFFFFFFFFFFFFFFE\n", fp);
    fputs("F\t0\t18446744073709551615\t-9223372036854775808\t0\t0\t/data/big.xml\n", fp);
    fclose(fp);
    open_ok(&j, dir, "a");
    assert_true(journal_entity_same(j, UINT64_MAX, UINT64_MAX - 1));
    const struct journal_file *f = journal_file_find(j, "/data/big.xml");
    assert_non_null(f);
    assert_true(f->size == UINT64_MAX && f->mtime_sec == INT64_MIN);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(tu_count_suffix(dir, "journal.damaged-", ""), 0);
    const char *over[] = {"K\t10000000000000000\t1\n",
                          "F\t0\t18446744073709551616\t0\t0\t0\t/data/x.xml\n",
                          "F\t0\t1\t9223372036854775808\t0\t0\t/data/x.xml\n"};
    for (size_t i = 0; i < 3; i++) {
        fp = fopen(path, "ab");
        assert_non_null(fp);
        fputs(over[i], fp);
        fclose(fp);
        open_ok(&j, dir, "a");
        assert_int_equal(info(j).entities, 0); /* set aside: a new, empty journal */
        assert_int_equal(journal_close(j), 0);
        assert_int_equal(tu_count_suffix(dir, "journal.damaged-", ""), (int)i + 1);
    }
    free(path);
    tu_rmtree(dir);
}

/* While compaction is held (a walk runs), the journal grows past the threshold untouched;
 * the first commit after the hold is released compacts it. */
static void test_journal__held_compaction_waits(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-hold");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq, before = info(j).compacted;
    char line[512];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    journal_hold_compaction(j, true);
    for (uint64_t seq = b + 1; seq <= b + 160000; seq++) { /* about 85 MB */
        assert_int_equal(journal_event(j, seq, seq % 1000 + 1, seq, line), 0);
        if ((seq - b) % 1000 == 0) {
            assert_int_equal(journal_commit(j), 0);
            assert_int_equal(journal_delivered(j, seq), 0);
            assert_int_equal(journal_commit(j), 0);
        }
    }
    assert_true(info(j).bytes > (80u << 20));
    assert_int_equal(info(j).compacted, before);
    journal_hold_compaction(j, false);
    assert_int_equal(journal_commit(j), 0);
    assert_true(info(j).bytes < 100000); /* 1000 entity records and a header */
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

static void test_journal__compaction_keeps_state_and_shrinks(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    char line[512];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    /* 300k events of 500 bytes: well past the 64 MiB compaction threshold. */
    for (uint64_t seq = b + 1; seq <= b + 300000; seq++) {
        assert_int_equal(journal_event(j, seq, seq % 1000 + 1, seq, line), 0);
        if ((seq - b) % 1000 == 0) {
            assert_int_equal(journal_commit(j), 0);
            assert_int_equal(journal_delivered(j, seq), 0);
            assert_int_equal(journal_commit(j), 0);
        }
    }
    assert_true(info(j).compacted > 0);
    assert_true(info(j).bytes < (100u << 20));
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a");
    assert_true(info(j).last_seq >= b + 300000);
    assert_int_equal(info(j).entities, 1000);
    assert_true(journal_entity_same(j, (b + 300000) % 1000 + 1, b + 300000));
    assert_true(info(j).bytes < 100000); /* 1000 entity records and a header */
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

/* Restarts that change nothing append a start record each and never rewrite the journal
 * (a visit's is 140 MB): each reads it back as compact, until many such records gather. */
static void test_journal__restarts_do_not_rewrite_a_compact_journal(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    assert_int_equal(journal_event(j, b + 1, 11, 101, "{}"), 0);
    struct journal_file *f = journal_file_get(j, "/data/x/a.xml");
    assert_non_null(f);
    f->size = 1;
    assert_int_equal(journal_file_note(j, f), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 1), 0);
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a"); /* compacts: an event line was in it */
    assert_false(info(j).loaded_compact);
    assert_int_equal(journal_close(j), 0);
    /* Compaction leaves one S record: each start appends another, so an appending start
     * makes the file grow and a rewrite makes it shrink back. */
    char *path = tu_path(dir, "journal");
    size_t len;
    char *text = tu_read(path, &len);
    assert_non_null(text);
    free(text);
    size_t before = len;
    for (int run = 0; run < 300; run++) {
        open_ok(&j, dir, "a");
        assert_true(journal_file_find(j, "/data/x/a.xml") != NULL);
        assert_true(journal_entity_same(j, 11, 101));
        bool compact = info(j).loaded_compact;
        assert_int_equal(journal_close(j), 0);
        assert_non_null(text = tu_read(path, &len));
        free(text);
        if (!compact) { /* rewritten once the start records pass the limit */
            assert_true(run > 200);
            assert_true(len < before);
            break;
        }
        assert_true(len > before); /* appended to, not rewritten */
        before = len;
        assert_true(run < 299);
    }
    free(path);
    tu_rmtree(dir);
}

/* Compaction writes the file records of a directory together, whatever order they came
 * in; lookups through a directory cache find the same records as without it, also across
 * directories, and none once the journal forgot its files. */
static void test_journal__records_grouped_by_directory_and_cached_lookups(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    const char *dirs[] = {"/data/s/A/", "/data/s/B/", "/elsewhere/C/", "/data2/visit/D/"};
    char path[128];
    for (int i = 0; i < 40; i++) { /* the directories interleaved */
        snprintf(path, sizeof(path), "%sf%02d.xml", dirs[i % 4], i);
        struct journal_file *f = journal_file_get(j, path);
        assert_non_null(f);
        f->size = (uint64_t)i + 1;
        assert_int_equal(journal_file_note(j, f), 0);
    }
    assert_int_equal(journal_event(j, b + 1, 11, 101, "{}"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 1), 0);
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a"); /* compacts: an event line was in it */
    assert_int_equal(journal_close(j), 0);
    char *jpath = tu_path(dir, "journal");
    size_t len;
    char *text = tu_read(jpath, &len);
    assert_non_null(text);
    /* Each directory's records in one run: a directory never comes back once left. */
    int runs = 0, last = -1, seen[4] = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != 'F')
            continue;
        int d = -1;
        for (int k = 0; k < 4; k++) {
            const char *rel = dirs[k];
            if (k < 2)
                rel += strlen("/data/"); /* under the root /data: kept relative */
            else if (k == 3)
                rel += strlen("/data2/visit/");
            if (strstr(line, rel))
                d = k;
        }
        assert_true(d >= 0);
        if (d != last) {
            assert_int_equal(seen[d], 0);
            seen[d] = 1;
            runs++;
            last = d;
        }
    }
    assert_int_equal(runs, 4);
    free(text);
    free(jpath);
    open_ok(&j, dir, "a");
    struct journal_dircache c;
    memset(&c, 0, sizeof(c));
    for (int i = 39; i >= 0; i--) { /* in another order: the cache changes directory */
        snprintf(path, sizeof(path), "%sf%02d.xml", dirs[i % 4], i);
        struct journal_file *f = journal_file_find_path_cached(j, &c, path);
        assert_non_null(f);
        assert_ptr_equal(f, journal_file_find(j, path));
        assert_int_equal(f->size, (uint64_t)i + 1);
        snprintf(path, sizeof(path), "%sf%02d.xml", dirs[(i + 1) % 4], i); /* not there */
        assert_null(journal_file_find_path_cached(j, &c, path));
        assert_null(journal_file_find(j, path));
    }
    assert_null(journal_file_find_path_cached(j, &c, "/data/s/nowhere/f00.xml"));
    assert_non_null(journal_file_find_path_cached(j, &c, "/data/s/A/f00.xml"));
    journal_forget_entities(j); /* the cached directory is not the journal's any more */
    assert_null(journal_file_find_path_cached(j, &c, "/data/s/A/f00.xml"));
    assert_non_null(journal_file_get(j, "/data/s/B/f01.xml")); /* new directories */
    assert_null(journal_file_find_path_cached(j, &c, "/data/s/A/f00.xml"));
    assert_non_null(journal_file_find_path_cached(j, &c, "/data/s/B/f01.xml"));
    journal_dircache_free(&c);
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

/* Compaction says how many file and entity records follow (N), so a load sizes its
 * tables once; a count that cannot be true (more records than the file has room for) is
 * not believed, and a journal without one (older versions) loads the same. */
static void test_journal__record_counts_are_a_hint(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = info(j).last_seq;
    assert_non_null(journal_file_get(j, "/data/x/a.xml"));
    assert_non_null(journal_file_get(j, "/data/x/b.xml"));
    assert_non_null(journal_file_get(j, "/data/y/c.xml"));
    for (int i = 0; i < 3; i++) {
        static const char *const p[] = {"/data/x/a.xml", "/data/x/b.xml", "/data/y/c.xml"};
        assert_int_equal(journal_file_note(j, journal_file_find(j, p[i])), 0);
    }
    assert_int_equal(journal_event(j, b + 1, 11, 101, "{}"), 0);
    assert_int_equal(journal_event(j, b + 2, 12, 102, "{}"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 2), 0);
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a"); /* compacts */
    assert_int_equal(journal_close(j), 0);
    char *path = tu_path(dir, "journal");
    size_t len;
    char *text = tu_read(path, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "\nN\t3\t2\n"));
    free(text);
    /* By hand: an impossible count, then none at all. */
    static const char *const bodies[] = {"N\t18446744073709551615\t99999999\n", ""};
    for (int k = 0; k < 2; k++) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf),
                         "em-agent journal 1\ta\nS\t7\t7\n%s"
                         "K\t000000000000000b\t0000000000000065\n"
                         "F\t00000000000000aa\t5\t100\t0\t0\t/data/x/a.xml\n",
                         bodies[k]);
        assert_int_equal(tu_write(path, buf, (size_t)n), 0);
        open_ok(&j, dir, "a");
        assert_true(info(j).loaded_compact);
        assert_int_equal(info(j).entities, 1);
        assert_true(journal_entity_same(j, 11, 101));
        struct journal_file *f = journal_file_find(j, "/data/x/a.xml");
        assert_non_null(f);
        assert_int_equal(f->size, 5);
        assert_null(journal_file_find(j, "/data/x/b.xml"));
        assert_int_equal(journal_close(j), 0);
    }
    free(path);
    tu_rmtree(dir);
}

static uint16_t root_of(struct journal *j, const char *path)
{
    uint16_t root = 99;
    journal_file_dir(j, journal_file_get(j, path), &root);
    return root;
}

/* Records keep their paths relative to the root they are under (absolute under none), and
 * read back the same with or without those roots; "unsee" a directory reaches exactly the
 * files below it. */
static void test_journal__paths_relative_to_roots_round_trip(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-roots");
    const char *paths[] = {"/data/S1/a.xml",       "/data/S1/sub/b.xml", "/data2/visit/S2/c.xml",
                           "/data2/visitor/d.xml", "/elsewhere/e.xml",   "/data/S10/f.xml"};
    const size_t n = sizeof(paths) / sizeof(paths[0]);
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    for (size_t i = 0; i < n; i++) {
        struct journal_file *f = journal_file_get(j, paths[i]);
        assert_non_null(f);
        f->size = 100 + i;
        f->state = JFILE_DONE;
        f->seen = true;
        assert_int_equal(journal_file_note(j, f), 0);
        char buf[256];
        assert_string_equal(journal_file_path(j, f, buf, sizeof(buf)), paths[i]);
    }
    assert_int_equal(root_of(j, "/data/S1/a.xml"), 1);
    assert_string_equal(journal_file_dir(j, journal_file_get(j, "/data/S1/a.xml"), NULL), "S1/");
    assert_string_equal(journal_file_get(j, "/data/S1/a.xml")->name, "a.xml");
    assert_int_equal(root_of(j, "/data2/visit/S2/c.xml"), 2);
    assert_int_equal(root_of(j, "/data2/visitor/d.xml"), 0); /* not under it */
    assert_string_equal(journal_file_dir(j, journal_file_get(j, "/data2/visitor/d.xml"), NULL),
                        "/data2/visitor/");
    assert_int_equal(root_of(j, "/elsewhere/e.xml"), 0);
    /* One directory record for the files of one directory. */
    assert_ptr_equal(journal_file_dir(j, journal_file_get(j, "/data/S1/a.xml"), NULL),
                     journal_file_dir(j, journal_file_get(j, "/data/S1/z.xml"), NULL));
    assert_ptr_not_equal(journal_file_dir(j, journal_file_get(j, "/data/S1/a.xml"), NULL),
                         journal_file_dir(j, journal_file_get(j, "/data/S10/f.xml"), NULL));
    /* A file in a root itself. */
    assert_string_equal(journal_file_dir(j, journal_file_get(j, "/data/top.xml"), NULL), "");
    char top[64];
    assert_string_equal(
        journal_file_path(j, journal_file_find(j, "/data/top.xml"), top, sizeof(top)),
        "/data/top.xml");
    assert_null(journal_file_find(j, "/data/S1/A.xml"));
    assert_null(journal_file_find(j, "/data/S9/a.xml")); /* a directory never seen */
    assert_int_equal(info(j).files, n + 2);
    journal_file_get(j, "/data/S1/z.xml")->seen = true;
    journal_file_get(j, "/data/top.xml")->seen = true;
    journal_files_unsee(j, "/data/S1");
    assert_true(journal_file_find(j, "/data/top.xml")->seen);
    assert_false(journal_file_find(j, "/data/S1/a.xml")->seen);
    assert_false(journal_file_find(j, "/data/S1/sub/b.xml")->seen);
    assert_true(journal_file_find(j, "/data/S10/f.xml")->seen); /* S10 is not under S1 */
    assert_true(journal_file_find(j, "/data2/visit/S2/c.xml")->seen);
    journal_files_unsee(j, "/data2/visit");
    assert_false(journal_file_find(j, "/data2/visit/S2/c.xml")->seen);
    assert_true(journal_file_find(j, "/data2/visitor/d.xml")->seen);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_close(j), 0);
    /* Read back by a run without roots: the same absolute paths. */
    char reason[256];
    assert_int_equal(journal_open(&j, dir, "a", NULL, 0, reason, sizeof(reason)), 0);
    for (size_t i = 0; i < n; i++) {
        const struct journal_file *f = journal_file_find(j, paths[i]);
        assert_non_null(f);
        assert_int_equal(f->size, 100 + i);
        uint16_t root = 9;
        journal_file_dir(j, f, &root);
        assert_int_equal(root, 0);
    }
    assert_int_equal(journal_close(j), 0);
    /* And by one with them again, after its compaction. */
    open_ok(&j, dir, "a");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(journal_file_find(j, paths[i])->size, 100 + i);
        /* Keyed as a walk keys it (its directory hashed once): the same record. */
        struct pathkey k;
        size_t dl = (size_t)(strrchr(paths[i], '/') + 1 - paths[i]);
        pathkey_init_in(&k, paths[i], dl, hash64_bytes(paths[i], dl));
        assert_ptr_equal(journal_file_find_key(j, &k), journal_file_find(j, paths[i]));
        assert_ptr_equal(journal_file_get_key(j, &k), journal_file_find(j, paths[i]));
    }
    assert_int_equal(info(j).files, n); /* no record made twice (z and top were never noted) */
    assert_int_equal(root_of(j, "/data/S1/sub/b.xml"), 1);
    journal_file_find(j, "/data/S10/f.xml")->seen = true;
    journal_file_find(j, "/data2/visit/S2/c.xml")->seen = true;
    journal_files_unsee(j, "/data"); /* a whole root */
    assert_false(journal_file_find(j, "/data/S10/f.xml")->seen);
    assert_true(journal_file_find(j, "/data2/visit/S2/c.xml")->seen);
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

/* The journal is read back a chunk at a time, by a reader thread that applies seqs and
 * entities and parses file records, and the caller, which takes the file records in.
 * Read in chunks of 64 and 100 bytes (every record is cut somewhere; a chunk often holds
 * none whole) and at once: the same files, fields, entities, seqs and pending events; a
 * torn last record is dropped either way. */
static void check_read_back(const char *dir, size_t chunk, uint64_t last_seq, size_t npending)
{
    journal_set_load_chunk(chunk);
    char reason[256];
    struct journal *j = NULL;
    if (journal_peek(&j, dir, reason, sizeof(reason)) != 0)
        fail_msg("journal_peek: %s", reason);
    assert_int_equal(info(j).files, 3000);
    assert_int_equal(info(j).entities, 2000);
    assert_int_equal(info(j).last_seq, last_seq);
    assert_int_equal(info(j).npending, npending);
    char path[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof(path), "/data/Images-Disc1/GridSquare_%d/Data/FoilHole_%d.xml",
                 i % 30, i);
        struct journal_file *f = journal_file_find(j, path);
        if (!f)
            fail_msg("chunk %zu: %s not read back", chunk, path);
        /* the later record of the file, where one was appended */
        assert_int_equal(f->size, (uint64_t)i * 7 + (i % 3 == 0 ? 1 : 0));
        assert_int_equal(f->mtime_sec, 1700000000 + i);
        assert_int_equal(f->mtime_nsec, i % 1000);
        assert_int_equal(f->hash, hash64_str(path));
        assert_int_equal(f->state, (uint8_t)(i % 3 == 0 ? JFILE_WAITING : JFILE_DONE));
    }
    for (uint64_t k = 1; k <= 2000; k++)
        assert_true(journal_entity_same(j, k, k * 31));
    assert_int_equal(journal_close(j), 0);
    journal_set_load_chunk(0);
}

static void test_journal__read_back_in_chunks_on_two_threads(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-chunks");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    char path[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof(path), "/data/Images-Disc1/GridSquare_%d/Data/FoilHole_%d.xml",
                 i % 30, i);
        struct journal_file *f = journal_file_get(j, path);
        assert_non_null(f);
        f->size = (uint64_t)i * 7;
        f->mtime_sec = 1700000000 + i;
        f->mtime_nsec = i % 1000;
        f->hash = hash64_str(path);
        f->state = JFILE_DONE;
        assert_int_equal(journal_file_note(j, f), 0);
    }
    uint64_t b = info(j).last_seq;
    for (uint64_t k = 1; k <= 2000; k++)
        assert_int_equal(journal_event(j, b + k, k, k * 31, "{\"x\":1}"), 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_delivered(j, b + 1990), 0); /* 10 stay pending */
    assert_int_equal(journal_close(j), 0);
    /* A later run appends: a third of the files changed (uncompacted records after the
     * compacted ones). */
    open_ok(&j, dir, "a");
    for (int i = 0; i < 3000; i += 3) {
        snprintf(path, sizeof(path), "/data/Images-Disc1/GridSquare_%d/Data/FoilHole_%d.xml",
                 i % 30, i);
        struct journal_file *f = journal_file_get(j, path);
        assert_non_null(f);
        f->size++;
        f->state = JFILE_WAITING;
        assert_int_equal(journal_file_note(j, f), 0);
    }
    assert_int_equal(journal_commit(j), 0);
    uint64_t last = info(j).last_seq;
    size_t pending = info(j).npending;
    assert_int_equal(pending, 10);
    char *jpath = tu_path(dir, "journal");
    /* Kept open: closing could compact the file; the records are written (committed). */
    size_t len;
    char *text = tu_read(jpath, &len);
    assert_non_null(text);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(tu_write(jpath, text, len), 0); /* as it was before the close */
    check_read_back(dir, 0, last, pending);
    check_read_back(dir, 64, last, pending);
    check_read_back(dir, 100, last, pending);
    /* A torn last record: dropped, whatever cuts it. */
    const char torn[] = "F\t0123456789abcdef\t9";
    char *longer = malloc(len + sizeof(torn));
    assert_non_null(longer);
    memcpy(longer, text, len);
    memcpy(longer + len, torn, sizeof(torn) - 1);
    assert_int_equal(tu_write(jpath, longer, len + sizeof(torn) - 1), 0);
    check_read_back(dir, 64, last, pending);
    assert_int_equal(tu_write(jpath, longer, len + sizeof(torn) - 1), 0);
    check_read_back(dir, 0, last, pending);
    free(longer);
    free(text);
    free(jpath);
    tu_rmtree(dir);
}

/* Builds a journal of `n` delivered events and `nfiles` file records, with compaction
 * held so that it is not compacted yet. Returns the base seq. */
static uint64_t fill_held(struct journal *j, uint64_t n, unsigned nfiles)
{
    uint64_t b = info(j).last_seq;
    journal_hold_compaction(j, true);
    for (uint64_t seq = b + 1; seq <= b + n; seq++) {
        assert_int_equal(journal_event(j, seq, seq % 500 + 1, seq, "{\"some\":\"event\"}"), 0);
        if ((seq - b) % 1000 == 0 || seq == b + n) {
            assert_int_equal(journal_commit(j), 0);
            assert_int_equal(journal_delivered(j, seq), 0);
        }
    }
    for (unsigned i = 0; i < nfiles; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/data/s/Data/File_%05u.xml", i);
        struct journal_file *f = journal_file_get(j, path);
        assert_non_null(f);
        f->size = 1000 + i;
        f->mtime_sec = 1700000000 + i;
        f->hash = 0x5000 + i;
        f->state = JFILE_DONE;
        assert_int_equal(journal_file_note(j, f), 0);
    }
    assert_int_equal(journal_commit(j), 0);
    return b;
}

/* At the end of a run the journal is compacted on a thread of its own while the caller
 * reads it (the snapshots are written meanwhile): the same file as journal_close() would
 * leave, read back compact with every entity and file; nothing to do when it is compact
 * already. */
static void test_journal__compaction_beside_the_caller(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-side");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t at_open = info(j).compacted;
    uint64_t b = fill_held(j, 20000, 3000);
    uint64_t grown = info(j).bytes, last = info(j).last_seq;
    assert_true(grown > 1000000);
    assert_int_equal(info(j).compacted, at_open); /* held */
    journal_compact_start(j);
    /* What the snapshot writer reads, while the compaction runs. */
    assert_int_equal(journal_last_seq(j), last);
    const struct journal_file *f = journal_file_find(j, "/data/s/Data/File_02999.xml");
    assert_non_null(f);
    assert_int_equal(f->hash, 0x5000 + 2999);
    assert_int_equal(journal_compact_join(j), 0);
    assert_true(info(j).bytes < grown / 4);
    assert_int_equal(info(j).compacted, info(j).bytes);
    /* Compact already: a second round and the close leave the file alone. */
    uint64_t size = info(j).bytes;
    journal_compact_start(j);
    assert_int_equal(journal_compact_join(j), 0);
    assert_int_equal(info(j).bytes, size);
    assert_int_equal(journal_close(j), 0);
    char *path = tu_path(dir, "journal");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, size);

    open_ok(&j, dir, "a");
    assert_true(info(j).loaded_compact);
    assert_true(info(j).last_seq >= b + 20000);
    assert_int_equal(info(j).npending, 0);
    assert_int_equal(info(j).entities, 500);
    assert_int_equal(info(j).files, 3000);
    assert_true(journal_entity_same(j, (b + 20000) % 500 + 1, b + 20000));
    f = journal_file_find(j, "/data/s/Data/File_01234.xml");
    assert_non_null(f);
    assert_int_equal(f->size, 1000 + 1234);
    assert_int_equal(f->hash, 0x5000 + 1234);
    assert_int_equal(journal_close(j), 0);
    free(path);
    tu_rmtree(dir);
}

/* A compaction on the side that fails (journal.tmp cannot be made) loses nothing: the
 * grown journal stays, is read back whole with every record, and the close does not try
 * again. */
static void test_journal__failed_side_compaction_keeps_the_journal(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-side-fail");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    uint64_t b = fill_held(j, 5000, 800);
    uint64_t grown = info(j).bytes;
    char *tmp = tu_path(dir, "journal.tmp");
    assert_int_equal(tu_mkdir(tmp), 0); /* where compaction writes: not a file */
    journal_compact_start(j);
    assert_true(journal_compact_join(j) < 0);
    assert_int_equal(info(j).bytes, grown);
    assert_int_equal(journal_close(j), 0);
    char *path = tu_path(dir, "journal");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true((uint64_t)sb.st_size >= grown);
    assert_int_equal(rmdir(tmp), 0);

    open_ok(&j, dir, "a");
    assert_false(info(j).loaded_compact);
    assert_true(info(j).last_seq >= b + 5000);
    assert_int_equal(info(j).npending, 0);
    assert_int_equal(info(j).entities, 500);
    assert_int_equal(info(j).files, 800);
    const struct journal_file *f = journal_file_find(j, "/data/s/Data/File_00799.xml");
    assert_non_null(f);
    assert_int_equal(f->hash, 0x5000 + 799);
    assert_int_equal(journal_close(j), 0);
    free(path);
    free(tmp);
    tu_rmtree(dir);
}

/* The mark test's files: FoilHole_0..199 (the first 20 changed after the mark: size
 * + 1000) and New_0..8. Notes one (size i + bump). */
static void note_marked(struct journal *j, const char *stem, int i, uint64_t bump)
{
    char path[128];
    snprintf(path, sizeof(path), "/data/Images-Disc1/GridSquare_%d/Data/%s_%d.xml", i % 7, stem, i);
    struct journal_file *f = journal_file_get(j, path);
    assert_non_null(f);
    f->size = (uint64_t)i + bump;
    f->mtime_sec = 1700000000 + i;
    f->state = JFILE_DONE;
    assert_int_equal(journal_file_note(j, f), 0);
}

/* Reads the mark test's journal back (`chunk` bytes at a time): the mark's id, and which
 * files' last records lie after it. */
static void check_marked(const char *dir, size_t chunk, uint64_t id, int changed, bool new_after)
{
    journal_set_load_chunk(chunk);
    char reason[256];
    struct journal *j = NULL;
    if (journal_peek(&j, dir, reason, sizeof(reason)) != 0)
        fail_msg("journal_peek: %s", reason);
    assert_int_equal(info(j).mark_id, id);
    assert_int_equal(info(j).files, 209);
    assert_int_equal(journal_files_after_mark(j), changed + (new_after ? 9 : 0));
    char path[128];
    for (int i = 0; i < 209; i++) {
        bool old = i < 200;
        int k = old ? i : i - 200;
        snprintf(path, sizeof(path), "/data/Images-Disc1/GridSquare_%d/Data/%s_%d.xml", k % 7,
                 old ? "FoilHole" : "New", k);
        struct journal_file *f = journal_file_find(j, path);
        if (!f)
            fail_msg("chunk %zu: %s not read back", chunk, path);
        bool after = old ? i < changed : new_after;
        if (f->after_mark != after)
            fail_msg("chunk %zu: %s: after_mark %d", chunk, path, f->after_mark);
        assert_int_equal(f->size, (uint64_t)k + (old && i < 20 ? 1000 : 0));
        assert_int_equal(f->state, JFILE_DONE);
    }
    assert_int_equal(journal_close(j), 0);
    journal_set_load_chunk(0);
}

/* A mark splits the file records in two: read back (whole, or in chunks on two threads),
 * each file says whether its last record came after the last mark; compaction keeps the
 * split; a later mark moves it; a journal without one has none. */
static void test_journal__mark_splits_files_before_and_after(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("journal-mark");
    struct journal *j = NULL;
    open_ok(&j, dir, "a");
    for (int i = 0; i < 200; i++)
        note_marked(j, "FoilHole", i, 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_files_after_mark(j), 200);
    assert_int_equal(journal_mark(j, 0x1234abcd), 0);
    assert_int_equal(journal_files_after_mark(j), 0);
    assert_int_equal(info(j).mark_id, 0x1234abcd);
    for (int i = 0; i < 20; i++) /* 20 change after the mark, 9 are new */
        note_marked(j, "FoilHole", i, 1000);
    for (int i = 0; i < 9; i++)
        note_marked(j, "New", i, 0);
    assert_int_equal(journal_commit(j), 0);
    assert_int_equal(journal_files_after_mark(j), 29);
    char *jpath = tu_path(dir, "journal");
    size_t len;
    char *text = tu_read(jpath, &len); /* appended, as a killed run leaves it */
    assert_non_null(text);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(tu_write(jpath, text, len), 0);
    free(text);
    check_marked(dir, 0, 0x1234abcd, 20, true);
    check_marked(dir, 64, 0x1234abcd, 20, true);
    check_marked(dir, 1000, 0x1234abcd, 20, true);
    /* Opening rewrites it compactly: the mark, saying that the 180 records after it lie
     * before it, those, then the 29 after it. */
    open_ok(&j, dir, "a");
    assert_int_equal(journal_files_after_mark(j), 29);
    assert_int_equal(journal_close(j), 0);
    assert_non_null(text = tu_read(jpath, &len));
    const char *m = strstr(text, "\nM\t000000001234abcd\t180\n");
    assert_non_null(m);
    assert_null(strstr(m + 1, "\nM\t"));
    size_t before = 0, after = 0;
    for (const char *p = text; (p = strstr(p, "\nF\t")); p++)
        *(p < m ? &before : &after) += 1;
    assert_int_equal(before, 0);
    assert_int_equal(after, 209);
    check_marked(dir, 0, 0x1234abcd, 20, true);
    check_marked(dir, 64, 0x1234abcd, 20, true);
    /* Cut short among the records the mark counts: the mark is not believed. */
    const char *cut = m;
    for (int k = 0; k < 100; k++)
        cut = strstr(cut + 1, "\nF\t");
    assert_int_equal(tu_write(jpath, text, (size_t)(cut - text) + 1), 0);
    char reason[256];
    assert_int_equal(journal_peek(&j, dir, reason, sizeof(reason)), 0);
    assert_int_equal(info(j).mark_id, 0);
    assert_int_equal(journal_close(j), 0);
    assert_int_equal(tu_write(jpath, text, len), 0);
    free(text);
    /* A later mark: nothing after it, until a file is noted again. */
    open_ok(&j, dir, "a");
    assert_int_equal(journal_mark(j, 0x77), 0);
    assert_int_equal(journal_close(j), 0);
    check_marked(dir, 0, 0x77, 0, false);
    open_ok(&j, dir, "a");
    struct journal_file *f = journal_file_find(j, "/data/Images-Disc1/GridSquare_3/Data/New_3.xml");
    assert_non_null(f);
    assert_int_equal(f->after_mark, 0);
    assert_int_equal(journal_file_note(j, f), 0);
    assert_int_equal(f->after_mark, 1);
    assert_int_equal(journal_file_note(j, f), 0); /* noted twice: one file after the mark */
    assert_int_equal(journal_files_after_mark(j), 1);
    assert_int_equal(journal_close(j), 0);
    journal_set_load_chunk(0);
    assert_int_equal(journal_peek(&j, dir, reason, sizeof(reason)), 0);
    assert_int_equal(info(j).mark_id, 0x77);
    assert_int_equal(journal_files_after_mark(j), 1);
    assert_int_equal(journal_close(j), 0);
    free(jpath);
    tu_rmtree(dir);
    /* Without a mark: none, and every file after "it". */
    dir = tu_tmpdir("journal-nomark");
    open_ok(&j, dir, "a");
    for (int i = 0; i < 5; i++)
        note_marked(j, "FoilHole", i, 0);
    assert_int_equal(journal_close(j), 0);
    open_ok(&j, dir, "a");
    assert_int_equal(info(j).mark_id, 0);
    assert_int_equal(journal_files_after_mark(j), 5);
    assert_int_equal(journal_close(j), 0);
    tu_rmtree(dir);
}

/* The mark at the end of a run leaves the records' flags as they are: compacted (on the
 * side thread, as at the end of a run) or only appended, the journal reads back with every
 * file before it; a file noted after it after all lies after it. */
static void test_journal__final_mark(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char *dir = tu_tmpdir("journal-final");
        struct journal *j = NULL;
        open_ok(&j, dir, "a");
        int n = round == 0 ? 2000 : 20; /* 2,000 records: enough for a compaction at the end */
        for (int i = 0; i < n; i++)
            note_marked(j, "FoilHole", i, 0);
        assert_int_equal(journal_files_after_mark(j), n);
        assert_int_equal(journal_mark_final(j, 0xf1), 0);
        assert_int_equal(journal_files_after_mark(j), 0);
        if (round == 2) /* noted after all */
            note_marked(j, "FoilHole", 7, 5);
        journal_compact_start(j);
        assert_int_equal(journal_compact_join(j), 0);
        assert_int_equal(journal_close(j), 0);
        char *jpath = tu_path(dir, "journal");
        size_t len;
        char *text = tu_read(jpath, &len);
        assert_non_null(text);
        if (round == 0) { /* compacted: the mark first, counting every record */
            char want[64];
            snprintf(want, sizeof(want), "\nM\t00000000000000f1\t%d\n", n);
            const char *m = strstr(text, want);
            assert_non_null(m);
            assert_null(strstr(text, "\nF\t") < m ? strstr(text, "\nF\t") : NULL);
        }
        free(text);
        free(jpath);
        char reason[256];
        assert_int_equal(journal_peek(&j, dir, reason, sizeof(reason)), 0);
        assert_int_equal(info(j).mark_id, 0xf1);
        assert_int_equal(info(j).files, n);
        assert_int_equal(journal_files_after_mark(j), round == 2 ? 1 : 0);
        assert_int_equal(journal_close(j), 0);
        tu_rmtree(dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal__paths_relative_to_roots_round_trip),
        cmocka_unit_test(test_journal__restart_reads_back_entities_files_and_seq),
        cmocka_unit_test(test_journal__undelivered_events_come_back_pending),
        cmocka_unit_test(test_journal__torn_last_record_is_dropped),
        cmocka_unit_test(test_journal__one_agent_per_directory),
        cmocka_unit_test(test_journal__compaction_keeps_state_and_shrinks),
        cmocka_unit_test(test_journal__held_compaction_waits),
        cmocka_unit_test(test_journal__compaction_beside_the_caller),
        cmocka_unit_test(test_journal__failed_side_compaction_keeps_the_journal),
        cmocka_unit_test(test_journal__restarts_do_not_rewrite_a_compact_journal),
        cmocka_unit_test(test_journal__records_grouped_by_directory_and_cached_lookups),
        cmocka_unit_test(test_journal__record_counts_are_a_hint),
        cmocka_unit_test(test_journal__read_back_in_chunks_on_two_threads),
        cmocka_unit_test(test_journal__numbers_at_their_limits),
        cmocka_unit_test(test_journal__damage_never_regresses_seq),
        cmocka_unit_test(test_journal__mark_splits_files_before_and_after),
        cmocka_unit_test(test_journal__final_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
