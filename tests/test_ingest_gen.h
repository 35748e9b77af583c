/*
 * tests/test_ingest_gen.h — writes small DICOM files, well-formed or
 * deliberately broken, for the ingest tests. Explicit VR Little Endian
 * Part 10 files built byte by byte, so that every malformation is exactly
 * the one intended.
 */
#ifndef PNX_TESTS_TEST_INGEST_GEN_H
#define PNX_TESTS_TEST_INGEST_GEN_H

#include <stddef.h>
#include <stdint.h>

#define GEN_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define GEN_TS_JPEG2000 "1.2.840.10008.1.2.4.90"

typedef struct gen_image {
    const char *sop_uid;          /* required */
    const char *ts_uid;           /* NULL = explicit VR little endian */
    uint16_t rows, columns;
    int bits_allocated, bits_stored, pixel_representation;
    const char *photometric;      /* NULL = MONOCHROME2 */
    int samples_per_pixel;        /* 0 = 1 */
    int frames;                   /* 0 = no Number of Frames element */
    const char *rescale_slope;    /* DS text or NULL */
    const char *rescale_intercept;
    const char *window_center;
    const char *window_width;
    const void *pixels;           /* the Pixel Data value (host = little endian) */
    uint32_t pixel_bytes;         /* bytes of pixels written */
    int64_t declared_pixel_length;/* > 0: Pixel Data length field says this */
    int encapsulated;             /* pixels are written as one fragment */
    int nested_sequences;         /* > 0: that many nested SQ levels before the image */
} gen_image;

/* Builds the file into a malloc'd buffer; returns its length (0 on failure). */
size_t gen_build(const gen_image *img, uint8_t **out);

/* Builds and writes; 0 on success. */
int gen_write(const char *path, const gen_image *img);

/* Writes len bytes of data to path; 0 on success. */
int gen_write_bytes(const char *path, const void *data, size_t len);

/* A deterministic 8- or 16-bit test picture: a smooth gradient with a
 * square, so that lossy codecs stay close. */
void gen_picture8(uint8_t *px, int rows, int cols);
void gen_picture16(uint16_t *px, int rows, int cols, int bits_stored);

/* A fresh folder under $TMPDIR (or /tmp), malloc'd path; NULL on failure. */
char *gen_tmpdir(void);
/* Removes a folder tree (no links followed). */
void gen_rmtree(const char *path);
/* "dir/name" in a static buffer of the caller's. */
const char *gen_path(char *buf, size_t size, const char *dir, const char *name);

/* 1 when a program is on PATH. */
int gen_have_program(const char *name);

#endif
