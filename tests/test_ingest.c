/*
 * tests/test_ingest.c — the decoding rule, the content sniff, the tree walk
 * and single-file decoding (unisolated) against known pixels: generated
 * files, the real SIIM file against dcmj2pnm's output, and the redistributable
 * files of ../shared/realdata/other when present.
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
#include "ingest/grayscale.h"
#include "ingest/ingest.h"
#include "ingest/nesting.h"
#include "test_ingest_gen.h"

#define SIIM_DIR PNX_SHARED_DIR "/realdata/siim"
#define SIIM_FILE SIIM_DIR "/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
#define SIIM_PGM SIIM_DIR "/derived/850819_pixels_dcmtk367_dcmj2pnm.pgm"
#define SIIM_MONO1 SIIM_DIR "/derived/Fake_MONOHR1.dcm"
#define OTHER_DIR PNX_SHARED_DIR "/realdata/other"

static pnx_dicom_meta mono_meta(int bits_allocated, int bits_stored, int pixel_representation)
{
    pnx_dicom_meta m;
    memset(&m, 0, sizeof m);
    m.bits_allocated = bits_allocated;
    m.bits_stored = bits_stored;
    m.high_bit = bits_stored - 1;
    m.pixel_representation = pixel_representation;
    m.rescale_slope = 1.0;
    m.samples_per_pixel = 1;
    m.frames = 1;
    strcpy(m.photometric, "MONOCHROME2");
    return m;
}

/* ------------------------------------------------------------ the rule */

static void test_gray_8bit_identity_and_mono1(void **state)
{
    (void)state;
    uint8_t in[5] = {0, 1, 127, 200, 255}, out[5];
    pnx_dicom_meta m = mono_meta(8, 8, 0);
    assert_int_equal(pnx_gray8_from_samples(in, 5, 1, &m, out), 0);
    assert_memory_equal(in, out, 5);
    strcpy(m.photometric, "MONOCHROME1");
    assert_int_equal(pnx_gray8_from_samples(in, 5, 1, &m, out), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], 255 - in[i]);
}

static void test_gray_8bit_with_rescale_is_minmax(void **state)
{
    (void)state;
    uint8_t in[3] = {10, 20, 30}, out[3];
    pnx_dicom_meta m = mono_meta(8, 8, 0);
    m.rescale_slope = -1.0; /* inverts the order of values */
    assert_int_equal(pnx_gray8_from_samples(in, 3, 1, &m, out), 0);
    assert_int_equal(out[0], 255);
    assert_int_equal(out[1], 128); /* 127.5 rounds up */
    assert_int_equal(out[2], 0);
}

