/*
 * tools/gen_sample/gen_sample_main.c — pneumoseg-gen-sample: writes the
 * SIIM-like sample set (DICOM tree + train-rle.csv) from a seed.
 *
 *   pneumoseg-gen-sample --out sample_dicom --seed 2019
 *
 * The output folder gets dicom-images-train/<Study>/<Series>/<SOP>.dcm,
 * dicom-images-test/…, and train-rle.csv (stage-1 format, rows for the test
 * images too, as Kaggle's stage-2 train file has). See docs/sample.md.
 */
#define _POSIX_C_SOURCE 200809L /* getopt_long needs it with -std=c17 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/progress.h"
#include "rle/rle.h"
#include "tools/gen_sample/real_masks.h"
#include "tools/gen_sample/sample_plan.h"
#include "tools/gen_sample/sample_study.h"

#define DEFAULT_SEED 2019u
#define DEFAULT_TRAIN 60u
#define DEFAULT_TEST 20u
#define DEFAULT_QUALITY 90

enum { OPT_OUT = 0x100, OPT_SEED, OPT_TRAIN, OPT_TEST, OPT_ONLY, OPT_QUALITY, OPT_REAL_RLE };

typedef struct options {
    const char *out;
    uint64_t seed;
    uint32_t n_train, n_test, only;
    int quality;
    const char *real_rle;
} options;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: pneumoseg-gen-sample --out DIR [options]\n"
            "Writes a synthetic SIIM-like chest radiograph set: DIR/dicom-images-train/,\n"
            "DIR/dicom-images-test/ (Study/Series/SOP.dcm, JPEG Baseline Secondary Capture)\n"
            "and DIR/train-rle.csv (stage-1 RLE CSV, train and test labels).\n"
            "The same options give the same bytes.\n"
            "Options:\n"
            "  --out DIR        output folder (must not hold a train-rle.csv yet)\n"
            "  --seed N         seed of everything (default %u)\n"
            "  --train N        training studies (default %u)\n"
            "  --test N         test studies (default %u)\n"
            "  --only N         write only the first N studies of the plan (train first),\n"
            "                   byte-identical to those of a full run\n"
            "  --quality Q      JPEG quality 1..100 (default %d)\n"
            "  --real-rle CSV   take lesion shapes from a real SIIM RLE CSV instead of\n"
            "                   drawing crescents\n"
            "  -v, --verbose    more log output\n"
            "  -q, --quiet      errors only\n"
            "  -h, --help       this help\n"
            "Exit status: 0 success, 1 usage error, 3 failure.\n",
            DEFAULT_SEED, DEFAULT_TRAIN, DEFAULT_TEST, DEFAULT_QUALITY);
}

static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!text || !*text || *text == '-')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* 0: go on; 1: --help was asked for; -1: a usage error (already reported). */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"out", required_argument, 0, OPT_OUT},
        {"seed", required_argument, 0, OPT_SEED},
        {"train", required_argument, 0, OPT_TRAIN},
        {"test", required_argument, 0, OPT_TEST},
        {"only", required_argument, 0, OPT_ONLY},
        {"quality", required_argument, 0, OPT_QUALITY},
        {"real-rle", required_argument, 0, OPT_REAL_RLE},
        {"help", no_argument, 0, 'h'},
        {"verbose", no_argument, 0, 'v'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    *o = (options){.seed = DEFAULT_SEED, .n_train = DEFAULT_TRAIN, .n_test = DEFAULT_TEST,
                   .only = UINT32_MAX, .quality = DEFAULT_QUALITY};
    int level = PNX_LOG_INFO;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "hvq", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_OUT: o->out = optarg; break;
        case OPT_SEED:
            if (parse_u64(optarg, UINT64_MAX, &o->seed))
                return fprintf(stderr, "pneumoseg-gen-sample: bad --seed '%s'\n", optarg), -1;
            break;
        case OPT_TRAIN:
        case OPT_TEST:
        case OPT_ONLY:
            if (parse_u64(optarg, PNX_SAMPLE_MAX_STUDIES, &v))
                return fprintf(stderr, "pneumoseg-gen-sample: bad count '%s' (0..%u)\n", optarg,
                               PNX_SAMPLE_MAX_STUDIES), -1;
            if (c == OPT_TRAIN) o->n_train = (uint32_t)v;
            else if (c == OPT_TEST) o->n_test = (uint32_t)v;
            else o->only = (uint32_t)v;
            break;
        case OPT_QUALITY:
            if (parse_u64(optarg, 100, &v) || v == 0)
                return fprintf(stderr, "pneumoseg-gen-sample: bad --quality '%s' (1..100)\n", optarg), -1;
            o->quality = (int)v;
            break;
        case OPT_REAL_RLE: o->real_rle = optarg; break;
        case 'v': level++; break;
        case 'q': level = PNX_LOG_QUIET; break;
        case 'h': return 1;
        default: return -1;
        }
    }
    pnx_log_set_level(level);
    if (optind < argc)
        return fprintf(stderr, "pneumoseg-gen-sample: unexpected argument '%s'\n", argv[optind]), -1;
    if (!o->out)
        return fprintf(stderr, "pneumoseg-gen-sample: --out DIR is required\n"), -1;
    if (o->n_train + o->n_test == 0)
        return fprintf(stderr, "pneumoseg-gen-sample: no studies to make\n"), -1;
    return 0;
}

