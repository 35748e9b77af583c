/*
 * tests/test_gpu_train.c — a short training run on the sample set learns on
 * the GPU, in fp32 and in bf16 mixed precision.
 *
 * The built `pneumoseg` builds the dataset caches from sample_dicom/ at 64²,
 * then trains the base-16 U-Net for LEARN_EPOCHS epochs with
 * train.device: cuda, once per precision, as a user would (a pipeline YAML in
 * this test's folder under the build's tests/). From the database's
 * train_epochs rows it asserts that the run
 *   - ran on the GPU (runs.device, and for bf16 the backend's describe line);
 *   - learns: the training loss of the last epoch is below LOSS_DROP × the
 *     first's, and the mean validation Dice of epochs 6–10 is above that of
 *     epochs 1–3 (it rises over the first epochs);
 *   - beats the all-empty prediction: the best validation Dice is above the
 *     val split's share of empty masks (what predicting nothing scores,
 *     Dice 1 on each negative) by BASELINE_MARGIN.
 * The thresholds come from the same run on the CPU backend (fp32, 2026-11-25):
 * train loss 1.71 → 0.34 by epoch 60, val Dice 0.015 at epoch 1, 0.08 over
 * epochs 6–10, above 0.5 in 15 of epochs 35–60 and 0.90 at best, against a
 * baseline of 0.5 (3 of the 6 val images are negative).
 *
 * Without a GPU it prints why and exits 77 (skipped). PNX_GPU_TEST_STANDIN=cpu
 * runs the same on the CPU backend (device cpu; bf16 then computes in fp32,
 * with the CPU's warning), a check of the test itself. Plain C, no cmocka,
 * like the other gpu tests; it needs the tree's build (pneumoseg itself).
 */
#define _POSIX_C_SOURCE 200809L /* popen, mkdtemp */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/error.h"
#include "model/cuda/cuda_backend.h"
#include "preprocess/cache.h"

#define BIN PNX_BINARY_DIR "/pneumoseg"
#define SAMPLE PNX_SOURCE_DIR "/sample_dicom"
#define SKIP 77
#define LEARN_EPOCHS 60
#define LOSS_DROP 0.7
#define BASELINE_MARGIN 0.1

static int failures;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            failures++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fprintf(stderr, "\n");                                                                \
        }                                                                                         \
    } while (0)

static char work_dir[512];
static char output[1 << 16]; /* the last command's output, its end kept */

/* Runs `cd work_dir && <command> 2>&1`, keeping the end of its output;
 * returns its exit status (-1 when it did not exit). */
static int run(const char *command)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && { %s; } 2>&1", work_dir, command);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t len = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) {
        if (len + n >= sizeof output) {
            size_t keep = sizeof output / 2;
            memmove(output, output + len - keep, keep);
            len = keep;
        }
        memcpy(output + len, chunk, n);
        len += n;
    }
    output[len] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int write_config(const char *name, const char *device, const char *precision)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", work_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    /* The sample set's split (48 train, 6 val images) at 64², base 16: small
     * enough for the CPU stand-in, and a run of LEARN_EPOCHS epochs learns. */
    fprintf(f,
            "output: out\n"
            "stages: [dataset, train]\n"
            "dataset:\n"
            "  dicom_dir: '%s/dicom-images-train'\n"
            "  rle_csv: '%s/train-rle.csv'\n"
            "  rle_format: relative\n"
            "  image_size: 64\n"
            "  split_ratios: {train: 0.8, val: 0.1, test: 0.1}\n"
            "  seed: 42\n"
            "train:\n"
            "  device: %s\n"
            "  precision: %s\n"
            "  base_width: 16\n"
            "  epochs: %d\n"
            "  batch_size: 8\n"
            "  learning_rate: 0.002\n"
            "  seed: 42\n"
            "  checkpoint_every: %d\n",
            SAMPLE, SAMPLE, device, precision, LEARN_EPOCHS, LEARN_EPOCHS);
    return fclose(f) == 0 ? 0 : -1;
}

/* The val Dice of predicting nothing: the share of val images whose mask is
 * empty (Dice 1 each; every positive scores 0). -1 on error. */
static double empty_baseline(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/out/dataset/val.safetensors", work_dir);
    pnx_cache *c = NULL;
    if (pnx_cache_open(&c, path)) {
        fprintf(stderr, "test_gpu_train: %s\n", pnx_errmsg());
        return -1;
    }
    const size_t n = pnx_cache_count(c), pixels = (size_t)pnx_cache_side(c) * pnx_cache_side(c);
    size_t empty = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *mask = pnx_cache_mask(c, i);
        size_t k = 0;
        while (k < pixels && !mask[k])
            k++;
        empty += k == pixels;
    }
    pnx_cache_close(c);
    return n ? (double)empty / (double)n : -1;
}

typedef struct epoch_row {
    double train_loss, val_dice;
} epoch_row;

/* The latest train run's device and its epochs (epoch e at rows[e - 1]);
 * returns the number of epochs, or -1. */
