/*
 * pipeline/evaluate_stage.c — predicted masks against the ground truth;
 * see evaluate_stage.h.
 */
#include "pipeline/evaluate_stage.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/image.h"
#include "common/log.h"
#include "db/predictions.h"
#include "rle/rle.h"

/* Distinct truth CSVs met in one evaluation: the ground_truth table
 * normally names one, but rows loaded from several files are allowed. */
#define MAX_TRUTH_FILES 16

typedef struct truth_file {
    char *path;
    pnx_rle_index *index;
} truth_file;

typedef struct eval_ctx {
    pnx_db *db;
    const pnx_evaluate_request *req;
    pnx_evaluate_report *report;
    pnx_db_metrics_writer *writer;
    truth_file files[MAX_TRUTH_FILES];
    size_t n_files;
} eval_ctx;

static int truth_index_for(eval_ctx *c, const char *path, pnx_rle_index **index)
{
    for (size_t i = 0; i < c->n_files; i++)
        if (strcmp(c->files[i].path, path) == 0) {
            *index = c->files[i].index;
            return 0;
        }
    if (c->n_files == MAX_TRUTH_FILES)
        return pnx_fail(PNX_ERANGE, "ground truth comes from more than %d CSV files",
                        MAX_TRUTH_FILES);
    truth_file *f = &c->files[c->n_files];
    f->path = strdup(path);
    if (!f->path)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = pnx_rle_index_build(&f->index, path);
    if (rc) {
        free(f->path);
        f->path = NULL;
        if (!c->req->rle_csv)
            return pnx_fail_prefix(rc, "the ground truth CSV named by the ground_truth table "
                                       "(give --rle-csv if it moved)");
        return pnx_fail_prefix(rc, "ground truth CSV");
    }
    pnx_log_info("evaluate: ground truth from %s (%zu images, %zu rows)", path,
                 pnx_rle_index_count(f->index), pnx_rle_index_row_count(f->index));
    c->n_files++;
    *index = f->index;
    return 0;
}

static void note_without_truth(eval_ctx *c, const char *uid)
{
    pnx_evaluate_report *r = c->report;
    r->without_truth++;
    if (r->without_truth <= 10)
        pnx_log_warn("evaluate: %s has no ground truth; left out", uid);
    if (r->n_without_truth_uids >= PNX_EVALUATE_MAX_LISTED)
        return;
    char **grown = realloc(r->without_truth_uids, (r->n_without_truth_uids + 1) * sizeof *grown);
    if (!grown)
        return; /* the count stays right; only the list is shorter */
    r->without_truth_uids = grown;
    char *copy = strdup(uid);
    if (copy)
        r->without_truth_uids[r->n_without_truth_uids++] = copy;
}

/* Counts the pixels of the two masks (same size) into row. */
static void count_pixels(const pnx_image *truth, const pnx_image *pred,
                         pnx_instance_metrics_row *row)
{
    int64_t tp = 0, fp = 0, fn = 0;
    const size_t n = pnx_image_size(truth);
    for (size_t i = 0; i < n; i++) {
        int t = truth->pixels[i] != 0, p = pred->pixels[i] != 0;
        tp += t & p;
        fp += p & !t;
        fn += t & !p;
    }
    row->tp = tp;
    row->fp = fp;
    row->fn = fn;
    row->truth_positive = tp + fn > 0;
    row->pred_positive = tp + fp > 0;
}

/* Evaluates one ok prediction. Returns 0 (also when the instance is left
 * out or failed on its own) or a fatal code. */
static int evaluate_one(eval_ctx *c, const pnx_prediction_view *p)
{
    pnx_evaluate_report *r = c->report;
    const char *uid = p->sop_instance_uid;

    pnx_truth_ref ref;
    int have_ref = 0;
    int rc = pnx_db_truth_lookup(c->db, uid, &ref);
    if (rc == 0)
        have_ref = 1;
    else if (rc != PNX_ENOTFOUND)
        return rc;

    const char *csv = c->req->rle_csv ? c->req->rle_csv : have_ref ? ref.source_file : NULL;
    if (!csv) {
        note_without_truth(c, uid);
        return 0;
    }
    pnx_rle_index *index = NULL;
    if ((rc = truth_index_for(c, csv, &index)))
        return rc;
    size_t at;
    if (pnx_rle_index_find(index, uid, &at) != 0) {
        pnx_clear_error();
        note_without_truth(c, uid);
        return 0;
    }

    uint32_t width, height;
    rc = pnx_db_instance_size(c->db, uid, &width, &height);
    if (rc == PNX_ENOTFOUND) {
        if (have_ref) {
            width = ref.width;
            height = ref.height;
        } else {
            width = height = PNX_EVALUATE_DEFAULT_SIDE;
            r->assumed_size++;
        }
    } else if (rc) {
        return rc;
    }

    pnx_image truth = {0}, pred = {0};
    if ((rc = pnx_image_alloc(&truth, width, height)) ||
        (rc = pnx_image_alloc(&pred, width, height))) {
        pnx_image_free(&truth);
        return rc;
    }
    const pnx_rle_fmt fmt = (pnx_rle_fmt)c->req->rle_format;
    int bad = pnx_rle_index_decode(index, at, fmt, &truth);
    if (bad)
        pnx_log_error("evaluate: %s: truth at %ux%u: %s", uid, width, height, pnx_errmsg());
    if (!bad) {
        const char *rle = p->mask_rle ? p->mask_rle : "";
        bad = pnx_rle_decode(rle, strlen(rle), PNX_RLE_FMT_RELATIVE, &pred, NULL);
        if (bad)
            pnx_log_error("evaluate: %s: predicted mask at %ux%u: %s", uid, width, height,
                          pnx_errmsg());
    }
    if (bad) {
        r->failed++;
        pnx_image_free(&truth);
        pnx_image_free(&pred);
        return 0;
    }
    pnx_instance_metrics_row row = {
        .sop_instance_uid = uid,
        .study_instance_uid = p->study_instance_uid,
    };
    count_pixels(&truth, &pred, &row);
    if (have_ref && !c->req->rle_csv && row.tp + row.fn != ref.mask_pixels &&
        width == ref.width && height == ref.height)
        pnx_log_warn("evaluate: %s: the truth has %" PRId64 " pixels now, %" PRId64
                     " when the dataset stage loaded %s (the file changed?)",
                     uid, row.tp + row.fn, ref.mask_pixels, ref.source_file);
    pnx_image_free(&truth);
    pnx_image_free(&pred);
    if ((rc = pnx_db_metrics_put(c->writer, &row)))
        return rc;
    r->evaluated++;
    return 0;
}

