/* pipeline/main.c — the pneumoseg command: dispatches to a subcommand. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common/log.h"
#include "pipeline/commands.h"
#include "pneumoseg_version.h"

const pnx_command pnx_commands[] = {
    {"run", "run the stages of pipeline.yaml in order (or --check it)", pnx_cmd_run},
    {"ingest", "index a DICOM tree into the database", pnx_cmd_ingest},
    {"dataset", "rebuild the training set: join DICOM + RLE CSV, split, cache", pnx_cmd_dataset},
    {"train", "train the U-Net on the dataset caches", pnx_cmd_train},
    {"score", "segment every image of a DICOM tree: SEG, overlays, database", pnx_cmd_score},
    {"evaluate", "Dice and recall of a scored run against the ground truth", pnx_cmd_evaluate},
    {"report", "a self-contained HTML report of a run", pnx_cmd_report},
    {"predict", "run the network on preprocessed input; write logits", pnx_cmd_predict},
    {"rle", "decode or encode Kaggle RLE masks", pnx_cmd_rle},
    {"db", "inspect or migrate the SQLite database", pnx_cmd_db},
    {NULL, NULL, NULL},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg COMMAND [OPTIONS]\n"
            "       pneumoseg --help | --version\n"
            "\n"
            "Pneumothorax segmentation of chest radiographs, DICOM in, DICOM out.\n"
            "\n"
            "Commands:\n");
    for (const pnx_command *c = pnx_commands; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->summary);
    fprintf(out,
            "\n"
            "`pneumoseg COMMAND --help` lists the options of a command. Every command\n"
            "accepts --config FILE (default pipeline.yaml), --db FILE and --out DIR.\n"
            "\n"
            "Exit status: 0 success, 1 usage or configuration error,\n"
            "             2 finished but some inputs failed, 3 fatal error.\n");
}

static void print_version(void)
{
    printf("pneumoseg %s (git %s)\n", PNEUMOSEG_VERSION, PNEUMOSEG_GIT_REVISION);
    printf("CUDA/cuDNN backend compiled: %s\n",
           strcmp(PNEUMOSEG_HAVE_CUDA_BUILD, "ON") == 0 ? "yes" : "no");
    printf("SQLite %s, libyaml %s\n", sqlite3_libversion(), yaml_get_version_string());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return PNX_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return PNX_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        print_version();
        return PNX_EXIT_OK;
    }
    for (const pnx_command *c = pnx_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "pneumoseg: unknown command '%s'\n\n", name);
    print_usage(stderr);
    return PNX_EXIT_USAGE;
}
