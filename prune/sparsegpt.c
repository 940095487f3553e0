/*
 * SparseGPT (Frantar & Alistarh 2023, arXiv 2301.00774; reference code IST-DASLab/sparsegpt
 * sparsegpt.py, SparseGPT.fasterprune), with GPTQ's factorization (quant/hinv.c) and grids
 * (quant/grid.h).
 *
 * Per linear W [out, in] with Hessian H [in, in], as fasterprune:
 *   1. dead columns (H_jj == 0): H_jj = 1, W[:, j] = 0;
 *   2. H_jj += damp * mean(diag H); U = upper Cholesky factor of H^-1 (raised like GPTQ when
 *      the factorization fails);
 *   3. blocks [b0, b1) of block_size columns:
 *      unstructured: the block's mask is chosen at its start over the whole block (all rows
 *        and its columns, as the reference's tmp.flatten()): the floor(out * bw * sparsity)
 *        entries with the smallest w^2 / U_jj^2 are removed;
 *      N:M: at every column j with j % M == 0, per row, the M - N columns of j .. j + M - 1
 *        with the smallest w^2 / U_jj^2 (on the current, updated w) are removed (a last
 *        partial group of L columns loses max(0, L - N));
 *      then column by column: q = 0 (removed) or w (kept), or q = Q(q) on the grid when
 *      quantizing; e = (w - q) / U_jj; w_k -= e U_jk for the block's later columns;
 *      after the block, W[:, b1:] -= E U[b0:b1, b1:] (one GEMM).
 *   loss = sum of e^2 / 2 (the reference's Losses).
 *
 * Where we differ from the reference code, and why:
 *  - Unstructured count: the reference prunes tmp <= sort(tmp)[int(numel * sparsity)], i.e.
 *    int(numel * sparsity) + 1 entries per block plus any ties (one weight per block even at
 *    sparsity 0). We remove exactly floor(numel * sparsity), the smallest in the total order
 *    (score, row-major index), so the layer's sparsity is the one asked for and ties are
 *    deterministic. Per-row sparsity then varies (the reference's adaptive mask); the total
 *    per block is exact.
 *  - N:M groups are global (start at column 0, prune.h); the reference counts i % prunem
 *    from each block's start. Both agree when block_size % M == 0 (the default 128 and every
 *    M dividing it); otherwise the block is shortened to a multiple of M so that no group
 *    straddles two blocks. prune.h's N is the number kept (the reference's prunen is the
 *    number removed: --prunen 2 --prunem 4 is our 2:4 as well).
 *  - Joint quantization uses quant.h's grids with per-group parameters fitted like GPTQ's:
 *    a group starting in a block is fitted on its columns as they are when the block starts
 *    (every earlier block's update, none of this block's), including the entries about to
 *    be removed. The reference fits one per-row grid on the original W before the sweep.
 *    A removed entry gets code = zero point, so it dequantizes to exactly 0 (every grid
 *    holds 0: lo <= 0 <= hi). act_order and static_groups are not supported together with
 *    pruning (ARG).
 *  - Determinism: the factorization is quant/hinv.c's; the sweep runs on fixed chunks of
 *    rows with single-threaded BLAS calls, the block masks are chosen by a deterministic
 *    selection between the blocks: any thread count gives the same bytes.
 */
#include "llmsq/prune.h"

