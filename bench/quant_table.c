/* The quantization quality tables of docs/quantization.md: perplexity of a model quantized
 * in memory under the gptq protocol. In memory because 2- and 3-bit results of models such as
 * stories260K fit no output format; the written checkpoints are bit-identical to the in-memory
 * weights (tests).
 *
 *   build/bench/bench_quant_table MODEL VALID_TEXT CALIB_TEXT [--group G] [--seqlen L] [--table T]
 *
 *   T = gptq (default): RTN and GPTQ at 4, 3 and 2 bits, act-order off and on;
 *       awq: RTN vs GPTQ vs AWQ vs AWQ+GPTQ at 4 and 3 bits (asymmetric grids);
 *       w8a8: W8A16, naive W8A8 and SmoothQuant over alpha, per-token and static activations.
 */
#include "llmsq/llmsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_model, *g_valid, *g_calib;
static int64_t g_group = 32, g_seqlen = 512;

static double run_with(llmsq_quant_method method, llmsq_quant_params qp, bool quantize, double *secs)
{
    llmsq_model *m;
    if (llmsq_model_open(g_model, &m) != LLMSQ_OK) goto fail;
    int32_t *tokens = NULL;
    double t0 = llmsq_time_now();
    if (quantize) {
        qp.scale_dtype = LLMSQ_DTYPE_F32;
        llmsq_calib_params cp = llmsq_calib_default_params();
        cp.seqlen = g_seqlen;
        cp.progress = false;
        if (method != LLMSQ_QUANT_RTN && !(method == LLMSQ_QUANT_W8A8 && !qp.act_static)) {
            llmsq_dataset d;
            if (llmsq_dataset_load(g_calib, LLMSQ_TEXT_AUTO, &d) != LLMSQ_OK) goto fail;
            llmsq_status st = llmsq_calib_sample(llmsq_model_tokenizer(m), &d, &cp, &tokens);
            llmsq_dataset_free(&d);
            if (st != LLMSQ_OK) goto fail;
        }
        llmsq_quant_pass *pass;
        if (llmsq_quant_pass_create(method, &qp, NULL, &pass) != LLMSQ_OK) goto fail;
        llmsq_status st = llmsq_calib_run(m, tokens, &cp, llmsq_quant_pass_calib(pass));
        llmsq_quant_pass_free(pass);
        free(tokens);
        if (st != LLMSQ_OK) goto fail;
        for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++)
            if (llmsq_model_rebind_layer(m, l) != LLMSQ_OK) goto fail;
    }
    *secs = llmsq_time_now() - t0;
    llmsq_ppl_params pp = llmsq_ppl_default_params();
    pp.seqlen = g_seqlen;
    pp.progress = false;
    llmsq_ppl_result r;
    if (llmsq_ppl_file(m, g_valid, &pp, &r) != LLMSQ_OK) goto fail;
    llmsq_model_free(m);
    return r.ppl;
fail:
    fprintf(stderr, "error: %s\n", llmsq_last_error());
    exit(1);
}

static double run(llmsq_quant_method method, int bits, bool act_order, double *secs)
{
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.bits = bits;
    qp.group_size = g_group;
    qp.act_order = act_order;
    return run_with(method, qp, bits > 0, secs);
}

static void awq_table(double fp32)
{
    static const struct { const char *name; llmsq_quant_method m; llmsq_qgrid grid; } rows[] = {
        {"RTN", LLMSQ_QUANT_RTN, LLMSQ_QGRID_MINMAX},     {"GPTQ", LLMSQ_QUANT_GPTQ, LLMSQ_QGRID_MINMAX},
        {"AWQ", LLMSQ_QUANT_AWQ, LLMSQ_QGRID_AWQ},        {"AWQ, no clip", LLMSQ_QUANT_AWQ, LLMSQ_QGRID_AWQ},
        {"AWQ+GPTQ", LLMSQ_QUANT_AWQ_GPTQ, LLMSQ_QGRID_AWQ}};
    printf("| method | bits | group | ppl | vs fp32 | quantize time |\n|---|---|---|---|---|---|\n");
    printf("| fp32 | 32 | | %.4f | | |\n", fp32);
    for (int bits = 4; bits >= 3; bits--)
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
            llmsq_quant_params qp = llmsq_quant_default_params();
            qp.bits = bits;
            qp.group_size = g_group;
            qp.grid = rows[i].grid;
            qp.awq_clip = strstr(rows[i].name, "no clip") == NULL;
            double s, r = run_with(rows[i].m, qp, true, &s);
            printf("| %s | %d | %lld | %.4f | +%.1f%% | %.1f s |\n", rows[i].name, bits, (long long)g_group, r,
                   100 * (r / fp32 - 1), s);
            fflush(stdout);
        }
}

