/*
 * tests/test_model_ops.c — every backend op: the reference against finite
 * differences (gradients) and hand-computed values (PyTorch semantics), and
 * the CPU backend against the reference, including the tiled im2col path.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/backend.h"
#include "model/cpu/cpu_backend.h"
#include "model/ops_ref.h"

#include "test_model_support.h"

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- convolutions --------------------------------------------------------------- */

typedef void (*conv_fwd_fn)(const float *, pnx_dims, const float *, const float *, int, float *);
typedef int (*conv_fwd_be)(pnx_backend *, const float *, pnx_dims, const float *, const float *,
                           int, float *);
typedef int (*conv_bwd_be)(pnx_backend *, const float *, pnx_dims, const float *, int,
                           const float *, float *, int, float *, float *);
typedef void (*conv_bwd_fn)(const float *, pnx_dims, const float *, int, const float *, float *,
                            int, float *, float *);

typedef struct conv_case {
    conv_fwd_fn ref_fwd;
    conv_bwd_fn ref_bwd;
    size_t w_per_io; /* weight elements per (cin, cout) pair */
    int out_scale;   /* output side = input side × out_scale */
} conv_case;

static const conv_case CONV3 = {pnx_ref_conv3x3_forward, pnx_ref_conv3x3_backward, 9, 1};
static const conv_case CONV1 = {pnx_ref_conv1x1_forward, pnx_ref_conv1x1_backward, 1, 1};
static const conv_case UPCONV = {pnx_ref_upconv2x2_forward, pnx_ref_upconv2x2_backward, 4, 2};

/* The reference's gradients equal finite differences of L = Σ y·r. */
static void check_conv_gradients(const conv_case *cc, pnx_dims xd, int cout)
{
    const size_t nx = pnx_dims_count(xd), nw = (size_t)xd.c * cout * cc->w_per_io;
    const size_t ny = (size_t)xd.n * cout * xd.h * cc->out_scale * xd.w * cc->out_scale;
    float *x = random_buffer(nx, 1), *w = random_buffer(nw, 1), *b = random_buffer(cout, 1);
    float *r = random_buffer(ny, 1), *y = calloc(ny, sizeof *y);
    float *dx = calloc(nx, sizeof *dx), *dw = calloc(nw, sizeof *dw), *db = calloc(cout, 4);
    assert_true(y && dx && dw && db);
    cc->ref_bwd(x, xd, w, cout, r, dx, 0, dw, db);
    const float h = 1e-2f;
    float *targets[3] = {x, w, b};
    float *grads[3] = {dx, dw, db};
    size_t counts[3] = {nx, nw, (size_t)cout};
    for (int t = 0; t < 3; t++) {
        for (int k = 0; k < 6; k++) {
            size_t i = pnx_rng_below(&rng, counts[t]);
            float saved = targets[t][i];
            targets[t][i] = saved + h;
            cc->ref_fwd(x, xd, w, b, cout, y);
            double up = dot(y, r, ny);
            targets[t][i] = saved - h;
            cc->ref_fwd(x, xd, w, b, cout, y);
            double down = dot(y, r, ny);
            targets[t][i] = saved;
            double fd = (up - down) / (2.0 * h);
            assert_true(fabs(fd - grads[t][i]) <= 1e-3 * (1.0 + fabs(fd)));
        }
    }
    free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db);
}

/* The CPU backend equals the reference, forward and backward, with and
 * without accumulation. */
