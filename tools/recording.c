/* The recording archive: a writer that streams segments into a plain tar, a packer that
 * recompresses, and a reader that streams operations back out (recording.h). */
#include "recording.h"
#include "cli_common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>

#include "dynbuf.h"
#include "em_error.h"

static const char *const op_names[] = {"mkdir",   "create",   "append",      "write",
                                       "rewrite", "truncate", "placeholder", "rename",
                                       "delete",  "end",      "unknown"};

const char *rec_op_name(enum rec_op_type t)
{
    return t <= REC_UNKNOWN ? op_names[t] : "unknown";
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libarchive's message for the last error, lower case like every message here. */
static const char *arc_msg(struct archive *a)
{
    return cli_lower(archive_error_string(a));
}

/* Length of the UTF-8 sequence starting at p (1..4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n;
    uint32_t c;
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        c = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        c = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        c = p[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

const char *rec_path_check(const char *path)
{
    if (!path || !*path)
        return "empty path";
    size_t len = strlen(path);
    if (len > REC_MAX_PATH)
        return "path too long";
    if (path[0] == '/')
        return "absolute path";
    unsigned depth = 0;
    const char *comp = path;
    for (const unsigned char *p = (const unsigned char *)path;;) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)((const char *)p - comp);
            if (n == 0)
                return "empty path component";
            if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return "'.' or '..' in path";
            if (++depth > REC_MAX_DEPTH)
                return "path too deep";
            if (*p == '\0')
                break;
            comp = (const char *)p + 1;
            p++;
            continue;
        }
        if (*p < 0x20 || *p == 0x7f)
            return "control character in path";
        if (*p == '\\' || *p == ':')
            return "'\\' or ':' in path";
        size_t n = utf8_len(p);
        if (!n)
            return "path is not UTF-8";
        p += n;
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int rec_compression_for(const char *path, enum rec_compression *c)
{
    if (ends_with(path, ".tar"))
        *c = REC_PLAIN;
    else if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz"))
        *c = REC_GZIP;
    else if (ends_with(path, ".tar.zst") || ends_with(path, ".tzst"))
        *c = REC_ZSTD;
    else
        return -1;
    return 0;
}

/* A JSON string; the text is valid UTF-8 (rec_path_check) or plain ASCII. */
static int buf_json_str(struct dynbuf *b, const char *s)
{
    int rc = dynbuf_add(b, "\"", 1);
    for (const char *p = s; rc == 0 && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = dynbuf_add(b, esc, 2);
        } else if (c < 0x20) {
            rc = dynbuf_printf(b, "\\u%04x", c);
        } else {
            rc = dynbuf_add(b, p, 1);
        }
    }
    return rc ? rc : dynbuf_add(b, "\"", 1);
}

/* ---- writer ---- */

struct pending_data {
    uint64_t n;
    unsigned char *data;
    size_t len;
};

struct rec_writer {
    struct archive *a;
    int fd;
    bool durable;
    struct dynbuf lines;
    struct pending_data *data;
    size_t ndata, data_cap;
    size_t data_bytes;
    struct rec_totals totals;
};

static int write_entry(struct rec_writer *w, const char *name, const void *p, size_t len)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return -EM_ENOMEM;
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    /* No times or owners: the same operations give the same archive. */
    int rc = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return -EM_EIO;
    const char *c = p;
    while (len) {
        la_ssize_t k = archive_write_data(w->a, c, len);
        if (k <= 0)
            return -EM_EIO;
        c += k;
        len -= (size_t)k;
    }
    return archive_write_finish_entry(w->a) == ARCHIVE_OK ? 0 : -EM_EIO;
}

