/* tests/test_rle.c — rle/ codec: hand-computed vectors in both formats, the
 * reference encoder's last-pixel quirk, uniting rows, every malformed string
 * (mask untouched each time), and random masks of several sizes and
 * densities that must round-trip exactly and agree with a naive decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/image.h"
#include "common/rng.h"
#include "rle/rle.h"
#include "test_rle_support.h"

/* A 4 × 3 mask (width 4, height 3), row-major:
 *   1 0 0 1
 *   1 1 0 0
 *   0 1 0 1
 * Column-major (down each column): 1 1 0 | 0 1 1 | 0 0 0 | 1 0 1, i.e.
 * runs [0,2) [4,6) [9,10) [11,12): the last run ends on the last pixel. */
static const uint8_t small_mask[12] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1};
static const char small_absolute[] = "0 2 4 2 9 1 11 1";
static const char small_relative[] = "0 2 2 2 3 1 1 1";
/* What the competition's reference encoder writes for it: the run still
 * open at the last pixel is never written. */
static const char small_reference_quirk[] = "0 2 2 2 3 1";

static pnx_image make_mask(uint32_t w, uint32_t h)
{
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, w, h), 0);
    return m;
}

static void test_hand_vectors(void **state)
{
    (void)state;
    pnx_image m = make_mask(4, 3);
    char *text = NULL;

    memcpy(m.pixels, small_mask, sizeof small_mask);
    assert_int_equal(pnx_rle_encode(&m, PNX_RLE_FMT_ABSOLUTE, &text), 0);
    assert_string_equal(text, small_absolute);
    free(text);
    assert_int_equal(pnx_rle_encode(&m, PNX_RLE_FMT_RELATIVE, &text), 0);
    assert_string_equal(text, small_relative);
    free(text);

    uint64_t covered = 0;
    memset(m.pixels, 0, 12);
    assert_int_equal(pnx_rle_decode(small_relative, strlen(small_relative), PNX_RLE_FMT_RELATIVE,
                                    &m, &covered), 0);
    assert_memory_equal(m.pixels, small_mask, 12);
    assert_int_equal(covered, 6);
    memset(m.pixels, 0, 12);
    assert_int_equal(pnx_rle_decode(small_absolute, strlen(small_absolute), PNX_RLE_FMT_ABSOLUTE,
                                    &m, NULL), 0);
    assert_memory_equal(m.pixels, small_mask, 12);

    /* The reference encoder's string decodes to the mask minus its last pixel. */
    memset(m.pixels, 0, 12);
    assert_int_equal(pnx_rle_decode(small_reference_quirk, strlen(small_reference_quirk),
                                    PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    uint8_t without_last[12];
    memcpy(without_last, small_mask, 12);
    without_last[11] = 0;
    assert_memory_equal(m.pixels, without_last, 12);

    /* Spaces, tabs and CR around and between values are tolerated. */
    memset(m.pixels, 0, 12);
    const char *spaced = "  0 2  2\t2 3 1 1 1 \r";
    assert_int_equal(pnx_rle_decode(spaced, strlen(spaced), PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    assert_memory_equal(m.pixels, small_mask, 12);

    /* Leading zeros are just digits, however many (the fast parser hands
     * such strings to the careful one). */
    memset(m.pixels, 0, 12);
    const char *zeros = "0000000000000000000000003 00000000000000000000001";
    assert_int_equal(pnx_rle_decode(zeros, strlen(zeros), PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    assert_int_equal(m.pixels[1], 1); /* pixel 3 = (x 1, y 0) */
    m.pixels[1] = 0;
    for (int i = 0; i < 12; i++)
        assert_int_equal(m.pixels[i], 0);

    /* Text need not be NUL-terminated: only len bytes are read. */
    memset(m.pixels, 0, 12);
    assert_int_equal(pnx_rle_decode("0 2 9", 3, PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    assert_int_equal(m.pixels[0], 1);
    assert_int_equal(m.pixels[4], 1);
    assert_int_equal(m.pixels[8], 0);
    pnx_image_free(&m);
}

static void test_non_square_orientation(void **state)
{
    (void)state;
    /* Width 3, height 2: pixel 3 in column-major order is (x 1, y 1). */
    pnx_image m = make_mask(3, 2);
    assert_int_equal(pnx_rle_decode("3 1", 3, PNX_RLE_FMT_ABSOLUTE, &m, NULL), 0);
    const uint8_t want[6] = {0, 0, 0, 0, 1, 0};
    assert_memory_equal(m.pixels, want, 6);
    /* A run crossing from the bottom of column 0 to the top of column 1. */
    memset(m.pixels, 0, 6);
    assert_int_equal(pnx_rle_decode("1 2", 3, PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    const uint8_t want2[6] = {0, 1, 0, 1, 0, 0};
    assert_memory_equal(m.pixels, want2, 6);
    pnx_image_free(&m);
}

static void test_empty_and_union(void **state)
{
    (void)state;
    pnx_image m = make_mask(4, 3);
    char *text = NULL;
    assert_int_equal(pnx_rle_encode(&m, PNX_RLE_FMT_RELATIVE, &text), 0);
    assert_string_equal(text, "-1");
    free(text);
    const char *empties[] = {"-1", " -1", "-1 ", "", "   ", "\r"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        assert_true(pnx_rle_is_empty(empties[i], strlen(empties[i])));
        assert_int_equal(pnx_rle_decode(empties[i], strlen(empties[i]), PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    }
    assert_false(pnx_rle_is_empty("-1 3", 4));
    assert_false(pnx_rle_is_empty("0 1", 3));
    for (int i = 0; i < 12; i++)
        assert_int_equal(m.pixels[i], 0);

    /* Two overlapping rows of one image unite. */
    assert_int_equal(pnx_rle_decode("0 3", 3, PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    assert_int_equal(pnx_rle_decode("2 3", 3, PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    /* pixels 0..4 in column-major: column 0 full, column 1 rows 0-1 */
    const uint8_t want[12] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0};
    assert_memory_equal(m.pixels, want, 12);
    /* Erasing one row leaves the other pixels as they were. */
    assert_int_equal(pnx_rle_erase("0 3", 3, PNX_RLE_FMT_RELATIVE, &m), 0);
    const uint8_t after[12] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(m.pixels, after, 12);
    pnx_image_free(&m);
}

/* Each string must fail with the code given, a message, and no pixel changed. */
static void expect_bad(const char *text, pnx_rle_fmt fmt, int code, const char *needle)
{
    pnx_image m = make_mask(4, 3);
    uint8_t before[12];
    for (int i = 0; i < 12; i++)
        m.pixels[i] = before[i] = (uint8_t)(i % 3 == 0);
    pnx_clear_error();
    int rc = pnx_rle_decode(text, strlen(text), fmt, &m, NULL);
    if (rc != code)
        fail_msg("'%s': got %d (%s), want %d", text, rc, pnx_errmsg(), code);
    if (!strstr(pnx_errmsg(), needle))
        fail_msg("'%s': message '%s' lacks '%s'", text, pnx_errmsg(), needle);
    assert_memory_equal(m.pixels, before, 12);
    assert_int_equal(pnx_rle_erase(text, strlen(text), fmt, &m), code);
    assert_memory_equal(m.pixels, before, 12);
    pnx_image_free(&m);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_bad("0 2 4", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "odd number of values (3)");
    expect_bad("0 2 4 -1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "'-1' is negative");
    expect_bad("-3 2", PNX_RLE_FMT_ABSOLUTE, PNX_EFORMAT, "value 1 of 2: '-3' is negative");
    expect_bad("0 2 x 1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "value 3 of 4: 'x'");
    expect_bad("0 2 1.5 1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "'1.5' is not a non-negative integer");
    expect_bad("0 2 +1 1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "'+1'");
    expect_bad("0x1 1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "'0x1'");
    expect_bad("1 0", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "length 0");
    expect_bad("0 2,4 1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "'2,4'");
    /* Past the end: 12 pixels. */
    expect_bad("0 13", PNX_RLE_FMT_RELATIVE, PNX_ERANGE, "passes the end of the 12-pixel image");
    expect_bad("11 2", PNX_RLE_FMT_ABSOLUTE, PNX_ERANGE, "passes the end");
    expect_bad("12 1", PNX_RLE_FMT_ABSOLUTE, PNX_ERANGE, "passes the end");
    expect_bad("0 6 0 6 0 1", PNX_RLE_FMT_RELATIVE, PNX_ERANGE, "values 5-6 of 6");
    expect_bad("5 3 5 3", PNX_RLE_FMT_RELATIVE, PNX_ERANGE, "passes the end");
    /* Sums that would overflow 64 bits, or values no image can hold. */
    expect_bad("18446744073709551615 1", PNX_RLE_FMT_ABSOLUTE, PNX_ERANGE, "too large");
    expect_bad("99999999999999999999999 1", PNX_RLE_FMT_RELATIVE, PNX_ERANGE, "too large");
    expect_bad("1 18446744073709551615", PNX_RLE_FMT_ABSOLUTE, PNX_ERANGE, "too large");
    expect_bad("1099511627776 1099511627776", PNX_RLE_FMT_RELATIVE, PNX_ERANGE, "passes the end");
    /* Absolute runs must go forward without overlapping. */
    expect_bad("4 2 0 1", PNX_RLE_FMT_ABSOLUTE, PNX_EFORMAT, "before the end 6 of the previous run");
    expect_bad("4 2 5 1", PNX_RLE_FMT_ABSOLUTE, PNX_EFORMAT, "before the end");
    /* Not an RLE string at all. */
    expect_bad("EncodedPixels", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "not a non-negative integer");
    expect_bad("-1 -1", PNX_RLE_FMT_RELATIVE, PNX_EFORMAT, "negative");

    /* Bad arguments. */
    pnx_image none = {0};
    assert_int_equal(pnx_rle_decode("0 1", 3, PNX_RLE_FMT_RELATIVE, &none, NULL), PNX_EINVAL);
    pnx_image m = make_mask(2, 2);
    assert_int_equal(pnx_rle_decode("0 1", 3, (pnx_rle_fmt)7, &m, NULL), PNX_EINVAL);
    char *text = (char *)"x";
    assert_int_equal(pnx_rle_encode(&none, PNX_RLE_FMT_RELATIVE, &text), PNX_EINVAL);
    assert_null(text);
    pnx_image_free(&m);
}

static void test_format_names(void **state)
{
    (void)state;
    pnx_rle_fmt f;
    assert_int_equal(pnx_rle_fmt_parse("relative", &f), 0);
    assert_int_equal(f, PNX_RLE_FMT_RELATIVE);
    assert_int_equal(pnx_rle_fmt_parse("absolute", &f), 0);
    assert_int_equal(f, PNX_RLE_FMT_ABSOLUTE);
    assert_int_equal(pnx_rle_fmt_parse("Relative", &f), PNX_EINVAL);
    assert_int_equal(pnx_rle_fmt_parse(NULL, &f), PNX_EINVAL);
    assert_string_equal(pnx_rle_fmt_name(PNX_RLE_FMT_ABSOLUTE), "absolute");
    /* The values pipeline/config.h's enum pnx_rle_format relies on. */
    assert_int_equal(PNX_RLE_FMT_RELATIVE, 0);
    assert_int_equal(PNX_RLE_FMT_ABSOLUTE, 1);
}

/* Random masks: independent pixels at a density, or a few filled
 * rectangles (lesion-like blobs). Values other than 1 count as foreground. */
static void fill_random(pnx_image *m, pnx_rng *rng, double density, int blobs)
{
    size_t n = pnx_image_size(m);
    memset(m->pixels, 0, n);
    if (!blobs) {
        for (size_t i = 0; i < n; i++)
            m->pixels[i] = pnx_rng_uniform(rng) < density ? (uint8_t)(1 + pnx_rng_below(rng, 255)) : 0;
        return;
    }
    for (int b = 0; b < blobs; b++) {
        uint32_t x0 = (uint32_t)pnx_rng_below(rng, m->width), y0 = (uint32_t)pnx_rng_below(rng, m->height);
        uint32_t x1 = x0 + (uint32_t)pnx_rng_below(rng, m->width - x0) + 1;
        uint32_t y1 = y0 + (uint32_t)pnx_rng_below(rng, m->height - y0) + 1;
        for (uint32_t y = y0; y < y1; y++)
            memset(m->pixels + (size_t)y * m->width + x0, 1, x1 - x0);
    }
}

static void check_round_trip(const pnx_image *src, pnx_rle_fmt fmt)
{
    char *text = NULL;
    assert_int_equal(pnx_rle_encode(src, fmt, &text), 0);
    size_t len = strlen(text);
    assert_true(len > 0);
    assert_true(text[0] != ' ' && text[len - 1] != ' ');
    assert_null(strstr(text, "  "));

    pnx_image back = make_mask(src->width, src->height), naive = make_mask(src->width, src->height);
    uint64_t covered = 0, expected = 0;
    int rc = pnx_rle_decode(text, len, fmt, &back, &covered);
    if (rc)
        fail_msg("%ux%u %s: %s", src->width, src->height, pnx_rle_fmt_name(fmt), pnx_errmsg());
    naive_decode(text, fmt == PNX_RLE_FMT_ABSOLUTE, &naive);
    for (size_t i = 0; i < pnx_image_size(src); i++) {
        uint8_t want = src->pixels[i] != 0;
        expected += want;
        if (back.pixels[i] != want || naive.pixels[i] != want)
            fail_msg("%ux%u %s: pixel %zu differs", src->width, src->height, pnx_rle_fmt_name(fmt), i);
    }
    assert_int_equal(covered, expected);
    /* Erasing the same string gives back an all-zero mask. */
    assert_int_equal(pnx_rle_erase(text, len, fmt, &back), 0);
    for (size_t i = 0; i < pnx_image_size(src); i++)
        if (back.pixels[i])
            fail_msg("%ux%u %s: pixel %zu left after erase", src->width, src->height,
                     pnx_rle_fmt_name(fmt), i);
    free(text);
    pnx_image_free(&back);
    pnx_image_free(&naive);
}

static void test_round_trip_random(void **state)
{
    (void)state;
    static const uint32_t sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {4, 3}, {3, 4},  {7, 13},
                                        {64, 64}, {100, 37}, {37, 100}, {255, 257}, {1024, 1024}};
    static const double densities[] = {0.0, 0.001, 0.05, 0.5, 0.95, 1.0};
    pnx_rng rng;
    pnx_rng_seed(&rng, 20190627, 4);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        pnx_image m = make_mask(sizes[s][0], sizes[s][1]);
        int repeats = sizes[s][0] * sizes[s][1] > 100000 ? 1 : 4;
        for (int r = 0; r < repeats; r++) {
            for (size_t d = 0; d < sizeof densities / sizeof *densities; d++) {
                fill_random(&m, &rng, densities[d], 0);
                check_round_trip(&m, PNX_RLE_FMT_RELATIVE);
                check_round_trip(&m, PNX_RLE_FMT_ABSOLUTE);
            }
            for (int blobs = 1; blobs <= 5; blobs += 2) {
                fill_random(&m, &rng, 0, blobs);
                check_round_trip(&m, PNX_RLE_FMT_RELATIVE);
                check_round_trip(&m, PNX_RLE_FMT_ABSOLUTE);
            }
        }
        /* The corners: last pixel alone, first pixel alone. */
        memset(m.pixels, 0, pnx_image_size(&m));
        m.pixels[pnx_image_size(&m) - 1] = 1;
        check_round_trip(&m, PNX_RLE_FMT_RELATIVE);
        memset(m.pixels, 0, pnx_image_size(&m));
        m.pixels[0] = 1;
        check_round_trip(&m, PNX_RLE_FMT_ABSOLUTE);
        pnx_image_free(&m);
    }
}

/* Strings with more runs than the decoder keeps on its stack take the
 * second-parse path; a bad value at their very end must still leave the
 * mask untouched. */
static void test_long_strings(void **state)
{
    (void)state;
    pnx_image m = make_mask(300, 200);
    for (size_t i = 0; i < pnx_image_size(&m); i++)
        m.pixels[i] = (uint8_t)((i / 300 + i % 300) % 2); /* checkerboard: 30,000 runs */
    check_round_trip(&m, PNX_RLE_FMT_RELATIVE);
    check_round_trip(&m, PNX_RLE_FMT_ABSOLUTE);

    char *text = NULL;
    assert_int_equal(pnx_rle_encode(&m, PNX_RLE_FMT_RELATIVE, &text), 0);
    size_t len = strlen(text);
    char *bad = malloc(len + 8);
    assert_non_null(bad);
    memcpy(bad, text, len);
    memcpy(bad + len, " 0 9999", 8);
    pnx_image target = make_mask(300, 200);
    assert_int_equal(pnx_rle_decode(bad, strlen(bad), PNX_RLE_FMT_RELATIVE, &target, NULL), PNX_ERANGE);
    for (size_t i = 0; i < pnx_image_size(&target); i++)
        assert_int_equal(target.pixels[i], 0);
    free(bad);
    free(text);
    pnx_image_free(&target);
    pnx_image_free(&m);
}

/* Random strings over the characters RLE text is made of (and a few it is
 * not): decoding either succeeds and sets exactly the pixels a naive
 * decoder sets, or fails and leaves the mask as it was. Never a crash (run
 * under ASan/UBSan with -DPNEUMOSEG_SANITIZE=ON). */
static void test_random_strings(void **state)
{
    (void)state;
    static const char alphabet[] = "0123456789012345678901234567890123456789    -x\t.";
    pnx_rng rng;
    pnx_rng_seed(&rng, 17, 2);
    pnx_image m = make_mask(7, 5), before = make_mask(7, 5), naive = make_mask(7, 5);
    char text[48];
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)pnx_rng_below(&rng, sizeof text);
        for (size_t i = 0; i < len; i++)
            text[i] = alphabet[pnx_rng_below(&rng, sizeof alphabet - 1)];
        for (size_t i = 0; i < 35; i++)
            m.pixels[i] = before.pixels[i] = (uint8_t)pnx_rng_below(&rng, 2);
        pnx_rle_fmt fmt = (pnx_rle_fmt)pnx_rng_below(&rng, 2);
        int rc = pnx_rle_decode(text, len, fmt, &m, NULL);
        if (rc) {
            assert_true(rc == PNX_EFORMAT || rc == PNX_ERANGE);
            assert_memory_equal(m.pixels, before.pixels, 35);
            bad++;
            continue;
        }
        ok++;
        char copy[sizeof text + 1];
        memcpy(copy, text, len);
        copy[len] = '\0';
        memcpy(naive.pixels, before.pixels, 35);
        if (!pnx_rle_is_empty(copy, len))
            naive_decode(copy, fmt == PNX_RLE_FMT_ABSOLUTE, &naive);
        assert_memory_equal(m.pixels, naive.pixels, 35);
    }
    /* Both outcomes must have been exercised for the test to mean anything. */
    assert_true(ok > 100);
    assert_true(bad > 100);
    pnx_image_free(&m);
    pnx_image_free(&before);
    pnx_image_free(&naive);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_vectors),
        cmocka_unit_test(test_non_square_orientation),
        cmocka_unit_test(test_empty_and_union),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_random_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
