/*
 * model/cuda/bf16_narrow.cu — direct bfloat16 NHWC kernels for the U-Net's
 * two single-channel convolutions (bf16_kernels.h, "narrow convolutions"):
 * the first 3×3 conv, whose input is the one-channel image, and the 1×1
 * head, whose output is the one-channel logit. cuDNN's bfloat16 NHWC
 * kernels are built for channel counts that are multiples of 8, and these
 * layers are memory-bound and tiny in FLOPs, so plain kernels are both the
 * safe choice and fast enough. The dialect is bf16_device.cuh's.
 *
 * Outputs (y, dx): one thread per output element, or per 8 adjacent
 * channels of one pixel when the channel count is a multiple of 8; float32
 * sums in a fixed order (taps, then channels), one rounding on store. The
 * 8-channel path and the single-element path never mix within one shape,
 * and aligned and unaligned loads visit the same values in the same order,
 * so alignment changes speed, never a result.
 *
 * Weight and bias gradients: two-pass reductions in double, as
 * bf16_reduce.cu: lane (slice j, channel group) sums pixels j, j+J, … into
 * partial[j][column], fold kernels add kFold consecutive slices at a time,
 * and one thread per column adds the rest and accumulates into the float32
 * gradient. The order depends on the shape only: bitwise reproducible.
 */
#include "model/cuda/bf16_device.cuh"

