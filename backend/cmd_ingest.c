/* em-backend: ingest: an event file (or a pipe from `em-agent watch`) into the store. */
/* realpath(3) */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "backend.h"
#include "cli_common.h"
#include "dynbuf.h"
#include "em_error.h"
#include "ev.h"
#include "log.h"
#include "rules.h"
#include "store.h"

static const char ingest_usage[] =
    "Usage: em-backend ingest FILE.jsonl|- [--store URL] [--batch N] [-v]\n"
    "       em-backend ingest --follow FILE.jsonl [--store URL] [--batch N] [-v]\n"
    "\n"
    "Loads entity events (JSON lines, as `em-agent scan` or `em-agent watch` print them)\n"
    "into the metadata store: the embedded path, with no broker.\n"
    "\n"
    "  --follow      keep reading FILE as it grows (`em-agent watch --out FILE`), across\n"
    "                rotation (rename, then SIGHUP to the agent), until SIGTERM or SIGINT.\n"
    "                The position read to is committed in the same transaction as the\n"
    "                events, so after any crash (of either program) ingest resumes exactly\n"
    "                where the store ends: nothing lost, nothing applied twice. A store\n"
    "                that fails (disk full, database down) is retried with back-off.\n"
    "  --store URL   sqlite:PATH or postgresql://user@host/database\n"
    "                [EM_BACKEND_STORE]\n"
    "  --batch N     events per transaction; default 1000\n"
    "  --json        the summary as one JSON object (on stderr)\n"
    "  --movies BASE_URL\n"
    "                a rule: every micrograph stored makes a `movie` job (once per\n"
    "                micrograph) fetching its movie from BASE_URL + the micrograph's path\n"
    "                (the acquisition share as this machine sees it: file:///mnt/epu/,\n"
    "                smb://acq-pc/epu/, https://…/); `em-backend loaders` runs them\n"
    "                [EM_BACKEND_MOVIES]\n"
    "  --rules FILE  jobs from events, one rule a line: TYPE LOADER ARGS… with {path},\n"
    "                {session_id}, {micrograph_uuid}, … from the event, e.g.\n"
    "                `micrograph movie file:///mnt/epu/ {path}`; each rule fires once per\n"
    "                entity (README: Loaders) [EM_BACKEND_RULES]\n"
    "  -v, -vv, -q   more logging; errors only and no summary\n"
    "\n"
    "With '-' it reads stdin and commits whenever the input pauses. A pipe is not\n"
    "crash-safe: when ingest dies, the lines in the pipe and in its hands are gone, and the\n"
    "agent, which counted them delivered, does not send them again. Use --follow.\n"
    "Events are upserted by their natural keys: loading the same file twice, or an older\n"
    "event after a newer one from the same agent, changes nothing. A line that is not a\n"
    "valid event is reported with its line number and skipped.\n"
    "Exit status: 0 all lines stored (--follow: stopped by a signal); 1 some lines rejected,\n"
    "the input cannot be read or the store fails; 2 usage or settings.\n";

#define READ_CHUNK 65536
#define MAX_REPORTED 20

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Reads lines from a file descriptor, bounded by WIRE_MAX_BYTES per line. */
struct line_reader {
    int fd;
    struct dynbuf buf;
    size_t pos;
    bool eof, skipping; /* skipping: the rest of an over-long line */
    bool follow;        /* at the end of the file, return 4 instead of ending */
    uint64_t base;      /* file offset of buf.p[0] */
};

/* The file offset just past the last whole line returned. */
static uint64_t consumed(const struct line_reader *r)
{
    return r->base + r->pos;
}

/* 1: a line in *line and *len (NUL-terminated, valid until the next call); 0: end of input;
 * 2: a line that was too long (skipped); 3: no whole line within `wait_ms` (pipes);
 * 4: following, at the end of the file for now (a partial last line stays unread);
 * negative: read error. */
