/*
 * pipeline/score_stage.c — the score stage's driver: runs, resuming, the
 * decode window, batches, and the database rows; see score_stage.h.
 */
#include "pipeline/score_stage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/sha256.h"
#include "common/threadpool.h"
#include "db/instances.h"
#include "db/metrics.h"
#include "db/predictions.h"
#include "pipeline/config.h"
#include "pipeline/instance_row.h"
#include "pipeline/score_internal.h"
#include "pneumoseg_version.h"
#include "rle/rle.h"

/* ---- the state of one invocation ------------------------------------------ */

typedef struct batch_item {
    pnx_decode_result decoded;
    pnx_dicom_source src;
    int src_ok;
    char error[512];
    double infer_ms;
    pnx_score_item_result out;
} batch_item;

typedef struct score_state {
    pnx_db *db;
    const pnx_score_request *req;
    pnx_score_report *report;
    pnx_score_model model;
    pnx_score_output_settings settings;
    char uid_settings[512];
    char algorithm_version[65];
    pnx_pool *post_pool;
    pnx_db_predictions_writer *predictions;
    pnx_db_instances_writer *instances;
    pnx_str_set done_paths;
    pnx_str_set done_uids;
    batch_item *batch;
    int n_batch;
    float *probs;
    pnx_progress *progress;
} score_state;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The settings that change what a run writes, as one canonical line: part
 * of the run's configuration text (so its hash identifies the run to
 * resume) and of the derived UIDs. Batch size, threads and workers do not
 * change results and are left out. */
static int settings_line(const pnx_score_request *req, const pnx_postprocess_params *pp,
                         uint32_t side, char *out, size_t size)
{
    char post[256];
    int n = pnx_postprocess_settings_text(pp, post, sizeof post);
    if (n < 0 || (size_t)n >= sizeof post)
        return pnx_fail(PNX_EINVAL, "postprocess settings text");
    n = snprintf(out, size,
                 "%s;side=%u;tta_hflip=%d;dicom_dir=%s;output=%s;seg=%d;seg_negative=%s;"
                 "overlay=%d;overlay_size=%d;sc=%d;submission=%s;submission_format=%s",
                 post, side, req->tta_hflip ? 1 : 0, req->dicom_dir, req->output_dir,
                 req->seg_enabled ? 1 : 0, req->seg_negative == PNX_NEGSEG_NONE ? "none" : "empty",
                 req->overlay_enabled ? 1 : 0, req->overlay_size, req->secondary_capture ? 1 : 0,
                 req->submission_csv ? req->submission_csv : "",
                 pnx_rle_fmt_name((pnx_rle_fmt)req->submission_format));
    if (n < 0 || (size_t)n >= size)
        return pnx_fail(PNX_ERANGE, "score settings text too long");
    return 0;
}

/* What a derived UID depends on besides the source and the model: the
 * settings that change the mask (not where files go). */
static int uid_settings_text(const pnx_score_request *req, const pnx_postprocess_params *pp,
                             uint32_t side, char *out, size_t size)
{
    char post[256];
    int n = pnx_postprocess_settings_text(pp, post, sizeof post);
    if (n < 0 || (size_t)n >= sizeof post)
        return pnx_fail(PNX_EINVAL, "postprocess settings text");
    n = snprintf(out, size, "%s;side=%u;tta_hflip=%d", post, side, req->tta_hflip ? 1 : 0);
    return n < 0 || (size_t)n >= size ? pnx_fail(PNX_ERANGE, "UID settings text too long") : 0;
}

static int add_done(void *ctx, const char *uid, const char *path)
{
    score_state *st = ctx;
    int rc = pnx_str_set_add(&st->done_uids, uid);
    if (!rc && path)
        rc = pnx_str_set_add(&st->done_paths, path);
    return rc;
}

