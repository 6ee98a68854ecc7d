/* em-agent scan DIR: parse a session or visit once and print its final entities as the
 * event stream of DESIGN §5.
 *
 * Two passes, so that memory does not grow with the number of files:
 *   1. The layout walk lists every directory once and keeps only what is small: the
 *      session directories, the atlases, and per grid square its .dm and the directories
 *      that hold its images (never a path per image).
 *   2. Files are parsed on worker threads (pool.h) in a fixed order: sessions, atlases,
 *      then each session's grid squares in ascending id, each square's files in the order
 *      .dm, square images, foil-hole images, micrographs. A square's image directories are
 *      listed again only when its files are due, so at most one window of squares is held.
 *      A square's entities are emitted as soon as its files are consumed and its documents
 *      freed.
 */
#include "em_compat.h"
#include "scan.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "dataset.h"
#include "dynbuf.h"
#include "em_error.h"
#include "entity.h"
#include "epu.h"
#include "epu_layout.h"
#include "event.h"
#include "fswalk.h"
#include "log.h"
#include "pool.h"
#include "tree.h"

#define SCAN_WINDOW 128

/* ---- pass 1: the layout ---------------------------------------------------------------- */

struct lay_square {
    int64_t gridsquare_id;
    char *metadata; /* Metadata/GridSquare_<gs>.dm relative to the root, or NULL */
    uint32_t *dirs; /* directories holding its images (indexes into layout.dirs) */
    uint32_t ndirs, dirs_cap;
};

struct lay_session {
    char *dir;                  /* relative to the root; "." for the root itself */
    char *epu_dm;               /* <dir>/EpuSession.dm, or NULL (aborted session) */
    struct lay_square *squares; /* ascending id after the walk */
    size_t nsquares, squares_cap;
    size_t files; /* its EPU files besides EpuSession.dm */
};

struct layout {
    const char *root;
    struct lay_session *sessions; /* in walk order */
    size_t nsessions, sessions_cap;
    struct strvec atlases;
    struct strvec datasets; /* loader records (dataset.h), relative to the root */
    struct strvec dirs;     /* directories holding square images, relative to the root */
    size_t files, dirs_walked, dirs_failed, unplaced;
};

static char *rel_join(const char *dir, const char *name)
{
    if (strcmp(dir, ".") == 0 || dir[0] == '\0')
        return strdup(name);
    return fsio_join(dir, name);
}

static char *abs_of(const char *root, const char *rel)
{
    return strcmp(rel, ".") == 0 ? strdup(root) : fsio_join(root, rel);
}

/* The session of directory rel[0..len) ("." when len is 0), made when new. */
static struct lay_session *session_get(struct layout *L, const char *rel, size_t len)
{
    const char *dir = len ? rel : ".";
    size_t n = len ? len : 1;
    /* Files of one session arrive together, so the newest session is the likely one. */
    for (size_t i = L->nsessions; i-- > 0;) {
        const char *d = L->sessions[i].dir;
        if (strlen(d) == n && strncmp(d, dir, n) == 0)
            return &L->sessions[i];
    }
    struct lay_session *v = em_grow(L->sessions, L->nsessions, &L->sessions_cap, sizeof(*v), 4);
    if (!v)
        return NULL;
    L->sessions = v;
    struct lay_session *s = &L->sessions[L->nsessions];
    memset(s, 0, sizeof(*s));
    if (!(s->dir = em_strndup(dir, n)))
        return NULL;
    L->nsessions++;
    return s;
}

static struct lay_square *square_get(struct lay_session *s, int64_t gs)
{
    for (size_t i = s->nsquares; i-- > 0;)
        if (s->squares[i].gridsquare_id == gs)
            return &s->squares[i];
    struct lay_square *v = em_grow(s->squares, s->nsquares, &s->squares_cap, sizeof(*v), 16);
    if (!v)
        return NULL;
    s->squares = v;
    struct lay_square *q = &s->squares[s->nsquares++];
    memset(q, 0, sizeof(*q));
    q->gridsquare_id = gs;
    return q;
}

/* Index of the directory `dir` in L->dirs, added when new. Files of one directory come
 * together, so the last one is checked first. */
static int64_t dir_index(struct layout *L, const char *dir)
{
    if (L->dirs.n > 0 && strcmp(L->dirs.v[L->dirs.n - 1], dir) == 0)
        return (int64_t)L->dirs.n - 1;
    if (L->dirs.n >= UINT32_MAX || strvec_push(&L->dirs, dir) < 0)
        return -EM_ENOMEM;
    return (int64_t)L->dirs.n - 1;
}

