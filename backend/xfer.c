/* The transfer engine on libcurl's multi interface (xfer.h). */
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "backend.h"
#include "em_error.h"
#include "sha256.h"

struct xfer_state {
    CURL *h;
    FILE *out;
    struct hasher *hasher;
    struct sha256 hash;  /* the hasher's while chunks of this file are queued */
    size_t queued;       /* chunks of this file the hasher has not taken in yet */
    struct chunk *blk;   /* bytes received, not yet written (block_add) */
    double blk_since;    /* when its first byte came (monotonic seconds) */
    int64_t resume_from; /* bytes asked to skip in this attempt */
    bool checked;        /* the response code was looked at before the first byte */
    int werr;            /* errno of a failed write */
    bool over;           /* past max_bytes */
    int64_t max;         /* max_bytes */
    double retry_at;     /* monotonic seconds; 0: running */
    char scheme[16];
};

/* SHA-256 on a thread of its own, so that hashing (about half of the work on a large
 * file) overlaps receiving and writing. Received bytes gather in blocks of 1 MiB (libcurl
 * hands over 16 KiB at a time); a full block is written with one write(2) and then
 * queued for hashing as it is, not copied again. Blocks are hashed in the order they
 * came; the blocks queued are capped (the receiving side waits); the hasher keeps enough
 * blocks for reuse that none is allocated again in a steady state; a file's digest is
 * read only after hasher_drain().
 * The cap counts blocks, not bytes: a small file's block holds its few KiB, and a cap in
 * bytes (8 MiB) would let up to 128 blocks of 1 MiB pile up behind the hasher with 64 KiB
 * files. */
struct chunk {
    struct chunk *next;
    struct xfer_state *s;
    size_t len;
    unsigned char data[];
};

#define BLOCK_SIZE ((size_t)1 << 20)
#define HASH_QUEUE_BLOCKS 8
/* Those queued, and one being filled by each of the (default 8) transfers. */
#define BLOCKS_KEPT 16

struct hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, room;
    struct chunk *head, *tail;
    struct chunk *spare; /* blocks for reuse */
    size_t queued, nspare;
    bool stop, started;
};

/* Under h->mu: keeps `c` for reuse, or frees it. */
static void block_put_locked(struct hasher *h, struct chunk *c)
{
    if (h->nspare < BLOCKS_KEPT) {
        c->next = h->spare;
        h->spare = c;
        h->nspare++;
    } else {
        free(c);
    }
}

static struct chunk *block_get(struct hasher *h)
{
    pthread_mutex_lock(&h->mu);
    struct chunk *c = h->spare;
    if (c) {
        h->spare = c->next;
        h->nspare--;
    }
    pthread_mutex_unlock(&h->mu);
    if (!c && !(c = malloc(sizeof(*c) + BLOCK_SIZE)))
        return NULL;
    c->next = NULL;
    c->s = NULL;
    c->len = 0;
    return c;
}

static void *hasher_main(void *arg)
{
    struct hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->head && !h->stop)
            pthread_cond_wait(&h->work, &h->mu);
        if (!h->head)
            break;
        struct chunk *c = h->head;
        h->head = c->next;
        if (!h->head)
            h->tail = NULL;
        pthread_mutex_unlock(&h->mu);
        sha256_update(&c->s->hash, c->data, c->len);
        pthread_mutex_lock(&h->mu);
        c->s->queued--;
        h->queued--;
        block_put_locked(h, c);
        pthread_cond_broadcast(&h->room);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Waits until what is queued for `s` is hashed, then hashes `len` bytes here. */
static void hash_here(struct hasher *h, struct xfer_state *s, const void *p, size_t len)
{
    pthread_mutex_lock(&h->mu); /* after what is queued for it */
    while (s->queued)
        pthread_cond_wait(&h->room, &h->mu);
    pthread_mutex_unlock(&h->mu);
    sha256_update(&s->hash, p, len);
}

