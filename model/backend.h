/*
 * model/backend.h — the narrow interface every compute backend implements.
 *
 * The U-Net, its loss and its optimiser are written once (model/unet.c) over
 * this table of operations; a backend supplies memory and the ops. Three
 * exist or are planned:
 *   - the reference backend (model/ops_ref.c): plain loops, obviously
 *     correct, the oracle every fast path is tested against;
 *   - the CPU backend (model/cpu/): im2col + BLAS sgemm, threaded;
 *   - the CUDA backend (model/cuda/, issue 6): cuDNN.
 *
 * Conventions for every op:
 *   - tensors are contiguous, in the backend's memory (pointers from
 *     ops->alloc); shapes are in the comment beside each, in NCHW terms;
 *   - parameters, their gradients, BatchNorm statistics and Adam state are
 *     always float32 in the layout given;
 *   - activations (the x, y, dy, dx of every op, the logits, the loss
 *     target) are in the backend's activation format, be->act_size bytes
 *     an element: float32 NCHW (act_size 4) on every backend, or bfloat16
 *     NHWC (act_size 2) on the CUDA backend in mixed precision. Their type
 *     float * is nominal there: the host never reads backend memory, and
 *     moves activations only through act_upload / act_download;
 *   - "accumulate" flags choose between dx = … (0) and dx += … (1);
 *     parameter gradients (dw, db, dgamma, dbeta) are always accumulated,
 *     so the caller zeroes them once per step;
 *   - ops return 0 or a PNX_E… code after pnx_fail(); the CPU ops only fail
 *     on bad arguments or out of memory.
 * Semantics follow PyTorch (see docs/model.md): BatchNorm2d with biased
 * variance to normalise and unbiased variance for running_var, max-pool ties
 * go to the first element in row-major window order, Adam as torch.optim.Adam.
 */
#ifndef PNX_MODEL_BACKEND_H
#define PNX_MODEL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* An NCHW shape. */
typedef struct pnx_dims {
    int n, c, h, w;
} pnx_dims;

static inline size_t pnx_dims_count(pnx_dims d)
{
    return (size_t)d.n * (size_t)d.c * (size_t)d.h * (size_t)d.w;
}

/* The segmentation loss: bce_weight × BCEWithLogits(mean) + dice_weight ×
 * (1 − soft Dice over the whole batch, smooth 1). */
typedef struct pnx_loss {
    double total;
    double bce;  /* unweighted BCE-with-logits, mean over elements */
    double dice; /* unweighted soft Dice loss, 1 − dice */
} pnx_loss;

/* torch.optim.Adam's settings (amsgrad off). weight_decay is added to the
 * gradient (L2), as torch.optim.Adam does. */
typedef struct pnx_adam_hparams {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
} pnx_adam_hparams;

#define PNX_ADAM_DEFAULTS {1e-3, 0.9, 0.999, 1e-8, 0.0}

typedef struct pnx_backend pnx_backend;

