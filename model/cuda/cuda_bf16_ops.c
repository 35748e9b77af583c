/*
 * model/cuda/cuda_bf16_ops.c — the CUDA backend's mixed-precision ops
 * table: each op that touches activations, on bfloat16 NHWC tensors, handed
 * to cudnn_conv.c (convolutions), bf16_narrow.cu (the convolutions with one
 * input or one output channel) or bf16_kernels.cu (everything else).
 *
 * Promises: the semantics of backend.h, with activations rounded to
 * bfloat16 where they are stored and float32 (double in reductions) inside;
 * shapes are checked here, before any launch, as the float32 path does;
 * the host sees activations only as float32 NCHW through act_upload and
 * act_download, which convert on the device. All work runs in order on the
 * backend's stream; the loss and act_download wait for it.
 */
#include "model/cuda/cuda_bf16.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"
#include "model/cuda/bf16_kernels.h"
#include "model/cuda/cuda_internal.h"

/* bfloat16 tensor cores start with Ampere (compute capability 8.0). */
#define BF16_MIN_MAJOR 8

/* The ops table's float * for an activation is nominal (backend.h). */
static const pnx_bf16 *in_bf16(const float *p)
{
    return (const pnx_bf16 *)(const void *)p;
}

static pnx_bf16 *out_bf16(float *p)
{
    return (pnx_bf16 *)(void *)p;
}

/* The element count of d, after checking that its sides are positive and
 * that the count fits a size_t even as float32 bytes (act_upload's and
 * act_download's temporary). */
static int act_count(pnx_dims d, const char *what, size_t *count)
{
    if (d.n < 1 || d.c < 1 || d.h < 1 || d.w < 1)
        return pnx_fail(PNX_EINVAL, "%s of a (%d,%d,%d,%d) tensor", what, d.n, d.c, d.h, d.w);
    const int sides[4] = {d.n, d.c, d.h, d.w};
    size_t n = 1;
    for (int i = 0; i < 4; i++) {
        if (n > SIZE_MAX / sizeof(float) / (size_t)sides[i])
            return pnx_fail(PNX_ERANGE, "%s of a (%d,%d,%d,%d) tensor: too large", what, d.n,
                            d.c, d.h, d.w);
        n *= (size_t)sides[i];
    }
    *count = n;
    return 0;
}

/* ---- convolutions with one channel ------------------------------------------------ */

/* The first 3×3 conv (one input channel) and the 1×1 head (one output
 * channel) run as direct kernels (bf16_narrow.cu): cuDNN's bfloat16 NHWC
 * kernels want channel multiples of 8. Every other convolution is cuDNN's. */

/* The pixel count N·H·W of a convolution of xd to cout channels, after
 * checking that input and output counts fit (the output has cout channels). */
static int conv_pixels(pnx_dims xd, int cout, const char *what, size_t *pixels)
{
    size_t count;
    int rc = act_count(xd, what, &count);
    if (!rc)
        rc = act_count((pnx_dims){xd.n, cout, xd.h, xd.w}, what, &count);
    if (!rc)
        *pixels = count / (size_t)cout;
    return rc;
}

static int bf16_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                const float *bias, int cout, float *y)
{
    if (xd.c != 1)
        return pnx_cudnn_bf16_conv3x3_forward(be, x, xd, w, bias, cout, y);
    size_t pixels;
    int rc = conv_pixels(xd, cout, "3x3 convolution", &pixels);
    if (rc)
        return rc;
    return pnx_bfk_conv3x3_in1_forward(cuda_of(be)->stream, in_bf16(x), xd, w, bias, cout,
                                       out_bf16(y));
}

static int bf16_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                 int cout, const float *dy, float *dx, int acc, float *dw,
                                 float *db)
{
    if (xd.c != 1)
        return pnx_cudnn_bf16_conv3x3_backward(be, x, xd, w, cout, dy, dx, acc, dw, db);
    size_t pixels;
    int rc = conv_pixels(xd, cout, "3x3 convolution backward", &pixels);
    if (rc)
        return rc;
    void *scratch;
    rc = pnx_cuda_scratch(be, pnx_bfk_conv3x3_in1_scratch(pixels, cout), &scratch);
    if (rc)
        return rc;
    return pnx_bfk_conv3x3_in1_backward(cuda_of(be)->stream, in_bf16(x), xd, w, cout,
                                        in_bf16(dy), out_bf16(dx), acc, dw, db,
                                        scratch);
}

