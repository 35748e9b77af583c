/* tools/gen_sample/chest_anatomy.c — lung, heart and body outlines; see chest_anatomy.h. */
#include "tools/gen_sample/chest_anatomy.h"

#include <math.h>

static double uniform_in(pnx_rng *rng, double lo, double hi)
{
    return lo + (hi - lo) * pnx_rng_uniform(rng);
}

static double min2(double a, double b) { return a < b ? a : b; }

void pnx_chest_anatomy_sample(pnx_rng *rng, int female, pnx_chest_anatomy *a)
{
    a->female = female;
    a->body_half_width = uniform_in(rng, 0.47, 0.52);
    double apex = uniform_in(rng, 0.12, 0.16);
    double lateral = uniform_in(rng, 0.37, 0.41);
    double dome = uniform_in(rng, 0.64, 0.70);
    /* The right hemidiaphragm sits a little higher (the liver under it). */
    a->apex_q[PNX_SIDE_RIGHT] = apex + uniform_in(rng, -0.005, 0.005);
    a->apex_q[PNX_SIDE_LEFT] = apex + uniform_in(rng, -0.005, 0.01);
    a->lateral_xl[PNX_SIDE_RIGHT] = lateral + uniform_in(rng, -0.01, 0.01);
    a->lateral_xl[PNX_SIDE_LEFT] = lateral + uniform_in(rng, -0.015, 0.005);
    a->dome_q[PNX_SIDE_RIGHT] = dome;
    a->dome_q[PNX_SIDE_LEFT] = dome + uniform_in(rng, 0.01, 0.035);
    a->heart_cx = 0.5 + uniform_in(rng, 0.04, 0.06);
    a->heart_rx_left = uniform_in(rng, 0.15, 0.18);
    a->heart_rx_right = uniform_in(rng, 0.15, 0.17);
    a->heart_ry = uniform_in(rng, 0.10, 0.12);
    /* The heart rests on the diaphragm. */
    a->heart_cy = a->dome_q[PNX_SIDE_LEFT] + 0.035 - 0.9 * a->heart_ry;
    a->rib_first_q = uniform_in(rng, 0.09, 0.11);
    a->rib_spacing = uniform_in(rng, 0.055, 0.062);
    a->soft_tissue = uniform_in(rng, 1.55, 1.8);
    a->lung_air = uniform_in(rng, 1.0, 1.15);
    a->texture_seed = pnx_rng_u64(rng);
}

void pnx_chest_pose_sample(pnx_rng *rng, int ap_view, pnx_chest_pose *pose)
{
    pose->ap_view = ap_view;
    pose->scale = uniform_in(rng, 0.93, 1.04);
    pose->shift_x = uniform_in(rng, -0.02, 0.02);
    pose->shift_y = uniform_in(rng, -0.03, 0.03);
    pose->rotation = uniform_in(rng, -0.035, 0.035);
    pose->exposure = uniform_in(rng, 0.92, 1.12);
    pose->noise_sigma = uniform_in(rng, 0.8, 1.5);
}

void pnx_chest_frame_init(pnx_chest_frame *f, const pnx_chest_anatomy *a,
                          const pnx_chest_pose *pose, uint32_t size)
{
    f->anatomy = *a;
    f->pose = *pose;
    f->size = size;
    f->cos_r = cos(pose->rotation);
    f->sin_r = sin(pose->rotation);
    if (pose->ap_view) {
        /* An AP film magnifies the heart, which lies far from the detector. */
        f->anatomy.heart_rx_left *= 1.12;
        f->anatomy.heart_rx_right *= 1.10;
        f->anatomy.heart_ry *= 1.08;
    }
}

void pnx_chest_pixel_to_anatomy(const pnx_chest_frame *f, double x, double y,
                                double *p, double *q)
{
    double u = (x + 0.5) / f->size - 0.5 - f->pose.shift_x;
    double v = (y + 0.5) / f->size - 0.5 - f->pose.shift_y;
    double ur = f->cos_r * u + f->sin_r * v;
    double vr = -f->sin_r * u + f->cos_r * v;
    *p = 0.5 + ur / f->pose.scale;
    *q = 0.5 + vr / f->pose.scale;
}

