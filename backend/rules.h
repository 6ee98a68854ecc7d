/* rules.h — jobs made from incoming events (issue 15), in consume and ingest.
 *
 * Today one rule, `--movies BASE_URL`: every micrograph stored makes a `movie` job that
 * fetches its movie from BASE_URL + the micrograph's path (the acquisition PC's share as
 * the central machine sees it). A rule's job carries a key (`movie:<session>:<uuid>`), so
 * it is made once per micrograph however often its event is delivered.
 */
#ifndef EM_RULES_H
#define EM_RULES_H

#include <stddef.h>

#include "ev.h"

struct store;

struct rules {
    const char *movie_base; /* NULL: no movie jobs */
};

/* Makes the jobs the rules ask for `n` stored events. Returns 0 or EM_EIO with a reason. */
int rules_fire(struct store *s, const struct rules *r, const struct ev *evs, size_t n, char *reason,
               size_t cap);

#endif
