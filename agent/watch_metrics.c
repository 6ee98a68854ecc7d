/* The agent's Prometheus metrics file (--metrics-file), in the text exposition format, for
 * node_exporter's textfile collector: written every METRICS_EVERY_S seconds, after the
 * first walk and at the end, to a temporary name and renamed over the file. */
#include "watch_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dynbuf.h"

/* `v` as a label value: backslash, double quote and newline escaped. */
static int label(struct dynbuf *b, const char *v)
{
    int rc = 0;
    for (const char *p = v; *p && rc == 0; p++) {
        if (*p == '\\' || *p == '"')
            rc = dynbuf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            rc = dynbuf_printf(b, "\\n");
        else
            rc = dynbuf_add(b, p, 1);
    }
    return rc;
}

/* # HELP and # TYPE, then one sample with the agent label. */
static int metric(struct dynbuf *b, const char *agent, const char *name, const char *type,
                  const char *help, double value)
{
    int rc =
        dynbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s{agent=\"", name, help, name, type, name);
    if (rc == 0)
        rc = label(b, agent);
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
            rc = label(&b, agent);
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
