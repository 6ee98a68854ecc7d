/* fsrecorder replay, verify, info and pack.
 *
 * Replay reads the archive twice: a first pass checks every operation (paths that would
 * leave the target, malformed or hostile entries) and counts them before anything is
 * written; the second applies them, each at its scheduled time measured from the start
 * (so time spent writing does not add up as drift), with the same write calls a writer
 * makes: open, write at the offset, truncate, close. Directories on the way must not be
 * symbolic links. Everything goes through libuv's file calls, so it runs on Windows too.
 */
#include "fsrec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "em_error.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "progress.h"
#include "recording.h"
#include "treestate.h"

/* ---- file operations inside the target ---- */

struct target {
    const char *root;
    char err[600];
    struct fsio_buf buf;
    struct hmap dirs; /* directories known to be real ones: hash of path -> path */
};

static int fail_op(struct target *t, const struct rec_op *op, const char *what, int uverr)
{
    snprintf(t->err, sizeof(t->err), "operation %" PRIu64 " (%s %s): %s%s%s", op->n,
             rec_op_name(op->type), op->path, what, uverr ? ": " : "",
             uverr ? uv_strerror(uverr) : "");
    return -1;
}

static const char *dir_path(const void *v)
{
    return v;
}

static void forget_dirs(struct target *t)
{
    for (size_t i = 0; i < t->dirs.cap; i++)
        if (t->dirs.e[i].key)
            free(t->dirs.e[i].v.p);
    hmap_clear(&t->dirs);
}

/* Makes sure the directories leading to `rel` (and `rel` itself with `last`) are real
 * directories inside the target, creating them with `create`. A symbolic link or special
 * file on the way is refused: it could lead outside the target. Directories checked once
 * are remembered until a rename or delete. */
static int ensure_dirs(struct target *t, const struct rec_op *op, const char *rel, bool last,
                       bool create)
{
    char buf[REC_MAX_PATH + 1];
    snprintf(buf, sizeof(buf), "%s", rel);
    for (char *p = buf;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        if (*p == '\0' && !last)
            return 0;
        char c = *p;
        *p = '\0';
        uint64_t key = hash64_str(buf);
        if (!hmap_find(&t->dirs, key, buf, dir_path)) {
            char *abs = fsio_join(t->root, buf);
            if (!abs)
                return fail_op(t, op, "out of memory", 0);
            struct fsio_stat st;
            int rc = fsio_lstat(abs, &st);
            if (rc == -EM_ENOENT && create) {
                uv_fs_t req;
                int mrc = uv_fs_mkdir(NULL, &req, abs, 0755, NULL);
                uv_fs_req_cleanup(&req);
                if (mrc < 0 && mrc != UV_EEXIST) {
                    free(abs);
                    return fail_op(t, op, "cannot create the directory", mrc);
                }
                rc = fsio_lstat(abs, &st);
            }
            free(abs);
            if (rc == -EM_ENOENT)
                return 0; /* nothing further exists; the operation will say what is missing */
            if (rc < 0 || st.type != FSIO_DIR)
                return fail_op(t, op,
                               rc == 0 && st.type == FSIO_OTHER
                                   ? "refusing to write through a symbolic link or special file"
                                   : "a file is in the way of a directory",
                               0);
            int added;
            struct hmap_entry *e = hmap_upsert(&t->dirs, key, buf, dir_path, &added);
            char *copy = e ? strdup(buf) : NULL;
            if (!copy) {
                if (e)
                    hmap_remove(&t->dirs, e);
                return fail_op(t, op, "out of memory", 0);
            }
            e->v.p = copy;
        }
        *p = c;
        if (c == '\0')
            return 0;
    }
}

static int open_file(struct target *t, const struct rec_op *op, int flags, uv_file *fd)
{
    char *abs = fsio_join(t->root, op->path);
    if (!abs)
        return fail_op(t, op, "out of memory", 0);
    uv_fs_t req;
    int rc = uv_fs_open(NULL, &req, abs, flags | UV_FS_O_NOFOLLOW, 0644, NULL);
    uv_fs_req_cleanup(&req);
    free(abs);
    if (rc < 0)
        return fail_op(t, op, "cannot open", rc);
    *fd = rc;
    return 0;
}

