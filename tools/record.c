/* fsrecorder record: a snapshot of the tree, then every change as it happens, streamed
 * into the recording (recording.h) a segment at a time.
 *
 * Each file's last recorded state is kept as its size, mtime and a 64-bit hash per 4 KiB
 * block, not its bytes, so memory stays small on sessions of 100k files. When a file
 * changes, its new bytes are compared block by block with that state to choose the
 * operation: growth behind an unchanged prefix is an append, a same-size change inside
 * the file is a write at an offset, a shrink to an unchanged prefix on a block boundary
 * is a truncate, the same bytes with a new mtime are a same-content rewrite, and anything
 * else (in particular a rewrite that grows) is a rewrite with the full content.
 */
#include "dynbuf.h"
#include "fsrec.h"
#include "cli_common.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "log.h"
#include "progress.h"
#include "rec_diff.h"
#include "recording.h"
#include "sha256.h"
#include "watcher.h"

#define FLUSH_NS 500000000ull         /* a segment at least every half second */
#define FLUSH_BYTES ((size_t)8 << 20) /* or when this much is waiting */

struct tracked {
    char *rel;
    bool is_dir;
    bool placeholder;
    bool dirty;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t *blocks;
    size_t nblocks;
};

struct recorder {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    struct watcher *w;
    const struct record_options *opt;
    char *root;
    size_t root_len;
    struct hmap map; /* hash of rel -> struct tracked * */
    struct tracked **dirty;
    size_t ndirty, dirty_cap;
    struct rec_writer *wr;
    uint64_t start_ns, last_flush_ns;
    char **suffixes;
    size_t nsuffixes;
    struct fsio_buf buf;
    uint64_t counts[REC_UNKNOWN];
    uint64_t files_seen;
    struct progress prog;
    double snap_t; /* --snapshot: the time of the operation being recorded */
    bool stop_requested, stopping, failed;
    char err[512];
};

static const char *tracked_rel(const void *v)
{
    return ((const struct tracked *)v)->rel;
}

static double now_t(struct recorder *r)
{
    return (double)(uv_hrtime() - r->start_ns) / 1e9;
}

static int64_t mtime_ns(const struct fsio_stat *st)
{
    return st->mtime_sec * 1000000000 + st->mtime_nsec;
}

/* ---- placeholders ---- */

static int parse_suffixes(struct recorder *r, const char *list)
{
    if (!list || !*list || strcmp(list, "none") == 0)
        return 0;
    char *copy = strdup(list);
    if (!copy)
        return -EM_ENOMEM;
    size_t n = 1;
    for (const char *p = copy; *p; p++)
        n += *p == ',';
    r->suffixes = calloc(n, sizeof(*r->suffixes));
    if (!r->suffixes) {
        free(copy);
        return -EM_ENOMEM;
    }
    char *save = copy;
    for (char *p = copy; p; p = save) {
        save = strchr(p, ',');
        if (save)
            *save++ = '\0';
        while (*p == '.')
            p++;
        if (*p)
            r->suffixes[r->nsuffixes++] = strdup(p);
    }
    free(copy);
    return 0;
}

static bool is_placeholder(const struct recorder *r, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    const char *dot = strrchr(slash ? slash : rel, '.');
    if (!dot)
        return false;
    for (size_t i = 0; i < r->nsuffixes; i++)
        if (r->suffixes[i] && strcasecmp(dot + 1, r->suffixes[i]) == 0)
            return true;
    return false;
}

/* ---- the map of what has been recorded ---- */

static struct tracked *find(struct recorder *r, const char *rel)
{
    struct hmap_entry *e = hmap_find(&r->map, hash64_str(rel), rel, tracked_rel);
    return e ? e->v.p : NULL;
}

