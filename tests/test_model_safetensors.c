/*
 * tests/test_model_safetensors.c — the safetensors reader and writer
 * (common/safetensors.h): round trips, files written by the reference
 * implementation's layout, and every kind of malformed header refused.
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

#include "common/error.h"
#include "common/fileio.h"
#include "common/safetensors.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/test_model_safetensors.%d", PNX_BINARY_DIR, (int)getpid());
    return pnx_mkdir_p(tmpdir, 0755);
}

static int remove_dir(void **state)
{
    (void)state;
    return rmdir(tmpdir) == 0 ? 0 : -1;
}

static char *tmp_path(const char *name)
{
    return pnx_path_join(tmpdir, name);
}

/* A file image: 8-byte length, header (padded to 8 with spaces), data. */
static unsigned char *make_image(const char *header, const void *data, size_t data_len,
                                 size_t *len)
{
    size_t hl = strlen(header);
    size_t padded = (hl + 7) / 8 * 8;
    *len = 8 + padded + data_len;
    unsigned char *buf = malloc(*len);
    assert_non_null(buf);
    for (int b = 0; b < 8; b++)
        buf[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    if (data_len)
        memcpy(buf + 8 + padded, data, data_len);
    return buf;
}

static int open_header(const char *header, size_t data_len)
{
    unsigned char data[256] = {0};
    assert_true(data_len <= sizeof data);
    size_t len;
    unsigned char *buf = make_image(header, data, data_len, &len);
    pnx_st_file *f = NULL;
    int rc = pnx_st_open_memory(&f, buf, len);
    pnx_st_close(f);
    free(buf);
    return rc;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t images[2 * 1 * 3 * 5];
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)(i * 7);
    float weights[4] = {1.5f, -2.25f, 3e-8f, 1e30f};
    int64_t steps = 123456789012345;
    uint8_t odd[3] = {9, 8, 7};
    int64_t shape_images[4] = {2, 1, 3, 5}, shape_w[2] = {2, 2}, shape_odd[1] = {3};
    int64_t shape_empty[2] = {0, 4};

    pnx_st_writer *w = NULL;
    assert_int_equal(pnx_st_writer_create(&w), 0);
    /* Added u8 first: the writer must still place the wider types first. */
    assert_int_equal(pnx_st_writer_add(w, "odd", PNX_ST_U8, 1, shape_odd, odd), 0);
    assert_int_equal(pnx_st_writer_add(w, "images", PNX_ST_U8, 4, shape_images, images), 0);
    assert_int_equal(pnx_st_writer_add(w, "w", PNX_ST_F32, 2, shape_w, weights), 0);
    assert_int_equal(pnx_st_writer_add(w, "step", PNX_ST_I64, 0, NULL, &steps), 0);
    assert_int_equal(pnx_st_writer_add(w, "empty", PNX_ST_F32, 2, shape_empty, NULL), 0);
    assert_int_equal(pnx_st_writer_meta(w, "uids", "1.2.3\n\"quoted\"\\ é ✓"), 0);
    assert_int_equal(pnx_st_writer_meta(w, "arch", "unet"), 0);
    assert_int_equal(pnx_st_writer_add(w, "w", PNX_ST_F32, 2, shape_w, weights), PNX_EINVAL);
    assert_int_equal(pnx_st_writer_meta(w, "arch", "again"), PNX_EINVAL);
    char *path = tmp_path("round.safetensors");
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);

    pnx_st_file *f = NULL;
    assert_int_equal(pnx_st_open(&f, path), 0);
    assert_int_equal(pnx_st_count(f), 5);
    const pnx_st_tensor *t = NULL;
    assert_int_equal(pnx_st_expect(f, "images", PNX_ST_U8, 4, shape_images, &t), 0);
    assert_memory_equal(t->data, images, sizeof images);
    assert_int_equal(t->numel, sizeof images);
    assert_int_equal(pnx_st_expect(f, "w", PNX_ST_F32, 2, (int64_t[]){-1, 2}, &t), 0);
    assert_true(pnx_st_tensor_aligned(t));
    float back[4];
    assert_int_equal(pnx_st_copy_f32(t, back, 4), 0);
    assert_memory_equal(back, weights, sizeof weights);
    assert_int_equal(pnx_st_copy_f32(t, back, 3), PNX_EFORMAT);
    assert_int_equal(pnx_st_expect(f, "step", PNX_ST_I64, 0, NULL, &t), 0);
    assert_true(pnx_st_tensor_aligned(t));
    int64_t s2;
    assert_int_equal(pnx_st_copy_i64(t, &s2, 1), 0);
    assert_int_equal(s2, steps);
    assert_int_equal(pnx_st_expect(f, "empty", PNX_ST_F32, 2, shape_empty, &t), 0);
    assert_int_equal(t->numel, 0);
    assert_string_equal(pnx_st_meta(f, "uids"), "1.2.3\n\"quoted\"\\ é ✓");
    assert_string_equal(pnx_st_meta(f, "arch"), "unet");
    assert_null(pnx_st_meta(f, "nope"));
    assert_int_equal(pnx_st_meta_count(f), 2);
    assert_null(pnx_st_find(f, "nope"));

    assert_int_equal(pnx_st_expect(f, "nope", PNX_ST_F32, 0, NULL, NULL), PNX_ENOTFOUND);
    assert_int_equal(pnx_st_expect(f, "w", PNX_ST_F32, 2, (int64_t[]){2, 3}, NULL), PNX_EFORMAT);
    assert_non_null(strstr(pnx_errmsg(), "shape [2,2] expected [2,3]"));
    assert_int_equal(pnx_st_expect(f, "w", PNX_ST_U8, 2, shape_w, NULL), PNX_EFORMAT);
    pnx_st_close(f);
    unlink(path);
    free(path);
}

