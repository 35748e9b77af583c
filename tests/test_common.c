/* tests/test_common.c — common/: error messages, log and progress wording,
 * RNG reproducibility, the thread pool, atomic writes (including a failure
 * just before the rename), file reading limits, SHA-256 vectors, images. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "common/threadpool.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pnx-test-common-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_error_messages(void **state)
{
    (void)state;
    pnx_clear_error();
    assert_string_equal(pnx_errmsg(), "");
    assert_int_equal(pnx_fail(PNX_EFORMAT, "line %d: bad value", 7), PNX_EFORMAT);
    assert_string_equal(pnx_errmsg(), "line 7: bad value");
    assert_int_equal(pnx_fail_prefix(PNX_EFORMAT, "labels.csv"), PNX_EFORMAT);
    assert_string_equal(pnx_errmsg(), "labels.csv: line 7: bad value");
    pnx_clear_error();
    pnx_fail_prefix(PNX_EIO, "only context");
    assert_string_equal(pnx_errmsg(), "only context");
    /* Long messages are cut, never overflow. */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pnx_fail(PNX_EIO, "%s", big);
    pnx_fail_prefix(PNX_EIO, "%s", big);
    assert_int_equal(strlen(pnx_errmsg()), PNX_ERRMSG_MAX - 1);
    assert_string_equal(pnx_strerror(PNX_EIO), "I/O error");
    assert_string_equal(pnx_strerror(12345), "unknown error");
}

static void format_log(char *buf, size_t n, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pnx_log_format(buf, n, level, fmt, ap);
    va_end(ap);
}

static void test_log_format(void **state)
{
    (void)state;
    char line[128];
    format_log(line, sizeof line, PNX_LOG_WARN, "%d files skipped", 3);
    assert_string_equal(line, "pneumoseg: warning: 3 files skipped");
    format_log(line, sizeof line, PNX_LOG_ERROR, "bad");
    assert_string_equal(line, "pneumoseg: error: bad");
    format_log(line, sizeof line, PNX_LOG_INFO, "done");
    assert_string_equal(line, "pneumoseg: done");
    pnx_log_set_level(99);
    assert_int_equal(pnx_log_get_level(), PNX_LOG_DEBUG);
    pnx_log_set_level(PNX_LOG_INFO);
}

static void test_progress_format(void **state)
{
    (void)state;
    char line[256];
    pnx_progress_format(line, sizeof line, "decode", 25, 100, 5.0, 10);
    assert_string_equal(line, "decode [##........] 25/100  25%  5.0/s  ETA 0:15");
    pnx_progress_format(line, sizeof line, "decode", 100, 100, 125.0, 0);
    assert_string_equal(line, "decode 100/100 100%  0.8/s  in 2:05");
    pnx_progress_format(line, sizeof line, "walk", 4000, 0, 2.0, 10);
    assert_string_equal(line, "walk 4000  2000/s");
    pnx_progress_format(line, sizeof line, "x", 0, 10, 0.0, 0);
    assert_string_equal(line, "x 0/10   0%  0.0/s  ETA --:--");
    pnx_progress_format(line, sizeof line, "x", 1, 7201, 1.0, 0);
    assert_string_equal(line, "x 1/7201   0%  1.0/s  ETA 2:00:00");
    /* The object itself: NULL-safe, adds from the caller, frees on finish. */
    pnx_log_set_level(PNX_LOG_ERROR);
    pnx_progress *p = pnx_progress_start("t", 3);
    assert_non_null(p);
    pnx_progress_add(p, 2);
    pnx_progress_add(NULL, 1);
    pnx_progress_finish(p);
    pnx_progress_finish(NULL);
    pnx_log_set_level(PNX_LOG_INFO);
}

