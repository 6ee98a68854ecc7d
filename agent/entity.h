/* entity.h — the keys and `data` objects of DESIGN §5's entities, built from parsed
 * documents. scan and the watch model both build their events here, which is what makes
 * a watch's final entities equal a scan's.
 *
 * Every function returns a new cJSON object that you own, or NULL when out of memory.
 * Functions that take cJSON "parts" take ownership of them whatever happens; a NULL part
 * becomes JSON null.
 */
#ifndef EM_ENTITY_H
#define EM_ENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "epu.h"
#include "event.h"

/* {"<k1>":v1} or {"<k1>":v1,"<k2>":v2}; `k2` NULL for a one-part key; `s2` (when not
 * NULL) replaces v2 with a string. */
cJSON *entity_key(const char *k1, int64_t v1, const char *k2, int64_t v2, const char *s2);

/* The key and the data of an aborted_session event (event.h): {"path": dir} both, `dir`
 * relative to the watched or scanned directory. `*data` NULL when out of memory. */
cJSON *entity_aborted_key(const char *dir, cJSON **data);

/* The session: EpuSession.dm's fields without its square list, its directory (relative
 * to the watched root) and its atlas's id (`has_atlas` false: null). */
cJSON *entity_session_data(const struct epu_doc *session, const char *dir, bool has_atlas,
                           int64_t atlas_id);

/* The atlas: Atlas.dm's fields and tiles without its nodes, and its path. */
cJSON *entity_atlas_data(const struct epu_doc *atlas, const char *rel);

/* The atlas's node for grid square `gs` (nodes are sorted by id), or NULL; `at` may be
 * NULL. */
const struct epu_atlas_square *entity_atlas_node(const struct epu_atlas *at, int64_t gs);

/* Parts of a grid square and a foil hole. */
cJSON *entity_atlas_node_part(const struct epu_atlas_square *node);
cJSON *entity_metadata_part(const struct epu_gridsquare_metadata *g);
cJSON *entity_image_part(const struct epu_image *img, enum epu_kind kind, const char *rel);
cJSON *entity_target_part(const struct epu_foilhole_target *t);

/* A grid square from its parts; `has_atlas` false gives a null atlas_id. */
cJSON *entity_square_data(int64_t session_id, int64_t gridsquare_id, bool has_atlas,
                          int64_t atlas_id, bool in_session_list, cJSON *atlas_node,
                          cJSON *metadata, cJSON *image);

/* A foil hole from its parts. */
cJSON *entity_hole_data(int64_t session_id, int64_t gridsquare_id, int64_t foilhole_id,
                        cJSON *target, cJSON *image);

/* entity_hole_data() as JSON text, with the image part given as text (jsonw_print()'s of
 * the part, or NULL for none): byte for byte what printing that object gives, without
 * reading the image's numbers back and printing them again. Takes `target`. Free with
 * cJSON_free(); NULL when out of memory or `image_json` is not an object's text. */
char *entity_hole_data_text(int64_t session_id, int64_t gridsquare_id, int64_t foilhole_id,
                            cJSON *target, const char *image_json);

/* A micrograph: its manifest's fields, the session and the .dm's exposure id
 * (`has_exposure` false: null). */
cJSON *entity_micrograph_data(const struct epu_doc *micrograph, int64_t session_id,
                              bool has_exposure, int64_t exposure_id);

/* The one rule that gives a micrograph its exposure id, for scan and watch alike: the
 * square's .dm lists exposures by base file name; a micrograph whose file name, without
 * ".xml", is one of them gets that entry's id. A name listed twice: the first entry wins.
 * Names are compared by their 64-bit hash (hash.h), so the model keeps 16 bytes per
 * exposure, not the name. */
struct entity_exposure {
    uint64_t name; /* hash of the base file name */
    int64_t exposure_id;
};

/* The exposures of a square's .dm, as a lookup table in out[] (room for
 * g->exposure_count), *count entries. Returns 0 or -EM_ENOMEM. */
int entity_exposures_index(const struct epu_gridsquare_metadata *g, struct entity_exposure *out,
                           size_t *count);

/* The name hash of the micrograph at `rel` (its last component without ".xml"). */
uint64_t entity_micrograph_name(const char *rel);

/* The entry for `name` in a table from entity_exposures_index(), or NULL. */
const struct entity_exposure *entity_exposure_find(const struct entity_exposure *v, size_t n,
                                                   uint64_t name);

/* The micrograph's own fields as JSON text (what entity_micrograph_data() holds besides
 * session_id and exposure_id), so that a parse worker can write them off the loop thread.
 * Free with cJSON_free(); NULL when out of memory. */
char *entity_micrograph_doc_json(const struct epu_doc *micrograph);

/* entity_micrograph_data() as JSON text, from entity_micrograph_doc_json()'s text: byte
 * for byte what printing that object gives. Free with cJSON_free(); NULL on failure. */
char *entity_micrograph_data_text(const char *doc_json, int64_t session_id, bool has_exposure,
                                  int64_t exposure_id);

#endif
