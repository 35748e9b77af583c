/*
 * model/cuda/cudnn_conv.c — every cuDNN call of pneumoseg: the three
 * convolutions of the U-Net (3×3 pad 1, 1×1, and the 2×2 stride-2
 * transposed conv) forward and backward, on cuDNN's legacy convolution API
 * (deprecated in cuDNN 9 but supported; moving to the graph API touches only
 * this file).
 *
 * Each op is a cuDNN convolution "x (n,c,h,w) * filter (k,c,r,r) → y":
 *   conv3x3 / conv1x1  x = input, filter = weight (Cout,Cin,r,r), y = output;
 *   upconv2x2          x = the up-sampled output (N,Cout,2H,2W), filter =
 *                      the ConvTranspose2d weight (Cin,Cout,2,2) as is,
 *                      y = the input (N,Cin,H,W): its forward is cuDNN's
 *                      backward-data and its backward-data cuDNN's forward,
 *                      exactly as PyTorch runs ConvTranspose2d.
 * Two activation formats: float32 NCHW, and for mixed precision bfloat16
 * NHWC (cuDNN's BFLOAT16 configuration: x, y and the filter bfloat16, the
 * filter in its NHWC layout (K,R,S,C), compute type float32, tensor-core
 * math, which needs compute capability 8.0 or newer). The float32 master
 * weight is converted to a bfloat16 (K,R,S,C) copy on every call, and
 * cuDNN's bfloat16 filter gradient is added into the float32 one, so no
 * weight copy can go stale.
 *
 * Algorithms are chosen once per (direction, shape, format) and cached:
 * cuDNN's heuristics by default, measured timings as an option; candidates
 * that are not deterministic (deterministic mode) or need more workspace
 * than the limit are skipped, and one that refuses to run (a "not
 * supported" or misaligned-pointer status) is dropped for the next. The
 * math type comes from the chosen algorithm in bfloat16 and when TF32 is
 * allowed, and is CUDNN_FMA_MATH (plain FP32) otherwise. One workspace,
 * grown to the largest chosen algorithm's need, serves every call. Batches
 * whose tensors would pass 2^31 elements (cuDNN's limit, in elements
 * whatever their size) run in chunks, cut where the pointers keep the
 * 16-byte alignment cuDNN's tensor-core kernels need (always, unless one
 * image alone nearly reaches the limit).
 */
#include <assert.h>
#include <cudnn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/cuda/bf16_kernels.h"
#include "model/cuda/cuda_bf16.h"
#include "model/cuda/cuda_internal.h"

#define ALGO_CACHE_MAX 512
#define ALGO_CANDIDATES_MAX 16
#define CUDNN_MAX_ELEMENTS ((size_t)INT_MAX)
/* Bytes of alignment cuDNN's tensor-core kernels want of NHWC pointers. */
#define TENSOR_ALIGN 16
/* Placement of the bfloat16 filter copies in their buffer. */
#define FILTER_ALIGN 256

typedef enum conv_dir { DIR_FORWARD = 0, DIR_BACKWARD_DATA, DIR_BACKWARD_FILTER } conv_dir;

/* The activation format: the tensors' data type and layout. */
typedef enum act_format { ACT_F32_NCHW = 0, ACT_BF16_NHWC } act_format;

/* A convolution in cuDNN's terms; y is (n, k, oh, ow). Compared with memcmp
 * as the algorithm cache's key: ints only, no padding. */
typedef struct conv_geom {
    int n, c, h, w; /* x */
    int k, r;       /* filter (k, c, r, r) */
    int pad, stride;
    int format;     /* act_format */
} conv_geom;

typedef struct algo_choice {
    conv_geom g;
    conv_dir dir;
    int algo;
    cudnnMathType_t math;
    size_t workspace;
} algo_choice;

struct pnx_cudnn_state {
    cudnnHandle_t handle;
    cudnnTensorDescriptor_t xdesc, ydesc;
    cudnnFilterDescriptor_t wdesc;
    cudnnConvolutionDescriptor_t cdesc;
    cudaStream_t stream;
    pnx_cuda_options opt;
    void *workspace;
    size_t workspace_bytes;
    /* bfloat16 (K,R,S,C) copies of one weight and of its gradient, in two
     * halves of one buffer, grown on demand. */
    void *filters;
    size_t filters_bytes;
    algo_choice cache[ALGO_CACHE_MAX];
    int n_cache;
};

static int cudnn_fail(cudnnStatus_t s, const char *what)
{
    return pnx_fail(PNX_EDEVICE, "cuDNN %s: %s", what, cudnnGetErrorString(s));
}

#define CUDNN_TRY(call, what)                                                                     \
    do {                                                                                          \
        cudnnStatus_t s_ = (call);                                                                \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                           \
            return cudnn_fail(s_, what);                                                          \
    } while (0)

static int out_side(int in, int r, int pad, int stride)
{
    return (in + 2 * pad - r) / stride + 1;
}

