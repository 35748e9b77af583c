/*
 * model/cuda/cuda_backend.c — the CUDA backend's table and life cycle:
 * device checks, the stream, device memory and the pinned staging of
 * uploads (cuda_internal.h), each FP32 op handed to cudnn_conv.c
 * (convolutions) or cuda_kernels.cu (everything else), and the switch to
 * mixed precision (pnx_cuda_bf16_install) when the options ask for it.
 */
#include "model/cuda/cuda_backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/cuda/cuda_bf16.h"
#include "model/cuda/cuda_internal.h"

int pnx_cuda_fail(cudaError_t err, const char *what)
{
    /* Reading the last error resets it, so one failure is reported once. */
    (void)cudaGetLastError();
    if (err == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
            free_b = total_b = 0;
        (void)cudaGetLastError();
        return pnx_fail(PNX_EDEVICE,
                        "%s: out of GPU memory (%.2f GiB free of %.2f GiB); use a smaller batch",
                        what, (double)free_b / (1 << 30), (double)total_b / (1 << 30));
    }
    return pnx_fail(PNX_EDEVICE, "%s: CUDA error %s (%s)", what, cudaGetErrorName(err),
                    cudaGetErrorString(err));
}

int pnx_cuda_device_count(char *why, size_t why_size)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    (void)cudaGetLastError();
    if (err == cudaSuccess && count > 0) {
        if (why_size)
            why[0] = '\0';
        return count;
    }
    if (why_size) {
        int driver = 0;
        if (err == cudaErrorInsufficientDriver &&
            (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0))
            snprintf(why, why_size, "no NVIDIA driver is installed (no GPU on this machine?)");
        else if (err == cudaErrorInsufficientDriver)
            snprintf(why, why_size,
                     "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d this "
                     "build needs", driver / 1000, driver % 1000 / 10, CUDART_VERSION / 1000,
                     CUDART_VERSION % 1000 / 10);
        else if (err == cudaSuccess || err == cudaErrorNoDevice)
            snprintf(why, why_size, "no CUDA device is present");
        else
            snprintf(why, why_size, "no usable CUDA device: %s (%s)", cudaGetErrorName(err),
                     cudaGetErrorString(err));
        (void)cudaGetLastError();
    }
    return 0;
}

/* ---- memory -------------------------------------------------------------------- */

int pnx_cuda_scratch(pnx_backend *be, size_t bytes, void **out)
{
    cuda_impl *c = cuda_of(be);
    if (bytes > c->scratch_bytes) {
        /* No queued kernel may still use the old block: cudaFree only "may"
         * synchronise (cuda_runtime_api.h), so wait for the stream first. */
        (void)cudaStreamSynchronize(c->stream);
        cudaFree(c->scratch);
        c->scratch = NULL;
        c->scratch_bytes = 0;
        size_t want = bytes < 4096 ? 4096 : bytes;
        cudaError_t err = cudaMalloc(&c->scratch, want);
        if (err != cudaSuccess) {
            c->scratch = NULL;
            return pnx_cuda_fail(err, "reduction scratch");
        }
        c->scratch_bytes = want;
    }
    *out = c->scratch;
    return 0;
}

static int cuda_alloc(pnx_backend *be, size_t bytes, void **out)
{
    cuda_impl *c = cuda_of(be);
    *out = NULL;
    /* Rounding a request this close to SIZE_MAX would wrap to a tiny block. */
    if (bytes > SIZE_MAX - 255)
        return pnx_fail(PNX_ERANGE, "allocating %zu bytes on the GPU: too large", bytes);
    /* Rounded to 256 bytes (cudaMalloc's own alignment); never zero, so a
     * zero-byte request still gets a pointer release() accepts. */
    size_t rounded = (bytes + 255) / 256 * 256;
    if (rounded == 0)
        rounded = 256;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, rounded);
    if (err != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "allocating %.1f MiB on the GPU",
                 (double)bytes / (1 << 20));
        return pnx_cuda_fail(err, what);
    }
    err = cudaMemsetAsync(p, 0, rounded, c->stream);
    if (err != cudaSuccess) {
        cudaFree(p);
        return pnx_cuda_fail(err, "clearing new GPU memory");
    }
    *out = p;
    return 0;
}

