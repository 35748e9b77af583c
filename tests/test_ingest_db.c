/*
 * tests/test_ingest_db.c — the instances / ingest_errors ledger rows, and
 * `pneumoseg ingest` end to end on a tree with malformed files mixed in:
 * exit status 2, one specific error per bad file, the good files indexed
 * and written as PNGs (the real SIIM file equal to dcmj2pnm's pixels when
 * present), and a rerun leaving the same rows; and the shipped sample set
 * indexing with every file ok.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"
#include "db/instances.h"
#include "test_ingest_gen.h"

#define PNEUMOSEG PNX_BINARY_DIR "/pneumoseg"
#define SIIM_DIR PNX_SHARED_DIR "/realdata/siim"
#define SIIM_NAME "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819"
#define SIIM_PGM SIIM_DIR "/derived/850819_pixels_dcmtk367_dcmj2pnm.pgm"

static int64_t query_int(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ------------------------------------------------------------ the rows */

static pnx_instance_row row_for(const char *uid, const char *path, const char *kind)
{
    pnx_instance_row r;
    memset(&r, 0, sizeof r);
    r.sop_instance_uid = uid;
    r.study_instance_uid = "1.2.3.100";
    r.series_instance_uid = "1.2.3.200";
    r.path = path;
    r.file_size = 1234;
    r.rows = r.columns = 1024;
    r.bits_allocated = r.bits_stored = 8;
    r.lossy = 1;
    r.has_spacing = 1;
    r.pixel_spacing_row = r.pixel_spacing_col = 0.168;
    r.error_kind = kind;
    r.error = kind ? "broken" : NULL;
    return r;
}

static int64_t begin_run(pnx_db *db)
{
    pnx_run_info info = {.stage = "ingest", .config_text = "", .config_sha256 = "0"};
    int64_t id = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &id), 0);
    return id;
}

static int count_ok_rows(void *ctx, const pnx_instance_row *row)
{
    int *n = ctx;
    assert_non_null(row->sop_instance_uid);
    assert_non_null(row->path);
    assert_int_equal(row->rows, 1024);
    (*n)++;
    return 0;
}

