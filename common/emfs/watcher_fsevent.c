/* The portable watcher: libuv's uv_fs_event plus a settle timer.
 *
 * Windows and macOS report a whole tree through one recursive handle; elsewhere libuv
 * ignores the recursive flag, so every directory gets its own handle. On Windows the
 * handle is our own ReadDirectoryChangesW reader (rdcw.h) with a 64 KiB buffer instead
 * of libuv's 4 KiB one, so a burst of EPU writes does not overflow it. There is no
 * "closed" event on these systems, so a changed file is reported complete once its size
 * and mtime have stayed the same for settle_ms; the parser's own check (an incomplete
 * document waits) covers a writer that pauses longer than that. A NULL file name
 * (Windows: the change buffer overflowed) or an error asks the owner to rescan.
 */
#include "watcher.h"

#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "log.h"
#ifdef _WIN32
#include "rdcw.h"
#endif

#if defined(_WIN32) || defined(__APPLE__)
#define RECURSIVE 1
#else
#define RECURSIVE 0
#endif

struct fsw {
#ifdef _WIN32
    struct rdcw *r;
#else
    uv_fs_event_t h;
#endif
    struct watcher *w;
    char *path;
    uint64_t dev, ino; /* the directory watched: another one at the path needs a new start */
};

/* A file that changed and has not yet been quiet for settle_ms. */
struct pending {
    char *path;
    struct fsio_stat st;
    uint64_t due_ms;
    bool evented; /* notified again since `st` was taken: the change is explained */
};

struct watcher {
    uv_loop_t *loop;
    struct watcher_callbacks cb;
    unsigned settle_ms;
    size_t change_buffer;
    struct fsw **handles;
    size_t nhandles, cap;
    struct hmap dirs; /* path hash -> struct fsw *: directories watched */
    struct pending *pend;
    size_t npend, pend_cap;
    struct hmap pend_index; /* path hash -> index in pend + 1 */
    uv_timer_t timer;
    size_t open_handles; /* handles not yet closed, the timer included */
    bool closing;
};

const char *watcher_backend(void)
{
    return "fs-event";
}

static void on_tick(uv_timer_t *t);

int watcher_new(uv_loop_t *loop, const struct watcher_options *opt,
                const struct watcher_callbacks *cb, struct watcher **out)
{
    struct watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -EM_ENOMEM;
    w->loop = loop;
    w->cb = *cb;
    w->settle_ms = opt && opt->settle_ms ? opt->settle_ms : 1000;
    w->change_buffer = opt && opt->change_buffer ? opt->change_buffer : WATCHER_CHANGE_BUFFER;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->open_handles = 1;
    unsigned tick = w->settle_ms / 4 ? w->settle_ms / 4 : 1;
    uv_timer_start(&w->timer, on_tick, tick, tick);
    *out = w;
    return 0;
}

/* Whether `path` lies under a directory already watched recursively. */
static bool covered(const struct watcher *w, const char *path)
{
    if (!RECURSIVE)
        return false;
    for (size_t i = 0; i < w->nhandles; i++) {
        size_t n = strlen(w->handles[i]->path);
        if (strncmp(path, w->handles[i]->path, n) == 0 && (path[n] == '/' || path[n] == '\\'))
            return true;
    }
    return false;
}

static void note(struct watcher *w, const char *path)
{
    /* A file already waiting to settle: its quiet period starts again. Nothing is read or
     * stat'ed per notification (a writer's every write brings one; on Windows a stat is
     * costly), only once it is quiet. */
    uint64_t h = hash64_str(path);
    struct hmap_entry *known = hmap_find(&w->pend_index, h, NULL, NULL);
    if (known && strcmp(w->pend[known->v.u - 1].path, path) == 0) {
        w->pend[known->v.u - 1].due_ms = uv_now(w->loop) + w->settle_ms;
        w->pend[known->v.u - 1].evented = true;
        return;
    }
    struct fsio_stat st;
    if (fsio_stat(path, &st) < 0) {
        /* Gone again, or deleted: the owner knows whether it was a directory. */
        if (w->cb.removed)
            w->cb.removed(w->cb.ctx, path, false);
        return;
    }
    if (st.type == FSIO_DIR) {
        w->cb.dir(w->cb.ctx, path);
        return;
    }
    if (st.type != FSIO_FILE)
        return;
    int added;
    struct hmap_entry *e = hmap_upsert(&w->pend_index, h, NULL, NULL, &added);
    if (!e) {
        w->cb.overflow(w->cb.ctx, NULL);
        return;
    }
    uint64_t due = uv_now(w->loop) + w->settle_ms;
    if (e->v.u && strcmp(w->pend[e->v.u - 1].path, path) == 0) {
        w->pend[e->v.u - 1].st = st;
        w->pend[e->v.u - 1].due_ms = due;
        return;
    }
    struct pending *p = em_grow(w->pend, w->npend, &w->pend_cap, sizeof(*p), 64);
    if (!p) {
        w->cb.overflow(w->cb.ctx, NULL);
        return;
    }
    w->pend = p;
    char *copy = strdup(path);
    if (!copy) {
        w->cb.overflow(w->cb.ctx, NULL);
        return;
    }
    w->pend[w->npend++] = (struct pending){copy, st, due, false};
    e->v.u = w->npend;
    /* Reported once it has settled, not now: then a burst of new files is read once each,
     * together, on the parser pool (under wine, reading each as it appeared made a burst
     * of 10,000 files take twice as long). */
}

