/*
 * postprocess/postprocess.h — from a model's probability map to a mask.
 *
 * The scorer hands over one probability map per image at the model's
 * resolution; pnx_postprocess_probmap() turns it into a 0/1 mask at the
 * image's native size:
 *
 *   1. bilinear resize of the probabilities (not of a mask) to native size,
 *      half-pixel centres (PyTorch align_corners=False, OpenCV INTER_LINEAR);
 *   2. either a plain threshold (p > threshold), or the SIIM-ACR 1st-place
 *      "triplet" decision: the image is positive only when at least
 *      triplet_min_area native pixels have p > top_threshold, and then its
 *      mask is the pixels with p > bottom_threshold (else it is empty);
 *   3. removal of 8-connected components smaller than min_component_area.
 *
 * Steps 1 and 2 run row by row, so no native-size float buffer is allocated.
 * Horizontal-flip test-time augmentation is the scorer's choice; it averages
 * the two maps with pnx_probmap_average_hflip() before calling this.
 *
 * Areas are in native pixels. Probabilities are floats, ideally in [0, 1];
 * NaN counts as below every threshold.
 */
#ifndef PNX_POSTPROCESS_POSTPROCESS_H
#define PNX_POSTPROCESS_POSTPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

/* A probability map: row-major, p(x, y) = values[y * width + x]. Not owned. */
typedef struct pnx_probmap {
    uint32_t width;
    uint32_t height;
    const float *values;
} pnx_probmap;

typedef struct pnx_postprocess_params {
    double threshold;            /* plain rule: foreground when p > threshold */
    int64_t min_component_area;  /* components with fewer pixels vanish; 0 keeps all */
    int triplet_enabled;         /* non-zero: use the triplet rule instead of threshold */
    double top_threshold;
    int64_t triplet_min_area;    /* pixels with p > top_threshold needed to be positive */
    double bottom_threshold;
} pnx_postprocess_params;

typedef struct pnx_postprocess_result {
    float max_probability;       /* max of the resized map (NaN ignored; 0 when all NaN) */
    int64_t mask_pixels;         /* foreground pixels of the final mask */
    int64_t components_kept;
    int64_t components_removed;  /* by the min_component_area rule */
    int positive;                /* mask_pixels > 0 */
} pnx_postprocess_result;

/* Checks the parameters (thresholds finite, areas >= 0). */
int pnx_postprocess_params_check(const pnx_postprocess_params *params);

/* A canonical text of the parameters, e.g.
 *   "pp1;threshold=0.5;min_component_area=0;triplet=0"
 *   "pp1;threshold=0.5;min_component_area=0;triplet=1;top=0.75;min_area=2000;bottom=0.4"
 * (numbers with %.17g, so equal values give equal text). Meant for the
 * settings part of derived UIDs (uid.h), together with anything else that
 * changes the output (e.g. TTA). Returns the length snprintf would write
 * (PNX_EINVAL when params is NULL); out may be NULL when size is 0. */
int pnx_postprocess_settings_text(const pnx_postprocess_params *params, char *out, size_t size);

/* The whole chain above. mask must be unallocated (zeroed); on success it
 * holds a native_width × native_height 0/1 image owned by the caller
 * (pnx_image_free). result may be NULL. On failure mask stays unallocated. */
int pnx_postprocess_probmap(const pnx_probmap *prob, uint32_t native_width,
                            uint32_t native_height, const pnx_postprocess_params *params,
                            pnx_image *mask, pnx_postprocess_result *result);

/* Bilinear resize with half-pixel centres; dst holds dst_width × dst_height
 * floats. The same interpolation as the one inside pnx_postprocess_probmap. */
int pnx_probmap_resize_bilinear(const pnx_probmap *src, float *dst, uint32_t dst_width,
                                uint32_t dst_height);

/* Test-time augmentation: given the prediction on the horizontally flipped
 * input (still in flipped orientation), sets
 *   values[y][x] = (values[y][x] + flipped[y][width - 1 - x]) / 2.
 * Both maps are width × height. */
void pnx_probmap_average_hflip(float *values, const float *flipped, uint32_t width,
                               uint32_t height);

/* Removes the 8-connected components of a 0/1 mask with fewer than min_area
 * pixels, in place. kept and removed (either may be NULL) receive the
 * component counts. Fails only on allocation or a mask with values other
 * than 0/1. */
int pnx_mask_remove_small_components(pnx_image *mask, int64_t min_area, int64_t *kept,
                                     int64_t *removed);

#endif