/* Queues block `c` of `s` (hashed here when the thread could not start). Takes `c`. */
static void hasher_put(struct hasher *h, struct xfer_state *s, struct chunk *c)
{
    if (!h->started) {
        hash_here(h, s, c->data, c->len);
        pthread_mutex_lock(&h->mu);
        block_put_locked(h, c);
        pthread_mutex_unlock(&h->mu);
        return;
    }
    c->next = NULL;
    c->s = s;
    pthread_mutex_lock(&h->mu);
    while (h->queued >= HASH_QUEUE_BLOCKS)
        pthread_cond_wait(&h->room, &h->mu);
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    h->queued++;
    s->queued++;
    pthread_cond_signal(&h->work);
    pthread_mutex_unlock(&h->mu);
}

/* Waits until every chunk of `s` is hashed: then s->hash is the caller's again. */
static void hasher_drain(struct hasher *h, struct xfer_state *s)
{
    pthread_mutex_lock(&h->mu);
    while (s->queued)
        pthread_cond_wait(&h->room, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

struct xfer {
    struct xfer_opts o;
    struct hasher hasher;
    CURLM *m;
    struct xfer_file **waiting; /* failed transiently, to be added again at retry_at */
    size_t nwaiting, cap_waiting;
    int running;
    char ssh_pub[4096]; /* ssh_key's .pub when there */
    char known_hosts[4096];
};

int xfer_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EM_EIO;
}

void xfer_global_cleanup(void)
{
    curl_global_cleanup();
}

struct xfer *xfer_new(const struct xfer_opts *o, char *why, size_t cap)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    x->o = *o;
    if (x->o.max_total <= 0)
        x->o.max_total = 8;
    if (x->o.max_per_host <= 0)
        x->o.max_per_host = 4;
    if (!x->o.protocols)
        x->o.protocols = "http,https,ftp,ftps,sftp";
    if (x->o.max_bytes <= 0)
        x->o.max_bytes = (int64_t)1 << 40;
    if (x->o.max_tries <= 0)
        x->o.max_tries = 5;
    if (x->o.backoff_s <= 0)
        x->o.backoff_s = 1;
    if (x->o.connect_timeout_s <= 0)
        x->o.connect_timeout_s = 30;
    if (x->o.stall_s <= 0)
        x->o.stall_s = 60;
    if (x->o.ssh_key) {
        snprintf(x->ssh_pub, sizeof(x->ssh_pub), "%s.pub", x->o.ssh_key);
        if (access(x->ssh_pub, R_OK) != 0)
            x->ssh_pub[0] = '\0';
    }
    if (!x->o.known_hosts) {
        const char *home = getenv("HOME");
        snprintf(x->known_hosts, sizeof(x->known_hosts), "%s/.ssh/known_hosts",
                 home ? home : "/nonexistent");
        x->o.known_hosts = x->known_hosts;
    }
    pthread_mutex_init(&x->hasher.mu, NULL);
    pthread_cond_init(&x->hasher.work, NULL);
    pthread_cond_init(&x->hasher.room, NULL);
    x->m = curl_multi_init();
    if (!x->m) {
        free(x);
        snprintf(why, cap, "cannot start libcurl");
        return NULL;
    }
    curl_multi_setopt(x->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)x->o.max_total);
    curl_multi_setopt(x->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)x->o.max_per_host);
    /* Without the thread, chunks are hashed where they arrive. */
    x->hasher.started = pthread_create(&x->hasher.thread, NULL, hasher_main, &x->hasher) == 0;
    return x;
}

/* Before the first byte of a response: a server that ignored the range starts over. */
static void check_response(struct xfer_file *f)
{
    struct xfer_state *s = f->st;
    s->checked = true;
    long code = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    bool http = strncmp(s->scheme, "http", 4) == 0;
    if (http && s->resume_from > 0 && code == 200) {
        /* The whole file comes again: drop what the partial holds. */
        if (ftruncate(fileno(s->out), 0) == 0 && fseek(s->out, 0, SEEK_SET) == 0) {
            hasher_drain(s->hasher, s);
            sha256_init(&s->hash);
            f->size = 0;
            s->resume_from = 0;
        } else {
            s->werr = errno;
        }
    }
}

