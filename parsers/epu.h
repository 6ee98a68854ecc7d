/* epu.h — parsers for the six EPU file kinds (DESIGN §4).
 *
 * Pure code: callers hand in bytes (a whole buffer or successive chunks) and the file's
 * path, which is only used for ids that EPU puts in file and directory names and for
 * diagnostics; nothing here opens a file. A parse yields a `struct epu_doc`, a plain
 * struct per kind, and epu_doc_to_json() gives its JSON form with exactly the field
 * names, units and formats of DESIGN §4.
 *
 * Call epu_init() once in main() before any parser runs (it initialises libxml2 and
 * forbids it to load external resources); after that parsers may run on any thread,
 * one parser per thread at a time.
 */
#ifndef EM_EPU_H
#define EM_EPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "dcs.h"
#include "em_arena.h"

enum epu_kind {
    EPU_KIND_NONE = 0,
    EPU_KIND_SESSION,             /* EpuSession.dm */
    EPU_KIND_ATLAS,               /* Atlas/Atlas.dm */
    EPU_KIND_GRIDSQUARE_METADATA, /* Metadata/GridSquare_<gs>.dm */
    EPU_KIND_GRIDSQUARE_IMAGE,    /* Images-Disc*\/GridSquare_<gs>/GridSquare_<d>_<t>.xml */
    EPU_KIND_FOILHOLE_IMAGE,      /* .../FoilHoles/FoilHole_<fh>_<d>_<t>.xml */
    EPU_KIND_MICROGRAPH,          /* .../Data/FoilHole_<fh>_Data_<area>_<n>_<d>_<t>.xml */
    EPU_KIND_COUNT
};

/* Nullable values: `set` is false for absent or nil fields, which JSON shows as null. */
struct epu_int {
    int64_t v;
    bool set;
};
struct epu_real {
    double v;
    bool set;
};
struct epu_flag {
    bool v;
    bool set;
};
/* A timestamp normalised to UTC, "2024-04-05T11:36:47.2285448Z" (28 characters). */
struct epu_time {
    char s[29];
    bool set;
};
/* Strings are `char *`, NULL when absent, stored in the document's arena. */

struct epu_session {
    struct epu_int session_id;
    char *name;
    char *epu_version;
    struct epu_time started_at;
    char *clustering_mode;
    struct epu_real clustering_radius_m;
    struct epu_int autoloader_slot;
    char *image_file_format;
    char *atlas_path;        /* AtlasId of the first non-nil sample: a Windows path */
    char *storage_path;      /* Path of the first non-nil storage folder */
    int64_t *gridsquare_ids; /* ascending */
    size_t gridsquare_count;
};

struct epu_atlas_tile {
    struct epu_int tile_id;
    struct epu_int x_px, y_px, width_px, height_px;
    char *file_format;
    char *base_filename;
};

/* Where a grid square appears on one atlas tile, in that tile's pixels. */
struct epu_tile_position {
    struct epu_int tile_id;
    struct epu_real center_x_px, center_y_px, width_px, height_px;
};

struct epu_atlas_square {
    struct epu_int gridsquare_id;
    struct epu_real center_x_px, center_y_px, width_px, height_px, rotation_rad;
    struct epu_real physical_x_m, physical_y_m, stage_x_m, stage_y_m;
    struct epu_int category;
    struct epu_tile_position *tiles; /* ascending tile_id */
    size_t tile_count;
};

struct epu_atlas {
    struct epu_int atlas_id;
    char *name;
    char *description;
    char *storage_folder;
    struct epu_time acquired_at;
    struct epu_atlas_tile *tiles; /* ascending tile_id */
    size_t tile_count;
    struct epu_atlas_square *gridsquares; /* ascending gridsquare_id */
    size_t gridsquare_count;
};

struct epu_foilhole_target {
    struct epu_int foilhole_id;
    struct epu_real pixel_x, pixel_y, diameter_px, stage_x_m, stage_y_m;
    struct epu_flag is_near_grid_bar, selected;
    char *state;
    struct epu_real quality;
};

struct epu_exposure {
    struct epu_int exposure_id;
    struct epu_int foilhole_id;
    struct epu_int acquisition_area_id;
    char *base_filename; /* FoilHole_<fh>_Data_<area>_<n>_<date>_<time>, no suffix */
};

struct epu_gridsquare_metadata {
    struct epu_int gridsquare_id;
    struct epu_int atlas_node_id;
    char *state;
    struct epu_flag selected, unusable;
    struct epu_real rotation_rad, stage_x_m, stage_y_m, stage_z_m;
    char *image_path;
    struct epu_foilhole_target *foilholes; /* ascending foilhole_id */
    size_t foilhole_count;
    struct epu_exposure *exposures; /* ascending exposure_id */
    size_t exposure_count;
};

/* The three MicroscopeImage manifests share one struct; fields that a kind does not have
 * stay unset and are not printed for that kind. */
struct epu_image {
    char *image_uuid; /* `micrograph_uuid` in a micrograph's JSON */
    struct epu_time acquired_at;
    struct epu_real defocus_m, applied_defocus_m, magnification, pixel_size_m;
    char *detector_name, *instrument_model, *instrument_id, *computer_name, *epu_version;
    /* from the path */
    struct epu_int gridsquare_id, foilhole_id, acquisition_area_id;
    /* foilhole image: FindFoilHoleCenterResults */
    struct epu_real center_x_px, center_y_px, quality, rotation_rad, width_px, height_px;
    /* micrograph */
    struct epu_flag energy_filter, phase_plate;
    struct epu_int image_width_px, image_height_px, binning_x, binning_y;
    struct epu_real exposure_time_s, dose, dose_rate;
    struct epu_int fractions;
    struct epu_real accelerating_voltage_v, stage_x_m, stage_y_m, stage_z_m;
    char *camera_name; /* the internal name ("BM-Falcon"); detector_name falls back to it */
};

