/* Atlas.dm (root AtlasSessionXml): DESIGN §4 "atlas".
 *
 * Items nest three deep: tiles (Atlas/TilesEfficient/_items/TileXml), the grid-square
 * nodes inside each tile (Nodes/KeyValuePairs/KeyValuePairOfintNodeXml*), and each node's
 * positions on tiles (value/TilePositions/_items/TilePositionXml). Leaves go to the
 * innermost open item's fields.
 */
#include <string.h>

#include "em_error.h"
#include "epu_internal.h"

#define A struct epu_atlas
static const struct epu_field atlas_fields[] = {
    EPU_FIELD("atlas_id", "Id", EPU_T_INT, A, atlas_id),
    EPU_FIELD("name", "Name", EPU_T_STR, A, name),
    EPU_FIELD("description", "Description", EPU_T_STR, A, description),
    EPU_FIELD("storage_folder", "StorageFolder", EPU_T_STR, A, storage_folder),
    EPU_FIELD("acquired_at", "Atlas/AcquisitionDateTime", EPU_T_TIME, A, acquired_at),
};
#undef A

#define T struct epu_atlas_tile
static const struct epu_field tile_fields[] = {
    EPU_FIELD("tile_id", "Id", EPU_T_INT, T, tile_id),
    EPU_FIELD("x_px", "AtlasPixelPosition/x", EPU_T_INT, T, x_px),
    EPU_FIELD("y_px", "AtlasPixelPosition/y", EPU_T_INT, T, y_px),
    EPU_FIELD("width_px", "AtlasPixelPosition/width", EPU_T_INT, T, width_px),
    EPU_FIELD("height_px", "AtlasPixelPosition/height", EPU_T_INT, T, height_px),
    EPU_FIELD("file_format", "TileImageReference/FileFormat", EPU_T_STR, T, file_format),
    EPU_FIELD("base_filename", "TileImageReference/BaseFileName", EPU_T_STR, T, base_filename),
};
#undef T

#define Q struct epu_atlas_square
static const struct epu_field square_fields[] = {
    EPU_FIELD("gridsquare_id", "key", EPU_T_INT, Q, gridsquare_id),
    EPU_FIELD("center_x_px", "value/PositionOnTheAtlas/Center/x", EPU_T_REAL, Q, center_x_px),
    EPU_FIELD("center_y_px", "value/PositionOnTheAtlas/Center/y", EPU_T_REAL, Q, center_y_px),
    EPU_FIELD("width_px", "value/PositionOnTheAtlas/Size/width", EPU_T_REAL, Q, width_px),
    EPU_FIELD("height_px", "value/PositionOnTheAtlas/Size/height", EPU_T_REAL, Q, height_px),
    EPU_FIELD("rotation_rad", "value/PositionOnTheAtlas/Rotation", EPU_T_REAL, Q, rotation_rad),
    EPU_FIELD("physical_x_m", "value/PositionOnTheAtlas/Physical/x", EPU_T_REAL, Q, physical_x_m),
    EPU_FIELD("physical_y_m", "value/PositionOnTheAtlas/Physical/y", EPU_T_REAL, Q, physical_y_m),
    EPU_FIELD("stage_x_m", "value/StagePosition/X", EPU_T_REAL, Q, stage_x_m),
    EPU_FIELD("stage_y_m", "value/StagePosition/Y", EPU_T_REAL, Q, stage_y_m),
    EPU_FIELD("category", "value/Category", EPU_T_INT, Q, category),
};
#undef Q

#define P struct epu_tile_position
static const struct epu_field position_fields[] = {
    EPU_FIELD("tile_id", "TileId", EPU_T_INT, P, tile_id),
    EPU_FIELD("center_x_px", "NodePosition/Center/x", EPU_T_REAL, P, center_x_px),
    EPU_FIELD("center_y_px", "NodePosition/Center/y", EPU_T_REAL, P, center_y_px),
    EPU_FIELD("width_px", "NodePosition/Size/width", EPU_T_REAL, P, width_px),
    EPU_FIELD("height_px", "NodePosition/Size/height", EPU_T_REAL, P, height_px),
};
#undef P

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))
#define ATLAS_MAX_ITEMS (1u << 20)
#define NOT_OPEN (-1)

struct atlas_state {
    struct epu_fieldset fields, tile, square, position;
    struct dcs_path tile_path, square_path, position_path;
    struct epu_vec tiles, squares, positions;
    int in_tile, in_square, in_position; /* frame index of the open item, or NOT_OPEN */
    struct epu_doc *doc;
};

