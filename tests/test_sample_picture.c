/* tests/test_sample_picture.c — the sample generator's promises that the
 * files alone do not show: the plan's label mix and patient pairs, and what
 * a pneumothorax does to the picture (painted twice, with and without the
 * lesion, from the same noise): darker inside, without lung markings, a
 * bright pleural line at its lung-side edge, the rest of the image
 * unchanged, and the mask inside the lung. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/image.h"
#include "common/rng.h"
#include "tools/gen_sample/chest_anatomy.h"
#include "tools/gen_sample/chest_render.h"
#include "tools/gen_sample/ptx_lesion.h"
#include "tools/gen_sample/sample_plan.h"

#define SIDE 1024u

static void test_plan_label_mix_and_patients(void **state)
{
    (void)state;
    pnx_sample_plan plan, again;
    assert_int_equal(pnx_sample_plan_make(2019, 60, 20, &plan), 0);
    assert_int_equal(pnx_sample_plan_make(2019, 60, 20, &again), 0);
    assert_memory_equal(plan.studies, again.studies, 80 * sizeof *plan.studies);
    pnx_sample_plan_free(&again);

    int positive[2] = {0, 0}, apart = 0, overlapping = 0, repeats = 0;
    for (uint32_t i = 0; i < plan.n_studies; i++) {
        const pnx_sample_study *s = &plan.studies[i];
        assert_int_equal(s->split, i < 60 ? PNX_SAMPLE_FOLDER_TRAIN : PNX_SAMPLE_FOLDER_TEST);
        positive[s->split] += s->layout != PNX_PTX_NONE;
        apart += s->layout == PNX_PTX_APART;
        overlapping += s->layout == PNX_PTX_OVERLAPPING;
        assert_int_equal(strlen(s->patient_id), 36);
        assert_int_equal(s->patient_id[14], '4');
        assert_int_equal(strlen(s->patient_age), 4);
        assert_int_equal(s->patient_age[3], 'Y');
        for (uint32_t j = 0; j < i; j++) {
            assert_string_not_equal(plan.studies[j].sop_uid, s->sop_uid);
            assert_string_not_equal(plan.studies[j].study_uid, s->study_uid);
            if (plan.studies[j].patient == s->patient) {
                /* A patient's second study: same person, same split. */
                repeats++;
                assert_string_equal(plan.studies[j].patient_id, s->patient_id);
                assert_int_equal(plan.studies[j].female, s->female);
                assert_int_equal(plan.studies[j].split, s->split);
            } else {
                assert_string_not_equal(plan.studies[j].patient_id, s->patient_id);
            }
        }
    }
    assert_int_equal(positive[PNX_SAMPLE_FOLDER_TRAIN], 30);
    assert_int_equal(positive[PNX_SAMPLE_FOLDER_TEST], 8);
    assert_true(apart >= 2);
    assert_true(overlapping >= 2);
    assert_int_equal(repeats, 5);
    assert_int_equal(plan.n_patients, 75);
    pnx_sample_plan_free(&plan);
}

typedef struct painted {
    pnx_chest_frame frame;
    pnx_image mask, with, without;
} painted;

static void paint_pair(painted *p)
{
    pnx_rng rng;
    pnx_chest_anatomy anatomy;
    pnx_chest_pose pose;
    pnx_rng_seed(&rng, 42, 0);
    pnx_chest_anatomy_sample(&rng, 0, &anatomy);
    pnx_chest_pose_sample(&rng, 0, &pose);
    pnx_chest_frame_init(&p->frame, &anatomy, &pose, SIDE);
    /* A lateral crescent of the patient's right lung. */
    pnx_ptx_crescent c = {.side = PNX_SIDE_RIGHT, .centre = -0.5, .half_width = 0.7,
                          .depth = 0.05, .wobble_phase = 1.0};
    assert_int_equal(pnx_image_alloc(&p->mask, SIDE, SIDE), 0);
    assert_int_equal(pnx_image_alloc(&p->with, SIDE, SIDE), 0);
    assert_int_equal(pnx_image_alloc(&p->without, SIDE, SIDE), 0);
    assert_true(pnx_ptx_rasterize(&p->frame, &c, &p->mask) > 5000);
    pnx_ptx_look look = {.extra_air = 0.03, .pleural_line = 0.13};
    assert_int_equal(pnx_chest_render(&p->frame, &p->mask, &look, 7, &p->with), 0);
    assert_int_equal(pnx_chest_render(&p->frame, NULL, NULL, 7, &p->without), 0);
}

static void free_pair(painted *p)
{
    pnx_image_free(&p->mask);
    pnx_image_free(&p->with);
    pnx_image_free(&p->without);
}

