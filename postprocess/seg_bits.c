/*
 * postprocess/seg_bits.c — BINARY segmentation pixel packing (PS3.5 8.1.1),
 * done here rather than by DCMTK 3.6.7, whose packing is wrong when
 * rows × columns is not a multiple of 8.
 */
#include <string.h>

#include "postprocess/seg.h"

void pnx_seg_pack_bits(const uint8_t *mask, size_t n_pixels, uint8_t *packed)
{
    memset(packed, 0, (n_pixels + 7) / 8);
    for (size_t i = 0; i < n_pixels; i++)
        if (mask[i])
            packed[i >> 3] |= (uint8_t)(1u << (i & 7));
}

void pnx_seg_unpack_bits(const uint8_t *packed, size_t n_pixels, uint8_t *mask)
{
    for (size_t i = 0; i < n_pixels; i++)
        mask[i] = (packed[i >> 3] >> (i & 7)) & 1u;
}
