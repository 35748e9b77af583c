/*
 * model/cuda/cuda_kernels.cu — the CUDA backend's own kernels: bias, batch
 * norm, ReLU, max-pool, channel copies, the loss and Adam (cuda_internal.h).
 *
 * Numerics follow model/ops_ref.c: per-channel and loss sums in double, the
 * element-wise maps in float with the same folded coefficients. Reductions
 * use a fixed split and a fixed summation order that depend only on the
 * shape and the device's multiprocessor count, never on timing, so every
 * kernel here is deterministic (no atomics).
 *
 * The fused BN+ReLU is the batch-norm kernels with the ReLU folded in: the
 * forward clamps on store, the backward masks dy by y > 0 as it reads it,
 * in both the reduction and the dx pass, so it costs no pass and no buffer
 * of its own.
 *
 * Layout reminder: element (n, c, p) of an (N,C,P) tensor is at
 * (n·C + c)·P + p; a "row" is the P pixels of one (n, c).
 */
#include "model/cuda/cuda_internal.h"

#include <cuda_runtime.h>
#include <math.h>

extern "C" { /* error.h has no C++ guard of its own */
#include "common/error.h"
}

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxGrid = 65535;    /* grid-stride loops cap their grids here */
constexpr int kLossBlocks = 512;        /* fixed, so the loss sums in a fixed order */
constexpr size_t kMinPerBlock = 2048;   /* channel reductions: elements per block */

int launch_check(const char *what)
{
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, what);
}

unsigned grid_for(size_t n)
{
    size_t blocks = (n + kThreads - 1) / kThreads;
    if (blocks < 1)
        blocks = 1;
    return blocks > kMaxGrid ? kMaxGrid : (unsigned)blocks;
}

/* A 2-D grid for row kernels: y walks the N·C rows, x the pixels of a row. */
dim3 row_grid(size_t rows, size_t p)
{
    unsigned gx = grid_for(p);
    size_t gy = rows > kMaxGrid ? kMaxGrid : rows;
    return dim3(gx, (unsigned)(gy ? gy : 1));
}

/* Sums of kThreads doubles per thread into thread 0's slot, in a fixed tree
 * order. */
__device__ void block_sum2(double *s1, double *s2, double &a, double &b)
{
    const int t = threadIdx.x;
    s1[t] = a;
    s2[t] = b;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half >>= 1) {
        if (t < half) {
            s1[t] += s1[t + half];
            s2[t] += s2[t + half];
        }
        __syncthreads();
    }
    a = s1[0];
    b = s2[0];
}

/* ---- per-channel reductions ---------------------------------------------- */

/* How many pieces each row (one sample's channel) is cut into, so that all
 * channels together give the GPU a few blocks per multiprocessor. */
int row_pieces(int sm_count, int n, int c, size_t p)
{
    size_t target = (size_t)(sm_count > 0 ? sm_count : 1) * 4;
    size_t per_row = (target + (size_t)n * c - 1) / ((size_t)n * c);
    size_t max_by_size = (p + kMinPerBlock - 1) / kMinPerBlock;
    if (per_row > max_by_size)
        per_row = max_by_size;
    if (per_row < 1)
        per_row = 1;
    if (per_row > 256)
        per_row = 256;
    return (int)per_row;
}

enum { SUM_PLAIN = 0, SUM_SHIFTED_SQUARES = 1 };

/* Block (s, ch) sums its piece of channel ch: s = sample·pieces + piece.
 *   SUM_PLAIN:           s1 = Σ a, s2 = Σ a·b (b may be NULL); with Masked,
 *                        a reads as 0 wherever mask ≤ 0 (ReLU's backward,
 *                        mask its output; b is then never NULL);
 *   SUM_SHIFTED_SQUARES: s1 = Σ (a − K), s2 = Σ (a − K)², K = the channel's
 *                        first value, which keeps E[x²] − E[x]² from
 *                        cancelling when the mean is large against the spread.
 * part[(ch·S + s)·2 + {0,1}]. */
