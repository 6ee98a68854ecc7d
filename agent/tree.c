#include "em_compat.h"
#include "tree.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dynbuf.h"
#include "em_error.h"
#include "epu.h"
#include "epu_layout.h"
#include "fsio.h"
#include "fswalk.h"
#include "log.h"

int strvec_push(struct strvec *sv, const char *s)
{
    char **v = em_grow(sv->v, sv->n, &sv->cap, sizeof(*v), 8);
    if (!v)
        return -EM_ENOMEM;
    sv->v = v;
    char *copy = strdup(s);
    if (!copy)
        return -EM_ENOMEM;
    sv->v[sv->n++] = copy;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strvec_sort(struct strvec *sv)
{
    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
}

void strvec_free(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

static void square_free(struct tree_square *q)
{
    free(q->metadata);
    strvec_free(&q->images);
    strvec_free(&q->foilholes);
    strvec_free(&q->micrographs);
}

void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->session_count; i++) {
        struct tree_session *s = &t->sessions[i];
        for (size_t j = 0; j < s->square_count; j++)
            square_free(&s->squares[j]);
        free(s->squares);
        free(s->dir);
        free(s->epu_dm);
    }
    free(t->sessions);
    free(t->root);
    strvec_free(&t->atlases);
    strvec_free(&t->other_xml);
    strvec_free(&t->unplaced);
    strvec_free(&t->unreadable);
    strvec_free(&t->unreadable_why);
    memset(t, 0, sizeof(*t));
}

size_t tree_session_files(const struct tree_session *s)
{
    size_t n = s->epu_dm ? 1 : 0;
    for (size_t j = 0; j < s->square_count; j++) {
        const struct tree_square *q = &s->squares[j];
        n += (q->metadata ? 1 : 0) + q->images.n + q->foilholes.n + q->micrographs.n;
    }
    return n;
}

char *tree_abs(const struct tree *t, const char *rel)
{
    return strcmp(rel, ".") == 0 ? strdup(t->root) : fsio_join(t->root, rel);
}

/* "a/b" + "c" -> "a/b/c"; "." + "c" -> "c". */
static char *rel_join(const char *dir, const char *name)
{
    if (strcmp(dir, ".") == 0 || dir[0] == '\0')
        return strdup(name);
    return fsio_join(dir, name);
}

/* The directory part of a relative path: "a/b/c" -> "a/b", "c" -> ".". */
static char *rel_dirname(const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return strdup(".");
    char *d = em_strndup(rel, (size_t)(slash - rel));
    return d;
}

static struct tree_session *session_get(struct tree *t, const char *dir)
{
    /* Files of one session arrive together, so the newest session is the likely one. */
    for (size_t i = t->session_count; i-- > 0;)
        if (strcmp(t->sessions[i].dir, dir) == 0)
            return &t->sessions[i];
    struct tree_session *v = em_grow(t->sessions, t->session_count, &t->session_cap, sizeof(*v), 4);
    if (!v)
        return NULL;
    t->sessions = v;
    struct tree_session *s = &t->sessions[t->session_count];
    memset(s, 0, sizeof(*s));
    s->dir = strdup(dir);
    if (!s->dir)
        return NULL;
    t->session_count++;
    return s;
}

