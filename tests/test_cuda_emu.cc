/*
 * tests/test_cuda_emu.cc — the bfloat16 NHWC kernels (model/cuda/
 * bf16_kernels.cu, bf16_reduce.cu, bf16_narrow.cu), run on the CPU by the
 * grid emulator (tests/cuda_emu.h), against the reference ops
 * (model/ops_ref.c, float32 NCHW) on the same inputs rounded to bfloat16,
 * and against double-precision oracles.
 *
 * "Device memory" here is host memory as cudaMalloc would give it (256-byte
 * aligned), filled with NaN bytes (0xff) so that an output a kernel forgets
 * to write shows, and fenced by guard bytes checked when it is freed, so
 * that a write past a buffer (scratch included) fails the test. Scratch is
 * also handed over misaligned: the kernels must cope.
 *
 * Every case runs under four emulator settings (threads forward, backward,
 * and with grids and blocks cut down to a few threads) and must give the
 * same bytes each time: a kernel whose threads depend on one another, or on
 * its grid covering all the work, fails here. Cases with 16-byte vectors
 * also run on pointers one element off alignment (the scalar loads) and
 * must give the same bytes again.
 *
 * Tolerances. bfloat16 keeps 8 significant bits, so rounding to nearest
 * has unit roundoff u = 2^-8 ≈ 3.9e-3: |fl(v) − v| ≤ u·|v|. A result
 * computed in float32/double and rounded once to bfloat16 is therefore
 * within u of the exact value element by element, hence normwise
 * (‖ŷ − y‖₂ ≤ u·‖y‖₂). The reference computes in float32 on the same
 * bfloat16 inputs, so kernel and reference differ by u plus float32 noise
 * (≈ 1e-6 relative to the terms): normwise bounds are 2u. Results the
 * kernels keep in float32 from double sums (parameter gradients, BatchNorm
 * statistics, loss sums) differ from the reference only by float32
 * rounding and summation order: 1e-5. Selections and copies (layouts of
 * representable values, max-pool, concat/split, ReLU, bias) are exact.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tests/cuda_emu.h"

extern "C" {
#include <cmocka.h>

#include "common/rng.h"
#include "model/backend.h"
#include "model/ops_ref.h"
}
#include "model/cuda/bf16_kernels.h"

namespace {

constexpr double kU = 1.0 / 256; /* bfloat16's unit roundoff, 2^-8 */
constexpr double kOnce = 2 * kU; /* one bfloat16 rounding + float32 noise */
constexpr double kSums = 1e-5;   /* float32 results of double sums */

pnx_rng rng;

/* ---- bfloat16 on the host, written independently of cuda_bf16.h ---------------- */

uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float from_bf16(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float round_bf16(float f)
{
    return from_bf16(to_bf16(f));
}

/* n bfloat16-representable values, uniform in [-scale, scale] + offset. */
std::vector<float> random_values(size_t n, double scale, double offset = 0.0)
{
    std::vector<float> v(n);
    for (auto &x : v)
        x = round_bf16((float)(offset + scale * (2.0 * pnx_rng_uniform(&rng) - 1.0)));
    return v;
}

std::vector<float> random_floats(size_t n, double scale)
{
    std::vector<float> v(n);
    for (auto &x : v)
        x = (float)(scale * (2.0 * pnx_rng_uniform(&rng) - 1.0));
    return v;
}

/* ---- layouts on the host ---------------------------------------------------------- */

size_t pixels_of(pnx_dims d)
{
    return (size_t)d.n * d.h * d.w;
}

std::vector<uint16_t> to_nhwc(const std::vector<float> &nchw, pnx_dims d)
{
    std::vector<uint16_t> out(pnx_dims_count(d));
    const size_t hw = (size_t)d.h * d.w;
    for (int n = 0; n < d.n; n++)
        for (int c = 0; c < d.c; c++)
            for (size_t p = 0; p < hw; p++)
                out[((size_t)n * hw + p) * d.c + c] = to_bf16(nchw[((size_t)n * d.c + c) * hw + p]);
    return out;
}

std::vector<float> to_nchw(const uint16_t *nhwc, pnx_dims d)
{
    std::vector<float> out(pnx_dims_count(d));
    const size_t hw = (size_t)d.h * d.w;
    for (int n = 0; n < d.n; n++)
        for (int c = 0; c < d.c; c++)
            for (size_t p = 0; p < hw; p++)
                out[((size_t)n * d.c + c) * hw + p] = from_bf16(nhwc[((size_t)n * hw + p) * d.c + c]);
    return out;
}

std::vector<float> floats_of(const std::vector<uint16_t> &b)
{
    std::vector<float> out(b.size());
    for (size_t i = 0; i < b.size(); i++)
        out[i] = from_bf16(b[i]);
    return out;
}

/* ---- "device" memory ---------------------------------------------------------------- */

constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xa5;

struct dev_block {
    unsigned char *base;
    size_t front, bytes; /* data at base + front */
};
std::vector<dev_block> live;

/* bytes of device memory, misalign bytes past a 256-byte boundary. */
void *dev_alloc(size_t bytes, size_t misalign = 0)
{
    const size_t front = kGuard + misalign;
    const size_t total = (front + bytes + kGuard + 255) / 256 * 256;
    unsigned char *base = (unsigned char *)aligned_alloc(256, total);
    assert_non_null(base);
    memset(base, kGuardByte, total);
    memset(base + front, 0xff, bytes);
    live.push_back({base, front, bytes});
    return base + front;
}

template <class T>
T *dev_copy(const std::vector<T> &v, size_t misalign = 0)
{
    T *p = (T *)dev_alloc(v.size() * sizeof(T), misalign);
    if (!v.empty())
        memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
}

template <class T>
std::vector<T> host_copy(const T *p, size_t n)
{
    return std::vector<T>(p, p + n);
}

void dev_free_all(void)
{
    for (const dev_block &b : live) {
        const size_t total = (b.front + b.bytes + kGuard + 255) / 256 * 256;
        for (size_t i = 0; i < total; i++)
            if ((i < b.front || i >= b.front + b.bytes) && b.base[i] != kGuardByte)
                fail_msg("a kernel wrote %s a buffer of %zu bytes (guard byte %zu)",
                         i < b.front ? "before" : "past", b.bytes, i);
        free(b.base);
    }
    live.clear();
}

/* ---- results under every emulator setting -------------------------------------------- */

struct results {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> items;
    template <class T>
    void add(const char *name, const std::vector<T> &v)
    {
        std::vector<unsigned char> bytes(v.size() * sizeof(T));
        if (!v.empty())
            memcpy(bytes.data(), v.data(), bytes.size());
        items.emplace_back(name, std::move(bytes));
    }
    template <class T>
    std::vector<T> get(const char *name) const
    {
        for (const auto &it : items)
            if (it.first == name) {
                std::vector<T> v(it.second.size() / sizeof(T));
                if (!v.empty())
                    memcpy(v.data(), it.second.data(), it.second.size());
                return v;
            }
        fail_msg("no result named %s", name);
        return {};
    }
};

void assert_same(const results &a, const results &b, const char *what)
{
    assert_int_equal(a.items.size(), b.items.size());
    for (size_t i = 0; i < a.items.size(); i++)
        if (a.items[i].second != b.items[i].second)
            fail_msg("%s: %s differs", what, a.items[i].first.c_str());
}

const pnx_emu_settings kSettings[] = {
    {0, 0, 0},  /* as launched, threads in order */
    {1, 0, 0},  /* threads in reverse */
    {0, 3, 64}, /* at most 3 blocks of 64: grid-stride loops do the rest */
    {1, 1, 33}, /* one block of 33, in reverse */
};

/* f(misalign) under every setting; with vectors, also misaligned by one
 * bfloat16 (2 bytes). Returns the first run's results. */
results run_all(const std::function<results(size_t)> &f, bool also_misaligned = true)
{
    results first;
    const int aligns = also_misaligned ? 2 : 1;
    for (int a = 0; a < aligns; a++)
        for (size_t s = 0; s < sizeof kSettings / sizeof kSettings[0]; s++) {
            pnx_emu = kSettings[s];
            pnx_clear_error();
            results r = f(a ? 2 : 0);
            dev_free_all();
            if (a == 0 && s == 0) {
                first = std::move(r);
                continue;
            }
            char what[96];
            snprintf(what, sizeof what, "emulator setting %zu%s", s, a ? ", misaligned" : "");
            assert_same(first, r, what);
        }
    pnx_emu = kSettings[0];
    return first;
}

/* ---- comparisons -------------------------------------------------------------------- */

/* ‖a − b‖₂ / ‖b‖₂ (NaN anywhere: infinity). */
double normwise(const std::vector<float> &a, const std::vector<float> &b)
{
    assert_int_equal(a.size(), b.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        const double d = (double)a[i] - b[i];
        if (isnan(d))
            return INFINITY;
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
}

#define ASSERT_NORMWISE(a, b, tol, ...)                                                   \
    do {                                                                                  \
        const double e_ = normwise((a), (b));                                             \
        if (!(e_ <= (tol))) {                                                             \
            char w_[160];                                                                 \
            snprintf(w_, sizeof w_, __VA_ARGS__);                                         \
            fail_msg("%s: %s vs %s: normwise error %.3g > %.3g", w_, #a, #b, e_,          \
                     (double)(tol));                                                      \
        }                                                                                 \
    } while (0)

/* Equal as values (NaN equals NaN, −0 equals +0). */
void assert_values_equal(const std::vector<float> &a, const std::vector<float> &b,
                         const char *what)
{
    assert_int_equal(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            fail_msg("%s: element %zu is %.9g, expected %.9g", what, i, a[i], b[i]);
}

std::vector<float> rounded(const std::vector<float> &v)
{
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); i++)
        out[i] = round_bf16(v[i]);
    return out;
}

std::string dims_str(pnx_dims d)
{
    char s[64];
    snprintf(s, sizeof s, "%dx%dx%dx%d", d.n, d.c, d.h, d.w);
    return s;
}

const cudaStream_t kStream = nullptr;

/* Shapes: C = 1, 2, 3, 5, 8, 48, 64; odd sizes; P·C not a multiple of 8
 * (scalar path) and a multiple (vectors). */
const pnx_dims kShapes[] = {
    {2, 1, 5, 7}, {1, 1, 8, 9}, {3, 3, 5, 7}, {2, 5, 9, 3},  {2, 2, 4, 5},
    {1, 4, 3, 3}, {2, 8, 3, 5}, {2, 48, 7, 9}, {1, 64, 13, 11}, {3, 64, 1, 1},
};
/* Large enough that the reductions fold twice (more than 1024 slices). */
const pnx_dims kLargeShapes[] = {{2, 1, 512, 520}, {1, 3, 300, 240}, {2, 64, 181, 199}};

/* ---- the emulator itself -------------------------------------------------------------- */

__global__ void count_kernel(unsigned *hits, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        hits[i]++;
}

void test_emulator(void **state)
{
    (void)state;
    std::vector<unsigned> hits(1000, 0);
    for (const pnx_emu_settings &s : kSettings) {
        pnx_emu = s;
        assert_int_equal(PNX_LAUNCH("count", count_kernel, 4u, 128u, kStream, hits.data(),
                                    hits.size()),
                         0);
    }
    pnx_emu = kSettings[0];
    for (unsigned h : hits)
        assert_int_equal(h, sizeof kSettings / sizeof kSettings[0]);
    /* Configurations a GPU refuses fail as a failed launch does. */
    assert_int_equal(PNX_LAUNCH("count", count_kernel, 1u, 1025u, kStream, hits.data(), 0), PNX_EDEVICE);
    assert_int_equal(PNX_LAUNCH("count", count_kernel, 0u, 32u, kStream, hits.data(), 0), PNX_EDEVICE);
    assert_int_equal(PNX_LAUNCH("count", count_kernel, 1ull << 31, 32u, kStream, hits.data(), 0),
                     PNX_EDEVICE);
    assert_non_null(strstr(pnx_errmsg(), "count"));
}

/* ---- layouts ------------------------------------------------------------------------- */

void test_rounding(void **state)
{
    (void)state;
    const float tie_even = 1.0f + 1.0f / 256;       /* halfway 1 | 1+2^-7 → 1 */
    const float tie_odd = 1.0f + 3.0f / 256;        /* halfway 1+2^-7 | 1+2^-6 → 1+2^-6 */
    const float above = nextafterf(tie_even, 2.0f); /* just past halfway → up */
    const std::vector<float> src = {0.0f,      -0.0f,     1.0f,       -1.0f,     tie_even,
                                    -tie_even, tie_odd,   above,      1e-40f,    -3e-39f,
                                    3.0e38f,   FLT_MAX,   -FLT_MAX,   INFINITY,  -INFINITY,
                                    NAN,       65504.0f,  1.0f / 3,   3.14159f,  -2.71828f};
    const pnx_dims d = {1, 1, 1, (int)src.size()};
    results r = run_all([&](size_t mis) {
        float *s = dev_copy(src);
        pnx_bf16 *b = (pnx_bf16 *)dev_alloc(src.size() * 2, mis);
        assert_int_equal(pnx_bfk_nchw_to_nhwc(kStream, s, d, b), 0);
        results out;
        out.add("bits", host_copy(b, src.size()));
        return out;
    });
    const std::vector<uint16_t> bits = r.get<uint16_t>("bits");
    for (size_t i = 0; i < src.size(); i++) {
        if (isnan(src[i]))
            assert_true(isnan(from_bf16(bits[i])));
        else if (bits[i] != to_bf16(src[i]))
            fail_msg("bfloat16(%.9g) = %#06x, expected %#06x", src[i], bits[i], to_bf16(src[i]));
    }
    assert_int_equal(bits[4], 0x3f80);  /* ties to even: down */
    assert_int_equal(bits[6], 0x3f82);  /* ties to even: up */
    assert_int_equal(bits[7], 0x3f81);  /* past the tie: up */
    assert_int_equal(bits[11], 0x7f80); /* FLT_MAX rounds to infinity */
}

void test_layouts(void **state)
{
    (void)state;
    std::vector<pnx_dims> shapes(kShapes, kShapes + sizeof kShapes / sizeof kShapes[0]);
    shapes.push_back({2, 16, 3, 1});
    shapes.push_back({1, 13, 2, 3});
    for (pnx_dims d : shapes) {
        const size_t n = pnx_dims_count(d);
        const std::vector<float> src = random_floats(n, 3.0); /* not representable */
        results r = run_all([&](size_t mis) {
            float *s = dev_copy(src);
            pnx_bf16 *b = (pnx_bf16 *)dev_alloc(n * 2, mis);
            float *back = (float *)dev_alloc(n * 4);
            assert_int_equal(pnx_bfk_nchw_to_nhwc(kStream, s, d, b), 0);
            assert_int_equal(pnx_bfk_nhwc_to_nchw(kStream, b, d, back), 0);
            results out;
            out.add("nhwc", host_copy(b, n));
            out.add("back", host_copy(back, n));
            return out;
        });
        const std::string what = "layout " + dims_str(d);
        const std::vector<uint16_t> nhwc = r.get<uint16_t>("nhwc");
        if (nhwc != to_nhwc(src, d))
            fail_msg("%s: the upload is not the rounded transpose", what.c_str());
        /* The download of representable values is exact: the round trip
         * gives the rounded source. */
        assert_values_equal(r.get<float>("back"), rounded(src), what.c_str());
    }
}

void test_filter_layouts(void **state)
{
    (void)state;
    const int cases[][4] = {{5, 3, 3, 3}, {64, 48, 3, 3}, {8, 16, 2, 2}, {1, 64, 1, 1}, {3, 1, 3, 3}};
    for (const auto &cs : cases) {
        const int k = cs[0], c = cs[1], r = cs[2], s = cs[3];
        const size_t n = (size_t)k * c * r * s;
        const std::vector<float> w = random_floats(n, 1.0);
        const std::vector<float> dw0 = random_floats(n, 1.0);
        std::vector<uint16_t> g(n);
        for (auto &b : g)
            b = to_bf16((float)(2.0 * pnx_rng_uniform(&rng) - 1.0));
        results res = run_all(
            [&](size_t) {
                float *dw_ = dev_copy(w);
                pnx_bf16 *krsc = (pnx_bf16 *)dev_alloc(n * 2);
                pnx_bf16 *gd = dev_copy(g);
                float *dw = dev_copy(dw0);
                assert_int_equal(pnx_bfk_filter_to_krsc(kStream, dw_, k, c, r, s, krsc), 0);
                assert_int_equal(pnx_bfk_filter_grad_add(kStream, gd, k, c, r, s, dw), 0);
                results out;
                out.add("krsc", host_copy(krsc, n));
                out.add("dw", host_copy(dw, n));
                return out;
            },
            false);
        const std::vector<uint16_t> krsc = res.get<uint16_t>("krsc");
        const std::vector<float> dw = res.get<float>("dw");
        for (int kk = 0; kk < k; kk++)
            for (int cc = 0; cc < c; cc++)
                for (int rs = 0; rs < r * s; rs++) {
                    const size_t kcrs = ((size_t)kk * c + cc) * r * s + rs;
                    const size_t krsc_i = ((size_t)kk * r * s + rs) * c + cc;
                    assert_int_equal(krsc[krsc_i], to_bf16(w[kcrs]));
                    assert_true(dw[kcrs] == dw0[kcrs] + from_bf16(g[krsc_i]));
                }
    }
}

/* ---- bias ------------------------------------------------------------------------------- */

void test_bias(void **state)
{
    (void)state;
    for (pnx_dims d : kShapes) {
        const size_t n = pnx_dims_count(d), p = pixels_of(d);
        const std::vector<float> y = random_values(n, 2.0);
        const std::vector<float> dy = random_values(n, 1.0);
        const std::vector<float> bias = random_floats((size_t)d.c, 1.0);
        const std::vector<float> db0 = random_floats((size_t)d.c, 1.0);
        const std::vector<uint16_t> y_nhwc = to_nhwc(y, d), dy_nhwc = to_nhwc(dy, d);
        results r = run_all([&](size_t mis) {
            pnx_bf16 *yd = dev_copy(y_nhwc, mis), *dyd = dev_copy(dy_nhwc, mis);
            float *b = dev_copy(bias), *db = dev_copy(db0);
            void *scratch = dev_alloc(pnx_bfk_channel_scratch(p, d.c), mis);
            assert_int_equal(pnx_bfk_add_bias(kStream, yd, b, p, d.c), 0);
            assert_int_equal(pnx_bfk_bias_grad(kStream, dyd, p, d.c, db, scratch), 0);
            results out;
            out.add("y", host_copy(yd, n));
            out.add("db", host_copy(db, (size_t)d.c));
            return out;
        });
        const std::string what = "bias " + dims_str(d);
        /* y + bias in float, rounded once: exact. */
        std::vector<float> expect(n);
        const size_t hw = (size_t)d.h * d.w;
        for (size_t i = 0; i < n; i++)
            expect[i] = round_bf16(y[i] + bias[i / hw % d.c]);
        assert_values_equal(to_nchw(r.get<uint16_t>("y").data(), d), expect, what.c_str());
        /* db += Σ dy: the reference conv's bias gradient is the same sum. */
        std::vector<float> db_ref = db0;
        for (int c = 0; c < d.c; c++) {
            double s = 0;
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++)
                    s += dy[((size_t)nn * d.c + c) * hw + q];
            db_ref[c] += (float)s;
        }
        ASSERT_NORMWISE(r.get<float>("db"), db_ref, kSums, "%s", what.c_str());
    }
}

