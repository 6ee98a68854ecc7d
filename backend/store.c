#include "store.h"
#include "rules.h"
#include "cli_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "em_error.h"
#include "jobs.h"
#include "log.h"

/* "scheme://user:password@host…" → "scheme://user:***@host…" */
static void redact(const char *url, char *out, size_t cap)
{
    snprintf(out, cap, "%s", url);
    char *scheme = strstr(out, "://");
    if (!scheme)
        return;
    char *auth = scheme + 3, *at = strchr(auth, '@'), *slash = strchr(auth, '/');
    if (!at || (slash && slash < at))
        return;
    char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return;
    char tail[512];
    snprintf(tail, sizeof(tail), "%s", at);
    size_t head = (size_t)(colon - out) + 1;
    snprintf(out + head, cap - head, "***%s", tail);
}

/* Which kind of store `url` names: 1 SQLite (*path set), 2 PostgreSQL, or EM_EUSAGE with a
 * reason. */
static int store_kind(const char *url, const char **path, char *reason, size_t cap)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        *path = url + 7;
        if (strncmp(*path, "//", 2) == 0)
            *path += 2;
        if (**path)
            return 1;
        snprintf(reason, cap, "sqlite: needs a path, as in sqlite:/var/lib/em/store.db");
        return -EM_EUSAGE;
    }
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return 2;
    snprintf(reason, cap, "the store must be sqlite:PATH or postgresql://user@host/database");
    return -EM_EUSAGE;
}

const struct rules *store_rules;

int store_open(const char *url, bool durable, struct store **out, char *reason, size_t cap)
{
    *out = NULL;
    const char *path = NULL;
    int rc = store_kind(url, &path, reason, cap);
    if (rc < 0)
        return rc;
    rc = rc == 1 ? store_sqlite_open(path, durable, false, out, reason, cap)
                 : store_pg_open(url, out, reason, cap);
    if (rc < 0)
        return rc;
    redact(url, (*out)->redacted, sizeof((*out)->redacted));
    (*out)->rules = store_rules;
    rc = store_migrate(*out, reason, cap);
    if (rc < 0) {
        store_close(*out);
        *out = NULL;
    }
    return rc;
}

static int read_version(void *ctx, int ncols, const char *const *names, const char *const *vals);

int store_open_readonly(const char *url, struct store **out, char *reason, size_t cap)
{
    *out = NULL;
    const char *path = NULL;
    int rc = store_kind(url, &path, reason, cap);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        struct stat st;
        if (stat(path, &st) != 0) {
            int e = errno;
            snprintf(reason, cap,
                     "sqlite:%s: %s (a store is made by `em-backend ingest` or `consume`; "
                     "check --store)",
                     path, e == ENOENT ? "no such store" : cli_strerror(e));
            return e == ENOENT ? -EM_ENOENT : -EM_EIO;
        }
        rc = store_sqlite_open(path, false, true, out, reason, cap);
    } else {
        rc = store_pg_open(url, out, reason, cap);
        if (rc == 0)
            rc = (*out)->ops->exec(*out, "SET default_transaction_read_only = on", reason, cap);
    }
    if (rc < 0) {
        if (*out)
            store_close(*out);
        *out = NULL;
        return rc;
    }
    redact(url, (*out)->redacted, sizeof((*out)->redacted));
    int have = 0;
    char ignored[256];
    rc = (*out)->ops->query(*out, "SELECT MAX(version) FROM em_schema", 0, NULL, read_version,
                            &have, ignored, sizeof(ignored));
    if (rc < 0 || have == 0) {
        snprintf(reason, cap, "%s is not an em-backend store (no schema version)",
                 (*out)->redacted);
        rc = -EM_ESTATE;
    } else if (have != schema_version()) {
        snprintf(reason, cap, "%s has schema version %d, this em-backend reads %d: %s",
                 (*out)->redacted, have, schema_version(),
                 have < schema_version() ? "run `em-backend ingest` or `consume` once to migrate it"
                                         : "upgrade em-backend");
        rc = -EM_ESTATE;
    }
    if (rc < 0) {
        store_close(*out);
        *out = NULL;
    }
    return rc;
}

static int read_version(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    int *v = ctx;
    if (ncols > 0 && vals[0]) {
        char *end;
        long x = strtol(vals[0], &end, 10);
        if (end != vals[0] && *end == '\0' && x > *v && x < 1000000)
            *v = (int)x;
    }
    return 0;
}

