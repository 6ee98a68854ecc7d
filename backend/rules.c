/* Jobs from incoming events (rules.h). */
#include "rules.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "em_error.h"
#include "jobs.h"
#include "store.h"

int rules_fire(struct store *s, const struct rules *r, const struct ev *evs, size_t n, char *reason,
               size_t cap)
{
    if (!r->movie_base)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const struct ev *e = &evs[i];
        if (e->type != WIRE_MICROGRAPH || e->deleted || !e->source_path || !e->source_path[0])
            continue;
        char key[160];
        snprintf(key, sizeof(key), "movie:%s:%s", e->session_id, e->micrograph_uuid);
        cJSON *params = cJSON_CreateArray();
        if (!params || !cJSON_AddItemToArray(params, cJSON_CreateString(r->movie_base)) ||
            !cJSON_AddItemToArray(params, cJSON_CreateString(e->source_path))) {
            cJSON_Delete(params);
            return -EM_ENOMEM;
        }
        int64_t id;
        int rc = jobs_add(s, "movie", params, key, 5, &id, reason, cap);
        cJSON_Delete(params);
        if (rc < 0)
            return rc;
    }
    return 0;
}