static void test_instances_upserts(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char path[4096];
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, gen_path(path, sizeof path, dir, "t.sqlite"), 0), 0);
    int64_t run1 = begin_run(db);
    pnx_db_instances_writer *w = NULL;
    assert_int_equal(pnx_db_instances_writer_open(&w, db, run1), 0);
    assert_int_equal(pnx_db_begin(db), 0);

    pnx_instance_row a = row_for("1.2.3.1", "b/x.dcm", NULL);
    int stored = 0;
    assert_int_equal(pnx_db_instance_put_kept(w, &a, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(pnx_db_instance_put(w, &a), 0); /* the same file again */
    /* Same UID, another file of the same run that failed: the ok row stays,
     * whichever order they come in. */
    pnx_instance_row bad = row_for("1.2.3.1", "a/x.dcm", "truncated");
    assert_int_equal(pnx_db_instance_put_kept(w, &bad, &stored), 0);
    assert_int_equal(stored, 0);
    /* Two ok copies: the smaller path stays. */
    pnx_instance_row copy = row_for("1.2.3.1", "a/copy.dcm", NULL);
    assert_int_equal(pnx_db_instance_put_kept(w, &copy, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(pnx_db_instance_put_kept(w, &a, &stored), 0);
    assert_int_equal(stored, 0);

    /* A file without a UID, which then becomes readable. */
    assert_int_equal(pnx_db_ingest_error_put(w, "c/y.dcm", 0, "not_dicom", "empty file"), 0);
    assert_int_equal(pnx_db_ingest_error_put(w, "c/y.dcm", 0, "not_dicom", "empty file"), 0);
    pnx_instance_row y = row_for("1.2.3.2", "c/y.dcm", NULL);
    assert_int_equal(pnx_db_instance_put(w, &y), 0);
    /* And one that stays broken. */
    assert_int_equal(pnx_db_ingest_error_put(w, "c/z.dcm", -1, "crash", "signal 11"), 0);
    assert_int_equal(pnx_db_commit(db), 0);

    int64_t ok = -1, errors = -1, studies = -1, series = -1, file_errors = -1;
    assert_int_equal(pnx_db_instances_counts(db, run1, &ok, &errors, &studies, &series,
                                             &file_errors),
                     0);
    assert_int_equal(ok, 2);
    assert_int_equal(errors, 0);
    assert_int_equal(studies, 1);
    assert_int_equal(series, 1);
    assert_int_equal(file_errors, 1);
    int listed = 0;
    assert_int_equal(pnx_db_instances_each_ok(db, count_ok_rows, &listed), 0);
    assert_int_equal(listed, 2);
    pnx_db_instances_writer_close(w);

    /* A later run replaces rows whatever they were; an instance whose file
     * now fails before its UID is read is marked as error. */
    int64_t run2 = begin_run(db);
    assert_int_equal(pnx_db_instances_writer_open(&w, db, run2), 0);
    assert_int_equal(pnx_db_begin(db), 0);
    pnx_instance_row later = row_for("1.2.3.1", "b/x.dcm", "decode");
    assert_int_equal(pnx_db_instance_put_kept(w, &later, &stored), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(pnx_db_ingest_error_put(w, "c/y.dcm", 5, "truncated", "cut"), 0);
    assert_int_equal(pnx_db_commit(db), 0);
    pnx_db_instances_writer_close(w);
    assert_int_equal(pnx_db_instances_counts(db, 0, &ok, &errors, NULL, NULL, &file_errors), 0);
    assert_int_equal(ok, 0);
    assert_int_equal(errors, 2);
    assert_int_equal(file_errors, 2);
    pnx_db_close(db);

    assert_int_equal(query_int(path, "SELECT COUNT(*) FROM instances WHERE sop_instance_uid ="
                                     " '1.2.3.2' AND error_kind = 'truncated'"),
                     1);
    assert_int_equal(query_int(path, "SELECT lossy FROM instances WHERE sop_instance_uid ="
                                     " '1.2.3.1'"),
                     1);
    gen_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ end to end */

static int run_command(const char *cmd)
{
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Reads a PNG as 8-bit gray; NULL when unreadable. */
static uint8_t *read_png_gray(const char *path, unsigned *w, unsigned *h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return NULL;
    img.format = PNG_FORMAT_GRAY;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
        free(px);
        png_image_free(&img);
        return NULL;
    }
    *w = img.width;
    *h = img.height;
    return px;
}

static void test_pneumoseg_ingest_end_to_end(void **state)
{
    (void)state;
    if (access(PNEUMOSEG, X_OK) != 0) {
        skip();
        return;
    }
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char tree[4096], p[4096], cfg[4096], out[4096], png_dir[4096], db_path[4096];
    gen_path(tree, sizeof tree, dir, "tree");
    assert_int_equal(mkdir(tree, 0755), 0);
    assert_int_equal(mkdir(gen_path(p, sizeof p, tree, "study1"), 0755), 0);
    assert_int_equal(mkdir(gen_path(p, sizeof p, tree, "study2"), 0755), 0);

    enum { R = 32, C = 40 };
    static uint8_t px[R * C];
    gen_picture8(px, R, C);
    static const char *const good[] = {"study1/a.dcm", "study1/b.dcm", "study2/c"};
    for (int i = 0; i < 3; i++) {
        char uid[64];
        snprintf(uid, sizeof uid, "1.2.826.0.1.3680043.9.7307.6.%d", i + 1);
        gen_image g = {.sop_uid = uid, .rows = R, .columns = C, .bits_allocated = 8,
                       .bits_stored = 8, .pixels = px, .pixel_bytes = sizeof px};
        assert_int_equal(gen_write(gen_path(p, sizeof p, tree, good[i]), &g), 0);
    }
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, tree, "empty.dcm"), "", 0), 0);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, tree, "readme.dcm"), "hello\n", 6), 0);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, tree, "labels.csv"), "a,b\n", 4), 0);
    gen_image bomb = {.sop_uid = "1.2.826.0.1.3680043.9.7307.6.9", .rows = 65535,
                      .columns = 65535, .bits_allocated = 16, .bits_stored = 16,
                      .pixels = px, .pixel_bytes = 0, .declared_pixel_length = 0xFFFFFFFEll};
    assert_int_equal(gen_write(gen_path(p, sizeof p, tree, "study2/bomb.dcm"), &bomb), 0);
    gen_image j2k = {.sop_uid = "1.2.826.0.1.3680043.9.7307.6.10", .rows = R, .columns = C,
                     .bits_allocated = 8, .bits_stored = 8, .pixels = px, .pixel_bytes = 8,
                     .encapsulated = 1, .ts_uid = GEN_TS_JPEG2000};
    assert_int_equal(gen_write(gen_path(p, sizeof p, tree, "j2k.dcm"), &j2k), 0);
    int have_siim = access(SIIM_DIR "/" SIIM_NAME ".dcm", R_OK) == 0 && access(SIIM_PGM, R_OK) == 0;
    if (have_siim) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/study2/'", SIIM_DIR "/" SIIM_NAME ".dcm", tree);
        assert_int_equal(run_command(cmd), 0);
    }

    gen_path(out, sizeof out, dir, "out");
    gen_path(png_dir, sizeof png_dir, dir, "png");
    gen_path(db_path, sizeof db_path, out, "pneumoseg.sqlite");
    char yaml[8192];
    int n = snprintf(yaml, sizeof yaml, "output: %s\nstages: []\ningest:\n  workers: 2\n", out);
    assert_int_equal(gen_write_bytes(gen_path(cfg, sizeof cfg, dir, "p.yaml"), yaml, (size_t)n), 0);

    char cmd[32768], summary[4096];
    gen_path(summary, sizeof summary, dir, "summary.txt");
    snprintf(cmd, sizeof cmd, "'%s' ingest -q --config '%s' --png '%s' '%s' > '%s'", PNEUMOSEG,
             cfg, png_dir, tree, summary);
    const int64_t n_ok = 3 + have_siim;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(run_command(cmd), 2);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM instances WHERE status = 'ok'"),
                         n_ok);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM instances"), n_ok + 2);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM instances WHERE"
                                            " error_kind = 'too_large' AND path LIKE '%bomb.dcm'"),
                         1);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM instances WHERE"
                                            " error_kind = 'unsupported_syntax' AND error LIKE"
                                            " '%1.2.840.10008.1.2.4.90 (JPEG 2000)'"),
                         1);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM ingest_errors WHERE"
                                            " error_kind = 'not_dicom'"),
                         2);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM ingest_errors"), 2);
        assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM runs WHERE stage = 'ingest'"
                                            " AND status = 'partial'"),
                         round + 1);
        assert_int_equal(query_int(db_path, "SELECT n_ok FROM runs ORDER BY id DESC LIMIT 1"),
                         n_ok);
    }
    char *text = NULL;
    FILE *f = fopen(summary, "r");
    assert_non_null(f);
    text = calloc(1, 4096);
    assert_non_null(text);
    assert_true(fread(text, 1, 4095, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "(1 other files skipped)"));
    assert_non_null(strstr(text, "not_dicom 2"));
    assert_non_null(strstr(text, "too_large 1"));
    free(text);

    unsigned w = 0, h = 0;
    uint8_t *got = read_png_gray(gen_path(p, sizeof p, png_dir,
                                          "1.2.826.0.1.3680043.9.7307.6.3.png"),
                                 &w, &h);
    assert_non_null(got);
    assert_int_equal(w, C);
    assert_int_equal(h, R);
    assert_memory_equal(got, px, sizeof px);
    free(got);
    if (have_siim) {
        got = read_png_gray(gen_path(p, sizeof p, png_dir, SIIM_NAME ".png"), &w, &h);
        assert_non_null(got);
        FILE *pgm = fopen(SIIM_PGM, "rb");
        assert_non_null(pgm);
        unsigned pw = 0, ph = 0, maxval = 0;
        assert_int_equal(fscanf(pgm, "P5 %u %u %u", &pw, &ph, &maxval), 3);
        fgetc(pgm);
        assert_int_equal(pw, w);
        assert_int_equal(ph, h);
        uint8_t *ref = malloc((size_t)w * h);
        assert_non_null(ref);
        assert_int_equal(fread(ref, 1, (size_t)w * h, pgm), (size_t)w * h);
        fclose(pgm);
        assert_memory_equal(got, ref, (size_t)w * h);
        free(ref);
        free(got);
    }

    /* The good files alone: exit 0. */
    snprintf(cmd, sizeof cmd, "'%s' ingest -q --config '%s' '%s/study1' > /dev/null", PNEUMOSEG,
             cfg, tree);
    assert_int_equal(run_command(cmd), 0);
    /* Usage errors: exit 1. */
    snprintf(cmd, sizeof cmd, "'%s' ingest -q --config '%s' --workers x '%s' 2>/dev/null",
             PNEUMOSEG, cfg, tree);
    assert_int_equal(run_command(cmd), 1);
    gen_rmtree(dir);
    free(dir);
}

