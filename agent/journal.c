/* The journal file, one record per line, fields separated by tabs:
 *
 *   em-agent journal 1 <TAB> agent          first line
 *   S seq delivered                         sequence state (written by compaction)
 *   K key-hash data-hash                    an entity's last emitted data (compaction)
 *   E seq key-hash data-hash line           an event; the line is empty once delivered
 *   D seq                                   the sink took everything up to seq
 *   F hash size mtime-sec mtime-nsec state path
 *   T unix-microseconds                     when the last event was journaled
 *   N files entities                        how many F and K records follow (compaction:
 *                                           a load sizes its tables once)
 *
 * Hashes are 16 hex digits. Unknown record letters are skipped, so later versions can add
 * records. The path is the last field, so it may hold tabs (not newlines: such names are
 * never journaled).
 */
#include "em_compat.h"
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#ifndef _WIN32
#include <sys/file.h>
#endif

#include "dynbuf.h"
#include "em_arena.h"
#include "em_error.h"
#include "em_fmt.h"
#include "fsio.h"
#include "hash.h"
#include "hmap.h"
#include "log.h"

#define JOURNAL_MAGIC "em-agent journal 1"
#define JOURNAL_MAX (1ull << 32)
#define COMPACT_MIN (64u << 20)
#define JOURNAL_BUF_MAX (256u << 10)
#define LOAD_CHUNK ((size_t)1 << 20)
#define RECORDS_MAX ((size_t)1 << 40) /* the arena of file records: no practical cap */

struct journal {
    char *dir, *path;
    void *lock; /* platform lock handle */
    int fd;
    char *agent;
    uint64_t last_seq;           /* highest seq journaled */
    uint64_t delivered;          /* highest seq the sink took */
    struct ktab entities;        /* key hash -> data hash */
    struct hset files;           /* struct journal_file *, by file_key() of directory and name */
    struct em_arena records;     /* the file records and directories */
    struct em_arena loaded;      /* the file records read back (by the load's reader thread) */
    struct em_arena loaded_side; /* and those its caller reads back beside it */
    struct hmap dirs;            /* hash of the directory's path -> its index in dirv */
    struct journal_dir **dirv;
    size_t ndirs, dirs_cap;
    char **roots; /* absolute, no trailing '/' */
    size_t *root_len, nroots;
    struct journal_pending *pending; /* seq > delivered at open, ascending */
    size_t npending, pending_cap;
    char *buf; /* records not yet written */
    size_t len, cap;
    uint64_t loaded_seq;       /* last_seq and delivered as read back at open, before */
    uint64_t loaded_delivered; /* the new run's start (0 for a new journal) */
    bool fresh;                /* no journal was read: new, or damaged and set aside */
    bool loaded_compact;       /* the file read was as compaction writes it */
    uint64_t bytes;            /* size of the file */
    uint64_t compacted;        /* its size after the last compaction */
    bool fsync;                /* fdatasync after each commit */
    uint64_t last_event_us;    /* when the last event was journaled (0: never) */
    bool events_uncommitted;
    bool hold_compaction;
    bool compacting;     /* journal_compact_start() began one, not joined yet */
    bool compactor_runs; /* on its thread (else it is done already) */
    int compact_rc;
    uv_thread_t compactor;
    uint64_t dirs_gen; /* changes when the directories are forgotten (journal_dircache) */
    struct journal_dircache load_dc; /* the load's: a compacted journal groups directories */
    uint64_t load_size;              /* the size of the file being loaded */
    uint64_t mark_id;                /* the last mark's (journal_mark()); 0: none */
    size_t files_after_mark;         /* records whose after_mark is set */
    /* The load's: the records taken since the last mark read (their after_mark is set at
     * the end of the load; those before it are never touched). */
    struct journal_file **since;
    size_t nsince, since_cap;
    uint64_t load_before; /* file records still to come that the last mark read precedes */
    bool marked_final;    /* journal_mark_final(): every record lies before the mark */
};

static uint64_t clock_us(void);

/* A directory of file records: what comes before their names (journal_file_dir()). */
struct journal_dir {
    uint16_t root;
    bool mark;    /* journal_files_unsee()'s */
    bool newline; /* its path has one: its files are never journaled */
    char pre[];
};

/* A path split at its root: root 0 and rel the whole path when it is under none. */
struct split {
    const char *path;
    uint16_t root;
    const char *rel;
};

/* A file's path split into its root, its directory part (rel up to and with its last '/')
 * and its name. */
struct fsplit {
    struct split sp;
    size_t pre_len;   /* of the directory part, at sp.rel */
    const char *name; /* sp.rel + pre_len */
};

static struct split split_path(const struct journal *j, const char *path)
{
    for (size_t i = 0; i < j->nroots; i++) {
        size_t n = j->root_len[i];
        if (strncmp(path, j->roots[i], n) == 0 && path[n] == '/' && path[n + 1])
            return (struct split){path, (uint16_t)(i + 1), path + n + 1};
    }
    return (struct split){path, 0, path};
}

/* The split of a keyed path: the directory part ends where the key's does. */
static struct fsplit split_key(const struct journal *j, const struct pathkey *k)
{
    struct fsplit fs = {split_path(j, k->path), 0, pathkey_name(k)};
    fs.pre_len = (size_t)(fs.name - fs.sp.rel);
    return fs;
}

/* The key of a file in j->files: its directory's index and its name's hash. */
static uint64_t file_key(uint32_t dir, uint64_t name_hash)
{
    return name_hash ^ ((uint64_t)dir * 0x9e3779b97f4a7c15ull);
}

struct dir_probe {
    const struct journal *j;
    const struct fsplit *fs;
};

static int dir_is(const void *v, const void *ctx)
{
    const struct dir_probe *p = ctx;
    const struct journal_dir *d = p->j->dirv[(uintptr_t)v];
    return d->root == p->fs->sp.root && strncmp(d->pre, p->fs->sp.rel, p->fs->pre_len) == 0 &&
           d->pre[p->fs->pre_len] == '\0';
}

struct file_probe {
    uint32_t dir;
    const char *name;
};

static int file_is(const void *v, const void *ctx)
{
    const struct journal_file *f = v;
    const struct file_probe *p = ctx;
    return f->dir == p->dir && strcmp(f->name, p->name) == 0;
}

/* j->files keeps only pointers (8 bytes a slot, not 16): a record's key is computed again
 * when the set grows, about one hash of a name per file over a whole walk. */
static uint64_t record_key(const void *v, const void *hctx)
{
    (void)hctx;
    const struct journal_file *f = v;
    return file_key(f->dir, hash64_str(f->name));
}

const char *journal_file_dir(const struct journal *j, const struct journal_file *f, uint16_t *root)
{
    const struct journal_dir *d = j->dirv[f->dir];
    if (root)
        *root = d->root;
    return d->pre;
}

/* Writes "root/pre name" (or "pre name") into buf. */
char *journal_file_path(const struct journal *j, const struct journal_file *f, char *buf,
                        size_t cap)
{
    const struct journal_dir *d = j->dirv[f->dir];
    if (d->root && d->root <= j->nroots)
        snprintf(buf, cap, "%s/%s%s", j->roots[d->root - 1], d->pre, f->name);
    else
        snprintf(buf, cap, "%s%s", d->pre, f->name);
    return buf;
}

/* Whether a record's path has a newline (such paths are never journaled). */
static bool path_has_newline(const struct journal *j, const struct journal_file *f)
{
    return j->dirv[f->dir]->newline || strchr(f->name, '\n');
}

/* The index of the directory of `fs`, added when new; -1 when out of memory (or more
 * than 2^32 directories). Its key in j->dirs, h, is the hash of its absolute path with
 * its last '/' (a pathkey's dir_hash), whichever root it is under. */
static int64_t dir_get(struct journal *j, const struct fsplit *fs, uint64_t h, bool add)
{
    struct dir_probe probe = {j, fs};
    if (!add) {
        struct hmap_entry *e = hmap_find_eq(&j->dirs, h, dir_is, &probe);
        return e ? (int64_t)e->v.u : -1;
    }
    int added;
    /* The map's values are indexes; dir_is reads them through the probe. */
    struct hmap_entry *e = hmap_upsert_eq(&j->dirs, h, dir_is, &probe, &added);
    if (!e)
        return -1;
    if (!added)
        return (int64_t)e->v.u;
    struct journal_dir *d = NULL, **v = NULL;
    if (j->ndirs >= UINT32_MAX ||
        !(v = em_grow(j->dirv, j->ndirs, &j->dirs_cap, sizeof(*j->dirv), 256)) ||
        !(d = em_arena_alloc_align(&j->records, sizeof(*d) + fs->pre_len + 1, 2))) {
        if (v)
            j->dirv = v;
        hmap_remove(&j->dirs, e);
        return -1;
    }
    j->dirv = v;
    d->root = fs->sp.root;
    d->mark = false;
    memcpy(d->pre, fs->sp.rel, fs->pre_len);
    d->pre[fs->pre_len] = '\0';
    d->newline = strchr(d->pre, '\n') || (d->root && strchr(j->roots[d->root - 1], '\n'));
    j->dirv[j->ndirs] = d;
    e->v.u = j->ndirs;
    return (int64_t)j->ndirs++;
}