/* Opens the run: a named one, the unfinished identical one, or a new one. */
static int open_run(score_state *st, const char *config_text, const char *config_sha256)
{
    const pnx_score_request *req = st->req;
    pnx_score_report *rep = st->report;
    pnx_score_run run;
    int rc;
    if (req->resume_run > 0) {
        if ((rc = pnx_db_score_run_get(st->db, req->resume_run, &run)))
            return rc;
        if (strcmp(run.model_sha256, rep->model_sha256) != 0)
            return pnx_fail(PNX_EINVAL, "--resume %" PRId64 ": that run used another model "
                                        "(SHA-256 %.12s…, this one %.12s…)",
                            run.id, run.model_sha256, rep->model_sha256);
        if (strcmp(run.config_sha256, config_sha256) != 0)
            return pnx_fail(PNX_EINVAL, "--resume %" PRId64 ": that run had other settings "
                                        "(see its runs.config_text); give the same configuration "
                                        "and options",
                            run.id);
    } else {
        rc = req->fresh ? PNX_ENOTFOUND
                        : pnx_db_score_run_unfinished(st->db, config_sha256, rep->model_sha256,
                                                      &run);
        if (rc && rc != PNX_ENOTFOUND)
            return rc;
        if (rc == PNX_ENOTFOUND) {
            /* Linked to the train run that wrote the model when that run is
             * in this database (a checkpoint may come from elsewhere). */
            int64_t parent = 0;
            int known = 0;
            if (st->model.train_run_id > 0 &&
                (rc = pnx_db_run_exists(st->db, st->model.train_run_id, "train", &known)))
                return rc;
            if (known)
                parent = st->model.train_run_id;
            pnx_run_info info = {
                .stage = "score",
                .config_text = config_text,
                .config_sha256 = config_sha256,
                .model_sha256 = rep->model_sha256,
                .device = st->model.device,
                .parent_run_id = parent,
            };
            return pnx_db_run_begin(st->db, &info, &rep->run_id);
        }
    }
    if ((rc = pnx_db_score_run_reopen(st->db, run.id)))
        return rc;
    rep->run_id = run.id;
    rep->resumed = 1;
    return pnx_db_predictions_done_each(st->db, run.id, add_done, st);
}

/* Records a file that failed before scoring (decode) or during it. */
static int record_failure(score_state *st, const pnx_decode_result *r, const char *kind,
                          const char *message)
{
    int rc = pnx_db_predictions_begin(st->predictions);
    if (rc)
        return rc;
    st->report->failed++;
    pnx_log_warn("%s: %s: %s", r->path, kind, message);
    const int64_t size = r->meta.file_size >= 0 ? r->meta.file_size : -1;
    if (!r->meta.sop_uid[0])
        return pnx_db_ingest_error_put(st->instances, r->path, size, kind, message);
    if (pnx_str_set_has(&st->done_uids, r->meta.sop_uid)) {
        /* Another file with this UID was scored: its row stands, and this
         * copy is recorded by path, as ingest does. */
        char why[PNX_INGEST_MSG_MAX + 96];
        snprintf(why, sizeof why, "%s (its SOP Instance UID was scored from another file)",
                 message);
        return pnx_db_ingest_error_put(st->instances, r->path, size, kind, why);
    }
    /* The instances row stays an ok row when only the scoring failed. */
    if (r->error_kind != PNX_INGEST_OK) {
        pnx_instance_row row;
        pnx_instance_row_from_result(&row, r, kind, message);
        if ((rc = pnx_db_instance_put(st->instances, &row)))
            return rc;
    }
    char error[PNX_INGEST_MSG_MAX + 64];
    snprintf(error, sizeof error, "%s: %s", kind, message);
    pnx_prediction_row p = {
        .sop_instance_uid = r->meta.sop_uid,
        .study_instance_uid = r->meta.study_uid[0] ? r->meta.study_uid : NULL,
        .path = r->path,
        .ok = 0,
        .error = error,
        .decode_ms = r->decode_ms,
        .infer_ms = -1,
        .post_ms = -1,
    };
    return pnx_db_prediction_put(st->predictions, &p);
}

