/*
 * tests/test_preprocess_split.c — preprocess/split.h: properties (no patient
 * in two splits, targets met to within one patient per stratum,
 * stratification, determinism, input-order independence) and edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/rng.h"
#include "preprocess/split.h"

/* A generated data set: patients with 1..max_per_patient images, each
 * image positive with probability 1/positive_one_in; some images without a
 * patient ID. */
typedef struct dataset {
    size_t n;
    pnx_split_item *items;
    char (*uids)[24];
    char (*pids)[24];
    int max_group;
} dataset;

static dataset make_dataset(uint64_t seed, size_t n_patients, int max_per_patient,
                            int positive_one_in, int no_pid_one_in)
{
    pnx_rng rng;
    pnx_rng_seed(&rng, seed, 99);
    dataset d = {0};
    size_t cap = n_patients * (size_t)max_per_patient + 1;
    d.items = calloc(cap, sizeof *d.items);
    d.uids = calloc(cap, sizeof *d.uids);
    d.pids = calloc(cap, sizeof *d.pids);
    assert_non_null(d.items);
    assert_non_null(d.uids);
    assert_non_null(d.pids);
    d.max_group = 1;
    for (size_t p = 0; p < n_patients; p++) {
        int k = 1 + (int)pnx_rng_below(&rng, (uint64_t)max_per_patient);
        int no_pid = no_pid_one_in && pnx_rng_below(&rng, (uint64_t)no_pid_one_in) == 0;
        if (!no_pid && k > d.max_group)
            d.max_group = k;
        for (int i = 0; i < k; i++) {
            size_t j = d.n++;
            snprintf(d.uids[j], sizeof d.uids[j], "1.2.3.%zu", j);
            snprintf(d.pids[j], sizeof d.pids[j], "P%05zu", p);
            d.items[j].uid = d.uids[j];
            d.items[j].patient_id = no_pid ? (i % 2 ? "" : NULL) : d.pids[j];
            d.items[j].positive = pnx_rng_below(&rng, (uint64_t)positive_one_in) == 0;
        }
    }
    return d;
}

static void free_dataset(dataset *d)
{
    free(d->items);
    free(d->uids);
    free(d->pids);
}

static pnx_split_spec ratios(double a, double b, double c, uint64_t seed)
{
    pnx_split_spec s = {0};
    s.ratio[0] = a;
    s.ratio[1] = b;
    s.ratio[2] = c;
    s.seed = seed;
    return s;
}

static pnx_split_spec counts(int64_t a, int64_t b, int64_t c, uint64_t seed)
{
    pnx_split_spec s = {0};
    s.by_count = 1;
    s.count[0] = a;
    s.count[1] = b;
    s.count[2] = c;
    s.seed = seed;
    return s;
}

/* Every image of a patient is in the same split. */
static void check_patients_whole(const dataset *d, const int *split)
{
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = i + 1; j < d->n; j++) {
            const char *a = d->items[i].patient_id, *b = d->items[j].patient_id;
            if (a && a[0] && b && b[0] && strcmp(a, b) == 0 && split[i] != split[j])
                fail_msg("patient %s is in %s and %s", a, pnx_split_name(split[i]),
                         pnx_split_name(split[j]));
        }
}

/* The summary agrees with the assignment. */
static void check_summary(const dataset *d, const int *split, const pnx_split_summary *s)
{
    int64_t images[PNX_SPLIT_COUNT] = {0}, pos[PNX_SPLIT_COUNT] = {0}, left = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (split[i] == PNX_SPLIT_NONE) {
            left++;
            continue;
        }
        assert_in_range(split[i], 0, PNX_SPLIT_COUNT - 1);
        images[split[i]]++;
        pos[split[i]] += d->items[i].positive;
    }
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        assert_int_equal(images[k], s->images[k]);
        assert_int_equal(pos[k], s->positives[k]);
    }
    assert_int_equal(left, s->left_out);
}

