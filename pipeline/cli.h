/*
 * pipeline/cli.h — what every subcommand shares: the common options and the
 * run context (configuration + database).
 *
 * Every subcommand accepts
 *   --config FILE   pipeline.yaml to read (default: pipeline.yaml)
 *   --db FILE       database, overriding the YAML's `database`
 *   --out DIR       output folder, overriding the YAML's `output`
 *   -v / -q         more / less logging
 *   -h, --help
 * Subcommands parse with getopt_long, put PNX_CLI_COMMON_LONGOPTS in their
 * option table and hand every option they do not know to
 * pnx_cli_common_option().
 */
#ifndef PNX_PIPELINE_CLI_H
#define PNX_PIPELINE_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "db/db.h"
#include "pipeline/config.h"

enum {
    PNX_OPT_CONFIG = 0x1000,
    PNX_OPT_DB,
    PNX_OPT_OUT,
    PNX_OPT_FIRST_COMMAND_OPTION = 0x1100 /* subcommands number theirs from here */
};

#define PNX_CLI_COMMON_SHORTOPTS "hvq"
#define PNX_CLI_COMMON_LONGOPTS                                   \
    {"config", required_argument, 0, PNX_OPT_CONFIG},             \
    {"db", required_argument, 0, PNX_OPT_DB},                     \
    {"out", required_argument, 0, PNX_OPT_OUT},                   \
    {"help", no_argument, 0, 'h'},                                \
    {"verbose", no_argument, 0, 'v'},                             \
    {"quiet", no_argument, 0, 'q'}

/* Help text lines for the common options, for each subcommand's --help. */
#define PNX_CLI_COMMON_HELP                                                   \
    "Common options:\n"                                                       \
    "  --config FILE   pipeline configuration (default: pipeline.yaml)\n"    \
    "  --db FILE       SQLite database (overrides `database` in the YAML)\n" \
    "  --out DIR       output folder (overrides `output` in the YAML)\n"     \
    "  -v, --verbose   more log output (repeat for debug)\n"                 \
    "  -q, --quiet     errors only\n"                                        \
    "  -h, --help      this help\n"                                          \
    "Exit status: 0 success, 1 usage or configuration error,\n"             \
    "             2 finished but some inputs failed, 3 fatal error.\n"

typedef struct pnx_cli_common {
    const char *config_path;
    const char *db_path;
    const char *out_dir;
    int verbosity;       /* 0 normal, >0 verbose, <0 quiet */
    int help;
} pnx_cli_common;

void pnx_cli_common_init(pnx_cli_common *c);
/* Handles opt if it is a common option: returns 1 when handled, 0 when not
 * a common option. Sets the log level as -v/-q arrive. */
int pnx_cli_common_option(pnx_cli_common *c, int opt, const char *arg);

typedef struct pnx_context {
    pnx_config cfg;
    pnx_db *db;          /* NULL until pnx_context_open_db() */
    int64_t run_id;      /* 0 until pnx_context_begin_run() */
} pnx_context;

/* Loads and validates the configuration and applies --db / --out. Returns
 * PNX_ECONFIG (message "file:line:col: key: problem") on a bad file. */
int pnx_context_load(pnx_context *ctx, const pnx_cli_common *c);
/* Like pnx_context_load, but when no configuration was named (config_given
 * 0) and the default pipeline.yaml does not exist, starts from the built-in
 * defaults with --db / --out applied, so that commands such as
 * `pneumoseg score DIR --model M` or `pneumoseg evaluate --db F` work in any
 * folder. The run rows then record an empty configuration text. */
int pnx_context_load_or_defaults(pnx_context *ctx, const pnx_cli_common *c, int config_given);

/* Opens (and migrates) the configured database, creating its folder. */
int pnx_context_open_db(pnx_context *ctx);
/* Inserts the runs row for stage, with the config text and hash. */
int pnx_context_begin_run(pnx_context *ctx, const char *stage,
                          const char *model_sha256, const char *device);
/* Marks the run finished; status from the counts unless fatal. */
int pnx_context_finish_run(pnx_context *ctx, int fatal, int64_t n_ok,
                           int64_t n_failed, const char *message);
void pnx_context_close(pnx_context *ctx);

/* Maps an error code from a stage to the process exit status. */
int pnx_exit_status_for(int rc);

#endif
