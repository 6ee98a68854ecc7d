/* em-backend loaders: claims loader jobs from the store and runs them (issue 15). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "cli_common.h"
#include "em_error.h"
#include "sha256.h"
#include "jobs.h"
#include "loaders.h"
#include "log.h"
#include "store.h"
#include "xfer.h"

static const char loaders_usage[] =
    "Usage: em-backend loaders --store URL --out DIR [OPTIONS]\n"
    "\n"
    "Claims loader jobs (`em-backend job add`, or the --movies rule of consume and ingest)\n"
    "from the store and runs them: each job's files are fetched into\n"
    "DIR/<loader>/job-<id>/ with a metadata.json record (a stub at \"saving-data\" first,\n"
    "the complete record last). A job whose files are all fetched and verified waits at\n"
    "\"saving-data\" until an agent watching DIR (em-agent watch DIR) has seen its record\n"
    "and consume or ingest has stored the dataset; then it is \"complete\".\n"
    "\n"
    "Many runners, on one machine or several, can share a PostgreSQL store: each job is\n"
    "claimed by one, with a lease it renews; when a runner dies its lease runs out and\n"
    "another takes the job over, resuming the partial files. SQLite serves the runners of\n"
    "one machine.\n"
    "\n"
    "  --store URL        sqlite:PATH or postgresql://… [EM_BACKEND_STORE]\n"
    "  --out DIR          where datasets go [EM_BACKEND_OUT]\n"
    "  --workers N        jobs at once (default 4); their files share one transfer\n"
    "                     engine: at most 8 transfers, 4 per host\n"
    "  --once             run until no job is pending, then exit\n"
    "  --poll SECONDS     without --once, an idle runner looks for jobs whose back-off or\n"
    "                     lease ran out this often (default 1); a job added or retried\n"
    "                     wakes it at once (SQLite: within 20 ms; PostgreSQL: notified)\n"
    "  --runner NAME      this runner's name in the job table (default host:pid)\n"
    "  --lease SECONDS    how long a claim holds without renewal (default 60; renewed\n"
    "                     every second with the job's progress, when a cancel is seen)\n"
    "  --ca FILE          CA certificates for https:// and ftps:// (default the system's)\n"
    "  --max-bytes N      refuse a file larger than N bytes (default 1 TiB)\n"
    "  --tries N          attempts per file for transient failures, with back-off\n"
    "                     (default 5); then the job is pending again later, until its\n"
    "                     max_attempts\n"
    "  --backoff SECONDS  the first retry's wait, doubled up to 60 s (default 1)\n"
    "  --allow-file       also allow file:// URLs (off by default; movies from a share\n"
    "                     mounted here need it)\n"
    "  --insecure         do not verify TLS peers (tests only)\n"
    "  --idr-url URL      IDR's site, for its API and downloads (default\n"
    "                     https://idr.openmicroscopy.org)\n"
    "  --epfl-url URL     the EPFL hippocampus volume (default its documents.epfl.ch URL)\n"
    "  --empiar-url URL   EMPIAR's entry API (default https://www.ebi.ac.uk/empiar/api/entry)\n"
    "  --empiar-ftp URL   where EMPIAR's entries' files are listed and fetched (default\n"
    "                     ftp://ftp.ebi.ac.uk/empiar/world_availability)\n"
    "  --s3-url URL       the S3 endpoint for openorganelle, path style: URL/BUCKET/PATH\n"
    "                     (default https://s3.amazonaws.com)\n"
    "  --ssh-key FILE     sftp://: the private key to log in with (FILE.pub beside it);\n"
    "                     key authentication only\n"
    "  --known-hosts FILE sftp://: the servers' host keys (default ~/.ssh/known_hosts); a\n"
    "                     server whose key is not there is refused\n"
    "  --max-files N      files one job may fetch (a listing or a Zarr store's chunks;\n"
    "                     default 100000)\n"
    "\n"
    "SIGTERM or SIGINT: stop claiming, stop the transfers (partial files stay and are\n"
    "resumed), give the running jobs back (pending again) and exit 0.\n"
    "Exit status: 0 stopped, or --once done (even if some jobs failed: `job list` says\n"
    "which); 1 the store failed; 2 bad usage.\n";

enum {
    L_STORE,
    L_OUT,
    L_WORKERS,
    L_ONCE,
    L_RUNNER,
    L_LEASE,
    L_CA,
    L_MAX_BYTES,
    L_TRIES,
    L_BACKOFF,
    L_ALLOW_FILE,
    L_INSECURE,
    L_IDR,
    L_EPFL,
    L_EMPIAR,
    L_EMPIAR_FTP,
    L_S3,
    L_MAX_FILES,
    L_SSH_KEY,
    L_KNOWN_HOSTS,
    L_POLL,
    L_COUNT
};
static const struct emopt_spec loaders_opts[L_COUNT] = {
    [L_STORE] = {"store", 0, EMOPT_VALUE, true, false, NULL},
    [L_OUT] = {"out", 0, EMOPT_VALUE, true, false, NULL},
    [L_WORKERS] = {"workers", 0, EMOPT_VALUE, true, false, NULL},
    [L_ONCE] = {"once", 0, EMOPT_FLAG, false, false, NULL},
    [L_RUNNER] = {"runner", 0, EMOPT_VALUE, true, false, NULL},
    [L_LEASE] = {"lease", 0, EMOPT_VALUE, true, false, NULL},
    [L_CA] = {"ca", 0, EMOPT_VALUE, true, false, NULL},
    [L_MAX_BYTES] = {"max-bytes", 0, EMOPT_VALUE, true, false, NULL},
    [L_TRIES] = {"tries", 0, EMOPT_VALUE, true, false, NULL},
    [L_BACKOFF] = {"backoff", 0, EMOPT_VALUE, true, false, NULL},
    [L_ALLOW_FILE] = {"allow-file", 0, EMOPT_FLAG, true, false, NULL},
    [L_INSECURE] = {"insecure", 0, EMOPT_FLAG, false, false, NULL},
    [L_IDR] = {"idr-url", 0, EMOPT_VALUE, true, false, NULL},
    [L_EPFL] = {"epfl-url", 0, EMOPT_VALUE, true, false, NULL},
    [L_EMPIAR] = {"empiar-url", 0, EMOPT_VALUE, true, false, NULL},
    [L_EMPIAR_FTP] = {"empiar-ftp", 0, EMOPT_VALUE, true, false, NULL},
    [L_S3] = {"s3-url", 0, EMOPT_VALUE, true, false, NULL},
    [L_MAX_FILES] = {"max-files", 0, EMOPT_VALUE, true, false, NULL},
    [L_SSH_KEY] = {"ssh-key", 0, EMOPT_VALUE, true, false, NULL},
    [L_KNOWN_HOSTS] = {"known-hosts", 0, EMOPT_VALUE, true, false, NULL},
    [L_POLL] = {"poll", 0, EMOPT_VALUE, true, false, NULL},
};

static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
    (void)sig;
    stop_now = 1;
}

/* One file of a running job. */
struct jfile {
    struct xfer_file x;
    char *url, *dest, *partial;
    char name[256];
    bool finished;
    bool absent;   /* an optional file the source does not have */
    bool optional; /* a Zarr chunk: absent at the source (404) means "fill value", not an error */
    /* movie: the names the movie may have, tried in turn while the source says "no such
     * file" */
    char *cands[8];
    size_t ncand, cand;
};

