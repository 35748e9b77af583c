/*
 * db/train.c — train_epochs rows and the train run's model hash and parent;
 * see train.h.
 */
#include "db/train.h"

#include <math.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

static const char SQL_INSERT_EPOCH[] =
    "INSERT INTO train_epochs (run_id, epoch, steps, train_loss, train_bce, train_dice_loss,"
    " val_loss, val_dice, val_recall, learning_rate, seconds, images_per_s, checkpoint_path)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
static const char SQL_SELECT_EPOCH[] =
    "SELECT steps, train_loss, train_bce, train_dice_loss, val_loss, val_dice, val_recall,"
    " learning_rate, seconds, images_per_s FROM train_epochs WHERE run_id = ?1 AND epoch = ?2";
static const char SQL_COUNT_EPOCHS[] = "SELECT COUNT(*) FROM train_epochs WHERE run_id = ?1";
static const char SQL_SET_MODEL[] = "UPDATE runs SET model_sha256 = ?2 WHERE id = ?1";
static const char SQL_SET_PARENT[] =
    "UPDATE runs SET parent_run_id = ?2 WHERE id = ?1 AND EXISTS (SELECT 1 FROM runs WHERE id = ?2)";

/* A measured value, or NULL for NAN. */
static int bind_measure(sqlite3_stmt *st, int index, double value)
{
    return isnan(value) ? sqlite3_bind_null(st, index) : sqlite3_bind_double(st, index, value);
}

static double column_measure(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

int pnx_db_train_epoch_insert(pnx_db *db, int64_t run_id, const pnx_train_epoch_row *row)
{
    if (!db || !row || run_id <= 0 || row->epoch < 1 || row->steps < 0)
        return pnx_fail(PNX_EINVAL, "train_epochs row: bad run %lld or epoch %lld",
                        (long long)run_id, row ? (long long)row->epoch : 0LL);
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, SQL_INSERT_EPOCH, &st);
    if (rc)
        return rc;
    int brc = SQLITE_OK;
    const double measures[] = {row->train_loss, row->train_bce, row->train_dice_loss,
                               row->val_loss,   row->val_dice,  row->val_recall,
                               row->learning_rate, row->seconds, row->images_per_s};
    brc |= sqlite3_bind_int64(st, 1, run_id);
    brc |= sqlite3_bind_int64(st, 2, row->epoch);
    brc |= sqlite3_bind_int64(st, 3, row->steps);
    for (int i = 0; i < (int)(sizeof measures / sizeof measures[0]); i++)
        brc |= bind_measure(st, 4 + i, measures[i]);
    if (brc != SQLITE_OK)
        rc = pnx_db_fail(db, "bind train_epochs row");
    if (!rc)
        rc = pnx_db_bind_text(st, 13, row->checkpoint_path);
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, "insert train_epochs row");
    sqlite3_finalize(st);
    if (rc)
        return pnx_fail_prefix(rc, "run %lld epoch %lld", (long long)run_id,
                               (long long)row->epoch);
    return PNX_OK;
}

int pnx_db_train_epoch_get(pnx_db *db, int64_t run_id, int64_t epoch, pnx_train_epoch_row *row)
{
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, SQL_SELECT_EPOCH, &st);
    if (rc)
        return rc;
    if (sqlite3_bind_int64(st, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, epoch) != SQLITE_OK) {
        rc = pnx_db_fail(db, "bind train_epochs query");
        sqlite3_finalize(st);
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        memset(row, 0, sizeof *row);
        row->epoch = epoch;
        row->steps = sqlite3_column_int64(st, 0);
        row->train_loss = column_measure(st, 1);
        row->train_bce = column_measure(st, 2);
        row->train_dice_loss = column_measure(st, 3);
        row->val_loss = column_measure(st, 4);
        row->val_dice = column_measure(st, 5);
        row->val_recall = column_measure(st, 6);
        row->learning_rate = column_measure(st, 7);
        row->seconds = column_measure(st, 8);
        row->images_per_s = column_measure(st, 9);
    } else if (step == SQLITE_DONE) {
        rc = pnx_fail(PNX_ENOTFOUND, "no train_epochs row for run %lld epoch %lld",
                      (long long)run_id, (long long)epoch);
    } else {
        rc = pnx_db_fail(db, "read train_epochs row");
    }
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_train_epoch_count(pnx_db *db, int64_t run_id, int64_t *count)
{
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, SQL_COUNT_EPOCHS, &st);
    if (rc)
        return rc;
    if (sqlite3_bind_int64(st, 1, run_id) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        rc = pnx_db_fail(db, "count train_epochs rows");
    else
        *count = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Runs an UPDATE of one runs row and checks that it matched. */
static int update_run(pnx_db *db, int64_t run_id, sqlite3_stmt *st, const char *what)
{
    int rc = PNX_OK;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, what);
    else if (sqlite3_changes(db->sql) != 1)
        rc = pnx_fail(PNX_ENOTFOUND, "%s: no such run %lld", what, (long long)run_id);
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_run_set_model(pnx_db *db, int64_t run_id, const char *model_sha256)
{
    if (!model_sha256 || strlen(model_sha256) != 64)
        return pnx_fail(PNX_EINVAL, "model hash must be 64 hex digits");
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, SQL_SET_MODEL, &st);
    if (rc)
        return rc;
    if (sqlite3_bind_int64(st, 1, run_id) != SQLITE_OK ||
        (rc = pnx_db_bind_text(st, 2, model_sha256))) {
        sqlite3_finalize(st);
        return rc ? rc : pnx_db_fail(db, "bind run model hash");
    }
    return update_run(db, run_id, st, "set the run's model hash");
}

int pnx_db_run_set_parent(pnx_db *db, int64_t run_id, int64_t parent_run_id)
{
    if (parent_run_id <= 0 || parent_run_id == run_id)
        return pnx_fail(PNX_EINVAL, "bad parent run %lld", (long long)parent_run_id);
    sqlite3_stmt *st = NULL;
    int rc = pnx_db_prepare(db, SQL_SET_PARENT, &st);
    if (rc)
        return rc;
    if (sqlite3_bind_int64(st, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, parent_run_id) != SQLITE_OK) {
        sqlite3_finalize(st);
        return pnx_db_fail(db, "bind run parent");
    }
    return update_run(db, run_id, st, "set the run's parent");
}
