/* loaders.h — what each loader takes and fetches (issue 15). A loader turns a job's
 * parameters into files to fetch and the metadata record of the dataset they make:
 * OUT/<loader>/<dataset>/ with the files and metadata.json (the two-phase record of
 * ../shared/reference/loaders-and-formats.md §3: a stub at "saving-data" first, the
 * complete record last, each written to a temporary name and renamed).
 *
 * Today: `url URL...` (any URL the transfer engine allows; `URL#sha256=HEX` adds the
 * expected digest) and `movie BASE_URL PATH` (a micrograph's movie beside its manifest
 * PATH on the acquisition share: PATH without ".xml" plus `_Fractions.tiff`,
 * `_Fractions.mrc`, `_EER.eer`, `.tiff`, `.eer` or `.mrc`, the first that exists; the
 * source is only read); the sources of the reference note: `idr IMAGE`, `dvid SERVER UUID
 * INSTANCE BOX`, `epfl [URL]`, `empiar ENTRY` (the entry's JSON, then the FTP listing of
 * its data directory) and `openorganelle BUCKET PATH` (a Zarr store over S3's HTTP
 * interface: .zmetadata, then every array's chunks).
 */
#ifndef EM_LOADERS_H
#define EM_LOADERS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether `loader` exists and its arguments make sense. Returns 0, or EM_EUSAGE with the
 * reason. */
int loader_check(const char *loader, const char *const *args, size_t n, char *why, size_t cap);

/* A file name from the last segment of a URL's path (its query and fragment dropped,
 * %XX decoded) that cannot escape a directory: no '/', '\', NUL or control character,
 * not "", "." or "..", at most 200 bytes. Returns 0, or EM_EVALUE when there is none. */
int loader_file_name(const char *url, char *out, size_t cap);

/* Whether a loader of that name exists. */
bool loader_known(const char *name);

/* Whether `p` is a relative path whose components are plain names: none empty, ".", ".."
 * or holding a control character, '\\', '?', '#' or '%'; no leading or trailing '/'. */
bool loader_safe_path(const char *p);

int cmd_loaders(int argc, char **argv);

#endif
