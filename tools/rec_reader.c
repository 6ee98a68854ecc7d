/* The recording reader: operations streamed back out of an archive, plain or packed. */
#include "em_compat.h"
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

static int reader_error(struct rec_reader *r, int code, const char *fmt, ...) EM_PRINTF(3, 4);
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
                                k < 0 ? rec_arc_msg(r->a) : "ends early");
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
        return reader_error(r, -EM_ETRUNCATED, "%s", rec_arc_msg(r->a));
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
        rec_fail(err, errlen, "%s: %s", path, cli_strerror(errno));
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
        rec_fail(err, errlen, "%s: %s", path, rec_arc_msg(r->a));
        goto bad;
    }
    rc = next_line(r);
    if (rc <= 0) {
        rec_fail(err, errlen, "%s: not a recording (%s)", path, rc == 0 ? "no manifest" : r->error);
        rc = rc == 0 ? -EM_EMALFORMED : rc;
        goto bad;
    }
    r->header = r->line;
    r->line = NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->header, "format");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->header, "version");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, REC_FORMAT) != 0) {
        rec_fail(err, errlen, "%s: not an %s archive", path, REC_FORMAT);
        rc = -EM_EMALFORMED;
        goto bad;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != REC_VERSION) {
        rec_fail(err, errlen, "%s: recording format version %g; this fsrecorder reads version %d",
                 path, cJSON_IsNumber(v) ? v->valuedouble : 0.0, REC_VERSION);
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
        if (strcmp(name, rec_op_name((enum rec_op_type)i)) == 0)
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
                reader_error(r, -EM_ETRUNCATED, "%s: %s", want, rec_arc_msg(r->a));
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
