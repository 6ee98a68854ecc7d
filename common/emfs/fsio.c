#ifndef _WIN32
#define _DEFAULT_SOURCE 1 /* d_type's DT_* beside _POSIX_C_SOURCE: before any header */
#endif
#include "fsio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#ifndef _WIN32
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "em_error.h"

int fsio_error(int err)
{
    switch (err) {
    case 0:
        return 0;
    case UV_ENOENT:
    case UV_ENOTDIR:
        return -EM_ENOENT;
    case UV_ENOMEM:
        return -EM_ENOMEM;
    case UV_EACCES:
    case UV_EPERM:
        return -EM_EACCES;
    case UV_ENOSPC:
        return -EM_ENOSPC;
    case UV_EISDIR:
        return -EM_EISDIR;
    case UV_ENAMETOOLONG:
        return -EM_ENAMETOOLONG;
    case UV_EPIPE:
        return -EM_EPIPE;
    case UV_EROFS:
        return -EM_EROFS;
    case UV_ELOOP:
        return -EM_ELOOP;
    case UV_EBUSY: /* Windows: a sharing violation (the writer holds the file) */
        return -EM_EBUSY;
#ifdef EDQUOT
    case -EDQUOT:
        return -EM_EDQUOT;
#endif
    default:
        return -EM_EIO;
    }
}

#define from_uv fsio_error

static void from_statbuf(const uv_stat_t *s, struct fsio_stat *st);

int fsio_read(const char *path, size_t max, struct fsio_buf *b, int *uv_err)
{
    return fsio_read_stat(path, max, b, NULL, uv_err);
}

int fsio_read_stat(const char *path, size_t max, struct fsio_buf *b, struct fsio_stat *st,
                   int *uv_err)
{
    uv_fs_t req;
    int rc = 0, err = 0;
    b->len = 0;
    uv_file fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        err = fd;
        rc = from_uv(fd);
        goto out;
    }
    if (st) {
        err = uv_fs_fstat(NULL, &req, fd, NULL);
        if (err == 0)
            from_statbuf(&req.statbuf, st);
        uv_fs_req_cleanup(&req);
        if (err < 0) {
            rc = from_uv(err);
            goto close;
        }
        /* Room for the whole file and the read that finds its end, in one allocation. */
        if (st->type == FSIO_FILE && st->size < max && st->size + 1 > b->cap) {
            char *p = realloc(b->data, (size_t)st->size + 4096);
            if (!p) {
                rc = -EM_ENOMEM;
                goto close;
            }
            b->data = p;
            b->cap = (size_t)st->size + 4096;
        }
    }
    for (;;) {
        if (b->cap - b->len < (st ? 1 : 65536)) {
            size_t cap = b->cap ? b->cap * 2 : 65536;
            if (cap > max + 65536)
                cap = max + 65536;
            if (cap <= b->cap) {
                rc = -EM_ELIMIT;
                goto close;
            }
            char *p = realloc(b->data, cap);
            if (!p) {
                rc = -EM_ENOMEM;
                goto close;
            }
            b->data = p;
            b->cap = cap;
        }
        uv_buf_t ub = uv_buf_init(b->data + b->len, (unsigned)(b->cap - b->len));
        ssize_t n = uv_fs_read(NULL, &req, fd, &ub, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0) {
            err = (int)n;
            rc = from_uv(err);
            goto close;
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
        if (b->len > max) {
            rc = -EM_ELIMIT;
            goto close;
        }
    }
close:
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
out:
    if (uv_err)
        *uv_err = err;
    return rc;
}

int fsio_read_at(const char *path, uint64_t offset, size_t len, struct fsio_buf *b)
{
    uv_fs_t req;
    b->len = 0;
    if (len > b->cap) {
        char *p = realloc(b->data, len);
        if (!p)
            return -EM_ENOMEM;
        b->data = p;
        b->cap = len;
    }
    uv_file fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0)
        return from_uv(fd);
    int rc = 0;
    while (b->len < len) {
        uv_buf_t ub = uv_buf_init(b->data + b->len, (unsigned)(len - b->len));
        ssize_t n = uv_fs_read(NULL, &req, fd, &ub, 1, (int64_t)(offset + b->len), NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0) {
            rc = from_uv((int)n);
            break;
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
    }
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return rc;
}