/* Notes the file `rel` found in the directory `dir`. */
static int lay_file(void *ctx, const char *dir, const char *rel, const char *name)
{
    (void)name;
    struct layout *L = ctx;
    struct epu_place pl;
    epu_layout_place(rel, &pl);
    if (pl.unplaced) {
        L->unplaced++;
        return 0;
    }
    if (pl.kind == EPU_KIND_ATLAS)
        return strvec_push(&L->atlases, rel);
    if (pl.kind == EPU_KIND_NONE)
        return dataset_is_record(rel) ? strvec_push(&L->datasets, rel) : 0;
    struct lay_session *s = session_get(L, rel, pl.session_len);
    if (!s)
        return -EM_ENOMEM;
    if (pl.kind == EPU_KIND_SESSION) {
        if (!s->epu_dm && !(s->epu_dm = strdup(rel)))
            return -EM_ENOMEM;
        return 0;
    }
    struct lay_square *q = square_get(s, pl.gridsquare_id);
    if (!q)
        return -EM_ENOMEM;
    s->files++;
    if (pl.kind == EPU_KIND_GRIDSQUARE_METADATA) {
        if (!q->metadata && !(q->metadata = strdup(rel)))
            return -EM_ENOMEM;
        return 0;
    }
    int64_t di = dir_index(L, dir);
    if (di < 0)
        return (int)di;
    /* A square's directories, each once (a directory's files may come on both sides of
     * a subdirectory in name order). */
    for (uint32_t k = 0; k < q->ndirs; k++)
        if (q->dirs[k] == (uint32_t)di || strcmp(L->dirs.v[q->dirs[k]], dir) == 0)
            return 0;
    size_t cap = q->dirs_cap;
    uint32_t *v = q->ndirs < UINT32_MAX ? em_grow(q->dirs, q->ndirs, &cap, sizeof(*v), 4) : NULL;
    if (!v || cap > UINT32_MAX)
        return v ? (q->dirs = v, -EM_ELIMIT) : -EM_ENOMEM;
    q->dirs = v;
    q->dirs_cap = (uint32_t)cap;
    q->dirs[q->ndirs++] = (uint32_t)di;
    return 0;
}

/* Metadata/ and Images-Disc<N>/ mark their parent as a session directory. */
static int lay_dir(void *ctx, const char *dir, const char *rel, const char *name)
{
    (void)rel;
    struct layout *L = ctx;
    bool metadata;
    if (epu_layout_session_marker(name, &metadata) &&
        !session_get(L, dir, strcmp(dir, ".") == 0 ? 0 : strlen(dir)))
        return -EM_ENOMEM;
    return 1;
}

static int lay_unreadable(void *ctx, const char *rel, int err)
{
    (void)rel, (void)err;
    ((struct layout *)ctx)->dirs_failed++;
    return 0;
}

static int cmp_square(const void *a, const void *b)
{
    int64_t x = ((const struct lay_square *)a)->gridsquare_id;
    int64_t y = ((const struct lay_square *)b)->gridsquare_id;
    return (x > y) - (x < y);
}

static void layout_free(struct layout *L)
{
    for (size_t i = 0; i < L->nsessions; i++) {
        struct lay_session *s = &L->sessions[i];
        for (size_t j = 0; j < s->nsquares; j++) {
            free(s->squares[j].metadata);
            free(s->squares[j].dirs);
        }
        free(s->squares);
        free(s->dir);
        free(s->epu_dm);
    }
    free(L->sessions);
    strvec_free(&L->atlases);
    strvec_free(&L->datasets);
    strvec_free(&L->dirs);
    memset(L, 0, sizeof(*L));
}

static int layout_walk(const char *root, struct layout *L)
{
    memset(L, 0, sizeof(*L));
    L->root = root;
    struct fsio_stat st;
    int rc = fsio_stat(root, &st);
    if (rc < 0)
        return rc;
    if (st.type != FSIO_DIR)
        return -EM_ENOENT;
    struct fswalk_cb cb = {lay_dir, lay_file, lay_unreadable, L};
    struct fswalk_stats stats;
    rc = fswalk(root, &cb, &stats);
    L->files = stats.files;
    L->dirs_walked = stats.dirs;
    if (rc < 0) {
        layout_free(L);
        return rc;
    }
    for (size_t i = 0; i < L->nsessions; i++)
        if (L->sessions[i].nsquares > 1)
            qsort(L->sessions[i].squares, L->sessions[i].nsquares, sizeof(struct lay_square),
                  cmp_square);
    return 0;
}

