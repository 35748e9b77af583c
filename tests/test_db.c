/* tests/test_db.c — the ledger: migration from empty, reopen, refusal of a
 * newer schema, runs rows, the Dice/recall rules of instance_metrics and
 * study_metrics on hand-computed rows, run_summary, and a reader that keeps
 * reading while a writer holds a transaction (WAL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/error.h"
#include "db/db.h"

static char g_dir[256];
static char g_path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-db-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_path, sizeof g_path, "%s/sub/ledger.sqlite", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A raw sqlite3 connection, as an outside client would have. */
static sqlite3 *raw_open(void)
{
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open(g_path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    return s;
}

static double raw_double(sqlite3 *s, const char *sql, int *is_null)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(s));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_migrate_from_empty_and_reopen(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    if (pnx_db_open(&db, g_path, PNX_DB_READWRITE))
        fail_msg("%s", pnx_errmsg());
    int v = 0;
    assert_int_equal(pnx_db_schema_version(db, &v), PNX_OK);
    assert_int_equal(v, PNX_DB_SCHEMA_VERSION);
    const char *tables[] = {"runs", "instances", "ingest_errors", "ground_truth", "splits",
                            "predictions", "instance_metrics", "train_epochs", "study_metrics",
                            "run_summary", "dataset_unmatched"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        int64_t n = -1;
        if (pnx_db_count_rows(db, tables[i], &n))
            fail_msg("%s: %s", tables[i], pnx_errmsg());
        assert_int_equal(n, 0);
    }
    int64_t n;
    assert_int_equal(pnx_db_count_rows(db, "no_such_table", &n), PNX_ENOTFOUND);
    assert_int_equal(pnx_db_count_rows(db, "runs\"; DROP TABLE runs; --", &n), PNX_ENOTFOUND);
    pnx_db_close(db);

    /* Reopening keeps the version and does not re-run the migration. */
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_OK);
    int from = -1;
    assert_int_equal(pnx_db_migrate(db, &from), PNX_OK);
    assert_int_equal(from, PNX_DB_SCHEMA_VERSION);
    pnx_db_close(db);

    sqlite3 *s = raw_open();
    int is_null;
    assert_true(raw_double(s, "PRAGMA foreign_keys", &is_null) == 0.0); /* per connection */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_OK);
    pnx_db_close(db);
    sqlite3 *s = raw_open();
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", PNX_DB_SCHEMA_VERSION + 1);
    assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_EDB);
    assert_non_null(strstr(pnx_errmsg(), "newer than this pneumoseg"));
    assert_null(db);
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READONLY), PNX_EDB);
}

static void test_readonly_missing(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READONLY), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "does not exist"));
    assert_int_equal(access(g_path, F_OK), -1);
}

static void test_runs(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_OK);
    pnx_run_info info = {.stage = "score", .config_text = "a: 1\n", .config_sha256 = "abc",
                         .model_sha256 = "def", .device = "cpu"};
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &id1), PNX_OK);
    assert_int_equal(pnx_db_run_begin(db, &info, &id2), PNX_OK);
    assert_true(id2 > id1 && id1 > 0);
    assert_int_equal(pnx_db_run_finish(db, id1, "partial", 10, 2, "2 files failed"), PNX_OK);
    assert_int_equal(pnx_db_run_finish(db, 999, "ok", 0, 0, NULL), PNX_ENOTFOUND);
    /* The CHECK constraint refuses an unknown status. */
    assert_int_equal(pnx_db_run_finish(db, id2, "great", 0, 0, NULL), PNX_EDB);
    pnx_db_close(db);

    sqlite3 *s = raw_open();
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s,
                                        "SELECT status, n_ok, n_failed, message, finished_at,"
                                        " software_version, git_revision, host, model_sha256"
                                        " FROM runs WHERE id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id1);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "partial");
    assert_int_equal(sqlite3_column_int(st, 1), 10);
    assert_int_equal(sqlite3_column_int(st, 2), 2);
    assert_string_equal((const char *)sqlite3_column_text(st, 3), "2 files failed");
    assert_non_null(sqlite3_column_text(st, 4));
    assert_true(strlen((const char *)sqlite3_column_text(st, 5)) > 0);
    assert_true(strlen((const char *)sqlite3_column_text(st, 7)) > 0);
    assert_string_equal((const char *)sqlite3_column_text(st, 8), "def");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

