/*
 * pipeline/score_model.c — the score stage's network: loading a checkpoint
 * on the chosen backend and batched eval-mode inference; see
 * score_internal.h.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "pipeline/config.h"
#include "pipeline/score_internal.h"
#include "preprocess/resize.h"

/* The largest training side accepted from a checkpoint's metadata. */
#define MAX_SIDE 4096

static int meta_number(const pnx_st_file *f, const char *path, const char *key, double lo,
                       double hi, double *value, int *present)
{
    const char *text = pnx_st_meta(f, key);
    *present = text != NULL;
    if (!text)
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi))
        return pnx_fail(PNX_EFORMAT, "%s: metadata %s = '%s' is not a number in %g..%g", path,
                        key, text, lo, hi);
    *value = v;
    return 0;
}

static int read_triplet(const pnx_st_file *f, const char *path, pnx_score_model *sm)
{
    double top = 0, area = 0, bottom = 0;
    int has_top, has_area, has_bottom;
    int rc = meta_number(f, path, PNX_SCORE_META_TOP, 0, 1, &top, &has_top);
    if (!rc)
        rc = meta_number(f, path, PNX_SCORE_META_MIN_AREA, 0, 9.0e15, &area, &has_area);
    if (!rc)
        rc = meta_number(f, path, PNX_SCORE_META_BOTTOM, 0, 1, &bottom, &has_bottom);
    if (rc)
        return rc;
    if (has_top + has_area + has_bottom == 0)
        return 0;
    if (has_top + has_area + has_bottom != 3 || area != (double)(int64_t)area)
        return pnx_fail(PNX_EFORMAT, "%s: triplet metadata needs %s, %s (a whole number) and %s",
                        path, PNX_SCORE_META_TOP, PNX_SCORE_META_MIN_AREA, PNX_SCORE_META_BOTTOM);
    sm->has_triplet = 1;
    sm->triplet_top = top;
    sm->triplet_min_area = (int64_t)area;
    sm->triplet_bottom = bottom;
    return 0;
}

static int read_metadata(const char *path, uint32_t fallback, pnx_score_model *sm)
{
    uint32_t *side = &sm->side;
    int *from_ckpt = &sm->side_from_checkpoint;
    pnx_st_file *f = NULL;
    int rc = pnx_st_open(&f, path);
    if (rc)
        return rc;
    const char *text = pnx_st_meta(f, PNX_SCORE_META_IMAGE_SIZE);
    *from_ckpt = text != NULL;
    if (text) {
        char *end = NULL;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < PNX_UNET_SIZE_MULTIPLE || v > MAX_SIDE ||
            v % PNX_UNET_SIZE_MULTIPLE != 0)
            rc = pnx_fail(PNX_EFORMAT, "%s: metadata %s = '%s' is not a side of %d..%d, "
                                       "multiple of %d",
                          path, PNX_SCORE_META_IMAGE_SIZE, text, PNX_UNET_SIZE_MULTIPLE, MAX_SIDE,
                          PNX_UNET_SIZE_MULTIPLE);
        else
            *side = (uint32_t)v;
    } else {
        *side = fallback;
    }
    /* The train run that wrote the checkpoint, to link the score run to it. */
    const char *run_text = pnx_st_meta(f, "pneumoseg.run_id");
    if (run_text) {
        char *end = NULL;
        errno = 0;
        long long id = strtoll(run_text, &end, 10);
        sm->train_run_id = !errno && end != run_text && !*end && id > 0 ? (int64_t)id : 0;
    }
    if (!rc)
        rc = read_triplet(f, path, sm);
    pnx_st_close(f);
    return rc;
}