static int buf_reserve(struct journal *j, size_t more)
{
    if (j->len + more <= j->cap)
        return 0;
    size_t cap = j->cap ? j->cap : 65536;
    while (cap < j->len + more)
        cap *= 2;
    char *b = realloc(j->buf, cap);
    if (!b)
        return -EM_ENOMEM;
    j->buf = b;
    j->cap = cap;
    return 0;
}

static int buf_printf(struct journal *j, const char *fmt, ...) EM_PRINTF(2, 3);

static int buf_printf(struct journal *j, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->buf ? j->buf + j->len : NULL, j->cap - j->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -EM_EINVAL;
        if ((size_t)n < j->cap - j->len) {
            j->len += (size_t)n;
            return 0;
        }
        if (buf_reserve(j, (size_t)n + 1) < 0)
            return -EM_ENOMEM;
    }
}

static int sync_fd(uv_file fd)
{
    uv_fs_t req;
    int r = uv_fs_fdatasync(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return r < 0 ? fsio_error(r) : 0;
}

static void close_fd(uv_file fd)
{
    uv_fs_t req;
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
}

static uv_file open_file(const char *path, int flags)
{
    uv_fs_t req;
    int r = uv_fs_open(NULL, &req, path, flags, 0644, NULL);
    uv_fs_req_cleanup(&req);
    return r;
}

bool journal_entity_same(const struct journal *j, uint64_t key_hash, uint64_t data_hash)
{
    const uint64_t *v = ktab_find(&j->entities, key_hash);
    return v && *v == data_hash;
}

/* Whether the directory record `d` is `dir` (absolute, len bytes) or below it. */
static bool dir_under(const struct journal *j, const struct journal_dir *d, const char *dir,
                      size_t len)
{
    if (!d->root) /* pre is absolute: "dir/..." */
        return strncmp(d->pre, dir, len) == 0 && d->pre[len] == '/';
    const char *r = j->roots[d->root - 1];
    size_t rl = j->root_len[d->root - 1];
    if (len <= rl) /* dir is the root or above it */
        return strncmp(r, dir, len) == 0 && (len == rl || r[len] == '/' || len == 0);
    if (strncmp(r, dir, rl) != 0 || dir[rl] != '/')
        return false;
    size_t n = len - rl - 1; /* dir below the root: pre starts with it and a '/' */
    return strncmp(d->pre, dir + rl + 1, n) == 0 && d->pre[n] == '/';
}

static void unsee_one(void *v, void *ctx)
{
    const struct journal *j = ctx;
    struct journal_file *f = v;
    if (j->dirv[f->dir]->mark)
        f->seen = false;
}

void journal_files_unsee(struct journal *j, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    bool any = false;
    for (size_t i = 0; i < j->ndirs; i++)
        any |= j->dirv[i]->mark = dir_under(j, j->dirv[i], dir, len);
    if (any)
        hset_each(&j->files, unsee_one, j);
    for (size_t i = 0; i < j->ndirs; i++)
        j->dirv[i]->mark = false;
}

bool journal_entity_live(const struct journal *j, uint64_t key_hash)
{
    const uint64_t *v = ktab_find(&j->entities, key_hash);
    return v && *v != 0;
}

static int entity_set(struct journal *j, uint64_t kh, uint64_t dh)
{
    return ktab_set(&j->entities, kh, dh) < 0 ? -EM_ENOMEM : 0;
}

static char *put_hex16(char *p, uint64_t v);

int journal_event(struct journal *j, uint64_t seq, uint64_t key_hash, uint64_t data_hash,
                  const char *line)
{
    if (entity_set(j, key_hash, data_hash) < 0)
        return -EM_ENOMEM;
    /* Without printf: a cold start journals 600,000 events. */
    size_t n = strlen(line);
    if (buf_reserve(j, 64 + n) < 0)
        return -EM_ENOMEM;
    char *p = j->buf + j->len;
    *p++ = 'E';
    *p++ = '\t';
    p = em_fmt_u64(p, seq);
    *p++ = '\t';
    p = put_hex16(p, key_hash);
    *p++ = '\t';
    p = put_hex16(p, data_hash);
    *p++ = '\t';
    memcpy(p, line, n);
    p += n;
    *p++ = '\n';
    j->len = (size_t)(p - j->buf);
    j->last_seq = seq;
    j->events_uncommitted = true;
    return 0;
}

int journal_delivered(struct journal *j, uint64_t seq)
{
    if (seq <= j->delivered)
        return 0;
    j->delivered = seq;
    return buf_printf(j, "D\t%" PRIu64 "\n", seq);
}

void journal_dircache_free(struct journal_dircache *c)
{
    free(c->dir);
    memset(c, 0, sizeof(*c));
}

/* The key of `path`: the directory part is hashed only when it is not the cache's. */
static void key_cached(const struct journal_dircache *c, struct pathkey *k, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
    if (c->valid && c->len == dl && memcmp(c->dir, path, dl) == 0)
        pathkey_init_in(k, path, dl, c->hash);
    else
        pathkey_init(k, path);
}

/* The index of k's directory, through the cache; -1 when it is not known (and not added)
 * or out of memory. */
static int64_t dir_cached(struct journal *j, struct journal_dircache *c, const struct pathkey *k,
                          bool add)
{
    if (c->valid && c->gen == j->dirs_gen && c->len == k->dir_len &&
        memcmp(c->dir, k->path, k->dir_len) == 0)
        return c->index;
    struct fsplit fs = split_key(j, k);
    int64_t d = dir_get(j, &fs, k->dir_hash, add);
    if (d < 0)
        return d; /* not cached: the directory may be added before the next lookup */
    if (k->dir_len + 1 > c->cap) {
        char *v = realloc(c->dir, k->dir_len + 1);
        if (!v) {
            c->valid = false;
            return d;
        }
        c->dir = v;
        c->cap = k->dir_len + 1;
    }
    memcpy(c->dir, k->path, k->dir_len);
    c->dir[k->dir_len] = '\0';
    c->len = k->dir_len;
    c->hash = k->dir_hash;
    c->index = (uint32_t)d;
    c->gen = j->dirs_gen;
    c->valid = true;
    return d;
}

bool journal_dir_known(const struct journal *j, struct journal_dircache *c, const struct pathkey *k)
{
    return dir_cached((struct journal *)(uintptr_t)j, c, k, false) >= 0;
}

int64_t journal_dir_index(const struct journal *j, struct journal_dircache *c,
                          const struct pathkey *k)
{
    return dir_cached((struct journal *)(uintptr_t)j, c, k, false);
}

struct journal_file *journal_file_find_in(const struct journal *j, uint32_t dir, const char *name,
                                          uint64_t name_hash)
{
    struct file_probe probe = {dir, name};
    void **e = hset_find(&j->files, file_key(dir, name_hash), file_is, &probe);
    return e ? *e : NULL;
}

void journal_file_prefetch(const struct journal *j, uint32_t dir, uint64_t name_hash, int step)
{
    uint64_t key = file_key(dir, name_hash);
    if (step == 0)
        hset_prefetch(&j->files, key);
    else
        hset_prefetch_value(&j->files, key);
}

uint64_t journal_file_prefetch_path(const struct journal *j, struct journal_dircache *c,
                                    const char *path)
{
    struct pathkey k;
    key_cached(c, &k, path);
    int64_t dir = dir_cached((struct journal *)(uintptr_t)j, c, &k, false);
    if (dir < 0)
        return 0;
    uint64_t key = file_key((uint32_t)dir, k.name_hash);
    hset_prefetch(&j->files, key);
    return key; /* (a key of 0 only loses its step 1) */
}

void journal_file_prefetch_token(const struct journal *j, uint64_t token)
{
    if (token)
        hset_prefetch_value(&j->files, token);
}

struct journal_file *journal_file_find_cached(const struct journal *j, struct journal_dircache *c,
                                              const struct pathkey *k)
{
    int64_t dir = dir_cached((struct journal *)(uintptr_t)j, c, k, false);
    return dir < 0 ? NULL : journal_file_find_in(j, (uint32_t)dir, pathkey_name(k), k->name_hash);
}

struct journal_file *journal_file_find_path_cached(const struct journal *j,
                                                   struct journal_dircache *c, const char *path)
{
    struct pathkey k;
    key_cached(c, &k, path);
    return journal_file_find_cached(j, c, &k);
}

static struct journal_file *file_get_in(struct journal *j, uint32_t dir, const struct pathkey *k);

struct journal_file *journal_file_get_cached(struct journal *j, struct journal_dircache *c,
                                             const struct pathkey *k)
{
    int64_t dir = dir_cached(j, c, k, true);
    if (dir < 0)
        return NULL;
    return file_get_in(j, (uint32_t)dir, k);
}

struct journal_file *journal_file_find_key(const struct journal *j, const struct pathkey *k)
{
    struct fsplit fs = split_key(j, k);
    int64_t dir = dir_get((struct journal *)(uintptr_t)j, &fs, k->dir_hash, false);
    if (dir < 0)
        return NULL;
    struct file_probe probe = {(uint32_t)dir, fs.name};
    void **e = hset_find(&j->files, file_key(probe.dir, k->name_hash), file_is, &probe);
    return e ? *e : NULL;
}

struct journal_file *journal_file_get_key(struct journal *j, const struct pathkey *k)
{
    struct fsplit fs = split_key(j, k);
    int64_t dir = dir_get(j, &fs, k->dir_hash, true);
    if (dir < 0)
        return NULL;
    return file_get_in(j, (uint32_t)dir, k);
}

/* Finds or creates the record of k's name in directory `dir`. */
static struct journal_file *file_get_in(struct journal *j, uint32_t dir, const struct pathkey *k)
{
    struct file_probe probe = {dir, pathkey_name(k)};
    uint64_t key = file_key(probe.dir, k->name_hash);
    void **e = hset_find(&j->files, key, file_is, &probe);
    if (e)
        return *e;
    size_t n = strlen(probe.name);
    struct journal_file *f = em_arena_alloc_align(&j->records, sizeof(*f) + n + 1, 8);
    if (!f)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->dir = probe.dir;
    memcpy(f->name, probe.name, n + 1);
    if (hset_add(&j->files, key, f) < 0)
        return NULL; /* the record stays in the arena, unreachable, until the journal goes */
    return f;
}

struct journal_file *journal_file_find(const struct journal *j, const char *path)
{
    struct pathkey k;
    pathkey_init(&k, path);
    return journal_file_find_key(j, &k);
}

struct journal_file *journal_file_get(struct journal *j, const char *path)
{
    struct pathkey k;
    pathkey_init(&k, path);
    return journal_file_get_key(j, &k);
}

/* Record fields without printf: a walk writes 600,000 file records. */
static char *put_hex16(char *p, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        p[i] = digits[v & 15];
    return p + 16;
}

static int put_file(struct journal *j, const struct journal_file *f)
{
    const struct journal_dir *d = j->dirv[f->dir];
    const char *root = d->root ? j->roots[d->root - 1] : "";
    size_t rl = d->root ? j->root_len[d->root - 1] + 1 : 0, pl = strlen(d->pre),
           nl = strlen(f->name);
    if (buf_reserve(j, 96 + rl + pl + nl) < 0)
        return -EM_ENOMEM;
    char *p = j->buf + j->len;
    *p++ = 'F';
    *p++ = '\t';
    p = put_hex16(p, f->hash);
    *p++ = '\t';
    p = em_fmt_u64(p, f->size);
    *p++ = '\t';
    p = em_fmt_i64(p, f->mtime_sec);
    *p++ = '\t';
    p = em_fmt_i64(p, f->mtime_nsec);
    *p++ = '\t';
    p = em_fmt_u64(p, f->state);
    *p++ = '\t';
    if (rl) {
        memcpy(p, root, rl - 1);
        p[rl - 1] = '/';
        p += rl;
    }
    memcpy(p, d->pre, pl);
    p += pl;
    memcpy(p, f->name, nl);
    p += nl;
    *p++ = '\n';
    j->len = (size_t)(p - j->buf);
    return 0;
}

static void clear_after_mark(void *v, void *ctx);

int journal_file_note(struct journal *j, struct journal_file *f)
{
    if (j->marked_final) { /* noted after all: the records before the mark say so now */
        hset_each(&j->files, clear_after_mark, NULL);
        j->marked_final = false;
    }
    j->files_after_mark += !f->after_mark;
    f->after_mark = 1;
    if (path_has_newline(j, f))
        return 0;
    int rc = put_file(j, f);
    /* A walk notes thousands of files before it emits: write them as they come. */
    if (rc == 0 && j->len >= JOURNAL_BUF_MAX)
        rc = journal_commit(j);
    return rc;
}

static void clear_after_mark(void *v, void *ctx)
{
    (void)ctx;
    ((struct journal_file *)v)->after_mark = 0;
}

static int mark(struct journal *j, uint64_t id, bool final)
{
    if (j->compacting)
        return -EM_ESTATE;
    if (buf_printf(j, "M\t%016" PRIx64 "\t0\n", id) < 0)
        return -EM_ENOMEM;
    if (final) { /* 600,000 records not touched again: a compaction takes them as before */
        j->marked_final = true;
    } else {
        if (j->files_after_mark || j->marked_final)
            hset_each(&j->files, clear_after_mark, NULL);
        j->marked_final = false;
    }
    j->files_after_mark = 0;
    j->mark_id = id;
    return 0;
}

int journal_mark(struct journal *j, uint64_t id)
{
    return mark(j, id, false);
}

int journal_mark_final(struct journal *j, uint64_t id)
{
    return mark(j, id, true);
}

/* A record's after_mark as compaction sees it. */
static bool after_mark(const struct journal *j, const struct journal_file *f)
{
    return f->after_mark && !j->marked_final;
}

size_t journal_files_after_mark(const struct journal *j)
{
    return j->files_after_mark;
}

/* ---- compaction ---- */

/* While compacting, records go to the new file whenever a megabyte has gathered. */
struct snap {
    struct journal *j;
    uv_file fd;
    int rc;
    int only;      /* the files written: -1 all, else those whose after_mark is this */
    size_t before; /* file records written before the mark's */
};

static void snap_flush(struct snap *c, bool force)
{
    if (c->rc == 0 && (force || c->j->len >= JOURNAL_BUF_MAX)) {
        c->rc = fsio_write_all(c->fd, c->j->buf, c->j->len);
        c->j->bytes += c->j->len;
        c->j->len = 0;
    }
}

static void snap_entity(uint64_t key, uint64_t value, void *ctx)
{
    struct snap *c = ctx;
    if (c->rc == 0 && (c->rc = buf_reserve(c->j, 36)) == 0) {
        char *p = c->j->buf + c->j->len;
        *p++ = 'K';
        *p++ = '\t';
        p = put_hex16(p, key);
        *p++ = '\t';
        p = put_hex16(p, value);
        *p++ = '\n';
        c->j->len = (size_t)(p - c->j->buf);
    }
    snap_flush(c, false);
}

static void snap_file(void *v, void *ctx)
{
    struct snap *c = ctx;
    const struct journal_file *f = v;
    if (c->only >= 0 && after_mark(c->j, f) != c->only)
        return;
    if (c->rc == 0 && !path_has_newline(c->j, f))
        c->rc = put_file(c->j, f);
    snap_flush(c, false);
}

/* The mark, and how many file records follow it that lie before it (those written next). */
static void snap_mark(struct journal *j, struct snap *c, size_t before)
{
    if (c->rc == 0 && j->mark_id)
        c->rc = buf_printf(j, "M\t%016" PRIx64 "\t%zu\n", j->mark_id, before);
}

static void count_before(void *v, void *ctx)
{
    struct snap *c = ctx;
    const struct journal_file *f = v;
    c->before += !after_mark(c->j, f) && !path_has_newline(c->j, f);
}

/* The file records, a directory's together (in the order the directories came): a load
 * then finds each directory once (journal_dircache), and a walk's lookups in one directory
 * touch records that lie together. Sorted as slot numbers of the file set (4 bytes a
 * record: a compaction comes at a cold start's peak of memory), by counting; unordered
 * when there is no memory for that. With a mark: the mark first, saying how many records
 * after it lie before it, then those, then the ones after it (none after a journal_mark()
 * at the end of a run). A load so takes the mark before the records, not after them. */
static void snap_files(struct journal *j, struct snap *c)
{
    const struct hset *fs = &j->files;
    uint32_t *next = fs->cap <= UINT32_MAX ? calloc(j->ndirs + 1, sizeof(*next)) : NULL;
    uint32_t *slot = next ? malloc((fs->count ? fs->count : 1) * sizeof(*slot)) : NULL;
    c->before = 0;
    if (!slot) {
        free(next);
        hset_each(fs, count_before, c);
        snap_mark(j, c, c->before);
        for (c->only = 0; c->only <= 1; c->only++)
            hset_each(fs, snap_file, c);
        c->only = -1;
        return;
    }
    for (size_t i = 0; i < fs->cap; i++) /* records per directory */
        if (fs->v[i]) {
            next[((const struct journal_file *)fs->v[i])->dir]++;
            count_before(fs->v[i], c);
        }
    uint32_t at = 0;
    for (size_t d = 0; d < j->ndirs; d++) { /* counts to where each directory begins */
        uint32_t k = next[d];
        next[d] = at;
        at += k;
    }
    for (size_t i = 0; i < fs->cap; i++)
        if (fs->v[i])
            slot[next[((const struct journal_file *)fs->v[i])->dir]++] = (uint32_t)i;
    free(next);
    snap_mark(j, c, c->before);
    for (c->only = 0; c->only <= 1; c->only++)
        for (size_t i = 0; i < fs->count && c->rc == 0; i++)
            snap_file(fs->v[slot[i]], c);
    c->only = -1;
    free(slot);
}

/* Writes the whole state to journal.tmp and renames it over the journal. The buffered
 * records are part of the state already, so they are dropped. */
static int compact(struct journal *j)
{
    char *tmp = fsio_join(j->dir, "journal.tmp");
    if (!tmp)
        return -EM_ENOMEM;
    struct snap c = {j, open_file(tmp, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC), 0, -1, 0};
    if (c.fd < 0) {
        free(tmp);
        return fsio_error(c.fd);
    }
    uint64_t saved_bytes = j->bytes;
    j->len = 0;
    j->bytes = 0;
    c.rc = buf_printf(j, "%s\t%s\nS\t%" PRIu64 "\t%" PRIu64 "\n", JOURNAL_MAGIC, j->agent,
                      j->last_seq, j->delivered);
    if (c.rc == 0 && j->last_event_us)
        c.rc = buf_printf(j, "T\t%" PRIu64 "\n", j->last_event_us);
    if (c.rc == 0)
        c.rc = buf_printf(j, "N\t%zu\t%zu\n", j->files.count, ktab_count(&j->entities));
    /* Entities in key order (ktab_each), so that reading them back appends to the array. */
    if (c.rc == 0)
        ktab_each(&j->entities, snap_entity, &c);
    if (c.rc == 0)
        snap_files(j, &c);
    for (size_t i = 0; i < j->npending && c.rc == 0; i++) {
        const struct journal_pending *p = &j->pending[i];
        if (p->seq > j->delivered)
            c.rc = buf_printf(j, "E\t%" PRIu64 "\t0000000000000000\t0000000000000000\t%s\n", p->seq,
                              p->line);
        snap_flush(&c, false);
    }
    snap_flush(&c, true);
    if (c.rc == 0)
        c.rc = sync_fd(c.fd);
    close_fd(c.fd);
#ifdef _WIN32
    /* Windows renames over a file only when nobody has it open: close ours first (it is
     * opened again below, or on failure). */
    if (c.rc == 0 && j->fd >= 0) {
        close_fd(j->fd);
        j->fd = -1;
    }
#endif
    if (c.rc == 0) {
        uv_fs_t req;
        int r = uv_fs_rename(NULL, &req, tmp, j->path, NULL);
        if (r < 0)
            c.rc = fsio_error(r);
        uv_fs_req_cleanup(&req);
    }
    if (c.rc < 0) { /* no half-written copy is left behind (it would only take space) */
        uv_fs_t req;
        uv_fs_unlink(NULL, &req, tmp, NULL);
        uv_fs_req_cleanup(&req);
    }
    free(tmp);
    if (c.rc < 0) {
        /* The old journal stays as it was (the buffer was empty when we began). */
        j->bytes = saved_bytes;
        j->len = 0;
        if (j->fd < 0 && j->path && saved_bytes)
            j->fd = open_file(j->path, UV_FS_O_WRONLY | UV_FS_O_APPEND);
        return c.rc;
    }
    if (j->fd >= 0)
        close_fd(j->fd);
    j->fd = open_file(j->path, UV_FS_O_WRONLY | UV_FS_O_APPEND);
    j->compacted = j->bytes;
    return j->fd < 0 ? -EM_EIO : 0;
}

int journal_commit(struct journal *j)
{
    if (j->fd < 0)
        return -EM_EIO;
    if (j->events_uncommitted) {
        j->last_event_us = clock_us();
        if (buf_printf(j, "T\t%" PRIu64 "\n", j->last_event_us) < 0)
            return -EM_ENOMEM;
        j->events_uncommitted = false;
    }
    if (j->len) {
        int rc = fsio_write_all(j->fd, j->buf, j->len);
        if (rc == 0 && j->fsync)
            rc = sync_fd(j->fd);
        if (rc < 0)
            return rc;
        j->bytes += j->len;
        j->len = 0;
    }
    /* Compaction drops event lines, so it waits until the sink has taken them all. */
    if (!j->hold_compaction && j->delivered == j->last_seq && j->npending == 0 &&
        j->bytes > (j->compacted * 2 > COMPACT_MIN ? j->compacted * 2 : COMPACT_MIN)) {
        int rc = compact(j);
        if (rc < 0) {
            em_log(EM_LOG_WARN, "%s: cannot compact the journal (%s); it keeps growing", j->path,
                   em_strerror(rc));
            j->compacted = j->bytes; /* try again once it has doubled */
        }
    }
    return 0;
}

/* ---- loading ---- */

/* Fields are read without strtoull: a restart reads 3 million of them, and strtoull's
 * leniency (spaces, signs, "-1" wrapping around) is not wanted here either. A field ends
 * at a tab or at the end of the record. */
static const int8_t hex_digit[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* the digit's value plus one; 0: not a hex digit */

static bool field_end(const char *s, const char **p)
{
    if (s == *p || (*s != '\t' && *s != '\0'))
        return false;
    *p = *s ? s + 1 : s;
    return true;
}

static bool parse_u64(const char **p, uint64_t *v, unsigned base)
{
    const char *s = *p;
    uint64_t x = 0;
    if (base == 16) {
        for (int d; (d = hex_digit[(unsigned char)*s]) != 0; s++) {
            if (x >> 60 != 0)
                return false; /* a 17th significant digit */
            x = x << 4 | (uint64_t)(d - 1);
        }
    } else {
        /* 19 digits always fit; only a longer number is checked, without a division. */
        for (unsigned d; (d = (unsigned)(*s - '0')) <= 9; s++) {
            if (s - *p >= 19 &&
                (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10)))
                return false;
            x = x * 10 + d;
        }
    }
    if (!field_end(s, p))
        return false;
    *v = x;
    return true;
}

static bool parse_i64(const char **p, int64_t *v)
{
    const char *s = *p;
    bool neg = *s == '-';
    uint64_t x;
    s += neg;
    if (!parse_u64(&s, &x, 10) || x > (uint64_t)INT64_MAX + neg)
        return false;
    *v = neg ? (int64_t)(0 - x) : (int64_t)x;
    *p = s;
    return true;
}

struct loaded_event {
    uint64_t seq;
    char *line; /* the event line (yours) */
};

/* Applies one record (NUL-terminated, no newline). Returns false when it is malformed. */
static bool apply(struct journal *j, char *rec, struct loaded_event **ev, size_t *nev,
                  size_t *evcap)
{
    const char *p = rec + 2;
    uint64_t a, b, c;
    if (rec[0] == '\0' || (rec[1] != '\t' && rec[1] != '\0'))
        return false;
    switch (rec[0]) {
    case 'S':
        if (!parse_u64(&p, &a, 10) || !parse_u64(&p, &b, 10))
            return false;
        j->last_seq = a > j->last_seq ? a : j->last_seq;
        j->delivered = b > j->delivered ? b : j->delivered;
        return true;
    case 'K':
        return parse_u64(&p, &a, 16) && parse_u64(&p, &b, 16) && entity_set(j, a, b) == 0;
    case 'T':
        if (!parse_u64(&p, &a, 10))
            return false;
        j->last_event_us = a > j->last_event_us ? a : j->last_event_us;
        return true;
    case 'D':
        if (!parse_u64(&p, &a, 10))
            return false;
        j->delivered = a > j->delivered ? a : j->delivered;
        return true;
    case 'E': {
        if (!parse_u64(&p, &a, 10) || !parse_u64(&p, &b, 16))
            return false;
        /* The data hash ends at a tab; the line follows (empty once delivered). */
        char *end;
        c = strtoull(p, &end, 16);
        if (*end != '\t')
            return false;
        if (b && entity_set(j, b, c) < 0)
            return false;
        j->last_seq = a > j->last_seq ? a : j->last_seq;
        if (end[1] != '\0') {
            if (*nev == *evcap) {
                /* Lines the sink took already are not needed: drop them before growing. */
                size_t k = 0;
                for (size_t i = 0; i < *nev; i++) {
                    if ((*ev)[i].seq <= j->delivered)
                        free((*ev)[i].line);
                    else
                        (*ev)[k++] = (*ev)[i];
                }
                *nev = k;
            }
            struct loaded_event *v = em_grow(*ev, *nev, evcap, sizeof(*v), 64);
            if (!v)
                return false;
            *ev = v;
            char *line = strdup(end + 1);
            if (!line)
                return false;
            (*ev)[(*nev)++] = (struct loaded_event){a, line};
        }
        return true;
    }
    default:
        return true; /* a record of a later version */
    }
}

/* ---- reading the journal back: two threads ----
 *
 * A reader thread reads the journal a chunk at a time and cuts it into records. It
 * applies every record but the file records itself (seqs, entities, pending events: the
 * caller touches none of those meanwhile). The file records are made on both sides: every
 * other one the reader parses, hashes and copies into j->loaded, the rest it hands over as
 * text, which the caller reads into j->loaded_side (each arena has one thread allocating
 * from it meanwhile). The caller gives each record its directory and puts it in the file
 * set, in the order they came (a later record of a file updates the first). A chunk goes
 * over whole (its complete records; a record cut by its end is copied to the start of the
 * next), and comes back to be reused. A restart of a visit reads 1.2 million records
 * (0.4 s on one thread). A small journal, or one when no thread could start, is read by
 * the caller alone, chunk by chunk. */

struct frec { /* a file record: its text (raw), then read into its record (all but its
               * directory); or an N record's count (n) */
    struct pathkey k;
    struct journal_file *f;
    const char *raw; /* the fields after "F\t", in the chunk's buffer */
    uint64_t n;      /* an M record's: how many file records after it lie before it */
    uint64_t mark;   /* an M record's id */
    uint8_t what;    /* FREC_* */
};
enum { FREC_FILE, FREC_COUNT, FREC_BAD, FREC_RAW, FREC_MARK };

/* The directory part last hashed, and its hash: a compacted journal groups a directory's
 * files, so most records hash only their name. */
struct keycache {
    char *dir;
    size_t len, cap;
    uint64_t hash;
};

struct lchunk {
    struct lchunk *next;
    char *buf;
    size_t cap;
    struct frec *v;
    size_t n, vcap;
};

struct loader {
    struct journal *j;
    char *reason, *damage;
    size_t rcap, dcap;
    uv_file fd;
    size_t chunk; /* bytes read at a time */
    uv_mutex_t mu;
    uv_cond_t cv;
    struct lchunk *head, *tail; /* handed over, in order */
    struct lchunk *spare;       /* taken in, for reuse */
    size_t nready;
    bool done; /* the reader is through (rc says how) */
    /* the reader's */
    int rc;
    struct lchunk *cur;
    uint64_t off, end; /* bytes read; the end of the last complete record */
    bool first, torn;
    size_t bad, records, extra;
    struct loaded_event *ev;
    size_t nev, evcap;
    struct keycache kc; /* the caller's, as it reads file records */
    bool oom;           /* the caller's: out of memory there */
    struct keycache kc_reader;
    bool alternate; /* the reader's: whose the next F record is */
};

static size_t load_chunk = LOAD_CHUNK;

void journal_set_load_chunk(size_t bytes)
{
    load_chunk = bytes ? bytes : LOAD_CHUNK;
}

/* The key of `path` (in a chunk), its directory hashed only when it is not the last one. */
static void load_key(struct keycache *kc, struct pathkey *k, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
    if (!(kc->dir && kc->len == dl && memcmp(kc->dir, path, dl) == 0)) {
        if (dl + 1 > kc->cap) {
            char *v = realloc(kc->dir, dl + 1);
            if (!v) {
                pathkey_init(k, path);
                return;
            }
            kc->dir = v;
            kc->cap = dl + 1;
        }
        memcpy(kc->dir, path, dl);
        kc->len = dl;
        kc->hash = hash64_bytes(path, dl);
    }
    pathkey_init_in(k, path, dl, kc->hash);
}

/* An F record's fields ("hash size sec nsec state path") into r: FREC_FILE, or FREC_BAD.
 * The record is made in `arena`, which only the calling thread allocates from while the
 * load runs (j->loaded for the reader thread, j->loaded_side for its caller). */
static int read_file_record(struct em_arena *arena, struct keycache *kc, struct frec *r)
{
    const char *p = r->raw;
    uint64_t a, b, state;
    int64_t sec, ns;
    if (!parse_u64(&p, &a, 16) || !parse_u64(&p, &b, 10) || !parse_i64(&p, &sec) ||
        !parse_i64(&p, &ns) || !parse_u64(&p, &state, 10) || !*p) {
        r->what = FREC_BAD;
        return 0;
    }
    load_key(kc, &r->k, p);
    const char *name = pathkey_name(&r->k);
    size_t nlen = strlen(name);
    struct journal_file *f = em_arena_alloc_align(arena, sizeof(*f) + nlen + 1, 8);
    if (!f)
        return -EM_ENOMEM;
    memset(f, 0, sizeof(*f));
    f->hash = a;
    f->size = b;
    f->mtime_sec = sec;
    f->mtime_nsec = (int32_t)ns;
    f->state = (uint8_t)(state < 127 ? state : 127); /* 7 bits: anything unknown stays so */
    memcpy(f->name, name, nlen + 1);
    r->f = f;
    r->what = FREC_FILE;
    return 0;
}

/* One record, on the reader's side. */
static int take_record(struct loader *L, char *rec)
{
    struct journal *j = L->j;
    if (L->first) {
        L->first = false;
        size_t mlen = strlen(JOURNAL_MAGIC);
        if (strncmp(rec, JOURNAL_MAGIC, mlen) != 0 || rec[mlen] != '\t') {
            snprintf(L->damage, L->dcap, "its first line is not an em-agent journal's");
            return 1; /* stop reading: damaged */
        }
        if (!j->agent) /* journal_peek: whoever it belongs to */
            return (j->agent = strdup(rec + mlen + 1)) ? 0 : -EM_ENOMEM;
        if (strcmp(rec + mlen + 1, j->agent) != 0) {
            snprintf(L->reason, L->rcap,
                     "%s belongs to agent '%s', not '%s': use --agent %s or another --state-dir",
                     j->path, rec + mlen + 1, j->agent, rec + mlen + 1);
            return -EM_ESTATE;
        }
        return 0;
    }
    L->records++;
    L->extra += rec[0] == 'S' || rec[0] == 'T' || rec[0] == 'N' || rec[0] == 'M';
    if ((rec[0] != 'F' && rec[0] != 'N' && rec[0] != 'M') || (rec[1] != '\t' && rec[1] != '\0')) {
        if (!apply(j, rec, &L->ev, &L->nev, &L->evcap))
            L->bad++;
        return 0;
    }
    struct lchunk *c = L->cur;
    struct frec *r = em_grow(c->v, c->n, &c->vcap, sizeof(*c->v), 1024);
    if (!r)
        return -EM_ENOMEM;
    c->v = r;
    r = &c->v[c->n++];
    const char *p = rec + 2;
    uint64_t a, b;
    if (rec[0] == 'M') { /* in order with the file records: the caller takes it */
        bool ok = parse_u64(&p, &a, 16) && a != 0 && parse_u64(&p, &b, 10);
        r->what = ok ? FREC_MARK : FREC_BAD;
        r->mark = ok ? a : 0;
        r->n = ok ? b : 0;
        return 0;
    }
    if (rec[0] == 'N') {
        /* A hint only: trusted up to one record per 16 bytes of the file, so a damaged
         * count cannot make the load take much memory. */
        bool ok = parse_u64(&p, &a, 10) && parse_u64(&p, &b, 10);
        r->what = ok ? FREC_COUNT : FREC_BAD;
        r->n = ok && a <= j->load_size / 16 ? a : 0;
        /* The entities come first (K records, on this thread): their table sized once. */
        if (ok && b <= j->load_size / 16)
            (void)ktab_reserve(&j->entities, ktab_count(&j->entities) + (size_t)b);
        return 0;
    }
    /* Every other one is read by the caller (take_files), which would otherwise mostly
     * wait for this thread, the rest here: the two share the work. */
    r->raw = p;
    r->what = FREC_RAW;
    if ((L->alternate = !L->alternate))
        return 0;
    return read_file_record(&j->loaded, &L->kc_reader, r);
}

/* The caller's side: a chunk's file records (those handed over as text read first) into
 * the file set. Returns how many could not be taken; *oom is set when memory ran out. */
static size_t take_files(struct journal *j, struct keycache *kc, struct lchunk *c, bool *oom)
{
    size_t bad = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct frec *r = &c->v[i];
        if (r->what == FREC_RAW && read_file_record(&j->loaded_side, kc, r) < 0) {
            *oom = true; /* the load fails: not a damaged journal */
            r->what = FREC_BAD;
        }
        if (r->what == FREC_COUNT) {
            if (r->n > 0)
                (void)hset_reserve(&j->files, (size_t)r->n);
            continue;
        }
        if (r->what == FREC_MARK) { /* the records so far are before it, and the next n */
            j->nsince = 0;
            j->mark_id = r->mark;
            j->load_before = r->n;
            continue;
        }
        int64_t d = r->what == FREC_FILE ? dir_cached(j, &j->load_dc, &r->k, true) : -1;
        void **slot = NULL;
        bool added = false;
        if (d >= 0) {
            struct file_probe probe = {(uint32_t)d, r->f->name};
            r->f->dir = probe.dir;
            slot = hset_add_unless(&j->files, file_key(probe.dir, r->k.name_hash), r->f, file_is,
                                   &probe, &added);
        }
        if (!slot) {
            bad++;
            continue;
        }
        if (!added) { /* a later record of a file: its fields count (the new one is left) */
            struct journal_file *f = *slot;
            f->hash = r->f->hash;
            f->size = r->f->size;
            f->mtime_sec = r->f->mtime_sec;
            f->mtime_nsec = r->f->mtime_nsec;
            f->state = r->f->state;
        }
        if (j->load_before) {
            j->load_before--;
            continue;
        }
        struct journal_file **v = em_grow(j->since, j->nsince, &j->since_cap, sizeof(*v), 4096);
        if (!v) {
            *oom = true;
            continue;
        }
        j->since = v;
        j->since[j->nsince++] = *slot; /* after the mark, unless one comes later */
    }
    return bad;
}

