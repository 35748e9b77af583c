/*
 * tests/test_train_cli.c — `pneumoseg train` as a user runs it, on caches
 * built here: flags override the YAML, the runs row carries the device and
 * the checkpoint's SHA-256, a resumed run names its parent, and bad flags,
 * caches and devices give the documented exit statuses with a clear line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "common/fileio.h"
#include "common/image.h"
#include "common/sha256.h"
#include "preprocess/cache.h"

#define BIN PNX_BINARY_DIR "/pneumoseg"
#define SIDE 32

static char work_dir[400];
static char config_path[512];
static char out_text[16384];

static int setup(void **state)
{
    (void)state;
    snprintf(work_dir, sizeof work_dir, "%s/tests/train_cli.%d", PNX_BINARY_DIR, (int)getpid());
    return pnx_mkdir_p(work_dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void build_cache(const char *name, size_t count)
{
    char path[600];
    snprintf(path, sizeof path, "%s/caches/%s", work_dir, name);
    pnx_cache_builder *b = NULL;
    assert_int_equal(pnx_cache_builder_open(&b, path, count, SIDE), 0);
    for (size_t i = 0; i < count; i++) {
        pnx_image img = {0}, mask = {0};
        assert_int_equal(pnx_image_alloc(&img, SIDE, SIDE), 0);
        assert_int_equal(pnx_image_alloc(&mask, SIDE, SIDE), 0);
        for (uint32_t y = 0; y < SIDE; y++)
            for (uint32_t x = 0; x < SIDE; x++) {
                int inside = i % 2 && x > 8 + i && x < 16 + i && y > 10 && y < 20;
                img.pixels[y * SIDE + x] = (uint8_t)(inside ? 200 : 40 + (x * 7 + y * 3) % 30);
                mask.pixels[y * SIDE + x] = (uint8_t)inside;
            }
        char uid[64];
        snprintf(uid, sizeof uid, "1.2.3.%zu", i + 1);
        assert_int_equal(pnx_cache_builder_put(b, i, &img, &mask, uid), 0);
        pnx_image_free(&img);
        pnx_image_free(&mask);
    }
    assert_int_equal(pnx_cache_builder_commit(b), 0);
}

/* Runs a shell script in the work folder (stderr joined to stdout);
 * returns the exit status. */