static int write_at(struct target *t, const struct rec_op *op, uv_file fd, const void *data,
                    size_t len, int64_t offset)
{
    const char *p = data;
    while (len) {
        uv_fs_t req;
        uv_buf_t b =
            uv_buf_init((char *)(uintptr_t)p, (unsigned)(len > (1u << 30) ? 1u << 30 : len));
        int rc = uv_fs_write(NULL, &req, fd, &b, 1, offset, NULL);
        uv_fs_req_cleanup(&req);
        if (rc <= 0)
            return fail_op(t, op, "cannot write", rc);
        p += rc;
        len -= (size_t)rc;
        offset += rc;
    }
    return 0;
}

static int truncate_to(struct target *t, const struct rec_op *op, uv_file fd, uint64_t size)
{
    uv_fs_t req;
    int rc = uv_fs_ftruncate(NULL, &req, fd, (int64_t)size, NULL);
    uv_fs_req_cleanup(&req);
    return rc < 0 ? fail_op(t, op, "cannot truncate", rc) : 0;
}

static void close_file(uv_file fd)
{
    uv_fs_t req;
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
}

/* Deletes `abs` and, for a directory, everything below it (links are removed, never
 * followed). */
static int remove_tree(const char *abs)
{
    struct fsio_stat st;
    if (fsio_lstat(abs, &st) < 0)
        return 0;
    uv_fs_t req;
    int rc;
    if (st.type == FSIO_DIR) {
        struct fsio_entry *ents;
        size_t count;
        if (fsio_list(abs, &ents, &count) == 0) {
            for (size_t i = 0; i < count; i++) {
                char *child = fsio_join(abs, ents[i].name);
                if (child)
                    remove_tree(child);
                free(child);
            }
            fsio_entries_free(ents, count);
        }
        rc = uv_fs_rmdir(NULL, &req, abs, NULL);
    } else {
        rc = uv_fs_unlink(NULL, &req, abs, NULL);
    }
    uv_fs_req_cleanup(&req);
    return rc;
}

static int apply(struct target *t, const struct rec_op *op)
{
    if (op->type == REC_END || op->type == REC_UNKNOWN)
        return 0;
    /* Directories may move or go: check them again from now on. */
    if (op->type == REC_RENAME || op->type == REC_DELETE)
        forget_dirs(t);
    bool creates = op->type == REC_MKDIR || op->type == REC_CREATE || op->type == REC_REWRITE ||
                   op->type == REC_PLACEHOLDER;
    if (ensure_dirs(t, op, op->path, op->type == REC_MKDIR, creates) < 0 ||
        (op->type == REC_RENAME && ensure_dirs(t, op, op->to, false, true) < 0))
        return -1;
    uv_file fd;
    int rc;
    switch (op->type) {
    case REC_MKDIR:
        return 0;
    case REC_CREATE:
        if (open_file(t, op, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, &fd) < 0)
            return -1;
        rc = write_at(t, op, fd, op->data, op->len, 0);
        close_file(fd);
        return rc;
    case REC_APPEND:
    case REC_WRITE:
        if (open_file(t, op, UV_FS_O_WRONLY, &fd) < 0)
            return -1;
        rc = write_at(t, op, fd, op->data, op->len, (int64_t)op->offset);
        if (rc == 0 && op->type == REC_WRITE && op->offset + op->len != op->size)
            rc = truncate_to(t, op, fd, op->size);
        close_file(fd);
        return rc;
    case REC_REWRITE: {
        const void *data = op->data;
        size_t len = op->len;
        if (op->same) {
            /* The same bytes written again: what the file holds now. */
            char *abs = fsio_join(t->root, op->path);
            rc = abs ? fsio_read(abs, REC_MAX_DATA, &t->buf, NULL) : -EM_ENOMEM;
            free(abs);
            if (rc < 0)
                return fail_op(t, op, "cannot read the file to write it again", 0);
            data = t->buf.data;
            len = t->buf.len;
        }
        if (open_file(t, op, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, &fd) < 0)
            return -1;
        rc = write_at(t, op, fd, data, len, 0);
        close_file(fd);
        return rc;
    }
    case REC_TRUNCATE:
        if (open_file(t, op, UV_FS_O_WRONLY, &fd) < 0)
            return -1;
        rc = truncate_to(t, op, fd, op->size);
        close_file(fd);
        return rc;
    case REC_PLACEHOLDER:
        /* Zeros of the recorded size, sparse where the file system allows. */
        if (open_file(t, op, UV_FS_O_WRONLY | UV_FS_O_CREAT, &fd) < 0)
            return -1;
        rc = truncate_to(t, op, fd, op->size);
        close_file(fd);
        return rc;
    case REC_RENAME: {
        char *from = fsio_join(t->root, op->path), *to = fsio_join(t->root, op->to);
        uv_fs_t req;
        rc = from && to ? uv_fs_rename(NULL, &req, from, to, NULL) : UV_ENOMEM;
        if (from && to)
            uv_fs_req_cleanup(&req);
        free(from);
        free(to);
        return rc < 0 ? fail_op(t, op, "cannot rename", rc) : 0;
    }
    case REC_DELETE: {
        char *abs = fsio_join(t->root, op->path);
        rc = abs ? remove_tree(abs) : UV_ENOMEM;
        free(abs);
        return rc < 0 && rc != UV_ENOENT ? fail_op(t, op, "cannot delete", rc) : 0;
    }
    default:
        return 0;
    }
}

