/*
 * pipeline/dataset_stage.h — the dataset stage: rebuilding train/val/test
 * from a DICOM tree and an RLE CSV. The only place where ingest/, rle/,
 * preprocess/ and db/ meet for it; `pneumoseg dataset` (cmd_dataset.c) is
 * its command line.
 *
 * What a run does, in order:
 *   1. indexes the CSV (rle/, every row's syntax checked; a file that is not
 *      an RLE CSV stops the run);
 *   2. walks the DICOM tree and reads every file's header through ingest's
 *      isolated workers (a bad file becomes an error row and is skipped);
 *   3. joins images and CSV ImageIds by SOP Instance UID, decodes each
 *      matched mask at its image's size (a run outside the image is an
 *      error for that image), and reports the unmatched both ways;
 *   4. splits the matched images by patient, stratified (preprocess/split.h);
 *   5. decodes the pixels of the split images in the workers, resizes image
 *      and mask to the training resolution (preprocess/resize.h, masks with
 *      PNX_MASK_ANY) and writes <cache_dir>/{train,val,test}.safetensors
 *      (preprocess/cache.h), each sorted by SOP Instance UID, and with a PNG
 *      folder <png_dir>/{train,val,test}/{inputs,labels}/<uid>.png;
 *   6. rewrites the ground_truth and splits tables in one transaction.
 * The same inputs and settings give byte-identical caches and the same rows.
 */
#ifndef PNX_PIPELINE_DATASET_STAGE_H
#define PNX_PIPELINE_DATASET_STAGE_H

#include <stdint.h>

#include "db/db.h"
#include "pipeline/config.h"

/* Mask areas of the positive matched images at native size, in pixels. */
typedef struct pnx_mask_area_stats {
    int64_t count;
    int64_t min, p10, median, p90, max;
    double mean_fraction;    /* mean of mask pixels / image pixels */
} pnx_mask_area_stats;

typedef struct pnx_dataset_report {
    int64_t files;                   /* candidate DICOM files walked */
    int64_t files_skipped;           /* regular files that are not DICOM candidates */
    int64_t instances;               /* files whose header was read */
    int64_t file_errors;             /* files that could not be read or decoded */
    int64_t duplicate_uids;          /* files repeating a SOP Instance UID (later paths skipped) */
    int64_t csv_rows;
    int64_t csv_images;              /* distinct ImageIds */
    int64_t csv_positive_images;
    int64_t matched;                 /* images with a CSV row and a valid mask */
    int64_t csv_without_image;
    int64_t images_without_csv;
    int64_t mask_errors;             /* matched, but the RLE does not fit the image */
    int64_t split_images[3];         /* in the caches: train, val, test */
    int64_t split_positives[3];
    int64_t split_patients[3];
    int64_t split_target[3];
    int64_t left_out;                /* matched images in no split (absolute counts) */
    pnx_mask_area_stats areas;
    double header_seconds;           /* pass 1 */
    double pixel_seconds;            /* pass 2: decode + resize + cache */
    double images_per_s;             /* pass 2 images / pixel_seconds */
    char cache_paths[3][4096];
} pnx_dataset_report;

/* Runs the stage with cfg->dataset and cfg->ingest (paths resolved by the
 * caller: dataset.dicom_dir, rle_csv and cache_dir must be set). Database
 * rows carry run_id. Returns 0 when the caches were written (per-file
 * problems are counted in rep, not failures), or a negative code for a
 * failure that stops the stage (unreadable CSV, no DICOM folder, impossible
 * split counts, a write error). */
int pnx_dataset_build(const pnx_config *cfg, pnx_db *db, int64_t run_id,
                      pnx_dataset_report *rep);

#endif
