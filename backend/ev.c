#include "ev.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "em_error.h"
#include "em_utf8.h"

void ev_free(struct ev *e)
{
    free(e->data);
    free(e->path);
    free(e->source_path);
    free(e->source_mtime);
    free(e->emitted_at);
    for (int i = 0; i < e->nproj; i++)
        free(e->proj[i].val);
    memset(e, 0, sizeof(*e));
}

/* Printable UTF-8 text without control characters, at most `max` bytes. */
static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* An integer id: a JSON number, integral, from 0 to 2^53. */
static bool get_id(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || floor(d) != d)
        return false;
    snprintf(out, cap, "%" PRId64, (int64_t)d);
    return true;
}

static int dup_string(const cJSON *o, const char *name, size_t max, char **out)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max)
        return 0;
    *out = strdup(v->valuestring);
    return *out ? 0 : -EM_ENOMEM;
}

static int add_proj(struct ev *e, const char *col, const cJSON *o, const char *name)
{
    char *v = NULL;
    int rc = dup_string(o, name, 4096, &v);
    if (rc < 0 || !v)
        return rc;
    e->proj[e->nproj].col = col;
    e->proj[e->nproj].val = v;
    e->nproj++;
    return 0;
}

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        snprintf(reason, cap, __VA_ARGS__);                                                        \
        rc = -(code);                                                                              \
        goto out;                                                                                  \
    } while (0)

