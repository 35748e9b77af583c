/*
 * rle/codec.c — EncodedPixels text ↔ row-major 0/1 mask (see rle/rle.h).
 *
 * Decoding parses and checks the whole string before it writes a single
 * pixel, so that a bad string never leaves half a mask behind. Short
 * strings (nearly all real ones) keep their runs in a stack buffer between
 * the two steps; longer ones are parsed a second time instead of allocating.
 */
#include "rle/rle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* Any single value above this is rejected before it can overflow a sum:
 * the largest image has 65535² < 2^32 pixels, and 2^40 + 2^40 + 2^32 still
 * fits comfortably in 64 bits. */
#define VALUE_LIMIT (UINT64_C(1) << 40)

/* Runs kept between checking and writing without a second parse (16 KiB). */
#define STACK_RUNS 1024

/* The longest decimal an accepted value can print as (2^40 has 13 digits). */
#define MAX_DIGITS 20

int pnx_rle_fmt_parse(const char *name, pnx_rle_fmt *fmt)
{
    if (name && strcmp(name, "relative") == 0) {
        *fmt = PNX_RLE_FMT_RELATIVE;
        return 0;
    }
    if (name && strcmp(name, "absolute") == 0) {
        *fmt = PNX_RLE_FMT_ABSOLUTE;
        return 0;
    }
    return pnx_fail(PNX_EINVAL, "RLE format '%s' is neither 'relative' nor 'absolute'",
                    name ? name : "(null)");
}