int pnx_score_model_load(pnx_score_model *sm, const char *path, uint32_t fallback_side,
                         int device, unsigned threads, int precision, int capacity)
{
    memset(sm, 0, sizeof *sm);
    if (capacity < 1)
        return pnx_fail(PNX_EINVAL, "batch size must be at least 1");
    int rc = pnx_sha256_file_hex(path, sm->sha256);
    if (rc)
        return pnx_fail_prefix(rc, "model %s", path);
    if ((rc = read_metadata(path, fallback_side, sm)))
        return rc;
    if (sm->side % PNX_UNET_SIZE_MULTIPLE != 0 || sm->side == 0)
        return pnx_fail(PNX_EINVAL, "model input side %u is not a multiple of %d", sm->side,
                        PNX_UNET_SIZE_MULTIPLE);
    pnx_device_request req = {.device = device,
                              .threads = threads,
                              .allow_tf32 = precision == PNX_PREC_TF32,
                              .mixed_bf16 = precision == PNX_PREC_BF16};
    char desc[320];
    if ((rc = pnx_backend_open(&sm->backend, &req, &sm->device, desc, sizeof desc)))
        return rc;
    pnx_log_info("device %s", desc);
    if (precision != PNX_PREC_FP32 && strcmp(sm->device, "cpu") == 0)
        pnx_log_warn("score.precision: %s applies on a GPU only; the CPU computes in fp32",
                     precision == PNX_PREC_BF16 ? "bf16" : "tf32");
    pnx_checkpoint_info info;
    if ((rc = pnx_checkpoint_load(&sm->net, sm->backend, path, &info))) {
        pnx_score_model_free(sm);
        return rc;
    }
    sm->base_width = info.base_width;
    size_t per = (size_t)sm->side * sm->side;
    sm->capacity = capacity;
    sm->input = malloc((size_t)capacity * per * sizeof *sm->input);
    sm->logits = malloc((size_t)capacity * per * sizeof *sm->logits);
    sm->flipped = malloc((size_t)capacity * per * sizeof *sm->flipped);
    if (!sm->input || !sm->logits || !sm->flipped) {
        pnx_score_model_free(sm);
        return pnx_fail(PNX_ENOMEM, "out of memory for a batch of %d at %u x %u", capacity,
                        sm->side, sm->side);
    }
    return 0;
}

void pnx_score_model_free(pnx_score_model *sm)
{
    if (!sm)
        return;
    pnx_unet_destroy(sm->net);
    pnx_backend_destroy(sm->backend);
    free(sm->input);
    free(sm->logits);
    free(sm->flipped);
    memset(sm, 0, sizeof *sm);
}

static void sigmoid(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void mirror_rows(float *v, uint32_t w, uint32_t h)
{
    for (uint32_t y = 0; y < h; y++) {
        float *row = v + (size_t)y * w;
        for (uint32_t a = 0, b = w - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

int pnx_score_model_predict(pnx_score_model *sm, const pnx_image *const *images, int n,
                            int tta_hflip, float *probs)
{
    if (n < 1 || n > sm->capacity)
        return pnx_fail(PNX_EINVAL, "batch of %d images, capacity %d", n, sm->capacity);
    const uint32_t side = sm->side;
    const size_t per = (size_t)side * side;
    for (int i = 0; i < n; i++) {
        pnx_image small = {0};
        int rc = pnx_resize_image(images[i], side, &small);
        if (rc)
            return rc;
        float *dst = sm->input + (size_t)i * per;
        for (size_t k = 0; k < per; k++)
            dst[k] = (float)small.pixels[k] / 255.0f;
        pnx_image_free(&small);
    }
    int rc = pnx_unet_forward(sm->net, sm->input, n, (int)side, (int)side, 0, sm->logits);
    if (rc)
        return rc;
    sigmoid(sm->logits, probs, (size_t)n * per);
    if (!tta_hflip)
        return 0;
    for (int i = 0; i < n; i++)
        mirror_rows(sm->input + (size_t)i * per, side, side);
    if ((rc = pnx_unet_forward(sm->net, sm->input, n, (int)side, (int)side, 0, sm->flipped)))
        return rc;
    sigmoid(sm->flipped, sm->flipped, (size_t)n * per);
    for (int i = 0; i < n; i++)
        pnx_probmap_average_hflip(probs + (size_t)i * per, sm->flipped + (size_t)i * per, side,
                                  side);
    return 0;
}
