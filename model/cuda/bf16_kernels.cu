/*
 * model/cuda/bf16_kernels.cu — the bfloat16 NHWC kernels of mixed precision
 * (bf16_kernels.h): layouts, bias, BatchNorm (+ReLU), ReLU, max-pool,
 * concatenation and the loss.
 *
 * The dialect is deliberately small so that tests/cuda_emu.h can run this
 * very file on the CPU: 1-D grids and blocks, grid-stride loops, no shared
 * memory, no __syncthreads, no atomics, no warp intrinsics. Every launch
 * goes through PNX_LAUNCH, which the emulator defines before this file is
 * compiled (with g++); here it is nvcc's <<<…>>> plus a launch check.
 *
 * Memory traffic is the cost of every kernel here, so:
 *   - a thread moves 8 bfloat16 (16 bytes) at a time when the shape and
 *     the pointers allow it, else one element; both orders of work are the
 *     same, so the vector path changes speed, never a result;
 *   - NHWC puts channels next to each other, so adjacent threads handle
 *     adjacent channels and read adjacent addresses.
 * Per-channel reductions are two kernels plus folds, all in double: lane
 * (slice j, channels) sums pixels j, j+J, j+2J, … into partial[j][channel]
 * (J slices sized to fill an H100's 132 SMs), fold kernels add kFold
 * consecutive slices at a time until at most kFold remain, and one thread
 * per channel adds those and finishes the statistics. The order depends on
 * the shape only, so results are bitwise reproducible.
 */
#include "model/cuda/bf16_kernels.h"

#include <cuda_bf16.h>
#include <math.h>
#include <string.h>

#ifndef PNX_LAUNCH
#include <cuda_runtime.h>

#include "model/cuda/cuda_internal.h"

/* what: the op named in an error; kernel: a __global__ function or a
 * pointer to one. Evaluates to 0 or PNX_EDEVICE (after pnx_fail). */
#define PNX_LAUNCH(what, kernel, grid, block, stream, ...)                 \
    ((kernel)<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__), launched(what))

static int launched(const char *what)
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

namespace {

constexpr unsigned kThreads = 256;
/* Grid-stride loops stop growing their grid here: 4096 blocks of 256 are
 * about four waves of a full H100 (132 SMs × 2048 threads). */
constexpr size_t kMaxBlocks = 4096;
/* Reduction lanes: 2^17 threads keep about one 16-byte load in flight per
 * thread on 132 SMs × 1024 threads, which saturates HBM3. */
constexpr size_t kReduceLanes = (size_t)1 << 17;
/* A lane reads at least this many items (vectors or elements), so the
 * partial sums it writes stay small next to what it reads. */
constexpr size_t kMinItemsPerLane = 64;
/* Slices added per fold step, and the most the final per-channel pass adds. */
constexpr size_t kFold = 32;
/* The loss: up to 8192 lanes of at least 8 vectors (64 elements) each;
 * their partials (32 bytes a lane) are copied to the host. */
constexpr size_t kLossLanes = 8192;
constexpr size_t kLossMinVecs = 8;

__host__ __device__ __forceinline__ size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}

unsigned blocks_for(size_t threads)
{
    size_t b = (threads + kThreads - 1) / kThreads;
    if (b < 1)
        b = 1;
    return (unsigned)(b > kMaxBlocks ? kMaxBlocks : b);
}

bool aligned16(const void *p)
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

/* An Op handles one item: op.one(e) element e, op.vec<A>(v) elements
 * 8v … 8v+7 (A: its pointers are 16-byte aligned). */
template <class Op, bool A>
__global__ void map8_kernel(Op op, size_t nvec)
{
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < nvec;
         v += (size_t)gridDim.x * blockDim.x)
        op.template vec<A>(v);
}

template <class Op>
__global__ void map1_kernel(Op op, size_t n)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x)
        op.one(e);
}

/* n elements; vec_shape: items of 8 are valid for this op and shape;
 * aligned: every pointer the op touches is 16-byte aligned. */
