/*
 * model/ops_ref.c — reference ops: direct loops, sums in double. Slow by
 * design; see ops_ref.h. Every index expression follows NCHW:
 * element (n, c, y, x) of a (N,C,H,W) tensor is at ((n*C + c)*H + y)*W + x.
 */
#include "model/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define AT(n, c, y, x, C, H, W) ((((size_t)(n) * (C) + (c)) * (H) + (y)) * (W) + (x))

void pnx_ref_conv3x3_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                             int cout, float *y)
{
    const int N = xd.n, C = xd.c, H = xd.h, W = xd.w;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < cout; co++)
            for (int oy = 0; oy < H; oy++)
                for (int ox = 0; ox < W; ox++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < C; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = oy + ky - 1, ix = ox + kx - 1;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                acc += (double)x[AT(n, ci, iy, ix, C, H, W)] *
                                       w[AT(co, ci, ky, kx, C, 3, 3)];
                            }
                    y[AT(n, co, oy, ox, cout, H, W)] = (float)acc;
                }
}

void pnx_ref_conv3x3_backward(const float *x, pnx_dims xd, const float *w, int cout,
                              const float *dy, float *dx, int dx_accumulate, float *dw, float *db)
{
    const int N = xd.n, C = xd.c, H = xd.h, W = xd.w;
    if (dx) {
        /* dx (n,ci,iy,ix) = Σ_co,ky,kx dy(n,co,iy-ky+1,ix-kx+1) w(co,ci,ky,kx) */
        for (int n = 0; n < N; n++)
            for (int ci = 0; ci < C; ci++)
                for (int iy = 0; iy < H; iy++)
                    for (int ix = 0; ix < W; ix++) {
                        double acc = 0;
                        for (int co = 0; co < cout; co++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++) {
                                    int oy = iy - ky + 1, ox = ix - kx + 1;
                                    if (oy < 0 || oy >= H || ox < 0 || ox >= W)
                                        continue;
                                    acc += (double)dy[AT(n, co, oy, ox, cout, H, W)] *
                                           w[AT(co, ci, ky, kx, C, 3, 3)];
                                }
                        size_t i = AT(n, ci, iy, ix, C, H, W);
                        dx[i] = (float)((dx_accumulate ? dx[i] : 0.0) + acc);
                    }
    }
    /* dw (co,ci,ky,kx) = Σ_n,oy,ox dy(n,co,oy,ox) x(n,ci,oy+ky-1,ox+kx-1) */
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < C; ci++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    double acc = 0;
                    for (int n = 0; n < N; n++)
                        for (int oy = 0; oy < H; oy++)
                            for (int ox = 0; ox < W; ox++) {
                                int iy = oy + ky - 1, ix = ox + kx - 1;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                acc += (double)dy[AT(n, co, oy, ox, cout, H, W)] *
                                       x[AT(n, ci, iy, ix, C, H, W)];
                            }
                    dw[AT(co, ci, ky, kx, C, 3, 3)] += (float)acc;
                }
    for (int co = 0; co < cout; co++) {
        double acc = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < H * W; p++)
                acc += dy[((size_t)n * cout + co) * H * W + p];
        db[co] += (float)acc;
    }
}

void pnx_ref_conv1x1_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                             int cout, float *y)
{
    const size_t P = (size_t)xd.h * xd.w;
    for (int n = 0; n < xd.n; n++)
        for (int co = 0; co < cout; co++)
            for (size_t p = 0; p < P; p++) {
                double acc = bias ? bias[co] : 0.0;
                for (int ci = 0; ci < xd.c; ci++)
                    acc += (double)x[((size_t)n * xd.c + ci) * P + p] * w[(size_t)co * xd.c + ci];
                y[((size_t)n * cout + co) * P + p] = (float)acc;
            }
}

