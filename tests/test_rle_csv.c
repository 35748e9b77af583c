/* tests/test_rle_csv.c — rle/ CSV reader, index and writer: the spellings
 * of the real files (BOM, CRLF, header with or without a space, leading
 * spaces, blank lines, no header), every malformed file with its line and
 * ImageId in the message, uniting non-consecutive rows, a file that is not
 * an RLE CSV, and writer output that reads back in both styles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/image.h"
#include "rle/rle.h"
#include "test_rle_support.h"

static char g_dir[256];
static char g_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-rle-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *file_with(const char *text, size_t len)
{
    static int n;
    snprintf(g_path, sizeof g_path, "%s/f%d.csv", g_dir, n++);
    write_text_file(g_path, text, len);
    return g_path;
}

/* Reads every row of text; returns the count and checks ids/rles/lines
 * against the expected arrays when given. */
static int read_all(const char *text, size_t len, const char **ids, const char **rles,
                    const int64_t *lines)
{
    pnx_rle_reader *r;
    assert_int_equal(pnx_rle_reader_open(&r, file_with(text, len)), 0);
    pnx_rle_row row;
    int n = 0, rc;
    while ((rc = pnx_rle_reader_next(r, &row)) == 1) {
        if (ids)
            assert_string_equal(row.image_id, ids[n]);
        if (rles)
            assert_string_equal(row.encoded, rles[n]);
        if (lines)
            assert_int_equal(row.line, lines[n]);
        assert_int_equal(strlen(row.image_id), row.image_id_len);
        assert_int_equal(strlen(row.encoded), row.encoded_len);
        n++;
    }
    if (rc != 0)
        fail_msg("unexpected error: %s", pnx_errmsg());
    pnx_rle_reader_close(r);
    return n;
}

static void test_spellings(void **state)
{
    (void)state;
    const char *ids[] = {"1.2.3", "1.2.4", "1.2.5"};
    const char *rles[] = {"-1", "0 2 2 2", "-1"};
    const int64_t lines[] = {2, 3, 4};
#define T(s) s, sizeof(s) - 1
    /* Kaggle stage 2 */
    assert_int_equal(read_all(T("ImageId,EncodedPixels\n1.2.3,-1\n1.2.4,0 2 2 2\n1.2.5,-1\n"), ids, rles, lines), 3);
    /* stage-1: space after the comma in header and rows, CRLF, BOM, blank last lines */
    assert_int_equal(read_all(T("\xEF\xBB\xBFImageId, EncodedPixels\r\n1.2.3, -1\r\n1.2.4, 0 2 2 2 \r\n1.2.5, -1\r\n\r\n\n"),
                              ids, rles, lines), 3);
    /* no newline at the end, spaces around names, other case */
    assert_int_equal(read_all(T(" imageid , ENCODEDPIXELS \n1.2.3 ,-1\n 1.2.4,0 2 2 2\n1.2.5,-1"), ids, rles, lines), 3);
    /* no header (how Kaggle kernels read the sample file), BOM on a data row */
    const int64_t lines_nohdr[] = {1, 2, 3};
    assert_int_equal(read_all(T("\xEF\xBB\xBF" "1.2.3,-1\n1.2.4,0 2 2 2\n1.2.5,-1\n"), ids, rles, lines_nohdr), 3);
    /* blank lines in the middle keep their line numbers */
    const int64_t lines_gap[] = {2, 4, 7};
    assert_int_equal(read_all(T("ImageId,EncodedPixels\n1.2.3,-1\n\n1.2.4,0 2 2 2\n  \n\r\n1.2.5,-1\n"), ids, rles, lines_gap), 3);
    /* an empty EncodedPixels field is an empty mask */
    const char *rles_blank[] = {"", "0 2 2 2", "-1"};
    assert_int_equal(read_all(T("ImageId,EncodedPixels\n1.2.3,\n1.2.4,0 2 2 2\n1.2.5,-1\n"), ids, rles_blank, NULL), 3);
    /* header only, or nothing at all: zero rows */
    assert_int_equal(read_all(T("ImageId,EncodedPixels\n"), NULL, NULL, NULL), 0);
    assert_int_equal(read_all(T(""), NULL, NULL, NULL), 0);
    assert_int_equal(read_all(T("\n\n"), NULL, NULL, NULL), 0);
#undef T
}

