#include "pfor.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <uv.h>

struct pfor {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t work; /* the helper waits for a loop (or the stop) */
    uv_cond_t done; /* the caller waits for the helper to leave a loop */
    bool stop;
    bool open; /* a loop the helper may still join */
    bool busy; /* the helper is in a loop */
    /* the loop */
    size_t n, chunk;
    pfor_fn fn;
    void *ctx;
    atomic_size_t next;
    size_t helped;
};

static size_t run_chunks(struct pfor *p)
{
    size_t ran = 0;
    for (;;) {
        size_t from = atomic_fetch_add(&p->next, p->chunk);
        if (from >= p->n)
            return ran;
        size_t to = p->n - from > p->chunk ? from + p->chunk : p->n;
        p->fn(p->ctx, from, to);
        ran++;
    }
}

static void helper(void *arg)
{
    struct pfor *p = arg;
    uv_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && !p->open)
            uv_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        p->open = false; /* taken: the caller now waits for it */
        p->busy = true;
        uv_mutex_unlock(&p->mu);
        size_t ran = run_chunks(p);
        uv_mutex_lock(&p->mu);
        p->helped += ran;
        p->busy = false;
        uv_cond_signal(&p->done);
    }
    uv_mutex_unlock(&p->mu);
}

struct pfor *pfor_start(void)
{
    struct pfor *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (uv_mutex_init(&p->mu) != 0) {
        free(p);
        return NULL;
    }
    uv_cond_init(&p->work);
    uv_cond_init(&p->done);
    atomic_init(&p->next, 0);
    if (uv_thread_create(&p->thread, helper, p) != 0) {
        uv_cond_destroy(&p->work);
        uv_cond_destroy(&p->done);
        uv_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

bool pfor_begin(struct pfor *p, size_t n, size_t chunk, pfor_fn fn, void *ctx)
{
    if (chunk == 0)
        chunk = 1;
    if (!p || n <= chunk)
        return false;
    uv_mutex_lock(&p->mu);
    p->n = n;
    p->chunk = chunk;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->next, 0);
    p->open = true;
    uv_cond_signal(&p->work);
    uv_mutex_unlock(&p->mu);
    return true;
}

void pfor_finish(struct pfor *p)
{
    run_chunks(p);
    uv_mutex_lock(&p->mu);
    p->open = false; /* not taken yet: everything is done already */
    while (p->busy)
        uv_cond_wait(&p->done, &p->mu);
    uv_mutex_unlock(&p->mu);
}

void pfor_run(struct pfor *p, size_t n, size_t chunk, pfor_fn fn, void *ctx)
{
    if (pfor_begin(p, n, chunk, fn, ctx))
        pfor_finish(p);
    else if (n)
        fn(ctx, 0, n);
}

size_t pfor_helped(const struct pfor *p)
{
    return p ? p->helped : 0;
}

void pfor_stop(struct pfor *p)
{
    if (!p)
        return;
    uv_mutex_lock(&p->mu);
    p->stop = true;
    uv_cond_signal(&p->work);
    uv_mutex_unlock(&p->mu);
    uv_thread_join(&p->thread);
    uv_cond_destroy(&p->work);
    uv_cond_destroy(&p->done);
    uv_mutex_destroy(&p->mu);
    free(p);
}