namespace {

/* Reduction lanes, about two blocks of 256 on each of an H100's 132 SMs.
 * A 3×3 lane keeps one kernel row (3 taps, plus the bias in row 0) of 8
 * channels: 32 sums in double, where all 9 taps would take ~250 registers
 * and one block an SM. Partials stay under 16 MiB for any channel count. */
constexpr size_t kLanes3x3 = (size_t)1 << 16;
constexpr size_t kLanes1x1 = (size_t)1 << 16;
/* A lane reads at least this many pixels, so that what it writes stays
 * small next to what it reads. */
constexpr size_t kMinPixelsPerLane = 64;
/* Slices added per fold step, and the most the final per-column pass adds. */
constexpr size_t kFold = 32;

/* Columns of the partial sums: 3×3 with one input channel has 9 weight
 * taps and the bias per output channel; 1×1 with one output channel has
 * one weight per input channel and the bias. */
__host__ __device__ __forceinline__ size_t width_3x3(int k)
{
    return 10 * (size_t)k;
}

__host__ __device__ __forceinline__ size_t width_1x1(int c)
{
    return (size_t)c + 1;
}

/* How a reduction over P pixels of C channels is cut: a lane takes 8
 * channels when C is a multiple of 8 (one 16-byte item), else one;
 * `groups` channel groups cover a pixel, each split into `parts` lanes
 * (3×3: one a kernel row); lane t = (j·groups + g)·parts + part reads
 * pixels j, j + slices, … */
struct narrow_plan {
    bool vec;
    size_t groups, parts, slices, lanes, width;
};

narrow_plan plan_narrow(size_t pixels, int c, size_t parts, size_t max_lanes, size_t width)
{
    narrow_plan pl;
    pl.vec = c % 8 == 0;
    pl.groups = pl.vec ? (size_t)c / 8 : (size_t)c;
    pl.parts = parts;
    size_t slices = ceil_div(max_lanes, pl.groups * parts);
    const size_t by_work = ceil_div(pixels, kMinPixelsPerLane);
    if (slices > by_work)
        slices = by_work;
    pl.slices = slices < 1 ? 1 : slices;
    pl.lanes = pl.slices * pl.groups * parts;
    pl.width = width;
    return pl;
}

size_t align_up(size_t v)
{
    return (v + 255) / 256 * 256;
}

/* Scratch: partials A (slices × width doubles) and B (the first fold's
 * output), each on a 256-byte boundary counted inside the caller's buffer
 * (any alignment: 256 bytes spare). */
size_t narrow_scratch_bytes(const narrow_plan &pl)
{
    return 256 + align_up(pl.slices * pl.width * sizeof(double)) +
           align_up(ceil_div(pl.slices, kFold) * pl.width * sizeof(double));
}

void split_narrow_scratch(void *scratch, const narrow_plan &pl, double **a, double **b)
{
    char *p = (char *)scratch + (256 - (uintptr_t)scratch % 256) % 256;
    *a = (double *)p;
    *b = (double *)(p + align_up(pl.slices * pl.width * sizeof(double)));
}

/* ---- the 3×3 window of a one-channel image ------------------------------------------ */

/* Pixel q of an (N,H,W) grid: image n, row y, column x. 32-bit division
 * where q allows: a 64-bit one costs several times as many instructions,
 * and these kernels divide once per pixel or item. */
__device__ __forceinline__ void pixel_pos(size_t q, int h, int w, size_t &n, int &y, int &x)
{
    if (q <= 0xffffffffu) {
        const uint32_t q32 = (uint32_t)q, t = q32 / (uint32_t)w;
        x = (int)(q32 - t * (uint32_t)w);
        y = (int)(t % (uint32_t)h);
        n = t / (uint32_t)h;
        return;
    }
    x = (int)(q % (size_t)w);
    const size_t t = q / (size_t)w;
    y = (int)(t % (size_t)h);
    n = t / (size_t)h;
}

/* The 3×3 window of x (N,H,W) around pixel q, tap t = 3·ky + kx at
 * (y + ky − 1, x + kx − 1). Returns the mask of taps inside the image
 * (padding taps are skipped, as ops_ref.c skips them); v of the others is 0. */
__device__ __forceinline__ unsigned window3(const pnx_bf16 *x, size_t q, int h, int w, float v[9])
{
    size_t n;
    int yy, xx;
    pixel_pos(q, h, w, n, yy, xx);
    unsigned mask = 0;
PNX_UNROLL
    for (int t = 0; t < 9; t++) {
        const int iy = yy + t / 3 - 1, ix = xx + t % 3 - 1;
        const bool in = iy >= 0 && iy < h && ix >= 0 && ix < w;
        v[t] = in ? bf2f(x[(n * (size_t)h + (size_t)iy) * (size_t)w + (size_t)ix]) : 0.0f;
        mask |= in ? 1u << t : 0u;
    }
    return mask;
}

/* ---- 3×3, one input channel: forward --------------------------------------------------- */

/* y (P,K) = Σ_t w[k,0,t]·window_t + bias[k], indexed by y's elements. */
struct conv3x3_in1_op {
    const pnx_bf16 *x;
    pnx_bf16 *y;
    const float *w, *bias;
    int k, h, wd;
    __device__ int period() const
    {
        return k;
    }
    __device__ __forceinline__ float out(const float v[9], unsigned mask, int ch) const
    {
        const float *wk = w + 9 * (size_t)ch;
        float acc = 0.0f;
PNX_UNROLL
        for (int t = 0; t < 9; t++)
            if (mask >> t & 1u)
                acc += wk[t] * v[t];
        return bias ? acc + bias[ch] : acc;
    }
    __device__ void one(size_t e, size_t q, int ch) const
    {
        float v[9];
        const unsigned mask = window3(x, q, h, wd, v);
        y[e] = f2bf(out(v, mask, ch));
    }
    template <bool A>
    __device__ void vec(size_t item, size_t q, int ch) const
    {
        float v[9], f[8];
        const unsigned mask = window3(x, q, h, wd, v);
PNX_UNROLL
        for (int i = 0; i < 8; i++)
            f[i] = out(v, mask, ch + i);
        uint32_t words[4];
        pack8(f, words);
        store8<A>(y + 8 * item, words);
    }
};

/* ---- 3×3, one input channel: dx ------------------------------------------------------- */

/* dx (P,1) (+)= Σ_t Σ_k dy(pixel shifted by −t, k)·w[k,0,t]: one thread a
 * pixel. V: K a multiple of 8, dy read 8 channels at a time; A: dy 16-byte
 * aligned. */
template <bool V, bool A>
__global__ void conv3x3_in1_dx_kernel(const pnx_bf16 *dy, const float *w, int k, size_t pixels,
                                      int h, int wd, int acc, pnx_bf16 *dx)
{
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < pixels;
         q += (size_t)gridDim.x * blockDim.x) {
        size_t n;
        int yy, xx;
        pixel_pos(q, h, wd, n, yy, xx);
        float sum = 0.0f;
        for (int t = 0; t < 9; t++) {
            const int oy = yy - t / 3 + 1, ox = xx - t % 3 + 1;
            if (oy < 0 || oy >= h || ox < 0 || ox >= wd)
                continue;
            const pnx_bf16 *row = dy + ((n * (size_t)h + (size_t)oy) * (size_t)wd + (size_t)ox) *
                                           (size_t)k;
            if constexpr (V) {
                for (int c0 = 0; c0 < k; c0 += 8) {
                    uint32_t words[4];
                    float f[8];
                    load8<A>(row + c0, words);
                    unpack8(words, f);
PNX_UNROLL
                    for (int i = 0; i < 8; i++)
                        sum += f[i] * w[9 * (size_t)(c0 + i) + t];
                }
            } else {
                for (int ch = 0; ch < k; ch++)
                    sum += bf2f(row[ch]) * w[9 * (size_t)ch + t];
            }
        }
        dx[q] = f2bf(acc ? bf2f(dx[q]) + sum : sum);
    }
}

