/* em-synth: writes a synthetic EPU visit (DESIGN §3-4, README "em-synth").
 *
 * The visit has an atlas per grid, several session directories (the last ones aborted,
 * with images but no EpuSession.dm), grid squares, foil holes and exposures, written in
 * EPU's order and manner: the atlas first; per session its EpuSession.dm and a small
 * Metadata/GridSquare_<id>.dm for every square; then per imaged square the square image,
 * and per hole its FoilHoles image, its exposures' Data manifests and then the square's
 * .dm rewritten with the hole's entry (so images come before their .dm entries and the
 * .dm grows); EpuSession.dm is rewritten as each square completes. Files are written in
 * pieces (a reader can see them half-written); a rewrite truncates first.
 *
 * The XML comes from templates (tools/templates, built in) with {{name}} values and
 * {{#list}}...{{/list}} repeated sections; .dm templates are joined into one line as
 * EPU writes them. --templates DIR replaces any of them; a real EPU image manifest
 * (no {{ }}) is used as it is, with a new uniqueID and acquisitionDateTime each time.
 *
 * Output goes to a directory, paced with --rate or as fast as possible, or with --record
 * straight into an fsrecorder recording with the same operations and timing.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "dynbuf.h"
#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "cli_common.h"
#include "log.h"
#include "progress.h"
#include "recording.h"
#include "sha256.h"
#include "fsrec.h"
#include "synth.h"

enum tkind { T_SESSION, T_ATLAS, T_SQUARE_DM, T_SQUARE_IMG, T_HOLE_IMG, T_MIC, T_COUNT };
static const char *const tnames[T_COUNT] = {"session.dm",     "atlas.dm",     "gridsquare.dm",
                                            "gridsquare.xml", "foilhole.xml", "micrograph.xml"};

struct options {
    const char *out;
    const char *record;
    const char *templates;
    const char *expected;
    int sessions, aborted, squares, unimaged, holes, mics, dm_every;
    uint64_t seed;
    double rate; /* exposures per second; 0: as fast as possible */
    bool images, quiet;
};

struct tmpl {
    char *text;
    bool real; /* a real EPU file without {{ }}: only uniqueID and the time change */
};

struct hole {
    int64_t fh_id;
    int64_t *exp_ids;
    char **base_names;
    int nexp;
};

struct square {
    int64_t gs_id;
    bool imaged;
    int disc;
    double x, y;
    struct hole *holes;
    int nholes;
    int holes_in_dm; /* entries the .dm holds so far */
};

struct session {
    int index;
    bool aborted;
    char dir[128];
    int64_t session_id, sample_id, folder_id, atlas_id;
    char atlas_rel[256];
    struct square *squares;
    int nsquares;
    int imaged_done;
    int64_t start; /* the microscope's clock when the session starts */
};

struct synth {
    struct options o;
    struct tmpl tm[T_COUNT];
    uint64_t rng;
    int64_t next_id;
    int64_t clock; /* the microscope's clock, seconds since 1970 (names and timestamps) */
    char atlas_run[128];
    struct session *sessions;
    int nsessions;
    /* where the rendering is: values come from these */
    struct session *cs;
    struct square *csq;
    int tile, node, hole, exp;
    char uuid[40];
    struct dynbuf out;
    /* the sink */
    struct rec_writer *wr;
    struct hmap dirs;
    struct hmap written; /* files written once already (hash of path -> 1) */
    double t;            /* seconds of the schedule */
    uint64_t start_ns;
    uint64_t files, bytes, mics_done, mics_total;
    uint64_t counts[6]; /* atlas, session, gridsquare, foilhole, micrograph, aborted_session */
    struct progress prog;
    char err[600];
    bool failed;
};

static void failf(struct synth *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct synth *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->failed = true;
}

/* ---- small helpers ---- */

