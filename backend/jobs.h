/* jobs.h — loader jobs in the store (issue 15), on SQLite and PostgreSQL alike.
 *
 * A job names a loader and its parameters (a JSON array of strings). Its status goes
 * pending → processing (claimed by a runner, with a lease) → saving-data (its files are
 * fetched and verified, its record written complete) → complete (an agent saw the
 * output and `consume`/`ingest` stored the dataset: jobs_dataset_seen()); or back to
 * pending after a transient failure (not before a back-off time), or failed after
 * max_attempts or a permanent failure; cancelled by hand. A runner renews its lease while
 * it works; a runner that dies loses it, and another claims the job again. Every time
 * compared across runners is the store's own clock, in epoch seconds.
 *
 * Claiming is one statement: `UPDATE … WHERE id = (SELECT … LIMIT 1 [FOR UPDATE SKIP
 * LOCKED]) RETURNING …`, so two runners never hold the same job (PostgreSQL skips rows
 * another runner is claiming; SQLite serialises writers).
 */
#ifndef EM_JOBS_H
#define EM_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "store.h"

struct job {
    int64_t id;
    char loader[32];
    cJSON *params; /* an array of strings (owned) */
    char status[16];
    int attempts, max_attempts;
    char last_error[512];
    int64_t bytes_done, bytes_total; /* bytes_total -1: not known */
    char claimed_by[128];
    int64_t lease_until;
    char created_at[40], updated_at[40];
    char output_dir[1024], dataset[256];
};

void job_free(struct job *j);

/* The job as a JSON object (for `job list --json`, `job show`): NULL when out of memory. */
cJSON *job_to_json(const struct job *j);

/* Adds a pending job. With `rule_key`, a job with that key already there is kept and *id
 * is 0 (a rule fires once per entity). Returns 0, or EM_EIO with a reason. */
int jobs_add(struct store *s, const char *loader, const cJSON *params, const char *rule_key,
             int max_attempts, int64_t *id, char *reason, size_t cap);

/* Calls `cb` for each job (by id; status NULL: all). Returns 0 or EM_EIO. */
int jobs_list(struct store *s, const char *status, int (*cb)(void *ctx, const struct job *j),
              void *ctx, char *reason, size_t cap);

/* One job: 1 found, 0 not, or EM_EIO. */
int jobs_get(struct store *s, int64_t id, struct job *out, char *reason, size_t cap);

/* cancel: a pending or running job becomes cancelled (its runner stops at its next lease
 * renewal). retry: a failed or cancelled job is pending again, its attempts reset.
 * 1 done, 0 the job is not in a state that allows it (or does not exist), or EM_EIO. */
int jobs_cancel(struct store *s, int64_t id, char *reason, size_t cap);
int jobs_retry(struct store *s, int64_t id, char *reason, size_t cap);

/* Claims the oldest job that is pending (and past its back-off) or whose lease ran out,
 * for `runner` with a lease of `lease_s` seconds. Jobs whose lease ran out after their
 * last attempt are failed first. 1 claimed into *out, 0 none, or EM_EIO. */
int jobs_claim(struct store *s, const char *runner, int lease_s, struct job *out, char *reason,
               size_t cap);

/* Renews the lease and records progress. 1 the job is still this runner's and running,
 * 0 it is not (cancelled, or claimed by another after the lease ran out): stop it. */
int jobs_renew(struct store *s, int64_t id, const char *runner, int lease_s, int64_t bytes_done,
               int64_t bytes_total, char *reason, size_t cap);

/* Records the dataset this runner's attempt makes (its record's id) and its directory, as
 * soon as the record's stub is written, so that the agent's sighting can be matched to
 * the job. 1 recorded, 0 not this runner's job any more, or EM_EIO. */
int jobs_set_dataset(struct store *s, int64_t id, const char *runner, const char *dataset,
                     const char *output_dir, char *reason, size_t cap);

/* An agent saw the dataset `dataset` of job `id` complete and the store has it: a job
 * that is running or waiting for that sighting ("saving-data") with that dataset becomes
 * "complete". Idempotent. 1 completed now, 0 nothing to do, or EM_EIO. */
int jobs_dataset_seen(struct store *s, int64_t id, const char *dataset, char *reason, size_t cap);

/* Ends this runner's attempt: status "saving-data" (its files are all there and its
 * record says complete: the job waits for an agent to see it; with output_dir and
 * dataset), "failed" (permanent: with error), or "retry" (transient: pending again after
 * `retry_after_s`, or failed when the attempts are used up). 1 recorded, 0 the job was not this
 * runner's any more, or EM_EIO. */
int jobs_finish(struct store *s, int64_t id, const char *runner, const char *status,
                const char *error, const char *output_dir, const char *dataset, int retry_after_s,
                char *reason, size_t cap);

#endif
