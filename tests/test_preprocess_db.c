/*
 * tests/test_preprocess_db.c — db/dataset.h: the dataset stage's rows in
 * ground_truth and splits, the counts it reports, and the
 * dataset_unmatched view both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "db/dataset.h"
#include "db/db.h"

static char db_path[512];

static int setup(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/tests/preprocess_db.%d", PNX_BINARY_DIR, (int)getpid());
    snprintf(db_path, sizeof db_path, "%s/ledger.sqlite", dir);
    return pnx_mkdir_p(dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strrchr(db_path, '/') - db_path), db_path);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct seen {
    int n;
    char kinds[8][32];
    char uids[8][32];
} seen;

static int collect(void *ctx, const char *kind, const char *uid, const char *path)
{
    seen *s = ctx;
    (void)path;
    if (s->n < 8) {
        snprintf(s->kinds[s->n], sizeof s->kinds[0], "%s", kind);
        snprintf(s->uids[s->n], sizeof s->uids[0], "%s", uid);
    }
    s->n++;
    return 0;
}

static void test_rows_counts_and_unmatched(void **state)
{
    (void)state;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, db_path, PNX_DB_READWRITE), 0);
    pnx_run_info info = {.stage = "dataset", .config_text = "x", .config_sha256 = "y"};
    int64_t run = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &run), 0);
    /* Three decoded images (1.1, 1.2, 1.3) and one that failed (1.9). */
    assert_int_equal(pnx_db_exec(db,
                                 "INSERT INTO instances (sop_instance_uid, patient_id, path, status)"
                                 " VALUES ('1.1','A','a.dcm','ok'), ('1.2','A','b.dcm','ok'),"
                                 " ('1.3','B','c.dcm','ok'), ('1.9','C','d.dcm','error');"),
                     0);
    assert_int_equal(pnx_db_begin(db), 0);
    assert_int_equal(pnx_db_dataset_clear(db), 0);
    pnx_db_dataset_writer *w = NULL;
    assert_int_equal(pnx_db_dataset_writer_open(&w, db, run), 0);
    /* CSV ImageIds: 1.1 (positive, 2 rows), 1.2 (negative), 1.9 (its image
     * failed) and 1.7 (no image). 1.3 has no CSV row. */
    const pnx_ground_truth_row rows[4] = {
        {"1.1", 1, 420, 2, 1024, 1024, "train-rle.csv"},
        {"1.2", 0, 0, 1, 1024, 1024, "train-rle.csv"},
        {"1.9", 0, 0, 1, 1024, 1024, "train-rle.csv"},
        {"1.7", 1, 9, 1, 1024, 1024, "train-rle.csv"},
    };
    for (int i = 0; i < 4; i++)
        assert_int_equal(pnx_db_ground_truth_put(w, &rows[i]), 0);
    const pnx_ground_truth_row bad = {"1.5", 2, 0, 1, 1, 1, "x.csv"};
    assert_int_equal(pnx_db_ground_truth_put(w, &bad), PNX_EINVAL);
    assert_int_equal(pnx_db_split_put(w, "1.1", "train", "A", 1, 42), 0);
    assert_int_equal(pnx_db_split_put(w, "1.2", "train", "A", 0, 42), 0);
    assert_int_equal(pnx_db_split_put(w, "1.3", "test", NULL, 0, 42), 0);
    assert_int_equal(pnx_db_split_put(w, "1.4", "holdout", "A", 0, 42), PNX_EINVAL);
    pnx_db_dataset_writer_close(w);
    assert_int_equal(pnx_db_commit(db), 0);

    int64_t images[3], positives[3];
    assert_int_equal(pnx_db_split_counts(db, images, positives), 0);
    assert_int_equal(images[0], 2);
    assert_int_equal(positives[0], 1);
    assert_int_equal(images[1], 0);
    assert_int_equal(images[2], 1);
    assert_int_equal(positives[2], 0);

    int64_t several = -1;
    assert_int_equal(pnx_db_split_patients_in_several(db, &several), 0);
    assert_int_equal(several, 0);
    assert_int_equal(pnx_db_begin(db), 0);
    assert_int_equal(pnx_db_dataset_writer_open(&w, db, run), 0);
    assert_int_equal(pnx_db_split_put(w, "1.2", "val", "A", 0, 42), 0);
    pnx_db_dataset_writer_close(w);
    assert_int_equal(pnx_db_commit(db), 0);
    assert_int_equal(pnx_db_split_patients_in_several(db, &several), 0);
    assert_int_equal(several, 1);
    assert_int_equal(pnx_db_begin(db), 0);
    assert_int_equal(pnx_db_dataset_writer_open(&w, db, run), 0);
    assert_int_equal(pnx_db_split_put(w, "1.2", "train", "A", 0, 42), 0);
    pnx_db_dataset_writer_close(w);
    assert_int_equal(pnx_db_commit(db), 0);

    int64_t csv_only = 0, image_only = 0;
    assert_int_equal(pnx_db_dataset_unmatched_counts(db, &csv_only, &image_only), 0);
    assert_int_equal(csv_only, 2);   /* 1.7 and 1.9 */
    assert_int_equal(image_only, 1); /* 1.3 */
    seen s = {0};
    assert_int_equal(pnx_db_dataset_unmatched_each(db, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.kinds[0], "csv_row_without_image");
    assert_string_equal(s.uids[0], "1.7");
    assert_string_equal(s.uids[1], "1.9");
    assert_string_equal(s.kinds[2], "image_without_csv_row");
    assert_string_equal(s.uids[2], "1.3");

    /* A rebuild starts from empty tables. */
    assert_int_equal(pnx_db_dataset_clear(db), 0);
    int64_t n = -1;
    assert_int_equal(pnx_db_count_rows(db, "ground_truth", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pnx_db_count_rows(db, "splits", &n), 0);
    assert_int_equal(n, 0);
    pnx_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_counts_and_unmatched),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