int store_migrate(struct store *s, char *reason, size_t cap)
{
    int rc = s->ops->exec(s,
                          "CREATE TABLE IF NOT EXISTS em_schema (version INTEGER PRIMARY KEY, "
                          "what TEXT NOT NULL)",
                          reason, cap);
    if (rc < 0)
        return rc;
    int have = 0;
    rc = s->ops->query(s, "SELECT MAX(version) FROM em_schema", 0, NULL, read_version, &have,
                       reason, cap);
    if (rc < 0)
        return rc;
    if (have > schema_version()) {
        snprintf(reason, cap,
                 "%s has schema version %d, newer than this em-backend knows (%d): upgrade "
                 "em-backend",
                 s->redacted, have, schema_version());
        return -EM_ESTATE;
    }
    for (int v = have + 1; v <= schema_version(); v++) {
        struct dynbuf sql;
        dynbuf_init(&sql, 1u << 20);
        rc = dynbuf_add(&sql, "BEGIN;\n", 7);
        if (rc == 0)
            rc = schema_migration_sql(v, s->dialect, &sql);
        if (rc == 0)
            rc = dynbuf_printf(&sql,
                               "INSERT INTO em_schema (version, what) VALUES (%d, '%s');\n"
                               "COMMIT",
                               v, schema_migration_what(v));
        if (rc == 0)
            rc = s->ops->exec(s, sql.p, reason, cap);
        dynbuf_free(&sql);
        if (rc < 0) {
            char ignored[8];
            s->ops->exec(s, "ROLLBACK", ignored, sizeof(ignored));
            return rc;
        }
        em_log(EM_LOG_INFO, "%s: applied migration %d (%s)", s->redacted, v,
               schema_migration_what(v));
    }
    return 0;
}

int store_apply(struct store *s, struct ev *evs, size_t n, size_t *changed, char *reason,
                size_t cap)
{
    return store_apply_at(s, evs, n, NULL, changed, reason, cap);
}

static int dataset_seen(struct store *s, const struct ev *e, char *reason, size_t cap)
{
    char buf[8];
    const char *status = ev_value(e, "status", buf, sizeof(buf));
    if (!status || strcmp(status, "complete") != 0 || !e->data)
        return 0;
    cJSON *d = cJSON_Parse(e->data);
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(d, "job_id");
    int64_t id = cJSON_IsNumber(job) && job->valuedouble >= 1 && job->valuedouble < 9e15
                     ? (int64_t)job->valuedouble
                     : 0;
    cJSON_Delete(d);
    if (!id)
        return 0; /* not made by a job of ours (another tool's record) */
    int rc = jobs_dataset_seen(s, id, e->dataset_id, reason, cap);
    if (rc == 1)
        em_log(EM_LOG_INFO, "job %" PRId64 ": complete (dataset %s/%s stored)", id, e->loader,
               e->dataset_id);
    return rc < 0 ? rc : 0;
}

int store_apply_at(struct store *s, struct ev *evs, size_t n, const struct store_position *pos,
                   size_t *changed, char *reason, size_t cap)
{
    *changed = 0;
    if (n == 0 && !pos)
        return 0;
    if (n > 1)
        qsort(evs, n, sizeof(*evs), ev_cmp_key);
    int rc = s->ops->apply(s, evs, n, pos, changed, reason, cap);
    /* Rules fire after the events are stored, for every event of the batch (changed or a
     * redelivery): a job has a rule key, so it is made once however often it fires. */
    if (rc == 0 && s->rules)
        rc = rules_fire(s, s->rules, evs, n, reason, cap);
    /* A complete dataset stored completes the job that made it (every time it comes:
     * idempotent, and a crash between the two steps is mended by the redelivery). */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (evs[i].type == WIRE_DATASET && !evs[i].deleted)
            rc = dataset_seen(s, &evs[i], reason, cap);
    return rc;
}

struct position_row {
    char *file_id;
    size_t cap;
    uint64_t *offset;
    int found;
};

static int read_position(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct position_row *p = ctx;
    if (ncols == 2 && vals[0] && vals[1]) {
        snprintf(p->file_id, p->cap, "%s", vals[0]);
        *p->offset = strtoull(vals[1], NULL, 10);
        p->found = 1;
    }
    return 1;
}

int store_position_get(struct store *s, const char *source, char *file_id, size_t cap,
                       uint64_t *offset, char *reason, size_t rcap)
{
    struct position_row p = {file_id, cap, offset, 0};
    const char *params[1] = {source};
    int rc = s->ops->query(s, "SELECT file_id, byte_offset FROM ingest_position WHERE source = ?",
                           1, params, read_position, &p, reason, rcap);
    return rc < 0 ? rc : p.found;
}

int store_query(struct store *s, const char *sql, size_t nparams, const char *const *params,
                int (*cb)(void *ctx, int ncols, const char *const *names, const char *const *vals),
                void *ctx, char *reason, size_t cap)
{
    return s->ops->query(s, sql, nparams, params, cb, ctx, reason, cap);
}

int store_wait_change(struct store *s, int timeout_ms, char *reason, size_t cap)
{
    return s->ops->wait_change(s, timeout_ms, reason, cap);
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}
