/*
 * tools/gen_sample/sample_plan.h — who is in the sample set: studies,
 * patients, splits, labels and identifiers, all drawn from one seed.
 *
 * The plan is made in full before any picture is painted, so generating
 * only the first N studies (--only) gives exactly the files a full run
 * gives for them. Studies are ordered train first, then test.
 *
 * Promises (for a split of n studies): round(n × positive fraction)
 * studies carry a pneumothorax (one half of train, two fifths of test);
 * among them about one in six has two pieces (two CSV rows), at least one
 * of which overlaps; n / 15 patients have two studies in the split (the
 * same PatientID, different Study/Series/SOP Instance UIDs). UIDs follow
 * the SIIM pattern 1.2.276.0.7230010.3.1.{2,3,4}.8323329.<pid>.<time>.<n>
 * with times in 1700000000.. (the real files' are 1517875…, so generated
 * UIDs never collide with real SIIM ones) and are unique within the plan.
 */
#ifndef PNX_TOOLS_SAMPLE_PLAN_H
#define PNX_TOOLS_SAMPLE_PLAN_H

#include <stdint.h>

#include "tools/gen_sample/ptx_lesion.h"

#define PNX_SAMPLE_UID_MAX 65
#define PNX_SAMPLE_MAX_STUDIES 100000u

enum { PNX_SAMPLE_FOLDER_TRAIN = 0, PNX_SAMPLE_FOLDER_TEST = 1 };

typedef struct pnx_sample_study {
    int split;                          /* PNX_SAMPLE_FOLDER_TRAIN or PNX_SAMPLE_FOLDER_TEST */
    uint32_t patient;                   /* index into the plan's patients */
    int female;
    int ap_view;
    pnx_ptx_layout layout;
    char patient_id[37];                /* a version-4 UUID, lower case */
    char patient_age[5];                /* AS, "062Y" */
    const char *pixel_spacing;          /* static DS string */
    char study_uid[PNX_SAMPLE_UID_MAX];
    char series_uid[PNX_SAMPLE_UID_MAX];
    char sop_uid[PNX_SAMPLE_UID_MAX];
} pnx_sample_study;

typedef struct pnx_sample_plan {
    uint64_t seed;
    uint32_t n_studies;                 /* n_train + n_test */
    uint32_t n_train, n_test;
    uint32_t n_patients;
    pnx_sample_study *studies;
} pnx_sample_plan;

/* Makes the plan of n_train + n_test studies (1 ≤ each total ≤
 * PNX_SAMPLE_MAX_STUDIES). Returns 0, PNX_EINVAL or PNX_ENOMEM. */
int pnx_sample_plan_make(uint64_t seed, uint32_t n_train, uint32_t n_test,
                         pnx_sample_plan *plan);
void pnx_sample_plan_free(pnx_sample_plan *plan);

/* RNG streams: the plan's own, one per patient, one per study. */
#define PNX_SAMPLE_STREAM_PLAN 0u
#define PNX_SAMPLE_STREAM_PATIENT(i) (0x100000000ull + (uint64_t)(i))
#define PNX_SAMPLE_STREAM_STUDY(i) (0x200000000ull + (uint64_t)(i))

#endif
