/*
 * postprocess/dicom_source.cc — fills a pnx_dicom_source from a DICOM file's
 * header (DCMTK leaves long values such as Pixel Data on disk); see dicom_source.h.
 */
#include <cstring>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include "postprocess/dcm_util.h"

extern "C" {
#include "common/error.h"
#include "postprocess/uid.h"
}

namespace {

/* Copies all values of tag ('\\'-separated, padding stripped) into dst;
 * absent is "". Fails when the value does not fit. */
int copy_value(DcmItem &item, const DcmTagKey &tag, char *dst, size_t size)
{
    OFString value;
    dst[0] = '\0';
    if (item.findAndGetOFStringArray(tag, value).bad())
        return 0;
    if (value.size() >= size || std::memchr(value.c_str(), '\0', value.size()))
        return pnx_fail(PNX_EFORMAT, "%s is too long (%zu bytes) or malformed",
                        DcmTag(tag).getTagName(), value.size());
    std::memcpy(dst, value.c_str(), value.size() + 1);
    return 0;
}

/* The compression method a lossy transfer syntax implies, as Defined Terms
 * of Lossy Image Compression Method (0028,2114). */
const char *lossy_method_of(const DcmXfer &xfer)
{
    switch (xfer.getXfer()) {
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
        return "ISO_10918_1";
    case EXS_JPEGLSLossy:
        return "ISO_14495_1";
    case EXS_JPEG2000:
        return "ISO_15444_1";
    default:
        return "";
    }
}

int read_source(const char *path, pnx_dicom_source *src)
{
    DcmFileFormat ff;
    /* Values longer than this stay on disk (Pixel Data is never read). */
    const Uint32 max_read_length = 4096;
    OFCondition cond = ff.loadFile(path, EXS_Unknown, EGL_noChange, max_read_length);
    if (cond.bad())
        return pnx_dcm_fail(PNX_EIO, cond, path);
    DcmDataset &ds = *ff.getDataset();
    struct {
        const DcmTagKey tag;
        char *dst;
        size_t size;
    } fields[] = {
        {DCM_SpecificCharacterSet, src->specific_character_set, sizeof src->specific_character_set},
        {DCM_PatientName, src->patient_name, sizeof src->patient_name},
        {DCM_PatientID, src->patient_id, sizeof src->patient_id},
        {DCM_PatientBirthDate, src->patient_birth_date, sizeof src->patient_birth_date},
        {DCM_PatientSex, src->patient_sex, sizeof src->patient_sex},
        {DCM_StudyInstanceUID, src->study_instance_uid, sizeof src->study_instance_uid},
        {DCM_StudyDate, src->study_date, sizeof src->study_date},
        {DCM_StudyTime, src->study_time, sizeof src->study_time},
        {DCM_ReferringPhysicianName, src->referring_physician_name,
         sizeof src->referring_physician_name},
        {DCM_StudyID, src->study_id, sizeof src->study_id},
        {DCM_AccessionNumber, src->accession_number, sizeof src->accession_number},
        {DCM_StudyDescription, src->study_description, sizeof src->study_description},
        {DCM_SeriesInstanceUID, src->series_instance_uid, sizeof src->series_instance_uid},
        {DCM_SOPClassUID, src->sop_class_uid, sizeof src->sop_class_uid},
        {DCM_SOPInstanceUID, src->sop_instance_uid, sizeof src->sop_instance_uid},
        {DCM_PatientOrientation, src->patient_orientation, sizeof src->patient_orientation},
        {DCM_LossyImageCompressionMethod, src->lossy_method, sizeof src->lossy_method},
        {DCM_LossyImageCompressionRatio, src->lossy_ratio, sizeof src->lossy_ratio},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        int rc = copy_value(ds, fields[i].tag, fields[i].dst, fields[i].size);
        if (rc)
            return pnx_fail_prefix(rc, "%s", path);
    }
    Uint16 rows = 0, columns = 0;
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, columns);
    src->rows = rows;
    src->columns = columns;