static int read_latest_run(char *device, size_t device_size, epoch_row *rows, int max_rows)
{
    char path[700];
    snprintf(path, sizeof path, "%s/out/pneumoseg.sqlite", work_dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto done;
    const char *sql = "SELECT r.device, e.epoch, e.train_loss, e.val_dice FROM train_epochs e"
                      " JOIN runs r ON r.id = e.run_id WHERE r.id ="
                      " (SELECT MAX(id) FROM runs WHERE stage = 'train') ORDER BY e.epoch";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto done;
    n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *dev = sqlite3_column_text(st, 0);
        snprintf(device, device_size, "%s", dev ? (const char *)dev : "");
        int epoch = sqlite3_column_int(st, 1);
        if (epoch != n + 1 || n >= max_rows || sqlite3_column_type(st, 3) == SQLITE_NULL) {
            n = -1;
            break;
        }
        rows[n].train_loss = sqlite3_column_double(st, 2);
        rows[n].val_dice = sqlite3_column_double(st, 3);
        n++;
    }
    if (n >= 0 && rc != SQLITE_DONE)
        n = -1;
done:
    if (n < 0)
        fprintf(stderr, "test_gpu_train: reading %s: %s\n", path,
                db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static double mean_dice(const epoch_row *rows, int first, int last)
{
    double s = 0;
    for (int e = first; e <= last; e++)
        s += rows[e - 1].val_dice;
    return s / (last - first + 1);
}

static void train_and_check(const char *precision, const char *device, int standin,
                            double baseline)
{
    char config[64], command[1024];
    snprintf(config, sizeof config, "%s.yaml", precision);
    CHECK(write_config(config, device, precision) == 0, "writing %s", config);
    snprintf(command, sizeof command, "'%s' train --config %s --model out/%s.safetensors", BIN,
             config, precision);
    int status = run(command);
    if (status != 0) {
        CHECK(0, "%s: exit %d:\n%s", precision, status, output);
        return;
    }
    if (!standin && strcmp(precision, "bf16") == 0)
        CHECK(strstr(output, "BF16 mixed precision") != NULL,
              "bf16: the backend does not say it runs in mixed precision:\n%s", output);

    epoch_row rows[LEARN_EPOCHS];
    char ran_on[32] = "";
    int n = read_latest_run(ran_on, sizeof ran_on, rows, LEARN_EPOCHS);
    CHECK(n == LEARN_EPOCHS, "%s: %d epochs recorded, not %d", precision, n, LEARN_EPOCHS);
    if (n != LEARN_EPOCHS)
        return;
    CHECK(strcmp(ran_on, device) == 0, "%s: trained on '%s', not %s", precision, ran_on, device);
    double best = 0;
    int best_epoch = 0;
    printf("%s: epoch train-loss val-Dice\n", precision);
    for (int e = 1; e <= n; e++) {
        printf("  %2d %.4f %.4f\n", e, rows[e - 1].train_loss, rows[e - 1].val_dice);
        if (rows[e - 1].val_dice > best) {
            best = rows[e - 1].val_dice;
            best_epoch = e;
        }
    }
    const double first = rows[0].train_loss, last = rows[n - 1].train_loss;
    const double early = mean_dice(rows, 1, 3), later = mean_dice(rows, 6, 10);
    printf("%s: train loss %.4f -> %.4f; val Dice epochs 1-3 %.4f, 6-10 %.4f; best %.4f "
           "(epoch %d) against %.4f for the empty prediction\n",
           precision, first, last, early, later, best, best_epoch, baseline);
    CHECK(last < LOSS_DROP * first, "%s: train loss %.4f -> %.4f does not fall below %.1f×",
          precision, first, last, LOSS_DROP);
    CHECK(later > early, "%s: val Dice does not rise over the first epochs (%.4f -> %.4f)",
          precision, early, later);
    CHECK(best > baseline + BASELINE_MARGIN,
          "%s: best val Dice %.4f does not beat the empty prediction's %.4f by %.2f", precision,
          best, baseline, BASELINE_MARGIN);
}

int main(void)
{
    /* Line-buffered: through a pipe, the epoch table stays beside stderr. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *standin = getenv("PNX_GPU_TEST_STANDIN");
    const int on_cpu = standin && strcmp(standin, "cpu") == 0;
    if (standin && *standin && !on_cpu) {
        printf("test_gpu_train: SKIPPED: stand-in '%s' is not available here (only cpu)\n",
               standin);
        return SKIP;
    }
    char why[256];
    if (!on_cpu && pnx_cuda_device_count(why, sizeof why) == 0) {
        printf("test_gpu_train: SKIPPED: %s\n", why);
        return SKIP;
    }
    if (on_cpu)
        printf("test_gpu_train: running on the CPU backend (stand-in), not a GPU\n");
    const char *device = on_cpu ? "cpu" : "cuda";

    char cwd[400];
    if (!getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "test_gpu_train: getcwd failed\n");
        return 1;
    }
    snprintf(work_dir, sizeof work_dir, "%s/gpu_train.XXXXXX", cwd);
    if (!mkdtemp(work_dir)) {
        fprintf(stderr, "test_gpu_train: cannot create a folder under %s\n", cwd);
        return 1;
    }

    char command[1024];
    if (write_config("fp32.yaml", device, "fp32")) {
        fprintf(stderr, "test_gpu_train: cannot write %s/fp32.yaml\n", work_dir);
        return 1;
    }
    snprintf(command, sizeof command, "'%s' dataset --config fp32.yaml", BIN);
    int status = run(command);
    CHECK(status == 0, "dataset: exit %d:\n%s", status, output);
    const double baseline = status == 0 ? empty_baseline() : -1;
    CHECK(baseline >= 0 && baseline < 1, "the val split has no images or no positive one");
    if (failures == 0) {
        train_and_check("fp32", device, on_cpu, baseline);
        train_and_check("bf16", device, on_cpu, baseline);
    }

    if (failures) {
        fprintf(stderr, "test_gpu_train: %d failure(s); files kept in %s\n", failures, work_dir);
        return 1;
    }
    snprintf(command, sizeof command, "rm -rf '%s'", work_dir);
    if (system(command) != 0)
        fprintf(stderr, "test_gpu_train: could not remove %s\n", work_dir);
    printf("test_gpu_train: passed\n");
    return 0;
}
