/*
 * Internal to quant/: the block-level steps of AWQ and SmoothQuant, called by the quantization
 * pass (pass.c) through the runner's run_block hook. Both rewrite the block's float tensors in
 * the store so that the float model stays equivalent (scales folded into the preceding
 * RMSNorm or linear); quantization itself is left to the per-linear step.
 */
#ifndef LLMSQ_QUANT_AWQ_H
#define LLMSQ_QUANT_AWQ_H

#include "llmsq/calib.h"

/* The four scaling groups of a Llama block, in AutoAWQ's order. */
enum { LLMSQ_AWQ_QKV = 0, LLMSQ_AWQ_O, LLMSQ_AWQ_GATE_UP, LLMSQ_AWQ_DOWN, LLMSQ_AWQ_GROUPS };

typedef struct llmsq_awq_layer_report {
    bool    searched[LLMSQ_AWQ_GROUPS];
    double  ratio[LLMSQ_AWQ_GROUPS];      /* best alpha of each group */
    double  loss[LLMSQ_AWQ_GROUPS];       /* output MSE at the best alpha */
    double  loss_plain[LLMSQ_AWQ_GROUPS]; /* output MSE of plain RTN (no scaling) */
    int64_t clipped_groups;               /* quantization groups whose range the clip search shrank */
} llmsq_awq_layer_report;

/* AWQ on layer `layer` (bound): per scaling group (q/k/v after input_layernorm; o after v_proj;
 * gate/up after post_attention_layernorm; down after up_proj), the activation-aware scales
 * s = x_mean^a / w_mean^(1-a) (or x_mean^a) over a = i / p->awq_grid that minimise the MSE of
 * the group's module output (attention, o_proj, MLP, down_proj) with Q(W s) / s weights;
 * folded into the preceding operation; then the clipping search for every linear but q/k.
 * For o_proj under grouped-query attention the scales of the query heads that share a
 * key/value head are tied, so they fold into v_proj's rows. wanted[] marks the linears that
 * will be quantized; a group is scaled only when all its linears are wanted.
 * Errors: NOMEM, NUMERIC (non-finite weights), the forward's. */
llmsq_status llmsq_awq_block(llmsq_model *m, int64_t layer, const llmsq_block_calib *in, const llmsq_quant_params *p,
                             const bool wanted[LLMSQ_LINEAR_COUNT], llmsq_awq_layer_report *rep);

/* SmoothQuant on layer `layer` (bound): when smooth, the factors s_j = max|X_j|^alpha /
 * max|W_j|^(1-alpha) (both clamped to >= 1e-5) folded into input_layernorm (q/k/v) and
 * post_attention_layernorm (gate/up). When p->act_static, act_scale[i] receives the static
 * int8 scale max|X| / 127 of linear i's (smoothed) input; otherwise 0.
 * Errors: NOMEM, the forward's. */
llmsq_status llmsq_smooth_block(llmsq_model *m, int64_t layer, const llmsq_block_calib *in,
                                const llmsq_quant_params *p, bool smooth, const bool wanted[LLMSQ_LINEAR_COUNT],
                                float act_scale[LLMSQ_LINEAR_COUNT]);

#endif