static uint64_t next_rand(struct synth *s)
{
    /* splitmix64: reproducible from --seed on every platform */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(struct synth *s)
{
    return (double)(next_rand(s) >> 11) / 9007199254740992.0;
}

static void new_uuid(struct synth *s)
{
    uint64_t a = next_rand(s), b = next_rand(s);
    snprintf(s->uuid, sizeof(s->uuid),
             "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64, a >> 32,
             (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0xfff, (uint64_t)(b & 0xffffffffffffull));
}

static void clock_parts(int64_t t, struct tm *tm)
{
    time_t tt = (time_t)t;
#ifdef _WIN32
    gmtime_s(tm, &tt);
#else
    gmtime_r(&tt, tm);
#endif
}

/* 2025-03-01T08:00:00.1234567Z */
static void iso_time(int64_t t, char *out, size_t n)
{
    struct tm tm;
    clock_parts(t, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 7) * 1428571);
}

/* 20250301_080000 */
static void name_time(int64_t t, char *out, size_t n)
{
    struct tm tm;
    clock_parts(t, &tm);
    snprintf(out, n, "%04d%02d%02d_%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- templates ---- */

/* .dm files are one line: drop each line's indentation and the line ends. */
static char *join_lines(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    bool start = true;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            start = true;
            continue;
        }
        if (start && (*p == ' ' || *p == '\t'))
            continue;
        start = false;
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

static int load_templates(struct synth *s)
{
    for (int k = 0; k < T_COUNT; k++) {
        const char *builtin = NULL;
        for (const struct synth_builtin *b = synth_builtins; b->name; b++)
            if (strcmp(b->name, tnames[k]) == 0)
                builtin = b->text;
        char *text = NULL;
        if (s->o.templates) {
            char *path = fsio_join(s->o.templates, tnames[k]);
            struct fsio_buf fb = {0};
            int rc = path ? fsio_read(path, 64u << 20, &fb, NULL) : -EM_ENOMEM;
            if (rc == 0) {
                text = malloc(fb.len + 1);
                if (text) {
                    memcpy(text, fb.data, fb.len);
                    text[fb.len] = '\0';
                }
                if (!s->o.quiet)
                    fprintf(stderr, "em-synth: template %s from %s\n", tnames[k], path);
            } else if (rc != -EM_ENOENT) {
                failf(s, "%s: cannot read (%s)", path ? path : tnames[k], em_strerror(rc));
            }
            fsio_buf_free(&fb);
            free(path);
        }
        if (!text && builtin)
            text = strdup(builtin);
        if (!text) {
            failf(s, "template %s: out of memory", tnames[k]);
            return -1;
        }
        s->tm[k].real = strstr(text, "{{") == NULL;
        if (s->tm[k].real && (k == T_SESSION || k == T_ATLAS || k == T_SQUARE_DM)) {
            failf(s,
                  "%s: a real .dm file cannot be a template: its lists are rebuilt for every "
                  "square; mark it up with {{ }} like tools/templates/%s",
                  tnames[k], tnames[k]);
            free(text);
            return -1;
        }
        if (k <= T_SQUARE_DM && !s->tm[k].real) {
            char *joined = join_lines(text);
            free(text);
            text = joined;
            if (!text)
                return -1;
        }
        s->tm[k].text = text;
    }
    return s->failed ? -1 : 0;
}

/* The text of the value `name` where the rendering is. */
static const char *value(struct synth *s, const char *name, char *tmp, size_t n)
{
    struct session *cs = s->cs;
    struct square *sq = s->csq;
    struct hole *h = sq && s->hole >= 0 ? &sq->holes[s->hole] : NULL;
#define IS(x) (strcmp(name, x) == 0)
#define INT(v) (snprintf(tmp, n, "%" PRId64, (int64_t)(v)), tmp)
#define DBL(v) (snprintf(tmp, n, "%.6g", (double)(v)), tmp)
    if (IS("uuid"))
        return s->uuid;
    if (IS("acquired")) {
        iso_time(s->clock, tmp, n);
        return tmp;
    }
    if (IS("started")) {
        iso_time(cs ? cs->start : s->clock, tmp, n);
        return tmp;
    }
    if (IS("computer"))
        return "SYNTH-KRIOS";
    if (IS("quality"))
        return DBL(0.5 + uniform(s) / 2);
    if (IS("defocus"))
        return DBL(-(1.0 + uniform(s) * 1.5) * 1e-6);
    if (IS("stage_x"))
        return DBL(sq ? sq->x : 0);
    if (IS("stage_y"))
        return DBL(sq ? sq->y : 0);
    if (cs) {
        if (IS("session_id"))
            return INT(cs->session_id);
        if (IS("session_name"))
            return cs->dir;
        if (IS("slot"))
            return INT(cs->index + 1);
        if (IS("imaged"))
            return INT(cs->imaged_done);
        if (IS("sample_id"))
            return INT(cs->sample_id);
        if (IS("folder_id"))
            return INT(cs->folder_id);
        if (IS("square_count"))
            return INT(cs->nsquares);
        if (IS("atlas_id"))
            return INT(cs->atlas_id);
        if (IS("atlas_name")) {
            snprintf(tmp, n, "Sample%d", cs->index + 1);
            return tmp;
        }
        if (IS("storage_path") || IS("storage_folder"))
            return "Z:\\synth";
        if (IS("atlas_path")) {
            snprintf(tmp, n, "Z:\\synth\\%s", cs->atlas_rel);
            for (char *p = tmp; *p; p++)
                if (*p == '/')
                    *p = '\\';
            return tmp;
        }
        if (IS("tile_count"))
            return INT((cs->nsquares + 15) / 16);
        if (IS("tile_id"))
            return INT(cs->atlas_id + 1 + s->tile);
        if (IS("tile_x"))
            return INT((s->tile % 4) * 1024);
        if (IS("tile_y"))
            return INT((s->tile / 4) * 1024);
        if (IS("node_count")) {
            int left = cs->nsquares - s->tile * 16;
            return INT(left < 16 ? left : 16);
        }
    }
    if (sq) {
        if (IS("gs_id"))
            return INT(sq->gs_id);
        if (IS("node_x"))
            return DBL((s->tile % 4) * 1024 + 40 + (s->node % 4) * 240);
        if (IS("node_y"))
            return DBL((s->tile / 4) * 1024 + 40 + (s->node / 4) * 240);
        if (IS("local_x"))
            return DBL(40 + (s->node % 4) * 240);
        if (IS("local_y"))
            return DBL(40 + (s->node / 4) * 240);
        if (IS("state"))
            return sq->holes_in_dm == sq->nholes && sq->imaged ? "Completed" : "Selected";
        if (IS("collection_id"))
            return INT(sq->gs_id + 500000);
        if (IS("hole_count"))
            return INT(sq->holes_in_dm);
        if (IS("image_path")) {
            snprintf(tmp, n, "Z:\\synth\\%s\\Images-Disc%d\\GridSquare_%" PRId64 "\\GridSquare.mrc",
                     cs ? cs->dir : "", sq->disc, sq->gs_id);
            return tmp;
        }
        if (IS("disc"))
            return INT(sq->disc);
    }
    if (h) {
        if (IS("fh_id"))
            return INT(h->fh_id);
        if (IS("near_bar"))
            return h->fh_id % 7 == 0 ? "true" : "false";
        if (IS("exposure_count"))
            return INT(h->nexp);
        if (IS("px"))
            return DBL(100 + (s->hole % 8) * 120);
        if (IS("py"))
            return DBL(100 + (s->hole / 8) * 120);
        if (IS("hole_x"))
            return DBL(sq->x + (s->hole % 8) * 2e-6);
        if (IS("hole_y"))
            return DBL(sq->y + (s->hole / 8) * 2e-6);
        if (IS("hole_state"))
            return "Completed";
        if (s->exp >= 0 && s->exp < h->nexp) {
            if (IS("exp_id"))
                return INT(h->exp_ids[s->exp]);
            if (IS("area_id"))
                return INT(4001 + s->exp % 4);
            if (IS("base_name"))
                return h->base_names[s->exp];
        }
    }
#undef IS
#undef INT
#undef DBL
    return NULL;
}

/* How many times the section `name` repeats where the rendering is; sets the index
 * for item i with enter(). */
static int section_count(struct synth *s, const char *name)
{
    if (strcmp(name, "squares") == 0)
        return s->cs ? s->cs->nsquares : 0;
    if (strcmp(name, "tiles") == 0)
        return s->cs ? (s->cs->nsquares + 15) / 16 : 0;
    if (strcmp(name, "nodes") == 0) {
        int left = s->cs ? s->cs->nsquares - s->tile * 16 : 0;
        return left < 16 ? left : 16;
    }
    if (strcmp(name, "holes") == 0)
        return s->csq ? s->csq->holes_in_dm : 0;
    if (strcmp(name, "exposures") == 0)
        return s->csq && s->hole >= 0 ? s->csq->holes[s->hole].nexp : 0;
    return -1;
}

static void enter(struct synth *s, const char *name, int i)
{
    if (strcmp(name, "squares") == 0)
        s->csq = &s->cs->squares[i];
    else if (strcmp(name, "tiles") == 0)
        s->tile = i;
    else if (strcmp(name, "nodes") == 0) {
        s->node = i;
        s->csq = &s->cs->squares[s->tile * 16 + i];
    } else if (strcmp(name, "holes") == 0)
        s->hole = i;
    else if (strcmp(name, "exposures") == 0)
        s->exp = i;
}

static int render(struct synth *s, const char *p, const char *end)
{
    while (p < end) {
        const char *open = strstr(p, "{{");
        if (!open || open >= end)
            return dynbuf_add(&s->out, p, (size_t)(end - p));
        if (dynbuf_add(&s->out, p, (size_t)(open - p)) < 0)
            return -1;
        const char *close = strstr(open, "}}");
        if (!close || close >= end) {
            failf(s, "template: '{{' without '}}'");
            return -1;
        }
        char name[64];
        bool section = open[2] == '#';
        const char *nstart = open + 2 + (section ? 1 : 0);
        snprintf(name, sizeof(name), "%.*s", (int)(close - nstart), nstart);
        p = close + 2;
        char tmp[512];
        if (!section) {
            const char *v = value(s, name, tmp, sizeof(tmp));
            if (!v) {
                failf(s, "template: unknown value {{%s}}", name);
                return -1;
            }
            if (dynbuf_add(&s->out, v, strlen(v)) < 0)
                return -1;
            continue;
        }
        char endtag[80];
        snprintf(endtag, sizeof(endtag), "{{/%s}}", name);
        const char *stop = strstr(p, endtag);
        int count = section_count(s, name);
        if (!stop || stop >= end || count < 0) {
            failf(s, "template: section {{#%s}} is unknown or not closed", name);
            return -1;
        }
        struct square *keep_sq = s->csq;
        int keep[4] = {s->tile, s->node, s->hole, s->exp};
        for (int i = 0; i < count; i++) {
            enter(s, name, i);
            if (render(s, p, stop) < 0)
                return -1;
        }
        s->csq = keep_sq;
        s->tile = keep[0];
        s->node = keep[1];
        s->hole = keep[2];
        s->exp = keep[3];
        p = stop + strlen(endtag);
    }
    return 0;
}

/* Replaces the text of the first <tag>...</tag> with `v` (real files as templates). */
static void replace_element(struct dynbuf *b, const char *tag, const char *v)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    char *start = strstr(b->p, open);
    if (!start)
        return;
    start += strlen(open);
    char *stop = strstr(start, close);
    if (!stop)
        return;
    size_t pre = (size_t)(start - b->p), old = (size_t)(stop - start), nv = strlen(v);
    size_t tail = b->len - pre - old;
    /* Make room first (the bytes appended are overwritten below). */
    if (nv > old && dynbuf_add(b, v, nv - old) < 0)
        return;
    memmove(b->p + pre + nv, b->p + pre + old, tail);
    memcpy(b->p + pre, v, nv);
    b->len = pre + nv + tail;
    b->p[b->len] = '\0';
}

static int render_kind(struct synth *s, enum tkind k)
{
    dynbuf_reset(&s->out);
    if (s->tm[k].real) {
        if (dynbuf_add(&s->out, s->tm[k].text, strlen(s->tm[k].text)) < 0)
            return -1;
        char when[40];
        iso_time(s->clock, when, sizeof(when));
        replace_element(&s->out, "uniqueID", s->uuid);
        replace_element(&s->out, "acquisitionDateTime", when);
        return 0;
    }
    return render(s, s->tm[k].text, s->tm[k].text + strlen(s->tm[k].text));
}

/* ---- the sink: a directory or a recording ---- */

static const char *dir_key(const void *v)
{
    return v;
}

static void sink_mkdirs(struct synth *s, const char *rel)
{
    char path[REC_MAX_PATH + 1];
    snprintf(path, sizeof(path), "%s", rel);
    for (char *p = path;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int added;
        struct hmap_entry *e = hmap_upsert(&s->dirs, hash64_str(path), path, dir_key, &added);
        if (!e) {
            failf(s, "out of memory");
            return;
        }
        if (added) {
            e->v.p = strdup(path);
            if (s->wr) {
                struct rec_op op = {.type = REC_MKDIR, .t = s->t, .path = path};
                if (rec_writer_add(s->wr, &op) < 0)
                    failf(s, "%s: cannot record", path);
            } else {
                char *abs = fsio_join(s->o.out, path);
                uv_fs_t req;
                int rc = abs ? uv_fs_mkdir(NULL, &req, abs, 0755, NULL) : UV_ENOMEM;
                if (abs)
                    uv_fs_req_cleanup(&req);
                if (rc < 0 && rc != UV_EEXIST)
                    failf(s, "%s: cannot create: %s", abs ? abs : path, uv_strerror(rc));
                free(abs);
            }
        }
        *p = c;
        if (c == '\0')
            return;
    }
}

static void sink_parent(struct synth *s, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return;
    char parent[REC_MAX_PATH + 1];
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
    sink_mkdirs(s, parent);
}

static void maybe_flush(struct synth *s)
{
    if (s->wr && rec_writer_pending(s->wr) > (8u << 20) &&
        rec_writer_flush(s->wr, s->err, sizeof(s->err)) < 0)
        s->failed = true;
}

/* Writes `data` to `rel` in `pieces` writes (after truncating it when it exists), the
 * way EPU's writers do. */
static void sink_file(struct synth *s, const char *rel, const char *data, size_t len, int pieces)
{
    if (s->failed)
        return;
    sink_parent(s, rel);
    if (pieces < 1 || (size_t)pieces > len)
        pieces = len ? (len < 3 ? (int)len : 3) : 1;
    s->files++;
    s->bytes += len;
    if (s->wr) {
        int added;
        struct hmap_entry *seen = hmap_upsert(&s->written, hash64_str(rel), NULL, NULL, &added);
        if (!seen) {
            failf(s, "out of memory");
            return;
        }
        struct sha256 sh;
        sha256_init(&sh);
        size_t off = 0;
        for (int i = 0; i < pieces; i++) {
            size_t end = i + 1 == pieces ? len : len / (size_t)pieces * (size_t)(i + 1);
            sha256_update(&sh, data + off, end - off);
            char hex[65];
            sha256_hex(&sh, hex);
            struct rec_op op = {.type = i > 0   ? REC_APPEND
                                        : added ? REC_CREATE
                                                : REC_REWRITE,
                                .t = s->t + i * 0.001,
                                .path = rel,
                                .offset = off,
                                .size = end,
                                .sha256 = hex,
                                .data = (const unsigned char *)data + off,
                                .len = end - off};
            if (rec_writer_add(s->wr, &op) < 0) {
                failf(s, "%s: cannot record", rel);
                return;
            }
            off = end;
        }
        s->t += pieces * 0.001;
        maybe_flush(s);
        return;
    }
    char *abs = fsio_join(s->o.out, rel);
    uv_fs_t req;
    int fd = abs ? uv_fs_open(NULL, &req, abs, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, 0644,
                              NULL)
                 : UV_ENOMEM;
    if (abs)
        uv_fs_req_cleanup(&req);
    if (fd < 0) {
        failf(s, "%s: cannot create: %s", abs ? abs : rel, uv_strerror(fd));
        free(abs);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < pieces && !s->failed; i++) {
        size_t end = i + 1 == pieces ? len : len / (size_t)pieces * (size_t)(i + 1);
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)(data + off), (unsigned)(end - off));
        int rc = uv_fs_write(NULL, &req, fd, &b, 1, (int64_t)off, NULL);
        uv_fs_req_cleanup(&req);
        if (rc < 0 || (size_t)rc != end - off)
            failf(s, "%s: cannot write: %s", abs, rc < 0 ? uv_strerror(rc) : "short write");
        off = end;
    }
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    free(abs);
}

