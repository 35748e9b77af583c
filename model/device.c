/* model/device.c — auto/cpu/cuda → a backend; see device.h. */
#include "model/device.h"

#include <stdio.h>

#include "common/error.h"
#include "model/cpu/cpu_backend.h"
#include "model/cuda/cuda_backend.h"

int pnx_backend_open(pnx_backend **out, const pnx_device_request *req, const char **kind,
                     char *desc, size_t desc_size)
{
    *out = NULL;
    char why[256] = "";
    int want_cuda = req->device == PNX_MODEL_DEVICE_CUDA;
    if (req->device == PNX_MODEL_DEVICE_AUTO)
        want_cuda = pnx_cuda_device_count(why, sizeof why) > 0;
    else if (req->device != PNX_MODEL_DEVICE_CPU && !want_cuda)
        return pnx_fail(PNX_EINVAL, "unknown device %d", req->device);

    if (want_cuda) {
        pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
        opt.allow_tf32 = req->allow_tf32;
        opt.mixed_bf16 = req->mixed_bf16;
        opt.deterministic = req->deterministic;
        opt.algo_search = req->algo_search;
        int rc = pnx_backend_cuda_create(out, &opt);
        if (rc)
            return pnx_fail_prefix(rc, "device cuda");
        char line[256];
        pnx_backend_cuda_describe(*out, line, sizeof line);
        if (desc && desc_size > 0)
            snprintf(desc, desc_size, "cuda: %s", line);
        if (kind)
            *kind = "cuda";
        return PNX_OK;
    }
    int rc = pnx_backend_cpu_create(out, req->threads);
    if (rc)
        return pnx_fail_prefix(rc, "CPU backend");
    if (desc && desc_size > 0) {
        if (req->device == PNX_MODEL_DEVICE_AUTO)
            snprintf(desc, desc_size, "cpu (auto: %s)", why[0] ? why : "no GPU");
        else
            snprintf(desc, desc_size, "cpu");
    }
    if (kind)
        *kind = "cpu";
    return PNX_OK;
}