static int next_line(struct line_reader *r, char **line, size_t *len, int wait_ms)
{
    for (;;) {
        char *start = r->buf.p ? r->buf.p + r->pos : NULL;
        char *nl = start ? memchr(start, '\n', r->buf.len - r->pos) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - start);
            r->pos += n + 1;
            if (r->skipping) {
                r->skipping = false;
                return 2;
            }
            *nl = '\0';
            if (n > 0 && start[n - 1] == '\r')
                start[--n] = '\0';
            *line = start;
            *len = n;
            return 1;
        }
        if (r->eof) {
            size_t n = r->buf.len - r->pos;
            if (n == 0 && !r->skipping)
                return 0;
            r->pos = r->buf.len;
            if (r->skipping) {
                r->skipping = false;
                return 2;
            }
            *line = start; /* a last line without its newline */
            *len = n;
            return 1;
        }
        /* Keep only the unread part, then read more. */
        if (r->pos > 0) {
            size_t rest = r->buf.len - r->pos;
            memmove(r->buf.p, r->buf.p + r->pos, rest);
            r->buf.len = rest;
            r->buf.p[rest] = '\0';
            r->base += r->pos;
            r->pos = 0;
        }
        if (r->buf.len > WIRE_MAX_BYTES) {
            r->base += r->buf.len;
            dynbuf_reset(&r->buf);
            r->skipping = true;
        }
        if (wait_ms >= 0) {
            struct pollfd p = {r->fd, POLLIN, 0};
            int pr = poll(&p, 1, wait_ms);
            if (pr == 0)
                return 3;
            if (pr < 0 && errno == EINTR)
                return stop_requested ? 0 : 3;
        }
        char chunk[READ_CHUNK];
        ssize_t got = read(r->fd, chunk, sizeof(chunk));
        if (got < 0) {
            if (errno == EINTR) {
                if (stop_requested)
                    r->eof = true;
                continue;
            }
            return em_from_errno(errno);
        }
        if (got == 0) {
            if (r->follow)
                return 4;
            r->eof = true;
            continue;
        }
        if (dynbuf_add(&r->buf, chunk, (size_t)got) < 0)
            return -EM_ENOMEM;
    }
}

struct totals {
    uint64_t lines, events, changed, rejected, failed;
};

static bool summary_json; /* --json */

/* The summary on stderr: a line of text (unless -q), or with --json one JSON object. */
static void print_totals(const char *source, const struct totals *t, bool follow,
                         uint64_t stopped_at)
{
    uint64_t unchanged = t->events - t->changed - t->failed;
    if (summary_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "source", source);
        cJSON_AddNumberToObject(o, "events", (double)t->events);
        cJSON_AddNumberToObject(o, "stored", (double)t->changed);
        cJSON_AddNumberToObject(o, "unchanged", (double)unchanged);
        cJSON_AddNumberToObject(o, "not_stored", (double)t->failed);
        cJSON_AddNumberToObject(o, "rejected", (double)t->rejected);
        if (follow)
            cJSON_AddNumberToObject(o, "stopped_at_byte", (double)stopped_at);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(stderr, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
        return;
    }
    if (cli_quiet)
        return;
    if (follow)
        fprintf(stderr, "em-backend: ingest --follow %s: stopped at byte %" PRIu64 ": ", source,
                stopped_at);
    else
        fprintf(stderr, "em-backend: ingest %s: ", source);
    fprintf(stderr,
            "%" PRIu64 " events, %" PRIu64 " stored, %" PRIu64 " unchanged (repeated or stale), "
            "%" PRIu64 " not stored (store error), %" PRIu64 " rejected lines\n",
            t->events, t->changed, unchanged, t->failed, t->rejected);
}

static int flush(struct store *s, struct ev *batch, size_t *n, struct totals *t)
{
    if (*n == 0)
        return 0;
    char reason[512];
    size_t changed;
    int rc = store_apply(s, batch, *n, &changed, reason, sizeof(reason));
    if (rc < 0) {
        em_log(EM_LOG_ERROR, "%s", reason);
        t->failed += *n; /* not stored: not "unchanged" either */
    } else {
        t->changed += changed;
    }
    for (size_t i = 0; i < *n; i++)
        ev_free(&batch[i]);
    *n = 0;
    return rc;
}

/* ---- --follow ---- */

#define FOLLOW_PAUSE_MS 200
#define ROTATE_GRACE_S 2.0 /* a rotated file may still be written until its writer reopens */

