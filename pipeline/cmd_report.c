/* pipeline/cmd_report.c — `pneumoseg report`: one self-contained HTML page
 * about an evaluated score run; see report_stage.h and docs/report.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/report_stage.h"

enum { OPT_RUN = PNX_OPT_FIRST_COMMAND_OPTION };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg report [--run ID] [-o FILE] [OPTIONS]\n"
            "\n"
            "Writes one self-contained HTML page about an evaluated score run: its\n"
            "provenance and that of the train run behind it, the summary metrics, the\n"
            "training curves, a histogram of per-image Dice, and a gallery of overlays\n"
            "(worst, best, false positives, false negatives). Images and charts are\n"
            "inside the page; it needs no other file. The database is only read.\n"
            "\n"
            "Options:\n"
            "  --run ID          score run to report (default: the latest score run that\n"
            "                    has been evaluated)\n"
            "  -o, --output FILE the page to write (default: <output>/report-run<ID>.html)\n"
            "\n"
            "Relative overlay paths stored in the database are read from the current\n"
            "folder, as the score stage wrote them. Without a configuration file,\n"
            "--db FILE is enough.\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static int parse_run_id(const char *text, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || v <= 0)
        return pnx_fail(PNX_EINVAL, "--run: '%s' is not a run id", text);
    *out = v;
    return 0;
}

int pnx_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"run", required_argument, 0, OPT_RUN},
        {"output", required_argument, 0, 'o'},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    const char *run_arg = NULL, *output_arg = NULL;
    int config_given = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS "o:", longopts, NULL)) != -1) {
        if (opt == PNX_OPT_CONFIG)
            config_given = 1;
        if (pnx_cli_common_option(&common, opt, optarg))
            continue;
        switch (opt) {
        case OPT_RUN: run_arg = optarg; break;
        case 'o': output_arg = optarg; break;
        default: usage(stderr); return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc) {
        fprintf(stderr, "pneumoseg report: unexpected argument '%s'\n", argv[optind]);
        return PNX_EXIT_USAGE;
    }
    pnx_report_request req = {.output_path = output_arg};
    if (run_arg && parse_run_id(run_arg, &req.run_id)) {
        fprintf(stderr, "pneumoseg report: %s\n", pnx_errmsg());
        return PNX_EXIT_USAGE;
    }

    pnx_context ctx;
    int rc = pnx_context_load_or_defaults(&ctx, &common, config_given);
    if (rc) {
        fprintf(stderr, "pneumoseg report: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    if ((rc = pnx_context_open_db(&ctx))) {
        fprintf(stderr, "pneumoseg report: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_FATAL;
    }
    req.output_dir = ctx.cfg.output_dir;

    pnx_report_result res;
    rc = pnx_report_write(ctx.db, &req, &res);
    int status = PNX_EXIT_OK;
    if (rc) {
        fprintf(stderr, "pneumoseg report: %s\n", pnx_errmsg());
        status = rc == PNX_ENOTFOUND || rc == PNX_EINVAL ? PNX_EXIT_USAGE : PNX_EXIT_FATAL;
    } else {
        printf("Report of score run %" PRId64 " (%" PRId64 " images evaluated, mean Dice %.4f)",
               res.run_id, res.evaluated, res.mean_dice);
        if (res.train_run_id)
            printf(", train run %" PRId64, res.train_run_id);
        printf("\n  %s\n  %d overlays embedded", res.path, res.images_embedded);
        if (res.images_missing)
            printf(", %d missing (shown as missing in the page)", res.images_missing);
        printf("\n");
    }
    pnx_context_close(&ctx);
    return status;
}
