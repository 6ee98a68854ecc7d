/* MicroscopeImage manifests: grid-square images, foil-hole images and micrographs
 * (DESIGN §4). They share a root element and most fields; ids come from the file's name
 * and its GridSquare_<gs> directory.
 */
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "epu_internal.h"

#define CUSTOM(key) "CustomData/KeyValueOfstringanyType=" key "/Value"
#define CENTER CUSTOM("FindFoilHoleCenterResults")
#define CAMERA "microscopeData/acquisition/camera/"

#define I struct epu_image
static const struct epu_field uuid_image[] = {
    EPU_FIELD("image_uuid", "uniqueID", EPU_T_STR, I, image_uuid),
};
static const struct epu_field uuid_micrograph[] = {
    EPU_FIELD("micrograph_uuid", "uniqueID", EPU_T_STR, I, image_uuid),
};

static const struct epu_field common_fields[] = {
    EPU_FIELD("acquired_at", "microscopeData/acquisition/acquisitionDateTime", EPU_T_TIME, I,
              acquired_at),
    EPU_FIELD("defocus_m", "microscopeData/optics/Defocus", EPU_T_REAL, I, defocus_m),
    EPU_FIELD("applied_defocus_m", CUSTOM("AppliedDefocus"), EPU_T_REAL, I, applied_defocus_m),
    EPU_FIELD("magnification", "microscopeData/optics/TemMagnification/NominalMagnification",
              EPU_T_REAL, I, magnification),
    EPU_FIELD("pixel_size_m", "SpatialScale/pixelSize/x/numericValue", EPU_T_REAL, I, pixel_size_m),
    EPU_FIELD("detector_name", CUSTOM("DetectorCommercialName"), EPU_T_STR, I, detector_name),
    EPU_FIELD("instrument_model", "microscopeData/instrument/InstrumentModel", EPU_T_STR, I,
              instrument_model),
    EPU_FIELD("instrument_id", "microscopeData/instrument/InstrumentID", EPU_T_STR, I,
              instrument_id),
    EPU_FIELD("computer_name", "microscopeData/instrument/ComputerName", EPU_T_STR, I,
              computer_name),
    EPU_FIELD("epu_version", "microscopeData/core/ApplicationSoftwareVersion", EPU_T_STR, I,
              epu_version),
    /* EPU before 3.x writes no commercial name; the camera's internal name stands in. */
    EPU_FIELD(NULL, CAMERA "Name", EPU_T_STR, I, camera_name),
};

static const struct epu_field foilhole_fields[] = {
    EPU_FIELD("center_x_px", CENTER "/Center/x", EPU_T_REAL, I, center_x_px),
    EPU_FIELD("center_y_px", CENTER "/Center/y", EPU_T_REAL, I, center_y_px),
    EPU_FIELD("quality", CENTER "/Quality", EPU_T_REAL, I, quality),
    EPU_FIELD("rotation_rad", CENTER "/Rotation", EPU_T_REAL, I, rotation_rad),
    EPU_FIELD("width_px", CENTER "/Size/width", EPU_T_REAL, I, width_px),
    EPU_FIELD("height_px", CENTER "/Size/height", EPU_T_REAL, I, height_px),
};

