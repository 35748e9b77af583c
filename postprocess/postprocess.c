/*
 * postprocess/postprocess.c — probability map → native-size mask; see
 * postprocess.h for the rule.
 */
#include "postprocess/postprocess.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* Where one destination column or row samples the source: two neighbours
 * and the weight of the second. */
typedef struct axis_tap {
    uint32_t lo;
    uint32_t hi;
    float w_hi;
} axis_tap;

/* Half-pixel centres: destination pixel d samples source coordinate
 * (d + 0.5) * src / dst - 0.5, clamped to the first and last pixels. */
static axis_tap axis_tap_at(uint32_t d, uint32_t src_len, uint32_t dst_len)
{
    axis_tap t;
    double s = ((double)d + 0.5) * (double)src_len / (double)dst_len - 0.5;
    if (s < 0.0)
        s = 0.0;
    t.lo = (uint32_t)s;
    if (t.lo > src_len - 1)
        t.lo = src_len - 1;
    t.hi = t.lo + 1 < src_len ? t.lo + 1 : src_len - 1;
    t.w_hi = (float)(s - (double)t.lo);
    /* On an exact source pixel the neighbour must not count at all, not
     * even as NaN * 0: a same-size resize is then the identity. */
    if (t.hi == t.lo || t.w_hi == 0.0f) {
        t.hi = t.lo;
        t.w_hi = 0.0f;
    }
    return t;
}

static int check_probmap(const pnx_probmap *prob)
{
    if (!prob || !prob->values)
        return pnx_fail(PNX_EINVAL, "probability map: no values");
    if (prob->width == 0 || prob->height == 0 || prob->width > PNX_IMAGE_MAX_SIDE ||
        prob->height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_ERANGE, "probability map: size %ux%u out of range", prob->width,
                        prob->height);
    return 0;
}

static int check_size(uint32_t w, uint32_t h)
{
    if (w == 0 || h == 0 || w > PNX_IMAGE_MAX_SIDE || h > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_ERANGE, "target size %ux%u out of range", w, h);
    return 0;
}

/* One row of the resized map. cols holds dst_width taps. */
static void resize_row(const pnx_probmap *src, const axis_tap *cols, uint32_t dst_width,
                       axis_tap row, float *out)
{
    const float *r0 = src->values + (size_t)row.lo * src->width;
    const float *r1 = src->values + (size_t)row.hi * src->width;
    float wy = row.w_hi;
    for (uint32_t x = 0; x < dst_width; x++) {
        axis_tap c = cols[x];
        float top = r0[c.lo] + (r0[c.hi] - r0[c.lo]) * c.w_hi;
        float bottom = r1[c.lo] + (r1[c.hi] - r1[c.lo]) * c.w_hi;
        out[x] = top + (bottom - top) * wy;
    }
}

static axis_tap *column_taps(uint32_t src_width, uint32_t dst_width)
{
    axis_tap *cols = malloc((size_t)dst_width * sizeof *cols);
    if (!cols)
        return NULL;
    for (uint32_t x = 0; x < dst_width; x++)
        cols[x] = axis_tap_at(x, src_width, dst_width);
    return cols;
}

int pnx_probmap_resize_bilinear(const pnx_probmap *src, float *dst, uint32_t dst_width,
                                uint32_t dst_height)
{
    int rc = check_probmap(src);
    if (rc)
        return rc;
    if ((rc = check_size(dst_width, dst_height)))
        return rc;
    if (!dst)
        return pnx_fail(PNX_EINVAL, "resize: no destination");
    axis_tap *cols = column_taps(src->width, dst_width);
    if (!cols)
        return pnx_fail(PNX_ENOMEM, "resize: out of memory for %u column taps", dst_width);
    for (uint32_t y = 0; y < dst_height; y++)
        resize_row(src, cols, dst_width, axis_tap_at(y, src->height, dst_height),
                   dst + (size_t)y * dst_width);
    free(cols);
    return 0;
}

void pnx_probmap_average_hflip(float *values, const float *flipped, uint32_t width,
                               uint32_t height)
{
    for (uint32_t y = 0; y < height; y++) {
        float *row = values + (size_t)y * width;
        const float *frow = flipped + (size_t)y * width;
        for (uint32_t x = 0; x < width; x++)
            row[x] = 0.5f * (row[x] + frow[width - 1 - x]);
    }
}

int pnx_postprocess_params_check(const pnx_postprocess_params *p)
{
    if (!p)
        return pnx_fail(PNX_EINVAL, "postprocess: no parameters");
    if (!isfinite(p->threshold))
        return pnx_fail(PNX_EINVAL, "postprocess: threshold is not a finite number");
    if (p->min_component_area < 0)
        return pnx_fail(PNX_EINVAL, "postprocess: min_component_area %lld is negative",
                        (long long)p->min_component_area);
    if (p->triplet_enabled) {
        if (!isfinite(p->top_threshold) || !isfinite(p->bottom_threshold))
            return pnx_fail(PNX_EINVAL, "postprocess: triplet thresholds must be finite");
        if (p->triplet_min_area < 0)
            return pnx_fail(PNX_EINVAL, "postprocess: triplet min_area %lld is negative",
                            (long long)p->triplet_min_area);
    }
    return 0;
}

