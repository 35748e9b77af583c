/*
 * tests/test_gpu_ops_bf16.c — the CUDA backend in mixed precision
 * (pnx_cuda_options.mixed_bf16: activations bfloat16 NHWC; parameters,
 * their gradients and BatchNorm statistics float32), every activation op
 * against the reference ops (model/ops_ref.c) run on the same inputs
 * rounded to bfloat16. Activations move only through act_upload and
 * act_download (float32 NCHW on the host), so the layout conversions are
 * checked too: bit for bit, ties to even. Every error is printed, so the
 * first run on a card shows the margins. Label gpu; exits 77 (skipped)
 * without a GPU and on a stand-in backend (mixed precision exists only on
 * the CUDA backend; test_gpu_ops checks the float32 ops on a stand-in).
 *
 * Tolerances, normwise (max |got − want| / max |want|). Both sides start
 * from the same bfloat16-exact values (activations and convolution weights
 * rounded on the host; the backend's float32 → bfloat16 conversions are
 * then exact), so the differences are only:
 *   - rounding a result to bfloat16 when it is stored: relative ≤ u = 2^-8
 *     (8 significant bits); a path stores at most three times (cuDNN's
 *     output, the bias added onto it, an accumulation into a gradient), so
 *     ≤ 3u ≈ 1.2e-2;
 *   - float32 sums in another order over the reduction lengths (≤ 9·64
 *     products a convolution output, ≤ 2·48·48 pixels a filter gradient):
 *     the float32 test bounds these by 1e-4, negligible next to u.
 * Hence OP_TOL = 2e-2 (3u plus margin). Results that are sums in double or
 * float32 of identical inputs, never stored in bfloat16 (BatchNorm's saved
 * and running statistics, dgamma, dbeta, bias gradients in float32, the
 * loss), keep the float32 test's STAT_TOL = 1e-4 (LOSS_TOL 1e-5 for the
 * loss, a sum in double). Copies, ReLU, max-pool and concatenation do no
 * arithmetic and must be exact, except where they accumulate (one
 * rounding, OP_TOL).
 */
#include <stdint.h>

#include "model/ops_ref.h"
#include "test_gpu_util.h"

#define BF16_U (1.0 / 256.0)
#define OP_TOL 2e-2
#define STAT_TOL 1e-4
#define LOSS_TOL 1e-5

static pnx_rng rng;

/* Normal values already rounded to bfloat16. */
static void fill_bf16(float *v, size_t n, double mean, double sd)
{
    fill_normal(&rng, v, n, mean, sd);
    round_bf16(v, n);
}

