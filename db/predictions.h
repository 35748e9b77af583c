/*
 * db/predictions.h — the score stage's rows: one `predictions` row per
 * scored instance and run (schema v1), and the score runs themselves as far
 * as resuming and evaluating need them.
 *
 * Promises:
 *  - A row is inserted only when the caller says its output files are in
 *    place; rows are committed in batches of commit_every (one transaction
 *    each), so a crash loses at most the uncommitted batch, whose instances
 *    a resumed run scores again (their files are rewritten to the same
 *    names, atomically).
 *  - Putting a row for an instance that already has one in the run
 *    replaces it (a retried error row becomes ok), so a run never holds two
 *    rows for one SOP Instance UID (the primary key says so too).
 *  - Only the main process's single writing connection uses a writer.
 */
#ifndef PNX_DB_PREDICTIONS_H
#define PNX_DB_PREDICTIONS_H

#include <stdint.h>

#include "db/db.h"

/* One predictions row. Strings may be NULL (stored as NULL) except
 * sop_instance_uid. */
typedef struct pnx_prediction_row {
    const char *sop_instance_uid;
    const char *study_instance_uid;
    const char *path;            /* the source DICOM file */
    int ok;                      /* 1: status 'ok'; 0: status 'error' */
    const char *error;           /* why, when !ok */
    /* Only for ok rows (error rows store NULL): */
    double max_probability;
    int64_t mask_pixels;         /* at native size */
    double area_mm2;             /* < 0: unknown (no pixel spacing), stored NULL */
    int positive;
    const char *seg_path;        /* NULL when not written */
    const char *overlay_path;
    const char *sc_path;
    const char *mask_rle;        /* native-size mask, SIIM relative RLE */
    /* Timings in milliseconds; < 0 stores NULL. */
    double decode_ms;
    double infer_ms;
    double post_ms;
} pnx_prediction_row;

typedef struct pnx_db_predictions_writer pnx_db_predictions_writer;

/* Prepares the insert for run_id; commit_every ≥ 1 rows per transaction. */
int pnx_db_predictions_writer_open(pnx_db_predictions_writer **out, pnx_db *db, int64_t run_id,
                                   int commit_every);
/* Opens the batch's transaction now if none is open, so that the caller's
 * other rows of the same instance (db/instances.h) commit together with its
 * predictions row. */
int pnx_db_predictions_begin(pnx_db_predictions_writer *w);
/* Inserts (or replaces) a row, opening a transaction when none is open and
 * committing when commit_every rows are pending. */
int pnx_db_prediction_put(pnx_db_predictions_writer *w, const pnx_prediction_row *row);
/* Commits the pending rows, if any. */
int pnx_db_predictions_flush(pnx_db_predictions_writer *w);
/* Rows put so far and committed. */
int64_t pnx_db_predictions_committed(const pnx_db_predictions_writer *w);
/* Rolls back what is still pending (call flush first to keep it) and frees.
 * NULL is fine. */
void pnx_db_predictions_writer_close(pnx_db_predictions_writer *w);

/* Calls fn for every row of run_id whose status is 'ok' (what a resumed run
 * skips), in SOP Instance UID order. A non-zero return of fn stops the walk
 * and is returned. */
int pnx_db_predictions_done_each(pnx_db *db, int64_t run_id,
                                 int (*fn)(void *ctx, const char *sop_instance_uid,
                                           const char *path),
                                 void *ctx);

/* What evaluate reads of a prediction. Strings valid during the callback. */
typedef struct pnx_prediction_view {
    const char *sop_instance_uid;
    const char *study_instance_uid; /* may be NULL */
    const char *path;               /* may be NULL */
    int ok;
    const char *mask_rle;           /* NULL for error rows */
    int positive;
} pnx_prediction_view;

/* Calls fn for every row of run_id (ok and error), in SOP Instance UID
 * order. A non-zero return of fn stops the walk and is returned. */
int pnx_db_predictions_each(pnx_db *db, int64_t run_id,
                            int (*fn)(void *ctx, const pnx_prediction_view *row), void *ctx);

/* Counts of a run's rows by status. */
int pnx_db_predictions_count(pnx_db *db, int64_t run_id, int64_t *ok, int64_t *error);

/* ---- score runs ---------------------------------------------------------- */

typedef struct pnx_score_run {
    int64_t id;
    char status[16];          /* running, ok, partial, failed, interrupted */
    int finished;             /* finished_at is set */
    char config_sha256[65];
    char model_sha256[65];    /* "" when NULL */
} pnx_score_run;

/* The score run id (stage 'score'), or with id 0 the latest one. Fails with
 * PNX_ENOTFOUND ("no score run …") when there is none, PNX_EINVAL when the
 * run exists but is not a score run. */
int pnx_db_score_run_get(pnx_db *db, int64_t id, pnx_score_run *run);

/* The latest score run that did not finish (killed, or interrupted) with
 * this configuration and model hash: what rerunning the same command
 * resumes. PNX_ENOTFOUND when there is none. */
int pnx_db_score_run_unfinished(pnx_db *db, const char *config_sha256,
                                const char *model_sha256, pnx_score_run *run);

/* Marks a run 'running' again (finished_at cleared) before resuming it. */
int pnx_db_score_run_reopen(pnx_db *db, int64_t id);

#endif