static void check_conv_cpu(pnx_backend *be, const conv_case *cc, conv_fwd_be fwd, conv_bwd_be bwd,
                           pnx_dims xd, int cout)
{
    const size_t nx = pnx_dims_count(xd), nw = (size_t)xd.c * cout * cc->w_per_io;
    const size_t ny = (size_t)xd.n * cout * xd.h * cc->out_scale * xd.w * cc->out_scale;
    float *x = random_buffer(nx, 1), *w = random_buffer(nw, 0.3f), *b = random_buffer(cout, 1);
    float *dy = random_buffer(ny, 1);
    float *y_ref = calloc(ny, 4), *y_cpu = calloc(ny, 4);
    assert_true(y_ref && y_cpu);
    cc->ref_fwd(x, xd, w, b, cout, y_ref);
    assert_int_equal(fwd(be, x, xd, w, b, cout, y_cpu), 0);
    ASSERT_CLOSE(y_cpu, y_ref, ny, 1e-5);

    for (int acc = 0; acc <= 1; acc++) {
        float *dx_ref = random_buffer(nx, 1), *dx_cpu = copy_buffer(dx_ref, nx);
        float *dw_ref = random_buffer(nw, 1), *dw_cpu = copy_buffer(dw_ref, nw);
        float *db_ref = random_buffer(cout, 1), *db_cpu = copy_buffer(db_ref, cout);
        cc->ref_bwd(x, xd, w, cout, dy, dx_ref, acc, dw_ref, db_ref);
        assert_int_equal(bwd(be, x, xd, w, cout, dy, dx_cpu, acc, dw_cpu, db_cpu), 0);
        ASSERT_CLOSE(dx_cpu, dx_ref, nx, 1e-5);
        ASSERT_CLOSE(dw_cpu, dw_ref, nw, 1e-5);
        ASSERT_CLOSE(db_cpu, db_ref, cout, 1e-5);
        free(dx_ref), free(dx_cpu), free(dw_ref), free(dw_cpu), free(db_ref), free(db_cpu);
    }
    free(x), free(w), free(b), free(dy), free(y_ref), free(y_cpu);
}

static void test_conv3x3(void **state)
{
    pnx_backend *be = *state;
    check_conv_gradients(&CONV3, (pnx_dims){2, 3, 5, 4}, 4);
    check_conv_cpu(be, &CONV3, be->ops->conv3x3_forward, be->ops->conv3x3_backward,
                   (pnx_dims){2, 3, 6, 7}, 5);
    check_conv_cpu(be, &CONV3, be->ops->conv3x3_forward, be->ops->conv3x3_backward,
                   (pnx_dims){1, 16, 8, 8}, 32);
    /* One output row per tile: the tiling must not change the result. */
    size_t saved = pnx_cpu_col_budget;
    pnx_cpu_col_budget = 1;
    check_conv_cpu(be, &CONV3, be->ops->conv3x3_forward, be->ops->conv3x3_backward,
                   (pnx_dims){2, 4, 9, 6}, 3);
    pnx_cpu_col_budget = 3 * 4 * 9 * 6; /* three rows: a short last tile */
    check_conv_cpu(be, &CONV3, be->ops->conv3x3_forward, be->ops->conv3x3_backward,
                   (pnx_dims){2, 4, 10, 6}, 3);
    pnx_cpu_col_budget = saved;
}

static void test_conv1x1(void **state)
{
    pnx_backend *be = *state;
    check_conv_gradients(&CONV1, (pnx_dims){2, 3, 4, 5}, 2);
    check_conv_cpu(be, &CONV1, be->ops->conv1x1_forward, be->ops->conv1x1_backward,
                   (pnx_dims){3, 8, 4, 6}, 1);
}

static void test_upconv2x2(void **state)
{
    pnx_backend *be = *state;
    check_conv_gradients(&UPCONV, (pnx_dims){2, 3, 3, 2}, 4);
    check_conv_cpu(be, &UPCONV, be->ops->upconv2x2_forward, be->ops->upconv2x2_backward,
                   (pnx_dims){2, 6, 4, 5}, 6);
    size_t saved = pnx_cpu_col_budget;
    pnx_cpu_col_budget = 1;
    check_conv_cpu(be, &UPCONV, be->ops->upconv2x2_forward, be->ops->upconv2x2_backward,
                   (pnx_dims){2, 3, 5, 4}, 2);
    pnx_cpu_col_budget = saved;
}

/* A transposed conv with a one-hot kernel places each input pixel in its 2×2
 * block: ConvTranspose2d's (Cin, Cout, kH, kW) layout. */
static void test_upconv_layout(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4}; /* (1,1,2,2) */
    float w[4] = {0, 1, 0, 0}; /* ky 0, kx 1 */
    float y[16];
    pnx_ref_upconv2x2_forward(x, (pnx_dims){1, 1, 2, 2}, w, NULL, 1, y);
    const float expected[16] = {0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0};
    assert_memory_equal(y, expected, sizeof y);
}

/* ---- batch norm ---------------------------------------------------------------- */

