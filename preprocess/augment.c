/* preprocess/augment.c — training-time augmentation; see augment.h. */
#include "preprocess/augment.h"

#include <math.h>
#include <stddef.h>

#include "common/error.h"

#define GREY_LEVELS 256

static int check_range(const char *name, double v, double hi)
{
    if (!(v >= 0.0 && v <= hi))
        return pnx_fail(PNX_ERANGE, "augment %s: %g is outside 0..%g", name, v, hi);
    return PNX_OK;
}

int pnx_augment_params_check(const pnx_augment_params *p)
{
    if (!p)
        return pnx_fail(PNX_EINVAL, "augment: no parameters");
    int rc;
    if ((rc = check_range("hflip", p->hflip, 1.0)) || (rc = check_range("shift", p->shift, 0.5)) ||
        (rc = check_range("scale", p->scale, 0.5)) ||
        (rc = check_range("rotate_deg", p->rotate_deg, 180.0)) ||
        (rc = check_range("brightness", p->brightness, 1.0)) ||
        (rc = check_range("contrast", p->contrast, 1.0)) ||
        (rc = check_range("gamma", p->gamma, 1.0)))
        return rc;
    return PNX_OK;
}

void pnx_augment_identity(pnx_augment_transform *t)
{
    *t = (pnx_augment_transform){
        .hflip = 0, .shift_x = 0.0, .shift_y = 0.0, .scale = 1.0, .angle_deg = 0.0,
        .brightness = 0.0, .contrast = 1.0, .gamma = 1.0,
    };
}

/* Uniform in [-1, 1). */
static double symmetric_unit(pnx_rng *rng)
{
    return 2.0 * pnx_rng_uniform(rng) - 1.0;
}

int pnx_augment_draw(const pnx_augment_params *p, uint32_t width, uint32_t height, pnx_rng *rng,
                     pnx_augment_transform *t)
{
    int rc = pnx_augment_params_check(p);
    if (rc)
        return rc;
    if (!rng || !t || width == 0 || height == 0)
        return pnx_fail(PNX_EINVAL, "augment: bad arguments to draw");
    /* All eight draws happen whatever is enabled, in this order, so one
     * part's values never depend on which other parts are on. */
    double u_flip = pnx_rng_uniform(rng);
    double u_shift_x = symmetric_unit(rng);
    double u_shift_y = symmetric_unit(rng);
    double u_scale = symmetric_unit(rng);
    double u_angle = symmetric_unit(rng);
    double u_brightness = symmetric_unit(rng);
    double u_contrast = symmetric_unit(rng);
    double u_gamma = symmetric_unit(rng);

    pnx_augment_identity(t);
    t->hflip = u_flip < p->hflip;
    t->shift_x = u_shift_x * p->shift * (double)width;
    t->shift_y = u_shift_y * p->shift * (double)height;
    t->scale = 1.0 + u_scale * p->scale;
    t->angle_deg = u_angle * p->rotate_deg;
    t->brightness = u_brightness * p->brightness;
    t->contrast = 1.0 + u_contrast * p->contrast;
    t->gamma = fmax(1.0 + u_gamma * p->gamma, PNX_AUGMENT_MIN_GAMMA);
    return PNX_OK;
}

static int is_photometric_identity(const pnx_augment_transform *t)
{
    return t->brightness == 0.0 && t->contrast == 1.0 && t->gamma == 1.0;
}

/* Grey level → augmented intensity. With the identity it is exactly v/255
 * in float, the value an unaugmented pipeline feeds the network. */
static void build_intensity_table(const pnx_augment_transform *t, float table[GREY_LEVELS])
{
    int identity = is_photometric_identity(t);
    for (int v = 0; v < GREY_LEVELS; v++) {
        if (identity) {
            table[v] = (float)v / 255.0f;
            continue;
        }
        double x = ((double)v / 255.0 - 0.5) * t->contrast + 0.5 + t->brightness;
        x = fmin(fmax(x, 0.0), 1.0);
        x = pow(x, t->gamma);
        table[v] = (float)fmin(fmax(x, 0.0), 1.0);
    }
}

static int is_geometric_identity(const pnx_augment_transform *t)
{
    return !t->hflip && t->shift_x == 0.0 && t->shift_y == 0.0 && t->scale == 1.0 &&
           t->angle_deg == 0.0;
}

/* The inverse of the geometric map: for an output pixel, where in the
 * source it comes from. Forward, a source point p (relative to the centre c,
 * after the optional mirror) goes to c + scale·R·p + shift, with R rotating
 * counter-clockwise on screen (y points down). */
typedef struct inverse_map {
    double cx, cy;
    double a, b, c, d; /* R^T / scale */
    double shift_x, shift_y;
    int hflip;
    uint32_t width;
} inverse_map;

