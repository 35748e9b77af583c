/*
 * model/device.h — choosing the backend a stage runs on.
 *
 * One place turns "auto | cpu | cuda" into a backend, so train, predict and
 * score choose alike: auto takes the GPU when the CUDA backend is built and
 * a device is present, and the CPU otherwise; cuda without a GPU is an
 * error (PNX_EDEVICE, or PNX_ENOTBUILT in a build without CUDA). The values
 * of enum pnx_model_device equal those of pipeline/config.h's pnx_device.
 */
#ifndef PNX_MODEL_DEVICE_H
#define PNX_MODEL_DEVICE_H

#include <stddef.h>

#include "model/backend.h"

enum pnx_model_device {
    PNX_MODEL_DEVICE_AUTO = 0,
    PNX_MODEL_DEVICE_CPU = 1,
    PNX_MODEL_DEVICE_CUDA = 2,
};

typedef struct pnx_device_request {
    int device;        /* enum pnx_model_device */
    unsigned threads;  /* CPU threads; 0 = one per CPU */
    int allow_tf32;    /* GPU: TF32 tensor cores for FP32 convolutions */
    int mixed_bf16;    /* GPU: mixed precision, bfloat16 NHWC activations
                          (pnx_cuda_options.mixed_bf16); the CPU ignores it */
    int deterministic; /* GPU: bitwise-reproducible algorithms only */
    int algo_search;   /* GPU: enum pnx_cuda_algo_search (cuDNN heuristics or timings) */
} pnx_device_request;

/* Creates the backend for req. *kind receives "cpu" or "cuda"; desc (may be
 * NULL) a one-line description of what was taken and, for auto on the CPU,
 * why no GPU was used. */
int pnx_backend_open(pnx_backend **out, const pnx_device_request *req, const char **kind,
                     char *desc, size_t desc_size);

#endif