const char *pnx_rle_fmt_name(pnx_rle_fmt fmt)
{
    switch (fmt) {
    case PNX_RLE_FMT_RELATIVE: return "relative";
    case PNX_RLE_FMT_ABSOLUTE: return "absolute";
    }
    return "?";
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static void trim(const char **text, size_t *len)
{
    const char *s = *text;
    size_t n = *len;
    while (n > 0 && is_blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    *text = s;
    *len = n;
}

int pnx_rle_is_empty(const char *text, size_t len)
{
    trim(&text, &len);
    return len == 0 || (len == 2 && text[0] == '-' && text[1] == '1');
}

/* A cursor over the values of one string. */
typedef struct value_cursor {
    const char *begin;
    const char *p;
    const char *end;
    uint64_t index; /* 1-based number of the value last read */
} value_cursor;

static uint64_t count_values(const char *s, size_t n);

/* Number of values in the whole string, for error messages only (counting
 * them on the success path would cost a third pass). */
static unsigned long long total_of(const value_cursor *c)
{
    return (unsigned long long)count_values(c->begin, (size_t)(c->end - c->begin));
}

/* Reads the next value: 1 with *v set, 0 at the end, negative on a bad token. */
static int next_value(value_cursor *c, uint64_t *v)
{
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
    if (c->p == c->end)
        return 0;
    c->index++;
    const char *tok = c->p;
    uint64_t x = 0;
    while (c->p < c->end && (unsigned)(*c->p - '0') < 10u) {
        x = x * 10 + (uint64_t)(*c->p - '0');
        if (x > VALUE_LIMIT) {
            while (c->p < c->end && (unsigned)(*c->p - '0') < 10u)
                c->p++;
            return pnx_fail(PNX_ERANGE, "value %llu of %llu: '%.*s' is too large",
                            (unsigned long long)c->index, total_of(c),
                            (int)(c->p - tok > 40 ? 40 : c->p - tok), tok);
        }
        c->p++;
    }
    if (c->p == tok || (c->p < c->end && !is_blank(*c->p))) {
        const char *bad = tok;
        while (c->p < c->end && !is_blank(*c->p))
            c->p++;
        int n = (int)(c->p - bad > 40 ? 40 : c->p - bad);
        if (bad[0] == '-' && n > 1 && (unsigned)(bad[1] - '0') < 10u)
            return pnx_fail(PNX_EFORMAT, "value %llu of %llu: '%.*s' is negative",
                            (unsigned long long)c->index, total_of(c), n, bad);
        return pnx_fail(PNX_EFORMAT, "value %llu of %llu: '%.*s' is not a non-negative integer",
                        (unsigned long long)c->index, total_of(c), n, bad);
    }
    *v = x;
    return 1;
}

static uint64_t count_values(const char *s, size_t n)
{
    uint64_t count = 0;
    bool in_token = false;
    for (size_t i = 0; i < n; i++) {
        bool blank = is_blank(s[i]);
        if (!blank && !in_token)
            count++;
        in_token = !blank;
    }
    return count;
}

/* Reads the next run as an absolute [start, start + length) in column-major
 * pixel numbers, checking it. *end_prev is the end of the previous run (0
 * before the first). Returns 1, 0 at the end, or a negative code. */
static int next_run(value_cursor *c, pnx_rle_fmt fmt, uint64_t n_pixels,
                    uint64_t *end_prev, uint64_t *start, uint64_t *length)
{
    uint64_t s, l;
    int rc = next_value(c, &s);
    if (rc <= 0)
        return rc;
    rc = next_value(c, &l);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return pnx_fail(PNX_EFORMAT, "odd number of values (%llu): the last start has no length",
                        total_of(c));
    if (l == 0)
        return pnx_fail(PNX_EFORMAT, "value %llu of %llu: a run of length 0",
                        (unsigned long long)c->index, total_of(c));
    uint64_t abs_start;
    if (fmt == PNX_RLE_FMT_RELATIVE) {
        abs_start = *end_prev + s; /* both < 2^41: no overflow */
    } else {
        if (s < *end_prev)
            return pnx_fail(PNX_EFORMAT,
                            "value %llu of %llu: absolute start %llu is before the end %llu of the previous run",
                            (unsigned long long)(c->index - 1), total_of(c),
                            (unsigned long long)s, (unsigned long long)*end_prev);
        abs_start = s;
    }
    if (abs_start >= n_pixels || l > n_pixels - abs_start)
        return pnx_fail(PNX_ERANGE,
                        "values %llu-%llu of %llu: run of %llu pixels from pixel %llu passes the end of the %llu-pixel image",
                        (unsigned long long)(c->index - 1), (unsigned long long)c->index,
                        total_of(c), (unsigned long long)l,
                        (unsigned long long)abs_start, (unsigned long long)n_pixels);
    *start = abs_start;
    *length = l;
    *end_prev = abs_start + l;
    return 1;
}

/* The common case, fast: digits separated by blanks, every value short
 * enough, every run inside the image and in order. Returns 1 with the runs
 * (the first STACK_RUNS of them stored), or 0 at the first thing it does
 * not expect, leaving the careful parser (next_run) to judge the string. */
#define FAST_MAX_DIGITS 13 /* VALUE_LIMIT = 2^40 has 13 digits */

static inline const char *fast_uint(const char *p, const char *end, uint64_t *v)
{
    const char *first = p;
    uint64_t x = 0;
    while (p < end) {
        unsigned d = (unsigned)(unsigned char)*p - '0';
        if (d > 9)
            break;
        x = x * 10 + d;
        p++;
    }
    if (p == first || p - first > FAST_MAX_DIGITS || x > VALUE_LIMIT ||
        (p < end && !is_blank(*p)))
        return NULL;
    *v = x;
    return p;
}

static int scan_runs_fast(const char *p, size_t len, pnx_rle_fmt fmt, uint64_t n_pixels,
                          uint64_t *starts, uint64_t *lengths, size_t *kept, uint64_t *covered)
{
    const char *end = p + len;
    uint64_t end_prev = 0, sum = 0;
    size_t n = 0;
    for (;;) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end)
            break;
        uint64_t s, l;
        if (!(p = fast_uint(p, end, &s)))
            return 0;
        while (p < end && is_blank(*p))
            p++;
        if (p == end || !(p = fast_uint(p, end, &l)) || l == 0)
            return 0;
        if (fmt == PNX_RLE_FMT_RELATIVE)
            s += end_prev;
        else if (s < end_prev)
            return 0;
        if (s >= n_pixels || l > n_pixels - s)
            return 0;
        if (n < STACK_RUNS) {
            starts[n] = s;
            lengths[n] = l;
        }
        n++;
        sum += l;
        end_prev = s + l;
    }
    *kept = n;
    *covered = sum;
    return 1;
}

