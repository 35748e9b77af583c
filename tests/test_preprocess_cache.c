/*
 * tests/test_preprocess_cache.c — preprocess/cache.h: round trip, byte
 * identity whatever the put order, concurrent puts, refusals, and loading
 * with Python's safetensors package when python3 has it.
 */
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
#include "common/fileio.h"
#include "common/image.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "common/threadpool.h"
#include "preprocess/cache.h"

static char work_dir[512];

static int setup(void **state)
{
    (void)state;
    snprintf(work_dir, sizeof work_dir, "%s/tests/preprocess_cache.%d", PNX_BINARY_DIR,
             (int)getpid());
    return pnx_mkdir_p(work_dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *path_in_work(const char *name)
{
    char *p = pnx_path_join(work_dir, name);
    assert_non_null(p);
    return p;
}

/* The pattern check_cache.py expects. */
static void fill_item(size_t i, uint32_t side, pnx_image *img, pnx_image *mask, char uid[32])
{
    assert_int_equal(pnx_image_alloc(img, side, side), 0);
    assert_int_equal(pnx_image_alloc(mask, side, side), 0);
    for (uint32_t y = 0; y < side; y++)
        for (uint32_t x = 0; x < side; x++) {
            img->pixels[y * side + x] = (uint8_t)((i * 31 + y * 7 + x * 3) & 255);
            mask->pixels[y * side + x] = (x + y + i) % 5 == 0;
        }
    snprintf(uid, 32, "1.2.840.%zu", 1000 + i);
}

static void put_item(pnx_cache_builder *b, size_t i, uint32_t side)
{
    pnx_image img = {0}, mask = {0};
    char uid[32];
    fill_item(i, side, &img, &mask, uid);
    assert_int_equal(pnx_cache_builder_put(b, i, &img, &mask, uid), 0);
    pnx_image_free(&img);
    pnx_image_free(&mask);
}

/* Writes count items in the order given by shuffle_seed (0 = in order). */
static void build_cache(const char *path, size_t count, uint32_t side, uint64_t shuffle_seed)
{
    pnx_cache_builder *b = NULL;
    assert_int_equal(pnx_cache_builder_open(&b, path, count, side), 0);
    assert_int_equal(pnx_cache_builder_meta(b, "split", "val"), 0);
    assert_int_equal(pnx_cache_builder_meta(b, "mask_rule", "any"), 0);
    uint32_t *order = malloc((count ? count : 1) * sizeof *order);
    for (size_t i = 0; i < count; i++)
        order[i] = (uint32_t)i;
    if (shuffle_seed) {
        pnx_rng rng;
        pnx_rng_seed(&rng, shuffle_seed, 0);
        pnx_rng_shuffle_u32(&rng, order, (uint32_t)count);
    }
    for (size_t k = 0; k < count; k++)
        put_item(b, order[k], side);
    free(order);
    assert_int_equal(pnx_cache_builder_commit(b), 0);
}

static void check_cache(const char *path, size_t count, uint32_t side)
{
    pnx_cache *c = NULL;
    assert_int_equal(pnx_cache_open(&c, path), 0);
    assert_int_equal(pnx_cache_count(c), count);
    assert_int_equal(pnx_cache_side(c), side);
    assert_string_equal(pnx_cache_meta(c, "split"), "val");
    assert_string_equal(pnx_cache_meta(c, "format"), PNX_CACHE_FORMAT);
    assert_int_equal(pnx_cache_verify(c), 0);
    for (size_t i = 0; i < count; i++) {
        pnx_image img = {0}, mask = {0};
        char uid[32], got[PNX_CACHE_UID_BYTES + 1];
        fill_item(i, side, &img, &mask, uid);
        assert_memory_equal(pnx_cache_image(c, i), img.pixels, pnx_image_size(&img));
        assert_memory_equal(pnx_cache_mask(c, i), mask.pixels, pnx_image_size(&mask));
        assert_int_equal(pnx_cache_uid(c, i, got), 0);
        assert_string_equal(got, uid);
        pnx_image_free(&img);
        pnx_image_free(&mask);
    }
    assert_null(pnx_cache_image(c, count));
    pnx_cache_close(c);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *path = path_in_work("val.safetensors");
    build_cache(path, 7, 16, 0);
    check_cache(path, 7, 16);
    free(path);
}

static int files_equal(const char *a, const char *b)
{
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(pnx_read_file(a, 1u << 26, &da, &la), 0);
    assert_int_equal(pnx_read_file(b, 1u << 26, &db, &lb), 0);
    int same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

static void test_byte_identical_whatever_the_order(void **state)
{
    (void)state;
    char *a = path_in_work("a.safetensors"), *b = path_in_work("b.safetensors");
    build_cache(a, 40, 32, 0);
    build_cache(b, 40, 32, 12345);
    assert_true(files_equal(a, b));
    check_cache(b, 40, 32);
    free(a);
    free(b);
}

static void test_empty_cache(void **state)
{
    (void)state;
    char *path = path_in_work("empty.safetensors");
    build_cache(path, 0, 64, 0);
    check_cache(path, 0, 64);
    free(path);
}

static void test_skipped_items_are_left_out(void **state)
{
    (void)state;
    char *path = path_in_work("skipped.safetensors");
    pnx_cache_builder *b = NULL;
    assert_int_equal(pnx_cache_builder_open(&b, path, 6, 12), 0);
    const int skipped[6] = {0, 0, 1, 0, 0, 1};
    for (size_t i = 0; i < 6; i++) {
        if (skipped[i])
            assert_int_equal(pnx_cache_builder_skip(b, i), 0);
        else
            put_item(b, i, 12);
    }
    assert_int_equal(pnx_cache_builder_skip(b, 2), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_commit(b), 0);
    pnx_cache *c = NULL;
    assert_int_equal(pnx_cache_open(&c, path), 0);
    assert_int_equal(pnx_cache_count(c), 4);
    const size_t kept[4] = {0, 1, 3, 4};
    for (size_t k = 0; k < 4; k++) {
        pnx_image img = {0}, mask = {0};
        char uid[32], got[PNX_CACHE_UID_BYTES + 1];
        fill_item(kept[k], 12, &img, &mask, uid);
        assert_memory_equal(pnx_cache_image(c, k), img.pixels, 144);
        assert_memory_equal(pnx_cache_mask(c, k), mask.pixels, 144);
        assert_int_equal(pnx_cache_uid(c, k, got), 0);
        assert_string_equal(got, uid);
        pnx_image_free(&img);
        pnx_image_free(&mask);
    }
    assert_int_equal(pnx_cache_verify(c), 0);
    pnx_cache_close(c);
    free(path);
}

typedef struct concurrent_ctx {
    pnx_cache_builder *b;
    uint32_t side;
} concurrent_ctx;

static int put_range(void *vctx, size_t begin, size_t end)
{
    concurrent_ctx *ctx = vctx;
    for (size_t i = begin; i < end; i++) {
        pnx_image img = {0}, mask = {0};
        char uid[32];
        fill_item(i, ctx->side, &img, &mask, uid);
        int rc = pnx_cache_builder_put(ctx->b, i, &img, &mask, uid);
        pnx_image_free(&img);
        pnx_image_free(&mask);
        if (rc)
            return rc;
    }
    return 0;
}

static void test_concurrent_puts(void **state)
{
    (void)state;
    char *a = path_in_work("serial.safetensors"), *p = path_in_work("parallel.safetensors");
    build_cache(a, 100, 24, 0);
    pnx_pool *pool = NULL;
    assert_int_equal(pnx_pool_create(&pool, 4), 0);
    concurrent_ctx ctx = {0};
    ctx.side = 24;
    assert_int_equal(pnx_cache_builder_open(&ctx.b, p, 100, 24), 0);
    assert_int_equal(pnx_cache_builder_meta(ctx.b, "split", "val"), 0);
    assert_int_equal(pnx_cache_builder_meta(ctx.b, "mask_rule", "any"), 0);
    assert_int_equal(pnx_pool_for(pool, 100, put_range, &ctx), 0);
    assert_int_equal(pnx_cache_builder_commit(ctx.b), 0);
    pnx_pool_destroy(pool);
    assert_true(files_equal(a, p));
    free(a);
    free(p);
}

static void test_builder_refusals(void **state)
{
    (void)state;
    char *path = path_in_work("refused.safetensors");
    pnx_cache_builder *b = NULL;
    pnx_image img = {0}, mask = {0}, small = {0};
    char uid[32];
    assert_int_equal(pnx_cache_builder_open(&b, path, 2, 0), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_open(&b, path, 2, 8), 0);
    assert_int_equal(pnx_cache_builder_meta(b, "count", "9"), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_meta(b, "split", "train"), 0);
    assert_int_equal(pnx_cache_builder_meta(b, "split", "test"), PNX_EINVAL);
    fill_item(0, 8, &img, &mask, uid);
    assert_int_equal(pnx_image_alloc(&small, 4, 4), 0);
    assert_int_equal(pnx_cache_builder_put(b, 2, &img, &mask, uid), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_put(b, 0, &small, &mask, uid), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_put(b, 0, &img, &mask, "1.2.x"), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_put(b, 0, &img, &mask, ""), PNX_EINVAL);
    assert_int_equal(pnx_cache_builder_put(
                         b, 0, &img, &mask,
                         "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26"),
                     PNX_EINVAL);
    mask.pixels[3] = 255;
    assert_int_equal(pnx_cache_builder_put(b, 0, &img, &mask, uid), PNX_EINVAL);
    assert_non_null(strstr(pnx_errmsg(), "not 0/1"));
    mask.pixels[3] = 1;
    assert_int_equal(pnx_cache_builder_put(b, 0, &img, &mask, uid), 0);
    assert_int_equal(pnx_cache_builder_put(b, 0, &img, &mask, uid), PNX_EINVAL);
    /* item 1 missing: commit fails and writes nothing */
    assert_int_equal(pnx_cache_builder_commit(b), PNX_EINVAL);
    assert_non_null(strstr(pnx_errmsg(), "item 1"));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    pnx_image_free(&img);
    pnx_image_free(&mask);
    pnx_image_free(&small);
    free(path);
}

static void test_reader_refuses_other_files(void **state)
{
    (void)state;
    char *path = path_in_work("other.safetensors");
    pnx_st_writer *w = NULL;
    uint8_t data[2 * 1 * 4 * 4] = {0};
    uint8_t uids[2 * 64] = {0};
    const int64_t shape[4] = {2, 1, 4, 4}, bad_mask[4] = {2, 1, 4, 5}, uid_shape[2] = {2, 64};
    pnx_cache *c = NULL;

    /* a safetensors file that is not a cache */
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_add(w, "images", PNX_ST_U8, 4, shape, data), 0);
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);
    assert_int_equal(pnx_cache_open(&c, path), PNX_EFORMAT);
    assert_null(c);

    /* the right metadata, masks of the wrong shape */
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_meta(w, "format", PNX_CACHE_FORMAT), 0);
    assert_int_equal(pnx_st_writer_meta(w, "version", PNX_CACHE_VERSION), 0);
    assert_int_equal(pnx_st_writer_meta(w, "count", "2"), 0);
    assert_int_equal(pnx_st_writer_meta(w, "image_size", "4"), 0);
    assert_int_equal(pnx_st_writer_add(w, "images", PNX_ST_U8, 4, shape, data), 0);
    uint8_t mask_data[2 * 4 * 5] = {0};
    assert_int_equal(pnx_st_writer_add(w, "masks", PNX_ST_U8, 4, bad_mask, mask_data), 0);
    assert_int_equal(pnx_st_writer_add(w, "sop_instance_uids", PNX_ST_U8, 2, uid_shape, uids), 0);
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);
    assert_int_equal(pnx_cache_open(&c, path), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "masks"));

    /* consistent shapes, but a mask byte of 2 and an empty UID */
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_meta(w, "format", PNX_CACHE_FORMAT), 0);
    assert_int_equal(pnx_st_writer_meta(w, "version", PNX_CACHE_VERSION), 0);
    assert_int_equal(pnx_st_writer_meta(w, "count", "2"), 0);
    assert_int_equal(pnx_st_writer_meta(w, "image_size", "4"), 0);
    uint8_t masks2[2 * 16] = {0};
    masks2[5] = 2;
    memcpy(uids, "1.2", 3);
    assert_int_equal(pnx_st_writer_add(w, "images", PNX_ST_U8, 4, shape, data), 0);
    assert_int_equal(pnx_st_writer_add(w, "masks", PNX_ST_U8, 4, shape, masks2), 0);
    assert_int_equal(pnx_st_writer_add(w, "sop_instance_uids", PNX_ST_U8, 2, uid_shape, uids), 0);
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);
    assert_int_equal(pnx_cache_open(&c, path), 0);
    char uid[PNX_CACHE_UID_BYTES + 1];
    assert_int_equal(pnx_cache_uid(c, 0, uid), 0);
    assert_string_equal(uid, "1.2");
    assert_int_equal(pnx_cache_uid(c, 1, uid), PNX_EFORMAT);
    assert_int_equal(pnx_cache_verify(c), PNX_EFORMAT);
    pnx_cache_close(c);
    free(path);
}

static void test_python_safetensors_loads_it(void **state)
{
    (void)state;
    if (system("python3 -c 'import numpy, safetensors.numpy' >/dev/null 2>&1") != 0)
        skip();
    char *path = path_in_work("python.safetensors");
    build_cache(path, 9, 20, 99);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "python3 '%s/preprocess/check_cache.py' '%s' 9 20", PNX_TEST_DATA,
             path);
    assert_int_equal(system(cmd), 0);
    /* an empty split too */
    build_cache(path, 0, 20, 0);
    snprintf(cmd, sizeof cmd, "python3 '%s/preprocess/check_cache.py' '%s' 0 20", PNX_TEST_DATA,
             path);
    assert_int_equal(system(cmd), 0);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_byte_identical_whatever_the_order),
        cmocka_unit_test(test_empty_cache),
        cmocka_unit_test(test_concurrent_puts),
        cmocka_unit_test(test_skipped_items_are_left_out),
        cmocka_unit_test(test_builder_refusals),
        cmocka_unit_test(test_reader_refuses_other_files),
        cmocka_unit_test(test_python_safetensors_loads_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
