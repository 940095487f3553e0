/* SmoothQuant (Xiao et al., ICML 2023) for one block (awq.h): per-channel smoothing factors
 * migrate activation outliers into the weights, folded into the RMSNorms exactly as the
 * reference smooth_ln_fcs does for Llama-like models; optional static activation scales. */
#include "quant/awq.h"

#include "quant/block_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Smooths the linears ids[0..n) (all reading input X [rows, width]) behind the norm `norm`
 * [width]; amax [width] (max |X_j|) is divided by the factors so it describes the smoothed
 * input. */
static void smooth(float *norm, float *const *W, const int64_t *rows, int n, int64_t width, double *amax,
                   double alpha)
{
    for (int64_t j = 0; j < width; j++) {
        double wmax = 0;
        for (int k = 0; k < n; k++)
            for (int64_t o = 0; o < rows[k]; o++) wmax = fmax(wmax, fabs(W[k][o * width + j]));
        wmax = fmax(wmax, 1e-5);
        double s = pow(amax[j], alpha) / pow(wmax, 1 - alpha);
        s = s < 1e-5 ? 1e-5 : s;
        norm[j] = (float)(norm[j] / s);
        for (int k = 0; k < n; k++)
            for (int64_t o = 0; o < rows[k]; o++) W[k][o * width + j] = (float)(W[k][o * width + j] * s);
        amax[j] /= s;
    }
}

llmsq_status llmsq_smooth_block(llmsq_model *m, int64_t layer, const llmsq_block_calib *in,
                                const llmsq_quant_params *p, bool smooth_on, const bool wanted[LLMSQ_LINEAR_COUNT],
                                float act_scale[LLMSQ_LINEAR_COUNT])
{
    static const char *const norms[2] = {"input_layernorm.weight", "post_attention_layernorm.weight"};
    static const llmsq_linear_id groups[2][3] = {{LLMSQ_LINEAR_Q, LLMSQ_LINEAR_K, LLMSQ_LINEAR_V},
                                                 {LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP, LLMSQ_LINEAR_COUNT}};
    static const llmsq_block_input group_in[2] = {LLMSQ_INPUT_ATTN, LLMSQ_INPUT_MLP};
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) act_scale[i] = 0.0f;
    const bool want_in[LLMSQ_INPUT_COUNT] = {true, p->act_static, true, p->act_static};
    llmsq_block_acts a;
    LLMSQ_TRY(llmsq_block_capture(m, layer, in, want_in, &a));
    double *amax[LLMSQ_INPUT_COUNT] = {0};
    llmsq_status st = LLMSQ_OK;
    for (int k = 0; k < LLMSQ_INPUT_COUNT && st == LLMSQ_OK; k++) {
        if (!a.X[k]) continue;
        amax[k] = calloc((size_t)a.width[k], sizeof(double));
        if (!amax[k]) {
            st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
            break;
        }
        for (int64_t t = 0; t < a.rows; t++)
            for (int64_t j = 0; j < a.width[k]; j++) amax[k][j] = fmax(amax[k][j], fabs(a.X[k][t * a.width[k] + j]));
    }
    llmsq_block_acts_free(&a);

    for (int g = 0; smooth_on && st == LLMSQ_OK && g < 2; g++) {
        const int n = groups[g][2] == LLMSQ_LINEAR_COUNT ? 2 : 3;
        bool all = true;
        for (int k = 0; k < n; k++) all = all && wanted[groups[g][k]];
        if (!all) continue;
        float *norm = NULL, *W[3] = {0};
        int64_t rows[3], cnt, width = 0;
        st = llmsq_block_tensor_copy(m, layer, norms[g], &norm, &width);
        for (int k = 0; k < n && st == LLMSQ_OK; k++) {
            st = llmsq_block_tensor_copy(m, layer, llmsq_block_weight_suffix[groups[g][k]], &W[k], &cnt);
            rows[k] = cnt / width;
        }
        if (st == LLMSQ_OK) {
            smooth(norm, W, rows, n, width, amax[group_in[g]], p->sq_alpha);
            st = llmsq_block_tensor_put(m, layer, norms[g], norm);
        }
        for (int k = 0; k < n && st == LLMSQ_OK; k++) st = llmsq_block_tensor_put(m, layer, llmsq_block_weight_suffix[groups[g][k]], W[k]);
        free(norm);
        for (int k = 0; k < n; k++) free(W[k]);
    }
    for (int i = 0; p->act_static && st == LLMSQ_OK && i < LLMSQ_LINEAR_COUNT; i++) {
        const llmsq_block_input k = llmsq_linear_input((llmsq_linear_id)i);
        const int64_t width = k == LLMSQ_INPUT_O     ? llmsq_model_config(m)->n_heads * llmsq_model_config(m)->head_dim
                              : k == LLMSQ_INPUT_DOWN ? llmsq_model_config(m)->intermediate_size
                                                      : llmsq_model_config(m)->hidden_size;
        double mx = 0;
        for (int64_t j = 0; j < width; j++) mx = fmax(mx, amax[k][j]);
        act_scale[i] = mx > 0 ? (float)(mx / 127.0) : 1.0f;
    }
    for (int k = 0; k < LLMSQ_INPUT_COUNT; k++) free(amax[k]);
    return st;
}
