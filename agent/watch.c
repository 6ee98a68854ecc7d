/* em-agent: watch: the loop (walks, watcher callbacks, timers, signals, start and stop);
 * the other parts are listed in watch_int.h.
 *
 * Per file the journal keeps the version last processed (size, mtime, content hash,
 * state). A file being written is fed to a push parser as it grows (incparse.h, at most
 * MAX_PARTIALS at once); when its root element ends or its writer closes it, the document
 * is finished and handed to the model. A file whose size shrank, whose last fed bytes
 * differ, or that changes after it was complete is parsed again from its first byte.
 * A complete document with the content hash of the version already processed is not
 * handed to the model again.
 *
 * Events go to the journal first (commit), then to the sink (watch_sink.c), then a
 * "delivered" record. The sink is stdout, --out FILE, or with --amqp the outbox, from which
 * the publisher thread sends them to the bus; the loop learns of its progress through a
 * uv_async.
 */
#include "watch_int.h"

#include "pfor.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "dataset.h"

#include <time.h>

#ifdef _WIN32
#include <windows.h>
#endif

#define MAX_PARTIALS 1024
#define WALK_MAX_DEPTH 24
#define WALK_RANKS 6     /* kind_rank() is 0 to 5 */
#define BURST_POOL_MIN 4 /* closed files in a burst worth starting the pool for */

struct epu_doc *watch_on_load(void *ctx, const char *rel, enum epu_kind kind, struct fsio_stat *st)
{
    struct wroot *r = ctx;
    struct watch *w = r->w;
    char *path = strcmp(rel, ".") == 0 ? strdup(r->path) : fsio_join(r->path, rel);
    struct epu_doc *doc = NULL;
    struct epu_diag diag;
    if (path && fsio_stat(path, st) == 0 && fsio_read(path, 256u << 20, &w->rbuf, NULL) == 0 &&
        epu_parse_buffer(kind, path, w->rbuf.data, w->rbuf.len, &doc, &diag) < 0)
        doc = NULL;
    free(path);
    return doc;
}

static void walk_dir(struct watch *w, struct wroot *r, const char *dir, bool force);

/* The model asks for a session directory to be read again. It asks from inside its own
 * work (while it takes in a file), so the walk is queued and done at the next flush, not
 * here: a walk hands it files, and the model must not be re-entered. */
void watch_on_rescan(void *ctx, const char *session_dir)
{
    struct wroot *r = ctx;
    struct watch *w = r->w;
    char *path = strcmp(session_dir, ".") == 0 ? strdup(r->path) : fsio_join(r->path, session_dir);
    if (!path) {
        w->rescan_all = true; /* out of memory: the next batch walks everything */
        return;
    }
    for (size_t i = 0; i < w->rescans.n; i++) {
        if (strcmp(w->rescans.v[i], path) == 0) {
            free(path);
            return;
        }
    }
    if (strvec_push(&w->rescans, path) < 0)
        w->rescan_all = true; /* out of memory: the next batch walks everything */
    free(path);
}

/* Walks the session directories the model asked to read again. */
static void drain_rescans(struct watch *w)
{
    while (w->rescans.n > 0 && !w->stopping) {
        char *path = w->rescans.v[--w->rescans.n];
        struct wroot *r = watch_root_of(w, path);
        if (r) {
            em_log(EM_LOG_INFO, "%s: reading the session directory again", path);
            /* Files that come later are read too, even when unchanged in size and time. */
            journal_files_unsee(w->j, path);
            walk_dir(w, r, path, true);
        }
        free(path);
    }
}

/* ---- errors ---- */

static void stop(struct watch *w);
static void join_restorer(struct watch *w);

/* SIGTERM and SIGINT take effect within a second at any moment, even in the middle of
 * a walk of a large tree (libuv would only run its signal callback after the walk): the
 * handler records the signal and wakes the loop, and walks look at the flag as they go.
 * Stopping mid-walk is safe: the journal knows which files were processed, and the next
 * run continues from there. */
static volatile sig_atomic_t stop_signal;
static const char *volatile stop_why;
static uv_async_t *volatile stop_async;

void watch_request_stop(const char *why)
{
    stop_why = why;
    __atomic_store_n(&stop_signal, 1, __ATOMIC_RELAXED); /* read by other threads too */
    uv_async_t *a = stop_async;
    if (a)
        uv_async_send(a); /* thread-safe and async-signal-safe */
}

#ifndef _WIN32
static void on_stop_signal(int signum)
{
    watch_request_stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}
#else
/* Windows has no SIGTERM. Ctrl-C and Ctrl-Break stop the watch as SIGINT does, at once
 * even mid-walk; closing the console, logging off and shutting down too, and there Windows
 * ends the process about 5 s after this returns, so it waits (up to 4.5 s) for the drain. */
static HANDLE stopped_event;

static BOOL WINAPI on_console(DWORD type)
{
    switch (type) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
        watch_request_stop(type == CTRL_C_EVENT ? "Ctrl-C" : "Ctrl-Break");
        return TRUE;
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        watch_request_stop("console closed");
        if (stopped_event)
            WaitForSingleObject(stopped_event, 4500);
        return TRUE;
    default:
        return FALSE;
    }
}
#endif

bool watch_stop_pending(void)
{
    return __atomic_load_n(&stop_signal, __ATOMIC_RELAXED) != 0;
}

/* Whether a stop was asked for; the first time, stops. For the loops of a walk. */
static bool stop_requested(struct watch *w)
{
    if (stop_signal && !w->stopping) {
        em_log(EM_LOG_INFO, "%s: finishing and stopping", stop_why ? stop_why : "stop");
        stop(w);
    }
    return w->stopping;
}

static void on_stop_async(uv_async_t *a)
{
    stop_requested(a->data);
}

/* "walking DIR: N files found" then "parsing: i of n files", on stderr when it is a
 * terminal, at most 5 times a second. */
static void walk_progress(struct watch *w, const char *dir, bool parsing)
{
    if (!w->progress)
        return;
    uint64_t now = uv_hrtime();
    if (now - w->progress_ns < 200000000u)
        return;
    w->progress_ns = now;
    if (parsing)
        fprintf(stderr, "\r\033[Kem-agent: parsing %zu of %zu files (%.0f %%)", w->walk_done,
                w->walk_total,
                w->walk_total ? 100.0 * (double)w->walk_done / (double)w->walk_total : 100.0);
    else
        fprintf(stderr, "\r\033[Kem-agent: walking %s: %zu EPU files found", dir, w->walk_found);
}

static void walk_progress_end(struct watch *w)
{
    if (w->progress && w->progress_ns)
        fprintf(stderr, "\r\033[K");
    w->progress_ns = 0;
}

void watch_fail(struct watch *w, int status, const char *what, int rc)
{
    /* The first failure is the cause; what fails after it (the same error passed up
     * through the callers) would only blame other paths. */
    if (w->failed)
        return;
    w->failed = true;
    em_log(EM_LOG_ERROR, "%s: %s; stopping", what, em_strerror(rc));
    if (w->status == 0)
        w->status = status;
    stop(w);
}

/* ---- per-file processing ---- */

const char *watch_rec_rel(const struct watch *w, const struct wroot *r,
                          const struct journal_file *f, char *buf, size_t cap)
{
    uint16_t root;
    const char *pre = journal_file_dir(w->j, f, &root);
    if (root) {
        snprintf(buf, cap, "%s%s", pre, f->name);
        return buf;
    }
    /* Under no journal root (absolute): relative to r. */
    journal_file_path(w->j, f, buf, cap);
    size_t n = strlen(buf);
    if (n > r->len && strncmp(buf, r->path, r->len) == 0 && buf[r->len] == '/')
        memmove(buf, buf + r->len + 1, n - r->len);
    return buf;
}

bool watch_same_version(const struct journal_file *f, const struct fsio_stat *st)
{
    return f->size == st->size && f->mtime_sec == st->mtime_sec && f->mtime_nsec == st->mtime_nsec;
}

static void note_file(struct watch *w, struct journal_file *f, const struct fsio_stat *st,
                      enum journal_file_state state, uint64_t hash)
{
    f->size = st->size;
    f->mtime_sec = st->mtime_sec;
    f->mtime_nsec = st->mtime_nsec;
    f->state = (uint8_t)state;
    f->hash = hash;
    f->seen = true;
    if (journal_file_note(w->j, f) < 0)
        watch_fail(w, 1, "journal", -EM_ENOMEM);
}

struct wroot *watch_root_of(struct watch *w, const char *path)
{
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];
        if (strncmp(path, r->path, r->len) == 0 && path[r->len] == '/')
            return r;
    }
    return NULL;
}

/* Remembers since when `path` has been an incomplete document (once per version). */
static void note_waiting(struct watch *w, const char *path)
{
    if (w->opt->incomplete_s <= 0)
        return;
    uint64_t now = uv_hrtime() / 1000000u;
    for (size_t i = 0; i < w->nwaiting; i++) {
        if (strcmp(w->waiting[i].path, path) == 0) {
            w->waiting[i].since_ms = now; /* changed, still incomplete: the clock restarts */
            return;
        }
    }
    struct waiting *v = em_grow(w->waiting, w->nwaiting, &w->waiting_cap, sizeof(*v), 16);
    if (!v)
        return; /* then it is not withdrawn: the last complete version stays */
    w->waiting = v;
    char *copy = strdup(path);
    if (copy)
        w->waiting[w->nwaiting++] = (struct waiting){copy, now};
}

/* Documents incomplete for longer than --incomplete-after are taken as unreadable, as
 * scan takes them: what their last complete version said is withdrawn. */
static void check_waiting(struct watch *w)
{
    uint64_t now = uv_hrtime() / 1000000u, limit = (uint64_t)(w->opt->incomplete_s * 1000);
    for (size_t i = 0; i < w->nwaiting && !w->stopping;) {
        struct waiting *x = &w->waiting[i];
        const struct journal_file *f = journal_file_find(w->j, x->path);
        bool still = f && f->state == JFILE_WAITING;
        if (still && now - x->since_ms < limit) {
            i++;
            continue;
        }
        struct wroot *r = still ? watch_root_of(w, x->path) : NULL;
        if (r) {
            enum epu_kind kind = epu_classify_path(x->path);
            em_log(EM_LOG_WARN,
                   "%s: still an incomplete document after %.0f s: taken as unreadable, as scan "
                   "takes it (what its last complete version said is withdrawn)",
                   x->path, w->opt->incomplete_s);
            int rc = model_withdraw(r->model, x->path + r->len + 1, kind);
            if (rc < 0)
                watch_fail(w, 1, x->path, rc);
        }
        free(x->path);
        *x = w->waiting[--w->nwaiting];
    }
}

/* How a file came to be looked at. A walk or an event skips a file whose size and mtime
 * are those of the version processed (an event often follows a version already read: the
 * close after the root element ended); a forced look hands it to the model even if its
 * content is the one processed. */
enum reason { BY_WALK, BY_EVENT, BY_FORCE };