static struct lchunk *chunk_get(struct loader *L, size_t need)
{
    uv_mutex_lock(&L->mu);
    struct lchunk *c = L->spare;
    if (c)
        L->spare = c->next;
    uv_mutex_unlock(&L->mu);
    if (!c && !(c = calloc(1, sizeof(*c))))
        return NULL;
    c->next = NULL;
    c->n = 0;
    if (c->cap < need) {
        char *b = realloc(c->buf, need);
        if (!b) {
            free(c->v);
            free(c->buf);
            free(c);
            return NULL;
        }
        c->buf = b;
        c->cap = need;
    }
    return c;
}

static void chunk_free(struct lchunk *c)
{
    while (c) {
        struct lchunk *next = c->next;
        free(c->buf);
        free(c->v);
        free(c);
        c = next;
    }
}

/* Hands the reader's chunk over (`alone`: no thread, the caller takes it in now). */
static void chunk_ready(struct loader *L, struct lchunk *c, bool alone, size_t *bad)
{
    if (alone) {
        *bad += take_files(L->j, &L->kc, c, &L->oom);
        c->next = L->spare;
        L->spare = c;
        return;
    }
    uv_mutex_lock(&L->mu);
    while (L->nready >= 3) /* a few chunks ahead at most */
        uv_cond_wait(&L->cv, &L->mu);
    if (L->tail)
        L->tail->next = c;
    else
        L->head = c;
    L->tail = c;
    L->nready++;
    uv_cond_broadcast(&L->cv);
    uv_mutex_unlock(&L->mu);
}

