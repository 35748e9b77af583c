/*
 * db/report.h — what `pneumoseg report` reads: the runs rows of a score run
 * and of the train run behind it, the training curves, the Dice values and
 * the gallery cases of the evaluation. Read only; every function returns
 * typed rows the caller owns. The summary numbers come from
 * pnx_db_metrics_summary() (db/metrics.h, the run_summary view).
 */
#ifndef PNX_DB_REPORT_H
#define PNX_DB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* One runs row, as the report shows it. Text columns are copied (truncated
 * to their buffers, which fit what pneumoseg writes); NULL columns are "". */
typedef struct pnx_report_run {
    int64_t id;
    char stage[32];
    char status[16];
    char started_at[40];
    char finished_at[40];
    char config_sha256[72];
    char model_sha256[72];
    char software_version[64];
    char git_revision[64];
    char host[256];
    char device[64];
    char message[512];
    int64_t parent_run_id;    /* 0 = none */
    int64_t n_ok, n_failed;
} pnx_report_run;

/* The latest score run that has instance_metrics rows: 0 with *run_id, or
 * PNX_ENOTFOUND with a message saying nothing has been evaluated. */
int pnx_db_report_latest_evaluated_run(pnx_db *db, int64_t *run_id);

/* The runs row run_id: 0, or PNX_ENOTFOUND (message recorded). */
int pnx_db_report_run(pnx_db *db, int64_t run_id, pnx_report_run *row);

/* How the train run behind a score run was found. */
enum pnx_report_train_link {
    PNX_REPORT_TRAIN_NONE = 0,
    PNX_REPORT_TRAIN_PARENT,       /* the score run's parent_run_id */
    PNX_REPORT_TRAIN_SAME_MODEL,   /* a train run with the score run's model_sha256 */
    PNX_REPORT_TRAIN_EARLIER,      /* the latest train run started before it */
};

/* The train run behind score run `score`: *train_id and *link, or
 * *train_id = 0 and PNX_REPORT_TRAIN_NONE when there is none (returns 0). */
int pnx_db_report_train_run_for(pnx_db *db, const pnx_report_run *score, int64_t *train_id,
                                int *link);

/* One train_epochs row; NAN where the column is NULL. */
typedef struct pnx_report_epoch {
    int64_t epoch;
    double train_loss, val_loss, val_dice, learning_rate, seconds;
} pnx_report_epoch;

/* The epochs of run_id in order, into a malloc'd array (*n may be 0). */
int pnx_db_report_epochs(pnx_db *db, int64_t run_id, pnx_report_epoch **rows, size_t *n);

/* Every instance_metrics.dice of run_id, into a malloc'd array. */
int pnx_db_report_dice_values(pnx_db *db, int64_t run_id, double **values, size_t *n);

/* The picked groups of the gallery. */
enum pnx_report_case_kind {
    PNX_REPORT_WORST = 0,    /* lowest Dice among images with pneumothorax */
    PNX_REPORT_BEST,         /* highest Dice among images with pneumothorax */
    PNX_REPORT_FALSE_POS,    /* truth empty, prediction not: most FP pixels first */
    PNX_REPORT_FALSE_NEG,    /* truth positive, prediction empty: most FN first */
    PNX_REPORT_N_KINDS
};

/* One evaluated image with its overlay. */
typedef struct pnx_report_case {
    char *sop_instance_uid;
    char *overlay_path;      /* NULL when the prediction has none */
    double dice;
    int64_t tp, fp, fn;
    int truth_positive, pred_positive;
} pnx_report_case;

/* Up to limit cases of kind from run_id, into a malloc'd array; free with
 * pnx_db_report_cases_free. */
int pnx_db_report_cases(pnx_db *db, int64_t run_id, int kind, int limit,
                        pnx_report_case **cases, size_t *n);
void pnx_db_report_cases_free(pnx_report_case *cases, size_t n);

#endif
