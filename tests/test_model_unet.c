/*
 * tests/test_model_unet.c — the whole U-Net against PyTorch.
 *
 * Fixtures (tests/data/model/, written by tools/torch_fixtures/
 * make_fixtures.py with PyTorch 1.13): a base-4 model's start weights saved
 * by safetensors.torch, an input and mask (2,1,32,32), and PyTorch's eval and
 * train logits, loss, every gradient, running stats, and the state after
 * three Adam steps. Both the reference backend and the CPU backend must match
 * within 1e-4 relative error. Also: checkpoints round-trip and resume
 * exactly, and bad checkpoints are clear errors.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/safetensors.h"
#include "model/checkpoint.h"
#include "model/cpu/cpu_backend.h"
#include "model/unet.h"

#define INIT_PATH PNX_TEST_DATA "/model/unet_b4_init.safetensors"
#define EXPECTED_PATH PNX_TEST_DATA "/model/unet_b4_expected.safetensors"
#define TOLERANCE 1e-4
#define N 2
#define SIDE 32
#define PIXELS (N * SIDE * SIDE)

/* The fixture's Adam settings (make_fixtures.py). */
static const pnx_adam_hparams FIXTURE_ADAM = {1e-2, 0.9, 0.999, 1e-3, 1e-2};

static pnx_st_file *expected;
static char tmpdir[256];

static const float *fixture(const char *name, size_t count)
{
    const pnx_st_tensor *t = pnx_st_find(expected, name);
    if (!t)
        fail_msg("fixture has no tensor %s", name);
    assert_int_equal(t->dtype, PNX_ST_F32);
    assert_int_equal(t->numel, count);
    assert_true(pnx_st_tensor_aligned(t));
    return t->data;
}

static double fixture_f64(const char *name)
{
    const pnx_st_tensor *t = pnx_st_find(expected, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, PNX_ST_F64);
    double v;
    memcpy(&v, t->data, sizeof v);
    return v;
}

static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m)
            m = fabs(v[i]);
    return m;
}

/* max |a − b| over max |b| (or over floor when b is all but zero). */
static double rel_error(const float *a, const float *b, size_t n, double floor)
{
    double maxdiff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxdiff))
            maxdiff = isnan(d) ? INFINITY : d;
    }
    double ref = max_abs(b, n);
    return maxdiff / (ref > floor ? ref : floor);
}

/* A conv followed by BatchNorm in training mode: its bias's gradient is zero
 * in exact arithmetic (the batch mean removes it), so both sides hold
 * rounding noise, whose relative error means nothing. */
static int is_bias_before_bn(const char *name)
{
    size_t len = strlen(name);
    return len > 7 && strcmp(name + len - 7, ".0.bias") == 0;
}

static void check_close(const char *what, const float *got, const float *want, size_t n,
                        double floor)
{
    double e = rel_error(got, want, n, floor);
    if (!(e <= TOLERANCE))
        fail_msg("%s: relative error %.3g > %.3g", what, e, TOLERANCE);
}

static pnx_unet *load_fixture_model(pnx_backend *be)
{
    pnx_unet *m = NULL;
    pnx_checkpoint_info info;
    int rc = pnx_checkpoint_load(&m, be, INIT_PATH, &info);
    if (rc)
        fail_msg("load: %s", pnx_errmsg());
    assert_int_equal(info.base_width, 4);
    assert_int_equal(info.written_by_pneumoseg, 0);
    assert_int_equal(info.has_optimizer, 0);
    return m;
}

/* Compares every float tensor of m (state_dict or gradients) with the
 * fixture tensors "<prefix><name>". */
