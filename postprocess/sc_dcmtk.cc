/*
 * postprocess/sc_dcmtk.cc — the overlay as an RGB Secondary Capture Image,
 * built attribute by attribute with dcmdata; see sc.h.
 */
#include <cstdio>
#include <cstring>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include "postprocess/dcm_util.h"
#include "pneumoseg_version.h"

extern "C" {
#include "common/error.h"
#include "postprocess/sc.h"
#include "postprocess/uid.h"
}

namespace {

const int DEFAULT_SERIES_NUMBER = 902;

#define PNX_SC_PUT(expr, what)                                                           \
    do {                                                                                 \
        OFCondition pnx_cond_ = (expr);                                                  \
        if (pnx_cond_.bad())                                                             \
            return pnx_dcm_fail(PNX_EINTERNAL, pnx_cond_, "Secondary Capture: " what);   \
    } while (0)

int put_code(DcmItem &parent, const DcmTagKey &sequence, const char *value, const char *scheme,
             const char *meaning)
{
    DcmItem *item = NULL;
    PNX_SC_PUT(parent.findOrCreateSequenceItem(sequence, item, 0), "code sequence");
    PNX_SC_PUT(item->putAndInsertString(DCM_CodeValue, value), "code value");
    PNX_SC_PUT(item->putAndInsertString(DCM_CodingSchemeDesignator, scheme), "coding scheme");
    PNX_SC_PUT(item->putAndInsertString(DCM_CodeMeaning, meaning), "code meaning");
    return 0;
}

int put_derivation(DcmDataset &ds, const pnx_dicom_source *src, const pnx_sc_options *opt)
{
    PNX_SC_PUT(ds.putAndInsertString(DCM_DerivationDescription,
                                     opt->derivation_description
                                         ? opt->derivation_description
                                         : "Pneumothorax segmentation overlay"),
               "derivation description");
    /* DCM 113076 "Segmentation"; the source is referenced with purpose
     * DCM 121322 "Source image for image processing operation". */
    int rc = put_code(ds, DCM_DerivationCodeSequence, "113076", "DCM", "Segmentation");
    if (rc)
        return rc;
    DcmItem *source = NULL;
    PNX_SC_PUT(ds.findOrCreateSequenceItem(DCM_SourceImageSequence, source, 0), "source image");
    PNX_SC_PUT(source->putAndInsertString(DCM_ReferencedSOPClassUID, src->sop_class_uid),
               "referenced SOP class");
    PNX_SC_PUT(source->putAndInsertString(DCM_ReferencedSOPInstanceUID, src->sop_instance_uid),
               "referenced SOP instance");
    return put_code(*source, DCM_PurposeOfReferenceCodeSequence, "121322", "DCM",
                    "Source image for image processing operation");
}

int write_sc(const char *path, const pnx_dicom_source *src, const pnx_rgb_image *picture,
             const pnx_sc_options *opt)
{
    OFString date, time;
    int rc = pnx_dcm_datetime(opt->content_datetime, date, time);
    if (rc)
        return rc;
    char series_number[16], instance_number[16];
    std::snprintf(series_number, sizeof series_number, "%d",
                  opt->series_number ? opt->series_number : DEFAULT_SERIES_NUMBER);
    std::snprintf(instance_number, sizeof instance_number, "%d",
                  opt->instance_number ? opt->instance_number : 1);

    DcmFileFormat ff;
    DcmDataset &ds = *ff.getDataset();
    if ((rc = pnx_dcm_put_patient_study(ds, src)))
        return pnx_fail_prefix(rc, "Secondary Capture");
    const struct {
        const DcmTagKey tag;
        const char *value;
    } fields[] = {
        {DCM_SOPClassUID, UID_SecondaryCaptureImageStorage},
        {DCM_SOPInstanceUID, opt->uids->sop_instance_uid},
        {DCM_InstanceCreationDate, date.c_str()},
        {DCM_InstanceCreationTime, time.c_str()},
        {DCM_Modality, "OT"},
        {DCM_SeriesInstanceUID, opt->uids->series_instance_uid},
        {DCM_SeriesNumber, series_number},
        {DCM_SeriesDescription, opt->series_description ? opt->series_description
                                                        : "pneumoseg overlay"},
        {DCM_SeriesDate, date.c_str()},
        /* Type 2C in General Series; a chest picture is of no one side. */
        {DCM_Laterality, ""},
        {DCM_SeriesTime, time.c_str()},
        {DCM_Manufacturer, "pneumoseg"},
        {DCM_ConversionType, "WSD"},
        {DCM_SecondaryCaptureDeviceManufacturer, "pneumoseg"},
        {DCM_SecondaryCaptureDeviceManufacturerModelName, "pneumoseg"},
        {DCM_SecondaryCaptureDeviceSoftwareVersions, PNEUMOSEG_VERSION},
        {DCM_DateOfSecondaryCapture, date.c_str()},
        {DCM_TimeOfSecondaryCapture, time.c_str()},
        {DCM_InstanceNumber, instance_number},
        {DCM_PatientOrientation, src->patient_orientation},
        {DCM_ContentDate, date.c_str()},
        {DCM_ContentTime, time.c_str()},
        {DCM_ImageType, "DERIVED\\SECONDARY"},
        {DCM_BurnedInAnnotation, "NO"},
        {DCM_PhotometricInterpretation, "RGB"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        PNX_SC_PUT(ds.putAndInsertString(fields[i].tag, fields[i].value, OFFalse), "attribute");
    if (src->lossy) {
        PNX_SC_PUT(ds.putAndInsertString(DCM_LossyImageCompression, "01"), "lossy flag");
        if (src->lossy_method[0])
            PNX_SC_PUT(ds.putAndInsertString(DCM_LossyImageCompressionMethod, src->lossy_method,
                                             OFFalse),
                       "lossy method");
        if (src->lossy_ratio[0])
            PNX_SC_PUT(ds.putAndInsertString(DCM_LossyImageCompressionRatio, src->lossy_ratio,
                                             OFFalse),
                       "lossy ratio");
    }
    if ((rc = put_derivation(ds, src, opt)))
        return rc;
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_SamplesPerPixel, 3), "samples per pixel");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_PlanarConfiguration, 0), "planar configuration");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_Rows, (Uint16)picture->height), "rows");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_Columns, (Uint16)picture->width), "columns");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_BitsAllocated, 8), "bits allocated");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_BitsStored, 8), "bits stored");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_HighBit, 7), "high bit");
    PNX_SC_PUT(ds.putAndInsertUint16(DCM_PixelRepresentation, 0), "pixel representation");
    const size_t bytes = (size_t)picture->width * picture->height * 3;
    PNX_SC_PUT(ds.putAndInsertUint8Array(DCM_PixelData, picture->rgb, (unsigned long)bytes),
               "pixel data");
    return pnx_dcm_save_atomic(path, ff);
}

} // namespace