static int record_success(score_state *st, batch_item *it)
{
    const pnx_decode_result *r = &it->decoded;
    int rc = pnx_db_predictions_begin(st->predictions);
    if (rc)
        return rc;
    pnx_instance_row row;
    pnx_instance_row_from_result(&row, r, NULL, NULL);
    if ((rc = pnx_db_instance_put(st->instances, &row)))
        return rc;
    pnx_prediction_row p = {
        .sop_instance_uid = r->meta.sop_uid,
        .study_instance_uid = r->meta.study_uid[0] ? r->meta.study_uid : NULL,
        .path = r->path,
        .ok = 1,
        .max_probability = it->out.post.max_probability,
        .mask_pixels = it->out.post.mask_pixels,
        .area_mm2 = it->out.area_mm2,
        .positive = it->out.post.positive,
        .seg_path = it->out.seg_path,
        .overlay_path = it->out.overlay_path,
        .sc_path = it->out.sc_path,
        .mask_rle = it->out.mask_rle,
        .decode_ms = r->decode_ms,
        .infer_ms = it->infer_ms,
        .post_ms = it->out.post_ms,
    };
    if ((rc = pnx_db_prediction_put(st->predictions, &p)))
        return rc;
    st->report->scored++;
    st->report->positives += it->out.post.positive != 0;
    return 0;
}

static int outputs_range(void *ctx, size_t begin, size_t end)
{
    score_state *st = ctx;
    const size_t per = (size_t)st->model.side * st->model.side;
    for (size_t i = begin; i < end; i++) {
        batch_item *it = &st->batch[i];
        if (!it->src_ok)
            continue;
        const pnx_dicom_meta *m = &it->decoded.meta;
        if (pnx_score_item_outputs(&st->settings, &it->src, &it->decoded.image,
                                   st->probs + i * per, st->model.side, m->pixel_spacing_row,
                                   m->pixel_spacing_col, &it->out) != 0)
            snprintf(it->error, sizeof it->error, "%s", pnx_errmsg());
    }
    return 0;
}

/* Scores the collected batch and records every item. */
static int run_batch(score_state *st)
{
    const pnx_score_request *req = st->req;
    const int n = st->n_batch;
    if (n == 0)
        return 0;
    /* Headers first, serially: each is a fork(), done while no other thread
     * of ours is inside DCMTK. */
    for (int i = 0; i < n; i++) {
        batch_item *it = &st->batch[i];
        it->src_ok = pnx_score_read_source(it->decoded.path, req->limits.memory_limit_mb,
                                           req->limits.timeout_s, &it->src) == 0;
        if (!it->src_ok)
            snprintf(it->error, sizeof it->error, "header: %s", pnx_errmsg());
        else if (strcmp(it->src.sop_instance_uid, it->decoded.meta.sop_uid) != 0) {
            it->src_ok = 0;
            snprintf(it->error, sizeof it->error,
                     "the file changed while it was scored (SOP Instance UID differs)");
        }
    }
    /* The network sees the items whose header was read, packed in order;
     * probs keeps one map per batch slot. */
    const pnx_image *images[n];
    int slot[n];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (st->batch[i].src_ok) {
            images[m] = &st->batch[i].decoded.image;
            slot[m++] = i;
        }
    int rc = 0;
    if (m > 0) {
        const size_t per = (size_t)st->model.side * st->model.side;
        double t0 = now_ms();
        rc = pnx_score_model_predict(&st->model, images, m, req->tta_hflip, st->probs);
        if (rc)
            return pnx_fail_prefix(rc, "inference");
        double each = (now_ms() - t0) / m;
        /* Spread the packed maps out to their slots, last first. */
        for (int k = m - 1; k >= 0; k--) {
            if (slot[k] != k)
                memcpy(st->probs + (size_t)slot[k] * per, st->probs + (size_t)k * per,
                       per * sizeof *st->probs);
            st->batch[slot[k]].infer_ms = each;
        }
        if ((rc = pnx_pool_for(st->post_pool, (size_t)n, outputs_range, st)))
            return rc;
    }
    for (int i = 0; i < n && !rc; i++) {
        batch_item *it = &st->batch[i];
        /* Only a success claims the UID: another file with the same UID
         * may still replace an error row. */
        if (it->src_ok && !it->error[0]) {
            rc = record_success(st, it);
            if (!rc)
                rc = pnx_str_set_add(&st->done_uids, it->decoded.meta.sop_uid);
        } else {
            rc = record_failure(st, &it->decoded, "score", it->error);
        }
        pnx_progress_add(st->progress, 1);
    }
    for (int i = 0; i < n; i++) {
        pnx_score_item_result_free(&st->batch[i].out);
        pnx_decode_result_free(&st->batch[i].decoded);
    }
    memset(st->batch, 0, (size_t)n * sizeof *st->batch);
    st->n_batch = 0;
    return rc;
}