template <bool Masked>
__global__ void channel_partial_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                       const float *__restrict__ mask, int n, int c, size_t p,
                                       int pieces, int mode, double *__restrict__ part)
{
    __shared__ double s1[kThreads], s2[kThreads];
    const int ch = blockIdx.y;
    const int s = blockIdx.x;
    const int sample = s / pieces, piece = s % pieces;
    const size_t chunk = (p + pieces - 1) / pieces;
    const size_t begin = (size_t)piece * chunk;
    const size_t end = begin + chunk < p ? begin + chunk : p;
    const size_t row = ((size_t)sample * c + ch) * p;
    double acc1 = 0.0, acc2 = 0.0;
    if (mode == SUM_SHIFTED_SQUARES) {
        const double k = a[(size_t)ch * p];
        for (size_t q = begin + threadIdx.x; q < end; q += kThreads) {
            double v = (double)a[row + q] - k;
            acc1 += v;
            acc2 += v * v;
        }
    } else if (Masked) {
        for (size_t q = begin + threadIdx.x; q < end; q += kThreads) {
            double v = mask[row + q] > 0.0f ? a[row + q] : 0.0f;
            acc1 += v;
            acc2 += v * b[row + q];
        }
    } else if (b) {
        for (size_t q = begin + threadIdx.x; q < end; q += kThreads) {
            double v = a[row + q];
            acc1 += v;
            acc2 += v * b[row + q];
        }
    } else {
        for (size_t q = begin + threadIdx.x; q < end; q += kThreads)
            acc1 += a[row + q];
    }
    block_sum2(s1, s2, acc1, acc2);
    if (threadIdx.x == 0) {
        const size_t S = (size_t)n * pieces;
        part[((size_t)ch * S + s) * 2 + 0] = acc1;
        part[((size_t)ch * S + s) * 2 + 1] = acc2;
    }
}

/* mask NULL: plain sums; else SUM_PLAIN of a masked by mask > 0 (b set). */
int channel_partials(cudaStream_t st, int sm_count, const float *a, const float *b,
                     const float *mask, int n, int c, size_t p, int mode, double *part)
{
    /* A channel per grid row: gridDim.y stops at 65535. */
    if ((unsigned)c > kMaxGrid)
        return pnx_fail(PNX_ERANGE, "per-channel sums over %d channels: at most %u", c,
                        kMaxGrid);
    const int pieces = row_pieces(sm_count, n, c, p);
    dim3 grid((unsigned)(n * pieces), (unsigned)c);
    if (mask)
        channel_partial_kernel<true>
            <<<grid, kThreads, 0, st>>>(a, b, mask, n, c, p, pieces, mode, part);
    else
        channel_partial_kernel<false>
            <<<grid, kThreads, 0, st>>>(a, b, nullptr, n, c, p, pieces, mode, part);
    return launch_check("channel reduction");
}

/* One thread per channel adds its S partials in order. */
__device__ void channel_totals(const double *part, int ch, int S, double &t1, double &t2)
{
    t1 = 0.0;
    t2 = 0.0;
    for (int s = 0; s < S; s++) {
        t1 += part[((size_t)ch * S + s) * 2 + 0];
        t2 += part[((size_t)ch * S + s) * 2 + 1];
    }
}

__global__ void bias_grad_finalize_kernel(const double *part, int c, int S, float *db)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c)
        return;
    double t1, t2;
    channel_totals(part, ch, S, t1, t2);
    db[ch] += (float)t1;
}

__global__ void add_bias_kernel(float *y, const float *bias, size_t rows, int c, size_t p)
{
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float bv = bias[r % c];
        float *yr = y + r * p;
        for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < p;
             q += (size_t)gridDim.x * blockDim.x)
            yr[q] += bv;
    }
}

