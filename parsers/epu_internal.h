/* epu_internal.h — pieces shared by the kind parsers in parsers/; not a public API.
 *
 * A kind describes its flat fields with a table of `struct epu_field` (JSON name, path
 * below an item's base element, type, offset in the struct). The table drives both the
 * parse (epu_fieldset_leaf) and the JSON form (epu_fields_json), so a field's name, path
 * and type are written once.
 */
#ifndef EM_EPU_INTERNAL_H
#define EM_EPU_INTERNAL_H

#include <stddef.h>

#include "dcs.h"
#include "epu.h"

enum epu_ftype { EPU_T_INT, EPU_T_REAL, EPU_T_FLAG, EPU_T_STR, EPU_T_TIME };

struct epu_field {
    const char *json; /* key in JSON; NULL for a field that is parsed but not printed */
    const char *path; /* dcs path pattern below the base; NULL when set by code */
    enum epu_ftype type;
    size_t off; /* offset of the value in the target struct */
};

#define EPU_FIELD(json, path, type, st, member)                                                    \
    {                                                                                              \
        json, path, type, offsetof(st, member)                                                     \
    }

/* A field table with its paths compiled and grouped by length for quick rejection. */
struct epu_fieldset {
    const struct epu_field *f;
    size_t n;
    struct dcs_path *paths;          /* n entries */
    size_t *order;                   /* field indexes sorted by path length */
    size_t by_len[DCS_PATH_MAX + 2]; /* order[by_len[k] .. by_len[k+1]) have k segments */
};

/* Compiles the paths of `n` fields. Returns 0, EM_ENOMEM or EM_EINVAL (bad pattern). */
int epu_fieldset_init(struct epu_fieldset *fs, const struct epu_field *f, size_t n);
void epu_fieldset_free(struct epu_fieldset *fs);

/* Offers the leaf that is ending to the fields, with paths taken below frame `base`.
 * The first field whose path matches takes the text, unless it already has a value
 * (first occurrence wins). Returns 1 when a field matched, 0 when none did, or a negative
 * code after dcs_fail() for a value of the wrong form. `text` NULL means nil. */
int epu_fieldset_leaf(const struct epu_fieldset *fs, struct dcs_reader *r, unsigned base, void *obj,
                      struct em_arena *arena, const char *text, size_t len);

/* Stores `text` into the field at `obj` as `type` (same rules as above). */
int epu_field_set(struct dcs_reader *r, const char *what, enum epu_ftype type, void *slot,
                  struct em_arena *arena, const char *text, size_t len);

/* Adds every printed field of the table to `out` in table order; unset values as null.
 * Returns 0 or EM_ENOMEM. */
int epu_fields_json(const struct epu_field *f, size_t n, const void *obj, cJSON *out);

/* Adds `name`: an array with one object per item (fields of the table, then what
 * `extra` adds, if not NULL). Returns 0 or EM_ENOMEM. */
int epu_list_json(cJSON *out, const char *name, const void *items, size_t count, size_t elem,
                  const struct epu_field *f, size_t nf, int (*extra)(const void *item, cJSON *obj));

/* Parses an ISO 8601 timestamp with optional fraction (any number of digits; the first
 * seven are kept) and optional `Z` or ±HH:MM offset (none means UTC), and stores it in
 * UTC as "YYYY-MM-DDTHH:MM:SS.fffffffZ". Returns 0 or EM_EVALUE. */
int epu_time_parse(const char *s, size_t len, struct epu_time *out);

/* epu_name_micrograph() and epu_name_foilhole() of the last component of a path,
 * [base, end): for callers that have found it already. */
bool epu_name_micrograph_in(const char *base, const char *end, int64_t *foilhole_id,
                            int64_t *area_id);
bool epu_name_foilhole_in(const char *base, const char *end, int64_t *foilhole_id);

/* Strict decimal integer (optional sign, at most 18 digits). Returns 0 or EM_EVALUE. */
int epu_int_parse(const char *s, size_t len, int64_t *out);

/* A growable array of fixed-size items with a maximum count. */
struct epu_vec {
    unsigned char *data;
    size_t n, cap, elem, max;
};

void epu_vec_init(struct epu_vec *v, size_t elem, size_t max);
/* Appends a zeroed item and returns it, or NULL when out of memory or full. */
void *epu_vec_push(struct epu_vec *v);
void *epu_vec_last(struct epu_vec *v);
/* Copies the items into `arena`, sorted by their leading `struct epu_int` id, and
 * empties the vector. Returns the copy (NULL when empty) or sets *err on failure. */
void *epu_vec_finish_sorted(struct epu_vec *v, struct em_arena *arena, size_t *count, int *err);
void epu_vec_free(struct epu_vec *v);

/* One kind's parser: callbacks plus the table for JSON. Defined in epu_<kind>.c. */
struct epu_kind_ops {
    enum epu_kind kind;
    const char *root_name;
    const char *root_uri;
    size_t state_size;
    int (*init)(void *state);
    void (*fini)(void *state);
    /* Starts a document; the state is reused between documents. */
    int (*begin)(void *state, struct epu_doc *doc, const char *path, struct dcs_reader *r);
    struct dcs_handler h;
    /* After the whole document: check required fields, finish lists. */
    int (*finish)(void *state, struct epu_doc *doc, struct dcs_reader *r);
    int (*to_json)(const struct epu_doc *doc, cJSON *out);
};

extern const struct epu_kind_ops epu_session_ops;
extern const struct epu_kind_ops epu_atlas_ops;
extern const struct epu_kind_ops epu_gridsquare_ops;
extern const struct epu_kind_ops epu_gridsquare_image_ops;
extern const struct epu_kind_ops epu_foilhole_image_ops;
extern const struct epu_kind_ops epu_micrograph_ops;

#define EPU_NS_EPU "http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence"
#define EPU_NS_ATLAS                                                                               \
    "http://schemas.datacontract.org/2004/07/"                                                     \
    "Applications.SciencesAppsShared.GridAtlas.Persistence"
#define EPU_NS_SHARED "http://schemas.datacontract.org/2004/07/Fei.SharedObjects"

#endif
