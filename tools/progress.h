/* progress.h — a one-line progress display on stderr for long records and replays.
 *
 * Only draws when stderr is a terminal and not `quiet`; redraws at most 5 times a second;
 * progress_done() ends the line. Single-threaded.
 */
#ifndef EM_PROGRESS_H
#define EM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
    bool on;
    uint64_t start_ns, last_ns;
    bool drawn;
};

void progress_init(struct progress *p, bool quiet);
/* Draws `what` with a bar when `total` > 0 (done/total), else a counter line. `force`
 * draws even if drawn less than 0.2 s ago. */
void progress_show(struct progress *p, const char *what, uint64_t done, uint64_t total,
                   const char *detail, bool force);
void progress_done(struct progress *p);

#endif
