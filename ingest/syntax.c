/*
 * ingest/syntax.c — transfer syntax names and support, error kind names,
 * default limits and the content sniff: the small tables of ingest/.
 */
#include "ingest/syntax.h"

#include <string.h>

#include "ingest/ingest.h"

#define UID_JPEG_BASELINE "1.2.840.10008.1.2.4.50"

struct syntax {
    const char *uid;
    const char *name;
    int supported;
};

static const struct syntax syntaxes[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", 1},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", 1},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", 1},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", 1},
    {UID_JPEG_BASELINE, "JPEG Baseline", 1},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended", 1},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless", 1},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", 1},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", 1},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", 1},
    {"1.2.840.10008.1.2.5", "RLE Lossless", 1},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000", 0},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000 lossy", 0},
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 lossless", 0},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2", 0},
    {"1.2.840.10008.1.2.4.94", "JPIP", 0},
    {"1.2.840.10008.1.2.4.95", "JPIP Deflate", 0},
    {"1.2.840.10008.1.2.4.100", "MPEG-2", 0},
    {"1.2.840.10008.1.2.4.101", "MPEG-2 High Level", 0},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264", 0},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD", 0},
    {"1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 2D", 0},
    {"1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 3D", 0},
    {"1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo", 0},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main", 0},
    {"1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10", 0},
    {"1.2.840.10008.1.2.4.201", "HTJ2K Lossless", 0},
    {"1.2.840.10008.1.2.4.202", "HTJ2K Lossless RPCL", 0},
    {"1.2.840.10008.1.2.4.203", "HTJ2K", 0},
    {"1.2.840.10008.1.2.4.110", "JPEG XL Lossless", 0},
    {"1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression", 0},
    {"1.2.840.10008.1.2.4.112", "JPEG XL", 0},
    {"1.2.840.10008.1.2.6.1", "RFC 2557 MIME", 0},
    {"1.2.840.10008.1.2.6.2", "XML", 0},
};

static const struct syntax *find_syntax(const char *uid)
{
    for (size_t i = 0; i < sizeof syntaxes / sizeof syntaxes[0]; i++)
        if (strcmp(syntaxes[i].uid, uid) == 0)
            return &syntaxes[i];
    return NULL;
}

const char *pnx_transfer_syntax_name(const char *uid)
{
    const struct syntax *s = uid ? find_syntax(uid) : NULL;
    if (s)
        return s->name;
    if (uid && strncmp(uid, "1.2.840.10008.1.2.4.", 20) == 0)
        return "JPEG family, retired or unknown process";
    return "unknown";
}

int pnx_transfer_syntax_supported(const char *uid)
{
    const struct syntax *s = uid ? find_syntax(uid) : NULL;
    return s && s->supported;
}

int pnx_transfer_syntax_is_jpeg_baseline(const char *uid)
{
    return uid && strcmp(uid, UID_JPEG_BASELINE) == 0;
}

static const char *const kind_names[PNX_INGEST_ERR_KIND_COUNT] = {
    [PNX_INGEST_OK] = "ok",
    [PNX_INGEST_ERR_IO] = "io",
    [PNX_INGEST_ERR_NOT_DICOM] = "not_dicom",
    [PNX_INGEST_ERR_TRUNCATED] = "truncated",
    [PNX_INGEST_ERR_MALFORMED] = "malformed",
    [PNX_INGEST_ERR_UNSUPPORTED_SYNTAX] = "unsupported_syntax",
    [PNX_INGEST_ERR_COLOUR] = "colour",
    [PNX_INGEST_ERR_MULTIFRAME] = "multiframe",
    [PNX_INGEST_ERR_TOO_LARGE] = "too_large",
    [PNX_INGEST_ERR_NO_PIXELS] = "no_pixels",
    [PNX_INGEST_ERR_DECODE] = "decode",
    [PNX_INGEST_ERR_MEMORY] = "memory",
    [PNX_INGEST_ERR_CRASH] = "crash",
    [PNX_INGEST_ERR_TIMEOUT] = "timeout",
};

const char *pnx_ingest_error_kind_name(int kind)
{
    if (kind < 0 || kind >= PNX_INGEST_ERR_KIND_COUNT || !kind_names[kind])
        return "unknown";
    return kind_names[kind];
}

void pnx_ingest_limits_default(pnx_ingest_limits *limits)
{
    limits->max_pixels = PNX_INGEST_DEFAULT_MAX_PIXELS;
    limits->max_bits = PNX_INGEST_DEFAULT_MAX_BITS;
    limits->memory_limit_mb = PNX_INGEST_DEFAULT_MEMORY_MB;
    limits->timeout_s = PNX_INGEST_DEFAULT_TIMEOUT_S;
}

/* DICOM Part 10 files: 128-byte preamble, then "DICM". */
#define PREAMBLE_LEN 128
#define MAGIC_END 132

static int is_vr(const uint8_t *p)
{
    static const char vrs[] = "AEASATCSDADSDTFLFDISLOLTOBODOFOLOVOWPNSHSLSQSSSTSVTMUCUIULUNURUSUTUV";
    for (size_t i = 0; i + 1 < sizeof vrs; i += 2)
        if (p[0] == (uint8_t)vrs[i] && p[1] == (uint8_t)vrs[i + 1])
            return 1;
    return 0;
}

int pnx_ingest_sniff(const uint8_t *head, size_t len)
{
    if (len >= MAGIC_END && memcmp(head + PREAMBLE_LEN, "DICM", 4) == 0)
        return 1;
    if (len < 8)
        return 0;
    /* A raw dataset (no preamble): it starts with a little-endian element of
     * the file meta (0002) or identifying (0008) group, whose next bytes are
     * either an explicit VR or a short implicit length. */
    unsigned group = (unsigned)head[0] | (unsigned)head[1] << 8;
    if (group != 0x0002 && group != 0x0008)
        return 0;
    if (is_vr(head + 4))
        return 1;
    uint32_t implicit_len = (uint32_t)head[4] | (uint32_t)head[5] << 8 |
                            (uint32_t)head[6] << 16 | (uint32_t)head[7] << 24;
    return implicit_len < 0x10000;
}
