/*
 * ingest/decode_internal.h — what the pool shares with the one-file decoder.
 * Internal to ingest/.
 */
#ifndef PNX_INGEST_DECODE_INTERNAL_H
#define PNX_INGEST_DECODE_INTERNAL_H

#include "ingest/ingest.h"

/* Decodes path into r (all fields but index and path are overwritten;
 * r->image must be empty). Never fails: the outcome is r->error_kind. */
void pnx_decode_run(const char *path, const pnx_ingest_limits *limits, unsigned flags,
                    pnx_decode_result *r);

#endif