int rec_writer_open(const char *path, const struct rec_header *h, bool durable,
                    struct rec_writer **out, char *err, size_t errlen)
{
    struct rec_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -EM_ENOMEM;
    dynbuf_init(&w->lines, REC_MAX_SEGMENT);
    w->durable = durable;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        fail(err, errlen, "%s: %s", path, cli_strerror(errno));
        free(w);
        return errno == ENOENT ? -EM_ENOENT : -EM_EIO;
    }
    w->a = archive_write_new();
    if (!w->a || archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_add_filter_none(w->a) != ARCHIVE_OK ||
        /* No blocking: every entry reaches the file as soon as it is written. */
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK) {
        fail(err, errlen, "%s: %s", path, w->a ? arc_msg(w->a) : "out of memory");
        if (w->a)
            archive_write_free(w->a);
        close(w->fd);
        free(w);
        return -EM_EIO;
    }
    struct dynbuf *b = &w->lines;
    int rc =
        dynbuf_printf(b, "{\"format\":\"%s\",\"version\":%d,\"tool\":", REC_FORMAT, REC_VERSION);
    rc = rc ? rc : buf_json_str(b, h->tool ? h->tool : "");
    rc = rc ? rc : dynbuf_add(b, ",\"mode\":", 8);
    rc = rc ? rc : buf_json_str(b, h->mode ? h->mode : "");
    rc = rc ? rc : dynbuf_add(b, ",\"source\":", 10);
    rc = rc ? rc : buf_json_str(b, h->source ? h->source : "");
    rc = rc ? rc : dynbuf_add(b, ",\"placeholders\":", 16);
    rc = rc ? rc : buf_json_str(b, h->placeholders ? h->placeholders : "");
#ifdef _WIN32
    rc = rc ? rc : dynbuf_add(b, ",\"platform\":\"windows\"}\n", 23);
#else
    rc = rc ? rc : dynbuf_add(b, ",\"platform\":\"posix\"}\n", 21);
