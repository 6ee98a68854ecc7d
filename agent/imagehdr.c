/* imagehdr.c — the file system side of the image header readers (imagehdr.h). */
#include "imagehdr.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "em_compat.h"
#include "em_error.h"
#include "formats.h"
#include "fsio.h"

struct file_src {
    struct fmt_src src;
    uv_file fd;
};

static long file_read_at(void *ctx, uint64_t off, void *buf, size_t len)
{
    struct file_src *f = ctx;
    size_t done = 0;
    while (done < len) {
        uv_fs_t req;
        uv_buf_t b = uv_buf_init((char *)buf + done,
                                 (unsigned)(len - done > (1u << 30) ? (1u << 30) : len - done));
        int n = uv_fs_read(NULL, &req, f->fd, &b, 1, (int64_t)(off + done), NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0)
            return fsio_error(n);
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (long)done;
}

#define META_MAX (16u << 20)

/* The text of DIR/NAME into b (0), or a negative EM_E*. */
static int read_meta(const char *dir, const char *name, struct fsio_buf *b)
{
    char *p = fsio_join(dir, name);
    int rc = p ? fsio_read(p, META_MAX, b, NULL) : -EM_ENOMEM;
    free(p);
    return rc;
}

static bool is_dir(const char *path)
{
    struct fsio_stat st;
    return fsio_stat(path, &st) == 0 && st.type == FSIO_DIR;
}

/* A Zarr array (DIR/.zarray, with the group's .zattrs when `parent` is given) or an N5
 * dataset (DIR/attributes.json, with the root's when given): its header as JSON. */
static int image_meta(const char *dir, const char *parent, const char *rel, bool zarr, cJSON **out,
                      char *why, size_t cap)
{
    const char *name = zarr ? ".zarray" : "attributes.json";
    struct fsio_buf a = {0}, z = {0};
    int rc = read_meta(dir, name, &a);
    if (rc < 0) {
        snprintf(why, cap, "%s/%s: %s", dir, name, em_strerror(rc));
        return rc;
    }
    if (parent)
        read_meta(parent, zarr ? ".zattrs" : "attributes.json", &z);
    struct fmt_info info;
    rc = zarr ? fmt_read_zarray(a.data, a.len, z.data, z.len, rel, &info, why, cap)
              : fmt_read_n5(a.data, a.len, z.data, z.len, &info, why, cap);
    if (rc == 0 && !(*out = fmt_info_to_json(&info)))
        rc = -EM_ENOMEM;
    fmt_info_free(&info);
    fsio_buf_free(&a);
    fsio_buf_free(&z);
    return rc;
}

/* A multiscale group: {"format", "levels": [each level's header with its "path"]}. */
static int image_levels(const char *dir, bool zarr, cJSON **out, char *why, size_t cap)
{
    struct fsio_buf g = {0};
    cJSON *paths = cJSON_CreateArray();
    if (!paths)
        return -EM_ENOMEM;
    if (zarr && read_meta(dir, ".zattrs", &g) == 0) {
        cJSON *a = cJSON_ParseWithLength(g.data, g.len);
        const cJSON *ms = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "multiscales"), 0);
        const cJSON *ds;
        cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(ms, "datasets"))
        {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(ds, "path");
            if (cJSON_IsString(p))
                cJSON_AddItemToArray(paths, cJSON_CreateString(p->valuestring));
        }
        cJSON_Delete(a);
    } else if (!zarr) {
        /* n5-viewer: datasets s0, s1, … */
        for (int i = 0; i < 64; i++) {
            char name[16], *p;
            snprintf(name, sizeof(name), "s%d", i);
            if (!(p = fsio_join(dir, name)) || !is_dir(p)) {
                free(p);
                break;
            }
            free(p);
            cJSON_AddItemToArray(paths, cJSON_CreateString(name));
        }
    }
    fsio_buf_free(&g);
    const char *key = "levels";
    if (cJSON_GetArraySize(paths) == 0) {
        /* A plain group: the arrays (datasets) directly inside it. */
        struct fsio_entry *e = NULL;
        size_t n = 0;
        if (fsio_list(dir, &e, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                char *sub = e[i].type == FSIO_DIR ? fsio_join(dir, e[i].name) : NULL;
                char *meta = sub ? fsio_join(sub, zarr ? ".zarray" : "attributes.json") : NULL;
                struct fsio_stat st;
                if (meta && fsio_stat(meta, &st) == 0)
                    cJSON_AddItemToArray(paths, cJSON_CreateString(e[i].name));
                free(sub), free(meta);
            }
            fsio_entries_free(e, n);
        }
        key = "arrays";
    }
    if (cJSON_GetArraySize(paths) == 0) {
        cJSON_Delete(paths);
        snprintf(why, cap, "%s: neither an array nor a multiscale group", dir);
        return -EM_EWRONGKIND;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *fmt = o ? cJSON_AddStringToObject(o, "format", zarr ? "zarr" : "n5") : NULL;
    cJSON *levels = fmt ? cJSON_AddArrayToObject(o, key) : NULL;
    int rc = levels ? 0 : -EM_ENOMEM;
    const cJSON *p;
    const char *format = zarr ? "zarr" : "n5";
    cJSON_ArrayForEach(p, paths)
    {
        if (rc < 0)
            break;
        char *sub = fsio_join(dir, p->valuestring);
        cJSON *one = NULL;
        rc = sub ? image_meta(sub, dir, p->valuestring, zarr, &one, why, cap) : -EM_ENOMEM;
        free(sub);
        if (rc == -EM_EWRONGKIND && strcmp(key, "arrays") == 0) {
            rc = 0; /* a subgroup, not an array: left out */
            continue;
        }
        if (rc == 0) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(one, "format");
            if (cJSON_IsString(f))
                format = strcmp(f->valuestring, "ome-zarr") == 0 ? "ome-zarr" : format;
            cJSON_AddStringToObject(one, "path", p->valuestring);
            cJSON_AddItemToArray(levels, one);
        }
    }
    cJSON_Delete(paths);
    if (rc < 0) {
        cJSON_Delete(o);
        return rc;
    }
    cJSON_SetValuestring(fmt, format);
    *out = o;
    return 0;
}

