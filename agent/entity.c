#include "entity.h"

#include "hash.h"

#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "dynbuf.h"
#include "em_error.h"
#include "jsonw.h"

cJSON *entity_key(const char *k1, int64_t v1, const char *k2, int64_t v2, const char *s2)
{
    cJSON *key = cJSON_CreateObject();
    if (!key || !cJSON_AddNumberToObject(key, k1, (double)v1) ||
        (k2 && s2 && !cJSON_AddStringToObject(key, k2, s2)) ||
        (k2 && !s2 && !cJSON_AddNumberToObject(key, k2, (double)v2))) {
        cJSON_Delete(key);
        return NULL;
    }
    return key;
}

/* A parsed document's JSON without "kind" and the named list. */
static cJSON *doc_data(const struct epu_doc *doc, const char *drop)
{
    cJSON *data = epu_doc_to_json(doc);
    if (data) {
        cJSON_DeleteItemFromObjectCaseSensitive(data, "kind");
        if (drop)
            cJSON_DeleteItemFromObjectCaseSensitive(data, drop);
    }
    return data;
}

static cJSON *fail(cJSON *o)
{
    cJSON_Delete(o);
    return NULL;
}

static bool add_id_or_null(cJSON *o, const char *name, bool has, int64_t v)
{
    return has ? cJSON_AddNumberToObject(o, name, (double)v) != NULL
               : cJSON_AddNullToObject(o, name) != NULL;
}

cJSON *entity_session_data(const struct epu_doc *session, const char *dir, bool has_atlas,
                           int64_t atlas_id)
{
    cJSON *data = doc_data(session, "gridsquare_ids");
    if (!data || !cJSON_AddStringToObject(data, "path", dir) ||
        !add_id_or_null(data, "atlas_id", has_atlas, atlas_id))
        return fail(data);
    return data;
}

cJSON *entity_atlas_data(const struct epu_doc *atlas, const char *rel)
{
    cJSON *data = doc_data(atlas, "gridsquares");
    if (!data || !cJSON_AddStringToObject(data, "path", rel))
        return fail(data);
    return data;
}

cJSON *entity_atlas_node_part(const struct epu_atlas_square *node)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || epu_atlas_square_to_json(node, o) < 0)
        return fail(o);
    return o;
}

cJSON *entity_metadata_part(const struct epu_gridsquare_metadata *g)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || epu_gridsquare_fields_to_json(g, o) < 0 ||
        !cJSON_AddNumberToObject(o, "foilhole_count", (double)g->foilhole_count) ||
        !cJSON_AddNumberToObject(o, "exposure_count", (double)g->exposure_count))
        return fail(o);
    return o;
}

cJSON *entity_image_part(const struct epu_image *img, enum epu_kind kind, const char *rel)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || epu_image_fields_to_json(img, kind, o) < 0 ||
        !cJSON_AddStringToObject(o, "path", rel))
        return fail(o);
    return o;
}

cJSON *entity_target_part(const struct epu_foilhole_target *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || epu_foilhole_target_to_json(t, o) < 0)
        return fail(o);
    return o;
}

/* Adds parts[i] (or null) under names[i]; takes ownership of every part, also of those
 * left over after a failure. */
static bool add_parts(cJSON *o, const char *const *names, cJSON **parts, size_t n, bool ok)
{
    for (size_t i = 0; i < n; i++) {
        if (!ok) {
            cJSON_Delete(parts[i]);
            continue;
        }
        if (!parts[i]) {
            ok = cJSON_AddNullToObject(o, names[i]) != NULL;
        } else if (!cJSON_AddItemToObject(o, names[i], parts[i])) {
            cJSON_Delete(parts[i]);
            ok = false;
        }
    }
    return ok;
}

