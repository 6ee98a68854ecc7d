/* em-backend serve's routes (serve.h): the page's files, /health, /metrics, the JSON API
 * and the Server-Sent Events stream; and the stall alerts the monitor sends. */
#include "backend.h"
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli_common.h"
#include "dynbuf.h"
#include "em_compat.h"
#include "em_error.h"
#include "jobs.h"
#include "log.h"
#include "prom.h"
#include "schema.h"

#define API "/api/v1"
#define PAGE_MAX 1000      /* micrographs per page at most */
#define SSE_BATCH 500      /* changes read at once */
#define SSE_KEEPALIVE_S 15 /* a comment this often keeps proxies from closing the stream */

/* ---- responses ---- */

/* libmicrohttpd 0.9 takes response bodies as void * even when it only reads them. */
static void *unconst(const void *p)
{
    union {
        const void *c;
        void *m;
    } u = {p};
    return u.m;
}

/* Queues `r` (NULL: out of memory) with the headers every answer has, and lets it go. */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
                               const char *type, const char *cache)
{
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", cache);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body, size_t len, bool copy)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, unconst(body), copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    if (r && status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"em-backend\"");
    if (r && status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    return respond(c, status, r, type, "no-store");
}

/* Takes `o`. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return send_text(c, 500, "application/json",
                         "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}", 52, false);
    enum MHD_Result r = send_text(c, status, "application/json", text, strlen(text), true);
    cJSON_free(text);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddStringToObject(e, "message", msg);
    return send_json(c, status, o);
}

/* ---- parameters ---- */

struct params {
    const char *allowed[6];
    const char *bad; /* the first unknown parameter */
};

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    (void)value;
    struct params *p = cls;
    if (strcmp(key, "access_token") == 0)
        return MHD_YES;
    for (size_t i = 0; i < 6 && p->allowed[i]; i++)
        if (strcmp(key, p->allowed[i]) == 0)
            return MHD_YES;
    if (!p->bad)
        p->bad = key;
    return MHD_YES;
}

/* The first parameter not in `allowed` (NULL-terminated), or NULL. */
static const char *unknown_param(struct MHD_Connection *c, const char *const *allowed)
{
    struct params p = {{NULL}, NULL};
    for (size_t i = 0; i < 5 && allowed && allowed[i]; i++)
        p.allowed[i] = allowed[i];
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_param, &p);
    return p.bad;
}

/* An id: 1 to 18 digits. */
static bool is_id(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && n <= 18 && s[n] == '\0';
}

/* ---- the API ---- */

static int one_int64(void *ctx, int ncols, const char *const *names, const char *const *vals);

static enum MHD_Result store_error(struct serve_conn *sc, struct MHD_Connection *c, int rc,
                                   const char *reason)
{
    if (rc == -EM_EIO)
        serve_store_failed(sc);
    em_log(EM_LOG_WARN, "serve: %s", reason);
    return send_error(c, 503, "the store cannot be read: %s", reason);
}

/* The cached answer of /api/v1/sessions, when it is still good: sent, true. */
static bool sessions_cached(struct serve *sv, struct MHD_Connection *c, enum MHD_Result *ret)
{
    uint64_t gen;
    pthread_mutex_lock(&sv->mu);
    gen = sv->gen;
    pthread_mutex_unlock(&sv->mu);
    pthread_mutex_lock(&sv->cache_mu);
    bool good = sv->sessions_json && sv->sessions_gen == gen && be_mono_s() - sv->sessions_at < 1.0;
    /* While another request makes it anew, the last answer serves (at most one of them
     * counts a whole visit at a time). */
    if (!good && sv->sessions_json && sv->sessions_busy)
        good = true;
    else if (!good)
        sv->sessions_busy = true; /* this request makes it; sessions_keep() clears it */
    if (good) {
        *ret = send_text(c, 200, "application/json", sv->sessions_json, sv->sessions_len, true);
        sv->cache_hits++;
    }
    pthread_mutex_unlock(&sv->cache_mu);
    return good;
}

static void sessions_keep(struct serve *sv, const char *text, uint64_t gen, double at)
{
    char *copy = text ? strdup(text) : NULL;
    if (!copy) { /* failed: the next request tries */
        pthread_mutex_lock(&sv->cache_mu);
        sv->sessions_busy = false;
        pthread_mutex_unlock(&sv->cache_mu);
        return;
    }
    pthread_mutex_lock(&sv->cache_mu);
    sv->sessions_busy = false;
    free(sv->sessions_json);
    sv->sessions_json = copy;
    sv->sessions_len = strlen(copy);
    sv->sessions_gen = gen;
    sv->sessions_at = at;
    pthread_mutex_unlock(&sv->cache_mu);
}

