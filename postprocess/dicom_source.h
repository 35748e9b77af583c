/*
 * postprocess/dicom_source.h — what a generated DICOM object (SEG, Secondary
 * Capture) needs to know about the image it was derived from.
 *
 * A plain, fixed-size, copyable struct: the scorer may fill it from the
 * metadata its decode workers already read (untrusted files are parsed in
 * workers, not in the writer), or pnx_dicom_source_read() fills it from a
 * file without loading its pixel data. Strings are the
 * raw attribute values in the source's character set, NUL-terminated,
 * without DICOM padding; "" means absent or empty.
 */
#ifndef PNX_POSTPROCESS_DICOM_SOURCE_H
#define PNX_POSTPROCESS_DICOM_SOURCE_H

#include <stdint.h>

#define PNX_UID_BUF 65   /* a UID (≤ 64 characters) and its terminator */
#define PNX_LO_BUF 257   /* LO/SH/CS/DA/TM/AS values (≤ 64 characters, multi-byte room) */
#define PNX_PN_BUF 325   /* PN: three component groups of ≤ 64 characters, multi-byte room */

typedef struct pnx_dicom_source {
    char specific_character_set[PNX_LO_BUF]; /* (0008,0005), all values, '\\'-separated */
    /* Patient module */
    char patient_name[PNX_PN_BUF];            /* (0010,0010) */
    char patient_id[PNX_LO_BUF];              /* (0010,0020) */
    char patient_birth_date[PNX_LO_BUF];      /* (0010,0030) */
    char patient_sex[PNX_LO_BUF];             /* (0010,0040) */
    /* General Study module */
    char study_instance_uid[PNX_UID_BUF];     /* (0020,000D), required */
    char study_date[PNX_LO_BUF];              /* (0008,0020) */
    char study_time[PNX_LO_BUF];              /* (0008,0030) */
    char referring_physician_name[PNX_PN_BUF]; /* (0008,0090) */
    char study_id[PNX_LO_BUF];                /* (0020,0010) */
    char accession_number[PNX_LO_BUF];        /* (0008,0050) */
    char study_description[PNX_LO_BUF];       /* (0008,1030) */
    /* The referenced image */
    char series_instance_uid[PNX_UID_BUF];    /* (0020,000E), required */
    char sop_class_uid[PNX_UID_BUF];          /* (0008,0016), required */
    char sop_instance_uid[PNX_UID_BUF];       /* (0008,0018), required */
    char patient_orientation[PNX_LO_BUF];     /* (0020,0020), e.g. "P\\F"; often empty */
    uint32_t rows;                            /* (0028,0010) */
    uint32_t columns;                         /* (0028,0011) */
    /* Lossy compression history: lossy is 1 when (0028,2110) says "01" or
     * the file's transfer syntax is lossy; method/ratio are (0028,2114) and
     * (0028,2112) as found ('\\'-separated), or the method implied by the
     * transfer syntax (e.g. "ISO_10918_1" for JPEG Baseline). */
    int lossy;
    char lossy_method[PNX_LO_BUF];
    char lossy_ratio[PNX_LO_BUF];
} pnx_dicom_source;

/* Reads the attributes above from a DICOM file; its pixel data is never
 * loaded. Meant for trusted files or for a worker process. Fails with
 * PNX_EFORMAT when a required UID, Rows or Columns is missing or a value does
 * not fit, PNX_EIO when the file cannot be read or parsed. */
int pnx_dicom_source_read(const char *path, pnx_dicom_source *src);

/* Checks a hand-filled struct: required UIDs present and valid, sizes in
 * 1..65535, every string terminated. */
int pnx_dicom_source_check(const pnx_dicom_source *src);

#endif