/* ---- batch norm ------------------------------------------------------------ */

/* coef[ch] = scale, coef[c + ch] = shift: y = x·scale + shift. */
__global__ void bn_forward_finalize_kernel(const double *part, const float *x, int c, int S,
                                           double m, const float *gamma, const float *beta,
                                           float *running_mean, float *running_var,
                                           int training, float momentum, float eps,
                                           float *save_mean, float *save_invstd, size_t p,
                                           float *coef)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c)
        return;
    double mean, invstd;
    if (training) {
        double t1, t2;
        channel_totals(part, ch, S, t1, t2);
        const double k = x[(size_t)ch * p];
        const double dev_mean = t1 / m;
        double ss = t2 - t1 * dev_mean; /* Σ (x − mean)² */
        if (ss < 0.0)
            ss = 0.0;
        mean = k + dev_mean;
        const double var = ss / m;
        invstd = 1.0 / sqrt(var + (double)eps);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        const double unbiased = ss / (m - 1.0);
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    } else {
        mean = running_mean[ch];
        invstd = 1.0 / sqrt((double)running_var[ch] + (double)eps);
    }
    coef[ch] = (float)(invstd * gamma[ch]);
    coef[c + ch] = (float)(beta[ch] - mean * invstd * gamma[ch]);
}

/* V = float4 moves 16 bytes per thread (rows of a multiple of 4 floats on
 * 16-byte boundaries), V = float one; p counts V's.
 * v·a + b rounded as ops_ref.c rounds it: the product, then the sum.
 * nvcc would otherwise fuse them into one FMA, and where x·scale is far
 * larger than y (a mean large against the spread: 10^4 at 100 ± 0.01) the
 * reference's rounded product alone differs from the FMA by more than the
 * FP32 tests' 1e-4; __fmul_rn is never fused. */
__device__ inline float mul_add(float v, float a, float b)
{
    return __fmul_rn(v, a) + b;
}
__device__ inline float4 fma4(float4 v, float a, float b)
{
    return make_float4(mul_add(v.x, a, b), mul_add(v.y, a, b), mul_add(v.z, a, b),
                       mul_add(v.w, a, b));
}
__device__ inline float fma4(float v, float a, float b)
{
    return mul_add(v, a, b);
}
/* max(v, 0) with ReLU's convention (NaN → 0), as ops_ref.c. */
__device__ inline float relu_v(float v)
{
    return v > 0.0f ? v : 0.0f;
}
__device__ inline float4 relu_v(float4 v)
{
    return make_float4(relu_v(v.x), relu_v(v.y), relu_v(v.z), relu_v(v.w));
}

/* y = x·scale + shift, then max(·, 0) when Relu. y may equal x. */
template <typename V, bool Relu>
__global__ void bn_apply_kernel(const V *x, V *y, size_t rows, int c, size_t p,
                                const float *coef)
{
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int ch = (int)(r % c);
        const float scale = coef[ch], shift = coef[c + ch];
        const V *xr = x + r * p;
        V *yr = y + r * p;
        for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < p;
             q += (size_t)gridDim.x * blockDim.x)
            yr[q] = Relu ? relu_v(fma4(xr[q], scale, shift)) : fma4(xr[q], scale, shift);
    }
}

bool vec4_ok(size_t p, const void *a, const void *b, const void *c, const void *d = nullptr)
{
    auto aligned = [](const void *q) { return q == nullptr || (uintptr_t)q % 16 == 0; };
    return p % 4 == 0 && aligned(a) && aligned(b) && aligned(c) && aligned(d);
}

