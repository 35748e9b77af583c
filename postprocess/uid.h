/*
 * postprocess/uid.h — deterministic UIDs for generated DICOM objects.
 *
 * A derived UID is "2.25." followed by the decimal value of a 128-bit
 * number: the first 16 bytes of SHA-256 over
 *   "pneumoseg-uid-v1" NUL role NUL source_uid NUL model_hash NUL settings
 * with the RFC 9562 version (8, custom) and variant bits set, so it is a
 * well-formed UUID as PS3.5 B.2 asks of 2.25 UIDs. The same inputs always
 * give the same UID, so a rerun of the same model and settings over the same
 * source reproduces every generated UID; a different role (e.g. "seg-series"
 * and "seg-instance") gives an unrelated one. Random UIDs, when a caller asks
 * for them, come from DCMTK's generator (pnx_uid_random).
 */
#ifndef PNX_POSTPROCESS_UID_H
#define PNX_POSTPROCESS_UID_H

#include "postprocess/dicom_source.h"

/* out receives at most 44 characters ("2.25." + ≤ 39 digits) and a NUL.
 * All strings must be non-NULL; "" is allowed. */
int pnx_uid_derive(char out[PNX_UID_BUF], const char *role, const char *source_uid,
                   const char *model_hash, const char *settings);

/* A fresh UID from DCMTK's generator (site root of DCMTK). */
int pnx_uid_random(char out[PNX_UID_BUF]);

/* True when s is a syntactically valid UID: 1..64 characters, components of
 * digits separated by single dots, no leading zero in a multi-digit component. */
int pnx_uid_is_valid(const char *s);

#endif
