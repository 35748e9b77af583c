/*
 * tests/test_gpu_unet.c — the whole U-Net on the CUDA backend against the
 * reference backend (model/ops_ref.c, no BLAS needed): a training step
 * (logits, loss, every parameter gradient, the running statistics), the loss
 * after an Adam step, bitwise reproducibility in deterministic mode, and a
 * checkpoint moved between the backends in both directions giving the same
 * logits. Then the same in mixed precision (mixed_bf16): a training step
 * against the reference on the same bfloat16-rounded images, bitwise
 * reproducibility, and a checkpoint trained in BF16 loading on the
 * reference backend with every parameter bit kept. Label gpu; exits 77
 * (skipped) when no GPU is usable; on a stand-in backend the BF16 part is
 * skipped, saying so.
 *
 * Tolerances (normwise relative, FP32, TF32 off): 1e-4 for logits and
 * losses, NET_TOL for gradients, whose error grows through the ~20 layers
 * and the batch norms of a tiny batch; docs/gpu.md lists them.
 *
 * BF16 stores every activation with 8 significant bits (u = 2^-8), so its
 * forward pass runs at a point perturbed by about u in every value, and
 * test_gpu_ops_bf16 bounds each op by 2e-2. The loss, logits and running
 * statistics stay close: BF16_LOSS_TOL = 1e-2 for losses, BF16_NET_TOL =
 * 5e-2 for logits and statistics. Gradients do not, tensor by tensor: in
 * the deep layers of a freshly initialised U-Net they are small and hang
 * on discrete choices that a perturbed forward flips (ReLU masks, max-pool
 * winners, which bfloat16 makes tie far more often). A host emulation of
 * these roundings (the reference ops with every stored activation rounded
 * to bfloat16), against the float32 reference over 18 seeds of this
 * test's two shapes, measured relative L2 errors up to 0.89 in single
 * deep-layer tensors (also at base 16 on 128² images; and 0.18 between
 * two emulations differing only by float32 rounding in the convolutions),
 * while the whole gradient vector agreed within 0.074 (relative L2), the
 * loss within 2e-4, logits within 2.1e-2, statistics within 2e-2. So the
 * gradients are checked as one vector (relative L2 ≤ BF16_GRAD_TOL = 0.15)
 * and per tensor only for gross errors (finite, relative L2 ≤
 * BF16_TENSOR_TOL = 1.5: a sign flip or a scale error fails); each op's
 * gradients are checked closely by test_gpu_ops_bf16. Each worst error is
 * printed, to confirm the margins on the first GPU run.
 */
#include <stdint.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/unet.h"
#include "test_gpu_util.h"

#define TOL 1e-4
#define NET_TOL 5e-4
#define BF16_LOSS_TOL 1e-2
#define BF16_NET_TOL 5e-2
#define BF16_GRAD_TOL 0.15
#define BF16_TENSOR_TOL 1.5

/* What one comparison of a training step allows: FP32 or BF16 (whose
 * gradients are compared by compare_gradients_l2 instead). */
typedef struct step_tolerances {
    double logits, loss, grad, values, loss_after_adam;
} step_tolerances;

static const step_tolerances fp32_tol = {TOL, TOL, NET_TOL, TOL, 1e-3};
static const step_tolerances bf16_tol = {BF16_NET_TOL, BF16_LOSS_TOL, BF16_GRAD_TOL, BF16_NET_TOL,
                                         BF16_LOSS_TOL};

static pnx_rng rng;

typedef struct batch {
    int n, h, w;
    float *images, *masks;
} batch;

static batch make_batch(int n, int h, int w)
{
    batch b = {n, h, w, host_floats((size_t)n * h * w), host_floats((size_t)n * h * w)};
    fill_normal(&rng, b.images, (size_t)n * h * w, 0.0, 1.0);
    /* one bright disc per image, the mask under it: something to learn */
    for (int i = 0; i < n; i++) {
        int cy = (int)pnx_rng_below(&rng, (uint64_t)h), cx = (int)pnx_rng_below(&rng, (uint64_t)w);
        int r = 2 + (int)pnx_rng_below(&rng, (uint64_t)(h / 4));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) {
                    size_t k = ((size_t)i * h + y) * w + x;
                    b.masks[k] = 1.0f;
                    b.images[k] += 1.5f;
                }
    }
    return b;
}

