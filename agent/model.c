/* The watch model: merges parsed files into entities and rebuilds the changed ones.
 *
 * The merge rules are scan's (scan.c), expressed over stored parts instead of a sorted
 * walk: a square exists when the session lists it, the linked atlas has a node for it,
 * or any file lies in its directories; a hole exists when a .dm targets it or an image
 * of it parsed; the newest image is the one whose path sorts last; a micrograph's
 * exposure id comes from its own square's .dm by file name.
 */
#include "em_compat.h"
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"
#include "em_fmt.h"
#include "em_uuid.h"
#include "epu_layout.h"
#include "entity.h"
#include "hash.h"
#include "hmap.h"
#include "jsonw.h"
#include "log.h"
#include "tree.h"

struct m_atlas {
    char *rel;
    struct epu_doc *doc;
    struct fsio_stat st;
    bool dirty;
};

struct m_session;

struct m_square {
    struct m_session *s;
    int64_t gs;
    char *meta_part, *meta_rel;
    struct fsio_stat meta_st;
    char *image_part, *image_rel;
    struct fsio_stat image_st;
    struct entity_exposure *exp; /* sorted by name */
    size_t nexp;
    struct m_micro **micros;
    size_t nmicros, micros_cap;
    const char *mdir; /* its micrographs' directory (interned), from the first one */
    /* The micrographs by name: an open-addressing table of 1 + their index in micros
     * (0: free), at most half full. 4 bytes a slot, where a map of the session's
     * micrographs by path took 16 (20 MB for a 500,000-micrograph visit). */
    uint32_t *mindex;
    size_t mindex_cap;
    bool dirty;
};

/* A .dm target, packed: a session can have 100k+ holes, most with a target only. */
struct m_target {
    double v[6];  /* pixel_x, pixel_y, diameter_px, stage_x_m, stage_y_m, quality */
    char *state;  /* interned */
    uint16_t set; /* bit i: v[i] set; bits 6-9: is_near_grid_bar set/value, selected set/value;
                   * bit 10: foilhole_id set */
};

/* A file's path relative to the root, in two parts: its directory with a trailing '/'
 * ("" at the root), interned (m->strings: a visit has few directories and 600,000 files),
 * and its name, borrowed when cb.borrow_paths (else owned). */
struct m_path {
    const char *dir;
    char *name;
};

/* The newest image of a hole. Its part is kept from the file's parse until the hole is
 * emitted, then dropped: a later emission (its target changed) reads the file again, so a
 * whole visit's holes do not keep their image fields in memory. */
struct m_image {
    char *part;
    struct m_path path;
    struct fsio_stat st;
};

struct m_hole {
    struct m_session *s;
    int64_t fh, gs;
    struct m_image *image;
    struct m_target target;
    bool has_target;
    bool dirty;
};

/* 48 bytes, from a slab: a visit has 500,000. Its directory is its square's (q->mdir),
 * the one all of a square's micrographs share in EPU's layout; one elsewhere has its own,
 * in model->micro_dirs (own_dir). */
struct m_micro {
    struct m_square *q;
    char *name; /* borrowed when cb.borrow_paths (else owned) */
    int64_t exp;
    struct em_uuid uuid; /* its key, kept when the owner retracts (cb.retract) */
    bool has_exp;
    bool dirty;
    bool own_dir;
};
_Static_assert(sizeof(struct m_micro) <= 48 || sizeof(void *) > 8, "m_micro grew");

struct m_session {
    char *dir;
    struct epu_doc *doc; /* EpuSession.dm, or NULL while it is missing */
    char *dm_rel;
    struct fsio_stat dm_st;
    struct m_atlas *atlas;
    struct hmap squares, holes; /* micrographs: in their squares */
    size_t nmicros;
    size_t held; /* entities counted in model->held */
    bool dirty;
    bool overflowed;  /* parts were dropped: rescan once the id is known */
    bool dup;         /* another directory earlier in the tree holds the same session id */
    bool seen_id;     /* dev and ino hold the directory's identity, as last checked */
    bool has_files;   /* an EPU file other than EpuSession.dm was placed in it (kept when
                         the session file is withdrawn, cleared when the directory goes) */
    bool aborted_out; /* its aborted_session event was emitted and not retracted */
    uint64_t dev, ino;
};

enum m_type { M_SQUARE, M_HOLE, M_MICRO };

struct m_dirty {
    enum m_type type;
    void *e;
};

struct model {
    char *root;
    struct hmap strings; /* interned target states: few distinct values, many holes */
    struct model_callbacks cb;
    struct hmap sessions_by_dir, atlases_by_rel;
    /* The session and directory the last file was in: files come a directory at a time,
     * so most paths find theirs here without hashing (neither is ever freed before the
     * model). */
    struct m_session *last_session;
    const char *last_dir;
    struct m_session **sessions;
    size_t nsessions, sessions_cap;
    struct m_atlas **atlases;
    size_t natlases, atlases_cap;
    struct m_dirty *dirty;
    size_t ndirty, dirty_cap;
    size_t held, dropped;
    size_t nsquares, nholes, nmicros;
    uint64_t changes; /* calls that may have changed what a snapshot holds */
    struct em_slab micro_slab, hole_slab, image_slab; /* m_micro, m_hole, m_image */
    struct hmap micro_dirs; /* m_micro pointer -> its directory, for those with own_dir */
};

/* Whether the session directory's entities are emitted: its id is known, and no directory
 * earlier in the tree holds the same id (scan's rule for copied session directories). */
static bool live(const struct m_session *s)
{
    return s->doc && !s->dup;
}

static uint64_t id_key(int64_t v)
{
    return (uint64_t)v ^ 0x8000000000000000ull;
}

static const char *session_dir_of(const void *v)
{
    return ((const struct m_session *)v)->dir;
}

static const char *atlas_rel_of(const void *v)
{
    return ((const struct m_atlas *)v)->rel;
}

/* Whether `p` is the path `rel`. */
static bool path_is(const struct m_path *p, const char *rel)
{
    size_t n = strlen(p->dir);
    return strncmp(rel, p->dir, n) == 0 && strcmp(rel + n, p->name) == 0;
}

enum { PATH_BUF = 4096 };

/* The path as one string, in `buf` (PATH_BUF bytes). */
static const char *path_str(const struct m_path *p, char *buf)
{
    snprintf(buf, PATH_BUF, "%s%s", p->dir, p->name);
    return buf;
}

/* A micrograph's path: its square's directory, or its own. */
static struct m_path micro_path(const struct model *m, const struct m_micro *mi)
{
    const char *dir = mi->q->mdir;
    if (mi->own_dir) {
        const struct hmap_entry *e = hmap_find(&m->micro_dirs, (uintptr_t)mi, NULL, NULL);
        dir = e ? e->v.p : "";
    }
    return (struct m_path){dir, mi->name};
}

static const char *micro_str(const struct model *m, const struct m_micro *mi, char *buf)
{
    struct m_path p = micro_path(m, mi);
    return path_str(&p, buf);
}

static int push_ptr(void ***v, size_t *n, size_t *cap, void *p)
{
    void **nv = em_grow(*v, *n, cap, sizeof(*nv), 16);
    if (!nv)
        return -EM_ENOMEM;
    *v = nv;
    (*v)[(*n)++] = p;
    return 0;
}

static char *print_part(cJSON *part)
{
    char *s = part ? jsonw_print(part) : NULL;
    cJSON_Delete(part);
    return s;
}

static cJSON *parse_part(const char *s)
{
    return s ? cJSON_Parse(s) : NULL;
}

/* Replaces *dst by a copy of `src` (NULL allowed). */
static int set_str(char **dst, const char *src)
{
    char *c = src ? strdup(src) : NULL;
    if (src && !c)
        return -EM_ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

/* ---- dirty tracking ---- */

static int mark(struct model *m, enum m_type type, void *e, bool *flag)
{
    if (*flag)
        return 0;
    struct m_dirty *d = em_grow(m->dirty, m->ndirty, &m->dirty_cap, sizeof(*d), 256);
    if (!d)
        return -EM_ENOMEM;
    m->dirty = d;
    *flag = true;
    m->dirty[m->ndirty++] = (struct m_dirty){type, e};
    return 0;
}

static int mark_square(struct model *m, struct m_square *q)
{
    return mark(m, M_SQUARE, q, &q->dirty);
}

static int mark_hole(struct model *m, struct m_hole *h)
{
    return mark(m, M_HOLE, h, &h->dirty);
}

static int mark_micro(struct model *m, struct m_micro *mi)
{
    return mark(m, M_MICRO, mi, &mi->dirty);
}

/* ---- lookups that create ---- */

static struct m_session *session_get(struct model *m, const char *dir)
{
    if (m->last_session && strcmp(m->last_session->dir, dir) == 0)
        return m->last_session;
    int added;
    struct hmap_entry *e =
        hmap_upsert(&m->sessions_by_dir, hash64_str(dir), dir, session_dir_of, &added);
    if (!e)
        return NULL;
    if (!added)
        return m->last_session = e->v.p;
    struct m_session *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(dir)) ||
        push_ptr((void ***)&m->sessions, &m->nsessions, &m->sessions_cap, s) < 0) {
        /* Take the new entry out again: it must not point at nothing. */
        if (s)
            free(s->dir);
        free(s);
        hmap_remove(&m->sessions_by_dir, e);
        return NULL;
    }
    e->v.p = s;
    return m->last_session = s;
}

/* Counts an entity of a session that has no id yet; false when the cap is reached. */
static bool hold(struct model *m, struct m_session *s)
{
    if (s->doc)
        return true;
    if (m->held >= MODEL_MAX_HELD) {
        if (!s->overflowed)
            em_log(EM_LOG_WARN,
                   "%s: more than %d entities wait for an EpuSession.dm; dropping parts, the "
                   "directory is read again when the session file appears",
                   s->dir, MODEL_MAX_HELD);
        s->overflowed = true;
        m->dropped++;
        return false;
    }
    m->held++;
    s->held++;
    return true;
}

static struct m_square *square_get(struct model *m, struct m_session *s, int64_t gs, bool *new_out)
{
    int added;
    struct hmap_entry *e = hmap_upsert(&s->squares, id_key(gs), NULL, NULL, &added);
    if (new_out)
        *new_out = added;
    if (!e)
        return NULL;
    if (!added)
        return e->v.p;
    struct m_square *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->s = s;
    q->gs = gs;
    e->v.p = q;
    m->nsquares++;
    hold(m, s);
    return q;
}

