/*
 * pipeline/train_stage.h — the work of `pneumoseg train`: the U-Net trained
 * on the dataset stage's caches, one validation pass per epoch, a ledger row
 * per epoch, checkpoints that resume exactly.
 *
 * Reproducibility: the order of epoch e and the augmentation of the item at
 * position p of epoch e come from their own RNG streams of the configured
 * seed, never from a stream carried across epochs. Together with the
 * checkpoint (weights, BatchNorm running stats, Adam moments and step,
 * epoch), a run resumed after epoch k computes exactly what the
 * uninterrupted run computes from epoch k + 1 on, on the same backend with
 * the same thread count.
 */
#ifndef PNX_PIPELINE_TRAIN_STAGE_H
#define PNX_PIPELINE_TRAIN_STAGE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "pipeline/config.h"

/* The caches the dataset stage writes into its cache folder. */
#define PNX_TRAIN_CACHE_TRAIN "train.safetensors"
#define PNX_TRAIN_CACHE_VAL "val.safetensors"

/* A prediction is positive where the probability exceeds this (logit > 0). */
#define PNX_TRAIN_THRESHOLD 0.5

/* ---- validation metrics (competition rules) ------------------------------- */

typedef struct pnx_val_metrics {
    int64_t images;
    int64_t positives;    /* images whose truth is not empty */
    double dice_sum;      /* per-image Dice, 1 when truth and prediction are empty */
    double dice_positive_sum;
    double recall_sum;    /* over positive images */
    double loss_sum;      /* batch loss × batch images */
} pnx_val_metrics;

/* Adds one image: logits and 0/1 target of pixels elements. */
void pnx_val_metrics_add(pnx_val_metrics *vm, const float *logits, const float *target,
                         size_t pixels);
/* Means; NAN where nothing was counted. */
double pnx_val_metrics_dice(const pnx_val_metrics *vm);
double pnx_val_metrics_dice_positive(const pnx_val_metrics *vm);
double pnx_val_metrics_recall(const pnx_val_metrics *vm);
double pnx_val_metrics_loss(const pnx_val_metrics *vm);

/* ---- sampling ------------------------------------------------------------------ */

/* Fills order[0..n) with the training items of epoch (≥ 1). positive[i]
 * says whether item i has a non-empty mask. positive_fraction 0 takes every
 * item once; p > 0 makes round(p·n) of the n slots positive items and the
 * rest negative ones, cycling through each class (so some repeat and some
 * are left out), and falls back to every item once when a class is empty.
 * shuffle 0 keeps the cache order (classes interleaved evenly when p > 0);
 * shuffle 1 permutes from the (seed, epoch) stream. */
int pnx_train_epoch_order(const uint8_t *positive, uint32_t n, double positive_fraction,
                          int shuffle, uint64_t seed, int64_t epoch, uint32_t *order);

/* ---- the stage ----------------------------------------------------------------- */

typedef struct pnx_trainer pnx_trainer;

typedef struct pnx_train_summary {
    int64_t first_epoch;      /* first epoch trained by this call */
    int64_t last_epoch;       /* last one; < first_epoch when there was nothing to do */
    int64_t steps;            /* optimiser steps of the model in total */
    double train_loss;        /* of the last epoch */
    double val_loss;
    double val_dice;
    double val_dice_positive;
    double val_recall;
    double best_val_dice;     /* NAN when no validation ran */
    int64_t best_epoch;
    double seconds;           /* this call */
    int interrupted;          /* the stop flag ended it; the epoch in progress is lost */
    char model_sha256[65];    /* of the final checkpoint ("" when none written) */
} pnx_train_summary;

/* Opens the caches under cfg->cache_dir (checking sizes and masks), picks
 * the device, builds the model from --resume's checkpoint, --init's, or the
 * seed. cfg is copied where needed; it must outlive the trainer. */
int pnx_trainer_open(pnx_trainer **out, const pnx_train_config *cfg);
void pnx_trainer_close(pnx_trainer *t);

/* A flag (set by a signal handler) checked before every batch: when it is
 * non-zero, pnx_trainer_run stops, leaving the last checkpoint as it was,
 * and reports interrupted. The model in memory is then mid-epoch: a later
 * pnx_trainer_run on this trainer is refused; open a new one with resume.
 * NULL: never. */
void pnx_trainer_set_stop(pnx_trainer *t, volatile sig_atomic_t *stop);

/* "cpu" (what the runs row records). */
const char *pnx_trainer_device(const pnx_trainer *t);
/* The train run a resumed checkpoint came from, or 0. */
int64_t pnx_trainer_parent_run(const pnx_trainer *t);
/* The first epoch the next pnx_trainer_run will train. */
int64_t pnx_trainer_next_epoch(const pnx_trainer *t);

/* Trains up to cfg->epochs, validating each epoch, inserting train_epochs
 * rows under run_id (db may be NULL: no rows), writing checkpoints to
 * cfg->model every checkpoint_every epochs and after the last, and
 * <model stem>.best.safetensors when validation Dice improves, and the
 * training curve <model stem>.curve.svg after every epoch. */
int pnx_trainer_run(pnx_trainer *t, pnx_db *db, int64_t run_id, pnx_train_summary *summary);

/* Files written beside the checkpoint: "<model stem><suffix>", the stem
 * being the model path without ".safetensors" (malloc'd; NULL when out of
 * memory). */
#define PNX_TRAIN_BEST_SUFFIX ".best.safetensors"
#define PNX_TRAIN_CURVE_SUFFIX ".curve.svg"
char *pnx_train_sibling_path(const char *model_path, const char *suffix);

#endif