/* A binary image: only its size matters (a placeholder in recordings). */
static void sink_image(struct synth *s, const char *rel, size_t size)
{
    if (!s->o.images || s->failed)
        return;
    if (s->wr) {
        sink_parent(s, rel);
        s->files++;
        struct rec_op op = {.type = REC_PLACEHOLDER, .t = s->t, .path = rel, .size = size};
        if (rec_writer_add(s->wr, &op) < 0)
            failf(s, "%s: cannot record", rel);
        return;
    }
    static char img[4096];
    if (size > sizeof(img))
        size = sizeof(img);
    img[0] = (char)0xff;
    img[1] = (char)0xd8;
    img[size - 2] = (char)0xff;
    img[size - 1] = (char)0xd9;
    sink_file(s, rel, img, size, 1);
    s->bytes -= size;
}

/* Lets `seconds` of acquisition time pass: sleeps when paced, advances the recording's
 * clock when recording. The schedule is absolute, so writing time does not add up. */
static void sink_wait(struct synth *s, double seconds)
{
    s->t += seconds;
    if (s->wr || s->o.rate <= 0)
        return;
    uint64_t target = s->start_ns + (uint64_t)(s->t * 1e9);
    for (uint64_t now; (now = uv_hrtime()) < target;)
        uv_sleep((unsigned)((target - now) / 1000000) + 1);
}