typedef struct counting_fill {
    size_t calls;
} counting_fill;

static int fill_ramp(void *ctx, FILE *fp, size_t nbytes)
{
    counting_fill *c = ctx;
    c->calls++;
    for (size_t i = 0; i < nbytes; i++)
        if (fputc((int)(i % 251), fp) == EOF)
            return PNX_EIO;
    return 0;
}

static int fill_short(void *ctx, FILE *fp, size_t nbytes)
{
    (void)ctx;
    return fwrite("x", 1, 1, fp) == 1 && nbytes > 1 ? 0 : PNX_EIO;
}

static void test_fill_and_atomic(void **state)
{
    (void)state;
    char *path = tmp_path("fill.safetensors");
    int64_t shape[3] = {3, 100, 100};
    counting_fill c = {0};
    pnx_st_writer *w = NULL;
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_add_fill(w, "masks", PNX_ST_U8, 3, shape, fill_ramp, &c), 0);
    assert_int_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);
    assert_int_equal(c.calls, 1);

    /* A fill that writes too little is an error and leaves the old file. */
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_add_fill(w, "masks", PNX_ST_U8, 3, shape, fill_short, NULL), 0);
    assert_int_not_equal(pnx_st_writer_write(w, path), 0);
    pnx_st_writer_free(w);

    /* So does a crash just before the rename. */
    float one = 1.0f;
    assert_int_equal(pnx_st_writer_create(&w), 0);
    assert_int_equal(pnx_st_writer_add(w, "x", PNX_ST_F32, 0, NULL, &one), 0);
    pnx_fileio_fail_before_rename = 1;
    assert_int_not_equal(pnx_st_writer_write(w, path), 0);
    pnx_fileio_fail_before_rename = 0;
    pnx_st_writer_free(w);

    pnx_st_file *f = NULL;
    assert_int_equal(pnx_st_open(&f, path), 0);
    const pnx_st_tensor *t = NULL;
    assert_int_equal(pnx_st_expect(f, "masks", PNX_ST_U8, 3, shape, &t), 0);
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        assert_int_equal(p[i], i % 251);
    pnx_st_close(f);
    unlink(path);
    free(path);
}

/* The layout the reference Python writer produces: __metadata__ first, keys
 * with spaces after separators, header padded with spaces. */
static void test_reference_layout(void **state)
{
    (void)state;
    float data[3] = {1, 2, 3};
    int64_t n = 7;
    unsigned char bytes[20];
    memcpy(bytes, &n, 8);
    memcpy(bytes + 8, data, 12);
    size_t len;
    unsigned char *buf = make_image(
        "{\"__metadata__\": {\"format\": \"pt\"}, \"a.num_batches_tracked\": {\"dtype\": \"I64\", "
        "\"shape\": [], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [3], "
        "\"data_offsets\": [8, 20]}}",
        bytes, sizeof bytes, &len);
    pnx_st_file *f = NULL;
    assert_int_equal(pnx_st_open_memory(&f, buf, len), 0);
    assert_string_equal(pnx_st_meta(f, "format"), "pt");
    const pnx_st_tensor *t = pnx_st_find(f, "b");
    assert_non_null(t);
    float back[3];
    assert_int_equal(pnx_st_copy_f32(t, back, 3), 0);
    assert_memory_equal(back, data, sizeof data);
    pnx_st_close(f);
    free(buf);
}

