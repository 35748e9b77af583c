/*
 * tests/test_ingest_pool.c — the isolated decode pool: a batch of malformed
 * files mixed with good ones (each bad file gets its specific error, the
 * batch goes on, the good files decode exactly as in a clean run), a
 * crashed worker replaced, the wall-clock timeout, and every supported
 * transfer syntax, made from a known image with DCMTK's command-line
 * encoders (skipped when they are not installed).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "ingest/ingest.h"
#include "test_ingest_gen.h"

#define UID_ROOT "1.2.826.0.1.3680043.9.7307.5."

typedef struct expected {
    const char *name;
    int kind;
    const char *message_part; /* a piece the error message must contain */
} expected;

/* Writes n good 8-bit files of different sizes: good_<i>.dcm. */
static void write_good_files(const char *dir, int n)
{
    for (int i = 0; i < n; i++) {
        int rows = 40 + i, cols = 60 - i;
        uint8_t *px = malloc((size_t)rows * cols);
        assert_non_null(px);
        gen_picture8(px, rows, cols);
        char uid[64], name[32], p[4096];
        snprintf(uid, sizeof uid, UID_ROOT "1.%d", i);
        snprintf(name, sizeof name, "good_%d.dcm", i);
        gen_image g = {.sop_uid = uid, .rows = (uint16_t)rows, .columns = (uint16_t)cols,
                       .bits_allocated = 8, .bits_stored = 8, .pixels = px,
                       .pixel_bytes = (uint32_t)(rows * cols)};
        assert_int_equal(gen_write(gen_path(p, sizeof p, dir, name), &g), 0);
        free(px);
    }
}

/* The malformed files of the issue, each with the error it must produce. */
static const expected bad_files[] = {
    {"zero.dcm", PNX_INGEST_ERR_NOT_DICOM, "empty file"},
    {"text.dcm", PNX_INGEST_ERR_NOT_DICOM, "no 'DICM'"},
    {"cut_100.dcm", PNX_INGEST_ERR_NOT_DICOM, "no 'DICM'"},
    {"cut_140.dcm", PNX_INGEST_ERR_TRUNCATED, "file ends"},
    {"cut_300.dcm", PNX_INGEST_ERR_TRUNCATED, "file ends"},
    {"cut_600.dcm", PNX_INGEST_ERR_TRUNCATED, "file ends"},
    {"cut_in_pixels.dcm", PNX_INGEST_ERR_TRUNCATED, "file ends"},
    {"short_pixels.dcm", PNX_INGEST_ERR_TRUNCATED, "pixel data shorter than declared"},
    {"bomb.dcm", PNX_INGEST_ERR_TOO_LARGE, "65535×65535"},
    {"nested.dcm", PNX_INGEST_ERR_MALFORMED, "nested deeper than 256 levels"},
    {"j2k.dcm", PNX_INGEST_ERR_UNSUPPORTED_SYNTAX,
     "unsupported transfer syntax 1.2.840.10008.1.2.4.90 (JPEG 2000)"},
    {"rgb.dcm", PNX_INGEST_ERR_COLOUR, "'RGB'"},
    {"frames.dcm", PNX_INGEST_ERR_MULTIFRAME, "3 frames"},
    {"no_pixels.dcm", PNX_INGEST_ERR_TRUNCATED, "no Pixel Data"},
};
#define N_BAD (sizeof bad_files / sizeof bad_files[0])

