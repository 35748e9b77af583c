/*
 * ingest/jpeg_turbo.h — the fast path for JPEG Baseline: one 8-bit
 * grayscale frame decoded by libjpeg-turbo (about three times faster than
 * DCMTK's IJG codec, and bit-identical with its accurate integer IDCT,
 * which is also DCMTK's). Internal to ingest/. Without libturbojpeg at
 * build time pnx_jpeg_turbo_available() is 0 and DCMTK decodes everything.
 */
#ifndef PNX_INGEST_JPEG_TURBO_H
#define PNX_INGEST_JPEG_TURBO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int pnx_jpeg_turbo_available(void);

/* Decodes one JPEG stream into out (columns × rows bytes). The stream must
 * be single-component 8-bit and exactly columns × rows, which is checked
 * from its header before decoding. Returns 0, or -1 when the stream is not
 * such a stream or does not decode (the caller then falls back to DCMTK). */
int pnx_jpeg_turbo_decode_gray(const uint8_t *jpeg, size_t len, uint32_t columns,
                               uint32_t rows, uint8_t *out);

#ifdef __cplusplus
}
#endif

#endif
