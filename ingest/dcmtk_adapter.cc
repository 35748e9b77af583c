/*
 * ingest/dcmtk_adapter.cc — DCMTK behind a C interface: load a file with
 * large values left on disk, read the metadata, check the header against
 * the pixel budget, and only then decompress and hand the stored samples
 * to the C grayscale mapping. Every exception is caught here.
 */
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

extern "C" {
#include "common/error.h"
#include "common/image.h"
#include "ingest/dcmtk_adapter.h"
#include "ingest/grayscale.h"
#include "ingest/ingest.h"
#include "ingest/jpeg_turbo.h"
#include "ingest/syntax.h"
}

namespace {

/* Elements longer than this stay on disk until asked for, so reading the
 * header never allocates what a hostile length field claims. */
const Uint32 kLazyReadLength = 4096;

int fail(char *err, size_t errlen, int kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int fail(char *err, size_t errlen, int kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return kind;
}

void copy_trimmed(const OFString &s, char *dst, size_t n)
{
    size_t b = 0, e = s.length();
    while (b < e && (std::isspace((unsigned char)s[b]) || s[b] == '\0'))
        b++;
    while (e > b && (std::isspace((unsigned char)s[e - 1]) || s[e - 1] == '\0'))
        e--;
    size_t len = e - b;
    if (len >= n)
        len = n - 1;
    std::memcpy(dst, s.c_str() + b, len);
    dst[len] = '\0';
}

void get_string(DcmItem *ds, const DcmTagKey &tag, char *dst, size_t n, bool all_values)
{
    OFString s;
    dst[0] = '\0';
    OFCondition c = all_values ? ds->findAndGetOFStringArray(tag, s) : ds->findAndGetOFString(tag, s, 0);
    if (c.good())
        copy_trimmed(s, dst, n);
}

int get_int(DcmItem *ds, const DcmTagKey &tag, int absent)
{
    Uint16 v;
    return ds->findAndGetUint16(tag, v).good() ? (int)v : absent;
}

bool get_double(DcmItem *ds, const DcmTagKey &tag, unsigned long pos, double *out)
{
    Float64 v;
    if (ds->findAndGetFloat64(tag, v, pos).good()) {
        *out = v;
        return true;
    }
    return false;
}

void read_meta(DcmFileFormat &ff, pnx_dicom_meta *m)
{
    DcmDataset *ds = ff.getDataset();
    DcmMetaInfo *mi = ff.getMetaInfo();

    get_string(ds, DCM_PatientID, m->patient_id, sizeof m->patient_id, false);
    get_string(ds, DCM_StudyInstanceUID, m->study_uid, sizeof m->study_uid, false);
    get_string(ds, DCM_SeriesInstanceUID, m->series_uid, sizeof m->series_uid, false);
    get_string(ds, DCM_SOPInstanceUID, m->sop_uid, sizeof m->sop_uid, false);
    get_string(ds, DCM_SOPClassUID, m->sop_class_uid, sizeof m->sop_class_uid, false);
    get_string(ds, DCM_Modality, m->modality, sizeof m->modality, false);
    get_string(ds, DCM_PhotometricInterpretation, m->photometric, sizeof m->photometric, false);
    get_string(ds, DCM_ViewPosition, m->view_position, sizeof m->view_position, false);
    get_string(ds, DCM_LossyImageCompressionMethod, m->lossy_method, sizeof m->lossy_method, true);

    m->transfer_syntax[0] = '\0';
    if (mi)
        get_string(mi, DCM_TransferSyntaxUID, m->transfer_syntax, sizeof m->transfer_syntax, false);
    if (!m->transfer_syntax[0]) {
        DcmXfer x(ds->getOriginalXfer());
        if (x.getXfer() != EXS_Unknown)
            copy_trimmed(OFString(x.getXferID()), m->transfer_syntax, sizeof m->transfer_syntax);
    }

    m->rows = (uint32_t)get_int(ds, DCM_Rows, 0);
    m->columns = (uint32_t)get_int(ds, DCM_Columns, 0);
    m->bits_allocated = get_int(ds, DCM_BitsAllocated, 0);
    m->bits_stored = get_int(ds, DCM_BitsStored, m->bits_allocated);
    m->high_bit = get_int(ds, DCM_HighBit, m->bits_stored - 1);
    m->pixel_representation = get_int(ds, DCM_PixelRepresentation, 0);
    m->samples_per_pixel = get_int(ds, DCM_SamplesPerPixel, 1);

    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad())
        frames = 1;
    m->frames = frames;

    double r, c;
    if (get_double(ds, DCM_PixelSpacing, 0, &r) && get_double(ds, DCM_PixelSpacing, 1, &c)) {
        m->pixel_spacing_row = r;
        m->pixel_spacing_col = c;
        m->spacing_source = 1;
    } else if (get_double(ds, DCM_ImagerPixelSpacing, 0, &r) &&
               get_double(ds, DCM_ImagerPixelSpacing, 1, &c)) {
        m->pixel_spacing_row = r;
        m->pixel_spacing_col = c;
        m->spacing_source = 2;
    }

    m->rescale_slope = 1.0;
    m->rescale_intercept = 0.0;
    get_double(ds, DCM_RescaleSlope, 0, &m->rescale_slope);
    get_double(ds, DCM_RescaleIntercept, 0, &m->rescale_intercept);

    m->has_window = get_double(ds, DCM_WindowCenter, 0, &m->window_center) &&
                    get_double(ds, DCM_WindowWidth, 0, &m->window_width);
    if (!m->has_window)
        m->window_center = m->window_width = 0.0;
    DcmSequenceOfItems *voi = NULL;
    m->has_voi_lut = ds->findAndGetSequence(DCM_VOILUTSequence, voi).good() && voi && voi->card() > 0;

    char lossy[PNX_CS_MAX];
    get_string(ds, DCM_LossyImageCompression, lossy, sizeof lossy, false);
    m->lossy = std::strcmp(lossy, "01") == 0 ? 1 : std::strcmp(lossy, "00") == 0 ? 0 : -1;
    get_double(ds, DCM_LossyImageCompressionRatio, 0, &m->lossy_ratio);
}

/* The pixel budget: what decoding this header would cost. */
int check_budget(const pnx_ingest_limits *lim, const pnx_dicom_meta *m, char *err, size_t errlen)
{
    if (m->bits_allocated > lim->max_bits)
        return fail(err, errlen, PNX_INGEST_ERR_TOO_LARGE,
                    "Bits Allocated %d over the limit of %d", m->bits_allocated, lim->max_bits);
    int64_t pixels = (int64_t)m->rows * m->columns * m->frames *
                     (m->samples_per_pixel > 0 ? m->samples_per_pixel : 1);
    if (pixels > lim->max_pixels)
        return fail(err, errlen, PNX_INGEST_ERR_TOO_LARGE,
                    "%u×%u pixels × %d frame(s) × %d sample(s) over the budget of %lld pixels",
                    m->columns, m->rows, (int)m->frames, m->samples_per_pixel,
                    (long long)lim->max_pixels);
    return PNX_INGEST_OK;
}

/* Header checks, before any pixel is touched. */
int check_header(DcmDataset *ds, const pnx_ingest_limits *lim, const pnx_dicom_meta *m,
                 char *err, size_t errlen)
{
    if (!ds->tagExists(DCM_PixelData)) {
        if (m->rows || m->columns)
            return fail(err, errlen, PNX_INGEST_ERR_TRUNCATED,
                        "image attributes present but no Pixel Data (file cut short?)");
        return fail(err, errlen, PNX_INGEST_ERR_NO_PIXELS, "no Pixel Data (7FE0,0010)%s%s",
                    m->sop_class_uid[0] ? " in SOP class " : "", m->sop_class_uid);
    }
    if (m->transfer_syntax[0] && !pnx_transfer_syntax_supported(m->transfer_syntax))
        return fail(err, errlen, PNX_INGEST_ERR_UNSUPPORTED_SYNTAX,
                    "unsupported transfer syntax %s (%s)", m->transfer_syntax,
                    pnx_transfer_syntax_name(m->transfer_syntax));
    if (m->rows == 0 || m->columns == 0)
        return fail(err, errlen, PNX_INGEST_ERR_MALFORMED, "Rows/Columns missing or zero (%u×%u)",
                    m->rows, m->columns);
    if (m->frames < 1)
        return fail(err, errlen, PNX_INGEST_ERR_MALFORMED, "Number of Frames %d", (int)m->frames);
    int kind = check_budget(lim, m, err, errlen);
    if (kind != PNX_INGEST_OK)
        return kind;
    if (m->samples_per_pixel != 1 ||
        (std::strcmp(m->photometric, "MONOCHROME1") != 0 &&
         std::strcmp(m->photometric, "MONOCHROME2") != 0))
        return fail(err, errlen, PNX_INGEST_ERR_COLOUR,
                    "colour or non-grayscale image (Photometric Interpretation '%s', "
                    "Samples per Pixel %d): only MONOCHROME1/2 are supported",
                    m->photometric, m->samples_per_pixel);
    if (m->frames > 1)
        return fail(err, errlen, PNX_INGEST_ERR_MULTIFRAME,
                    "multi-frame image (%d frames): only single-frame images are supported",
                    (int)m->frames);
    if (pnx_gray8_check_layout(m) != 0)
        return fail(err, errlen, PNX_INGEST_ERR_MALFORMED, "%s", pnx_errmsg());
    return PNX_INGEST_OK;
}

/* JPEG Baseline, one 8-bit frame: libjpeg-turbo on the fragments as they
 * are in the file. Returns true when it produced the image; false leaves
 * the work to DCMTK (any doubt about the stream, or no libturbojpeg). */
bool decode_jpeg_baseline_fast(DcmElement *elem, const pnx_dicom_meta *m, pnx_image *image)
{
    if (!pnx_jpeg_turbo_available() || !pnx_transfer_syntax_is_jpeg_baseline(m->transfer_syntax) ||
        m->bits_allocated != 8 || m->bits_stored != 8 || m->samples_per_pixel != 1 ||
        m->frames != 1 || elem->ident() != EVR_PixelData)
        return false;
    DcmPixelData *pd = OFstatic_cast(DcmPixelData *, elem);
    DcmPixelSequence *seq = NULL;
    E_TransferSyntax xfer = DcmXfer(m->transfer_syntax).getXfer();
    if (pd->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq || seq->card() < 2)
        return false;
    /* Item 0 is the offset table; the frame is the rest, in order. */
    OFVector<Uint8> joined;
    const Uint8 *stream = NULL;
    size_t len = 0;
    for (unsigned long i = 1; i < seq->card(); i++) {
        DcmPixelItem *item = NULL;
        Uint8 *bytes = NULL;
        if (seq->getItem(item, i).bad() || !item || item->getUint8Array(bytes).bad() || !bytes)
            return false;
        size_t n = item->getLength();
        if (seq->card() == 2) {
            stream = bytes;
            len = n;
        } else {
            joined.insert(joined.end(), bytes, bytes + n);
        }
    }
    if (!stream) {
        stream = joined.data();
        len = joined.size();
    }
    if (pnx_image_alloc(image, m->columns, m->rows) != 0)
        return false;
    if (pnx_jpeg_turbo_decode_gray(stream, len, m->columns, m->rows, image->pixels) != 0 ||
        pnx_gray8_from_samples(image->pixels, pnx_image_size(image), 1, m, image->pixels) != 0) {
        pnx_image_free(image);
        return false;
    }
    return true;
}

int decode_pixels(DcmDataset *ds, const pnx_dicom_meta *m, pnx_image *image, char *err,
                  size_t errlen)
{
    DcmElement *elem = NULL;
    if (ds->findAndGetElement(DCM_PixelData, elem).bad() || !elem)
        return fail(err, errlen, PNX_INGEST_ERR_NO_PIXELS, "no Pixel Data (7FE0,0010)");
    const size_t bytes_per_sample = (size_t)m->bits_allocated / 8;
    const size_t count = (size_t)m->rows * m->columns;
    const size_t needed = count * bytes_per_sample;

    if (decode_jpeg_baseline_fast(elem, m, image))
        return PNX_INGEST_OK;

    DcmXfer xfer(ds->getOriginalXfer());
    if (xfer.isEncapsulated()) {
        OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (c == EC_MemoryExhausted)
            return fail(err, errlen, PNX_INGEST_ERR_MEMORY, "out of memory decoding %s pixel data",
                        pnx_transfer_syntax_name(m->transfer_syntax));
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
            return fail(err, errlen, PNX_INGEST_ERR_DECODE, "cannot decode %s pixel data: %s",
                        pnx_transfer_syntax_name(m->transfer_syntax), c.text());
    } else if (elem->getLength() < needed) {
        return fail(err, errlen, PNX_INGEST_ERR_TRUNCATED,
                    "pixel data shorter than declared: %lu bytes, %u×%u×%zu needs %zu",
                    (unsigned long)elem->getLength(), m->columns, m->rows, bytes_per_sample,
                    needed);
    }

    const void *samples = NULL;
    OFCondition c;
    if (bytes_per_sample == 1) {
        Uint8 *p = NULL;
        c = elem->getUint8Array(p);
        samples = p;
    } else {
        Uint16 *p = NULL;
        c = elem->getUint16Array(p);
        samples = p;
    }
    if (c == EC_MemoryExhausted)
        return fail(err, errlen, PNX_INGEST_ERR_MEMORY, "out of memory reading %lu bytes of pixel data",
                    (unsigned long)elem->getLength());
    if (c.bad() || !samples)
        return fail(err, errlen, PNX_INGEST_ERR_TRUNCATED, "cannot read pixel data: %s",
                    c.bad() ? c.text() : "no value (file cut short?)");
    if (elem->getLength() < needed)
        return fail(err, errlen, PNX_INGEST_ERR_TRUNCATED,
                    "pixel data shorter than declared: %lu bytes, %u×%u×%zu needs %zu",
                    (unsigned long)elem->getLength(), m->columns, m->rows, bytes_per_sample,
                    needed);

    if (pnx_image_alloc(image, m->columns, m->rows) != 0)
        return fail(err, errlen, PNX_INGEST_ERR_MEMORY, "%s", pnx_errmsg());
    if (pnx_gray8_from_samples(samples, count, (int)bytes_per_sample, m, image->pixels) != 0) {
        pnx_image_free(image);
        return fail(err, errlen, PNX_INGEST_ERR_MALFORMED, "%s", pnx_errmsg());
    }
    return PNX_INGEST_OK;
}

/* Says why DCMTK could not read a file, in the words of our error kinds. */
int classify_load_error(const OFCondition &c, const pnx_ingest_limits *lim,
                        const pnx_dicom_meta *m, char *err, size_t errlen)
{
    if (m->transfer_syntax[0] && !pnx_transfer_syntax_supported(m->transfer_syntax))
        return fail(err, errlen, PNX_INGEST_ERR_UNSUPPORTED_SYNTAX,
                    "unsupported transfer syntax %s (%s)", m->transfer_syntax,
                    pnx_transfer_syntax_name(m->transfer_syntax));
    /* A header that declares a huge image is refused for that, even when
     * the file is too short to hold it (the classic decompression bomb). */
    if (m->rows && m->columns) {
        int kind = check_budget(lim, m, err, errlen);
        if (kind != PNX_INGEST_OK)
            return kind;
    }
    /* The file passed the content sniff, so a stream that stops is a file
     * cut short (DCMTK says "Invalid stream" or "premature end"). */
    if (c == EC_InvalidStream || c == EC_StreamNotifyClient || c == EC_ElemLengthLargerThanItem ||
        c == EC_PrematureSequDelimitationItem || c == EC_SequEnd || c == EC_ItemEnd)
        return fail(err, errlen, PNX_INGEST_ERR_TRUNCATED, "file ends inside the dataset (%s)",
                    c.text());
    if (c == EC_MemoryExhausted)
        return fail(err, errlen, PNX_INGEST_ERR_MEMORY, "out of memory while parsing");
    return fail(err, errlen, PNX_INGEST_ERR_MALFORMED, "cannot parse the DICOM dataset: %s",
                c.text());
}

} // namespace

