/*
 * tests/test_postprocess_seg.c — the DICOM SEG writer: bits read back equal
 * the mask at sizes that are and are not multiples of 8, every file passes
 * dciodvfy, references/patient/study/lossy history carried, derived UIDs
 * stable, atomic writing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "postprocess/dicom_source.h"
#include "postprocess/seg.h"
#include "postprocess/uid.h"
#include "test_postprocess_dicom.h"

static char tmpdir[] = "/tmp/pnx_test_seg_XXXXXX";

static char *tmp_path(const char *name)
{
    char *p = pnx_path_join(tmpdir, name);
    assert_non_null(p);
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A mask with structure in every row and at the last pixels (the bits a
 * wrong packing gets wrong): a disc, a diagonal, a checker corner, the last
 * pixel set. */
static void fill_mask(pnx_image *m)
{
    const uint32_t w = m->width, h = m->height;
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            int64_t dx = (int64_t)x - w / 3, dy = (int64_t)y - h / 2;
            int disc = dx * dx + dy * dy <= (int64_t)(w / 4) * (h / 4);
            int diagonal = x == (uint64_t)y * w / h;
            int checker = x + 4 >= w && y + 4 >= h && ((x + y) & 1);
            m->pixels[(size_t)y * w + x] = (uint8_t)(disc || diagonal || checker);
        }
    }
    m->pixels[pnx_image_size(m) - 1] = 1;
}

/* Runs dciodvfy; fails the test on any "Error" line. Returns 0 when it ran,
 * 1 when dciodvfy is not installed. */
static int dciodvfy_clean(const char *path)
{
    if (system("command -v dciodvfy >/dev/null 2>&1") != 0)
        return 1;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "dciodvfy '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[2048];
    int errors = 0;
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "Error", 5) == 0) {
            fprintf(stderr, "dciodvfy %s: %s", path, line);
            errors++;
        }
    }
    pclose(p);
    assert_int_equal(errors, 0);
    return 0;
}

/* When python3 with pydicom and numpy is present, pydicom's unpacking of the
 * SEG frame must equal the mask too (an independent reader). */
static void pydicom_agrees(const char *seg_path, const pnx_image *mask)
{
    if (system("python3 -c 'import pydicom, numpy' >/dev/null 2>&1") != 0)
        return;
    char raw_path[4096];
    snprintf(raw_path, sizeof raw_path, "%s.mask", seg_path);
    assert_int_equal(pnx_write_file_atomic(raw_path, mask->pixels, pnx_image_size(mask)), 0);
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, numpy, pydicom\n"
             "a = pydicom.dcmread(sys.argv[1]).pixel_array.astype(numpy.uint8).ravel()\n"
             "b = numpy.fromfile(sys.argv[2], dtype=numpy.uint8)\n"
             "sys.exit(0 if a.shape == b.shape and (a == b).all() else 1)' '%s' '%s'",
             seg_path, raw_path);
    assert_int_equal(system(cmd), 0);
    unlink(raw_path);
}

static pnx_seg_options default_options(const pnx_generated_uids *uids)
{
    pnx_seg_options o;
    memset(&o, 0, sizeof o);
    o.uids = uids;
    o.algorithm_name = "pneumoseg U-Net";
    o.algorithm_version = "0.1.0 model 3fa2c1d0";
    o.content_datetime = "20250102030405";
    return o;
}

