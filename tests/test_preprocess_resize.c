/*
 * tests/test_preprocess_resize.c — preprocess/resize.h against hand-computed
 * values and against a brute-force real-valued area / bilinear reference.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/image.h"
#include "common/rng.h"
#include "preprocess/resize.h"

static pnx_image make_image(uint32_t w, uint32_t h, const uint8_t *values)
{
    pnx_image img = {0};
    assert_int_equal(pnx_image_alloc(&img, w, h), 0);
    if (values)
        memcpy(img.pixels, values, (size_t)w * h);
    return img;
}

static pnx_image random_image(pnx_rng *rng, uint32_t w, uint32_t h, unsigned modulus)
{
    pnx_image img = make_image(w, h, NULL);
    for (size_t i = 0; i < pnx_image_size(&img); i++)
        img.pixels[i] = (uint8_t)pnx_rng_below(rng, modulus);
    return img;
}

/* ---- the reference: one axis's real-valued weights, computed directly ---- */

/* Weight of source pixel j in target pixel o of an n → m axis. */
static double ref_weight(uint32_t n, uint32_t m, uint32_t o, uint32_t j, int mask)
{
    if (m < n) {
        double lo = (double)o * n / m, hi = (double)(o + 1) * n / m;
        double from = fmax(lo, (double)j), to = fmin(hi, (double)j + 1);
        return to > from ? (to - from) / ((double)n / m) : 0.0;
    }
    if (m == n)
        return o == j ? 1.0 : 0.0;
    double centre = ((double)o + 0.5) * n / m;
    if (mask)
        return (uint32_t)floor(centre) == j ? 1.0 : 0.0;
    double pos = centre - 0.5;
    if (pos <= 0)
        return j == 0 ? 1.0 : 0.0;
    if (pos >= n - 1)
        return j == n - 1 ? 1.0 : 0.0;
    uint32_t j0 = (uint32_t)floor(pos);
    double f = pos - j0;
    return j == j0 ? 1.0 - f : (j == j0 + 1 ? f : 0.0);
}

/* Brute force over the whole source for each target pixel. */
static double ref_value(const pnx_image *src, uint32_t w, uint32_t h, uint32_t ox,
                        uint32_t oy, int mask)
{
    double acc = 0;
    for (uint32_t y = 0; y < src->height; y++) {
        double wy = ref_weight(src->height, h, oy, y, mask);
        if (wy == 0)
            continue;
        for (uint32_t x = 0; x < src->width; x++) {
            double wx = ref_weight(src->width, w, ox, x, mask);
            uint8_t v = src->pixels[(size_t)y * src->width + x];
            acc += wx * wy * (mask ? (v != 0) : v);
        }
    }
    return acc;
}

static void check_image_against_reference(const pnx_image *src, uint32_t w, uint32_t h)
{
    pnx_image out = {0};
    assert_int_equal(pnx_resize_image_to(src, w, h, &out), 0);
    assert_int_equal(out.width, w);
    assert_int_equal(out.height, h);
    for (uint32_t oy = 0; oy < h; oy++)
        for (uint32_t ox = 0; ox < w; ox++) {
            double r = ref_value(src, w, h, ox, oy, 0);
            int got = out.pixels[(size_t)oy * w + ox];
            int expect = (int)floor(r + 0.5);
            double frac = r - floor(r);
            if (fabs(frac - 0.5) < 1e-9) /* a tie: the double reference may sit on either side */
                assert_true(fabs(got - r) < 0.5 + 1e-6);
            else if (got != expect)
                fail_msg("%ux%u -> %ux%u at (%u,%u): got %d, reference %.6f",
                         src->width, src->height, w, h, ox, oy, got, r);
        }
    pnx_image_free(&out);
}

static void check_mask_against_reference(const pnx_image *src, uint32_t w, uint32_t h,
                                         pnx_mask_rule rule)
{
    pnx_image out = {0};
    assert_int_equal(pnx_resize_mask_to(src, w, h, rule, &out), 0);
    for (uint32_t oy = 0; oy < h; oy++)
        for (uint32_t ox = 0; ox < w; ox++) {
            double cover = ref_value(src, w, h, ox, oy, 1);
            int got = out.pixels[(size_t)oy * w + ox];
            int expect = rule == PNX_MASK_ANY ? cover > 1e-12 : cover >= 0.5 - 1e-12;
            if (got != expect)
                fail_msg("mask %ux%u -> %ux%u at (%u,%u): got %d, coverage %.6f",
                         src->width, src->height, w, h, ox, oy, got, cover);
        }
    pnx_image_free(&out);
}

/* ---- hand-computed values ---------------------------------------------- */