static void inverse_map_init(inverse_map *im, const pnx_augment_transform *t, uint32_t width,
                             uint32_t height)
{
    const double pi = 3.14159265358979323846;
    double theta = t->angle_deg * pi / 180.0;
    double cs = t->angle_deg == 0.0 ? 1.0 : cos(theta);
    double sn = t->angle_deg == 0.0 ? 0.0 : sin(theta);
    im->cx = ((double)width - 1.0) / 2.0;
    im->cy = ((double)height - 1.0) / 2.0;
    im->a = cs / t->scale;
    im->b = -sn / t->scale;
    im->c = sn / t->scale;
    im->d = cs / t->scale;
    im->shift_x = t->shift_x;
    im->shift_y = t->shift_y;
    im->hflip = t->hflip;
    im->width = width;
}

static void inverse_map_apply(const inverse_map *im, double x, double y, double *sx, double *sy)
{
    double dx = x - im->cx - im->shift_x;
    double dy = y - im->cy - im->shift_y;
    double px = im->a * dx + im->b * dy + im->cx;
    double py = im->c * dx + im->d * dy + im->cy;
    *sx = im->hflip ? ((double)im->width - 1.0) - px : px;
    *sy = py;
}

/* Source value at integer (x, y), 0 outside. */
static double grey_at(const uint8_t *image, const float table[GREY_LEVELS], uint32_t width,
                      uint32_t height, long x, long y)
{
    if (x < 0 || y < 0 || x >= (long)width || y >= (long)height)
        return 0.0;
    return table[image[(size_t)y * width + (size_t)x]];
}

static float bilinear(const uint8_t *image, const float table[GREY_LEVELS], uint32_t width,
                      uint32_t height, double sx, double sy)
{
    if (sx <= -1.0 || sy <= -1.0 || sx >= (double)width || sy >= (double)height)
        return 0.0f;
    double fx0 = floor(sx), fy0 = floor(sy);
    long x0 = (long)fx0, y0 = (long)fy0;
    double fx = sx - fx0, fy = sy - fy0;
    double v = (1.0 - fx) * (1.0 - fy) * grey_at(image, table, width, height, x0, y0) +
               fx * (1.0 - fy) * grey_at(image, table, width, height, x0 + 1, y0) +
               (1.0 - fx) * fy * grey_at(image, table, width, height, x0, y0 + 1) +
               fx * fy * grey_at(image, table, width, height, x0 + 1, y0 + 1);
    return (float)v;
}

static float nearest_mask(const uint8_t *mask, uint32_t width, uint32_t height, double sx,
                          double sy)
{
    double rx = floor(sx + 0.5), ry = floor(sy + 0.5);
    if (rx < 0.0 || ry < 0.0 || rx >= (double)width || ry >= (double)height)
        return 0.0f;
    return mask[(size_t)ry * width + (size_t)rx] ? 1.0f : 0.0f;
}

int pnx_augment_apply(const pnx_augment_transform *t, const uint8_t *image, const uint8_t *mask,
                      uint32_t width, uint32_t height, float *image_out, float *mask_out)
{
    if (!t || !image || !image_out || width == 0 || height == 0 || (!mask) != (!mask_out))
        return pnx_fail(PNX_EINVAL, "augment: bad arguments to apply");
    if (!(t->scale > 0.0) || !(t->gamma > 0.0) || !isfinite(t->shift_x) ||
        !isfinite(t->shift_y) || !isfinite(t->angle_deg) || !isfinite(t->brightness) ||
        !isfinite(t->contrast))
        return pnx_fail(PNX_ERANGE, "augment: transform out of range (scale %g, gamma %g)",
                        t->scale, t->gamma);
    float table[GREY_LEVELS];
    build_intensity_table(t, table);
    size_t n = (size_t)width * height;

    if (is_geometric_identity(t)) {
        for (size_t i = 0; i < n; i++)
            image_out[i] = table[image[i]];
        if (mask)
            for (size_t i = 0; i < n; i++)
                mask_out[i] = mask[i] ? 1.0f : 0.0f;
        return PNX_OK;
    }

    inverse_map im;
    inverse_map_init(&im, t, width, height);
    for (uint32_t y = 0; y < height; y++)
        for (uint32_t x = 0; x < width; x++) {
            double sx, sy;
            inverse_map_apply(&im, (double)x, (double)y, &sx, &sy);
            size_t o = (size_t)y * width + x;
            image_out[o] = bilinear(image, table, width, height, sx, sy);
            if (mask)
                mask_out[o] = nearest_mask(mask, width, height, sx, sy);
        }
    return PNX_OK;
}