static void free_batch(batch *b)
{
    free(b->images);
    free(b->masks);
}

/* A copy with the images rounded to bfloat16, as the BF16 backend's
 * act_upload stores them: both sides then start from the same input. */
static batch bf16_batch(const batch *b)
{
    const size_t count = (size_t)b->n * b->h * b->w;
    batch r = {b->n, b->h, b->w, host_floats(count), host_floats(count)};
    memcpy(r.images, b->images, count * sizeof *r.images);
    memcpy(r.masks, b->masks, count * sizeof *r.masks);
    round_bf16(r.images, count);
    return r;
}

/* "enc1_1.0.bias": a convolution bias followed by a batch norm, whose
 * gradient is zero but for rounding (the norm removes any constant). */
static int is_conv_bias_before_bn(pnx_unet *m, const char *name)
{
    size_t len = strlen(name);
    if (len < 7 || strcmp(name + len - 7, ".0.bias") != 0 || len + 8 > 128)
        return 0;
    char bn[128];
    memcpy(bn, name, len - 7);
    memcpy(bn + len - 7, ".1.weight", 10);
    return pnx_unet_tensor_find(m, bn) >= 0;
}

/* Such a gradient's error measured against its weight's gradient instead. */
static double bias_before_bn_error(pnx_unet *got, pnx_unet *want, const char *name,
                                   const float *a, const float *b, size_t count)
{
    (void)got;
    char wname[128];
    size_t len = strlen(name);
    memcpy(wname, name, len - 4);
    memcpy(wname + len - 4, "weight", 7);
    long wi = pnx_unet_tensor_find(want, wname);
    if (wi < 0)
        return INFINITY;
    pnx_unet_tensor_info info;
    pnx_unet_tensor_at(want, (size_t)wi, &info);
    float *wg = host_floats(info.count);
    double scale = 0, diff = 0;
    if (pnx_unet_read(want, wname, PNX_UNET_GRAD, wg, info.count) == 0)
        for (size_t i = 0; i < info.count; i++)
            scale = fmax(scale, fabs(wg[i]));
    for (size_t i = 0; i < count; i++)
        diff = fmax(diff, fabs((double)a[i] - b[i]));
    free(wg);
    return scale > 0 ? diff / scale : diff;
}

/* Compares every float tensor of the two models in the given view; prints
 * the worst error when verbose. */
static void compare_tensors(pnx_unet *got, pnx_unet *want, pnx_unet_view view, double tol,
                            const char *what, int verbose)
{
    double worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < pnx_unet_tensor_count(want); i++) {
        pnx_unet_tensor_info info;
        pnx_unet_tensor_at(want, i, &info);
        if (info.kind == PNX_UNET_COUNTER || (view != PNX_UNET_VALUE &&
                                              info.kind != PNX_UNET_PARAMETER))
            continue;
        float *a = host_floats(info.count), *b = host_floats(info.count);
        GPU_OK(pnx_unet_read(got, info.name, view, a, info.count));
        GPU_OK(pnx_unet_read(want, info.name, view, b, info.count));
        double e = rel_error(a, b, info.count);
        if (view == PNX_UNET_GRAD && is_conv_bias_before_bn(want, info.name))
            e = bias_before_bn_error(got, want, info.name, a, b, info.count);
        GPU_CHECK(e <= tol, "%s %s: relative error %.3g > %.3g", what, info.name, e, tol);
        if (!(e <= worst)) {
            worst = e;
            worst_name = info.name;
        }
        free(a);
        free(b);
    }
    if (verbose)
        printf("  %s: worst relative error %.3g (%s), tolerance %.3g\n", what, worst, worst_name,
               tol);
}

/* BF16 gradients (see the top): relative L2 of the whole vector and, for
 * gross errors only, of each tensor but the conv biases before a batch
 * norm, whose gradient is rounding noise around zero; all finite. */