void pnx_ref_conv1x1_backward(const float *x, pnx_dims xd, const float *w, int cout,
                              const float *dy, float *dx, int dx_accumulate, float *dw, float *db)
{
    const size_t P = (size_t)xd.h * xd.w;
    const int C = xd.c;
    if (dx) {
        for (int n = 0; n < xd.n; n++)
            for (int ci = 0; ci < C; ci++)
                for (size_t p = 0; p < P; p++) {
                    double acc = 0;
                    for (int co = 0; co < cout; co++)
                        acc += (double)dy[((size_t)n * cout + co) * P + p] * w[(size_t)co * C + ci];
                    size_t i = ((size_t)n * C + ci) * P + p;
                    dx[i] = (float)((dx_accumulate ? dx[i] : 0.0) + acc);
                }
    }
    for (int co = 0; co < cout; co++) {
        double accb = 0;
        for (int n = 0; n < xd.n; n++)
            for (size_t p = 0; p < P; p++)
                accb += dy[((size_t)n * cout + co) * P + p];
        db[co] += (float)accb;
        for (int ci = 0; ci < C; ci++) {
            double acc = 0;
            for (int n = 0; n < xd.n; n++)
                for (size_t p = 0; p < P; p++)
                    acc += (double)dy[((size_t)n * cout + co) * P + p] *
                           x[((size_t)n * C + ci) * P + p];
            dw[(size_t)co * C + ci] += (float)acc;
        }
    }
}

/* y (n,co,2iy+ky,2ix+kx) = bias(co) + Σ_ci x(n,ci,iy,ix) w(ci,co,ky,kx): each
 * output pixel receives exactly one input pixel per input channel. */
void pnx_ref_upconv2x2_forward(const float *x, pnx_dims xd, const float *w, const float *bias,
                               int cout, float *y)
{
    const int N = xd.n, C = xd.c, H = xd.h, W = xd.w;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < cout; co++)
            for (int oy = 0; oy < 2 * H; oy++)
                for (int ox = 0; ox < 2 * W; ox++) {
                    int iy = oy / 2, ix = ox / 2, ky = oy % 2, kx = ox % 2;
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < C; ci++)
                        acc += (double)x[AT(n, ci, iy, ix, C, H, W)] *
                               w[AT(ci, co, ky, kx, cout, 2, 2)];
                    y[AT(n, co, oy, ox, cout, 2 * H, 2 * W)] = (float)acc;
                }
}

void pnx_ref_upconv2x2_backward(const float *x, pnx_dims xd, const float *w, int cout,
                                const float *dy, float *dx, int dx_accumulate, float *dw,
                                float *db)
{
    const int N = xd.n, C = xd.c, H = xd.h, W = xd.w;
    if (dx) {
        for (int n = 0; n < N; n++)
            for (int ci = 0; ci < C; ci++)
                for (int iy = 0; iy < H; iy++)
                    for (int ix = 0; ix < W; ix++) {
                        double acc = 0;
                        for (int co = 0; co < cout; co++)
                            for (int ky = 0; ky < 2; ky++)
                                for (int kx = 0; kx < 2; kx++)
                                    acc += (double)dy[AT(n, co, 2 * iy + ky, 2 * ix + kx, cout,
                                                         2 * H, 2 * W)] *
                                           w[AT(ci, co, ky, kx, cout, 2, 2)];
                        size_t i = AT(n, ci, iy, ix, C, H, W);
                        dx[i] = (float)((dx_accumulate ? dx[i] : 0.0) + acc);
                    }
    }
    for (int ci = 0; ci < C; ci++)
        for (int co = 0; co < cout; co++)
            for (int ky = 0; ky < 2; ky++)
                for (int kx = 0; kx < 2; kx++) {
                    double acc = 0;
                    for (int n = 0; n < N; n++)
                        for (int iy = 0; iy < H; iy++)
                            for (int ix = 0; ix < W; ix++)
                                acc += (double)x[AT(n, ci, iy, ix, C, H, W)] *
                                       dy[AT(n, co, 2 * iy + ky, 2 * ix + kx, cout, 2 * H, 2 * W)];
                    dw[AT(ci, co, ky, kx, cout, 2, 2)] += (float)acc;
                }
    for (int co = 0; co < cout; co++) {
        double acc = 0;
        for (int n = 0; n < N; n++)
            for (size_t p = 0; p < (size_t)4 * H * W; p++)
                acc += dy[((size_t)n * cout + co) * 4 * H * W + p];
        db[co] += (float)acc;
    }
}

int pnx_ref_batchnorm_forward(const float *x, pnx_dims d, const float *gamma, const float *beta,
                              float *running_mean, float *running_var, int training,
                              float momentum, float eps, float *y, float *save_mean,
                              float *save_invstd)
{
    if (training && (size_t)d.n * d.h * d.w < 2)
        return pnx_fail(PNX_EINVAL,
                        "batch norm in training needs more than one value per channel "
                        "(batch %d at %dx%d)", d.n, d.w, d.h);
    pnx_ref_batchnorm_forward_channels(x, d, gamma, beta, running_mean, running_var, training,
                                       momentum, eps, y, save_mean, save_invstd, 0, d.c);
    return 0;
}

