/* Loader jobs in the store (jobs.h). */
#include "jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "log.h"

/* The store's clock, in epoch seconds, and as text for people. */
static const char *now_s(const struct store *s)
{
    return s->dialect == SQL_POSTGRES ? "CAST(extract(epoch from now()) AS BIGINT)" : "unixepoch()";
}

static const char *now_text(const struct store *s)
{
    return s->dialect == SQL_POSTGRES ? "to_char(now() AT TIME ZONE 'UTC', "
                                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                                      : "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";
}

#define JOB_COLS                                                                                   \
    "id, loader, params, status, attempts, max_attempts, last_error, bytes_done, bytes_total, "    \
    "claimed_by, lease_until, created_at, updated_at, output_dir, dataset"

void job_free(struct job *j)
{
    if (j) {
        cJSON_Delete(j->params);
        j->params = NULL;
    }
}

static int64_t num(const char *v, int64_t dflt)
{
    return v ? (int64_t)strtoll(v, NULL, 10) : dflt;
}

static void text(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v ? v : "");
}

/* One row of JOB_COLS into a job. */
static int row_to_job(int ncols, const char *const *vals, struct job *j)
{
    if (ncols < 15)
        return -EM_EINVAL;
    memset(j, 0, sizeof(*j));
    j->id = num(vals[0], 0);
    text(j->loader, sizeof(j->loader), vals[1]);
    j->params = vals[2] ? cJSON_Parse(vals[2]) : NULL;
    if (!j->params)
        j->params = cJSON_CreateArray();
    text(j->status, sizeof(j->status), vals[3]);
    j->attempts = (int)num(vals[4], 0);
    j->max_attempts = (int)num(vals[5], 0);
    text(j->last_error, sizeof(j->last_error), vals[6]);
    j->bytes_done = num(vals[7], 0);
    j->bytes_total = num(vals[8], -1);
    text(j->claimed_by, sizeof(j->claimed_by), vals[9]);
    j->lease_until = num(vals[10], 0);
    text(j->created_at, sizeof(j->created_at), vals[11]);
    text(j->updated_at, sizeof(j->updated_at), vals[12]);
    text(j->output_dir, sizeof(j->output_dir), vals[13]);
    text(j->dataset, sizeof(j->dataset), vals[14]);
    return j->params ? 0 : -EM_ENOMEM;
}

cJSON *job_to_json(const struct job *j)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)j->id);
    cJSON_AddStringToObject(o, "loader", j->loader);
    cJSON *p = cJSON_Duplicate(j->params, true);
    if (p)
        cJSON_AddItemToObject(o, "params", p);
    cJSON_AddStringToObject(o, "status", j->status);
    cJSON_AddNumberToObject(o, "attempts", j->attempts);
    cJSON_AddNumberToObject(o, "max_attempts", j->max_attempts);
    if (j->last_error[0])
        cJSON_AddStringToObject(o, "error", j->last_error);
    else
        cJSON_AddNullToObject(o, "error");
    cJSON_AddNumberToObject(o, "bytes_done", (double)j->bytes_done);
    if (j->bytes_total >= 0)
        cJSON_AddNumberToObject(o, "bytes_total", (double)j->bytes_total);
    else
        cJSON_AddNullToObject(o, "bytes_total");
    if (j->claimed_by[0]) {
        cJSON_AddStringToObject(o, "claimed_by", j->claimed_by);
        cJSON_AddNumberToObject(o, "lease_until", (double)j->lease_until);
    }
    cJSON_AddStringToObject(o, "created_at", j->created_at);
    cJSON_AddStringToObject(o, "updated_at", j->updated_at);
    if (j->output_dir[0])
        cJSON_AddStringToObject(o, "output_dir", j->output_dir);
    if (j->dataset[0])
        cJSON_AddStringToObject(o, "dataset", j->dataset);
    return o;
}

/* Row callbacks. */
struct one {
    struct job *j;
    int found;
    int err;
};

static int take_one(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct one *o = ctx;
    if (o->found)
        return 0;
    o->err = row_to_job(ncols, vals, o->j);
    o->found = o->err == 0;
    return 0;
}

static int take_id(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    if (ncols >= 1 && vals[0])
        *(int64_t *)ctx = (int64_t)strtoll(vals[0], NULL, 10);
    return 0;
}

static int count_rows(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)ncols, (void)names, (void)vals;
    ++*(int *)ctx;
    return 0;
}

