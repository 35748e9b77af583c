/*
 * tests/test_model_plan.c — "too little memory, with the batch size that
 * would fit".
 *
 * The arithmetic (pnx_unet_batch_that_fits) on its own, then the U-Net on a
 * fake device: the reference backend behind an allocator with a byte limit
 * and a mem_info that reports what is left. For several limits the error of
 * a batch too large names a batch k; a whole training step (or an eval
 * forward) at k then succeeds on a fresh device and one at k + 1 fails.
 * A limit set to exactly what a step at batch 3 used gives k = 3, one byte
 * less k = 2. Without mem_info the error names no batch.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "model/backend.h"
#include "model/unet.h"
#include "model/unet_internal.h"

#define BASE 2
#define SIDE 32
#define TOO_MANY 64
#define MAX_BLOCKS 32

/* ---- the fake device ------------------------------------------------------------- */

typedef struct fake_device {
    pnx_backend be;     /* first: the U-Net sees this */
    pnx_backend *inner; /* the reference backend: its ops ignore their be */
    pnx_backend_ops ops;
    size_t limit, used, peak;
    void *ptr[MAX_BLOCKS];
    size_t bytes[MAX_BLOCKS];
} fake_device;

static fake_device *fake_of(pnx_backend *be)
{
    return (fake_device *)be->impl;
}

static int fake_alloc(pnx_backend *be, size_t bytes, void **out)
{
    fake_device *f = fake_of(be);
    *out = NULL;
    if (bytes > f->limit - f->used)
        return pnx_fail(PNX_EDEVICE, "fake device: %zu bytes do not fit", bytes);
    int slot = 0;
    while (slot < MAX_BLOCKS && f->ptr[slot])
        slot++;
    assert_true(slot < MAX_BLOCKS);
    int rc = f->inner->ops->alloc(f->inner, bytes, out);
    if (rc)
        return rc;
    f->ptr[slot] = *out;
    f->bytes[slot] = bytes;
    f->used += bytes;
    if (f->used > f->peak)
        f->peak = f->used;
    return 0;
}

static void fake_release(pnx_backend *be, void *p)
{
    fake_device *f = fake_of(be);
    if (!p)
        return;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (f->ptr[i] == p) {
            f->used -= f->bytes[i];
            f->ptr[i] = NULL;
            f->inner->ops->release(f->inner, p);
            return;
        }
    fail_msg("release of a pointer the fake device did not give");
}

static int fake_mem_info(pnx_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    fake_device *f = fake_of(be);
    *free_bytes = f->limit - f->used;
    *total_bytes = f->limit;
    return 0;
}

static void fake_destroy(pnx_backend *be)
{
    fake_device *f = fake_of(be);
    pnx_backend_destroy(f->inner);
    free(f);
}

static pnx_backend *fake_create(size_t limit, int with_mem_info)
{
    fake_device *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(pnx_backend_reference_create(&f->inner), 0);
    f->ops = *f->inner->ops;
    f->ops.name = "fake";
    f->ops.destroy = fake_destroy;
    f->ops.alloc = fake_alloc;
    f->ops.release = fake_release;
    f->ops.mem_info = with_mem_info ? fake_mem_info : NULL;
    f->be.ops = &f->ops;
    f->be.impl = f;
    f->be.act_size = f->inner->act_size;
    f->limit = limit;
    return &f->be;
}

/* ---- steps ------------------------------------------------------------------------- */

static float input[TOO_MANY * SIDE * SIDE], target[TOO_MANY * SIDE * SIDE];

/* A training step (forward, backward, Adam) or an eval forward at batch n. */
static int step(pnx_unet *m, int n, int training)
{
    static float logits[TOO_MANY * SIDE * SIDE];
    if (!training)
        return pnx_unet_forward(m, input, n, SIDE, SIDE, 0, logits);
    const pnx_adam_hparams adam = PNX_ADAM_DEFAULTS;
    pnx_loss loss;
    int rc = pnx_unet_forward(m, input, n, SIDE, SIDE, 1, NULL);
    if (!rc)
        rc = pnx_unet_backward(m, target, 1.0f, 1.0f, &loss);
    if (!rc)
        rc = pnx_unet_adam_step(m, &adam);
    return rc;
}

/* A step at n on a fresh model on a fresh fake device of limit bytes. */
static int fresh_step(size_t limit, int n, int training)
{
    pnx_backend *be = fake_create(limit, 1);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, BASE), 0);
    int rc = step(m, n, training);
    pnx_unet_destroy(m);
    assert_int_equal(fake_of(be)->used, 0);
    pnx_backend_destroy(be);
    return rc;
}

/* The batch the error of a too-large step names: -1 when it names none,
 * 0 for "not even a batch of 1". */
