/*
 * pipeline/evaluate_stage.h — the evaluate stage: a score run's predicted
 * masks against the ground truth, per instance, into instance_metrics.
 *
 * For every ok prediction of the score run, the predicted mask (its
 * predictions.mask_rle, SIIM relative RLE at native size) and the truth
 * (the CSV named by the instance's ground_truth row, or the CSV given in
 * the request; several rows of one ImageId united) are decoded at the
 * instance's native size and compared pixel by pixel: TP, FP, FN and the
 * image-level flags go into instance_metrics (keyed by the score run; a
 * new evaluation of the same run replaces the old rows in one
 * transaction). Dice, recall, precision, the study_metrics view and the
 * run_summary view follow from the counts in SQLite.
 *
 * The native size comes from the instances table, else from the
 * ground_truth row, else the SIIM size 1024 × 1024 is assumed (counted in
 * the report). An instance with no truth is reported and left out, never
 * guessed negative. A malformed RLE (truth or prediction) fails that
 * instance only. Memory: two masks at a time and one RLE index per CSV.
 *
 * The stage has its own runs row (stage 'evaluate', parent_run_id = the
 * score run).
 */
#ifndef PNX_PIPELINE_EVALUATE_STAGE_H
#define PNX_PIPELINE_EVALUATE_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "db/metrics.h"

#define PNX_EVALUATE_DEFAULT_SIDE 1024u /* the SIIM images and RLE contract */

typedef struct pnx_evaluate_request {
    int64_t score_run;         /* 0 = the latest score run */
    const char *rle_csv;       /* NULL: the ground_truth table's CSVs */
    int rle_format;            /* enum pnx_rle_format of that CSV */
    const char *config_text;   /* for the evaluate runs row; may be NULL */
    const char *config_sha256;
} pnx_evaluate_request;

typedef struct pnx_evaluate_report {
    int64_t score_run;
    int64_t evaluate_run;
    int64_t predictions;       /* rows of the score run */
    int64_t not_scored;        /* error rows of the score run (no mask) */
    int64_t evaluated;         /* instance_metrics rows written */
    int64_t without_truth;     /* ok predictions with no ground truth */
    int64_t failed;            /* malformed RLE, truth or prediction */
    int64_t assumed_size;      /* evaluated at the assumed 1024 × 1024 */
    char **without_truth_uids; /* the first PNX_EVALUATE_MAX_LISTED of them */
    size_t n_without_truth_uids;
    pnx_metrics_summary summary;
} pnx_evaluate_report;

#define PNX_EVALUATE_MAX_LISTED 1000

/* Runs the stage on db. Per-instance problems are counted in the report
 * (and logged); the return is non-zero only for a fatal error (no such
 * score run, unreadable CSV, database failure), after which the evaluate
 * run is marked failed and instance_metrics is unchanged. */
int pnx_evaluate_stage_run(pnx_db *db, const pnx_evaluate_request *req,
                           pnx_evaluate_report *report);
void pnx_evaluate_report_free(pnx_evaluate_report *report);

#endif