/* ---- 3×3, one input channel: dw, db sums ------------------------------------------------- */

/* Lane t = (j·groups + g)·3 + ky sums, over pixels j, j + slices, …, for
 * its channels k: Σ dy(p,k)·window_tap(p) over the taps of kernel row ky
 * (column tap·K + k) and, in row 0, Σ dy(p,k) (column 9K + k), into
 * part[j·width + column]. The three lanes of a pixel's channels are
 * adjacent and load the same dy. Products of two bfloat16 are exact in
 * double. */
template <bool V, bool A>
__global__ void conv3x3_in1_sums_kernel(const pnx_bf16 *x, const pnx_bf16 *dy, size_t pixels,
                                        int k, int h, int wd, size_t groups, size_t slices,
                                        size_t width, double *part)
{
    constexpr int L = V ? 8 : 1;
    const size_t lanes = slices * groups * 3;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < lanes;
         t += (size_t)gridDim.x * blockDim.x) {
        const int ky = (int)(t % 3);
        const size_t j = t / 3 / groups;
        const int c0 = (int)(t / 3 % groups) * L;
        double s[4][L]; /* taps kx = 0, 1, 2 of row ky; the bias */
PNX_UNROLL
        for (int r = 0; r < 4; r++) {
PNX_UNROLL
            for (int i = 0; i < L; i++)
                s[r][i] = 0.0;
        }
        for (size_t q = j; q < pixels; q += slices) {
            size_t n;
            int yy, xx;
            pixel_pos(q, h, wd, n, yy, xx);
            const int iy = yy + ky - 1;
            float d[L];
            const pnx_bf16 *row = dy + q * (size_t)k + (size_t)c0;
            if constexpr (V) {
                uint32_t words[4];
                load8<A>(row, words);
                unpack8(words, d);
            } else {
                d[0] = bf2f(row[0]);
            }
            if (ky == 0) {
PNX_UNROLL
                for (int i = 0; i < L; i++)
                    s[3][i] += d[i];
            }
            if (iy < 0 || iy >= h)
                continue;
            const pnx_bf16 *xrow = x + (n * (size_t)h + (size_t)iy) * (size_t)wd;
PNX_UNROLL
            for (int kx = 0; kx < 3; kx++) {
                const int ix = xx + kx - 1;
                if (ix < 0 || ix >= wd)
                    continue;
                const double v = bf2f(xrow[ix]);
PNX_UNROLL
                for (int i = 0; i < L; i++)
                    s[kx][i] += (double)d[i] * v;
            }
        }
        double *out = part + j * width;
PNX_UNROLL
        for (int kx = 0; kx < 3; kx++) {
PNX_UNROLL
            for (int i = 0; i < L; i++)
                out[(size_t)(3 * ky + kx) * k + (size_t)(c0 + i)] = s[kx][i];
        }
        if (ky == 0) {
PNX_UNROLL
            for (int i = 0; i < L; i++)
                out[(size_t)9 * k + (size_t)(c0 + i)] = s[3][i];
        }
    }
}

