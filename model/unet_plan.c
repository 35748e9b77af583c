/*
 * model/unet_plan.c — the U-Net's memory for one batch shape: where every
 * activation, gradient and per-layer buffer lives. Buffers are placed by
 * lifetime in a few large backend allocations (see unet_internal.h), so a
 * training loop allocates nothing after its first step.
 */
#include <stdlib.h>

#include "common/error.h"
#include "model/unet_internal.h"

#define ALIGN_BYTES 64

void pnx_unet_free_plan(pnx_unet *m)
{
    if (m->act_block)
        m->be->ops->release(m->be, m->act_block);
    if (m->train_block)
        m->be->ops->release(m->be, m->train_block);
    m->act_block = m->train_block = NULL;
    m->scratch = NULL;
    for (int i = 0; i < m->n_acts; i++)
        m->acts[i].data = m->acts[i].grad = NULL;
    for (int i = 0; i < m->n_layers; i++) {
        unet_layer *l = &m->layers[i];
        l->pre = l->save_mean = l->save_invstd = NULL;
        l->argmax = NULL;
    }
    m->n = m->h = m->w = 0;
    m->planned_training = 0;
    m->acts_kept = 0;
    m->have_forward = 0;
}

/* Carves aligned pieces out of one block: a first pass with base NULL only
 * measures. */
typedef struct carver {
    char *base;
    size_t used;
} carver;

static void *carve(carver *c, size_t bytes)
{
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (bytes + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
    return p;
}

/* The target (N,1,H,W) for the loss lives after the activations. */
float *pnx_unet_target_buffer(pnx_unet *m)
{
    return m->acts[m->logits_act].data + pnx_unet_act_count(m, m->logits_act);
}

/* Places n buffers of bytes[i], each alive over the steps [start[i], end[i]],
 * in one arena so that buffers alive at the same step never overlap: first
 * fit, largest first. Buffers with bytes 0 are left out. Returns the arena
 * size; offset[i] receives each buffer's place. */
static size_t first_fit(int n, const size_t *bytes, const int *start, const int *end,
                        size_t *offset)
{
    int order[UNET_MAX_ACTS], count = 0;
    for (int i = 0; i < n; i++)
        if (bytes[i])
            order[count++] = i;
    for (int i = 1; i < count; i++)
        for (int k = i; k > 0 && bytes[order[k]] > bytes[order[k - 1]]; k--) {
            int tmp = order[k];
            order[k] = order[k - 1];
            order[k - 1] = tmp;
        }
    size_t arena = 0;
    for (int i = 0; i < count; i++) {
        int a = order[i];
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int k = 0; k < i; k++) {
                int b = order[k];
                int same_time = start[a] <= end[b] && start[b] <= end[a];
                int same_bytes = off < offset[b] + bytes[b] && offset[b] < off + bytes[a];
                if (same_time && same_bytes) {
                    off = offset[b] + bytes[b];
                    moved = 1;
                }
            }
        }
        offset[a] = off;
        if (off + bytes[a] > arena)
            arena = off + bytes[a];
    }
    return arena;
}

