/*
 * model/checkpoint.h — U-Net checkpoints as safetensors files.
 *
 * Tensor names, shapes and dtypes are the seed's PyTorch state_dict()
 * (float32, num_batches_tracked int64 of shape []), so
 *     safetensors.torch.save_file(model.state_dict(), "m.safetensors")
 * loads here unchanged and a weights-only file of ours loads there with
 * model.load_state_dict(safetensors.torch.load_file(...)).
 *
 * A checkpoint with optimiser state adds, for every parameter P,
 * "optimizer.exp_avg.P" and "optimizer.exp_avg_sq.P" (torch.optim.Adam's
 * names), and metadata "pneumoseg.adam_step". Load such a file in PyTorch
 * with strict=False or by filtering the "optimizer." names.
 *
 * Metadata (all strings): "format" = "pt" (as safetensors.torch writes),
 * "pneumoseg.architecture" = "unet-seed", "pneumoseg.base_width",
 * "pneumoseg.version", "pneumoseg.epoch", "pneumoseg.step", and any extra
 * key/value pairs the caller passes (training settings).
 *
 * Loading is strict: a missing or unexpected tensor, a wrong shape or dtype,
 * a base width that disagrees with the shapes, or an unreadable file is an
 * error naming the file and the tensor.
 */
#ifndef PNX_MODEL_CHECKPOINT_H
#define PNX_MODEL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/unet.h"

#define PNX_CKPT_OPTIMIZER_PREFIX "optimizer."

typedef struct pnx_checkpoint_meta {
    int64_t epoch;               /* completed epochs; -1 = not recorded */
    int64_t step;                /* training steps taken; -1 = not recorded */
    int with_optimizer;          /* store Adam's m, v and step */
    size_t n_extra;              /* extra metadata pairs */
    const char *const *extra_keys;
    const char *const *extra_values;
} pnx_checkpoint_meta;

/* What a loaded file said about itself. */
typedef struct pnx_checkpoint_info {
    int base_width;
    int64_t epoch;               /* -1 when absent */
    int64_t step;                /* -1 when absent */
    int has_optimizer;
    int written_by_pneumoseg;    /* has pneumoseg.* metadata */
} pnx_checkpoint_info;

/* Writes m to path atomically. meta may be NULL (weights only, no epoch). */
int pnx_checkpoint_save(pnx_unet *m, const char *path, const pnx_checkpoint_meta *meta);

/* Reads the base width a checkpoint needs (from metadata, else from the
 * shape of enc1_1.0.weight) without building a model. */
int pnx_checkpoint_peek(const char *path, pnx_checkpoint_info *info);

/* Creates a model on be from path. info may be NULL. The Adam state is
 * restored when the file has one. */
int pnx_checkpoint_load(pnx_unet **out, pnx_backend *be, const char *path,
                        pnx_checkpoint_info *info);

/* Loads path into an existing model of the same base width. */
int pnx_checkpoint_load_into(pnx_unet *m, const char *path, pnx_checkpoint_info *info);

#endif