/* Reads the file through; rc 1 means damaged (said in `damage`). */
static void read_all(struct loader *L, bool alone, size_t *bad)
{
    int rc = 0;
    size_t carry = 0;
    L->cur = chunk_get(L, L->chunk);
    if (!L->cur)
        rc = -EM_ENOMEM;
    while (rc == 0) {
        struct lchunk *c = L->cur;
        uv_fs_t req;
        uv_buf_t ub = uv_buf_init(c->buf + carry, (unsigned)(c->cap - carry));
        ssize_t n = uv_fs_read(NULL, &req, L->fd, &ub, 1, (int64_t)L->off, NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0) {
            rc = fsio_error((int)n);
            break;
        }
        if (n == 0)
            break;
        L->off += (uint64_t)n;
        char *p = c->buf, *stop = c->buf + carry + (size_t)n;
        for (char *nl; rc == 0 && (nl = memchr(p, '\n', (size_t)(stop - p))); p = nl + 1) {
            *nl = '\0';
            L->end = L->off - (uint64_t)(stop - nl) + 1;
            rc = take_record(L, p);
        }
        if (rc != 0)
            break;
        /* The rest is a record cut by the chunk's end: to the start of the next. */
        carry = (size_t)(stop - p);
        struct lchunk *next = chunk_get(L, carry + L->chunk > c->cap ? carry + L->chunk : c->cap);
        if (!next) {
            rc = -EM_ENOMEM;
            break;
        }
        memcpy(next->buf, p, carry);
        L->cur = next;
        chunk_ready(L, c, alone, bad);
    }
    L->torn = rc == 0 && carry > 0;
    if (L->cur) /* what it holds: the file records before a stop */
        chunk_ready(L, L->cur, alone, bad);
    L->cur = NULL;
    L->rc = rc;
}

