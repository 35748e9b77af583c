/*
 * db/instances.c — instances and ingest_errors; see instances.h.
 */
#include "db/instances.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

/* Within one run, a row already stored wins over a newcomer with the same
 * UID when it is ok and the newcomer failed, or when both are ok and it has
 * the smaller path: the outcome does not depend on the order in which
 * parallel workers finish. Rows of earlier runs are always replaced. */
static const char SQL_PUT_INSTANCE[] =
    "INSERT INTO instances (sop_instance_uid, series_instance_uid,"
    " study_instance_uid, patient_id, sop_class_uid, modality, view_position, path, file_size,"
    " transfer_syntax, photometric, rows, columns, bits_allocated, bits_stored,"
    " pixel_spacing_row, pixel_spacing_col, lossy, status, error_kind, error, run_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22)"
    " ON CONFLICT (sop_instance_uid) DO UPDATE SET"
    " series_instance_uid = excluded.series_instance_uid,"
    " study_instance_uid = excluded.study_instance_uid, patient_id = excluded.patient_id,"
    " sop_class_uid = excluded.sop_class_uid, modality = excluded.modality,"
    " view_position = excluded.view_position, path = excluded.path,"
    " file_size = excluded.file_size, transfer_syntax = excluded.transfer_syntax,"
    " photometric = excluded.photometric, rows = excluded.rows, columns = excluded.columns,"
    " bits_allocated = excluded.bits_allocated, bits_stored = excluded.bits_stored,"
    " pixel_spacing_row = excluded.pixel_spacing_row,"
    " pixel_spacing_col = excluded.pixel_spacing_col, lossy = excluded.lossy,"
    " status = excluded.status, error_kind = excluded.error_kind, error = excluded.error,"
    " run_id = excluded.run_id, indexed_at = excluded.indexed_at"
    " WHERE instances.run_id IS NOT excluded.run_id OR instances.path = excluded.path"
    "    OR NOT ((instances.status = 'ok' AND excluded.status = 'error')"
    "            OR (instances.status = excluded.status AND instances.path < excluded.path))";
/* A failed file of this run about to be displaced by another file with the
 * same UID keeps its error, under its path. */
static const char SQL_RESCUE_DISPLACED_ERROR[] =
    "INSERT OR REPLACE INTO ingest_errors (path, file_size, error_kind, error, run_id)"
    " SELECT path, file_size, error_kind,"
    "        error || ' (its SOP Instance UID is also in ' || ?3 || ')', run_id"
    " FROM instances WHERE sop_instance_uid = ?1 AND run_id IS ?2 AND path <> ?3"
    "  AND status = 'error' AND (?4 = 'ok' OR path > ?3)";
static const char SQL_FORGET_FILE_ERROR[] = "DELETE FROM ingest_errors WHERE path = ?1";
static const char SQL_PUT_FILE_ERROR[] =
    "INSERT OR REPLACE INTO ingest_errors (path, file_size, error_kind, error, run_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_MARK_INSTANCE_ERROR[] =
    "UPDATE instances SET status = 'error', error_kind = ?2, error = ?3, run_id = ?4,"
    " indexed_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE path = ?1";

struct pnx_db_instances_writer {
    pnx_db *db;
    int64_t run_id;
    sqlite3_stmt *put_instance;
    sqlite3_stmt *forget_file_error;
    sqlite3_stmt *put_file_error;
    sqlite3_stmt *mark_instance_error;
    sqlite3_stmt *rescue_displaced_error;
};

