/*
 * model/cpu/cpu_conv.c — convolutions on the CPU: im2col + sgemm, tiled by
 * output rows (see cpu_backend.h). Shapes as in model/backend.h.
 *
 * Row-major GEMM views used below, per image:
 *   conv3x3:  Y (Cout, P) = Wm (Cout, Cin·9) × col (Cin·9, P)
 *             dWm (Cout, Cin·9) += dY (Cout, P) × colᵀ
 *             dX = conv3x3(dY, W') with W'(ci,co,ky,kx) = W(co,ci,2−ky,2−kx)
 *   upconv:   T (Cout·4, P) = Wᵀ (Cout·4, Cin) × X (Cin, P), scattered to Y
 *             dX (Cin, P) = W (Cin, Cout·4) × dT;  dW += X × dTᵀ
 *   conv1x1:  Y (Cout, P) = W (Cout, Cin) × X (Cin, P)
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/cpu/cpu_backend.h"
#include "model/cpu/cpu_internal.h"

size_t pnx_cpu_col_budget = PNX_CPU_COL_BUDGET;

int pnx_cpu_reserve(float **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    free(*buf);
    *cap = 0;
    *buf = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!*buf)
        return pnx_fail(PNX_ENOMEM, "out of memory for a %zu-float workspace", n);
    *cap = n;
    return 0;
}

/* Rows of output per tile so that rows × W × k floats fit the budget. */
static int tile_rows(int h, int w, size_t k)
{
    size_t per_row = (size_t)w * k;
    size_t rows = per_row ? pnx_cpu_col_budget / per_row : (size_t)h;
    if (rows < 1)
        rows = 1;
    return rows > (size_t)h ? h : (int)rows;
}

/* ---- GEMM split over the pool --------------------------------------------- */

/* One row-major C = α·op(A)·op(B) + β·C, cut into one slab per thread along
 * M or N. Each thread packs the operand it does not cut, so the cut goes
 * across the larger one. BLAS itself runs single-threaded (see
 * pnx_backend_cpu_create): one set of threads, no spinning BLAS workers
 * competing with the pool. */
typedef struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
    int parts, split_m;
} gemm_job;

static int gemm_slab(void *ctx, size_t p0, size_t p1)
{
    const gemm_job *j = ctx;
    int total = j->split_m ? j->m : j->n;
    int s0 = (int)((size_t)total * p0 / (size_t)j->parts);
    int s1 = (int)((size_t)total * p1 / (size_t)j->parts);
    if (s1 <= s0)
        return 0;
    if (j->split_m) {
        const float *a = j->ta == CblasNoTrans ? j->a + (size_t)s0 * j->lda : j->a + s0;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, s1 - s0, j->n, j->k, j->alpha, a, j->lda, j->b,
                    j->ldb, j->beta, j->c + (size_t)s0 * j->ldc, j->ldc);
    } else {
        const float *b = j->tb == CblasNoTrans ? j->b + s0 : j->b + (size_t)s0 * j->ldb;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, j->m, s1 - s0, j->k, j->alpha, j->a, j->lda, b,
                    j->ldb, j->beta, j->c + s0, j->ldc);
    }
    return 0;
}

static int par_sgemm(cpu_impl *c, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                     float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                     float *cm, int ldc)
{
    gemm_job j = {ta, tb, m, n, k, alpha, beta, a, b, cm, lda, ldb, ldc, 1, 0};
    j.parts = (int)pnx_pool_size(c->pool);
    /* Split M when A (m × k) is the larger operand, else N. Slabs thinner
     * than a micro-kernel tile are not worth a thread. */
    j.split_m = (size_t)m * k > (size_t)k * n;
    int extent = j.split_m ? m : n;
    if (j.parts > extent / 16)
        j.parts = extent / 16 > 1 ? extent / 16 : 1;
    if (j.parts <= 1)
        return gemm_slab(&j, 0, 1);
    return pnx_pool_for(c->pool, (size_t)j.parts, gemm_slab, &j);
}

/* ---- im2col for 3×3, pad 1 ------------------------------------------------- */

typedef struct im2col_job {
    const float *x; /* one image (C,H,W) */
    int h, w;
    int r0, r1;     /* output rows of the tile */
    float *col;     /* (C·9, (r1−r0)·W) */
} im2col_job;

