/* pipeline/train_stage.c — the train stage; see train_stage.h. */
#include "pipeline/train_stage.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "db/train.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/unet.h"
#include "pipeline/train_curve.h"
#include "pipeline/train_streams.h"
#include "preprocess/augment.h"
#include "preprocess/cache.h"

/* Checkpoint metadata written by this stage (beside model/checkpoint.h's). */
#define META_RUN_ID "pneumoseg.run_id"
#define META_BEST_DICE "pneumoseg.best_val_dice"
#define META_BEST_EPOCH "pneumoseg.best_epoch"
#define N_SETTINGS 13

/* ---- the trainer --------------------------------------------------------------- */

struct pnx_trainer {
    const pnx_train_config *cfg;
    pnx_cache *train;
    pnx_cache *val;
    uint32_t side;
    uint32_t n_train;
    uint32_t n_val;
    uint8_t *positive; /* n_train */
    uint32_t n_positive;
    pnx_backend *be;
    pnx_unet *model;
    const char *device;
    int64_t next_epoch;
    int64_t parent_run;
    double best_val_dice; /* NAN until a validation ran */
    int64_t best_epoch;
    pnx_augment_params augment;
    float *images;  /* (batch, 1, side, side) */
    float *masks;   /* (batch, 1, side, side) */
    float *logits;  /* (batch, 1, side, side) */
    uint32_t *order; /* n_train */
    pnx_train_curve curve; /* every epoch so far, resumed ones included */
    volatile sig_atomic_t *stop;
    int interrupted;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int open_cache(pnx_cache **out, const char *dir, const char *name, const char *role)
{
    char *path = pnx_path_join(dir, name);
    if (!path)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = pnx_cache_open(out, path);
    if (!rc && (rc = pnx_cache_verify(*out))) {
        pnx_cache_close(*out);
        *out = NULL;
    }
    if (rc) {
        char why[PNX_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", pnx_errmsg());
        pnx_fail(rc, "%s cache: %s (the dataset stage writes it; set train.cache_dir or "
                     "--cache-dir to its folder)", role, why);
    }
    free(path);
    return rc;
}

static int check_caches(pnx_trainer *t)
{
    size_t n_train = pnx_cache_count(t->train), n_val = pnx_cache_count(t->val);
    if (n_train == 0)
        return pnx_fail(PNX_EFORMAT, "the train cache holds no images");
    if (n_train > UINT32_MAX || n_val > UINT32_MAX)
        return pnx_fail(PNX_ERANGE, "caches of more than %u images are not supported",
                        UINT32_MAX);
    t->side = pnx_cache_side(t->train);
    if (t->side < PNX_UNET_SIZE_MULTIPLE || t->side % PNX_UNET_SIZE_MULTIPLE != 0)
        return pnx_fail(PNX_EUNSUPPORTED,
                        "the train cache's images are %u×%u; the U-Net needs a side that is a "
                        "multiple of %d (dataset.image_size)",
                        t->side, t->side, PNX_UNET_SIZE_MULTIPLE);
    if (n_val > 0 && pnx_cache_side(t->val) != t->side)
        return pnx_fail(PNX_EFORMAT,
                        "the train cache's images are %u×%u but the val cache's are %u×%u: "
                        "rebuild both with one dataset.image_size",
                        t->side, t->side, pnx_cache_side(t->val), pnx_cache_side(t->val));
    t->n_train = (uint32_t)n_train;
    t->n_val = (uint32_t)n_val;
    t->positive = calloc(n_train, 1);
    if (!t->positive)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    size_t pixels = (size_t)t->side * t->side;
    for (uint32_t i = 0; i < t->n_train; i++) {
        const uint8_t *mask = pnx_cache_mask(t->train, i);
        for (size_t k = 0; k < pixels; k++)
            if (mask[k]) {
                t->positive[i] = 1;
                t->n_positive++;
                break;
            }
    }
    return PNX_OK;
}

static int create_backend(pnx_trainer *t)
{
    const pnx_train_config *cfg = t->cfg;
    pnx_device_request req = {
        .device = cfg->device,
        .threads = cfg->threads > 0 ? (unsigned)cfg->threads : 0u,
        .allow_tf32 = cfg->precision == PNX_PREC_TF32,
        .mixed_bf16 = cfg->precision == PNX_PREC_BF16,
        .deterministic = cfg->deterministic,
        .algo_search = cfg->cudnn_search,
    };
    char desc[320];
    int rc = pnx_backend_open(&t->be, &req, &t->device, desc, sizeof desc);
    if (rc)
        return rc;
    pnx_log_info("device %s: %s", cfg->device == PNX_DEVICE_AUTO ? "auto" : t->device, desc);
    if (cfg->precision != PNX_PREC_FP32 && strcmp(t->device, "cpu") == 0)
        pnx_log_warn("train.precision: %s applies on a GPU only; the CPU computes in fp32",
                     cfg->precision == PNX_PREC_BF16 ? "bf16" : "tf32");
    return PNX_OK;
}

static int file_exists(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    fclose(fp);
    return 1;
}

/* Parses a non-negative integer or a finite double; 0 when absent. */
static int meta_int64(const pnx_st_file *f, const char *key, int64_t *value)
{
    const char *text = pnx_st_meta(f, key);
    if (!text)
        return 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || v < 0)
        return 0;
    *value = v;
    return 1;
}

static int meta_double(const pnx_st_file *f, const char *key, double *value)
{
    const char *text = pnx_st_meta(f, key);
    if (!text)
        return 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v))
        return 0;
    *value = v;
    return 1;
}

