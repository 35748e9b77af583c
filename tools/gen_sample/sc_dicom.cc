// tools/gen_sample/sc_dicom.cc — DCMTK adapter behind sc_dicom.h: builds a
// SIIM-style Secondary Capture dataset around a JPEG stream and serialises
// it to memory. No DCMTK type leaves this file; every exception is caught.
#include "tools/gen_sample/sc_dicom.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>

extern "C" {
#include "common/error.h"
}

namespace {

struct Attribute {
    DcmTagKey tag;
    const char *value;
};

// Serialises a file format object through a memory stream; DCMTK hands the
// data back in buffer-sized pieces.
OFCondition serialise(DcmFileFormat &file, std::vector<uint8_t> &bytes)
{
    std::vector<char> chunk(1 << 20);
    DcmOutputBufferStream stream(chunk.data(), static_cast<offile_off_t>(chunk.size()));
    file.transferInit();
    OFCondition cond;
    do {
        cond = file.write(stream, EXS_JPEGProcess1, EET_ExplicitLength, nullptr);
        void *data = nullptr;
        offile_off_t len = 0;
        stream.flushBuffer(data, len);
        if (len > 0) {
            const uint8_t *p = static_cast<const uint8_t *>(data);
            bytes.insert(bytes.end(), p, p + len);
        }
    } while (cond == EC_StreamNotifyClient);
    file.transferEnd();
    return cond;
}

int build(const pnx_sc_fields *f, const uint8_t *jpeg, size_t jpeg_len,
          std::vector<uint8_t> &bytes)
{
    DcmFileFormat file;
    DcmDataset *ds = file.getDataset();
    char rows[16], columns[16];
    std::snprintf(rows, sizeof rows, "%u", f->rows);
    std::snprintf(columns, sizeof columns, "%u", f->columns);
    // The attributes of a SIIM file, in its order; empty strings are the
    // type-2 attributes SIIM leaves empty.
    const Attribute text[] = {
        {DCM_SpecificCharacterSet, "ISO_IR 100"},
        {DCM_SOPClassUID, UID_SecondaryCaptureImageStorage},
        {DCM_SOPInstanceUID, f->sop_instance_uid},
        {DCM_StudyDate, "19010101"},
        {DCM_StudyTime, "000000.00"},
        {DCM_AccessionNumber, ""},
        {DCM_Modality, "CR"},
        {DCM_ConversionType, "WSD"},
        {DCM_ReferringPhysicianName, ""},
        {DCM_SeriesDescription, std::strcmp(f->view_position, "AP") == 0 ? "view: AP" : "view: PA"},
        {DCM_PatientName, f->patient_id},
        {DCM_PatientID, f->patient_id},
        {DCM_PatientBirthDate, ""},
        {DCM_PatientSex, f->patient_sex},
        {DCM_PatientAge, f->patient_age},
        {DCM_BodyPartExamined, "CHEST"},
        {DCM_ViewPosition, f->view_position},
        {DCM_StudyInstanceUID, f->study_instance_uid},
        {DCM_SeriesInstanceUID, f->series_instance_uid},
        {DCM_StudyID, ""},
        {DCM_SeriesNumber, "1"},
        {DCM_InstanceNumber, "1"},
        {DCM_PatientOrientation, ""},
        {DCM_PhotometricInterpretation, "MONOCHROME2"},
        {DCM_PixelSpacing, f->pixel_spacing},
        {DCM_LossyImageCompression, "01"},
        {DCM_LossyImageCompressionMethod, "ISO_10918_1"},
    };
    for (const Attribute &a : text) {
        OFCondition c = ds->putAndInsertString(a.tag, a.value);
        if (c.bad())
            return pnx_fail(PNX_EFORMAT, "sc_dicom: cannot set %s: %s",
                            DcmTag(a.tag).getTagName(), c.text());
    }
    const struct { DcmTagKey tag; Uint16 value; } numbers[] = {
        {DCM_SamplesPerPixel, 1},
        {DCM_Rows, static_cast<Uint16>(f->rows)},
        {DCM_Columns, static_cast<Uint16>(f->columns)},
        {DCM_BitsAllocated, 8},
        {DCM_BitsStored, 8},
        {DCM_HighBit, 7},
        {DCM_PixelRepresentation, 0},
    };
    for (const auto &n : numbers) {
        OFCondition c = ds->putAndInsertUint16(n.tag, n.value);
        if (c.bad())
            return pnx_fail(PNX_EFORMAT, "sc_dicom: cannot set %s: %s",
                            DcmTag(n.tag).getTagName(), c.text());
    }

    // One fragment after an empty Basic Offset Table, as in the SIIM files.
    DcmPixelSequence *sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
    sequence->insert(new DcmPixelItem(DCM_PixelItemTag));
    DcmOffsetList offsets;
    std::vector<Uint8> copy(jpeg, jpeg + jpeg_len);
    OFCondition c = sequence->storeCompressedFrame(offsets, copy.data(),
                                                   static_cast<Uint32>(jpeg_len), 0);
    if (c.bad()) {
        delete sequence;
        return pnx_fail(PNX_EFORMAT, "sc_dicom: cannot store the JPEG fragment: %s", c.text());
    }
    DcmPixelData *pixels = new DcmPixelData(DCM_PixelData);
    pixels->putOriginalRepresentation(EXS_JPEGProcess1, nullptr, sequence);
    c = ds->insert(pixels, true);
    if (c.bad()) {
        delete pixels;
        return pnx_fail(PNX_EFORMAT, "sc_dicom: cannot insert the pixel data: %s", c.text());
    }

    c = serialise(file, bytes);
    if (c.bad())
        return pnx_fail(PNX_EFORMAT, "sc_dicom: cannot serialise the file: %s", c.text());
    return 0;
}

} // namespace

extern "C" int pnx_sc_dicom_encode(const pnx_sc_fields *fields, const uint8_t *jpeg,
                                   size_t jpeg_len, uint8_t **out, size_t *out_len)
{
    if (!fields || !jpeg || !out || !out_len || jpeg_len < 4 || jpeg_len > 0xFFFFFFF0u)
        return pnx_fail(PNX_EINVAL, "sc_dicom: bad arguments");
    const char *required[] = {fields->study_instance_uid, fields->series_instance_uid,
                              fields->sop_instance_uid, fields->patient_id,
                              fields->patient_sex, fields->patient_age,
                              fields->view_position, fields->pixel_spacing};
    for (const char *s : required)
        if (!s || !*s)
            return pnx_fail(PNX_EINVAL, "sc_dicom: a required field is empty");
    if (fields->rows == 0 || fields->columns == 0 || fields->rows > 65535 || fields->columns > 65535)
        return pnx_fail(PNX_EINVAL, "sc_dicom: bad size %u x %u", fields->rows, fields->columns);
    try {
        std::vector<uint8_t> bytes;
        int rc = build(fields, jpeg, jpeg_len, bytes);
        if (rc < 0)
            return rc;
        uint8_t *buf = static_cast<uint8_t *>(std::malloc(bytes.size()));
        if (!buf)
            return pnx_fail(PNX_ENOMEM, "sc_dicom: out of memory for %zu bytes", bytes.size());
        std::memcpy(buf, bytes.data(), bytes.size());
        *out = buf;
        *out_len = bytes.size();
        return 0;
    } catch (const std::bad_alloc &) {
        return pnx_fail(PNX_ENOMEM, "sc_dicom: out of memory");
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "sc_dicom: unexpected exception from DCMTK");
    }
}
