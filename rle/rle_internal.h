/*
 * rle/rle_internal.h — what the files of rle/ share and nobody else needs.
 */
#ifndef PNX_RLE_RLE_INTERNAL_H
#define PNX_RLE_RLE_INTERNAL_H

#include "rle/rle.h"

/* Moves the reader to a data row found earlier at byte offset (its line
 * number is line): the next pnx_rle_reader_next returns that row. */
int pnx_rle_reader_seek(pnx_rle_reader *reader, uint64_t offset, int64_t line);

#endif
