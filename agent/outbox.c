#include "outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dynbuf.h"
#include "em_error.h"
#include "fsio.h"
#include "log.h"

#define READ_CHUNK (256u << 10)
#define NAME_DIGITS 20

/* ---- shared helpers ---- */

static bool segment_name(const char *name, uint64_t *first)
{
    size_t n = strlen(name);
    if (n != NAME_DIGITS + 6 || strcmp(name + NAME_DIGITS, ".jsonl") != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *first = v;
    return true;
}

static char *segment_path(const char *dir, uint64_t first)
{
    char name[NAME_DIGITS + 8];
    snprintf(name, sizeof(name), "%020" PRIu64 ".jsonl", first);
    return fsio_join(dir, name);
}

/* Segment names in `dir`, ascending. */
static int list_segments(const char *dir, uint64_t **out, size_t *count)
{
    struct fsio_entry *e;
    size_t n;
    *out = NULL;
    *count = 0;
    int rc = fsio_list(dir, &e, &n);
    if (rc < 0)
        return rc;
    uint64_t *v = n ? malloc(n * sizeof(*v)) : NULL;
    if (n && !v) {
        fsio_entries_free(e, n);
        return -EM_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) /* fsio_list sorts by name: 20 digits sort as numbers */
        if (e[i].type == FSIO_FILE && segment_name(e[i].name, &v[k]))
            k++;
    fsio_entries_free(e, n);
    *out = v;
    *count = k;
    return 0;
}

uint64_t outbox_line_seq(const char *line, size_t len)
{
    size_t lim = len < 64 ? len : 64;
    for (size_t i = 0; i + 5 < lim; i++) {
        if (memcmp(line + i, "\"seq\"", 5) != 0)
            continue;
        size_t k = i + 5;
        while (k < len && line[k] == ' ')
            k++;
        if (k >= len || line[k++] != ':')
            return 0;
        while (k < len && line[k] == ' ')
            k++;
        uint64_t v = 0;
        size_t digits = 0;
        while (k < len && line[k] >= '0' && line[k] <= '9' && digits < 19) {
            v = v * 10 + (uint64_t)(line[k++] - '0');
            digits++;
        }
        return digits && k < len && (line[k] == ',' || line[k] == '}' || line[k] == ' ') ? v : 0;
    }
    return 0;
}

static uint64_t read_confirmed(const char *dir)
{
    char *path = fsio_join(dir, "confirmed");
    struct fsio_buf b = {0};
    uint64_t v = 0;
    if (path && fsio_read(path, 64, &b, NULL) == 0 && b.len > 0) {
        char text[64];
        size_t n = b.len < sizeof(text) - 1 ? b.len : sizeof(text) - 1;
        memcpy(text, b.data, n);
        text[n] = '\0';
        char *end;
        errno = 0;
        unsigned long long x = strtoull(text, &end, 10);
        if (end != text && errno == 0 && (*end == '\n' || *end == '\0'))
            v = x;
    }
    fsio_buf_free(&b);
    free(path);
    return v;
}

static int mkdir_p(const char *dir)
{
    uv_fs_t req;
    int r = uv_fs_mkdir(NULL, &req, dir, 0700, NULL);
    uv_fs_req_cleanup(&req);
    return r == 0 || r == UV_EEXIST ? 0 : -EM_EIO;
}

static void close_file(int fd)
{
    uv_fs_t req;
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
}

/* ---- writer ---- */

/* Cuts a torn last line of the segment at `path` and returns the seq of its last whole
 * line in *seq (0 when it has none). */
static int segment_tail(const char *path, uint64_t *seq)
{
    *seq = 0;
    struct fsio_stat st;
    if (fsio_stat(path, &st) < 0)
        return -EM_EIO;
    uint64_t size = st.size, end = size;
    struct fsio_buf b = {0};
    /* Walk back in chunks to the last newline, then read the line before it. */
    uint64_t keep = 0;
    bool found = false;
    while (end > 0 && !found) {
        uint64_t start = end > 65536 ? end - 65536 : 0;
        if (fsio_read_at(path, start, (size_t)(end - start), &b) < 0) {
            fsio_buf_free(&b);
            return -EM_EIO;
        }
        for (size_t i = b.len; i > 0; i--)
            if (b.data[i - 1] == '\n') {
                keep = start + i;
                found = true;
                break;
            }
        end = start;
    }
    if (keep < size) {
        em_log(EM_LOG_WARN, "%s: cutting a torn last event line (%" PRIu64 " bytes)", path,
               size - keep);
        uv_fs_t req;
        int fd = uv_fs_open(NULL, &req, path, UV_FS_O_WRONLY, 0, NULL);
        uv_fs_req_cleanup(&req);
        int r = fd >= 0 ? uv_fs_ftruncate(NULL, &req, fd, (int64_t)keep, NULL) : fd;
        if (fd >= 0) {
            uv_fs_req_cleanup(&req);
            close_file(fd);
        }
        if (r < 0) {
            fsio_buf_free(&b);
            return -EM_EIO;
        }
    }
    if (keep > 0) {
        uint64_t start = keep > 65536 ? keep - 65536 : 0;
        if (fsio_read_at(path, start, (size_t)(keep - start), &b) == 0 && b.len > 0) {
            size_t e = b.len - 1, s = e;
            while (s > 0 && b.data[s - 1] != '\n')
                s--;
            *seq = outbox_line_seq(b.data + s, e - s);
        }
    }
    fsio_buf_free(&b);
    return 0;
}

int outbox_open(struct outbox_writer *o, const char *state_dir, bool fsync, char *reason,
                size_t cap)
{
    memset(o, 0, sizeof(*o));
    o->fd = -1;
    o->fsync = fsync;
    o->dir = fsio_join(state_dir, "outbox");
    if (!o->dir)
        return -EM_ENOMEM;
    if (mkdir_p(o->dir) < 0) {
        snprintf(reason, cap, "%s: cannot create the outbox directory", o->dir);
        return -EM_EIO;
    }
    uint64_t *segs;
    size_t n;
    int rc = list_segments(o->dir, &segs, &n);
    if (rc < 0) {
        snprintf(reason, cap, "%s: cannot list the outbox", o->dir);
        return rc;
    }
    o->confirmed = read_confirmed(o->dir);
    /* The newest segment with a line tells the last seq; only the newest can be torn. */
    for (size_t i = n; i > 0 && rc == 0 && o->last_seq == 0; i--) {
        char *path = segment_path(o->dir, segs[i - 1]);
        rc = path ? segment_tail(path, &o->last_seq) : -EM_ENOMEM;
        if (rc < 0)
            snprintf(reason, cap, "%s: cannot read the outbox segment", path ? path : o->dir);
        free(path);
    }
    /* Everything confirmed: the old segments are done with (no reader runs yet). */
    if (rc == 0 && n > 0 && o->last_seq > 0 && o->confirmed >= o->last_seq) {
        for (size_t i = 0; i < n; i++) {
            char *path = segment_path(o->dir, segs[i]);
            uv_fs_t req;
            if (path && uv_fs_unlink(NULL, &req, path, NULL) >= 0)
                em_log(EM_LOG_DEBUG, "%s: confirmed segment removed", path);
            if (path)
                uv_fs_req_cleanup(&req);
            free(path);
        }
    }
    free(segs);
    o->in_segments = o->last_seq;
    o->nsegments = n;
    if (o->confirmed > o->last_seq)
        o->last_seq = o->confirmed;
    return rc;
}

int outbox_forget_confirmed(struct outbox_writer *o)
{
    char *path = fsio_join(o->dir, "confirmed");
    if (!path)
        return -EM_ENOMEM;
    uv_fs_t req;
    int r = uv_fs_unlink(NULL, &req, path, NULL);
    uv_fs_req_cleanup(&req);
    free(path);
    if (r < 0 && r != UV_ENOENT)
        return fsio_error(r);
    o->confirmed = 0;
    o->last_seq = o->in_segments;
    return 0;
}

int outbox_write(struct outbox_writer *o, char *buf, size_t len, uint64_t first_seq,
                 uint64_t last_seq)
{
    if (len == 0)
        return 0;
    if (o->fd < 0 || o->seg_bytes >= OUTBOX_SEGMENT_MAX) {
        char *path = segment_path(o->dir, first_seq);
        if (!path)
            return -EM_ENOMEM;
        uv_fs_t req;
        int fd = uv_fs_open(NULL, &req, path, UV_FS_O_WRONLY | UV_FS_O_APPEND | UV_FS_O_CREAT, 0600,
                            NULL);
        uv_fs_req_cleanup(&req);
        if (fd < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot create the outbox segment: %s", path, uv_strerror(fd));
            free(path);
            return -EM_EIO;
        }
        struct fsio_stat st;
        o->seg_bytes = fsio_stat(path, &st) == 0 ? st.size : 0;
        free(path);
        if (o->fd >= 0)
            close_file(o->fd);
        o->fd = fd;
    }
    int rc = fsio_write_all(o->fd, (char *)buf, len);
    if (rc == 0 && o->fsync) {
        uv_fs_t req;
        if (uv_fs_fdatasync(NULL, &req, o->fd, NULL) < 0)
            rc = -EM_EIO;
        uv_fs_req_cleanup(&req);
    }
    if (rc < 0)
        return rc;
    o->seg_bytes += len;
    o->last_seq = last_seq;
    return 0;
}

void outbox_close(struct outbox_writer *o)
{
    if (o->fd >= 0) {
        uv_fs_t req;
        uv_fs_fdatasync(NULL, &req, o->fd, NULL);
        uv_fs_req_cleanup(&req);
        close_file(o->fd);
    }
    free(o->dir);
    memset(o, 0, sizeof(*o));
    o->fd = -1;
}

/* ---- reader ---- */

int outbox_reader_open(struct outbox_reader *r, const char *state_dir)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    dynbuf_init(&r->buf, OUTBOX_LINE_MAX + READ_CHUNK);
    r->dir = fsio_join(state_dir, "outbox");
    if (!r->dir)
        return -EM_ENOMEM;
    if (mkdir_p(r->dir) < 0)
        return -EM_EIO;
    r->confirmed = r->saved = read_confirmed(r->dir);
    r->last = r->confirmed;
    return 0;
}

