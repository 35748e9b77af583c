/*
 * ingest/grayscale.c — the decoding rule of ingest/ingest.h as one lookup
 * table from raw sample to output byte: every step (bit extraction, sign,
 * rescale, VOI, inversion) depends on the raw value alone, except the
 * min–max range, which is found from the set of raw values present. A 16-bit
 * image therefore costs one pass to collect the values and one to map.
 */
#include "ingest/grayscale.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

enum voi_mode { VOI_WINDOW, VOI_IDENTITY, VOI_MINMAX };

int pnx_gray8_check_layout(const pnx_dicom_meta *m)
{
    if (m->bits_allocated != 8 && m->bits_allocated != 16)
        return pnx_fail(PNX_EFORMAT, "Bits Allocated %d (only 8 and 16 are supported)",
                        m->bits_allocated);
    if (m->bits_stored < 1 || m->bits_stored > m->bits_allocated)
        return pnx_fail(PNX_EFORMAT, "Bits Stored %d does not fit Bits Allocated %d",
                        m->bits_stored, m->bits_allocated);
    if (m->high_bit < m->bits_stored - 1 || m->high_bit >= m->bits_allocated)
        return pnx_fail(PNX_EFORMAT, "High Bit %d inconsistent with Bits Stored %d / Allocated %d",
                        m->high_bit, m->bits_stored, m->bits_allocated);
    if (m->pixel_representation != 0 && m->pixel_representation != 1)
        return pnx_fail(PNX_EFORMAT, "Pixel Representation %d (must be 0 or 1)",
                        m->pixel_representation);
    return 0;
}

static int32_t stored_value(uint32_t raw, const pnx_dicom_meta *m)
{
    unsigned shift = (unsigned)(m->high_bit + 1 - m->bits_stored);
    uint32_t mask = (m->bits_stored >= 32) ? 0xffffffffu : ((1u << m->bits_stored) - 1u);
    uint32_t v = (raw >> shift) & mask;
    if (m->pixel_representation == 1 && (v & (1u << (m->bits_stored - 1))))
        return (int32_t)v - (int32_t)(1u << m->bits_stored);
    return (int32_t)v;
}

static double rescaled(uint32_t raw, const pnx_dicom_meta *m)
{
    return (double)stored_value(raw, m) * m->rescale_slope + m->rescale_intercept;
}

static uint8_t to_byte(double y)
{
    if (!(y > 0.0)) /* also NaN */
        return 0;
    if (y >= 255.0)
        return 255;
    return (uint8_t)floor(y + 0.5);
}

/* PS3.3 C.11.2.1.2.1, linear function, onto 0..255. */
static uint8_t window_linear(double x, double c, double w)
{
    if (w <= 1.0)
        return x <= c - 0.5 ? 0 : 255;
    double lo = c - 0.5 - (w - 1.0) / 2.0;
    double hi = c - 0.5 + (w - 1.0) / 2.0;
    if (x <= lo)
        return 0;
    if (x > hi)
        return 255;
    return to_byte(((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0);
}

static enum voi_mode choose_mode(const pnx_dicom_meta *m)
{
    if (m->has_window && m->window_width >= 1.0 && isfinite(m->window_center))
        return VOI_WINDOW;
    if (m->bits_stored == 8 && m->pixel_representation == 0 && m->rescale_slope == 1.0 &&
        m->rescale_intercept == 0.0)
        return VOI_IDENTITY;
    return VOI_MINMAX;
}

int pnx_gray8_from_samples(const void *samples, size_t count, int bytes_per_sample,
                           const pnx_dicom_meta *m, uint8_t *out)
{
    if (bytes_per_sample != 1 && bytes_per_sample != 2)
        return pnx_fail(PNX_EINVAL, "bytes per sample %d", bytes_per_sample);
    int rc = pnx_gray8_check_layout(m);
    if (rc)
        return rc;
    if (bytes_per_sample * 8 != m->bits_allocated)
        return pnx_fail(PNX_EINVAL, "%d-byte samples for Bits Allocated %d", bytes_per_sample,
                        m->bits_allocated);
    if (!isfinite(m->rescale_slope) || !isfinite(m->rescale_intercept) || m->rescale_slope == 0.0)
        return pnx_fail(PNX_EFORMAT, "Rescale Slope/Intercept %g/%g unusable", m->rescale_slope,
                        m->rescale_intercept);

    const int invert = strcmp(m->photometric, "MONOCHROME1") == 0;
    enum voi_mode mode = choose_mode(m);
    if (mode == VOI_IDENTITY && !invert && bytes_per_sample == 1 && m->high_bit == 7) {
        /* The SIIM case: the stored bytes are the picture. */
        if (out != samples)
            memcpy(out, samples, count);
        return 0;
    }

    const size_t nraw = (size_t)1 << (8 * bytes_per_sample);
    const uint8_t *s8 = samples;
    const uint16_t *s16 = samples;
    uint8_t *lut = malloc(nraw);
    if (!lut)
        return pnx_fail(PNX_ENOMEM, "grayscale lookup table");

    double lo = 0.0, hi = 0.0;
    if (mode == VOI_MINMAX) {
        uint8_t *seen = calloc(nraw, 1);
        if (!seen) {
            free(lut);
            return pnx_fail(PNX_ENOMEM, "grayscale histogram");
        }
        if (bytes_per_sample == 1)
            for (size_t i = 0; i < count; i++)
                seen[s8[i]] = 1;
        else
            for (size_t i = 0; i < count; i++)
                seen[s16[i]] = 1;
        int first = 1;
        for (size_t r = 0; r < nraw; r++) {
            if (!seen[r])
                continue;
            double v = rescaled((uint32_t)r, m);
            if (first || v < lo)
                lo = v;
            if (first || v > hi)
                hi = v;
            first = 0;
        }
        free(seen);
    }

    for (size_t r = 0; r < nraw; r++) {
        uint8_t y;
        switch (mode) {
        case VOI_WINDOW:
            y = window_linear(rescaled((uint32_t)r, m), m->window_center, m->window_width);
            break;
        case VOI_IDENTITY:
            y = (uint8_t)stored_value((uint32_t)r, m);
            break;
        default:
            y = hi > lo ? to_byte((rescaled((uint32_t)r, m) - lo) / (hi - lo) * 255.0) : 0;
            break;
        }
        lut[r] = invert ? (uint8_t)(255 - y) : y;
    }

    if (bytes_per_sample == 1)
        for (size_t i = 0; i < count; i++)
            out[i] = lut[s8[i]];
    else
        for (size_t i = 0; i < count; i++)
            out[i] = lut[s16[i]];
    free(lut);
    return 0;
}
