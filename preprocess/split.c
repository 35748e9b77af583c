/*
 * preprocess/split.c — by-patient, stratified, seeded split; see split.h.
 */
#include "preprocess/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"

enum { STRATUM_NEGATIVE = 0, STRATUM_POSITIVE = 1, STRATUM_COUNT = 2 };

/* Distinct RNG streams for the two strata, so that adding a positive
 * patient does not reshuffle the negatives. */
#define SPLIT_RNG_STREAM_BASE 0x5e11u

typedef struct patient {
    size_t first;     /* into the sorted item order */
    size_t n_images;
    int positive;
    uint32_t shuffle_rank;
    int split;
} patient;

const char *pnx_split_name(int split)
{
    switch (split) {
    case PNX_SPLIT_TRAIN: return "train";
    case PNX_SPLIT_VAL: return "val";
    case PNX_SPLIT_TEST: return "test";
    default: return "none";
    }
}

/* An item and where it came from, so qsort needs no global state. */
typedef struct item_ref {
    const pnx_split_item *it;
    size_t index;
} item_ref;

static int has_patient(const pnx_split_item *it)
{
    return it->patient_id && it->patient_id[0];
}

static int cmp_patient_key(const pnx_split_item *a, const pnx_split_item *b)
{
    int ha = has_patient(a), hb = has_patient(b);
    if (ha != hb)
        return ha ? -1 : 1;
    if (ha)
        return strcmp(a->patient_id, b->patient_id);
    return strcmp(a->uid, b->uid);
}

/* Items sorted by patient key: real patient IDs first, then the images
 * without one (each its own patient, keyed by UID); UID breaks ties so the
 * order inside a patient is fixed too. */
static int cmp_ref_patient(const void *pa, const void *pb)
{
    const pnx_split_item *a = ((const item_ref *)pa)->it, *b = ((const item_ref *)pb)->it;
    int c = cmp_patient_key(a, b);
    return c ? c : strcmp(a->uid, b->uid);
}

static int cmp_ref_uid(const void *pa, const void *pb)
{
    return strcmp(((const item_ref *)pa)->it->uid, ((const item_ref *)pb)->it->uid);
}

/* Largest first; equal sizes keep the shuffled order. */
static int cmp_patient_deal_order(const void *pa, const void *pb)
{
    const patient *a = *(patient *const *)pa, *b = *(patient *const *)pb;
    if (a->n_images != b->n_images)
        return a->n_images > b->n_images ? -1 : 1;
    return (a->shuffle_rank > b->shuffle_rank) - (a->shuffle_rank < b->shuffle_rank);
}

static int check_spec(const pnx_split_spec *spec)
{
    if (spec->by_count) {
        for (int k = 0; k < PNX_SPLIT_COUNT; k++)
            if (spec->count[k] < 0)
                return pnx_fail(PNX_EINVAL, "split: %s count %lld is negative",
                                pnx_split_name(k), (long long)spec->count[k]);
        return 0;
    }
    double sum = 0;
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        double r = spec->ratio[k];
        if (!isfinite(r) || r < 0 || r > 1)
            return pnx_fail(PNX_EINVAL, "split: %s ratio %g is not in [0, 1]",
                            pnx_split_name(k), r);
        sum += r;
    }
    if (fabs(sum - 1.0) > 1e-6)
        return pnx_fail(PNX_EINVAL, "split: ratios %g,%g,%g add up to %g, not 1",
                        spec->ratio[0], spec->ratio[1], spec->ratio[2], sum);
    return 0;
}

/* Shares total among the splits in proportion to num[k] / den, rounding by
 * largest remainder (ties to the earlier split). Requires Σ num[k] / den to
 * be total up to rounding. */