struct followed {
    char source[PATH_MAX + 256]; /* absolute path of FILE */
    int fd;           /* the file being read (FILE, or what FILE was before a rotation) */
    char file_id[64]; /* "device:inode" of fd */
    dev_t dev;
    ino_t ino;
    double rotated_at; /* > 0: FILE is another file now; switch once this one is quiet */
    struct line_reader r;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads `fd` from `offset` on (a new reader). */
static int follow_open_fd(struct followed *f, int fd, uint64_t offset)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -EM_EIO;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    snprintf(f->file_id, sizeof(f->file_id), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    f->rotated_at = 0;
    if ((uint64_t)st.st_size < offset) {
        em_log(EM_LOG_WARN,
               "%s: shorter (%jd bytes) than the position read to (%" PRIu64
               "): it was truncated; reading it from the start",
               f->source, (intmax_t)st.st_size, offset);
        offset = 0;
    }
    if (lseek(fd, (off_t)offset, SEEK_SET) < 0)
        return -EM_EIO;
    dynbuf_reset(&f->r.buf);
    f->r.fd = fd;
    f->r.pos = 0;
    f->r.base = offset;
    f->r.eof = f->r.skipping = false;
    f->r.follow = true;
    return 0;
}

/* The file in FILE's directory whose identity is `file_id` (a rotated FILE), opened, or
 * -1. */
static int find_rotated(const char *source, const char *file_id)
{
    char dir[PATH_MAX + 256];
    snprintf(dir, sizeof(dir), "%s", source);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return -1;
    int fd = -1;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d)) != NULL) {
        char path[PATH_MAX + 512], id[64];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(id, sizeof(id), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
        if (strcmp(id, file_id) == 0) {
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0)
                em_log(EM_LOG_INFO, "%s: the file read last was rotated to %s: finishing it first",
                       source, path);
        }
    }
    closedir(d);
    return fd;
}

/* Stores the batch's events one at a time: an event the store refuses for its own values
 * is reported and counted as rejected; the others are stored. Returns 0, or the first
 * failure of the store itself. */
static int apply_singly(struct store *s, struct ev *batch, size_t n, struct totals *t, char *reason,
                        size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        size_t changed = 0;
        int rc = store_apply(s, &batch[i], 1, &changed, reason, cap);
        if (rc == -EM_EVALUE) {
            em_log(EM_LOG_WARN, "event %s:%" PRIu64 ": %s; skipped", batch[i].agent, batch[i].seq,
                   reason);
            t->rejected++;
            t->events--;
        } else if (rc < 0) {
            return rc;
        }
        t->changed += changed;
    }
    return 0;
}

/* Commits the batch together with the position read to, retrying (the store reopened,
 * back-off doubling to 30 s, one log line per new reason) until it is stored. Returns 0
 * once committed, or EM_ESTATE when stopped first: then nothing of the batch is recorded
 * as read, and the next run reads it again. */
static int follow_commit(struct store **s, const char *url, struct ev *batch, size_t *n,
                         const struct followed *f, struct totals *t)
{
    struct store_position pos = {f->source, f->file_id, consumed(&f->r)};
    double backoff = 0.25;
    char last[512] = "";
    for (;;) {
        char reason[512];
        size_t changed = 0;
        int rc = *s ? 0 : store_open(url, true, s, reason, sizeof(reason));
        if (rc == 0)
            rc = store_apply_at(*s, batch, *n, &pos, &changed, reason, sizeof(reason));
        if (rc == -EM_EVALUE) {
            /* An event the store refuses: the others are stored one by one, then the
             * position alone. */
            rc = apply_singly(*s, batch, *n, t, reason, sizeof(reason));
            if (rc == 0)
                rc = store_apply_at(*s, NULL, 0, &pos, &changed, reason, sizeof(reason));
            changed = 0;
        }
        if (rc == 0) {
            if (last[0])
                em_log(EM_LOG_INFO, "%s: storing again", (*s)->redacted);
            t->changed += changed;
            for (size_t i = 0; i < *n; i++)
                ev_free(&batch[i]);
            *n = 0;
            return 0;
        }
        if (strcmp(reason, last) != 0) {
            em_log(EM_LOG_WARN, "%s; retrying with back-off", reason);
            snprintf(last, sizeof(last), "%s", reason);
        }
        store_close(*s);
        *s = NULL;
        for (double slept = 0; slept < backoff; slept += 0.05) {
            if (stop_requested)
                return -EM_ESTATE;
            sleep_ms(50);
        }
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
}

static bool compressed(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcmp(dot, ".gz") == 0 || strcmp(dot, ".zst") == 0 || strcmp(dot, ".xz") == 0 ||
                   strcmp(dot, ".bz2") == 0);
}

/* The file that came after the one being read: among FILE and its rotated copies
 * (FILE.<anything>, not compressed) other than the current one, the one written least
 * recently that was written after the current one's last write. Rotation only ever
 * renames, so this walks the chain in order even when several rotations happened while
 * ingest was down. Opened, or -1 when there is none yet. */
