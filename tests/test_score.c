/*
 * tests/test_score.c — `pneumoseg score` end to end on a small tree made of
 * sample_dicom/ test images (1024 × 1024 JPEG Baseline) and a generated
 * 7 × 9 one, plus bad files (not DICOM, truncated, a 65535² pixel bomb,
 * 6000 nested sequences, JPEG 2000, RGB), with a tiny random U-Net
 * checkpoint:
 *   - every output is written and the rows say so: each SEG read back (raw
 *     bits) equals the mask of predictions.mask_rle, overlays and Secondary
 *     Captures exist, the submission CSV decodes to the same masks, the bad
 *     files are recorded (predictions error row / ingest_errors) and the
 *     exit status is 2;
 *   - negatives: with a threshold nothing passes, no SEG with
 *     --seg-negative none, an empty-segment SEG with empty;
 *   - killed with SIGKILL at two points and rerun: the resumed run equals an
 *     uninterrupted one (masks, SEG UIDs), no duplicate rows, no temporary
 *     files, PRAGMA integrity_check ok;
 *   - SEGs and Secondary Captures pass dciodvfy when it is installed;
 *   - Ctrl-C marks the run interrupted (exit 3) and the same command
 *     finishes it;
 *   - evaluate over the scored run against a CSV of the predicted masks
 *     gives Dice 1.
 * Skips (77) when sample_dicom/ is not there.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/error.h"
#include "common/image.h"
#include "common/log.h"
#include "model/backend.h"
#include "model/checkpoint.h"
#include "model/unet.h"
#include "postprocess/seg.h"
#include "rle/rle.h"
#include "test_ingest_gen.h"

#define N_SAMPLE 6            /* sample_dicom test images */
#define N_GOOD (N_SAMPLE + 1) /* and one generated 7 × 9 image */
#define N_BAD 6               /* truncated, text, bomb, nested, JPEG 2000, RGB */
#define GEN_ROOT "1.2.826.0.1.3680043.9.7307.77."
#define SIDE "32"

static char g_dir[256];
static char g_tree[300];
static char g_model[300];
static char g_yaml[300];
static char g_threshold[64] = "0.5";

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path_in(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 1024, "%s/%s", g_dir, name);
    return p;
}

