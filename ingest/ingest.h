/*
 * ingest/ingest.h — reading untrusted DICOM safely: walking a tree, reading
 * metadata, decoding pixels to 8-bit grayscale in isolated worker processes.
 *
 * The promise: no file, however malformed, can crash, hang or exhaust the
 * memory of the calling process. Every DICOM parse happens in a fork()ed
 * worker running under setrlimit (address space, CPU time); the header is
 * checked against a pixel budget before any pixel work; pixels come back
 * through a socket; a worker that dies or runs out of time becomes an error
 * for that one file and a fresh worker takes its place. The caller's
 * database connection is never used by a worker (create the pool before
 * opening worker threads of your own: workers are forked, not exec'ed).
 *
 * Decoding rule (what the model sees), applied in this order:
 *   1. Stored values are read as Bits Stored wide, signed when Pixel
 *      Representation is 1 (bits above Bits Stored are ignored).
 *   2. Modality rescale: v = stored × RescaleSlope + RescaleIntercept
 *      (slope 1, intercept 0 when absent).
 *   3. Value of interest, the first that applies:
 *      a. a Window Center/Width in the file: the first pair, with the DICOM
 *         linear function (PS3.3 C.11.2.1.2.1) onto 0..255;
 *      b. unsigned 8-bit input (Bits Stored 8) with no rescale: values as
 *         they are (what dcmj2pnm writes; the SIIM files are such);
 *      c. otherwise min–max of the rescaled image onto 0..255 (a constant
 *         image gives 0), rounding to nearest.
 *      A VOI LUT Sequence is recorded in the metadata but not applied.
 *   4. MONOCHROME1 is inverted (255 − v), so that air is dark as in
 *      MONOCHROME2.
 * Lossless syntaxes therefore give exactly the stored values for 8-bit
 * MONOCHROME2; JPEG Baseline gives the IJG (DCMTK) decoder's output: 8-bit
 * single-frame Baseline is decoded by libjpeg-turbo with the same accurate
 * integer IDCT (bit-identical, checked against dcmj2pnm), everything else
 * by DCMTK's codecs.
 *
 * Supported transfer syntaxes: implicit/explicit VR little endian, explicit
 * VR big endian, deflated explicit little endian, JPEG Baseline (process 1),
 * Extended (2 & 4), Lossless (14, 14 SV1), JPEG-LS lossless and near-
 * lossless, RLE Lossless. Everything else, colour and multi-frame images are
 * errors of their own kind (see enum pnx_ingest_error_kind).
 */
#ifndef PNX_INGEST_INGEST_H
#define PNX_INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

/* ---------------------------------------------------------------- limits */

/* What one file may cost a worker. Mirrors pnx_ingest_config of
 * pipeline/config.h (ingest/ does not include pipeline headers). */
typedef struct pnx_ingest_limits {
    int64_t max_pixels;  /* rows × columns × frames accepted; default 4096² */
    int max_bits;        /* largest Bits Allocated accepted (8..16); default 16 */
    int memory_limit_mb; /* RLIMIT_AS of a worker; 0 = no limit; default 2048.
                          * Ignored in sanitizer builds (ASan reserves
                          * terabytes of address space). */
    int timeout_s;       /* CPU seconds (RLIMIT_CPU) and wall seconds per file;
                          * default 60 (the defaults are those of pipeline.yaml) */
} pnx_ingest_limits;

#define PNX_INGEST_DEFAULT_MAX_PIXELS (4096 * 4096)
#define PNX_INGEST_DEFAULT_MAX_BITS 16
#define PNX_INGEST_DEFAULT_MEMORY_MB 2048
#define PNX_INGEST_DEFAULT_TIMEOUT_S 60

void pnx_ingest_limits_default(pnx_ingest_limits *limits);

/* ---------------------------------------------------------------- errors */

/* Why a file could not be used. The names (pnx_ingest_error_kind_name) are
 * what the database stores in error_kind. */
