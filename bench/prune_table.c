/* The pruning quality table of docs/pruning.md: perplexity of a model pruned in memory with
 * magnitude, Wanda, SparseGPT and RIA at 50% unstructured, 2:4 and 4:8, and 2:4 + 4-bit
 * against each alone, under the gptq protocol.
 *
 *   build/bench/bench_prune_table MODEL VALID_TEXT CALIB_TEXT [--seqlen L] [--group G]
 */
#include "llmsq/llmsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_model, *g_valid, *g_calib;
static int64_t g_seqlen = 512, g_group = 32;

static void die(void)
{
    fprintf(stderr, "error: %s\n", llmsq_last_error());
    exit(1);
}

/* Runs one pass (prune when pp != NULL, else GPTQ-quantize with qp) and returns the ppl. */
static double run(const llmsq_prune_params *pp, bool then_rtn, const llmsq_quant_params *qp, double *secs, double *sp)
{
    llmsq_model *m;
    if (llmsq_model_open(g_model, &m) != LLMSQ_OK) die();
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.seqlen = g_seqlen;
    cp.progress = false;
    cp.true_sequential = false; /* llmsq prune's default, as the reference harnesses */
    llmsq_dataset d;
    int32_t *tokens;
    if (llmsq_dataset_load(g_calib, LLMSQ_TEXT_AUTO, &d) != LLMSQ_OK) die();
    if (llmsq_calib_sample(llmsq_model_tokenizer(m), &d, &cp, &tokens) != LLMSQ_OK) die();
    llmsq_dataset_free(&d);
    double t0 = llmsq_time_now();
    *sp = 0;
    if (pp) {
        llmsq_prune_pass *pass;
        if (llmsq_prune_pass_create(pp, then_rtn, NULL, &pass) != LLMSQ_OK) die();
        if (llmsq_calib_run(m, tokens, &cp, llmsq_prune_pass_calib(pass)) != LLMSQ_OK) die();
        const llmsq_prune_record *r;
        size_t n = llmsq_prune_pass_records(pass, &r);
        double z = 0, t = 0;
        for (size_t i = 0; i < n; i++) z += r[i].sparsity * (double)(r[i].out * r[i].in), t += (double)(r[i].out * r[i].in);
        *sp = z / t;
        llmsq_prune_pass_free(pass);
    } else if (qp) {
        llmsq_quant_pass *pass;
        if (llmsq_quant_pass_create(LLMSQ_QUANT_GPTQ, qp, NULL, &pass) != LLMSQ_OK) die();
        if (llmsq_calib_run(m, tokens, &cp, llmsq_quant_pass_calib(pass)) != LLMSQ_OK) die();
        llmsq_quant_pass_free(pass);
    }
    *secs = llmsq_time_now() - t0;
    free(tokens);
    for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++)
        if (llmsq_model_rebind_layer(m, l) != LLMSQ_OK) die();
    llmsq_ppl_params p = llmsq_ppl_default_params();
    p.seqlen = g_seqlen;
    p.progress = false;
    llmsq_ppl_result r;
    if (llmsq_ppl_file(m, g_valid, &p, &r) != LLMSQ_OK) die();
    llmsq_model_free(m);
    return r.ppl;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL VALID_TEXT CALIB_TEXT [--seqlen L] [--group G]\n", argv[0]);
        return 2;
    }
    g_model = argv[1], g_valid = argv[2], g_calib = argv[3];
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seqlen")) g_seqlen = atoll(argv[i + 1]);
        if (!strcmp(argv[i], "--group")) g_group = atoll(argv[i + 1]);
    }
    llmsq_set_quiet(true);
    static const char *const names[] = {"magnitude", "wanda", "sparsegpt", "ria"};
    static const int pats[][2] = {{0, 0}, {2, 4}, {4, 8}};
    double secs, sp;
    double dense = run(NULL, false, NULL, &secs, &sp);
    printf("| method | pattern | quantized | zeros | ppl | vs dense | time |\n|---|---|---|---|---|---|---|\n");
    printf("| dense | | | 0%% | %.4f | | |\n", dense);
    for (int k = 0; k < 3; k++)
        for (int mth = 0; mth < 4; mth++) {
            llmsq_prune_params pp = llmsq_prune_default_params();
            pp.method = (llmsq_prune_method)mth;
            pp.sparsity = 0.5;
            pp.nm_n = pats[k][0], pp.nm_m = pats[k][1];
            double ppl = run(&pp, false, NULL, &secs, &sp);
            char pat[16];
            snprintf(pat, sizeof pat, k ? "%d:%d" : "50%%", pats[k][0], pats[k][1]);
            printf("| %s | %s | | %.1f%% | %.4f | +%.1f%% | %.1f s |\n", names[mth], pat, 100 * sp, ppl,
                   100 * (ppl / dense - 1), secs);
            fflush(stdout);
        }
    /* 2:4 + 4-bit against each alone */
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.bits = 4, qp.group_size = g_group, qp.scale_dtype = LLMSQ_DTYPE_F32;
    double q4 = run(NULL, false, &qp, &secs, &sp);
    printf("| GPTQ alone | dense | 4-bit g%lld | 0%% | %.4f | +%.1f%% | %.1f s |\n", (long long)g_group, q4,
           100 * (q4 / dense - 1), secs);
    llmsq_prune_params pp = llmsq_prune_default_params();
    pp.method = LLMSQ_PRUNE_SPARSEGPT, pp.nm_n = 2, pp.nm_m = 4, pp.quantize = true, pp.quant = qp;
    double j = run(&pp, false, NULL, &secs, &sp);
    printf("| sparsegpt + GPTQ-style quantization in the sweep | 2:4 | 4-bit g%lld | %.1f%% | %.4f | +%.1f%% | %.1f s |\n",
           (long long)g_group, 100 * sp, j, 100 * (j / dense - 1), secs);
    pp.method = LLMSQ_PRUNE_WANDA, pp.quantize = false;
    double w = run(&pp, true, NULL, &secs, &sp);
    printf("| wanda then RTN | 2:4 | 4-bit g%lld | %.1f%% | %.4f | +%.1f%% | %.1f s |\n", (long long)g_group, 100 * sp, w,
           100 * (w / dense - 1), secs);
    return 0;
}
