/*
 * common/safetensors.c — the dtypes of the safetensors format and the
 * checked size arithmetic both the reader (safetensors_read.c) and the
 * writer (safetensors_write.c) use. See safetensors.h for the promises.
 */
#include "common/safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"


static const struct {
    const char *name;
    size_t size;
} dtype_table[PNX_ST_DTYPE_COUNT] = {
    [PNX_ST_BOOL] = {"BOOL", 1}, [PNX_ST_U8] = {"U8", 1},     [PNX_ST_I8] = {"I8", 1},
    [PNX_ST_U16] = {"U16", 2},   [PNX_ST_I16] = {"I16", 2},   [PNX_ST_F16] = {"F16", 2},
    [PNX_ST_BF16] = {"BF16", 2}, [PNX_ST_U32] = {"U32", 4},   [PNX_ST_I32] = {"I32", 4},
    [PNX_ST_F32] = {"F32", 4},   [PNX_ST_U64] = {"U64", 8},   [PNX_ST_I64] = {"I64", 8},
    [PNX_ST_F64] = {"F64", 8},
};

const char *pnx_st_dtype_name(pnx_st_dtype dtype)
{
    if ((int)dtype < 0 || dtype >= PNX_ST_DTYPE_COUNT)
        return NULL;
    return dtype_table[dtype].name;
}

size_t pnx_st_dtype_size(pnx_st_dtype dtype)
{
    if ((int)dtype < 0 || dtype >= PNX_ST_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

int pnx_st_dtype_from_name(const char *name, pnx_st_dtype *out)
{
    for (int i = 0; i < PNX_ST_DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *out = (pnx_st_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* Product of shape × element size, failing (returning -1) when it exceeds
 * limit, so a hostile shape can never overflow. */
int pnx_st_checked_nbytes(int ndim, const int64_t *shape, size_t elem, uint64_t limit,
                          uint64_t *numel_out, uint64_t *nbytes_out)
{
    uint64_t numel = 1;
    int zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return -1;
        if (shape[d] == 0)
            zero = 1;
    }
    if (zero) {
        *numel_out = 0;
        *nbytes_out = 0;
        return 0;
    }
    for (int d = 0; d < ndim; d++) {
        uint64_t s = (uint64_t)shape[d];
        if (numel > limit / s)
            return -1;
        numel *= s;
    }
    if (numel > limit / elem)
        return -1;
    *numel_out = numel;
    *nbytes_out = numel * elem;
    return 0;
}
