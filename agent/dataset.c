/* A loader's output directory as a dataset entity (dataset.h). */
#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_error.h"
#include "fsio.h"
#include "imagehdr.h"

bool dataset_is_record(const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    return strcmp(base, DATASET_RECORD_NAME) == 0;
}

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct fsio_entry *)a)->name, ((const struct fsio_entry *)b)->name);
}

/* Whether the directory `path` is a Zarr or N5 store (what image_header() reads). */
static bool is_store(const char *path)
{
    static const char *const marks[] = {".zarray", ".zattrs", ".zgroup", "attributes.json"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        char *p = fsio_join(path, marks[i]);
        struct fsio_stat st;
        bool there = p && fsio_stat(p, &st) == 0 && st.type == FSIO_FILE;
        free(p);
        if (there)
            return true;
    }
    return false;
}

/* The main volume's name: files.volume's (or files.raw's) last component when it is in
 * the directory, else the first file with a header of two or more dimensions. */
static const cJSON *main_volume(const cJSON *record, const cJSON *files)
{
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(record, "files");
    const char *names[] = {str_of(fl, "volume"), str_of(fl, "raw")};
    for (size_t i = 0; i < 2; i++) {
        if (!names[i])
            continue;
        const char *base = strrchr(names[i], '/');
        base = base ? base + 1 : names[i];
        const cJSON *f;
        cJSON_ArrayForEach(f, files)
        {
            const char *n = str_of(f, "name");
            if (n && strcmp(n, base) == 0 && cJSON_GetObjectItemCaseSensitive(f, "header"))
                return f;
        }
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(f, "header");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(h, "volume_shape");
        if (cJSON_GetArraySize(shape) >= 2)
            return f;
    }
    return NULL;
}

/* A JSON value as short text for a message. */
static void brief(const cJSON *v, char *buf, size_t cap)
{
    char *t = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, cap, "%s", t ? t : "null");
    if (strlen(buf) == cap - 1 && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
    cJSON_free(t);
}

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-3 * fmax(fabs(a), fabs(b)) + 1e-9;
}

/* The record's voxel size (an array, or {x, y, z}) against the header's (in its axes'
 * order). */
static bool same_voxel(const cJSON *rec, const cJSON *hdr, const char *axes)
{
    int n = cJSON_GetArraySize(hdr);
    if (cJSON_IsObject(rec)) {
        for (int i = 0; axes && axes[i] && i < n; i++) {
            char k[2] = {axes[i], '\0'};
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, k);
            if (cJSON_IsNumber(v) && !near(v->valuedouble, cJSON_GetArrayItem(hdr, i)->valuedouble))
                return false;
        }
        return true;
    }
    if (!cJSON_IsArray(rec) || cJSON_GetArraySize(rec) != n)
        return false;
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(rec, i), *b = cJSON_GetArrayItem(hdr, i);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !near(a->valuedouble, b->valuedouble))
            return false;
    }
    return true;
}

/* What the record's metadata.core claims against what the file's header says. */
static int compare(const cJSON *record, const char *file, const cJSON *hdr, cJSON *out)
{
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(record, "metadata"), "core");
    static const struct {
        const char *rec, *hdr;
    } pairs[] = {{"volume_shape", "volume_shape"},
                 {"data_type", "data_type"},
                 {"voxel_size_nm", "voxel_size_nm"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(core, pairs[i].rec);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(hdr, pairs[i].hdr);
        if (!a || !b || cJSON_IsNull(a) || cJSON_IsNull(b))
            continue;
        bool same = i == 2 ? same_voxel(a, b, str_of(hdr, "axes")) : cJSON_Compare(a, b, true);
        if (same)
            continue;
        char x[200], y[200], msg[600];
        brief(a, x, sizeof(x));
        brief(b, y, sizeof(y));
        snprintf(msg, sizeof(msg), "%s: the record says %s, %s has %s", pairs[i].rec, x, file, y);
        if (!cJSON_AddItemToArray(out, cJSON_CreateString(msg)))
            return -EM_ENOMEM;
    }
    return 0;
}

/* The files beside the record: name, size, and the header or why there is none. */
static int list_files(const char *dir, cJSON *files)
{
    struct fsio_entry *e = NULL;
    size_t n = 0;
    int rc = fsio_list(dir, &e, &n);
    if (rc < 0)
        return rc;
    qsort(e, n, sizeof(*e), cmp_name);
    size_t taken = 0;
    for (size_t i = 0; i < n && rc == 0 && taken < DATASET_MAX_FILES; i++) {
        /* Hidden names are the loader's own (.partial/, temporary records). */
        if (e[i].name[0] == '.' || strcmp(e[i].name, DATASET_RECORD_NAME) == 0)
            continue;
        char *path = fsio_join(dir, e[i].name);
        if (!path) {
            rc = -EM_ENOMEM;
            break;
        }
        struct fsio_stat st;
        bool file = e[i].type == FSIO_FILE;
        if ((!file && !(e[i].type == FSIO_DIR && is_store(path))) || fsio_stat(path, &st) < 0) {
            free(path);
            continue;
        }
        cJSON *f = cJSON_CreateObject();
        if (!f || !cJSON_AddItemToArray(files, f) ||
            !cJSON_AddStringToObject(f, "name", e[i].name) ||
            (file && !cJSON_AddNumberToObject(f, "size", (double)st.size))) {
            free(path);
            rc = -EM_ENOMEM;
            break;
        }
        taken++;
        cJSON *hdr = NULL;
        char why[512];
        int hr = image_header(path, &hdr, why, sizeof(why));
        free(path);
        if (hr == 0)
            cJSON_AddItemToObject(f, "header", hdr);
        else if (hr == -EM_ENOMEM)
            rc = hr;
        else if (hr != -EM_EWRONGKIND || !file) /* not an image: nothing to say */
            cJSON_AddStringToObject(f, "error", why[0] ? why : em_strerror(hr));
    }
    fsio_entries_free(e, n);
    return rc;
}

