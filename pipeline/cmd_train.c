/* pipeline/cmd_train.c — `pneumoseg train`: the train: settings of
 * pipeline.yaml, overridden by flags, handed to pipeline/train_stage.h;
 * prints the summary. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/log.h"
#include "db/train.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/train_stage.h"

enum {
    OPT_EPOCHS = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_BATCH_SIZE,
    OPT_LR,
    OPT_BASE_WIDTH,
    OPT_DEVICE,
    OPT_SEED,
    OPT_AUGMENT,
    OPT_SHUFFLE,
    OPT_POSITIVE_FRACTION,
    OPT_INIT,
    OPT_RESUME,
    OPT_MODEL,
    OPT_CACHE_DIR,
    OPT_THREADS,
    OPT_CHECKPOINT_EVERY,
    OPT_BCE_WEIGHT,
    OPT_DICE_WEIGHT,
    OPT_WEIGHT_DECAY,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg train [OPTIONS]\n"
            "\n"
            "Trains the U-Net on the dataset caches (<cache-dir>/train.safetensors, with\n"
            "<cache-dir>/val.safetensors for validation after every epoch). Settings come\n"
            "from `train:` in the configuration; every flag below overrides its key.\n"
            "Each epoch is a row of train_epochs in the database; the checkpoint holds\n"
            "the optimiser state so that --resume continues exactly.\n"
            "\n"
            "Options:\n"
            "  --epochs N             epochs in total, counting resumed ones (train.epochs)\n"
            "  --batch-size N         images per optimiser step (train.batch_size)\n"
            "  --lr X                 Adam learning rate (train.learning_rate)\n"
            "  --weight-decay X       Adam L2 weight decay (train.weight_decay)\n"
            "  --bce-weight X         weight of BCE-with-logits in the loss (train.bce_weight)\n"
            "  --dice-weight X        weight of the soft Dice loss (train.dice_weight)\n"
            "  --base-width N         U-Net base width, 64 = the seed (train.base_width)\n"
            "  --device D             auto, cpu or cuda (train.device)\n"
            "  --threads N            CPU threads, 0 = all (train.threads)\n"
            "  --seed N               seed of initialisation, order and augmentation\n"
            "  --augment on|off       on-the-fly augmentation (train.augment.enabled)\n"
            "  --shuffle on|off       shuffle the images each epoch (train.shuffle)\n"
            "  --positive-fraction P  share of positive images per epoch, 0 = natural\n"
            "  --init CHECKPOINT      start from these weights (ours or PyTorch's)\n"
            "  --resume               continue from the checkpoint at --model\n"
            "  --model FILE           checkpoint to write (train.model)\n"
            "  --cache-dir DIR        folder of the dataset caches (train.cache_dir)\n"
            "  --checkpoint-every N   epochs between checkpoints (train.checkpoint_every)\n"
            "\n"
            "Also written: <model stem>.best.safetensors, the weights of the epoch with\n"
            "the best validation Dice. See docs/train.md.\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static int parse_long(const char *opt, const char *arg, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi)
        return pnx_fail(PNX_EINVAL, "%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi,
                        arg);
    *out = v;
    return PNX_OK;
}

static int parse_int(const char *opt, const char *arg, int lo, int hi, int *out)
{
    long v = 0;
    int rc = parse_long(opt, arg, lo, hi, &v);
    if (!rc)
        *out = (int)v;
    return rc;
}

static int parse_double(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < lo || v > hi)
        return pnx_fail(PNX_EINVAL, "%s: expected a number in %g..%g, got '%s'", opt, lo, hi,
                        arg);
    *out = v;
    return PNX_OK;
}

static int parse_switch(const char *opt, const char *arg, int *out)
{
    static const char *const on[] = {"on", "true", "yes", "1"};
    static const char *const off[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        if (strcasecmp(arg, on[i]) == 0) {
            *out = 1;
            return PNX_OK;
        }
        if (strcasecmp(arg, off[i]) == 0) {
            *out = 0;
            return PNX_OK;
        }
    }
    return pnx_fail(PNX_EINVAL, "%s: expected on or off, got '%s'", opt, arg);
}

static int parse_device(const char *arg, int *out)
{
    if (strcmp(arg, "auto") == 0)
        *out = PNX_DEVICE_AUTO;
    else if (strcmp(arg, "cpu") == 0)
        *out = PNX_DEVICE_CPU;
    else if (strcmp(arg, "cuda") == 0)
        *out = PNX_DEVICE_CUDA;
    else
        return pnx_fail(PNX_EINVAL, "--device: expected auto, cpu or cuda, got '%s'", arg);
    return PNX_OK;
}

/* Flags seen before the configuration is loaded, applied after. */
typedef struct train_flag {
    int opt;
    const char *arg;
} train_flag;

