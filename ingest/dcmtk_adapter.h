/*
 * ingest/dcmtk_adapter.h — the only door to DCMTK for reading: a plain C
 * interface over dcmtk_adapter.cc. Internal to ingest/.
 *
 * Every function catches every C++ exception and turns it into an error
 * kind and message; nothing C++ crosses this header. These functions parse
 * untrusted bytes: outside tests they run only inside a decode worker.
 */
#ifndef PNX_INGEST_DCMTK_ADAPTER_H
#define PNX_INGEST_DCMTK_ADAPTER_H

#include <stddef.h>

#include "ingest/ingest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the decoders (JPEG, JPEG-LS, RLE) and loads the data
 * dictionary. Idempotent; call before forking
 * workers so that they inherit all of it. Returns 0 or PNX_EINTERNAL when
 * no dictionary could be loaded. */
int pnx_dcm_global_init(void);

/* Turns DCMTK's own log output off for this process: hostile files make
 * it chatty, and the error kinds say what matters. Called in each worker
 * (and by the unisolated decoder), not in the caller's process. */
void pnx_dcm_quiet(void);

/* Reads path with DCMTK, fills meta, checks the header against limits and,
 * when `flags` has PNX_DECODE_PIXELS, decodes the pixels and maps them to
 * 8-bit grayscale into *image (allocated here). Returns PNX_INGEST_OK or an
 * error kind with a message in err (errlen bytes, NUL-terminated). On
 * error, meta keeps what was read and image is left empty. */
int pnx_dcm_decode(const char *path, const pnx_ingest_limits *limits, unsigned flags,
                   pnx_dicom_meta *meta, pnx_image *image, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