/* dw (K,1,3,3) += column tap·K + k, db (K) += column 9K + k: one thread
 * a column. */
__global__ void conv3x3_in1_finalize_kernel(const double *part, size_t rows, int k, float *dw,
                                            float *db)
{
    const size_t width = width_3x3(k);
    for (size_t col = blockIdx.x * (size_t)blockDim.x + threadIdx.x; col < width;
         col += (size_t)gridDim.x * blockDim.x) {
        double s = 0.0;
        for (size_t r = 0; r < rows; r++)
            s += part[r * width + col];
        const size_t tap = col / (size_t)k, ch = col % (size_t)k;
        if (tap < 9)
            dw[9 * ch + tap] += (float)s;
        else
            db[ch] += (float)s;
    }
}

/* ---- 1×1, one output channel ------------------------------------------------------------- */

/* y (P,1) = Σ_c w[c]·x (P,C) + bias[0]: one thread a pixel. V: C a
 * multiple of 8; A: x 16-byte aligned. */
template <bool V, bool A>
__global__ void conv1x1_out1_forward_kernel(const pnx_bf16 *x, size_t pixels, int c,
                                            const float *w, const float *bias, pnx_bf16 *y)
{
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < pixels;
         q += (size_t)gridDim.x * blockDim.x) {
        const pnx_bf16 *row = x + q * (size_t)c;
        float acc = 0.0f;
        if constexpr (V) {
            for (int c0 = 0; c0 < c; c0 += 8) {
                uint32_t words[4];
                float f[8];
                load8<A>(row + c0, words);
                unpack8(words, f);
PNX_UNROLL
                for (int i = 0; i < 8; i++)
                    acc += w[c0 + i] * f[i];
            }
        } else {
            for (int ch = 0; ch < c; ch++)
                acc += w[ch] * bf2f(row[ch]);
        }
        y[q] = f2bf(bias ? acc + bias[0] : acc);
    }
}

/* dx (P,C) (+)= dy (P,1)·w[c], indexed by dx's elements. */
struct conv1x1_out1_dx_op {
    const pnx_bf16 *dy;
    const float *w;
    pnx_bf16 *dx;
    int c, acc;
    __device__ int period() const
    {
        return c;
    }
    __device__ void one(size_t e, size_t q, int ch) const
    {
        const float v = bf2f(dy[q]) * w[ch];
        dx[e] = f2bf(acc ? bf2f(dx[e]) + v : v);
    }
    template <bool A>
    __device__ void vec(size_t item, size_t q, int ch) const
    {
        const float d = bf2f(dy[q]);
        uint32_t words[4] = {0, 0, 0, 0};
        float f[8];
        if (acc)
            load8<A>(dx + 8 * item, words);
        unpack8(words, f);
PNX_UNROLL
        for (int i = 0; i < 8; i++) {
            const float v = d * w[ch + i];
            f[i] = acc ? f[i] + v : v;
        }
        pack8(f, words);
        store8<A>(dx + 8 * item, words);
    }
};

/* Lane t = j·groups + g sums, over pixels j, j + slices, …, Σ dy(p)·x(p,c)
 * for its channels (column c) and, in group 0, Σ dy(p) (column C). */