static struct m_hole *hole_get(struct model *m, struct m_session *s, int64_t fh, int64_t gs)
{
    int added;
    struct hmap_entry *e = hmap_upsert(&s->holes, id_key(fh), NULL, NULL, &added);
    if (!e)
        return NULL;
    if (!added)
        return e->v.p;
    struct m_hole *h = em_slab_alloc(&m->hole_slab);
    if (!h) {
        hmap_remove(&s->holes, e);
        return NULL;
    }
    h->s = s;
    h->fh = fh;
    h->gs = gs;
    e->v.p = h;
    m->nholes++;
    hold(m, s);
    return h;
}

/* ---- exposures ---- */

static const struct entity_exposure *find_exposure(const struct m_square *q, uint64_t name)
{
    return entity_exposure_find(q->exp, q->nexp, name);
}

/* ---- targets ---- */

static const char *string_of(const void *v)
{
    return v;
}

/* The model's copy of `str`, shared by every hole with the same state. */
static char *intern(struct model *m, const char *str);

/* Sets `p` to `rel`; `keep` is the caller's stable copy of rel's name when the model
 * borrows (cb.borrow_paths), else NULL. Returns 0 or EM_ENOMEM (EM_EINVAL when the model
 * borrows and `keep` is missing). */
static int path_set(struct model *m, struct m_path *p, const char *rel, const char *keep)
{
    const char *slash = strrchr(rel, '/');
    size_t pre = slash ? (size_t)(slash - rel) + 1 : 0;
    char dir[PATH_BUF];
    if (pre >= sizeof(dir))
        return -EM_ELIMIT;
    memcpy(dir, rel, pre);
    dir[pre] = '\0';
    const char *d = m->last_dir && strcmp(m->last_dir, dir) == 0 ? m->last_dir : intern(m, dir);
    if (!d)
        return -EM_ENOMEM;
    m->last_dir = d;
    if (m->cb.borrow_paths) {
        if (!keep)
            return -EM_EINVAL;
        p->name = (char *)(uintptr_t)keep;
    } else {
        char *c = strdup(rel + pre);
        if (!c)
            return -EM_ENOMEM;
        free(p->name);
        p->name = c;
    }
    p->dir = d;
    return 0;
}

static void path_free(const struct model *m, struct m_path *p)
{
    if (!m->cb.borrow_paths)
        free(p->name);
    p->name = NULL;
}

static char *intern(struct model *m, const char *str)
{
    int added;
    struct hmap_entry *e = hmap_upsert(&m->strings, hash64_str(str), str, string_of, &added);
    if (!e)
        return NULL;
    if (added && !(e->v.p = strdup(str))) {
        hmap_remove(&m->strings, e);
        return NULL;
    }
    return e->v.p;
}

static void pack_real(struct m_target *t, int i, struct epu_real r)
{
    if (r.set) {
        t->v[i] = r.v;
        t->set |= (uint16_t)(1u << i);
    }
}

static void pack_flag(struct m_target *t, int bit, struct epu_flag f)
{
    if (f.set)
        t->set |= (uint16_t)((1u << bit) | (f.v ? 1u << (bit + 1) : 0u));
}

/* Packs `t`; `state` is its interned state. Unused bytes are zero, so memcmp compares. */
static void target_pack(struct m_target *out, const struct epu_foilhole_target *t, char *state)
{
    memset(out, 0, sizeof(*out));
    pack_real(out, 0, t->pixel_x);
    pack_real(out, 1, t->pixel_y);
    pack_real(out, 2, t->diameter_px);
    pack_real(out, 3, t->stage_x_m);
    pack_real(out, 4, t->stage_y_m);
    pack_real(out, 5, t->quality);
    pack_flag(out, 6, t->is_near_grid_bar);
    pack_flag(out, 8, t->selected);
    if (t->foilhole_id.set)
        out->set |= 1u << 10;
    out->state = state;
}

static struct epu_real unpack_real(const struct m_target *t, int i)
{
    return (struct epu_real){t->v[i], (t->set >> i) & 1u};
}

static struct epu_flag unpack_flag(const struct m_target *t, int bit)
{
    return (struct epu_flag){(t->set >> (bit + 1)) & 1u, (t->set >> bit) & 1u};
}

static void target_unpack(const struct m_target *t, int64_t fh, struct epu_foilhole_target *out)
{
    memset(out, 0, sizeof(*out));
    out->foilhole_id = (struct epu_int){fh, (t->set >> 10) & 1u};
    out->pixel_x = unpack_real(t, 0);
    out->pixel_y = unpack_real(t, 1);
    out->diameter_px = unpack_real(t, 2);
    out->stage_x_m = unpack_real(t, 3);
    out->stage_y_m = unpack_real(t, 4);
    out->quality = unpack_real(t, 5);
    out->is_near_grid_bar = unpack_flag(t, 6);
    out->selected = unpack_flag(t, 8);
    out->state = t->state;
}

/* ---- emission ---- */

static int emit_micro_doc(struct model *m, struct m_micro *mi, const struct epu_doc *doc,
                          const struct fsio_stat *st, const char *doc_json)
{
    struct m_session *s = mi->q->s;
    const struct entity_exposure *x = find_exposure(mi->q, entity_micrograph_name(mi->name));
    mi->has_exp = x != NULL;
    mi->exp = x ? x->exposure_id : 0;
    if (doc_json && m->cb.emit_text) {
        char *text = entity_micrograph_data_text(doc_json, s->doc->u.session.session_id.v,
                                                 mi->has_exp, mi->exp);
        cJSON *key = entity_key("session_id", s->doc->u.session.session_id.v, "micrograph_uuid", 0,
                                doc->u.image.image_uuid);
        if (!text || !key) {
            cJSON_free(text);
            cJSON_Delete(key);
            return -EM_ENOMEM;
        }
        char rb[PATH_BUF];
        return m->cb.emit_text(m->cb.ctx, WIRE_MICROGRAPH, key, text, micro_str(m, mi, rb), st);
    }
    cJSON *data = entity_micrograph_data(doc, s->doc->u.session.session_id.v, mi->has_exp, mi->exp);
    cJSON *key = entity_key("session_id", s->doc->u.session.session_id.v, "micrograph_uuid", 0,
                            doc->u.image.image_uuid);
    char rb[PATH_BUF];
    return m->cb.emit(m->cb.ctx, WIRE_MICROGRAPH, key, data, micro_str(m, mi, rb), st);
}

