/* The recording writer: operations streamed into a plain tar a segment at a time. */
#include "recording.h"
#include "recording_int.h"
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
        rec_fail(err, errlen, "%s: %s", path, cli_strerror(errno));
        free(w);
        return errno == ENOENT ? -EM_ENOENT : -EM_EIO;
    }
    w->a = archive_write_new();
    if (!w->a || archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_add_filter_none(w->a) != ARCHIVE_OK ||
        /* No blocking: every entry reaches the file as soon as it is written. */
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK) {
        rec_fail(err, errlen, "%s: %s", path, w->a ? rec_arc_msg(w->a) : "out of memory");
        if (w->a)
            archive_write_free(w->a);
        close(w->fd);
        free(w);
        return -EM_EIO;
    }
    struct dynbuf *b = &w->lines;
    int rc =
        dynbuf_printf(b, "{\"format\":\"%s\",\"version\":%d,\"tool\":", REC_FORMAT, REC_VERSION);
    rc = rc ? rc : rec_json_str(b, h->tool ? h->tool : "");
    rc = rc ? rc : dynbuf_add(b, ",\"mode\":", 8);
    rc = rc ? rc : rec_json_str(b, h->mode ? h->mode : "");
    rc = rc ? rc : dynbuf_add(b, ",\"source\":", 10);
    rc = rc ? rc : rec_json_str(b, h->source ? h->source : "");
    rc = rc ? rc : dynbuf_add(b, ",\"placeholders\":", 16);
    rc = rc ? rc : rec_json_str(b, h->placeholders ? h->placeholders : "");
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
        rc = rc ? rc : rec_json_str(b, op->path);
    }
    if (op->type == REC_RENAME) {
        rc = rc ? rc : dynbuf_add(b, ",\"to\":", 6);
        rc = rc ? rc : rec_json_str(b, op->to);
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
        rc = rc ? rc : rec_json_str(b, op->sha256);
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
        struct pending_data *d = em_grow(w->data, w->ndata, &w->data_cap, sizeof(*d), 64);
        if (!d)
            rc = -EM_ENOMEM;
        else
            w->data = d;
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
        rec_fail(err, errlen, "writing the recording: %s",
                 archive_error_string(w->a) ? rec_arc_msg(w->a) : cli_strerror(errno));
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
        rec_fail(err, errlen, "closing the recording: %s", rec_arc_msg(w->a));
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