/* The training settings recorded in checkpoints; a resume compares them. */
typedef struct settings_text {
    const char *keys[N_SETTINGS];
    char values[N_SETTINGS][40];
    int n;
} settings_text;

static void settings_int(settings_text *s, const char *key, int64_t v)
{
    assert(s->n < N_SETTINGS);
    s->keys[s->n] = key;
    snprintf(s->values[s->n], sizeof s->values[0], "%lld", (long long)v);
    s->n++;
}

/* %.17g: the text reads back as the same double. */
static void settings_real(settings_text *s, const char *key, double v)
{
    assert(s->n < N_SETTINGS);
    s->keys[s->n] = key;
    snprintf(s->values[s->n], sizeof s->values[0], "%.17g", v);
    s->n++;
}

static void settings_of(const pnx_trainer *t, settings_text *s)
{
    const pnx_train_config *c = t->cfg;
    memset(s, 0, sizeof *s);
    /* The input side every consumer of a checkpoint reads (score, predict). */
    settings_int(s, "pneumoseg.image_size", t->side);
    settings_int(s, "pneumoseg.train.image_size", t->side);
    settings_int(s, "pneumoseg.train.batch_size", c->batch_size);
    settings_real(s, "pneumoseg.train.learning_rate", c->learning_rate);
    settings_real(s, "pneumoseg.train.weight_decay", c->weight_decay);
    settings_real(s, "pneumoseg.train.bce_weight", c->bce_weight);
    settings_real(s, "pneumoseg.train.dice_weight", c->dice_weight);
    settings_int(s, "pneumoseg.train.seed", c->seed);
    settings_int(s, "pneumoseg.train.shuffle", (c->shuffle != 0));
    settings_int(s, "pneumoseg.train.augment", (c->augment.enabled != 0));
    settings_real(s, "pneumoseg.train.positive_fraction", c->positive_fraction);
    settings_int(s, "pneumoseg.train.train_images", t->n_train);
    settings_int(s, "pneumoseg.train.epochs", c->epochs);
}

/* Reads what this stage keeps in a checkpoint's metadata beyond the model's:
 * the run it came from, the best validation so far, and the settings. */
static int read_resume_metadata(pnx_trainer *t, const char *path)
{
    pnx_st_file *f = NULL;
    int rc = pnx_st_open(&f, path);
    if (rc)
        return pnx_fail_prefix(rc, "checkpoint %s", path);
    meta_int64(f, META_RUN_ID, &t->parent_run);
    double best = NAN;
    int64_t best_epoch = 0;
    if (meta_double(f, META_BEST_DICE, &best) && meta_int64(f, META_BEST_EPOCH, &best_epoch)) {
        t->best_val_dice = best;
        t->best_epoch = best_epoch;
    }
    const char *history = pnx_st_meta(f, PNX_TRAIN_CURVE_META);
    if (history && pnx_train_curve_parse(&t->curve, history))
        pnx_log_warn("%s: %s; the training curve starts afresh", path, pnx_errmsg());
    settings_text now;
    settings_of(t, &now);
    for (int i = 0; i < now.n; i++) {
        const char *before = pnx_st_meta(f, now.keys[i]);
        /* Extending a run is what resuming is for; the image size is
         * compared under its pneumoseg.train. name. */
        if (strcmp(now.keys[i], "pneumoseg.train.epochs") == 0 ||
            strncmp(now.keys[i], "pneumoseg.train.", strlen("pneumoseg.train.")) != 0)
            continue;
        if (before && strcmp(before, now.values[i]) != 0)
            pnx_log_warn("resuming with %s = %s where the checkpoint was trained with %s: the "
                         "result will differ from an uninterrupted run",
                         now.keys[i] + strlen("pneumoseg.train."), now.values[i], before);
    }
    pnx_st_close(f);
    return PNX_OK;
}

