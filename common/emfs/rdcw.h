/* rdcw.h — Windows only: one recursive ReadDirectoryChangesW reader per watched root,
 * with a buffer of our choosing, delivering names on the libuv loop.
 *
 * libuv's uv_fs_event reads change notifications into a fixed 4 KiB buffer: about 17 EPU
 * paths, so a burst of writes overflows it and the whole root is walked again. This
 * reader asks for `bufsize` bytes (64 KiB by default, the most a network share accepts)
 * on a thread of its own that waits on overlapped reads; it queues the names (UTF-8, '/'
 * separators, relative to the root) and wakes the loop with a uv_async. Whatever the
 * kernel or the queue cannot hold is reported as an overflow (name NULL), never dropped
 * silently.
 */
#ifndef EM_RDCW_H
#define EM_RDCW_H

#include <stddef.h>

#include <uv.h>

struct rdcw;

/* Called on the loop thread: `name` changed (relative, '/'-separated); or, with `name`
 * NULL, notifications were lost (status 0: the buffer overflowed; status < 0: the read
 * failed with that libuv error and the reader has stopped). */
typedef void (*rdcw_cb)(void *data, const char *name, int status);

/* Starts reading changes under the directory `path` (UTF-8, '/' or '\'). Returns 0 or a
 * negative libuv error (UV_ENOENT, UV_ENOTDIR, UV_EACCES, …). */
int rdcw_start(uv_loop_t *loop, const char *path, size_t bufsize, rdcw_cb cb, void *data,
               struct rdcw **out);

/* Stops the reader; `closed(data)` runs on the loop once everything is released. */
void rdcw_close(struct rdcw *r, void (*closed)(void *data));

#endif