static void test_block_average_4_to_2(void **state)
{
    (void)state;
    const uint8_t v[16] = {1, 2, 10, 20,     /* */
                           3, 4, 30, 40,     /* */
                           0, 0, 255, 255,   /* */
                           0, 1, 255, 254};
    pnx_image src = make_image(4, 4, v), out = {0};
    assert_int_equal(pnx_resize_image(&src, 2, &out), 0);
    /* means 2.5, 25, 0.25, 254.75: rounded half up */
    const uint8_t expect[4] = {3, 25, 0, 255};
    assert_memory_equal(out.pixels, expect, 4);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_fractional_area_3_to_2(void **state)
{
    (void)state;
    /* Target 0 covers source [0, 1.5): (0 + 0.5·90) / 1.5 = 30;
     * target 1 covers [1.5, 3): (0.5·90 + 180) / 1.5 = 150. */
    const uint8_t v[3] = {0, 90, 180};
    pnx_image src = make_image(3, 1, v), out = {0};
    assert_int_equal(pnx_resize_image_to(&src, 2, 1, &out), 0);
    assert_int_equal(out.pixels[0], 30);
    assert_int_equal(out.pixels[1], 150);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_bilinear_2_to_4(void **state)
{
    (void)state;
    /* Centres at source x = -0.25, 0.25, 0.75, 1.25: edge, 25, 75, edge. */
    const uint8_t v[2] = {0, 100};
    pnx_image src = make_image(2, 1, v), out = {0};
    assert_int_equal(pnx_resize_image_to(&src, 4, 1, &out), 0);
    const uint8_t expect[4] = {0, 25, 75, 100};
    assert_memory_equal(out.pixels, expect, 4);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_same_size_is_a_copy(void **state)
{
    (void)state;
    pnx_rng rng;
    pnx_rng_seed(&rng, 7, 0);
    pnx_image src = random_image(&rng, 33, 33, 256), out = {0};
    assert_int_equal(pnx_resize_image(&src, 33, &out), 0);
    assert_memory_equal(out.pixels, src.pixels, pnx_image_size(&src));
    pnx_image_free(&out);
    assert_int_equal(pnx_resize_mask(&src, 33, PNX_MASK_MAJORITY, &out), 0);
    for (size_t i = 0; i < pnx_image_size(&src); i++)
        assert_int_equal(out.pixels[i], src.pixels[i] != 0);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_constant_stays_constant(void **state)
{
    (void)state;
    const uint32_t sizes[][2] = {{1024, 1024}, {997, 1021}, {5, 3}, {1, 1}};
    const uint32_t sides[] = {128, 256, 1000, 1, 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        pnx_image src = make_image(sizes[s][0], sizes[s][1], NULL);
        memset(src.pixels, 173, pnx_image_size(&src));
        for (size_t t = 0; t < sizeof sides / sizeof sides[0]; t++) {
            pnx_image out = {0};
            assert_int_equal(pnx_resize_image(&src, sides[t], &out), 0);
            for (size_t i = 0; i < pnx_image_size(&out); i++)
                assert_int_equal(out.pixels[i], 173);
            pnx_image_free(&out);
        }
        pnx_image_free(&src);
    }
}

/* ---- the brute-force reference ------------------------------------------ */

static void test_image_matches_reference(void **state)
{
    (void)state;
    pnx_rng rng;
    pnx_rng_seed(&rng, 2024, 1);
    const uint32_t cases[][4] = {
        {1024, 1024, 128, 128}, /* the default training resolution */
        {1024, 1024, 96, 96},   /* 10.67: straddling pixels */
        {37, 53, 16, 16},
        {100, 70, 128, 128},    /* enlarge both */
        {200, 60, 128, 128},    /* shrink one axis, enlarge the other */
        {7, 1, 3, 5},
        {1, 1, 4, 4},
        {5, 5, 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pnx_image src = random_image(&rng, cases[c][0], cases[c][1], 256);
        check_image_against_reference(&src, cases[c][2], cases[c][3]);
        pnx_image_free(&src);
    }
}

static void test_mask_matches_reference(void **state)
{
    (void)state;
    pnx_rng rng;
    pnx_rng_seed(&rng, 2024, 2);
    const uint32_t cases[][4] = {
        {256, 256, 32, 32}, {250, 190, 64, 64}, {30, 70, 128, 128}, {9, 9, 4, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* sparse, to make ANY and MAJORITY differ */
        pnx_image src = make_image(cases[c][0], cases[c][1], NULL);
        for (size_t i = 0; i < pnx_image_size(&src); i++)
            src.pixels[i] = pnx_rng_below(&rng, 5) == 0 ? 255 : 0;
        check_mask_against_reference(&src, cases[c][2], cases[c][3], PNX_MASK_ANY);
        check_mask_against_reference(&src, cases[c][2], cases[c][3], PNX_MASK_MAJORITY);
        pnx_image_free(&src);
    }
}

/* ---- masks: what the rules promise ------------------------------------- */

static void test_mask_thin_line_survives_any(void **state)
{
    (void)state;
    /* A one-pixel diagonal line across a 1024² mask: every 8 × 8 block on
     * the diagonal holds 8 of its 64 pixels. */
    pnx_image src = make_image(1024, 1024, NULL), any = {0}, major = {0};
    for (uint32_t i = 0; i < 1024; i++)
        src.pixels[(size_t)i * 1024 + i] = 1;
    assert_int_equal(pnx_resize_mask(&src, 128, PNX_MASK_ANY, &any), 0);
    assert_int_equal(pnx_resize_mask(&src, 128, PNX_MASK_MAJORITY, &major), 0);
    size_t n_any = 0, n_major = 0;
    for (uint32_t y = 0; y < 128; y++)
        for (uint32_t x = 0; x < 128; x++) {
            uint8_t a = any.pixels[y * 128 + x];
            assert_int_equal(a, x == y);
            n_any += a;
            n_major += major.pixels[y * 128 + x];
        }
    assert_int_equal(n_any, 128);
    assert_int_equal(n_major, 0);
    pnx_image_free(&any);
    pnx_image_free(&major);
    pnx_image_free(&src);
}

static void test_mask_majority_threshold_is_half(void **state)
{
    (void)state;
    pnx_image src = make_image(16, 8, NULL), out = {0};
    /* left 8 × 8 block: 32 pixels set (exactly half); right block: 31 */
    for (int i = 0; i < 32; i++)
        src.pixels[(i / 8) * 16 + (i % 8)] = 1;
    for (int i = 0; i < 31; i++)
        src.pixels[(i / 8) * 16 + 8 + (i % 8)] = 1;
    assert_int_equal(pnx_resize_mask_to(&src, 2, 1, PNX_MASK_MAJORITY, &out), 0);
    assert_int_equal(out.pixels[0], 1);
    assert_int_equal(out.pixels[1], 0);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_mask_straddling_pixel(void **state)
{
    (void)state;
    /* 3 → 2: source pixel 1 lies half in each target pixel, a third of each
     * footprint. */
    const uint8_t v[3] = {0, 255, 0};
    pnx_image src = make_image(3, 1, v), out = {0};
    assert_int_equal(pnx_resize_mask_to(&src, 2, 1, PNX_MASK_ANY, &out), 0);
    assert_int_equal(out.pixels[0], 1);
    assert_int_equal(out.pixels[1], 1);
    pnx_image_free(&out);
    assert_int_equal(pnx_resize_mask_to(&src, 2, 1, PNX_MASK_MAJORITY, &out), 0);
    assert_int_equal(out.pixels[0], 0);
    assert_int_equal(out.pixels[1], 0);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_mask_enlarge_is_nearest(void **state)
{
    (void)state;
    const uint8_t v[4] = {1, 0, 0, 7};
    pnx_image src = make_image(2, 2, v), out = {0};
    assert_int_equal(pnx_resize_mask(&src, 4, PNX_MASK_ANY, &out), 0);
    const uint8_t expect[16] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1};
    assert_memory_equal(out.pixels, expect, 16);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

static void test_mask_corner_pixel(void **state)
{
    (void)state;
    pnx_image src = make_image(1024, 1024, NULL), out = {0};
    src.pixels[1024 * 1024 - 1] = 1;
    assert_int_equal(pnx_resize_mask(&src, 128, PNX_MASK_ANY, &out), 0);
    for (size_t i = 0; i < 128 * 128; i++)
        assert_int_equal(out.pixels[i], i == 128 * 128 - 1);
    pnx_image_free(&out);
    pnx_image_free(&src);
}

/* ---- errors -------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    pnx_image src = make_image(4, 4, NULL), out = {0}, empty = {0};
    assert_int_equal(pnx_resize_image(&src, 0, &out), PNX_EINVAL);
    assert_int_equal(pnx_resize_image(&src, PNX_IMAGE_MAX_SIDE + 1, &out), PNX_EINVAL);
    assert_int_equal(pnx_resize_image(&empty, 8, &out), PNX_EINVAL);
    assert_int_equal(pnx_resize_image(NULL, 8, &out), PNX_EINVAL);
    assert_int_equal(pnx_resize_mask(&src, 8, (pnx_mask_rule)9, &out), PNX_EINVAL);
    assert_null(out.pixels);
    pnx_image_free(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_average_4_to_2),
        cmocka_unit_test(test_fractional_area_3_to_2),
        cmocka_unit_test(test_bilinear_2_to_4),
        cmocka_unit_test(test_same_size_is_a_copy),
        cmocka_unit_test(test_constant_stays_constant),
        cmocka_unit_test(test_image_matches_reference),
        cmocka_unit_test(test_mask_matches_reference),
        cmocka_unit_test(test_mask_thin_line_survives_any),
        cmocka_unit_test(test_mask_majority_threshold_is_half),
        cmocka_unit_test(test_mask_straddling_pixel),
        cmocka_unit_test(test_mask_enlarge_is_nearest),
        cmocka_unit_test(test_mask_corner_pixel),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
