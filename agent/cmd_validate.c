/* em-agent validate DIR: is this a complete, readable EPU session or visit? */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "em_error.h"
#include "epu.h"
#include "fsio.h"
#include "log.h"
#include "pool.h"
#include "tree.h"

#define VALIDATE_WINDOW 128

static const char validate_usage[] =
    "Usage: em-agent validate [--json] [-j N] DIR\n"
    "\n"
    "Check a grid (session) directory or a whole visit:\n"
    "  - every session directory has an EpuSession.dm that parses;\n"
    "  - it has Metadata/ and at least one Images-Disc<N>/ directory;\n"
    "  - every imaged square has its Metadata/GridSquare_<gs>.dm;\n"
    "  - every exposure's foil hole is listed in its square's .dm;\n"
    "  - the atlas named by the session's AtlasId can be found and parses;\n"
    "  - every EPU file parses and every other .xml/.dm file is well-formed.\n"
    "\n"
    "Options:\n"
    "  --json       print one JSON object instead of text\n"
    "  -j, --jobs N parser threads (default: the number of CPUs)\n"
    "  -h, --help   show this help\n"
    "\n"
    "A directory that cannot be read is a finding (\"cannot read the directory: permission\n"
    "denied\"), and so is a DIR that holds no EPU session.\n"
    "\n"
    "Exit status: 0 valid; 1 findings, or DIR cannot be read; 2 usage error.\n";

struct finding {
    char *path;
    long line; /* 0 when not about a line */
    char *message;
};

struct session_report {
    const struct tree_session *ts;
    struct epu_doc *doc;
    char *atlas_rel;
    struct epu_doc *atlas_doc; /* borrowed from the atlas list, or owned when outside */
    bool atlas_owned;
    size_t squares_imaged, squares_with_metadata, micrographs;
};

struct validation {
    struct tree tree;
    struct finding *findings;
    size_t nfindings, cap;
    struct session_report *reports;
    struct epu_doc **atlas_docs; /* parallel to tree.atlases */
    size_t files_checked;
    int error; /* out of memory */
};

