/* tests/test_sample_csv.c — the committed sample_dicom/ tree and its
 * train-rle.csv agree, strictly: the exact stage-1 text format (header,
 * ", " before every value, LF ends), valid relative runs on 1024 × 1024,
 * one or more rows for every file and a file for every row, the SIIM
 * folder layout and UID pattern, the promised label mix (about half the
 * training images positive, some with two rows, one pair overlapping). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "rle/rle.h"

#define SAMPLE_DIR PNX_SOURCE_DIR "/sample_dicom"
#define SIDE 1024u
#define MAX_FILES 1000
#define MAX_ROWS 2000
#define UID_ROOT "1.2.276.0.7230010.3.1."

typedef struct sample_file {
    char split[32];     /* dicom-images-train or dicom-images-test */
    char study[80], series[80], sop[80];
    int rows;
} sample_file;

typedef struct csv_row {
    char id[80];
    char *encoded;      /* points into g_csv */
    size_t encoded_len;
} csv_row;

static sample_file g_files[MAX_FILES];
static int g_n_files;
static csv_row g_rows[MAX_ROWS];
static int g_n_rows;
static char *g_csv;
static size_t g_csv_len;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F || len < 4 || strcmp(path + len - 4, ".dcm") != 0)
        return 0;
    if (g_n_files == MAX_FILES)
        return 1;
    /* <SAMPLE_DIR>/<split>/<study>/<series>/<sop>.dcm */
    const char *rel = path + strlen(SAMPLE_DIR) + 1;
    sample_file *f = &g_files[g_n_files++];
    char sop_file[100];
    if (sscanf(rel, "%31[^/]/%79[^/]/%79[^/]/%99s", f->split, f->study, f->series, sop_file) != 4)
        return 1;
    size_t n = strlen(sop_file);
    if (n < 5 || n - 4 >= sizeof f->sop)
        return 1;
    memcpy(f->sop, sop_file, n - 4);
    f->sop[n - 4] = '\0';
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (nftw(SAMPLE_DIR, collect, 16, FTW_PHYS) != 0)
        return -1;
    if (pnx_read_file(SAMPLE_DIR "/train-rle.csv", 64u << 20, &g_csv, &g_csv_len) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_csv);
    return 0;
}

static sample_file *find_file(const char *sop)
{
    for (int i = 0; i < g_n_files; i++)
        if (strcmp(g_files[i].sop, sop) == 0)
            return &g_files[i];
    return NULL;
}

/* "1.2.3" made only of digits and single dots, no leading zero in a part. */
static int is_uid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    int part_len = 0;
    for (const char *c = s;; c++) {
        if (*c == '.' || *c == '\0') {
            if (part_len == 0)
                return 0;
            if (*c == '\0')
                return 1;
            part_len = 0;
        } else if (*c >= '0' && *c <= '9') {
            if (part_len == 1 && c[-1] == '0')
                return 0;
            part_len++;
        } else {
            return 0;
        }
    }
}

/* Checks one EncodedPixels value: "-1" or "start length …" with single
 * spaces, lengths ≥ 1, every run inside the image (relative starts). */
static void check_runs(const char *text, size_t len, const char *id)
{
    if (len == 2 && memcmp(text, "-1", 2) == 0)
        return;
    uint64_t end = 0, count = 0;
    size_t i = 0;
    while (i < len) {
        uint64_t v = 0;
        size_t digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9') {
            v = v * 10 + (uint64_t)(text[i] - '0');
            digits++;
            i++;
            assert_true(v <= (uint64_t)SIDE * SIDE);
        }
        if (digits == 0)
            fail_msg("%s: not a number at offset %zu", id, i);
        if (count % 2 == 0) {
            end += v; /* start, relative to the previous run's end */
        } else {
            if (v == 0)
                fail_msg("%s: zero-length run", id);
            end += v;
        }
        if (end > (uint64_t)SIDE * SIDE)
            fail_msg("%s: run past the end of the image", id);
        count++;
        if (i < len) {
            if (text[i] != ' ' || i + 1 == len || text[i + 1] == ' ')
                fail_msg("%s: values must be separated by single spaces", id);
            i++;
        }
    }
    if (count == 0 || count % 2 != 0)
        fail_msg("%s: %llu values, not pairs", id, (unsigned long long)count);
}

/* Splits the CSV into rows, asserting the exact format on the way. */
static void parse_csv(void)
{
    const char header[] = "ImageId, EncodedPixels\n";
    assert_true(g_csv_len > sizeof header);
    assert_memory_equal(g_csv, header, sizeof header - 1);
    assert_null(memchr(g_csv, '\r', g_csv_len));
    assert_int_equal(g_csv[g_csv_len - 1], '\n');

    char *line = g_csv + sizeof header - 1;
    char *end = g_csv + g_csv_len;
    g_n_rows = 0;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        assert_non_null(nl);
        char *sep = memchr(line, ',', (size_t)(nl - line));
        assert_non_null(sep);
        assert_null(memchr(sep + 1, ',', (size_t)(nl - sep - 1)));
        /* The stage-1 spelling: ", " then the value, nothing else. */
        assert_int_equal(sep[1], ' ');
        assert_true(sep + 2 < nl);
        assert_true(sep[2] != ' ');
        assert_true(nl[-1] != ' ');
        assert_true(g_n_rows < MAX_ROWS);
        csv_row *r = &g_rows[g_n_rows++];
        size_t id_len = (size_t)(sep - line);
        assert_true(id_len > 0 && id_len < sizeof r->id);
        memcpy(r->id, line, id_len);
        r->id[id_len] = '\0';
        assert_true(is_uid(r->id));
        r->encoded = sep + 2;
        r->encoded_len = (size_t)(nl - sep - 2);
        check_runs(r->encoded, r->encoded_len, r->id);
        line = nl + 1;
    }
    assert_true(g_n_rows >= g_n_files);
}