/* Forgets an optimiser state that came with --init weights: fine-tuning
 * starts Adam afresh. */
static int reset_adam(pnx_unet *m)
{
    if (!pnx_unet_has_adam_state(m))
        return pnx_unet_set_adam_steps(m, 0);
    size_t largest = 0, n = pnx_unet_tensor_count(m);
    for (size_t i = 0; i < n; i++) {
        pnx_unet_tensor_info info;
        pnx_unet_tensor_at(m, i, &info);
        if (info.kind == PNX_UNET_PARAMETER && info.count > largest)
            largest = info.count;
    }
    float *zeros = calloc(largest ? largest : 1, sizeof *zeros);
    if (!zeros)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = PNX_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        pnx_unet_tensor_info info;
        pnx_unet_tensor_at(m, i, &info);
        if (info.kind != PNX_UNET_PARAMETER)
            continue;
        rc = pnx_unet_write(m, info.name, PNX_UNET_ADAM_M, zeros, info.count);
        if (!rc)
            rc = pnx_unet_write(m, info.name, PNX_UNET_ADAM_V, zeros, info.count);
    }
    free(zeros);
    return rc ? rc : pnx_unet_set_adam_steps(m, 0);
}

static int build_model(pnx_trainer *t)
{
    const pnx_train_config *cfg = t->cfg;
    int rc;
    t->next_epoch = 1;
    if (cfg->resume && file_exists(cfg->model)) {
        pnx_checkpoint_info info;
        if ((rc = pnx_checkpoint_peek(cfg->model, &info)))
            return pnx_fail_prefix(rc, "--resume");
        if (!info.has_optimizer || info.epoch < 0)
            return pnx_fail(PNX_EFORMAT,
                            "--resume: %s has no optimiser state or epoch (a weights-only "
                            "file); start from it with --init instead",
                            cfg->model);
        if ((rc = pnx_checkpoint_load(&t->model, t->be, cfg->model, &info)))
            return pnx_fail_prefix(rc, "--resume");
        if ((rc = read_resume_metadata(t, cfg->model)))
            return rc;
        t->next_epoch = info.epoch + 1;
        pnx_log_info("resuming from %s: %lld epochs and %lld steps done", cfg->model,
                     (long long)info.epoch, (long long)pnx_unet_adam_steps(t->model));
        return PNX_OK;
    }
    if (cfg->resume)
        pnx_log_warn("--resume: no checkpoint at %s yet; starting at epoch 1", cfg->model);
    if (cfg->init) {
        pnx_checkpoint_info info;
        if ((rc = pnx_checkpoint_load(&t->model, t->be, cfg->init, &info)))
            return pnx_fail_prefix(rc, "--init");
        if (info.base_width != cfg->base_width)
            pnx_log_info("--init: %s has base width %d; using it (train.base_width is %d)",
                         cfg->init, info.base_width, cfg->base_width);
        pnx_log_info("starting from the weights of %s", cfg->init);
        return reset_adam(t->model);
    }
    if ((rc = pnx_unet_create(&t->model, t->be, cfg->base_width)))
        return rc;
    return pnx_unet_init(t->model, (uint64_t)cfg->seed);
}

static void augment_params_of(const pnx_augment_config *a, pnx_augment_params *p)
{
    memset(p, 0, sizeof *p);
    if (!a->enabled)
        return;
    p->hflip = a->hflip;
    p->shift = a->shift;
    p->scale = a->scale;
    p->rotate_deg = a->rotate_deg;
    p->brightness = a->brightness;
    p->contrast = a->contrast;
    p->gamma = a->gamma;
}