static int next_after(const struct followed *f)
{
    struct stat cur;
    if (fstat(f->fd, &cur) < 0)
        return -1;
    char dir[PATH_MAX + 256];
    snprintf(dir, sizeof(dir), "%s", f->source);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *base = slash + 1 - dir + f->source;
    size_t blen = strlen(base);
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return -1;
    char best[PATH_MAX + 512] = "";
    struct timespec best_t = {0, 0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, blen) != 0 ||
            (e->d_name[blen] != '\0' && e->d_name[blen] != '.') || compressed(e->d_name))
            continue;
        char path[PATH_MAX + 512];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
            (st.st_dev == f->dev && st.st_ino == f->ino))
            continue;
        bool after =
            st.st_mtim.tv_sec > cur.st_mtim.tv_sec ||
            (st.st_mtim.tv_sec == cur.st_mtim.tv_sec && st.st_mtim.tv_nsec >= cur.st_mtim.tv_nsec);
        bool older = !best[0] || st.st_mtim.tv_sec < best_t.tv_sec ||
                     (st.st_mtim.tv_sec == best_t.tv_sec && st.st_mtim.tv_nsec < best_t.tv_nsec);
        if (after && older) {
            snprintf(best, sizeof(best), "%s", path);
            best_t = st.st_mtim;
        }
    }
    closedir(d);
    if (!best[0])
        return -1;
    int fd = open(best, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        em_log(EM_LOG_INFO, "%s: rotated; going on with %s", f->source, best);
    return fd;
}

/* At the end of the file for now: has FILE been rotated or truncated? Goes on with the
 * next file once this one has been quiet for ROTATE_GRACE_S after the rotation was seen.
 * Returns 0, or a negative EM_E* when the file can no longer be read. */
