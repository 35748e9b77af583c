/*
 * model/cuda/cuda_backend.h — the CUDA backend: the ops of model/backend.h
 * on one NVIDIA GPU, convolutions on cuDNN 9 and everything else as the
 * project's own kernels (docs/gpu.md).
 *
 * Promises: the same semantics as the reference and CPU backends (FP32,
 * NCHW, PyTorch's BatchNorm / max-pool / Adam), so the U-Net, checkpoints
 * and stages are shared; memory from ops->alloc is device memory, and
 * upload/download copy between it and the host. All work runs in order on
 * one stream of the backend; host-visible results (the loss, downloads)
 * wait for it. upload and act_upload return as soon as the host source
 * has been read (into pinned staging memory), not when the copy has
 * reached the device: the host may reuse its buffer at once, and prepares
 * the next batch while the GPU still runs the current step.
 * With mixed_bf16, activations are bfloat16 NHWC on the device (act_size
 * 2) and move only through act_upload / act_download; parameters and
 * everything else stay float32. Not thread-safe: one backend, one thread
 * at a time.
 *
 * In a build without CUDA (PNX_HAVE_CUDA undefined) the functions exist and
 * fail with PNX_ENOTBUILT, so callers need no #ifdef.
 */
#ifndef PNX_MODEL_CUDA_BACKEND_H
#define PNX_MODEL_CUDA_BACKEND_H

#include <stddef.h>

#include "model/backend.h"

/* How convolution algorithms are chosen for each new shape. */
enum pnx_cuda_algo_search {
    PNX_CUDA_ALGO_HEURISTIC = 0, /* cuDNN's heuristics: instant */
    PNX_CUDA_ALGO_MEASURED,      /* cuDNN times the candidates once per shape */
};

typedef struct pnx_cuda_options {
    int device;             /* CUDA device ordinal */
    int allow_tf32;         /* let FP32 convolutions use TF32 tensor cores */
    int mixed_bf16;         /* mixed precision: activations bfloat16 NHWC,
                               parameters, gradients, BN statistics and Adam
                               state float32 (docs/gpu.md) */
    int deterministic;      /* only bitwise-reproducible algorithms */
    int algo_search;        /* enum pnx_cuda_algo_search */
    size_t workspace_limit; /* bytes for the shared cuDNN workspace; 0 = default */
} pnx_cuda_options;

#define PNX_CUDA_OPTIONS_DEFAULT {0, 0, 0, 0, PNX_CUDA_ALGO_HEURISTIC, 0}
#define PNX_CUDA_DEFAULT_WORKSPACE ((size_t)1 << 30)

/* Whether a usable GPU is present: returns the number of CUDA devices (> 0)
 * or 0 after writing why not into why (no driver, no device, driver too old
 * for this build, no CUDA in this build). Never fails otherwise. */
int pnx_cuda_device_count(char *why, size_t why_size);

/* Creates the backend on opt->device (opt NULL: defaults). Fails with
 * PNX_EDEVICE and a message when there is no GPU, the driver is older than
 * the CUDA runtime it was built with, or the cuDNN library found at run time
 * is not the major version it was built with; PNX_ENOTBUILT without CUDA. */
int pnx_backend_cuda_create(pnx_backend **out, const pnx_cuda_options *opt);

/* One line naming the device and library versions of a CUDA backend, e.g.
 * "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB), driver 13.0, cuDNN 9.19.0". */
void pnx_backend_cuda_describe(pnx_backend *be, char *buf, size_t size);

#endif
