/* The portable watcher: libuv's uv_fs_event plus a settle timer.
 *
 * Windows and macOS report a whole tree through one recursive handle; elsewhere libuv
 * ignores the recursive flag, so every directory gets its own handle. There is no
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

#if defined(_WIN32) || defined(__APPLE__)
#define RECURSIVE 1
#else
#define RECURSIVE 0
#endif

struct fsw {
    uv_fs_event_t h;
    struct watcher *w;
    char *path;
    uint64_t dev, ino; /* the directory watched: another one at the path needs a new start */
};

/* A file that changed and has not yet been quiet for settle_ms. */
struct pending {
    char *path;
    struct fsio_stat st;
    uint64_t due_ms;
};

struct watcher {
    uv_loop_t *loop;
    struct watcher_callbacks cb;
    unsigned settle_ms;
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
    struct hmap_entry *e = hmap_upsert(&w->pend_index, hash64_str(path), NULL, NULL, &added);
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
    w->pend[w->npend++] = (struct pending){copy, st, due};
    e->v.u = w->npend;
    /* The file may well be complete already: growing files are fed as they grow. */
    w->cb.file(w->cb.ctx, path, false);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct fsw *f = h->data;
    struct watcher *w = f->w;
    (void)events;
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

static void on_tick(uv_timer_t *t)
{
    struct watcher *w = t->data;
    uint64_t now = uv_now(w->loop);
    bool any = false;
    for (size_t i = 0; i < w->npend;) {
        struct pending *p = &w->pend[i];
        if (p->due_ms > now) {
            i++;
            continue;
        }
        struct fsio_stat st;
        int rc = fsio_stat(p->path, &st);
        if (rc == 0 && (st.size != p->st.size || st.mtime_sec != p->st.mtime_sec ||
                        st.mtime_nsec != p->st.mtime_nsec)) {
            p->st = st; /* still changing: wait another settle period */
            p->due_ms = now + w->settle_ms;
            i++;
            continue;
        }
        if (rc == 0)
            w->cb.file(w->cb.ctx, p->path, true);
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
            uv_fs_event_stop(&old->h);
            int rc =
                uv_fs_event_start(&old->h, on_event, path, RECURSIVE ? UV_FS_EVENT_RECURSIVE : 0);
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
    f->h.data = f;
    f->dev = known ? st.dev : 0;
    f->ino = known ? st.ino : 0;
    uv_fs_event_init(w->loop, &f->h);
    int rc = uv_fs_event_start(&f->h, on_event, path, RECURSIVE ? UV_FS_EVENT_RECURSIVE : 0);
    if (rc < 0) {
        free(f->path);
        free(f);
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
        uv_close((uv_handle_t *)&f->h, NULL);
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

static void on_closed(uv_handle_t *h)
{
    struct watcher *w;
    if (h->type == UV_TIMER) {
        w = h->data;
    } else {
        struct fsw *f = h->data;
        w = f->w;
        free(f->path);
        free(f);
    }
    if (--w->open_handles == 0)
        free_watcher(w);
}

void watcher_close(struct watcher *w)
{
    if (!w || w->closing)
        return;
    w->closing = true;
    for (size_t i = 0; i < w->nhandles; i++) {
        uv_fs_event_stop(&w->handles[i]->h);
        uv_close((uv_handle_t *)&w->handles[i]->h, on_closed);
    }
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}