template <class Op>
int launch_map(const char *what, cudaStream_t s, const Op &op, size_t n, bool vec_shape,
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

/* y (P,C) += bias (C). */
struct add_bias_op {
    pnx_bf16 *y;
    const float *bias;
    int c;
    __device__ void one(size_t e) const
    {
        y[e] = f2bf(bf2f(y[e]) + bias[e % c]);
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t w[4];
        float f[8];
        load8<A>(y + 8 * v, w);
        unpack8(w, f);
        int ch = (int)(8 * v % c);
        for (int i = 0; i < 8; i++, ch = next_channel(ch, c))
            f[i] += bias[ch];
        pack8(f, w);
        store8<A>(y + 8 * v, w);
    }
};

/* A channel's four BatchNorm coefficients, stored together so that one
 * 16-byte load fetches them (coef is 16-byte aligned in the scratch). */
__device__ __forceinline__ float4 coef4(const float *coef, int ch)
{
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const float4 *>(coef + 4 * ch);
#else
    float4 v;
    memcpy(&v, coef + 4 * ch, sizeof v);
    return v;
#endif
}

/* BatchNorm apply: y = ((x − mean_hi) − mean_lo)·scale + beta (then ReLU).
 * Centring before scaling keeps inputs whose mean dwarfs their spread
 * exact: x − mean_hi is exact when x is near the mean (Sterbenz), and the
 * float pair carries the double mean. coef4: scale, beta, mean_hi, mean_lo. */
struct bn_apply_op {
    const pnx_bf16 *x;
    pnx_bf16 *y;
    const float *coef;
    int c;
    int relu;
    __device__ __forceinline__ float f(float xv, int ch) const
    {
        const float4 k = coef4(coef, ch);
        const float v = ((xv - k.z) - k.w) * k.x + k.y;
        return relu && !(v > 0.0f) ? 0.0f : v;
    }
    __device__ void one(size_t e) const
    {
        y[e] = f2bf(f(bf2f(x[e]), (int)(e % c)));
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t w[4];
        float g[8];
        load8<A>(x + 8 * v, w);
        unpack8(w, g);
        int ch = (int)(8 * v % c);
        for (int i = 0; i < 8; i++, ch = next_channel(ch, c))
            g[i] = f(g[i], ch);
        pack8(g, w);
        store8<A>(y + 8 * v, w);
    }
};

/* BatchNorm backward apply: dz = dy (where y_relu > 0 if y_relu), dx (+)=
 * a·dz + b·(x − mean) + k. coef4: a, b, k, mean. */
struct bn_backward_apply_op {
    const pnx_bf16 *x, *y_relu, *dy;
    pnx_bf16 *dx;
    const float *coef;
    int c;
    int acc;
    __device__ __forceinline__ float f(float xv, float yv, float dyv, float prev, int ch) const
    {
        const float dz = y_relu && !(yv > 0.0f) ? 0.0f : dyv;
        const float4 k = coef4(coef, ch);
        const float v = k.x * dz + k.y * (xv - k.w) + k.z;
        return acc ? prev + v : v;
    }
    __device__ void one(size_t e) const
    {
        const float yv = y_relu ? bf2f(y_relu[e]) : 0.0f;
        const float prev = acc ? bf2f(dx[e]) : 0.0f;
        dx[e] = f2bf(f(bf2f(x[e]), yv, bf2f(dy[e]), prev, (int)(e % c)));
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t w[4];
        float xv[8], yv[8], dyv[8], pv[8];
        load8<A>(x + 8 * v, w);
        unpack8(w, xv);
        load8<A>(dy + 8 * v, w);
        unpack8(w, dyv);
        if (y_relu) {
            load8<A>(y_relu + 8 * v, w);
            unpack8(w, yv);
        } else {
            for (int i = 0; i < 8; i++)
                yv[i] = 0.0f;
        }
        if (acc) {
            load8<A>(dx + 8 * v, w);
            unpack8(w, pv);
        } else {
            for (int i = 0; i < 8; i++)
                pv[i] = 0.0f;
        }
        int ch = (int)(8 * v % c);
        for (int i = 0; i < 8; i++, ch = next_channel(ch, c))
            pv[i] = f(xv[i], yv[i], dyv[i], pv[i], ch);
        pack8(pv, w);
        store8<A>(dx + 8 * v, w);
    }
};

/* y = max(x, 0): the input's bits or +0 (NaN → 0, as ops_ref.c). */
struct relu_op {
    const pnx_bf16 *x;
    pnx_bf16 *y;
    __device__ void one(size_t e) const
    {
        const pnx_bf16 b = x[e];
        y[e] = bf2f(b) > 0.0f ? b : (pnx_bf16)0;
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t w[4];
        float f[8];
        load8<A>(x + 8 * v, w);
        unpack8(w, f);
        for (int i = 0; i < 8; i++)
            if (!(f[i] > 0.0f))
                set_half(w, i, 0);
        store8<A>(y + 8 * v, w);
    }
};

/* dx = dy where y > 0, else 0: dy's bits or +0. */
struct relu_backward_op {
    const pnx_bf16 *y, *dy;
    pnx_bf16 *dx;
    __device__ void one(size_t e) const
    {
        dx[e] = bf2f(y[e]) > 0.0f ? dy[e] : (pnx_bf16)0;
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t wy[4], wd[4];
        float f[8];
        load8<A>(y + 8 * v, wy);
        load8<A>(dy + 8 * v, wd);
        unpack8(wy, f);
        for (int i = 0; i < 8; i++)
            if (!(f[i] > 0.0f))
                set_half(wd, i, 0);
        store8<A>(dx + 8 * v, wd);
    }
};

/* y (P, ca+cb) from a (P,ca), b (P,cb), indexed by y's elements. Items of
 * 8 need ca and cb multiples of 8, so that none straddles a and b. */
struct concat_op {
    const pnx_bf16 *a, *b;
    pnx_bf16 *y;
    int ca, cb;
    __device__ void one(size_t e) const
    {
        const size_t ct = (size_t)ca + cb;
        const size_t p = e / ct;
        const int ch = (int)(e % ct);
        y[e] = ch < ca ? a[p * ca + ch] : b[p * cb + (ch - ca)];
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        const size_t ct = (size_t)ca + cb;
        const size_t p = 8 * v / ct;
        const int ch = (int)(8 * v % ct);
        uint32_t w[4];
        load8<A>(ch < ca ? a + p * ca + ch : b + p * cb + (ch - ca), w);
        store8<A>(y + 8 * v, w);
    }
};

/* The backward of concat_op, indexed by dy's elements: = or += into the
 * half it belongs to; a NULL half is skipped. */
struct split_op {
    const pnx_bf16 *dy;
    pnx_bf16 *da, *db;
    int ca, cb, da_acc, db_acc;
    __device__ void one(size_t e) const
    {
        const size_t ct = (size_t)ca + cb;
        const size_t p = e / ct;
        const int ch = (int)(e % ct);
        pnx_bf16 *dst = ch < ca ? (da ? da + p * ca + ch : nullptr)
                                : (db ? db + p * cb + (ch - ca) : nullptr);
        if (!dst)
            return;
        const int acc = ch < ca ? da_acc : db_acc;
        *dst = acc ? f2bf(bf2f(*dst) + bf2f(dy[e])) : dy[e];
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        const size_t ct = (size_t)ca + cb;
        const size_t p = 8 * v / ct;
        const int ch = (int)(8 * v % ct);
        pnx_bf16 *dst = ch < ca ? (da ? da + p * ca + ch : nullptr)
                                : (db ? db + p * cb + (ch - ca) : nullptr);
        if (!dst)
            return;
        const int acc = ch < ca ? da_acc : db_acc;
        uint32_t w[4];
        load8<A>(dy + 8 * v, w);
        if (acc) {
            uint32_t wp[4];
            float f[8], g[8];
            load8<A>(dst, wp);
            unpack8(wp, f);
            unpack8(w, g);
            for (int i = 0; i < 8; i++)
                f[i] += g[i];
            pack8(f, w);
        }
        store8<A>(dst, w);
    }
};

/* 2×2 max-pool, indexed by y's elements (N, OH, OW, C). Ties keep the
 * first in row-major window order, NaN wins: as ops_ref.c. y keeps the
 * winner's bits. Items of 8 need C a multiple of 8. */
struct maxpool_op {
    const pnx_bf16 *x;
    pnx_bf16 *y;
    uint8_t *argmax;
    int c, h, w;
    /* The input offset of window corner 0 for output pixel op. */
    __device__ __forceinline__ size_t corner(size_t op) const
    {
        const int ow = w / 2, oh = h / 2;
        const size_t ox = op % ow, t = op / ow;
        const size_t oy = t % oh, n = t / oh;
        return ((n * h + 2 * oy) * w + 2 * ox) * c;
    }
    __device__ void one(size_t e) const
    {
        const size_t base = corner(e / c) + e % c;
        const size_t off[4] = {0, (size_t)c, (size_t)w * c, (size_t)w * c + c};
        pnx_bf16 best = x[base];
        float bestv = bf2f(best);
        int k = 0;
        for (int j = 1; j < 4; j++) {
            const pnx_bf16 b = x[base + off[j]];
            const float v = bf2f(b);
            if (v > bestv || is_nan(v)) {
                best = b;
                bestv = v;
                k = j;
            }
        }
        y[e] = best;
        argmax[e] = (uint8_t)k;
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        const size_t base = corner(8 * v / c) + 8 * v % c;
        const size_t off[4] = {0, (size_t)c, (size_t)w * c, (size_t)w * c + c};
        uint32_t best[4], cand[4];
        float bestv[8], cv[8];
        uint8_t k[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        load8<A>(x + base, best);
        unpack8(best, bestv);
        for (int j = 1; j < 4; j++) {
            load8<A>(x + base + off[j], cand);
            unpack8(cand, cv);
            for (int i = 0; i < 8; i++)
                if (cv[i] > bestv[i] || is_nan(cv[i])) {
                    bestv[i] = cv[i];
                    set_half(best, i, half_of(cand, i));
                    k[i] = (uint8_t)j;
                }
        }
        store8<A>(y + 8 * v, best);
        if constexpr (A) {
            uint32_t packed[2] = {0, 0};
            for (int i = 0; i < 8; i++)
                packed[i / 4] |= (uint32_t)k[i] << (8 * (i % 4));
#ifdef __CUDA_ARCH__
            *reinterpret_cast<uint2 *>(argmax + 8 * v) = make_uint2(packed[0], packed[1]);
#else
            memcpy(argmax + 8 * v, packed, 8);
#endif
        } else {
            for (int i = 0; i < 8; i++)
                argmax[8 * v + i] = k[i];
        }
    }
};

/* The max-pool backward, indexed by dx's elements (N, H, W, C): each input
 * lies in at most one window (none past an odd last row or column). */
struct maxpool_backward_op {
    const uint8_t *argmax;
    const pnx_bf16 *dy;
    pnx_bf16 *dx;
    int c, h, w, acc;
    /* The output offset (pixel × C) of input pixel ip's window and ip's
     * position in it; false when ip is in no window. */
    __device__ __forceinline__ bool window(size_t ip, size_t &o, int &k) const
    {
        const int ow = w / 2, oh = h / 2;
        const size_t ix = ip % w, t = ip / w;
        const size_t iy = t % h, n = t / h;
        if (iy >= (size_t)2 * oh || ix >= (size_t)2 * ow)
            return false;
        o = ((n * oh + iy / 2) * ow + ix / 2) * c;
        k = (int)((iy & 1) * 2 + (ix & 1));
        return true;
    }
    __device__ __forceinline__ pnx_bf16 result(bool sel, pnx_bf16 g, pnx_bf16 prev) const
    {
        if (sel)
            return acc ? f2bf(bf2f(prev) + bf2f(g)) : g;
        return acc ? prev : (pnx_bf16)0;
    }
    __device__ void one(size_t e) const
    {
        size_t o = 0;
        int k = -1;
        const bool in = window(e / c, o, k);
        const size_t oe = o + e % c;
        const bool sel = in && argmax[oe] == k;
        dx[e] = result(sel, sel ? dy[oe] : (pnx_bf16)0, acc ? dx[e] : (pnx_bf16)0);
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        size_t o = 0;
        int k = -1;
        const bool in = window(8 * v / c, o, k);
        const size_t oe = o + 8 * v % c;
        uint32_t g[4] = {0, 0, 0, 0}, prev[4] = {0, 0, 0, 0}, out[4];
        uint8_t am[8] = {4, 4, 4, 4, 4, 4, 4, 4}; /* 4: no window */
        if (in) {
            load8<A>(dy + oe, g);
            for (int i = 0; i < 8; i++)
                am[i] = argmax[oe + i];
        }
        if (acc)
            load8<A>(dx + 8 * v, prev);
        for (int i = 0; i < 8; i++)
            set_half(out, i, result(am[i] == k, half_of(g, i), half_of(prev, i)));
        store8<A>(dx + 8 * v, out);
    }
};

/* ---- the loss (one channel, so NHWC = NCHW) ---------------------------------------- */

__device__ __forceinline__ double sigmoid_d(double v)
{
    return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

struct loss_grad_op {
    const pnx_bf16 *logits, *target;
    pnx_bf16 *dlogits;
    double count, bce_weight, dice_weight, inter, denom;
    __device__ __forceinline__ float f(float xv, float tv) const
    {
        const double smooth = 1.0;
        const double s = sigmoid_d(xv), t = tv;
        const double d_bce = (s - t) / count;
        const double d_dice_ds = -(2.0 * t * denom - (2.0 * inter + smooth)) / (denom * denom);
        return (float)(bce_weight * d_bce + dice_weight * d_dice_ds * s * (1.0 - s));
    }
    __device__ void one(size_t e) const
    {
        dlogits[e] = f2bf(f(bf2f(logits[e]), bf2f(target[e])));
    }
    template <bool A>
    __device__ void vec(size_t v) const
    {
        uint32_t w[4];
        float xv[8], tv[8];
        load8<A>(logits + 8 * v, w);
        unpack8(w, xv);
        load8<A>(target + 8 * v, w);
        unpack8(w, tv);
        for (int i = 0; i < 8; i++)
            xv[i] = f(xv[i], tv[i]);
        pack8(xv, w);
        store8<A>(dlogits + 8 * v, w);
    }
};

/* Per element in float (the inputs carry 8 bits; float keeps the terms to
 * 2^-24), summed in double: s[0..3] += bce, σ·t, σ, t. One exp serves the
 * BCE's log term and the sigmoid. */
__device__ __forceinline__ void loss_terms(float xv, float tv, double s[4])
{
    const float e = expf(-fabsf(xv));
    const float bce = fmaxf(xv, 0.0f) - xv * tv + log1pf(e);
    const float sg = xv >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    s[0] += bce;
    s[1] += (double)sg * tv;
    s[2] += sg;
    s[3] += tv;
}

/* Lane t adds vectors t, t+lanes, … (elements 8v … 8v+7 below count, in
 * order) and writes part[t·4 + 0..3]. */
template <bool A>
__global__ void loss_partials_kernel(const pnx_bf16 *logits, const pnx_bf16 *target,
                                     size_t count, size_t lanes, double *part)
{
    const size_t nvec = (count + 7) / 8;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < lanes;
         t += (size_t)gridDim.x * blockDim.x) {
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        for (size_t v = t; v < nvec; v += lanes) {
            if (8 * v + 8 <= count) {
                uint32_t w[4];
                float xv[8], tv[8];
                load8<A>(logits + 8 * v, w);
                unpack8(w, xv);
                load8<A>(target + 8 * v, w);
                unpack8(w, tv);
                for (int i = 0; i < 8; i++)
                    loss_terms(xv[i], tv[i], s);
            } else {
                for (size_t e = 8 * v; e < count; e++)
                    loss_terms(bf2f(logits[e]), bf2f(target[e]), s);
            }
        }
        for (int k = 0; k < 4; k++)
            part[t * 4 + k] = s[k];
    }
}

/* ---- per-channel reductions --------------------------------------------------------- */

enum sums_mode {
    SUMS_PLAIN = 0,   /* s1 = Σ a */
    SUMS_SHIFTED = 1, /* s1 = Σ (a − K), s2 = Σ (a − K)², K = the channel's first value */
    SUMS_BN_BWD = 2,  /* dz = a (masked by y > 0), s1 = Σ dz, s2 = Σ dz·(x − mean) */
};

/* How a reduction over P pixels of C channels is cut. An item is a vector
 * of 8 elements when C is a multiple of 8 or divides 8 (so a vector's
 * channels repeat with the vector) and P·C is a multiple of 8, else one
 * element; `groups` items cover one pixel row's channels (C/8, 1 or C).
 * Lane t = j·groups + g of `lanes` = slices·groups reads items t,
 * t + lanes, …, i.e. slice j of the pixels, with fixed channels. */
struct reduce_plan {
    bool vec;
    size_t items, groups, slices, lanes;
};

reduce_plan plan_reduce(size_t pixels, int c)
{
    reduce_plan pl;
    const size_t n = pixels * (size_t)c;
    pl.vec = (c % 8 == 0 || 8 % c == 0) && n % 8 == 0;
    pl.items = pl.vec ? n / 8 : n;
    pl.groups = pl.vec ? (c % 8 == 0 ? (size_t)c / 8 : 1) : (size_t)c;
    const size_t rows = pl.items / pl.groups;
    size_t slices = (kReduceLanes + pl.groups - 1) / pl.groups;
    const size_t by_work = (rows + kMinItemsPerLane - 1) / kMinItemsPerLane;
    if (slices > by_work)
        slices = by_work;
    pl.slices = slices < 1 ? 1 : slices;
    pl.lanes = pl.slices * pl.groups;
    return pl;
}


size_t align_up(size_t v)
{
    return (v + 255) / 256 * 256;
}

/* Scratch: partials A (slices × 2C doubles), B (the first fold's output),
 * coefficients (4C floats). */
struct scratch_parts {
    double *a, *b;
    float *coef;
};

size_t scratch_bytes(const reduce_plan &pl, int c)
{
    const size_t width = 2 * (size_t)c;
    return align_up(pl.slices * width * sizeof(double)) +
           align_up(ceil_div(pl.slices, kFold) * width * sizeof(double)) +
           align_up(4 * (size_t)c * sizeof(float));
}

scratch_parts split_scratch(void *scratch, const reduce_plan &pl, int c)
{
    const size_t width = 2 * (size_t)c;
    char *p = (char *)scratch;
    scratch_parts s;
    s.a = (double *)p;
    p += align_up(pl.slices * width * sizeof(double));
    s.b = (double *)p;
    p += align_up(ceil_div(pl.slices, kFold) * width * sizeof(double));
    s.coef = (float *)p;
    return s;
}

template <int MODE>
__device__ __forceinline__ void add_term(float a, float xv, float m, bool masked, float ref,
                                         double &s1, double &s2)
{
    if constexpr (MODE == SUMS_PLAIN) {
        s1 += a;
    } else if constexpr (MODE == SUMS_SHIFTED) {
        const double d = (double)a - ref;
        s1 += d;
        s2 += d * d;
    } else {
        const float dz = masked && !(m > 0.0f) ? 0.0f : a;
        s1 += dz;
        s2 += (double)dz * ((double)xv - ref);
    }
}

/* The reference value of a channel: K (SHIFTED), the mean (BN_BWD). */
template <int MODE>
__device__ __forceinline__ float channel_ref(const pnx_bf16 *a, const float *mean, int ch)
{
    if constexpr (MODE == SUMS_SHIFTED)
        return bf2f(a[ch]);
    else if constexpr (MODE == SUMS_BN_BWD)
        return mean[ch];
    else
        return 0.0f;
}

/* One item's words: a, and x and y_relu where SUMS_BN_BWD needs them. */
template <int MODE, bool A>
__device__ __forceinline__ void load_item(const pnx_bf16 *a, const pnx_bf16 *x,
                                          const pnx_bf16 *y_relu, size_t e, uint32_t wa[4],
                                          uint32_t wx[4], uint32_t wm[4])
{
    load8<A>(a + e, wa);
    if constexpr (MODE == SUMS_BN_BWD) {
        load8<A>(x + e, wx);
        if (y_relu)
            load8<A>(y_relu + e, wm);
    }
}

template <int MODE>
__device__ __forceinline__ void add_item(const uint32_t wa[4], const uint32_t wx[4],
                                         const uint32_t wm[4], bool masked, const float ref[8],
                                         double s1[8], double s2[8])
{
    float fa[8], fx[8], fm[8];
    unpack8(wa, fa);
    unpack8(wx, fx);
    unpack8(wm, fm);
PNX_UNROLL
    for (int i = 0; i < 8; i++)
        add_term<MODE>(fa[i], fx[i], fm[i], masked, ref[i], s1[i], s2[i]);
}

/* The 8-element items of plan_reduce. a: the summed tensor; x, y_relu and
 * mean only for SUMS_BN_BWD (y_relu may be NULL). Writes part[j·width +
 * k·C + ch], width = (1 or 2)·C. */
template <int MODE, bool A>
__global__ void channel_sums8_kernel(const pnx_bf16 *a, const pnx_bf16 *x,
                                     const pnx_bf16 *y_relu, const float *mean, size_t items,
                                     int c, size_t groups, size_t lanes, double *part)
{
    constexpr int kSums = MODE == SUMS_PLAIN ? 1 : 2;
    const size_t width = (size_t)kSums * c;
    const bool masked = y_relu != nullptr;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < lanes;
         t += (size_t)gridDim.x * blockDim.x) {
        const size_t j = t / groups;
        const int c0 = (int)(t % groups * 8 % c); /* the channel of lane 0 */
        float ref[8];
        double s1[8], s2[8];
PNX_UNROLL
        for (int i = 0; i < 8; i++) {
            ref[i] = channel_ref<MODE>(a, mean, (c0 + i) % c);
            s1[i] = 0.0;
            s2[i] = 0.0;
        }
        /* Two items per turn, loads first, sums in item order. */
        for (size_t v = t; v < items; v += 2 * lanes) {
            const bool two = v + lanes < items;
            uint32_t wa0[4], wx0[4] = {}, wm0[4] = {};
            uint32_t wa1[4] = {}, wx1[4] = {}, wm1[4] = {};
            load_item<MODE, A>(a, x, y_relu, 8 * v, wa0, wx0, wm0);
            if (two)
                load_item<MODE, A>(a, x, y_relu, 8 * (v + lanes), wa1, wx1, wm1);
            add_item<MODE>(wa0, wx0, wm0, masked, ref, s1, s2);
            if (two)
                add_item<MODE>(wa1, wx1, wm1, masked, ref, s1, s2);
        }
        double *out = part + j * width;
        if (c % 8 == 0) {
PNX_UNROLL
            for (int i = 0; i < 8; i++) {
                out[c0 + i] = s1[i];
                if constexpr (kSums == 2)
                    out[c + c0 + i] = s2[i];
            }
        } else { /* C divides 8: lanes ch, ch + C, … share channel ch */
            for (int ch = 0; ch < c; ch++) {
                double t1 = 0.0, t2 = 0.0;
PNX_UNROLL
                for (int i = 0; i < 8; i++)
                    if (i % c == ch) {
                        t1 += s1[i];
                        t2 += s2[i];
                    }
                out[ch] = t1;
                if constexpr (kSums == 2)
                    out[c + ch] = t2;
            }
        }
    }
}

/* The one-element items of plan_reduce: lane t = j·C + ch. */
template <int MODE>
__global__ void channel_sums1_kernel(const pnx_bf16 *a, const pnx_bf16 *x,
                                     const pnx_bf16 *y_relu, const float *mean, size_t items,
                                     int c, size_t lanes, double *part)
{
    constexpr int kSums = MODE == SUMS_PLAIN ? 1 : 2;
    const size_t width = (size_t)kSums * c;
    const bool masked = y_relu != nullptr;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < lanes;
         t += (size_t)gridDim.x * blockDim.x) {
        const size_t j = t / c;
        const int ch = (int)(t % c);
        const float ref = channel_ref<MODE>(a, mean, ch);
        double s1 = 0.0, s2 = 0.0;
        for (size_t e = t; e < items; e += lanes) {
            const float xv = MODE == SUMS_BN_BWD ? bf2f(x[e]) : 0.0f;
            const float m = MODE == SUMS_BN_BWD && masked ? bf2f(y_relu[e]) : 0.0f;
            add_term<MODE>(bf2f(a[e]), xv, m, masked, ref, s1, s2);
        }
        part[j * width + ch] = s1;
        if constexpr (kSums == 2)
            part[j * width + c + ch] = s2;
    }
}