#define MAX_FLAGS 64

static int apply_flag(pnx_train_config *c, int opt, const char *arg)
{
    long seed = 0;
    int rc = PNX_OK;
    switch (opt) {
    case OPT_EPOCHS: return parse_int("--epochs", arg, 1, 100000, &c->epochs);
    case OPT_BATCH_SIZE: return parse_int("--batch-size", arg, 1, 4096, &c->batch_size);
    case OPT_LR: return parse_double("--lr", arg, 1e-12, 10, &c->learning_rate);
    case OPT_WEIGHT_DECAY: return parse_double("--weight-decay", arg, 0, 1, &c->weight_decay);
    case OPT_BCE_WEIGHT: return parse_double("--bce-weight", arg, 0, 1000, &c->bce_weight);
    case OPT_DICE_WEIGHT: return parse_double("--dice-weight", arg, 0, 1000, &c->dice_weight);
    case OPT_BASE_WIDTH: return parse_int("--base-width", arg, 1, 256, &c->base_width);
    case OPT_DEVICE: return parse_device(arg, &c->device);
    case OPT_THREADS: return parse_int("--threads", arg, 0, 1024, &c->threads);
    case OPT_SEED:
        rc = parse_long("--seed", arg, 0, 0x7fffffffffffffffL, &seed);
        if (!rc)
            c->seed = seed;
        return rc;
    case OPT_AUGMENT: return parse_switch("--augment", arg, &c->augment.enabled);
    case OPT_SHUFFLE: return parse_switch("--shuffle", arg, &c->shuffle);
    case OPT_POSITIVE_FRACTION:
        return parse_double("--positive-fraction", arg, 0, 1, &c->positive_fraction);
    case OPT_INIT: return pnx_config_set_string(&c->init, arg);
    case OPT_RESUME: c->resume = 1; return PNX_OK;
    case OPT_MODEL: return pnx_config_set_string(&c->model, arg);
    case OPT_CACHE_DIR: return pnx_config_set_string(&c->cache_dir, arg);
    case OPT_CHECKPOINT_EVERY:
        return parse_int("--checkpoint-every", arg, 1, 100000, &c->checkpoint_every);
    default: return pnx_fail(PNX_EINTERNAL, "unhandled option %d", opt);
    }
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void print_measure(const char *label, double v)
{
    if (isnan(v))
        printf("%-22s -\n", label);
    else
        printf("%-22s %.4f\n", label, v);
}

static void print_summary(const pnx_train_config *cfg, const pnx_train_summary *s,
                          const char *device)
{
    if (s->last_epoch < s->first_epoch) {
        printf("nothing to do: %s already holds %lld of %d epochs\n", cfg->model,
               (long long)s->first_epoch - 1, cfg->epochs);
        return;
    }
    printf("trained epochs %lld..%lld of %d on %s in %.1f s (%lld optimiser steps in all)\n",
           (long long)s->first_epoch, (long long)s->last_epoch, cfg->epochs, device, s->seconds,
           (long long)s->steps);
    print_measure("train loss", s->train_loss);
    print_measure("val loss", s->val_loss);
    print_measure("val Dice", s->val_dice);
    print_measure("val Dice (positives)", s->val_dice_positive);
    print_measure("val recall", s->val_recall);
    if (!isnan(s->best_val_dice))
        printf("%-22s %.4f (epoch %lld)\n", "best val Dice", s->best_val_dice,
               (long long)s->best_epoch);
    printf("model: %s\nsha256: %s\n", cfg->model, s->model_sha256);
}

int pnx_cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"batch-size", required_argument, 0, OPT_BATCH_SIZE},
        {"lr", required_argument, 0, OPT_LR},
        {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
        {"bce-weight", required_argument, 0, OPT_BCE_WEIGHT},
        {"dice-weight", required_argument, 0, OPT_DICE_WEIGHT},
        {"base-width", required_argument, 0, OPT_BASE_WIDTH},
        {"device", required_argument, 0, OPT_DEVICE},
        {"threads", required_argument, 0, OPT_THREADS},
        {"seed", required_argument, 0, OPT_SEED},
        {"augment", required_argument, 0, OPT_AUGMENT},
        {"shuffle", required_argument, 0, OPT_SHUFFLE},
        {"positive-fraction", required_argument, 0, OPT_POSITIVE_FRACTION},
        {"init", required_argument, 0, OPT_INIT},
        {"resume", no_argument, 0, OPT_RESUME},
        {"model", required_argument, 0, OPT_MODEL},
        {"cache-dir", required_argument, 0, OPT_CACHE_DIR},
        {"checkpoint-every", required_argument, 0, OPT_CHECKPOINT_EVERY},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    train_flag flags[MAX_FLAGS];
    int n_flags = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (pnx_cli_common_option(&common, opt, optarg))
            continue;
        if (opt < PNX_OPT_FIRST_COMMAND_OPTION || n_flags == MAX_FLAGS) {
            usage(stderr);
            return PNX_EXIT_USAGE;
        }
        flags[n_flags++] = (train_flag){opt, optarg};
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc) {
        fprintf(stderr, "pneumoseg train: unexpected argument '%s'\n", argv[optind]);
        return PNX_EXIT_USAGE;
    }

    pnx_context ctx;
    int rc = pnx_context_load(&ctx, &common);
    if (rc) {
        fprintf(stderr, "pneumoseg train: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    pnx_train_config *cfg = &ctx.cfg.train;
    for (int i = 0; i < n_flags && !rc; i++)
        rc = apply_flag(cfg, flags[i].opt, flags[i].arg);
    /* --model / --cache-dir given: the resolved defaults stay for the rest. */
    if (!rc)
        rc = pnx_config_resolve_paths(&ctx.cfg);
    if (rc) {
        fprintf(stderr, "pneumoseg train: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return PNX_EXIT_USAGE;
    }

    pnx_trainer *trainer = NULL;
    if ((rc = pnx_trainer_open(&trainer, cfg))) {
        fprintf(stderr, "pneumoseg train: %s\n", pnx_errmsg());
        pnx_context_close(&ctx);
        return pnx_exit_status_for(rc);
    }
    const char *device = pnx_trainer_device(trainer);
    if ((rc = pnx_context_begin_run(&ctx, "train", NULL, device))) {
        fprintf(stderr, "pneumoseg train: %s\n", pnx_errmsg());
        pnx_trainer_close(trainer);
        pnx_context_close(&ctx);
        return pnx_exit_status_for(rc);
    }
    int64_t parent = pnx_trainer_parent_run(trainer);
    if (parent > 0 && pnx_db_run_set_parent(ctx.db, ctx.run_id, parent))
        pnx_log_warn("resumed run %lld is not in this database (%s); parent not recorded",
                     (long long)parent, pnx_errmsg());

    /* Ctrl-C or a TERM ends the run between two batches, with its row marked
     * interrupted; the last checkpoint stays for --resume. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_flag = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    pnx_trainer_set_stop(trainer, &stop_flag);
    pnx_train_summary summary;
    rc = pnx_trainer_run(trainer, ctx.db, ctx.run_id, &summary);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    char message[PNX_ERRMSG_MAX];
    snprintf(message, sizeof message, "%s", rc ? pnx_errmsg() : "");
    if (!rc && summary.model_sha256[0])
        rc = pnx_db_run_set_model(ctx.db, ctx.run_id, summary.model_sha256);
    if (rc && !message[0])
        snprintf(message, sizeof message, "%s", pnx_errmsg());
    int64_t epochs_done = summary.last_epoch >= summary.first_epoch
                              ? summary.last_epoch - summary.first_epoch + 1
                              : 0;
    int finish_rc;
    if (!rc && summary.interrupted) {
        snprintf(message, sizeof message,
                 "interrupted in epoch %lld; --resume goes on from the last checkpoint",
                 (long long)summary.last_epoch + 1);
        finish_rc = pnx_db_run_finish(ctx.db, ctx.run_id, "interrupted", epochs_done, 0, message);
    } else {
        finish_rc = pnx_context_finish_run(&ctx, rc != 0, epochs_done, 0, rc ? message : NULL);
    }
    if (!rc && summary.interrupted) {
        fprintf(stderr, "pneumoseg train: %s (checkpoint: %s)\n", message, cfg->model);
        pnx_trainer_close(trainer);
        pnx_context_close(&ctx);
        return PNX_EXIT_FATAL;
    }
    if (rc) {
        fprintf(stderr, "pneumoseg train: %s\n", message);
    } else {
        print_summary(cfg, &summary, device);
        if (finish_rc)
            fprintf(stderr, "pneumoseg train: %s\n", pnx_errmsg());
    }
    pnx_trainer_close(trainer);
    pnx_context_close(&ctx);
    if (rc)
        return pnx_exit_status_for(rc) == PNX_EXIT_USAGE ? PNX_EXIT_FATAL
                                                         : pnx_exit_status_for(rc);
    return finish_rc ? PNX_EXIT_FATAL : PNX_EXIT_OK;
}