/* A float32 parameter tensor compared with its reference, error printed. */
static void param_close(pnx_backend *be, const float *dev, const float *want, size_t n,
                        double tol, const char *what)
{
    float *got = host_floats(n);
    dev_read(be, got, dev, n);
    double e = rel_error(got, want, n);
    printf("  %-60s error %.3g (tolerance %.3g)\n", what, e, tol);
    GPU_CHECK(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
    free(got);
}

/* ---- activation transfers ------------------------------------------------ */

/* Values that are bfloat16 come back bit for bit; others come back rounded
 * to nearest, ties to even, signed zeros and infinities kept. */
static void check_act_round_trip(pnx_backend *be, pnx_dims d)
{
    const size_t n = pnx_dims_count(d);
    float *h = host_floats(n), *want = host_floats(n), *got = host_floats(n);
    fill_normal(&rng, h, n, 0.0, 3.0);
    const float special[] = {
        0.0f, -0.0f, 1.0f + 1.0f / 256,  /* a tie: to 1 (even) */
        1.0f + 3.0f / 256,               /* a tie: to 1 + 2^-6 (even) */
        -1.0f - 1.0f / 256 - 1e-6f,      /* just past a tie: away from 1 */
        65504.0f, 1e-30f, -3.0e38f, INFINITY, -INFINITY,
    };
    for (size_t i = 0; i < n && i < sizeof special / sizeof *special; i++)
        h[i] = special[i];
    for (size_t i = 0; i < n; i++)
        want[i] = bf16_round(h[i]);
    char what[96];
    snprintf(what, sizeof what, "act round trip (%d,%d,%d,%d)", d.n, d.c, d.h, d.w);
    float *g = dev_act(be, h, d);
    act_read(be, got, g, d);
    GPU_CHECK(memcmp(got, want, n * sizeof *got) == 0, "%s: not rounded to nearest even", what);
    /* bfloat16-exact values: the identity */
    GPU_OK(be->ops->act_upload(be, g, want, d));
    act_read(be, got, g, d);
    GPU_CHECK(memcmp(got, want, n * sizeof *got) == 0, "%s: exact values changed", what);
    be->ops->release(be, g);
    free(h), free(want), free(got);
}

/* ---- convolutions -------------------------------------------------------- */

enum conv_kind { CONV3, CONV1, UPCONV };

static const char *kind_name(enum conv_kind k)
{
    return k == CONV3 ? "conv3x3" : k == CONV1 ? "conv1x1" : "upconv2x2";
}

static void ref_conv_forward(enum conv_kind k, const float *x, pnx_dims xd, const float *w,
                             const float *bias, int cout, float *y)
{
    if (k == CONV3)
        pnx_ref_conv3x3_forward(x, xd, w, bias, cout, y);
    else if (k == CONV1)
        pnx_ref_conv1x1_forward(x, xd, w, bias, cout, y);
    else
        pnx_ref_upconv2x2_forward(x, xd, w, bias, cout, y);
}

static void ref_conv_backward(enum conv_kind k, const float *x, pnx_dims xd, const float *w,
                              int cout, const float *dy, float *dx, int acc, float *dw, float *db)
{
    if (k == CONV3)
        pnx_ref_conv3x3_backward(x, xd, w, cout, dy, dx, acc, dw, db);
    else if (k == CONV1)
        pnx_ref_conv1x1_backward(x, xd, w, cout, dy, dx, acc, dw, db);
    else
        pnx_ref_upconv2x2_backward(x, xd, w, cout, dy, dx, acc, dw, db);
}

static int be_conv_forward(pnx_backend *be, enum conv_kind k, const float *x, pnx_dims xd,
                           const float *w, const float *bias, int cout, float *y)
{
    if (k == CONV3)
        return be->ops->conv3x3_forward(be, x, xd, w, bias, cout, y);
    if (k == CONV1)
        return be->ops->conv1x1_forward(be, x, xd, w, bias, cout, y);
    return be->ops->upconv2x2_forward(be, x, xd, w, bias, cout, y);
}

static int be_conv_backward(pnx_backend *be, enum conv_kind k, const float *x, pnx_dims xd,
                            const float *w, int cout, const float *dy, float *dx, int acc,
                            float *dw, float *db)
{
    if (k == CONV3)
        return be->ops->conv3x3_backward(be, x, xd, w, cout, dy, dx, acc, dw, db);
    if (k == CONV1)
        return be->ops->conv1x1_backward(be, x, xd, w, cout, dy, dx, acc, dw, db);
    return be->ops->upconv2x2_backward(be, x, xd, w, cout, dy, dx, acc, dw, db);
}

static void check_conv(pnx_backend *be, enum conv_kind kind, pnx_dims xd, int cout)
{
    const int up = kind == UPCONV ? 2 : 1;
    const pnx_dims yd = {xd.n, cout, xd.h * up, xd.w * up};
    const size_t nx = pnx_dims_count(xd), ny = pnx_dims_count(yd);
    const size_t nw = (size_t)cout * xd.c * (kind == CONV3 ? 9 : kind == CONV1 ? 1 : 4);
    float *x = host_floats(nx), *w = host_floats(nw), *bias = host_floats((size_t)cout);
    float *y = host_floats(ny), *dy = host_floats(ny);
    float *dx = host_floats(nx), *dw = host_floats(nw), *db = host_floats((size_t)cout);
    fill_bf16(x, nx, 0.0, 1.0);
    fill_bf16(w, nw, 0.0, 0.2);
    fill_normal(&rng, bias, (size_t)cout, 0.0, 0.5);
    fill_bf16(dy, ny, 0.0, 1.0);
    float *gx = dev_act(be, x, xd), *gy = dev_act(be, NULL, yd), *gdy = dev_act(be, dy, yd);
    float *gw = dev_floats(be, w, nw), *gb = dev_floats(be, bias, (size_t)cout);
    char shape[96], what[160];
    snprintf(shape, sizeof shape, "%s (%d,%d,%d,%d)->%d", kind_name(kind), xd.n, xd.c, xd.h,
             xd.w, cout);

    ref_conv_forward(kind, x, xd, w, bias, cout, y);
    GPU_OK(be_conv_forward(be, kind, gx, xd, gw, gb, cout, gy));
    GPU_ACT_CLOSE(be, gy, y, yd, OP_TOL, "%s forward", shape);

    /* dx overwritten, then accumulated onto bfloat16 values; dw, db always
     * accumulate onto what is there */
    for (int acc = 0; acc <= 1; acc++) {
        fill_bf16(dx, nx, 0.0, 1.0);
        fill_normal(&rng, dw, nw, 0.0, 1.0);
        fill_normal(&rng, db, (size_t)cout, 0.0, 1.0);
        float *gdx = dev_act(be, dx, xd), *gdw = dev_floats(be, dw, nw);
        float *gdb = dev_floats(be, db, (size_t)cout);
        ref_conv_backward(kind, x, xd, w, cout, dy, dx, acc, dw, db);
        GPU_OK(be_conv_backward(be, kind, gx, xd, gw, cout, gdy, gdx, acc, gdw, gdb));
        GPU_ACT_CLOSE(be, gdx, dx, xd, OP_TOL, "%s dx (accumulate %d)", shape, acc);
        snprintf(what, sizeof what, "%s dw", shape);
        param_close(be, gdw, dw, nw, OP_TOL, what);
        snprintf(what, sizeof what, "%s db", shape);
        param_close(be, gdb, db, (size_t)cout, STAT_TOL, what);
        be->ops->release(be, gdx);
        be->ops->release(be, gdw);
        be->ops->release(be, gdb);
    }
    /* dx not wanted */
    {
        fill_normal(&rng, dw, nw, 0.0, 1.0);
        memset(db, 0, (size_t)cout * sizeof *db);
        float *gdw = dev_floats(be, dw, nw), *gdb = dev_floats(be, NULL, (size_t)cout);
        ref_conv_backward(kind, x, xd, w, cout, dy, NULL, 0, dw, db);
        GPU_OK(be_conv_backward(be, kind, gx, xd, gw, cout, gdy, NULL, 0, gdw, gdb));
        snprintf(what, sizeof what, "%s dw without dx", shape);
        param_close(be, gdw, dw, nw, OP_TOL, what);
        snprintf(what, sizeof what, "%s db without dx", shape);
        param_close(be, gdb, db, (size_t)cout, STAT_TOL, what);
        be->ops->release(be, gdw);
        be->ops->release(be, gdb);
    }
    float *ptrs[] = {gx, gy, gdy, gw, gb};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
        be->ops->release(be, ptrs[i]);
    free(x), free(w), free(bias), free(y), free(dy), free(dx), free(dw), free(db);
}

/* ---- BatchNorm, alone and fused with ReLU ---------------------------------- */

static int be_bn_forward(pnx_backend *be, int fused, const float *x, pnx_dims d,
                         const float *gamma, const float *beta, float *rm, float *rv,
                         int training, float *y, float *sm, float *si)
{
    if (fused)
        return be->ops->batchnorm_relu_forward(be, x, d, gamma, beta, rm, rv, training, 0.1f,
                                               1e-5f, y, sm, si);
    return be->ops->batchnorm_forward(be, x, d, gamma, beta, rm, rv, training, 0.1f, 1e-5f, y,
                                      sm, si);
}

/* The reference: BN, then ReLU in place when fused. */
static void ref_bn_forward(int fused, const float *x, pnx_dims d, const float *gamma,
                           const float *beta, float *rm, float *rv, int training, float *y,
                           float *sm, float *si)
{
    GPU_CHECK(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, training, 0.1f, 1e-5f, y, sm,
                                        si) == 0, "reference batch norm");
    if (fused)
        pnx_ref_relu_forward(y, y, pnx_dims_count(d));
}

