/*
 * tests/test_cuda_emu_fp32.cc — the FP32 kernels (model/cuda/cuda_kernels.cu,
 * every pnx_cuk_* launcher of cuda_internal.h) run on the CPU by the fiber
 * emulator (tests/cuda_emu_fibers.h), against the reference ops
 * (model/ops_ref.c) on the same inputs.
 *
 * "Device memory" is host memory, 256-byte aligned as cudaMalloc's, filled
 * with NaN bytes (0xff) before use so that an output a kernel forgets to
 * write shows. Cases where the float4 paths apply also run one element off
 * alignment (the scalar paths) and must give the same bits.
 *
 * Every case runs with threads and blocks in order and reversed and must
 * give identical bits both times: the reductions sum in a fixed order that
 * must not depend on which thread runs first. Launchers whose kernels all
 * stride over their grid also run with the grid cut to 3 blocks a
 * dimension, again with identical bits (the channel reductions and the loss
 * sums index their partials by block, so they need their full grid).
 *
 * Tolerances (normwise, ‖ŷ − y‖₂ ≤ tol·‖y‖₂, output by output).
 * Element-wise maps whose arithmetic is the reference's operation by
 * operation (bias, ReLU, max-pool, copies, Adam) must match bit for bit.
 * Everything derived from double sums (BatchNorm statistics and outputs,
 * parameter and bias gradients, the loss gradient): 1e-6. The sums differ
 * from the reference's only in order, by about 1e-16 relative, which
 * changes a float32 result only when it falls that close to a rounding
 * boundary — the fixed inputs here give identical bits. The bound is tight
 * on purpose: where the mean is 10^4 times the spread, computing x·scale +
 * shift without rounding the product (an FMA) moves BatchNorm's output by
 * 1e-5 to 6e-5 relative, and must fail. (On the host the product is never
 * fused: -ffp-contract=off. Whether nvcc keeps __fmul_rn unfused is for the
 * GPU tests.) Loss values from the sums: 1e-12.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cuda_emu_fibers.h"

extern "C" {
#include <cmocka.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/backend.h"
#include "model/ops_ref.h"
}
#include "model/cuda/cuda_internal.h"

/* cuda_backend.c's, which this test does not link. */
extern "C" int pnx_cuda_fail(cudaError_t err, const char *what)
{
    return pnx_fail(PNX_EDEVICE, "%s: CUDA error %d", what, (int)err);
}

namespace
{

constexpr int kSm = 132; /* an H100's multiprocessors: the split of the reductions */

/* ---- device memory
 * ------------------------------------------------------------- */

struct dev {
    float *base = nullptr;
    float *p = nullptr;
    size_t n = 0;
    dev(size_t count, int misalign)
    {
        n = count;
        base = (float *)aligned_alloc(256, ((count + 1) * sizeof(float) + 255) / 256 * 256);
        assert_non_null(base);
        memset(base, 0xff, (count + 1) * sizeof(float));
        p = base + (misalign ? 1 : 0);
    }
    dev(const std::vector<float> &v, int misalign) : dev(v.size(), misalign)
    {
        memcpy(p, v.data(), v.size() * sizeof(float));
    }
    ~dev() { free(base); }
    dev(const dev &) = delete;
    dev &operator=(const dev &) = delete;
    std::vector<float> host() const { return std::vector<float>(p, p + n); }
};

std::vector<float> normal(uint64_t seed, size_t n, double mean, double sd)
{
    pnx_rng r;
    pnx_rng_seed(&r, seed, 7);
    std::vector<float> v(n);
    for (float &x : v)
        x = (float)(mean + sd * pnx_rng_normal(&r));
    return v;
}

void append(std::vector<float> &out, const std::vector<float> &v)
{
    out.insert(out.end(), v.begin(), v.end());
}

/* ---- comparisons
 * --------------------------------------------------------------- */

void same_bits(const std::vector<float> &a, const std::vector<float> &b, const char *what)
{
    assert_int_equal(a.size(), b.size());
    if (memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) {
        for (size_t i = 0; i < a.size(); i++)
            if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
                print_error("%s: element %zu: %.9g vs %.9g\n", what, i, a[i], b[i]);
                break;
            }
        fail();
    }
}

