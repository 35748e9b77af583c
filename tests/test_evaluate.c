/*
 * tests/test_evaluate.c — the evaluate stage on hand-built cases with
 * hand-computed numbers: empty/empty, empty truth with a prediction, two
 * united truth rows partly overlapped, a missed lesion, an image without
 * truth, a failed prediction, a malformed predicted RLE; per-study sums;
 * the ground_truth table and a CSV given directly (absolute RLE); the
 * native size from instances, ground_truth or the SIIM default; a rerun
 * replaces rows; wrong run ids are refused.
 *
 * The images are 4 × 4 (column-major pixel i is x = i / 4, y = i % 4):
 *   A truth -            pred -          tp 0 fp 0 fn 0   Dice 1
 *   B truth -            pred 0..2       tp 0 fp 3 fn 0   Dice 0
 *   C truth 0..3,5 ∪ 4 = 0..5
 *                        pred 4..7       tp 2 fp 2 fn 4   Dice 0.4, recall 1/3
 *   D truth 5            pred -          tp 0 fp 0 fn 1   Dice 0, recall 0
 *   E no truth           pred 0          left out
 *   F scoring failed                     not scored
 *   G truth 0            pred "3"        malformed: failed
 * Studies: A, B in 9.1 (tp 0 fp 3 fn 0); C, D in 9.2 (tp 2 fp 2 fn 5).
 */
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
#include "common/log.h"
#include "db/db.h"
#include "db/metrics.h"
#include "db/predictions.h"
#include "pipeline/evaluate_stage.h"
#include "rle/rle.h"

#define UID_A "1.2.826.1.1"
#define UID_B "1.2.826.1.2"
#define UID_C "1.2.826.1.3"
#define UID_D "1.2.826.1.4"
#define UID_E "1.2.826.1.5"
#define UID_F "1.2.826.1.6"
#define UID_G "1.2.826.1.7"

static char g_dir[256];
static char g_db[320];
static char g_csv_rel[320];
static char g_csv_abs[320];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    pnx_log_set_level(PNX_LOG_ERROR);
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-evaluate-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_db, sizeof g_db, "%s/ledger.sqlite", g_dir);
    snprintf(g_csv_rel, sizeof g_csv_rel, "%s/truth-relative.csv", g_dir);
    snprintf(g_csv_abs, sizeof g_csv_abs, "%s/truth-absolute.csv", g_dir);
    /* C's two rows are far apart, as in the real file; G's truth is fine,
     * its prediction is not. */
    write_text(g_csv_rel, "ImageId, EncodedPixels\n" UID_A ", -1\n" UID_C ", 0 4 1 1\n" UID_B
                          ", -1\n" UID_D ", 5 1\n" UID_G ", 0 1\n" UID_C ", 4 1\n");
    write_text(g_csv_abs, "ImageId,EncodedPixels\n" UID_A ",-1\n" UID_C ",0 4 5 1\n" UID_B
                          ",-1\n" UID_D ",5 1\n" UID_G ",0 1\n" UID_C ",4 1\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static pnx_db *fresh_db(void)
{
    unlink(g_db);
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", g_db);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", g_db);
    unlink(wal);
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, g_db, PNX_DB_READWRITE), 0);
    return db;
}

static int64_t add_run(pnx_db *db, const char *stage)
{
    pnx_run_info info = {.stage = stage, .config_text = "x", .config_sha256 = "00",
                         .model_sha256 = "ab"};
    int64_t id = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &id), 0);
    return id;
}

static void put_ok(pnx_db_predictions_writer *w, const char *uid, const char *study,
                   const char *rle)
{
    pnx_prediction_row row = {
        .sop_instance_uid = uid, .study_instance_uid = study, .path = "/x.dcm", .ok = 1,
        .max_probability = 0.9, .mask_pixels = 0, .area_mm2 = -1, .positive = strcmp(rle, "-1") != 0,
        .mask_rle = rle, .decode_ms = 1, .infer_ms = 2, .post_ms = -1,
    };
    assert_int_equal(pnx_db_prediction_put(w, &row), 0);
}