/* ---- BatchNorm ----------------------------------------------------------------------------- */

struct bn_params {
    std::vector<float> gamma, beta, rmean, rvar;
};

bn_params random_bn_params(int c)
{
    bn_params b;
    b.gamma = random_floats((size_t)c, 1.5);
    b.beta = random_floats((size_t)c, 0.5);
    b.rmean = random_floats((size_t)c, 0.3);
    b.rvar = random_floats((size_t)c, 0.5);
    for (auto &v : b.rvar)
        v = 0.6f + fabsf(v);
    return b;
}

constexpr float kMomentum = 0.1f, kEps = 1e-5f;

struct bn_run {
    results r;
    /* what the reference and the oracles need, from the kernel's forward */
    std::vector<float> y, save_mean, save_invstd;
};

/* The forward (x (N,C,H,W) NCHW floats, bfloat16 values), out of place
 * and in place, which must agree bitwise. */
bn_run run_bn_forward(const std::vector<float> &x, pnx_dims d, const bn_params &bp, int training,
                      int relu)
{
    const size_t n = pnx_dims_count(d), p = pixels_of(d), c = (size_t)d.c;
    const std::vector<uint16_t> xn = to_nhwc(x, d);
    bn_run run;
    run.r = run_all([&](size_t mis) {
        results out;
        for (int inplace = 0; inplace <= 1; inplace++) {
            pnx_bf16 *xd = dev_copy(xn, mis);
            pnx_bf16 *yd = inplace ? xd : (pnx_bf16 *)dev_alloc(n * 2, mis);
            float *g = dev_copy(bp.gamma), *b = dev_copy(bp.beta);
            float *rm = dev_copy(bp.rmean), *rv = dev_copy(bp.rvar);
            float *sm = (float *)dev_alloc(c * 4), *si = (float *)dev_alloc(c * 4);
            void *scratch = dev_alloc(pnx_bfk_channel_scratch(p, d.c), mis);
            assert_int_equal(pnx_bfk_bn_forward(kStream, xd, p, d.c, g, b, rm, rv, training,
                                                kMomentum, kEps, relu, yd, sm, si, scratch),
                             0);
            const char *suffix = inplace ? " in place" : "";
            out.add((std::string("y") + suffix).c_str(), host_copy(yd, n));
            out.add((std::string("rm") + suffix).c_str(), host_copy(rm, c));
            out.add((std::string("rv") + suffix).c_str(), host_copy(rv, c));
            if (training) {
                out.add((std::string("sm") + suffix).c_str(), host_copy(sm, c));
                out.add((std::string("si") + suffix).c_str(), host_copy(si, c));
            }
        }
        return out;
    });
    const std::string base = "bn forward " + dims_str(d);
    if (run.r.get<uint16_t>("y") != run.r.get<uint16_t>("y in place"))
        fail_msg("%s: y == x differs from y != x", base.c_str());
    run.y = to_nchw(run.r.get<uint16_t>("y").data(), d);
    if (training) {
        run.save_mean = run.r.get<float>("sm");
        run.save_invstd = run.r.get<float>("si");
    }
    return run;
}

/* Checks a forward against the reference (ops_ref.c, then ReLU) and, element
 * by element, against a double oracle: |y − o| ≤ u·|o| + 1e-6·(|x̂·γ| + |β|),
 * the rounding to bfloat16 plus a few float32 roundings of the terms. */