static void compare_gradients_l2(pnx_unet *got, pnx_unet *want, const char *what)
{
    double d2_all = 0, w2_all = 0, worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < pnx_unet_tensor_count(want); i++) {
        pnx_unet_tensor_info info;
        pnx_unet_tensor_at(want, i, &info);
        if (info.kind != PNX_UNET_PARAMETER)
            continue;
        float *a = host_floats(info.count), *b = host_floats(info.count);
        GPU_OK(pnx_unet_read(got, info.name, PNX_UNET_GRAD, a, info.count));
        GPU_OK(pnx_unet_read(want, info.name, PNX_UNET_GRAD, b, info.count));
        double d2 = 0, w2 = 0;
        size_t bad = 0;
        for (size_t k = 0; k < info.count; k++) {
            bad += !isfinite(a[k]);
            const double d = (double)a[k] - (double)b[k];
            d2 += d * d;
            w2 += (double)b[k] * (double)b[k];
        }
        GPU_CHECK(bad == 0, "%s gradient %s: %zu values not finite", what, info.name, bad);
        d2_all += d2;
        w2_all += w2;
        if (!is_conv_bias_before_bn(want, info.name)) {
            const double e = w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
            GPU_CHECK(e <= BF16_TENSOR_TOL, "%s gradient %s: relative L2 error %.3g > %.3g", what,
                      info.name, e, BF16_TENSOR_TOL);
            if (!(e <= worst)) {
                worst = e;
                worst_name = info.name;
            }
        }
        free(a);
        free(b);
    }
    const double global = w2_all > 0 ? sqrt(d2_all / w2_all) : sqrt(d2_all);
    printf("  %s gradient: relative L2 error %.3g (tolerance %.3g), worst tensor %.3g (%s, "
           "tolerance %.3g)\n", what, global, BF16_GRAD_TOL, worst, worst_name, BF16_TENSOR_TOL);
    GPU_CHECK(global <= BF16_GRAD_TOL, "%s gradient: relative L2 error %.3g > %.3g", what, global,
              BF16_GRAD_TOL);
}

