/* The SQLite store: one file in WAL mode, so `query` reads while `consume` writes. Writers
 * take the write lock at BEGIN IMMEDIATE and wait up to 30 s for another writer (two
 * consumers on one file), instead of failing halfway through a batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "em_error.h"
#include "cli_common.h"
#include "store.h"

struct sqlite_store {
    struct store base; /* first: the store is found from it */
    sqlite3 *db;
    sqlite3_stmt *upsert[WIRE_TYPE_COUNT];
    sqlite3_stmt *position;
    sqlite3_stmt *change; /* the change_log insert */
    bool watching;        /* wait_change: `version` holds the data version last seen */
    sqlite3_int64 version;
};

static int fail(struct sqlite_store *s, const char *what, char *reason, size_t cap)
{
    snprintf(reason, cap, "%s: %s: %s", s->base.redacted[0] ? s->base.redacted : "sqlite", what,
             sqlite3_errmsg(s->db));
    return -EM_EIO;
}

static int sq_exec(struct store *base, const char *sql, char *reason, size_t cap)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(reason, cap, "%s: %s", s->base.redacted, err ? err : "error");
        sqlite3_free(err);
        return -EM_EIO;
    }
    return 0;
}

static int prepare_upserts(struct sqlite_store *s, char *reason, size_t cap)
{
    for (int t = 0; t < WIRE_TYPE_COUNT; t++) {
        struct dynbuf sql;
        dynbuf_init(&sql, 1u << 16);
        int rc = schema_upsert_sql(schema_table_of((enum wire_type)t), SQL_SQLITE, &sql);
        if (rc == 0 && sqlite3_prepare_v2(s->db, sql.p, -1, &s->upsert[t], NULL) != SQLITE_OK)
            rc = fail(s, "cannot prepare the upsert", reason, cap);
        dynbuf_free(&sql);
        if (rc < 0)
            return rc;
    }
    struct dynbuf sql;
    dynbuf_init(&sql, 1u << 16);
    int rc = schema_change_sql(schema_table_of(WIRE_SESSION), SQL_SQLITE, &sql);
    if (rc == 0 && sqlite3_prepare_v2(s->db, sql.p, -1, &s->change, NULL) != SQLITE_OK)
        rc = fail(s, "cannot prepare the change log", reason, cap);
    dynbuf_free(&sql);
    return rc;
}

/* Logs that `e` changed its entity (change_log, for serve's live updates). */
static int log_change(struct sqlite_store *s, const struct ev *e)
{
    char *key = ev_key_json(e);
    if (!key)
        return -EM_ENOMEM;
    sqlite3_stmt *st = s->change;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, wire_type_name(e->type), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, wire_op_name(e->deleted ? WIRE_DELETE : WIRE_UPSERT), -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, e->agent, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)e->seq);
    int step = sqlite3_step(st);
    sqlite3_clear_bindings(st);
    sqlite3_reset(st);
    cJSON_free(key);
    return step == SQLITE_DONE ? 0 : -EM_EIO;
}

