/*
 * model/cuda/bf16_device.cuh — what the bfloat16 kernel files share
 * (bf16_kernels.cu, bf16_reduce.cu): the launch macro, grid sizing, the
 * bit-level bfloat16 helpers and the element-wise map. Internal to them.
 *
 * The dialect is deliberately small so that tests/cuda_emu.h can run these
 * very files on the CPU: 1-D grids and blocks, grid-stride loops, no shared
 * memory, no __syncthreads, no atomics, no warp intrinsics. Every launch
 * goes through PNX_LAUNCH, which the emulator defines before the files are
 * compiled (with g++); here it is nvcc's <<<…>>> plus a launch check.
 *
 * Memory traffic is the cost of every kernel, so a thread moves 8 bfloat16
 * (16 bytes) at a time when the shape and the pointers allow it, else one
 * element; both visit the same elements in the same order, so the vector
 * path changes speed, never a result.
 */
#ifndef PNX_MODEL_CUDA_BF16_DEVICE_CUH
#define PNX_MODEL_CUDA_BF16_DEVICE_CUH

#include "model/cuda/bf16_kernels.h"

#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef PNX_LAUNCH
#include <cuda_runtime.h>

#include "model/cuda/cuda_internal.h"

/* what: the op named in an error; kernel: a __global__ function or a
 * pointer to one. Evaluates to 0 or PNX_EDEVICE (after pnx_fail). */
#define PNX_LAUNCH(what, kernel, grid, block, stream, ...)                 \
    ((kernel)<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__), pnx_bfk_launched(what))

static inline int pnx_bfk_launched(const char *what)
{
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, what);
}
#endif

/* Unrolling is for nvcc; a host compiler (the emulator) would warn. */
#ifdef __CUDACC__
#define PNX_UNROLL _Pragma("unroll")
#else
#define PNX_UNROLL
#endif

/* File-local in each including file: nothing here is shared at link time. */
namespace {

constexpr unsigned kThreads = 256;
/* Grid-stride loops stop growing their grid here: 4096 blocks of 256 are
 * about four waves of a full H100 (132 SMs × 2048 threads). */
constexpr size_t kMaxBlocks = 4096;

__host__ __device__ __forceinline__ size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}

inline unsigned blocks_for(size_t threads)
{
    size_t b = (threads + kThreads - 1) / kThreads;
    if (b < 1)
        b = 1;
    return (unsigned)(b > kMaxBlocks ? kMaxBlocks : b);
}

inline bool aligned16(const void *p)
{
    return p == nullptr || (uintptr_t)p % 16 == 0;
}

/* ---- bfloat16 bits ------------------------------------------------------------ */

/* Eight bfloat16 travel as four 32-bit words, element 2i in the low half of
 * word i (little-endian, as __nv_bfloat162 stores .x then .y). */

__device__ __forceinline__ float word_as_float(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* On the host (the emulator), a wide access the GPU would fault on, for
 * want of alignment, aborts the test instead of passing quietly. */
__device__ __forceinline__ void host_check_aligned(const void *p, size_t bytes)
{
#ifndef __CUDA_ARCH__
    if ((uintptr_t)p % bytes != 0)
        abort();
#else
    (void)p;
    (void)bytes;
#endif
}

__device__ __forceinline__ float bf2f(pnx_bf16 b)
{
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
}

__device__ __forceinline__ pnx_bf16 f2bf(float f)
{
    return static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(f)).x;
}

/* Two floats rounded to one word (one cvt.rn.bf16x2 on the GPU). */
__device__ __forceinline__ uint32_t f2bf2(float lo, float hi)
{
    const __nv_bfloat162_raw r = __floats2bfloat162_rn(lo, hi);
    return (uint32_t)r.x | (uint32_t)r.y << 16;
}

__device__ __forceinline__ pnx_bf16 half_of(const uint32_t w[4], int i)
{
    return (pnx_bf16)(w[i >> 1] >> ((i & 1) * 16));
}

__device__ __forceinline__ void set_half(uint32_t w[4], int i, pnx_bf16 b)
{
    const int sh = (i & 1) * 16;
    w[i >> 1] = (w[i >> 1] & ~(0xffffu << sh)) | (uint32_t)b << sh;
}

