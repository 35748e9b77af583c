/* tests/test_ingest_gen.c — see test_ingest_gen.h. */
#define _XOPEN_SOURCE 700
#include "test_ingest_gen.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put16(buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

static void put32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static int long_vr(const char *vr)
{
    return !strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") ||
           !strcmp(vr, "UT");
}

static void elem_header(buf *b, uint16_t g, uint16_t e, const char *vr, uint32_t len)
{
    put16(b, g);
    put16(b, e);
    put(b, vr, 2);
    if (long_vr(vr)) {
        put16(b, 0);
        put32(b, len);
    } else {
        put16(b, (uint16_t)len);
    }
}

static void elem_str(buf *b, uint16_t g, uint16_t e, const char *vr, const char *s)
{
    size_t n = strlen(s);
    size_t padded = n + (n & 1);
    elem_header(b, g, e, vr, (uint32_t)padded);
    put(b, s, n);
    if (n & 1)
        put(b, strcmp(vr, "UI") == 0 ? "\0" : " ", 1);
}

static void elem_us(buf *b, uint16_t g, uint16_t e, uint16_t v)
{
    elem_header(b, g, e, "US", 2);
    put16(b, v);
}

static void item_tag(buf *b, uint16_t e, uint32_t len)
{
    put16(b, 0xFFFE);
    put16(b, e);
    put32(b, len);
}

size_t gen_build(const gen_image *img, uint8_t **out)
{
    buf b = {0};
    const char *ts = img->ts_uid ? img->ts_uid : GEN_TS_EXPLICIT_LE;
    static const char sop_class[] = "1.2.840.10008.5.1.4.1.1.7";

    uint8_t preamble[128] = {0};
    put(&b, preamble, sizeof preamble);
    put(&b, "DICM", 4);
    buf meta = {0};
    elem_header(&meta, 0x0002, 0x0001, "OB", 2);
    put(&meta, "\0\1", 2);
    elem_str(&meta, 0x0002, 0x0002, "UI", sop_class);
    elem_str(&meta, 0x0002, 0x0003, "UI", img->sop_uid);
    elem_str(&meta, 0x0002, 0x0010, "UI", ts);
    elem_str(&meta, 0x0002, 0x0012, "UI", "1.2.826.0.1.3680043.9.7307.1");
    elem_header(&b, 0x0002, 0x0000, "UL", 4);
    put32(&b, (uint32_t)meta.len);
    put(&b, meta.p, meta.len);
    free(meta.p);

    elem_str(&b, 0x0008, 0x0016, "UI", sop_class);
    elem_str(&b, 0x0008, 0x0018, "UI", img->sop_uid);
    elem_str(&b, 0x0008, 0x0060, "CS", "CR");
    if (img->nested_sequences > 0) {
        /* (0008,1115) Referenced Series Sequence nested in itself, every
         * level of undefined length. */
        for (int i = 0; i < img->nested_sequences; i++) {
            elem_header(&b, 0x0008, 0x1115, "SQ", 0xFFFFFFFFu);
            item_tag(&b, 0xE000, 0xFFFFFFFFu);
        }
        for (int i = 0; i < img->nested_sequences; i++) {
            item_tag(&b, 0xE00D, 0);
            item_tag(&b, 0xE0DD, 0);
        }
    }
    elem_str(&b, 0x0010, 0x0020, "LO", "PNX-TEST");
    elem_str(&b, 0x0018, 0x5101, "CS", "PA");
    elem_str(&b, 0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.9.7307.2.1");
    elem_str(&b, 0x0020, 0x000E, "UI", "1.2.826.0.1.3680043.9.7307.3.1");
    elem_us(&b, 0x0028, 0x0002, (uint16_t)(img->samples_per_pixel ? img->samples_per_pixel : 1));
    elem_str(&b, 0x0028, 0x0004, "CS", img->photometric ? img->photometric : "MONOCHROME2");
    if (img->frames > 0) {
        char f[16];
        snprintf(f, sizeof f, "%d", img->frames);
        elem_str(&b, 0x0028, 0x0008, "IS", f);
    }
    elem_us(&b, 0x0028, 0x0010, img->rows);
    elem_us(&b, 0x0028, 0x0011, img->columns);
    elem_str(&b, 0x0028, 0x0030, "DS", "0.168\\0.168");
    elem_us(&b, 0x0028, 0x0100, (uint16_t)img->bits_allocated);
    elem_us(&b, 0x0028, 0x0101, (uint16_t)img->bits_stored);
    elem_us(&b, 0x0028, 0x0102, (uint16_t)(img->bits_stored - 1));
    elem_us(&b, 0x0028, 0x0103, (uint16_t)img->pixel_representation);
    if (img->window_center)
        elem_str(&b, 0x0028, 0x1050, "DS", img->window_center);
    if (img->window_width)
        elem_str(&b, 0x0028, 0x1051, "DS", img->window_width);
    if (img->rescale_intercept)
        elem_str(&b, 0x0028, 0x1052, "DS", img->rescale_intercept);
    if (img->rescale_slope)
        elem_str(&b, 0x0028, 0x1053, "DS", img->rescale_slope);

    const char *vr = img->bits_allocated > 8 ? "OW" : "OB";
    uint32_t n = img->pixel_bytes;
    if (img->encapsulated) {
        elem_header(&b, 0x7FE0, 0x0010, "OB", 0xFFFFFFFFu);
        item_tag(&b, 0xE000, 0); /* empty basic offset table */
        item_tag(&b, 0xE000, n + (n & 1));
        put(&b, img->pixels, n);
        if (n & 1)
            put(&b, "\0", 1);
        item_tag(&b, 0xE0DD, 0);
    } else {
        uint32_t declared = img->declared_pixel_length > 0 ? (uint32_t)img->declared_pixel_length
                                                            : n + (n & 1);
        elem_header(&b, 0x7FE0, 0x0010, vr, declared);
        put(&b, img->pixels, n);
        if ((n & 1) && img->declared_pixel_length <= 0)
            put(&b, "\0", 1);
    }
    if (b.failed) {
        free(b.p);
        return 0;
    }
    *out = b.p;
    return b.len;
}

int gen_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = len && fwrite(data, 1, len, f) != len;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

int gen_write(const char *path, const gen_image *img)
{
    uint8_t *data = NULL;
    size_t len = gen_build(img, &data);
    if (len == 0)
        return -1;
    int rc = gen_write_bytes(path, data, len);
    free(data);
    return rc;
}

void gen_picture8(uint8_t *px, int rows, int cols)
{
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) {
            int v = 20 + (x * 180) / (cols > 1 ? cols - 1 : 1) + (y * 40) / (rows > 1 ? rows - 1 : 1);
            if (x > cols / 4 && x < cols / 2 && y > rows / 4 && y < rows / 2)
                v = 240;
            px[y * cols + x] = (uint8_t)(v > 255 ? 255 : v);
        }
}

void gen_picture16(uint16_t *px, int rows, int cols, int bits_stored)
{
    uint32_t max = (1u << bits_stored) - 1u;
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) {
            uint32_t v = (uint32_t)((double)max * (0.1 + 0.7 * x / (cols > 1 ? cols - 1 : 1) +
                                                   0.1 * y / (rows > 1 ? rows - 1 : 1)));
            if (x > cols / 4 && x < cols / 2 && y > rows / 4 && y < rows / 2)
                v = max;
            px[y * cols + x] = (uint16_t)(v > max ? max : v);
        }
}

char *gen_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/pnx_ingest_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void gen_rmtree(const char *path)
{
    if (path)
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *gen_path(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
    return out;
}

int gen_have_program(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}