/* ---- pass 2: the jobs, produced as the window moves ------------------------------------ */

/* One square's files, listed when they are due. The producer hands it to the consumer
 * with the square's first job (a marker of kind EPU_KIND_NONE). Batches stay on the
 * producer's list, oldest first; the consumer marks one done when it has taken all its
 * files, and the producer frees done batches from the front of the list as it makes new
 * ones (so at most about a window of squares is held). */
struct batch {
    size_t session, square;
    struct strvec images, foilholes, micrographs;
    size_t njobs; /* files after the marker: .dm, images, foil holes, micrographs */
    atomic_bool done;
    struct batch *next;
};

static void batch_free(struct batch *b)
{
    strvec_free(&b->images);
    strvec_free(&b->foilholes);
    strvec_free(&b->micrographs);
    free(b);
}

struct producer {
    const struct layout *L;
    int stage; /* 0 sessions, 1 atlases, 2 squares */
    size_t si, qi, ai;
    struct batch *b;           /* the batch being handed out */
    size_t bpos;               /* its next file */
    struct batch *head, *tail; /* every batch not yet freed, oldest first */
};

static void batches_free(struct producer *p, bool all)
{
    while (p->head && (all || atomic_load(&p->head->done))) {
        struct batch *b = p->head;
        p->head = b->next;
        batch_free(b);
    }
    if (!p->head)
        p->tail = NULL;
}

/* Lists the directories of square `q` of session `s` and keeps that square's images. */
static struct batch *batch_make(const struct layout *L, size_t si, size_t qi)
{
    const struct lay_session *s = &L->sessions[si];
    const struct lay_square *q = &s->squares[qi];
    struct batch *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    atomic_init(&b->done, false);
    b->session = si;
    b->square = qi;
    int rc = 0;
    for (uint32_t d = 0; d < q->ndirs && rc == 0; d++) {
        const char *dir = L->dirs.v[q->dirs[d]];
        char *abs = abs_of(L->root, dir);
        struct fsio_entry *e = NULL;
        size_t n = 0;
        rc = abs ? fsio_list(abs, &e, &n) : -EM_ENOMEM;
        free(abs);
        if (rc < 0) {
            if (rc != -EM_ENOMEM)
                em_log(EM_LOG_WARN, "%s: cannot list the directory: %s (skipped)", dir,
                       em_strerror(rc));
            rc = rc == -EM_ENOMEM ? rc : 0;
            continue;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (e[i].type != FSIO_FILE)
                continue;
            char *rel = rel_join(dir, e[i].name);
            if (!rel) {
                rc = -EM_ENOMEM;
                break;
            }
            struct epu_place pl;
            epu_layout_place(rel, &pl);
            if (!pl.unplaced && pl.gridsquare_id == q->gridsquare_id &&
                epu_layout_in_session(rel, &pl, s->dir)) {
                if (pl.kind == EPU_KIND_GRIDSQUARE_IMAGE)
                    rc = strvec_push(&b->images, rel);
                else if (pl.kind == EPU_KIND_FOILHOLE_IMAGE)
                    rc = strvec_push(&b->foilholes, rel);
                else if (pl.kind == EPU_KIND_MICROGRAPH)
                    rc = strvec_push(&b->micrographs, rel);
            }
            free(rel);
        }
        fsio_entries_free(e, n);
    }
    if (rc < 0) {
        batch_free(b);
        return NULL;
    }
    strvec_sort(&b->images);
    strvec_sort(&b->foilholes);
    strvec_sort(&b->micrographs);
    b->njobs = (q->metadata ? 1 : 0) + b->images.n + b->foilholes.n + b->micrographs.n;
    return b;
}

static int job_for(const struct layout *L, const char *rel, enum epu_kind kind, void *tag,
                   struct pool_job *job)
{
    job->path = abs_of(L->root, rel);
    if (!job->path)
        return -EM_ENOMEM;
    job->rel_off = strlen(job->path) - strlen(rel);
    job->kind = kind;
    job->tag = tag;
    return 1;
}