template <bool V, bool A>
__global__ void conv1x1_out1_sums_kernel(const pnx_bf16 *x, const pnx_bf16 *dy, size_t pixels,
                                         int c, size_t groups, size_t slices, size_t width,
                                         double *part)
{
    constexpr int L = V ? 8 : 1;
    const size_t lanes = slices * groups;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < lanes;
         t += (size_t)gridDim.x * blockDim.x) {
        const size_t j = t / groups;
        const int c0 = (int)(t % groups) * L;
        double s[L], sb = 0.0;
PNX_UNROLL
        for (int i = 0; i < L; i++)
            s[i] = 0.0;
        for (size_t q = j; q < pixels; q += slices) {
            const float d = bf2f(dy[q]);
            float f[L];
            const pnx_bf16 *row = x + q * (size_t)c + (size_t)c0;
            if constexpr (V) {
                uint32_t words[4];
                load8<A>(row, words);
                unpack8(words, f);
            } else {
                f[0] = bf2f(row[0]);
            }
            sb += d;
PNX_UNROLL
            for (int i = 0; i < L; i++)
                s[i] += (double)d * f[i];
        }
        double *out = part + j * width;
PNX_UNROLL
        for (int i = 0; i < L; i++)
            out[c0 + i] = s[i];
        if (c0 == 0)
            out[c] = sb;
    }
}

/* dw (1,C,1,1) += column c, db (1) += column C: one thread a column. */
__global__ void conv1x1_out1_finalize_kernel(const double *part, size_t rows, int c, float *dw,
                                             float *db)
{
    const size_t width = width_1x1(c);
    for (size_t col = blockIdx.x * (size_t)blockDim.x + threadIdx.x; col < width;
         col += (size_t)gridDim.x * blockDim.x) {
        double s = 0.0;
        for (size_t r = 0; r < rows; r++)
            s += part[r * width + col];
        if (col < (size_t)c)
            dw[col] += (float)s;
        else
            db[0] += (float)s;
    }
}

/* ---- folds ----------------------------------------------------------------------------- */

/* out row q = Σ in rows q·kFold … q·kFold + kFold − 1 (below rows), in order. */
__global__ void narrow_fold_kernel(const double *in, size_t rows, size_t width, double *out)
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

/* Folds the partials in a (pl.slices rows) until at most kFold rows remain,
 * alternating with b: *total points at them, *rows says how many. */
int fold_partials(const char *what, cudaStream_t s, const narrow_plan &pl, double *a, double *b,
                  const double **total, size_t *rows)
{
    size_t r = pl.slices;
    while (r > kFold) {
        const size_t next = ceil_div(r, kFold);
        const int rc = PNX_LAUNCH(what, narrow_fold_kernel, blocks_for(next * pl.width), kThreads,
                                  s, a, r, pl.width, b);
        if (rc)
            return rc;
        double *t = a;
        a = b;
        b = t;
        r = next;
    }
    *total = a;
    *rows = r;
    return 0;
}

} // namespace

/* ---- launchers (C linkage) ---------------------------------------------------------- */

size_t pnx_bfk_conv3x3_in1_scratch(size_t pixels, int k)
{
    if (pixels == 0 || k <= 0)
        return 0;
    return narrow_scratch_bytes(plan_narrow(pixels, k, 3, kLanes3x3, width_3x3(k)));
}

size_t pnx_bfk_conv1x1_out1_scratch(size_t pixels, int c)
{
    if (pixels == 0 || c <= 0)
        return 0;
    return narrow_scratch_bytes(plan_narrow(pixels, c, 1, kLanes1x1, width_1x1(c)));
}

int pnx_bfk_conv3x3_in1_forward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, const float *w,
                                const float *bias, int k, pnx_bf16 *y)
{
    if (xd.n <= 0 || xd.h <= 0 || xd.w <= 0 || k <= 0)
        return 0;
    const size_t pixels = (size_t)xd.n * (size_t)xd.h * (size_t)xd.w;
    const conv3x3_in1_op op = {x, y, w, bias, k, xd.h, xd.w};
    return launch_map("3x3 convolution of one channel", s, op, pixels * (size_t)k, k % 8 == 0,
                      aligned16(y));
}

