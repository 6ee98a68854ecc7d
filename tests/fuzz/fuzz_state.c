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
#include <unistd.h>

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

#if FUZZ_STATE != 4
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
#endif

/* Removes the scratch directory at exit (the inputs' files are known by name). */
static void cleanup(void)
{
    static const char *const names[] = {"journal",
                                        "journal.tmp",
                                        "lock",
                                        "rec.tar",
                                        "outbox/00000000000000000001.jsonl",
                                        "outbox/00000000000000000009.jsonl",
                                        "outbox/confirmed",
                                        "outbox"};
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
        remove(path);
    }
    remove(scratch);
}

static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof(scratch), "%s/em-fuzz-%d", base, (int)getpid());
    char outbox[512];
    snprintf(outbox, sizeof(outbox), "%s/outbox", scratch);
    if (mkdir(scratch, 0700) != 0 || mkdir(outbox, 0700) != 0)
        abort();
    em_log_setup(EM_LOG_ERROR, EM_LOG_TEXT);
    em_log_open("/dev/null"); /* the readers say what they skip; not here */
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0])
        setup();
#if FUZZ_STATE == 1
    put("journal", data, size);
    struct journal *j;
    char reason[256];
    if (journal_peek(&j, scratch, reason, sizeof(reason)) == 0) {
        struct journal_info ji;
        journal_info(j, &ji);
        if (ji.delivered > ji.last_seq && ji.npending)
            abort(); /* pending events are those after the delivered mark */
        (void)journal_live_entities(j);
    }
    journal_close(j);
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
    FILE *f = size ? fmemopen((void *)(uintptr_t)data, size, "r") : NULL;
    if (m && f) {
        struct model_restore_cb rcb = {snap_load, snap_path, NULL};
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