/* a·b·c, or SIZE_MAX when that overflows (a count cuDNN refuses anyway). */
static size_t count3(int a, int b, int c)
{
    const size_t ab = (size_t)a * (size_t)b; /* two ints: no overflow */
    return ab > SIZE_MAX / (size_t)c ? SIZE_MAX : ab * (size_t)c;
}

static size_t element_size(const conv_geom *g)
{
    return g->format == ACT_BF16_NHWC ? sizeof(pnx_bf16) : sizeof(float);
}

/* ---- life cycle ----------------------------------------------------------------- */

int pnx_cudnn_check_version(char *buf, size_t size)
{
    size_t v = cudnnGetVersion();
    size_t major = v / 10000, minor = v % 10000 / 100, patch = v % 100;
    if (size)
        snprintf(buf, size, "%zu.%zu.%zu", major, minor, patch);
    if (major != CUDNN_MAJOR)
        return pnx_fail(PNX_EDEVICE,
                        "cuDNN mismatch: the library loaded is %zu.%zu.%zu, this build needs "
                        "cuDNN %d (check LD_LIBRARY_PATH)", major, minor, patch, CUDNN_MAJOR);
    size_t rt = cudnnGetCudartVersion();
    if (rt / 1000 != CUDART_VERSION / 1000)
        return pnx_fail(PNX_EDEVICE,
                        "cuDNN mismatch: the cuDNN loaded was built for CUDA %zu, this build "
                        "uses CUDA %d (install the cuDNN for CUDA %d)", rt / 1000,
                        CUDART_VERSION / 1000, CUDART_VERSION / 1000);
    return 0;
}

void pnx_cudnn_destroy(pnx_cudnn_state *st)
{
    if (!st)
        return;
    if (st->cdesc)
        cudnnDestroyConvolutionDescriptor(st->cdesc);
    if (st->wdesc)
        cudnnDestroyFilterDescriptor(st->wdesc);
    if (st->ydesc)
        cudnnDestroyTensorDescriptor(st->ydesc);
    if (st->xdesc)
        cudnnDestroyTensorDescriptor(st->xdesc);
    if (st->handle)
        cudnnDestroy(st->handle);
    cudaFree(st->workspace);
    cudaFree(st->filters);
    free(st);
}

int pnx_cudnn_create(pnx_cudnn_state **out, cudaStream_t stream, const pnx_cuda_options *opt)
{
    *out = NULL;
    pnx_cudnn_state *st = calloc(1, sizeof *st);
    if (!st)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    st->stream = stream;
    st->opt = *opt;
    cudnnStatus_t s = cudnnCreate(&st->handle);
    if (s != CUDNN_STATUS_SUCCESS) {
        st->handle = NULL;
        pnx_cudnn_destroy(st);
        return pnx_fail(PNX_EDEVICE,
                        "cuDNN could not start: %s (a driver too old for this cuDNN, or cuDNN's "
                        "sub-libraries libcudnn_cnn/libcudnn_ops not found?)",
                        cudnnGetErrorString(s));
    }
    if ((s = cudnnSetStream(st->handle, stream)) != CUDNN_STATUS_SUCCESS ||
        (s = cudnnCreateTensorDescriptor(&st->xdesc)) != CUDNN_STATUS_SUCCESS ||
        (s = cudnnCreateTensorDescriptor(&st->ydesc)) != CUDNN_STATUS_SUCCESS ||
        (s = cudnnCreateFilterDescriptor(&st->wdesc)) != CUDNN_STATUS_SUCCESS ||
        (s = cudnnCreateConvolutionDescriptor(&st->cdesc)) != CUDNN_STATUS_SUCCESS) {
        pnx_cudnn_destroy(st);
        return cudnn_fail(s, "set-up");
    }
    *out = st;
    return 0;
}

/* ---- descriptors and algorithm choice -------------------------------------------- */

/* Sizes are given as (n, c, h, w) whatever the layout; the format says how
 * they lie in memory, for the filter too (NHWC: (K,R,S,C)). The compute
 * type is float32 in both formats: bfloat16 products summed in float32. */