void close_norm(const std::vector<float> &got, const std::vector<float> &want, double tol,
                const char *what)
{
    assert_int_equal(got.size(), want.size());
    double diff = 0, ref = 0;
    for (size_t i = 0; i < got.size(); i++) {
        if (isnan(got[i]) != isnan(want[i])) {
            print_error("%s: element %zu: %g vs %g\n", what, i, got[i], want[i]);
            fail();
        }
        if (isnan(want[i]))
            continue;
        const double d = (double)got[i] - want[i];
        diff += d * d;
        ref += (double)want[i] * want[i];
    }
    if (getenv("PNX_EMU_SHOW"))
        print_message("%s: relative %.3g\n", what, sqrt(diff) / (sqrt(ref) + 1e-300));
    if (sqrt(diff) > tol * sqrt(ref) + 1e-30) {
        print_error("%s: ‖diff‖ %.3g > %.3g · ‖ref‖ %.3g\n", what, sqrt(diff), tol, sqrt(ref));
        fail();
    }
}

/* Runs a case in thread order, reversed, and (when the launchers allow it)
 * on a grid cut to 3 blocks a dimension; all must agree bit for bit. */
std::vector<float> run_orders(const std::function<std::vector<float>()> &run, bool small_grid,
                              const char *what)
{
    pnx_emu = {0, 0, 0};
    std::vector<float> first = run();
    pnx_emu = {1, 0, 0};
    same_bits(run(), first, what);
    if (small_grid) {
        pnx_emu = {0, 3, 0};
        same_bits(run(), first, what);
    }
    pnx_emu = {0, 0, 0};
    return first;
}

/* ---- the emulator itself
 * ------------------------------------------------------------- */

/* Each thread reads its neighbour's value through shared memory: right only
 * if __syncthreads really waits for the whole block (forward, thread t
 * would otherwise read slot t + 1 before its owner wrote it). */
__global__ void emu_rotate_kernel(const int *in, int *out)
{
    __shared__ int s[64];
    const unsigned t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    __syncthreads();
    out[base + t] = s[(t + 1) % blockDim.x];
    __syncthreads();
}