static void cuda_release(pnx_backend *be, void *p)
{
    if (!p)
        return;
    /* Queued work may still use p, and cudaFree only "may" wait for it. */
    (void)cudaStreamSynchronize(cuda_of(be)->stream);
    cudaFree(p);
}

static int copy_and_wait(pnx_backend *be, void *dst, const void *src, size_t bytes,
                         enum cudaMemcpyKind kind, const char *what)
{
    cuda_impl *c = cuda_of(be);
    if (bytes == 0)
        return 0;
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, kind, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->stream);
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, what);
}

/* ---- uploads through the pinned staging buffers -------------------------------- */

static int staging_open(cuda_staging *st)
{
    for (int i = 0; i < 2; i++) {
        cudaError_t err = cudaEventCreateWithFlags(&st->ready[i], cudaEventDisableTiming);
        if (err != cudaSuccess) {
            st->ready[i] = NULL;
            return pnx_cuda_fail(err, "CUDA backend: creating an upload event");
        }
    }
    return 0;
}

/* Only once the stream is idle: no copy may still read a buffer. */
static void staging_close(cuda_staging *st)
{
    for (int i = 0; i < 2; i++) {
        if (st->buf[i])
            cudaFreeHost(st->buf[i]);
        if (st->ready[i])
            cudaEventDestroy(st->ready[i]);
        st->buf[i] = NULL;
        st->bytes[i] = 0;
        st->ready[i] = NULL;
    }
}

/* Buffer i with room for len bytes (≤ PNX_CUDA_STAGING_MAX), once the copy
 * that last read it has finished; *out NULL (and 0 returned) when it cannot
 * be pinned, which the caller answers with a synchronous copy. */
static int staging_take(cuda_staging *st, int i, size_t len, void **out)
{
    *out = NULL;
    /* Never recorded yet: returns at once. */
    cudaError_t err = cudaEventSynchronize(st->ready[i]);
    if (err != cudaSuccess)
        return pnx_cuda_fail(err, "copy to the GPU");
    if (st->bytes[i] < len) {
        if (st->buf[i])
            cudaFreeHost(st->buf[i]);
        st->buf[i] = NULL;
        st->bytes[i] = 0;
        /* Whole MiB, so a batch that grows a little does not reallocate. */
        const size_t mib = (size_t)1 << 20;
        size_t want = (len + mib - 1) / mib * mib;
        if (want > PNX_CUDA_STAGING_MAX)
            want = PNX_CUDA_STAGING_MAX;
        void *p = NULL;
        if (cudaHostAlloc(&p, want, cudaHostAllocDefault) != cudaSuccess) {
            (void)cudaGetLastError();
            return 0;
        }
        st->buf[i] = p;
        st->bytes[i] = want;
    }
    *out = st->buf[i];
    return 0;
}

/* Returns once host_src has been read (cuda_internal.h: cuda_staging). */
static int cuda_upload(pnx_backend *be, void *dst, const void *host_src, size_t bytes)
{
    cuda_impl *c = cuda_of(be);
    cuda_staging *st = &c->staging;
    char *d = dst;
    const char *h = host_src;
    for (size_t done = 0; done < bytes;) {
        const size_t left = bytes - done;
        const size_t len = left < PNX_CUDA_STAGING_MAX ? left : PNX_CUDA_STAGING_MAX;
        const int i = st->next;
        void *pinned = NULL;
        int rc = staging_take(st, i, len, &pinned);
        if (rc)
            return rc;
        if (!pinned)
            return copy_and_wait(be, d + done, h + done, left, cudaMemcpyHostToDevice,
                                 "copy to the GPU");
        memcpy(pinned, h + done, len);
        cudaError_t err = cudaMemcpyAsync(d + done, pinned, len, cudaMemcpyHostToDevice,
                                          c->stream);
        if (err == cudaSuccess)
            err = cudaEventRecord(st->ready[i], c->stream);
        if (err != cudaSuccess) {
            /* The event may not cover a copy that was queued: let it finish
             * before the buffer can be written again. */
            (void)cudaStreamSynchronize(c->stream);
            return pnx_cuda_fail(err, "copy to the GPU");
        }
        st->next = i ^ 1;
        done += len;
    }
    return 0;
}

