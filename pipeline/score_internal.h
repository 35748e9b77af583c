/*
 * pipeline/score_internal.h — the pieces of the score stage (score_stage.c
 * drives them): the model and its batched inference, the isolated read of
 * a source's header for the generated DICOM objects, and the per-instance
 * outputs. Not for other stages.
 */
#ifndef PNX_PIPELINE_SCORE_INTERNAL_H
#define PNX_PIPELINE_SCORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"
#include "db/db.h"
#include "model/backend.h"
#include "model/unet.h"
#include "postprocess/dicom_source.h"
#include "postprocess/postprocess.h"

/* ---- score_model.c: the network on the CPU --------------------------------- */

/* Checkpoint metadata key of the training resolution (a decimal side). */
#define PNX_SCORE_META_IMAGE_SIZE "pneumoseg.image_size"
/* Triplet thresholds tuned for the model (all three or none), used where
 * the YAML leaves score.triplet.* at their defaults. */
#define PNX_SCORE_META_TOP "pneumoseg.triplet.top_threshold"
#define PNX_SCORE_META_MIN_AREA "pneumoseg.triplet.min_area"
#define PNX_SCORE_META_BOTTOM "pneumoseg.triplet.bottom_threshold"

typedef struct pnx_score_model {
    pnx_backend *backend;
    pnx_unet *net;
    uint32_t side;            /* the training resolution: inputs are side × side */
    int side_from_checkpoint; /* 0: the fallback side was used */
    int64_t train_run_id;     /* pneumoseg.run_id of the checkpoint; 0 when absent */
    int has_triplet;          /* the checkpoint holds tuned triplet thresholds */
    double triplet_top;
    int64_t triplet_min_area;
    double triplet_bottom;
    int base_width;
    char sha256[65];          /* of the checkpoint file */
    const char *device;       /* "cpu" or "cuda": the backend taken */
    int capacity;             /* images the buffers hold */
    float *input;             /* (capacity, 1, side, side) */
    float *logits;            /* (capacity, 1, side, side) */
    float *flipped;           /* TTA: predictions on the flipped inputs */
} pnx_score_model;

/* Loads path on the backend chosen by device (enum pnx_model_device: auto,
 * cpu or cuda; see model/device.h) with `threads` CPU threads (0 = all), in
 * precision (enum pnx_precision of pipeline/config.h: tf32 and bf16 apply
 * on a GPU; on the CPU they log a warning and compute in fp32). The
 * side comes from the checkpoint's PNX_SCORE_META_IMAGE_SIZE, else
 * fallback_side (the dataset's image_size); tuned triplet thresholds from
 * PNX_SCORE_META_TOP/MIN_AREA/BOTTOM when the three are there. A malformed
 * value is PNX_EFORMAT. */
int pnx_score_model_load(pnx_score_model *sm, const char *path, uint32_t fallback_side,
                         int device, unsigned threads, int precision, int capacity);
void pnx_score_model_free(pnx_score_model *sm);

/* Probabilities for n ≤ capacity 8-bit images of any size: each is resized
 * to side × side (preprocess/resize.h), scaled to [0, 1] (grey / 255, as
 * training saw it), run through the network in eval mode, and the sigmoid
 * of the logits goes to probs (n, side, side). With tta_hflip the
 * prediction of the mirrored image is mirrored back and averaged in. */
int pnx_score_model_predict(pnx_score_model *sm, const pnx_image *const *images, int n,
                            int tta_hflip, float *probs);

/* ---- score_source.c: header of a source file, read in a child process ------ */

/* Reads src from path (postprocess/dicom_source.h) in a fork()ed child under
 * an address-space limit (memory_mb, 0 = none) and a timeout, so that the
 * untrusted file is never parsed in the scoring process. A child that dies
 * or runs out of time is an error for this file only (PNX_ECRASH /
 * PNX_ETIMEOUT). Call from one thread while no other thread uses DCMTK. */
int pnx_score_read_source(const char *path, int memory_mb, int timeout_s,
                          pnx_dicom_source *src);

/* ---- score_outputs.c: one instance's mask and files ------------------------ */

typedef struct pnx_score_output_settings {
    const char *output_dir;
    const char *model_sha256;
    const char *uid_settings;     /* settings text of the derived UIDs */
    const char *algorithm_version;
    pnx_postprocess_params post;
    int seg_enabled;
    int seg_skip_negative;        /* score.seg.negative = none */
    int overlay_enabled;
    uint32_t overlay_size;
    int secondary_capture;
} pnx_score_output_settings;

typedef struct pnx_score_item_result {
    int ok;
    char error[512];
    pnx_postprocess_result post;
    double area_mm2;              /* < 0: unknown */
    char *seg_path;               /* owned; NULL when none written */
    char *overlay_path;
    char *sc_path;
    char *mask_rle;               /* relative RLE of the native mask */
    double post_ms;
} pnx_score_item_result;

/* From the probability map of one image (side × side) to its mask at the
 * native size of image, and every enabled output written atomically.
 * spacing_row/col in mm (0 = unknown). Thread-safe for distinct items. */
int pnx_score_item_outputs(const pnx_score_output_settings *s, const pnx_dicom_source *src,
                           const pnx_image *image, const float *prob, uint32_t side,
                           double spacing_row, double spacing_col, pnx_score_item_result *out);
void pnx_score_item_result_free(pnx_score_item_result *r);

/* Removes the temporary files "<final_path>.tmp.*" that a killed writer
 * left beside final_path (common/fileio.h's naming). */
void pnx_score_sweep_temps(const char *final_path);

/* ---- score_strset.c: the paths and UIDs a run has done --------------------- */

typedef struct pnx_str_set {
    char **slots;
    size_t cap;   /* power of two */
    size_t count;
} pnx_str_set;

int pnx_str_set_has(const pnx_str_set *set, const char *s);
/* Adds a copy of s (nothing when present). */
int pnx_str_set_add(pnx_str_set *set, const char *s);
void pnx_str_set_free(pnx_str_set *set);

/* ---- score_submission.c ----------------------------------------------------- */

/* Writes path (atomically, folders created) with one "ImageId,EncodedPixels"
 * row per ok prediction of run_id, in the RLE format given (enum
 * pnx_rle_format); failed images are left out. */
int pnx_score_write_submission(pnx_db *db, int64_t run_id, const char *path, int format);

#endif
