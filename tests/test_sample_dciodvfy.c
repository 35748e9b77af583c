/* tests/test_sample_dciodvfy.c — every committed sample file passes
 * dicom3tools' dciodvfy without an "Error" line (warnings, which the real
 * SIIM files also get, are fine). Skipped (77) when dciodvfy is not
 * installed (Debian package dicom3tools). */
#define _XOPEN_SOURCE 700 /* nftw, popen */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define SAMPLE_DIR PNX_SOURCE_DIR "/sample_dicom"

static char g_dciodvfy[1024];
static int g_checked;

static int find_on_path(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(out, size, "%.*s/%s", (int)len, path, name);
        if (len > 0 && access(out, X_OK) == 0)
            return 0;
        path = colon ? colon + 1 : NULL;
    }
    return -1;
}

static int verify_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F || len < 4 || strcmp(path + len - 4, ".dcm") != 0)
        return 0;
    /* Sample paths are digits, dots and slashes under the source folder;
     * refuse anything that would need shell quoting beyond '…'. */
    assert_null(strchr(path, '\''));
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", g_dciodvfy, path);
    FILE *out = popen(cmd, "r");
    assert_non_null(out);
    char line[2048];
    int errors = 0, identified = 0;
    while (fgets(line, sizeof line, out)) {
        if (strncmp(line, "Error", 5) == 0) {
            print_error("%s: %s", path, line);
            errors++;
        }
        if (strncmp(line, "SCImage", 7) == 0)
            identified = 1;
    }
    pclose(out);
    assert_int_equal(errors, 0);
    /* dciodvfy recognised the Secondary Capture IOD. */
    assert_true(identified);
    g_checked++;
    return 0;
}

static void test_every_sample_file_verifies(void **state)
{
    (void)state;
    g_checked = 0;
    assert_int_equal(nftw(SAMPLE_DIR, verify_one, 16, FTW_PHYS), 0);
    assert_int_equal(g_checked, 80);
}

int main(void)
{
    if (find_on_path("dciodvfy", g_dciodvfy, sizeof g_dciodvfy) != 0) {
        fprintf(stderr, "dciodvfy not found (Debian package dicom3tools): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_file_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