/* One decoded file: an error row, a duplicate, or a place in the batch. */
static int take_result(score_state *st, pnx_decode_result *r)
{
    if (r->error_kind != PNX_INGEST_OK) {
        int rc = record_failure(st, r, pnx_ingest_error_kind_name(r->error_kind), r->error);
        pnx_decode_result_free(r);
        pnx_progress_add(st->progress, 1);
        return rc;
    }
    int in_batch = 0;
    for (int i = 0; i < st->n_batch; i++)
        in_batch |= strcmp(st->batch[i].decoded.meta.sop_uid, r->meta.sop_uid) == 0;
    if (in_batch || pnx_str_set_has(&st->done_uids, r->meta.sop_uid)) {
        pnx_log_warn("%s: SOP Instance UID %s was already scored in this run; skipped", r->path,
                     r->meta.sop_uid);
        st->report->duplicates++;
        pnx_decode_result_free(r);
        pnx_progress_add(st->progress, 1);
        return 0;
    }
    st->batch[st->n_batch++].decoded = *r;
    memset(r, 0, sizeof *r);
    return st->n_batch == st->req->batch_size ? run_batch(st) : 0;
}

/* Threads that postprocess and write a batch's images. Writing waits on
 * fsync (every file and its folder, for atomicity) more than it computes,
 * so more threads than CPUs keep the disk busy; never more than a batch. */
static unsigned post_threads(const pnx_score_request *req)
{
    unsigned cpus = req->threads > 0 ? (unsigned)req->threads : pnx_cpu_count();
    unsigned n = 2 * cpus < 4 ? 4 : 2 * cpus;
    return n > (unsigned)req->batch_size ? (unsigned)req->batch_size : n;
}

static int stop_requested(const score_state *st)
{
    return st->req->stop && *st->req->stop;
}

static int score_files(score_state *st, pnx_decode_pool *pool, char **todo, size_t n_todo,
                       unsigned workers)
{
    /* Files in flight at most: enough to keep every worker busy while a
     * batch is scored, never the whole tree. */
    const size_t window = (size_t)st->req->batch_size + 2 * (size_t)workers;
    size_t next = 0;
    int rc = 0;
    while (!rc) {
        while (!stop_requested(st) && next < n_todo && pnx_decode_pool_pending(pool) < window) {
            if ((rc = pnx_decode_pool_submit(pool, next, todo[next], PNX_DECODE_PIXELS)))
                return rc;
            next++;
        }
        if (pnx_decode_pool_pending(pool) == 0)
            break;
        pnx_decode_result r;
        if ((rc = pnx_decode_pool_next(pool, &r)))
            break;
        if (stop_requested(st)) {
            /* Drain what is in flight without scoring it. */
            pnx_decode_result_free(&r);
            continue;
        }
        rc = take_result(st, &r);
    }
    if (!rc && !stop_requested(st))
        rc = run_batch(st);
    return rc;
}

/* ---- the stage -------------------------------------------------------------- */

static int check_request(const pnx_score_request *req)
{
    if (!req->dicom_dir || !req->model_path || !req->output_dir)
        return pnx_fail(PNX_EINVAL, "a DICOM folder, a model and an output folder are needed");
    if (req->batch_size < 1 || req->commit_every < 1)
        return pnx_fail(PNX_EINVAL, "batch_size and commit_every must be at least 1");
    if (req->overlay_size < 0 || req->overlay_size > 65535)
        return pnx_fail(PNX_EINVAL, "overlay size out of range");
    return pnx_postprocess_params_check(&req->post);
}

