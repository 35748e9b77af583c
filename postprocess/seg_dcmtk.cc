/*
 * postprocess/seg_dcmtk.cc — the DCMTK (dcmseg) side of the SEG writer and
 * reader; see seg.h for what the object holds. Every DCMTK call happens
 * inside the try blocks of the two extern "C" entry points.
 */
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include "postprocess/dcm_util.h"
#include "pneumoseg_version.h"

extern "C" {
#include "common/error.h"
#include "postprocess/seg.h"
#include "postprocess/uid.h"
}

namespace {

/* Segment coding (PS3.16 CID 7150 / CID 7151, SNOMED CT). */
const char *const CATEGORY_CODE = "49755003";
const char *const CATEGORY_MEANING = "Morphologically Abnormal Structure";
const char *const PNEUMOTHORAX_CODE = "36118008";
const char *const PNEUMOTHORAX_MEANING = "Pneumothorax";
/* CID 7162 "Surface Processing Algorithm Families": (123110, DCM, "Artificial Intelligence"). */
const char *const ALGORITHM_FAMILY_CODE = "123110";
const char *const ALGORITHM_FAMILY_MEANING = "Artificial Intelligence";
/* Pure red in the CIELab encoding of (0062,000D): L* 53.2, a* 80.1, b* 67.2,
 * scaled to 0..65535 as PS3.3 C.10.7.1.1 describes. */
const Uint16 RED_CIELAB_L = 34866, RED_CIELAB_A = 53477, RED_CIELAB_B = 50167;

const int DEFAULT_SERIES_NUMBER = 901;

int check_lo(const char *value, const char *what, size_t max_chars)
{
    if (value && std::strlen(value) > max_chars)
        return pnx_fail(PNX_EINVAL, "SEG: %s \"%s\" is longer than %zu characters", what, value,
                        max_chars);
    return 0;
}

int check_options(const pnx_dicom_source *src, const pnx_image *mask, const pnx_seg_options *opt)
{
    int rc = pnx_dicom_source_check(src);
    if (rc)
        return rc;
    if (!mask || !mask->pixels)
        return pnx_fail(PNX_EINVAL, "SEG: no mask");
    if (mask->width != src->columns || mask->height != src->rows)
        return pnx_fail(PNX_EINVAL, "SEG: mask is %ux%u but the source image is %ux%u", mask->width,
                        mask->height, src->columns, src->rows);
    if (!opt || !opt->uids)
        return pnx_fail(PNX_EINVAL, "SEG: no options or no UIDs");
    if (!pnx_uid_is_valid(opt->uids->series_instance_uid) ||
        !pnx_uid_is_valid(opt->uids->sop_instance_uid) ||
        !pnx_uid_is_valid(opt->uids->dimension_organization_uid))
        return pnx_fail(PNX_EINVAL, "SEG: a generated UID is missing or invalid");
    if (!opt->algorithm_name || !opt->algorithm_name[0] || !opt->algorithm_version ||
        !opt->algorithm_version[0])
        return pnx_fail(PNX_EINVAL, "SEG: algorithm name and version are required");
    if (opt->series_number < 0 || opt->instance_number < 0)
        return pnx_fail(PNX_EINVAL, "SEG: negative series or instance number");
    if ((rc = check_lo(opt->algorithm_name, "algorithm name", 64)) ||
        (rc = check_lo(opt->algorithm_version, "algorithm version", 64)) ||
        (rc = check_lo(opt->content_label, "content label", 16)) ||
        (rc = check_lo(opt->content_description, "content description", 64)) ||
        (rc = check_lo(opt->series_description, "series description", 64)))
        return rc;
    const size_t n = pnx_image_size(mask);
    for (size_t i = 0; i < n; i++)
        if (mask->pixels[i] > 1)
            return pnx_fail(PNX_EINVAL, "SEG: mask value %u at pixel %zu is not 0/1",
                            mask->pixels[i], i);
    return 0;
}

#define PNX_DCM_TRY(expr, what)                                                          \
    do {                                                                                 \
        OFCondition pnx_cond_ = (expr);                                                  \
        if (pnx_cond_.bad())                                                             \
            return pnx_dcm_fail(PNX_EINTERNAL, pnx_cond_, "SEG: " what);                 \
    } while (0)

int add_segment(DcmSegmentation &seg, const pnx_seg_options *opt)
{
    DcmSegment *raw = NULL;
    PNX_DCM_TRY(DcmSegment::create(raw, "Pneumothorax",
                                   CodeSequenceMacro(CATEGORY_CODE, "SCT", CATEGORY_MEANING),
                                   CodeSequenceMacro(PNEUMOTHORAX_CODE, "SCT", PNEUMOTHORAX_MEANING),
                                   DcmSegTypes::SAT_AUTOMATIC, opt->algorithm_name),
                "create segment");
    std::unique_ptr<DcmSegment> segment(raw);
    AlgorithmIdentificationMacro algo;
    algo.getAlgorithmFamilyCode().set(ALGORITHM_FAMILY_CODE, "DCM", ALGORITHM_FAMILY_MEANING);
    PNX_DCM_TRY(algo.setAlgorithmName(opt->algorithm_name), "algorithm name");
    PNX_DCM_TRY(algo.setAlgorithmVersion(opt->algorithm_version), "algorithm version");
    PNX_DCM_TRY(segment->setSegmentationAlgorithmIdentification(algo), "algorithm identification");
    PNX_DCM_TRY(segment->setSegmentDescription("Pneumothorax"), "segment description");
    PNX_DCM_TRY(segment->setRecommendedDisplayCIELabValue(RED_CIELAB_L, RED_CIELAB_A, RED_CIELAB_B),
                "display colour");
    Uint16 number = 0;
    PNX_DCM_TRY(seg.addSegment(segment.get(), number), "add segment");
    segment.release(); /* seg owns it now */
    return 0;
}

int add_frame(DcmSegmentation &seg, const pnx_dicom_source *src, const pnx_image *mask,
              const pnx_seg_options *opt)
{
    PNX_DCM_TRY(seg.getDimensions().addDimensionIndex(
                    DCM_ReferencedSegmentNumber, opt->uids->dimension_organization_uid,
                    DCM_SegmentIdentificationSequence, "Referenced Segment Number"),
                "dimension index");
    FGFrameContent content;
    PNX_DCM_TRY(content.setDimensionIndexValues(1, 0), "dimension index value");

    ImageSOPInstanceReferenceMacro ref;
    PNX_DCM_TRY(ref.setReferencedSOPClassUID(src->sop_class_uid), "referenced SOP class");
    PNX_DCM_TRY(ref.setReferencedSOPInstanceUID(src->sop_instance_uid), "referenced SOP instance");
    OFVector<ImageSOPInstanceReferenceMacro> refs;
    refs.push_back(ref);
    /* Derivation code DCM 113076 "Segmentation" and purpose of reference
     * DCM 121322 "Source image for image processing operation". */
    std::unique_ptr<FGDerivationImage> derivation(
        DcmSegmentation::createDerivationImageFG(refs, "Pneumothorax segmentation by pneumoseg"));
    if (!derivation)
        return pnx_fail(PNX_EINTERNAL, "SEG: cannot create the Derivation Image functional group");

    OFVector<FGBase *> per_frame;
    per_frame.push_back(&content);
    per_frame.push_back(derivation.get());
    /* dcmseg copies the frame and packs it (wrongly at some sizes); the
     * Pixel Data it writes is replaced after writeDataset. */
    std::vector<Uint8> frame(mask->pixels, mask->pixels + pnx_image_size(mask));
    PNX_DCM_TRY(seg.addFrame(frame.data(), 1, per_frame), "add frame");
    return 0;
}

int add_references(DcmSegmentation &seg, const pnx_dicom_source *src)
{
    IODReferences references;
    /* references owns the pointer once add() accepts it. */
    IODImageReference *ref = new IODImageReference(src->patient_id, src->study_instance_uid,
                                                   src->series_instance_uid, src->sop_instance_uid,
                                                   src->sop_class_uid);
    if (!references.add(ref)) {
        delete ref;
        return pnx_fail(PNX_EINTERNAL, "SEG: cannot add the source reference");
    }
    if (seg.getCommonInstanceReference().addReferences(references, src->study_instance_uid) != 1)
        return pnx_fail(PNX_EINTERNAL, "SEG: cannot add the Referenced Series Sequence");
    return 0;
}

/* Attributes dcmseg 3.6.7 cannot be told or overwrites on write: it always
 * writes Lossy Image Compression "00", and without a Frame of Reference the
 * General Image module needs Patient Orientation (type 2C). */
int patch_general_image(DcmDataset &ds, const pnx_dicom_source *src)
{
    PNX_DCM_TRY(ds.putAndInsertString(DCM_PatientOrientation, src->patient_orientation, OFFalse),
                "patient orientation");
    if (!src->lossy)
        return 0;
    PNX_DCM_TRY(ds.putAndInsertString(DCM_LossyImageCompression, "01"), "lossy compression flag");
    if (src->lossy_method[0])
        PNX_DCM_TRY(ds.putAndInsertString(DCM_LossyImageCompressionMethod, src->lossy_method, OFFalse),
                    "lossy compression method");
    else
        ds.findAndDeleteElement(DCM_LossyImageCompressionMethod);
    if (src->lossy_ratio[0])
        PNX_DCM_TRY(ds.putAndInsertString(DCM_LossyImageCompressionRatio, src->lossy_ratio, OFFalse),
                    "lossy compression ratio");
    else
        ds.findAndDeleteElement(DCM_LossyImageCompressionRatio);
    return 0;
}

int replace_pixel_data(DcmDataset &ds, const pnx_image *mask)
{
    const size_t n = pnx_image_size(mask);
    std::vector<Uint8> packed((n + 7) / 8);
    pnx_seg_pack_bits(mask->pixels, n, packed.data());
    PNX_DCM_TRY(ds.putAndInsertUint8Array(DCM_PixelData, packed.data(), (unsigned long)packed.size()),
                "pixel data");
    return 0;
}

int write_seg(const char *path, const pnx_dicom_source *src, const pnx_image *mask,
              const pnx_seg_options *opt)
{
    pnx_dcm_quiet_writer_logs();
    OFString date, time;
    int rc = pnx_dcm_datetime(opt->content_datetime, date, time);
    if (rc)
        return rc;
    char instance_number[16];
    std::snprintf(instance_number, sizeof instance_number, "%d",
                  opt->instance_number ? opt->instance_number : 1);
    char series_number[16];
    std::snprintf(series_number, sizeof series_number, "%d",
                  opt->series_number ? opt->series_number : DEFAULT_SERIES_NUMBER);

    IODGeneralEquipmentModule::EquipmentInfo equipment("pneumoseg", "pneumoseg", "0",
                                                       PNEUMOSEG_VERSION);
    ContentIdentificationMacro content(
        instance_number, opt->content_label ? opt->content_label : "PNEUMOTHORAX",
        opt->content_description ? opt->content_description : "Pneumothorax segmentation",
        opt->content_creator ? opt->content_creator : "pneumoseg^");
    DcmSegmentation *raw = NULL;
    PNX_DCM_TRY(DcmSegmentation::createBinarySegmentation(raw, (Uint16)src->rows,
                                                          (Uint16)src->columns, equipment, content),
                "create");
    std::unique_ptr<DcmSegmentation> seg(raw);

    DcmItem source_item;
    if ((rc = pnx_dcm_put_patient_study(source_item, src)))
        return pnx_fail_prefix(rc, "SEG");
    PNX_DCM_TRY(seg->importFromSourceImage(source_item, OFTrue), "import patient and study");
    /* A radiograph has no Frame of Reference; dcmseg requires one unless the
     * module is optional. */
    seg->getFrameOfReference().makeOptional();
    seg->getFrameOfReference().clearData();

    PNX_DCM_TRY(seg->getSeries().setSeriesInstanceUID(opt->uids->series_instance_uid),
                "series instance UID");
    PNX_DCM_TRY(seg->getSeries().setSeriesNumber(series_number), "series number");
    PNX_DCM_TRY(seg->getSeries().setSeriesDescription(
                    opt->series_description ? opt->series_description : "pneumoseg pneumothorax"),
                "series description");
    PNX_DCM_TRY(seg->getSeries().setSeriesDate(date), "series date");
    PNX_DCM_TRY(seg->getSeries().setSeriesTime(time), "series time");
    PNX_DCM_TRY(seg->getSOPCommon().setSOPInstanceUID(opt->uids->sop_instance_uid),
                "SOP instance UID");
    PNX_DCM_TRY(seg->getSOPCommon().setInstanceCreationDate(date), "instance creation date");
    PNX_DCM_TRY(seg->getSOPCommon().setInstanceCreationTime(time), "instance creation time");
    PNX_DCM_TRY(seg->getGeneralImage().setContentDate(date), "content date");
    PNX_DCM_TRY(seg->getGeneralImage().setContentTime(time), "content time");

    if ((rc = add_segment(*seg, opt)) || (rc = add_frame(*seg, src, mask, opt)) ||
        (rc = add_references(*seg, src)))
        return rc;

    DcmFileFormat ff;
    DcmDataset &ds = *ff.getDataset();
    PNX_DCM_TRY(seg->writeDataset(ds), "build dataset");
    if ((rc = patch_general_image(ds, src)) || (rc = replace_pixel_data(ds, mask)))
        return rc;
    return pnx_dcm_save_atomic(path, ff);
}

int read_mask(const char *path, pnx_image *mask)
{
    DcmFileFormat ff;
    OFCondition cond = ff.loadFile(path);
    if (cond.bad())
        return pnx_dcm_fail(PNX_EIO, cond, path);
    DcmDataset &ds = *ff.getDataset();
    OFString sop_class, seg_type;
    ds.findAndGetOFString(DCM_SOPClassUID, sop_class);
    ds.findAndGetOFString(DCM_SegmentationType, seg_type);
    if (sop_class != UID_SegmentationStorage || seg_type != "BINARY")
        return pnx_fail(PNX_EFORMAT, "%s: not a BINARY Segmentation", path);
    Uint16 rows = 0, columns = 0, bits = 0;
    Sint32 frames = 1;
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, columns);
    ds.findAndGetUint16(DCM_BitsAllocated, bits);
    ds.findAndGetSint32(DCM_NumberOfFrames, frames);
    if (rows == 0 || columns == 0 || bits != 1 || frames != 1)
        return pnx_fail(PNX_EFORMAT, "%s: expected one 1-bit frame, found %d of %ux%u, %u bits",
                        path, (int)frames, columns, rows, bits);
    const Uint8 *packed = NULL;
    unsigned long length = 0;
    cond = ds.findAndGetUint8Array(DCM_PixelData, packed, &length);
    const size_t n = (size_t)rows * columns;
    if (cond.bad() || !packed || length < (n + 7) / 8)
        return pnx_fail(PNX_EFORMAT, "%s: Pixel Data missing or shorter than %zu bytes", path,
                        (n + 7) / 8);
    int rc = pnx_image_alloc(mask, columns, rows);
    if (rc)
        return rc;
    pnx_seg_unpack_bits(packed, n, mask->pixels);
    return 0;
}

