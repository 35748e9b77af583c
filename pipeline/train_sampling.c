/* pipeline/train_sampling.c — which training images an epoch sees, in which
 * order; see pnx_train_epoch_order in train_stage.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "pipeline/train_stage.h"
#include "pipeline/train_streams.h"

/* count items of one class into out, cycling through its n_members members:
 * in order, or in a fresh permutation per cycle (scratch holds n_members). */
static void fill_from_class(const uint32_t *members, uint32_t n_members, uint32_t count,
                            int shuffle, uint64_t seed, uint64_t stream, uint32_t *scratch,
                            uint32_t *out)
{
    pnx_rng rng;
    pnx_rng_seed(&rng, seed, stream);
    for (uint32_t i = 0; i < count; i += n_members) {
        uint32_t len = count - i < n_members ? count - i : n_members;
        memcpy(scratch, members, (size_t)n_members * sizeof *scratch);
        if (shuffle)
            pnx_rng_shuffle_u32(&rng, scratch, n_members);
        memcpy(out + i, scratch, (size_t)len * sizeof *out);
    }
}

int pnx_train_epoch_order(const uint8_t *positive, uint32_t n, double positive_fraction,
                          int shuffle, uint64_t seed, int64_t epoch, uint32_t *order)
{
    if (!order || (n > 0 && !positive) || epoch < 1 || epoch > PNX_TRAIN_MAX_EPOCH ||
        !(positive_fraction >= 0.0 && positive_fraction <= 1.0))
        return pnx_fail(PNX_EINVAL, "epoch order: bad arguments (epoch %lld, fraction %g)",
                        (long long)epoch, positive_fraction);
    uint32_t n_pos = 0;
    for (uint32_t i = 0; i < n; i++)
        n_pos += positive[i] != 0;
    uint32_t n_neg = n - n_pos;
    if (positive_fraction == 0.0 || n_pos == 0 || n_neg == 0) {
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        if (shuffle) {
            pnx_rng rng;
            pnx_rng_seed(&rng, seed, PNX_TRAIN_STREAM_ORDER | (uint64_t)epoch);
            pnx_rng_shuffle_u32(&rng, order, n);
        }
        return PNX_OK;
    }

    uint32_t want_pos = (uint32_t)llround(positive_fraction * (double)n);
    uint32_t *members = malloc((size_t)n * sizeof *members);
    uint32_t *picked = malloc((size_t)n * sizeof *picked);
    uint32_t *scratch = malloc((size_t)n * sizeof *scratch);
    if (!members || !picked || !scratch) {
        free(members);
        free(picked);
        free(scratch);
        return pnx_fail(PNX_ENOMEM, "out of memory for the epoch order");
    }
    uint32_t *pos_members = members, *neg_members = members + n_pos;
    for (uint32_t i = 0, a = 0, b = 0; i < n; i++) {
        if (positive[i])
            pos_members[a++] = i;
        else
            neg_members[b++] = i;
    }
    uint32_t *pos_picked = picked, *neg_picked = picked + want_pos;
    fill_from_class(pos_members, n_pos, want_pos, shuffle, seed,
                    PNX_TRAIN_STREAM_POSITIVES | (uint64_t)epoch, scratch, pos_picked);
    fill_from_class(neg_members, n_neg, n - want_pos, shuffle, seed,
                    PNX_TRAIN_STREAM_NEGATIVES | (uint64_t)epoch, scratch, neg_picked);
    if (shuffle) {
        memcpy(order, picked, (size_t)n * sizeof *order);
        pnx_rng rng;
        pnx_rng_seed(&rng, seed, PNX_TRAIN_STREAM_ORDER | (uint64_t)epoch);
        pnx_rng_shuffle_u32(&rng, order, n);
    } else {
        /* Slot i is positive when the running share of positives steps up
         * there, so the two classes are spread evenly. */
        uint32_t a = 0, b = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t before = (uint64_t)i * want_pos / n, after = (uint64_t)(i + 1) * want_pos / n;
            order[i] = after > before ? pos_picked[a++] : neg_picked[b++];
        }
    }
    free(members);
    free(picked);
    free(scratch);
    return PNX_OK;
}
