/*
 * tests/test_postprocess_overlay.c — overlay PNGs: read back with libpng and
 * compared pixel by pixel with the rule of postprocess/overlay.h, at native
 * and preview size; hand-computed values for the colour formula and the
 * block shrink; atomic writing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "postprocess/overlay.h"

static char tmpdir[] = "/tmp/pnx_test_overlay_XXXXXX";

/* Reads an 8-bit RGB PNG with libpng's simplified API. */
static void read_png(const char *path, pnx_rgb_image *out)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_RGB;
    out->width = img.width;
    out->height = img.height;
    out->rgb = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(out->rgb);
    assert_true(png_image_finish_read(&img, NULL, out->rgb, 0, NULL));
}

/* The rule, written out independently of overlay.c. */
static void expected_pixel(const uint8_t *gray, const uint8_t *mask, uint32_t w, uint32_t h,
                           uint32_t x, uint32_t y, uint8_t rgb[3])
{
    uint8_t g = gray[y * w + x];
    if (!mask[y * w + x]) {
        rgb[0] = rgb[1] = rgb[2] = g;
        return;
    }
    int inner = x > 0 && x + 1 < w && y > 0 && y + 1 < h && mask[y * w + x - 1] &&
                mask[y * w + x + 1] && mask[(y - 1) * w + x] && mask[(y + 1) * w + x];
    if (!inner) {
        rgb[0] = 255;
        rgb[1] = rgb[2] = 0;
        return;
    }
    double a = PNX_OVERLAY_ALPHA / 256.0;
    rgb[0] = (uint8_t)((g * (1 - a) + 255 * a) + 0.5);
    rgb[1] = rgb[2] = (uint8_t)(g * (1 - a) + 0.5);
}

static void make_case(pnx_image *image, pnx_image *mask, uint32_t w, uint32_t h)
{
    assert_int_equal(pnx_image_alloc(image, w, h), 0);
    assert_int_equal(pnx_image_alloc(mask, w, h), 0);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            image->pixels[y * w + x] = (uint8_t)((x * 3 + y * 5) % 256);
            int64_t dx = (int64_t)x - w / 2, dy = (int64_t)y - h / 3;
            mask->pixels[y * w + x] = dx * dx + dy * dy < (int64_t)(w / 4) * (w / 4) ||
                                      (x == w - 1 && y == h - 1);
        }
}

static void test_overlay_native(void **state)
{
    (void)state;
    pnx_image image = {0}, mask = {0};
    make_case(&image, &mask, 61, 47);
    char *path = pnx_path_join(tmpdir, "native.png");
    assert_int_equal(pnx_overlay_write_png(path, &image, &mask, 0), 0);
    pnx_rgb_image back = {0};
    read_png(path, &back);
    assert_int_equal(back.width, 61);
    assert_int_equal(back.height, 47);
    int fills = 0, outlines = 0;
    for (uint32_t y = 0; y < 47; y++)
        for (uint32_t x = 0; x < 61; x++) {
            uint8_t want[3];
            expected_pixel(image.pixels, mask.pixels, 61, 47, x, y, want);
            assert_memory_equal(back.rgb + 3 * (y * 61 + x), want, 3);
            fills += want[0] != want[1] && want[0] != 255;
            outlines += want[0] == 255 && want[1] == 0;
        }
    assert_true(fills > 100);
    assert_true(outlines > 20);
    /* preview_size at or above the longest side keeps the native size. */
    pnx_rgb_image same = {0};
    assert_int_equal(pnx_overlay_render(&image, &mask, 61, &same), 0);
    assert_int_equal(same.width, 61);
    assert_memory_equal(same.rgb, back.rgb, 61 * 47 * 3);
    pnx_rgb_image_free(&same);
    pnx_rgb_image_free(&back);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    free(path);
}

static void test_overlay_colour_formula(void **state)
{
    (void)state;
    /* 3×3 all mask, gray 100: the centre is the only inner pixel.
     * Red (100*154 + 255*102 + 128) >> 8 = 162, green/blue (15400+128) >> 8 = 60. */
    pnx_image image = {0}, mask = {0};
    assert_int_equal(pnx_image_alloc(&image, 3, 3), 0);
    assert_int_equal(pnx_image_alloc(&mask, 3, 3), 0);
    memset(image.pixels, 100, 9);
    memset(mask.pixels, 1, 9);
    pnx_rgb_image out = {0};
    assert_int_equal(pnx_overlay_render(&image, &mask, 0, &out), 0);
    const uint8_t centre[3] = {162, 60, 60}, edge[3] = {255, 0, 0};
    assert_memory_equal(out.rgb + 3 * 4, centre, 3);
    assert_memory_equal(out.rgb + 0, edge, 3);
    assert_memory_equal(out.rgb + 3 * 8, edge, 3);
    pnx_rgb_image_free(&out);
    pnx_image_free(&image);
    pnx_image_free(&mask);
}