static int check_config(const pnx_train_config *cfg)
{
    if (!cfg->cache_dir || !cfg->model)
        return pnx_fail(PNX_EINVAL, "train: cache_dir and model paths must be set");
    if (cfg->epochs < 1 || cfg->epochs > PNX_TRAIN_MAX_EPOCH)
        return pnx_fail(PNX_EINVAL, "train.epochs must be 1..%lld", PNX_TRAIN_MAX_EPOCH);
    if (cfg->batch_size < 1 || cfg->batch_size > 4096)
        return pnx_fail(PNX_EINVAL, "train.batch_size must be 1..4096, got %d", cfg->batch_size);
    if (cfg->checkpoint_every < 1)
        return pnx_fail(PNX_EINVAL, "train.checkpoint_every must be at least 1");
    if (!(cfg->learning_rate > 0.0) || !(cfg->weight_decay >= 0.0))
        return pnx_fail(PNX_EINVAL, "train.learning_rate must be > 0 and weight_decay >= 0");
    if (!(cfg->bce_weight >= 0.0) || !(cfg->dice_weight >= 0.0) ||
        cfg->bce_weight + cfg->dice_weight <= 0.0)
        return pnx_fail(PNX_EINVAL, "train.bce_weight and dice_weight must be >= 0, not both 0");
    if (!(cfg->positive_fraction >= 0.0 && cfg->positive_fraction <= 1.0))
        return pnx_fail(PNX_EINVAL, "train.positive_fraction must be in 0..1");
    if (cfg->base_width < 1 || cfg->base_width > PNX_UNET_MAX_BASE_WIDTH)
        return pnx_fail(PNX_EINVAL, "train.base_width must be 1..%d", PNX_UNET_MAX_BASE_WIDTH);
    return PNX_OK;
}

int pnx_trainer_open(pnx_trainer **out, const pnx_train_config *cfg)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (rc)
        return rc;
    pnx_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    t->cfg = cfg;
    t->best_val_dice = NAN;
    augment_params_of(&cfg->augment, &t->augment);
    if ((rc = pnx_augment_params_check(&t->augment)) ||
        (rc = open_cache(&t->train, cfg->cache_dir, PNX_TRAIN_CACHE_TRAIN, "train")) ||
        (rc = open_cache(&t->val, cfg->cache_dir, PNX_TRAIN_CACHE_VAL, "val")) ||
        (rc = check_caches(t)) || (rc = create_backend(t)) || (rc = build_model(t)))
        goto fail;
    if (cfg->positive_fraction > 0.0 && (t->n_positive == 0 || t->n_positive == t->n_train))
        pnx_log_warn("train.positive_fraction %g: the train cache has %u positive images of "
                     "%u; sampling every image once instead",
                     cfg->positive_fraction, t->n_positive, t->n_train);
    size_t batch_floats = (size_t)cfg->batch_size * t->side * t->side;
    t->images = malloc(batch_floats * sizeof *t->images);
    t->masks = malloc(batch_floats * sizeof *t->masks);
    t->logits = malloc(batch_floats * sizeof *t->logits);
    t->order = malloc((size_t)t->n_train * sizeof *t->order);
    if (!t->images || !t->masks || !t->logits || !t->order) {
        rc = pnx_fail(PNX_ENOMEM, "out of memory for batches of %d at %u×%u", cfg->batch_size,
                      t->side, t->side);
        goto fail;
    }
    pnx_log_info("training base width %d on %u images (%u positive) at %u×%u, %u validation "
                 "images, batch %d, device %s",
                 pnx_unet_base_width(t->model), t->n_train, t->n_positive, t->side, t->side,
                 t->n_val, cfg->batch_size, t->device);
    *out = t;
    return PNX_OK;
fail:
    pnx_trainer_close(t);
    return rc;
}

void pnx_trainer_close(pnx_trainer *t)
{
    if (!t)
        return;
    pnx_unet_destroy(t->model);
    pnx_backend_destroy(t->be);
    pnx_cache_close(t->train);
    pnx_cache_close(t->val);
    free(t->positive);
    free(t->images);
    free(t->masks);
    free(t->logits);
    free(t->order);
    pnx_train_curve_free(&t->curve);
    free(t);
}

void pnx_trainer_set_stop(pnx_trainer *t, volatile sig_atomic_t *stop)
{
    t->stop = stop;
}

const char *pnx_trainer_device(const pnx_trainer *t)
{
    return t->device;
}

int64_t pnx_trainer_parent_run(const pnx_trainer *t)
{
    return t->parent_run;
}

int64_t pnx_trainer_next_epoch(const pnx_trainer *t)
{
    return t->next_epoch;
}