static void test_properties_over_many_seeds(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        dataset d = make_dataset(seed, 150 + seed * 7, 1 + (int)(seed % 4), 4, 10);
        int *split = malloc(d.n * sizeof *split);
        pnx_split_summary s;
        pnx_split_spec spec = ratios(0.8, 0.1, 0.1, seed);
        assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
        check_patients_whole(&d, split);
        check_summary(&d, split, &s);
        assert_int_equal(s.left_out, 0);
        /* images of positive patients: the positive stratum */
        int64_t stratum = 0, stratum_in[PNX_SPLIT_COUNT] = {0};
        for (size_t i = 0; i < d.n; i++) {
            int pos = d.items[i].positive;
            for (size_t j = 0; j < d.n && !pos; j++)
                pos = d.items[j].positive && d.items[j].patient_id && d.items[j].patient_id[0] &&
                      d.items[i].patient_id && strcmp(d.items[j].patient_id, d.items[i].patient_id) == 0;
            stratum += pos;
            stratum_in[split[i]] += pos;
        }
        for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
            /* each of the two strata ends within one patient of its target */
            int64_t err = s.images[k] - s.target[k];
            if (err < 0)
                err = -err;
            assert_true(err <= 2 * d.max_group);
            /* stratified: the split's share of the positive stratum follows
             * the ratio */
            double want_pos = spec.ratio[k] * (double)stratum;
            double pos_err = (double)stratum_in[k] - want_pos;
            assert_true(pos_err <= d.max_group + 1 && pos_err >= -(d.max_group + 1));
        }
        /* ratios → counts by largest remainder: they add up to every image */
        assert_int_equal(s.target[0] + s.target[1] + s.target[2], (int64_t)d.n);
        free(split);
        free_dataset(&d);
    }
}

static void test_singletons_meet_targets_exactly(void **state)
{
    (void)state;
    dataset d = make_dataset(5, 997, 1, 5, 0);
    int *split = malloc(d.n * sizeof *split);
    pnx_split_summary s;
    pnx_split_spec spec = ratios(0.8, 0.1, 0.1, 42);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
    /* 997 × (0.8, 0.1, 0.1) = 797.6, 99.7, 99.7 → largest remainders: 797, 100, 100 */
    assert_int_equal(s.target[0], 797);
    assert_int_equal(s.target[1], 100);
    assert_int_equal(s.target[2], 100);
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        assert_int_equal(s.images[k], s.target[k]);
    assert_int_equal(s.total_patients, 997);
    free(split);
    free_dataset(&d);
}

static void test_deterministic_and_order_independent(void **state)
{
    (void)state;
    dataset d = make_dataset(11, 400, 3, 4, 8);
    int *a = malloc(d.n * sizeof *a), *b = malloc(d.n * sizeof *b), *c = malloc(d.n * sizeof *c);
    pnx_split_spec spec = ratios(0.7, 0.2, 0.1, 1234);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, a, NULL), 0);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, b, NULL), 0);
    assert_memory_equal(a, b, d.n * sizeof *a);

    /* Shuffle the input; the split of each UID must not change. */
    pnx_split_item *shuffled = malloc(d.n * sizeof *shuffled);
    uint32_t *perm = malloc(d.n * sizeof *perm);
    for (size_t i = 0; i < d.n; i++)
        perm[i] = (uint32_t)i;
    pnx_rng rng;
    pnx_rng_seed(&rng, 77, 0);
    pnx_rng_shuffle_u32(&rng, perm, (uint32_t)d.n);
    for (size_t i = 0; i < d.n; i++)
        shuffled[i] = d.items[perm[i]];
    assert_int_equal(pnx_split_assign(shuffled, d.n, &spec, c, NULL), 0);
    for (size_t i = 0; i < d.n; i++)
        assert_int_equal(c[i], a[perm[i]]);

    /* Another seed gives another split. */
    spec.seed = 1235;
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, b, NULL), 0);
    assert_memory_not_equal(a, b, d.n * sizeof *a);
    free(perm);
    free(shuffled);
    free(a);
    free(b);
    free(c);
    free_dataset(&d);
}

static void test_counts_as_the_seed(void **state)
{
    (void)state;
    /* The seed's 10,675 / 1,072 / 300 uses every one of 12,047 images. */
    dataset d = make_dataset(3, 12047, 1, 5, 0);
    assert_int_equal(d.n, 12047);
    int *split = malloc(d.n * sizeof *split);
    pnx_split_summary s;
    pnx_split_spec spec = counts(10675, 1072, 300, 7);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
    assert_int_equal(s.images[0], 10675);
    assert_int_equal(s.images[1], 1072);
    assert_int_equal(s.images[2], 300);
    assert_int_equal(s.left_out, 0);
    check_summary(&d, split, &s);
    free(split);
    free_dataset(&d);
}

static void test_counts_below_available_leave_images_out(void **state)
{
    (void)state;
    dataset d = make_dataset(8, 600, 3, 4, 0);
    int *split = malloc(d.n * sizeof *split);
    pnx_split_summary s;
    pnx_split_spec spec = counts(500, 100, 50, 9);
    assert_true(d.n > 650);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
    check_patients_whole(&d, split);
    check_summary(&d, split, &s);
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        int64_t err = s.images[k] - spec.count[k];
        assert_true(err <= 2 * d.max_group && err >= -2 * d.max_group);
    }
    assert_int_equal(s.left_out, (int64_t)d.n - s.images[0] - s.images[1] - s.images[2]);
    assert_true(s.left_out > 0);
    free(split);
    free_dataset(&d);
}

