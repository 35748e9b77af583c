/*
 * tests/test_train_stage.c — pipeline/train_stage.h on small caches built
 * here (base width 4, 32×32): the loss falls on a learnable set, a resumed
 * run equals an uninterrupted one, train_epochs rows say what happened, the
 * sampler and the validation metrics follow their rules, and bad caches
 * are clear errors.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
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
#include "common/image.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "db/db.h"
#include "db/train.h"
#include "pipeline/config.h"
#include "pipeline/train_curve.h"
#include "model/cuda/cuda_backend.h"
#include "pipeline/train_stage.h"
#include "preprocess/cache.h"

#define SIDE 32

static char work_dir[400];

static int setup(void **state)
{
    (void)state;
    pnx_log_set_level(PNX_LOG_WARN);
    snprintf(work_dir, sizeof work_dir, "%s/tests/train_stage.%d", PNX_BINARY_DIR,
             (int)getpid());
    return pnx_mkdir_p(work_dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *in_work(const char *name)
{
    char *p = pnx_path_join(work_dir, name);
    assert_non_null(p);
    return p;
}

/* A learnable item: dark noisy background, and for odd i a bright disk
 * whose pixels are the mask. */
static void make_item(uint64_t seed, size_t i, uint32_t side, pnx_image *img, pnx_image *mask)
{
    assert_int_equal(pnx_image_alloc(img, side, side), 0);
    assert_int_equal(pnx_image_alloc(mask, side, side), 0);
    pnx_rng rng;
    pnx_rng_seed(&rng, seed, i);
    double cx = 6 + pnx_rng_uniform(&rng) * (side - 12);
    double cy = 6 + pnx_rng_uniform(&rng) * (side - 12);
    double r = 3 + pnx_rng_uniform(&rng) * 3;
    for (uint32_t y = 0; y < side; y++)
        for (uint32_t x = 0; x < side; x++) {
            int inside = (i % 2 == 1) && (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
            double v = 60 + 30 * pnx_rng_uniform(&rng) + (inside ? 120 : 0);
            img->pixels[y * side + x] = (uint8_t)v;
            mask->pixels[y * side + x] = (uint8_t)inside;
        }
}

static void build_cache(const char *dir, const char *name, size_t count, uint32_t side,
                        uint64_t seed)
{
    char *path = pnx_path_join(dir, name);
    assert_non_null(path);
    pnx_cache_builder *b = NULL;
    assert_int_equal(pnx_cache_builder_open(&b, path, count, side), 0);
    for (size_t i = 0; i < count; i++) {
        pnx_image img = {0}, mask = {0};
        char uid[64];
        make_item(seed, i, side, &img, &mask);
        snprintf(uid, sizeof uid, "1.2.826.0.1.%llu.%zu", (unsigned long long)seed, i + 1);
        assert_int_equal(pnx_cache_builder_put(b, i, &img, &mask, uid), 0);
        pnx_image_free(&img);
        pnx_image_free(&mask);
    }
    assert_int_equal(pnx_cache_builder_commit(b), 0);
    free(path);
}

/* A cache folder with train (n_train) and val (n_val) caches. */
static char *make_caches(const char *name, size_t n_train, uint32_t train_side, size_t n_val,
                         uint32_t val_side)
{
    char *dir = in_work(name);
    assert_int_equal(pnx_mkdir_p(dir, 0755), 0);
    build_cache(dir, PNX_TRAIN_CACHE_TRAIN, n_train, train_side, 1);
    build_cache(dir, PNX_TRAIN_CACHE_VAL, n_val, val_side, 2);
    return dir;
}

static pnx_train_config small_config(char *cache_dir, char *model)
{
    pnx_config defaults;
    assert_int_equal(pnx_config_defaults(&defaults), 0);
    pnx_train_config c = defaults.train;
    c.augment = defaults.train.augment;
    c.device = PNX_DEVICE_CPU;
    c.base_width = 4;
    c.epochs = 3;
    c.batch_size = 4;
    c.learning_rate = 0.01;
    c.threads = 1;
    c.seed = 7;
    c.checkpoint_every = 1;
    c.cache_dir = cache_dir;
    c.model = model;
    c.init = NULL;
    c.resume = 0;
    /* The strings of defaults are not used by c. */
    defaults.train.cache_dir = defaults.train.model = defaults.train.init = NULL;
    pnx_config_free(&defaults);
    return c;
}

static void run_training(const pnx_train_config *cfg, pnx_db *db, int64_t run_id,
                         pnx_train_summary *sum)
{
    pnx_trainer *t = NULL;
    int rc = pnx_trainer_open(&t, cfg);
    if (rc)
        fail_msg("open: %s", pnx_errmsg());
    rc = pnx_trainer_run(t, db, run_id, sum);
    if (rc)
        fail_msg("run: %s", pnx_errmsg());
    pnx_trainer_close(t);
}

static void test_loss_falls(void **state)
{
    (void)state;
    char *caches = make_caches("learnable", 24, SIDE, 8, SIDE);
    char *model = in_work("learnable/model.safetensors");
    char *db_path = in_work("learnable/ledger.sqlite");
    pnx_train_config cfg = small_config(caches, model);
    cfg.epochs = 8;
    cfg.augment.enabled = 0;

    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, db_path, PNX_DB_READWRITE), 0);
    pnx_run_info info = {.stage = "train", .config_text = "", .config_sha256 = "0"};
    int64_t run_id = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &run_id), 0);
    pnx_train_summary sum;
    run_training(&cfg, db, run_id, &sum);
    assert_int_equal(sum.first_epoch, 1);
    assert_int_equal(sum.last_epoch, 8);
    assert_int_equal(sum.steps, 8 * 6);

    pnx_train_epoch_row first, last;
    assert_int_equal(pnx_db_train_epoch_get(db, run_id, 1, &first), 0);
    assert_int_equal(pnx_db_train_epoch_get(db, run_id, 8, &last), 0);
    print_message("train loss %.4f -> %.4f, val loss %.4f -> %.4f, val Dice %.4f -> %.4f\n",
                  first.train_loss, last.train_loss, first.val_loss, last.val_loss,
                  first.val_dice, last.val_dice);
    assert_true(last.train_loss < 0.7 * first.train_loss);
    assert_true(last.val_loss < first.val_loss);
    /* Half the validation images are empty: predicting nothing scores 0.5. */
    assert_true(last.val_dice > 0.6);
    /* The sha256 of the summary is the file's. */
    char hex[65];
    assert_int_equal(pnx_sha256_file_hex(model, hex), 0);
    assert_string_equal(hex, sum.model_sha256);
    pnx_db_close(db);
    free(caches);
    free(model);
    free(db_path);
}