static int cuda_download(pnx_backend *be, void *host_dst, const void *src, size_t bytes)
{
    return copy_and_wait(be, host_dst, src, bytes, cudaMemcpyDeviceToHost, "copy from the GPU");
}

static int cuda_fill_zero(pnx_backend *be, void *p, size_t bytes)
{
    if (bytes == 0)
        return 0;
    cudaError_t err = cudaMemsetAsync(p, 0, bytes, cuda_of(be)->stream);
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, "clearing GPU memory");
}

/* Bytes of a float32 tensor of shape d, or PNX_EINVAL for a shape that is
 * negative or does not fit in size_t. */
static int float_tensor_bytes(pnx_dims d, size_t *out)
{
    const int side[4] = {d.n, d.c, d.h, d.w};
    size_t bytes = sizeof(float);
    for (int k = 0; k < 4; k++) {
        if (side[k] < 0 || (side[k] > 0 && bytes > SIZE_MAX / (size_t)side[k]))
            return pnx_fail(PNX_EINVAL, "activation of shape (%d,%d,%d,%d) is not a valid size",
                            d.n, d.c, d.h, d.w);
        bytes *= (size_t)side[k];
    }
    *out = bytes;
    return 0;
}

/* FP32 activations are float32 NCHW, as on the host: plain copies. */
static int cuda_act_upload(pnx_backend *be, float *dst, const float *host, pnx_dims d)
{
    size_t bytes;
    int rc = float_tensor_bytes(d, &bytes);
    return rc ? rc : cuda_upload(be, dst, host, bytes);
}

static int cuda_act_download(pnx_backend *be, float *host, const float *src, pnx_dims d)
{
    size_t bytes;
    int rc = float_tensor_bytes(d, &bytes);
    return rc ? rc : cuda_download(be, host, src, bytes);
}

static int cuda_mem_info(pnx_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    cudaError_t err = cudaMemGetInfo(free_bytes, total_bytes);
    return err == cudaSuccess ? 0 : pnx_cuda_fail(err, "reading the GPU's free memory");
}

/* ---- ops ------------------------------------------------------------------------ */

/* A batch-norm shape's sides must not be negative (they become sizes). */
static int bn_check_dims(pnx_dims d)
{
    if (d.n < 0 || d.c < 0 || d.h < 0 || d.w < 0)
        return pnx_fail(PNX_EINVAL, "batch norm of a (%d,%d,%d,%d) tensor", d.n, d.c, d.h, d.w);
    return 0;
}

/* batchnorm_forward, with relu: batchnorm_relu_forward. */
static int bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                      const float *beta, float *rm, float *rv, int training, float momentum,
                      float eps, int relu, float *y, float *save_mean, float *save_invstd)
{
    cuda_impl *c = cuda_of(be);
    int rc = bn_check_dims(d);
    if (rc)
        return rc;
    if (training && (size_t)d.n * d.h * d.w < 2)
        return pnx_fail(PNX_EINVAL,
                        "batch norm in training needs more than one value per channel "
                        "(batch %d at %dx%d)", d.n, d.w, d.h);
    /* Nothing to do, as in the reference; the scratch size divides by N·C. */
    if (pnx_dims_count(d) == 0)
        return 0;
    void *scratch;
    rc = pnx_cuda_scratch(
        be, pnx_cuk_channel_scratch(c->sm_count, d.n, d.c, (size_t)d.h * d.w), &scratch);
    if (rc)
        return rc;
    return pnx_cuk_batchnorm_forward(c->stream, c->sm_count, x, d, gamma, beta, rm, rv, training,
                                     momentum, eps, relu, y, save_mean, save_invstd, scratch);
}

/* batchnorm_backward (y_relu NULL) or batchnorm_relu_backward. */
static int bn_backward(pnx_backend *be, const float *x, const float *y_relu, pnx_dims d,
                       const float *gamma, const float *save_mean, const float *save_invstd,
                       const float *dy, float *dx, int acc, float *dgamma, float *dbeta)
{
    cuda_impl *c = cuda_of(be);
    int rc = bn_check_dims(d);
    if (rc || pnx_dims_count(d) == 0)
        return rc;
    void *scratch;
    rc = pnx_cuda_scratch(
        be, pnx_cuk_channel_scratch(c->sm_count, d.n, d.c, (size_t)d.h * d.w), &scratch);
    if (rc)
        return rc;
    return pnx_cuk_batchnorm_backward(c->stream, c->sm_count, x, y_relu, d, gamma, save_mean,
                                      save_invstd, dy, dx, acc, dgamma, dbeta, scratch);
}