/* out row q = Σ in rows q·kFold … q·kFold + kFold − 1 (below rows), in order. */
__global__ void fold_kernel(const double *in, size_t rows, size_t width, double *out)
{
    const size_t total = ceil_div(rows, kFold) * width;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t q = i / width, col = i % width;
        const size_t end = (q + 1) * kFold < rows ? (q + 1) * kFold : rows;
        double s = 0.0;
        for (size_t r = q * kFold; r < end; r++)
            s += in[r * width + col];
        out[i] = s;
    }
}

/* The sums of MODE into scratch, folded until at most kFold rows remain:
 * *total points at them (rows × width doubles), *rows says how many. */
template <int MODE>
int channel_sums(cudaStream_t s, const reduce_plan &pl, const scratch_parts &sp, const pnx_bf16 *a,
                 const pnx_bf16 *x, const pnx_bf16 *y_relu, const float *mean, int c,
                 const double **total, size_t *rows)
{
    const char *what = MODE == SUMS_PLAIN     ? "bias gradient sums"
                       : MODE == SUMS_SHIFTED ? "batch norm statistics"
                                              : "batch norm backward sums";
    int rc;
    if (pl.vec && aligned16(a) && aligned16(x) && aligned16(y_relu)) {
        const auto k = &channel_sums8_kernel<MODE, true>;
        rc = PNX_LAUNCH(what, k, blocks_for(pl.lanes), kThreads, s, a, x, y_relu, mean, pl.items,
                        c, pl.groups, pl.lanes, sp.a);
    } else if (pl.vec) {
        const auto k = &channel_sums8_kernel<MODE, false>;
        rc = PNX_LAUNCH(what, k, blocks_for(pl.lanes), kThreads, s, a, x, y_relu, mean, pl.items,
                        c, pl.groups, pl.lanes, sp.a);
    } else {
        const auto k = &channel_sums1_kernel<MODE>;
        rc = PNX_LAUNCH(what, k, blocks_for(pl.lanes), kThreads, s, a, x, y_relu, mean, pl.items,
                        c, pl.lanes, sp.a);
    }
    if (rc)
        return rc;
    const size_t width = (MODE == SUMS_PLAIN ? 1 : 2) * (size_t)c;
    double *in = sp.a, *out = sp.b;
    size_t r = pl.slices;
    while (r > kFold) {
        const size_t next = ceil_div(r, kFold);
        if ((rc = PNX_LAUNCH(what, fold_kernel, blocks_for(next * width), kThreads, s, in, r,
                             width, out)))
            return rc;
        double *t = in;
        in = out;
        out = t;
        r = next;
    }
    *total = in;
    *rows = r;
    return 0;
}