static void reader_main(void *arg)
{
    struct loader *L = arg;
    size_t unused = 0;
    read_all(L, false, &unused);
    uv_mutex_lock(&L->mu);
    L->done = true;
    uv_cond_broadcast(&L->cv);
    uv_mutex_unlock(&L->mu);
}

/* Reads the journal back (a visit's journal is 100 MB and more; reading it whole would
 * double a restart's memory). A journal that is not one (another file, or its first line
 * overwritten) or has unreadable records is damaged: `damage` says how, and the caller
 * starts afresh rather than trust a partial memory (which could make it skip a change). */
static int load(struct journal *j, char *reason, size_t cap, char *damage, size_t dcap)
{
    struct fsio_stat st;
    int rc = fsio_stat(j->path, &st);
    if (rc == -EM_ENOENT) {
        j->fresh = true;
        return 0;
    }
    if (rc == 0 && st.size > JOURNAL_MAX)
        rc = -EM_ELIMIT;
    uv_fs_t req;
    uv_file fd = rc == 0 ? uv_fs_open(NULL, &req, j->path, UV_FS_O_RDONLY, 0, NULL) : -1;
    if (rc == 0) {
        uv_fs_req_cleanup(&req);
        if (fd < 0)
            rc = fsio_error(fd);
    }
    if (rc < 0) {
        snprintf(reason, cap, "%s: cannot read: %s", j->path, em_strerror(rc));
        return rc;
    }
    j->load_size = st.size;
    /* Filled in one go by one thread: large chunks (each 8 KiB one grew that thread's heap
     * with a system call). */
    em_arena_set_max_chunk(&j->loaded, (size_t)1 << 20);
    em_arena_set_max_chunk(&j->loaded_side, (size_t)1 << 20);
    struct loader L = {.j = j,
                       .reason = reason,
                       .rcap = cap,
                       .damage = damage,
                       .dcap = dcap,
                       .fd = fd,
                       .chunk = load_chunk,
                       .first = true};
    uv_mutex_init(&L.mu);
    uv_cond_init(&L.cv);
    uv_thread_t reader;
    size_t bad_files = 0;
    bool threaded = st.size > load_chunk && uv_thread_create(&reader, reader_main, &L) == 0;
    if (threaded) {
        for (;;) {
            uv_mutex_lock(&L.mu);
            while (!L.head && !L.done)
                uv_cond_wait(&L.cv, &L.mu);
            struct lchunk *c = L.head;
            if (c) {
                L.head = c->next;
                if (!L.head)
                    L.tail = NULL;
                L.nready--;
                uv_cond_broadcast(&L.cv); /* room for the reader */
            }
            uv_mutex_unlock(&L.mu);
            if (!c)
                break;
            bad_files += take_files(j, &L.kc, c, &L.oom);
            uv_mutex_lock(&L.mu);
            c->next = L.spare;
            L.spare = c;
            uv_mutex_unlock(&L.mu);
        }
        uv_thread_join(&reader);
    } else {
        read_all(&L, true, &bad_files);
    }
    uv_mutex_destroy(&L.mu);
    uv_cond_destroy(&L.cv);
    chunk_free(L.spare);
    chunk_free(L.head);
    free(L.kc.dir);
    free(L.kc_reader.dir);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    journal_dircache_free(&j->load_dc);
    if (j->load_before) /* fewer records than the mark said: it speaks of another file */
        j->mark_id = 0;
    j->load_before = 0;
    for (size_t i = 0; i < j->nsince; i++) { /* their last records lie after the last mark */
        j->files_after_mark += !j->since[i]->after_mark;
        j->since[i]->after_mark = 1;
    }
    free(j->since);
    j->since = NULL;
    j->nsince = j->since_cap = 0;
    rc = L.rc == 0 && L.oom ? -EM_ENOMEM : L.rc;
    size_t bad = L.bad + bad_files;
    bool first = L.first, torn = L.torn;
    if (rc == 1)
        rc = 0; /* damaged: said in `damage` */
    else if (rc < 0 && rc != -EM_ESTATE && rc != -EM_ENOMEM)
        snprintf(reason, cap, "%s: cannot read: %s", j->path, em_strerror(rc));
    if (rc == 0 &&
        torn) /* A last line without its newline was torn by a kill: it never happened. */
        em_log(EM_LOG_INFO, "%s: dropping a torn last record (%llu bytes)", j->path,
               (unsigned long long)(L.off - L.end));
    if (rc == 0 && first)
        j->fresh = true; /* empty */
    if (rc == 0 && !first && !damage[0]) {
        /* As compaction writes it: every record still needed, once, and nothing pending;
         * its N record, and the S and T records that later starts appended (one or two a
         * start) do not make it worth writing again, until there are many. */
        j->loaded_compact = !torn && bad == 0 && L.nev == 0 && L.extra <= 256 &&
                            L.records == L.extra + ktab_count(&j->entities) + j->files.count;
        j->bytes = L.end;
        if (bad)
            snprintf(damage, dcap, "%zu of its records cannot be read", bad);
    }
    for (size_t i = 0; i < L.nev; i++) {
        if (rc < 0 || damage[0] || L.ev[i].seq <= j->delivered) {
            free(L.ev[i].line);
            continue;
        }
        struct journal_pending *v =
            em_grow(j->pending, j->npending, &j->pending_cap, sizeof(*v), 64);
        if (!v) {
            free(L.ev[i].line);
            rc = -EM_ENOMEM;
            continue;
        }
        j->pending = v;
        j->pending[j->npending++] = (struct journal_pending){L.ev[i].seq, L.ev[i].line};
    }
    free(L.ev);
    return rc;
}

