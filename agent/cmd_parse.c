/* em-agent parse KIND FILE: one EPU file to one JSON object (DESIGN §4). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "emopt.h"
#include "log.h"
#include "em_error.h"
#include "epu.h"
#include "formats.h"
#include "fsio.h"

#define PARSE_MAX_FILE (256u << 20)

static const char parse_usage[] =
    "Usage: em-agent parse [--pretty] KIND FILE\n"
    "\n"
    "Parse one EPU file and print it as one JSON object on stdout.\n"
    "\n"
    "KIND is one of:\n"
    "  session              EpuSession.dm\n"
    "  atlas                Sample<k>/Atlas/Atlas.dm\n"
    "  gridsquare-metadata  Metadata/GridSquare_<gs>.dm\n"
    "  gridsquare           Images-Disc<N>/GridSquare_<gs>/GridSquare_<date>_<time>.xml\n"
    "  foilhole             .../FoilHoles/FoilHole_<fh>_<date>_<time>.xml\n"
    "  micrograph           .../Data/FoilHole_<fh>_Data_<area>_<n>_<date>_<time>.xml\n"
    "  image                the header of an image or volume: MRC/CCP4, DM3/DM4,\n"
    "                       TIFF/BigTIFF (OME-TIFF, ImageJ, FEI SEM, EER), a Zarr v2\n"
    "                       array or OME-NGFF group, an N5 dataset or multiscale group\n"
    "                       (FILE is then its directory): shape, type, voxel size in nm\n"
    "  auto                 tell the kind from the file's path (EPU names), else image\n"
    "\n"
    "Options:\n"
    "  --pretty   indent the JSON\n"
    "  -h, --help show this help\n"
    "\n"
    "Exit status: 0 parsed; 1 the file is malformed, truncated, empty, hostile or of\n"
    "another kind, or cannot be read (\"em-agent: FILE:LINE: reason\" on stderr); 2 usage\n"
    "error.\n";

/* ---- image headers (parsers/formats.h), the file system side ---- */

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

/* The header of the image or volume at `path` (a file, or a Zarr/N5 directory). */
static int image_header(const char *path, cJSON **out, char *why, size_t cap)
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

static int print_json(const char *path, cJSON *json, bool pretty)
{
    char *text = json ? (pretty ? cJSON_Print(json) : cJSON_PrintUnformatted(json)) : NULL;
    int status = EXIT_OK;
    if (!text) {
        em_log(EM_LOG_ERROR, "%s: out of memory", path);
        status = EXIT_BAD_INPUT;
    } else if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        em_log(EM_LOG_ERROR, "standard output: cannot write: %s",
               em_strerror(em_from_errno(errno)));
        status = EXIT_BAD_INPUT;
    }
    cJSON_free(text);
    return status;
}

static int parse_image(const char *path, bool pretty, bool from_auto)
{
    cJSON *json = NULL;
    char why[512];
    int rc = image_header(path, &json, why, sizeof(why));
    if (rc == -EM_EWRONGKIND && from_auto) {
        fprintf(stderr,
                "em-agent: %s: cannot tell the kind: not an EPU file name, and %s; name it (see "
                "'em-agent help parse')\n",
                path, why);
        return EXIT_USAGE;
    }
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s: %s", path, why[0] ? why : em_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    int status = print_json(path, json, pretty);
    cJSON_Delete(json);
    return status;
}

/* One file: KIND (or auto) and its path. */
static int parse_file(const char *kind_name, const char *path, bool pretty)
{
    if (strcmp(kind_name, "image") == 0)
        return parse_image(path, pretty, false);
    enum epu_kind kind =
        strcmp(kind_name, "auto") == 0 ? epu_classify_path(path) : epu_kind_from_cli(kind_name);
    if (kind == EPU_KIND_NONE && strcmp(kind_name, "auto") == 0)
        return parse_image(path, pretty, true);
    if (kind == EPU_KIND_NONE) {
        if (strcmp(kind_name, "auto") == 0)
            fprintf(stderr,
                    "em-agent: %s: cannot tell the kind from the path; name it (see 'em-agent "
                    "help parse')\n",
                    path);
        else
            fprintf(stderr, "em-agent: parse: %s: unknown KIND (see 'em-agent help parse')\n",
                    kind_name);
        return EXIT_USAGE;
    }

    struct fsio_buf buf = {0};
    int rc = fsio_read(path, PARSE_MAX_FILE, &buf, NULL);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s: cannot read: %s", path, em_strerror(rc));
        fsio_buf_free(&buf);
        return EXIT_BAD_INPUT;
    }
    struct epu_doc *doc = NULL;
    struct epu_diag diag;
    rc = epu_parse_buffer(kind, path, buf.data, buf.len, &doc, &diag);
    fsio_buf_free(&buf);
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s:%ld: %s", path, diag.line > 0 ? diag.line : 1, diag.reason);
        return EXIT_BAD_INPUT;
    }
    cJSON *json = epu_doc_to_json(doc);
    int status = print_json(path, json, pretty);
    cJSON_Delete(json);
    epu_doc_free(doc);
    return status;
}

enum { P_PRETTY, P_COUNT };
static const struct emopt_spec parse_opts[P_COUNT] = {
    [P_PRETTY] = {"pretty", 0, EMOPT_FLAG, false, false, NULL},
};

static int parse_main(const struct emopt *opt)
{
    size_t nargs;
    char *const *args = emopt_args(opt, &nargs);
    if (nargs != 2)
        return emopt_usage_error(opt, "expected KIND and FILE (see 'em-agent help parse')");
    return parse_file(args[0], args[1], emopt_yes(opt, P_PRETTY));
}

int cmd_parse(int argc, char **argv)
{
    static const struct emopt_command c = {"em-agent", "parse", parse_usage, NULL,
                                           parse_opts, P_COUNT, parse_main};
    return emopt_run(&c, argc, argv);
}