static int im2col_channels(void *ctx, size_t c0, size_t c1)
{
    const im2col_job *j = ctx;
    const int W = j->w, H = j->h;
    const size_t P = (size_t)(j->r1 - j->r0) * W;
    for (size_t ci = c0; ci < c1; ci++) {
        const float *plane = j->x + ci * (size_t)H * W;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                float *dst = j->col + (ci * 9 + (size_t)ky * 3 + kx) * P;
                for (int r = j->r0; r < j->r1; r++, dst += W) {
                    int iy = r + ky - 1;
                    if (iy < 0 || iy >= H) {
                        memset(dst, 0, (size_t)W * sizeof *dst);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W;
                    if (kx == 1) {
                        memcpy(dst, src, (size_t)W * sizeof *dst);
                    } else if (kx == 0) {
                        dst[0] = 0.0f;
                        memcpy(dst + 1, src, (size_t)(W - 1) * sizeof *dst);
                    } else {
                        memcpy(dst, src + 1, (size_t)(W - 1) * sizeof *dst);
                        dst[W - 1] = 0.0f;
                    }
                }
            }
    }
    return 0;
}

/* y (N,Cout,H,W) (=, or += when accumulate) conv3x3(x (N,Cin,H,W), wm
 * (Cout, Cin·9)) + bias (Cout, may be NULL). */
static int conv3x3_gemm(pnx_backend *be, const float *x, pnx_dims xd, const float *wm,
                        const float *bias, int cout, float *y, int accumulate)
{
    cpu_impl *c = cpu_of(be);
    const int H = xd.h, W = xd.w;
    const size_t K = (size_t)xd.c * 9, HW = (size_t)H * W;
    const int rows = tile_rows(H, W, K);
    int rc = pnx_cpu_reserve(&c->work, &c->work_cap, K * (size_t)rows * W);
    if (rc)
        return rc;
    for (int n = 0; n < xd.n; n++) {
        const float *xn = x + (size_t)n * xd.c * HW;
        float *yn = y + (size_t)n * cout * HW;
        for (int r0 = 0; r0 < H; r0 += rows) {
            int r1 = r0 + rows < H ? r0 + rows : H;
            size_t P = (size_t)(r1 - r0) * W;
            im2col_job job = {xn, H, W, r0, r1, c->work};
            if ((rc = pnx_pool_for(c->pool, (size_t)xd.c, im2col_channels, &job)) != 0)
                return rc;
            float *yt = yn + (size_t)r0 * W;
            float beta = accumulate ? 1.0f : 0.0f;
            if (bias) {
                for (int co = 0; co < cout; co++) {
                    float *row = yt + (size_t)co * HW;
                    if (accumulate)
                        for (size_t p = 0; p < P; p++)
                            row[p] += bias[co];
                    else
                        for (size_t p = 0; p < P; p++)
                            row[p] = bias[co];
                }
                beta = 1.0f;
            }
            rc = par_sgemm(c, CblasNoTrans, CblasNoTrans, cout, (int)P, (int)K, 1.0f, wm, (int)K,
                           c->work, (int)P, beta, yt, (int)HW);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int pnx_cpu_conv3x3_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            const float *bias, int cout, float *y)
{
    return conv3x3_gemm(be, x, xd, w, bias, cout, y, 0);
}

typedef struct bias_grad_job {
    const float *dy;
    int n, c;
    size_t p;
    float *db;
} bias_grad_job;

static int bias_grad_channels(void *ctx, size_t c0, size_t c1)
{
    const bias_grad_job *j = ctx;
    for (size_t ch = c0; ch < c1; ch++) {
        double acc = 0;
        for (int n = 0; n < j->n; n++) {
            const float *row = j->dy + ((size_t)n * j->c + ch) * j->p;
            /* Float partial sums over short runs vectorise; the double total
             * keeps a million-pixel channel exact enough. */
            for (size_t b = 0; b < j->p; b += 1024) {
                size_t e = b + 1024 < j->p ? b + 1024 : j->p;
                float part = 0;
                for (size_t i = b; i < e; i++)
                    part += row[i];
                acc += part;
            }
        }
        j->db[ch] += (float)acc;
    }
    return 0;
}

int pnx_cpu_bias_grad(pnx_backend *be, const float *dy, int n, int c, size_t p, float *db)
{
    bias_grad_job job = {dy, n, c, p, db};
    return pnx_pool_for(cpu_of(be)->pool, (size_t)c, bias_grad_channels, &job);
}

int pnx_cpu_conv3x3_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                             int cout, const float *dy, float *dx, int acc, float *dw, float *db)
{
    cpu_impl *c = cpu_of(be);
    const int H = xd.h, W = xd.w, cin = xd.c;
    const size_t K = (size_t)cin * 9, HW = (size_t)H * W;
    int rc;
    if (dx) {
        if ((rc = pnx_cpu_reserve(&c->wflip, &c->wflip_cap, K * (size_t)cout)) != 0)
            return rc;
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++)
                for (int k = 0; k < 9; k++)
                    c->wflip[((size_t)ci * cout + co) * 9 + (size_t)(8 - k)] =
                        w[((size_t)co * cin + ci) * 9 + (size_t)k];
        pnx_dims dyd = {xd.n, cout, H, W};
        if ((rc = conv3x3_gemm(be, dy, dyd, c->wflip, NULL, cin, dx, acc)) != 0)
            return rc;
    }
    const int rows = tile_rows(H, W, K);
    if ((rc = pnx_cpu_reserve(&c->work, &c->work_cap, K * (size_t)rows * W)) != 0)
        return rc;
    for (int n = 0; n < xd.n; n++) {
        const float *xn = x + (size_t)n * cin * HW;
        const float *dyn = dy + (size_t)n * cout * HW;
        for (int r0 = 0; r0 < H; r0 += rows) {
            int r1 = r0 + rows < H ? r0 + rows : H;
            size_t P = (size_t)(r1 - r0) * W;
            im2col_job job = {xn, H, W, r0, r1, c->work};
            if ((rc = pnx_pool_for(c->pool, (size_t)cin, im2col_channels, &job)) != 0)
                return rc;
            rc = par_sgemm(c, CblasNoTrans, CblasTrans, cout, (int)K, (int)P, 1.0f,
                           dyn + (size_t)r0 * W, (int)HW, c->work, (int)P, 1.0f, dw, (int)K);
            if (rc)
                return rc;
        }
    }
    return pnx_cpu_bias_grad(be, dy, xd.n, cout, HW, db);
}