static int emit_micro(struct model *m, struct m_micro *mi)
{
    struct fsio_stat st;
    char rb[PATH_BUF];
    struct epu_doc *doc = m->cb.load(m->cb.ctx, micro_str(m, mi, rb), EPU_KIND_MICROGRAPH, &st);
    if (!doc)
        return 0;
    int rc = emit_micro_doc(m, mi, doc, &st, NULL);
    epu_doc_free(doc);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const struct epu_atlas_square *atlas_node(const struct m_atlas *a, int64_t gs)
{
    return a && a->doc ? entity_atlas_node(&a->doc->u.atlas, gs) : NULL;
}

static int emit_square(struct model *m, struct m_square *q)
{
    struct m_session *s = q->s;
    const struct epu_session *es = &s->doc->u.session;
    bool in_list = es->gridsquare_count && bsearch(&q->gs, es->gridsquare_ids, es->gridsquare_count,
                                                   sizeof(int64_t), cmp_i64) != NULL;
    const struct epu_atlas_square *node = atlas_node(s->atlas, q->gs);
    cJSON *data = entity_square_data(es->session_id.v, q->gs, node != NULL,
                                     node ? s->atlas->doc->u.atlas.atlas_id.v : 0, in_list,
                                     node ? entity_atlas_node_part(node) : NULL,
                                     parse_part(q->meta_part), parse_part(q->image_part));
    cJSON *key = entity_key("session_id", es->session_id.v, "gridsquare_id", q->gs, NULL);
    const char *src = q->meta_part ? q->meta_rel : q->image_part ? q->image_rel : s->dm_rel;
    const struct fsio_stat *st = q->meta_part    ? &q->meta_st
                                 : q->image_part ? &q->image_st
                                                 : &s->dm_st;
    return m->cb.emit(m->cb.ctx, WIRE_GRIDSQUARE, key, data, src, st);
}

static int emit_hole(struct model *m, struct m_hole *h)
{
    struct m_session *s = h->s;
    int64_t sid = s->doc->u.session.session_id.v;
    struct epu_foilhole_target t;
    if (h->has_target)
        target_unpack(&h->target, h->fh, &t);
    const struct fsio_stat *st = h->image ? &h->image->st : NULL;
    char src_buf[PATH_BUF];
    const char *src = h->image ? path_str(&h->image->path, src_buf) : NULL;
    if (!src) {
        struct hmap_entry *e = hmap_find(&s->squares, id_key(h->gs), NULL, NULL);
        struct m_square *q = e ? e->v.p : NULL;
        if (q && q->meta_rel) {
            src = q->meta_rel;
            st = &q->meta_st;
        }
    }
    if (m->cb.emit_text && h->image && h->image->part) {
        /* The image's part goes out as the text it was kept as (a visit has 100,000
         * holes, each image part a few dozen numbers to read and print again). */
        char *text = entity_hole_data_text(
            sid, h->gs, h->fh, h->has_target ? entity_target_part(&t) : NULL, h->image->part);
        cJSON *key = entity_key("session_id", sid, "foilhole_id", h->fh, NULL);
        free(h->image->part);
        h->image->part = NULL;
        if (!text || !key) {
            cJSON_free(text);
            cJSON_Delete(key);
            return -EM_ENOMEM;
        }
        return m->cb.emit_text(m->cb.ctx, WIRE_FOILHOLE, key, text, src, st);
    }
    /* The image's part is kept only until it is emitted; later it is read again. */
    cJSON *img = NULL;
    if (h->image && h->image->part) {
        img = parse_part(h->image->part);
        free(h->image->part);
        h->image->part = NULL;
    } else if (h->image) {
        struct fsio_stat now;
        char rb[PATH_BUF];
        const char *rel = path_str(&h->image->path, rb);
        struct epu_doc *doc = m->cb.load(m->cb.ctx, rel, EPU_KIND_FOILHOLE_IMAGE, &now);
        if (doc)
            img = entity_image_part(&doc->u.image, EPU_KIND_FOILHOLE_IMAGE, rel);
        epu_doc_free(doc);
    }
    cJSON *data =
        entity_hole_data(sid, h->gs, h->fh, h->has_target ? entity_target_part(&t) : NULL, img);
    cJSON *key = entity_key("session_id", sid, "foilhole_id", h->fh, NULL);
    return m->cb.emit(m->cb.ctx, WIRE_FOILHOLE, key, data, src, st);
}

/* ---- sessions and atlases ---- */

static struct m_atlas *atlas_get(struct model *m, const char *rel)
{
    int added;
    struct hmap_entry *e =
        hmap_upsert(&m->atlases_by_rel, hash64_str(rel), rel, atlas_rel_of, &added);
    if (!e)
        return NULL;
    if (!added)
        return e->v.p;
    struct m_atlas *a = calloc(1, sizeof(*a));
    if (!a || !(a->rel = strdup(rel)) ||
        push_ptr((void ***)&m->atlases, &m->natlases, &m->atlases_cap, a) < 0) {
        if (a)
            free(a->rel);
        free(a);
        hmap_remove(&m->atlases_by_rel, e);
        return NULL;
    }
    e->v.p = a;
    return a;
}

static void mark_all_of(union hmap_value *v, void *ctx)
{
    struct model *m = ctx;
    struct m_square *q = v->p;
    if (mark_square(m, q) < 0)
        em_log(EM_LOG_ERROR, "out of memory marking square %lld", (long long)q->gs);
}

static void mark_hole_cb(union hmap_value *v, void *ctx)
{
    if (mark_hole(ctx, v->p) < 0)
        em_log(EM_LOG_ERROR, "out of memory marking a hole");
}

static void mark_micro_cb(union hmap_value *v, void *ctx)
{
    if (mark_micro(ctx, v->p) < 0)
        em_log(EM_LOG_ERROR, "out of memory marking a micrograph");
}

/* Finds the session's atlas on disk; an atlas outside the root is read here, as scan
 * does. Marks the session's squares when the link changes. */
static int relink(struct model *m, struct m_session *s)
{
    if (!s->doc)
        return 0;
    const struct epu_session *es = &s->doc->u.session;
    char *rel = tree_find_atlas_at(m->root, s->dir, es->atlas_path, es->storage_path);
    struct m_atlas *a = NULL;
    if (rel) {
        struct hmap_entry *e = hmap_find(&m->atlases_by_rel, hash64_str(rel), rel, atlas_rel_of);
        a = e ? e->v.p : NULL;
        if (!a && strncmp(rel, "../", 3) == 0) {
            struct fsio_stat st;
            struct epu_doc *doc = m->cb.load(m->cb.ctx, rel, EPU_KIND_ATLAS, &st);
            if (doc && (a = atlas_get(m, rel)) != NULL) {
                a->doc = doc;
                a->st = st;
                a->dirty = true;
            } else {
                epu_doc_free(doc);
            }
        }
        free(rel);
    }
    if (a && !a->doc)
        a = NULL;
    if (a != s->atlas) {
        s->atlas = a;
        s->dirty = true;
    }
    return 0;
}

/* Squares named by the session list and the atlas nodes exist even without files. */
static int ensure_listed_squares(struct model *m, struct m_session *s)
{
    const struct epu_session *es = &s->doc->u.session;
    for (size_t i = 0; i < es->gridsquare_count; i++)
        if (!square_get(m, s, es->gridsquare_ids[i], NULL))
            return -EM_ENOMEM;
    if (s->atlas) {
        const struct epu_atlas *at = &s->atlas->doc->u.atlas;
        for (size_t i = 0; i < at->gridsquare_count; i++)
            if (!square_get(m, s, at->gridsquares[i].gridsquare_id.v, NULL))
                return -EM_ENOMEM;
    }
    return 0;
}

static void free_square(union hmap_value *v, void *ctx);
static void free_hole(union hmap_value *v, void *ctx);
static void free_micro(union hmap_value *v, void *ctx);

struct retraction {
    struct model *m;
    int64_t sid;
    const char *source;
    int rc;
};

static void retract_one(struct retraction *r, enum wire_type type, cJSON *key)
{
    if (r->rc == 0)
        r->rc = key ? r->m->cb.retract(r->m->cb.ctx, type, key, r->source) : -EM_ENOMEM;
    else
        cJSON_Delete(key);
}

static void retract_square(union hmap_value *v, void *ctx)
{
    struct retraction *r = ctx;
    const struct m_square *q = v->p;
    retract_one(r, WIRE_GRIDSQUARE, entity_key("session_id", r->sid, "gridsquare_id", q->gs, NULL));
}

static void retract_hole(union hmap_value *v, void *ctx)
{
    struct retraction *r = ctx;
    const struct m_hole *h = v->p;
    retract_one(r, WIRE_FOILHOLE, entity_key("session_id", r->sid, "foilhole_id", h->fh, NULL));
}

static void retract_micro(union hmap_value *v, void *ctx)
{
    struct retraction *r = ctx;
    const struct m_micro *mi = v->p;
    char buf[EM_UUID_TEXT];
    const char *uuid = em_uuid_get(&mi->uuid, buf);
    if (uuid)
        retract_one(r, WIRE_MICROGRAPH,
                    entity_key("session_id", r->sid, "micrograph_uuid", 0, uuid));
}

/* A directory with EPU files but no usable EpuSession.dm: scan lists it as an aborted
 * session (event.h), and so does the model. */
static bool aborted(const struct m_session *s)
{
    return !s->doc && s->has_files;
}

/* The directory is no longer an aborted session (its session file came, or it went). */
/* `maybe`: also when this run did not emit it; an earlier run may have (a restart reads
 * EpuSession.dm before the files that made the directory aborted), and the caller's
 * journal knows (watch emits a delete only for an entity it emitted). */
static int retract_aborted(struct model *m, struct m_session *s, const char *source, bool maybe)
{
    if (!s->aborted_out && !maybe)
        return 0;
    s->aborted_out = false;
    if (!m->cb.retract)
        return 0;
    cJSON *data;
    cJSON *key = entity_aborted_key(s->dir, &data);
    cJSON_Delete(data);
    return key ? m->cb.retract(m->cb.ctx, WIRE_ABORTED_SESSION, key, source) : -EM_ENOMEM;
}

struct each_micro {
    void (*fn)(union hmap_value *v, void *ctx);
    void *ctx;
};

static void each_micro_of(union hmap_value *v, void *ctx)
{
    const struct each_micro *em = ctx;
    struct m_square *q = v->p;
    for (size_t i = 0; i < q->nmicros; i++) {
        union hmap_value mv = {.p = q->micros[i]};
        em->fn(&mv, em->ctx);
    }
}

/* Calls `fn` on every micrograph of the session directory `s` (square by square). */
static void each_micro(struct m_session *s, void (*fn)(union hmap_value *v, void *ctx), void *ctx)
{
    struct each_micro em = {fn, ctx};
    hmap_each(&s->squares, each_micro_of, &em);
}

/* Retracts every entity the session directory `s` gave under the session id `sid`. */
static int retract_session(struct model *m, struct m_session *s, int64_t sid, const char *source)
{
    if (!m->cb.retract)
        return 0;
    struct retraction r = {m, sid, source, 0};
    each_micro(s, retract_micro, &r);
    hmap_each(&s->holes, retract_hole, &r);
    hmap_each(&s->squares, retract_square, &r);
    retract_one(&r, WIRE_SESSION, entity_key("session_id", sid, NULL, 0, NULL));
    return r.rc;
}

static struct m_session *owner_of(const struct m_dirty *d)
{
    switch (d->type) {
    case M_SQUARE:
        return ((const struct m_square *)d->e)->s;
    case M_HOLE:
        return ((const struct m_hole *)d->e)->s;
    default:
        return ((const struct m_micro *)d->e)->q->s;
    }
}

/* Frees the squares, holes and micrographs of `s`, leaving its maps empty. */
static void free_parts(struct model *m, struct m_session *s)
{
    each_micro(s, free_micro, m); /* before their squares */
    hmap_each(&s->squares, free_square, NULL);
    hmap_each(&s->holes, free_hole, m);
    hmap_free(&s->squares);
    hmap_free(&s->holes);
    memset(&s->squares, 0, sizeof(s->squares));
    memset(&s->holes, 0, sizeof(s->holes));
    s->nmicros = 0;
}

/* Forgets everything of the session directory `s` but its path. */
static void session_reset(struct model *m, struct m_session *s)
{
    size_t k = 0;
    for (size_t i = 0; i < m->ndirty; i++)
        if (owner_of(&m->dirty[i]) != s)
            m->dirty[k++] = m->dirty[i];
    m->ndirty = k;
    m->nsquares -= s->squares.count;
    m->nholes -= s->holes.count;
    m->nmicros -= s->nmicros;
    free_parts(m, s);
    m->held -= s->held;
    s->held = 0;
    epu_doc_free(s->doc);
    s->doc = NULL;
    s->atlas = NULL;
    s->dirty = false;
    s->overflowed = false;
    s->dup = false;
}

static int resolve_owner(struct model *m, int64_t id);

int model_forget_dir(struct model *m, const char *dir)
{
    m->changes++;
    struct hmap_entry *e = hmap_find(&m->sessions_by_dir, hash64_str(dir), dir, session_dir_of);
    if (!e)
        return 0;
    struct m_session *s = e->v.p;
    int64_t id = s->doc ? s->doc->u.session.session_id.v : -1;
    int rc = live(s) ? retract_session(m, s, id, dir) : retract_aborted(m, s, dir, false);
    session_reset(m, s);
    s->has_files = false;
    if (rc == 0 && id >= 0)
        rc = resolve_owner(m, id); /* a copy elsewhere may own the id now */
    return rc < 0 ? rc : 1;
}

static void mark_all_of(union hmap_value *v, void *ctx);
static void mark_hole_cb(union hmap_value *v, void *ctx);
static void mark_micro_cb(union hmap_value *v, void *ctx);

/* Marks every entity of the directory for the next flush (its id became known, changed,
 * or it became the owner of its id). */
static void mark_session_all(struct model *m, struct m_session *s)
{
    m->held -= s->held;
    s->held = 0;
    s->dirty = true;
    hmap_each(&s->squares, mark_all_of, m);
    hmap_each(&s->holes, mark_hole_cb, m);
    each_micro(s, mark_micro_cb, m);
    if (s->overflowed && m->cb.rescan) {
        s->overflowed = false;
        m->cb.rescan(m->cb.ctx, s->dir);
    }
}

/* Tree order: the order of a depth-first walk that lists each directory by name, i.e.
 * paths compared component by component ('/' before any other byte). */
static int tree_order(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = *a == '/' ? 1 : (unsigned char)*a, y = *b == '/' ? 1 : (unsigned char)*b;
        if (x != y || !x)
            return (x > y) - (x < y);
    }
}

