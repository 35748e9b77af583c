/*
 * tests/test_gpu_ops.c — every op of the CUDA backend against the reference
 * ops (model/ops_ref.c, the oracle the CPU backend is tested against too),
 * forward and backward, at several shapes including odd sizes, channel
 * counts that are not multiples of anything, and accumulation into
 * non-zero gradients; the fused BN+ReLU against the reference's BN then
 * ReLU; activation transfers (act_upload / act_download, the pinned staged
 * uploads) bit for bit. FP32 with TF32 off: normwise relative error ≤ 1e-4.
 * Mixed precision has its own test, test_gpu_ops_bf16.c.
 * Label gpu; exits 77 (skipped) when no GPU is usable.
 */
#include <stdint.h>

#include "model/ops_ref.h"
#include "test_gpu_util.h"

#define TOL 1e-4

static pnx_rng rng;

enum conv_kind { CONV3, CONV1, UPCONV };

static const char *kind_name(enum conv_kind k)
{
    return k == CONV3 ? "conv3x3" : k == CONV1 ? "conv1x1" : "upconv2x2";
}

static void check_conv(pnx_backend *be, enum conv_kind kind, pnx_dims xd, int cout)
{
    const size_t nx = pnx_dims_count(xd);
    const int scale = kind == UPCONV ? 4 : 1;
    const size_t ny = (size_t)xd.n * cout * xd.h * xd.w * scale;
    const size_t nw = (size_t)cout * xd.c * (kind == CONV3 ? 9 : kind == CONV1 ? 1 : 4);
    float *x = host_floats(nx), *w = host_floats(nw), *bias = host_floats((size_t)cout);
    float *y = host_floats(ny), *dy = host_floats(ny);
    float *dx = host_floats(nx), *dw = host_floats(nw), *db = host_floats((size_t)cout);
    fill_normal(&rng, x, nx, 0.0, 1.0);
    fill_normal(&rng, w, nw, 0.0, 0.2);
    fill_normal(&rng, bias, (size_t)cout, 0.0, 0.5);
    fill_normal(&rng, dy, ny, 0.0, 1.0);
    float *gx = dev_floats(be, x, nx), *gw = dev_floats(be, w, nw);
    float *gb = dev_floats(be, bias, (size_t)cout), *gy = dev_floats(be, NULL, ny);
    float *gdy = dev_floats(be, dy, ny);
    char shape[96];
    snprintf(shape, sizeof shape, "%s (%d,%d,%d,%d)->%d", kind_name(kind), xd.n, xd.c, xd.h,
             xd.w, cout);

    /* forward */
    if (kind == CONV3) {
        pnx_ref_conv3x3_forward(x, xd, w, bias, cout, y);
        GPU_OK(be->ops->conv3x3_forward(be, gx, xd, gw, gb, cout, gy));
    } else if (kind == CONV1) {
        pnx_ref_conv1x1_forward(x, xd, w, bias, cout, y);
        GPU_OK(be->ops->conv1x1_forward(be, gx, xd, gw, gb, cout, gy));
    } else {
        pnx_ref_upconv2x2_forward(x, xd, w, bias, cout, y);
        GPU_OK(be->ops->upconv2x2_forward(be, gx, xd, gw, gb, cout, gy));
    }
    GPU_CLOSE(be, gy, y, ny, TOL, "%s forward", shape);

    /* backward, twice: dx overwritten, then accumulated; dw, db always
     * accumulate onto what is there */
    for (int acc = 0; acc <= 1; acc++) {
        fill_normal(&rng, dx, nx, 0.0, 1.0);
        fill_normal(&rng, dw, nw, 0.0, 1.0);
        fill_normal(&rng, db, (size_t)cout, 0.0, 1.0);
        float *gdx = dev_floats(be, dx, nx), *gdw = dev_floats(be, dw, nw);
        float *gdb = dev_floats(be, db, (size_t)cout);
        if (kind == CONV3) {
            pnx_ref_conv3x3_backward(x, xd, w, cout, dy, dx, acc, dw, db);
            GPU_OK(be->ops->conv3x3_backward(be, gx, xd, gw, cout, gdy, gdx, acc, gdw, gdb));
        } else if (kind == CONV1) {
            pnx_ref_conv1x1_backward(x, xd, w, cout, dy, dx, acc, dw, db);
            GPU_OK(be->ops->conv1x1_backward(be, gx, xd, gw, cout, gdy, gdx, acc, gdw, gdb));
        } else {
            pnx_ref_upconv2x2_backward(x, xd, w, cout, dy, dx, acc, dw, db);
            GPU_OK(be->ops->upconv2x2_backward(be, gx, xd, gw, cout, gdy, gdx, acc, gdw, gdb));
        }
        GPU_CLOSE(be, gdx, dx, nx, TOL, "%s dx (accumulate %d)", shape, acc);
        GPU_CLOSE(be, gdw, dw, nw, TOL, "%s dw", shape);
        GPU_CLOSE(be, gdb, db, (size_t)cout, TOL, "%s db", shape);
        be->ops->release(be, gdx);
        be->ops->release(be, gdw);
        be->ops->release(be, gdb);
    }
    /* dx not wanted: only the parameter gradients */
    {
        fill_normal(&rng, dw, nw, 0.0, 1.0);
        float *gdw = dev_floats(be, dw, nw), *gdb = dev_floats(be, NULL, (size_t)cout);
        memset(db, 0, (size_t)cout * sizeof *db);
        if (kind == CONV3) {
            pnx_ref_conv3x3_backward(x, xd, w, cout, dy, NULL, 0, dw, db);
            GPU_OK(be->ops->conv3x3_backward(be, gx, xd, gw, cout, gdy, NULL, 0, gdw, gdb));
        } else if (kind == CONV1) {
            pnx_ref_conv1x1_backward(x, xd, w, cout, dy, NULL, 0, dw, db);
            GPU_OK(be->ops->conv1x1_backward(be, gx, xd, gw, cout, gdy, NULL, 0, gdw, gdb));
        } else {
            pnx_ref_upconv2x2_backward(x, xd, w, cout, dy, NULL, 0, dw, db);
            GPU_OK(be->ops->upconv2x2_backward(be, gx, xd, gw, cout, gdy, NULL, 0, gdw, gdb));
        }
        GPU_CLOSE(be, gdw, dw, nw, TOL, "%s dw without dx", shape);
        GPU_CLOSE(be, gdb, db, (size_t)cout, TOL, "%s db without dx", shape);
        be->ops->release(be, gdw);
        be->ops->release(be, gdb);
    }
    be->ops->release(be, gx);
    be->ops->release(be, gw);
    be->ops->release(be, gb);
    be->ops->release(be, gy);
    be->ops->release(be, gdy);
    free(x), free(w), free(bias), free(y), free(dy), free(dx), free(dw), free(db);
}