static int cuda_bn_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                           const float *beta, float *rm, float *rv, int training, float momentum,
                           float eps, float *y, float *save_mean, float *save_invstd)
{
    return bn_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps, 0, y, save_mean,
                      save_invstd);
}

static int cuda_bn_backward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                            const float *save_mean, const float *save_invstd, const float *dy,
                            float *dx, int acc, float *dgamma, float *dbeta)
{
    return bn_backward(be, x, NULL, d, gamma, save_mean, save_invstd, dy, dx, acc, dgamma,
                       dbeta);
}

static int cuda_bn_relu_forward(pnx_backend *be, const float *x, pnx_dims d, const float *gamma,
                                const float *beta, float *rm, float *rv, int training,
                                float momentum, float eps, float *y, float *save_mean,
                                float *save_invstd)
{
    return bn_forward(be, x, d, gamma, beta, rm, rv, training, momentum, eps, 1, y, save_mean,
                      save_invstd);
}

static int cuda_bn_relu_backward(pnx_backend *be, const float *x, const float *y, pnx_dims d,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, const float *dy, float *dx, int acc,
                                 float *dgamma, float *dbeta)
{
    /* Without y this would silently be the plain BatchNorm backward. */
    if (!y)
        return pnx_fail(PNX_EINVAL, "fused batch norm + relu backward needs its output y");
    return bn_backward(be, x, y, d, gamma, save_mean, save_invstd, dy, dx, acc, dgamma, dbeta);
}

static int cuda_relu_forward(pnx_backend *be, const float *x, float *y, size_t n)
{
    return pnx_cuk_relu_forward(cuda_of(be)->stream, x, y, n);
}

static int cuda_relu_backward(pnx_backend *be, const float *y, const float *dy, float *dx,
                              size_t n)
{
    return pnx_cuk_relu_backward(cuda_of(be)->stream, y, dy, dx, n);
}

static int cuda_maxpool_forward(pnx_backend *be, const float *x, pnx_dims xd, float *y,
                                uint8_t *argmax)
{
    if (xd.n < 0 || xd.c < 0 || xd.h < 0 || xd.w < 0 || xd.h % 2 || xd.w % 2)
        return pnx_fail(PNX_EINVAL, "2x2 max-pool needs even sides, got (%d,%d,%d,%d)", xd.n,
                        xd.c, xd.h, xd.w);
    return pnx_cuk_maxpool_forward(cuda_of(be)->stream, x, xd, y, argmax);
}

static int cuda_maxpool_backward(pnx_backend *be, pnx_dims xd, const uint8_t *argmax,
                                 const float *dy, float *dx, int acc)
{
    if (xd.n < 0 || xd.c < 0 || xd.h < 0 || xd.w < 0 || xd.h % 2 || xd.w % 2)
        return pnx_fail(PNX_EINVAL, "2x2 max-pool needs even sides, got (%d,%d,%d,%d)", xd.n,
                        xd.c, xd.h, xd.w);
    return pnx_cuk_maxpool_backward(cuda_of(be)->stream, xd, argmax, dy, dx, acc);
}

static int cuda_concat(pnx_backend *be, const float *a, int ca, const float *b, int cb, int n,
                       size_t hw, float *y)
{
    cudaStream_t s = cuda_of(be)->stream;
    if (ca < 0 || cb < 0 || n < 0)
        return pnx_fail(PNX_EINVAL, "concat of %d and %d channels, batch %d", ca, cb, n);
    const size_t row = (size_t)ca * hw + (size_t)cb * hw;
    int rc = pnx_cuk_copy_rows(s, y, row, a, (size_t)ca * hw, (size_t)ca * hw, (size_t)n, 0);
    if (!rc)
        rc = pnx_cuk_copy_rows(s, y + (size_t)ca * hw, row, b, (size_t)cb * hw, (size_t)cb * hw,
                               (size_t)n, 0);
    return rc;
}

