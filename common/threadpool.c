/* common/threadpool.c — fixed worker threads and a parallel for; see threadpool.h. */
#include "common/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"

struct pnx_pool {
    pthread_t *threads;
    unsigned nthreads;          /* workers, not counting the caller */
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    /* The job in progress. */
    pnx_range_fn fn;
    void *ctx;
    size_t n, chunk, next;
    unsigned active;            /* workers inside the current job */
    unsigned generation;
    int first_error;
    int shutdown;
};

unsigned pnx_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

/* Takes chunks until none are left; returns with the lock held. */
static void run_chunks(pnx_pool *p)
{
    while (p->next < p->n) {
        size_t begin = p->next;
        size_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        p->next = end;
        pnx_range_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->lock);
        int rc = fn(ctx, begin, end);
        pthread_mutex_lock(&p->lock);
        if (rc != 0 && p->first_error == 0)
            p->first_error = rc;
    }
}

static void *worker_main(void *arg)
{
    pnx_pool *p = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->shutdown && p->generation == seen)
            pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->shutdown)
            break;
        seen = p->generation;
        p->active++;
        run_chunks(p);
        p->active--;
        if (p->active == 0)
            pthread_cond_broadcast(&p->work_done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int pnx_pool_create(pnx_pool **out, unsigned nthreads)
{
    *out = NULL;
    if (nthreads == 0)
        nthreads = pnx_cpu_count();
    pnx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return pnx_fail(PNX_ENOMEM, "out of memory for a thread pool");
    p->nthreads = nthreads - 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    if (p->nthreads > 0) {
        p->threads = calloc(p->nthreads, sizeof *p->threads);
        if (!p->threads) {
            pnx_pool_destroy(p);
            return pnx_fail(PNX_ENOMEM, "out of memory for a thread pool");
        }
        for (unsigned i = 0; i < p->nthreads; i++) {
            if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
                p->nthreads = i;
                pnx_pool_destroy(p);
                return pnx_fail(PNX_EIO, "cannot start thread %u of the pool", i);
            }
        }
    }
    *out = p;
    return PNX_OK;
}

unsigned pnx_pool_size(const pnx_pool *pool) { return pool ? pool->nthreads + 1 : 1; }

int pnx_pool_for(pnx_pool *p, size_t n, pnx_range_fn fn, void *ctx)
{
    if (n == 0)
        return 0;
    if (!p || p->nthreads == 0)
        return fn(ctx, 0, n);
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->next = 0;
    /* A few chunks per thread balance uneven work without much locking. */
    size_t parts = (size_t)(p->nthreads + 1) * 4;
    p->chunk = (n + parts - 1) / parts;
    p->first_error = 0;
    p->generation++;
    pthread_cond_broadcast(&p->work_ready);
    run_chunks(p);
    while (p->active > 0)
        pthread_cond_wait(&p->work_done, &p->lock);
    int rc = p->first_error;
    p->fn = NULL;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pnx_pool_destroy(pnx_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