static void write_bad_files(const char *dir)
{
    char p[4096];
    enum { R = 64, C = 64 };
    static uint8_t px[R * C];
    gen_picture8(px, R, C);
    gen_image g = {.sop_uid = UID_ROOT "2.1", .rows = R, .columns = C, .bits_allocated = 8,
                   .bits_stored = 8, .pixels = px, .pixel_bytes = sizeof px};

    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "zero.dcm"), "", 0), 0);
    const char *text = "This is a text file with a .dcm name.\n";
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "text.dcm"), text, strlen(text)),
                     0);

    uint8_t *whole = NULL;
    size_t len = gen_build(&g, &whole);
    assert_true(len > 600 + R * C / 2);
    static const struct {
        const char *name;
        size_t at;
    } cuts[] = {{"cut_100.dcm", 100}, {"cut_140.dcm", 140}, {"cut_300.dcm", 300},
                {"cut_600.dcm", 600}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, cuts[i].name), whole,
                                         cuts[i].at),
                         0);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "cut_in_pixels.dcm"), whole,
                                     len - R * C / 2),
                     0);
    free(whole);

    gen_image s = g;
    s.sop_uid = UID_ROOT "2.2";
    s.pixel_bytes = 100; /* a well-formed element, too short for 64×64 */
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "short_pixels.dcm"), &s), 0);

    gen_image bomb = g;
    bomb.sop_uid = UID_ROOT "2.3";
    bomb.rows = bomb.columns = 65535;
    bomb.bits_allocated = bomb.bits_stored = 16;
    bomb.pixel_bytes = 0;
    bomb.declared_pixel_length = 0xFFFFFFFEll;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "bomb.dcm"), &bomb), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size < 1024);

    gen_image nest = g;
    nest.sop_uid = UID_ROOT "2.4";
    nest.nested_sequences = 6000;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "nested.dcm"), &nest), 0);

    gen_image j2k = g;
    j2k.sop_uid = UID_ROOT "2.5";
    j2k.ts_uid = GEN_TS_JPEG2000;
    j2k.encapsulated = 1;
    static const uint8_t j2k_start[] = {0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x2F, 0x00, 0x00};
    j2k.pixels = j2k_start;
    j2k.pixel_bytes = sizeof j2k_start;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "j2k.dcm"), &j2k), 0);

    static uint8_t rgb[R * C * 3];
    gen_image c = g;
    c.sop_uid = UID_ROOT "2.6";
    c.photometric = "RGB";
    c.samples_per_pixel = 3;
    c.pixels = rgb;
    c.pixel_bytes = sizeof rgb;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "rgb.dcm"), &c), 0);

    static uint8_t frames[R * C * 3];
    gen_image f = g;
    f.sop_uid = UID_ROOT "2.7";
    f.frames = 3;
    f.pixels = frames;
    f.pixel_bytes = sizeof frames;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "frames.dcm"), &f), 0);

    /* Cut exactly before the Pixel Data element. */
    gen_image n = g;
    n.sop_uid = UID_ROOT "2.8";
    uint8_t *data = NULL;
    len = gen_build(&n, &data);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "no_pixels.dcm"), data,
                                     len - R * C - 12),
                     0);
    free(data);
}

typedef struct outcome {
    int seen;
    int kind;
    char error[PNX_INGEST_MSG_MAX];
    uint8_t *pixels;
    size_t npixels;
} outcome;

/* Runs the pool over paths; fills out[i] for paths[i]. Every path must come
 * back exactly once. */
static void run_pool(char **paths, size_t n, unsigned workers, const pnx_ingest_limits *lim,
                     outcome *out, unsigned *spawned)
{
    pnx_decode_pool *pool = NULL;
    assert_int_equal(pnx_decode_pool_create(&pool, workers, lim), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pnx_decode_pool_submit(pool, i, paths[i], PNX_DECODE_PIXELS), 0);
    assert_int_equal(pnx_decode_pool_pending(pool), n);
    for (size_t got = 0; got < n; got++) {
        pnx_decode_result r;
        assert_int_equal(pnx_decode_pool_next(pool, &r), 0);
        assert_true(r.index < n);
        assert_string_equal(r.path, paths[r.index]);
        outcome *o = &out[r.index];
        assert_int_equal(o->seen, 0);
        o->seen = 1;
        o->kind = r.error_kind;
        snprintf(o->error, sizeof o->error, "%s", r.error);
        if (r.image.pixels) {
            o->npixels = pnx_image_size(&r.image);
            o->pixels = r.image.pixels;
            r.image.pixels = NULL;
        }
        pnx_decode_result_free(&r);
    }
    pnx_decode_result r;
    assert_int_equal(pnx_decode_pool_next(pool, &r), PNX_ENOTFOUND);
    if (spawned)
        *spawned = pnx_decode_pool_spawned(pool);
    pnx_decode_pool_destroy(pool);
}