/* A score run with the predictions of the table above. */
static int64_t add_score_run(pnx_db *db)
{
    int64_t run = add_run(db, "score");
    pnx_db_predictions_writer *w = NULL;
    assert_int_equal(pnx_db_predictions_writer_open(&w, db, run, 3), 0);
    put_ok(w, UID_A, "9.1", "-1");
    put_ok(w, UID_B, "9.1", "0 3");
    put_ok(w, UID_C, "9.2", "4 4");
    put_ok(w, UID_D, "9.2", "-1");
    put_ok(w, UID_E, "9.3", "0 1");
    pnx_prediction_row bad = {.sop_instance_uid = UID_F, .path = "/bad.dcm", .ok = 0,
                              .error = "not_dicom: nothing", .decode_ms = -1, .infer_ms = -1,
                              .post_ms = -1};
    assert_int_equal(pnx_db_prediction_put(w, &bad), 0);
    put_ok(w, UID_G, "9.4", "3");
    assert_int_equal(pnx_db_predictions_flush(w), 0);
    assert_int_equal(pnx_db_predictions_committed(w), 7);
    pnx_db_predictions_writer_close(w);
    assert_int_equal(pnx_db_run_finish(db, run, "partial", 6, 1, NULL), 0);
    return run;
}

static double query_double(const char *sql, int *is_null)
{
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open(g_db, &s), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(s));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

static double q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static double q(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int is_null = 0;
    double v = query_double(sql, &is_null);
    if (is_null)
        return NAN;
    return v;
}