/* A long line (past the reader's first block) still comes back whole. */
static void test_long_line(void **state)
{
    (void)state;
    size_t pairs = 200000;
    size_t cap = 64 + pairs * 4;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "ImageId,EncodedPixels\nshort,-1\nlong,");
    for (size_t i = 0; i < pairs; i++)
        n += (size_t)snprintf(text + n, cap - n, i ? " 1 1" : "1 1");
    n += (size_t)snprintf(text + n, cap - n, "\nlast,-1\n");
    pnx_rle_reader *r;
    assert_int_equal(pnx_rle_reader_open(&r, file_with(text, n)), 0);
    pnx_rle_row row;
    assert_int_equal(pnx_rle_reader_next(r, &row), 1);
    assert_int_equal(pnx_rle_reader_next(r, &row), 1);
    assert_string_equal(row.image_id, "long");
    assert_int_equal(row.encoded_len, pairs * 4 - 1);
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 1000, 800), 0);
    uint64_t covered;
    assert_int_equal(pnx_rle_reader_decode(r, &row, PNX_RLE_FMT_RELATIVE, &m, &covered), 0);
    assert_int_equal(covered, pairs);
    assert_int_equal(pnx_rle_reader_next(r, &row), 1);
    assert_string_equal(row.image_id, "last");
    assert_int_equal(row.line, 4);
    assert_int_equal(pnx_rle_reader_next(r, &row), 0);
    pnx_rle_reader_close(r);
    pnx_image_free(&m);
    free(text);
}

/* Reading must fail on the given line with a message holding needle. */
static void expect_bad_file(const char *text, size_t len, int code, const char *needle)
{
    pnx_rle_reader *r;
    const char *path = file_with(text, len);
    assert_int_equal(pnx_rle_reader_open(&r, path), 0);
    pnx_rle_row row;
    int rc;
    while ((rc = pnx_rle_reader_next(r, &row)) == 1) {
    }
    pnx_rle_reader_close(r);
    if (rc != code)
        fail_msg("got %d (%s), want %d", rc, pnx_errmsg(), code);
    if (!strstr(pnx_errmsg(), needle) || !strstr(pnx_errmsg(), path))
        fail_msg("message '%s' lacks '%s' or the path", pnx_errmsg(), needle);
}

static void test_malformed_files(void **state)
{
    (void)state;
#define T(s) s, sizeof(s) - 1
    expect_bad_file(T("ImageId,EncodedPixels\n1.2.3,-1\n1.2.4 0 2\n"), PNX_EFORMAT, ":3: row without a comma");
    expect_bad_file(T("ImageId,EncodedPixels\n1.2.3,-1,x\n"), PNX_EFORMAT, ":2: row with more than one comma");
    expect_bad_file(T("ImageId,EncodedPixels\n1.2.3,-1\n ,0 2\n"), PNX_EFORMAT, ":3: empty ImageId");
    expect_bad_file(T("\xEF\xBB\xBF" "fname,mask\n1.2.3,-1\n"), PNX_EFORMAT,
                    ":1: header 'fname,mask' is not 'ImageId,EncodedPixels'");
    expect_bad_file(T("a,b,c,d\n1,2,3,4\n"), PNX_EFORMAT, ":1: first line has more than two fields");
    expect_bad_file(T("just some text\n"), PNX_EFORMAT, ":1: no comma in first line");
    expect_bad_file(T("\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), PNX_EFORMAT, ":1: no comma in first line: not an RLE CSV");
    expect_bad_file(T("\x1f\x8b\x08\0,\0\0"), PNX_EFORMAT, ":1: control byte in line: not an RLE CSV");
    expect_bad_file(T("ImageId,EncodedPixels\n1.2.3,0 1\0\n"), PNX_EFORMAT, ":2: control byte");
#undef T
    pnx_rle_reader *r = NULL;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist.csv", g_dir);
    assert_int_equal(pnx_rle_reader_open(&r, missing), PNX_ENOTFOUND);
    assert_null(r);
    assert_non_null(strstr(pnx_errmsg(), "does-not-exist.csv"));
}

/* A row whose RLE is bad: the decode message names file, line and ImageId. */
static void test_decode_error_names_row(void **state)
{
    (void)state;
    static const char text[] = "ImageId, EncodedPixels\n1.2.3, -1\n1.2.9, 5 2 7\n";
    pnx_rle_reader *r;
    const char *path = file_with(text, sizeof text - 1);
    assert_int_equal(pnx_rle_reader_open(&r, path), 0);
    pnx_rle_row row;
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 16, 16), 0);
    assert_int_equal(pnx_rle_reader_next(r, &row), 1);
    assert_int_equal(pnx_rle_reader_decode(r, &row, PNX_RLE_FMT_RELATIVE, &m, NULL), 0);
    assert_int_equal(pnx_rle_reader_next(r, &row), 1);
    assert_int_equal(pnx_rle_reader_decode(r, &row, PNX_RLE_FMT_RELATIVE, &m, NULL), PNX_EFORMAT);
    char want[700];
    snprintf(want, sizeof want, "%s:3: ImageId 1.2.9: odd number of values (3): the last start has no length", path);
    assert_string_equal(pnx_errmsg(), want);
    pnx_rle_reader_close(r);
    pnx_image_free(&m);
}

