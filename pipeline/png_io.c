/*
 * pipeline/png_io.c — greyscale PNG writing (libpng, atomic) and reading
 * (libpng's simplified API, which converts any colour type to grey).
 */
#include "pipeline/png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

/* zlib level 3 with the Up filter: masks compress as well as at the default
 * level, and a 1024² radiograph takes a fraction of the default's ~100 ms;
 * these pictures are for eyeballing and checks, not archives. */
#define PNG_ZLIB_LEVEL 3

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

typedef struct mem_sink {
    uint8_t *data;
    size_t len, cap;
    int failed;
} mem_sink;

static void sink_write(png_structp png, png_bytep bytes, size_t n)
{
    mem_sink *m = png_get_io_ptr(png);
    if (m->cap - m->len < n) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap - m->len < n)
            cap *= 2;
        uint8_t *p = realloc(m->data, cap);
        if (!p) {
            m->failed = 1;
            png_error(png, "out of memory");
        }
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, bytes, n);
    m->len += n;
}

static void sink_flush(png_structp png) { (void)png; }

static int encode_stream(mem_sink *sink, const pnx_image *img, int as_mask, uint8_t *row)
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
        return sink->failed ? PNX_ENOMEM : PNX_EIO; /* message set by png_error_to_pnx */
    }
    png_set_write_fn(png, sink, sink_write, sink_flush);
    png_set_compression_level(png, PNG_ZLIB_LEVEL);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_set_IHDR(png, info, img->width, img->height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < img->height; y++) {
        const uint8_t *src = img->pixels + (size_t)y * img->width;
        if (as_mask) {
            for (uint32_t x = 0; x < img->width; x++)
                row[x] = (uint8_t)(-(src[x] != 0)); /* 0 or 255 */
            png_write_row(png, row);
        } else {
            png_write_row(png, src);
        }
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int pnx_png_encode_gray(const pnx_image *img, int as_mask, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!img || !img->pixels || img->width == 0 || img->height == 0 ||
        img->width > PNX_IMAGE_MAX_SIDE || img->height > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "PNG: empty picture");
    uint8_t *row = malloc(img->width);
    if (!row)
        return pnx_fail(PNX_ENOMEM, "PNG: out of memory");
    mem_sink sink = {0};
    int rc = encode_stream(&sink, img, as_mask, row);
    free(row);
    if (rc) {
        free(sink.data);
        return rc;
    }
    *data = sink.data;
    *len = sink.len;
    return 0;
}

int pnx_png_write_gray(const char *path, const pnx_image *img, int as_mask)
{
    if (!path)
        return pnx_fail(PNX_EINVAL, "PNG: no path");
    uint8_t *data;
    size_t len;
    int rc = pnx_png_encode_gray(img, as_mask, &data, &len);
    if (!rc) {
        rc = pnx_write_file_atomic(path, data, len);
        free(data);
    }
    return rc ? pnx_fail_prefix(rc, "PNG %s", path) : 0;
}

int pnx_png_read_gray(const char *path, pnx_image *img)
{
    memset(img, 0, sizeof *img);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        return pnx_fail(e == ENOENT ? PNX_ENOTFOUND : PNX_EIO, "%s: %s", path, strerror(e));
    }
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    int rc = 0;
    if (!png_image_begin_read_from_stdio(&pi, fp)) {
        rc = pnx_fail(PNX_EFORMAT, "%s: not a readable PNG (%s)", path, pi.message);
    } else if (pi.width == 0 || pi.height == 0 || pi.width > PNX_IMAGE_MAX_SIDE ||
               pi.height > PNX_IMAGE_MAX_SIDE ||
               (uint64_t)pi.width * pi.height > PNX_PNG_MAX_PIXELS) {
        rc = pnx_fail(PNX_ERANGE, "%s: %ux%u PNG is larger than pneumoseg reads", path,
                      (unsigned)pi.width, (unsigned)pi.height);
    } else if ((rc = pnx_image_alloc(img, pi.width, pi.height)) == 0) {
        pi.format = PNG_FORMAT_GRAY;
        if (!png_image_finish_read(&pi, NULL, img->pixels, (png_int_32)pi.width, NULL)) {
            rc = pnx_fail(PNX_EFORMAT, "%s: corrupt PNG (%s)", path, pi.message);
            pnx_image_free(img);
        }
    }
    png_image_free(&pi);
    fclose(fp);
    return rc;
}
