/*
 * db/dataset.c — ground_truth, splits and dataset_unmatched; see dataset.h.
 */
#include "db/dataset.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

static const char SQL_INSERT_GROUND_TRUTH[] =
    "INSERT OR REPLACE INTO ground_truth (sop_instance_uid, positive, mask_pixels, rle_rows,"
    " width, height, source_file, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char SQL_INSERT_SPLIT[] =
    "INSERT OR REPLACE INTO splits (sop_instance_uid, split, patient_id, positive, seed, run_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

struct pnx_db_dataset_writer {
    pnx_db *db;
    int64_t run_id;
    sqlite3_stmt *ground_truth;
    sqlite3_stmt *split;
};

int pnx_db_dataset_clear(pnx_db *db)
{
    int rc = pnx_db_exec(db, "DELETE FROM splits; DELETE FROM ground_truth;");
    return rc ? pnx_fail_prefix(rc, "clearing the dataset tables") : 0;
}

int pnx_db_dataset_writer_open(pnx_db_dataset_writer **out, pnx_db *db, int64_t run_id)
{
    *out = NULL;
    pnx_db_dataset_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    w->db = db;
    w->run_id = run_id;
    int rc = pnx_db_prepare(db, SQL_INSERT_GROUND_TRUTH, &w->ground_truth);
    if (!rc)
        rc = pnx_db_prepare(db, SQL_INSERT_SPLIT, &w->split);
    if (rc) {
        pnx_db_dataset_writer_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int bind_run(sqlite3_stmt *st, int index, int64_t run_id)
{
    int rc = run_id > 0 ? sqlite3_bind_int64(st, index, run_id) : sqlite3_bind_null(st, index);
    return rc == SQLITE_OK ? 0 : pnx_fail(PNX_EDB, "bind parameter %d failed", index);
}

static int step_done(pnx_db *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : pnx_db_fail(db, what);
}

int pnx_db_ground_truth_put(pnx_db_dataset_writer *w, const pnx_ground_truth_row *row)
{
    if (!row->sop_instance_uid || !row->sop_instance_uid[0] || !row->source_file ||
        row->rle_rows < 1 || row->mask_pixels < 0 || (row->positive != 0 && row->positive != 1))
        return pnx_fail(PNX_EINVAL, "ground_truth row for %s is incomplete",
                        row->sop_instance_uid ? row->sop_instance_uid : "(no UID)");
    sqlite3_stmt *st = w->ground_truth;
    int rc = pnx_db_bind_text(st, 1, row->sop_instance_uid);
    if (!rc && (sqlite3_bind_int(st, 2, row->positive) != SQLITE_OK ||
                sqlite3_bind_int64(st, 3, row->mask_pixels) != SQLITE_OK ||
                sqlite3_bind_int(st, 4, row->rle_rows) != SQLITE_OK ||
                sqlite3_bind_int64(st, 5, row->width) != SQLITE_OK ||
                sqlite3_bind_int64(st, 6, row->height) != SQLITE_OK))
        rc = pnx_db_fail(w->db, "bind ground_truth");
    if (!rc)
        rc = pnx_db_bind_text(st, 7, row->source_file);
    if (!rc)
        rc = bind_run(st, 8, w->run_id);
    if (rc) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    return step_done(w->db, st, "insert ground_truth");
}

int pnx_db_split_put(pnx_db_dataset_writer *w, const char *sop_instance_uid, const char *split,
                     const char *patient_id, int positive, int64_t seed)
{
    if (!sop_instance_uid || !sop_instance_uid[0] || !split ||
        (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")))
        return pnx_fail(PNX_EINVAL, "splits row: bad UID or split name");
    sqlite3_stmt *st = w->split;
    int rc = pnx_db_bind_text(st, 1, sop_instance_uid);
    if (!rc)
        rc = pnx_db_bind_text(st, 2, split);
    if (!rc)
        rc = pnx_db_bind_text(st, 3, patient_id && patient_id[0] ? patient_id : NULL);
    if (!rc && (sqlite3_bind_int(st, 4, positive) != SQLITE_OK ||
                sqlite3_bind_int64(st, 5, seed) != SQLITE_OK))
        rc = pnx_db_fail(w->db, "bind splits");
    if (!rc)
        rc = bind_run(st, 6, w->run_id);
    if (rc) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    return step_done(w->db, st, "insert splits");
}

void pnx_db_dataset_writer_close(pnx_db_dataset_writer *w)
{
    if (!w)
        return;
    sqlite3_finalize(w->ground_truth);
    sqlite3_finalize(w->split);
    free(w);
}

int pnx_db_split_counts(pnx_db *db, int64_t images[3], int64_t positives[3])
{
    static const char *const names[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++)
        images[k] = positives[k] = 0;
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db,
                            "SELECT split, COUNT(*), COALESCE(SUM(positive), 0) FROM splits"
                            " GROUP BY split",
                            &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (int k = 0; name && k < 3; k++)
            if (strcmp(name, names[k]) == 0) {
                images[k] = sqlite3_column_int64(st, 1);
                positives[k] = sqlite3_column_int64(st, 2);
            }
    }
    rc = step == SQLITE_DONE ? 0 : pnx_db_fail(db, "count splits");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_split_patients_in_several(pnx_db *db, int64_t *patients)
{
    *patients = 0;
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db,
                            "SELECT COUNT(*) FROM (SELECT patient_id FROM splits"
                            " WHERE patient_id IS NOT NULL GROUP BY patient_id"
                            " HAVING COUNT(DISTINCT split) > 1)",
                            &st);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *patients = sqlite3_column_int64(st, 0);
    else
        rc = pnx_db_fail(db, "count patients in several splits");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_dataset_unmatched_counts(pnx_db *db, int64_t *csv_rows_without_image,
                                    int64_t *images_without_csv_row)
{
    *csv_rows_without_image = *images_without_csv_row = 0;
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, "SELECT kind, COUNT(*) FROM dataset_unmatched GROUP BY kind", &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        if (kind && strcmp(kind, "csv_row_without_image") == 0)
            *csv_rows_without_image = n;
        else if (kind && strcmp(kind, "image_without_csv_row") == 0)
            *images_without_csv_row = n;
    }
    rc = step == SQLITE_DONE ? 0 : pnx_db_fail(db, "count dataset_unmatched");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_dataset_unmatched_each(pnx_db *db,
                                  int (*fn)(void *ctx, const char *kind, const char *uid,
                                            const char *path),
                                  void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db,
                            "SELECT kind, sop_instance_uid, path FROM dataset_unmatched"
                            " ORDER BY kind, sop_instance_uid",
                            &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
        if (rc)
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "read dataset_unmatched");
    sqlite3_finalize(st);
    return rc;
}