enum pnx_ingest_error_kind {
    PNX_INGEST_OK = 0,
    PNX_INGEST_ERR_IO,          /* "io": cannot open or read the file */
    PNX_INGEST_ERR_NOT_DICOM,   /* "not_dicom": empty, text, no DICM/dataset start */
    PNX_INGEST_ERR_TRUNCATED,   /* "truncated": the file ends inside the dataset
                                 * or the pixel data is shorter than declared */
    PNX_INGEST_ERR_MALFORMED,   /* "malformed": DICOM, but inconsistent,
                                 * missing a required attribute, or nesting
                                 * sequences deeper than any real file */
    PNX_INGEST_ERR_UNSUPPORTED_SYNTAX, /* "unsupported_syntax": JPEG 2000, … */
    PNX_INGEST_ERR_COLOUR,      /* "colour": Samples per Pixel ≠ 1 or RGB/YBR */
    PNX_INGEST_ERR_MULTIFRAME,  /* "multiframe": Number of Frames > 1 */
    PNX_INGEST_ERR_TOO_LARGE,   /* "too_large": over max_pixels / max_bits */
    PNX_INGEST_ERR_NO_PIXELS,   /* "no_pixels": no Pixel Data (SR, PR, …) */
    PNX_INGEST_ERR_DECODE,      /* "decode": the codec rejected the pixel data */
    PNX_INGEST_ERR_MEMORY,      /* "memory": the worker hit its memory limit */
    PNX_INGEST_ERR_CRASH,       /* "crash": the worker died (signal or exit) */
    PNX_INGEST_ERR_TIMEOUT,     /* "timeout": over timeout_s */
    PNX_INGEST_ERR_KIND_COUNT
};

/* "io", "not_dicom", …; "ok" for PNX_INGEST_OK; "unknown" out of range. */
const char *pnx_ingest_error_kind_name(int kind);

#define PNX_INGEST_MSG_MAX 512

/* ---------------------------------------------------------------- walking */

typedef struct pnx_ingest_file {
    char *path;          /* owned; the root joined with the relative path */
    int64_t size;        /* bytes */
    int looks_dicom;     /* 1: DICM preamble or a plausible dataset start;
                          * 0: named *.dcm but not recognised (it will fail
                          * as not_dicom, which is the point: it is reported) */
} pnx_ingest_file;

typedef struct pnx_ingest_file_list {
    pnx_ingest_file *files;
    size_t count;
    size_t capacity;
    size_t skipped;      /* regular files neither recognised nor named *.dcm,
                          * plus DICOMDIR files */
} pnx_ingest_file_list;

/* Walks root recursively (root may also be a single file) and lists the
 * candidate DICOM files, sorted by path. A file is a candidate when its
 * content looks like DICOM (128-byte preamble + "DICM", or a dataset that
 * starts with a group 0002/0008 element) or when its name ends in .dcm
 * (any case). DICOMDIR files are skipped. Symbolic links are followed, but
 * a folder already visited (same device and inode) is not entered again,
 * so link loops end. Reading the first 132 bytes is all the parsing the
 * walk does. Unreadable folders fail the walk (PNX_EIO). */
int pnx_ingest_walk(const char *root, pnx_ingest_file_list *out);
void pnx_ingest_file_list_free(pnx_ingest_file_list *list);

/* Cheap content sniff of a file's first bytes (at most 132 are looked at):
 * 1 when it looks like DICOM as described above, 0 otherwise. */
int pnx_ingest_sniff(const uint8_t *head, size_t len);

/* ---------------------------------------------------------------- metadata */

#define PNX_UID_MAX 65   /* 64 characters + NUL (PS3.5 UI) */
#define PNX_LO_MAX 65    /* LO: 64 characters + NUL */
#define PNX_CS_MAX 17    /* CS: 16 characters + NUL */

/* Attributes read from one file. Strings are NUL-terminated, trimmed, ""
 * when absent (longer values are cut). Numbers are 0 when absent unless
 * said otherwise. Patient names are deliberately not read. */
typedef struct pnx_dicom_meta {
    char patient_id[PNX_LO_MAX];            /* (0010,0020) */
    char study_uid[PNX_UID_MAX];            /* (0020,000D) */
    char series_uid[PNX_UID_MAX];           /* (0020,000E) */
    char sop_uid[PNX_UID_MAX];              /* (0008,0018) */
    char sop_class_uid[PNX_UID_MAX];        /* (0008,0016) */
    char transfer_syntax[PNX_UID_MAX];      /* (0002,0010), or the syntax the
                                             * dataset was read with */
    char modality[PNX_CS_MAX];              /* (0008,0060) */
    char photometric[PNX_CS_MAX];           /* (0028,0004) */
    char view_position[PNX_CS_MAX];         /* (0018,5101) */
    char lossy_method[PNX_LO_MAX];          /* (0028,2114), values joined by '\' */
    uint32_t rows;                          /* (0028,0010) */
    uint32_t columns;                       /* (0028,0011) */
    int bits_allocated;                     /* (0028,0100) */
    int bits_stored;                        /* (0028,0101) */
    int high_bit;                           /* (0028,0102) */
    int pixel_representation;               /* (0028,0103): 0 unsigned, 1 signed */
    int samples_per_pixel;                  /* (0028,0002); 1 when absent */
    int32_t frames;                         /* (0028,0008); 1 when absent */
    double pixel_spacing_row;               /* mm between rows; 0 when unknown */
    double pixel_spacing_col;               /* mm between columns */
    int spacing_source;                     /* 0 none, 1 Pixel Spacing (0028,0030),
                                             * 2 Imager Pixel Spacing (0018,1164) */
    double rescale_slope;                   /* (0028,1053); 1 when absent */
    double rescale_intercept;               /* (0028,1052); 0 when absent */
    int has_window;                         /* a Window Center/Width pair exists */
    double window_center;                   /* (0028,1050), first value */
    double window_width;                    /* (0028,1051), first value */
    int has_voi_lut;                        /* VOI LUT Sequence (0028,3010) present */
    int lossy;                              /* (0028,2110): 1 "01", 0 "00", -1 absent */
    double lossy_ratio;                     /* (0028,2112) first value; 0 absent */
    int64_t file_size;                      /* bytes */
} pnx_dicom_meta;