static int sq_apply(struct store *base, struct ev *evs, size_t n, const struct store_position *pos,
                    size_t *changed, char *reason, size_t cap)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!s->upsert[0] && prepare_upserts(s, reason, cap) < 0)
        return -EM_EIO;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, "cannot begin a transaction", reason, cap);
    for (size_t i = 0; i < n; i++) {
        const struct schema_table *t = schema_table_of(evs[i].type);
        sqlite3_stmt *st = s->upsert[evs[i].type];
        sqlite3_reset(st);
        for (size_t c = 0; c < t->ncols; c++) {
            char num[32];
            const char *v = ev_value(&evs[i], t->cols[c].name, num, sizeof(num));
            int k = (int)c + 1;
            if (!v)
                sqlite3_bind_null(st, k);
            else if (t->cols[c].type == COL_ID || t->cols[c].type == COL_FLAG)
                sqlite3_bind_int64(st, k, strtoll(v, NULL, 10));
            else
                sqlite3_bind_text(st, k, v, -1, SQLITE_STATIC);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            int rc = fail(s, "cannot store an event", reason, cap);
            /* Only a verdict on the event's own values is about the event; full, I/O,
             * busy, locked, read-only and the rest are about the store. */
            int code = sqlite3_errcode(s->db);
            if (code == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH || code == SQLITE_TOOBIG ||
                code == SQLITE_RANGE)
                rc = -EM_EVALUE;
            sqlite3_reset(st);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        int changes = sqlite3_changes(s->db);
        *changed += (size_t)changes;
        sqlite3_clear_bindings(st);
        if (changes > 0) {
            int rc = log_change(s, &evs[i]);
            if (rc < 0) {
                if (rc == -EM_EIO)
                    rc = fail(s, "cannot log a change", reason, cap);
                else
                    snprintf(reason, cap, "out of memory");
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                return rc;
            }
        }
    }
    if (pos) {
        if (!s->position && sqlite3_prepare_v2(s->db, schema_position_upsert_sql(SQL_SQLITE), -1,
                                               &s->position, NULL) != SQLITE_OK) {
            int rc = fail(s, "cannot prepare the position update", reason, cap);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        sqlite3_reset(s->position);
        sqlite3_bind_text(s->position, 1, pos->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->position, 2, pos->file_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->position, 3, (sqlite3_int64)pos->offset);
        if (sqlite3_step(s->position) != SQLITE_DONE) {
            int rc = fail(s, "cannot record the read position", reason, cap);
            sqlite3_reset(s->position);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = fail(s, "cannot commit", reason, cap);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        *changed = 0;
        return rc;
    }
    return 0;
}

static int sq_query(struct store *base, const char *sql, size_t nparams, const char *const *params,
                    int (*cb)(void *ctx, int ncols, const char *const *names,
                              const char *const *vals),
                    void *ctx, char *reason, size_t cap)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(s, "cannot prepare a query", reason, cap);
    for (size_t i = 0; i < nparams; i++)
        sqlite3_bind_text(st, (int)i + 1, params[i], -1, SQLITE_STATIC);
    int ncols = sqlite3_column_count(st), rc = 0, step;
    const char **names = calloc((size_t)ncols + 1, sizeof(*names));
    const char **vals = calloc((size_t)ncols + 1, sizeof(*vals));
    if (!names || !vals) {
        rc = -EM_ENOMEM;
        goto out;
    }
    for (int c = 0; c < ncols; c++)
        names[c] = sqlite3_column_name(st, c);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncols; c++)
            vals[c] = (const char *)sqlite3_column_text(st, c);
        if (cb(ctx, ncols, names, vals) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = fail(s, "query failed", reason, cap);
out:
    free(names);
    free(vals);
    sqlite3_finalize(st);
    return rc;
}

static void sq_close(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    for (int t = 0; t < WIRE_TYPE_COUNT; t++)
        sqlite3_finalize(s->upsert[t]);
    sqlite3_finalize(s->position);
    sqlite3_finalize(s->change);
    sqlite3_close(s->db);
    free(s);
}

static int data_version(struct sqlite_store *s, sqlite3_int64 *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
        return -EM_EIO;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EM_EIO;
    if (rc == 0)
        *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Another connection's commit changes this connection's data_version: looked at every
 * 20 ms (a read of a counter SQLite keeps in shared memory). */
static int sq_wait_change(struct store *base, int timeout_ms, char *reason, size_t cap)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!s->watching) {
        if (data_version(s, &s->version) < 0)
            return fail(s, "cannot read the data version", reason, cap);
        s->watching = true;
    }
    for (int waited = 0;; waited += 20) {
        sqlite3_int64 v;
        if (data_version(s, &v) < 0)
            return fail(s, "cannot read the data version", reason, cap);
        if (v != s->version) {
            s->version = v;
            return 1;
        }
        if (waited >= timeout_ms)
            return 0;
        sqlite3_sleep(20);
    }
}

static const struct store_ops sqlite_ops = {sq_apply, sq_query, sq_exec, sq_close, sq_wait_change};

int store_sqlite_open(const char *path, bool durable, bool readonly, struct store **out,
                      char *reason, size_t cap)
{
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -EM_ENOMEM;
    s->base.ops = &sqlite_ops;
    s->base.dialect = SQL_SQLITE;
    s->base.durable = durable;
    snprintf(s->base.redacted, sizeof(s->base.redacted), "sqlite:%s", path);
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        /* SQLite says "unable to open database file"; the system's errno says why. */
        int sys = s->db ? sqlite3_system_errno(s->db) : 0;
        snprintf(reason, cap, "sqlite:%s: cannot open: %s", path,
                 !s->db ? "out of memory"
                 : sys  ? cli_strerror(sys)
                        : sqlite3_errmsg(s->db));
        sqlite3_close(s->db);
        free(s);
        return -EM_EIO;
    }
    sqlite3_busy_timeout(s->db, 30000);
    if (readonly) {
        *out = &s->base;
        return 0;
    }
    char pragmas[160];
    snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;",
             durable ? "FULL" : "NORMAL");
    int rc = sq_exec(&s->base, pragmas, reason, cap);
    if (rc < 0) {
        sq_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
