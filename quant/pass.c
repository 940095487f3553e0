/* RTN and GPTQ as calibration passes: the runner hands each block linear (and its Hessian
 * for GPTQ); the pass quantizes it and records its error for the report. */
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
};

static bool wants(void *user, const char *module)
{
    llmsq_quant_pass *qp = user;
    return !qp->has_ignore || regexec(&qp->ignore, module, 0, NULL, 0) != 0;
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
    llmsq_status st = qp->method == LLMSQ_QUANT_GPTQ
                          ? llmsq_gptq_quantize(job->W, job->out, job->in, job->H, &qp->params, out, &gs)
                          : llmsq_rtn_quantize(job->W, job->out, job->in, &qp->params, out);
    if (st != LLMSQ_OK) return st;
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
    qp->pass = (llmsq_calib_pass){.name = method == LLMSQ_QUANT_GPTQ ? "gptq" : "rtn",
                                  .needs_hessian = method == LLMSQ_QUANT_GPTQ,
                                  .wants = wants,
                                  .run = run,
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
