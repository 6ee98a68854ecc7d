/* Header readers for MRC/CCP4, DM3/DM4, TIFF/BigTIFF, Zarr v2 and N5 (formats.h). */
#include "formats.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "em_compat.h"
#include "em_error.h"

/* ---- small helpers ---- */

static int fail(char *why, size_t cap, int rc, const char *fmt, ...) EM_PRINTF(4, 5);
static int fail(char *why, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && cap)
        vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return rc;
}

static long mem_read_at(void *ctx, uint64_t off, void *buf, size_t len)
{
    const struct fmt_mem *m = ctx;
    if (off >= m->src.size)
        return 0;
    uint64_t avail = m->src.size - off;
    size_t n = avail < len ? (size_t)avail : len;
    memcpy(buf, m->data + off, n);
    return (long)n;
}

void fmt_mem_init(struct fmt_mem *m, const void *data, size_t len)
{
    m->data = data;
    m->src = (struct fmt_src){mem_read_at, len, m};
}

/* Reads exactly `len` bytes at `off`: 0, EM_ETRUNCATED past the end, or the source's error. */
static int get(const struct fmt_src *s, uint64_t off, void *buf, size_t len)
{
    if (off > s->size || len > s->size - off)
        return -EM_ETRUNCATED;
    long n = s->read_at(s->ctx, off, buf, len);
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EM_ETRUNCATED;
}

static uint16_t u16(const unsigned char *p, bool le)
{
    unsigned v = le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
    return (uint16_t)v;
}

static uint32_t u32(const unsigned char *p, bool le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t u64(const unsigned char *p, bool le)
{
    return le ? (uint64_t)u32(p, true) | (uint64_t)u32(p + 4, true) << 32
              : (uint64_t)u32(p, false) << 32 | (uint64_t)u32(p + 4, false);
}

static float f32(const unsigned char *p, bool le)
{
    uint32_t v = u32(p, le);
    float f;
    memcpy(&f, &v, sizeof(f));
    return f;
}

static double f64(const unsigned char *p, bool le)
{
    uint64_t v = u64(p, le);
    double d;
    memcpy(&d, &v, sizeof(d));
    return d;
}

static void set_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s);
}

static cJSON *extra(struct fmt_info *info)
{
    if (!info->extra)
        info->extra = cJSON_CreateObject();
    return info->extra;
}

static void extra_num(struct fmt_info *info, const char *key, double v)
{
    cJSON *e = extra(info);
    if (e && em_isfinite(v))
        cJSON_AddNumberToObject(e, key, v);
}

static void extra_str(struct fmt_info *info, const char *key, const char *v)
{
    cJSON *e = extra(info);
    if (e)
        cJSON_AddStringToObject(e, key, v);
}

void fmt_info_free(struct fmt_info *info)
{
    if (info) {
        cJSON_Delete(info->extra);
        info->extra = NULL;
    }
}

static void info_init(struct fmt_info *info)
{
    memset(info, 0, sizeof(*info));
}

/* ---- sniffing ---- */

static bool mrc_plausible(const unsigned char *h, bool le)
{
    int32_t nx = (int32_t)u32(h, le), ny = (int32_t)u32(h + 4, le), nz = (int32_t)u32(h + 8, le),
            mode = (int32_t)u32(h + 12, le);
    bool mode_ok = (mode >= 0 && mode <= 4) || mode == 6 || mode == 12 || mode == 101;
    return nx > 0 && ny > 0 && nz > 0 && nx < (1 << 24) && ny < (1 << 24) && nz < (1 << 24) &&
           mode_ok;
}

const char *fmt_sniff(const void *head, size_t n)
{
    const unsigned char *h = head;
    if (n >= 8 && (memcmp(h, "II", 2) == 0 || memcmp(h, "MM", 2) == 0)) {
        uint16_t v = u16(h + 2, h[0] == 'I');
        if (v == 42)
            return "tiff";
        if (v == 43)
            return "bigtiff";
    }
    if (n >= 16 && h[0] == 0 && h[1] == 0 && h[2] == 0 && (h[3] == 3 || h[3] == 4)) {
        /* DM: big-endian version, then a size, then a byte-order flag of 0 or 1. */
        size_t flag_at = h[3] == 3 ? 8 : 12;
        uint32_t flag = u32(h + flag_at, false);
        if (flag <= 1)
            return h[3] == 3 ? "dm3" : "dm4";
    }
    if (n >= 212 && memcmp(h + 208, "MAP ", 4) == 0)
        return "mrc";
    if (n >= 1024 && (mrc_plausible(h, true) || mrc_plausible(h, false)))
        return "mrc";
    return NULL;
}

/* ---- MRC / CCP4 ---- */

static const char *mrc_dtype(int32_t mode)
{
    switch (mode) {
    case 0:
        return "int8";
    case 1:
        return "int16";
    case 2:
        return "float32";
    case 3:
        return "complex-int16";
    case 4:
        return "complex64";
    case 6:
        return "uint16";
    case 12:
        return "float16";
    case 101:
        return "uint4";
    default:
        return NULL;
    }
}

