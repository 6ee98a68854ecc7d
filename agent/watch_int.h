/* watch_int.h — what the parts of `em-agent watch` share (not an interface for others):
 * the watch's state and the functions one part calls in another.
 *   watch.c          the loop: start-up, walks, watcher callbacks, timers, signals, stop
 *   incparse.c       per-file incremental parsing (files fed as they grow)
 *   burstq.c         the burst queue (each path once per burst)
 *   watch_sink.c     events: journal first, then stdout, --out or the outbox; delivered
 *   watch_snapshot.c the model snapshot a restart resumes from
 */
#ifndef EM_WATCH_INT_H
#define EM_WATCH_INT_H

#include "watch.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dynbuf.h"
#include "em_error.h"
#include "epu.h"
#include "event.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "incparse.h"
#include "burstq.h"
#include "cli_common.h"
#include "journal.h"
#include "jsonw.h"
#include "log.h"
#include "model.h"
#include "outbox.h"
#include "publisher.h"
#include "epu_layout.h"
#include "pool.h"
#include "tree.h"
#include "watcher.h"

struct watch;

struct wroot {
    struct watch *w;
    char *path; /* absolute, no trailing '/' */
    size_t len;
    struct model *model;
    uint64_t dev, ino;      /* the directory first seen at `path` */
    bool lost;              /* gone, or replaced: reported, waiting for it */
    bool restored;          /* the model came from the snapshot: files the journal has in the
                               same version are not read again */
    int restore_rc;         /* the restore's outcome: 0, or a negative EM_E* (memory) */
    uint64_t trusted_early; /* files trusted while the restore ran (undone if it failed) */
    struct journal_dircache restore_dc;  /* the restorer's lookups */
    struct journal_dircache prefetch_dc; /* and its hints, some paths ahead */
    /* The model holds every file the journal has under the root (the journal was new,
     * the snapshot was restored, or a walk of the root went to its end): only then may a
     * snapshot be written. Not so after a failed restore until the tree is read again: a
     * stop in between wrote an empty snapshot that the next start trusted with every
     * file. */
    bool model_whole;
    /* The snapshot on disk holds the model as it was when model_changes() said
     * snap_changes (read back, or written, in this run). */
    bool snap_current;
    uint64_t snap_changes;
};

struct watch {
    const struct watch_options *opt;
    uv_loop_t loop;
    struct journal *j;
    struct journal_dircache jdc; /* the loop thread's journal lookups: a walk's directory */
    struct pfor *statter;        /* a walk's second thread for the stats of a known directory */
    bool statter_tried;
    struct watcher *watcher;
    struct wroot *roots;
    size_t nroots;
    struct incparse *inc; /* files being fed to their parsers as they grow */
    struct fsio_buf rbuf;
    uint64_t started_ns; /* when the journal was opened */
    /* The model snapshots are being restored on another thread while the first walk
     * lists and stats the tree; the walk trusts unchanged files provisionally. */
    bool restoring;
    uv_thread_t restorer;
    uint64_t restore_ns;      /* how long the restore took */
    uint64_t walk_started_ns; /* when the first walk began */
    size_t files_after_mark;  /* at the start: files the snapshots do not hold (read again) */
    uv_timer_t snapshot_timer;
    uint64_t snapshot_ns; /* when snapshots were last made (or the run began) */
    /* the burst being collected */
    struct burstq burst;
    bool rescan_all;
    /* output */
    FILE *out;
    uv_file out_fd; /* --out FILE, or -1 */
    char *obuf;
    size_t olen, ocap;
    uint64_t obuf_first_seq, obuf_last_seq;
    /* the bus (--amqp) */
    struct outbox_writer ob;
    bool ob_open;
    uint64_t ob_waiting_at_start; /* unconfirmed events found in the outbox at start */
    uint64_t ob_written;          /* events written to it in this run */
    struct publisher *pub;
    struct publisher_stats pub_last; /* as last reported */
    /* timers and signals */
    uv_timer_t poll_timer, summary_timer, rescan_timer, check_timer, busy_timer, metrics_timer,
        heartbeat_timer;
    /* what the last heartbeat said of the bus and the roots (heartbeat_if_changed) */
    int hb_bus;
    size_t hb_lost, hb_unreadable;
    bool hb_sent;
    /* directories that could not be read: reported once, retried by the check */
    struct strvec unreadable;
    /* session directories the model asked to read again, walked at the next flush */
    struct strvec rescans;
    /* documents found incomplete, and since when (ms): withdrawn by the check when they
     * stay so for --incomplete-after */
    struct waiting {
        char *path;
        uint64_t since_ms;
    } * waiting;
    size_t nwaiting, waiting_cap;
    /* loader records (dataset.h) a walk found: read once the walk's files are taken in
     * (a restore may still be reading the journal while the walk runs) */
    char **datasets_due;
    size_t ndatasets_due, datasets_due_cap;
    /* files another process holds open without sharing (Windows), and since when: read
     * again every second, never counted as failed */
    struct busy {
        char *path;
        uint64_t since_ms;
        bool told; /* "still in use" was logged */
    } * busy;
    size_t nbusy, busy_cap;
    uv_signal_t sig_hup;  /* SIGTERM and SIGINT: sigaction, or the Windows console handler */
    uv_async_t sig_async; /* SIGTERM/SIGINT, from the handler (see on_stop_signal) */
    bool walking;
    /* the walk's progress line on a terminal */
    bool progress;
    uint64_t progress_ns;
    size_t walk_found, walk_done, walk_total;
    bool stopping;
    int status; /* the exit status so far */
    /* statistics */
    uint64_t files_parsed, files_failed, files_waiting, bytes, events[WIRE_TYPE_COUNT],
        events_total;
    uint64_t files_trusted;  /* unchanged since the snapshot: not read */
    uint64_t overflows;      /* the watcher lost notifications (its buffer overflowed) */
    uint64_t overflow_walks; /* whole walks after overflows */
    uint64_t last_summary_ns, last_summary_events;
    double lag_max_ms, lag_sum_ms;
    uint64_t lag_n;
    double lag_last_ms;       /* the newest live event's lag (-1: none yet) */
    uint64_t started_unix;    /* for --metrics-file */
    bool metrics_failed_told; /* a failed write of the metrics file was logged */
    bool failed;              /* watch_fail() was called: the run is stopping */
    bool state_reset;         /* the journal's entities were forgotten at start */
};