/* A loader's record (dataset.h), read on the loop thread (there are few, and a header is
 * a read or two per file). Read again whenever its version changes, and once after every
 * start: the journal decides whether the entity is new, so a restart sends nothing twice
 * and an event lost before a crash is sent. */
static void look_at_dataset(struct watch *w, struct wroot *r, const char *path, enum reason why)
{
    struct fsio_stat st;
    if (fsio_stat(path, &st) < 0 || st.type != FSIO_FILE)
        return;
    struct pathkey k;
    pathkey_init(&k, path);
    struct journal_file *f = journal_file_find_key(w->j, &k);
    if (f && f->seen && why != BY_FORCE && watch_same_version(f, &st))
        return;
    if (!f && !(f = journal_file_get_key(w->j, &k))) {
        watch_fail(w, 1, path, -EM_ENOMEM);
        return;
    }
    cJSON *key, *data;
    char reason[600];
    const char *rel = path + r->len + 1;
    int rc = dataset_read(r->path, rel, &key, &data, reason, sizeof(reason));
    if (rc == -EM_ENOENT)
        return;
    if (rc == -EM_ENOMEM) {
        watch_fail(w, 1, path, rc);
        return;
    }
    if (rc < 0) {
        if (!(f->state == JFILE_FAILED && f->seen)) {
            em_log(EM_LOG_WARN, "%s: %s", path, reason);
            w->files_failed++;
        }
        note_file(w, f, &st, JFILE_FAILED, 0);
        return;
    }
    note_file(w, f, &st, JFILE_DONE, 0);
    if (rc == 0)
        return; /* JSON, but not a loader's record */
    w->files_parsed++;
    const cJSON *mism = cJSON_GetObjectItemCaseSensitive(data, "mismatches");
    const cJSON *m;
    cJSON_ArrayForEach(m, mism)
    {
        em_log(EM_LOG_WARN, "%s: %s", path, m->valuestring);
    }
    if ((rc = sink_on_emit(r, WIRE_DATASET, key, data, rel, &st)) < 0)
        watch_fail(w, 1, path, rc);
}

/* A walk's directory: its handle, and the stat of the file at hand when it was taken
 * already (with its result in rc). */
struct walk_in {
    const struct fsio_dir *dir;
    const struct fsio_stat *st;
    int rc;
};

static int stat_in(const struct walk_in *in, const struct pathkey *k, struct fsio_stat *st)
{
    if (in && in->st) {
        *st = *in->st;
        return in->rc;
    }
    return in ? fsio_dir_stat(in->dir, pathkey_name(k), st) : fsio_stat(k->path, st);
}

/* The checks before a file is read: is it an EPU file, still a file, and changed since it
 * was last processed? Fills *kind, *st and *f (the journal's record, or NULL). Returns
 * true when it must be read. The path comes keyed (hashed once where it came in). */
static bool wanted(struct watch *w, struct wroot *r, const struct pathkey *k, enum reason why,
                   bool lazy_stat, const struct walk_in *in, enum epu_kind *kind,
                   struct fsio_stat *st, struct journal_file **f)
{
    const char *path = k->path;
    bool pt = incparse_count(w->inc) && incparse_has(w->inc, k);
    bool have_st = false;
    *f = NULL;
    /* The journal first: a file it has, in the version it has, is skipped (or, after a
     * restore, trusted: the model already holds what that version said, unless its record
     * lies after the snapshot's mark) before its path is classified. A restart of a whole
     * visit stats every file and changes none. Loader records are always read once after
     * a start. (w->restoring first: while the restorer
     * runs, r->restored is its to write.) */
    if (!pt && why != BY_FORCE && !dataset_is_record(pathkey_name(k)) &&
        (*f = journal_file_find_cached(w->j, &w->jdc, k)) &&
        ((*f)->seen ||
         ((w->restoring || r->restored) && (*f)->state != JFILE_WAITING && !(*f)->after_mark))) {
        int rc = stat_in(in, k, st);
        if (rc < 0 || st->type != FSIO_FILE)
            return false;
        if (watch_same_version(*f, st)) {
            if (!(*f)->seen) {
                (*f)->seen = true;
                w->files_trusted++;
                if (w->restoring)
                    r->trusted_early++;
            }
            return false;
        }
        have_st = true;
    }
    struct epu_place pl;
    epu_layout_place(path + r->len + 1, &pl);
    if (pl.kind == EPU_KIND_NONE && !pl.unplaced && dataset_is_record(path)) {
        if (!w->walking) {
            look_at_dataset(w, r, path, why);
            return false;
        }
        char **v = em_grow(w->datasets_due, w->ndatasets_due, &w->datasets_due_cap, sizeof(*v), 8);
        char *copy = v ? strdup(path) : NULL;
        if (v)
            w->datasets_due = v;
        if (!copy)
            watch_fail(w, 1, path, -EM_ENOMEM);
        else
            w->datasets_due[w->ndatasets_due++] = copy;
        return false;
    }
    if (pl.kind == EPU_KIND_NONE || pl.unplaced)
        return false;
    *kind = pl.kind;
    if (have_st)
        return true; /* in the journal, changed since */
    if (!*f)
        *f = journal_file_find_cached(w->j, &w->jdc, k);
    /* A file the journal does not know is read whatever its stat says (the read takes
     * its own): a walk over a new tree stats nothing twice. */
    if (!pt && !*f && lazy_stat) {
        memset(st, 0, sizeof(*st));
        return true;
    }
    int rc = stat_in(in, k, st);
    if (rc < 0 || st->type != FSIO_FILE) {
        if (pt)
            incparse_drop(w->inc, k); /* gone (renamed or deleted) */
        return false;
    }
    return true; /* the journal's version was dealt with above */
}

static void note_busy(struct watch *w, const char *path);

/* What a complete read of `path` gave (rc, doc or diag, the content's hash, the file's
 * stat as read), taken into the journal and the model. Takes `doc`. */
static void conclude(struct watch *w, struct wroot *r, const struct pathkey *k, enum epu_kind kind,
                     struct journal_file *f, const struct fsio_stat *st, int rc,
                     struct epu_doc *doc, uint64_t hash, const struct epu_diag *d, bool force,
                     const char *doc_json)
{
    char rb[4096];
    const char *path = k->path;
    if (rc == -EM_ENOENT) {
        epu_doc_free(doc);
        return; /* gone since */
    }
    if (!f && !(f = journal_file_get_cached(w->j, &w->jdc, k))) {
        epu_doc_free(doc);
        watch_fail(w, 1, path, -EM_ENOMEM);
        return;
    }
    if (rc == -EM_EBUSY) {
        /* Windows: the writer holds it open without sharing. Not a failure: it is read
         * again in a second (note_busy), whatever events follow. */
        epu_doc_free(doc);
        note_busy(w, path);
        return;
    }
    if (rc == -EM_ETRUNCATED) {
        /* Not written to the end yet: wait for the next change, parse it from the start. */
        em_log(EM_LOG_DEBUG, "%s: incomplete document, waiting", path);
        if (!(f->state == JFILE_WAITING && watch_same_version(f, st))) {
            w->files_waiting++;
            note_waiting(w, path);
        }
        note_file(w, f, st, JFILE_WAITING, hash);
        return;
    }
    if (rc < 0) {
        /* Once per failure: a file that keeps changing and keeps failing (appended to
         * after its document ended) is not reported at every change; it is again after
         * it parsed, and at the next start. */
        bool told = f->state == JFILE_FAILED && f->seen;
        long line = d && d->line > 0 ? d->line : 1L;
        const char *why = d && d->reason[0] ? d->reason : em_strerror(rc);
        if (told)
            em_log(EM_LOG_DEBUG, "%s:%ld: %s (still)", path, line, why);
        else
            em_log(EM_LOG_WARN, "%s:%ld: %s", path, line, why);
        if (!told)
            w->files_failed++;
        bool was_seen = f->seen;
        note_file(w, f, st, JFILE_FAILED, hash);
        /* Scan counts a square whose file is unreadable, so the model hears of it. */
        if (!was_seen || force)
            rc = model_file(r->model, watch_rec_rel(w, r, f, rb, sizeof(rb)), f->name, kind, NULL,
                            st);
        else
            rc = 0;
        if (rc < 0)
            watch_fail(w, 1, path, rc);
        return;
    }
    bool same = f->seen && !force && f->state == JFILE_DONE && f->hash == hash;
    note_file(w, f, st, JFILE_DONE, hash);
    w->files_parsed++;
    if (same) {
        epu_doc_free(doc); /* rewritten with the same content */
        return;
    }
    /* The model keeps this path: the journal's copy lives as long as the model. */
    rc = model_file_json(r->model, watch_rec_rel(w, r, f, rb, sizeof(rb)), f->name, kind, doc, st,
                         doc_json);
    if (rc < 0)
        watch_fail(w, 1, path, rc);
}

/* Reads what is new in `path` and, when the document is complete, hands it over.
 * `complete`: the writer closed it (or a walk found it), so finish it now. */
static void process(struct watch *w, struct wroot *r, const struct pathkey *k, bool complete,
                    enum reason why)
{
    enum epu_kind kind;
    struct fsio_stat st;
    struct journal_file *f = NULL;
    if (!wanted(w, r, k, why, false, NULL, &kind, &st, &f))
        return;
    uint64_t before = incparse_bytes(w->inc);
    struct incparse_done d;
    int rc = incparse_feed(w->inc, k, kind, &st, complete, &d);
    w->bytes += incparse_bytes(w->inc) - before;
    if (rc < 0)
        watch_fail(w, 1, k->path, rc);
    if (rc <= 0)
        return;
    conclude(w, r, k, kind, f, &st, d.rc, d.doc, d.hash, &d.diag, why == BY_FORCE, NULL);
}

/* BUSY_RETRY_MS after a sharing violation the file is read again; past BUSY_WARN_MS the
 * log says so (once), and it keeps being retried. */
#define BUSY_RETRY_MS 1000
#define BUSY_WARN_MS 60000

static void on_busy_timer(uv_timer_t *t);
static int flush_models(struct watch *w);

static void note_busy(struct watch *w, const char *path)
{
    for (size_t i = 0; i < w->nbusy; i++)
        if (strcmp(w->busy[i].path, path) == 0)
            goto arm;
    struct busy *v = em_grow(w->busy, w->nbusy, &w->busy_cap, sizeof(*v), 16);
    if (v)
        w->busy = v;
    char *copy = v ? strdup(path) : NULL;
    if (!copy) {
        w->rescan_all = true; /* out of memory: the next walk reads it instead */
        return;
    }
    w->busy[w->nbusy++] = (struct busy){copy, uv_now(&w->loop), false};
    em_log(EM_LOG_DEBUG,
           "%s: in use by another process (held without sharing); reading it again in a second",
           path);
arm:
    if (!w->stopping && !uv_is_active((uv_handle_t *)&w->busy_timer))
        uv_timer_start(&w->busy_timer, on_busy_timer, BUSY_RETRY_MS, 0);
}

