/*
 * model/unet_plan.c — the U-Net's memory for one batch shape: where every
 * activation, gradient and per-layer buffer lives. Buffers are placed by
 * lifetime in a few large backend allocations (see unet_internal.h), so a
 * training loop allocates nothing after its first step. Activation-format
 * buffers (activations, their gradients, `pre`, the scratch, logits and
 * target) take be->act_size bytes an element; BatchNorm's saved statistics
 * are float32 and max-pool's argmax one byte. When the memory runs out on a
 * backend that reports its free memory, the error names the largest batch
 * that fits.
 */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Bytes of count activation elements, rounded up to the alignment. */
static size_t act_bytes(const pnx_unet *m, size_t count)
{
    return (count * m->be->act_size + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
}

/* The target (N,1,H,W) for the loss lives after the logits, in the same
 * buffer (see carve_acts). */
float *pnx_unet_target_buffer(pnx_unet *m)
{
    char *logits = (char *)m->acts[m->logits_act].data;
    return (float *)(logits + act_bytes(m, pnx_unet_act_count(m, m->logits_act)));
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
        bytes[a] = (a == m->logits_act ? 2 : 1) * act_bytes(m, pnx_unet_act_count(m, a));
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
        bytes[a] = a == m->input_act ? 0 : act_bytes(m, pnx_unet_act_count(m, a));
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
        l->pre = carve(c, act_bytes(m, count));
        if (count > largest)
            largest = count;
    }
    return largest;
}

/* The two blocks: their bytes, and with base not NULL the pointers into
 * them. */
static size_t carve_act_block(pnx_unet *m, char *base, int training)
{
    carver c = {base, 0};
    carve_acts(m, &c, training);
    return c.used;
}

/* The scratch holds the largest CBR output's gradient for dBN. */
static size_t carve_train_block(pnx_unet *m, char *base)
{
    carver c = {base, 0};
    size_t largest = carve_training(m, &c);
    m->scratch = carve(&c, act_bytes(m, largest));
    return c.used;
}

/* Bytes pnx_unet_plan would allocate for batch n at h × w. Measuring sets
 * m's buffer pointers (to NULL), so m must hold no plan. */
static size_t plan_bytes(pnx_unet *m, int n, int h, int w, int training)
{
    assert(!m->act_block && !m->train_block);
    m->n = n;
    m->h = h;
    m->w = w;
    size_t bytes = carve_act_block(m, NULL, training);
    if (training)
        bytes += carve_train_block(m, NULL);
    pnx_unet_free_plan(m);
    return bytes;
}

int pnx_unet_batch_that_fits(size_t free_bytes, size_t bytes_1, size_t bytes_2)
{
    if (bytes_1 > free_bytes)
        return 0;
    size_t per_sample = bytes_2 > bytes_1 ? bytes_2 - bytes_1 : 0;
    if (per_sample == 0)
        return INT_MAX;
    size_t fixed = bytes_1 > per_sample ? bytes_1 - per_sample : 0;
    size_t n = (free_bytes - fixed) / per_sample;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* The largest batch at h × w whose plan, and for training the Adam state
 * still to come, fits in free_bytes. The linear estimate is corrected by
 * measuring, since alignment makes the bytes only nearly linear in n. */
static int batch_that_fits(pnx_unet *m, int h, int w, int training, size_t free_bytes)
{
    size_t adam = training && !m->adam_m ? 2 * m->n_params * sizeof(float) : 0;
    if (adam > free_bytes)
        return 0;
    free_bytes -= adam;
    int n = pnx_unet_batch_that_fits(free_bytes, plan_bytes(m, 1, h, w, training),
                                     plan_bytes(m, 2, h, w, training));
    /* Past pnx_unet_forward's own size limit nothing is measured. */
    double limit = 1e13 / ((double)h * w * 16.0 * m->base);
    if (limit > INT_MAX - 1.0)
        limit = INT_MAX - 1.0;
    if (n > limit)
        n = (int)limit;
    while (n > 0 && plan_bytes(m, n, h, w, training) > free_bytes)
        n--;
    while (n < limit && plan_bytes(m, n + 1, h, w, training) <= free_bytes)
        n++;
    return n;
}

/* After an allocation failed: frees the plan and fails with the
 * allocation's message, naming the largest batch that fits in the free
 * memory when the backend reports it and that batch is smaller. */
static int plan_failed(pnx_unet *m, int rc, const char *what, int n, int h, int w, int training)
{
    char cause[PNX_ERRMSG_MAX];
    snprintf(cause, sizeof cause, "%s", pnx_errmsg());
    pnx_unet_free_plan(m);
    pnx_backend *be = m->be;
    size_t free_bytes = 0, total_bytes = 0;
    if (be->ops->mem_info && be->ops->mem_info(be, &free_bytes, &total_bytes) == 0) {
        int fits = batch_that_fits(m, h, w, training, free_bytes);
        double mib = (double)free_bytes / (1 << 20);
        if (fits == 0)
            return pnx_fail(rc, "%s for a batch of %d at %dx%d: %s; not even a batch of 1 fits "
                                "in the %.1f MiB free", what, n, w, h, cause, mib);
        if (fits < n)
            return pnx_fail(rc, "%s for a batch of %d at %dx%d: %s; the largest batch that fits "
                                "in the %.1f MiB free is %d", what, n, w, h, cause, mib, fits);
    }
    return pnx_fail(rc, "%s for a batch of %d at %dx%d: %s", what, n, w, h, cause);
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
        int rc = be->ops->alloc(be, carve_act_block(m, NULL, training), &m->act_block);
        if (rc)
            return plan_failed(m, rc, "activations", n, h, w, training);
        carve_act_block(m, m->act_block, training);
        m->acts_kept = training;
    }
    if (training && !m->planned_training) {
        int rc = be->ops->alloc(be, carve_train_block(m, NULL), &m->train_block);
        if (rc)
            return plan_failed(m, rc, "training buffers", n, h, w, training);
        carve_train_block(m, m->train_block);
        m->planned_training = 1;
    }
    return 0;
}