static int write_study(const options *o, const pnx_sample_plan *plan, uint32_t i,
                       const pnx_real_masks *real, pnx_rle_writer *csv, uint64_t *bytes)
{
    const pnx_sample_study *s = &plan->studies[i];
    pnx_sample_output out;
    int rc = pnx_sample_study_make(plan, i, real, o->quality, &out);
    if (rc < 0)
        return rc;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s/%s/%s", o->out,
             s->split == PNX_SAMPLE_FOLDER_TRAIN ? "dicom-images-train" : "dicom-images-test",
             s->study_uid, s->series_uid);
    snprintf(path, sizeof path, "%s/%s.dcm", dir, s->sop_uid);
    rc = pnx_mkdir_p(dir, 0755);
    if (rc == 0)
        rc = pnx_write_file_atomic(path, out.dicom, out.dicom_len);
    for (int k = 0; rc == 0 && k < out.n_rows; k++)
        rc = pnx_rle_writer_row(csv, s->sop_uid, out.rle[k]);
    if (rc == 0)
        *bytes += out.dicom_len;
    pnx_log_debug("study %u: %s, %d row(s), %" PRIu64 " lesion pixels, %zu bytes", i,
                  s->sop_uid, out.n_rows, out.lesion_pixels, out.dicom_len);
    pnx_sample_output_free(&out);
    return rc;
}

static int generate(const options *o)
{
    char *csv_path = pnx_path_join(o->out, "train-rle.csv");
    if (!csv_path)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    struct stat st;
    if (stat(csv_path, &st) == 0) {
        int rc = pnx_fail(PNX_EINVAL, "%s exists: remove the old sample (train-rle.csv and "
                          "dicom-images-*) first", csv_path);
        free(csv_path);
        return rc;
    }

    pnx_sample_plan plan;
    pnx_real_masks *real = NULL;
    pnx_rle_writer *csv = NULL;
    int rc = pnx_sample_plan_make(o->seed, o->n_train, o->n_test, &plan);
    if (rc == 0 && o->real_rle)
        rc = pnx_real_masks_load(o->real_rle, &real);
    if (rc == 0)
        rc = pnx_mkdir_p(o->out, 0755);
    if (rc == 0)
        rc = pnx_rle_writer_open(&csv, csv_path, PNX_RLE_CSV_STAGE1);
    uint32_t count = o->only < plan.n_studies ? o->only : plan.n_studies;
    uint64_t bytes = 0;
    if (rc == 0) {
        pnx_log_info("seed %" PRIu64 ": %u train + %u test studies of %u patients, writing %u",
                     o->seed, plan.n_train, plan.n_test, plan.n_patients, count);
        pnx_progress *progress = pnx_progress_start("sample", count);
        for (uint32_t i = 0; rc == 0 && i < count; i++) {
            rc = write_study(o, &plan, i, real, csv, &bytes);
            pnx_progress_add(progress, 1);
        }
        pnx_progress_finish(progress);
    }
    if (rc == 0) {
        rc = pnx_rle_writer_commit(csv);
    } else {
        pnx_rle_writer_abort(csv);
    }
    if (rc == 0)
        pnx_log_info("wrote %u studies, %.1f MB of DICOM, and %s", count, bytes / 1e6, csv_path);
    pnx_real_masks_free(real);
    pnx_sample_plan_free(&plan);
    free(csv_path);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != 0) {
        usage(parsed > 0 ? stdout : stderr);
        return parsed > 0 ? 0 : 1;
    }
    int rc = generate(&o);
    if (rc < 0) {
        fprintf(stderr, "pneumoseg-gen-sample: %s\n", pnx_errmsg());
        return rc == PNX_EINVAL ? 1 : 3;
    }
    return 0;
}
