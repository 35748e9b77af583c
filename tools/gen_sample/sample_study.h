/*
 * tools/gen_sample/sample_study.h — makes one study of the plan: the
 * picture, its pneumothorax masks, the DICOM file bytes and the RLE rows.
 *
 * Deterministic: study i of a plan depends only on the plan's seed, the
 * study's and its patient's RNG streams (and the real-mask pool, when one
 * is given), never on which other studies are made.
 */
#ifndef PNX_TOOLS_SAMPLE_STUDY_H
#define PNX_TOOLS_SAMPLE_STUDY_H

#include <stddef.h>
#include <stdint.h>

#include "tools/gen_sample/ptx_lesion.h"
#include "tools/gen_sample/real_masks.h"
#include "tools/gen_sample/sample_plan.h"

/* The SIIM image size. */
#define PNX_SAMPLE_SIDE 1024u
/* A lesion piece smaller than this many pixels is redrawn. */
#define PNX_SAMPLE_MIN_PIECE_PIXELS 600u

typedef struct pnx_sample_output {
    uint8_t *dicom;                       /* the whole Part 10 file */
    size_t dicom_len;
    int n_rows;                           /* CSV rows: pieces, or 1 for "-1" */
    char *rle[PNX_PTX_MAX_PIECES];        /* relative RLE strings, "-1" when negative */
    uint64_t lesion_pixels;               /* pixels of the union of the pieces */
} pnx_sample_output;

/* Makes study i of plan at JPEG quality `quality`. real may be NULL
 * (procedural crescents). Returns 0 or a negative code; out is then empty. */
int pnx_sample_study_make(const pnx_sample_plan *plan, uint32_t i,
                          const pnx_real_masks *real, int quality,
                          pnx_sample_output *out);
void pnx_sample_output_free(pnx_sample_output *out);

/* The picture and lesion union of study i without encoding (for tests and
 * previews): img and lesion are allocated here, PNX_SAMPLE_SIDE square. */
int pnx_sample_study_paint(const pnx_sample_plan *plan, uint32_t i,
                           const pnx_real_masks *real, pnx_image *img,
                           pnx_image *lesion, pnx_image pieces[PNX_PTX_MAX_PIECES],
                           int *n_pieces);

#endif
