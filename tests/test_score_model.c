/*
 * tests/test_score_model.c — the score stage's network wrapper: the
 * training side from checkpoint metadata (or the fallback, or a refusal of
 * a bad value), probabilities in (0, 1) that do not depend on the batch an
 * image is in, tuned triplet thresholds from metadata (all three or none),
 * and horizontal-flip TTA that is exactly mirror-symmetric
 * (the TTA map of a mirrored image is the mirrored TTA map).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/image.h"
#include "common/log.h"
#include "common/rng.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/unet.h"
#include "pipeline/config.h"
#include "pipeline/score_internal.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    pnx_log_set_level(PNX_LOG_ERROR);
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-score-model-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes a random base-4 model with n metadata pairs. */
static void write_model_meta(const char *path, size_t n, const char *const *keys,
                             const char *const *values)
{
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    assert_int_equal(pnx_unet_create(&m, be, 4), 0);
    assert_int_equal(pnx_unet_init(m, 5), 0);
    pnx_checkpoint_meta meta = {.epoch = -1, .step = -1, .n_extra = n, .extra_keys = keys,
                                .extra_values = values};
    assert_int_equal(pnx_checkpoint_save(m, path, &meta), 0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

/* Writes a random base-4 model; side_text NULL leaves the metadata out. */
static void write_model(const char *path, const char *side_text)
{
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    assert_int_equal(pnx_unet_create(&m, be, 4), 0);
    assert_int_equal(pnx_unet_init(m, 5), 0);
    const char *keys[] = {PNX_SCORE_META_IMAGE_SIZE};
    const char *values[] = {side_text};
    pnx_checkpoint_meta meta = {.epoch = -1, .step = -1, .n_extra = side_text ? 1 : 0,
                                .extra_keys = keys, .extra_values = values};
    assert_int_equal(pnx_checkpoint_save(m, path, &meta), 0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

static void test_side_from_metadata(void **state)
{
    (void)state;
    char path[400];
    pnx_score_model sm;
    snprintf(path, sizeof path, "%s/with.safetensors", g_dir);
    write_model(path, "32");
    assert_int_equal(pnx_score_model_load(&sm, path, 64, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 2), 0);
    assert_int_equal(sm.side, 32);
    assert_true(sm.side_from_checkpoint);
    assert_int_equal(sm.base_width, 4);
    assert_int_equal(strlen(sm.sha256), 64);
    pnx_score_model_free(&sm);

    snprintf(path, sizeof path, "%s/without.safetensors", g_dir);
    write_model(path, NULL);
    assert_int_equal(pnx_score_model_load(&sm, path, 48, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), 0);
    assert_int_equal(sm.side, 48);
    assert_false(sm.side_from_checkpoint);
    pnx_score_model_free(&sm);

    snprintf(path, sizeof path, "%s/bad.safetensors", g_dir);
    write_model(path, "33");
    assert_int_equal(pnx_score_model_load(&sm, path, 48, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), PNX_SCORE_META_IMAGE_SIZE));
    write_model(path, "32x");
    assert_int_equal(pnx_score_model_load(&sm, path, 48, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), PNX_EFORMAT);
}

/* Tuned triplet thresholds: all three or none, in range. */
static void test_triplet_metadata(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/triplet.safetensors", g_dir);
    const char *keys[] = {PNX_SCORE_META_TOP, PNX_SCORE_META_MIN_AREA, PNX_SCORE_META_BOTTOM};
    const char *good[] = {"0.875", "2500", "0.3125"};
    pnx_score_model sm;
    write_model_meta(path, 3, keys, good);
    assert_int_equal(pnx_score_model_load(&sm, path, 32, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), 0);
    assert_true(sm.has_triplet);
    assert_float_equal(sm.triplet_top, 0.875, 0);
    assert_int_equal(sm.triplet_min_area, 2500);
    assert_float_equal(sm.triplet_bottom, 0.3125, 0);
    pnx_score_model_free(&sm);

    write_model_meta(path, 0, keys, good);
    assert_int_equal(pnx_score_model_load(&sm, path, 32, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), 0);
    assert_false(sm.has_triplet);
    pnx_score_model_free(&sm);

    write_model_meta(path, 2, keys, good); /* bottom missing */
    assert_int_equal(pnx_score_model_load(&sm, path, 32, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), PNX_EFORMAT);
    const char *bad_top[] = {"1.5", "2500", "0.3125"};
    write_model_meta(path, 3, keys, bad_top);
    assert_int_equal(pnx_score_model_load(&sm, path, 32, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), PNX_EFORMAT);
    const char *bad_area[] = {"0.875", "25.5", "0.3125"};
    write_model_meta(path, 3, keys, bad_area);
    assert_int_equal(pnx_score_model_load(&sm, path, 32, PNX_MODEL_DEVICE_CPU, 1, PNX_PREC_FP32, 1), PNX_EFORMAT);
}

static void fill_random(pnx_image *img, uint64_t seed)
{
    pnx_rng rng;
    pnx_rng_seed(&rng, seed, 0);
    for (size_t i = 0; i < pnx_image_size(img); i++)
        img->pixels[i] = (uint8_t)(pnx_rng_u64(&rng) & 0xff);
}

static void mirror(const pnx_image *src, pnx_image *dst)
{
    assert_int_equal(pnx_image_alloc(dst, src->width, src->height), 0);
    for (uint32_t y = 0; y < src->height; y++)
        for (uint32_t x = 0; x < src->width; x++)
            dst->pixels[(size_t)y * src->width + x] =
                src->pixels[(size_t)y * src->width + src->width - 1 - x];
}

static void test_predict_and_tta(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    write_model(path, "32");
    pnx_score_model sm;
    assert_int_equal(pnx_score_model_load(&sm, path, 64, PNX_MODEL_DEVICE_CPU, 2, PNX_PREC_FP32, 2), 0);
    const size_t per = 32 * 32;
    /* 64 × 64 shrinks by exact 2 × 2 means, so resizing commutes with
     * mirroring and the inputs are exact mirrors. */
    pnx_image a = {0}, b = {0};
    assert_int_equal(pnx_image_alloc(&a, 64, 64), 0);
    fill_random(&a, 3);
    mirror(&a, &b);
    const pnx_image *both[2] = {&a, &b};
    float *p2 = malloc(2 * per * sizeof *p2), *p1 = malloc(per * sizeof *p1);
    assert_non_null(p2);
    assert_non_null(p1);

    /* Plain: in (0, 1), and the same whether A is alone or in a batch. */
    assert_int_equal(pnx_score_model_predict(&sm, both, 2, 0, p2), 0);
    assert_int_equal(pnx_score_model_predict(&sm, both, 1, 0, p1), 0);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < per; i++) {
        assert_true(p2[i] > 0 && p2[i] < 1);
        assert_float_equal(p1[i], p2[i], 1e-6);
        lo = fminf(lo, p2[i]);
        hi = fmaxf(hi, p2[i]);
    }
    assert_true(hi > lo); /* the map depends on the image */

    /* TTA: the map of the mirrored image is the mirrored map. */
    assert_int_equal(pnx_score_model_predict(&sm, both, 2, 1, p2), 0);
    double differs_from_plain = 0;
    for (uint32_t y = 0; y < 32; y++)
        for (uint32_t x = 0; x < 32; x++) {
            float pa = p2[y * 32 + x], pb = p2[per + y * 32 + 31 - x];
            assert_float_equal(pa, pb, 1e-6);
            differs_from_plain = fmax(differs_from_plain, fabs(pa - p1[y * 32 + x]));
        }
    assert_true(differs_from_plain > 1e-4);

    /* More images than the buffers hold is refused. */
    const pnx_image *three[3] = {&a, &b, &a};
    assert_int_equal(pnx_score_model_predict(&sm, three, 3, 0, p2), PNX_EINVAL);
    free(p1);
    free(p2);
    pnx_image_free(&a);
    pnx_image_free(&b);
    pnx_score_model_free(&sm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_side_from_metadata),
        cmocka_unit_test(test_triplet_metadata),
        cmocka_unit_test(test_predict_and_tta),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