/* The pool's source: the jobs in the order the consumer takes them. */
static int produce(void *ctx, struct pool_job *job)
{
    struct producer *p = ctx;
    const struct layout *L = p->L;
    if (p->stage == 0) {
        while (p->si < L->nsessions && !L->sessions[p->si].epu_dm)
            p->si++;
        if (p->si < L->nsessions) {
            size_t i = p->si++;
            return job_for(L, L->sessions[i].epu_dm, EPU_KIND_SESSION, NULL, job);
        }
        p->stage = 1;
    }
    if (p->stage == 1) {
        if (p->ai < L->atlases.n) {
            size_t i = p->ai++;
            return job_for(L, L->atlases.v[i], EPU_KIND_ATLAS, NULL, job);
        }
        p->stage = 2;
        p->si = p->qi = 0;
    }
    if (p->b) {
        struct batch *b = p->b;
        const struct lay_square *q = &L->sessions[b->session].squares[b->square];
        size_t k = p->bpos++;
        if (p->bpos == b->njobs)
            p->b = NULL; /* the consumer frees it once it has taken this job */
        if (q->metadata && k == 0)
            return job_for(L, q->metadata, EPU_KIND_GRIDSQUARE_METADATA, b, job);
        k -= q->metadata ? 1 : 0;
        if (k < b->images.n)
            return job_for(L, b->images.v[k], EPU_KIND_GRIDSQUARE_IMAGE, b, job);
        k -= b->images.n;
        if (k < b->foilholes.n)
            return job_for(L, b->foilholes.v[k], EPU_KIND_FOILHOLE_IMAGE, b, job);
        k -= b->foilholes.n;
        return job_for(L, b->micrographs.v[k], EPU_KIND_MICROGRAPH, b, job);
    }
    for (;;) {
        while (p->si < L->nsessions &&
               (!L->sessions[p->si].epu_dm || p->qi >= L->sessions[p->si].nsquares)) {
            p->si++;
            p->qi = 0;
        }
        if (p->si >= L->nsessions)
            return 0;
        batches_free(p, false);
        struct batch *b = batch_make(L, p->si, p->qi++);
        if (!b)
            return -EM_ENOMEM;
        if (p->tail)
            p->tail->next = b;
        else
            p->head = b;
        p->tail = b;
        job->kind = EPU_KIND_NONE;
        job->tag = b;
        if (b->njobs > 0) {
            p->b = b;
            p->bpos = 0;
        }
        return 1;
    }
}

/* ---- the consumer: entities in order ---------------------------------------------------- */

/* A parsed file taken from the pool. */
struct taken {
    struct epu_doc *doc; /* NULL when it failed */
    struct fsio_stat stat;
    char *path;      /* owned */
    const char *rel; /* inside path */
};

static void taken_clear(struct taken *t)
{
    epu_doc_free(t->doc);
    free(t->path);
    memset(t, 0, sizeof(*t));
}

struct scan_atlas {
    char *rel;
    struct epu_doc *doc;
    struct fsio_stat st;
};

struct scan_session {
    const struct lay_session *ls;
    struct epu_doc *doc; /* NULL when missing or unparseable */
    struct fsio_stat st;
    int atlas; /* index into atlases, or -1 */
    bool dup;  /* its EpuSession.dm holds an id seen earlier in the tree (a copy) */
};

/* One foil-hole image kept until its square is emitted. */
struct hole_image {
    int64_t foilhole_id;
    size_t order; /* position in name order: later is newer */
    struct taken t;
};

struct scan {
    const struct scan_options *opt;
    struct layout layout;
    struct event_writer ev;
    struct scan_session *sessions;
    struct scan_atlas *atlases;
    size_t natlases, atlas_cap;
    struct producer producer;
    struct pool *pool;
    size_t total_jobs; /* files the layout walk found to parse (for progress) */
    /* statistics */
    size_t files_parsed, files_failed, files_skipped, bytes;
    size_t sessions_skipped;
    uint64_t started_ns, last_progress_ns;
};

static void progress(struct scan *sc, bool final)
{
    if (!sc->opt->progress)
        return;
    uint64_t now = uv_hrtime();
    if (!final && now - sc->last_progress_ns < 200000000u)
        return;
    sc->last_progress_ns = now;
    double secs = (double)(now - sc->started_ns) / 1e9;
    size_t done = sc->files_parsed + sc->files_failed;
    if (final)
        fprintf(stderr, "\r\033[K");
    else
        fprintf(stderr, "\rscan: %zu/%zu files (%3.0f%%), %.0f files/s ", done, sc->total_jobs,
                sc->total_jobs ? 100.0 * (double)done / (double)sc->total_jobs : 100.0,
                secs > 0 ? (double)done / secs : 0.0);
    fflush(stderr);
}