/* Received bytes are written a block at a time (1 MiB, or what came in the last 0.2 s,
 * whichever is first), with one write(2) each, instead of one per 16 KiB callback: a
 * 512 MiB file took 32,768 write calls and as many hand-overs to the hasher. A killed
 * runner loses at most what the block held; the partial file on disk is always a prefix
 * of the source, and the next attempt resumes after it. The file is opened for appending
 * and stdio never buffers it (no fwrite). */
#define BLOCK_MAX_AGE_S 0.2

static int write_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t k = write(fd, c, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return -1;
        }
        c += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Writes the block of `s` and hands it to the hasher. 0, or -1 with errno (the block's
 * bytes are dropped then: the transfer fails). */
static int block_flush(struct xfer_state *s)
{
    struct chunk *c = s->blk;
    if (!c)
        return 0;
    s->blk = NULL;
    if (c->len && write_all(fileno(s->out), c->data, c->len) < 0) {
        int e = errno;
        pthread_mutex_lock(&s->hasher->mu);
        block_put_locked(s->hasher, c);
        pthread_mutex_unlock(&s->hasher->mu);
        errno = e;
        return -1;
    }
    if (!c->len) {
        pthread_mutex_lock(&s->hasher->mu);
        block_put_locked(s->hasher, c);
        pthread_mutex_unlock(&s->hasher->mu);
        return 0;
    }
    hasher_put(s->hasher, s, c);
    return 0;
}

/* Takes `len` received bytes of `s` into its block; -1 with errno when a write failed. */
static int block_add(struct xfer_state *s, const char *p, size_t len)
{
    while (len) {
        if (!s->blk) {
            if (!(s->blk = block_get(s->hasher))) { /* no memory for a block: straight on */
                if (write_all(fileno(s->out), p, len) < 0)
                    return -1;
                hash_here(s->hasher, s, p, len);
                return 0;
            }
            s->blk_since = be_mono_s();
        }
        size_t k = BLOCK_SIZE - s->blk->len < len ? BLOCK_SIZE - s->blk->len : len;
        memcpy(s->blk->data + s->blk->len, p, k);
        s->blk->len += k;
        p += k;
        len -= k;
        if ((s->blk->len == BLOCK_SIZE || be_mono_s() - s->blk_since >= BLOCK_MAX_AGE_S) &&
            block_flush(s) < 0)
            return -1;
    }
    return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct xfer_file *f = ctx;
    struct xfer_state *s = f->st;
    size_t len = size * n;
    if (!s->checked)
        check_response(f);
    if (s->werr)
        return 0;
    if ((uint64_t)f->size + len > (uint64_t)s->max) { /* more than declared, or no length */
        s->over = true;
        return 0;
    }
    if (block_add(s, p, len) < 0) {
        s->werr = errno ? errno : EIO;
        return 0;
    }
    f->size += (int64_t)len;
    f->received += (int64_t)len;
    return len;
}

/* Hashes what the partial file already holds, so the digest covers the whole file. */
static int hash_existing(struct xfer_file *f, int64_t *have)
{
    struct xfer_state *s = f->st;
    if (fseek(s->out, 0, SEEK_SET) != 0)
        return -EM_EIO;
    char buf[1 << 16];
    size_t n;
    *have = 0;
    FILE *in = fopen(f->partial, "rb");
    if (!in)
        return em_from_errno(errno);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        sha256_update(&s->hash, buf, n);
        *have += (int64_t)n;
    }
    int bad = ferror(in);
    fclose(in);
    if (bad)
        return -EM_EIO;
    return fseek(s->out, 0, SEEK_END) == 0 ? 0 : -EM_EIO;
}

/* The limits every transfer has: allowed protocols, redirects that keep the protocol of
 * `scheme` (so never reach file://, nor go from https to http), a size cap, timeouts and
 * TLS verification. One place, so that transfers and API requests cannot drift apart. */
