/*
 * preprocess/split.h — the deterministic train/val/test split, by patient
 * and stratified by positive/negative.
 *
 * Promises:
 *  - No patient in two splits: images are grouped by patient ID first (an
 *    image without a patient ID is a patient of its own). A patient is
 *    positive when any of its images is.
 *  - Stratified: positive and negative patients are split separately, each
 *    stratum getting the same shares, so every split has the data set's
 *    share of positives (to within rounding and patient grouping).
 *  - Deterministic: the same images, patient IDs, labels and seed give the
 *    same split whatever the order of the input (patients are sorted by ID
 *    before a seeded shuffle; common/rng.h streams are portable).
 *  - Targets are image counts. Ratios r become counts of the images
 *    available (largest remainders); absolute counts must not exceed the
 *    images available. Each split's count is shared between the strata in
 *    proportion to their sizes (largest remainders again).
 *  - Within a stratum, patients are dealt largest first (ties in shuffled
 *    order), each to the split that still needs the most images; a split's
 *    image count ends within one patient's images of its target. With
 *    absolute counts that leave images over, a patient is left out (split
 *    PNX_SPLIT_NONE) when taking it would move the neediest split further
 *    from its target than leaving it (i.e. it has more than twice the
 *    images still needed) and enough images remain to fill the targets.
 *    docs/dataset.md states the rule for users.
 */
#ifndef PNX_PREPROCESS_SPLIT_H
#define PNX_PREPROCESS_SPLIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum pnx_split {
    PNX_SPLIT_NONE = -1, /* left out (absolute counts below the images available) */
    PNX_SPLIT_TRAIN = 0,
    PNX_SPLIT_VAL = 1,
    PNX_SPLIT_TEST = 2,
} pnx_split;
#define PNX_SPLIT_COUNT 3

/* "train", "val", "test", "none". */
const char *pnx_split_name(int split);

/* One image to place. Strings are borrowed for the call. */
typedef struct pnx_split_item {
    const char *uid;        /* unique among the items; non-empty */
    const char *patient_id; /* NULL or "" = a patient of its own */
    int positive;           /* 0 or 1 */
} pnx_split_item;

typedef struct pnx_split_spec {
    int by_count;                    /* 0: ratios, 1: counts */
    double ratio[PNX_SPLIT_COUNT];   /* ≥ 0, adding up to 1 (± 1e-6) */
    int64_t count[PNX_SPLIT_COUNT];  /* ≥ 0 images; sum ≤ images available */
    uint64_t seed;
} pnx_split_spec;

typedef struct pnx_split_summary {
    int64_t images[PNX_SPLIT_COUNT];
    int64_t positives[PNX_SPLIT_COUNT];  /* positive images */
    int64_t patients[PNX_SPLIT_COUNT];
    int64_t target[PNX_SPLIT_COUNT];     /* image targets after rounding */
    int64_t left_out;                    /* images in no split */
    int64_t total_patients;
} pnx_split_summary;

/* Assigns each of the n items a split: out[i] is items[i]'s PNX_SPLIT_…
 * value. summary may be NULL. n = 0 is fine (with counts, only all-zero
 * counts). Errors: PNX_EINVAL (bad ratios or counts, an empty or duplicate
 * uid, a label not 0/1), PNX_ERANGE (counts larger than the images
 * available, with the numbers in the message), PNX_ENOMEM. */
int pnx_split_assign(const pnx_split_item *items, size_t n, const pnx_split_spec *spec,
                     int *out, pnx_split_summary *summary);

#endif