/* dx = a·dy + b·x + k per channel (ops_ref.c's folding); coef = {a, b, k}. */
__global__ void bn_backward_finalize_kernel(const double *part, int c, int S, double m,
                                            const float *gamma, const float *save_mean,
                                            const float *save_invstd, float *dgamma,
                                            float *dbeta, float *coef)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c)
        return;
    double sum_dy, sum_dy_x;
    channel_totals(part, ch, S, sum_dy, sum_dy_x);
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    const double sum_dy_xhat = invstd * (sum_dy_x - mean * sum_dy);
    dgamma[ch] += (float)sum_dy_xhat;
    dbeta[ch] += (float)sum_dy;
    const double a = gamma[ch] * invstd;
    const double b = -a * invstd * sum_dy_xhat / m;
    const double k = -a * sum_dy / m - b * mean;
    coef[ch] = (float)a;
    coef[c + ch] = (float)b;
    coef[2 * c + ch] = (float)k;
}

/* Rounded as ops_ref.c, unfused (see mul_add): b·x and k nearly cancel
 * when the mean is large against the spread. */
__device__ inline float bn_dx(float dy, float x, float a, float b, float k, float prev, int acc)
{
    const float v = __fmul_rn(a, dy) + __fmul_rn(b, x) + k;
    return acc ? prev + v : v;
}

/* ReLU's backward on the gradient as it is read: dy where y > 0, else 0. */
__device__ inline float relu_mask(float y, float dy)
{
    return y > 0.0f ? dy : 0.0f;
}
__device__ inline float4 relu_mask(float4 y, float4 dy)
{
    return make_float4(relu_mask(y.x, dy.x), relu_mask(y.y, dy.y), relu_mask(y.z, dy.z),
                       relu_mask(y.w, dy.w));
}

/* With Masked, dy is first masked by the fused forward's output ym. */
template <typename V, bool Masked>
__global__ void bn_backward_apply_kernel(const V *x, const V *ym, const V *dy, V *dx,
                                         size_t rows, int c, size_t p, const float *coef, int acc)
{
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int ch = (int)(r % c);
        const float a = coef[ch], b = coef[c + ch], k = coef[2 * c + ch];
        const V *xr = x + r * p;
        const V *yr = Masked ? ym + r * p : nullptr;
        const V *dyr = dy + r * p;
        V *dxr = dx + r * p;
        for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < p;
             q += (size_t)gridDim.x * blockDim.x) {
            const V g = Masked ? relu_mask(yr[q], dyr[q]) : dyr[q];
            if constexpr (sizeof(V) == sizeof(float4)) {
                const float4 xv = xr[q], dv = g;
                const float4 prev = acc ? dxr[q] : make_float4(0, 0, 0, 0);
                dxr[q] = make_float4(bn_dx(dv.x, xv.x, a, b, k, prev.x, acc),
                                     bn_dx(dv.y, xv.y, a, b, k, prev.y, acc),
                                     bn_dx(dv.z, xv.z, a, b, k, prev.z, acc),
                                     bn_dx(dv.w, xv.w, a, b, k, prev.w, acc));
            } else {
                dxr[q] = bn_dx(g, xr[q], a, b, k, acc ? dxr[q] : 0.0f, acc);
            }
        }
    }
}

/* ---- element-wise ---------------------------------------------------------- */

__device__ inline float relu1(float v)
{
    return v > 0.0f ? v : 0.0f;
}
__device__ inline float relu_grad1(float y, float dy)
{
    return y > 0.0f ? dy : 0.0f;
}

/* n counts V's (float4 or float). */
template <typename V>
__global__ void relu_forward_kernel(const V *x, V *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if constexpr (sizeof(V) == sizeof(float4)) {
            const float4 v = x[i];
            y[i] = make_float4(relu1(v.x), relu1(v.y), relu1(v.z), relu1(v.w));
        } else {
            y[i] = relu1(x[i]);
        }
    }
}

template <typename V>
__global__ void relu_backward_kernel(const V *y, const V *dy, V *dx, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if constexpr (sizeof(V) == sizeof(float4)) {
            const float4 yv = y[i], g = dy[i];
            dx[i] = make_float4(relu_grad1(yv.x, g.x), relu_grad1(yv.y, g.y),
                                relu_grad1(yv.z, g.z), relu_grad1(yv.w, g.w));
        } else {
            dx[i] = relu_grad1(y[i], dy[i]);
        }
    }
}