static int read_mrc(const struct fmt_src *s, struct fmt_info *info, char *why, size_t cap)
{
    unsigned char h[1024];
    int rc = get(s, 0, h, sizeof(h));
    if (rc < 0)
        return fail(why, cap, rc, "MRC: the 1024-byte header is cut short (%llu bytes)",
                    (unsigned long long)s->size);
    /* Byte order: the machine stamp, else whichever order makes sense. */
    bool le = true;
    if (h[212] == 0x44 && (h[213] == 0x41 || h[213] == 0x44))
        le = true;
    else if (h[212] == 0x11 && h[213] == 0x11)
        le = false;
    else
        le = mrc_plausible(h, true) || !mrc_plausible(h, false);
    if (!mrc_plausible(h, le))
        return fail(why, cap, -EM_EMALFORMED,
                    "MRC: dimensions %d x %d x %d or mode %d make no sense", (int)u32(h, le),
                    (int)u32(h + 4, le), (int)u32(h + 8, le), (int)u32(h + 12, le));
    int32_t n[3] = {(int32_t)u32(h, le), (int32_t)u32(h + 4, le), (int32_t)u32(h + 8, le)};
    int32_t mode = (int32_t)u32(h + 12, le);
    int32_t m[3] = {(int32_t)u32(h + 28, le), (int32_t)u32(h + 32, le), (int32_t)u32(h + 36, le)};
    double cell[3] = {f32(h + 40, le), f32(h + 44, le), f32(h + 48, le)};
    int32_t map[3] = {(int32_t)u32(h + 64, le), (int32_t)u32(h + 68, le), (int32_t)u32(h + 72, le)};
    int32_t ispg = (int32_t)u32(h + 88, le), nsymbt = (int32_t)u32(h + 92, le);
    if (map[0] == 0 && map[1] == 0 && map[2] == 0)
        map[0] = 1, map[1] = 2, map[2] = 3; /* old writers: the default order */
    bool seen[4] = {false, false, false, false};
    for (int i = 0; i < 3; i++) {
        if (map[i] < 1 || map[i] > 3 || seen[map[i]])
            return fail(why, cap, -EM_EMALFORMED,
                        "MRC: mapc/mapr/maps %d,%d,%d is not a permutation of 1,2,3", map[0],
                        map[1], map[2]);
        seen[map[i]] = true;
    }
    if (nsymbt < 0 || (uint64_t)nsymbt > s->size - 1024)
        return fail(why, cap, -EM_EMALFORMED, "MRC: extended header of %d bytes past the end",
                    nsymbt);
    /* Extents along X, Y, Z: columns, rows and sections mapped through mapc/mapr/maps. */
    uint64_t ext[4] = {0, 0, 0, 0};
    for (int i = 0; i < 3; i++)
        ext[map[i]] = (uint64_t)n[i];
    set_str(info->format, sizeof(info->format), "mrc");
    set_str(info->dtype, sizeof(info->dtype), mrc_dtype(mode));
    set_str(info->compression, sizeof(info->compression), "none");
    info->ndim = 3;
    info->shape[0] = ext[3], info->shape[1] = ext[2], info->shape[2] = ext[1];
    set_str(info->axes, sizeof(info->axes), "zyx");
    /* Voxel size along X, Y, Z: cell length over sampling, Å → nm. */
    info->has_voxel = true;
    for (int a = 0; a < 3; a++) {
        double v = m[a] > 0 && cell[a] > 0 && em_isfinite(cell[a]) ? cell[a] / m[a] / 10.0 : NAN;
        if (!em_isfinite(v))
            info->has_voxel = false;
        info->voxel_nm[2 - a] = v;
    }
    uint64_t voxels = ext[1] * ext[2] * ext[3];
    unsigned bits = mode == 0                              ? 8
                    : mode == 1 || mode == 6 || mode == 12 ? 16
                    : mode == 2 || mode == 3               ? 32
                    : mode == 4                            ? 64
                                                           : 4;
    uint64_t data_bytes = voxels * bits / 8, data_at = 1024 + (uint64_t)nsymbt;
    char exttyp[5] = {0};
    for (int i = 0; i < 4; i++)
        exttyp[i] = h[104 + i] >= 32 && h[104 + i] < 127 ? (char)h[104 + i] : 0;
    extra_str(info, "byte_order", le ? "little" : "big");
    extra_num(info, "mode", mode);
    extra_num(info, "space_group", ispg);
    extra_num(info, "extended_header_bytes", nsymbt);
    if (exttyp[0])
        extra_str(info, "extended_header_type", exttyp);
    extra_num(info, "nversion", (int32_t)u32(h + 108, le));
    extra_num(info, "data_offset", (double)data_at);
    cJSON *e = extra(info);
    if (e) {
        int start[3] = {(int)u32(h + 16, le), (int)u32(h + 20, le), (int)u32(h + 24, le)};
        cJSON_AddItemToObject(e, "axis_order", cJSON_CreateIntArray(map, 3));
        /* The data's own layout: sections, rows, columns (columns fastest). */
        int data_shape[3] = {n[2], n[1], n[0]};
        cJSON_AddItemToObject(e, "data_shape", cJSON_CreateIntArray(data_shape, 3));
        cJSON_AddItemToObject(e, "start", cJSON_CreateIntArray(start, 3));
        cJSON_AddItemToObject(e, "sampling", cJSON_CreateIntArray(m, 3));
        float cf[6] = {(float)cell[0],  (float)cell[1],  (float)cell[2],
                       f32(h + 52, le), f32(h + 56, le), f32(h + 60, le)};
        cJSON_AddItemToObject(e, "cell_angstrom", cJSON_CreateFloatArray(cf, 6));
        float st[4] = {f32(h + 76, le), f32(h + 80, le), f32(h + 84, le), f32(h + 216, le)};
        bool finite = true;
        for (int i = 0; i < 4; i++)
            finite = finite && em_isfinite(st[i]);
        if (finite) {
            cJSON_AddNumberToObject(e, "min", st[0]);
            cJSON_AddNumberToObject(e, "max", st[1]);
            cJSON_AddNumberToObject(e, "mean", st[2]);
            cJSON_AddNumberToObject(e, "rms", st[3]);
        }
        int32_t nlabl = (int32_t)u32(h + 220, le);
        cJSON *labels = cJSON_AddArrayToObject(e, "labels");
        for (int i = 0; labels && i < nlabl && i < 10; i++) {
            char text[81];
            size_t k = 0;
            for (size_t j = 0; j < 80; j++) {
                unsigned char c = h[(size_t)(224 + 80 * i) + j];
                text[k++] = c >= 32 && c < 127 ? (char)c : ' ';
            }
            while (k > 0 && text[k - 1] == ' ')
                k--;
            text[k] = '\0';
            cJSON_AddItemToArray(labels, cJSON_CreateString(text));
        }
    }
    if (!mrc_dtype(mode))
        return fail(why, cap, -EM_EMALFORMED, "MRC: unknown mode %d", mode);
    if (data_at + data_bytes > s->size)
        return fail(why, cap, -EM_ETRUNCATED,
                    "MRC: %llu bytes of data expected after byte %llu, the file has %llu",
                    (unsigned long long)data_bytes, (unsigned long long)data_at,
                    (unsigned long long)s->size);
    return 0;
}

/* ---- DM3 / DM4 ---- */

#define DM_MAX_DEPTH 32
#define DM_MAX_ENTRIES 200000

struct dm {
    const struct fmt_src *s;
    bool v4;
    bool data_le; /* data values' byte order; the structure is big-endian */
    uint64_t off;
    unsigned entries;
    /* what is wanted, collected while walking */
    int image;      /* index within ImageList of the entry being walked (-1 outside) */
    int best_image; /* the image chosen: the last non-thumbnail one */
    uint64_t dims[2][FMT_MAX_DIMS];
    int ndims[2];
    int32_t datatype[2];
    double scale[2][FMT_MAX_DIMS];
    char units[2][FMT_MAX_DIMS][16];
    int images;
    char *why;
    size_t cap;
};

static int dm_word(struct dm *d, uint64_t *v)
{
    unsigned char b[8];
    size_t n = d->v4 ? 8 : 4;
    int rc = get(d->s, d->off, b, n);
    if (rc < 0)
        return rc;
    d->off += n;
    *v = d->v4 ? u64(b, false) : u32(b, false);
    return 0;
}

static size_t dm_type_size(uint64_t t)
{
    switch (t) {
    case 2:
    case 4:
        return 2;
    case 3:
    case 5:
    case 6:
        return 4;
    case 7:
    case 11:
    case 12:
        return 8;
    case 8:
    case 9:
    case 10:
        return 1;
    default:
        return 0;
    }
}

static double dm_value(const unsigned char *b, uint64_t t, bool le)
{
    switch (t) {
    case 2:
        return (int16_t)u16(b, le);
    case 3:
        return (int32_t)u32(b, le);
    case 4:
        return u16(b, le);
    case 5:
        return u32(b, le);
    case 6:
        return f32(b, le);
    case 7:
        return f64(b, le);
    case 8:
    case 10:
        return b[0];
    case 9:
        return (int8_t)b[0];
    case 11:
        return (double)(int64_t)u64(b, le);
    case 12:
        return (double)u64(b, le);
    default:
        return 0;
    }
}

