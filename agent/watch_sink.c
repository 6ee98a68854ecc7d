/* watch's sink: every event goes to the journal first (commit), then to stdout, --out
 * FILE or the outbox (--amqp, from which the publisher thread sends it), then a
 * "delivered" record. */
#include "watch_int.h"

#define OUT_FLUSH (256u << 10)

/* ---- output ---- */

static int sink_write(struct watch *w, char *p, size_t n)
{
    if (w->ob_open) {
        int rc = outbox_write(&w->ob, p, n, w->obuf_first_seq, w->obuf_last_seq);
        if (rc == 0)
            w->ob_written += w->obuf_last_seq - w->obuf_first_seq + 1; /* dense in a run */
        if (rc == 0 && w->pub)
            publisher_notify(w->pub, w->obuf_last_seq);
        return rc;
    }
    if (w->out_fd >= 0)
        return fsio_write_all(w->out_fd, p, n);
    errno = 0;
    if (fwrite(p, 1, n, w->out) != n || fflush(w->out) != 0)
        return em_from_errno(errno);
    return 0;
}

/* A start-up line shown whatever the log level, unless -q. */

/* A write to the journal, the outbox or the output failed: names the file and the cause. */
void sink_fail_write(struct watch *w, const char *what, int rc)
{
    char msg[4200];
    if (rc == -EM_EPIPE && strcmp(what, "standard output") == 0)
        snprintf(msg, sizeof(msg), "standard output (the reader went away)");
    else
        snprintf(msg, sizeof(msg), "%s: cannot write", what);
    watch_fail(w, 1, msg, rc);
}

/* Journal first, then the sink, then the delivered mark. */
int sink_commit(struct watch *w)
{
    int rc = journal_commit(w->j);
    if (rc < 0) {
        sink_fail_write(w, journal_path(w->j), rc);
        return rc;
    }
    if (w->olen == 0)
        return 0;
    rc = sink_write(w, w->obuf, w->olen);
    if (rc < 0) {
        sink_fail_write(w,
                        w->ob_open         ? w->ob.dir
                        : w->opt->out_path ? w->opt->out_path
                                           : "standard output",
                        rc);
        return rc;
    }
    w->olen = 0;
    rc = journal_delivered(w->j, w->obuf_last_seq);
    if (rc == 0)
        rc = journal_commit(w->j);
    if (rc < 0)
        sink_fail_write(w, journal_path(w->j), rc);
    return rc;
}

int sink_put(struct watch *w, const char *s, size_t n, uint64_t seq)
{
    if (w->olen == 0)
        w->obuf_first_seq = seq;
    if (w->olen + n + 1 > w->ocap) {
        size_t cap = w->ocap ? w->ocap : OUT_FLUSH * 2;
        while (cap < w->olen + n + 1)
            cap *= 2;
        char *b = realloc(w->obuf, cap);
        if (!b)
            return -EM_ENOMEM;
        w->obuf = b;
        w->ocap = cap;
    }
    memcpy(w->obuf + w->olen, s, n);
    w->obuf[w->olen + n] = '\n';
    w->olen += n + 1;
    return 0;
}

/* The journal's name for an entity: a hash of its type and key (as JSON text). */
static uint64_t key_hash_text(enum wire_type type, const char *k)
{
    struct hash64 h;
    hash64_init(&h);
    const char *tn = wire_type_name(type);
    hash64_update(&h, tn, strlen(tn) + 1);
    hash64_update(&h, k, strlen(k));
    return hash64_final(&h);
}

static int key_hash(enum wire_type type, const cJSON *key, uint64_t *out)
{
    char *k = key ? jsonw_print(key) : NULL;
    if (!k)
        return -EM_ENOMEM;
    *out = key_hash_text(type, k);
    cJSON_free(k);
    return 0;
}

/* Journals and queues one event line with the next seq. */
static int put_event(struct watch *w, enum wire_type type, uint64_t seq, uint64_t kh, uint64_t dh,
                     char *line)
{
    int rc = journal_event(w->j, seq, kh, dh, line);
    if (rc == 0)
        rc = sink_put(w, line, strlen(line), seq);
    cJSON_free(line);
    if (rc < 0)
        return rc;
    w->obuf_last_seq = seq;
    w->events[type]++;
    w->events_total++;
    return 0;
}

