/*
 * tests/test_model_predict.c — `pneumoseg predict` end to end: a
 * PyTorch-written checkpoint and input give PyTorch's eval logits within
 * 1e-4, on the CPU and reference backends; bad invocations and inputs are
 * clear errors with the documented exit status.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "common/safetensors.h"

#define PNEUMOSEG PNX_BINARY_DIR "/pneumoseg"
#define MODEL PNX_TEST_DATA "/model/unet_b4_init.safetensors"
#define EXPECTED PNX_TEST_DATA "/model/unet_b4_expected.safetensors"

static char dir[256], input[300], output[300], errlog[300];

/* Runs pneumoseg predict with args; returns its exit status. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s predict -q %s 2>%s >/dev/null", PNEUMOSEG, args, errlog);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int stderr_mentions(const char *needle)
{
    char *text = NULL;
    size_t len = 0;
    if (pnx_read_file(errlog, 1 << 20, &text, &len) != 0)
        return 0;
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* Writes `input` [n,1,h,w] from the fixture's input (zeros if sizes differ). */
static void write_input(const char *path, int n, int h, int w)
{
    pnx_st_file *e = NULL;
    assert_int_equal(pnx_st_open(&e, EXPECTED), 0);
    const pnx_st_tensor *t = pnx_st_find(e, "input");
    assert_non_null(t);
    size_t count = (size_t)n * h * w;
    float *data = calloc(count, sizeof *data);
    assert_non_null(data);
    if (count == t->numel)
        memcpy(data, t->data, t->nbytes);
    pnx_st_writer *wr = NULL;
    assert_int_equal(pnx_st_writer_create(&wr), 0);
    assert_int_equal(pnx_st_writer_add(wr, "input", PNX_ST_F32, 4, (int64_t[]){n, 1, h, w}, data),
                     0);
    assert_int_equal(pnx_st_writer_write(wr, path), 0);
    pnx_st_writer_free(wr);
    free(data);
    pnx_st_close(e);
}

static void check_logits(void)
{
    pnx_st_file *e = NULL, *o = NULL;
    assert_int_equal(pnx_st_open(&e, EXPECTED), 0);
    assert_int_equal(pnx_st_open(&o, output), 0);
    const pnx_st_tensor *want = pnx_st_find(e, "logits.eval"), *got = NULL;
    assert_int_equal(pnx_st_expect(o, "logits", PNX_ST_F32, 4, (int64_t[]){2, 1, 32, 32}, &got), 0);
    const float *a = got->data, *b = want->data;
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < got->numel; i++) {
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
        maxref = fmax(maxref, fabs(b[i]));
    }
    assert_true(maxdiff <= 1e-4 * maxref);
    assert_string_equal(pnx_st_meta(o, "pneumoseg.base_width"), "4");
    pnx_st_close(o);
    pnx_st_close(e);
}

static void test_predict_matches_pytorch(void **state)
{
    (void)state;
    char args[1024];
    write_input(input, 2, 32, 32);
    /* Batch 1: two passes, streamed into one output. */
    snprintf(args, sizeof args, "--model %s %s -o %s --batch-size 1 --threads 2", MODEL, input,
             output);
    assert_int_equal(run(args), 0);
    check_logits();
    unlink(output);
    snprintf(args, sizeof args, "--model %s %s -o %s --device reference", MODEL, input, output);
    assert_int_equal(run(args), 0);
    check_logits();
    unlink(output);
}

static void test_predict_errors(void **state)
{
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "%s -o %s", input, output);
    assert_int_equal(run(args), 1);
    assert_true(stderr_mentions("need --model"));

    /* A DICOM file: honest about what is not there yet. */
    char dcm[320];
    snprintf(dcm, sizeof dcm, "%s/x.dcm", dir);
    unsigned char bytes[132] = {0};
    memcpy(bytes + 128, "DICM", 4);
    assert_int_equal(pnx_write_file_atomic(dcm, bytes, sizeof bytes), 0);
    snprintf(args, sizeof args, "--model %s %s -o %s", MODEL, dcm, output);
    assert_int_equal(run(args), 3);
    assert_true(stderr_mentions("not built yet"));
    unlink(dcm);

    /* Sides that are not multiples of 16. */
    char odd[320];
    snprintf(odd, sizeof odd, "%s/odd.safetensors", dir);
    write_input(odd, 1, 24, 32);
    snprintf(args, sizeof args, "--model %s %s -o %s", MODEL, odd, output);
    assert_int_not_equal(run(args), 0);
    assert_true(stderr_mentions("multiples of 16"));
    unlink(odd);

    /* The model is not a checkpoint. */
    snprintf(args, sizeof args, "--model %s %s -o %s", input, input, output);
    assert_int_not_equal(run(args), 0);
    assert_true(stderr_mentions("enc1_1.0.weight is missing"));

    snprintf(args, sizeof args, "--model %s %s -o %s --batch-size 0", MODEL, input, output);
    assert_int_equal(run(args), 1);
    assert_int_equal(access(output, F_OK), -1);
}

static int setup(void **state)
{
    (void)state;
    if (access(PNEUMOSEG, X_OK) != 0)
        return 0;
    snprintf(dir, sizeof dir, "%s/test_model_predict.%d", PNX_BINARY_DIR, (int)getpid());
    snprintf(input, sizeof input, "%s/in.safetensors", dir);
    snprintf(output, sizeof output, "%s/out.safetensors", dir);
    snprintf(errlog, sizeof errlog, "%s/stderr.txt", dir);
    return pnx_mkdir_p(dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    unlink(input);
    unlink(errlog);
    rmdir(dir);
    return 0;
}

int main(void)
{
    if (access(PNEUMOSEG, X_OK) != 0) {
        fprintf(stderr, "%s not built: skipped\n", PNEUMOSEG);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_matches_pytorch),
        cmocka_unit_test(test_predict_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