/* Training forward (and in place), backward twice (=, +=), eval in place.
 * The backward is given the reference's statistics and, fused, the
 * reference's y rounded to bfloat16 (rounding keeps every sign, so the ReLU
 * mask is the reference's). */
static void check_bn(pnx_backend *be, int fused, pnx_dims d, double mean, double sd)
{
    const size_t n = pnx_dims_count(d), c = (size_t)d.c;
    float *x = host_floats(n), *y = host_floats(n), *gamma = host_floats(c);
    float *beta = host_floats(c), *rm = host_floats(c), *rv = host_floats(c);
    float *sm = host_floats(c), *si = host_floats(c), *dy = host_floats(n), *dz = host_floats(n);
    float *dx = host_floats(n), *dg = host_floats(c), *dbeta = host_floats(c);
    fill_bf16(x, n, mean, sd);
    fill_normal(&rng, gamma, c, 1.0, 0.3);
    fill_normal(&rng, beta, c, 0.0, 0.3);
    fill_normal(&rng, rm, c, 0.0, 0.1);
    for (size_t i = 0; i < c; i++)
        rv[i] = 0.5f + (float)pnx_rng_uniform(&rng);
    fill_bf16(dy, n, 0.0, 1.0);
    float *gx = dev_act(be, x, d), *gy = dev_act(be, NULL, d), *gxy = dev_act(be, x, d);
    float *gg = dev_floats(be, gamma, c), *gbeta = dev_floats(be, beta, c);
    float *grm = dev_floats(be, rm, c), *grv = dev_floats(be, rv, c);
    float *grm2 = dev_floats(be, rm, c), *grv2 = dev_floats(be, rv, c);
    float *gsm = dev_floats(be, NULL, c), *gsi = dev_floats(be, NULL, c);
    char shape[96], what[160];
    snprintf(shape, sizeof shape, "%s (%d,%d,%d,%d) mean %g",
             fused ? "batchnorm+relu" : "batchnorm", d.n, d.c, d.h, d.w, mean);

    ref_bn_forward(fused, x, d, gamma, beta, rm, rv, 1, y, sm, si);
    GPU_OK(be_bn_forward(be, fused, gx, d, gg, gbeta, grm, grv, 1, gy, gsm, gsi));
    GPU_ACT_CLOSE(be, gy, y, d, OP_TOL, "%s train y", shape);
    snprintf(what, sizeof what, "%s save_mean", shape);
    param_close(be, gsm, sm, c, STAT_TOL, what);
    snprintf(what, sizeof what, "%s save_invstd", shape);
    param_close(be, gsi, si, c, STAT_TOL, what);
    snprintf(what, sizeof what, "%s running_mean", shape);
    param_close(be, grm, rm, c, STAT_TOL, what);
    snprintf(what, sizeof what, "%s running_var", shape);
    param_close(be, grv, rv, c, STAT_TOL, what);
    GPU_OK(be_bn_forward(be, fused, gxy, d, gg, gbeta, grm2, grv2, 1, gxy, gsm, gsi));
    GPU_ACT_CLOSE(be, gxy, y, d, OP_TOL, "%s train y in place", shape);

    /* backward from the reference's forward */
    GPU_OK(be->ops->upload(be, gsm, sm, c * sizeof(float)));
    GPU_OK(be->ops->upload(be, gsi, si, c * sizeof(float)));
    GPU_OK(be->ops->act_upload(be, gy, y, d));
    float *gdy = dev_act(be, dy, d);
    for (int acc = 0; acc <= 1; acc++) {
        fill_bf16(dx, n, 0.0, 1.0);
        fill_normal(&rng, dg, c, 0.0, 1.0);
        fill_normal(&rng, dbeta, c, 0.0, 1.0);
        float *gdx = dev_act(be, dx, d), *gdg = dev_floats(be, dg, c);
        float *gdb = dev_floats(be, dbeta, c);
        if (fused) {
            pnx_ref_relu_backward(y, dy, dz, n);
            pnx_ref_batchnorm_backward(x, d, gamma, sm, si, dz, dx, acc, dg, dbeta);
            GPU_OK(be->ops->batchnorm_relu_backward(be, gx, gy, d, gg, gsm, gsi, gdy, gdx, acc,
                                                    gdg, gdb));
        } else {
            pnx_ref_batchnorm_backward(x, d, gamma, sm, si, dy, dx, acc, dg, dbeta);
            GPU_OK(be->ops->batchnorm_backward(be, gx, d, gg, gsm, gsi, gdy, gdx, acc, gdg,
                                               gdb));
        }
        GPU_ACT_CLOSE(be, gdx, dx, d, OP_TOL, "%s dx (accumulate %d)", shape, acc);
        snprintf(what, sizeof what, "%s dgamma", shape);
        param_close(be, gdg, dg, c, STAT_TOL, what);
        snprintf(what, sizeof what, "%s dbeta", shape);
        param_close(be, gdb, dbeta, c, STAT_TOL, what);
        be->ops->release(be, gdx);
        be->ops->release(be, gdg);
        be->ops->release(be, gdb);
    }
    GPU_ACT_CLOSE(be, gdy, dy, d, 0.0, "%s dy untouched", shape);
    be->ops->release(be, gdy);

    /* eval, in place, from the running statistics both sides now hold */
    ref_bn_forward(fused, x, d, gamma, beta, rm, rv, 0, y, NULL, NULL);
    GPU_OK(be_bn_forward(be, fused, gx, d, gg, gbeta, grm, grv, 0, gx, NULL, NULL));
    GPU_ACT_CLOSE(be, gx, y, d, OP_TOL, "%s eval y in place", shape);

    float *ptrs[] = {gx, gy, gxy, gg, gbeta, grm, grv, grm2, grv2, gsm, gsi};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
        be->ops->release(be, ptrs[i]);
    free(x), free(y), free(gamma), free(beta), free(rm), free(rv), free(sm), free(si);
    free(dy), free(dz), free(dx), free(dg), free(dbeta);
}

