/* tests/test_config.c — pipeline.yaml loading: defaults, a full good file,
 * every bad file of tests/data/config with its exact line:column message,
 * the depth/size bounds, derived paths, and docs/pipeline.md listing every key. */
#include <dirent.h>
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
#include "pipeline/config.h"
#include "pipeline/config_keys.h"

#define CONFIG_DATA PNX_TEST_DATA "/config"

static void test_defaults(void **state)
{
    (void)state;
    pnx_config cfg;
    assert_int_equal(pnx_config_defaults(&cfg), PNX_OK);
    assert_string_equal(cfg.output_dir, "output");
    assert_null(cfg.database);
    assert_int_equal(cfg.n_stages, 4);
    assert_int_equal(cfg.stages[0], PNX_STAGE_DATASET);
    assert_int_equal(cfg.stages[3], PNX_STAGE_EVALUATE);
    assert_int_equal(cfg.dataset.image_size, 128);
    assert_true(cfg.dataset.split_ratio[0] == 0.8);
    assert_int_equal(cfg.train.base_width, 16);
    assert_int_equal(cfg.train.augment.enabled, 1);
    assert_true(cfg.train.learning_rate == 0.001);
    assert_int_equal(cfg.score.seg_enabled, 1);
    assert_int_equal(cfg.score.overlay_size, 512);
    assert_int_equal(cfg.ingest.max_pixels, 16777216);
    assert_int_equal(pnx_config_resolve_paths(&cfg), PNX_OK);
    assert_string_equal(cfg.database, "output/pneumoseg.sqlite");
    assert_string_equal(cfg.dataset.cache_dir, "output/dataset");
    assert_string_equal(cfg.train.cache_dir, "output/dataset");
    assert_string_equal(cfg.train.model, "output/model.safetensors");
    assert_string_equal(cfg.score.model, "output/model.safetensors");
    pnx_config_free(&cfg);
}

static void test_good_full(void **state)
{
    (void)state;
    pnx_config cfg;
    int rc = pnx_config_load(&cfg, CONFIG_DATA "/good_full.yaml");
    if (rc)
        fail_msg("%s", pnx_errmsg());
    assert_string_equal(cfg.output_dir, "/tmp/pnx-out");
    assert_int_equal(cfg.n_stages, 4);
    assert_int_equal(cfg.ingest.workers, 2);
    assert_int_equal(cfg.ingest.max_bits, 12);
    assert_string_equal(cfg.dataset.dicom_dir, "dicoms");
    assert_int_equal(cfg.dataset.rle_format, PNX_RLE_ABSOLUTE);
    assert_int_equal(cfg.dataset.image_size, 256);
    assert_int_equal(cfg.dataset.split_by_count, 1);
    assert_int_equal(cfg.dataset.split_count[2], 3);
    assert_int_equal(cfg.dataset.seed, 7);
    assert_string_equal(cfg.dataset.png_dir, "pngs");
    assert_int_equal(cfg.train.device, PNX_DEVICE_CPU);
    assert_int_equal(cfg.train.base_width, 8);
    assert_true(cfg.train.learning_rate == 1.0e-4);
    assert_int_equal(cfg.train.augment.enabled, 0);
    assert_true(cfg.train.augment.hflip == 0.25);
    assert_true(cfg.train.augment.rotate_deg == 10.0); /* default kept */
    assert_string_equal(cfg.score.dicom_dir, "test dicoms");
    assert_int_equal(cfg.score.triplet.enabled, 1);
    assert_int_equal(cfg.score.triplet.min_area, 100);
    assert_int_equal(cfg.score.seg_enabled, 0);
    assert_int_equal(cfg.score.seg_negative, PNX_NEGSEG_NONE);
    assert_int_equal(cfg.score.overlay_size, 0);
    assert_int_equal(cfg.score.overlay_enabled, 1);
    assert_string_equal(cfg.score.submission_csv, "sub.csv");
    assert_int_equal(cfg.evaluate.run, 3);
    assert_int_equal(strlen(cfg.sha256), 64);
    assert_non_null(strstr(cfg.text, "triplet"));
    /* --out moves what the file did not place explicitly. */
    assert_int_equal(pnx_config_set_string(&cfg.output_dir, "elsewhere"), PNX_OK);
    assert_int_equal(pnx_config_resolve_paths(&cfg), PNX_OK);
    assert_string_equal(cfg.database, "elsewhere/pneumoseg.sqlite");
    assert_string_equal(cfg.dataset.png_dir, "pngs");
    pnx_config_free(&cfg);
}

