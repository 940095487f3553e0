/* Pruning parameters: defaults and range checks; the sparsity and N:M helpers. */
#include "llmsq/prune.h"

#include <math.h>

llmsq_prune_params llmsq_prune_default_params(void)
{
    return (llmsq_prune_params){
        .method = LLMSQ_PRUNE_MAGNITUDE,
        .sparsity = 0.5,
        .nm_n = 0,
        .nm_m = 0,
        .damp = 0.01,
        .block_size = 128,
        .ria_alpha = 0.5,
        .ria_permute = false,
        .quantize = false,
        .quant = llmsq_quant_default_params(),
    };
}

llmsq_status llmsq_prune_params_validate(const llmsq_prune_params *p)
{
    LLMSQ_ASSERT(p != NULL);
    if (p->method != LLMSQ_PRUNE_MAGNITUDE && p->method != LLMSQ_PRUNE_WANDA && p->method != LLMSQ_PRUNE_SPARSEGPT &&
        p->method != LLMSQ_PRUNE_RIA)
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: unknown method %d (magnitude, wanda, sparsegpt or ria)",
                           (int)p->method);
    if (p->nm_n == 0 && p->nm_m == 0) {
        if (!(p->sparsity >= 0.0 && p->sparsity < 1.0)) /* also rejects NaN */
            return llmsq_error(LLMSQ_STATUS_ARG, "pruning: sparsity must be in [0, 1), the fraction removed (got %g)",
                               p->sparsity);
    } else {
        if (p->nm_n <= 0 || p->nm_m <= 0 || p->nm_m > 64)
            return llmsq_error(LLMSQ_STATUS_ARG, "pruning: N:M %d:%d: need 0 < N < M <= 64 (keep N of every M)",
                               p->nm_n, p->nm_m);
        if (p->nm_n >= p->nm_m)
            return llmsq_error(LLMSQ_STATUS_ARG, "pruning: N:M %d:%d: N must be smaller than M (keep N of every M)",
                               p->nm_n, p->nm_m);
    }
    if (!(p->damp > 0.0 && p->damp < 1.0))
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: damp must be in (0, 1), a fraction of mean(diag H) (got %g)",
                           p->damp);
    if (p->block_size < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: block size must be at least 1 column (got %lld)",
                           (long long)p->block_size);
    if (!(p->ria_alpha >= 0.0) || !isfinite(p->ria_alpha))
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: RIA alpha must be finite and >= 0 (got %g)", p->ria_alpha);
    if (p->quantize && p->method != LLMSQ_PRUNE_SPARSEGPT)
        return llmsq_error(LLMSQ_STATUS_ARG, "pruning: joint quantization (quantize) needs method sparsegpt");
    return LLMSQ_OK;
}

double llmsq_sparsity(const float *W, int64_t n)
{
    if (n <= 0) return 0.0;
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) z += W[i] == 0.0f;
    return (double)z / (double)n;
}

bool llmsq_check_nm(const float *W, int64_t out, int64_t in, int n, int m, int64_t *bad_row)
{
    LLMSQ_ASSERT(n >= 0 && m > 0);
    for (int64_t o = 0; o < out; o++) {
        const float *w = W + o * in;
        for (int64_t g = 0; g < in; g += m) {
            const int64_t e = g + m < in ? g + m : in;
            int nz = 0;
            for (int64_t j = g; j < e; j++) nz += w[j] != 0.0f;
            if (nz > n) {
                if (bad_row) *bad_row = o;
                return false;
            }
        }
    }
    if (bad_row) *bad_row = -1;
    return true;
}