static int bf16_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                const float *bias, int cout, float *y)
{
    if (cout != 1)
        return pnx_cudnn_bf16_conv1x1_forward(be, x, xd, w, bias, cout, y);
    size_t pixels;
    int rc = conv_pixels(xd, cout, "1x1 convolution", &pixels);
    if (rc)
        return rc;
    return pnx_bfk_conv1x1_out1_forward(cuda_of(be)->stream, in_bf16(x), pixels, xd.c, w, bias,
                                        out_bf16(y));
}

static int bf16_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                                 int cout, const float *dy, float *dx, int acc, float *dw,
                                 float *db)
{
    if (cout != 1)
        return pnx_cudnn_bf16_conv1x1_backward(be, x, xd, w, cout, dy, dx, acc, dw, db);
    size_t pixels;
    int rc = conv_pixels(xd, cout, "1x1 convolution backward", &pixels);
    if (rc)
        return rc;
    void *scratch;
    rc = pnx_cuda_scratch(be, pnx_bfk_conv1x1_out1_scratch(pixels, xd.c), &scratch);
    if (rc)
        return rc;
    return pnx_bfk_conv1x1_out1_backward(cuda_of(be)->stream, in_bf16(x), pixels, xd.c, w,
                                         in_bf16(dy), out_bf16(dx), acc, dw, db,
                                         scratch);
}

/* ---- BatchNorm, ReLU ----------------------------------------------------------- */

static int bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                      const float *beta, float *rm, float *rv, int training, float momentum,
                      float eps, float *y, float *save_mean, float *save_invstd, int relu)
{
    size_t count;
    int rc = act_count(d, "batch norm", &count);
    if (rc)
        return rc;
    const size_t pixels = count / (size_t)d.c;
    if (training && pixels < 2)
        return pnx_fail(PNX_EINVAL,
                        "batch norm in training needs more than one value per channel "
                        "(batch %d at %dx%d)", d.n, d.w, d.h);
    cuda_impl *c = cuda_of(be);
    void *scratch;
    rc = pnx_cuda_scratch(be, pnx_bfk_channel_scratch(pixels, d.c), &scratch);
    if (rc)
        return rc;
    return pnx_bfk_bn_forward(c->stream, in_bf16(x), pixels, d.c, gamma, beta, rm, rv, training,
                              momentum, eps, relu, out_bf16(y), save_mean, save_invstd, scratch);
}

static int bf16_bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                           const float *beta, float *rm, float *rv, int training, float momentum,
                           float eps, float *y, float *save_mean, float *save_invstd)
{
    return bn_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps, y, save_mean,
                      save_invstd, 0);
}

static int bf16_bn_relu_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                                const float *beta, float *rm, float *rv, int training,
                                float momentum, float eps, float *y, float *save_mean,
                                float *save_invstd)
{
    return bn_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps, y, save_mean,
                      save_invstd, 1);
}

/* y_relu NULL: plain batch norm; else the fused op's output, whose sign
 * masks dy. */
static int bn_backward(pnx_backend *be, const float *x, const float *y_relu, pnx_dims d,
                       const float *gamma, const float *save_mean, const float *save_invstd,
                       const float *dy, float *dx, int acc, float *dgamma, float *dbeta)
{
    size_t count;
    int rc = act_count(d, "batch norm backward", &count);
    if (rc)
        return rc;
    const size_t pixels = count / (size_t)d.c;
    cuda_impl *c = cuda_of(be);
    void *scratch;
    rc = pnx_cuda_scratch(be, pnx_bfk_channel_scratch(pixels, d.c), &scratch);
    if (rc)
        return rc;
    return pnx_bfk_bn_backward(c->stream, in_bf16(x), y_relu ? in_bf16(y_relu) : NULL, pixels,
                               d.c, gamma, save_mean, save_invstd, in_bf16(dy), out_bf16(dx),
                               acc, dgamma, dbeta, scratch);
}

static int bf16_bn_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                            const float *save_mean, const float *save_invstd, const float *dy,
                            float *dx, int acc, float *dgamma, float *dbeta)
{
    return bn_backward(be, x, NULL, d, gamma, save_mean, save_invstd, dy, dx, acc, dgamma,
                       dbeta);
}

static int bf16_bn_relu_backward(pnx_backend *be, const float *x, const float *y, pnx_dims d,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, const float *dy, float *dx, int acc,
                                 float *dgamma, float *dbeta)
{
    /* Without y this would silently be the plain BatchNorm backward. */
    if (!y)
        return pnx_fail(PNX_EINVAL, "fused batch norm + relu backward needs its output y");
    return bn_backward(be, x, y, d, gamma, save_mean, save_invstd, dy, dx, acc, dgamma, dbeta);
}

