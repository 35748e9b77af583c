/*
 * postprocess/overlay.h — the picture to eyeball: the radiograph in gray, the
 * predicted mask in translucent red with a solid red outline.
 *
 * The rule, pixel by pixel (g = the gray level at that pixel, A = PNX_OVERLAY_ALPHA):
 *   outline pixel (a mask pixel with a 4-neighbour outside the mask or
 *   outside the image):                   (255, 0, 0)
 *   other mask pixel:                      ((g*(256-A) + 255*A + 128) >> 8,
 *                                           (g*(256-A) + 128) >> 8, same)
 *   background:                            (g, g, g)
 * At a preview size (longest side = preview_size, smaller than the native
 * longest side; the other side rounded, at least 1) each preview pixel covers a
 * block of native pixels [floor(x*W/w), floor((x+1)*W/w)) × (same in y): its
 * gray is the rounded mean of the block and it is a mask pixel when any pixel
 * of the block is, so small findings stay visible. The rule above then applies
 * at preview size. preview_size 0, or ≥ the native longest side, keeps the
 * native size.
 */
#ifndef PNX_POSTPROCESS_OVERLAY_H
#define PNX_POSTPROCESS_OVERLAY_H

#include <stdint.h>

#include "common/image.h"

#define PNX_OVERLAY_ALPHA 102 /* of 256: the mask's red covers 40 % */

/* An RGB picture, row-major, 3 bytes per pixel, owned. */
typedef struct pnx_rgb_image {
    uint32_t width;
    uint32_t height;
    uint8_t *rgb;
} pnx_rgb_image;

void pnx_rgb_image_free(pnx_rgb_image *img);

/* Renders the overlay of mask on image (same size) per the rule above into
 * out, which must be unallocated. */
int pnx_overlay_render(const pnx_image *image, const pnx_image *mask, uint32_t preview_size,
                       pnx_rgb_image *out);

/* Writes an RGB picture as an 8-bit RGB PNG, atomically. */
int pnx_png_write_rgb(const char *path, const pnx_rgb_image *img);

/* Render + write: the usual call from the scorer. */
int pnx_overlay_write_png(const char *path, const pnx_image *image, const pnx_image *mask,
                          uint32_t preview_size);

#endif
