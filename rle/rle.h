/*
 * rle/rle.h — the Kaggle SIIM run-length encoding of masks: the codec and
 * the RLE CSV reader and writer. The only place where the Kaggle
 * column-major pixel order meets pneumoseg's row-major masks.
 *
 * The format (see docs/rle.md): EncodedPixels is a list of space-separated
 * pairs "start length" of 0-based integers over the pixels of a
 * width × height image taken in column-major order (down each column first,
 * pixel (x, y) is number x * height + y). In the RELATIVE format (SIIM's,
 * the default) the first start counts from pixel 0 and every later start
 * counts from the end of the previous run; in the ABSOLUTE format (the usual
 * Kaggle one) every start counts from pixel 0. "-1" means an empty mask.
 *
 * Masks are common/image.h pnx_image: row-major uint8, 0/1, width × height.
 *
 * Promises:
 *  - Decoding validates the whole string before touching the mask: a
 *    malformed string (odd count, negative or non-numeric value, a run past
 *    the end of the image, an overflowing start + length, a zero length,
 *    overlapping or backwards runs in the absolute format) is PNX_EFORMAT
 *    or PNX_ERANGE with a message, and the mask is left exactly as it was.
 *    Never a partial or clamped mask.
 *  - Encoding then decoding gives the same mask, in both formats, for any
 *    size. pneumoseg's encoder writes a run that ends on the very last pixel
 *    (the competition's reference encoder drops it; see docs/rle.md); the
 *    decoder accepts strings with or without such a run.
 *  - The CSV reader streams: its memory grows with the longest row, not the
 *    file (pnx_rle_index, which unites rows of one ImageId that are far
 *    apart, keeps offsets, not masks). Every error message starts with "<file>:<line>:" and, when the
 *    row has one, names the ImageId.
 *  - No function prints, exits or keeps global state; distinct readers,
 *    writers and masks may be used from distinct threads.
 */
#ifndef PNX_RLE_RLE_H
#define PNX_RLE_RLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

/* Which starts the string holds. The values are those of pipeline/config.h's
 * enum pnx_rle_format (PNX_RLE_RELATIVE = 0, PNX_RLE_ABSOLUTE = 1), so an
 * int read from pipeline.yaml passes straight through; rle/ does not include
 * pipeline/ headers, hence its own names. */
typedef enum pnx_rle_fmt {
    PNX_RLE_FMT_RELATIVE = 0, /* SIIM: each start after the first counts from the end of the previous run */
    PNX_RLE_FMT_ABSOLUTE = 1, /* usual Kaggle RLE: starts count from pixel 0 */
} pnx_rle_fmt;

/* "relative" / "absolute" → *fmt; PNX_EINVAL for anything else. */
int pnx_rle_fmt_parse(const char *name, pnx_rle_fmt *fmt);
/* "relative" / "absolute" ("?" for an invalid value). */
const char *pnx_rle_fmt_name(pnx_rle_fmt fmt);

/* ---- codec -------------------------------------------------------------- */

/* 1 when text[0..len) means "no mask": "-1" or nothing, with any spaces
 * around; 0 otherwise (it may still be malformed). */
int pnx_rle_is_empty(const char *text, size_t len);

/* Decodes the EncodedPixels text[0..len) (need not be NUL-terminated;
 * leading and trailing spaces, tabs and CR are ignored) for an image of
 * mask->width × mask->height and ORs its runs into mask->pixels (pixels set
 * to 1, other pixels untouched), so that several rows of one ImageId unite
 * by decoding each into the same mask. The caller allocates and zeroes the
 * mask (pnx_image_alloc). "-1" changes nothing.
 * Returns 0, PNX_EFORMAT (not a valid RLE string) or PNX_ERANGE (a run
 * outside the image or an overflowing value); on failure the mask is
 * unchanged and the message names the problem and the value's position
 * ("value 7 of 12: …"). If n_pixels is not NULL, it receives the number of
 * pixels the string covers (before uniting). */
int pnx_rle_decode(const char *text, size_t len, pnx_rle_fmt fmt,
                   pnx_image *mask, uint64_t *n_pixels);

/* The inverse of decoding into an empty mask: checks text exactly as
 * pnx_rle_decode does, then sets to 0 every pixel it covers (mask
 * unchanged on failure). For reusing one mask buffer row after row without
 * clearing all of it. */
int pnx_rle_erase(const char *text, size_t len, pnx_rle_fmt fmt, pnx_image *mask);

/* Encodes mask (any nonzero byte is foreground) into a malloc'd,
 * NUL-terminated string: "start length" pairs separated by single spaces,
 * no leading or trailing space, or "-1" when no pixel is set. The caller
 * frees *out. Returns 0, PNX_EINVAL (bad image) or PNX_ENOMEM. */
int pnx_rle_encode(const pnx_image *mask, pnx_rle_fmt fmt, char **out);

/* ---- CSV reader --------------------------------------------------------- */

/* Accepted files: an optional UTF-8 BOM; a header "ImageId,EncodedPixels"
 * (names case-insensitive, spaces around either allowed, e.g. the stage-1
 * "ImageId, EncodedPixels") or no header at all (the first line is then a
 * data row); then one row per line "ImageId,EncodedPixels", with optional
 * spaces around either field, LF or CRLF line ends, blank lines ignored
 * (a blank last line included). A line without a comma, with more than one
 * comma, with an empty ImageId, or a header with other names, is
 * PNX_EFORMAT; a file with no row at all is fine (zero rows). A NUL byte
 * or a line longer than PNX_RLE_MAX_LINE is PNX_EFORMAT ("not an RLE CSV"). */
