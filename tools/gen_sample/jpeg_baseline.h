/*
 * tools/gen_sample/jpeg_baseline.h — 8-bit greyscale JPEG Baseline
 * (ISO 10918-1 process 1) encoding with libjpeg, shaped like the SIIM files'
 * streams: SOF0, one component, optimised Huffman tables, no JFIF/APPn
 * marker, no restart intervals. The integer DCT keeps the bytes the same on
 * every run and machine with the same libjpeg.
 */
#ifndef PNX_TOOLS_JPEG_BASELINE_H
#define PNX_TOOLS_JPEG_BASELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

/* Encodes img at quality 1..100 into a malloc'd buffer (*out, *out_len);
 * the caller frees *out. Returns 0, PNX_EINVAL, PNX_ENOMEM or PNX_EFORMAT
 * (libjpeg refused; the message says why). */
int pnx_jpeg_baseline_encode(const pnx_image *img, int quality, uint8_t **out,
                             size_t *out_len);

#endif
