/*
 * db/metrics.h — the evaluate stage's rows: `instance_metrics` (schema v1)
 * and what evaluate reads around it (ground truth rows, native sizes), and
 * the run summary from the `run_summary` view.
 *
 * instance_metrics rows are keyed by the *score* run they evaluate
 * (docs/database.md), so `run_summary`, `study_metrics` and joins with
 * `predictions` line up on one run id. Evaluating a score run again
 * replaces its rows (pnx_db_metrics_clear then puts, in one transaction
 * the caller opens). Dice, recall and precision are generated columns of
 * the schema: only pixel counts are written.
 */
#ifndef PNX_DB_METRICS_H
#define PNX_DB_METRICS_H

#include <stdint.h>

#include "db/db.h"

/* One evaluated instance. */
typedef struct pnx_instance_metrics_row {
    const char *sop_instance_uid;
    const char *study_instance_uid; /* may be NULL */
    int64_t tp, fp, fn;             /* pixels at native size */
    int truth_positive;             /* 0/1 */
    int pred_positive;              /* 0/1 */
} pnx_instance_metrics_row;

/* Deletes the instance_metrics rows of score run run_id. */
int pnx_db_metrics_clear(pnx_db *db, int64_t run_id);

typedef struct pnx_db_metrics_writer pnx_db_metrics_writer;

int pnx_db_metrics_writer_open(pnx_db_metrics_writer **out, pnx_db *db, int64_t run_id);
/* Inserts or replaces the row of row->sop_instance_uid. */
int pnx_db_metrics_put(pnx_db_metrics_writer *w, const pnx_instance_metrics_row *row);
void pnx_db_metrics_writer_close(pnx_db_metrics_writer *w);

/* The ground_truth row of an instance, as evaluate needs it. */
typedef struct pnx_truth_ref {
    char source_file[4096];   /* the CSV the dataset stage read */
    uint32_t width, height;   /* size the RLE was decoded at */
    int64_t mask_pixels;      /* of the united mask, when it was loaded */
    int positive;
} pnx_truth_ref;

/* Looks sop_instance_uid up in ground_truth: 0 with *ref filled, or
 * PNX_ENOTFOUND (no message recorded: an expected answer). */
int pnx_db_truth_lookup(pnx_db *db, const char *sop_instance_uid, pnx_truth_ref *ref);

/* The native size of an instance from the instances table (rows, columns of
 * an 'ok' row): 0, or PNX_ENOTFOUND (no message recorded). */
int pnx_db_instance_size(pnx_db *db, const char *sop_instance_uid, uint32_t *width,
                         uint32_t *height);

/* The summary of an evaluated score run, from the run_summary view and
 * instance_metrics. Means are NAN when there is nothing to average. */
typedef struct pnx_metrics_summary {
    int64_t evaluated;          /* instance_metrics rows */
    int64_t truth_positive;     /* images whose truth has pneumothorax */
    int64_t truth_negative;
    int64_t true_positive;      /* image level: truth positive, prediction positive */
    int64_t false_negative;     /* truth positive, prediction empty */
    int64_t true_negative;
    int64_t false_positive;
    double mean_dice;           /* over all images: the competition's score */
    double mean_dice_positive;  /* over images with positive truth */
    double mean_recall;         /* over images with positive truth */
    double sensitivity;         /* image level */
    double specificity;
    int64_t tp, fp, fn;         /* pixel counts summed over the run */
} pnx_metrics_summary;

int pnx_db_metrics_summary(pnx_db *db, int64_t run_id, pnx_metrics_summary *s);

#endif
