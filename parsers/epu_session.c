/* EpuSession.dm (root EpuSessionXml): DESIGN §4 "session". */
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "epu_internal.h"

#define S struct epu_session
static const struct epu_field session_fields[] = {
    EPU_FIELD("session_id", "Id", EPU_T_INT, S, session_id),
    EPU_FIELD("name", "Name", EPU_T_STR, S, name),
    EPU_FIELD("epu_version", NULL, EPU_T_STR, S, epu_version),
    EPU_FIELD("started_at", "StartDateTime", EPU_T_TIME, S, started_at),
    EPU_FIELD("clustering_mode", "ClusteringMode", EPU_T_STR, S, clustering_mode),
    EPU_FIELD("clustering_radius_m", "ClusteringRadius", EPU_T_REAL, S, clustering_radius_m),
    EPU_FIELD("autoloader_slot", "AutoloaderSlot", EPU_T_INT, S, autoloader_slot),
    EPU_FIELD("image_file_format", "ImageFileFormat", EPU_T_STR, S, image_file_format),
    EPU_FIELD("atlas_path", "Samples/_items/SampleXml/AtlasId", EPU_T_STR, S, atlas_path),
    EPU_FIELD("storage_path", "StorageFolders/_items/StorageFolderXml/Path", EPU_T_STR, S,
              storage_path),
};
#undef S

#define SESSION_MAX_SQUARES (1u << 20)

struct session_state {
    struct epu_fieldset fields;
    struct dcs_path sample;     /* a SampleXml slot */
    struct dcs_path square_key; /* a grid square's key in the first sample */
    struct epu_vec squares;     /* int64_t */
    unsigned samples_seen;      /* non-nil SampleXml elements so far */
    struct epu_doc *doc;
};

static int session_init(void *state)
{
    struct session_state *st = state;
    int rc = epu_fieldset_init(&st->fields, session_fields,
                               sizeof(session_fields) / sizeof(session_fields[0]));
    if (rc < 0)
        return rc;
    if (dcs_path_compile(&st->sample, "Samples/_items/SampleXml") < 0 ||
        dcs_path_compile(&st->square_key,
                         "Samples/_items/SampleXml/GridSquares/m_serializationArray/"
                         "KeyValuePairOfintSerializedReferenceOfGridSquareXml*/key") < 0)
        return -EM_EINVAL;
    epu_vec_init(&st->squares, sizeof(int64_t), SESSION_MAX_SQUARES);
    return 0;
}

static void session_fini(void *state)
{
    struct session_state *st = state;
    epu_fieldset_free(&st->fields);
    epu_vec_free(&st->squares);
}

static int session_begin(void *state, struct epu_doc *doc, const char *path, struct dcs_reader *r)
{
    (void)path;
    (void)r;
    struct session_state *st = state;
    st->doc = doc;
    st->squares.n = 0;
    st->samples_seen = 0;
    return 0;
}

/* "Applications.Epu.Persistence, Version=3.9.1.8206, Culture=..." gives "3.9.1.8206". */
static int take_assembly_version(struct dcs_reader *r, struct epu_doc *doc)
{
    char buf[256];
    const char *a = dcs_attr(r, DCS_NS_SER, "Assembly", buf, sizeof(buf));
    const char *v = a ? strstr(a, "Version=") : NULL;
    if (!v)
        return 0;
    v += strlen("Version=");
    size_t len = strcspn(v, ", ");
    if (len == 0)
        return 0;
    doc->u.session.epu_version = em_arena_strndup(&doc->arena, v, len);
    return doc->u.session.epu_version ? 0 : -EM_ENOMEM;
}

static int session_start(void *state, struct dcs_reader *r)
{
    struct session_state *st = state;
    if (dcs_depth(r) == 1)
        return take_assembly_version(r, st->doc);
    if (dcs_match(r, 0, &st->sample) && !dcs_top(r)->nil)
        st->samples_seen++;
    return 0;
}

static int session_end(void *state, struct dcs_reader *r, const char *text, size_t len)
{
    struct session_state *st = state;
    if (dcs_top(r)->has_children)
        return 0;
    if (st->samples_seen == 1 && text && dcs_match(r, 0, &st->square_key)) {
        int64_t *id = epu_vec_push(&st->squares);
        if (!id)
            return dcs_fail(r, -EM_ELIMIT, "more than %u grid squares", SESSION_MAX_SQUARES);
        if (epu_int_parse(text, len, id) < 0)
            return dcs_fail(r, -EM_EVALUE, "grid square key '%.40s' is not an integer", text);
        return 0;
    }
    int rc = epu_fieldset_leaf(&st->fields, r, 0, &st->doc->u.session, &st->doc->arena, text, len);
    return rc < 0 ? rc : 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int session_finish(void *state, struct epu_doc *doc, struct dcs_reader *r)
{
    struct session_state *st = state;
    struct epu_session *s = &doc->u.session;
    if (!s->session_id.set)
        return dcs_fail(r, -EM_EMISSING, "required field session_id (<Id>) is missing");
    if (!s->name)
        return dcs_fail(r, -EM_EMISSING, "required field name (<Name>) is missing");
    if (st->squares.n) {
        s->gridsquare_ids = em_arena_alloc(&doc->arena, st->squares.n * sizeof(int64_t));
        if (!s->gridsquare_ids)
            return -EM_ENOMEM;
        memcpy(s->gridsquare_ids, st->squares.data, st->squares.n * sizeof(int64_t));
        qsort(s->gridsquare_ids, st->squares.n, sizeof(int64_t), cmp_i64);
        s->gridsquare_count = st->squares.n;
    }
    return 0;
}

static int session_to_json(const struct epu_doc *doc, cJSON *out)
{
    const struct epu_session *s = &doc->u.session;
    int rc =
        epu_fields_json(session_fields, sizeof(session_fields) / sizeof(session_fields[0]), s, out);
    if (rc < 0)
        return rc;
    cJSON *ids = cJSON_AddArrayToObject(out, "gridsquare_ids");
    if (!ids)
        return -EM_ENOMEM;
    for (size_t i = 0; i < s->gridsquare_count; i++) {
        cJSON *n = cJSON_CreateNumber((double)s->gridsquare_ids[i]);
        if (!n || !cJSON_AddItemToArray(ids, n)) {
            cJSON_Delete(n);
            return -EM_ENOMEM;
        }
    }
    if (!cJSON_AddNumberToObject(out, "gridsquare_count", (double)s->gridsquare_count))
        return -EM_ENOMEM;
    return 0;
}

const struct epu_kind_ops epu_session_ops = {
    .kind = EPU_KIND_SESSION,
    .root_name = "EpuSessionXml",
    .root_uri = EPU_NS_EPU,
    .state_size = sizeof(struct session_state),
    .init = session_init,
    .fini = session_fini,
    .begin = session_begin,
    .h = {.start = session_start, .end = session_end},
    .finish = session_finish,
    .to_json = session_to_json,
};