static void ensure_parsed(void)
{
    if (g_n_rows == 0)
        parse_csv();
}

static void test_csv_text_format(void **state)
{
    (void)state;
    parse_csv();
}

static void test_rows_and_files_match(void **state)
{
    (void)state;
    ensure_parsed();
    for (int i = 0; i < g_n_files; i++)
        g_files[i].rows = 0;
    assert_true(g_n_files > 0);
    for (int i = 0; i < g_n_rows; i++) {
        sample_file *f = find_file(g_rows[i].id);
        if (!f)
            fail_msg("row %d: ImageId %s has no file", i + 2, g_rows[i].id);
        f->rows++;
        int negative = g_rows[i].encoded_len == 2 && memcmp(g_rows[i].encoded, "-1", 2) == 0;
        /* A negative image has exactly one row, "-1". */
        if (negative || f->rows > 1) {
            for (int j = 0; j < g_n_rows; j++) {
                if (j != i && strcmp(g_rows[j].id, g_rows[i].id) == 0) {
                    int other_negative = g_rows[j].encoded_len == 2
                                      && memcmp(g_rows[j].encoded, "-1", 2) == 0;
                    if (negative || other_negative)
                        fail_msg("%s: -1 together with other rows", g_rows[i].id);
                }
            }
        }
    }
    for (int i = 0; i < g_n_files; i++)
        if (g_files[i].rows == 0)
            fail_msg("file %s has no row in train-rle.csv", g_files[i].sop);
}

/* Study, series and instance UIDs share "<pid>.<time>" and count down from
 * the instance's last number, as SIIM's do. */
static void test_layout_and_uids(void **state)
{
    (void)state;
    int train = 0, test = 0;
    for (int i = 0; i < g_n_files; i++) {
        const sample_file *f = &g_files[i];
        if (strcmp(f->split, "dicom-images-train") == 0)
            train++;
        else if (strcmp(f->split, "dicom-images-test") == 0)
            test++;
        else
            fail_msg("unexpected folder %s", f->split);
        assert_true(is_uid(f->sop) && is_uid(f->study) && is_uid(f->series));
        assert_memory_equal(f->sop, UID_ROOT "4.", strlen(UID_ROOT "4."));
        assert_memory_equal(f->study, UID_ROOT "2.", strlen(UID_ROOT "2."));
        assert_memory_equal(f->series, UID_ROOT "3.", strlen(UID_ROOT "3."));
        const char *sop_tail = f->sop + strlen(UID_ROOT "4.");
        const char *last_dot = strrchr(sop_tail, '.');
        assert_non_null(last_dot);
        unsigned long n = strtoul(last_dot + 1, NULL, 10);
        char expect[80];
        snprintf(expect, sizeof expect, UID_ROOT "2.%.*s.%lu", (int)(last_dot - sop_tail),
                 sop_tail, n - 1);
        assert_string_equal(f->study, expect);
        snprintf(expect, sizeof expect, UID_ROOT "3.%.*s.%lu", (int)(last_dot - sop_tail),
                 sop_tail, n - 2);
        assert_string_equal(f->series, expect);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(g_files[j].sop, f->sop);
    }
    assert_int_equal(train, 60);
    assert_int_equal(test, 20);
}

static int rows_overlap(const csv_row *a, const csv_row *b)
{
    pnx_image ma, mb;
    assert_int_equal(pnx_image_alloc(&ma, SIDE, SIDE), 0);
    assert_int_equal(pnx_image_alloc(&mb, SIDE, SIDE), 0);
    assert_int_equal(pnx_rle_decode(a->encoded, a->encoded_len, PNX_RLE_FMT_RELATIVE, &ma, NULL), 0);
    assert_int_equal(pnx_rle_decode(b->encoded, b->encoded_len, PNX_RLE_FMT_RELATIVE, &mb, NULL), 0);
    int shared = 0;
    for (size_t i = 0; i < (size_t)SIDE * SIDE; i++)
        shared += ma.pixels[i] && mb.pixels[i];
    pnx_image_free(&ma);
    pnx_image_free(&mb);
    return shared > 0;
}

static void test_label_mix(void **state)
{
    (void)state;
    ensure_parsed();
    int train_positive = 0, train_total = 0, test_positive = 0, two_rows = 0, overlapping = 0;
    for (int i = 0; i < g_n_files; i++) {
        const sample_file *f = &g_files[i];
        int positive = 0;
        const csv_row *first = NULL;
        for (int j = 0; j < g_n_rows; j++) {
            if (strcmp(g_rows[j].id, f->sop) != 0)
                continue;
            positive = !(g_rows[j].encoded_len == 2 && memcmp(g_rows[j].encoded, "-1", 2) == 0);
            if (first && rows_overlap(first, &g_rows[j]))
                overlapping++;
            first = &g_rows[j];
        }
        int is_train = strcmp(f->split, "dicom-images-train") == 0;
        train_total += is_train;
        train_positive += is_train && positive;
        test_positive += !is_train && positive;
        int rows = 0;
        for (int j = 0; j < g_n_rows; j++)
            rows += strcmp(g_rows[j].id, f->sop) == 0;
        two_rows += rows >= 2;
    }
    assert_true(train_positive * 10 >= train_total * 4 && train_positive * 10 <= train_total * 6);
    assert_true(test_positive > 0);
    assert_true(two_rows >= 3);
    assert_true(overlapping >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_text_format),
        cmocka_unit_test(test_rows_and_files_match),
        cmocka_unit_test(test_layout_and_uids),
        cmocka_unit_test(test_label_mix),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