/* ---- ReLU, max-pool, concatenation ------------------------------------------ */

static void check_relu(pnx_backend *be, int count)
{
    const pnx_dims d = {1, 1, 1, count}; /* one channel: NHWC is NCHW */
    const size_t n = (size_t)count;
    float *x = host_floats(n), *y = host_floats(n), *dy = host_floats(n), *dx = host_floats(n);
    fill_bf16(x, n, 0.0, 1.0);
    fill_bf16(dy, n, 0.0, 1.0);
    x[0] = 0.0f; /* ReLU'(0) = 0 */
    pnx_ref_relu_forward(x, y, n);
    pnx_ref_relu_backward(y, dy, dx, n);
    float *gx = dev_act(be, x, d), *gdy = dev_act(be, dy, d);
    GPU_OK(be->ops->relu_forward(be, gx, gx, n));
    GPU_ACT_CLOSE(be, gx, y, d, 0.0, "relu forward %d, in place", count);
    GPU_OK(be->ops->relu_backward(be, gx, gdy, gdy, n));
    GPU_ACT_CLOSE(be, gdy, dx, d, 0.0, "relu backward %d, in place", count);
    be->ops->release(be, gx);
    be->ops->release(be, gdy);
    free(x), free(y), free(dy), free(dx);
}

static void check_maxpool(pnx_backend *be, pnx_dims xd)
{
    const pnx_dims yd = {xd.n, xd.c, xd.h / 2, xd.w / 2};
    const size_t nx = pnx_dims_count(xd), ny = pnx_dims_count(yd);
    float *x = host_floats(nx), *y = host_floats(ny), *dy = host_floats(ny);
    float *dx = host_floats(nx);
    uint8_t *am = calloc(ny, 1), *am_nhwc = calloc(ny, 1), *got = calloc(ny, 1);
    if (!am || !am_nhwc || !got) {
        fprintf(stderr, "out of host memory\n");
        exit(2);
    }
    /* few distinct values, so ties are common and the first must win */
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)pnx_rng_below(&rng, 4);
    fill_bf16(dy, ny, 0.0, 1.0);
    pnx_ref_maxpool2x2_forward(x, xd, y, am);
    /* the backend's argmax is NHWC, as its activations */
    for (int n = 0; n < yd.n; n++)
        for (int c = 0; c < yd.c; c++)
            for (size_t p = 0; p < (size_t)yd.h * yd.w; p++)
                am_nhwc[((size_t)n * yd.h * yd.w + p) * yd.c + c] =
                    am[((size_t)n * yd.c + c) * yd.h * yd.w + p];
    float *gx = dev_act(be, x, xd), *gy = dev_act(be, NULL, yd), *gdy = dev_act(be, dy, yd);
    void *gam = NULL;
    GPU_OK(be->ops->alloc(be, ny, &gam));
    GPU_OK(be->ops->maxpool2x2_forward(be, gx, xd, gy, gam));
    GPU_ACT_CLOSE(be, gy, y, yd, 0.0, "maxpool forward (%d,%d,%d,%d)", xd.n, xd.c, xd.h, xd.w);
    GPU_OK(be->ops->download(be, got, gam, ny));
    GPU_CHECK(memcmp(got, am_nhwc, ny) == 0, "maxpool argmax differs (NHWC, ties to the first)");
    for (int acc = 0; acc <= 1; acc++) {
        fill_bf16(dx, nx, 0.0, 1.0);
        float *gdx = dev_act(be, dx, xd);
        pnx_ref_maxpool2x2_backward(xd, am, dy, dx, acc);
        GPU_OK(be->ops->maxpool2x2_backward(be, xd, gam, gdy, gdx, acc));
        GPU_ACT_CLOSE(be, gdx, dx, xd, acc ? OP_TOL : 0.0, "maxpool backward (accumulate %d)",
                      acc);
        be->ops->release(be, gdx);
    }
    be->ops->release(be, gx);
    be->ops->release(be, gy);
    be->ops->release(be, gdy);
    be->ops->release(be, gam);
    free(x), free(y), free(dy), free(dx), free(am), free(am_nhwc), free(got);
}