static void test_malformed_headers(void **state)
{
    (void)state;
    const char *T = "\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";
    char h[512];
    snprintf(h, sizeof h, "{%s}", T);
    assert_int_equal(open_header(h, 8), 0);

    static const struct {
        const char *header;
        size_t data_len;
    } bad[] = {
        {"{}x", 0},                                                                    /* trailing */
        {"[]", 0},                                                                     /* not an object */
        {"{\"t\": {\"dtype\": \"F33\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8}, /* dtype */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8}, /* size */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8}, /* outside */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8}, /* reversed */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 16}, /* trailing data */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16}, /* hole */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
         "\"u\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12}, /* overlap */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
         "\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16}, /* duplicate */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"x\": 1}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8},                          /* no offsets */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [02], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4], "
         "\"data_offsets\": [0, 8]}}", 8},                                             /* overflow */
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [99999999999999999999], "
         "\"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 9]}}", 8},
        {"{\"t\\q\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8}, /* escape */
        {"{\"t\\ud800\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\\u0000\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\xff\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8}, /* UTF-8 */
        {"{\"t\x01\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},}", 8}, /* comma */
        {"{\"__metadata__\": {\"a\": 1}}", 0},
        {"{\"__metadata__\": {\"a\": \"x\", \"a\": \"y\"}}", 0},
        {"{\"__metadata__\": {}, \"__metadata__\": {}}", 0},
        {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 8}, /* unclosed */
        {"{\"t", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = open_header(bad[i].header, bad[i].data_len);
        if (rc != PNX_EFORMAT && rc != PNX_ERANGE)
            fail_msg("case %zu (%s) gave %d", i, bad[i].header, rc);
        assert_true(strlen(pnx_errmsg()) > 0);
    }
}

static void test_bad_length_prefix(void **state)
{
    (void)state;
    size_t len;
    float v[2] = {1, 2};
    unsigned char *buf = make_image(
        "{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", v, 8, &len);
    pnx_st_file *f = NULL;
    /* Every truncation of a valid file is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = pnx_st_open_memory(&f, buf, cut);
        assert_true(rc == PNX_EFORMAT || rc == PNX_ERANGE);
        assert_null(f);
    }
    /* A header length of 2^63 must not be trusted. */
    unsigned char huge[16];
    memcpy(huge, buf, sizeof huge);
    huge[7] = 0x80;
    assert_int_equal(pnx_st_open_memory(&f, huge, sizeof huge), PNX_ERANGE);
    /* Not starting with '{'. */
    buf[8] = '[';
    assert_int_equal(pnx_st_open_memory(&f, buf, len), PNX_EFORMAT);
    free(buf);

    char *path = tmp_path("missing.safetensors");
    assert_int_equal(pnx_st_open(&f, path), PNX_ENOTFOUND);
    free(path);
}

/* Random single-byte corruptions never crash and never pass a file whose
 * header no longer describes its data. */
static void test_corruption_never_crashes(void **state)
{
    (void)state;
    size_t len;
    unsigned char data[24] = {0};
    unsigned char *buf = make_image(
        "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],"
        "\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}}",
        data, sizeof data, &len);
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    uint64_t x = 88172645463325252u;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, buf, len);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t pos = x % (len - sizeof data);
        copy[pos] = (unsigned char)(x >> 32);
        pnx_st_file *f = NULL;
        if (pnx_st_open_memory(&f, copy, len) == 0) {
            for (size_t i = 0; i < pnx_st_count(f); i++) {
                const pnx_st_tensor *t = pnx_st_at(f, i);
                assert_true((const unsigned char *)t->data >= copy);
                assert_true((const unsigned char *)t->data + t->nbytes <= copy + len);
            }
            pnx_st_close(f);
        }
    }
    free(copy);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_fill_and_atomic),
        cmocka_unit_test(test_reference_layout),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_bad_length_prefix),
        cmocka_unit_test(test_corruption_never_crashes),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