struct epu_doc {
    enum epu_kind kind;
    union {
        struct epu_session session;
        struct epu_atlas atlas;
        struct epu_gridsquare_metadata gridsquare;
        struct epu_image image; /* the three image kinds */
    } u;
    struct em_arena arena; /* owns every string and list above */
};

struct epu_diag {
    int code;         /* negative EM_E* */
    long line;        /* 1-based, 0 when not tied to a line */
    char reason[256]; /* lower-case, no trailing newline */
};

struct epu_parser;

/* Initialises libxml2 for the whole process and installs an external-entity loader that
 * refuses everything. Call once from main() before other threads start. */
void epu_init(void);

/* Releases libxml2's global state; call at exit from main() only. */
void epu_cleanup(void);

/* The CLI name of a kind ("session", "atlas", "gridsquare-metadata", "gridsquare",
 * "foilhole", "micrograph"), or NULL. */
const char *epu_kind_cli_name(enum epu_kind kind);

/* The `kind` value in JSON ("gridsquare_metadata", "gridsquare_image", ...), or NULL. */
const char *epu_kind_json_name(enum epu_kind kind);

/* Parses a CLI kind name; EPU_KIND_NONE when unknown. */
enum epu_kind epu_kind_from_cli(const char *name);

/* Creates a parser for documents of `kind`. `lim` may be NULL for the defaults. Returns
 * NULL when out of memory or `kind` is invalid. You own the parser (epu_parser_free). */
struct epu_parser *epu_parser_new(enum epu_kind kind, const struct dcs_limits *lim);

/* Starts a new document at `path` (used for ids in names and for diagnostics; it is
 * copied). Resets any previous document. Returns 0 or a negative code. */
int epu_parser_begin(struct epu_parser *p, const char *path);

/* Feeds the next chunk. Returns 0 or the negative code of the first error. */
int epu_parser_feed(struct epu_parser *p, const void *buf, size_t len);

/* True when the fed bytes already hold the whole document (its root element ended):
 * a watcher may finish it without waiting for the writer to close the file. */
bool epu_parser_complete(const struct epu_parser *p);

/* Ends the document. On success stores a new document in *out (you own it: epu_doc_free)
 * and returns 0. Returns EM_ETRUNCATED when the document ended early (a file still being
 * written), or another negative code; then *out is NULL and epu_parser_diag() explains. */
int epu_parser_finish(struct epu_parser *p, struct epu_doc **out);

/* The diagnostic of the last failure; valid until the next begin. */
const struct epu_diag *epu_parser_diag(const struct epu_parser *p);

void epu_parser_free(struct epu_parser *p);

/* One-shot: parses `buf` of `kind` at `path`. Same results as begin/feed/finish; `diag`
 * may be NULL. */
int epu_parse_buffer(enum epu_kind kind, const char *path, const void *buf, size_t len,
                     struct epu_doc **out, struct epu_diag *diag);

/* The JSON object of DESIGN §4 for `doc`, with "kind" first. Returns NULL when out of
 * memory; you own the result (cJSON_Delete). */
cJSON *epu_doc_to_json(const struct epu_doc *doc);

/* Adds the fields a MicroscopeImage of `kind` shares with the others (everything but
 * kind and ids) to `obj`. Returns 0 or EM_ENOMEM. Used by the agent's entity model. */
int epu_image_fields_to_json(const struct epu_image *img, enum epu_kind kind, cJSON *obj);

/* Frees a document and everything it holds. NULL is ignored. */
void epu_doc_free(struct epu_doc *doc);

/* The kind of an EPU file from its path, as DESIGN §3 lays them out: EpuSession.dm,
 * Atlas/Atlas.dm, GridSquare_<gs>.dm, GridSquare_<date>_<time>.xml,
 * FoilHole_<fh>_<date>_<time>.xml, FoilHole_<fh>_Data_<area>_<n>_<date>_<time>.xml.
 * Anything else (images, Sample.dm, Atlas_*.xml, tiles) is EPU_KIND_NONE. Both '/' and
 * '\\' separate components. */
enum epu_kind epu_classify_path(const char *path);

/* Checks that `buf` is a well-formed XML document under the same safety rules (no
 * DOCTYPE, limits), without extracting anything. Returns 0 or a negative code with
 * `diag` (may be NULL) filled in. */
int epu_check_wellformed(const void *buf, size_t len, struct epu_diag *diag);

/* Formats a Unix time as the timestamps above ("...T12:00:00.1234567Z"). */
void epu_time_from_unix(int64_t sec, int32_t nsec, struct epu_time *out);

/* Ids from EPU's file and directory names; each returns true on a match. */
bool epu_name_gridsquare_dir(const char *path, int64_t *gridsquare_id);
bool epu_name_foilhole(const char *path, int64_t *foilhole_id);
bool epu_name_micrograph(const char *path, int64_t *foilhole_id, int64_t *area_id);

/* Pieces of the JSON forms, for the agent's entity model. Each adds fields to `out` and
 * returns 0 or EM_ENOMEM. */
/* An atlas node without its gridsquare_id, plus its "tiles" positions. */
int epu_atlas_square_to_json(const struct epu_atlas_square *q, cJSON *out);
/* The atlas's "tiles" array. */
int epu_atlas_tiles_to_json(const struct epu_atlas *at, cJSON *out);
/* A square's own metadata fields, without gridsquare_id and lists. */
int epu_gridsquare_fields_to_json(const struct epu_gridsquare_metadata *g, cJSON *out);
/* A hole's target fields, without foilhole_id. */
int epu_foilhole_target_to_json(const struct epu_foilhole_target *h, cJSON *out);

#endif
