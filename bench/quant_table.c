/* The quantization quality table of docs/quantization.md: perplexity of a model quantized
 * in memory with RTN and GPTQ at several bit widths (act-order off and on), under the gptq
 * protocol. In memory because 2- and 3-bit results of models such as stories260K fit neither
 * output format; the written checkpoints are bit-identical to the in-memory weights (tests).
 *
 *   build/bench/bench_quant_table MODEL VALID_TEXT CALIB_TEXT [--group G] [--seqlen L]
 */
#include "llmsq/llmsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_model, *g_valid, *g_calib;
static int64_t g_group = 32, g_seqlen = 512;

static double run(llmsq_quant_method method, int bits, bool act_order, double *secs)
{
    llmsq_model *m;
    if (llmsq_model_open(g_model, &m) != LLMSQ_OK) goto fail;
    int32_t *tokens = NULL;
    double t0 = llmsq_time_now();
    if (bits > 0) {
        llmsq_quant_params qp = llmsq_quant_default_params();
        qp.bits = bits;
        qp.group_size = g_group;
        qp.act_order = act_order;
        qp.scale_dtype = LLMSQ_DTYPE_F32;
        llmsq_calib_params cp = llmsq_calib_default_params();
        cp.seqlen = g_seqlen;
        cp.progress = false;
        if (method == LLMSQ_QUANT_GPTQ) {
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

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL VALID_TEXT CALIB_TEXT [--group G] [--seqlen L]\n", argv[0]);
        return 2;
    }
    g_model = argv[1], g_valid = argv[2], g_calib = argv[3];
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--group")) g_group = atoll(argv[i + 1]);
        if (!strcmp(argv[i], "--seqlen")) g_seqlen = atoll(argv[i + 1]);
    }
    llmsq_set_quiet(true);
    double s, fp32 = run(LLMSQ_QUANT_RTN, 0, false, &s);
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
