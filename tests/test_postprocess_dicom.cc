/*
 * tests/test_postprocess_dicom.cc — DCMTK helpers for the postprocess tests;
 * see test_postprocess_dicom.h.
 */
#include "test_postprocess_dicom.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segutils.h>

extern "C" int pnx_test_make_source(const char *path, uint32_t rows, uint32_t columns, int lossy,
                                    const char *tag)
{
    try {
        DcmFileFormat ff;
        DcmDataset *ds = ff.getDataset();
        char study[65], series[65], instance[65];
        std::snprintf(study, sizeof study, "1.2.826.0.1.3680043.10.1234.%s.1", tag);
        std::snprintf(series, sizeof series, "1.2.826.0.1.3680043.10.1234.%s.2", tag);
        std::snprintf(instance, sizeof instance, "1.2.826.0.1.3680043.10.1234.%s.3", tag);
        const char *pairs[][2] = {{"0008,0005", "ISO_IR 100"},
                                  {"0008,0016", UID_SecondaryCaptureImageStorage},
                                  {"0008,0018", instance},
                                  {"0008,0020", "20240102"},
                                  {"0008,0030", "101112"},
                                  {"0008,0050", "ACC42"},
                                  {"0008,0060", "CR"},
                                  {"0008,0064", "WSD"},
                                  {"0008,0090", ""},
                                  {"0010,0010", "Test^P\xe9ter"},
                                  {"0010,0020", "PID-42"},
                                  {"0010,0030", ""},
                                  {"0010,0040", "O"},
                                  {"0020,000d", study},
                                  {"0020,000e", series},
                                  {"0020,0010", "S1"},
                                  {"0020,0011", "1"},
                                  {"0020,0013", "1"},
                                  {"0020,0020", ""},
                                  {"0028,0004", "MONOCHROME2"}};
        for (auto &p : pairs) {
            unsigned g = 0, e = 0;
            std::sscanf(p[0], "%x,%x", &g, &e);
            if (ds->putAndInsertString(DcmTagKey((Uint16)g, (Uint16)e), p[1]).bad())
                return -1;
        }
        ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
        ds->putAndInsertUint16(DCM_Rows, (Uint16)rows);
        ds->putAndInsertUint16(DCM_Columns, (Uint16)columns);
        ds->putAndInsertUint16(DCM_BitsAllocated, 8);
        ds->putAndInsertUint16(DCM_BitsStored, 8);
        ds->putAndInsertUint16(DCM_HighBit, 7);
        ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
        if (lossy) {
            ds->putAndInsertString(DCM_LossyImageCompression, "01");
            ds->putAndInsertString(DCM_LossyImageCompressionMethod, "ISO_10918_1");
        }
        std::vector<Uint8> pixels((size_t)rows * columns);
        for (size_t i = 0; i < pixels.size(); i++)
            pixels[i] = (Uint8)(i * 7 % 251);
        ds->putAndInsertUint8Array(DCM_PixelData, pixels.data(), (unsigned long)pixels.size());
        return ff.saveFile(path, EXS_LittleEndianExplicit).good() ? 0 : -1;
    } catch (...) {
        return -1;
    }
}

extern "C" int pnx_test_dicom_string(const char *path, uint16_t group, uint16_t element, char *out,
                                     size_t size)
{
    try {
        DcmFileFormat ff;
        if (ff.loadFile(path).bad())
            return -1;
        OFString value;
        if (ff.getDataset()->findAndGetOFStringArray(DcmTagKey(group, element), value, OFTrue).bad())
            return -1;
        std::snprintf(out, size, "%s", value.c_str());
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" long pnx_test_dicom_bytes(const char *path, uint16_t group, uint16_t element,
                                     uint8_t *out, size_t size)
{
    try {
        DcmFileFormat ff;
        if (ff.loadFile(path).bad())
            return -1;
        const Uint8 *bytes = NULL;
        unsigned long length = 0;
        if (ff.getDataset()->findAndGetUint8Array(DcmTagKey(group, element), bytes, &length).bad())
            return -1;
        std::memcpy(out, bytes, length < size ? length : size);
        return (long)length;
    } catch (...) {
        return -1;
    }
}

extern "C" int pnx_test_dicom_items(const char *path, uint16_t group, uint16_t element)
{
    try {
        DcmFileFormat ff;
        if (ff.loadFile(path).bad())
            return -1;
        DcmStack stack;
        if (ff.getDataset()->search(DcmTagKey(group, element), stack, ESM_fromHere, OFTrue).bad())
            return -1;
        DcmSequenceOfItems *seq = OFdynamic_cast(DcmSequenceOfItems *, stack.top());
        return seq ? (int)seq->card() : -1;
    } catch (...) {
        return -1;
    }
}

extern "C" int pnx_test_dcmseg_frame(const char *path, uint16_t rows, uint16_t cols, uint8_t *mask)
{
    try {
        DcmSegmentation *seg = NULL;
        if (DcmSegmentation::loadFile(path, seg).bad() || !seg)
            return -1;
        int rc = -1;
        const size_t n_pixels = (size_t)rows * cols;
        const DcmIODTypes::Frame *frame = seg->getFrame(0);
        if (frame) {
            DcmIODTypes::Frame *unpacked = DcmSegUtils::unpackBinaryFrame(frame, rows, cols);
            if (unpacked && unpacked->length >= n_pixels) {
                for (size_t i = 0; i < n_pixels; i++)
                    mask[i] = unpacked->pixData[i] != 0;
                rc = 0;
            }
            delete unpacked;
        }
        delete seg;
        return rc;
    } catch (...) {
        return -1;
    }
}