static void on_busy_timer(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, busy_timer));
    /* Take the list: the files still held come back through note_busy. */
    struct busy *v = w->busy;
    size_t n = w->nbusy;
    w->busy = NULL;
    w->nbusy = w->busy_cap = 0;
    uint64_t now = uv_now(&w->loop);
    for (size_t i = 0; i < n; i++) {
        struct wroot *r = w->stopping ? NULL : watch_root_of(w, v[i].path);
        struct pathkey key;
        pathkey_init(&key, v[i].path);
        if (r)
            process(w, r, &key, true, BY_EVENT);
        for (size_t k = 0; k < w->nbusy; k++) {
            if (strcmp(w->busy[k].path, v[i].path) != 0)
                continue;
            /* Still held: it keeps its first time, and the log says so once. */
            w->busy[k].since_ms = v[i].since_ms;
            w->busy[k].told = v[i].told;
            if (!v[i].told && now - v[i].since_ms >= BUSY_WARN_MS) {
                em_log(EM_LOG_WARN,
                       "%s: still in use by another process after %llu s (held without "
                       "sharing); still retrying",
                       v[i].path, (unsigned long long)((now - v[i].since_ms) / 1000));
                w->busy[k].told = true;
            }
        }
        free(v[i].path);
    }
    free(v);
    if (!w->stopping)
        flush_models(w);
}

/* ---- walking ---- */

/* A directory a walk found files to read in. Only what is small is kept (its path, its
 * files' names in one block, their kinds), and freed once its last file is taken: a walk
 * of a whole visit holds directories, not 600,000 paths. */
struct walk_dir {
    char *path;    /* absolute */
    char *names;   /* the files' names, each NUL-terminated, in one block */
    uint32_t *off; /* into names, sorted by (rank, name) */
    uint8_t *kind; /* enum epu_kind of each */
    uint32_t nfiles;
    uint32_t first[WALK_RANKS + 1]; /* files of rank r: [first[r], first[r + 1]) */
    int last_rank;                  /* the highest rank with files */
};

struct walk {
    struct walk_dir **dirs; /* sorted as their files' paths sort */
    size_t ndirs, cap, nfiles;
    struct wroot *r;
    enum reason why;
    uint64_t dev[WALK_MAX_DEPTH], ino[WALK_MAX_DEPTH]; /* the directories on the way down */
    /* the pool's source: where it is */
    int rank;
    size_t di;
    uint32_t fi;
};

/* Reports a directory that cannot be watched or listed, once, and keeps it for the
 * check to retry. Fails only when out of memory. */
static int note_unreadable(struct watch *w, const char *dir, int rc)
{
    for (size_t i = 0; i < w->unreadable.n; i++)
        if (strcmp(w->unreadable.v[i], dir) == 0)
            return 0;
    em_log(EM_LOG_WARN, "%s: cannot read the directory: %s; skipped, and read as soon as it can be",
           dir, em_strerror(rc));
    return strvec_push(&w->unreadable, dir);
}

/* Whether a directory under root r was skipped as unreadable (its files the journal may
 * know from an earlier run are not in the model). */
static bool unreadable_under(const struct watch *w, const struct wroot *r)
{
    for (size_t i = 0; i < w->unreadable.n; i++) {
        const char *d = w->unreadable.v[i];
        if (strncmp(d, r->path, r->len) == 0 && (d[r->len] == '/' || d[r->len] == '\0'))
            return true;
    }
    return false;
}

static int kind_rank(enum epu_kind k);

/* A file of a directory, sorted by (rank, name). */
struct walk_sort {
    const char *name;
    uint32_t off;
    uint8_t kind, rank;
};

static int cmp_walk_sort(const void *a, const void *b)
{
    const struct walk_sort *x = a, *y = b;
    return x->rank != y->rank ? (x->rank < y->rank ? -1 : 1) : strcmp(x->name, y->name);
}

static void walk_dir_drop(struct walk_dir *d)
{
    free(d->names);
    free(d->off);
    free(d->kind);
    d->names = NULL;
    d->off = NULL;
    d->kind = NULL;
}

static void walk_dir_free(struct walk_dir *d)
{
    walk_dir_drop(d);
    free(d->path);
    free(d);
}

/* Keeps the files of `dir` to read (their names and kinds) as one walk_dir. */
static int walk_keep(struct walk *out, const char *dir, const struct dynbuf *names,
                     const uint32_t *off, const uint8_t *kind, uint32_t n)
{
    struct walk_dir *d = calloc(1, sizeof(*d));
    struct walk_sort *v = malloc(n * sizeof(*v));
    if (!d || !v || !(d->path = strdup(dir)) || !(d->names = malloc(names->len)) ||
        !(d->off = malloc(n * sizeof(*d->off))) || !(d->kind = malloc(n))) {
        if (d)
            walk_dir_free(d);
        free(v);
        return -EM_ENOMEM;
    }
    memcpy(d->names, names->p, names->len);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (struct walk_sort){d->names + off[i], off[i], kind[i],
                                  (uint8_t)kind_rank((enum epu_kind)kind[i])};
    qsort(v, n, sizeof(*v), cmp_walk_sort);
    for (uint32_t i = 0; i < n; i++) {
        d->off[i] = v[i].off;
        d->kind[i] = v[i].kind;
        d->last_rank = v[i].rank;
    }
    free(v);
    d->nfiles = n;
    for (uint32_t r = 0, i = 0; r <= WALK_RANKS; r++) {
        while (i < n && (uint32_t)kind_rank((enum epu_kind)d->kind[i]) < r)
            i++;
        d->first[r] = i;
    }
    struct walk_dir **dirs = em_grow(out->dirs, out->ndirs, &out->cap, sizeof(*dirs), 64);
    if (!dirs) {
        walk_dir_free(d);
        return -EM_ENOMEM;
    }
    out->dirs = dirs;
    out->dirs[out->ndirs++] = d;
    out->nfiles += n;
    return 0;
}

/* The files of a directory stat'ed on two threads (pfor.h), before they are looked at.
 * On a restart each thread also looks its files up in the journal: a file in the version
 * the journal has, which wanted() would skip, is marked trusted there, so the loop thread
 * does nothing more for it (600,000 paths not joined, hashed and looked up on one thread). */
enum { STAT_LOOK = 0, STAT_TRUSTED = 1, STAT_SEEN = 2 }; /* stat_all.mark */
struct stat_all {
    const struct fsio_dir *dir;
    const struct fsio_entry *e;
    struct fsio_stat *st; /* by entry; NULL: each is stat'ed when looked at */
    int *rc;
    uint8_t *mark;           /* by entry: STAT_*; NULL: no lookups */
    const struct journal *j; /* read only while the threads run */
    uint32_t jdir;           /* the directory's index in the journal */
    bool trust_unseen;       /* a file not yet seen may be trusted (a restore's) */
};

static void stat_range(void *ctx, size_t from, size_t to)
{
    struct stat_all *sa = ctx;
    /* The lookups' memory is asked for ahead (a restart's 600,000 lookups in a table of
     * 20 MB each waited for it three times): every slot of the range first, then each
     * file's record before its stat, so both arrive while the system call runs. */
    uint64_t hashes[64];
    bool ahead = sa->mark && to - from <= sizeof(hashes) / sizeof(*hashes);
    for (size_t i = from; ahead && i < to; i++)
        if (sa->e[i].type == FSIO_FILE) {
            hashes[i - from] = hash64_str(sa->e[i].name);
            journal_file_prefetch(sa->j, sa->jdir, hashes[i - from], 0);
        }
    for (size_t i = from; i < to; i++) {
        if (sa->e[i].type != FSIO_FILE)
            continue;
        if (ahead)
            journal_file_prefetch(sa->j, sa->jdir, hashes[i - from], 1);
        struct fsio_stat *st = &sa->st[i];
        sa->rc[i] = fsio_dir_stat(sa->dir, sa->e[i].name, st);
        if (!sa->mark)
            continue;
        sa->mark[i] = STAT_LOOK;
        /* wanted()'s first test, for the file it would skip; the rest it decides itself. */
        const char *name = sa->e[i].name;
        if (sa->rc[i] < 0 || st->type != FSIO_FILE || dataset_is_record(name))
            continue;
        struct journal_file *f = journal_file_find_in(sa->j, sa->jdir, name,
                                                      ahead ? hashes[i - from] : hash64_str(name));
        if (!f || !(f->seen || (sa->trust_unseen && f->state != JFILE_WAITING && !f->after_mark)) ||
            !watch_same_version(f, st))
            continue;
        /* Only this thread touches this record (one name, one entry); the restorer reads
         * other fields of it, never `seen`. */
        sa->mark[i] = f->seen ? STAT_SEEN : STAT_TRUSTED;
        f->seen = true;
    }
}

/* A directory of many files the journal knows (a restart: every one of them is stat'ed)
 * has them stat'ed on two threads first. A directory the journal does not know is not:
 * its files are read, and the read takes their stat. Returns whether the stats run on the
 * helper now (pfor_finish() before `sa` is read); otherwise they are done, or not taken. */
#define STAT_TOGETHER_MIN 32
static bool stat_known(struct watch *w, struct wroot *r, const char *dir, enum reason why,
                       struct stat_all *sa, size_t n)
{
    size_t nfiles = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (sa->e[i].type == FSIO_FILE && nfiles++ == 0)
            first = i;
    if (nfiles < STAT_TOGETHER_MIN || w->stopping)
        return false;
    char *child = fsio_join(dir, sa->e[first].name);
    struct pathkey k;
    if (child)
        pathkey_init(&k, child);
    int64_t jdir = child ? journal_dir_index(w->j, &w->jdc, &k) : -1;
    free(child);
    if (jdir < 0)
        return false;
    if (!w->statter_tried) {
        w->statter_tried = true;
        w->statter = pfor_start();
    }
    if (!w->statter || !(sa->st = malloc(n * sizeof(*sa->st))) ||
        !(sa->rc = malloc(n * sizeof(*sa->rc)))) {
        free(sa->st);
        sa->st = NULL;
        return false; /* each file is stat'ed when looked at */
    }
    /* As wanted() decides: not for a forced walk, nor while partial parses are held (a
     * file with one is looked at whole); the restorer owns r->restored while it runs. */
    if (why != BY_FORCE && !incparse_count(w->inc))
        sa->mark = malloc(n);
    sa->j = w->j;
    sa->jdir = (uint32_t)jdir;
    sa->trust_unseen = w->restoring || r->restored;
    if (pfor_begin(w->statter, n, 32, stat_range, sa))
        return true;
    stat_range(sa, 0, n);
    return false;
}

/* One directory of a walk, listed (and watched), its files not yet looked at. */
struct walk_listed {
    char *dir;
    unsigned depth;
    struct fsio_entry *e;
    size_t n;
    struct fsio_dir *dirh;
    struct stat_all sa;
    bool stating; /* its stats run on the helper: pfor_finish() first */
};

static void walk_listed_free(struct watch *w, struct walk_listed *l)
{
    if (l->stating)
        pfor_finish(w->statter);
    fsio_dir_close(l->dirh);
    free(l->sa.st);
    free(l->sa.rc);
    free(l->sa.mark);
    fsio_entries_free(l->e, l->n);
    free(l->dir);
    *l = (struct walk_listed){0};
}