static void test_gray_16bit_minmax(void **state)
{
    (void)state;
    uint16_t in[4] = {100, 200, 300, 100};
    uint8_t out[4];
    pnx_dicom_meta m = mono_meta(16, 12, 0);
    assert_int_equal(pnx_gray8_from_samples(in, 4, 2, &m, out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 128);
    assert_int_equal(out[2], 255);
    assert_int_equal(out[3], 0);

    uint16_t flat[3] = {7, 7, 7};
    assert_int_equal(pnx_gray8_from_samples(flat, 3, 2, &m, out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[2], 0);
}

static void test_gray_signed_high_bits_ignored(void **state)
{
    (void)state;
    /* 12 bits stored, signed: 0x0FFF is -1, 0x0800 is -2048, 0x07FF is
     * 2047; garbage above bit 11 must not matter. */
    uint16_t in[3] = {0xF800, 0xAFFF, 0x57FF};
    uint8_t out[3];
    pnx_dicom_meta m = mono_meta(16, 12, 1);
    assert_int_equal(pnx_gray8_from_samples(in, 3, 2, &m, out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 127); /* (-1 + 2048) / 4095 * 255 = 127.47 */
    assert_int_equal(out[2], 255);
}

static void test_gray_window_linear(void **state)
{
    (void)state;
    /* CT-like: stored + intercept -1024, window 40/400 (PS3.3 C.11.2.1.2.1). */
    uint16_t in[5] = {1024 - 160, 1024 - 161, 1024 + 40, 1024 + 240, 1024 + 239};
    uint8_t out[5];
    pnx_dicom_meta m = mono_meta(16, 16, 0);
    m.rescale_intercept = -1024.0;
    m.has_window = 1;
    m.window_center = 40.0;
    m.window_width = 400.0;
    assert_int_equal(pnx_gray8_from_samples(in, 5, 2, &m, out), 0);
    assert_int_equal(out[0], 0);   /* x <= c - 0.5 - (w-1)/2 = -160 */
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 128); /* ((0.5 / 399) + 0.5) * 255 = 127.8 */
    assert_int_equal(out[3], 255); /* x > c - 0.5 + (w-1)/2 = 239.5 */
    assert_int_equal(out[4], 255); /* 239: ((199.5/399)+0.5)*255 = 255 */

    /* The window applies to 8-bit data too, and before MONOCHROME1 inversion. */
    uint8_t in8[2] = {0, 255}, out8[2];
    pnx_dicom_meta m8 = mono_meta(8, 8, 0);
    m8.has_window = 1;
    m8.window_center = 128.0;
    m8.window_width = 2.0;
    strcpy(m8.photometric, "MONOCHROME1");
    assert_int_equal(pnx_gray8_from_samples(in8, 2, 1, &m8, out8), 0);
    assert_int_equal(out8[0], 255);
    assert_int_equal(out8[1], 0);
}

static void test_gray_bad_layout(void **state)
{
    (void)state;
    uint16_t in[1] = {0};
    uint8_t out[1];
    pnx_dicom_meta m = mono_meta(16, 17, 0);
    assert_int_equal(pnx_gray8_from_samples(in, 1, 2, &m, out), PNX_EFORMAT);
    m = mono_meta(16, 12, 0);
    m.high_bit = 16;
    assert_int_equal(pnx_gray8_from_samples(in, 1, 2, &m, out), PNX_EFORMAT);
    m = mono_meta(12, 12, 0);
    assert_int_equal(pnx_gray8_check_layout(&m), PNX_EFORMAT);
}

/* ------------------------------------------------------------ tables, sniff */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(pnx_transfer_syntax_name("1.2.840.10008.1.2.4.50"), "JPEG Baseline");
    assert_string_equal(pnx_transfer_syntax_name("1.2.840.10008.1.2.4.90"), "JPEG 2000");
    assert_string_equal(pnx_transfer_syntax_name("1.2.3"), "unknown");
    assert_string_equal(pnx_ingest_error_kind_name(PNX_INGEST_ERR_UNSUPPORTED_SYNTAX),
                        "unsupported_syntax");
    assert_string_equal(pnx_ingest_error_kind_name(PNX_INGEST_OK), "ok");
    assert_string_equal(pnx_ingest_error_kind_name(999), "unknown");
    for (int k = 0; k < PNX_INGEST_ERR_KIND_COUNT; k++)
        assert_string_not_equal(pnx_ingest_error_kind_name(k), "unknown");
}

static void test_sniff(void **state)
{
    (void)state;
    uint8_t head[132] = {0};
    memcpy(head + 128, "DICM", 4);
    assert_int_equal(pnx_ingest_sniff(head, 132), 1);
    assert_int_equal(pnx_ingest_sniff(head, 131), 0);
    /* A raw dataset in explicit VR: (0008,0005) CS. */
    const uint8_t raw_explicit[8] = {0x08, 0x00, 0x05, 0x00, 'C', 'S', 0x0A, 0x00};
    assert_int_equal(pnx_ingest_sniff(raw_explicit, 8), 1);
    /* Implicit VR: (0008,0016), length 26. */
    const uint8_t raw_implicit[8] = {0x08, 0x00, 0x16, 0x00, 26, 0, 0, 0};
    assert_int_equal(pnx_ingest_sniff(raw_implicit, 8), 1);
    const char *text = "ImageId, EncodedPixels\n";
    assert_int_equal(pnx_ingest_sniff((const uint8_t *)text, strlen(text)), 0);
    assert_int_equal(pnx_ingest_sniff(head, 0), 0);
}

/* ------------------------------------------------------------ walk */

static gen_image small_image(const char *uid, uint8_t *px, int rows, int cols)
{
    gen_picture8(px, rows, cols);
    gen_image g = {.sop_uid = uid, .rows = (uint16_t)rows, .columns = (uint16_t)cols,
                   .bits_allocated = 8, .bits_stored = 8, .pixels = px,
                   .pixel_bytes = (uint32_t)(rows * cols)};
    return g;
}

static void test_walk(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char p[4096], q[4096];
    static uint8_t px[16 * 16];
    gen_image g = small_image("1.2.826.0.1.3680043.9.7307.4.1", px, 16, 16);
    assert_int_equal(mkdir(gen_path(p, sizeof p, dir, "sub"), 0755), 0);
    assert_int_equal(mkdir(gen_path(p, sizeof p, dir, "sub/deeper"), 0755), 0);
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "a.dcm"), &g), 0);
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "sub/deeper/IM0001"), &g), 0);
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "sub/DICOMDIR"), &g), 0);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "notes.txt"), "hello\n", 6), 0);
    assert_int_equal(gen_write_bytes(gen_path(p, sizeof p, dir, "EMPTY.DCM"), "", 0), 0);
    /* A link back up: the walk must not loop. */
    assert_int_equal(symlink("..", gen_path(p, sizeof p, dir, "sub/deeper/up")), 0);
    assert_int_equal(symlink("/nonexistent/target", gen_path(q, sizeof q, dir, "dangling.dcm")), 0);

    pnx_ingest_file_list list;
    assert_int_equal(pnx_ingest_walk(dir, &list), 0);
    assert_int_equal(list.count, 3);
    assert_string_equal(list.files[0].path, gen_path(p, sizeof p, dir, "EMPTY.DCM"));
    assert_int_equal(list.files[0].looks_dicom, 0);
    assert_int_equal(list.files[0].size, 0);
    assert_string_equal(list.files[1].path, gen_path(p, sizeof p, dir, "a.dcm"));
    assert_int_equal(list.files[1].looks_dicom, 1);
    assert_string_equal(list.files[2].path, gen_path(p, sizeof p, dir, "sub/deeper/IM0001"));
    assert_int_equal(list.skipped, 3); /* notes.txt, DICOMDIR, the dangling link */
    pnx_ingest_file_list_free(&list);

    /* A single file named on the command line is a candidate whatever it is. */
    assert_int_equal(pnx_ingest_walk(gen_path(p, sizeof p, dir, "notes.txt"), &list), 0);
    assert_int_equal(list.count, 1);
    pnx_ingest_file_list_free(&list);

    assert_int_equal(pnx_ingest_walk(gen_path(p, sizeof p, dir, "missing"), &list), PNX_ENOTFOUND);
    gen_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ decoding */

