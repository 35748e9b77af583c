/*
 * tests/test_postprocess_sc.c — the overlay as an RGB Secondary Capture: in
 * the source's patient and study, referencing it, lossy history carried,
 * pixels equal to the rendered overlay, accepted by dciodvfy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "postprocess/overlay.h"
#include "postprocess/sc.h"
#include "test_postprocess_dicom.h"

static char tmpdir[] = "/tmp/pnx_test_sc_XXXXXX";

static void assert_dciodvfy_clean(const char *path)
{
    if (system("command -v dciodvfy >/dev/null 2>&1") != 0)
        return; /* not installed: the other checks still run */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "dciodvfy '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[2048];
    int errors = 0;
    while (fgets(line, sizeof line, p))
        if (strncmp(line, "Error", 5) == 0) {
            fprintf(stderr, "dciodvfy %s: %s", path, line);
            errors++;
        }
    pclose(p);
    assert_int_equal(errors, 0);
}

static void check_sc(uint32_t rows, uint32_t columns, uint32_t preview, int lossy)
{
    char *src_path = pnx_path_join(tmpdir, "src.dcm");
    char *sc_path = pnx_path_join(tmpdir, "sc.dcm");
    assert_int_equal(pnx_test_make_source(src_path, rows, columns, lossy, "77"), 0);
    pnx_dicom_source src;
    assert_int_equal(pnx_dicom_source_read(src_path, &src), 0);

    pnx_image image = {0}, mask = {0};
    assert_int_equal(pnx_image_alloc(&image, columns, rows), 0);
    assert_int_equal(pnx_image_alloc(&mask, columns, rows), 0);
    for (size_t i = 0; i < pnx_image_size(&image); i++) {
        image.pixels[i] = (uint8_t)(i % 256);
        mask.pixels[i] = (i / columns) % 5 < 2 && (i % columns) % 3 == 0;
    }
    pnx_rgb_image picture = {0};
    assert_int_equal(pnx_overlay_render(&image, &mask, preview, &picture), 0);

    pnx_generated_uids uids;
    assert_int_equal(pnx_sc_uids_derive(&src, "model", "settings", &uids), 0);
    pnx_sc_options opt;
    memset(&opt, 0, sizeof opt);
    opt.uids = &uids;
    opt.content_datetime = "20250102030405";
    if (pnx_sc_write_rgb(sc_path, &src, &picture, &opt))
        fail_msg("pnx_sc_write_rgb: %s", pnx_errmsg());

    const size_t bytes = (size_t)picture.width * picture.height * 3;
    uint8_t *back = malloc(bytes + 1);
    assert_non_null(back);
    /* Odd lengths are padded to even on disk. */
    long len = pnx_test_dicom_bytes(sc_path, 0x7fe0, 0x0010, back, bytes);
    assert_true(len == (long)bytes || len == (long)bytes + 1);
    assert_memory_equal(back, picture.rgb, bytes);
    free(back);

    char value[256];
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0008, 0x0016, value, sizeof value), 0);
    assert_string_equal(value, "1.2.840.10008.5.1.4.1.1.7");
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0020, 0x000d, value, sizeof value), 0);
    assert_string_equal(value, src.study_instance_uid);
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0010, 0x0020, value, sizeof value), 0);
    assert_string_equal(value, src.patient_id);
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0020, 0x000e, value, sizeof value), 0);
    assert_string_equal(value, uids.series_instance_uid);
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0008, 0x1155, value, sizeof value), 0);
    assert_string_equal(value, src.sop_instance_uid);
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0028, 0x0004, value, sizeof value), 0);
    assert_string_equal(value, "RGB");
    assert_int_equal(pnx_test_dicom_string(sc_path, 0x0028, 0x2110, value, sizeof value),
                     lossy ? 0 : -1);
    if (lossy)
        assert_string_equal(value, "01");
    assert_dciodvfy_clean(sc_path);

    pnx_rgb_image_free(&picture);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    free(src_path);
    free(sc_path);
}

static void test_sc_native(void **state)
{
    (void)state;
    check_sc(40, 31, 0, 1);
}

static void test_sc_preview_odd(void **state)
{
    (void)state;
    check_sc(375, 500, 127, 0); /* 127 × 95 × 3 bytes: odd length */
}

static void test_sc_rejects(void **state)
{
    (void)state;
    char *src_path = pnx_path_join(tmpdir, "src.dcm");
    assert_int_equal(pnx_test_make_source(src_path, 4, 4, 0, "78"), 0);
    pnx_dicom_source src;
    assert_int_equal(pnx_dicom_source_read(src_path, &src), 0);
    uint8_t rgb[12 * 4] = {0};
    pnx_rgb_image picture = {4, 4, rgb};
    pnx_generated_uids uids;
    memset(&uids, 0, sizeof uids);
    pnx_sc_options opt;
    memset(&opt, 0, sizeof opt);
    opt.uids = &uids;
    char *path = pnx_path_join(tmpdir, "bad.dcm");
    assert_int_equal(pnx_sc_write_rgb(path, &src, &picture, &opt), PNX_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    free(src_path);
    free(path);
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
        return 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sc_native),
        cmocka_unit_test(test_sc_preview_odd),
        cmocka_unit_test(test_sc_rejects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
