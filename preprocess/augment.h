/*
 * preprocess/augment.h — on-the-fly augmentation of one training item: an
 * 8-bit image and its 0/1 mask at the training size, turned into the float
 * tensors the network takes.
 *
 * A transform is drawn from ranges (pnx_augment_params) with a pnx_rng, then
 * applied. Drawing always consumes the same eight uniforms in the same order
 * whichever parts are on, so switching one part off leaves the values of the
 * others unchanged for a given stream.
 *
 * Geometric parts (horizontal flip, shift, scale, rotation about the image
 * centre) form one affine map applied to image and mask alike: the image is
 * sampled bilinearly, the mask by nearest neighbour so it stays 0/1. Pixels
 * that come from outside the source are 0 in both. Photometric parts
 * (contrast about mid-grey, brightness, gamma) change the image only, through
 * a 256-entry table on the source grey levels, and the result is clamped to
 * [0, 1]. With every part off the output is exactly grey / 255 and the mask
 * as given.
 */
#ifndef PNX_PREPROCESS_AUGMENT_H
#define PNX_PREPROCESS_AUGMENT_H

#include <stdint.h>

#include "common/rng.h"

/* Gamma exponents are kept at or above this, whatever the range. */
#define PNX_AUGMENT_MIN_GAMMA 0.1

/* Ranges; 0 switches a part off. */
typedef struct pnx_augment_params {
    double hflip;      /* probability of a horizontal flip, 0..1 */
    double shift;      /* |shift| ≤ shift × side, per axis, 0..0.5 */
    double scale;      /* zoom factor in 1 ± scale, 0..0.5 */
    double rotate_deg; /* angle in ± rotate_deg degrees, 0..180 */
    double brightness; /* added intensity in ± brightness (intensity 0..1) */
    double contrast;   /* factor about 0.5 in 1 ± contrast, 0..1 */
    double gamma;      /* exponent in 1 ± gamma (at least PNX_AUGMENT_MIN_GAMMA), 0..1 */
} pnx_augment_params;

/* One drawn transform. Build one by hand for exact tests. */
typedef struct pnx_augment_transform {
    int hflip;          /* mirror x before the rest */
    double shift_x;     /* pixels, + moves content right */
    double shift_y;     /* pixels, + moves content down */
    double scale;       /* > 0, > 1 enlarges the content */
    double angle_deg;   /* counter-clockwise on screen */
    double brightness;
    double contrast;
    double gamma;
} pnx_augment_transform;

/* Checks the ranges above: PNX_ERANGE naming the first bad one. */
int pnx_augment_params_check(const pnx_augment_params *p);

/* The transform that changes nothing. */
void pnx_augment_identity(pnx_augment_transform *t);

/* Draws a transform for a width × height item from rng (p checked). */
int pnx_augment_draw(const pnx_augment_params *p, uint32_t width, uint32_t height, pnx_rng *rng,
                     pnx_augment_transform *t);

/* Applies t: image and mask (width × height, row-major; mask values 0/1)
 * → image_out in [0, 1] and mask_out in {0, 1} (width × height floats).
 * mask and mask_out may both be NULL (inference-style images only). */
int pnx_augment_apply(const pnx_augment_transform *t, const uint8_t *image, const uint8_t *mask,
                      uint32_t width, uint32_t height, float *image_out, float *mask_out);

#endif