static void limits(const struct xfer *x, CURL *h, const char *scheme, curl_off_t max)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, x->o.protocols);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, scheme);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, max);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, x->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, x->o.user_agent ? x->o.user_agent : "em-backend");
    if (x->o.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, x->o.ca_file);
    if (x->o.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    /* SFTP: key authentication only, and the server's host key must be in known_hosts
     * (an unknown or changed key is refused: libcurl rejects without a callback). */
    curl_easy_setopt(h, CURLOPT_SSH_AUTH_TYPES, (long)CURLSSH_AUTH_PUBLICKEY);
    if (x->o.ssh_key) {
        curl_easy_setopt(h, CURLOPT_SSH_PRIVATE_KEYFILE, x->o.ssh_key);
        curl_easy_setopt(h, CURLOPT_SSH_PUBLIC_KEYFILE, x->ssh_pub[0] ? x->ssh_pub : NULL);
    }
    if (x->o.known_hosts)
        curl_easy_setopt(h, CURLOPT_SSH_KNOWNHOSTS, x->o.known_hosts);
}

static int start(struct xfer *x, struct xfer_file *f)
{
    struct xfer_state *s = f->st;
    if (s->out) {
        (void)block_flush(s); /* none after ended(); a failure shows in the resume's hash */
        fclose(s->out);
    }
    s->out = fopen(f->partial, "ab");
    if (!s->out) {
        int rc = em_from_errno(errno);
        snprintf(f->error, sizeof(f->error), "%s: cannot write: %s", f->partial, strerror(errno));
        return rc;
    }
    hasher_drain(s->hasher, s); /* what an earlier attempt queued */
    sha256_init(&s->hash);
    int64_t have = 0;
    int rc = hash_existing(f, &have);
    if (rc < 0) {
        snprintf(f->error, sizeof(f->error), "%s: cannot read it back", f->partial);
        return rc;
    }
    f->size = have;
    s->resume_from = have;
    s->checked = false;
    s->werr = 0;
    s->over = false;
    s->retry_at = 0;
    s->max = x->o.max_bytes;
    if (!s->h && !(s->h = curl_easy_init()))
        return -EM_ENOMEM;
    CURL *h = s->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, f->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, f);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    /* Fewer, larger reads and writes for large files (libcurl's default is 16 KiB). */
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    limits(x, h, s->scheme, (curl_off_t)x->o.max_bytes);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, x->o.stall_s);
    if (have > 0)
        curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
    if (curl_multi_add_handle(x->m, h) != CURLM_OK)
        return -EM_EIO;
    x->running++;
    return 0;
}

/* Closes what a file holds: its partial file and its curl handle. */
static void release(struct xfer_file *f)
{
    if (!f->st)
        return;
    if (f->st->out)
        (void)block_flush(f->st); /* a cancelled transfer's last bytes, for a later resume */
    hasher_drain(f->st->hasher, f->st);
    if (f->st->out)
        fclose(f->st->out);
    if (f->st->h)
        curl_easy_cleanup(f->st->h);
    free(f->st);
    f->st = NULL;
}

int xfer_add(struct xfer *x, struct xfer_file *f)
{
    f->rc = 0;
    f->permanent = false;
    f->error[0] = '\0';
    f->sha256[0] = '\0';
    f->size = f->received = 0;
    f->total = f->want_size;
    f->tries = 0;
    f->st = calloc(1, sizeof(*f->st));
    if (!f->st)
        return -EM_ENOMEM;
    f->st->hasher = &x->hasher;
    const char *colon = strstr(f->url, "://");
    size_t n = colon ? (size_t)(colon - f->url) : 0;
    if (!n || n >= sizeof(f->st->scheme)) {
        snprintf(f->error, sizeof(f->error), "%s: not a URL", f->url);
        free(f->st);
        f->st = NULL;
        return -EM_EUSAGE;
    }
    for (size_t i = 0; i < n; i++)
        f->st->scheme[i] =
            (char)(f->url[i] >= 'A' && f->url[i] <= 'Z' ? f->url[i] + 32 : f->url[i]);
    int rc = start(x, f);
    if (rc < 0)
        release(f);
    return rc;
}

