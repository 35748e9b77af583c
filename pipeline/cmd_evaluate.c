/* pipeline/cmd_evaluate.c — `pneumoseg evaluate`: Dice and recall of a score
 * run against the ground truth; see evaluate_stage.h and docs/evaluate.md. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/evaluate_stage.h"
#include "rle/rle.h"

enum { OPT_RUN = PNX_OPT_FIRST_COMMAND_OPTION, OPT_RLE_CSV, OPT_FORMAT, OPT_JSON };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg evaluate [OPTIONS]\n"
            "\n"
            "Compares the masks of a score run with the ground truth, image by image:\n"
            "pixel TP, FP, FN into instance_metrics (Dice, recall, precision computed by\n"
            "SQLite; per study in the study_metrics view), then prints the summary:\n"
            "mean Dice by the competition's rule (1 when truth and prediction are both\n"
            "empty), mean Dice and recall over images with pneumothorax, image-level\n"
            "sensitivity and specificity. Settings under `evaluate:` in the YAML.\n"
            "\n"
            "Options:\n"
            "  --run ID          score run to evaluate (default: evaluate.run, 0 = latest)\n"
            "  --rle-csv CSV     ground truth RLE CSV (default: evaluate.rle_csv, else the\n"
            "                    CSV each image's ground_truth row came from)\n"
            "  --format F        RLE flavour of that CSV: relative (SIIM) or absolute\n"
            "                    (default: evaluate.rle_format)\n"
            "  --json            print the summary as one JSON object\n"
            "\n"
            "Images without ground truth are listed and left out, not counted negative.\n"
            "Without a configuration file, --db FILE is enough.\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static int parse_run_id(const char *text, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || v < 0)
        return pnx_fail(PNX_EINVAL, "--run: '%s' is not a run id", text);
    *out = v;
    return 0;
}

static void print_number(FILE *out, double v, int digits)
{
    if (isnan(v))
        fprintf(out, "n/a");
    else
        fprintf(out, "%.*f", digits, v);
}

static void print_table(const pnx_evaluate_report *r)
{
    const pnx_metrics_summary *s = &r->summary;
    printf("Evaluation of score run %" PRId64 " (evaluate run %" PRId64 ")\n", r->score_run,
           r->evaluate_run);
    printf("  images evaluated            %" PRId64 "  (%" PRId64 " with pneumothorax, %" PRId64
           " without)\n",
           s->evaluated, s->truth_positive, s->truth_negative);
    printf("  mean Dice (competition)     ");
    print_number(stdout, s->mean_dice, 4);
    printf("\n  mean Dice, positives        ");
    print_number(stdout, s->mean_dice_positive, 4);
    printf("\n  mean recall, positives      ");
    print_number(stdout, s->mean_recall, 4);
    printf("\n  sensitivity (image level)   ");
    print_number(stdout, s->sensitivity, 3);
    printf("  (%" PRId64 " of %" PRId64 " found)\n", s->true_positive, s->truth_positive);
    printf("  specificity (image level)   ");
    print_number(stdout, s->specificity, 3);
    printf("  (%" PRId64 " of %" PRId64 " left empty)\n", s->true_negative, s->truth_negative);
    printf("  pixels TP / FP / FN         %" PRId64 " / %" PRId64 " / %" PRId64 "\n", s->tp,
           s->fp, s->fn);
    printf("  predictions in the run      %" PRId64 "  (%" PRId64 " failed to score)\n",
           r->predictions, r->not_scored);
    if (r->without_truth) {
        printf("  without ground truth        %" PRId64 "  (left out):\n", r->without_truth);
        for (size_t i = 0; i < r->n_without_truth_uids && i < 20; i++)
            printf("    %s\n", r->without_truth_uids[i]);
        if (r->without_truth > 20)
            printf("    … and %" PRId64 " more\n", r->without_truth - 20);
    }
    if (r->failed)
        printf("  failed (malformed RLE)      %" PRId64 "\n", r->failed);
    if (r->assumed_size)
        printf("  evaluated at an assumed 1024x1024 (size unknown): %" PRId64 "\n",
               r->assumed_size);
}

static void json_number(double v)
{
    if (isnan(v))
        printf("null");
    else
        printf("%.17g", v);
}

/* UIDs hold digits and dots only, but the CSV's ImageIds are not checked
 * as UIDs: escape what JSON needs. */
