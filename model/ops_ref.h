/*
 * model/ops_ref.h — the reference implementation of every op in
 * model/backend.h: plain loops on host memory, written to be obviously
 * correct rather than fast. They are the oracle the CPU and CUDA backends
 * are tested against, and the reference backend is built from them.
 * Arguments and shapes are exactly those of the backend ops, without the
 * backend pointer; the cheap ops are reused by the CPU backend.
 */
#ifndef PNX_MODEL_OPS_REF_H
#define PNX_MODEL_OPS_REF_H

#include "model/backend.h"

/* out (N,Cout,H,W) = conv3x3 pad 1 (x (N,Cin,H,W), w (Cout,Cin,3,3)) + bias (Cout) */
void pnx_ref_conv3x3_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                             int cout, float *y);
void pnx_ref_conv3x3_backward(const float *x, pnx_dims xd, const float *w, int cout,
                              const float *dy, float *dx, int dx_accumulate, float *dw, float *db);
void pnx_ref_conv1x1_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                             int cout, float *y);
void pnx_ref_conv1x1_backward(const float *x, pnx_dims xd, const float *w, int cout,
                              const float *dy, float *dx, int dx_accumulate, float *dw, float *db);
void pnx_ref_upconv2x2_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                               int cout, float *y);
void pnx_ref_upconv2x2_backward(const float *x, pnx_dims xd, const float *w, int cout,
                                const float *dy, float *dx, int dx_accumulate, float *dw,
                                float *db);
int pnx_ref_batchnorm_forward(const float *x, pnx_dims d, const float *gamma, const float *beta,
                              float *running_mean, float *running_var, int training,
                              float momentum, float eps, float *y, float *save_mean,
                              float *save_invstd);
void pnx_ref_batchnorm_backward(const float *x, pnx_dims d, const float *gamma,
                                const float *save_mean, const float *save_invstd, const float *dy,
                                float *dx, int dx_accumulate, float *dgamma, float *dbeta);
/* batchnorm_relu_forward / _backward of backend.h as the plain composition
 * of the ops above; the backward allocates a temporary (PNX_ENOMEM). */
int pnx_ref_batchnorm_relu_forward(const float *x, pnx_dims d, const float *gamma,
                                   const float *beta, float *running_mean, float *running_var,
                                   int training, float momentum, float eps, float *y,
                                   float *save_mean, float *save_invstd);
int pnx_ref_batchnorm_relu_backward(const float *x, const float *y, pnx_dims d,
                                    const float *gamma, const float *save_mean,
                                    const float *save_invstd, const float *dy, float *dx,
                                    int dx_accumulate, float *dgamma, float *dbeta);

/* The pieces of BatchNorm a fast path reuses so that its arithmetic is the
 * reference's. channel_affine: channel c's statistics (training: computed
 * from x, saved, running stats updated; else the running ones) folded into
 * y = x·scale + shift. */
void pnx_ref_batchnorm_channel_affine(const float *x, pnx_dims d, const float *gamma,
                                      const float *beta, float *running_mean, float *running_var,
                                      int training, float momentum, float eps, float *save_mean,
                                      float *save_invstd, int c, float *scale, float *shift);
/* grad_coef: from a channel's count = N·H·W, Σdy and Σdy·x, the backward
 * folded into dx = a·dy + b·x + k and the channel's dgamma, dbeta terms. */
typedef struct pnx_bn_grad_coef {
    float a, b, k;
    float dgamma, dbeta;
} pnx_bn_grad_coef;
void pnx_ref_batchnorm_grad_coef(double gamma, double mean, double invstd, double count,
                                 double sum_dy, double sum_dy_x, pnx_bn_grad_coef *out);

/* BatchNorm over channels [c0, c1) only (no argument checks), so a caller
 * can split the channels across threads. */
void pnx_ref_batchnorm_forward_channels(const float *x, pnx_dims d, const float *gamma,
                                        const float *beta, float *running_mean,
                                        float *running_var, int training, float momentum,
                                        float eps, float *y, float *save_mean,
                                        float *save_invstd, int c0, int c1);
void pnx_ref_batchnorm_backward_channels(const float *x, pnx_dims d, const float *gamma,
                                         const float *save_mean, const float *save_invstd,
                                         const float *dy, float *dx, int dx_accumulate,
                                         float *dgamma, float *dbeta, int c0, int c1);
void pnx_ref_relu_forward(const float *x, float *y, size_t n);
void pnx_ref_relu_backward(const float *y, const float *dy, float *dx, size_t n);
void pnx_ref_maxpool2x2_forward(const float *x, pnx_dims xd, float *y, uint8_t *argmax);
void pnx_ref_maxpool2x2_backward(pnx_dims xd, const uint8_t *argmax, const float *dy, float *dx,
                                 int dx_accumulate);
void pnx_ref_concat_channels(const float *a, int ca, const float *b, int cb, int n, size_t hw,
                             float *y);
void pnx_ref_split_channels(const float *dy, int ca, int cb, int n, size_t hw, float *da,
                            int da_accumulate, float *db, int db_accumulate);
void pnx_ref_seg_loss(const float *logits, const float *target, size_t count, float bce_weight,
                      float dice_weight, pnx_loss *loss, float *dlogits);
void pnx_ref_adam_update(float *param, const float *grad, float *m, float *v, size_t n,
                         const pnx_adam_hparams *h, int64_t step);

#endif