static void test_project_pipeline_files(void **state)
{
    (void)state;
    pnx_config cfg;
    int rc = pnx_config_load(&cfg, PNX_SOURCE_DIR "/pipeline.yaml");
    if (rc)
        fail_msg("%s", pnx_errmsg());
    assert_true(cfg.n_stages >= 1);
    pnx_config_free(&cfg);
    rc = pnx_config_load(&cfg, PNX_SOURCE_DIR "/pipeline.siim.yaml");
    if (rc)
        fail_msg("%s", pnx_errmsg());
    assert_int_equal(cfg.dataset.split_by_count, 1);
    assert_int_equal(cfg.dataset.split_count[0], 10675);
    assert_int_equal(cfg.train.base_width, 64);
    pnx_config_free(&cfg);
}

/* Each bad_*.yaml starts with "# expect: L:C: message". */
static void test_bad_files(void **state)
{
    (void)state;
    DIR *dir = opendir(CONFIG_DATA);
    assert_non_null(dir);
    int checked = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, "bad_", 4) != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CONFIG_DATA, de->d_name);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(pnx_read_file(path, 1 << 20, &text, &len), PNX_OK);
        const char *tag = "# expect: ";
        assert_int_equal(strncmp(text, tag, strlen(tag)), 0);
        const char *exp_start = text + strlen(tag);
        const char *nl = strchr(exp_start, '\n');
        assert_non_null(nl);
        char expected[600];
        snprintf(expected, sizeof expected, "%s:%.*s", path, (int)(nl - exp_start), exp_start);
        pnx_config cfg;
        int rc = pnx_config_load(&cfg, path);
        if (rc != PNX_ECONFIG)
            fail_msg("%s: expected a configuration error, got %d (%s)", de->d_name, rc,
                     pnx_errmsg());
        if (strcmp(pnx_errmsg(), expected) != 0)
            fail_msg("%s:\n  expected: %s\n  got:      %s", de->d_name, expected, pnx_errmsg());
        free(text);
        checked++;
    }
    closedir(dir);
    assert_true(checked >= 15);
}

static void test_depth_bound(void **state)
{
    (void)state;
    /* 200 KB of '[' made libyaml 0.2.5 work for ~20 s; the bound stops it at once. */
    size_t n = 200000;
    char *text = malloc(n + 16);
    assert_non_null(text);
    memcpy(text, "stages: ", 8);
    memset(text + 8, '[', n);
    text[8 + n] = '\0';
    pnx_config cfg;
    assert_int_equal(pnx_config_load_text(&cfg, "deep.yaml", text, 8 + n), PNX_ECONFIG);
    assert_non_null(strstr(pnx_errmsg(), "nesting deeper than 16 levels"));
    free(text);
}

static void test_size_bound(void **state)
{
    (void)state;
    size_t n = PNX_CONFIG_MAX_BYTES + 10;
    char *text = malloc(n);
    assert_non_null(text);
    memset(text, '#', n);
    pnx_config cfg;
    assert_int_equal(pnx_config_load_text(&cfg, "big.yaml", text, n), PNX_ECONFIG);
    assert_non_null(strstr(pnx_errmsg(), "more than the limit"));
    free(text);
}

static void test_missing_file(void **state)
{
    (void)state;
    pnx_config cfg;
    assert_int_equal(pnx_config_load(&cfg, "/nonexistent/pipeline.yaml"), PNX_ECONFIG);
    assert_non_null(strstr(pnx_errmsg(), "/nonexistent/pipeline.yaml"));
}

static void test_empty_document_is_defaults(void **state)
{
    (void)state;
    pnx_config cfg;
    /* The default stages need dicom_dir and rle_csv, so list none. */
    const char *text = "stages: []\n";
    assert_int_equal(pnx_config_load_text(&cfg, "e.yaml", text, strlen(text)), PNX_OK);
    assert_int_equal(cfg.n_stages, 0);
    pnx_config_free(&cfg);
}

/* docs/pipeline.md documents every key as `key.path` in a table row. */
static void test_docs_list_every_key(void **state)
{
    (void)state;
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(PNX_SOURCE_DIR "/docs/pipeline.md", 1 << 20, &doc, &len),
                     PNX_OK);
    for (size_t i = 0; i < pnx_config_key_count; i++) {
        char needle[160];
        snprintf(needle, sizeof needle, "| `%s` |", pnx_config_keys[i].path);
        if (!strstr(doc, needle))
            fail_msg("docs/pipeline.md has no row for %s", pnx_config_keys[i].path);
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_good_full),
        cmocka_unit_test(test_project_pipeline_files),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_empty_document_is_defaults),
        cmocka_unit_test(test_docs_list_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