/* Idle runners, and `job add --wait`, wait for a change in the store (store_wait_change):
 * SQLite's commits are seen by every connection; PostgreSQL needs a notification. One
 * that cannot be sent is only a delay (runners look every --poll seconds anyway), never
 * a failure of what was committed: a `job add` said to fail would be added again. */
static void notify_change(struct store *s)
{
    char why[256];
    if (s->dialect == SQL_POSTGRES &&
        s->ops->exec(s, "NOTIFY " STORE_CHANGE_CHANNEL, why, sizeof(why)) < 0)
        em_log(EM_LOG_WARN, "%s: runners not told of a job (they see it within --poll): %s",
               s->redacted, why);
}

int jobs_add(struct store *s, const char *loader, const cJSON *params, const char *rule_key,
             int max_attempts, int64_t *id, char *reason, size_t cap)
{
    char *p = cJSON_PrintUnformatted(params);
    if (!p)
        return -EM_ENOMEM;
    char sql[1024], max[16];
    snprintf(max, sizeof(max), "%d", max_attempts > 0 ? max_attempts : 5);
    snprintf(sql, sizeof(sql),
             "INSERT INTO job (loader, params, rule_key, max_attempts, created_at, updated_at) "
             "VALUES (?, ?, ?, ?, %s, %s) ON CONFLICT (rule_key) DO NOTHING RETURNING id",
             now_text(s), now_text(s));
    const char *v[4] = {loader, p, rule_key, max};
    *id = 0;
    int rc = store_query(s, sql, 4, v, take_id, id, reason, cap);
    cJSON_free(p);
    if (rc == 0 && *id)
        notify_change(s);
    return rc;
}

struct each {
    int (*cb)(void *ctx, const struct job *j);
    void *ctx;
    int err;
};

static int each_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct each *e = ctx;
    struct job j;
    e->err = row_to_job(ncols, vals, &j);
    if (e->err == 0)
        e->err = e->cb(e->ctx, &j);
    job_free(&j);
    return e->err != 0;
}

int jobs_list(struct store *s, const char *status, int (*cb)(void *ctx, const struct job *j),
              void *ctx, char *reason, size_t cap)
{
    struct each e = {cb, ctx, 0};
    const char *v[1] = {status};
    int rc = store_query(s,
                         status ? "SELECT " JOB_COLS " FROM job WHERE status = ? ORDER BY id"
                                : "SELECT " JOB_COLS " FROM job ORDER BY id",
                         status ? 1 : 0, v, each_row, &e, reason, cap);
    return rc < 0 ? rc : e.err;
}

int jobs_get(struct store *s, int64_t id, struct job *out, char *reason, size_t cap)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    const char *v[1] = {idt};
    struct one o = {out, 0, 0};
    int rc = store_query(s, "SELECT " JOB_COLS " FROM job WHERE id = ?", 1, v, take_one, &o, reason,
                         cap);
    return rc < 0 ? rc : o.err < 0 ? o.err : o.found;
}

/* An UPDATE … RETURNING id: 1 when it changed a row, 0 when not. */
static int update(struct store *s, const char *sql, size_t n, const char *const *v, char *reason,
                  size_t cap)
{
    int rows = 0;
    int rc = store_query(s, sql, n, v, count_rows, &rows, reason, cap);
    return rc < 0 ? rc : rows > 0;
}

/* UPDATE job SET <set>, updated_at = now WHERE <where> RETURNING id: 1 when it changed a
 * row, 0 when not. */
static int update_job(struct store *s, const char *set, const char *where, size_t n,
                      const char *const *v, char *reason, size_t cap)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), "UPDATE job SET %s, updated_at = %s WHERE %s RETURNING id", set,
             now_text(s), where);
    return update(s, sql, n, v, reason, cap);
}

int jobs_cancel(struct store *s, int64_t id, char *reason, size_t cap)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    const char *v[1] = {idt};
    return update_job(s, "status = 'cancelled'",
                      "id = ? AND status IN ('pending', 'processing', 'saving-data')", 1, v, reason,
                      cap);
}

int jobs_retry(struct store *s, int64_t id, char *reason, size_t cap)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    const char *v[1] = {idt};
    int rc = update_job(s,
                        "status = 'pending', attempts = 0, not_before = 0, claimed_by = NULL, "
                        "lease_until = NULL",
                        "id = ? AND status IN ('failed', 'cancelled')", 1, v, reason, cap);
    if (rc == 1)
        notify_change(s);
    return rc;
}