__global__ void emu_divergent_kernel(int *out)
{
    if (threadIdx.x == 3)
        __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void emu_early_exit_kernel(int *out)
{
    if (threadIdx.x < 5)
        return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

/* The launch, in a child process: must die of abort(). */
void expect_abort(void (*kernel)(int *))
{
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        static int out[64];
        kernel % pnx_emu_cfg(2, 64, 0, nullptr)(out);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

void test_emulator(void **state)
{
    (void)state;
    int in[192], out[192];
    for (int i = 0; i < 192; i++)
        in[i] = i * 7 + 1;
    for (int reverse = 0; reverse <= 1; reverse++) {
        pnx_emu = {reverse, 0, 0};
        memset(out, 0, sizeof out);
        emu_rotate_kernel % pnx_emu_cfg(3, 64, 0, nullptr)(in, out);
        assert_int_equal(cudaGetLastError(), cudaSuccess);
        for (int i = 0; i < 192; i++)
            assert_int_equal(out[i], in[i / 64 * 64 + (i % 64 + 1) % 64]);
    }
    pnx_emu = {0, 0, 0};
    /* an invalid configuration is CUDA's launch error, read once */
    emu_rotate_kernel % pnx_emu_cfg(1, 2048, 0, nullptr)(in, out);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    emu_rotate_kernel % pnx_emu_cfg(dim3(1, 1, 2), 64, 0, nullptr)(in, out);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
    /* a divergent __syncthreads fails loudly */
    expect_abort(emu_divergent_kernel);
    expect_abort(emu_early_exit_kernel);
}

/* ---- bias
 * ------------------------------------------------------------------------ */

void test_bias(void **state)
{
    (void)state;
    const int cs[] = {1, 3, 5, 48};
    const size_t ps[] = {1, 7, 16, 1030};
    for (int c : cs)
        for (size_t p : ps) {
            const int n = 2;
            const size_t total = (size_t)n * c * p;
            const std::vector<float> y0 = normal(1, total, 0, 1), bias = normal(2, c, 0, 1);
            const std::vector<float> dy = normal(3, total, 0, 1), db0 = normal(4, c, 0, 1);
            std::vector<float> want = y0;
            for (size_t i = 0; i < total; i++)
                want[i] += bias[(i / p) % c];
            std::vector<float> got = run_orders(
                [&] {
                    dev y(y0, 0), b(bias, 0);
                    assert_int_equal(pnx_cuk_add_bias(nullptr, y.p, b.p, n, c, p), 0);
                    return y.host();
                },
                true, "add_bias");
            same_bits(got, want, "add_bias vs reference");

            std::vector<double> sum(c, 0.0);
            for (size_t i = 0; i < total; i++)
                sum[(i / p) % c] += dy[i];
            std::vector<float> want_db(c);
            for (int k = 0; k < c; k++)
                want_db[k] = db0[k] + (float)sum[k];
            got = run_orders(
                [&] {
                    dev g(dy, 0), db(db0, 0);
                    std::vector<char> scratch(pnx_cuk_channel_scratch(kSm, n, c, p));
                    assert_int_equal(
                        pnx_cuk_bias_grad(nullptr, kSm, g.p, n, c, p, db.p, scratch.data()), 0);
                    return db.host();
                },
                false, "bias_grad");
            close_norm(got, want_db, 1e-6, "bias_grad vs reference");
        }
}

/* ---- batch norm
 * ------------------------------------------------------------------- */

struct bn_case {
    pnx_dims d;
    double mean, sd;
};

const bn_case bn_cases[] = {
    {{2, 1, 3, 5}, 0.5, 2.0},  {{2, 3, 4, 4}, -1.0, 0.5},  {{3, 5, 3, 5}, 0.0, 1.0},
    {{2, 48, 2, 6}, 0.2, 1.0}, {{1, 3, 65, 64}, 0.1, 1.0}, {{2, 5, 4, 8}, 100.0, 0.01},
    {{1, 1, 1, 2}, 3.0, 1.0},  {{4, 3, 7, 9}, 1e4, 1.0},
};

/* Forward, then the fused backward, in one run: outputs concatenated. */
std::vector<float> bn_run(const bn_case &k, int training, int relu, int misalign, int inplace,
                          std::vector<float> *fwd_only)
{
    const pnx_dims d = k.d;
    const size_t total = (size_t)d.n * d.c * d.h * d.w, p = (size_t)d.h * d.w;
    dev x(normal(10, total, k.mean, k.sd), misalign), y(total, misalign);
    dev gamma(normal(11, d.c, 1, 0.3), 0), beta(normal(12, d.c, 0, 0.3), 0);
    dev rm(normal(13, d.c, k.mean, 0.1), 0), rv(normal(14, d.c, k.sd * k.sd, 0.01), 0);
    for (size_t i = 0; i < (size_t)d.c; i++)
        rv.p[i] = fabsf(rv.p[i]) + 1e-3f;
    dev sm(d.c, 0), si(d.c, 0);
    std::vector<char> scratch(pnx_cuk_channel_scratch(kSm, d.n, d.c, p));
    float *out = inplace ? x.p : y.p;
    assert_int_equal(pnx_cuk_batchnorm_forward(nullptr, kSm, x.p, d, gamma.p, beta.p, rm.p, rv.p,
                                               training, 0.1f, 1e-5f, relu, out, sm.p, si.p,
                                               scratch.data()),
                     0);
    std::vector<float> r(out, out + total);
    append(r, rm.host());
    append(r, rv.host());
    if (training) {
        append(r, sm.host());
        append(r, si.host());
    }
    if (fwd_only)
        *fwd_only = r;
    if (!training || inplace)
        return r;
    /* backward of this forward: accumulate into non-zero gradients */
    dev dy(normal(15, total, 0, 1), misalign), dx(normal(16, total, 0, 1), misalign);
    dev dg(normal(17, d.c, 0, 1), 0), dbt(normal(18, d.c, 0, 1), 0);
    assert_int_equal(pnx_cuk_batchnorm_backward(nullptr, kSm, x.p, relu ? y.p : nullptr, d, gamma.p,
                                                sm.p, si.p, dy.p, dx.p, 1, dg.p, dbt.p,
                                                scratch.data()),
                     0);
    append(r, dx.host());
    append(r, dg.host());
    append(r, dbt.host());
    /* plain store, and the parameter gradients alone */
    dev dx2(total, misalign);
    assert_int_equal(pnx_cuk_batchnorm_backward(nullptr, kSm, x.p, relu ? y.p : nullptr, d, gamma.p,
                                                sm.p, si.p, dy.p, dx2.p, 0, dg.p, dbt.p,
                                                scratch.data()),
                     0);
    append(r, dx2.host());
    assert_int_equal(pnx_cuk_batchnorm_backward(nullptr, kSm, x.p, relu ? y.p : nullptr, d, gamma.p,
                                                sm.p, si.p, dy.p, nullptr, 0, dg.p, dbt.p,
                                                scratch.data()),
                     0);
    append(r, dg.host());
    append(r, dbt.host());
    return r;
}

/* The same sequence on the reference (BN, then ReLU where fused). */
std::vector<float> bn_ref(const bn_case &k, int training, int relu)
{
    const pnx_dims d = k.d;
    const size_t total = (size_t)d.n * d.c * d.h * d.w;
    std::vector<float> x = normal(10, total, k.mean, k.sd), y(total);
    std::vector<float> gamma = normal(11, d.c, 1, 0.3), beta = normal(12, d.c, 0, 0.3);
    std::vector<float> rm = normal(13, d.c, k.mean, 0.1), rv = normal(14, d.c, k.sd * k.sd, 0.01);
    for (float &v : rv)
        v = fabsf(v) + 1e-3f;
    std::vector<float> sm(d.c), si(d.c);
    assert_int_equal(pnx_ref_batchnorm_forward(x.data(), d, gamma.data(), beta.data(), rm.data(),
                                               rv.data(), training, 0.1f, 1e-5f, y.data(),
                                               sm.data(), si.data()),
                     0);
    if (relu)
        pnx_ref_relu_forward(y.data(), y.data(), total);
    std::vector<float> r = y;
    append(r, rm);
    append(r, rv);
    if (!training)
        return r;
    append(r, sm);
    append(r, si);
    std::vector<float> dy = normal(15, total, 0, 1), dx = normal(16, total, 0, 1);
    std::vector<float> dg = normal(17, d.c, 0, 1), dbt = normal(18, d.c, 0, 1);
    std::vector<float> g = dy;
    if (relu)
        pnx_ref_relu_backward(y.data(), dy.data(), g.data(), total);
    pnx_ref_batchnorm_backward(x.data(), d, gamma.data(), sm.data(), si.data(), g.data(), dx.data(),
                               1, dg.data(), dbt.data());
    append(r, dx);
    append(r, dg);
    append(r, dbt);
    std::vector<float> dx2(total), scratch(total);
    pnx_ref_batchnorm_backward(x.data(), d, gamma.data(), sm.data(), si.data(), g.data(),
                               dx2.data(), 0, dg.data(), dbt.data());
    append(r, dx2);
    pnx_ref_batchnorm_backward(x.data(), d, gamma.data(), sm.data(), si.data(), g.data(),
                               scratch.data(), 0, dg.data(), dbt.data());
    append(r, dg);
    append(r, dbt);
    return r;
}

/* Output by output (y, running mean and var, saved mean and invstd, then
 * dx accumulated, dgamma, dbeta, dx stored, dgamma, dbeta): one bound over
 * the whole concatenation would let the large statistics hide errors in y. */
void bn_compare(const bn_case &k, int training, const std::vector<float> &got,
                const std::vector<float> &want, const char *what)
{
    const size_t total = (size_t)k.d.n * k.d.c * k.d.h * k.d.w, c = (size_t)k.d.c;
    std::vector<size_t> sizes = {total, c, c};
    if (training)
        sizes.insert(sizes.end(), {c, c, total, c, c, total, c, c});
    assert_int_equal(got.size(), want.size());
    size_t at = 0;
    for (size_t i = 0; i < sizes.size(); i++) {
        char part[200];
        snprintf(part, sizeof part, "%s, output %zu", what, i);
        close_norm(std::vector<float>(got.begin() + at, got.begin() + at + sizes[i]),
                   std::vector<float>(want.begin() + at, want.begin() + at + sizes[i]), 1e-6, part);
        at += sizes[i];
    }
    assert_int_equal(at, got.size());
}

void test_batchnorm(void **state)
{
    (void)state;
    for (const bn_case &k : bn_cases)
        for (int training = 0; training <= 1; training++)
            for (int relu = 0; relu <= 1; relu++) {
                char what[160];
                snprintf(what, sizeof what, "batchnorm %dx%dx%dx%d mean %g train %d relu %d", k.d.n,
                         k.d.c, k.d.h, k.d.w, k.mean, training, relu);
                std::vector<float> fwd;
                const std::vector<float> got =
                    run_orders([&] { return bn_run(k, training, relu, 0, 0, &fwd); }, false, what);
                /* the scalar path (one float off alignment) gives the same bits */
                same_bits(bn_run(k, training, relu, 1, 0, nullptr), got, what);
                /* y == x gives the forward's bits */
                same_bits(bn_run(k, training, relu, 0, 1, nullptr), fwd, what);
                bn_compare(k, training, got, bn_ref(k, training, relu), what);
            }
}

/* ---- ReLU, max-pool, copies
 * --------------------------------------------------------- */

void test_relu(void **state)
{
    (void)state;
    const size_t ns[] = {1, 3, 4, 1001, 4096, 70001};
    for (size_t n : ns)
        for (int mis = 0; mis <= 1; mis++) {
            std::vector<float> x = normal(20, n, 0, 1), dy = normal(21, n, 0, 1);
            x[0] = 0.0f;
            if (n > 2)
                x[2] = NAN;
            std::vector<float> want(n), want_dx(n);
            pnx_ref_relu_forward(x.data(), want.data(), n);
            pnx_ref_relu_backward(want.data(), dy.data(), want_dx.data(), n);
            append(want, want_dx);
            const std::vector<float> got = run_orders(
                [&] {
                    dev dx_(x, mis), y(n, mis), g(dy, mis), dx(n, mis);
                    assert_int_equal(pnx_cuk_relu_forward(nullptr, dx_.p, y.p, n), 0);
                    assert_int_equal(pnx_cuk_relu_backward(nullptr, y.p, g.p, dx.p, n), 0);
                    std::vector<float> r = y.host();
                    append(r, dx.host());
                    return r;
                },
                true, "relu");
            same_bits(got, want, "relu vs reference");
        }
}

void test_maxpool(void **state)
{
    (void)state;
    /* even sides: the backend's contract, which cuda_backend.c checks */
    const pnx_dims ds[] = {{1, 1, 2, 2}, {2, 3, 6, 10}, {1, 5, 8, 8}, {2, 48, 6, 4}, {3, 1, 2, 14}};
    for (const pnx_dims &d : ds) {
        const size_t total = (size_t)d.n * d.c * d.h * d.w;
        const size_t out = (size_t)d.n * d.c * (d.h / 2) * (d.w / 2);
        pnx_rng r;
        pnx_rng_seed(&r, 30, 1);
        std::vector<float> x(total);
        for (float &v : x) /* few levels: many ties */
            v = (float)pnx_rng_below(&r, 3);
        if (total > 9)
            x[9] = NAN;
        const std::vector<float> dy = normal(31, out, 0, 1), dx0 = normal(32, total, 0, 1);
        std::vector<float> want(out), want_dx = dx0, want_dx2(total);
        std::vector<uint8_t> am(out);
        pnx_ref_maxpool2x2_forward(x.data(), d, want.data(), am.data());
        pnx_ref_maxpool2x2_backward(d, am.data(), dy.data(), want_dx.data(), 1);
        pnx_ref_maxpool2x2_backward(d, am.data(), dy.data(), want_dx2.data(), 0);
        for (uint8_t a : am)
            want.push_back((float)a);
        append(want, want_dx);
        append(want, want_dx2);
        const std::vector<float> got = run_orders(
            [&] {
                dev xd(x, 0), y(out, 0), g(dy, 0), dx(dx0, 0), dx2(total, 0);
                std::vector<uint8_t> a(out + 1, 0xff);
                assert_int_equal(pnx_cuk_maxpool_forward(nullptr, xd.p, d, y.p, a.data()), 0);
                assert_int_equal(pnx_cuk_maxpool_backward(nullptr, d, a.data(), g.p, dx.p, 1), 0);
                assert_int_equal(pnx_cuk_maxpool_backward(nullptr, d, a.data(), g.p, dx2.p, 0), 0);
                std::vector<float> res = y.host();
                for (size_t i = 0; i < out; i++)
                    res.push_back((float)a[i]);
                append(res, dx.host());
                append(res, dx2.host());
                return res;
            },
            true, "maxpool");
        same_bits(got, want, "maxpool vs reference");
    }
}

/* Concat and split as the backend does them: one copy_rows per input. */
void test_copy_rows(void **state)
{
    (void)state;
    const int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {2, 48, 16, 4}, {3, 5, 1, 13}};
    for (const auto &s : shapes) {
        const int n = s[0], ca = s[1], cb = s[2];
        const size_t hw = (size_t)s[3];
        const size_t ta = (size_t)n * ca * hw, tb = (size_t)n * cb * hw, ty = ta + tb;
        const std::vector<float> a = normal(40, ta, 0, 1), b = normal(41, tb, 0, 1);
        const std::vector<float> dy = normal(42, ty, 0, 1), da0 = normal(43, ta, 0, 1);
        std::vector<float> want(ty), want_da = da0, want_db(tb);
        pnx_ref_concat_channels(a.data(), ca, b.data(), cb, n, hw, want.data());
        pnx_ref_split_channels(dy.data(), ca, cb, n, hw, want_da.data(), 1, want_db.data(), 0);
        append(want, want_da);
        append(want, want_db);
        const size_t pitch = (size_t)(ca + cb) * hw;
        const std::vector<float> got = run_orders(
            [&] {
                dev ad(a, 0), bd(b, 0), y(ty, 0), g(dy, 0), da(da0, 0), db(tb, 0);
                assert_int_equal(
                    pnx_cuk_copy_rows(nullptr, y.p, pitch, ad.p, ca * hw, ca * hw, n, 0), 0);
                assert_int_equal(
                    pnx_cuk_copy_rows(nullptr, y.p + ca * hw, pitch, bd.p, cb * hw, cb * hw, n, 0),
                    0);
                assert_int_equal(
                    pnx_cuk_copy_rows(nullptr, da.p, ca * hw, g.p, pitch, ca * hw, n, 1), 0);
                assert_int_equal(
                    pnx_cuk_copy_rows(nullptr, db.p, cb * hw, g.p + ca * hw, pitch, cb * hw, n, 0),
                    0);
                std::vector<float> r = y.host();
                append(r, da.host());
                append(r, db.host());
                return r;
            },
            true, "copy_rows");
        same_bits(got, want, "copy_rows vs reference");
    }
}

/* ---- loss
 * -------------------------------------------------------------------------- */

void test_loss(void **state)
{
    (void)state;
    const size_t counts[] = {1, 777, 4096, 140001};
    for (size_t count : counts) {
        const std::vector<float> logits = normal(50, count, -0.5, 3);
        pnx_rng r;
        pnx_rng_seed(&r, 51, 1);
        std::vector<float> target(count);
        for (float &t : target)
            t = (float)pnx_rng_below(&r, 2);
        const float bw = 0.7f, dw = 1.3f;
        pnx_loss want;
        std::vector<float> want_d(count);
        pnx_ref_seg_loss(logits.data(), target.data(), count, bw, dw, &want, want_d.data());

        double sums[4];
        const std::vector<float> got_sums = run_orders(
            [&] {
                dev l(logits, 0), t(target, 0);
                std::vector<char> scratch(pnx_cuk_loss_scratch());
                double s[4];
                assert_int_equal(pnx_cuk_loss_sums(nullptr, l.p, t.p, count, scratch.data(), s), 0);
                memcpy(sums, s, sizeof s);
                return std::vector<float>((const float *)s, (const float *)s + 8);
            },
            false, "loss sums");
        (void)got_sums;
        /* as cuda_backend.c turns the sums into the loss */
        const double smooth = 1.0, denom = sums[2] + sums[3] + smooth;
        const double bce = sums[0] / (double)count;
        const double dice = 1.0 - (2.0 * sums[1] + smooth) / denom;
        assert_true(fabs(bce - want.bce) <= 1e-12 * fabs(want.bce) + 1e-300);
        assert_true(fabs(dice - want.dice) <= 1e-12 * fabs(want.dice) + 1e-15);

        const std::vector<float> got = run_orders(
            [&] {
                dev l(logits, 0), t(target, 0), d(count, 0);
                assert_int_equal(
                    pnx_cuk_loss_grad(nullptr, l.p, t.p, count, bw, dw, sums[1], denom, d.p), 0);
                return d.host();
            },
            true, "loss grad");
        close_norm(got, want_d, 1e-6, "loss grad vs reference");
    }
}

/* ---- Adam
 * -------------------------------------------------------------------------- */

void test_adam(void **state)
{
    (void)state;
    const size_t ns[] = {1, 5, 1024, 30001};
    const double wds[] = {0.0, 0.01};
    const int64_t steps[] = {1, 10};
    for (size_t n : ns)
        for (double wd : wds)
            for (int64_t step : steps) {
                const pnx_adam_hparams h = {1e-3, 0.9, 0.999, 1e-8, wd};
                const std::vector<float> p0 = normal(60, n, 0, 1), g = normal(61, n, 0, 0.1);
                std::vector<float> m0 = normal(62, n, 0, 0.01), v0 = normal(63, n, 0, 0.001);
                for (float &v : v0)
                    v = v * v;
                std::vector<float> want = p0, wm = m0, wv = v0;
                pnx_ref_adam_update(want.data(), g.data(), wm.data(), wv.data(), n, &h, step);
                append(want, wm);
                append(want, wv);
                /* the factors as cuda_backend.c computes them */
                const double bc1 = 1.0 - pow(h.beta1, (double)step);
                const double bc2 = 1.0 - pow(h.beta2, (double)step);
                const pnx_cuk_adam a = {(float)(h.lr / bc1),    (float)sqrt(bc2),
                                        (float)h.beta1,         (float)h.beta2,
                                        (float)(1.0 - h.beta1), (float)(1.0 - h.beta2),
                                        (float)h.eps,           (float)h.weight_decay};
                const std::vector<float> got = run_orders(
                    [&] {
                        dev p(p0, 0), gd(g, 0), m(m0, 0), v(v0, 0);
                        assert_int_equal(pnx_cuk_adam_update(nullptr, p.p, gd.p, m.p, v.p, n, &a),
                                         0);
                        std::vector<float> r = p.host();
                        append(r, m.host());
                        append(r, v.host());
                        return r;
                    },
                    true, "adam");
                same_bits(got, want, "adam vs reference");
            }
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulator),  cmocka_unit_test(test_bias),
        cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_relu),
        cmocka_unit_test(test_maxpool),   cmocka_unit_test(test_copy_rows),
        cmocka_unit_test(test_loss),      cmocka_unit_test(test_adam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
