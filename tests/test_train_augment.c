/*
 * tests/test_train_augment.c — preprocess/augment.h: the identity when off,
 * an exact mirror, exact pixel shifts, binary masks under every transform,
 * image and mask moved by one map, photometric parts on the image only, and
 * the same transforms from the same seed.
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
#include "common/rng.h"
#include "preprocess/augment.h"

#define W 32
#define H 24

static uint8_t image[W * H];
static uint8_t mask[W * H];
static float out_image[W * H];
static float out_mask[W * H];

/* A pattern with no symmetry, and a mask that is a rectangle off centre. */
static int setup(void **state)
{
    (void)state;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            image[y * W + x] = (uint8_t)((x * 7 + y * 13 + x * y) % 251 + 2);
            mask[y * W + x] = x >= 5 && x < 14 && y >= 3 && y < 10;
        }
    return 0;
}

static const pnx_augment_params all_on = {
    .hflip = 0.5, .shift = 0.1, .scale = 0.2, .rotate_deg = 15,
    .brightness = 0.2, .contrast = 0.2, .gamma = 0.3,
};

static void test_disabled_is_identity(void **state)
{
    (void)state;
    pnx_augment_params off = {0};
    pnx_rng rng;
    pnx_rng_seed(&rng, 7, 0);
    for (int k = 0; k < 5; k++) {
        pnx_augment_transform t;
        assert_int_equal(pnx_augment_draw(&off, W, H, &rng, &t), 0);
        assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, out_mask), 0);
        for (int i = 0; i < W * H; i++) {
            assert_true(out_image[i] == (float)image[i] / 255.0f);
            assert_true(out_mask[i] == (float)mask[i]);
        }
    }
}

static void test_hflip_is_exact_mirror(void **state)
{
    (void)state;
    pnx_augment_transform t;
    pnx_augment_identity(&t);
    t.hflip = 1;
    assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, out_mask), 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int src = y * W + (W - 1 - x);
            assert_true(out_image[y * W + x] == (float)image[src] / 255.0f);
            assert_true(out_mask[y * W + x] == (float)mask[src]);
        }
    /* A flip probability of 1 always flips, 0 never. */
    pnx_augment_params p = {.hflip = 1.0};
    pnx_rng rng;
    pnx_rng_seed(&rng, 1, 2);
    for (int k = 0; k < 20; k++) {
        assert_int_equal(pnx_augment_draw(&p, W, H, &rng, &t), 0);
        assert_int_equal(t.hflip, 1);
    }
}

static void test_shift_moves_pixels(void **state)
{
    (void)state;
    const int dx = 3, dy = -2;
    pnx_augment_transform t;
    pnx_augment_identity(&t);
    t.shift_x = dx;
    t.shift_y = dy;
    assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, out_mask), 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sx = x - dx, sy = y - dy;
            int inside = sx >= 0 && sx < W && sy >= 0 && sy < H;
            float want_image = inside ? (float)image[sy * W + sx] / 255.0f : 0.0f;
            float want_mask = inside ? (float)mask[sy * W + sx] : 0.0f;
            assert_true(out_image[y * W + x] == want_image);
            assert_true(out_mask[y * W + x] == want_mask);
        }
    /* Half a pixel to the right: the image is the mean of two neighbours. */
    t.shift_x = 0.5;
    t.shift_y = 0.0;
    assert_int_equal(pnx_augment_apply(&t, image, NULL, W, H, out_image, NULL), 0);
    for (int y = 0; y < H; y++)
        for (int x = 1; x < W; x++) {
            double want = 0.5 * ((float)image[y * W + x - 1] / 255.0f) +
                          0.5 * ((float)image[y * W + x] / 255.0f);
            assert_true(fabs(out_image[y * W + x] - want) < 1e-6);
        }
}

static void test_rotation_by_90_degrees(void **state)
{
    (void)state;
    /* On a square, a quarter turn counter-clockwise sends the content at
     * (x, y) to (y, S-1-x); nothing is interpolated. */
    enum { S = 16 };
    uint8_t sq[S * S], sq_mask[S * S];
    float o[S * S], om[S * S];
    for (int i = 0; i < S * S; i++) {
        sq[i] = (uint8_t)(i * 37 % 256);
        sq_mask[i] = (i % 3) == 0;
    }
    pnx_augment_transform t;
    pnx_augment_identity(&t);
    t.angle_deg = 90.0;
    assert_int_equal(pnx_augment_apply(&t, sq, sq_mask, S, S, o, om), 0);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int ox = y, oy = S - 1 - x;
            assert_true(fabsf(o[oy * S + ox] - (float)sq[y * S + x] / 255.0f) < 1e-5f);
            assert_true(om[oy * S + ox] == (float)sq_mask[y * S + x]);
        }
}

static void test_mask_stays_binary_and_follows_image(void **state)
{
    (void)state;
    pnx_rng rng;
    pnx_rng_seed(&rng, 99, 5);
    pnx_augment_params geometric_only = all_on;
    geometric_only.brightness = geometric_only.contrast = geometric_only.gamma = 0;
    /* An image that is bright exactly where the mask is: after any geometric
     * transform, mask pixels must sit on bright image pixels (nearest vs
     * bilinear may disagree only on the rim). */
    uint8_t marked[W * H];
    for (int i = 0; i < W * H; i++)
        marked[i] = mask[i] ? 255 : 0;
    for (int k = 0; k < 50; k++) {
        pnx_augment_transform t;
        assert_int_equal(pnx_augment_draw(&geometric_only, W, H, &rng, &t), 0);
        assert_int_equal(pnx_augment_apply(&t, marked, mask, W, H, out_image, out_mask), 0);
        int ones = 0;
        for (int i = 0; i < W * H; i++) {
            assert_true(out_mask[i] == 0.0f || out_mask[i] == 1.0f);
            assert_true(out_image[i] >= 0.0f && out_image[i] <= 1.0f);
            if (out_mask[i] == 1.0f) {
                ones++;
                assert_true(out_image[i] >= 0.25f);
            }
            if (out_image[i] == 1.0f)
                assert_true(out_mask[i] == 1.0f);
        }
        assert_true(ones > 0); /* shifts of at most 10% keep the rectangle in view */
    }
}

