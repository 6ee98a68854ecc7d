/* em-agent scan DIR: parse a session or visit once and print its final entities as the
 * event stream of DESIGN §5.
 *
 * Files are parsed on worker threads (pool.h) and consumed here in a fixed order:
 * sessions, atlases, then each session's grid squares in ascending id, each square's
 * files in the order .dm, square images, foil-hole images, micrographs. A square's
 * entities are emitted as soon as its files are consumed and its documents freed, so
 * memory holds one square at a time however large the session is.
 */
#include "scan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "em_error.h"
#include "entity.h"
#include "epu.h"
#include "event.h"
#include "log.h"
#include "pool.h"
#include "tree.h"

#define SCAN_WINDOW 128

struct scan_atlas {
    char *rel;
    struct epu_doc *doc;
    struct fsio_stat st;
};

struct scan_session {
    struct tree_session *ts;
    struct epu_doc *doc; /* NULL when missing or unparseable */
    struct fsio_stat st;
    int atlas; /* index into atlases, or -1 */
    bool dup;  /* its EpuSession.dm holds an id seen earlier in the tree (a copy) */
};

/* One foil-hole image kept until its square is emitted. */
struct hole_image {
    int64_t foilhole_id;
    size_t order; /* position in name order: later is newer */
    struct pool_job *job;
    const char *rel;
};

struct scan {
    const struct scan_options *opt;
    struct tree tree;
    struct event_writer ev;
    struct scan_session *sessions;
    struct scan_atlas *atlases;
    size_t natlases, atlas_cap;
    struct pool_job *jobs;
    const char **rels; /* relative path of each job (owned by the tree) */
    char **abs;        /* the path each job reads (owned here) */
    size_t njobs, jobs_cap;
    struct pool *pool;
    /* statistics */
    size_t files_parsed, files_failed, files_skipped, bytes;
    size_t sessions_skipped;
    uint64_t started_ns, last_progress_ns;
};

static int add_job(struct scan *sc, const char *rel, enum epu_kind kind)
{
    if (sc->njobs == sc->jobs_cap) {
        size_t cap = sc->jobs_cap ? sc->jobs_cap * 2 : 1024;
        struct pool_job *j = realloc(sc->jobs, cap * sizeof(*j));
        if (!j)
            return -EM_ENOMEM;
        sc->jobs = j;
        const char **r = realloc(sc->rels, cap * sizeof(*r));
        if (!r)
            return -EM_ENOMEM;
        sc->rels = r;
        char **a = realloc(sc->abs, cap * sizeof(*a));
        if (!a)
            return -EM_ENOMEM;
        sc->abs = a;
        sc->jobs_cap = cap;
    }
    char *abs = tree_abs(&sc->tree, rel);
    if (!abs)
        return -EM_ENOMEM;
    struct pool_job *j = &sc->jobs[sc->njobs];
    memset(j, 0, sizeof(*j));
    j->path = abs;
    j->kind = kind;
    sc->rels[sc->njobs] = rel;
    sc->abs[sc->njobs] = abs;
    sc->njobs++;
    return 0;
}

static int build_jobs(struct scan *sc)
{
    struct tree *t = &sc->tree;
    int rc = 0;
    for (size_t i = 0; i < t->session_count && rc == 0; i++)
        if (t->sessions[i].epu_dm)
            rc = add_job(sc, t->sessions[i].epu_dm, EPU_KIND_SESSION);
    for (size_t i = 0; i < t->atlases.n && rc == 0; i++)
        rc = add_job(sc, t->atlases.v[i], EPU_KIND_ATLAS);
    for (size_t i = 0; i < t->session_count && rc == 0; i++) {
        struct tree_session *s = &t->sessions[i];
        if (!s->epu_dm) {
            size_t n = tree_session_files(s);
            if (n) {
                em_log(EM_LOG_WARN,
                       "%s: no EpuSession.dm (aborted session?): its %zu files have no "
                       "session id and are not emitted",
                       s->dir, n);
                sc->files_skipped += n;
                sc->sessions_skipped++;
            }
            continue;
        }
        for (size_t j = 0; j < s->square_count && rc == 0; j++) {
            struct tree_square *q = &s->squares[j];
            if (q->metadata)
                rc = add_job(sc, q->metadata, EPU_KIND_GRIDSQUARE_METADATA);
            for (size_t k = 0; k < q->images.n && rc == 0; k++)
                rc = add_job(sc, q->images.v[k], EPU_KIND_GRIDSQUARE_IMAGE);
            for (size_t k = 0; k < q->foilholes.n && rc == 0; k++)
                rc = add_job(sc, q->foilholes.v[k], EPU_KIND_FOILHOLE_IMAGE);
            for (size_t k = 0; k < q->micrographs.n && rc == 0; k++)
                rc = add_job(sc, q->micrographs.v[k], EPU_KIND_MICROGRAPH);
        }
    }
    return rc;
}