static void decode(const char *path, pnx_decode_result *r)
{
    assert_int_equal(pnx_decode_file_unisolated(path, NULL, PNX_DECODE_PIXELS, r), 0);
}

static void test_decode_generated_8bit(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char p[4096];
    static uint8_t px[37 * 53]; /* odd sizes: padding of the pixel data */
    gen_image g = small_image("1.2.826.0.1.3680043.9.7307.4.2", px, 37, 53);
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "x.dcm"), &g), 0);
    pnx_decode_result r;
    decode(p, &r);
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    assert_int_equal(r.image.width, 53);
    assert_int_equal(r.image.height, 37);
    assert_memory_equal(r.image.pixels, px, sizeof px);
    assert_string_equal(r.meta.sop_uid, "1.2.826.0.1.3680043.9.7307.4.2");
    assert_string_equal(r.meta.study_uid, "1.2.826.0.1.3680043.9.7307.2.1");
    assert_string_equal(r.meta.patient_id, "PNX-TEST");
    assert_string_equal(r.meta.modality, "CR");
    assert_string_equal(r.meta.view_position, "PA");
    assert_string_equal(r.meta.transfer_syntax, GEN_TS_EXPLICIT_LE);
    assert_int_equal(r.meta.spacing_source, 1);
    assert_true(r.meta.pixel_spacing_row == 0.168);
    assert_int_equal(r.meta.lossy, -1);
    pnx_decode_result_free(&r);

    /* Metadata only: the header checks run, no pixels come back. */
    assert_int_equal(pnx_decode_file_unisolated(p, NULL, 0, &r), 0);
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    assert_null(r.image.pixels);
    assert_int_equal(r.meta.rows, 37);
    pnx_decode_result_free(&r);
    gen_rmtree(dir);
    free(dir);
}