/* Points `f` at URL `u` in job directory `dir`: its name, destination and partial file. */
static int set_url_named(struct jfile *f, const char *dir, const char *u, size_t ulen,
                         const char *name)
{
    free(f->url), free(f->dest), free(f->partial);
    f->url = strndup(u, ulen);
    f->dest = f->partial = NULL;
    if (!f->url)
        return -EM_ENOMEM;
    if (name)
        snprintf(f->name, sizeof(f->name), "%s", name);
    else if (loader_file_name(f->url, f->name, sizeof(f->name)) < 0)
        return -EM_EVALUE;
    size_t dl = strlen(dir) + strlen(f->name) + 16;
    f->dest = malloc(dl);
    f->partial = malloc(dl);
    if (!f->dest || !f->partial)
        return -EM_ENOMEM;
    snprintf(f->dest, dl, "%s/%s", dir, f->name);
    snprintf(f->partial, dl, "%s/.partial/%s", dir, f->name);
    f->x.url = f->url;
    f->x.dest = f->dest;
    f->x.partial = f->partial;
    return 0;
}

static int set_url(struct jfile *f, const char *dir, const char *u, size_t ulen)
{
    return set_url_named(f, dir, u, ulen, NULL);
}

/* BASE + PATH, PATH percent-encoded where a URL needs it. */
static char *join_url(const char *base, const char *path, size_t plen, const char *suffix)
{
    size_t bl = strlen(base), cap = bl + 3 * plen + strlen(suffix) + 2;
    char *u = malloc(cap);
    if (!u)
        return NULL;
    size_t k = (size_t)snprintf(u, cap, "%s%s", base, bl && base[bl - 1] == '/' ? "" : "/");
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c == '%' || c == '#' || c == '?' || c >= 127)
            k += (size_t)snprintf(u + k, cap - k, "%%%02X", c);
        else
            u[k++] = (char)c;
    }
    snprintf(u + k, cap - k, "%s", suffix);
    return u;
}

struct active {
    struct job j;
    char dir[2048], dataset[64], id[40], created[32];
    /* what a source loader learnt from its API: record fields (may be empty/NULL) */
    char source[32]; /* the record's source, when not the loader's name (reference §4) */
    char source_id[128], description[600];
    cJSON *core;  /* volume_shape, voxel_size_nm, data_type, … for metadata.core */
    cJSON *extra; /* what the source's API said, for additional_metadata (may be NULL) */
    struct jfile *files;
    size_t nfiles, nfinished;
    bool permanent, stubbed;
    char error[4400];
    time_t renewed;
    struct active *next;
};

struct runner {
    struct store *s;
    struct xfer *x;
    const char *out, *name;
    const char *idr_api, *idr_site, *epfl_url, *empiar_api, *empiar_ftp, *s3;
    long max_files;
    int lease;
    struct active *jobs;
    size_t njobs;
    unsigned long completed, failed, retried;
};

static void iso_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void new_uuid(char out[37])
{
    unsigned char b[16] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof(b), f) != sizeof(b)) {
        unsigned long long t = (unsigned long long)time(NULL) ^ (unsigned long long)getpid();
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)(i * 37);
    }
    if (f)
        fclose(f);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return em_from_errno(errno);
        *p = '/';
    }
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : em_from_errno(errno);
}

/* Writes `json` to DIR/metadata.json through a temporary name, synced. */
static int write_record(const char *dir, const cJSON *json)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/metadata.json", dir);
    snprintf(tmp, sizeof(tmp), "%s/.metadata.json.tmp", dir);
    char *text = cJSON_Print(json);
    if (!text)
        return -EM_ENOMEM;
    FILE *f = fopen(tmp, "wb");
    int rc = f ? 0 : em_from_errno(errno);
    if (f && (fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = em_from_errno(errno);
    if (f && fclose(f) != 0 && rc == 0)
        rc = em_from_errno(errno);
    cJSON_free(text);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = em_from_errno(errno);
    if (rc < 0)
        remove(tmp);
    return rc;
}

#define RECORD_FILES_MAX 1000 /* files listed by name in a record */

/* The dataset's record: the stub (status "saving-data"), the complete one, or "failed"
 * with the error (a stub already written is not left saying "saving-data"). */
static int record(struct active *a, const char *status)
{
    bool complete = strcmp(status, "complete") == 0;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return -EM_ENOMEM;
    char now[32];
    iso_now(now, sizeof(now));
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "source", a->source[0] ? a->source : a->j.loader);
    cJSON_AddStringToObject(o, "source_id", a->source_id[0] ? a->source_id : a->dataset);
    cJSON_AddStringToObject(o, "status", status);
    if (strcmp(status, "failed") == 0) {
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "message", a->error);
        cJSON_AddNumberToObject(err, "retry_count", a->j.attempts > 0 ? a->j.attempts - 1 : 0);
    }
    cJSON_AddStringToObject(o, "created_at", a->created);
    cJSON_AddStringToObject(o, "updated_at", now);
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON *core = cJSON_AddObjectToObject(md, "core");
    char desc[1200];
    snprintf(desc, sizeof(desc), "%zu file%s fetched by the %s loader from %s%s", a->nfiles,
             a->nfiles == 1 ? "" : "s", a->j.loader, a->nfiles ? a->files[0].url : "?",
             a->nfiles > 1 ? " and others" : "");
    cJSON_AddStringToObject(core, "description", a->description[0] ? a->description : desc);
    for (const cJSON *c = a->core ? a->core->child : NULL; c; c = c->next)
        cJSON_AddItemToObject(core, c->string, cJSON_Duplicate(c, true));
    cJSON *prov = cJSON_AddObjectToObject(md, "provenance");
    if (a->nfiles)
        cJSON_AddStringToObject(prov, "download_url", a->files[0].url);
    cJSON_AddStringToObject(prov, "processing_pipeline", "em-backend loaders");
    cJSON *files = cJSON_AddObjectToObject(o, "files");
    cJSON *add = cJSON_AddObjectToObject(files, "additional");
    int64_t total = 0;
    size_t listed = 0, absent = 0;
    for (size_t i = 0; i < a->nfiles; i++) {
        const struct jfile *f = &a->files[i];
        if (f->absent) {
            absent++;
            continue;
        }
        if (complete)
            total += f->x.size;
        /* A Zarr store's thousands of chunks are counted, not each listed. */
        if (listed++ >= RECORD_FILES_MAX)
            continue;
        cJSON *e = cJSON_AddObjectToObject(add, f->name);
        cJSON_AddStringToObject(e, "url", f->url);
        if (complete) {
            cJSON_AddNumberToObject(e, "size", (double)f->x.size);
            cJSON_AddStringToObject(e, "sha256", f->x.sha256);
        }
    }
    if (complete) {
        cJSON *tech = cJSON_AddObjectToObject(md, "technical");
        cJSON_AddNumberToObject(tech, "file_size_bytes", (double)total);
        if (a->nfiles == 1)
            cJSON_AddStringToObject(tech, "sha256", a->files[0].x.sha256);
        cJSON_AddStringToObject(tech, "compression", "none");
    }
    cJSON *extra = cJSON_AddObjectToObject(o, "additional_metadata");
    cJSON_AddNumberToObject(extra, "job_id", (double)a->j.id);
    if (listed > RECORD_FILES_MAX || absent) {
        cJSON_AddNumberToObject(extra, "files_total", (double)(listed));
        cJSON_AddNumberToObject(extra, "files_listed",
                                (double)(listed < RECORD_FILES_MAX ? listed : RECORD_FILES_MAX));
        cJSON_AddNumberToObject(extra, "chunks_absent", (double)absent);
    }
    for (const cJSON *c = a->extra ? a->extra->child : NULL; c; c = c->next)
        cJSON_AddItemToObject(extra, c->string, cJSON_Duplicate(c, true));
    int rc = write_record(a->dir, o);
    cJSON_Delete(o);
    return rc;
}

