/*
 * model/cuda/bf16_reduce.cu — the bfloat16 NHWC kernels that reduce over
 * pixels per channel (bf16_kernels.h): the bias gradient and BatchNorm
 * (+ReLU) forward and backward. The dialect is bf16_device.cuh's.
 *
 * A reduction is two kernels plus folds, all in double: lane (slice j,
 * channels) sums pixels j, j+J, j+2J, … into partial[j][channel] (J slices
 * sized to fill an H100's 132 SMs; adjacent lanes read adjacent channels,
 * so every load is coalesced), fold kernels add kFold consecutive slices
 * at a time until at most kFold remain (a single thread per channel adding
 * thousands of slices would be latency-bound), and one thread per channel
 * adds those and finishes the statistics. The order depends on the shape
 * only, so results are bitwise reproducible.
 */
#include "model/cuda/bf16_device.cuh"

namespace {

/* Reduction lanes: 2^17 threads keep about one 16-byte load in flight per
 * thread on 132 SMs × 1024 threads, which saturates HBM3. */
constexpr size_t kReduceLanes = (size_t)1 << 17;
/* A lane reads at least this many items (vectors or elements), so the
 * partial sums it writes stay small next to what it reads. */
constexpr size_t kMinItemsPerLane = 64;
/* Slices added per fold step, and the most the final per-channel pass adds. */
constexpr size_t kFold = 32;

/* A channel's four BatchNorm coefficients, stored together so that one
 * 16-byte load fetches them (coef is 16-byte aligned in the scratch). */
__device__ __forceinline__ float4 coef4(const float *coef, int ch)
{
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const float4 *>(coef + 4 * ch);
#else
    float4 v;
    host_check_aligned(coef + 4 * ch, 16);
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
    __device__ int period() const
    {
        return c;
    }
    __device__ __forceinline__ float f(float xv, int ch) const
    {
        const float4 k = coef4(coef, ch);
        const float v = ((xv - k.z) - k.w) * k.x + k.y;
        return relu && !(v > 0.0f) ? 0.0f : v;
    }
    __device__ void one(size_t e, size_t, int ch) const
    {
        y[e] = f2bf(f(bf2f(x[e]), ch));
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int ch) const
    {
        uint32_t w[4];
        float g[8];
        load8<A>(x + 8 * v, w);
        unpack8(w, g);
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
    __device__ int period() const
    {
        return c;
    }
    __device__ __forceinline__ float f(float xv, float yv, float dyv, float prev, int ch) const
    {
        const float dz = y_relu && !(yv > 0.0f) ? 0.0f : dyv;
        const float4 k = coef4(coef, ch);
        const float v = k.x * dz + k.y * (xv - k.w) + k.z;
        return acc ? prev + v : v;
    }
    __device__ void one(size_t e, size_t, int ch) const
    {
        const float yv = y_relu ? bf2f(y_relu[e]) : 0.0f;
        const float prev = acc ? bf2f(dx[e]) : 0.0f;
        dx[e] = f2bf(f(bf2f(x[e]), yv, bf2f(dy[e]), prev, ch));
    }
    template <bool A>
    __device__ void vec(size_t v, size_t, int ch) const
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
        for (int i = 0; i < 8; i++, ch = next_channel(ch, c))
            pv[i] = f(xv[i], yv[i], dyv[i], pv[i], ch);
        pack8(pv, w);
        store8<A>(dx + 8 * v, w);
    }
};

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
    size_t slices = ceil_div(kReduceLanes, pl.groups);
    const size_t by_work = ceil_div(rows, kMinItemsPerLane);
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
 * coefficients (4C floats), each on a 256-byte boundary counted from the
 * first one inside the caller's buffer (any alignment: 256 bytes spare).
 * With at most 2^17 lanes of 8 channels, A stays under 16 MiB whatever
 * the shape. */
struct scratch_parts {
    double *a, *b;
    float *coef;
};

size_t scratch_bytes(const reduce_plan &pl, int c)
{
    const size_t width = 2 * (size_t)c;
    return 256 + align_up(pl.slices * width * sizeof(double)) +
           align_up(ceil_div(pl.slices, kFold) * width * sizeof(double)) +
           align_up(4 * (size_t)c * sizeof(float));
}

scratch_parts split_scratch(void *scratch, const reduce_plan &pl, int c)
{
    const size_t width = 2 * (size_t)c;
    char *p = (char *)scratch + (256 - (uintptr_t)scratch % 256) % 256;
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

} // namespace

/* ---- launchers (C linkage) ---------------------------------------------------------- */

size_t pnx_bfk_channel_scratch(size_t pixels, int c)
{
    if (pixels == 0 || c <= 0)
        return 0;
    return scratch_bytes(plan_reduce(pixels, c), c);
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