static void check_batchnorm(pnx_backend *be, pnx_dims d, double mean, double sd)
{
    const size_t n = pnx_dims_count(d), c = (size_t)d.c;
    float *x = host_floats(n), *y = host_floats(n), *gamma = host_floats(c);
    float *beta = host_floats(c), *rm = host_floats(c), *rv = host_floats(c);
    float *sm = host_floats(c), *si = host_floats(c), *dy = host_floats(n), *dx = host_floats(n);
    float *dg = host_floats(c), *dbeta = host_floats(c);
    fill_normal(&rng, x, n, mean, sd);
    fill_normal(&rng, gamma, c, 1.0, 0.3);
    fill_normal(&rng, beta, c, 0.0, 0.3);
    fill_normal(&rng, rm, c, 0.0, 0.1);
    for (size_t i = 0; i < c; i++)
        rv[i] = 0.5f + (float)pnx_rng_uniform(&rng);
    fill_normal(&rng, dy, n, 0.0, 1.0);
    float *gx = dev_floats(be, x, n), *gy = dev_floats(be, NULL, n);
    float *gg = dev_floats(be, gamma, c), *gbeta = dev_floats(be, beta, c);
    float *grm = dev_floats(be, rm, c), *grv = dev_floats(be, rv, c);
    float *gsm = dev_floats(be, NULL, c), *gsi = dev_floats(be, NULL, c);
    char shape[96];
    snprintf(shape, sizeof shape, "batchnorm (%d,%d,%d,%d) mean %g", d.n, d.c, d.h, d.w, mean);

    /* training forward: output, saved statistics, running statistics */
    GPU_CHECK(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, 1, 0.1f, 1e-5f, y, sm, si) ==
                  0, "reference batch norm");
    GPU_OK(be->ops->batchnorm_forward(be, gx, d, gg, gbeta, grm, grv, 1, 0.1f, 1e-5f, gy, gsm,
                                      gsi));
    GPU_CLOSE(be, gy, y, n, TOL, "%s train y", shape);
    GPU_CLOSE(be, gsm, sm, c, TOL, "%s save_mean", shape);
    GPU_CLOSE(be, gsi, si, c, TOL, "%s save_invstd", shape);
    GPU_CLOSE(be, grm, rm, c, TOL, "%s running_mean", shape);
    GPU_CLOSE(be, grv, rv, c, TOL, "%s running_var", shape);

    /* backward, overwrite then accumulate */
    for (int acc = 0; acc <= 1; acc++) {
        fill_normal(&rng, dx, n, 0.0, 1.0);
        fill_normal(&rng, dg, c, 0.0, 1.0);
        fill_normal(&rng, dbeta, c, 0.0, 1.0);
        float *gdx = dev_floats(be, dx, n), *gdg = dev_floats(be, dg, c);
        float *gdb = dev_floats(be, dbeta, c);
        pnx_ref_batchnorm_backward(x, d, gamma, sm, si, dy, dx, acc, dg, dbeta);
        float *gdy = dev_floats(be, dy, n);
        GPU_OK(be->ops->batchnorm_backward(be, gx, d, gg, gsm, gsi, gdy, gdx, acc, gdg, gdb));
        GPU_CLOSE(be, gdx, dx, n, TOL, "%s dx (accumulate %d)", shape, acc);
        GPU_CLOSE(be, gdg, dg, c, TOL, "%s dgamma", shape);
        GPU_CLOSE(be, gdb, dbeta, c, TOL, "%s dbeta", shape);
        be->ops->release(be, gdx);
        be->ops->release(be, gdg);
        be->ops->release(be, gdb);
        be->ops->release(be, gdy);
    }

    /* eval forward, in place (y == x), with the running statistics */
    GPU_CHECK(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, 0, 0.1f, 1e-5f, y, NULL,
                                        NULL) == 0, "reference batch norm eval");
    GPU_OK(be->ops->batchnorm_forward(be, gx, d, gg, gbeta, grm, grv, 0, 0.1f, 1e-5f, gx, NULL,
                                      NULL));
    GPU_CLOSE(be, gx, y, n, TOL, "%s eval y in place", shape);

    float *ptrs[] = {gx, gy, gg, gbeta, grm, grv, gsm, gsi};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
        be->ops->release(be, ptrs[i]);
    free(x), free(y), free(gamma), free(beta), free(rm), free(rv), free(sm), free(si);
    free(dy), free(dx), free(dg), free(dbeta);
}