static void test_index(void **state)
{
    (void)state;
    /* 4 × 3 images; "B" has three rows spread over the file, one of them
     * empty, two overlapping. */
    static const char text[] =
        "ImageId,EncodedPixels\n"
        "B,0 3\n"          /* line 2: column 0 */
        "A,-1\n"           /* line 3 */
        "C,11 1\n"         /* line 4 */
        "B,-1\n"           /* line 5 */
        "\n"
        "B,2 3\n"          /* line 7: pixels 2..4 */
        "D,0 2 4\n";       /* line 8: malformed */
    pnx_rle_index *ix;
    const char *path = file_with(text, sizeof text - 1);
    assert_int_equal(pnx_rle_index_build(&ix, path), 0);
    assert_int_equal(pnx_rle_index_count(ix), 4);
    assert_int_equal(pnx_rle_index_row_count(ix), 6);
    assert_string_equal(pnx_rle_index_id(ix, 0), "B");
    assert_string_equal(pnx_rle_index_id(ix, 1), "A");
    assert_string_equal(pnx_rle_index_id(ix, 3), "D");
    assert_null(pnx_rle_index_id(ix, 4));
    assert_int_equal(pnx_rle_index_rows(ix, 0), 3);
    assert_int_equal(pnx_rle_index_positive_rows(ix, 0), 2);
    assert_int_equal(pnx_rle_index_positive_rows(ix, 1), 0);
    assert_int_equal(pnx_rle_index_first_line(ix, 2), 4);
    size_t i;
    assert_int_equal(pnx_rle_index_find(ix, "C", &i), 0);
    assert_int_equal(i, 2);
    assert_int_equal(pnx_rle_index_find(ix, "E", &i), PNX_ENOTFOUND);
    assert_int_equal(pnx_rle_index_find(ix, "", &i), PNX_ENOTFOUND);

    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 4, 3), 0);
    memset(m.pixels, 7, 12); /* decode starts from zero */
    assert_int_equal(pnx_rle_index_decode(ix, 0, PNX_RLE_FMT_RELATIVE, &m), 0);
    const uint8_t want_b[12] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0};
    assert_memory_equal(m.pixels, want_b, 12);
    assert_int_equal(pnx_rle_index_decode(ix, 2, PNX_RLE_FMT_RELATIVE, &m), 0);
    const uint8_t want_c[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(m.pixels, want_c, 12);
    /* Decoding in any order works (the reader seeks). */
    assert_int_equal(pnx_rle_index_decode(ix, 0, PNX_RLE_FMT_RELATIVE, &m), 0);
    assert_memory_equal(m.pixels, want_b, 12);

    assert_int_equal(pnx_rle_index_decode(ix, 3, PNX_RLE_FMT_RELATIVE, &m), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), ":8: ImageId D: odd number of values"));
    for (int k = 0; k < 12; k++)
        assert_int_equal(m.pixels[k], 0);
    /* An image too small for a run: error, all-zero mask. */
    pnx_image tiny = {0};
    assert_int_equal(pnx_image_alloc(&tiny, 2, 2), 0);
    tiny.pixels[0] = 1;
    assert_int_equal(pnx_rle_index_decode(ix, 2, PNX_RLE_FMT_RELATIVE, &tiny), PNX_ERANGE);
    assert_non_null(strstr(pnx_errmsg(), ":4: ImageId C:"));
    for (int k = 0; k < 4; k++)
        assert_int_equal(tiny.pixels[k], 0);
    pnx_image_free(&tiny);
    pnx_image_free(&m);
    pnx_rle_index_free(ix);

    /* A broken line makes the build fail with its line. */
    assert_int_equal(pnx_rle_index_build(&ix, file_with("ImageId,EncodedPixels\nA,-1\nB\n", 29)), PNX_EFORMAT);
    assert_null(ix);
    assert_non_null(strstr(pnx_errmsg(), ":3: row without a comma"));
}

