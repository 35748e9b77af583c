/*
 * model/cuda/cuda_internal.h — what the CUDA backend's files share: the
 * backend state, the kernel launchers of cuda_kernels.cu (plain C linkage)
 * and the convolution entry points of cudnn_conv.c. Internal to model/cuda/.
 *
 * Every launcher enqueues on the given stream and returns 0 or PNX_EDEVICE
 * (after pnx_fail) when the launch itself failed; errors inside a kernel
 * surface at the next synchronising call.
 */
#ifndef PNX_MODEL_CUDA_INTERNAL_H
#define PNX_MODEL_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "model/backend.h"
#include "model/cuda/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnx_cudnn_state pnx_cudnn_state; /* cudnn_conv.c */

/* Bytes one pinned staging buffer grows to at most; larger uploads go in
 * chunks of this size, alternating between the two buffers. */
#define PNX_CUDA_STAGING_MAX ((size_t)32 << 20)

/* Host-to-device copies from pageable memory go through two pinned buffers,
 * so they can be asynchronous: the host copies a chunk into buffer i,
 * enqueues the DMA on the stream and records ready[i] after it; the next
 * use of buffer i first waits for ready[i]. upload and act_upload return as
 * soon as the host source has been read, while the device may still be
 * busy with earlier work: the host prepares the next batch while the GPU
 * runs the current step. A buffer that cannot be pinned makes the copy
 * synchronous instead (correct, slower). */
typedef struct cuda_staging {
    void *buf[2];         /* cudaHostAlloc'd, NULL until first needed */
    size_t bytes[2];      /* their sizes */
    cudaEvent_t ready[2]; /* recorded after the last copy out of buf[i] */
    int next;             /* the buffer the next chunk uses */
} cuda_staging;

typedef struct cuda_impl {
    pnx_cuda_options opt;
    int device;
    int sm_count;
    cudaStream_t stream;
    pnx_cudnn_state *conv;
    /* Scratch for reductions (per-channel partial sums, the loss), grown on
     * demand; reused op after op, which the single stream keeps ordered. */
    void *scratch;
    size_t scratch_bytes;
    cuda_staging staging;
    /* The table be->ops points to in mixed precision: the FP32 table with
     * the activation ops replaced by pnx_cuda_bf16_install. */
    pnx_backend_ops ops;
    char name[512];
} cuda_impl;

static inline cuda_impl *cuda_of(pnx_backend *be)
{
    return (cuda_impl *)be->impl;
}

/* PNX_EDEVICE with "<what>: <CUDA's message>" (out of memory: the device's
 * free and total memory); resets CUDA's last error. */
int pnx_cuda_fail(cudaError_t err, const char *what);

/* Device scratch of at least bytes (contents not kept). */
int pnx_cuda_scratch(pnx_backend *be, size_t bytes, void **out);

/* The loss from its sums over count elements, sums = {Σ bce, Σ σ·t, Σ σ,
 * Σ t}, as backend.h's seg_loss (soft Dice with smooth 1); returns the Dice
 * denominator Σ σ + Σ t + 1 that the gradient kernels take. Shared by the
 * float32 and the mixed-precision ops. */
double pnx_cuda_loss_from_sums(const double sums[4], size_t count, float bce_weight,
                               float dice_weight, pnx_loss *loss);

/* ---- cuda_kernels.cu ------------------------------------------------------ */

/* y (N,C,P) += bias (C). */
int pnx_cuk_add_bias(cudaStream_t s, float *y, const float *bias, int n, int c, size_t p);
/* db (C) += Σ_n,p dy (N,C,P); partial needs pnx_cuk_channel_scratch bytes. */
int pnx_cuk_bias_grad(cudaStream_t s, int sm_count, const float *dy, int n, int c, size_t p,
                      float *db, void *partial);
/* Scratch bytes the per-channel reductions need for this shape. */
size_t pnx_cuk_channel_scratch(int sm_count, int n, int c, size_t p);

/* BatchNorm2d as backend.h, then y = max(y, 0) on store when relu is 1
 * (the fused BN+ReLU); y may equal x. scratch: pnx_cuk_channel_scratch. */
int pnx_cuk_batchnorm_forward(cudaStream_t s, int sm_count, const float *x, pnx_dims d,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, int training, float momentum, float eps,
                              int relu, float *y, float *save_mean, float *save_invstd,
                              void *scratch);
/* The training backward. y_relu NULL: of BatchNorm alone; else of the fused
 * BN+ReLU whose output is y_relu: dy counts only where y_relu > 0, masked
 * as it is read (no pass or buffer of its own). dx may be NULL (only the
 * parameter gradients). */
int pnx_cuk_batchnorm_backward(cudaStream_t s, int sm_count, const float *x,
                               const float *y_relu, pnx_dims d, const float *gamma,
                               const float *save_mean, const float *save_invstd, const float *dy,
                               float *dx, int acc, float *dgamma, float *dbeta, void *scratch);

int pnx_cuk_relu_forward(cudaStream_t s, const float *x, float *y, size_t n);
int pnx_cuk_relu_backward(cudaStream_t s, const float *y, const float *dy, float *dx, size_t n);
int pnx_cuk_maxpool_forward(cudaStream_t s, const float *x, pnx_dims xd, float *y,
                            uint8_t *argmax);
int pnx_cuk_maxpool_backward(cudaStream_t s, pnx_dims xd, const uint8_t *argmax, const float *dy,
                             float *dx, int acc);
/* rows blocks of width floats: dst[r*dpitch + i] (+)= src[r*spitch + i]. */
int pnx_cuk_copy_rows(cudaStream_t s, float *dst, size_t dpitch, const float *src, size_t spitch,
                      size_t width, size_t rows, int accumulate);

/* Scratch bytes seg_loss needs. */
size_t pnx_cuk_loss_scratch(void);
/* Sums over the batch into host sums[4] = {Σ bce, Σ σ·t, Σ σ, Σ t}
 * (synchronises the stream). */
int pnx_cuk_loss_sums(cudaStream_t s, const float *logits, const float *target, size_t count,
                      void *scratch, double sums[4]);
int pnx_cuk_loss_grad(cudaStream_t s, const float *logits, const float *target, size_t count,
                      float bce_weight, float dice_weight, double inter, double denom,
                      float *dlogits);

/* The scalar factors of one Adam step, computed on the host in double as the
 * reference does. */
typedef struct pnx_cuk_adam {
    float step_size, bc2_sqrt, b1, b2, one_minus_b1, one_minus_b2, eps, wd;
} pnx_cuk_adam;
int pnx_cuk_adam_update(cudaStream_t s, float *param, const float *grad, float *m, float *v,
                        size_t n, const pnx_cuk_adam *a);

/* ---- cudnn_conv.c: every cuDNN call of the project ------------------------ */

int pnx_cudnn_create(pnx_cudnn_state **out, cudaStream_t stream, const pnx_cuda_options *opt);
void pnx_cudnn_destroy(pnx_cudnn_state *st);
/* cuDNN's run-time version as "9.19.0", and the check that it is the major
 * version the build used. */
int pnx_cudnn_check_version(char *buf, size_t size);

int pnx_cudnn_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y);
int pnx_cudnn_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db);
int pnx_cudnn_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y);
int pnx_cudnn_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db);
int pnx_cudnn_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                const float *bias, int cout, float *y);
int pnx_cudnn_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                 int cout, const float *dy, float *dx, int acc, float *dw,
                                 float *db);

#ifdef __cplusplus
}
#endif

#endif