/* Whether curl's result (and the HTTP code) will go away by trying again. */
static bool transient(CURLcode r, long code)
{
    switch (r) {
    case CURLE_HTTP_RETURNED_ERROR:
        return code == 408 || code == 429 || code >= 500;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_FTP_ACCEPT_TIMEOUT:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
    case CURLE_SSH:
        return true;
    default:
        return false;
    }
}

/* Makes the verified partial the destination: fsync, rename, fsync the directory. */
static int commit(struct xfer_file *f)
{
    struct xfer_state *s = f->st;
    if (fflush(s->out) != 0 || fsync(fileno(s->out)) != 0) {
        snprintf(f->error, sizeof(f->error), "%s: cannot write: %s", f->partial, strerror(errno));
        return em_from_errno(errno);
    }
    fclose(s->out);
    s->out = NULL;
    if (rename(f->partial, f->dest) != 0) {
        snprintf(f->error, sizeof(f->error), "%s: cannot rename into place: %s", f->dest,
                 strerror(errno));
        return em_from_errno(errno);
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", f->dest);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return 0;
}

/* A file's attempt ended with `r`: done, retry later, or failed for good. Returns true
 * when the file is finished (done must be called). */
static bool ended(struct xfer *x, struct xfer_file *f, CURLcode r)
{
    struct xfer_state *s = f->st;
    long code = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t cl = -1;
    curl_easy_getinfo(s->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    curl_off_t retry_after = 0;
    curl_easy_getinfo(s->h, CURLINFO_RETRY_AFTER, &retry_after);
    f->tries++;
    bool permanent = false, failed = true;
    char why[512] = "";
    /* What the block holds goes to the file first: the size, the digest and a resume
     * look at the file. */
    if (block_flush(s) < 0 && !s->werr)
        s->werr = errno ? errno : EIO;
    if (s->werr) {
        snprintf(why, sizeof(why), "cannot write %s: %s", f->partial, strerror(s->werr));
        permanent = true;
        f->rc = em_from_errno(s->werr);
        /* A full disk keeps nothing half-written. */
        remove(f->partial);
    } else if (s->over || r == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, sizeof(why), "larger than the limit of %lld bytes",
                 (long long)x->o.max_bytes);
        permanent = true;
        f->rc = -EM_ELIMIT;
        remove(f->partial);
    } else if (r != CURLE_OK) {
        char *target = NULL;
        curl_easy_getinfo(s->h, CURLINFO_REDIRECT_URL, &target);
        if (r == CURLE_HTTP_RETURNED_ERROR)
            snprintf(why, sizeof(why), "HTTP %ld", code);
        else if (r == CURLE_UNSUPPORTED_PROTOCOL && target)
            snprintf(why, sizeof(why), "redirected to %.300s: another protocol, refused", target);
        else if (r == CURLE_UNSUPPORTED_PROTOCOL && code >= 300 && code < 400)
            snprintf(why, sizeof(why), "HTTP %ld: a redirect to another protocol, refused", code);
        else if (r == CURLE_TOO_MANY_REDIRECTS)
            snprintf(why, sizeof(why), "more than 10 redirects (a redirect loop?)");
        else
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(r));
        permanent = !transient(r, code);
        f->rc = permanent && (code == 404 || code == 410 || r == CURLE_REMOTE_FILE_NOT_FOUND ||
                              r == CURLE_FILE_COULDNT_READ_FILE)
                    ? -EM_ENOENT
                    : -EM_EIO;
        if (code == 416 || r == CURLE_RANGE_ERROR) {
            /* The range is past the end, or the server does not do ranges: what the
             * partial holds cannot be continued; the next attempt starts from zero. */
            remove(f->partial);
            permanent = false;
        }
    } else {
        int64_t expect = cl >= 0 ? s->resume_from + (int64_t)cl : -1;
        if (expect >= 0)
            f->total = expect;
        hasher_drain(s->hasher, s);
        sha256_hex(&s->hash, f->sha256);
        if (expect >= 0 && f->size != expect) {
            snprintf(why, sizeof(why), "%lld of %lld bytes arrived", (long long)f->size,
                     (long long)expect);
            f->rc = -EM_ETRUNCATED; /* transient: resume */
        } else if (f->want_size >= 0 && f->size != f->want_size) {
            snprintf(why, sizeof(why), "%lld bytes, the source says %lld", (long long)f->size,
                     (long long)f->want_size);
            permanent = true;
            f->rc = -EM_EVALUE;
            remove(f->partial);
        } else if (f->want_sha256[0] && strcmp(f->sha256, f->want_sha256) != 0) {
            snprintf(why, sizeof(why), "checksum mismatch: sha256 %s, the source says %s",
                     f->sha256, f->want_sha256);
            permanent = true;
            f->rc = -EM_EVALUE;
            remove(f->partial);
        } else {
            int rc = commit(f);
            failed = rc < 0;
            f->rc = rc;
            permanent = failed;
            if (failed)
                snprintf(why, sizeof(why), "%s", f->error);
        }
    }
    if (!failed) {
        f->error[0] = '\0';
        return true;
    }
    char msg[1024];
    snprintf(msg, sizeof(msg), "%s: %s", f->url, why);
    snprintf(f->error, sizeof(f->error), "%.250s", msg);
    if (permanent || f->tries >= x->o.max_tries) {
        f->permanent = permanent;
        if (f->rc == 0)
            f->rc = -EM_EIO;
        return true;
    }
    /* Transient: again after a back-off (or the server's Retry-After), resuming. */
    double wait = x->o.backoff_s;
    for (int i = 1; i < f->tries && wait < 60; i++)
        wait *= 2;
    if (wait > 60)
        wait = 60;
    if (retry_after > 0 && retry_after < 3600)
        wait = (double)retry_after;
    s->retry_at = be_mono_s() + wait;
    struct xfer_file **v = x->waiting;
    if (x->nwaiting == x->cap_waiting) {
        size_t c = x->cap_waiting ? 2 * x->cap_waiting : 16;
        v = realloc(x->waiting, c * sizeof(*v));
        if (!v) {
            f->rc = -EM_ENOMEM;
            return true;
        }
        x->waiting = v;
        x->cap_waiting = c;
    }
    x->waiting[x->nwaiting++] = f;
    f->rc = 0;
    return false;
}

