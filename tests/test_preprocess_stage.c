/*
 * tests/test_preprocess_stage.c — `pneumoseg dataset` end to end on a
 * generated SIIM-like set (pneumoseg-gen-sample) with a bad file, a CSV
 * ImageId removed and the test images' rows left without images: the three
 * caches hold every matched image once, split by patient, with pixels equal
 * to an independent decode + resize; the ledger reports the unmatched both
 * ways; a rerun gives byte-identical caches; impossible counts change
 * nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "db/dataset.h"
#include "db/db.h"
#include "ingest/ingest.h"
#include "preprocess/cache.h"
#include "preprocess/resize.h"
#include "rle/rle.h"

/* Studies generated when the repository has no sample_dicom/ (the
 * generator needs about a second per study in a debug build). */
#define GEN_TRAIN_STUDIES 8
#define GEN_TEST_STUDIES 2
#define SIDE 64

static char dir[512];
static char removed_uid[128];
static char train_dir[1024];  /* the sample's training DICOM folder */
static char sample_csv[1024]; /* its RLE CSV */
static size_t n_train_files;  /* DICOM files in train_dir */
static size_t n_csv_images;   /* ImageIds of our CSV (one removed) */

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *in_dir(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    int len = snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    assert_true(len > 0 && (size_t)len < sizeof buf[0]);
    return p;
}

/* Copies the generated CSV without the rows of its first ImageId. */
static void write_csv_without_first_image(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof line, in)) {
        if (n++ == 0) {
            fputs(line, out);
            continue;
        }
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        if (!removed_uid[0])
            snprintf(removed_uid, sizeof removed_uid, "%.*s", (int)(comma - line), line);
        if (strncmp(line, removed_uid, strlen(removed_uid)) == 0 &&
            line[strlen(removed_uid)] == ',')
            continue;
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/tests/preprocess_stage.%d", PNX_BINARY_DIR, (int)getpid());
    if (pnx_mkdir_p(dir, 0755))
        return -1;
    struct stat st;
    snprintf(train_dir, sizeof train_dir, "%s/sample_dicom/dicom-images-train", PNX_SOURCE_DIR);
    snprintf(sample_csv, sizeof sample_csv, "%s/sample_dicom/train-rle.csv", PNX_SOURCE_DIR);
    if (stat(sample_csv, &st) != 0 || stat(train_dir, &st) != 0) {
        if (run_cmd("'%s' --out '%s' --seed 7 --train %d --test %d -q", PNX_GEN_SAMPLE,
                    in_dir("sample"), GEN_TRAIN_STUDIES, GEN_TEST_STUDIES) != 0)
            return -1;
        snprintf(train_dir, sizeof train_dir, "%s", in_dir("sample/dicom-images-train"));
        snprintf(sample_csv, sizeof sample_csv, "%s", in_dir("sample/train-rle.csv"));
    }
    pnx_ingest_file_list files = {0};
    if (pnx_ingest_walk(train_dir, &files))
        return -1;
    n_train_files = files.count;
    pnx_ingest_file_list_free(&files);
    /* Our DICOM folder: the sample's training images (a link) and a file
     * that is not DICOM. */
    if (pnx_mkdir_p(in_dir("dicom"), 0755) || symlink(train_dir, in_dir("dicom/train")) != 0)
        return -1;
    if (pnx_write_file_atomic(in_dir("dicom/bad.dcm"), "not DICOM\n", 10))
        return -1;
    write_csv_without_first_image(sample_csv, in_dir("rle.csv"));
    pnx_rle_index *idx = NULL;
    if (pnx_rle_index_build(&idx, in_dir("rle.csv")))
        return -1;
    n_csv_images = pnx_rle_index_count(idx);
    pnx_rle_index_free(idx);
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml,
                     "output: %s/out\n"
                     "stages: [dataset]\n"
                     "ingest:\n  workers: 2\n"
                     "dataset:\n"
                     "  dicom_dir: %s/dicom\n"
                     "  rle_csv: %s/rle.csv\n"
                     "  image_size: %d\n"
                     "  seed: 5\n"
                     "  split_ratios: {train: 0.6, val: 0.2, test: 0.2}\n",
                     dir, dir, dir, SIDE);
    return pnx_write_file_atomic(in_dir("pipeline.yaml"), yaml, (size_t)n);
}

