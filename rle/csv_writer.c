/*
 * rle/csv_writer.c — writes "ImageId,EncodedPixels" files atomically, in
 * the spelling of Kaggle's stage-2 files and submissions or of the stage-1
 * train-rle.csv. Every row is checked so that the file always reads back
 * with rle/csv_reader.c.
 */
#include "rle/rle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

struct pnx_rle_writer {
    pnx_atomic_file file;
    pnx_rle_csv_style style;
};

int pnx_rle_writer_open(pnx_rle_writer **writer, const char *path, pnx_rle_csv_style style)
{
    *writer = NULL;
    if (style != PNX_RLE_CSV_KAGGLE && style != PNX_RLE_CSV_STAGE1)
        return pnx_fail(PNX_EINVAL, "RLE CSV: unknown style %d", (int)style);
    pnx_rle_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pnx_fail(PNX_ENOMEM, "RLE CSV: out of memory");
    w->style = style;
    int rc = pnx_atomic_open(&w->file, path);
    if (rc) {
        free(w);
        return rc;
    }
    const char *header = style == PNX_RLE_CSV_STAGE1 ? "ImageId, EncodedPixels\n"
                                                     : "ImageId,EncodedPixels\n";
    if (fputs(header, w->file.fp) == EOF) {
        pnx_rle_writer_abort(w);
        return pnx_fail(PNX_EIO, "%s: write failed", path);
    }
    *writer = w;
    return 0;
}

static bool valid_image_id(const char *id)
{
    if (!id || !id[0] || id[0] == ' ')
        return false;
    size_t n = strlen(id);
    if (id[n - 1] == ' ' || id[n - 1] == '\t')
        return false;
    for (const char *p = id; *p; p++)
        if (*p == ',' || *p == '"' || (unsigned char)*p < 0x20)
            return false;
    return true;
}

static bool valid_encoded(const char *s)
{
    if (!s)
        return false;
    if (strcmp(s, "-1") == 0)
        return true;
    bool digit_before = false;
    size_t values = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (!digit_before)
                values++;
            digit_before = true;
        } else if (*p == ' ' && digit_before) {
            digit_before = false;
        } else {
            return false;
        }
    }
    return digit_before && values % 2 == 0;
}

int pnx_rle_writer_row(pnx_rle_writer *w, const char *image_id, const char *encoded)
{
    if (!valid_image_id(image_id))
        return pnx_fail(PNX_EINVAL,
                        "RLE CSV: ImageId '%s' is empty or holds a comma, quote or control byte",
                        image_id ? image_id : "(null)");
    if (!valid_encoded(encoded))
        return pnx_fail(PNX_EINVAL, "RLE CSV: ImageId %s: EncodedPixels is not '-1' or pairs of integers",
                        image_id);
    const char *sep = w->style == PNX_RLE_CSV_STAGE1 ? ", " : ",";
    if (fprintf(w->file.fp, "%s%s%s\n", image_id, sep, encoded) < 0)
        return pnx_fail(PNX_EIO, "%s: write failed", w->file.final_path);
    return 0;
}

int pnx_rle_writer_mask(pnx_rle_writer *w, const char *image_id, const pnx_image *mask,
                        pnx_rle_fmt fmt)
{
    char *text;
    int rc = pnx_rle_encode(mask, fmt, &text);
    if (rc)
        return pnx_fail_prefix(rc, "ImageId %s", image_id ? image_id : "(null)");
    rc = pnx_rle_writer_row(w, image_id, text);
    free(text);
    return rc;
}

int pnx_rle_writer_commit(pnx_rle_writer *w)
{
    if (!w)
        return pnx_fail(PNX_EINVAL, "RLE CSV: no writer");
    int rc = pnx_atomic_commit(&w->file);
    free(w);
    return rc;
}

void pnx_rle_writer_abort(pnx_rle_writer *w)
{
    if (!w)
        return;
    pnx_atomic_abort(&w->file);
    free(w);
}