typedef struct pnx_backend_ops {
    const char *name; /* "reference", "cpu", "cuda" */
    void (*destroy)(pnx_backend *be);

    /* Memory: zero-filled allocations in the backend's address space;
     * release(NULL) does nothing. */
    int (*alloc)(pnx_backend *be, size_t bytes, void **out);
    void (*release)(pnx_backend *be, void *p);
    int (*upload)(pnx_backend *be, void *dst, const void *host_src, size_t bytes);
    int (*download)(pnx_backend *be, void *host_dst, const void *src, size_t bytes);
    int (*fill_zero)(pnx_backend *be, void *p, size_t bytes);

    /* x (N,Cin,H,W), w (Cout,Cin,3,3), bias (Cout) → y (N,Cout,H,W); pad 1. */
    int (*conv3x3_forward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                           const float *bias, int cout, float *y);
    /* dy (N,Cout,H,W) → dx (N,Cin,H,W) (NULL: not wanted), dw (Cout,Cin,3,3),
     * db (Cout). */
    int (*conv3x3_backward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            int cout, const float *dy, float *dx, int dx_accumulate, float *dw,
                            float *db);
    /* x (N,Cin,H,W), w (Cout,Cin,1,1), bias (Cout) → y (N,Cout,H,W). */
    int (*conv1x1_forward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                           const float *bias, int cout, float *y);
    int (*conv1x1_backward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            int cout, const float *dy, float *dx, int dx_accumulate, float *dw,
                            float *db);
    /* Transposed conv, kernel 2 stride 2: x (N,Cin,H,W), w (Cin,Cout,2,2)
     * (ConvTranspose2d's layout), bias (Cout) → y (N,Cout,2H,2W). */
    int (*upconv2x2_forward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                             const float *bias, int cout, float *y);
    /* dy (N,Cout,2H,2W) → dx (N,Cin,H,W), dw (Cin,Cout,2,2), db (Cout). */
    int (*upconv2x2_backward)(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              int cout, const float *dy, float *dx, int dx_accumulate, float *dw,
                              float *db);

    /* BatchNorm2d. x, y (N,C,H,W); gamma, beta, running_mean, running_var,
     * save_mean, save_invstd (C). training: normalise with the batch's mean
     * and biased variance, update running stats with momentum (unbiased
     * variance), keep mean and 1/sqrt(var+eps) for backward; needs N·H·W > 1.
     * Not training: normalise with the running stats; save_* unused. y may
     * equal x. */
    int (*batchnorm_forward)(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             int training, float momentum, float eps, float *y, float *save_mean,
                             float *save_invstd);
    /* Backward of the training-mode forward: x (N,C,H,W) its input, dy its
     * output gradient → dx, dgamma, dbeta. */
    int (*batchnorm_backward)(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                              const float *save_mean, const float *save_invstd, const float *dy,
                              float *dx, int dx_accumulate, float *dgamma, float *dbeta);

    /* batchnorm_forward, then y = max(y, 0), in one pass where the backend
     * can: the CBR block's BN+ReLU. Same arguments; y may equal x. */
    int (*batchnorm_relu_forward)(pnx_backend *be, const float *x, pnx_dims d,
                                  const float *gamma, const float *beta, float *running_mean,
                                  float *running_var, int training, float momentum, float eps,
                                  float *y, float *save_mean, float *save_invstd);
    /* The backward of batchnorm_relu_forward in training: x the BN input, y
     * the fused output (its sign is the ReLU mask), dy the gradient of y
     * (not modified) → dx = BN backward of (dy where y > 0, else 0), dgamma,
     * dbeta. dx may not alias x, y or dy. */
    int (*batchnorm_relu_backward)(pnx_backend *be, const float *x, const float *y, pnx_dims d,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, const float *dy, float *dx,
                                   int dx_accumulate, float *dgamma, float *dbeta);

    /* y = max(x, 0); y may equal x. */
    int (*relu_forward)(pnx_backend *be, const float *x, float *y, size_t n);
    /* dx = dy where y > 0, else 0 (y is the forward output); dx may equal dy. */
    int (*relu_backward)(pnx_backend *be, const float *y, const float *dy, float *dx, size_t n);

    /* 2×2 max-pool, stride 2: x (N,C,H,W) → y (N,C,H/2,W/2) and argmax
     * (N,C,H/2,W/2), 0..3 = row-major position in the window. H, W even. */
    int (*maxpool2x2_forward)(pnx_backend *be, const float *x, pnx_dims xd, float *y,
                              uint8_t *argmax);
    /* dy (N,C,H/2,W/2) → dx (N,C,H,W) through argmax. */
    int (*maxpool2x2_backward)(pnx_backend *be, pnx_dims xd, const uint8_t *argmax,
                               const float *dy, float *dx, int dx_accumulate);

    /* a (N,Ca,HW), b (N,Cb,HW) → y (N,Ca+Cb,HW), as torch.cat(dim=1). */
    int (*concat_channels)(pnx_backend *be, const float *a, int ca, const float *b, int cb, int n,
                           size_t hw, float *y);
    /* The backward: dy (N,Ca+Cb,HW) → da (N,Ca,HW), db (N,Cb,HW). */
    int (*split_channels)(pnx_backend *be, const float *dy, int ca, int cb, int n, size_t hw,
                          float *da, int da_accumulate, float *db, int db_accumulate);

    /* logits, target (count) → loss (host struct) and, when dlogits is not
     * NULL, d total / d logits (count). */
    int (*seg_loss)(pnx_backend *be, const float *logits, const float *target, size_t count,
                    float bce_weight, float dice_weight, pnx_loss *loss, float *dlogits);

    /* One Adam step (step = 1 for the first) over n parameters. */
    int (*adam_update)(pnx_backend *be, float *param, const float *grad, float *m, float *v,
                       size_t n, const pnx_adam_hparams *h, int64_t step);

    /* Activations to and from the host: host is float32 NCHW of shape d,
     * the backend side is an activation (dims_count(d) × act_size bytes).
     * On float32 NCHW backends these are plain copies. */
    int (*act_upload)(pnx_backend *be, float *dst, const float *host, pnx_dims d);
    int (*act_download)(pnx_backend *be, float *host, const float *src, pnx_dims d);

    /* The device's free and total memory in bytes; NULL on backends whose
     * memory is the host's. */
    int (*mem_info)(pnx_backend *be, size_t *free_bytes, size_t *total_bytes);
} pnx_backend_ops;

struct pnx_backend {
    const pnx_backend_ops *ops;
    void *impl;      /* the backend's own state */
    size_t act_size; /* bytes of one activation element: 4 (float32 NCHW) or 2
                        (bfloat16 NHWC, CUDA mixed precision) */
};

/* Bytes of an activation tensor of shape d on be. */
static inline size_t pnx_act_bytes(const pnx_backend *be, pnx_dims d)
{
    return pnx_dims_count(d) * be->act_size;
}

/* The reference backend: host memory, plain loops, single-threaded. */
int pnx_backend_reference_create(pnx_backend **out);

/* Frees a backend made by any *_create function; NULL is fine. */
void pnx_backend_destroy(pnx_backend *be);

#endif