/* (N, C, HW) tensors as activations of shape (N, C, HW, 1). */
static void check_concat(pnx_backend *be, int n, int ca, int cb, int hw)
{
    const pnx_dims ad = {n, ca, hw, 1}, bd = {n, cb, hw, 1}, yd = {n, ca + cb, hw, 1};
    const size_t na = pnx_dims_count(ad), nb = pnx_dims_count(bd), ny = na + nb;
    float *a = host_floats(na), *b = host_floats(nb), *y = host_floats(ny);
    fill_bf16(a, na, 0.0, 1.0);
    fill_bf16(b, nb, 0.0, 1.0);
    pnx_ref_concat_channels(a, ca, b, cb, n, (size_t)hw, y);
    float *ga = dev_act(be, a, ad), *gb = dev_act(be, b, bd), *gy = dev_act(be, NULL, yd);
    GPU_OK(be->ops->concat_channels(be, ga, ca, gb, cb, n, (size_t)hw, gy));
    GPU_ACT_CLOSE(be, gy, y, yd, 0.0, "concat %d+%d (n %d, hw %d)", ca, cb, n, hw);
    for (int acc = 0; acc <= 1; acc++) {
        fill_bf16(a, na, 0.0, 1.0);
        fill_bf16(b, nb, 0.0, 1.0);
        GPU_OK(be->ops->act_upload(be, ga, a, ad));
        GPU_OK(be->ops->act_upload(be, gb, b, bd));
        pnx_ref_split_channels(y, ca, cb, n, (size_t)hw, a, acc, b, !acc);
        GPU_OK(be->ops->split_channels(be, gy, ca, cb, n, (size_t)hw, ga, acc, gb, !acc));
        GPU_ACT_CLOSE(be, ga, a, ad, acc ? OP_TOL : 0.0, "split a (accumulate %d)", acc);
        GPU_ACT_CLOSE(be, gb, b, bd, acc ? 0.0 : OP_TOL, "split b (accumulate %d)", !acc);
    }
    be->ops->release(be, ga);
    be->ops->release(be, gb);
    be->ops->release(be, gy);
    free(a), free(b), free(y);
}