/* Ties keep the first element in row-major window order, NaN wins: as
 * PyTorch and ops_ref.c. */
__global__ void maxpool_forward_kernel(const float *x, size_t planes, int h, int w, float *y,
                                       uint8_t *argmax)
{
    const int oh = h / 2, ow = w / 2;
    const size_t total = planes * oh * ow;
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < total;
         o += (size_t)gridDim.x * blockDim.x) {
        const int ox = (int)(o % ow);
        const size_t t = o / ow;
        const int oy = (int)(t % oh);
        const size_t plane = t / oh;
        const float *base = x + (plane * h + 2 * oy) * w + 2 * ox;
        const float v[4] = {base[0], base[1], base[w], base[w + 1]};
        int best = 0;
        float bestv = v[0];
#pragma unroll
        for (int k = 1; k < 4; k++)
            if (v[k] > bestv || isnan(v[k])) {
                bestv = v[k];
                best = k;
            }
        y[o] = bestv;
        argmax[o] = (uint8_t)best;
    }
}

/* One thread per input element: each belongs to exactly one window. */
__global__ void maxpool_backward_kernel(size_t planes, int h, int w, const uint8_t *argmax,
                                        const float *dy, float *dx, int acc)
{
    const int oh = h / 2, ow = w / 2;
    const size_t total = planes * h * w;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int ix = (int)(i % w);
        const size_t t = i / w;
        const int iy = (int)(t % h);
        const size_t plane = t / h;
        const size_t o = (plane * oh + iy / 2) * ow + ix / 2;
        const int k = (iy & 1) * 2 + (ix & 1);
        const float v = argmax[o] == k ? dy[o] : 0.0f;
        dx[i] = acc ? dx[i] + v : v;
    }
}

__global__ void copy_rows_kernel(float *dst, size_t dpitch, const float *src, size_t spitch,
                                 size_t width, size_t rows, int acc)
{
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        float *d = dst + r * dpitch;
        const float *s = src + r * spitch;
        for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < width;
             q += (size_t)gridDim.x * blockDim.x)
            d[q] = acc ? d[q] + s[q] : s[q];
    }
}

/* ---- loss ------------------------------------------------------------------ */

__device__ double sigmoid_d(double v)
{
    return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

/* part[block·4 + {0..3}] = {Σ bce, Σ σ·t, Σ σ, Σ t} over a grid-stride share. */
__global__ void loss_partial_kernel(const float *logits, const float *target, size_t count,
                                    double *part)
{
    __shared__ double s1[kThreads], s2[kThreads];
    double bce = 0, inter = 0, sum_s = 0, sum_t = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const double xv = logits[i], t = target[i];
        bce += (xv > 0 ? xv : 0) - xv * t + log1p(exp(-fabs(xv)));
        const double s = sigmoid_d(xv);
        inter += s * t;
        sum_s += s;
        sum_t += t;
    }
    block_sum2(s1, s2, bce, inter);
    __syncthreads();
    block_sum2(s1, s2, sum_s, sum_t);
    if (threadIdx.x == 0) {
        part[blockIdx.x * 4 + 0] = bce;
        part[blockIdx.x * 4 + 1] = inter;
        part[blockIdx.x * 4 + 2] = sum_s;
        part[blockIdx.x * 4 + 3] = sum_t;
    }
}

/* One block: out[0..3] = Σ over the kLossBlocks partials, fixed order. */
__global__ void loss_total_kernel(const double *part, double *out)
{
    __shared__ double s1[kThreads], s2[kThreads];
    double v[4] = {0, 0, 0, 0};
    for (int b = threadIdx.x; b < kLossBlocks; b += kThreads)
        for (int k = 0; k < 4; k++)
            v[k] += part[b * 4 + k];
    block_sum2(s1, s2, v[0], v[1]);
    __syncthreads();
    block_sum2(s1, s2, v[2], v[3]);
    if (threadIdx.x == 0)
        for (int k = 0; k < 4; k++)
            out[k] = v[k];
}