/* The numbers of the table in the header comment, for score run `run`. */
static void check_numbers(int64_t run, const pnx_evaluate_report *r)
{
    assert_int_equal(r->score_run, run);
    assert_int_equal(r->predictions, 7);
    assert_int_equal(r->not_scored, 1);
    assert_int_equal(r->evaluated, 4);
    assert_int_equal(r->without_truth, 1);
    assert_int_equal(r->n_without_truth_uids, 1);
    assert_string_equal(r->without_truth_uids[0], UID_E);
    assert_int_equal(r->failed, 1);
    const pnx_metrics_summary *s = &r->summary;
    assert_int_equal(s->evaluated, 4);
    assert_int_equal(s->truth_positive, 2);
    assert_int_equal(s->truth_negative, 2);
    assert_int_equal(s->true_positive, 1);
    assert_int_equal(s->false_negative, 1);
    assert_int_equal(s->true_negative, 1);
    assert_int_equal(s->false_positive, 1);
    assert_float_equal(s->mean_dice, (1.0 + 0.0 + 0.4 + 0.0) / 4, 1e-12);
    assert_float_equal(s->mean_dice_positive, 0.2, 1e-12);
    assert_float_equal(s->mean_recall, (1.0 / 3.0 + 0.0) / 2, 1e-12);
    assert_float_equal(s->sensitivity, 0.5, 1e-12);
    assert_float_equal(s->specificity, 0.5, 1e-12);
    assert_int_equal(s->tp, 2);
    assert_int_equal(s->fp, 5);
    assert_int_equal(s->fn, 5);

    /* Per instance, as stored. */
    assert_float_equal(q("SELECT dice FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_A "'", (long long)run), 1.0, 0);
    assert_true(isnan(q("SELECT recall FROM instance_metrics WHERE run_id = %lld AND "
                        "sop_instance_uid = '" UID_A "'", (long long)run)));
    assert_float_equal(q("SELECT fp FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_B "'", (long long)run), 3, 0);
    assert_float_equal(q("SELECT dice FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_C "'", (long long)run), 0.4, 1e-12);
    assert_float_equal(q("SELECT recall FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_C "'", (long long)run), 1.0 / 3, 1e-12);
    assert_float_equal(q("SELECT precision FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_C "'", (long long)run), 0.5, 1e-12);
    assert_float_equal(q("SELECT recall FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid = '" UID_D "'", (long long)run), 0.0, 0);
    assert_float_equal(q("SELECT COUNT(*) FROM instance_metrics WHERE run_id = %lld AND "
                         "sop_instance_uid IN ('" UID_E "','" UID_F "','" UID_G "')",
                         (long long)run), 0, 0);
    /* Per study: pixel counts summed, then the rules. */
    assert_float_equal(q("SELECT dice FROM study_metrics WHERE run_id = %lld AND "
                         "study_instance_uid = '9.1'", (long long)run), 0.0, 0);
    assert_true(isnan(q("SELECT recall FROM study_metrics WHERE run_id = %lld AND "
                        "study_instance_uid = '9.1'", (long long)run)));
    assert_float_equal(q("SELECT dice FROM study_metrics WHERE run_id = %lld AND "
                         "study_instance_uid = '9.2'", (long long)run), 4.0 / 11, 1e-12);
    assert_float_equal(q("SELECT recall FROM study_metrics WHERE run_id = %lld AND "
                         "study_instance_uid = '9.2'", (long long)run), 2.0 / 7, 1e-12);
    /* The evaluate run's own row. */
    assert_float_equal(q("SELECT parent_run_id FROM runs WHERE id = %lld AND stage = 'evaluate'"
                         " AND status = 'partial' AND n_ok = 4 AND n_failed = 1",
                         (long long)r->evaluate_run), (double)run, 0);
    assert_float_equal(q("SELECT COUNT(*) FROM runs WHERE id = %lld AND model_sha256 = 'ab'",
                         (long long)r->evaluate_run), 1, 0);
}

/* Truth from the ground_truth table (sizes from its rows), then again:
 * the rows are replaced, not added. */
static void test_ground_truth_table(void **state)
{
    (void)state;
    pnx_db *db = fresh_db();
    int64_t run = add_score_run(db);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO ground_truth VALUES ('" UID_A "',0,0,1,4,4,'%s',NULL),"
             "('" UID_B "',0,0,1,4,4,'%s',NULL),('" UID_C "',1,6,2,4,4,'%s',NULL),"
             "('" UID_D "',1,1,1,4,4,'%s',NULL),('" UID_G "',1,1,1,4,4,'%s',NULL)",
             g_csv_rel, g_csv_rel, g_csv_rel, g_csv_rel, g_csv_rel);
    assert_int_equal(pnx_db_exec(db, sql), 0);

    pnx_evaluate_request req = {.score_run = 0, .rle_format = PNX_RLE_FMT_RELATIVE};
    pnx_evaluate_report r;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    assert_int_equal(r.assumed_size, 0);
    check_numbers(run, &r);
    pnx_evaluate_report_free(&r);

    /* Again, naming the run: same rows, a second evaluate run. */
    req.score_run = run;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    check_numbers(run, &r);
    assert_float_equal(q("SELECT COUNT(*) FROM instance_metrics"), 4, 0);
    assert_float_equal(q("SELECT COUNT(*) FROM runs WHERE stage = 'evaluate'"), 2, 0);
    /* The latest score run is still found with evaluate runs after it. */
    req.score_run = 0;
    pnx_evaluate_report_free(&r);
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    assert_int_equal(r.score_run, run);
    pnx_evaluate_report_free(&r);
    pnx_db_close(db);
}

/* Truth from a CSV given directly, in the absolute format; sizes from the
 * instances table. */
static void test_csv_given(void **state)
{
    (void)state;
    pnx_db *db = fresh_db();
    int64_t run = add_score_run(db);
    assert_int_equal(pnx_db_exec(db,
        "INSERT INTO instances (sop_instance_uid, path, rows, columns, status) VALUES"
        " ('" UID_A "','a',4,4,'ok'),('" UID_B "','b',4,4,'ok'),('" UID_C "','c',4,4,'ok'),"
        " ('" UID_D "','d',4,4,'ok'),('" UID_G "','g',4,4,'ok')"), 0);
    pnx_evaluate_request req = {.rle_csv = g_csv_abs, .rle_format = PNX_RLE_FMT_ABSOLUTE};
    pnx_evaluate_report r;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    assert_int_equal(r.assumed_size, 0);
    check_numbers(run, &r);
    pnx_evaluate_report_free(&r);

    /* Read as relative, C's first row means other pixels: the numbers
     * change (the format is really used). */
    req.rle_format = PNX_RLE_FMT_RELATIVE;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    assert_true(fabs(r.summary.mean_dice - 0.35) > 1e-6);
    pnx_evaluate_report_free(&r);
    pnx_db_close(db);
}

/* No size anywhere: the SIIM 1024 × 1024 is assumed and counted; a 4 × 4
 * mask's runs fall in the first column there, so the counts agree. */
static void test_assumed_size(void **state)
{
    (void)state;
    pnx_db *db = fresh_db();
    int64_t run = add_score_run(db);
    pnx_evaluate_request req = {.rle_csv = g_csv_rel, .rle_format = PNX_RLE_FMT_RELATIVE};
    pnx_evaluate_report r;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), 0);
    assert_int_equal(r.assumed_size, 5); /* A, B, C, D, G */
    assert_int_equal(r.summary.tp, 2);
    assert_int_equal(r.summary.fp, 5);
    assert_int_equal(r.summary.fn, 5);
    (void)run;
    pnx_evaluate_report_free(&r);
    pnx_db_close(db);
}

static void test_bad_runs(void **state)
{
    (void)state;
    pnx_db *db = fresh_db();
    pnx_evaluate_request req = {.rle_csv = g_csv_rel};
    pnx_evaluate_report r;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "no score run"));
    int64_t train = add_run(db, "train");
    req.score_run = train;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), PNX_EINVAL);
    assert_non_null(strstr(pnx_errmsg(), "not a score run"));
    req.score_run = 999;
    assert_int_equal(pnx_evaluate_stage_run(db, &req, &r), PNX_ENOTFOUND);
    /* A missing CSV is fatal, and instance_metrics is left as it was. */
    int64_t run = add_score_run(db);
    req.score_run = run;
    req.rle_csv = "/nonexistent/truth.csv";
    assert_true(pnx_evaluate_stage_run(db, &req, &r) < 0);
    assert_non_null(strstr(pnx_errmsg(), "/nonexistent/truth.csv"));
    assert_float_equal(q("SELECT COUNT(*) FROM instance_metrics"), 0, 0);
    assert_float_equal(q("SELECT COUNT(*) FROM runs WHERE stage = 'evaluate' AND "
                         "status = 'failed'"), 1, 0);
    pnx_evaluate_report_free(&r);
    pnx_db_close(db);
}

/* The predictions writer: batches, replacement of a retried row, the done
 * set that resuming reads, and a rollback of what was never flushed. */
static int collect_done(void *ctx, const char *uid, const char *path)
{
    (void)path;
    char *buf = ctx;
    strcat(buf, uid);
    strcat(buf, ";");
    return 0;
}

static void test_predictions_writer(void **state)
{
    (void)state;
    pnx_db *db = fresh_db();
    int64_t run = add_run(db, "score");
    pnx_db_predictions_writer *w = NULL;
    assert_int_equal(pnx_db_predictions_writer_open(&w, db, run, 2), 0);
    pnx_prediction_row bad = {.sop_instance_uid = UID_A, .ok = 0, .error = "decode: x",
                              .decode_ms = -1, .infer_ms = -1, .post_ms = -1};
    assert_int_equal(pnx_db_prediction_put(w, &bad), 0);
    put_ok(w, UID_B, "9.1", "0 3");          /* the second row commits the batch */
    assert_int_equal(pnx_db_predictions_committed(w), 2);
    put_ok(w, UID_A, "9.1", "-1");           /* the retry replaces the error row */
    put_ok(w, UID_C, "9.1", "1 1");
    assert_int_equal(pnx_db_predictions_committed(w), 4);
    put_ok(w, UID_D, "9.1", "1 1");          /* pending, never flushed */
    pnx_db_predictions_writer_close(w);
    int64_t ok = 0, error = 0;
    assert_int_equal(pnx_db_predictions_count(db, run, &ok, &error), 0);
    assert_int_equal(ok, 3);
    assert_int_equal(error, 0);
    char done[512] = "";
    assert_int_equal(pnx_db_predictions_done_each(db, run, collect_done, done), 0);
    assert_string_equal(done, UID_A ";" UID_B ";" UID_C ";");
    assert_float_equal(q("SELECT COUNT(*) FROM predictions WHERE area_mm2 IS NULL AND "
                         "post_ms IS NULL AND decode_ms = 1"), 3, 0);
    /* An ok row needs its RLE. */
    assert_int_equal(pnx_db_predictions_writer_open(&w, db, run, 1), 0);
    pnx_prediction_row no_rle = {.sop_instance_uid = UID_E, .ok = 1};
    assert_int_equal(pnx_db_prediction_put(w, &no_rle), PNX_EINVAL);
    pnx_db_predictions_writer_close(w);

    /* Resuming: unfinished runs with the same config and model are found. */
    pnx_score_run sr;
    assert_int_equal(pnx_db_score_run_unfinished(db, "00", "ab", &sr), 0);
    assert_int_equal(sr.id, run);
    assert_int_equal(pnx_db_score_run_unfinished(db, "00", "cd", &sr), PNX_ENOTFOUND);
    assert_int_equal(pnx_db_run_finish(db, run, "ok", 3, 0, NULL), 0);
    assert_int_equal(pnx_db_score_run_unfinished(db, "00", "ab", &sr), PNX_ENOTFOUND);
    assert_int_equal(pnx_db_score_run_get(db, run, &sr), 0);
    assert_true(sr.finished);
    assert_string_equal(sr.status, "ok");
    assert_int_equal(pnx_db_score_run_reopen(db, run), 0);
    assert_int_equal(pnx_db_score_run_get(db, 0, &sr), 0);
    assert_false(sr.finished);
    assert_string_equal(sr.status, "running");
    pnx_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ground_truth_table),
        cmocka_unit_test(test_csv_given),
        cmocka_unit_test(test_assumed_size),
        cmocka_unit_test(test_bad_runs),
        cmocka_unit_test(test_predictions_writer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
