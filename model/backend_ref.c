/*
 * model/backend_ref.c — the reference backend: host memory and the plain
 * loops of ops_ref.c. Used by tests to run the whole U-Net on the oracle.
 * Also defines pnx_backend_destroy and the host-memory helpers shared with
 * the CPU backend (backend_host.h). Activations are float32 NCHW
 * (act_size 4); BatchNorm+ReLU is the unfused composition, the oracle for
 * every fused one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/backend_host.h"
#include "model/ops_ref.h"

int pnx_host_alloc(pnx_backend *be, size_t bytes, void **out)
{
    (void)be;
    /* 64-byte alignment suits SIMD loads and keeps BLAS on its fast path. */
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        *out = NULL;
        return pnx_fail(PNX_ENOMEM, "out of memory allocating %zu bytes", bytes);
    }
    memset(p, 0, rounded ? rounded : 64);
    *out = p;
    return 0;
}

void pnx_host_release(pnx_backend *be, void *p)
{
    (void)be;
    free(p);
}

int pnx_host_copy(pnx_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

int pnx_host_fill_zero(pnx_backend *be, void *p, size_t bytes)
{
    (void)be;
    if (bytes)
        memset(p, 0, bytes);
    return 0;
}

/* Activations on the host are float32 NCHW: moving them is a copy. */
static int act_copy(float *dst, const float *src, pnx_dims d)
{
    if (d.n < 0 || d.c < 0 || d.h < 0 || d.w < 0)
        return pnx_fail(PNX_EINVAL, "activation shape %dx%dx%dx%d has a negative side", d.n, d.c,
                        d.h, d.w);
    size_t count = pnx_dims_count(d);
    if (count > SIZE_MAX / sizeof *dst)
        return pnx_fail(PNX_ERANGE, "activation of %zu values is too large", count);
    if (count)
        memmove(dst, src, count * sizeof *dst);
    return 0;
}

int pnx_host_act_upload(pnx_backend *be, float *dst, const float *host, pnx_dims d)
{
    (void)be;
    return act_copy(dst, host, d);
}

int pnx_host_act_download(pnx_backend *be, float *host, const float *src, pnx_dims d)
{
    (void)be;
    return act_copy(host, src, d);
}

static void ref_destroy(pnx_backend *be)
{
    free(be);
}

static int ref_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               const float *bias, int cout, float *y)
{
    (void)be;
    pnx_ref_conv3x3_forward(x, xd, w, bias, cout, y);
    return 0;
}

static int ref_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                int cout, const float *dy, float *dx, int acc, float *dw,
                                float *db)
{
    (void)be;
    pnx_ref_conv3x3_backward(x, xd, w, cout, dy, dx, acc, dw, db);
    return 0;
}

static int ref_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               const float *bias, int cout, float *y)
{
    (void)be;
    pnx_ref_conv1x1_forward(x, xd, w, bias, cout, y);
    return 0;
}

static int ref_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                int cout, const float *dy, float *dx, int acc, float *dw,
                                float *db)
{
    (void)be;
    pnx_ref_conv1x1_backward(x, xd, w, cout, dy, dx, acc, dw, db);
    return 0;
}

static int ref_upconv_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y)
{
    (void)be;
    pnx_ref_upconv2x2_forward(x, xd, w, bias, cout, y);
    return 0;
}

static int ref_upconv_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db)
{
    (void)be;
    pnx_ref_upconv2x2_backward(x, xd, w, cout, dy, dx, acc, dw, db);
    return 0;
}

int pnx_host_batchnorm_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                               const float *beta, float *rm, float *rv, int training,
                               float momentum, float eps, float *y, float *save_mean,
                               float *save_invstd)
{
    (void)be;
    return pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, training, momentum, eps, y,
                                     save_mean, save_invstd);
}

int pnx_host_batchnorm_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                                const float *save_mean, const float *save_invstd,
                                const float *dy, float *dx, int acc, float *dgamma, float *dbeta)
{
    (void)be;
    pnx_ref_batchnorm_backward(x, d, gamma, save_mean, save_invstd, dy, dx, acc, dgamma, dbeta);
    return 0;
}

static int ref_batchnorm_relu_forward(pnx_backend *be, const float *x, pnx_dims d,
                                      const float *gamma, const float *beta, float *rm, float *rv,
                                      int training, float momentum, float eps, float *y,
                                      float *save_mean, float *save_invstd)
{
    (void)be;
    return pnx_ref_batchnorm_relu_forward(x, d, gamma, beta, rm, rv, training, momentum, eps, y,
                                          save_mean, save_invstd);
}