static void progress(struct scan *sc, bool final)
{
    if (!sc->opt->progress)
        return;
    uint64_t now = uv_hrtime();
    if (!final && now - sc->last_progress_ns < 200000000u)
        return;
    sc->last_progress_ns = now;
    double secs = (double)(now - sc->started_ns) / 1e9;
    size_t done = pool_done(sc->pool);
    if (final)
        fprintf(stderr, "\r\033[K");
    else
        fprintf(stderr, "\rscan: %zu/%zu files (%3.0f%%), %.0f files/s ", done, sc->njobs,
                sc->njobs ? 100.0 * (double)done / (double)sc->njobs : 100.0,
                secs > 0 ? (double)done / secs : 0.0);
    fflush(stderr);
}

/* Takes the next job and reports its failure. Returns the job; its doc is NULL on
 * failure. */
static struct pool_job *next_job(struct scan *sc, const char **rel)
{
    size_t i = pool_done(sc->pool);
    struct pool_job *j = pool_next(sc->pool);
    if (!j)
        return NULL;
    *rel = sc->rels[i];
    if ((i & 255) == 0)
        progress(sc, false);
    if (j->rc == 0) {
        sc->files_parsed++;
        sc->bytes += j->bytes;
    } else {
        sc->files_failed++;
        if (j->read_failed)
            em_log(EM_LOG_WARN, "%s: cannot read: %s", *rel, em_strerror(j->rc));
        else
            em_log(EM_LOG_WARN, "%s:%ld: %s", *rel, j->diag.line > 0 ? j->diag.line : 1,
                   j->diag.reason);
    }
    return j;
}

static int emit_atlas(struct scan *sc, struct scan_atlas *a)
{
    cJSON *data = entity_atlas_data(a->doc, a->rel);
    cJSON *key = entity_key("atlas_id", a->doc->u.atlas.atlas_id.v, NULL, 0, NULL);
    return event_emit(&sc->ev, WIRE_ATLAS, key, data, a->rel, &a->st);
}

static int emit_session(struct scan *sc, struct scan_session *s)
{
    const struct epu_atlas *at = s->atlas >= 0 ? &sc->atlases[s->atlas].doc->u.atlas : NULL;
    cJSON *data = entity_session_data(s->doc, s->ts->dir, at != NULL, at ? at->atlas_id.v : 0);
    cJSON *key = entity_key("session_id", s->doc->u.session.session_id.v, NULL, 0, NULL);
    return event_emit(&sc->ev, WIRE_SESSION, key, data, s->ts->epu_dm, &s->st);
}