/* ---- the loss -------------------------------------------------------------------- */

static void check_loss(pnx_backend *be, int n, int h, int w, double positive_fraction)
{
    const pnx_dims d = {n, 1, h, w};
    const size_t count = pnx_dims_count(d);
    float *logits = host_floats(count), *target = host_floats(count), *dl = host_floats(count);
    fill_bf16(logits, count, -1.0, 3.0);
    for (size_t i = 0; i < count; i++)
        target[i] = pnx_rng_uniform(&rng) < positive_fraction ? 1.0f : 0.0f;
    pnx_loss want, got;
    pnx_ref_seg_loss(logits, target, count, 0.7f, 0.3f, &want, dl);
    float *gl = dev_act(be, logits, d), *gt = dev_act(be, target, d), *gd = dev_act(be, NULL, d);
    GPU_OK(be->ops->seg_loss(be, gl, gt, count, 0.7f, 0.3f, &got, gd));
    const double e = fmax(fabs(got.total - want.total) / (fabs(want.total) + 1e-12),
                          fmax(fabs(got.bce - want.bce) / (fabs(want.bce) + 1e-12),
                               fabs(got.dice - want.dice) / (fabs(want.dice) + 1e-12)));
    printf("  %-60s error %.3g (tolerance %.3g)\n", "loss", e, LOSS_TOL);
    GPU_CHECK(e <= LOSS_TOL, "loss %zu: got %.12g/%.12g/%.12g want %.12g/%.12g/%.12g", count,
              got.total, got.bce, got.dice, want.total, want.bce, want.dice);
    GPU_ACT_CLOSE(be, gd, dl, d, OP_TOL, "loss gradient (%d,1,%d,%d)", n, h, w);
    pnx_loss only;
    GPU_OK(be->ops->seg_loss(be, gl, gt, count, 0.7f, 0.3f, &only, NULL));
    GPU_CHECK(only.total == got.total, "loss without the gradient %.17g, with %.17g", only.total,
              got.total);
    be->ops->release(be, gl);
    be->ops->release(be, gt);
    be->ops->release(be, gd);
    free(logits), free(target), free(dl);
}