/* A view's rows as {"items":[...]} (or, with `one`, the single row; 404 when none). */
static enum MHD_Result send_view(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c,
                                 enum view_kind k, struct view_args *a, const char *one_col,
                                 const char *one_val, const char *what)
{
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    if (!s)
        return send_error(c, 503, "the store cannot be read: %s", reason);
    bool cache = k == VIEW_SESSIONS && !a->session;
    enum MHD_Result cached;
    if (cache && sessions_cached(sv, c, &cached))
        return cached;
    uint64_t gen = 0;
    double at = be_mono_s();
    pthread_mutex_lock(&sv->mu);
    gen = sv->gen; /* taken before the query: a commit after it makes the answer stale */
    pthread_mutex_unlock(&sv->mu);
    struct rows r = {0};
    a->now = serve_now();
    a->stall = sv->stall;
    int rc = view_rows(s, k, a, &r, reason, sizeof(reason));
    if (rc != 0 && cache)
        sessions_keep(sv, NULL, 0, 0);
    if (rc == 1) {
        rows_free(&r);
        return send_error(c, 404, "%s", reason);
    }
    if (rc < 0) {
        rows_free(&r);
        return store_error(sc, c, rc, reason);
    }
    cJSON *out;
    if (one_col) {
        out = NULL;
        for (size_t i = 0; i < r.n && !out; i++) {
            const char *v = rows_get(&r, i, one_col);
            if (v && strcmp(v, one_val) == 0)
                out = rows_object(&r, i);
        }
        rows_free(&r);
        if (!out)
            return send_error(c, 404, "%s is not in %s", what, sv->store_redacted);
        return send_json(c, 200, out);
    }
    out = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(out, "items");
    for (size_t i = 0; i < r.n && items; i++)
        cJSON_AddItemToArray(items, rows_object(&r, i));
    if (k == VIEW_MICROGRAPHS) {
        char cur[256];
        /* the cursor of the last row, for the next page (in acquisition order) */
        if (a->since && r.n && view_cursor(&r, r.n - 1, cur, sizeof(cur)))
            cJSON_AddStringToObject(out, "next", cur);
        else if (!a->since && r.n && view_cursor(&r, 0, cur, sizeof(cur)))
            cJSON_AddStringToObject(out, "next", cur); /* newest first: continue after it */
        else if (a->since)
            cJSON_AddStringToObject(out, "next", a->since);
        else
            cJSON_AddNullToObject(out, "next");
    }
    rows_free(&r);
    if (cache) {
        char *text = cJSON_PrintUnformatted(out);
        cJSON_Delete(out);
        sessions_keep(sv, text, gen, at);
        if (!text)
            return send_error(c, 500, "out of memory");
        enum MHD_Result ret = send_text(c, 200, "application/json", text, strlen(text), true);
        cJSON_free(text);
        return ret;
    }
    return send_json(c, 200, out);
}

struct timeline {
    cJSON *items;
    int err;
};

static int timeline_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct timeline *t = ctx;
    if (ncols < 2 || !vals[0])
        return 0;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "hour", vals[0]) ||
        !cJSON_AddNumberToObject(o, "micrographs", vals[1] ? strtod(vals[1], NULL) : 0)) {
        cJSON_Delete(o);
        return t->err = -EM_ENOMEM;
    }
    cJSON_AddItemToArray(t->items, o);
    return 0;
}

/* Micrographs per hour of acquisition (EPU's clock), for the session's timeline. */
static enum MHD_Result api_timeline(struct serve *sv, struct serve_conn *sc,
                                    struct MHD_Connection *c, const char *session)
{
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    if (!s)
        return send_error(c, 503, "the store cannot be read: %s", reason);
    int64_t n = 0;
    const char *p[1] = {session};
    int rc = store_query(s, "SELECT COUNT(*) FROM session WHERE session_id = ? AND deleted = 0", 1,
                         p, one_int64, &n, reason, sizeof(reason));
    if (rc < 0)
        return store_error(sc, c, rc, reason);
    if (n == 0)
        return send_error(c, 404, "session %s is not in %s", session, sv->store_redacted);
    cJSON *out = cJSON_CreateObject();
    struct timeline t = {cJSON_AddArrayToObject(out, "items"), 0};
    rc = store_query(s,
                     "SELECT substr(acquired_at, 1, 13) AS hour, COUNT(*) FROM micrograph WHERE"
                     " session_id = ? AND deleted = 0 AND acquired_at IS NOT NULL GROUP BY"
                     " substr(acquired_at, 1, 13) ORDER BY 1",
                     1, p, timeline_row, &t, reason, sizeof(reason));
    if (rc < 0 || t.err < 0) {
        cJSON_Delete(out);
        return rc < 0 ? store_error(sc, c, rc, reason) : send_error(c, 500, "out of memory");
    }
    return send_json(c, 200, out);
}