/* The fused op against the composition of the reference ops: BN then ReLU
 * forward (training, in place, eval) and ReLU's backward then BN's. The
 * backward is given the reference's y, so the mask is the same on both. */
static void check_batchnorm_relu(pnx_backend *be, pnx_dims d, double mean, double sd)
{
    if (!be->ops->batchnorm_relu_forward || !be->ops->batchnorm_relu_backward) {
        GPU_CHECK(0, "backend %s has no fused batch norm + relu", be->ops->name);
        return;
    }
    const size_t n = pnx_dims_count(d), c = (size_t)d.c;
    float *x = host_floats(n), *y = host_floats(n), *gamma = host_floats(c);
    float *beta = host_floats(c), *rm = host_floats(c), *rv = host_floats(c);
    float *sm = host_floats(c), *si = host_floats(c), *dy = host_floats(n), *dz = host_floats(n);
    float *dx = host_floats(n), *dg = host_floats(c), *dbeta = host_floats(c);
    fill_normal(&rng, x, n, mean, sd);
    fill_normal(&rng, gamma, c, 1.0, 0.3);
    fill_normal(&rng, beta, c, 0.0, 0.3);
    fill_normal(&rng, rm, c, 0.0, 0.1);
    for (size_t i = 0; i < c; i++)
        rv[i] = 0.5f + (float)pnx_rng_uniform(&rng);
    fill_normal(&rng, dy, n, 0.0, 1.0);
    float *gx = dev_floats(be, x, n), *gy = dev_floats(be, NULL, n);
    float *gg = dev_floats(be, gamma, c), *gbeta = dev_floats(be, beta, c);
    float *grm = dev_floats(be, rm, c), *grv = dev_floats(be, rv, c);
    float *gsm = dev_floats(be, NULL, c), *gsi = dev_floats(be, NULL, c);
    float *grm2 = dev_floats(be, rm, c), *grv2 = dev_floats(be, rv, c);
    float *gsm2 = dev_floats(be, NULL, c), *gsi2 = dev_floats(be, NULL, c);
    char shape[96];
    snprintf(shape, sizeof shape, "batchnorm+relu (%d,%d,%d,%d) mean %g", d.n, d.c, d.h, d.w,
             mean);

    /* training forward: the reference's BN, then its ReLU in place */
    GPU_CHECK(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, 1, 0.1f, 1e-5f, y, sm, si) ==
                  0, "reference batch norm");
    pnx_ref_relu_forward(y, y, n);
    GPU_OK(be->ops->batchnorm_relu_forward(be, gx, d, gg, gbeta, grm, grv, 1, 0.1f, 1e-5f, gy,
                                           gsm, gsi));
    GPU_CLOSE(be, gy, y, n, TOL, "%s train y", shape);
    GPU_CLOSE(be, gsm, sm, c, TOL, "%s save_mean", shape);
    GPU_CLOSE(be, gsi, si, c, TOL, "%s save_invstd", shape);
    GPU_CLOSE(be, grm, rm, c, TOL, "%s running_mean", shape);
    GPU_CLOSE(be, grv, rv, c, TOL, "%s running_var", shape);

    /* y == x: a copy of x normalised in place, from the same running stats
     * as the first call started from */
    {
        float *gxy = dev_floats(be, x, n);
        GPU_OK(be->ops->batchnorm_relu_forward(be, gxy, d, gg, gbeta, grm2, grv2, 1, 0.1f, 1e-5f,
                                               gxy, gsm2, gsi2));
        GPU_CLOSE(be, gxy, y, n, TOL, "%s train y in place", shape);
        GPU_CLOSE(be, grm2, rm, c, TOL, "%s running_mean in place", shape);
        be->ops->release(be, gxy);
    }

    /* backward, overwrite then accumulate; dy must come back unchanged */
    GPU_OK(be->ops->upload(be, gy, y, n * sizeof(float)));
    float *gdy = dev_floats(be, dy, n);
    for (int acc = 0; acc <= 1; acc++) {
        fill_normal(&rng, dx, n, 0.0, 1.0);
        fill_normal(&rng, dg, c, 0.0, 1.0);
        fill_normal(&rng, dbeta, c, 0.0, 1.0);
        float *gdx = dev_floats(be, dx, n), *gdg = dev_floats(be, dg, c);
        float *gdb = dev_floats(be, dbeta, c);
        pnx_ref_relu_backward(y, dy, dz, n);
        pnx_ref_batchnorm_backward(x, d, gamma, sm, si, dz, dx, acc, dg, dbeta);
        GPU_OK(be->ops->batchnorm_relu_backward(be, gx, gy, d, gg, gsm, gsi, gdy, gdx, acc, gdg,
                                                gdb));
        GPU_CLOSE(be, gdx, dx, n, TOL, "%s dx (accumulate %d)", shape, acc);
        GPU_CLOSE(be, gdg, dg, c, TOL, "%s dgamma", shape);
        GPU_CLOSE(be, gdb, dbeta, c, TOL, "%s dbeta", shape);
        be->ops->release(be, gdx);
        be->ops->release(be, gdg);
        be->ops->release(be, gdb);
    }
    GPU_CLOSE(be, gdy, dy, n, 0.0, "%s dy untouched", shape);
    be->ops->release(be, gdy);

    /* eval forward, in place, with the running statistics */
    GPU_CHECK(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, 0, 0.1f, 1e-5f, y, NULL,
                                        NULL) == 0, "reference batch norm eval");
    pnx_ref_relu_forward(y, y, n);
    GPU_OK(be->ops->batchnorm_relu_forward(be, gx, d, gg, gbeta, grm, grv, 0, 0.1f, 1e-5f, gx,
                                           NULL, NULL));
    GPU_CLOSE(be, gx, y, n, TOL, "%s eval y in place", shape);

    float *ptrs[] = {gx, gy, gg, gbeta, grm, grv, gsm, gsi, grm2, grv2, gsm2, gsi2};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
        be->ops->release(be, ptrs[i]);
    free(x), free(y), free(gamma), free(beta), free(rm), free(rv), free(sm), free(si);
    free(dy), free(dz), free(dx), free(dg), free(dbeta);
}