static void check_state(pnx_unet *m, const char *prefix, pnx_unet_view view, int running_only,
                        int64_t counter)
{
    float *buf = malloc(sizeof(float) * 1000000);
    assert_non_null(buf);
    for (size_t i = 0; i < pnx_unet_tensor_count(m); i++) {
        pnx_unet_tensor_info ti;
        pnx_unet_tensor_at(m, i, &ti);
        if (view == PNX_UNET_GRAD && ti.kind != PNX_UNET_PARAMETER)
            continue;
        if (running_only && ti.kind == PNX_UNET_PARAMETER)
            continue;
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, ti.name);
        if (ti.kind == PNX_UNET_COUNTER) {
            int64_t v;
            assert_int_equal(pnx_unet_read_counter(m, ti.name, &v), 0);
            assert_int_equal(v, counter);
            const pnx_st_tensor *t = pnx_st_find(expected, name);
            assert_non_null(t);
            int64_t want;
            assert_int_equal(pnx_st_copy_i64(t, &want, 1), 0);
            assert_int_equal(v, want);
            continue;
        }
        assert_int_equal(pnx_unet_read(m, ti.name, view, buf, ti.count), 0);
        const float *want = fixture(name, ti.count);
        if (is_bias_before_bn(ti.name) && view == PNX_UNET_GRAD) {
            /* Rounding noise on both sides: only its size is checked. */
            for (size_t k = 0; k < ti.count; k++)
                assert_true(fabs(buf[k]) < 1e-4 && fabs(want[k]) < 1e-4);
            continue;
        }
        double e = rel_error(buf, want, ti.count, 1e-6);
        if (!(e <= TOLERANCE))
            fail_msg("%s: relative error %.3g > %.3g", name, e, TOLERANCE);
    }
    free(buf);
}

static void run_fixture_checks(pnx_backend *be)
{
    pnx_unet *m = load_fixture_model(be);
    const float *input = fixture("input", PIXELS), *target = fixture("target", PIXELS);
    float logits[PIXELS];

    assert_int_equal(pnx_unet_forward(m, input, N, SIDE, SIDE, 0, logits), 0);
    check_close("logits.eval", logits, fixture("logits.eval", PIXELS), PIXELS, 1e-6);

    assert_int_equal(pnx_unet_forward(m, input, N, SIDE, SIDE, 1, logits), 0);
    check_close("logits.train", logits, fixture("logits.train", PIXELS), PIXELS, 1e-6);
    pnx_loss loss;
    assert_int_equal(pnx_unet_backward(m, target, 1.0f, 1.0f, &loss), 0);
    assert_true(fabs(loss.total - fixture_f64("loss.total")) <= TOLERANCE * loss.total);
    assert_true(fabs(loss.bce - fixture_f64("loss.bce")) <= TOLERANCE * loss.bce);
    assert_true(fabs(loss.dice - fixture_f64("loss.dice")) <= TOLERANCE * loss.dice);
    check_state(m, "grad.", PNX_UNET_GRAD, 0, 0);
    check_state(m, "after_train.", PNX_UNET_VALUE, 1, 8);

    assert_int_equal(pnx_unet_adam_step(m, &FIXTURE_ADAM), 0);
    for (int step = 1; step < 3; step++) {
        assert_int_equal(pnx_unet_forward(m, input, N, SIDE, SIDE, 1, NULL), 0);
        assert_int_equal(pnx_unet_backward(m, target, 1.0f, 1.0f, &loss), 0);
        assert_int_equal(pnx_unet_adam_step(m, &FIXTURE_ADAM), 0);
    }
    assert_int_equal(pnx_unet_adam_steps(m), 3);
    check_state(m, "after3.", PNX_UNET_VALUE, 0, 10);
    pnx_unet_destroy(m);
}

static void test_reference_backend_matches_pytorch(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    run_fixture_checks(be);
    pnx_backend_destroy(be);
}

static void test_cpu_backend_matches_pytorch(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_cpu_create(&be, 2), 0);
    run_fixture_checks(be);
    pnx_backend_destroy(be);
}

static char *tmp_path(const char *name)
{
    char *p = pnx_path_join(tmpdir, name);
    assert_non_null(p);
    return p;
}

/* Training, saving with the optimiser state, loading and going on gives
 * bit for bit what going on without the round trip gives. */