static void test_decode_generated_16bit_window_and_budget(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char p[4096];
    enum { ROWS = 20, COLS = 30 };
    static uint16_t px[ROWS * COLS];
    gen_picture16(px, ROWS, COLS, 12);
    gen_image g = {.sop_uid = "1.2.826.0.1.3680043.9.7307.4.3", .rows = ROWS, .columns = COLS,
                   .bits_allocated = 16, .bits_stored = 12, .pixels = px,
                   .pixel_bytes = sizeof px, .rescale_slope = "2", .rescale_intercept = "-1000",
                   .window_center = "1000", .window_width = "4000",
                   .photometric = "MONOCHROME1"};
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "w.dcm"), &g), 0);
    pnx_decode_result r;
    decode(p, &r);
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    pnx_dicom_meta m = r.meta;
    uint8_t expect[ROWS * COLS];
    assert_int_equal(pnx_gray8_from_samples(px, ROWS * COLS, 2, &m, expect), 0);
    assert_memory_equal(r.image.pixels, expect, sizeof expect);
    /* Spot check of the rule by hand: x = 2 * v - 1000, window 1000/4000,
     * then inverted. */
    double x = 2.0 * px[0] - 1000.0;
    double y = ((x - 999.5) / 3999.0 + 0.5) * 255.0;
    int by_hand = 255 - (y <= 0 ? 0 : y >= 255 ? 255 : (int)(y + 0.5));
    assert_int_equal(r.image.pixels[0], by_hand);
    assert_true(r.meta.has_window);
    assert_true(r.meta.rescale_slope == 2.0);
    pnx_decode_result_free(&r);

    pnx_ingest_limits lim;
    pnx_ingest_limits_default(&lim);
    lim.max_pixels = ROWS * COLS - 1;
    assert_int_equal(pnx_decode_file_unisolated(p, &lim, PNX_DECODE_PIXELS, &r), 0);
    assert_int_equal(r.error_kind, PNX_INGEST_ERR_TOO_LARGE);
    assert_null(r.image.pixels);
    assert_string_equal(r.meta.sop_uid, "1.2.826.0.1.3680043.9.7307.4.3");
    pnx_decode_result_free(&r);
    pnx_ingest_limits_default(&lim);
    lim.max_bits = 8;
    assert_int_equal(pnx_decode_file_unisolated(p, &lim, PNX_DECODE_PIXELS, &r), 0);
    assert_int_equal(r.error_kind, PNX_INGEST_ERR_TOO_LARGE);
    assert_non_null(strstr(r.error, "Bits Allocated 16"));
    pnx_decode_result_free(&r);
    gen_rmtree(dir);
    free(dir);
}

/* The nesting pre-scan: 256 levels are a (strange) file, 257 are refused
 * before DCMTK, whose recursion would crash a few thousand levels down. */
static void test_decode_nesting_limit(void **state)
{
    (void)state;
    char *dir = gen_tmpdir();
    assert_non_null(dir);
    char p[4096];
    static uint8_t px[8 * 8];
    gen_image g = small_image("1.2.826.0.1.3680043.9.7307.4.5", px, 8, 8);
    g.nested_sequences = 256;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "n256.dcm"), &g), 0);
    pnx_decode_result r;
    decode(p, &r);
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    pnx_decode_result_free(&r);
    g.nested_sequences = 257;
    assert_int_equal(gen_write(gen_path(p, sizeof p, dir, "n257.dcm"), &g), 0);
    decode(p, &r);
    assert_int_equal(r.error_kind, PNX_INGEST_ERR_MALFORMED);
    assert_string_equal(r.error, "sequences nested deeper than 256 levels (hostile file?)");
    assert_null(r.image.pixels);
    pnx_decode_result_free(&r);
    gen_rmtree(dir);
    free(dir);
}

/* The pre-scan reads untrusted bytes in C: every prefix and random damage
 * of a nested file must be scanned without reading out of bounds (this
 * test earns its keep under -DPNEUMOSEG_SANITIZE=ON). */