static int cuda_split(pnx_backend *be, const float *dy, int ca, int cb, int n, size_t hw,
                      float *da, int da_acc, float *db, int db_acc)
{
    cudaStream_t s = cuda_of(be)->stream;
    if (ca < 0 || cb < 0 || n < 0)
        return pnx_fail(PNX_EINVAL, "split into %d and %d channels, batch %d", ca, cb, n);
    const size_t row = (size_t)ca * hw + (size_t)cb * hw;
    int rc = 0;
    if (da)
        rc = pnx_cuk_copy_rows(s, da, (size_t)ca * hw, dy, row, (size_t)ca * hw, (size_t)n,
                               da_acc);
    if (!rc && db)
        rc = pnx_cuk_copy_rows(s, db, (size_t)cb * hw, dy + (size_t)ca * hw, row,
                               (size_t)cb * hw, (size_t)n, db_acc);
    return rc;
}

double pnx_cuda_loss_from_sums(const double sums[4], size_t count, float bce_weight,
                               float dice_weight, pnx_loss *loss)
{
    const double smooth = 1.0;
    const double denom = sums[2] + sums[3] + smooth;
    loss->bce = count ? sums[0] / (double)count : 0.0;
    loss->dice = 1.0 - (2.0 * sums[1] + smooth) / denom;
    loss->total = bce_weight * loss->bce + dice_weight * loss->dice;
    return denom;
}

static int cuda_seg_loss(pnx_backend *be, const float *logits, const float *target, size_t count,
                         float bce_weight, float dice_weight, pnx_loss *loss, float *dlogits)
{
    cuda_impl *c = cuda_of(be);
    void *scratch;
    int rc = pnx_cuda_scratch(be, pnx_cuk_loss_scratch(), &scratch);
    double sums[4] = {0, 0, 0, 0};
    if (!rc && count)
        rc = pnx_cuk_loss_sums(c->stream, logits, target, count, scratch, sums);
    if (rc)
        return rc;
    const double denom = pnx_cuda_loss_from_sums(sums, count, bce_weight, dice_weight, loss);
    if (!dlogits)
        return 0;
    return pnx_cuk_loss_grad(c->stream, logits, target, count, bce_weight, dice_weight, sums[1],
                             denom, dlogits);
}

static int cuda_adam_update(pnx_backend *be, float *param, const float *grad, float *m, float *v,
                            size_t n, const pnx_adam_hparams *h, int64_t step)
{
    const double bc1 = 1.0 - pow(h->beta1, (double)step);
    const double bc2 = 1.0 - pow(h->beta2, (double)step);
    pnx_cuk_adam a = {
        .step_size = (float)(h->lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
        .b1 = (float)h->beta1,
        .b2 = (float)h->beta2,
        .one_minus_b1 = (float)(1.0 - h->beta1),
        .one_minus_b2 = (float)(1.0 - h->beta2),
        .eps = (float)h->eps,
        .wd = (float)h->weight_decay,
    };
    return pnx_cuk_adam_update(cuda_of(be)->stream, param, grad, m, v, n, &a);
}

/* ---- life cycle ------------------------------------------------------------------- */

static void cuda_destroy(pnx_backend *be)
{
    if (!be)
        return;
    cuda_impl *c = cuda_of(be);
    if (c) {
        if (c->stream)
            cudaStreamSynchronize(c->stream);
        pnx_cudnn_destroy(c->conv);
        cudaFree(c->scratch);
        staging_close(&c->staging);
        if (c->stream)
            cudaStreamDestroy(c->stream);
        (void)cudaGetLastError();
        free(c);
    }
    free(be);
}

static const pnx_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .fill_zero = cuda_fill_zero,
    .conv3x3_forward = pnx_cudnn_conv3x3_forward,
    .conv3x3_backward = pnx_cudnn_conv3x3_backward,
    .conv1x1_forward = pnx_cudnn_conv1x1_forward,
    .conv1x1_backward = pnx_cudnn_conv1x1_backward,
    .upconv2x2_forward = pnx_cudnn_upconv2x2_forward,
    .upconv2x2_backward = pnx_cudnn_upconv2x2_backward,
    .batchnorm_forward = cuda_bn_forward,
    .batchnorm_backward = cuda_bn_backward,
    .batchnorm_relu_forward = cuda_bn_relu_forward,
    .batchnorm_relu_backward = cuda_bn_relu_backward,
    .relu_forward = cuda_relu_forward,
    .relu_backward = cuda_relu_backward,
    .maxpool2x2_forward = cuda_maxpool_forward,
    .maxpool2x2_backward = cuda_maxpool_backward,
    .concat_channels = cuda_concat,
    .split_channels = cuda_split,
    .seg_loss = cuda_seg_loss,
    .adam_update = cuda_adam_update,
    .act_upload = cuda_act_upload,
    .act_download = cuda_act_download,
    .mem_info = cuda_mem_info,
};

