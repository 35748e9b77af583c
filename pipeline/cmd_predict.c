/* pipeline/cmd_predict.c — `pneumoseg predict`: run the U-Net in evaluation
 * mode on preprocessed input and write the logits. The exact, scriptable
 * interface to the network, for users and for checks against PyTorch; it
 * needs no pipeline.yaml and no database (the common options are
 * accepted). Batches are run while the output is written, so memory stays
 * one batch deep however many images the input holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "model/checkpoint.h"
#include "model/cpu/cpu_backend.h"
#include "model/unet.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"

#define DEFAULT_BATCH 4
#define MAX_BATCH 4096
#define DICOM_PREAMBLE 128 /* bytes before the "DICM" magic (PS3.10 7.1) */

enum {
    OPT_MODEL = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_BATCH,
    OPT_THREADS,
    OPT_DEVICE,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg predict --model M INPUT -o OUT.safetensors [options]\n"
            "\n"
            "Runs the U-Net of checkpoint M in evaluation mode (BatchNorm with its\n"
            "running statistics) and writes its logits.\n"
            "\n"
            "INPUT   a safetensors file holding a float32 tensor `input` of shape\n"
            "        [N,1,H,W], already preprocessed (used as given); H and W must be\n"
            "        multiples of 16. DICOM input is not built yet.\n"
            "OUT     a safetensors file with a float32 tensor `logits` [N,1,H,W]\n"
            "        (apply a sigmoid for probabilities), written atomically.\n"
            "\n"
            "Options:\n"
            "  --model M          checkpoint (safetensors; the seed's PyTorch state_dict\n"
            "                     names, as written by pneumoseg train or by\n"
            "                     safetensors.torch.save_file(model.state_dict(), M))\n"
            "  -o, --output OUT   output file (required)\n"
            "  --batch-size B     images per forward pass (default %d)\n"
            "  --threads T        CPU threads (default: all CPUs)\n"
            "  --device D         cpu (default) or reference (the slow, plain-loop\n"
            "                     oracle, for checks); cuda is not built yet\n"
            "\n"
            "The configuration file and the database are not used.\n"
            "\n" PNX_CLI_COMMON_HELP,
            DEFAULT_BATCH);
}

static int parse_int_option(const char *name, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi)
        return pnx_fail(PNX_EINVAL, "%s '%s': expected an integer in %ld..%ld", name, text, lo, hi);
    *out = v;
    return 0;
}

/* DICOM Part 10 files carry "DICM" after a 128-byte preamble. */
static int looks_like_dicom(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    char magic[4] = {0};
    int is_dicom = fseek(fp, DICOM_PREAMBLE, SEEK_SET) == 0 && fread(magic, 1, 4, fp) == 4 &&
                   memcmp(magic, "DICM", 4) == 0;
    fclose(fp);
    return is_dicom;
}

typedef struct predict_job {
    pnx_unet *model;
    const pnx_st_tensor *input;
    int n, h, w, batch;
    float *in_buf, *out_buf; /* one batch each */
    pnx_progress *progress;
} predict_job;

/* The writer's fill callback: runs the batches and streams their logits. */
static int predict_fill(void *ctx, FILE *fp, size_t nbytes)
{
    predict_job *j = ctx;
    const size_t per_image = (size_t)j->h * j->w;
    if (nbytes != (size_t)j->n * per_image * sizeof(float))
        return pnx_fail(PNX_EINTERNAL, "logits size mismatch");
    const unsigned char *src = j->input->data;
    for (int first = 0; first < j->n; first += j->batch) {
        int count = j->n - first < j->batch ? j->n - first : j->batch;
        size_t bytes = (size_t)count * per_image * sizeof(float);
        /* memcpy: the input tensor need not be aligned in a foreign file. */
        memcpy(j->in_buf, src + (size_t)first * per_image * sizeof(float), bytes);
        int rc = pnx_unet_forward(j->model, j->in_buf, count, j->h, j->w, 0, j->out_buf);
        if (rc)
            return pnx_fail_prefix(rc, "images %d..%d", first, first + count - 1);
        if (fwrite(j->out_buf, 1, bytes, fp) != bytes)
            return pnx_fail(PNX_EIO, "writing logits: %s", strerror(errno));
        pnx_progress_add(j->progress, (uint64_t)count);
    }
    return 0;
}

static int check_input(const pnx_st_file *f, const char *path, const pnx_st_tensor **out)
{
    int rc = pnx_st_expect(f, "input", PNX_ST_F32, 4, (const int64_t[]){-1, 1, -1, -1}, out);
    if (rc)
        return pnx_fail_prefix(rc, "%s (needs a float32 tensor `input` [N,1,H,W])", path);
    const pnx_st_tensor *t = *out;
    if (t->shape[0] < 1 || t->shape[0] > INT32_MAX || t->shape[2] < PNX_UNET_SIZE_MULTIPLE ||
        t->shape[3] < PNX_UNET_SIZE_MULTIPLE || t->shape[2] % PNX_UNET_SIZE_MULTIPLE ||
        t->shape[3] % PNX_UNET_SIZE_MULTIPLE || t->shape[2] > 16384 || t->shape[3] > 16384)
        return pnx_fail(PNX_EINVAL,
                        "%s: input [%" PRId64 ",1,%" PRId64 ",%" PRId64
                        "]: need N >= 1 and H, W multiples of %d up to 16384",
                        path, t->shape[0], t->shape[2], t->shape[3], PNX_UNET_SIZE_MULTIPLE);
    return 0;
}