int pnx_postprocess_settings_text(const pnx_postprocess_params *p, char *out, size_t size)
{
    if (!p)
        return pnx_fail(PNX_EINVAL, "postprocess: no parameters");
    if (!p->triplet_enabled)
        return snprintf(out, size, "pp1;threshold=%.17g;min_component_area=%lld;triplet=0",
                        p->threshold, (long long)p->min_component_area);
    return snprintf(out, size,
                    "pp1;threshold=%.17g;min_component_area=%lld;triplet=1;top=%.17g;"
                    "min_area=%lld;bottom=%.17g",
                    p->threshold, (long long)p->min_component_area, p->top_threshold,
                    (long long)p->triplet_min_area, p->bottom_threshold);
}

/* Marks used while labelling in place: foreground not yet visited is 1. */
enum { MARK_SEEN = 2 };

int pnx_mask_remove_small_components(pnx_image *mask, int64_t min_area, int64_t *kept,
                                     int64_t *removed)
{
    if (!mask || !mask->pixels)
        return pnx_fail(PNX_EINVAL, "component removal: no mask");
    const uint32_t w = mask->width, h = mask->height;
    const size_t n = pnx_image_size(mask);
    uint8_t *px = mask->pixels;
    size_t foreground = 0;
    for (size_t i = 0; i < n; i++) {
        if (px[i] > 1)
            return pnx_fail(PNX_EINVAL, "component removal: mask value %u at pixel %zu is not 0/1",
                            px[i], i);
        foreground += px[i];
    }
    int64_t n_kept = 0, n_removed = 0;
    if (foreground > 0) {
        /* Each foreground pixel enters the queue once, so one component's
         * pixels are a contiguous slice of it once its search ends. */
        uint32_t *queue = malloc(foreground * sizeof *queue);
        if (!queue)
            return pnx_fail(PNX_ENOMEM, "component removal: out of memory for %zu pixels",
                            foreground);
        for (size_t seed = 0; seed < n; seed++) {
            if (px[seed] != 1)
                continue;
            size_t head = 0, tail = 0;
            queue[tail++] = (uint32_t)seed;
            px[seed] = MARK_SEEN;
            while (head < tail) {
                uint32_t p = queue[head++];
                uint32_t x = p % w, y = p / w;
                uint32_t x_lo = x > 0 ? x - 1 : 0, x_hi = x + 1 < w ? x + 1 : x;
                uint32_t y_lo = y > 0 ? y - 1 : 0, y_hi = y + 1 < h ? y + 1 : y;
                for (uint32_t ny = y_lo; ny <= y_hi; ny++) {
                    for (uint32_t nx = x_lo; nx <= x_hi; nx++) {
                        size_t q = (size_t)ny * w + nx;
                        if (px[q] == 1) {
                            px[q] = MARK_SEEN;
                            queue[tail++] = (uint32_t)q;
                        }
                    }
                }
            }
            /* tail counts this component only: the queue restarts per seed. */
            if ((int64_t)tail < min_area) {
                for (size_t i = 0; i < tail; i++)
                    px[queue[i]] = 0;
                n_removed++;
            } else {
                n_kept++;
            }
        }
        free(queue);
        for (size_t i = 0; i < n; i++)
            px[i] = px[i] == MARK_SEEN;
    }
    if (kept)
        *kept = n_kept;
    if (removed)
        *removed = n_removed;
    return 0;
}

int pnx_postprocess_probmap(const pnx_probmap *prob, uint32_t native_width,
                            uint32_t native_height, const pnx_postprocess_params *params,
                            pnx_image *mask, pnx_postprocess_result *result)
{
    int rc;
    if (!mask)
        return pnx_fail(PNX_EINVAL, "postprocess: no mask");
    if ((rc = check_probmap(prob)) || (rc = check_size(native_width, native_height)) ||
        (rc = pnx_postprocess_params_check(params)))
        return rc;

    axis_tap *cols = column_taps(prob->width, native_width);
    float *row = malloc((size_t)native_width * sizeof *row);
    if (!cols || !row) {
        free(cols);
        free(row);
        return pnx_fail(PNX_ENOMEM, "postprocess: out of memory for a %u-pixel row", native_width);
    }
    if ((rc = pnx_image_alloc(mask, native_width, native_height))) {
        free(cols);
        free(row);
        return pnx_fail_prefix(rc, "postprocess");
    }

    const int triplet = params->triplet_enabled != 0;
    const float cut = (float)(triplet ? params->bottom_threshold : params->threshold);
    const float top = (float)params->top_threshold;
    float max_p = -INFINITY;
    int64_t above_top = 0;
    for (uint32_t y = 0; y < native_height; y++) {
        resize_row(prob, cols, native_width, axis_tap_at(y, prob->height, native_height), row);
        uint8_t *out = mask->pixels + (size_t)y * native_width;
        for (uint32_t x = 0; x < native_width; x++) {
            float p = row[x];
            out[x] = p > cut;
            if (p > max_p)
                max_p = p;
            above_top += triplet && p > top;
        }
    }
    free(cols);
    free(row);

    if (triplet && above_top < params->triplet_min_area)
        memset(mask->pixels, 0, pnx_image_size(mask));

    int64_t kept = 0, removed = 0;
    if ((rc = pnx_mask_remove_small_components(mask, params->min_component_area, &kept,
                                               &removed))) {
        pnx_image_free(mask);
        return pnx_fail_prefix(rc, "postprocess");
    }
    if (result) {
        int64_t count = 0;
        for (size_t i = 0, n = pnx_image_size(mask); i < n; i++)
            count += mask->pixels[i];
        result->max_probability = max_p == -INFINITY ? 0.0f : max_p;
        result->mask_pixels = count;
        result->components_kept = kept;
        result->components_removed = removed;
        result->positive = count > 0;
    }
    return 0;
}