/* The path of the entry being read, as "ImageList.1.ImageData.Dimensions.0". */
struct dm_path {
    char text[512];
    size_t len;
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A simple value at `path`: noted when it is one of those wanted. */
static void dm_note(struct dm *d, const char *path, double v)
{
    int slot = d->image == 0 ? 0 : 1;
    if (d->image < 0)
        return;
    const char *p = strstr(path, ".ImageData.");
    if (!p)
        return;
    p += strlen(".ImageData.");
    if (strncmp(p, "Dimensions.", 11) == 0) {
        long i = strtol(p + 11, NULL, 10);
        if (i >= 0 && i < FMT_MAX_DIMS && v >= 0) {
            d->dims[slot][i] = (uint64_t)v;
            if (d->ndims[slot] < i + 1)
                d->ndims[slot] = (int)i + 1;
        }
    } else if (strcmp(p, "DataType") == 0) {
        d->datatype[slot] = (int32_t)v;
    } else if (strncmp(p, "Calibrations.Dimension.", 23) == 0 && ends_with(p, ".Scale")) {
        long i = strtol(p + 23, NULL, 10);
        if (i >= 0 && i < FMT_MAX_DIMS)
            d->scale[slot][i] = v;
    }
}

static int dm_group(struct dm *d, struct dm_path *path, int depth);

/* One data entry at d->off (after its name): `%%%%`, the type words, the value. */
static int dm_data(struct dm *d, struct dm_path *path)
{
    unsigned char mark[4];
    int rc = get(d->s, d->off, mark, 4);
    if (rc < 0)
        return rc;
    if (memcmp(mark, "%%%%", 4) != 0)
        return fail(d->why, d->cap, -EM_EMALFORMED,
                    "DM: a data entry without %%%%%%%% at byte %llu", (unsigned long long)d->off);
    d->off += 4;
    uint64_t ninfo, type;
    if ((rc = dm_word(d, &ninfo)) < 0 || (rc = dm_word(d, &type)) < 0)
        return rc;
    if (ninfo == 0 || ninfo > 1000)
        return fail(d->why, d->cap, -EM_EMALFORMED, "DM: %llu type words",
                    (unsigned long long)ninfo);
    size_t sz = dm_type_size(type);
    if (sz && ninfo == 1) {
        unsigned char b[8];
        if ((rc = get(d->s, d->off, b, sz)) < 0)
            return rc;
        d->off += sz;
        dm_note(d, path->text, dm_value(b, type, d->data_le));
        return 0;
    }
    if (type == 18 && ninfo == 2) { /* a string: its length, then the bytes */
        uint64_t len;
        if ((rc = dm_word(d, &len)) < 0)
            return rc;
        if (len > d->s->size)
            return -EM_ETRUNCATED;
        d->off += len;
        return 0;
    }
    if (type == 15) { /* struct: 0, field count, then (name length, type) per field */
        uint64_t zero, nf;
        if ((rc = dm_word(d, &zero)) < 0 || (rc = dm_word(d, &nf)) < 0)
            return rc;
        if (nf > 1000)
            return fail(d->why, d->cap, -EM_EMALFORMED, "DM: a struct of %llu fields",
                        (unsigned long long)nf);
        uint64_t total = 0, ft[1000];
        for (uint64_t i = 0; i < nf; i++) {
            uint64_t nl;
            if ((rc = dm_word(d, &nl)) < 0 || (rc = dm_word(d, &ft[i])) < 0)
                return rc;
            size_t fs = dm_type_size(ft[i]);
            if (!fs)
                return fail(d->why, d->cap, -EM_EMALFORMED, "DM: struct field of type %llu",
                            (unsigned long long)ft[i]);
            total += fs;
        }
        d->off += total;
        return d->off <= d->s->size ? 0 : -EM_ETRUNCATED;
    }
    if (type == 20) { /* array: element type (simple or struct), then the count */
        uint64_t et;
        if ((rc = dm_word(d, &et)) < 0)
            return rc;
        uint64_t esize = 0;
        if (et == 15) {
            uint64_t zero, nf;
            if ((rc = dm_word(d, &zero)) < 0 || (rc = dm_word(d, &nf)) < 0)
                return rc;
            if (nf > 1000)
                return -EM_EMALFORMED;
            for (uint64_t i = 0; i < nf; i++) {
                uint64_t nl, ft;
                if ((rc = dm_word(d, &nl)) < 0 || (rc = dm_word(d, &ft)) < 0)
                    return rc;
                if (!dm_type_size(ft))
                    return -EM_EMALFORMED;
                esize += dm_type_size(ft);
            }
        } else {
            esize = dm_type_size(et);
        }
        uint64_t count;
        if ((rc = dm_word(d, &count)) < 0)
            return rc;
        if (!esize || count > d->s->size / esize)
            return fail(d->why, d->cap, esize ? -EM_ETRUNCATED : -EM_EMALFORMED,
                        "DM: an array of %llu elements of %llu bytes at byte %llu",
                        (unsigned long long)count, (unsigned long long)esize,
                        (unsigned long long)d->off);
        /* Units are a u16 character array: kept for calibrations. */
        int slot = d->image == 0 ? 0 : 1;
        const char *p =
            d->image >= 0 ? strstr(path->text, ".ImageData.Calibrations.Dimension.") : NULL;
        if (p && et == 4 && ends_with(path->text, ".Units") && count < 16) {
            long i = strtol(p + strlen(".ImageData.Calibrations.Dimension."), NULL, 10);
            unsigned char b[32];
            if (i >= 0 && i < FMT_MAX_DIMS && get(d->s, d->off, b, (size_t)count * 2) == 0) {
                char *u = d->units[slot][i];
                for (uint64_t k = 0; k < count; k++) {
                    unsigned c = u16(b + 2 * k, d->data_le);
                    /* µ (U+00B5) as "u"; anything else outside ASCII as '?' */
                    u[k] = c == 0xB5 ? 'u' : c >= 32 && c < 127 ? (char)c : '?';
                }
                u[count] = '\0';
            }
        }
        d->off += count * esize;
        return d->off <= d->s->size ? 0 : -EM_ETRUNCATED;
    }
    return fail(d->why, d->cap, -EM_EMALFORMED, "DM: data of type %llu at byte %llu",
                (unsigned long long)type, (unsigned long long)d->off);
}

/* Entries of a group at d->off: sorted byte, open byte, count, then each entry. */
static int dm_group(struct dm *d, struct dm_path *path, int depth)
{
    if (depth > DM_MAX_DEPTH)
        return fail(d->why, d->cap, -EM_ELIMIT, "DM: tag groups nested deeper than %d",
                    DM_MAX_DEPTH);
    unsigned char b[2];
    int rc = get(d->s, d->off, b, 2);
    if (rc < 0)
        return rc;
    d->off += 2;
    uint64_t count;
    if ((rc = dm_word(d, &count)) < 0)
        return rc;
    bool image_list = strcmp(path->text, "ImageList") == 0;
    for (uint64_t i = 0; i < count; i++) {
        if (++d->entries > DM_MAX_ENTRIES)
            return fail(d->why, d->cap, -EM_ELIMIT, "DM: more than %d tags", DM_MAX_ENTRIES);
        unsigned char head[3];
        if ((rc = get(d->s, d->off, head, 3)) < 0)
            return rc;
        d->off += 3;
        unsigned kind = head[0], nlen = u16(head + 1, false);
        char name[256] = "";
        if (nlen) {
            unsigned char nb[256];
            size_t take = nlen < sizeof(nb) - 1 ? nlen : sizeof(nb) - 1;
            if ((rc = get(d->s, d->off, nb, take)) < 0)
                return rc;
            for (size_t k = 0; k < take; k++)
                name[k] = nb[k] >= 32 && nb[k] < 127 && nb[k] != '.' ? (char)nb[k] : '_';
            name[take] = '\0';
            d->off += nlen;
        } else {
            snprintf(name, sizeof(name), "%llu", (unsigned long long)i);
        }
        if (d->v4) {
            uint64_t entry_len;
            if ((rc = dm_word(d, &entry_len)) < 0)
                return rc;
        }
        size_t saved = path->len;
        int n = snprintf(path->text + path->len, sizeof(path->text) - path->len, "%s%s",
                         path->len ? "." : "", name);
        if (n > 0 && (size_t)n < sizeof(path->text) - path->len)
            path->len += (size_t)n;
        int saved_image = d->image;
        if (image_list && kind == 20) {
            d->image = (int)i;
            d->images++;
        }
        if (kind == 20)
            rc = dm_group(d, path, depth + 1);
        else if (kind == 21)
            rc = dm_data(d, path);
        else
            rc = fail(d->why, d->cap, -EM_EMALFORMED, "DM: a tag of kind %u at byte %llu", kind,
                      (unsigned long long)d->off);
        d->image = saved_image;
        path->len = saved;
        path->text[saved] = '\0';
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *dm_dtype(int32_t t)
{
    switch (t) {
    case 1:
        return "int16";
    case 2:
        return "float32";
    case 3:
        return "complex64";
    case 6:
    case 9:
        return "uint8";
    case 7:
        return "int32";
    case 10:
        return "uint16";
    case 11:
        return "uint32";
    case 12:
        return "float64";
    case 13:
        return "complex128";
    case 14:
        return "bool";
    case 23:
        return "rgba8";
    default:
        return NULL;
    }
}

/* A calibration unit to nanometres per unit (0: not a length). */
static double unit_nm(const char *u)
{
    if (strcmp(u, "nm") == 0 || strcmp(u, "nanometer") == 0 || strcmp(u, "nanometers") == 0)
        return 1;
    if (strcmp(u, "um") == 0 || strcmp(u, "micron") == 0 || strcmp(u, "micrometer") == 0 ||
        strcmp(u, "\xc2\xb5m") == 0 || strcmp(u, "\xb5m") == 0)
        return 1e3;
    if (strcmp(u, "mm") == 0 || strcmp(u, "millimeter") == 0)
        return 1e6;
    if (strcmp(u, "m") == 0 || strcmp(u, "meter") == 0)
        return 1e9;
    if (strcmp(u, "A") == 0 || strcmp(u, "angstrom") == 0 || strcmp(u, "\xc3\x85") == 0)
        return 0.1;
    if (strcmp(u, "pm") == 0)
        return 1e-3;
    return 0;
}

static int read_dm(const struct fmt_src *s, struct fmt_info *info, char *why, size_t cap)
{
    unsigned char h[24];
    int rc = get(s, 0, h, 16);
    if (rc < 0)
        return fail(why, cap, rc, "DM: the header is cut short");
    struct dm d = {.s = s, .why = why, .cap = cap, .image = -1, .best_image = -1};
    d.v4 = h[3] == 4;
    if (d.v4 && (rc = get(s, 0, h, 24)) < 0)
        return fail(why, cap, rc, "DM: the header is cut short");
    d.data_le = u32(h + (d.v4 ? 12 : 8), false) == 1;
    d.off = d.v4 ? 16 : 12;
    uint64_t declared = d.v4 ? u64(h + 4, false) : u32(h + 4, false);
    struct dm_path path = {"", 0};
    rc = dm_group(&d, &path, 0);
    if (rc < 0) {
        if (why && !why[0])
            fail(why, cap, rc, "DM: the tag tree ends early (at byte %llu of %llu)",
                 (unsigned long long)d.off, (unsigned long long)s->size);
        return rc;
    }
    set_str(info->format, sizeof(info->format), d.v4 ? "dm4" : "dm3");
    set_str(info->compression, sizeof(info->compression), "none");
    /* The image: entry 1 and later of ImageList (entry 0 is the thumbnail), else entry 0. */
    int slot = d.ndims[1] ? 1 : 0;

    if (!d.ndims[slot])
        return fail(why, cap, -EM_EMISSING, "DM: no ImageList image with dimensions");
    const char *dt = dm_dtype(d.datatype[slot]);
    set_str(info->dtype, sizeof(info->dtype), dt ? dt : "");
    /* Dimensions are X first: reversed into C order. */
    int nd = d.ndims[slot];
    info->ndim = nd;
    static const char names[] = "xyzabcde";
    info->has_voxel = true;
    for (int i = 0; i < nd; i++) {
        info->shape[nd - 1 - i] = d.dims[slot][i];
        info->axes[nd - 1 - i] = names[i];
        double f = unit_nm(d.units[slot][i]);
        info->voxel_nm[nd - 1 - i] = d.scale[slot][i] * f;
        if (!(f > 0) || !(d.scale[slot][i] > 0))
            info->has_voxel = false;
    }
    info->axes[nd] = '\0';
    extra_num(info, "dm_data_type", d.datatype[slot]);
    extra_str(info, "data_byte_order", d.data_le ? "little" : "big");
    if (d.units[slot][0][0])
        extra_str(info, "calibration_unit", d.units[slot][0]);
    if (d.scale[slot][0] > 0)
        extra_num(info, "calibration_scale", d.scale[slot][0]);
    extra_num(info, "tags", d.entries);
    extra_num(info, "images", d.images); /* ImageList entries, the thumbnail included */
    if (declared + (d.v4 ? 24 : 16) != s->size)
        extra_num(info, "declared_size", (double)declared);
    if (!dt)
        return fail(why, cap, -EM_EMALFORMED, "DM: unknown image data type %d",
                    (int)d.datatype[slot]);
    return 0;
}

/* ---- TIFF / BigTIFF ---- */

struct tiff_entry {
    uint16_t tag, type;
    uint64_t count;
    unsigned char slot[8]; /* the value or its offset, as stored */
};

static size_t tiff_type_size(uint16_t t)
{
    switch (t) {
    case 1:
    case 2:
    case 6:
    case 7:
        return 1;
    case 3:
    case 8:
        return 2;
    case 4:
    case 9:
    case 11:
    case 13:
        return 4;
    case 5:
    case 10:
    case 12:
    case 16:
    case 17:
    case 18:
        return 8;
    default:
        return 0;
    }
}

struct tiff {
    const struct fmt_src *s;
    bool le, big;
};

/* The first value of an entry as an unsigned integer (SHORT, LONG, LONG8, BYTE). */
static uint64_t tiff_uint(const struct tiff *t, const struct tiff_entry *e)
{
    switch (e->type) {
    case 1:
        return e->slot[0];
    case 3:
        return u16(e->slot, t->le);
    case 4:
    case 13:
        return u32(e->slot, t->le);
    case 16:
    case 18:
        return u64(e->slot, t->le);
    default:
        return 0;
    }
}

/* The bytes of an entry's value (inline or at its offset), up to `max`: malloc'd. */
static int tiff_bytes(const struct tiff *t, const struct tiff_entry *e, size_t max,
                      unsigned char **out, size_t *len)
{
    size_t sz = tiff_type_size(e->type);
    if (!sz || e->count > max / sz)
        return -EM_ELIMIT;
    size_t n = (size_t)e->count * sz, inline_max = t->big ? 8 : 4;
    unsigned char *b = malloc(n + 1);
    if (!b)
        return -EM_ENOMEM;
    int rc = 0;
    if (n <= inline_max)
        memcpy(b, e->slot, n);
    else
        rc = get(t->s, t->big ? u64(e->slot, t->le) : u32(e->slot, t->le), b, n);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

static double tiff_rational(const struct tiff *t, const struct tiff_entry *e)
{
    unsigned char *b;
    size_t n;
    if (e->type != 5 || e->count < 1 || tiff_bytes(t, e, 64, &b, &n) < 0)
        return 0;
    uint32_t num = u32(b, t->le), den = u32(b + 4, t->le);
    free(b);
    return den ? (double)num / den : 0;
}

/* Reads the directory at `off`: its entries (up to `cap`) and the next directory's offset. */
static int tiff_ifd(const struct tiff *t, uint64_t off, struct tiff_entry *v, size_t cap, size_t *n,
                    uint64_t *next)
{
    unsigned char b[20];
    uint64_t count;
    size_t esz = t->big ? 20 : 12, csz = t->big ? 8 : 2;
    int rc = get(t->s, off, b, csz);
    if (rc < 0)
        return rc;
    count = t->big ? u64(b, t->le) : u16(b, t->le);
    if (count == 0 || count > 4096)
        return -EM_EMALFORMED;
    *n = 0;
    for (uint64_t i = 0; i < count; i++) {
        if ((rc = get(t->s, off + csz + i * esz, b, esz)) < 0)
            return rc;
        if (*n < cap) {
            struct tiff_entry *e = &v[(*n)++];
            e->tag = u16(b, t->le);
            e->type = u16(b + 2, t->le);
            e->count = t->big ? u64(b + 4, t->le) : u32(b + 4, t->le);
            memset(e->slot, 0, sizeof(e->slot));
            memcpy(e->slot, b + (t->big ? 12 : 8), t->big ? 8 : 4);
        }
    }
    if ((rc = get(t->s, off + csz + count * esz, b, t->big ? 8 : 4)) < 0)
        return rc;
    *next = t->big ? u64(b, t->le) : u32(b, t->le);
    return 0;
}

static const struct tiff_entry *tiff_find(const struct tiff_entry *v, size_t n, uint16_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].tag == tag)
            return &v[i];
    return NULL;
}

/* The value of `key="..."` (or key='...') in an XML start tag `tag` (up to its '>'). */
static bool xml_attr(const char *tag, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *end = strchr(tag, '>');
    for (const char *p = tag; p && (!end || p < end); p++) {
        p = strstr(p, key);
        if (!p || (end && p >= end))
            return false;
        if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r') && p[kl] == '=' &&
            (p[kl + 1] == '"' || p[kl + 1] == '\'')) {
            char q = p[kl + 1];
            const char *v = p + kl + 2, *ve = strchr(v, q);
            if (!ve)
                return false;
            size_t n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* OME-XML in the first ImageDescription: the series' shape, type and physical sizes. */
static bool tiff_ome(const char *desc, struct fmt_info *info)
{
    const char *px = strstr(desc, "<Pixels ");
    if (!px)
        px = strstr(desc, ":Pixels ");
    if (!px || (!strstr(desc, "<OME") && !strstr(desc, ":OME")))
        return false;
    char order[16] = "", type[16] = "", v[64];
    uint64_t size[5] = {1, 1, 1, 1, 1}; /* X Y Z C T */
    static const char *keys[5] = {"SizeX", "SizeY", "SizeZ", "SizeC", "SizeT"};
    for (int i = 0; i < 5; i++)
        if (xml_attr(px, keys[i], v, sizeof(v)))
            size[i] = strtoull(v, NULL, 10);
    xml_attr(px, "DimensionOrder", order, sizeof(order));
    xml_attr(px, "Type", type, sizeof(type));
    set_str(info->format, sizeof(info->format), "ome-tiff");
    if (type[0])
        set_str(info->dtype, sizeof(info->dtype),
                strcmp(type, "float") == 0    ? "float32"
                : strcmp(type, "double") == 0 ? "float64"
                                              : type);
    /* Shape in C order: the dimension order's letters reversed (first is fastest), keeping
     * the axes longer than 1, and always Y and X. */
    if (strlen(order) != 5)
        snprintf(order, sizeof(order), "XYZCT");
    int nd = 0;
    double phys[3] = {0, 0, 0};
    char unit[3][16] = {"", "", ""};
    static const char *pk[3] = {"PhysicalSizeX", "PhysicalSizeY", "PhysicalSizeZ"};
    static const char *uk[3] = {"PhysicalSizeXUnit", "PhysicalSizeYUnit", "PhysicalSizeZUnit"};
    for (int i = 0; i < 3; i++) {
        if (xml_attr(px, pk[i], v, sizeof(v)))
            phys[i] = strtod(v, NULL);
        if (!xml_attr(px, uk[i], unit[i], sizeof(unit[i])))
            set_str(unit[i], sizeof(unit[i]), "um"); /* OME's default: µm */
    }
    info->has_voxel = true;
    for (int i = 4; i >= 0; i--) {
        char c = order[i];
        int idx = c == 'X' ? 0 : c == 'Y' ? 1 : c == 'Z' ? 2 : c == 'C' ? 3 : c == 'T' ? 4 : -1;
        if (idx < 0 || (size[idx] <= 1 && idx >= 2) || nd >= FMT_MAX_DIMS)
            continue;
        info->shape[nd] = size[idx];
        info->axes[nd] = (char)(c - 'A' + 'a');
        if (idx <= 2) {
            const char *u = unit[idx];
            double f = unit_nm(u);
            info->voxel_nm[nd] = phys[idx] * f;
            if (!(phys[idx] > 0) || !(f > 0))
                info->has_voxel = false;
        } else {
            info->voxel_nm[nd] = 0;
        }
        nd++;
    }
    info->ndim = nd;
    info->axes[nd] = '\0';
    if (!info->has_voxel)
        memset(info->voxel_nm, 0, sizeof(info->voxel_nm));
    extra_str(info, "dimension_order", order);
    return true;
}

/* ImageJ's description: `images`, `slices`, `channels`, `frames`, `unit`, `spacing`. */
static void tiff_imagej(const char *desc, struct fmt_info *info, double xres, double yres)
{
    long slices = 1, channels = 1, frames = 1;
    double spacing = 0;
    char unit[32] = "";
    for (const char *p = desc; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "slices=", 7) == 0)
            slices = strtol(p + 7, NULL, 10);
        else if (strncmp(p, "channels=", 9) == 0)
            channels = strtol(p + 9, NULL, 10);
        else if (strncmp(p, "frames=", 7) == 0)
            frames = strtol(p + 7, NULL, 10);
        else if (strncmp(p, "spacing=", 8) == 0)
            spacing = strtod(p + 8, NULL);
        else if (strncmp(p, "unit=", 5) == 0) {
            size_t k = 0;
            for (const char *q = p + 5; *q && *q != '\n' && k < sizeof(unit) - 1; q++)
                unit[k++] = *q;
            unit[k] = '\0';
        }
    }
    extra_str(info, "imagej", "yes");
    uint64_t y = info->shape[info->ndim - 2], x = info->shape[info->ndim - 1];
    int nd = 0;
    if (frames > 1)
        info->shape[nd] = (uint64_t)frames, info->axes[nd++] = 't';
    if (slices > 1)
        info->shape[nd] = (uint64_t)slices, info->axes[nd++] = 'z';
    if (channels > 1)
        info->shape[nd] = (uint64_t)channels, info->axes[nd++] = 'c';
    info->shape[nd] = y, info->axes[nd++] = 'y';
    info->shape[nd] = x, info->axes[nd++] = 'x';
    info->ndim = nd;
    info->axes[nd] = '\0';
    double f = strcmp(unit, "micron") == 0 ? 1e3 : unit_nm(unit);
    if (unit[0])
        extra_str(info, "unit", unit);
    if (f > 0 && xres > 0 && yres > 0) {
        info->has_voxel = true;
        memset(info->voxel_nm, 0, sizeof(info->voxel_nm));
        info->voxel_nm[nd - 1] = f / xres;
        info->voxel_nm[nd - 2] = f / yres;
        for (int i = 0; i < nd - 2; i++) {
            if (info->axes[i] == 'z' && spacing > 0)
                info->voxel_nm[i] = spacing * f;
            else if (info->axes[i] == 'z')
                info->has_voxel = false;
        }
    }
}

/* FEI/Thermo SEM text (tags 34682, 34680): [Scan] PixelWidth/PixelHeight in metres. */
static void tiff_fei(const char *text, struct fmt_info *info)
{
    double pw = 0, ph = 0, hv = 0;
    bool scan = false;
    char sysname[64] = "";
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (*p == '[')
            scan = strncmp(p, "[Scan]", 6) == 0;
        else if (scan && strncmp(p, "PixelWidth=", 11) == 0)
            pw = strtod(p + 11, NULL);
        else if (scan && strncmp(p, "PixelHeight=", 12) == 0)
            ph = strtod(p + 12, NULL);
        else if (strncmp(p, "HV=", 3) == 0 && hv == 0)
            hv = strtod(p + 3, NULL);
        else if (strncmp(p, "SystemType=", 11) == 0) {
            size_t k = 0;
            for (const char *q = p + 11; *q && *q != '\n' && *q != '\r' && k < 63; q++)
                sysname[k++] = *q;
            sysname[k] = '\0';
        }
    }
    extra_str(info, "vendor", "FEI");
    if (sysname[0])
        extra_str(info, "system", sysname);
    if (hv > 0)
        extra_num(info, "high_voltage_v", hv);
    if (pw > 0 && ph > 0 && info->ndim >= 2) {
        info->has_voxel = true;
        info->voxel_nm[info->ndim - 1] = pw * 1e9;
        info->voxel_nm[info->ndim - 2] = ph * 1e9;
        for (int i = 0; i < info->ndim - 2; i++)
            info->has_voxel = false; /* a stack's z step is not in these files */
    }
}

static const char *tiff_compression(uint64_t c)
{
    switch (c) {
    case 1:
        return "none";
    case 5:
        return "lzw";
    case 7:
        return "jpeg";
    case 8:
    case 32946:
        return "deflate";
    case 32773:
        return "packbits";
    case 50000:
        return "zstd";
    case 65000:
    case 65001:
    case 65002:
        return "eer";
    default:
        return "other";
    }
}

static int read_tiff(const struct fmt_src *s, struct fmt_info *info, char *why, size_t cap)
{
    unsigned char h[16];
    int rc = get(s, 0, h, 8);
    if (rc < 0)
        return fail(why, cap, rc, "TIFF: the header is cut short");
    struct tiff t = {s, h[0] == 'I', false};
    uint64_t first;
    if (u16(h + 2, t.le) == 43) {
        if ((rc = get(s, 0, h, 16)) < 0)
            return fail(why, cap, rc, "BigTIFF: the header is cut short");
        if (u16(h + 4, t.le) != 8)
            return fail(why, cap, -EM_EMALFORMED, "BigTIFF: offsets of %u bytes",
                        (unsigned)u16(h + 4, t.le));
        t.big = true;
        first = u64(h + 8, t.le);
    } else {
        first = u32(h + 4, t.le);
    }
    struct tiff_entry e[64];
    size_t n;
    uint64_t next;
    if ((rc = tiff_ifd(&t, first, e, 64, &n, &next)) < 0)
        return fail(why, cap, rc, "TIFF: the first page directory (at byte %llu) %s",
                    (unsigned long long)first,
                    rc == -EM_ETRUNCATED ? "is past the end" : "is malformed");
    const struct tiff_entry *w = tiff_find(e, n, 256), *l = tiff_find(e, n, 257),
                            *bps = tiff_find(e, n, 258), *cmp = tiff_find(e, n, 259),
                            *spp = tiff_find(e, n, 277), *sf = tiff_find(e, n, 339),
                            *desc = tiff_find(e, n, 270), *xr = tiff_find(e, n, 282),
                            *yr = tiff_find(e, n, 283), *ru = tiff_find(e, n, 296);
    if (!w || !l)
        return fail(why, cap, -EM_EMISSING, "TIFF: the first page has no width or length");
    uint64_t width = tiff_uint(&t, w), height = tiff_uint(&t, l);
    uint64_t bits = bps ? tiff_uint(&t, bps) : 1, samples = spp ? tiff_uint(&t, spp) : 1;
    uint64_t format = sf ? tiff_uint(&t, sf) : 1, comp = cmp ? tiff_uint(&t, cmp) : 1;
    /* Pages: follow the chain, guarding against loops by a bound and increasing offsets
     * are not required, so count against the bound and the file size. */
    uint64_t pages = 1, prev = first;
    while (next != 0) {
        if (pages >= FMT_MAX_PAGES || next == prev)
            return fail(why, cap, -EM_ELIMIT, "TIFF: more than %u pages, or a directory loop",
                        FMT_MAX_PAGES);
        struct tiff_entry tmp[1];
        size_t tn;
        uint64_t after;
        if ((rc = tiff_ifd(&t, next, tmp, 0, &tn, &after)) < 0)
            return fail(why, cap, rc, "TIFF: page %llu's directory (at byte %llu) %s",
                        (unsigned long long)pages + 1, (unsigned long long)next,
                        rc == -EM_ETRUNCATED ? "is past the end" : "is malformed");
        prev = next;
        next = after;
        pages++;
    }
    set_str(info->format, sizeof(info->format), t.big ? "bigtiff" : "tiff");
    set_str(info->compression, sizeof(info->compression), tiff_compression(comp));
    if (comp >= 65000 && comp <= 65002)
        set_str(info->format, sizeof(info->format), "eer");
    info->pages = pages;
    const char *kind = format == 3 ? "float" : format == 2 ? "int" : "uint";
    if (bits == 8 || bits == 16 || bits == 32 || bits == 64)
        snprintf(info->dtype, sizeof(info->dtype), "%s%u", kind, (unsigned)bits);
    else if (bits == 1)
        set_str(info->dtype, sizeof(info->dtype), "bool");
    int nd = 0;
    if (pages > 1)
        info->shape[nd] = pages, info->axes[nd++] = 'z';
    info->shape[nd] = height, info->axes[nd++] = 'y';
    info->shape[nd] = width, info->axes[nd++] = 'x';
    if (samples > 1)
        info->shape[nd] = samples, info->axes[nd++] = 's';
    info->ndim = nd;
    info->axes[nd] = '\0';
    extra_str(info, "byte_order", t.le ? "little" : "big");
    extra_num(info, "compression_code", (double)comp);
    extra_num(info, "bits_per_sample", (double)bits);
    /* Resolution tags: pixels per unit (2 inch, 3 cm); only a fallback for the pixel size. */
    double xres = xr ? tiff_rational(&t, xr) : 0, yres = yr ? tiff_rational(&t, yr) : 0;
    uint64_t unit = ru ? tiff_uint(&t, ru) : 2;
    unsigned char *text = NULL;
    size_t tl = 0;
    bool described = false;
    if (desc && tiff_bytes(&t, desc, 1u << 24, &text, &tl) == 0) {
        const char *d = (const char *)text;
        if (tiff_ome(d, info))
            described = true;
        else if (strncmp(d, "ImageJ=", 7) == 0) {
            tiff_imagej(d, info, xres, yres);
            described = true;
        }
        free(text);
        text = NULL;
    }
    const struct tiff_entry *fei = tiff_find(e, n, 34682);
    if (!fei)
        fei = tiff_find(e, n, 34680);
    if (fei && tiff_bytes(&t, fei, 1u << 20, &text, &tl) == 0) {
        tiff_fei((const char *)text, info);
        described = true;
        free(text);
    }
    if (!described && (unit == 3 || unit == 2) && xres > 0 && yres > 0 && nd >= 2) {
        /* Only a centimetre resolution is taken as a pixel size; dpi is a print size. */
        if (unit == 3) {
            int yi = info->axes[nd - 1] == 's' ? nd - 3 : nd - 2;
            info->voxel_nm[yi + 1] = 1e7 / xres;
            info->voxel_nm[yi] = 1e7 / yres;
            info->has_voxel = pages == 1 && samples == 1;
        }
    }
    if (!info->has_voxel)
        memset(info->voxel_nm, 0, sizeof(info->voxel_nm));
    return 0;
}

int fmt_read(const struct fmt_src *src, struct fmt_info *out, char *why, size_t cap)
{
    info_init(out);
    if (why && cap)
        why[0] = '\0';
    unsigned char head[1024];
    size_t n = src->size < sizeof(head) ? (size_t)src->size : sizeof(head);
    int rc = get(src, 0, head, n);
    if (rc < 0)
        return fail(why, cap, rc, "cannot read the first bytes");
    const char *f = fmt_sniff(head, n);
    if (!f)
        return fail(why, cap, -EM_EWRONGKIND,
                    "not an MRC, DM3/DM4 or TIFF file (no known signature in its first bytes)");
    if (strcmp(f, "mrc") == 0)
        return read_mrc(src, out, why, cap);
    if (f[0] == 'd')
        return read_dm(src, out, why, cap);
    return read_tiff(src, out, why, cap);
}

/* ---- Zarr v2 and N5 metadata ---- */

static bool json_uint_array(const cJSON *a, uint64_t *v, int *n)
{
    if (!cJSON_IsArray(a))
        return false;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (k >= FMT_MAX_DIMS || !cJSON_IsNumber(it) || it->valuedouble < 0 ||
            it->valuedouble > 9.0e15 || it->valuedouble != floor(it->valuedouble))
            return false;
        v[k++] = (uint64_t)it->valuedouble;
    }
    *n = k;
    return true;
}