int pnx_cpu_conv1x1_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                            const float *bias, int cout, float *y)
{
    cpu_impl *c = cpu_of(be);
    const size_t P = (size_t)xd.h * xd.w;
    for (int n = 0; n < xd.n; n++) {
        float *yn = y + (size_t)n * cout * P;
        for (int co = 0; co < cout; co++)
            for (size_t p = 0; p < P; p++)
                yn[(size_t)co * P + p] = bias ? bias[co] : 0.0f;
        int rc = par_sgemm(c, CblasNoTrans, CblasNoTrans, cout, (int)P, xd.c, 1.0f, w, xd.c,
                           x + (size_t)n * xd.c * P, (int)P, 1.0f, yn, (int)P);
        if (rc)
            return rc;
    }
    return 0;
}

int pnx_cpu_conv1x1_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                             int cout, const float *dy, float *dx, int acc, float *dw, float *db)
{
    cpu_impl *c = cpu_of(be);
    const size_t P = (size_t)xd.h * xd.w;
    for (int n = 0; n < xd.n; n++) {
        const float *dyn = dy + (size_t)n * cout * P;
        const float *xn = x + (size_t)n * xd.c * P;
        int rc = 0;
        if (dx)
            rc = par_sgemm(c, CblasTrans, CblasNoTrans, xd.c, (int)P, cout, 1.0f, w, xd.c, dyn,
                           (int)P, acc ? 1.0f : 0.0f, dx + (size_t)n * xd.c * P, (int)P);
        if (!rc)
            rc = par_sgemm(c, CblasNoTrans, CblasTrans, cout, xd.c, (int)P, 1.0f, dyn, (int)P,
                           xn, (int)P, 1.0f, dw, xd.c);
        if (rc)
            return rc;
    }
    return pnx_cpu_bias_grad(be, dy, xd.n, cout, P, db);
}

/* ---- transposed conv 2×2 stride 2 ------------------------------------------ */

typedef struct scatter_job {
    const float *t;    /* (Cout·4, rows·W) */
    const float *bias; /* (Cout) or NULL */
    float *y;          /* one image (Cout, 2H, 2W) */
    int w, h, r0, r1;
    int gather;        /* 1: the reverse, y → t (for backward) */
} scatter_job;