int ev_decode(const char *body, size_t len, struct ev *e, char *reason, size_t cap)
{
    memset(e, 0, sizeof(*e));
    reason[0] = '\0';
    int rc = 0;
    cJSON *root = NULL;
    if (len > WIRE_MAX_BYTES)
        FAIL(EM_ELIMIT, "message of %zu bytes is larger than %u", len, WIRE_MAX_BYTES);
    if (!em_utf8_valid(body, len))
        FAIL(EM_EMALFORMED, "not valid UTF-8");
    root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(root))
        FAIL(EM_EMALFORMED, "not a JSON object");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != WIRE_VERSION)
        FAIL(EM_EVALUE, "unsupported event version (want \"v\":1)");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
    if (!cJSON_IsNumber(seq) ||
        !(seq->valuedouble >= 1 && seq->valuedouble <= 9007199254740992.0) ||
        floor(seq->valuedouble) != seq->valuedouble)
        FAIL(EM_EVALUE, "\"seq\" must be a positive integer");
    e->seq = (uint64_t)seq->valuedouble;
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive(root, "agent");
    if (!cJSON_IsString(agent) || !text_ok(agent->valuestring, sizeof(e->agent) - 1))
        FAIL(EM_EVALUE, "\"agent\" must be a name of 1 to %zu characters", sizeof(e->agent) - 1);
    snprintf(e->agent, sizeof(e->agent), "%s", agent->valuestring);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!cJSON_IsString(type))
        FAIL(EM_EMISSING, "no \"type\"");
    int t = wire_type_from_name(type->valuestring);
    if (t < 0)
        FAIL(EM_EVALUE, "unknown type \"%.40s\"", type->valuestring);
    e->type = (enum wire_type)t;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (!cJSON_IsString(op) || (strcmp(op->valuestring, wire_op_name(WIRE_UPSERT)) != 0 &&
                                strcmp(op->valuestring, wire_op_name(WIRE_DELETE)) != 0))
        FAIL(EM_EVALUE, "\"op\" must be \"upsert\" or \"delete\"");
    e->deleted = strcmp(op->valuestring, wire_op_name(WIRE_DELETE)) == 0;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(root, "key");
    if (!cJSON_IsObject(key))
        FAIL(EM_EMISSING, "no \"key\" object");
    switch (e->type) {
    case WIRE_SESSION:
        if (!get_id(key, "session_id", e->session_id, sizeof(e->session_id)))
            FAIL(EM_EVALUE, "key.session_id must be an integer id");
        break;
    case WIRE_ATLAS:
        if (!get_id(key, "atlas_id", e->atlas_id, sizeof(e->atlas_id)))
            FAIL(EM_EVALUE, "key.atlas_id must be an integer id");
        break;
    case WIRE_GRIDSQUARE:
        if (!get_id(key, "session_id", e->session_id, sizeof(e->session_id)) ||
            !get_id(key, "gridsquare_id", e->gridsquare_id, sizeof(e->gridsquare_id)))
            FAIL(EM_EVALUE, "key needs integer session_id and gridsquare_id");
        break;
    case WIRE_FOILHOLE:
        if (!get_id(key, "session_id", e->session_id, sizeof(e->session_id)) ||
            !get_id(key, "foilhole_id", e->foilhole_id, sizeof(e->foilhole_id)))
            FAIL(EM_EVALUE, "key needs integer session_id and foilhole_id");
        break;
    case WIRE_MICROGRAPH: {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(key, "micrograph_uuid");
        if (!get_id(key, "session_id", e->session_id, sizeof(e->session_id)) ||
            !cJSON_IsString(u) || !text_ok(u->valuestring, sizeof(e->micrograph_uuid) - 1))
            FAIL(EM_EVALUE, "key needs an integer session_id and a micrograph_uuid");
        snprintf(e->micrograph_uuid, sizeof(e->micrograph_uuid), "%s", u->valuestring);
        break;
    }
    case WIRE_ABORTED_SESSION: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(key, "path");
        if (!cJSON_IsString(p) || !p->valuestring[0] || !text_ok(p->valuestring, 4096))
            FAIL(EM_EVALUE, "key needs a path");
        if (!(e->path = strdup(p->valuestring)))
            FAIL(EM_ENOMEM, "out of memory");
        break;
    }
    case WIRE_DATASET: {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(key, "loader");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(key, "dataset_id");
        if (!cJSON_IsString(l) || !text_ok(l->valuestring, sizeof(e->loader) - 1) ||
            !cJSON_IsString(d) || !text_ok(d->valuestring, sizeof(e->dataset_id) - 1))
            FAIL(EM_EVALUE, "key needs a loader and a dataset_id");
        snprintf(e->loader, sizeof(e->loader), "%s", l->valuestring);
        snprintf(e->dataset_id, sizeof(e->dataset_id), "%s", d->valuestring);
        break;
    }
    case WIRE_AGENT: {
        /* The heartbeat names its own sender: a key for another agent is refused. */
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(key, "agent");
        if (!cJSON_IsString(a) || strcmp(a->valuestring, e->agent) != 0)
            FAIL(EM_EVALUE, "key.agent must be the event's agent");
        break;
    }
    default:
        break;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!e->deleted) {
        if (!cJSON_IsObject(data))
            FAIL(EM_EMISSING, "an upsert needs a \"data\" object");
        e->data = cJSON_PrintUnformatted(data);
        if (!e->data)
            FAIL(EM_ENOMEM, "out of memory");
        /* Parent ids and the few values the queries need get their own columns. */
        switch (e->type) {
        case WIRE_SESSION:
            get_id(data, "atlas_id", e->atlas_id, sizeof(e->atlas_id));
            rc = add_proj(e, "name", data, "name");
            break;
        case WIRE_ATLAS:
            rc = add_proj(e, "name", data, "name");
            break;
        case WIRE_GRIDSQUARE:
            rc = add_proj(e, "state", cJSON_GetObjectItemCaseSensitive(data, "metadata"), "state");
            break;
        case WIRE_FOILHOLE:
            get_id(data, "gridsquare_id", e->gridsquare_id, sizeof(e->gridsquare_id));
            break;
        case WIRE_MICROGRAPH:
            get_id(data, "gridsquare_id", e->gridsquare_id, sizeof(e->gridsquare_id));
            get_id(data, "foilhole_id", e->foilhole_id, sizeof(e->foilhole_id));
            rc = add_proj(e, "acquired_at", data, "acquired_at");
            break;
        case WIRE_DATASET:
            rc = add_proj(e, "status", data, "status");
            if (rc == 0)
                rc = add_proj(e, "dir", data, "dir");
            break;
        default:
            break;
        }
        if (rc < 0)
            FAIL(EM_ENOMEM, "out of memory");
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
    if (cJSON_IsObject(src) && (dup_string(src, "path", 4096, &e->source_path) < 0 ||
                                dup_string(src, "mtime", 64, &e->source_mtime) < 0))
        FAIL(EM_ENOMEM, "out of memory");
    if (dup_string(root, "emitted_at", 64, &e->emitted_at) < 0)
        FAIL(EM_ENOMEM, "out of memory");
out:
    cJSON_Delete(root);
    return rc;
}