int xfer_run(struct xfer *x, int timeout_ms, void (*done)(void *ctx, struct xfer_file *f),
             void *ctx)
{
    /* Files whose back-off is over start again. */
    double now = be_mono_s();
    for (size_t i = 0; i < x->nwaiting;) {
        struct xfer_file *f = x->waiting[i];
        if (f->st->retry_at > now) {
            i++;
            continue;
        }
        x->waiting[i] = x->waiting[--x->nwaiting];
        if (start(x, f) < 0) {
            f->permanent = true;
            if (f->rc == 0)
                f->rc = -EM_EIO;
            release(f);
            done(ctx, f);
        }
    }
    /* Until a file finishes, or timeout_ms. libcurl's sockets are waited on at most 20 ms
     * at a time: a transfer whose last bytes came in one perform is sometimes finished
     * only by the next, and libcurl then waits on no socket of it: a job of one 2-byte
     * file, from `job add --wait` to its end, took 250 ms instead of 50, 11 times in 15;
     * 1,000 small files took 0.90 s instead of 0.72. */
    double end = be_mono_s() + timeout_ms / 1000.0;
    int finished = 0;
    for (;;) {
        int still = 0;
        curl_multi_perform(x->m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(x->m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer_file *f = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            CURLcode r = msg->data.result;
            curl_multi_remove_handle(x->m, msg->easy_handle);
            x->running--;
            finished++;
            if (f && ended(x, f, r)) {
                release(f);
                done(ctx, f);
            }
        }
        now = be_mono_s();
        if (finished || now >= end || (x->running == 0 && x->nwaiting == 0))
            break;
        int ms = (int)((end - now) * 1000) + 1;
        if (x->running == 0) { /* only files waiting for their back-off */
            ms = ms < 1000 ? ms : 1000;
            struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            break;
        }
        int numfds = 0;
        curl_multi_poll(x->m, NULL, 0, ms < 20 ? ms : 20, &numfds);
    }
    return x->running + (int)x->nwaiting;
}

void xfer_cancel(struct xfer *x, struct xfer_file *f)
{
    if (!f->st)
        return;
    for (size_t i = 0; i < x->nwaiting; i++) {
        if (x->waiting[i] == f) {
            x->waiting[i] = x->waiting[--x->nwaiting];
            release(f);
            return;
        }
    }
    if (f->st->h && curl_multi_remove_handle(x->m, f->st->h) == CURLM_OK)
        x->running--;
    if (f->st->out)
        fflush(f->st->out);
    release(f);
}

void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    curl_multi_cleanup(x->m);
    free(x->waiting);
    if (x->hasher.started) {
        pthread_mutex_lock(&x->hasher.mu);
        x->hasher.stop = true;
        pthread_cond_signal(&x->hasher.work);
        pthread_mutex_unlock(&x->hasher.mu);
        pthread_join(x->hasher.thread, NULL);
    }
    while (x->hasher.spare) { /* the blocks kept for reuse */
        struct chunk *c = x->hasher.spare;
        x->hasher.spare = c->next;
        free(c);
    }
    pthread_mutex_destroy(&x->hasher.mu);
    pthread_cond_destroy(&x->hasher.work);
    pthread_cond_destroy(&x->hasher.room);
    free(x);
}

