/*
 * Internal to prune/: scores with a total order (score, then index), so that every mask is
 * deterministic whatever the sorting algorithm: ties go to the lower index (pruned first).
 */
#ifndef LLMSQ_PRUNE_SELECT_H
#define LLMSQ_PRUNE_SELECT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct prune_key {
    double  v;
    int64_t i;
} prune_key;

static inline bool prune_key_less(prune_key a, prune_key b)
{
    return a.v < b.v || (a.v == b.v && a.i < b.i);
}

/* Reorders keys [n] so that its first k entries are the k smallest in the total order
 * (in no particular order among themselves). 0 <= k <= n. */
void prune_select_smallest(prune_key *keys, int64_t n, int64_t k);

/* Sorts a small array ascending in the total order (insertion sort). */
void prune_sort_small(prune_key *keys, int64_t n);

#endif /* LLMSQ_PRUNE_SELECT_H */