static void test_malformed_batch_goes_on(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    enum { N_GOOD = 6 };
    write_good_files(dir, N_GOOD);

    /* The clean run: good files only. */
    char *good[N_GOOD];
    char p[4096];
    for (int i = 0; i < N_GOOD; i++) {
        char name[32];
        snprintf(name, sizeof name, "good_%d.dcm", i);
        good[i] = strdup(gen_path(p, sizeof p, dir, name));
    }
    outcome clean[N_GOOD];
    memset(clean, 0, sizeof clean);
    run_pool(good, N_GOOD, 2, NULL, clean, NULL);
    for (int i = 0; i < N_GOOD; i++)
        assert_int_equal(clean[i].kind, PNX_INGEST_OK);

    /* The mixed run: bad files interleaved with the good ones. */
    write_bad_files(dir);
    size_t n = N_GOOD + N_BAD;
    char **paths = calloc(n, sizeof *paths);
    outcome *mixed = calloc(n, sizeof *mixed);
    assert_non_null(paths);
    assert_non_null(mixed);
    for (size_t i = 0, g = 0, b = 0; i < n; i++) {
        if ((i % 3 == 0 && g < N_GOOD) || b == N_BAD)
            paths[i] = strdup(good[g++]);
        else
            paths[i] = strdup(gen_path(p, sizeof p, dir, bad_files[b++].name));
    }
    unsigned spawned = 0;
    run_pool(paths, n, 2, NULL, mixed, &spawned);
    size_t good_seen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = strrchr(paths[i], '/') + 1;
        if (strncmp(name, "good_", 5) == 0) {
            int gi = atoi(name + 5);
            assert_int_equal(mixed[i].kind, PNX_INGEST_OK);
            assert_int_equal(mixed[i].npixels, clean[gi].npixels);
            assert_memory_equal(mixed[i].pixels, clean[gi].pixels, clean[gi].npixels);
            good_seen++;
            continue;
        }
        for (size_t b = 0; b < N_BAD; b++) {
            if (strcmp(bad_files[b].name, name) != 0)
                continue;
            if (mixed[i].kind != bad_files[b].kind ||
                !strstr(mixed[i].error, bad_files[b].message_part))
                fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", name,
                         pnx_ingest_error_kind_name(mixed[i].kind), mixed[i].error,
                         pnx_ingest_error_kind_name(bad_files[b].kind), bad_files[b].message_part);
            assert_null(mixed[i].pixels);
        }
    }
    assert_int_equal(good_seen, N_GOOD);
    assert_true(spawned >= 2);

    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(mixed[i].pixels);
    }
    for (int i = 0; i < N_GOOD; i++) {
        free(good[i]);
        free(clean[i].pixels);
    }
    free(paths);
    free(mixed);
    gen_rmtree(dir);
    free(dir);
}

static void test_crash_then_next_file(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    write_good_files(dir, 1);
    char good[4096];
    gen_path(good, sizeof good, dir, "good_0.dcm");
    pnx_decode_pool *pool = NULL;
    assert_int_equal(pnx_decode_pool_create(&pool, 1, NULL), 0);
    assert_int_equal(pnx_decode_pool_submit(pool, 0, good, PNX_DECODE_PIXELS), 0);
    assert_int_equal(pnx_decode_pool_submit(pool, 1, good,
                                            PNX_DECODE_PIXELS | PNX_DECODE_TEST_CRASH),
                     0);
    assert_int_equal(pnx_decode_pool_submit(pool, 2, good, PNX_DECODE_PIXELS), 0);
    pnx_decode_result r[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pnx_decode_pool_next(pool, &r[i]), 0);
        assert_int_equal(r[i].index, i); /* one worker: in order */
    }
    assert_int_equal(r[0].error_kind, PNX_INGEST_OK);
    assert_int_equal(r[1].error_kind, PNX_INGEST_ERR_CRASH);
    assert_string_equal(r[1].error, "decode worker crashed: signal 11 (Segmentation fault)");
    assert_null(r[1].image.pixels);
    assert_string_equal(r[1].path, good);
    assert_int_equal(r[2].error_kind, PNX_INGEST_OK);
    assert_memory_equal(r[0].image.pixels, r[2].image.pixels, pnx_image_size(&r[0].image));
    assert_int_equal(pnx_decode_pool_spawned(pool), 2); /* one replacement */
    for (int i = 0; i < 3; i++)
        pnx_decode_result_free(&r[i]);
    pnx_decode_pool_destroy(pool);
    gen_rmtree(dir);
    free(dir);
}