static int set_descriptors(pnx_cudnn_state *st, const conv_geom *g)
{
    const int bf16 = g->format == ACT_BF16_NHWC;
    const cudnnDataType_t type = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    const cudnnTensorFormat_t layout = bf16 ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    const int oh = out_side(g->h, g->r, g->pad, g->stride);
    const int ow = out_side(g->w, g->r, g->pad, g->stride);
    CUDNN_TRY(cudnnSetTensor4dDescriptor(st->xdesc, layout, type, g->n, g->c, g->h, g->w),
              "input descriptor");
    CUDNN_TRY(cudnnSetFilter4dDescriptor(st->wdesc, type, layout, g->k, g->c, g->r, g->r),
              "filter descriptor");
    CUDNN_TRY(cudnnSetConvolution2dDescriptor(st->cdesc, g->pad, g->pad, g->stride, g->stride, 1,
                                              1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
              "convolution descriptor");
    CUDNN_TRY(cudnnSetTensor4dDescriptor(st->ydesc, layout, type, g->n, g->k, oh, ow),
              "output descriptor");
    return 0;
}

/* One candidate, whatever the direction. */
typedef struct candidate {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} candidate;

static int list_candidates(pnx_cudnn_state *st, conv_dir dir, candidate *out, int *count)
{
    const int measured = st->opt.algo_search == PNX_CUDA_ALGO_MEASURED;
    int n = 0;
    switch (dir) {
    case DIR_FORWARD: {
        cudnnConvolutionFwdAlgoPerf_t perf[ALGO_CANDIDATES_MAX];
        CUDNN_TRY(measured ? cudnnFindConvolutionForwardAlgorithm(
                                 st->handle, st->xdesc, st->wdesc, st->cdesc, st->ydesc,
                                 ALGO_CANDIDATES_MAX, &n, perf)
                           : cudnnGetConvolutionForwardAlgorithm_v7(
                                 st->handle, st->xdesc, st->wdesc, st->cdesc, st->ydesc,
                                 ALGO_CANDIDATES_MAX, &n, perf),
                  "forward algorithm search");
        for (int i = 0; i < n; i++)
            out[i] = (candidate){(int)perf[i].algo, perf[i].status, perf[i].determinism,
                                 perf[i].mathType};
        break;
    }
    case DIR_BACKWARD_DATA: {
        cudnnConvolutionBwdDataAlgoPerf_t perf[ALGO_CANDIDATES_MAX];
        CUDNN_TRY(measured ? cudnnFindConvolutionBackwardDataAlgorithm(
                                 st->handle, st->wdesc, st->ydesc, st->cdesc, st->xdesc,
                                 ALGO_CANDIDATES_MAX, &n, perf)
                           : cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                 st->handle, st->wdesc, st->ydesc, st->cdesc, st->xdesc,
                                 ALGO_CANDIDATES_MAX, &n, perf),
                  "backward-data algorithm search");
        for (int i = 0; i < n; i++) {
            /* Algorithm 0 sums with atomics whatever cuDNN reports. */
            cudnnDeterminism_t det = perf[i].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0
                                         ? CUDNN_NON_DETERMINISTIC
                                         : perf[i].determinism;
            out[i] = (candidate){(int)perf[i].algo, perf[i].status, det, perf[i].mathType};
        }
        break;
    }
    case DIR_BACKWARD_FILTER: {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[ALGO_CANDIDATES_MAX];
        CUDNN_TRY(measured ? cudnnFindConvolutionBackwardFilterAlgorithm(
                                 st->handle, st->xdesc, st->ydesc, st->cdesc, st->wdesc,
                                 ALGO_CANDIDATES_MAX, &n, perf)
                           : cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                 st->handle, st->xdesc, st->ydesc, st->cdesc, st->wdesc,
                                 ALGO_CANDIDATES_MAX, &n, perf),
                  "backward-filter algorithm search");
        for (int i = 0; i < n; i++) {
            cudnnDeterminism_t det = perf[i].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
                                             perf[i].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3
                                         ? CUDNN_NON_DETERMINISTIC
                                         : perf[i].determinism;
            out[i] = (candidate){(int)perf[i].algo, perf[i].status, det, perf[i].mathType};
        }
        break;
    }
    }
    *count = n < 0 ? 0 : (n > ALGO_CANDIDATES_MAX ? ALGO_CANDIDATES_MAX : n);
    return 0;
}

/* Every algorithm of a direction in enum order, for when the search offered
 * none that fits: the workspace query then decides what runs. In bfloat16
 * each is offered with tensor-core math, then, for the shapes no tensor-core
 * kernel takes, with plain FMA math. */
static int list_all_algorithms(conv_dir dir, int format, candidate *out)
{
    const int per = dir == DIR_FORWARD         ? CUDNN_CONVOLUTION_FWD_ALGO_COUNT
                    : dir == DIR_BACKWARD_DATA ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT
                                               : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    const cudnnMathType_t bf16_maths[] = {CUDNN_TENSOR_OP_MATH, CUDNN_FMA_MATH};
    const cudnnMathType_t f32_maths[] = {CUDNN_FMA_MATH};
    const int bf16 = format == ACT_BF16_NHWC;
    const cudnnMathType_t *maths = bf16 ? bf16_maths : f32_maths;
    const int n_maths = bf16 ? 2 : 1;
    int n = 0;
    for (int m = 0; m < n_maths; m++)
        for (int i = 0; i < per && n < ALGO_CANDIDATES_MAX; i++) {
            int racy = (dir == DIR_BACKWARD_DATA && i == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) ||
                       (dir == DIR_BACKWARD_FILTER && (i == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
                                                       i == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3));
            out[n++] = (candidate){i, CUDNN_STATUS_SUCCESS,
                                   racy ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC,
                                   maths[m]};
        }
    return n;
}

