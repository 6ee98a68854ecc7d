/* rules.h — jobs made from incoming events (issue 15), in consume and ingest.
 *
 * A rules file (`--rules FILE`, or `rules = FILE` in the config file) holds one rule a
 * line: an entity type, then the loader and its arguments, in which {placeholders} take
 * the stored event's values:
 *
 *     # every micrograph: its movie from the acquisition PC's share, into central storage
 *     micrograph  movie  file:///mnt/krios1-share/  {path}
 *     # a session: nothing (no rule names it)
 *
 * Placeholders: {path} (the file the event came from, relative to the agent's watched
 * directory), {agent}, {session_id}, {atlas_id}, {gridsquare_id}, {foilhole_id},
 * {micrograph_uuid}, {loader}, {dataset_id}. A rule whose placeholder the event lacks
 * does not fire for it. `--movies BASE_URL` is the rule `micrograph movie BASE_URL
 * {path}`.
 *
 * A rule fires once per entity however often its event is delivered: each job carries a
 * key made of the rule and the entity's key, and the store keeps one job per key.
 */
#ifndef EM_RULES_H
#define EM_RULES_H

#include <stddef.h>

#include "ev.h"

struct store;

#define RULES_MAX 64
#define RULE_MAX_ARGS 16

struct rule {
    enum wire_type type;
    char loader[32];
    char *args[RULE_MAX_ARGS];
    size_t nargs;
    char id[20]; /* a hash of the rule's text: part of its jobs' keys */
};

struct rules {
    struct rule v[RULES_MAX];
    size_t n;
};

/* Reads the rules file at `path` into r (added to what is there). Returns 0, or
 * EM_EUSAGE with "PATH:LINE: reason" in `why`. */
int rules_load(struct rules *r, const char *path, char *why, size_t cap);

/* Adds the rule of `--movies BASE_URL`. Returns 0 or EM_ENOMEM / EM_ELIMIT. */
int rules_add_movies(struct rules *r, const char *base);

void rules_free(struct rules *r);

/* Makes the jobs the rules ask for `n` stored events. Returns 0 or EM_EIO with a reason. */
int rules_fire(struct store *s, const struct rules *r, const struct ev *evs, size_t n, char *reason,
               size_t cap);

#endif
