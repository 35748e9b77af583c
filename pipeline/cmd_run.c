/* pipeline/cmd_run.c — `pneumoseg run`: validate pipeline.yaml, then run its
 * stages in order, each exactly as its own subcommand would run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"

enum { OPT_CHECK = PNX_OPT_FIRST_COMMAND_OPTION, OPT_STAGES };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg run [OPTIONS] [CONFIG]\n"
            "\n"
            "Runs the stages listed under `stages:` in CONFIG (default pipeline.yaml),\n"
            "in order. Each stage runs as `pneumoseg <stage> --config CONFIG` would, with\n"
            "--db/--out passed on. The run stops at the first stage that fails with a\n"
            "usage or fatal error; a stage where only some inputs failed (exit 2) lets\n"
            "the next stages run, and the run then exits 2.\n"
            "\n"
            "Options:\n"
            "  --check          only validate CONFIG (every key, type and range) and exit\n"
            "  --stages A,B     run these stages instead of the YAML's `stages:`\n"
            "                   (dataset, train, score, evaluate, report)\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static int parse_stages(const char *text, int *stages, int *n)
{
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return pnx_fail(PNX_EINVAL, "--stages: list too long");
    strcpy(buf, text);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int s = pnx_stage_from_name(tok);
        if (s < 0)
            return pnx_fail(PNX_EINVAL, "--stages: unknown stage '%s' "
                                        "(stages: dataset, train, score, evaluate, report)", tok);
        if (*n >= PNX_MAX_STAGES)
            return pnx_fail(PNX_EINVAL, "--stages: too many stages");
        stages[(*n)++] = s;
    }
    if (*n == 0)
        return pnx_fail(PNX_EINVAL, "--stages: no stage given");
    return PNX_OK;
}

static pnx_command_fn find_command(const char *name)
{
    for (const pnx_command *c = pnx_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->fn;
    return NULL;
}

int pnx_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"check", no_argument, 0, OPT_CHECK},
        {"stages", required_argument, 0, OPT_STAGES},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    int check = 0;
    const char *stages_arg = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (pnx_cli_common_option(&common, opt, optarg))
            continue;
        switch (opt) {
        case OPT_CHECK: check = 1; break;
        case OPT_STAGES: stages_arg = optarg; break;
        default: usage(stderr); return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind < argc - 1) {
        fprintf(stderr, "pneumoseg run: one configuration file at most\n");
        return PNX_EXIT_USAGE;
    }
    if (optind == argc - 1)
        common.config_path = argv[optind];

    pnx_context ctx;
    int rc = pnx_context_load(&ctx, &common);
    if (rc) {
        fprintf(stderr, "pneumoseg run: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    int stages[PNX_MAX_STAGES];
    int n_stages = ctx.cfg.n_stages;
    memcpy(stages, ctx.cfg.stages, sizeof stages);
    if (stages_arg && (rc = parse_stages(stages_arg, stages, &n_stages))) {
        fprintf(stderr, "pneumoseg run: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_USAGE;
    }
    if (check) {
        printf("%s: valid; stages:", common.config_path);
        for (int i = 0; i < n_stages; i++)
            printf(" %s", pnx_stage_name(stages[i]));
        printf("\noutput: %s\ndatabase: %s\n", ctx.cfg.output_dir, ctx.cfg.database);
        pnx_context_close(&ctx);
        return PNX_EXIT_OK;
    }
    pnx_context_close(&ctx);

    int worst = PNX_EXIT_OK;
    for (int i = 0; i < n_stages; i++) {
        const char *name = pnx_stage_name(stages[i]);
        char *sub[16];
        int k = 0;
        sub[k++] = (char *)name;
        sub[k++] = "--config";
        sub[k++] = (char *)common.config_path;
        if (common.db_path) {
            sub[k++] = "--db";
            sub[k++] = (char *)common.db_path;
        }
        if (common.out_dir) {
            sub[k++] = "--out";
            sub[k++] = (char *)common.out_dir;
        }
        if (common.verbosity < 0)
            sub[k++] = "-q";
        for (int v = 0; v < common.verbosity && v < 2; v++)
            sub[k++] = "-v";
        sub[k] = NULL;
        pnx_log_info("stage %d/%d: %s", i + 1, n_stages, name);
        pnx_command_fn fn = find_command(name);
        int status = fn ? fn(k, sub) : PNX_EXIT_FATAL;
        if (status == PNX_EXIT_PARTIAL) {
            worst = PNX_EXIT_PARTIAL;
            pnx_log_warn("stage %s finished, but some inputs failed", name);
            continue;
        }
        if (status != PNX_EXIT_OK) {
            pnx_log_error("stage %s failed (exit %d); later stages were not run", name, status);
            return status;
        }
    }
    return worst;
}