static void test_nesting_scan_on_damaged_input(void **state)
{
    (void)state;
    static uint8_t px[4 * 4];
    gen_image g = small_image("1.2.826.0.1.3680043.9.7307.4.6", px, 4, 4);
    g.nested_sequences = 40;
    uint8_t *data = NULL;
    size_t len = gen_build(&g, &data);
    assert_true(len > 0);
    assert_int_equal(pnx_nesting_exceeds(data, len, 40), 0);
    assert_int_equal(pnx_nesting_exceeds(data, len, 39), 1);
    for (size_t cut = 0; cut <= len; cut++) {
        /* A copy of exactly cut bytes, so that ASan sees any overread. */
        uint8_t *prefix = malloc(cut ? cut : 1);
        assert_non_null(prefix);
        memcpy(prefix, data, cut);
        int v = pnx_nesting_exceeds(prefix, cut, 39);
        assert_true(v == 0 || v == 1);
        free(prefix);
    }
    uint32_t seed = 12345;
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    for (int round = 0; round < 2000; round++) {
        memcpy(copy, data, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1664525u + 1013904223u;
            copy[(seed >> 8) % len] = (uint8_t)(seed >> 24);
        }
        int v = pnx_nesting_exceeds(copy, len, 8);
        assert_true(v == 0 || v == 1);
    }
    free(copy);
    free(data);
}

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Reads the pixel bytes of a binary 8-bit PGM. */
static uint8_t *read_pgm(const char *path, unsigned *w, unsigned *h)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned maxval = 0;
    uint8_t *px = NULL;
    if (fscanf(f, "P5 %u %u %u", w, h, &maxval) == 3 && maxval == 255 && fgetc(f) != EOF) {
        px = malloc((size_t)*w * *h);
        if (px && fread(px, 1, (size_t)*w * *h, f) != (size_t)*w * *h) {
            free(px);
            px = NULL;
        }
    }
    fclose(f);
    return px;
}