/* Writes a SEG of a fill_mask mask for src and checks it every way. */
static void write_and_check(const char *name, const pnx_dicom_source *src)
{
    pnx_image mask = {0};
    assert_int_equal(pnx_image_alloc(&mask, src->columns, src->rows), 0);
    fill_mask(&mask);
    pnx_generated_uids uids;
    assert_int_equal(pnx_seg_uids_derive(src, "modelhash", "threshold=0.5", &uids), 0);
    pnx_seg_options opt = default_options(&uids);
    char *path = tmp_path(name);
    int written = -1;
    int rc = pnx_seg_write(path, src, &mask, &opt, &written);
    if (rc)
        fail_msg("pnx_seg_write: %s", pnx_errmsg());
    assert_int_equal(written, 1);

    pnx_image back = {0};
    assert_int_equal(pnx_seg_read_mask(path, &back), 0);
    assert_int_equal(back.width, mask.width);
    assert_int_equal(back.height, mask.height);
    assert_memory_equal(back.pixels, mask.pixels, pnx_image_size(&mask));

    /* dcmseg's own reader must agree too. */
    uint8_t *via_dcmseg = calloc(pnx_image_size(&mask), 1);
    assert_non_null(via_dcmseg);
    assert_int_equal(pnx_test_dcmseg_frame(path, (uint16_t)mask.height, (uint16_t)mask.width, via_dcmseg), 0);
    assert_memory_equal(via_dcmseg, mask.pixels, pnx_image_size(&mask));
    free(via_dcmseg);

    char value[1024];
    assert_int_equal(pnx_test_dicom_string(path, 0x0008, 0x0060, value, sizeof value), 0);
    assert_string_equal(value, "SEG");
    assert_int_equal(pnx_test_dicom_string(path, 0x0020, 0x000d, value, sizeof value), 0);
    assert_string_equal(value, src->study_instance_uid);
    assert_int_equal(pnx_test_dicom_string(path, 0x0010, 0x0020, value, sizeof value), 0);
    assert_string_equal(value, src->patient_id);
    assert_int_equal(pnx_test_dicom_string(path, 0x0008, 0x0018, value, sizeof value), 0);
    assert_string_equal(value, uids.sop_instance_uid);
    assert_int_equal(pnx_test_dicom_string(path, 0x0062, 0x0001, value, sizeof value), 0);
    assert_string_equal(value, "BINARY");
    /* Segmented Property Type: SNOMED CT 36118008 (first Code Value found
     * under the segment is the category 49755003, so look for the type's
     * meaning instead). */
    assert_int_equal(pnx_test_dicom_string(path, 0x0062, 0x0008, value, sizeof value), 0);
    assert_string_equal(value, "AUTOMATIC");
    assert_int_equal(pnx_test_dicom_string(path, 0x0062, 0x0009, value, sizeof value), 0);
    assert_string_equal(value, "pneumoseg U-Net");
    /* No Frame of Reference invented. */
    assert_int_equal(pnx_test_dicom_string(path, 0x0020, 0x0052, value, sizeof value), -1);
    /* References: Referenced Series Sequence with the source series and
     * instance; Source Image Sequence in the per-frame Derivation Image. */
    assert_int_equal(pnx_test_dicom_items(path, 0x0008, 0x1115), 1);
    assert_int_equal(pnx_test_dicom_string(path, 0x0020, 0x000e, value, sizeof value), 0);
    assert_int_equal(pnx_test_dicom_items(path, 0x0008, 0x9215), 1);
    assert_int_equal(pnx_test_dicom_items(path, 0x0008, 0x2112), 1);
    assert_int_equal(pnx_test_dicom_items(path, 0x0040, 0xa170), 1);
    assert_int_equal(pnx_test_dicom_string(path, 0x0008, 0x1155, value, sizeof value), 0);
    assert_string_equal(value, src->sop_instance_uid);
    if (src->lossy) {
        assert_int_equal(pnx_test_dicom_string(path, 0x0028, 0x2110, value, sizeof value), 0);
        assert_string_equal(value, "01");
        assert_int_equal(pnx_test_dicom_string(path, 0x0028, 0x2114, value, sizeof value), 0);
        assert_string_equal(value, src->lossy_method);
    }
    dciodvfy_clean(path);
    pydicom_agrees(path, &mask);

    pnx_image_free(&back);
    pnx_image_free(&mask);
    free(path);
}

static void make_source(const char *name, uint32_t rows, uint32_t columns, int lossy,
                        pnx_dicom_source *src)
{
    static int serial;
    char *path = tmp_path(name);
    char tag[16];
    snprintf(tag, sizeof tag, "%d", ++serial);
    assert_int_equal(pnx_test_make_source(path, rows, columns, lossy, tag), 0);
    if (pnx_dicom_source_read(path, src))
        fail_msg("pnx_dicom_source_read: %s", pnx_errmsg());
    assert_int_equal(src->rows, rows);
    assert_int_equal(src->columns, columns);
    assert_int_equal(src->lossy, lossy);
    free(path);
}

