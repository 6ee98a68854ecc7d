/* fsio.h — the little file-system access the agent needs, through libuv's synchronous
 * fs calls so the same code serves Linux and Windows.
 *
 * All functions may be called from any thread; they block.
 */
#ifndef EM_FSIO_H
#define EM_FSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fsio_stat;

/* A reusable read buffer: its memory grows as needed and is kept between reads. */
struct fsio_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Reads the whole regular file at `path` into `b` (replacing its content). Files larger
 * than `max` bytes fail with EM_ELIMIT. Returns 0, EM_ENOENT, EM_EBUSY (Windows: its
 * writer holds it without sharing; try again later), EM_EIO or EM_ENOMEM; on
 * failure *uv_err (if not NULL) holds libuv's error code. */
int fsio_read(const char *path, size_t max, struct fsio_buf *b, int *uv_err);

/* The same, and *st gets the file's size, times and identity from the open file (one
 * path lookup instead of two, and the stat describes the bytes read). */
int fsio_read_stat(const char *path, size_t max, struct fsio_buf *b, struct fsio_stat *st,
                   int *uv_err);

void fsio_buf_free(struct fsio_buf *b);

/* Reads up to `len` bytes at `offset` of the file at `path` into `b` (replacing its
 * content; b->len says how many came, fewer at the end of the file). Returns 0,
 * EM_ENOENT, EM_EIO or EM_ENOMEM. */
int fsio_read_at(const char *path, uint64_t offset, size_t len, struct fsio_buf *b);

enum fsio_type { FSIO_OTHER = 0, FSIO_FILE, FSIO_DIR };

struct fsio_entry {
    char *name;
    enum fsio_type type;
};

/* Lists the directory `path`, sorted by name (byte order). A symbolic link to a regular
 * file is listed as FSIO_FILE; any other link (to a directory, dangling) as FSIO_OTHER, so
 * walks never follow links into directories. You own *out: free it with
 * fsio_entries_free(). Returns 0, or a negative EM_E* naming the cause (fsio_error()). */
int fsio_list(const char *path, struct fsio_entry **out, size_t *count);
void fsio_entries_free(struct fsio_entry *e, size_t count);

struct fsio_stat { /* 40 bytes: the two 4-byte fields side by side (the model keeps one
                    * for each of a visit's 100,000 hole images) */
    enum fsio_type type;
    int32_t mtime_nsec;
    uint64_t size;
    int64_t mtime_sec;
    uint64_t dev, ino; /* identity: a directory deleted and made again has another */
};

/* A directory opened to stat its entries by name: on POSIX with fstatat() on its
 * descriptor, which does not look up the directory's path again for every file (a walk
 * of 600,000 files spends a third of its time there otherwise); elsewhere by the joined
 * path. */
struct fsio_dir;

/* Opens `path` (one that cannot be opened still works, by path). Returns 0 or EM_ENOMEM. */
int fsio_dir_open(const char *path, struct fsio_dir **out);

/* Stats the entry `name` of `d` following links, as fsio_stat() of the joined path. */
int fsio_dir_stat(const struct fsio_dir *d, const char *name, struct fsio_stat *st);

void fsio_dir_close(struct fsio_dir *d);

/* Stats `path` following links. Returns 0, EM_ENOENT or EM_EIO. */
int fsio_stat(const char *path, struct fsio_stat *st);

/* Like fsio_stat() but a symbolic link is reported as FSIO_OTHER, not followed. */
int fsio_lstat(const char *path, struct fsio_stat *st);

/* Writes all `n` bytes of `p` to the open file `fd` (libuv's uv_file). Returns 0 or
 * EM_EIO. */
int fsio_write_all(int fd, char *p, size_t n);

/* The decimal number a small file holds (a pid, a seq), optionally followed by a line
 * end; 0 when the file is missing, unreadable, longer than 40 bytes or holds anything
 * else. */
uint64_t fsio_read_number(const char *path);

/* Makes the file `path` durable (fsync). Returns 0 or a negative EM_E*. */
int fsio_sync_path(const char *path);

/* Renames `from` to `to`, replacing `to` if it exists, on every system (C's rename()
 * fails on Windows when `to` exists). Returns 0 or a negative EM_E*. */
int fsio_rename(const char *from, const char *to);

/* For walks: whether the directory `st` is one of the `depth` directories above it, whose
 * devices and inodes are dev[0..depth) and ino[0..depth) (a tree bind-mounted into
 * itself). When not, records it at position `depth`. */
bool fsio_dir_seen_above(uint64_t *dev, uint64_t *ino, unsigned depth, const struct fsio_stat *st);

/* Turns a libuv error code (negative errno) into the EM_E* code that names the same cause
 * (EM_EACCES, EM_ENOSPC, EM_EISDIR, …), EM_EIO for causes without one of their own. */
int fsio_error(int uv_err);

/* Joins `dir` and `name` with '/' into a new string (you own it); NULL when out of memory. */
char *fsio_join(const char *dir, const char *name);
/* The same into buf[0..cap): false when it does not fit (buf is then left unterminated). */
bool fsio_join_into(char *buf, size_t cap, const char *dir, const char *name);

/* `path` made absolute with symbolic links resolved, no trailing '/', and on Windows with
 * '/' for every '\\' (the watcher, the journal and the events compare paths as strings,
 * with '/'). NULL when it does not exist (or out of memory). */
char *fsio_realpath(const char *path);

/* Windows: turns every '\\' of `path` into '/' (Windows takes either). Elsewhere nothing. */
void fsio_slashes(char *path);

/* Whether `path` is absolute: "/x"; on Windows "C:/x", "C:\\x" or a UNC path. */
bool fsio_is_absolute(const char *path);

#endif
