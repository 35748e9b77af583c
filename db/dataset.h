/*
 * db/dataset.h — the dataset stage's tables: ground_truth (one row per
 * ImageId of the RLE CSV), splits (one row per image placed in train, val
 * or test), and the dataset_unmatched view of schema v1.
 *
 * The dataset stage rebuilds both tables from its inputs on every run
 * (pnx_db_dataset_clear, then the puts, in one transaction opened by the
 * caller), so they always describe the caches last written and a rerun
 * leaves the same rows.
 */
#ifndef PNX_DB_DATASET_H
#define PNX_DB_DATASET_H

#include <stdint.h>

#include "db/db.h"

/* One ImageId of the RLE CSV, its rows united. */
typedef struct pnx_ground_truth_row {
    const char *sop_instance_uid;
    int positive;            /* 0/1: any non-empty row */
    int64_t mask_pixels;     /* pixels of the united mask */
    int rle_rows;            /* CSV rows for this ImageId (≥ 1) */
    uint32_t width;          /* size the RLE was decoded at */
    uint32_t height;
    const char *source_file; /* the CSV path as given */
} pnx_ground_truth_row;

/* Deletes every row of splits and ground_truth. */
int pnx_db_dataset_clear(pnx_db *db);

/* Prepared inserts for one stage run; run_id 0 stores NULL. */
typedef struct pnx_db_dataset_writer pnx_db_dataset_writer;

int pnx_db_dataset_writer_open(pnx_db_dataset_writer **out, pnx_db *db, int64_t run_id);
/* Inserts or replaces the ground_truth row of row->sop_instance_uid. */
int pnx_db_ground_truth_put(pnx_db_dataset_writer *w, const pnx_ground_truth_row *row);
/* Inserts or replaces a splits row. split is "train", "val" or "test";
 * patient_id may be NULL or "". */
int pnx_db_split_put(pnx_db_dataset_writer *w, const char *sop_instance_uid, const char *split,
                     const char *patient_id, int positive, int64_t seed);
void pnx_db_dataset_writer_close(pnx_db_dataset_writer *w);

/* Per split ("train", "val", "test" in that order): images and positive
 * images in the splits table. */
int pnx_db_split_counts(pnx_db *db, int64_t images[3], int64_t positives[3]);

/* Number of patients (non-NULL patient_id) whose images are in more than
 * one split: 0 is the split's promise, checked after every rebuild. */
int pnx_db_split_patients_in_several(pnx_db *db, int64_t *patients);

/* Rows of the dataset_unmatched view by kind. */
int pnx_db_dataset_unmatched_counts(pnx_db *db, int64_t *csv_rows_without_image,
                                    int64_t *images_without_csv_row);

/* Calls fn for every row of the view, ordered by kind then UID; a non-zero
 * return of fn stops the walk and is returned. */
int pnx_db_dataset_unmatched_each(pnx_db *db,
                                  int (*fn)(void *ctx, const char *kind, const char *uid,
                                            const char *path),
                                  void *ctx);

#endif
