/* tests/test_rle_cli.c — the `pneumoseg rle` tool, driven as a user would:
 * decode a CSV with far-apart rows of one image, a malformed row and an
 * unsafe ImageId into 0/255 PNGs (read back and compared), encode them back
 * into the same CSV, --id, --help, and the exit statuses. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "pipeline/png_io.h"
#include "test_rle_support.h"

#define PNEUMOSEG PNX_BINARY_DIR "/pneumoseg"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-rle-cli-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs "pneumoseg <args>" with output to g_dir/log; returns the exit status. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >log 2>&1", g_dir, PNEUMOSEG, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_log(void)
{
    static char buf[8192];
    char path[400];
    snprintf(path, sizeof path, "%s/log", g_dir);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static void write_in_dir(const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    write_text_file(path, text, strlen(text));
}

static int exists(const char *name)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return stat(path, &st) == 0;
}

/* 4 × 3 images. "B" has two far-apart rows that overlap; "bad" is malformed;
 * "../evil" may not become a file name. */
static const char csv_text[] = "\xEF\xBB\xBFImageId, EncodedPixels\r\n"
                               "B, 0 3\r\n"
                               "A, -1\r\n"
                               "bad, 0 2 4\r\n"
                               "C, 11 1\r\n"
                               "../evil, 0 1\r\n"
                               "B, 2 3\r\n";

static void check_png(const char *name, const uint8_t want01[12])
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    pnx_image img;
    if (pnx_png_read_gray(path, &img))
        fail_msg("%s", pnx_errmsg());
    assert_int_equal(img.width, 4);
    assert_int_equal(img.height, 3);
    for (int i = 0; i < 12; i++)
        assert_int_equal(img.pixels[i], want01[i] ? 255 : 0);
    pnx_image_free(&img);
}

static void test_decode_encode(void **state)
{
    (void)state;
    write_in_dir("in.csv", csv_text);
    assert_int_equal(run("rle decode in.csv --size 4x3 --out masks"), 2);
    const char *log = read_log();
    assert_non_null(strstr(log, "in.csv:4: ImageId bad: odd number of values"));
    assert_non_null(strstr(log, "cannot be a file name"));
    assert_non_null(strstr(log, "6 rows, 5 images; wrote 3 PNG masks (2 with a mask)"));
    assert_false(exists("masks/bad.png"));
    assert_false(exists("evil.png"));

    const uint8_t want_a[12] = {0};
    const uint8_t want_b[12] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0};
    const uint8_t want_c[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    check_png("masks/A.png", want_a);
    check_png("masks/B.png", want_b);
    check_png("masks/C.png", want_c);

    /* Back to a CSV: one row per image, sorted, relative, Kaggle spelling. */
    assert_int_equal(run("rle encode masks --out out.csv"), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/out.csv", g_dir);
    char *data;
    size_t len;
    assert_int_equal(pnx_read_file(path, 1 << 20, &data, &len), 0);
    assert_string_equal(data, "ImageId,EncodedPixels\nA,-1\nB,0 5\nC,11 1\n");
    free(data);
    assert_int_equal(run("rle encode masks/B.png masks/C.png --out abs.csv --format absolute --style stage1"), 0);
    snprintf(path, sizeof path, "%s/abs.csv", g_dir);
    assert_int_equal(pnx_read_file(path, 1 << 20, &data, &len), 0);
    assert_string_equal(data, "ImageId, EncodedPixels\nB, 0 5\nC, 11 1\n");
    free(data);

    /* --id picks images; an unknown one is an error for that id only. */
    assert_int_equal(run("rle decode in.csv --size 4x3 --out one --id C"), 0);
    assert_true(exists("one/C.png"));
    assert_false(exists("one/B.png"));
    assert_int_equal(run("rle decode in.csv --size 4x3 --out two --id C --id nope"), 2);
    assert_non_null(strstr(read_log(), "no row for ImageId nope"));
    /* Too small an image for the runs: those images fail, nothing partial. */
    assert_int_equal(run("rle decode in.csv --size 2x2 --out small"), 2);
    assert_true(exists("small/A.png"));
    assert_false(exists("small/C.png"));
}

static void test_usage_and_fatal(void **state)
{
    (void)state;
    assert_int_equal(run("rle --help"), 0);
    const char *log = read_log();
    const char *options[] = {"decode", "encode", "--out", "--format", "--size", "--id", "--style",
                             "--config", "--db", "--verbose", "--quiet"};
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
        if (!strstr(log, options[i]))
            fail_msg("--help does not mention %s", options[i]);
    assert_int_equal(run("rle"), 1);
    assert_int_equal(run("rle decode"), 1);
    assert_int_equal(run("rle decode x.csv"), 1);                      /* no --out */
    assert_int_equal(run("rle decode x.csv --out d --format sideways"), 1);
    assert_int_equal(run("rle decode x.csv --out d --size 0x5"), 1);
    assert_int_equal(run("rle decode x.csv --out d --size 70000x5"), 1);
    assert_int_equal(run("rle encode --out x.csv"), 1);
    assert_int_equal(run("rle frobnicate --out x"), 1);
    assert_int_equal(run("rle decode missing.csv --out d"), 3);
    write_in_dir("notcsv.txt", "hello world\n");
    assert_int_equal(run("rle decode notcsv.txt --out d"), 3);
    assert_non_null(strstr(read_log(), "notcsv.txt:1: no comma in first line"));
    write_in_dir("fake.png", "not a png");
    assert_int_equal(run("rle encode fake.png --out f.csv"), 3);
    assert_non_null(strstr(read_log(), "not a readable PNG"));
    assert_false(exists("f.csv"));
    /* The common options are accepted without a configuration file. */
    write_in_dir("ok.csv", "ImageId,EncodedPixels\nA,-1\n");
    assert_int_equal(run("rle decode ok.csv --out okd --config nowhere.yaml --db nowhere.sqlite -q"), 0);
    assert_true(exists("okd/A.png"));
}

int main(void)
{
    if (access(PNEUMOSEG, X_OK) != 0) {
        fprintf(stderr, "skipped: %s is not built\n", PNEUMOSEG);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decode_encode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_and_fatal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
