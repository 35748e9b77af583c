/*
 * tools/gen_sample/sc_dicom.h — writes a SIIM-style Secondary Capture
 * DICOM file around an existing JPEG Baseline stream (C header over the
 * DCMTK adapter sc_dicom.cc).
 *
 * The dataset copies the attribute set of the SIIM-ACR files (see
 * sample_dicom/README.md): SOP class Secondary Capture, Modality CR,
 * ConversionType WSD, 8-bit MONOCHROME2, Lossy Image Compression 01 /
 * ISO_10918_1, empty type-2 attributes where SIIM has them, StudyDate
 * 19010101, one study = one series = one image. The JPEG bytes go in one
 * fragment after an empty Basic Offset Table, transfer syntax JPEG Baseline
 * (1.2.840.10008.1.2.4.50). The same fields give the same bytes.
 */
#ifndef PNX_TOOLS_SC_DICOM_H
#define PNX_TOOLS_SC_DICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnx_sc_fields {
    const char *study_instance_uid;
    const char *series_instance_uid;
    const char *sop_instance_uid;
    const char *patient_id;       /* also written as PatientName, like SIIM */
    const char *patient_sex;      /* "M" or "F" */
    const char *patient_age;      /* AS, e.g. "062Y" */
    const char *view_position;    /* "PA" or "AP" */
    const char *pixel_spacing;    /* DS pair, e.g. "0.168\\0.168" */
    uint32_t rows, columns;
} pnx_sc_fields;

/* Builds the file in memory: *out (malloc'd, caller frees) holds the whole
 * Part 10 file, preamble and meta header included. Returns 0, PNX_EINVAL
 * (a missing field or size), PNX_ENOMEM or PNX_EFORMAT (DCMTK refused). */
int pnx_sc_dicom_encode(const pnx_sc_fields *fields, const uint8_t *jpeg,
                        size_t jpeg_len, uint8_t **out, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
