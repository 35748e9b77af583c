/*
 * tests/test_postprocess.c — probability map → mask on hand-built cases
 * (bilinear resize against PyTorch's align_corners=False values, threshold,
 * triplet rule, 8-connected component removal, flip averaging) and the
 * derived 2.25 UIDs (against a value computed independently with Python's
 * hashlib).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/image.h"
#include "postprocess/output_paths.h"
#include "postprocess/postprocess.h"
#include "postprocess/seg.h"
#include "postprocess/uid.h"

static void assert_floats(const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > 1e-6f)
            fail_msg("value %zu: got %.7f, want %.7f", i, got[i], want[i]);
}

static void test_resize_matches_pytorch(void **state)
{
    (void)state;
    /* torch.nn.functional.interpolate(torch.tensor([[[[0.,1],[2,3]]]]),
     * size=(4,4), mode="bilinear", align_corners=False) */
    const float src[] = {0, 1, 2, 3};
    const float want_up[] = {0.0f, 0.25f, 0.75f, 1.0f, 0.5f, 0.75f, 1.25f, 1.5f,
                             1.5f, 1.75f, 2.25f, 2.5f, 2.0f, 2.25f, 2.75f, 3.0f};
    pnx_probmap map = {2, 2, src};
    float up[16];
    assert_int_equal(pnx_probmap_resize_bilinear(&map, up, 4, 4), 0);
    assert_floats(up, want_up, 16);

    /* 4 → 2 samples between pixel pairs: the pair means. */
    pnx_probmap big = {4, 4, want_up};
    float down[4];
    const float want_down[] = {0.375f, 1.125f, 1.875f, 2.625f};
    assert_int_equal(pnx_probmap_resize_bilinear(&big, down, 2, 2), 0);
    assert_floats(down, want_down, 4);

    /* Same size is the identity; 1×1 spreads to a constant; a non-square
     * 3×1 → 5×2 (width 3 → 5: s = (d+0.5)*0.6-0.5). */
    float same[16];
    assert_int_equal(pnx_probmap_resize_bilinear(&big, same, 4, 4), 0);
    assert_floats(same, want_up, 16);
    const float one = 0.7f;
    pnx_probmap single = {1, 1, &one};
    float spread[6];
    assert_int_equal(pnx_probmap_resize_bilinear(&single, spread, 3, 2), 0);
    for (int i = 0; i < 6; i++)
        assert_float_equal(spread[i], 0.7f, 1e-7f);
    const float row[] = {0, 10, 20};
    pnx_probmap line = {3, 1, row};
    float wide[10];
    const float want_wide[] = {0, 4, 10, 16, 20, 0, 4, 10, 16, 20};
    assert_int_equal(pnx_probmap_resize_bilinear(&line, wide, 5, 2), 0);
    assert_floats(wide, want_wide, 10);

    assert_int_equal(pnx_probmap_resize_bilinear(&map, up, 0, 4), PNX_ERANGE);
    pnx_probmap empty = {0, 2, src};
    assert_int_equal(pnx_probmap_resize_bilinear(&empty, up, 4, 4), PNX_ERANGE);
}

static void test_hflip_average(void **state)
{
    (void)state;
    float values[] = {0.0f, 0.2f, 0.4f, 1.0f, 1.0f, 1.0f};
    const float flipped[] = {0.6f, 0.2f, 0.0f, 0.0f, 0.5f, 1.0f};
    /* un-flipped second map: {0.0, 0.2, 0.6, 1.0, 0.5, 0.0} */
    const float want[] = {0.0f, 0.2f, 0.5f, 1.0f, 0.75f, 0.5f};
    pnx_probmap_average_hflip(values, flipped, 3, 2);
    assert_floats(values, want, 6);
}

static pnx_image mask_from(const char *rows[], uint32_t h)
{
    pnx_image m = {0};
    uint32_t w = (uint32_t)strlen(rows[0]);
    assert_int_equal(pnx_image_alloc(&m, w, h), 0);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            m.pixels[y * w + x] = rows[y][x] == '#';
    return m;
}

static void assert_mask(const pnx_image *m, const char *rows[])
{
    for (uint32_t y = 0; y < m->height; y++)
        for (uint32_t x = 0; x < m->width; x++)
            if (m->pixels[y * m->width + x] != (rows[y][x] == '#'))
                fail_msg("pixel (%u, %u): got %u", x, y, m->pixels[y * m->width + x]);
}

