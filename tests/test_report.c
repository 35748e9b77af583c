/*
 * tests/test_report.c — the HTML report from a hand-built database: the
 * numbers, the provenance, the charts and the embedded overlays are in the
 * page; a missing overlay is shown as missing; a run without evaluation is
 * a clear error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "db/db.h"
#include "pipeline/png_io.h"
#include "pipeline/report_stage.h"

#define CONFIG_SHA "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
#define MODEL_SHA "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"

typedef struct fixture {
    char dir[64];
    char db_path[128];
    char abs_png[128];
    pnx_db *db;
} fixture;

static void write_test_png(const char *path, uint32_t w, uint32_t h, uint8_t seed)
{
    pnx_image img = {0};
    assert_int_equal(pnx_image_alloc(&img, w, h), 0);
    for (size_t i = 0; i < pnx_image_size(&img); i++)
        img.pixels[i] = (uint8_t)(i * 7 + seed);
    assert_int_equal(pnx_png_write_gray(path, &img, 0), 0);
    pnx_image_free(&img);
}

static void exec_ok(pnx_db *db, const char *sql)
{
    if (pnx_db_exec(db, sql) != 0)
        fail_msg("%s: %s", sql, pnx_errmsg());
}

/* Runs 1 train, 2 score (evaluated), 3 evaluate, 4 score (not evaluated).
 * Run 2's five images and their Dice:
 *   u1 truth+ pred+ tp 30 fp 10 fn 10  -> 0.75      overlay a.png
 *   u2 truth+ pred- fn 50              -> 0         overlay b.png (FN)
 *   u3 truth- pred+ fp 20              -> 0         overlay missing.png (FP)
 *   u4 truth- pred-                    -> 1         overlay a.png
 *   u5 truth+ pred+ tp 90 fn 10        -> 180/190   overlay <dir>/c.png (absolute)
 * mean Dice = (0.75 + 0 + 0 + 1 + 0.947368) / 5 = 0.539474. */