cJSON *entity_square_data(int64_t session_id, int64_t gridsquare_id, bool has_atlas,
                          int64_t atlas_id, bool in_session_list, cJSON *atlas_node,
                          cJSON *metadata, cJSON *image)
{
    static const char *const names[] = {"atlas", "metadata", "image"};
    cJSON *parts[] = {atlas_node, metadata, image};
    cJSON *data = cJSON_CreateObject();
    bool ok = data && cJSON_AddNumberToObject(data, "session_id", (double)session_id) &&
              cJSON_AddNumberToObject(data, "gridsquare_id", (double)gridsquare_id) &&
              add_id_or_null(data, "atlas_id", has_atlas, atlas_id) &&
              cJSON_AddBoolToObject(data, "in_session_list", in_session_list);
    return add_parts(data, names, parts, 3, ok) ? data : fail(data);
}

cJSON *entity_hole_data(int64_t session_id, int64_t gridsquare_id, int64_t foilhole_id,
                        cJSON *target, cJSON *image)
{
    static const char *const names[] = {"target", "image"};
    cJSON *parts[] = {target, image};
    cJSON *data = cJSON_CreateObject();
    bool ok = data && cJSON_AddNumberToObject(data, "session_id", (double)session_id) &&
              cJSON_AddNumberToObject(data, "gridsquare_id", (double)gridsquare_id) &&
              cJSON_AddNumberToObject(data, "foilhole_id", (double)foilhole_id);
    return add_parts(data, names, parts, 2, ok) ? data : fail(data);
}

char *entity_hole_data_text(int64_t session_id, int64_t gridsquare_id, int64_t foilhole_id,
                            cJSON *target, const char *image_json)
{
    size_t n = image_json ? strlen(image_json) : 0;
    if (image_json && (n < 2 || image_json[0] != '{' || image_json[n - 1] != '}')) {
        cJSON_Delete(target);
        return NULL;
    }
    struct dynbuf b;
    dynbuf_init(&b, SIZE_MAX / 2);
    int rc = dynbuf_add(&b, "{\"session_id\":", 14);
    if (rc == 0)
        rc = jsonw_double(&b, (double)session_id);
    if (rc == 0)
        rc = dynbuf_add(&b, ",\"gridsquare_id\":", 17);
    if (rc == 0)
        rc = jsonw_double(&b, (double)gridsquare_id);
    if (rc == 0)
        rc = dynbuf_add(&b, ",\"foilhole_id\":", 15);
    if (rc == 0)
        rc = jsonw_double(&b, (double)foilhole_id);
    if (rc == 0)
        rc = dynbuf_add(&b, ",\"target\":", 10);
    if (rc == 0)
        rc = target ? jsonw_append(&b, target) : dynbuf_add(&b, "null", 4);
    if (rc == 0)
        rc = dynbuf_add(&b, ",\"image\":", 9);
    if (rc == 0)
        rc = image_json ? dynbuf_add(&b, image_json, n) : dynbuf_add(&b, "null", 4);
    if (rc == 0)
        rc = dynbuf_add(&b, "}", 1);
    cJSON_Delete(target);
    char *out = rc == 0 ? cJSON_malloc(b.len + 1) : NULL;
    if (out)
        memcpy(out, b.p, b.len + 1);
    dynbuf_free(&b);
    return out;
}

cJSON *entity_micrograph_data(const struct epu_doc *micrograph, int64_t session_id,
                              bool has_exposure, int64_t exposure_id)
{
    cJSON *data = doc_data(micrograph, NULL);
    if (!data || !cJSON_AddNumberToObject(data, "session_id", (double)session_id) ||
        !add_id_or_null(data, "exposure_id", has_exposure, exposure_id))
        return fail(data);
    return data;
}

char *entity_micrograph_doc_json(const struct epu_doc *micrograph)
{
    cJSON *data = doc_data(micrograph, NULL);
    char *text = data ? jsonw_print(data) : NULL;
    cJSON_Delete(data);
    return text;
}

