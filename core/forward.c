/* The Llama-family forward pass on CPU: f32 activations, OpenBLAS sgemm for every
 * matmul, double accumulation for the reductions (RMSNorm, softmax). */
#include "core/model-impl.h"
#include "llmsq/quant.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* y[T, n] = x[T, k] * W[n, k]^T (+ b[n]): a linear layer with PyTorch's weight layout. */
static void linear(const float *x, int64_t T, int64_t k, const float *W, const float *b, int64_t n, float *y)
{
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)k, 1.0f, W, (blasint)k, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)n, (blasint)k, 1.0f, x, (blasint)k,
                    W, (blasint)k, 0.0f, y, (blasint)n);
    if (b)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < n; j++) y[t * n + j] += b[j];
}

/* A linear whose input is quantized first (W8A8): each row of x is replaced by its int8
 * quantization times its scale (llmsq_act_quant_i8), which is what an int8 GEMM computes up
 * to the f32 rounding of the accumulation. No quantization: the plain linear. */
static llmsq_status linear_aq(const float *x, int64_t T, int64_t k, const float *W, const float *b, int64_t n,
                              float *y, const llmsq_act_quant *aq)
{
    if (!aq || !aq->bits) {
        linear(x, T, k, W, b, n, y);
        return LLMSQ_OK;
    }
    float *xq = malloc((size_t)(T * k) * sizeof *xq);
    int8_t *qi = malloc((size_t)k);
    if (!xq || !qi) {
        free(xq), free(qi);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory quantizing activations");
    }
    for (int64_t t = 0; t < T; t++) {
        const float s = llmsq_act_quant_i8(x + t * k, k, aq->scale, qi);
        for (int64_t i = 0; i < k; i++) xq[t * k + i] = s * (float)qi[i];
    }
    linear(xq, T, k, W, b, n, y);
    free(xq), free(qi);
    return LLMSQ_OK;
}

/* y = x * rsqrt(mean(x^2) + eps) * w over rows of length n (y may alias x). */
static void rmsnorm(const float *x, const float *w, int64_t rows, int64_t n, double eps, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
        float *yr = y + r * n;
        for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] * inv) * w[i];
    }
}

/* Rotate-half RoPE in place on x [T, n_heads*hd] for positions pos0..pos0+T-1. */
static void rope(float *x, int64_t T, int64_t n_heads, int64_t hd, int64_t pos0, const double *inv_freq)
{
    int64_t half = hd / 2;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < half; i++) {
            double a = (double)(pos0 + t) * inv_freq[i];
            float c = (float)cos(a), s = (float)sin(a);
            for (int64_t h = 0; h < n_heads; h++) {
                float *v = x + t * n_heads * hd + h * hd;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

/* In-place softmax of row[lo..valid), zeroing the rest of row[0..L). Eight independent lanes
 * break the dependency chains of the max and the sum; the lane order is fixed, so the
 * result does not depend on threads or data alignment. */
static void softmax_causal(float *row, int64_t lo, int64_t valid, int64_t L)
{
    for (int64_t j = 0; j < lo; j++) row[j] = 0.0f;
    row += lo;
    valid -= lo;
    L -= lo;
    enum { LANES = 8 };
    float mx[LANES];
    for (int k = 0; k < LANES; k++) mx[k] = row[0];
    int64_t j = 0;
    for (; j + LANES <= valid; j += LANES)
        for (int k = 0; k < LANES; k++) mx[k] = row[j + k] > mx[k] ? row[j + k] : mx[k];
    for (; j < valid; j++) mx[0] = row[j] > mx[0] ? row[j] : mx[0];
    float m = mx[0];
    for (int k = 1; k < LANES; k++) m = mx[k] > m ? mx[k] : m;
    double sum[LANES] = {0};
    for (j = 0; j + LANES <= valid; j += LANES)
        for (int k = 0; k < LANES; k++) {
            row[j + k] = expf(row[j + k] - m);
            sum[k] += row[j + k];
        }
    for (; j < valid; j++) {
        row[j] = expf(row[j] - m);
        sum[0] += row[j];
    }
    double total = 0;
    for (int k = 0; k < LANES; k++) total += sum[k];
    float inv = (float)(1.0 / total);
    for (j = 0; j < valid; j++) row[j] *= inv;
    for (; j < L; j++) row[j] = 0.0f;
}

/* Causal attention of T queries at positions pos0.. against the cache rows 0..pos0+T-1.
 * q [T, nh*hd], kc/vc [pos0+T, nkv*hd], out [T, nh*hd]; scores is scratch [threads, T, L]. */
static void attention(const llmsq_config *c, const float *q, const float *kc, const float *vc, int64_t T,
                      int64_t pos0, float *out, float *scores)
{
    const int64_t hd = c->head_dim, nh = c->n_heads, kvd = c->n_kv_heads * hd, qd = nh * hd;
    const int64_t group = nh / c->n_kv_heads, L = pos0 + T;
    const float scale = (float)(1.0 / sqrt((double)hd));
    bool par = T * L >= 4096 && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (par)
    for (int64_t h = 0; h < nh; h++) {
        float *S = scores + (size_t)omp_get_thread_num() * (size_t)(T * L);
        const float *qh = q + h * hd;
        const float *kh = kc + (h / group) * hd;
        const float *vh = vc + (h / group) * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)L, (blasint)hd, scale, qh,
                    (blasint)qd, kh, (blasint)kvd, 0.0f, S, (blasint)L);
        for (int64_t t = 0; t < T; t++) {
            int64_t valid = pos0 + t + 1; /* keys 0..pos0+t */
            int64_t lo = c->sliding_window > 0 && valid > c->sliding_window ? valid - c->sliding_window : 0;
            softmax_causal(S + t * L, lo, valid, L);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)T, (blasint)hd, (blasint)L, 1.0f, S,
                    (blasint)L, vh, (blasint)kvd, 0.0f, out + h * hd, (blasint)qd);
    }
}

