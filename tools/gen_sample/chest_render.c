/* tools/gen_sample/chest_render.c — attenuation map → radiograph; see chest_render.h. */
#include "tools/gen_sample/chest_render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"

/* RNG streams: vessels and texture belong to the patient (seeded from the
 * anatomy), noise, leads and bowel gas to the film (seeded from noise_seed). */
enum {
    STREAM_VESSELS = 1, /* + side */
    STREAM_TEXTURE = 3,
    STREAM_NOISE = 4,
    STREAM_DEVICES = 5,
    STREAM_BOWEL = 6,
};

/* Attenuation of tissues, in the units of pnx_chest_anatomy.soft_tissue. */
#define BACKGROUND_ATT 0.03
#define ABDOMEN_ATT 0.3
#define RETROCARDIAC_AIR 0.1
#define SPINE_ATT 0.16
#define TRACHEA_AIR 0.28
#define HILUM_ATT 0.2
#define POSTERIOR_RIB_ATT 0.11
#define ANTERIOR_RIB_ATT 0.05
#define CLAVICLE_ATT 0.28
#define BREAST_ATT 0.2
#define GASTRIC_AIR 0.3
#define BOWEL_AIR 0.2
#define WIRE_ATT 0.25
#define ELECTRODE_ATT 0.3
#define VESSEL_ATT 0.13
#define FINE_TEXTURE_ATT 0.022
#define COARSE_TEXTURE_ATT 0.010
/* Lung periphery within this depth is thinner, so less dark. */
#define LUNG_FULL_DEPTH 0.08
/* Vessels and texture fade out within this depth of the pleura. */
#define MARKINGS_FADE_DEPTH 0.012
/* CR processing: unsharp mask strength and radius (pixels). */
#define UNSHARP_GAIN 0.35
#define UNSHARP_RADIUS 24

