/* Metadata/GridSquare_<gs>.dm (root GridSquareXml): DESIGN §4 "gridsquare-metadata".
 *
 * Holes are the entries of TargetLocations/TargetLocationsEfficient/m_serializationArray,
 * or on lacey grids of TargetLocations/TargetLocations/m_serializationArray. Each hole's
 * ParticleAcquisitions map every exposure to the hole before the exposure's own XML is
 * written; exposures are collected into one flat list.
 */
#include <string.h>

#include "em_error.h"
#include "epu_internal.h"

#define G struct epu_gridsquare_metadata
static const struct epu_field square_fields[] = {
    EPU_FIELD("gridsquare_id", "Id", EPU_T_INT, G, gridsquare_id),
    EPU_FIELD("atlas_node_id", "AtlasNodeId", EPU_T_INT, G, atlas_node_id),
    EPU_FIELD("state", "State", EPU_T_STR, G, state),
    EPU_FIELD("selected", "Selected", EPU_T_FLAG, G, selected),
    EPU_FIELD("unusable", "Unusable", EPU_T_FLAG, G, unusable),
    EPU_FIELD("rotation_rad", "Rotation", EPU_T_REAL, G, rotation_rad),
    EPU_FIELD("stage_x_m", "Position/X", EPU_T_REAL, G, stage_x_m),
    EPU_FIELD("stage_y_m", "Position/Y", EPU_T_REAL, G, stage_y_m),
    EPU_FIELD("stage_z_m", "Position/Z", EPU_T_REAL, G, stage_z_m),
    EPU_FIELD("image_path", "GridSquareImagePath", EPU_T_STR, G, image_path),
};
#undef G

#define H struct epu_foilhole_target
static const struct epu_field hole_fields[] = {
    EPU_FIELD("foilhole_id", "key", EPU_T_INT, H, foilhole_id),
    EPU_FIELD("pixel_x", "value/PixelCenter/x", EPU_T_REAL, H, pixel_x),
    EPU_FIELD("pixel_y", "value/PixelCenter/y", EPU_T_REAL, H, pixel_y),
    EPU_FIELD("diameter_px", "value/PixelWidthHeight/width", EPU_T_REAL, H, diameter_px),
    EPU_FIELD("stage_x_m", "value/StagePosition/X", EPU_T_REAL, H, stage_x_m),
    EPU_FIELD("stage_y_m", "value/StagePosition/Y", EPU_T_REAL, H, stage_y_m),
    EPU_FIELD("is_near_grid_bar", "value/IsNearGridBar", EPU_T_FLAG, H, is_near_grid_bar),
    EPU_FIELD("selected", "value/Selected", EPU_T_FLAG, H, selected),
    EPU_FIELD("state", "value/State", EPU_T_STR, H, state),
    EPU_FIELD("quality", "value/Quality", EPU_T_REAL, H, quality),
};
#undef H

#define E struct epu_exposure
static const struct epu_field exposure_fields[] = {
    EPU_FIELD("exposure_id", "key", EPU_T_INT, E, exposure_id),
    EPU_FIELD("foilhole_id", "value/TargetLocationId", EPU_T_INT, E, foilhole_id),
    EPU_FIELD("acquisition_area_id", "value/DataAcquisitionAreaId", EPU_T_INT, E,
              acquisition_area_id),
    EPU_FIELD("base_filename", "value/Image/BaseFileName", EPU_T_STR, E, base_filename),
};
#undef E

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))
#define SQUARE_MAX_ITEMS (1u << 22)
#define NOT_OPEN (-1)

struct square_state {
    struct epu_fieldset fields, hole, exposure;
    struct dcs_path hole_path, lacey_path, exposure_path;
    struct epu_vec holes, exposures;
    int in_hole, in_exposure; /* frame index of the open item, or NOT_OPEN */
    struct epu_doc *doc;
};

static int square_init(void *state)
{
    struct square_state *st = state;
    int rc;
    if ((rc = epu_fieldset_init(&st->fields, square_fields, N_OF(square_fields))) < 0 ||
        (rc = epu_fieldset_init(&st->hole, hole_fields, N_OF(hole_fields))) < 0 ||
        (rc = epu_fieldset_init(&st->exposure, exposure_fields, N_OF(exposure_fields))) < 0)
        return rc;
    if (dcs_path_compile(&st->hole_path,
                         "TargetLocations/TargetLocationsEfficient/"
                         "m_serializationArray/KeyValuePairOfintTargetLocation*") < 0 ||
        dcs_path_compile(&st->lacey_path, "TargetLocations/TargetLocations/m_serializationArray/"
                                          "KeyValuePairOfintTargetLocation*") < 0 ||
        dcs_path_compile(&st->exposure_path, "value/ParticleAcquisitions/KeyValuePairs/"
                                             "KeyValuePairOfintParticleAcquisitionDataXml*") < 0)
        return -EM_EINVAL;
    epu_vec_init(&st->holes, sizeof(struct epu_foilhole_target), SQUARE_MAX_ITEMS);
    epu_vec_init(&st->exposures, sizeof(struct epu_exposure), SQUARE_MAX_ITEMS);
    return 0;
}

static void square_fini(void *state)
{
    struct square_state *st = state;
    epu_fieldset_free(&st->fields);
    epu_fieldset_free(&st->hole);
    epu_fieldset_free(&st->exposure);
    epu_vec_free(&st->holes);
    epu_vec_free(&st->exposures);
}