char *pnx_train_sibling_path(const char *model_path, const char *suffix)
{
    static const char ext[] = ".safetensors";
    size_t len = strlen(model_path), ext_len = strlen(ext);
    size_t stem = len >= ext_len && strcmp(model_path + len - ext_len, ext) == 0 ? len - ext_len
                                                                                 : len;
    char *p = malloc(stem + strlen(suffix) + 1);
    if (p) {
        memcpy(p, model_path, stem);
        strcpy(p + stem, suffix);
    }
    return p;
}

/* ---- one epoch ------------------------------------------------------------------ */

/* Float tensors of the items at order[first .. first + n) of epoch. */
static int fill_batch(pnx_trainer *t, int64_t epoch, uint32_t first, int n)
{
    size_t pixels = (size_t)t->side * t->side;
    for (int j = 0; j < n; j++) {
        uint32_t position = first + (uint32_t)j;
        uint32_t item = t->order[position];
        pnx_augment_transform tr;
        pnx_augment_identity(&tr);
        if (t->cfg->augment.enabled) {
            pnx_rng rng;
            pnx_rng_seed(&rng, (uint64_t)t->cfg->seed,
                         PNX_TRAIN_STREAM_AUGMENT | (uint64_t)epoch << 32 | position);
            int rc = pnx_augment_draw(&t->augment, t->side, t->side, &rng, &tr);
            if (rc)
                return rc;
        }
        int rc = pnx_augment_apply(&tr, pnx_cache_image(t->train, item),
                                   pnx_cache_mask(t->train, item), t->side, t->side,
                                   t->images + (size_t)j * pixels, t->masks + (size_t)j * pixels);
        if (rc)
            return rc;
    }
    return PNX_OK;
}

/* BatchNorm's batch statistics need more than one value per channel at the
 * bottom of the U-Net. */
static int batch_trainable(const pnx_trainer *t, int n)
{
    uint32_t bottom = t->side / PNX_UNET_SIZE_MULTIPLE;
    return (uint64_t)n * bottom * bottom > 1;
}

typedef struct epoch_totals {
    int64_t steps;
    int64_t images;
    double loss, bce, dice; /* sums of batch value × batch images */
} epoch_totals;

static int train_epoch(pnx_trainer *t, int64_t epoch, const pnx_adam_hparams *adam,
                       epoch_totals *tot)
{
    const pnx_train_config *cfg = t->cfg;
    memset(tot, 0, sizeof *tot);
    int rc = pnx_train_epoch_order(t->positive, t->n_train, cfg->positive_fraction,
                                   cfg->shuffle, (uint64_t)cfg->seed, epoch, t->order);
    if (rc)
        return rc;
    uint32_t batch = (uint32_t)cfg->batch_size;
    uint32_t n_batches = (t->n_train + batch - 1) / batch;
    char label[64];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch, cfg->epochs);
    pnx_progress *bar = pnx_progress_start(label, n_batches);
    for (uint32_t b = 0; !rc && b < n_batches; b++) {
        uint32_t first = b * batch;
        int n = (int)(t->n_train - first < batch ? t->n_train - first : batch);
        if (t->stop && *t->stop) {
            t->interrupted = 1;
            break;
        }
        pnx_progress_add(bar, 1);
        if (!batch_trainable(t, n)) {
            pnx_log_debug("epoch %lld: a last batch of %d image at %u×%u is left out (batch "
                          "norm needs more than one value per channel)",
                          (long long)epoch, n, t->side, t->side);
            continue;
        }
        pnx_loss loss;
        if ((rc = fill_batch(t, epoch, first, n)) ||
            (rc = pnx_unet_forward(t->model, t->images, n, (int)t->side, (int)t->side, 1,
                                   NULL)) ||
            (rc = pnx_unet_backward(t->model, t->masks, (float)cfg->bce_weight,
                                    (float)cfg->dice_weight, &loss)))
            break;
        if (!isfinite(loss.total)) {
            rc = pnx_fail(PNX_ERANGE,
                          "the training loss became %g at epoch %lld, step %lld: training "
                          "diverged (try a lower --lr)",
                          loss.total, (long long)epoch, (long long)pnx_unet_adam_steps(t->model));
            break;
        }
        if ((rc = pnx_unet_adam_step(t->model, adam)))
            break;
        tot->steps++;
        tot->images += n;
        tot->loss += loss.total * n;
        tot->bce += loss.bce * n;
        tot->dice += loss.dice * n;
    }
    pnx_progress_finish(bar);
    return rc ? pnx_fail_prefix(rc, "epoch %lld", (long long)epoch) : PNX_OK;
}