/* NumPy's dtype string (`<u2`, `|u1`, `>f4`, `|b1`, `<U13`, `|O`) to a name. */
static bool numpy_dtype(const char *s, char *out, size_t cap, char *order)
{
    if (!s || strlen(s) < 2)
        return false;
    *order = s[0];
    char kind = s[1];
    long size = strtol(s + 2, NULL, 10);
    switch (kind) {
    case 'u':
    case 'i':
        if (size != 1 && size != 2 && size != 4 && size != 8)
            return false;
        snprintf(out, cap, "%s%ld", kind == 'u' ? "uint" : "int", size * 8);
        return true;
    case 'f':
        if (size != 2 && size != 4 && size != 8)
            return false;
        snprintf(out, cap, "float%ld", size * 8);
        return true;
    case 'c':
        snprintf(out, cap, "complex%ld", size * 8);
        return true;
    case 'b':
        snprintf(out, cap, "bool");
        return true;
    case 'U':
    case 'S':
        snprintf(out, cap, "string");
        return true;
    case 'O':
        snprintf(out, cap, "object");
        return true;
    default:
        return false;
    }
}

#define FMT_JSON_MAX (16u << 20)

static cJSON *parse_json(const char *text, size_t n, const char *what, char *why, size_t cap)
{
    if (n > FMT_JSON_MAX) {
        fail(why, cap, -EM_ELIMIT, "%s: larger than %u bytes", what, FMT_JSON_MAX);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, n);
    if (!j || !cJSON_IsObject(j)) {
        fail(why, cap, -EM_EMALFORMED, "%s: not a JSON object", what);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* OME-NGFF multiscales[0] of the group: axes and the `path` dataset's scale. */
static void ngff_scales(cJSON *attrs, const char *path, struct fmt_info *info)
{
    const cJSON *ms = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(attrs, "multiscales"), 0);
    if (!ms)
        return;
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(ms, "axes");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(ms, "version");
    if (cJSON_GetArraySize(axes) != info->ndim)
        return;
    set_str(info->format, sizeof(info->format), "ome-zarr");
    if (cJSON_IsString(ver))
        extra_str(info, "ngff_version", ver->valuestring);
    double unit_f[FMT_MAX_DIMS];
    int i = 0;
    const cJSON *ax;
    cJSON_ArrayForEach(ax, axes)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ax, "name"),
                    *unit = cJSON_GetObjectItemCaseSensitive(ax, "unit");
        info->axes[i] = cJSON_IsString(name) && name->valuestring[0] ? name->valuestring[0] : '?';
        unit_f[i] = cJSON_IsString(unit) ? unit_nm(unit->valuestring) : 0;
        i++;
    }
    info->axes[i] = '\0';
    const cJSON *ds;
    cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(ms, "datasets"))
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(ds, "path");
        if (!cJSON_IsString(p) || !path || strcmp(p->valuestring, path) != 0)
            continue;
        const cJSON *tr;
        cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(ds, "coordinateTransformations"))
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(tr, "type");
            const cJSON *scale = cJSON_GetObjectItemCaseSensitive(tr, "scale");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "scale") != 0 ||
                cJSON_GetArraySize(scale) != info->ndim)
                continue;
            info->has_voxel = true;
            for (int k = 0; k < info->ndim; k++) {
                const cJSON *v = cJSON_GetArrayItem(scale, k);
                double f = unit_f[k];
                if (info->axes[k] == 'c' || info->axes[k] == 't') {
                    info->voxel_nm[k] = 0;
                    continue;
                }
                if (!cJSON_IsNumber(v) || !(f > 0)) {
                    info->has_voxel = false;
                    break;
                }
                info->voxel_nm[k] = v->valuedouble * f;
            }
        }
    }
    if (!info->has_voxel)
        memset(info->voxel_nm, 0, sizeof(info->voxel_nm));
}