static void test_component_removal(void **state)
{
    (void)state;
    /* Components (8-connected): a lone pixel, a pair at the top right, and a
     * diagonal that joins a block of 7 through corners. */
    const char *in[] = {
        "#.....##",
        "..#.....",
        "...#.###",
        "....####",
    };
    const char *want[] = {
        "........",
        "..#.....",
        "...#.###",
        "....####",
    };
    pnx_image m = mask_from(in, 4);
    int64_t kept = -1, removed = -1;
    assert_int_equal(pnx_mask_remove_small_components(&m, 3, &kept, &removed), 0);
    assert_mask(&m, want);
    /* The diagonal reaches the block through the corner (3,2)-(4,3): one
     * component of 9 pixels; min 9 keeps it, 10 drops it. */
    assert_int_equal(kept, 1);
    assert_int_equal(removed, 2);
    assert_int_equal(pnx_mask_remove_small_components(&m, 9, &kept, &removed), 0);
    assert_mask(&m, want);
    assert_int_equal(kept, 1);
    assert_int_equal(pnx_mask_remove_small_components(&m, 10, &kept, &removed), 0);
    for (size_t i = 0; i < pnx_image_size(&m); i++)
        assert_int_equal(m.pixels[i], 0);
    assert_int_equal(removed, 1);
    /* min_area 0 keeps everything; an empty mask is fine; values must be 0/1. */
    pnx_image_free(&m);
    m = mask_from(in, 4);
    assert_int_equal(pnx_mask_remove_small_components(&m, 0, &kept, &removed), 0);
    assert_mask(&m, in);
    assert_int_equal(kept, 3);
    m.pixels[1] = 7;
    assert_int_equal(pnx_mask_remove_small_components(&m, 0, NULL, NULL), PNX_EINVAL);
    pnx_image_free(&m);
}

static void test_components_large(void **state)
{
    (void)state;
    /* A full 1024² mask is one component; a checkerboard is one too
     * (diagonal neighbours), so neither loses a pixel at min area 2. */
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 1024, 1024), 0);
    memset(m.pixels, 1, pnx_image_size(&m));
    int64_t kept = 0, removed = 0;
    assert_int_equal(pnx_mask_remove_small_components(&m, 2, &kept, &removed), 0);
    assert_int_equal(kept, 1);
    for (uint32_t y = 0; y < 1024; y++)
        for (uint32_t x = 0; x < 1024; x++)
            m.pixels[y * 1024 + x] = (x + y) % 2;
    assert_int_equal(pnx_mask_remove_small_components(&m, 2, &kept, &removed), 0);
    assert_int_equal(kept, 1);
    assert_int_equal(removed, 0);
    pnx_image_free(&m);
}

static pnx_postprocess_params plain(double threshold, int64_t min_area)
{
    pnx_postprocess_params p;
    memset(&p, 0, sizeof p);
    p.threshold = threshold;
    p.min_component_area = min_area;
    return p;
}

static void test_threshold_chain(void **state)
{
    (void)state;
    /* 2×2 map → 4×4 (values as in the PyTorch case, divided by 3). */
    const float src[] = {0.0f, 1.0f / 3, 2.0f / 3, 1.0f};
    pnx_probmap map = {2, 2, src};
    pnx_postprocess_params p = plain(0.55, 0);
    pnx_image mask = {0};
    pnx_postprocess_result res;
    assert_int_equal(pnx_postprocess_probmap(&map, 4, 4, &p, &mask, &res), 0);
    /* resized * 3 > 1.65: */
    const char *want[] = {"....", "....", ".###", "####"};
    assert_mask(&mask, want);
    assert_int_equal(res.mask_pixels, 7);
    assert_true(res.positive);
    assert_float_equal(res.max_probability, 1.0f, 1e-6f);
    pnx_image_free(&mask);

    /* Strict ">": p equal to the threshold is background. */
    const float half[] = {0.5f};
    pnx_probmap flat = {1, 1, half};
    p = plain(0.5, 0);
    assert_int_equal(pnx_postprocess_probmap(&flat, 3, 3, &p, &mask, &res), 0);
    assert_int_equal(res.mask_pixels, 0);
    assert_false(res.positive);
    assert_float_equal(res.max_probability, 0.5f, 1e-7f);
    pnx_image_free(&mask);

    /* Component removal after the resize: min area 8 drops the 7 pixels. */
    p = plain(0.55, 8);
    assert_int_equal(pnx_postprocess_probmap(&map, 4, 4, &p, &mask, &res), 0);
    assert_int_equal(res.mask_pixels, 0);
    assert_int_equal(res.components_removed, 1);
    pnx_image_free(&mask);

    /* NaN is below every threshold and ignored by the maximum. */
    const float nan_map[] = {NAN, 0.9f, 0.2f, NAN};
    pnx_probmap with_nan = {2, 2, nan_map};
    p = plain(0.5, 0);
    assert_int_equal(pnx_postprocess_probmap(&with_nan, 2, 2, &p, &mask, &res), 0);
    assert_int_equal(res.mask_pixels, 1);
    assert_float_equal(res.max_probability, 0.9f, 1e-7f);
    pnx_image_free(&mask);
}

