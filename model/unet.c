/*
 * model/unet.c — the seed's U-Net as a list of layers: building the graph,
 * planning memory for a batch shape, forward, loss, backward and Adam, all
 * through the backend's ops (model/backend.h). Each CBR block is one conv
 * and one fused BatchNorm+ReLU op each way. Activations are in the
 * backend's format: the input, the target and the logits cross to and from
 * the host only through act_upload / act_download; parameters are float32.
 */
#include "model/unet.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/unet_internal.h"

/* ---- building the graph --------------------------------------------------- */

static int add_act(pnx_unet *m, int c, int level)
{
    unet_act *a = &m->acts[m->n_acts];
    memset(a, 0, sizeof *a);
    a->c = c;
    a->level = level;
    return m->n_acts++;
}

/* dst = "a.b". The names are the seed's, far below the limit. */
static void join_name(char *dst, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    assert(la + 1 + lb < size);
    if (la + 1 + lb >= size) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, a, la);
    dst[la] = '.';
    memcpy(dst + la + 1, b, lb + 1);
}

static size_t add_tensor(pnx_unet *m, const char *layer, const char *suffix, pnx_unet_kind kind,
                         int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    unet_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    join_name(t->name, sizeof t->name, layer, suffix);
    t->kind = kind;
    t->ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        t->count *= (size_t)dims[i];
    }
    if (kind == PNX_UNET_PARAMETER) {
        t->offset = m->n_params;
        m->n_params += t->count;
    } else if (kind == PNX_UNET_RUNNING) {
        t->offset = m->n_running;
        m->n_running += t->count;
    } else {
        t->offset = (size_t)m->n_bn;
    }
    return t->offset;
}

static unet_layer *add_layer(pnx_unet *m, layer_kind kind, const char *name, int in, int in2,
                             int cout)
{
    unet_layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in = in;
    l->in2 = in2;
    l->cin = m->acts[in].c;
    l->cout = cout;
    return l;
}

/* Conv2d(cin, cout, 3, padding 1) + BatchNorm2d(cout) + ReLU, as the seed's
 * CBR2d: state-dict names <name>.0.* (conv) and <name>.1.* (BatchNorm). */
static int add_cbr(pnx_unet *m, const char *name, int in, int cout)
{
    unet_layer *l = add_layer(m, LAYER_CBR, name, in, -1, cout);
    char conv[UNET_NAME_MAX], bn[UNET_NAME_MAX];
    join_name(conv, sizeof conv, name, "0");
    join_name(bn, sizeof bn, name, "1");
    l->w = add_tensor(m, conv, "weight", PNX_UNET_PARAMETER, 4, cout, l->cin, 3, 3);
    l->b = add_tensor(m, conv, "bias", PNX_UNET_PARAMETER, 1, cout, 0, 0, 0);
    l->gamma = add_tensor(m, bn, "weight", PNX_UNET_PARAMETER, 1, cout, 0, 0, 0);
    l->beta = add_tensor(m, bn, "bias", PNX_UNET_PARAMETER, 1, cout, 0, 0, 0);
    l->mean = add_tensor(m, bn, "running_mean", PNX_UNET_RUNNING, 1, cout, 0, 0, 0);
    l->var = add_tensor(m, bn, "running_var", PNX_UNET_RUNNING, 1, cout, 0, 0, 0);
    add_tensor(m, bn, "num_batches_tracked", PNX_UNET_COUNTER, 0, 0, 0, 0, 0);
    l->bn = m->n_bn++;
    l->out = add_act(m, cout, m->acts[in].level);
    return l->out;
}

static int add_pool(pnx_unet *m, const char *name, int in)
{
    unet_layer *l = add_layer(m, LAYER_POOL, name, in, -1, m->acts[in].c);
    l->out = add_act(m, l->cout, m->acts[in].level + 1);
    return l->out;
}