void check_bn_forward(const std::vector<float> &x, pnx_dims d, const bn_params &bp, int training,
                      int relu)
{
    char what[128];
    snprintf(what, sizeof what, "bn forward %s training %d relu %d", dims_str(d).c_str(),
             training, relu);
    const bn_run run = run_bn_forward(x, d, bp, training, relu);
    const size_t n = pnx_dims_count(d), c = (size_t)d.c, hw = (size_t)d.h * d.w;

    std::vector<float> y_ref(n), rm = bp.rmean, rv = bp.rvar, sm(c), si(c);
    assert_int_equal(pnx_ref_batchnorm_forward(x.data(), d, bp.gamma.data(), bp.beta.data(),
                                               rm.data(), rv.data(), training, kMomentum, kEps,
                                               y_ref.data(), sm.data(), si.data()),
                     0);
    if (relu)
        pnx_ref_relu_forward(y_ref.data(), y_ref.data(), n);
    ASSERT_NORMWISE(run.y, y_ref, kOnce, "%s", what);
    ASSERT_NORMWISE(run.r.get<float>("rm"), rm, kSums, "%s running mean", what);
    ASSERT_NORMWISE(run.r.get<float>("rv"), rv, kSums, "%s running var", what);
    if (training) {
        ASSERT_NORMWISE(run.save_mean, sm, kSums, "%s save_mean", what);
        ASSERT_NORMWISE(run.save_invstd, si, kSums, "%s save_invstd", what);
    }
    for (size_t ch = 0; ch < c; ch++) {
        double mean, var;
        if (training) {
            double s = 0, ss = 0;
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++)
                    s += x[((size_t)nn * c + ch) * hw + q];
            mean = s / (double)(d.n * hw);
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++) {
                    const double dev = x[((size_t)nn * c + ch) * hw + q] - mean;
                    ss += dev * dev;
                }
            var = ss / (double)(d.n * hw);
        } else {
            mean = bp.rmean[ch];
            var = bp.rvar[ch];
        }
        const double invstd = 1.0 / sqrt(var + kEps);
        for (int nn = 0; nn < d.n; nn++)
            for (size_t q = 0; q < hw; q++) {
                const size_t i = ((size_t)nn * c + ch) * hw + q;
                const double t = (x[i] - mean) * invstd * bp.gamma[ch];
                const double o = t + bp.beta[ch];
                const double o_out = relu && !(o > 0) ? 0.0 : o;
                const double bound = kU * fabs(o) + 1e-6 * (fabs(t) + fabs(bp.beta[ch]));
                if (!(fabs(run.y[i] - o_out) <= bound))
                    fail_msg("%s: element %zu is %.9g, exact %.9g (bound %.3g)", what, i,
                             run.y[i], o_out, bound);
            }
    }
}

void test_bn_forward(void **state)
{
    (void)state;
    for (pnx_dims d : kShapes) {
        const bn_params bp = random_bn_params(d.c);
        const std::vector<float> x = random_values(pnx_dims_count(d), 2.0, 0.7);
        for (int training = 0; training <= 1; training++)
            for (int relu = 0; relu <= 1; relu++)
                if (!training || pixels_of(d) > 1)
                    check_bn_forward(x, d, bp, training, relu);
    }
}

/* A mean 10⁴ times the spread. bfloat16 cannot hold a spread below 2^-8
 * of a value, so each channel is M = bfloat16(10⁴) = 9984 but for two
 * elements one step (64) above and one below: over 12288 values the mean
 * is M + 1/192 (not a float: the kernel must carry it in two) and the
 * standard deviation 1.0, M/10⁴. K, the shift of the variance sums (the
 * channel's first value), is an outlier in channel 0, 64 deviations off. */
std::vector<float> large_mean_input(pnx_dims d)
{
    const size_t n = pnx_dims_count(d), hw = (size_t)d.h * d.w;
    assert_true(round_bf16(10000.0f) == 9984.0f);
    std::vector<float> x(n, 9984.0f);
    for (int c = 0; c < d.c; c++) {
        float *xc = x.data() + (size_t)c * hw; /* sample 0 */
        xc[c == 0 ? 0 : 17] += 64.0f;
        xc[hw / 3] += 64.0f;
        xc[hw / 2] -= 64.0f;
    }
    return x;
}

/* γ = 1, β = 0. Most outputs are then x̂ ≈ −0.005, where the oracle's
 * bound is ~10⁻⁵: a kernel computing x·scale + shift in float32 (an error
 * of ~10⁴·2^-24 ≈ 10⁻³) or dropping the mean's low part fails it. The
 * reference does the former; normwise its 10⁻³ is still inside 2u. */
bn_params large_mean_params(int c)
{
    bn_params b = random_bn_params(c);
    for (int i = 0; i < c; i++) {
        b.gamma[i] = 1.0f;
        b.beta[i] = 0.0f;
    }
    return b;
}

const pnx_dims kLargeMeanShape = {2, 3, 64, 96};

void test_bn_large_mean(void **state)
{
    (void)state;
    const pnx_dims d = kLargeMeanShape;
    const std::vector<float> x = large_mean_input(d);
    const bn_params bp = large_mean_params(d.c);
    check_bn_forward(x, d, bp, 1, 0);
    check_bn_forward(x, d, bp, 1, 1);
    /* The mean is M + O(1) and the spread ~1: both statistics must be
     * right to float precision, not lost to cancellation. */
    const bn_run run = run_bn_forward(x, d, bp, 1, 0);
    for (int c = 0; c < d.c; c++) {
        assert_true(fabs(run.save_mean[c] - 9984.0) < 1.0);
        assert_true(run.save_invstd[c] > 0.3f && run.save_invstd[c] < 3.0f);
    }
}

/* The backward of the (fused) forward against the reference composition
 * (ReLU backward, then ops_ref.c's BatchNorm backward) on the kernel's own
 * forward outputs, and element by element against a double oracle of the
 * same formula. */
void check_bn_backward(const std::vector<float> &x, pnx_dims d, const bn_params &bp, int fused)
{
    const size_t n = pnx_dims_count(d), p = pixels_of(d), c = (size_t)d.c, hw = (size_t)d.h * d.w;
    const bn_run fwd = run_bn_forward(x, d, bp, 1, fused);
    const std::vector<float> dy = random_values(n, 1.0);
    const std::vector<float> dx0 = random_values(n, 1.0);
    const std::vector<float> dg0 = random_floats(c, 1.0), db0 = random_floats(c, 1.0);
    const std::vector<uint16_t> xn = to_nhwc(x, d), yn = to_nhwc(fwd.y, d);
    const std::vector<uint16_t> dyn = to_nhwc(dy, d), dx0n = to_nhwc(dx0, d);
    for (int acc = 0; acc <= 2; acc++) { /* 2: dx NULL, parameter gradients only */
        char what[128];
        snprintf(what, sizeof what, "bn backward %s fused %d acc %d", dims_str(d).c_str(), fused,
                 acc);
        results r = run_all([&](size_t mis) {
            pnx_bf16 *xd = dev_copy(xn, mis), *yd = dev_copy(yn, mis), *dyd = dev_copy(dyn, mis);
            pnx_bf16 *dxd = acc == 2 ? nullptr : dev_copy(dx0n, mis);
            float *g = dev_copy(bp.gamma), *sm = dev_copy(fwd.save_mean);
            float *si = dev_copy(fwd.save_invstd);
            float *dg = dev_copy(dg0), *db = dev_copy(db0);
            void *scratch = dev_alloc(pnx_bfk_channel_scratch(p, d.c), mis);
            assert_int_equal(pnx_bfk_bn_backward(kStream, xd, fused ? yd : nullptr, p, d.c, g, sm,
                                                 si, dyd, dxd, acc == 1, dg, db, scratch),
                             0);
            results out;
            if (dxd)
                out.add("dx", host_copy(dxd, n));
            out.add("dg", host_copy(dg, c));
            out.add("db", host_copy(db, c));
            /* the inputs are read only */
            if (host_copy(dyd, n) != dyn || host_copy(xd, n) != xn || host_copy(yd, n) != yn)
                fail_msg("%s: an input changed", what);
            return out;
        });
        std::vector<float> dz(n), dx_ref = dx0, dg_ref = dg0, db_ref = db0;
        if (fused)
            pnx_ref_relu_backward(fwd.y.data(), dy.data(), dz.data(), n);
        else
            dz = dy;
        pnx_ref_batchnorm_backward(x.data(), d, bp.gamma.data(), fwd.save_mean.data(),
                                   fwd.save_invstd.data(), dz.data(),
                                   acc == 2 ? nullptr : dx_ref.data(), acc == 1, dg_ref.data(),
                                   db_ref.data());
        ASSERT_NORMWISE(r.get<float>("dg"), dg_ref, kSums, "%s dgamma", what);
        ASSERT_NORMWISE(r.get<float>("db"), db_ref, kSums, "%s dbeta", what);
        if (acc == 2)
            continue;
        const std::vector<float> dx = to_nchw(r.get<uint16_t>("dx").data(), d);
        ASSERT_NORMWISE(dx, dx_ref, kOnce, "%s dx", what);
        for (size_t ch = 0; ch < c; ch++) {
            const double mean = fwd.save_mean[ch], invstd = fwd.save_invstd[ch];
            double sdz = 0, sdzx = 0;
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++) {
                    const size_t i = ((size_t)nn * c + ch) * hw + q;
                    sdz += dz[i];
                    sdzx += (double)dz[i] * (x[i] - mean);
                }
            const double m = (double)p, a = bp.gamma[ch] * invstd;
            const double b = -a * invstd * invstd * sdzx / m, k = -a * sdz / m;
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++) {
                    const size_t i = ((size_t)nn * c + ch) * hw + q;
                    const double t1 = a * dz[i], t2 = b * (x[i] - mean);
                    const double prev = acc ? dx0[i] : 0.0;
                    const double o = prev + t1 + t2 + k;
                    const double bound =
                        kU * fabs(o) + 1e-6 * (fabs(prev) + fabs(t1) + fabs(t2) + fabs(k));
                    if (!(fabs(dx[i] - o) <= bound))
                        fail_msg("%s: dx element %zu is %.9g, exact %.9g (bound %.3g)", what, i,
                                 dx[i], o, bound);
                }
        }
    }
}