/* Said without -v, unless -q. */
#define notice(...)                                                                                \
    do {                                                                                           \
        if (!cli_quiet)                                                                            \
            em_log_write(EM_LOG_INFO, __VA_ARGS__);                                                \
    } while (0)

/* watch.c */
void watch_fail(struct watch *w, int status, const char *what, int rc);
struct wroot *watch_root_of(struct watch *w, const char *path);
/* The path of `f` relative to the root `r`, written into buf. */
const char *watch_rec_rel(const struct watch *w, const struct wroot *r,
                          const struct journal_file *f, char *buf, size_t cap);
bool watch_same_version(const struct journal_file *f, const struct fsio_stat *st);
struct epu_doc *watch_on_load(void *ctx, const char *rel, enum epu_kind kind, struct fsio_stat *st);
void watch_on_rescan(void *ctx, const char *session_dir);

/* watch_sink.c */
int sink_commit(struct watch *w);
void sink_fail_write(struct watch *w, const char *what, int rc);
int sink_put(struct watch *w, const char *s, size_t n, uint64_t seq);
int sink_on_retract(void *ctx, enum wire_type type, cJSON *key, const char *source);
/* The heartbeat: an `agent` event with this data (taken), journaled and sent at once. */
int sink_heartbeat(struct watch *w, char *data_json);
int sink_on_emit_text(void *ctx, enum wire_type type, cJSON *key, char *data_json,
                      const char *source, const struct fsio_stat *st);
int sink_on_emit(void *ctx, enum wire_type type, cJSON *key, cJSON *data, const char *source,
                 const struct fsio_stat *st);

/* watch_snapshot.c */
/* Restores r->model from its snapshot when there is a usable one (r->restored), else
 * leaves it new. Touches only r->model and files of the state directory, so it may run
 * on another thread while the walk lists the tree. Returns 0 or -EM_ENOMEM. */
/* watch_metrics.c: the Prometheus text file of --metrics-file (written whole, then renamed
 * over the old one, so that a collector never reads half of it). */
#define METRICS_EVERY_S 15
void metrics_write(struct watch *w, bool up);
/* The heartbeat (type `agent`, --heartbeat): `state` is "watching" or "stopped". Does
 * nothing without --heartbeat or with --once. Remembers what it said, so that
 * heartbeat_if_changed() sends one only when the bus or a root changed state. */
void heartbeat_send(struct watch *w, const char *state);
void heartbeat_if_changed(struct watch *w);

int snapshot_restore(struct watch *w, struct wroot *r);
/* The end of a run, in two halves around the journal's last compaction (which runs on a
 * thread beside the second): snapshot_mark_at_end() marks the journal (journal_mark()) when
 * a snapshot changes or files were noted since the last mark, and returns the mark's id
 * (0: none made); snapshot_save_all() then writes the snapshots that changed and each
 * one's mark file. */
uint64_t snapshot_mark_at_end(struct watch *w);
void snapshot_save_all(struct watch *w, uint64_t id);
/* While watching (--snapshot-every): snapshots that changed are written, then the journal
 * is marked and committed, then the mark files written. Returns 0, -EM_ESTATE when a model
 * has changes not yet flushed (try again soon), or another negative EM_E*. */
int snapshot_save_now(struct watch *w);
int snapshot_write_synced(const char *path, const char *tmp, int (*fill)(FILE *f, void *ctx),
                          void *ctx);
/* The same, removing the file `drop` (when not NULL) just before the rename. */
int snapshot_write_synced_then(const char *path, const char *tmp, int (*fill)(FILE *f, void *ctx),
                               void *ctx, const char *drop);
int snapshot_fill_text(FILE *f, void *ctx);

/* Whether a stop (a signal, a service stop) was asked for: for threads other than the
 * loop's, which may not stop() themselves (the restorer's waits). */
bool watch_stop_pending(void);

#endif
