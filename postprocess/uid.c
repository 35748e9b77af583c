/*
 * postprocess/uid.c — deterministic 2.25 UIDs (see uid.h) and the UID sets
 * of generated SEG and Secondary Capture objects.
 */
#include "postprocess/uid.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/sha256.h"
#include "postprocess/sc.h"
#include "postprocess/seg.h"

/* Bumping this changes every derived UID: only for a change of scheme. */
static const char UID_SCHEME[] = "pneumoseg-uid-v1";

/* Writes the decimal value of a 128-bit big-endian number. */
static void u128_to_decimal(const uint8_t value[16], char *out)
{
    uint8_t num[16];
    char digits[40];
    size_t n_digits = 0;
    memcpy(num, value, sizeof num);
    for (;;) {
        int nonzero = 0;
        unsigned rem = 0;
        for (size_t i = 0; i < sizeof num; i++) {
            unsigned cur = rem * 256u + num[i];
            num[i] = (uint8_t)(cur / 10u);
            rem = cur % 10u;
            nonzero |= num[i] != 0;
        }
        digits[n_digits++] = (char)('0' + rem);
        if (!nonzero)
            break;
    }
    for (size_t i = 0; i < n_digits; i++)
        out[i] = digits[n_digits - 1 - i];
    out[n_digits] = '\0';
}

int pnx_uid_derive(char out[PNX_UID_BUF], const char *role, const char *source_uid,
                   const char *model_hash, const char *settings)
{
    if (!out || !role || !source_uid || !model_hash || !settings)
        return pnx_fail(PNX_EINVAL, "derived UID: missing input");
    const char *parts[] = {UID_SCHEME, role, source_uid, model_hash, settings};
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        total += strlen(parts[i]) + 1;
    /* NUL separators keep ("ab","c") and ("a","bc") apart. */
    char *buf = malloc(total);
    if (!buf)
        return pnx_fail(PNX_ENOMEM, "derived UID: out of memory");
    size_t at = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t len = strlen(parts[i]);
        memcpy(buf + at, parts[i], len + 1);
        at += len + 1;
    }
    uint8_t digest[32];
    int rc = pnx_sha256(buf, total, digest);
    free(buf);
    if (rc)
        return pnx_fail_prefix(rc, "derived UID");
    /* RFC 9562: version 8 (custom) in the high nibble of byte 6, variant 10
     * in the top bits of byte 8. */
    digest[6] = (uint8_t)((digest[6] & 0x0F) | 0x80);
    digest[8] = (uint8_t)((digest[8] & 0x3F) | 0x80);
    memcpy(out, "2.25.", 5);
    u128_to_decimal(digest, out + 5);
    return 0;
}

int pnx_uid_is_valid(const char *s)
{
    if (!s)
        return 0;
    size_t len = strlen(s);
    if (len == 0 || len > 64)
        return 0;
    size_t component_len = 0;
    char first = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (component_len == 0 || (component_len > 1 && first == '0'))
                return 0;
            component_len = 0;
        } else if (c >= '0' && c <= '9') {
            if (component_len == 0)
                first = c;
            component_len++;
        } else {
            return 0;
        }
    }
    return 1;
}

int pnx_seg_uids_derive(const pnx_dicom_source *src, const char *model_hash,
                        const char *settings, pnx_generated_uids *uids)
{
    if (!src || !uids)
        return pnx_fail(PNX_EINVAL, "SEG UIDs: missing input");
    memset(uids, 0, sizeof *uids);
    int rc;
    if ((rc = pnx_uid_derive(uids->series_instance_uid, "seg-series", src->series_instance_uid,
                             model_hash, settings)) ||
        (rc = pnx_uid_derive(uids->sop_instance_uid, "seg-instance", src->sop_instance_uid,
                             model_hash, settings)) ||
        (rc = pnx_uid_derive(uids->dimension_organization_uid, "seg-dimension-organization", "",
                             model_hash, settings)))
        return rc;
    return 0;
}

int pnx_seg_uids_random(pnx_generated_uids *uids)
{
    if (!uids)
        return pnx_fail(PNX_EINVAL, "SEG UIDs: missing output");
    memset(uids, 0, sizeof *uids);
    int rc;
    if ((rc = pnx_uid_random(uids->series_instance_uid)) ||
        (rc = pnx_uid_random(uids->sop_instance_uid)) ||
        (rc = pnx_uid_random(uids->dimension_organization_uid)))
        return rc;
    return 0;
}

int pnx_sc_uids_derive(const pnx_dicom_source *src, const char *model_hash,
                       const char *settings, pnx_generated_uids *uids)
{
    if (!src || !uids)
        return pnx_fail(PNX_EINVAL, "Secondary Capture UIDs: missing input");
    memset(uids, 0, sizeof *uids);
    int rc;
    if ((rc = pnx_uid_derive(uids->series_instance_uid, "sc-series", src->series_instance_uid,
                             model_hash, settings)) ||
        (rc = pnx_uid_derive(uids->sop_instance_uid, "sc-instance", src->sop_instance_uid,
                             model_hash, settings)))
        return rc;
    return 0;
}