static void test_rng(void **state)
{
    (void)state;
    pnx_rng a, b, c;
    pnx_rng_seed(&a, 42, 0);
    pnx_rng_seed(&b, 42, 0);
    pnx_rng_seed(&c, 42, 1);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 100; i++) {
        uint64_t x = pnx_rng_u64(&a), y = pnx_rng_u64(&b), z = pnx_rng_u64(&c);
        same_ab &= x == y;
        same_ac &= x == z;
    }
    assert_true(same_ab);
    assert_false(same_ac);

    /* Uniform draws: right range and a mean near 1/2 over many draws. */
    pnx_rng_seed(&a, 7, 3);
    double sum = 0;
    uint64_t counts[5] = {0};
    for (int i = 0; i < 100000; i++) {
        double u = pnx_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        uint64_t k = pnx_rng_below(&a, 5);
        assert_true(k < 5);
        counts[k]++;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.01);
    for (int k = 0; k < 5; k++)
        assert_true(counts[k] > 19000 && counts[k] < 21000);

    double m = 0, m2 = 0;
    for (int i = 0; i < 100000; i++) {
        double g = pnx_rng_normal(&a);
        m += g;
        m2 += g * g;
    }
    m /= 100000;
    assert_true(fabs(m) < 0.02);
    assert_true(fabs(m2 / 100000 - m * m - 1.0) < 0.03);

    uint32_t v[50];
    for (uint32_t i = 0; i < 50; i++)
        v[i] = i;
    pnx_rng_shuffle_u32(&a, v, 50);
    int seen[50] = {0};
    int moved = 0;
    for (uint32_t i = 0; i < 50; i++) {
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 30);
}

typedef struct sum_ctx {
    const uint32_t *v;
    uint64_t partial[1024];
    size_t fail_at;
} sum_ctx;

static int sum_range(void *p, size_t begin, size_t end)
{
    sum_ctx *c = p;
    uint64_t s = 0;
    for (size_t i = begin; i < end; i++) {
        if (i == c->fail_at)
            return PNX_ERANGE;
        s += c->v[i];
    }
    /* Each chunk starts at a distinct begin, so slots never collide. */
    c->partial[begin % 1024] += s;
    return 0;
}

static void test_threadpool(void **state)
{
    (void)state;
    size_t n = 100003;
    uint32_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    uint64_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = (uint32_t)(i * 2654435761u);
        expect += v[i];
    }
    for (unsigned threads = 1; threads <= 4; threads++) {
        pnx_pool *pool = NULL;
        assert_int_equal(pnx_pool_create(&pool, threads), PNX_OK);
        assert_int_equal(pnx_pool_size(pool), threads);
        for (int rep = 0; rep < 3; rep++) {
            sum_ctx *c = calloc(1, sizeof *c);
            assert_non_null(c);
            c->v = v;
            c->fail_at = (size_t)-1;
            assert_int_equal(pnx_pool_for(pool, n, sum_range, c), 0);
            uint64_t got = 0;
            for (int k = 0; k < 1024; k++)
                got += c->partial[k];
            assert_true(got == expect);
            c->fail_at = n / 2;
            assert_int_equal(pnx_pool_for(pool, n, sum_range, c), PNX_ERANGE);
            free(c);
        }
        pnx_pool_destroy(pool);
    }
    free(v);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_atomic_write(void **state)
{
    (void)state;
    char *path = pnx_path_join(g_dir, "out.bin");
    assert_non_null(path);
    assert_int_equal(pnx_write_file_atomic(path, "first", 5), PNX_OK);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(path, 100, &data, &len), PNX_OK);
    assert_int_equal(len, 5);
    assert_string_equal(data, "first");
    free(data);

    /* A failure after the data is written but before the rename leaves the
     * old file whole and no temporary file behind. */
    pnx_fileio_fail_before_rename = 1;
    assert_int_equal(pnx_write_file_atomic(path, "second, longer", 14), PNX_EIO);
    pnx_fileio_fail_before_rename = 0;
    assert_int_equal(pnx_read_file(path, 100, &data, &len), PNX_OK);
    assert_string_equal(data, "first");
    free(data);
    assert_int_equal(count_entries(g_dir), 1);

    /* Streaming form, and abort. */
    pnx_atomic_file af;
    assert_int_equal(pnx_atomic_open(&af, path), PNX_OK);
    fputs("streamed", af.fp);
    pnx_atomic_abort(&af);
    assert_int_equal(count_entries(g_dir), 1);
    assert_int_equal(pnx_atomic_open(&af, path), PNX_OK);
    fputs("streamed", af.fp);
    assert_int_equal(pnx_atomic_commit(&af), PNX_OK);
    assert_int_equal(pnx_read_file(path, 100, &data, &len), PNX_OK);
    assert_string_equal(data, "streamed");
    free(data);
    assert_int_equal(count_entries(g_dir), 1);

    /* A missing folder is an error that names the path. */
    char *bad = pnx_path_join(g_dir, "missing/x.bin");
    assert_int_equal(pnx_write_file_atomic(bad, "x", 1), PNX_EIO);
    assert_non_null(strstr(pnx_errmsg(), "missing/x.bin"));
    free(bad);
    free(path);
}

