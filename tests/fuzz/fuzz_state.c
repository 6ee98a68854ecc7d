/* Fuzz targets for what the agent reads back from its state directory and what fsrecorder
 * reads from a recording: FUZZ_STATE picks one at build time.
 *   1 journal     journal_peek() of a journal holding the input
 *   2 outbox      outbox_count_waiting() and a reader over a segment holding the input
 *   3 recording   rec_reader_open() and every operation of a recording holding the input
 *   4 snapshot    model_restore() of a model snapshot (read from memory)
 * These read files, so each input is written to a scratch directory first (on tmpfs when
 * there is one). Beyond "no crash, no leak", counts must be consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <direct.h>
#include <process.h>
#define make_dir(p) _mkdir(p)
#define remove_dir(p) _rmdir(p)
#else
#include <unistd.h>
#define make_dir(p) mkdir(p, 0700)
#define remove_dir(p) rmdir(p)
#endif

#include "log.h"

#if FUZZ_STATE == 1
#include "journal.h"
#elif FUZZ_STATE == 2
#include "outbox.h"
#elif FUZZ_STATE == 3
#include "recording.h"
#elif FUZZ_STATE == 4
#include "model.h"
#else
#error "FUZZ_STATE must be 1, 2, 3 or 4"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[256];

#if FUZZ_STATE == 4
static int snap_emit(void *ctx, enum wire_type type, cJSON *key, cJSON *data, const char *source,
                     const struct fsio_stat *st)
{
    (void)ctx, (void)type, (void)source, (void)st;
    cJSON_Delete(key);
    cJSON_Delete(data);
    return 0;
}

/* No file is there: session and atlas records fail to restore, the rest is read. */
static struct epu_doc *snap_load(void *ctx, const char *rel, enum epu_kind kind,
                                 struct fsio_stat *st)
{
    (void)ctx, (void)rel, (void)kind, (void)st;
    return NULL;
}

static const char *snap_path(void *ctx, const char *rel)
{
    (void)ctx;
    return rel;
}
#endif

static void put(const char *rel, const uint8_t *data, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", scratch, rel);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
}

/* Removes the scratch directory at exit (the inputs' files are known by name). */
static void cleanup(void)
{
    static const char *const names[] = {"journal",
                                        "journal.tmp",
                                        "lock",
                                        "lock.pid",
                                        "snapshot",
                                        "rec.tar",
                                        "outbox/00000000000000000001.jsonl",
                                        "outbox/00000000000000000009.jsonl",
                                        "outbox/confirmed",
                                        "outbox"};
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
        if (remove(path) != 0)
            remove_dir(path); /* msvcrt's remove() takes files only */
    }
    remove_dir(scratch);
}

static void setup(void)
{
#ifdef _WIN32
    const char *base = getenv("TEMP") ? getenv("TEMP") : ".";
    const char *null_dev = "NUL";
#else
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const char *null_dev = "/dev/null";
#endif
    /* A directory of its own: process ids are reused (quickly under wine), and a run
     * killed before its cleanup leaves its directory behind. */
    int n = 0;
    do
        snprintf(scratch, sizeof(scratch), "%s/em-fuzz-%d-%d", base, (int)getpid(), n);
    while (make_dir(scratch) != 0 && ++n < 1000);
    char outbox[512];
    snprintf(outbox, sizeof(outbox), "%s/outbox", scratch);
    if (n == 1000 || make_dir(outbox) != 0)
        abort();
    em_log_setup(EM_LOG_ERROR, EM_LOG_TEXT);
    em_log_open(null_dev); /* the readers say what they skip; not here */
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0])
        setup();
#if FUZZ_STATE == 1
    put("journal", data, size);
    /* Read at once (on one thread) and in chunks of 16 bytes (a reader thread beside the
     * caller, records cut everywhere): the same state either way. */
    struct journal_info seen[2];
    size_t after[2] = {0, 0}; /* files after the mark */
    int rcs[2];
    for (int pass = 0; pass < 2; pass++) {
        journal_set_load_chunk(pass ? 16 : 0);
        struct journal *j;
        char reason[256];
        memset(&seen[pass], 0, sizeof(seen[pass]));
        rcs[pass] = journal_peek(&j, scratch, reason, sizeof(reason));
        if (rcs[pass] == 0) {
            struct journal_info ji;
            journal_info(j, &ji);
            if (ji.delivered > ji.last_seq && ji.npending)
                abort(); /* pending events are those after the delivered mark */
            (void)journal_live_entities(j);
            seen[pass] = ji;
            after[pass] = journal_files_after_mark(j);
            if (after[pass] > ji.files)
                abort();
        }
        journal_close(j);
    }
    journal_set_load_chunk(0);
    if (rcs[0] != rcs[1] || seen[0].files != seen[1].files ||
        seen[0].entities != seen[1].entities || seen[0].last_seq != seen[1].last_seq ||
        seen[0].delivered != seen[1].delivered || seen[0].npending != seen[1].npending ||
        seen[0].fresh != seen[1].fresh || seen[0].loaded_compact != seen[1].loaded_compact ||
        seen[0].mark_id != seen[1].mark_id || after[0] != after[1])
        abort();
#elif FUZZ_STATE == 2
    put("outbox/00000000000000000001.jsonl", data, size);
    put("outbox/00000000000000000009.jsonl", data, size / 2);
    uint64_t n, first, last;
    if (outbox_count_waiting(scratch, &n, &first, &last) == 0 && n && first > last)
        abort();
    struct outbox_reader r;
    if (outbox_reader_open(&r, scratch) == 0) {
        char *line;
        size_t len;
        uint64_t seq, prev = 0, got = 0;
        while (outbox_reader_next(&r, &line, &len, &seq) == 1) {
            if (seq == 0 || len == 0)
                abort();
            prev = seq;
            got++;
        }
        (void)prev;
        (void)got;
        outbox_reader_close(&r);
    }
#elif FUZZ_STATE == 4
    struct model_callbacks cb = {.emit = snap_emit, .load = snap_load, .ctx = NULL};
    struct model *m = model_new("/nonexistent", &cb);
    /* A file in the scratch directory, not fmemopen (POSIX only) nor tmpfile (msvcrt's
     * makes it in the drive's root) */
    put("snapshot", data, size);
    char path[512];
    snprintf(path, sizeof(path), "%s/snapshot", scratch);
    FILE *f = size ? fopen(path, "rb") : NULL;
    if (m && f) {
        struct model_restore_cb rcb = {snap_load, snap_path, NULL, NULL};
        if (model_restore(m, f, &rcb) == 0) {
            struct model_stats st;
            model_stats(m, &st);
            if (model_dirty(m) != 0)
                abort(); /* nothing is due after a restore */
        }
    }
    if (f)
        fclose(f);
    model_free(m);
#else
    put("rec.tar", data, size);
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/rec.tar", scratch);
    struct rec_reader *r = NULL;
    if (rec_reader_open(path, &r, err, sizeof(err)) == 0) {
        struct rec_op op;
        int rc;
        size_t n = 0;
        while ((rc = rec_reader_next(r, &op)) == 1 && n < 100000)
            n++;
        (void)rec_reader_complete(r);
        rec_reader_close(r);
    }
#endif
    return 0;
}