/* act_upload / act_download (float32 NCHW: plain copies) and upload give
 * back every bit. Two uploads in a row from one host buffer, rewritten in
 * between, check that an upload is done with its source when it returns;
 * a tensor past the staging buffers' size goes up in chunks. */
static void check_act_transfer(pnx_backend *be, pnx_dims d)
{
    if (!be->ops->act_upload || !be->ops->act_download) {
        GPU_CHECK(0, "backend %s has no activation transfers", be->ops->name);
        return;
    }
    const size_t n = pnx_dims_count(d);
    float *h = host_floats(n), *first = host_floats(n), *got = host_floats(n);
    fill_normal(&rng, h, n, 0.0, 1.0);
    memcpy(first, h, n * sizeof *h);
    float *ga = dev_act(be, h, d);
    for (size_t i = 0; i < n; i++)
        h[i] = -2.0f * h[i] + 1.0f;
    float *gb = dev_act(be, NULL, d);
    GPU_OK(be->ops->act_upload(be, gb, h, d));
    memset(h, 0xff, n * sizeof *h); /* NaNs, should a copy still read it */
    act_read(be, got, ga, d);
    GPU_CHECK(memcmp(got, first, n * sizeof *got) == 0,
              "act round trip (%d,%d,%d,%d): first tensor differs", d.n, d.c, d.h, d.w);
    for (size_t i = 0; i < n; i++)
        first[i] = -2.0f * first[i] + 1.0f;
    act_read(be, got, gb, d);
    GPU_CHECK(memcmp(got, first, n * sizeof *got) == 0,
              "act round trip (%d,%d,%d,%d): second tensor differs", d.n, d.c, d.h, d.w);
    if (be->act_size == sizeof(float)) {
        /* float32 NCHW: the plain download sees the same bytes */
        dev_read(be, got, gb, n);
        GPU_CHECK(memcmp(got, first, n * sizeof *got) == 0,
                  "act_upload then download (%d,%d,%d,%d) differ", d.n, d.c, d.h, d.w);
    }
    be->ops->release(be, ga);
    be->ops->release(be, gb);
    free(h), free(first), free(got);
}

