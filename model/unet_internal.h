/*
 * model/unet_internal.h — the U-Net's data structures, shared by unet.c
 * (graph, forward, backward) and unet_state.c (named tensors, init).
 * Internal to model/.
 *
 * The network is a list of layers over activations. Parameters live in one
 * backend allocation (grads, Adam m and v in three more of the same size),
 * running stats in another, so an optimiser step is one call per buffer.
 */
#ifndef PNX_MODEL_UNET_INTERNAL_H
#define PNX_MODEL_UNET_INTERNAL_H

#include "model/unet.h"

#define UNET_MAX_LAYERS 40
#define UNET_MAX_ACTS 40
#define UNET_MAX_TENSORS 160
#define UNET_NAME_MAX 40

typedef enum layer_kind {
    LAYER_CBR,    /* conv3×3 pad 1 + BatchNorm + ReLU */
    LAYER_POOL,   /* 2×2 max-pool */
    LAYER_UP,     /* 2×2 stride-2 transposed conv */
    LAYER_CONCAT, /* channel concatenation [in, in2] */
    LAYER_HEAD,   /* 1×1 conv to the logits */
} layer_kind;

typedef struct unet_layer {
    layer_kind kind;
    char name[UNET_NAME_MAX]; /* the seed's module name: "enc1_1", "unpool4", "fc" */
    int in, in2, out;         /* activation ids; in2 only for CONCAT */
    int cin, cout;
    /* Offsets (in floats) into params (w, b, gamma, beta) and running (mean,
     * var); bn is the BatchNorm's index for its counter. */
    size_t w, b, gamma, beta, mean, var;
    int bn;
    /* Per batch shape: */
    float *pre;          /* CBR: conv output before BatchNorm (training only) */
    float *save_mean;    /* CBR: (cout) */
    float *save_invstd;  /* CBR: (cout) */
    uint8_t *argmax;     /* POOL: like out */
} unet_layer;

typedef struct unet_act {
    int c;
    int level; /* spatial size is (H >> level, W >> level) */
    float *data;
    float *grad; /* training only; NULL for the input */
} unet_act;

typedef struct unet_tensor {
    char name[UNET_NAME_MAX];
    pnx_unet_kind kind;
    int ndim;
    int64_t shape[4];
    size_t count;
    size_t offset; /* floats into params or running; BN index for counters */
} unet_tensor;

struct pnx_unet {
    pnx_backend *be;
    int base;

    unet_layer layers[UNET_MAX_LAYERS];
    int n_layers;
    unet_act acts[UNET_MAX_ACTS];
    int n_acts;
    int input_act, logits_act;

    unet_tensor tensors[UNET_MAX_TENSORS];
    int n_tensors;
    size_t n_params, n_running;
    int n_bn;

    float *params, *grads, *adam_m, *adam_v; /* n_params each; the last three
                                                * allocated when first needed */
    float *running;                          /* n_running */
    int64_t *counters;                       /* host, n_bn */
    int64_t adam_steps;

    /* Batch-shape dependent memory: one block for activations (+ per-layer
     * buffers), one for training extras and gradients. */
    int n, h, w;
    int planned_training;
    int acts_kept; /* activations laid out for backward (else shared) */
    void *act_block, *train_block;
    float *scratch; /* training: the largest CBR output's gradient, for dBN */
    int last_forward_training;
    int have_forward;
};

static inline pnx_dims pnx_unet_act_dims(const pnx_unet *m, int a)
{
    pnx_dims d = {m->n, m->acts[a].c, m->h >> m->acts[a].level, m->w >> m->acts[a].level};
    return d;
}

static inline size_t pnx_unet_act_count(const pnx_unet *m, int a)
{
    return pnx_dims_count(pnx_unet_act_dims(m, a));
}

/* Allocates zeroed Adam m and v if they do not exist yet (unet.c). */
int pnx_unet_ensure_adam_state(pnx_unet *m);

/* unet_plan.c: makes m's buffers fit batch n at h × w (keeping them when
 * they already do), laid out for backward when training. */
int pnx_unet_plan(pnx_unet *m, int n, int h, int w, int training);
/* Frees every batch-shape buffer. */
void pnx_unet_free_plan(pnx_unet *m);
/* Room for the loss's target (N,1,H,W), in the activation format, after
 * the logits. */
float *pnx_unet_target_buffer(pnx_unet *m);
/* The largest batch n with fixed + n·per_sample ≤ free_bytes, where the
 * plan's bytes at batch 1 and 2 give per_sample = bytes_2 − bytes_1 and
 * fixed = bytes_1 − per_sample: 0 when not even a batch of 1 fits,
 * INT_MAX when the bytes do not grow with the batch. Pure arithmetic;
 * pnx_unet_plan's error uses it, then corrects for alignment by measuring. */
int pnx_unet_batch_that_fits(size_t free_bytes, size_t bytes_1, size_t bytes_2);

#endif
