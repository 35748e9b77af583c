/*
 * pipeline/instance_row.h — an instances row from a decode result.
 *
 * ingest, dataset and score all record what a decode worker read about a
 * file; this is the one mapping from ingest's metadata to db/'s row.
 */
#ifndef PNX_PIPELINE_INSTANCE_ROW_H
#define PNX_PIPELINE_INSTANCE_ROW_H

#include "db/instances.h"
#include "ingest/ingest.h"

/* Fills row from r's metadata and path. error_kind and error (both NULL
 * for a usable instance) are stored as given. The row borrows every string
 * from r, error_kind and error: keep them alive while the row is used. */
void pnx_instance_row_from_result(pnx_instance_row *row, const pnx_decode_result *r,
                                  const char *error_kind, const char *error);

#endif