/* The stub's id and creation time, when an earlier attempt wrote one: kept. */
static void earlier_record(struct active *a)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/metadata.json", a->dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id"),
                *c = cJSON_GetObjectItemCaseSensitive(o, "created_at");
    if (cJSON_IsString(id) && strlen(id->valuestring) == 36)
        snprintf(a->id, sizeof(a->id), "%s", id->valuestring);
    if (cJSON_IsString(c))
        snprintf(a->created, sizeof(a->created), "%s", c->valuestring);
    cJSON_Delete(o);
}

static void active_free(struct active *a)
{
    for (size_t i = 0; i < a->nfiles; i++) {
        free(a->files[i].url);
        free(a->files[i].dest);
        free(a->files[i].partial);
        for (size_t k = 0; k < a->files[i].ncand; k++)
            free(a->files[i].cands[k]);
    }
    free(a->files);
    cJSON_Delete(a->core);
    cJSON_Delete(a->extra);
    job_free(&a->j);
    free(a);
}

static void on_done(void *ctx, struct xfer_file *xf)
{
    struct runner *r = ctx;
    struct jfile *f = (struct jfile *)xf;
    struct active *a = xf->tag;
    /* A movie not under this name: the next one it may have. */
    while (xf->rc == -EM_ENOENT && f->cand + 1 < f->ncand) {
        const char *next = f->cands[++f->cand];
        em_log(EM_LOG_DEBUG, "job %" PRId64 ": not there; trying %s", a->j.id, next);
        if (set_url(f, a->dir, next, strlen(next)) == 0 && xfer_add(r->x, xf) == 0)
            return;
    }
    if (xf->rc == -EM_ENOENT && f->optional) {
        xf->rc = 0; /* a chunk never written: the array's fill value */
        f->absent = true;
    }
    if (xf->rc == -EM_ENOENT && f->ncand > 1)
        snprintf(xf->error, sizeof(xf->error), "no movie beside %.200s (tried %zu names)",
                 cJSON_GetArrayItem(a->j.params, 1)->valuestring, f->ncand);
    f->finished = true;
    a->nfinished++;
    if (xf->rc < 0) {
        if (!a->error[0] ||
            (xf->permanent && !a->permanent)) /* the first, or the first permanent */
            snprintf(a->error, sizeof(a->error), "%s", xf->error);
        if (xf->permanent)
            a->permanent = true;
        em_log(EM_LOG_WARN, "job %" PRId64 ": %s%s", a->j.id, xf->error,
               xf->permanent ? " (not retried)" : "");
    } else {
        em_log(EM_LOG_INFO, "job %" PRId64 ": %s: %" PRId64 " bytes, sha256 %s", a->j.id, f->name,
               xf->size, xf->sha256);
    }
}

/* A file an earlier attempt fetched (it is only renamed into place once verified): its
 * size and digest from the disk, so it is not fetched again. */
static bool already_there(struct jfile *f)
{
    FILE *in = fopen(f->dest, "rb");
    if (!in)
        return false;
    struct sha256 h;
    sha256_init(&h);
    char buf[1 << 16];
    size_t n;
    int64_t size = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        sha256_update(&h, buf, n);
        size += (int64_t)n;
    }
    bool ok = !ferror(in);
    fclose(in);
    sha256_hex(&h, f->x.sha256);
    if (!ok || (f->x.want_sha256[0] && strcmp(f->x.sha256, f->x.want_sha256) != 0))
        return false;
    f->x.size = f->x.total = size;
    f->x.rc = 0;
    return true;
}

#define API_MAX (16u << 20) /* an API's JSON answer, at most */

/* A name an API gave for a file: used only if it cannot escape the directory. */
static bool safe_name(const char *n)
{
    if (!n[0] || n[0] == '.' || strlen(n) > 200)
        return false;
    for (const char *p = n; *p; p++)
        if ((unsigned char)*p < 32 || *p == '/' || *p == '\\' || *p == 127)
            return false;
    return true;
}

/* GETs `url` into *body (at most API_MAX bytes); a failure sets the job's error
 * (permanent unless the server or the network may recover). */
static int api_get(struct runner *r, struct active *a, const char *url, char **body, size_t *len)
{
    char why[512];
    int rc = xfer_get(r->x, url, API_MAX, body, len, why, sizeof(why));
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "%s", why);
        a->permanent = rc != -EM_EIO;
    }
    return rc;
}

/* api_get() of a JSON object. */
static cJSON *api_json(struct runner *r, struct active *a, const char *url)
{
    char *body;
    size_t len;
    if (api_get(r, a, url, &body, &len) < 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(body, len);
    free(body);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(a->error, sizeof(a->error), "%.300s: not a JSON object", url);
        a->permanent = true;
        return NULL;
    }
    return j;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- loaders that fetch many files: empiar (an FTP listing), openorganelle (a Zarr store) */

struct entry {
    char *name; /* in the job directory; may hold '/' (a Zarr store's keys) */
    char *url;
    int64_t size; /* -1: not known */
    bool optional;
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static void entries_free(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name), free(e->v[i].url);
    free(e->v);
}

static int entries_add(struct entries *e, const char *name, char *url, int64_t size, bool optional)
{
    if (!url)
        return -EM_ENOMEM;
    struct entry *v = em_grow(e->v, e->n, &e->cap, sizeof(*v), 64);
    char *n = v ? strdup(name) : NULL;
    if (!n) {
        free(url);
        return -EM_ENOMEM;
    }
    e->v = v;
    e->v[e->n++] = (struct entry){n, url, size, optional};
    return 0;
}

/* The job's files from a list. A name with '/' gets its directories made, and a partial
 * file named by its index (the list's order is the source's, the same at every attempt). */
static int take_entries(struct active *a, struct entries *e)
{
    struct jfile *v = calloc(e->n ? e->n : 1, sizeof(*v));
    if (!v)
        return -EM_ENOMEM;
    free(a->files);
    a->files = v;
    a->nfiles = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct jfile *f = &a->files[a->nfiles++];
        f->x.tag = a;
        f->x.want_size = e->v[i].size;
        f->optional = e->v[i].optional;
        if (strlen(e->v[i].name) >= sizeof(f->name))
            return -EM_EVALUE;
        int rc = set_url_named(f, a->dir, e->v[i].url, strlen(e->v[i].url), e->v[i].name);
        if (rc < 0)
            return rc;
        if (strchr(e->v[i].name, '/')) {
            char *slash = strrchr(f->dest, '/');
            *slash = '\0';
            rc = mkdir_p(f->dest);
            *slash = '/';
            if (rc < 0) {
                snprintf(a->error, sizeof(a->error), "%s: cannot make the directory: %s", f->dest,
                         em_strerror(rc));
                return rc;
            }
            snprintf(f->partial, strlen(a->dir) + strlen(f->name) + 16, "%s/.partial/%zu", a->dir,
                     i);
        }
    }
    return 0;
}

/* One line of a Unix-style FTP LIST: a regular file's name and size. */
static bool list_line(char *line, char **name, int64_t *size)
{
    if (line[0] != '-')
        return false; /* directories, links, totals */
    char *p = line, *fields[8];
    for (int k = 0; k < 8; k++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return false;
        fields[k] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (!*p)
            return false;
        *p++ = '\0';
    }
    while (*p == ' ')
        p++;
    p[strcspn(p, "\r")] = '\0';
    char *end;
    long long n = strtoll(fields[4], &end, 10);
    if (*end || n < 0 || !*p)
        return false;
    *name = p;
    *size = n;
    return true;
}

