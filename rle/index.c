/*
 * rle/index.c — where each ImageId's rows are in an RLE CSV, so that rows of
 * one image far apart in the file can be united without holding masks.
 *
 * Storage: the ImageIds, NUL-terminated, in one growing pool; one entry per
 * image (in order of first appearance) and one per row, the rows of an image
 * chained in file order; an open-addressing hash table from ImageId to
 * image entry.
 */
#include "rle/rle_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define NO_ROW SIZE_MAX

typedef struct image_entry {
    size_t id_offset;  /* into pool */
    size_t first_row, last_row;
    int n_rows;
    int n_positive_rows;
} image_entry;

typedef struct row_entry {
    uint64_t offset;   /* byte offset of the line */
    int64_t line;
    size_t next_row;   /* next row of the same image, or NO_ROW */
} row_entry;

struct pnx_rle_index {
    pnx_rle_reader *reader;
    char *pool;
    size_t pool_len, pool_cap;
    image_entry *images;
    size_t n_images, images_cap;
    row_entry *rows;
    size_t n_rows, rows_cap;
    size_t *slots;     /* image index + 1, 0 = free */
    size_t n_slots;    /* a power of two, at least twice n_images */
};

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* Grows *p (holding *cap elements of size elem) to hold at least need. */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return pnx_fail(PNX_ENOMEM, "RLE index: too large");
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q)
        return pnx_fail(PNX_ENOMEM, "RLE index: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

static size_t *find_slot(const pnx_rle_index *ix, const char *id, size_t n)
{
    size_t mask = ix->n_slots - 1;
    for (size_t i = hash_id(id, n) & mask;; i = (i + 1) & mask) {
        size_t *slot = &ix->slots[i];
        if (*slot == 0)
            return slot;
        const char *other = ix->pool + ix->images[*slot - 1].id_offset;
        if (strncmp(other, id, n) == 0 && other[n] == '\0')
            return slot;
    }
}

static int rehash(pnx_rle_index *ix)
{
    size_t n = ix->n_slots ? ix->n_slots * 2 : 1024;
    size_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return pnx_fail(PNX_ENOMEM, "RLE index: out of memory");
    free(ix->slots);
    ix->slots = slots;
    ix->n_slots = n;
    for (size_t i = 0; i < ix->n_images; i++) {
        const char *id = ix->pool + ix->images[i].id_offset;
        *find_slot(ix, id, strlen(id)) = i + 1;
    }
    return 0;
}

static int add_row(pnx_rle_index *ix, const pnx_rle_row *row)
{
    int rc;
    if ((ix->n_images + 1) * 2 > ix->n_slots && (rc = rehash(ix)))
        return rc;
    if ((rc = grow((void **)&ix->rows, &ix->rows_cap, ix->n_rows + 1, sizeof *ix->rows)))
        return rc;
    size_t *slot = find_slot(ix, row->image_id, row->image_id_len);
    if (*slot == 0) {
        if ((rc = grow((void **)&ix->images, &ix->images_cap, ix->n_images + 1, sizeof *ix->images)) ||
            (rc = grow((void **)&ix->pool, &ix->pool_cap, ix->pool_len + row->image_id_len + 1, 1)))
            return rc;
        image_entry *im = &ix->images[ix->n_images];
        im->id_offset = ix->pool_len;
        memcpy(ix->pool + ix->pool_len, row->image_id, row->image_id_len + 1);
        ix->pool_len += row->image_id_len + 1;
        im->first_row = NO_ROW;
        im->last_row = NO_ROW;
        im->n_rows = 0;
        im->n_positive_rows = 0;
        *slot = ++ix->n_images;
    }
    image_entry *im = &ix->images[*slot - 1];
    if (im->n_rows == INT32_MAX)
        return pnx_fail(PNX_ERANGE, "%s:%lld: ImageId %s has too many rows",
                        pnx_rle_reader_path(ix->reader), (long long)row->line, row->image_id);
    size_t r = ix->n_rows++;
    ix->rows[r] = (row_entry){row->offset, row->line, NO_ROW};
    if (im->last_row == NO_ROW)
        im->first_row = r;
    else
        ix->rows[im->last_row].next_row = r;
    im->last_row = r;
    im->n_rows++;
    if (!pnx_rle_is_empty(row->encoded, row->encoded_len))
        im->n_positive_rows++;
    return 0;
}

int pnx_rle_index_build(pnx_rle_index **index, const char *path)
{
    *index = NULL;
    pnx_rle_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return pnx_fail(PNX_ENOMEM, "RLE index: out of memory");
    int rc = pnx_rle_reader_open(&ix->reader, path);
    if (!rc)
        rc = rehash(ix);
    pnx_rle_row row;
    while (!rc && (rc = pnx_rle_reader_next(ix->reader, &row)) == 1)
        rc = add_row(ix, &row);
    if (rc < 0) {
        pnx_rle_index_free(ix);
        return rc;
    }
    *index = ix;
    return 0;
}

void pnx_rle_index_free(pnx_rle_index *ix)
{
    if (!ix)
        return;
    pnx_rle_reader_close(ix->reader);
    free(ix->pool);
    free(ix->images);
    free(ix->rows);
    free(ix->slots);
    free(ix);
}

size_t pnx_rle_index_count(const pnx_rle_index *ix) { return ix->n_images; }
size_t pnx_rle_index_row_count(const pnx_rle_index *ix) { return ix->n_rows; }

const char *pnx_rle_index_id(const pnx_rle_index *ix, size_t i)
{
    return i < ix->n_images ? ix->pool + ix->images[i].id_offset : NULL;
}

int pnx_rle_index_rows(const pnx_rle_index *ix, size_t i)
{
    return i < ix->n_images ? ix->images[i].n_rows : 0;
}

int pnx_rle_index_positive_rows(const pnx_rle_index *ix, size_t i)
{
    return i < ix->n_images ? ix->images[i].n_positive_rows : 0;
}

int64_t pnx_rle_index_first_line(const pnx_rle_index *ix, size_t i)
{
    return i < ix->n_images ? ix->rows[ix->images[i].first_row].line : 0;
}

int pnx_rle_index_find(const pnx_rle_index *ix, const char *image_id, size_t *i)
{
    size_t slot = *find_slot(ix, image_id, strlen(image_id));
    if (slot == 0)
        return pnx_fail(PNX_ENOTFOUND, "%s: no row for ImageId %s",
                        pnx_rle_reader_path(ix->reader), image_id);
    *i = slot - 1;
    return 0;
}

int pnx_rle_index_decode(pnx_rle_index *ix, size_t i, pnx_rle_fmt fmt, pnx_image *mask)
{
    if (i >= ix->n_images)
        return pnx_fail(PNX_EINVAL, "RLE index: image %zu of %zu", i, ix->n_images);
    if (!mask || !mask->pixels)
        return pnx_fail(PNX_EINVAL, "RLE index: no mask to decode into");
    memset(mask->pixels, 0, pnx_image_size(mask));
    const image_entry *im = &ix->images[i];
    const char *want = ix->pool + im->id_offset;
    for (size_t r = im->first_row; r != NO_ROW; r = ix->rows[r].next_row) {
        pnx_rle_row row;
        int rc = pnx_rle_reader_seek(ix->reader, ix->rows[r].offset, ix->rows[r].line);
        if (!rc) {
            rc = pnx_rle_reader_next(ix->reader, &row);
            if (rc == 1 && (row.line != ix->rows[r].line || strcmp(row.image_id, want) != 0))
                rc = pnx_fail(PNX_EIO, "%s:%lld: file changed since it was indexed",
                              pnx_rle_reader_path(ix->reader), (long long)ix->rows[r].line);
            else if (rc == 0)
                rc = pnx_fail(PNX_EIO, "%s: file shrank since it was indexed",
                              pnx_rle_reader_path(ix->reader));
            else if (rc == 1)
                rc = pnx_rle_reader_decode(ix->reader, &row, fmt, mask, NULL);
        }
        if (rc) {
            memset(mask->pixels, 0, pnx_image_size(mask));
            return rc;
        }
    }
    return 0;
}