/* A random base-4 U-Net whose checkpoint says it was trained at SIDE². */
static void write_model(const char *path)
{
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    assert_int_equal(pnx_unet_create(&m, be, 4), 0);
    assert_int_equal(pnx_unet_init(m, 11), 0);
    const char *keys[] = {"pneumoseg.image_size"};
    const char *values[] = {SIDE};
    pnx_checkpoint_meta meta = {.epoch = 1, .step = 1, .n_extra = 1, .extra_keys = keys,
                                .extra_values = values};
    assert_int_equal(pnx_checkpoint_save(m, path, &meta), 0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

/* The generated files: one good image whose size is not a multiple of 8
 * (the SEG bit packing case), and bad ones of ingest's kinds. */
static void write_generated(void)
{
    char p[1024], bad[400];
    snprintf(bad, sizeof bad, "%s/bad", g_tree);
    static uint8_t px[9 * 7];
    gen_picture8(px, 9, 7);
    gen_image g = {.sop_uid = GEN_ROOT "1", .rows = 9, .columns = 7, .bits_allocated = 8,
                   .bits_stored = 8, .pixels = px, .pixel_bytes = sizeof px};
    assert_int_equal(gen_write(gen_path(p, sizeof p, g_tree, "odd.dcm"), &g), 0);

    gen_image bomb = g;
    bomb.sop_uid = GEN_ROOT "2";
    bomb.rows = bomb.columns = 65535;
    bomb.bits_allocated = bomb.bits_stored = 16;
    bomb.pixel_bytes = 0;
    bomb.declared_pixel_length = 0xFFFFFFFEll;
    assert_int_equal(gen_write(gen_path(p, sizeof p, bad, "bomb.dcm"), &bomb), 0);

    gen_image nest = g;
    nest.sop_uid = GEN_ROOT "3";
    nest.nested_sequences = 6000;
    assert_int_equal(gen_write(gen_path(p, sizeof p, bad, "nested.dcm"), &nest), 0);

    gen_image j2k = g;
    j2k.sop_uid = GEN_ROOT "4";
    j2k.ts_uid = GEN_TS_JPEG2000;
    j2k.encapsulated = 1;
    static const uint8_t j2k_start[] = {0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x2F, 0x00, 0x00};
    j2k.pixels = j2k_start;
    j2k.pixel_bytes = sizeof j2k_start;
    assert_int_equal(gen_write(gen_path(p, sizeof p, bad, "j2k.dcm"), &j2k), 0);

    static uint8_t rgb[9 * 7 * 3];
    gen_image c = g;
    c.sop_uid = GEN_ROOT "5";
    c.photometric = "RGB";
    c.samples_per_pixel = 3;
    c.pixels = rgb;
    c.pixel_bytes = sizeof rgb;
    assert_int_equal(gen_write(gen_path(p, sizeof p, bad, "rgb.dcm"), &c), 0);
}

/* A random network is not trained to find anything: a probe run gives each
 * image's highest probability, and the threshold is put between the
 * images' maxima so that some masks are empty and some are not. */
static int pick_threshold(void)
{
    const char *db = path_in("probe.sqlite");
    if (run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                "--no-seg --no-overlay > /dev/null",
                PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, path_in("probe")) != 2)
        return -1;
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s, "SELECT max_probability FROM predictions WHERE status = 'ok'"
                              " ORDER BY max_probability", -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(s);
        return -1;
    }
    double v[N_GOOD];
    int n = 0;
    while (n < N_GOOD && sqlite3_step(st) == SQLITE_ROW)
        v[n++] = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    if (n != N_GOOD || !(v[N_GOOD / 2] > v[N_GOOD / 2 - 1]))
        return -1;
    snprintf(g_threshold, sizeof g_threshold, "%.9g", (v[N_GOOD / 2] + v[N_GOOD / 2 - 1]) / 2);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    pnx_log_set_level(PNX_LOG_ERROR);
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-score-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_tree, sizeof g_tree, "%s/tree", g_dir);
    snprintf(g_model, sizeof g_model, "%s/model.safetensors", g_dir);
    snprintf(g_yaml, sizeof g_yaml, "%s/pipeline.yaml", g_dir);
    /* The first N_GOOD test images, one study folder each; the next one
     * truncated inside its pixel data; a text file named .dcm. */
    if (run_cmd("mkdir -p '%s/bad' && cd '%s/sample_dicom/dicom-images-test' && "
                "find . -name '*.dcm' | sort | head -%d | "
                "while read f; do mkdir -p \"%s/$(dirname $f)\" && cp \"$f\" \"%s/$f\"; done && "
                "f=$(find . -name '*.dcm' | sort | sed -n %dp) && "
                "head -c 3000 \"$f\" > '%s/bad/truncated.dcm' && "
                "echo 'not a DICOM file' > '%s/bad/note.dcm'",
                g_tree, PNX_SOURCE_DIR, N_SAMPLE, g_tree, g_tree, N_SAMPLE + 1, g_tree,
                g_tree) != 0)
        return -1;
    write_generated();
    write_model(g_model);
    /* One row per transaction, so a kill lands between rows. */
    FILE *f = fopen(g_yaml, "w");
    if (!f)
        return -1;
    fprintf(f, "output: %s/unused\nstages: [score]\ndataset:\n  image_size: 64\n"
               "score:\n  dicom_dir: %s\n  commit_every: 1\n  overlay:\n    size: 64\n",
            g_dir, g_tree);
    if (fclose(f) != 0)
        return -1;
    return pick_threshold();
}

static int teardown(void **state)
{
    (void)state;
    return run_cmd("rm -rf '%s'", g_dir) == 0 ? 0 : -1;
}

/* ---- reading the database as a client ---------------------------------------- */

static sqlite3 *open_db(const char *path)
{
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    return s;
}

static int64_t q_int(sqlite3 *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(sqlite3 *s, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(s));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void assert_integrity(sqlite3 *s)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static int count_temp_files(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp.*' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* The SOP Instance UID of a DICOM file, by dcmdump (DCMTK's tool). */
static void dicom_uid(const char *path, char *out, size_t size)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "dcmdump -q +P 0008,0018 '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
    assert_non_null(b);
    snprintf(out, size, "%.*s", (int)(b - a - 1), a + 1);
}

/* One ok predictions row, as read back. */
typedef struct pred {
    char uid[80];
    char *rle;           /* owned */
    int positive;
    int64_t mask_pixels;
    char seg[1024], overlay[1024], sc[1024];
    int64_t rows, columns;
} pred;

