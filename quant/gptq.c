/*
 * GPTQ (Frantar et al. 2022, arXiv 2210.17323; reference code IST-DASLab/gptq gptq.py).
 *
 * Per linear W [out, in] with Hessian H [in, in]:
 *   1. dead columns (H_jj == 0): H_jj = 1, W[:, j] = 0;
 *   2. act_order: columns by decreasing diag(H) (ties by index), H and W permuted alike;
 *   3. H_jj += damp * mean(diag H); U = upper Cholesky factor of H^-1 (H^-1 = U^T U);
 *   4. column sweep in the (permuted) order: q = Q(w_j), e = (w_j - q) / U_jj,
 *      w_c -= e * U_jc for the later columns c, applied lazily: column by column inside a
 *      sub-block of SUB columns, by a GEMM to the rest of the block of block_size columns,
 *      and by one GEMM per block to the columns after it (see sweep()).
 *
 * Choices the reference code leaves open, and why (the factorization lives in quant/hinv.c):
 *  - U without H^-1: with J the column reversal, J H J = L L^T gives H = R R^T with R = J L J
 *    upper, so U = R^-1 = J L^-1 J. One Cholesky and one triangular inverse (2n^3/3 flops)
 *    replace the reference's Cholesky, inverse and second Cholesky (4n^3/3), and the same
 *    unique factor comes out.
 *  - Determinism: OpenBLAS's threaded potrf/potri give different bits for 1 and 2 threads
 *    (measured), so the factorization is our own tiled algorithm, each tile one
 *    single-threaded BLAS call in an OpenMP loop (blas_serial()); the sweep runs on fixed
 *    chunks of rows (rows never interact in GPTQ). Tiles and chunks depend on the shape
 *    only, so any thread count gives the same bytes.
 *  - Memory: the factor is computed in the caller's H (lower triangle, after the reversal)
 *    while its strict upper triangle keeps the original, which is what a retry with a
 *    higher dampening restarts from. No second [in, in] matrix is allocated.
 *  - Group parameters are fitted as the reference code fits them: on its outer W, which
 *    holds every earlier block's update but none of the current block's (those go to a
 *    copy), so a group starting inside a block of block_size columns is fitted on the
 *    columns as they were when the block began (a per-thread snapshot). Fitting on the fully
 *    updated columns instead was measured: on stories260K, 3-bit g32, it closed 47% of
 *    RTN's perplexity gap to fp32 against the reference's 51%.
 *  - Dampening raise: when the Cholesky meets a non-positive pivot (or the inverse is not
 *    finite), damp is multiplied by 10 and the factorization restarts from the original H,
 *    at most LLMSQ_HINV_MAX_RAISES times (quant/hinv.c, shared with SparseGPT); stats report the
 *    final fraction and the number of raises.
 */
#include "quant/grid.h"
#include "quant/hinv.h"

#include "llmsq/runtime.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum {
    ROWS_MAX = 128, /* rows per sweep task, at most (see chunk_rows) */
    SUB = 16,       /* columns per sub-block of a lazy-batch block */
};

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Called first in every parallel region: OpenBLAS sizes its team from omp_get_max_threads(),
 * so setting this task's nthreads-var to 1 keeps each tile's BLAS call single-threaded (its
 * bits then depend on the tile only), also in a region made inactive by its if clause. */
static inline void blas_serial(void) { llmsq_blas_serial(); }


/* ---- permutation ----------------------------------------------------------------------- */

typedef struct diag_key {
    double  d;
    int64_t i;
} diag_key;

static int cmp_desc_diag(const void *pa, const void *pb)
{
    const diag_key *a = pa, *b = pb;
    if (a->d != b->d) return a->d > b->d ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i); /* ties keep index order: a total order, so qsort is deterministic */
}

/* perm[j] = original column at position j, by decreasing diag. keys: [n] scratch. */
static void act_order_perm(const double *diag, int64_t n, int64_t *perm, diag_key *keys)
{
    for (int64_t j = 0; j < n; j++) keys[j] = (diag_key){diag[j], j};
    qsort(keys, (size_t)n, sizeof *keys, cmp_desc_diag);
    for (int64_t j = 0; j < n; j++) perm[j] = keys[j].i;
}

