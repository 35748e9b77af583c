/*
 * preprocess/resize.h — bringing decoded radiographs and their masks to the
 * square training resolution.
 *
 * Like the seed (torchvision Resize((128, 128))), the resize is square: the
 * aspect ratio is not kept, each axis is scaled on its own. Per axis:
 *   - shrinking averages the exact source area under each target pixel
 *     (a target pixel of a 1024 → 128 resize is the mean of an 8 × 8 block;
 *     at ratios that are not whole numbers, source pixels that straddle two
 *     target pixels count in each by the fraction that falls in it), so
 *     nothing aliases and the mean grey level is kept;
 *   - enlarging interpolates bilinearly between pixel centres (the
 *     half-pixel convention of PIL and torch's align_corners=False), with
 *     edge pixels repeated past the border;
 *   - an axis of equal size is copied.
 * Values are rounded to nearest. The result depends only on the input
 * bytes (no threads, no state), so reruns are byte-identical.
 *
 * Masks (0/1) are resized by coverage: a target pixel's footprint is the
 * same source area the image resize averages when shrinking (the source
 * pixel under the target centre when enlarging), and the rule decides how
 * much foreground the footprint needs (see docs/dataset.md for why the
 * dataset stage uses PNX_MASK_ANY).
 */
#ifndef PNX_PREPROCESS_RESIZE_H
#define PNX_PREPROCESS_RESIZE_H

#include <stdint.h>

#include "common/image.h"

/* How much of its footprint must be foreground for a target mask pixel to
 * be foreground. */
typedef enum pnx_mask_rule {
    /* Any foreground source pixel in the footprint. A lesion never vanishes,
     * however thin (a 1-pixel pleural line survives a 1024 → 128 shrink);
     * the price is up to one target pixel of growth at the lesion's edge. */
    PNX_MASK_ANY = 0,
    /* At least half the footprint's area. Unbiased area, but lesions thinner
     * than half a target pixel disappear. */
    PNX_MASK_MAJORITY = 1,
} pnx_mask_rule;

/* Resizes an 8-bit image src to side × side into dst (allocated here; the
 * caller frees it with pnx_image_free). side must be in
 * 1..PNX_IMAGE_MAX_SIDE and src must hold pixels. Returns 0, PNX_EINVAL or
 * PNX_ENOMEM; dst is untouched on failure. */
int pnx_resize_image(const pnx_image *src, uint32_t side, pnx_image *dst);

/* Resizes a mask (any nonzero byte is foreground) to side × side into dst
 * (allocated here), with values 0/1. Same errors as pnx_resize_image. */
int pnx_resize_mask(const pnx_image *src, uint32_t side, pnx_mask_rule rule,
                    pnx_image *dst);

/* Both resizes also exist for an arbitrary target width × height, which the
 * square versions call; tests and postprocess-like callers use them. */
int pnx_resize_image_to(const pnx_image *src, uint32_t width, uint32_t height,
                        pnx_image *dst);
int pnx_resize_mask_to(const pnx_image *src, uint32_t width, uint32_t height,
                       pnx_mask_rule rule, pnx_image *dst);

#endif
