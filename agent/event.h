/* event.h — writes entity events as JSON lines (DESIGN §5).
 *
 * The format, its names and limits are those of wire.h. Events larger than WIRE_MAX_BYTES
 * are refused when they are made, with the reason, rather than written where they would
 * block or be dead-lettered.
 * One writer belongs to one thread.
 */
#ifndef EM_EVENT_H
#define EM_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "fsio.h"
#include "wire.h"

struct event_writer {
    FILE *out;
    const char *agent;
    uint64_t seq;                    /* the last seq written */
    uint64_t count[WIRE_TYPE_COUNT]; /* events written per type, in event_type order */
    int error;                       /* first write error (negative EM_E*), sticky */
};

/* Whether `line` may be emitted; logs an error naming `source_path` when not. */
bool event_size_ok(const char *line, enum wire_type type, const char *source_path);

/* Prepares a writer to `out` for `agent`; seq continues after `last_seq`. */
void event_writer_init(struct event_writer *w, FILE *out, const char *agent, uint64_t last_seq);

/* Writes one upsert event; takes ownership of `key` and `data` whatever happens.
 * `source_path` (relative, '/'-separated) and `st` may be NULL. Returns 0, EM_ENOMEM
 * or EM_EIO. */
int event_emit(struct event_writer *w, enum wire_type type, cJSON *key, cJSON *data,
               const char *source_path, const struct fsio_stat *st);

/* The event line (no newline) for `seq`; takes ownership of `key` and `data` (either
 * may be NULL after an allocation failure, giving NULL). You own the result: free it
 * with cJSON_free(). NULL when out of memory. */
char *event_format(const char *agent, uint64_t seq, enum wire_type type, cJSON *key, cJSON *data,
                   const char *source_path, const struct fsio_stat *st);

/* The same from the key and data already written as JSON text (`data_json` is not read
 * for a delete). Does not take them. NULL when out of memory. */
char *event_format_text(const char *agent, uint64_t seq, enum wire_type type, bool deleted,
                        const char *key_json, const char *data_json, const char *source_path,
                        const struct fsio_stat *st);

/* The `delete` event line for the entity `key` (takes ownership of it): "data" is null.
 * `source_path` names what went (the directory or file), or NULL. Free with cJSON_free(). */
char *event_format_delete(const char *agent, uint64_t seq, enum wire_type type, cJSON *key,
                          const char *source_path);

/* The local host name, as the default agent name (falls back to "em-agent"). */
void event_default_agent(char *buf, size_t cap);

#endif