#include "llmsq/runtime.h"
#include "prune/select.h"
#include "quant/grid.h"
#include "quant/hinv.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS_MAX = 128 };

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Rows per sweep task, a function of `out` only (as GPTQ's). */
static int64_t chunk_rows(int64_t out)
{
    int64_t r = (out / 16) & ~(int64_t)7;
    return r < 16 ? 16 : r > ROWS_MAX ? ROWS_MAX : r;
}

typedef struct sgpt_ctx {
    int64_t                   out, in, bs;
    int                       nm_n, nm_m; /* 0 = unstructured */
    bool                      quantize;
    int                       maxq;
    const llmsq_quant_params *qp;
    const double             *U;    /* [in, in] upper factor (upper triangle) */
    double                   *W;    /* [out, in] double, updated in place */
    unsigned char            *mask; /* [out, bs]: 1 = removed, for the current block */
    double                   *Err;  /* [out, bs] */
    double                   *loss; /* [out] */
    llmsq_qlinear            *q;
    int64_t                   bad_row, bad_col;
} sgpt_ctx;

static void sgpt_fail(sgpt_ctx *c, int64_t row, int64_t col)
{
#pragma omp critical(llmsq_sparsegpt_fail)
    if (row < c->bad_row) {
        c->bad_row = row;
        c->bad_col = col;
    }
}

/* Unstructured mask of block [b0, b1): the k smallest w^2 / U_jj^2 over all rows. */
static void block_mask(sgpt_ctx *c, int64_t b0, int64_t b1, int64_t k, prune_key *keys)
{
    const int64_t n = c->in, bw = b1 - b0, out = c->out;
#pragma omp parallel for schedule(static) if (out * bw > 65536)
    for (int64_t r = 0; r < out; r++)
        for (int64_t j = b0; j < b1; j++) {
            const double w = c->W[r * n + j], d = c->U[j * n + j];
            keys[r * bw + (j - b0)] = (prune_key){(w * w) / (d * d), r * bw + (j - b0)};
        }
    memset(c->mask, 0, (size_t)(out * bw));
    prune_select_smallest(keys, out * bw, k);
    for (int64_t t = 0; t < k; t++) c->mask[keys[t].i] = 1;
}

/* Block [b0, b1) of rows [r0, r0 + M). Returns false after recording a failure. */
static bool sweep_block(sgpt_ctx *c, int64_t r0, int64_t M, int64_t b0, int64_t b1)
{
    const int64_t n = c->in, bw = b1 - b0;
    double *Wc = c->W + r0 * n, *E = c->Err + r0 * bw;
    unsigned char *mk = c->mask + r0 * bw;
    llmsq_qlinear *q = c->q;
    if (c->quantize) { /* groups starting in this block, fitted on the block-start columns */
        const int64_t G = q->group_size, ng = q->n_groups;
        for (int64_t g = (b0 + G - 1) / G; g * G < b1; g++) {
            const int64_t j0 = g * G, e = min64(j0 + G, n);
            for (int64_t r = 0; r < M; r++) {
                const double *w = Wc + r * n;
                double lo = w[j0], hi = w[j0];
                for (int64_t k = j0 + 1; k < e; k++) {
                    lo = w[k] < lo ? w[k] : lo;
                    hi = w[k] > hi ? w[k] : hi;
                }
                const int64_t rg = (r0 + r) * ng + g;
                if (!isfinite(lo) || !isfinite(hi) ||
                    llmsq_grid_fit(c->qp->grid, c->qp->bits, c->qp->zero_min_one, c->qp->scale_dtype, lo, hi,
                                   &q->scales[rg], &q->zeros[rg]) != LLMSQ_OK) {
                    sgpt_fail(c, r0 + r, j0);
                    return false;
                }
            }
        }
    }
    double loss[ROWS_MAX] = {0};
    for (int64_t j = b0; j < b1; j++) {
        const double *u = c->U + j * n;
        const int64_t jl = j - b0;
        if (c->nm_m > 0 && j % c->nm_m == 0) {
            const int64_t L = min64(c->nm_m, n - j), k = L - c->nm_n;
            if (k > 0)
                for (int64_t r = 0; r < M; r++) {
                    const double *w = Wc + r * n;
                    prune_key keys[64];
                    for (int64_t t = 0; t < L; t++) {
                        const double d = c->U[(j + t) * n + (j + t)];
                        keys[t] = (prune_key){(w[j + t] * w[j + t]) / (d * d), t};
                    }
                    prune_sort_small(keys, L);
                    for (int64_t t = 0; t < k; t++) mk[r * bw + jl + keys[t].i] = 1;
                }
        }
        const int64_t g = q ? j / q->group_size : 0;
        for (int64_t r = 0; r < M; r++) {
            double *w = Wc + r * n;
            const double x = w[j];
            if (!isfinite(x)) {
                sgpt_fail(c, r0 + r, j);
                return false;
            }
            double qv = mk[r * bw + jl] ? 0.0 : x;
            if (c->quantize) {
                const int64_t rg = (r0 + r) * q->n_groups + g;
                const double s = q->scales[rg];
                const int32_t z = q->zeros[rg];
                const int code = llmsq_grid_code(qv, s, z, c->maxq);
                q->codes[(r0 + r) * n + j] = (uint8_t)code;
                qv = s * (double)(code - z);
            }
            const double e = (x - qv) / u[j];
            loss[r] += e * e;
            E[r * bw + jl] = e;
            w[j] = qv;
#pragma omp simd
            for (int64_t k = j + 1; k < b1; k++) w[k] -= e * u[k];
        }
    }
    for (int64_t r = 0; r < M; r++) c->loss[r0 + r] += 0.5 * loss[r];
    return true;
}

/* The sweep: blocks in order; for each, the mask (unstructured) and then every chunk of rows
 * in parallel: the block's columns, and the lazy update of the later columns. */
static llmsq_status sweep(sgpt_ctx *c, double sparsity)
{
    const int64_t n = c->in, out = c->out, rows = chunk_rows(out), nchunks = (out + rows - 1) / rows;
    prune_key *keys = NULL;
    if (c->nm_m == 0) {
        keys = malloc((size_t)(out * min64(c->bs, n)) * sizeof *keys);
        if (!keys) return llmsq_error(LLMSQ_STATUS_NOMEM, "SparseGPT: out of memory for the block scores");
    }
    for (int64_t b0 = 0, b1; b0 < n && c->bad_row == INT64_MAX; b0 = b1) {
        b1 = min64(b0 + c->bs, n);
        const int64_t bw = b1 - b0;
        if (c->nm_m == 0)
            block_mask(c, b0, b1, (int64_t)((double)(out * bw) * sparsity), keys);
        else
            memset(c->mask, 0, (size_t)(out * bw));
#pragma omp parallel if (nchunks > 1)
        {
            llmsq_blas_serial();
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < nchunks; t++) {
                const int64_t r0 = t * rows, M = min64(rows, out - r0);
                if (!sweep_block(c, r0, M, b0, b1)) continue;
                if (b1 < n)
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)(n - b1), (int)bw, -1.0,
                                c->Err + r0 * bw, (int)bw, c->U + b0 * n + b1, (int)n, 1.0, c->W + r0 * n + b1,
                                (int)n);
            }
        }
    }
    free(keys);
    return LLMSQ_OK;
}