static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pnx_report_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db_path, sizeof fx->db_path, "%s/ledger.sqlite", fx->dir);
    snprintf(fx->abs_png, sizeof fx->abs_png, "%s/c.png", fx->dir);
    char path[160];
    snprintf(path, sizeof path, "%s/a.png", fx->dir);
    write_test_png(path, 5, 3, 1);
    snprintf(path, sizeof path, "%s/b.png", fx->dir);
    write_test_png(path, 7, 9, 40);
    write_test_png(fx->abs_png, 2, 2, 99);
    assert_int_equal(pnx_db_open(&fx->db, fx->db_path, PNX_DB_READWRITE), 0);

    exec_ok(fx->db,
            "INSERT INTO runs (id, stage, status, started_at, finished_at, config_text,"
            " config_sha256, model_sha256, software_version, git_revision, host, device,"
            " parent_run_id, n_ok, n_failed) VALUES"
            " (1, 'train', 'ok', '2026-01-01T10:00:00Z', '2026-01-01T10:05:00Z', 'train: {}',"
            "  '" CONFIG_SHA "', '" MODEL_SHA "', '0.1.0-test', 'deadbeef', 'trainhost',"
            "  'cuda:0 NVIDIA test', NULL, 12, 0),"
            " (2, 'score', 'ok', '2026-01-01T11:00:00Z', '2026-01-01T11:01:00Z', 'score: {}',"
            "  '" CONFIG_SHA "', '" MODEL_SHA "', '0.1.0-test', 'deadbeef', 'scorehost',"
            "  'cpu', NULL, 5, 0),"
            " (3, 'evaluate', 'ok', '2026-01-01T11:02:00Z', NULL, '', '" CONFIG_SHA "',"
            "  NULL, '0.1.0-test', 'deadbeef', 'scorehost', NULL, 2, 5, 0),"
            " (4, 'score', 'ok', '2026-01-01T12:00:00Z', NULL, '', '" CONFIG_SHA "',"
            "  '" MODEL_SHA "', '0.1.0-test', 'deadbeef', 'scorehost', 'cpu', NULL, 0, 0)");
    exec_ok(fx->db,
            "INSERT INTO train_epochs (run_id, epoch, steps, train_loss, val_loss, val_dice)"
            " VALUES (1, 1, 4, 1.5, 1.4, 0.10), (1, 2, 4, 1.2, 1.3, NULL),"
            " (1, 3, 4, 0.9, 1.1, 0.35)");
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO predictions (run_id, sop_instance_uid, status, positive, overlay_path)"
             " VALUES (2, '1.2.3.1', 'ok', 1, 'a.png'), (2, '1.2.3.2', 'ok', 0, 'b.png'),"
             " (2, '1.2.3.3', 'ok', 1, 'missing.png'), (2, '1.2.3.4', 'ok', 0, 'a.png'),"
             " (2, '1.2.3.5', 'ok', 1, '%s')",
             fx->abs_png);
    exec_ok(fx->db, sql);
    exec_ok(fx->db,
            "INSERT INTO instance_metrics (run_id, sop_instance_uid, tp, fp, fn,"
            " truth_positive, pred_positive) VALUES"
            " (2, '1.2.3.1', 30, 10, 10, 1, 1), (2, '1.2.3.2', 0, 0, 50, 1, 0),"
            " (2, '1.2.3.3', 0, 20, 0, 0, 1), (2, '1.2.3.4', 0, 0, 0, 0, 0),"
            " (2, '1.2.3.5', 90, 0, 10, 1, 1)");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    pnx_db_close(fx->db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* Not inlined: GCC then takes the returned buffer for read_page's own
 * local and warns of a dangling pointer where the page is searched. */
static __attribute__((noinline)) char *read_page(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (pnx_read_file(path, (size_t)64 << 20, &text, &len) != 0)
        fail_msg("read %s: %s", path, pnx_errmsg());
    return text;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int base64_value(char c)
{
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* Decodes the base64 text at s up to the first non-alphabet character. */
static unsigned char *base64_decode(const char *s, size_t *len)
{
    size_t chars = 0;
    while (base64_value(s[chars]) >= 0)
        chars++;
    unsigned char *out = malloc(chars * 3 / 4 + 3);
    assert_non_null(out);
    uint32_t acc = 0;
    int bits = 0;
    *len = 0;
    for (size_t i = 0; i < chars; i++) {
        acc = acc << 6 | (uint32_t)base64_value(s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[(*len)++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    return out;
}

static void assert_contains(const char *page, const char *needle)
{
    if (!strstr(page, needle))
        fail_msg("the page lacks \"%s\"", needle);
}

static void test_report_page(void **state)
{
    fixture *fx = *state;
    char out[160];
    snprintf(out, sizeof out, "%s/pages/r.html", fx->dir);
    pnx_report_request req = {.run_id = 0, .output_path = out, .base_dir = fx->dir};
    pnx_report_result res;
    int rc = pnx_report_write(fx->db, &req, &res);
    if (rc)
        fail_msg("report: %s", pnx_errmsg());
    assert_int_equal(res.run_id, 2); /* run 4 is newer but not evaluated */
    assert_int_equal(res.train_run_id, 1);
    assert_int_equal(res.evaluated, 5);
    assert_float_equal(res.mean_dice, (0.75 + 1.0 + 180.0 / 190.0) / 5, 1e-12);
    /* worst 3 and best 3 positives (all embedded), FP u3 (missing), FN u2 */
    assert_int_equal(res.images_embedded, 7);
    assert_int_equal(res.images_missing, 1);

    char *page = read_page(out);
    assert_contains(page, "<!DOCTYPE html>");
    assert_contains(page, "0.5395");                 /* mean Dice */
    assert_contains(page, "0.5658");                 /* mean Dice over positives */
    assert_contains(page, CONFIG_SHA);
    assert_contains(page, MODEL_SHA);
    assert_contains(page, "deadbeef");
    assert_contains(page, "0.1.0-test");
    assert_contains(page, "scorehost");
    assert_contains(page, "trainhost");
    assert_contains(page, "cuda:0 NVIDIA test");
    assert_contains(page, "2026-01-01T11:01:00Z");
    assert_contains(page, "same model SHA-256");
    assert_contains(page, "Train run 1, 3 epochs");
    assert_int_equal(count_of(page, "<svg"), 3);     /* loss, val Dice, histogram */
    assert_contains(page, "<title>0.0–0.1: 2</title>");
    assert_contains(page, "<title>0.7–0.8: 1</title>");
    assert_contains(page, "<title>0.9–1.0: 2</title>");
    assert_int_equal(count_of(page, "data:image/png;base64,"), 7);
    assert_contains(page, "overlay missing");
    assert_contains(page, "missing.png");
    assert_contains(page, "Dice 0.7500 · TP 30 · FP 10 · FN 10");
    assert_contains(page, "1.2.3.3");
    /* Nothing outside the page: no src or href other than data: URIs. */
    assert_int_equal(count_of(page, "src=\""), count_of(page, "src=\"data:image/png;base64,"));
    assert_null(strstr(page, "href="));

    /* The first figure is the worst positive, u2 (b.png): decode it back. */
    const char *first = strstr(page, "data:image/png;base64,");
    assert_non_null(first);
    size_t decoded_len = 0;
    unsigned char *decoded = base64_decode(first + strlen("data:image/png;base64,"),
                                           &decoded_len);
    char path[160], *file = NULL;
    size_t file_len = 0;
    snprintf(path, sizeof path, "%s/b.png", fx->dir);
    assert_int_equal(pnx_read_file(path, 1 << 20, &file, &file_len), 0);
    assert_int_equal(decoded_len, file_len);
    assert_memory_equal(decoded, file, file_len);
    free(decoded);
    free(file);
    free(page);

    /* Written atomically: only the page in its folder, no temporary file. */
    char folder[160];
    snprintf(folder, sizeof folder, "%s/pages", fx->dir);
    DIR *d = opendir(folder);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
}

static void test_default_path(void **state)
{
    fixture *fx = *state;
    pnx_report_request req = {.run_id = 2, .output_dir = fx->dir, .base_dir = fx->dir};
    pnx_report_result res;
    assert_int_equal(pnx_report_write(fx->db, &req, &res), 0);
    char expected[160];
    snprintf(expected, sizeof expected, "%s/report-run2.html", fx->dir);
    assert_string_equal(res.path, expected);
    assert_int_equal(access(expected, F_OK), 0);
}

static void test_run_without_metrics(void **state)
{
    fixture *fx = *state;
    char out[160];
    snprintf(out, sizeof out, "%s/never.html", fx->dir);
    pnx_report_request req = {.run_id = 4, .output_path = out};
    pnx_report_result res;
    assert_int_equal(pnx_report_write(fx->db, &req, &res), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "run 4"));
    assert_non_null(strstr(pnx_errmsg(), "no evaluation"));
    req.run_id = 1;
    assert_int_equal(pnx_report_write(fx->db, &req, &res), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "run 1 is a train run, not a score run"));
    req.run_id = 99;
    assert_int_equal(pnx_report_write(fx->db, &req, &res), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "no run 99"));
    assert_int_equal(access(out, F_OK), -1);
}

static void test_nothing_evaluated(void **state)
{
    fixture *fx = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/empty.sqlite", fx->dir);
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, path, PNX_DB_READWRITE), 0);
    pnx_report_request req = {.output_dir = fx->dir};
    pnx_report_result res;
    assert_int_equal(pnx_report_write(db, &req, &res), PNX_ENOTFOUND);
    assert_non_null(strstr(pnx_errmsg(), "no evaluated score run"));
    pnx_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_without_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_evaluated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