/*   empiar ENTRY   GET API/ENTRY/ → {"EMPIAR-ENTRY": {title, imagesets[{directory,
 *                  pixel_width (Å)}]}}; LIST FTP/ENTRY/DIRECTORY/ → its regular files, each
 *                  fetched and checked against the listed size */
static int empiar_job(struct runner *r, struct active *a, const char *arg)
{
    const char *id = strncmp(arg, "EMPIAR-", 7) == 0 ? arg + 7 : arg;
    char url[4096], key[32];
    snprintf(url, sizeof(url), "%s/%s/", r->empiar_api, id);
    cJSON *j = api_json(r, a, url);
    if (!j)
        return -EM_EIO;
    snprintf(key, sizeof(key), "EMPIAR-%s", id);
    cJSON *entry = cJSON_DetachItemFromObjectCaseSensitive(j, key);
    cJSON_Delete(j);
    const cJSON *set = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(entry, "imagesets"), 0);
    const char *dir = json_str(set, "directory");
    if (!cJSON_IsObject(entry) || (dir && !loader_safe_path(dir))) {
        snprintf(a->error, sizeof(a->error), "%s: %s", url,
                 entry ? "the image set's directory is not a plain relative path"
                       : "no entry of that number in the answer");
        a->permanent = true;
        cJSON_Delete(entry);
        return -EM_EVALUE;
    }
    snprintf(a->source, sizeof(a->source), "ebi");
    snprintf(a->source_id, sizeof(a->source_id), "%s", id);
    const char *title = json_str(entry, "title");
    snprintf(a->description, sizeof(a->description), "%s",
             title && title[0] ? title : "EBI EMPIAR dataset");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(set, "pixel_width");
    if (cJSON_IsNumber(pw) && pw->valuedouble > 0) {
        /* Å per pixel in x and y (the sections' spacing is only in free text) */
        double v[2] = {pw->valuedouble / 10, pw->valuedouble / 10};
        cJSON_AddItemToObject(a->core, "voxel_size_nm", cJSON_CreateDoubleArray(v, 2));
    }
    if ((a->extra = cJSON_CreateObject()))
        cJSON_AddItemToObject(a->extra, "empiar", entry);
    else
        cJSON_Delete(entry);
    snprintf(url, sizeof(url), "%s/%s/%s/", r->empiar_ftp, id, dir ? dir : "data");
    char *body;
    size_t len;
    int rc = api_get(r, a, url, &body, &len);
    if (rc < 0)
        return rc;
    struct entries e = {0};
    for (char *line = strtok(body, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        char *name;
        int64_t size;
        if (!list_line(line, &name, &size))
            continue;
        if (!safe_name(name)) {
            em_log(EM_LOG_WARN,
                   "job %" PRId64 ": %s: the listed name \"%.100s\" is not safe: skipped", a->j.id,
                   url, name);
            continue;
        }
        if ((long)e.n >= r->max_files) {
            snprintf(a->error, sizeof(a->error), "%s: more than %ld files (--max-files)", url,
                     r->max_files);
            a->permanent = true;
            rc = -EM_ELIMIT;
            break;
        }
        rc = entries_add(&e, name, join_url(url, name, strlen(name), ""), size, false);
    }
    free(body);
    if (rc == 0 && e.n == 0) {
        snprintf(a->error, sizeof(a->error), "%s: no files listed", url);
        a->permanent = true;
        rc = -EM_ENOENT;
    }
    if (rc == 0)
        rc = take_entries(a, &e);
    entries_free(&e);
    return rc;
}

/* "<i2" → "int16": a Zarr v2 dtype as the schema names it, or NULL. */
static const char *zarr_type(const char *dt)
{
    static const struct {
        const char *z, *name;
    } t[] = {{"u1", "uint8"},  {"u2", "uint16"}, {"u4", "uint32"},  {"i1", "int8"},
             {"i2", "int16"},  {"i4", "int32"},  {"f4", "float32"}, {"f8", "float64"},
             {"u8", "uint64"}, {"i8", "int64"}};
    if (!dt || strlen(dt) != 3 || !strchr("<>|", dt[0]))
        return NULL;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(dt + 1, t[i].z) == 0)
            return t[i].name;
    return NULL;
}

/* The chunks of one array (its .zarray), as entries under `local`/`prefix`. */
static int zarr_chunks(struct runner *r, struct active *a, struct entries *e, const char *base,
                       const char *local, const char *prefix, const cJSON *za)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(za, "shape");
    const cJSON *chunks = cJSON_GetObjectItemCaseSensitive(za, "chunks");
    const char *sep = json_str(za, "dimension_separator");
    int nd = cJSON_GetArraySize(shape);
    long long grid[8], idx[8] = {0};
    double count = 1;
    if (nd < 1 || nd > 8 || cJSON_GetArraySize(chunks) != nd ||
        (sep && strcmp(sep, ".") != 0 && strcmp(sep, "/") != 0)) {
        snprintf(a->error, sizeof(a->error), "%s%s.zarray: not an array's metadata", base, prefix);
        return -EM_EVALUE;
    }
    for (int i = 0; i < nd; i++) {
        double s = cJSON_GetArrayItem(shape, i)->valuedouble,
               c = cJSON_GetArrayItem(chunks, i)->valuedouble;
        if (!(s >= 0 && s < 1e15 && c >= 1 && c < 1e15)) {
            snprintf(a->error, sizeof(a->error), "%s%s.zarray: bad shape or chunks", base, prefix);
            return -EM_EVALUE;
        }
        grid[i] = (long long)ceil(s / c);
        count *= (double)grid[i];
    }
    if (count + (double)e->n > (double)r->max_files) {
        snprintf(a->error, sizeof(a->error),
                 "%s%s: %.0f chunks, more than one job fetches (--max-files %ld); choose a "
                 "smaller level",
                 base, prefix, count, r->max_files);
        return -EM_ELIMIT;
    }
    for (long long k = 0; k < (long long)count; k++) {
        char key[256], name[1500];
        size_t n = 0;
        for (int i = 0; i < nd; i++)
            n += (size_t)snprintf(key + n, sizeof(key) - n, "%s%lld", i ? (sep ? sep : ".") : "",
                                  idx[i]);
        snprintf(name, sizeof(name), "%s/%s%s", local, prefix, key);
        char *url = malloc(strlen(base) + strlen(prefix) + strlen(key) + 1);
        if (url)
            sprintf(url, "%s%s%s", base, prefix, key);
        int rc = entries_add(e, name, url, -1, true);
        if (rc < 0)
            return rc;
        for (int i = nd - 1; i >= 0 && ++idx[i] == grid[i]; i--)
            idx[i] = 0;
    }
    return 0;
}

/*   openorganelle BUCKET PATH
 *                  GET S3/BUCKET/PATH/.zmetadata (consolidated; else PATH/.zarray alone):
 *                  every metadata file, then every array's chunks (a chunk the store does
 *                  not have is its fill value, not an error), into DIR/<last part of PATH>/ */