static void run_all(pnx_backend *be, int deterministic)
{
    check_act_round_trip(be, (pnx_dims){1, 1, 1, 1});
    check_act_round_trip(be, (pnx_dims){2, 3, 5, 7});
    check_act_round_trip(be, (pnx_dims){2, 64, 16, 16});
    check_act_round_trip(be, (pnx_dims){1, 5, 33, 17});

    check_conv(be, CONV3, (pnx_dims){2, 1, 16, 16}, 8); /* the U-Net's first layer */
    check_conv(be, CONV3, (pnx_dims){2, 3, 8, 8}, 5);
    check_conv(be, CONV3, (pnx_dims){1, 16, 17, 9}, 8);
    check_conv(be, CONV3, (pnx_dims){2, 64, 16, 16}, 64);
    check_conv(be, CONV3, (pnx_dims){2, 32, 4, 4}, 48);
    check_conv(be, CONV1, (pnx_dims){2, 8, 8, 8}, 1); /* the U-Net's last layer */
    check_conv(be, CONV1, (pnx_dims){2, 5, 7, 3}, 6);
    check_conv(be, UPCONV, (pnx_dims){2, 8, 4, 4}, 8);
    check_conv(be, UPCONV, (pnx_dims){1, 3, 5, 7}, 2);
    check_conv(be, UPCONV, (pnx_dims){2, 64, 8, 8}, 64);
    if (!deterministic)
        check_conv(be, CONV3, (pnx_dims){2, 64, 48, 48}, 64);

    for (int fused = 0; fused <= 1; fused++) {
        check_bn(be, fused, (pnx_dims){4, 8, 16, 16}, 0.0, 1.0);
        check_bn(be, fused, (pnx_dims){2, 3, 5, 7}, 0.5, 2.0);
        check_bn(be, fused, (pnx_dims){3, 5, 9, 11}, 10.0, 1.0);
        check_bn(be, fused, (pnx_dims){2, 16, 1, 1}, 0.0, 1.0);
        check_bn(be, fused, (pnx_dims){2, 48, 12, 10}, 0.0, 1.0);
        if (!deterministic)
            check_bn(be, fused, (pnx_dims){4, 64, 32, 32}, 0.3, 1.0);
    }
    check_relu(be, 1);
    check_relu(be, 1000003);
    check_relu(be, 1 << 20);
    check_maxpool(be, (pnx_dims){2, 3, 8, 8});
    check_maxpool(be, (pnx_dims){1, 5, 34, 18});
    check_maxpool(be, (pnx_dims){2, 64, 16, 16});
    check_concat(be, 2, 3, 5, 17);
    check_concat(be, 3, 64, 64, 256);
    check_concat(be, 1, 1, 48, 9);
    check_loss(be, 1, 1, 1, 0.5);
    check_loss(be, 1, 64, 64, 0.1);
    check_loss(be, 3, 256, 256, 0.02);
    check_loss(be, 2, 20, 25, 0.0); /* empty truth */
}