static int named_batch(size_t limit, int training)
{
    pnx_backend *be = fake_create(limit, 1);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, BASE), 0);
    int rc = step(m, TOO_MANY, training);
    assert_int_not_equal(rc, 0);
    const char *msg = pnx_errmsg();
    assert_non_null(strstr(msg, "fake device")); /* the allocator's own words are kept */
    int k = -1;
    const char *at = strstr(msg, "the largest batch that fits in the ");
    if (at) {
        at = strstr(at, " free is ");
        assert_non_null(at);
        k = atoi(at + strlen(" free is "));
    } else if (strstr(msg, "not even a batch of 1 fits")) {
        k = 0;
    }
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
    return k;
}

/* Bytes a fresh model holds, and the peak of a step at n. */
static void measure(int n, int training, size_t *model_bytes, size_t *peak)
{
    pnx_backend *be = fake_create(SIZE_MAX, 1);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, BASE), 0);
    *model_bytes = fake_of(be)->used;
    assert_int_equal(step(m, n, training), 0);
    *peak = fake_of(be)->peak;
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_arithmetic(void **state)
{
    (void)state;
    /* fixed 50, 50 a sample */
    assert_int_equal(pnx_unet_batch_that_fits(300, 100, 150), 5);
    assert_int_equal(pnx_unet_batch_that_fits(349, 100, 150), 5);
    assert_int_equal(pnx_unet_batch_that_fits(350, 100, 150), 6);
    assert_int_equal(pnx_unet_batch_that_fits(100, 100, 150), 1);
    assert_int_equal(pnx_unet_batch_that_fits(99, 100, 150), 0);
    assert_int_equal(pnx_unet_batch_that_fits(0, 100, 150), 0);
    /* no fixed part */
    assert_int_equal(pnx_unet_batch_that_fits(1000, 100, 200), 10);
    /* bytes that do not grow with the batch */
    assert_int_equal(pnx_unet_batch_that_fits(1000, 100, 100), INT_MAX);
    /* a huge device does not overflow */
    assert_int_equal(pnx_unet_batch_that_fits(SIZE_MAX, 2, 3), INT_MAX);
}

static void check_limits(int training)
{
    size_t model_bytes, peak3;
    measure(3, training, &model_bytes, &peak3);
    assert_int_equal(fresh_step(peak3, 3, training), 0);
    assert_int_not_equal(fresh_step(peak3 - 1, 3, training), 0);

    const size_t limits[] = {peak3 - 1, peak3, peak3 + (peak3 - model_bytes) / 2,
                             2 * peak3 + 12345, 5 * peak3};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int k = named_batch(limits[i], training);
        if (k < 1)
            fail_msg("limit %zu (%s): no batch named", limits[i], training ? "train" : "eval");
        if (limits[i] == peak3)
            assert_int_equal(k, 3);
        if (limits[i] == peak3 - 1)
            assert_int_equal(k, 2);
        assert_int_equal(fresh_step(limits[i], k, training), 0);
        if (fresh_step(limits[i], k + 1, training) == 0)
            fail_msg("limit %zu (%s): batch %d named, but %d fits too", limits[i],
                     training ? "train" : "eval", k, k + 1);
    }
}

static void test_training_batch_that_fits(void **state)
{
    (void)state;
    check_limits(1);
}

static void test_eval_batch_that_fits(void **state)
{
    (void)state;
    check_limits(0);
}

/* Room for the model and its gradients but not one sample's activations;
 * and a device that cannot say what is free. */
static void test_nothing_fits_and_no_mem_info(void **state)
{
    (void)state;
    size_t model_bytes, peak;
    measure(2, 1, &model_bytes, &peak);
    pnx_backend *be = fake_create(SIZE_MAX, 1);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, BASE), 0);
    size_t grads = pnx_unet_parameter_count(m) * sizeof(float);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
    assert_int_equal(named_batch(model_bytes + grads + 64, 1), 0);
    assert_non_null(strstr(pnx_errmsg(), "activations for a batch of 64 at 32x32"));

    be = fake_create(peak, 0);
    assert_int_equal(pnx_unet_create(&m, be, BASE), 0);
    assert_int_not_equal(step(m, TOO_MANY, 1), 0);
    assert_null(strstr(pnx_errmsg(), "largest batch"));
    assert_non_null(strstr(pnx_errmsg(), "fake device"));
    /* The failed plan was released: the model still trains at a batch
     * that fits. */
    assert_int_equal(step(m, 2, 1), 0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof input / sizeof input[0]; i++) {
        input[i] = (float)((i * 7919) % 255) / 255.0f;
        target[i] = (float)((i / SIDE) % SIDE > SIDE / 2);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_training_batch_that_fits),
        cmocka_unit_test(test_eval_batch_that_fits),
        cmocka_unit_test(test_nothing_fits_and_no_mem_info),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