__device__ __forceinline__ double column_total(const double *part, size_t rows, size_t width,
                                               size_t col)
{
    double s = 0.0;
    for (size_t r = 0; r < rows; r++)
        s += part[r * width + col];
    return s;
}

__global__ void bias_grad_finalize_kernel(const double *part, size_t rows, int c, float *db)
{
    for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x)
        db[ch] += (float)column_total(part, rows, c, ch);
}

/* Training: mean = K + Σ(x−K)/m, biased variance (Σ(x−K)² − (Σ(x−K))²/m)/m,
 * as cuda_kernels.cu; else the running stats. Writes bn_apply_op's coef. */
__global__ void bn_forward_finalize_kernel(const double *part, size_t rows, const pnx_bf16 *x,
                                           int c, double m, const float *gamma,
                                           const float *beta, float *running_mean,
                                           float *running_var, int training, float momentum,
                                           float eps, float *save_mean, float *save_invstd,
                                           float *coef)
{
    for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x) {
        double mean, invstd;
        if (training) {
            const double t1 = column_total(part, rows, 2 * (size_t)c, ch);
            const double t2 = column_total(part, rows, 2 * (size_t)c, c + ch);
            const double dev_mean = t1 / m;
            double ss = t2 - t1 * dev_mean; /* Σ (x − mean)² */
            if (ss < 0.0)
                ss = 0.0;
            mean = bf2f(x[ch]) + dev_mean;
            invstd = 1.0 / sqrt(ss / m + (double)eps);
            save_mean[ch] = (float)mean;
            save_invstd[ch] = (float)invstd;
            const double unbiased = ss / (m - 1.0);
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
        } else {
            mean = running_mean[ch];
            invstd = 1.0 / sqrt((double)running_var[ch] + (double)eps);
        }
        const float hi = (float)mean;
        coef[4 * ch + 0] = (float)(invstd * gamma[ch]);
        coef[4 * ch + 1] = beta[ch];
        coef[4 * ch + 2] = hi;
        coef[4 * ch + 3] = (float)(mean - hi);
    }
}

