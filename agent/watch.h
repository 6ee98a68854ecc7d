/* watch.h — em-agent: watch: follow EPU output live and emit every entity change once
 * (DESIGN §5–6).
 *
 * The run: open the journal (state directory), re-send events it holds that the sink may
 * not have taken, subscribe to changes, walk each root (adding a watch to each directory
 * before listing it, so there is no blind window), parse what is there, then follow
 * changes until SIGTERM or SIGINT. Growing files are fed to the push parser as they grow;
 * incomplete documents wait; entities whose merged state changed are emitted as JSON
 * lines with the next seq, journaled before they reach the sink.
 */
#ifndef EM_WATCH_H
#define EM_WATCH_H

#include <stdbool.h>
#include <stddef.h>

struct bus_target;

struct watch_options {
    const char *const *dirs; /* storage roots or session directories */
    size_t ndirs;
    const char *agent;             /* the events' "agent" */
    const char *state_dir;         /* journal and lock */
    const char *out_path;          /* NULL: stdout */
    double poll_s;                 /* > 0: poll every this many seconds instead of notifications */
    unsigned threads;              /* parser threads for walks (at least 1) */
    unsigned settle_ms;            /* quiet time for the fs-event backend */
    size_t change_buffer;          /* Windows: change-notification bytes per root (0: default) */
    double summary_s;              /* > 0: log a summary line this often */
    double rescan_s;               /* > 0: also walk everything this often (insurance) */
    bool fsync;                    /* fdatasync the journal at each commit */
    bool exit_idle;                /* exit 0 once the initial walk is done (tests, one-shot use) */
    const struct bus_target *amqp; /* non-NULL: publish through the outbox to this bus */
    unsigned amqp_window;          /* unconfirmed messages in flight (0: default) */
    double drain_s;                /* on stop, wait this long for the bus to confirm */
    double check_s;                /* > 0: check roots and retry unreadable directories */
    bool exit_on_root_loss;        /* a root deleted or renamed ends the run with status 1 */
    double incomplete_s;           /* > 0: a document incomplete this long counts as unreadable */
    bool from_start;               /* emit the current state of every entity again */
    const char *config_path;       /* the config file read, for the start-up notice (or NULL) */
    const char *metrics_path;      /* Prometheus text file, rewritten every 15 s (or NULL) */
    double heartbeat_s;            /* > 0: an `agent` event this often and on state changes */
    double snapshot_s;             /* > 0: a model snapshot this often, when it changed */
};

/* Runs until stopped. Returns 0 (stopped by a signal, or exit_idle), 1 when the output,
 * the journal or the watch fails, 2 for a bad setting (missing directory, state
 * directory in use); the reason is logged. */
int watch_run(const struct watch_options *opt);

/* Asks the running watch to finish and stop, as SIGTERM does: from any thread, a signal
 * handler or a Windows console or service control handler. `why` (a string that lives
 * for the program, e.g. "service stop") is logged. Does nothing when no watch runs. */
void watch_request_stop(const char *why);

/* The first words of a model snapshot of the format this build reads (watch_snapshot.c;
 * `status` tells from them whether a start can use one). Format 3 (2026-12-04): session
 * records carry their session id, and a session or atlas file changed while the agent was
 * down no longer makes the snapshot unusable. */
#define WATCH_SNAPSHOT_MAGIC "em-agent model 3"

#endif