static int teardown(void **state)
{
    (void)state;
    return run_cmd("rm -rf '%s'", dir) == 0 ? 0 : -1;
}

static int run_dataset(const char *extra)
{
    return run_cmd("'%s' dataset --config '%s' --png '%s' -q %s", PNX_PNEUMOSEG,
                   in_dir("pipeline.yaml"), in_dir("png"), extra);
}

static char *read_all(const char *path, size_t *len)
{
    char *data = NULL;
    assert_int_equal(pnx_read_file(path, 1u << 28, &data, len), 0);
    return data;
}

/* Finds the DICOM file of uid by decoding the tree in-process (trusted,
 * generated files). */
static int decode_uid(const char *uid, pnx_decode_result *out)
{
    pnx_ingest_file_list files = {0};
    assert_int_equal(pnx_ingest_walk(train_dir, &files), 0);
    pnx_ingest_limits limits;
    pnx_ingest_limits_default(&limits);
    int found = 0;
    for (size_t i = 0; i < files.count && !found; i++) {
        pnx_decode_result r = {0};
        assert_int_equal(pnx_decode_file_unisolated(files.files[i].path, &limits, 0, &r), 0);
        if (r.error_kind == PNX_INGEST_OK && strcmp(r.meta.sop_uid, uid) == 0) {
            pnx_decode_result_free(&r);
            assert_int_equal(pnx_decode_file_unisolated(files.files[i].path, &limits,
                                                        PNX_DECODE_PIXELS, out),
                             0);
            found = 1;
        } else {
            pnx_decode_result_free(&r);
        }
    }
    pnx_ingest_file_list_free(&files);
    return found;
}