/* Watches and lists directory `dir` (taken) into `l`. l->e stays NULL for a directory not
 * walked (gone, seen above, unreadable and noted). The helper may be stat'ing another
 * directory meanwhile: nothing here touches the journal or the model, and a stop asked
 * for is only looked at (stop_requested() drains, so the caller calls it between). */
static int walk_list(struct watch *w, char *dir, unsigned depth, struct walk *out,
                     struct walk_listed *l)
{
    l->dir = dir;
    l->depth = depth;
    /* A directory that is its own ancestor (a bind mount of the tree into itself) is not
     * walked again, so a walk always ends. */
    struct fsio_stat dst;
    if (fsio_stat(dir, &dst) == 0 && fsio_dir_seen_above(out->dev, out->ino, depth, &dst)) {
        em_log(EM_LOG_WARN,
               "%s: the same directory as one above it (a bind mount?): not walked again", dir);
        return 0;
    }
    if (w->watcher) {
        int rc = watcher_add(w->watcher, dir);
        if (rc == -EM_ENOENT)
            return 0;
        /* The system's watch limit or memory: nothing else can be watched either. */
        if (rc == -EM_ELIMIT || rc == -EM_ENOMEM)
            return rc;
        if (rc < 0)
            return note_unreadable(w, dir, rc);
    }
    if (stop_signal)
        return 0;
    walk_progress(w, dir, false);
    int rc = fsio_list(dir, &l->e, &l->n);
    if (rc < 0) {
        l->e = NULL;
        l->n = 0;
        return rc == -EM_ENOENT ? 0 : rc == -EM_ENOMEM ? rc : note_unreadable(w, dir, rc);
    }
    if (fsio_dir_open(dir, &l->dirh) < 0)
        return -EM_ENOMEM;
    l->sa = (struct stat_all){.dir = l->dirh, .e = l->e};
    return 0;
}

/* Looks at the files of listed directory `l` (its stats done): keeps those to read. */
static int walk_take(struct watch *w, struct walk *out, struct walk_listed *l)
{
    if (l->stating) {
        pfor_finish(w->statter);
        l->stating = false;
    }
    const char *dir = l->dir;
    const struct fsio_entry *e = l->e;
    size_t n = l->n;
    const struct stat_all *sa = &l->sa;
    /* The files to read here first (only those: a restart on a large tree keeps few
     * names), then the directories below. */
    struct dynbuf names;
    dynbuf_init(&names, (size_t)1 << 30);
    uint32_t *off = malloc((n ? n : 1) * sizeof(*off));
    uint8_t *kinds = malloc(n ? n : 1);
    uint32_t nkeep = 0;
    int rc = off && kinds ? 0 : -EM_ENOMEM;
    size_t dir_len = 0; /* the directory part of its files' paths, hashed once for all */
    uint64_t dir_hash = 0;
    for (size_t i = 0; i < n && rc == 0 && !w->stopping; i++) {
        if (e[i].type != FSIO_FILE)
            continue;
        if (sa->mark && sa->mark[i] != STAT_LOOK) { /* trusted on the stat's thread */
            if (sa->mark[i] == STAT_TRUSTED) {
                w->files_trusted++;
                if (w->restoring)
                    out->r->trusted_early++;
            }
            continue;
        }
        char *child = fsio_join(dir, e[i].name);
        if (!child) {
            rc = -EM_ENOMEM;
            break;
        }
        if (!dir_len) {
            dir_len = strlen(child) - strlen(e[i].name);
            dir_hash = hash64_bytes(child, dir_len);
        }
        struct fsio_stat st;
        enum epu_kind kind = EPU_KIND_NONE;
        struct journal_file *rec = NULL;
        struct pathkey k;
        pathkey_init_in(&k, child, dir_len, dir_hash);
        struct walk_in in = {l->dirh, sa->st ? &sa->st[i] : NULL, sa->st ? sa->rc[i] : 0};
        if (wanted(w, out->r, &k, out->why, true, &in, &kind, &st, &rec)) {
            incparse_drop(w->inc, &k); /* read whole: the walk finds it complete */
            off[nkeep] = (uint32_t)names.len;
            kinds[nkeep] = (uint8_t)kind;
            rc = dynbuf_add(&names, e[i].name, strlen(e[i].name) + 1);
            nkeep++;
            w->walk_found++;
        }
        free(child);
    }
    if (rc == 0 && nkeep)
        rc = walk_keep(out, dir, &names, off, kinds, nkeep);
    dynbuf_free(&names);
    free(off);
    free(kinds);
    return rc;
}

/* A directory still to walk. */
struct walk_todo {
    char *dir;
    unsigned depth;
};

/* Walks `top` depth first: each directory is watched, then listed, then its files are
 * looked at, then the directories below it. One step overlaps the next: while the helper
 * stats a directory's files, this thread watches and lists the next directory. */
static int walk_collect(struct watch *w, const char *top, struct walk *out)
{
    struct walk_todo *todo = NULL;
    size_t ntodo = 0, cap = 0;
    /* Two slots that take turns (the helper holds a pointer into the one stat'ing). */
    struct walk_listed slot[2] = {{0}, {0}}, *cur = &slot[0], *prev = &slot[1];
    int rc = 0;
    char *first = strdup(top);
    if (!first)
        return -EM_ENOMEM;
    todo = em_grow(NULL, 0, &cap, sizeof(*todo), 16);
    if (!todo) {
        free(first);
        return -EM_ENOMEM;
    }
    todo[ntodo++] = (struct walk_todo){first, 0};
    while (ntodo && rc == 0 && !w->stopping) {
        struct walk_todo t = todo[--ntodo];
        rc = walk_list(w, t.dir, t.depth, out, cur);
        /* The previous directory's stats ran meanwhile: its files now. */
        if (prev->dir) {
            if (rc == 0)
                rc = walk_take(w, out, prev);
            walk_listed_free(w, prev);
        }
        /* Only now, with no stats running: a stop drains what is pending. */
        if (rc < 0 || !cur->e || stop_requested(w)) {
            walk_listed_free(w, cur);
            continue;
        }
        /* Its directories go on the stack last first, so they are walked in name order. */
        for (size_t i = cur->n; i-- > 0 && rc == 0;) {
            if (cur->e[i].type != FSIO_DIR || cur->depth + 1 >= WALK_MAX_DEPTH)
                continue;
            char *child = fsio_join(cur->dir, cur->e[i].name);
            struct walk_todo *v = child ? em_grow(todo, ntodo, &cap, sizeof(*todo), 16) : NULL;
            if (!v) {
                free(child);
                rc = -EM_ENOMEM;
                break;
            }
            todo = v;
            todo[ntodo++] = (struct walk_todo){child, cur->depth + 1};
        }
        if (rc == 0)
            cur->stating = stat_known(w, out->r, cur->dir, out->why, &cur->sa, cur->n);
        struct walk_listed *x = prev;
        prev = cur;
        cur = x;
    }
    if (prev->dir && rc == 0 && !w->stopping)
        rc = walk_take(w, out, prev);
    walk_listed_free(w, prev);
    walk_listed_free(w, cur);
    while (ntodo)
        free(todo[--ntodo].dir);
    free(todo);
    return rc;
}

/* Parents first, so children are emitted once with what their parents say: atlases,
 * sessions, .dm files, square images, hole images, micrographs; by path within a kind. */
static int kind_rank(enum epu_kind k)
{
    switch (k) {
    case EPU_KIND_ATLAS:
        return 0;
    case EPU_KIND_SESSION:
        return 1;
    case EPU_KIND_GRIDSQUARE_METADATA:
        return 2;
    case EPU_KIND_GRIDSQUARE_IMAGE:
        return 3;
    case EPU_KIND_FOILHOLE_IMAGE:
        return 4;
    default:
        return 5;
    }
}

/* Directories in the order their files' paths sort: as if each ended with '/'. */
static int cmp_walk_dir(const void *a, const void *b)
{
    const char *x = (*(const struct walk_dir *const *)a)->path;
    const char *y = (*(const struct walk_dir *const *)b)->path;
    for (;; x++, y++) {
        unsigned char cx = *x ? (unsigned char)*x : '/', cy = *y ? (unsigned char)*y : '/';
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (!*x || !*y)
            return !*x && !*y ? 0 : !*x ? -1 : 1;
    }
}

static int flush_models(struct watch *w)
{
    drain_rescans(w);
    for (size_t i = 0; i < w->nroots; i++) {
        int rc = model_flush(w->roots[i].model);
        if (rc < 0) {
            watch_fail(w, 1, w->roots[i].path, rc);
            return rc;
        }
    }
    return sink_commit(w);
}

/* The parse pool's source for a walk: every file of rank 0 (atlases) in path order, then
 * of rank 1, and so on. It runs on a worker thread and only reads the walk; the job of a
 * directory's last file carries the directory, which the consumer then frees. */
static int walk_source_next(void *ctx, struct pool_job *job)
{
    struct walk *wk = ctx;
    for (; wk->rank < WALK_RANKS; wk->rank++, wk->di = 0, wk->fi = 0) {
        for (; wk->di < wk->ndirs; wk->di++, wk->fi = 0) {
            struct walk_dir *d = wk->dirs[wk->di];
            uint32_t i = d->first[wk->rank] + wk->fi;
            if (i >= d->first[wk->rank + 1])
                continue;
            wk->fi++;
            if (!(job->path = fsio_join(d->path, d->names + d->off[i])))
                return -EM_ENOMEM;
            job->kind = (enum epu_kind)d->kind[i];
            job->tag = wk->rank == d->last_rank && i + 1 == d->nfiles ? d : NULL;
            job->want_hash = true;
            job->want_json = true;
            job->want_key = true; /* the walk keeps names, not keys: the worker keys it */
            return 1;
        }
    }
    return 0;
}

/* The restorer thread: every root's model from its snapshot. */
static void restore_all(void *arg)
{
    struct watch *w = arg;
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < w->nroots; i++)
        w->roots[i].restore_rc = snapshot_restore(w, &w->roots[i]);
    w->restore_ns = uv_hrtime() - t0;
}

/* Waits for the restorer, when it runs: until then the models are its own. */
static void join_restorer(struct watch *w)
{
    if (!w->restoring)
        return;
    uv_thread_join(&w->restorer);
    w->restoring = false;
    em_log(EM_LOG_DEBUG, "state read in %.2f s (journal), model restored in %.2f s",
           (double)(w->walk_started_ns - w->started_ns) / 1e9, (double)w->restore_ns / 1e9);
    for (size_t i = 0; i < w->nroots; i++)
        if (w->roots[i].restore_rc < 0)
            watch_fail(w, 1, w->roots[i].path, w->roots[i].restore_rc);
}

/* Waits for the restorer. Returns whether root `r`'s walk must be made again: files were
 * trusted while its restore ran, and it failed. */