static const struct epu_field micrograph_fields[] = {
    EPU_FIELD("energy_filter", "microscopeData/optics/EFTEMOn", EPU_T_FLAG, I, energy_filter),
    EPU_FIELD("phase_plate", CUSTOM("PhasePlateUsed"), EPU_T_FLAG, I, phase_plate),
    EPU_FIELD("image_width_px", CAMERA "ReadoutArea/width", EPU_T_INT, I, image_width_px),
    EPU_FIELD("image_height_px", CAMERA "ReadoutArea/height", EPU_T_INT, I, image_height_px),
    EPU_FIELD("binning_x", CAMERA "Binning/x", EPU_T_INT, I, binning_x),
    EPU_FIELD("binning_y", CAMERA "Binning/y", EPU_T_INT, I, binning_y),
    EPU_FIELD("exposure_time_s", CAMERA "ExposureTime", EPU_T_REAL, I, exposure_time_s),
    EPU_FIELD("dose", CUSTOM("Dose"), EPU_T_REAL, I, dose),
    EPU_FIELD("dose_rate", CUSTOM("DoseRate"), EPU_T_REAL, I, dose_rate),
    /* Falcon 4i: the key names the detector, "Detectors[EF-Falcon].DoseRate" */
    EPU_FIELD(NULL, CUSTOM("*].DoseRate"), EPU_T_REAL, I, dose_rate),
    EPU_FIELD("fractions",
              CAMERA "CameraSpecificInput/KeyValueOfstringanyType=FractionationSettings/Value/"
                     "NumberOffractions",
              EPU_T_INT, I, fractions),
    EPU_FIELD("accelerating_voltage_v", "microscopeData/gun/AccelerationVoltage", EPU_T_REAL, I,
              accelerating_voltage_v),
    EPU_FIELD("stage_x_m", "microscopeData/stage/Position/X", EPU_T_REAL, I, stage_x_m),
    EPU_FIELD("stage_y_m", "microscopeData/stage/Position/Y", EPU_T_REAL, I, stage_y_m),
    EPU_FIELD("stage_z_m", "microscopeData/stage/Position/Z", EPU_T_REAL, I, stage_z_m),
};

/* A square image's size in the pixels its holes' PixelCenter (in the Metadata .dm) is
 * given in: what places the square's .jpg preview under its holes. */
static const struct epu_field gridsquare_fields[] = {
    EPU_FIELD("image_width_px", CAMERA "ReadoutArea/width", EPU_T_INT, I, image_width_px),
    EPU_FIELD("image_height_px", CAMERA "ReadoutArea/height", EPU_T_INT, I, image_height_px),
};

/* Ids from the path, printed before the image fields. */
static const struct epu_field ids_gridsquare[] = {
    EPU_FIELD("gridsquare_id", NULL, EPU_T_INT, I, gridsquare_id),
};
static const struct epu_field ids_foilhole[] = {
    EPU_FIELD("foilhole_id", NULL, EPU_T_INT, I, foilhole_id),
    EPU_FIELD("gridsquare_id", NULL, EPU_T_INT, I, gridsquare_id),
};
static const struct epu_field ids_micrograph[] = {
    EPU_FIELD("foilhole_id", NULL, EPU_T_INT, I, foilhole_id),
    EPU_FIELD("acquisition_area_id", NULL, EPU_T_INT, I, acquisition_area_id),
    EPU_FIELD("gridsquare_id", NULL, EPU_T_INT, I, gridsquare_id),
};
#undef I

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))

/* The tables of one kind, in JSON order. */
struct image_layout {
    const struct epu_field *ids, *uuid, *extra;
    size_t n_ids, n_extra;
};

static struct image_layout layout_of(enum epu_kind kind)
{
    switch (kind) {
    case EPU_KIND_FOILHOLE_IMAGE:
        return (struct image_layout){ids_foilhole, uuid_image, foilhole_fields, N_OF(ids_foilhole),
                                     N_OF(foilhole_fields)};
    case EPU_KIND_MICROGRAPH:
        return (struct image_layout){ids_micrograph, uuid_micrograph, micrograph_fields,
                                     N_OF(ids_micrograph), N_OF(micrograph_fields)};
    default:
        return (struct image_layout){ids_gridsquare, uuid_image, gridsquare_fields,
                                     N_OF(ids_gridsquare), N_OF(gridsquare_fields)};
    }
}

/* Falcon 2/3/3EC (VaridistantFractionation) list their fractions one by one instead of
 * giving NumberOffractions: each ends with an EndFrameNumber here. */