#endif
    if (rc) {
        archive_write_free(w->a);
        close(w->fd);
        dynbuf_free(&w->lines);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

size_t rec_writer_pending(const struct rec_writer *w)
{
    return w->lines.len + w->data_bytes;
}

int rec_writer_add(struct rec_writer *w, struct rec_op *op)
{
    if (op->type != REC_END &&
        (rec_path_check(op->path) || (op->type == REC_RENAME && rec_path_check(op->to))))
        return -EM_EINVAL;
    op->n = w->totals.ops + 1;
    size_t mark = w->lines.len;
    struct dynbuf *b = &w->lines;
    int rc = dynbuf_printf(b, "{\"n\":%" PRIu64 ",\"t\":%.6f,\"op\":\"%s\"", op->n,
                           op->t < 0 ? 0.0 : op->t, rec_op_name(op->type));
    if (op->type != REC_END) {
        rc = rc ? rc : dynbuf_add(b, ",\"path\":", 8);
        rc = rc ? rc : buf_json_str(b, op->path);
    }
    if (op->type == REC_RENAME) {
        rc = rc ? rc : dynbuf_add(b, ",\"to\":", 6);
        rc = rc ? rc : buf_json_str(b, op->to);
    }
    if ((op->type == REC_RENAME || op->type == REC_DELETE) && op->is_dir)
        rc = rc ? rc : dynbuf_add(b, ",\"dir\":true", 11);
    if (op->type == REC_APPEND || op->type == REC_WRITE)
        rc = rc ? rc : dynbuf_printf(b, ",\"offset\":%" PRIu64, op->offset);
    bool has_data = op->type == REC_CREATE || op->type == REC_APPEND || op->type == REC_WRITE ||
                    (op->type == REC_REWRITE && !op->same);
    if (has_data)
        rc = rc ? rc : dynbuf_printf(b, ",\"len\":%zu", op->len);
    if (op->type == REC_REWRITE && op->same)
        rc = rc ? rc : dynbuf_add(b, ",\"same\":true", 12);
    if (op->type >= REC_CREATE && op->type <= REC_PLACEHOLDER)
        rc = rc ? rc : dynbuf_printf(b, ",\"size\":%" PRIu64, op->size);
    if (op->sha256 && op->type >= REC_CREATE && op->type <= REC_TRUNCATE) {
        rc = rc ? rc : dynbuf_add(b, ",\"sha256\":", 10);
        rc = rc ? rc : buf_json_str(b, op->sha256);
    }
    if (op->mtime_ns > 0)
        rc = rc ? rc
                : dynbuf_printf(b, ",\"mtime\":[%" PRId64 ",%" PRId64 "]",
                                op->mtime_ns / 1000000000, op->mtime_ns % 1000000000);
    if (op->type == REC_END)
        rc = rc ? rc
                : dynbuf_printf(b, ",\"ops\":%" PRIu64 ",\"data\":%" PRIu64, w->totals.ops,
                                w->totals.data + w->data_bytes);
    rc = rc ? rc : dynbuf_add(b, "}\n", 2);
    if (rc == 0 && has_data && op->len) {
        if (w->ndata == w->data_cap) {
            size_t cap = w->data_cap ? w->data_cap * 2 : 64;
            struct pending_data *d = realloc(w->data, cap * sizeof(*d));
            if (!d)
                rc = -EM_ENOMEM;
            else {
                w->data = d;
                w->data_cap = cap;
            }
        }
        unsigned char *copy = rc ? NULL : malloc(op->len);
        if (!rc && !copy)
            rc = -EM_ENOMEM;
        if (!rc) {
            memcpy(copy, op->data, op->len);
            w->data[w->ndata++] = (struct pending_data){op->n, copy, op->len};
            w->data_bytes += op->len;
        }
    }
    if (rc) {
        w->lines.len = mark;
        return rc;
    }
    if (op->type != REC_END)
        w->totals.ops++;
    return 0;
}

int rec_writer_flush(struct rec_writer *w, char *err, size_t errlen)
{
    if (!w->lines.len)
        return 0;
    char name[64];
    snprintf(name, sizeof(name), "manifest/%08" PRIu64 ".jsonl", w->totals.segments + 1);
    int rc = write_entry(w, name, w->lines.p, w->lines.len);
    for (size_t i = 0; i < w->ndata; i++) {
        if (rc == 0) {
            snprintf(name, sizeof(name), "data/%" PRIu64, w->data[i].n);
            rc = write_entry(w, name, w->data[i].data, w->data[i].len);
        }
        free(w->data[i].data);
    }
    w->totals.data += w->data_bytes;
    w->ndata = 0;
    w->data_bytes = 0;
    w->lines.len = 0;
    w->totals.segments++;
    if (rc == 0 && w->durable && fdatasync(w->fd) < 0)
        rc = -EM_EIO;
    if (rc)
        fail(err, errlen, "writing the recording: %s",
             archive_error_string(w->a) ? arc_msg(w->a) : cli_strerror(errno));
    return rc;
}

void rec_writer_totals(const struct rec_writer *w, struct rec_totals *t)
{
    *t = w->totals;
    t->data += w->data_bytes;
}

int rec_writer_close(struct rec_writer *w, double end_time, char *err, size_t errlen)
{
    int rc = 0;
    if (end_time >= 0) {
        struct rec_op end = {.type = REC_END, .t = end_time};
        rc = rec_writer_add(w, &end);
    }
    int rc2 = rec_writer_flush(w, err, errlen);
    rc = rc ? rc : rc2;
    if (archive_write_close(w->a) != ARCHIVE_OK && !rc) {
        fail(err, errlen, "closing the recording: %s", arc_msg(w->a));
        rc = -EM_EIO;
    }
    archive_write_free(w->a);
    if (rc == 0 && w->durable && fsync(w->fd) < 0)
        rc = -EM_EIO;
    if (close(w->fd) < 0 && !rc)
        rc = -EM_EIO;
    for (size_t i = 0; i < w->ndata; i++)
        free(w->data[i].data);
    free(w->data);
    dynbuf_free(&w->lines);
    free(w);
    return rc;
}

/* ---- packing ---- */

int rec_pack(const char *in, const char *out, enum rec_compression c, char *err, size_t errlen)
{
    size_t tmplen = strlen(out) + 5;
    char *tmp = malloc(tmplen);
    if (!tmp)
        return -EM_ENOMEM;
    snprintf(tmp, tmplen, "%s.tmp", out);
    struct archive *r = archive_read_new();
    struct archive *w = archive_write_new();
    int rc = -EM_EIO;
    if (!r || !w)
        goto out;
    archive_read_support_filter_all(r);
    archive_read_support_format_tar(r);
    if (archive_read_open_filename(r, in, 1 << 16) != ARCHIVE_OK) {
        fail(err, errlen, "%s: %s", in, arc_msg(r));
        goto out;
    }
    archive_write_set_format_pax_restricted(w);
    int frc = c == REC_GZIP   ? archive_write_add_filter_gzip(w)
              : c == REC_ZSTD ? archive_write_add_filter_zstd(w)
                              : archive_write_add_filter_none(w);
    if (frc != ARCHIVE_OK || archive_write_open_filename(w, tmp) != ARCHIVE_OK) {
        fail(err, errlen, "%s: %s", tmp, arc_msg(w));
        goto out;
    }
    struct archive_entry *e;
    unsigned char *body = NULL;
    size_t cap = 0;
    int hr;
    while ((hr = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
        la_int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || size < 0 || (uint64_t)size > REC_MAX_DATA)
            continue;
        /* Whole entries only: a torn last entry (the recorder was killed) is left out
         * rather than padded. */
        if ((size_t)size > cap) {
            unsigned char *q = realloc(body, (size_t)size);
            if (!q) {
                free(body);
                goto out;
            }
            body = q;
            cap = (size_t)size;
        }
        size_t got = 0;
        la_ssize_t k = 1;
        while (got < (size_t)size && (k = archive_read_data(r, body + got, (size_t)size - got)) > 0)
            got += (size_t)k;
        if (got < (size_t)size)
            break;
        if (archive_write_header(w, e) != ARCHIVE_OK ||
            archive_write_data(w, body, got) != (la_ssize_t)got) {
            fail(err, errlen, "%s: %s", tmp, arc_msg(w));
            free(body);
            goto out;
        }
    }
    free(body);
    if (archive_write_close(w) != ARCHIVE_OK) {
        fail(err, errlen, "%s: %s", tmp, arc_msg(w));
        goto out;
    }
    if (rename(tmp, out) < 0) {
        fail(err, errlen, "%s: %s", out, cli_strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (r)
        archive_read_free(r);
    if (w)
        archive_write_free(w);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- reader ---- */

struct rec_reader {
    struct archive *a;
    uint64_t file_size;
    cJSON *header;
    unsigned char *seg; /* the current manifest segment */
    size_t seg_len, seg_cap;
    size_t pos;  /* next line in seg */
    cJSON *line; /* the current operation */
    unsigned char *data;
    size_t data_cap;
    uint64_t next_n;
    bool complete, at_end;
    char error[512];
    bool warned_unknown;
    bool skip_data;
};

static int reader_error(struct rec_reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reader_error(struct rec_reader *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    return code;
}

/* Reads the body of the current entry into `b` (at most `max` bytes). */
static int read_body(struct rec_reader *r, struct archive_entry *e, unsigned char **p, size_t *cap,
                     size_t *len, uint64_t max)
{
    la_int64_t size = archive_entry_size(e);
    if (size < 0 || (uint64_t)size > max)
        return reader_error(r, -EM_EHOSTILE, "%s: entry of %lld bytes is over the limit",
                            archive_entry_pathname(e), (long long)size);
    if ((size_t)size + 1 > *cap) {
        unsigned char *q = realloc(*p, (size_t)size + 1);
        if (!q)
            return reader_error(r, -EM_ENOMEM, "out of memory");
        *p = q;
        *cap = (size_t)size + 1;
    }
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t k = archive_read_data(r->a, *p + got, (size_t)size - got);
        if (k <= 0)
            return reader_error(r, -EM_ETRUNCATED, "%s: %s", archive_entry_pathname(e),
                                k < 0 ? arc_msg(r->a) : "ends early");
        got += (size_t)k;
    }
    (*p)[got] = '\0';
    *len = got;
    return 0;
}

/* Moves to the next archive entry; 1 with *e set, 0 at the end of the archive, or < 0
 * when it is torn (error set). Refuses anything but regular files. */
static int next_entry(struct rec_reader *r, struct archive_entry **e)
{
    int rc = archive_read_next_header(r->a, e);
    if (rc == ARCHIVE_EOF)
        return 0;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
        return reader_error(r, -EM_ETRUNCATED, "%s", arc_msg(r->a));
    if (archive_entry_filetype(*e) != AE_IFREG)
        return reader_error(r, -EM_EHOSTILE,
                            "%s: not a regular file (links and devices are "
                            "refused)",
                            archive_entry_pathname(*e));
    return 1;
}

/* Loads the next manifest segment. 1 loaded, 0 archive end, < 0 error. */
static int load_segment(struct rec_reader *r)
{
    struct archive_entry *e;
    int rc = next_entry(r, &e);
    if (rc <= 0)
        return rc;
    const char *name = archive_entry_pathname(e);
    if (!name || strncmp(name, "manifest/", 9) != 0)
        return reader_error(r, -EM_EMALFORMED, "%s: expected a manifest segment",
                            name ? name : "(no name)");
    r->seg_len = 0;
    r->pos = 0;
    rc = read_body(r, e, &r->seg, &r->seg_cap, &r->seg_len, REC_MAX_SEGMENT);
    return rc < 0 ? rc : 1;
}

/* The next line of the manifest as JSON (owned by r->line). 1, 0 at end, < 0 error. */
static int next_line(struct rec_reader *r)
{
    for (;;) {
        if (r->pos >= r->seg_len) {
            int rc = load_segment(r);
            if (rc <= 0)
                return rc;
            continue;
        }
        const char *start = (const char *)r->seg + r->pos;
        const char *nl = memchr(start, '\n', r->seg_len - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->seg_len - r->pos;
        r->pos += n + 1;
        if (n == 0)
            continue;
        cJSON_Delete(r->line);
        r->line = cJSON_ParseWithLength(start, n);
        if (!cJSON_IsObject(r->line))
            return reader_error(r, -EM_EMALFORMED, "manifest line is not a JSON object");
        return 1;
    }
}

int rec_reader_open(const char *path, struct rec_reader **out, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fail(err, errlen, "%s: %s", path, cli_strerror(errno));
        return errno == ENOENT ? -EM_ENOENT : -EM_EIO;
    }
    struct rec_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return -EM_ENOMEM;
    r->file_size = (uint64_t)st.st_size;
    r->next_n = 1;
    r->a = archive_read_new();
    int rc = -EM_EIO;
    if (!r->a)
        goto bad;
    archive_read_support_filter_all(r->a);
    archive_read_support_format_tar(r->a);
    if (archive_read_open_filename(r->a, path, 1 << 16) != ARCHIVE_OK) {
        fail(err, errlen, "%s: %s", path, arc_msg(r->a));
        goto bad;
    }
    rc = next_line(r);
    if (rc <= 0) {
        fail(err, errlen, "%s: not a recording (%s)", path, rc == 0 ? "no manifest" : r->error);
        rc = rc == 0 ? -EM_EMALFORMED : rc;
        goto bad;
    }
    r->header = r->line;
    r->line = NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->header, "format");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->header, "version");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, REC_FORMAT) != 0) {
        fail(err, errlen, "%s: not an %s archive", path, REC_FORMAT);
        rc = -EM_EMALFORMED;
        goto bad;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != REC_VERSION) {
        fail(err, errlen, "%s: recording format version %g; this fsrecorder reads version %d", path,
             cJSON_IsNumber(v) ? v->valuedouble : 0.0, REC_VERSION);
        rc = -EM_EMALFORMED;
        goto bad;
    }
    *out = r;
    return 0;
bad:
    rec_reader_close(r);
    return rc;
}

