/* The quantizers as calibration passes: the runner hands each block linear (and its Hessian
 * for GPTQ); the pass quantizes it and records its error for the report. AWQ and SmoothQuant
 * first transform the whole block (run_block, awq.h), then quantize like RTN/GPTQ. */
#include "quant/awq.h"
#include "llmsq/calib.h"
#include "llmsq/quant.h"
#include "llmsq/runtime.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct llmsq_quant_pass {
    llmsq_calib_pass    pass;
    llmsq_quant_method  method;
    llmsq_quant_params  params;
    bool                has_ignore;
    regex_t             ignore;
    llmsq_quant_record *records;
    size_t              n, cap;
    float               act_scale[LLMSQ_LINEAR_COUNT]; /* static W8A8 scales of the current layer */
};

static bool selected(const llmsq_quant_pass *qp, const char *module)
{
    return !qp->has_ignore || regexec(&qp->ignore, module, 0, NULL, 0) != 0;
}

static bool wants(void *user, const char *module)
{
    llmsq_quant_pass *qp = user;
    return !qp->params.awq_apply_only && selected(qp, module);
}

static llmsq_status run_block(void *user, llmsq_model *m, int64_t layer, const llmsq_block_calib *in)
{
    llmsq_quant_pass *qp = user;
    bool wanted[LLMSQ_LINEAR_COUNT];
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
        char module[128];
        wanted[i] = selected(qp, llmsq_linear_module(layer, (llmsq_linear_id)i, module, sizeof module));
    }
    if (qp->method == LLMSQ_QUANT_SMOOTHQUANT || qp->method == LLMSQ_QUANT_W8A8)
        return llmsq_smooth_block(m, layer, in, &qp->params, qp->method == LLMSQ_QUANT_SMOOTHQUANT, wanted,
                                  qp->act_scale);
    llmsq_awq_layer_report rep;
    LLMSQ_TRY(llmsq_awq_block(m, layer, in, &qp->params, wanted, &rep));
    static const char *const names[LLMSQ_AWQ_GROUPS] = {"qkv", "o", "gate/up", "down"};
    char line[256];
    int len = snprintf(line, sizeof line, "layer %lld: AWQ", (long long)layer);
    for (int g = 0; g < LLMSQ_AWQ_GROUPS && len < (int)sizeof line; g++)
        if (rep.searched[g])
            len += snprintf(line + len, sizeof line - (size_t)len, " %s a=%.2f (loss x%.2f)", names[g], rep.ratio[g],
                            rep.loss_plain[g] > 0 ? rep.loss[g] / rep.loss_plain[g] : 1.0);
    if (len < (int)sizeof line)
        snprintf(line + len, sizeof line - (size_t)len, "; %lld groups clipped", (long long)rep.clipped_groups);
    llmsq_log("%s", line);
    return LLMSQ_OK;
}