/* ops_ref.c's backward, centred: with x̂ = (x − mean)·invstd,
 * Σ dz·x̂ = invstd·Σ dz·(x − mean); dx = a·dz + b·(x − mean) + k. */
__global__ void bn_backward_finalize_kernel(const double *part, size_t rows, int c, double m,
                                            const float *gamma, const float *save_mean,
                                            const float *save_invstd, float *dgamma,
                                            float *dbeta, float *coef)
{
    for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x) {
        const double sum_dz = column_total(part, rows, 2 * (size_t)c, ch);
        const double sum_dz_xc = column_total(part, rows, 2 * (size_t)c, c + ch);
        const double invstd = save_invstd[ch];
        const double sum_dz_xhat = invstd * sum_dz_xc;
        dgamma[ch] += (float)sum_dz_xhat;
        dbeta[ch] += (float)sum_dz;
        const double a = gamma[ch] * invstd;
        coef[4 * ch + 0] = (float)a;
        coef[4 * ch + 1] = (float)(-a * invstd * sum_dz_xhat / m);
        coef[4 * ch + 2] = (float)(-a * sum_dz / m);
        coef[4 * ch + 3] = save_mean[ch];
    }
}

/* ---- layouts ------------------------------------------------------------------------ */

/* Item i = g·P + pixel (P = N·H·W): channels 8g … 8g+7 of one pixel, so
 * adjacent threads walk adjacent pixels of the NCHW side (coalesced) and
 * each writes or reads up to 16 contiguous bytes of the NHWC side. */
