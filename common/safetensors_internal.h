/*
 * common/safetensors_internal.h — what the files of the safetensors module
 * share: the format's constants, the dtype lookup, the checked size
 * arithmetic and the strict JSON reader of the header. Not for other modules.
 */
#ifndef PNX_COMMON_SAFETENSORS_INTERNAL_H
#define PNX_COMMON_SAFETENSORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/safetensors.h"

#define PNX_ST_METADATA_KEY "__metadata__"
#define PNX_ST_LENGTH_PREFIX_BYTES 8u

int pnx_st_dtype_from_name(const char *name, pnx_st_dtype *out);
int pnx_st_checked_nbytes(int ndim, const int64_t *shape, size_t elem, uint64_t limit,
                          uint64_t *numel_out, uint64_t *nbytes_out);

/* A small strict JSON reader over the header text. */
typedef struct pnx_stjson_reader {
    const char *s;
    size_t n;
    size_t i;
} pnx_stjson_reader;

int pnx_stjson_error(const pnx_stjson_reader *j, const char *what);
int pnx_stjson_expect(pnx_stjson_reader *j, char c);
int pnx_stjson_peek(pnx_stjson_reader *j, char c);
int pnx_stjson_read_string(pnx_stjson_reader *j, char **out);
int pnx_stjson_read_uint_array(pnx_stjson_reader *j, uint64_t *out, int max, int *count);
void pnx_stjson_skip_ws(pnx_stjson_reader *j);

#endif