static const char *codec_name(const cJSON *c)
{
    if (!c || cJSON_IsNull(c))
        return "none";
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
    if (!id)
        id = cJSON_GetObjectItemCaseSensitive(c, "type");
    return cJSON_IsString(id) ? id->valuestring : "unknown";
}

int fmt_read_zarray(const char *zarray, size_t n, const char *zattrs, size_t an, const char *path,
                    struct fmt_info *out, char *why, size_t cap)
{
    info_init(out);
    if (why && cap)
        why[0] = '\0';
    cJSON *j = parse_json(zarray, n, ".zarray", why, cap);
    if (!j)
        return why && strstr(why, "larger") ? -EM_ELIMIT : -EM_EMALFORMED;
    int rc = 0;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "zarr_format");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *chunks = cJSON_GetObjectItemCaseSensitive(j, "chunks");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(j, "order");
    uint64_t ch[FMT_MAX_DIMS];
    int nch = 0;
    char byte_order = 0;
    if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 2) {
        rc = fail(why, cap, -EM_EWRONGKIND, ".zarray: zarr_format is not 2");
    } else if (!json_uint_array(shape, out->shape, &out->ndim) || out->ndim == 0) {
        rc = fail(why, cap, -EM_EMALFORMED, ".zarray: shape is not a list of sizes");
    } else if (!json_uint_array(chunks, ch, &nch) || nch != out->ndim) {
        rc = fail(why, cap, -EM_EMALFORMED, ".zarray: chunks do not match the shape");
    } else if (!cJSON_IsString(dtype) ||
               !numpy_dtype(dtype->valuestring, out->dtype, sizeof(out->dtype), &byte_order)) {
        rc = fail(why, cap, -EM_EMALFORMED, ".zarray: dtype %s is not one this reader knows",
                  cJSON_IsString(dtype) ? dtype->valuestring : "(missing)");
    }
    for (int i = 0; rc == 0 && i < nch; i++)
        if (ch[i] == 0)
            rc = fail(why, cap, -EM_EMALFORMED, ".zarray: a chunk size of 0");
    if (rc == 0) {
        set_str(out->format, sizeof(out->format), "zarr");
        set_str(out->compression, sizeof(out->compression),
                codec_name(cJSON_GetObjectItemCaseSensitive(j, "compressor")));
        static const char names[] = "tczyx";
        for (int i = 0; i < out->ndim; i++) {
            int k = 5 - out->ndim + i;
            out->axes[i] = k >= 0 ? names[k] : '?';
        }
        out->axes[out->ndim] = '\0';
        cJSON *e = extra(out);
        if (e) {
            cJSON *c = cJSON_AddArrayToObject(e, "chunks");
            for (int i = 0; c && i < nch; i++)
                cJSON_AddItemToArray(c, cJSON_CreateNumber((double)ch[i]));
            cJSON_AddStringToObject(e, "dtype", dtype->valuestring);
            cJSON_AddStringToObject(e, "order", cJSON_IsString(order) ? order->valuestring : "C");
            const cJSON *sep = cJSON_GetObjectItemCaseSensitive(j, "dimension_separator");
            cJSON_AddStringToObject(e, "dimension_separator",
                                    cJSON_IsString(sep) ? sep->valuestring : ".");
            const cJSON *fill = cJSON_GetObjectItemCaseSensitive(j, "fill_value");
            cJSON *fc = fill ? cJSON_Duplicate(fill, true) : cJSON_CreateNull();
            if (fc)
                cJSON_AddItemToObject(e, "fill_value", fc);
            uint64_t nchunks = 1;
            for (int i = 0; i < nch; i++)
                nchunks *= (out->shape[i] + ch[i] - 1) / ch[i];
            cJSON_AddNumberToObject(e, "chunk_count", (double)nchunks);
        }
        if (zattrs && an) {
            cJSON *a = parse_json(zattrs, an, ".zattrs", NULL, 0);
            if (a)
                ngff_scales(a, path, out);
            cJSON_Delete(a);
        }
    }
    cJSON_Delete(j);
    return rc;
}

