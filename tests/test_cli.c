/* tests/test_cli.c — the pneumoseg binary as a user runs it: help, version,
 * exit codes, run --check, unbuilt subcommands failing honestly, db
 * migrate/info. Runs build/pneumoseg through the shell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define BIN PNX_BINARY_DIR "/pneumoseg"

static char g_out[65536];

/* Runs a shell command line, captures stdout+stderr into g_out, returns the exit status. */
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_help_and_version(void **state)
{
    (void)state;
    assert_int_equal(run("%s --help", BIN), 0);
    const char *commands[] = {"run", "ingest", "dataset", "train", "score",
                              "evaluate", "predict", "rle", "db"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "  %s ", commands[i]);
        assert_non_null(strstr(g_out, needle));
    }
    assert_non_null(strstr(g_out, "Exit status"));
    assert_int_equal(run("%s --version", BIN), 0);
    assert_non_null(strstr(g_out, "pneumoseg "));
    assert_int_equal(run("%s", BIN), 1);
    assert_int_equal(run("%s frobnicate", BIN), 1);
    assert_non_null(strstr(g_out, "unknown command 'frobnicate'"));
    assert_int_equal(run("%s run --help", BIN), 0);
    assert_non_null(strstr(g_out, "--check"));
    assert_non_null(strstr(g_out, "--config FILE"));
    assert_int_equal(run("%s db --help", BIN), 0);
    assert_non_null(strstr(g_out, "migrate"));
    assert_int_equal(run("%s run --bogus-option", BIN), 1);
}

static void test_run_check(void **state)
{
    (void)state;
    assert_int_equal(run("cd %s && %s run --check pipeline.yaml", PNX_SOURCE_DIR, BIN), 0);
    assert_non_null(strstr(g_out, "pipeline.yaml: valid"));
    assert_int_equal(run("%s run --check %s/config/bad_unknown_key.yaml", BIN, PNX_TEST_DATA), 1);
    assert_non_null(strstr(g_out, "bad_unknown_key.yaml:4:3: train.epochz: unknown key "
                                  "(did you mean 'epochs'?)"));
    assert_int_equal(run("%s run --check /nonexistent.yaml", BIN), 1);
    assert_int_equal(run("cd %s && %s run --check --stages dataset,nope pipeline.yaml",
                         PNX_SOURCE_DIR, BIN), 1);
    assert_non_null(strstr(g_out, "unknown stage 'nope'"));
}

static void test_db_commands(void **state)
{
    (void)state;
    char dir[] = "/tmp/pnx-test-cli-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(run("%s db info --db %s/x.sqlite", BIN, dir), 3);
    assert_non_null(strstr(g_out, "does not exist"));
    assert_int_equal(run("%s db migrate --db %s/x.sqlite", BIN, dir), 0);
    assert_non_null(strstr(g_out, "migrated schema version 0 to 1"));
    assert_int_equal(run("%s db migrate --db %s/x.sqlite", BIN, dir), 0);
    assert_non_null(strstr(g_out, "already current"));
    assert_int_equal(run("%s db info --db %s/x.sqlite", BIN, dir), 0);
    assert_non_null(strstr(g_out, "schema version: 1"));
    assert_non_null(strstr(g_out, "instance_metrics"));
    assert_non_null(strstr(g_out, "run_summary"));
    /* --out moves the configured database when --db is not given. */
    assert_int_equal(run("cd %s && %s db migrate --out %s/o", PNX_SOURCE_DIR, BIN, dir), 0);
    assert_int_equal(run("test -f %s/o/pneumoseg.sqlite", dir), 0);
    assert_int_equal(run("%s db frob --db %s/x.sqlite", BIN, dir), 1);
    assert_int_equal(run("rm -rf %s", dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_run_check),
        cmocka_unit_test(test_db_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
