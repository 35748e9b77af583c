/*
 * db/metrics.c — instance_metrics rows, ground-truth and size lookups, and
 * the run summary; see metrics.h.
 */
#include "db/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

static const char SQL_INSERT_METRICS[] =
    "INSERT OR REPLACE INTO instance_metrics (run_id, sop_instance_uid, study_instance_uid,"
    " tp, fp, fn, truth_positive, pred_positive) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

struct pnx_db_metrics_writer {
    pnx_db *db;
    int64_t run_id;
    sqlite3_stmt *insert;
};

int pnx_db_metrics_clear(pnx_db *db, int64_t run_id)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, "DELETE FROM instance_metrics WHERE run_id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, "clear instance_metrics");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_metrics_writer_open(pnx_db_metrics_writer **out, pnx_db *db, int64_t run_id)
{
    *out = NULL;
    if (!db || run_id <= 0)
        return pnx_fail(PNX_EINVAL, "instance_metrics writer: bad run id");
    pnx_db_metrics_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    w->db = db;
    w->run_id = run_id;
    int rc = pnx_db_prepare(db, SQL_INSERT_METRICS, &w->insert);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int pnx_db_metrics_put(pnx_db_metrics_writer *w, const pnx_instance_metrics_row *row)
{
    if (!row->sop_instance_uid || !row->sop_instance_uid[0] || row->tp < 0 || row->fp < 0 ||
        row->fn < 0)
        return pnx_fail(PNX_EINVAL, "instance_metrics row for %s is invalid",
                        row->sop_instance_uid ? row->sop_instance_uid : "(no UID)");
    sqlite3_stmt *st = w->insert;
    int rc = 0;
    if (sqlite3_bind_int64(st, 1, w->run_id) != SQLITE_OK)
        rc = pnx_db_fail(w->db, "bind instance_metrics");
    if (!rc)
        rc = pnx_db_bind_text(st, 2, row->sop_instance_uid);
    if (!rc)
        rc = pnx_db_bind_text(st, 3, row->study_instance_uid);
    if (!rc && (sqlite3_bind_int64(st, 4, row->tp) != SQLITE_OK ||
                sqlite3_bind_int64(st, 5, row->fp) != SQLITE_OK ||
                sqlite3_bind_int64(st, 6, row->fn) != SQLITE_OK ||
                sqlite3_bind_int(st, 7, row->truth_positive ? 1 : 0) != SQLITE_OK ||
                sqlite3_bind_int(st, 8, row->pred_positive ? 1 : 0) != SQLITE_OK))
        rc = pnx_db_fail(w->db, "bind instance_metrics");
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(w->db, "insert instance_metrics");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

void pnx_db_metrics_writer_close(pnx_db_metrics_writer *w)
{
    if (!w)
        return;
    sqlite3_finalize(w->insert);
    free(w);
}

int pnx_db_truth_lookup(pnx_db *db, const char *sop_instance_uid, pnx_truth_ref *ref)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT source_file, width, height, mask_pixels, positive"
                            " FROM ground_truth WHERE sop_instance_uid = ?1",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, sop_instance_uid))) {
        sqlite3_finalize(st);
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        memset(ref, 0, sizeof *ref);
        const char *src = (const char *)sqlite3_column_text(st, 0);
        int64_t w = sqlite3_column_int64(st, 1), h = sqlite3_column_int64(st, 2);
        if (!src || strlen(src) >= sizeof ref->source_file)
            rc = pnx_fail(PNX_ERANGE, "ground_truth row of %s: source_file missing or too long",
                          sop_instance_uid);
        else if (w < 1 || h < 1 || w > 65535 || h > 65535)
            rc = pnx_fail(PNX_ERANGE, "ground_truth row of %s: size %lldx%lld out of range",
                          sop_instance_uid, (long long)w, (long long)h);
        else {
            strcpy(ref->source_file, src);
            ref->width = (uint32_t)w;
            ref->height = (uint32_t)h;
            ref->mask_pixels = sqlite3_column_int64(st, 3);
            ref->positive = sqlite3_column_int(st, 4);
        }
    } else if (step == SQLITE_DONE) {
        rc = PNX_ENOTFOUND;
    } else {
        rc = pnx_db_fail(db, "read ground_truth");
    }
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_instance_size(pnx_db *db, const char *sop_instance_uid, uint32_t *width,
                         uint32_t *height)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT columns, rows FROM instances"
                            " WHERE sop_instance_uid = ?1 AND status = 'ok'"
                            " AND columns IS NOT NULL AND rows IS NOT NULL",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, sop_instance_uid))) {
        sqlite3_finalize(st);
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int64_t w = sqlite3_column_int64(st, 0), h = sqlite3_column_int64(st, 1);
        if (w < 1 || h < 1 || w > 65535 || h > 65535)
            rc = pnx_fail(PNX_ERANGE, "instances row of %s: size %lldx%lld out of range",
                          sop_instance_uid, (long long)w, (long long)h);
        else {
            *width = (uint32_t)w;
            *height = (uint32_t)h;
        }
    } else if (step == SQLITE_DONE) {
        rc = PNX_ENOTFOUND;
    } else {
        rc = pnx_db_fail(db, "read instances");
    }
    sqlite3_finalize(st);
    return rc;
}

static double column_or_nan(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

int pnx_db_metrics_summary(pnx_db *db, int64_t run_id, pnx_metrics_summary *s)
{
    memset(s, 0, sizeof *s);
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT mean_dice, mean_dice_positive, mean_recall, sensitivity,"
                            " specificity FROM run_summary WHERE run_id = ?1",
                            &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        s->mean_dice = column_or_nan(st, 0);
        s->mean_dice_positive = column_or_nan(st, 1);
        s->mean_recall = column_or_nan(st, 2);
        s->sensitivity = column_or_nan(st, 3);
        s->specificity = column_or_nan(st, 4);
    } else if (step == SQLITE_DONE) {
        rc = pnx_fail(PNX_ENOTFOUND, "no run with id %lld", (long long)run_id);
    } else {
        rc = pnx_db_fail(db, "read run_summary");
    }
    sqlite3_finalize(st);
    if (rc)
        return rc;

    rc = pnx_db_prepare(db,
                        "SELECT COUNT(*),"
                        " COALESCE(SUM(truth_positive), 0),"
                        " COALESCE(SUM(truth_positive AND pred_positive), 0),"
                        " COALESCE(SUM(truth_positive AND NOT pred_positive), 0),"
                        " COALESCE(SUM(NOT truth_positive AND NOT pred_positive), 0),"
                        " COALESCE(SUM(NOT truth_positive AND pred_positive), 0),"
                        " COALESCE(SUM(tp), 0), COALESCE(SUM(fp), 0), COALESCE(SUM(fn), 0)"
                        " FROM instance_metrics WHERE run_id = ?1",
                        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = pnx_db_fail(db, "read instance_metrics");
    } else {
        s->evaluated = sqlite3_column_int64(st, 0);
        s->truth_positive = sqlite3_column_int64(st, 1);
        s->truth_negative = s->evaluated - s->truth_positive;
        s->true_positive = sqlite3_column_int64(st, 2);
        s->false_negative = sqlite3_column_int64(st, 3);
        s->true_negative = sqlite3_column_int64(st, 4);
        s->false_positive = sqlite3_column_int64(st, 5);
        s->tp = sqlite3_column_int64(st, 6);
        s->fp = sqlite3_column_int64(st, 7);
        s->fn = sqlite3_column_int64(st, 8);
    }
    sqlite3_finalize(st);
    return rc;
}
