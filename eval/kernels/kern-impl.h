/* Internal to eval/kernels/: shared helpers of the matmul kernels (kernels.h). */
#ifndef LLMSQ_KERN_IMPL_H
#define LLMSQ_KERN_IMPL_H

#include "llmsq/kernels.h"

#include <stdlib.h>
#include <string.h>

/* Function-level target: the library builds without -mavx2 and dispatches at run time. */
#define KERN_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KERN_INLINE static inline __attribute__((always_inline))

static inline int64_t kern_round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* 64-byte aligned, zeroed; NULL when out of memory (n == 0 gives a valid minimal block). */
void *kern_alloc(size_t n);

/* Whether a matmul over `work` multiply-adds should fork OpenMP threads (not when already
 * inside a parallel region, nor for tiny problems where the fork costs more than it saves). */
bool kern_parallel(double work);

/* Thread it of nt's contiguous share [*u0, *u1) of n units (the split schedule(static) makes). */
static inline void kern_split(int64_t n, int nt, int it, int64_t *u0, int64_t *u1)
{
    *u0 = n * it / nt;
    *u1 = n * (it + 1) / nt;
}

/* Bytes a GEMV keeps prefetched ahead of its weight stream, and the burst a thread issues for
 * the start of its range: decode calls read each matrix cold, and small ones ([192 x 576] int4
 * is 55 KB) end before the hardware prefetchers have ramped up. */
#define KERN_PF_BYTES 2048
void kern_prefetch(const void *p, size_t bytes); /* [p, p + bytes), at most KERN_PF_BYTES */

/* Dequantizes rows [o0, o1) of a packed layout into Wt [(o1 - o0), in] f32 (exact). */
typedef void (*kern_dequant_fn)(const void *w, int64_t o0, int64_t o1, float *Wt);

/* GEMM path: y [B, out] = x [B, in] W^T with W in fixed tiles of rows (their size depends on
 * the shape only), each tile dequantized to f32 by `dequant` (or, dequant NULL, read in place
 * as f32 rows of stride ldw at wf32) and multiplied by a single-threaded cblas_sgemm, tiles
 * spread over OpenMP threads. OpenBLAS's own threading is kept out on purpose: its results
 * change with the thread count. Errors: NOMEM. */
llmsq_status kern_gemm_tiles(const void *w, int64_t out, int64_t in, kern_dequant_fn dequant, const float *wf32,
                             int64_t ldw, const float *x, int64_t B, float *y);

/* Activations of the int4 GEMVs (AVX2 and AVX-512), built once per call by kern_w4_act_init:
 * xs = the (gathered) activations with slice j of every block scaled by 2^-4j (j < 7; the
 * kernels leave code * 2^4j there; slice 7 is extracted by a shift), zero beyond in; xsum =
 * the sum of each group's activations, zero beyond n_groups. */
typedef struct kern_w4_act {
    float  *xs;     /* [B, in_pad] */
    float  *xsum;   /* [B, ng_pad] */
    int64_t ng_pad; /* n_groups rounded up to 8 */
} kern_w4_act;
llmsq_status kern_w4_act_init(const llmsq_kern_w4 *w, const float *x, int64_t B, kern_w4_act *a);
void         kern_w4_act_free(kern_w4_act *a);

/* The AVX-512 GEMVs (kern_w4_avx512.c, kern_s24_avx512.c), B in 1..LLMSQ_KERN_GEMV_MAX_BATCH. */
llmsq_status kern_w4_gemv_avx512(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y);
llmsq_status kern_s24_gemv_avx512(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y);

/* Whether f is exactly an f16 value (its bits in *h); callers reject non-finite f first. */
bool kern_f16_exact(float f, uint16_t *h);

/* Per-layout dequantizers (kern_w4.c, kern_sparse24.c, kern_dense.c), scalar and AVX2. */
void kern_dense_dequant(const void *d, int64_t o0, int64_t o1, float *Wt);
void kern_w4_dequant(const void *w, int64_t o0, int64_t o1, float *Wt);
void kern_s24_dequant(const void *s, int64_t o0, int64_t o1, float *Wt);
void kern_s24w4_dequant(const void *s, int64_t o0, int64_t o1, float *Wt);

/* vpermps index table of the 2:4 kernels: entry m (a metadata byte, two groups) =
 * lanes {i0, i1, 4 + j0, 4 + j1} twice (gather of the kept activations of 8 columns). */
extern const int32_t kern_s24_gather_idx[256][8];
/* entry m: for each of the 8 dense columns, the lane of its value among {v0, v1, v2, v3}
 * (two groups' kept values) or 4 (a zero lane) (expansion of values to dense columns). */
extern const int32_t kern_s24_expand_idx[256][8];

#endif /* LLMSQ_KERN_IMPL_H */