static int validate(pnx_trainer *t, pnx_val_metrics *vm)
{
    memset(vm, 0, sizeof *vm);
    const pnx_train_config *cfg = t->cfg;
    size_t pixels = (size_t)t->side * t->side;
    uint32_t batch = (uint32_t)cfg->batch_size;
    pnx_augment_transform identity;
    pnx_augment_identity(&identity);
    for (uint32_t first = 0; first < t->n_val; first += batch) {
        int n = (int)(t->n_val - first < batch ? t->n_val - first : batch);
        int rc = PNX_OK;
        for (int j = 0; !rc && j < n; j++)
            rc = pnx_augment_apply(&identity, pnx_cache_image(t->val, first + j),
                                   pnx_cache_mask(t->val, first + j), t->side, t->side,
                                   t->images + (size_t)j * pixels, t->masks + (size_t)j * pixels);
        pnx_loss loss;
        if (rc ||
            (rc = pnx_unet_forward(t->model, t->images, n, (int)t->side, (int)t->side, 0,
                                   t->logits)) ||
            (rc = pnx_unet_loss(t->model, t->masks, (float)cfg->bce_weight,
                                (float)cfg->dice_weight, &loss)))
            return pnx_fail_prefix(rc, "validation");
        vm->loss_sum += loss.total * n;
        for (int j = 0; j < n; j++)
            pnx_val_metrics_add(vm, t->logits + (size_t)j * pixels, t->masks + (size_t)j * pixels,
                                pixels);
    }
    return PNX_OK;
}

static int ensure_parent_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return PNX_OK;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = pnx_mkdir_p(dir, 0755);
    free(dir);
    return rc;
}

static int save_checkpoint(pnx_trainer *t, const char *path, int64_t epoch, int64_t run_id,
                           int with_optimizer)
{
    settings_text s;
    settings_of(t, &s);
    const char *keys[N_SETTINGS + 4];
    const char *values[N_SETTINGS + 4];
    char run_text[32], best_text[40], best_epoch_text[32];
    size_t n = 0;
    for (int i = 0; i < s.n; i++) {
        keys[n] = s.keys[i];
        values[n++] = s.values[i];
    }
    if (run_id > 0) {
        snprintf(run_text, sizeof run_text, "%lld", (long long)run_id);
        keys[n] = META_RUN_ID;
        values[n++] = run_text;
    }
    if (!isnan(t->best_val_dice)) {
        snprintf(best_text, sizeof best_text, "%.17g", t->best_val_dice);
        snprintf(best_epoch_text, sizeof best_epoch_text, "%lld", (long long)t->best_epoch);
        keys[n] = META_BEST_DICE;
        values[n++] = best_text;
        keys[n] = META_BEST_EPOCH;
        values[n++] = best_epoch_text;
    }
    char *history = NULL;
    int rc = pnx_train_curve_format(&t->curve, &history);
    if (rc)
        return rc;
    keys[n] = PNX_TRAIN_CURVE_META;
    values[n++] = history;
    pnx_checkpoint_meta meta = {
        .epoch = epoch,
        .step = pnx_unet_adam_steps(t->model),
        .with_optimizer = with_optimizer,
        .n_extra = n,
        .extra_keys = keys,
        .extra_values = values,
    };
    rc = ensure_parent_folder(path);
    if (!rc)
        rc = pnx_checkpoint_save(t->model, path, &meta);
    free(history);
    return rc ? pnx_fail_prefix(rc, "writing checkpoint %s", path) : PNX_OK;
}

static void log_epoch(const pnx_trainer *t, const pnx_train_epoch_row *row,
                      const pnx_val_metrics *vm)
{
    char val[160] = "no validation images";
    if (vm->images > 0)
        snprintf(val, sizeof val, "val loss %.4f, Dice %.4f (positives %.4f), recall %.4f",
                 row->val_loss, row->val_dice, pnx_val_metrics_dice_positive(vm),
                 row->val_recall);
    pnx_log_info("epoch %lld/%d: train loss %.4f (bce %.4f, dice %.4f) | %s | lr %g | %.1f s, "
                 "%.1f img/s%s",
                 (long long)row->epoch, t->cfg->epochs, row->train_loss, row->train_bce,
                 row->train_dice_loss, val, row->learning_rate, row->seconds, row->images_per_s,
                 row->checkpoint_path ? " | checkpoint written" : "");
}