static void test_decode_real_siim_equals_dcmj2pnm(void **state)
{
    (void)state;
    if (!file_exists(SIIM_FILE) || !file_exists(SIIM_PGM)) {
        skip();
        return;
    }
    unsigned w = 0, h = 0;
    uint8_t *ref = read_pgm(SIIM_PGM, &w, &h);
    assert_non_null(ref);
    assert_int_equal(w, 1024);
    assert_int_equal(h, 1024);
    pnx_decode_result r;
    decode(SIIM_FILE, &r);
    assert_int_equal(r.error_kind, PNX_INGEST_OK);
    assert_int_equal(r.image.width, 1024);
    assert_int_equal(r.image.height, 1024);
    assert_memory_equal(r.image.pixels, ref, (size_t)w * h);
    const pnx_dicom_meta *m = &r.meta;
    assert_string_equal(m->sop_uid, "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819");
    assert_string_equal(m->study_uid, "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818");
    assert_string_equal(m->series_uid, "1.2.276.0.7230010.3.1.3.8323329.6904.1517875201.850817");
    assert_string_equal(m->patient_id, "16d7f894-55d7-4d95-8957-d18987f0e981");
    assert_string_equal(m->transfer_syntax, "1.2.840.10008.1.2.4.50");
    assert_string_equal(m->sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
    assert_string_equal(m->view_position, "PA");
    assert_string_equal(m->modality, "CR");
    assert_int_equal(m->lossy, 1);
    assert_string_equal(m->lossy_method, "ISO_10918_1");
    assert_int_equal(m->spacing_source, 1);
    assert_true(m->pixel_spacing_row == 0.168 && m->pixel_spacing_col == 0.168);
    assert_int_equal(m->has_window, 0);
    pnx_decode_result_free(&r);

    if (file_exists(SIIM_MONO1)) {
        decode(SIIM_MONO1, &r);
        assert_int_equal(r.error_kind, PNX_INGEST_OK);
        assert_string_equal(r.meta.photometric, "MONOCHROME1");
        for (size_t i = 0; i < (size_t)w * h; i++)
            if (r.image.pixels[i] != 255 - ref[i])
                fail_msg("MONOCHROME1 pixel %zu: %d, want %d", i, r.image.pixels[i], 255 - ref[i]);
        pnx_decode_result_free(&r);
    }
    free(ref);
}

/* Lossless encodings of one image decode to the same grayscale. */
static void test_decode_real_other_files(void **state)
{
    (void)state;
    if (!file_exists(OTHER_DIR "/MR_small.dcm")) {
        skip();
        return;
    }
    pnx_decode_result ref, r;
    decode(OTHER_DIR "/MR_small.dcm", &ref);
    assert_int_equal(ref.error_kind, PNX_INGEST_OK);
    assert_int_equal(ref.meta.pixel_representation, 1);
    static const char *const same[] = {OTHER_DIR "/MR_small_RLE.dcm",
                                       OTHER_DIR "/MR_small_jpeg_ls_lossless.dcm"};
    for (size_t i = 0; i < 2; i++) {
        decode(same[i], &r);
        assert_int_equal(r.error_kind, PNX_INGEST_OK);
        assert_int_equal(r.image.width, ref.image.width);
        assert_memory_equal(r.image.pixels, ref.image.pixels, pnx_image_size(&ref.image));
        pnx_decode_result_free(&r);
    }
    pnx_decode_result_free(&ref);

    static const struct {
        const char *name;
        int kind;
    } cases[] = {
        {"CT_small.dcm", PNX_INGEST_OK},
        {"JPGExtended.dcm", PNX_INGEST_OK},
        {"JPGLosslessP14SV1_1s_1f_8b.dcm", PNX_INGEST_OK},
        {"JPEGLSNearLossless_08.dcm", PNX_INGEST_OK},
        {"JLSL_16_15_1_1F.dcm", PNX_INGEST_OK},
        {"pydicom_dicomdirtests_CR1_6154.dcm", PNX_INGEST_OK},
        {"JLSL_08_07_0_1F.dcm", PNX_INGEST_ERR_DECODE}, /* DCMTK 3.6.7 rejects it */
        {"RG1_J2KI.dcm", PNX_INGEST_ERR_UNSUPPORTED_SYNTAX},
        {"SC_rgb_jpeg_dcmtk.dcm", PNX_INGEST_ERR_COLOUR},
        {"emri_small_RLE.dcm", PNX_INGEST_ERR_MULTIFRAME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[4096];
        decode(gen_path(p, sizeof p, OTHER_DIR, cases[i].name), &r);
        if (r.error_kind != cases[i].kind)
            fail_msg("%s: %s (%s), want %s", cases[i].name,
                     pnx_ingest_error_kind_name(r.error_kind), r.error,
                     pnx_ingest_error_kind_name(cases[i].kind));
        assert_int_equal(r.image.pixels != NULL, cases[i].kind == PNX_INGEST_OK);
        pnx_decode_result_free(&r);
    }

    /* The real MONOCHROME1 CR: 12 of 16 bits, no window in the file →
     * min–max, then inverted, so its extremes are 0 and 255. */
    decode(OTHER_DIR "/pydicom_dicomdirtests_CR1_6154.dcm", &r);
    uint8_t lo = 255, hi = 0;
    for (size_t i = 0; i < pnx_image_size(&r.image); i++) {
        lo = r.image.pixels[i] < lo ? r.image.pixels[i] : lo;
        hi = r.image.pixels[i] > hi ? r.image.pixels[i] : hi;
    }
    if (!r.meta.has_window) {
        assert_int_equal(lo, 0);
        assert_int_equal(hi, 255);
    }
    pnx_decode_result_free(&r);

    decode(OTHER_DIR "/RG1_J2KI.dcm", &r);
    assert_string_equal(r.error,
                        "unsupported transfer syntax 1.2.840.10008.1.2.4.91 (JPEG 2000 lossy)");
    pnx_decode_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gray_8bit_identity_and_mono1),
        cmocka_unit_test(test_gray_8bit_with_rescale_is_minmax),
        cmocka_unit_test(test_gray_16bit_minmax),
        cmocka_unit_test(test_gray_signed_high_bits_ignored),
        cmocka_unit_test(test_gray_window_linear),
        cmocka_unit_test(test_gray_bad_layout),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_decode_generated_8bit),
        cmocka_unit_test(test_decode_generated_16bit_window_and_budget),
        cmocka_unit_test(test_decode_nesting_limit),
        cmocka_unit_test(test_nesting_scan_on_damaged_input),
        cmocka_unit_test(test_decode_real_siim_equals_dcmj2pnm),
        cmocka_unit_test(test_decode_real_other_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