int dataset_read(const char *root, const char *rel, cJSON **key, cJSON **data, char *why,
                 size_t cap)
{
    *key = *data = NULL;
    why[0] = '\0';
    char *path = fsio_join(root, rel);
    if (!path)
        return -EM_ENOMEM;
    struct fsio_buf b = {0};
    int rc = fsio_read(path, DATASET_RECORD_MAX, &b, NULL);
    if (rc < 0) {
        free(path);
        snprintf(why, cap, "%s",
                 rc == -EM_ELIMIT ? "larger than 16 MiB: not a loader record" : em_strerror(rc));
        return rc;
    }
    cJSON *record = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    fsio_buf_free(&b);
    if (!record) {
        free(path);
        snprintf(why, cap, "not valid JSON (a loader writes its record whole, then renames it)");
        return -EM_EMALFORMED;
    }
    const char *id = str_of(record, "id"), *source = str_of(record, "source"),
               *status = str_of(record, "status");
    if (!cJSON_IsObject(record) || !id || !source || !status) {
        free(path);
        cJSON_Delete(record);
        return 0;
    }
    if (!id[0] || strlen(id) > 71 || !source[0] || strlen(source) > 63) {
        free(path);
        cJSON_Delete(record);
        snprintf(why, cap, "the record's id (1 to 71 characters) or source (1 to 63) is unusable");
        return -EM_EVALUE;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0'; /* path is now the dataset's directory */
    const char *rs = strrchr(rel, '/');
    char reldir[4096];
    if (rs)
        snprintf(reldir, sizeof(reldir), "%.*s", (int)(rs - rel), rel);
    else
        snprintf(reldir, sizeof(reldir), ".");
    cJSON *k = cJSON_CreateObject(), *d = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray(), *mism = cJSON_CreateArray();
    rc = k && d && files && mism && cJSON_AddStringToObject(k, "loader", source) &&
                 cJSON_AddStringToObject(k, "dataset_id", id) &&
                 cJSON_AddStringToObject(d, "loader", source) &&
                 cJSON_AddStringToObject(d, "dataset_id", id) &&
                 cJSON_AddStringToObject(d, "status", status) &&
                 cJSON_AddStringToObject(d, "dir", reldir)
             ? 0
             : -EM_ENOMEM;
    if (rc == 0) {
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(record, "additional_metadata"), "job_id");
        cJSON_AddItemToObject(d, "job_id",
                              cJSON_IsNumber(job) && job->valuedouble >= 1
                                  ? cJSON_CreateNumber(floor(job->valuedouble))
                                  : cJSON_CreateNull());
        rc = list_files(path, files);
        if (rc < 0 && rc != -EM_ENOMEM) {
            snprintf(why, cap, "%s: cannot list the directory: %s", reldir, em_strerror(rc));
            rc = -EM_EIO;
        }
    }
    if (rc == 0) {
        const cJSON *vol = main_volume(record, files);
        const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(vol, "header");
        if (vol)
            rc = compare(record, str_of(vol, "name"), hdr, mism);
        cJSON_AddItemToObject(d, "record", record);
        record = NULL;
        cJSON_AddItemToObject(d, "files", files);
        files = NULL;
        cJSON_AddItemToObject(d, "volume",
                              vol ? cJSON_CreateString(str_of(vol, "name")) : cJSON_CreateNull());
        cJSON *main = NULL;
        if (hdr && (main = cJSON_CreateObject())) {
            static const char *const keep[] = {"format", "volume_shape", "axes", "data_type",
                                               "voxel_size_nm"};
            for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(hdr, keep[i]);
                if (v)
                    cJSON_AddItemToObject(main, keep[i], cJSON_Duplicate(v, true));
            }
        }
        cJSON_AddItemToObject(d, "header", main ? main : cJSON_CreateNull());
        cJSON_AddItemToObject(d, "mismatches", mism);
        mism = NULL;
    }
    free(path);
    cJSON_Delete(record);
    cJSON_Delete(files);
    cJSON_Delete(mism);
    if (rc < 0) {
        cJSON_Delete(k);
        cJSON_Delete(d);
        if (!why[0])
            snprintf(why, cap, "%s", em_strerror(rc));
        return rc;
    }
    *key = k;
    *data = d;
    return 1;
}
