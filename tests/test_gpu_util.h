/*
 * tests/test_gpu_util.h — what the gpu tests share. Plain C with a tiny
 * check macro instead of cmocka, so the tests build on a GPU host that has
 * only CUDA, cuDNN and a compiler (docs/gpu.md).
 *
 * Every comparison is normwise: max |got − want| / max |want|, so a value
 * near zero does not blow up the error of an otherwise exact tensor.
 */
#ifndef PNX_TEST_GPU_UTIL_H
#define PNX_TEST_GPU_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/backend.h"
#include "model/cuda/cuda_backend.h"
#ifdef PNX_TEST_CPU_BACKEND
#include "model/cpu/cpu_backend.h"
#endif

#define GPU_TEST_SKIP 77

static int gpu_failures;
static int gpu_checks;

/* Records a failure with its place and carries on (later checks still run). */
#define GPU_CHECK(cond, ...)                                                                      \
    do {                                                                                          \
        gpu_checks++;                                                                             \
        if (!(cond)) {                                                                            \
            gpu_failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fprintf(stderr, "\n");                                                                \
        }                                                                                         \
    } while (0)

/* For calls that return a PNX code: a failure is reported with its message. */
#define GPU_OK(call)                                                                              \
    do {                                                                                          \
        int rc_ = (call);                                                                         \
        GPU_CHECK(rc_ == 0, "%s -> %d (%s)", #call, rc_, pnx_errmsg());                           \
    } while (0)

/* First thing in main: stdout line-buffered, so that through a pipe
 * (`test_gpu_ops 2>&1 | tee log`) each printed error stays beside the FAIL
 * lines of stderr, and a run killed by a timeout keeps what it printed. */
static inline void gpu_test_begin(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* PNX_GPU_TEST_STANDIN=cpu (or reference) runs a test with that backend in
 * the GPU's place: a check of the test itself on a machine without a GPU
 * (the CPU backend only where the test was built with it). */
static inline const char *gpu_test_standin(void)
{
    const char *s = getenv("PNX_GPU_TEST_STANDIN");
    return s && *s ? s : NULL;
}

/* Returns 0 when a GPU is usable (or a stand-in was asked for), else prints
 * why and returns 77 (skip). */
static inline int gpu_test_skip_reason(const char *test)
{
    char why[256];
    if (gpu_test_standin()) {
        printf("%s: running on the stand-in backend '%s', not a GPU\n", test,
               gpu_test_standin());
        return 0;
    }
    if (pnx_cuda_device_count(why, sizeof why) > 0)
        return 0;
    printf("%s: SKIPPED: %s\n", test, why);
    return GPU_TEST_SKIP;
}

/* The backend under test: CUDA with opt, or the stand-in. */
static inline int gpu_test_backend(pnx_backend **out, const pnx_cuda_options *opt)
{
    const char *standin = gpu_test_standin();
    if (!standin)
        return pnx_backend_cuda_create(out, opt);
#ifdef PNX_TEST_CPU_BACKEND
    if (strcmp(standin, "cpu") == 0)
        return pnx_backend_cpu_create(out, 0);
#endif
    if (strcmp(standin, "reference") == 0)
        return pnx_backend_reference_create(out);
    return pnx_fail(PNX_EINVAL, "PNX_GPU_TEST_STANDIN=%s: not a backend this test has", standin);
}

static inline int gpu_test_finish(const char *test)
{
    printf("%s: %d checks, %d failed\n", test, gpu_checks, gpu_failures);
    return gpu_failures ? 1 : 0;
}

static inline void fill_normal(pnx_rng *r, float *v, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(mean + sd * pnx_rng_normal(r));
}

static inline float *host_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(2);
    }
    return p;
}

/* A device copy of host (count floats); NULL host gives zeros. */
static inline float *dev_floats(pnx_backend *be, const float *host, size_t count)
{
    void *p = NULL;
    if (be->ops->alloc(be, count * sizeof(float), &p) != 0) {
        fprintf(stderr, "device alloc: %s\n", pnx_errmsg());
        exit(2);
    }
    if (host && be->ops->upload(be, p, host, count * sizeof(float)) != 0) {
        fprintf(stderr, "upload: %s\n", pnx_errmsg());
        exit(2);
    }
    return p;
}

static inline void dev_read(pnx_backend *be, float *host, const float *dev, size_t count)
{
    if (be->ops->download(be, host, dev, count * sizeof(float)) != 0) {
        fprintf(stderr, "download: %s\n", pnx_errmsg());
        exit(2);
    }
}

/* An activation tensor of shape d on be (act_size bytes an element), from
 * host float32 NCHW through act_upload; NULL host gives zeros. */
static inline float *dev_act(pnx_backend *be, const float *host, pnx_dims d)
{
    void *p = NULL;
    if (be->ops->alloc(be, pnx_act_bytes(be, d), &p) != 0) {
        fprintf(stderr, "device alloc: %s\n", pnx_errmsg());
        exit(2);
    }
    if (host && be->ops->act_upload(be, p, host, d) != 0) {
        fprintf(stderr, "act_upload: %s\n", pnx_errmsg());
        exit(2);
    }
    return p;
}

static inline void act_read(pnx_backend *be, float *host, const float *dev, pnx_dims d)
{
    if (be->ops->act_download(be, host, dev, d) != 0) {
        fprintf(stderr, "act_download: %s\n", pnx_errmsg());
        exit(2);
    }
}

/* v rounded to the nearest bfloat16 (ties to even), as float: what
 * __float2bfloat16_rn keeps. NaN stays NaN. */
static inline float bf16_round(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return v;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline void round_bf16(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = bf16_round(v[i]);
}

static inline double rel_error(const float *got, const float *want, size_t n)
{
    double max_diff = 0, max_want = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i]))
            return INFINITY;
        if (d > max_diff)
            max_diff = d;
        if (fabs((double)want[i]) > max_want)
            max_want = fabs((double)want[i]);
    }
    return max_want > 0 ? max_diff / max_want : max_diff;
}

/* Compares count floats of a device tensor with the host reference. */
#define GPU_CLOSE(be, dev, want, count, tol, ...)                                                 \
    do {                                                                                          \
        float *got_ = host_floats(count);                                                         \
        dev_read((be), got_, (dev), (count));                                                     \
        double e_ = rel_error(got_, (want), (count));                                             \
        char what_[200];                                                                          \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                               \
        GPU_CHECK(e_ <= (tol), "%s: relative error %.3g > %.3g", what_, e_, (double)(tol));      \
        free(got_);                                                                               \
    } while (0)

/* The same for an activation of shape d (read through act_download); prints
 * every error, so a first run on a new card shows the margins. */
#define GPU_ACT_CLOSE(be, dev, want, d, tol, ...)                                                 \
    do {                                                                                          \
        const size_t n_ = pnx_dims_count(d);                                                      \
        float *got_ = host_floats(n_);                                                            \
        act_read((be), got_, (dev), (d));                                                         \
        double e_ = rel_error(got_, (want), n_);                                                  \
        char what_[200];                                                                          \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                               \
        printf("  %-60s error %.3g (tolerance %.3g)\n", what_, e_, (double)(tol));               \
        GPU_CHECK(e_ <= (tol), "%s: relative error %.3g > %.3g", what_, e_, (double)(tol));      \
        free(got_);                                                                               \
    } while (0)

#endif