static struct tracked *add(struct recorder *r, const char *rel, bool is_dir)
{
    int added;
    struct hmap_entry *e = hmap_upsert(&r->map, hash64_str(rel), rel, tracked_rel, &added);
    if (!e)
        return NULL;
    if (added) {
        struct tracked *t = calloc(1, sizeof(*t));
        if (t)
            t->rel = strdup(rel);
        if (!t || !t->rel) {
            free(t);
            hmap_remove(&r->map, e);
            return NULL;
        }
        e->v.p = t;
    }
    struct tracked *t = e->v.p;
    t->is_dir = is_dir;
    return t;
}

static void forget(struct recorder *r, const char *rel)
{
    struct hmap_entry *e = hmap_find(&r->map, hash64_str(rel), rel, tracked_rel);
    if (!e)
        return;
    struct tracked *t = e->v.p;
    hmap_remove(&r->map, e);
    for (size_t i = 0; i < r->ndirty; i++)
        if (r->dirty[i] == t)
            r->dirty[i] = r->dirty[--r->ndirty];
    free(t->rel);
    free(t->blocks);
    free(t);
}

/* Paths of tracked entries strictly below `dir` (you own the array and strings). */
static char **tracked_below(struct recorder *r, const char *dir, size_t *count)
{
    size_t n = strlen(dir), cap = 0;
    char **list = NULL;
    *count = 0;
    for (size_t i = 0; i < r->map.cap; i++) {
        struct hmap_entry *e = &r->map.e[i];
        if (!e->key)
            continue;
        const char *rel = ((struct tracked *)e->v.p)->rel;
        if (strncmp(rel, dir, n) != 0 || rel[n] != '/')
            continue;
        char **l = em_grow(list, *count, &cap, sizeof(*l), 16);
        if (!l)
            break;
        list = l;
        list[(*count)++] = strdup(rel);
    }
    return list;
}

