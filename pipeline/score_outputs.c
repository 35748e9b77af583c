/*
 * pipeline/score_outputs.c — one scored instance: its native-size mask and
 * every enabled output file (SEG, PNG overlay, Secondary Capture), each
 * written atomically by postprocess/, plus the mask's RLE for the
 * database; see score_internal.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "pipeline/score_internal.h"
#include "postprocess/output_paths.h"
#include "postprocess/overlay.h"
#include "postprocess/sc.h"
#include "postprocess/seg.h"
#include "rle/rle.h"

#define ALGORITHM_NAME "pneumoseg U-Net"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Removes "<final>.tmp.*" left in the folder by a writer that was killed
 * (common/fileio.h names temporaries so). An instance whose row was not
 * committed is always written again, so sweeping here leaves no temporary
 * file behind a resumed run. */
void pnx_score_sweep_temps(const char *final_path)
{
    const char *slash = strrchr(final_path, '/');
    size_t dir_len = slash ? (size_t)(slash - final_path) : 0;
    const char *base = slash ? slash + 1 : final_path;
    char dir[4096], prefix[1024];
    if (dir_len >= sizeof dir || (size_t)snprintf(prefix, sizeof prefix, "%s.tmp.", base) >=
                                     sizeof prefix)
        return;
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)dir_len, final_path);
    else
        snprintf(dir, sizeof dir, ".");
    DIR *d = opendir(dir);
    if (!d)
        return;
    const size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        char stale[4096 + 1024];
        if ((size_t)snprintf(stale, sizeof stale, "%s/%s", dir, e->d_name) < sizeof stale)
            unlink(stale);
    }
    closedir(d);
}

static int write_seg(const pnx_score_output_settings *s, const pnx_dicom_source *src,
                     const pnx_image *mask, pnx_score_item_result *out)
{
    pnx_generated_uids uids;
    int rc = pnx_seg_uids_derive(src, s->model_sha256, s->uid_settings, &uids);
    char *path = NULL;
    if (!rc)
        rc = pnx_output_path(s->output_dir, src, PNX_OUTPUT_SEG, 1, &path);
    if (rc)
        return rc;
    pnx_score_sweep_temps(path);
    pnx_seg_options opt = {
        .uids = &uids,
        .algorithm_name = ALGORITHM_NAME,
        .algorithm_version = s->algorithm_version,
        .skip_if_empty = s->seg_skip_negative,
    };
    int written = 0;
    rc = pnx_seg_write(path, src, mask, &opt, &written);
    if (rc || !written) {
        free(path);
        return rc ? pnx_fail_prefix(rc, "SEG") : 0;
    }
    out->seg_path = path;
    return 0;
}

static int write_pictures(const pnx_score_output_settings *s, const pnx_dicom_source *src,
                          const pnx_image *image, const pnx_image *mask,
                          pnx_score_item_result *out)
{
    pnx_rgb_image picture = {0};
    int rc = pnx_overlay_render(image, mask, s->overlay_size, &picture);
    if (rc)
        return pnx_fail_prefix(rc, "overlay");
    char *path = NULL;
    if (s->overlay_enabled) {
        rc = pnx_output_path(s->output_dir, src, PNX_OUTPUT_OVERLAY, 1, &path);
        if (!rc)
            pnx_score_sweep_temps(path);
        if (!rc && (rc = pnx_png_write_rgb(path, &picture)))
            pnx_fail_prefix(rc, "overlay PNG");
        if (rc) {
            free(path);
            goto done;
        }
        out->overlay_path = path;
        path = NULL;
    }
    if (s->secondary_capture) {
        pnx_generated_uids uids;
        rc = pnx_sc_uids_derive(src, s->model_sha256, s->uid_settings, &uids);
        if (!rc)
            rc = pnx_output_path(s->output_dir, src, PNX_OUTPUT_SC, 1, &path);
        if (!rc) {
            pnx_score_sweep_temps(path);
            pnx_sc_options opt = {.uids = &uids};
            if ((rc = pnx_sc_write_rgb(path, src, &picture, &opt)))
                pnx_fail_prefix(rc, "Secondary Capture");
        }
        if (rc) {
            free(path);
            goto done;
        }
        out->sc_path = path;
    }
done:
    pnx_rgb_image_free(&picture);
    return rc;
}

int pnx_score_item_outputs(const pnx_score_output_settings *s, const pnx_dicom_source *src,
                           const pnx_image *image, const float *prob, uint32_t side,
                           double spacing_row, double spacing_col, pnx_score_item_result *out)
{
    memset(out, 0, sizeof *out);
    out->area_mm2 = -1;
    const double t0 = now_ms();
    if (src->columns != image->width || src->rows != image->height)
        return pnx_fail(PNX_EFORMAT, "decoded image %ux%u but the header says %ux%u",
                        image->width, image->height, src->columns, src->rows);
    pnx_probmap map = {side, side, prob};
    pnx_image mask = {0};
    int rc = pnx_postprocess_probmap(&map, image->width, image->height, &s->post, &mask,
                                     &out->post);
    if (rc)
        return rc;
    if (s->seg_enabled)
        rc = write_seg(s, src, &mask, out);
    if (!rc && (s->overlay_enabled || s->secondary_capture))
        rc = write_pictures(s, src, image, &mask, out);
    if (!rc)
        rc = pnx_rle_encode(&mask, PNX_RLE_FMT_RELATIVE, &out->mask_rle);
    pnx_image_free(&mask);
    if (rc) {
        pnx_score_item_result_free(out);
        return rc;
    }
    if (spacing_row > 0 && spacing_col > 0)
        out->area_mm2 = (double)out->post.mask_pixels * spacing_row * spacing_col;
    out->ok = 1;
    out->post_ms = now_ms() - t0;
    return 0;
}

void pnx_score_item_result_free(pnx_score_item_result *r)
{
    if (!r)
        return;
    free(r->seg_path);
    free(r->overlay_path);
    free(r->sc_path);
    free(r->mask_rle);
    r->seg_path = r->overlay_path = r->sc_path = r->mask_rle = NULL;
}