/* The shipped sample set indexes with every file ok. */
static void test_pneumoseg_ingest_sample_dicom(void **state)
{
    (void)state;
    const char *sample = PNX_SOURCE_DIR "/sample_dicom";
    if (access(PNEUMOSEG, X_OK) != 0 || access(sample, R_OK) != 0) {
        skip();
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.dcm' | wc -l", sample);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    long files = -1;
    assert_int_equal(fscanf(f, "%ld", &files), 1);
    pclose(f);
    assert_true(files > 0);

    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char cfg[4096], out[4096], db_path[4096], yaml[8192];
    gen_path(out, sizeof out, dir, "out");
    gen_path(db_path, sizeof db_path, out, "pneumoseg.sqlite");
    int n = snprintf(yaml, sizeof yaml, "output: %s\nstages: []\n", out);
    assert_int_equal(gen_write_bytes(gen_path(cfg, sizeof cfg, dir, "p.yaml"), yaml, (size_t)n), 0);
    snprintf(cmd, sizeof cmd, "'%s' ingest -q --config '%s' '%s' > /dev/null", PNEUMOSEG, cfg,
             sample);
    assert_int_equal(run_command(cmd), 0);
    assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM instances WHERE status = 'ok'"
                                        " AND rows = 1024 AND columns = 1024 AND lossy = 1"
                                        " AND transfer_syntax = '1.2.840.10008.1.2.4.50'"),
                     files);
    assert_int_equal(query_int(db_path, "SELECT COUNT(*) FROM ingest_errors"), 0);
    gen_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instances_upserts),
        cmocka_unit_test(test_pneumoseg_ingest_end_to_end),
        cmocka_unit_test(test_pneumoseg_ingest_sample_dicom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