void test_bn_backward(void **state)
{
    (void)state;
    for (pnx_dims d : kShapes)
        if (pixels_of(d) > 1) {
            const bn_params bp = random_bn_params(d.c);
            const std::vector<float> x = random_values(pnx_dims_count(d), 2.0, -0.3);
            check_bn_backward(x, d, bp, 0);
            check_bn_backward(x, d, bp, 1);
        }
    const pnx_dims d = kLargeMeanShape;
    check_bn_backward(large_mean_input(d), d, large_mean_params(d.c), 1);
}

/* Reductions that fold twice, on all three reductions' paths. */
void test_large_reductions(void **state)
{
    (void)state;
    for (pnx_dims d : kLargeShapes) {
        const bn_params bp = random_bn_params(d.c);
        const std::vector<float> x = random_values(pnx_dims_count(d), 1.0, 0.2);
        check_bn_forward(x, d, bp, 1, 1);
        check_bn_backward(x, d, bp, 1);
        const size_t p = pixels_of(d), hw = (size_t)d.h * d.w;
        const std::vector<float> db0 = random_floats((size_t)d.c, 1.0);
        results r = run_all(
            [&](size_t mis) {
                pnx_bf16 *xd = dev_copy(to_nhwc(x, d));
                float *db = dev_copy(db0);
                void *scratch = dev_alloc(pnx_bfk_channel_scratch(p, d.c), mis);
                assert_int_equal(pnx_bfk_bias_grad(kStream, xd, p, d.c, db, scratch), 0);
                results out;
                out.add("db", host_copy(db, (size_t)d.c));
                return out;
            },
            false);
        std::vector<float> db_ref = db0;
        for (int c = 0; c < d.c; c++) {
            double s = 0;
            for (int nn = 0; nn < d.n; nn++)
                for (size_t q = 0; q < hw; q++)
                    s += x[((size_t)nn * d.c + c) * hw + q];
            db_ref[c] += (float)s;
        }
        ASSERT_NORMWISE(r.get<float>("db"), db_ref, kSums, "bias gradient %s", dims_str(d).c_str());
    }
}

/* The scratch the U-Net's shapes need at 512² and batch 16 stays modest. */
void test_scratch_size(void **state)
{
    (void)state;
    const int channels[] = {1, 32, 64, 128, 256, 512, 1024};
    for (int level = 0; level < 6; level++) {
        const size_t p = (size_t)16 * (512 >> level) * (512 >> level);
        for (int c : channels) {
            const size_t bytes = pnx_bfk_channel_scratch(p, c);
            assert_true(bytes > 0);
            assert_true(bytes <= ((size_t)32 << 20));
        }
    }
    assert_int_equal(pnx_bfk_channel_scratch(0, 8), 0);
}

/* ---- ReLU, max-pool, concat/split --------------------------------------------------------- */

std::vector<float> special_values(size_t n)
{
    std::vector<float> v = random_values(n, 2.0);
    const float specials[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-40f, -1e-40f};
    for (size_t i = 0; i < n; i += 5)
        v[i] = round_bf16(specials[(i / 5) % 7]);
    return v;
}

void test_relu(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 7, 8, 64, 1001, 4096};
    for (size_t n : sizes) {
        const std::vector<float> x = special_values(n), dy = special_values(n);
        std::vector<uint16_t> xb(n), dyb(n);
        for (size_t i = 0; i < n; i++) {
            xb[i] = to_bf16(x[i]);
            dyb[i] = to_bf16(dy[i]);
        }
        results r = run_all([&](size_t mis) {
            results out;
            for (int inplace = 0; inplace <= 1; inplace++) {
                pnx_bf16 *xd = dev_copy(xb, mis), *dyd = dev_copy(dyb, mis);
                pnx_bf16 *yd = inplace ? xd : (pnx_bf16 *)dev_alloc(n * 2, mis);
                pnx_bf16 *dxd = inplace ? dyd : (pnx_bf16 *)dev_alloc(n * 2, mis);
                assert_int_equal(pnx_bfk_relu_forward(kStream, xd, yd, n), 0);
                assert_int_equal(pnx_bfk_relu_backward(kStream, yd, dyd, dxd, n), 0);
                out.add(inplace ? "y in place" : "y", host_copy(yd, n));
                out.add(inplace ? "dx in place" : "dx", host_copy(dxd, n));
            }
            return out;
        });
        std::vector<float> y(n), dx(n);
        pnx_ref_relu_forward(x.data(), y.data(), n);
        pnx_ref_relu_backward(y.data(), dy.data(), dx.data(), n);
        assert_true(r.get<uint16_t>("y") == r.get<uint16_t>("y in place"));
        assert_true(r.get<uint16_t>("dx") == r.get<uint16_t>("dx in place"));
        const std::vector<uint16_t> yb = r.get<uint16_t>("y"), dxb = r.get<uint16_t>("dx");
        for (size_t i = 0; i < n; i++) {
            /* bit-exact: max(x, 0) is x's bits or +0 */
            assert_int_equal(yb[i], to_bf16(y[i]));
            if (isnan(dx[i]))
                assert_true(isnan(from_bf16(dxb[i])));
            else
                assert_int_equal(dxb[i], to_bf16(dx[i]));
        }
    }
}