int image_header(const char *path, cJSON **out, char *why, size_t cap)
{
    why[0] = '\0';
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *dir = NULL;
    if (strcmp(base, ".zarray") == 0 || strcmp(base, "attributes.json") == 0 ||
        strcmp(base, ".zattrs") == 0)
        dir = base == path ? strdup(".") : em_strndup(path, (size_t)(base - path - 1));
    else if (is_dir(path))
        dir = strdup(path);
    if (dir) {
        char *za = fsio_join(dir, ".zarray"), *n5 = fsio_join(dir, "attributes.json");
        struct fsio_stat st;
        int rc;
        if (za && fsio_stat(za, &st) == 0)
            rc = image_meta(dir, NULL, NULL, true, out, why, cap);
        else if (n5 && fsio_stat(n5, &st) == 0) {
            rc = image_meta(dir, NULL, NULL, false, out, why, cap);
            if (rc == -EM_EWRONGKIND) /* a root: its datasets */
                rc = image_levels(dir, false, out, why, cap);
        } else {
            rc = image_levels(dir, true, out, why, cap);
        }
        free(za), free(n5), free(dir);
        return rc;
    }
    uv_fs_t req;
    int fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        snprintf(why, cap, "cannot read: %s", em_strerror(fsio_error(fd)));
        return fsio_error(fd);
    }
    struct fsio_stat st;
    int rc = fsio_stat(path, &st);
    struct file_src f = {{file_read_at, rc == 0 ? st.size : 0, NULL}, fd};
    f.src.ctx = &f;
    unsigned char gz[2];
    if (rc == 0 && st.size >= 2 && file_read_at(&f, 0, gz, 2) == 2 && gz[0] == 0x1f &&
        gz[1] == 0x8b) {
        snprintf(why, cap, "gzip-compressed: decompress it first (gunzip -k)");
        rc = -EM_EWRONGKIND;
    } else if (rc == 0) {
        struct fmt_info info;
        rc = fmt_read(&f.src, &info, why, cap);
        if (rc == 0 && !(*out = fmt_info_to_json(&info)))
            rc = -EM_ENOMEM;
        fmt_info_free(&info);
    }
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return rc;
}