static void test_overlay_preview(void **state)
{
    (void)state;
    /* 8×4 shrunk to longest side 4: 4×2, blocks of 2×2. */
    pnx_image image = {0}, mask = {0};
    assert_int_equal(pnx_image_alloc(&image, 8, 4), 0);
    assert_int_equal(pnx_image_alloc(&mask, 8, 4), 0);
    for (int i = 0; i < 32; i++)
        image.pixels[i] = (uint8_t)(i * 8);
    mask.pixels[1 * 8 + 5] = 1; /* one pixel in block (2, 0) */
    pnx_rgb_image out = {0};
    assert_int_equal(pnx_overlay_render(&image, &mask, 4, &out), 0);
    assert_int_equal(out.width, 4);
    assert_int_equal(out.height, 2);
    /* Block (0,0): pixels 0,1,8,9 → gray (0+8+64+72)/4 = 36. */
    assert_int_equal(out.rgb[0], 36);
    assert_int_equal(out.rgb[1], 36);
    /* Block (3,1): pixels 22,23,30,31 → (176+184+240+248)/4 = 212. */
    assert_int_equal(out.rgb[3 * 7], 212);
    /* Block (2,0) holds the mask pixel: a lone mask pixel is outline. */
    assert_int_equal(out.rgb[3 * 2 + 0], 255);
    assert_int_equal(out.rgb[3 * 2 + 1], 0);
    /* Aspect kept with rounding: 1000×333 at 100 → 100×33. */
    pnx_rgb_image_free(&out);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    assert_int_equal(pnx_image_alloc(&image, 1000, 333), 0);
    assert_int_equal(pnx_image_alloc(&mask, 1000, 333), 0);
    assert_int_equal(pnx_overlay_render(&image, &mask, 100, &out), 0);
    assert_int_equal(out.width, 100);
    assert_int_equal(out.height, 33);
    pnx_rgb_image_free(&out);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    /* Portrait, and a side that would round to 0 stays 1. */
    assert_int_equal(pnx_image_alloc(&image, 2, 1000), 0);
    assert_int_equal(pnx_image_alloc(&mask, 2, 1000), 0);
    assert_int_equal(pnx_overlay_render(&image, &mask, 100, &out), 0);
    assert_int_equal(out.width, 1);
    assert_int_equal(out.height, 100);
    pnx_rgb_image_free(&out);
    pnx_image_free(&image);
    pnx_image_free(&mask);
}

static void test_overlay_preview_png_matches_rule(void **state)
{
    (void)state;
    /* The PNG at preview size equals the rule applied to the block-shrunk
     * image and mask, computed here by hand-rolled loops. */
    const uint32_t w = 300, h = 200, pw = 128, ph = 85;
    pnx_image image = {0}, mask = {0};
    make_case(&image, &mask, w, h);
    char *path = pnx_path_join(tmpdir, "preview.png");
    assert_int_equal(pnx_overlay_write_png(path, &image, &mask, 128), 0);
    pnx_rgb_image back = {0};
    read_png(path, &back);
    assert_int_equal(back.width, pw);
    assert_int_equal(back.height, ph);
    uint8_t *g = malloc(pw * ph), *m = malloc(pw * ph);
    assert_non_null(g);
    assert_non_null(m);
    for (uint32_t y = 0; y < ph; y++)
        for (uint32_t x = 0; x < pw; x++) {
            unsigned sum = 0, count = 0, any = 0;
            for (uint32_t yy = y * h / ph; yy < (y + 1) * h / ph; yy++)
                for (uint32_t xx = x * w / pw; xx < (x + 1) * w / pw; xx++) {
                    sum += image.pixels[yy * w + xx];
                    any |= mask.pixels[yy * w + xx];
                    count++;
                }
            g[y * pw + x] = (uint8_t)((sum + count / 2) / count);
            m[y * pw + x] = (uint8_t)any;
        }
    for (uint32_t y = 0; y < ph; y++)
        for (uint32_t x = 0; x < pw; x++) {
            uint8_t want[3];
            expected_pixel(g, m, pw, ph, x, y, want);
            assert_memory_equal(back.rgb + 3 * (y * pw + x), want, 3);
        }
    free(g);
    free(m);
    pnx_rgb_image_free(&back);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    free(path);
}

static void test_overlay_errors_and_atomic(void **state)
{
    (void)state;
    pnx_image image = {0}, mask = {0};
    make_case(&image, &mask, 16, 16);
    pnx_image other = {0};
    assert_int_equal(pnx_image_alloc(&other, 16, 15), 0);
    pnx_rgb_image out = {0};
    assert_int_equal(pnx_overlay_render(&image, &other, 0, &out), PNX_EINVAL);
    mask.pixels[0] = 2;
    assert_int_equal(pnx_overlay_render(&image, &mask, 0, &out), PNX_EINVAL);
    mask.pixels[0] = 0;
    char *path = pnx_path_join(tmpdir, "atomic.png");
    pnx_fileio_fail_before_rename = 1;
    assert_true(pnx_overlay_write_png(path, &image, &mask, 0) < 0);
    pnx_fileio_fail_before_rename = 0;
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    char *missing = pnx_path_join(tmpdir, "no-such-folder/x.png");
    assert_true(pnx_overlay_write_png(missing, &image, &mask, 0) < 0);
    pnx_image_free(&other);
    pnx_image_free(&image);
    pnx_image_free(&mask);
    free(path);
    free(missing);
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
        cmocka_unit_test(test_overlay_native),
        cmocka_unit_test(test_overlay_colour_formula),
        cmocka_unit_test(test_overlay_preview),
        cmocka_unit_test(test_overlay_preview_png_matches_rule),
        cmocka_unit_test(test_overlay_errors_and_atomic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