static int job_item(void *ctx, const struct job *j)
{
    cJSON *o = job_to_json(j);
    if (!o)
        return -EM_ENOMEM;
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static enum MHD_Result api_jobs(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c)
{
    static const char *const statuses[] = {"pending",  "processing", "saving-data",
                                           "complete", "failed",     "cancelled"};
    const char *status = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    if (status) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
            ok = ok || strcmp(status, statuses[i]) == 0;
        if (!ok)
            return send_error(c, 400,
                              "status=%.64s: one of pending, processing, saving-data, complete, "
                              "failed, cancelled",
                              status);
    }
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    if (!s)
        return send_error(c, 503, "the store cannot be read: %s", reason);
    cJSON *out = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(out, "items");
    int rc = jobs_list(s, status, job_item, items, reason, sizeof(reason));
    if (rc < 0) {
        cJSON_Delete(out);
        return store_error(sc, c, rc, reason);
    }
    return send_json(c, 200, out);
}

static enum MHD_Result api_health(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c)
{
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "store", sv->store_redacted);
    cJSON_AddNumberToObject(o, "schema", schema_version());
    cJSON_AddNumberToObject(o, "uptime_s", floor(serve_now() - sv->started));
    if (s) {
        int64_t ignored = 0;
        int rc = store_query(s, "SELECT MAX(id) FROM change_log", 0, NULL, one_int64, &ignored,
                             reason, sizeof(reason));
        if (rc < 0) {
            serve_store_failed(sc);
            s = NULL;
        }
    }
    cJSON_AddStringToObject(o, "status", s ? "ok" : "unavailable");
    cJSON_AddBoolToObject(o, "images", sv->nimage_roots > 0);
    if (!s)
        cJSON_AddStringToObject(o, "reason", reason);
    return send_json(c, s ? 200 : 503, o);
}

/* ---- /metrics ---- */

/* One sample per row of `r` with a value in column `col` (a flag: 1 for yes; a time: Unix
 * seconds), labelled with the session (id, name, agent) or, for agents, the agent. */
static int per_row(struct dynbuf *b, const struct rows *r, const char *metric, const char *col,
                   bool flag, bool time, bool session)
{
    int rc = 0;
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        const char *id = rows_get(r, i, "session_id"), *v = rows_get(r, i, col);
        if (session && !id)
            continue; /* aborted directories have no id */
        double x;
        if (flag)
            x = v && strcmp(v, "yes") == 0;
        else if (!v || (time && !view_parse_time(v, &x)))
            continue;
        else if (!time)
            x = strtod(v, NULL);
        if (session) {
            rc = dynbuf_printf(b, "%s{session_id=\"%s\",name=\"", metric, id);
            if (rc == 0)
                rc = prom_label(b, rows_get(r, i, "name"));
            if (rc == 0)
                rc = dynbuf_printf(b, "\",agent=\"");
        } else {
            rc = dynbuf_printf(b, "%s{agent=\"", metric);
        }
        if (rc == 0)
            rc = prom_label(b, rows_get(r, i, "agent"));
        if (rc == 0)
            rc = dynbuf_printf(b, "\"} %.15g\n", x);
    }
    return rc;
}

struct job_counts {
    struct dynbuf *b;
    int rc;
};

static int job_count_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct job_counts *j = ctx;
    if (ncols == 2 && vals[0] && vals[1] && j->rc == 0) {
        j->rc = dynbuf_printf(j->b, "em_backend_jobs{status=\"");
        if (j->rc == 0)
            j->rc = prom_label(j->b, vals[0]);
        if (j->rc == 0)
            j->rc = dynbuf_printf(j->b, "\"} %s\n", vals[1]);
    }
    return 0;
}

