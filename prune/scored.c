/*
 * Magnitude, Wanda and RIA: one score per weight, the lowest removed within each row
 * (locuslab/wanda lib/prune.py prune_magnitude / prune_wanda; RIA lib/prune.py), no update
 * of the kept weights.
 *
 * Scores, in double:
 *   magnitude  |W_ij|
 *   Wanda      |W_ij| * sqrt(sq_norm_j)
 *   RIA        (|W_ij| / R_i + |W_ij| / C_j) * pow(sqrt(sq_norm_j), a)
 *              R_i = sum_k |W_ik| (row i, summed in k order), C_j = sum_k |W_kj| (over the
 *              output rows, in k order); a term whose sum is 0 is 0 (its weights are all 0).
 * Unstructured: each row loses exactly floor(sparsity * in) weights (as Wanda's
 * sort(...)[:, :int(in * sparsity)]); N:M: in each group of M columns from column 0 the
 * M - N lowest are removed (a last partial group of L columns loses max(0, L - N)). Ties go
 * to the lower column (removed first): the order (score, column) is total, so the masks are
 * deterministic and independent of the thread count. The references use torch.sort /
 * topk whose tie order is unspecified.
 *
 * RIA's channel permutation (ria_permute) is not done here but by the pruning pass, before
 * this is called, for down_proj only: permuting W's input channels must be undone on their
 * producer, which folds exactly into gate/up's rows, but not for q/k/v, gate/up (the residual
 * stream, shared by every layer) or o_proj (attention heads).
 */
#include "llmsq/prune.h"

#include "prune/select.h"

#include <math.h>
#include <stdlib.h>

static llmsq_status check_scored(const float *W, int64_t out, int64_t in, const double *sq_norm,
                                 const llmsq_prune_params *p)
{
    LLMSQ_TRY(llmsq_prune_params_validate(p));
    if (p->method == LLMSQ_PRUNE_SPARSEGPT)
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: SparseGPT needs a Hessian: use llmsq_sparsegpt_prune");
    if (out < 1 || in < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: the linear is [%lld, %lld], need at least [1, 1]",
                           (long long)out, (long long)in);
    if (p->method != LLMSQ_PRUNE_MAGNITUDE) {
        if (!sq_norm)
            return llmsq_error(LLMSQ_STATUS_ARG, "pruning: %s needs the input channel norms (sq_norm is NULL)",
                               p->method == LLMSQ_PRUNE_WANDA ? "Wanda" : "RIA");
        for (int64_t j = 0; j < in; j++)
            if (!(sq_norm[j] >= 0.0) || !isfinite(sq_norm[j]))
                return llmsq_error(LLMSQ_STATUS_ARG,
                                   "pruning: squared input norm of channel %lld is %g (need finite and >= 0)",
                                   (long long)j, sq_norm[j]);
    }
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            if (!isfinite(W[o * in + i]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "pruning: weight [%lld, %lld] is not finite (%g)",
                                   (long long)o, (long long)i, (double)W[o * in + i]);
    return LLMSQ_OK;
}

/* Per-column factors: act[j] = 1 (magnitude), ||X_j|| (Wanda), ||X_j||^a (RIA); for RIA also
 * the column sums of |W| (*colsum, NULL otherwise). malloc'd; NOMEM. */
static llmsq_status column_factors(const float *W, int64_t out, int64_t in, const double *sq_norm,
                                   const llmsq_prune_params *p, double **act_out, double **colsum_out)
{
    double *act = malloc((size_t)in * sizeof *act);
    double *colsum = p->method == LLMSQ_PRUNE_RIA ? calloc((size_t)in, sizeof *colsum) : NULL;
    if (!act || (p->method == LLMSQ_PRUNE_RIA && !colsum)) {
        free(act);
        free(colsum);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "pruning: out of memory for a [%lld, %lld] linear", (long long)out,
                           (long long)in);
    }
    for (int64_t j = 0; j < in; j++)
        act[j] = p->method == LLMSQ_PRUNE_MAGNITUDE ? 1.0
                 : p->method == LLMSQ_PRUNE_WANDA   ? sqrt(sq_norm[j])
                                                    : pow(sqrt(sq_norm[j]), p->ria_alpha);
    if (colsum)
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) colsum[j] += fabs((double)W[o * in + j]);
    *act_out = act;
    *colsum_out = colsum;
    return LLMSQ_OK;
}

/* keys[j] = (score of w[j], j) for one row w [in] */
static void row_scores(const float *w, int64_t in, const double *act, const double *colsum, prune_key *keys)
{
    double rowsum = 0;
    if (colsum)
        for (int64_t j = 0; j < in; j++) rowsum += fabs((double)w[j]);
    for (int64_t j = 0; j < in; j++) {
        const double a = fabs((double)w[j]);
        const double s = colsum ? ((rowsum > 0 ? a / rowsum : 0.0) + (colsum[j] > 0 ? a / colsum[j] : 0.0)) * act[j]
                                : a * act[j];
        keys[j] = (prune_key){s, j};
    }
}

llmsq_status llmsq_prune_score_matrix(const float *W, int64_t out, int64_t in, const double *sq_norm,
                                      const llmsq_prune_params *p, float *score)
{
    LLMSQ_TRY(check_scored(W, out, in, sq_norm, p));
    double *act, *colsum;
    LLMSQ_TRY(column_factors(W, out, in, sq_norm, p, &act, &colsum));
    prune_key *keys = malloc((size_t)in * sizeof *keys);
    if (!keys) {
        free(act), free(colsum);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "pruning: out of memory for the scores");
    }
    for (int64_t o = 0; o < out; o++) {
        row_scores(W + o * in, in, act, colsum, keys);
        for (int64_t j = 0; j < in; j++) score[o * in + j] = (float)keys[j].v;
    }
    free(keys), free(act), free(colsum);
    return LLMSQ_OK;
}

llmsq_status llmsq_prune_scored(float *W, int64_t out, int64_t in, const double *sq_norm, const llmsq_prune_params *p)
{
    LLMSQ_ASSERT(W != NULL && p != NULL);
    LLMSQ_TRY(check_scored(W, out, in, sq_norm, p));
    const bool nm = p->nm_m > 0;
    if (!nm && (int64_t)(p->sparsity * (double)in) == 0) return LLMSQ_OK;
    double *act, *colsum;
    LLMSQ_TRY(column_factors(W, out, in, sq_norm, p, &act, &colsum));

    bool nomem = false;
#pragma omp parallel
    {
        prune_key *keys = malloc((size_t)in * sizeof *keys);
        if (!keys) {
#pragma omp atomic write
            nomem = true;
        }
#pragma omp for schedule(static)
        for (int64_t o = 0; o < out; o++) {
            if (!keys) continue;
            float *w = W + o * in;
            row_scores(w, in, act, colsum, keys);
            if (!nm) {
                const int64_t k = (int64_t)(p->sparsity * (double)in);
                prune_select_smallest(keys, in, k);
                for (int64_t t = 0; t < k; t++) w[keys[t].i] = 0.0f;
            } else {
                for (int64_t g = 0; g < in; g += p->nm_m) {
                    const int64_t L = g + p->nm_m < in ? p->nm_m : in - g, k = L - p->nm_n;
                    if (k <= 0) continue;
                    prune_sort_small(keys + g, L);
                    for (int64_t t = 0; t < k; t++) w[keys[g + t].i] = 0.0f;
                }
            }
        }
        free(keys);
    }
    free(act);
    free(colsum);
    if (nomem) return llmsq_error(LLMSQ_STATUS_NOMEM, "pruning: out of memory for the score buffers");
    return LLMSQ_OK;
}
