/*
 * model/cpu/cpu_backend.c — the CPU backend's table: convolutions from
 * cpu_conv.c, BatchNorm (plain and fused with ReLU) from cpu_batchnorm.c,
 * the element-wise ops as the reference code split across the thread pool,
 * memory and float32 NCHW activations from the host helpers.
 */
#include "model/cpu/cpu_backend.h"

#include <stdlib.h>

#include "common/error.h"
#include "model/backend_host.h"
#include "model/cpu/cpu_internal.h"
#include "model/ops_ref.h"

#ifdef PNX_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Element-wise work below this size is not worth waking the pool. */
#define PARALLEL_MIN_ELEMENTS 65536

static void cpu_destroy(pnx_backend *be)
{
    cpu_impl *c = cpu_of(be);
    if (c) {
        pnx_pool_destroy(c->pool);
        free(c->work);
        free(c->wflip);
        free(c);
    }
    free(be);
}

typedef struct relu_job {
    const float *in, *y;
    float *out;
} relu_job;

static int relu_forward_range(void *ctx, size_t b, size_t e)
{
    const relu_job *j = ctx;
    pnx_ref_relu_forward(j->in + b, j->out + b, e - b);
    return 0;
}

static int relu_backward_range(void *ctx, size_t b, size_t e)
{
    const relu_job *j = ctx;
    pnx_ref_relu_backward(j->y + b, j->in + b, j->out + b, e - b);
    return 0;
}

static int cpu_relu_forward(pnx_backend *be, const float *x, float *y, size_t n)
{
    relu_job j = {x, NULL, y};
    if (n < PARALLEL_MIN_ELEMENTS)
        return relu_forward_range(&j, 0, n);
    return pnx_pool_for(cpu_of(be)->pool, n, relu_forward_range, &j);
}

static int cpu_relu_backward(pnx_backend *be, const float *y, const float *dy, float *dx, size_t n)
{
    relu_job j = {dy, y, dx};
    if (n < PARALLEL_MIN_ELEMENTS)
        return relu_backward_range(&j, 0, n);
    return pnx_pool_for(cpu_of(be)->pool, n, relu_backward_range, &j);
}

typedef struct adam_job {
    float *param, *m, *v;
    const float *grad;
    const pnx_adam_hparams *h;
    int64_t step;
} adam_job;

static int adam_range(void *ctx, size_t b, size_t e)
{
    const adam_job *j = ctx;
    pnx_ref_adam_update(j->param + b, j->grad + b, j->m + b, j->v + b, e - b, j->h, j->step);
    return 0;
}

static int cpu_adam_update(pnx_backend *be, float *param, const float *grad, float *m, float *v,
                           size_t n, const pnx_adam_hparams *h, int64_t step)
{
    adam_job j = {param, m, v, grad, h, step};
    return pnx_pool_for(cpu_of(be)->pool, n, adam_range, &j);
}

static const pnx_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = pnx_host_alloc,
    .release = pnx_host_release,
    .upload = pnx_host_copy,
    .download = pnx_host_copy,
    .fill_zero = pnx_host_fill_zero,
    .conv3x3_forward = pnx_cpu_conv3x3_forward,
    .conv3x3_backward = pnx_cpu_conv3x3_backward,
    .conv1x1_forward = pnx_cpu_conv1x1_forward,
    .conv1x1_backward = pnx_cpu_conv1x1_backward,
    .upconv2x2_forward = pnx_cpu_upconv2x2_forward,
    .upconv2x2_backward = pnx_cpu_upconv2x2_backward,
    .batchnorm_forward = pnx_cpu_bn_forward,
    .batchnorm_backward = pnx_cpu_bn_backward,
    .batchnorm_relu_forward = pnx_cpu_bn_relu_forward,
    .batchnorm_relu_backward = pnx_cpu_bn_relu_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .maxpool2x2_forward = pnx_host_maxpool_forward,
    .maxpool2x2_backward = pnx_host_maxpool_backward,
    .concat_channels = pnx_host_concat,
    .split_channels = pnx_host_split,
    .seg_loss = pnx_host_seg_loss,
    .adam_update = cpu_adam_update,
    .act_upload = pnx_host_act_upload,
    .act_download = pnx_host_act_download,
    .mem_info = NULL,
};

int pnx_backend_cpu_create(pnx_backend **out, unsigned threads)
{
    *out = NULL;
    pnx_backend *be = calloc(1, sizeof *be);
    cpu_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    be->ops = &cpu_ops;
    be->impl = c;
    be->act_size = sizeof(float);
    c->threads = threads ? threads : pnx_cpu_count();
    int rc = pnx_pool_create(&c->pool, c->threads);
    if (rc) {
        cpu_destroy(be);
        return pnx_fail_prefix(rc, "CPU backend thread pool");
    }
#ifdef PNX_HAVE_OPENBLAS
    /* The pool cuts every GEMM into per-thread slabs (cpu_conv.c): BLAS's
     * own threads would only spin beside it. */
    openblas_set_num_threads(1);
#endif
    *out = be;
    return 0;
}