static int atlas_init(void *state)
{
    struct atlas_state *st = state;
    int rc;
    if ((rc = epu_fieldset_init(&st->fields, atlas_fields, N_OF(atlas_fields))) < 0 ||
        (rc = epu_fieldset_init(&st->tile, tile_fields, N_OF(tile_fields))) < 0 ||
        (rc = epu_fieldset_init(&st->square, square_fields, N_OF(square_fields))) < 0 ||
        (rc = epu_fieldset_init(&st->position, position_fields, N_OF(position_fields))) < 0)
        return rc;
    if (dcs_path_compile(&st->tile_path, "Atlas/TilesEfficient/_items/TileXml") < 0 ||
        dcs_path_compile(&st->square_path, "Nodes/KeyValuePairs/KeyValuePairOfintNodeXml*") < 0 ||
        dcs_path_compile(&st->position_path, "value/TilePositions/_items/TilePositionXml") < 0)
        return -EM_EINVAL;
    epu_vec_init(&st->tiles, sizeof(struct epu_atlas_tile), ATLAS_MAX_ITEMS);
    epu_vec_init(&st->squares, sizeof(struct epu_atlas_square), ATLAS_MAX_ITEMS);
    epu_vec_init(&st->positions, sizeof(struct epu_tile_position), ATLAS_MAX_ITEMS);
    return 0;
}

static void atlas_fini(void *state)
{
    struct atlas_state *st = state;
    epu_fieldset_free(&st->fields);
    epu_fieldset_free(&st->tile);
    epu_fieldset_free(&st->square);
    epu_fieldset_free(&st->position);
    epu_vec_free(&st->tiles);
    epu_vec_free(&st->squares);
    epu_vec_free(&st->positions);
}

static int atlas_begin(void *state, struct epu_doc *doc, const char *path, struct dcs_reader *r)
{
    (void)path;
    (void)r;
    struct atlas_state *st = state;
    st->doc = doc;
    st->tiles.n = st->squares.n = st->positions.n = 0;
    st->in_tile = st->in_square = st->in_position = NOT_OPEN;
    return 0;
}

static int atlas_start(void *state, struct dcs_reader *r)
{
    struct atlas_state *st = state;
    int here = (int)dcs_depth(r) - 1;
    if (dcs_top(r)->nil)
        return 0; /* padding slots of list backing arrays */
    struct epu_vec *v = NULL;
    int *opened_at = NULL;
    if (st->in_tile == NOT_OPEN && dcs_match(r, 0, &st->tile_path)) {
        v = &st->tiles;
        opened_at = &st->in_tile;
    } else if (st->in_tile != NOT_OPEN && st->in_square == NOT_OPEN &&
               dcs_match(r, (unsigned)st->in_tile, &st->square_path)) {
        v = &st->squares;
        opened_at = &st->in_square;
        st->positions.n = 0;
    } else if (st->in_square != NOT_OPEN && st->in_position == NOT_OPEN &&
               dcs_match(r, (unsigned)st->in_square, &st->position_path)) {
        v = &st->positions;
        opened_at = &st->in_position;
    }
    if (!v)
        return 0;
    if (!epu_vec_push(v))
        return dcs_fail(r, -EM_ELIMIT, "more than %u atlas items", ATLAS_MAX_ITEMS);
    *opened_at = here;
    return 0;
}

static int atlas_item_end(struct atlas_state *st, struct dcs_reader *r, int here)
{
    if (here == st->in_position) {
        st->in_position = NOT_OPEN;
        const struct epu_tile_position *p = epu_vec_last(&st->positions);
        if (!p->tile_id.set)
            return dcs_fail(r, -EM_EMISSING, "tile position without <TileId>");
    } else if (here == st->in_square) {
        st->in_square = NOT_OPEN;
        struct epu_atlas_square *q = epu_vec_last(&st->squares);
        if (!q->gridsquare_id.set)
            return dcs_fail(r, -EM_EMISSING, "atlas node without <key> (grid square id)");
        int err = 0;
        q->tiles = epu_vec_finish_sorted(&st->positions, &st->doc->arena, &q->tile_count, &err);
        if (err < 0)
            return dcs_fail(r, err, "out of memory");
    } else if (here == st->in_tile) {
        st->in_tile = NOT_OPEN;
        const struct epu_atlas_tile *t = epu_vec_last(&st->tiles);
        if (!t->tile_id.set)
            return dcs_fail(r, -EM_EMISSING, "atlas tile without <Id>");
    }
    return 0;
}