template <typename F> int guarded(const char *path, F body)
{
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return pnx_fail(PNX_ENOMEM, "SEG %s: out of memory", path);
    } catch (const std::exception &e) {
        return pnx_fail(PNX_EINTERNAL, "SEG %s: DCMTK threw: %s", path, e.what());
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "SEG %s: DCMTK threw", path);
    }
}

} // namespace

extern "C" int pnx_seg_write(const char *path, const pnx_dicom_source *src, const pnx_image *mask,
                             const pnx_seg_options *options, int *written)
{
    if (written)
        *written = 0;
    if (!path)
        return pnx_fail(PNX_EINVAL, "SEG: no path");
    int rc = check_options(src, mask, options);
    if (rc)
        return rc;
    if (options->skip_if_empty) {
        const size_t n = pnx_image_size(mask);
        size_t i = 0;
        while (i < n && mask->pixels[i] == 0)
            i++;
        if (i == n)
            return 0;
    }
    rc = guarded(path, [&] { return write_seg(path, src, mask, options); });
    if (rc == 0 && written)
        *written = 1;
    return rc;
}

extern "C" int pnx_seg_read_mask(const char *path, pnx_image *mask)
{
    if (!path || !mask)
        return pnx_fail(PNX_EINVAL, "SEG read: missing argument");
    int rc = guarded(path, [&] { return read_mask(path, mask); });
    if (rc)
        pnx_image_free(mask);
    return rc;
}
