/* pool.h — parse many EPU files on several threads, hand the results over in order.
 *
 * A source callback says which file comes next; workers take jobs from it, read and parse
 * them, and pool_next() hands them to the consumer strictly in the source's order, which
 * keeps output deterministic. Workers never run more than `window` jobs ahead of the
 * consumer, so memory stays bounded however many files there are, and the source is asked
 * for a job only when there is room: it can produce its jobs lazily (list a directory when
 * its files are due) instead of holding every path.
 */
#ifndef EM_POOL_H
#define EM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epu.h"
#include "fsio.h"
#include "pathkey.h"

struct pool_job {
    /* set by the source */
    char *path;         /* what to read (malloc'd; the job owns it) */
    size_t rel_off;     /* path + rel_off: the path as the consumer names it */
    enum epu_kind kind; /* EPU_KIND_NONE: nothing to read, passed through (a marker) */
    void *tag;          /* the source's own pointer, passed through */
    bool want_hash;     /* also hash the content (hash.h) */
    bool want_json;     /* a micrograph's fields as JSON text too (entity.h) */
    bool want_key;      /* also key the path (pathkey.h), off the consumer's thread */
    /* set by the worker */
    unsigned owner;        /* of its allocations (em_arena.h), 0 when none */
    struct pathkey key;    /* of path, with want_key */
    int rc;                /* 0, or a negative EM_E* for read or parse failures */
    bool read_failed;      /* rc comes from reading, not parsing */
    struct epu_doc *doc;   /* on success */
    struct epu_diag diag;  /* on parse failure */
    struct fsio_stat stat; /* of the file when read */
    size_t bytes;
    uint64_t hash;  /* of the content read, when want_hash */
    char *doc_json; /* with want_json, for a micrograph parsed (cJSON_free; NULL on failure) */
};

/* Fills *job (zeroed before the call) with the next job and returns 1; returns 0 when
 * there are no more, or a negative EM_E* when the source failed (the consumer then gets
 * that code after the jobs before it). Called with the pool's lock held, one call at a
 * time, on a worker thread: keep it short (listing one directory is fine). */
typedef int (*pool_source_fn)(void *ctx, struct pool_job *job);

struct pool;

/* Starts `threads` workers (at least 1) over the jobs of `source`. Returns NULL when out
 * of memory or threads cannot start. */
struct pool *pool_start(pool_source_fn source, void *ctx, unsigned threads, size_t window);

/* Waits for the next job in order and moves it into *out (you own out->path and out->doc:
 * pool_job_clear()). Returns 1, 0 after the last job, or the source's negative EM_E*. */
int pool_next(struct pool *p, struct pool_job *out);

/* From now on the calling thread (the consumer's) collects the workers' arena chunks it
 * frees (a document's, wherever it is freed) and pool_next() hands them back to the worker
 * that allocated them, to be freed there: no malloc-arena lock taken across threads
 * (em_arena.h). Until pool_free(), which frees what is still collected and ends it. */
void pool_collect_frees(struct pool *p);

/* Frees a job's path and document and zeroes it. */
void pool_job_clear(struct pool_job *j);

/* pool_job_clear() for a job of `p` on the consumer's thread: with pool_collect_frees(),
 * what its worker allocated goes back to it. */
void pool_job_done(struct pool *p, struct pool_job *j);

/* Chunks and blocks the workers took back and freed so far (pool_collect_frees()): read
 * it once the workers are idle (or for a figure only). */
size_t pool_freed_by_owner(const struct pool *p);

/* Number of jobs handed over by pool_next() so far. */
size_t pool_done(const struct pool *p);

/* Stops the workers (after their current job) and frees the jobs not handed over. Call
 * it before freeing what the source reads. */
void pool_free(struct pool *p);

/* A source over a fixed array of jobs (path, kind, tag and want_hash are read; paths are
 * copied as they are handed out; rel_off is 0). */
struct pool_array {
    const struct pool_job *jobs;
    size_t n, next;
};
int pool_array_source(void *ctx, struct pool_job *job);

#endif