/* H <- H[perm][:, perm] in place; buf: [n] scratch, seen: [n] scratch. */
static void permute_sym(double *H, int64_t n, const int64_t *perm, double *buf, unsigned char *seen)
{
    LLMSQ_ASSERT(n > 0);
    memset(seen, 0, (size_t)n);
    for (int64_t s = 0; s < n; s++) { /* rows, by cycles: new row j = old row perm[j] */
        if (seen[s] || perm[s] == s) continue;
        memcpy(buf, H + s * n, (size_t)n * sizeof *buf);
        int64_t j = s;
        for (;;) {
            seen[j] = 1;
            const int64_t src = perm[j];
            if (src == s) {
                memcpy(H + j * n, buf, (size_t)n * sizeof *buf);
                break;
            }
            memcpy(H + j * n, H + src * n, (size_t)n * sizeof *buf);
            j = src;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        double *row = H + i * n;
        for (int64_t j = 0; j < n; j++) buf[j] = row[perm[j]];
        memcpy(row, buf, (size_t)n * sizeof *buf);
    }
}

/* ---- the column sweep ---------------------------------------------------------------- */

typedef struct sweep_ctx {
    int64_t                   in, G, bs;
    int                       maxq;
    bool                      static_groups;
    const llmsq_quant_params *p;
    const double             *U;        /* [in, in] upper factor, row-major (upper triangle) */
    const int64_t            *perm;     /* [in] original column of each sweep position */
    const int32_t            *colgroup; /* [in] group of each sweep position */
    double                   *W;        /* [out, in] double, permuted columns, updated in place */
    llmsq_qlinear            *q;
    double                   *loss;     /* [out] per-row loss */
    int64_t                   bad_row, bad_col; /* first failure (smallest row), under a lock */
} sweep_ctx;

static void sweep_fail(sweep_ctx *c, int64_t row, int64_t col)
{
#pragma omp critical(llmsq_gptq_fail)
    if (row < c->bad_row) {
        c->bad_row = row;
        c->bad_col = col;
    }
}

/* Blocks are the reference code's: [k bs, (k + 1) bs). Group fits read the snapshot taken at
 * the block's start (see sweep_sub), so no block needs to end early at a group start. */
static int64_t block_end(const sweep_ctx *c, int64_t b0)
{
    return min64(b0 + c->bs, c->in);
}

/* Where a sub-block starting at s0 inside a block ending at b1 must end: at most SUB
 * columns, and at the next group start, whose fit needs the sub-block's update first. */
static int64_t sub_end(const sweep_ctx *c, int64_t s0, int64_t b1)
{
    int64_t s1 = min64(s0 + SUB, b1);
    if (!c->static_groups) s1 = min64(s1, (s0 / c->G + 1) * c->G);
    return s1;
}

/* Columns [j0, j1) of rows [r0, r0 + M): quantize, record e_j in Err[r, j - b0] (leading
 * dimension bw), and apply each update to the later columns of [j0, j1). A sub-block lies in
 * one group, which starts at j0 or before. A group starting at j0 is fitted on Snap [M, n]:
 * the rows as they were when the current block began, i.e. with every earlier block's
 * update but none of this block's, exactly as the reference code fits on its outer W while
 * the block's updates go to a copy (IST-DASLab gptq.py, AutoGPTQ). Rows are the inner loop:
 * their dependency chains (two divisions per column) are independent and overlap in the
 * CPU. Returns false after recording a failure. */
static bool sweep_sub(sweep_ctx *c, int64_t r0, int64_t M, double *Err, int64_t bw, int64_t b0, int64_t j0,
                      int64_t j1, const double *Snap)
{
    const int64_t n = c->in, ng = c->q->n_groups;
    double *Wc = c->W + r0 * n;
    if (!c->static_groups && j0 % c->G == 0) {
        const int64_t g = j0 / c->G, e = min64(j0 + c->G, n);
        for (int64_t r = 0; r < M; r++) {
            const double *w = Snap + r * n;
            double lo = w[j0], hi = w[j0];
            for (int64_t k = j0 + 1; k < e; k++) {
                lo = w[k] < lo ? w[k] : lo; /* a NaN is skipped here and caught at its column */
                hi = w[k] > hi ? w[k] : hi;
            }
            const int64_t rg = (r0 + r) * ng + g;
            if (llmsq_grid_fit(c->p->grid, c->p->bits, c->p->zero_min_one, c->p->scale_dtype, lo, hi, &c->q->scales[rg],
                               &c->q->zeros[rg]) != LLMSQ_OK) {
                sweep_fail(c, r0 + r, c->perm[j0]);
                return false;
            }
        }
    }
    double loss[ROWS_MAX] = {0};
    for (int64_t j = j0; j < j1; j++) {
        const double *u = c->U + j * n;
        const int64_t oj = c->perm[j], g = c->colgroup[j];
        for (int64_t r = 0; r < M; r++) {
            double *w = Wc + r * n;
            const double x = w[j];
            if (!isfinite(x)) {
                sweep_fail(c, r0 + r, oj);
                return false;
            }
            const double s = c->q->scales[(r0 + r) * ng + g];
            const int32_t z = c->q->zeros[(r0 + r) * ng + g];
            const int code = llmsq_grid_code(x, s, z, c->maxq);
            c->q->codes[(r0 + r) * n + oj] = (uint8_t)code;
            const double e = (x - s * (double)(code - z)) / u[j];
            loss[r] += e * e;
            Err[r * bw + (j - b0)] = e;
            /* independent elements: vectorizing changes no result bit */
#pragma omp simd
            for (int64_t k = j + 1; k < j1; k++) w[k] -= e * u[k];
        }
    }
    for (int64_t r = 0; r < M; r++) c->loss[r0 + r] += 0.5 * loss[r]; /* sum of (w - q)^2 / U_jj^2 / 2 */
    return true;
}

/* Block [b0, b1) of rows [r0, r1): sub-blocks of SUB columns, each row column by column,
 * then a small GEMM from the sub-block to the rest of the block. Err: [r1 - r0, b1 - b0].
 * Returns false after recording a failure. */
static bool sweep_block(sweep_ctx *c, int64_t r0, int64_t r1, int64_t b0, int64_t b1, double *Err, double *Snap)
{
    const int64_t n = c->in, M = r1 - r0, bw = b1 - b0;
    double *Wc = c->W + r0 * n;
    if (!c->static_groups) { /* the columns any group starting in this block can reach */
        const int64_t e = min64(b1 + c->G, n);
        for (int64_t r = 0; r < M; r++) memcpy(Snap + r * n + b0, Wc + r * n + b0, (size_t)(e - b0) * sizeof *Snap);
    }
    for (int64_t s0 = b0, s1; s0 < b1; s0 = s1) {
        s1 = sub_end(c, s0, b1);
        if (!sweep_sub(c, r0, M, Err, bw, b0, s0, s1, Snap)) return false;
        if (s1 < b1)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)(b1 - s1), (int)(s1 - s0), -1.0,
                        Err + (s0 - b0), (int)bw, c->U + s0 * n + s1, (int)n, 1.0, Wc + s1, (int)n);
    }
    return true;
}