void pnx_ref_batchnorm_channel_affine(const float *x, pnx_dims d, const float *gamma,
                                      const float *beta, float *running_mean, float *running_var,
                                      int training, float momentum, float eps, float *save_mean,
                                      float *save_invstd, int c, float *scale, float *shift)
{
    const size_t P = (size_t)d.h * d.w;
    const size_t M = (size_t)d.n * P; /* values per channel */
    double mean, invstd;
    if (training) {
        double sum = 0;
        for (int n = 0; n < d.n; n++)
            for (size_t p = 0; p < P; p++)
                sum += x[((size_t)n * d.c + c) * P + p];
        mean = sum / (double)M;
        double ss = 0;
        for (int n = 0; n < d.n; n++)
            for (size_t p = 0; p < P; p++) {
                double dev = x[((size_t)n * d.c + c) * P + p] - mean;
                ss += dev * dev;
            }
        double var = ss / (double)M;
        invstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        double unbiased = ss / (double)(M - 1);
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    } else {
        mean = running_mean[c];
        invstd = 1.0 / sqrt((double)running_var[c] + eps);
    }
    /* y = x·scale + shift, in float like any fast path would. */
    *scale = (float)(invstd * gamma[c]);
    *shift = (float)(beta[c] - mean * invstd * gamma[c]);
}

void pnx_ref_batchnorm_forward_channels(const float *x, pnx_dims d, const float *gamma,
                                        const float *beta, float *running_mean,
                                        float *running_var, int training, float momentum,
                                        float eps, float *y, float *save_mean,
                                        float *save_invstd, int c0, int c1)
{
    const size_t P = (size_t)d.h * d.w;
    for (int c = c0; c < c1; c++) {
        float scale, shift;
        pnx_ref_batchnorm_channel_affine(x, d, gamma, beta, running_mean, running_var, training,
                                         momentum, eps, save_mean, save_invstd, c, &scale,
                                         &shift);
        for (int n = 0; n < d.n; n++) {
            const float *xr = x + ((size_t)n * d.c + c) * P;
            float *yr = y + ((size_t)n * d.c + c) * P;
            for (size_t p = 0; p < P; p++)
                yr[p] = xr[p] * scale + shift;
        }
    }
}

void pnx_ref_batchnorm_backward(const float *x, pnx_dims d, const float *gamma,
                                const float *save_mean, const float *save_invstd, const float *dy,
                                float *dx, int dx_accumulate, float *dgamma, float *dbeta)
{
    pnx_ref_batchnorm_backward_channels(x, d, gamma, save_mean, save_invstd, dy, dx,
                                        dx_accumulate, dgamma, dbeta, 0, d.c);
}

/* With x̂ = (x − mean)·invstd and g = dy·γ:
 * dx = invstd · (g − mean(g) − x̂ · mean(g·x̂)), dγ = Σ dy·x̂, dβ = Σ dy,
 * folded per channel into dx = a·dy + b·x + k. */
void pnx_ref_batchnorm_grad_coef(double gamma, double mean, double invstd, double count,
                                 double sum_dy, double sum_dy_x, pnx_bn_grad_coef *out)
{
    /* Σ dy·x̂ = invstd·(Σ dy·x − mean·Σ dy) */
    const double sum_dy_xhat = invstd * (sum_dy_x - mean * sum_dy);
    const double a = gamma * invstd;
    const double b = -a * invstd * sum_dy_xhat / count;
    const double k = -a * sum_dy / count - b * mean;
    out->a = (float)a;
    out->b = (float)b;
    out->k = (float)k;
    out->dgamma = (float)sum_dy_xhat;
    out->dbeta = (float)sum_dy;
}