/* Many small uploads in a row, each from a host buffer rewritten at once,
 * then one kernel reading them all: the staging buffers' reuse is ordered. */
static void check_upload_burst(pnx_backend *be)
{
    enum { PIECES = 40, LEN = 1000 };
    float *h = host_floats(LEN), *want = host_floats((size_t)PIECES * LEN);
    float *g = dev_floats(be, NULL, (size_t)PIECES * LEN);
    for (int k = 0; k < PIECES; k++) {
        for (size_t i = 0; i < LEN; i++)
            h[i] = want[(size_t)k * LEN + i] = (float)(k * LEN + (int)i) - 20000.0f;
        GPU_OK(be->ops->upload(be, g + (size_t)k * LEN, h, LEN * sizeof(float)));
    }
    GPU_OK(be->ops->relu_forward(be, g, g, (size_t)PIECES * LEN));
    pnx_ref_relu_forward(want, want, (size_t)PIECES * LEN);
    GPU_CLOSE(be, g, want, (size_t)PIECES * LEN, 0.0, "burst of small uploads");
    be->ops->release(be, g);
    free(h), free(want);
}

static void check_mem_info(pnx_backend *be)
{
    if (!be->ops->mem_info)
        return;
    size_t free_b = 0, total_b = 0;
    GPU_OK(be->ops->mem_info(be, &free_b, &total_b));
    GPU_CHECK(total_b > 0 && free_b <= total_b, "mem_info: %zu free of %zu", free_b, total_b);
    /* 256 MiB held must show (other processes may move it a little) */
    void *p = NULL;
    size_t free_after = 0;
    GPU_OK(be->ops->alloc(be, (size_t)256 << 20, &p));
    GPU_OK(be->ops->mem_info(be, &free_after, &total_b));
    GPU_CHECK(free_after + ((size_t)128 << 20) <= free_b,
              "mem_info: free %zu before and %zu after allocating 256 MiB", free_b, free_after);
    be->ops->release(be, p);
}

