/* dataset.h — a loader's output directory as a `dataset` entity (DESIGN §11, issue 15).
 *
 * A loader writes OUT/<loader>/<dataset>/ with its files and a `metadata.json` record
 * (../shared/reference/loaders-and-formats.md §3: id, source, source_id, status,
 * created_at, metadata.core …). scan and watch both read such a directory here, so that
 * the two give the same entity:
 *
 *   key  {"loader": record.source, "dataset_id": record.id}
 *   data {"loader", "dataset_id", "status", "dir", "job_id",
 *         "record": the record as written,
 *         "files": [{"name", "size", "header" | "error"}] (by name),
 *         "volume": the main volume's name, "header": its format, volume_shape, axes,
 *         data_type and voxel_size_nm as the data says them,
 *         "mismatches": ["volume_shape: the record says [..], FILE has [..]", …]}
 *
 * The headers come from the data itself (imagehdr.h): shape, data type and voxel size as
 * the file says them, compared with what the record claims. Only what the files hold goes
 * into `data` (sizes, not times), so a scan and a watch of the same tree agree.
 */
#ifndef EM_DATASET_H
#define EM_DATASET_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define DATASET_RECORD_NAME "metadata.json"
#define DATASET_RECORD_MAX (16u << 20) /* a larger record is refused */
#define DATASET_MAX_FILES 1000         /* files in a dataset directory read for headers */

/* Whether `rel` (a path, '/'-separated) names a dataset record: its last component is
 * metadata.json. (EPU never writes that name.) */
bool dataset_is_record(const char *rel);

/* Reads the record at `root`/`rel` and the headers of the files beside it. Returns 1
 * with *key and *data (yours), 0 when the file is JSON but not a loader record (no string
 * id, source and status: not ours, nothing to emit), or a negative EM_E* with the reason
 * in `why` (EM_EMALFORMED: not JSON; EM_ELIMIT: too large; EM_ENOENT: gone). */
int dataset_read(const char *root, const char *rel, cJSON **key, cJSON **data, char *why,
                 size_t cap);

#endif
