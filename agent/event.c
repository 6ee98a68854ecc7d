#include "event.h"
#include "fsio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "em_error.h"
#include "em_utf8.h"
#include "epu.h"
#include "dynbuf.h"
#include "jsonw.h"
#include "log.h"

void event_writer_init(struct event_writer *w, FILE *out, const char *agent, uint64_t last_seq)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->agent = agent;
    w->seq = last_seq;
}

void event_default_agent(char *buf, size_t cap)
{
    size_t len = cap;
    if (uv_os_gethostname(buf, &len) != 0 || buf[0] == '\0')
        snprintf(buf, cap, "em-agent");
}

#define ADD(lit) dynbuf_add(&b, lit, sizeof(lit) - 1)

char *event_format_text(const char *agent, uint64_t seq, enum wire_type type, bool deleted,
                        const char *key_json, const char *data_json, const char *source_path,
                        const struct fsio_stat *st)
{
    if (!key_json || (!deleted && !data_json))
        return NULL;
    struct dynbuf b;
    dynbuf_init(&b, (size_t)1 << 40);
    /* As digits: a seq such as 1796140584410960 must not come out as 1.79614058441096e+15,
     * which readers of the outbox and of --out do not take. */
    char seqs[24];
    int n = snprintf(seqs, sizeof(seqs), "%" PRIu64, seq);
    int rc = ADD("{\"v\":");
    if (rc == 0)
        rc = jsonw_double(&b, WIRE_VERSION);
    if (rc == 0)
        rc = ADD(",\"seq\":");
    if (rc == 0)
        rc = dynbuf_add(&b, seqs, (size_t)n);
    if (rc == 0)
        rc = ADD(",\"agent\":");
    if (rc == 0)
        rc = jsonw_string(&b, agent);
    if (rc == 0)
        rc = ADD(",\"type\":");
    if (rc == 0)
        rc = jsonw_string(&b, wire_type_name(type));
    if (rc == 0)
        rc = ADD(",\"op\":");
    if (rc == 0)
        rc = jsonw_string(&b, wire_op_name(deleted ? WIRE_DELETE : WIRE_UPSERT));
    if (rc == 0)
        rc = ADD(",\"key\":");
    if (rc == 0)
        rc = dynbuf_add(&b, key_json, strlen(key_json));
    if (rc == 0)
        rc = ADD(",\"data\":");
    if (rc == 0)
        rc = deleted ? ADD("null") : dynbuf_add(&b, data_json, strlen(data_json));
    if (rc == 0 && source_path) {
        rc = ADD(",\"source\":{\"path\":");
        if (rc == 0)
            rc = jsonw_string(&b, source_path);
        if (rc == 0 && st) {
            struct epu_time t;
            epu_time_from_unix(st->mtime_sec, st->mtime_nsec, &t);
            rc = ADD(",\"size\":");
            if (rc == 0)
                rc = jsonw_double(&b, (double)st->size);
            if (rc == 0)
                rc = ADD(",\"mtime\":");
            if (rc == 0)
                rc = jsonw_string(&b, t.s);
        }
        if (rc == 0)
            rc = ADD("}");
    } else if (rc == 0) {
        rc = ADD(",\"source\":null");
    }
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    struct epu_time t;
    epu_time_from_unix(now.tv_sec, now.tv_usec * 1000, &t);
    if (rc == 0)
        rc = ADD(",\"emitted_at\":");
    if (rc == 0)
        rc = jsonw_string(&b, t.s);
    if (rc == 0)
        rc = ADD("}");
    char *line = NULL;
    if (rc == 0) {
        /* Paths are bytes: a name that is not UTF-8 is written the one documented way
         * (em_utf8.h), so that every event line is valid UTF-8 JSON. */
        if (em_utf8_valid(b.p, b.len)) {
            line = cJSON_malloc(b.len + 1);
            if (line)
                memcpy(line, b.p, b.len + 1);
        } else if ((line = cJSON_malloc(4 * b.len + 2)) != NULL) {
            em_utf8_escape(b.p, b.len, line, true);
        }
    }
    dynbuf_free(&b);
    return line;
}

#undef ADD

/* `data` NULL with `deleted`: a delete carries "data": null. Takes `key` and `data`. */
static char *format(const char *agent, uint64_t seq, enum wire_type type, bool deleted, cJSON *key,
                    cJSON *data, const char *source_path, const struct fsio_stat *st)
{
    char *k = key ? jsonw_print(key) : NULL;
    char *d = data ? jsonw_print(data) : NULL;
    char *line = NULL;
    if (k && (deleted || d))
        line = event_format_text(agent, seq, type, deleted, k, d, source_path, st);
    cJSON_free(k);
    cJSON_free(d);
    cJSON_Delete(key);
    cJSON_Delete(data);
    return line;
}

char *event_format(const char *agent, uint64_t seq, enum wire_type type, cJSON *key, cJSON *data,
                   const char *source_path, const struct fsio_stat *st)
{
    return format(agent, seq, type, false, key, data, source_path, st);
}

char *event_format_delete(const char *agent, uint64_t seq, enum wire_type type, cJSON *key,
                          const char *source_path)
{
    return format(agent, seq, type, true, key, NULL, source_path, NULL);
}

bool event_size_ok(const char *line, enum wire_type type, const char *source_path)
{
    size_t n = strlen(line);
    if (n <= WIRE_MAX_BYTES)
        return true;
    em_log(EM_LOG_ERROR,
           "%s: its %s event is %zu bytes, over the %u bytes a consumer takes: "
           "not emitted",
           source_path ? source_path : "?", wire_type_name(type), n, WIRE_MAX_BYTES);
    return false;
}

int event_emit(struct event_writer *w, enum wire_type type, cJSON *key, cJSON *data,
               const char *source_path, const struct fsio_stat *st)
{
    uint64_t seq = w->seq + 1;
    char *line = event_format(w->agent, seq, type, key, data, source_path, st);
    if (line && !event_size_ok(line, type, source_path)) {
        cJSON_free(line);
        return 0;
    }
    int rc = line ? 0 : -EM_ENOMEM;
    if (line && (fputs(line, w->out) < 0 || fputc('\n', w->out) < 0))
        rc = em_from_errno(errno);
    cJSON_free(line);
    if (rc == 0) {
        w->seq = seq;
        w->count[type]++;
    } else if (!w->error) {
        w->error = rc;
    }
    return rc;
}