/* Writing runs into a row-major mask. Taken one pixel at a time, a column
 * segment is a store every `width` bytes; with power-of-two widths those
 * addresses all fall into a few cache sets and every store misses (measured:
 * 6 ns a pixel on the real file). So the painter works on blocks of 64
 * columns, one bit per column: a segment [y0, y1) of column c only flips
 * bit c of edge[y0] and edge[y1] (segments of one string never overlap, so
 * the running XOR of edge[0..y] is exactly the set of columns covering row
 * y). When the runs move on to the next block (they arrive in column-major
 * order, so each block is visited once), every row of the block is written
 * with 8 table look-ups. */
#define BLOCK_COLUMNS 64

/* spread[b]: the 8 bits of b as 8 bytes of 0/1, byte k = bit k, in the
 * memory order of a little-endian uint64_t. */
#define SPREAD(b)                                                                         \
    ((uint64_t)((b) & 1) | (uint64_t)((b) >> 1 & 1) << 8 | (uint64_t)((b) >> 2 & 1) << 16 | \
     (uint64_t)((b) >> 3 & 1) << 24 | (uint64_t)((b) >> 4 & 1) << 32 |                    \
     (uint64_t)((b) >> 5 & 1) << 40 | (uint64_t)((b) >> 6 & 1) << 48 |                    \
     (uint64_t)((b) >> 7 & 1) << 56)
#define SPREAD4(b) SPREAD(b), SPREAD((b) + 1), SPREAD((b) + 2), SPREAD((b) + 3)
#define SPREAD16(b) SPREAD4(b), SPREAD4((b) + 4), SPREAD4((b) + 8), SPREAD4((b) + 12)
#define SPREAD64(b) SPREAD16(b), SPREAD16((b) + 16), SPREAD16((b) + 32), SPREAD16((b) + 48)
static const uint64_t spread[256] = {SPREAD64(0), SPREAD64(64), SPREAD64(128), SPREAD64(192)};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SPREAD_IN_MEMORY_ORDER 1
#else
#define SPREAD_IN_MEMORY_ORDER 0
#endif

typedef struct painter {
    pnx_image *mask;
    uint8_t value;       /* 1 to set (decode), 0 to clear (erase) */
    uint64_t *edge;      /* height + 1 words; bit c: column block * 64 + c starts or ends here */
    uint32_t block;      /* current block, or UINT32_MAX before the first */
    uint32_t ymin, ymax; /* edge rows touched in the current block (ymin > ymax: none) */
} painter;

/* Writes the 8 pixels of group bits b (bit k = pixel k) at dst. */
static void write_group(uint8_t *dst, unsigned b, uint8_t value)
{
    if (SPREAD_IN_MEMORY_ORDER) {
        uint64_t d, e = spread[b];
        memcpy(&d, dst, sizeof d);
        d = value ? d | e : d & ~(e * 0xFFu);
        memcpy(dst, &d, sizeof d);
        return;
    }
    for (unsigned k = 0; k < 8; k++)
        if (b >> k & 1u)
            dst[k] = value;
}

static void painter_flush(painter *p)
{
    if (p->block == UINT32_MAX || p->ymin > p->ymax)
        return;
    const uint32_t w = p->mask->width;
    const uint32_t x0 = p->block * BLOCK_COLUMNS;
    const uint32_t ncols = w - x0 < BLOCK_COLUMNS ? w - x0 : BLOCK_COLUMNS;
    const uint32_t full_groups = ncols / 8;
    uint64_t *edge = p->edge;
    uint8_t *dst = p->mask->pixels + (size_t)p->ymin * w + x0;
    uint64_t covering = 0;
    /* The last edge (ymax) only ends segments: rows ymin .. ymax - 1 are written. */
    for (uint32_t y = p->ymin; y < p->ymax; y++, dst += w) {
        covering ^= edge[y];
        edge[y] = 0;
        if (!covering)
            continue;
        const uint32_t lo = (uint32_t)__builtin_ctzll(covering);
        const uint32_t hi = 64u - (uint32_t)__builtin_clzll(covering); /* one past the last */
        /* Usually one contiguous span of columns (a cross-section of a blob). */
        if ((covering >> lo) == (hi - lo == 64 ? UINT64_MAX : (UINT64_C(1) << (hi - lo)) - 1)) {
            memset(dst + lo, p->value, hi - lo);
            continue;
        }
        /* Only the groups between the first and the last covered column. */
        uint32_t g_first = lo / 8;
        uint32_t g_last = (hi - 1) / 8;
        if (g_last >= full_groups)
            g_last = full_groups ? full_groups - 1 : 0;
        for (uint32_t g = g_first; g <= g_last && g < full_groups; g++)
            write_group(dst + 8 * g, (unsigned)(covering >> (8 * g)) & 0xFFu, p->value);
        for (uint32_t c = full_groups * 8; c < ncols; c++)
            if (covering >> c & 1u)
                dst[c] = p->value;
    }
    edge[p->ymax] = 0;
    p->ymin = UINT32_MAX;
    p->ymax = 0;
}

