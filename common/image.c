/* common/image.c — allocation of the shared image type; see image.h. */
#include "common/image.h"

#include <stdlib.h>

#include "common/error.h"

int pnx_image_alloc(pnx_image *img, uint32_t width, uint32_t height)
{
    img->width = img->height = 0;
    img->pixels = NULL;
    if (width == 0 || height == 0 || width > PNX_IMAGE_MAX_SIDE || height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_ERANGE, "image size %ux%u outside 1..%u", width, height,
                        PNX_IMAGE_MAX_SIDE);
    img->pixels = calloc((size_t)width * height, 1);
    if (!img->pixels)
        return pnx_fail(PNX_ENOMEM, "out of memory for a %ux%u image", width, height);
    img->width = width;
    img->height = height;
    return PNX_OK;
}

void pnx_image_free(pnx_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}
