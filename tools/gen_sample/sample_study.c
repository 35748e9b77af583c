/* tools/gen_sample/sample_study.c — one study: picture, masks, file, rows; see sample_study.h. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "tools/gen_sample/sample_study.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/rng.h"
#include "rle/rle.h"
#include "tools/gen_sample/chest_render.h"
#include "tools/gen_sample/jpeg_baseline.h"
#include "tools/gen_sample/sc_dicom.h"

/* Attempts at drawing a lesion whose pieces are all big enough and, for
 * the overlapping layout, do overlap. */
#define LESION_ATTEMPTS 20

static void free_images(pnx_image *images, int n)
{
    for (int k = 0; k < n; k++)
        pnx_image_free(&images[k]);
}

static uint64_t count_set(const pnx_image *m)
{
    uint64_t n = 0;
    size_t size = pnx_image_size(m);
    for (size_t i = 0; i < size; i++)
        n += m->pixels[i] != 0;
    return n;
}

static uint64_t count_overlap(const pnx_image *a, const pnx_image *b)
{
    uint64_t n = 0;
    size_t size = pnx_image_size(a);
    for (size_t i = 0; i < size; i++)
        n += a->pixels[i] && b->pixels[i];
    return n;
}

/* Procedural crescents: redrawn until every piece is big enough and the
 * layout's promise (apart or overlapping) holds. */
static int draw_crescents(pnx_rng *rng, const pnx_sample_study *s, const pnx_chest_frame *f,
                          pnx_image *pieces, int *n_pieces)
{
    for (int attempt = 0; attempt < LESION_ATTEMPTS; attempt++) {
        pnx_ptx_lesion lesion;
        pnx_ptx_sample(rng, s->layout, s->ap_view, &lesion);
        int ok = 1;
        for (int k = 0; k < lesion.n_pieces; k++) {
            memset(pieces[k].pixels, 0, pnx_image_size(&pieces[k]));
            if (pnx_ptx_rasterize(f, &lesion.pieces[k], &pieces[k]) < PNX_SAMPLE_MIN_PIECE_PIXELS)
                ok = 0;
        }
        if (ok && lesion.n_pieces == 2) {
            uint64_t shared = count_overlap(&pieces[0], &pieces[1]);
            if ((s->layout == PNX_PTX_OVERLAPPING) != (shared > 0))
                ok = 0;
        }
        if (ok) {
            *n_pieces = lesion.n_pieces;
            return 0;
        }
    }
    return pnx_fail(PNX_EINTERNAL, "no acceptable lesion after %d attempts", LESION_ATTEMPTS);
}

static int draw_real(pnx_rng *rng, const pnx_sample_study *s, const pnx_chest_frame *f,
                     const pnx_real_masks *real, pnx_image *pieces, int *n_pieces)
{
    int wanted = s->layout == PNX_PTX_SINGLE ? 1 : 2;
    for (int k = 0; k < wanted; k++) {
        long long n = pnx_real_masks_pick(real, rng, f, &pieces[k]);
        if (n < 0)
            return (int)n;
        if (n < PNX_SAMPLE_MIN_PIECE_PIXELS)
            return pnx_fail(PNX_ENOTFOUND, "no real mask fits this image's lung border");
    }
    *n_pieces = wanted;
    return 0;
}