static struct tree_square *square_get(struct tree_session *s, int64_t gs)
{
    for (size_t i = s->square_count; i-- > 0;)
        if (s->squares[i].gridsquare_id == gs)
            return &s->squares[i];
    struct tree_square *v = em_grow(s->squares, s->square_count, &s->square_cap, sizeof(*v), 16);
    if (!v)
        return NULL;
    s->squares = v;
    struct tree_square *q = &s->squares[s->square_count++];
    memset(q, 0, sizeof(*q));
    q->gridsquare_id = gs;
    return q;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int tree_locate(const char *rel, struct tree_loc *loc)
{
    memset(loc, 0, sizeof(*loc));
    struct epu_place pl;
    epu_layout_place(rel, &pl);
    loc->kind = pl.kind;
    loc->unplaced = pl.unplaced;
    loc->gridsquare_id = pl.gridsquare_id;
    if (!pl.has_session)
        return 0;
    loc->session_dir = pl.session_len ? em_strndup(rel, pl.session_len) : strdup(".");
    return loc->session_dir ? 0 : -EM_ENOMEM;
}

static int place_file(struct tree *t, const char *rel)
{
    struct tree_loc loc;
    int rc = tree_locate(rel, &loc);
    if (rc < 0)
        return rc;
    if (loc.unplaced) {
        rc = strvec_push(&t->unplaced, rel);
    } else if (loc.kind == EPU_KIND_ATLAS) {
        rc = strvec_push(&t->atlases, rel);
    } else if (loc.kind == EPU_KIND_NONE) {
        if (ends_with(rel, ".xml") || ends_with(rel, ".dm"))
            rc = strvec_push(&t->other_xml, rel);
    } else {
        struct tree_session *s = session_get(t, loc.session_dir);
        struct tree_square *q = NULL;
        if (s && loc.kind != EPU_KIND_SESSION)
            q = square_get(s, loc.gridsquare_id);
        if (!s || (loc.kind != EPU_KIND_SESSION && !q))
            rc = -EM_ENOMEM;
        else if (loc.kind == EPU_KIND_SESSION)
            rc = s->epu_dm || (s->epu_dm = strdup(rel)) ? 0 : -EM_ENOMEM;
        else if (loc.kind == EPU_KIND_GRIDSQUARE_METADATA)
            rc = q->metadata || (q->metadata = strdup(rel)) ? 0 : -EM_ENOMEM;
        else if (loc.kind == EPU_KIND_GRIDSQUARE_IMAGE)
            rc = strvec_push(&q->images, rel);
        else if (loc.kind == EPU_KIND_FOILHOLE_IMAGE)
            rc = strvec_push(&q->foilholes, rel);
        else
            rc = strvec_push(&q->micrographs, rel);
    }
    free(loc.session_dir);
    return rc;
}

/* Notes directories that mark a session: Metadata/ and Images-Disc<N>/. */
static int note_dir(struct tree *t, const char *rel, const char *name)
{
    bool metadata;
    if (!epu_layout_session_marker(name, &metadata))
        return 0;
    char *dir = rel_dirname(rel);
    struct tree_session *s = dir ? session_get(t, dir) : NULL;
    free(dir);
    if (!s)
        return -EM_ENOMEM;
    if (metadata)
        s->has_metadata = true;
    else
        s->images_discs++;
    return 0;
}

static int tree_dir(void *ctx, const char *dir, const char *rel, const char *name)
{
    (void)dir;
    int rc = note_dir(ctx, rel, name);
    return rc < 0 ? rc : 1;
}

static int tree_file(void *ctx, const char *dir, const char *rel, const char *name)
{
    (void)dir, (void)name;
    return place_file(ctx, rel);
}

static int tree_unreadable(void *ctx, const char *rel, int err)
{
    struct tree *t = ctx;
    t->dirs_failed++;
    if (strvec_push(&t->unreadable, rel) < 0 ||
        strvec_push(&t->unreadable_why, em_strerror(err)) < 0)
        return -EM_ENOMEM;
    return 0;
}

static int cmp_square(const void *a, const void *b)
{
    int64_t x = ((const struct tree_square *)a)->gridsquare_id;
    int64_t y = ((const struct tree_square *)b)->gridsquare_id;
    return (x > y) - (x < y);
}

int tree_scan(const char *root, struct tree *t)
{
    memset(t, 0, sizeof(*t));
    struct fsio_stat st;
    int rc = fsio_stat(root, &st);
    if (rc < 0)
        return rc;
    if (st.type != FSIO_DIR)
        return -EM_ENOENT;
    t->root = strdup(root);
    if (!t->root)
        return -EM_ENOMEM;
    struct fswalk_cb cb = {tree_dir, tree_file, tree_unreadable, t};
    struct fswalk_stats stats;
    rc = fswalk(root, &cb, &stats);
    t->files = stats.files;
    t->dirs = stats.dirs;
    if (rc < 0) {
        tree_free(t);
        return rc;
    }
    for (size_t i = 0; i < t->session_count; i++) {
        struct tree_session *s = &t->sessions[i];
        if (s->square_count > 1)
            qsort(s->squares, s->square_count, sizeof(*s->squares), cmp_square);
        for (size_t j = 0; j < s->square_count; j++) {
            strvec_sort(&s->squares[j].images);
            strvec_sort(&s->squares[j].foilholes);
            strvec_sort(&s->squares[j].micrographs);
        }
    }
    return 0;
}

static bool file_exists(const char *root, const char *rel)
{
    char *abs = strcmp(rel, ".") == 0 ? strdup(root) : fsio_join(root, rel);
    struct fsio_stat st;
    bool ok = abs && fsio_stat(abs, &st) == 0 && st.type == FSIO_FILE;
    free(abs);
    return ok;
}

/* Splits a Windows or POSIX path into components, dropping a drive ("Z:") and empty
 * parts. Returns the count; `parts` point into `buf`. */
static size_t split_path(char *buf, char **parts, size_t max)
{
    size_t n = 0;
    for (char *p = buf; *p;) {
        while (*p == '\\' || *p == '/')
            *p++ = '\0';
        if (!*p)
            break;
        char *start = p;
        while (*p && *p != '\\' && *p != '/')
            p++;
        bool drive = n == 0 && p - start == 2 && start[1] == ':';
        if (!drive && n < max)
            parts[n++] = start;
    }
    return n;
}

static char *join_parts(char **parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    out[0] = '\0';
    char *w = out;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        if (i)
            *w++ = '/';
        memcpy(w, parts[i], l);
        w += l;
    }
    *w = '\0';
    return out;
}

