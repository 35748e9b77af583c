/* pipeline/cmd_score.c — `pneumoseg score DIR --model M`: segment every
 * image of a DICOM tree; see score_stage.h and docs/score.md. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/score_stage.h"
#include "rle/rle.h"

enum {
    OPT_MODEL = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_DEVICE,
    OPT_BATCH,
    OPT_THRESHOLD,
    OPT_MIN_AREA,
    OPT_TTA,
    OPT_NO_SEG,
    OPT_SEG_NEGATIVE,
    OPT_NO_OVERLAY,
    OPT_OVERLAY_SIZE,
    OPT_SC,
    OPT_SUBMISSION,
    OPT_SUBMISSION_FORMAT,
    OPT_RESUME,
    OPT_FRESH,
    OPT_WORKERS,
    OPT_THREADS,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg score [OPTIONS] [DIR]\n"
            "\n"
            "Segments every DICOM image under DIR (default: score.dicom_dir of the YAML)\n"
            "with the U-Net checkpoint: for each image a DICOM SEG and a PNG overlay under\n"
            "<output>/<Study>/<Series>/, and a row in the predictions table. Files are\n"
            "decoded in isolated worker processes; a bad file gets an error row and the\n"
            "run goes on. Rerunning the same command after a crash or Ctrl-C resumes the\n"
            "unfinished run: images already done are skipped.\n"
            "\n"
            "Options (defaults from the `score:` section):\n"
            "  --model FILE            checkpoint (.safetensors); default score.model\n"
            "  --device D              auto (the GPU when present), cpu or cuda\n"
            "  --batch-size N          images per inference batch\n"
            "  --threshold P           pixel probability threshold, 0..1\n"
            "  --min-area N            remove mask components under N native pixels\n"
            "  --tta-hflip             average with the prediction of the mirrored image\n"
            "  --no-seg                write no DICOM SEG\n"
            "  --seg-negative W        for an empty mask: 'empty' (SEG with an empty\n"
            "                          segment) or 'none' (no SEG)\n"
            "  --no-overlay            write no PNG overlay\n"
            "  --overlay-size N        longest side of the overlay, 0 = native size\n"
            "  --sc                    also write the overlay as a DICOM Secondary Capture\n"
            "  --submission CSV        write a Kaggle submission CSV (ImageId,EncodedPixels)\n"
            "  --submission-format F   relative (SIIM) or absolute RLE\n"
            "  --resume RUN_ID         continue that score run (same model and settings)\n"
            "  --fresh                 start a new run even if an identical one is unfinished\n"
            "  --workers N             decode worker processes (0 = one per CPU)\n"
            "  --threads N             CPU threads for inference and outputs (0 = all)\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int parse_long(const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi)
        return pnx_fail(PNX_EINVAL, "%s: '%s' is not an integer in %ld..%ld", opt, text, lo, hi);
    *out = v;
    return 0;
}

static int parse_prob(const char *opt, const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !(v >= 0 && v <= 1))
        return pnx_fail(PNX_EINVAL, "%s: '%s' is not a probability in 0..1", opt, text);
    *out = v;
    return 0;
}

int pnx_cmd_score(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},
        {"device", required_argument, 0, OPT_DEVICE},
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"threshold", required_argument, 0, OPT_THRESHOLD},
        {"min-area", required_argument, 0, OPT_MIN_AREA},
        {"tta-hflip", no_argument, 0, OPT_TTA},
        {"no-seg", no_argument, 0, OPT_NO_SEG},
        {"seg-negative", required_argument, 0, OPT_SEG_NEGATIVE},
        {"no-overlay", no_argument, 0, OPT_NO_OVERLAY},
        {"overlay-size", required_argument, 0, OPT_OVERLAY_SIZE},
        {"sc", no_argument, 0, OPT_SC},
        {"submission", required_argument, 0, OPT_SUBMISSION},
        {"submission-format", required_argument, 0, OPT_SUBMISSION_FORMAT},
        {"resume", required_argument, 0, OPT_RESUME},
        {"fresh", no_argument, 0, OPT_FRESH},
        {"workers", required_argument, 0, OPT_WORKERS},
        {"threads", required_argument, 0, OPT_THREADS},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    /* Options are kept as text and applied after the configuration loads. */
    const char *arg[OPT_THREADS - OPT_MODEL + 1] = {0};
    int flag[OPT_THREADS - OPT_MODEL + 1] = {0};
    int config_given = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == PNX_OPT_CONFIG)
            config_given = 1;
        if (pnx_cli_common_option(&common, opt, optarg))
            continue;
        if (opt < OPT_MODEL || opt > OPT_THREADS) {
            usage(stderr);
            return PNX_EXIT_USAGE;
        }
        arg[opt - OPT_MODEL] = optarg;
        flag[opt - OPT_MODEL] = 1;
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind < argc - 1) {
        fprintf(stderr, "pneumoseg score: one DICOM folder at most\n");
        return PNX_EXIT_USAGE;
    }

    pnx_context ctx;
    int rc = pnx_context_load_or_defaults(&ctx, &common, config_given);
    if (rc) {
        fprintf(stderr, "pneumoseg score: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    pnx_config *cfg = &ctx.cfg;
    pnx_score_config *sc = &cfg->score;
    long v = 0;
    pnx_rle_fmt fmt;
#define ARG(o) arg[(o) - OPT_MODEL]
#define FLAG(o) flag[(o) - OPT_MODEL]
    if (optind == argc - 1)
        rc = pnx_config_set_string(&sc->dicom_dir, argv[optind]);
    if (!rc && ARG(OPT_MODEL))
        rc = pnx_config_set_string(&sc->model, ARG(OPT_MODEL));
    if (!rc && ARG(OPT_DEVICE)) {
        if (strcmp(ARG(OPT_DEVICE), "auto") == 0)
            sc->device = PNX_DEVICE_AUTO;
        else if (strcmp(ARG(OPT_DEVICE), "cpu") == 0)
            sc->device = PNX_DEVICE_CPU;
        else if (strcmp(ARG(OPT_DEVICE), "cuda") == 0)
            sc->device = PNX_DEVICE_CUDA;
        else
            rc = pnx_fail(PNX_EINVAL, "--device: auto, cpu or cuda");
    }
    if (!rc && ARG(OPT_BATCH) && !(rc = parse_long("--batch-size", ARG(OPT_BATCH), 1, 4096, &v)))
        sc->batch_size = (int)v;
    if (!rc && ARG(OPT_THRESHOLD))
        rc = parse_prob("--threshold", ARG(OPT_THRESHOLD), &sc->threshold);
    if (!rc && ARG(OPT_MIN_AREA) &&
        !(rc = parse_long("--min-area", ARG(OPT_MIN_AREA), 0, 1L << 40, &v)))
        sc->min_component_area = v;
    if (FLAG(OPT_TTA))
        sc->tta_hflip = 1;
    if (FLAG(OPT_NO_SEG))
        sc->seg_enabled = 0;
    if (!rc && ARG(OPT_SEG_NEGATIVE)) {
        if (strcmp(ARG(OPT_SEG_NEGATIVE), "empty") == 0)
            sc->seg_negative = PNX_NEGSEG_EMPTY;
        else if (strcmp(ARG(OPT_SEG_NEGATIVE), "none") == 0)
            sc->seg_negative = PNX_NEGSEG_NONE;
        else
            rc = pnx_fail(PNX_EINVAL, "--seg-negative: empty or none");
    }
    if (FLAG(OPT_NO_OVERLAY))
        sc->overlay_enabled = 0;
    if (!rc && ARG(OPT_OVERLAY_SIZE) &&
        !(rc = parse_long("--overlay-size", ARG(OPT_OVERLAY_SIZE), 0, 65535, &v)))
        sc->overlay_size = (int)v;
    if (FLAG(OPT_SC))
        sc->secondary_capture = 1;
    if (!rc && ARG(OPT_SUBMISSION))
        rc = pnx_config_set_string(&sc->submission_csv, ARG(OPT_SUBMISSION));
    if (!rc && ARG(OPT_SUBMISSION_FORMAT) &&
        !(rc = pnx_rle_fmt_parse(ARG(OPT_SUBMISSION_FORMAT), &fmt)))
        sc->submission_format = (int)fmt;
    long resume = 0, workers = cfg->ingest.workers, threads = sc->threads;
    if (!rc && ARG(OPT_RESUME))
        rc = parse_long("--resume", ARG(OPT_RESUME), 1, 0x7fffffffL, &resume);
    if (!rc && ARG(OPT_WORKERS))
        rc = parse_long("--workers", ARG(OPT_WORKERS), 0, 256, &workers);
    if (!rc && ARG(OPT_THREADS))
        rc = parse_long("--threads", ARG(OPT_THREADS), 0, 1024, &threads);
    if (!rc && !sc->dicom_dir)
        rc = pnx_fail(PNX_EINVAL, "no DICOM folder: give DIR or score.dicom_dir");
    if (!rc && !sc->model)
        rc = pnx_fail(PNX_EINVAL, "no model: give --model or score.model");
    if (!rc && access(sc->model, R_OK) != 0)
        rc = pnx_fail(PNX_EINVAL, "model %s: %s", sc->model, strerror(errno));
    if (!rc && FLAG(OPT_FRESH) && resume)
        rc = pnx_fail(PNX_EINVAL, "--fresh and --resume exclude each other");
    if (rc) {
        fprintf(stderr, "pneumoseg score: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_USAGE;
    }

    pnx_score_request req = {
        .dicom_dir = sc->dicom_dir,
        .model_path = sc->model,
        .output_dir = cfg->output_dir,
        .device = sc->device,
        .precision = sc->precision,
        .batch_size = sc->batch_size,
        .threads = (int)threads,
        .workers = (int)workers,
        .limits = {cfg->ingest.max_pixels, cfg->ingest.max_bits, cfg->ingest.memory_limit_mb,
                   cfg->ingest.timeout_s},
        .post = {sc->threshold, sc->min_component_area, sc->triplet.enabled,
                 sc->triplet.top_threshold, sc->triplet.min_area, sc->triplet.bottom_threshold},
        .tta_hflip = sc->tta_hflip,
        .seg_enabled = sc->seg_enabled,
        .seg_negative = sc->seg_negative,
        .overlay_enabled = sc->overlay_enabled,
        .overlay_size = sc->overlay_size,
        .secondary_capture = sc->secondary_capture,
        .submission_csv = sc->submission_csv,
        .submission_format = sc->submission_format,
        .commit_every = sc->commit_every,
        .fallback_side = (uint32_t)cfg->dataset.image_size,
        .resume_run = resume,
        .fresh = FLAG(OPT_FRESH),
        .config_text = cfg->text,
        .stop = &stop_flag,
    };
#undef ARG
#undef FLAG
    /* Triplet values equal to the defaults count as not set: the model's
     * tuned values, when it has them, take their place. */
    pnx_config defaults;
    if (pnx_config_defaults(&defaults) == 0) {
        const pnx_triplet_config *d = &defaults.score.triplet;
        req.triplet_defaults =
            (sc->triplet.top_threshold == d->top_threshold ? PNX_SCORE_TRIPLET_TOP : 0) |
            (sc->triplet.min_area == d->min_area ? PNX_SCORE_TRIPLET_MIN_AREA : 0) |
            (sc->triplet.bottom_threshold == d->bottom_threshold ? PNX_SCORE_TRIPLET_BOTTOM : 0);
        pnx_config_free(&defaults);
    }
    if ((rc = pnx_context_open_db(&ctx))) {
        fprintf(stderr, "pneumoseg score: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_FATAL;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_flag = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    pnx_score_report rep;
    rc = pnx_score_stage_run(ctx.db, &req, &rep);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    int status;
    if (rc) {
        fprintf(stderr, "pneumoseg score: %s\n", pnx_errmsg());
        status = rc == PNX_EINVAL || rc == PNX_ENOTFOUND || rc == PNX_ENOTBUILT
                     ? PNX_EXIT_USAGE
                     : PNX_EXIT_FATAL;
    } else {
        printf("score run %" PRId64 "%s: %" PRId64 " files, %" PRId64 " scored now (%" PRId64
               " positive), %" PRId64 " failed, %" PRId64 " already done",
               rep.run_id, rep.resumed ? " (resumed)" : "", rep.files, rep.scored, rep.positives,
               rep.failed, rep.already_done);
        if (rep.duplicates)
            printf(", %" PRId64 " duplicate UIDs skipped", rep.duplicates);
        printf("; %.1f s\n", rep.seconds);
        printf("run totals: %" PRId64 " ok, %" PRId64 " failed; outputs under %s\n", rep.run_ok,
               rep.run_failed, cfg->output_dir);
        if (rep.interrupted) {
            printf("interrupted: rerun the same command to finish run %" PRId64 "\n",
                   rep.run_id);
            status = PNX_EXIT_FATAL;
        } else {
            status = rep.run_failed > 0 ? PNX_EXIT_PARTIAL : PNX_EXIT_OK;
        }
    }
    pnx_context_close(&ctx);
    return status;
}
