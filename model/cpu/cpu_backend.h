/*
 * model/cpu/cpu_backend.h — the fast CPU backend.
 *
 * Convolutions are im2col + BLAS sgemm (OpenBLAS when available), tiled by
 * output rows so the im2col buffer stays under PNX_CPU_COL_BUDGET floats
 * at any image size; the transposed conv is one GEMM plus a scatter per
 * tile; the backward of a 3×3 conv's input is the forward conv with the
 * flipped, transposed kernel. Threads: one common/threadpool.h pool for
 * everything; each GEMM is cut into one slab per thread along its larger
 * operand and BLAS runs single-threaded inside each slab.
 * Every op is tested against model/ops_ref.c (tests/test_model_ops.c).
 */
#ifndef PNX_MODEL_CPU_BACKEND_H
#define PNX_MODEL_CPU_BACKEND_H

#include "model/backend.h"

#include <stddef.h>

/* Floats of im2col workspace per tile (16 MiB). */
#define PNX_CPU_COL_BUDGET (4u * 1024u * 1024u)

/* The budget in use: PNX_CPU_COL_BUDGET unless a test lowers it to force
 * many tiles on small images. */
extern size_t pnx_cpu_col_budget;

/* threads 0 = all online CPUs. Sets OpenBLAS to one thread per call (the
 * process-wide setting): the pool supplies the parallelism. */
int pnx_backend_cpu_create(pnx_backend **out, unsigned threads);

#endif