extern "C" int pnx_sc_write_rgb(const char *path, const pnx_dicom_source *src,
                                const pnx_rgb_image *picture, const pnx_sc_options *options)
{
    if (!path || !picture || !picture->rgb || !options || !options->uids)
        return pnx_fail(PNX_EINVAL, "Secondary Capture: missing argument");
    int rc = pnx_dicom_source_check(src);
    if (rc)
        return rc;
    if (picture->width == 0 || picture->height == 0 || picture->width > 65535 ||
        picture->height > 65535)
        return pnx_fail(PNX_EINVAL, "Secondary Capture: picture size %ux%u out of range",
                        picture->width, picture->height);
    if (!pnx_uid_is_valid(options->uids->series_instance_uid) ||
        !pnx_uid_is_valid(options->uids->sop_instance_uid))
        return pnx_fail(PNX_EINVAL, "Secondary Capture: a generated UID is missing or invalid");
    if (options->series_number < 0 || options->instance_number < 0)
        return pnx_fail(PNX_EINVAL, "Secondary Capture: negative series or instance number");
    try {
        return write_sc(path, src, picture, options);
    } catch (const std::bad_alloc &) {
        return pnx_fail(PNX_ENOMEM, "Secondary Capture %s: out of memory", path);
    } catch (const std::exception &e) {
        return pnx_fail(PNX_EINTERNAL, "Secondary Capture %s: DCMTK threw: %s", path, e.what());
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "Secondary Capture %s: DCMTK threw", path);
    }
}
