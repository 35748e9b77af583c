/*
 * pipeline/cmd_dataset.c — `pneumoseg dataset`: rebuild train/val/test
 * caches from a DICOM tree and an RLE CSV (pipeline/dataset_stage.h does
 * the work; this file is options, the run row and the summary).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/dataset_stage.h"

enum {
    OPT_DICOM_DIR = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_RLE_CSV,
    OPT_FORMAT,
    OPT_SIZE,
    OPT_SEED,
    OPT_SPLIT_RATIOS,
    OPT_SPLIT_COUNTS,
    OPT_CACHE_DIR,
    OPT_PNG,
    OPT_WORKERS,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg dataset [OPTIONS]\n"
            "\n"
            "Rebuilds the training set: reads every DICOM file under the folder\n"
            "(in isolated workers), joins the images with the RLE CSV by SOP Instance\n"
            "UID, splits them by patient (stratified by positive/negative), resizes\n"
            "images and masks to the training resolution and writes\n"
            "<cache-dir>/train.safetensors, val.safetensors and test.safetensors.\n"
            "Settings come from `dataset:` in the configuration; these flags override:\n"
            "  --dicom-dir DIR        folder of DICOM files (dataset.dicom_dir)\n"
            "  --rle-csv FILE         RLE CSV, e.g. train-rle.csv (dataset.rle_csv)\n"
            "  --format FMT           relative (SIIM, default) or absolute starts\n"
            "  --size N               training resolution, a multiple of 16 (dataset.image_size)\n"
            "  --seed N               split seed (dataset.seed)\n"
            "  --split-ratios A,B,C   train,val,test shares adding up to 1, e.g. 0.8,0.1,0.1\n"
            "  --split-counts A,B,C   train,val,test image counts, e.g. 10675,1072,300\n"
            "  --cache-dir DIR        where the caches go (dataset.cache_dir)\n"
            "  --png DIR              also write DIR/{train,val,test}/{inputs,labels}/<uid>.png\n"
            "  --workers N            decode worker processes (ingest.workers; 0 = CPUs)\n"
            "\n" PNX_CLI_COMMON_HELP);
}

/* Parses "a,b,c" into three numbers. */
static int parse_triple_double(const char *text, double out[3])
{
    char *end = NULL;
    const char *p = text;
    for (int k = 0; k < 3; k++) {
        errno = 0;
        out[k] = strtod(p, &end);
        if (errno || end == p || (k < 2 && *end != ',') || (k == 2 && *end != '\0'))
            return pnx_fail(PNX_EINVAL, "expected three numbers A,B,C, got \"%s\"", text);
        p = end + 1;
    }
    return 0;
}

static int parse_triple_int(const char *text, int64_t out[3])
{
    char *end = NULL;
    const char *p = text;
    for (int k = 0; k < 3; k++) {
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || (k < 2 && *end != ',') || (k == 2 && *end != '\0'))
            return pnx_fail(PNX_EINVAL, "expected three counts A,B,C ≥ 0, got \"%s\"", text);
        out[k] = v;
        p = end + 1;
    }
    return 0;
}

static int parse_int(const char *text, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi)
        return pnx_fail(PNX_EINVAL, "\"%s\" is not a whole number in %lld..%lld", text, lo, hi);
    *out = v;
    return 0;
}

/* Options as given; applied to the configuration once it is loaded. */
typedef struct overrides {
    const char *dicom_dir, *rle_csv, *cache_dir, *png_dir;
    int format;           /* -1 = not given */
    long long size, seed, workers; /* -1 = not given */
    int have_ratios, have_counts;
    double ratios[3];
    int64_t counts[3];
} overrides;

