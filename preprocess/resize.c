/*
 * preprocess/resize.c — area-average / bilinear square resize; see resize.h.
 *
 * Each axis gets a table of integer weights with one common denominator, so
 * the whole resize is exact integer arithmetic: a shrink's weights are the
 * overlaps of source and target pixels measured in 1/target-size units
 * (they add up to the source size), a bilinear enlargement's are the
 * distances to the two neighbouring centres in 1/(2 × target-size) units.
 * The result equals the real-valued area average or bilinear value rounded
 * half up, with no floating-point drift between machines.
 */
#include "preprocess/resize.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* How one axis maps target index o to source indices first[o] … first[o] +
 * taps - 1 with weights weight[o * taps + k] (zero past the last used tap). */
typedef struct axis_map {
    uint32_t taps;
    uint64_t den;       /* every row of weights adds up to den */
    uint32_t *first;
    uint32_t *used;     /* taps of target o holding weight, inside the source */
    uint32_t *weight;   /* ≤ 2 · 65535 each */
} axis_map;

typedef enum axis_mode { AXIS_SMOOTH, AXIS_NEAREST } axis_mode;

static void axis_free(axis_map *a)
{
    free(a->first);
    free(a->used);
    free(a->weight);
    a->first = NULL;
    a->used = NULL;
    a->weight = NULL;
}

static int axis_alloc(axis_map *a, uint32_t dst_n, uint32_t taps)
{
    a->taps = taps;
    a->first = calloc(dst_n, sizeof *a->first);
    a->used = calloc(dst_n, sizeof *a->used);
    a->weight = calloc((size_t)dst_n * taps, sizeof *a->weight);
    if (!a->first || !a->used || !a->weight) {
        axis_free(a);
        return pnx_fail(PNX_ENOMEM, "resize: out of memory for %u weights", dst_n);
    }
    return 0;
}

/* Exact area overlap of target pixel o, i.e. [o·n, (o+1)·n), with source
 * pixel j, i.e. [j·m, (j+1)·m), in units of 1/m source pixels. */
static int axis_shrink(axis_map *a, uint32_t n, uint32_t m)
{
    uint32_t taps = (n + m - 1) / m + 1;
    int rc = axis_alloc(a, m, taps);
    if (rc)
        return rc;
    a->den = n;
    for (uint32_t o = 0; o < m; o++) {
        uint64_t lo = (uint64_t)o * n, hi = (uint64_t)(o + 1) * n;
        uint32_t j = (uint32_t)(lo / m);
        a->first[o] = j;
        for (uint32_t k = 0; (uint64_t)j * m < hi && j < n; k++, j++) {
            uint64_t s_lo = (uint64_t)j * m, s_hi = s_lo + m;
            uint64_t from = s_lo > lo ? s_lo : lo, to = s_hi < hi ? s_hi : hi;
            a->weight[(size_t)o * taps + k] = (uint32_t)(to - from);
        }
    }
    return 0;
}

/* Bilinear between the centres around target o's centre, which lies at
 * source coordinate ((2o + 1)·n − m) / (2m) (half-pixel convention);
 * positions before the first or after the last centre take the edge pixel. */
static int axis_enlarge(axis_map *a, uint32_t n, uint32_t m)
{
    int rc = axis_alloc(a, m, 2);
    if (rc)
        return rc;
    uint64_t den = 2 * (uint64_t)m;
    a->den = den;
    for (uint32_t o = 0; o < m; o++) {
        int64_t pos = (int64_t)(2 * (uint64_t)o + 1) * n - m;
        uint32_t *w = &a->weight[(size_t)o * 2];
        if (pos <= 0) {
            a->first[o] = 0;
            w[0] = (uint32_t)den;
            continue;
        }
        uint64_t j = (uint64_t)pos / den, frac = (uint64_t)pos % den;
        if (j >= (uint64_t)n - 1) {
            a->first[o] = n - 1;
            w[0] = (uint32_t)den;
            continue;
        }
        a->first[o] = (uint32_t)j;
        w[0] = (uint32_t)(den - frac);
        w[1] = (uint32_t)frac;
    }
    return 0;
}

/* The source pixel containing target o's centre, (2o + 1)·n / (2m). */
static int axis_nearest(axis_map *a, uint32_t n, uint32_t m)
{
    int rc = axis_alloc(a, m, 1);
    if (rc)
        return rc;
    a->den = 1;
    for (uint32_t o = 0; o < m; o++) {
        uint64_t j = (2 * (uint64_t)o + 1) * n / (2 * (uint64_t)m);
        a->first[o] = (uint32_t)(j < n ? j : n - 1);
        a->weight[o] = 1;
    }
    return 0;
}

static int axis_build(axis_map *a, uint32_t n, uint32_t m, axis_mode enlarge_mode)
{
    int rc;
    if (m < n)
        rc = axis_shrink(a, n, m);
    else if (m > n && enlarge_mode == AXIS_SMOOTH)
        rc = axis_enlarge(a, n, m);
    else
        rc = axis_nearest(a, n, m); /* m == n is the identity here */
    if (rc)
        return rc;
    /* Trailing zero weights and taps past the source edge are dropped once. */
    for (uint32_t o = 0; o < m; o++) {
        uint32_t taps = a->taps, avail = n - a->first[o];
        if (taps > avail)
            taps = avail;
        while (taps > 0 && a->weight[(size_t)o * a->taps + taps - 1] == 0)
            taps--;
        a->used[o] = taps;
    }
    return 0;
}