static enum MHD_Result api_metrics(struct serve *sv, struct serve_conn *sc,
                                   struct MHD_Connection *c)
{
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    struct view_args a = {.now = serve_now(), .stall = sv->stall};
    struct rows ses = {0}, ag = {0};
    int rc = s ? view_rows(s, VIEW_SESSIONS, &a, &ses, reason, sizeof(reason)) : -EM_EIO;
    if (rc == 0)
        rc = view_rows(s, VIEW_AGENTS, &a, &ag, reason, sizeof(reason));
    struct dynbuf b;
    dynbuf_init(&b, 64u << 20);
    int w = prom_header(&b, "em_backend_up", "gauge", "1 while the store can be read.");
    if (w == 0)
        w = dynbuf_printf(&b, "em_backend_up %d\n", rc == 0 ? 1 : 0);
    if (w == 0)
        w = prom_header(&b, "em_backend_http_requests_total", "counter", "HTTP requests answered.");
    if (w == 0)
        w = dynbuf_printf(&b, "em_backend_http_requests_total %" PRIu64 "\n",
                          __atomic_load_n(&sv->requests, __ATOMIC_RELAXED));
    if (w == 0)
        w = prom_header(&b, "em_backend_event_streams", "gauge", "Live event streams open.");
    if (w == 0)
        w = dynbuf_printf(&b, "em_backend_event_streams %" PRIu64 "\n",
                          __atomic_load_n(&sv->streams, __ATOMIC_RELAXED));
    if (rc == 0) {
        static const struct {
            const char *name, *type, *help, *col;
            bool flag, time;
        } sm[] = {
            {"em_session_stalled", "gauge",
             "1 when the session is acquiring no more: no micrograph for longer than its "
             "threshold (em_session_stall_threshold_seconds).",
             "stalled", true, false},
            {"em_session_stall_threshold_seconds", "gauge",
             "How long without a micrograph makes the session stalled.", "stall_after_s", false,
             false},
            {"em_session_micrographs", "gauge", "Micrographs stored for the session.",
             "micrographs", false, false},
            {"em_session_micrographs_per_hour", "gauge",
             "Micrographs per hour between the first and the newest.", "per_hour", false, false},
            {"em_session_last_micrograph_timestamp_seconds", "gauge",
             "When the newest micrograph's file was written, in Unix seconds.", "last_seen", false,
             true},
            {"em_session_squares", "gauge", "Grid squares listed for the session.", "squares",
             false, false},
            {"em_session_squares_imaged", "gauge", "Grid squares imaged.", "imaged", false, false},
        };
        for (size_t i = 0; i < sizeof(sm) / sizeof(sm[0]) && w == 0; i++) {
            w = prom_header(&b, sm[i].name, sm[i].type, sm[i].help);
            if (w == 0)
                w = per_row(&b, &ses, sm[i].name, sm[i].col, sm[i].flag, sm[i].time, true);
        }
        static const struct {
            const char *name, *help, *col;
            bool flag, time;
        } am[] = {
            {"em_agent_alive", "1 while the agent's heartbeats arrive.", "alive", true, false},
            {"em_agent_last_heartbeat_timestamp_seconds", "When the last heartbeat was sent.",
             "last_heartbeat", false, true},
            {"em_agent_outbox_events", "Events waiting in the agent's outbox (last heartbeat).",
             "outbox_events", false, false},
            {"em_agent_errors",
             "Files and directories the agent could not read (last "
             "heartbeat).",
             "errors", false, false},
        };
        for (size_t i = 0; i < sizeof(am) / sizeof(am[0]) && w == 0; i++) {
            w = prom_header(&b, am[i].name, "gauge", am[i].help);
            if (w == 0)
                w = per_row(&b, &ag, am[i].name, am[i].col, am[i].flag, am[i].time, false);
        }
        if (w == 0)
            w = prom_header(&b, "em_backend_jobs", "gauge", "Loader jobs by status.");
        struct job_counts jc = {&b, 0};
        if (w == 0)
            rc = store_query(s, "SELECT status, COUNT(*) FROM job GROUP BY status ORDER BY status",
                             0, NULL, job_count_row, &jc, reason, sizeof(reason));
        if (w == 0)
            w = jc.rc;
    }
    if (rc < 0 && s)
        serve_store_failed(sc);
    rows_free(&ses);
    rows_free(&ag);
    enum MHD_Result r =
        w == 0 ? send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, true)
               : send_error(c, 500, "out of memory");
    dynbuf_free(&b);
    return r;
}

/* ---- /api/v1/events ---- */

struct stream {
    struct serve *sv;
    struct serve_conn *sc;
    int64_t cursor; /* the last change id sent */
    uint64_t gen;
    struct dynbuf out;
    size_t off;
    double last_write; /* monotonic */
    int err;
};

static int change_row(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    struct stream *st = ctx;
    if (ncols < 7 || !vals[0])
        return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", strtod(vals[0], NULL));
    cJSON_AddStringToObject(o, "type", vals[1] ? vals[1] : "");
    cJSON_AddStringToObject(o, "op", vals[2] ? vals[2] : "");
    cJSON *key = vals[3] ? cJSON_Parse(vals[3]) : NULL;
    cJSON_AddItemToObject(o, "key", key ? key : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "agent", vals[4] ? vals[4] : "");
    cJSON_AddNumberToObject(o, "seq", vals[5] ? strtod(vals[5], NULL) : 0);
    cJSON_AddStringToObject(o, "at", vals[6] ? vals[6] : "");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return st->err = -EM_ENOMEM;
    st->err = dynbuf_printf(&st->out, "id: %s\nevent: change\ndata: %s\n\n", vals[0], text);
    cJSON_free(text);
    st->cursor = strtoll(vals[0], NULL, 10);
    return st->err;
}