static void check_item_against_independent_decode(const pnx_cache *c, size_t i)
{
    char uid[PNX_CACHE_UID_BYTES + 1];
    assert_int_equal(pnx_cache_uid(c, i, uid), 0);
    pnx_decode_result r = {0};
    assert_true(decode_uid(uid, &r));
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    pnx_image small = {0}, mask = {0}, small_mask = {0};
    assert_int_equal(pnx_resize_image(&r.image, SIDE, &small), 0);
    assert_memory_equal(pnx_cache_image(c, i), small.pixels, SIDE * SIDE);

    pnx_rle_index *idx = NULL;
    size_t k = 0;
    assert_int_equal(pnx_rle_index_build(&idx, in_dir("rle.csv")), 0);
    assert_int_equal(pnx_rle_index_find(idx, uid, &k), 0);
    assert_int_equal(pnx_image_alloc(&mask, r.image.width, r.image.height), 0);
    assert_int_equal(pnx_rle_index_decode(idx, k, PNX_RLE_FMT_RELATIVE, &mask), 0);
    assert_int_equal(pnx_resize_mask(&mask, SIDE, PNX_MASK_ANY, &small_mask), 0);
    assert_memory_equal(pnx_cache_mask(c, i), small_mask.pixels, SIDE * SIDE);
    pnx_rle_index_free(idx);
    pnx_image_free(&small);
    pnx_image_free(&mask);
    pnx_image_free(&small_mask);
    pnx_decode_result_free(&r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_dataset_end_to_end(void **state)
{
    (void)state;
    /* exit 2: the caches were written, but bad.dcm failed */
    assert_int_equal(run_dataset(""), 2);

    static const char *const names[3] = {"out/dataset/train.safetensors",
                                         "out/dataset/val.safetensors",
                                         "out/dataset/test.safetensors"};
    char **uids = calloc(n_train_files, sizeof *uids);
    size_t n_uids = 0, positives = 0;
    int checked = 0;
    for (int k = 0; k < 3; k++) {
        pnx_cache *c = NULL;
        assert_int_equal(pnx_cache_open(&c, in_dir(names[k])), 0);
        assert_int_equal(pnx_cache_side(c), SIDE);
        assert_int_equal(pnx_cache_verify(c), 0);
        assert_true(pnx_cache_count(c) > 0);
        char prev[PNX_CACHE_UID_BYTES + 1] = "";
        for (size_t i = 0; i < pnx_cache_count(c); i++) {
            char uid[PNX_CACHE_UID_BYTES + 1];
            assert_int_equal(pnx_cache_uid(c, i, uid), 0);
            assert_true(strcmp(prev, uid) < 0); /* sorted, no repeats */
            strcpy(prev, uid);
            assert_true(n_uids < n_train_files);
            uids[n_uids++] = strdup(uid);
            const uint8_t *m = pnx_cache_mask(c, i);
            int any = 0;
            for (size_t p = 0; p < SIDE * SIDE; p++)
                any |= m[p];
            positives += (size_t)any;
            /* the PNG pair exists */
            char png[1024];
            snprintf(png, sizeof png, "png/%s/inputs/%s.png",
                     k == 0 ? "train" : k == 1 ? "val" : "test", uid);
            struct stat st;
            assert_int_equal(stat(in_dir(png), &st), 0);
            snprintf(png, sizeof png, "png/%s/labels/%s.png",
                     k == 0 ? "train" : k == 1 ? "val" : "test", uid);
            assert_int_equal(stat(in_dir(png), &st), 0);
        }
        if (!checked && pnx_cache_count(c) > 0) {
            check_item_against_independent_decode(c, 0);
            checked = 1;
        }
        pnx_cache_close(c);
    }
    /* every training image but the one whose CSV rows were removed, once */
    assert_int_equal(n_uids, n_train_files - 1);
    qsort(uids, n_uids, sizeof *uids, cmp_str);
    for (size_t i = 0; i < n_uids; i++) {
        assert_string_not_equal(uids[i], removed_uid);
        if (i)
            assert_string_not_equal(uids[i - 1], uids[i]);
    }
    assert_true(positives > 0);

    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, in_dir("out/pneumoseg.sqlite"), PNX_DB_READONLY), 0);
    int64_t images[3], pos[3], several = -1, csv_only = 0, image_only = 0;
    assert_int_equal(pnx_db_split_counts(db, images, pos), 0);
    assert_int_equal(images[0] + images[1] + images[2], n_train_files - 1);
    assert_int_equal((size_t)(pos[0] + pos[1] + pos[2]), positives);
    assert_int_equal(pnx_db_split_patients_in_several(db, &several), 0);
    assert_int_equal(several, 0);
    assert_int_equal(pnx_db_dataset_unmatched_counts(db, &csv_only, &image_only), 0);
    /* the test images' rows: every ImageId but the matched ones */
    assert_int_equal(csv_only, n_csv_images - (n_train_files - 1));
    assert_int_equal(image_only, 1);          /* the removed ImageId */
    int64_t gt = 0;
    assert_int_equal(pnx_db_count_rows(db, "ground_truth", &gt), 0);
    assert_int_equal(gt, n_csv_images);
    pnx_db_close(db);

    /* A PNG left by an earlier run for an image no longer in the split is
     * removed by the next run; the rerun rewrites byte-identical caches. */
    assert_int_equal(pnx_write_file_atomic(in_dir("png/val/inputs/1.2.3.999.png"), "x", 1), 0);
    size_t len[3];
    char *before[3];
    for (int k = 0; k < 3; k++)
        before[k] = read_all(in_dir(names[k]), &len[k]);
    assert_int_equal(run_dataset(""), 2);
    struct stat stale;
    assert_int_not_equal(stat(in_dir("png/val/inputs/1.2.3.999.png"), &stale), 0);
    for (int k = 0; k < 3; k++) {
        size_t l = 0;
        char *after = read_all(in_dir(names[k]), &l);
        assert_int_equal(l, len[k]);
        assert_memory_equal(after, before[k], l);
        free(after);
    }

    /* Counts beyond the images available: an error, the caches untouched. */
    char counts[64];
    snprintf(counts, sizeof counts, "--split-counts %zu,1,1 2>/dev/null", n_train_files);
    int rc = run_dataset(counts);
    assert_true(rc != 0 && rc != 2);
    for (int k = 0; k < 3; k++) {
        size_t l = 0;
        char *after = read_all(in_dir(names[k]), &l);
        assert_int_equal(l, len[k]);
        assert_memory_equal(after, before[k], l);
        free(after);
        free(before[k]);
    }
    for (size_t i = 0; i < n_uids; i++)
        free(uids[i]);
    free(uids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
