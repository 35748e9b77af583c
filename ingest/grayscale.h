/*
 * ingest/grayscale.h — stored pixel values to the 8-bit grayscale image the
 * model sees, following the decoding rule of ingest/ingest.h (rescale, VOI
 * window or identity or min–max, MONOCHROME1 inversion). Pure C, no DCMTK:
 * testable with synthetic samples. Internal to ingest/.
 */
#ifndef PNX_INGEST_GRAYSCALE_H
#define PNX_INGEST_GRAYSCALE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/ingest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* samples: count values of bytes_per_sample (1 or 2) bytes each, in host
 * byte order, as stored (bits outside Bits Stored / High Bit are ignored).
 * meta supplies bits_stored, high_bit, pixel_representation, rescale,
 * window and photometric. out receives count bytes; out may be samples
 * itself for 1-byte samples (the mapping is in place then). Returns 0, or
 * PNX_EFORMAT when the bit layout in meta is inconsistent. */
int pnx_gray8_from_samples(const void *samples, size_t count, int bytes_per_sample,
                           const pnx_dicom_meta *meta, uint8_t *out);

/* Checks the pixel description of meta (bits, high bit, representation)
 * for consistency; 0 or PNX_EFORMAT with a message. */
int pnx_gray8_check_layout(const pnx_dicom_meta *meta);

#ifdef __cplusplus
}
#endif

#endif