void fsio_buf_free(struct fsio_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct fsio_entry *)a)->name, ((const struct fsio_entry *)b)->name);
}

/* The type of an entry the directory calls a link or does not type: a link to a file
 * counts as that file; a link to a directory is never followed (EPU writes none, and
 * `a -> .` would make every walk endless). Unknown (some file systems): lstat tells, and a
 * link there likewise. */
static enum fsio_type untyped_entry(const char *dir, const char *name, bool unknown)
{
    struct fsio_stat st;
    char *full = fsio_join(dir, name);
    enum fsio_type t = FSIO_OTHER;
    if (full && unknown && fsio_lstat(full, &st) == 0)
        t = st.type;
    if (full && t == FSIO_OTHER && fsio_stat(full, &st) == 0 && st.type == FSIO_FILE)
        t = FSIO_FILE;
    free(full);
    return t;
}

/* A list is one block on POSIX systems (see fsio_list): its entries, one more whose name
 * points just past it (the mark), then the names. Elsewhere each name is its own. */
static bool packed(const struct fsio_entry *e, size_t count)
{
    return e[count].name == (const char *)(e + count + 1);
}

void fsio_entries_free(struct fsio_entry *e, size_t count)
{
    if (!e)
        return;
    if (!packed(e, count))
        for (size_t i = 0; i < count; i++)
            free(e[i].name);
    free(e);
}

#ifndef _WIN32
/* readdir(), not uv_fs_scandir(): libuv's scandir sorts (strcmp) and allocates each
 * name, and the names were copied again and sorted once more here; a restart of a
 * visit lists 600,000 names. Here they go into one block, sorted once. */
int fsio_list(const char *path, struct fsio_entry **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (!d)
        return from_uv(-errno);
    struct slot {
        size_t off;
        enum fsio_type type;
    } *v = NULL;
    char *names = NULL;
    size_t n = 0, vcap = 0, len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = from_uv(-errno);
            break;
        }
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        size_t l = strlen(nm) + 1;
        if (len + l > cap) {
            size_t c = cap ? cap * 2 : 4096;
            char *p = c >= len + l ? realloc(names, c) : NULL;
            if (!p) {
                rc = -EM_ENOMEM;
                break;
            }
            names = p;
            cap = c;
        }
        if (n == vcap) {
            size_t c = vcap ? vcap * 2 : 64;
            struct slot *p = realloc(v, c * sizeof(*v));
            if (!p) {
                rc = -EM_ENOMEM;
                break;
            }
            v = p;
            vcap = c;
        }
        memcpy(names + len, nm, l);
        enum fsio_type t = de->d_type == DT_DIR   ? FSIO_DIR
                           : de->d_type == DT_REG ? FSIO_FILE
                           : de->d_type == DT_LNK || de->d_type == DT_UNKNOWN
                               ? untyped_entry(path, nm, de->d_type == DT_UNKNOWN)
                               : FSIO_OTHER;
        v[n++] = (struct slot){len, t};
        len += l;
    }
    closedir(d);
    struct fsio_entry *e = NULL;
    if (rc == 0 && !(e = malloc((n + 1) * sizeof(*e) + (len ? len : 1))))
        rc = -EM_ENOMEM;
    if (rc == 0) {
        char *block = (char *)(e + n + 1);
        if (len)
            memcpy(block, names, len);
        for (size_t i = 0; i < n; i++)
            e[i] = (struct fsio_entry){block + v[i].off, v[i].type};
        e[n] = (struct fsio_entry){block, FSIO_OTHER};
        qsort(e, n, sizeof(*e), cmp_entry);
        *out = e;
        *count = n;
    }
    free(v);
    free(names);
    return rc;
}
#else
int fsio_list(const char *path, struct fsio_entry **out, size_t *count)
{
    uv_fs_t req;
    *out = NULL;
    *count = 0;
    int n = uv_fs_scandir(NULL, &req, path, 0, NULL);
    if (n < 0) {
        uv_fs_req_cleanup(&req);
        return from_uv(n);
    }
    struct fsio_entry *e = calloc((size_t)n + 1, sizeof(*e));
    if (!e) {
        uv_fs_req_cleanup(&req);
        return -EM_ENOMEM;
    }
    size_t i = 0;
    uv_dirent_t d;
    int rc = 0;
    while (uv_fs_scandir_next(&req, &d) != UV_EOF && i < (size_t)n) {
        e[i].name = strdup(d.name);
        if (!e[i].name) {
            rc = -EM_ENOMEM;
            break;
        }
        if (d.type == UV_DIRENT_DIR)
            e[i].type = FSIO_DIR;
        else if (d.type == UV_DIRENT_FILE)
            e[i].type = FSIO_FILE;
        else if (d.type == UV_DIRENT_LINK || d.type == UV_DIRENT_UNKNOWN)
            e[i].type = untyped_entry(path, d.name, d.type == UV_DIRENT_UNKNOWN);
        i++;
    }
    uv_fs_req_cleanup(&req);
    if (rc < 0) {
        fsio_entries_free(e, i);
        return rc;
    }
    qsort(e, i, sizeof(*e), cmp_entry);
    *out = e;
    *count = i;
    return 0;
}
#endif

