/*
 * pipeline/report_stage.h — the report: one self-contained HTML page about
 * an evaluated score run.
 *
 * The page holds the provenance of the score run and of the train run
 * behind it (runs rows: hashes, version, git revision, host, device,
 * times), the summary metrics (run_summary), the training curves of that
 * train run (train_epochs: losses and validation Dice, drawn as inline
 * SVG), a histogram of per-image Dice (10 bins, inline SVG), and a gallery
 * of overlays (worst and best among images with pneumothorax, false
 * positives, false negatives) with each image's UID, Dice and TP/FP/FN.
 *
 * Self-contained means the page references no other file: CSS is inline and
 * the overlay PNGs are embedded as base64 data: URIs, so the page can be
 * mailed or archived alone. An overlay file that is missing or not a PNG is
 * shown as missing in the page (and counted), never an error. The page is
 * written atomically (common/fileio.h). The database is only read.
 */
#ifndef PNX_PIPELINE_REPORT_STAGE_H
#define PNX_PIPELINE_REPORT_STAGE_H

#include <stdint.h>

#include "db/db.h"

#define PNX_REPORT_GALLERY_PER_GROUP 4
/* An overlay bigger than this is not embedded (shown as missing). */
#define PNX_REPORT_MAX_IMAGE_BYTES ((size_t)64 << 20)

typedef struct pnx_report_request {
    int64_t run_id;          /* score run; 0 = the latest one with instance_metrics */
    const char *output_path; /* NULL: <output_dir>/report-run<ID>.html */
    const char *output_dir;  /* used when output_path is NULL; NULL = "." */
    const char *base_dir;    /* relative overlay paths are read from here; NULL = "." */
} pnx_report_request;

typedef struct pnx_report_result {
    int64_t run_id;          /* the score run reported */
    int64_t train_run_id;    /* 0 when none was found */
    int64_t evaluated;       /* instance_metrics rows of the run */
    double mean_dice;
    int images_embedded;
    int images_missing;
    char path[4096];         /* the page written */
} pnx_report_result;

/* Writes the page. Fails with PNX_ENOTFOUND when the run does not exist,
 * has no instance_metrics rows (not evaluated), or when run_id is 0 and no
 * score run has been evaluated; PNX_EIO when the page cannot be written. */
int pnx_report_write(pnx_db *db, const pnx_report_request *req, pnx_report_result *res);

#endif