/* Same tensors (weights, BatchNorm stats, Adam state) in both files. */
static void assert_same_tensors(const char *a_path, const char *b_path)
{
    pnx_st_file *a = NULL, *b = NULL;
    assert_int_equal(pnx_st_open(&a, a_path), 0);
    assert_int_equal(pnx_st_open(&b, b_path), 0);
    assert_int_equal(pnx_st_count(a), pnx_st_count(b));
    for (size_t i = 0; i < pnx_st_count(a); i++) {
        const pnx_st_tensor *ta = pnx_st_at(a, i);
        const pnx_st_tensor *tb = pnx_st_find(b, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->nbytes, tb->nbytes);
        if (memcmp(ta->data, tb->data, ta->nbytes) != 0)
            fail_msg("tensor %s differs", ta->name);
    }
    const char *keys[] = {"pneumoseg.epoch", "pneumoseg.step", "pneumoseg.adam_step",
                          "pneumoseg.best_val_dice", "pneumoseg.best_epoch"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *va = pnx_st_meta(a, keys[k]), *vb = pnx_st_meta(b, keys[k]);
        assert_non_null(va);
        assert_non_null(vb);
        assert_string_equal(va, vb);
    }
    pnx_st_close(a);
    pnx_st_close(b);
}

static void check_resume(const char *name, int augment, int shuffle, double positive_fraction)
{
    char sub[64];
    snprintf(sub, sizeof sub, "resume_%s", name);
    char *caches = make_caches(sub, 10, SIDE, 4, SIDE);
    char whole_name[128], parts_name[128];
    snprintf(whole_name, sizeof whole_name, "%s/whole.safetensors", sub);
    snprintf(parts_name, sizeof parts_name, "%s/parts.safetensors", sub);
    char *whole = in_work(whole_name), *parts = in_work(parts_name);

    pnx_train_config cfg = small_config(caches, whole);
    cfg.augment.enabled = augment;
    cfg.shuffle = shuffle;
    cfg.positive_fraction = positive_fraction;
    cfg.batch_size = 3; /* 10 images: a short last batch too */
    pnx_train_summary all, first, rest;
    run_training(&cfg, NULL, 0, &all);

    cfg.model = parts;
    cfg.epochs = 2;
    run_training(&cfg, NULL, 0, &first);
    assert_int_equal(first.last_epoch, 2);
    cfg.epochs = 3;
    cfg.resume = 1;
    pnx_trainer *t = NULL;
    assert_int_equal(pnx_trainer_open(&t, &cfg), 0);
    assert_int_equal(pnx_trainer_next_epoch(t), 3);
    assert_int_equal(pnx_trainer_run(t, NULL, 0, &rest), 0);
    pnx_trainer_close(t);
    assert_int_equal(rest.first_epoch, 3);
    assert_int_equal(rest.last_epoch, 3);
    assert_int_equal(rest.steps, all.steps);
    assert_true(rest.train_loss == all.train_loss);
    assert_true(rest.val_dice == all.val_dice);
    assert_same_tensors(whole, parts);

    /* Nothing in the files tells the two histories apart. */
    assert_string_equal(rest.model_sha256, all.model_sha256);

    /* Resuming a finished run has nothing to do and changes nothing. */
    assert_int_equal(pnx_trainer_open(&t, &cfg), 0);
    assert_int_equal(pnx_trainer_run(t, NULL, 0, &rest), 0);
    pnx_trainer_close(t);
    assert_true(rest.last_epoch < rest.first_epoch);
    assert_string_equal(rest.model_sha256, all.model_sha256);
    free(caches);
    free(whole);
    free(parts);
}

