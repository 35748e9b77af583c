/*
 * pipeline/score_stage.h — the score stage: every image of a DICOM tree
 * through the U-Net, to a mask, output files and a predictions row.
 *
 * The flow (one process, one database writer):
 *   walk the tree → isolated decode workers (ingest/, a bounded window of
 *   files in flight) → batches of batch_size decoded images → the header of
 *   each source read in a child process (for the SEG's patient and study)
 *   → inference on the CPU at the checkpoint's training size → per image,
 *   on a thread pool: probabilities resized back to native size,
 *   thresholded and cleaned (postprocess/), SEG, PNG overlay, optional
 *   Secondary Capture, each written atomically → back on the main thread:
 *   the instances row and the predictions row, committed every
 *   commit_every instances. A row is committed only after its files are in
 *   place. Memory holds one batch of images and the list of paths.
 *
 * Resuming: a run is identified by its configuration text (the YAML, plus
 * a comment line with the effective settings the command line changed) and
 * the checkpoint's SHA-256. Rerunning the same command after a crash or an
 * interruption continues the latest unfinished run with the same two
 * hashes; --resume RUN_ID names a run explicitly (refused when its hashes
 * differ). Files whose predictions row is ok in that run are skipped; error
 * rows are tried again. Output names and UIDs are derived from the source
 * UIDs, the model hash and the settings, so a resumed run writes exactly
 * what an uninterrupted one would.
 *
 * Bad input: a file that cannot be decoded gets a predictions row with
 * status 'error' (and its instances row), or, when even its SOP Instance
 * UID could not be read, an ingest_errors row; the batch goes on.
 */
#ifndef PNX_PIPELINE_SCORE_STAGE_H
#define PNX_PIPELINE_SCORE_STAGE_H

#include <signal.h>
#include <stdint.h>

#include "db/db.h"
#include "ingest/ingest.h"
#include "postprocess/postprocess.h"

enum {
    PNX_SCORE_TRIPLET_TOP = 1,
    PNX_SCORE_TRIPLET_MIN_AREA = 2,
    PNX_SCORE_TRIPLET_BOTTOM = 4,
};

typedef struct pnx_score_request {
    const char *dicom_dir;        /* tree (or one file) to score */
    const char *model_path;       /* checkpoint */
    const char *output_dir;       /* outputs go under it, by study and series */
    int device;                   /* enum pnx_device: auto, cpu or cuda */
    int precision;                /* enum pnx_precision: tf32 and bf16 on a GPU */
    int batch_size;
    int threads;                  /* CPU threads, 0 = all */
    int workers;                  /* decode processes, 0 = CPU count */
    pnx_ingest_limits limits;
    pnx_postprocess_params post;
    /* Which triplet values the YAML left at their defaults (bits
     * PNX_SCORE_TRIPLET_*): those come from the checkpoint's tuned
     * thresholds when it has them. */
    unsigned triplet_defaults;
    int tta_hflip;
    int seg_enabled;
    int seg_negative;             /* enum pnx_negative_seg */
    int overlay_enabled;
    int overlay_size;             /* longest side, 0 = native */
    int secondary_capture;
    const char *submission_csv;   /* NULL = none */
    int submission_format;        /* enum pnx_rle_format */
    int commit_every;
    uint32_t fallback_side;       /* training side when the checkpoint has none */
    int64_t resume_run;           /* 0: resume an unfinished identical run if any */
    int fresh;                    /* 1: never resume automatically */
    const char *config_text;      /* the YAML text; may be NULL */
    volatile sig_atomic_t *stop;  /* set (by a signal handler) to stop early; may be NULL */
} pnx_score_request;

typedef struct pnx_score_report {
    int64_t run_id;
    int resumed;                  /* continued an existing run */
    uint32_t side;                /* the network's input side */
    pnx_postprocess_params post;  /* the postprocess settings used */
    char model_sha256[65];
    int64_t files;                /* candidate files found */
    int64_t already_done;         /* skipped: ok in the run before */
    int64_t scored;               /* ok now */
    int64_t positives;            /* of those, with a non-empty mask */
    int64_t failed;               /* error rows written now */
    int64_t duplicates;           /* files whose SOP UID was already scored in the run */
    int64_t run_ok, run_failed;   /* totals of the run, resumed parts included */
    int interrupted;              /* stopped by req->stop */
    double seconds;
} pnx_score_report;

/* Runs the stage. Returns non-zero only for a fatal error (model, database,
 * output folder); per-file problems are counted in the report. */
int pnx_score_stage_run(pnx_db *db, const pnx_score_request *req, pnx_score_report *report);

#endif
