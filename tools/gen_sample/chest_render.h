/*
 * tools/gen_sample/chest_render.h — paints a synthetic chest radiograph.
 *
 * The picture is built as an attenuation map (soft tissue, air in the lungs
 * and trachea, bone, heart, abdomen and bowel gas, lung vessels and texture,
 * and on some films ECG leads lying on the patient), turned into
 * grey levels by a film curve, edge-enhanced as CR processing does, and
 * given quantum noise. Air is dark (MONOCHROME2).
 *
 * Where the lesion mask is set, the lung is a pneumothorax: the air reaches
 * the chest wall at full thickness (darker than the normal lung periphery),
 * vessels and lung texture are absent (ribs stay: they are chest wall), and
 * a thin bright visceral pleural line bounds the collapsed lung.
 *
 * Deterministic: the same frame, lesion and noise seed give the same bytes.
 */
#ifndef PNX_TOOLS_CHEST_RENDER_H
#define PNX_TOOLS_CHEST_RENDER_H

#include <stdint.h>

#include "common/image.h"
#include "tools/gen_sample/chest_anatomy.h"

typedef struct pnx_ptx_look {
    double extra_air;     /* attenuation removed inside the pneumothorax */
    double pleural_line;  /* attenuation added along the visceral pleura */
} pnx_ptx_look;

/* Paints f's radiograph into out (allocated by the caller, f->size square).
 * lesion is the union of all pneumothorax pieces (0/1, same size) or NULL;
 * look may be NULL when lesion is. Returns 0, PNX_EINVAL or PNX_ENOMEM. */
int pnx_chest_render(const pnx_chest_frame *f, const pnx_image *lesion,
                     const pnx_ptx_look *look, uint64_t noise_seed, pnx_image *out);

#endif