static int effective_config(const pnx_score_request *req, const char *line, char **text,
                            char sha[65])
{
    const char *yaml = req->config_text ? req->config_text : "";
    size_t len = strlen(yaml);
    size_t need = len + strlen(line) + 64;
    *text = malloc(need);
    if (!*text)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    snprintf(*text, need, "%s%s# pneumoseg score settings: %s\n", yaml,
             len && yaml[len - 1] != '\n' ? "\n" : "", line);
    return pnx_sha256_hex(*text, strlen(*text), sha);
}

static int finish(score_state *st, int rc)
{
    pnx_score_report *rep = st->report;
    if (rep->run_id <= 0)
        return rc;
    int64_t ok = 0, errors = 0, file_errors = 0;
    if (pnx_db_predictions_count(st->db, rep->run_id, &ok, &errors) == 0 &&
        pnx_db_instances_counts(st->db, rep->run_id, NULL, NULL, NULL, NULL, &file_errors) == 0) {
        rep->run_ok = ok;
        rep->run_failed = errors + file_errors;
    }
    char message[512];
    const char *status;
    if (rc) {
        status = "failed";
        snprintf(message, sizeof message, "%s", pnx_errmsg());
    } else if (rep->interrupted) {
        status = "interrupted";
        snprintf(message, sizeof message,
                 "interrupted after %" PRId64 " instances; rerun the same command to resume",
                 rep->run_ok + rep->run_failed);
    } else {
        status = rep->run_failed ? "partial" : "ok";
        snprintf(message, sizeof message, "%" PRId64 " scored (%" PRId64 " positive now), %" PRId64
                 " failed", rep->run_ok, rep->positives, rep->run_failed);
    }
    int frc = pnx_db_run_finish(st->db, rep->run_id, status, rep->run_ok, rep->run_failed,
                                message);
    if (rc) {
        pnx_fail(rc, "%s", message); /* keep the first failure's message */
        return rc;
    }
    return frc;
}