/* ---- the visit ---- */

static void write_kind(struct synth *s, enum tkind k, const char *rel, int pieces)
{
    if (s->failed || render_kind(s, k) < 0)
        return;
    sink_file(s, rel, s->out.p, s->out.len, pieces);
}

static void plan(struct synth *s)
{
    const struct options *o = &s->o;
    s->nsessions = o->sessions + o->aborted;
    s->sessions = calloc((size_t)s->nsessions, sizeof(*s->sessions));
    if (!s->sessions) {
        failf(s, "out of memory");
        return;
    }
    s->next_id = 5000000;
    char when[32];
    name_time(s->clock, when, sizeof(when));
    snprintf(s->atlas_run, sizeof(s->atlas_run), "atlas/Supervisor_%s_synth_Atlas", when);
    /* Each session starts after the previous one's acquisition time. */
    int64_t per_square = 20 + (int64_t)o->holes * (5 + 3 * (int64_t)o->mics);
    int64_t sclock = s->clock + 120 * (o->sessions + o->aborted) + 600;
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        cs->index = k;
        cs->aborted = k >= o->sessions;
        cs->start = sclock;
        sclock += 600 + per_square * (k >= o->sessions ? 1 : o->squares);
        name_time(cs->start, when, sizeof(when));
        snprintf(cs->dir, sizeof(cs->dir), "Supervisor_%s_%d_grid%d%s", when, k + 1, k + 1,
                 cs->aborted ? "_aborted" : "_EPU");
        cs->session_id = s->next_id++;
        cs->sample_id = s->next_id++;
        cs->folder_id = s->next_id++;
        /* An aborted grid got as far as one square with one hole. */
        int imaged = cs->aborted ? 1 : o->squares;
        cs->nsquares = cs->aborted ? 1 : o->squares + o->unimaged;
        cs->atlas_id = s->next_id;
        s->next_id += 1 + (cs->nsquares + 15) / 16; /* the atlas and its tiles */
        snprintf(cs->atlas_rel, sizeof(cs->atlas_rel), "%s/Sample%d/Atlas/Atlas.dm", s->atlas_run,
                 k + 1);
        cs->squares = calloc((size_t)cs->nsquares, sizeof(*cs->squares));
        if (!cs->squares) {
            failf(s, "out of memory");
            return;
        }
        for (int j = 0; j < cs->nsquares; j++) {
            struct square *sq = &cs->squares[j];
            sq->gs_id = s->next_id++;
            sq->imaged = j < imaged;
            sq->disc = j % 5 == 4 ? 2 : 1; /* some squares on a second disc */
            sq->x = (uniform(s) - 0.5) * 1e-3;
            sq->y = (uniform(s) - 0.5) * 1e-3;
            if (!sq->imaged)
                continue;
            sq->nholes = cs->aborted ? 1 : o->holes;
            sq->holes = calloc((size_t)sq->nholes, sizeof(*sq->holes));
            if (!sq->holes) {
                failf(s, "out of memory");
                return;
            }
            for (int h = 0; h < sq->nholes; h++) {
                struct hole *hl = &sq->holes[h];
                hl->fh_id = s->next_id++;
                hl->nexp = cs->aborted ? 1 : o->mics;
                hl->exp_ids = calloc((size_t)hl->nexp + 1, sizeof(*hl->exp_ids));
                hl->base_names = calloc((size_t)hl->nexp + 1, sizeof(*hl->base_names));
                if (!hl->exp_ids || !hl->base_names) {
                    failf(s, "out of memory");
                    return;
                }
                for (int m = 0; m < hl->nexp; m++)
                    hl->exp_ids[m] = s->next_id++;
                s->mics_total += (uint64_t)hl->nexp;
            }
        }
        if (cs->aborted)
            s->counts[5]++; /* it has a square: em-agent lists the directory as aborted */
        if (!cs->aborted) {
            s->counts[1]++;
            s->counts[2] += (uint64_t)cs->nsquares;
            s->counts[3] += (uint64_t)o->squares * (uint64_t)o->holes;
            s->counts[4] += (uint64_t)o->squares * (uint64_t)o->holes * (uint64_t)o->mics;
        }
        s->counts[0]++;
    }
}