static void test_batchnorm(void **state)
{
    pnx_backend *be = *state;
    const pnx_dims d = {3, 4, 5, 3};
    const size_t n = pnx_dims_count(d);
    float *x = random_buffer(n, 2), *gamma = random_buffer(4, 1), *beta = random_buffer(4, 1);
    for (size_t i = 0; i < n; i++)
        x[i] += (float)(i % 4); /* channel means differ from 0 */
    float rm[4] = {0.5f, 0, 0, 0}, rv[4] = {1, 1, 2, 1}, sm[4], si[4];
    float *y = calloc(n, 4);
    assert_int_equal(pnx_ref_batchnorm_forward(x, d, gamma, beta, rm, rv, 1, 0.1f, 1e-5f, y, sm,
                                               si), 0);
    /* Channel 0 by hand: biased variance to normalise, unbiased to track. */
    const size_t P = 15, M = 45;
    double mean = 0, ss = 0;
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < P; p++)
            mean += x[(size_t)k * 4 * P + p];
    mean /= M;
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < P; p++)
            ss += pow(x[(size_t)k * 4 * P + p] - mean, 2);
    assert_true(fabs(rm[0] - (0.9 * 0.5 + 0.1 * mean)) < 1e-6);
    assert_true(fabs(rv[0] - (0.9 * 1 + 0.1 * ss / (M - 1))) < 1e-5);
    double y0 = (x[0] - mean) / sqrt(ss / M + 1e-5) * gamma[0] + beta[0];
    assert_true(fabs(y[0] - y0) < 1e-5);

    /* Finite differences of L = Σ y·r through the training forward. */
    float *r = random_buffer(n, 1), *dx = calloc(n, 4);
    float dgamma[4] = {0}, dbeta[4] = {0};
    pnx_ref_batchnorm_backward(x, d, gamma, sm, si, r, dx, 0, dgamma, dbeta);
    float rm2[4], rv2[4], sm2[4], si2[4];
    const float h = 1e-2f;
    float *targets[3] = {x, gamma, beta};
    float *grads[3] = {dx, dgamma, dbeta};
    size_t counts[3] = {n, 4, 4};
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 6; k++) {
            size_t i = pnx_rng_below(&rng, counts[t]);
            float saved = targets[t][i];
            double l[2];
            for (int s = 0; s < 2; s++) {
                targets[t][i] = saved + (s ? -h : h);
                memcpy(rm2, rm, sizeof rm);
                memcpy(rv2, rv, sizeof rv);
                pnx_ref_batchnorm_forward(x, d, gamma, beta, rm2, rv2, 1, 0.1f, 1e-5f, y, sm2, si2);
                l[s] = dot(y, r, n);
            }
            targets[t][i] = saved;
            double fd = (l[0] - l[1]) / (2.0 * h);
            assert_true(fabs(fd - grads[t][i]) <= 2e-3 * (1.0 + fabs(fd)));
        }

    /* Eval mode uses the running stats and leaves them alone. */
    float rm_e[4] = {1, 2, 3, 4}, rv_e[4] = {4, 1, 0.25f, 9};
    pnx_ref_batchnorm_forward(x, d, gamma, beta, rm_e, rv_e, 0, 0.1f, 1e-5f, y, NULL, NULL);
    assert_true(fabs(y[0] - ((x[0] - 1.0) / sqrt(4 + 1e-5) * gamma[0] + beta[0])) < 1e-5);
    assert_true(rm_e[0] == 1.0f && rv_e[3] == 9.0f);

    /* The CPU backend, threaded over channels, equals the reference. */
    float rm_c[4] = {0}, rv_c[4] = {1, 1, 1, 1}, rm_r[4] = {0}, rv_r[4] = {1, 1, 1, 1};
    float *y_c = calloc(n, 4), *y_r = calloc(n, 4), sm_c[4], si_c[4], sm_r[4], si_r[4];
    assert_int_equal(be->ops->batchnorm_forward(be, x, d, gamma, beta, rm_c, rv_c, 1, 0.1f, 1e-5f,
                                                y_c, sm_c, si_c), 0);
    pnx_ref_batchnorm_forward(x, d, gamma, beta, rm_r, rv_r, 1, 0.1f, 1e-5f, y_r, sm_r, si_r);
    ASSERT_CLOSE(y_c, y_r, n, 1e-6);
    ASSERT_CLOSE(rv_c, rv_r, 4, 1e-6);
    float *dx_c = calloc(n, 4), dg_c[4] = {0}, db_c[4] = {0};
    float *dx_r = calloc(n, 4), dg_r[4] = {0}, db_r[4] = {0};
    assert_int_equal(be->ops->batchnorm_backward(be, x, d, gamma, sm_c, si_c, r, dx_c, 0, dg_c,
                                                 db_c), 0);
    pnx_ref_batchnorm_backward(x, d, gamma, sm_r, si_r, r, dx_r, 0, dg_r, db_r);
    ASSERT_CLOSE(dx_c, dx_r, n, 1e-6);
    ASSERT_CLOSE(dg_c, dg_r, 4, 1e-6);

    /* One value per channel cannot be normalised in training (PyTorch
     * raises the same error). */
    float one = 1, out1, m1, s1, r1 = 0, v1 = 1, g1 = 1, b1 = 0;
    assert_int_equal(pnx_ref_batchnorm_forward(&one, (pnx_dims){1, 1, 1, 1}, &g1, &b1, &r1, &v1, 1,
                                               0.1f, 1e-5f, &out1, &m1, &s1), PNX_EINVAL);
    free(x), free(gamma), free(beta), free(y), free(r), free(dx);
    free(y_c), free(y_r), free(dx_c), free(dx_r);
}