const char *ev_value(const struct ev *e, const char *col, char *buf, size_t cap)
{
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"session_id", offsetof(struct ev, session_id)},
        {"atlas_id", offsetof(struct ev, atlas_id)},
        {"gridsquare_id", offsetof(struct ev, gridsquare_id)},
        {"foilhole_id", offsetof(struct ev, foilhole_id)},
        {"micrograph_uuid", offsetof(struct ev, micrograph_uuid)},
        {"loader", offsetof(struct ev, loader)},
        {"dataset_id", offsetof(struct ev, dataset_id)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(col, keys[i].name) == 0) {
            const char *v = (const char *)e + keys[i].off;
            return *v ? v : NULL;
        }
    if (strcmp(col, "agent") == 0)
        return e->agent;
    if (strcmp(col, "path") == 0)
        return e->path;
    if (strcmp(col, "seq") == 0) {
        snprintf(buf, cap, "%" PRIu64, e->seq);
        return buf;
    }
    if (strcmp(col, "deleted") == 0)
        return e->deleted ? "1" : "0";
    if (strcmp(col, "data") == 0)
        return e->data;
    if (strcmp(col, "source_path") == 0)
        return e->source_path;
    if (strcmp(col, "source_mtime") == 0)
        return e->source_mtime;
    if (strcmp(col, "emitted_at") == 0)
        return e->emitted_at;
    for (int i = 0; i < e->nproj; i++)
        if (strcmp(col, e->proj[i].col) == 0)
            return e->proj[i].val;
    return NULL;
}

int ev_cmp_key(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    int c = strcmp(x->session_id, y->session_id);
    if (!c)
        c = strcmp(x->atlas_id, y->atlas_id);
    if (!c && (x->type == WIRE_GRIDSQUARE))
        c = strcmp(x->gridsquare_id, y->gridsquare_id);
    if (!c && (x->type == WIRE_FOILHOLE))
        c = strcmp(x->foilhole_id, y->foilhole_id);
    if (!c)
        c = strcmp(x->micrograph_uuid, y->micrograph_uuid);
    if (!c && x->type == WIRE_DATASET) {
        c = strcmp(x->loader, y->loader);
        if (!c)
            c = strcmp(x->dataset_id, y->dataset_id);
    }
    if (!c && (x->type == WIRE_ABORTED_SESSION || x->type == WIRE_AGENT)) {
        c = strcmp(x->agent, y->agent);
        if (!c)
            c = strcmp(x->path ? x->path : "", y->path ? y->path : "");
    }
    if (!c)
        c = x->seq < y->seq ? -1 : x->seq > y->seq;
    return c;
}

char *ev_key_json(const struct ev *e)
{
    static const struct {
        enum wire_type type;
        const char *a, *b; /* key names; a numeric unless it is agent/path/loader/dataset_id */
    } keys[] = {
        {WIRE_SESSION, "session_id", NULL},
        {WIRE_ATLAS, "atlas_id", NULL},
        {WIRE_GRIDSQUARE, "session_id", "gridsquare_id"},
        {WIRE_FOILHOLE, "session_id", "foilhole_id"},
        {WIRE_MICROGRAPH, "session_id", "micrograph_uuid"},
        {WIRE_ABORTED_SESSION, "agent", "path"},
        {WIRE_DATASET, "loader", "dataset_id"},
        {WIRE_AGENT, "agent", NULL},
    };
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].type != e->type)
            continue;
        const char *names[2] = {keys[i].a, keys[i].b};
        for (int k = 0; k < 2 && names[k]; k++) {
            char buf[32];
            const char *v = ev_value(e, names[k], buf, sizeof(buf));
            bool number =
                strcmp(names[k], "session_id") == 0 || strcmp(names[k], "atlas_id") == 0 ||
                strcmp(names[k], "gridsquare_id") == 0 || strcmp(names[k], "foilhole_id") == 0;
            cJSON *x = !v       ? cJSON_CreateNull()
                       : number ? cJSON_CreateRaw(v)
                                : cJSON_CreateString(v);
            if (!x || !cJSON_AddItemToObject(o, names[k], x)) {
                cJSON_Delete(x);
                cJSON_Delete(o);
                return NULL;
            }
        }
    }
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}