#define DOSE_FRACTION_END                                                                          \
    CAMERA "CameraSpecificInput/KeyValueOfstringanyType=FractionationSettings/Value/"              \
           "DoseFractions/anyType/EndFrameNumber"

struct image_state {
    enum epu_kind kind;
    struct epu_field *table; /* uuid + common + kind-specific, for parsing */
    struct epu_fieldset fields;
    struct dcs_path fraction_end;
    int64_t fractions_listed;
    struct epu_doc *doc;
};

static int image_init_kind(struct image_state *st, enum epu_kind kind)
{
    struct image_layout l = layout_of(kind);
    size_t n = 1 + N_OF(common_fields) + l.n_extra;
    st->kind = kind;
    st->table = malloc(n * sizeof(*st->table));
    if (!st->table)
        return -EM_ENOMEM;
    st->table[0] = l.uuid[0];
    memcpy(st->table + 1, common_fields, sizeof(common_fields));
    if (l.n_extra)
        memcpy(st->table + 1 + N_OF(common_fields), l.extra, l.n_extra * sizeof(*l.extra));
    int rc = dcs_path_compile(&st->fraction_end, DOSE_FRACTION_END);
    return rc < 0 ? rc : epu_fieldset_init(&st->fields, st->table, n);
}

static int init_gridsquare(void *state)
{
    return image_init_kind(state, EPU_KIND_GRIDSQUARE_IMAGE);
}
static int init_foilhole(void *state)
{
    return image_init_kind(state, EPU_KIND_FOILHOLE_IMAGE);
}
static int init_micrograph(void *state)
{
    return image_init_kind(state, EPU_KIND_MICROGRAPH);
}

static void image_fini(void *state)
{
    struct image_state *st = state;
    epu_fieldset_free(&st->fields);
    free(st->table);
}

static int image_begin(void *state, struct epu_doc *doc, const char *path, struct dcs_reader *r)
{
    struct image_state *st = state;
    struct epu_image *img = &doc->u.image;
    st->doc = doc;
    st->fractions_listed = 0;
    int64_t gs, hole_fh, mic_fh, area;
    /* A manifest's kind shows in its name; parsing one kind as another is a mistake that
     * the shared root element would not reveal. */
    bool named_micrograph = epu_name_micrograph(path, &mic_fh, &area);
    bool named_foilhole = epu_name_foilhole(path, &hole_fh);
    if (st->kind == EPU_KIND_FOILHOLE_IMAGE && named_micrograph)
        return dcs_fail(r, -EM_EWRONGKIND,
                        "file is named like a micrograph, not a foil-hole image");
    if (st->kind == EPU_KIND_MICROGRAPH && named_foilhole)
        return dcs_fail(r, -EM_EWRONGKIND,
                        "file is named like a foil-hole image, not a micrograph");
    if (st->kind == EPU_KIND_GRIDSQUARE_IMAGE && (named_foilhole || named_micrograph))
        return dcs_fail(r, -EM_EWRONGKIND, "file is named like a foil-hole manifest, not a square");

    if (epu_name_gridsquare_dir(path, &gs))
        img->gridsquare_id = (struct epu_int){gs, true};
    if (st->kind == EPU_KIND_FOILHOLE_IMAGE && named_foilhole)
        img->foilhole_id = (struct epu_int){hole_fh, true};
    if (st->kind == EPU_KIND_MICROGRAPH && named_micrograph) {
        img->foilhole_id = (struct epu_int){mic_fh, true};
        img->acquisition_area_id = (struct epu_int){area, true};
    }
    if (st->kind == EPU_KIND_GRIDSQUARE_IMAGE && !img->gridsquare_id.set)
        return dcs_fail(r, -EM_EMISSING,
                        "gridsquare_id: the file is not inside a GridSquare_<id> directory");
    if (st->kind == EPU_KIND_FOILHOLE_IMAGE && !img->foilhole_id.set)
        return dcs_fail(r, -EM_EMISSING,
                        "foilhole_id: the file is not named FoilHole_<id>_<date>_<time>.xml");
    return 0;
}

