/*
 * model/unet.h — the seed's U-Net: forward (train/eval), loss + backward,
 * Adam, and access to its named tensors. Checkpoints: model/checkpoint.h.
 *
 * The architecture is the seed's exactly (docs/model.md): encoder blocks
 * enc1_1 … enc4_2 of Conv3×3(pad 1)+BatchNorm+ReLU ("CBR") at widths
 * b, 2b, 4b, 8b with 2×2 max-pools between them, one CBR enc5_1 (16b) at the
 * bottom, dec5_1 back to 8b, then for each level a 2×2 stride-2 transposed
 * conv (unpool4 … unpool1), concatenation with the encoder's output
 * (upsampled first), two CBRs, and a 1×1 conv fc to one logit. b = 64 is
 * the seed. Inputs are (N,1,H,W) with H and W multiples of 16.
 *
 * A training step is
 *     pnx_unet_forward(m, images, n, h, w, 1, NULL);
 *     pnx_unet_backward(m, masks, bce_weight, dice_weight, &loss);
 *     pnx_unet_adam_step(m, &hparams);
 * and inference is pnx_unet_forward(..., 0, logits). Host pointers (float32
 * NCHW) are used for inputs and outputs whatever the backend; the model
 * keeps its tensors in the backend's memory, activations in the backend's
 * activation format (backend.h), sized for the last batch shape (a new
 * shape reallocates, the same shape allocates nothing). When a backend
 * that reports its free memory cannot hold a batch, the error names the
 * largest batch that fits. Not thread-safe: one model, one thread at a
 * time.
 */
#ifndef PNX_MODEL_UNET_H
#define PNX_MODEL_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "model/backend.h"

#define PNX_UNET_ARCHITECTURE "unet-seed" /* the seed's U-Net, in checkpoint metadata */
#define PNX_UNET_MAX_BASE_WIDTH 256
#define PNX_UNET_SIZE_MULTIPLE 16 /* four 2×2 pools */
#define PNX_BN_MOMENTUM 0.1f
#define PNX_BN_EPS 1e-5f

typedef struct pnx_unet pnx_unet;

/* Creates a model of base width 1..PNX_UNET_MAX_BASE_WIDTH on be (borrowed;
 * it must outlive the model), initialised as PyTorch would (see
 * pnx_unet_init) with seed 0. */
int pnx_unet_create(pnx_unet **out, pnx_backend *be, int base_width);
void pnx_unet_destroy(pnx_unet *m);
int pnx_unet_base_width(const pnx_unet *m);
pnx_backend *pnx_unet_backend(const pnx_unet *m);

/* PyTorch's default initialisation, from a seeded common/rng.h stream:
 * conv and transposed-conv weights and biases uniform in ±1/sqrt(fan_in)
 * (kaiming-uniform with a = √5; fan_in = weight.size(1) × kernel area, which
 * for ConvTranspose2d is out_channels × 4), BatchNorm γ = 1, β = 0, running
 * mean 0, running var 1, num_batches_tracked 0. Clears the Adam state. */
int pnx_unet_init(pnx_unet *m, uint64_t seed);

/* input (N,1,H,W) host → logits (N,1,H,W) host (NULL: keep them on the
 * backend for pnx_unet_backward / pnx_unet_loss). training = 1 uses batch
 * statistics and updates the running ones (and needs N·(H/16)·(W/16) > 1),
 * as model.train() in PyTorch; 0 is model.eval(). */
int pnx_unet_forward(pnx_unet *m, const float *input, int n, int h, int w, int training,
                     float *logits);

/* Loss of the last forward against target (N,1,H,W) host, 0/1 values. */
int pnx_unet_loss(pnx_unet *m, const float *target, float bce_weight, float dice_weight,
                  pnx_loss *loss);

/* Loss and gradients of the last forward, which must have been a training
 * one: parameter gradients are overwritten (no accumulation across calls). */
int pnx_unet_backward(pnx_unet *m, const float *target, float bce_weight, float dice_weight,
                      pnx_loss *loss);

/* One Adam step with the gradients of the last backward. */
int pnx_unet_adam_step(pnx_unet *m, const pnx_adam_hparams *h);
/* Adam steps taken so far (restored from checkpoints). */
int64_t pnx_unet_adam_steps(const pnx_unet *m);
int pnx_unet_has_adam_state(const pnx_unet *m);
/* Forgets the Adam moments and step count (fine-tuning from given weights
 * starts a fresh optimiser, as a new torch.optim.Adam would). */
void pnx_unet_reset_adam(pnx_unet *m);

/* ---- named tensors ------------------------------------------------------
 * The state dict in PyTorch's order: "enc1_1.0.weight", "enc1_1.0.bias",
 * "enc1_1.1.weight", "enc1_1.1.bias", "enc1_1.1.running_mean",
 * "enc1_1.1.running_var", "enc1_1.1.num_batches_tracked", …, "fc.bias". */

typedef enum pnx_unet_kind {
    PNX_UNET_PARAMETER = 0, /* trained: has a gradient and Adam state */
    PNX_UNET_RUNNING,       /* BatchNorm running mean / var */
    PNX_UNET_COUNTER,       /* BatchNorm num_batches_tracked (int64, shape []) */
} pnx_unet_kind;

typedef enum pnx_unet_view {
    PNX_UNET_VALUE = 0,
    PNX_UNET_GRAD,
    PNX_UNET_ADAM_M, /* exp_avg */
    PNX_UNET_ADAM_V, /* exp_avg_sq */
} pnx_unet_view;

typedef struct pnx_unet_tensor_info {
    const char *name;
    pnx_unet_kind kind;
    int ndim;              /* 0 for counters, else 1 or 4 */
    int64_t shape[4];
    size_t count;          /* elements */
} pnx_unet_tensor_info;

size_t pnx_unet_tensor_count(const pnx_unet *m);
/* i < pnx_unet_tensor_count(m). */
void pnx_unet_tensor_at(const pnx_unet *m, size_t i, pnx_unet_tensor_info *info);
/* Index of name, or -1. */
long pnx_unet_tensor_find(const pnx_unet *m, const char *name);
/* Number of trained parameters (23.4 M for base 64). */
size_t pnx_unet_parameter_count(const pnx_unet *m);

/* Copies a float tensor (parameter or running stat) out to / in from host
 * memory; count must equal the tensor's. GRAD and ADAM_* views exist for
 * parameters only (ADAM_* once the Adam state exists; writing them creates
 * it). */
int pnx_unet_read(pnx_unet *m, const char *name, pnx_unet_view view, float *host, size_t count);
int pnx_unet_write(pnx_unet *m, const char *name, pnx_unet_view view, const float *host,
                   size_t count);
/* num_batches_tracked of a BatchNorm ("enc1_1.1.num_batches_tracked"). */
int pnx_unet_read_counter(const pnx_unet *m, const char *name, int64_t *value);
int pnx_unet_write_counter(pnx_unet *m, const char *name, int64_t value);
/* Sets the Adam step count (checkpoint loading). */
int pnx_unet_set_adam_steps(pnx_unet *m, int64_t steps);

#endif