static void test_resume_equals_uninterrupted(void **state)
{
    (void)state;
    check_resume("plain", 0, 0, 0.0);
}

static void test_resume_equals_uninterrupted_with_randomness(void **state)
{
    (void)state;
    check_resume("random", 1, 1, 0.5);
}

static void test_epoch_rows(void **state)
{
    (void)state;
    char *caches = make_caches("rows", 9, SIDE, 5, SIDE);
    char *model = in_work("rows/m.safetensors");
    char *db_path = in_work("rows/ledger.sqlite");
    pnx_train_config cfg = small_config(caches, model);
    cfg.epochs = 3;
    cfg.batch_size = 4;
    cfg.checkpoint_every = 2;
    pnx_db *db = NULL;
    assert_int_equal(pnx_db_open(&db, db_path, PNX_DB_READWRITE), 0);
    pnx_run_info info = {.stage = "train", .config_text = "", .config_sha256 = "0"};
    int64_t run_id = 0;
    assert_int_equal(pnx_db_run_begin(db, &info, &run_id), 0);
    pnx_train_summary sum;
    run_training(&cfg, db, run_id, &sum);
    int64_t count = 0;
    assert_int_equal(pnx_db_train_epoch_count(db, run_id, &count), 0);
    assert_int_equal(count, 3);
    for (int64_t e = 1; e <= 3; e++) {
        pnx_train_epoch_row row;
        assert_int_equal(pnx_db_train_epoch_get(db, run_id, e, &row), 0);
        assert_int_equal(row.steps, 3); /* 4 + 4 + 1 */
        assert_true(row.learning_rate == 0.01);
        assert_true(row.train_loss > 0 && isfinite(row.train_loss));
        assert_true(fabs(row.train_loss - (row.train_bce + row.train_dice_loss)) < 1e-6);
        assert_true(row.val_dice >= 0.0 && row.val_dice <= 1.0);
        assert_true(row.val_recall >= 0.0 && row.val_recall <= 1.0); /* val has positives */
        assert_true(row.seconds > 0 && row.images_per_s > 0);
        if (e == 3)
            assert_true(row.val_dice == sum.val_dice && row.val_loss == sum.val_loss);
    }
    pnx_db_close(db);

    /* Checkpoints after epochs 2 and 3 (the last) only. */
    char *best = pnx_train_sibling_path(model, PNX_TRAIN_BEST_SUFFIX);
    assert_non_null(best);
    assert_non_null(strstr(best, "m.best.safetensors"));
    assert_int_equal(access(best, F_OK), 0);
    pnx_st_file *f = NULL;
    assert_int_equal(pnx_st_open(&f, model), 0);
    assert_string_equal(pnx_st_meta(f, "pneumoseg.epoch"), "3");
    assert_string_equal(pnx_st_meta(f, "pneumoseg.step"), "9");
    assert_string_equal(pnx_st_meta(f, "pneumoseg.train.batch_size"), "4");
    assert_non_null(pnx_st_find(f, "optimizer.exp_avg.enc1_1.0.weight"));
    pnx_train_curve curve = {0};
    assert_int_equal(pnx_train_curve_parse(&curve, pnx_st_meta(f, PNX_TRAIN_CURVE_META)), 0);
    assert_int_equal(curve.n, 3);
    assert_true(curve.points[2].epoch == 3 && fabs(curve.points[2].val_dice - sum.val_dice) < 1e-8);
    pnx_train_curve_free(&curve);
    pnx_st_close(f);
    char *svg = pnx_train_sibling_path(model, PNX_TRAIN_CURVE_SUFFIX);
    assert_non_null(svg);
    assert_int_equal(access(svg, F_OK), 0);
    free(svg);
    free(best);
    free(caches);
    free(model);
    free(db_path);
}