static void test_timeout_then_next_file(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    write_good_files(dir, 1);
    char fifo[4096], good[4096];
    /* Opening a FIFO with no writer blocks: a stand-in for a hung decoder. */
    assert_int_equal(mkfifo(gen_path(fifo, sizeof fifo, dir, "hang.dcm"), 0600), 0);
    gen_path(good, sizeof good, dir, "good_0.dcm");
    char *paths[3] = {fifo, good, good};
    outcome out[3];
    memset(out, 0, sizeof out);
    pnx_ingest_limits lim;
    pnx_ingest_limits_default(&lim);
    lim.timeout_s = 1;
    unsigned spawned = 0;
    run_pool(paths, 3, 1, &lim, out, &spawned);
    assert_int_equal(out[0].kind, PNX_INGEST_ERR_TIMEOUT);
    assert_non_null(strstr(out[0].error, "longer than 1 s"));
    assert_int_equal(out[1].kind, PNX_INGEST_OK);
    assert_int_equal(out[2].kind, PNX_INGEST_OK);
    assert_int_equal(spawned, 2);
    free(out[1].pixels);
    free(out[2].pixels);
    gen_rmtree(dir);
    free(dir);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A worker limited to 64 MiB of address space (a bare worker maps about
 * 50) cannot hold a 4096² 16-bit image: that is a memory error for that
 * file, and the next file decodes. */
static void test_memory_limit(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    skip(); /* no RLIMIT_AS under AddressSanitizer */
#else
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    write_good_files(dir, 1);
    enum { SIDE = 4096 };
    uint16_t *px = malloc((size_t)SIDE * SIDE * 2);
    assert_non_null(px);
    gen_picture16(px, SIDE, SIDE, 12);
    gen_image g = {.sop_uid = UID_ROOT "4.1", .rows = SIDE, .columns = SIDE,
                   .bits_allocated = 16, .bits_stored = 12, .pixels = px,
                   .pixel_bytes = (uint32_t)SIDE * SIDE * 2};
    char big[4096], good[4096];
    assert_int_equal(gen_write(gen_path(big, sizeof big, dir, "big.dcm"), &g), 0);
    free(px);
    gen_path(good, sizeof good, dir, "good_0.dcm");
    char *paths[2] = {big, good};
    outcome out[2];
    memset(out, 0, sizeof out);
    pnx_ingest_limits lim;
    pnx_ingest_limits_default(&lim);
    lim.memory_limit_mb = 64;
    run_pool(paths, 2, 1, &lim, out, NULL);
    if (out[0].kind != PNX_INGEST_ERR_MEMORY)
        fail_msg("big.dcm: %s (%s), want memory", pnx_ingest_error_kind_name(out[0].kind),
                 out[0].error);
    assert_int_equal(out[1].kind, PNX_INGEST_OK);
    free(out[1].pixels);
    gen_rmtree(dir);
    free(dir);
#endif
}

/* ------------------------------------------------------------ syntaxes */

typedef struct conversion {
    const char *name;
    const char *command; /* the tool and its options; input and output follow */
    const char *ts_uid;
    int max_error;       /* 0: lossless; else the largest error of one pixel
                          * (ringing at the square's sharp edges) */
} conversion;

/* Lossy codecs: the mean absolute error over the image stays below this. */
#define LOSSY_MEAN_ERROR 1.5

static int convert(const char *tool, const char *in, const char *out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' >/dev/null 2>&1", tool, in, out);
    return system(cmd);
}

static void check_conversions(const char *dir, const char *source, const conversion *conv,
                              size_t n)
{
    pnx_decode_result ref;
    assert_int_equal(pnx_decode_file_unisolated(source, NULL, PNX_DECODE_PIXELS, &ref), 0);
    assert_int_equal(ref.error_kind, PNX_INGEST_OK);
    char **paths = calloc(n, sizeof *paths);
    outcome *out = calloc(n, sizeof *out);
    assert_non_null(paths);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        paths[i] = strdup(gen_path(p, sizeof p, dir, conv[i].name));
        if (convert(conv[i].command, source, paths[i]) != 0)
            fail_msg("conversion failed: %s", conv[i].command);
    }
    run_pool(paths, n, 2, NULL, out, NULL);
    for (size_t i = 0; i < n; i++) {
        pnx_decode_result meta;
        assert_int_equal(pnx_decode_file_unisolated(paths[i], NULL, 0, &meta), 0);
        assert_string_equal(meta.meta.transfer_syntax, conv[i].ts_uid);
        pnx_decode_result_free(&meta);
        if (out[i].kind != PNX_INGEST_OK)
            fail_msg("%s: %s", conv[i].name, out[i].error);
        assert_int_equal(out[i].npixels, pnx_image_size(&ref.image));
        int worst = 0;
        double sum = 0;
        for (size_t k = 0; k < out[i].npixels; k++) {
            int d = abs((int)out[i].pixels[k] - (int)ref.image.pixels[k]);
            worst = d > worst ? d : worst;
            sum += d;
        }
        double mean = sum / (double)out[i].npixels;
        if (worst > conv[i].max_error || mean > LOSSY_MEAN_ERROR)
            fail_msg("%s: pixel error %d (mean %.2f), allowed %d (mean %.1f)", conv[i].name,
                     worst, mean, conv[i].max_error, LOSSY_MEAN_ERROR);
        free(out[i].pixels);
        free(paths[i]);
    }
    free(out);
    free(paths);
    pnx_decode_result_free(&ref);
}