static void apportion(int64_t total, const uint64_t num[PNX_SPLIT_COUNT], uint64_t den,
                      int64_t out[PNX_SPLIT_COUNT])
{
    uint64_t rem[PNX_SPLIT_COUNT];
    int64_t given = 0;
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        out[k] = den ? (int64_t)(num[k] / den) : 0;
        rem[k] = den ? num[k] % den : 0;
        given += out[k];
    }
    while (given < total) {
        int best = -1;
        for (int k = 0; k < PNX_SPLIT_COUNT; k++)
            if (rem[k] > 0 && (best < 0 || rem[k] > rem[best]))
                best = k;
        if (best < 0)
            break; /* cannot happen when the quotas add up; stay safe */
        out[best]++;
        rem[best] = 0;
        given++;
    }
}

/* Image counts per split for the whole set. */
static int split_totals(const pnx_split_spec *spec, int64_t n, int64_t totals[PNX_SPLIT_COUNT])
{
    if (spec->by_count) {
        int64_t sum = 0;
        for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
            if (spec->count[k] > INT64_MAX / 4 - sum)
                return pnx_fail(PNX_ERANGE, "split: counts are too large");
            sum += spec->count[k];
            totals[k] = spec->count[k];
        }
        if (sum > n)
            return pnx_fail(PNX_ERANGE,
                            "split: counts %lld + %lld + %lld = %lld images, but only %lld "
                            "images are available",
                            (long long)spec->count[0], (long long)spec->count[1],
                            (long long)spec->count[2], (long long)sum, (long long)n);
        return 0;
    }
    /* Ratios in parts per 2^30 keep the apportioning in exact integers. */
    const double scale = (double)(1u << 30);
    uint64_t num[PNX_SPLIT_COUNT], parts[PNX_SPLIT_COUNT], parts_sum = 0;
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        parts[k] = (uint64_t)llround(spec->ratio[k] * scale);
        parts_sum += parts[k];
    }
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        num[k] = parts[k] * (uint64_t)n;
    apportion(n, num, parts_sum, totals);
    return 0;
}

/* Deals the patients of one stratum (in deal order) towards targets. */
static void deal_stratum(patient **order, size_t count, int64_t stratum_images,
                         const int64_t target[PNX_SPLIT_COUNT], int allow_leave_out)
{
    int64_t assigned[PNX_SPLIT_COUNT] = {0};
    int64_t remaining = stratum_images;
    for (size_t i = 0; i < count; i++) {
        patient *p = order[i];
        int64_t n = (int64_t)p->n_images;
        int best = 0;
        for (int k = 1; k < PNX_SPLIT_COUNT; k++)
            if (target[k] - assigned[k] > target[best] - assigned[best])
                best = k;
        int64_t need_best = target[best] - assigned[best];
        int64_t need_all = 0;
        for (int k = 0; k < PNX_SPLIT_COUNT; k++)
            if (target[k] > assigned[k])
                need_all += target[k] - assigned[k];
        remaining -= n;
        int spare = allow_leave_out && remaining >= need_all;
        if (spare && (need_best <= 0 || n > 2 * need_best)) {
            p->split = PNX_SPLIT_NONE;
            continue;
        }
        p->split = best;
        assigned[best] += n;
    }
}