static void test_seg_sizes(void **state)
{
    (void)state;
    static const struct {
        uint32_t rows, columns;
        int lossy;
    } sizes[] = {{1024, 1024, 1}, {9, 7, 0}, {1, 1, 1}, {500, 375, 0}, {375, 500, 1}, {3, 5, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char src_name[64], seg_name[64];
        snprintf(src_name, sizeof src_name, "src-%zu.dcm", i + 1);
        snprintf(seg_name, sizeof seg_name, "seg-%zu.dcm", i + 1);
        pnx_dicom_source src;
        make_source(src_name, sizes[i].rows, sizes[i].columns, sizes[i].lossy, &src);
        write_and_check(seg_name, &src);
    }
}

static void test_seg_real_siim(void **state)
{
    (void)state;
    glob_t g;
    if (glob(PNX_SHARED_DIR "/realdata/siim/*.dcm", 0, NULL, &g) != 0) {
        skip();
        return;
    }
    pnx_dicom_source src;
    int rc = pnx_dicom_source_read(g.gl_pathv[0], &src);
    globfree(&g);
    if (rc)
        fail_msg("pnx_dicom_source_read: %s", pnx_errmsg());
    assert_int_equal(src.rows, 1024);
    assert_int_equal(src.lossy, 1); /* JPEG Baseline, and says so */
    assert_string_equal(src.lossy_method, "ISO_10918_1");
    write_and_check("seg-siim.dcm", &src);
}

static void test_seg_negative(void **state)
{
    (void)state;
    pnx_dicom_source src;
    make_source("src-neg.dcm", 12, 10, 1, &src);
    pnx_image mask = {0};
    assert_int_equal(pnx_image_alloc(&mask, 10, 12), 0);
    pnx_generated_uids uids;
    assert_int_equal(pnx_seg_uids_random(&uids), 0);
    pnx_seg_options opt = default_options(&uids);

    char *skipped = tmp_path("seg-neg-none.dcm");
    opt.skip_if_empty = 1;
    int written = -1;
    assert_int_equal(pnx_seg_write(skipped, &src, &mask, &opt, &written), 0);
    assert_int_equal(written, 0);
    assert_false(file_exists(skipped));

    char *empty = tmp_path("seg-neg-empty.dcm");
    opt.skip_if_empty = 0;
    assert_int_equal(pnx_seg_write(empty, &src, &mask, &opt, &written), 0);
    assert_int_equal(written, 1);
    pnx_image back = {0};
    assert_int_equal(pnx_seg_read_mask(empty, &back), 0);
    assert_memory_equal(back.pixels, mask.pixels, pnx_image_size(&mask));
    dciodvfy_clean(empty);
    pnx_image_free(&back);
    pnx_image_free(&mask);
    free(skipped);
    free(empty);
}

static void test_seg_rejects_bad_input(void **state)
{
    (void)state;
    pnx_dicom_source src;
    make_source("src-bad.dcm", 4, 4, 0, &src);
    pnx_image mask = {0};
    assert_int_equal(pnx_image_alloc(&mask, 5, 4), 0); /* wrong width */
    pnx_generated_uids uids;
    assert_int_equal(pnx_seg_uids_random(&uids), 0);
    pnx_seg_options opt = default_options(&uids);
    char *path = tmp_path("seg-bad.dcm");
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), PNX_EINVAL);
    pnx_image_free(&mask);
    assert_int_equal(pnx_image_alloc(&mask, 4, 4), 0);
    mask.pixels[3] = 255; /* not 0/1 */
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), PNX_EINVAL);
    mask.pixels[3] = 1;
    opt.algorithm_version = NULL;
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), PNX_EINVAL);
    opt = default_options(&uids);
    opt.content_datetime = "2025-01-02";
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), PNX_EINVAL);
    src.sop_instance_uid[0] = '\0';
    opt = default_options(&uids);
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), PNX_EFORMAT);
    assert_false(file_exists(path));
    /* Not DICOM at all. */
    char *junk = tmp_path("junk.dcm");
    assert_int_equal(pnx_write_file_atomic(junk, "not dicom", 9), 0);
    assert_true(pnx_dicom_source_read(junk, &src) < 0);
    pnx_image back = {0};
    assert_true(pnx_seg_read_mask(junk, &back) < 0);
    assert_null(back.pixels);
    /* A SEG cut short: every read fails cleanly, never a partial mask. */
    char *good = tmp_path("seg-cut.dcm");
    make_source("src-cut.dcm", 64, 64, 0, &src);
    pnx_image_free(&mask);
    assert_int_equal(pnx_image_alloc(&mask, 64, 64), 0);
    fill_mask(&mask);
    opt = default_options(&uids);
    assert_int_equal(pnx_seg_write(good, &src, &mask, &opt, NULL), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(good, 1 << 20, &data, &len), 0);
    for (size_t cut = len - 1; cut > 0; cut = cut * 3 / 4) {
        assert_int_equal(pnx_write_file_atomic(junk, data, cut), 0);
        assert_true(pnx_seg_read_mask(junk, &back) < 0);
        assert_null(back.pixels);
    }
    free(data);
    free(good);
    pnx_image_free(&mask);
    free(path);
    free(junk);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_seg_atomic(void **state)
{
    (void)state;
    pnx_dicom_source src;
    make_source("src-atomic.dcm", 16, 16, 0, &src);
    pnx_image mask = {0};
    assert_int_equal(pnx_image_alloc(&mask, 16, 16), 0);
    fill_mask(&mask);
    pnx_generated_uids uids;
    assert_int_equal(pnx_seg_uids_random(&uids), 0);
    pnx_seg_options opt = default_options(&uids);
    char *path = tmp_path("seg-atomic.dcm");
    int before = count_entries(tmpdir);
    pnx_fileio_fail_before_rename = 1;
    int rc = pnx_seg_write(path, &src, &mask, &opt, NULL);
    pnx_fileio_fail_before_rename = 0;
    assert_true(rc < 0);
    assert_false(file_exists(path));
    assert_int_equal(count_entries(tmpdir), before); /* no temporary left */
    assert_int_equal(pnx_seg_write(path, &src, &mask, &opt, NULL), 0);
    assert_true(file_exists(path));
    assert_int_equal(count_entries(tmpdir), before + 1);
    pnx_image_free(&mask);
    free(path);
}

