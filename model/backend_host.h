/*
 * model/backend_host.h — backend ops on host memory that the reference and
 * CPU backends share (memory, and the cheap element-wise ops built on
 * ops_ref.c). Internal to model/.
 */
#ifndef PNX_MODEL_BACKEND_HOST_H
#define PNX_MODEL_BACKEND_HOST_H

#include "model/backend.h"

int pnx_host_alloc(pnx_backend *be, size_t bytes, void **out);
void pnx_host_release(pnx_backend *be, void *p);
int pnx_host_copy(pnx_backend *be, void *dst, const void *src, size_t bytes);
int pnx_host_fill_zero(pnx_backend *be, void *p, size_t bytes);
/* Activations are float32 NCHW in host memory: copies. */
int pnx_host_act_upload(pnx_backend *be, float *dst, const float *host, pnx_dims d);
int pnx_host_act_download(pnx_backend *be, float *host, const float *src, pnx_dims d);
int pnx_host_batchnorm_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                               const float *beta, float *rm, float *rv, int training,
                               float momentum, float eps, float *y, float *save_mean,
                               float *save_invstd);
int pnx_host_batchnorm_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                                const float *save_mean, const float *save_invstd,
                                const float *dy, float *dx, int acc, float *dgamma, float *dbeta);
int pnx_host_relu_forward(pnx_backend *be, const float *x, float *y, size_t n);
int pnx_host_relu_backward(pnx_backend *be, const float *y, const float *dy, float *dx, size_t n);
int pnx_host_maxpool_forward(pnx_backend *be, const float *x, pnx_dims xd, float *y,
                             uint8_t *argmax);
int pnx_host_maxpool_backward(pnx_backend *be, pnx_dims xd, const uint8_t *argmax,
                              const float *dy, float *dx, int acc);
int pnx_host_concat(pnx_backend *be, const float *a, int ca, const float *b, int cb, int n,
                    size_t hw, float *y);
int pnx_host_split(pnx_backend *be, const float *dy, int ca, int cb, int n, size_t hw,
                   float *da, int da_acc, float *db, int db_acc);
int pnx_host_seg_loss(pnx_backend *be, const float *logits, const float *target, size_t count,
                      float bce_weight, float dice_weight, pnx_loss *loss, float *dlogits);
int pnx_host_adam_update(pnx_backend *be, float *param, const float *grad, float *m, float *v,
                         size_t n, const pnx_adam_hparams *h, int64_t step);

#endif