struct membuf {
    char *p;
    size_t len, max;
    bool over;
};

static size_t to_mem(char *p, size_t size, size_t n, void *ctx)
{
    struct membuf *m = ctx;
    size_t len = size * n;
    if (m->len + len > m->max) {
        m->over = true;
        return 0;
    }
    char *np = realloc(m->p, m->len + len + 1);
    if (!np)
        return 0;
    m->p = np;
    memcpy(m->p + m->len, p, len);
    m->len += len;
    m->p[m->len] = '\0';
    return len;
}

int xfer_get(const struct xfer *x, const char *url, size_t max, char **body, size_t *len, char *why,
             size_t cap)
{
    *body = NULL;
    *len = 0;
    CURL *h = curl_easy_init();
    if (!h)
        return -EM_ENOMEM;
    char scheme[16] = "";
    const char *colon = strstr(url, "://");
    if (colon && (size_t)(colon - url) < sizeof(scheme))
        memcpy(scheme, url, (size_t)(colon - url));
    struct membuf m = {NULL, 0, max, false};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_mem);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    limits(x, h, scheme, (curl_off_t)max);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    CURLcode r = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    int rc = 0;
    if (m.over || r == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, cap, "%.300s: the answer is larger than %zu bytes", url, max);
        rc = -EM_ELIMIT;
    } else if (r == CURLE_HTTP_RETURNED_ERROR) {
        snprintf(why, cap, "%.300s: HTTP %ld", url, code);
        rc = code == 404 || code == 410 ? -EM_ENOENT : -EM_EIO;
    } else if (r != CURLE_OK) {
        snprintf(why, cap, "%.300s: %s", url, curl_easy_strerror(r));
        rc = -EM_EIO;
    } else if (!m.p) {
        snprintf(why, cap, "%.300s: an empty answer", url);
        rc = -EM_EMALFORMED;
    }
    if (rc < 0) {
        free(m.p);
        return rc;
    }
    *body = m.p;
    *len = m.len;
    return 0;
}
