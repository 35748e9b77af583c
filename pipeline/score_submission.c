/*
 * pipeline/score_submission.c — the Kaggle submission CSV of a score run,
 * written at the end from the run's predictions rows (so a resumed run's
 * file holds every image of the run); see score_internal.h.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "db/metrics.h"
#include "db/predictions.h"
#include "pipeline/score_internal.h"
#include "rle/rle.h"

typedef struct submission_ctx {
    pnx_db *db;
    pnx_rle_writer *writer;
    pnx_rle_fmt fmt;
    int64_t rows, skipped;
} submission_ctx;

static int submission_row(void *ctx, const pnx_prediction_view *p)
{
    submission_ctx *c = ctx;
    if (!p->ok || !p->mask_rle) {
        c->skipped++;
        return 0;
    }
    c->rows++;
    if (c->fmt == PNX_RLE_FMT_RELATIVE || pnx_rle_is_empty(p->mask_rle, strlen(p->mask_rle)))
        return pnx_rle_writer_row(c->writer, p->sop_instance_uid, p->mask_rle);
    /* The absolute flavour: decode at the native size and encode again. */
    uint32_t w, h;
    int rc = pnx_db_instance_size(c->db, p->sop_instance_uid, &w, &h);
    if (rc)
        return rc == PNX_ENOTFOUND
                   ? pnx_fail(PNX_ENOTFOUND, "%s: native size unknown", p->sop_instance_uid)
                   : rc;
    pnx_image mask = {0};
    if ((rc = pnx_image_alloc(&mask, w, h)))
        return rc;
    rc = pnx_rle_decode(p->mask_rle, strlen(p->mask_rle), PNX_RLE_FMT_RELATIVE, &mask, NULL);
    if (!rc)
        rc = pnx_rle_writer_mask(c->writer, p->sop_instance_uid, &mask, c->fmt);
    pnx_image_free(&mask);
    return rc;
}

int pnx_score_write_submission(pnx_db *db, int64_t run_id, const char *path, int format)
{
    submission_ctx c = {.db = db, .fmt = (pnx_rle_fmt)format};
    char *dir = strdup(path);
    if (!dir)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = pnx_mkdir_p(dir, 0755);
    }
    free(dir);
    if (!rc)
        pnx_score_sweep_temps(path);
    if (rc || (rc = pnx_rle_writer_open(&c.writer, path, PNX_RLE_CSV_KAGGLE)))
        return pnx_fail_prefix(rc, "submission CSV %s", path);
    rc = pnx_db_predictions_each(db, run_id, submission_row, &c);
    if (rc) {
        pnx_rle_writer_abort(c.writer);
        return pnx_fail_prefix(rc, "submission CSV %s", path);
    }
    if ((rc = pnx_rle_writer_commit(c.writer)))
        return pnx_fail_prefix(rc, "submission CSV %s", path);
    pnx_log_info("submission: %s (%" PRId64 " images%s)", path, c.rows,
                 c.skipped ? ", failed ones left out" : "");
    return 0;
}
