/* tests/test_sample_reproduce.c — the generator is deterministic: run with
 * the committed sample's seed into a fresh folder, writing only the first
 * studies (--only), it reproduces the committed files byte for byte, and
 * its train-rle.csv is the start of the committed one. The seed and counts
 * are those of the command in sample_dicom/README.md. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "common/fileio.h"

#define SAMPLE_DIR PNX_SOURCE_DIR "/sample_dicom"
#define SAMPLE_SEED "2019"
#define STUDIES_TO_MAKE 2
#define MAX_FILE_BYTES (16u << 20)

static char g_dir[256];
static int g_compared;

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-sample-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void assert_same_file(const char *made, const char *committed)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    assert_int_equal(pnx_read_file(made, MAX_FILE_BYTES, &a, &alen), 0);
    if (pnx_read_file(committed, MAX_FILE_BYTES, &b, &blen) != 0)
        fail_msg("%s was made but is not in sample_dicom/", committed);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);
}

static int compare_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F || len < 4 || strcmp(path + len - 4, ".dcm") != 0)
        return 0;
    char committed[1024];
    snprintf(committed, sizeof committed, "%s%s", SAMPLE_DIR, path + strlen(g_dir));
    assert_same_file(path, committed);
    g_compared++;
    return 0;
}

static void test_first_studies_match_committed_bytes(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --out '%s' --seed " SAMPLE_SEED " --only %d -q",
             PNX_GEN_SAMPLE_EXE, g_dir, STUDIES_TO_MAKE);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    g_compared = 0;
    assert_int_equal(nftw(g_dir, compare_one, 16, FTW_PHYS), 0);
    assert_int_equal(g_compared, STUDIES_TO_MAKE);

    char made_csv[400];
    snprintf(made_csv, sizeof made_csv, "%s/train-rle.csv", g_dir);
    char *made = NULL, *committed = NULL;
    size_t made_len = 0, committed_len = 0;
    assert_int_equal(pnx_read_file(made_csv, MAX_FILE_BYTES, &made, &made_len), 0);
    assert_int_equal(pnx_read_file(SAMPLE_DIR "/train-rle.csv", MAX_FILE_BYTES, &committed,
                                   &committed_len), 0);
    assert_true(made_len > 0 && made_len < committed_len);
    assert_memory_equal(made, committed, made_len);
    assert_int_equal(committed[made_len - 1], '\n');
    free(made);
    free(committed);
}

static void test_refuses_to_overwrite_a_sample(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --out '%s' --seed 7 --only 1 -q 2>/dev/null",
             PNX_GEN_SAMPLE_EXE, g_dir);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_studies_match_committed_bytes),
        cmocka_unit_test(test_refuses_to_overwrite_a_sample),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