int pnx_bfk_conv3x3_in1_backward(cudaStream_t s, const pnx_bf16 *x, pnx_dims xd, const float *w,
                                 int k, const pnx_bf16 *dy, pnx_bf16 *dx, int acc, float *dw,
                                 float *db, void *scratch)
{
    if (xd.n <= 0 || xd.h <= 0 || xd.w <= 0 || k <= 0)
        return 0;
    const char *what = "3x3 convolution of one channel, backward";
    const size_t pixels = (size_t)xd.n * (size_t)xd.h * (size_t)xd.w;
    const bool vec = k % 8 == 0, al = aligned16(dy);
    int rc;
    if (dx) {
        const auto kernel = vec && al ? &conv3x3_in1_dx_kernel<true, true>
                            : vec     ? &conv3x3_in1_dx_kernel<true, false>
                                      : &conv3x3_in1_dx_kernel<false, false>;
        rc = PNX_LAUNCH(what, kernel, blocks_for(pixels), kThreads, s, dy, w, k, pixels, xd.h,
                        xd.w, acc, dx);
        if (rc)
            return rc;
    }
    const narrow_plan pl = plan_narrow(pixels, k, 3, kLanes3x3, width_3x3(k));
    double *a, *b;
    split_narrow_scratch(scratch, pl, &a, &b);
    const auto sums = pl.vec && al ? &conv3x3_in1_sums_kernel<true, true>
                      : pl.vec     ? &conv3x3_in1_sums_kernel<true, false>
                                   : &conv3x3_in1_sums_kernel<false, false>;
    rc = PNX_LAUNCH(what, sums, blocks_for(pl.lanes), kThreads, s, x, dy, pixels, k, xd.h, xd.w,
                    pl.groups, pl.slices, pl.width, a);
    const double *total = nullptr;
    size_t rows = 0;
    if (!rc)
        rc = fold_partials(what, s, pl, a, b, &total, &rows);
    if (!rc)
        rc = PNX_LAUNCH(what, conv3x3_in1_finalize_kernel, blocks_for(pl.width), kThreads, s,
                        total, rows, k, dw, db);
    return rc;
}

int pnx_bfk_conv1x1_out1_forward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                                 const float *w, const float *bias, pnx_bf16 *y)
{
    if (pixels == 0 || c <= 0)
        return 0;
    const char *what = "1x1 convolution to one channel";
    const bool vec = c % 8 == 0;
    const auto kernel = vec && aligned16(x) ? &conv1x1_out1_forward_kernel<true, true>
                        : vec               ? &conv1x1_out1_forward_kernel<true, false>
                                            : &conv1x1_out1_forward_kernel<false, false>;
    return PNX_LAUNCH(what, kernel, blocks_for(pixels), kThreads, s, x, pixels, c, w, bias, y);
}

int pnx_bfk_conv1x1_out1_backward(cudaStream_t s, const pnx_bf16 *x, size_t pixels, int c,
                                  const float *w, const pnx_bf16 *dy, pnx_bf16 *dx, int acc,
                                  float *dw, float *db, void *scratch)
{
    if (pixels == 0 || c <= 0)
        return 0;
    const char *what = "1x1 convolution to one channel, backward";
    int rc;
    if (dx) {
        const conv1x1_out1_dx_op op = {dy, w, dx, c, acc};
        if ((rc = launch_map(what, s, op, pixels * (size_t)c, c % 8 == 0, aligned16(dx))))
            return rc;
    }
    const narrow_plan pl = plan_narrow(pixels, c, 1, kLanes1x1, width_1x1(c));
    double *a, *b;
    split_narrow_scratch(scratch, pl, &a, &b);
    const auto sums = pl.vec && aligned16(x) ? &conv1x1_out1_sums_kernel<true, true>
                      : pl.vec               ? &conv1x1_out1_sums_kernel<true, false>
                                             : &conv1x1_out1_sums_kernel<false, false>;
    rc = PNX_LAUNCH(what, sums, blocks_for(pl.lanes), kThreads, s, x, dy, pixels, c, pl.groups,
                    pl.slices, pl.width, a);
    const double *total = nullptr;
    size_t rows = 0;
    if (!rc)
        rc = fold_partials(what, s, pl, a, b, &total, &rows);
    if (!rc)
        rc = PNX_LAUNCH(what, conv1x1_out1_finalize_kernel, blocks_for(pl.width), kThreads, s,
                        total, rows, c, dw, db);
    return rc;
}
