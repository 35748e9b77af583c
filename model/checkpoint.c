/*
 * model/checkpoint.c — saving and loading the U-Net as safetensors (see
 * checkpoint.h). Tensors travel through host staging buffers, so the same
 * code serves every backend.
 */
#include "model/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "model/unet_internal.h"
#include "pneumoseg_version.h"

#define META_ARCH "pneumoseg.architecture"
#define META_BASE "pneumoseg.base_width"
#define META_VERSION "pneumoseg.version"
#define META_EPOCH "pneumoseg.epoch"
#define META_STEP "pneumoseg.step"
#define META_ADAM_STEP "pneumoseg.adam_step"
#define NAME_EXP_AVG PNX_CKPT_OPTIMIZER_PREFIX "exp_avg."
#define NAME_EXP_AVG_SQ PNX_CKPT_OPTIMIZER_PREFIX "exp_avg_sq."

/* Host copies of everything a checkpoint holds. */
typedef struct staging {
    float *params, *running, *m, *v;
    char (*names_m)[UNET_NAME_MAX + 32];
    char (*names_v)[UNET_NAME_MAX + 32];
} staging;

static void staging_free(staging *s)
{
    free(s->params);
    free(s->running);
    free(s->m);
    free(s->v);
    free(s->names_m);
    free(s->names_v);
}

static int meta_int(pnx_st_writer *w, const char *key, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return pnx_st_writer_meta(w, key, buf);
}

static int add_state(pnx_st_writer *w, pnx_unet *m, staging *s, int with_optimizer)
{
    int rc = 0;
    for (int i = 0; !rc && i < m->n_tensors; i++) {
        const unet_tensor *t = &m->tensors[i];
        if (t->kind == PNX_UNET_COUNTER) {
            rc = pnx_st_writer_add(w, t->name, PNX_ST_I64, 0, NULL, &m->counters[t->offset]);
            continue;
        }
        const float *src =
            (t->kind == PNX_UNET_RUNNING ? s->running : s->params) + t->offset;
        rc = pnx_st_writer_add(w, t->name, PNX_ST_F32, t->ndim, t->shape, src);
        if (rc || !with_optimizer || t->kind != PNX_UNET_PARAMETER)
            continue;
        snprintf(s->names_m[i], sizeof s->names_m[i], "%s%s", NAME_EXP_AVG, t->name);
        snprintf(s->names_v[i], sizeof s->names_v[i], "%s%s", NAME_EXP_AVG_SQ, t->name);
        rc = pnx_st_writer_add(w, s->names_m[i], PNX_ST_F32, t->ndim, t->shape, s->m + t->offset);
        if (!rc)
            rc = pnx_st_writer_add(w, s->names_v[i], PNX_ST_F32, t->ndim, t->shape,
                                   s->v + t->offset);
    }
    return rc;
}

int pnx_checkpoint_save(pnx_unet *m, const char *path, const pnx_checkpoint_meta *meta)
{
    const pnx_checkpoint_meta none = {-1, -1, 0, 0, NULL, NULL};
    if (!meta)
        meta = &none;
    int with_optimizer = meta->with_optimizer && m->adam_m != NULL;
    pnx_backend *be = m->be;
    staging s = {0};
    size_t pbytes = m->n_params * sizeof(float), rbytes = m->n_running * sizeof(float);
    s.params = malloc(pbytes);
    s.running = malloc(rbytes);
    s.names_m = calloc((size_t)m->n_tensors, sizeof *s.names_m);
    s.names_v = calloc((size_t)m->n_tensors, sizeof *s.names_v);
    if (with_optimizer) {
        s.m = malloc(pbytes);
        s.v = malloc(pbytes);
    }
    int rc = 0;
    if (!s.params || !s.running || !s.names_m || !s.names_v ||
        (with_optimizer && (!s.m || !s.v)))
        rc = pnx_fail(PNX_ENOMEM, "out of memory saving %s", path);
    if (!rc)
        rc = be->ops->download(be, s.params, m->params, pbytes);
    if (!rc)
        rc = be->ops->download(be, s.running, m->running, rbytes);
    if (!rc && with_optimizer)
        rc = be->ops->download(be, s.m, m->adam_m, pbytes);
    if (!rc && with_optimizer)
        rc = be->ops->download(be, s.v, m->adam_v, pbytes);

    pnx_st_writer *w = NULL;
    if (!rc)
        rc = pnx_st_writer_create(&w);
    if (!rc)
        rc = pnx_st_writer_meta(w, "format", "pt");
    if (!rc)
        rc = pnx_st_writer_meta(w, META_ARCH, PNX_UNET_ARCHITECTURE);
    if (!rc)
        rc = meta_int(w, META_BASE, m->base);
    if (!rc)
        rc = pnx_st_writer_meta(w, META_VERSION, PNEUMOSEG_VERSION);
    if (!rc && meta->epoch >= 0)
        rc = meta_int(w, META_EPOCH, meta->epoch);
    if (!rc && meta->step >= 0)
        rc = meta_int(w, META_STEP, meta->step);
    if (!rc && with_optimizer)
        rc = meta_int(w, META_ADAM_STEP, m->adam_steps);
    for (size_t i = 0; !rc && i < meta->n_extra; i++)
        rc = pnx_st_writer_meta(w, meta->extra_keys[i], meta->extra_values[i]);
    if (!rc)
        rc = add_state(w, m, &s, with_optimizer);
    if (!rc)
        rc = pnx_st_writer_write(w, path);
    pnx_st_writer_free(w);
    staging_free(&s);
    if (rc)
        return pnx_fail_prefix(rc, "saving checkpoint %s", path);
    return 0;
}