static int read_preds(sqlite3 *s, int64_t run, pred *out, int max)
{
    sqlite3_stmt *st = NULL;
    const char *sql =
        "SELECT p.sop_instance_uid, p.mask_rle, p.positive, p.mask_pixels, p.seg_path,"
        " p.overlay_path, p.sc_path, i.rows, i.columns FROM predictions p"
        " JOIN instances i USING (sop_instance_uid)"
        " WHERE p.run_id = ?1 AND p.status = 'ok' ORDER BY p.sop_instance_uid";
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, run);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(n < max);
        pred *p = &out[n++];
        memset(p, 0, sizeof *p);
#define COPY(dst, col)                                                           \
    snprintf(dst, sizeof dst, "%s",                                              \
             sqlite3_column_text(st, col) ? (const char *)sqlite3_column_text(st, col) : "")
        COPY(p->uid, 0);
        const char *rle = (const char *)sqlite3_column_text(st, 1);
        p->rle = strdup(rle ? rle : "");
        assert_non_null(p->rle);
        p->positive = sqlite3_column_int(st, 2);
        p->mask_pixels = sqlite3_column_int64(st, 3);
        COPY(p->seg, 4);
        COPY(p->overlay, 5);
        COPY(p->sc, 6);
#undef COPY
        p->rows = sqlite3_column_int64(st, 7);
        p->columns = sqlite3_column_int64(st, 8);
    }
    sqlite3_finalize(st);
    return n;
}

static void free_preds(pred *p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p[i].rle);
        p[i].rle = NULL;
    }
}

static void decode_rle(const pred *p, pnx_image *mask)
{
    assert_int_equal(pnx_image_alloc(mask, (uint32_t)p->columns, (uint32_t)p->rows), 0);
    assert_int_equal(pnx_rle_decode(p->rle, strlen(p->rle), PNX_RLE_FMT_RELATIVE, mask, NULL), 0);
}

static int64_t count_ones(const pnx_image *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < pnx_image_size(m); i++)
        n += m->pixels[i] != 0;
    return n;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
}

/* dciodvfy (dicom3tools) reports no error; returns 1 when it is not
 * installed. */
static int dciodvfy_clean(const char *path)
{
    if (system("command -v dciodvfy >/dev/null 2>&1") != 0)
        return 1;
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "dciodvfy '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[2048];
    int errors = 0;
    while (fgets(line, sizeof line, p))
        if (strncmp(line, "Error", 5) == 0) {
            fprintf(stderr, "dciodvfy %s: %s", path, line);
            errors++;
        }
    pclose(p);
    assert_int_equal(errors, 0);
    return 0;
}

static int64_t latest_score_run(sqlite3 *s)
{
    return q_int(s, "SELECT MAX(id) FROM runs WHERE stage = 'score'");
}

/* ---- outputs and rows ---------------------------------------------------------- */

static pred g_preds[N_GOOD + 2];

