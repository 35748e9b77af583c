/*
 * rle/csv_reader.c — streaming reader of "ImageId,EncodedPixels" files
 * (see rle/rle.h for what is accepted).
 *
 * The file is read in blocks into one buffer that holds the current line;
 * the buffer grows only when a single line is longer than it, up to
 * PNX_RLE_MAX_LINE, so memory follows the longest row, not the file.
 */
#define _POSIX_C_SOURCE 200809L /* fseeko, strdup, strncasecmp */

#include "rle/rle_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

#define BLOCK_BYTES (256u << 10)

struct pnx_rle_reader {
    char *path;
    FILE *fp;
    char *buf;
    size_t cap;          /* bytes allocated in buf */
    size_t pos;          /* start of the unread data in buf */
    size_t len;          /* end of the data in buf */
    uint64_t buf_offset; /* file offset of buf[0] */
    bool eof;
    bool header_done;    /* the first non-blank line has been looked at */
    int64_t line;        /* number of the line last returned */
};

int pnx_rle_reader_open(pnx_rle_reader **reader, const char *path)
{
    *reader = NULL;
    if (!path)
        return pnx_fail(PNX_EINVAL, "RLE CSV: no path");
    pnx_rle_reader *r = calloc(1, sizeof *r);
    if (!r)
        return pnx_fail(PNX_ENOMEM, "RLE CSV: out of memory");
    r->path = strdup(path);
    r->cap = BLOCK_BYTES;
    r->buf = malloc(r->cap + 1);
    if (!r->path || !r->buf) {
        pnx_rle_reader_close(r);
        return pnx_fail(PNX_ENOMEM, "RLE CSV: out of memory");
    }
    r->fp = fopen(path, "rb");
    if (!r->fp) {
        int e = errno;
        pnx_rle_reader_close(r);
        return pnx_fail(e == ENOENT ? PNX_ENOTFOUND : PNX_EIO, "%s: %s", path, strerror(e));
    }
    *reader = r;
    return 0;
}

void pnx_rle_reader_close(pnx_rle_reader *r)
{
    if (!r)
        return;
    if (r->fp)
        fclose(r->fp);
    free(r->buf);
    free(r->path);
    free(r);
}

const char *pnx_rle_reader_path(const pnx_rle_reader *r) { return r->path; }

int pnx_rle_reader_seek(pnx_rle_reader *r, uint64_t offset, int64_t line)
{
    if (offset > (uint64_t)INT64_MAX || fseeko(r->fp, (off_t)offset, SEEK_SET) != 0)
        return pnx_fail(PNX_EIO, "%s: seek to byte %llu: %s", r->path,
                        (unsigned long long)offset, strerror(errno));
    r->pos = r->len = 0;
    r->buf_offset = offset;
    r->eof = false;
    r->header_done = true; /* a seek lands on a data row found before */
    r->line = line - 1;
    return 0;
}

/* Makes buf[pos..] hold a whole line (or the rest of the file). Returns the
 * index of its '\n' (or len when the file ends without one), or negative. */