static const char *n5_dtype(const char *t)
{
    static const char *known[] = {"uint8", "uint16", "uint32", "uint64",  "int8",
                                  "int16", "int32",  "int64",  "float32", "float64"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(t, known[i]) == 0)
            return known[i];
    return NULL;
}

int fmt_read_n5(const char *attrs, size_t n, const char *root_attrs, size_t rn,
                struct fmt_info *out, char *why, size_t cap)
{
    info_init(out);
    if (why && cap)
        why[0] = '\0';
    cJSON *j = parse_json(attrs, n, "attributes.json", why, cap);
    if (!j)
        return why && strstr(why, "larger") ? -EM_ELIMIT : -EM_EMALFORMED;
    int rc = 0;
    uint64_t dims[FMT_MAX_DIMS], block[FMT_MAX_DIMS];
    int nd = 0, nb = 0;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dataType");
    const char *dtype = cJSON_IsString(dt) ? n5_dtype(dt->valuestring) : NULL;
    if (!json_uint_array(cJSON_GetObjectItemCaseSensitive(j, "dimensions"), dims, &nd) || !nd) {
        rc = fail(why, cap, -EM_EWRONGKIND, "attributes.json: no dimensions (not an N5 dataset)");
    } else if (!json_uint_array(cJSON_GetObjectItemCaseSensitive(j, "blockSize"), block, &nb) ||
               nb != nd) {
        rc = fail(why, cap, -EM_EMALFORMED, "attributes.json: blockSize does not match dimensions");
    } else if (!dtype) {
        rc = fail(why, cap, -EM_EMALFORMED, "attributes.json: dataType %s is not an N5 type",
                  cJSON_IsString(dt) ? dt->valuestring : "(missing)");
    }
    for (int i = 0; rc == 0 && i < nb; i++)
        if (block[i] == 0)
            rc = fail(why, cap, -EM_EMALFORMED, "attributes.json: a block size of 0");
    if (rc == 0) {
        set_str(out->format, sizeof(out->format), "n5");
        set_str(out->dtype, sizeof(out->dtype), dtype);
        const cJSON *comp = cJSON_GetObjectItemCaseSensitive(j, "compression");
        const cJSON *ctype = cJSON_GetObjectItemCaseSensitive(j, "compressionType");
        set_str(out->compression, sizeof(out->compression),
                comp                    ? codec_name(comp)
                : cJSON_IsString(ctype) ? ctype->valuestring
                                        : "raw");
        if (strcmp(out->compression, "raw") == 0)
            set_str(out->compression, sizeof(out->compression), "none");
        /* N5 lists the fastest axis first: reversed into C order. */
        out->ndim = nd;
        static const char names[] = "xyzct";
        for (int i = 0; i < nd; i++) {
            out->shape[nd - 1 - i] = dims[i];
            out->axes[nd - 1 - i] = i < 5 ? names[i] : '?';
        }
        out->axes[nd] = '\0';
        cJSON *e = extra(out);
        if (e) {
            cJSON *b = cJSON_AddArrayToObject(e, "block_size");
            for (int i = nd - 1; b && i >= 0; i--)
                cJSON_AddItemToArray(b, cJSON_CreateNumber((double)block[i]));
            uint64_t nblocks = 1;
            for (int i = 0; i < nd; i++)
                nblocks *= (dims[i] + block[i] - 1) / block[i];
            cJSON_AddNumberToObject(e, "block_count", (double)nblocks);
        }
        /* n5-viewer: root resolution × the dataset's downsampling factors, in root units. */
        cJSON *root =
            root_attrs && rn ? parse_json(root_attrs, rn, "attributes.json", NULL, 0) : NULL;
        const cJSON *res = root ? cJSON_GetObjectItemCaseSensitive(root, "resolution") : NULL;
        const cJSON *units = root ? cJSON_GetObjectItemCaseSensitive(root, "units") : NULL;
        const cJSON *axes = root ? cJSON_GetObjectItemCaseSensitive(root, "axes") : NULL;
        const cJSON *fac = cJSON_GetObjectItemCaseSensitive(j, "downsamplingFactors");
        if (!res)
            res = cJSON_GetObjectItemCaseSensitive(j, "resolution");
        if (cJSON_GetArraySize(res) == nd) {
            out->has_voxel = true;
            for (int i = 0; i < nd; i++) {
                const cJSON *r = cJSON_GetArrayItem(res, i), *f = cJSON_GetArrayItem(fac, i),
                            *u = cJSON_GetArrayItem(units, i), *a = cJSON_GetArrayItem(axes, i);
                double uf = cJSON_IsString(u) ? unit_nm(u->valuestring) : 1; /* default nm */
                double fv = cJSON_IsNumber(f) ? f->valuedouble : 1;
                if (cJSON_IsString(a) && a->valuestring[0])
                    out->axes[nd - 1 - i] = a->valuestring[0];
                if (!cJSON_IsNumber(r) || !(uf > 0)) {
                    out->has_voxel = false;
                    continue;
                }
                out->voxel_nm[nd - 1 - i] = r->valuedouble * fv * uf;
            }
            if (!out->has_voxel)
                memset(out->voxel_nm, 0, sizeof(out->voxel_nm));
        }
        cJSON_Delete(root);
    }
    cJSON_Delete(j);
    return rc;
}