static int zarr_job(struct runner *r, struct active *a, const char *bucket, const char *path)
{
    char base[4096];
    snprintf(base, sizeof(base), "%s/%s/%s/", r->s3, bucket, path);
    const char *local = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char url[4200], why[512];
    snprintf(url, sizeof(url), "%s.zmetadata", base);
    char *body;
    size_t len;
    int rc = xfer_get(r->x, url, API_MAX, &body, &len, why, sizeof(why));
    cJSON *meta = NULL, *j = NULL;
    struct entries e = {0};
    if (rc == 0) {
        j = cJSON_ParseWithLength(body, len);
        meta = cJSON_GetObjectItemCaseSensitive(j, "metadata");
        free(body);
        char name[600];
        snprintf(name, sizeof(name), "%s/.zmetadata", local);
        rc = entries_add(&e, name, strdup(url), -1, false);
        if (rc == 0 && !cJSON_IsObject(meta)) {
            snprintf(a->error, sizeof(a->error), "%s: not consolidated Zarr metadata", url);
            rc = -EM_EVALUE;
        }
    } else if (rc == -EM_ENOENT) {
        /* Not consolidated: PATH is one array. */
        snprintf(url, sizeof(url), "%s.zarray", base);
        rc = xfer_get(r->x, url, API_MAX, &body, &len, why, sizeof(why));
        if (rc == 0) {
            j = cJSON_CreateObject();
            meta = cJSON_AddObjectToObject(j, "metadata");
            cJSON *za = cJSON_ParseWithLength(body, len);
            free(body);
            cJSON_AddItemToObject(meta, ".zarray", za ? za : cJSON_CreateNull());
            char name[600];
            snprintf(url, sizeof(url), "%s.zattrs", base);
            snprintf(name, sizeof(name), "%s/.zattrs", local);
            rc = entries_add(&e, name, strdup(url), -1, true);
        } else {
            snprintf(a->error, sizeof(a->error), "%s", why);
        }
    } else {
        snprintf(a->error, sizeof(a->error), "%s", why);
    }
    if (rc < 0 && rc != -EM_ENOMEM)
        a->permanent = rc != -EM_EIO;
    /* The metadata files first, then the chunks. */
    const cJSON *m;
    int arrays = 0;
    const cJSON *only = NULL;
    const cJSON *list = rc == 0 ? meta : NULL;
    cJSON_ArrayForEach(m, list)
    {
        if (!loader_safe_path(m->string)) {
            snprintf(a->error, sizeof(a->error), "%s: the key \"%.100s\" is not a plain path", base,
                     m->string);
            a->permanent = true;
            rc = -EM_EVALUE;
            break;
        }
        char name[600];
        snprintf(name, sizeof(name), "%s/%s", local, m->string);
        char *u = malloc(strlen(base) + strlen(m->string) + 1);
        if (u)
            sprintf(u, "%s%s", base, m->string);
        /* Consolidated metadata may name files the store never wrote (an empty .zattrs):
         * .zmetadata holds their content anyway. */
        if ((rc = entries_add(&e, name, u, -1, true)) < 0)
            break;
    }
    list = rc == 0 ? meta : NULL;
    cJSON_ArrayForEach(m, list)
    {
        size_t kl = strlen(m->string);
        if (kl < 7 || strcmp(m->string + kl - 7, ".zarray") != 0 ||
            (kl > 7 && m->string[kl - 8] != '/'))
            continue;
        char prefix[1100];
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(kl - 7), m->string);
        if ((rc = zarr_chunks(r, a, &e, base, local, prefix, m)) < 0) {
            a->permanent = true;
            break;
        }
        arrays++;
        only = m;
    }
    if (rc == 0 && arrays == 0) {
        snprintf(a->error, sizeof(a->error), "%s: no arrays in the store", base);
        a->permanent = true;
        rc = -EM_ENOENT;
    }
    if (rc == 0) {
        snprintf(a->source, sizeof(a->source), "openorganelle");
        snprintf(a->source_id, sizeof(a->source_id), "%.120s", path);
        snprintf(a->description, sizeof(a->description), "OpenOrganelle %s/%s (%d array%s)", bucket,
                 path, arrays, arrays == 1 ? "" : "s");
        if (arrays == 1) {
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(only, "shape");
            const char *type = zarr_type(json_str(only, "dtype"));
            if (cJSON_GetArraySize(shape) >= 2 && cJSON_GetArraySize(shape) <= 4)
                cJSON_AddItemToObject(a->core, "volume_shape", cJSON_Duplicate(shape, true));
            /* the schema's list has no 64-bit integers */
            if (type && strcmp(type, "uint64") != 0 && strcmp(type, "int64") != 0)
                cJSON_AddStringToObject(a->core, "data_type", type);
        }
        if ((a->extra = cJSON_CreateObject())) {
            cJSON_AddStringToObject(a->extra, "s3_url", base);
            cJSON_AddNumberToObject(a->extra, "arrays", arrays);
        }
        rc = take_entries(a, &e);
    }
    cJSON_Delete(j);
    entries_free(&e);
    return rc;
}

/* The source loaders: what to fetch and what the record says, from the source's API.
 *   idr IMAGE      GET API/api/v0/m/images/IMAGE/ → data.Name; the file from
 *                  SITE/webclient/render_image_download/IMAGE/ under that name
 *   dvid SERVER UUID INSTANCE X0,Y0,Z0,DX,DY,DZ
 *                  GET SERVER/api/node/UUID/INSTANCE/info → type, voxel size, extents
 *                  (X,Y,Z, MaxPoint inclusive); then raw/0_1_2/DX_DY_DZ/X0_Y0_Z0, whose
 *                  size must be DX·DY·DZ·bytes per voxel
 *   epfl [URL]     the CA1 hippocampus volume (one TIFF, 5 nm voxels) */