static void test_bad_caches(void **state)
{
    (void)state;
    char *model = in_work("bad/m.safetensors");
    char *missing = in_work("no_such_folder");
    pnx_train_config cfg = small_config(missing, model);
    pnx_trainer *t = NULL;
    assert_int_not_equal(pnx_trainer_open(&t, &cfg), 0);
    assert_null(t);
    assert_non_null(strstr(pnx_errmsg(), "train cache"));
    assert_non_null(strstr(pnx_errmsg(), "no_such_folder"));

    char *mismatched = make_caches("mismatched", 4, SIDE, 4, 48);
    cfg.cache_dir = mismatched;
    assert_int_equal(pnx_trainer_open(&t, &cfg), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "32×32 but the val cache's are 48×48"));

    char *odd = make_caches("odd", 4, 24, 4, 24);
    cfg.cache_dir = odd;
    assert_int_equal(pnx_trainer_open(&t, &cfg), PNX_EUNSUPPORTED);
    assert_non_null(strstr(pnx_errmsg(), "multiple of 16"));

    char *empty = make_caches("empty", 0, SIDE, 4, SIDE);
    cfg.cache_dir = empty;
    assert_int_equal(pnx_trainer_open(&t, &cfg), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "no images"));

    /* A cache file that is not one. */
    char *garbage_dir = make_caches("garbage", 4, SIDE, 4, SIDE);
    char *val = pnx_path_join(garbage_dir, PNX_TRAIN_CACHE_VAL);
    assert_int_equal(pnx_write_file_atomic(val, "not a cache", 11), 0);
    cfg.cache_dir = garbage_dir;
    assert_int_not_equal(pnx_trainer_open(&t, &cfg), 0);
    assert_non_null(strstr(pnx_errmsg(), "val cache"));

    cfg.device = PNX_DEVICE_CUDA;
    cfg.cache_dir = make_caches("cuda", 4, SIDE, 4, SIDE);
    /* Without a GPU: no device (CUDA built) or not built (CUDA absent). A
     * machine with a GPU trains instead, so only this case is checked. */
    char why[256];
    if (pnx_cuda_device_count(why, sizeof why) == 0) {
        int rc = pnx_trainer_open(&t, &cfg);
        assert_true(rc == PNX_EDEVICE || rc == PNX_ENOTBUILT);
        assert_non_null(strstr(pnx_errmsg(), "device cuda"));
    }
    free(cfg.cache_dir);
    free(val);
    free(model);
    free(missing);
    free(mismatched);
    free(odd);
    free(empty);
    free(garbage_dir);
}

