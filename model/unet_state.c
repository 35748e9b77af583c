/*
 * model/unet_state.c — the U-Net's named tensors (the PyTorch state dict):
 * lookup, copying in and out of host memory, and PyTorch's default
 * initialisation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/unet_internal.h"

size_t pnx_unet_tensor_count(const pnx_unet *m)
{
    return (size_t)m->n_tensors;
}

void pnx_unet_tensor_at(const pnx_unet *m, size_t i, pnx_unet_tensor_info *info)
{
    const unet_tensor *t = &m->tensors[i];
    info->name = t->name;
    info->kind = t->kind;
    info->ndim = t->ndim;
    memcpy(info->shape, t->shape, sizeof info->shape);
    info->count = t->count;
}

long pnx_unet_tensor_find(const pnx_unet *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

size_t pnx_unet_parameter_count(const pnx_unet *m)
{
    return m->n_params;
}

/* The backend pointer behind (name, view), checking kind and count. */
static int locate(const pnx_unet *m, const char *name, pnx_unet_view view, size_t count,
                  float **where)
{
    long i = pnx_unet_tensor_find(m, name);
    if (i < 0)
        return pnx_fail(PNX_ENOTFOUND, "the U-Net has no tensor %s", name);
    const unet_tensor *t = &m->tensors[i];
    if (t->kind == PNX_UNET_COUNTER)
        return pnx_fail(PNX_EINVAL, "%s is an int64 counter", name);
    if (count != t->count)
        return pnx_fail(PNX_EINVAL, "%s has %zu elements, not %zu", name, t->count, count);
    if (t->kind == PNX_UNET_RUNNING) {
        if (view != PNX_UNET_VALUE)
            return pnx_fail(PNX_EINVAL, "%s is a running statistic: no gradient or Adam state",
                            name);
        *where = m->running + t->offset;
        return 0;
    }
    float *base = NULL;
    switch (view) {
    case PNX_UNET_VALUE: base = m->params; break;
    case PNX_UNET_GRAD: base = m->grads; break;
    case PNX_UNET_ADAM_M: base = m->adam_m; break;
    case PNX_UNET_ADAM_V: base = m->adam_v; break;
    }
    if (!base)
        return pnx_fail(PNX_EINVAL, view == PNX_UNET_GRAD
                                        ? "the U-Net has no gradients yet (no training step)"
                                        : "the U-Net has no Adam state yet");
    *where = base + t->offset;
    return 0;
}

int pnx_unet_read(pnx_unet *m, const char *name, pnx_unet_view view, float *host, size_t count)
{
    float *src = NULL;
    int rc = locate(m, name, view, count, &src);
    if (rc)
        return rc;
    return m->be->ops->download(m->be, host, src, count * sizeof(float));
}

int pnx_unet_write(pnx_unet *m, const char *name, pnx_unet_view view, const float *host,
                   size_t count)
{
    if (view == PNX_UNET_ADAM_M || view == PNX_UNET_ADAM_V) {
        int rc = pnx_unet_ensure_adam_state(m);
        if (rc)
            return rc;
    }
    float *dst = NULL;
    int rc = locate(m, name, view, count, &dst);
    if (rc)
        return rc;
    return m->be->ops->upload(m->be, dst, host, count * sizeof(float));
}

static const unet_tensor *find_counter(const pnx_unet *m, const char *name)
{
    long i = pnx_unet_tensor_find(m, name);
    if (i < 0 || m->tensors[i].kind != PNX_UNET_COUNTER) {
        pnx_fail(PNX_ENOTFOUND, "the U-Net has no counter %s", name);
        return NULL;
    }
    return &m->tensors[i];
}

int pnx_unet_read_counter(const pnx_unet *m, const char *name, int64_t *value)
{
    const unet_tensor *t = find_counter(m, name);
    if (!t)
        return PNX_ENOTFOUND;
    *value = m->counters[t->offset];
    return 0;
}

int pnx_unet_write_counter(pnx_unet *m, const char *name, int64_t value)
{
    const unet_tensor *t = find_counter(m, name);
    if (!t)
        return PNX_ENOTFOUND;
    if (value < 0)
        return pnx_fail(PNX_EINVAL, "%s: negative count %lld", name, (long long)value);
    m->counters[t->offset] = value;
    return 0;
}

int pnx_unet_set_adam_steps(pnx_unet *m, int64_t steps)
{
    if (steps < 0)
        return pnx_fail(PNX_EINVAL, "negative Adam step count");
    m->adam_steps = steps;
    return 0;
}

/* PyTorch's fan_in: weight.size(1) × kernel area. For ConvTranspose2d the
 * weight is (Cin, Cout, k, k), so this is Cout × 4 — PyTorch's rule, kept. */
static double fan_in_of(const unet_tensor *w)
{
    return (double)w->shape[1] * (double)w->shape[2] * (double)w->shape[3];
}

int pnx_unet_init(pnx_unet *m, uint64_t seed)
{
    float *host = calloc(m->n_params ? m->n_params : 1, sizeof *host);
    float *running = calloc(m->n_running ? m->n_running : 1, sizeof *running);
    if (!host || !running) {
        free(host);
        free(running);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    pnx_rng rng;
    pnx_rng_seed(&rng, seed, 0);
    double bound = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const unet_tensor *t = &m->tensors[i];
        size_t len = strlen(t->name);
        int bn_weight = len > 9 && strcmp(t->name + len - 9, ".1.weight") == 0;
        int bn_bias = len > 7 && strcmp(t->name + len - 7, ".1.bias") == 0;
        if (t->kind == PNX_UNET_COUNTER) {
            m->counters[t->offset] = 0;
        } else if (t->kind == PNX_UNET_RUNNING) {
            float v = strstr(t->name, "running_var") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->count; k++)
                running[t->offset + k] = v;
        } else if (bn_weight || bn_bias) {
            float v = bn_weight ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->count; k++)
                host[t->offset + k] = v;
        } else {
            /* A conv weight sets the bound for itself and the bias after it:
             * kaiming_uniform(a=√5) gives ±sqrt(6/((1+5)·fan_in)) = ±1/sqrt(fan_in). */
            if (t->ndim == 4)
                bound = 1.0 / sqrt(fan_in_of(t));
            for (size_t k = 0; k < t->count; k++)
                host[t->offset + k] = (float)(bound * (2.0 * pnx_rng_uniform(&rng) - 1.0));
        }
    }
    pnx_backend *be = m->be;
    int rc = be->ops->upload(be, m->params, host, m->n_params * sizeof(float));
    if (!rc)
        rc = be->ops->upload(be, m->running, running, m->n_running * sizeof(float));
    free(host);
    free(running);
    pnx_unet_reset_adam(m);
    return rc;
}