static void test_outputs(void **state)
{
    (void)state;
    const char *out = path_in("out1"), *db = path_in("out1.sqlite"), *csv = path_in("sub.csv");
    int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                     "--workers 2 --threads 2 --batch-size 4 --sc --submission '%s' --threshold %s"
                     " > /dev/null",
                     PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out, csv, g_threshold);
    assert_int_equal(rc, 2); /* two bad files */
    sqlite3 *s = open_db(db);
    int64_t run = latest_score_run(s);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE stage = 'score' AND "
                              "status = 'partial' AND n_ok = %d AND n_failed = %d AND "
                              "finished_at IS NOT NULL AND model_sha256 IS NOT NULL",
                           N_GOOD, N_BAD),
                     1);
    /* Every bad file is recorded once, with its reason. */
    assert_int_equal(q_int(s, "SELECT (SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND "
                              "status = 'error') + (SELECT COUNT(*) FROM ingest_errors WHERE "
                              "run_id = %lld)",
                           (long long)run, (long long)run),
                     N_BAD);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE sop_instance_uid = '"
                              GEN_ROOT "4' AND error LIKE 'unsupported_syntax:%%'"),
                     1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE sop_instance_uid = '"
                              GEN_ROOT "5' AND error LIKE 'colour:%%'"),
                     1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE sop_instance_uid = '"
                              GEN_ROOT "2' AND error LIKE 'too_large:%%'"),
                     1);
    /* The truncated file's UID is known: a predictions error row. The text
     * file has none: an ingest_errors row of this run. */
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE status = 'error' AND "
                              "path LIKE '%%truncated.dcm' AND error IS NOT NULL"),
                     1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM ingest_errors WHERE run_id = %lld AND "
                              "path LIKE '%%note.dcm'",
                           (long long)run),
                     1);
    int n = read_preds(s, run, g_preds, N_GOOD + 2);
    assert_int_equal(n, N_GOOD);
    int positives = 0, odd = 0;
    for (int i = 0; i < n; i++) {
        pred *p = &g_preds[i];
        if (strcmp(p->uid, GEN_ROOT "1") == 0) {
            assert_int_equal(p->rows, 9);
            assert_int_equal(p->columns, 7);
            odd++;
        } else {
            assert_int_equal(p->rows, 1024);
        }
        pnx_image mask = {0}, seg = {0};
        decode_rle(p, &mask);
        assert_int_equal(count_ones(&mask), p->mask_pixels);
        assert_int_equal(p->positive, p->mask_pixels > 0);
        positives += p->positive;
        /* The SEG holds exactly the mask. */
        assert_true(file_exists(p->seg));
        assert_int_equal(pnx_seg_read_mask(p->seg, &seg), 0);
        assert_int_equal(seg.width, mask.width);
        assert_int_equal(seg.height, mask.height);
        assert_memory_equal(seg.pixels, mask.pixels, pnx_image_size(&mask));
        assert_true(file_exists(p->overlay));
        assert_true(file_exists(p->sc));
        dciodvfy_clean(p->seg);
        dciodvfy_clean(p->sc);
        assert_non_null(strstr(p->seg, out));
        pnx_image_free(&mask);
        pnx_image_free(&seg);
    }
    assert_int_equal(odd, 1);
    assert_true(positives > 0 && positives < n);
    /* The submission CSV: one row per scored image, the same masks. */
    pnx_rle_index *index = NULL;
    assert_int_equal(pnx_rle_index_build(&index, csv), 0);
    assert_int_equal(pnx_rle_index_count(index), N_GOOD);
    for (int i = 0; i < n; i++) {
        size_t at;
        assert_int_equal(pnx_rle_index_find(index, g_preds[i].uid, &at), 0);
        pnx_image a = {0}, b = {0};
        decode_rle(&g_preds[i], &a);
        assert_int_equal(pnx_image_alloc(&b, a.width, a.height), 0);
        assert_int_equal(pnx_rle_index_decode(index, at, PNX_RLE_FMT_RELATIVE, &b), 0);
        assert_memory_equal(a.pixels, b.pixels, pnx_image_size(&a));
        pnx_image_free(&a);
        pnx_image_free(&b);
    }
    pnx_rle_index_free(index);
    assert_int_equal(count_temp_files(out), 0);
    assert_integrity(s);
    sqlite3_close(s);

    /* Evaluate against the submission as truth: every Dice is 1. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' evaluate -q --config '%s' --db '%s' --rle-csv '%s' --json",
             PNX_PNEUMOSEG, g_yaml, db, csv);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char json[8192] = "";
    size_t got = fread(json, 1, sizeof json - 1, p);
    json[got] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(json, "\"mean_dice\": 1,"));
    char expect[64];
    snprintf(expect, sizeof expect, "\"evaluated\": %d,", N_GOOD);
    assert_non_null(strstr(json, expect));
    sqlite3 *s2 = open_db(db);
    snprintf(expect, sizeof expect, "\"not_scored\": %lld,", /* bad files with a UID */
             (long long)q_int(s2, "SELECT COUNT(*) FROM predictions WHERE status = 'error'"));
    sqlite3_close(s2);
    assert_non_null(strstr(json, expect));

    /* The table, and a run that does not exist. */
    snprintf(cmd, sizeof cmd, "'%s' evaluate -q --config '%s' --db '%s' --rle-csv '%s'",
             PNX_PNEUMOSEG, g_yaml, db, csv);
    p = popen(cmd, "r");
    assert_non_null(p);
    got = fread(json, 1, sizeof json - 1, p);
    json[got] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(json, "mean Dice (competition)     1.0000"));
    assert_int_equal(run_cmd("'%s' evaluate -q --config '%s' --db '%s' --run 999 2>/dev/null",
                             PNX_PNEUMOSEG, g_yaml, db),
                     1);
}