/* Marks column-major run [start, start + length): one column segment at a time. */
static void painter_run(painter *p, uint64_t start, uint64_t length)
{
    const uint32_t h = p->mask->height;
    uint32_t x = (uint32_t)(start / h);
    uint32_t y = (uint32_t)(start % h);
    while (length > 0) {
        uint32_t seg = h - y;
        if (seg > length)
            seg = (uint32_t)length;
        uint32_t block = x / BLOCK_COLUMNS;
        if (block != p->block) {
            painter_flush(p);
            p->block = block;
        }
        const uint64_t bit = UINT64_C(1) << (x % BLOCK_COLUMNS);
        p->edge[y] ^= bit;
        p->edge[y + seg] ^= bit;
        if (y < p->ymin)
            p->ymin = y;
        if (y + seg > p->ymax)
            p->ymax = y + seg;
        length -= seg;
        x++;
        y = 0;
    }
}

/* The same without any memory of its own, for when the bit rows cannot be
 * allocated: correct, only slower. */
static void paint_run_direct(pnx_image *mask, uint64_t start, uint64_t length, uint8_t value)
{
    const uint32_t w = mask->width, h = mask->height;
    uint32_t x = (uint32_t)(start / h);
    uint32_t y = (uint32_t)(start % h);
    while (length > 0) {
        uint32_t seg = h - y;
        if (seg > length)
            seg = (uint32_t)length;
        uint8_t *px = mask->pixels + (size_t)y * w + x;
        for (uint32_t i = 0; i < seg; i++, px += w)
            *px = value;
        length -= seg;
        x++;
        y = 0;
    }
}

/* Checks the whole string, then sets (value 1) or clears (value 0) its
 * pixels. */
static int decode_with_value(const char *text, size_t len, pnx_rle_fmt fmt, pnx_image *mask,
                             uint64_t *n_pixels, uint8_t value)
{
    if (n_pixels)
        *n_pixels = 0;
    if (!mask || !mask->pixels || mask->width == 0 || mask->height == 0)
        return pnx_fail(PNX_EINVAL, "RLE decode: no mask to decode into");
    if (fmt != PNX_RLE_FMT_RELATIVE && fmt != PNX_RLE_FMT_ABSOLUTE)
        return pnx_fail(PNX_EINVAL, "RLE decode: unknown format %d", (int)fmt);
    if (!text && len > 0)
        return pnx_fail(PNX_EINVAL, "RLE decode: no text");
    trim(&text, &len);
    if (pnx_rle_is_empty(text, len))
        return 0;

    const uint64_t image_pixels = (uint64_t)mask->width * mask->height;
    uint64_t starts[STACK_RUNS], lengths[STACK_RUNS];
    size_t kept = 0;
    uint64_t covered = 0, end_prev = 0, s, l;
    if (!scan_runs_fast(text, len, fmt, image_pixels, starts, lengths, &kept, &covered)) {
        /* Something unusual: the careful parser finds and words the problem
         * (or accepts what the fast one would not, e.g. 20 leading zeros). */
        value_cursor c = {text, text, text + len, 0};
        int rc;
        kept = 0;
        covered = 0;
        while ((rc = next_run(&c, fmt, image_pixels, &end_prev, &s, &l)) == 1) {
            if (kept < STACK_RUNS) {
                starts[kept] = s;
                lengths[kept] = l;
            }
            kept++;
            covered += l;
        }
        if (rc < 0)
            return rc;
    }

    painter p = {mask, value, calloc((size_t)mask->height + 1, sizeof(uint64_t)), UINT32_MAX,
                 UINT32_MAX, 0};
    value_cursor again = {text, text, text + len, 0};
    end_prev = 0;
    for (size_t i = 0; i < kept; i++) {
        if (i < STACK_RUNS) {
            s = starts[i];
            l = lengths[i];
        } else if (i == STACK_RUNS) {
            /* past the stack buffer: parse again from the start, skipping what is done */
            for (size_t k = 0; k <= i; k++)
                next_run(&again, fmt, image_pixels, &end_prev, &s, &l);
        } else {
            next_run(&again, fmt, image_pixels, &end_prev, &s, &l);
        }
        if (p.edge)
            painter_run(&p, s, l);
        else
            paint_run_direct(mask, s, l, value);
    }
    if (p.edge)
        painter_flush(&p);
    free(p.edge);
    if (n_pixels)
        *n_pixels = covered;
    return 0;
}

