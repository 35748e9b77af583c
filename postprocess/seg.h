/*
 * postprocess/seg.h — the DICOM Segmentation writer.
 *
 * Writes one BINARY Segmentation object (SOP Class 1.2.840.10008.5.1.4.1.1.66.4)
 * for one single-frame source image and its 0/1 mask, with DCMTK's dcmseg:
 *   - same patient and study as the source, a new series (Modality SEG);
 *   - one segment, "Pneumothorax" (SNOMED CT 36118008, category "Morphologically
 *     Abnormal Structure" 49755003), algorithm type AUTOMATIC with the given
 *     algorithm name and version; content label, description and creator;
 *   - one frame referencing the source in the Derivation Image and Source
 *     Image sequences (purpose of reference: DCM 121322 "Source image for
 *     image processing operation"; derivation DCM 113076 "Segmentation"),
 *     and in the Referenced Series Sequence;
 *   - no Frame of Reference module (a radiograph has none; none is invented);
 *   - Lossy Image Compression "01" with the source's method and ratio when the
 *     source was lossy-compressed;
 *   - pixels packed by this module, bit for bit, whatever rows × columns is
 *     (DCMTK 3.6.7 packs BINARY frames wrongly when it is not a multiple of 8).
 * The file is Explicit VR Little Endian, written atomically (temporary name,
 * fsync, rename, fsync of the folder): never half-written under its name.
 * Every DCMTK exception is caught inside; failures return PNX_E… codes.
 */
#ifndef PNX_POSTPROCESS_SEG_H
#define PNX_POSTPROCESS_SEG_H

#include "common/image.h"
#include "postprocess/dicom_source.h"

/* The UIDs of one generated object. */
typedef struct pnx_generated_uids {
    char series_instance_uid[PNX_UID_BUF];
    char sop_instance_uid[PNX_UID_BUF];
    char dimension_organization_uid[PNX_UID_BUF]; /* SEG only */
} pnx_generated_uids;

/* Deterministic UIDs for the SEG of src (see uid.h): the series UID derives
 * from the source *series* UID, so every SEG of one source series under one
 * model and settings lands in one SEG series; the instance UID from the
 * source SOP Instance UID; the dimension organization UID from the model
 * and settings only. */
int pnx_seg_uids_derive(const pnx_dicom_source *src, const char *model_hash,
                        const char *settings, pnx_generated_uids *uids);
/* Random UIDs from DCMTK's generator. */
int pnx_seg_uids_random(pnx_generated_uids *uids);

typedef struct pnx_seg_options {
    const pnx_generated_uids *uids;  /* required */
    const char *algorithm_name;      /* required, LO ≤ 64, e.g. "pneumoseg U-Net" */
    const char *algorithm_version;   /* required, LO ≤ 64, e.g. "0.1.0 model 3fa2c1d0" */
    const char *content_label;       /* CS ≤ 16, NULL = "PNEUMOTHORAX" */
    const char *content_description; /* LO, NULL = "Pneumothorax segmentation" */
    const char *content_creator;     /* PN, NULL = "pneumoseg^" */
    const char *series_description;  /* LO, NULL = "pneumoseg pneumothorax" */
    int series_number;               /* ≥ 0; 0 = 901 */
    int instance_number;             /* ≥ 0; 0 = 1 */
    /* "YYYYMMDDHHMMSS" for Content/Series/Instance Creation date and time;
     * NULL = now. Fixing it makes the whole file reproducible byte for byte. */
    const char *content_datetime;
    /* When the mask is empty: 0 writes a SEG whose one segment has an empty
     * frame; non-zero writes nothing (and *written says so). */
    int skip_if_empty;
} pnx_seg_options;

/* Writes the SEG of mask (0/1, width = src->columns, height = src->rows) to
 * path. *written (may be NULL) is 1 when a file was written, 0 when skipped
 * by skip_if_empty. The folder must exist. */
int pnx_seg_write(const char *path, const pnx_dicom_source *src, const pnx_image *mask,
                  const pnx_seg_options *options, int *written);

/* Reads back a SEG written by pnx_seg_write (or any single-segment, one-frame
 * BINARY SEG): its frame as a 0/1 mask, unpacked from the raw Pixel Data bits
 * (not through dcmseg, so a packing bug cannot hide itself). mask must be
 * unallocated; the caller frees it. For tests and for checking outputs. */
int pnx_seg_read_mask(const char *path, pnx_image *mask);

/* BINARY pixel packing as PS3.5 8.1.1 wants it: pixel i of the frame (row-major)
 * is bit (i mod 8) of byte i / 8, least significant bit first; the unused
 * high bits of the last byte are 0. packed holds (w*h + 7) / 8 bytes. */
void pnx_seg_pack_bits(const uint8_t *mask, size_t n_pixels, uint8_t *packed);
void pnx_seg_unpack_bits(const uint8_t *packed, size_t n_pixels, uint8_t *mask);

#endif