/* Nothing passes a threshold of 1: negatives with and without SEG. */
static void test_negatives(void **state)
{
    (void)state;
    const char *db = path_in("neg.sqlite");
    for (int none = 0; none <= 1; none++) {
        const char *out = path_in(none ? "neg-none" : "neg-empty");
        int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                         "--threshold 1 --seg-negative %s --no-overlay --workers 1 > /dev/null",
                         PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out,
                         none ? "none" : "empty");
        assert_int_equal(rc, 2);
        sqlite3 *s = open_db(db);
        int64_t run = latest_score_run(s);
        assert_integrity(s);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND "
                                  "status = 'ok' AND positive = 0 AND mask_pixels = 0 AND "
                                  "mask_rle = '-1' AND overlay_path IS NULL",
                               (long long)run),
                         N_GOOD);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE run_id = %lld AND "
                                  "seg_path IS NOT NULL",
                               (long long)run),
                         none ? 0 : N_GOOD);
        if (!none) {
            /* An explicit negative: a SEG whose one segment is empty. */
            pred *p = calloc(N_GOOD + 2, sizeof *p);
            assert_non_null(p);
            assert_int_equal(read_preds(s, run, p, N_GOOD + 2), N_GOOD);
            pnx_image seg = {0};
            assert_int_equal(pnx_seg_read_mask(p[0].seg, &seg), 0);
            assert_int_equal(seg.width, 1024);
            assert_int_equal(count_ones(&seg), 0);
            pnx_image_free(&seg);
            free_preds(p, N_GOOD);
            free(p);
        }
        sqlite3_close(s);
    }
    /* The settings differ, so the two runs are two runs. */
    sqlite3 *s = open_db(db);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE stage = 'score'"), 2);
    sqlite3_close(s);
}

/* Tuned triplet thresholds in the checkpoint replace the YAML's defaults,
 * not the values the YAML sets; the run's settings line says which won. */
static void test_triplet_from_model(void **state)
{
    (void)state;
    const char *model = path_in("triplet.safetensors");
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    assert_int_equal(pnx_unet_create(&m, be, 4), 0);
    assert_int_equal(pnx_unet_init(m, 11), 0);
    const char *keys[] = {"pneumoseg.image_size", "pneumoseg.triplet.top_threshold",
                          "pneumoseg.triplet.min_area", "pneumoseg.triplet.bottom_threshold"};
    const char *values[] = {SIDE, "0.875", "5", "0.3125"};
    pnx_checkpoint_meta meta = {.epoch = 1, .step = 1, .n_extra = 4, .extra_keys = keys,
                                .extra_values = values};
    assert_int_equal(pnx_checkpoint_save(m, model, &meta), 0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);

    const char *db = path_in("triplet.sqlite");
    for (int yaml_top = 0; yaml_top <= 1; yaml_top++) {
        const char *yaml = path_in("triplet.yaml");
        FILE *f = fopen(yaml, "w");
        assert_non_null(f);
        fprintf(f, "stages: [score]\nscore:\n  dicom_dir: %s\n  triplet:\n    enabled: true\n%s",
                g_tree, yaml_top ? "    top_threshold: 0.5\n" : "");
        assert_int_equal(fclose(f), 0);
        int rc = run_cmd("'%s' score --config '%s' --model '%s' --db '%s' --out '%s' -q "
                         "--no-seg --no-overlay --workers 1 > /dev/null",
                         PNX_PNEUMOSEG, yaml, model, db, path_in("triplet-out"));
        assert_int_equal(rc, 2);
        sqlite3 *s = open_db(db);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE id = %lld AND config_text "
                                  "LIKE '%%triplet=1;top=%s;min_area=5;bottom=0.3125;%%'",
                               (long long)latest_score_run(s), yaml_top ? "0.5" : "0.875"),
                         1);
        sqlite3_close(s);
    }
}

/* Files sharing a SOP Instance UID: one predictions row, the good copy's,
 * whatever the order; the truncated copy is recorded by path. The walk sorts paths: good a, truncated b, good c; then truncated
 * b, good c, good d. */
