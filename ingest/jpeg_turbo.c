/* ingest/jpeg_turbo.c — see jpeg_turbo.h. */
#include "ingest/jpeg_turbo.h"

#ifdef PNX_HAVE_TURBOJPEG

#include <turbojpeg.h>

int pnx_jpeg_turbo_available(void)
{
    return 1;
}

int pnx_jpeg_turbo_decode_gray(const uint8_t *jpeg, size_t len, uint32_t columns,
                               uint32_t rows, uint8_t *out)
{
    if (len == 0 || len > (size_t)0xFFFFFFFFu)
        return -1;
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return -1;
    int width = 0, height = 0, subsamp = 0, colorspace = 0;
    int rc = -1;
    /* The header first: size and colour space before a single pixel. */
    if (tjDecompressHeader3(tj, jpeg, (unsigned long)len, &width, &height, &subsamp,
                            &colorspace) == 0 &&
        colorspace == TJCS_GRAY && (uint32_t)width == columns && (uint32_t)height == rows) {
        /* TJFLAG_ACCURATEDCT: the integer IDCT that DCMTK's IJG codec uses. */
        int d = tjDecompress2(tj, jpeg, (unsigned long)len, out, width, 0, height, TJPF_GRAY,
                              TJFLAG_ACCURATEDCT);
        if (d == 0 || tjGetErrorCode(tj) == TJERR_WARNING)
            rc = 0;
    }
    tjDestroy(tj);
    return rc;
}

#else

int pnx_jpeg_turbo_available(void)
{
    return 0;
}

int pnx_jpeg_turbo_decode_gray(const uint8_t *jpeg, size_t len, uint32_t columns,
                               uint32_t rows, uint8_t *out)
{
    (void)jpeg;
    (void)len;
    (void)columns;
    (void)rows;
    (void)out;
    return -1;
}

#endif