static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json(const pnx_evaluate_report *r)
{
    const pnx_metrics_summary *s = &r->summary;
    printf("{\"score_run\": %" PRId64 ", \"evaluate_run\": %" PRId64 ", \"evaluated\": %" PRId64
           ", \"truth_positive\": %" PRId64 ", \"truth_negative\": %" PRId64,
           r->score_run, r->evaluate_run, s->evaluated, s->truth_positive, s->truth_negative);
    printf(", \"mean_dice\": ");
    json_number(s->mean_dice);
    printf(", \"mean_dice_positive\": ");
    json_number(s->mean_dice_positive);
    printf(", \"mean_recall\": ");
    json_number(s->mean_recall);
    printf(", \"sensitivity\": ");
    json_number(s->sensitivity);
    printf(", \"specificity\": ");
    json_number(s->specificity);
    printf(", \"image_true_positive\": %" PRId64 ", \"image_false_negative\": %" PRId64
           ", \"image_true_negative\": %" PRId64 ", \"image_false_positive\": %" PRId64,
           s->true_positive, s->false_negative, s->true_negative, s->false_positive);
    printf(", \"pixels_tp\": %" PRId64 ", \"pixels_fp\": %" PRId64 ", \"pixels_fn\": %" PRId64,
           s->tp, s->fp, s->fn);
    printf(", \"predictions\": %" PRId64 ", \"not_scored\": %" PRId64 ", \"failed\": %" PRId64
           ", \"assumed_size\": %" PRId64 ", \"without_truth\": %" PRId64
           ", \"without_truth_uids\": [",
           r->predictions, r->not_scored, r->failed, r->assumed_size, r->without_truth);
    for (size_t i = 0; i < r->n_without_truth_uids; i++) {
        if (i)
            printf(", ");
        json_string(r->without_truth_uids[i]);
    }
    printf("]}\n");
}

int pnx_cmd_evaluate(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"run", required_argument, 0, OPT_RUN},
        {"rle-csv", required_argument, 0, OPT_RLE_CSV},
        {"format", required_argument, 0, OPT_FORMAT},
        {"json", no_argument, 0, OPT_JSON},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    const char *run_arg = NULL, *csv_arg = NULL, *format_arg = NULL;
    int json = 0, config_given = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == PNX_OPT_CONFIG)
            config_given = 1;
        if (pnx_cli_common_option(&common, opt, optarg))
            continue;
        switch (opt) {
        case OPT_RUN: run_arg = optarg; break;
        case OPT_RLE_CSV: csv_arg = optarg; break;
        case OPT_FORMAT: format_arg = optarg; break;
        case OPT_JSON: json = 1; break;
        default: usage(stderr); return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc) {
        fprintf(stderr, "pneumoseg evaluate: unexpected argument '%s'\n", argv[optind]);
        return PNX_EXIT_USAGE;
    }

    pnx_context ctx;
    int rc = pnx_context_load_or_defaults(&ctx, &common, config_given);
    if (rc) {
        fprintf(stderr, "pneumoseg evaluate: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    pnx_evaluate_request req = {
        .score_run = ctx.cfg.evaluate.run,
        .rle_csv = ctx.cfg.evaluate.rle_csv,
        .rle_format = ctx.cfg.evaluate.rle_format,
        .config_text = ctx.cfg.text,
        .config_sha256 = ctx.cfg.sha256,
    };
    pnx_rle_fmt fmt;
    if (run_arg && (rc = parse_run_id(run_arg, &req.score_run)))
        goto usage_error;
    if (csv_arg)
        req.rle_csv = csv_arg;
    if (format_arg) {
        if ((rc = pnx_rle_fmt_parse(format_arg, &fmt)))
            goto usage_error;
        req.rle_format = (int)fmt;
    }
    if ((rc = pnx_context_open_db(&ctx))) {
        fprintf(stderr, "pneumoseg evaluate: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_FATAL;
    }

    pnx_evaluate_report report;
    rc = pnx_evaluate_stage_run(ctx.db, &req, &report);
    int status;
    if (rc) {
        fprintf(stderr, "pneumoseg evaluate: %s\n", pnx_errmsg());
        status = rc == PNX_ENOTFOUND || rc == PNX_EINVAL ? PNX_EXIT_USAGE : PNX_EXIT_FATAL;
    } else {
        if (json)
            print_json(&report);
        else
            print_table(&report);
        status = report.failed > 0 ? PNX_EXIT_PARTIAL : PNX_EXIT_OK;
    }
    pnx_evaluate_report_free(&report);
    pnx_context_close(&ctx);
    return status;

usage_error:
    fprintf(stderr, "pneumoseg evaluate: %s\n", pnx_errmsg());
    pnx_context_close(&ctx);
    return PNX_EXIT_USAGE;
}