extern "C" int pnx_dcm_global_init(void)
{
    static bool done = false;
    if (done)
        return 0;
    try {
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
        if (!dcmDataDict.isDictionaryLoaded())
            return pnx_fail(PNX_EINTERNAL, "DCMTK has no data dictionary (DCMDICTPATH?)");
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "DCMTK initialisation failed");
    }
    done = true;
    return 0;
}

extern "C" void pnx_dcm_quiet(void)
{
    try {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    } catch (...) {
    }
}

extern "C" int pnx_dcm_decode(const char *path, const pnx_ingest_limits *limits, unsigned flags,
                              pnx_dicom_meta *meta, pnx_image *image, char *err, size_t errlen)
{
    err[0] = '\0';
    try {
        if (pnx_dcm_global_init() != 0)
            return fail(err, errlen, PNX_INGEST_ERR_CRASH, "%s", pnx_errmsg());
        DcmFileFormat ff;
        OFCondition c = ff.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, kLazyReadLength,
                                    ERM_autoDetect);
        read_meta(ff, meta);
        if (c.bad())
            return classify_load_error(c, limits, meta, err, errlen);
        DcmDataset *ds = ff.getDataset();
        int kind = check_header(ds, limits, meta, err, errlen);
        if (kind != PNX_INGEST_OK || !(flags & PNX_DECODE_PIXELS))
            return kind;
        return decode_pixels(ds, meta, image, err, errlen);
    } catch (const std::bad_alloc &) {
        pnx_image_free(image);
        return fail(err, errlen, PNX_INGEST_ERR_MEMORY, "out of memory in DCMTK");
    } catch (const std::exception &e) {
        pnx_image_free(image);
        return fail(err, errlen, PNX_INGEST_ERR_DECODE, "DCMTK exception: %s", e.what());
    } catch (...) {
        pnx_image_free(image);
        return fail(err, errlen, PNX_INGEST_ERR_DECODE, "unknown exception in DCMTK");
    }
}