static int source_job(struct runner *r, struct active *a, const char **args, size_t n)
{
    struct jfile *f = &a->files[0];
    a->nfiles = 1;
    f->x.want_size = -1;
    f->x.tag = a;
    a->core = cJSON_CreateObject();
    if (!a->core)
        return -EM_ENOMEM;
    char url[4096];
    int rc;
    if (strcmp(a->j.loader, "empiar") == 0)
        return empiar_job(r, a, args[0]);
    if (strcmp(a->j.loader, "openorganelle") == 0)
        return zarr_job(r, a, args[0], args[1]);
    if (strcmp(a->j.loader, "idr") == 0) {
        snprintf(url, sizeof(url), "%s/api/v0/m/images/%s/", r->idr_api, args[0]);
        cJSON *j = api_json(r, a, url);
        if (!j)
            return -EM_EIO;
        const char *name = json_str(cJSON_GetObjectItemCaseSensitive(j, "data"), "Name");
        if (!name || !safe_name(name)) {
            snprintf(a->error, sizeof(a->error),
                     "idr %s: the image's name %s%s%s is not a safe file name", args[0],
                     name ? "\"" : "", name ? name : "(missing)", name ? "\"" : "");
            a->permanent = true;
            cJSON_Delete(j);
            return -EM_EVALUE;
        }
        snprintf(a->source_id, sizeof(a->source_id), "IDR-%s", args[0]);
        snprintf(a->description, sizeof(a->description), "%s", name);
        snprintf(url, sizeof(url), "%s/webclient/render_image_download/%s/", r->idr_site, args[0]);
        rc = set_url_named(f, a->dir, url, strlen(url), name);
        cJSON_Delete(j);
        return rc;
    }
    if (strcmp(a->j.loader, "epfl") == 0) {
        const char *u = n ? args[0] : r->epfl_url;
        snprintf(a->source_id, sizeof(a->source_id), "EPFL-CA1-HIPPOCAMPUS");
        snprintf(a->description, sizeof(a->description),
                 "5x5x5µm section from CA1 hippocampus region");
        double v[3] = {5, 5, 5};
        cJSON_AddItemToObject(a->core, "voxel_size_nm", cJSON_CreateDoubleArray(v, 3));
        cJSON_AddStringToObject(a->core, "modality", "FIB-SEM");
        return set_url(f, a->dir, u, strlen(u));
    }
    /* dvid */
    long long box[6];
    sscanf(args[3], "%lld,%lld,%lld,%lld,%lld,%lld", &box[0], &box[1], &box[2], &box[3], &box[4],
           &box[5]);
    snprintf(url, sizeof(url), "%s/api/node/%s/%s/info", args[0], args[1], args[2]);
    cJSON *j = api_json(r, a, url);
    if (!j)
        return -EM_EIO;
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(j, "Extended");
    const cJSON *val = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ext, "Values"), 0);
    const char *type = json_str(val, "DataType");
    int bytes = !type                         ? 0
                : strcmp(type, "uint8") == 0  ? 1
                : strcmp(type, "uint16") == 0 ? 2
                : strcmp(type, "uint32") == 0 ? 4
                : strcmp(type, "uint64") == 0 ? 8
                                              : 0;
    const cJSON *extents = cJSON_GetObjectItemCaseSensitive(j, "Extents");
    const cJSON *maxp = cJSON_GetObjectItemCaseSensitive(extents, "MaxPoint");
    const cJSON *minp = cJSON_GetObjectItemCaseSensitive(extents, "MinPoint");
    rc = 0;
    if (!bytes) {
        snprintf(a->error, sizeof(a->error), "dvid %s: data type %s is not one this loader reads",
                 args[2], type ? type : "(missing)");
        rc = -EM_EVALUE;
    }
    for (int i = 0; rc == 0 && i < 3; i++) {
        const cJSON *lo = cJSON_GetArrayItem(minp, i), *hi = cJSON_GetArrayItem(maxp, i);
        if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || box[i] < (long long)lo->valuedouble ||
            box[i] + box[i + 3] - 1 > (long long)hi->valuedouble) {
            snprintf(a->error, sizeof(a->error),
                     "dvid %s: the box %s lies outside the volume's extents", args[2], args[3]);
            rc = -EM_EVALUE;
        }
    }
    if (rc < 0) {
        a->permanent = true;
        cJSON_Delete(j);
        return rc;
    }
    /* (dz, dy, dx): X fastest, as DVID sends it. */
    int shape[3] = {(int)box[5], (int)box[4], (int)box[3]};
    cJSON_AddItemToObject(a->core, "volume_shape", cJSON_CreateIntArray(shape, 3));
    cJSON_AddStringToObject(a->core, "data_type", type);
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(ext, "VoxelSize");
    if (cJSON_GetArraySize(vs) == 3) {
        double v[3] = {cJSON_GetArrayItem(vs, 2)->valuedouble,
                       cJSON_GetArrayItem(vs, 1)->valuedouble,
                       cJSON_GetArrayItem(vs, 0)->valuedouble};
        cJSON_AddItemToObject(a->core, "voxel_size_nm", cJSON_CreateDoubleArray(v, 3));
    }
    snprintf(a->source, sizeof(a->source), "flyem"); /* the schema's name for DVID's data */
    snprintf(a->source_id, sizeof(a->source_id), "%s/%s/%s", args[1], args[2], args[3]);
    snprintf(a->description, sizeof(a->description),
             "DVID %s %s, %lldx%lldx%lld voxels at %lld,%lld,%lld", args[2], args[1], box[3],
             box[4], box[5], box[0], box[1], box[2]);
    char name[256];
    snprintf(name, sizeof(name), "%s_%lld_%lld_%lld_%lldx%lldx%lld.raw", args[2], box[0], box[1],
             box[2], box[3], box[4], box[5]);
    snprintf(url, sizeof(url), "%s/api/node/%s/%s/raw/0_1_2/%lld_%lld_%lld/%lld_%lld_%lld", args[0],
             args[1], args[2], box[3], box[4], box[5], box[0], box[1], box[2]);
    f->x.want_size = box[3] * box[4] * box[5] * bytes;
    cJSON_Delete(j);
    return safe_name(name) ? set_url_named(f, a->dir, url, strlen(url), name) : -EM_EVALUE;
}

/* The record's stub, and the dataset's id in the job row (what an agent's sighting is
 * matched with). */
static int stub(struct runner *r, struct active *a)
{
    int rc = record(a, "saving-data");
    if (rc == 0)
        a->stubbed = true;
    if (rc < 0) {
        snprintf(a->error, sizeof(a->error), "%s/metadata.json: cannot write: %s", a->dir,
                 em_strerror(rc));
        return rc;
    }
    char reason[512];
    rc = jobs_set_dataset(r->s, a->j.id, r->name, a->id, a->dir, reason, sizeof(reason));
    if (rc < 0)
        em_log(EM_LOG_WARN, "job %" PRId64 ": cannot record its dataset id: %s", a->j.id, reason);
    return 0;
}

/* Hands the job's files to the engine (those an earlier attempt fetched are done). */
static int add_files(struct runner *r, struct active *a)
{
    int rc = 0;
    for (size_t i = 0; i < a->nfiles && rc == 0; i++) {
        struct jfile *f = &a->files[i];
        if (already_there(f)) { /* fetched and verified by an earlier attempt */
            f->finished = true;
            a->nfinished++;
            continue;
        }
        rc = xfer_add(r->x, &f->x);
        if (rc < 0) {
            snprintf(a->error, sizeof(a->error), "%s", f->x.error);
            for (size_t k = 0; k < i; k++)
                if (!a->files[k].finished)
                    xfer_cancel(r->x, &a->files[k].x);
        }
    }
    return rc;
}

/* Starts a claimed job: its directory, its record's stub, its files. */
static int start_job(struct runner *r, struct active *a)
{
    snprintf(a->dataset, sizeof(a->dataset), "job-%" PRId64, a->j.id);
    snprintf(a->dir, sizeof(a->dir), "%s/%s/%s", r->out, a->j.loader, a->dataset);
    char why[256];
    size_t n = (size_t)cJSON_GetArraySize(a->j.params);
    const char **args = calloc(n + 1, sizeof(*args));
    if (!args)
        return -EM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetArrayItem(a->j.params, (int)i);
        args[i] = cJSON_IsString(p) ? p->valuestring : "";
    }
    int rc = loader_check(a->j.loader, args, n, why, sizeof(why));
    if (rc < 0) {
        free(args);
        snprintf(a->error, sizeof(a->error), "%s", why);
        a->permanent = true;
        return rc;
    }
    char partials[2100];
    snprintf(partials, sizeof(partials), "%s/.partial", a->dir);
    if ((rc = mkdir_p(partials)) < 0) {
        free(args);
        snprintf(a->error, sizeof(a->error), "%s: cannot make the directory: %s", partials,
                 em_strerror(rc));
        return rc;
    }
    new_uuid(a->id);
    iso_now(a->created, sizeof(a->created));
    earlier_record(a);
    a->files = calloc(n ? n : 1, sizeof(*a->files));
    if (!a->files) {
        free(args);
        return -EM_ENOMEM;
    }
    bool movie = strcmp(a->j.loader, "movie") == 0;
    static const char *const sources[] = {"idr", "dvid", "epfl", "empiar", "openorganelle"};
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        if (strcmp(a->j.loader, sources[i]) != 0)
            continue;
        rc = source_job(r, a, args, n);
        free(args);
        if (rc == 0)
            rc = stub(r, a);
        return rc == 0 ? add_files(r, a) : rc;
    }
    for (size_t i = 0; i < (movie ? 1 : n) && rc == 0; i++) {
        struct jfile *f = &a->files[i];
        if (movie) {
            /* EPU writes the movie beside the manifest: its name without ".xml" and one
             * of these endings, depending on the camera and the settings. */
            static const char *const endings[] = {"_Fractions.tiff", "_Fractions.mrc", "_EER.eer",
                                                  ".tiff",           ".eer",           ".mrc"};
            size_t plen = strlen(args[1]) - 4;
            for (size_t k = 0; k < sizeof(endings) / sizeof(endings[0]) && rc == 0; k++)
                if (!(f->cands[f->ncand++] = join_url(args[0], args[1], plen, endings[k])))
                    rc = -EM_ENOMEM;
            if (rc == 0)
                rc = set_url(f, a->dir, f->cands[0], strlen(f->cands[0]));
            f->x.want_size = -1;
            f->x.tag = a;
            a->nfiles++;
            continue;
        }
        const char *hash = strstr(args[i], "#sha256=");
        rc = set_url(f, a->dir, args[i], hash ? (size_t)(hash - args[i]) : strlen(args[i]));
        /* The same name twice: the later ones get 2-, 3-, … */
        for (size_t k = 0, dup = 1; rc == 0 && k < i; k++) {
            if (strcmp(a->files[k].name, f->name) == 0) {
                char again[256];
                snprintf(again, sizeof(again), "%zu-%.200s", ++dup, f->name);
                char *u = f->url; /* set_url_named() frees what f holds */
                f->url = NULL;
                rc = set_url_named(f, a->dir, u, strlen(u), again);
                free(u);
                k = (size_t)-1;
            }
        }
        f->x.want_size = -1;
        if (hash)
            snprintf(f->x.want_sha256, sizeof(f->x.want_sha256), "%s", hash + 8);
        f->x.tag = a;
        a->nfiles++;
    }
    free(args);
    if (rc == 0)
        rc = stub(r, a);
    return rc == 0 ? add_files(r, a) : rc;
}

