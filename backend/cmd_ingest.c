/* em-backend ingest: an event file (or a pipe from `em-agent watch`) into the store. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "dynbuf.h"
#include "em_error.h"
#include "ev.h"
#include "log.h"
#include "store.h"

static const char ingest_usage[] =
    "Usage: em-backend ingest FILE.jsonl|- [--store URL] [--batch N] [-v]\n"
    "\n"
    "Loads entity events (JSON lines, as `em-agent scan` or `em-agent watch` print them)\n"
    "into the metadata store: the embedded path, with no broker. With '-' it reads stdin\n"
    "and commits whenever the input pauses, so `em-agent watch DIR | em-backend ingest -`\n"
    "keeps a store up to date live.\n"
    "\n"
    "  --store URL   sqlite:PATH or postgresql://user@host/database\n"
    "                [EM_BACKEND_STORE]\n"
    "  --batch N     events per transaction; default 1000\n"
    "  -v, -vv       more logging\n"
    "\n"
    "Events are upserted by their natural keys: loading the same file twice, or an older\n"
    "event after a newer one from the same agent, changes nothing. A line that is not a\n"
    "valid event is reported with its line number and skipped.\n"
    "Exit status: 0 all lines stored; 1 some lines rejected; 2 usage, input or store error.\n";

#define READ_CHUNK 65536
#define MAX_REPORTED 20

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Reads lines from a file descriptor, bounded by EV_MAX_BYTES per line. */
struct line_reader {
    int fd;
    struct dynbuf buf;
    size_t pos;
    bool eof, skipping; /* skipping: the rest of an over-long line */
};

/* 1: a line in *line and *len (NUL-terminated, valid until the next call); 0: end of input;
 * 2: a line that was too long (skipped); 3: no whole line within `wait_ms` (pipes);
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
            r->pos = 0;
        }
        if (r->buf.len > EV_MAX_BYTES) {
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
            return -EM_EIO;
        }
        if (got == 0) {
            r->eof = true;
            continue;
        }
        if (dynbuf_add(&r->buf, chunk, (size_t)got) < 0)
            return -EM_ENOMEM;
    }
}

struct totals {
    uint64_t lines, events, changed, rejected;
};

static int flush(struct store *s, struct ev *batch, size_t *n, struct totals *t)
{
    if (*n == 0)
        return 0;
    char reason[512];
    size_t changed;
    int rc = store_apply(s, batch, *n, &changed, reason, sizeof(reason));
    if (rc < 0)
        em_log(EM_LOG_ERROR, "%s", reason);
    else
        t->changed += changed;
    for (size_t i = 0; i < *n; i++)
        ev_free(&batch[i]);
    *n = 0;
    return rc;
}

int cmd_ingest(int argc, char **argv)
{
    const char *path = NULL, *store_opt = NULL, *batch_opt = NULL;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(ingest_usage, stdout);
            return BE_OK;
        }
        if (be_verbose(a) || be_opt(argc, argv, &i, "store", &store_opt, &bad) ||
            be_opt(argc, argv, &i, "batch", &batch_opt, &bad))
            continue;
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "em-backend ingest: unknown option '%s' (see --help)\n", a);
            return BE_USAGE;
        }
        if (path) {
            fprintf(stderr, "em-backend ingest: one input at a time\n");
            return BE_USAGE;
        }
        path = a;
    }
    long batch_max = 1000;
    if (bad || (batch_opt && !be_number("batch", batch_opt, 1, 100000, &batch_max)))
        return BE_USAGE;
    if (!path) {
        fprintf(stderr, "em-backend ingest: which file? ('-' for stdin; see --help)\n");
        return BE_USAGE;
    }
    const char *url = be_store_url(store_opt);
    if (!url)
        return BE_USAGE;
    bool from_stdin = strcmp(path, "-") == 0;
    int fd = from_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "em-backend ingest: %s: %s\n", path, strerror(errno));
        return BE_USAGE;
    }
    struct store *s;
    char reason[512];
    int rc = store_open(url, false, &s, reason, sizeof(reason));
    if (rc < 0) {
        fprintf(stderr, "em-backend ingest: %s\n", reason);
        if (!from_stdin)
            close(fd);
        return BE_USAGE;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    struct ev *batch = calloc((size_t)batch_max, sizeof(*batch));
    struct line_reader r = {fd, {0}, 0, false, false};
    dynbuf_init(&r.buf, EV_MAX_BYTES + 2 * READ_CHUNK);
    struct totals t = {0};
    size_t n = 0;
    int status = BE_OK;
    if (!batch) {
        status = BE_USAGE;
        goto out;
    }
    for (;;) {
        char *line;
        size_t len;
        /* From a pipe, commit what has come whenever the input pauses. */
        int got = next_line(&r, &line, &len, from_stdin && n > 0 ? 200 : -1);
        if (got == 3) {
            if (flush(s, batch, &n, &t) < 0) {
                status = BE_USAGE;
                break;
            }
            continue;
        }
        if (got < 0) {
            em_log(EM_LOG_ERROR, "%s: cannot read: %s", path, em_strerror(got));
            status = BE_USAGE;
            break;
        }
        if (got == 0)
            break;
        t.lines++;
        if (got == 2) {
            if (t.rejected++ < MAX_REPORTED)
                em_log(EM_LOG_WARN, "%s:%" PRIu64 ": line longer than %u bytes; skipped", path,
                       t.lines, EV_MAX_BYTES);
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
            status = BE_USAGE;
            break;
        }
    }
    if (status == BE_OK && flush(s, batch, &n, &t) < 0)
        status = BE_USAGE;
    for (size_t i = 0; i < n; i++)
        ev_free(&batch[i]);
    if (t.rejected > MAX_REPORTED)
        em_log(EM_LOG_WARN, "%s: %" PRIu64 " more rejected lines not shown", path,
               t.rejected - MAX_REPORTED);
    fprintf(stderr,
            "em-backend: ingest %s: %" PRIu64 " events, %" PRIu64 " stored, %" PRIu64
            " unchanged (repeated or stale), %" PRIu64 " rejected lines\n",
            from_stdin ? "stdin" : path, t.events, t.changed, t.events - t.changed, t.rejected);
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
