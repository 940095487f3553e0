/* Deterministic selection of the k smallest scores (see select.h). */
#include "prune/select.h"

static inline void swap_keys(prune_key *a, prune_key *b)
{
    const prune_key t = *a;
    *a = *b;
    *b = t;
}

void prune_sort_small(prune_key *keys, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        const prune_key x = keys[i];
        int64_t j = i;
        for (; j > 0 && prune_key_less(x, keys[j - 1]); j--) keys[j] = keys[j - 1];
        keys[j] = x;
    }
}

/* Quickselect (Hoare-style partition around a median of three). The order is total and the
 * keys distinct (indices differ), so the set of the k smallest is unique: the result does not
 * depend on pivot choices. Ranges of 16 or fewer are finished by insertion sort. */
void prune_select_smallest(prune_key *keys, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n; /* the boundary k lies in [lo, hi] */
    if (k <= 0 || k >= n) return;
    while (hi - lo > 16) {
        const int64_t mid = lo + (hi - lo) / 2;
        prune_key *a = &keys[lo], *b = &keys[mid], *c = &keys[hi - 1];
        if (prune_key_less(*b, *a)) swap_keys(a, b);
        if (prune_key_less(*c, *b)) swap_keys(b, c);
        if (prune_key_less(*b, *a)) swap_keys(a, b);
        const prune_key pivot = *b;
        int64_t i = lo, j = hi - 1;
        for (;;) { /* keys[lo..i) <= pivot, keys(j..hi) >= pivot */
            while (prune_key_less(keys[i], pivot)) i++;
            while (prune_key_less(pivot, keys[j])) j--;
            if (i >= j) break;
            swap_keys(&keys[i], &keys[j]);
            i++;
            j--;
        }
        /* now keys[lo..j] <= pivot <= keys[j+1..hi) */
        if (k <= j) hi = j + 1;
        else lo = j + 1;
        if (lo >= k || hi <= k) return; /* k fell on a partition boundary */
    }
    prune_sort_small(keys + lo, hi - lo);
}
