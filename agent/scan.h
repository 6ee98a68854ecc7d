/* scan.h — one pass over a finished (or partial) session or visit, printing its final
 * entities as events (em-agent scan). */
#ifndef EM_SCAN_H
#define EM_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"

struct scan_options {
    const char *dir;   /* a visit (storage root) or one session directory */
    const char *agent; /* the events' "agent" */
    unsigned threads;  /* parser threads, at least 1 */
    bool progress;     /* redraw a progress line on stderr */
    FILE *out;         /* where the JSON lines go */
};

struct scan_summary {
    size_t files_walked;              /* regular files under dir */
    size_t files_parsed;              /* EPU files parsed */
    size_t files_failed;              /* unreadable or malformed EPU files (each logged) */
    size_t dirs_failed;               /* directories that could not be listed (each logged) */
    size_t files_skipped;             /* EPU files of sessions without a usable EpuSession.dm */
    size_t sessions_skipped;          /* session dirs without EpuSession.dm */
    size_t unplaced;                  /* EPU-named files outside any session layout */
    size_t bytes;                     /* bytes parsed */
    uint64_t events[WIRE_TYPE_COUNT]; /* per event type (event.h order) */
    double seconds;
    bool output_failed; /* the error returned came from writing the events */
};

/* Scans opt->dir and writes events to opt->out. Returns 0 (per-file problems are logged
 * and counted in *sum, not fatal), EM_ENOENT when dir is not a directory, EM_EIO when
 * output fails, or EM_ENOMEM. */
int scan_run(const struct scan_options *opt, struct scan_summary *sum);

#endif