int main(void)
{
    gpu_test_begin();
    if (gpu_test_standin()) {
        printf("test_gpu_ops_bf16: SKIPPED: mixed precision runs on the CUDA backend only; the "
               "stand-in '%s' computes in float32\n", gpu_test_standin());
        return GPU_TEST_SKIP;
    }
    int skip = gpu_test_skip_reason("test_gpu_ops_bf16");
    if (skip)
        return skip;
    pnx_rng_seed(&rng, 6, 2);
    printf("test_gpu_ops_bf16: unit roundoff u = %.3g, op tolerance %.3g\n", BF16_U, OP_TOL);
    for (int deterministic = 0; deterministic <= 1; deterministic++) {
        pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
        opt.mixed_bf16 = 1;
        opt.deterministic = deterministic;
        pnx_backend *be = NULL;
        if (pnx_backend_cuda_create(&be, &opt) != 0) {
            fprintf(stderr, "FAIL: CUDA backend in mixed precision: %s\n", pnx_errmsg());
            return 1;
        }
        char desc[512];
        pnx_backend_cuda_describe(be, desc, sizeof desc);
        printf("test_gpu_ops_bf16: %s\n", desc);
        GPU_CHECK(be->act_size == 2, "act_size %zu in mixed precision", be->act_size);
        GPU_CHECK(strstr(desc, "BF16 mixed precision") != NULL, "describe: %s", desc);
        run_all(be, deterministic);
        pnx_backend_destroy(be);
    }
    return gpu_test_finish("test_gpu_ops_bf16");
}