/* Takes the next job (a file, or a square's marker when `marker`) and reports its failure.
 * Returns 1, or a negative EM_E* (the source failed, or the jobs ran out early). */
static int next_job(struct scan *sc, struct taken *t, struct batch **marker)
{
    struct pool_job j;
    if (t)
        memset(t, 0, sizeof(*t));
    int rc = pool_next(sc->pool, &j);
    if (rc <= 0)
        return rc < 0 ? rc : -EM_ESTATE;
    if (marker) {
        if (j.kind != EPU_KIND_NONE) {
            pool_job_clear(&j);
            return -EM_ESTATE;
        }
        *marker = j.tag;
        return 1;
    }
    t->path = j.path;
    t->rel = j.path + j.rel_off;
    t->stat = j.stat;
    if ((pool_done(sc->pool) & 255) == 0)
        progress(sc, false);
    if (j.rc == 0) {
        sc->files_parsed++;
        sc->bytes += j.bytes;
        t->doc = j.doc;
    } else {
        sc->files_failed++;
        if (j.read_failed)
            em_log(EM_LOG_WARN, "%s: cannot read: %s", t->rel, em_strerror(j.rc));
        else
            em_log(EM_LOG_WARN, "%s:%ld: %s", t->rel, j.diag.line > 0 ? j.diag.line : 1,
                   j.diag.reason);
    }
    return 1;
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
    cJSON *data = entity_session_data(s->doc, s->ls->dir, at != NULL, at ? at->atlas_id.v : 0);
    cJSON *key = entity_key("session_id", s->doc->u.session.session_id.v, NULL, 0, NULL);
    return event_emit(&sc->ev, WIRE_SESSION, key, data, s->ls->epu_dm, &s->st);
}