#define PNX_RLE_MAX_LINE (64u << 20)

typedef struct pnx_rle_reader pnx_rle_reader;

typedef struct pnx_rle_row {
    const char *image_id;   /* NUL-terminated, trimmed; valid until the next call */
    size_t image_id_len;
    const char *encoded;    /* EncodedPixels, NUL-terminated, trimmed; "-1" for empty */
    size_t encoded_len;
    int64_t line;           /* 1-based line number in the file */
    uint64_t offset;        /* byte offset of the line's start in the file */
} pnx_rle_row;

/* Opens path for reading. PNX_EIO / PNX_ENOTFOUND when it cannot be opened. */
int pnx_rle_reader_open(pnx_rle_reader **reader, const char *path);

/* Reads the next data row. Returns 1 with *row filled, 0 at the end of the
 * file, or a negative code ("<file>:<line>: …") on a malformed line or a
 * read error. Does not decode the EncodedPixels and does not group rows. */
int pnx_rle_reader_next(pnx_rle_reader *reader, pnx_rle_row *row);

/* pnx_rle_decode of row->encoded into mask, with the failure message
 * prefixed "<file>:<line>: ImageId <id>: ". */
int pnx_rle_reader_decode(const pnx_rle_reader *reader, const pnx_rle_row *row,
                          pnx_rle_fmt fmt, pnx_image *mask, uint64_t *n_pixels);

/* ---- index: all rows of one ImageId, wherever they are ------------------ */

/* Rows of one ImageId need not be consecutive (in the real SIIM file 906
 * rows repeat an ImageId seen earlier, not just above), so uniting them
 * while streaming is impossible. An index reads the file once, checking
 * every line's CSV syntax (not yet the RLE values), and remembers for each
 * distinct ImageId, in order of first appearance, the byte offsets of its
 * rows; decoding an image then seeks to just those rows. Memory: about the
 * ImageId length plus 16 bytes per row, never a mask per image. */
typedef struct pnx_rle_index pnx_rle_index;

/* Builds the index of path. Errors as pnx_rle_reader_next. */
int pnx_rle_index_build(pnx_rle_index **index, const char *path);
/* Number of distinct ImageIds, and of data rows. */
size_t pnx_rle_index_count(const pnx_rle_index *index);
size_t pnx_rle_index_row_count(const pnx_rle_index *index);
/* The i-th ImageId (0 ≤ i < count), in order of first appearance. */
const char *pnx_rle_index_id(const pnx_rle_index *index, size_t i);
/* Rows of image i, and how many of them are not "-1". */
int pnx_rle_index_rows(const pnx_rle_index *index, size_t i);
int pnx_rle_index_positive_rows(const pnx_rle_index *index, size_t i);
/* 1-based line of image i's first row. */
int64_t pnx_rle_index_first_line(const pnx_rle_index *index, size_t i);
/* Finds image_id: 0 with *i set, or PNX_ENOTFOUND. */
int pnx_rle_index_find(const pnx_rle_index *index, const char *image_id, size_t *i);
/* Zeroes mask (allocated by the caller at the image's size) and decodes into
 * it the union of image i's rows. On failure (the message names file, line
 * and ImageId) the mask is all zero, never partial. Not thread-safe on one
 * index (it reads through one file handle). */
int pnx_rle_index_decode(pnx_rle_index *index, size_t i, pnx_rle_fmt fmt,
                         pnx_image *mask);
/* Frees the index and closes its file; NULL is fine. */
void pnx_rle_index_free(pnx_rle_index *index);

/* ---- reader accessors --------------------------------------------------- */

/* The path given to open (for messages). */
const char *pnx_rle_reader_path(const pnx_rle_reader *reader);
/* Closes and frees; NULL is fine. */
void pnx_rle_reader_close(pnx_rle_reader *reader);

/* ---- CSV writer --------------------------------------------------------- */

typedef enum pnx_rle_csv_style {
    PNX_RLE_CSV_KAGGLE = 0, /* header "ImageId,EncodedPixels", rows "id,rle" (stage 2, submissions) */
    PNX_RLE_CSV_STAGE1 = 1, /* header "ImageId, EncodedPixels", rows "id, rle" (stage-1 train-rle.csv) */
} pnx_rle_csv_style;

typedef struct pnx_rle_writer pnx_rle_writer;

/* Starts writing path atomically (common/fileio.h): nothing appears under
 * path until pnx_rle_writer_commit succeeds. Writes the header. */
int pnx_rle_writer_open(pnx_rle_writer **writer, const char *path,
                        pnx_rle_csv_style style);
/* Writes one row; LF line ends. image_id must be non-empty and hold no
 * comma, quote, CR or LF; encoded must be "-1" or digits and single spaces
 * (PNX_EINVAL otherwise, nothing written). */
int pnx_rle_writer_row(pnx_rle_writer *writer, const char *image_id,
                       const char *encoded);
/* Encodes mask in fmt and writes it as one row. */
int pnx_rle_writer_mask(pnx_rle_writer *writer, const char *image_id,
                        const pnx_image *mask, pnx_rle_fmt fmt);
/* Renames the file into place and frees the writer (also on failure). */
int pnx_rle_writer_commit(pnx_rle_writer *writer);
/* Removes the temporary file and frees the writer; NULL is fine. */
void pnx_rle_writer_abort(pnx_rle_writer *writer);

#endif