__global__ void loss_grad_kernel(const float *logits, const float *target, size_t count,
                                 float bce_weight, float dice_weight, double inter, double denom,
                                 float *dlogits)
{
    const double smooth = 1.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const double s = sigmoid_d(logits[i]), t = target[i];
        const double d_bce = (s - t) / (double)count;
        const double d_dice_ds = -(2.0 * t * denom - (2.0 * inter + smooth)) / (denom * denom);
        dlogits[i] =
            (float)(bce_weight * d_bce + dice_weight * d_dice_ds * s * (1.0 - s));
    }
}

/* ---- Adam ------------------------------------------------------------------- */

/* torch.optim.Adam's single-tensor step in float, as ops_ref.c. */
__global__ void adam_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                            pnx_cuk_adam a)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i];
        if (a.wd != 0.0f)
            g += a.wd * param[i];
        const float mi = m[i] * a.b1 + g * a.one_minus_b1;
        const float vi = v[i] * a.b2 + a.one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / a.bc2_sqrt + a.eps;
        param[i] -= a.step_size * (mi / denom);
    }
}

} // namespace

/* ---- launchers (C linkage) ---------------------------------------------------- */

size_t pnx_cuk_channel_scratch(int sm_count, int n, int c, size_t p)
{
    const size_t S = (size_t)n * row_pieces(sm_count, n, c, p);
    /* partial sums, then up to three float coefficients per channel */
    return (size_t)c * S * 2 * sizeof(double) + 3 * (size_t)c * sizeof(float) + 256;
}

static float *coef_after_partials(void *scratch, int sm_count, int n, int c, size_t p)
{
    const size_t S = (size_t)n * row_pieces(sm_count, n, c, p);
    return (float *)((char *)scratch + (size_t)c * S * 2 * sizeof(double));
}

int pnx_cuk_add_bias(cudaStream_t s, float *y, const float *bias, int n, int c, size_t p)
{
    if (!bias || n == 0 || c == 0 || p == 0)
        return 0;
    const size_t rows = (size_t)n * c;
    add_bias_kernel<<<row_grid(rows, p), kThreads, 0, s>>>(y, bias, rows, c, p);
    return launch_check("bias");
}

int pnx_cuk_bias_grad(cudaStream_t s, int sm_count, const float *dy, int n, int c, size_t p,
                      float *db, void *partial)
{
    if (n == 0 || c == 0 || p == 0)
        return 0;
    double *part = (double *)partial;
    int rc = channel_partials(s, sm_count, dy, NULL, NULL, n, c, p, SUM_PLAIN, part);
    if (rc)
        return rc;
    const int S = n * row_pieces(sm_count, n, c, p);
    bias_grad_finalize_kernel<<<(c + kThreads - 1) / kThreads, kThreads, 0, s>>>(part, c, S, db);
    return launch_check("bias gradient");
}