static int apply_overrides(pnx_config *cfg, const overrides *o)
{
    pnx_dataset_config *d = &cfg->dataset;
    int rc = 0;
    if (!rc && o->dicom_dir)
        rc = pnx_config_set_string(&d->dicom_dir, o->dicom_dir);
    if (!rc && o->rle_csv)
        rc = pnx_config_set_string(&d->rle_csv, o->rle_csv);
    if (!rc && o->cache_dir)
        rc = pnx_config_set_string(&d->cache_dir, o->cache_dir);
    if (!rc && o->png_dir)
        rc = pnx_config_set_string(&d->png_dir, o->png_dir);
    if (rc)
        return rc;
    if (o->format >= 0)
        d->rle_format = o->format;
    if (o->size >= 0)
        d->image_size = (int)o->size;
    if (o->seed >= 0)
        d->seed = o->seed;
    if (o->workers >= 0)
        cfg->ingest.workers = (int)o->workers;
    if (o->have_ratios) {
        d->split_by_count = 0;
        memcpy(d->split_ratio, o->ratios, sizeof d->split_ratio);
    }
    if (o->have_counts) {
        d->split_by_count = 1;
        memcpy(d->split_count, o->counts, sizeof d->split_count);
    }
    return 0;
}

static void print_summary(const pnx_dataset_config *d, const pnx_dataset_report *r)
{
    printf("dataset: %" PRId64 " DICOM files, %" PRId64 " read, %" PRId64 " failed",
           r->files, r->instances, r->file_errors);
    if (r->duplicate_uids)
        printf(", %" PRId64 " duplicate UIDs skipped", r->duplicate_uids);
    printf("\nCSV: %" PRId64 " rows, %" PRId64 " images (%" PRId64 " positive)\n", r->csv_rows,
           r->csv_images, r->csv_positive_images);
    printf("join: %" PRId64 " matched, %" PRId64 " CSV images without a DICOM file, %" PRId64
           " DICOM images without a CSV row, %" PRId64 " masks that do not fit their image\n",
           r->matched, r->csv_without_image, r->images_without_csv, r->mask_errors);
    printf("split (seed %" PRId64 ", %s):\n", d->seed, d->split_by_count ? "counts" : "ratios");
    printf("  %-6s %8s %8s %10s %8s\n", "", "images", "target", "positives", "patients");
    for (int k = 0; k < 3; k++) {
        static const char *const names[3] = {"train", "val", "test"};
        double share = r->split_images[k] ? 100.0 * (double)r->split_positives[k] /
                                                (double)r->split_images[k]
                                          : 0.0;
        printf("  %-6s %8" PRId64 " %8" PRId64 " %5" PRId64 " %3.0f%% %8" PRId64 "\n", names[k],
               r->split_images[k], r->split_target[k], r->split_positives[k], share,
               r->split_patients[k]);
    }
    if (r->left_out)
        printf("  %" PRId64 " matched images left out by the counts\n", r->left_out);
    if (r->areas.count)
        printf("mask area of %" PRId64 " positive images (pixels at native size): min %" PRId64
               ", p10 %" PRId64 ", median %" PRId64 ", p90 %" PRId64 ", max %" PRId64
               "; mean %.2f%% of the image\n",
               r->areas.count, r->areas.min, r->areas.p10, r->areas.median, r->areas.p90,
               r->areas.max, 100.0 * r->areas.mean_fraction);
    printf("caches at %dx%d: %s, %s, %s\n", d->image_size, d->image_size, r->cache_paths[0],
           r->cache_paths[1], r->cache_paths[2]);
    if (d->png_dir)
        printf("PNG pairs under %s\n", d->png_dir);
    printf("time: headers %.1f s, pixels %.1f s (%.1f images/s)\n", r->header_seconds,
           r->pixel_seconds, r->images_per_s);
}

