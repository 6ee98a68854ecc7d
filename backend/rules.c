/* Jobs from incoming events (rules.h). */
#include "rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "em_error.h"
#include "hash.h"
#include "jobs.h"
#include "loaders.h"
#include "log.h"
#include "store.h"

static int add(struct rules *r, enum wire_type type, const char *loader, const char *const *args,
               size_t nargs, const char *text)
{
    if (r->n >= RULES_MAX)
        return -EM_ELIMIT;
    struct rule *u = &r->v[r->n];
    memset(u, 0, sizeof(*u));
    u->type = type;
    snprintf(u->loader, sizeof(u->loader), "%s", loader);
    for (size_t i = 0; i < nargs; i++) {
        if (!(u->args[i] = strdup(args[i]))) {
            for (size_t k = 0; k < i; k++)
                free(u->args[k]);
            return -EM_ENOMEM;
        }
    }
    u->nargs = nargs;
    snprintf(u->id, sizeof(u->id), "%016" PRIx64, hash64_str(text));
    r->n++;
    return 0;
}

int rules_add_movies(struct rules *r, const char *base)
{
    const char *args[2] = {base, "{path}"};
    return add(r, WIRE_MICROGRAPH, "movie", args, 2, "--movies");
}

void rules_free(struct rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->v[i].nargs; k++)
            free(r->v[i].args[k]);
    r->n = 0;
}

static const char *const placeholders[] = {
    "path",        "agent",           "session_id", "atlas_id",   "gridsquare_id",
    "foilhole_id", "micrograph_uuid", "loader",     "dataset_id", NULL};

/* Whether every {name} in `arg` is a known placeholder. */
static const char *bad_placeholder(const char *arg)
{
    static char name[64];
    for (const char *p = strchr(arg, '{'); p; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (!e || (size_t)(e - p - 1) >= sizeof(name))
            return "{";
        snprintf(name, sizeof(name), "%.*s", (int)(e - p - 1), p + 1);
        bool known = false;
        for (size_t i = 0; placeholders[i]; i++)
            known = known || strcmp(name, placeholders[i]) == 0;
        if (!known)
            return name;
    }
    return NULL;
}

int rules_load(struct rules *r, const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "%s: cannot read the rules file", path);
        return -EM_EUSAGE;
    }
    char line[4096];
    int rc = 0;
    for (long no = 1; rc == 0 && fgets(line, sizeof(line), f); no++) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char text[4096];
        snprintf(text, sizeof(text), "%s", line);
        char *words[RULE_MAX_ARGS + 2];
        size_t n = 0;
        for (char *w = strtok(line, " \t\r\n"); w; w = strtok(NULL, " \t\r\n")) {
            if (n == RULE_MAX_ARGS + 2) {
                snprintf(why, cap, "%s:%ld: more than %d arguments", path, no, RULE_MAX_ARGS);
                rc = -EM_EUSAGE;
                break;
            }
            words[n++] = w;
        }
        if (rc < 0 || n == 0)
            continue;
        int type = wire_type_from_name(words[0]);
        if (type < 0 || type == WIRE_ABORTED_SESSION || type == WIRE_AGENT) {
            snprintf(why, cap,
                     "%s:%ld: '%s' is not an entity type (session, atlas, gridsquare, foilhole, "
                     "micrograph, dataset)",
                     path, no, words[0]);
            rc = -EM_EUSAGE;
            break;
        }
        if (n < 2 || !loader_known(words[1])) {
            snprintf(why, cap, "%s:%ld: %s%s%s", path, no, n < 2 ? "which loader?" : "'",
                     n < 2 ? "" : words[1],
                     n < 2 ? ""
                           : "' is not a loader (url, movie, idr, dvid, epfl, empiar, "
                             "openorganelle)");
            rc = -EM_EUSAGE;
            break;
        }
        for (size_t i = 2; i < n && rc == 0; i++) {
            const char *bad = bad_placeholder(words[i]);
            if (bad) {
                snprintf(why, cap,
                         "%s:%ld: {%s} is not a placeholder (path, agent, session_id, atlas_id, "
                         "gridsquare_id, foilhole_id, micrograph_uuid, loader, dataset_id)",
                         path, no, bad);
                rc = -EM_EUSAGE;
            }
        }
        if (rc == 0 && (rc = add(r, (enum wire_type)type, words[1],
                                 (const char *const *)(words + 2), n - 2, text)) < 0)
            snprintf(why, cap, "%s:%ld: %s", path, no,
                     rc == -EM_ELIMIT ? "more than 64 rules" : "out of memory");
    }
    fclose(f);
    return rc < 0 ? -EM_EUSAGE : 0;
}