static void reader_close_segment(struct outbox_reader *r)
{
    if (r->fd >= 0)
        close_file(r->fd);
    r->fd = -1;
    dynbuf_reset(&r->buf);
    r->pos = 0;
    r->skipping = false;
}

void outbox_reader_rewind(struct outbox_reader *r)
{
    reader_close_segment(r);
    r->have_cur = false;
    r->last = r->confirmed;
    r->seg_last = 0;
    r->ndone = 0; /* segments not deleted hold unconfirmed events: they are read again */
}

static void delete_done(struct outbox_reader *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->ndone; i++) {
        if (r->done[i].last > r->confirmed) {
            r->done[k++] = r->done[i];
            continue;
        }
        char *path = segment_path(r->dir, r->done[i].first);
        uv_fs_t req;
        int rc = path ? uv_fs_unlink(NULL, &req, path, NULL) : UV_ENOMEM;
        if (path)
            uv_fs_req_cleanup(&req);
        if (rc < 0 && rc != UV_ENOENT)
            em_log(EM_LOG_WARN, "%s: cannot delete a confirmed outbox segment: %s",
                   path ? path : r->dir, uv_strerror(rc));
        free(path);
    }
    r->ndone = k;
}

/* The first segment after the current one (or the first of all), in *next. */
static int next_segment(struct outbox_reader *r, uint64_t *next)
{
    uint64_t *segs;
    size_t n;
    int rc = list_segments(r->dir, &segs, &n);
    if (rc < 0)
        return rc;
    rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!r->have_cur || segs[i] > r->cur) {
            *next = segs[i];
            rc = 1;
            break;
        }
    free(segs);
    return rc;
}

