/*
 * model/cuda/cuda_stub.c — the CUDA backend's entry points in a build
 * without CUDA: they say so (PNX_ENOTBUILT) instead of being missing, so
 * callers choose a device without #ifdef.
 */
#include "model/cuda/cuda_backend.h"

#include <stdio.h>

#include "common/error.h"

int pnx_cuda_device_count(char *why, size_t why_size)
{
    if (why_size)
        snprintf(why, why_size, "this pneumoseg was built without CUDA");
    return 0;
}

int pnx_backend_cuda_create(pnx_backend **out, const pnx_cuda_options *opt)
{
    (void)opt;
    *out = NULL;
    return pnx_fail(PNX_ENOTBUILT,
                    "this pneumoseg was built without CUDA (no CUDA toolkit or cuDNN was found "
                    "at configure time; see docs/gpu.md)");
}

void pnx_backend_cuda_describe(pnx_backend *be, char *buf, size_t size)
{
    (void)be;
    if (size)
        snprintf(buf, size, "no CUDA in this build");
}