static int atlas_end(void *state, struct dcs_reader *r, const char *text, size_t len)
{
    struct atlas_state *st = state;
    int here = (int)dcs_depth(r) - 1;
    if (here == st->in_tile || here == st->in_square || here == st->in_position)
        return atlas_item_end(st, r, here);
    if (dcs_top(r)->has_children)
        return 0;
    int rc;
    struct em_arena *a = &st->doc->arena;
    if (st->in_position != NOT_OPEN)
        rc = epu_fieldset_leaf(&st->position, r, (unsigned)st->in_position,
                               epu_vec_last(&st->positions), a, text, len);
    else if (st->in_square != NOT_OPEN)
        rc = epu_fieldset_leaf(&st->square, r, (unsigned)st->in_square, epu_vec_last(&st->squares),
                               a, text, len);
    else if (st->in_tile != NOT_OPEN)
        rc = epu_fieldset_leaf(&st->tile, r, (unsigned)st->in_tile, epu_vec_last(&st->tiles), a,
                               text, len);
    else
        rc = epu_fieldset_leaf(&st->fields, r, 0, &st->doc->u.atlas, a, text, len);
    return rc < 0 ? rc : 0;
}

static int atlas_finish(void *state, struct epu_doc *doc, struct dcs_reader *r)
{
    struct atlas_state *st = state;
    struct epu_atlas *at = &doc->u.atlas;
    if (!at->atlas_id.set)
        return dcs_fail(r, -EM_EMISSING, "required field atlas_id (<Id>) is missing");
    int err = 0;
    at->tiles = epu_vec_finish_sorted(&st->tiles, &doc->arena, &at->tile_count, &err);
    if (!err)
        at->gridsquares =
            epu_vec_finish_sorted(&st->squares, &doc->arena, &at->gridsquare_count, &err);
    return err;
}

static int square_tiles_json(const void *item, cJSON *obj)
{
    const struct epu_atlas_square *q = item;
    return epu_list_json(obj, "tiles", q->tiles, q->tile_count, sizeof(*q->tiles), position_fields,
                         N_OF(position_fields), NULL);
}

static int atlas_to_json(const struct epu_doc *doc, cJSON *out)
{
    const struct epu_atlas *at = &doc->u.atlas;
    int rc;
    if ((rc = epu_fields_json(atlas_fields, N_OF(atlas_fields), at, out)) < 0 ||
        (rc = epu_list_json(out, "tiles", at->tiles, at->tile_count, sizeof(*at->tiles),
                            tile_fields, N_OF(tile_fields), NULL)) < 0)
        return rc;
    if (!cJSON_AddNumberToObject(out, "tile_count", (double)at->tile_count))
        return -EM_ENOMEM;
    if ((rc = epu_list_json(out, "gridsquares", at->gridsquares, at->gridsquare_count,
                            sizeof(*at->gridsquares), square_fields, N_OF(square_fields),
                            square_tiles_json)) < 0)
        return rc;
    if (!cJSON_AddNumberToObject(out, "gridsquare_count", (double)at->gridsquare_count))
        return -EM_ENOMEM;
    return 0;
}

int epu_atlas_square_to_json(const struct epu_atlas_square *q, cJSON *out)
{
    int rc = epu_fields_json(square_fields + 1, N_OF(square_fields) - 1, q, out);
    return rc < 0 ? rc : square_tiles_json(q, out);
}

int epu_atlas_tiles_to_json(const struct epu_atlas *at, cJSON *out)
{
    return epu_list_json(out, "tiles", at->tiles, at->tile_count, sizeof(*at->tiles), tile_fields,
                         N_OF(tile_fields), NULL);
}

const struct epu_kind_ops epu_atlas_ops = {
    .kind = EPU_KIND_ATLAS,
    .root_name = "AtlasSessionXml",
    .root_uri = EPU_NS_ATLAS,
    .state_size = sizeof(struct atlas_state),
    .init = atlas_init,
    .fini = atlas_fini,
    .begin = atlas_begin,
    .h = {.start = atlas_start, .end = atlas_end},
    .finish = atlas_finish,
    .to_json = atlas_to_json,
};