int pnx_split_assign(const pnx_split_item *items, size_t n, const pnx_split_spec *spec,
                     int *out, pnx_split_summary *summary)
{
    if (!spec || (n && (!items || !out)))
        return pnx_fail(PNX_EINVAL, "split: missing argument");
    int rc = check_spec(spec);
    if (rc)
        return rc;
    if (n > INT32_MAX)
        return pnx_fail(PNX_ERANGE, "split: %zu images is more than supported", n);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].uid || !items[i].uid[0])
            return pnx_fail(PNX_EINVAL, "split: image %zu has no UID", i);
        if (items[i].positive != 0 && items[i].positive != 1)
            return pnx_fail(PNX_EINVAL, "split: image %s has label %d, not 0 or 1",
                            items[i].uid, items[i].positive);
    }
    int64_t totals[PNX_SPLIT_COUNT];
    if ((rc = split_totals(spec, (int64_t)n, totals)))
        return rc;

    item_ref *order = malloc((n ? n : 1) * sizeof *order);
    patient *patients = malloc((n ? n : 1) * sizeof *patients);
    patient **deal = malloc((n ? n : 1) * sizeof *deal);
    if (!order || !patients || !deal) {
        rc = pnx_fail(PNX_ENOMEM, "split: out of memory for %zu images", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (item_ref){.it = &items[i], .index = i};
    qsort(order, n, sizeof *order, cmp_ref_uid);
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i - 1].it->uid, order[i].it->uid) == 0) {
            rc = pnx_fail(PNX_EINVAL, "split: UID %s appears twice", order[i].it->uid);
            goto done;
        }
    qsort(order, n, sizeof *order, cmp_ref_patient);

    size_t n_patients = 0;
    int64_t stratum_images[STRATUM_COUNT] = {0};
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int positive = 0;
        while (j < n && cmp_patient_key(order[i].it, order[j].it) == 0)
            positive |= order[j++].it->positive;
        patients[n_patients++] = (patient){.first = i, .n_images = j - i,
                                           .positive = positive, .split = PNX_SPLIT_NONE};
        stratum_images[positive] += (int64_t)(j - i);
        i = j;
    }

    /* Image targets per stratum: the stratum's share of each split. */
    int64_t target[STRATUM_COUNT][PNX_SPLIT_COUNT];
    {
        uint64_t num[PNX_SPLIT_COUNT];
        int64_t used = totals[0] + totals[1] + totals[2];
        uint64_t pos_total = n ? ((uint64_t)used * (uint64_t)stratum_images[STRATUM_POSITIVE] * 2 + n) /
                                     (2 * (uint64_t)n)
                               : 0;
        for (int k = 0; k < PNX_SPLIT_COUNT; k++)
            num[k] = (uint64_t)totals[k] * (uint64_t)stratum_images[STRATUM_POSITIVE];
        apportion((int64_t)pos_total, num, n, target[STRATUM_POSITIVE]);
        for (int k = 0; k < PNX_SPLIT_COUNT; k++)
            target[STRATUM_NEGATIVE][k] = totals[k] - target[STRATUM_POSITIVE][k];
    }

    int allow_leave_out = spec->by_count && totals[0] + totals[1] + totals[2] < (int64_t)n;
    for (int s = 0; s < STRATUM_COUNT; s++) {
        size_t count = 0;
        for (size_t p = 0; p < n_patients; p++)
            if (patients[p].positive == s)
                deal[count++] = &patients[p];
        /* Patients are in key order here, so the shuffle does not depend on
         * the input order. */
        uint32_t *perm = malloc((count ? count : 1) * sizeof *perm);
        if (!perm) {
            rc = pnx_fail(PNX_ENOMEM, "split: out of memory");
            goto done;
        }
        for (size_t i = 0; i < count; i++)
            perm[i] = (uint32_t)i;
        pnx_rng rng;
        pnx_rng_seed(&rng, spec->seed, SPLIT_RNG_STREAM_BASE + (uint64_t)s);
        pnx_rng_shuffle_u32(&rng, perm, (uint32_t)count);
        for (size_t i = 0; i < count; i++)
            deal[perm[i]]->shuffle_rank = (uint32_t)i;
        free(perm);
        qsort(deal, count, sizeof *deal, cmp_patient_deal_order);
        deal_stratum(deal, count, stratum_images[s], target[s], allow_leave_out);
    }

    pnx_split_summary sum = {0};
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        sum.target[k] = totals[k];
    sum.total_patients = (int64_t)n_patients;
    for (size_t p = 0; p < n_patients; p++) {
        const patient *pt = &patients[p];
        for (size_t j = 0; j < pt->n_images; j++) {
            size_t item = order[pt->first + j].index;
            out[item] = pt->split;
            if (pt->split == PNX_SPLIT_NONE) {
                sum.left_out++;
                continue;
            }
            sum.images[pt->split]++;
            sum.positives[pt->split] += items[item].positive;
        }
        if (pt->split != PNX_SPLIT_NONE)
            sum.patients[pt->split]++;
    }
    if (summary)
        *summary = sum;
done:
    free(order);
    free(patients);
    free(deal);
    return rc;
}