static void test_checkpoint_resume_is_exact(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_cpu_create(&be, 2), 0);
    pnx_unet *a = load_fixture_model(be);
    const float *input = fixture("input", PIXELS), *target = fixture("target", PIXELS);
    pnx_loss loss;
    for (int step = 0; step < 2; step++) {
        assert_int_equal(pnx_unet_forward(a, input, N, SIDE, SIDE, 1, NULL), 0);
        assert_int_equal(pnx_unet_backward(a, target, 1.0f, 1.0f, &loss), 0);
        assert_int_equal(pnx_unet_adam_step(a, &FIXTURE_ADAM), 0);
    }
    char *path = tmp_path("resume.safetensors");
    const char *keys[] = {"pneumoseg.train.lr"}, *values[] = {"0.001"};
    pnx_checkpoint_meta meta = {4, 2, 1, 1, keys, values};
    assert_int_equal(pnx_checkpoint_save(a, path, &meta), 0);

    pnx_unet *b = NULL;
    pnx_checkpoint_info info;
    assert_int_equal(pnx_checkpoint_load(&b, be, path, &info), 0);
    assert_int_equal(info.base_width, 4);
    assert_int_equal(info.epoch, 4);
    assert_int_equal(info.step, 2);
    assert_true(info.has_optimizer && info.written_by_pneumoseg);
    assert_int_equal(pnx_unet_adam_steps(b), 2);
    pnx_st_file *f = NULL;
    assert_int_equal(pnx_st_open(&f, path), 0);
    assert_string_equal(pnx_st_meta(f, "pneumoseg.train.lr"), "0.001");
    assert_string_equal(pnx_st_meta(f, "format"), "pt");
    pnx_st_close(f);

    pnx_unet *models[2] = {a, b};
    float logits[2][PIXELS];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pnx_unet_forward(models[k], input, N, SIDE, SIDE, 1, NULL), 0);
        assert_int_equal(pnx_unet_backward(models[k], target, 1.0f, 1.0f, &loss), 0);
        assert_int_equal(pnx_unet_adam_step(models[k], &FIXTURE_ADAM), 0);
        assert_int_equal(pnx_unet_forward(models[k], input, N, SIDE, SIDE, 0, logits[k]), 0);
    }
    assert_memory_equal(logits[0], logits[1], sizeof logits[0]);
    float wa[1000], wb[1000];
    assert_int_equal(pnx_unet_read(a, "enc1_1.0.weight", PNX_UNET_ADAM_V, wa, 36), 0);
    assert_int_equal(pnx_unet_read(b, "enc1_1.0.weight", PNX_UNET_ADAM_V, wb, 36), 0);
    assert_memory_equal(wa, wb, 36 * sizeof(float));

    /* Weights only: loads without optimiser state. */
    assert_int_equal(pnx_checkpoint_save(a, path, NULL), 0);
    pnx_unet *c = NULL;
    assert_int_equal(pnx_checkpoint_load(&c, be, path, &info), 0);
    assert_false(info.has_optimizer);
    assert_false(pnx_unet_has_adam_state(c));
    assert_int_equal(info.epoch, -1);
    float lc[PIXELS];
    assert_int_equal(pnx_unet_forward(c, input, N, SIDE, SIDE, 0, lc), 0);
    assert_memory_equal(lc, logits[0], sizeof lc);

    /* Fine-tuning starts a fresh optimiser. */
    pnx_unet_reset_adam(a);
    assert_false(pnx_unet_has_adam_state(a));
    assert_int_equal(pnx_unet_adam_steps(a), 0);

    pnx_unet_destroy(a);
    pnx_unet_destroy(b);
    pnx_unet_destroy(c);
    unlink(path);
    free(path);
    pnx_backend_destroy(be);
}

/* Writes a copy of the fixture checkpoint with one change. */
enum corruption { DROP_TENSOR, WRONG_SHAPE, EXTRA_TENSOR, WRONG_DTYPE, BAD_BASE_META };

static void write_variant(const char *path, enum corruption what, const char *victim)
{
    pnx_st_file *src = NULL;
    assert_int_equal(pnx_st_open(&src, INIT_PATH), 0);
    pnx_st_writer *w = NULL;
    assert_int_equal(pnx_st_writer_create(&w), 0);
    static const float extra[4] = {0};
    for (size_t i = 0; i < pnx_st_count(src); i++) {
        const pnx_st_tensor *t = pnx_st_at(src, i);
        int64_t shape[PNX_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        pnx_st_dtype dtype = t->dtype;
        if (strcmp(t->name, victim) == 0) {
            if (what == DROP_TENSOR)
                continue;
            if (what == WRONG_SHAPE) {
                /* Same bytes, other shape. */
                shape[0] = t->shape[1];
                shape[1] = t->shape[0];
            }
            if (what == WRONG_DTYPE)
                dtype = PNX_ST_I32;
        }
        assert_int_equal(pnx_st_writer_add(w, t->name, dtype, t->ndim, shape, t->data), 0);
    }
    if (what == EXTRA_TENSOR)
        assert_int_equal(pnx_st_writer_add(w, victim, PNX_ST_F32, 1, (int64_t[]){4}, extra), 0);
    if (what == BAD_BASE_META)
        assert_int_equal(pnx_st_writer_meta(w, "pneumoseg.base_width", "8"), 0);
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);
    pnx_st_close(src);
}