static void test_photometric_leaves_mask(void **state)
{
    (void)state;
    pnx_augment_transform t;
    pnx_augment_identity(&t);
    t.brightness = 0.1;
    t.contrast = 1.3;
    t.gamma = 0.8;
    assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, out_mask), 0);
    int changed = 0;
    for (int i = 0; i < W * H; i++) {
        assert_true(out_mask[i] == (float)mask[i]);
        double v = ((double)image[i] / 255.0 - 0.5) * 1.3 + 0.5 + 0.1;
        v = pow(fmin(fmax(v, 0.0), 1.0), 0.8);
        assert_true(fabs(out_image[i] - v) < 1e-6);
        changed += out_image[i] != (float)image[i] / 255.0f;
    }
    assert_true(changed > W * H / 2);
    /* Brightness alone keeps the order of grey levels (a monotone map). */
    pnx_augment_identity(&t);
    t.brightness = -0.05;
    assert_int_equal(pnx_augment_apply(&t, image, NULL, W, H, out_image, NULL), 0);
    for (int i = 1; i < W * H; i++)
        if (image[i] > image[i - 1])
            assert_true(out_image[i] >= out_image[i - 1]);
}

static void test_same_seed_same_result(void **state)
{
    (void)state;
    float a[W * H], am[W * H], b[W * H], bm[W * H];
    pnx_rng r1, r2, r3;
    pnx_rng_seed(&r1, 1234, 17);
    pnx_rng_seed(&r2, 1234, 17);
    pnx_rng_seed(&r3, 1234, 18);
    int differs_from_other_stream = 0;
    for (int k = 0; k < 10; k++) {
        pnx_augment_transform t1, t2, t3;
        assert_int_equal(pnx_augment_draw(&all_on, W, H, &r1, &t1), 0);
        assert_int_equal(pnx_augment_draw(&all_on, W, H, &r2, &t2), 0);
        assert_int_equal(pnx_augment_draw(&all_on, W, H, &r3, &t3), 0);
        assert_int_equal(pnx_augment_apply(&t1, image, mask, W, H, a, am), 0);
        assert_int_equal(pnx_augment_apply(&t2, image, mask, W, H, b, bm), 0);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(am, bm, sizeof am);
        differs_from_other_stream += memcmp(&t1, &t3, sizeof t1) != 0;
        /* Drawn values stay inside their ranges. */
        assert_true(fabs(t1.shift_x) <= 0.1 * W && fabs(t1.shift_y) <= 0.1 * H);
        assert_true(t1.scale >= 0.8 && t1.scale <= 1.2);
        assert_true(fabs(t1.angle_deg) <= 15.0);
        assert_true(t1.gamma >= 0.7 && t1.gamma <= 1.3);
    }
    assert_true(differs_from_other_stream > 0);
}

static void test_switching_a_part_keeps_the_others(void **state)
{
    (void)state;
    pnx_augment_params no_rotation = all_on;
    no_rotation.rotate_deg = 0;
    pnx_rng r1, r2;
    pnx_rng_seed(&r1, 5, 0);
    pnx_rng_seed(&r2, 5, 0);
    pnx_augment_transform t1, t2;
    assert_int_equal(pnx_augment_draw(&all_on, W, H, &r1, &t1), 0);
    assert_int_equal(pnx_augment_draw(&no_rotation, W, H, &r2, &t2), 0);
    assert_true(t2.angle_deg == 0.0);
    assert_true(t1.shift_x == t2.shift_x && t1.scale == t2.scale && t1.gamma == t2.gamma);
}

static void test_refusals(void **state)
{
    (void)state;
    pnx_rng rng;
    pnx_rng_seed(&rng, 0, 0);
    pnx_augment_transform t;
    pnx_augment_params bad = {.hflip = 1.5};
    assert_int_equal(pnx_augment_draw(&bad, W, H, &rng, &t), PNX_ERANGE);
    assert_non_null(strstr(pnx_errmsg(), "hflip"));
    bad = (pnx_augment_params){.shift = NAN};
    assert_int_equal(pnx_augment_params_check(&bad), PNX_ERANGE);
    pnx_augment_identity(&t);
    t.scale = 0.0;
    assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, out_mask), PNX_ERANGE);
    pnx_augment_identity(&t);
    assert_int_equal(pnx_augment_apply(&t, image, mask, W, H, out_image, NULL), PNX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled_is_identity),
        cmocka_unit_test(test_hflip_is_exact_mirror),
        cmocka_unit_test(test_shift_moves_pixels),
        cmocka_unit_test(test_rotation_by_90_degrees),
        cmocka_unit_test(test_mask_stays_binary_and_follows_image),
        cmocka_unit_test(test_photometric_leaves_mask),
        cmocka_unit_test(test_same_seed_same_result),
        cmocka_unit_test(test_switching_a_part_keeps_the_others),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