static int run_shell(const char *script)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && { %s; } 2>&1", work_dir, script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out_text, 1, sizeof out_text - 1, p);
    out_text[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs pneumoseg with args. */
static int run(const char *args)
{
    char script[2048];
    snprintf(script, sizeof script, "'%s' %s", BIN, args);
    return run_shell(script);
}

static void query_text(const char *sql, char *out, size_t size)
{
    char db[600];
    snprintf(db, sizeof db, "%s/out/pneumoseg.sqlite", work_dir);
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(out, size, "%s", v ? (const char *)v : "NULL");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

static void test_train_command(void **state)
{
    (void)state;
    char caches[500];
    snprintf(caches, sizeof caches, "%s/caches", work_dir);
    assert_int_equal(pnx_mkdir_p(caches, 0755), 0);
    build_cache("train.safetensors", 8);
    build_cache("val.safetensors", 4);
    snprintf(config_path, sizeof config_path, "%s/p.yaml", work_dir);
    const char *yaml = "output: out\n"
                       "stages: [train]\n"
                       "train:\n"
                       "  base_width: 8\n"
                       "  epochs: 5\n"
                       "  batch_size: 4\n"
                       "  threads: 1\n"
                       "  cache_dir: caches\n";
    assert_int_equal(pnx_write_file_atomic(config_path, yaml, strlen(yaml)), 0);

    /* Flags win over the YAML: base width 4, 2 epochs, no augmentation. */
    int status = run("train --config p.yaml --base-width 4 --epochs 2 --augment off "
                     "--shuffle off --device auto --lr 0.005 --seed 3 --checkpoint-every 1");
    if (status != 0)
        fail_msg("exit %d: %s", status, out_text);
    assert_non_null(strstr(out_text, "device auto: cpu (auto: "));
    assert_non_null(strstr(out_text, "trained epochs 1..2 of 2 on cpu"));
    char path[600], hex[65], text[128];
    snprintf(path, sizeof path, "%s/out/model.safetensors", work_dir);
    assert_int_equal(pnx_sha256_file_hex(path, hex), 0);
    assert_non_null(strstr(out_text, hex));
    query_text("SELECT model_sha256 FROM runs WHERE stage = 'train' ORDER BY id DESC LIMIT 1",
               text, sizeof text);
    assert_string_equal(text, hex);
    query_text("SELECT status || ' ' || device || ' ' || n_ok FROM runs WHERE stage = 'train'"
               " ORDER BY id DESC LIMIT 1", text, sizeof text);
    assert_string_equal(text, "ok cpu 2");
    query_text("SELECT COUNT(*) || ' ' || MAX(epoch) || ' ' || MIN(learning_rate)"
               " FROM train_epochs", text, sizeof text);
    assert_string_equal(text, "2 2 0.005");
    snprintf(path, sizeof path, "%s/out/model.best.safetensors", work_dir);
    assert_int_equal(access(path, F_OK), 0);

    /* --resume goes on with epoch 3 under a new run whose parent is the first. */
    status = run("train --config p.yaml --base-width 4 --epochs 3 --augment off "
                 "--shuffle off --lr 0.005 --seed 3 --resume");
    if (status != 0)
        fail_msg("exit %d: %s", status, out_text);
    assert_non_null(strstr(out_text, "trained epochs 3..3 of 3"));
    assert_null(strstr(out_text, "warning"));
    query_text("SELECT parent_run_id || ' ' || (SELECT epoch FROM train_epochs e"
               " WHERE e.run_id = r.id) FROM runs r ORDER BY id DESC LIMIT 1",
               text, sizeof text);
    assert_string_equal(text, "1 3");

    /* SIGINT between batches: exit 3, the run row says interrupted, and
     * --resume goes on from the checkpoint left behind. */
    char script[1500];
    snprintf(script, sizeof script,
             "'" BIN "' train --config p.yaml -q --base-width 4 --epochs 100000 --augment off "
             "--model out/int.safetensors & pid=$!; "
             "for i in $(seq 600); do [ -f '%s/out/int.safetensors' ] && break; "
             "kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
             "kill -INT $pid; wait $pid",
             work_dir);
    status = run_shell(script);
    if (status != 3)
        fail_msg("exit %d: %s", status, out_text);
    assert_non_null(strstr(out_text, "interrupted in epoch"));
    query_text("SELECT status || ' ' || IFNULL(model_sha256, 'none') FROM runs"
               " ORDER BY id DESC LIMIT 1", text, sizeof text);
    assert_true(strncmp(text, "interrupted ", 12) == 0);
    assert_int_equal(strlen(text), 12 + 64);

    /* Usage errors: 1. */
    assert_int_equal(run("train --config p.yaml --augment maybe"), 1);
    assert_non_null(strstr(out_text, "--augment: expected on or off"));
    assert_int_equal(run("train --config p.yaml --epochs 0"), 1);
    assert_non_null(strstr(out_text, "--epochs"));
    assert_int_equal(run("train --config p.yaml --positive-fraction 2"), 1);
    assert_int_equal(run("train --config p.yaml --device tpu"), 1);
    assert_int_equal(run("train --config p.yaml stray"), 1);
    /* Fatal errors: 3, with the reason. */
    assert_int_equal(run("train --config p.yaml --cache-dir nowhere"), 3);
    assert_non_null(strstr(out_text, "train cache: nowhere/train.safetensors"));
    assert_int_equal(run("train --config p.yaml --device cuda"), 3);
    assert_non_null(strstr(out_text, "device cuda: "));
    assert_int_equal(run("train --config p.yaml --init nowhere.safetensors"), 3);
    assert_non_null(strstr(out_text, "nowhere.safetensors"));

    assert_int_equal(run("train --help"), 0);
    const char *flags[] = {"--epochs", "--batch-size", "--lr", "--base-width", "--device",
                           "--seed", "--augment", "--shuffle", "--positive-fraction", "--init",
                           "--resume", "--model", "--cache-dir", "--threads",
                           "--checkpoint-every", "--bce-weight", "--dice-weight",
                           "--weight-decay", "--config"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(out_text, flags[i]))
            fail_msg("--help does not list %s", flags[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