static int open_device(cuda_impl *c)
{
    char why[256];
    int count = pnx_cuda_device_count(why, sizeof why);
    if (count == 0)
        return pnx_fail(PNX_EDEVICE, "CUDA backend: %s", why);
    if (c->opt.device < 0 || c->opt.device >= count)
        return pnx_fail(PNX_EDEVICE, "CUDA backend: device %d does not exist (%d present)",
                        c->opt.device, count);
    c->device = c->opt.device;
    cudaError_t err = cudaSetDevice(c->device);
    if (err != cudaSuccess)
        return pnx_cuda_fail(err, "CUDA backend: selecting the device");
    struct cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, c->device);
    if (err != cudaSuccess)
        return pnx_cuda_fail(err, "CUDA backend: reading the device's properties");
    c->sm_count = prop.multiProcessorCount;
    int driver = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess)
        driver = 0;
    char cudnn_version[32];
    int rc = pnx_cudnn_check_version(cudnn_version, sizeof cudnn_version);
    if (rc)
        return rc;
    snprintf(c->name, sizeof c->name,
             "%.255s (sm_%d%d, %.1f GiB), driver CUDA %d.%d, runtime %d.%d, cuDNN %s%s%s%s",
             prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30),
             driver / 1000, driver % 1000 / 10, CUDART_VERSION / 1000,
             CUDART_VERSION % 1000 / 10, cudnn_version, c->opt.allow_tf32 ? ", TF32" : "",
             c->opt.deterministic ? ", deterministic" : "",
             c->opt.mixed_bf16 ? ", BF16 mixed precision" : "");
    err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        c->stream = NULL;
        return pnx_cuda_fail(err, "CUDA backend: creating a stream");
    }
    rc = staging_open(&c->staging);
    if (rc)
        return rc;
    return pnx_cudnn_create(&c->conv, c->stream, &c->opt);
}

int pnx_backend_cuda_create(pnx_backend **out, const pnx_cuda_options *opt)
{
    *out = NULL;
    pnx_backend *be = calloc(1, sizeof *be);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    const pnx_cuda_options defaults = PNX_CUDA_OPTIONS_DEFAULT;
    c->opt = opt ? *opt : defaults;
    if (c->opt.workspace_limit == 0)
        c->opt.workspace_limit = PNX_CUDA_DEFAULT_WORKSPACE;
    be->ops = &cuda_ops;
    be->impl = c;
    be->act_size = sizeof(float);
    int rc = open_device(c);
    if (!rc && c->opt.mixed_bf16) {
        /* The integration point of mixed precision: the FP32 table with
         * every activation op replaced (model/cuda/cuda_bf16_ops.c). */
        c->ops = cuda_ops;
        rc = pnx_cuda_bf16_install(be, &c->ops);
        if (!rc) {
            be->ops = &c->ops;
            be->act_size = 2;
        }
    }
    if (rc) {
        cuda_destroy(be);
        return rc;
    }
    *out = be;
    return 0;
}

void pnx_backend_cuda_describe(pnx_backend *be, char *buf, size_t size)
{
    if (!size)
        return;
    /* Mixed precision replaces ops but never destroy: it names the backend. */
    if (!be || !be->ops || be->ops->destroy != cuda_destroy) {
        snprintf(buf, size, "not a CUDA backend");
        return;
    }
    snprintf(buf, size, "%s", cuda_of(be)->name);
}
