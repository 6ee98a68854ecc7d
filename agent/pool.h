/* pool.h — parse many EPU files on several threads, hand results over in order.
 *
 * Workers read and parse jobs ahead of the consumer, but never more than `window` jobs
 * ahead, so memory stays bounded however many files there are. pool_next() returns the
 * jobs strictly in submission order on the calling (consumer) thread, which keeps output
 * deterministic.
 */
#ifndef EM_POOL_H
#define EM_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "epu.h"
#include "fsio.h"

struct pool_job {
    /* set by the submitter */
    const char *path; /* absolute or cwd-relative path to read; must outlive the job */
    enum epu_kind kind;
    void *tag; /* the submitter's own pointer */
    /* set by the worker */
    int rc;                /* 0, or a negative EM_E* for read or parse failures */
    bool read_failed;      /* rc comes from reading, not parsing */
    struct epu_doc *doc;   /* on success; the consumer takes ownership */
    struct epu_diag diag;  /* on parse failure */
    struct fsio_stat stat; /* of the file when read */
    size_t bytes;
};

struct pool;

/* Starts `threads` workers (at least 1) over `jobs[0..n)`. The array must stay valid
 * until pool_free(). Returns NULL when out of memory or threads cannot start. */
struct pool *pool_start(struct pool_job *jobs, size_t n, unsigned threads, size_t window);

/* Waits for the next job in order and returns it, or NULL after the last one. The job
 * stays valid until pool_free(); take `doc` if you keep it (set it to NULL). */
struct pool_job *pool_next(struct pool *p);

/* Number of jobs returned by pool_next() so far. */
size_t pool_done(const struct pool *p);

/* Stops the workers (after their current job) and frees documents not taken. */
void pool_free(struct pool *p);

#endif