static void check_relu(pnx_backend *be, size_t n)
{
    float *x = host_floats(n), *y = host_floats(n), *dy = host_floats(n), *dx = host_floats(n);
    fill_normal(&rng, x, n, 0.0, 1.0);
    fill_normal(&rng, dy, n, 0.0, 1.0);
    x[0] = 0.0f; /* the boundary: ReLU'(0) = 0 */
    pnx_ref_relu_forward(x, y, n);
    pnx_ref_relu_backward(y, dy, dx, n);
    float *gx = dev_floats(be, x, n), *gdy = dev_floats(be, dy, n);
    GPU_OK(be->ops->relu_forward(be, gx, gx, n)); /* in place */
    GPU_CLOSE(be, gx, y, n, 0.0, "relu forward %zu", n);
    GPU_OK(be->ops->relu_backward(be, gx, gdy, gdy, n)); /* in place */
    GPU_CLOSE(be, gdy, dx, n, 0.0, "relu backward %zu", n);
    be->ops->release(be, gx);
    be->ops->release(be, gdy);
    free(x), free(y), free(dy), free(dx);
}

static void check_maxpool(pnx_backend *be, pnx_dims xd)
{
    const size_t nx = pnx_dims_count(xd), ny = nx / 4;
    float *x = host_floats(nx), *y = host_floats(ny), *dy = host_floats(ny);
    float *dx = host_floats(nx);
    uint8_t *am = calloc(ny, 1), *gam_host = calloc(ny, 1);
    /* few distinct values, so ties are common and the first must win */
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)pnx_rng_below(&rng, 4);
    fill_normal(&rng, dy, ny, 0.0, 1.0);
    pnx_ref_maxpool2x2_forward(x, xd, y, am);
    float *gx = dev_floats(be, x, nx), *gy = dev_floats(be, NULL, ny);
    void *gam = NULL;
    GPU_OK(be->ops->alloc(be, ny, &gam));
    GPU_OK(be->ops->maxpool2x2_forward(be, gx, xd, gy, gam));
    GPU_CLOSE(be, gy, y, ny, 0.0, "maxpool forward (%d,%d,%d,%d)", xd.n, xd.c, xd.h, xd.w);
    GPU_OK(be->ops->download(be, gam_host, gam, ny));
    GPU_CHECK(memcmp(am, gam_host, ny) == 0, "maxpool argmax differs (ties go to the first)");
    float *gdy = dev_floats(be, dy, ny);
    for (int acc = 0; acc <= 1; acc++) {
        fill_normal(&rng, dx, nx, 0.0, 1.0);
        float *gdx = dev_floats(be, dx, nx);
        pnx_ref_maxpool2x2_backward(xd, am, dy, dx, acc);
        GPU_OK(be->ops->maxpool2x2_backward(be, xd, gam, gdy, gdx, acc));
        GPU_CLOSE(be, gdx, dx, nx, 0.0, "maxpool backward (accumulate %d)", acc);
        be->ops->release(be, gdx);
    }
    be->ops->release(be, gx);
    be->ops->release(be, gy);
    be->ops->release(be, gam);
    be->ops->release(be, gdy);
    free(x), free(y), free(dy), free(dx), free(am), free(gam_host);
}

static void check_concat(pnx_backend *be, int n, int ca, int cb, size_t hw)
{
    const size_t na = (size_t)n * ca * hw, nb = (size_t)n * cb * hw, ny = na + nb;
    float *a = host_floats(na), *b = host_floats(nb), *y = host_floats(ny);
    fill_normal(&rng, a, na, 0.0, 1.0);
    fill_normal(&rng, b, nb, 0.0, 1.0);
    pnx_ref_concat_channels(a, ca, b, cb, n, hw, y);
    float *ga = dev_floats(be, a, na), *gb = dev_floats(be, b, nb), *gy = dev_floats(be, NULL, ny);
    GPU_OK(be->ops->concat_channels(be, ga, ca, gb, cb, n, hw, gy));
    GPU_CLOSE(be, gy, y, ny, 0.0, "concat %d+%d", ca, cb);
    for (int acc = 0; acc <= 1; acc++) {
        fill_normal(&rng, a, na, 0.0, 1.0);
        fill_normal(&rng, b, nb, 0.0, 1.0);
        GPU_OK(be->ops->upload(be, ga, a, na * sizeof(float)));
        GPU_OK(be->ops->upload(be, gb, b, nb * sizeof(float)));
        pnx_ref_split_channels(y, ca, cb, n, hw, a, acc, b, !acc);
        GPU_OK(be->ops->split_channels(be, gy, ca, cb, n, hw, ga, acc, gb, !acc));
        GPU_CLOSE(be, ga, a, na, 1e-7, "split a (accumulate %d)", acc);
        GPU_CLOSE(be, gb, b, nb, 1e-7, "split b (accumulate %d)", !acc);
    }
    be->ops->release(be, ga);
    be->ops->release(be, gb);
    be->ops->release(be, gy);
    free(a), free(b), free(y);
}