static int bf16_relu_forward(pnx_backend *be, const float *x, float *y, size_t n)
{
    if (n == 0)
        return 0;
    return pnx_bfk_relu_forward(cuda_of(be)->stream, in_bf16(x), out_bf16(y), n);
}

static int bf16_relu_backward(pnx_backend *be, const float *y, const float *dy, float *dx,
                              size_t n)
{
    if (n == 0)
        return 0;
    return pnx_bfk_relu_backward(cuda_of(be)->stream, in_bf16(y), in_bf16(dy), out_bf16(dx), n);
}

/* ---- pooling, concatenation ------------------------------------------------------ */

static int check_pool(pnx_dims xd)
{
    size_t count;
    int rc = act_count(xd, "2x2 max-pool", &count);
    if (!rc && (xd.h % 2 || xd.w % 2))
        rc = pnx_fail(PNX_EINVAL, "2x2 max-pool needs even sides, got %dx%d", xd.w, xd.h);
    return rc;
}

static int bf16_maxpool_forward(pnx_backend *be, const float *x, pnx_dims xd, float *y,
                                uint8_t *argmax)
{
    int rc = check_pool(xd);
    if (rc)
        return rc;
    return pnx_bfk_maxpool_forward(cuda_of(be)->stream, in_bf16(x), xd, out_bf16(y), argmax);
}

static int bf16_maxpool_backward(pnx_backend *be, pnx_dims xd, const uint8_t *argmax,
                                 const float *dy, float *dx, int acc)
{
    int rc = check_pool(xd);
    if (rc)
        return rc;
    return pnx_bfk_maxpool_backward(cuda_of(be)->stream, xd, argmax, in_bf16(dy), out_bf16(dx),
                                    acc);
}

/* The pixel count n·hw of a concatenation, after checking that the
 * concatenated tensor's element count fits. */
static int concat_pixels(int ca, int cb, int n, size_t hw, size_t *pixels)
{
    if (ca < 1 || cb < 1 || n < 1 || hw < 1 || ca > INT_MAX - cb)
        return pnx_fail(PNX_EINVAL, "concatenation of %d and %d channels, %d images of %zu pixels",
                        ca, cb, n, hw);
    if (hw > SIZE_MAX / sizeof(float) / (size_t)n / (size_t)(ca + cb))
        return pnx_fail(PNX_ERANGE, "concatenation of %d images of %zu pixels: too large", n, hw);
    *pixels = (size_t)n * hw;
    return 0;
}

static int bf16_concat(pnx_backend *be, const float *a, int ca, const float *b, int cb, int n,
                       size_t hw, float *y)
{
    size_t pixels;
    int rc = concat_pixels(ca, cb, n, hw, &pixels);
    if (rc)
        return rc;
    return pnx_bfk_concat(cuda_of(be)->stream, in_bf16(a), ca, in_bf16(b), cb, pixels,
                          out_bf16(y));
}

static int bf16_split(pnx_backend *be, const float *dy, int ca, int cb, int n, size_t hw,
                      float *da, int da_acc, float *db, int db_acc)
{
    size_t pixels;
    int rc = concat_pixels(ca, cb, n, hw, &pixels);
    if (rc)
        return rc;
    /* A NULL half is not wanted, as in the float32 path: the kernel skips
     * it. */
    return pnx_bfk_split(cuda_of(be)->stream, in_bf16(dy), ca, cb, pixels, out_bf16(da), da_acc,
                         out_bf16(db), db_acc);
}

/* ---- the loss -------------------------------------------------------------------- */

/* host sums[4] = {Σ bce, Σ σ·t, Σ σ, Σ t}: block partials on the device,
 * added on the host in block order (deterministic). Waits for the stream. */
static int loss_sums(pnx_backend *be, const float *logits, const float *target, size_t count,
                     double sums[4])
{
    cuda_impl *c = cuda_of(be);
    const size_t blocks = pnx_bfk_loss_blocks(count);
    if (blocks == 0 || blocks > SIZE_MAX / (4 * sizeof(double)))
        return pnx_fail(PNX_EINTERNAL, "the loss over %zu values needs %zu blocks", count,
                        blocks);
    const size_t bytes = blocks * 4 * sizeof(double);
    void *partials;
    int rc = pnx_cuda_scratch(be, bytes, &partials);
    if (!rc)
        rc = pnx_bfk_loss_partials(c->stream, in_bf16(logits), in_bf16(target), count, partials);
    if (rc)
        return rc;
    double *host = malloc(bytes);
    if (!host)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    cudaError_t err = cudaMemcpyAsync(host, partials, bytes, cudaMemcpyDeviceToHost, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->stream);
    if (err == cudaSuccess)
        pnx_bfk_loss_reduce(host, blocks, sums);
    free(host);
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, "reading the loss from the GPU");
}