static void from_statbuf(const uv_stat_t *s, struct fsio_stat *st)
{
    st->type = (s->st_mode & S_IFMT) == S_IFDIR   ? FSIO_DIR
               : (s->st_mode & S_IFMT) == S_IFREG ? FSIO_FILE
                                                  : FSIO_OTHER;
    st->size = s->st_size;
    st->mtime_sec = s->st_mtim.tv_sec;
    st->mtime_nsec = (int32_t)s->st_mtim.tv_nsec;
    st->dev = s->st_dev;
    st->ino = s->st_ino;
}

static int stat_common(const char *path, struct fsio_stat *st, bool follow)
{
    uv_fs_t req;
    int rc = follow ? uv_fs_stat(NULL, &req, path, NULL) : uv_fs_lstat(NULL, &req, path, NULL);
    if (rc < 0) {
        uv_fs_req_cleanup(&req);
        return from_uv(rc);
    }
    from_statbuf(&req.statbuf, st);
    uv_fs_req_cleanup(&req);
    return 0;
}

int fsio_stat(const char *path, struct fsio_stat *st)
{
    return stat_common(path, st, true);
}

int fsio_lstat(const char *path, struct fsio_stat *st)
{
    return stat_common(path, st, false);
}

struct fsio_dir {
    char *path;
    int fd; /* -1: by path */
};

int fsio_dir_open(const char *path, struct fsio_dir **out)
{
    struct fsio_dir *d = malloc(sizeof(*d));
    if (!d || !(d->path = strdup(path))) {
        free(d);
        *out = NULL;
        return -EM_ENOMEM;
    }
#ifdef _WIN32
    d->fd = -1;
#else
    d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#endif
    *out = d;
    return 0;
}

int fsio_dir_stat(const struct fsio_dir *d, const char *name, struct fsio_stat *st)
{
#ifndef _WIN32
    if (d->fd >= 0) {
        struct stat sb;
        if (fstatat(d->fd, name, &sb, 0) < 0)
            return fsio_error(-errno);
        st->type = S_ISDIR(sb.st_mode) ? FSIO_DIR : S_ISREG(sb.st_mode) ? FSIO_FILE : FSIO_OTHER;
        st->size = (uint64_t)sb.st_size;
        st->mtime_sec = (int64_t)sb.st_mtim.tv_sec;
        st->mtime_nsec = (int32_t)sb.st_mtim.tv_nsec;
        st->dev = (uint64_t)sb.st_dev;
        st->ino = (uint64_t)sb.st_ino;
        return 0;
    }
#endif
    char *full = fsio_join(d->path, name);
    int rc = full ? fsio_stat(full, st) : -EM_ENOMEM;
    free(full);
    return rc;
}

