/* The validator (validate.h): files read and parsed on the pool, then the checks. */
#include "em_compat.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"
#include "epu.h"
#include "fsio.h"
#include "log.h"
#include "pool.h"
#include "tree.h"

#define VALIDATE_WINDOW 128

static void add_finding(struct validation *v, const char *path, long line, const char *fmt, ...)
    EM_PRINTF(4, 5);

static void add_finding(struct validation *v, const char *path, long line, const char *fmt, ...)
{
    struct finding *grown = em_grow(v->findings, v->nfindings, &v->cap, sizeof(*grown), 16);
    if (!grown) {
        v->error = -EM_ENOMEM;
        return;
    }
    v->findings = grown;
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

int validate_run(struct validation *v, unsigned threads)
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

void validation_free(struct validation *v)
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