static void test_triplet(void **state)
{
    (void)state;
    /* 4 pixels above top 0.8, 7 above bottom 0.3. */
    const float src[] = {
        0.9f, 0.9f, 0.5f, 0.1f,
        0.9f, 0.9f, 0.4f, 0.1f,
        0.1f, 0.1f, 0.35f, 0.1f,
        0.1f, 0.1f, 0.1f,  0.2f,
    };
    pnx_probmap map = {4, 4, src};
    pnx_postprocess_params p = plain(0.95, 0);
    p.triplet_enabled = 1;
    p.top_threshold = 0.8;
    p.bottom_threshold = 0.3;
    p.triplet_min_area = 4;
    pnx_image mask = {0};
    pnx_postprocess_result res;
    assert_int_equal(pnx_postprocess_probmap(&map, 4, 4, &p, &mask, &res), 0);
    const char *want[] = {"###.", "###.", "..#.", "...."};
    assert_mask(&mask, want);
    assert_int_equal(res.mask_pixels, 7);
    assert_true(res.positive);
    pnx_image_free(&mask);
    /* One more pixel needed above top: the image is negative, mask empty. */
    p.triplet_min_area = 5;
    assert_int_equal(pnx_postprocess_probmap(&map, 4, 4, &p, &mask, &res), 0);
    assert_int_equal(res.mask_pixels, 0);
    assert_false(res.positive);
    assert_float_equal(res.max_probability, 0.9f, 1e-7f);
    pnx_image_free(&mask);
    /* Triplet then component removal: min area 8 drops the 7. */
    p.triplet_min_area = 4;
    p.min_component_area = 8;
    assert_int_equal(pnx_postprocess_probmap(&map, 4, 4, &p, &mask, &res), 0);
    assert_int_equal(res.mask_pixels, 0);
    pnx_image_free(&mask);
}

static void test_params_rejected(void **state)
{
    (void)state;
    const float one = 0.5f;
    pnx_probmap map = {1, 1, &one};
    pnx_image mask = {0};
    pnx_postprocess_params p = plain(NAN, 0);
    assert_int_equal(pnx_postprocess_probmap(&map, 2, 2, &p, &mask, NULL), PNX_EINVAL);
    assert_null(mask.pixels);
    p = plain(0.5, -1);
    assert_int_equal(pnx_postprocess_probmap(&map, 2, 2, &p, &mask, NULL), PNX_EINVAL);
    p = plain(0.5, 0);
    p.triplet_enabled = 1;
    p.top_threshold = INFINITY;
    assert_int_equal(pnx_postprocess_probmap(&map, 2, 2, &p, &mask, NULL), PNX_EINVAL);
    p = plain(0.5, 0);
    assert_int_equal(pnx_postprocess_probmap(&map, 0, 2, &p, &mask, NULL), PNX_ERANGE);
    assert_int_equal(pnx_postprocess_probmap(&map, 70000, 2, &p, &mask, NULL), PNX_ERANGE);
    pnx_probmap no_values = {1, 1, NULL};
    assert_int_equal(pnx_postprocess_probmap(&no_values, 2, 2, &p, &mask, NULL), PNX_EINVAL);
    assert_null(mask.pixels);
}

static void test_settings_text(void **state)
{
    (void)state;
    pnx_postprocess_params p = plain(0.5, 0);
    char text[256];
    pnx_postprocess_settings_text(&p, text, sizeof text);
    assert_string_equal(text, "pp1;threshold=0.5;min_component_area=0;triplet=0");
    p.triplet_enabled = 1;
    p.top_threshold = 0.75;
    p.triplet_min_area = 2000;
    p.bottom_threshold = 0.4;
    p.min_component_area = 10;
    int len = pnx_postprocess_settings_text(&p, text, sizeof text);
    assert_string_equal(text, "pp1;threshold=0.5;min_component_area=10;triplet=1;top=0.75;"
                              "min_area=2000;bottom=0.40000000000000002");
    assert_int_equal(len, (int)strlen(text));
    assert_int_equal(pnx_postprocess_settings_text(&p, NULL, 0), len);
}