static int ref_batchnorm_relu_backward(pnx_backend *be, const float *x, const float *y,
                                       pnx_dims d, const float *gamma, const float *save_mean,
                                       const float *save_invstd, const float *dy, float *dx,
                                       int acc, float *dgamma, float *dbeta)
{
    (void)be;
    return pnx_ref_batchnorm_relu_backward(x, y, d, gamma, save_mean, save_invstd, dy, dx, acc,
                                           dgamma, dbeta);
}

int pnx_host_relu_forward(pnx_backend *be, const float *x, float *y, size_t n)
{
    (void)be;
    pnx_ref_relu_forward(x, y, n);
    return 0;
}

int pnx_host_relu_backward(pnx_backend *be, const float *y, const float *dy, float *dx, size_t n)
{
    (void)be;
    pnx_ref_relu_backward(y, dy, dx, n);
    return 0;
}

int pnx_host_maxpool_forward(pnx_backend *be, const float *x, pnx_dims xd, float *y,
                             uint8_t *argmax)
{
    (void)be;
    pnx_ref_maxpool2x2_forward(x, xd, y, argmax);
    return 0;
}

int pnx_host_maxpool_backward(pnx_backend *be, pnx_dims xd, const uint8_t *argmax,
                              const float *dy, float *dx, int acc)
{
    (void)be;
    pnx_ref_maxpool2x2_backward(xd, argmax, dy, dx, acc);
    return 0;
}

int pnx_host_concat(pnx_backend *be, const float *a, int ca, const float *b, int cb, int n,
                    size_t hw, float *y)
{
    (void)be;
    pnx_ref_concat_channels(a, ca, b, cb, n, hw, y);
    return 0;
}

int pnx_host_split(pnx_backend *be, const float *dy, int ca, int cb, int n, size_t hw,
                   float *da, int da_acc, float *db, int db_acc)
{
    (void)be;
    pnx_ref_split_channels(dy, ca, cb, n, hw, da, da_acc, db, db_acc);
    return 0;
}

int pnx_host_seg_loss(pnx_backend *be, const float *logits, const float *target, size_t count,
                      float bce_weight, float dice_weight, pnx_loss *loss, float *dlogits)
{
    (void)be;
    pnx_ref_seg_loss(logits, target, count, bce_weight, dice_weight, loss, dlogits);
    return 0;
}

int pnx_host_adam_update(pnx_backend *be, float *param, const float *grad, float *m, float *v,
                         size_t n, const pnx_adam_hparams *h, int64_t step)
{
    (void)be;
    pnx_ref_adam_update(param, grad, m, v, n, h, step);
    return 0;
}

static const pnx_backend_ops reference_ops = {
    .name = "reference",
    .destroy = ref_destroy,
    .alloc = pnx_host_alloc,
    .release = pnx_host_release,
    .upload = pnx_host_copy,
    .download = pnx_host_copy,
    .fill_zero = pnx_host_fill_zero,
    .conv3x3_forward = ref_conv3x3_forward,
    .conv3x3_backward = ref_conv3x3_backward,
    .conv1x1_forward = ref_conv1x1_forward,
    .conv1x1_backward = ref_conv1x1_backward,
    .upconv2x2_forward = ref_upconv_forward,
    .upconv2x2_backward = ref_upconv_backward,
    .batchnorm_forward = pnx_host_batchnorm_forward,
    .batchnorm_backward = pnx_host_batchnorm_backward,
    .batchnorm_relu_forward = ref_batchnorm_relu_forward,
    .batchnorm_relu_backward = ref_batchnorm_relu_backward,
    .relu_forward = pnx_host_relu_forward,
    .relu_backward = pnx_host_relu_backward,
    .maxpool2x2_forward = pnx_host_maxpool_forward,
    .maxpool2x2_backward = pnx_host_maxpool_backward,
    .concat_channels = pnx_host_concat,
    .split_channels = pnx_host_split,
    .seg_loss = pnx_host_seg_loss,
    .adam_update = pnx_host_adam_update,
    .act_upload = pnx_host_act_upload,
    .act_download = pnx_host_act_download,
    .mem_info = NULL,
};

int pnx_backend_reference_create(pnx_backend **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    (*out)->ops = &reference_ops;
    (*out)->act_size = sizeof(float);
    return 0;
}

void pnx_backend_destroy(pnx_backend *be)
{
    if (be && be->ops && be->ops->destroy)
        be->ops->destroy(be);
}
