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

/* `data` NULL with `deleted`: a delete carries "data": null. */
static char *format(const char *agent, uint64_t seq, enum wire_type type, bool deleted, cJSON *key,
                    cJSON *data, const char *source_path, const struct fsio_stat *st)
{
    char *line = NULL;
    /* As digits: cJSON prints a double, and a seq such as 1796140584410960 would come out
     * as 1.79614058441096e+15, which readers of the outbox and of --out do not take. */
    char seqs[24];
    snprintf(seqs, sizeof(seqs), "%" PRIu64, seq);
    cJSON *ev = cJSON_CreateObject();
    if (!ev || !cJSON_AddNumberToObject(ev, "v", WIRE_VERSION) ||
        !cJSON_AddRawToObject(ev, "seq", seqs) || !cJSON_AddStringToObject(ev, "agent", agent) ||
        !cJSON_AddStringToObject(ev, "type", wire_type_name(type)) ||
        !cJSON_AddStringToObject(ev, "op", wire_op_name(deleted ? WIRE_DELETE : WIRE_UPSERT))) {
        cJSON_Delete(key);
        cJSON_Delete(data);
        goto out;
    }
    if (!key || !cJSON_AddItemToObject(ev, "key", key)) {
        cJSON_Delete(key);
        cJSON_Delete(data);
        goto out;
    }
    if (deleted ? !cJSON_AddNullToObject(ev, "data")
                : (!data || !cJSON_AddItemToObject(ev, "data", data))) {
        cJSON_Delete(data);
        goto out;
    }
    if (source_path) {
        cJSON *src = cJSON_AddObjectToObject(ev, "source");
        if (!src || !cJSON_AddStringToObject(src, "path", source_path))
            goto out;
        if (st) {
            struct epu_time t;
            epu_time_from_unix(st->mtime_sec, st->mtime_nsec, &t);
            if (!cJSON_AddNumberToObject(src, "size", (double)st->size) ||
                !cJSON_AddStringToObject(src, "mtime", t.s))
                goto out;
        }
    } else if (!cJSON_AddNullToObject(ev, "source")) {
        goto out;
    }
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    struct epu_time t;
    epu_time_from_unix(now.tv_sec, now.tv_usec * 1000, &t);
    if (cJSON_AddStringToObject(ev, "emitted_at", t.s))
        line = jsonw_print(ev);
    /* Paths are bytes: a name that is not UTF-8 is written the one documented way
     * (em_utf8.h), so that every event line is valid UTF-8 JSON. */
    size_t n = line ? strlen(line) : 0;
    if (line && !em_utf8_valid(line, n)) {
        char *esc = cJSON_malloc(4 * n + 2);
        if (esc)
            em_utf8_escape(line, n, esc, true);
        cJSON_free(line);
        line = esc;
    }
out:
    cJSON_Delete(ev);
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
