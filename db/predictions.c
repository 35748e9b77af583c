/*
 * db/predictions.c — predictions rows and score-run lookups; see
 * predictions.h.
 */
#include "db/predictions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

static const char SQL_INSERT_PREDICTION[] =
    "INSERT OR REPLACE INTO predictions (run_id, sop_instance_uid, study_instance_uid, path,"
    " status, error, max_probability, mask_pixels, area_mm2, positive, seg_path, overlay_path,"
    " sc_path, mask_rle, decode_ms, infer_ms, post_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

struct pnx_db_predictions_writer {
    pnx_db *db;
    int64_t run_id;
    int commit_every;
    int in_tx;               /* a batch transaction is open */
    int pending;             /* rows in the open transaction */
    int64_t committed;
    sqlite3_stmt *insert;
};

int pnx_db_predictions_writer_open(pnx_db_predictions_writer **out, pnx_db *db, int64_t run_id,
                                   int commit_every)
{
    *out = NULL;
    if (!db || run_id <= 0 || commit_every < 1)
        return pnx_fail(PNX_EINVAL, "predictions writer: bad run id or commit_every");
    pnx_db_predictions_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    w->db = db;
    w->run_id = run_id;
    w->commit_every = commit_every;
    int rc = pnx_db_prepare(db, SQL_INSERT_PREDICTION, &w->insert);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int bind_double_or_null(sqlite3_stmt *st, int index, double v, int is_null)
{
    int rc = is_null ? sqlite3_bind_null(st, index) : sqlite3_bind_double(st, index, v);
    return rc == SQLITE_OK ? 0 : pnx_fail(PNX_EDB, "bind parameter %d failed", index);
}

static int bind_row(sqlite3_stmt *st, int64_t run_id, const pnx_prediction_row *r)
{
    int ok = r->ok != 0;
    int rc = sqlite3_bind_int64(st, 1, run_id) == SQLITE_OK ? 0
                                                            : pnx_fail(PNX_EDB, "bind run id");
    if (!rc)
        rc = pnx_db_bind_text(st, 2, r->sop_instance_uid);
    if (!rc)
        rc = pnx_db_bind_text(st, 3, r->study_instance_uid);
    if (!rc)
        rc = pnx_db_bind_text(st, 4, r->path);
    if (!rc)
        rc = pnx_db_bind_text(st, 5, ok ? "ok" : "error");
    if (!rc)
        rc = pnx_db_bind_text(st, 6, ok ? NULL : (r->error ? r->error : "unknown error"));
    if (!rc)
        rc = bind_double_or_null(st, 7, r->max_probability, !ok);
    if (!rc)
        rc = (ok ? sqlite3_bind_int64(st, 8, r->mask_pixels) : sqlite3_bind_null(st, 8)) ==
                     SQLITE_OK
                 ? 0
                 : pnx_fail(PNX_EDB, "bind mask_pixels");
    if (!rc)
        rc = bind_double_or_null(st, 9, r->area_mm2, !ok || r->area_mm2 < 0);
    if (!rc)
        rc = (ok ? sqlite3_bind_int(st, 10, r->positive ? 1 : 0) : sqlite3_bind_null(st, 10)) ==
                     SQLITE_OK
                 ? 0
                 : pnx_fail(PNX_EDB, "bind positive");
    if (!rc)
        rc = pnx_db_bind_text(st, 11, ok ? r->seg_path : NULL);
    if (!rc)
        rc = pnx_db_bind_text(st, 12, ok ? r->overlay_path : NULL);
    if (!rc)
        rc = pnx_db_bind_text(st, 13, ok ? r->sc_path : NULL);
    if (!rc)
        rc = pnx_db_bind_text(st, 14, ok ? r->mask_rle : NULL);
    if (!rc)
        rc = bind_double_or_null(st, 15, r->decode_ms, r->decode_ms < 0);
    if (!rc)
        rc = bind_double_or_null(st, 16, r->infer_ms, r->infer_ms < 0);
    if (!rc)
        rc = bind_double_or_null(st, 17, r->post_ms, r->post_ms < 0);
    return rc;
}

int pnx_db_predictions_begin(pnx_db_predictions_writer *w)
{
    if (w->in_tx)
        return 0;
    int rc = pnx_db_begin(w->db);
    if (rc)
        return pnx_fail_prefix(rc, "predictions: begin");
    w->in_tx = 1;
    return 0;
}

int pnx_db_prediction_put(pnx_db_predictions_writer *w, const pnx_prediction_row *row)
{
    if (!row || !row->sop_instance_uid || !row->sop_instance_uid[0])
        return pnx_fail(PNX_EINVAL, "predictions row without a SOP Instance UID");
    if (row->ok && !row->mask_rle)
        return pnx_fail(PNX_EINVAL, "predictions row for %s: an ok row needs its mask RLE",
                        row->sop_instance_uid);
    int rc = pnx_db_predictions_begin(w);
    if (rc)
        return rc;
    rc = bind_row(w->insert, w->run_id, row);
    if (!rc && sqlite3_step(w->insert) != SQLITE_DONE)
        rc = pnx_db_fail(w->db, "insert predictions row");
    sqlite3_reset(w->insert);
    sqlite3_clear_bindings(w->insert);
    if (rc) {
        /* The batch is not lost: its rows stay pending in the open
         * transaction; the caller decides whether to flush or give up. */
        return pnx_fail_prefix(rc, "%s", row->sop_instance_uid);
    }
    w->pending++;
    if (w->pending >= w->commit_every)
        return pnx_db_predictions_flush(w);
    return 0;
}

int pnx_db_predictions_flush(pnx_db_predictions_writer *w)
{
    if (!w || !w->in_tx)
        return 0;
    int rc = pnx_db_commit(w->db);
    if (rc)
        return pnx_fail_prefix(rc, "predictions: commit");
    w->in_tx = 0;
    w->committed += w->pending;
    w->pending = 0;
    return 0;
}

int64_t pnx_db_predictions_committed(const pnx_db_predictions_writer *w)
{
    return w ? w->committed : 0;
}

void pnx_db_predictions_writer_close(pnx_db_predictions_writer *w)
{
    if (!w)
        return;
    if (w->in_tx)
        pnx_db_rollback(w->db);
    sqlite3_finalize(w->insert);
    free(w);
}

int pnx_db_predictions_done_each(pnx_db *db, int64_t run_id,
                                 int (*fn)(void *ctx, const char *sop_instance_uid,
                                           const char *path),
                                 void *ctx)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT sop_instance_uid, path FROM predictions"
                            " WHERE run_id = ?1 AND status = 'ok' ORDER BY sop_instance_uid",
                            &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1));
        if (rc)
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "read predictions");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_predictions_each(pnx_db *db, int64_t run_id,
                            int (*fn)(void *ctx, const pnx_prediction_view *row), void *ctx)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT sop_instance_uid, study_instance_uid, path, status, mask_rle,"
                            " positive FROM predictions WHERE run_id = ?1"
                            " ORDER BY sop_instance_uid",
                            &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 3);
        pnx_prediction_view v = {
            .sop_instance_uid = (const char *)sqlite3_column_text(st, 0),
            .study_instance_uid = (const char *)sqlite3_column_text(st, 1),
            .path = (const char *)sqlite3_column_text(st, 2),
            .ok = status && strcmp(status, "ok") == 0,
            .mask_rle = (const char *)sqlite3_column_text(st, 4),
            .positive = sqlite3_column_int(st, 5),
        };
        rc = fn(ctx, &v);
        if (rc)
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "read predictions");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_predictions_count(pnx_db *db, int64_t run_id, int64_t *ok, int64_t *error)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'error'), 0)"
                            " FROM predictions WHERE run_id = ?1",
                            &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = pnx_db_fail(db, "count predictions");
    } else {
        *ok = sqlite3_column_int64(st, 0);
        *error = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

static void copy_column(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", text ? text : "");
}

static void read_run(sqlite3_stmt *st, pnx_score_run *run)
{
    memset(run, 0, sizeof *run);
    run->id = sqlite3_column_int64(st, 0);
    copy_column(st, 1, run->status, sizeof run->status);
    run->finished = sqlite3_column_type(st, 2) != SQLITE_NULL;
    copy_column(st, 3, run->config_sha256, sizeof run->config_sha256);
    copy_column(st, 4, run->model_sha256, sizeof run->model_sha256);
}

#define RUN_COLUMNS "id, status, finished_at, config_sha256, model_sha256, stage"

int pnx_db_score_run_get(pnx_db *db, int64_t id, pnx_score_run *run)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            id > 0 ? "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1"
                                   : "SELECT " RUN_COLUMNS " FROM runs WHERE stage = 'score'"
                                     " ORDER BY id DESC LIMIT 1",
                            &st);
    if (rc)
        return rc;
    if (id > 0)
        sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *stage = (const char *)sqlite3_column_text(st, 5);
        if (!stage || strcmp(stage, "score") != 0)
            rc = pnx_fail(PNX_EINVAL, "run %lld is a %s run, not a score run", (long long)id,
                          stage ? stage : "(unknown)");
        else
            read_run(st, run);
    } else if (step == SQLITE_DONE) {
        rc = id > 0 ? pnx_fail(PNX_ENOTFOUND, "no run with id %lld", (long long)id)
                    : pnx_fail(PNX_ENOTFOUND, "no score run in the database yet");
    } else {
        rc = pnx_db_fail(db, "read runs");
    }
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_score_run_unfinished(pnx_db *db, const char *config_sha256,
                                const char *model_sha256, pnx_score_run *run)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT " RUN_COLUMNS " FROM runs WHERE stage = 'score'"
                            " AND (finished_at IS NULL OR status = 'interrupted')"
                            " AND config_sha256 = ?1 AND model_sha256 IS ?2"
                            " ORDER BY id DESC LIMIT 1",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, config_sha256)) ||
        (rc = pnx_db_bind_text(st, 2, model_sha256))) {
        sqlite3_finalize(st);
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        read_run(st, run);
    else if (step == SQLITE_DONE)
        rc = PNX_ENOTFOUND; /* an expected answer, not an error worth a message */
    else
        rc = pnx_db_fail(db, "read runs");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_score_run_reopen(pnx_db *db, int64_t id)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "UPDATE runs SET status = 'running', finished_at = NULL"
                            " WHERE id = ?1 AND stage = 'score'",
                            &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, "reopen run");
    else if (sqlite3_changes(db->sql) != 1)
        rc = pnx_fail(PNX_ENOTFOUND, "no score run with id %lld", (long long)id);
    sqlite3_finalize(st);
    return rc;
}