static void on_change(struct fsw *f, const char *filename, int status)
{
    struct watcher *w = f->w;
    if (w->closing)
        return;
    if (status < 0 || !filename) {
        em_log(EM_LOG_WARN, "%s: change notifications lost (%s); rescanning", f->path,
               status < 0 ? uv_strerror(status) : "buffer overflow");
        w->cb.overflow(w->cb.ctx, f->path);
        w->cb.batch(w->cb.ctx);
        return;
    }
    char *path = fsio_join(f->path, filename);
    if (!path)
        return;
#ifdef _WIN32
    for (char *p = path; *p; p++)
        if (*p == '\\')
            *p = '/';
#endif
    note(w, path);
    free(path);
}

static void on_closed(struct fsw *f);

#ifdef _WIN32
static void on_rdcw(void *data, const char *name, int status)
{
    on_change(data, name, status);
}

static void on_rdcw_closed(void *data)
{
    on_closed(data);
}

static int fsw_start(struct fsw *f, const char *path)
{
    return rdcw_start(f->w->loop, path, f->w->change_buffer, on_rdcw, f, &f->r);
}

/* Stops the handle; `closed` (or nothing) runs once it is released. */
static void fsw_stop(struct fsw *f, bool closed)
{
    if (!f->r) { /* a restart that failed: nothing to stop */
        if (closed)
            on_closed(f);
        return;
    }
    rdcw_close(f->r, closed ? on_rdcw_closed : NULL);
    f->r = NULL;
}
#else
static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    on_change(h->data, filename, status);
}

static void on_handle_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

static int fsw_start(struct fsw *f, const char *path)
{
    if (f->h.type != UV_FS_EVENT) /* the first start; a restart reuses the handle */
        uv_fs_event_init(f->w->loop, &f->h);
    f->h.data = f;
    return uv_fs_event_start(&f->h, on_event, path, RECURSIVE ? UV_FS_EVENT_RECURSIVE : 0);
}

static void fsw_stop(struct fsw *f, bool closed)
{
    uv_fs_event_stop(&f->h);
    if (closed)
        uv_close((uv_handle_t *)&f->h, on_handle_closed);
}

static void on_discarded(uv_handle_t *h)
{
    struct fsw *f = h->data;
    free(f->path);
    free(f);
}
#endif

/* Frees a handle whose first start failed (libuv knows of it, so it is closed first). */
static void fsw_discard(struct fsw *f)
{
#ifdef _WIN32
    free(f->path);
    free(f);
#else
    if (f->h.type == UV_FS_EVENT) {
        uv_close((uv_handle_t *)&f->h, on_discarded);
        return;
    }
    free(f->path);
    free(f);
#endif
}

static void settle(struct watcher *w, bool all);

static void on_tick(uv_timer_t *t)
{
    settle(t->data, false);
}

void watcher_flush(struct watcher *w)
{
    if (w && !w->closing)
        settle(w, true);
}