static bool finish_restore(struct watch *w, struct wroot *r)
{
    join_restorer(w);
    /* Only the first walk runs while the restore does, so only its root can have trusted
     * files early. */
    bool again = r->trusted_early > 0 && !r->restored;
    if (again) {
        journal_files_unsee(w->j, r->path);
        w->files_trusted -= r->trusted_early;
    }
    r->trusted_early = 0;
    return again;
}

/* After a walk that read many files, the heap holds the memory of their documents,
 * free but still counted as the process's (each parse thread's malloc arena keeps its
 * own): given back to the system, before the model is written out and the journal
 * compacted, which need memory of their own (a visit's cold start: 8 MB less at its
 * peak). glibc only; elsewhere nothing. */
#define TRIM_AFTER_FILES 10000
static void heap_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Walks `dir` of root `r`, watching every directory first, then processes the files
 * found (all of them when `force`, else those not processed in this version). The files
 * to read are read and parsed on the parse pool; the results are taken in the sorted
 * order here, on the loop thread, where the journal and the model live. */
static void walk_dir(struct watch *w, struct wroot *r, const char *dir, bool force)
{
    struct walk wk = {.r = r, .why = force ? BY_FORCE : BY_WALK};
    bool was_walking = w->walking;
    w->walking = true;
    journal_hold_compaction(w->j, true);
    w->walk_found = 0;
    uint64_t listed_t0 = uv_hrtime();
    int rc = walk_collect(w, dir, &wk);
    /* The model must be whole before a file is taken into it: wait for the restore. A
     * restore that failed makes the files trusted meanwhile be read after all. */
    bool again = finish_restore(w, r);
    if (rc == 0 && again && !w->stopping) {
        for (size_t i = 0; i < wk.ndirs; i++)
            walk_dir_free(wk.dirs[i]);
        free(wk.dirs);
        struct walk fresh = {.r = r, .why = wk.why};
        wk = fresh;
        rc = walk_collect(w, dir, &wk);
    }
    if (rc < 0)
        watch_fail(w, 1, dir, rc);
    if (wk.ndirs > 1 && !w->stopping)
        qsort(wk.dirs, wk.ndirs, sizeof(*wk.dirs), cmp_walk_dir);
    size_t ntodo = wk.nfiles;
    w->walk_total = ntodo;
    em_log(EM_LOG_DEBUG, "%s: walked in %.2f s: %zu files to read, in %zu directories", dir,
           (double)(uv_hrtime() - listed_t0) / 1e9, ntodo, wk.ndirs);
    struct pool *pool =
        ntodo && !w->stopping ? pool_start(walk_source_next, &wk, w->opt->threads, 128) : NULL;
    if (ntodo && !pool && !w->stopping)
        watch_fail(w, 1, dir, -EM_ENOMEM);
    if (pool)
        pool_collect_frees(pool);
    int prev_rank = -1;
    size_t taken = 0;
    for (size_t i = 0; pool && i < ntodo && !w->stopping; i++) {
        w->walk_done = i;
        /* A stop is looked for before each file (a flag): 64 files at a time was up to
         * 64 large .dm files parsed after a SIGTERM. */
        if (stop_requested(w))
            break;
        if ((i & 63) == 0)
            walk_progress(w, dir, true);
        struct pool_job j;
        rc = pool_next(pool, &j);
        if (rc <= 0) {
            if (rc < 0)
                watch_fail(w, 1, dir, rc);
            break;
        }
        /* Children are linked once their parents are in: flush before the images. */
        int rank = kind_rank(j.kind);
        if (prev_rank >= 0 && rank != prev_rank && rank == WALK_RANKS - 1)
            flush_models(w);
        prev_rank = rank;
        w->bytes += j.bytes;
        conclude(w, r, &j.key, j.kind, NULL, &j.stat, j.rc, j.doc, j.hash, &j.diag, force,
                 j.doc_json);
        j.doc = NULL;
        if (j.tag)
            walk_dir_drop(j.tag); /* its last file: its names are not needed any more */
        pool_job_done(pool, &j);
        taken++;
    }
    pool_free(pool);
    if (ntodo)
        em_log(EM_LOG_DEBUG, "%s: %zu files read and taken in, in %.2f s", dir, taken,
               (double)(uv_hrtime() - listed_t0) / 1e9);
    for (size_t i = 0; i < wk.ndirs; i++)
        walk_dir_free(wk.dirs[i]);
    free(wk.dirs);
    walk_progress_end(w);
    if (ntodo >= TRIM_AFTER_FILES && !w->stopping) /* a stop wants no delay */
        heap_trim();
    /* The restore is over (finish_restore above): the journal is the loop's again. */
    if (!was_walking) {
        for (size_t i = 0; i < w->ndatasets_due; i++) {
            struct wroot *dr = watch_root_of(w, w->datasets_due[i]);
            if (dr && !w->stopping)
                look_at_dataset(w, dr, w->datasets_due[i], wk.why);
            free(w->datasets_due[i]);
        }
        w->ndatasets_due = 0;
    }
    w->walking = was_walking;
    if (!was_walking) { /* the helper sleeps between walks: not kept for the next */
        pfor_stop(w->statter);
        w->statter = NULL;
        w->statter_tried = false;
    }
    /* A root walked to its end has every file the journal knows there in its model
     * (taken in, or trusted with a restored model): its snapshot may be written now. */
    if (!w->stopping && !stop_signal && !w->failed && strcmp(dir, r->path) == 0 &&
        !unreadable_under(w, r))
        r->model_whole = true; /* (a stop signalled may have cut the walk short already) */
    /* A --once run ends after its walk: its journal is compacted then, beside the
     * snapshot (journal_compact_start()), not here before it. */
    journal_hold_compaction(w->j, was_walking || w->opt->exit_idle);
    if (!w->stopping)
        flush_models(w);
}

/* Is root `r` still the directory first seen at its path? A root deleted, renamed or
 * replaced is reported once (an error: nothing under it can be followed); with
 * --exit-on-root-loss the run ends with status 1. When a directory is at the path again,
 * it becomes the root and true is returned with *back set: the caller walks it whole. */
static bool root_present(struct watch *w, struct wroot *r, bool *back)
{
    struct fsio_stat st;
    int rc = fsio_stat(r->path, &st);
    bool there = rc == 0 && st.type == FSIO_DIR;
    bool same = there && st.dev == r->dev && st.ino == r->ino;
    *back = false;
    if (same && !r->lost)
        return true;
    if (!r->lost || (there && !same)) {
        em_log(EM_LOG_ERROR, "%s: the watched directory %s%s", r->path,
               there     ? "was replaced by another directory"
               : rc == 0 ? "is no longer a directory"
                         : "is gone (deleted or renamed)",
               w->opt->exit_on_root_loss ? "; exiting (--exit-on-root-loss)"
               : there                   ? ""
                                         : "; nothing under it is followed until it is back");
        r->lost = true;
        if (w->opt->exit_on_root_loss) {
            stop(w); /* emits what is pending first */
            w->status = 1;
            return false;
        }
    }
    if (!there)
        return false;
    em_log(EM_LOG_WARN, "%s: the watched directory is there again: reading it", r->path);
    r->dev = st.dev;
    r->ino = st.ino;
    r->lost = false;
    *back = true;
    return true;
}

static void walk_all(struct watch *w)
{
    for (size_t i = 0; i < w->nroots && !w->stopping; i++) {
        bool back;
        if (root_present(w, &w->roots[i], &back))
            walk_dir(w, &w->roots[i], w->roots[i].path, false);
    }
}

/* The periodic check: roots still there, unreadable directories readable now, documents
 * incomplete for too long. */
static int session_dir_identity(void *ctx, const char *dir, uint64_t *dev, uint64_t *ino)
{
    const struct wroot *r = ctx;
    char *path = strcmp(dir, ".") == 0 ? strdup(r->path) : fsio_join(r->path, dir);
    struct fsio_stat st;
    int rc = path ? fsio_stat(path, &st) : -EM_ENOMEM;
    int known = rc == 0 && st.type == FSIO_DIR ? 1 : rc == 0 || rc == -EM_ENOENT ? 0 : -1;
    if (known == 1) {
        *dev = st.dev;
        *ino = st.ino;
    } else if (known == 0) {
        /* Gone: one made again there later is read afresh, whatever its files' times. */
        journal_files_unsee(r->w->j, path);
    }
    free(path);
    return known;
}

static void check(struct watch *w)
{
    check_waiting(w);
    /* Session directories deleted without a watch event saying so. */
    for (size_t i = 0; i < w->nroots && !w->stopping; i++) {
        struct wroot *r = &w->roots[i];
        if (r->lost)
            continue;
        int n = model_forget_missing(r->model, session_dir_identity, r);
        if (n > 0)
            em_log(EM_LOG_WARN,
                   "%s: %d session director%s deleted (or made again): their entities are "
                   "deleted, and what is there now is read afresh",
                   r->path, n, n == 1 ? "y was" : "ies were");
        if (n < 0)
            watch_fail(w, 1, r->path, n);
    }
    for (size_t i = 0; i < w->nroots && !w->stopping; i++) {
        bool back;
        if (root_present(w, &w->roots[i], &back) && back)
            walk_dir(w, &w->roots[i], w->roots[i].path, false);
    }
    for (size_t i = 0; i < w->unreadable.n && !w->stopping;) {
        char *dir = w->unreadable.v[i];
        struct fsio_entry *e;
        size_t n;
        int rc = fsio_list(dir, &e, &n);
        if (rc == -EM_EACCES || rc == -EM_EIO || rc == -EM_ENAMETOOLONG || rc == -EM_ELOOP ||
            rc == -EM_ENOMEM) {
            i++;
            continue;
        }
        if (rc == 0)
            fsio_entries_free(e, n);
        w->unreadable.v[i] = w->unreadable.v[--w->unreadable.n];
        struct wroot *r = rc == 0 ? watch_root_of(w, dir) : NULL;
        if (r) {
            em_log(EM_LOG_INFO, "%s: the directory can be read now: reading it", dir);
            walk_dir(w, r, dir, false);
        }
        free(dir);
    }
}

/* ---- watcher callbacks ---- */

static void on_file(void *ctx, const char *path, bool complete)
{
    struct watch *w = ctx;
    if (w->stopping)
        return;
    int rc = burstq_add(&w->burst, path, complete);
    if (rc < 0)
        watch_fail(w, 1, path, rc);
}

static void on_dir(void *ctx, const char *path)
{
    struct watch *w = ctx;
    if (w->stopping)
        return;
    struct wroot *r = watch_root_of(w, path);
    if (r)
        walk_dir(w, r, path, false);
}

/* Only a directory skipped as unreadable is looked at again: times change all the time
 * (a replay sets them), and a walk is not a content event. */