/* ConvTranspose2d(c, c, 2, stride 2): weight (Cin, Cout, 2, 2). */
static int add_up(pnx_unet *m, const char *name, int in)
{
    int c = m->acts[in].c;
    unet_layer *l = add_layer(m, LAYER_UP, name, in, -1, c);
    l->w = add_tensor(m, name, "weight", PNX_UNET_PARAMETER, 4, c, c, 2, 2);
    l->b = add_tensor(m, name, "bias", PNX_UNET_PARAMETER, 1, c, 0, 0, 0);
    l->out = add_act(m, c, m->acts[in].level - 1);
    return l->out;
}

static int add_concat(pnx_unet *m, const char *name, int a, int b)
{
    unet_layer *l = add_layer(m, LAYER_CONCAT, name, a, b, m->acts[a].c + m->acts[b].c);
    l->out = add_act(m, l->cout, m->acts[a].level);
    return l->out;
}

static int add_head(pnx_unet *m, const char *name, int in)
{
    unet_layer *l = add_layer(m, LAYER_HEAD, name, in, -1, 1);
    l->w = add_tensor(m, name, "weight", PNX_UNET_PARAMETER, 4, 1, l->cin, 1, 1);
    l->b = add_tensor(m, name, "bias", PNX_UNET_PARAMETER, 1, 1, 0, 0, 0);
    l->out = add_act(m, 1, m->acts[in].level);
    return l->out;
}

/* The seed's forward(), line by line. Layers are added in the order the
 * seed's __init__ registers its modules, so the tensors come out in
 * state_dict() order. */
static void build_graph(pnx_unet *m)
{
    const int b = m->base;
    m->input_act = add_act(m, 1, 0);
    int e11 = add_cbr(m, "enc1_1", m->input_act, b);
    int e12 = add_cbr(m, "enc1_2", e11, b);
    int p1 = add_pool(m, "pool1", e12);
    int e21 = add_cbr(m, "enc2_1", p1, 2 * b);
    int e22 = add_cbr(m, "enc2_2", e21, 2 * b);
    int p2 = add_pool(m, "pool2", e22);
    int e31 = add_cbr(m, "enc3_1", p2, 4 * b);
    int e32 = add_cbr(m, "enc3_2", e31, 4 * b);
    int p3 = add_pool(m, "pool3", e32);
    int e41 = add_cbr(m, "enc4_1", p3, 8 * b);
    int e42 = add_cbr(m, "enc4_2", e41, 8 * b);
    int p4 = add_pool(m, "pool4", e42);
    int e51 = add_cbr(m, "enc5_1", p4, 16 * b);
    int d51 = add_cbr(m, "dec5_1", e51, 8 * b);
    int u4 = add_up(m, "unpool4", d51);
    int c4 = add_concat(m, "cat4", u4, e42);
    int d42 = add_cbr(m, "dec4_2", c4, 8 * b);
    int d41 = add_cbr(m, "dec4_1", d42, 4 * b);
    int u3 = add_up(m, "unpool3", d41);
    int c3 = add_concat(m, "cat3", u3, e32);
    int d32 = add_cbr(m, "dec3_2", c3, 4 * b);
    int d31 = add_cbr(m, "dec3_1", d32, 2 * b);
    int u2 = add_up(m, "unpool2", d31);
    int c2 = add_concat(m, "cat2", u2, e22);
    int d22 = add_cbr(m, "dec2_2", c2, 2 * b);
    int d21 = add_cbr(m, "dec2_1", d22, b);
    int u1 = add_up(m, "unpool1", d21);
    int c1 = add_concat(m, "cat1", u1, e12);
    int d12 = add_cbr(m, "dec1_2", c1, b);
    int d11 = add_cbr(m, "dec1_1", d12, b);
    m->logits_act = add_head(m, "fc", d11);
}

