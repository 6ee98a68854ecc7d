#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "em_arena.h"
#include "em_error.h"
#include "entity.h"
#include "hash.h"

#define POOL_MAX_THREADS 64
#define POOL_MAX_FILE (256u << 20)
/* Threads wake each other in batches: the consumer when this many jobs in a row are ready
 * (or every job is), the workers when this many slots are free. One wake-up per job cost
 * two context switches per file on two cores. */
#define POOL_BATCH 8

/* Jobs live in a ring of `window` slots: job i in slot i % window. A worker may claim job
 * i only while i < consumed + window, so a slot is reused only after its job was handed
 * over. */
struct pool {
    pool_source_fn source;
    void *ctx;
    struct pool_job *slots;
    bool *ready;
    size_t window;
    size_t batch;      /* POOL_BATCH, or less for a small window */
    size_t next_claim; /* next job a worker takes */
    size_t consumed;   /* jobs handed to the consumer */
    bool source_done;  /* the source said there is no more (or failed) */
    int source_rc;     /* its failure, handed over after the last job */
    bool stop;
    unsigned idle_workers; /* waiting on work_cond: wake them only then */
    bool consumer_waiting; /* waiting on done_cond */
    uv_mutex_t lock;
    uv_cond_t work_cond; /* workers wait for room in the window */
    uv_cond_t done_cond; /* the consumer waits for its next job */
    uv_thread_t threads[POOL_MAX_THREADS];
    unsigned nthreads;
    unsigned started;             /* workers that took their owner number */
    bool collecting;              /* pool_collect_frees() */
    struct em_arena_bin freed;    /* what the consumer freed, not yet handed back */
    struct em_arena_bin giveback; /* handed back, by worker: under the lock */
    size_t freed_by_owner;        /* chunks and blocks workers took back to free */
};

static void run_job(struct pool_job *j, struct epu_parser **parsers, struct fsio_buf *buf)
{
    if (j->want_key && j->path)
        pathkey_init(&j->key, j->path);
    if (j->kind == EPU_KIND_NONE || j->kind >= EPU_KIND_COUNT)
        return;
    int uv_err = 0;
    j->rc = fsio_read_stat(j->path, POOL_MAX_FILE, buf, &j->stat, &uv_err);
    if (j->rc < 0) {
        j->read_failed = true;
        return;
    }
    j->bytes = buf->len;
    if (j->want_hash)
        j->hash = hash64c_bytes(buf->data, buf->len);
    struct epu_parser **pp = &parsers[j->kind];
    if (!*pp && !(*pp = epu_parser_new(j->kind, NULL))) {
        j->rc = -EM_ENOMEM;
        return;
    }
    j->rc = epu_parser_begin(*pp, j->path);
    if (j->rc == 0)
        j->rc = epu_parser_feed(*pp, buf->data, buf->len);
    if (j->rc == 0)
        j->rc = epu_parser_finish(*pp, &j->doc);
    if (j->rc < 0)
        j->diag = *epu_parser_diag(*pp);
    else if (j->want_json && j->doc && j->kind == EPU_KIND_MICROGRAPH)
        j->doc_json = entity_micrograph_doc_json(j->doc);
}

static void worker(void *arg)
{
    struct pool *p = arg;
    struct epu_parser *parsers[EPU_KIND_COUNT] = {0};
    struct fsio_buf buf = {0};
    uv_mutex_lock(&p->lock);
    /* Owner numbers 1..: chunks freed on the consumer's thread come back here. */
    unsigned me = ++p->started < EM_ARENA_OWNERS ? p->started : 0;
    em_arena_set_owner(me);
    for (;;) {
        while (!p->stop && !p->source_done && p->next_claim >= p->consumed + p->window) {
            p->idle_workers++;
            uv_cond_wait(&p->work_cond, &p->lock);
            p->idle_workers--;
        }
        if (p->stop || p->source_done)
            break;
        size_t i = p->next_claim;
        struct pool_job *j = &p->slots[i % p->window];
        memset(j, 0, sizeof(*j));
        int rc = p->source(p->ctx, j);
        if (rc <= 0) {
            p->source_done = true;
            p->source_rc = rc;
            uv_cond_broadcast(&p->work_cond);
            uv_cond_signal(&p->done_cond);
            break;
        }
        p->next_claim++;
        j->owner = me;
        p->freed_by_owner += me ? p->giveback.n[me] : 0;
        struct em_arena_chunk *mine = me ? em_arena_bin_take(&p->giveback, me) : NULL;
        uv_mutex_unlock(&p->lock);
        em_arena_chunks_free(mine);
        run_job(j, parsers, &buf);
        uv_mutex_lock(&p->lock);
        p->ready[i % p->window] = true;
        if (p->consumer_waiting && p->ready[p->consumed % p->window]) {
            size_t run = 0;
            while (run < p->batch && p->consumed + run < p->next_claim &&
                   p->ready[(p->consumed + run) % p->window])
                run++;
            /* A batch, or all there is: the window full of ready jobs, or the source done. */
            if (run >= p->batch || (p->consumed + run == p->next_claim && p->source_done))
                uv_cond_signal(&p->done_cond);
        }
    }
    uv_mutex_unlock(&p->lock);
    for (int k = 0; k < EPU_KIND_COUNT; k++)
        epu_parser_free(parsers[k]);
    fsio_buf_free(&buf);
    em_arena_set_owner(0);
}