static int scatter_channels(void *ctx, size_t c0, size_t c1)
{
    const scatter_job *j = ctx;
    const int W = j->w, OW = 2 * W;
    const size_t P = (size_t)(j->r1 - j->r0) * W, OHW = (size_t)4 * j->h * W;
    for (size_t co = c0; co < c1; co++) {
        float b = j->bias ? j->bias[co] : 0.0f;
        float *plane = j->y + co * OHW;
        for (int k = 0; k < 4; k++) {
            int ky = k / 2, kx = k % 2;
            float *trow = (float *)j->t + (co * 4 + (size_t)k) * P;
            for (int r = j->r0; r < j->r1; r++) {
                float *yrow = plane + (size_t)(2 * r + ky) * OW + kx;
                float *tr = trow + (size_t)(r - j->r0) * W;
                if (j->gather)
                    for (int i = 0; i < W; i++)
                        tr[i] = yrow[2 * i];
                else
                    for (int i = 0; i < W; i++)
                        yrow[2 * i] = tr[i] + b;
            }
        }
    }
    return 0;
}

int pnx_cpu_upconv2x2_forward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                              const float *bias, int cout, float *y)
{
    cpu_impl *c = cpu_of(be);
    const int H = xd.h, W = xd.w;
    const size_t HW = (size_t)H * W, M = (size_t)cout * 4;
    const int rows = tile_rows(H, W, M);
    int rc = pnx_cpu_reserve(&c->work, &c->work_cap, M * (size_t)rows * W);
    if (rc)
        return rc;
    for (int n = 0; n < xd.n; n++) {
        const float *xn = x + (size_t)n * xd.c * HW;
        float *yn = y + (size_t)n * cout * 4 * HW;
        for (int r0 = 0; r0 < H; r0 += rows) {
            int r1 = r0 + rows < H ? r0 + rows : H;
            size_t P = (size_t)(r1 - r0) * W;
            rc = par_sgemm(c, CblasTrans, CblasNoTrans, (int)M, (int)P, xd.c, 1.0f, w, (int)M,
                           xn + (size_t)r0 * W, (int)HW, 0.0f, c->work, (int)P);
            if (rc)
                return rc;
            scatter_job job = {c->work, bias, yn, W, H, r0, r1, 0};
            if ((rc = pnx_pool_for(c->pool, (size_t)cout, scatter_channels, &job)) != 0)
                return rc;
        }
    }
    return 0;
}

int pnx_cpu_upconv2x2_backward(pnx_backend *be, const float *x, pnx_dims xd, const float *w,
                               int cout, const float *dy, float *dx, int acc, float *dw,
                               float *db)
{
    cpu_impl *c = cpu_of(be);
    const int H = xd.h, W = xd.w;
    const size_t HW = (size_t)H * W, M = (size_t)cout * 4;
    const int rows = tile_rows(H, W, M);
    int rc = pnx_cpu_reserve(&c->work, &c->work_cap, M * (size_t)rows * W);
    if (rc)
        return rc;
    for (int n = 0; n < xd.n; n++) {
        const float *xn = x + (size_t)n * xd.c * HW;
        const float *dyn = dy + (size_t)n * cout * 4 * HW;
        for (int r0 = 0; r0 < H; r0 += rows) {
            int r1 = r0 + rows < H ? r0 + rows : H;
            size_t P = (size_t)(r1 - r0) * W;
            scatter_job job = {c->work, NULL, (float *)dyn, W, H, r0, r1, 1};
            if ((rc = pnx_pool_for(c->pool, (size_t)cout, scatter_channels, &job)) != 0)
                return rc;
            if (dx)
                rc = par_sgemm(c, CblasNoTrans, CblasNoTrans, xd.c, (int)P, (int)M, 1.0f, w,
                               (int)M, c->work, (int)P, acc ? 1.0f : 0.0f,
                               dx + (size_t)n * xd.c * HW + (size_t)r0 * W, (int)HW);
            if (!rc)
                rc = par_sgemm(c, CblasNoTrans, CblasTrans, xd.c, (int)M, (int)P, 1.0f,
                               xn + (size_t)r0 * W, (int)HW, c->work, (int)P, 1.0f, dw, (int)M);
            if (rc)
                return rc;
        }
    }
    return pnx_cpu_bias_grad(be, dy, xd.n, cout, 4 * HW, db);
}
