/*
 * model/cuda/cuda_bf16.h — mixed precision on the CUDA backend: activations
 * in bfloat16 NHWC, parameters, their gradients, BatchNorm statistics and
 * Adam state in float32 (docs/gpu.md). Internal to model/cuda/.
 *
 * cuda_bf16_ops.c turns the backend's float32 ops table into the mixed one;
 * the bfloat16 convolutions below live in cudnn_conv.c with every other
 * cuDNN call. Their signatures are the ops table's: the float * of an
 * activation is nominal and points at bfloat16 NHWC data (model/backend.h).
 */
#ifndef PNX_MODEL_CUDA_BF16_H
#define PNX_MODEL_CUDA_BF16_H

#include "model/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Overrides, in ops (a copy of the CUDA backend's float32 table that be
 * will use), every op that touches activations: the six convolutions,
 * batch norm and the fused BN+ReLU forward and backward, ReLU, max-pool,
 * concat/split, the loss, act_upload and act_download. Memory, upload,
 * download, fill_zero, Adam and mem_info stay the float32 table's; the
 * overrides call ops->upload and ops->download for their host copies.
 * be is a CUDA backend whose device, stream and cuDNN state are set up; the
 * caller sets be->act_size to 2. Fails with PNX_EDEVICE, leaving ops as it
 * was, on a GPU older than compute capability 8.0 (no bfloat16 tensor
 * cores). */
int pnx_cuda_bf16_install(pnx_backend *be, pnx_backend_ops *ops);

/* The convolutions of backend.h with x, y, dy, dx bfloat16 NHWC and the
 * weights, bias and their gradients float32 in backend.h's layouts. */
int pnx_cudnn_bf16_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                   const float *w, const float *bias, int cout, float *y);
int pnx_cudnn_bf16_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                    const float *w, int cout, const float *dy, float *dx,
                                    int acc, float *dw, float *db);
int pnx_cudnn_bf16_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                   const float *w, const float *bias, int cout, float *y);
int pnx_cudnn_bf16_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                    const float *w, int cout, const float *dy, float *dx,
                                    int acc, float *dw, float *db);
int pnx_cudnn_bf16_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                     const float *w, const float *bias, int cout, float *y);
int pnx_cudnn_bf16_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                      const float *w, int cout, const float *dy, float *dx,
                                      int acc, float *dw, float *db);

#ifdef __cplusplus
}
#endif

#endif
