/* The agent's health: the heartbeat event (--heartbeat) and the Prometheus metrics file
 * (--metrics-file), in the text exposition format, for
 * node_exporter's textfile collector: written every METRICS_EVERY_S seconds, after the
 * first walk and at the end, to a temporary name and renamed over the file. */
#include "watch_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dynbuf.h"
#include "em_compat.h"
#include "prom.h"

/* # HELP and # TYPE, then one sample with the agent label. */
static int metric(struct dynbuf *b, const char *agent, const char *name, const char *type,
                  const char *help, double value)
{
    int rc = prom_header(b, name, type, help);
    if (rc == 0)
        rc = dynbuf_printf(b, "%s{agent=\"", name);
    if (rc == 0)
        rc = prom_label(b, agent);
    if (rc == 0)
        rc = dynbuf_printf(b, "\"} %.17g\n", value);
    return rc;
}

void metrics_write(struct watch *w, bool up)
{
    const char *path = w->opt->metrics_path;
    if (!path)
        return;
    const char *agent = w->opt->agent;
    struct dynbuf b;
    dynbuf_init(&b, 1u << 20);
    int rc = metric(&b, agent, "em_agent_up", "gauge",
                    "1 while the agent runs; 0 in the file it leaves when it stops.", up ? 1 : 0);
    if (rc == 0)
        rc =
            metric(&b, agent, "em_agent_start_time_seconds", "gauge",
                   "When this run of the agent started, in Unix seconds.", (double)w->started_unix);
    if (rc == 0)
        rc = dynbuf_printf(&b, "# HELP em_agent_events_total Entity events emitted (journaled and "
                               "handed to the sink), by entity type.\n"
                               "# TYPE em_agent_events_total counter\n");
    for (int t = 0; t < WIRE_TYPE_COUNT && rc == 0; t++) {
        rc = dynbuf_printf(&b, "em_agent_events_total{agent=\"");
        if (rc == 0)
            rc = prom_label(&b, agent);
        if (rc == 0)
            rc = dynbuf_printf(&b, "\",type=\"%s\"} %llu\n", wire_type_name((enum wire_type)t),
                               (unsigned long long)w->events[t]);
    }
    uint64_t waiting = 0;
    if (w->ob_open) {
        uint64_t in = w->ob_waiting_at_start + w->ob_written;
        waiting = in > w->pub_last.acked ? in - w->pub_last.acked : 0;
    }
    const struct {
        const char *name, *type, *help;
        double v;
    } m[] = {
        {"em_agent_files_parsed_total", "counter", "Files read and parsed.",
         (double)w->files_parsed},
        {"em_agent_parse_failures_total", "counter",
         "Files that could not be read or parsed (each version once).", (double)w->files_failed},
        {"em_agent_files_incomplete_total", "counter",
         "Times a document was found cut short and left to wait for its writer.",
         (double)w->files_waiting},
        {"em_agent_files_trusted_total", "counter",
         "Files not read at start because the journal had their version.",
         (double)w->files_trusted},
        {"em_agent_bytes_read_total", "counter", "Bytes of EPU files read.", (double)w->bytes},
        {"em_agent_outbox_events", "gauge",
         "Events in the outbox the bus has not confirmed (0 without --amqp).", (double)waiting},
        {"em_agent_bus_connected", "gauge", "1 while connected to the bus (0 without --amqp).",
         w->ob_open && w->pub_last.connected ? 1 : 0},
        {"em_agent_lag_seconds", "gauge",
         "How long after its file was written the newest live event was emitted (-1: none yet).",
         w->lag_last_ms >= 0 ? w->lag_last_ms / 1e3 : -1},
        {"em_agent_notification_overflows_total", "counter",
         "Times the system's change notifications overflowed (each forces a walk).",
         (double)w->overflows},
        {"em_agent_rescans_total", "counter", "Whole walks made after notification overflows.",
         (double)w->overflow_walks},
        {"em_agent_directories_watched", "gauge", "Directories under change notification.",
         w->watcher ? (double)watcher_count(w->watcher) : 0},
        {"em_agent_documents_in_progress", "gauge", "Growing documents being parsed.",
         (double)incparse_count(w->inc)},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]) && rc == 0; i++)
        rc = metric(&b, agent, m[i].name, m[i].type, m[i].help, m[i].v);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = rc == 0 ? fopen(tmp, "wb") : NULL;
    if (f) {
        bool ok = fwrite(b.p, 1, b.len, f) == b.len;
        ok = fclose(f) == 0 && ok;
        rc = ok ? fsio_rename(tmp, path) : -EM_EIO;
        if (rc < 0)
            remove(tmp);
    } else if (rc == 0) {
        rc = em_from_errno(errno);
    }
    dynbuf_free(&b);
    if (rc < 0 && !w->metrics_failed_told) {
        em_log(EM_LOG_WARN, "%s: cannot write the metrics file: %s (tried again every %d s)", path,
               em_strerror(rc), METRICS_EVERY_S);
        w->metrics_failed_told = true;
    } else if (rc == 0 && w->metrics_failed_told) {
        em_log(EM_LOG_INFO, "%s: the metrics file is written again", path);
        w->metrics_failed_told = false;
    }
}