static int on_prediction(void *ctx, const pnx_prediction_view *p)
{
    eval_ctx *c = ctx;
    c->report->predictions++;
    if (!p->ok) {
        c->report->not_scored++;
        return 0;
    }
    return evaluate_one(c, p);
}

static int evaluate_run(eval_ctx *c, int64_t score_run)
{
    int rc = pnx_db_begin(c->db);
    if (rc)
        return rc;
    if (!(rc = pnx_db_metrics_clear(c->db, score_run)) &&
        !(rc = pnx_db_metrics_writer_open(&c->writer, c->db, score_run)))
        rc = pnx_db_predictions_each(c->db, score_run, on_prediction, c);
    pnx_db_metrics_writer_close(c->writer);
    c->writer = NULL;
    if (rc) {
        pnx_db_rollback(c->db);
        return rc;
    }
    return pnx_db_commit(c->db);
}

int pnx_evaluate_stage_run(pnx_db *db, const pnx_evaluate_request *req,
                           pnx_evaluate_report *report)
{
    memset(report, 0, sizeof *report);
    if (req->rle_format != PNX_RLE_FMT_RELATIVE && req->rle_format != PNX_RLE_FMT_ABSOLUTE)
        return pnx_fail(PNX_EINVAL, "evaluate: unknown RLE format %d", req->rle_format);
    pnx_score_run score;
    int rc = pnx_db_score_run_get(db, req->score_run, &score);
    if (rc)
        return rc;
    report->score_run = score.id;
    if (!score.finished)
        pnx_log_warn("evaluate: score run %" PRId64 " has not finished (still running, or "
                     "killed): evaluating the predictions it has",
                     score.id);

    pnx_run_info info = {
        .stage = "evaluate",
        .config_text = req->config_text,
        .config_sha256 = req->config_sha256,
        .model_sha256 = score.model_sha256[0] ? score.model_sha256 : NULL,
        .parent_run_id = score.id,
    };
    if ((rc = pnx_db_run_begin(db, &info, &report->evaluate_run)))
        return pnx_fail_prefix(rc, "evaluate: recording the run");

    eval_ctx c = {.db = db, .req = req, .report = report};
    rc = evaluate_run(&c, score.id);
    for (size_t i = 0; i < c.n_files; i++) {
        pnx_rle_index_free(c.files[i].index);
        free(c.files[i].path);
    }
    if (!rc)
        rc = pnx_db_metrics_summary(db, score.id, &report->summary);

    char message[256];
    if (rc) {
        snprintf(message, sizeof message, "%s", pnx_errmsg());
        int keep = rc;
        pnx_db_run_finish(db, report->evaluate_run, "failed", report->evaluated, report->failed,
                          message);
        /* The message of the failure, not of the bookkeeping after it. */
        pnx_fail(keep, "%s", message);
        return keep;
    }
    if (isnan(report->summary.mean_dice))
        snprintf(message, sizeof message, "score run %" PRId64 ": nothing evaluated", score.id);
    else
        snprintf(message, sizeof message,
                 "score run %" PRId64 ": mean Dice %.4f over %" PRId64 " images", score.id,
                 report->summary.mean_dice, report->evaluated);
    return pnx_db_run_finish(db, report->evaluate_run, report->failed > 0 ? "partial" : "ok",
                             report->evaluated, report->failed, message);
}

void pnx_evaluate_report_free(pnx_evaluate_report *report)
{
    if (!report)
        return;
    for (size_t i = 0; i < report->n_without_truth_uids; i++)
        free(report->without_truth_uids[i]);
    free(report->without_truth_uids);
    report->without_truth_uids = NULL;
    report->n_without_truth_uids = 0;
}