int pnx_cmd_dataset(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"dicom-dir", required_argument, 0, OPT_DICOM_DIR},
        {"rle-csv", required_argument, 0, OPT_RLE_CSV},
        {"format", required_argument, 0, OPT_FORMAT},
        {"size", required_argument, 0, OPT_SIZE},
        {"seed", required_argument, 0, OPT_SEED},
        {"split-ratios", required_argument, 0, OPT_SPLIT_RATIOS},
        {"split-counts", required_argument, 0, OPT_SPLIT_COUNTS},
        {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
        {"png", required_argument, 0, OPT_PNG},
        {"workers", required_argument, 0, OPT_WORKERS},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    overrides o = {.format = -1, .size = -1, .seed = -1, .workers = -1};
    int opt, rc = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_DICOM_DIR: o.dicom_dir = optarg; break;
        case OPT_RLE_CSV: o.rle_csv = optarg; break;
        case OPT_CACHE_DIR: o.cache_dir = optarg; break;
        case OPT_PNG: o.png_dir = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "relative") == 0)
                o.format = PNX_RLE_RELATIVE;
            else if (strcmp(optarg, "absolute") == 0)
                o.format = PNX_RLE_ABSOLUTE;
            else
                rc = pnx_fail(PNX_EINVAL, "--format: \"%s\" is not relative or absolute", optarg);
            break;
        case OPT_SIZE:
            rc = parse_int(optarg, 16, 2048, &o.size);
            /* the U-Net halves the side four times */
            if (!rc && o.size % 16 != 0)
                rc = pnx_fail(PNX_EINVAL, "--size %lld is not a multiple of 16", o.size);
            break;
        case OPT_SEED: rc = parse_int(optarg, 0, INT64_MAX, &o.seed); break;
        case OPT_WORKERS: rc = parse_int(optarg, 0, 1024, &o.workers); break;
        case OPT_SPLIT_RATIOS:
            rc = parse_triple_double(optarg, o.ratios);
            o.have_ratios = 1;
            break;
        case OPT_SPLIT_COUNTS:
            rc = parse_triple_int(optarg, o.counts);
            o.have_counts = 1;
            break;
        default:
            if (!pnx_cli_common_option(&common, opt, optarg)) {
                usage(stderr);
                return PNX_EXIT_USAGE;
            }
        }
        if (rc) {
            fprintf(stderr, "pneumoseg dataset: %s\n", pnx_errmsg());
            return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc) {
        fprintf(stderr, "pneumoseg dataset: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return PNX_EXIT_USAGE;
    }
    if (o.have_ratios && o.have_counts) {
        fprintf(stderr, "pneumoseg dataset: give --split-ratios or --split-counts, not both\n");
        return PNX_EXIT_USAGE;
    }

    pnx_context ctx;
    if ((rc = pnx_context_load(&ctx, &common))) {
        fprintf(stderr, "pneumoseg dataset: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    if ((rc = apply_overrides(&ctx.cfg, &o)) || (rc = pnx_context_begin_run(&ctx, "dataset", NULL, NULL))) {
        fprintf(stderr, "pneumoseg dataset: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return pnx_exit_status_for(rc);
    }
    pnx_dataset_report rep;
    rc = pnx_dataset_build(&ctx.cfg, ctx.db, ctx.run_id, &rep);
    int64_t placed = rep.split_images[0] + rep.split_images[1] + rep.split_images[2];
    int64_t failed = rep.file_errors + rep.mask_errors;
    if (rc) {
        fprintf(stderr, "pneumoseg dataset: %s\n", pnx_errmsg());
        pnx_context_finish_run(&ctx, 1, placed, failed, pnx_errmsg());
        pnx_context_close(&ctx);
        return pnx_exit_status_for(rc);
    }
    print_summary(&ctx.cfg.dataset, &rep);
    char message[256];
    snprintf(message, sizeof message,
             "train %" PRId64 ", val %" PRId64 ", test %" PRId64 "; %" PRId64
             " files failed, %" PRId64 " masks did not fit",
             rep.split_images[0], rep.split_images[1], rep.split_images[2], rep.file_errors,
             rep.mask_errors);
    if ((rc = pnx_context_finish_run(&ctx, 0, placed, failed, message)))
        fprintf(stderr, "pneumoseg dataset: %s\n", pnx_errmsg());
    pnx_context_close(&ctx);
    if (rc)
        return PNX_EXIT_FATAL;
    return failed ? PNX_EXIT_PARTIAL : PNX_EXIT_OK;
}