static void compare_floats(const float *got, const float *want, size_t n, double tol,
                           const char *what, int verbose)
{
    double e = rel_error(got, want, n);
    if (verbose)
        printf("  %s: relative error %.3g, tolerance %.3g\n", what, e, tol);
    GPU_CHECK(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
}

static void compare_loss(const pnx_loss *got, const pnx_loss *want, double tol, const char *what,
                         int verbose)
{
    double e = fabs(got->total - want->total) / (fabs(want->total) + 1e-12);
    if (verbose)
        printf("  %s: loss %.9g vs %.9g, relative error %.3g, tolerance %.3g\n", what,
               got->total, want->total, e, tol);
    GPU_CHECK(e <= tol, "%s: loss %.9g vs %.9g (relative error %.3g)", what, got->total,
              want->total, e);
}

/* One training step on both, compared; then the loss after Adam. tol:
 * fp32_tol, or bf16_tol (verbose) with images already rounded to bf16. */
static void check_training_step(pnx_backend *dev, pnx_backend *ref, int base, batch *b,
                                const step_tolerances *tol)
{
    const int verbose = tol == &bf16_tol;
    char what[96];
    snprintf(what, sizeof what, "%sbase %d batch %d at %dx%d", verbose ? "BF16 " : "", base, b->n,
             b->w, b->h);
    pnx_unet *md = NULL, *mr = NULL;
    GPU_OK(pnx_unet_create(&md, dev, base));
    GPU_OK(pnx_unet_create(&mr, ref, base));
    if (!md || !mr)
        goto out;
    const size_t count = (size_t)b->n * b->h * b->w;
    float *ld = host_floats(count), *lr = host_floats(count);
    pnx_loss lossd, lossr;
    GPU_OK(pnx_unet_forward(md, b->images, b->n, b->h, b->w, 1, ld));
    GPU_OK(pnx_unet_forward(mr, b->images, b->n, b->h, b->w, 1, lr));
    char lwhat[128];
    snprintf(lwhat, sizeof lwhat, "%s logits", what);
    compare_floats(ld, lr, count, tol->logits, lwhat, verbose);
    GPU_OK(pnx_unet_backward(md, b->masks, 1.0f, 1.0f, &lossd));
    GPU_OK(pnx_unet_backward(mr, b->masks, 1.0f, 1.0f, &lossr));
    compare_loss(&lossd, &lossr, tol->loss, what, verbose);
    if (verbose)
        compare_gradients_l2(md, mr, what);
    else
        compare_tensors(md, mr, PNX_UNET_GRAD, tol->grad, "gradient", 0);
    compare_tensors(md, mr, PNX_UNET_VALUE, tol->values, "after forward", verbose);

    pnx_adam_hparams h = PNX_ADAM_DEFAULTS;
    GPU_OK(pnx_unet_adam_step(md, &h));
    GPU_OK(pnx_unet_adam_step(mr, &h));
    GPU_OK(pnx_unet_forward(md, b->images, b->n, b->h, b->w, 1, NULL));
    GPU_OK(pnx_unet_forward(mr, b->images, b->n, b->h, b->w, 1, NULL));
    GPU_OK(pnx_unet_loss(md, b->masks, 1.0f, 1.0f, &lossd));
    GPU_OK(pnx_unet_loss(mr, b->masks, 1.0f, 1.0f, &lossr));
    /* Adam's first step moves each weight by ≈ lr·sign(gradient), so a
     * gradient that is zero up to rounding may move either way: looser. */
    compare_loss(&lossd, &lossr, tol->loss_after_adam, "loss after one Adam step", verbose);
    free(ld);
    free(lr);
out:
    pnx_unet_destroy(md);
    pnx_unet_destroy(mr);
}

/* Two fresh models on a deterministic backend take the same step: every
 * gradient bit for bit. */
static void check_deterministic(pnx_backend *dev, int base, batch *b)
{
    pnx_unet *m[2] = {NULL, NULL};
    pnx_loss loss[2];
    for (int k = 0; k < 2; k++) {
        GPU_OK(pnx_unet_create(&m[k], dev, base));
        if (!m[k])
            goto out;
        GPU_OK(pnx_unet_forward(m[k], b->images, b->n, b->h, b->w, 1, NULL));
        GPU_OK(pnx_unet_backward(m[k], b->masks, 1.0f, 1.0f, &loss[k]));
    }
    GPU_CHECK(loss[0].total == loss[1].total, "deterministic loss %.17g vs %.17g", loss[0].total,
              loss[1].total);
    for (size_t i = 0; i < pnx_unet_tensor_count(m[0]); i++) {
        pnx_unet_tensor_info info;
        pnx_unet_tensor_at(m[0], i, &info);
        if (info.kind != PNX_UNET_PARAMETER)
            continue;
        float *a = host_floats(info.count), *c = host_floats(info.count);
        GPU_OK(pnx_unet_read(m[0], info.name, PNX_UNET_GRAD, a, info.count));
        GPU_OK(pnx_unet_read(m[1], info.name, PNX_UNET_GRAD, c, info.count));
        GPU_CHECK(memcmp(a, c, info.count * sizeof *a) == 0,
                  "deterministic mode: gradient of %s differs between identical runs",
                  info.name);
        free(a);
        free(c);
    }
out:
    pnx_unet_destroy(m[0]);
    pnx_unet_destroy(m[1]);
}

/* Trains `from` one step, saves it, loads the file on `to`, and compares
 * eval-mode logits (within tol) and every saved tensor (bit for bit:
 * parameters and statistics are float32 on every backend). */
static void check_checkpoint_move(pnx_backend *from, pnx_backend *to, const char *dir,
                                  batch *b, double tol, const char *what)
{
    char path[512];
    snprintf(path, sizeof path, "%s/moved-%s-%zu.safetensors", dir, from->ops->name,
             from->act_size);
    pnx_unet *src = NULL, *dst = NULL;
    const size_t count = (size_t)b->n * b->h * b->w;
    float *l1 = host_floats(count), *l2 = host_floats(count);
    pnx_loss loss;
    pnx_adam_hparams h = PNX_ADAM_DEFAULTS;
    GPU_OK(pnx_unet_create(&src, from, 4));
    if (!src)
        goto out;
    GPU_OK(pnx_unet_init(src, 42));
    GPU_OK(pnx_unet_forward(src, b->images, b->n, b->h, b->w, 1, NULL));
    GPU_OK(pnx_unet_backward(src, b->masks, 1.0f, 1.0f, &loss));
    GPU_OK(pnx_unet_adam_step(src, &h));
    GPU_OK(pnx_unet_forward(src, b->images, b->n, b->h, b->w, 1, NULL)); /* running stats move */
    GPU_OK(pnx_checkpoint_save(src, path, NULL));
    GPU_OK(pnx_checkpoint_load(&dst, to, path, NULL));
    if (!dst)
        goto out;
    compare_tensors(dst, src, PNX_UNET_VALUE, 0.0, what, 0);
    GPU_OK(pnx_unet_forward(src, b->images, b->n, b->h, b->w, 0, l1));
    GPU_OK(pnx_unet_forward(dst, b->images, b->n, b->h, b->w, 0, l2));
    compare_floats(l2, l1, count, tol, what, tol > TOL);
    unlink(path);
out:
    pnx_unet_destroy(src);
    pnx_unet_destroy(dst);
    free(l1);
    free(l2);
}

/* Mixed precision: a step against the reference on the same rounded
 * images, bitwise reproducibility when deterministic, and a checkpoint
 * trained in BF16 read by the reference backend. */
static void check_bf16(pnx_backend *ref, const char *dir, const batch *small, const batch *odd)
{
    pnx_backend *bf = NULL, *bfdet = NULL;
    pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
    opt.mixed_bf16 = 1;
    GPU_OK(pnx_backend_cuda_create(&bf, &opt));
    opt.deterministic = 1;
    GPU_OK(pnx_backend_cuda_create(&bfdet, &opt));
    if (bf && bfdet) {
        char desc[512];
        pnx_backend_cuda_describe(bf, desc, sizeof desc);
        printf("test_gpu_unet: %s\n", desc);
        batch s16 = bf16_batch(small), o16 = bf16_batch(odd);
        check_training_step(bf, ref, 4, &s16, &bf16_tol);
        check_training_step(bf, ref, 6, &o16, &bf16_tol);
        check_training_step(bfdet, ref, 4, &s16, &bf16_tol);
        check_deterministic(bfdet, 4, &o16);
        check_checkpoint_move(bf, ref, dir, &s16, BF16_NET_TOL,
                              "checkpoint trained in BF16 -> reference");
        free_batch(&s16);
        free_batch(&o16);
    }
    pnx_backend_destroy(bf);
    pnx_backend_destroy(bfdet);
}

int main(void)
{
    gpu_test_begin();
    int skip = gpu_test_skip_reason("test_gpu_unet");
    if (skip)
        return skip;
    pnx_rng_seed(&rng, 6, 1);
    pnx_backend *dev = NULL, *det = NULL, *ref = NULL;
    pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
    if (gpu_test_backend(&dev, &opt) != 0 || pnx_backend_reference_create(&ref) != 0) {
        fprintf(stderr, "FAIL: backends: %s\n", pnx_errmsg());
        return 1;
    }
    opt.deterministic = 1;
    if (gpu_test_backend(&det, &opt) != 0) {
        fprintf(stderr, "FAIL: deterministic backend: %s\n", pnx_errmsg());
        return 1;
    }
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_gpu_unet.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "FAIL: mkdtemp %s\n", dir);
        return 1;
    }

    batch small = make_batch(2, 32, 32);
    batch odd = make_batch(3, 48, 64);
    /* base 6 puts parameters at offsets that are not multiples of 16 bytes */
    check_training_step(dev, ref, 4, &small, &fp32_tol);
    check_training_step(dev, ref, 6, &odd, &fp32_tol);
    check_training_step(det, ref, 4, &small, &fp32_tol);
    check_deterministic(det, 4, &odd);
    check_checkpoint_move(dev, ref, dir, &small, TOL, "checkpoint GPU -> reference");
    check_checkpoint_move(ref, dev, dir, &small, TOL, "checkpoint reference -> GPU");
    pnx_backend_destroy(dev);
    pnx_backend_destroy(det);

    if (gpu_test_standin())
        printf("test_gpu_unet: BF16 part SKIPPED: mixed precision runs on the CUDA backend only; "
               "the stand-in '%s' computes in float32\n", gpu_test_standin());
    else
        check_bf16(ref, dir, &small, &odd);

    free_batch(&small);
    free_batch(&odd);
    rmdir(dir);
    pnx_backend_destroy(ref);
    return gpu_test_finish("test_gpu_unet");
}