static size_t aligned_bytes(size_t floats)
{
    return (floats * sizeof(float) + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
}

/* Activations. For training every one is kept for backward. For inference
 * an activation lives from the layer that makes it (step i) to its last
 * consumer, and the logits to the end (the loss reads them), so most share
 * memory. */
static void carve_acts(pnx_unet *m, carver *c, int training)
{
    const int L = m->n_layers;
    size_t bytes[UNET_MAX_ACTS], offset[UNET_MAX_ACTS] = {0};
    int start[UNET_MAX_ACTS], end[UNET_MAX_ACTS];
    for (int a = 0; a < m->n_acts; a++) {
        /* The logits are followed by room for the target. */
        bytes[a] = aligned_bytes((a == m->logits_act ? 2 : 1) * pnx_unet_act_count(m, a));
        start[a] = training ? -1 : L;
        end[a] = training ? L : -1;
    }
    start[m->input_act] = -1;
    for (int i = 0; i < L; i++) {
        const unet_layer *l = &m->layers[i];
        if (i < start[l->out])
            start[l->out] = i;
        if (i > end[l->in])
            end[l->in] = i;
        if (l->kind == LAYER_CONCAT && i > end[l->in2])
            end[l->in2] = i;
    }
    end[m->logits_act] = L;
    char *arena = carve(c, first_fit(m->n_acts, bytes, start, end, offset));
    for (int a = 0; a < m->n_acts; a++)
        m->acts[a].data = arena ? (float *)(arena + offset[a]) : NULL;
    for (int i = 0; i < L; i++) {
        unet_layer *l = &m->layers[i];
        if (l->kind == LAYER_CBR) {
            l->save_mean = carve(c, (size_t)l->cout * sizeof(float));
            l->save_invstd = carve(c, (size_t)l->cout * sizeof(float));
        } else if (l->kind == LAYER_POOL) {
            l->argmax = carve(c, pnx_unet_act_count(m, l->out));
        }
    }
}

/* An activation's gradient is alive from the backward step of its last
 * consumer (which writes it; the loss writes the logits' before step 0) to
 * that of its producer (which reads it last). Gradients whose lifetimes do
 * not overlap share memory. Every first write overwrites (see
 * backward_layer), so reused memory needs no clearing. */
static size_t carve_training(pnx_unet *m, carver *c)
{
    const int L = m->n_layers;
    size_t bytes[UNET_MAX_ACTS], offset[UNET_MAX_ACTS] = {0};
    int start[UNET_MAX_ACTS], end[UNET_MAX_ACTS];
    for (int a = 0; a < m->n_acts; a++) {
        bytes[a] = a == m->input_act ? 0 : aligned_bytes(pnx_unet_act_count(m, a));
        start[a] = L;
        end[a] = -1;
    }
    for (int i = 0; i < L; i++) {
        const unet_layer *l = &m->layers[i];
        int t = L - 1 - i; /* the backward step of layer i */
        end[l->out] = t;
        if (t < start[l->in])
            start[l->in] = t;
        if (l->kind == LAYER_CONCAT && t < start[l->in2])
            start[l->in2] = t;
    }
    start[m->logits_act] = -1;
    char *arena = carve(c, first_fit(m->n_acts, bytes, start, end, offset));
    for (int a = 0; a < m->n_acts; a++)
        m->acts[a].grad = arena && a != m->input_act ? (float *)(arena + offset[a]) : NULL;
    size_t largest = 0;
    for (int i = 0; i < L; i++) {
        unet_layer *l = &m->layers[i];
        if (l->kind != LAYER_CBR)
            continue;
        size_t count = pnx_unet_act_count(m, l->out);
        l->pre = carve(c, count * sizeof(float));
        if (count > largest)
            largest = count;
    }
    return largest;
}

int pnx_unet_plan(pnx_unet *m, int n, int h, int w, int training)
{
    /* A new shape, or training on activations laid out for inference only,
     * starts over. */
    if (m->act_block && (m->n != n || m->h != h || m->w != w || (training && !m->acts_kept)))
        pnx_unet_free_plan(m);
    pnx_backend *be = m->be;
    if (training && !m->grads) {
        int rc = be->ops->alloc(be, m->n_params * sizeof(float), (void **)&m->grads);
        if (rc)
            return pnx_fail_prefix(rc, "parameter gradients");
    }
    if (!m->act_block) {
        m->n = n;
        m->h = h;
        m->w = w;
        carver measure = {NULL, 0};
        carve_acts(m, &measure, training);
        int rc = be->ops->alloc(be, measure.used, &m->act_block);
        if (rc) {
            pnx_unet_free_plan(m);
            return pnx_fail_prefix(rc, "activations for a batch of %d at %dx%d", n, w, h);
        }
        carver real = {m->act_block, 0};
        carve_acts(m, &real, training);
        m->acts_kept = training;
    }
    if (training && !m->planned_training) {
        carver measure = {NULL, 0};
        size_t largest = carve_training(m, &measure);
        carve(&measure, largest * sizeof(float));
        int rc = be->ops->alloc(be, measure.used, &m->train_block);
        if (rc) {
            pnx_unet_free_plan(m);
            return pnx_fail_prefix(rc, "training buffers for a batch of %d at %dx%d", n, w, h);
        }
        carver real = {m->train_block, 0};
        largest = carve_training(m, &real);
        m->scratch = carve(&real, largest * sizeof(float));
        m->planned_training = 1;
    }
    return 0;
}
