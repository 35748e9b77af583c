/*
 * common/threadpool.h — a fixed pool of worker threads and a parallel for.
 *
 * pnx_pool_for(pool, n, fn, ctx) splits [0, n) into contiguous chunks, runs
 * fn(ctx, begin, end) on the pool's threads (the calling thread helps) and
 * returns when all chunks are done. The first non-zero return of fn is
 * returned (the others still run to completion). A pool of 1 thread runs
 * everything on the caller. One pnx_pool_for at a time per pool.
 */
#ifndef PNX_COMMON_THREADPOOL_H
#define PNX_COMMON_THREADPOOL_H

#include <stddef.h>

typedef struct pnx_pool pnx_pool;
typedef int (*pnx_range_fn)(void *ctx, size_t begin, size_t end);

/* nthreads 0 = number of online CPUs. */
int pnx_pool_create(pnx_pool **out, unsigned nthreads);
unsigned pnx_pool_size(const pnx_pool *pool);
int pnx_pool_for(pnx_pool *pool, size_t n, pnx_range_fn fn, void *ctx);
void pnx_pool_destroy(pnx_pool *pool);

/* Number of online CPUs (at least 1). */
unsigned pnx_cpu_count(void);

#endif
