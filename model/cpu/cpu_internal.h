/*
 * model/cpu/cpu_internal.h — state shared by the CPU backend's files.
 * Internal to model/cpu/.
 */
#ifndef PNX_MODEL_CPU_INTERNAL_H
#define PNX_MODEL_CPU_INTERNAL_H

#include "common/threadpool.h"
#include "model/backend.h"

typedef struct cpu_impl {
    pnx_pool *pool;
    unsigned threads;
    float *work;     /* im2col columns / transposed-conv tile */
    size_t work_cap; /* floats */
    float *wflip;    /* the flipped, transposed 3×3 kernel for backward data */
    size_t wflip_cap;
} cpu_impl;

static inline cpu_impl *cpu_of(pnx_backend *be)
{
    return (cpu_impl *)be->impl;
}

/* Grows *buf to at least n floats (contents not kept). */
int pnx_cpu_reserve(float **buf, size_t *cap, size_t n);

/* cpu_conv.c */
int pnx_cpu_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            const float *bias, int cout, float *y);
int pnx_cpu_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                             int cout, const float *dy, float *dx, int acc, float *dw, float *db);
int pnx_cpu_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            const float *bias, int cout, float *y);
int pnx_cpu_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                             int cout, const float *dy, float *dx, int acc, float *dw, float *db);
int pnx_cpu_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y);
int pnx_cpu_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db);
/* db (C) += Σ over n and pixels of dy (N,C,P), threaded over channels. */
int pnx_cpu_bias_grad(pnx_backend *be, const float *dy, int n, int c, size_t p, float *db);

/* cpu_batchnorm.c: the backend.h ops of the same names. */
int pnx_cpu_bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                       const float *beta, float *rm, float *rv, int training, float momentum,
                       float eps, float *y, float *save_mean, float *save_invstd);
int pnx_cpu_bn_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                        const float *save_mean, const float *save_invstd, const float *dy,
                        float *dx, int acc, float *dgamma, float *dbeta);
int pnx_cpu_bn_relu_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                            const float *beta, float *rm, float *rv, int training, float momentum,
                            float eps, float *y, float *save_mean, float *save_invstd);
int pnx_cpu_bn_relu_backward(pnx_backend *be, const float *x, const float *y, pnx_dims d,
                             const float *gamma, const float *save_mean, const float *save_invstd,
                             const float *dy, float *dx, int acc, float *dgamma, float *dbeta);

#endif