/* ---- JSON ---- */

cJSON *fmt_info_to_json(const struct fmt_info *info)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "format", info->format);
    if (info->ndim > 0) {
        cJSON *s = cJSON_AddArrayToObject(o, "volume_shape");
        for (int i = 0; s && i < info->ndim; i++)
            cJSON_AddItemToArray(s, cJSON_CreateNumber((double)info->shape[i]));
        cJSON_AddStringToObject(o, "axes", info->axes);
    }
    if (info->dtype[0])
        cJSON_AddStringToObject(o, "data_type", info->dtype);
    if (info->has_voxel) {
        cJSON *v = cJSON_AddArrayToObject(o, "voxel_size_nm");
        for (int i = 0; v && i < info->ndim; i++) {
            /* 6 significant digits: the values come from float32 fields. */
            char text[32];
            snprintf(text, sizeof(text), "%.6g", info->voxel_nm[i]);
            cJSON_AddItemToArray(v, cJSON_CreateNumber(strtod(text, NULL)));
        }
    }
    if (info->compression[0])
        cJSON_AddStringToObject(o, "compression", info->compression);
    if (info->pages)
        cJSON_AddNumberToObject(o, "pages", (double)info->pages);
    if (info->extra) {
        cJSON *d = cJSON_Duplicate(info->extra, true);
        if (d)
            cJSON_AddItemToObject(o, "details", d);
    }
    return o;
}
