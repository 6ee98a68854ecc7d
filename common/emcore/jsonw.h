/* jsonw.h — writes a cJSON tree as one line of JSON, fast.
 *
 * The output is byte for byte what cJSON_PrintUnformatted() gives (the event format's
 * goldens depend on it): numbers with 15 significant digits unless 17 are needed to read
 * the same double back, NaN and infinities as null, strings escaped as cJSON escapes them. It is
 * cheaper because it appends to one reusable buffer and checks the 15 digits with strtod() instead
 * of sscanf(): event lines are the agent's hot path.
 */
#ifndef EM_JSONW_H
#define EM_JSONW_H

#include <cjson/cJSON.h>

#include "dynbuf.h"

/* Appends `item` to `out`. Returns 0, EM_ELIMIT (the buffer's maximum), EM_ENOMEM, or
 * EM_EINVAL for an item cJSON could not print either (a raw item without text). */
int jsonw_append(struct dynbuf *out, const cJSON *item);

/* Appends `s` as a JSON string (NULL as ""), escaped as cJSON escapes. */
int jsonw_string(struct dynbuf *out, const char *s);

/* Appends `d` as cJSON writes a number. */
int jsonw_double(struct dynbuf *out, double d);

/* The same as a new string (free it with cJSON_free()); NULL on failure. */
char *jsonw_print(const cJSON *item);

#endif