/* Of the directories that hold session `id`, the first in tree order owns it, as in scan;
 * the others are copies whose entities are not emitted (a copy that had emitted them
 * retracts them first, and the owner emits its own). */
static int resolve_owner(struct model *m, int64_t id)
{
    struct m_session *owner = NULL;
    for (size_t i = 0; i < m->nsessions; i++) {
        struct m_session *s = m->sessions[i];
        if (s->doc && s->doc->u.session.session_id.v == id &&
            (!owner || tree_order(s->dir, owner->dir) < 0))
            owner = s;
    }
    for (size_t i = 0; i < m->nsessions; i++) {
        struct m_session *s = m->sessions[i];
        if (s == owner || !s->doc || s->doc->u.session.session_id.v != id || s->dup)
            continue;
        em_log(EM_LOG_WARN,
               "%s: session id %lld already held by %s, earlier in the tree: its "
               "files are not emitted (a copy?)",
               s->dir, (long long)id, owner->dir);
        int rc = retract_session(m, s, id, s->dir);
        s->dup = true;
        if (rc < 0)
            return rc;
        mark_session_all(m, owner);
    }
    if (owner && owner->dup) {
        owner->dup = false;
        mark_session_all(m, owner);
    }
    return 0;
}

int model_forget_missing(struct model *m,
                         int (*identify)(void *ctx, const char *dir, uint64_t *dev, uint64_t *ino),
                         void *ctx)
{
    m->changes++;
    int n = 0;
    for (size_t i = 0; i < m->nsessions; i++) {
        struct m_session *s = m->sessions[i];
        bool has = s->doc || s->squares.count || s->holes.count || s->nmicros;
        uint64_t dev = 0, ino = 0;
        int known = identify(ctx, s->dir, &dev, &ino);
        if (known < 0)
            continue;
        bool there = known > 0;
        if (there && (!s->seen_id || (dev == s->dev && ino == s->ino))) {
            s->seen_id = true;
            s->dev = dev;
            s->ino = ino;
            continue;
        }
        if (!has && there) { /* nothing to forget: remember the new directory */
            s->dev = dev;
            s->ino = ino;
            continue;
        }
        int rc = model_forget_dir(m, s->dir);
        if (rc < 0)
            return rc;
        n++;
        s->seen_id = there;
        s->dev = dev;
        s->ino = ino;
        if (there && m->cb.rescan)
            m->cb.rescan(m->cb.ctx, s->dir);
    }
    return n;
}

static int on_session(struct model *m, const char *rel, struct epu_doc *doc,
                      const struct fsio_stat *st)
{
    struct tree_loc loc;
    int rc = tree_locate(rel, &loc);
    if (rc < 0) {
        epu_doc_free(doc);
        return rc;
    }
    struct m_session *s = session_get(m, loc.session_dir);
    free(loc.session_dir);
    if (!s) {
        epu_doc_free(doc);
        return -EM_ENOMEM;
    }
    if (!doc)
        return 0; /* keep what an earlier version said */
    bool first = s->doc == NULL;
    if (first && (rc = retract_aborted(m, s, rel, m->cb.retract_unknown)) < 0) {
        epu_doc_free(doc);
        return rc;
    }
    int64_t old_id = s->doc ? s->doc->u.session.session_id.v : -1;
    if (s->doc && s->doc->u.session.session_id.v != doc->u.session.session_id.v) {
        /* Everything of the directory is keyed by the old id: it goes (delete events),
         * and comes again under the new id, as scan of the tree would give it. */
        em_log(EM_LOG_WARN,
               "%s: session id changed from %lld to %lld: its entities are "
               "deleted under the old id and emitted under the new one",
               rel, (long long)s->doc->u.session.session_id.v,
               (long long)doc->u.session.session_id.v);
        int rrc = s->dup ? 0 : retract_session(m, s, s->doc->u.session.session_id.v, rel);
        s->dup = false;
        if (rrc < 0) {
            epu_doc_free(doc);
            return rrc;
        }
        first = true;
    }
    epu_doc_free(s->doc);
    s->doc = doc;
    s->dm_st = *st;
    if (set_str(&s->dm_rel, rel) < 0)
        return -EM_ENOMEM;
    s->dirty = true;
    int64_t new_id = doc->u.session.session_id.v;
    if (first)
        mark_session_all(m, s);
    rc = resolve_owner(m, new_id);
    if (rc == 0 && old_id >= 0 && old_id != new_id)
        rc = resolve_owner(m, old_id);
    if (rc < 0)
        return rc;
    return relink(m, s);
}