char *entity_micrograph_data_text(const char *doc_json, int64_t session_id, bool has_exposure,
                                  int64_t exposure_id)
{
    size_t n = strlen(doc_json);
    if (n < 2 || doc_json[0] != '{' || doc_json[n - 1] != '}')
        return NULL;
    struct dynbuf b;
    dynbuf_init(&b, SIZE_MAX / 2);
    /* What entity_micrograph_data() gives, as text: the document's fields, then the two
     * the model knows. */
    int rc = dynbuf_add(&b, doc_json, n - 1);
    if (rc == 0)
        rc = dynbuf_add(&b, n > 2 ? ",\"session_id\":" : "\"session_id\":", n > 2 ? 14 : 13);
    if (rc == 0)
        rc = jsonw_double(&b, (double)session_id);
    if (rc == 0)
        rc = dynbuf_add(&b, ",\"exposure_id\":", 15);
    if (rc == 0)
        rc = has_exposure ? jsonw_double(&b, (double)exposure_id) : dynbuf_add(&b, "null", 4);
    if (rc == 0)
        rc = dynbuf_add(&b, "}", 1);
    char *out = rc == 0 ? cJSON_malloc(b.len + 1) : NULL;
    if (out)
        memcpy(out, b.p, b.len + 1);
    dynbuf_free(&b);
    return out;
}

/* By name hash; a table made by entity_exposures_index() holds each hash once. */
static int cmp_exposure(const void *a, const void *b)
{
    uint64_t x = ((const struct entity_exposure *)a)->name;
    uint64_t y = ((const struct entity_exposure *)b)->name;
    return (x > y) - (x < y);
}

/* While indexing: by name hash, then by position in the .dm (kept in exposure_id's place
 * until duplicates are dropped). */
struct exposure_pos {
    struct entity_exposure e;
    size_t pos;
};

static int cmp_exposure_pos(const void *a, const void *b)
{
    const struct exposure_pos *x = a, *y = b;
    if (x->e.name != y->e.name)
        return x->e.name < y->e.name ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

int entity_exposures_index(const struct epu_gridsquare_metadata *g, struct entity_exposure *out,
                           size_t *count)
{
    *count = 0;
    struct exposure_pos *v = malloc((g->exposure_count ? g->exposure_count : 1) * sizeof(*v));
    if (!v)
        return -EM_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < g->exposure_count; i++)
        if (g->exposures[i].base_filename)
            v[n++] = (struct exposure_pos){
                {hash64_str(g->exposures[i].base_filename), g->exposures[i].exposure_id.v}, i};
    qsort(v, n, sizeof(*v), cmp_exposure_pos);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || out[k - 1].name != v[i].e.name) /* the first listed wins */
            out[k++] = v[i].e;
    free(v);
    *count = k;
    return 0;
}

uint64_t entity_micrograph_name(const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".xml") == 0)
        len -= 4;
    return hash64_bytes(base, len);
}

const struct entity_exposure *entity_exposure_find(const struct entity_exposure *v, size_t n,
                                                   uint64_t name)
{
    struct entity_exposure key = {.name = name};
    return n ? bsearch(&key, v, n, sizeof(key), cmp_exposure) : NULL;
}

const struct epu_atlas_square *entity_atlas_node(const struct epu_atlas *at, int64_t gs)
{
    if (!at)
        return NULL;
    size_t lo = 0, hi = at->gridsquare_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = at->gridsquares[mid].gridsquare_id.v;
        if (v == gs)
            return &at->gridsquares[mid];
        if (v < gs)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

cJSON *entity_aborted_key(const char *dir, cJSON **data)
{
    cJSON *key = cJSON_CreateObject();
    *data = cJSON_CreateObject();
    if (!key || !*data || !cJSON_AddStringToObject(key, "path", dir) ||
        !cJSON_AddStringToObject(*data, "path", dir)) {
        cJSON_Delete(key);
        cJSON_Delete(*data);
        *data = NULL;
        return NULL;
    }
    return key;
}
