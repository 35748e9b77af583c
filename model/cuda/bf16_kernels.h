/*
 * model/cuda/bf16_kernels.h — the project's own kernels for mixed precision:
 * activations in bfloat16, NHWC, with float32 parameters, BatchNorm
 * statistics and parameter gradients (docs/gpu.md). Internal to
 * model/cuda/; cuda_bf16_ops.c builds the backend's mixed-precision ops from
 * these and cudnn_conv.c's bfloat16 convolutions.
 *
 * Promises:
 *   - every launcher enqueues on stream s and returns 0, or PNX_EDEVICE
 *     (after pnx_fail) when the launch failed; none synchronises or copies
 *     to the host, so the same code runs under the CPU grid emulator of the
 *     tests (tests/cuda_emu.h) against the reference ops;
 *   - arithmetic is float32 (sums of reductions in double), each result
 *     rounded once to bfloat16 (round to nearest even) when it is stored;
 *     "accumulate" reads the old bfloat16 value, adds in float32, rounds;
 *   - reductions are two passes in a fixed order, with no atomics, so every
 *     result is bitwise reproducible;
 *   - shapes: P = N·H·W pixels, C channels; a tensor is (P, C) row-major,
 *     i.e. NHWC. Counts are validated by the callers (cuda_bf16_ops.c).
 */
#ifndef PNX_MODEL_CUDA_BF16_KERNELS_H
#define PNX_MODEL_CUDA_BF16_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "model/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The bits of one bfloat16 (the kernels read them as __nv_bfloat16). */
typedef uint16_t pnx_bf16;

/* ---- layouts ---------------------------------------------------------------- */

/* float32 NCHW (d) → bfloat16 NHWC: the activation upload. */
int pnx_bfk_nchw_to_nhwc(cudaStream_t s, const float *src, pnx_dims d, pnx_bf16 *dst);
/* bfloat16 NHWC → float32 NCHW (d): the activation download. */
int pnx_bfk_nhwc_to_nchw(cudaStream_t s, const pnx_bf16 *src, pnx_dims d, float *dst);
/* A float32 filter (K,C,R,S) → bfloat16 (K,R,S,C), cuDNN's NHWC filter
 * layout. ConvTranspose2d's (Cin,Cout,2,2) is the case K = Cin, C = Cout. */
int pnx_bfk_filter_to_krsc(cudaStream_t s, const float *w, int k, int c, int r, int ss,
                           pnx_bf16 *dst);
/* dw (K,C,R,S) float32 += g (K,R,S,C) bfloat16: a filter gradient from
 * cuDNN added into the float32 parameter gradient. */
int pnx_bfk_filter_grad_add(cudaStream_t s, const pnx_bf16 *g, int k, int c, int r, int ss,
                            float *dw);

/* ---- bias, BatchNorm, ReLU ---------------------------------------------------- */

/* Bytes of scratch the per-channel reductions (bias_grad, bn_forward,
 * bn_backward) need for P pixels of C channels. */
size_t pnx_bfk_channel_scratch(size_t pixels, int c);

/* y (P,C) += bias (C). */
int pnx_bfk_add_bias(cudaStream_t s, pnx_bf16 *y, const float *bias, size_t pixels, int c);
/* db (C) += Σ_p dy (P,C). */
int pnx_bfk_bias_grad(cudaStream_t s, const pnx_bf16 *dy, size_t pixels, int c, float *db,
                      void *scratch);

/* BatchNorm2d over x (P,C) as backend.h's batchnorm_forward (training: batch
 * mean, biased variance to normalise, running stats updated with momentum
 * and the unbiased variance, save_mean and save_invstd = 1/sqrt(var+eps)
 * kept; else the running stats), then ReLU when relu is 1. y may equal x.
 * Training needs P > 1. */
int pnx_bfk_bn_forward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                       const float *gamma, const float *beta, float *running_mean,
                       float *running_var, int training, float momentum, float eps, int relu,
                       pnx_bf16 *y, float *save_mean, float *save_invstd, void *scratch);
/* The backward of the training-mode forward. y_relu NULL: dz = dy; else dz
 * = dy where y_relu > 0, else 0 (y_relu the fused forward's output). dx
 * (=, or += when acc) from dz; dgamma += Σ dz·x̂, dbeta += Σ dz. dx may not
 * alias x, y_relu or dy. */
int pnx_bfk_bn_backward(cudaStream_t s, const pnx_bf16 *x, const pnx_bf16 *y_relu,
                        size_t pixels, int c, const float *gamma, const float *save_mean,
                        const float *save_invstd, const pnx_bf16 *dy, pnx_bf16 *dx, int acc,
                        float *dgamma, float *dbeta, void *scratch);

/* Layout-free, over n elements: y = max(x, 0) (y may equal x); dx = dy where
 * y > 0, else 0 (dx may equal dy). */
int pnx_bfk_relu_forward(cudaStream_t s, const pnx_bf16 *x, pnx_bf16 *y, size_t n);
int pnx_bfk_relu_backward(cudaStream_t s, const pnx_bf16 *y, const pnx_bf16 *dy, pnx_bf16 *dx,
                          size_t n);

