/*
 * tests/test_model_predict.c — `pneumoseg predict` end to end: a
 * PyTorch-written checkpoint and input give PyTorch's eval logits within
 * 1e-4, on the CPU and reference backends; DICOM input is preprocessed as
 * the train stage does; bad invocations and inputs are clear errors with
 * the documented exit status.
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
#include "common/image.h"
#include "common/safetensors.h"
#include "ingest/ingest.h"
#include "preprocess/resize.h"

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
    /* bf16 is for GPUs: the CPU computes in fp32 (and warns, which -q hides),
     * the same logits. */
    snprintf(args, sizeof args, "--model %s %s -o %s --device cpu --precision bf16", MODEL,
             input, output);
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

    /* A file that only looks like DICOM: nothing decodes, nothing written. */
    char dcm[320];
    snprintf(dcm, sizeof dcm, "%s/x.dcm", dir);
    unsigned char bytes[132] = {0};
    memcpy(bytes + 128, "DICM", 4);
    assert_int_equal(pnx_write_file_atomic(dcm, bytes, sizeof bytes), 0);
    snprintf(args, sizeof args, "--model %s --size 32 %s -o %s", MODEL, dcm, output);
    assert_int_not_equal(run(args), 0);
    assert_true(stderr_mentions("none of the 1 DICOM file(s) could be decoded"));
    assert_int_equal(access(output, F_OK), -1);
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

    /* fp16 is not built: a usage error naming the choices. */
    snprintf(args, sizeof args, "--model %s %s -o %s --precision fp16", MODEL, input, output);
    assert_int_equal(run(args), 1);
    assert_true(stderr_mentions("expected fp32, tf32 or bf16"));
    assert_int_equal(access(output, F_OK), -1);
}

/* DICOM input equals the same images decoded, resized and scaled by hand
 * and given as a safetensors input; UIDs come out in order; a file that is
 * not DICOM is left out with exit status 2. */
static void test_predict_dicom(void **state)
{
    (void)state;
    char cmd[512], paths[2][1024];
    snprintf(cmd, sizeof cmd, "find %s/sample_dicom/dicom-images-test -name '*.dcm' | sort | head -2",
             PNX_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    for (int i = 0; i < 2; i++) {
        if (!fgets(paths[i], sizeof paths[i], p))
            skip();
        paths[i][strcspn(paths[i], "\n")] = '\0';
    }
    pclose(p);

    const int side = 32, per = side * side;
    float *data = malloc(2 * per * sizeof *data);
    assert_non_null(data);
    char uids[2][128];
    for (int i = 0; i < 2; i++) {
        pnx_decode_result r;
        assert_int_equal(pnx_decode_file_unisolated(paths[i], NULL, PNX_DECODE_PIXELS, &r), 0);
        assert_int_equal(r.error_kind, PNX_INGEST_OK);
        pnx_image small = {0};
        assert_int_equal(pnx_resize_image(&r.image, side, &small), 0);
        for (int k = 0; k < per; k++)
            data[i * per + k] = (float)small.pixels[k] / 255.0f;
        snprintf(uids[i], sizeof uids[i], "%s", r.meta.sop_uid);
        pnx_image_free(&small);
        pnx_decode_result_free(&r);
    }
    pnx_st_writer *wr = NULL;
    assert_int_equal(pnx_st_writer_create(&wr), 0);
    assert_int_equal(pnx_st_writer_add(wr, "input", PNX_ST_F32, 4, (int64_t[]){2, 1, side, side},
                                       data), 0);
    assert_int_equal(pnx_st_writer_write(wr, input), 0);
    pnx_st_writer_free(wr);
    free(data);

    char by_hand[320], args[4096];
    snprintf(by_hand, sizeof by_hand, "%s/by_hand.safetensors", dir);
    snprintf(args, sizeof args, "--model %s %s -o %s", MODEL, input, by_hand);
    assert_int_equal(run(args), 0);
    snprintf(args, sizeof args, "--model %s --size %d %s %s %s -o %s", MODEL, side, paths[0],
             PNX_SOURCE_DIR "/README.md", paths[1], output);
    assert_int_equal(run(args), 2);
    assert_true(stderr_mentions("not_dicom"));

    pnx_st_file *a = NULL, *b = NULL;
    assert_int_equal(pnx_st_open(&a, by_hand), 0);
    assert_int_equal(pnx_st_open(&b, output), 0);
    const pnx_st_tensor *ta = pnx_st_find(a, "logits"), *tb = pnx_st_find(b, "logits");
    assert_true(ta && tb && ta->nbytes == tb->nbytes);
    assert_memory_equal(ta->data, tb->data, ta->nbytes);
    char want[300];
    snprintf(want, sizeof want, "[\"%s\",\"%s\"]", uids[0], uids[1]);
    assert_string_equal(pnx_st_meta(b, "pneumoseg.sop_instance_uids"), want);
    pnx_st_close(a);
    pnx_st_close(b);
    unlink(by_hand);
    unlink(output);

    /* Without --size, the fixture checkpoint does not say its side. */
    snprintf(args, sizeof args, "--model %s %s -o %s", MODEL, paths[0], output);
    assert_int_equal(run(args), 1);
    assert_true(stderr_mentions("give --size"));
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
        cmocka_unit_test(test_predict_dicom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