/* ---- the heartbeat ---- */

#ifndef EM_VERSION
#define EM_VERSION "unknown"
#endif

static size_t roots_lost(const struct watch *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nroots; i++)
        n += w->roots[i].lost;
    return n;
}

static int bus_state(const struct watch *w)
{
    return !w->ob_open ? -1 : w->pub_last.connected ? 1 : 0;
}

void heartbeat_send(struct watch *w, const char *state)
{
    if (w->opt->heartbeat_s <= 0 || w->opt->exit_idle || !w->j || w->failed)
        return;
    if (w->pub)
        publisher_stats(w->pub, &w->pub_last);
    char host[256], started[32];
    event_default_agent(host, sizeof(host));
    em_utc_text((time_t)w->started_unix, started, sizeof(started));
    uint64_t waiting = 0;
    if (w->ob_open) {
        uint64_t in = w->ob_waiting_at_start + w->ob_written;
        waiting = in > w->pub_last.acked ? in - w->pub_last.acked : 0;
    }
    struct journal_info ji;
    journal_info(w->j, &ji);
    int bus = bus_state(w);
    size_t lost = roots_lost(w);
    cJSON *d = cJSON_CreateObject();
    cJSON *roots = cJSON_AddArrayToObject(d, "roots");
    for (size_t i = 0; i < w->nroots && roots; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", w->roots[i].path);
        cJSON_AddBoolToObject(r, "lost", w->roots[i].lost);
        cJSON_AddItemToArray(roots, r);
    }
    cJSON_AddStringToObject(d, "state", state);
    cJSON_AddStringToObject(d, "version", EM_VERSION);
    cJSON_AddStringToObject(d, "host", host);
#ifdef _WIN32
    cJSON_AddStringToObject(d, "os", "windows");
#else
    cJSON_AddStringToObject(d, "os", "linux");
#endif
    cJSON_AddNumberToObject(d, "pid", (double)uv_os_getpid());
    cJSON_AddStringToObject(d, "started_at", started);
    cJSON_AddNumberToObject(d, "interval_s", w->opt->heartbeat_s);
    cJSON_AddStringToObject(d, "watching_with", w->opt->poll_s > 0 ? "polling" : watcher_backend());
    cJSON_AddNumberToObject(d, "files_watched", (double)ji.files);
    cJSON_AddNumberToObject(d, "directories_watched",
                            w->watcher ? (double)watcher_count(w->watcher) : 0);
    cJSON_AddNumberToObject(d, "entities", (double)ji.entities);
    cJSON_AddNumberToObject(d, "files_parsed", (double)w->files_parsed);
    cJSON_AddNumberToObject(d, "parse_failures", (double)w->files_failed);
    cJSON_AddNumberToObject(d, "unreadable_directories", (double)w->unreadable.n);
    cJSON_AddNumberToObject(d, "roots_lost", (double)lost);
    cJSON_AddNumberToObject(d, "errors", (double)(w->files_failed + w->unreadable.n + lost));
    cJSON_AddNumberToObject(d, "documents_in_progress", (double)incparse_count(w->inc));
    cJSON_AddNumberToObject(d, "events", (double)w->events_total);
    cJSON_AddStringToObject(d, "bus", bus < 0 ? "none" : bus ? "connected" : "not connected");
    cJSON_AddNumberToObject(d, "outbox_events", (double)waiting);
    if (w->lag_last_ms >= 0)
        cJSON_AddNumberToObject(d, "lag_seconds", w->lag_last_ms / 1e3);
    else
        cJSON_AddNullToObject(d, "lag_seconds");
    cJSON_AddNumberToObject(d, "notification_overflows", (double)w->overflows);
    cJSON_AddNumberToObject(d, "rescans", (double)w->overflow_walks);
    char *text = roots ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    int rc = text ? sink_heartbeat(w, text) : -EM_ENOMEM;
    if (rc < 0 && !w->failed)
        watch_fail(w, 1, "the heartbeat", rc);
    w->hb_bus = bus;
    w->hb_lost = lost;
    w->hb_unreadable = w->unreadable.n;
    w->hb_sent = true;
}

void heartbeat_if_changed(struct watch *w)
{
    if (!w->hb_sent || w->stopping)
        return;
    if (bus_state(w) != w->hb_bus || roots_lost(w) != w->hb_lost ||
        w->unreadable.n != w->hb_unreadable)
        heartbeat_send(w, "watching");
}