void pnx_ref_batchnorm_backward_channels(const float *x, pnx_dims d, const float *gamma,
                                         const float *save_mean, const float *save_invstd,
                                         const float *dy, float *dx, int dx_accumulate,
                                         float *dgamma, float *dbeta, int c0, int c1)
{
    const size_t P = (size_t)d.h * d.w;
    const double M = (double)d.n * (double)P;
    for (int c = c0; c < c1; c++) {
        double sum_dy = 0, sum_dy_x = 0;
        for (int n = 0; n < d.n; n++) {
            const float *xr = x + ((size_t)n * d.c + c) * P;
            const float *dyr = dy + ((size_t)n * d.c + c) * P;
            for (size_t p = 0; p < P; p++) {
                sum_dy += dyr[p];
                sum_dy_x += (double)dyr[p] * xr[p];
            }
        }
        pnx_bn_grad_coef k;
        pnx_ref_batchnorm_grad_coef(gamma[c], save_mean[c], save_invstd[c], M, sum_dy, sum_dy_x,
                                    &k);
        dgamma[c] += k.dgamma;
        dbeta[c] += k.dbeta;
        if (!dx)
            continue;
        for (int n = 0; n < d.n; n++) {
            const float *xr = x + ((size_t)n * d.c + c) * P;
            const float *dyr = dy + ((size_t)n * d.c + c) * P;
            float *dxr = dx + ((size_t)n * d.c + c) * P;
            if (dx_accumulate)
                for (size_t p = 0; p < P; p++)
                    dxr[p] += k.a * dyr[p] + k.b * xr[p] + k.k;
            else
                for (size_t p = 0; p < P; p++)
                    dxr[p] = k.a * dyr[p] + k.b * xr[p] + k.k;
        }
    }
}

/* The plain composition: BatchNorm, then ReLU in place. */
int pnx_ref_batchnorm_relu_forward(const float *x, pnx_dims d, const float *gamma,
                                   const float *beta, float *running_mean, float *running_var,
                                   int training, float momentum, float eps, float *y,
                                   float *save_mean, float *save_invstd)
{
    int rc = pnx_ref_batchnorm_forward(x, d, gamma, beta, running_mean, running_var, training,
                                       momentum, eps, y, save_mean, save_invstd);
    if (!rc)
        pnx_ref_relu_forward(y, y, pnx_dims_count(d));
    return rc;
}

/* The plain composition: the ReLU's backward into a temporary (dy is not
 * the op's to modify), then BatchNorm's backward from it. */
int pnx_ref_batchnorm_relu_backward(const float *x, const float *y, pnx_dims d,
                                    const float *gamma, const float *save_mean,
                                    const float *save_invstd, const float *dy, float *dx,
                                    int dx_accumulate, float *dgamma, float *dbeta)
{
    const size_t count = pnx_dims_count(d);
    float *masked = malloc((count ? count : 1) * sizeof *masked);
    if (!masked)
        return pnx_fail(PNX_ENOMEM, "out of memory for a BatchNorm+ReLU gradient of %zu values",
                        count);
    pnx_ref_relu_backward(y, dy, masked, count);
    pnx_ref_batchnorm_backward(x, d, gamma, save_mean, save_invstd, masked, dx, dx_accumulate,
                               dgamma, dbeta);
    free(masked);
    return 0;
}