static int mask_at(const pnx_image *m, long x, long y)
{
    if (x < 0 || y < 0 || x >= (long)m->width || y >= (long)m->height)
        return 0;
    return m->pixels[(size_t)y * m->width + (size_t)x] != 0;
}

/* Distance (Chebyshev, capped at cap) from (x, y) to the nearest mask pixel. */
static long distance_to_mask(const pnx_image *m, long x, long y, long cap)
{
    for (long r = 0; r <= cap; r++)
        for (long dy = -r; dy <= r; dy++)
            for (long dx = -r; dx <= r; dx++)
                if ((labs(dx) == r || labs(dy) == r) && mask_at(m, x + dx, y + dy))
                    return r;
    return cap + 1;
}

/* Mean absolute difference between a pixel and its 5 × 5 mean: the fine
 * detail (vessels, lung texture, noise) of an area. */
static double detail(const pnx_image *img, long x, long y)
{
    double sum = 0;
    for (long dy = -2; dy <= 2; dy++)
        for (long dx = -2; dx <= 2; dx++)
            sum += img->pixels[(size_t)(y + dy) * SIDE + (size_t)(x + dx)];
    return fabs(img->pixels[(size_t)y * SIDE + (size_t)x] - sum / 25.0);
}

static void test_lesion_is_darker_and_free_of_markings(void **state)
{
    (void)state;
    painted p;
    paint_pair(&p);
    double darker = 0, detail_with = 0, detail_without = 0;
    long inside = 0, interior = 0;
    for (long y = 3; y < (long)SIDE - 3; y++) {
        for (long x = 3; x < (long)SIDE - 3; x++) {
            if (!mask_at(&p.mask, x, y))
                continue;
            size_t i = (size_t)y * SIDE + (size_t)x;
            darker += (double)p.without.pixels[i] - p.with.pixels[i];
            inside++;
            /* The mask lies in the lung. */
            double pa, qa;
            pnx_chest_pixel_to_anatomy(&p.frame, x, y, &pa, &qa);
            assert_true(pnx_chest_lung_depth(&p.frame, PNX_SIDE_RIGHT, pa, qa) > 0);
            if (mask_at(&p.mask, x - 6, y)
                && mask_at(&p.mask, x + 6, y) && mask_at(&p.mask, x, y - 6)
                && mask_at(&p.mask, x, y + 6)) {
                detail_with += detail(&p.with, x, y);
                detail_without += detail(&p.without, x, y);
                interior++;
            }
        }
    }
    print_message("lesion: %ld px, %.1f grey levels darker, detail %.2f vs %.2f without\n",
                  inside, darker / inside, detail_with / interior, detail_without / interior);
    assert_true(inside > 5000 && interior > 1000);
    /* Clearly darker on average, as a pneumothorax is… */
    assert_true(darker / inside > 8.0);
    /* …and smoother: the vessels and lung texture are gone. */
    assert_true(detail_with < 0.85 * detail_without);
    free_pair(&p);
}

static void test_pleural_line_and_untouched_surroundings(void **state)
{
    (void)state;
    painted p;
    paint_pair(&p);
    double line = 0;
    long line_pixels = 0;
    int far_diff = 0;
    for (long y = 0; y < (long)SIDE; y++) {
        for (long x = 0; x < (long)SIDE; x++) {
            size_t i = (size_t)y * SIDE + (size_t)x;
            int diff = (int)p.with.pixels[i] - p.without.pixels[i];
            long d = distance_to_mask(&p.mask, x, y, 2);
            if (d >= 1 && d <= 2) {
                double pa, qa;
                pnx_chest_pixel_to_anatomy(&p.frame, x, y, &pa, &qa);
                /* The lung side of the lesion's edge, away from the wall. */
                if (pnx_chest_lung_depth(&p.frame, PNX_SIDE_RIGHT, pa, qa) > 0.008) {
                    line += diff;
                    line_pixels++;
                }
            } else if (x > 600 && abs(diff) > far_diff) {
                /* The lesion is on the image's left; the other lung must
                 * not change beyond rounding. */
                far_diff = abs(diff);
            }
        }
    }
    print_message("pleural line: %ld px, %+.1f grey levels; far change %d\n", line_pixels,
                  line / line_pixels, far_diff);
    assert_true(line_pixels > 200);
    assert_true(line / line_pixels > 4.0);
    assert_true(far_diff <= 1);
    free_pair(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_label_mix_and_patients),
        cmocka_unit_test(test_lesion_is_darker_and_free_of_markings),
        cmocka_unit_test(test_pleural_line_and_untouched_surroundings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
