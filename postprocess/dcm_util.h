/*
 * postprocess/dcm_util.h — internal to postprocess/: helpers shared by the
 * DCMTK adapters (seg_dcmtk.cc, sc_dcmtk.cc, dicom_source.cc). C++ only;
 * never included by C code or by other modules.
 */
#ifndef PNX_POSTPROCESS_DCM_UTIL_H
#define PNX_POSTPROCESS_DCM_UTIL_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>

extern "C" {
#include "postprocess/dicom_source.h"
}

/* Turns dcmseg's, dcmiod's and dcmfg's own warnings off (once per process):
 * they describe DCMTK's view of modules this writer fills on purpose (no
 * Frame of Reference, one frame) and would flood a batch's stderr. Errors
 * still come back as conditions. */
void pnx_dcm_quiet_writer_logs(void);

/* Records "what: DCMTK's condition text" and returns code. */
int pnx_dcm_fail(int code, const OFCondition &cond, const char *what);

/* Serialises ff as Explicit VR Little Endian with a fresh meta header into
 * path, atomically (common/fileio.h). */
int pnx_dcm_save_atomic(const char *path, DcmFileFormat &ff);

/* Puts the source's Specific Character Set, Patient and General Study
 * attributes into item (empty strings become empty type-2 values). */
int pnx_dcm_put_patient_study(DcmItem &item, const pnx_dicom_source *src);

/* Splits "YYYYMMDDHHMMSS" (or NULL: the current local time) into a DA and a
 * TM value. Fails on a malformed string. */
int pnx_dcm_datetime(const char *datetime, OFString &date, OFString &time);

#endif
