/* tools/gen_sample/ptx_lesion.c — pneumothorax crescents; see ptx_lesion.h. */
#include "tools/gen_sample/ptx_lesion.h"

#include <math.h>

#define PI 3.14159265358979323846

static double uniform_in(pnx_rng *rng, double lo, double hi)
{
    return lo + (hi - lo) * pnx_rng_uniform(rng);
}

/* Where along the lung border the crescent sits; the apex and the lateral
 * wall are the usual places on an erect film, the base on a supine one. */
static void sample_one(pnx_rng *rng, int ap_view, pnx_ptx_crescent *c)
{
    c->side = (int)pnx_rng_below(rng, 2);
    double u = pnx_rng_uniform(rng);
    if (u < 0.35) {                         /* apical */
        c->centre = uniform_in(rng, -1.75, -1.45);
        c->half_width = uniform_in(rng, 0.45, 0.75);
    } else if (u < 0.7) {                   /* apicolateral */
        c->centre = uniform_in(rng, -1.2, -0.7);
        c->half_width = uniform_in(rng, 0.55, 0.9);
    } else if (u < 0.9 || !ap_view) {       /* lateral */
        c->centre = uniform_in(rng, -0.45, 0.0);
        c->half_width = uniform_in(rng, 0.5, 0.9);
    } else {                                /* basal, deep sulcus */
        c->centre = uniform_in(rng, 0.55, 0.85);
        c->half_width = uniform_in(rng, 0.3, 0.45);
    }
    c->depth = uniform_in(rng, 0.025, 0.075);
    c->wobble_phase = uniform_in(rng, 0, 2 * PI);
}

void pnx_ptx_sample(pnx_rng *rng, pnx_ptx_layout layout, int ap_view,
                    pnx_ptx_lesion *lesion)
{
    lesion->n_pieces = 0;
    switch (layout) {
    case PNX_PTX_NONE:
        return;
    case PNX_PTX_SINGLE:
        sample_one(rng, ap_view, &lesion->pieces[0]);
        lesion->n_pieces = 1;
        return;
    case PNX_PTX_APART: {
        /* An apical cap and a lateral-basal pocket of one lung, with aerated
         * lung between them. */
        pnx_ptx_crescent *a = &lesion->pieces[0], *b = &lesion->pieces[1];
        a->side = b->side = (int)pnx_rng_below(rng, 2);
        a->centre = uniform_in(rng, -1.75, -1.55);
        a->half_width = uniform_in(rng, 0.35, 0.45);
        b->centre = uniform_in(rng, 0.25, 0.45);
        b->half_width = uniform_in(rng, 0.3, 0.4);
        a->depth = uniform_in(rng, 0.03, 0.06);
        b->depth = uniform_in(rng, 0.025, 0.045);
        a->wobble_phase = uniform_in(rng, 0, 2 * PI);
        b->wobble_phase = uniform_in(rng, 0, 2 * PI);
        lesion->n_pieces = 2;
        return;
    }
    case PNX_PTX_OVERLAPPING: {
        /* Two annotations of one air collection that share a stretch. */
        pnx_ptx_crescent *a = &lesion->pieces[0], *b = &lesion->pieces[1];
        a->side = b->side = (int)pnx_rng_below(rng, 2);
        a->centre = uniform_in(rng, -1.45, -1.2);
        a->half_width = uniform_in(rng, 0.5, 0.65);
        b->centre = a->centre + uniform_in(rng, 0.55, 0.75);
        b->half_width = uniform_in(rng, 0.5, 0.65);
        a->depth = uniform_in(rng, 0.035, 0.06);
        b->depth = a->depth * uniform_in(rng, 0.8, 1.1);
        a->wobble_phase = uniform_in(rng, 0, 2 * PI);
        b->wobble_phase = uniform_in(rng, 0, 2 * PI);
        lesion->n_pieces = 2;
        return;
    }
    }
}

int pnx_ptx_crescent_contains(const pnx_chest_frame *f, const pnx_ptx_crescent *c,
                              double p, double q)
{
    double depth = pnx_chest_lung_depth(f, c->side, p, q);
    if (depth <= 0 || depth >= c->depth * 1.2)
        return 0;
    double cx, cq;
    pnx_chest_lung_centre(f, c->side, &cx, &cq);
    double phi = atan2(q - cq, pnx_chest_xl(c->side, p) - cx);
    double t = (phi - (c->centre - c->half_width)) / (2 * c->half_width);
    if (t <= 0 || t >= 1)
        return 0;
    double wobble = 1.0 + 0.12 * sin(5 * phi + c->wobble_phase)
                  + 0.05 * sin(13 * phi + 2 * c->wobble_phase);
    /* Air collects against the ribs, not along the mediastinum. */
    double xl = pnx_chest_xl(c->side, p);
    double lateral = (xl - 0.07) / 0.06;
    lateral = lateral < 0 ? 0 : lateral > 1 ? 1 : lateral * lateral * (3 - 2 * lateral);
    double gap = c->depth * pow(sin(PI * t), 0.6) * wobble * lateral;
    return depth < gap;
}

uint64_t pnx_ptx_rasterize(const pnx_chest_frame *f, const pnx_ptx_crescent *c,
                           pnx_image *mask)
{
    uint64_t n = 0;
    for (uint32_t y = 0; y < mask->height; y++) {
        for (uint32_t x = 0; x < mask->width; x++) {
            double p, q;
            pnx_chest_pixel_to_anatomy(f, x, y, &p, &q);
            if (pnx_ptx_crescent_contains(f, c, p, q)) {
                mask->pixels[(size_t)y * mask->width + x] = 1;
                n++;
            }
        }
    }
    return n;
}
