/* The PostgreSQL store. A batch is one transaction sent as a libpq pipeline: BEGIN, one
 * prepared upsert per event, COMMIT, then one sync, so a batch costs one round trip
 * instead of one per event. Batches are bounded (consume's --batch), which keeps the
 * results that queue up during sending well inside the socket buffers. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "em_error.h"
#include "store.h"

/* The advisory lock that orders change_log ids (any constant of ours). */
#define CHANGE_LOCK "4915020616"

struct pg_store {
    struct store base;
    PGconn *c;
    bool prepared;
    bool listening; /* wait_change: LISTEN was sent */
};

static int fail(struct pg_store *s, const char *what, const PGresult *r, char *reason, size_t cap)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(s->c);
    char text[400];
    snprintf(text, sizeof(text), "%s", msg && *msg ? msg : "error");
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    snprintf(reason, cap, "%s: %s: %s", s->base.redacted, what, text);
    return -EM_EIO;
}

static int pg_exec(struct store *base, const char *sql, char *reason, size_t cap)
{
    struct pg_store *s = (struct pg_store *)base;
    PGresult *r = PQexec(s->c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fail(s, "failed", r, reason, cap);
    PQclear(r);
    return rc;
}

/* Prepares the statement `name` from the SQL `make` writes for table `tab`. */
static int prepare_one(struct pg_store *s, const struct schema_table *tab, const char *prefix,
                       int (*make)(const struct schema_table *, enum sql_dialect, struct dynbuf *),
                       const char *what, char *reason, size_t cap)
{
    struct dynbuf sql;
    dynbuf_init(&sql, 1u << 16);
    int rc = make(tab, SQL_POSTGRES, &sql);
    char name[64];
    snprintf(name, sizeof(name), "%s%s", prefix, tab->name);
    if (rc == 0) {
        PGresult *r = PQprepare(s->c, name, sql.p, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = fail(s, what, r, reason, cap);
        PQclear(r);
    }
    dynbuf_free(&sql);
    return rc;
}

static int prepare_upserts(struct pg_store *s, char *reason, size_t cap)
{
    for (int t = 0; t < WIRE_TYPE_COUNT; t++) {
        const struct schema_table *tab = schema_table_of((enum wire_type)t);
        int rc = prepare_one(s, tab, "em_upsert_", schema_upsert_sql, "cannot prepare the upsert",
                             reason, cap);
        if (rc == 0)
            rc = prepare_one(s, tab, "em_change_", schema_change_sql,
                             "cannot prepare the change log", reason, cap);
        if (rc < 0)
            return rc;
    }
    s->prepared = true;
    return 0;
}

static int pg_apply(struct store *base, struct ev *evs, size_t n, const struct store_position *pos,
                    size_t *changed, char *reason, size_t cap)
{
    struct pg_store *s = (struct pg_store *)base;
    if (PQstatus(s->c) != CONNECTION_OK) {
        snprintf(reason, cap, "%s: the connection is lost", s->base.redacted);
        return -EM_EIO;
    }
    if (!s->prepared && prepare_upserts(s, reason, cap) < 0)
        return -EM_EIO;
    if (!PQenterPipelineMode(s->c))
        return fail(s, "cannot enter pipeline mode", NULL, reason, cap);
    int rc = 0;
    bool sent = PQsendQueryParams(s->c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
    for (size_t i = 0; i < n && sent; i++) {
        const struct schema_table *t = schema_table_of(evs[i].type);
        const char *vals[16];
        char nums[16][32];
        for (size_t c = 0; c < t->ncols; c++)
            vals[c] = ev_value(&evs[i], t->cols[c].name, nums[c], sizeof(nums[c]));
        char name[64];
        snprintf(name, sizeof(name), "em_upsert_%s", t->name);
        sent = PQsendQueryPrepared(s->c, name, (int)t->ncols, vals, NULL, NULL, 0) == 1;
    }
    char off[24];
    if (sent && pos) {
        snprintf(off, sizeof(off), "%" PRIu64, pos->offset);
        const char *vals[3] = {pos->source, pos->file_id, off};
        sent = PQsendQueryParams(s->c, schema_position_upsert_sql(SQL_POSTGRES), 3, NULL, vals,
                                 NULL, NULL, 0) == 1;
    }
    /* The change log, numbered in commit order: the lock is held from here to COMMIT, so
     * a transaction that takes ids later commits later (a reader that has seen id N has
     * seen every id below it). Held for the tail of the batch only. */
    if (sent && n > 0)
        sent = PQsendQueryParams(s->c, "SELECT pg_advisory_xact_lock(" CHANGE_LOCK ")", 0, NULL,
                                 NULL, NULL, NULL, 0) == 1;
    for (size_t i = 0; i < n && sent; i++) {
        const struct schema_table *t = schema_table_of(evs[i].type);
        char *key = ev_key_json(&evs[i]);
        if (!key) {
            sent = false;
            break;
        }
        const char *vals[8];
        char nums[8][32];
        vals[0] = wire_op_name(evs[i].deleted ? WIRE_DELETE : WIRE_UPSERT);
        vals[1] = key;
        vals[2] = evs[i].agent;
        snprintf(nums[3], sizeof(nums[3]), "%" PRIu64, evs[i].seq);
        vals[3] = nums[3];
        for (size_t c = 0; c < t->nkey; c++)
            vals[4 + c] = ev_value(&evs[i], t->cols[c].name, nums[4 + c], sizeof(nums[4 + c]));
        char name[64];
        snprintf(name, sizeof(name), "em_change_%s", t->name);
        sent = PQsendQueryPrepared(s->c, name, (int)(4 + t->nkey), vals, NULL, NULL, 0) == 1;
        cJSON_free(key);
    }
    if (sent && n > 0)
        sent = PQsendQueryParams(s->c, "SELECT pg_notify('" STORE_CHANGE_CHANNEL "', '')", 0, NULL,
                                 NULL, NULL, NULL, 0) == 1;
    if (sent)
        sent = PQsendQueryParams(s->c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1;
    if (!sent || PQpipelineSync(s->c) != 1) {
        rc = fail(s, "cannot send the batch", NULL, reason, cap);
        PQexitPipelineMode(s->c);
        return rc;
    }
    /* Results: BEGIN, n upserts, COMMIT, each followed by NULL, then the sync. */
    size_t got = 0;
    for (;;) {
        PGresult *r = PQgetResult(s->c);
        if (!r) {
            if (PQstatus(s->c) != CONNECTION_OK) {
                rc = rc ? rc : fail(s, "the connection is lost", NULL, reason, cap);
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (st == PGRES_COMMAND_OK && got >= 1 && got <= n) {
                const char *k = PQcmdTuples(r);
                *changed += k && *k ? (size_t)strtoul(k, NULL, 10) : 0;
            }
        } else if (rc == 0) {
            rc = fail(s, st == PGRES_PIPELINE_ABORTED ? "batch aborted" : "cannot store the batch",
                      r, reason, cap);
            /* SQLSTATE classes 22 (data exception) and 23 (integrity constraint) judge
             * an event's values; every other failure is the store's. */
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (st == PGRES_FATAL_ERROR && state &&
                (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
                rc = -EM_EVALUE;
        }
        got++;
        PQclear(r);
    }
    PQexitPipelineMode(s->c);
    if (rc < 0) {
        *changed = 0;
        if (PQtransactionStatus(s->c) == PQTRANS_INERROR) {
            PGresult *r = PQexec(s->c, "ROLLBACK");
            PQclear(r);
        }
    }
    return rc;
}

static int pg_query(struct store *base, const char *sql, size_t nparams, const char *const *params,
                    int (*cb)(void *ctx, int ncols, const char *const *names,
                              const char *const *vals),
                    void *ctx, char *reason, size_t cap)
{
    struct pg_store *s = (struct pg_store *)base;
    /* ? → $n (the project's queries have no '?' inside literals). */
    struct dynbuf q;
    dynbuf_init(&q, 1u << 20);
    int rc = 0;
    size_t k = 0;
    for (const char *p = sql; *p && rc == 0; p++)
        rc = *p == '?' ? dynbuf_printf(&q, "$%zu", ++k) : dynbuf_add(&q, p, 1);
    if (rc < 0) {
        dynbuf_free(&q);
        return rc;
    }
    PGresult *r = PQexecParams(s->c, q.p, (int)nparams, NULL, params, NULL, NULL, 0);
    dynbuf_free(&q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = fail(s, "query failed", r, reason, cap);
        PQclear(r);
        return rc;
    }
    int ncols = PQnfields(r), nrows = PQntuples(r);
    const char **names = calloc((size_t)ncols + 1, sizeof(*names));
    const char **vals = calloc((size_t)ncols + 1, sizeof(*vals));
    if (!names || !vals)
        rc = -EM_ENOMEM;
    for (int c = 0; c < ncols && rc == 0; c++)
        names[c] = PQfname(r, c);
    for (int i = 0; i < nrows && rc == 0; i++) {
        for (int c = 0; c < ncols; c++)
            vals[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
        if (cb(ctx, ncols, names, vals) != 0)
            break;
    }
    free(names);
    free(vals);
    PQclear(r);
    return rc;
}

static void pg_close(struct store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    PQfinish(s->c);
    free(s);
}

/* LISTEN once, then wait on the connection's socket for a notification. */
static int pg_wait_change(struct store *base, int timeout_ms, char *reason, size_t cap)
{
    struct pg_store *s = (struct pg_store *)base;
    if (!s->listening) {
        /* Not in a read-only transaction: LISTEN is refused there. */
        int rc = pg_exec(base, "SET default_transaction_read_only = off", reason, cap);
        if (rc == 0)
            rc = pg_exec(base, "LISTEN " STORE_CHANGE_CHANNEL, reason, cap);
        if (rc < 0)
            return rc;
        s->listening = true;
    }
    int got = 0;
    PGnotify *n;
    if (!PQconsumeInput(s->c))
        return fail(s, "the connection is lost", NULL, reason, cap);
    while ((n = PQnotifies(s->c)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    if (got)
        return 1;
    int fd = PQsocket(s->c);
    if (fd < 0)
        return fail(s, "the connection is lost", NULL, reason, cap);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        return fail(s, "cannot wait for notifications", NULL, reason, cap);
    if (r <= 0)
        return 0;
    if (!PQconsumeInput(s->c))
        return fail(s, "the connection is lost", NULL, reason, cap);
    while ((n = PQnotifies(s->c)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

static const struct store_ops pg_ops = {pg_apply, pg_query, pg_exec, pg_close, pg_wait_change};

static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation already exists, skipping" and the like */
}

int store_pg_open(const char *conninfo, struct store **out, char *reason, size_t cap)
{
    struct pg_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -EM_ENOMEM;
    s->base.ops = &pg_ops;
    s->base.dialect = SQL_POSTGRES;
    s->base.durable = true;
    s->c = PQconnectdb(conninfo);
    if (!s->c || PQstatus(s->c) != CONNECTION_OK) {
        snprintf(s->base.redacted, sizeof(s->base.redacted), "postgresql");
        int rc = s->c ? fail(s, "cannot connect", NULL, reason, cap) : -EM_ENOMEM;
        PQfinish(s->c);
        free(s);
        return rc;
    }
    PQsetNoticeProcessor(s->c, pg_notice, NULL);
    *out = &s->base;
    return 0;
}