int jobs_claim(struct store *s, const char *runner, int lease_s, struct job *out, char *reason,
               size_t cap)
{
    char sql[2048], lease[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    /* A job whose runner died on its last attempt: failed, not claimed forever. */
    snprintf(sql, sizeof(sql),
             "UPDATE job SET status = 'failed', last_error = 'its runner stopped (lease expired) "
             "on the last attempt: ' || coalesce(claimed_by, '?'), updated_at = %s WHERE status "
             "IN ('processing', 'saving-data') AND lease_until < %s AND attempts >= "
             "max_attempts RETURNING id",
             now_text(s), now_s(s));
    int rc = update(s, sql, 0, NULL, reason, cap);
    if (rc < 0)
        return rc;
    snprintf(sql, sizeof(sql),
             "UPDATE job SET status = 'processing', claimed_by = ?, lease_until = %s + ?, "
             "attempts = attempts + 1, updated_at = %s WHERE id = (SELECT id FROM job WHERE "
             "(status = 'pending' AND not_before <= %s) OR (status IN ('processing', "
             "'saving-data') AND lease_until < %s AND attempts < max_attempts) ORDER BY id LIMIT "
             "1%s) RETURNING " JOB_COLS,
             now_s(s), now_text(s), now_s(s), now_s(s),
             s->dialect == SQL_POSTGRES ? " FOR UPDATE SKIP LOCKED" : "");
    const char *v[2] = {runner, lease};
    struct one o = {out, 0, 0};
    rc = store_query(s, sql, 2, v, take_one, &o, reason, cap);
    return rc < 0 ? rc : o.err < 0 ? o.err : o.found;
}

int jobs_renew(struct store *s, int64_t id, const char *runner, int lease_s, int64_t bytes_done,
               int64_t bytes_total, char *reason, size_t cap)
{
    char idt[24], lease[16], done[24], total[24], sql[1024];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    snprintf(lease, sizeof(lease), "%d", lease_s);
    snprintf(done, sizeof(done), "%" PRId64, bytes_done);
    snprintf(total, sizeof(total), "%" PRId64, bytes_total);
    snprintf(sql, sizeof(sql),
             "UPDATE job SET lease_until = %s + ?, bytes_done = ?, bytes_total = ?, updated_at "
             "= %s WHERE id = ? AND claimed_by = ? AND status IN ('processing', 'saving-data') "
             "RETURNING id",
             now_s(s), now_text(s));
    const char *v[5] = {lease, done, bytes_total >= 0 ? total : NULL, idt, runner};
    return update(s, sql, 5, v, reason, cap);
}

int jobs_finish(struct store *s, int64_t id, const char *runner, const char *status,
                const char *error, const char *output_dir, const char *dataset, int retry_after_s,
                char *reason, size_t cap)
{
    char idt[24], after[16], sql[1024];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    snprintf(after, sizeof(after), "%d", retry_after_s);
    if (strcmp(status, "retry") == 0) {
        snprintf(sql, sizeof(sql),
                 "UPDATE job SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE "
                 "'pending' END, last_error = ?, not_before = %s + ?, claimed_by = NULL, "
                 "lease_until = NULL, updated_at = %s WHERE id = ? AND claimed_by = ? AND status "
                 "IN ('processing', 'saving-data') RETURNING id",
                 now_s(s), now_text(s));
        const char *v[4] = {error, after, idt, runner};
        return update(s, sql, 4, v, reason, cap);
    }
    snprintf(sql, sizeof(sql),
             "UPDATE job SET status = ?, last_error = ?, output_dir = coalesce(?, output_dir), "
             "dataset = coalesce(?, dataset), lease_until = NULL, updated_at = %s WHERE id = ? "
             "AND claimed_by = ? AND status IN ('processing', 'saving-data') RETURNING id",
             now_text(s));
    const char *v[6] = {status, error, output_dir, dataset, idt, runner};
    int rc = update(s, sql, 6, v, reason, cap);
    if (rc == 1)
        notify_change(s);
    return rc;
}

int jobs_set_dataset(struct store *s, int64_t id, const char *runner, const char *dataset,
                     const char *output_dir, char *reason, size_t cap)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    const char *v[4] = {dataset, output_dir, idt, runner};
    return update_job(s, "dataset = ?, output_dir = ?",
                      "id = ? AND claimed_by = ? AND status = 'processing'", 4, v, reason, cap);
}

int jobs_dataset_seen(struct store *s, int64_t id, const char *dataset, char *reason, size_t cap)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%" PRId64, id);
    const char *v[2] = {idt, dataset};
    return update_job(s, "status = 'complete', lease_until = NULL",
                      "id = ? AND dataset = ? AND status IN ('processing', 'saving-data')", 2, v,
                      reason, cap);
}
