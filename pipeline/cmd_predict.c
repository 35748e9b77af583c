/* pipeline/cmd_predict.c — `pneumoseg predict`: run the U-Net in evaluation
 * mode and write the logits. The exact, scriptable interface to the network,
 * for users and for checks against PyTorch. The input is either a
 * safetensors file of preprocessed float32 images, used as given, or DICOM
 * files, decoded in isolated worker processes (ingest/) and preprocessed as
 * the dataset and train stages do (resized to the training side, grey/255).
 * It needs no pipeline.yaml and no database (the common options are
 * accepted). Batches run while the output is written, so memory holds one
 * batch of floats (plus the small 8-bit images of a DICOM input). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "ingest/ingest.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/unet.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "preprocess/resize.h"

#define DEFAULT_BATCH 4
#define MAX_BATCH 4096
#define MAX_SIDE 4096
#define DICOM_PREAMBLE 128 /* bytes before the "DICM" magic (PS3.10 7.1) */

/* Checkpoint metadata that may name the training side, in order. */
static const char *const SIDE_KEYS[] = {"pneumoseg.image_size", "pneumoseg.train.image_size"};

enum {
    OPT_MODEL = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_BATCH,
    OPT_THREADS,
    OPT_DEVICE,
    OPT_PRECISION,
    OPT_SIZE,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg predict --model M INPUT.safetensors -o OUT.safetensors [options]\n"
            "       pneumoseg predict --model M FILE.dcm... -o OUT.safetensors [options]\n"
            "\n"
            "Runs the U-Net of checkpoint M in evaluation mode (BatchNorm with its\n"
            "running statistics) and writes its logits.\n"
            "\n"
            "INPUT   a safetensors file holding a float32 tensor `input` of shape\n"
            "        [N,1,H,W], already preprocessed (used as given); H and W must be\n"
            "        multiples of 16.\n"
            "FILE    DICOM files (recognised by the DICM magic): each is decoded in an\n"
            "        isolated worker, resized to the training side S and scaled to\n"
            "        grey/255, as the train stage sees its images. S comes from the\n"
            "        checkpoint's metadata (pneumoseg.image_size) or --size. A file that\n"
            "        cannot be decoded is reported and left out (exit status 2).\n"
            "OUT     a safetensors file with a float32 tensor `logits` [N,1,H,W]\n"
            "        (apply a sigmoid for probabilities), written atomically. For DICOM\n"
            "        input its metadata pneumoseg.sop_instance_uids lists the images'\n"
            "        SOP Instance UIDs in order (a JSON array).\n"
            "\n"
            "Options:\n"
            "  --model M          checkpoint (safetensors; the seed's PyTorch state_dict\n"
            "                     names, as written by pneumoseg train or by\n"
            "                     safetensors.torch.save_file(model.state_dict(), M))\n"
            "  -o, --output OUT   output file (required)\n"
            "  --size S           DICOM input: the side to resize to (a multiple of 16)\n"
            "  --batch-size B     images per forward pass (default %d)\n"
            "  --threads T        CPU threads and decode workers (default: all CPUs)\n"
            "  --device D         cpu (default), cuda, auto (the GPU when present), or\n"
            "                     reference (the slow, plain-loop oracle, for checks)\n"
            "  --precision P      on a GPU: fp32 (default), tf32 (TF32 convolutions) or bf16\n"
            "                     (mixed precision: bfloat16 activations); the CPU computes\n"
            "                     in fp32\n"
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

/* What to run: n images of h × w, from a float32 tensor (data, possibly
 * unaligned) or from 8-bit pixels scaled by 1/255. */
typedef struct predict_job {
    pnx_unet *model;
    const unsigned char *f32; /* n × h × w floats, or NULL */
    const uint8_t *u8;        /* n × h × w bytes, or NULL */
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
    for (int first = 0; first < j->n; first += j->batch) {
        int count = j->n - first < j->batch ? j->n - first : j->batch;
        size_t elems = (size_t)count * per_image, bytes = elems * sizeof(float);
        if (j->f32) {
            /* memcpy: the input tensor need not be aligned in a foreign file. */
            memcpy(j->in_buf, j->f32 + (size_t)first * per_image * sizeof(float), bytes);
        } else {
            const uint8_t *src = j->u8 + (size_t)first * per_image;
            for (size_t k = 0; k < elems; k++)
                j->in_buf[k] = (float)src[k] / 255.0f;
        }
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

/* ---- DICOM input ------------------------------------------------------------- */

typedef struct dicom_input {
    int n;           /* images decoded, in the order given */
    int failed;
    uint8_t *pixels; /* n × side × side */
    char *uids_json; /* ["uid", …] */
} dicom_input;

static void dicom_input_free(dicom_input *d)
{
    free(d->pixels);
    free(d->uids_json);
    memset(d, 0, sizeof *d);
}

/* The training side: --size, else the checkpoint's metadata. */
static int training_side(const char *model_path, long size_option, uint32_t *side)
{
    if (size_option > 0) {
        *side = (uint32_t)size_option;
        return 0;
    }
    pnx_st_file *f = NULL;
    int rc = pnx_st_open(&f, model_path);
    if (rc)
        return rc;
    const char *text = NULL;
    for (size_t i = 0; !text && i < sizeof SIDE_KEYS / sizeof SIDE_KEYS[0]; i++)
        text = pnx_st_meta(f, SIDE_KEYS[i]);
    long v = 0;
    if (!text)
        rc = pnx_fail(PNX_EINVAL, "%s does not record its training side: give --size", model_path);
    else if (parse_int_option("checkpoint image size", text, PNX_UNET_SIZE_MULTIPLE, MAX_SIDE, &v) ||
             v % PNX_UNET_SIZE_MULTIPLE)
        rc = pnx_fail(PNX_EFORMAT, "%s: training side '%s' is not a multiple of %d up to %d",
                      model_path, text, PNX_UNET_SIZE_MULTIPLE, MAX_SIDE);
    pnx_st_close(f);
    if (!rc)
        *side = (uint32_t)v;
    return rc;
}

/* Decodes paths in isolated workers, resizes each to side × side, and keeps
 * the successes in the order given. */
static int decode_dicom(char **paths, int n_paths, uint32_t side, unsigned workers,
                        dicom_input *out)
{
    const size_t per = (size_t)side * side;
    uint8_t *slots = malloc((size_t)n_paths * per);
    char **uids = calloc((size_t)n_paths, sizeof *uids);
    pnx_decode_pool *pool = NULL;
    pnx_ingest_limits limits;
    pnx_ingest_limits_default(&limits);
    int rc = slots && uids ? 0 : pnx_fail(PNX_ENOMEM, "out of memory for %d images", n_paths);
    if (!rc)
        rc = pnx_decode_pool_create(&pool, workers, &limits);
    for (int i = 0; !rc && i < n_paths; i++)
        rc = pnx_decode_pool_submit(pool, (size_t)i, paths[i], PNX_DECODE_PIXELS);
    pnx_progress *progress = rc ? NULL : pnx_progress_start("decode", (uint64_t)n_paths);
    for (int done = 0; !rc && done < n_paths; done++) {
        pnx_decode_result r;
        if ((rc = pnx_decode_pool_next(pool, &r)) != 0)
            break;
        pnx_image small = {0};
        if (r.error_kind != PNX_INGEST_OK) {
            pnx_log_error("%s: %s: %s", r.path, pnx_ingest_error_kind_name(r.error_kind), r.error);
            out->failed++;
        } else if (pnx_resize_image(&r.image, side, &small) != 0) {
            pnx_log_error("%s: resize: %s", r.path, pnx_errmsg());
            out->failed++;
        } else {
            memcpy(slots + r.index * per, small.pixels, per);
            uids[r.index] = strdup(r.meta.sop_uid);
            if (!uids[r.index])
                rc = pnx_fail(PNX_ENOMEM, "out of memory");
        }
        pnx_image_free(&small);
        pnx_decode_result_free(&r);
        pnx_progress_add(progress, 1);
    }
    pnx_progress_finish(progress);
    pnx_decode_pool_destroy(pool);

    size_t json_len = 3;
    for (int i = 0; i < n_paths; i++)
        json_len += uids[i] ? strlen(uids[i]) + 3 : 0;
    if (!rc && !(out->uids_json = malloc(json_len)))
        rc = pnx_fail(PNX_ENOMEM, "out of memory");
    if (!rc) {
        /* Compact the successes; UIDs are digits and dots, safe in JSON. */
        char *p = out->uids_json;
        *p++ = '[';
        for (int i = 0; i < n_paths; i++) {
            if (!uids[i])
                continue;
            memmove(slots + (size_t)out->n * per, slots + (size_t)i * per, per);
            p += sprintf(p, "%s\"%s\"", out->n ? "," : "", uids[i]);
            out->n++;
        }
        strcpy(p, "]");
        out->pixels = slots;
        slots = NULL;
    }
    for (int i = 0; i < n_paths; i++)
        free(uids[i]);
    free(uids);
    free(slots);
    if (!rc && out->n == 0)
        rc = pnx_fail(PNX_EFORMAT, "none of the %d DICOM file(s) could be decoded", n_paths);
    return rc;
}

/* ---- the command ------------------------------------------------------------- */

typedef struct predict_args {
    const char *model, *output;
    char **inputs;
    int n_inputs, batch, reference, dicom;
    int device; /* enum pnx_model_device, when not reference */
    int allow_tf32, mixed_bf16;
    unsigned threads;
    long size;
} predict_args;

static int run_predict(const predict_args *a, int *n_failed)
{
    pnx_backend *be = NULL;
    pnx_unet *model = NULL;
    pnx_st_file *in = NULL;
    pnx_st_writer *w = NULL;
    predict_job job = {0};
    dicom_input dicom = {0};
    const pnx_st_tensor *input = NULL;
    uint32_t side = 0;
    pnx_device_request req = {.device = a->device,
                              .threads = a->threads,
                              .allow_tf32 = a->allow_tf32,
                              .mixed_bf16 = a->mixed_bf16};
    const char *kind = NULL;
    char desc[320];
    int rc = a->reference ? pnx_backend_reference_create(&be)
                          : pnx_backend_open(&be, &req, &kind, desc, sizeof desc);
    if (!rc && !a->reference) {
        pnx_log_info("device %s", desc);
        if ((a->allow_tf32 || a->mixed_bf16) && strcmp(kind, "cpu") == 0)
            pnx_log_warn("--precision %s applies on a GPU only; the CPU computes in fp32",
                         a->mixed_bf16 ? "bf16" : "tf32");
    }
    pnx_checkpoint_info info = {0};
    if (!rc)
        rc = pnx_checkpoint_load(&model, be, a->model, &info);
    if (!rc && a->dicom) {
        rc = training_side(a->model, a->size, &side);
        if (!rc)
            rc = decode_dicom(a->inputs, a->n_inputs, side, a->threads, &dicom);
        job.u8 = dicom.pixels;
        job.n = dicom.n;
        job.h = job.w = (int)side;
        *n_failed = dicom.failed;
    } else if (!rc) {
        rc = pnx_st_open(&in, a->inputs[0]);
        if (!rc)
            rc = check_input(in, a->inputs[0], &input);
        if (!rc) {
            job.f32 = input->data;
            job.n = (int)input->shape[0];
            job.h = (int)input->shape[2];
            job.w = (int)input->shape[3];
        }
    }
    if (!rc) {
        job.model = model;
        job.batch = a->batch < job.n ? a->batch : job.n;
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
        rc = pnx_st_writer_meta(w, "pneumoseg.model", a->model);
    if (!rc)
        rc = pnx_st_writer_meta(w, "pneumoseg.base_width", base_text);
    if (!rc && a->dicom)
        rc = pnx_st_writer_meta(w, "pneumoseg.sop_instance_uids", dicom.uids_json);
    if (!rc)
        rc = pnx_st_writer_add_fill(w, "logits", PNX_ST_F32, 4,
                                    (const int64_t[]){job.n, 1, job.h, job.w}, predict_fill, &job);
    if (!rc) {
        job.progress = pnx_progress_start("predict", (uint64_t)job.n);
        rc = pnx_st_writer_write(w, a->output);
        pnx_progress_finish(job.progress);
    }
    if (!rc)
        printf("%s: logits of %d image(s) %dx%d written to %s%s\n", a->model, job.n, job.w, job.h,
               a->output, *n_failed ? " (some inputs failed, see above)" : "");
    pnx_st_writer_free(w);
    free(job.in_buf);
    free(job.out_buf);
    dicom_input_free(&dicom);
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
        {"precision", required_argument, 0, OPT_PRECISION},
        {"size", required_argument, 0, OPT_SIZE},
        PNX_CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    predict_args a = {0};
    const char *device = "cpu", *precision = "fp32";
    long batch = DEFAULT_BATCH, threads = 0;
    int opt, rc = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:" PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_MODEL: a.model = optarg; break;
        case 'o': a.output = optarg; break;
        case OPT_BATCH: rc = parse_int_option("--batch-size", optarg, 1, MAX_BATCH, &batch); break;
        case OPT_THREADS: rc = parse_int_option("--threads", optarg, 0, 1024, &threads); break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_PRECISION: precision = optarg; break;
        case OPT_SIZE:
            rc = parse_int_option("--size", optarg, PNX_UNET_SIZE_MULTIPLE, MAX_SIDE, &a.size);
            if (!rc && a.size % PNX_UNET_SIZE_MULTIPLE)
                rc = pnx_fail(PNX_EINVAL, "--size %ld is not a multiple of %d", a.size,
                              PNX_UNET_SIZE_MULTIPLE);
            break;
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
    if (!a.model || !a.output || optind >= argc) {
        fprintf(stderr, "pneumoseg predict: need --model M, an INPUT and -o OUT\n\n");
        usage(stderr);
        return PNX_EXIT_USAGE;
    }
    if (strcmp(device, "reference") == 0) {
        a.reference = 1;
    } else if (strcmp(device, "cuda") == 0) {
        a.device = PNX_MODEL_DEVICE_CUDA;
    } else if (strcmp(device, "auto") == 0) {
        a.device = PNX_MODEL_DEVICE_AUTO;
    } else if (strcmp(device, "cpu") == 0) {
        a.device = PNX_MODEL_DEVICE_CPU;
    } else {
        fprintf(stderr, "pneumoseg predict: --device '%s': expected cpu, cuda, auto or "
                        "reference\n", device);
        return PNX_EXIT_USAGE;
    }
    if (strcmp(precision, "tf32") == 0) {
        a.allow_tf32 = 1;
    } else if (strcmp(precision, "bf16") == 0) {
        a.mixed_bf16 = 1;
    } else if (strcmp(precision, "fp32") != 0) {
        fprintf(stderr, "pneumoseg predict: --precision '%s': expected fp32, tf32 or bf16\n",
                precision);
        return PNX_EXIT_USAGE;
    }
    a.inputs = argv + optind;
    a.n_inputs = argc - optind;
    a.batch = (int)batch;
    a.threads = (unsigned)threads;
    a.dicom = looks_like_dicom(a.inputs[0]);
    if (!a.dicom && a.n_inputs != 1) {
        fprintf(stderr, "pneumoseg predict: give one safetensors INPUT, or DICOM files\n");
        return PNX_EXIT_USAGE;
    }
    int n_failed = 0;
    rc = run_predict(&a, &n_failed);
    if (rc) {
        fprintf(stderr, "pneumoseg predict: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    return n_failed ? PNX_EXIT_PARTIAL : PNX_EXIT_OK;
}