/* Many images: the index's hash table grows and still finds each one. */
static void test_index_many(void **state)
{
    (void)state;
    const int n = 5000;
    size_t cap = (size_t)n * 40 + 64, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "ImageId,EncodedPixels\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "1.2.840.%d,%d 1\n", i, i % 12);
    for (int i = 0; i < n; i += 7)
        len += (size_t)snprintf(text + len, cap - len, "1.2.840.%d,-1\n", i);
    pnx_rle_index *ix;
    assert_int_equal(pnx_rle_index_build(&ix, file_with(text, len)), 0);
    assert_int_equal(pnx_rle_index_count(ix), n);
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 4, 3), 0);
    for (int i = 0; i < n; i += 97) {
        char id[40];
        size_t k;
        snprintf(id, sizeof id, "1.2.840.%d", i);
        assert_int_equal(pnx_rle_index_find(ix, id, &k), 0);
        assert_int_equal(k, i);
        assert_int_equal(pnx_rle_index_rows(ix, k), i % 7 == 0 ? 2 : 1);
        assert_int_equal(pnx_rle_index_decode(ix, k, PNX_RLE_FMT_ABSOLUTE, &m), 0);
        int p = i % 12;
        assert_int_equal(m.pixels[(p % 3) * 4 + p / 3], 1);
    }
    pnx_image_free(&m);
    pnx_rle_index_free(ix);
    free(text);
}

static void test_writer(void **state)
{
    (void)state;
    char path[600];
    pnx_image m = {0};
    assert_int_equal(pnx_image_alloc(&m, 4, 3), 0);
    const uint8_t px[12] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1};
    memcpy(m.pixels, px, 12);

    for (int style = 0; style < 2; style++) {
        snprintf(path, sizeof path, "%s/out%d.csv", g_dir, style);
        pnx_rle_writer *w;
        assert_int_equal(pnx_rle_writer_open(&w, path, (pnx_rle_csv_style)style), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), -1); /* nothing under the final name yet */
        assert_int_equal(pnx_rle_writer_row(w, "1.2.3", "-1"), 0);
        assert_int_equal(pnx_rle_writer_mask(w, "1.2.4", &m, PNX_RLE_FMT_RELATIVE), 0);
        assert_int_equal(pnx_rle_writer_row(w, "bad,id", "-1"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "", "-1"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "1.2.5", "1 2 3"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "1.2.5", "1  2"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "1.2.5", " 1 2"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "1.2.5", ""), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_row(w, "1.2\n5", "-1"), PNX_EINVAL);
        assert_int_equal(pnx_rle_writer_commit(w), 0);

        char *data;
        size_t len;
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        data = calloc(1, 256);
        len = fread(data, 1, 255, f);
        fclose(f);
        const char *want = style ? "ImageId, EncodedPixels\n1.2.3, -1\n1.2.4, 0 2 2 2 3 1 1 1\n"
                                 : "ImageId,EncodedPixels\n1.2.3,-1\n1.2.4,0 2 2 2 3 1 1 1\n";
        assert_int_equal(len, strlen(want));
        assert_string_equal(data, want);
        free(data);

        pnx_rle_index *ix;
        assert_int_equal(pnx_rle_index_build(&ix, path), 0);
        pnx_image back = {0};
        assert_int_equal(pnx_image_alloc(&back, 4, 3), 0);
        assert_int_equal(pnx_rle_index_decode(ix, 1, PNX_RLE_FMT_RELATIVE, &back), 0);
        assert_memory_equal(back.pixels, px, 12);
        pnx_image_free(&back);
        pnx_rle_index_free(ix);
    }

    /* Abort leaves nothing behind. */
    snprintf(path, sizeof path, "%s/aborted.csv", g_dir);
    pnx_rle_writer *w;
    assert_int_equal(pnx_rle_writer_open(&w, path, PNX_RLE_CSV_KAGGLE), 0);
    assert_int_equal(pnx_rle_writer_row(w, "1.2.3", "-1"), 0);
    pnx_rle_writer_abort(w);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    pnx_image_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spellings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_error_names_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