static int check_args(const pnx_image *src, uint32_t width, uint32_t height,
                      const pnx_image *dst)
{
    if (!src || !dst || !src->pixels)
        return pnx_fail(PNX_EINVAL, "resize: no source image");
    if (src->width < 1 || src->height < 1 || src->width > PNX_IMAGE_MAX_SIDE ||
        src->height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "resize: source size %ux%u out of range",
                        src->width, src->height);
    if (width < 1 || height < 1 || width > PNX_IMAGE_MAX_SIDE || height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "resize: target size %ux%u out of range", width, height);
    return 0;
}

/* Horizontal pass over every source row: rows[y·W + ox] = Σ wx · v, where v
 * is the pixel or (pixel != 0). Fits in 32 bits: Σ wx ≤ 2 · 65535 and v ≤ 255. */
static void horizontal_pass(const pnx_image *src, const axis_map *ax, uint32_t width,
                            int binary, uint32_t *rows)
{
    for (uint32_t y = 0; y < src->height; y++) {
        const uint8_t *line = src->pixels + (size_t)y * src->width;
        uint32_t *dst = rows + (size_t)y * width;
        for (uint32_t ox = 0; ox < width; ox++) {
            const uint32_t *w = &ax->weight[(size_t)ox * ax->taps];
            const uint8_t *s = line + ax->first[ox];
            uint32_t taps = ax->used[ox], acc = 0;
            if (binary)
                for (uint32_t k = 0; k < taps; k++)
                    acc += w[k] * (s[k] != 0);
            else
                for (uint32_t k = 0; k < taps; k++)
                    acc += w[k] * s[k];
            dst[ox] = acc;
        }
    }
}

/* Weighted sums over the footprint of every target pixel:
 * out[oy·W + ox] = Σ wy·wx·value(src), value = pixel or (pixel != 0). */
static int weighted_sums(const pnx_image *src, const axis_map *ax, const axis_map *ay,
                         uint32_t width, uint32_t height, int binary, uint64_t *out)
{
    uint32_t *rows = malloc((size_t)src->height * width * sizeof *rows);
    if (!rows)
        return pnx_fail(PNX_ENOMEM, "resize: out of memory for %ux%u sums",
                        width, src->height);
    horizontal_pass(src, ax, width, binary, rows);
    for (uint32_t oy = 0; oy < height; oy++) {
        const uint32_t *w = &ay->weight[(size_t)oy * ay->taps];
        uint32_t first = ay->first[oy], taps = ay->used[oy];
        uint64_t *dst = out + (size_t)oy * width;
        for (uint32_t ox = 0; ox < width; ox++)
            dst[ox] = 0;
        for (uint32_t k = 0; k < taps; k++) {
            const uint64_t wk = w[k];
            const uint32_t *s = rows + (size_t)(first + k) * width;
            for (uint32_t ox = 0; ox < width; ox++)
                dst[ox] += wk * s[ox];
        }
    }
    free(rows);
    return 0;
}

static int resize_generic(const pnx_image *src, uint32_t width, uint32_t height,
                          axis_mode enlarge_mode, int is_mask, pnx_mask_rule rule,
                          pnx_image *dst)
{
    int rc = check_args(src, width, height, dst);
    if (rc)
        return rc;
    axis_map ax = {0}, ay = {0};
    pnx_image out = {0};
    uint64_t *sums = NULL;
    if ((rc = axis_build(&ax, src->width, width, enlarge_mode)) ||
        (rc = axis_build(&ay, src->height, height, enlarge_mode)))
        goto done;
    sums = malloc((size_t)width * height * sizeof *sums);
    if (!sums) {
        rc = pnx_fail(PNX_ENOMEM, "resize: out of memory for %ux%u", width, height);
        goto done;
    }
    if ((rc = weighted_sums(src, &ax, &ay, width, height, is_mask, sums)))
        goto done;
    if ((rc = pnx_image_alloc(&out, width, height)))
        goto done;
    uint64_t den = ax.den * ay.den;
    size_t n = (size_t)width * height;
    /* Rounded division by a reciprocal, corrected to the exact quotient
     * (a 64-bit division per pixel costs more than the whole resize). */
    const uint64_t divisor = 2 * den;
    const double inverse = 1.0 / (double)divisor;
    for (size_t i = 0; i < n; i++) {
        if (!is_mask) {
            uint64_t num = 2 * sums[i] + den;
            uint64_t v = (uint64_t)((double)num * inverse);
            while (v > 0 && v * divisor > num)
                v--;
            while ((v + 1) * divisor <= num)
                v++;
            out.pixels[i] = (uint8_t)(v > 255 ? 255 : v);
        } else if (rule == PNX_MASK_ANY) {
            out.pixels[i] = sums[i] > 0;
        } else {
            out.pixels[i] = 2 * sums[i] >= den;
        }
    }
    *dst = out;
done:
    free(sums);
    axis_free(&ax);
    axis_free(&ay);
    return rc;
}

int pnx_resize_image_to(const pnx_image *src, uint32_t width, uint32_t height,
                        pnx_image *dst)
{
    return resize_generic(src, width, height, AXIS_SMOOTH, 0, PNX_MASK_ANY, dst);
}

int pnx_resize_mask_to(const pnx_image *src, uint32_t width, uint32_t height,
                       pnx_mask_rule rule, pnx_image *dst)
{
    if (rule != PNX_MASK_ANY && rule != PNX_MASK_MAJORITY)
        return pnx_fail(PNX_EINVAL, "resize: unknown mask rule %d", (int)rule);
    return resize_generic(src, width, height, AXIS_NEAREST, 1, rule, dst);
}

int pnx_resize_image(const pnx_image *src, uint32_t side, pnx_image *dst)
{
    return pnx_resize_image_to(src, side, side, dst);
}

int pnx_resize_mask(const pnx_image *src, uint32_t side, pnx_mask_rule rule,
                    pnx_image *dst)
{
    return pnx_resize_mask_to(src, side, side, rule, dst);
}