/* Reports the files quiet for settle_ms (all: every file waiting) as complete. */
static void settle(struct watcher *w, bool all)
{
    uint64_t now = all ? UINT64_MAX : uv_now(w->loop);
    bool any = false;
    for (size_t i = 0; i < w->npend;) {
        struct pending *p = &w->pend[i];
        if (p->due_ms > now) {
            i++;
            continue;
        }
        /* Quiet for settle_ms. A change that no notification explained (a writer on a
         * share whose notifications lag) asks for another period. */
        struct fsio_stat st;
        int rc = fsio_stat(p->path, &st);
        if (rc == 0 && !p->evented && !all &&
            (st.size != p->st.size || st.mtime_sec != p->st.mtime_sec ||
             st.mtime_nsec != p->st.mtime_nsec)) {
            p->st = st; /* still changing: wait another settle period */
            p->due_ms = now + w->settle_ms;
            i++;
            continue;
        }
        if (rc == 0)
            w->cb.file(w->cb.ctx, p->path, true);
        else if (rc == -EM_ENOENT && p->evented && w->cb.removed)
            w->cb.removed(w->cb.ctx, p->path, false); /* deleted while it settled */
        any = true;
        struct hmap_entry *e = hmap_find(&w->pend_index, hash64_str(p->path), NULL, NULL);
        if (e && e->v.u == i + 1)
            hmap_remove(&w->pend_index, e);
        free(p->path);
        w->pend[i] = w->pend[--w->npend];
        if (i < w->npend) {
            e = hmap_find(&w->pend_index, hash64_str(w->pend[i].path), NULL, NULL);
            if (e)
                e->v.u = i + 1;
        }
    }
    if (any)
        w->cb.batch(w->cb.ctx);
}

int watcher_add(struct watcher *w, const char *path)
{
    int added;
    struct hmap_entry *e;
    if (covered(w, path)) {
        /* Watched by its root's recursive handle; kept (with no handle) to be counted. */
        e = hmap_upsert(&w->dirs, hash64_str(path), NULL, NULL, &added);
        return e ? 0 : -EM_ENOMEM;
    }
    e = hmap_upsert(&w->dirs, hash64_str(path), NULL, NULL, &added);
    if (!e)
        return -EM_ENOMEM;
    struct fsio_stat st;
    bool known = fsio_stat(path, &st) == 0;
    if (!added) {
        /* A directory deleted and made again at the path: the old handle watches a
         * directory that is gone, so start it again on the new one. (A hash collision only
         * costs a missing handle, which rescans cover.) */
        struct fsw *old = e->v.p;
        if (old && known && (old->dev != st.dev || old->ino != st.ino) &&
            strcmp(old->path, path) == 0) {
            fsw_stop(old, false);
            int rc = fsw_start(old, path);
            if (rc < 0)
                return rc == UV_ENOENT || rc == UV_ENOTDIR ? -EM_ENOENT : fsio_error(rc);
            old->dev = st.dev;
            old->ino = st.ino;
        }
        return 0;
    }
    struct fsw *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -EM_ENOMEM;
    }
    f->w = w;
    f->dev = known ? st.dev : 0;
    f->ino = known ? st.ino : 0;
    int rc = fsw_start(f, path);
    if (rc < 0) {
        fsw_discard(f);
        hmap_remove(&w->dirs, e);
        if (rc == UV_ENOENT || rc == UV_ENOTDIR)
            return -EM_ENOENT;
        if (rc == UV_ENOSPC) {
            em_log(EM_LOG_ERROR, "%s: cannot watch: %s (try --poll)", path, uv_strerror(rc));
            return -EM_ELIMIT;
        }
        return fsio_error(rc); /* the caller names the directory and the cause */
    }
    struct fsw **v = em_grow(w->handles, w->nhandles, &w->cap, sizeof(*v), 64);
    if (!v) {
        w->open_handles++; /* released through on_closed like any other */
        fsw_stop(f, true);
        hmap_remove(&w->dirs, e);
        return -EM_ENOMEM;
    }
    w->handles = v;
    w->handles[w->nhandles++] = f;
    w->open_handles++;
    e->v.p = f;
    return 0;
}

/* Directories watched: each with its own handle, or under a recursive one. */
unsigned long watcher_count(const struct watcher *w)
{
    return (unsigned long)w->dirs.count;
}

static void free_watcher(struct watcher *w)
{
    for (size_t i = 0; i < w->npend; i++)
        free(w->pend[i].path);
    free(w->pend);
    free(w->handles);
    hmap_free(&w->dirs);
    hmap_free(&w->pend_index);
    free(w);
}

static void on_closed(struct fsw *f)
{
    struct watcher *w = f->w;
    free(f->path);
    free(f);
    if (--w->open_handles == 0)
        free_watcher(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct watcher *w = h->data;
    if (--w->open_handles == 0)
        free_watcher(w);
}

void watcher_close(struct watcher *w)
{
    if (!w || w->closing)
        return;
    w->closing = true;
    for (size_t i = 0; i < w->nhandles; i++)
        fsw_stop(w->handles[i], true);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}