static int image_end(void *state, struct dcs_reader *r, const char *text, size_t len)
{
    struct image_state *st = state;
    if (dcs_top(r)->has_children)
        return 0;
    if (st->kind == EPU_KIND_MICROGRAPH && dcs_match(r, 0, &st->fraction_end)) {
        st->fractions_listed++;
        return 0;
    }
    int rc = epu_fieldset_leaf(&st->fields, r, 0, &st->doc->u.image, &st->doc->arena, text, len);
    return rc < 0 ? rc : 0;
}

static int image_finish(void *state, struct epu_doc *doc, struct dcs_reader *r)
{
    struct image_state *st = state;
    struct epu_image *img = &doc->u.image;
    if (!img->detector_name)
        img->detector_name = img->camera_name;
    if (!img->fractions.set && st->fractions_listed > 0)
        img->fractions = (struct epu_int){st->fractions_listed, true};
    if (!img->image_uuid || !img->image_uuid[0])
        return dcs_fail(r, -EM_EMISSING, "required field %s (<uniqueID>) is missing",
                        st->kind == EPU_KIND_MICROGRAPH ? "micrograph_uuid" : "image_uuid");
    if (!img->acquired_at.set)
        return dcs_fail(r, -EM_EMISSING,
                        "required field acquired_at (<acquisitionDateTime>) is missing");
    return 0;
}

int epu_image_fields_to_json(const struct epu_image *img, enum epu_kind kind, cJSON *obj)
{
    struct image_layout l = layout_of(kind);
    int rc;
    if ((rc = epu_fields_json(l.uuid, 1, img, obj)) < 0 ||
        (rc = epu_fields_json(common_fields, N_OF(common_fields), img, obj)) < 0)
        return rc;
    return l.n_extra ? epu_fields_json(l.extra, l.n_extra, img, obj) : 0;
}

static int image_to_json(const struct epu_doc *doc, cJSON *out)
{
    struct image_layout l = layout_of(doc->kind);
    int rc;
    if (doc->kind == EPU_KIND_MICROGRAPH) {
        /* micrograph_uuid is the key, so it leads. */
        if ((rc = epu_fields_json(l.uuid, 1, &doc->u.image, out)) < 0 ||
            (rc = epu_fields_json(l.ids, l.n_ids, &doc->u.image, out)) < 0 ||
            (rc = epu_fields_json(common_fields, N_OF(common_fields), &doc->u.image, out)) < 0)
            return rc;
        return epu_fields_json(l.extra, l.n_extra, &doc->u.image, out);
    }
    if ((rc = epu_fields_json(l.ids, l.n_ids, &doc->u.image, out)) < 0)
        return rc;
    return epu_image_fields_to_json(&doc->u.image, doc->kind, out);
}

#define IMAGE_OPS(k, init_fn)                                                                      \
    {                                                                                              \
        .kind = k, .root_name = "MicroscopeImage", .root_uri = EPU_NS_SHARED,                      \
        .state_size = sizeof(struct image_state), .init = init_fn, .fini = image_fini,             \
        .begin = image_begin, .h = {.start = NULL, .end = image_end}, .finish = image_finish,      \
        .to_json = image_to_json,                                                                  \
    }

const struct epu_kind_ops epu_gridsquare_image_ops =
    IMAGE_OPS(EPU_KIND_GRIDSQUARE_IMAGE, init_gridsquare);
const struct epu_kind_ops epu_foilhole_image_ops =
    IMAGE_OPS(EPU_KIND_FOILHOLE_IMAGE, init_foilhole);
const struct epu_kind_ops epu_micrograph_ops = IMAGE_OPS(EPU_KIND_MICROGRAPH, init_micrograph);