static void test_read_limits_and_mkdir(void **state)
{
    (void)state;
    char *path = pnx_path_join(g_dir, "ten.txt");
    assert_int_equal(pnx_write_file_atomic(path, "0123456789", 10), PNX_OK);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(pnx_read_file(path, 9, &data, &len), PNX_ERANGE);
    assert_null(data);
    assert_int_equal(pnx_read_file(path, 10, &data, &len), PNX_OK);
    free(data);
    assert_int_equal(pnx_read_file("/nonexistent/file", 10, &data, &len), PNX_ENOTFOUND);
    assert_int_equal(pnx_read_file(g_dir, 10, &data, &len), PNX_EIO);

    char *deep = pnx_path_join(g_dir, "a/b/c/");
    assert_int_equal(pnx_mkdir_p(deep, 0755), PNX_OK);
    assert_int_equal(pnx_mkdir_p(deep, 0755), PNX_OK);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(pnx_mkdir_p(path, 0755), PNX_EIO); /* a file is in the way */
    free(deep);
    free(path);

    char *j = pnx_path_join("out//", "x");
    assert_string_equal(j, "out/x");
    free(j);
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[65];
    /* FIPS 180-2 test vectors. */
    assert_int_equal(pnx_sha256_hex("abc", 3, hex), PNX_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(pnx_sha256_hex("", 0, hex), PNX_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* A file larger than the read buffer hashes like the same bytes in memory. */
    size_t n = 200000;
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    char *path = pnx_path_join(g_dir, "blob");
    assert_int_equal(pnx_write_file_atomic(path, buf, n), PNX_OK);
    char hex_file[65];
    assert_int_equal(pnx_sha256_hex(buf, n, hex), PNX_OK);
    assert_int_equal(pnx_sha256_file_hex(path, hex_file), PNX_OK);
    assert_string_equal(hex, hex_file);
    assert_int_equal(pnx_sha256_file_hex("/nonexistent", hex_file), PNX_EIO);
    free(path);
    free(buf);
}

static void test_image(void **state)
{
    (void)state;
    pnx_image img;
    assert_int_equal(pnx_image_alloc(&img, 7, 9), PNX_OK);
    assert_int_equal(pnx_image_size(&img), 63);
    for (size_t i = 0; i < 63; i++)
        assert_int_equal(img.pixels[i], 0);
    pnx_image_free(&img);
    assert_null(img.pixels);
    assert_int_equal(pnx_image_alloc(&img, 0, 9), PNX_ERANGE);
    assert_int_equal(pnx_image_alloc(&img, 70000, 9), PNX_ERANGE);
    assert_null(img.pixels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_log_format),
        cmocka_unit_test(test_progress_format),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_limits_and_mkdir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
        cmocka_unit_test(test_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
