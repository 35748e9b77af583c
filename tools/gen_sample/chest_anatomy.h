/*
 * tools/gen_sample/chest_anatomy.h — the geometry of a synthetic chest
 * radiograph: where body, lungs, heart and bones are.
 *
 * Anatomy is described in "anatomy coordinates" (p, q) in [0, 1]²: p runs
 * from the image left (the patient's right on a PA or AP radiograph) to the
 * right, q from head to feet. Each lung is described in its own mirrored
 * coordinates (xl, q), xl being the distance from the midline towards that
 * lung's chest wall, so one set of curves serves both sides.
 *
 * A study's pose (scale, shift, small rotation) maps anatomy coordinates to
 * pixels; the patient's anatomy stays the same across their studies.
 * Everything here is a pure function of the parameters: no state, no I/O.
 */
#ifndef PNX_TOOLS_CHEST_ANATOMY_H
#define PNX_TOOLS_CHEST_ANATOMY_H

#include <stdint.h>

#include "common/rng.h"

enum { PNX_SIDE_RIGHT = 0, /* patient's right = image left */
       PNX_SIDE_LEFT = 1 };

/* One patient's body: drawn once per patient. */
typedef struct pnx_chest_anatomy {
    int female;
    double body_half_width;     /* torso half-width, anatomy units */
    double apex_q[2];           /* highest point of each lung */
    double lateral_xl[2];       /* widest lateral extent of each lung */
    double dome_q[2];           /* top of each hemidiaphragm */
    double heart_cx, heart_cy;  /* heart centre (p, q) */
    double heart_rx_left, heart_rx_right, heart_ry;
    double rib_first_q;         /* where the first posterior rib meets the spine */
    double rib_spacing;
    double soft_tissue;         /* attenuation of the torso at its thickest */
    double lung_air;            /* attenuation removed by a full-thickness lung */
    uint64_t texture_seed;      /* vessel tree and lung texture of this patient */
} pnx_chest_anatomy;

/* One study's acquisition: drawn per study. */
typedef struct pnx_chest_pose {
    int ap_view;                /* 0 PA (standing), 1 AP (often supine: bigger heart, higher clavicles) */
    double scale;               /* >1 shows the anatomy larger */
    double shift_x, shift_y;    /* image units */
    double rotation;            /* radians */
    double exposure;            /* film curve steepness */
    double noise_sigma;         /* grey levels of quantum noise */
} pnx_chest_pose;

/* The map from pixels to anatomy for one image. */
typedef struct pnx_chest_frame {
    pnx_chest_anatomy anatomy;
    pnx_chest_pose pose;
    uint32_t size;              /* image is size × size pixels */
    double cos_r, sin_r;
} pnx_chest_frame;

void pnx_chest_anatomy_sample(pnx_rng *rng, int female, pnx_chest_anatomy *a);
void pnx_chest_pose_sample(pnx_rng *rng, int ap_view, pnx_chest_pose *pose);
void pnx_chest_frame_init(pnx_chest_frame *f, const pnx_chest_anatomy *a,
                          const pnx_chest_pose *pose, uint32_t size);

/* Pixel centre (x, y) → anatomy (p, q), and back. */
void pnx_chest_pixel_to_anatomy(const pnx_chest_frame *f, double x, double y,
                                double *p, double *q);
void pnx_chest_anatomy_to_pixel(const pnx_chest_frame *f, double p, double q,
                                double *x, double *y);
/* Anatomy units → pixels (lengths). */
double pnx_chest_pixels_per_unit(const pnx_chest_frame *f);

/* Mirrored lateral coordinate of p for a side. */
static inline double pnx_chest_xl(int side, double p)
{
    return side == PNX_SIDE_RIGHT ? 0.5 - p : p - 0.5;
}

/* How deep (p, q) lies inside the lung of `side`, in anatomy units: about
 * the distance to the nearest lung border (chest wall, apex, diaphragm,
 * mediastinum, heart), positive inside, negative outside. */
double pnx_chest_lung_depth(const pnx_chest_frame *f, int side, double p, double q);

/* The same, ignoring heart and aorta: the lung behind and in front of the
 * heart still holds some air. */
double pnx_chest_lung_outline_depth(const pnx_chest_frame *f, int side, double p, double q);

/* Normalised elliptic radius of (p, q) from the heart's centre: < 1 inside. */
double pnx_chest_heart_rho(const pnx_chest_frame *f, double p, double q);

/* Height of the hemidiaphragm of `side` at lateral position xl. */
double pnx_chest_diaphragm_q(const pnx_chest_frame *f, int side, double xl);

/* Torso half-width at height q (neck, shoulders, chest). */
double pnx_chest_body_half_width(const pnx_chest_frame *f, double q);

/* The point around which pneumothorax windows are measured, in (xl, q). */
void pnx_chest_lung_centre(const pnx_chest_frame *f, int side, double *xl, double *q);

#endif