static void test_init_and_weights_only_resume(void **state)
{
    (void)state;
    char *caches = make_caches("init", 8, SIDE, 4, SIDE);
    char *first = in_work("init/first.safetensors");
    char *best = in_work("init/first.best.safetensors");
    char *second = in_work("init/second.safetensors");
    pnx_train_config cfg = small_config(caches, first);
    cfg.epochs = 2;
    cfg.base_width = 4;
    pnx_train_summary sum;
    run_training(&cfg, NULL, 0, &sum);

    /* --init from the best file (weights only) with another configured
     * width: the checkpoint's width is used, Adam starts afresh. */
    cfg.model = second;
    cfg.init = best;
    cfg.base_width = 8;
    cfg.epochs = 1;
    run_training(&cfg, NULL, 0, &sum);
    assert_int_equal(sum.steps, 2);

    /* A stop request before the first batch: nothing trained, the
     * checkpoint untouched, the run reported interrupted. */
    char before[65], after[65];
    assert_int_equal(pnx_sha256_file_hex(second, before), 0);
    cfg.init = NULL;
    cfg.model = second;
    cfg.resume = 1;
    cfg.epochs = 3;
    volatile sig_atomic_t stop = 1;
    pnx_trainer *t = NULL;
    assert_int_equal(pnx_trainer_open(&t, &cfg), 0);
    pnx_trainer_set_stop(t, &stop);
    assert_int_equal(pnx_trainer_run(t, NULL, 0, &sum), 0);
    assert_true(sum.interrupted);
    assert_int_equal(sum.first_epoch, 2);
    assert_true(sum.last_epoch < sum.first_epoch);
    stop = 0;
    assert_int_equal(pnx_trainer_run(t, NULL, 0, &sum), PNX_EINVAL);
    pnx_trainer_close(t);
    assert_int_equal(pnx_sha256_file_hex(second, after), 0);
    assert_string_equal(before, after);
    assert_int_equal(pnx_trainer_open(&t, &cfg), 0);
    assert_int_equal(pnx_trainer_run(t, NULL, 0, &sum), 0);
    pnx_trainer_close(t);
    assert_true(!sum.interrupted && sum.last_epoch == 3);
    assert_int_equal(pnx_sha256_file_hex(second, after), 0);
    assert_string_not_equal(before, after);

    /* --resume of a weights-only file is refused. */
    cfg.model = best;
    assert_int_equal(pnx_trainer_open(&t, &cfg), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "--init"));
    free(caches);
    free(first);
    free(best);
    free(second);
}