/* Appends the changes after the cursor. Returns how many, or <0. */
static int stream_fetch(struct stream *st)
{
    char reason[768];
    struct store *s = serve_store(st->sv, st->sc, reason, sizeof(reason));
    if (!s)
        return 0; /* not now: the next wake tries again */
    char cur[24], lim[16];
    snprintf(cur, sizeof(cur), "%" PRId64, st->cursor);
    snprintf(lim, sizeof(lim), "%d", SSE_BATCH);
    const char *p[2] = {cur, lim};
    size_t before = st->out.len;
    int rc = store_query(s,
                         "SELECT id, type, op, key, agent, seq, at FROM change_log WHERE id > ?"
                         " ORDER BY id LIMIT ?",
                         2, p, change_row, st, reason, sizeof(reason));
    if (rc < 0) {
        serve_store_failed(st->sc);
        return 0;
    }
    if (st->err < 0)
        return st->err;
    return st->out.len > before ? 1 : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    struct serve *sv = st->sv;
    for (;;) {
        if (st->off < st->out.len) {
            size_t n = st->out.len - st->off < max ? st->out.len - st->off : max;
            memcpy(buf, st->out.p + st->off, n);
            st->off += n;
            if (st->off == st->out.len)
                st->off = st->out.len = 0;
            st->last_write = be_mono_s();
            return (ssize_t)n;
        }
        if (__atomic_load_n(&sv->stopping, __ATOMIC_RELAXED))
            return MHD_CONTENT_READER_END_OF_STREAM;
        int got = stream_fetch(st);
        if (got < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (got > 0)
            continue;
        /* Nothing new: wait for the monitor's wake (a commit), at most a second (the
         * stream also looks by itself, should a notification be missed). */
        pthread_mutex_lock(&sv->mu);
        if (sv->gen == st->gen && !sv->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&sv->cond, &sv->mu, &ts);
        }
        st->gen = sv->gen;
        pthread_mutex_unlock(&sv->mu);
        if (be_mono_s() - st->last_write >= SSE_KEEPALIVE_S &&
            dynbuf_printf(&st->out, ": keepalive\n\n") < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls)
{
    struct stream *st = cls;
    __atomic_sub_fetch(&st->sv->streams, 1, __ATOMIC_RELAXED);
    dynbuf_free(&st->out);
    free(st);
}

static int one_int64(void *ctx, int ncols, const char *const *names, const char *const *vals)
{
    (void)names;
    if (ncols > 0 && vals[0])
        *(int64_t *)ctx = strtoll(vals[0], NULL, 10);
    return 0;
}

static enum MHD_Result api_events(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c)
{
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    const char *from = last && *last ? last : since;
    if (from && strspn(from, "0123456789") != strlen(from))
        return send_error(c, 400, "%s %.40s: a change id is a whole number",
                          last && *last ? "Last-Event-ID" : "since=", from);
    if (from && strlen(from) > 18)
        return send_error(c, 400, "%.40s: too large for a change id", from);
    char reason[768];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    if (!s)
        return send_error(c, 503, "the store cannot be read: %s", reason);
    int64_t cursor = 0;
    if (from && *from) {
        cursor = strtoll(from, NULL, 10);
    } else {
        /* No cursor: from now on (the client reads the current state from the API). */
        int rc = store_query(s, "SELECT MAX(id) FROM change_log", 0, NULL, one_int64, &cursor,
                             reason, sizeof(reason));
        if (rc < 0)
            return store_error(sc, c, rc, reason);
    }
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        return send_error(c, 500, "out of memory");
    st->sv = sv;
    st->sc = sc;
    st->cursor = cursor;
    st->last_write = be_mono_s();
    dynbuf_init(&st->out, 64u << 20);
    pthread_mutex_lock(&sv->mu);
    st->gen = sv->gen;
    pthread_mutex_unlock(&sv->mu);
    /* Where the stream starts, for a client that has no id yet (no id: line, so that the
     * browser's Last-Event-ID is not changed by it). */
    if (dynbuf_printf(&st->out, "retry: 2000\nevent: hello\ndata: {\"cursor\":%" PRId64 "}\n\n",
                      cursor) < 0) {
        dynbuf_free(&st->out);
        free(st);
        return send_error(c, 500, "out of memory");
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               stream_read, st, stream_free);
    if (!r) {
        dynbuf_free(&st->out);
        free(st);
        return MHD_NO;
    }
    __atomic_add_fetch(&sv->streams, 1, __ATOMIC_RELAXED);
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return respond(c, 200, r, "text/event-stream", "no-store");
}

/* ---- the images behind the maps ---- */

/* A square's newest image (`tile` NULL) or an atlas tile (`session` is then the atlas),
 * as the .jpg EPU wrote beside its manifest. */
static enum MHD_Result api_image(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c,
                                 const char *session, const char *square, const char *tile)
{
    char reason[768], rel[4096];
    struct store *s = serve_store(sv, sc, reason, sizeof(reason));
    if (!s)
        return send_error(c, 503, "the store cannot be read: %s", reason);
    int rc = tile ? view_tile_jpeg(s, session, tile, rel, sizeof(rel), reason, sizeof(reason))
                  : view_square_jpeg(s, session, square, rel, sizeof(rel), reason, sizeof(reason));
    if (rc == 1)
        return send_error(c, 404, "%s", reason);
    if (rc < 0)
        return store_error(sc, c, rc, reason);
    int fd;
    uint64_t size;
    int status = serve_image_open(sv->image_roots, sv->nimage_roots, rel, &fd, &size, reason,
                                  sizeof(reason));
    if (status != 0)
        return send_error(c, (unsigned)status, "%s", reason);
    struct MHD_Response *r = MHD_create_response_from_fd64(size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    /* a square imaged again keeps its address: ask again after a minute */
    return respond(c, 200, r, "image/jpeg", "private, max-age=60");
}

/* ---- routing ---- */

static const char *bearer(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        return h + 7;
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "access_token");
}

static const struct web_file *web_file(const char *url)
{
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (const struct web_file *f = serve_web_files; f->path; f++)
        if (strcmp(f->path, url + 1) == 0)
            return f;
    return NULL;
}

/* Splits "/api/v1/sessions/1/squares/2" after API into at most 6 segments. */
static size_t segments(const char *path, char seg[6][64])
{
    size_t n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p && n < 6) {
        size_t l = strcspn(p, "/");
        snprintf(seg[n++], 64, "%.*s", (int)(l < 63 ? l : 63), p);
        p += l;
        while (*p == '/')
            p++;
    }
    return *p ? 7 : n; /* 7: too many */
}

enum MHD_Result serve_route(struct serve *sv, struct serve_conn *sc, struct MHD_Connection *c,
                            const char *url, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s: only GET is served", method);
    const struct web_file *f = web_file(url);
    if (f) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(f->len, unconst(f->data), MHD_RESPMEM_PERSISTENT);
        if (r)
            MHD_add_response_header(r, "Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; "
                                    "style-src 'self'; script-src 'self'; connect-src 'self'");
        return respond(c, 200, r, f->type, "no-cache");
    }
    if (strcmp(url, "/health") == 0)
        return api_health(sv, sc, c);
    bool api = strncmp(url, API, strlen(API)) == 0 &&
               (url[strlen(API)] == '/' || url[strlen(API)] == '\0');
    if (!api && strcmp(url, "/metrics") != 0)
        return send_error(c, 404, "%.200s: no such page (the API is under " API "/)", url);
    if (!serve_token_ok(sv, bearer(c)))
        return send_error(c, MHD_HTTP_UNAUTHORIZED,
                          bearer(c) ? "the token is not the one this server takes"
                                    : "a bearer token is required: 'Authorization: Bearer "
                                      "TOKEN' or ?access_token=TOKEN");
    if (!api) {
        const char *bad = unknown_param(c, NULL);
        if (bad)
            return send_error(c, 400, "%.64s: unknown parameter", bad);
        return api_metrics(sv, sc, c);
    }
    char seg[6][64];
    size_t n = segments(url + strlen(API), seg);
    static const char *const none[] = {NULL};
    static const char *const micro[] = {"session", "square", "since", "limit", NULL};
    static const char *const jobs[] = {"status", NULL};
    static const char *const events[] = {"since", NULL};
    const char *const *allowed = none;
    if (n == 1 && strcmp(seg[0], "micrographs") == 0)
        allowed = micro;
    else if (n == 1 && strcmp(seg[0], "jobs") == 0)
        allowed = jobs;
    else if (n == 1 && strcmp(seg[0], "events") == 0)
        allowed = events;
    const char *bad = unknown_param(c, allowed);
    if (bad && n >= 1 && n <= 5)
        return send_error(c, 400, "%.64s: unknown parameter for " API "/%s", bad, seg[0]);
    struct view_args a = {.limit = 100};
    if (n == 1 && strcmp(seg[0], "openapi.json") == 0) {
        const struct web_file *spec = web_file("/openapi.json");
        if (spec)
            return send_text(c, 200, "application/json", (const char *)spec->data, spec->len,
                             false);
    }
    if (n == 1 && strcmp(seg[0], "events") == 0)
        return api_events(sv, sc, c);
    if (n == 1 && strcmp(seg[0], "sessions") == 0)
        return send_view(sv, sc, c, VIEW_SESSIONS, &a, NULL, NULL, NULL);
    if (n >= 2 && strcmp(seg[0], "sessions") == 0) {
        if (!is_id(seg[1]))
            return send_error(c, 400, "session %.64s: an id is a whole number", seg[1]);
        a.session = seg[1];
        char what[160];
        snprintf(what, sizeof(what), "session %s", seg[1]);
        if (n == 2)
            return send_view(sv, sc, c, VIEW_SESSIONS, &a, "session_id", seg[1], what);
        if (n == 3 && strcmp(seg[2], "timeline") == 0)
            return api_timeline(sv, sc, c, seg[1]);
        if (strcmp(seg[2], "squares") == 0) {
            if (n == 3)
                return send_view(sv, sc, c, VIEW_SQUARES, &a, NULL, NULL, NULL);
            if (!is_id(seg[3]))
                return send_error(c, 400, "grid square %.64s: an id is a whole number", seg[3]);
            snprintf(what, sizeof(what), "grid square %s of session %s", seg[3], seg[1]);
            if (n == 4)
                return send_view(sv, sc, c, VIEW_SQUARES, &a, "gridsquare_id", seg[3], what);
            a.square = seg[3];
            if (n == 5 && strcmp(seg[4], "foilholes") == 0)
                return send_view(sv, sc, c, VIEW_FOILHOLES, &a, NULL, NULL, NULL);
            if (n == 5 && strcmp(seg[4], "image") == 0)
                return api_image(sv, sc, c, seg[1], seg[3], NULL);
        }
    }
    if (n == 1 && strcmp(seg[0], "micrographs") == 0) {
        const char *session = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "session"),
                   *square = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "square"),
                   *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since"),
                   *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
        if ((session && !is_id(session)) || (square && !is_id(square)))
            return send_error(c, 400, "%s=%.64s: an id is a whole number",
                              session && !is_id(session) ? "session" : "square",
                              session && !is_id(session) ? session : square);
        if (since && (!strchr(since, ',') || strlen(since) > 200))
            return send_error(c, 400,
                              "since=%.64s: a cursor is ACQUIRED_AT,UUID (the \"next\" of the "
                              "previous page; \",\" for the first)",
                              since);
        if (limit) {
            char *end;
            errno = 0;
            long l = strtol(limit, &end, 10);
            if (!*limit || *end || errno || l < 1 || l > PAGE_MAX)
                return send_error(c, 400, "limit=%.32s: a whole number from 1 to %d", limit,
                                  PAGE_MAX);
            a.limit = l;
        }
        a.session = session;
        a.gridsquare = square;
        a.since = since;
        return send_view(sv, sc, c, VIEW_MICROGRAPHS, &a, NULL, NULL, NULL);
    }
    if (n == 1 && strcmp(seg[0], "atlases") == 0)
        return send_view(sv, sc, c, VIEW_ATLASES, &a, NULL, NULL, NULL);
    if (n >= 3 && strcmp(seg[0], "atlases") == 0 && strcmp(seg[2], "tiles") == 0) {
        if (!is_id(seg[1]))
            return send_error(c, 400, "atlas %.64s: an id is a whole number", seg[1]);
        a.atlas = seg[1];
        if (n == 3)
            return send_view(sv, sc, c, VIEW_TILES, &a, NULL, NULL, NULL);
        if (!is_id(seg[3]))
            return send_error(c, 400, "tile %.64s: an id is a whole number", seg[3]);
        if (n == 5 && strcmp(seg[4], "image") == 0)
            return api_image(sv, sc, c, seg[1], NULL, seg[3]);
    }
    if (n == 1 && strcmp(seg[0], "datasets") == 0)
        return send_view(sv, sc, c, VIEW_DATASETS, &a, NULL, NULL, NULL);
    if (n == 1 && strcmp(seg[0], "agents") == 0)
        return send_view(sv, sc, c, VIEW_AGENTS, &a, NULL, NULL, NULL);
    if (n == 1 && strcmp(seg[0], "jobs") == 0)
        return api_jobs(sv, sc, c);
    return send_error(c, 404, "%.200s: no such resource (see " API "/openapi.json)", url);
}