static void test_counts_larger_than_available(void **state)
{
    (void)state;
    dataset d = make_dataset(8, 10, 1, 4, 0);
    int split[10];
    pnx_split_spec spec = counts(8, 2, 1, 1);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, NULL), PNX_ERANGE);
    assert_non_null(strstr(pnx_errmsg(), "11 images"));
    assert_non_null(strstr(pnx_errmsg(), "only 10"));
    free_dataset(&d);
}

static void test_empty_input(void **state)
{
    (void)state;
    pnx_split_summary s;
    pnx_split_spec spec = ratios(0.8, 0.1, 0.1, 1);
    assert_int_equal(pnx_split_assign(NULL, 0, &spec, NULL, &s), 0);
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        assert_int_equal(s.images[k], 0);
    spec = counts(0, 0, 0, 1);
    assert_int_equal(pnx_split_assign(NULL, 0, &spec, NULL, &s), 0);
    spec = counts(1, 0, 0, 1);
    assert_int_equal(pnx_split_assign(NULL, 0, &spec, NULL, &s), PNX_ERANGE);
}

static void test_one_patient(void **state)
{
    (void)state;
    pnx_split_item items[3] = {{"1.1", "P", 0}, {"1.2", "P", 1}, {"1.3", "P", 0}};
    int split[3];
    pnx_split_summary s;
    pnx_split_spec spec = ratios(0.8, 0.1, 0.1, 5);
    assert_int_equal(pnx_split_assign(items, 3, &spec, split, &s), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(split[i], PNX_SPLIT_TRAIN);
    assert_int_equal(s.positives[PNX_SPLIT_TRAIN], 1);
    assert_int_equal(s.patients[PNX_SPLIT_TRAIN], 1);
}

static void test_all_negative(void **state)
{
    (void)state;
    dataset d = make_dataset(21, 100, 2, 1000000, 0);
    for (size_t i = 0; i < d.n; i++)
        d.items[i].positive = 0;
    int *split = malloc(d.n * sizeof *split);
    pnx_split_summary s;
    pnx_split_spec spec = ratios(0.5, 0.25, 0.25, 3);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
    check_patients_whole(&d, split);
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        assert_int_equal(s.positives[k], 0);
        assert_true(s.images[k] > 0);
    }
    free(split);
    free_dataset(&d);
}

static void test_zero_ratio_gets_nothing(void **state)
{
    (void)state;
    dataset d = make_dataset(4, 50, 2, 3, 0);
    int *split = malloc(d.n * sizeof *split);
    pnx_split_summary s;
    pnx_split_spec spec = ratios(0.9, 0.1, 0.0, 3);
    assert_int_equal(pnx_split_assign(d.items, d.n, &spec, split, &s), 0);
    assert_int_equal(s.images[PNX_SPLIT_TEST], 0);
    free(split);
    free_dataset(&d);
}

static void test_invalid_input(void **state)
{
    (void)state;
    pnx_split_item dup[2] = {{"1.1", "A", 0}, {"1.1", "B", 1}};
    pnx_split_item label[1] = {{"1.1", "A", 2}};
    pnx_split_item nouid[1] = {{"", "A", 0}};
    int split[2];
    pnx_split_spec spec = ratios(0.8, 0.1, 0.1, 1);
    assert_int_equal(pnx_split_assign(dup, 2, &spec, split, NULL), PNX_EINVAL);
    assert_non_null(strstr(pnx_errmsg(), "1.1"));
    assert_int_equal(pnx_split_assign(label, 1, &spec, split, NULL), PNX_EINVAL);
    assert_int_equal(pnx_split_assign(nouid, 1, &spec, split, NULL), PNX_EINVAL);
    spec = ratios(0.8, 0.1, 0.2, 1);
    assert_int_equal(pnx_split_assign(label, 0, &spec, split, NULL), PNX_EINVAL);
    spec = ratios(1.2, -0.1, -0.1, 1);
    assert_int_equal(pnx_split_assign(label, 0, &spec, split, NULL), PNX_EINVAL);
    spec = counts(-1, 0, 0, 1);
    assert_int_equal(pnx_split_assign(label, 0, &spec, split, NULL), PNX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_properties_over_many_seeds),
        cmocka_unit_test(test_singletons_meet_targets_exactly),
        cmocka_unit_test(test_deterministic_and_order_independent),
        cmocka_unit_test(test_counts_as_the_seed),
        cmocka_unit_test(test_counts_below_available_leave_images_out),
        cmocka_unit_test(test_counts_larger_than_available),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_one_patient),
        cmocka_unit_test(test_all_negative),
        cmocka_unit_test(test_zero_ratio_gets_nothing),
        cmocka_unit_test(test_invalid_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
