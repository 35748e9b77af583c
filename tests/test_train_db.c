/*
 * tests/test_train_db.c — db/train.h: train_epochs rows round-trip with
 * NULLs for what was not measured, a duplicate epoch is refused, the run's
 * model hash and parent are recorded, and run_summary sees the epochs.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "common/error.h"
#include "common/fileio.h"
#include "db/db.h"
#include "db/train.h"

static char work_dir[400];
static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(work_dir, sizeof work_dir, "%s/tests/train_db.%d", PNX_BINARY_DIR, (int)getpid());
    snprintf(db_path, sizeof db_path, "%s/ledger.sqlite", work_dir);
    return pnx_mkdir_p(work_dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int64_t begin_train_run(pnx_db *db)
{
    pnx_run_info info = {.stage = "train", .config_text = "train: {}\n",
                         .config_sha256 = "0123", .device = "cpu"};
    int64_t id = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &id), 0);
    assert_true(id > 0);
    return id;
}

/* One value of a one-row query, as text ("NULL" for NULL). */
static void query_text(const char *sql, char *out, size_t size)
{
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(out, size, "%s", v ? (const char *)v : "NULL");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

static void test_epoch_rows(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, db_path, PNX_DB_READWRITE), 0);
    int64_t run = begin_train_run(db);

    pnx_train_epoch_row r1 = {
        .epoch = 1, .steps = 12, .train_loss = 1.25, .train_bce = 0.75, .train_dice_loss = 0.5,
        .val_loss = 1.0, .val_dice = 0.625, .val_recall = NAN, .learning_rate = 1e-3,
        .seconds = 2.5, .images_per_s = 40.0, .checkpoint_path = "out/model.safetensors",
    };
    pnx_train_epoch_row r2 = r1;
    r2.epoch = 2;
    r2.val_loss = r2.val_dice = NAN;
    r2.val_recall = 0.5;
    r2.checkpoint_path = NULL;
    assert_int_equal(pnx_db_train_epoch_insert(db, run, &r1), 0);
    assert_int_equal(pnx_db_train_epoch_insert(db, run, &r2), 0);
    assert_int_not_equal(pnx_db_train_epoch_insert(db, run, &r1), 0);
    assert_non_null(strstr(pnx_errmsg(), "epoch 1"));
    pnx_train_epoch_row bad = r1;
    bad.epoch = 0;
    assert_int_equal(pnx_db_train_epoch_insert(db, run, &bad), PNX_EINVAL);

    int64_t count = 0;
    assert_int_equal(pnx_db_train_epoch_count(db, run, &count), 0);
    assert_int_equal(count, 2);

    pnx_train_epoch_row got;
    assert_int_equal(pnx_db_train_epoch_get(db, run, 1, &got), 0);
    assert_int_equal(got.steps, 12);
    assert_true(got.train_loss == 1.25 && got.train_bce == 0.75 && got.train_dice_loss == 0.5);
    assert_true(got.val_loss == 1.0 && got.val_dice == 0.625 && isnan(got.val_recall));
    assert_true(got.learning_rate == 1e-3 && got.seconds == 2.5 && got.images_per_s == 40.0);
    assert_int_equal(pnx_db_train_epoch_get(db, run, 2, &got), 0);
    assert_true(isnan(got.val_loss) && isnan(got.val_dice) && got.val_recall == 0.5);
    assert_int_equal(pnx_db_train_epoch_get(db, run, 3, &got), PNX_ENOTFOUND);

    const char *hash = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
    assert_int_equal(pnx_db_run_set_model(db, run, hash), 0);
    assert_int_equal(pnx_db_run_set_model(db, run, "short"), PNX_EINVAL);
    assert_int_equal(pnx_db_run_set_model(db, run + 100, hash), PNX_ENOTFOUND);

    int64_t child = begin_train_run(db);
    assert_int_equal(pnx_db_run_set_parent(db, child, run), 0);
    assert_int_equal(pnx_db_run_set_parent(db, child, run + 100), PNX_ENOTFOUND);
    assert_int_equal(pnx_db_run_set_parent(db, child, child), PNX_EINVAL);
    pnx_db_close(db);

    char text[128], sql[256];
    snprintf(sql, sizeof sql, "SELECT model_sha256 FROM runs WHERE id = %lld", (long long)run);
    query_text(sql, text, sizeof text);
    assert_string_equal(text, hash);
    snprintf(sql, sizeof sql, "SELECT parent_run_id FROM runs WHERE id = %lld",
             (long long)child);
    query_text(sql, text, sizeof text);
    assert_int_equal(atoll(text), run);
    snprintf(sql, sizeof sql, "SELECT checkpoint_path FROM train_epochs WHERE run_id = %lld"
             " AND epoch = 1", (long long)run);
    query_text(sql, text, sizeof text);
    assert_string_equal(text, "out/model.safetensors");
    snprintf(sql, sizeof sql, "SELECT epochs || ' ' || IFNULL(last_val_dice, 'NULL')"
             " FROM run_summary WHERE run_id = %lld", (long long)run);
    query_text(sql, text, sizeof text);
    assert_string_equal(text, "2 NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