static void write_square(struct synth *s, struct session *cs, struct square *sq)
{
    char rel[REC_MAX_PATH], when[32];
    char sqdir[512];
    snprintf(sqdir, sizeof(sqdir), "%s/Images-Disc%d/GridSquare_%" PRId64, cs->dir, sq->disc,
             sq->gs_id);
    char dm[512];
    snprintf(dm, sizeof(dm), "%s/Metadata/GridSquare_%" PRId64 ".dm", cs->dir, sq->gs_id);
    s->csq = sq;
    s->hole = -1;
    s->exp = -1;
    /* The square image at square magnification. */
    s->clock += 20;
    new_uuid(s);
    name_time(s->clock, when, sizeof(when));
    snprintf(rel, sizeof(rel), "%s/GridSquare_%s.xml", sqdir, when);
    write_kind(s, T_SQUARE_IMG, rel, 2);
    snprintf(rel, sizeof(rel), "%s/GridSquare_%s.jpg", sqdir, when);
    sink_image(s, rel, 4096);
    int every = s->o.dm_every > 0 ? s->o.dm_every : 1;
    for (int h = 0; h < sq->nholes && !s->failed; h++) {
        struct hole *hl = &sq->holes[h];
        s->hole = -1;
        s->clock += 5;
        new_uuid(s);
        name_time(s->clock, when, sizeof(when));
        snprintf(rel, sizeof(rel), "%s/FoilHoles/FoilHole_%" PRId64 "_%s.xml", sqdir, hl->fh_id,
                 when);
        s->hole = h;
        write_kind(s, T_HOLE_IMG, rel, 2);
        snprintf(rel, sizeof(rel), "%s/FoilHoles/FoilHole_%" PRId64 "_%s.jpg", sqdir, hl->fh_id,
                 when);
        sink_image(s, rel, 2048);
        for (int m = 0; m < hl->nexp && !s->failed; m++) {
            s->clock += 3;
            name_time(s->clock, when, sizeof(when));
            char base[128];
            snprintf(base, sizeof(base), "FoilHole_%" PRId64 "_Data_%d_%d_%s", hl->fh_id,
                     4001 + m % 4, m + 1, when);
            hl->base_names[m] = strdup(base);
            if (!hl->base_names[m]) {
                failf(s, "out of memory");
                return;
            }
            new_uuid(s);
            s->exp = m;
            snprintf(rel, sizeof(rel), "%s/Data/%s.xml", sqdir, base);
            write_kind(s, T_MIC, rel, 2);
            snprintf(rel, sizeof(rel), "%s/Data/%s.jpg", sqdir, base);
            sink_image(s, rel, 3072);
            s->mics_done++;
            sink_wait(s, s->o.rate > 0 ? 1.0 / s->o.rate : 0.1);
            char detail[96];
            snprintf(detail, sizeof(detail), "%" PRIu64 "/%" PRIu64 " micrographs", s->mics_done,
                     s->mics_total);
            progress_show(&s->prog, "em-synth", s->mics_done, s->mics_total, detail, false);
        }
        s->exp = -1;
        /* The hole's entry reaches the square's .dm after its images: rewritten, larger. */
        if ((h + 1) % every == 0 || h + 1 == sq->nholes) {
            sq->holes_in_dm = h + 1;
            s->hole = -1;
            write_kind(s, T_SQUARE_DM, dm, 3);
        }
    }
    s->csq = NULL;
}