/* The pid written into a lock file ("%ld\n"), or 0. */
static long lock_holder(const char *lock_path)
{
    uint64_t pid = fsio_read_number(lock_path);
    return pid <= (uint64_t)LONG_MAX ? (long)pid : 0;
}

/* "is in use by another em-agent (pid N)", or without the pid when it is unknown. */
static void in_use(const struct journal *j, long pid, char *reason, size_t cap)
{
    if (pid)
        snprintf(reason, cap,
                 "%s is in use by another em-agent (pid %ld); one state directory per agent",
                 j->dir, pid);
    else
        snprintf(reason, cap, "%s is in use by another em-agent; one state directory per agent",
                 j->dir);
}

#ifdef _WIN32
/* "lock.pid" beside "lock". */
static char *pid_file(const char *lock_path)
{
    size_t n = strlen(lock_path) + 5;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.pid", lock_path);
    return p;
}
#endif

/* Who holds the lock, for `em-agent status` and the error above: the pid, written into the
 * lock file (POSIX: flock() lets others read it) or beside it (Windows: the lock is the
 * file opened without sharing, which nobody else can open). */
static void write_holder(uv_file fd, const char *path)
{
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)uv_os_getpid());
    uv_fs_t req;
    uv_buf_t buf = uv_buf_init(pid, (unsigned)n);