static llmsq_status check_inputs(const float *W, int64_t out, int64_t in, const double *H,
                                 const llmsq_prune_params *p)
{
    LLMSQ_TRY(llmsq_prune_params_validate(p));
    if (p->method != LLMSQ_PRUNE_SPARSEGPT)
        return llmsq_error(LLMSQ_STATUS_ARG, "SparseGPT: the method must be sparsegpt (got %d)", (int)p->method);
    if (out < 1 || in < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "SparseGPT: the linear is [%lld, %lld], need at least [1, 1]",
                           (long long)out, (long long)in);
    if (out > INT_MAX || in > INT_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "SparseGPT: [%lld, %lld] exceeds the BLAS integer range",
                           (long long)out, (long long)in);
    if (p->quantize) {
        LLMSQ_TRY(llmsq_quant_params_check(&p->quant, in, false));
        if (p->quant.act_order || p->quant.static_groups)
            return llmsq_error(LLMSQ_STATUS_ARG,
                               "SparseGPT: act_order and static_groups are not supported with joint quantization");
    }
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            if (!isfinite(W[o * in + i]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "SparseGPT: weight [%lld, %lld] is not finite (%g)",
                                   (long long)o, (long long)i, (double)W[o * in + i]);
    for (int64_t i = 0; i < in; i++)
        for (int64_t j = 0; j < in; j++)
            if (!isfinite(H[i * in + j]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "SparseGPT: Hessian element [%lld, %lld] is not finite (%g)",
                                   (long long)i, (long long)j, H[i * in + j]);
    return LLMSQ_OK;
}

llmsq_status llmsq_sparsegpt_prune(float *W, int64_t out, int64_t in, double *H, const llmsq_prune_params *p,
                                   llmsq_qlinear **q, llmsq_sparsegpt_stats *stats)
{
    LLMSQ_ASSERT(W != NULL && H != NULL && p != NULL);
    LLMSQ_ASSERT(!p->quantize || q != NULL);
    if (q) *q = NULL;
    const double t0 = llmsq_time_now();
    LLMSQ_TRY(check_inputs(W, out, in, H, p));
    const int64_t n = in;
    int64_t bs = min64(p->block_size, n);
    if (p->nm_m > 0 && bs % p->nm_m != 0 && bs < n) bs = bs < p->nm_m ? p->nm_m : bs - bs % p->nm_m;
    bs = min64(bs, n);

    llmsq_qlinear *r = NULL;
    if (p->quantize)
        LLMSQ_TRY(llmsq_qlinear_create(out, in, p->quant.bits, p->quant.group_size, p->quant.grid, false, &r));
    double *d0 = malloc((size_t)n * sizeof *d0);
    double *T = malloc((size_t)(n * LLMSQ_HINV_NB) * sizeof *T);
    double *W64 = malloc((size_t)(out * n) * sizeof *W64);
    double *loss = calloc((size_t)out, sizeof *loss);
    double *Err = malloc((size_t)(out * bs) * sizeof *Err);
    unsigned char *mask = malloc((size_t)(out * bs));
    unsigned char *dead = calloc((size_t)n, 1);
    llmsq_status st = LLMSQ_OK;
    if (!d0 || !T || !W64 || !loss || !Err || !mask || !dead) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "SparseGPT: out of memory for a [%lld, %lld] linear", (long long)out,
                         (long long)in);
        goto done;
    }

    llmsq_hinv_mirror(H, n, true); /* the lower triangle is authoritative, as for torch.linalg.cholesky */
    double diag_sum = 0;
    for (int64_t j = 0; j < n; j++) {
        if (H[j * n + j] == 0) {
            H[j * n + j] = 1;
            dead[j] = 1;
        }
        d0[j] = H[j * n + j];
        diag_sum += d0[j];
    }
    const double diag_mean = diag_sum / (double)n;
    if (!(diag_mean > 0) || !isfinite(diag_mean)) {
        st = llmsq_error(LLMSQ_STATUS_NUMERIC, "SparseGPT: mean(diag H) = %g is not positive: H is not a Hessian",
                         diag_mean);
        goto done;
    }
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < n; j++) W64[o * n + j] = dead[j] ? 0.0 : (double)W[o * n + j];

    double damp = 0;
    int raises = 0;
    if ((st = llmsq_hinv_upper(H, n, d0, diag_mean, p->damp, NULL, "SparseGPT", T, &damp, &raises)) != LLMSQ_OK)
        goto done;

    const bool nm = p->nm_m > 0;
    sgpt_ctx c = {
        .out = out, .in = n, .bs = bs, .nm_n = nm ? p->nm_n : 0, .nm_m = nm ? p->nm_m : 0,
        .quantize = p->quantize, .maxq = (1 << p->quant.bits) - 1, .qp = &p->quant, .U = H, .W = W64,
        .mask = mask, .Err = Err, .loss = loss, .q = r, .bad_row = INT64_MAX, .bad_col = -1,
    };
    if ((st = sweep(&c, p->sparsity)) != LLMSQ_OK) goto done;
    if (c.bad_row != INT64_MAX) {
        st = llmsq_error(LLMSQ_STATUS_NUMERIC,
                         "SparseGPT: row %lld diverged at column %lld (non-finite weight or scale after the error "
                         "updates; H is too ill-conditioned)",
                         (long long)c.bad_row, (long long)c.bad_col);
        goto done;
    }

    if (r)
        llmsq_qlinear_dequant(r, W);
    else
        for (int64_t i = 0; i < out * n; i++) W[i] = (float)W64[i];
    if (stats) {
        double total = 0;
        for (int64_t o = 0; o < out; o++) total += loss[o];
        stats->damp_used = damp;
        stats->damp_raises = raises;
        stats->loss = total;
        stats->seconds = llmsq_time_now() - t0;
    }
    if (q) *q = r;
    r = NULL;
done:
    llmsq_qlinear_free(r);
    free(d0);
    free(T);
    free(W64);
    free(loss);
    free(Err);
    free(mask);
    free(dead);
    return st;
}
