/*
 * tools/gen_sample/real_masks.h — a pool of real pneumothorax shapes from
 * a SIIM RLE CSV (optional input of the generator, --real-rle).
 *
 * Every non-empty row of the file is one shape (an annotator's instance
 * mask on a 1024 × 1024 image). A shape is used for a synthetic image only
 * where it lies along that image's lung border: most of it inside the lung,
 * part of it within a few millimetres of the chest wall; the part outside
 * the lung is cut off. The real masks were drawn on other anatomy, so the
 * fit is approximate: shapes along the wall, not always crescents.
 */
#ifndef PNX_TOOLS_REAL_MASKS_H
#define PNX_TOOLS_REAL_MASKS_H

#include <stddef.h>

#include "common/image.h"
#include "common/rng.h"
#include "tools/gen_sample/chest_anatomy.h"

typedef struct pnx_real_masks pnx_real_masks;

/* Reads every positive row of path (relative RLE). Returns 0, or the
 * reader's error (which names file and line); PNX_ENOTFOUND when the file
 * holds no positive row. */
int pnx_real_masks_load(const char *path, pnx_real_masks **pool);
size_t pnx_real_masks_count(const pnx_real_masks *pool);
void pnx_real_masks_free(pnx_real_masks *pool);

/* Draws shapes until one fits the lung border of frame f, and sets its
 * pixels (cut to the lung) in mask (zeroed first, f->size square). Returns
 * the pixel count, 0 when no shape fitted after many draws, or a negative
 * code when a row fails to decode. */
long long pnx_real_masks_pick(const pnx_real_masks *pool, pnx_rng *rng,
                              const pnx_chest_frame *f, pnx_image *mask);

#endif