static int follow_check(struct followed *f)
{
    struct stat st, cur;
    if (fstat(f->fd, &cur) == 0 && (uint64_t)cur.st_size < consumed(&f->r)) {
        em_log(EM_LOG_WARN, "%s: truncated under us (copytruncate?); reading it from the start",
               f->source);
        return follow_open_fd(f, f->fd, 0) == 0 ? 0 : -EM_EIO;
    }
    bool moved = stat(f->source, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino;
    if (!moved) {
        f->rotated_at = 0;
        return 0;
    }
    if (f->rotated_at == 0) {
        f->rotated_at = be_mono_s();
        return 0;
    }
    if (be_mono_s() - f->rotated_at < ROTATE_GRACE_S)
        return 0;
    int fd = next_after(f);
    if (fd < 0)
        return 0; /* not there yet: the agent makes it at its next write or SIGHUP */
    return follow_open_fd(f, fd, 0);
}

static int follow(const char *path, const char *url, size_t batch_max)
{
    struct followed f;
    memset(&f, 0, sizeof(f));
    f.fd = -1;
    /* The position is kept under the absolute path, so it is found from any directory. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (strlen(base) > 255) {
        fprintf(stderr, "em-backend: ingest: %s: file name too long\n", path);
        return BE_USAGE;
    }
    if (slash)
        *slash = '\0';
    char real[PATH_MAX];
    if (!realpath(slash ? (dir[0] ? dir : "/") : ".", real)) {
        fprintf(stderr, "em-backend: ingest: %s: %s\n", path, cli_strerror(errno));
        return BE_FAILED;
    }
    snprintf(f.source, sizeof(f.source), "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    struct store *s = NULL;
    char reason[512];
    int orc = store_open(url, true, &s, reason, sizeof(reason));
    if (orc < 0) {
        fprintf(stderr, "em-backend: ingest: %s\n", reason);
        return orc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    char file_id[64] = "";
    uint64_t offset = 0;
    int found =
        store_position_get(s, f.source, file_id, sizeof(file_id), &offset, reason, sizeof(reason));
    if (found < 0) {
        fprintf(stderr, "em-backend: ingest: %s\n", reason);
        store_close(s);
        return BE_FAILED;
    }
    dynbuf_init(&f.r.buf, WIRE_MAX_BYTES + 2 * READ_CHUNK);
    int fd = open(f.source, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char id_now[64] = "";
    if (fd >= 0 && fstat(fd, &st) == 0)
        snprintf(id_now, sizeof(id_now), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    int rc = 0;
    if (found && strcmp(id_now, file_id) != 0) {
        /* The file read last is not FILE any more: finish it first when it can be found. */
        int old = find_rotated(f.source, file_id);
        if (old >= 0) {
            if (fd >= 0)
                close(fd);
            rc = follow_open_fd(&f, old, offset);
            f.rotated_at = be_mono_s();
        } else {
            em_log(EM_LOG_WARN,
                   "%s: the file read last (%s, up to byte %" PRIu64 ") is gone; events written "
                   "to it after that are not in the store. Reading %s from its start",
                   f.source, file_id, offset, f.source);
            offset = 0;
            found = 0;
        }
    }
    if (f.fd < 0) {
        if (fd < 0) {
            em_log(EM_LOG_INFO, "%s: waiting for the file to appear", f.source);
            while (!stop_requested && (fd = open(f.source, O_RDONLY | O_CLOEXEC)) < 0)
                sleep_ms(FOLLOW_PAUSE_MS);
        }
        rc = fd >= 0 ? follow_open_fd(&f, fd, found ? offset : 0) : 0;
    }
    if (rc < 0) {
        fprintf(stderr, "em-backend: ingest: %s: cannot read\n", f.source);
        store_close(s);
        dynbuf_free(&f.r.buf);
        return BE_FAILED;
    }
    if (f.fd >= 0)
        em_log(EM_LOG_INFO, "following %s from byte %" PRIu64 " into %s", f.source, consumed(&f.r),
               s->redacted);
    struct ev *batch = calloc(batch_max, sizeof(*batch));
    struct totals t = {0};
    size_t n = 0;
    int status = BE_OK;
    uint64_t committed = consumed(&f.r);
    while (batch && f.fd >= 0) {
        char *line;
        size_t len;
        int got = stop_requested ? 4 : next_line(&f.r, &line, &len, -1);
        if (got == 4) {
            /* At the end for now: commit what was read, with the position. */
            if ((n > 0 || consumed(&f.r) != committed) &&
                follow_commit(&s, url, batch, &n, &f, &t) == 0)
                committed = consumed(&f.r);
            if (stop_requested)
                break;
            rc = follow_check(&f);
            if (rc < 0) {
                em_log(EM_LOG_ERROR, "%s: cannot read: %s", f.source, em_strerror(rc));
                status = BE_FAILED;
                break;
            }
            sleep_ms(f.rotated_at > 0 ? 50 : FOLLOW_PAUSE_MS);
            continue;
        }
        if (got < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot read: %s", f.source, em_strerror(got));
            status = BE_FAILED;
            break;
        }
        t.lines++;
        if (got == 2) {
            em_log(EM_LOG_WARN, "%s: byte %" PRIu64 ": line longer than %u bytes; skipped",
                   f.source, consumed(&f.r), WIRE_MAX_BYTES);
            t.rejected++;
            continue;
        }
        if (len == 0)
            continue;
        if (ev_decode(line, len, &batch[n], reason, sizeof(reason)) < 0) {
            ev_free(&batch[n]);
            em_log(EM_LOG_WARN, "%s: line ending at byte %" PRIu64 ": %s; skipped", f.source,
                   consumed(&f.r), reason);
            t.rejected++;
            continue;
        }
        t.events++;
        if (++n == batch_max) {
            if (follow_commit(&s, url, batch, &n, &f, &t) < 0)
                break;
            committed = consumed(&f.r);
        }
    }
    for (size_t i = 0; i < n; i++)
        ev_free(&batch[i]);
    free(batch);
    print_totals(f.source, &t, true, committed);
    if (f.fd >= 0)
        close(f.fd);
    dynbuf_free(&f.r.buf);
    store_close(s);
    return status;
}