static void renew(struct runner *r, struct active *a);

/* On a terminal, once a second: jobs running, files done, bytes and the rate. */
static void progress_line(struct runner *r, time_t secs)
{
    static int64_t last;
    int64_t bytes = 0;
    size_t files = 0, done = 0;
    for (const struct active *a = r->jobs; a; a = a->next) {
        files += a->nfiles;
        done += a->nfinished < a->nfiles ? a->nfinished : a->nfiles;
        for (size_t i = 0; i < a->nfiles; i++)
            bytes += a->files[i].x.received;
    }
    double rate = secs > 0 && bytes >= last ? (double)(bytes - last) / (double)secs : 0;
    last = bytes;
    fprintf(
        stderr,
        "\r\033[K%zu job%s running, %zu/%zu files, %.1f MB, %.1f MB/s; %lu complete, %lu failed",
        r->njobs, r->njobs == 1 ? "" : "s", done, files, (double)bytes / 1e6, rate / 1e6,
        r->completed, r->failed);
}

static void finish_job(struct runner *r, struct active *a)
{
    renew(r, a); /* the final bytes into the job row */
    char reason[512];
    const char *status;
    int rc = 0;
    if (a->error[0] == '\0') {
        rc = record(a, "complete");
        if (rc < 0) {
            snprintf(a->error, sizeof(a->error), "%s/metadata.json: cannot write: %s", a->dir,
                     em_strerror(rc));
            a->permanent = true;
        }
    }
    char partials[2100];
    snprintf(partials, sizeof(partials), "%s/.partial", a->dir);
    rmdir(partials); /* when empty: partial files stay for a resume */
    if (a->error[0] == '\0') {
        /* Complete once an agent has seen the output and the store has the dataset. */
        status = "saving-data";
        r->completed++;
        em_log(EM_LOG_INFO, "job %" PRId64 ": files fetched and verified, waiting for an agent: %s",
               a->j.id, a->dir);
    } else if (a->permanent) {
        status = "failed";
        r->failed++;
        em_log(EM_LOG_WARN, "job %" PRId64 ": failed: %s", a->j.id, a->error);
    } else {
        status = "retry";
        r->retried++;
        em_log(EM_LOG_WARN, "job %" PRId64 ": attempt %d failed (%s); pending again", a->j.id,
               a->j.attempts, a->error);
    }
    /* A job that failed for good says so in its record (an agent may have seen the
     * stub); one that failed before writing anything leaves no directory. */
    if (a->error[0] && a->stubbed && (a->permanent || a->j.attempts >= a->j.max_attempts) &&
        record(a, "failed") < 0)
        em_log(EM_LOG_WARN, "job %" PRId64 ": %s/metadata.json: cannot write", a->j.id, a->dir);
    if (a->permanent)
        rmdir(a->dir);
    rc = jobs_finish(r->s, a->j.id, r->name, status, a->error[0] ? a->error : NULL,
                     a->error[0] ? NULL : a->dir, a->error[0] ? NULL : a->id, 30, reason,
                     sizeof(reason));
    struct job now;
    if (rc == 0 && !a->error[0] && jobs_get(r->s, a->j.id, &now, reason, sizeof(reason)) == 1) {
        if (strcmp(now.status, "complete") == 0) {
            rc = 1; /* an agent saw the record before this runner got here */
            em_log(EM_LOG_INFO, "job %" PRId64 ": complete (the store had its dataset already)",
                   a->j.id);
        }
        job_free(&now);
    }
    if (rc < 0)
        em_log(EM_LOG_ERROR, "job %" PRId64 ": cannot record its end: %s", a->j.id, reason);
    else if (rc == 0)
        em_log(EM_LOG_WARN, "job %" PRId64 ": no longer this runner's (cancelled or taken over)",
               a->j.id);
}

static void drop_job(struct runner *r, struct active *a, const char *why)
{
    for (size_t i = 0; i < a->nfiles; i++)
        if (!a->files[i].finished)
            xfer_cancel(r->x, &a->files[i].x);
    em_log(EM_LOG_WARN, "job %" PRId64 ": stopped: %s", a->j.id, why);
}

static void renew(struct runner *r, struct active *a)
{
    int64_t done = 0, total = 0;
    for (size_t i = 0; i < a->nfiles; i++) {
        done += a->files[i].x.size;
        if (total >= 0 && a->files[i].x.total >= 0)
            total += a->files[i].x.total;
        else
            total = -1;
    }
    char reason[512];
    int rc = jobs_renew(r->s, a->j.id, r->name, r->lease, done, total, reason, sizeof(reason));
    a->renewed = time(NULL);
    if (rc < 0)
        em_log(EM_LOG_WARN, "job %" PRId64 ": lease not renewed: %s", a->j.id, reason);
    if (rc == 0) {
        drop_job(r, a, "cancelled, or taken over by another runner");
        a->nfinished = a->nfiles + 1; /* gone: no finish */
    }
}

