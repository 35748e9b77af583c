/* tests/test_rle_real.c — the real SIIM train RLE file
 * (../shared/realdata/siim/siim-pneumothorax-train-rle.csv; skipped when
 * absent): every row decodes, the counts are the known ones, each image's
 * united mask equals a naive decoder's, re-encoding it decodes to the same
 * mask, and re-encoding one row's mask gives back that row's text (so the
 * encoder writes what the competition's encoder wrote). */
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
#include "common/image.h"
#include "rle/rle.h"
#include "test_rle_support.h"

#define REAL_CSV PNX_SHARED_DIR "/realdata/siim/siim-pneumothorax-train-rle.csv"
#define SIIM_SIDE 1024

enum {
    REAL_ROWS = 12954,
    REAL_IMAGES = 12047,
    REAL_POSITIVE_IMAGES = 2669,
    REAL_MASK_ROWS = 3576,
    REAL_MULTI_ROW_IMAGES = 624,
};

static pnx_image alloc_siim(void)
{
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, SIIM_SIDE, SIIM_SIDE), 0);
    return m;
}

/* Every row alone: decodes, matches the naive decoder, and re-encodes to
 * its own text. */
static void test_rows(void **state)
{
    (void)state;
    pnx_rle_reader *r;
    assert_int_equal(pnx_rle_reader_open(&r, REAL_CSV), 0);
    pnx_image m = alloc_siim(), naive = alloc_siim();
    pnx_rle_row row;
    int rows = 0, mask_rows = 0, rc;
    while ((rc = pnx_rle_reader_next(r, &row)) == 1) {
        rows++;
        if (pnx_rle_is_empty(row.encoded, row.encoded_len)) {
            assert_string_equal(row.encoded, "-1");
            continue;
        }
        mask_rows++;
        memset(m.pixels, 0, pnx_image_size(&m));
        memset(naive.pixels, 0, pnx_image_size(&naive));
        if (pnx_rle_reader_decode(r, &row, PNX_RLE_FMT_RELATIVE, &m, NULL))
            fail_msg("%s", pnx_errmsg());
        naive_decode(row.encoded, 0, &naive);
        if (memcmp(m.pixels, naive.pixels, pnx_image_size(&m)) != 0)
            fail_msg("line %lld: differs from the naive decoder", (long long)row.line);
        char *text;
        assert_int_equal(pnx_rle_encode(&m, PNX_RLE_FMT_RELATIVE, &text), 0);
        if (strcmp(text, row.encoded) != 0)
            fail_msg("line %lld: re-encoding differs from the file's text", (long long)row.line);
        free(text);
    }
    if (rc)
        fail_msg("%s", pnx_errmsg());
    assert_int_equal(rows, REAL_ROWS);
    assert_int_equal(mask_rows, REAL_MASK_ROWS);
    pnx_rle_reader_close(r);
    pnx_image_free(&m);
    pnx_image_free(&naive);
}

/* Every image, rows united through the index, in both formats. */
static void test_images(void **state)
{
    (void)state;
    pnx_rle_index *ix;
    if (pnx_rle_index_build(&ix, REAL_CSV))
        fail_msg("%s", pnx_errmsg());
    assert_int_equal(pnx_rle_index_row_count(ix), REAL_ROWS);
    assert_int_equal(pnx_rle_index_count(ix), REAL_IMAGES);
    pnx_image m = alloc_siim(), back = alloc_siim(), naive = alloc_siim();
    int positive = 0, multi = 0;
    for (size_t i = 0; i < pnx_rle_index_count(ix); i++) {
        multi += pnx_rle_index_rows(ix, i) > 1;
        if (pnx_rle_index_positive_rows(ix, i) == 0)
            continue;
        positive++;
        if (pnx_rle_index_decode(ix, i, PNX_RLE_FMT_RELATIVE, &m))
            fail_msg("%s", pnx_errmsg());
        for (int f = 0; f < 2; f++) {
            char *text;
            assert_int_equal(pnx_rle_encode(&m, (pnx_rle_fmt)f, &text), 0);
            memset(back.pixels, 0, pnx_image_size(&back));
            if (f == PNX_RLE_FMT_ABSOLUTE)
                memset(naive.pixels, 0, pnx_image_size(&naive));
            assert_int_equal(pnx_rle_decode(text, strlen(text), (pnx_rle_fmt)f, &back, NULL), 0);
            /* test_rows already compared relative strings with the naive decoder */
            if (f == PNX_RLE_FMT_ABSOLUTE)
                naive_decode(text, 1, &naive);
            free(text);
            if (memcmp(m.pixels, back.pixels, pnx_image_size(&m)) != 0 ||
                (f == PNX_RLE_FMT_ABSOLUTE && memcmp(m.pixels, naive.pixels, pnx_image_size(&m)) != 0))
                fail_msg("ImageId %s: re-encoded mask decodes differently", pnx_rle_index_id(ix, i));
        }
    }
    assert_int_equal(positive, REAL_POSITIVE_IMAGES);
    assert_int_equal(multi, REAL_MULTI_ROW_IMAGES);
    pnx_image_free(&m);
    pnx_image_free(&back);
    pnx_image_free(&naive);
    pnx_rle_index_free(ix);
}

int main(void)
{
    if (access(REAL_CSV, R_OK) != 0) {
        fprintf(stderr, "skipped: %s is absent\n", REAL_CSV);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