struct pool *pool_start(pool_source_fn source, void *ctx, unsigned threads, size_t window)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->source = source;
    p->ctx = ctx;
    p->window = window ? window : 1;
    p->batch = p->window / 2 < POOL_BATCH ? (p->window / 2 ? p->window / 2 : 1) : POOL_BATCH;
    p->slots = calloc(p->window, sizeof(*p->slots));
    p->ready = calloc(p->window, sizeof(*p->ready));
    if (!p->slots || !p->ready || uv_mutex_init(&p->lock) != 0) {
        free(p->slots);
        free(p->ready);
        free(p);
        return NULL;
    }
    uv_cond_init(&p->work_cond);
    uv_cond_init(&p->done_cond);
    if (threads < 1)
        threads = 1;
    if (threads > POOL_MAX_THREADS)
        threads = POOL_MAX_THREADS;
    for (unsigned i = 0; i < threads; i++) {
        if (uv_thread_create(&p->threads[i], worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

int pool_next(struct pool *p, struct pool_job *out)
{
    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&p->lock);
    size_t i = p->consumed;
    for (;;) {
        if (i < p->next_claim && p->ready[i % p->window])
            break;
        if (p->source_done && i >= p->next_claim) {
            int rc = p->source_rc;
            uv_mutex_unlock(&p->lock);
            return rc;
        }
        p->consumer_waiting = true;
        uv_cond_wait(&p->done_cond, &p->lock);
        p->consumer_waiting = false;
    }
    if (p->freed.count)
        em_arena_bin_move(&p->giveback, &p->freed);
    *out = p->slots[i % p->window];
    memset(&p->slots[i % p->window], 0, sizeof(p->slots[0]));
    p->ready[i % p->window] = false;
    p->consumed++;
    if (p->idle_workers && p->next_claim + p->batch <= p->consumed + p->window)
        uv_cond_broadcast(&p->work_cond);
    uv_mutex_unlock(&p->lock);
    return 1;
}

void pool_collect_frees(struct pool *p)
{
    p->collecting = true;
    em_arena_collect(&p->freed);
}

void pool_job_clear(struct pool_job *j)
{
    cJSON_free(j->doc_json);
    free(j->path);
    epu_doc_free(j->doc);
    memset(j, 0, sizeof(*j));
}

void pool_job_done(struct pool *p, struct pool_job *j)
{
    if (p->collecting && j->owner) {
        if (j->path)
            em_arena_bin_put(&p->freed, j->owner, j->path, strlen(j->path) + 1);
        if (j->doc_json)
            em_arena_bin_put(&p->freed, j->owner, j->doc_json, strlen(j->doc_json) + 1);
        j->path = j->doc_json = NULL;
    }
    pool_job_clear(j);
}

size_t pool_freed_by_owner(const struct pool *p)
{
    return p->freed_by_owner;
}

size_t pool_done(const struct pool *p)
{
    return p->consumed;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    uv_mutex_lock(&p->lock);
    p->stop = true;
    uv_cond_broadcast(&p->work_cond);
    uv_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        uv_thread_join(&p->threads[i]);
    for (size_t i = p->consumed; i < p->next_claim; i++)
        pool_job_clear(&p->slots[i % p->window]);
    if (p->collecting)
        em_arena_collect(NULL);
    em_arena_bin_free(&p->freed);
    em_arena_bin_free(&p->giveback);
    uv_cond_destroy(&p->work_cond);
    uv_cond_destroy(&p->done_cond);
    uv_mutex_destroy(&p->lock);
    free(p->slots);
    free(p->ready);
    free(p);
}

int pool_array_source(void *ctx, struct pool_job *job)
{
    struct pool_array *a = ctx;
    if (a->next >= a->n)
        return 0;
    const struct pool_job *from = &a->jobs[a->next++];
    job->path = strdup(from->path);
    if (!job->path)
        return -EM_ENOMEM;
    job->kind = from->kind;
    job->tag = from->tag;
    job->want_hash = from->want_hash;
    job->want_json = from->want_json;
    return 1;
}
