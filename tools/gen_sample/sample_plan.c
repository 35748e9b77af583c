/* tools/gen_sample/sample_plan.c — studies, patients and UIDs; see sample_plan.h. */
#include "tools/gen_sample/sample_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"

/* The SIIM UIDs' root: DCMTK's site root, the study/series/instance arcs,
 * and the host number all SIIM files share. */
#define SIIM_UID_ROOT "1.2.276.0.7230010.3.1"
#define SIIM_UID_HOST "8323329"
#define UID_TIME_BASE 1700000000u

/* Pixel spacings seen in the SIIM set (mm). */
static const char *const pixel_spacings[] = {"0.168\\0.168", "0.171\\0.171",
                                             "0.143\\0.143", "0.139\\0.139"};

static void make_uuid(pnx_rng *rng, char out[37])
{
    uint8_t b[16];
    uint64_t hi = pnx_rng_u64(rng), lo = pnx_rng_u64(rng);
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}

static int uid_taken(const pnx_sample_plan *plan, uint32_t upto, const char *sop)
{
    for (uint32_t i = 0; i < upto; i++)
        if (strcmp(plan->studies[i].sop_uid, sop) == 0)
            return 1;
    return 0;
}

/* Study, series and instance UIDs share pid and time and count down from
 * the instance's last number, as in the SIIM files. */
static void make_uids(pnx_rng *rng, pnx_sample_plan *plan, uint32_t i)
{
    pnx_sample_study *s = &plan->studies[i];
    do {
        unsigned pid = 1000u + (unsigned)pnx_rng_below(rng, 14000);
        unsigned time = UID_TIME_BASE + (unsigned)pnx_rng_below(rng, 400000);
        unsigned n = 100000u + (unsigned)pnx_rng_below(rng, 900000);
        snprintf(s->sop_uid, sizeof s->sop_uid, SIIM_UID_ROOT ".4." SIIM_UID_HOST ".%u.%u.%u",
                 pid, time, n);
        snprintf(s->study_uid, sizeof s->study_uid, SIIM_UID_ROOT ".2." SIIM_UID_HOST ".%u.%u.%u",
                 pid, time, n - 1);
        snprintf(s->series_uid, sizeof s->series_uid, SIIM_UID_ROOT ".3." SIIM_UID_HOST ".%u.%u.%u",
                 pid, time, n - 2);
    } while (uid_taken(plan, i, s->sop_uid));
}

/* Labels of one split: which studies are positive and how many pieces.
 * order is scratch space for n indices. */
static void assign_layouts(pnx_rng *rng, pnx_sample_study *studies, uint32_t n,
                           double positive_fraction, uint32_t *order)
{
    uint32_t positives = (uint32_t)lround(n * positive_fraction);
    uint32_t multi = positives >= 4 ? (positives / 6 > 0 ? positives / 6 : 1) : 0;
    uint32_t overlapping = multi > 0 ? (multi / 2 > 0 ? multi / 2 : 1) : 0;
    for (uint32_t i = 0; i < n; i++) {
        studies[i].layout = PNX_PTX_NONE;
        order[i] = i;
    }
    pnx_rng_shuffle_u32(rng, order, n);
    for (uint32_t k = 0; k < positives; k++)
        studies[order[k]].layout = k < overlapping ? PNX_PTX_OVERLAPPING
                                 : k < multi ? PNX_PTX_APART
                                 : PNX_PTX_SINGLE;
}

/* Pairs of studies of one split that belong to one patient: earlier_of[j]
 * is the earlier study of j's pair, or UINT32_MAX. Indices are within the
 * split, offset by first. */
static void pair_patients(pnx_rng *rng, uint32_t first, uint32_t n, uint32_t *order,
                          uint32_t *earlier_of)
{
    uint32_t pairs = n / 15;
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    pnx_rng_shuffle_u32(rng, order, n);
    for (uint32_t k = 0; k < pairs; k++) {
        uint32_t a = order[2 * k], b = order[2 * k + 1];
        if (a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        earlier_of[first + b] = first + a;
    }
}

int pnx_sample_plan_make(uint64_t seed, uint32_t n_train, uint32_t n_test,
                         pnx_sample_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (n_train + (uint64_t)n_test == 0 || n_train + (uint64_t)n_test > PNX_SAMPLE_MAX_STUDIES)
        return pnx_fail(PNX_EINVAL, "plan: %u + %u studies is not in 1..%u", n_train, n_test,
                        PNX_SAMPLE_MAX_STUDIES);
    uint32_t n = n_train + n_test;
    plan->seed = seed;
    plan->n_train = n_train;
    plan->n_test = n_test;
    plan->n_studies = n;
    plan->studies = calloc(n, sizeof *plan->studies);
    uint32_t *order = malloc((size_t)n * sizeof *order);
    uint32_t *earlier_of = malloc((size_t)n * sizeof *earlier_of);
    uint32_t *patient_of = malloc((size_t)n * sizeof *patient_of);
    if (!plan->studies || !order || !earlier_of || !patient_of) {
        free(order);
        free(earlier_of);
        free(patient_of);
        pnx_sample_plan_free(plan);
        return pnx_fail(PNX_ENOMEM, "plan: out of memory for %u studies", n);
    }

    pnx_rng rng;
    pnx_rng_seed(&rng, seed, PNX_SAMPLE_STREAM_PLAN);
    for (uint32_t i = 0; i < n; i++) {
        plan->studies[i].split = i < n_train ? PNX_SAMPLE_FOLDER_TRAIN : PNX_SAMPLE_FOLDER_TEST;
        earlier_of[i] = UINT32_MAX;
    }
    assign_layouts(&rng, plan->studies, n_train, 0.5, order);
    assign_layouts(&rng, plan->studies + n_train, n_test, 0.4, order);
    pair_patients(&rng, 0, n_train, order, earlier_of);
    pair_patients(&rng, n_train, n_test, order, earlier_of);

    char uuid[37];
    int female = 0, age = 0;
    for (uint32_t i = 0; i < n; i++) {
        pnx_sample_study *s = &plan->studies[i];
        /* Every study draws the same numbers, so a repeat patient does not
         * shift the draws of the studies after it. */
        make_uuid(&rng, uuid);
        int new_female = pnx_rng_uniform(&rng) < 0.45;
        int new_age = 18 + (int)pnx_rng_below(&rng, 70);
        int age_step = (int)pnx_rng_below(&rng, 2);
        if (earlier_of[i] == UINT32_MAX) {
            patient_of[i] = plan->n_patients++;
            memcpy(s->patient_id, uuid, sizeof uuid);
            female = new_female;
            age = new_age;
        } else {
            const pnx_sample_study *e = &plan->studies[earlier_of[i]];
            patient_of[i] = patient_of[earlier_of[i]];
            memcpy(s->patient_id, e->patient_id, sizeof s->patient_id);
            female = e->female;
            age = atoi(e->patient_age) + age_step;
        }
        s->patient = patient_of[i];
        s->female = female;
        snprintf(s->patient_age, sizeof s->patient_age, "%03dY", age);
        s->ap_view = pnx_rng_uniform(&rng) < 0.25;
        s->pixel_spacing = pixel_spacings[pnx_rng_below(&rng, 4)];
        make_uids(&rng, plan, i);
    }
    free(order);
    free(earlier_of);
    free(patient_of);
    return 0;
}

void pnx_sample_plan_free(pnx_sample_plan *plan)
{
    if (!plan)
        return;
    free(plan->studies);
    plan->studies = NULL;
    plan->n_studies = 0;
}