int pnx_trainer_run(pnx_trainer *t, pnx_db *db, int64_t run_id, pnx_train_summary *sum)
{
    const pnx_train_config *cfg = t->cfg;
    memset(sum, 0, sizeof *sum);
    if (t->interrupted)
        return pnx_fail(PNX_EINVAL, "the trainer was interrupted mid-epoch; open it again "
                                    "with resume to go on from the checkpoint");
    sum->first_epoch = t->next_epoch;
    sum->last_epoch = t->next_epoch - 1;
    sum->train_loss = sum->val_loss = sum->val_dice = sum->val_dice_positive = NAN;
    sum->val_recall = NAN;
    double start = now_s();
    pnx_adam_hparams adam = PNX_ADAM_DEFAULTS;
    adam.lr = cfg->learning_rate;
    adam.weight_decay = cfg->weight_decay;
    char *best_path = pnx_train_sibling_path(cfg->model, PNX_TRAIN_BEST_SUFFIX);
    char *curve_path = pnx_train_sibling_path(cfg->model, PNX_TRAIN_CURVE_SUFFIX);
    if (!best_path || !curve_path) {
        free(best_path);
        free(curve_path);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    int rc = PNX_OK;
    for (int64_t epoch = t->next_epoch; !rc && epoch <= cfg->epochs; epoch++) {
        double t0 = now_s();
        epoch_totals tot;
        double train_s;
        pnx_val_metrics vm;
        if ((rc = train_epoch(t, epoch, &adam, &tot)) || t->interrupted)
            break;
        train_s = now_s() - t0;
        if ((rc = validate(t, &vm)))
            break;
        pnx_train_epoch_row row = {
            .epoch = epoch,
            .steps = tot.steps,
            .train_loss = tot.images ? tot.loss / (double)tot.images : NAN,
            .train_bce = tot.images ? tot.bce / (double)tot.images : NAN,
            .train_dice_loss = tot.images ? tot.dice / (double)tot.images : NAN,
            .val_loss = pnx_val_metrics_loss(&vm),
            .val_dice = pnx_val_metrics_dice(&vm),
            .val_recall = pnx_val_metrics_recall(&vm),
            .learning_rate = cfg->learning_rate,
            .images_per_s = train_s > 0 ? (double)tot.images / train_s : NAN,
        };
        pnx_train_curve_point point = {epoch, row.train_loss, row.val_loss, row.val_dice};
        if ((rc = pnx_train_curve_add(&t->curve, &point)) ||
            (rc = ensure_parent_folder(curve_path)) ||
            (rc = pnx_train_curve_write_svg(&t->curve, curve_path)))
            break;
        if (!isnan(row.val_dice) && (isnan(t->best_val_dice) || row.val_dice > t->best_val_dice)) {
            t->best_val_dice = row.val_dice;
            t->best_epoch = epoch;
            if ((rc = save_checkpoint(t, best_path, epoch, run_id, 0)))
                break;
        }
        int last = epoch == cfg->epochs;
        if (last || epoch % cfg->checkpoint_every == 0) {
            if ((rc = save_checkpoint(t, cfg->model, epoch, run_id, 1)))
                break;
            row.checkpoint_path = cfg->model;
        }
        row.seconds = now_s() - t0;
        if (db && (rc = pnx_db_train_epoch_insert(db, run_id, &row)))
            break;
        log_epoch(t, &row, &vm);
        sum->last_epoch = epoch;
        sum->train_loss = row.train_loss;
        sum->val_loss = row.val_loss;
        sum->val_dice = row.val_dice;
        sum->val_dice_positive = pnx_val_metrics_dice_positive(&vm);
        sum->val_recall = row.val_recall;
    }
    t->next_epoch = sum->last_epoch + 1;
    sum->steps = pnx_unet_adam_steps(t->model);
    sum->best_val_dice = t->best_val_dice;
    sum->best_epoch = t->best_epoch;
    sum->seconds = now_s() - start;
    sum->interrupted = t->interrupted;
    /* The hash of what --model holds now: this call's last checkpoint, or
     * the one a resume found complete. */
    if (!rc && file_exists(cfg->model))
        rc = pnx_sha256_file_hex(cfg->model, sum->model_sha256);
    free(best_path);
    free(curve_path);
    return rc;
}