static void test_duplicate_uids(void **state)
{
    (void)state;
    for (int bad_first = 0; bad_first <= 1; bad_first++) {
        const char *dir = path_in(bad_first ? "dup-bad-first" : "dup-good-first");
        assert_int_equal(run_cmd("mkdir -p '%s' && f=$(cd '%s/sample_dicom/dicom-images-test' &&"
                                 " find \"$PWD\" -name '*.dcm' | sort | head -1) && "
                                 "cp \"$f\" '%s/%s.dcm' && head -c 3000 \"$f\" > '%s/b.dcm' && "
                                 "cp \"$f\" '%s/c.dcm'",
                                 dir, PNX_SOURCE_DIR, dir, bad_first ? "d" : "a", dir, dir),
                         0);
        char db[400];
        snprintf(db, sizeof db, "%s.sqlite", dir);
        int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s/out' "
                         "-q --no-seg --no-overlay --workers 1 > /dev/null",
                         PNX_PNEUMOSEG, dir, g_yaml, g_model, db, dir);
        assert_int_equal(rc, 2); /* the truncated copy is a bad file */
        sqlite3 *s = open_db(db);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions"), 1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE status = 'ok' AND "
                                  "path LIKE '%%/%s.dcm'",
                               bad_first ? "c" : "a"),
                         1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM ingest_errors WHERE path LIKE "
                                  "'%%/b.dcm'"),
                         1);
        assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE status = 'partial' AND "
                                  "n_ok = 1 AND n_failed = 1"),
                         1);
        sqlite3_close(s);
    }
}

/* The real SIIM file of ../shared/realdata (when present): its SEG passes
 * dciodvfy and equals the mask, and evaluate finds its row ("-1") among the
 * 12,954 of the real train-rle.csv. */
static void test_real_siim(void **state)
{
    (void)state;
    char file[1024], csv[1024];
    snprintf(file, sizeof file, "%s/realdata/siim/%s.dcm", PNX_SHARED_DIR,
             "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819");
    snprintf(csv, sizeof csv, "%s/realdata/siim/siim-pneumothorax-train-rle.csv",
             PNX_SHARED_DIR);
    if (access(file, R_OK) != 0 || access(csv, R_OK) != 0)
        skip();
    const char *db = path_in("real.sqlite");
    int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                     "--threshold %s > /dev/null",
                     PNX_PNEUMOSEG, file, g_yaml, g_model, db, path_in("real-out"), g_threshold);
    assert_int_equal(rc, 0);
    sqlite3 *s = open_db(db);
    pred *p = calloc(2, sizeof *p);
    assert_non_null(p);
    assert_int_equal(read_preds(s, latest_score_run(s), p, 2), 1);
    sqlite3_close(s);
    pnx_image mask = {0}, seg = {0};
    decode_rle(&p[0], &mask);
    assert_int_equal(pnx_seg_read_mask(p[0].seg, &seg), 0);
    assert_memory_equal(seg.pixels, mask.pixels, pnx_image_size(&mask));
    dciodvfy_clean(p[0].seg);
    pnx_image_free(&mask);
    pnx_image_free(&seg);
    free_preds(p, 1);
    free(p);
    rc = run_cmd("'%s' evaluate -q --config '%s' --db '%s' --rle-csv '%s' --json "
                 "| grep -q '\"evaluated\": 1, \"truth_positive\": 0, \"truth_negative\": 1'",
                 PNX_PNEUMOSEG, g_yaml, db, csv);
    assert_int_equal(rc, 0);
}

/* The absolute RLE flavour of the submission decodes to the same masks as
 * the rows' relative RLE. */
static void test_submission_absolute(void **state)
{
    (void)state;
    const char *db = path_in("abs.sqlite"), *csv = path_in("abs/sub.csv");
    int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                     "--no-seg --no-overlay --threshold %s --submission '%s' "
                     "--submission-format absolute > /dev/null",
                     PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, path_in("abs-out"), g_threshold,
                     csv);
    assert_int_equal(rc, 2);
    sqlite3 *s = open_db(db);
    pred *p = calloc(N_GOOD + 2, sizeof *p);
    assert_non_null(p);
    int n = read_preds(s, latest_score_run(s), p, N_GOOD + 2);
    sqlite3_close(s);
    assert_int_equal(n, N_GOOD);
    pnx_rle_index *index = NULL;
    assert_int_equal(pnx_rle_index_build(&index, csv), 0);
    assert_int_equal(pnx_rle_index_count(index), N_GOOD);
    int differs = 0;
    for (int i = 0; i < n; i++) {
        size_t at;
        assert_int_equal(pnx_rle_index_find(index, p[i].uid, &at), 0);
        pnx_image a = {0}, b = {0};
        decode_rle(&p[i], &a);
        assert_int_equal(pnx_image_alloc(&b, a.width, a.height), 0);
        assert_int_equal(pnx_rle_index_decode(index, at, PNX_RLE_FMT_ABSOLUTE, &b), 0);
        assert_memory_equal(a.pixels, b.pixels, pnx_image_size(&a));
        /* Read as relative, a mask of several runs would come out different. */
        pnx_image c = {0};
        assert_int_equal(pnx_image_alloc(&c, a.width, a.height), 0);
        if (pnx_rle_index_decode(index, at, PNX_RLE_FMT_RELATIVE, &c) != 0 ||
            memcmp(c.pixels, a.pixels, pnx_image_size(&a)) != 0)
            differs++;
        pnx_image_free(&a);
        pnx_image_free(&b);
        pnx_image_free(&c);
    }
    assert_true(differs > 0);
    pnx_rle_index_free(index);
    free_preds(p, n);
    free(p);
}