static void on_dir_attrib(void *ctx, const char *path)
{
    struct watch *w = ctx;
    for (size_t i = 0; i < w->unreadable.n && !w->stopping; i++) {
        if (strcmp(w->unreadable.v[i], path) != 0)
            continue;
        struct fsio_entry *e;
        size_t n;
        if (fsio_list(path, &e, &n) != 0)
            return;
        fsio_entries_free(e, n);
        char *dir = w->unreadable.v[i];
        w->unreadable.v[i] = w->unreadable.v[--w->unreadable.n];
        struct wroot *r = watch_root_of(w, dir);
        if (r) {
            em_log(EM_LOG_INFO, "%s: the directory can be read now: reading it", dir);
            walk_dir(w, r, dir, false);
        }
        free(dir);
        return;
    }
}

static void on_gone(void *ctx, const char *path)
{
    struct watch *w = ctx;
    /* A session directory deleted: its entities go (delete events), and one made again
     * at that path is read afresh, as scan of the tree would read it. */
    struct wroot *sr = w->stopping ? NULL : watch_root_of(w, path);
    if (sr && strlen(path) > sr->len) {
        int rc = model_forget_dir(sr->model, path + sr->len + 1);
        if (rc > 0) {
            em_log(EM_LOG_WARN, "%s: the session directory was deleted: its entities are deleted",
                   path);
            journal_files_unsee(w->j, path);
            rc = flush_models(w);
        }
        if (rc < 0)
            watch_fail(w, 1, path, rc);
    }
    for (size_t i = 0; i < w->nroots && !w->stopping; i++) {
        bool back;
        if (strcmp(w->roots[i].path, path) == 0 && root_present(w, &w->roots[i], &back) && back)
            walk_dir(w, &w->roots[i], w->roots[i].path, false);
    }
}

static void on_overflow(void *ctx, const char *path)
{
    struct watch *w = ctx;
    (void)path;
    w->overflows++;
    w->rescan_all = true;
}

/* One file of a burst, looked at before it is read. */
struct burst_file {
    struct wroot *r;
    bool on_pool; /* read whole and parsed on the pool */
    enum epu_kind kind;
    struct journal_file *rec;
};

struct burst_source {
    struct watch *w;
    struct burst_file *bf;
    size_t next;
};

/* The pool's source for a burst: the files it reads whole, in the order of the burst. */
static int burst_source_next(void *ctx, struct pool_job *job)
{
    struct burst_source *s = ctx;
    for (; s->next < s->w->burst.n; s->next++) {
        if (!s->bf[s->next].on_pool)
            continue;
        const struct burstq_item *q = &s->w->burst.v[s->next++];
        if (!(job->path = strdup(q->path)))
            return -EM_ENOMEM;
        job->kind = s->bf[s->next - 1].kind;
        job->want_hash = true;
        job->want_json = true;
        return 1;
    }
    return 0;
}

/* The files of a burst in the order they came. A file the writer closed and that is not
 * being fed already is read whole and parsed on the pool (a burst of a hundred closed
 * micrographs keeps every core busy); the others are fed here as they grow. Results are
 * taken in the burst's order either way. */
static void process_burst(struct watch *w)
{
    size_t n = w->burst.n, npool = 0;
    struct burst_file *bf = n >= BURST_POOL_MIN ? calloc(n, sizeof(*bf)) : NULL;
    for (size_t i = 0; bf && i < n && !w->stopping; i++) {
        struct burstq_item *q = &w->burst.v[i];
        struct fsio_stat st;
        bf[i].r = watch_root_of(w, q->path);
        if (!bf[i].r || !q->complete || incparse_has(w->inc, &q->key))
            continue;
        if (wanted(w, bf[i].r, &q->key, BY_EVENT, true, NULL, &bf[i].kind, &st, &bf[i].rec)) {
            bf[i].on_pool = true;
            npool++;
        } else {
            bf[i].r = NULL; /* unchanged, gone, or not an EPU file: nothing to do */
        }
    }
    if (npool >= BURST_POOL_MIN)
        em_log(EM_LOG_DEBUG, "burst of %zu files: %zu read on the pool", n, npool);
    struct burst_source src = {w, bf, 0};
    struct pool *pool =
        npool >= BURST_POOL_MIN ? pool_start(burst_source_next, &src, w->opt->threads, 128) : NULL;
    if (pool)
        pool_collect_frees(pool);
    for (size_t i = 0; i < n && !w->stopping; i++) {
        struct burstq_item *q = &w->burst.v[i];
        if (bf && bf[i].on_pool && pool) {
            struct pool_job j;
            int rc = pool_next(pool, &j);
            if (rc <= 0) { /* out of memory: the next start reads what was not taken */
                watch_fail(w, 1, q->path, rc < 0 ? rc : -EM_ENOMEM);
                break;
            }
            w->bytes += j.bytes;
            conclude(w, bf[i].r, &q->key, bf[i].kind, bf[i].rec, &j.stat, j.rc, j.doc, j.hash,
                     &j.diag, false, j.doc_json);
            j.doc = NULL;
            pool_job_done(pool, &j);
            continue;
        }
        if (bf && !bf[i].r)
            continue;
        struct wroot *r = watch_root_of(w, q->path);
        if (r)
            process(w, r, &q->key, q->complete, BY_EVENT);
    }
    pool_free(pool);
    free(bf);
}

static void on_batch(void *ctx)
{
    struct watch *w = ctx;
    process_burst(w);
    burstq_clear(&w->burst);
    if (w->rescan_all && !w->stopping) {
        w->rescan_all = false;
        w->overflow_walks++;
        walk_all(w);
    }
    if (!w->stopping)
        flush_models(w);
}

/* ---- timers and signals ---- */

static void summary(struct watch *w, bool final)
{
    uint64_t now = uv_hrtime();
    double secs = (double)(now - w->last_summary_ns) / 1e9;
    double rate = secs > 0 ? (double)(w->events_total - w->last_summary_events) / secs : 0;
    em_log(EM_LOG_INFO,
           "%s%llu files parsed (%llu failed, %llu incomplete), %llu bytes read, %llu events "
           "(%.0f/s), lag mean %.0f ms max %.0f ms, %zu in progress, %lu directories watched, "
           "%llu notification overflows, %llu rescans",
           final ? "stopped: " : "", (unsigned long long)w->files_parsed,
           (unsigned long long)w->files_failed, (unsigned long long)w->files_waiting,
           (unsigned long long)w->bytes, (unsigned long long)w->events_total, rate,
           w->lag_n ? w->lag_sum_ms / (double)w->lag_n : 0.0, w->lag_max_ms, incparse_count(w->inc),
           w->watcher ? watcher_count(w->watcher) : 0ul, (unsigned long long)w->overflows,
           (unsigned long long)w->overflow_walks);
    if (w->ob_open) {
        if (w->pub)
            publisher_stats(w->pub, &w->pub_last);
        const struct publisher_stats *b = &w->pub_last;
        /* Seqs are not dense across runs (each starts at the clock): counted, not
         * subtracted. */
        uint64_t in = w->ob_waiting_at_start + w->ob_written,
                 waiting = in > b->acked ? in - b->acked : 0;
        em_log(EM_LOG_INFO,
               "bus: %s, %llu published, confirmed up to seq %llu, %llu waiting in "
               "the outbox",
               b->connected ? "connected" : "not connected", (unsigned long long)b->acked,
               (unsigned long long)b->confirmed, (unsigned long long)waiting);
    }
    w->last_summary_ns = now;
    w->last_summary_events = w->events_total;
    w->lag_sum_ms = w->lag_max_ms = 0;
    w->lag_n = 0;
}

static void on_summary(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, summary_timer));
    summary(w, false);
}

static void on_metrics(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, metrics_timer));
    if (w->pub)
        publisher_stats(w->pub, &w->pub_last);
    metrics_write(w, true);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, heartbeat_timer));
    heartbeat_send(w, "watching");
}

static void on_poll(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, poll_timer));
    walk_all(w);
}

/* --snapshot-every: the snapshots are made when due and nothing waits to be flushed (else
 * looked at again a second later), never during a walk. */
static void on_snapshot_timer(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, snapshot_timer));
    uint64_t now = uv_hrtime();
    if (w->stopping || w->walking || w->failed ||
        (double)(now - w->snapshot_ns) < w->opt->snapshot_s * 1e9)
        return;
    int rc = snapshot_save_now(w);
    if (rc == -EM_ESTATE)
        return;
    w->snapshot_ns = uv_hrtime();
    em_log(EM_LOG_DEBUG, "snapshots made in %.2f s%s", (double)(w->snapshot_ns - now) / 1e9,
           rc < 0 ? " (not all)" : "");
}

static void on_check_timer(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, check_timer));
    check(w);
    if (!w->stopping)
        flush_models(w);
    heartbeat_if_changed(w);
}

static void on_rescan_timer(uv_timer_t *t)
{
    struct watch *w = (struct watch *)((char *)t - offsetof(struct watch, rescan_timer));
    walk_all(w);
}

#ifndef _WIN32
/* SIGHUP: reopen the log and output files (after a rotation). SIGTERM and SIGINT go
 * through on_stop_signal. */
static void on_signal(uv_signal_t *s, int signum)
{
    struct watch *w = s->data;
    (void)signum;
    if (em_log_reopen() < 0)
        em_log(EM_LOG_ERROR, "cannot reopen the log file");
    if (w->out_fd >= 0 && w->opt->out_path) {
        uv_fs_t req;
        uv_file fd = uv_fs_open(NULL, &req, w->opt->out_path,
                                UV_FS_O_WRONLY | UV_FS_O_APPEND | UV_FS_O_CREAT, 0644, NULL);
        uv_fs_req_cleanup(&req);
        if (fd >= 0) {
            uv_fs_close(NULL, &req, w->out_fd, NULL);
            uv_fs_req_cleanup(&req);
            w->out_fd = fd;
        } else {
            em_log(EM_LOG_ERROR, "%s: cannot reopen: %s", w->opt->out_path, uv_strerror(fd));
        }
    }
    em_log(EM_LOG_INFO, "reopened the log and output files");
}
#endif

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Emits what is pending and closes every handle; the loop then ends. */
static void stop(struct watch *w)
{
    if (w->stopping)
        return;
    /* A stop asked for during a restart's first walk: the restorer may still be filling
     * the models, which the drain below reads (it emitted half-restored entities again). */
    join_restorer(w);
    if (w->status == 0) {
        /* Drain: files still settling, the burst being collected and dirty entities. */
        if (w->watcher)
            watcher_flush(w->watcher);
        on_batch(w);
        if (w->hb_sent)
            heartbeat_send(w, "stopped");
    }
    w->stopping = true;
    if (w->watcher)
        watcher_close(w->watcher);
    w->watcher = NULL;
    close_handle((uv_handle_t *)&w->poll_timer);
    close_handle((uv_handle_t *)&w->summary_timer);
    close_handle((uv_handle_t *)&w->metrics_timer);
    close_handle((uv_handle_t *)&w->heartbeat_timer);
    close_handle((uv_handle_t *)&w->rescan_timer);
    close_handle((uv_handle_t *)&w->check_timer);
    close_handle((uv_handle_t *)&w->snapshot_timer);
    close_handle((uv_handle_t *)&w->busy_timer);
    close_handle((uv_handle_t *)&w->sig_hup);
    close_handle((uv_handle_t *)&w->sig_async);
    stop_async = NULL;
#ifndef _WIN32
    /* A second SIGTERM/SIGINT during the drain ends the process at once, as before. */
    if (stop_signal) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
    }