/* Resolves each session's atlas; parses atlases that lie outside the scanned tree. */
static void link_atlases(struct scan *sc)
{
    for (size_t i = 0; i < sc->layout.nsessions; i++) {
        struct scan_session *s = &sc->sessions[i];
        s->atlas = -1;
        if (!s->doc)
            continue;
        const struct epu_session *es = &s->doc->u.session;
        char *rel =
            tree_find_atlas_at(sc->layout.root, s->ls->dir, es->atlas_path, es->storage_path);
        if (!rel) {
            if (es->atlas_path)
                em_log(EM_LOG_WARN, "%s: atlas %s not found", s->ls->epu_dm, es->atlas_path);
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
        char *abs = abs_of(sc->layout.root, rel);
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
    struct taken meta, image; /* doc NULL when none */
    struct hole_image *holes;
    size_t nholes, holes_cap;
    struct entity_exposure *exposures; /* entity_exposures_index() */
    size_t nexposures;
    bool emitted;
};

static int emit_square(struct scan *sc, struct square_work *w, const struct scan_session *s)
{
    const struct epu_gridsquare_metadata *g = w->meta.doc ? &w->meta.doc->u.gridsquare : NULL;
    cJSON *data = entity_square_data(
        w->session_id, w->gridsquare_id, w->has_atlas, w->atlas_id, w->in_session,
        w->node ? entity_atlas_node_part(w->node) : NULL, g ? entity_metadata_part(g) : NULL,
        w->image.doc
            ? entity_image_part(&w->image.doc->u.image, EPU_KIND_GRIDSQUARE_IMAGE, w->image.rel)
            : NULL);
    cJSON *key = entity_key("session_id", w->session_id, "gridsquare_id", w->gridsquare_id, NULL);
    const char *src = w->meta.doc ? w->meta.rel : w->image.doc ? w->image.rel : s->ls->epu_dm;
    const struct fsio_stat *st = w->meta.doc    ? &w->meta.stat
                                 : w->image.doc ? &w->image.stat
                                                : &s->st;
    return event_emit(&sc->ev, WIRE_GRIDSQUARE, key, data, src, st);
}

static int emit_hole(struct scan *sc, struct square_work *w, int64_t fh,
                     const struct epu_foilhole_target *target, const struct hole_image *img)
{
    cJSON *data = entity_hole_data(
        w->session_id, w->gridsquare_id, fh, target ? entity_target_part(target) : NULL,
        img ? entity_image_part(&img->t.doc->u.image, EPU_KIND_FOILHOLE_IMAGE, img->t.rel) : NULL);
    cJSON *key = entity_key("session_id", w->session_id, "foilhole_id", fh, NULL);
    return event_emit(&sc->ev, WIRE_FOILHOLE, key, data, img ? img->t.rel : w->meta.rel,
                      img ? &img->t.stat : &w->meta.stat);
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
    const struct epu_gridsquare_metadata *g = w->meta.doc ? &w->meta.doc->u.gridsquare : NULL;
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
    const struct epu_gridsquare_metadata *g = &w->meta.doc->u.gridsquare;
    w->exposures = malloc((g->exposure_count ? g->exposure_count : 1) * sizeof(*w->exposures));
    if (!w->exposures)
        return -EM_ENOMEM;
    return entity_exposures_index(g, w->exposures, &w->nexposures);
}

static int emit_micrograph(struct scan *sc, struct square_work *w, const struct taken *t)
{
    const struct entity_exposure *e =
        entity_exposure_find(w->exposures, w->nexposures, entity_micrograph_name(t->rel));
    cJSON *data = entity_micrograph_data(t->doc, w->session_id, e != NULL, e ? e->exposure_id : 0);
    cJSON *key =
        entity_key("session_id", w->session_id, "micrograph_uuid", 0, t->doc->u.image.image_uuid);
    return event_emit(&sc->ev, WIRE_MICROGRAPH, key, data, t->rel, &t->stat);
}

static void square_work_free(struct square_work *w)
{
    for (size_t i = 0; i < w->nholes; i++)
        taken_clear(&w->holes[i].t);
    free(w->holes);
    free(w->exposures);
    taken_clear(&w->meta);
    taken_clear(&w->image);
}

static int keep_hole(struct square_work *w, struct taken *t, size_t order)
{
    struct hole_image *h = em_grow(w->holes, w->nholes, &w->holes_cap, sizeof(*h), 64);
    if (!h)
        return -EM_ENOMEM;
    w->holes = h;
    w->holes[w->nholes++] =
        (struct hole_image){.foilhole_id = t->doc->u.image.foilhole_id.v, .order = order, .t = *t};
    memset(t, 0, sizeof(*t));
    return 0;
}

/* Consumes square `gs`'s files (when `has_files`: its marker, then its batch) and emits
 * the square, its holes and its micrographs. */
static int do_square(struct scan *sc, struct scan_session *s, int64_t gs, bool has_files)
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
    struct batch *b = NULL;
    int rc = 0;
    if (has_files && (rc = next_job(sc, NULL, &b)) < 0)
        return rc;
    rc = 0;
    size_t njobs = b ? b->njobs : 0;
    size_t before_micrographs = b ? njobs - b->micrographs.n : 0;
    for (size_t i = 0; i < njobs; i++) {
        struct taken t;
        if ((rc = next_job(sc, &t, NULL)) < 0)
            break;
        rc = 0;
        if (i == before_micrographs && !w.emitted && (rc = emit_square_and_holes(sc, &w, s)) < 0) {
            taken_clear(&t);
            break;
        }
        if (t.doc) {
            switch (t.doc->kind) {
            case EPU_KIND_GRIDSQUARE_METADATA:
                w.meta = t;
                memset(&t, 0, sizeof(t));
                rc = index_exposures(&w);
                break;
            case EPU_KIND_GRIDSQUARE_IMAGE:
                /* Names end in _<date>_<time> and come in name order: the last is newest. */
                taken_clear(&w.image);
                w.image = t;
                memset(&t, 0, sizeof(t));
                break;
            case EPU_KIND_FOILHOLE_IMAGE:
                rc = keep_hole(&w, &t, i);
                break;
            case EPU_KIND_MICROGRAPH:
                rc = emit_micrograph(sc, &w, &t);
                break;
            default:
                break;
            }
        }
        taken_clear(&t);
        if (rc < 0)
            break;
    }
    if (rc == 0 && !w.emitted)
        rc = emit_square_and_holes(sc, &w, s);
    square_work_free(&w);
    if (b)
        atomic_store(&b->done, true);
    return rc;
}

/* Squares of a session: its list, its atlas's nodes and the squares with files, merged
 * in ascending id. */
static int do_session(struct scan *sc, struct scan_session *s)
{
    const struct epu_session *es = &s->doc->u.session;
    const struct epu_atlas *at = s->atlas >= 0 ? &sc->atlases[s->atlas].doc->u.atlas : NULL;
    const struct lay_session *ls = s->ls;
    size_t a = 0, b = 0, c = 0;
    size_t na = es->gridsquare_count, nb = at ? at->gridsquare_count : 0, nc = ls->nsquares;
    int rc = emit_session(sc, s);
    while (rc == 0 && (a < na || b < nb || c < nc)) {
        int64_t ga = a < na ? es->gridsquare_ids[a] : INT64_MAX;
        int64_t gb = b < nb ? at->gridsquares[b].gridsquare_id.v : INT64_MAX;
        int64_t gc = c < nc ? ls->squares[c].gridsquare_id : INT64_MAX;
        int64_t gs = ga < gb ? ga : gb;
        gs = gc < gs ? gc : gs;
        bool has_files = gc == gs;
        while (a < na && es->gridsquare_ids[a] == gs)
            a++;
        while (b < nb && at->gridsquares[b].gridsquare_id.v == gs)
            b++;
        if (has_files)
            c++;
        rc = do_square(sc, s, gs, has_files);
    }
    return rc;
}

static int emit_aborted(struct scan *sc, const struct lay_session *ls)
{
    cJSON *data;
    cJSON *key = entity_aborted_key(ls->dir, &data);
    if (!key)
        return -EM_ENOMEM;
    return event_emit(&sc->ev, WIRE_ABORTED_SESSION, key, data, ls->dir, NULL);
}

/* Consumes a session's square jobs without emitting (its EpuSession.dm failed). */
static int skip_session(struct scan *sc, const struct lay_session *ls)
{
    for (size_t j = 0; j < ls->nsquares; j++) {
        struct batch *b = NULL;
        int rc = next_job(sc, NULL, &b);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < b->njobs && rc >= 0; k++) {
            struct taken t;
            rc = next_job(sc, &t, NULL);
            taken_clear(&t);
            sc->files_skipped++;
        }
        atomic_store(&b->done, true);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Loader output directories (dataset.h), by path, after the EPU sessions. */
static int emit_datasets(struct scan *sc)
{
    struct strvec *v = &sc->layout.datasets;
    strvec_sort(v);
    for (size_t i = 0; i < v->n; i++) {
        cJSON *key, *data;
        char why[600];
        int rc = dataset_read(sc->layout.root, v->v[i], &key, &data, why, sizeof(why));
        if (rc == -EM_ENOMEM)
            return rc;
        if (rc == -EM_ENOENT || rc == 0)
            continue; /* gone since the walk, or not a loader's record */
        if (rc < 0) {
            em_log(EM_LOG_WARN, "%s: %s", v->v[i], why);
            sc->files_failed++;
            continue;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(data, "mismatches"))
        {
            em_log(EM_LOG_WARN, "%s: %s", v->v[i], m->valuestring);
        }
        struct fsio_stat st;
        char *abs = abs_of(sc->layout.root, v->v[i]);
        bool have = abs && fsio_stat(abs, &st) == 0;
        free(abs);
        if ((rc = event_emit(&sc->ev, WIRE_DATASET, key, data, v->v[i], have ? &st : NULL)) < 0)
            return rc;
    }
    return 0;
}

static int run(struct scan *sc)
{
    struct layout *L = &sc->layout;
    sc->sessions = calloc(L->nsessions ? L->nsessions : 1, sizeof(*sc->sessions));
    sc->atlas_cap = L->atlases.n + L->nsessions;
    sc->atlases = calloc(sc->atlas_cap ? sc->atlas_cap : 1, sizeof(*sc->atlases));
    if (!sc->sessions || !sc->atlases)
        return -EM_ENOMEM;
    sc->total_jobs = L->atlases.n;
    for (size_t i = 0; i < L->nsessions; i++) {
        const struct lay_session *ls = &L->sessions[i];
        if (ls->epu_dm) {
            sc->total_jobs += 1 + ls->files;
        } else if (ls->files) {
            em_log(EM_LOG_WARN,
                   "%s: no EpuSession.dm (aborted session?): its %zu files have no "
                   "session id and are not emitted",
                   ls->dir, ls->files);
            sc->files_skipped += ls->files;
            sc->sessions_skipped++;
        }
    }
    sc->producer.L = L;
    sc->pool = pool_start(produce, &sc->producer, sc->opt->threads, SCAN_WINDOW);
    if (!sc->pool)
        return -EM_ENOMEM;
    pool_collect_frees(sc->pool); /* documents go back to their worker to be freed */
    int rc = 0;
    struct taken t;
    for (size_t i = 0; i < L->nsessions && rc == 0; i++) {
        struct scan_session *s = &sc->sessions[i];
        s->ls = &L->sessions[i];
        s->atlas = -1;
        if (!s->ls->epu_dm)
            continue;
        if ((rc = next_job(sc, &t, NULL)) < 0)
            break;
        rc = 0;
        s->doc = t.doc;
        s->st = t.stat;
        t.doc = NULL;
        taken_clear(&t);
    }
    for (size_t i = 0; i < L->atlases.n && rc == 0; i++) {
        if ((rc = next_job(sc, &t, NULL)) < 0)
            break;
        rc = 0;
        struct scan_atlas *a = &sc->atlases[sc->natlases++];
        a->rel = strdup(t.rel);
        a->doc = t.doc;
        a->st = t.stat;
        t.doc = NULL;
        taken_clear(&t);
        if (!a->rel)
            rc = -EM_ENOMEM;
    }
    if (rc < 0)
        return rc;
    link_atlases(sc);
    for (size_t i = 0; i < sc->natlases && rc == 0; i++)
        if (sc->atlases[i].doc)
            rc = emit_atlas(sc, &sc->atlases[i]);
    /* A session id seen twice (a copied session dir) would give duplicate keys. */
    for (size_t i = 0; i < L->nsessions; i++) {
        struct scan_session *s = &sc->sessions[i];
        for (size_t k = 0; s->doc && k < i; k++) {
            if (sc->sessions[k].doc &&
                sc->sessions[k].doc->u.session.session_id.v == s->doc->u.session.session_id.v) {
                em_log(EM_LOG_WARN, "%s: session id %lld already seen in %s (skipped)",
                       s->ls->epu_dm, (long long)s->doc->u.session.session_id.v,
                       sc->sessions[k].ls->epu_dm);
                epu_doc_free(s->doc);
                s->doc = NULL;
                s->dup = true;
            }
        }
    }
    for (size_t i = 0; i < L->nsessions && rc == 0; i++) {
        struct scan_session *s = &sc->sessions[i];
        if (s->doc)
            rc = do_session(sc, s);
        else if (s->ls->epu_dm)
            rc = skip_session(sc, s->ls);
        /* EPU files but no usable EpuSession.dm: the directory is listed as aborted (not
         * a copy: that has an id, held by the directory earlier in the tree). */
        if (rc == 0 && !s->doc && !s->dup && s->ls->nsquares > 0)
            rc = emit_aborted(sc, s->ls);
    }
    if (rc == 0)
        rc = emit_datasets(sc);
    return rc < 0 ? rc : sc->ev.error;
}

static void scan_free(struct scan *sc)
{
    pool_free(sc->pool);
    batches_free(&sc->producer, true);
    if (sc->sessions)
        for (size_t i = 0; i < sc->layout.nsessions; i++)
            epu_doc_free(sc->sessions[i].doc);
    free(sc->sessions);
    for (size_t i = 0; i < sc->natlases; i++) {
        epu_doc_free(sc->atlases[i].doc);
        free(sc->atlases[i].rel);
    }
    free(sc->atlases);
    layout_free(&sc->layout);
}

int scan_run(const struct scan_options *opt, struct scan_summary *sum)
{
    struct scan sc = {.opt = opt};
    memset(sum, 0, sizeof(*sum));
    sc.started_ns = uv_hrtime();
    int rc = layout_walk(opt->dir, &sc.layout);
    if (rc < 0)
        return rc;
    event_writer_init(&sc.ev, opt->out, opt->agent, 0);
    rc = run(&sc);
    progress(&sc, true);
    bool flush_failed = fflush(opt->out) != 0;
    if (flush_failed && rc == 0)
        rc = em_from_errno(errno);
    sum->output_failed = rc < 0 && (sc.ev.error != 0 || flush_failed);
    sum->files_walked = sc.layout.files;
    sum->dirs_failed = sc.layout.dirs_failed;
    sum->files_parsed = sc.files_parsed;
    sum->files_failed = sc.files_failed;
    sum->files_skipped = sc.files_skipped;
    sum->sessions_skipped = sc.sessions_skipped;
    sum->unplaced = sc.layout.unplaced;
    sum->bytes = sc.bytes;
    memcpy(sum->events, sc.ev.count, sizeof(sum->events));
    sum->seconds = (double)(uv_hrtime() - sc.started_ns) / 1e9;
    scan_free(&sc);
    return rc;
}