static int bf16_seg_loss(pnx_backend *be, const float *logits, const float *target, size_t count,
                         float bce_weight, float dice_weight, pnx_loss *loss, float *dlogits)
{
    double sums[4] = {0, 0, 0, 0};
    if (count) {
        int rc = loss_sums(be, logits, target, count, sums);
        if (rc)
            return rc;
    }
    const double denom = pnx_cuda_loss_from_sums(sums, count, bce_weight, dice_weight, loss);
    if (!dlogits || count == 0)
        return 0;
    return pnx_bfk_loss_grad(cuda_of(be)->stream, in_bf16(logits), in_bf16(target), count,
                             bce_weight, dice_weight, sums[1], denom, out_bf16(dlogits));
}

/* ---- activations to and from the host ----------------------------------------------- */

/* Host float32 NCHW → a float32 temporary on the device (the float32
 * table's upload, which returns once the host buffer may be reused) → the
 * bfloat16 NHWC activation, converted on the device behind it on the
 * stream. */
static int bf16_act_upload(pnx_backend *be, float *dst, const float *host, pnx_dims d)
{
    size_t count;
    int rc = act_count(d, "activation upload", &count);
    if (rc)
        return rc;
    void *tmp;
    rc = pnx_cuda_scratch(be, count * sizeof(float), &tmp);
    if (!rc)
        rc = be->ops->upload(be, tmp, host, count * sizeof(float));
    if (!rc)
        rc = pnx_bfk_nchw_to_nhwc(cuda_of(be)->stream, tmp, d, out_bf16(dst));
    return rc;
}

/* The reverse: bfloat16 NHWC → float32 NCHW temporary → host (download
 * waits for the stream). */
static int bf16_act_download(pnx_backend *be, float *host, const float *src, pnx_dims d)
{
    size_t count;
    int rc = act_count(d, "activation download", &count);
    if (rc)
        return rc;
    void *tmp;
    rc = pnx_cuda_scratch(be, count * sizeof(float), &tmp);
    if (!rc)
        rc = pnx_bfk_nhwc_to_nchw(cuda_of(be)->stream, in_bf16(src), d, tmp);
    if (!rc)
        rc = be->ops->download(be, host, tmp, count * sizeof(float));
    return rc;
}

/* ---- installation --------------------------------------------------------------------- */

int pnx_cuda_bf16_install(pnx_backend *be, pnx_backend_ops *ops)
{
    const int device = cuda_of(be)->device;
    int major = 0, minor = 0;
    cudaError_t err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (err != cudaSuccess)
        return pnx_cuda_fail(err, "BF16 mixed precision: reading the compute capability");
    if (major < BF16_MIN_MAJOR)
        return pnx_fail(PNX_EDEVICE,
                        "BF16 mixed precision needs a GPU of compute capability %d.0 or newer "
                        "(Ampere, Hopper); device %d is sm_%d%d: use precision fp32",
                        BF16_MIN_MAJOR, device, major, minor);
    ops->conv3x3_forward = bf16_conv3x3_forward;
    ops->conv3x3_backward = bf16_conv3x3_backward;
    ops->conv1x1_forward = bf16_conv1x1_forward;
    ops->conv1x1_backward = bf16_conv1x1_backward;
    ops->upconv2x2_forward = pnx_cudnn_bf16_upconv2x2_forward;
    ops->upconv2x2_backward = pnx_cudnn_bf16_upconv2x2_backward;
    ops->batchnorm_forward = bf16_bn_forward;
    ops->batchnorm_backward = bf16_bn_backward;
    ops->batchnorm_relu_forward = bf16_bn_relu_forward;
    ops->batchnorm_relu_backward = bf16_bn_relu_backward;
    ops->relu_forward = bf16_relu_forward;
    ops->relu_backward = bf16_relu_backward;
    ops->maxpool2x2_forward = bf16_maxpool_forward;
    ops->maxpool2x2_backward = bf16_maxpool_backward;
    ops->concat_channels = bf16_concat;
    ops->split_channels = bf16_split;
    ops->seg_loss = bf16_seg_loss;
    ops->act_upload = bf16_act_upload;
    ops->act_download = bf16_act_download;
    return 0;
}