/* Loads 8 bfloat16 at p: one 16-byte load when A (p 16-byte aligned). */
template <bool A>
__device__ __forceinline__ void load8(const pnx_bf16 *p, uint32_t w[4])
{
    if constexpr (A) {
#ifdef __CUDA_ARCH__
        const uint4 q = *reinterpret_cast<const uint4 *>(p);
        w[0] = q.x;
        w[1] = q.y;
        w[2] = q.z;
        w[3] = q.w;
#else
        host_check_aligned(p, 16);
        memcpy(w, p, 16);
#endif
    } else {
        for (int i = 0; i < 4; i++)
            w[i] = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 16;
    }
}

template <bool A>
__device__ __forceinline__ void store8(pnx_bf16 *p, const uint32_t w[4])
{
    if constexpr (A) {
#ifdef __CUDA_ARCH__
        *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
#else
        host_check_aligned(p, 16);
        memcpy(p, w, 16);
#endif
    } else {
        for (int i = 0; i < 4; i++) {
            p[2 * i] = (pnx_bf16)w[i];
            p[2 * i + 1] = (pnx_bf16)(w[i] >> 16);
        }
    }
}

__device__ __forceinline__ void unpack8(const uint32_t w[4], float f[8])
{
PNX_UNROLL
    for (int i = 0; i < 4; i++) {
        f[2 * i] = word_as_float(w[i] << 16);
        f[2 * i + 1] = word_as_float(w[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ void pack8(const float f[8], uint32_t w[4])
{
PNX_UNROLL
    for (int i = 0; i < 4; i++)
        w[i] = f2bf2(f[2 * i], f[2 * i + 1]);
}

__device__ __forceinline__ bool is_nan(float v)
{
    return v != v;
}

__device__ __forceinline__ int next_channel(int ch, int c)
{
    return ch + 1 == c ? 0 : ch + 1;
}

/* ---- element-wise maps ---------------------------------------------------------- */

/* An Op handles one item: op.one(e, q, r) element e, op.vec<A>(v, q, r)
 * elements 8v … 8v+7 (A: its pointers are 16-byte aligned), where q and r
 * are the first element's quotient and remainder by op.period() (C for a
 * per-channel op: pixel and channel). The map carries q and r from item to
 * item instead of dividing 64-bit numbers in every one. */
template <class Op, bool A>
__global__ void map8_kernel(Op op, size_t nvec)
{
    const size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t period = (size_t)op.period();
    size_t q = 8 * first / period, r = 8 * first % period;
    const size_t dq = 8 * stride / period, dr = 8 * stride % period;
    for (size_t v = first; v < nvec; v += stride) {
        op.template vec<A>(v, q, (int)r);
        q += dq;
        r += dr;
        if (r >= period) {
            r -= period;
            q++;
        }
    }
}

template <class Op>
__global__ void map1_kernel(Op op, size_t n)
{
    const size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t period = (size_t)op.period();
    size_t q = first / period, r = first % period;
    const size_t dq = stride / period, dr = stride % period;
    for (size_t e = first; e < n; e += stride) {
        op.one(e, q, (int)r);
        q += dq;
        r += dr;
        if (r >= period) {
            r -= period;
            q++;
        }
    }
}

/* n elements; vec_shape: items of 8 are valid for this op and shape;
 * aligned: every pointer the op touches is 16-byte aligned. */
template <class Op>
inline int launch_map(const char *what, cudaStream_t s, const Op &op, size_t n, bool vec_shape,
                      bool aligned)
{
    if (n == 0)
        return 0;
    if (vec_shape && n % 8 == 0) {
        const size_t nvec = n / 8;
        if (aligned) {
            const auto k = &map8_kernel<Op, true>;
            return PNX_LAUNCH(what, k, blocks_for(nvec), kThreads, s, op, nvec);
        }
        const auto k = &map8_kernel<Op, false>;
        return PNX_LAUNCH(what, k, blocks_for(nvec), kThreads, s, op, nvec);
    }
    const auto k = &map1_kernel<Op>;
    return PNX_LAUNCH(what, k, blocks_for(n), kThreads, s, op, n);
}

} // namespace

#endif