/* Hand-computed metrics:
 *   study A: a1 TP 30 FP 10 FN 20 → Dice 60/90, recall 30/50, precision 30/40
 *            a2 both empty       → Dice 1, recall NULL, precision NULL
 *            study A sums TP 30 FP 10 FN 20 → Dice 60/90
 *   study B: b1 truth empty, predicted 5 → Dice 0, recall NULL, precision 0
 *            b2 truth 8, predicted empty → Dice 0, recall 0, precision NULL
 *            study B sums TP 0 FP 5 FN 8 → Dice 0, recall 0, precision 0 */
static void test_metrics_rules(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_OK);
    pnx_run_info info = {.stage = "evaluate", .config_text = "", .config_sha256 = ""};
    int64_t run = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &run), PNX_OK);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO instance_metrics (run_id, sop_instance_uid, study_instance_uid,"
             " tp, fp, fn, truth_positive, pred_positive) VALUES"
             " (%lld,'a1','A',30,10,20,1,1), (%lld,'a2','A',0,0,0,0,0),"
             " (%lld,'b1','B',0,5,0,0,1), (%lld,'b2','B',0,0,8,1,0)",
             (long long)run, (long long)run, (long long)run, (long long)run);
    if (pnx_db_exec(db, sql))
        fail_msg("%s", pnx_errmsg());
    /* Negative counts are refused by the schema. */
    snprintf(sql, sizeof sql,
             "INSERT INTO instance_metrics (run_id, sop_instance_uid, tp, fp, fn,"
             " truth_positive, pred_positive) VALUES (%lld,'x',-1,0,0,0,0)",
             (long long)run);
    assert_int_equal(pnx_db_exec(db, sql), PNX_EDB);
    /* A metric row must belong to a run (foreign keys on). */
    assert_int_equal(pnx_db_exec(db, "INSERT INTO instance_metrics (run_id, sop_instance_uid,"
                                     " tp, fp, fn, truth_positive, pred_positive)"
                                     " VALUES (4242,'y',0,0,0,0,0)"),
                     PNX_EDB);
    pnx_db_close(db);

    sqlite3 *s = raw_open();
    int nul;
    double eps = 1e-12;
    assert_true(fabs(raw_double(s, "SELECT dice FROM instance_metrics WHERE sop_instance_uid='a1'",
                                &nul) - 60.0 / 90.0) < eps);
    assert_true(fabs(raw_double(s, "SELECT recall FROM instance_metrics WHERE sop_instance_uid='a1'",
                                &nul) - 0.6) < eps);
    assert_true(fabs(raw_double(s, "SELECT precision FROM instance_metrics WHERE sop_instance_uid='a1'",
                                &nul) - 0.75) < eps);
    assert_true(raw_double(s, "SELECT dice FROM instance_metrics WHERE sop_instance_uid='a2'", &nul) == 1.0);
    raw_double(s, "SELECT recall FROM instance_metrics WHERE sop_instance_uid='a2'", &nul);
    assert_true(nul);
    assert_true(raw_double(s, "SELECT dice FROM instance_metrics WHERE sop_instance_uid='b1'", &nul) == 0.0);
    raw_double(s, "SELECT recall FROM instance_metrics WHERE sop_instance_uid='b1'", &nul);
    assert_true(nul);
    assert_true(raw_double(s, "SELECT precision FROM instance_metrics WHERE sop_instance_uid='b1'", &nul) == 0.0);
    assert_true(raw_double(s, "SELECT recall FROM instance_metrics WHERE sop_instance_uid='b2'", &nul) == 0.0);
    raw_double(s, "SELECT precision FROM instance_metrics WHERE sop_instance_uid='b2'", &nul);
    assert_true(nul);

    assert_true(fabs(raw_double(s, "SELECT dice FROM study_metrics WHERE study_instance_uid='A'",
                                &nul) - 60.0 / 90.0) < eps);
    assert_true(raw_double(s, "SELECT instances FROM study_metrics WHERE study_instance_uid='A'", &nul) == 2.0);
    assert_true(raw_double(s, "SELECT dice FROM study_metrics WHERE study_instance_uid='B'", &nul) == 0.0);
    assert_true(raw_double(s, "SELECT recall FROM study_metrics WHERE study_instance_uid='B'", &nul) == 0.0);
    assert_true(raw_double(s, "SELECT tp + fp + fn FROM study_metrics WHERE study_instance_uid='B'", &nul) == 13.0);

    /* run_summary: mean Dice (competition rule) = (60/90 + 1 + 0 + 0) / 4;
     * over positives (a1, b2) = (60/90 + 0) / 2; mean recall ignores NULLs
     * = (0.6 + 0) / 2; sensitivity = 1 of 2 positives predicted; specificity
     * = 1 of 2 negatives predicted negative. */
    char q[256];
    snprintf(q, sizeof q, "SELECT mean_dice FROM run_summary WHERE run_id = (SELECT MAX(id) FROM runs)");
    assert_true(fabs(raw_double(s, q, &nul) - (60.0 / 90.0 + 1.0) / 4.0) < eps);
    snprintf(q, sizeof q, "SELECT mean_dice_positive FROM run_summary WHERE run_id = (SELECT MAX(id) FROM runs)");
    assert_true(fabs(raw_double(s, q, &nul) - (60.0 / 90.0) / 2.0) < eps);
    snprintf(q, sizeof q, "SELECT mean_recall FROM run_summary WHERE run_id = (SELECT MAX(id) FROM runs)");
    assert_true(fabs(raw_double(s, q, &nul) - 0.3) < eps);
    snprintf(q, sizeof q, "SELECT sensitivity FROM run_summary WHERE run_id = (SELECT MAX(id) FROM runs)");
    assert_true(fabs(raw_double(s, q, &nul) - 0.5) < eps);
    snprintf(q, sizeof q, "SELECT specificity FROM run_summary WHERE run_id = (SELECT MAX(id) FROM runs)");
    assert_true(fabs(raw_double(s, q, &nul) - 0.5) < eps);
    sqlite3_close(s);
}

/* While the writer holds an open transaction with uncommitted rows, a second
 * connection still reads the last committed state without waiting (WAL). */
static void test_concurrent_reader(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_path, PNX_DB_READWRITE), PNX_OK);
    pnx_run_info info = {.stage = "ingest", .config_text = "", .config_sha256 = ""};
    int64_t run = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &run), PNX_OK);
    assert_int_equal(pnx_db_begin(db), PNX_OK);
    int64_t second = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &second), PNX_OK);

    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(g_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(reader, 0); /* a reader that would have to wait fails at once */
    int nul;
    assert_true(raw_double(reader, "SELECT COUNT(*) FROM runs", &nul) == 1.0);

    assert_int_equal(pnx_db_commit(db), PNX_OK);
    assert_true(raw_double(reader, "SELECT COUNT(*) FROM runs", &nul) == 2.0);

    /* A rolled-back transaction leaves nothing. */
    assert_int_equal(pnx_db_begin(db), PNX_OK);
    int64_t third = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &third), PNX_OK);
    assert_int_equal(pnx_db_rollback(db), PNX_OK);
    assert_true(raw_double(reader, "SELECT COUNT(*) FROM runs", &nul) == 2.0);
    sqlite3_close(reader);
    pnx_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_empty_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