static double rel_error(const float *W, const llmsq_qlinear *q)
{
    float *D = malloc((size_t)(q->out * q->in) * sizeof *D);
    if (!D) return NAN;
    llmsq_qlinear_dequant(q, D);
    double num = 0, den = 0;
    for (int64_t i = 0; i < q->out * q->in; i++) {
        double e = (double)W[i] - D[i];
        num += e * e;
        den += (double)W[i] * W[i];
    }
    free(D);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static llmsq_status run(void *user, const llmsq_linear_job *job, llmsq_qlinear **out)
{
    llmsq_quant_pass *qp = user;
    LLMSQ_TRY(llmsq_quant_params_validate(&qp->params, job->in));
    double t0 = llmsq_time_now();
    llmsq_gptq_stats gs = {0};
    const bool gptq = qp->method == LLMSQ_QUANT_GPTQ || qp->method == LLMSQ_QUANT_AWQ_GPTQ;
    llmsq_status st = gptq ? llmsq_gptq_quantize(job->W, job->out, job->in, job->H, &qp->params, out, &gs)
                           : llmsq_rtn_quantize(job->W, job->out, job->in, &qp->params, out);
    if (st != LLMSQ_OK) return st;
    if (qp->method == LLMSQ_QUANT_SMOOTHQUANT || qp->method == LLMSQ_QUANT_W8A8) {
        (*out)->act_bits = 8;
        (*out)->act_static = qp->params.act_static;
        (*out)->act_scale = qp->params.act_static ? qp->act_scale[job->id] : 0.0f;
    }
    if (qp->n == qp->cap) {
        size_t cap = qp->cap ? 2 * qp->cap : 64;
        llmsq_quant_record *r = realloc(qp->records, cap * sizeof *r);
        if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        qp->records = r;
        qp->cap = cap;
    }
    llmsq_quant_record *r = &qp->records[qp->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->module, sizeof r->module, "%s", job->module);
    r->out = job->out;
    r->in = job->in;
    r->rel_err = rel_error(job->W, *out);
    r->gptq_loss = gs.loss;
    r->damp = gs.damp_used;
    r->seconds = llmsq_time_now() - t0;
    if (gs.damp_raises)
        llmsq_log("%s: Cholesky failed, dampening raised %d time(s) to %g", job->module, gs.damp_raises, gs.damp_used);
    if (gs.dead_cols) llmsq_log("%s: %lld dead input column(s) (H_jj = 0) zeroed", job->module, (long long)gs.dead_cols);
    return LLMSQ_OK;
}

llmsq_status llmsq_quant_pass_create(llmsq_quant_method method, const llmsq_quant_params *p, const char *ignore,
                                     llmsq_quant_pass **out)
{
    if ((unsigned)method > LLMSQ_QUANT_W8A8) return llmsq_error(LLMSQ_STATUS_ARG, "unknown quantization method %d", (int)method);
    llmsq_quant_pass *qp = calloc(1, sizeof *qp);
    if (!qp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    qp->method = method;
    qp->params = *p;
    if (ignore && *ignore) {
        int rc = regcomp(&qp->ignore, ignore, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &qp->ignore, msg, sizeof msg);
            free(qp);
            return llmsq_error(LLMSQ_STATUS_ARG, "--ignore '%s': %s", ignore, msg);
        }
        qp->has_ignore = true;
    }
    static const char *const names[] = {[LLMSQ_QUANT_RTN] = "rtn", [LLMSQ_QUANT_GPTQ] = "gptq",
                                        [LLMSQ_QUANT_AWQ] = "awq", [LLMSQ_QUANT_AWQ_GPTQ] = "awq+gptq",
                                        [LLMSQ_QUANT_SMOOTHQUANT] = "smoothquant", [LLMSQ_QUANT_W8A8] = "w8a8"};
    const bool awq = method == LLMSQ_QUANT_AWQ || method == LLMSQ_QUANT_AWQ_GPTQ;
    const bool w8a8 = method == LLMSQ_QUANT_SMOOTHQUANT || method == LLMSQ_QUANT_W8A8;
    if (w8a8 && (p->bits != 8 || p->group_size != -1 || p->grid != LLMSQ_QGRID_ABSMAX)) {
        llmsq_quant_pass_free(qp);
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: W8A8 takes 8-bit per-channel symmetric weights (bits 8, group size "
                           "-1, ABSMAX grid)", names[method]);
    }
    /* calibration is needed for the block step unless the W8A8 activations are dynamic and unsmoothed */
    const bool block = awq || method == LLMSQ_QUANT_SMOOTHQUANT || (method == LLMSQ_QUANT_W8A8 && p->act_static);
    qp->pass = (llmsq_calib_pass){.name = names[method],
                                  .needs_hessian = method == LLMSQ_QUANT_GPTQ || method == LLMSQ_QUANT_AWQ_GPTQ,
                                  .wants = wants,
                                  .run = run,
                                  .run_block = block ? run_block : NULL,
                                  .fp_propagate = block,
                                  .user = qp};
    *out = qp;
    return LLMSQ_OK;
}

const llmsq_calib_pass *llmsq_quant_pass_calib(llmsq_quant_pass *qp) { return &qp->pass; }

size_t llmsq_quant_pass_records(const llmsq_quant_pass *qp, const llmsq_quant_record **records)
{
    *records = qp->records;
    return qp->n;
}

void llmsq_quant_pass_free(llmsq_quant_pass *qp)
{
    if (!qp) return;
    if (qp->has_ignore) regfree(&qp->ignore);
    free(qp->records);
    free(qp);
}
