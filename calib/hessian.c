/*
 * Hessian accumulator for GPTQ-style passes: sum += X^T X in double, H = 2/rows * sum.
 *
 * Determinism: OpenBLAS splits its own threaded routines differently for different thread
 * counts (its potrf does, measurably), so instead of one threaded dsyrk the product is
 * cut into fixed TILE x TILE output tiles (dsyrk on the diagonal, dgemm elsewhere), each
 * computed by one single-threaded BLAS call inside an OpenMP loop (blas_serial()). The
 * tiles and the row chunks depend only on n, so every thread count gives the same bytes.
 * sum is kept symmetric (both triangles) after every add, for passes that read it directly.
 */
#include "llmsq/quant.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum {
    TILE = 128,              /* output tile edge (columns of H) */
    CHUNK_DOUBLES = 1 << 20, /* double copy of X: at most 8 MiB per chunk */
    CHUNK_MAX_ROWS = 512,
};

llmsq_status llmsq_hessian_init(llmsq_hessian *h, int64_t n)
{
    LLMSQ_ASSERT(h != NULL);
    memset(h, 0, sizeof *h);
    if (n < 1 || n > INT_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "Hessian: %lld columns is out of range [1, %d]", (long long)n, INT_MAX);
    h->sum = calloc((size_t)n * (size_t)n, sizeof *h->sum);
    if (!h->sum)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "Hessian: out of memory for [%lld, %lld] doubles", (long long)n,
                           (long long)n);
    h->n = n;
    return LLMSQ_OK;
}

void llmsq_hessian_free(llmsq_hessian *h)
{
    if (!h) return;
    free(h->sum);
    memset(h, 0, sizeof *h);
}

/* Called first in every parallel region: OpenBLAS sizes its team from omp_get_max_threads(),
 * so this keeps each tile's call single-threaded, also in a region made inactive by its if
 * clause (one thread, where OpenBLAS would otherwise spread one call over all threads). */
static inline void blas_serial(void) { omp_set_num_threads(1); }

/* Rows per chunk: a function of n only, so the summation order never depends on threads. */
static int64_t chunk_rows(int64_t n)
{
    int64_t r = CHUNK_DOUBLES / n;
    if (r > CHUNK_MAX_ROWS) r = CHUNK_MAX_ROWS;
    return r < 1 ? 1 : r;
}

/* S (upper triangle, [n, n]) += A^T A for A [R, n] double. */
static void syrk_tiled(double *S, const double *A, int64_t n, int64_t R)
{
    const int64_t nt = (n + TILE - 1) / TILE;
#pragma omp parallel if (nt > 1)
    {
        blas_serial();
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < nt * nt; t++) {
            const int64_t ti = t / nt, tj = t % nt;
            if (tj < ti) continue;
            const int64_t i0 = ti * TILE, j0 = tj * TILE;
            const int ib = (int)(n - i0 < TILE ? n - i0 : TILE), jb = (int)(n - j0 < TILE ? n - j0 : TILE);
            if (ti == tj)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, ib, (int)R, 1.0, A + i0, (int)n, 1.0,
                            S + i0 * n + i0, (int)n);
            else
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ib, jb, (int)R, 1.0, A + i0, (int)n, A + j0,
                            (int)n, 1.0, S + i0 * n + j0, (int)n);
        }
    }
}

llmsq_status llmsq_hessian_add(llmsq_hessian *h, const float *X, int64_t T)
{
    LLMSQ_ASSERT(h != NULL && h->sum != NULL);
    if (T < 0) return llmsq_error(LLMSQ_STATUS_ARG, "Hessian: negative row count %lld", (long long)T);
    if (T == 0) return LLMSQ_OK;
    LLMSQ_ASSERT(X != NULL);
    const int64_t n = h->n;
    /* Checked up front so that a bad activation leaves the accumulator untouched. */
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < n; j++)
            if (!isfinite(X[t * n + j]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "Hessian: activation [%lld, %lld] is not finite (%g)",
                                   (long long)t, (long long)j, (double)X[t * n + j]);
    const int64_t R = chunk_rows(n);
    double *A = malloc((size_t)(R * n) * sizeof *A);
    if (!A) return llmsq_error(LLMSQ_STATUS_NOMEM, "Hessian: out of memory for a [%lld, %lld] chunk", (long long)R,
                               (long long)n);
    for (int64_t t0 = 0; t0 < T; t0 += R) {
        const int64_t r = T - t0 < R ? T - t0 : R;
        for (int64_t k = 0; k < r * n; k++) A[k] = (double)X[t0 * n + k];
        syrk_tiled(h->sum, A, n, r);
    }
    free(A);
    /* Keep sum symmetric after every call: other passes read it directly. */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) h->sum[i * n + j] = h->sum[j * n + i];
    h->rows += T;
    return LLMSQ_OK;
}

llmsq_status llmsq_hessian_finalize(const llmsq_hessian *h, double **H)
{
    LLMSQ_ASSERT(h != NULL && h->sum != NULL && H != NULL);
    *H = NULL;
    if (h->rows < 1) return llmsq_error(LLMSQ_STATUS_ARG, "Hessian: no activation rows were accumulated");
    const int64_t n = h->n;
    double *r = malloc((size_t)(n * n) * sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "Hessian: out of memory for [%lld, %lld] doubles", (long long)n,
                               (long long)n);
    const double f = 2.0 / (double)h->rows;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) r[i * n + j] = f * h->sum[(i <= j ? i : j) * n + (i <= j ? j : i)];
    *H = r;
    return LLMSQ_OK;
}