/* An entity that no longer exists under its key: a `delete` event, once. */
int sink_on_retract(void *ctx, enum wire_type type, cJSON *key, const char *source)
{
    struct wroot *r = ctx;
    struct watch *w = r->w;
    uint64_t kh;
    if (key_hash(type, key, &kh) < 0) {
        cJSON_Delete(key);
        return -EM_ENOMEM;
    }
    if (!journal_entity_live(w->j, kh)) {
        cJSON_Delete(key); /* never emitted, or deleted already */
        return 0;
    }
    uint64_t seq = journal_last_seq(w->j) + 1;
    char *line = event_format_delete(w->opt->agent, seq, type, key, source);
    if (!line)
        return -EM_ENOMEM;
    int rc = put_event(w, type, seq, kh, 0, line);
    if (rc == 0 && w->olen >= OUT_FLUSH)
        rc = sink_commit(w);
    return rc;
}

/* Emits one entity whose data is JSON text already (takes `key` and `d`). */
static int emit_text(struct watch *w, enum wire_type type, cJSON *key, char *d, const char *source,
                     const struct fsio_stat *st)
{
    /* Key and data are written as text once: for their hashes, and into the line. */
    char *k = key ? jsonw_print(key) : NULL;
    cJSON_Delete(key);
    if (!d || !k) {
        cJSON_free(d);
        cJSON_free(k);
        return -EM_ENOMEM;
    }
    uint64_t kh = key_hash_text(type, k);
    uint64_t dh = hash64_str(d);
    char *line = NULL;
    uint64_t seq = journal_last_seq(w->j) + 1;
    bool same = journal_entity_same(w->j, kh, dh);
    if (!same)
        line = event_format_text(w->opt->agent, seq, type, false, k, d, source, st);
    cJSON_free(d);
    cJSON_free(k);
    if (same)
        return 0;
    if (!line)
        return -EM_ENOMEM;
    if (!event_size_ok(line, type, source)) {
        cJSON_free(line);
        return 0;
    }
    int rc = put_event(w, type, seq, kh, dh, line);
    if (rc < 0)
        return rc;
    if (!w->walking && st) {
        uv_timeval64_t now;
        uv_gettimeofday(&now);
        double lag = ((double)now.tv_sec - (double)st->mtime_sec) * 1e3 +
                     ((double)now.tv_usec * 1e3 - (double)st->mtime_nsec) / 1e6;
        if (lag >= 0) {
            w->lag_last_ms = lag;
            w->lag_sum_ms += lag;
            w->lag_n++;
            if (lag > w->lag_max_ms)
                w->lag_max_ms = lag;
        }
    }
    if (w->olen >= OUT_FLUSH)
        return sink_commit(w);
    return 0;
}

int sink_heartbeat(struct watch *w, char *data_json)
{
    cJSON *key = cJSON_CreateObject();
    if (!key || !cJSON_AddStringToObject(key, "agent", w->opt->agent)) {
        cJSON_Delete(key);
        cJSON_free(data_json);
        return -EM_ENOMEM;
    }
    int rc = emit_text(w, WIRE_AGENT, key, data_json, NULL, NULL);
    /* Sent now, whatever else waits: a heartbeat that sits in a buffer says nothing. */
    return rc < 0 ? rc : sink_commit(w);
}

int sink_on_emit_text(void *ctx, enum wire_type type, cJSON *key, char *data_json,
                      const char *source, const struct fsio_stat *st)
{
    struct wroot *r = ctx;
    return emit_text(r->w, type, key, data_json, source, st);
}

int sink_on_emit(void *ctx, enum wire_type type, cJSON *key, cJSON *data, const char *source,
                 const struct fsio_stat *st)
{
    struct wroot *r = ctx;
    char *d = data ? jsonw_print(data) : NULL;
    cJSON_Delete(data);
    return emit_text(r->w, type, key, d, source, st);
}