/* ---- kill and resume ---------------------------------------------------------- */

static pid_t start_scorer(const char *db, const char *out)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        FILE *null = freopen("/dev/null", "w", stdout);
        (void)null;
        execl(PNX_PNEUMOSEG, PNX_PNEUMOSEG, "score", g_tree, "--config", g_yaml, "--model",
              g_model, "--db", db, "--out", out, "-q", "--workers", "1", "--threads", "1",
              "--batch-size", "1", "--threshold", g_threshold, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

static int64_t rows_now(const char *db)
{
    sqlite3 *s = NULL;
    if (sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(s);
        return 0;
    }
    sqlite3_busy_timeout(s, 1000);
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    if (sqlite3_prepare_v2(s, "SELECT COUNT(*) FROM predictions", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return n;
}

/* Runs the scorer and SIGKILLs it (and its decode workers) once it has
 * committed at least `rows` predictions rows; returns the rows at the kill. */
static int64_t kill_after(const char *db, const char *out, int64_t rows)
{
    pid_t pid = start_scorer(db, out);
    int64_t n = 0;
    struct timespec nap = {0, 2 * 1000 * 1000};
    for (int i = 0; i < 30000; i++) {
        n = rows_now(db);
        if (n >= rows)
            break;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            fail_msg("the scorer finished before it could be killed (%lld rows)", (long long)n);
        nanosleep(&nap, NULL);
    }
    kill(-pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    return n;
}

/* What a writer killed mid-file leaves: "<final>.tmp.<pid>.<n>" beside the
 * SEG of every sample image not yet done. The resumed run must remove them. */
static void plant_stale_temps(const char *db)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && find . -name '*.dcm' -path './1.*' | sort | head -%d", g_tree, N_SAMPLE);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    sqlite3 *s = open_db(db);
    char line[1024];
    int planted = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        /* ./<study>/<series>/<sop>.dcm: the sample folders are named by UID. */
        char study[128], series[128], sop[128];
        assert_int_equal(sscanf(line, "./%127[^/]/%127[^/]/%127[^/]", study, series, sop), 3);
        sop[strlen(sop) - 4] = '\0';
        if (q_int(s, "SELECT COUNT(*) FROM predictions WHERE sop_instance_uid = '%s'", sop))
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s/%s/%s.seg.dcm.tmp.999999.0",
                 path_in("kill-out"), study, series, sop);
        char mk[4400];
        snprintf(mk, sizeof mk, "mkdir -p \"$(dirname '%s')\" && echo partial > '%s'", path, path);
        assert_int_equal(run_cmd("%s", mk), 0);
        planted++;
    }
    pclose(p);
    sqlite3_close(s);
    assert_true(planted > 0);
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    const char *db = path_in("kill.sqlite"), *out = path_in("kill-out");
    sqlite3 *s = open_db(path_in("out1.sqlite"));
    const int64_t rows_total = q_int(s, "SELECT COUNT(*) FROM predictions");
    sqlite3_close(s);
    int64_t at1 = kill_after(db, out, 1);
    assert_true(at1 >= 1 && at1 < rows_total);
    int64_t at2 = kill_after(db, out, at1 + 2);
    assert_true(at2 > at1 && at2 < rows_total);
    plant_stale_temps(db);
    /* The third time it finishes, in the same run. */
    int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                     "--workers 1 --threads 1 --batch-size 1 --threshold %s > /dev/null",
                     PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out, g_threshold);
    assert_int_equal(rc, 2);
    s = open_db(db);
    assert_integrity(s);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE stage = 'score'"), 1);
    int64_t run = latest_score_run(s);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE id = %lld AND status = 'partial'",
                           (long long)run),
                     1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions"), rows_total);
    assert_int_equal(q_int(s, "SELECT COUNT(DISTINCT sop_instance_uid) FROM predictions"),
                     rows_total);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE status = 'ok'"), N_GOOD);
    assert_int_equal(count_temp_files(out), 0);

    /* Equal to the uninterrupted run of test_outputs (same model and
     * settings but the Secondary Capture and submission, which the UIDs do
     * not depend on). */
    assert_int_equal(count_temp_files(out), 0);
    pred *resumed = calloc(N_GOOD + 2, sizeof *resumed);
    assert_non_null(resumed);
    int n = read_preds(s, run, resumed, N_GOOD + 2);
    assert_int_equal(n, N_GOOD);
    for (int i = 0; i < n; i++) {
        assert_string_equal(resumed[i].uid, g_preds[i].uid);
        assert_string_equal(resumed[i].rle, g_preds[i].rle);
        assert_int_equal(resumed[i].positive, g_preds[i].positive);
        char a[80], b[80];
        dicom_uid(resumed[i].seg, a, sizeof a);
        dicom_uid(g_preds[i].seg, b, sizeof b);
        assert_string_equal(a, b);
        pnx_image m = {0}, seg = {0};
        decode_rle(&resumed[i], &m);
        assert_int_equal(pnx_seg_read_mask(resumed[i].seg, &seg), 0);
        assert_memory_equal(seg.pixels, m.pixels, pnx_image_size(&m));
        pnx_image_free(&m);
        pnx_image_free(&seg);
    }
    free_preds(resumed, n);
    free(resumed);
    free_preds(g_preds, N_GOOD);
    sqlite3_close(s);

    /* A finished run is not resumed: the same command makes a new run. */
    rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                 "--workers 1 --no-seg --no-overlay --threshold %s > /dev/null",
                 PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out, g_threshold);
    assert_int_equal(rc, 2);
    s = open_db(db);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE stage = 'score'"), 2);
    /* --resume of a run with other settings is refused. */
    sqlite3_close(s);
    rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                 "--resume %lld --threshold 0.9 2>/dev/null",
                 PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out, (long long)run);
    assert_int_equal(rc, 1);
}