static void write_visit(struct synth *s)
{
    /* The atlas of every grid in the cassette comes first. */
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        s->cs = cs;
        s->clock += 120;
        write_kind(s, T_ATLAS, cs->atlas_rel, 3);
    }
    for (int k = 0; k < s->nsessions && !s->failed; k++) {
        struct session *cs = &s->sessions[k];
        s->cs = cs;
        s->csq = NULL;
        s->hole = s->exp = -1;
        s->clock = cs->start > s->clock ? cs->start : s->clock;
        char rel[REC_MAX_PATH];
        if (cs->aborted) {
            /* Images were taken, but the session file was never saved. */
            write_square(s, cs, &cs->squares[0]);
            continue;
        }
        snprintf(rel, sizeof(rel), "%s/EpuSession.dm", cs->dir);
        write_kind(s, T_SESSION, rel, 2);
        for (int j = 0; j < cs->nsquares && !s->failed; j++) {
            struct square *sq = &cs->squares[j];
            s->csq = sq;
            char dm[512];
            snprintf(dm, sizeof(dm), "%s/Metadata/GridSquare_%" PRId64 ".dm", cs->dir, sq->gs_id);
            write_kind(s, T_SQUARE_DM, dm, 1);
        }
        s->csq = NULL;
        for (int j = 0; j < cs->nsquares && !s->failed; j++) {
            if (!cs->squares[j].imaged)
                continue;
            write_square(s, cs, &cs->squares[j]);
            cs->imaged_done++;
            s->csq = NULL;
            write_kind(s, T_SESSION, rel, 2); /* rewritten as squares complete */
        }
    }
}