/* q/k/v projections of the normed input xn [T, d] at positions pos0.. (K and V appended to
 * kc/vc [pos0+T, nkv*hd]), q/k norms, RoPE, then causal attention into att [T, nh*hd].
 * q [T, nh*hd] and scores [threads, T, pos0+T] are scratch. */
static llmsq_status attend(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T,
                           int64_t pos0, float *kc, float *vc, float *q, float *att, float *scores)
{
    const llmsq_config *c = &m->cfg;
    const int64_t d = c->hidden_size, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    LLMSQ_TRY(linear_aq(xn, T, d, w->wq, w->bq, qd, q, &w->act[LLMSQ_LINEAR_Q]));
    LLMSQ_TRY(linear_aq(xn, T, d, w->wk, w->bk, kvd, kc + pos0 * kvd, &w->act[LLMSQ_LINEAR_K]));
    LLMSQ_TRY(linear_aq(xn, T, d, w->wv, w->bv, kvd, vc + pos0 * kvd, &w->act[LLMSQ_LINEAR_V]));
    if (c->qk_norm) {
        rmsnorm(q, w->q_norm, T * c->n_heads, hd, c->rms_eps, q);
        rmsnorm(kc + pos0 * kvd, w->k_norm, T * c->n_kv_heads, hd, c->rms_eps, kc + pos0 * kvd);
    }
    rope(q, T, c->n_heads, hd, pos0, m->inv_freq);
    rope(kc + pos0 * kvd, T, c->n_kv_heads, hd, pos0, m->inv_freq);
    attention(c, q, kc, vc, T, pos0, att, scores);
    return LLMSQ_OK;
}