/* A decimal int64 ≥ 0 with nothing around it. */
static int parse_count(const char *text, int64_t *out)
{
    if (!text || !*text || *text == '-' || *text == '+' || *text == ' ')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int read_info(const pnx_st_file *f, pnx_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    info->epoch = info->step = -1;
    const char *arch = pnx_st_meta(f, META_ARCH);
    if (arch && strcmp(arch, PNX_UNET_ARCHITECTURE) != 0)
        return pnx_fail(PNX_EUNSUPPORTED, "architecture '%s' is not %s", arch,
                        PNX_UNET_ARCHITECTURE);
    info->written_by_pneumoseg = arch != NULL;
    const char *text;
    int64_t v;
    if ((text = pnx_st_meta(f, META_EPOCH)) != NULL) {
        if (parse_count(text, &v))
            return pnx_fail(PNX_EFORMAT, "metadata %s='%s' is not a count", META_EPOCH, text);
        info->epoch = v;
    }
    if ((text = pnx_st_meta(f, META_STEP)) != NULL) {
        if (parse_count(text, &v))
            return pnx_fail(PNX_EFORMAT, "metadata %s='%s' is not a count", META_STEP, text);
        info->step = v;
    }
    /* The shape of the first conv says the width; metadata, when present,
     * must agree. */
    const pnx_st_tensor *first = pnx_st_find(f, "enc1_1.0.weight");
    if (!first)
        return pnx_fail(PNX_ENOTFOUND,
                        "tensor enc1_1.0.weight is missing: not a checkpoint of the seed's U-Net");
    if (first->ndim != 4 || first->shape[0] < 1 || first->shape[0] > PNX_UNET_MAX_BASE_WIDTH)
        return pnx_fail(PNX_EFORMAT, "tensor enc1_1.0.weight has an unexpected shape");
    info->base_width = (int)first->shape[0];
    if ((text = pnx_st_meta(f, META_BASE)) != NULL) {
        if (parse_count(text, &v) || v != info->base_width)
            return pnx_fail(PNX_EFORMAT,
                            "metadata %s='%s' disagrees with enc1_1.0.weight (base width %d)",
                            META_BASE, text, info->base_width);
    }
    info->has_optimizer = pnx_st_meta(f, META_ADAM_STEP) != NULL;
    return 0;
}

int pnx_checkpoint_peek(const char *path, pnx_checkpoint_info *info)
{
    pnx_st_file *f = NULL;
    int rc = pnx_st_open(&f, path);
    if (!rc)
        rc = read_info(f, info);
    pnx_st_close(f);
    if (rc)
        return pnx_fail_prefix(rc, "checkpoint %s", path);
    return 0;
}

static int is_known_name(const pnx_unet *m, const char *name, int with_optimizer)
{
    const char *base = name;
    if (strncmp(name, NAME_EXP_AVG, strlen(NAME_EXP_AVG)) == 0)
        base = name + strlen(NAME_EXP_AVG);
    else if (strncmp(name, NAME_EXP_AVG_SQ, strlen(NAME_EXP_AVG_SQ)) == 0)
        base = name + strlen(NAME_EXP_AVG_SQ);
    long i = pnx_unet_tensor_find(m, base);
    if (i < 0)
        return 0;
    if (base == name)
        return 1;
    return with_optimizer && m->tensors[i].kind == PNX_UNET_PARAMETER;
}

/* Copies every tensor of f into host staging, all checked first so that a
 * bad file leaves the model untouched. */
static int load_state(pnx_unet *m, const pnx_st_file *f, const pnx_checkpoint_info *info)
{
    for (size_t i = 0; i < pnx_st_count(f); i++) {
        const char *name = pnx_st_at(f, i)->name;
        if (!is_known_name(m, name, info->has_optimizer))
            return pnx_fail(PNX_EFORMAT, "unexpected tensor %s (not in the U-Net of base width %d)",
                            name, m->base);
    }
    staging s = {0};
    size_t pbytes = m->n_params * sizeof(float);
    int64_t *counters = calloc((size_t)m->n_bn, sizeof *counters);
    s.params = malloc(pbytes);
    s.running = malloc(m->n_running * sizeof(float));
    if (info->has_optimizer) {
        s.m = malloc(pbytes);
        s.v = malloc(pbytes);
    }
    int rc = 0;
    if (!counters || !s.params || !s.running || (info->has_optimizer && (!s.m || !s.v)))
        rc = pnx_fail(PNX_ENOMEM, "out of memory loading a checkpoint");
    for (int i = 0; !rc && i < m->n_tensors; i++) {
        const unet_tensor *t = &m->tensors[i];
        const pnx_st_tensor *st = NULL;
        if (t->kind == PNX_UNET_COUNTER) {
            rc = pnx_st_expect(f, t->name, PNX_ST_I64, 0, NULL, &st);
            if (!rc)
                rc = pnx_st_copy_i64(st, &counters[t->offset], 1);
            if (!rc && counters[t->offset] < 0)
                rc = pnx_fail(PNX_EFORMAT, "tensor %s is negative", t->name);
            continue;
        }
        float *dst = (t->kind == PNX_UNET_RUNNING ? s.running : s.params) + t->offset;
        rc = pnx_st_expect(f, t->name, PNX_ST_F32, t->ndim, t->shape, &st);
        if (!rc)
            rc = pnx_st_copy_f32(st, dst, t->count);
        if (rc || !info->has_optimizer || t->kind != PNX_UNET_PARAMETER)
            continue;
        char name[UNET_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s%s", NAME_EXP_AVG, t->name);
        rc = pnx_st_expect(f, name, PNX_ST_F32, t->ndim, t->shape, &st);
        if (!rc)
            rc = pnx_st_copy_f32(st, s.m + t->offset, t->count);
        snprintf(name, sizeof name, "%s%s", NAME_EXP_AVG_SQ, t->name);
        if (!rc)
            rc = pnx_st_expect(f, name, PNX_ST_F32, t->ndim, t->shape, &st);
        if (!rc)
            rc = pnx_st_copy_f32(st, s.v + t->offset, t->count);
    }
    int64_t adam_step = 0;
    if (!rc && info->has_optimizer &&
        parse_count(pnx_st_meta(f, META_ADAM_STEP), &adam_step) != 0)
        rc = pnx_fail(PNX_EFORMAT, "metadata %s is not a count", META_ADAM_STEP);

    pnx_backend *be = m->be;
    if (!rc)
        rc = be->ops->upload(be, m->params, s.params, pbytes);
    if (!rc)
        rc = be->ops->upload(be, m->running, s.running, m->n_running * sizeof(float));
    if (!rc) {
        memcpy(m->counters, counters, (size_t)m->n_bn * sizeof *counters);
        if (info->has_optimizer) {
            rc = pnx_unet_ensure_adam_state(m);
            if (!rc)
                rc = be->ops->upload(be, m->adam_m, s.m, pbytes);
            if (!rc)
                rc = be->ops->upload(be, m->adam_v, s.v, pbytes);
            m->adam_steps = adam_step;
        } else {
            pnx_unet_reset_adam(m);
        }
    }
    free(counters);
    staging_free(&s);
    return rc;
}

int pnx_checkpoint_load_into(pnx_unet *m, const char *path, pnx_checkpoint_info *info_out)
{
    pnx_st_file *f = NULL;
    pnx_checkpoint_info info;
    int rc = pnx_st_open(&f, path);
    if (!rc)
        rc = read_info(f, &info);
    if (!rc && info.base_width != m->base)
        rc = pnx_fail(PNX_EFORMAT, "base width %d, but the model has %d", info.base_width,
                      m->base);
    if (!rc)
        rc = load_state(m, f, &info);
    pnx_st_close(f);
    if (rc)
        return pnx_fail_prefix(rc, "checkpoint %s", path);
    if (info_out)
        *info_out = info;
    return 0;
}

int pnx_checkpoint_load(pnx_unet **out, pnx_backend *be, const char *path,
                        pnx_checkpoint_info *info_out)
{
    *out = NULL;
    pnx_checkpoint_info info;
    int rc = pnx_checkpoint_peek(path, &info);
    if (rc)
        return rc;
    pnx_unet *m = NULL;
    rc = pnx_unet_create(&m, be, info.base_width);
    if (!rc)
        rc = pnx_checkpoint_load_into(m, path, info_out);
    if (rc) {
        pnx_unet_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}