static void w8a8_table(double fp32)
{
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.bits = 8;
    qp.group_size = -1;
    qp.grid = LLMSQ_QGRID_ABSMAX;
    double s;
    printf("| weights | activations | smoothing | ppl | vs fp32 |\n|---|---|---|---|---|\n");
    printf("| fp32 | fp32 | | %.4f | |\n", fp32);
    double r = run_with(LLMSQ_QUANT_RTN, qp, true, &s);
    printf("| int8 per channel | fp32 (W8A16) | | %.4f | %+.2f%% |\n", r, 100 * (r / fp32 - 1));
    for (int st = 0; st < 2; st++) {
        qp.act_static = st;
        const char *acts = st ? "int8 static per tensor" : "int8 per token";
        r = run_with(LLMSQ_QUANT_W8A8, qp, true, &s);
        printf("| int8 per channel | %s | none (naive W8A8) | %.4f | %+.2f%% |\n", acts, r, 100 * (r / fp32 - 1));
        static const double alphas[] = {0.5, 0.8};
        for (size_t a = 0; a < 2; a++) {
            qp.sq_alpha = alphas[a];
            r = run_with(LLMSQ_QUANT_SMOOTHQUANT, qp, true, &s);
            printf("| int8 per channel | %s | SmoothQuant a=%.1f | %.4f | %+.2f%% |\n", acts, alphas[a], r,
                   100 * (r / fp32 - 1));
            fflush(stdout);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL VALID_TEXT CALIB_TEXT [--group G] [--seqlen L] [--table gptq|awq|w8a8]\n",
                argv[0]);
        return 2;
    }
    g_model = argv[1], g_valid = argv[2], g_calib = argv[3];
    const char *table = "gptq";
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--group")) g_group = atoll(argv[i + 1]);
        if (!strcmp(argv[i], "--seqlen")) g_seqlen = atoll(argv[i + 1]);
        if (!strcmp(argv[i], "--table")) table = argv[i + 1];
    }
    llmsq_set_quiet(true);
    double s, fp32 = run(LLMSQ_QUANT_RTN, 0, false, &s);
    if (!strcmp(table, "awq")) {
        awq_table(fp32);
        return 0;
    }
    if (!strcmp(table, "w8a8")) {
        w8a8_table(fp32);
        return 0;
    }
    printf("| method | bits | act-order | ppl | vs fp32 | quantize time |\n|---|---|---|---|---|---|\n");
    printf("| fp32 | 32 | | %.4f | | |\n", fp32);
    for (int bits = 4; bits >= 2; bits--) {
        double r = run(LLMSQ_QUANT_RTN, bits, false, &s);
        printf("| RTN | %d | | %.4f | +%.1f%% | %.1f s |\n", bits, r, 100 * (r / fp32 - 1), s);
        fflush(stdout);
        for (int ao = 0; ao < 2; ao++) {
            double g = run(LLMSQ_QUANT_GPTQ, bits, ao, &s);
            printf("| GPTQ | %d | %s | %.4f | +%.1f%% (closes %.0f%% of RTN's gap) | %.1f s |\n", bits, ao ? "on" : "off",
                   g, 100 * (g / fp32 - 1), 100 * (r - g) / (r - fp32), s);
            fflush(stdout);
        }
    }
    return 0;
}