static int64_t fill_line(pnx_rle_reader *r)
{
    size_t scanned = r->pos;
    for (;;) {
        char *nl = memchr(r->buf + scanned, '\n', r->len - scanned);
        if (nl)
            return nl - r->buf;
        scanned = r->len;
        if (r->eof)
            return (int64_t)r->len;
        if (r->pos > 0) { /* slide the partial line to the front */
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->buf_offset += r->pos;
            r->len -= r->pos;
            scanned -= r->pos;
            r->pos = 0;
        }
        if (r->len == r->cap) {
            if (r->cap >= PNX_RLE_MAX_LINE)
                return pnx_fail(PNX_EFORMAT, "%s:%lld: line longer than %u bytes: not an RLE CSV",
                                r->path, (long long)r->line + 1, PNX_RLE_MAX_LINE);
            size_t cap = r->cap * 2 > PNX_RLE_MAX_LINE ? PNX_RLE_MAX_LINE : r->cap * 2;
            char *p = realloc(r->buf, cap + 1);
            if (!p)
                return pnx_fail(PNX_ENOMEM, "%s: out of memory for a %zu-byte line", r->path, cap);
            r->buf = p;
            r->cap = cap;
        }
        size_t got = fread(r->buf + r->len, 1, r->cap - r->len, r->fp);
        if (got == 0) {
            if (ferror(r->fp))
                return pnx_fail(PNX_EIO, "%s: read error: %s", r->path, strerror(errno));
            r->eof = true;
        }
        r->len += got;
    }
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static void trim_span(char **s, size_t *n)
{
    while (*n > 0 && is_space((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static bool span_equals_ci(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* A first line that could be a data row: its second field is "-1", blank,
 * or starts with a digit. */
static bool looks_like_rle(const char *s, size_t n)
{
    return n == 0 || (n == 2 && s[0] == '-' && s[1] == '1') || (s[0] >= '0' && s[0] <= '9');
}

/* Any byte below 0x20 other than a tab: eight bytes at a time (a word has
 * a byte below 0x20 exactly when (x - 0x20…) & ~x & 0x80… is not zero),
 * then byte by byte from the first word that may hold one. */
static bool has_control_byte(const char *s, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, sizeof x);
        if ((x - 0x20 * ones) & ~x & (0x80 * ones))
            break;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 && ch != '\t')
            return true;
    }
    return false;
}

static int row_error(const pnx_rle_reader *r, int code, const char *what)
{
    return pnx_fail(code, "%s:%lld: %s", r->path, (long long)r->line, what);
}

int pnx_rle_reader_next(pnx_rle_reader *r, pnx_rle_row *row)
{
    for (;;) {
        int64_t nl = fill_line(r);
        if (nl < 0)
            return (int)nl;
        if ((size_t)nl == r->len && r->pos == r->len)
            return 0; /* end of file */
        char *line = r->buf + r->pos;
        size_t n = (size_t)nl - r->pos;
        uint64_t offset = r->buf_offset + r->pos;
        r->pos = (size_t)nl < r->len ? (size_t)nl + 1 : r->len;
        r->line++;

        if (offset == 0 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            n -= 3;
        }
        trim_span(&line, &n);
        if (n == 0)
            continue;

        if (has_control_byte(line, n))
            return row_error(r, PNX_EFORMAT,
                             "control byte in line: not an RLE CSV (ImageId,EncodedPixels)");
        char *comma = memchr(line, ',', n);
        size_t commas = 0;
        if (comma)
            commas = memchr(comma + 1, ',', n - (size_t)(comma - line) - 1) ? 2 : 1;
        if (!comma)
            return row_error(r, PNX_EFORMAT,
                             r->header_done ? "row without a comma (expected ImageId,EncodedPixels)"
                                            : "no comma in first line: not an RLE CSV (ImageId,EncodedPixels)");
        if (commas > 1)
            return row_error(r, PNX_EFORMAT,
                             r->header_done ? "row with more than one comma (expected ImageId,EncodedPixels)"
                                            : "first line has more than two fields: not an RLE CSV (ImageId,EncodedPixels)");
        char *id = line;
        size_t id_len = (size_t)(comma - line);
        char *rle = comma + 1;
        size_t rle_len = n - id_len - 1;
        trim_span(&id, &id_len);
        trim_span(&rle, &rle_len);

        if (!r->header_done) {
            r->header_done = true;
            if (span_equals_ci(id, id_len, "ImageId") && span_equals_ci(rle, rle_len, "EncodedPixels"))
                continue;
            if (!looks_like_rle(rle, rle_len)) {
                return pnx_fail(PNX_EFORMAT,
                                "%s:%lld: header '%.*s,%.*s' is not 'ImageId,EncodedPixels': not an RLE CSV",
                                r->path, (long long)r->line, (int)(id_len > 60 ? 60 : id_len), id,
                                (int)(rle_len > 60 ? 60 : rle_len), rle);
            }
        }
        if (id_len == 0)
            return row_error(r, PNX_EFORMAT, "empty ImageId");
        id[id_len] = '\0';
        rle[rle_len] = '\0';
        row->image_id = id;
        row->image_id_len = id_len;
        row->encoded = rle;
        row->encoded_len = rle_len;
        row->line = r->line;
        row->offset = offset;
        return 1;
    }
}

int pnx_rle_reader_decode(const pnx_rle_reader *r, const pnx_rle_row *row, pnx_rle_fmt fmt,
                          pnx_image *mask, uint64_t *n_pixels)
{
    int rc = pnx_rle_decode(row->encoded, row->encoded_len, fmt, mask, n_pixels);
    if (rc)
        return pnx_fail_prefix(rc, "%s:%lld: ImageId %s", r->path, (long long)row->line,
                               row->image_id);
    return 0;
}