static void free_list(char **list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

/* ---- emitting operations ---- */

static void emit(struct recorder *r, struct rec_op *op)
{
    if (r->failed)
        return;
    if (r->opt->snapshot)
        op->t = op->t < r->snap_t ? r->snap_t : op->t;
    else
        op->t = now_t(r);
    r->snap_t = op->t;
    int rc = rec_writer_add(r->wr, op);
    if (rc == -EM_EINVAL) {
        em_log(EM_LOG_WARN, "%s: name cannot be recorded (%s); skipped", op->path,
               rec_path_check(op->path) ? rec_path_check(op->path) : rec_path_check(op->to));
        return;
    }
    if (rc < 0) {
        snprintf(r->err, sizeof(r->err), "recording %s: %s", op->path, em_strerror(rc));
        r->failed = true;
        return;
    }
    r->counts[op->type]++;
    if (rec_writer_pending(r->wr) >= FLUSH_BYTES) {
        if (rec_writer_flush(r->wr, r->err, sizeof(r->err)) < 0)
            r->failed = true;
        r->last_flush_ns = uv_hrtime();
    }
}

static char *abs_of(struct recorder *r, const char *rel)
{
    return fsio_join(r->root, rel);
}

/* The relative path of an absolute one under the root, or NULL. */
static const char *rel_of(struct recorder *r, const char *abs)
{
    if (strncmp(abs, r->root, r->root_len) != 0 || abs[r->root_len] != '/')
        return NULL;
    return abs + r->root_len + 1;
}

static void walk(struct recorder *r, const char *rel);

static void ensure_dir(struct recorder *r, const char *rel, bool and_walk);

/* Records the directory holding `rel` if it is new. */
static void ensure_parent(struct recorder *r, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return;
    char parent[REC_MAX_PATH + 1];
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
    ensure_dir(r, parent, false);
}

/* Records `rel` as a directory if it is new (after its parents). Live recordings watch it. */
static void ensure_dir(struct recorder *r, const char *rel, bool and_walk)
{
    struct tracked *t = find(r, rel);
    if (t && t->is_dir)
        return;
    ensure_parent(r, rel);
    if (t)
        forget(r, rel); /* a file replaced by a directory */
    if (!add(r, rel, true)) {
        r->failed = true;
        snprintf(r->err, sizeof(r->err), "out of memory");
        return;
    }
    struct rec_op op = {.type = REC_MKDIR, .path = rel};
    emit(r, &op);
    if (r->w) {
        char *abs = abs_of(r, rel);
        if (abs)
            watcher_add(r->w, abs);
        free(abs);
    }
    if (and_walk)
        walk(r, rel);
}

static void record_removed(struct recorder *r, const char *rel)
{
    struct tracked *t = find(r, rel);
    if (!t)
        return;
    bool is_dir = t->is_dir;
    if (is_dir) {
        size_t count;
        char **list = tracked_below(r, rel, &count);
        for (size_t i = 0; i < count; i++)
            forget(r, list[i]);
        free_list(list, count);
    }
    forget(r, rel);
    struct rec_op op = {.type = REC_DELETE, .path = rel, .is_dir = is_dir};
    emit(r, &op);
}

/* Looks at the file `rel` now and records how it differs from what was recorded. */
static void sample(struct recorder *r, const char *rel)
{
    char *abs = abs_of(r, rel);
    if (!abs)
        return;
    struct fsio_stat st;
    int rc = fsio_lstat(abs, &st);
    struct tracked *t = find(r, rel);
    if (rc < 0 || st.type == FSIO_OTHER) {
        if (rc == 0)
            em_log(EM_LOG_INFO, "%s: not a regular file or directory; not recorded", rel);
        if (t)
            record_removed(r, rel);
        free(abs);
        return;
    }
    if (st.type == FSIO_DIR) {
        free(abs);
        if (!t || !t->is_dir)
            ensure_dir(r, rel, true);
        return;
    }
    ensure_parent(r, rel);
    if (t && t->is_dir) {
        record_removed(r, rel); /* a directory replaced by a file */
        t = NULL;
    }
    bool placeholder = is_placeholder(r, rel);
    int64_t mt = mtime_ns(&st);
    if (placeholder) {
        if (!t || !t->placeholder || t->size != st.size) {
            if (!t && !(t = add(r, rel, false))) {
                r->failed = true;
                free(abs);
                return;
            }
            t->placeholder = true;
            t->size = st.size;
            t->mtime_ns = mt;
            free(t->blocks);
            t->blocks = NULL;
            t->nblocks = 0;
            struct rec_op op = {
                .type = REC_PLACEHOLDER, .path = rel, .size = st.size, .mtime_ns = mt};
            emit(r, &op);
        }
        t->dirty = false;
        free(abs);
        return;
    }
    int uverr = 0;
    rc = fsio_read(abs, REC_MAX_DATA, &r->buf, &uverr);
    free(abs);
    if (rc == -EM_ENOENT) {
        if (t)
            record_removed(r, rel);
        return;
    }
    if (rc < 0) {
        em_log(EM_LOG_WARN, "%s: cannot read (%s); will look again at the next change", rel,
               rc == -EM_ELIMIT ? "larger than 1 GiB: name it with --placeholders"
                                : uv_strerror(uverr));
        return;
    }
    const unsigned char *p = (const unsigned char *)r->buf.data;
    size_t n = r->buf.len;
    uint64_t *nb;
    size_t nnb;
    if (!rec_blocks_of(p, n, &nb, &nnb)) {
        r->failed = true;
        snprintf(r->err, sizeof(r->err), "out of memory");
        return;
    }
    char sha[65];
    sha256_hex_bytes(p, n, sha);
    bool was_placeholder = t && t->placeholder, known = t && !t->placeholder;
    if (!t && !(t = add(r, rel, false))) {
        free(nb);
        r->failed = true;
        return;
    }
    struct rec_blocks old = {t->size, t->blocks, t->nblocks};
    struct rec_change c = rec_diff(known ? &old : NULL, was_placeholder, p, n, nb, nnb);
    struct rec_op op = {.type = c.type,
                        .path = rel,
                        .size = n,
                        .sha256 = sha,
                        .mtime_ns = mt,
                        .same = c.same,
                        .offset = c.offset,
                        .data = c.data,
                        .len = c.len};
    /* The same bytes written again are recorded only when the mtime moved. */
    bool record = !c.same || t->mtime_ns != mt;
    if (record)
        emit(r, &op);
    t->placeholder = false;
    t->size = n;
    t->mtime_ns = mt;
    free(t->blocks);
    t->blocks = nb;
    t->nblocks = nnb;
    t->dirty = false;
}

/* Records a directory's content (new entries, changed files); watches it when live. */
static void walk(struct recorder *r, const char *rel)
{
    char *abs = rel ? abs_of(r, rel) : strdup(r->root);
    if (!abs)
        return;
    if (r->w)
        watcher_add(r->w, abs); /* before listing: nothing written meanwhile is missed */
    struct fsio_entry *ents;
    size_t count;
    if (fsio_list(abs, &ents, &count) < 0) {
        free(abs);
        return;
    }
    for (size_t i = 0; i < count && !r->failed; i++) {
        char *child = rel ? fsio_join(rel, ents[i].name) : strdup(ents[i].name);
        if (!child)
            break;
        if (ents[i].type == FSIO_DIR) {
            ensure_dir(r, child, false);
            walk(r, child);
        } else {
            sample(r, child);
            r->files_seen++;
        }
        free(child);
    }
    fsio_entries_free(ents, count);
    free(abs);
}

/* ---- live recording on the loop ---- */

static void mark_dirty(struct recorder *r, const char *rel)
{
    struct tracked *t = find(r, rel);
    if (!t) {
        sample(r, rel); /* new: record it as soon as it is seen */
        return;
    }
    if (t->dirty || t->is_dir)
        return;
    struct tracked **d = em_grow(r->dirty, r->ndirty, &r->dirty_cap, sizeof(*d), 64);
    if (!d) {
        sample(r, rel);
        return;
    }
    r->dirty = d;
    t->dirty = true;
    r->dirty[r->ndirty++] = t;
}

static void sample_dirty(struct recorder *r)
{
    /* sample() may forget entries (and so shrink the list): take the list first. */
    size_t n = r->ndirty;
    char **rels = n ? calloc(n, sizeof(*rels)) : NULL;
    for (size_t i = 0; rels && i < n; i++)
        rels[i] = strdup(r->dirty[i]->rel);
    for (size_t i = 0; i < r->ndirty; i++)
        r->dirty[i]->dirty = false;
    r->ndirty = 0;
    for (size_t i = 0; rels && i < n; i++) {
        if (rels[i])
            sample(r, rels[i]);
        free(rels[i]);
    }
    free(rels);
}

static void on_file(void *ctx, const char *path, bool complete)
{
    struct recorder *r = ctx;
    const char *rel = rel_of(r, path);
    if (!rel)
        return;
    if (complete)
        sample(r, rel);
    else
        mark_dirty(r, rel);
}

static void on_dir(void *ctx, const char *path)
{
    struct recorder *r = ctx;
    const char *rel = rel_of(r, path);
    if (rel)
        ensure_dir(r, rel, true);
}

static void on_overflow(void *ctx, const char *path)
{
    struct recorder *r = ctx;
    const char *rel = path ? rel_of(r, path) : NULL;
    em_log(EM_LOG_WARN, "%s: change notifications were lost; comparing the tree again",
           rel ? rel : ".");
    /* Deleted while unobserved: anything recorded below that is gone now. */
    size_t count = 0;
    char **list = NULL;
    if (rel) {
        list = tracked_below(r, rel, &count);
    } else {
        for (size_t i = 0; i < r->map.cap; i++)
            if (r->map.e[i].key)
                count++;
        list = calloc(count ? count : 1, sizeof(*list));
        size_t k = 0;
        for (size_t i = 0; list && i < r->map.cap; i++)
            if (r->map.e[i].key)
                list[k++] = strdup(((struct tracked *)r->map.e[i].v.p)->rel);
        count = list ? k : 0;
    }
    for (size_t i = 0; i < count; i++) {
        struct fsio_stat st;
        char *abs = list[i] ? abs_of(r, list[i]) : NULL;
        if (abs && fsio_lstat(abs, &st) < 0 && find(r, list[i]))
            record_removed(r, list[i]);
        free(abs);
    }
    free_list(list, count);
    walk(r, rel);
}

/* What was recorded for `from` is now `to`'s. */
static void move_tracked(struct recorder *r, const char *from, const char *to)
{
    struct tracked *c = find(r, from);
    if (!c)
        return;
    struct tracked keep = *c;
    c->blocks = NULL; /* handed over */
    forget(r, from);
    struct tracked *d = add(r, to, keep.is_dir);
    if (!d) {
        free(keep.blocks);
        return;
    }
    d->placeholder = keep.placeholder;
    d->size = keep.size;
    d->mtime_ns = keep.mtime_ns;
    d->blocks = keep.blocks;
    d->nblocks = keep.nblocks;
}

static void on_moved(void *ctx, const char *from, const char *to, bool is_dir)
{
    struct recorder *r = ctx;
    const char *rf = rel_of(r, from), *rt = rel_of(r, to);
    if (!rf || !rt)
        return;
    struct tracked *t = find(r, rf);
    if (!t) {
        /* Never seen under its old name: it is simply new. */
        if (is_dir)
            ensure_dir(r, rt, true);
        else
            sample(r, rt);
        return;
    }
    /* The destination is replaced, as rename() does. */
    if (find(r, rt))
        forget(r, rt);
    bool was_dir = t->is_dir;
    size_t count = 0;
    char **list = was_dir ? tracked_below(r, rf, &count) : NULL;
    size_t flen = strlen(rf);
    for (size_t i = 0; i < count; i++) {
        char moved[2 * REC_MAX_PATH + 2];
        snprintf(moved, sizeof(moved), "%s%s", rt, list[i] + flen);
        move_tracked(r, list[i], moved);
    }
    free_list(list, count);
    move_tracked(r, rf, rt);
    struct rec_op op = {.type = REC_RENAME, .path = rf, .to = rt, .is_dir = was_dir};
    emit(r, &op);
    /* It may have changed before it was renamed. */
    if (was_dir)
        walk(r, rt);
    else
        sample(r, rt);
}

static void on_removed(void *ctx, const char *path, bool is_dir)
{
    struct recorder *r = ctx;
    (void)is_dir;
    const char *rel = rel_of(r, path);
    struct fsio_stat st;
    if (rel && fsio_lstat(path, &st) < 0)
        record_removed(r, rel);
}

static void on_batch(void *ctx)
{
    (void)ctx;
}

static void show_progress(struct recorder *r, bool force)
{
    struct rec_totals tot;
    rec_writer_totals(r->wr, &tot);
    char detail[160];
    snprintf(detail, sizeof(detail), "%llu operations, %llu files tracked, %.1f MB stored",
             (unsigned long long)tot.ops, (unsigned long long)r->map.count, (double)tot.data / 1e6);
    progress_show(&r->prog, "recording", 0, 0, detail, force);
}

static void stop(struct recorder *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    sample_dirty(r);
    uv_timer_stop(&r->tick);
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    watcher_close(r->w);
    r->w = NULL;
}

static void on_tick(uv_timer_t *h)
{
    struct recorder *r = h->data;
    if (r->stop_requested) {
        /* A poll phase has run since the request: changes up to it have been seen. */
        stop(r);
        return;
    }
    sample_dirty(r);
    uint64_t now = uv_hrtime();
    if (!r->failed && now - r->last_flush_ns >= FLUSH_NS) {
        if (rec_writer_flush(r->wr, r->err, sizeof(r->err)) < 0)
            r->failed = true;
        r->last_flush_ns = now;
    }
    show_progress(r, false);
    if (r->failed || (r->opt->duration > 0 && now_t(r) >= r->opt->duration))
        r->stop_requested = true;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct recorder *r = h->data;
    (void)signum;
    r->stop_requested = true;
}

/* ---- snapshot of a finished tree ---- */

struct snap_file {
    char *rel;
    int64_t mtime_ns;
    bool is_dir; /* an empty directory */
};

static int cmp_snap(const void *a, const void *b)
{
    const struct snap_file *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

static int collect(struct recorder *r, const char *rel, struct snap_file **list, size_t *n,
                   size_t *cap)
{
    char *abs = rel ? abs_of(r, rel) : strdup(r->root);
    struct fsio_entry *ents;
    size_t count;
    if (!abs || fsio_list(abs, &ents, &count) < 0) {
        free(abs);
        return abs ? -EM_EIO : -EM_ENOMEM;
    }
    int rc = 0;
    size_t before = *n;
    for (size_t i = 0; i < count && rc == 0; i++) {
        char *child = rel ? fsio_join(rel, ents[i].name) : strdup(ents[i].name);
        char *cabs = child ? abs_of(r, child) : NULL;
        struct fsio_stat st;
        if (!cabs || fsio_lstat(cabs, &st) < 0 || st.type == FSIO_OTHER) {
            free(child);
            free(cabs);
            continue;
        }
        free(cabs);
        if (st.type == FSIO_DIR) {
            rc = collect(r, child, list, n, cap);
            free(child);
            continue;
        }
        struct snap_file *l = em_grow(*list, *n, cap, sizeof(*l), 1024);
        if (!l) { /* (the capacity used to grow even when this failed) */
            free(child);
            rc = -EM_ENOMEM;
            break;
        }
        *list = l;
        (*list)[(*n)++] = (struct snap_file){child, mtime_ns(&st), false};
    }
    fsio_entries_free(ents, count);
    if (rc == 0 && rel && *n == before) {
        /* An empty directory: it keeps its place by its own mtime. */
        struct fsio_stat st;
        struct snap_file *l = em_grow(*list, *n, cap, sizeof(*l), 1024);
        if (l)
            *list = l;
        char *copy = strdup(rel);
        if (copy && *n < *cap && fsio_lstat(abs, &st) == 0)
            (*list)[(*n)++] = (struct snap_file){copy, mtime_ns(&st), true};
        else
            free(copy);
    }
    free(abs);
    return rc;
}

static int snapshot(struct recorder *r)
{
    struct snap_file *list = NULL;
    size_t n = 0, cap = 0;
    int rc = collect(r, NULL, &list, &n, &cap);
    if (rc < 0) {
        snprintf(r->err, sizeof(r->err), "%s: cannot list the tree (%s)", r->root, em_strerror(rc));
        r->failed = true;
    }
    if (n)
        qsort(list, n, sizeof(*list), cmp_snap);
    int64_t t0 = n ? list[0].mtime_ns : 0;
    unsigned chunks = r->opt->chunks ? r->opt->chunks : 1;
    for (size_t i = 0; i < n && !r->failed; i++) {
        const char *rel = list[i].rel;
        double t = (double)(list[i].mtime_ns - t0) / 1e9;
        if (list[i].is_dir) {
            r->snap_t = t > r->snap_t ? t : r->snap_t;
            ensure_dir(r, rel, false);
            continue;
        }
        char *abs = abs_of(r, rel);
        struct fsio_stat st;
        if (!abs || fsio_lstat(abs, &st) < 0) {
            free(abs);
            continue;
        }
        bool ph = is_placeholder(r, rel);
        if (!ph) {
            int uverr = 0;
            rc = fsio_read(abs, REC_MAX_DATA, &r->buf, &uverr);
            if (rc < 0) {
                em_log(EM_LOG_WARN, "%s: cannot read (%s); not recorded", rel,
                       rc == -EM_ELIMIT ? "larger than 1 GiB" : uv_strerror(uverr));
                free(abs);
                continue;
            }
        }
        free(abs);
        size_t len = ph ? 0 : r->buf.len;
        unsigned k = ph ? 1 : (len < chunks ? (len ? (unsigned)len : 1) : chunks);
        /* The pieces end at the file's mtime, `chunk_gap` apart, never before earlier
         * operations; its directories appear just before its first piece. */
        double first = t - (double)(k - 1) * r->opt->chunk_gap;
        r->snap_t = first > r->snap_t ? first : r->snap_t;
        ensure_parent(r, rel);
        if (ph) {
            struct rec_op op = {
                .type = REC_PLACEHOLDER, .path = rel, .size = st.size, .mtime_ns = mtime_ns(&st)};
            emit(r, &op);
        }
        const unsigned char *p = (const unsigned char *)r->buf.data;
        struct sha256 sh;
        sha256_init(&sh);
        size_t off = 0;
        for (unsigned c = 0; !ph && c < k; c++) {
            size_t end = c + 1 == k ? len : len / k * (c + 1);
            sha256_update(&sh, p + off, end - off);
            char hex[65];
            sha256_hex(&sh, hex);
            struct rec_op op = {.type = c == 0 ? REC_CREATE : REC_APPEND,
                                .t = t - (double)(k - 1 - c) * r->opt->chunk_gap,
                                .path = rel,
                                .offset = off,
                                .size = end,
                                .sha256 = hex,
                                .mtime_ns = mtime_ns(&st),
                                .data = p + off,
                                .len = end - off};
            emit(r, &op);
            off = end;
        }
        r->files_seen++;
        char detail[96];
        snprintf(detail, sizeof(detail), "%zu/%zu files", i + 1, n);
        progress_show(&r->prog, "snapshot", i + 1, n, detail, false);
    }
    for (size_t i = 0; i < n; i++)
        free(list[i].rel);
    free(list);
    return r->failed ? -1 : 0;
}

/* ---- the command ---- */

static void free_tracked(union hmap_value *v, void *ctx)
{
    (void)ctx;
    struct tracked *t = v->p;
    free(t->rel);
    free(t->blocks);
    free(t);
}

int fsrec_record(const struct record_options *o)
{
    enum rec_compression comp;
    if (rec_compression_for(o->out, &comp) < 0) {
        fprintf(stderr,
                "fsrecorder: %s: the name must end in .tar, .tar.gz, .tgz, .tar.zst "
                "or .tzst (it chooses the compression)\n",
                o->out);
        return 2;
    }
    struct recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return 1;
    r->opt = o;
    int exit_code = 1;
    char *part = NULL;
    uv_fs_t rp;
    if (uv_fs_realpath(NULL, &rp, o->dir, NULL) == 0)
        r->root = strdup(rp.ptr);
    uv_fs_req_cleanup(&rp);
    struct fsio_stat st;
    int src = r->root ? fsio_stat(r->root, &st) : fsio_stat(o->dir, &st);
    if (src < 0 || st.type != FSIO_DIR) {
        fprintf(stderr, "fsrecorder: %s: %s\n", o->dir,
                src < 0 ? em_strerror(src) : "not a directory");
        goto out;
    }
    r->root_len = strlen(r->root);
    if (parse_suffixes(r, o->placeholders) < 0)
        goto out;
    size_t plen = strlen(o->out) + 6;
    part = malloc(plen);
    if (!part)
        goto out;
    /* The archive grows as a plain tar under this name; it becomes OUT (compressed as
     * asked) when recording stops. After a crash it is still a readable recording. */
    snprintf(part, plen, "%s.part", o->out);
    struct rec_header h = {.source = r->root,
                           .mode = o->snapshot ? "snapshot" : "live",
                           .placeholders = o->placeholders ? o->placeholders : "",
                           .tool = "fsrecorder " EM_VERSION};
    if (rec_writer_open(part, &h, !o->snapshot, &r->wr, r->err, sizeof(r->err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", r->err);
        goto out;
    }
    progress_init(&r->prog, o->quiet);
    r->start_ns = uv_hrtime();
    r->last_flush_ns = r->start_ns;
    if (o->snapshot) {
        snapshot(r);
        progress_done(&r->prog);
    } else {
        if (uv_loop_init(&r->loop) < 0)
            goto out;
        struct watcher_callbacks cb = {.file = on_file,
                                       .dir = on_dir,
                                       .overflow = on_overflow,
                                       .batch = on_batch,
                                       .ctx = r,
                                       .moved = on_moved,
                                       .removed = on_removed};
        if (watcher_new(&r->loop, NULL, &cb, &r->w) < 0) {
            fprintf(stderr, "fsrecorder: cannot watch %s\n", r->root);
            uv_loop_close(&r->loop);
            goto out;
        }
        uv_timer_init(&r->loop, &r->tick);
        r->tick.data = r;
        uv_signal_init(&r->loop, &r->sigint);
        uv_signal_init(&r->loop, &r->sigterm);
        r->sigint.data = r->sigterm.data = r;
        uv_signal_start(&r->sigint, on_signal, SIGINT);
        uv_signal_start(&r->sigterm, on_signal, SIGTERM);
        walk(r, NULL);
        if (!o->quiet)
            fprintf(stderr,
                    "fsrecorder: recording %s into %s (%llu files so far); stop with "
                    "Ctrl-C or SIGTERM\n",
                    r->root, part, (unsigned long long)r->files_seen);
        unsigned ms = o->sample_ms ? o->sample_ms : 25;
        uv_timer_start(&r->tick, on_tick, ms, ms);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        show_progress(r, true);
        progress_done(&r->prog);
        if (uv_loop_close(&r->loop) != 0)
            em_log(EM_LOG_WARN, "loop closed with handles open");
    }
    if (r->failed) {
        fprintf(stderr, "fsrecorder: %s; the recording so far is in %s\n", r->err, part);
        rec_writer_close(r->wr, -1, NULL, 0);
        r->wr = NULL;
        goto out;
    }
    struct rec_totals tot;
    rec_writer_totals(r->wr, &tot);
    double end = o->snapshot ? r->snap_t : now_t(r);
    if (rec_writer_close(r->wr, end, r->err, sizeof(r->err)) < 0) {
        r->wr = NULL;
        fprintf(stderr, "fsrecorder: %s; the recording so far is in %s\n", r->err, part);
        goto out;
    }
    r->wr = NULL;
    if (comp == REC_PLAIN) {
        if (rename(part, o->out) < 0) {
            fprintf(stderr, "fsrecorder: %s: %s (the recording is in %s)\n", o->out,
                    cli_strerror(errno), part);
            goto out;
        }
    } else {
        if (!o->quiet)
            fprintf(stderr, "fsrecorder: compressing into %s\n", o->out);
        if (rec_pack(part, o->out, comp, r->err, sizeof(r->err)) < 0) {
            fprintf(stderr, "fsrecorder: %s (the recording is in %s)\n", r->err, part);
            goto out;
        }
        unlink(part);
    }
    if (!o->quiet) {
        fprintf(stderr,
                "fsrecorder: %s: %llu operations in %.1f s (%llu mkdir, %llu create, %llu "
                "append, %llu write, %llu rewrite, %llu truncate, %llu placeholder, %llu "
                "rename, %llu delete), %.1f MB of content\n",
                o->out, (unsigned long long)tot.ops, end, (unsigned long long)r->counts[REC_MKDIR],
                (unsigned long long)r->counts[REC_CREATE],
                (unsigned long long)r->counts[REC_APPEND], (unsigned long long)r->counts[REC_WRITE],
                (unsigned long long)r->counts[REC_REWRITE],
                (unsigned long long)r->counts[REC_TRUNCATE],
                (unsigned long long)r->counts[REC_PLACEHOLDER],
                (unsigned long long)r->counts[REC_RENAME],
                (unsigned long long)r->counts[REC_DELETE], (double)tot.data / 1e6);
    }
    exit_code = 0;
out:
    if (r->wr)
        rec_writer_close(r->wr, -1, NULL, 0);
    hmap_each(&r->map, free_tracked, NULL);
    hmap_free(&r->map);
    for (size_t i = 0; i < r->nsuffixes; i++)
        free(r->suffixes[i]);
    free(r->suffixes);
    free(r->dirty);
    fsio_buf_free(&r->buf);
    free(r->root);
    free(part);
    free(r);
    return exit_code;
}