    OFString flag;
    ds.findAndGetOFString(DCM_LossyImageCompression, flag);
    const DcmXfer xfer(ds.getOriginalXfer());
    src->lossy = flag == "01" || xfer.isLossy();
    if (src->lossy && src->lossy_method[0] == '\0') {
        const char *method = lossy_method_of(xfer);
        std::memcpy(src->lossy_method, method, std::strlen(method) + 1);
    }
    int rc = pnx_dicom_source_check(src);
    return rc ? pnx_fail_prefix(rc, "%s", path) : 0;
}

int terminated(const char *s, size_t size) { return std::memchr(s, '\0', size) != NULL; }

} // namespace

extern "C" int pnx_dicom_source_read(const char *path, pnx_dicom_source *src)
{
    if (!path || !src)
        return pnx_fail(PNX_EINVAL, "DICOM source: missing argument");
    std::memset(src, 0, sizeof *src);
    try {
        return read_source(path, src);
    } catch (const std::bad_alloc &) {
        return pnx_fail(PNX_ENOMEM, "%s: out of memory while reading the header", path);
    } catch (const std::exception &e) {
        return pnx_fail(PNX_EINTERNAL, "%s: DCMTK threw: %s", path, e.what());
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "%s: DCMTK threw", path);
    }
}

extern "C" int pnx_dicom_source_check(const pnx_dicom_source *src)
{
    if (!src)
        return pnx_fail(PNX_EINVAL, "DICOM source: none");
#define PNX_CHECK_TERMINATED(field)                                                      \
    if (!terminated(src->field, sizeof src->field))                                      \
        return pnx_fail(PNX_EINVAL, "DICOM source: " #field " is not terminated");
    PNX_CHECK_TERMINATED(specific_character_set)
    PNX_CHECK_TERMINATED(patient_name)
    PNX_CHECK_TERMINATED(patient_id)
    PNX_CHECK_TERMINATED(patient_birth_date)
    PNX_CHECK_TERMINATED(patient_sex)
    PNX_CHECK_TERMINATED(study_instance_uid)
    PNX_CHECK_TERMINATED(study_date)
    PNX_CHECK_TERMINATED(study_time)
    PNX_CHECK_TERMINATED(referring_physician_name)
    PNX_CHECK_TERMINATED(study_id)
    PNX_CHECK_TERMINATED(accession_number)
    PNX_CHECK_TERMINATED(study_description)
    PNX_CHECK_TERMINATED(series_instance_uid)
    PNX_CHECK_TERMINATED(sop_class_uid)
    PNX_CHECK_TERMINATED(sop_instance_uid)
    PNX_CHECK_TERMINATED(patient_orientation)
    PNX_CHECK_TERMINATED(lossy_method)
    PNX_CHECK_TERMINATED(lossy_ratio)
#undef PNX_CHECK_TERMINATED
    if (!pnx_uid_is_valid(src->study_instance_uid))
        return pnx_fail(PNX_EFORMAT, "DICOM source: Study Instance UID \"%s\" is missing or invalid",
                        src->study_instance_uid);
    if (!pnx_uid_is_valid(src->series_instance_uid))
        return pnx_fail(PNX_EFORMAT, "DICOM source: Series Instance UID \"%s\" is missing or invalid",
                        src->series_instance_uid);
    if (!pnx_uid_is_valid(src->sop_class_uid))
        return pnx_fail(PNX_EFORMAT, "DICOM source: SOP Class UID \"%s\" is missing or invalid",
                        src->sop_class_uid);
    if (!pnx_uid_is_valid(src->sop_instance_uid))
        return pnx_fail(PNX_EFORMAT, "DICOM source: SOP Instance UID \"%s\" is missing or invalid",
                        src->sop_instance_uid);
    if (src->rows == 0 || src->columns == 0 || src->rows > 65535 || src->columns > 65535)
        return pnx_fail(PNX_EFORMAT, "DICOM source: image size %ux%u out of range", src->columns,
                        src->rows);
    return 0;
}