int pnx_rle_decode(const char *text, size_t len, pnx_rle_fmt fmt, pnx_image *mask,
                   uint64_t *n_pixels)
{
    return decode_with_value(text, len, fmt, mask, n_pixels, 1);
}

int pnx_rle_erase(const char *text, size_t len, pnx_rle_fmt fmt, pnx_image *mask)
{
    return decode_with_value(text, len, fmt, mask, NULL, 0);
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct text_buf {
    char *data;
    size_t len, cap;
} text_buf;

static int reserve(text_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return pnx_fail(PNX_ENOMEM, "RLE encode: string too long");
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return pnx_fail(PNX_ENOMEM, "RLE encode: out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

static size_t format_u64(char *out, uint64_t v)
{
    char tmp[MAX_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int append_pair(text_buf *b, uint64_t start, uint64_t length)
{
    int rc = reserve(b, 2 * MAX_DIGITS + 3);
    if (rc)
        return rc;
    if (b->len > 0)
        b->data[b->len++] = ' ';
    b->len += format_u64(b->data + b->len, start);
    b->data[b->len++] = ' ';
    b->len += format_u64(b->data + b->len, length);
    return 0;
}

/* The smallest rectangle holding every foreground pixel. Found with
 * sequential reads, eight bytes at a time, so that an empty or small mask
 * costs one pass over memory and nothing is transposed outside the box. */
typedef struct box {
    uint32_t x0, y0, x1, y1; /* inclusive-exclusive: [x0, x1) × [y0, y1) */
} box;

static bool is_zero_word(const uint8_t *p)
{
    uint64_t word;
    memcpy(&word, p, sizeof word);
    return word == 0;
}

static bool foreground_box(const pnx_image *mask, box *b)
{
    const uint32_t w = mask->width, h = mask->height;
    bool any = false;
    *b = (box){w, h, 0, 0};
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *row = mask->pixels + (size_t)y * w;
        uint32_t first = 0;
        while (first + 8 <= w && is_zero_word(row + first))
            first += 8;
        while (first < w && row[first] == 0)
            first++;
        if (first == w)
            continue;
        uint32_t last = w; /* one past the last foreground pixel */
        while (last >= first + 8 && is_zero_word(row + last - 8))
            last -= 8;
        while (row[last - 1] == 0)
            last--;
        if (!any)
            b->y0 = y;
        any = true;
        b->y1 = y + 1;
        if (first < b->x0)
            b->x0 = first;
        if (last > b->x1)
            b->x1 = last;
    }
    return any;
}

/* Side of the square tiles of the transpose: 64 × 64 bytes of source and
 * destination stay in L1 while a tile is copied. */
#define TILE 64

/* The box of the row-major mask → column-major 0/1 bytes:
 * dst[(x - x0) * box height + (y - y0)]. */
static void box_to_column_major(const pnx_image *mask, const box *b, uint8_t *dst)
{
    const uint32_t w = mask->width, bh = b->y1 - b->y0;
    for (uint32_t ty = b->y0; ty < b->y1; ty += TILE) {
        uint32_t ty1 = ty + TILE < b->y1 ? ty + TILE : b->y1;
        for (uint32_t tx = b->x0; tx < b->x1; tx += TILE) {
            uint32_t tx1 = tx + TILE < b->x1 ? tx + TILE : b->x1;
            for (uint32_t y = ty; y < ty1; y++) {
                const uint8_t *src = mask->pixels + (size_t)y * w;
                for (uint32_t x = tx; x < tx1; x++)
                    dst[(size_t)(x - b->x0) * bh + (y - b->y0)] = src[x] != 0;
            }
        }
    }
}

/* Index of the first byte in [i, n) equal to want (0 or 1), or n. Skips
 * eight bytes at a time through the long stretches of equal bytes. */
static size_t find_byte(const uint8_t *p, size_t i, size_t n, uint8_t want)
{
    const uint64_t skip = want ? 0 : UINT64_C(0x0101010101010101);
    while (i + 8 <= n) {
        uint64_t word;
        memcpy(&word, p + i, sizeof word);
        if (word != skip)
            break;
        i += 8;
    }
    while (i < n && p[i] != want)
        i++;
    return i;
}

/* Appends the run [start, end) of column-major pixel numbers, merging it
 * with the previous one when they touch (a run crossing from the bottom of
 * one column to the top of the next). */
typedef struct run_writer {
    text_buf text;
    pnx_rle_fmt fmt;
    uint64_t open_start, open_end; /* the run not yet written; empty when equal */
    uint64_t end_written;          /* end of the last run written */
} run_writer;

static int flush_run(run_writer *rw)
{
    if (rw->open_end == rw->open_start)
        return 0;
    uint64_t s = rw->fmt == PNX_RLE_FMT_RELATIVE ? rw->open_start - rw->end_written : rw->open_start;
    int rc = append_pair(&rw->text, s, rw->open_end - rw->open_start);
    rw->end_written = rw->open_end;
    rw->open_start = rw->open_end;
    return rc;
}

static int add_run(run_writer *rw, uint64_t start, uint64_t end)
{
    if (rw->open_end != rw->open_start && rw->open_end == start) {
        rw->open_end = end;
        return 0;
    }
    int rc = flush_run(rw);
    rw->open_start = start;
    rw->open_end = end;
    return rc;
}

int pnx_rle_encode(const pnx_image *mask, pnx_rle_fmt fmt, char **out)
{
    *out = NULL;
    if (!mask || !mask->pixels || mask->width == 0 || mask->height == 0)
        return pnx_fail(PNX_EINVAL, "RLE encode: empty or missing mask");
    if (fmt != PNX_RLE_FMT_RELATIVE && fmt != PNX_RLE_FMT_ABSOLUTE)
        return pnx_fail(PNX_EINVAL, "RLE encode: unknown format %d", (int)fmt);
    run_writer rw = {.fmt = fmt};
    int rc = 0;
    box b;
    if (foreground_box(mask, &b)) {
        const size_t bw = b.x1 - b.x0, bh = b.y1 - b.y0;
        uint8_t *cm = malloc(bw * bh);
        if (!cm)
            return pnx_fail(PNX_ENOMEM, "RLE encode: out of memory (%zu bytes)", bw * bh);
        box_to_column_major(mask, &b, cm);
        for (size_t cx = 0; cx < bw && !rc; cx++) {
            const uint8_t *col = cm + cx * bh;
            const uint64_t base = (uint64_t)(b.x0 + cx) * mask->height + b.y0;
            size_t i = 0;
            for (;;) {
                size_t start = find_byte(col, i, bh, 1);
                if (start == bh)
                    break;
                size_t end = find_byte(col, start, bh, 0);
                if ((rc = add_run(&rw, base + start, base + end)))
                    break;
                i = end;
            }
        }
        free(cm);
        if (!rc)
            rc = flush_run(&rw);
    }
    if (!rc)
        rc = reserve(&rw.text, 3);
    if (rc) {
        free(rw.text.data);
        return rc;
    }
    if (rw.text.len == 0) {
        memcpy(rw.text.data, "-1", 2);
        rw.text.len = 2;
    }
    rw.text.data[rw.text.len] = '\0';
    *out = rw.text.data;
    return 0;
}
