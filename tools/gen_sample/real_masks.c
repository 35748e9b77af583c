/* tools/gen_sample/real_masks.c — real SIIM lesion shapes on synthetic lungs; see real_masks.h. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "tools/gen_sample/real_masks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "rle/rle.h"

/* Draws before giving up on one image. */
#define PICK_ATTEMPTS 400
/* A shape fits when this share of it lies in the lung ... */
#define MIN_INSIDE_SHARE 0.65
/* ... and this share of that lies within WALL_DEPTH of the lung border,
 * lateral of WALL_MIN_XL (the chest wall, not the mediastinum). */
#define MIN_WALL_SHARE 0.15
#define WALL_DEPTH 0.012
#define WALL_MIN_XL 0.2
#define REAL_SIDE 1024u

typedef struct shape {
    char *rle;
    int64_t line;
} shape;

struct pnx_real_masks {
    char *path;
    shape *shapes;
    size_t count, capacity;
};

void pnx_real_masks_free(pnx_real_masks *pool)
{
    if (!pool)
        return;
    for (size_t i = 0; i < pool->count; i++)
        free(pool->shapes[i].rle);
    free(pool->shapes);
    free(pool->path);
    free(pool);
}

size_t pnx_real_masks_count(const pnx_real_masks *pool) { return pool ? pool->count : 0; }

static int add_shape(pnx_real_masks *pool, const pnx_rle_row *row)
{
    if (pool->count == pool->capacity) {
        size_t cap = pool->capacity ? 2 * pool->capacity : 1024;
        shape *grown = realloc(pool->shapes, cap * sizeof *grown);
        if (!grown)
            return pnx_fail(PNX_ENOMEM, "out of memory for %zu real masks", cap);
        pool->shapes = grown;
        pool->capacity = cap;
    }
    char *copy = strdup(row->encoded);
    if (!copy)
        return pnx_fail(PNX_ENOMEM, "out of memory for a real mask");
    pool->shapes[pool->count].rle = copy;
    pool->shapes[pool->count].line = row->line;
    pool->count++;
    return 0;
}

int pnx_real_masks_load(const char *path, pnx_real_masks **out)
{
    *out = NULL;
    pnx_real_masks *pool = calloc(1, sizeof *pool);
    if (!pool || !(pool->path = strdup(path))) {
        free(pool);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    pnx_rle_reader *reader = NULL;
    int rc = pnx_rle_reader_open(&reader, path);
    while (rc >= 0) {
        pnx_rle_row row;
        rc = pnx_rle_reader_next(reader, &row);
        if (rc <= 0)
            break;
        if (!pnx_rle_is_empty(row.encoded, row.encoded_len))
            rc = add_shape(pool, &row);
    }
    pnx_rle_reader_close(reader);
    if (rc == 0 && pool->count == 0)
        rc = pnx_fail(PNX_ENOTFOUND, "%s: no positive row", path);
    if (rc < 0) {
        pnx_real_masks_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

long long pnx_real_masks_pick(const pnx_real_masks *pool, pnx_rng *rng,
                              const pnx_chest_frame *f, pnx_image *mask)
{
    if (!pool || pool->count == 0 || mask->width != REAL_SIDE || mask->height != REAL_SIDE
        || f->size != REAL_SIDE)
        return pnx_fail(PNX_EINVAL, "real masks need a %u x %u image", REAL_SIDE, REAL_SIDE);
    size_t size = pnx_image_size(mask);
    for (int attempt = 0; attempt < PICK_ATTEMPTS; attempt++) {
        const shape *sh = &pool->shapes[pnx_rng_below(rng, pool->count)];
        memset(mask->pixels, 0, size);
        uint64_t n = 0;
        int rc = pnx_rle_decode(sh->rle, strlen(sh->rle), PNX_RLE_FMT_RELATIVE, mask, &n);
        if (rc < 0)
            return pnx_fail_prefix(rc, "%s:%lld", pool->path, (long long)sh->line);
        uint64_t total = 0, inside = 0, wall = 0;
        for (size_t i = 0; i < size; i++) {
            if (!mask->pixels[i])
                continue;
            total++;
            double p, q;
            pnx_chest_pixel_to_anatomy(f, (double)(i % REAL_SIDE), (double)(i / REAL_SIDE), &p, &q);
            int side = p < 0.5 ? PNX_SIDE_RIGHT : PNX_SIDE_LEFT;
            double depth = pnx_chest_lung_depth(f, side, p, q);
            if (depth > 0) {
                inside++;
                wall += depth < WALL_DEPTH && pnx_chest_xl(side, p) > WALL_MIN_XL;
            } else {
                mask->pixels[i] = 0;
            }
        }
        if (total > 0 && inside >= MIN_INSIDE_SHARE * total && wall >= MIN_WALL_SHARE * inside)
            return (long long)inside;
    }
    memset(mask->pixels, 0, size);
    return 0;
}