enum { I_STORE, I_BATCH, I_FOLLOW, I_JSON, I_MOVIES, I_RULES, I_COUNT };
static const struct emopt_spec ingest_opts[I_COUNT] = {
    [I_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [I_BATCH] = {"batch", 0, EMOPT_VALUE, false, false, NULL},
    [I_FOLLOW] = {"follow", 0, EMOPT_FLAG, false, false, NULL},
    [I_JSON] = {"json", 0, EMOPT_FLAG, false, false, NULL},
    [I_MOVIES] = {"movies", 0, EMOPT_VALUE, true, false, NULL},
    [I_RULES] = {"rules", 0, EMOPT_VALUE, true, false, NULL},
};

static int ingest_main(const struct emopt *o)
{
    bool follow_mode = emopt_yes(o, I_FOLLOW);
    summary_json = emopt_yes(o, I_JSON);
    static struct rules rules;
    char why[600];
    if (be_rules(&rules, emopt_get(o, I_MOVIES), emopt_get(o, I_RULES), why, sizeof(why)) < 0)
        return emopt_usage_error(o, "%s", why);
    store_rules = rules.n ? &rules : NULL;
    size_t nargs;
    char *const *args = emopt_args(o, &nargs);
    if (nargs > 1)
        return emopt_usage_error(o, "one input at a time");
    const char *path = nargs ? args[0] : NULL;
    long batch_max = 1000;
    if (!emopt_long(o, I_BATCH, 1, 100000, &batch_max))
        return BE_USAGE;
    if (!path) {
        fprintf(stderr, "em-backend: ingest: which file? ('-' for stdin; see --help)\n");
        return BE_USAGE;
    }
    const char *url = be_store_url(emopt_get(o, I_STORE));
    if (!url)
        return BE_USAGE;
    if (follow_mode) {
        if (strcmp(path, "-") == 0) {
            fprintf(stderr, "em-backend: ingest: --follow takes a file, not '-' (a pipe cannot "
                            "be resumed after a crash)\n");
            return BE_USAGE;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        return follow(path, url, (size_t)batch_max);
    }
    bool from_stdin = strcmp(path, "-") == 0;
    int fd = from_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "em-backend: ingest: %s: %s\n", path, cli_strerror(errno));
        return BE_FAILED;
    }
    struct store *s;
    char reason[512];
    int rc = store_open(url, false, &s, reason, sizeof(reason));
    if (rc < 0) {
        fprintf(stderr, "em-backend: ingest: %s\n", reason);
        if (!from_stdin)
            close(fd);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    struct ev *batch = calloc((size_t)batch_max, sizeof(*batch));
    struct line_reader r = {fd, {0}, 0, false, false, false, 0};
    dynbuf_init(&r.buf, WIRE_MAX_BYTES + 2 * READ_CHUNK);
    struct totals t = {0};
    size_t n = 0;
    int status = BE_OK;
    if (!batch) {
        status = BE_FAILED;
        goto out;
    }
    for (;;) {
        char *line;
        size_t len;
        /* From a pipe, commit what has come whenever the input pauses. */
        int got = next_line(&r, &line, &len, from_stdin && n > 0 ? 200 : -1);
        if (got == 3) {
            if (flush(s, batch, &n, &t) < 0) {
                status = BE_FAILED;
                break;
            }
            continue;
        }
        if (got < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot read: %s", path, em_strerror(got));
            status = BE_FAILED;
            break;
        }
        if (got == 0)
            break;
        t.lines++;
        if (got == 2) {
            if (t.rejected++ < MAX_REPORTED)
                em_log(EM_LOG_WARN, "%s:%" PRIu64 ": line longer than %u bytes; skipped", path,
                       t.lines, WIRE_MAX_BYTES);
            continue;
        }
        if (len == 0)
            continue;
        rc = ev_decode(line, len, &batch[n], reason, sizeof(reason));
        if (rc < 0) {
            ev_free(&batch[n]);
            if (t.rejected++ < MAX_REPORTED)
                em_log(EM_LOG_WARN, "%s:%" PRIu64 ": %s; skipped", path, t.lines, reason);
            continue;
        }
        t.events++;
        if (++n == (size_t)batch_max && flush(s, batch, &n, &t) < 0) {
            status = BE_FAILED;
            break;
        }
    }
    if (status == BE_OK && flush(s, batch, &n, &t) < 0)
        status = BE_FAILED;
    for (size_t i = 0; i < n; i++)
        ev_free(&batch[i]);
    if (t.rejected > MAX_REPORTED)
        em_log(EM_LOG_WARN, "%s: %" PRIu64 " more rejected lines not shown", path,
               t.rejected - MAX_REPORTED);
    print_totals(from_stdin ? "stdin" : path, &t, false, 0);
    if (status == BE_OK && t.rejected)
        status = BE_REJECTS;
out:
    free(batch);
    dynbuf_free(&r.buf);
    store_close(s);
    if (!from_stdin)
        close(fd);
    return status;
}

int cmd_ingest(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "ingest", ingest_usage, "EM_BACKEND_",
                                           ingest_opts,  I_COUNT,  ingest_main};
    return emopt_run(&c, argc, argv);
}