/* Resolves each session's atlas; parses atlases that lie outside the scanned tree. */
static int link_atlases(struct scan *sc)
{
    for (size_t i = 0; i < sc->tree.session_count; i++) {
        struct scan_session *s = &sc->sessions[i];
        s->atlas = -1;
        if (!s->doc)
            continue;
        const struct epu_session *es = &s->doc->u.session;
        char *rel = tree_find_atlas(&sc->tree, s->ts, es->atlas_path, es->storage_path);
        if (!rel) {
            if (es->atlas_path)
                em_log(EM_LOG_WARN, "%s: atlas %s not found", s->ts->epu_dm, es->atlas_path);
            continue;
        }
        for (size_t k = 0; k < sc->natlases && s->atlas < 0; k++)
            if (strcmp(sc->atlases[k].rel, rel) == 0)
                s->atlas = sc->atlases[k].doc ? (int)k : -1;
        if (s->atlas >= 0 || strncmp(rel, "../", 3) != 0) {
            free(rel);
            continue;
        }
        /* Outside the tree (scanning one grid dir of a visit): read it here. */
        struct fsio_buf buf = {0};
        struct scan_atlas a = {.rel = rel};
        char *abs = tree_abs(&sc->tree, rel);
        struct epu_diag diag;
        int rc = abs ? fsio_stat(abs, &a.st) : -EM_ENOMEM;
        if (rc == 0)
            rc = fsio_read(abs, 256u << 20, &buf, NULL);
        if (rc == 0)
            rc = epu_parse_buffer(EPU_KIND_ATLAS, abs, buf.data, buf.len, &a.doc, &diag);
        if (rc < 0)
            em_log(EM_LOG_WARN, "%s: %s", rel, rc == -EM_EIO ? em_strerror(rc) : diag.reason);
        free(abs);
        fsio_buf_free(&buf);
        if (rc < 0 || sc->natlases == sc->atlas_cap) {
            epu_doc_free(a.doc);
            free(rel);
            continue;
        }
        sc->atlases[sc->natlases] = a;
        s->atlas = (int)sc->natlases++;
        sc->files_parsed++;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The square's state while its files are consumed. */
struct square_work {
    int64_t session_id, gridsquare_id;
    bool in_session;
    const struct epu_atlas_square *node;
    int64_t atlas_id;
    bool has_atlas;
    struct pool_job *meta, *image;
    const char *meta_rel, *image_rel;
    struct hole_image *holes;
    size_t nholes, holes_cap;
    const struct epu_exposure **exposures; /* sorted by base_filename */
    size_t nexposures;
    bool emitted;
};

static int emit_square(struct scan *sc, struct square_work *w, const struct scan_session *s)
{
    const struct epu_gridsquare_metadata *g = w->meta ? &w->meta->doc->u.gridsquare : NULL;
    cJSON *data = entity_square_data(
        w->session_id, w->gridsquare_id, w->has_atlas, w->atlas_id, w->in_session,
        w->node ? entity_atlas_node_part(w->node) : NULL, g ? entity_metadata_part(g) : NULL,
        w->image
            ? entity_image_part(&w->image->doc->u.image, EPU_KIND_GRIDSQUARE_IMAGE, w->image_rel)
            : NULL);
    cJSON *key = entity_key("session_id", w->session_id, "gridsquare_id", w->gridsquare_id, NULL);
    const char *src = w->meta ? w->meta_rel : w->image ? w->image_rel : s->ts->epu_dm;
    const struct fsio_stat *st = w->meta ? &w->meta->stat : w->image ? &w->image->stat : &s->st;
    return event_emit(&sc->ev, WIRE_GRIDSQUARE, key, data, src, st);
}

static int emit_hole(struct scan *sc, struct square_work *w, int64_t fh,
                     const struct epu_foilhole_target *target, const struct hole_image *img)
{
    cJSON *data = entity_hole_data(
        w->session_id, w->gridsquare_id, fh, target ? entity_target_part(target) : NULL,
        img ? entity_image_part(&img->job->doc->u.image, EPU_KIND_FOILHOLE_IMAGE, img->rel) : NULL);
    cJSON *key = entity_key("session_id", w->session_id, "foilhole_id", fh, NULL);
    return event_emit(&sc->ev, WIRE_FOILHOLE, key, data, img ? img->rel : w->meta_rel,
                      img ? &img->job->stat : &w->meta->stat);
}

static int cmp_hole_image(const void *a, const void *b)
{
    const struct hole_image *x = a, *y = b;
    if (x->foilhole_id != y->foilhole_id)
        return (x->foilhole_id > y->foilhole_id) - (x->foilhole_id < y->foilhole_id);
    return (x->order > y->order) - (x->order < y->order);
}

/* Emits the square and its holes: the union of the .dm's targets and the holes that
 * have images, the newest image of each. */
static int emit_square_and_holes(struct scan *sc, struct square_work *w,
                                 const struct scan_session *s)
{
    w->emitted = true;
    int rc = emit_square(sc, w, s);
    if (rc < 0)
        return rc;
    if (w->nholes > 1)
        qsort(w->holes, w->nholes, sizeof(*w->holes), cmp_hole_image);
    const struct epu_gridsquare_metadata *g = w->meta ? &w->meta->doc->u.gridsquare : NULL;
    size_t nt = g ? g->foilhole_count : 0, ti = 0, hi = 0;
    while (rc == 0 && (ti < nt || hi < w->nholes)) {
        int64_t t_id = ti < nt ? g->foilholes[ti].foilhole_id.v : INT64_MAX;
        int64_t h_id = hi < w->nholes ? w->holes[hi].foilhole_id : INT64_MAX;
        int64_t fh = t_id < h_id ? t_id : h_id;
        const struct epu_foilhole_target *target = t_id == fh ? &g->foilholes[ti++] : NULL;
        const struct hole_image *img = NULL;
        while (hi < w->nholes && w->holes[hi].foilhole_id == fh)
            img = &w->holes[hi++]; /* the last is the newest */
        rc = emit_hole(sc, w, fh, target, img);
    }
    return rc;
}

static int index_exposures(struct square_work *w)
{
    const struct epu_gridsquare_metadata *g = &w->meta->doc->u.gridsquare;
    w->exposures = malloc((g->exposure_count ? g->exposure_count : 1) * sizeof(*w->exposures));
    if (!w->exposures)
        return -EM_ENOMEM;
    for (size_t i = 0; i < g->exposure_count; i++)
        if (g->exposures[i].base_filename)
            w->exposures[w->nexposures++] = &g->exposures[i];
    if (w->nexposures > 1)
        qsort(w->exposures, w->nexposures, sizeof(*w->exposures), entity_exposure_cmp);
    return 0;
}

static int emit_micrograph(struct scan *sc, struct square_work *w, struct pool_job *j,
                           const char *rel)
{
    const struct epu_exposure *e = entity_find_exposure(w->exposures, w->nexposures, rel);
    cJSON *data =
        entity_micrograph_data(j->doc, w->session_id, e != NULL, e ? e->exposure_id.v : 0);
    cJSON *key =
        entity_key("session_id", w->session_id, "micrograph_uuid", 0, j->doc->u.image.image_uuid);
    return event_emit(&sc->ev, WIRE_MICROGRAPH, key, data, rel, &j->stat);
}

static void square_work_free(struct square_work *w)
{
    for (size_t i = 0; i < w->nholes; i++) {
        epu_doc_free(w->holes[i].job->doc);
        w->holes[i].job->doc = NULL;
    }
    free(w->holes);
    free(w->exposures);
    if (w->meta) {
        epu_doc_free(w->meta->doc);
        w->meta->doc = NULL;
    }
    if (w->image) {
        epu_doc_free(w->image->doc);
        w->image->doc = NULL;
    }
}

/* Consumes the jobs of tree square `q` (NULL when the square has no files) and emits
 * the square, its holes and its micrographs. */
static int do_square(struct scan *sc, struct scan_session *s, int64_t gs,
                     const struct tree_square *q)
{
    const struct epu_session *es = &s->doc->u.session;
    const struct epu_atlas *at = s->atlas >= 0 ? &sc->atlases[s->atlas].doc->u.atlas : NULL;
    struct square_work w = {.session_id = es->session_id.v, .gridsquare_id = gs};
    w.in_session =
        bsearch(&gs, es->gridsquare_ids, es->gridsquare_count, sizeof(int64_t), cmp_i64) != NULL;
    w.node = entity_atlas_node(at, gs);
    if (w.node) {
        w.has_atlas = true;
        w.atlas_id = at->atlas_id.v;
    }
    int rc = 0;
    size_t njobs = q ? (q->metadata ? 1 : 0) + q->images.n + q->foilholes.n + q->micrographs.n : 0;
    size_t before_micrographs = q ? njobs - q->micrographs.n : 0;
    for (size_t i = 0; i < njobs; i++) {
        const char *rel;
        struct pool_job *j = next_job(sc, &rel);
        if (!j)
            return -EM_ESTATE;
        if (i == before_micrographs && !w.emitted && (rc = emit_square_and_holes(sc, &w, s)) < 0)
            break;
        if (!j->doc)
            continue;
        switch (j->kind) {
        case EPU_KIND_GRIDSQUARE_METADATA:
            w.meta = j;
            w.meta_rel = rel;
            rc = index_exposures(&w);
            break;
        case EPU_KIND_GRIDSQUARE_IMAGE:
            /* Names end in _<date>_<time> and come in name order: the last is newest. */
            if (w.image)
                epu_doc_free(w.image->doc), w.image->doc = NULL;
            w.image = j;
            w.image_rel = rel;
            break;
        case EPU_KIND_FOILHOLE_IMAGE:
            if (w.nholes == w.holes_cap) {
                size_t cap = w.holes_cap ? w.holes_cap * 2 : 64;
                struct hole_image *h = realloc(w.holes, cap * sizeof(*h));
                if (!h) {
                    rc = -EM_ENOMEM;
                    break;
                }
                w.holes = h;
                w.holes_cap = cap;
            }
            w.holes[w.nholes] = (struct hole_image){
                .foilhole_id = j->doc->u.image.foilhole_id.v, .order = i, .job = j, .rel = rel};
            w.nholes++;
            break;
        case EPU_KIND_MICROGRAPH:
            rc = emit_micrograph(sc, &w, j, rel);
            epu_doc_free(j->doc);
            j->doc = NULL;
            break;
        default:
            break;
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && !w.emitted)
        rc = emit_square_and_holes(sc, &w, s);
    square_work_free(&w);
    return rc;
}

/* Squares of a session: its list, its atlas's nodes and the squares with files, merged
 * in ascending id. */
static int do_session(struct scan *sc, struct scan_session *s)
{
    const struct epu_session *es = &s->doc->u.session;
    const struct epu_atlas *at = s->atlas >= 0 ? &sc->atlases[s->atlas].doc->u.atlas : NULL;
    const struct tree_session *ts = s->ts;
    size_t a = 0, b = 0, c = 0;
    size_t na = es->gridsquare_count, nb = at ? at->gridsquare_count : 0, nc = ts->square_count;
    int rc = emit_session(sc, s);
    while (rc == 0 && (a < na || b < nb || c < nc)) {
        int64_t ga = a < na ? es->gridsquare_ids[a] : INT64_MAX;
        int64_t gb = b < nb ? at->gridsquares[b].gridsquare_id.v : INT64_MAX;
        int64_t gc = c < nc ? ts->squares[c].gridsquare_id : INT64_MAX;
        int64_t gs = ga < gb ? ga : gb;
        gs = gc < gs ? gc : gs;
        const struct tree_square *q = gc == gs ? &ts->squares[c] : NULL;
        while (a < na && es->gridsquare_ids[a] == gs)
            a++;
        while (b < nb && at->gridsquares[b].gridsquare_id.v == gs)
            b++;
        if (q)
            c++;
        rc = do_square(sc, s, gs, q);
    }
    return rc;
}

static int emit_aborted(struct scan *sc, const struct tree_session *ts)
{
    cJSON *data;
    cJSON *key = entity_aborted_key(ts->dir, &data);
    if (!key)
        return -EM_ENOMEM;
    return event_emit(&sc->ev, WIRE_ABORTED_SESSION, key, data, ts->dir, NULL);
}

/* Consumes a session's square jobs without emitting (its EpuSession.dm failed). */
static void skip_session(struct scan *sc, const struct tree_session *ts)
{
    for (size_t j = 0; j < ts->square_count; j++) {
        const struct tree_square *q = &ts->squares[j];
        size_t n = (q->metadata ? 1 : 0) + q->images.n + q->foilholes.n + q->micrographs.n;
        for (size_t k = 0; k < n; k++) {
            const char *rel;
            struct pool_job *job = next_job(sc, &rel);
            if (job) {
                epu_doc_free(job->doc);
                job->doc = NULL;
            }
            sc->files_skipped++;
        }
    }
}

static int run(struct scan *sc)
{
    struct tree *t = &sc->tree;
    int rc = build_jobs(sc);
    if (rc < 0)
        return rc;
    sc->sessions = calloc(t->session_count ? t->session_count : 1, sizeof(*sc->sessions));
    sc->atlas_cap = t->atlases.n + t->session_count;
    sc->atlases = calloc(sc->atlas_cap ? sc->atlas_cap : 1, sizeof(*sc->atlases));
    if (!sc->sessions || !sc->atlases)
        return -EM_ENOMEM;
    sc->pool = pool_start(sc->jobs, sc->njobs, sc->opt->threads, SCAN_WINDOW);
    if (!sc->pool)
        return -EM_ENOMEM;
    const char *rel;
    for (size_t i = 0; i < t->session_count; i++) {
        struct scan_session *s = &sc->sessions[i];
        s->ts = &t->sessions[i];
        s->atlas = -1;
        if (!s->ts->epu_dm)
            continue;
        struct pool_job *j = next_job(sc, &rel);
        s->doc = j->doc;
        s->st = j->stat;
        j->doc = NULL;
    }
    for (size_t i = 0; i < t->atlases.n; i++) {
        struct pool_job *j = next_job(sc, &rel);
        struct scan_atlas *a = &sc->atlases[sc->natlases++];
        a->rel = strdup(rel);
        if (!a->rel)
            return -EM_ENOMEM;
        a->doc = j->doc;
        a->st = j->stat;
        j->doc = NULL;
    }
    link_atlases(sc);
    for (size_t i = 0; i < sc->natlases && rc == 0; i++)
        if (sc->atlases[i].doc)
            rc = emit_atlas(sc, &sc->atlases[i]);
    /* A session id seen twice (a copied session dir) would give duplicate keys. */
    for (size_t i = 0; i < t->session_count; i++) {
        struct scan_session *s = &sc->sessions[i];
        for (size_t k = 0; s->doc && k < i; k++) {
            if (sc->sessions[k].doc &&
                sc->sessions[k].doc->u.session.session_id.v == s->doc->u.session.session_id.v) {
                em_log(EM_LOG_WARN, "%s: session id %lld already seen in %s (skipped)",
                       s->ts->epu_dm, (long long)s->doc->u.session.session_id.v,
                       sc->sessions[k].ts->epu_dm);
                epu_doc_free(s->doc);
                s->doc = NULL;
                s->dup = true;
            }
        }
    }
    for (size_t i = 0; i < t->session_count && rc == 0; i++) {
        struct scan_session *s = &sc->sessions[i];
        if (s->doc)
            rc = do_session(sc, s);
        else if (s->ts->epu_dm)
            skip_session(sc, s->ts);
        /* EPU files but no usable EpuSession.dm: the directory is listed as aborted (not
         * a copy: that has an id, held by the directory earlier in the tree). */
        if (rc == 0 && !s->doc && !s->dup && s->ts->square_count > 0)
            rc = emit_aborted(sc, s->ts);
    }
    return rc < 0 ? rc : sc->ev.error;
}

static void scan_free(struct scan *sc)
{
    pool_free(sc->pool);
    for (size_t i = 0; i < sc->njobs; i++)
        free(sc->abs[i]);
    free(sc->abs);
    free(sc->jobs);
    free(sc->rels);
    if (sc->sessions)
        for (size_t i = 0; i < sc->tree.session_count; i++)
            epu_doc_free(sc->sessions[i].doc);
    free(sc->sessions);
    for (size_t i = 0; i < sc->natlases; i++) {
        epu_doc_free(sc->atlases[i].doc);
        free(sc->atlases[i].rel);
    }
    free(sc->atlases);
    tree_free(&sc->tree);
}

int scan_run(const struct scan_options *opt, struct scan_summary *sum)
{
    struct scan sc = {.opt = opt};
    memset(sum, 0, sizeof(*sum));
    sc.started_ns = uv_hrtime();
    int rc = tree_scan(opt->dir, &sc.tree);
    if (rc < 0)
        return rc;
    event_writer_init(&sc.ev, opt->out, opt->agent, 0);
    rc = run(&sc);
    progress(&sc, true);
    bool flush_failed = fflush(opt->out) != 0;
    if (flush_failed && rc == 0)
        rc = em_from_errno(errno);
    sum->output_failed = rc < 0 && (sc.ev.error != 0 || flush_failed);
    sum->files_walked = sc.tree.files;
    sum->dirs_failed = sc.tree.dirs_failed;
    sum->files_parsed = sc.files_parsed;
    sum->files_failed = sc.files_failed;
    sum->files_skipped = sc.files_skipped;
    sum->sessions_skipped = sc.sessions_skipped;
    sum->unplaced = sc.tree.unplaced.n;
    sum->bytes = sc.bytes;
    memcpy(sum->events, sc.ev.count, sizeof(sum->events));
    sum->seconds = (double)(uv_hrtime() - sc.started_ns) / 1e9;
    scan_free(&sc);
    return rc;
}
