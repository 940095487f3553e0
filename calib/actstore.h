/* Calibration activations: n samples of `elems` floats, in RAM or spilled to a temporary
 * file zstd-compressed. Reads come from the current generation, writes go to the next one;
 * llmsq_act_swap makes the written generation current (one per block). */
#ifndef LLMSQ_CALIB_ACTSTORE_H
#define LLMSQ_CALIB_ACTSTORE_H

#include "llmsq/status.h"

#include <stdio.h>

typedef struct act_gen {
    FILE     *file;  /* spilled: compressed samples back to back */
    uint64_t *off;   /* [n] */
    uint64_t *len;   /* [n] */
} act_gen;

typedef struct llmsq_act_store {
    int64_t n, elems;
    float  *mem;      /* [n, elems] when not spilled (updated in place unless two_gens) */
    float  *mem_next; /* [n, elems] the next generation, in RAM with two_gens only */
    act_gen cur, next;
    void   *zbuf;     /* compression scratch */
    size_t  zcap;
} llmsq_act_store;

/* spill: keep nothing in RAM but one sample at a time. two_gens: in RAM, keep the current
 * generation readable while the next is written (passes that read a block's inputs after its
 * outputs were stored); a spilled store always has two generations. */
llmsq_status llmsq_act_init(llmsq_act_store *a, int64_t n, int64_t elems, bool spill, bool two_gens);
void         llmsq_act_free(llmsq_act_store *a);
/* x [elems] <- sample i of the current generation */
llmsq_status llmsq_act_get(llmsq_act_store *a, int64_t i, float *x);
/* sample i of the next generation <- x [elems]; samples must be put in order 0..n-1 */
llmsq_status llmsq_act_put(llmsq_act_store *a, int64_t i, const float *x);
llmsq_status llmsq_act_swap(llmsq_act_store *a);

#endif