#endif
    if (w->pub) {
        /* Everything goes to the outbox first; the loop then runs until the publisher
         * has sent it (or the drain time is up) and reports that it finished. */
        if (w->status == 0)
            sink_commit(w);
        publisher_stop(w->pub, w->status == 0 ? w->opt->drain_s : 0);
    }
}

/* The publisher thread's news, on the loop thread. */
static void on_publisher(struct publisher *p, void *ctx)
{
    struct watch *w = ctx;
    struct publisher_stats st;
    publisher_stats(p, &st);
    w->pub_last = st;
    if (!st.finished) {
        heartbeat_if_changed(w);
        return;
    }
    publisher_free(p);
    w->pub = NULL;
    if (st.failed && w->status == 0)
        w->status = 1;
    if (!w->stopping) {
        em_log(EM_LOG_ERROR, "the bus publisher stopped; stopping");
        stop(w);
    }
}

/* ---- start-up ---- */

/* With --out FILE the file itself says what reached it: its last complete line's seq.
 * A torn last line (a kill in the middle of a write) is cut off. */
static int out_file_last_seq(struct watch *w, uint64_t *seq)
{
    *seq = 0;
    uv_fs_t req;
    struct fsio_stat st;
    if (fsio_stat(w->opt->out_path, &st) < 0 || st.size == 0)
        return 0;
    uint64_t want = st.size < (4u << 20) ? st.size : (4u << 20);
    int rc = fsio_read_at(w->opt->out_path, st.size - want, (size_t)want, &w->rbuf);
    if (rc < 0)
        return rc;
    size_t end = w->rbuf.len;
    while (end > 0 && w->rbuf.data[end - 1] != '\n')
        end--;
    if (end < w->rbuf.len) {
        uint64_t keep = st.size - (w->rbuf.len - end);
        em_log(EM_LOG_WARN, "%s: cutting a torn last line (%zu bytes)", w->opt->out_path,
               w->rbuf.len - end);
        int r = uv_fs_ftruncate(NULL, &req, w->out_fd, (int64_t)keep, NULL);
        uv_fs_req_cleanup(&req);
        if (r < 0)
            return -EM_EIO;
    }
    if (end == 0)
        return 0;
    size_t start = end - 1;
    while (start > 0 && w->rbuf.data[start - 1] != '\n')
        start--;
    w->rbuf.data[end - 1] = '\0';
    cJSON *ev = cJSON_Parse(w->rbuf.data + start);
    const cJSON *s = ev ? cJSON_GetObjectItemCaseSensitive(ev, "seq") : NULL;
    if (cJSON_IsNumber(s) && s->valuedouble > 0)
        *seq = (uint64_t)s->valuedouble;
    cJSON_Delete(ev);
    return 0;
}

/* Sends again what the journal holds beyond what the sink is known to have. */
static int resend_pending(struct watch *w)
{
    struct journal_info ji;
    journal_info(w->j, &ji);
    uint64_t have = ji.delivered;
    if (w->ob_open && w->ob.last_seq > have)
        have = w->ob.last_seq;
    if (w->out_fd >= 0) {
        uint64_t in_file;
        int rc = out_file_last_seq(w, &in_file);
        if (rc < 0)
            return rc;
        if (in_file > have)
            have = in_file;
    }
    size_t sent = 0;
    for (size_t i = 0; i < ji.npending; i++) {
        const struct journal_pending *p = &ji.pending[i];
        if (p->seq <= have)
            continue;
        int rc = sink_put(w, p->line, strlen(p->line), p->seq);
        if (rc < 0)
            return rc;
        w->obuf_last_seq = p->seq;
        sent++;
    }
    if (sent)
        em_log(EM_LOG_INFO, "re-sending %zu events journaled but not known to be delivered", sent);
    if (have > w->obuf_last_seq)
        w->obuf_last_seq = have;
    int rc = w->olen ? sink_commit(w) : 0;
    if (rc == 0 && ji.npending) {
        rc = journal_delivered(w->j, w->obuf_last_seq);
        journal_pending_clear(w->j);
        if (rc == 0)
            rc = journal_commit(w->j);
    }
    return rc;
}

/* The journal and the outbox must tell one story. When they do not (a deleted outbox
 * segment, a `confirmed` mark ahead of every journaled event, a journal missing beside
 * an outbox), say so loudly and recover by sending the current state of every entity
 * again — repeats are harmless, stores are idempotent — never by skipping. */
static int check_state(struct watch *w)
{
    struct journal_info jinfo;
    journal_info(w->j, &jinfo);
    const struct journal_info *j = &jinfo;
    const struct outbox_writer *o = &w->ob;
    char why[256] = "";
    if (j->fresh && (o->nsegments > 0 || o->confirmed > 0))
        snprintf(why, sizeof(why),
                 "no journal, but an outbox with %zu segment%s (confirmed up "
                 "to seq %" PRIu64 "): the journal was deleted",
                 o->nsegments, o->nsegments == 1 ? "" : "s", o->confirmed);
    else if (!j->fresh && o->confirmed > j->loaded_seq)
        snprintf(why, sizeof(why),
                 "the outbox's confirmed mark (seq %" PRIu64 ") is ahead of "
                 "every journaled event (seq %" PRIu64 ")",
                 o->confirmed, j->loaded_seq);
    else if (!j->fresh && j->loaded_delivered > o->last_seq)
        snprintf(why, sizeof(why),
                 "events up to seq %" PRIu64 " were written to the outbox, "
                 "but it holds only up to %" PRIu64 " (a segment or the outbox was deleted, or "
                 "they went to another sink)",
                 j->loaded_delivered, o->last_seq);
    if (!why[0])
        return 0;
    em_log(EM_LOG_ERROR,
           "%s: %s; the current state of every entity is sent again (stores take repeats as "
           "no change)",
           w->opt->state_dir, why);
    journal_forget(w->j);
    w->state_reset = true;
    int rc = 0;
    if (o->confirmed > j->loaded_seq || o->confirmed > o->in_segments)
        rc = outbox_forget_confirmed(&w->ob);
    if (rc < 0)
        em_log(EM_LOG_ERROR, "%s/outbox: cannot reset the confirmed mark: %s", w->opt->state_dir,
               em_strerror(rc));
    return rc;
}

static int open_roots(struct watch *w)
{
    w->roots = calloc(w->opt->ndirs, sizeof(*w->roots));
    if (!w->roots)
        return -EM_ENOMEM;
    for (size_t i = 0; i < w->opt->ndirs; i++) {
        struct wroot *r = &w->roots[w->nroots];
        char *real = fsio_realpath(w->opt->dirs[i]); /* '/' on Windows too: events use it */
        struct fsio_stat st;
        if (!real || fsio_stat(real, &st) < 0 || st.type != FSIO_DIR) {
            em_log(EM_LOG_ERROR, "%s: not a directory", w->opt->dirs[i]);
            free(real);
            return -EM_ENOENT;
        }
        size_t len = strlen(real);
        while (len > 1 && real[len - 1] == '/')
            real[--len] = '\0';
        for (size_t k = 0; k < w->nroots; k++) {
            const struct wroot *o = &w->roots[k];
            size_t n = o->len < len ? o->len : len;
            if (strncmp(o->path, real, n) == 0 && (real[n] == '/' || real[n] == '\0') &&
                (o->path[n] == '/' || o->path[n] == '\0')) {
                em_log(EM_LOG_ERROR, "%s and %s overlap: watch one or the other", o->path, real);
                free(real);
                return -EM_EINVAL;
            }
        }
        r->w = w;
        r->path = real;
        r->len = len;
        r->dev = st.dev;
        r->ino = st.ino;
        struct model_callbacks cb = {
            sink_on_emit, sink_on_retract,  watch_on_load, watch_on_rescan, r, true,
            true,         sink_on_emit_text};
        r->model = model_new(real, &cb);
        if (!r->model)
            return -EM_ENOMEM;
        w->nroots++;
    }
    return 0;
}

static void free_all(struct watch *w)
{
    for (size_t i = 0; i < w->nroots; i++) {
        model_free(w->roots[i].model); /* before the journal, whose paths it borrows */
        w->roots[i].model = NULL;
        free(w->roots[i].path);
    }
    free(w->roots);
    incparse_free(w->inc); /* files still being written when the agent stopped */
    w->inc = NULL;
    burstq_free(&w->burst);
    strvec_free(&w->unreadable);
    for (size_t i = 0; i < w->nwaiting; i++)
        free(w->waiting[i].path);
    free(w->waiting);
    for (size_t i = 0; i < w->ndatasets_due; i++)
        free(w->datasets_due[i]);
    free(w->datasets_due);
    for (size_t i = 0; i < w->nbusy; i++)
        free(w->busy[i].path);
    free(w->busy);
    strvec_free(&w->rescans);
    fsio_buf_free(&w->rbuf);
    free(w->obuf);
    journal_dircache_free(&w->jdc);
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int start(struct watch *w)
{
    const struct watch_options *o = w->opt;
    char reason[512];
    /* The roots first: the journal keeps its paths relative to them. */
    int rc = open_roots(w);
    if (rc < 0)
        return rc == -EM_ENOMEM ? 1 : 2;
    const char **roots = calloc(w->nroots ? w->nroots : 1, sizeof(*roots));
    if (!roots)
        return 1;
    for (size_t i = 0; i < w->nroots; i++)
        roots[i] = w->roots[i].path;
    w->started_ns = uv_hrtime();
    rc = journal_open(&w->j, o->state_dir, o->agent, roots, w->nroots, reason, sizeof(reason));
    free(roots);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s", reason[0] ? reason : em_strerror(rc));
        return rc == -EM_ESTATE || rc == -EM_EMALFORMED ? 2 : 1;
    }
    journal_set_fsync(w->j, o->fsync);
    /* Said without -v: a watch that prints nothing because everything was already emitted
     * must not look broken. */
    if (o->config_path)
        notice("settings read from %s", o->config_path);
    size_t live = journal_live_entities(w->j);
    struct journal_info ji;
    journal_info(w->j, &ji);
    if (ji.fresh)
        notice("new state in %s: the current state of every entity is emitted", o->state_dir);
    else if (o->from_start)
        notice("%s: --from-start: the current state of every entity is emitted again (%zu "
               "emitted before, up to seq %llu; new seqs follow)",
               o->state_dir, live, (unsigned long long)ji.loaded_seq);
    else
        notice("resuming %s: %zu entities already emitted up to seq %llu; only changes follow "
               "(--from-start emits everything again)",
               o->state_dir, live, (unsigned long long)ji.loaded_seq);
    if (o->from_start && !ji.fresh)
        journal_forget_entities(w->j);
    if (o->out_path) {
        uv_fs_t req;
        w->out_fd = uv_fs_open(NULL, &req, o->out_path,
                               UV_FS_O_RDWR | UV_FS_O_APPEND | UV_FS_O_CREAT, 0644, NULL);
        uv_fs_req_cleanup(&req);
        if (w->out_fd < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot open: %s", o->out_path, uv_strerror(w->out_fd));
            return 2;
        }
    }
    if (o->amqp) {
        rc = outbox_open(&w->ob, o->state_dir, o->fsync, reason, sizeof(reason));
        if (rc < 0) {
            em_log(EM_LOG_ERROR, "%s", reason);
            outbox_close(&w->ob);
            return 1;
        }
        w->ob_open = true;
        rc = check_state(w);
        if (rc < 0)
            return 1;
        uint64_t first, last;
        if (outbox_count_waiting(o->state_dir, &w->ob_waiting_at_start, &first, &last) < 0)
            w->ob_waiting_at_start = 0;
    }
    rc = resend_pending(w);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "cannot re-send pending events: %s", em_strerror(rc));
        return 1;
    }
    if (o->amqp) {
        struct publisher_options po = {.target = o->amqp,
                                       .state_dir = o->state_dir,
                                       .agent = o->agent,
                                       .window = o->amqp_window};
        rc = publisher_start(&w->loop, &po, on_publisher, w, &w->pub);
        if (rc < 0) {
            em_log(EM_LOG_ERROR, "cannot start the bus publisher: %s", em_strerror(rc));
            return 1;
        }
        w->pub_last.confirmed = w->ob.confirmed;
        publisher_notify(w->pub, w->ob.last_seq);
        em_log(EM_LOG_INFO,
               "publishing to %s; outbox holds events up to seq %llu, confirmed "
               "up to %llu",
               o->amqp->redacted, (unsigned long long)w->ob.last_seq,
               (unsigned long long)w->ob.confirmed);
    }
    if (o->poll_s <= 0) {
        struct watcher_options wo = {.settle_ms = o->settle_ms, .change_buffer = o->change_buffer};
        struct watcher_callbacks cb = {.file = on_file,
                                       .dir = on_dir,
                                       .overflow = on_overflow,
                                       .batch = on_batch,
                                       .gone = on_gone,
                                       .dir_attrib = on_dir_attrib,
                                       .ctx = w};
        rc = watcher_new(&w->loop, &wo, &cb, &w->watcher);
        if (rc < 0) {
            em_log(EM_LOG_ERROR, "cannot start the %s watcher: %s (try --poll)", watcher_backend(),
                   em_strerror(rc));
            return 1;
        }
    }
    uv_signal_init(&w->loop, &w->sig_hup);
    w->sig_hup.data = w;
    uv_async_init(&w->loop, &w->sig_async, on_stop_async);
    w->sig_async.data = w;
    stop_async = &w->sig_async;
    if (stop_signal) /* it came while the state directory was being opened */
        uv_async_send(&w->sig_async);
