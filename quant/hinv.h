/*
 * Internal: the factorization shared by GPTQ and SparseGPT (prune/sparsegpt.c): the upper
 * Cholesky factor U of (H + damp I)^-1 (H^-1 = U^T U), computed without forming H^-1 and
 * deterministic for any thread count.
 *
 *  - U without H^-1: with J the column reversal, J H J = L L^T gives H = R R^T with R = J L J
 *    upper, so U = R^-1 = J L^-1 J. One Cholesky and one triangular inverse (2n^3/3 flops)
 *    replace the reference's Cholesky, inverse and second Cholesky (4n^3/3), and the same
 *    unique factor comes out.
 *  - Determinism: OpenBLAS's threaded potrf/potri give different bits for 1 and 2 threads
 *    (measured), so the factorization is our own tiled algorithm, each tile one
 *    single-threaded BLAS call in an OpenMP loop (llmsq_blas_serial()). Tiles depend on the
 *    shape only, so any thread count gives the same bytes.
 *  - Memory: the factor is computed in the caller's H (lower triangle, after the reversal)
 *    while its strict upper triangle keeps the original, which is what a retry with a
 *    higher dampening restarts from. No second [n, n] matrix is allocated.
 */
#ifndef LLMSQ_QUANT_HINV_H
#define LLMSQ_QUANT_HINV_H

#include "llmsq/status.h"

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>

enum {
    LLMSQ_HINV_NB = 128,       /* factorization tile edge; scratch T holds n * LLMSQ_HINV_NB doubles */
    LLMSQ_HINV_MAX_RAISES = 6, /* damp may grow to damp * 10^6 */
};

/* Called first in every parallel region that makes BLAS calls: OpenBLAS sizes its team from
 * omp_get_max_threads(), so setting this task's nthreads-var to 1 keeps each call
 * single-threaded (its bits then depend on its operands only). */
static inline void llmsq_blas_serial(void) { omp_set_num_threads(1); }

/* Copies the strict lower triangle of A [n, n] onto the strict upper one (to_upper) or back. */
void llmsq_hinv_mirror(double *A, int64_t n, bool to_upper);

/* H [n, n]: symmetric, both triangles equal (llmsq_hinv_mirror(H, n, true) after editing the
 * lower one), its diagonal also in d0 [n] (undamped). On success the upper triangle of H holds
 * U, the upper Cholesky factor of (H + damp' mean I)^-1 with damp' = damp * 10^raises, the
 * smallest such fraction for which the Cholesky succeeds and U is finite (at most
 * LLMSQ_HINV_MAX_RAISES raises); *damp_used and *raises report it. T: scratch
 * [n * LLMSQ_HINV_NB]. perm [n] (NULL = identity) names the original column in messages;
 * who prefixes them ("GPTQ"). Errors: NUMERIC. */
llmsq_status llmsq_hinv_upper(double *H, int64_t n, const double *d0, double diag_mean, double damp,
                              const int64_t *perm, const char *who, double *T, double *damp_used, int *raises);

#endif /* LLMSQ_QUANT_HINV_H */