static void check_loss(pnx_backend *be, size_t count, double positive_fraction)
{
    float *logits = host_floats(count), *target = host_floats(count), *dl = host_floats(count);
    fill_normal(&rng, logits, count, -1.0, 3.0);
    for (size_t i = 0; i < count; i++)
        target[i] = pnx_rng_uniform(&rng) < positive_fraction ? 1.0f : 0.0f;
    pnx_loss want, got;
    pnx_ref_seg_loss(logits, target, count, 0.7f, 0.3f, &want, dl);
    float *gl = dev_floats(be, logits, count), *gt = dev_floats(be, target, count);
    float *gd = dev_floats(be, NULL, count);
    GPU_OK(be->ops->seg_loss(be, gl, gt, count, 0.7f, 0.3f, &got, gd));
    GPU_CHECK(fabs(got.total - want.total) <= 1e-9 * (1 + fabs(want.total)) &&
                  fabs(got.bce - want.bce) <= 1e-9 * (1 + fabs(want.bce)) &&
                  fabs(got.dice - want.dice) <= 1e-9 * (1 + fabs(want.dice)),
              "loss %zu: got %.12g/%.12g/%.12g want %.12g/%.12g/%.12g", count, got.total, got.bce,
              got.dice, want.total, want.bce, want.dice);
    GPU_CLOSE(be, gd, dl, count, TOL, "loss gradient %zu", count);
    pnx_loss only;
    GPU_OK(be->ops->seg_loss(be, gl, gt, count, 1.0f, 1.0f, &only, NULL));
    be->ops->release(be, gl);
    be->ops->release(be, gt);
    be->ops->release(be, gd);
    free(logits), free(target), free(dl);
}

static void check_adam(pnx_backend *be, size_t n, double weight_decay)
{
    float *p = host_floats(n), *g = host_floats(n), *m = host_floats(n), *v = host_floats(n);
    fill_normal(&rng, p, n, 0.0, 0.1);
    pnx_adam_hparams h = PNX_ADAM_DEFAULTS;
    h.weight_decay = weight_decay;
    float *gp = dev_floats(be, p, n), *gg = dev_floats(be, NULL, n);
    float *gm = dev_floats(be, NULL, n), *gv = dev_floats(be, NULL, n);
    for (int64_t step = 1; step <= 5; step++) {
        /* gradients well away from zero: near zero, Adam's m/√v is a sign */
        for (size_t i = 0; i < n; i++)
            g[i] = (float)((pnx_rng_uniform(&rng) < 0.5 ? -1 : 1) *
                           (0.1 + pnx_rng_uniform(&rng)));
        GPU_OK(be->ops->upload(be, gg, g, n * sizeof(float)));
        pnx_ref_adam_update(p, g, m, v, n, &h, step);
        GPU_OK(be->ops->adam_update(be, gp, gg, gm, gv, n, &h, step));
    }
    GPU_CLOSE(be, gp, p, n, TOL, "adam param (wd %g)", weight_decay);
    GPU_CLOSE(be, gm, m, n, TOL, "adam m");
    GPU_CLOSE(be, gv, v, n, TOL, "adam v");
    be->ops->release(be, gp);
    be->ops->release(be, gg);
    be->ops->release(be, gm);
    be->ops->release(be, gv);
    free(p), free(g), free(m), free(v);
}

static void check_errors(void)
{
    pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
    opt.device = 1000;
    pnx_backend *be = NULL;
    int rc = pnx_backend_cuda_create(&be, &opt);
    GPU_CHECK(rc == PNX_EDEVICE && be == NULL, "device 1000 accepted (rc %d)", rc);
    GPU_CHECK(strstr(pnx_errmsg(), "device 1000") != NULL, "message: %s", pnx_errmsg());
}

