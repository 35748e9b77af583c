/*
 * pipeline/commands.h — the pneumoseg subcommands.
 *
 * Each subcommand is one function in pipeline/cmd_<name>.c that receives
 * argv with argv[0] = the subcommand name, parses its own options (every
 * one accepts --config FILE, --db FILE, --out DIR and --help; see
 * pipeline/cli.h), does its work through the stage modules, prints its
 * summary, and returns the process exit status below. Nothing else in
 * pipeline/ prints.
 */
#ifndef PNX_PIPELINE_COMMANDS_H
#define PNX_PIPELINE_COMMANDS_H

enum pnx_exit {
    PNX_EXIT_OK = 0,      /* success */
    PNX_EXIT_USAGE = 1,   /* usage or configuration error */
    PNX_EXIT_PARTIAL = 2, /* finished, but some inputs failed */
    PNX_EXIT_FATAL = 3,   /* fatal error */
};

typedef int (*pnx_command_fn)(int argc, char **argv);

typedef struct pnx_command {
    const char *name;
    const char *summary;
    pnx_command_fn fn;
} pnx_command;

/* The table of subcommands, in the order --help lists them; ends with a
 * zeroed entry. */
extern const pnx_command pnx_commands[];

int pnx_cmd_run(int argc, char **argv);
int pnx_cmd_ingest(int argc, char **argv);
int pnx_cmd_dataset(int argc, char **argv);
int pnx_cmd_train(int argc, char **argv);
int pnx_cmd_score(int argc, char **argv);
int pnx_cmd_evaluate(int argc, char **argv);
int pnx_cmd_report(int argc, char **argv);
int pnx_cmd_predict(int argc, char **argv);
int pnx_cmd_rle(int argc, char **argv);
int pnx_cmd_db(int argc, char **argv);

#endif