static void expect_load_error(pnx_backend *be, const char *path, const char *needle)
{
    pnx_unet *m = NULL;
    int rc = pnx_checkpoint_load(&m, be, path, NULL);
    assert_true(rc < 0);
    assert_null(m);
    if (!strstr(pnx_errmsg(), needle))
        fail_msg("error '%s' does not mention '%s'", pnx_errmsg(), needle);
}

static void test_bad_checkpoints_are_clear_errors(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    char *path = tmp_path("bad.safetensors");

    write_variant(path, DROP_TENSOR, "dec3_1.1.running_var");
    expect_load_error(be, path, "dec3_1.1.running_var is missing");
    write_variant(path, WRONG_SHAPE, "dec2_2.0.weight");
    expect_load_error(be, path, "dec2_2.0.weight: shape [16,8,3,3] expected [8,16,3,3]");
    write_variant(path, EXTRA_TENSOR, "dec0_1.0.weight");
    expect_load_error(be, path, "unexpected tensor dec0_1.0.weight");
    write_variant(path, WRONG_DTYPE, "fc.bias");
    expect_load_error(be, path, "fc.bias: dtype I32 expected F32");
    write_variant(path, BAD_BASE_META, "");
    expect_load_error(be, path, "disagrees");
    write_variant(path, DROP_TENSOR, "enc1_1.0.weight");
    expect_load_error(be, path, "not a checkpoint of the seed's U-Net");

    /* A truncated file, and one whose header is damaged. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(INIT_PATH, 1u << 24, &data, &len), 0);
    assert_int_equal(pnx_write_file_atomic(path, data, len - 100), 0);
    expect_load_error(be, path, "bad.safetensors");
    data[8] = 'x';
    assert_int_equal(pnx_write_file_atomic(path, data, len), 0);
    expect_load_error(be, path, "not a safetensors file");
    free(data);
    expect_load_error(be, "/nonexistent/model.safetensors", "No such file");

    /* A model of another width refuses to take the file. */
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, 8), 0);
    assert_int_equal(pnx_checkpoint_load_into(m, INIT_PATH, NULL), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "base width 4, but the model has 8"));
    pnx_unet_destroy(m);

    unlink(path);
    free(path);
    pnx_backend_destroy(be);
}

/* PyTorch's default initialisation: bounds from fan_in (ConvTranspose2d's
 * counts out_channels), BatchNorm at 1/0, running stats 0/1. */
