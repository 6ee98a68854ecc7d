/* xfer.h — the loaders' transfer engine: many files at once on libcurl's multi interface.
 *
 * Each file is fetched into a partial file beside its destination and renamed into
 * place only when complete and verified (size, the expected SHA-256 when one is known;
 * the SHA-256 is always computed and returned), after an fsync. A partial file left by a
 * failure or an earlier run is resumed (HTTP Range, FTP REST, SFTP offset); a server that
 * ignores the range makes the file start again from zero. Transient failures (timeouts,
 * resets, a cut connection, 5xx, 408, 429 with Retry-After) are retried with back-off;
 * permanent ones (404, 403, 401, 410, a checksum or size mismatch, a full disk, a bad
 * certificate, too many redirects, a file over the size limit) are not.
 *
 * Safety: only the protocols given are allowed, redirects never change the protocol (so
 * never reach file://), every file is capped at max_bytes, TLS peers are verified unless
 * insecure is set. Not thread-safe: one engine per thread.
 */
#ifndef EM_XFER_H
#define EM_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xfer_opts {
    int max_total;          /* transfers at once (default 8) */
    int max_per_host;       /* connections to one host (default 4) */
    const char *protocols;  /* allowed, comma-separated (default "http,https,ftp,ftps,sftp") */
    const char *ca_file;    /* CA bundle for TLS; NULL: the system's */
    bool insecure;          /* no TLS peer verification (tests only) */
    int64_t max_bytes;      /* per file (default 1 TiB) */
    int max_tries;          /* per file, for transient failures (default 5) */
    double backoff_s;       /* the first retry's wait, doubled each time up to 60 s (default 1) */
    long connect_timeout_s; /* default 30 */
    long stall_s;           /* no byte for this long is a (transient) failure (default 60) */
    const char *user_agent;
    const char *ssh_key;     /* SFTP: the private key (its .pub beside it when there) */
    const char *known_hosts; /* SFTP: the servers' host keys; one not in it is refused */
};

struct xfer_file {
    /* given */
    const char *url, *dest, *partial;
    char want_sha256[65]; /* "" when not known */
    int64_t want_size;    /* -1 when not known */
    void *tag;
    /* results, when done */
    int rc;          /* 0, or a negative EM_E* */
    bool permanent;  /* the failure will not go away by retrying */
    char error[256]; /* why, for people */
    char sha256[65];
    int64_t size;     /* bytes in the file (the partial while running) */
    int64_t total;    /* expected size when known, else -1 */
    int64_t received; /* bytes received in this run (a resume receives less than size) */
    int tries;
    /* internal */
    struct xfer_state *st;
};

struct xfer;

/* A new engine, or NULL with the reason. */
struct xfer *xfer_new(const struct xfer_opts *o, char *why, size_t cap);

/* Starts fetching `f` (which stays the caller's until done). Returns 0 or a negative EM_E*
 * (the partial file cannot be opened: f->error says why). */
int xfer_add(struct xfer *x, struct xfer_file *f);

/* Runs transfers for up to `timeout_ms`; calls `done` for each file that finished
 * (f->rc says how). Returns the number of files still running or waiting to retry. */
int xfer_run(struct xfer *x, int timeout_ms, void (*done)(void *ctx, struct xfer_file *f),
             void *ctx);

/* Stops `f` without calling `done`; its partial file stays for a later resume. */
void xfer_cancel(struct xfer *x, struct xfer_file *f);

void xfer_free(struct xfer *x);

/* Fetches a small answer (an API's JSON) into memory, blocking, with the engine's limits
 * (protocols, redirects, TLS) and at most `max` bytes: 0 and *body (malloc'd, NUL
 * terminated), or a negative EM_E* (EM_ENOENT for 404, EM_ELIMIT past `max`) with the
 * reason in `why`. */
int xfer_get(const struct xfer *x, const char *url, size_t max, char **body, size_t *len, char *why,
             size_t cap);

/* Initialises and cleans up libcurl for the process (call once each). */
int xfer_global_init(void);
void xfer_global_cleanup(void);

#endif