#ifdef _WIN32
    (void)fd;
    char *pid_path = pid_file(path);
    uv_file pf =
        pid_path ? open_file(pid_path, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC) : -1;
    if (pf >= 0) {
        uv_fs_write(NULL, &req, pf, &buf, 1, 0, NULL);
        uv_fs_req_cleanup(&req);
        close_fd(pf);
    }
    free(pid_path);
#else
    (void)path;
    uv_fs_ftruncate(NULL, &req, fd, 0, NULL);
    uv_fs_req_cleanup(&req);
    uv_fs_write(NULL, &req, fd, &buf, 1, 0, NULL);
    uv_fs_req_cleanup(&req);
#endif
}

/* The pid of the holder of `lock_path`, as write_holder() left it; 0 when unknown. */
static long holder_of(const char *lock_path)
{
#ifdef _WIN32
    char *pid_path = pid_file(lock_path);
    long pid = pid_path ? lock_holder(pid_path) : 0;
    free(pid_path);
    return pid;
#else
    return lock_holder(lock_path);
#endif
}

static int lock_dir(struct journal *j, char *reason, size_t cap)
{
    char *path = fsio_join(j->dir, "lock");
    if (!path)
        return -EM_ENOMEM;
#ifdef _WIN32
    /* Opened without sharing: a second agent's open fails with a sharing violation. */
    uv_file fd = open_file(path, UV_FS_O_RDWR | UV_FS_O_CREAT | UV_FS_O_EXLOCK);
    if (fd == UV_EBUSY || fd == UV_EACCES) {
        in_use(j, holder_of(path), reason, cap);
        free(path);
        return -EM_ESTATE;
    }
#else
    uv_file fd = open_file(path, UV_FS_O_RDWR | UV_FS_O_CREAT);
#endif
    if (fd < 0) {
        snprintf(reason, cap, "%s: cannot create the lock file: %s", path,
                 em_strerror(fsio_error(fd)));
        free(path);
        return fsio_error(fd);
    }
#ifndef _WIN32
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close_fd(fd);
        in_use(j, holder_of(path), reason, cap);
        free(path);
        return -EM_ESTATE;
    }
#endif
    write_holder(fd, path);
    free(path);
    j->lock = (void *)(intptr_t)(fd + 1);
    return 0;
}

long journal_lock_holder(const char *dir)
{
    char *path = fsio_join(dir, "lock");
    if (!path)
        return 0;
    long pid = 0;
#ifdef _WIN32
    uv_file fd = open_file(path, UV_FS_O_RDONLY);
    if (fd == UV_EBUSY || fd == UV_EACCES)
        pid = holder_of(path);
    else if (fd >= 0)
        close_fd(fd);
#else
    uv_file fd = open_file(path, UV_FS_O_RDONLY);
    if (fd >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) < 0)
            pid = holder_of(path);
        else
            flock(fd, LOCK_UN);
        close_fd(fd);
    }
#endif
    free(path);
    return pid;
}

static int make_dirs(const char *dir)
{
    char *d = strdup(dir);
    if (!d)
        return -EM_ENOMEM;
    for (char *p = d + 1;; p++) {
        bool last = *p == '\0';
        if (*p == '/' || last) {
            char c = *p;
            *p = '\0';
            uv_fs_t req;
            int r = uv_fs_mkdir(NULL, &req, d, 0700, NULL);
            uv_fs_req_cleanup(&req);
            *p = c;
            if (r < 0 && r != UV_EEXIST) {
                free(d);
                return fsio_error(r);
            }
        }
        if (last)
            break;
    }
    free(d);
    return 0;
}