int pnx_cuk_batchnorm_forward(cudaStream_t s, int sm_count, const float *x, pnx_dims d,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, int training, float momentum, float eps,
                              int relu, float *y, float *save_mean, float *save_invstd,
                              void *scratch)
{
    const size_t p = (size_t)d.h * d.w;
    const size_t rows = (size_t)d.n * d.c;
    if (rows == 0 || p == 0)
        return 0;
    double *part = (double *)scratch;
    float *coef = coef_after_partials(scratch, sm_count, d.n, d.c, p);
    const int S = d.n * row_pieces(sm_count, d.n, d.c, p);
    if (training) {
        int rc = channel_partials(s, sm_count, x, NULL, NULL, d.n, d.c, p, SUM_SHIFTED_SQUARES,
                                  part);
        if (rc)
            return rc;
    }
    bn_forward_finalize_kernel<<<(d.c + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        part, x, d.c, S, (double)d.n * (double)p, gamma, beta, running_mean, running_var,
        training, momentum, eps, save_mean, save_invstd, p, coef);
    int rc = launch_check("batch norm statistics");
    if (rc)
        return rc;
    const bool vec = vec4_ok(p, x, y, nullptr);
    const dim3 grid = row_grid(rows, vec ? p / 4 : p);
    const float4 *x4 = (const float4 *)x;
    float4 *y4 = (float4 *)y;
    if (vec && relu)
        bn_apply_kernel<float4, true><<<grid, kThreads, 0, s>>>(x4, y4, rows, d.c, p / 4, coef);
    else if (vec)
        bn_apply_kernel<float4, false><<<grid, kThreads, 0, s>>>(x4, y4, rows, d.c, p / 4, coef);
    else if (relu)
        bn_apply_kernel<float, true><<<grid, kThreads, 0, s>>>(x, y, rows, d.c, p, coef);
    else
        bn_apply_kernel<float, false><<<grid, kThreads, 0, s>>>(x, y, rows, d.c, p, coef);
    return launch_check(relu ? "batch norm + relu" : "batch norm");
}

int pnx_cuk_batchnorm_backward(cudaStream_t s, int sm_count, const float *x,
                               const float *y_relu, pnx_dims d, const float *gamma,
                               const float *save_mean, const float *save_invstd, const float *dy,
                               float *dx, int acc, float *dgamma, float *dbeta, void *scratch)
{
    const size_t p = (size_t)d.h * d.w;
    const size_t rows = (size_t)d.n * d.c;
    if (rows == 0 || p == 0)
        return 0;
    double *part = (double *)scratch;
    float *coef = coef_after_partials(scratch, sm_count, d.n, d.c, p);
    const int S = d.n * row_pieces(sm_count, d.n, d.c, p);
    int rc = channel_partials(s, sm_count, dy, x, y_relu, d.n, d.c, p, SUM_PLAIN, part);
    if (rc)
        return rc;
    bn_backward_finalize_kernel<<<(d.c + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        part, d.c, S, (double)d.n * (double)p, gamma, save_mean, save_invstd, dgamma, dbeta,
        coef);
    rc = launch_check("batch norm backward statistics");
    if (rc || !dx)
        return rc;
    const bool vec = vec4_ok(p, x, dy, dx, y_relu);
    const dim3 grid = row_grid(rows, vec ? p / 4 : p);
    const float4 *x4 = (const float4 *)x, *y4 = (const float4 *)y_relu;
    const float4 *dy4 = (const float4 *)dy;
    float4 *dx4 = (float4 *)dx;
    if (vec && y_relu)
        bn_backward_apply_kernel<float4, true>
            <<<grid, kThreads, 0, s>>>(x4, y4, dy4, dx4, rows, d.c, p / 4, coef, acc);
    else if (vec)
        bn_backward_apply_kernel<float4, false>
            <<<grid, kThreads, 0, s>>>(x4, nullptr, dy4, dx4, rows, d.c, p / 4, coef, acc);
    else if (y_relu)
        bn_backward_apply_kernel<float, true>
            <<<grid, kThreads, 0, s>>>(x, y_relu, dy, dx, rows, d.c, p, coef, acc);
    else
        bn_backward_apply_kernel<float, false>
            <<<grid, kThreads, 0, s>>>(x, nullptr, dy, dx, rows, d.c, p, coef, acc);
    return launch_check(y_relu ? "batch norm + relu backward" : "batch norm backward");
}

int pnx_cuk_relu_forward(cudaStream_t s, const float *x, float *y, size_t n)
{
    if (n == 0)
        return 0;
    if (vec4_ok(n, x, y, nullptr))
        relu_forward_kernel<<<grid_for(n / 4), kThreads, 0, s>>>((const float4 *)x, (float4 *)y,
                                                                 n / 4);
    else
        relu_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(x, y, n);
    return launch_check("relu");
}