int pnx_score_stage_run(pnx_db *db, const pnx_score_request *req, pnx_score_report *report)
{
    memset(report, 0, sizeof *report);
    const double t0 = now_ms();
    int rc = check_request(req);
    if (rc)
        return rc;
    score_state st = {.db = db, .req = req, .report = report};
    pnx_ingest_file_list files = {0};
    pnx_decode_pool *pool = NULL;
    char *config_text = NULL;
    char **todo = NULL;
    size_t n_todo = 0;

    if ((rc = pnx_ingest_walk(req->dicom_dir, &files)))
        goto out;
    report->files = (int64_t)files.count;
    /* Workers are forked before the model's threads and memory exist. */
    unsigned workers = req->workers > 0 ? (unsigned)req->workers : pnx_cpu_count();
    if ((rc = pnx_decode_pool_create(&pool, workers, &req->limits)))
        goto out;
    if ((rc = pnx_score_model_load(&st.model, req->model_path, req->fallback_side,
                                   req->device, (unsigned)req->threads, req->precision,
                                   req->batch_size)))
        goto out;
    report->side = st.model.side;
    memcpy(report->model_sha256, st.model.sha256, sizeof report->model_sha256);
    if (!st.model.side_from_checkpoint)
        pnx_log_warn("%s has no %s metadata: assuming it was trained at %u x %u "
                     "(dataset.image_size)",
                     req->model_path, PNX_SCORE_META_IMAGE_SIZE, st.model.side, st.model.side);

    report->post = req->post;
    if (req->post.triplet_enabled && st.model.has_triplet) {
        pnx_postprocess_params *pp = &report->post;
        if (req->triplet_defaults & PNX_SCORE_TRIPLET_TOP)
            pp->top_threshold = st.model.triplet_top;
        if (req->triplet_defaults & PNX_SCORE_TRIPLET_MIN_AREA)
            pp->triplet_min_area = st.model.triplet_min_area;
        if (req->triplet_defaults & PNX_SCORE_TRIPLET_BOTTOM)
            pp->bottom_threshold = st.model.triplet_bottom;
        pnx_log_info("triplet rule: top %g, min_area %lld, bottom %g (the checkpoint's tuned "
                     "values where the YAML keeps the defaults)",
                     pp->top_threshold, (long long)pp->triplet_min_area, pp->bottom_threshold);
    }
    char line[4096 + 1024];
    char sha[65];
    if ((rc = settings_line(req, &report->post, st.model.side, line, sizeof line)) ||
        (rc = effective_config(req, line, &config_text, sha)) ||
        (rc = uid_settings_text(req, &report->post, st.model.side, st.uid_settings,
                                sizeof st.uid_settings)) ||
        (rc = open_run(&st, config_text, sha)))
        goto out;
    snprintf(st.algorithm_version, sizeof st.algorithm_version, "%s model %.12s",
             PNEUMOSEG_VERSION, st.model.sha256);
    st.settings = (pnx_score_output_settings){
        .output_dir = req->output_dir,
        .model_sha256 = st.model.sha256,
        .uid_settings = st.uid_settings,
        .algorithm_version = st.algorithm_version,
        .post = report->post,
        .seg_enabled = req->seg_enabled,
        .seg_skip_negative = req->seg_negative == PNX_NEGSEG_NONE,
        .overlay_enabled = req->overlay_enabled,
        .overlay_size = (uint32_t)req->overlay_size,
        .secondary_capture = req->secondary_capture,
    };
    if ((rc = pnx_mkdir_p(req->output_dir, 0755)))
        goto out;

    todo = malloc((files.count ? files.count : 1) * sizeof *todo);
    st.batch = calloc((size_t)req->batch_size, sizeof *st.batch);
    st.probs = malloc((size_t)req->batch_size * st.model.side * st.model.side * sizeof(float));
    if (!todo || !st.batch || !st.probs) {
        rc = pnx_fail(PNX_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < files.count; i++) {
        if (pnx_str_set_has(&st.done_paths, files.files[i].path))
            report->already_done++;
        else
            todo[n_todo++] = files.files[i].path;
    }
    if (report->resumed)
        pnx_log_info("score: resuming run %" PRId64 ": %" PRId64 " of %zu files already done",
                     report->run_id, report->already_done, files.count);
    if ((rc = pnx_pool_create(&st.post_pool, post_threads(req))) ||
        (rc = pnx_db_predictions_writer_open(&st.predictions, db, report->run_id,
                                             req->commit_every)) ||
        (rc = pnx_db_instances_writer_open(&st.instances, db, report->run_id)))
        goto out;
    st.progress = pnx_progress_start("score", n_todo);
    rc = score_files(&st, pool, todo, n_todo, workers);
    pnx_progress_finish(st.progress);
    st.progress = NULL;
    report->interrupted = !rc && stop_requested(&st);
    if (!rc)
        rc = pnx_db_predictions_flush(st.predictions);
    if (!rc && req->submission_csv && !report->interrupted)
        rc = pnx_score_write_submission(db, report->run_id, req->submission_csv, req->submission_format);

out:;
    char failure[PNX_ERRMSG_MAX];
    snprintf(failure, sizeof failure, "%s", rc ? pnx_errmsg() : "");
    for (int i = 0; st.batch && i < req->batch_size; i++) {
        pnx_score_item_result_free(&st.batch[i].out);
        pnx_decode_result_free(&st.batch[i].decoded);
    }
    if (rc && st.predictions)
        pnx_db_predictions_flush(st.predictions); /* rows whose files exist are kept */
    pnx_db_instances_writer_close(st.instances);
    pnx_db_predictions_writer_close(st.predictions);
    pnx_pool_destroy(st.post_pool);
    pnx_progress_finish(st.progress);
    if (rc)
        pnx_fail(rc, "%s", failure);
    rc = finish(&st, rc);
    free(st.batch);
    free(st.probs);
    free(todo);
    free(config_text);
    pnx_str_set_free(&st.done_paths);
    pnx_str_set_free(&st.done_uids);
    pnx_score_model_free(&st.model);
    pnx_decode_pool_destroy(pool);
    pnx_ingest_file_list_free(&files);
    report->seconds = (now_ms() - t0) / 1e3;
    return rc;
}