static int usage(const char *msg)
{
    if (msg) {
        fprintf(stderr, "em-synth: %s (see 'em-synth --help')\n", msg);
        return 2;
    }
    fputs("usage: em-synth [OPTIONS] OUT_DIR\n"
          "       em-synth [OPTIONS] --record REC.tar.zst\n"
          "\n"
          "Writes a synthetic EPU visit: an atlas per grid, session directories with\n"
          "EpuSession.dm, Metadata/GridSquare_*.dm, square, foil-hole and exposure images,\n"
          "in EPU's order and write patterns.\n"
          "\n"
          "  --sessions N     complete sessions (grids) (default 2)\n"
          "  --aborted N      aborted sessions: images but no EpuSession.dm (default 1)\n"
          "  --squares N      imaged squares per session (default 3)\n"
          "  --unimaged N     further squares listed but never imaged (default 2)\n"
          "  --holes N        foil holes per imaged square (default 4)\n"
          "  --mics N         micrographs (exposures) per hole (default 2)\n"
          "  --dm-every N     rewrite a square's .dm after every N holes (default 1)\n"
          "  --rate R         pace like a microscope: R exposures per second (default: as\n"
          "                   fast as possible; in a recording the clock runs at 10/s)\n"
          "  --record REC     write an fsrecorder recording (.tar, .tar.gz, .tar.zst) instead\n"
          "  --templates DIR  take any of session.dm atlas.dm gridsquare.dm gridsquare.xml\n"
          "                   foilhole.xml micrograph.xml from DIR (real image manifests work)\n"
          "  --no-images      leave out the .jpg images\n"
          "  --seed N         ids, uuids and positions are reproducible from N (default 1)\n"
          "  --expected FILE  write the entity counts em-agent must find, as JSON\n"
          "  -q, --quiet      no progress or summary\n"
          "  -v, --log-format text|json, --version, -h/--help (or `em-synth help`)\n"
          "\n"
          "A visit of 200 squares x 50 holes x 5 micrographs is 50,000 micrographs.\n"
          "exit status: 0 success, 1 failure, 2 usage error\n",
          stdout);
    return 0;
}

static int int_arg(const char *opt, const char *v, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "em-synth: %s takes a whole number from %d to %d\n", opt, min, max);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static void free_synth(struct synth *s)
{
    for (int k = 0; k < s->nsessions; k++) {
        struct session *cs = &s->sessions[k];
        for (int j = 0; j < cs->nsquares; j++) {
            struct square *sq = &cs->squares[j];
            for (int h = 0; h < sq->nholes; h++) {
                for (int m = 0; m < sq->holes[h].nexp; m++)
                    free(sq->holes[h].base_names[m]);
                free(sq->holes[h].base_names);
                free(sq->holes[h].exp_ids);
            }
            free(sq->holes);
        }
        free(cs->squares);
    }
    free(s->sessions);
    for (int k = 0; k < T_COUNT; k++)
        free(s->tm[k].text);
    for (size_t i = 0; i < s->dirs.cap; i++)
        if (s->dirs.e[i].key)
            free(s->dirs.e[i].v.p);
    hmap_free(&s->dirs);
    hmap_free(&s->written);
    dynbuf_free(&s->out);
}