int pnx_cuk_relu_backward(cudaStream_t s, const float *y, const float *dy, float *dx, size_t n)
{
    if (n == 0)
        return 0;
    if (vec4_ok(n, y, dy, dx))
        relu_backward_kernel<<<grid_for(n / 4), kThreads, 0, s>>>(
            (const float4 *)y, (const float4 *)dy, (float4 *)dx, n / 4);
    else
        relu_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(y, dy, dx, n);
    return launch_check("relu backward");
}

int pnx_cuk_maxpool_forward(cudaStream_t s, const float *x, pnx_dims xd, float *y,
                            uint8_t *argmax)
{
    const size_t planes = (size_t)xd.n * xd.c;
    const size_t total = planes * (size_t)(xd.h / 2) * (size_t)(xd.w / 2);
    if (total == 0)
        return 0;
    maxpool_forward_kernel<<<grid_for(total), kThreads, 0, s>>>(x, planes, xd.h, xd.w, y, argmax);
    return launch_check("max-pool");
}

int pnx_cuk_maxpool_backward(cudaStream_t s, pnx_dims xd, const uint8_t *argmax, const float *dy,
                             float *dx, int acc)
{
    const size_t planes = (size_t)xd.n * xd.c;
    const size_t total = planes * (size_t)xd.h * (size_t)xd.w;
    if (total == 0)
        return 0;
    maxpool_backward_kernel<<<grid_for(total), kThreads, 0, s>>>(planes, xd.h, xd.w, argmax, dy,
                                                                  dx, acc);
    return launch_check("max-pool backward");
}

int pnx_cuk_copy_rows(cudaStream_t s, float *dst, size_t dpitch, const float *src, size_t spitch,
                      size_t width, size_t rows, int accumulate)
{
    if (width == 0 || rows == 0)
        return 0;
    copy_rows_kernel<<<row_grid(rows, width), kThreads, 0, s>>>(dst, dpitch, src, spitch, width,
                                                                 rows, accumulate);
    return launch_check("channel copy");
}

size_t pnx_cuk_loss_scratch(void)
{
    return (size_t)(kLossBlocks + 1) * 4 * sizeof(double);
}

int pnx_cuk_loss_sums(cudaStream_t s, const float *logits, const float *target, size_t count,
                      void *scratch, double sums[4])
{
    double *part = (double *)scratch;
    double *total = part + (size_t)kLossBlocks * 4;
    loss_partial_kernel<<<kLossBlocks, kThreads, 0, s>>>(logits, target, count, part);
    int rc = launch_check("loss");
    if (rc)
        return rc;
    loss_total_kernel<<<1, kThreads, 0, s>>>(part, total);
    if ((rc = launch_check("loss total")))
        return rc;
    cudaError_t err = cudaMemcpyAsync(sums, total, 4 * sizeof(double), cudaMemcpyDeviceToHost, s);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(s);
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, "loss");
}

int pnx_cuk_loss_grad(cudaStream_t s, const float *logits, const float *target, size_t count,
                      float bce_weight, float dice_weight, double inter, double denom,
                      float *dlogits)
{
    if (count == 0)
        return 0;
    loss_grad_kernel<<<grid_for(count), kThreads, 0, s>>>(logits, target, count, bce_weight,
                                                          dice_weight, inter, denom, dlogits);
    return launch_check("loss gradient");
}

int pnx_cuk_adam_update(cudaStream_t s, float *param, const float *grad, float *m, float *v,
                        size_t n, const pnx_cuk_adam *a)
{
    if (n == 0)
        return 0;
    adam_kernel<<<grid_for(n), kThreads, 0, s>>>(param, grad, m, v, n, *a);
    return launch_check("Adam");
}