/* Ctrl-C: the run stops after its batch, says 'interrupted', exits 3, and
 * the same command finishes it. */
static void test_interrupt(void **state)
{
    (void)state;
    const char *db = path_in("int.sqlite"), *out = path_in("int-out");
    pid_t pid = start_scorer(db, out);
    struct timespec nap = {0, 2 * 1000 * 1000};
    for (int i = 0; i < 30000 && rows_now(db) < 1; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            fail_msg("the scorer finished before it could be interrupted");
        nanosleep(&nap, NULL);
    }
    kill(-pid, SIGINT); /* the whole foreground group, as a terminal does */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    sqlite3 *s = open_db(db);
    int64_t run = latest_score_run(s);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE id = %lld AND "
                              "status = 'interrupted' AND finished_at IS NOT NULL",
                           (long long)run),
                     1);
    int64_t done = q_int(s, "SELECT COUNT(*) FROM predictions WHERE status = 'ok'");
    assert_true(done < N_GOOD);
    sqlite3_close(s);
    assert_int_equal(count_temp_files(out), 0);

    int rc = run_cmd("'%s' score '%s' --config '%s' --model '%s' --db '%s' --out '%s' -q "
                     "--workers 1 --threads 1 --batch-size 1 --threshold %s > /dev/null",
                     PNX_PNEUMOSEG, g_tree, g_yaml, g_model, db, out, g_threshold);
    assert_int_equal(rc, 2);
    s = open_db(db);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs"), 1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM predictions WHERE status = 'ok'"), N_GOOD);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM runs WHERE status = 'partial'"), 1);
    sqlite3_close(s);
}

int main(void)
{
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/sample_dicom/dicom-images-test", PNX_SOURCE_DIR);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "test_score: %s is missing; skipped\n", probe);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_negatives),
        cmocka_unit_test(test_triplet_from_model),
        cmocka_unit_test(test_duplicate_uids),
        cmocka_unit_test(test_real_siim),
        cmocka_unit_test(test_submission_absolute),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_interrupt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
