/*
 * tests/cuda_emu.h — a CPU grid emulator for the restricted CUDA dialect of
 * the bfloat16 kernels (model/cuda/bf16_device.cuh), so they run (and are
 * tested) on a host without a GPU. Included before bf16_kernels.cu and
 * bf16_reduce.cu, which a C++17 host compiler then compiles as they are
 * (tests/cuda_emu.cmake: -include this header, -x c++).
 *
 * What it provides: the qualifiers (__global__, __device__, __host__ as
 * nothing, before CUDA's headers define them), thread-local blockIdx,
 * threadIdx, blockDim and gridDim, and PNX_LAUNCH, which runs a 1-D grid
 * thread by thread. That is exact for the dialect the kernels promise: 1-D
 * grids and blocks, no shared memory, no __syncthreads, no atomics, no warp
 * intrinsics — each thread's work then depends on no other thread of the
 * same launch. Launches run in stream order, at once.
 *
 * What it checks: a launch's configuration is valid on the GPU (grid 1 …
 * 2^31−1 blocks, block 1 … 1024 threads), else PNX_EDEVICE as a failed
 * launch would give. The thread order and the largest grid and block are
 * settings (pnx_emu), so a test can run every kernel forward, backward and
 * with few threads: a kernel whose threads communicate, or that assumes its
 * grid covers all the work, then gives different results.
 */
#ifndef PNX_TESTS_CUDA_EMU_H
#define PNX_TESTS_CUDA_EMU_H

#ifndef __cplusplus
#error "tests/cuda_emu.h is for C++ (it compiles .cu files on the host)"
#endif
#ifdef __CUDACC__
#error "tests/cuda_emu.h is for a host compiler, not nvcc"
#endif

/* Before CUDA's headers, which keep existing definitions. */
#define __global__
#define __device__
#define __host__

#include <stddef.h>

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

extern "C" {
#include "common/error.h"
}

inline thread_local uint3 blockIdx;
inline thread_local uint3 threadIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

/* How launches run; tests change it between runs. */
struct pnx_emu_settings {
    int reverse;        /* 1: last block first, and last thread first in each */
    unsigned max_grid;  /* 0, or run at most this many blocks (grid-stride loops must cope) */
    unsigned max_block; /* 0, or at most this many threads a block */
};
inline pnx_emu_settings pnx_emu = {0, 0, 0};

/* What ran, for tests that assert on it. */
struct pnx_emu_counters {
    unsigned long launches;
    unsigned long long threads;
    unsigned largest_grid; /* as requested, before max_grid */
};
inline pnx_emu_counters pnx_emu_count = {0, 0, 0};

constexpr unsigned long long pnx_emu_grid_limit = 2147483647ull; /* gridDim.x ≤ 2^31 − 1 */
constexpr unsigned pnx_emu_block_limit = 1024;

template <typename... P, typename... A>
int pnx_emu_launch(const char *what, unsigned long long grid, unsigned long long block,
                   cudaStream_t stream, void (*kernel)(P...), A... args)
{
    (void)stream;
    if (grid < 1 || grid > pnx_emu_grid_limit || block < 1 || block > pnx_emu_block_limit)
        return pnx_fail(PNX_EDEVICE, "%s: invalid launch of %llu blocks of %llu threads", what,
                        grid, block);
    pnx_emu_count.launches++;
    if (grid > pnx_emu_count.largest_grid)
        pnx_emu_count.largest_grid = (unsigned)grid;
    const unsigned g = pnx_emu.max_grid && grid > pnx_emu.max_grid ? pnx_emu.max_grid
                                                                    : (unsigned)grid;
    const unsigned b = pnx_emu.max_block && block > pnx_emu.max_block ? pnx_emu.max_block
                                                                       : (unsigned)block;
    gridDim = dim3(g, 1, 1);
    blockDim = dim3(b, 1, 1);
    for (unsigned i = 0; i < g; i++) {
        blockIdx = make_uint3(pnx_emu.reverse ? g - 1 - i : i, 0, 0);
        for (unsigned t = 0; t < b; t++) {
            threadIdx = make_uint3(pnx_emu.reverse ? b - 1 - t : t, 0, 0);
            kernel(args...);
        }
    }
    pnx_emu_count.threads += (unsigned long long)g * b;
    return 0;
}

/* As bf16_device.cuh's nvcc definition: 0, or PNX_EDEVICE after pnx_fail. */
#define PNX_LAUNCH(what, kernel, grid, block, stream, ...) \
    pnx_emu_launch((what), (grid), (block), (stream), (kernel), __VA_ARGS__)

#endif