static void test_derived_uids(void **state)
{
    (void)state;
    const char *sop = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819";
    char a[PNX_UID_BUF], b[PNX_UID_BUF];
    assert_int_equal(pnx_uid_derive(a, "seg-instance", sop, "3fa2c1d0", "threshold=0.5"), 0);
    /* Python: sha256(b"\0".join([b"pneumoseg-uid-v1", role, sop, model,
     * settings]) + b"\0"), first 16 bytes, version 8 / variant bits set. */
    assert_string_equal(a, "2.25.136625229850160007723116125987193998784");
    assert_true(pnx_uid_is_valid(a));
    assert_int_equal(pnx_uid_derive(b, "seg-instance", sop, "3fa2c1d0", "threshold=0.5"), 0);
    assert_string_equal(a, b);
    assert_int_equal(pnx_uid_derive(b, "seg-series", sop, "3fa2c1d0", "threshold=0.5"), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(pnx_uid_derive(b, "seg-instance", sop, "3fa2c1d1", "threshold=0.5"), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(pnx_uid_derive(b, "seg-instance", sop, "3fa2c1d0", "threshold=0.6"), 0);
    assert_string_not_equal(a, b);
    /* Boundaries between inputs matter. */
    char c[PNX_UID_BUF], d[PNX_UID_BUF];
    assert_int_equal(pnx_uid_derive(c, "r", "ab", "c", ""), 0);
    assert_int_equal(pnx_uid_derive(d, "r", "a", "bc", ""), 0);
    assert_string_not_equal(c, d);
    assert_int_equal(pnx_uid_derive(a, "x", "", "", ""), PNX_OK);
    assert_true(strlen(a) <= 44);
    assert_int_equal(pnx_uid_derive(a, NULL, "", "", ""), PNX_EINVAL);

    assert_int_equal(pnx_uid_random(a), 0);
    assert_int_equal(pnx_uid_random(b), 0);
    assert_true(pnx_uid_is_valid(a));
    assert_string_not_equal(a, b);

    assert_false(pnx_uid_is_valid(""));
    assert_false(pnx_uid_is_valid("1..2"));
    assert_false(pnx_uid_is_valid("1.02"));
    assert_false(pnx_uid_is_valid("1.2."));
    assert_false(pnx_uid_is_valid("1.2a"));
    assert_true(pnx_uid_is_valid("1.0.2"));
    char long_uid[80];
    memset(long_uid, '1', 65);
    long_uid[65] = '\0';
    assert_false(pnx_uid_is_valid(long_uid));

    /* The SEG set: series shared by instances of one source series. */
    pnx_dicom_source s1, s2;
    memset(&s1, 0, sizeof s1);
    strcpy(s1.series_instance_uid, "1.2.3");
    strcpy(s1.sop_instance_uid, "1.2.3.1");
    s2 = s1;
    strcpy(s2.sop_instance_uid, "1.2.3.2");
    pnx_generated_uids u1, u2;
    assert_int_equal(pnx_seg_uids_derive(&s1, "m", "s", &u1), 0);
    assert_int_equal(pnx_seg_uids_derive(&s2, "m", "s", &u2), 0);
    assert_string_equal(u1.series_instance_uid, u2.series_instance_uid);
    assert_string_not_equal(u1.sop_instance_uid, u2.sop_instance_uid);
    assert_string_equal(u1.dimension_organization_uid, u2.dimension_organization_uid);
    assert_string_not_equal(u1.series_instance_uid, u1.sop_instance_uid);
}

static void test_output_paths(void **state)
{
    (void)state;
    pnx_dicom_source src;
    memset(&src, 0, sizeof src);
    strcpy(src.study_instance_uid, "1.2.3");
    strcpy(src.series_instance_uid, "1.2.3.4");
    strcpy(src.sop_instance_uid, "1.2.3.4.5");
    char *path = NULL;
    assert_int_equal(pnx_output_path("out", &src, PNX_OUTPUT_SEG, 0, &path), 0);
    assert_string_equal(path, "out/1.2.3/1.2.3.4/1.2.3.4.5.seg.dcm");
    free(path);
    assert_int_equal(pnx_output_path("out", &src, PNX_OUTPUT_OVERLAY, 0, &path), 0);
    assert_string_equal(path, "out/1.2.3/1.2.3.4/1.2.3.4.5.overlay.png");
    free(path);
    assert_int_equal(pnx_output_path("out", &src, PNX_OUTPUT_SC, 0, &path), 0);
    assert_string_equal(path, "out/1.2.3/1.2.3.4/1.2.3.4.5.sc.dcm");
    free(path);
    assert_int_equal(pnx_output_path("out", &src, 7, 0, &path), PNX_EINVAL);
    /* A hostile "UID" never becomes a path. */
    strcpy(src.sop_instance_uid, "../../etc/passwd");
    assert_int_equal(pnx_output_path("out", &src, PNX_OUTPUT_SEG, 0, &path), PNX_EFORMAT);
    assert_null(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_matches_pytorch),
        cmocka_unit_test(test_hflip_average),
        cmocka_unit_test(test_component_removal),
        cmocka_unit_test(test_components_large),
        cmocka_unit_test(test_threshold_chain),
        cmocka_unit_test(test_triplet),
        cmocka_unit_test(test_params_rejected),
        cmocka_unit_test(test_settings_text),
        cmocka_unit_test(test_derived_uids),
        cmocka_unit_test(test_output_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