template <bool A>
__global__ void nchw_to_nhwc_kernel(const float *src, size_t pixels, size_t hw, int c,
                                    pnx_bf16 *dst)
{
    const size_t groups = ceil_div((size_t)c, 8);
    const size_t total = groups * pixels;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t g = i / pixels, pix = i % pixels;
        const size_t n = pix / hw, p = pix % hw;
        const int c0 = (int)(8 * g);
        const int cnt = c - c0 < 8 ? c - c0 : 8;
        const float *s = src + ((size_t)n * c + c0) * hw + p;
        pnx_bf16 *d = dst + pix * c + c0;
        if (A && cnt == 8) {
            float f[8];
            uint32_t w[4];
            for (int k = 0; k < 8; k++)
                f[k] = s[k * hw];
            pack8(f, w);
            store8<true>(d, w);
        } else {
            for (int k = 0; k < cnt; k++)
                d[k] = f2bf(s[k * hw]);
        }
    }
}

template <bool A>
__global__ void nhwc_to_nchw_kernel(const pnx_bf16 *src, size_t pixels, size_t hw, int c,
                                    float *dst)
{
    const size_t groups = ceil_div((size_t)c, 8);
    const size_t total = groups * pixels;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t g = i / pixels, pix = i % pixels;
        const size_t n = pix / hw, p = pix % hw;
        const int c0 = (int)(8 * g);
        const int cnt = c - c0 < 8 ? c - c0 : 8;
        const pnx_bf16 *s = src + pix * c + c0;
        float *d = dst + ((size_t)n * c + c0) * hw + p;
        if (A && cnt == 8) {
            uint32_t w[4];
            float f[8];
            load8<true>(s, w);
            unpack8(w, f);
            for (int k = 0; k < 8; k++)
                d[k * hw] = f[k];
        } else {
            for (int k = 0; k < cnt; k++)
                d[k * hw] = bf2f(s[k]);
        }
    }
}

