/* The Linux watcher: inotify read directly, because libuv's uv_fs_event hides
 * IN_CLOSE_WRITE and drops IN_Q_OVERFLOW (reference/watcher-anchors.md §2.5). */
#include "watcher.h"
#include "cli_common.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "em_error.h"
#include "fsio.h"
#include "hmap.h"
#include "log.h"

#define DIR_MASK                                                                                   \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF |        \
     IN_ATTRIB | IN_ONLYDIR)
/* What an owner that follows renames and deletions (the recorder) also needs. */
#define GONE_MASK (IN_MOVED_FROM | IN_DELETE)

/* The first half of a rename, waiting for its IN_MOVED_TO with the same cookie. */
struct move_from {
    uint32_t cookie;
    bool is_dir;
    char *path;
};
#define MAX_MOVES 64

struct watcher {
    uv_poll_t poll;
    int fd;
    struct watcher_callbacks cb;
    struct hmap dirs; /* wd -> char *path */
    char *buf;
    size_t buf_len;
    bool closing;
    uint32_t mask;
    struct move_from moves[MAX_MOVES];
    unsigned nmoves;
};

const char *watcher_backend(void)
{
    return "inotify";
}

static uint64_t wd_key(int wd)
{
    return (uint64_t)(unsigned)wd + 1;
}

static void on_readable(uv_poll_t *h, int status, int events);

int watcher_new(uv_loop_t *loop, const struct watcher_options *opt,
                const struct watcher_callbacks *cb, struct watcher **out)
{
    struct watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -EM_ENOMEM;
    w->cb = *cb;
    w->mask = DIR_MASK | (cb->moved || cb->removed ? GONE_MASK : 0);
    /* Big reads empty the kernel queue fast, which is what prevents overflows. */
    w->buf_len = opt && opt->read_buffer ? opt->read_buffer : 256u << 10;
    w->buf = malloc(w->buf_len);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!w->buf || w->fd < 0) {
        if (w->fd < 0)
            em_log(EM_LOG_ERROR, "inotify_init1: %s (fs.inotify.max_user_instances?)",
                   cli_strerror(errno));
        int rc = w->buf ? -EM_EIO : -EM_ENOMEM;
        if (w->fd >= 0)
            close(w->fd);
        free(w->buf);
        free(w);
        return rc;
    }
    if (uv_poll_init(loop, &w->poll, w->fd) < 0 ||
        uv_poll_start(&w->poll, UV_READABLE, on_readable) < 0) {
        close(w->fd);
        free(w->buf);
        free(w);
        return -EM_EIO;
    }
    *out = w;
    return 0;
}

int watcher_add(struct watcher *w, const char *path)
{
    int wd = inotify_add_watch(w->fd, path, w->mask);
    if (wd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return -EM_ENOENT;
        if (errno == ENOSPC) {
            em_log(EM_LOG_ERROR,
                   "%s: the inotify watch limit is reached: raise fs.inotify.max_user_watches "
                   "or use --poll",
                   path);
            return -EM_ELIMIT;
        }
        /* Permission denied, a name too long, …: the caller names the directory. */
        return fsio_error(-errno);
    }
    int added;
    struct hmap_entry *e = hmap_upsert(&w->dirs, wd_key(wd), NULL, NULL, &added);
    if (!e)
        return -EM_ENOMEM;
    if (!added) {
        /* The same inode again, perhaps under a new name after a rename. */
        if (strcmp(e->v.p, path) == 0)
            return 0;
        free(e->v.p);
    }
    e->v.p = strdup(path);
    if (!e->v.p) {
        hmap_remove(&w->dirs, e);
        return -EM_ENOMEM;
    }
    return 0;
}

void watcher_flush(struct watcher *w)
{
    (void)w; /* a file is reported as it changes and when it is closed: nothing waits */
}

unsigned long watcher_count(const struct watcher *w)
{
    return (unsigned long)w->dirs.count;
}

/* Reports the first halves of renames that found no second half: moved out of the
 * watched trees, which for the owner is a deletion. */
static void flush_moves(struct watcher *w)
{
    for (unsigned i = 0; i < w->nmoves; i++) {
        if (w->cb.removed)
            w->cb.removed(w->cb.ctx, w->moves[i].path, w->moves[i].is_dir);
        free(w->moves[i].path);
    }
    w->nmoves = 0;
}

/* The watched directories at or below `from` are now at or below `to`. */
static void rename_watches(struct watcher *w, const char *from, const char *to)
{
    size_t n = strlen(from);
    for (size_t i = 0; i < w->dirs.cap; i++) {
        struct hmap_entry *e = &w->dirs.e[i];
        char *old = e->key ? e->v.p : NULL;
        if (!old || strncmp(old, from, n) != 0 || (old[n] != '\0' && old[n] != '/'))
            continue;
        size_t len = strlen(to) + strlen(old + n) + 1;
        char *p = malloc(len);
        if (!p)
            continue; /* the old path stays; its events will look like a lost watch */
        snprintf(p, len, "%s%s", to, old + n);
        free(old);
        e->v.p = p;
    }
}

/* A rename's halves: pairs them by cookie when the owner wants renames. Returns true when
 * the event was consumed. */