#ifdef _WIN32
    if (!stopped_event)
        stopped_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(on_console, TRUE);
#endif
    w->progress = !cli_quiet && uv_guess_handle(2) == UV_TTY;
#if defined(SIGHUP) && !defined(_WIN32) /* on Windows libuv's SIGHUP is the console closing */
    uv_signal_start(&w->sig_hup, on_signal, SIGHUP);
#endif
    uv_timer_init(&w->loop, &w->poll_timer);
    uv_timer_init(&w->loop, &w->summary_timer);
    uv_timer_init(&w->loop, &w->metrics_timer);
    uv_timer_init(&w->loop, &w->heartbeat_timer);
    uv_timer_init(&w->loop, &w->rescan_timer);
    uv_timer_init(&w->loop, &w->check_timer);
    uv_timer_init(&w->loop, &w->busy_timer);
    uv_timer_init(&w->loop, &w->snapshot_timer);
    w->last_summary_ns = uv_hrtime();
    uint64_t t0 = uv_hrtime();
    journal_info(w->j, &ji); /* again: check_state() may have reset it */
    w->walk_started_ns = t0;
    for (size_t i = 0; i < w->nroots; i++)
        w->roots[i].model_whole = ji.fresh; /* else: once restored, or walked whole */
    if (!ji.fresh && !o->from_start && !w->state_reset && !w->failed) {
        /* The snapshots are read on another thread while the walk lists and stats the
         * tree; the walk waits for them before it takes in a file (finish_restore). */
        w->files_after_mark = journal_files_after_mark(w->j);
        w->restoring = uv_thread_create(&w->restorer, restore_all, w) == 0;
        if (!w->restoring) {
            restore_all(w);
            for (size_t i = 0; i < w->nroots; i++)
                if (w->roots[i].restore_rc < 0)
                    watch_fail(w, 1, w->roots[i].path, w->roots[i].restore_rc);
        }
    }
    walk_all(w);
    if (w->restoring) { /* no root was walked (all gone): still wait for it */
        struct wroot none = {0};
        finish_restore(w, &none);
    }
    if (w->status)
        return w->status;
    struct model_stats ms = {0};
    for (size_t i = 0; i < w->nroots; i++) {
        struct model_stats one;
        model_stats(w->roots[i].model, &one);
        ms.sessions += one.sessions;
        ms.squares += one.squares;
        ms.holes += one.holes;
        ms.micrographs += one.micrographs;
        ms.held += one.held;
    }
    em_log(EM_LOG_INFO,
           "initial walk: %llu files parsed, %llu unchanged since the last run, in %.2f s; "
           "%zu sessions, %zu squares, %zu holes, %zu micrographs (%zu waiting for a session "
           "file); %llu events; watching with %s",
           (unsigned long long)w->files_parsed, (unsigned long long)w->files_trusted,
           (double)(uv_hrtime() - t0) / 1e9, ms.sessions, ms.squares, ms.holes, ms.micrographs,
           ms.held, (unsigned long long)w->events_total,
           o->poll_s > 0 ? "polling" : watcher_backend());
    metrics_write(w, true);
    if (o->exit_idle) {
        stop(w);
        return 0;
    }
    heartbeat_send(w, "watching");
    if (o->heartbeat_s > 0)
        uv_timer_start(&w->heartbeat_timer, on_heartbeat, (uint64_t)(o->heartbeat_s * 1000),
                       (uint64_t)(o->heartbeat_s * 1000));
    if (o->metrics_path)
        uv_timer_start(&w->metrics_timer, on_metrics, METRICS_EVERY_S * 1000,
                       METRICS_EVERY_S * 1000);
    if (o->poll_s > 0) {
        uint64_t ms_period = (uint64_t)(o->poll_s * 1000);
        uv_timer_start(&w->poll_timer, on_poll, ms_period ? ms_period : 1,
                       ms_period ? ms_period : 1);
    }
    if (o->summary_s > 0)
        uv_timer_start(&w->summary_timer, on_summary, (uint64_t)(o->summary_s * 1000),
                       (uint64_t)(o->summary_s * 1000));
    if (o->check_s > 0)
        uv_timer_start(&w->check_timer, on_check_timer, (uint64_t)(o->check_s * 1000),
                       (uint64_t)(o->check_s * 1000));
    w->snapshot_ns = uv_hrtime();
    if (o->snapshot_s > 0 && !o->exit_idle) /* looked at each second; made when due */
        uv_timer_start(&w->snapshot_timer, on_snapshot_timer,
                       o->snapshot_s < 1 ? (uint64_t)(o->snapshot_s * 1000) : 1000,
                       o->snapshot_s < 1 ? (uint64_t)(o->snapshot_s * 1000) : 1000);
    if (o->rescan_s > 0)
        uv_timer_start(&w->rescan_timer, on_rescan_timer, (uint64_t)(o->rescan_s * 1000),
                       (uint64_t)(o->rescan_s * 1000));
    return 0;
}

int watch_run(const struct watch_options *opt)
{
    struct watch w;
    memset(&w, 0, sizeof(w));
    w.opt = opt;
    w.out = stdout;
    w.lag_last_ms = -1;
    w.started_unix = (uint64_t)time(NULL);
    w.out_fd = -1;
#ifdef SIGPIPE
    /* A closed stdout must be an error we report, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
#endif
    stop_signal = 0;
    stop_why = NULL;
#ifndef _WIN32
    /* From the first moment: a SIGTERM while the state directory, the journal and the
     * snapshot are opened (seconds on a large visit) stops the watch with exit 0 as soon
     * as it can, instead of killing it half-open. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
#endif
    if (!(w.inc = incparse_new(MAX_PARTIALS))) {
        em_log(EM_LOG_ERROR, "out of memory");
        return 1;
    }
    if (uv_loop_init(&w.loop) < 0) {
        em_log(EM_LOG_ERROR, "cannot start the event loop");
        incparse_free(w.inc);
        return 1;
    }
    int status = start(&w);
    if (status != 0) {
        w.status = status;
        stop(&w);
    } else {
        uv_run(&w.loop, UV_RUN_DEFAULT);
    }
    if (w.status == 0 && sink_commit(&w) < 0 && w.status == 0)
        w.status = 1;
    if (w.status == 0 && !w.failed && w.j) {
        /* The journal is compacted on a thread while the snapshots are written: both are
         * a whole visit's worth (0.3 s each at 600,000 files), and independent. */
        uint64_t mark = snapshot_mark_at_end(&w); /* before: the compaction writes the mark */
        journal_compact_start(w.j);
        snapshot_save_all(&w, mark);
        journal_compact_join(w.j);
    }
    if (w.pub) { /* a failed start: no drain */
        publisher_free(w.pub);
        w.pub = NULL;
    }
    if (opt->summary_s > 0 || w.status == 0)
        summary(&w, true);
    metrics_write(&w, false);
    if (w.ob_open) {
        outbox_close(&w.ob);
        w.ob_open = false;
        /* Seqs are not dense (each run starts at the clock), so the events are counted. */
        uint64_t waiting, first, last;
        if (outbox_count_waiting(opt->state_dir, &waiting, &first, &last) == 0 && waiting)
            em_log(EM_LOG_WARN,
                   "%llu events wait in the outbox (seq %llu to %llu); they are published at "
                   "the next start",
                   (unsigned long long)waiting, (unsigned long long)first,
                   (unsigned long long)last);
    }
    for (size_t i = 0; i < w.nroots; i++) {
        model_free(w.roots[i].model); /* it borrows the journal's paths */
        w.roots[i].model = NULL;
    }
    int jrc = journal_close(w.j);
    w.j = NULL;
    if (jrc < 0) {
        em_log(EM_LOG_ERROR, "cannot write the journal on exit: %s", em_strerror(jrc));
        if (w.status == 0)
            w.status = 1;
    }
    if (w.out_fd >= 0) {
        uv_fs_t req;
        uv_fs_close(NULL, &req, w.out_fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    /* Close whatever is still open (after a failed start) and let the close callbacks run. */
    uv_walk(&w.loop, walk_close_cb, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w.loop) != 0)
        em_log(EM_LOG_WARN, "event loop closed with handles still open");
    free_all(&w);
#ifdef _WIN32
    SetConsoleCtrlHandler(on_console, FALSE);
    if (stopped_event)
        SetEvent(stopped_event);
#endif
    return w.status;
}