static uint64_t clock_us(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void journal_forget(struct journal *j)
{
    journal_pending_clear(j);
    journal_forget_entities(j);
}

void journal_forget_entities(struct journal *j)
{
    hset_free(&j->files);
    hmap_free(&j->dirs);
    free(j->dirv);
    j->dirv = NULL;
    j->ndirs = j->dirs_cap = 0;
    em_arena_free(&j->records);
    em_arena_init(&j->records, RECORDS_MAX);
    em_arena_free(&j->loaded);
    em_arena_init(&j->loaded, RECORDS_MAX);
    em_arena_free(&j->loaded_side);
    em_arena_init(&j->loaded_side, RECORDS_MAX);
    ktab_free(&j->entities);
    j->dirs_gen++;
    j->mark_id = 0; /* a mark speaks of the file records */
    j->files_after_mark = 0;
    j->marked_final = false;
}

static int open_into(struct journal *j, const char *dir, const char *agent,
                     const char *const *roots, size_t nroots, char *reason, size_t reason_cap)
{
    memset(j, 0, sizeof(*j));
    hset_init(&j->files, record_key, NULL);
    j->fd = -1;
    reason[0] = '\0';
    em_arena_init(&j->records, RECORDS_MAX);
    em_arena_init(&j->loaded, RECORDS_MAX);
    em_arena_init(&j->loaded_side, RECORDS_MAX);
    j->dir = strdup(dir);
    j->agent = strdup(agent);
    j->path = fsio_join(dir, "journal");
    if (!j->dir || !j->agent || !j->path)
        return -EM_ENOMEM;
    if (nroots > UINT16_MAX)
        nroots = UINT16_MAX; /* the rest are journaled with absolute paths */
    j->roots = calloc(nroots ? nroots : 1, sizeof(*j->roots));
    j->root_len = calloc(nroots ? nroots : 1, sizeof(*j->root_len));
    if (!j->roots || !j->root_len)
        return -EM_ENOMEM;
    for (size_t i = 0; i < nroots; i++) {
        if (!(j->roots[i] = strdup(roots[i])))
            return -EM_ENOMEM;
        j->root_len[i] = strlen(roots[i]);
        j->nroots++;
    }
    int rc = make_dirs(dir);
    if (rc < 0) {
        snprintf(reason, reason_cap, "%s: cannot create the state directory: %s", dir,
                 em_strerror(rc));
        return rc;
    }
    char damage[256] = "";
    rc = lock_dir(j, reason, reason_cap);
    if (rc == 0)
        rc = load(j, reason, reason_cap, damage, sizeof(damage));
    if (rc < 0)
        return rc;
    j->loaded_seq = j->last_seq;
    j->loaded_delivered = j->delivered;
    if (damage[0]) {
        /* Kept for a look, out of the way; the new journal starts empty, so every entity's
         * current state is emitted again (stores take repeats as no change). */
        char aside[64];
        snprintf(aside, sizeof(aside), "journal.damaged-%" PRIu64, clock_us());
        char *to = fsio_join(dir, aside);
        uv_fs_t req;
        int r = to ? uv_fs_rename(NULL, &req, j->path, to, NULL) : UV_ENOMEM;
        uv_fs_req_cleanup(&req);
        em_log(EM_LOG_ERROR,
               "%s is damaged (%s)%s%s; starting a new journal: the current state of every "
               "entity is emitted again, with new seqs",
               j->path, damage, r == 0 ? "; kept as " : "", r == 0 ? to : "");
        free(to);
        journal_forget(j);
        j->fresh = true;
    }
    /* seq never goes back for an agent: a new run starts at least at the clock in
     * microseconds, above every seq of an earlier run however its journal was lost,
     * truncated or damaged (a run emits far fewer than a million events a second). */
    uint64_t floor = clock_us();
    if (j->last_seq < floor) {
        if (j->delivered == j->last_seq)
            j->delivered = floor; /* the seqs skipped were never used */
        j->last_seq = floor;
    }
    /* Start from a compact file; pending lines survive until re-sent and delivered. A
     * journal compacted when the last run ended is kept as it is, and the new run's start
     * appended: a restart does not write a large journal again. */
    if (j->loaded_compact && !damage[0] && !j->fresh) {
        j->fd = open_file(j->path, UV_FS_O_WRONLY | UV_FS_O_APPEND);
        j->compacted = j->bytes;
        rc = j->fd < 0 ? fsio_error(j->fd)
                       : buf_printf(j, "S\t%" PRIu64 "\t%" PRIu64 "\n", j->last_seq, j->delivered);
        if (rc == 0)
            rc = journal_commit(j);
    } else {
        rc = compact(j);
    }
    if (rc < 0)
        snprintf(reason, reason_cap, "%s: cannot write the journal: %s", j->path, em_strerror(rc));
    return rc;
}

static int peek_into(struct journal *j, const char *dir, char *reason, size_t reason_cap)
{
    memset(j, 0, sizeof(*j));
    hset_init(&j->files, record_key, NULL);
    j->fd = -1;
    em_arena_init(&j->records, RECORDS_MAX);
    em_arena_init(&j->loaded, RECORDS_MAX);
    em_arena_init(&j->loaded_side, RECORDS_MAX);
    reason[0] = '\0';
    j->dir = strdup(dir);
    j->path = fsio_join(dir, "journal");
    if (!j->dir || !j->path)
        return -EM_ENOMEM;
    struct fsio_stat st;
    int rc = fsio_stat(j->path, &st);
    if (rc < 0) {
        snprintf(reason, reason_cap, "%s: %s", j->path, em_strerror(rc));
        return rc;
    }
    char damage[256] = "";
    rc = load(j, reason, reason_cap, damage, sizeof(damage));
    if (rc == 0 && damage[0]) {
        snprintf(reason, reason_cap, "%s is damaged (%s)", j->path, damage);
        rc = -EM_ESTATE;
    }
    if (rc == 0 && !j->agent) {
        snprintf(reason, reason_cap, "%s is empty", j->path);
        rc = -EM_ENOENT;
    }
    return rc;
}

static void count_live(uint64_t key, uint64_t value, void *ctx)
{
    (void)key;
    *(size_t *)ctx += value != 0;
}

size_t journal_live_entities(const struct journal *j)
{
    size_t n = 0;
    ktab_each(&j->entities, count_live, &n);
    return n;
}

void journal_pending_clear(struct journal *j)
{
    for (size_t i = 0; i < j->npending; i++)
        free(j->pending[i].line);
    free(j->pending);
    j->pending = NULL;
    j->npending = j->pending_cap = 0;
}

/* Compaction is due at the end of a run: everything delivered, and grown by a quarter
 * since the last one. */
static bool compact_due_at_end(const struct journal *j)
{
    return j->fd >= 0 && j->delivered == j->last_seq && j->npending == 0 &&
           j->bytes > j->compacted + j->compacted / 4 + 65536;
}

/* A compaction at the end of a run failed: said once, and not tried again before the
 * next start (which reads the journal whole). */
static void compact_failed_at_end(struct journal *j, int rc)
{
    em_log(EM_LOG_WARN, "%s: cannot compact the journal at exit (%s); it is read whole next time",
           j->path, em_strerror(rc));
    j->compacted = j->bytes;
}

static void compactor_main(void *arg)
{
    struct journal *j = arg;
    j->compact_rc = compact(j);
}

void journal_compact_start(struct journal *j)
{
    if (!j || j->compacting)
        return;
    bool hold = j->hold_compaction;
    j->hold_compaction = true; /* the commit only writes: compacting is this thread's job */
    int rc = journal_commit(j);
    j->hold_compaction = hold;
    if (rc < 0 || !compact_due_at_end(j))
        return;
    j->compacting = true;
    j->compact_rc = 0;
    j->compactor_runs = uv_thread_create(&j->compactor, compactor_main, j) == 0;
    if (!j->compactor_runs) /* no thread: compacted here, and the caller waits */
        compactor_main(j);
}

int journal_compact_join(struct journal *j)
{
    if (!j || !j->compacting)
        return 0;
    if (j->compactor_runs)
        uv_thread_join(&j->compactor);
    j->compacting = j->compactor_runs = false;
    if (j->compact_rc < 0)
        compact_failed_at_end(j, j->compact_rc);
    return j->compact_rc;
}

int journal_close(struct journal *j)
{
    if (!j)
        return 0;
    journal_compact_join(j);
    int rc = j->fd >= 0 ? journal_commit(j) : 0;
    /* Everything delivered: leave a compact journal, so the next start reads less and
     * needs not rewrite it. */
    int crc = rc == 0 && compact_due_at_end(j) ? compact(j) : 0;
    if (crc < 0)
        compact_failed_at_end(j, crc);
    if (j->fd >= 0) {
        if (rc == 0)
            sync_fd(j->fd);
        close_fd(j->fd);
    }
    if (j->lock)
        close_fd((uv_file)((intptr_t)j->lock - 1));
    journal_pending_clear(j);
    hset_free(&j->files);
    hmap_free(&j->dirs);
    free(j->dirv);
    em_arena_free(&j->records);
    em_arena_free(&j->loaded);
    em_arena_free(&j->loaded_side);
    ktab_free(&j->entities);
    free(j->buf);
    for (size_t i = 0; i < j->nroots; i++)
        free(j->roots[i]);
    free(j->roots);
    free(j->root_len);
    free(j->dir);
    free(j->agent);
    free(j->path);
    free(j);
    return rc;
}

int journal_open(struct journal **out, const char *dir, const char *agent, const char *const *roots,
                 size_t nroots, char *reason, size_t reason_cap)
{
    struct journal *j = calloc(1, sizeof(*j));
    *out = NULL;
    if (!j) {
        snprintf(reason, reason_cap, "out of memory");
        return -EM_ENOMEM;
    }
    int rc = open_into(j, dir, agent, roots, nroots, reason, reason_cap);
    if (rc < 0)
        journal_close(j);
    else
        *out = j;
    return rc;
}

int journal_peek(struct journal **out, const char *dir, char *reason, size_t reason_cap)
{
    struct journal *j = calloc(1, sizeof(*j));
    *out = NULL;
    if (!j) {
        snprintf(reason, reason_cap, "out of memory");
        return -EM_ENOMEM;
    }
    int rc = peek_into(j, dir, reason, reason_cap);
    if (rc < 0)
        journal_close(j);
    else
        *out = j;
    return rc;
}

void journal_info(const struct journal *j, struct journal_info *o)
{
    *o = (struct journal_info){.path = j->path,
                               .agent = j->agent,
                               .last_seq = j->last_seq,
                               .delivered = j->delivered,
                               .loaded_seq = j->loaded_seq,
                               .loaded_delivered = j->loaded_delivered,
                               .last_event_us = j->last_event_us,
                               .bytes = j->bytes,
                               .compacted = j->compacted,
                               .files = j->files.count,
                               .entities = ktab_count(&j->entities),
                               .pending = j->pending,
                               .npending = j->npending,
                               .mark_id = j->mark_id,
                               .fresh = j->fresh,
                               .loaded_compact = j->loaded_compact};
}

const char *journal_path(const struct journal *j)
{
    return j->path;
}

uint64_t journal_last_seq(const struct journal *j)
{
    return j->last_seq;
}

void journal_hold_compaction(struct journal *j, bool hold)
{
    j->hold_compaction = hold;
}

void journal_set_fsync(struct journal *j, bool on)
{
    j->fsync = on;
}
