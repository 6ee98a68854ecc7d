/* formats.h — header readers for the image formats the loaders fetch (issue 15): MRC/CCP4,
 * DM3/DM4, TIFF/BigTIFF (with OME-XML, ImageJ and FEI descriptions, and EER), Zarr v2
 * (.zarray, OME-NGFF .zattrs) and N5 (attributes.json). Facts from
 * ../shared/reference/loaders-and-formats.md §8.
 *
 * Pure: the caller supplies the bytes. A file format is read through `struct fmt_src`
 * (only the header parts are asked for: a multi-gigabyte TIFF costs one read per page
 * directory); Zarr and N5 metadata are JSON texts the caller reads. Nothing here opens a
 * file, logs or allocates without bound: every count and offset is checked against the
 * source's size and the limits below, and a bad file gets EM_EMALFORMED (or
 * EM_ETRUNCATED, EM_ELIMIT) with the reason in `why`.
 *
 * Shapes are in C order (slowest axis first), with `axes` naming them ("zyx", "cyx",
 * "zcyx", "yxs" for RGB samples); voxel sizes are in nanometres, in the same order.
 */
#ifndef EM_FORMATS_H
#define EM_FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define FMT_MAX_DIMS 8
#define FMT_MAX_PAGES 1000000u /* TIFF page directories followed at most */

/* Where the bytes come from: reads up to `len` bytes at `off` into `buf` and returns how
 * many it read (fewer only at the end), or a negative EM_E*. */
struct fmt_src {
    long (*read_at)(void *ctx, uint64_t off, void *buf, size_t len);
    uint64_t size;
    void *ctx;
};

/* A source over bytes in memory (`ctx` is the struct itself). */
struct fmt_mem {
    struct fmt_src src;
    const unsigned char *data;
};
void fmt_mem_init(struct fmt_mem *m, const void *data, size_t len);

struct fmt_info {
    char format[16]; /* "mrc", "dm3", "dm4", "tiff", "bigtiff", "ome-tiff", "eer", "zarr", "n5" */
    int ndim;        /* 0: not known */
    uint64_t shape[FMT_MAX_DIMS];
    char axes[FMT_MAX_DIMS + 1];
    char dtype[16]; /* "uint8" … "float64", "int64", "uint64", "float16", "complex64",
                     * "bool", "string", "object"; "" when unknown */
    bool has_voxel; /* voxel_nm holds a size for each axis */
    double voxel_nm[FMT_MAX_DIMS];
    char compression[24]; /* "none", "gzip", "lz4", "blosc", "zstd", "lzw", "eer", … */
    uint64_t pages;       /* TIFF: page directories; DM: images in the file */
    cJSON *extra;         /* format-specific details (owned; may be NULL) */
};

/* Which format `head` (the first bytes of a file, at least 16 when there are) starts
 * like: "mrc", "dm3", "dm4", "tiff", "bigtiff", or NULL. MRC is recognised by its `MAP `
 * stamp or, failing that, by sensible dimensions and mode. */
const char *fmt_sniff(const void *head, size_t n);

/* Reads the header of an MRC, DM or TIFF file. Returns 0, or a negative EM_E* with the
 * reason in `why`. Frees *out with fmt_info_free() either way. */
int fmt_read(const struct fmt_src *src, struct fmt_info *out, char *why, size_t cap);

/* Zarr v2: the `.zarray` text of an array, and optionally the `.zattrs` text of the group
 * holding it (OME-NGFF multiscales: axes and the scale of `path`, the array's path within
 * the group, e.g. "scale0/image" or "s0"). */
int fmt_read_zarray(const char *zarray, size_t n, const char *zattrs, size_t an, const char *path,
                    struct fmt_info *out, char *why, size_t cap);

/* N5: a dataset's attributes.json, and optionally the root's (n5-viewer `resolution`,
 * `units` and `axes`; the dataset's `downsamplingFactors` scale them). */
int fmt_read_n5(const char *attrs, size_t n, const char *root_attrs, size_t rn,
                struct fmt_info *out, char *why, size_t cap);

/* {"format", "volume_shape", "axes", "data_type", "voxel_size_nm", "compression",
 *  "pages", and the format's details}: NULL when out of memory. */
cJSON *fmt_info_to_json(const struct fmt_info *info);

void fmt_info_free(struct fmt_info *info);

#endif