static void test_seg_deterministic_file(void **state)
{
    (void)state;
    /* Same inputs and a fixed content date-time: the same bytes. */
    pnx_dicom_source src;
    make_source("src-det.dcm", 20, 30, 1, &src);
    pnx_image mask = {0};
    assert_int_equal(pnx_image_alloc(&mask, 30, 20), 0);
    fill_mask(&mask);
    pnx_generated_uids uids;
    assert_int_equal(pnx_seg_uids_derive(&src, "m", "s", &uids), 0);
    pnx_seg_options opt = default_options(&uids);
    char *a = tmp_path("seg-det-a.dcm"), *b = tmp_path("seg-det-b.dcm");
    assert_int_equal(pnx_seg_write(a, &src, &mask, &opt, NULL), 0);
    assert_int_equal(pnx_seg_write(b, &src, &mask, &opt, NULL), 0);
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(pnx_read_file(a, 1 << 20, &da, &la), 0);
    assert_int_equal(pnx_read_file(b, 1 << 20, &db, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);
    free(a);
    free(b);
    pnx_image_free(&mask);
}

/* The scorer writes from several threads at once: each thread writes and
 * reads back its own SEGs. */
typedef struct thread_job {
    const pnx_dicom_source *src;
    int index;
    int failures;
} thread_job;

static void *write_many(void *arg)
{
    thread_job *job = arg;
    pnx_image mask = {0}, back = {0};
    if (pnx_image_alloc(&mask, job->src->columns, job->src->rows)) {
        job->failures++;
        return NULL;
    }
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < pnx_image_size(&mask); i++)
            mask.pixels[i] = (uint8_t)((i * 31 + (size_t)job->index * 7 + (size_t)round) % 5 == 0);
        pnx_generated_uids uids;
        char settings[32], name[64];
        snprintf(settings, sizeof settings, "t%d-r%d", job->index, round);
        snprintf(name, sizeof name, "seg-thread-%d-%d.dcm", job->index, round);
        char *path = pnx_path_join(tmpdir, name);
        pnx_seg_options opt = default_options(&uids);
        if (!path || pnx_seg_uids_derive(job->src, "m", settings, &uids) ||
            pnx_seg_write(path, job->src, &mask, &opt, NULL) || pnx_seg_read_mask(path, &back) ||
            memcmp(back.pixels, mask.pixels, pnx_image_size(&mask)) != 0)
            job->failures++;
        pnx_image_free(&back);
        free(path);
    }
    pnx_image_free(&mask);
    return NULL;
}

static void test_seg_threads(void **state)
{
    (void)state;
    pnx_dicom_source src;
    make_source("src-threads.dcm", 48, 61, 1, &src);
    enum { N_THREADS = 4 };
    pthread_t threads[N_THREADS];
    thread_job jobs[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        jobs[t] = (thread_job){&src, t, 0};
        assert_int_equal(pthread_create(&threads[t], NULL, write_many, &jobs[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        assert_int_equal(jobs[t].failures, 0);
    }
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("PNX_TEST_KEEP"))
        return 0; /* leave the files for inspection */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seg_sizes),
        cmocka_unit_test(test_seg_real_siim),
        cmocka_unit_test(test_seg_negative),
        cmocka_unit_test(test_seg_rejects_bad_input),
        cmocka_unit_test(test_seg_atomic),
        cmocka_unit_test(test_seg_deterministic_file),
        cmocka_unit_test(test_seg_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