/* ---- timing ---- */

static void sleep_until(uint64_t target_ns)
{
    for (;;) {
        uint64_t now = uv_hrtime();
        if (now >= target_ns)
            return;
        uint64_t d = target_ns - now;
#ifdef _WIN32
        uv_sleep((unsigned)(d / 1000000) + 1);
#else
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
#endif
    }
}

/* ---- commands ---- */

static bool dir_empty(const char *dir, char *first, size_t len)
{
    struct fsio_entry *ents;
    size_t count;
    if (fsio_list(dir, &ents, &count) < 0)
        return true;
    if (count)
        snprintf(first, len, "%s", ents[0].name);
    fsio_entries_free(ents, count);
    return count == 0;
}

/* The first pass: every operation must be acceptable before anything is written. */
static int check_all(const char *path, uint64_t *ops, char *err, size_t errlen)
{
    struct rec_reader *r;
    if (rec_reader_open(path, &r, err, errlen) < 0)
        return -1;
    rec_reader_skip_data(r, true);
    struct rec_op op;
    int rc;
    *ops = 0;
    while ((rc = rec_reader_next(r, &op)) > 0)
        *ops += op.type != REC_END;
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, rec_reader_error(r));
    rec_reader_close(r);
    return rc < 0 ? -1 : 0;
}

