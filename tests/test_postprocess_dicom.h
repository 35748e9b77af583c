/*
 * tests/test_postprocess_dicom.h — DCMTK helpers for the postprocess tests
 * (test_postprocess_dicom.cc): make a source image, read attributes back.
 */
#ifndef PNX_TEST_POSTPROCESS_DICOM_H
#define PNX_TEST_POSTPROCESS_DICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes an 8-bit MONOCHROME2 Secondary Capture (Modality CR, no Frame of
 * Reference) of rows × columns with a gradient, UIDs made from tag (digits), and
 * Lossy Image Compression "01"/ISO_10918_1 when lossy. Returns 0 on success. */
int pnx_test_make_source(const char *path, uint32_t rows, uint32_t columns, int lossy,
                         const char *tag);

/* Finds (group,element) anywhere in the file's dataset (sequences
 * included, first match) and copies its value(s); 0 found, -1 absent. */
int pnx_test_dicom_string(const char *path, uint16_t group, uint16_t element, char *out,
                          size_t size);

/* Copies the raw bytes of the top-level element (group,element) into out
 * (at most size); returns the element's length, or -1 when absent. */
long pnx_test_dicom_bytes(const char *path, uint16_t group, uint16_t element, uint8_t *out,
                          size_t size);

/* Counts items of the sequence (group,element), searched anywhere; -1 absent. */
int pnx_test_dicom_items(const char *path, uint16_t group, uint16_t element);

/* Loads a SEG through dcmseg (DcmSegmentation::loadFile) and unpacks its
 * first frame (rows × cols) with DCMTK's own unpacker into mask (0/1 bytes).
 * Returns 0, or -1 when dcmseg refuses the file. */
int pnx_test_dcmseg_frame(const char *path, uint16_t rows, uint16_t cols, uint8_t *mask);

#ifdef __cplusplus
}
#endif

#endif