/* g [T, F] = silu(gate(xn)) * up(xn); u [T, F] is scratch. */
static llmsq_status gate_up(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T, float *g,
                            float *u)
{
    const int64_t d = m->cfg.hidden_size, F = m->cfg.intermediate_size;
    LLMSQ_TRY(linear_aq(xn, T, d, w->wg, w->bg, F, g, &w->act[LLMSQ_LINEAR_GATE]));
    LLMSQ_TRY(linear_aq(xn, T, d, w->wu, w->bu, F, u, &w->act[LLMSQ_LINEAR_UP]));
    for (int64_t i = 0; i < T * F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    return LLMSQ_OK;
}

llmsq_status llmsq_attn_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T,
                                float *out)
{
    const llmsq_config *c = &m->cfg;
    const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    float *kc = malloc((size_t)(T * kvd) * sizeof(float)), *vc = malloc((size_t)(T * kvd) * sizeof(float));
    float *q = malloc((size_t)(T * qd) * sizeof(float)), *att = malloc((size_t)(T * qd) * sizeof(float));
    float *scores = malloc((size_t)threads * (size_t)(T * T) * sizeof(float));
    llmsq_status st = kc && vc && q && att && scores
                          ? attend(m, w, xn, T, 0, kc, vc, q, att, scores)
                          : llmsq_error(LLMSQ_STATUS_NOMEM, "attention: out of memory for %lld tokens", (long long)T);
    if (st == LLMSQ_OK) st = linear_aq(att, T, qd, w->wo, w->bo, c->hidden_size, out, &w->act[LLMSQ_LINEAR_O]);
    free(kc), free(vc), free(q), free(att), free(scores);
    return st;
}

llmsq_status llmsq_mlp_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T,
                               float *out)
{
    const int64_t F = m->cfg.intermediate_size;
    float *g = malloc((size_t)(T * F) * sizeof(float)), *u = malloc((size_t)(T * F) * sizeof(float));
    llmsq_status st = g && u ? gate_up(m, w, xn, T, g, u)
                             : llmsq_error(LLMSQ_STATUS_NOMEM, "MLP: out of memory for %lld tokens", (long long)T);
    if (st == LLMSQ_OK)
        st = linear_aq(g, T, F, w->wd, w->bd, m->cfg.hidden_size, out, &w->act[LLMSQ_LINEAR_DOWN]);
    free(g), free(u);
    return st;
}

llmsq_status llmsq_model_block_forward(const llmsq_model *m, int64_t layer, llmsq_kv_cache *cache, float *x,
                                       int64_t T)
{
    return llmsq_model_block_forward_observed(m, layer, cache, x, T, NULL);
}

/* Hands input `which` to the observer; *stop is set when the block may return now. */
static llmsq_status observe(const llmsq_block_observer *obs, llmsq_block_input which, const float *X, int64_t T,
                            int64_t n, bool *stop)
{
    if (!obs) return LLMSQ_OK;
    *stop = obs->stop_after == which;
    return obs->fn ? obs->fn(obs->user, which, X, T, n) : LLMSQ_OK;
}