static cudnnStatus_t workspace_size(pnx_cudnn_state *st, conv_dir dir, int algo, size_t *bytes)
{
    switch (dir) {
    case DIR_FORWARD:
        return cudnnGetConvolutionForwardWorkspaceSize(st->handle, st->xdesc, st->wdesc, st->cdesc,
                                                       st->ydesc, (cudnnConvolutionFwdAlgo_t)algo,
                                                       bytes);
    case DIR_BACKWARD_DATA:
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            st->handle, st->wdesc, st->ydesc, st->cdesc, st->xdesc,
            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    case DIR_BACKWARD_FILTER:
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(
            st->handle, st->xdesc, st->ydesc, st->cdesc, st->wdesc,
            (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
    }
    return CUDNN_STATUS_BAD_PARAM;
}

static const char *dir_name(conv_dir dir)
{
    return dir == DIR_FORWARD ? "forward" : dir == DIR_BACKWARD_DATA ? "backward-data"
                                                                     : "backward-filter";
}

static const algo_choice *first_usable(pnx_cudnn_state *st, const conv_geom *g, conv_dir dir,
                                       const candidate *cand, int n, uint64_t skip);

/* The bit of skip for an algorithm run with a math type: in bfloat16 the
 * same algorithm is offered with tensor-core and with FMA math, and one
 * that refuses to run with the first may still run with the second. */
static uint64_t skip_bit(int algo, cudnnMathType_t math)
{
    return (uint64_t)1 << ((unsigned)algo * 4u + ((unsigned)math & 3u));
}

/* Finds (or chooses and caches) the algorithm for g in direction dir, but
 * none whose skip_bit is set in skip (then the cache is not consulted); leaves
 * the descriptors set for g with the choice's math type. */
static int choose_algo(pnx_cudnn_state *st, const conv_geom *g, conv_dir dir, uint64_t skip,
                       const algo_choice **out)
{
    int rc = set_descriptors(st, g);
    if (rc)
        return rc;
    for (int i = 0; i < st->n_cache && !skip; i++) {
        const algo_choice *e = &st->cache[i];
        if (e->dir == dir && memcmp(&e->g, g, sizeof *g) == 0) {
            CUDNN_TRY(cudnnSetConvolutionMathType(st->cdesc, e->math), "math type");
            *out = e;
            return 0;
        }
    }
    /* The math type the search rates candidates under: bfloat16 is meant
     * for tensor cores; float32 uses them (as TF32) only when allowed. */
    const cudnnMathType_t search_math = g->format == ACT_BF16_NHWC ? CUDNN_TENSOR_OP_MATH
                                        : st->opt.allow_tf32       ? CUDNN_DEFAULT_MATH
                                                                   : CUDNN_FMA_MATH;
    CUDNN_TRY(cudnnSetConvolutionMathType(st->cdesc, search_math), "math type");
    candidate cand[ALGO_CANDIDATES_MAX];
    int n = 0;
    /* A failed search is not final: every algorithm is tried next. */
    if (list_candidates(st, dir, cand, &n) != 0)
        n = 0;
    const algo_choice *found = NULL;
    for (int pass = 0; pass < 2 && !found; pass++) {
        if (pass == 1)
            n = list_all_algorithms(dir, g->format, cand);
        found = first_usable(st, g, dir, cand, n, skip);
    }
    if (found) {
        *out = found;
        return 0;
    }
    return pnx_fail(PNX_EDEVICE,
                    "cuDNN offers no %s%s algorithm within the %.0f MiB workspace limit for a "
                    "%dx%d convolution of a %s (%d,%d,%d,%d) tensor to %d channels",
                    st->opt.deterministic ? "deterministic " : "", dir_name(dir),
                    (double)st->opt.workspace_limit / (1 << 20), g->r, g->r,
                    g->format == ACT_BF16_NHWC ? "bfloat16 NHWC" : "float32 NCHW", g->n, g->c,
                    g->h, g->w, g->k);
}

/* The first candidate that is allowed, not skipped and fits, cached; NULL if
 * none. */
static const algo_choice *first_usable(pnx_cudnn_state *st, const conv_geom *g, conv_dir dir,
                                       const candidate *cand, int n, uint64_t skip)
{
    const int rated_math = st->opt.allow_tf32 || g->format == ACT_BF16_NHWC;
    for (int i = 0; i < n; i++) {
        if (cand[i].status != CUDNN_STATUS_SUCCESS || cand[i].algo < 0 || cand[i].algo >= 16)
            continue;
        if (st->opt.deterministic && cand[i].determinism != CUDNN_DETERMINISTIC)
            continue;
        /* FP32 without TF32: the plain FP32 kernels only. Otherwise the math
         * type the algorithm was rated with, else cuDNN may run a slower
         * kernel than the one it rated. */
        cudnnMathType_t math = rated_math ? cand[i].math : CUDNN_FMA_MATH;
        /* Float32 data may go as far as TF32, never down to FP16. */
        if (g->format != ACT_BF16_NHWC && math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
            continue;
        if (skip & skip_bit(cand[i].algo, math))
            continue;
        if (cudnnSetConvolutionMathType(st->cdesc, math) != CUDNN_STATUS_SUCCESS)
            continue;
        size_t bytes = 0;
        if (workspace_size(st, dir, cand[i].algo, &bytes) != CUDNN_STATUS_SUCCESS ||
            bytes > st->opt.workspace_limit)
            continue;
        if (st->n_cache == ALGO_CACHE_MAX)
            st->n_cache = 0; /* a full cache starts over: shapes are few in practice */
        algo_choice *e = &st->cache[st->n_cache++];
        e->g = *g;
        e->dir = dir;
        e->algo = cand[i].algo;
        e->math = math;
        e->workspace = bytes;
        return e;
    }
    return NULL;
}

/* Drops a cache entry (its algorithm failed to run). */
static void forget_algo(pnx_cudnn_state *st, const algo_choice *e)
{
    const ptrdiff_t i = e - st->cache;
    assert(i >= 0 && i < st->n_cache);
    st->cache[i] = st->cache[--st->n_cache];
}

static int ensure_workspace(pnx_cudnn_state *st, size_t bytes)
{
    if (bytes <= st->workspace_bytes)
        return 0;
    /* No queued convolution may still use the old one: cudaFree only "may"
     * synchronise (cuda_runtime_api.h), so wait for the stream first. */
    (void)cudaStreamSynchronize(st->stream);
    cudaFree(st->workspace);
    st->workspace = NULL;
    st->workspace_bytes = 0;
    cudaError_t err = cudaMalloc(&st->workspace, bytes);
    if (err != cudaSuccess) {
        st->workspace = NULL;
        return pnx_cuda_fail(err, "cuDNN workspace");
    }
    st->workspace_bytes = bytes;
    return 0;
}

/* ---- running one convolution -------------------------------------------------------- */

/* The fewest images whose tensors of per elements of size bytes fill whole
 * TENSOR_ALIGN-byte units: a chunk of a multiple of them starts aligned. */
static size_t aligned_images(size_t per, size_t size)
{
    size_t q = 1;
    while (per * size * q % TENSOR_ALIGN)
        q *= 2;
    return q;
}

/* One cuDNN call of algorithm a, with the descriptors choose_algo set. */
static cudnnStatus_t launch(pnx_cudnn_state *st, conv_dir dir, const algo_choice *a, void *x,
                            void *w, void *y, const float *beta)
{
    const float alpha = 1.0f;
    switch (dir) {
    case DIR_FORWARD:
        return cudnnConvolutionForward(st->handle, &alpha, st->xdesc, x, st->wdesc, w, st->cdesc,
                                       (cudnnConvolutionFwdAlgo_t)a->algo, st->workspace,
                                       a->workspace, beta, st->ydesc, y);
    case DIR_BACKWARD_DATA:
        return cudnnConvolutionBackwardData(st->handle, &alpha, st->wdesc, w, st->ydesc, y,
                                            st->cdesc, (cudnnConvolutionBwdDataAlgo_t)a->algo,
                                            st->workspace, a->workspace, beta, st->xdesc, x);
    case DIR_BACKWARD_FILTER:
        return cudnnConvolutionBackwardFilter(st->handle, &alpha, st->xdesc, x, st->ydesc, y,
                                              st->cdesc, (cudnnConvolutionBwdFilterAlgo_t)a->algo,
                                              st->workspace, a->workspace, beta, st->wdesc, w);
    }
    return CUDNN_STATUS_BAD_PARAM;
}

/* dir = FORWARD:         y = conv(x, w) + beta·y
 *       BACKWARD_DATA:   x = conv_backward_data(w, y) + beta·x
 *       BACKWARD_FILTER: w = conv_backward_filter(x, y) + beta·w
 * with the batch cut into chunks that keep every tensor under cuDNN's
 * element limit. The filter gradient then accumulates chunk after chunk:
 * in w itself, or, when dw_f32 is given (bfloat16), in the float32 dw_f32
 * (K,C,R,R), to which each chunk's bfloat16 gradient in w is added. */
static int run_conv(pnx_backend *be, conv_geom g, conv_dir dir, void *x, void *w, void *y,
                    float beta, float *dw_f32)
{
    assert(!dw_f32 || dir == DIR_BACKWARD_FILTER);
    pnx_cudnn_state *st = cuda_of(be)->conv;
    const int oh = out_side(g.h, g.r, g.pad, g.stride), ow = out_side(g.w, g.r, g.pad, g.stride);
    const size_t x_per = count3(g.c, g.h, g.w), y_per = count3(g.k, oh, ow);
    const size_t per = x_per > y_per ? x_per : y_per;
    if (per > CUDNN_MAX_ELEMENTS)
        return pnx_fail(PNX_ERANGE,
                        "one image's tensor (%zu elements) passes cuDNN's limit of 2^31",
                        per);
    const size_t es = element_size(&g);
    size_t chunk = CUDNN_MAX_ELEMENTS / per;
    if (chunk >= (size_t)g.n) {
        chunk = (size_t)g.n;
    } else {
        /* Both counts are powers of two: the larger is a multiple of both. */
        const size_t qx = aligned_images(x_per, es), qy = aligned_images(y_per, es);
        const size_t q = qx > qy ? qx : qy;
        if (chunk >= q)
            chunk -= chunk % q;
    }
    const int chunk_max = (int)chunk;
    const float one = 1.0f;
    for (int n0 = 0; n0 < g.n; n0 += chunk_max) {
        conv_geom part = g;
        part.n = g.n - n0 < chunk_max ? g.n - n0 : chunk_max;
        char *xp = (char *)x + (size_t)n0 * x_per * es, *yp = (char *)y + (size_t)n0 * y_per * es;
        const float *b = dir == DIR_BACKWARD_FILTER && n0 > 0 && !dw_f32 ? &one : &beta;
        /* An algorithm cuDNN rated usable may still refuse to run (a kernel's
         * own shape or alignment limits; the rating never sees the pointers,
         * and parameters sit at any float offset): the next one is tried.
         * A plain BAD_PARAM counts too, in case a kernel reports such a
         * limit that way; a truly bad call fails with every algorithm, and
         * the last error is reported. */
        uint64_t skip = 0;
        cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
        int algo = -1;
        for (;;) {
            const algo_choice *a;
            int rc = choose_algo(st, &part, dir, skip, &a);
            if (rc && skip)
                return pnx_fail(PNX_EDEVICE,
                                "cuDNN %s convolution: every algorithm it offered failed to "
                                "run, the last (%d) with %s", dir_name(dir), algo,
                                cudnnGetErrorString(s));
            if (!rc)
                rc = ensure_workspace(st, a->workspace);
            if (rc)
                return rc;
            algo = a->algo;
            s = launch(st, dir, a, xp, w, yp, b);
            if (s == CUDNN_STATUS_SUCCESS ||
                (CUDNN_STATUS_CATEGORY(s) != CUDNN_STATUS_NOT_SUPPORTED &&
                 s != CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER && s != CUDNN_STATUS_BAD_PARAM))
                break;
            skip |= skip_bit(algo, a->math);
            forget_algo(st, a);
        }
        if (s != CUDNN_STATUS_SUCCESS) {
            char what[96];
            snprintf(what, sizeof what, "%s convolution (algorithm %d)", dir_name(dir), algo);
            return cudnn_fail(s, what);
        }
        if (dw_f32) {
            int rc = pnx_bfk_filter_grad_add(st->stream, w, g.k, g.c, g.r, g.r, dw_f32);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- the ops, in both formats ----------------------------------------------------- */

static int check_dims(pnx_dims xd, int cout)
{
    if (xd.n < 1 || xd.c < 1 || xd.h < 1 || xd.w < 1 || cout < 1)
        return pnx_fail(PNX_EINVAL, "convolution of a (%d,%d,%d,%d) tensor to %d channels",
                        xd.n, xd.c, xd.h, xd.w, cout);
    return 0;
}

/* cuDNN takes non-const pointers for its inputs too; it does not write them. */
static void *unconst(const void *p)
{
    union {
        const void *c;
        void *m;
    } u = {.c = p};
    return u.m;
}

/* Room for the bfloat16 copies of a weight of count elements and of its
 * gradient. Growing waits for queued work first, so no kernel still reads
 * the old copies. */
static int filter_buffers(pnx_cudnn_state *st, size_t count, pnx_bf16 **w, pnx_bf16 **dw)
{
    if (count > SIZE_MAX / 4 / sizeof(pnx_bf16))
        return pnx_fail(PNX_ERANGE, "a convolution weight of %zu elements is too large", count);
    const size_t half =
        (count * sizeof(pnx_bf16) + FILTER_ALIGN - 1) / FILTER_ALIGN * FILTER_ALIGN;
    if (2 * half > st->filters_bytes) {
        (void)cudaStreamSynchronize(st->stream);
        cudaFree(st->filters);
        st->filters = NULL;
        st->filters_bytes = 0;
        cudaError_t err = cudaMalloc(&st->filters, 2 * half);
        if (err != cudaSuccess) {
            st->filters = NULL;
            return pnx_cuda_fail(err, "bfloat16 copies of a convolution weight");
        }
        st->filters_bytes = 2 * half;
    }
    *w = (pnx_bf16 *)st->filters;
    *dw = (pnx_bf16 *)((char *)st->filters + half);
    return 0;
}

/* The filter cuDNN reads for g: the float32 weight w (K,C,R,R) itself, or
 * its bfloat16 (K,R,R,C) copy, made now in wb. */
static int filter_operand(pnx_cudnn_state *st, const conv_geom *g, const float *w, pnx_bf16 *wb,
                          void **out)
{
    if (g->format == ACT_F32_NCHW) {
        *out = unconst(w);
        return 0;
    }
    *out = wb;
    return pnx_bfk_filter_to_krsc(st->stream, w, g->k, g->c, g->r, g->r, wb);
}

/* dw (K,C,R,R) float32 += the filter gradient of g from its tensors gx, gy
 * (bfloat16: through dwb). */
static int filter_grad(pnx_backend *be, const conv_geom *g, const void *gx, const void *gy,
                       float *dw, pnx_bf16 *dwb)
{
    if (g->format == ACT_F32_NCHW)
        return run_conv(be, *g, DIR_BACKWARD_FILTER, unconst(gx), dw, unconst(gy), 1.0f, NULL);
    return run_conv(be, *g, DIR_BACKWARD_FILTER, unconst(gx), dwb, unconst(gy), 0.0f, dw);
}

/* y (n images of p pixels, c channels) += bias (c). */
static int add_bias(pnx_backend *be, int format, void *y, const float *bias, int n, int c,
                    size_t p)
{
    cudaStream_t s = cuda_of(be)->stream;
    if (format == ACT_F32_NCHW)
        return pnx_cuk_add_bias(s, y, bias, n, c, p);
    return bias ? pnx_bfk_add_bias(s, y, bias, (size_t)n * p, c) : 0;
}

/* db (c) += the sum of dy (n images of p pixels, c channels) per channel. */
static int bias_grad(pnx_backend *be, int format, const void *dy, int n, int c, size_t p,
                     float *db)
{
    cuda_impl *ci = cuda_of(be);
    const size_t pixels = (size_t)n * p;
    const int bf16 = format == ACT_BF16_NHWC;
    void *scratch;
    int rc = pnx_cuda_scratch(be,
                              bf16 ? pnx_bfk_channel_scratch(pixels, c)
                                   : pnx_cuk_channel_scratch(ci->sm_count, n, c, p),
                              &scratch);
    if (rc)
        return rc;
    return bf16 ? pnx_bfk_bias_grad(ci->stream, dy, pixels, c, db, scratch)
                : pnx_cuk_bias_grad(ci->stream, ci->sm_count, dy, n, c, p, db, scratch);
}

/* The bfloat16 filter copies a weight of g's shape needs (none in float32). */
static int filter_room(pnx_backend *be, const conv_geom *g, pnx_bf16 **wb, pnx_bf16 **dwb)
{
    *wb = *dwb = NULL;
    if (g->format == ACT_F32_NCHW)
        return 0;
    return filter_buffers(cuda_of(be)->conv, count3(g->k, g->c, g->r * g->r), wb, dwb);
}

static int conv_forward(pnx_backend *be, int format, int r, int pad, const void *x, pnx_dims xd,
                        const float *w, const float *bias, int cout, void *y)
{
    int rc = check_dims(xd, cout);
    if (rc)
        return rc;
    conv_geom g = {xd.n, xd.c, xd.h, xd.w, cout, r, pad, 1, format};
    pnx_bf16 *wb, *dwb;
    void *wk = NULL;
    rc = filter_room(be, &g, &wb, &dwb);
    if (!rc)
        rc = filter_operand(cuda_of(be)->conv, &g, w, wb, &wk);
    if (!rc)
        rc = run_conv(be, g, DIR_FORWARD, unconst(x), wk, y, 0.0f, NULL);
    if (!rc)
        rc = add_bias(be, format, y, bias, xd.n, cout, (size_t)xd.h * xd.w);
    return rc;
}

static int conv_backward(pnx_backend *be, int format, int r, int pad, const void *x,
                         pnx_dims xd, const float *w, int cout, const void *dy, void *dx,
                         int acc, float *dw, float *db)
{
    int rc = check_dims(xd, cout);
    if (rc)
        return rc;
    conv_geom g = {xd.n, xd.c, xd.h, xd.w, cout, r, pad, 1, format};
    pnx_bf16 *wb, *dwb;
    rc = filter_room(be, &g, &wb, &dwb);
    if (!rc && dx) {
        void *wk = NULL;
        rc = filter_operand(cuda_of(be)->conv, &g, w, wb, &wk);
        if (!rc)
            rc = run_conv(be, g, DIR_BACKWARD_DATA, dx, wk, unconst(dy), acc ? 1.0f : 0.0f,
                          NULL);
    }
    if (!rc)
        rc = filter_grad(be, &g, x, dy, dw, dwb);
    if (!rc)
        rc = bias_grad(be, format, dy, xd.n, cout, (size_t)xd.h * xd.w, db);
    return rc;
}

/* The transposed conv as the convolution "(N,Cout,2H,2W) * (Cin,Cout,2,2),
 * stride 2 → (N,Cin,H,W)" run backwards; in NHWC the filter is (Cin,2,2,Cout). */
static int upconv_geom(pnx_dims xd, int cout, int format, conv_geom *g)
{
    int rc = check_dims(xd, cout);
    if (rc)
        return rc;
    if (xd.h > INT_MAX / 2 || xd.w > INT_MAX / 2)
        return pnx_fail(PNX_ERANGE, "transposed convolution of a %dx%d image: too large", xd.w,
                        xd.h);
    *g = (conv_geom){xd.n, cout, 2 * xd.h, 2 * xd.w, xd.c, 2, 0, 2, format};
    return 0;
}

static int upconv_forward(pnx_backend *be, int format, const void *x, pnx_dims xd,
                          const float *w, const float *bias, int cout, void *y)
{
    conv_geom g;
    int rc = upconv_geom(xd, cout, format, &g);
    if (rc)
        return rc;
    pnx_bf16 *wb, *dwb;
    void *wk = NULL;
    rc = filter_room(be, &g, &wb, &dwb);
    if (!rc)
        rc = filter_operand(cuda_of(be)->conv, &g, w, wb, &wk);
    if (!rc)
        rc = run_conv(be, g, DIR_BACKWARD_DATA, y, wk, unconst(x), 0.0f, NULL);
    if (!rc)
        rc = add_bias(be, format, y, bias, xd.n, cout, (size_t)4 * xd.h * xd.w);
    return rc;
}

static int upconv_backward(pnx_backend *be, int format, const void *x, pnx_dims xd,
                           const float *w, int cout, const void *dy, void *dx, int acc,
                           float *dw, float *db)
{
    conv_geom g;
    int rc = upconv_geom(xd, cout, format, &g);
    if (rc)
        return rc;
    pnx_bf16 *wb, *dwb;
    rc = filter_room(be, &g, &wb, &dwb);
    if (!rc && dx) {
        void *wk = NULL;
        rc = filter_operand(cuda_of(be)->conv, &g, w, wb, &wk);
        if (!rc)
            rc = run_conv(be, g, DIR_FORWARD, unconst(dy), wk, dx, acc ? 1.0f : 0.0f, NULL);
    }
    if (!rc)
        rc = filter_grad(be, &g, dy, x, dw, dwb);
    if (!rc)
        rc = bias_grad(be, format, dy, xd.n, cout, (size_t)4 * xd.h * xd.w, db);
    return rc;
}

/* ---- entry points: float32 NCHW ------------------------------------------------------ */

int pnx_cudnn_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y)
{
    return conv_forward(be, ACT_F32_NCHW, 3, 1, x, xd, w, bias, cout, y);
}

int pnx_cudnn_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db)
{
    return conv_backward(be, ACT_F32_NCHW, 3, 1, x, xd, w, cout, dy, dx, acc, dw, db);
}

int pnx_cudnn_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y)
{
    return conv_forward(be, ACT_F32_NCHW, 1, 0, x, xd, w, bias, cout, y);
}

int pnx_cudnn_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db)
{
    return conv_backward(be, ACT_F32_NCHW, 1, 0, x, xd, w, cout, dy, dx, acc, dw, db);
}

int pnx_cudnn_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                const float *bias, int cout, float *y)
{
    return upconv_forward(be, ACT_F32_NCHW, x, xd, w, bias, cout, y);
}

int pnx_cudnn_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                 int cout, const float *dy, float *dx, int acc, float *dw,
                                 float *db)
{
    return upconv_backward(be, ACT_F32_NCHW, x, xd, w, cout, dy, dx, acc, dw, db);
}

