/*
 * model/cpu/cpu_batchnorm.c — the CPU backend's BatchNorm and fused
 * BatchNorm+ReLU, threaded over channels.
 *
 * The statistics and the backward's per-channel factors come from
 * ops_ref.c's own helpers, so the arithmetic is the reference's; the fused
 * ops only save memory traffic: the forward applies max(·, 0) as it stores
 * y, and the backward masks dy by y > 0 as it reads it, in both its passes,
 * with no temporary tensor.
 */
#include "common/error.h"
#include "model/backend_host.h"
#include "model/cpu/cpu_internal.h"
#include "model/ops_ref.h"

typedef struct bn_job {
    const float *x, *y_in, *gamma, *beta, *save_mean_in, *save_invstd_in, *dy;
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

/* y = max(x·scale + shift, 0) per channel, in one pass over x. */
static int bn_relu_forward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    const pnx_dims d = j->d;
    const size_t P = (size_t)d.h * d.w;
    for (int c = (int)c0; c < (int)c1; c++) {
        float scale, shift;
        pnx_ref_batchnorm_channel_affine(j->x, d, j->gamma, j->beta, j->running_mean,
                                         j->running_var, j->training, j->momentum, j->eps,
                                         j->save_mean, j->save_invstd, c, &scale, &shift);
        for (int n = 0; n < d.n; n++) {
            const float *xr = j->x + ((size_t)n * d.c + c) * P;
            float *yr = j->y + ((size_t)n * d.c + c) * P;
            for (size_t p = 0; p < P; p++) {
                float v = xr[p] * scale + shift;
                yr[p] = v > 0.0f ? v : 0.0f;
            }
        }
    }
    return 0;
}

/* BatchNorm's backward of g = (dy where y > 0, else 0), g never stored. */
static int bn_relu_backward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    const pnx_dims d = j->d;
    const size_t P = (size_t)d.h * d.w;
    const double M = (double)d.n * (double)P;
    for (int c = (int)c0; c < (int)c1; c++) {
        double sum_g = 0, sum_g_x = 0;
        for (int n = 0; n < d.n; n++) {
            const size_t off = ((size_t)n * d.c + c) * P;
            const float *xr = j->x + off, *yr = j->y_in + off, *dyr = j->dy + off;
            for (size_t p = 0; p < P; p++) {
                float g = yr[p] > 0.0f ? dyr[p] : 0.0f;
                sum_g += g;
                sum_g_x += (double)g * xr[p];
            }
        }
        pnx_bn_grad_coef k;
        pnx_ref_batchnorm_grad_coef(j->gamma[c], j->save_mean_in[c], j->save_invstd_in[c], M,
                                    sum_g, sum_g_x, &k);
        j->dgamma[c] += k.dgamma;
        j->dbeta[c] += k.dbeta;
        if (!j->dx)
            continue;
        for (int n = 0; n < d.n; n++) {
            const size_t off = ((size_t)n * d.c + c) * P;
            const float *xr = j->x + off, *yr = j->y_in + off, *dyr = j->dy + off;
            float *dxr = j->dx + off;
            if (j->accumulate)
                for (size_t p = 0; p < P; p++) {
                    float g = yr[p] > 0.0f ? dyr[p] : 0.0f;
                    dxr[p] += k.a * g + k.b * xr[p] + k.k;
                }
            else
                for (size_t p = 0; p < P; p++) {
                    float g = yr[p] > 0.0f ? dyr[p] : 0.0f;
                    dxr[p] = k.a * g + k.b * xr[p] + k.k;
                }
        }
    }
    return 0;
}

static int training_too_small(pnx_dims d, int training)
{
    return training && (size_t)d.n * d.h * d.w < 2;
}

int pnx_cpu_bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                       const float *beta, float *rm, float *rv, int training, float momentum,
                       float eps, float *y, float *save_mean, float *save_invstd)
{
    /* The reference states the error. */
    if (training_too_small(d, training))
        return pnx_host_batchnorm_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps,
                                          y, save_mean, save_invstd);
    bn_job j = {.x = x, .gamma = gamma, .beta = beta, .running_mean = rm, .running_var = rv,
                .y = y, .save_mean = save_mean, .save_invstd = save_invstd, .d = d,
                .training = training, .momentum = momentum, .eps = eps};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_forward_range, &j);
}

int pnx_cpu_bn_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                        const float *save_mean, const float *save_invstd, const float *dy,
                        float *dx, int acc, float *dgamma, float *dbeta)
{
    bn_job j = {.x = x, .gamma = gamma, .save_mean_in = save_mean, .save_invstd_in = save_invstd,
                .dy = dy, .dx = dx, .accumulate = acc, .dgamma = dgamma, .dbeta = dbeta, .d = d};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_backward_range, &j);
}

int pnx_cpu_bn_relu_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                            const float *beta, float *rm, float *rv, int training, float momentum,
                            float eps, float *y, float *save_mean, float *save_invstd)
{
    if (training_too_small(d, training))
        return pnx_ref_batchnorm_relu_forward(x, d, gamma, beta, rm, rv, training, momentum, eps,
                                              y, save_mean, save_invstd);
    bn_job j = {.x = x, .gamma = gamma, .beta = beta, .running_mean = rm, .running_var = rv,
                .y = y, .save_mean = save_mean, .save_invstd = save_invstd, .d = d,
                .training = training, .momentum = momentum, .eps = eps};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_relu_forward_range, &j);
}

int pnx_cpu_bn_relu_backward(pnx_backend *be, const float *x, const float *y, pnx_dims d,
                             const float *gamma, const float *save_mean, const float *save_invstd,
                             const float *dy, float *dx, int acc, float *dgamma, float *dbeta)
{
    bn_job j = {.x = x, .y_in = y, .gamma = gamma, .save_mean_in = save_mean,
                .save_invstd_in = save_invstd, .dy = dy, .dx = dx, .accumulate = acc,
                .dgamma = dgamma, .dbeta = dbeta, .d = d};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)d.c, bn_relu_backward_range, &j);
}