void pnx_ref_relu_forward(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void pnx_ref_relu_backward(const float *y, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void pnx_ref_maxpool2x2_forward(const float *x, pnx_dims xd, float *y, uint8_t *argmax)
{
    const int OH = xd.h / 2, OW = xd.w / 2;
    for (int n = 0; n < xd.n; n++)
        for (int c = 0; c < xd.c; c++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int best = 0;
                    float bestv = x[AT(n, c, 2 * oy, 2 * ox, xd.c, xd.h, xd.w)];
                    for (int k = 1; k < 4; k++) {
                        float v = x[AT(n, c, 2 * oy + k / 2, 2 * ox + k % 2, xd.c, xd.h, xd.w)];
                        /* Strict '>' keeps the first of equal values, as PyTorch;
                         * NaN wins, as PyTorch. */
                        if (v > bestv || isnan(v)) {
                            bestv = v;
                            best = k;
                        }
                    }
                    size_t o = AT(n, c, oy, ox, xd.c, OH, OW);
                    y[o] = bestv;
                    argmax[o] = (uint8_t)best;
                }
}

void pnx_ref_maxpool2x2_backward(pnx_dims xd, const uint8_t *argmax, const float *dy, float *dx,
                                 int dx_accumulate)
{
    const int OH = xd.h / 2, OW = xd.w / 2;
    if (!dx_accumulate)
        memset(dx, 0, pnx_dims_count(xd) * sizeof *dx);
    for (int n = 0; n < xd.n; n++)
        for (int c = 0; c < xd.c; c++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    size_t o = AT(n, c, oy, ox, xd.c, OH, OW);
                    int k = argmax[o];
                    dx[AT(n, c, 2 * oy + k / 2, 2 * ox + k % 2, xd.c, xd.h, xd.w)] += dy[o];
                }
}

void pnx_ref_concat_channels(const float *a, int ca, const float *b, int cb, int n, size_t hw,
                             float *y)
{
    for (int i = 0; i < n; i++) {
        memcpy(y + (size_t)i * (ca + cb) * hw, a + (size_t)i * ca * hw, (size_t)ca * hw * sizeof *y);
        memcpy(y + ((size_t)i * (ca + cb) + ca) * hw, b + (size_t)i * cb * hw,
               (size_t)cb * hw * sizeof *y);
    }
}

static void copy_or_add(float *dst, const float *src, size_t count, int accumulate)
{
    if (!accumulate) {
        memcpy(dst, src, count * sizeof *dst);
        return;
    }
    for (size_t i = 0; i < count; i++)
        dst[i] += src[i];
}

void pnx_ref_split_channels(const float *dy, int ca, int cb, int n, size_t hw, float *da,
                            int da_accumulate, float *db, int db_accumulate)
{
    for (int i = 0; i < n; i++) {
        const float *src = dy + (size_t)i * (ca + cb) * hw;
        if (da)
            copy_or_add(da + (size_t)i * ca * hw, src, (size_t)ca * hw, da_accumulate);
        if (db)
            copy_or_add(db + (size_t)i * cb * hw, src + (size_t)ca * hw, (size_t)cb * hw,
                        db_accumulate);
    }
}

static double sigmoid(double v)
{
    return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

/* BCE-with-logits per element: max(x,0) − x·t + log(1 + e^−|x|).
 * Soft Dice: s = σ(x); dice = (2Σ s·t + 1) / (Σ s + Σ t + 1).
 * d dice_loss / d s_i = −(2 t_i (S + 1) − (2I + 1)) / (S + 1)², S = Σs + Σt. */
void pnx_ref_seg_loss(const float *logits, const float *target, size_t count, float bce_weight,
                      float dice_weight, pnx_loss *loss, float *dlogits)
{
    const double smooth = 1.0;
    double bce = 0, inter = 0, sum_s = 0, sum_t = 0;
    for (size_t i = 0; i < count; i++) {
        double xv = logits[i], t = target[i];
        bce += (xv > 0 ? xv : 0) - xv * t + log1p(exp(-fabs(xv)));
        double s = sigmoid(xv);
        inter += s * t;
        sum_s += s;
        sum_t += t;
    }
    double denom = sum_s + sum_t + smooth;
    double dice = (2.0 * inter + smooth) / denom;
    loss->bce = count ? bce / (double)count : 0.0;
    loss->dice = 1.0 - dice;
    loss->total = bce_weight * loss->bce + dice_weight * loss->dice;
    if (!dlogits)
        return;
    for (size_t i = 0; i < count; i++) {
        double s = sigmoid(logits[i]), t = target[i];
        double d_bce = (s - t) / (double)count;
        double d_dice_ds = -(2.0 * t * denom - (2.0 * inter + smooth)) / (denom * denom);
        dlogits[i] = (float)(bce_weight * d_bce + dice_weight * d_dice_ds * s * (1.0 - s));
    }
}

/* torch.optim.Adam (1.13, single-tensor path), step by step in float as
 * PyTorch does, with the scalar factors computed in double. */
void pnx_ref_adam_update(float *param, const float *grad, float *m, float *v, size_t n,
                         const pnx_adam_hparams *h, int64_t step)
{
    const double bc1 = 1.0 - pow(h->beta1, (double)step);
    const double bc2 = 1.0 - pow(h->beta2, (double)step);
    const float step_size = (float)(h->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)h->beta1, b2 = (float)h->beta2;
    const float one_minus_b1 = (float)(1.0 - h->beta1), one_minus_b2 = (float)(1.0 - h->beta2);
    const float eps = (float)h->eps, wd = (float)h->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g += wd * param[i];
        m[i] = m[i] * b1 + g * one_minus_b1;
        v[i] = v[i] * b2 + one_minus_b2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        param[i] -= step_size * (m[i] / denom);
    }
}
