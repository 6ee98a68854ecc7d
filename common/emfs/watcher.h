/* watcher.h — change notification for directories, one backend per platform (DESIGN §6).
 *
 * Linux (watcher_inotify.c): raw inotify on the loop through uv_poll, one watch per
 * directory, reporting IN_MODIFY (a file grew), IN_CLOSE_WRITE and IN_MOVED_TO (a file
 * is complete), new directories and queue overflows. Elsewhere (watcher_fsevent.c):
 * libuv's uv_fs_event, recursive where the platform supports it, with a settle timer:
 * a file is reported complete once its size and mtime have not changed for `settle_ms`.
 *
 * The watcher never walks: on a new directory it reports it and the owner walks it,
 * calling watcher_add() for each directory before listing it, so nothing written while
 * the walk runs is missed. Everything runs on the loop thread.
 */
#ifndef EM_WATCHER_H
#define EM_WATCHER_H

#include <stdbool.h>

#include <uv.h>

struct watcher_callbacks {
    /* `path` (absolute) changed; `complete` when the writer closed it or moved it in. */
    void (*file)(void *ctx, const char *path, bool complete);
    /* The directory `path` appeared (created or moved in). */
    void (*dir)(void *ctx, const char *path);
    /* Events were lost under `path` (NULL: anywhere); the owner must rescan it. */
    void (*overflow)(void *ctx, const char *path);
    /* A burst of events has been delivered: a good moment to emit. */
    void (*batch)(void *ctx);
    void *ctx;
    /* Optional (NULL: not reported; the agent leaves them out). `from` was renamed to `to`
     * within the watched trees; for a directory the watcher already follows the new
     * paths. Only the inotify backend pairs renames; elsewhere a rename arrives as
     * `removed` plus `file`/`dir`. */
    void (*moved)(void *ctx, const char *from, const char *to, bool is_dir);
    /* Optional: `path` was deleted or moved out of the watched trees. */
    void (*removed)(void *ctx, const char *path, bool is_dir);
    /* Optional: the directory `path`'s attributes changed (permissions, times): one that
     * could not be read may be readable now. Not a change of its content. */
    void (*dir_attrib)(void *ctx, const char *path);
    /* Optional: the watched directory `path` itself no longer exists (deleted, or its
     * file system went away); its watch is dropped. */
    void (*gone)(void *ctx, const char *path);
};

/* Windows: bytes of change notifications the kernel keeps per watched root between two
 * reads (64 KiB, the most a network share accepts; libuv's own is 4 KiB). */
#define WATCHER_CHANGE_BUFFER 65536u

struct watcher_options {
    unsigned settle_ms;   /* fs_event backend: quiet time before a file counts as complete */
    unsigned read_buffer; /* inotify: bytes read per call */
    size_t change_buffer; /* Windows: see WATCHER_CHANGE_BUFFER; 0: that default */
};

struct watcher;

/* Starts a watcher on `loop`. Returns 0, EM_ENOMEM, or EM_EIO when the platform refuses
 * (reason in the log). */
int watcher_new(uv_loop_t *loop, const struct watcher_options *opt,
                const struct watcher_callbacks *cb, struct watcher **out);

/* Watches the directory `path` (absolute); a second call for the same directory is
 * harmless. Returns 0, EM_ENOENT when it is gone, EM_ELIMIT when the system's watch limit
 * is reached (the message says which setting to raise), or another negative EM_E* naming
 * the cause (EM_EACCES, EM_ENAMETOOLONG, …), which the caller reports. */
int watcher_add(struct watcher *w, const char *path);

/* Reports every file still settling as complete now (the fs-event backend; the inotify
 * one has nothing waiting): called before a stop, so that what was written is taken. */
void watcher_flush(struct watcher *w);

/* Number of directories watched. */
unsigned long watcher_count(const struct watcher *w);

/* Stops watching and frees the watcher once its handles have closed (run the loop). */
void watcher_close(struct watcher *w);

/* "inotify" or "fs-event". */
const char *watcher_backend(void);

#endif