/* Rows per sweep task: about 16 tasks for the threads to share, 16 to ROWS_MAX rows (tall
 * enough to amortize the packing of U in the block GEMMs). A function of `out` only, so
 * the BLAS calls, and the bits, are the same for every thread count. */
static int64_t chunk_rows(int64_t out)
{
    int64_t r = (out / 16) & ~(int64_t)7;
    return r < 16 ? 16 : r > ROWS_MAX ? ROWS_MAX : r;
}

/* The column sweep. The updates are applied at three levels: column by column inside a
 * sub-block, by a small GEMM from each sub-block to the rest of its block, and by a GEMM
 * from each block to all the columns after it. Most of the work then runs in BLAS kernels
 * (AVX2/FMA picked at run time by OpenBLAS) rather than in our baseline-ISA loops. Chunks
 * of rows run the whole sweep independently: no barrier per block, so a descheduled thread
 * (a loaded machine) delays only its own chunks; the price is that each chunk packs the U
 * panel of a block GEMM itself, hence chunks as tall as the balance allows. Err: [out,
 * min(bs, in)]. */
static void sweep(sweep_ctx *c, int64_t out, double *Err)
{
    const int64_t n = c->in, rows = chunk_rows(out), nchunks = (out + rows - 1) / rows, bsz = min64(c->bs, n);
#pragma omp parallel if (nchunks > 1)
    {
        blas_serial();
        /* group-fit snapshot of this thread's rows, [rows, n] */
        double *Snap = c->static_groups ? NULL : malloc((size_t)(rows * n) * sizeof *Snap);
        if (!c->static_groups && !Snap) sweep_fail(c, -1, -1);
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < nchunks; k++) {
            const int64_t r0 = k * rows, M = min64(rows, out - r0);
            double *E = Err + r0 * bsz; /* [M, bw] for each block, bw <= bsz */
            if (!c->static_groups && !Snap) continue;
            for (int64_t b0 = 0, b1; b0 < n; b0 = b1) {
                b1 = block_end(c, b0);
                const int64_t bw = b1 - b0;
                if (!sweep_block(c, r0, r0 + M, b0, b1, E, Snap)) break;
                if (b1 < n)
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)(n - b1), (int)bw, -1.0, E,
                                (int)bw, c->U + b0 * n + b1, (int)n, 1.0, c->W + r0 * n + b1, (int)n);
            }
        }
        free(Snap);
    }
}