void fsio_dir_close(struct fsio_dir *d)
{
    if (!d)
        return;
#ifndef _WIN32
    if (d->fd >= 0)
        close(d->fd);
#endif
    free(d->path);
    free(d);
}

bool fsio_dir_seen_above(uint64_t *dev, uint64_t *ino, unsigned depth, const struct fsio_stat *st)
{
    for (unsigned i = 0; i < depth; i++)
        if (dev[i] == st->dev && ino[i] == st->ino)
            return true;
    dev[depth] = st->dev;
    ino[depth] = st->ino;
    return false;
}

void fsio_slashes(char *path)
{
#ifdef _WIN32
    for (; *path; path++)
        if (*path == '\\')
            *path = '/';
#else
    (void)path;
#endif
}

bool fsio_is_absolute(const char *path)
{
#ifdef _WIN32
    /* C:/x, C:\x, //server/share, \\server\share */
    if (((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z')) &&
        path[1] == ':' && (path[2] == '/' || path[2] == '\\'))
        return true;
    return (path[0] == '/' || path[0] == '\\') && (path[1] == '/' || path[1] == '\\');
#else
    return path[0] == '/';
#endif
}

char *fsio_realpath(const char *path)
{
    uv_fs_t req;
    char *real = uv_fs_realpath(NULL, &req, path, NULL) == 0 ? strdup(req.ptr) : NULL;
    uv_fs_req_cleanup(&req);
    if (real) {
        fsio_slashes(real);
        size_t len = strlen(real);
        while (len > 1 && real[len - 1] == '/' && !(len == 3 && real[1] == ':'))
            real[--len] = '\0';
    }
    return real;
}

/* The length of `dir` without its trailing separators (a root's kept). */
static size_t dir_part(const char *dir)
{
    size_t a = strlen(dir);
    while (a > 1 && (dir[a - 1] == '/' || dir[a - 1] == '\\'))
        a--;
    return a;
}

bool fsio_join_into(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t a = dir_part(dir), b = strlen(name);
    if (a + 1 + b + 1 > cap)
        return false;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    fsio_slashes(buf); /* Windows: one separator in every path made here, and in messages */
    return true;
}

char *fsio_join(const char *dir, const char *name)
{
    size_t n = dir_part(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p)
        fsio_join_into(p, n, dir, name); /* fits: n is its length */
    return p;
}

int fsio_write_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        uv_fs_t req;
        uv_buf_t b = uv_buf_init(p, (unsigned)(n > (1u << 30) ? 1u << 30 : n));
        int r = uv_fs_write(NULL, &req, fd, &b, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (r < 0)
            return fsio_error(r);
        if (r == 0)
            return -EM_EIO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int fsio_sync_path(const char *path)
{
    uv_fs_t req;
    uv_file fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDWR, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0)
        return from_uv(fd);
    int rc = uv_fs_fsync(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return rc < 0 ? from_uv(rc) : 0;
}

uint64_t fsio_read_number(const char *path)
{
    struct fsio_buf b = {0};
    uint64_t v = 0;
    if (fsio_read(path, 64, &b, NULL) == 0 && b.len > 0 && b.len < 40) {
        char text[48];
        memcpy(text, b.data, b.len);
        text[b.len] = '\0';
        char *end;
        v = strtoull(text, &end, 10);
        if (end == text || (*end != '\n' && *end != '\0'))
            v = 0;
    }
    fsio_buf_free(&b);
    return v;
}

int fsio_rename(const char *from, const char *to)
{
    uv_fs_t req;
    int rc = uv_fs_rename(NULL, &req, from, to, NULL);
    uv_fs_req_cleanup(&req);
    return rc < 0 ? from_uv(rc) : 0;
}
