/* imagehdr.h — the header of an image or volume on disk (parsers/formats.h does the
 * reading; this side opens files and finds Zarr and N5 metadata).
 */
#ifndef EM_IMAGEHDR_H
#define EM_IMAGEHDR_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The header of the image or volume at `path`: an MRC, DM or TIFF file, a Zarr array or
 * multiscale group, or an N5 dataset or root (a directory, or its .zarray, .zattrs or
 * attributes.json). *out is fmt_info_to_json()'s object (a group: {"format", "levels" or
 * "arrays"}). Returns 0, or a negative EM_E* with the reason in `why` (EM_EWRONGKIND: not
 * an image this knows). */
int image_header(const char *path, cJSON **out, char *why, size_t cap);

#endif