int fsrec_replay(const struct replay_options *o)
{
    char err[600];
    uint64_t total;
    if (check_all(o->rec, &total, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: refusing the recording: %s\n", err);
        return 1;
    }
    struct fsio_stat st;
    if (fsio_stat(o->dir, &st) == 0) {
        char first[256] = "";
        if (st.type != FSIO_DIR) {
            fprintf(stderr, "fsrecorder: %s: not a directory\n", o->dir);
            return 1;
        }
        if (!o->force && !dir_empty(o->dir, first, sizeof(first))) {
            fprintf(stderr,
                    "fsrecorder: %s is not empty (it has %s); replay into an empty or "
                    "new directory, or pass --force to write into it anyway\n",
                    o->dir, first);
            return 1;
        }
    } else {
        uv_fs_t req;
        int rc = uv_fs_mkdir(NULL, &req, o->dir, 0755, NULL);
        uv_fs_req_cleanup(&req);
        if (rc < 0) {
            fprintf(stderr, "fsrecorder: %s: cannot create it: %s\n", o->dir, uv_strerror(rc));
            return 1;
        }
    }
    struct rec_reader *r;
    if (rec_reader_open(o->rec, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", err);
        return 1;
    }
    struct target t = {.root = o->dir};
    struct treestate state;
    treestate_init(&state);
    struct progress prog;
    progress_init(&prog, o->quiet);
    uint64_t start = uv_hrtime();
    double virt = 0, last_t = 0;
    uint64_t done = 0, bytes = 0;
    int exit_code = 0;
    struct rec_op op;
    int rc;
    while ((rc = rec_reader_next(r, &op)) > 0) {
        if (!o->burst) {
            double gap = (op.t - last_t) / (o->speed > 0 ? o->speed : 1);
            if (gap < 0)
                gap = 0;
            if (o->max_gap >= 0 && gap > o->max_gap)
                gap = o->max_gap;
            virt += gap;
            sleep_until(start + (uint64_t)(virt * 1e9));
        }
        last_t = op.t;
        if (apply(&t, &op) < 0) {
            fprintf(stderr, "\nfsrecorder: %s\n", t.err);
            exit_code = 1;
            break;
        }
        if (treestate_apply(&state, &op) < 0) {
            fprintf(stderr, "fsrecorder: out of memory\n");
            exit_code = 1;
            break;
        }
        done += op.type != REC_END;
        bytes += op.len;
        char detail[128];
        snprintf(detail, sizeof(detail), "%" PRIu64 "/%" PRIu64 " operations, %.1f MB", done, total,
                 (double)bytes / 1e6);
        progress_show(&prog, "replay", done, total, detail, false);
    }
    progress_done(&prog);
    double took = (double)(uv_hrtime() - start) / 1e9;
    if (rc < 0) {
        fprintf(stderr, "fsrecorder: %s: %s\n", o->rec, rec_reader_error(r));
        exit_code = 1;
    } else if (exit_code == 0 && !rec_reader_complete(r)) {
        fprintf(stderr,
                "fsrecorder: warning: %s: %s; replayed the %" PRIu64 " operations before it\n",
                o->rec, rec_reader_error(r), done);
    }
    rec_reader_close(r);
    if (exit_code == 0 && !o->quiet)
        fprintf(stderr, "fsrecorder: replayed %" PRIu64 " operations (%.1f MB) into %s in %.2f s\n",
                done, (double)bytes / 1e6, o->dir, took);
    if (exit_code == 0 && o->verify) {
        struct ts_report rep;
        if (treestate_compare(&state, o->dir, 20, &rep) < 0) {
            fprintf(stderr, "fsrecorder: out of memory while verifying\n");
            exit_code = 1;
        } else if (rep.missing || rep.different) {
            fprintf(stderr,
                    "fsrecorder: verify: %" PRIu64 " missing, %" PRIu64
                    " different after the replay\n",
                    rep.missing, rep.different);
            exit_code = 1;
        } else if (!o->quiet) {
            fprintf(stderr, "fsrecorder: verified %" PRIu64 " entries%s\n", rep.checked,
                    rep.extra ? " (other files were there before)" : "");
        }
    }
    treestate_free(&state);
    fsio_buf_free(&t.buf);
    forget_dirs(&t);
    hmap_free(&t.dirs);
    return exit_code;
}

int fsrec_verify(const char *rec, const char *dir, bool quiet, bool json)
{
    char err[600];
    struct rec_reader *r;
    if (rec_reader_open(rec, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", err);
        return 1;
    }
    rec_reader_skip_data(r, true);
    struct treestate state;
    treestate_init(&state);
    struct rec_op op;
    int rc;
    while ((rc = rec_reader_next(r, &op)) > 0)
        if (treestate_apply(&state, &op) < 0)
            break;
    int exit_code = 0;
    if (rc < 0) {
        fprintf(stderr, "fsrecorder: %s: %s\n", rec, rec_reader_error(r));
        exit_code = 1;
    } else if (!rec_reader_complete(r)) {
        fprintf(stderr, "fsrecorder: warning: %s: %s; comparing with the state it reached\n", rec,
                rec_reader_error(r));
    }
    rec_reader_close(r);
    struct fsio_stat st;
    int src = exit_code == 0 ? fsio_stat(dir, &st) : 0;
    if (exit_code == 0 && (src < 0 || st.type != FSIO_DIR)) {
        fprintf(stderr, "fsrecorder: %s: %s\n", dir,
                src < 0 ? em_strerror(src) : "not a directory");
        exit_code = 1;
    }
    if (exit_code == 0) {
        struct ts_report rep;
        if (treestate_compare(&state, dir, 50, &rep) < 0) {
            exit_code = 1;
        } else {
            if (json)
                printf("{\"checked\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"different\":%" PRIu64
                       ",\"extra\":%" PRIu64 ",\"equal\":%s}\n",
                       rep.checked, rep.missing, rep.different, rep.extra,
                       rep.missing || rep.different ? "false" : "true");
            else if (!quiet || rep.missing || rep.different)
                printf("%" PRIu64 " entries checked: %" PRIu64 " missing, %" PRIu64
                       " different, %" PRIu64 " not in the recording\n",
                       rep.checked, rep.missing, rep.different, rep.extra);
            exit_code = rep.missing || rep.different ? 1 : 0;
        }
    }
    treestate_free(&state);
    return exit_code;
}

int fsrec_info(const char *rec, bool json, bool list_ops)
{
    char err[600];
    struct rec_reader *r;
    if (rec_reader_open(rec, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", err);
        return 1;
    }
    rec_reader_skip_data(r, !list_ops);
    struct treestate state;
    treestate_init(&state);
    uint64_t counts[REC_UNKNOWN + 1] = {0}, ops = 0, data = 0;
    double last = 0;
    struct rec_op op;
    int rc;
    while ((rc = rec_reader_next(r, &op)) > 0) {
        counts[op.type]++;
        if (op.type == REC_END)
            break;
        ops++;
        data += op.len;
        last = op.t;
        treestate_apply(&state, &op);
        if (list_ops) {
            printf("%10.6f %-11s %s", op.t, rec_op_name(op.type), op.path);
            if (op.type == REC_RENAME)
                printf(" -> %s", op.to);
            if (op.type == REC_APPEND || op.type == REC_WRITE)
                printf(" @%" PRIu64, op.offset);
            if (op.len)
                printf(" +%zu", op.len);
            if (op.type >= REC_CREATE && op.type <= REC_PLACEHOLDER)
                printf(" =%" PRIu64, op.size);
            if (op.same)
                printf(" (same)");
            printf("\n");
        }
    }
    uint64_t dirs, files, placeholders, bytes;
    treestate_count(&state, &dirs, &files, &placeholders, &bytes);
    bool complete = rec_reader_complete(r);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", rec);
        cJSON_AddNumberToObject(o, "version", rec_reader_version(r));
        cJSON_AddStringToObject(o, "tool", rec_reader_header(r, "tool"));
        cJSON_AddStringToObject(o, "mode", rec_reader_header(r, "mode"));
        cJSON_AddStringToObject(o, "source", rec_reader_header(r, "source"));
        cJSON_AddStringToObject(o, "placeholders", rec_reader_header(r, "placeholders"));
        cJSON_AddStringToObject(o, "compression", rec_reader_compression(r));
        cJSON_AddBoolToObject(o, "complete", complete);
        cJSON_AddNumberToObject(o, "duration_s", last);
        cJSON_AddNumberToObject(o, "operations", (double)ops);
        cJSON *c = cJSON_AddObjectToObject(o, "by_type");
        for (int i = 0; i < REC_END; i++)
            cJSON_AddNumberToObject(c, rec_op_name((enum rec_op_type)i), (double)counts[i]);
        if (counts[REC_UNKNOWN])
            cJSON_AddNumberToObject(c, "unknown", (double)counts[REC_UNKNOWN]);
        cJSON_AddNumberToObject(o, "content_bytes", (double)data);
        cJSON *f = cJSON_AddObjectToObject(o, "final");
        cJSON_AddNumberToObject(f, "directories", (double)dirs);
        cJSON_AddNumberToObject(f, "files", (double)files);
        cJSON_AddNumberToObject(f, "placeholders", (double)placeholders);
        cJSON_AddNumberToObject(f, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "archive_bytes", (double)rec_reader_file_size(r));
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("recording    %s\n", rec);
        printf("format       %s version %d, %s compression, %.1f MB\n", REC_FORMAT,
               rec_reader_version(r), rec_reader_compression(r),
               (double)rec_reader_file_size(r) / 1e6);
        printf("made by      %s (%s) from %s\n", rec_reader_header(r, "tool"),
               rec_reader_header(r, "mode"), rec_reader_header(r, "source"));
        printf("placeholders %s\n", *rec_reader_header(r, "placeholders")
                                        ? rec_reader_header(r, "placeholders")
                                        : "none");
        printf("status       %s\n", complete ? "complete" : rec_reader_error(r));
        printf("duration     %.3f s\n", last);
        printf("operations   %" PRIu64 ":", ops);
        for (int i = 0; i < REC_END; i++)
            if (counts[i])
                printf(" %s %" PRIu64, rec_op_name((enum rec_op_type)i), counts[i]);
        if (counts[REC_UNKNOWN])
            printf(" unknown %" PRIu64, counts[REC_UNKNOWN]);
        printf("\ncontent      %.1f MB stored\n", (double)data / 1e6);
        printf("final tree   %" PRIu64 " directories, %" PRIu64 " files, %" PRIu64
               " placeholders, %.1f MB\n",
               dirs, files, placeholders, (double)bytes / 1e6);
    }
    if (rc < 0)
        fprintf(stderr, "fsrecorder: %s: %s\n", rec, rec_reader_error(r));
    rec_reader_close(r);
    treestate_free(&state);
    return rc < 0 ? 1 : 0;
}

int fsrec_pack(const char *in, const char *out)
{
    enum rec_compression c;
    if (rec_compression_for(out, &c) < 0) {
        fprintf(stderr,
                "fsrecorder: %s: the name must end in .tar, .tar.gz, .tgz, .tar.zst or "
                ".tzst\n",
                out);
        return 2;
    }
    char err[600];
    struct rec_reader *r;
    if (rec_reader_open(in, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", err);
        return 1;
    }
    rec_reader_close(r);
    if (rec_pack(in, out, c, err, sizeof(err)) < 0) {
        fprintf(stderr, "fsrecorder: %s\n", err);
        return 1;
    }
    return 0;
}