/* Indexed by dst (K,R,S,C): adjacent threads write adjacent bytes. */
__global__ void filter_to_krsc_kernel(const float *w, int k, int c, int rs, pnx_bf16 *dst)
{
    const size_t total = (size_t)k * c * rs;
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < total;
         o += (size_t)gridDim.x * blockDim.x) {
        const size_t ch = o % c, t = o / c;
        const size_t r = t % rs, kk = t / rs;
        dst[o] = f2bf(w[(kk * c + ch) * rs + r]);
    }
}

/* Indexed by dw (K,C,R,S), the float side. */
__global__ void filter_grad_add_kernel(const pnx_bf16 *g, int k, int c, int rs, float *dw)
{
    const size_t total = (size_t)k * c * rs;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i % rs, t = i / rs;
        const size_t ch = t % c, kk = t / c;
        dw[i] += bf2f(g[(kk * rs + r) * c + ch]);
    }
}

} // namespace

/* ---- launchers (C linkage) ---------------------------------------------------------- */

int pnx_bfk_nchw_to_nhwc(cudaStream_t s, const float *src, pnx_dims d, pnx_bf16 *dst)
{
    const size_t hw = (size_t)d.h * d.w, pixels = (size_t)d.n * hw;
    if (pixels == 0 || d.c <= 0)
        return 0;
    const size_t items = ceil_div((size_t)d.c, 8) * pixels;
    if (d.c % 8 == 0 && aligned16(dst)) {
        const auto k = &nchw_to_nhwc_kernel<true>;
        return PNX_LAUNCH("activation upload layout", k, blocks_for(items), kThreads, s, src,
                          pixels, hw, d.c, dst);
    }
    const auto k = &nchw_to_nhwc_kernel<false>;
    return PNX_LAUNCH("activation upload layout", k, blocks_for(items), kThreads, s, src, pixels,
                      hw, d.c, dst);
}

int pnx_bfk_nhwc_to_nchw(cudaStream_t s, const pnx_bf16 *src, pnx_dims d, float *dst)
{
    const size_t hw = (size_t)d.h * d.w, pixels = (size_t)d.n * hw;
    if (pixels == 0 || d.c <= 0)
        return 0;
    const size_t items = ceil_div((size_t)d.c, 8) * pixels;
    if (d.c % 8 == 0 && aligned16(src)) {
        const auto k = &nhwc_to_nchw_kernel<true>;
        return PNX_LAUNCH("activation download layout", k, blocks_for(items), kThreads, s, src,
                          pixels, hw, d.c, dst);
    }
    const auto k = &nhwc_to_nchw_kernel<false>;
    return PNX_LAUNCH("activation download layout", k, blocks_for(items), kThreads, s, src,
                      pixels, hw, d.c, dst);
}

int pnx_bfk_filter_to_krsc(cudaStream_t s, const float *w, int k, int c, int r, int ss,
                           pnx_bf16 *dst)
{
    const size_t total = (size_t)k * c * r * ss;
    if (k <= 0 || c <= 0 || r <= 0 || ss <= 0)
        return 0;
    return PNX_LAUNCH("filter layout", filter_to_krsc_kernel, blocks_for(total), kThreads, s, w, k,
                      c, r * ss, dst);
}

int pnx_bfk_filter_grad_add(cudaStream_t s, const pnx_bf16 *g, int k, int c, int r, int ss,
                            float *dw)
{
    const size_t total = (size_t)k * c * r * ss;
    if (k <= 0 || c <= 0 || r <= 0 || ss <= 0)
        return 0;
    return PNX_LAUNCH("filter gradient", filter_grad_add_kernel, blocks_for(total), kThreads, s, g,
                      k, c, r * ss, dw);
}

size_t pnx_bfk_channel_scratch(size_t pixels, int c)
{
    if (pixels == 0 || c <= 0)
        return 0;
    return scratch_bytes(plan_reduce(pixels, c), c);
}

int pnx_bfk_add_bias(cudaStream_t s, pnx_bf16 *y, const float *bias, size_t pixels, int c)
{
    if (!bias || pixels == 0 || c <= 0)
        return 0;
    const add_bias_op op = {y, bias, c};
    return launch_map("bias", s, op, pixels * (size_t)c, true, aligned16(y));
}

int pnx_bfk_bias_grad(cudaStream_t s, const pnx_bf16 *dy, size_t pixels, int c, float *db,
                      void *scratch)
{
    if (pixels == 0 || c <= 0)
        return 0;
    const reduce_plan pl = plan_reduce(pixels, c);
    const scratch_parts sp = split_scratch(scratch, pl, c);
    const double *total;
    size_t rows;
    int rc = channel_sums<SUMS_PLAIN>(s, pl, sp, dy, nullptr, nullptr, nullptr, c, &total, &rows);
    if (rc)
        return rc;
    return PNX_LAUNCH("bias gradient", bias_grad_finalize_kernel, blocks_for((size_t)c),
                      kThreads, s, total, rows, c, db);
}

int pnx_bfk_bn_forward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                       const float *gamma, const float *beta, float *running_mean,
                       float *running_var, int training, float momentum, float eps, int relu,
                       pnx_bf16 *y, float *save_mean, float *save_invstd, void *scratch)
{
    if (pixels == 0 || c <= 0)
        return 0;
    const reduce_plan pl = plan_reduce(pixels, c);
    const scratch_parts sp = split_scratch(scratch, pl, c);
    const double *total = nullptr;
    size_t rows = 0;
    int rc;
    if (training &&
        (rc = channel_sums<SUMS_SHIFTED>(s, pl, sp, x, nullptr, nullptr, nullptr, c, &total,
                                         &rows)))
        return rc;
    if ((rc = PNX_LAUNCH("batch norm statistics", bn_forward_finalize_kernel,
                         blocks_for((size_t)c), kThreads, s, total, rows, x, c, (double)pixels,
                         gamma, beta, running_mean, running_var, training, momentum, eps,
                         save_mean, save_invstd, sp.coef)))
        return rc;
    const bn_apply_op op = {x, y, sp.coef, c, relu};
    return launch_map("batch norm", s, op, pixels * (size_t)c, true,
                      aligned16(x) && aligned16(y));
}