int main(void)
{
    gpu_test_begin();
    int skip = gpu_test_skip_reason("test_gpu_ops");
    if (skip)
        return skip;
    pnx_rng_seed(&rng, 6, 0);
    for (int deterministic = 0; deterministic <= 1; deterministic++) {
        pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
        opt.deterministic = deterministic;
        pnx_backend *be = NULL;
        int rc = gpu_test_backend(&be, &opt);
        if (rc) {
            fprintf(stderr, "FAIL: CUDA backend: %s\n", pnx_errmsg());
            return 1;
        }
        char desc[512];
        pnx_backend_cuda_describe(be, desc, sizeof desc);
        printf("test_gpu_ops: %s\n", desc);

        check_conv(be, CONV3, (pnx_dims){2, 3, 8, 8}, 5);
        check_conv(be, CONV3, (pnx_dims){1, 16, 17, 9}, 8);
        check_conv(be, CONV3, (pnx_dims){3, 1, 32, 32}, 4);
        check_conv(be, CONV3, (pnx_dims){2, 64, 16, 16}, 64);
        check_conv(be, CONV3, (pnx_dims){2, 32, 4, 4}, 48);
        check_conv(be, CONV1, (pnx_dims){2, 8, 8, 8}, 1);
        check_conv(be, CONV1, (pnx_dims){2, 5, 7, 3}, 6);
        check_conv(be, UPCONV, (pnx_dims){2, 8, 4, 4}, 8);
        check_conv(be, UPCONV, (pnx_dims){1, 3, 5, 7}, 2);
        check_conv(be, UPCONV, (pnx_dims){2, 64, 8, 8}, 64);
        if (!deterministic) {
            /* a layer of the seed's width at a size that picks tiled algorithms */
            check_conv(be, CONV3, (pnx_dims){2, 64, 48, 48}, 64);
            check_batchnorm(be, (pnx_dims){4, 64, 32, 32}, 0.0, 1.0);
        }
        check_batchnorm(be, (pnx_dims){4, 8, 16, 16}, 0.0, 1.0);
        check_batchnorm(be, (pnx_dims){2, 3, 5, 7}, 0.5, 2.0);
        check_batchnorm(be, (pnx_dims){3, 5, 9, 11}, 100.0, 0.01); /* mean ≫ spread */
        check_batchnorm(be, (pnx_dims){2, 16, 1, 1}, 0.0, 1.0);    /* the U-Net's bottom at 16² */
        check_batchnorm_relu(be, (pnx_dims){4, 8, 16, 16}, 0.0, 1.0);  /* float4 rows */
        check_batchnorm_relu(be, (pnx_dims){2, 3, 5, 7}, 0.5, 2.0);    /* odd rows, scalar */
        check_batchnorm_relu(be, (pnx_dims){3, 5, 9, 11}, 100.0, 0.01);
        check_batchnorm_relu(be, (pnx_dims){2, 16, 1, 1}, 0.0, 1.0);
        if (!deterministic)
            check_batchnorm_relu(be, (pnx_dims){4, 64, 32, 32}, 0.3, 1.0);
        check_act_transfer(be, (pnx_dims){1, 1, 1, 1});
        check_act_transfer(be, (pnx_dims){2, 3, 5, 7});
        if (!deterministic) /* 36.9 MB: two chunks of the 32 MiB staging */
            check_act_transfer(be, (pnx_dims){3, 1, 2048, 1500});
        check_upload_burst(be);
        check_mem_info(be);
        check_relu(be, 1);
        check_relu(be, 1000003); /* not a multiple of 4: one float per thread */
        check_relu(be, 1 << 20); /* 16-byte vectors */
        check_maxpool(be, (pnx_dims){2, 3, 8, 8});
        check_maxpool(be, (pnx_dims){1, 5, 34, 18});
        check_concat(be, 2, 3, 5, 17);
        check_concat(be, 3, 64, 64, 256);
        check_loss(be, 1, 0.5);
        check_loss(be, 4096, 0.1);
        check_loss(be, 3 * 256 * 256, 0.02);
        check_loss(be, 1000, 0.0); /* empty truth: Dice of the prediction alone */
        check_adam(be, 1000, 0.0);
        check_adam(be, 777777, 1e-4);
        pnx_backend_destroy(be);
    }
    if (!gpu_test_standin())
        check_errors();
    return gpu_test_finish("test_gpu_ops");
}
