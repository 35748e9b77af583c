/*
 * db/train.h — the train stage's rows: one train_epochs row per finished
 * epoch, the checkpoint hash and parent of a train run in runs.
 *
 * Values that were not measured (no validation images, no positive
 * validation image for recall) are passed as NAN and stored as NULL.
 */
#ifndef PNX_DB_TRAIN_H
#define PNX_DB_TRAIN_H

#include <stdint.h>

#include "db/db.h"

/* One epoch of a training run; epoch counts from 1 over the whole training
 * (a resumed run goes on with the epoch after its checkpoint's). */
typedef struct pnx_train_epoch_row {
    int64_t epoch;
    int64_t steps;           /* optimiser steps taken in this epoch */
    double train_loss;       /* weighted total, mean over training images */
    double train_bce;        /* unweighted BCE part */
    double train_dice_loss;  /* unweighted soft-Dice loss part */
    double val_loss;         /* NAN = NULL */
    double val_dice;         /* mean per-image Dice, competition rule */
    double val_recall;       /* mean per-image recall over positive images */
    double learning_rate;
    double seconds;          /* wall time of the epoch, validation included */
    double images_per_s;     /* training images per second */
    const char *checkpoint_path; /* written at the end of this epoch, or NULL */
} pnx_train_epoch_row;

/* Inserts the row of (run_id, row->epoch); an existing row for that pair
 * is an error. */
int pnx_db_train_epoch_insert(pnx_db *db, int64_t run_id, const pnx_train_epoch_row *row);

/* Reads the row of (run_id, epoch) back; PNX_ENOTFOUND when absent.
 * checkpoint_path is not filled (the text would need an owner). */
int pnx_db_train_epoch_get(pnx_db *db, int64_t run_id, int64_t epoch, pnx_train_epoch_row *row);

/* Number of train_epochs rows of run_id. */
int pnx_db_train_epoch_count(pnx_db *db, int64_t run_id, int64_t *count);

/* Records the SHA-256 (hex) of the checkpoint a train run wrote. */
int pnx_db_run_set_model(pnx_db *db, int64_t run_id, const char *model_sha256);

/* Records that run_id continues parent_run_id (a resumed training). The
 * parent must exist. */
int pnx_db_run_set_parent(pnx_db *db, int64_t run_id, int64_t parent_run_id);

#endif