void pnx_chest_anatomy_to_pixel(const pnx_chest_frame *f, double p, double q,
                                double *x, double *y)
{
    double ur = (p - 0.5) * f->pose.scale;
    double vr = (q - 0.5) * f->pose.scale;
    double u = f->cos_r * ur - f->sin_r * vr;
    double v = f->sin_r * ur + f->cos_r * vr;
    *x = (u + 0.5 + f->pose.shift_x) * f->size - 0.5;
    *y = (v + 0.5 + f->pose.shift_y) * f->size - 0.5;
}

double pnx_chest_pixels_per_unit(const pnx_chest_frame *f)
{
    return f->pose.scale * f->size;
}

double pnx_chest_diaphragm_q(const pnx_chest_frame *f, int side, double xl)
{
    /* A dome, highest a little lateral of the lung's middle. */
    double d = xl - 0.18;
    return f->anatomy.dome_q[side] + 2.2 * d * d;
}

double pnx_chest_body_half_width(const pnx_chest_frame *f, double q)
{
    /* Neck, then the rounded slope of the shoulders. */
    double neck = 0.15;
    double t = (q + 0.06) / 0.18;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    t = sqrt(1 - (1 - t) * (1 - t));
    return neck + (f->anatomy.body_half_width - neck) * t;
}

void pnx_chest_lung_centre(const pnx_chest_frame *f, int side, double *xl, double *q)
{
    *xl = 0.21;
    *q = 0.5 * (f->anatomy.apex_q[side] + f->anatomy.dome_q[side]) + 0.02;
}

double pnx_chest_lung_outline_depth(const pnx_chest_frame *f, int side, double p, double q)
{
    const pnx_chest_anatomy *a = &f->anatomy;
    double xl = pnx_chest_xl(side, p);

    /* Apex: a rounded dome over the lung's upper part. */
    double da = xl - 0.18;
    double top = a->apex_q[side] + 5.0 * da * da;
    double bottom = pnx_chest_diaphragm_q(f, side, xl);
    /* Chest wall: narrows towards the apex, a little towards the base. */
    double above = 0.5 - q > 0 ? 0.5 - q : 0;
    double lateral = a->lateral_xl[side] - 1.1 * above * above;
    /* The superior mediastinum widens a little towards the heart. */
    double medial = side == PNX_SIDE_RIGHT ? 0.06 + 0.12 * (q > 0.2 ? (q < 0.45 ? q - 0.2 : 0.25) : 0)
                                           : 0.055 + 0.06 * (q > 0.2 ? (q < 0.45 ? q - 0.2 : 0.25) : 0);

    return min2(min2(q - top, bottom - q), min2(xl - medial, lateral - xl));
}

double pnx_chest_heart_rho(const pnx_chest_frame *f, double p, double q)
{
    const pnx_chest_anatomy *a = &f->anatomy;
    double hx = p - a->heart_cx;
    double rx = hx > 0 ? a->heart_rx_left : a->heart_rx_right;
    double hy = q - a->heart_cy;
    return sqrt((hx / rx) * (hx / rx) + (hy / a->heart_ry) * (hy / a->heart_ry));
}

double pnx_chest_lung_depth(const pnx_chest_frame *f, int side, double p, double q)
{
    const pnx_chest_anatomy *a = &f->anatomy;
    double depth = pnx_chest_lung_outline_depth(f, side, p, q);
    /* The heart, wider to the patient's left, pushes the medial border out. */
    double rx = p > a->heart_cx ? a->heart_rx_left : a->heart_rx_right;
    depth = min2(depth, (pnx_chest_heart_rho(f, p, q) - 1.0) * min2(rx, a->heart_ry));

    /* The aortic knob, above the heart on the left. */
    if (side == PNX_SIDE_LEFT) {
        double kx = p - (0.5 + 0.045), ky = q - (a->heart_cy - 0.27);
        depth = min2(depth, sqrt(kx * kx + ky * ky) - 0.035);
    }
    return depth;
}