/* ---- element-wise, pooling, concatenation --------------------------------------- */

static void test_relu_and_pool(void **state)
{
    pnx_backend *be = *state;
    float x[8] = {-1, 2, 0, -0.5f, 3, -3, 0.25f, 0};
    float y[8], dx[8], dy[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(be->ops->relu_forward(be, x, y, 8), 0);
    const float ey[8] = {0, 2, 0, 0, 3, 0, 0.25f, 0};
    assert_memory_equal(y, ey, sizeof y);
    assert_int_equal(be->ops->relu_backward(be, y, dy, dx, 8), 0);
    const float edx[8] = {0, 1, 0, 0, 1, 0, 1, 0};
    assert_memory_equal(dx, edx, sizeof dx);

    /* (1,1,2,4): window 0 has a tie (first wins), window 1 max at (1,1). */
    float p[8] = {5, 1, 0, 0, 5, 2, 0, 7};
    float py[2];
    uint8_t idx[2];
    pnx_ref_maxpool2x2_forward(p, (pnx_dims){1, 1, 2, 4}, py, idx);
    assert_true(py[0] == 5 && idx[0] == 0);
    assert_true(py[1] == 7 && idx[1] == 3);
    /* All zeros (after ReLU): the gradient goes to the first element. */
    float z[4] = {0, 0, 0, 0}, zy;
    uint8_t zi;
    pnx_ref_maxpool2x2_forward(z, (pnx_dims){1, 1, 2, 2}, &zy, &zi);
    assert_int_equal(zi, 0);

    float pdy[2] = {10, 20}, pdx[8];
    for (int i = 0; i < 8; i++)
        pdx[i] = 1;
    pnx_ref_maxpool2x2_backward((pnx_dims){1, 1, 2, 4}, idx, pdy, pdx, 1);
    const float epdx[8] = {11, 1, 1, 1, 1, 1, 1, 21};
    assert_memory_equal(pdx, epdx, sizeof pdx);
    pnx_ref_maxpool2x2_backward((pnx_dims){1, 1, 2, 4}, idx, pdy, pdx, 0);
    const float epdx0[8] = {10, 0, 0, 0, 0, 0, 0, 20};
    assert_memory_equal(pdx, epdx0, sizeof pdx);
}

static void test_concat_split(void **state)
{
    pnx_backend *be = *state;
    /* a (2,1,2), b (2,2,2) → (2,3,2) */
    float a[4] = {1, 2, 3, 4}, b[8] = {5, 6, 7, 8, 9, 10, 11, 12}, y[12];
    assert_int_equal(be->ops->concat_channels(be, a, 1, b, 2, 2, 2, y), 0);
    const float ey[12] = {1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12};
    assert_memory_equal(y, ey, sizeof y);
    float da[4] = {1, 1, 1, 1}, db[8];
    assert_int_equal(be->ops->split_channels(be, y, 1, 2, 2, 2, da, 1, db, 0), 0);
    const float eda[4] = {2, 3, 4, 5};
    assert_memory_equal(da, eda, sizeof da);
    assert_memory_equal(db, b, sizeof db);
}

/* ---- loss and Adam ---------------------------------------------------------------- */

static void test_seg_loss(void **state)
{
    (void)state;
    /* Logits 0 everywhere: BCE = log 2, σ = 1/2; with 2 of 4 targets set,
     * dice = (2·1 + 1) / (2 + 2 + 1) = 0.6. */
    float logits[4] = {0, 0, 0, 0}, target[4] = {1, 0, 1, 0};
    pnx_loss l;
    pnx_ref_seg_loss(logits, target, 4, 1.0f, 1.0f, &l, NULL);
    assert_true(fabs(l.bce - log(2.0)) < 1e-12);
    assert_true(fabs(l.dice - 0.4) < 1e-12);
    assert_true(fabs(l.total - (log(2.0) + 0.4)) < 1e-12);

    const size_t n = 50;
    float *x = random_buffer(n, 4), *t = calloc(n, 4), *g = calloc(n, 4);
    for (size_t i = 0; i < n; i++)
        t[i] = (float)(pnx_rng_below(&rng, 3) == 0);
    pnx_ref_seg_loss(x, t, n, 0.7f, 1.3f, &l, g);
    for (int k = 0; k < 10; k++) {
        size_t i = pnx_rng_below(&rng, n);
        float saved = x[i];
        const double h = 1e-3;
        pnx_loss up, down;
        x[i] = (float)(saved + h);
        pnx_ref_seg_loss(x, t, n, 0.7f, 1.3f, &up, NULL);
        x[i] = (float)(saved - h);
        pnx_ref_seg_loss(x, t, n, 0.7f, 1.3f, &down, NULL);
        x[i] = saved;
        double fd = (up.total - down.total) / ((double)(float)(saved + h) - (float)(saved - h));
        assert_true(fabs(fd - g[i]) <= 1e-3 * (fabs(fd) + 1e-3));
    }
    /* Large logits must not overflow. */
    float big[2] = {1000, -1000}, bt[2] = {1, 0};
    pnx_ref_seg_loss(big, bt, 2, 1, 1, &l, g);
    assert_true(isfinite(l.total) && l.bce < 1e-12);
    free(x), free(t), free(g);
}

static void test_adam(void **state)
{
    pnx_backend *be = *state;
    pnx_adam_hparams h = {1e-2, 0.9, 0.999, 1e-8, 0.1};
    float p = 1.0f, m = 0, v = 0;
    double pd = 1.0, md = 0, vd = 0;
    const float grads[3] = {0.5f, -0.25f, 2.0f};
    for (int step = 1; step <= 3; step++) {
        float g = grads[step - 1];
        pnx_ref_adam_update(&p, &g, &m, &v, 1, &h, step);
        double gd = g + 0.1 * pd;
        md = 0.9 * md + 0.1 * gd;
        vd = 0.999 * vd + 0.001 * gd * gd;
        double mhat = md / (1 - pow(0.9, step)), vhat = vd / (1 - pow(0.999, step));
        pd -= 1e-2 * mhat / (sqrt(vhat) + 1e-8);
        assert_true(fabs(p - pd) < 1e-6);
    }
    /* The threaded CPU update equals the reference. */
    const size_t n = 200000;
    float *p1 = random_buffer(n, 1), *g1 = random_buffer(n, 1);
    float *p2 = copy_buffer(p1, n);
    float *m1 = calloc(n, 4), *v1 = calloc(n, 4), *m2 = calloc(n, 4), *v2 = calloc(n, 4);
    pnx_ref_adam_update(p1, g1, m1, v1, n, &h, 1);
    assert_int_equal(be->ops->adam_update(be, p2, g1, m2, v2, n, &h, 1), 0);
    assert_memory_equal(p1, p2, n * sizeof *p1);
    free(p1), free(g1), free(p2), free(m1), free(v1), free(m2), free(v2);
}

static int setup(void **state)
{
    pnx_rng_seed(&rng, 1234, 0);
    pnx_backend *be = NULL;
    if (pnx_backend_cpu_create(&be, 2) != 0)
        return -1;
    *state = be;
    return 0;
}

static int teardown(void **state)
{
    pnx_backend_destroy(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv3x3),      cmocka_unit_test(test_conv1x1),
        cmocka_unit_test(test_upconv2x2),    cmocka_unit_test(test_upconv_layout),
        cmocka_unit_test(test_batchnorm),    cmocka_unit_test(test_relu_and_pool),
        cmocka_unit_test(test_concat_split), cmocka_unit_test(test_seg_loss),
        cmocka_unit_test(test_adam),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
