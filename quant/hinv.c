/* The upper Cholesky factor of H^-1 shared by GPTQ and SparseGPT (see hinv.h). */
#include "quant/hinv.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { NB = LLMSQ_HINV_NB }; /* factorization tile edge */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- factorization ------------------------------------------------------------------- */

/* Cholesky of the kb x kb tile at A (row-major, leading dimension n), lower triangle in
 * place. Returns -1, or the tile column whose pivot is not positive and finite. */
static int64_t potf2_lower(double *A, int64_t n, int64_t kb)
{
    for (int64_t j = 0; j < kb; j++) {
        double *aj = A + j * n;
        double d = aj[j];
        for (int64_t k = 0; k < j; k++) d -= aj[k] * aj[k];
        if (!(d > 0) || !isfinite(d)) return j;
        d = sqrt(d);
        aj[j] = d;
        for (int64_t i = j + 1; i < kb; i++) {
            double *ai = A + i * n;
            double s = ai[j];
            for (int64_t k = 0; k < j; k++) s -= ai[k] * aj[k];
            ai[j] = s / d;
        }
    }
    return -1;
}

/* A = L L^T for A [n, n] row-major, L in the lower triangle; the strict upper triangle is
 * neither read nor written. Right-looking, NB tiles. Returns -1 or the failing column. */
static int64_t chol_lower(double *A, int64_t n)
{
    for (int64_t k = 0; k < n; k += NB) {
        const int64_t kb = min64(NB, n - k);
        const int64_t f = potf2_lower(A + k * n + k, n, kb);
        if (f >= 0) return k + f;
        const int64_t r0 = k + kb, mt = (n - r0 + NB - 1) / NB;
        if (mt == 0) break;
#pragma omp parallel if (mt > 1)
        {
            llmsq_blas_serial();
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < mt; t++) {
                const int64_t i0 = r0 + t * NB;
                cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)min64(NB, n - i0),
                            (int)kb, 1.0, A + k * n + k, (int)n, A + i0 * n + k, (int)n);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < mt * mt; t++) {
                const int64_t ti = t / mt, tj = t % mt;
                if (tj > ti) continue;
                const int64_t i0 = r0 + ti * NB, j0 = r0 + tj * NB;
                const int ib = (int)min64(NB, n - i0), jb = (int)min64(NB, n - j0);
                if (ti == tj)
                    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, ib, (int)kb, -1.0, A + i0 * n + k, (int)n, 1.0,
                                A + i0 * n + i0, (int)n);
                else
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ib, jb, (int)kb, -1.0, A + i0 * n + k, (int)n,
                                A + j0 * n + k, (int)n, 1.0, A + i0 * n + j0, (int)n);
            }
        }
    }
    return -1;
}

/* In-place inverse of the lower triangular kb x kb tile at A (leading dimension n). */
static void inv_lower_tile(double *A, int64_t n, int64_t kb)
{
    double tmp[NB];
    for (int64_t i = 0; i < kb; i++) {
        double *ai = A + i * n; /* row i still holds L until written back */
        const double d = 1.0 / ai[i];
        for (int64_t j = 0; j < i; j++) {
            double s = 0;
            for (int64_t k = j; k < i; k++) s += ai[k] * A[k * n + j];
            tmp[j] = -s * d;
        }
        memcpy(ai, tmp, (size_t)i * sizeof *ai);
        ai[i] = d;
    }
}

/* In-place inverse of the lower triangular L [n, n] (lower triangle only), tile columns from
 * the right: X21 = -X22 L21 L11^-1 with X22 already inverted. T: scratch [n, NB]. */