static void test_default_init(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, 16), 0);
    assert_int_equal(pnx_unet_parameter_count(m), 1464321); /* PyTorch's count */
    assert_int_equal(pnx_unet_tensor_count(m), 136);
    assert_int_equal(pnx_unet_init(m, 42), 0);
    static float buf[256 * 256 * 4];
    static const struct {
        const char *name;
        size_t count;
        double bound;
    } cases[] = {
        {"enc1_1.0.weight", 16 * 9, 1.0 / 3.0},
        {"enc1_1.0.bias", 16, 1.0 / 3.0},
        {"dec4_2.0.weight", 128 * 256 * 9, 1.0 / sqrt(256 * 9)},
        {"unpool4.weight", 128 * 128 * 4, 1.0 / sqrt(128 * 4)},
        {"unpool1.bias", 16, 1.0 / sqrt(16 * 4)},
        {"fc.weight", 16, 0.25},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].count > sizeof buf / sizeof buf[0])
            continue;
        assert_int_equal(pnx_unet_read(m, cases[i].name, PNX_UNET_VALUE, buf, cases[i].count), 0);
        double mx = max_abs(buf, cases[i].count);
        assert_true(mx <= cases[i].bound);
        if (cases[i].count >= 100)
            assert_true(mx > 0.9 * cases[i].bound);
    }
    assert_int_equal(pnx_unet_read(m, "dec1_1.1.weight", PNX_UNET_VALUE, buf, 16), 0);
    assert_true(buf[0] == 1.0f && buf[15] == 1.0f);
    assert_int_equal(pnx_unet_read(m, "dec1_1.1.running_var", PNX_UNET_VALUE, buf, 16), 0);
    assert_true(buf[3] == 1.0f);
    assert_int_equal(pnx_unet_read(m, "dec1_1.1.running_var", PNX_UNET_GRAD, buf, 16), PNX_EINVAL);
    /* No gradients before a training step, so no Adam step either. */
    assert_int_equal(pnx_unet_read(m, "fc.bias", PNX_UNET_GRAD, buf, 1), PNX_EINVAL);
    const pnx_adam_hparams adam = PNX_ADAM_DEFAULTS;
    assert_int_equal(pnx_unet_adam_step(m, &adam), PNX_EINVAL);

    /* Sizes: multiples of 16; training needs two values per channel at
     * the bottom. */
    float in[16 * 32];
    memset(in, 0, sizeof in);
    assert_int_equal(pnx_unet_forward(m, in, 1, 16, 24, 0, NULL), PNX_EINVAL);
    assert_int_equal(pnx_unet_forward(m, in, 2000000000, 16384, 16384, 0, NULL), PNX_ERANGE);
    assert_int_equal(pnx_unet_forward(m, in, 1, 16, 16, 1, NULL), PNX_EINVAL);
    assert_int_equal(pnx_unet_forward(m, in, 1, 16, 32, 1, NULL), 0);
    pnx_loss loss;
    assert_int_equal(pnx_unet_forward(m, in, 1, 16, 32, 0, NULL), 0);
    assert_int_equal(pnx_unet_backward(m, in, 1, 1, &loss), PNX_EINVAL);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

/* A few dozen Adam steps on one batch fit it: the loss falls well below
 * where it started, and the eval-mode prediction beats the all-empty one. */
static void test_short_training_lowers_the_loss(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_cpu_create(&be, 2), 0);
    pnx_unet *m = NULL;
    assert_int_equal(pnx_unet_create(&m, be, 4), 0);
    assert_int_equal(pnx_unet_init(m, 3), 0);
    const float *input = fixture("input", PIXELS), *target = fixture("target", PIXELS);
    const pnx_adam_hparams adam = {3e-3, 0.9, 0.999, 1e-8, 0.0};
    pnx_loss first = {0}, loss = {0};
    for (int step = 0; step < 40; step++) {
        assert_int_equal(pnx_unet_forward(m, input, N, SIDE, SIDE, 1, NULL), 0);
        assert_int_equal(pnx_unet_backward(m, target, 1.0f, 1.0f, &loss), 0);
        assert_int_equal(pnx_unet_adam_step(m, &adam), 0);
        if (step == 0)
            first = loss;
    }
    assert_true(loss.total < 0.75 * first.total); /* 1.41 → 0.83 when written */
    static float logits[PIXELS];
    assert_int_equal(pnx_unet_forward(m, input, N, SIDE, SIDE, 0, logits), 0);
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < PIXELS; i++) {
        int pred = logits[i] > 0, truth = target[i] > 0.5f;
        tp += pred && truth;
        fp += pred && !truth;
        fn += !pred && truth;
    }
    /* The all-empty prediction has Dice 0 on these images (both have a mask);
     * this one reached 0.94 when written. */
    assert_true(2 * tp / (2 * tp + fp + fn) > 0.5);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/test_model_unet.%d", PNX_BINARY_DIR, (int)getpid());
    if (pnx_mkdir_p(tmpdir, 0755) != 0)
        return -1;
    if (pnx_st_open(&expected, EXPECTED_PATH) != 0) {
        fprintf(stderr, "%s\n", pnx_errmsg());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pnx_st_close(expected);
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_backend_matches_pytorch),
        cmocka_unit_test(test_cpu_backend_matches_pytorch),
        cmocka_unit_test(test_checkpoint_resume_is_exact),
        cmocka_unit_test(test_bad_checkpoints_are_clear_errors),
        cmocka_unit_test(test_default_init),
        cmocka_unit_test(test_short_training_lowers_the_loss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
