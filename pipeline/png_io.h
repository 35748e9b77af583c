/*
 * pipeline/png_io.h — 8-bit greyscale PNG files for the command-line tools
 * (`pneumoseg rle` masks, `ingest --png` and `dataset --png` pictures).
 *
 * Writing is atomic (common/fileio.h): a file appears whole under its name
 * or not at all. Reading accepts any PNG libpng reads (grey, palette, RGB,
 * 16-bit, with alpha) and converts it to 8-bit grey; sizes are checked
 * against PNX_PNG_MAX_PIXELS before anything is allocated.
 */
#ifndef PNX_PIPELINE_PNG_IO_H
#define PNX_PIPELINE_PNG_IO_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

/* The largest picture read (width × height): 16384² bytes, 256 MiB. */
#define PNX_PNG_MAX_PIXELS (UINT64_C(1) << 28)

/* Writes img as an 8-bit greyscale PNG; with as_mask, every nonzero pixel
 * is written as 255 (a 0/1 mask becomes a visible 0/255 picture). */
int pnx_png_write_gray(const char *path, const pnx_image *img, int as_mask);

/* Encodes img as pnx_png_write_gray would write it, into a malloc'd buffer
 * (*data, *len; the caller frees it). For writing the same picture often. */
int pnx_png_encode_gray(const pnx_image *img, int as_mask, uint8_t **data, size_t *len);

/* Reads path into *img (allocated here; free with pnx_image_free) as 8-bit
 * grey. PNX_ENOTFOUND, PNX_EIO, PNX_EFORMAT (not a PNG / corrupt) or
 * PNX_ERANGE (too large). */
int pnx_png_read_gray(const char *path, pnx_image *img);

#endif
