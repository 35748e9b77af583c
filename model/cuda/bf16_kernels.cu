/*
 * model/cuda/bf16_kernels.cu — the element-wise bfloat16 NHWC kernels of
 * mixed precision (bf16_kernels.h): layouts, bias, ReLU, max-pool,
 * concatenation and the loss; the per-channel reductions are in
 * bf16_reduce.cu, the shared dialect in bf16_device.cuh.
 *
 * NHWC puts channels next to each other, so adjacent threads handle
 * adjacent channels and read adjacent addresses. Selections and copies
 * (max-pool, concat, ReLU) move bits and never round; arithmetic is float
 * (the loss: double where bf16_kernels.h says so), rounded once on store.
 */
#include "model/cuda/bf16_device.cuh"

namespace {

/* The loss: up to 8192 lanes of at least 8 vectors (64 elements) each;
 * their partials (32 bytes a lane) are copied to the host. */
constexpr size_t kLossLanes = 8192;
constexpr size_t kLossMinVecs = 8;

/* y (P,C) += bias (C). */
struct add_bias_op {
    pnx_bf16 *y;
    const float *bias;
    int c;
    __device__ int period() const
    {
        return c;
    }
    __device__ void one(size_t e, size_t, int ch) const
    {
        y[e] = f2bf(bf2f(y[e]) + bias[ch]);
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int ch) const
    {
        uint32_t w[4];
        float f[8];
        load8<A>(y + 8 * v, w);
        unpack8(w, f);
        for (int i = 0; i < 8; i++, ch = next_channel(ch, c))
            f[i] += bias[ch];
        pack8(f, w);
        store8<A>(y + 8 * v, w);
    }
};

/* y = max(x, 0): the input's bits or +0 (NaN → 0, as ops_ref.c). */
struct relu_op {
    const pnx_bf16 *x;
    pnx_bf16 *y;
    __device__ int period() const
    {
        return 1;
    }
    __device__ void one(size_t e, size_t, int) const
    {
        const pnx_bf16 b = x[e];
        y[e] = bf2f(b) > 0.0f ? b : (pnx_bf16)0;
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int) const
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
    __device__ int period() const
    {
        return 1;
    }
    __device__ void one(size_t e, size_t, int) const
    {
        dx[e] = bf2f(y[e]) > 0.0f ? dy[e] : (pnx_bf16)0;
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int) const
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
    __device__ int period() const
    {
        return ca + cb;
    }
    __device__ void one(size_t e, size_t q, int r) const
    {
        const size_t p = q;
        const int ch = r;
        y[e] = ch < ca ? a[p * ca + ch] : b[p * cb + (ch - ca)];
    }
    template <bool A>
    __device__ void vec(size_t v, size_t q, int r) const
    {
        const size_t p = q;
        const int ch = r;
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
    __device__ int period() const
    {
        return ca + cb;
    }
    __device__ void one(size_t e, size_t q, int r) const
    {
        const size_t p = q;
        const int ch = r;
        pnx_bf16 *dst = ch < ca ? (da ? da + p * ca + ch : nullptr)
                                : (db ? db + p * cb + (ch - ca) : nullptr);
        if (!dst)
            return;
        const int acc = ch < ca ? da_acc : db_acc;
        *dst = acc ? f2bf(bf2f(*dst) + bf2f(dy[e])) : dy[e];
    }
    template <bool A>
    __device__ void vec(size_t v, size_t q, int r) const
    {
        const size_t p = q;
        const int ch = r;
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
    __device__ int period() const
    {
        return c;
    }
    /* The input offset of window corner 0 for output pixel op. */
    __device__ __forceinline__ size_t corner(size_t op) const
    {
        const int ow = w / 2, oh = h / 2;
        const size_t ox = op % ow, t = op / ow;
        const size_t oy = t % oh, n = t / oh;
        return ((n * h + 2 * oy) * w + 2 * ox) * c;
    }
    __device__ void one(size_t e, size_t q, int r) const
    {
        const size_t base = corner(q) + r;
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
    __device__ void vec(size_t v, size_t q, int r) const
    {
        const size_t base = corner(q) + r;
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
            host_check_aligned(argmax + 8 * v, 8);
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
    __device__ int period() const
    {
        return c;
    }
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
    __device__ void one(size_t e, size_t q, int r) const
    {
        size_t o = 0;
        int k = -1;
        const bool in = window(q, o, k);
        const size_t oe = o + r;
        const bool sel = in && argmax[oe] == k;
        dx[e] = result(sel, sel ? dy[oe] : (pnx_bf16)0, acc ? dx[e] : (pnx_bf16)0);
    }
    template <bool A>
    __device__ void vec(size_t v, size_t q, int r) const
    {
        size_t o = 0;
        int k = -1;
        const bool in = window(q, o, k);
        const size_t oe = o + r;
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
    __device__ int period() const
    {
        return 1;
    }
    __device__ __forceinline__ float f(float xv, float tv) const
    {
        const double smooth = 1.0;
        const double s = sigmoid_d(xv), t = tv;
        const double d_bce = (s - t) / count;
        const double d_dice_ds = -(2.0 * t * denom - (2.0 * inter + smooth)) / (denom * denom);
        return (float)(bce_weight * d_bce + dice_weight * d_dice_ds * s * (1.0 - s));
    }
    __device__ void one(size_t e, size_t, int) const
    {
        dlogits[e] = f2bf(f(bf2f(logits[e]), bf2f(target[e])));
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int) const
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

int pnx_bfk_add_bias(cudaStream_t s, pnx_bf16 *y, const float *bias, size_t pixels, int c)
{
    if (!bias || pixels == 0 || c <= 0)
        return 0;
    const add_bias_op op = {y, bias, c};
    return launch_map("bias", s, op, pixels * (size_t)c, true, aligned16(y));
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