const char *rec_reader_header(const struct rec_reader *r, const char *field)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->header, field);
    return cJSON_IsString(f) ? f->valuestring : "";
}

int rec_reader_version(const struct rec_reader *r)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->header, "version");
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static bool get_u64(const cJSON *o, const char *name, uint64_t max, uint64_t *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(f) || f->valuedouble < 0 || f->valuedouble > (double)max ||
        f->valuedouble != (double)(uint64_t)f->valuedouble)
        return false;
    *out = (uint64_t)f->valuedouble;
    return true;
}

static const char *get_str(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static bool get_bool(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

int rec_reader_next(struct rec_reader *r, struct rec_op *op)
{
    if (r->at_end)
        return 0;
    int rc = next_line(r);
    if (rc < 0 && rc != -EM_ETRUNCATED)
        return rc;
    if (rc <= 0) {
        /* The archive stopped before an "end" operation: a killed recorder. */
        r->at_end = true;
        if (rc == 0)
            snprintf(r->error, sizeof(r->error),
                     "the recording has no end (the recorder "
                     "stopped abruptly)");
        return 0;
    }
    const cJSON *o = r->line;
    memset(op, 0, sizeof(*op));
    const char *name = get_str(o, "op");
    if (!get_u64(o, "n", UINT64_MAX >> 11, &op->n) || !name)
        return reader_error(r, -EM_EMALFORMED, "manifest line without \"n\" or \"op\"");
    if (op->n != r->next_n)
        return reader_error(r, -EM_EMALFORMED,
                            "operation %" PRIu64 " where %" PRIu64 " was expected", op->n,
                            r->next_n);
    r->next_n++;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t");
    op->t = cJSON_IsNumber(t) && t->valuedouble >= 0 ? t->valuedouble : 0;
    op->type = REC_UNKNOWN;
    for (int i = 0; i < REC_UNKNOWN; i++)
        if (strcmp(name, op_names[i]) == 0)
            op->type = (enum rec_op_type)i;
    if (op->type == REC_END) {
        r->complete = true;
        r->at_end = true;
        return 1;
    }
    op->path = get_str(o, "path");
    const char *why = rec_path_check(op->path);
    if (why)
        return reader_error(r, -EM_EHOSTILE, "operation %" PRIu64 ": %s: %s", op->n, why,
                            op->path ? op->path : "(none)");
    op->sha256 = get_str(o, "sha256");
    op->same = get_bool(o, "same");
    op->is_dir = get_bool(o, "dir");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mtime");
    if (cJSON_GetArraySize(m) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(m, 0)) &&
        cJSON_IsNumber(cJSON_GetArrayItem(m, 1)))
        op->mtime_ns = (int64_t)cJSON_GetArrayItem(m, 0)->valuedouble * 1000000000 +
                       (int64_t)cJSON_GetArrayItem(m, 1)->valuedouble;
    bool bad = false;
    uint64_t len = 0;
    bool has_len = cJSON_GetObjectItemCaseSensitive(o, "len") != NULL;
    if (has_len && !get_u64(o, "len", REC_MAX_DATA, &len))
        return reader_error(r, -EM_EHOSTILE, "operation %" PRIu64 ": bad \"len\"", op->n);
    switch (op->type) {
    case REC_RENAME:
        op->to = get_str(o, "to");
        why = rec_path_check(op->to);
        if (why)
            return reader_error(r, -EM_EHOSTILE, "operation %" PRIu64 ": %s: %s", op->n, why,
                                op->to ? op->to : "(none)");
        break;
    case REC_APPEND:
    case REC_WRITE:
        bad = !get_u64(o, "offset", REC_MAX_SIZE, &op->offset) ||
              !get_u64(o, "size", REC_MAX_SIZE, &op->size) || !has_len;
        break;
    case REC_CREATE:
    case REC_TRUNCATE:
    case REC_PLACEHOLDER:
        bad = !get_u64(o, "size", REC_MAX_SIZE, &op->size) || (op->type == REC_CREATE && !has_len);
        break;
    case REC_REWRITE:
        bad = !get_u64(o, "size", REC_MAX_SIZE, &op->size) || (!op->same && !has_len);
        break;
    default:
        break;
    }
    if (bad)
        return reader_error(r, -EM_EMALFORMED, "operation %" PRIu64 " (%s) lacks a field", op->n,
                            name);
    if (op->type == REC_UNKNOWN && !r->warned_unknown) {
        r->warned_unknown = true;
        fprintf(stderr,
                "fsrecorder: warning: operation \"%s\" is unknown to this version; "
                "skipping such operations\n",
                name);
    }
    if (len) {
        struct archive_entry *e;
        rc = next_entry(r, &e);
        if (rc <= 0) {
            r->at_end = true;
            if (rc == 0)
                snprintf(r->error, sizeof(r->error), "data/%" PRIu64 " is missing", op->n);
            return rc == -EM_ETRUNCATED || rc == 0 ? 0 : rc;
        }
        char want[40];
        snprintf(want, sizeof(want), "data/%" PRIu64, op->n);
        if (strcmp(archive_entry_pathname(e), want) != 0 ||
            archive_entry_size(e) != (la_int64_t)len)
            return reader_error(r, -EM_EMALFORMED, "%s: expected %s of %" PRIu64 " bytes",
                                archive_entry_pathname(e), want, len);
        if (r->skip_data) {
            if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
                r->at_end = true;
                reader_error(r, -EM_ETRUNCATED, "%s: %s", want, arc_msg(r->a));
                return 0;
            }
            op->len = (size_t)len;
            return 1;
        }
        size_t got;
        rc = read_body(r, e, &r->data, &r->data_cap, &got, REC_MAX_DATA);
        if (rc == -EM_ETRUNCATED) {
            r->at_end = true; /* torn in the middle of this operation's data */
            return 0;
        }
        if (rc < 0)
            return rc;
        op->data = r->data;
        op->len = got;
    }
    return 1;
}

void rec_reader_skip_data(struct rec_reader *r, bool skip)
{
    r->skip_data = skip;
}

bool rec_reader_complete(const struct rec_reader *r)
{
    return r->complete;
}

const char *rec_reader_error(const struct rec_reader *r)
{
    return r->error;
}

uint64_t rec_reader_position(const struct rec_reader *r)
{
    return (uint64_t)archive_filter_bytes(r->a, -1);
}

uint64_t rec_reader_file_size(const struct rec_reader *r)
{
    return r->file_size;
}

const char *rec_reader_compression(const struct rec_reader *r)
{
    const char *n = archive_filter_count(r->a) > 1 ? archive_filter_name(r->a, 0) : "none";
    return n ? n : "none";
}

void rec_reader_close(struct rec_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    cJSON_Delete(r->header);
    cJSON_Delete(r->line);
    free(r->seg);
    free(r->data);
    free(r);
}
