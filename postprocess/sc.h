/*
 * postprocess/sc.h — the overlay picture as a DICOM Secondary Capture, for
 * PACS viewers that do not display SEG.
 *
 * Writes an RGB Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7) in the
 * source's patient and study, a new series, Conversion Type WSD, Derivation
 * and Source Image references to the source, Burned In Annotation "NO", the
 * source's lossy-compression history carried over; Explicit VR Little Endian,
 * written atomically. Every DCMTK exception is caught inside.
 */
#ifndef PNX_POSTPROCESS_SC_H
#define PNX_POSTPROCESS_SC_H

#include "postprocess/dicom_source.h"
#include "postprocess/overlay.h"
#include "postprocess/seg.h"

/* Deterministic UIDs for the Secondary Capture of src (roles "sc-series",
 * "sc-instance"); the dimension organization UID is left empty. */
int pnx_sc_uids_derive(const pnx_dicom_source *src, const char *model_hash,
                       const char *settings, pnx_generated_uids *uids);

typedef struct pnx_sc_options {
    const pnx_generated_uids *uids;  /* required */
    const char *series_description;  /* NULL = "pneumoseg overlay" */
    const char *derivation_description; /* NULL = "Pneumothorax segmentation overlay" */
    int series_number;               /* 0 = 902 */
    int instance_number;             /* 0 = 1 */
    const char *content_datetime;    /* "YYYYMMDDHHMMSS" or NULL = now */
} pnx_sc_options;

int pnx_sc_write_rgb(const char *path, const pnx_dicom_source *src, const pnx_rgb_image *picture,
                     const pnx_sc_options *options);

#endif