static void trinv_lower(double *A, int64_t n, double *T)
{
    for (int64_t j0 = ((n - 1) / NB) * NB; j0 >= 0; j0 -= NB) {
        const int64_t jb = min64(NB, n - j0), r0 = j0 + jb, m = n - r0, mt = (m + NB - 1) / NB;
        if (m > 0) {
#pragma omp parallel if (mt > 1)
            {
                llmsq_blas_serial();
#pragma omp for schedule(dynamic, 1)
                for (int64_t t = 0; t < mt; t++) {
                    const int64_t i0 = r0 + t * NB, ib = min64(NB, n - i0);
                    double *Ti = T + (i0 - r0) * jb; /* [ib, jb] */
                    for (int64_t r = 0; r < ib; r++)
                        memcpy(Ti + r * jb, A + (i0 + r) * n + j0, (size_t)jb * sizeof *Ti);
                    cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)ib, (int)jb, 1.0,
                                A + i0 * n + i0, (int)n, Ti, (int)jb);
                    for (int64_t l0 = r0; l0 < i0; l0 += NB)
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ib, (int)jb, NB, 1.0,
                                    A + i0 * n + l0, (int)n, A + l0 * n + j0, (int)n, 1.0, Ti, (int)jb);
                    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)ib, (int)jb,
                                -1.0, A + j0 * n + j0, (int)n, Ti, (int)jb);
                }
            }
            for (int64_t r = 0; r < m; r++) memcpy(A + (r0 + r) * n + j0, T + r * jb, (size_t)jb * sizeof *T);
        }
        inv_lower_tile(A + j0 * n + j0, n, jb);
    }
}

/* Copies the strict lower triangle of A [n, n] onto the strict upper one (to_upper) or back,
 * in 64 x 64 tiles so that the transposed side stays in cache. */
void llmsq_hinv_mirror(double *A, int64_t n, bool to_upper)
{
    enum { TB = 64 };
    for (int64_t i0 = 0; i0 < n; i0 += TB)
        for (int64_t j0 = 0; j0 <= i0; j0 += TB)
            for (int64_t i = i0; i < min64(i0 + TB, n); i++)
                for (int64_t j = j0; j < min64(j0 + TB, i); j++) {
                    if (to_upper)
                        A[j * n + i] = A[i * n + j];
                    else
                        A[i * n + j] = A[j * n + i];
                }
}

static void reverse(double *a, int64_t len)
{
    for (int64_t i = 0, j = len - 1; i < j; i++, j--) {
        const double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Hr = J H J (reversed, symmetric, diagonal undamped in d0 reversed) becomes U = upper
 * Cholesky factor of (H + damp I)^-1 in the upper triangle after the final reversal.
 * Returns -1, the failing (permuted) column, or n when the inverse is not finite. */
static int64_t factor_once(double *Hr, int64_t n, const double *d0, double damp_abs, double *T)
{
    for (int64_t a = 0; a < n; a++) Hr[a * n + a] = d0[n - 1 - a] + damp_abs;
    const int64_t f = chol_lower(Hr, n);
    if (f >= 0) return n - 1 - f;
    trinv_lower(Hr, n, T);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b <= a; b++)
            if (!isfinite(Hr[a * n + b])) return n;
    return -1;
}

llmsq_status llmsq_hinv_upper(double *H, int64_t n, const double *d0, double diag_mean, double damp,
                              const int64_t *perm, const char *who, double *T, double *damp_used, int *raises)
{
    /* Factor; on failure restore the lower triangle from the untouched upper and retry. */
    reverse(H, n * n);
    int r = 0;
    for (;;) {
        const int64_t f = factor_once(H, n, d0, damp * diag_mean, T);
        if (f < 0) break;
        if (r == LLMSQ_HINV_MAX_RAISES) {
            if (f == n)
                return llmsq_error(LLMSQ_STATUS_NUMERIC,
                                   "%s: H^-1 is not finite even with damp %g (after %d raises): H is too "
                                   "ill-conditioned",
                                   who, damp, r);
            return llmsq_error(LLMSQ_STATUS_NUMERIC,
                               "%s: H is not positive definite even with damp %g (after %d raises); the Cholesky "
                               "pivot of column %lld failed",
                               who, damp, r, (long long)(perm ? perm[f] : f));
        }
        llmsq_hinv_mirror(H, n, false);
        r++;
        damp *= 10;
    }
    reverse(H, n * n);
    *damp_used = damp;
    *raises = r;
    return LLMSQ_OK;
}