int pnx_sample_study_paint(const pnx_sample_plan *plan, uint32_t i,
                           const pnx_real_masks *real, pnx_image *img,
                           pnx_image *lesion, pnx_image pieces[PNX_PTX_MAX_PIECES],
                           int *n_pieces)
{
    if (!plan || i >= plan->n_studies)
        return pnx_fail(PNX_EINVAL, "study %u is not in the plan", i);
    const pnx_sample_study *s = &plan->studies[i];
    memset(img, 0, sizeof *img);
    memset(lesion, 0, sizeof *lesion);
    memset(pieces, 0, PNX_PTX_MAX_PIECES * sizeof *pieces);
    *n_pieces = 0;

    pnx_rng patient_rng, study_rng;
    pnx_chest_anatomy anatomy;
    pnx_chest_pose pose;
    pnx_chest_frame frame;
    pnx_rng_seed(&patient_rng, plan->seed, PNX_SAMPLE_STREAM_PATIENT(s->patient));
    pnx_chest_anatomy_sample(&patient_rng, s->female, &anatomy);
    pnx_rng_seed(&study_rng, plan->seed, PNX_SAMPLE_STREAM_STUDY(i));
    pnx_chest_pose_sample(&study_rng, s->ap_view, &pose);
    pnx_chest_frame_init(&frame, &anatomy, &pose, PNX_SAMPLE_SIDE);
    pnx_ptx_look look = {
        .extra_air = 0.02 + 0.03 * pnx_rng_uniform(&study_rng),
        .pleural_line = 0.10 + 0.06 * pnx_rng_uniform(&study_rng),
    };
    uint64_t noise_seed = pnx_rng_u64(&study_rng);

    int rc = pnx_image_alloc(img, PNX_SAMPLE_SIDE, PNX_SAMPLE_SIDE);
    if (rc == 0)
        rc = pnx_image_alloc(lesion, PNX_SAMPLE_SIDE, PNX_SAMPLE_SIDE);
    for (int k = 0; rc == 0 && k < 2; k++)
        rc = pnx_image_alloc(&pieces[k], PNX_SAMPLE_SIDE, PNX_SAMPLE_SIDE);
    if (rc == 0 && s->layout != PNX_PTX_NONE && real) {
        rc = draw_real(&study_rng, s, &frame, real, pieces, n_pieces);
        if (rc == PNX_ENOTFOUND) {
            pnx_log_warn("study %u: %s; drawing a crescent instead", i, pnx_errmsg());
            rc = 0;
        }
    }
    if (rc == 0 && s->layout != PNX_PTX_NONE && *n_pieces == 0)
        rc = draw_crescents(&study_rng, s, &frame, pieces, n_pieces);
    if (rc == 0) {
        size_t size = pnx_image_size(lesion);
        for (int k = 0; k < *n_pieces; k++)
            for (size_t p = 0; p < size; p++)
                lesion->pixels[p] |= pieces[k].pixels[p];
        rc = pnx_chest_render(&frame, *n_pieces ? lesion : NULL, &look, noise_seed, img);
    }
    if (rc < 0) {
        pnx_image_free(img);
        pnx_image_free(lesion);
        free_images(pieces, PNX_PTX_MAX_PIECES);
        *n_pieces = 0;
        return pnx_fail_prefix(rc, "study %u", i);
    }
    /* Keep only the pieces in use. */
    free_images(pieces + *n_pieces, PNX_PTX_MAX_PIECES - *n_pieces);
    return 0;
}

int pnx_sample_study_make(const pnx_sample_plan *plan, uint32_t i,
                          const pnx_real_masks *real, int quality,
                          pnx_sample_output *out)
{
    memset(out, 0, sizeof *out);
    pnx_image img, lesion, pieces[PNX_PTX_MAX_PIECES];
    int n_pieces = 0;
    int rc = pnx_sample_study_paint(plan, i, real, &img, &lesion, pieces, &n_pieces);
    if (rc < 0)
        return rc;
    const pnx_sample_study *s = &plan->studies[i];

    uint8_t *jpeg = NULL;
    size_t jpeg_len = 0;
    rc = pnx_jpeg_baseline_encode(&img, quality, &jpeg, &jpeg_len);
    if (rc == 0) {
        pnx_sc_fields fields = {
            .study_instance_uid = s->study_uid,
            .series_instance_uid = s->series_uid,
            .sop_instance_uid = s->sop_uid,
            .patient_id = s->patient_id,
            .patient_sex = s->female ? "F" : "M",
            .patient_age = s->patient_age,
            .view_position = s->ap_view ? "AP" : "PA",
            .pixel_spacing = s->pixel_spacing,
            .rows = img.height,
            .columns = img.width,
        };
        rc = pnx_sc_dicom_encode(&fields, jpeg, jpeg_len, &out->dicom, &out->dicom_len);
    }
    free(jpeg);

    if (rc == 0 && n_pieces == 0) {
        out->rle[0] = strdup("-1");
        out->n_rows = 1;
        if (!out->rle[0])
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
    }
    for (int k = 0; rc == 0 && k < n_pieces; k++) {
        rc = pnx_rle_encode(&pieces[k], PNX_RLE_FMT_RELATIVE, &out->rle[k]);
        out->n_rows = k + 1;
    }
    if (rc == 0)
        out->lesion_pixels = count_set(&lesion);

    pnx_image_free(&img);
    pnx_image_free(&lesion);
    free_images(pieces, n_pieces);
    if (rc < 0) {
        pnx_sample_output_free(out);
        return pnx_fail_prefix(rc, "study %u (%s)", i, s->sop_uid);
    }
    return 0;
}

void pnx_sample_output_free(pnx_sample_output *out)
{
    if (!out)
        return;
    free(out->dicom);
    for (int k = 0; k < PNX_PTX_MAX_PIECES; k++)
        free(out->rle[k]);
    memset(out, 0, sizeof *out);
}