void test_maxpool(void **state)
{
    (void)state;
    std::vector<pnx_dims> shapes = {{2, 1, 6, 8}, {1, 3, 4, 10}, {2, 5, 6, 2}, {1, 8, 4, 4},
                                    {2, 48, 6, 10}, {1, 64, 8, 6}, {1, 64, 5, 7}, {2, 3, 7, 5}};
    for (pnx_dims d : shapes) {
        const size_t n = pnx_dims_count(d);
        const pnx_dims od = {d.n, d.c, d.h / 2, d.w / 2};
        const size_t on = pnx_dims_count(od);
        /* Four levels, so windows often tie; a few NaN, ±0 and -inf. */
        std::vector<float> x(n);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)pnx_rng_below(&rng, 4) - 1.5f;
        for (size_t i = 3; i < n; i += 37)
            x[i] = NAN;
        for (size_t i = 5; i < n; i += 11)
            x[i] = (i / 11) % 2 ? 0.0f : -0.0f;
        for (size_t i = 7; i < n; i += 29)
            x[i] = -INFINITY;
        const std::vector<float> dy = random_values(on, 1.0), dx0 = random_values(n, 1.0);
        const std::vector<uint16_t> xn = to_nhwc(x, d), dyn = to_nhwc(dy, od), dx0n = to_nhwc(dx0, d);
        results r = run_all([&](size_t mis) {
            pnx_bf16 *xd = dev_copy(xn, mis), *yd = (pnx_bf16 *)dev_alloc(on * 2, mis);
            uint8_t *am = (uint8_t *)dev_alloc(on, mis / 2);
            pnx_bf16 *dyd = dev_copy(dyn, mis);
            pnx_bf16 *dx = (pnx_bf16 *)dev_alloc(n * 2, mis), *dxa = dev_copy(dx0n, mis);
            assert_int_equal(pnx_bfk_maxpool_forward(kStream, xd, d, yd, am), 0);
            assert_int_equal(pnx_bfk_maxpool_backward(kStream, d, am, dyd, dx, 0), 0);
            assert_int_equal(pnx_bfk_maxpool_backward(kStream, d, am, dyd, dxa, 1), 0);
            results out;
            out.add("y", host_copy(yd, on));
            out.add("argmax", host_copy(am, on));
            out.add("dx", host_copy(dx, n));
            out.add("dx acc", host_copy(dxa, n));
            return out;
        });
        const std::string what = "max-pool " + dims_str(d);
        std::vector<float> y(on), dx(n), dxa = dx0;
        std::vector<uint8_t> am(on);
        pnx_ref_maxpool2x2_forward(x.data(), d, y.data(), am.data());
        pnx_ref_maxpool2x2_backward(d, am.data(), dy.data(), dx.data(), 0);
        pnx_ref_maxpool2x2_backward(d, am.data(), dy.data(), dxa.data(), 1);
        assert_values_equal(to_nchw(r.get<uint16_t>("y").data(), od), y, what.c_str());
        /* the winner's own bits: -0 stays -0 */
        std::vector<uint16_t> y_bits = to_nhwc(y, od);
        const std::vector<uint16_t> yk = r.get<uint16_t>("y");
        for (size_t i = 0; i < on; i++)
            if (!isnan(from_bf16(y_bits[i])) && yk[i] != y_bits[i])
                fail_msg("%s: y bits %#06x, expected %#06x", what.c_str(), yk[i], y_bits[i]);
        const std::vector<uint8_t> amk = r.get<uint8_t>("argmax");
        std::vector<uint8_t> am_nhwc(on);
        const size_t ohw = (size_t)od.h * od.w;
        for (int nn = 0; nn < od.n; nn++)
            for (int c = 0; c < od.c; c++)
                for (size_t q = 0; q < ohw; q++)
                    am_nhwc[((size_t)nn * ohw + q) * od.c + c] = am[((size_t)nn * od.c + c) * ohw + q];
        assert_true(amk == am_nhwc);
        assert_values_equal(to_nchw(r.get<uint16_t>("dx").data(), d), dx, what.c_str());
        assert_values_equal(to_nchw(r.get<uint16_t>("dx acc").data(), d), rounded(dxa),
                            (what + " acc").c_str());
    }
}

void test_concat_split(void **state)
{
    (void)state;
    const int pairs[][2] = {{1, 1}, {3, 5}, {8, 16}, {48, 64}, {64, 64}, {0, 8}, {5, 0}, {16, 3}};
    const pnx_dims sizes[] = {{2, 0, 3, 5}, {1, 0, 4, 4}};
    for (const auto &pr : pairs)
        for (pnx_dims base : sizes) {
            const int ca = pr[0], cb = pr[1], ct = ca + cb;
            const pnx_dims da = {base.n, ca, base.h, base.w}, db = {base.n, cb, base.h, base.w};
            const pnx_dims dt = {base.n, ct, base.h, base.w};
            const size_t p = pixels_of(dt), hw = (size_t)base.h * base.w;
            const std::vector<float> a = random_values(pnx_dims_count(da), 1.0);
            const std::vector<float> b = random_values(pnx_dims_count(db), 1.0);
            const std::vector<float> dy = random_values(pnx_dims_count(dt), 1.0);
            const std::vector<float> da0 = random_values(pnx_dims_count(da), 1.0);
            const std::vector<float> db0 = random_values(pnx_dims_count(db), 1.0);
            for (int mode = 0; mode < 4; mode++) { /* da_acc, db_acc; mode 3: da NULL */
                const int da_acc = mode & 1, db_acc = (mode >> 1) & 1;
                const bool da_null = mode == 3;
                results r = run_all([&](size_t mis) {
                    pnx_bf16 *ad = dev_copy(to_nhwc(a, da), mis), *bd = dev_copy(to_nhwc(b, db), mis);
                    pnx_bf16 *yd = (pnx_bf16 *)dev_alloc(p * ct * 2, mis);
                    pnx_bf16 *dyd = dev_copy(to_nhwc(dy, dt), mis);
                    pnx_bf16 *dad = da_null ? nullptr : dev_copy(to_nhwc(da0, da), mis);
                    pnx_bf16 *dbd = dev_copy(to_nhwc(db0, db), mis);
                    assert_int_equal(pnx_bfk_concat(kStream, ad, ca, bd, cb, p, yd), 0);
                    assert_int_equal(
                        pnx_bfk_split(kStream, dyd, ca, cb, p, dad, da_acc, dbd, db_acc), 0);
                    results out;
                    out.add("y", host_copy(yd, p * ct));
                    if (dad)
                        out.add("da", host_copy(dad, pnx_dims_count(da)));
                    out.add("db", host_copy(dbd, pnx_dims_count(db)));
                    return out;
                });
                char what[96];
                snprintf(what, sizeof what, "concat/split %d+%d mode %d", ca, cb, mode);
                std::vector<float> y(pnx_dims_count(dt)), gda = da0, gdb = db0;
                /* The reference copies with memcpy, which wants real
                 * pointers even for no bytes. */
                float none = 0.0f;
                const auto real = [&none](std::vector<float> &v) {
                    return v.empty() ? &none : v.data();
                };
                std::vector<float> a_ = a, b_ = b;
                pnx_ref_concat_channels(real(a_), ca, real(b_), cb, base.n, hw, y.data());
                pnx_ref_split_channels(dy.data(), ca, cb, base.n, hw, da_null ? nullptr : real(gda),
                                       da_acc, real(gdb), db_acc);
                assert_values_equal(to_nchw(r.get<uint16_t>("y").data(), dt), y, what);
                if (!da_null)
                    assert_values_equal(to_nchw(r.get<uint16_t>("da").data(), da), rounded(gda),
                                        what);
                assert_values_equal(to_nchw(r.get<uint16_t>("db").data(), db), rounded(gdb), what);
            }
        }
}

/* ---- the loss ---------------------------------------------------------------------------------- */

