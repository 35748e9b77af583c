/*
 * common/image.h — the image and mask type shared by all stages.
 *
 * A pnx_image is row-major, one byte per pixel, width × height, no padding:
 * pixel (x, y) is pixels[y * width + x]. Decoded radiographs are 0..255
 * grey levels (air dark); masks are 0/1. Sizes are validated against
 * PNX_IMAGE_MAX_SIDE before allocating.
 */
#ifndef PNX_COMMON_IMAGE_H
#define PNX_COMMON_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define PNX_IMAGE_MAX_SIDE 65535u

typedef struct pnx_image {
    uint32_t width;
    uint32_t height;
    uint8_t *pixels; /* width * height bytes, owned */
} pnx_image;

/* Allocates a zero-filled width × height image. Both sides must be in
 * 1..PNX_IMAGE_MAX_SIDE. */
int pnx_image_alloc(pnx_image *img, uint32_t width, uint32_t height);
void pnx_image_free(pnx_image *img);
static inline size_t pnx_image_size(const pnx_image *img)
{
    return (size_t)img->width * img->height;
}

#endif