static void test_every_transfer_syntax(void **state)
{
    (void)state;
    if (!gen_have_program("dcmconv") || !gen_have_program("dcmcjpeg") ||
        !gen_have_program("dcmcjpls") || !gen_have_program("dcmcrle")) {
        skip();
        return;
    }
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char src8[4096], src12[4096];

    enum { R = 48, C = 64 };
    static uint8_t px8[R * C];
    gen_picture8(px8, R, C);
    /* DCMTK's lossy encoders shift the stored range to start at its
     * minimum: with 0 present, the values go in unchanged. */
    px8[0] = 0;
    gen_image g8 = {.sop_uid = UID_ROOT "3.1", .rows = R, .columns = C, .bits_allocated = 8,
                    .bits_stored = 8, .pixels = px8, .pixel_bytes = sizeof px8};
    assert_int_equal(gen_write(gen_path(src8, sizeof src8, dir, "src8.dcm"), &g8), 0);
    static uint16_t px12[R * C];
    gen_picture16(px12, R, C, 12);
    px12[0] = 0;
    gen_image g12 = {.sop_uid = UID_ROOT "3.2", .rows = R, .columns = C, .bits_allocated = 16,
                     .bits_stored = 12, .pixels = px12, .pixel_bytes = sizeof px12,
                     .photometric = "MONOCHROME1"};
    assert_int_equal(gen_write(gen_path(src12, sizeof src12, dir, "src12.dcm"), &g12), 0);

    static const conversion conv8[] = {
        {"8_implicit.dcm", "dcmconv +ti", "1.2.840.10008.1.2", 0},
        {"8_big.dcm", "dcmconv +tb", "1.2.840.10008.1.2.2", 0},
        {"8_deflated.dcm", "dcmconv +td", "1.2.840.10008.1.2.1.99", 0},
        {"8_baseline.dcm", "dcmcjpeg +eb +q 95", "1.2.840.10008.1.2.4.50", 40},
        {"8_lossless14.dcm", "dcmcjpeg +el", "1.2.840.10008.1.2.4.57", 0},
        {"8_lossless_sv1.dcm", "dcmcjpeg +e1", "1.2.840.10008.1.2.4.70", 0},
        {"8_jpegls.dcm", "dcmcjpls +el", "1.2.840.10008.1.2.4.80", 0},
        {"8_jpegls_near.dcm", "dcmcjpls +en +md 2", "1.2.840.10008.1.2.4.81", 2},
        {"8_rle.dcm", "dcmcrle", "1.2.840.10008.1.2.5", 0},
        /* Bare datasets: no preamble, no file meta, found by content. */
        {"8_bare_implicit.dcm", "dcmconv -F +ti", "1.2.840.10008.1.2", 0},
        {"8_bare_explicit.dcm", "dcmconv -F +te", "1.2.840.10008.1.2.1", 0},
    };
    check_conversions(dir, src8, conv8, sizeof conv8 / sizeof conv8[0]);

    static const conversion conv12[] = {
        {"12_implicit.dcm", "dcmconv +ti", "1.2.840.10008.1.2", 0},
        {"12_big.dcm", "dcmconv +tb", "1.2.840.10008.1.2.2", 0},
        {"12_deflated.dcm", "dcmconv +td", "1.2.840.10008.1.2.1.99", 0},
        {"12_extended.dcm", "dcmcjpeg +ee +q 95", "1.2.840.10008.1.2.4.51", 40},
        {"12_lossless14.dcm", "dcmcjpeg +el", "1.2.840.10008.1.2.4.57", 0},
        {"12_lossless_sv1.dcm", "dcmcjpeg +e1", "1.2.840.10008.1.2.4.70", 0},
        {"12_jpegls.dcm", "dcmcjpls +el", "1.2.840.10008.1.2.4.80", 0},
        {"12_rle.dcm", "dcmcrle", "1.2.840.10008.1.2.5", 0},
    };
    check_conversions(dir, src12, conv12, sizeof conv12 / sizeof conv12[0]);
    gen_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_batch_goes_on),
        cmocka_unit_test(test_crash_then_next_file),
        cmocka_unit_test(test_timeout_then_next_file),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_every_transfer_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