static void test_epoch_order(void **state)
{
    (void)state;
    enum { N = 20 };
    uint8_t positive[N] = {0};
    for (int i = 0; i < N; i += 5)
        positive[i] = 1; /* 4 positives */
    uint32_t a[N], b[N];

    assert_int_equal(pnx_train_epoch_order(positive, N, 0.0, 0, 1, 1, a), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(a[i], i);

    assert_int_equal(pnx_train_epoch_order(positive, N, 0.0, 1, 1, 1, a), 0);
    assert_int_equal(pnx_train_epoch_order(positive, N, 0.0, 1, 1, 1, b), 0);
    assert_memory_equal(a, b, sizeof a);
    int seen[N] = {0};
    for (uint32_t i = 0; i < N; i++)
        seen[a[i]]++;
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(pnx_train_epoch_order(positive, N, 0.0, 1, 1, 2, b), 0);
    assert_memory_not_equal(a, b, sizeof a);

    /* Half positives: 10 of 20 slots, the 4 positives cycled. */
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        assert_int_equal(pnx_train_epoch_order(positive, N, 0.5, shuffle, 3, 4, a), 0);
        int n_pos = 0;
        int pos_seen[N] = {0};
        for (uint32_t i = 0; i < N; i++) {
            assert_true(a[i] < N);
            if (positive[a[i]]) {
                n_pos++;
                pos_seen[a[i]]++;
            }
        }
        assert_int_equal(n_pos, 10);
        for (int i = 0; i < N; i += 5)
            assert_true(pos_seen[i] >= 2 && pos_seen[i] <= 3);
    }
    /* Without shuffling the classes alternate evenly. */
    assert_int_equal(pnx_train_epoch_order(positive, N, 0.5, 0, 3, 4, a), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(positive[a[i]], i % 2 == 1);

    uint8_t none[N] = {0};
    assert_int_equal(pnx_train_epoch_order(none, N, 0.5, 0, 3, 4, a), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(a[i], i);
    assert_int_equal(pnx_train_epoch_order(positive, N, 1.5, 0, 3, 4, a), PNX_EINVAL);
    assert_int_equal(pnx_train_epoch_order(positive, N, 0.5, 0, 3, 0, a), PNX_EINVAL);
}

static void test_curve(void **state)
{
    (void)state;
    pnx_train_curve c = {0};
    pnx_train_curve_point p1 = {1, 1.0 / 3.0, NAN, 0.25}, p2 = {2, 0.5, 0.75, 1e-7};
    assert_int_equal(pnx_train_curve_add(&c, &p1), 0);
    assert_int_equal(pnx_train_curve_add(&c, &p2), 0);
    assert_int_equal(pnx_train_curve_add(&c, &p1), PNX_EINVAL); /* epochs increase */
    char *text = NULL, *again = NULL;
    assert_int_equal(pnx_train_curve_format(&c, &text), 0);
    assert_string_equal(text, "1,0.333333333,nan,0.25;2,0.5,0.75,1e-07");
    pnx_train_curve back = {0};
    assert_int_equal(pnx_train_curve_parse(&back, text), 0);
    assert_int_equal(back.n, 2);
    assert_true(isnan(back.points[0].val_loss));
    assert_int_equal(pnx_train_curve_format(&back, &again), 0);
    assert_string_equal(text, again);
    const char *bad[] = {"1,2,3", "0,1,1,1", "1,1,1,1;1,1,1,1", "1,1,1,1;", "x", "1,1,1,1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pnx_train_curve_parse(&back, bad[i]) != PNX_EFORMAT)
            fail_msg("'%s' was accepted", bad[i]);
    assert_int_equal(back.n, 2); /* a refused text leaves the curve as it was */
    assert_int_equal(pnx_train_curve_parse(&back, ""), 0);
    assert_int_equal(back.n, 0);

    char *svg = in_work("curve.svg");
    assert_int_equal(pnx_train_curve_write_svg(&c, svg), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(svg, 1 << 20, &data, &len), 0);
    assert_non_null(strstr(data, "<svg"));
    assert_non_null(strstr(data, "validation Dice"));
    assert_non_null(strstr(data, "</svg>"));
    /* A well-formed XML document, when python3 can tell. */
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' '%s'"
             " 2>/dev/null", svg);
    if (system("python3 -c 'import xml.etree.ElementTree' 2>/dev/null") == 0)
        assert_int_equal(system(cmd), 0);
    free(data);
    free(svg);
    free(text);
    free(again);
    pnx_train_curve_free(&c);
    pnx_train_curve_free(&back);
}

static void test_val_metrics(void **state)
{
    (void)state;
    enum { P = 4 };
    const float empty_logits[P] = {-1, -2, -3, -4};
    const float empty_truth[P] = {0, 0, 0, 0};
    const float truth[P] = {1, 1, 0, 0};
    const float half_hit[P] = {2, -2, 3, -1}; /* tp 1, fp 1, fn 1 */
    pnx_val_metrics vm = {0};
    assert_true(isnan(pnx_val_metrics_dice(&vm)));
    pnx_val_metrics_add(&vm, empty_logits, empty_truth, P); /* both empty: 1 */
    pnx_val_metrics_add(&vm, empty_logits, truth, P);       /* missed: 0 */
    pnx_val_metrics_add(&vm, half_hit, truth, P);           /* 2/(2+1+1) */
    pnx_val_metrics_add(&vm, half_hit, empty_truth, P);     /* false alarm: 0 */
    assert_int_equal(vm.images, 4);
    assert_int_equal(vm.positives, 2);
    assert_true(fabs(pnx_val_metrics_dice(&vm) - 1.5 / 4) < 1e-12);
    assert_true(fabs(pnx_val_metrics_dice_positive(&vm) - 0.25) < 1e-12);
    assert_true(fabs(pnx_val_metrics_recall(&vm) - 0.25) < 1e-12);
    /* A logit of exactly 0 is probability 0.5: not above the threshold. */
    const float zero[P] = {0, 0, 0, 0};
    pnx_val_metrics z = {0};
    pnx_val_metrics_add(&z, zero, empty_truth, P);
    assert_true(pnx_val_metrics_dice(&z) == 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_val_metrics),
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_bad_caches),
        cmocka_unit_test(test_epoch_rows),
        cmocka_unit_test(test_loss_falls),
        cmocka_unit_test(test_resume_equals_uninterrupted),
        cmocka_unit_test(test_resume_equals_uninterrupted_with_randomness),
        cmocka_unit_test(test_init_and_weights_only_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