/* ---- entry point --------------------------------------------------------------------- */

static llmsq_status check_inputs(const float *W, int64_t out, int64_t in, const double *H)
{
    if (out < 1) return llmsq_error(LLMSQ_STATUS_ARG, "GPTQ: the linear has %lld output rows", (long long)out);
    if (out > INT_MAX || in > INT_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "GPTQ: [%lld, %lld] exceeds the BLAS integer range", (long long)out,
                           (long long)in);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            if (!isfinite(W[o * in + i]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "GPTQ: weight [%lld, %lld] is not finite (%g)", (long long)o,
                                   (long long)i, (double)W[o * in + i]);
    for (int64_t i = 0; i < in; i++)
        for (int64_t j = 0; j < in; j++)
            if (!isfinite(H[i * in + j]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "GPTQ: Hessian element [%lld, %lld] is not finite (%g)",
                                   (long long)i, (long long)j, H[i * in + j]);
    return LLMSQ_OK;
}

/* Static groups: scales and zeros from the original (dead-zeroed, unpermuted) W. */
static llmsq_status fit_static_groups(const float *W, const unsigned char *dead, const llmsq_quant_params *p,
                                      llmsq_qlinear *q)
{
    const int64_t in = q->in, G = q->group_size;
    for (int64_t o = 0; o < q->out; o++)
        for (int64_t g = 0; g < q->n_groups; g++) {
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t i = g * G; i < min64((g + 1) * G, in); i++) {
                const double x = dead[i] ? 0.0 : W[o * in + i];
                lo = fmin(lo, x);
                hi = fmax(hi, x);
            }
            const llmsq_status st = llmsq_grid_fit(p->grid, p->bits, p->zero_min_one, p->scale_dtype, lo, hi,
                                                   &q->scales[o * q->n_groups + g], &q->zeros[o * q->n_groups + g]);
            if (st != LLMSQ_OK)
                return llmsq_error_prefix(st, "GPTQ: row %lld, static group %lld", (long long)o, (long long)g);
        }
    return LLMSQ_OK;
}

llmsq_status llmsq_gptq_quantize(const float *W, int64_t out, int64_t in, double *H, const llmsq_quant_params *p,
                                 llmsq_qlinear **q, llmsq_gptq_stats *stats)
{
    LLMSQ_ASSERT(W != NULL && H != NULL && q != NULL);
    *q = NULL;
    const double t0 = llmsq_time_now();
    LLMSQ_TRY(llmsq_quant_params_check(p, in, true));
    LLMSQ_TRY(check_inputs(W, out, in, H));
    const int64_t n = in;

    llmsq_qlinear *r = NULL;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, p->bits, p->group_size, p->grid, p->act_order, &r));
    r->act_order = p->act_order;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    int32_t *colgroup = malloc((size_t)n * sizeof *colgroup);
    double *d0 = malloc((size_t)n * sizeof *d0);
    double *T = malloc((size_t)(n * LLMSQ_HINV_NB) * sizeof *T); /* trinv panel, also row scratch */
    unsigned char *dead = calloc((size_t)n, 1);
    double *W64 = malloc((size_t)(out * n) * sizeof *W64);
    double *loss = calloc((size_t)out, sizeof *loss);
    double *Err = malloc((size_t)(out * min64(p->block_size, n)) * sizeof *Err); /* [out, block] */
    llmsq_status st = LLMSQ_OK;
    if (!perm || !colgroup || !d0 || !T || !dead || !W64 || !loss || !Err) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "GPTQ: out of memory for a [%lld, %lld] linear", (long long)out,
                         (long long)in);
        goto done;
    }

    llmsq_hinv_mirror(H, n, true); /* the lower triangle is authoritative, as for torch.linalg.cholesky */
    int64_t n_dead = 0;
    double diag_sum = 0;
    for (int64_t j = 0; j < n; j++) {
        if (H[j * n + j] == 0) {
            H[j * n + j] = 1;
            dead[j] = 1;
            n_dead++;
        }
        d0[j] = H[j * n + j];
        diag_sum += d0[j];
    }
    const double diag_mean = diag_sum / (double)n;
    if (!(diag_mean > 0) || !isfinite(diag_mean)) {
        st = llmsq_error(LLMSQ_STATUS_NUMERIC, "GPTQ: mean(diag H) = %g is not positive: H is not a Hessian",
                         diag_mean);
        goto done;
    }
    if (p->static_groups && (st = fit_static_groups(W, dead, p, r)) != LLMSQ_OK) goto done;

    for (int64_t j = 0; j < n; j++) perm[j] = j;
    if (p->act_order) {
        act_order_perm(d0, n, perm, (diag_key *)T); /* T holds n * LLMSQ_HINV_NB doubles, plenty for n keys */
        permute_sym(H, n, perm, T, (unsigned char *)(T + n));
        for (int64_t j = 0; j < n; j++) d0[j] = H[j * n + j];
    }
    /* Static groups follow the original columns, the others the sweep order. */
    for (int64_t j = 0; j < n; j++) colgroup[j] = (int32_t)((p->static_groups ? perm[j] : j) / r->group_size);
    if (p->act_order)
        for (int64_t j = 0; j < n; j++) r->g_idx[perm[j]] = colgroup[j];
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < n; j++) W64[o * n + j] = dead[perm[j]] ? 0.0 : (double)W[o * n + perm[j]];

    double damp = 0;
    int raises = 0;
    if ((st = llmsq_hinv_upper(H, n, d0, diag_mean, p->damp, perm, "GPTQ", T, &damp, &raises)) != LLMSQ_OK) goto done;

    sweep_ctx c = {
        .in = n, .G = r->group_size, .bs = p->block_size, .maxq = (1 << p->bits) - 1,
        .static_groups = p->static_groups, .p = p, .U = H, .perm = perm, .colgroup = colgroup, .W = W64, .q = r,
        .loss = loss, .bad_row = INT64_MAX, .bad_col = -1,
    };
    sweep(&c, out, Err);
    if (c.bad_row == -1) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "GPTQ: out of memory for the group-fit snapshot");
        goto done;
    }
    if (c.bad_row != INT64_MAX) {
        st = llmsq_error(LLMSQ_STATUS_NUMERIC,
                         "GPTQ: row %lld diverged at column %lld (non-finite weight or scale after the error "
                         "updates; H is too ill-conditioned)",
                         (long long)c.bad_row, (long long)c.bad_col);
        goto done;
    }

    if (stats) {
        double total = 0;
        for (int64_t o = 0; o < out; o++) total += loss[o];
        stats->damp_used = damp;
        stats->damp_raises = raises;
        stats->dead_cols = n_dead;
        stats->loss = total;
        stats->seconds = llmsq_time_now() - t0;
    }
    *q = r;
    r = NULL;
done:
    llmsq_qlinear_free(r);
    free(perm);
    free(colgroup);
    free(d0);
    free(T);
    free(dead);
    free(W64);
    free(loss);
    free(Err);
    return st;
}