static int run_predict(const char *model_path, const char *input_path, const char *output_path,
                       int batch, unsigned threads, int reference)
{
    pnx_backend *be = NULL;
    pnx_unet *model = NULL;
    pnx_st_file *in = NULL;
    pnx_st_writer *w = NULL;
    predict_job job = {0};
    const pnx_st_tensor *input = NULL;
    int rc = reference ? pnx_backend_reference_create(&be) : pnx_backend_cpu_create(&be, threads);
    pnx_checkpoint_info info = {0};
    if (!rc)
        rc = pnx_checkpoint_load(&model, be, model_path, &info);
    if (!rc)
        rc = pnx_st_open(&in, input_path);
    if (!rc)
        rc = check_input(in, input_path, &input);
    if (!rc) {
        job.model = model;
        job.input = input;
        job.n = (int)input->shape[0];
        job.h = (int)input->shape[2];
        job.w = (int)input->shape[3];
        job.batch = batch < job.n ? batch : job.n;
        size_t floats = (size_t)job.batch * job.h * job.w;
        job.in_buf = malloc(floats * sizeof(float));
        job.out_buf = malloc(floats * sizeof(float));
        if (!job.in_buf || !job.out_buf)
            rc = pnx_fail(PNX_ENOMEM, "out of memory for a batch of %d", job.batch);
    }
    if (!rc) {
        pnx_log_info("predict: %d image(s) %dx%d, U-Net base %d on %s, batch %d", job.n, job.w,
                     job.h, info.base_width, be->ops->name, job.batch);
        rc = pnx_st_writer_create(&w);
    }
    char base_text[16];
    snprintf(base_text, sizeof base_text, "%d", info.base_width);
    if (!rc)
        rc = pnx_st_writer_meta(w, "pneumoseg.model", model_path);
    if (!rc)
        rc = pnx_st_writer_meta(w, "pneumoseg.base_width", base_text);
    if (!rc)
        rc = pnx_st_writer_add_fill(w, "logits", PNX_ST_F32, 4,
                                    (const int64_t[]){job.n, 1, job.h, job.w}, predict_fill, &job);
    if (!rc) {
        job.progress = pnx_progress_start("predict", (uint64_t)job.n);
        rc = pnx_st_writer_write(w, output_path);
        pnx_progress_finish(job.progress);
    }
    if (!rc)
        printf("%s: logits of %d image(s) %dx%d written to %s\n", model_path, job.n, job.w, job.h,
               output_path);
    pnx_st_writer_free(w);
    free(job.in_buf);
    free(job.out_buf);
    pnx_st_close(in);
    pnx_unet_destroy(model);
    pnx_backend_destroy(be);
    return rc;
}

int pnx_cmd_predict(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, OPT_MODEL},
        {"output", required_argument, 0, 'o'},
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"threads", required_argument, 0, OPT_THREADS},
        {"device", required_argument, 0, OPT_DEVICE},
        PNX_CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    const char *model = NULL, *output = NULL, *device = "cpu";
    long batch = DEFAULT_BATCH, threads = 0;
    int opt, rc = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:" PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_MODEL: model = optarg; break;
        case 'o': output = optarg; break;
        case OPT_BATCH: rc = parse_int_option("--batch-size", optarg, 1, MAX_BATCH, &batch); break;
        case OPT_THREADS: rc = parse_int_option("--threads", optarg, 0, 1024, &threads); break;
        case OPT_DEVICE: device = optarg; break;
        default:
            if (!pnx_cli_common_option(&common, opt, optarg)) {
                usage(stderr);
                return PNX_EXIT_USAGE;
            }
        }
        if (rc) {
            fprintf(stderr, "pneumoseg predict: %s\n", pnx_errmsg());
            return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (!model || !output || optind != argc - 1) {
        fprintf(stderr, "pneumoseg predict: need --model M, one INPUT and -o OUT\n\n");
        usage(stderr);
        return PNX_EXIT_USAGE;
    }
    int reference = 0;
    if (strcmp(device, "reference") == 0) {
        reference = 1;
    } else if (strcmp(device, "cuda") == 0) {
        fprintf(stderr, "pneumoseg predict: the CUDA backend is not built yet\n");
        return PNX_EXIT_FATAL;
    } else if (strcmp(device, "cpu") != 0) {
        fprintf(stderr, "pneumoseg predict: --device '%s': expected cpu or reference\n", device);
        return PNX_EXIT_USAGE;
    }
    const char *input = argv[optind];
    if (looks_like_dicom(input)) {
        fprintf(stderr,
                "pneumoseg predict: %s is DICOM; DICOM input is not built yet (give a\n"
                "safetensors file with a preprocessed float32 `input` [N,1,H,W])\n",
                input);
        return PNX_EXIT_FATAL;
    }
    rc = run_predict(model, input, output, (int)batch, (unsigned)threads, reference);
    if (rc) {
        fprintf(stderr, "pneumoseg predict: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    return PNX_EXIT_OK;
}