/* Opens the next segment. Returns 1, 0 when there is none, or a negative EM_E* code. */
static int reader_open_next(struct outbox_reader *r)
{
    for (;;) {
        uint64_t next;
        int rc = next_segment(r, &next);
        if (rc <= 0)
            return rc;
        char *path = segment_path(r->dir, next);
        if (!path)
            return -EM_ENOMEM;
        uv_fs_t req;
        int fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
        uv_fs_req_cleanup(&req);
        r->cur = next;
        r->have_cur = true;
        r->seg_last = 0;
        if (fd == UV_ENOENT) { /* deleted between the listing and the open */
            free(path);
            continue;
        }
        if (fd < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot open: %s", path, uv_strerror(fd));
            free(path);
            return -EM_EIO;
        }
        free(path);
        r->fd = fd;
        return 1;
    }
}

/* At the end of the current segment: moves on only when the writer has started a later
 * one (it never appends to an older one). Returns 1 when it moved, 0 or an error. */
static int reader_advance(struct outbox_reader *r)
{
    uint64_t next;
    int rc = next_segment(r, &next);
    if (rc <= 0)
        return rc;
    if (r->pos < r->buf.len) {
        em_log(EM_LOG_WARN, "%s: segment %020" PRIu64 " ends in a torn line; skipped", r->dir,
               r->cur);
        r->skipped++;
    }
    struct outbox_done *d = em_grow(r->done, r->ndone, &r->done_cap, sizeof(*d), 16);
    if (!d)
        return -EM_ENOMEM;
    r->done = d;
    r->done[r->ndone++] = (struct outbox_done){r->cur, r->seg_last};
    reader_close_segment(r);
    delete_done(r);
    return reader_open_next(r);
}

/* Reads up to a chunk of the open segment. Returns 1 when something came, 0 at its end. */
static int reader_read(struct outbox_reader *r)
{
    char chunk[16384];
    size_t got = 0;
    while (got < READ_CHUNK) {
        uv_fs_t req;
        uv_buf_t b = uv_buf_init(chunk, sizeof(chunk));
        int n = uv_fs_read(NULL, &req, r->fd, &b, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0)
            return -EM_EIO;
        if (n == 0)
            break;
        int rc = dynbuf_add(&r->buf, chunk, (size_t)n);
        if (rc < 0)
            return rc;
        got += (size_t)n;
    }
    return got > 0 ? 1 : 0;
}