static double smoothstep(double e0, double e1, double x)
{
    double t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* Sliding-window mean of one line with clamped edges. */
static void box_line(const float *in, float *out, size_t n, size_t stride, int r)
{
    double sum = 0;
    long last = (long)n - 1;
    for (long i = -r; i <= r; i++)
        sum += in[(size_t)(i < 0 ? 0 : i > last ? last : i) * stride];
    for (long i = 0; i <= last; i++) {
        out[(size_t)i * stride] = (float)(sum / (2 * r + 1));
        long add = i + r + 1, sub = i - r;
        sum += in[(size_t)(add > last ? last : add) * stride];
        sum -= in[(size_t)(sub < 0 ? 0 : sub) * stride];
    }
}

/* In-place separable box blur, `passes` times (3 passes ≈ Gaussian). */
static void box_blur(float *buf, float *tmp, uint32_t n, int r, int passes)
{
    for (int k = 0; k < passes; k++) {
        for (uint32_t y = 0; y < n; y++)
            box_line(buf + (size_t)y * n, tmp + (size_t)y * n, n, 1, r);
        for (uint32_t x = 0; x < n; x++)
            box_line(tmp + x, buf + x, n, n, r);
    }
}

/* Unit-variance smooth noise of a given correlation radius. */
static void smooth_noise(pnx_rng *rng, float *buf, float *tmp, uint32_t n, int r)
{
    size_t count = (size_t)n * n;
    for (size_t i = 0; i < count; i++)
        buf[i] = (float)pnx_rng_normal(rng);
    box_blur(buf, tmp, n, r, 2);
    double ss = 0;
    for (size_t i = 0; i < count; i++)
        ss += (double)buf[i] * buf[i];
    double scale = ss > 0 ? 1.0 / sqrt(ss / count) : 0;
    for (size_t i = 0; i < count; i++)
        buf[i] = (float)(buf[i] * scale);
}

/* ---- lung vessels ------------------------------------------------------- */

typedef struct vessel_ctx {
    const pnx_chest_frame *f;
    int side;
    pnx_rng rng;
    float *buf;
} vessel_ctx;

/* Draws a tapering Gaussian line from (x0, y0) to (x1, y1), in pixels,
 * keeping the brighter value where vessels cross. */
static void draw_segment(float *buf, uint32_t n, double x0, double y0, double x1,
                         double y1, double s0, double s1, double a0, double a1)
{
    double smax = s0 > s1 ? s0 : s1;
    double pad = 3 * smax + 1;
    long xa = (long)floor((x0 < x1 ? x0 : x1) - pad), xb = (long)ceil((x0 > x1 ? x0 : x1) + pad);
    long ya = (long)floor((y0 < y1 ? y0 : y1) - pad), yb = (long)ceil((y0 > y1 ? y0 : y1) + pad);
    if (xa < 0) xa = 0;
    if (ya < 0) ya = 0;
    if (xb > (long)n - 1) xb = (long)n - 1;
    if (yb > (long)n - 1) yb = (long)n - 1;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (long y = ya; y <= yb; y++) {
        for (long x = xa; x <= xb; x++) {
            double t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0;
            t = clamp01(t);
            double ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
            double s = s0 + t * (s1 - s0), a = a0 + t * (a1 - a0);
            double v = a * exp(-(ex * ex + ey * ey) / (2 * s * s));
            float *dst = &buf[(size_t)y * n + (size_t)x];
            if (v > *dst)
                *dst = (float)v;
        }
    }
}

static double side_p(int side, double xl) { return side == PNX_SIDE_RIGHT ? 0.5 - xl : 0.5 + xl; }

/* One branch and its children, in the lung's (xl, q) coordinates. */
static void grow_vessel(vessel_ctx *c, double xl, double q, double angle, double length,
                        double width, double amp, int level)
{
    const int steps = 3;
    double ppu = pnx_chest_pixels_per_unit(c->f);
    for (int i = 0; i < steps; i++) {
        angle += 0.4 * (pnx_rng_uniform(&c->rng) - 0.5);
        double nxl = xl + cos(angle) * length / steps;
        double nq = q + sin(angle) * length / steps;
        double end_depth = pnx_chest_lung_depth(c->f, c->side, side_p(c->side, nxl), nq);
        double x0, y0, x1, y1;
        pnx_chest_anatomy_to_pixel(c->f, side_p(c->side, xl), q, &x0, &y0);
        pnx_chest_anatomy_to_pixel(c->f, side_p(c->side, nxl), nq, &x1, &y1);
        double w1 = width * 0.93, a1 = amp * 0.95;
        draw_segment(c->buf, c->f->size, x0, y0, x1, y1, width * ppu, w1 * ppu, amp, a1);
        if (end_depth < 0.004)
            return;
        xl = nxl;
        q = nq;
        width = w1;
        amp = a1;
    }
    if (level == 0)
        return;
    int children = pnx_rng_uniform(&c->rng) < 0.25 ? 3 : 2;
    for (int k = 0; k < children; k++) {
        double spread = 0.25 + 0.3 * pnx_rng_uniform(&c->rng);
        double turn = children == 2 ? (k == 0 ? -spread : spread) : (k - 1) * spread;
        grow_vessel(c, xl, q, angle + turn, length * (0.68 + 0.1 * pnx_rng_uniform(&c->rng)),
                    width * 0.72, amp * 0.85, level - 1);
    }
}

static void draw_vessels(const pnx_chest_frame *f, float *buf)
{
    static const double trunk_angles[] = {-1.95, -1.6, -1.2, -0.75, -0.3, 0.15, 0.6, 1.05, 1.4};
    for (int side = 0; side < 2; side++) {
        vessel_ctx c = {.f = f, .side = side, .buf = buf};
        pnx_rng_seed(&c.rng, f->anatomy.texture_seed, STREAM_VESSELS + (uint64_t)side);
        double hilum_q = 0.5 * (f->anatomy.apex_q[side] + f->anatomy.dome_q[side]) + 0.03;
        for (size_t k = 0; k < sizeof trunk_angles / sizeof trunk_angles[0]; k++) {
            double angle = trunk_angles[k] + 0.2 * (pnx_rng_uniform(&c.rng) - 0.5);
            double length = 0.04 + 0.03 * pnx_rng_uniform(&c.rng);
            double start_xl = 0.095 + 0.02 * pnx_rng_uniform(&c.rng);
            double start_q = hilum_q + 0.04 * (pnx_rng_uniform(&c.rng) - 0.5);
            grow_vessel(&c, start_xl, start_q, angle, length, 0.0042, VESSEL_ATT, 5);
        }
    }
}

/* ---- bones -------------------------------------------------------------- */

/* Cross-section of a tubular bone at normalised distance r from its axis:
 * the cortex at the edges absorbs more than the marrow in the middle. */
static double bone_profile(double r)
{
    if (r >= 1.25)
        return 0;
    if (r <= 1.0)
        return 0.62 + 0.38 * r * r;
    return (1.25 - r) / 0.25;
}

static double ribs_and_clavicle(const pnx_chest_frame *f, double xl, double q)
{
    const pnx_chest_anatomy *a = &f->anatomy;
    int ap = f->pose.ap_view;
    double att = 0;
    double lateral_end = 0.5 * (a->lateral_xl[0] + a->lateral_xl[1]) + 0.045;
    double along = smoothstep(0.02, 0.05, xl) * smoothstep(lateral_end, lateral_end - 0.03, xl);
    if (along <= 0)
        return 0;

    /* Posterior ribs: rise from the spine, arch, and fall along the wall. */
    double b1 = ap ? -0.4 : -0.5, b2 = ap ? 2.0 : 2.4;
    double slope = b1 + 2 * b2 * xl;
    double norm = 1.0 / sqrt(1 + slope * slope);
    double half = 0.0095 + 0.012 * xl;
    for (int k = 0; k < 11; k++) {
        double qs = a->rib_first_q + k * a->rib_spacing * (1 + 0.012 * k);
        double d = (q - (qs + b1 * xl + b2 * xl * xl)) * norm;
        if (fabs(d) < 1.25 * half)
            att += POSTERIOR_RIB_ATT * bone_profile(fabs(d) / half) * along;
    }

    /* Anterior ribs: fainter, descending from the wall towards the sternum,
     * ending at the costal cartilages. */
    double anterior_along = smoothstep(0.11, 0.16, xl) * along;
    if (anterior_along > 0) {
        double span = (lateral_end - xl) / 0.3;
        span = span < 0 ? 0 : span;
        for (int k = 0; k < 6; k++) {
            double qa = a->rib_first_q + 0.06 + k * a->rib_spacing * 1.08;
            double d = q - (qa + 0.10 * pow(span, 1.3));
            double h = 0.0095;
            if (fabs(d) < 1.25 * h)
                att += ANTERIOR_RIB_ATT * bone_profile(fabs(d) / h) * anterior_along;
        }
    }

    /* Clavicle, higher on a supine AP film. */
    double clavicle_q = a->rib_first_q + (ap ? 0.06 : 0.10);
    if (xl < 0.36) {
        double d = q - (clavicle_q - 0.30 * xl + 0.25 * xl * xl);
        double h = 0.013;
        double ends = smoothstep(0.025, 0.04, xl) * smoothstep(0.36, 0.33, xl);
        if (fabs(d) < 1.25 * h)
            att += CLAVICLE_ATT * bone_profile(fabs(d) / h) * ends;
    }
    return att;
}

/* The soft tissue of the upper arm beside the chest. */
static double arm(const pnx_chest_frame *f, double xl, double q)
{
    double centre = f->anatomy.body_half_width + 0.05;
    double r = (xl - centre) / 0.065;
    if (fabs(r) >= 1)
        return 0;
    return smoothstep(0.12, 0.22, q) * 0.6 * f->anatomy.soft_tissue * sqrt(1 - r * r);
}

static double spine(double p, double q)
{
    double dx = fabs(p - 0.5);
    if (dx > 0.036)
        return 0;
    double period = 0.034 + 0.012 * clamp01(q);
    double phase = q / period - floor(q / period);
    /* Intervertebral discs absorb less than the vertebral bodies. */
    double body = 1.0 - 0.35 * smoothstep(0.14, 0.08, phase);
    double pedicle = 0;
    for (int s = -1; s <= 1; s += 2) {
        double px = (p - 0.5 - s * 0.021) / 0.007, pq = (phase - 0.55) / 0.2;
        if (px * px + pq * pq < 1)
            pedicle += 0.3;
    }
    return SPINE_ATT * smoothstep(0.036, 0.03, dx) * (body + pedicle);
}

#define MAX_BOWEL_GAS 6

typedef struct gas_pocket {
    double p, q, rx, ry, air;   /* anatomy units */
} gas_pocket;

typedef struct buffers {
    float *vessels, *fine, *coarse, *lesion, *ring, *grey, *tmp, *devices;
    gas_pocket bowel[MAX_BOWEL_GAS];
    int n_bowel;
} buffers;

/* ---- things that are not the patient -------------------------------------- */

/* ECG leads and lines lying on the patient, most often on supine AP films:
 * thin bright curves from the image edge ending in an electrode. */
static void draw_devices(const pnx_chest_frame *f, pnx_rng *rng, float *buf)
{
    uint32_t n = f->size;
    double chance = f->pose.ap_view ? 0.7 : 0.2;
    if (pnx_rng_uniform(rng) >= chance)
        return;
    int wires = 1 + (int)pnx_rng_below(rng, 3);
    for (int w = 0; w < wires; w++) {
        double x0 = n * (0.1 + 0.8 * pnx_rng_uniform(rng)), y0 = -8;
        if (pnx_rng_uniform(rng) < 0.4) {
            x0 = pnx_rng_uniform(rng) < 0.5 ? -8.0 : n + 8.0;
            y0 = n * (0.2 + 0.6 * pnx_rng_uniform(rng));
        }
        double x2 = n * (0.2 + 0.6 * pnx_rng_uniform(rng));
        double y2 = n * (0.25 + 0.45 * pnx_rng_uniform(rng));
        double x1 = n * (0.1 + 0.8 * pnx_rng_uniform(rng));
        double y1 = n * (0.1 + 0.7 * pnx_rng_uniform(rng));
        double px = x0, py = y0;
        const int steps = 32;
        for (int i = 1; i <= steps; i++) {
            double t = (double)i / steps, u = 1 - t;
            double x = u * u * x0 + 2 * u * t * x1 + t * t * x2;
            double y = u * u * y0 + 2 * u * t * y1 + t * t * y2;
            draw_segment(buf, n, px, py, x, y, 1.3, 1.3, WIRE_ATT, WIRE_ATT);
            px = x;
            py = y;
        }
        /* The electrode: a disc with a bright rim and a metal stud. */
        double radius = 0.011 * n;
        for (long y = (long)(y2 - radius - 2); y <= (long)(y2 + radius + 2); y++) {
            for (long x = (long)(x2 - radius - 2); x <= (long)(x2 + radius + 2); x++) {
                if (x < 0 || y < 0 || x >= (long)n || y >= (long)n)
                    continue;
                double r = sqrt((x - x2) * (x - x2) + (y - y2) * (y - y2)) / radius;
                double v = ELECTRODE_ATT * (0.4 * smoothstep(1.05, 0.95, r)
                                            + 0.4 * smoothstep(0.25, 0.0, fabs(r - 0.9))
                                            + 0.8 * smoothstep(0.3, 0.2, r));
                float *dst = &buf[(size_t)y * n + (size_t)x];
                if (v > *dst)
                    *dst = (float)v;
            }
        }
    }
}

/* Gas in the colon under the left hemidiaphragm (and sometimes the right). */
static void place_bowel_gas(const pnx_chest_frame *f, pnx_rng *rng, buffers *b)
{
    b->n_bowel = 2 + (int)pnx_rng_below(rng, MAX_BOWEL_GAS - 1);
    for (int k = 0; k < b->n_bowel; k++) {
        int side = pnx_rng_uniform(rng) < 0.75 ? PNX_SIDE_LEFT : PNX_SIDE_RIGHT;
        double xl = 0.12 + 0.25 * pnx_rng_uniform(rng);
        gas_pocket *g = &b->bowel[k];
        g->p = side == PNX_SIDE_LEFT ? 0.5 + xl : 0.5 - xl;
        g->q = pnx_chest_diaphragm_q(f, side, xl) + 0.06 + 0.2 * pnx_rng_uniform(rng);
        g->rx = 0.015 + 0.025 * pnx_rng_uniform(rng);
        g->ry = 0.012 + 0.02 * pnx_rng_uniform(rng);
        g->air = BOWEL_AIR * (0.5 + 0.5 * pnx_rng_uniform(rng));
    }
}

/* ---- the picture -------------------------------------------------------- */


static void free_buffers(buffers *b)
{
    free(b->vessels);
    free(b->fine);
    free(b->coarse);
    free(b->lesion);
    free(b->ring);
    free(b->grey);
    free(b->tmp);
    free(b->devices);
}

static double attenuation(const pnx_chest_frame *f, const buffers *b, const pnx_ptx_look *look,
                          size_t idx, double p, double q)
{
    const pnx_chest_anatomy *a = &f->anatomy;
    int side = p < 0.5 ? PNX_SIDE_RIGHT : PNX_SIDE_LEFT;
    double xl = pnx_chest_xl(side, p);

    double hw = pnx_chest_body_half_width(f, q);
    double t = 1 - (xl / hw) * (xl / hw);
    double body = t > 0 ? sqrt(t) : 0;
    double att = BACKGROUND_ATT + a->soft_tissue * body + arm(f, xl, q);
    if (body <= 0)
        return att;

    double depth = pnx_chest_lung_depth(f, side, p, q);
    double lung = smoothstep(-0.0012, 0.0012, depth);
    double ptx = b->lesion ? b->lesion[idx] : 0;
    if (lung > 0) {
        double thickness = 0.45 + 0.55 * sqrt(clamp01(depth / LUNG_FULL_DEPTH));
        /* In a pneumothorax the air reaches the wall at full thickness. */
        thickness += 0.3 * (1 - thickness) * ptx;
        att -= lung * (a->lung_air * thickness + (look ? look->extra_air : 0) * ptx);
        double inner = smoothstep(0.0, MARKINGS_FADE_DEPTH, depth) * (1 - ptx);
        att += inner * (b->vessels[idx] + FINE_TEXTURE_ATT * b->fine[idx]
                        + COARSE_TEXTURE_ATT * b->coarse[idx]);
        if (b->ring && look)
            att += look->pleural_line * b->ring[idx] * smoothstep(0.002, 0.006, depth);
    }

    double hilum_q = 0.5 * (a->apex_q[side] + a->dome_q[side]) + 0.03;
    double hd = ((xl - 0.11) * (xl - 0.11) + (q - hilum_q) * (q - hilum_q)) / (0.032 * 0.032);
    att += HILUM_ATT * exp(-0.5 * hd);

    /* The heart shows only as the lungs' border: it is as dense as the rest
     * of the mediastinum. */
    double heart = smoothstep(1.0, 0.94, pnx_chest_heart_rho(f, p, q));
    if (heart > 0) {
        /* Lung in front of and behind the heart keeps the heart grey. */
        double outline = pnx_chest_lung_outline_depth(f, side, p, q);
        att -= RETROCARDIAC_AIR * a->lung_air * heart * smoothstep(-0.01, 0.03, outline);
    }

    double bottom = pnx_chest_diaphragm_q(f, side, xl);
    att += ABDOMEN_ATT * smoothstep(0.0, 0.025, q - bottom) * body;
    if (side == PNX_SIDE_LEFT) {
        double gx = (xl - 0.17) / 0.05, gq = (q - (pnx_chest_diaphragm_q(f, side, 0.17) + 0.03)) / 0.02;
        double g = gx * gx + gq * gq;
        att -= GASTRIC_AIR * smoothstep(1.0, 0.8, g) * smoothstep(0.003, 0.008, q - bottom);
    }
    for (int k = 0; k < b->n_bowel; k++) {
        const gas_pocket *g = &b->bowel[k];
        double gx = (p - g->p) / g->rx, gq = (q - g->q) / g->ry;
        double r2 = gx * gx + gq * gq;
        if (r2 < 1)
            att -= g->air * smoothstep(1.0, 0.6, r2) * smoothstep(0.01, 0.03, q - bottom);
    }

    double carina = a->heart_cy - 0.26;
    double tx = fabs(p - 0.503);
    att -= TRACHEA_AIR * smoothstep(0.012, 0.009, tx) * smoothstep(carina, carina - 0.02, q);

    if (a->female) {
        double bx = (xl - 0.27) / 0.10, bq = (q - (a->dome_q[side] + 0.01)) / 0.07;
        att += BREAST_ATT * exp(-0.5 * (bx * bx + bq * bq)) * body;
    }

    att += spine(p, q);
    att += ribs_and_clavicle(f, xl, q) * body;
    return att;
}

static int prepare_lesion(const pnx_image *lesion, buffers *b, uint32_t n)
{
    size_t count = (size_t)n * n;
    b->lesion = malloc(count * sizeof(float));
    b->ring = malloc(count * sizeof(float));
    if (!b->lesion || !b->ring)
        return pnx_fail(PNX_ENOMEM, "out of memory for the lesion maps");
    for (size_t i = 0; i < count; i++)
        b->lesion[i] = lesion->pixels[i] ? 1.0f : 0.0f;
    memcpy(b->ring, b->lesion, count * sizeof(float));
    /* A soft edge for the lesion, a few pixels of halo for the pleural line. */
    box_blur(b->lesion, b->tmp, n, 1, 1);
    box_blur(b->ring, b->tmp, n, 2, 2);
    for (size_t i = 0; i < count; i++)
        b->ring[i] = lesion->pixels[i] ? 0.0f : (float)clamp01(2.5 * b->ring[i]);
    return 0;
}

int pnx_chest_render(const pnx_chest_frame *f, const pnx_image *lesion,
                     const pnx_ptx_look *look, uint64_t noise_seed, pnx_image *out)
{
    uint32_t n = f->size;
    if (!out || out->width != n || out->height != n || !out->pixels)
        return pnx_fail(PNX_EINVAL, "render: output image must be %u x %u", n, n);
    if (lesion && (lesion->width != n || lesion->height != n || !look))
        return pnx_fail(PNX_EINVAL, "render: lesion mask must be %u x %u with a look", n, n);

    size_t count = (size_t)n * n;
    buffers b = {0};
    b.vessels = calloc(count, sizeof(float));
    b.fine = malloc(count * sizeof(float));
    b.coarse = malloc(count * sizeof(float));
    b.grey = malloc(count * sizeof(float));
    b.tmp = malloc(count * sizeof(float));
    b.devices = calloc(count, sizeof(float));
    if (!b.vessels || !b.fine || !b.coarse || !b.grey || !b.tmp || !b.devices) {
        free_buffers(&b);
        return pnx_fail(PNX_ENOMEM, "out of memory for a %u x %u picture", n, n);
    }
    if (lesion) {
        int rc = prepare_lesion(lesion, &b, n);
        if (rc < 0) {
            free_buffers(&b);
            return rc;
        }
    }

    pnx_rng rng;
    draw_vessels(f, b.vessels);
    /* Vessels are blurred by the lung around them and by the focal spot. */
    box_blur(b.vessels, b.tmp, n, 1, 1);
    pnx_rng_seed(&rng, noise_seed, STREAM_DEVICES);
    draw_devices(f, &rng, b.devices);
    pnx_rng_seed(&rng, noise_seed, STREAM_BOWEL);
    place_bowel_gas(f, &rng, &b);
    pnx_rng_seed(&rng, f->anatomy.texture_seed, STREAM_TEXTURE);
    smooth_noise(&rng, b.fine, b.tmp, n, 2);
    smooth_noise(&rng, b.coarse, b.tmp, n, 7);

    for (uint32_t y = 0; y < n; y++) {
        for (uint32_t x = 0; x < n; x++) {
            double p, q;
            pnx_chest_pixel_to_anatomy(f, x, y, &p, &q);
            size_t idx = (size_t)y * n + x;
            double att = attenuation(f, &b, look, idx, p, q) + b.devices[idx];
            if (att < 0)
                att = 0;
            b.grey[idx] = (float)(255.0 * (1.0 - exp(-f->pose.exposure * att)));
        }
    }

    /* Edge enhancement: grey + gain × (grey − blurred grey). */
    memcpy(b.fine, b.grey, count * sizeof(float));
    box_blur(b.fine, b.tmp, n, UNSHARP_RADIUS, 3);
    pnx_rng_seed(&rng, noise_seed, STREAM_NOISE);
    for (size_t i = 0; i < count; i++) {
        double v = b.grey[i] + UNSHARP_GAIN * (b.grey[i] - b.fine[i]);
        v += f->pose.noise_sigma * pnx_rng_normal(&rng);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out->pixels[i] = (uint8_t)lround(v);
    }
    free_buffers(&b);
    return 0;
}