/* ---- pooling, concatenation ------------------------------------------------- */

/* 2×2 max-pool, stride 2, x NHWC of shape xd (H, W even) → y (N,H/2,W/2,C)
 * and argmax of the same layout: 0..3, the row-major position in the
 * window, ties to the first, as backend.h. */
int pnx_bfk_maxpool_forward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, pnx_bf16 *y,
                            uint8_t *argmax);
/* dy (N,H/2,W/2,C) → dx (N,H,W,C) through argmax; = or += (acc). */
int pnx_bfk_maxpool_backward(cudaStream_t s, pnx_dims xd, const uint8_t *argmax,
                             const pnx_bf16 *dy, pnx_bf16 *dx, int acc);

/* a (P,Ca), b (P,Cb) → y (P,Ca+Cb): torch.cat(dim=1) in NHWC. */
int pnx_bfk_concat(cudaStream_t s, const pnx_bf16 *a, int ca, const pnx_bf16 *b, int cb,
                   size_t pixels, pnx_bf16 *y);
/* The backward: dy (P,Ca+Cb) → da (P,Ca), db (P,Cb), each = or +=. */
int pnx_bfk_split(cudaStream_t s, const pnx_bf16 *dy, int ca, int cb, size_t pixels,
                  pnx_bf16 *da, int da_acc, pnx_bf16 *db, int db_acc);

/* ---- narrow convolutions (bf16_narrow.cu) --------------------------------------- */

/* The U-Net's two single-channel convolutions, as backend.h's conv ops with
 * bfloat16 NHWC activations and float32 weights, biases and gradients in
 * backend.h's layouts (read as they are, not converted). cuDNN's bfloat16
 * NHWC kernels want channel counts that are multiples of 8; these run
 * instead. The weight and bias gradients are accumulated (+=) from sums in
 * double, in a fixed order; dx is = or += (acc) and may be NULL (not
 * wanted). bias may be NULL in the forwards (no bias). */

/* Bytes of scratch the backward reductions need for P pixels of k output
 * channels (3×3, one input channel) or c input channels (1×1, one output). */
size_t pnx_bfk_conv3x3_in1_scratch(size_t pixels, int k);
size_t pnx_bfk_conv1x1_out1_scratch(size_t pixels, int c);

/* 3×3, pad 1, one input channel: x (N,H,W,1) of shape xd (xd.c = 1), w
 * (K,1,3,3), bias (K) → y (N,H,W,K). */
int pnx_bfk_conv3x3_in1_forward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, const float *w,
                                const float *bias, int k, pnx_bf16 *y);
/* dy (N,H,W,K) → dx (N,H,W,1), dw (K,1,3,3) +=, db (K) +=. */
int pnx_bfk_conv3x3_in1_backward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, const float *w,
                                 int k, const pnx_bf16 *dy, pnx_bf16 *dx, int acc, float *dw,
                                 float *db, void *scratch);
/* 1×1, one output channel, over P pixels: x (P,C), w (1,C,1,1), bias (1)
 * → y (P,1). */
int pnx_bfk_conv1x1_out1_forward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                                 const float *w, const float *bias, pnx_bf16 *y);
/* dy (P,1) → dx (P,C), dw (1,C,1,1) +=, db (1) +=. */
int pnx_bfk_conv1x1_out1_backward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                                  const float *w, const pnx_bf16 *dy, pnx_bf16 *dx, int acc,
                                  float *dw, float *db, void *scratch);

/* ---- the loss ------------------------------------------------------------------ */

/* The loss over count logits and targets (one channel, so NHWC = NCHW) is
 * reduced in blocks: pnx_bfk_loss_partials writes 4 doubles per block,
 * {Σ bce, Σ σ·t, Σ σ, Σ t} over the block's slice, into partials (device
 * memory of pnx_bfk_loss_blocks(count) × 4 doubles); the caller copies them
 * to the host and adds them with pnx_bfk_loss_reduce, in block order. */
size_t pnx_bfk_loss_blocks(size_t count);
int pnx_bfk_loss_partials(cudaStream_t s, const pnx_bf16 *logits, const pnx_bf16 *target,
                          size_t count, double *partials);
void pnx_bfk_loss_reduce(const double *host_partials, size_t blocks, double sums[4]);
/* d total / d logits, as cuda_kernels.cu's loss_grad_kernel: with σ the
 * sigmoid, inter = Σ σ·t and denom = Σ σ + Σ t + 1 (smooth 1), each
 * element gets bce_weight·(σ − t)/count + dice_weight·(−(2·t·denom −
 * (2·inter + 1))/denom²)·σ·(1 − σ), computed in double. */
int pnx_bfk_loss_grad(cudaStream_t s, const pnx_bf16 *logits, const pnx_bf16 *target,
                      size_t count, float bce_weight, float dice_weight, double inter,
                      double denom, pnx_bf16 *dlogits);

#ifdef __cplusplus
}
#endif

#endif