int pnx_bfk_bn_backward(cudaStream_t s, const pnx_bf16 *x, const pnx_bf16 *y_relu,
                        size_t pixels, int c, const float *gamma, const float *save_mean,
                        const float *save_invstd, const pnx_bf16 *dy, pnx_bf16 *dx, int acc,
                        float *dgamma, float *dbeta, void *scratch)
{
    if (pixels == 0 || c <= 0)
        return 0;
    const reduce_plan pl = plan_reduce(pixels, c);
    const scratch_parts sp = split_scratch(scratch, pl, c);
    const double *total;
    size_t rows;
    int rc = channel_sums<SUMS_BN_BWD>(s, pl, sp, dy, x, y_relu, save_mean, c, &total, &rows);
    if (rc)
        return rc;
    if ((rc = PNX_LAUNCH("batch norm backward statistics", bn_backward_finalize_kernel,
                         blocks_for((size_t)c), kThreads, s, total, rows, c, (double)pixels,
                         gamma, save_mean, save_invstd, dgamma, dbeta, sp.coef)))
        return rc;
    if (!dx)
        return 0;
    const bn_backward_apply_op op = {x, y_relu, dy, dx, sp.coef, c, acc};
    return launch_map("batch norm backward", s, op, pixels * (size_t)c, true,
                      aligned16(x) && aligned16(y_relu) && aligned16(dy) && aligned16(dx));
}

int pnx_bfk_relu_forward(cudaStream_t s, const pnx_bf16 *x, pnx_bf16 *y, size_t n)
{
    const relu_op op = {x, y};
    return launch_map("relu", s, op, n, true, aligned16(x) && aligned16(y));
}

int pnx_bfk_relu_backward(cudaStream_t s, const pnx_bf16 *y, const pnx_bf16 *dy, pnx_bf16 *dx,
                          size_t n)
{
    const relu_backward_op op = {y, dy, dx};
    return launch_map("relu backward", s, op, n, true,
                      aligned16(y) && aligned16(dy) && aligned16(dx));
}

int pnx_bfk_maxpool_forward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, pnx_bf16 *y,
                            uint8_t *argmax)
{
    const size_t n = (size_t)xd.n * (xd.h / 2) * (xd.w / 2) * (size_t)(xd.c > 0 ? xd.c : 0);
    const maxpool_op op = {x, y, argmax, xd.c, xd.h, xd.w};
    return launch_map("max-pool", s, op, n, xd.c % 8 == 0,
                      aligned16(x) && aligned16(y) && (uintptr_t)argmax % 8 == 0);
}

int pnx_bfk_maxpool_backward(cudaStream_t s, pnx_dims xd, const uint8_t *argmax,
                             const pnx_bf16 *dy, pnx_bf16 *dx, int acc)
{
    const size_t n = (size_t)xd.n * xd.h * xd.w * (size_t)(xd.c > 0 ? xd.c : 0);
    const maxpool_backward_op op = {argmax, dy, dx, xd.c, xd.h, xd.w, acc};
    return launch_map("max-pool backward", s, op, n, xd.c % 8 == 0,
                      aligned16(dy) && aligned16(dx));
}

int pnx_bfk_concat(cudaStream_t s, const pnx_bf16 *a, int ca, const pnx_bf16 *b, int cb,
                   size_t pixels, pnx_bf16 *y)
{
    if (ca < 0 || cb < 0)
        return 0;
    const concat_op op = {a, b, y, ca, cb};
    return launch_map("concat", s, op, pixels * ((size_t)ca + cb), ca % 8 == 0 && cb % 8 == 0,
                      aligned16(a) && aligned16(b) && aligned16(y));
}

int pnx_bfk_split(cudaStream_t s, const pnx_bf16 *dy, int ca, int cb, size_t pixels,
                  pnx_bf16 *da, int da_acc, pnx_bf16 *db, int db_acc)
{
    if (ca < 0 || cb < 0)
        return 0;
    const split_op op = {dy, da, db, ca, cb, da_acc, db_acc};
    return launch_map("split", s, op, pixels * ((size_t)ca + cb), ca % 8 == 0 && cb % 8 == 0,
                      aligned16(dy) && aligned16(da) && aligned16(db));
}

size_t pnx_bfk_loss_blocks(size_t count)
{
    size_t lanes = ceil_div(ceil_div(count, 8), kLossMinVecs);
    if (lanes < 1)
        lanes = 1;
    return lanes > kLossLanes ? kLossLanes : lanes;
}

int pnx_bfk_loss_partials(cudaStream_t s, const pnx_bf16 *logits, const pnx_bf16 *target,
                          size_t count, double *partials)
{
    const size_t lanes = pnx_bfk_loss_blocks(count);
    if (aligned16(logits) && aligned16(target)) {
        const auto k = &loss_partials_kernel<true>;
        return PNX_LAUNCH("loss", k, blocks_for(lanes), kThreads, s, logits, target, count, lanes,
                          partials);
    }
    const auto k = &loss_partials_kernel<false>;
    return PNX_LAUNCH("loss", k, blocks_for(lanes), kThreads, s, logits, target, count, lanes,
                      partials);
}

void pnx_bfk_loss_reduce(const double *host_partials, size_t blocks, double sums[4])
{
    for (int k = 0; k < 4; k++)
        sums[k] = 0.0;
    for (size_t b = 0; b < blocks; b++)
        for (int k = 0; k < 4; k++)
            sums[k] += host_partials[b * 4 + k];
}

int pnx_bfk_loss_grad(cudaStream_t s, const pnx_bf16 *logits, const pnx_bf16 *target,
                      size_t count, float bce_weight, float dice_weight, double inter,
                      double denom, pnx_bf16 *dlogits)
{
    const loss_grad_op op = {logits, target, dlogits, (double)count, bce_weight, dice_weight,
                             inter, denom};
    return launch_map("loss gradient", s, op, count, true,
                      aligned16(logits) && aligned16(target) && aligned16(dlogits));
}
