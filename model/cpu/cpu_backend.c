/*
 * model/cpu/cpu_backend.c — the CPU backend's table: convolutions from
 * cpu_conv.c, batch norm and the element-wise ops as the reference code
 * split across the thread pool, memory from the host helpers.
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

typedef struct bn_job {
    const float *x, *gamma, *beta, *save_mean_in, *save_invstd_in, *dy;
    float *running_mean, *running_var, *y, *save_mean, *save_invstd, *dx, *dgamma, *dbeta;
    pnx_dims d;
    int training, accumulate;
    float momentum, eps;
} bn_job;

static int bn_forward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    pnx_ref_batchnorm_forward_channels(j->x, j->d, j->gamma, j->beta, j->running_mean,
                                       j->running_var, j->training, j->momentum, j->eps, j->y,
                                       j->save_mean, j->save_invstd, (int)c0, (int)c1);
    return 0;
}

static int bn_backward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    pnx_ref_batchnorm_backward_channels(j->x, j->d, j->gamma, j->save_mean_in, j->save_invstd_in,
                                        j->dy, j->dx, j->accumulate, j->dgamma, j->dbeta,
                                        (int)c0, (int)c1);
    return 0;
}

static int cpu_bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                          const float *beta, float *rm, float *rv, int training, float momentum,
                          float eps, float *y, float *save_mean, float *save_invstd)
{
    if (training && (size_t)d.n * d.h * d.w < 2)
        return pnx_host_batchnorm_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps,
                                          y, save_mean, save_invstd);
    bn_job j = {.x = x, .gamma = gamma, .beta = beta, .running_mean = rm, .running_var = rv,
                .y = y, .save_mean = save_mean, .save_invstd = save_invstd, .d = d,
                .training = training, .momentum = momentum, .eps = eps};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_forward_range, &j);
}

static int cpu_bn_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                           const float *save_mean, const float *save_invstd, const float *dy,
                           float *dx, int acc, float *dgamma, float *dbeta)
{
    bn_job j = {.x = x, .gamma = gamma, .save_mean_in = save_mean, .save_invstd_in = save_invstd,
                .dy = dy, .dx = dx, .accumulate = acc, .dgamma = dgamma, .dbeta = dbeta, .d = d};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_backward_range, &j);
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
    .batchnorm_forward = cpu_bn_forward,
    .batchnorm_backward = cpu_bn_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .maxpool2x2_forward = pnx_host_maxpool_forward,
    .maxpool2x2_backward = pnx_host_maxpool_backward,
    .concat_channels = pnx_host_concat,
    .split_channels = pnx_host_split,
    .seg_loss = pnx_host_seg_loss,
    .adam_update = cpu_adam_update,
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
