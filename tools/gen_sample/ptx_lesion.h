/*
 * tools/gen_sample/ptx_lesion.h — where a synthetic pneumothorax lies.
 *
 * A pneumothorax is air between the chest wall and the collapsed lung: a
 * crescent along the lung border, widest in its middle and tapering to
 * nothing at both ends, most often over the apex or the lateral wall. Each
 * crescent is one "piece" and becomes one row of the RLE CSV; two crescents
 * of one image may be apart (two rows, two regions) or overlap (two rows
 * whose masks overlap, as the annotators' instance masks do in the real
 * SIIM file).
 *
 * Angles are measured in the lung's mirrored coordinates (xl, q) around
 * pnx_chest_lung_centre(): -pi/2 points to the apex, 0 to the lateral chest
 * wall, +pi/2 to the diaphragm.
 */
#ifndef PNX_TOOLS_PTX_LESION_H
#define PNX_TOOLS_PTX_LESION_H

#include "common/image.h"
#include "common/rng.h"
#include "tools/gen_sample/chest_anatomy.h"

#define PNX_PTX_MAX_PIECES 4

typedef struct pnx_ptx_crescent {
    int side;             /* PNX_SIDE_RIGHT or PNX_SIDE_LEFT */
    double centre;        /* angle of the crescent's middle, radians */
    double half_width;    /* half its angular extent, radians */
    double depth;         /* widest gap between chest wall and lung, anatomy units */
    double wobble_phase;  /* irregularity of the collapsed lung's edge */
} pnx_ptx_crescent;

typedef enum pnx_ptx_layout {
    PNX_PTX_NONE = 0,
    PNX_PTX_SINGLE,       /* one crescent, one row */
    PNX_PTX_APART,        /* two crescents that do not touch, two rows */
    PNX_PTX_OVERLAPPING,  /* two crescents that overlap, two rows */
} pnx_ptx_layout;

typedef struct pnx_ptx_lesion {
    int n_pieces;
    pnx_ptx_crescent pieces[PNX_PTX_MAX_PIECES];
} pnx_ptx_lesion;

/* Draws the crescents of a lesion of the given layout. AP (supine) films
 * also get basal crescents (the "deep sulcus"). */
void pnx_ptx_sample(pnx_rng *rng, pnx_ptx_layout layout, int ap_view,
                    pnx_ptx_lesion *lesion);

/* 1 when anatomy point (p, q) is inside the crescent. */
int pnx_ptx_crescent_contains(const pnx_chest_frame *f, const pnx_ptx_crescent *c,
                              double p, double q);

/* Sets to 1 the pixels of mask (f->size square, allocated by the caller)
 * whose centres lie in the crescent; other pixels are untouched. Returns the
 * number of pixels of the crescent. */
uint64_t pnx_ptx_rasterize(const pnx_chest_frame *f, const pnx_ptx_crescent *c,
                           pnx_image *mask);

#endif
