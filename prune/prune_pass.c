/* Pruning as a calibration pass: the runner hands each block linear with its Hessian
 * (SparseGPT) or channel statistics (Wanda, RIA); the pass prunes it (and quantizes it with
 * RTN afterwards, or inside SparseGPT's sweep) and records what it did. */
#include "llmsq/calib.h"
#include "llmsq/prune.h"
#include "llmsq/runtime.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct llmsq_prune_pass {
    llmsq_calib_pass     pass;
    llmsq_prune_params   params;
    bool                 then_rtn;  /* RTN after pruning (keeps zeros exactly: code(0) == z) */
    bool                 has_skip;
    regex_t              skip;
    llmsq_prune_record  *records;
    size_t               n, cap;
};

static bool wants(void *user, const char *module)
{
    llmsq_prune_pass *pp = user;
    return !pp->has_skip || regexec(&pp->skip, module, 0, NULL, 0) != 0;
}

static llmsq_status run_dense(void *user, const llmsq_linear_job *job, float *W, llmsq_qlinear **q)
{
    llmsq_prune_pass *pp = user;
    double t0 = llmsq_time_now();
    llmsq_sparsegpt_stats ss = {0};
    *q = NULL;
    if (pp->params.method == LLMSQ_PRUNE_SPARSEGPT) {
        LLMSQ_TRY(llmsq_sparsegpt_prune(W, job->out, job->in, job->H, &pp->params, pp->params.quantize ? q : NULL, &ss));
    } else {
        LLMSQ_TRY(llmsq_prune_scored(W, job->out, job->in, job->stats ? job->stats->sq_sum : NULL, &pp->params));
    }
    if (pp->then_rtn) LLMSQ_TRY(llmsq_rtn_quantize(W, job->out, job->in, &pp->params.quant, q));
    if (pp->n == pp->cap) {
        size_t cap = pp->cap ? 2 * pp->cap : 64;
        llmsq_prune_record *r = realloc(pp->records, cap * sizeof *r);
        if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        pp->records = r;
        pp->cap = cap;
    }
    llmsq_prune_record *r = &pp->records[pp->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->module, sizeof r->module, "%s", job->module);
    r->out = job->out;
    r->in = job->in;
    r->sparsity = llmsq_sparsity(W, job->out * job->in);
    double num = 0, den = 0;
    for (int64_t i = 0; i < job->out * job->in; i++) {
        double e = (double)job->W[i] - W[i];
        num += e * e;
        den += (double)job->W[i] * job->W[i];
    }
    r->rel_err = den > 0 ? sqrt(num / den) : sqrt(num);
    r->loss = ss.loss;
    r->seconds = llmsq_time_now() - t0;
    if (ss.damp_raises)
        llmsq_log("%s: Cholesky failed, dampening raised %d time(s) to %g", job->module, ss.damp_raises, ss.damp_used);
    return LLMSQ_OK;
}

/* RIA's channel permutation for down_proj (calib.h permute_input): the N:M permutation of its
 * input channels that keeps the most RIA score; the runner folds it into gate/up rows. */
static llmsq_status permute_input(void *user, const llmsq_linear_job *job, int32_t *perm, bool *use)
{
    llmsq_prune_pass *pp = user;
    *use = false;
    if (job->in % pp->params.nm_m) {
        llmsq_warn("%s: %lld input channels are not a multiple of M = %d: no channel permutation", job->module,
                   (long long)job->in, pp->params.nm_m);
        return LLMSQ_OK;
    }
    float *score = malloc((size_t)(job->out * job->in) * sizeof *score);
    if (!score) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for the RIA scores");
    double before = 0, after = 0;
    llmsq_status st = llmsq_prune_score_matrix(job->W, job->out, job->in, job->stats->sq_sum, &pp->params, score);
    if (st == LLMSQ_OK)
        st = llmsq_nm_permutation(score, job->out, job->in, pp->params.nm_n, pp->params.nm_m, 10, perm, &before, &after);
    free(score);
    if (st != LLMSQ_OK) return st;
    *use = after > before;
    llmsq_log("%s: channel permutation keeps %.2f%% more RIA score (%.6g -> %.6g)", job->module,
              before > 0 ? 100 * (after / before - 1) : 0.0, before, after);
    return LLMSQ_OK;
}

llmsq_status llmsq_prune_pass_create(const llmsq_prune_params *p, bool then_rtn, const char *skip,
                                     llmsq_prune_pass **out)
{
    LLMSQ_TRY(llmsq_prune_params_validate(p));
    if (then_rtn && p->quantize)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantize either inside SparseGPT or with RTN afterwards, not both");
    llmsq_prune_pass *pp = calloc(1, sizeof *pp);
    if (!pp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    pp->params = *p;
    pp->then_rtn = then_rtn;
    if (skip && *skip) {
        int rc = regcomp(&pp->skip, skip, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &pp->skip, msg, sizeof msg);
            free(pp);
            return llmsq_error(LLMSQ_STATUS_ARG, "--skip '%s': %s", skip, msg);
        }
        pp->has_skip = true;
    }
    static const char *const names[] = {"magnitude", "wanda", "sparsegpt", "ria"};
    pp->pass = (llmsq_calib_pass){.name = names[p->method],
                                  .needs_hessian = p->method == LLMSQ_PRUNE_SPARSEGPT,
                                  .needs_channel_stats = p->method == LLMSQ_PRUNE_WANDA || p->method == LLMSQ_PRUNE_RIA,
                                  .permute_input = p->method == LLMSQ_PRUNE_RIA && p->ria_permute && p->nm_m > 0
                                                       ? permute_input
                                                       : NULL,
                                  .wants = wants,
                                  .run_dense = run_dense,
                                  .user = pp};
    *out = pp;
    return LLMSQ_OK;
}

const llmsq_calib_pass *llmsq_prune_pass_calib(llmsq_prune_pass *pp) { return &pp->pass; }

size_t llmsq_prune_pass_records(const llmsq_prune_pass *pp, const llmsq_prune_record **records)
{
    *records = pp->records;
    return pp->n;
}

void llmsq_prune_pass_free(llmsq_prune_pass *pp)
{
    if (!pp) return;
    if (pp->has_skip) regfree(&pp->skip);
    free(pp->records);
    free(pp);
}