/* Tries `tail` under the session's parent directory, then under the root. */
static char *try_bases(const char *root, const char *dir, const char *tail)
{
    char *parent = rel_dirname(dir);
    if (!parent)
        return NULL;
    const char *bases[2] = {strcmp(dir, ".") == 0 ? ".." : parent, "."};
    char *found = NULL;
    for (int i = 0; i < 2 && !found; i++) {
        char *cand = rel_join(bases[i], tail);
        if (cand && file_exists(root, cand))
            found = cand;
        else
            free(cand);
    }
    free(parent);
    return found;
}

char *tree_find_atlas(const struct tree *t, const struct tree_session *s, const char *atlas_id_path,
                      const char *storage_path)
{
    return tree_find_atlas_at(t->root, s->dir, atlas_id_path, storage_path);
}

char *tree_find_atlas_at(const char *root, const char *session_dir, const char *atlas_id_path,
                         const char *storage_path)
{
    if (!atlas_id_path || !*atlas_id_path)
        return NULL;
    char *buf = strdup(atlas_id_path);
    char *sbuf = storage_path ? strdup(storage_path) : NULL;
    char *parts[64], *sparts[64];
    char *found = NULL;
    if (!buf || (storage_path && !sbuf))
        goto out;
    size_t n = split_path(buf, parts, 64);
    size_t sn = sbuf ? split_path(sbuf, sparts, 64) : 0;
    /* The part after the storage folder (compared case-insensitively, as Windows does). */
    size_t skip = 0;
    if (sn > 0 && sn < n) {
        skip = sn;
        for (size_t i = 0; i < sn; i++)
            if (strcasecmp(parts[i], sparts[i]) != 0)
                skip = 0;
    }
    if (skip) {
        char *tail = join_parts(parts + skip, n - skip);
        found = tail ? try_bases(root, session_dir, tail) : NULL;
        free(tail);
    }
    /* Ever shorter tails, keeping at least Sample<k>/Atlas/Atlas.dm so that the
     * cassette-level Atlas/Atlas.dm is never taken for a slot's atlas. */
    for (size_t i = 0; !found && i + 3 <= n; i++) {
        char *tail = join_parts(parts + i, n - i);
        found = tail ? try_bases(root, session_dir, tail) : NULL;
        free(tail);
    }
out:
    free(buf);
    free(sbuf);
    return found;
}

bool tree_under_unreadable(const struct tree *t, const char *rel)
{
    for (size_t i = 0; i < t->unreadable.n; i++) {
        const char *u = t->unreadable.v[i];
        size_t n = strlen(u);
        if (strncmp(rel, u, n) == 0 && (rel[n] == '\0' || rel[n] == '/'))
            return true;
    }
    return false;
}