int pnx_db_instances_writer_open(pnx_db_instances_writer **out, pnx_db *db, int64_t run_id)
{
    *out = NULL;
    pnx_db_instances_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pnx_fail(PNX_ENOMEM, "instances writer");
    w->db = db;
    w->run_id = run_id;
    int rc = pnx_db_prepare(db, SQL_PUT_INSTANCE, &w->put_instance);
    if (!rc)
        rc = pnx_db_prepare(db, SQL_FORGET_FILE_ERROR, &w->forget_file_error);
    if (!rc)
        rc = pnx_db_prepare(db, SQL_PUT_FILE_ERROR, &w->put_file_error);
    if (!rc)
        rc = pnx_db_prepare(db, SQL_MARK_INSTANCE_ERROR, &w->mark_instance_error);
    if (!rc)
        rc = pnx_db_prepare(db, SQL_RESCUE_DISPLACED_ERROR, &w->rescue_displaced_error);
    if (rc) {
        pnx_db_instances_writer_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

void pnx_db_instances_writer_close(pnx_db_instances_writer *w)
{
    if (!w)
        return;
    sqlite3_finalize(w->put_instance);
    sqlite3_finalize(w->forget_file_error);
    sqlite3_finalize(w->put_file_error);
    sqlite3_finalize(w->mark_instance_error);
    sqlite3_finalize(w->rescue_displaced_error);
    free(w);
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    return pnx_db_bind_text(st, i, (s && *s) ? s : NULL);
}

static int bind_int_or_null(sqlite3_stmt *st, int i, int64_t v, int is_null)
{
    return is_null ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

static int bind_run(sqlite3_stmt *st, int i, int64_t run_id)
{
    return bind_int_or_null(st, i, run_id, run_id == 0);
}

/* Steps a prepared statement without results and resets it. */
static int step_done(pnx_db *db, sqlite3_stmt *st, const char *what)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? 0 : pnx_db_fail(db, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int pnx_db_instance_put(pnx_db_instances_writer *w, const pnx_instance_row *row)
{
    return pnx_db_instance_put_kept(w, row, NULL);
}

int pnx_db_instance_put_kept(pnx_db_instances_writer *w, const pnx_instance_row *r, int *stored)
{
    if (stored)
        *stored = 0;
    if (!r->sop_instance_uid || !*r->sop_instance_uid || !r->path)
        return pnx_fail(PNX_EINVAL, "an instance row needs a SOP Instance UID and a path");
    sqlite3_stmt *st = w->rescue_displaced_error;
    int bad = pnx_db_bind_text(st, 1, r->sop_instance_uid);
    bad |= bind_run(st, 2, w->run_id);
    bad |= pnx_db_bind_text(st, 3, r->path);
    bad |= pnx_db_bind_text(st, 4, r->error_kind ? "error" : "ok");
    if (bad) {
        int rc = pnx_db_fail(w->db, "bind displaced error");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    int rc0 = step_done(w->db, st, "keep displaced error");
    if (rc0)
        return rc0;

    st = w->put_instance;
    bad |= bind_text_or_null(st, 1, r->sop_instance_uid);
    bad |= bind_text_or_null(st, 2, r->series_instance_uid);
    bad |= bind_text_or_null(st, 3, r->study_instance_uid);
    bad |= bind_text_or_null(st, 4, r->patient_id);
    bad |= bind_text_or_null(st, 5, r->sop_class_uid);
    bad |= bind_text_or_null(st, 6, r->modality);
    bad |= bind_text_or_null(st, 7, r->view_position);
    bad |= pnx_db_bind_text(st, 8, r->path);
    bad |= bind_int_or_null(st, 9, r->file_size, r->file_size < 0);
    bad |= bind_text_or_null(st, 10, r->transfer_syntax);
    bad |= bind_text_or_null(st, 11, r->photometric);
    bad |= bind_int_or_null(st, 12, r->rows, r->rows == 0);
    bad |= bind_int_or_null(st, 13, r->columns, r->columns == 0);
    bad |= bind_int_or_null(st, 14, r->bits_allocated, r->bits_allocated == 0);
    bad |= bind_int_or_null(st, 15, r->bits_stored, r->bits_stored == 0);
    if (r->has_spacing) {
        bad |= sqlite3_bind_double(st, 16, r->pixel_spacing_row);
        bad |= sqlite3_bind_double(st, 17, r->pixel_spacing_col);
    } else {
        bad |= sqlite3_bind_null(st, 16);
        bad |= sqlite3_bind_null(st, 17);
    }
    bad |= bind_int_or_null(st, 18, r->lossy, r->lossy < 0);
    bad |= pnx_db_bind_text(st, 19, r->error_kind ? "error" : "ok");
    bad |= pnx_db_bind_text(st, 20, r->error_kind);
    bad |= pnx_db_bind_text(st, 21, r->error_kind ? r->error : NULL);
    bad |= bind_run(st, 22, w->run_id);
    if (bad) {
        int rc = pnx_db_fail(w->db, "bind instance");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    int rc = step_done(w->db, st, "store instance");
    if (rc)
        return rc;
    if (sqlite3_changes(w->db->sql) == 0)
        return 0;
    if (stored)
        *stored = 1;
    if (pnx_db_bind_text(w->forget_file_error, 1, r->path) != SQLITE_OK)
        return pnx_db_fail(w->db, "bind path");
    return step_done(w->db, w->forget_file_error, "forget ingest error");
}

int pnx_db_ingest_error_put(pnx_db_instances_writer *w, const char *path, int64_t file_size,
                            const char *error_kind, const char *error)
{
    if (!path || !error_kind || !error)
        return pnx_fail(PNX_EINVAL, "an ingest error needs a path, a kind and a message");
    sqlite3_stmt *st = w->put_file_error;
    int bad = pnx_db_bind_text(st, 1, path);
    bad |= bind_int_or_null(st, 2, file_size, file_size < 0);
    bad |= pnx_db_bind_text(st, 3, error_kind);
    bad |= pnx_db_bind_text(st, 4, error);
    bad |= bind_run(st, 5, w->run_id);
    if (bad) {
        int rc = pnx_db_fail(w->db, "bind ingest error");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    int rc = step_done(w->db, st, "store ingest error");
    if (rc)
        return rc;
    st = w->mark_instance_error;
    bad = pnx_db_bind_text(st, 1, path);
    bad |= pnx_db_bind_text(st, 2, error_kind);
    bad |= pnx_db_bind_text(st, 3, error);
    bad |= bind_run(st, 4, w->run_id);
    if (bad) {
        rc = pnx_db_fail(w->db, "bind instance error");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    return step_done(w->db, st, "mark instance error");
}

static int count_one(pnx_db *db, const char *sql, int64_t run_id, int64_t *out)
{
    if (!out)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
    } else {
        rc = pnx_db_fail(db, "count instances");
    }
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_instances_counts(pnx_db *db, int64_t run_id, int64_t *ok, int64_t *errors,
                            int64_t *studies, int64_t *series, int64_t *file_errors)
{
#define RUN_FILTER " (?1 = 0 OR run_id = ?1)"
    int rc = count_one(db, "SELECT COUNT(*) FROM instances WHERE status = 'ok' AND" RUN_FILTER,
                       run_id, ok);
    if (!rc)
        rc = count_one(db,
                       "SELECT COUNT(*) FROM instances WHERE status = 'error' AND" RUN_FILTER,
                       run_id, errors);
    if (!rc)
        rc = count_one(db,
                       "SELECT COUNT(DISTINCT study_instance_uid) FROM instances"
                       " WHERE status = 'ok' AND" RUN_FILTER,
                       run_id, studies);
    if (!rc)
        rc = count_one(db,
                       "SELECT COUNT(DISTINCT series_instance_uid) FROM instances"
                       " WHERE status = 'ok' AND" RUN_FILTER,
                       run_id, series);
    if (!rc)
        rc = count_one(db, "SELECT COUNT(*) FROM ingest_errors WHERE" RUN_FILTER, run_id,
                       file_errors);
#undef RUN_FILTER
    return rc;
}

int pnx_db_instances_each_ok(pnx_db *db,
                             int (*fn)(void *ctx, const pnx_instance_row *row), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db,
                            "SELECT sop_instance_uid, path, study_instance_uid,"
                            " series_instance_uid, patient_id, view_position, rows, columns"
                            " FROM instances WHERE status = 'ok' ORDER BY sop_instance_uid",
                            &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        pnx_instance_row row;
        memset(&row, 0, sizeof row);
        row.sop_instance_uid = (const char *)sqlite3_column_text(st, 0);
        row.path = (const char *)sqlite3_column_text(st, 1);
        row.study_instance_uid = (const char *)sqlite3_column_text(st, 2);
        row.series_instance_uid = (const char *)sqlite3_column_text(st, 3);
        row.patient_id = (const char *)sqlite3_column_text(st, 4);
        row.view_position = (const char *)sqlite3_column_text(st, 5);
        row.rows = sqlite3_column_int64(st, 6);
        row.columns = sqlite3_column_int64(st, 7);
        row.file_size = -1;
        row.lossy = -1;
        rc = fn(ctx, &row);
        if (rc)
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "list instances");
    sqlite3_finalize(st);
    return rc;
}