static bool handle_move(struct watcher *w, const struct inotify_event *ev, const char *path)
{
    bool is_dir = (ev->mask & IN_ISDIR) != 0;
    if (ev->mask & IN_MOVED_FROM) {
        if (w->nmoves == MAX_MOVES)
            flush_moves(w);
        char *copy = strdup(path);
        if (!copy) {
            w->cb.overflow(w->cb.ctx, NULL);
            return true;
        }
        w->moves[w->nmoves++] = (struct move_from){ev->cookie, is_dir, copy};
        return true;
    }
    if (!(ev->mask & IN_MOVED_TO) || !w->cb.moved)
        return false;
    for (unsigned i = 0; i < w->nmoves; i++) {
        if (w->moves[i].cookie != ev->cookie)
            continue;
        char *from = w->moves[i].path;
        w->moves[i] = w->moves[--w->nmoves];
        if (is_dir)
            rename_watches(w, from, path);
        w->cb.moved(w->cb.ctx, from, path, is_dir);
        free(from);
        return true;
    }
    return false; /* moved in from outside: a new file or directory */
}

static void handle(struct watcher *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        em_log(EM_LOG_WARN, "inotify queue overflowed (fs.inotify.max_queued_events): "
                            "rescanning everything watched");
        w->cb.overflow(w->cb.ctx, NULL);
        return;
    }
    struct hmap_entry *e = hmap_find(&w->dirs, wd_key(ev->wd), NULL, NULL);
    if (!e)
        return; /* a watch removed a moment ago */
    const char *dir = e->v.p;
    if (ev->mask & IN_IGNORED) {
        /* The kernel dropped the watch: the directory was deleted, or its file system went
         * away. If it is still there, events for it were lost: rescan. */
        struct fsio_stat st;
        bool still_there = fsio_stat(dir, &st) == 0 && st.type == FSIO_DIR;
        em_log(still_there ? EM_LOG_WARN : EM_LOG_DEBUG, "%s: watch removed%s", dir,
               still_there ? " while the directory exists; rescanning" : "");
        if (still_there)
            w->cb.overflow(w->cb.ctx, dir);
        else if (w->cb.gone)
            w->cb.gone(w->cb.ctx, dir);
        free(e->v.p);
        hmap_remove(&w->dirs, e);
        return;
    }
    if (ev->mask & IN_MOVE_SELF) {
        /* An owner that follows renames has had the paths updated already (the rename's
         * halves come first); a directory still at its recorded path is that case. */
        struct fsio_stat st;
        if (w->cb.moved && fsio_stat(dir, &st) == 0 && st.type == FSIO_DIR)
            return;
        /* Paths under it have changed: look again from the top. */
        em_log(EM_LOG_WARN, "%s: directory moved while watched; rescanning", dir);
        w->cb.overflow(w->cb.ctx, NULL);
        return;
    }
    if (ev->mask & IN_DELETE_SELF)
        return; /* IN_IGNORED follows */
    if (ev->len == 0)
        return;
    char *path = fsio_join(dir, ev->name);
    if (!path) {
        w->cb.overflow(w->cb.ctx, dir);
        return;
    }
    if ((ev->mask & (IN_MOVED_FROM | IN_MOVED_TO)) && handle_move(w, ev, path)) {
        free(path);
        return;
    }
    if (ev->mask & IN_DELETE) {
        if (w->cb.removed)
            w->cb.removed(w->cb.ctx, path, (ev->mask & IN_ISDIR) != 0);
        free(path);
        return;
    }
    if (ev->mask & IN_ISDIR) {
        if (ev->mask & (IN_CREATE | IN_MOVED_TO))
            w->cb.dir(w->cb.ctx, path);
        else if ((ev->mask & IN_ATTRIB) && w->cb.dir_attrib)
            w->cb.dir_attrib(w->cb.ctx, path);
    } else if (ev->mask & IN_ATTRIB) {
        /* a file's permissions or times: its content events come on their own */
    } else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
        w->cb.file(w->cb.ctx, path, true);
    } else if (ev->mask & IN_MODIFY) {
        w->cb.file(w->cb.ctx, path, false);
    }
    free(path);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct watcher *w = (struct watcher *)((char *)h - offsetof(struct watcher, poll));
    (void)events;
    if (status < 0) {
        em_log(EM_LOG_ERROR, "inotify poll: %s", uv_strerror(status));
        return;
    }
    for (;;) {
        ssize_t n = read(w->fd, w->buf, w->buf_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                em_log(EM_LOG_ERROR, "inotify read: %s", cli_strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (char *p = w->buf; p < w->buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            handle(w, ev);
            p += sizeof(*ev) + ev->len;
        }
        if (w->closing)
            return;
    }
    flush_moves(w);
    w->cb.batch(w->cb.ctx);
}

static void free_dir(union hmap_value *v, void *ctx)
{
    (void)ctx;
    free(v->p);
}

static void on_closed(uv_handle_t *h)
{
    struct watcher *w = (struct watcher *)((char *)h - offsetof(struct watcher, poll));
    close(w->fd);
    for (unsigned i = 0; i < w->nmoves; i++)
        free(w->moves[i].path);
    hmap_each(&w->dirs, free_dir, NULL);
    hmap_free(&w->dirs);
    free(w->buf);
    free(w);
}

void watcher_close(struct watcher *w)
{
    if (!w || w->closing)
        return;
    w->closing = true;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_closed);
}
