/*
 * pipeline/score_strset.c — a set of strings (open addressing, FNV-1a) for
 * the paths and SOP Instance UIDs a score run has done; see
 * score_internal.h.
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "pipeline/score_internal.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int pnx_str_set_has(const pnx_str_set *set, const char *s)
{
    if (!set->cap)
        return 0;
    for (size_t i = hash_str(s) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slots[i])
            return 0;
        if (strcmp(set->slots[i], s) == 0)
            return 1;
    }
}

int pnx_str_set_add(pnx_str_set *set, const char *s)
{
    if ((set->count + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i])
                continue;
            size_t j = hash_str(set->slots[i]) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t i = hash_str(s) & (set->cap - 1);
    for (; set->slots[i]; i = (i + 1) & (set->cap - 1))
        if (strcmp(set->slots[i], s) == 0)
            return 0;
    if (!(set->slots[i] = strdup(s)))
        return pnx_fail(PNX_ENOMEM, "out of memory");
    set->count++;
    return 0;
}

void pnx_str_set_free(pnx_str_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    memset(set, 0, sizeof *set);
}
