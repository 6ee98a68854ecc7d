#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "em_error.h"

#define POOL_MAX_THREADS 64
#define POOL_MAX_FILE (256u << 20)

struct pool {
    struct pool_job *jobs;
    bool *ready;
    size_t n;
    size_t window;
    size_t next_claim; /* next job a worker takes */
    size_t consumed;   /* jobs returned to the consumer */
    bool stop;
    uv_mutex_t lock;
    uv_cond_t work_cond; /* workers wait for room in the window */
    uv_cond_t done_cond; /* the consumer waits for its next job */
    uv_thread_t threads[POOL_MAX_THREADS];
    unsigned nthreads;
};

static void run_job(struct pool_job *j, struct epu_parser **parsers, struct fsio_buf *buf)
{
    int uv_err = 0;
    j->rc = fsio_stat(j->path, &j->stat);
    if (j->rc == 0)
        j->rc = fsio_read(j->path, POOL_MAX_FILE, buf, &uv_err);
    if (j->rc < 0) {
        j->read_failed = true;
        return;
    }
    j->bytes = buf->len;
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
}

static void worker(void *arg)
{
    struct pool *p = arg;
    struct epu_parser *parsers[EPU_KIND_COUNT] = {0};
    struct fsio_buf buf = {0};
    uv_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->next_claim < p->n && p->next_claim >= p->consumed + p->window)
            uv_cond_wait(&p->work_cond, &p->lock);
        if (p->stop || p->next_claim >= p->n)
            break;
        size_t i = p->next_claim++;
        uv_mutex_unlock(&p->lock);
        run_job(&p->jobs[i], parsers, &buf);
        uv_mutex_lock(&p->lock);
        p->ready[i] = true;
        if (i == p->consumed)
            uv_cond_signal(&p->done_cond);
    }
    uv_mutex_unlock(&p->lock);
    for (int k = 0; k < EPU_KIND_COUNT; k++)
        epu_parser_free(parsers[k]);
    fsio_buf_free(&buf);
}

struct pool *pool_start(struct pool_job *jobs, size_t n, unsigned threads, size_t window)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->jobs = jobs;
    p->n = n;
    p->window = window ? window : 1;
    p->ready = calloc(n ? n : 1, sizeof(*p->ready));
    if (!p->ready || uv_mutex_init(&p->lock) != 0) {
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

struct pool_job *pool_next(struct pool *p)
{
    uv_mutex_lock(&p->lock);
    if (p->consumed >= p->n) {
        uv_mutex_unlock(&p->lock);
        return NULL;
    }
    size_t i = p->consumed;
    while (!p->ready[i])
        uv_cond_wait(&p->done_cond, &p->lock);
    p->consumed++;
    uv_cond_broadcast(&p->work_cond);
    uv_mutex_unlock(&p->lock);
    return &p->jobs[i];
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
    for (size_t i = 0; i < p->n; i++) {
        epu_doc_free(p->jobs[i].doc);
        p->jobs[i].doc = NULL;
    }
    uv_cond_destroy(&p->work_cond);
    uv_cond_destroy(&p->done_cond);
    uv_mutex_destroy(&p->lock);
    free(p->ready);
    free(p);
}