int main(int argc, char **argv)
{
    int early = cli_globals("em-synth", EM_VERSION, &argc, argv);
    if (early >= 0)
        return early;
    if (argc == 2 && strcmp(argv[1], "help") == 0)
        return usage(NULL);
    struct synth *s = calloc(1, sizeof(*s));
    if (!s)
        return 1;
    struct options *o = &s->o;
    *o = (struct options){.sessions = 2,
                          .aborted = 1,
                          .squares = 3,
                          .unimaged = 2,
                          .holes = 4,
                          .mics = 2,
                          .dm_every = 1,
                          .seed = 1,
                          .quiet = cli_quiet,
                          .images = true};
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        int v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            free(s);
            return usage(NULL);
        } else if (strcmp(a, "--version") == 0) {
            printf("em-synth %s\n", EM_VERSION);
            free(s);
            return 0;
        } else if (strcmp(a, "--sessions") == 0 && has) {
            if (int_arg(a, argv[++i], 0, 99, &o->sessions) < 0)
                goto out;
        } else if (strcmp(a, "--aborted") == 0 && has) {
            if (int_arg(a, argv[++i], 0, 99, &o->aborted) < 0)
                goto out;
        } else if (strcmp(a, "--squares") == 0 && has) {
            if (int_arg(a, argv[++i], 0, 5000, &o->squares) < 0)
                goto out;
        } else if (strcmp(a, "--unimaged") == 0 && has) {
            if (int_arg(a, argv[++i], 0, 5000, &o->unimaged) < 0)
                goto out;
        } else if (strcmp(a, "--holes") == 0 && has) {
            if (int_arg(a, argv[++i], 1, 2000, &o->holes) < 0)
                goto out;
        } else if (strcmp(a, "--mics") == 0 && has) {
            if (int_arg(a, argv[++i], 1, 100, &o->mics) < 0)
                goto out;
        } else if (strcmp(a, "--dm-every") == 0 && has) {
            if (int_arg(a, argv[++i], 1, 2000, &o->dm_every) < 0)
                goto out;
        } else if (strcmp(a, "--seed") == 0 && has) {
            if (int_arg(a, argv[++i], 0, 2147483647, &v) < 0)
                goto out;
            o->seed = (uint64_t)v;
        } else if (strcmp(a, "--rate") == 0 && has) {
            char *end;
            o->rate = strtod(argv[++i], &end);
            if (*end || !(o->rate > 0) || !isfinite(o->rate)) {
                rc = usage("--rate takes a positive number of exposures per second");
                goto out;
            }
        } else if (strcmp(a, "--record") == 0 && has) {
            o->record = argv[++i];
        } else if (strcmp(a, "--templates") == 0 && has) {
            o->templates = argv[++i];
        } else if (strcmp(a, "--expected") == 0 && has) {
            o->expected = argv[++i];
        } else if (strcmp(a, "--no-images") == 0) {
            o->images = false;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = true;
        } else if (a[0] == '-') {
            fprintf(stderr,
                    "em-synth: %s: unknown option or missing value (see 'em-synth --help')\n", a);
            rc = 2;
            goto out;
        } else if (!o->out) {
            o->out = a;
        } else {
            rc = usage("one output directory");
            goto out;
        }
    }
    if (!o->out == !o->record) {
        rc = usage("give an output directory or --record REC");
        goto out;
    }
    rc = 1;
    s->rng = o->seed;
    dynbuf_init(&s->out, 1u << 30);
    s->clock = 1740816000; /* 2025-03-01T08:00:00Z */
    progress_init(&s->prog, o->quiet);
    if (load_templates(s) < 0)
        goto report;
    plan(s);
    if (s->failed)
        goto report;
    if (o->record) {
        enum rec_compression comp;
        if (rec_compression_for(o->record, &comp) < 0) {
            rc = usage("--record: the name must end in .tar, .tar.gz, .tgz, .tar.zst or .tzst");
            goto out;
        }
        char part[REC_MAX_PATH + 8];
        snprintf(part, sizeof(part), "%s.part", o->record);
        struct rec_header h = {.source = "em-synth",
                               .mode = "synth",
                               .placeholders = FSREC_DEFAULT_PLACEHOLDERS,
                               .tool = "em-synth " EM_VERSION};
        if (rec_writer_open(part, &h, false, &s->wr, s->err, sizeof(s->err)) < 0) {
            s->failed = true;
            goto report;
        }
        write_visit(s);
        int crc = rec_writer_close(s->wr, s->t, s->err, sizeof(s->err));
        s->wr = NULL;
        if (crc < 0)
            s->failed = true;
        else if (!s->failed && comp == REC_PLAIN && rename(part, o->record) < 0)
            failf(s, "%s: %s", o->record, cli_strerror(errno));
        else if (!s->failed && comp != REC_PLAIN) {
            if (rec_pack(part, o->record, comp, s->err, sizeof(s->err)) < 0)
                s->failed = true;
            remove(part);
        }
    } else {
        struct fsio_stat st;
        struct fsio_entry *ents;
        size_t count = 0;
        if (fsio_stat(o->out, &st) == 0 && fsio_list(o->out, &ents, &count) == 0) {
            fsio_entries_free(ents, count);
            if (count) {
                fprintf(stderr, "em-synth: %s is not empty; give a new or empty directory\n",
                        o->out);
                goto out;
            }
        }
        uv_fs_t req;
        int mrc = uv_fs_mkdir(NULL, &req, o->out, 0755, NULL);
        uv_fs_req_cleanup(&req);
        if (mrc < 0 && mrc != UV_EEXIST) {
            failf(s, "%s: cannot create: %s", o->out, uv_strerror(mrc));
            goto report;
        }
        s->start_ns = uv_hrtime();
        write_visit(s);
    }
    progress_done(&s->prog);
report:
    if (s->failed) {
        fprintf(stderr, "em-synth: %s\n", s->err);
        goto out;
    }
    /* As tests/e2e/fold.py counts prints them: keys sorted, types without entities left out
     * (only aborted_session can be 0 here). */
    char counts[320], aborted[64] = "";
    if (s->counts[5])
        snprintf(aborted, sizeof(aborted), "\"aborted_session\": %" PRIu64 ", ", s->counts[5]);
    snprintf(counts, sizeof(counts),
             "{%s\"atlas\": %" PRIu64 ", \"foilhole\": %" PRIu64 ", \"gridsquare\": %" PRIu64
             ", \"micrograph\": %" PRIu64 ", \"session\": %" PRIu64 "}",
             aborted, s->counts[0], s->counts[3], s->counts[2], s->counts[4], s->counts[1]);
    if (o->expected) {
        FILE *f = fopen(o->expected, "w");
        if (!f || fprintf(f, "%s\n", counts) < 0 || fclose(f) != 0) {
            fprintf(stderr, "em-synth: %s: %s\n", o->expected, cli_strerror(errno));
            goto out;
        }
    }
    if (!o->quiet)
        fprintf(stderr, "em-synth: %" PRIu64 " writes (%.1f MB of XML) to %s: %s\n", s->files,
                (double)s->bytes / 1e6, o->record ? o->record : o->out, counts);
    rc = 0;
out:
    free_synth(s);
    free(s);
    return rc;
}