/* The event's value for placeholder `name` (formatted into buf when it must be), or NULL
 * when it has none. */
static const char *value_of(const struct ev *e, const char *name, char *buf, size_t cap)
{
    const char *v = NULL;
    if (strcmp(name, "path") == 0)
        v = e->source_path;
    else if (strcmp(name, "agent") == 0)
        v = e->agent;
    else
        v = ev_value(e, name, buf, cap);
    return v && v[0] ? v : NULL;
}

/* `arg` with its placeholders replaced, into out. false when the event lacks one. */
static bool expand(const char *arg, const struct ev *e, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = arg; *p && n + 1 < cap;) {
        const char *e2 = *p == '{' ? strchr(p, '}') : NULL;
        if (!e2) {
            out[n++] = *p++;
            continue;
        }
        char name[64], buf[32];
        snprintf(name, sizeof(name), "%.*s", (int)(e2 - p - 1), p + 1);
        const char *v = value_of(e, name, buf, sizeof(buf));
        if (!v)
            return false;
        n += (size_t)snprintf(out + n, cap - n, "%s", v);
        if (n >= cap)
            return false;
        p = e2 + 1;
    }
    out[n < cap ? n : cap - 1] = '\0';
    return true;
}

/* The entity's key as text, for the job's rule key. */
static void entity_key(const struct ev *e, char *out, size_t cap)
{
    switch (e->type) {
    case WIRE_SESSION:
        snprintf(out, cap, "%s", e->session_id);
        break;
    case WIRE_ATLAS:
        snprintf(out, cap, "%s", e->atlas_id);
        break;
    case WIRE_GRIDSQUARE:
        snprintf(out, cap, "%s:%s", e->session_id, e->gridsquare_id);
        break;
    case WIRE_FOILHOLE:
        snprintf(out, cap, "%s:%s", e->session_id, e->foilhole_id);
        break;
    case WIRE_MICROGRAPH:
        snprintf(out, cap, "%s:%s", e->session_id, e->micrograph_uuid);
        break;
    case WIRE_DATASET:
        snprintf(out, cap, "%s:%s", e->loader, e->dataset_id);
        break;
    default:
        snprintf(out, cap, "%s:%s", e->agent, e->path ? e->path : "");
        break;
    }
}

int rules_fire(struct store *s, const struct rules *r, const struct ev *evs, size_t n, char *reason,
               size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        const struct ev *e = &evs[i];
        if (e->deleted)
            continue;
        for (size_t k = 0; k < r->n; k++) {
            const struct rule *u = &r->v[k];
            if (u->type != e->type)
                continue;
            char vals[RULE_MAX_ARGS][2048];
            const char *args[RULE_MAX_ARGS];
            bool all = true;
            for (size_t a = 0; a < u->nargs && all; a++) {
                all = expand(u->args[a], e, vals[a], sizeof(vals[a]));
                args[a] = vals[a];
            }
            if (!all)
                continue; /* the event lacks a value the rule needs */
            char why[512];
            if (loader_check(u->loader, args, u->nargs, why, sizeof(why)) < 0) {
                em_log(EM_LOG_WARN, "rule %zu (%s): not for this %s: %s", k + 1, u->loader,
                       wire_type_name(e->type), why);
                continue;
            }
            char key[400], ek[300];
            entity_key(e, ek, sizeof(ek));
            snprintf(key, sizeof(key), "rule:%s:%s:%s", u->id, wire_type_name(e->type), ek);
            cJSON *params = cJSON_CreateArray();
            for (size_t a = 0; params && a < u->nargs; a++)
                if (!cJSON_AddItemToArray(params, cJSON_CreateString(args[a]))) {
                    cJSON_Delete(params);
                    params = NULL;
                }
            if (!params)
                return -EM_ENOMEM;
            int64_t id;
            int rc = jobs_add(s, u->loader, params, key, 5, &id, reason, cap);
            cJSON_Delete(params);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