void test_loss(void **state)
{
    (void)state;
    assert_int_equal(pnx_bfk_loss_blocks(0), 1);
    assert_int_equal(pnx_bfk_loss_blocks(1), 1);
    assert_true(pnx_bfk_loss_blocks((size_t)16 << 20) <= 8192);
    const size_t counts[] = {0, 1, 7, 8, 65, 1001, 4096, 100003, 600000};
    for (size_t count : counts) {
        std::vector<float> logits = random_values(count, 9.0);
        std::vector<float> target(count);
        for (size_t i = 0; i < count; i++)
            target[i] = pnx_rng_below(&rng, 5) == 0 ? 1.0f : 0.0f;
        for (size_t i = 0; i < count; i += 13) /* soft targets and far logits too */
            target[i] = round_bf16((float)pnx_rng_uniform(&rng));
        for (size_t i = 5; i < count; i += 97)
            logits[i] = (i / 97) % 2 ? 60.0f : -60.0f;
        std::vector<uint16_t> lb(count), tb(count);
        for (size_t i = 0; i < count; i++) {
            lb[i] = to_bf16(logits[i]);
            tb[i] = to_bf16(target[i]);
        }
        const size_t blocks = pnx_bfk_loss_blocks(count);
        const float bce_w = 0.7f, dice_w = 1.3f;
        results r = run_all([&](size_t mis) {
            pnx_bf16 *ld = dev_copy(lb, mis), *td = dev_copy(tb, mis);
            double *part = (double *)dev_alloc(blocks * 4 * sizeof(double));
            pnx_bf16 *gd = (pnx_bf16 *)dev_alloc(count * 2, mis);
            assert_int_equal(pnx_bfk_loss_partials(kStream, ld, td, count, part), 0);
            std::vector<double> sums(4);
            pnx_bfk_loss_reduce(part, blocks, sums.data());
            const double denom = sums[2] + sums[3] + 1.0;
            assert_int_equal(pnx_bfk_loss_grad(kStream, ld, td, count, bce_w, dice_w, sums[1],
                                               denom, gd),
                             0);
            results out;
            out.add("sums", sums);
            out.add("grad", host_copy(gd, count));
            return out;
        });
        char what[64];
        snprintf(what, sizeof what, "loss over %zu", count);
        const std::vector<double> sums = r.get<double>("sums");
        double exact[4] = {0, 0, 0, 0};
        for (size_t i = 0; i < count; i++) {
            const double xv = logits[i], t = target[i];
            exact[0] += (xv > 0 ? xv : 0) - xv * t + log1p(exp(-fabs(xv)));
            const double s = 1.0 / (1.0 + exp(-xv));
            exact[1] += s * t;
            exact[2] += s;
            exact[3] += t;
        }
        for (int k = 0; k < 3; k++)
            if (!(fabs(sums[k] - exact[k]) <= kSums * (fabs(exact[k]) + 1e-30)))
                fail_msg("%s: sum %d is %.12g, exact %.12g", what, k, sums[k], exact[k]);
        assert_true(sums[3] == exact[3]); /* representable targets: exact */
        pnx_loss ref;
        std::vector<float> grad_ref(count);
        pnx_ref_seg_loss(logits.data(), target.data(), count, bce_w, dice_w, &ref,
                         grad_ref.data());
        const double bce = count ? sums[0] / (double)count : 0.0;
        const double dice = 1.0 - (2.0 * sums[1] + 1.0) / (sums[2] + sums[3] + 1.0);
        assert_true(fabs(bce - ref.bce) <= kSums * (fabs(ref.bce) + 1e-12));
        assert_true(fabs(dice - ref.dice) <= kSums * (fabs(ref.dice) + 1e-12));
        if (count)
            ASSERT_NORMWISE(floats_of(r.get<uint16_t>("grad")), grad_ref, kOnce, "%s", what);
    }
}

/* ---- narrow convolutions (bf16_narrow.cu) ---------------------------------------------- */

/* Every narrow-convolution case: y and dx against the reference within one
 * rounding (kOnce: the kernels sum at most 9·64 products in float32, whose
 * error is ~1e-5 of the terms, next to u); dw and db, float32 from double
 * sums of exact bfloat16 products, within kSums. The three backward calls
 * (dx =, dx += into a non-zero dx, dx NULL) each accumulate into their own
 * copy of non-zero dw, db and must agree bitwise. */
struct narrow_case {
    pnx_dims xd; /* the convolution's input, NCHW terms */
    int cout;
};

void check_narrow(const char *what, const char *quantity, const std::vector<float> &got,
                  const std::vector<float> &want, double tol)
{
    ASSERT_NORMWISE(got, want, tol, "%s: %s", what, quantity);
}

/* 3×3 pad 1 with one input channel: x (N,1,H,W) is NHWC as it is. */
void test_conv3x3_in1(void **state)
{
    (void)state;
    std::vector<narrow_case> cases;
    const pnx_dims sizes[] = {{1, 1, 5, 7}, {3, 1, 17, 9}, {2, 1, 1, 1}, {1, 1, 2, 3}};
    const int ks[] = {1, 3, 8, 64};
    for (pnx_dims xd : sizes)
        for (int k : ks)
            cases.push_back({xd, k});
    cases.push_back({{1, 1, 300, 260}, 8}); /* the reduction folds twice */
    cases.push_back({{2, 1, 40, 33}, 1});   /* and once */
    for (const narrow_case &cs : cases) {
        const pnx_dims xd = cs.xd;
        const int k = cs.cout;
        const pnx_dims yd = {xd.n, k, xd.h, xd.w};
        const size_t p = pixels_of(xd), ny = pnx_dims_count(yd), nw = (size_t)k * 9;
        const std::vector<float> x = random_values(p, 1.0);
        const std::vector<float> w = random_floats(nw, 0.5), bias = random_floats((size_t)k, 0.5);
        const std::vector<float> dy = random_values(ny, 1.0), dx0 = random_values(p, 2.0);
        const std::vector<float> dw0 = random_floats(nw, 1.0), db0 = random_floats((size_t)k, 1.0);
        const std::vector<uint16_t> xb = to_nhwc(x, xd), dyb = to_nhwc(dy, yd);
        const std::vector<uint16_t> dx0b = to_nhwc(dx0, xd);
        results r = run_all([&](size_t mis) {
            results out;
            pnx_bf16 *xp = dev_copy(xb, mis), *dyp = dev_copy(dyb, mis);
            float *wp = dev_copy(w), *bp = dev_copy(bias);
            pnx_bf16 *yp = (pnx_bf16 *)dev_alloc(ny * 2, mis);
            pnx_bf16 *y0 = (pnx_bf16 *)dev_alloc(ny * 2, mis);
            assert_int_equal(pnx_bfk_conv3x3_in1_forward(kStream, xp, xd, wp, bp, k, yp), 0);
            assert_int_equal(pnx_bfk_conv3x3_in1_forward(kStream, xp, xd, wp, nullptr, k, y0), 0);
            out.add("y", host_copy(yp, ny));
            out.add("y no bias", host_copy(y0, ny));
            const size_t sb = pnx_bfk_conv3x3_in1_scratch(p, k);
            assert_true(sb > 0);
            for (int mode = 0; mode < 3; mode++) { /* dx =, dx +=, dx NULL */
                pnx_bf16 *dxp = mode == 2 ? nullptr
                                : mode == 1 ? dev_copy(dx0b, mis)
                                            : (pnx_bf16 *)dev_alloc(p * 2, mis);
                float *dwp = dev_copy(dw0), *dbp = dev_copy(db0);
                void *scratch = dev_alloc(sb, mis);
                assert_int_equal(pnx_bfk_conv3x3_in1_backward(kStream, xp, xd, wp, k, dyp, dxp,
                                                              mode == 1, dwp, dbp, scratch),
                                 0);
                const std::string m = std::to_string(mode);
                if (dxp)
                    out.add(("dx " + m).c_str(), host_copy(dxp, p));
                out.add(("dw " + m).c_str(), host_copy(dwp, nw));
                out.add(("db " + m).c_str(), host_copy(dbp, (size_t)k));
            }
            return out;
        });
        char what[96];
        snprintf(what, sizeof what, "3x3 conv of one channel %s to %d", dims_str(xd).c_str(), k);
        std::vector<float> y(ny), y0(ny), dx(p), dxa = dx0, dw = dw0, db = db0;
        std::vector<float> dw_a = dw0, db_a = db0;
        pnx_ref_conv3x3_forward(x.data(), xd, w.data(), bias.data(), k, y.data());
        pnx_ref_conv3x3_forward(x.data(), xd, w.data(), nullptr, k, y0.data());
        pnx_ref_conv3x3_backward(x.data(), xd, w.data(), k, dy.data(), dx.data(), 0, dw.data(),
                                 db.data());
        pnx_ref_conv3x3_backward(x.data(), xd, w.data(), k, dy.data(), dxa.data(), 1,
                                 dw_a.data(), db_a.data());
        check_narrow(what, "y", to_nchw(r.get<uint16_t>("y").data(), yd), y, kOnce);
        check_narrow(what, "y no bias", to_nchw(r.get<uint16_t>("y no bias").data(), yd), y0,
                     kOnce);
        check_narrow(what, "dx", floats_of(r.get<uint16_t>("dx 0")), dx, kOnce);
        check_narrow(what, "dx +=", floats_of(r.get<uint16_t>("dx 1")), dxa, kOnce);
        check_narrow(what, "dw", r.get<float>("dw 0"), dw, kSums);
        check_narrow(what, "db", r.get<float>("db 0"), db, kSums);
        for (const char *m : {"1", "2"}) {
            if (r.get<float>((std::string("dw ") + m).c_str()) != r.get<float>("dw 0") ||
                r.get<float>((std::string("db ") + m).c_str()) != r.get<float>("db 0"))
                fail_msg("%s: dw, db differ between the backward calls", what);
        }
    }
}