/* A short name for a transfer syntax UID ("JPEG Baseline", "JPEG 2000", …),
 * or "unknown". */
const char *pnx_transfer_syntax_name(const char *uid);

/* ---------------------------------------------------------------- decoding */

/* What a job asks for. */
enum pnx_decode_flags {
    PNX_DECODE_PIXELS = 1, /* decode the image; without it only metadata and
                            * the header checks (budget, syntax, colour,
                            * frames) are done */
    PNX_DECODE_TEST_CRASH = 1u << 30, /* test hook: the pool worker dies of
                            * SIGSEGV on this job, as a decoder crash would
                            * (ignored outside pool workers) */
};

/* The outcome for one file. On error, meta holds whatever was read before
 * the failure: meta.sop_uid[0] != '\0' tells whether the instance is known
 * (e.g. colour or unsupported syntax) or not (not DICOM, crash before the
 * UIDs were read). */
typedef struct pnx_decode_result {
    size_t index;                      /* the caller's tag from submit */
    char *path;                        /* owned copy of the submitted path */
    int error_kind;                    /* PNX_INGEST_OK or an error kind */
    char error[PNX_INGEST_MSG_MAX];    /* message when error_kind != OK */
    pnx_dicom_meta meta;
    pnx_image image;                   /* 8-bit grayscale; empty (NULL pixels)
                                        * on error or without PNX_DECODE_PIXELS */
    double decode_ms;                  /* wall time in the worker */
} pnx_decode_result;

void pnx_decode_result_free(pnx_decode_result *r);

/* Decodes one file in the calling process, with the same checks and the
 * same result as a pool worker but WITHOUT isolation (no rlimits, a crash
 * in DCMTK is a crash of the caller). For trusted files, tests and tools;
 * untrusted input goes through a pool. Returns 0; the outcome is in r
 * (r->path is NULL). */
int pnx_decode_file_unisolated(const char *path, const pnx_ingest_limits *limits,
                               unsigned flags, pnx_decode_result *r);

/* A pool of isolated decode worker processes. Used from one thread at a
 * time. Results come back in completion order, tagged with the index given
 * at submit; every submitted path yields exactly one result. */
typedef struct pnx_decode_pool pnx_decode_pool;

/* Forks `workers` processes (0 = CPU count). limits may be NULL (defaults).
 * DCMTK's data dictionary is loaded in the caller first so the workers
 * share it. */
int pnx_decode_pool_create(pnx_decode_pool **out, unsigned workers,
                           const pnx_ingest_limits *limits);

/* Queues a file (the path is copied). Never blocks; work starts at once
 * when a worker is idle. */
int pnx_decode_pool_submit(pnx_decode_pool *pool, size_t index, const char *path,
                           unsigned flags);

/* Number of submitted files whose result has not been returned yet. */
size_t pnx_decode_pool_pending(const pnx_decode_pool *pool);

/* Waits for the next finished file and moves its result into *r (free it
 * with pnx_decode_result_free). Idle workers get queued files before this
 * returns, so decoding goes on while the caller uses the result. Returns 0,
 * PNX_ENOTFOUND when nothing is pending, or a negative code for a failure
 * of the pool itself (cannot fork a replacement, …) — per-file problems are
 * never failures here, they are results with an error_kind. */
int pnx_decode_pool_next(pnx_decode_pool *pool, pnx_decode_result *r);

/* Number of worker processes started so far, replacements included. */
unsigned pnx_decode_pool_spawned(const pnx_decode_pool *pool);

/* Kills and reaps the workers, frees queued work. NULL is fine. */
void pnx_decode_pool_destroy(pnx_decode_pool *pool);

#endif