/* Reads more of the outbox into the buffer. Returns 1 when something came. */
static int reader_fill(struct outbox_reader *r)
{
    if (r->fd < 0) {
        int rc = reader_open_next(r);
        if (rc <= 0)
            return rc;
    }
    if (r->pos > 0) { /* keep the unread part at the front */
        size_t rest = r->buf.len - r->pos;
        memmove(r->buf.p, r->buf.p + r->pos, rest);
        r->buf.len = rest;
        r->buf.p[rest] = '\0';
        r->pos = 0;
    }
    int rc = reader_read(r);
    if (rc != 0)
        return rc;
    /* At the end: a later segment means the writer is done with this one, but it may
     * have appended after our read and before starting the next, so read once more. */
    uint64_t next;
    rc = next_segment(r, &next);
    if (rc <= 0)
        return rc;
    rc = reader_read(r);
    if (rc != 0)
        return rc;
    return reader_advance(r);
}

int outbox_reader_next(struct outbox_reader *r, char **line, size_t *len, uint64_t *seq)
{
    for (;;) {
        char *start = r->buf.p ? r->buf.p + r->pos : NULL;
        char *nl = start ? memchr(start, '\n', r->buf.len - r->pos) : NULL;
        if (!nl) {
            if (r->buf.len - r->pos > OUTBOX_LINE_MAX) {
                /* No broker or consumer takes it: skipping it (loudly) beats blocking
                 * every event behind it at every start. */
                if (!r->skipping) {
                    em_log(EM_LOG_ERROR,
                           "%s: an event line longer than %u bytes (no consumer takes it): "
                           "skipped",
                           r->dir, OUTBOX_LINE_MAX);
                    r->skipped++;
                }
                r->skipping = true;
                dynbuf_reset(&r->buf);
                r->pos = 0;
            }
            int rc = reader_fill(r);
            if (rc <= 0)
                return rc;
            continue;
        }
        size_t n = (size_t)(nl - start);
        r->pos += n + 1;
        if (r->skipping) { /* the end of the over-long line */
            r->skipping = false;
            continue;
        }
        uint64_t s = outbox_line_seq(start, n);
        if (s == 0) {
            if (n > 0) {
                em_log(EM_LOG_WARN, "%s: an outbox line without a seq; skipped", r->dir);
                r->skipped++;
            }
            continue;
        }
        r->seg_last = s;
        if (s <= r->last)
            continue; /* confirmed already, or a repeat */
        r->last = s;
        *nl = '\0';
        *line = start;
        *len = n;
        *seq = s;
        return 1;
    }
}

void outbox_reader_confirm(struct outbox_reader *r, uint64_t seq)
{
    if (seq <= r->confirmed)
        return;
    r->confirmed = seq;
    delete_done(r);
}

int outbox_reader_save(struct outbox_reader *r)
{
    if (r->saved == r->confirmed)
        return 0;
    char *path = fsio_join(r->dir, "confirmed");
    char *tmp = fsio_join(r->dir, "confirmed.tmp");
    int rc = -EM_ENOMEM;
    if (path && tmp) {
        char text[32];
        int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", r->confirmed);
        uv_fs_t req;
        int fd =
            uv_fs_open(NULL, &req, tmp, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, 0600, NULL);
        uv_fs_req_cleanup(&req);
        rc = fd >= 0 ? fsio_write_all(fd, text, (size_t)n) : -EM_EIO;
        if (fd >= 0)
            close_file(fd);
        if (rc == 0) {
            if (uv_fs_rename(NULL, &req, tmp, path, NULL) < 0)
                rc = -EM_EIO;
            uv_fs_req_cleanup(&req);
        }
    }
    if (rc == 0)
        r->saved = r->confirmed;
    free(path);
    free(tmp);
    return rc;
}

void outbox_reader_close(struct outbox_reader *r)
{
    reader_close_segment(r);
    dynbuf_free(&r->buf);
    free(r->done);
    free(r->dir);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

int outbox_count_waiting(const char *state_dir, uint64_t *n, uint64_t *first, uint64_t *last)
{
    *n = *first = *last = 0;
    struct outbox_reader r;
    int rc = outbox_reader_open(&r, state_dir);
    if (rc < 0)
        return rc;
    char *line;
    size_t len;
    uint64_t seq;
    while ((rc = outbox_reader_next(&r, &line, &len, &seq)) == 1) {
        if (!*first)
            *first = seq;
        *last = seq;
        (*n)++;
    }
    outbox_reader_close(&r);
    return rc < 0 ? rc : 0;
}