static int on_atlas(struct model *m, const char *rel, struct epu_doc *doc,
                    const struct fsio_stat *st)
{
    if (!doc)
        return 0;
    struct m_atlas *a = atlas_get(m, rel);
    if (!a) {
        epu_doc_free(doc);
        return -EM_ENOMEM;
    }
    epu_doc_free(a->doc);
    a->doc = doc;
    a->st = *st;
    a->dirty = true;
    /* Any session may have been waiting for this atlas, and its linked sessions changed. */
    for (size_t i = 0; i < m->nsessions; i++) {
        struct m_session *s = m->sessions[i];
        if (s->atlas == a)
            s->dirty = true;
        int rc = relink(m, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- files of squares ---- */

static int on_metadata(struct model *m, struct m_session *s, struct m_square *q, const char *rel,
                       struct epu_doc *doc, const struct fsio_stat *st)
{
    int rc = mark_square(m, q);
    if (!doc) {
        if (q->meta_rel && strcmp(q->meta_rel, rel) == 0) {
            free(q->meta_part);
            q->meta_part = NULL;
        }
        return rc;
    }
    const struct epu_gridsquare_metadata *g = &doc->u.gridsquare;
    char *part = print_part(entity_metadata_part(g));
    if (!part || set_str(&q->meta_rel, rel) < 0) {
        free(part);
        epu_doc_free(doc);
        return -EM_ENOMEM;
    }
    free(q->meta_part);
    q->meta_part = part;
    q->meta_st = *st;
    for (size_t i = 0; i < g->foilhole_count && rc == 0; i++) {
        const struct epu_foilhole_target *t = &g->foilholes[i];
        struct m_hole *h = hole_get(m, s, t->foilhole_id.v, q->gs);
        if (!h) {
            rc = -EM_ENOMEM;
            break;
        }
        char *state = t->state ? intern(m, t->state) : NULL;
        if (t->state && !state) {
            rc = -EM_ENOMEM;
            break;
        }
        struct m_target packed;
        target_pack(&packed, t, state);
        if (h->has_target && memcmp(&packed, &h->target, sizeof(packed)) == 0)
            continue;
        h->target = packed;
        h->has_target = true;
        rc = mark_hole(m, h);
    }
    /* The exposure map, and micrographs whose exposure id it changes. */
    struct entity_exposure *exp =
        malloc((g->exposure_count ? g->exposure_count : 1) * sizeof(*exp));
    size_t nexp = 0;
    if (!exp || entity_exposures_index(g, exp, &nexp) < 0) {
        free(exp);
        exp = NULL;
        rc = -EM_ENOMEM;
    }
    if (exp) {
        free(q->exp);
        q->exp = exp;
        q->nexp = nexp;
        for (size_t i = 0; i < q->nmicros && rc == 0; i++) {
            struct m_micro *mi = q->micros[i];
            const struct entity_exposure *x = find_exposure(q, entity_micrograph_name(mi->name));
            if ((x != NULL) != mi->has_exp || (x && x->exposure_id != mi->exp))
                rc = mark_micro(m, mi);
        }
    }
    epu_doc_free(doc);
    return rc;
}

/* Whether `rel` is at least as new as the image now kept: names end in _<date>_<time>,
 * so the path that sorts last is the newest, as in scan. */
static bool newer(const char *kept, const char *rel)
{
    return !kept || strcmp(rel, kept) >= 0;
}

static int on_square_image(struct model *m, struct m_square *q, const char *rel,
                           struct epu_doc *doc, const struct fsio_stat *st)
{
    int rc = mark_square(m, q);
    if (doc && newer(q->image_rel, rel)) {
        char *part = print_part(entity_image_part(&doc->u.image, EPU_KIND_GRIDSQUARE_IMAGE, rel));
        if (!part || set_str(&q->image_rel, rel) < 0) {
            free(part);
            rc = -EM_ENOMEM;
        } else {
            free(q->image_part);
            q->image_part = part;
            q->image_st = *st;
        }
    }
    epu_doc_free(doc);
    return rc;
}

static int on_hole_image(struct model *m, struct m_session *s, struct m_square *q, const char *rel,
                         const char *keep, struct epu_doc *doc, const struct fsio_stat *st)
{
    int rc = 0;
    if (doc) {
        struct m_hole *h = hole_get(m, s, doc->u.image.foilhole_id.v, q->gs);
        char kb[PATH_BUF];
        if (!h) {
            rc = -EM_ENOMEM;
        } else if (newer(h->image ? path_str(&h->image->path, kb) : NULL, rel)) {
            char *part = print_part(entity_image_part(&doc->u.image, EPU_KIND_FOILHOLE_IMAGE, rel));
            if (!h->image)
                h->image = em_slab_alloc(&m->image_slab);
            if (!part || !h->image || path_set(m, &h->image->path, rel, keep) < 0) {
                free(part);
                rc = -EM_ENOMEM;
            } else {
                free(h->image->part);
                h->image->part = part;
                h->image->st = *st;
                rc = mark_hole(m, h);
            }
        }
    }
    epu_doc_free(doc);
    return rc;
}

/* The first slot of q's micrograph index for the name hash `h`. */
static size_t mindex_slot(const struct m_square *q, uint64_t h)
{
    return (size_t)(h ^ (h >> 29)) & (q->mindex_cap - 1);
}

/* Puts micros[i] into the index (which has room). */
static void mindex_put(struct m_square *q, size_t i)
{
    size_t k = mindex_slot(q, entity_micrograph_name(q->micros[i]->name));
    while (q->mindex[k])
        k = (k + 1) & (q->mindex_cap - 1);
    q->mindex[k] = (uint32_t)(i + 1);
}

/* Makes the index hold `n` micrographs at most half full. Returns 0 or EM_ENOMEM. */
static int mindex_reserve(struct m_square *q, size_t n)
{
    if (n * 2 <= q->mindex_cap)
        return 0;
    if (n >= UINT32_MAX / 4)
        return -EM_ELIMIT;
    size_t cap = q->mindex_cap ? q->mindex_cap : 16;
    while (cap < n * 2)
        cap *= 2;
    uint32_t *t = calloc(cap, sizeof(*t));
    if (!t)
        return -EM_ENOMEM;
    free(q->mindex);
    q->mindex = t;
    q->mindex_cap = cap;
    for (size_t i = 0; i < q->nmicros; i++)
        mindex_put(q, i);
    return 0;
}

static struct m_micro *mindex_find(const struct model *m, const struct m_square *q, const char *rel)
{
    if (!q->mindex_cap)
        return NULL;
    size_t k = mindex_slot(q, entity_micrograph_name(rel)); /* the name's, as exposures */
    for (; q->mindex[k]; k = (k + 1) & (q->mindex_cap - 1)) {
        struct m_micro *mi = q->micros[q->mindex[k] - 1];
        struct m_path p = micro_path(m, mi);
        if (path_is(&p, rel))
            return mi;
    }
    return NULL;
}

/* The micrograph at `rel` of square `q`, made when new (*added). NULL when out of memory. */
static struct m_micro *micro_get(struct model *m, struct m_session *s, struct m_square *q,
                                 const char *rel, const char *keep, bool *added)
{
    struct m_micro *mi = mindex_find(m, q, rel);
    *added = false;
    if (mi)
        return mi;
    if (mindex_reserve(q, q->nmicros + 1) < 0 || !(mi = em_slab_alloc(&m->micro_slab)))
        return NULL;
    struct m_path p = {NULL, NULL};
    int added_dir = 0;
    struct hmap_entry *e = NULL;
    if (path_set(m, &p, rel, keep) < 0)
        goto fail;
    if (!q->mdir)
        q->mdir = p.dir;
    if (p.dir != q->mdir) { /* interned: one pointer per directory */
        if (!(e = hmap_upsert(&m->micro_dirs, (uintptr_t)mi, NULL, NULL, &added_dir)))
            goto fail;
        e->v.p = (void *)(uintptr_t)p.dir;
        mi->own_dir = true;
    }
    mi->name = p.name;
    if (push_ptr((void ***)&q->micros, &q->nmicros, &q->micros_cap, mi) < 0)
        goto fail;
    mindex_put(q, q->nmicros - 1);
    mi->q = q;
    *added = true;
    s->nmicros++;
    m->nmicros++;
    hold(m, s);
    return mi;
fail:
    if (e)
        hmap_remove(&m->micro_dirs, e);
    path_free(m, &p);
    em_slab_free(&m->micro_slab, mi);
    return NULL;
}

static int on_micrograph(struct model *m, struct m_session *s, struct m_square *q, const char *rel,
                         const char *keep, struct epu_doc *doc, const struct fsio_stat *st,
                         const char *doc_json)
{
    if (!doc)
        return 0;
    bool added;
    struct m_micro *mi = micro_get(m, s, q, rel, keep, &added);
    int rc = mi ? 0 : -EM_ENOMEM;
    if (mi && m->cb.retract && !em_uuid_eq(&mi->uuid, doc->u.image.image_uuid) &&
        em_uuid_set(&mi->uuid, doc->u.image.image_uuid) < 0)
        rc = -EM_ENOMEM;
    /* Without a session id it waits; on_session() marks it when the id arrives. */
    if (rc == 0 && live(s))
        rc = emit_micro_doc(m, mi, doc, st, doc_json);
    epu_doc_free(doc);
    return rc;
}

int model_file(struct model *m, const char *rel, const char *keep, enum epu_kind kind,
               struct epu_doc *doc, const struct fsio_stat *st)
{
    return model_file_json(m, rel, keep, kind, doc, st, NULL);
}

int model_file_json(struct model *m, const char *rel, const char *keep, enum epu_kind kind,
                    struct epu_doc *doc, const struct fsio_stat *st, const char *doc_json)
{
    m->changes++;
    if (kind == EPU_KIND_SESSION)
        return on_session(m, rel, doc, st);
    if (kind == EPU_KIND_ATLAS)
        return on_atlas(m, rel, doc, st);
    struct tree_loc loc;
    int rc = tree_locate(rel, &loc);
    if (rc < 0 || loc.unplaced || loc.kind != kind || !loc.session_dir) {
        free(loc.session_dir);
        epu_doc_free(doc);
        return rc;
    }
    struct m_session *s = session_get(m, loc.session_dir);
    free(loc.session_dir);
    bool new_square = false;
    struct m_square *q = s ? square_get(m, s, loc.gridsquare_id, &new_square) : NULL;
    if (!q) {
        epu_doc_free(doc);
        return -EM_ENOMEM;
    }
    if (!s->has_files) {
        s->has_files = true;
        s->dirty = true; /* without a session file it is now an aborted session */
    }
    if (!s->doc && s->overflowed) {
        /* Over the cap: the directory is read again once the session id is known. */
        epu_doc_free(doc);
        return 0;
    }
    switch (kind) {
    case EPU_KIND_GRIDSQUARE_METADATA:
        return on_metadata(m, s, q, rel, doc, st);
    case EPU_KIND_GRIDSQUARE_IMAGE:
        return on_square_image(m, q, rel, doc, st);
    case EPU_KIND_FOILHOLE_IMAGE:
        rc = new_square ? mark_square(m, q) : 0;
        return rc < 0 ? (epu_doc_free(doc), rc) : on_hole_image(m, s, q, rel, keep, doc, st);
    case EPU_KIND_MICROGRAPH:
        rc = new_square ? mark_square(m, q) : 0;
        return rc < 0 ? (epu_doc_free(doc), rc)
                      : on_micrograph(m, s, q, rel, keep, doc, st, doc_json);
    default:
        epu_doc_free(doc);
        return 0;
    }
}

/* ---- withdrawal ---- */

struct withdraw_ctx {
    struct model *m;
    struct m_session *s;
    int64_t gs;
    int rc;
};

static void withdraw_target(union hmap_value *v, void *ctx)
{
    struct withdraw_ctx *c = ctx;
    struct m_hole *h = v->p;
    if (c->rc < 0 || h->gs != c->gs || !h->has_target)
        return;
    h->has_target = false;
    if (h->image) {
        c->rc = mark_hole(c->m, h);
    } else if (live(c->s) && c->m->cb.retract) {
        /* Known from the .dm alone: with the .dm unreadable the hole is not there. */
        c->rc = c->m->cb.retract(
            c->m->cb.ctx, WIRE_FOILHOLE,
            entity_key("session_id", c->s->doc->u.session.session_id.v, "foilhole_id", h->fh, NULL),
            c->s->dir);
    }
}

int model_withdraw(struct model *m, const char *rel, enum epu_kind kind)
{
    m->changes++;
    struct tree_loc loc;
    int rc = tree_locate(rel, &loc);
    if (rc < 0)
        return rc;
    struct hmap_entry *e = loc.session_dir
                               ? hmap_find(&m->sessions_by_dir, hash64_str(loc.session_dir),
                                           loc.session_dir, session_dir_of)
                               : NULL;
    free(loc.session_dir);
    struct m_session *s = e ? e->v.p : NULL;
    if (!s)
        return 0;
    if (kind == EPU_KIND_SESSION) {
        if (!s->doc || !s->dm_rel || strcmp(s->dm_rel, rel) != 0)
            return 0;
        int64_t id = s->doc->u.session.session_id.v;
        rc = live(s) ? retract_session(m, s, id, rel) : 0;
        session_reset(m, s);
        s->overflowed = true; /* read the directory again once the id is back */
        s->dirty = true;      /* with files and no session file: an aborted session */
        return rc == 0 ? resolve_owner(m, id) : rc;
    }
    if (kind != EPU_KIND_GRIDSQUARE_METADATA)
        return 0;
    struct hmap_entry *qe = hmap_find(&s->squares, id_key(loc.gridsquare_id), NULL, NULL);
    struct m_square *q = qe ? qe->v.p : NULL;
    if (!q || !q->meta_rel || strcmp(q->meta_rel, rel) != 0)
        return 0;
    rc = mark_square(m, q);
    free(q->meta_part);
    q->meta_part = NULL;
    free(q->exp);
    q->exp = NULL;
    q->nexp = 0;
    for (size_t i = 0; i < q->nmicros && rc == 0; i++)
        if (q->micros[i]->has_exp)
            rc = mark_micro(m, q->micros[i]);
    struct withdraw_ctx c = {m, s, q->gs, rc};
    hmap_each(&s->holes, withdraw_target, &c);
    return c.rc;
}

/* ---- flush ---- */

static int flush_sessions(struct model *m)
{
    int rc = 0;
    for (size_t i = 0; i < m->natlases && rc == 0; i++) {
        struct m_atlas *a = m->atlases[i];
        if (!a->dirty || !a->doc)
            continue;
        a->dirty = false;
        cJSON *data = entity_atlas_data(a->doc, a->rel);
        cJSON *key = entity_key("atlas_id", a->doc->u.atlas.atlas_id.v, NULL, 0, NULL);
        rc = m->cb.emit(m->cb.ctx, WIRE_ATLAS, key, data, a->rel, &a->st);
    }
    for (size_t i = 0; i < m->nsessions && rc == 0; i++) {
        struct m_session *s = m->sessions[i];
        if (s->dirty && aborted(s)) {
            s->dirty = false;
            cJSON *data;
            cJSON *key = entity_aborted_key(s->dir, &data);
            rc = key ? m->cb.emit(m->cb.ctx, WIRE_ABORTED_SESSION, key, data, s->dir, NULL)
                     : -EM_ENOMEM;
            s->aborted_out = rc == 0;
            continue;
        }
        if (!s->dirty || !live(s))
            continue;
        s->dirty = false;
        /* The list or the atlas may have changed: every square may read differently. */
        rc = ensure_listed_squares(m, s);
        if (rc < 0)
            break;
        hmap_each(&s->squares, mark_all_of, m);
        const struct epu_atlas *at = s->atlas ? &s->atlas->doc->u.atlas : NULL;
        cJSON *data = entity_session_data(s->doc, s->dir, at != NULL, at ? at->atlas_id.v : 0);
        cJSON *key = entity_key("session_id", s->doc->u.session.session_id.v, NULL, 0, NULL);
        rc = m->cb.emit(m->cb.ctx, WIRE_SESSION, key, data, s->dm_rel, &s->dm_st);
    }
    return rc;
}

int model_flush(struct model *m)
{
    int rc = flush_sessions(m);
    /* Squares, then holes, then micrographs: parents before children. */
    for (int pass = M_SQUARE; pass <= M_MICRO && rc == 0; pass++) {
        for (size_t i = 0; i < m->ndirty && rc == 0; i++) {
            struct m_dirty *d = &m->dirty[i];
            if ((int)d->type != pass)
                continue;
            if (d->type == M_SQUARE) {
                struct m_square *q = d->e;
                q->dirty = false;
                if (live(q->s))
                    rc = emit_square(m, q);
            } else if (d->type == M_HOLE) {
                struct m_hole *h = d->e;
                h->dirty = false;
                if (live(h->s) && (h->has_target || h->image))
                    rc = emit_hole(m, h);
            } else {
                struct m_micro *mi = d->e;
                mi->dirty = false;
                if (live(mi->q->s))
                    rc = emit_micro(m, mi);
            }
        }
    }
    if (rc == 0) {
        m->ndirty = 0;
        /* A big flush (a cold start) need not keep its list for the quiet hours after. */
        if (m->dirty_cap > 4096) {
            free(m->dirty);
            m->dirty = NULL;
            m->dirty_cap = 0;
        }
    }
    return rc;
}

size_t model_dirty(const struct model *m)
{
    size_t n = m->ndirty;
    for (size_t i = 0; i < m->nsessions; i++)
        n += m->sessions[i]->dirty && (m->sessions[i]->doc || aborted(m->sessions[i]));
    for (size_t i = 0; i < m->natlases; i++)
        n += m->atlases[i]->dirty;
    return n;
}

void model_stats(const struct model *m, struct model_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < m->nsessions; i++)
        st->sessions += m->sessions[i]->doc != NULL;
    st->atlases = m->natlases;
    st->squares = m->nsquares;
    st->holes = m->nholes;
    st->micrographs = m->nmicros;
    st->held = m->held;
    st->dropped = m->dropped;
}

struct model *model_new(const char *root, const struct model_callbacks *cb)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->root = strdup(root);
    if (!m->root) {
        free(m);
        return NULL;
    }
    m->cb = *cb;
    em_slab_init(&m->micro_slab, sizeof(struct m_micro));
    em_slab_init(&m->hole_slab, sizeof(struct m_hole));
    em_slab_init(&m->image_slab, sizeof(struct m_image));
    return m;
}

static void free_square(union hmap_value *v, void *ctx)
{
    (void)ctx;
    struct m_square *q = v->p;
    free(q->meta_part);
    free(q->meta_rel);
    free(q->image_part);
    free(q->image_rel);
    free(q->exp);
    free(q->micros);
    free(q->mindex);
    free(q);
}

static void free_image(struct model *m, struct m_hole *h)
{
    if (h->image) {
        free(h->image->part);
        path_free(m, &h->image->path);
        em_slab_free(&m->image_slab, h->image);
        h->image = NULL;
    }
}

static void free_hole(union hmap_value *v, void *ctx)
{
    struct model *m = ctx;
    struct m_hole *h = v->p;
    free_image(m, h);
    em_slab_free(&m->hole_slab, h);
}

static void free_micro(union hmap_value *v, void *ctx)
{
    struct model *m = ctx;
    struct m_micro *mi = v->p;
    struct m_path p = {NULL, mi->name};
    path_free(m, &p);
    if (mi->own_dir) {
        struct hmap_entry *e = hmap_find(&m->micro_dirs, (uintptr_t)mi, NULL, NULL);
        if (e)
            hmap_remove(&m->micro_dirs, e);
    }
    em_uuid_clear(&mi->uuid);
    em_slab_free(&m->micro_slab, mi);
}

static void free_string(union hmap_value *v, void *ctx)
{
    (void)ctx;
    free(v->p);
}

void model_free(struct model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nsessions; i++) {
        struct m_session *s = m->sessions[i];
        free_parts(m, s);
        epu_doc_free(s->doc);
        free(s->dir);
        free(s->dm_rel);
        free(s);
    }
    for (size_t i = 0; i < m->natlases; i++) {
        epu_doc_free(m->atlases[i]->doc);
        free(m->atlases[i]->rel);
        free(m->atlases[i]);
    }
    free(m->sessions);
    free(m->atlases);
    free(m->dirty);
    hmap_each(&m->strings, free_string, NULL);
    hmap_free(&m->strings);
    hmap_free(&m->sessions_by_dir);
    hmap_free(&m->atlases_by_rel);
    hmap_free(&m->micro_dirs);
    em_slab_release(&m->micro_slab);
    em_slab_release(&m->hole_slab);
    em_slab_release(&m->image_slab);
    free(m->root);
    free(m);
}