static int square_begin(void *state, struct epu_doc *doc, const char *path, struct dcs_reader *r)
{
    (void)path;
    (void)r;
    struct square_state *st = state;
    st->doc = doc;
    st->holes.n = st->exposures.n = 0;
    st->in_hole = st->in_exposure = NOT_OPEN;
    return 0;
}

static int square_start(void *state, struct dcs_reader *r)
{
    struct square_state *st = state;
    if (dcs_top(r)->nil)
        return 0;
    int here = (int)dcs_depth(r) - 1;
    if (st->in_hole == NOT_OPEN &&
        (dcs_match(r, 0, &st->hole_path) || dcs_match(r, 0, &st->lacey_path))) {
        if (!epu_vec_push(&st->holes))
            return dcs_fail(r, -EM_ELIMIT, "more than %u foil holes", SQUARE_MAX_ITEMS);
        st->in_hole = here;
    } else if (st->in_hole != NOT_OPEN && st->in_exposure == NOT_OPEN &&
               dcs_match(r, (unsigned)st->in_hole, &st->exposure_path)) {
        if (!epu_vec_push(&st->exposures))
            return dcs_fail(r, -EM_ELIMIT, "more than %u exposures", SQUARE_MAX_ITEMS);
        st->in_exposure = here;
    }
    return 0;
}

static int square_item_end(struct square_state *st, struct dcs_reader *r, int here)
{
    if (here == st->in_exposure) {
        st->in_exposure = NOT_OPEN;
        struct epu_exposure *e = epu_vec_last(&st->exposures);
        const struct epu_foilhole_target *h = epu_vec_last(&st->holes);
        if (!e->exposure_id.set)
            return dcs_fail(r, -EM_EMISSING, "exposure without <key>");
        if (!e->foilhole_id.set)
            e->foilhole_id = h->foilhole_id; /* the enclosing hole */
        return 0;
    }
    st->in_hole = NOT_OPEN;
    const struct epu_foilhole_target *h = epu_vec_last(&st->holes);
    if (!h->foilhole_id.set)
        return dcs_fail(r, -EM_EMISSING, "foil hole without <key>");
    return 0;
}

static int square_end(void *state, struct dcs_reader *r, const char *text, size_t len)
{
    struct square_state *st = state;
    int here = (int)dcs_depth(r) - 1;
    if (here == st->in_hole || here == st->in_exposure)
        return square_item_end(st, r, here);
    if (dcs_top(r)->has_children)
        return 0;
    int rc;
    struct em_arena *a = &st->doc->arena;
    if (st->in_exposure != NOT_OPEN) {
        rc = epu_fieldset_leaf(&st->exposure, r, (unsigned)st->in_exposure,
                               epu_vec_last(&st->exposures), a, text, len);
    } else if (st->in_hole != NOT_OPEN) {
        rc = epu_fieldset_leaf(&st->hole, r, (unsigned)st->in_hole, epu_vec_last(&st->holes), a,
                               text, len);
        /* The exposure list's foilhole_id falls back to the hole's key, which comes first. */
    } else {
        rc = epu_fieldset_leaf(&st->fields, r, 0, &st->doc->u.gridsquare, a, text, len);
    }
    return rc < 0 ? rc : 0;
}

static int square_finish(void *state, struct epu_doc *doc, struct dcs_reader *r)
{
    struct square_state *st = state;
    struct epu_gridsquare_metadata *g = &doc->u.gridsquare;
    if (!g->gridsquare_id.set)
        return dcs_fail(r, -EM_EMISSING, "required field gridsquare_id (<Id>) is missing");
    int err = 0;
    g->foilholes = epu_vec_finish_sorted(&st->holes, &doc->arena, &g->foilhole_count, &err);
    if (!err)
        g->exposures = epu_vec_finish_sorted(&st->exposures, &doc->arena, &g->exposure_count, &err);
    return err;
}

int epu_gridsquare_fields_to_json(const struct epu_gridsquare_metadata *g, cJSON *out)
{
    return epu_fields_json(square_fields + 1, N_OF(square_fields) - 1, g, out);
}

int epu_foilhole_target_to_json(const struct epu_foilhole_target *h, cJSON *out)
{
    return epu_fields_json(hole_fields + 1, N_OF(hole_fields) - 1, h, out);
}

static int square_to_json(const struct epu_doc *doc, cJSON *out)
{
    const struct epu_gridsquare_metadata *g = &doc->u.gridsquare;
    int rc;
    if ((rc = epu_fields_json(square_fields, N_OF(square_fields), g, out)) < 0 ||
        (rc = epu_list_json(out, "foilholes", g->foilholes, g->foilhole_count,
                            sizeof(*g->foilholes), hole_fields, N_OF(hole_fields), NULL)) < 0)
        return rc;
    if (!cJSON_AddNumberToObject(out, "foilhole_count", (double)g->foilhole_count))
        return -EM_ENOMEM;
    if ((rc = epu_list_json(out, "exposures", g->exposures, g->exposure_count,
                            sizeof(*g->exposures), exposure_fields, N_OF(exposure_fields), NULL)) <
        0)
        return rc;
    if (!cJSON_AddNumberToObject(out, "exposure_count", (double)g->exposure_count))
        return -EM_ENOMEM;
    return 0;
}

const struct epu_kind_ops epu_gridsquare_ops = {
    .kind = EPU_KIND_GRIDSQUARE_METADATA,
    .root_name = "GridSquareXml",
    .root_uri = EPU_NS_EPU,
    .state_size = sizeof(struct square_state),
    .init = square_init,
    .fini = square_fini,
    .begin = square_begin,
    .h = {.start = square_start, .end = square_end},
    .finish = square_finish,
    .to_json = square_to_json,
};