/* 1×1 with one output channel: y and dy (N,1,H,W) are NHWC as they are. */
void test_conv1x1_out1(void **state)
{
    (void)state;
    std::vector<narrow_case> cases;
    const pnx_dims sizes[] = {{1, 0, 5, 7}, {3, 0, 17, 9}, {2, 0, 1, 1}};
    const int cs_[] = {1, 5, 8, 64};
    for (pnx_dims base : sizes)
        for (int c : cs_)
            cases.push_back({{base.n, c, base.h, base.w}, 1});
    cases.push_back({{1, 8, 300, 260}, 1}); /* the reduction folds twice */
    cases.push_back({{2, 5, 40, 33}, 1});   /* and once */
    for (const narrow_case &cs : cases) {
        const pnx_dims xd = cs.xd;
        const int c = xd.c;
        const pnx_dims yd = {xd.n, 1, xd.h, xd.w};
        const size_t p = pixels_of(xd), nx = pnx_dims_count(xd);
        const std::vector<float> x = random_values(nx, 1.0);
        const std::vector<float> w = random_floats((size_t)c, 0.5), bias = random_floats(1, 0.5);
        const std::vector<float> dy = random_values(p, 1.0), dx0 = random_values(nx, 2.0);
        const std::vector<float> dw0 = random_floats((size_t)c, 1.0), db0 = random_floats(1, 1.0);
        const std::vector<uint16_t> xb = to_nhwc(x, xd), dyb = to_nhwc(dy, yd);
        const std::vector<uint16_t> dx0b = to_nhwc(dx0, xd);
        results r = run_all([&](size_t mis) {
            results out;
            pnx_bf16 *xp = dev_copy(xb, mis), *dyp = dev_copy(dyb, mis);
            float *wp = dev_copy(w), *bp = dev_copy(bias);
            pnx_bf16 *yp = (pnx_bf16 *)dev_alloc(p * 2, mis);
            pnx_bf16 *y0 = (pnx_bf16 *)dev_alloc(p * 2, mis);
            assert_int_equal(pnx_bfk_conv1x1_out1_forward(kStream, xp, p, c, wp, bp, yp), 0);
            assert_int_equal(pnx_bfk_conv1x1_out1_forward(kStream, xp, p, c, wp, nullptr, y0), 0);
            out.add("y", host_copy(yp, p));
            out.add("y no bias", host_copy(y0, p));
            const size_t sb = pnx_bfk_conv1x1_out1_scratch(p, c);
            assert_true(sb > 0);
            for (int mode = 0; mode < 3; mode++) { /* dx =, dx +=, dx NULL */
                pnx_bf16 *dxp = mode == 2 ? nullptr
                                : mode == 1 ? dev_copy(dx0b, mis)
                                            : (pnx_bf16 *)dev_alloc(nx * 2, mis);
                float *dwp = dev_copy(dw0), *dbp = dev_copy(db0);
                void *scratch = dev_alloc(sb, mis);
                assert_int_equal(pnx_bfk_conv1x1_out1_backward(kStream, xp, p, c, wp, dyp, dxp,
                                                               mode == 1, dwp, dbp, scratch),
                                 0);
                const std::string m = std::to_string(mode);
                if (dxp)
                    out.add(("dx " + m).c_str(), host_copy(dxp, nx));
                out.add(("dw " + m).c_str(), host_copy(dwp, (size_t)c));
                out.add(("db " + m).c_str(), host_copy(dbp, 1));
            }
            return out;
        });
        char what[96];
        snprintf(what, sizeof what, "1x1 conv of %s to one channel", dims_str(xd).c_str());
        std::vector<float> y(p), y0(p), dx(nx), dxa = dx0, dw = dw0, db = db0;
        std::vector<float> dw_a = dw0, db_a = db0;
        pnx_ref_conv1x1_forward(x.data(), xd, w.data(), bias.data(), 1, y.data());
        pnx_ref_conv1x1_forward(x.data(), xd, w.data(), nullptr, 1, y0.data());
        pnx_ref_conv1x1_backward(x.data(), xd, w.data(), 1, dy.data(), dx.data(), 0, dw.data(),
                                 db.data());
        pnx_ref_conv1x1_backward(x.data(), xd, w.data(), 1, dy.data(), dxa.data(), 1,
                                 dw_a.data(), db_a.data());
        check_narrow(what, "y", floats_of(r.get<uint16_t>("y")), y, kOnce);
        check_narrow(what, "y no bias", floats_of(r.get<uint16_t>("y no bias")), y0, kOnce);
        check_narrow(what, "dx", to_nchw(r.get<uint16_t>("dx 0").data(), xd), dx, kOnce);
        check_narrow(what, "dx +=", to_nchw(r.get<uint16_t>("dx 1").data(), xd), dxa, kOnce);
        check_narrow(what, "dw", r.get<float>("dw 0"), dw, kSums);
        check_narrow(what, "db", r.get<float>("db 0"), db, kSums);
        for (const char *m : {"1", "2"}) {
            if (r.get<float>((std::string("dw ") + m).c_str()) != r.get<float>("dw 0") ||
                r.get<float>((std::string("db ") + m).c_str()) != r.get<float>("db 0"))
                fail_msg("%s: dw, db differ between the backward calls", what);
        }
    }
}

/* The narrow reductions' scratch at the U-Net's sizes (512², batch 16)
 * stays modest; none for no pixels. */
void test_narrow_scratch_size(void **state)
{
    (void)state;
    const size_t p = (size_t)16 * 512 * 512;
    const int channels[] = {1, 5, 8, 32, 64};
    for (int c : channels) {
        assert_true(pnx_bfk_conv3x3_in1_scratch(p, c) <= ((size_t)32 << 20));
        assert_true(pnx_bfk_conv1x1_out1_scratch(p, c) <= ((size_t)32 << 20));
    }
    assert_int_equal(pnx_bfk_conv3x3_in1_scratch(0, 8), 0);
    assert_int_equal(pnx_bfk_conv1x1_out1_scratch(0, 8), 0);
}

} // namespace

int main(void)
{
    pnx_rng_seed(&rng, 20261125, 6);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulator),     cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_layouts),      cmocka_unit_test(test_filter_layouts),
        cmocka_unit_test(test_bias),         cmocka_unit_test(test_bn_forward),
        cmocka_unit_test(test_bn_large_mean), cmocka_unit_test(test_bn_backward),
        cmocka_unit_test(test_large_reductions), cmocka_unit_test(test_scratch_size),
        cmocka_unit_test(test_relu),         cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_concat_split), cmocka_unit_test(test_loss),
        cmocka_unit_test(test_conv3x3_in1), cmocka_unit_test(test_conv1x1_out1),
        cmocka_unit_test(test_narrow_scratch_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