/* ---- entry points: bfloat16 NHWC (float * is nominal: see backend.h) ----------------- */

int pnx_cudnn_bf16_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                   const float *w, const float *bias, int cout, float *y)
{
    return conv_forward(be, ACT_BF16_NHWC, 3, 1, x, xd, w, bias, cout, y);
}

int pnx_cudnn_bf16_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                    const float *w, int cout, const float *dy, float *dx,
                                    int acc, float *dw, float *db)
{
    return conv_backward(be, ACT_BF16_NHWC, 3, 1, x, xd, w, cout, dy, dx, acc, dw, db);
}

int pnx_cudnn_bf16_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                   const float *w, const float *bias, int cout, float *y)
{
    return conv_forward(be, ACT_BF16_NHWC, 1, 0, x, xd, w, bias, cout, y);
}

int pnx_cudnn_bf16_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                    const float *w, int cout, const float *dy, float *dx,
                                    int acc, float *dw, float *db)
{
    return conv_backward(be, ACT_BF16_NHWC, 1, 0, x, xd, w, cout, dy, dx, acc, dw, db);
}

int pnx_cudnn_bf16_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd,
                                     const float *w, const float *bias, int cout, float *y)
{
    return upconv_forward(be, ACT_BF16_NHWC, x, xd, w, bias, cout, y);
}

int pnx_cudnn_bf16_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd,
                                      const float *w, int cout, const float *dy, float *dx,
                                      int acc, float *dw, float *db)
{
    return upconv_backward(be, ACT_BF16_NHWC, x, xd, w, cout, dy, dx, acc, dw, db);
}