/* ---- stall alerts ---- */

static struct stall_seen *seen_of(struct serve *sv, const char *id)
{
    for (size_t i = 0; i < sv->nseen; i++)
        if (strcmp(sv->seen[i].session_id, id) == 0)
            return &sv->seen[i];
    if (sv->nseen == sv->seen_cap) {
        size_t cap = sv->seen_cap ? sv->seen_cap * 2 : 16;
        struct stall_seen *v = realloc(sv->seen, cap * sizeof(*v));
        if (!v)
            return NULL;
        sv->seen = v;
        sv->seen_cap = cap;
    }
    struct stall_seen *e = &sv->seen[sv->nseen++];
    memset(e, 0, sizeof(*e));
    snprintf(e->session_id, sizeof(e->session_id), "%s", id);
    return e;
}

/* Publishes one alert; returns true when the broker confirmed it. */
static bool publish_alert(struct serve *sv, const struct stall_seen *e, double now)
{
    amqp_connection_state_t conn = sv->amqp;
    char reason[512];
    if (!conn) {
        conn = bus_connect(&sv->bus, 0, 5.0, reason, sizeof(reason));
        if (!conn) {
            em_log(EM_LOG_WARN, "serve: alerts: %s (kept; tried again)", reason);
            return false;
        }
        amqp_confirm_select(conn, 1);
        if (!bus_ok(amqp_get_rpc_reply(conn), "confirm.select", reason, sizeof(reason)) ||
            !bus_declare_events(conn, reason, sizeof(reason))) {
            em_log(EM_LOG_WARN, "serve: alerts: %s", reason);
            bus_close(conn, false);
            return false;
        }
        sv->amqp = conn;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "alert", e->stalled ? "session_stalled" : "session_resumed");
    cJSON_AddNumberToObject(o, "session_id", strtod(e->session_id, NULL));
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddStringToObject(o, "agent", e->agent);
    cJSON_AddBoolToObject(o, "stalled", e->stalled);
    cJSON_AddStringToObject(o, "last_micrograph", e->since);
    cJSON_AddNumberToObject(o, "threshold_s", e->threshold_s);
    char at[32];
    em_utc_text((time_t)now, at, sizeof(at));
    cJSON_AddStringToObject(o, "at", at);
    cJSON_AddStringToObject(o, "store", sv->store_redacted);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        return false;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2;
    int rc = amqp_basic_publish(conn, 1, amqp_cstring_bytes(BUS_EXCHANGE),
                                amqp_cstring_bytes(BUS_ALERTS_KEY), 0, 0, &props,
                                amqp_cstring_bytes(body));
    cJSON_free(body);
    bool ok = rc == AMQP_STATUS_OK;
    if (ok) {
        /* wait for the broker's confirm (basic.ack) */
        struct timeval tv = {5, 0};
        amqp_frame_t fr;
        ok = false;
        for (;;) {
            int w = amqp_simple_wait_frame_noblock(conn, &fr, &tv);
            if (w != AMQP_STATUS_OK)
                break;
            if (fr.frame_type == AMQP_FRAME_METHOD &&
                fr.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                ok = true;
                break;
            }
            if (fr.frame_type == AMQP_FRAME_METHOD &&
                (fr.payload.method.id == AMQP_BASIC_NACK_METHOD ||
                 fr.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                 fr.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
                break;
        }
    }
    if (!ok) {
        em_log(EM_LOG_WARN,
               "serve: alerts: the bus did not take the alert for session %s "
               "(kept; tried again)",
               e->session_id);
        bus_close(conn, false);
        sv->amqp = NULL;
        return false;
    }
    __atomic_add_fetch(&sv->alerts_sent, 1, __ATOMIC_RELAXED);
    em_log(EM_LOG_INFO, "alert sent: session %s %s", e->session_id,
           e->stalled ? "stalled" : "acquiring again");
    return true;
}

void serve_check_stalls(struct serve *sv, struct store *s, double now)
{
    struct view_args a = {.now = now, .stall = sv->stall};
    struct rows r = {0};
    char reason[768];
    int rc = view_rows(s, VIEW_SESSIONS, &a, &r, reason, sizeof(reason));
    if (rc != 0) {
        em_log(EM_LOG_WARN, "serve: cannot check for stalls: %s", reason);
        rows_free(&r);
        return;
    }
    pthread_mutex_lock(&sv->stall_mu);
    for (size_t i = 0; i < r.n; i++) {
        const char *id = rows_get(&r, i, "session_id");
        if (!id)
            continue;
        struct stall_seen *e = seen_of(sv, id);
        if (!e)
            break;
        const char *st = rows_get(&r, i, "stalled"), *seen = rows_get(&r, i, "last_seen"),
                   *after = rows_get(&r, i, "stall_after_s");
        bool stalled = st && strcmp(st, "yes") == 0;
        snprintf(e->name, sizeof(e->name), "%s",
                 rows_get(&r, i, "name") ? rows_get(&r, i, "name") : "");
        snprintf(e->agent, sizeof(e->agent), "%s",
                 rows_get(&r, i, "agent") ? rows_get(&r, i, "agent") : "");
        snprintf(e->since, sizeof(e->since), "%s", seen ? seen : "");
        e->threshold_s = after ? strtod(after, NULL) : 0;
        if (stalled != e->stalled || !e->present) {
            if (stalled)
                em_log(EM_LOG_WARN,
                       "session %s (%s, agent %s): stalled: no micrograph since %s (more than "
                       "%.0f s)",
                       id, e->name, e->agent, e->since, e->threshold_s);
            else if (e->present && !cli_quiet) /* said without -v, as the stall is */
                em_log_write(EM_LOG_INFO, "session %s (%s): acquiring again", id, e->name);
            /* a session first seen healthy is no news; one first seen stalled is */
            e->unsent = stalled || e->present;
            e->stalled = stalled;
            e->present = true;
        }
    }
    for (size_t i = 0; i < sv->nseen && sv->have_bus; i++)
        if (sv->seen[i].unsent && publish_alert(sv, &sv->seen[i], now))
            sv->seen[i].unsent = false;
    pthread_mutex_unlock(&sv->stall_mu);
    rows_free(&r);
}

void serve_alerts_close(struct serve *sv)
{
    if (sv->amqp)
        bus_close(sv->amqp, true);
    sv->amqp = NULL;
    free(sv->seen);
    sv->seen = NULL;
    sv->nseen = sv->seen_cap = 0;
}