static void add_finding(struct validation *v, const char *path, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_finding(struct validation *v, const char *path, long line, const char *fmt, ...)
{
    if (v->nfindings == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct finding *f = realloc(v->findings, cap * sizeof(*f));
        if (!f) {
            v->error = -EM_ENOMEM;
            return;
        }
        v->findings = f;
        v->cap = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct finding *f = &v->findings[v->nfindings];
    f->path = strdup(path);
    f->message = strdup(msg);
    f->line = line;
    if (!f->path || !f->message) {
        free(f->path);
        free(f->message);
        v->error = -EM_ENOMEM;
        return;
    }
    v->nfindings++;
}

/* Takes the next job; records a failed one as a finding. Returns its document (NULL on
 * failure). */
static struct epu_doc *take(struct validation *v, struct pool *pool, const char *rel)
{
    struct pool_job j;
    if (pool_next(pool, &j) <= 0)
        return NULL;
    v->files_checked++;
    struct epu_doc *d = NULL;
    if (j.rc == 0) {
        d = j.doc;
        j.doc = NULL;
    } else if (j.read_failed) {
        add_finding(v, rel, 0, "cannot read: %s", em_strerror(j.rc));
    } else {
        add_finding(v, rel, j.diag.line > 0 ? j.diag.line : 1, "%s", j.diag.reason);
    }
    pool_job_clear(&j);
    return d;
}

static int hole_known(const struct epu_gridsquare_metadata *g, int64_t fh)
{
    size_t lo = 0, hi = g->foilhole_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t id = g->foilholes[mid].foilhole_id.v;
        if (id == fh)
            return 1;
        if (id < fh)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* A session's Metadata/ that could not be read: what is in it is not "missing" (the
 * directory's own finding says why). */
static bool metadata_unreadable(const struct validation *v, const struct tree_session *ts)
{
    char rel[4200];
    if (strcmp(ts->dir, ".") == 0)
        snprintf(rel, sizeof(rel), "Metadata");
    else
        snprintf(rel, sizeof(rel), "%s/Metadata", ts->dir);
    return tree_under_unreadable(&v->tree, rel);
}

static void check_square(struct validation *v, struct session_report *r,
                         const struct tree_square *q, struct pool *pool, const char **rels,
                         size_t *at)
{
    const char *dir = r->ts->dir;
    size_t n = (q->metadata ? 1 : 0) + q->images.n + q->foilholes.n + q->micrographs.n;
    struct epu_doc *meta = NULL;
    size_t unknown = 0;
    const char *example = NULL;
    bool imaged = q->images.n + q->foilholes.n + q->micrographs.n > 0;
    for (size_t k = 0; k < n; k++) {
        const char *rel = rels[(*at)++];
        struct epu_doc *d = take(v, pool, rel);
        if (!d)
            continue;
        if (d->kind == EPU_KIND_GRIDSQUARE_METADATA) {
            meta = d;
            continue;
        }
        if (d->kind == EPU_KIND_MICROGRAPH) {
            r->micrographs++;
            /* `rel` lives in the tree, so the example outlives this loop. */
            if (meta && !hole_known(&meta->u.gridsquare, d->u.image.foilhole_id.v) && !unknown++)
                example = rel;
        }
        epu_doc_free(d);
    }
    if (q->metadata)
        r->squares_with_metadata++;
    if (imaged) {
        r->squares_imaged++;
        if (!q->metadata && !metadata_unreadable(v, r->ts))
            add_finding(v, dir, 0,
                        "grid square %lld is imaged but Metadata/GridSquare_%lld.dm is missing",
                        (long long)q->gridsquare_id, (long long)q->gridsquare_id);
    }
    if (unknown)
        add_finding(v, q->metadata, 0,
                    "%zu exposure(s) of foil holes this .dm does not list (first: %s)", unknown,
                    example);
    epu_doc_free(meta);
}

static void check_atlas(struct validation *v, struct session_report *r)
{
    const struct epu_session *s = &r->doc->u.session;
    if (!s->atlas_path) {
        add_finding(v, r->ts->epu_dm, 0, "the session names no atlas (no AtlasId)");
        return;
    }
    r->atlas_rel = tree_find_atlas(&v->tree, r->ts, s->atlas_path, s->storage_path);
    if (!r->atlas_rel) {
        add_finding(v, r->ts->epu_dm, 0, "atlas %s not found under the visit", s->atlas_path);
        return;
    }
    for (size_t i = 0; i < v->tree.atlases.n; i++) {
        if (strcmp(v->tree.atlases.v[i], r->atlas_rel) == 0) {
            r->atlas_doc = v->atlas_docs[i]; /* NULL: its parse failure is already a finding */
            return;
        }
    }
    /* Outside the tree: read and parse it here. */
    char *abs = tree_abs(&v->tree, r->atlas_rel);
    struct fsio_buf buf = {0};
    struct epu_diag diag;
    int rc = abs ? fsio_read(abs, 256u << 20, &buf, NULL) : -EM_ENOMEM;
    v->files_checked++;
    if (rc < 0)
        add_finding(v, r->atlas_rel, 0, "cannot read: %s", em_strerror(rc));
    else if (epu_parse_buffer(EPU_KIND_ATLAS, abs, buf.data, buf.len, &r->atlas_doc, &diag) < 0)
        add_finding(v, r->atlas_rel, diag.line, "%s", diag.reason);
    else
        r->atlas_owned = true;
    fsio_buf_free(&buf);
    free(abs);
}

static int validate_run(struct validation *v, unsigned threads)
{
    struct tree *t = &v->tree;
    size_t n = 0;
    for (size_t i = 0; i < t->session_count; i++)
        n += tree_session_files(&t->sessions[i]);
    n += t->atlases.n;
    struct pool_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
    const char **rels = calloc(n ? n : 1, sizeof(*rels));
    char **abs = calloc(n ? n : 1, sizeof(*abs));
    v->reports = calloc(t->session_count ? t->session_count : 1, sizeof(*v->reports));
    v->atlas_docs = calloc(t->atlases.n ? t->atlases.n : 1, sizeof(*v->atlas_docs));
    size_t k = 0;
    int rc = -EM_ENOMEM;
    if (!jobs || !rels || !abs || !v->reports || !v->atlas_docs)
        goto out;
#define ADD(relpath, kd)                                                                           \
    do {                                                                                           \
        rels[k] = (relpath);                                                                       \
        if (!(abs[k] = tree_abs(t, rels[k])))                                                      \
            goto out;                                                                              \
        jobs[k].path = abs[k];                                                                     \
        jobs[k].kind = (kd);                                                                       \
        k++;                                                                                       \
    } while (0)
    for (size_t i = 0; i < t->atlases.n; i++)
        ADD(t->atlases.v[i], EPU_KIND_ATLAS);
    for (size_t i = 0; i < t->session_count; i++) {
        const struct tree_session *s = &t->sessions[i];
        if (s->epu_dm)
            ADD(s->epu_dm, EPU_KIND_SESSION);
        for (size_t j = 0; j < s->square_count; j++) {
            const struct tree_square *q = &s->squares[j];
            if (q->metadata)
                ADD(q->metadata, EPU_KIND_GRIDSQUARE_METADATA);
            for (size_t m = 0; m < q->images.n; m++)
                ADD(q->images.v[m], EPU_KIND_GRIDSQUARE_IMAGE);
            for (size_t m = 0; m < q->foilholes.n; m++)
                ADD(q->foilholes.v[m], EPU_KIND_FOILHOLE_IMAGE);
            for (size_t m = 0; m < q->micrographs.n; m++)
                ADD(q->micrographs.v[m], EPU_KIND_MICROGRAPH);
        }
    }
#undef ADD
    struct pool_array source = {.jobs = jobs, .n = n};
    struct pool *pool = pool_start(pool_array_source, &source, threads, VALIDATE_WINDOW);
    if (!pool)
        goto out;
    size_t at = 0;
    for (size_t i = 0; i < t->atlases.n; i++, at++)
        v->atlas_docs[i] = take(v, pool, rels[at]);
    for (size_t i = 0; i < t->session_count; i++) {
        struct session_report *r = &v->reports[i];
        const struct tree_session *s = &t->sessions[i];
        r->ts = s;
        if (s->epu_dm) {
            r->doc = take(v, pool, rels[at++]);
        } else {
            add_finding(v, s->dir, 0,
                        "no EpuSession.dm: the session was aborted or this is not an EPU "
                        "session directory");
        }
        if (!s->has_metadata)
            add_finding(v, s->dir, 0, "the Metadata/ directory is missing");
        if (s->images_discs == 0)
            add_finding(v, s->dir, 0, "no Images-Disc<N>/ directory: nothing was imaged");
        for (size_t j = 0; j < s->square_count; j++)
            check_square(v, r, &s->squares[j], pool, rels, &at);
        if (r->doc)
            check_atlas(v, r);
    }
    pool_free(pool);
    /* Other XML (atlas tiles, Sample.dm, ...) must at least be well-formed. */
    struct fsio_buf buf = {0};
    for (size_t i = 0; i < t->other_xml.n; i++) {
        const char *rel = t->other_xml.v[i];
        char *path = tree_abs(t, rel);
        struct epu_diag diag;
        int e = path ? fsio_read(path, 256u << 20, &buf, NULL) : -EM_ENOMEM;
        v->files_checked++;
        if (e < 0)
            add_finding(v, rel, 0, "cannot read: %s", em_strerror(e));
        else if (epu_check_wellformed(buf.data, buf.len, &diag) < 0)
            add_finding(v, rel, diag.line > 0 ? diag.line : 1, "%s", diag.reason);
        free(path);
    }
    fsio_buf_free(&buf);
    for (size_t i = 0; i < t->unplaced.n; i++)
        add_finding(v, t->unplaced.v[i], 0,
                    "EPU file outside a session's Metadata/ or "
                    "Images-Disc<N>/GridSquare_<gs>/ layout");
    for (size_t i = 0; i < t->unreadable.n; i++)
        add_finding(v, t->unreadable.v[i], 0, "cannot read the directory: %s",
                    t->unreadable_why.v[i]);
    if (t->session_count == 0)
        add_finding(v, ".", 0,
                    "no EPU session directory found (no EpuSession.dm, Metadata/ or "
                    "Images-Disc<N>/)");
    rc = v->error;
out:
    for (size_t i = 0; i < k; i++)
        free(abs[i]);
    free(abs);
    free(rels);
    free(jobs);
    return rc;
}

static void validation_free(struct validation *v)
{
    for (size_t i = 0; i < v->nfindings; i++) {
        free(v->findings[i].path);
        free(v->findings[i].message);
    }
    free(v->findings);
    if (v->reports) {
        for (size_t i = 0; i < v->tree.session_count; i++) {
            struct session_report *r = &v->reports[i];
            epu_doc_free(r->doc);
            free(r->atlas_rel);
            if (r->atlas_owned)
                epu_doc_free(r->atlas_doc);
        }
    }
    free(v->reports);
    if (v->atlas_docs)
        for (size_t i = 0; i < v->tree.atlases.n; i++)
            epu_doc_free(v->atlas_docs[i]);
    free(v->atlas_docs);
    tree_free(&v->tree);
}

static void print_text(const struct validation *v, const char *dir)
{
    for (size_t i = 0; i < v->tree.session_count; i++) {
        const struct session_report *r = &v->reports[i];
        printf("session %s", r->ts->dir);
        if (r->doc)
            printf(" (id %lld): %zu squares listed", (long long)r->doc->u.session.session_id.v,
                   r->doc->u.session.gridsquare_count);
        else
            printf(": no usable EpuSession.dm");
        printf(", %zu with metadata, %zu imaged, %zu micrographs", r->squares_with_metadata,
               r->squares_imaged, r->micrographs);
        if (r->atlas_doc)
            printf("; atlas %s (id %lld)", r->atlas_rel,
                   (long long)r->atlas_doc->u.atlas.atlas_id.v);
        printf("\n");
    }
    for (size_t i = 0; i < v->nfindings; i++) {
        const struct finding *f = &v->findings[i];
        if (f->line > 0)
            printf("finding: %s:%ld: %s\n", f->path, f->line, f->message);
        else
            printf("finding: %s: %s\n", f->path, f->message);
    }
    if (v->nfindings)
        printf("%s: %zu finding%s (%zu files checked)\n", dir, v->nfindings,
               v->nfindings == 1 ? "" : "s", v->files_checked);
    else
        printf("%s: valid (%zu files checked)\n", dir, v->files_checked);
}

static int print_json(const struct validation *v, const char *dir)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddBoolToObject(o, "valid", v->nfindings == 0);
    cJSON_AddNumberToObject(o, "files_checked", (double)v->files_checked);
    cJSON *sessions = cJSON_AddArrayToObject(o, "sessions");
    for (size_t i = 0; i < v->tree.session_count; i++) {
        const struct session_report *r = &v->reports[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToArray(sessions, s);
        cJSON_AddStringToObject(s, "path", r->ts->dir);
        if (r->doc) {
            cJSON_AddNumberToObject(s, "session_id", (double)r->doc->u.session.session_id.v);
            cJSON_AddStringToObject(s, "name", r->doc->u.session.name);
            cJSON_AddNumberToObject(s, "squares_listed",
                                    (double)r->doc->u.session.gridsquare_count);
        } else {
            cJSON_AddNullToObject(s, "session_id");
            cJSON_AddNullToObject(s, "name");
            cJSON_AddNullToObject(s, "squares_listed");
        }
        cJSON_AddNumberToObject(s, "squares_with_metadata", (double)r->squares_with_metadata);
        cJSON_AddNumberToObject(s, "squares_imaged", (double)r->squares_imaged);
        cJSON_AddNumberToObject(s, "micrographs", (double)r->micrographs);
        if (r->atlas_doc) {
            cJSON_AddStringToObject(s, "atlas", r->atlas_rel);
            cJSON_AddNumberToObject(s, "atlas_id", (double)r->atlas_doc->u.atlas.atlas_id.v);
        } else {
            cJSON_AddNullToObject(s, "atlas");
            cJSON_AddNullToObject(s, "atlas_id");
        }
    }
    cJSON *findings = cJSON_AddArrayToObject(o, "findings");
    for (size_t i = 0; i < v->nfindings; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToArray(findings, f);
        cJSON_AddStringToObject(f, "path", v->findings[i].path);
        if (v->findings[i].line > 0)
            cJSON_AddNumberToObject(f, "line", (double)v->findings[i].line);
        else
            cJSON_AddNullToObject(f, "line");
        cJSON_AddStringToObject(f, "message", v->findings[i].message);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return -EM_ENOMEM;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

int cmd_validate(int argc, char **argv)
{
    bool json = false;
    const char *dir = NULL;
    unsigned threads = uv_available_parallelism();
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(validate_usage, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if ((strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--jobs") == 0) && i + 1 < argc) {
            if (!cli_parse_jobs("validate", argv[++i], &threads))
                return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr,
                    "em-agent: validate: %s: unknown option (see 'em-agent help validate')\n",
                    argv[i]);
            return EXIT_USAGE;
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "em-agent: validate: %s: one DIR only (see 'em-agent help validate')\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "em-agent: validate: which directory? (see 'em-agent help validate')\n");
        return EXIT_USAGE;
    }
    struct validation v = {0};
    int rc = tree_scan(dir, &v.tree);
    if (rc < 0) {
        struct fsio_stat st;
        fprintf(stderr, "em-agent: %s: %s\n", dir,
                rc == -EM_ENOENT && fsio_stat(dir, &st) == 0 ? "not a directory" : em_strerror(rc));
        tree_free(&v.tree);
        return EXIT_BAD_INPUT;
    }
    rc = validate_run(&v, threads);
    if (rc == 0)
        rc = json ? print_json(&v, dir) : (print_text(&v, dir), 0);
    int status = rc < 0 || v.nfindings ? EXIT_BAD_INPUT : EXIT_OK;
    if (rc < 0)
        fprintf(stderr, "em-agent: %s: %s\n", dir, em_strerror(rc));
    if (fflush(stdout) != 0)
        status = EXIT_BAD_INPUT;
    validation_free(&v);
    return status;
}