/* ---- snapshot: the model as it was at a clean stop (model.h) ---- */

/* Fields are tab-separated and records one per line; a text that holds a tab or a line
 * end cannot be written (the snapshot is then not made). */
static bool plain(const char *s)
{
    return !s || strpbrk(s, "\t\n\r") == NULL;
}

/* The writer of a snapshot: fields go into a buffer written with fwrite(), numbers
 * formatted here. (fprintf() was 85 % of a visit's snapshot: 0.4 s on the loop thread for
 * 600,000 records.) 1 MiB, the stdio buffer's size (watch_snapshot.c): glibc writes a
 * whole one straight from here, without copying it into its own. */
#define SOUT_CAP ((size_t)1 << 20)
struct sout {
    FILE *f;
    size_t n;
    char buf[SOUT_CAP];
};

static void so_flush(struct sout *o)
{
    if (o->n)
        fwrite(o->buf, 1, o->n, o->f); /* an error stays in ferror(f), read at the end */
    o->n = 0;
}

static void so_mem(struct sout *o, const char *s, size_t len)
{
    if (o->n + len > SOUT_CAP) {
        so_flush(o);
        if (len > SOUT_CAP / 2) { /* a long part: straight through */
            fwrite(s, 1, len, o->f);
            return;
        }
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

static void so_str(struct sout *o, const char *s)
{
    so_mem(o, s, strlen(s));
}

static void so_ch(struct sout *o, char c)
{
    if (o->n == SOUT_CAP)
        so_flush(o);
    o->buf[o->n++] = c;
}

/* Tab, then s or "-". */
static void so_field(struct sout *o, const char *s)
{
    so_ch(o, '\t');
    so_str(o, s ? s : "-");
}

static void so_u64(struct sout *o, uint64_t v)
{
    char d[20];
    so_mem(o, d, (size_t)(em_fmt_u64(d, v) - d));
}

static void so_i64(struct sout *o, int64_t v)
{
    char d[20];
    so_mem(o, d, (size_t)(em_fmt_i64(d, v) - d));
}

/* As %llx. */
static void so_hex(struct sout *o, uint64_t v)
{
    char d[16];
    size_t k = sizeof(d);
    do
        d[--k] = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    so_mem(o, d + k, sizeof(d) - k);
}

/* As glibc's %a, whatever the C library (quick_hexf() reads it back exactly):
 * [-]0x1.hhhp±d for a normal double with trailing zero digits left off, [-]0x0p+0,
 * [-]0x0.hhhp-1022 for a subnormal; infinities and NaNs through snprintf. */
static void so_hexf(struct sout *o, double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    unsigned bexp = (unsigned)(bits >> 52) & 0x7ff;
    uint64_t man = bits & (((uint64_t)1 << 52) - 1);
    if (bexp == 0x7ff) {
        char t[64];
        snprintf(t, sizeof(t), "%a", x);
        so_str(o, t);
        return;
    }
    if (bits >> 63)
        so_ch(o, '-');
    so_str(o, bexp ? "0x1" : "0x0");
    if (man) {
        char d[13];
        int k = 13;
        for (int i = 0; i < 13; i++)
            d[i] = "0123456789abcdef"[(man >> (48 - 4 * i)) & 15];
        while (d[k - 1] == '0')
            k--;
        so_ch(o, '.');
        so_mem(o, d, (size_t)k);
    }
    int e = bexp ? (int)bexp - 1023 : man ? -1022 : 0;
    so_mem(o, e < 0 ? "p-" : "p+", 2);
    so_u64(o, (uint64_t)(e < 0 ? -e : e));
}

static void put_st(struct sout *o, const struct fsio_stat *st)
{
    so_ch(o, '\t');
    so_u64(o, st->size);
    so_ch(o, ':');
    so_i64(o, st->mtime_sec);
    so_ch(o, ':');
    so_i64(o, st->mtime_nsec);
}

struct save {
    const struct model *m;
    const struct m_session *s;
    struct sout *o;
    bool bad;
};

static void save_square(union hmap_value *v, void *ctx)
{
    struct save *sv = ctx;
    struct sout *o = sv->o;
    const struct m_square *q = v->p;
    if (!plain(q->meta_rel) || !plain(q->image_rel) || !plain(q->meta_part) ||
        !plain(q->image_part)) {
        sv->bad = true;
        return;
    }
    so_ch(o, 'Q');
    so_field(o, sv->s->dir);
    so_ch(o, '\t');
    so_i64(o, q->gs);
    so_field(o, q->meta_rel);
    put_st(o, &q->meta_st);
    so_field(o, q->image_rel);
    put_st(o, &q->image_st);
    so_ch(o, '\t');
    for (size_t i = 0; i < q->nexp; i++) {
        if (i)
            so_ch(o, ',');
        so_hex(o, q->exp[i].name);
        so_ch(o, ':');
        so_i64(o, q->exp[i].exposure_id);
    }
    if (!q->nexp)
        so_ch(o, '-');
    so_field(o, q->meta_part);
    so_field(o, q->image_part);
    so_ch(o, '\n');
}

static void save_hole(union hmap_value *v, void *ctx)
{
    struct save *sv = ctx;
    struct sout *o = sv->o;
    const struct m_hole *h = v->p;
    const struct m_image *im = h->image;
    if (!plain(h->target.state) ||
        (im && (!plain(im->path.dir) || !plain(im->path.name) || !plain(im->part)))) {
        sv->bad = true;
        return;
    }
    so_ch(o, 'H');
    so_field(o, sv->s->dir);
    so_ch(o, '\t');
    so_i64(o, h->fh);
    so_ch(o, '\t');
    so_i64(o, h->gs);
    so_mem(o, h->has_target ? "\t1\t" : "\t0\t", 3);
    so_u64(o, h->target.set);
    for (int i = 0; i < 6; i++) {
        so_ch(o, '\t');
        so_hexf(o, h->target.v[i]);
    }
    so_field(o, h->target.state);
    if (im) {
        so_ch(o, '\t');
        so_str(o, im->path.dir);
        so_str(o, im->path.name);
    } else {
        so_field(o, NULL);
    }
    struct fsio_stat none = {0};
    put_st(o, im ? &im->st : &none);
    so_field(o, im ? im->part : NULL);
    so_ch(o, '\n');
}

static void save_micro(union hmap_value *v, void *ctx)
{
    struct save *sv = ctx;
    struct sout *o = sv->o;
    const struct m_micro *mi = v->p;
    char buf[EM_UUID_TEXT];
    const char *uuid = em_uuid_get(&mi->uuid, buf);
    struct m_path p = micro_path(sv->m, mi);
    if (!plain(p.dir) || !plain(p.name) || !plain(uuid)) {
        sv->bad = true;
        return;
    }
    /* Its session directory and square come from its path (epu_layout.h). */
    so_mem(o, "M\t", 2);
    so_str(o, p.dir);
    so_str(o, p.name);
    so_field(o, uuid);
    so_mem(o, mi->has_exp ? "\t1\t" : "\t0\t", 3);
    so_i64(o, mi->exp);
    so_ch(o, '\n');
}

uint64_t model_changes(const struct model *m)
{
    return m->changes;
}

int model_save(struct model *m, FILE *f)
{
    if (m->ndirty || m->dropped)
        return -EM_ESTATE; /* only a flushed model that kept every part is worth keeping */
    struct sout *o = malloc(sizeof(*o));
    if (!o)
        return -EM_ENOMEM;
    o->f = f;
    o->n = 0;
    struct save sv = {.m = m, .o = o};
    for (size_t i = 0; i < m->natlases && !sv.bad; i++)
        if (m->atlases[i]->doc) {
            sv.bad = !plain(m->atlases[i]->rel);
            so_ch(o, 'A');
            so_field(o, m->atlases[i]->rel);
            so_ch(o, '\n');
        }
    for (size_t i = 0; i < m->nsessions && !sv.bad; i++) {
        struct m_session *s = m->sessions[i];
        if (!plain(s->dir) || !plain(s->dm_rel) || s->overflowed) {
            sv.bad = true;
            break;
        }
        unsigned flags = (s->dup ? 1u : 0) | (s->seen_id ? 2u : 0) | (s->has_files ? 4u : 0) |
                         (s->aborted_out ? 8u : 0);
        so_ch(o, 'S');
        so_field(o, s->dir);
        so_field(o, s->doc ? s->dm_rel : NULL);
        so_ch(o, '\t');
        so_u64(o, flags);
        so_ch(o, '\t');
        so_u64(o, s->dev);
        so_ch(o, '\t');
        so_u64(o, s->ino);
        so_field(o, s->atlas ? s->atlas->rel : NULL);
        /* The id its entities were emitted under: a restore that finds another in the
         * session file now (changed after the snapshot) cannot use the snapshot. */
        so_ch(o, '\t');
        if (s->doc && s->doc->u.session.session_id.set)
            so_i64(o, s->doc->u.session.session_id.v);
        else
            so_ch(o, '-');
        so_ch(o, '\n');
        sv.s = s;
        hmap_each(&s->squares, save_square, &sv);
        hmap_each(&s->holes, save_hole, &sv);
        each_micro(s, save_micro, &sv);
    }
    so_mem(o, "E\n", 2);
    so_flush(o);
    free(o);
    if (sv.bad)
        return -EM_EINVAL;
    return ferror(f) ? -EM_EIO : 0;
}

/* Splits `line` at tabs into at most `max` fields; returns how many. */
static size_t split_tabs(char *line, char **field, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        field[n++] = p;
        p = strchr(p, '\t');
        if (!p)
            break;
        *p++ = '\0';
    }
    return n;
}

static const char *dash_null(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

/* Numbers as model_save() writes them are read without strto*: a visit's snapshot holds
 * several million. Each reader takes only that form (an optional '-', then at most 18
 * digits: no overflow) ending at `stop` or `stop2`; anything else (a '+', spaces, longer
 * numbers) goes to strto* as before. */
static bool quick_dec(const char *s, char stop, char stop2, long long *out, const char **end)
{
    bool neg = *s == '-';
    const char *d = s + neg, *p = d;
    unsigned long long x = 0;
    for (unsigned c; (c = (unsigned)(*p - '0')) <= 9 && p - d < 18; p++)
        x = x * 10 + c;
    if (p == d || (*p != stop && *p != stop2))
        return false;
    *out = neg ? -(long long)x : (long long)x;
    *end = p;
    return true;
}

/* At most 16 lowercase hex digits (as %llx writes them: no overflow). */
static bool quick_hex(const char *s, unsigned long long *out, const char **end)
{
    unsigned long long x = 0;
    const char *p = s;
    for (; p - s < 16; p++) {
        unsigned c = (unsigned)(*p - '0');
        c = c <= 9 ? c : (unsigned)(*p - 'a') <= 5 ? (unsigned)(*p - 'a') + 10 : 16;
        if (c > 15)
            break;
        x = x << 4 | c;
    }
    if (p == s)
        return false;
    *out = x;
    *end = p;
    return true;
}

/* %a as printf writes a double: [-]0x1.hhhp±d, [-]0x0p+0, or subnormal 0x0.hhhp-1022. Every
 * such value is exact in a double, and so is ldexp of its digits. */
static double quick_hexf(const char *s)
{
    const char *p = s + (*s == '-');
    unsigned long long m;
    int frac = 0;
    if (p[0] != '0' || p[1] != 'x' || (p[2] != '0' && p[2] != '1'))
        return strtod(s, NULL);
    m = (unsigned long long)(p[2] - '0');
    p += 3;
    if (*p == '.')
        for (p++; frac < 13; p++, frac++) {
            unsigned c = (unsigned)(*p - '0');
            c = c <= 9 ? c : (unsigned)(*p - 'a') <= 5 ? (unsigned)(*p - 'a') + 10 : 16;
            if (c > 15)
                break;
            m = m << 4 | c;
        }
    long long e;
    const char *end;
    if (*p != 'p' || !quick_dec(p + 1 + (p[1] == '+'), '\0', '\0', &e, &end) || e < -1100 ||
        e > 1100)
        return strtod(s, NULL);
    double v = ldexp((double)m, (int)e - 4 * frac);
    return *s == '-' ? -v : v;
}

static bool parse_st(const char *s, struct fsio_stat *st)
{
    long long q[3];
    const char *at = s;
    if (*s != '-' && quick_dec(at, ':', ':', &q[0], &at) &&
        quick_dec(at + 1, ':', ':', &q[1], &at) && quick_dec(at + 1, '\0', '\0', &q[2], &at) &&
        q[2] >= INT32_MIN && q[2] <= INT32_MAX) {
        memset(st, 0, sizeof(*st));
        st->type = FSIO_FILE;
        st->size = (uint64_t)q[0];
        st->mtime_sec = q[1];
        st->mtime_nsec = (int32_t)q[2];
        return true;
    }
    /* size:sec:nsec (strtoll, not sscanf: a visit's snapshot has 100,000 of them) */
    char *end;
    errno = 0;
    unsigned long long size = strtoull(s, &end, 10);
    if (end == s || *end != ':' || s[0] == '-')
        return false;
    const char *p = end + 1;
    long long sec = strtoll(p, &end, 10);
    if (end == p || *end != ':')
        return false;
    p = end + 1;
    long nsec = strtol(p, &end, 10);
    if (end == p || *end != '\0' || errno)
        return false;
    memset(st, 0, sizeof(*st));
    st->type = FSIO_FILE;
    st->size = size;
    st->mtime_sec = sec;
    st->mtime_nsec = (int32_t)nsec;
    return true;
}

static bool parse_ull(const char *s, unsigned long long *out)
{
    long long v;
    const char *e;
    if (*s != '-' && quick_dec(s, '\0', '\0', &v, &e)) {
        *out = (unsigned long long)v;
        return true;
    }
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

static bool parse_ll(const char *s, long long *out)
{
    const char *e;
    if (quick_dec(s, '\0', '\0', out, &e))
        return true;
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

static struct m_session *restored_session(struct model *m, const char *dir)
{
    struct hmap_entry *e = hmap_find(&m->sessions_by_dir, hash64_str(dir), dir, session_dir_of);
    return e ? e->v.p : NULL;
}

static int restore_atlas(struct model *m, char **fd, size_t n, const struct model_restore_cb *cb)
{
    if (n != 2)
        return -EM_EMALFORMED;
    struct fsio_stat st;
    struct epu_doc *doc = cb->load(cb->ctx, fd[1], EPU_KIND_ATLAS, &st);
    struct m_atlas *a = doc ? atlas_get(m, fd[1]) : NULL;
    if (!a) {
        epu_doc_free(doc);
        return -EM_ESTATE;
    }
    epu_doc_free(a->doc);
    a->doc = doc;
    a->st = st;
    return 0;
}

static int restore_session(struct model *m, char **fd, size_t n, const struct model_restore_cb *cb)
{
    long long flags;
    unsigned long long dev, ino;
    long long id = 0;
    if (n != 8 || !parse_ll(fd[3], &flags) || !parse_ull(fd[4], &dev) || !parse_ull(fd[5], &ino) ||
        (strcmp(fd[7], "-") != 0 && !parse_ll(fd[7], &id)))
        return -EM_EMALFORMED;
    struct m_session *s = session_get(m, fd[1]);
    if (!s)
        return -EM_ENOMEM;
    const char *dm = dash_null(fd[2]);
    if (dm) {
        s->doc = cb->load(cb->ctx, dm, EPU_KIND_SESSION, &s->dm_st);
        if (!s->doc || set_str(&s->dm_rel, dm) < 0)
            return -EM_ESTATE;
    }
    /* The session file read now may be newer than the snapshot (rewritten while the agent
     * was down, or taken in by a run killed after the snapshot); the caller hands it over
     * again after the restore, and the model takes it in then as it would live. Its id
     * must still be the one the restored entities were emitted under: a newer version
     * that gives another (or none) stands in with the snapshot's id, so that the file
     * read again is an id change, as live (the old id's entities deleted, the directory's
     * emitted again under the new one). A session that had no id emitted nothing: one
     * that has an id now is read whole. */
    bool had = strcmp(fd[7], "-") != 0, has = s->doc && s->doc->u.session.session_id.set;
    if (!had && has)
        return -EM_ESTATE;
    if (had && (!s->doc || !has || s->doc->u.session.session_id.v != id)) {
        if (!s->doc)
            return -EM_EMALFORMED; /* an id, and no session file */
        s->doc->u.session.session_id.v = id;
        s->doc->u.session.session_id.set = true;
    }
    s->dup = flags & 1;
    s->seen_id = flags & 2;
    s->has_files = flags & 4;
    s->aborted_out = flags & 8;
    s->dev = (uint64_t)dev;
    s->ino = (uint64_t)ino;
    const char *arel = dash_null(fd[6]);
    if (arel) {
        struct hmap_entry *e = hmap_find(&m->atlases_by_rel, hash64_str(arel), arel, atlas_rel_of);
        if (!e)
            return -EM_ESTATE;
        s->atlas = e->v.p;
    }
    return 0;
}

static int restore_square(struct model *m, char **fd, size_t n)
{
    long long gs;
    struct m_session *s = n == 10 ? restored_session(m, fd[1]) : NULL;
    if (!s || !parse_ll(fd[2], &gs))
        return -EM_EMALFORMED;
    struct m_square *q = square_get(m, s, gs, NULL);
    if (!q)
        return -EM_ENOMEM;
    if (!parse_st(fd[4], &q->meta_st) || !parse_st(fd[6], &q->image_st))
        return -EM_EMALFORMED;
    if (set_str(&q->meta_rel, dash_null(fd[3])) < 0 ||
        set_str(&q->image_rel, dash_null(fd[5])) < 0 ||
        set_str(&q->meta_part, dash_null(fd[8])) < 0 ||
        set_str(&q->image_part, dash_null(fd[9])) < 0)
        return -EM_ENOMEM;
    if (strcmp(fd[7], "-") != 0) {
        size_t cap = 1;
        for (const char *p = fd[7]; *p; p++)
            cap += *p == ',';
        free(q->exp);
        q->exp = malloc(cap * sizeof(*q->exp));
        q->nexp = 0;
        if (!q->exp)
            return -EM_ENOMEM;
        for (char *p = fd[7]; p && *p;) {
            unsigned long long qname;
            long long qid;
            const char *at;
            if (q->nexp < cap && quick_hex(p, &qname, &at) && *at == ':' &&
                quick_dec(at + 1, ',', '\0', &qid, &at)) {
                q->exp[q->nexp++] = (struct entity_exposure){qname, qid};
                p = *at ? (char *)(uintptr_t)at + 1 : NULL;
                continue;
            }
            char *end;
            errno = 0;
            unsigned long long name = strtoull(p, &end, 16);
            if (q->nexp == cap || end == p || *end != ':' || *p == '-')
                return -EM_EMALFORMED;
            char *idp = end + 1;
            long long id = strtoll(idp, &end, 10);
            if (end == idp || (*end != ',' && *end != '\0') || errno)
                return -EM_EMALFORMED;
            q->exp[q->nexp++] = (struct entity_exposure){name, id};
            p = strchr(p, ',');
            if (p)
                p++;
        }
    }
    return 0;
}

static int restore_hole(struct model *m, char **fd, size_t n, const struct model_restore_cb *cb)
{
    long long fh, gs, has, set;
    struct m_session *s = n == 16 ? restored_session(m, fd[1]) : NULL;
    if (!s || !parse_ll(fd[2], &fh) || !parse_ll(fd[3], &gs) || !parse_ll(fd[4], &has) ||
        !parse_ll(fd[5], &set))
        return -EM_EMALFORMED;
    struct m_hole *h = hole_get(m, s, fh, gs);
    if (!h)
        return -EM_ENOMEM;
    memset(&h->target, 0, sizeof(h->target));
    h->has_target = has != 0;
    h->target.set = (uint16_t)set;
    for (int i = 0; i < 6; i++)
        h->target.v[i] = quick_hexf(fd[6 + i]);
    const char *state = dash_null(fd[12]);
    if (state && !(h->target.state = intern(m, state)))
        return -EM_ENOMEM;
    const char *irel = dash_null(fd[13]);
    free_image(m, h); /* a hole written twice (a damaged snapshot): the last one counts */
    if (irel) {
        const char *keep = m->cb.borrow_paths ? cb->path(cb->ctx, irel) : NULL;
        if (m->cb.borrow_paths && !keep)
            return -EM_ESTATE;
        if (!(h->image = em_slab_alloc(&m->image_slab)) ||
            path_set(m, &h->image->path, irel, keep) < 0 ||
            set_str(&h->image->part, dash_null(fd[15])) < 0)
            return -EM_ENOMEM;
        if (!parse_st(fd[14], &h->image->st))
            return -EM_EMALFORMED;
    }
    return 0;
}

static int restore_micro(struct model *m, char **fd, size_t n, const struct model_restore_cb *cb)
{
    long long has, exp;
    if (n != 5 || !parse_ll(fd[3], &has) || !parse_ll(fd[4], &exp))
        return -EM_EMALFORMED;
    struct epu_place pl;
    epu_layout_place(fd[1], &pl);
    if (pl.kind != EPU_KIND_MICROGRAPH || pl.unplaced)
        return -EM_EMALFORMED;
    char dir[4096];
    if (pl.session_len >= sizeof(dir))
        return -EM_ELIMIT;
    memcpy(dir, pl.session_len ? fd[1] : ".", pl.session_len ? pl.session_len : 1);
    dir[pl.session_len ? pl.session_len : 1] = '\0';
    struct m_session *s = restored_session(m, dir);
    if (!s)
        return -EM_EMALFORMED;
    struct m_square *q = square_get(m, s, pl.gridsquare_id, NULL);
    const char *keep = m->cb.borrow_paths ? cb->path(cb->ctx, fd[1]) : NULL;
    if (!q || (m->cb.borrow_paths && !keep))
        return q ? -EM_ESTATE : -EM_ENOMEM;
    bool added;
    struct m_micro *mi = micro_get(m, s, q, fd[1], keep, &added);
    if (!mi)
        return -EM_ENOMEM;
    if (!added)
        return -EM_EMALFORMED; /* a micrograph written twice */
    mi->has_exp = has != 0;
    mi->exp = exp;
    if (strcmp(fd[2], "-") != 0 && em_uuid_set(&mi->uuid, fd[2]) < 0)
        return -EM_ENOMEM;
    return 0;
}

/* model_restore() reads this many records ahead of the one it restores: a micrograph's or
 * image's path is looked up in the caller's journal (its name is borrowed from there), a
 * random access into a set of 600,000 at a visit's scale that waits on memory three times.
 * The records ahead are hinted (cb->prefetch), step 0 as read and step 1 halfway. */
#define RESTORE_AHEAD 16

struct ahead {
    char *line;
    size_t cap;
    char *fd[16];
    size_t n;       /* fields; 0 for a line cut short (no line end) */
    uint64_t token; /* from cb->prefetch, 0 for none */
};

/* The path a record will look up, or NULL. */
static const char *borrowed_path(const struct ahead *a)
{
    if (a->n == 5 && strcmp(a->fd[0], "M") == 0)
        return a->fd[1];
    if (a->n == 16 && strcmp(a->fd[0], "H") == 0 && strcmp(a->fd[13], "-") != 0)
        return a->fd[13];
    return NULL;
}

int model_restore(struct model *m, FILE *f, const struct model_restore_cb *cb)
{
    struct ahead ring[RESTORE_AHEAD] = {0};
    size_t head = 0, tail = 0; /* records read, records restored */
    bool eof = false, hints = cb->prefetch && m->cb.borrow_paths;
    int rc = -EM_ETRUNCATED;
    /* A restore fills the slabs in one go, on a thread whose malloc heap grows with a
     * system call each time: 64 KiB chunks for it (under malloc's mmap threshold), 8 KiB
     * again afterwards, when changes come one by one. */
    struct em_slab *slabs[] = {&m->micro_slab, &m->hole_slab, &m->image_slab};
    for (size_t i = 0; i < sizeof(slabs) / sizeof(*slabs); i++)
        em_arena_set_max_chunk(&slabs[i]->arena, (size_t)64 << 10);
    for (;;) {
        while (!eof && head - tail < RESTORE_AHEAD) {
            struct ahead *a = &ring[head % RESTORE_AHEAD];
            ssize_t len = em_getline(&a->line, &a->cap, f);
            if (len <= 0) {
                eof = true;
                break;
            }
            a->n = 0;
            a->token = 0;
            if (a->line[len - 1] == '\n') {
                a->line[len - 1] = '\0';
                a->n = split_tabs(a->line, a->fd, 16);
                const char *rel = hints ? borrowed_path(a) : NULL;
                if (rel)
                    a->token = cb->prefetch(cb->ctx, rel, 0, 0);
            } else {
                eof = true; /* the last line, cut short */
            }
            head++;
            if (head - tail > RESTORE_AHEAD / 2) {
                const struct ahead *b = &ring[(head - RESTORE_AHEAD / 2 - 1) % RESTORE_AHEAD];
                if (b->token)
                    cb->prefetch(cb->ctx, NULL, 1, b->token);
            }
        }
        if (tail == head)
            break; /* the end of the file before the end record */
        struct ahead *a = &ring[tail++ % RESTORE_AHEAD];
        if (a->n == 0) {
            rc = -EM_ETRUNCATED;
            break;
        }
        char **fd = a->fd;
        size_t n = a->n;
        char t = strlen(fd[0]) == 1 ? fd[0][0] : '?';
        if (t == 'E') {
            rc = n == 1 ? 0 : -EM_EMALFORMED;
            break;
        }
        rc = t == 'A'   ? restore_atlas(m, fd, n, cb)
             : t == 'S' ? restore_session(m, fd, n, cb)
             : t == 'Q' ? restore_square(m, fd, n)
             : t == 'H' ? restore_hole(m, fd, n, cb)
             : t == 'M' ? restore_micro(m, fd, n, cb)
                        : -EM_EMALFORMED;
        if (rc < 0)
            break;
        rc = -EM_ETRUNCATED; /* until the end record */
    }
    for (size_t i = 0; i < RESTORE_AHEAD; i++)
        free(ring[i].line);
    for (size_t i = 0; i < sizeof(slabs) / sizeof(*slabs); i++)
        em_arena_set_max_chunk(&slabs[i]->arena, 0);
    /* What was restored is what was emitted: nothing is due. */
    for (size_t i = 0; i < m->ndirty; i++) {
        const struct m_dirty *d = &m->dirty[i];
        *(d->type == M_SQUARE ? &((struct m_square *)d->e)->dirty
          : d->type == M_HOLE ? &((struct m_hole *)d->e)->dirty
                              : &((struct m_micro *)d->e)->dirty) = false;
    }
    m->ndirty = 0;
    for (size_t i = 0; i < m->nsessions; i++)
        m->sessions[i]->dirty = false;
    for (size_t i = 0; i < m->natlases; i++)
        m->atlases[i]->dirty = false;
    return rc;
}