static int loaders_main(const struct emopt *o)
{
    size_t nargs;
    emopt_args(o, &nargs);
    if (nargs)
        return emopt_usage_error(o, "no arguments: jobs come from the store (`job add`)");
    const char *url = be_store_url(emopt_get(o, L_STORE));
    const char *out = emopt_get(o, L_OUT);
    if (!url)
        return BE_USAGE;
    if (!out)
        return emopt_usage_error(o, "where do datasets go? give --out DIR");
    long workers = 4, lease = 60, tries = 5, max_files = 100000;
    double backoff = 1, poll = 1, max_bytes = (double)((int64_t)1 << 40);
    if (!emopt_long(o, L_WORKERS, 1, 256, &workers) || !emopt_long(o, L_LEASE, 3, 86400, &lease) ||
        !emopt_long(o, L_TRIES, 1, 100, &tries) ||
        !emopt_long(o, L_MAX_FILES, 1, 10000000, &max_files) ||
        !emopt_double(o, L_BACKOFF, 0.01, 3600, &backoff) ||
        !emopt_double(o, L_POLL, 0.05, 3600, &poll) ||
        !emopt_double(o, L_MAX_BYTES, 1, 9.0e18, &max_bytes))
        return BE_USAGE;
    char name[256];
    if (emopt_get(o, L_RUNNER)) {
        snprintf(name, sizeof(name), "%s", emopt_get(o, L_RUNNER));
    } else {
        char host[200] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
    }
    int rc = mkdir_p(out);
    if (rc < 0) {
        fprintf(stderr, "em-backend: %s: cannot make the directory: %s\n", out, em_strerror(rc));
        return BE_USAGE;
    }
    struct store *s;
    char reason[512];
    rc = store_open(url, false, &s, reason, sizeof(reason));
    if (rc < 0) {
        fprintf(stderr, "em-backend: %s\n", reason);
        return rc == -EM_EUSAGE ? BE_USAGE : BE_FAILED;
    }
    if (xfer_global_init() < 0) {
        store_close(s);
        fprintf(stderr, "em-backend: loaders: cannot start libcurl\n");
        return BE_FAILED;
    }
    struct xfer_opts xo = {
        .ca_file = emopt_get(o, L_CA),
        .insecure = emopt_yes(o, L_INSECURE),
        .max_bytes = (int64_t)max_bytes,
        .max_tries = (int)tries,
        .backoff_s = backoff,
        .protocols = emopt_yes(o, L_ALLOW_FILE) ? "http,https,ftp,ftps,sftp,smb,smbs,file"
                                                : "http,https,ftp,ftps,sftp,smb,smbs",
        .user_agent = "em-backend",
        .ssh_key = emopt_get(o, L_SSH_KEY),
        .known_hosts = emopt_get(o, L_KNOWN_HOSTS),
    };
    struct runner r = {.s = s, .out = out, .name = name, .lease = (int)lease};
    r.idr_api = r.idr_site =
        emopt_get(o, L_IDR) ? emopt_get(o, L_IDR) : "https://idr.openmicroscopy.org";
    r.epfl_url = emopt_get(o, L_EPFL) ? emopt_get(o, L_EPFL)
                                      : "https://documents.epfl.ch/groups/c/cv/cvlab-unit/www/data/"
                                        "%20ElectronMicroscopy_Hippocampus/volumedata.tif";
    r.empiar_api =
        emopt_get(o, L_EMPIAR) ? emopt_get(o, L_EMPIAR) : "https://www.ebi.ac.uk/empiar/api/entry";
    r.empiar_ftp = emopt_get(o, L_EMPIAR_FTP) ? emopt_get(o, L_EMPIAR_FTP)
                                              : "ftp://ftp.ebi.ac.uk/empiar/world_availability";
    r.s3 = emopt_get(o, L_S3) ? emopt_get(o, L_S3) : "https://s3.amazonaws.com";
    r.max_files = max_files;
    r.x = xfer_new(&xo, reason, sizeof(reason));
    if (!r.x) {
        fprintf(stderr, "em-backend: loaders: %s\n", reason);
        store_close(s);
        xfer_global_cleanup();
        return BE_FAILED;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    bool once = emopt_yes(o, L_ONCE), drained = false;
    int status = BE_OK;
    em_log(EM_LOG_INFO, "loaders: runner %s, %ld workers, datasets in %s", name, workers, out);
    time_t shown = time(NULL);
    double last_claim = 0;
    /* From here on a job added or retried by another connection is a change the runner
     * sees (PostgreSQL: LISTEN before the first claim, so no notification is missed). */
    if (!once && store_wait_change(s, 0, reason, sizeof(reason)) < 0)
        em_log(EM_LOG_WARN, "loaders: new jobs are seen only every %g s: %s", poll, reason);
    bool tty =
        isatty(2) && !cli_quiet && em_log_threshold < EM_LOG_INFO; /* not between log lines */
    while (!stop_now) {
        /* Claim while there is room: when nothing was pending, again after a change in the
         * store (a job added) or every --poll seconds (back-offs and leases run out). */
        if (drained && !once && r.njobs < (size_t)workers &&
            store_wait_change(s, 0, reason, sizeof(reason)) == 1)
            drained = false;
        while (!stop_now && r.njobs < (size_t)workers &&
               (!drained || be_mono_s() - last_claim >= poll)) {
            struct active *a = calloc(1, sizeof(*a));
            if (!a) {
                status = BE_FAILED;
                break;
            }
            rc = jobs_claim(s, name, r.lease, &a->j, reason, sizeof(reason));
            last_claim = be_mono_s();
            if (rc <= 0) {
                free(a);
                if (rc < 0) {
                    em_log(EM_LOG_ERROR, "loaders: cannot claim a job: %s", reason);
                    status = BE_FAILED;
                }
                drained = true;
                break;
            }
            drained = false;
            a->renewed = time(NULL);
            em_log(EM_LOG_INFO, "job %" PRId64 ": %s, attempt %d of %d", a->j.id, a->j.loader,
                   a->j.attempts, a->j.max_attempts);
            a->next = r.jobs;
            r.jobs = a;
            r.njobs++;
            if (start_job(&r, a) < 0)
                a->nfinished = a->nfiles; /* finished now, with its error */
        }
        if (status != BE_OK)
            break;
        if (once && drained && r.njobs == 0)
            break;
        if (r.njobs) /* idle: the wait below, for a change in the store */
            xfer_run(r.x, 200, on_done, &r);
        time_t now = time(NULL);
        if (tty && now != shown) {
            progress_line(&r, now - shown);
            shown = now;
        }
        for (struct active **p = &r.jobs; *p;) {
            struct active *a = *p;
            /* Every second: progress into the job row, and a cancel is seen at once. */
            if (a->nfinished < a->nfiles && now - a->renewed >= 1)
                renew(&r, a);
            if (a->nfinished >= a->nfiles) {
                if (a->nfinished == a->nfiles)
                    finish_job(&r, a);
                *p = a->next;
                r.njobs--;
                active_free(a);
                continue;
            }
            p = &a->next;
        }
        if (drained && r.njobs == 0 && !once) {
            double left = poll - (be_mono_s() - last_claim);
            int ch =
                left > 0 ? store_wait_change(s, (int)(left * 1000), reason, sizeof(reason)) : 0;
            if (ch < 0) { /* the claim says so too, when the store is gone */
                em_log(EM_LOG_WARN, "loaders: cannot wait for new jobs: %s", reason);
                sleep(1);
            } else if (ch == 1) {
                drained = false;
            }
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    /* Stopped: the running jobs go back to pending; their partial files are resumed. */
    while (r.jobs) {
        struct active *a = r.jobs;
        r.jobs = a->next;
        drop_job(&r, a, "the runner stops");
        jobs_finish(s, a->j.id, name, "retry", "the runner stopped", NULL, NULL, 0, reason,
                    sizeof(reason));
        active_free(a);
    }
    em_log(EM_LOG_INFO, "loaders: %lu complete, %lu failed, %lu to be retried", r.completed,
           r.failed, r.retried);
    xfer_free(r.x);
    xfer_global_cleanup();
    store_close(s);
    return status;
}

int cmd_loaders(int argc, char **argv)
{
    static const struct emopt_command c = {"em-backend", "loaders", loaders_usage, "EM_BACKEND_",
                                           loaders_opts, L_COUNT,   loaders_main};
    return emopt_run(&c, argc, argv);
}