llmsq_status llmsq_model_block_forward_observed(const llmsq_model *m, int64_t layer, llmsq_kv_cache *cache,
                                                float *x, int64_t T, const llmsq_block_observer *obs)
{
    const llmsq_config *c = &m->cfg;
    LLMSQ_ASSERT(layer >= 0 && layer < c->n_layers && cache && x && T > 0);
    LLMSQ_ASSERT(cache->kv_dim == c->n_kv_heads * c->head_dim && cache->n_layers == c->n_layers);
    const int64_t pos0 = cache->len;
    if (pos0 + T > cache->cap)
        return llmsq_error(LLMSQ_STATUS_ARG, "KV cache full: %lld + %lld tokens exceed its %lld positions",
                           (long long)pos0, (long long)T, (long long)cache->cap);
    const llmsq_layer_weights *w = &m->layers[layer];
    LLMSQ_ASSERT(w->wq && w->wd); /* the layer is bound (llmsq_model_rebind_layer) */
    const int64_t d = c->hidden_size, F = c->intermediate_size, hd = c->head_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, L = pos0 + T;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();

    float *xn = malloc((size_t)(T * d) * sizeof(float));
    float *q = malloc((size_t)(T * qd) * sizeof(float));
    float *att = malloc((size_t)(T * qd) * sizeof(float));
    float *g = malloc((size_t)(T * F) * sizeof(float));
    float *u = malloc((size_t)(T * F) * sizeof(float));
    float *scores = malloc((size_t)threads * (size_t)(T * L) * sizeof(float));
    if (!xn || !q || !att || !g || !u || !scores) {
        free(xn), free(q), free(att), free(g), free(u), free(scores);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory for %lld tokens", (long long)T);
    }
    float *kc = cache->k + (size_t)(layer * cache->cap * kvd);
    float *vc = cache->v + (size_t)(layer * cache->cap * kvd);

    bool stop = false;
    llmsq_status st = LLMSQ_OK;
    /* attention */
    rmsnorm(x, w->attn_norm, T, d, c->rms_eps, xn);
    if ((st = observe(obs, LLMSQ_INPUT_ATTN, xn, T, d, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = attend(m, w, xn, T, pos0, kc, vc, q, att, scores)) != LLMSQ_OK) goto done;
    if ((st = observe(obs, LLMSQ_INPUT_O, att, T, qd, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = linear_aq(att, T, qd, w->wo, w->bo, d, xn, &w->act[LLMSQ_LINEAR_O])) != LLMSQ_OK) goto done;
    for (int64_t i = 0; i < T * d; i++) x[i] += xn[i];

    /* SwiGLU MLP: down(silu(gate(x)) * up(x)) */
    rmsnorm(x, w->ffn_norm, T, d, c->rms_eps, xn);
    if ((st = observe(obs, LLMSQ_INPUT_MLP, xn, T, d, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = gate_up(m, w, xn, T, g, u)) != LLMSQ_OK) goto done;
    if ((st = observe(obs, LLMSQ_INPUT_DOWN, g, T, F, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = linear_aq(g, T, F, w->wd, w->bd, d, xn, &w->act[LLMSQ_LINEAR_DOWN])) != LLMSQ_OK) goto done;
    for (int64_t i = 0; i < T * d; i++) x[i] += xn[i];

done:
    free(xn), free(q), free(att), free(g), free(u), free(scores);
    return st;
}

llmsq_status llmsq_model_embed(const llmsq_model *m, const int32_t *tokens, int64_t T, float *x)
{
    const int64_t d = m->cfg.hidden_size;
    for (int64_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size)
            return llmsq_error(LLMSQ_STATUS_ARG, "token id %d at position %lld is outside the vocabulary (%lld)",
                               tokens[t], (long long)t, (long long)m->cfg.vocab_size);
        memcpy(x + t * d, m->embed + (int64_t)tokens[t] * d, (size_t)d * sizeof(float));
    }
    return LLMSQ_OK;
}

void llmsq_model_lm_head(const llmsq_model *m, const float *hidden, int64_t T, float *logits)
{
    linear(hidden, T, m->cfg.hidden_size, m->lm_head, NULL, m->cfg.vocab_size, logits);
}

llmsq_status llmsq_model_head(const llmsq_model *m, const float *x, int64_t T, float *hidden_out, float *logits)
{
    const int64_t d = m->cfg.hidden_size;
    float *h = hidden_out ? hidden_out : malloc((size_t)(T * d) * sizeof(float));
    if (!h) return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory");
    rmsnorm(x, m->final_norm, T, d, m->cfg.rms_eps, h);
    if (logits) llmsq_model_lm_head(m, h, T, logits);
    if (!hidden_out) free(h);
    return LLMSQ_OK;
}

llmsq_status llmsq_model_forward(const llmsq_model *m, llmsq_kv_cache *cache, const int32_t *tokens, int64_t T,
                                 float *logits, float *hidden)
{
    LLMSQ_ASSERT(m && cache && tokens && T > 0);
    if (cache->len + T > cache->cap)
        return llmsq_error(LLMSQ_STATUS_ARG, "KV cache full: %lld + %lld tokens exceed its %lld positions",
                           (long long)cache->len, (long long)T, (long long)cache->cap);
    float *x = malloc((size_t)(T * m->cfg.hidden_size) * sizeof(float));
    if (!x) return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory for %lld tokens", (long long)T);
    llmsq_status st = llmsq_model_embed(m, tokens, T, x);
    for (int64_t l = 0; st == LLMSQ_OK && l < m->cfg.n_layers; l++) st = llmsq_model_block_forward(m, l, cache, x, T);
    if (st == LLMSQ_OK) st = llmsq_kv_cache_advance(cache, T);
    if (st == LLMSQ_OK && (logits || hidden)) st = llmsq_model_head(m, x, T, hidden, logits);
    free(x);
    return st;
}