int pnx_unet_create(pnx_unet **out, pnx_backend *be, int base_width)
{
    *out = NULL;
    if (base_width < 1 || base_width > PNX_UNET_MAX_BASE_WIDTH)
        return pnx_fail(PNX_EINVAL, "U-Net base width %d is outside 1..%d", base_width,
                        PNX_UNET_MAX_BASE_WIDTH);
    pnx_unet *m = calloc(1, sizeof *m);
    if (!m)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    m->be = be;
    m->base = base_width;
    build_graph(m);
    int rc = be->ops->alloc(be, m->n_params * sizeof(float), (void **)&m->params);
    if (!rc)
        rc = be->ops->alloc(be, m->n_running * sizeof(float), (void **)&m->running);
    if (!rc) {
        m->counters = calloc((size_t)m->n_bn, sizeof *m->counters);
        if (!m->counters)
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
    }
    if (!rc)
        rc = pnx_unet_init(m, 0);
    if (rc) {
        pnx_unet_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

void pnx_unet_destroy(pnx_unet *m)
{
    if (!m)
        return;
    pnx_unet_free_plan(m);
    pnx_backend *be = m->be;
    be->ops->release(be, m->params);
    be->ops->release(be, m->grads);
    be->ops->release(be, m->adam_m);
    be->ops->release(be, m->adam_v);
    be->ops->release(be, m->running);
    free(m->counters);
    free(m);
}

int pnx_unet_base_width(const pnx_unet *m)
{
    return m->base;
}

pnx_backend *pnx_unet_backend(const pnx_unet *m)
{
    return m->be;
}

/* ---- forward ---------------------------------------------------------------- */

static int forward_layer(pnx_unet *m, unet_layer *l, int training)
{
    pnx_backend *be = m->be;
    const pnx_backend_ops *ops = be->ops;
    pnx_dims xd = pnx_unet_act_dims(m, l->in);
    float *x = m->acts[l->in].data;
    float *y = m->acts[l->out].data;
    float *p = m->params;
    int rc = 0;
    switch (l->kind) {
    case LAYER_CBR: {
        /* Training keeps the conv output for BatchNorm's backward; inference
         * normalises it in place. */
        float *conv_out = training ? l->pre : y;
        rc = ops->conv3x3_forward(be, x, xd, p + l->w, p + l->b, l->cout, conv_out);
        pnx_dims yd = pnx_unet_act_dims(m, l->out);
        if (!rc)
            rc = ops->batchnorm_relu_forward(be, conv_out, yd, p + l->gamma, p + l->beta,
                                             m->running + l->mean, m->running + l->var,
                                             training, PNX_BN_MOMENTUM, PNX_BN_EPS, y,
                                             l->save_mean, l->save_invstd);
        if (!rc && training)
            m->counters[l->bn]++;
        break;
    }
    case LAYER_POOL:
        rc = ops->maxpool2x2_forward(be, x, xd, y, l->argmax);
        break;
    case LAYER_UP:
        rc = ops->upconv2x2_forward(be, x, xd, p + l->w, p + l->b, l->cout, y);
        break;
    case LAYER_CONCAT:
        rc = ops->concat_channels(be, x, m->acts[l->in].c, m->acts[l->in2].data,
                                  m->acts[l->in2].c, m->n, (size_t)xd.h * xd.w, y);
        break;
    case LAYER_HEAD:
        rc = ops->conv1x1_forward(be, x, xd, p + l->w, p + l->b, l->cout, y);
        break;
    }
    if (rc)
        return pnx_fail_prefix(rc, "%s forward", l->name);
    return 0;
}

int pnx_unet_forward(pnx_unet *m, const float *input, int n, int h, int w, int training,
                     float *logits)
{
    if (n < 1 || h < PNX_UNET_SIZE_MULTIPLE || w < PNX_UNET_SIZE_MULTIPLE ||
        h % PNX_UNET_SIZE_MULTIPLE || w % PNX_UNET_SIZE_MULTIPLE || h > 16384 || w > 16384)
        return pnx_fail(PNX_EINVAL,
                        "U-Net input %dx%d (batch %d): sides must be positive multiples of %d",
                        w, h, n, PNX_UNET_SIZE_MULTIPLE);
    /* Every buffer size below is at most this many floats, kept far from
     * size_t overflow; a real request this large fails to allocate anyway. */
    if ((double)n * h * w * 16.0 * m->base > 1e13)
        return pnx_fail(PNX_ERANGE, "a batch of %d at %dx%d is too large", n, w, h);
    if (training && (size_t)n * (size_t)(h / 16) * (size_t)(w / 16) < 2)
        return pnx_fail(PNX_EINVAL,
                        "training needs more than one value per channel at the bottom of the "
                        "U-Net: a batch of 1 at %dx%d is too small (PyTorch refuses it too)",
                        w, h);
    int rc = pnx_unet_plan(m, n, h, w, training);
    if (rc)
        return rc;
    m->have_forward = 0;
    rc = m->be->ops->act_upload(m->be, m->acts[m->input_act].data, input,
                                pnx_unet_act_dims(m, m->input_act));
    if (rc)
        rc = pnx_fail_prefix(rc, "uploading the input");
    for (int i = 0; !rc && i < m->n_layers; i++)
        rc = forward_layer(m, &m->layers[i], training);
    if (!rc && logits) {
        rc = m->be->ops->act_download(m->be, logits, m->acts[m->logits_act].data,
                                      pnx_unet_act_dims(m, m->logits_act));
        if (rc)
            rc = pnx_fail_prefix(rc, "downloading the logits");
    }
    if (rc)
        return rc;
    m->have_forward = 1;
    m->last_forward_training = training;
    return 0;
}

/* ---- loss and backward ------------------------------------------------------- */

static int compute_loss(pnx_unet *m, const float *target, float bce_weight, float dice_weight,
                        pnx_loss *loss, float *dlogits)
{
    if (!m->have_forward)
        return pnx_fail(PNX_EINVAL, "loss requested before a forward pass");
    const pnx_dims td = pnx_unet_act_dims(m, m->logits_act);
    float *t = pnx_unet_target_buffer(m);
    int rc = m->be->ops->act_upload(m->be, t, target, td);
    if (rc)
        return pnx_fail_prefix(rc, "uploading the target");
    rc = m->be->ops->seg_loss(m->be, m->acts[m->logits_act].data, t, pnx_dims_count(td),
                              bce_weight, dice_weight, loss, dlogits);
    if (rc)
        return pnx_fail_prefix(rc, "loss");
    return 0;
}

int pnx_unet_loss(pnx_unet *m, const float *target, float bce_weight, float dice_weight,
                  pnx_loss *loss)
{
    return compute_loss(m, target, bce_weight, dice_weight, loss, NULL);
}

static int backward_layer(pnx_unet *m, unet_layer *l, char *written)
{
    pnx_backend *be = m->be;
    const pnx_backend_ops *ops = be->ops;
    pnx_dims xd = pnx_unet_act_dims(m, l->in);
    unet_act *in = &m->acts[l->in], *out = &m->acts[l->out];
    float *dx = l->in == m->input_act ? NULL : in->grad;
    int acc = written[l->in];
    float *p = m->params, *g = m->grads;
    int rc = 0;
    switch (l->kind) {
    case LAYER_CBR: {
        pnx_dims yd = pnx_unet_act_dims(m, l->out);
        rc = ops->batchnorm_relu_backward(be, l->pre, out->data, yd, p + l->gamma, l->save_mean,
                                          l->save_invstd, out->grad, m->scratch, 0,
                                          g + l->gamma, g + l->beta);
        if (!rc)
            rc = ops->conv3x3_backward(be, in->data, xd, p + l->w, l->cout, m->scratch, dx, acc,
                                       g + l->w, g + l->b);
        break;
    }
    case LAYER_POOL:
        rc = ops->maxpool2x2_backward(be, xd, l->argmax, out->grad, dx, acc);
        break;
    case LAYER_UP:
        rc = ops->upconv2x2_backward(be, in->data, xd, p + l->w, l->cout, out->grad, dx, acc,
                                     g + l->w, g + l->b);
        break;
    case LAYER_CONCAT: {
        unet_act *in2 = &m->acts[l->in2];
        rc = ops->split_channels(be, out->grad, in->c, in2->c, m->n, (size_t)xd.h * xd.w, dx, acc,
                                 in2->grad, written[l->in2]);
        written[l->in2] = 1;
        break;
    }
    case LAYER_HEAD:
        rc = ops->conv1x1_backward(be, in->data, xd, p + l->w, l->cout, out->grad, dx, acc,
                                   g + l->w, g + l->b);
        break;
    }
    written[l->in] = 1;
    if (rc)
        return pnx_fail_prefix(rc, "%s backward", l->name);
    return 0;
}

int pnx_unet_backward(pnx_unet *m, const float *target, float bce_weight, float dice_weight,
                      pnx_loss *loss)
{
    if (!m->have_forward || !m->last_forward_training)
        return pnx_fail(PNX_EINVAL, "backward needs a training forward pass first");
    int rc = compute_loss(m, target, bce_weight, dice_weight, loss,
                          m->acts[m->logits_act].grad);
    if (!rc)
        rc = m->be->ops->fill_zero(m->be, m->grads, m->n_params * sizeof(float));
    char written[UNET_MAX_ACTS] = {0};
    for (int i = m->n_layers - 1; !rc && i >= 0; i--)
        rc = backward_layer(m, &m->layers[i], written);
    /* The activations' gradients were consumed; a second backward needs a
     * second forward. */
    m->have_forward = 0;
    return rc;
}

/* ---- Adam --------------------------------------------------------------------- */

int pnx_unet_ensure_adam_state(pnx_unet *m)
{
    if (m->adam_m)
        return 0;
    pnx_backend *be = m->be;
    int rc = be->ops->alloc(be, m->n_params * sizeof(float), (void **)&m->adam_m);
    if (!rc)
        rc = be->ops->alloc(be, m->n_params * sizeof(float), (void **)&m->adam_v);
    if (rc) {
        be->ops->release(be, m->adam_m);
        m->adam_m = NULL;
        m->adam_v = NULL;
    }
    return rc;
}

int pnx_unet_adam_step(pnx_unet *m, const pnx_adam_hparams *h)
{
    if (!(h->lr >= 0) || !(h->beta1 >= 0 && h->beta1 < 1) || !(h->beta2 >= 0 && h->beta2 < 1) ||
        !(h->eps > 0) || !(h->weight_decay >= 0))
        return pnx_fail(PNX_EINVAL, "invalid Adam settings (lr %g, betas %g/%g, eps %g, wd %g)",
                        h->lr, h->beta1, h->beta2, h->eps, h->weight_decay);
    if (!m->grads)
        return pnx_fail(PNX_EINVAL, "an Adam step needs a backward pass first");
    int rc = pnx_unet_ensure_adam_state(m);
    if (rc)
        return rc;
    rc = m->be->ops->adam_update(m->be, m->params, m->grads, m->adam_m, m->adam_v, m->n_params,
                                 h, m->adam_steps + 1);
    if (rc)
        return pnx_fail_prefix(rc, "Adam step");
    m->adam_steps++;
    return 0;
}

int64_t pnx_unet_adam_steps(const pnx_unet *m)
{
    return m->adam_steps;
}

int pnx_unet_has_adam_state(const pnx_unet *m)
{
    return m->adam_m != NULL;
}

void pnx_unet_reset_adam(pnx_unet *m)
{
    if (m->adam_m) {
        m->be->ops->release(m->be, m->adam_m);
        m->be->ops->release(m->be, m->adam_v);
    }
    m->adam_m = m->adam_v = NULL;
    m->adam_steps = 0;
}
