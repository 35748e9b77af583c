/*
 * postprocess/overlay.c — overlay pictures and RGB PNG writing; see overlay.h
 * for the pixel rule.
 */
#include "postprocess/overlay.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

void pnx_rgb_image_free(pnx_rgb_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* Output size for a preview_size; the native size when no shrinking is asked. */
static void preview_dims(uint32_t w, uint32_t h, uint32_t preview, uint32_t *out_w,
                         uint32_t *out_h)
{
    uint32_t longest = w > h ? w : h;
    if (preview == 0 || preview >= longest) {
        *out_w = w;
        *out_h = h;
        return;
    }
    uint64_t shorter = w > h ? h : w;
    uint32_t scaled = (uint32_t)((shorter * preview + longest / 2) / longest);
    if (scaled == 0)
        scaled = 1;
    *out_w = w >= h ? preview : scaled;
    *out_h = w >= h ? scaled : preview;
}

/* Block averages of gray and "any" of mask into small_gray/small_mask
 * (sw × sh, each side at most the native one). */
static void shrink(const pnx_image *image, const pnx_image *mask, uint32_t sw, uint32_t sh,
                   uint8_t *small_gray, uint8_t *small_mask)
{
    const uint32_t w = image->width, h = image->height;
    for (uint32_t y = 0; y < sh; y++) {
        uint32_t y0 = (uint32_t)((uint64_t)y * h / sh), y1 = (uint32_t)((uint64_t)(y + 1) * h / sh);
        for (uint32_t x = 0; x < sw; x++) {
            uint32_t x0 = (uint32_t)((uint64_t)x * w / sw);
            uint32_t x1 = (uint32_t)((uint64_t)(x + 1) * w / sw);
            uint64_t sum = 0, count = (uint64_t)(x1 - x0) * (y1 - y0);
            uint8_t any = 0;
            for (uint32_t yy = y0; yy < y1; yy++) {
                const uint8_t *g = image->pixels + (size_t)yy * w;
                const uint8_t *m = mask->pixels + (size_t)yy * w;
                for (uint32_t xx = x0; xx < x1; xx++) {
                    sum += g[xx];
                    any |= m[xx];
                }
            }
            small_gray[(size_t)y * sw + x] = (uint8_t)((sum + count / 2) / count);
            small_mask[(size_t)y * sw + x] = any;
        }
    }
}

static int is_mask(const uint8_t *m, uint32_t w, uint32_t h, int64_t x, int64_t y)
{
    return x >= 0 && y >= 0 && x < w && y < h && m[(size_t)y * w + (size_t)x];
}

/* Applies the colour rule at one size. */
static void paint(const uint8_t *gray, const uint8_t *mask, uint32_t w, uint32_t h, uint8_t *rgb)
{
    const unsigned a = PNX_OVERLAY_ALPHA;
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            unsigned g = gray[i];
            uint8_t *out = rgb + 3 * i;
            if (!mask[i]) {
                out[0] = out[1] = out[2] = (uint8_t)g;
            } else if (!is_mask(mask, w, h, (int64_t)x - 1, y) ||
                       !is_mask(mask, w, h, (int64_t)x + 1, y) ||
                       !is_mask(mask, w, h, x, (int64_t)y - 1) ||
                       !is_mask(mask, w, h, x, (int64_t)y + 1)) {
                out[0] = 255;
                out[1] = out[2] = 0;
            } else {
                out[0] = (uint8_t)((g * (256 - a) + 255 * a + 128) >> 8);
                out[1] = out[2] = (uint8_t)((g * (256 - a) + 128) >> 8);
            }
        }
    }
}

int pnx_overlay_render(const pnx_image *image, const pnx_image *mask, uint32_t preview_size,
                       pnx_rgb_image *out)
{
    if (!image || !image->pixels || !mask || !mask->pixels || !out)
        return pnx_fail(PNX_EINVAL, "overlay: missing image, mask or output");
    if (image->width != mask->width || image->height != mask->height)
        return pnx_fail(PNX_EINVAL, "overlay: image is %ux%u but mask is %ux%u", image->width,
                        image->height, mask->width, mask->height);
    const size_t n = pnx_image_size(mask);
    for (size_t i = 0; i < n; i++)
        if (mask->pixels[i] > 1)
            return pnx_fail(PNX_EINVAL, "overlay: mask value %u at pixel %zu is not 0/1",
                            mask->pixels[i], i);
    uint32_t w, h;
    preview_dims(image->width, image->height, preview_size, &w, &h);
    const size_t out_n = (size_t)w * h;
    uint8_t *rgb = malloc(out_n * 3);
    if (!rgb)
        return pnx_fail(PNX_ENOMEM, "overlay: out of memory for %ux%u", w, h);
    if (w == image->width && h == image->height) {
        paint(image->pixels, mask->pixels, w, h, rgb);
    } else {
        uint8_t *small = malloc(out_n * 2);
        if (!small) {
            free(rgb);
            return pnx_fail(PNX_ENOMEM, "overlay: out of memory for %ux%u", w, h);
        }
        shrink(image, mask, w, h, small, small + out_n);
        paint(small, small + out_n, w, h, rgb);
        free(small);
    }
    out->width = w;
    out->height = h;
    out->rgb = rgb;
    return 0;
}

enum { OVERLAY_PNG_ZLIB_LEVEL = 3 };

/* libpng reports errors by longjmp; the message is kept for pnx_fail. */
static void png_error_to_pnx(png_structp png, png_const_charp message)
{
    pnx_fail(PNX_EIO, "libpng: %s", message);
    png_longjmp(png, 1);
}

static void png_warning_ignored(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static int write_png_stream(FILE *fp, const pnx_rgb_image *img)
{
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_to_pnx, png_warning_ignored);
    if (!png)
        return pnx_fail(PNX_ENOMEM, "libpng: cannot create a writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return pnx_fail(PNX_ENOMEM, "libpng: cannot create an info struct");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return PNX_EIO; /* message set by png_error_to_pnx */
    }
    png_init_io(png, fp);
    /* Measured on a real 1024² SIIM overlay: zlib level 3 with the Up filter
     * writes in a third of libpng's default time (61 vs 187 ms) for a file
     * 5 % larger. */
    png_set_compression_level(png, OVERLAY_PNG_ZLIB_LEVEL);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_IHDR(png, info, img->width, img->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < img->height; y++)
        png_write_row(png, img->rgb + (size_t)y * img->width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int pnx_png_write_rgb(const char *path, const pnx_rgb_image *img)
{
    if (!path || !img || !img->rgb || img->width == 0 || img->height == 0 ||
        img->width > PNX_IMAGE_MAX_SIDE || img->height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "PNG: no path or an empty picture");
    pnx_atomic_file af;
    memset(&af, 0, sizeof af);
    int rc = pnx_atomic_open(&af, path);
    if (rc)
        return rc;
    if ((rc = write_png_stream(af.fp, img))) {
        pnx_atomic_abort(&af);
        return pnx_fail_prefix(rc, "PNG %s", path);
    }
    return pnx_atomic_commit(&af);
}

int pnx_overlay_write_png(const char *path, const pnx_image *image, const pnx_image *mask,
                          uint32_t preview_size)
{
    pnx_rgb_image rgb = {0};
    int rc = pnx_overlay_render(image, mask, preview_size, &rgb);
    if (rc)
        return rc;
    rc = pnx_png_write_rgb(path, &rgb);
    pnx_rgb_image_free(&rgb);
    return rc;
}
