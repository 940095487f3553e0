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

/* xq [T, k] = each row of x quantized to int8 and back (llmsq_act_quant_i8), which is what
 * an int8 GEMM computes up to the f32 rounding of the accumulation. *xq is malloc'd. */
static llmsq_status fake_quant(const float *x, int64_t T, int64_t k, const llmsq_act_quant *aq, float **xq)
{
    *xq = malloc((size_t)(T * k) * sizeof **xq);
    int8_t *qi = malloc((size_t)k);
    if (!*xq || !qi) {
        free(*xq), free(qi);
        *xq = NULL;
        return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory quantizing activations");
    }
    for (int64_t t = 0; t < T; t++) {
        const float s = llmsq_act_quant_i8(x + t * k, k, aq->scale, qi);
        for (int64_t i = 0; i < k; i++) (*xq)[t * k + i] = s * (float)qi[i];
    }
    free(qi);
    return LLMSQ_OK;
}

/* A linear whose input is quantized first (W8A8); no quantization: the plain linear. */
static llmsq_status linear_aq(const float *x, int64_t T, int64_t k, const float *W, const float *b, int64_t n,
                              float *y, const llmsq_act_quant *aq)
{
    if (!aq || !aq->bits) {
        linear(x, T, k, W, b, n, y);
        return LLMSQ_OK;
    }
    float *xq;
    LLMSQ_TRY(fake_quant(x, T, k, aq, &xq));
    linear(xq, T, k, W, b, n, y);
    free(xq);
    return LLMSQ_OK;
}

static const float *lin_weight(const llmsq_layer_weights *w, llmsq_linear_id id)
{
    const float *W[LLMSQ_LINEAR_COUNT] = {w->wq, w->wk, w->wv, w->wo, w->wg, w->wu, w->wd};
    return W[id];
}

static const float *lin_bias(const llmsq_layer_weights *w, llmsq_linear_id id)
{
    const float *b[LLMSQ_LINEAR_COUNT] = {w->bq, w->bk, w->bv, w->bo, w->bg, w->bu, w->bd};
    return b[id];
}

/* Packed matmul y [T, p->out] of x [T, k] with linear `id`'s activation quantization: the
 * W8A8 kernel quantizes its own input, a dense fallback of a W8A8 weight needs it done here. */
static llmsq_status packed_matmul(const llmsq_layer_weights *w, llmsq_linear_id id, const float *x, int64_t T,
                                  int64_t k, float *y)
{
    const llmsq_plinear *p = w->pl[id];
    if (!w->act[id].bits || p->kind == LLMSQ_PLINEAR_W8) return llmsq_plinear_matmul(p, x, T, y);
    float *xq;
    LLMSQ_TRY(fake_quant(x, T, k, &w->act[id], &xq));
    llmsq_status st = llmsq_plinear_matmul(p, xq, T, y);
    free(xq);
    return st;
}

/* y [T, n] = linear `id` of x [T, k] (+ bias), packed or float. */
static llmsq_status lin(const llmsq_layer_weights *w, llmsq_linear_id id, const float *x, int64_t T, int64_t k,
                        int64_t n, float *y)
{
    if (!w->pl[id]) return linear_aq(x, T, k, lin_weight(w, id), lin_bias(w, id), n, y, &w->act[id]);
    LLMSQ_TRY(packed_matmul(w, id, x, T, k, y));
    const float *b = lin_bias(w, id);
    if (b)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < n; j++) y[t * n + j] += b[j];
    return LLMSQ_OK;
}

/* Linears first..first+parts-1 of x [T, k], each into outs[i] [T, widths[i]]: one matmul when
 * they are stacked in w->pl[first] (its output columns split afterwards), else one each. */
static llmsq_status lin_group(const llmsq_layer_weights *w, llmsq_linear_id first, int parts, bool stacked,
                              const int64_t *widths, float *const *outs, const float *x, int64_t T, int64_t k)
{
    if (!stacked) {
        for (int i = 0; i < parts; i++)
            LLMSQ_TRY(lin(w, (llmsq_linear_id)(first + i), x, T, k, widths[i], outs[i]));
        return LLMSQ_OK;
    }
    int64_t total = 0;
    for (int i = 0; i < parts; i++) total += widths[i];
    float *tmp = malloc((size_t)(T * total) * sizeof *tmp);
    if (!tmp) return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory for %lld tokens", (long long)T);
    llmsq_status st = packed_matmul(w, first, x, T, k, tmp);
    for (int64_t t = 0; st == LLMSQ_OK && t < T; t++) {
        int64_t off = 0;
        for (int i = 0; i < parts; i++) {
            const float *b = lin_bias(w, (llmsq_linear_id)(first + i));
            float *dst = outs[i] + t * widths[i];
            const float *src = tmp + t * total + off;
            for (int64_t j = 0; j < widths[i]; j++) dst[j] = b ? src[j] + b[j] : src[j];
            off += widths[i];
        }
    }
    free(tmp);
    return st;
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

/* Queries of at most this many tokens take attention's loop path (decode steps). */
enum { SMALL_T = 4 };

/* Decode attention is a few million multiply-adds per step, so these two are compiled for AVX2
 * as well (chosen at load time); the order of operations is the same in both clones. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LLMSQ_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LLMSQ_AVX2_CLONES
#endif

/* a . b over n floats, eight lanes (vectorizable without reassociation), fixed order. */
LLMSQ_AVX2_CLONES static float dot(const float *restrict a, const float *restrict b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float tail = 0;
    for (; i < n; i++) tail += a[i] * b[i];
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

/* out [n] = sum_j p[j] v_j over rows v_j = v + j * ld (j < rows), eight output columns at a
 * time so the sums stay in registers across the rows; rows in order, fixed. */
LLMSQ_AVX2_CLONES static void weighted_rows(const float *restrict p, const float *restrict v, int64_t ld,
                                            int64_t rows, float *restrict out, int64_t n)
{
    int64_t i0 = 0;
    for (; i0 + 8 <= n; i0 += 8) {
        float acc[8] = {0};
        for (int64_t j = 0; j < rows; j++)
            for (int k = 0; k < 8; k++) acc[k] += p[j] * v[j * ld + i0 + k];
        memcpy(out + i0, acc, sizeof acc);
    }
    for (; i0 < n; i0++) {
        float acc = 0;
        for (int64_t j = 0; j < rows; j++) acc += p[j] * v[j * ld + i0];
        out[i0] = acc;
    }
}

/* Causal attention of T queries at positions pos0.. against the cache rows 0..pos0+T-1.
 * q [T, nh*hd], kc/vc [pos0+T, nkv*hd], out [T, nh*hd]; scores is scratch [threads, T, L]. */
static void attention(const llmsq_config *c, const float *q, const float *kc, const float *vc, int64_t T,
                      int64_t pos0, float *out, float *scores)
{
    const int64_t hd = c->head_dim, nh = c->n_heads, kvd = c->n_kv_heads * hd, qd = nh * hd;
    const int64_t group = nh / c->n_kv_heads, L = pos0 + T;
    const float scale = (float)(1.0 / sqrt((double)hd));
    /* decode-sized queries use plain loops: sgemm would pack K and V for a 1-row product */
    const bool rows = T <= SMALL_T;
    bool par = (rows ? nh * L * hd >= 65536 : T * L >= 4096) && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (par)
    for (int64_t h = 0; h < nh; h++) {
        float *S = scores + (size_t)omp_get_thread_num() * (size_t)(T * L);
        const float *qh = q + h * hd;
        const float *kh = kc + (h / group) * hd;
        const float *vh = vc + (h / group) * hd;
        if (rows) {
            for (int64_t t = 0; t < T; t++)
                for (int64_t j = 0; j < L; j++) S[t * L + j] = scale * dot(qh + t * qd, kh + j * kvd, hd);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)L, (blasint)hd, scale, qh,
                        (blasint)qd, kh, (blasint)kvd, 0.0f, S, (blasint)L);
        }
        for (int64_t t = 0; t < T; t++) {
            int64_t valid = pos0 + t + 1; /* keys 0..pos0+t */
            int64_t lo = c->sliding_window > 0 && valid > c->sliding_window ? valid - c->sliding_window : 0;
            softmax_causal(S + t * L, lo, valid, L);
        }
        if (rows) {
            for (int64_t t = 0; t < T; t++) weighted_rows(S + t * L, vh, kvd, pos0 + t + 1, out + t * qd + h * hd, hd);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)T, (blasint)hd, (blasint)L, 1.0f, S,
                        (blasint)L, vh, (blasint)kvd, 0.0f, out + h * hd, (blasint)qd);
        }
    }
}

/* A layer's slot of the cache: K or V rows [cap, kv_dim]. */
static float *cache_slot(llmsq_kv_cache *c, int64_t layer, bool v)
{
    return (v ? c->v : c->k) + (size_t)(layer * c->cap * c->kv_dim);
}

/* The attention sub-block, without o_proj, for nseq sequences of T tokens each:
 * xn [nseq*T, d] normed inputs; sequence s sits at positions pos0[s].. of its cache slots
 * kc[s], vc[s] [cap, nkv*hd], which receive its K and V; att [nseq*T, nh*hd] the output.
 * Scratch: q [nseq*T, nh*hd], kb and vb [nseq*T, nkv*hd], scores [threads, T, max_s pos0[s]+T]. */
static llmsq_status attend(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t nseq,
                           int64_t T, const int64_t *pos0, float *const *kc, float *const *vc, float *q, float *kb,
                           float *vb, float *att, float *scores)
{
    const llmsq_config *c = &m->cfg;
    const int64_t d = c->hidden_size, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const int64_t widths[3] = {qd, kvd, kvd};
    float *const outs[3] = {q, kb, vb};
    LLMSQ_TRY(lin_group(w, LLMSQ_LINEAR_Q, 3, w->qkv_stacked, widths, outs, xn, nseq * T, d));
    if (c->qk_norm) {
        rmsnorm(q, w->q_norm, nseq * T * c->n_heads, hd, c->rms_eps, q);
        rmsnorm(kb, w->k_norm, nseq * T * c->n_kv_heads, hd, c->rms_eps, kb);
    }
    for (int64_t s = 0; s < nseq; s++) {
        float *qs = q + s * T * qd, *ks = kb + s * T * kvd;
        rope(qs, T, c->n_heads, hd, pos0[s], m->inv_freq);
        rope(ks, T, c->n_kv_heads, hd, pos0[s], m->inv_freq);
        memcpy(kc[s] + pos0[s] * kvd, ks, (size_t)(T * kvd) * sizeof(float));
        memcpy(vc[s] + pos0[s] * kvd, vb + s * T * kvd, (size_t)(T * kvd) * sizeof(float));
        attention(c, qs, kc[s], vc[s], T, pos0[s], att + s * T * qd, scores);
    }
    return LLMSQ_OK;
}

/* g [T, F] = silu(gate(xn)) * up(xn); u [T, F] is scratch. */
static llmsq_status gate_up(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T, float *g,
                            float *u)
{
    const int64_t d = m->cfg.hidden_size, F = m->cfg.intermediate_size;
    const int64_t widths[2] = {F, F};
    float *const outs[2] = {g, u};
    LLMSQ_TRY(lin_group(w, LLMSQ_LINEAR_GATE, 2, w->gate_up_stacked, widths, outs, xn, T, d));
    for (int64_t i = 0; i < T * F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    return LLMSQ_OK;
}

llmsq_status llmsq_attn_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T,
                                float *out)
{
    const llmsq_config *c = &m->cfg;
    const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const size_t kvn = (size_t)(T * kvd);
    float *kv = malloc(4 * kvn * sizeof(float)); /* cache K, cache V, projected K, projected V */
    float *q = malloc((size_t)(T * qd) * sizeof(float)), *att = malloc((size_t)(T * qd) * sizeof(float));
    float *scores = malloc((size_t)threads * (size_t)(T * T) * sizeof(float));
    const int64_t pos0 = 0;
    float *kc = kv, *vc = kv + kvn;
    llmsq_status st = kv && q && att && scores
                          ? attend(m, w, xn, 1, T, &pos0, &kc, &vc, q, kv + 2 * kvn, kv + 3 * kvn, att, scores)
                          : llmsq_error(LLMSQ_STATUS_NOMEM, "attention: out of memory for %lld tokens", (long long)T);
    if (st == LLMSQ_OK) st = lin(w, LLMSQ_LINEAR_O, att, T, qd, c->hidden_size, out);
    free(kv), free(q), free(att), free(scores);
    return st;
}

llmsq_status llmsq_mlp_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn, int64_t T,
                               float *out)
{
    const int64_t F = m->cfg.intermediate_size;
    float *g = malloc((size_t)(T * F) * sizeof(float)), *u = malloc((size_t)(T * F) * sizeof(float));
    llmsq_status st = g && u ? gate_up(m, w, xn, T, g, u)
                             : llmsq_error(LLMSQ_STATUS_NOMEM, "MLP: out of memory for %lld tokens", (long long)T);
    if (st == LLMSQ_OK) st = lin(w, LLMSQ_LINEAR_DOWN, g, T, F, m->cfg.hidden_size, out);
    free(g), free(u);
    return st;
}

/* Hands input `which` to the observer; *stop is set when the block may return now. */
static llmsq_status observe(const llmsq_block_observer *obs, llmsq_block_input which, const float *X, int64_t T,
                            int64_t n, bool *stop)
{
    if (!obs) return LLMSQ_OK;
    *stop = obs->stop_after == which;
    return obs->fn ? obs->fn(obs->user, which, X, T, n) : LLMSQ_OK;
}

/* Checks that T more tokens fit every cache; *max_len receives the longest context. */
static llmsq_status check_caches(llmsq_kv_cache *const *caches, int64_t nseq, int64_t T, int64_t *max_len)
{
    *max_len = 0;
    for (int64_t s = 0; s < nseq; s++) {
        const llmsq_kv_cache *c = caches[s];
        if (c->len + T > c->cap)
            return llmsq_error(LLMSQ_STATUS_ARG, "KV cache full: %lld + %lld tokens exceed its %lld positions",
                               (long long)c->len, (long long)T, (long long)c->cap);
        if (c->len + T > *max_len) *max_len = c->len + T;
    }
    return LLMSQ_OK;
}

/* One decoder block in place on x [nseq*T, d]: T new tokens of each of nseq sequences, whose
 * caches are caches[0..nseq) (positions len.., only `layer`'s slot written, not advanced). */
static llmsq_status block_run(const llmsq_model *m, int64_t layer, llmsq_kv_cache *const *caches, int64_t nseq,
                              float *x, int64_t T, const llmsq_block_observer *obs)
{
    const llmsq_config *c = &m->cfg;
    LLMSQ_ASSERT(layer >= 0 && layer < c->n_layers && caches && x && T > 0 && nseq > 0);
    const llmsq_layer_weights *w = &m->layers[layer];
    /* the layer is bound (llmsq_model_rebind_layer) */
    LLMSQ_ASSERT((w->wq || w->pl[LLMSQ_LINEAR_Q]) && (w->wd || w->pl[LLMSQ_LINEAR_DOWN]));
    int64_t L;
    LLMSQ_TRY(check_caches(caches, nseq, T, &L));
    const int64_t d = c->hidden_size, F = c->intermediate_size, hd = c->head_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, R = nseq * T;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();

    float *xn = malloc((size_t)(R * d) * sizeof(float));
    float *q = malloc((size_t)(R * qd) * sizeof(float));
    float *kv = malloc((size_t)(2 * R * kvd) * sizeof(float));
    float *att = malloc((size_t)(R * qd) * sizeof(float));
    float *g = malloc((size_t)(R * F) * sizeof(float));
    float *u = malloc((size_t)(R * F) * sizeof(float));
    float *scores = malloc((size_t)threads * (size_t)(T * L) * sizeof(float));
    int64_t *pos0 = malloc((size_t)nseq * sizeof *pos0);
    float **slots = malloc((size_t)(2 * nseq) * sizeof *slots);
    if (!xn || !q || !kv || !att || !g || !u || !scores || !pos0 || !slots) {
        free(xn), free(q), free(kv), free(att), free(g), free(u), free(scores), free(pos0), free(slots);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory for %lld tokens", (long long)R);
    }
    for (int64_t s = 0; s < nseq; s++) {
        LLMSQ_ASSERT(caches[s]->kv_dim == kvd && caches[s]->n_layers == c->n_layers);
        pos0[s] = caches[s]->len;
        slots[s] = cache_slot(caches[s], layer, false);
        slots[nseq + s] = cache_slot(caches[s], layer, true);
    }

    bool stop = false;
    llmsq_status st = LLMSQ_OK;
    /* attention */
    rmsnorm(x, w->attn_norm, R, d, c->rms_eps, xn);
    if ((st = observe(obs, LLMSQ_INPUT_ATTN, xn, R, d, &stop)) != LLMSQ_OK || stop) goto done;
    st = attend(m, w, xn, nseq, T, pos0, slots, slots + nseq, q, kv, kv + R * kvd, att, scores);
    if (st != LLMSQ_OK) goto done;
    if ((st = observe(obs, LLMSQ_INPUT_O, att, R, qd, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = lin(w, LLMSQ_LINEAR_O, att, R, qd, d, xn)) != LLMSQ_OK) goto done;
    for (int64_t i = 0; i < R * d; i++) x[i] += xn[i];

    /* SwiGLU MLP: down(silu(gate(x)) * up(x)) */
    rmsnorm(x, w->ffn_norm, R, d, c->rms_eps, xn);
    if ((st = observe(obs, LLMSQ_INPUT_MLP, xn, R, d, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = gate_up(m, w, xn, R, g, u)) != LLMSQ_OK) goto done;
    if ((st = observe(obs, LLMSQ_INPUT_DOWN, g, R, F, &stop)) != LLMSQ_OK || stop) goto done;
    if ((st = lin(w, LLMSQ_LINEAR_DOWN, g, R, F, d, xn)) != LLMSQ_OK) goto done;
    for (int64_t i = 0; i < R * d; i++) x[i] += xn[i];

done:
    free(xn), free(q), free(kv), free(att), free(g), free(u), free(scores), free(pos0), free(slots);
    return st;
}

llmsq_status llmsq_model_block_forward(const llmsq_model *m, int64_t layer, llmsq_kv_cache *cache, float *x,
                                       int64_t T)
{
    return block_run(m, layer, &cache, 1, x, T, NULL);
}

llmsq_status llmsq_model_block_forward_observed(const llmsq_model *m, int64_t layer, llmsq_kv_cache *cache,
                                                float *x, int64_t T, const llmsq_block_observer *obs)
{
    return block_run(m, layer, &cache, 1, x, T, obs);
}

llmsq_status llmsq_model_embed(const llmsq_model *m, const int32_t *tokens, int64_t T, float *x)
{
    const int64_t d = m->cfg.hidden_size;
    for (int64_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size)
            return llmsq_error(LLMSQ_STATUS_ARG, "token id %d at position %lld is outside the vocabulary (%lld)",
                               tokens[t], (long long)t, (long long)m->cfg.vocab_size);
        if (m->packed)
            llmsq__model_embed_row(m, tokens[t], x + t * d);
        else
            memcpy(x + t * d, m->embed + (int64_t)tokens[t] * d, (size_t)d * sizeof(float));
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_model_lm_head(const llmsq_model *m, const float *hidden, int64_t T, float *logits)
{
    if (m->packed) return llmsq_plinear_matmul(m->head_pl, hidden, T, logits);
    linear(hidden, T, m->cfg.hidden_size, m->lm_head, NULL, m->cfg.vocab_size, logits);
    return LLMSQ_OK;
}

llmsq_status llmsq_model_head(const llmsq_model *m, const float *x, int64_t T, float *hidden_out, float *logits)
{
    const int64_t d = m->cfg.hidden_size;
    float *h = hidden_out ? hidden_out : malloc((size_t)(T * d) * sizeof(float));
    if (!h) return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory");
    rmsnorm(x, m->final_norm, T, d, m->cfg.rms_eps, h);
    llmsq_status st = logits ? llmsq_model_lm_head(m, h, T, logits) : LLMSQ_OK;
    if (!hidden_out) free(h);
    return st;
}

llmsq_status llmsq_model_forward_batch(const llmsq_model *m, llmsq_kv_cache *const *caches, int64_t B,
                                       const int32_t *tokens, int64_t T, float *logits, float *hidden)
{
    LLMSQ_ASSERT(m && caches && tokens && B > 0 && T > 0);
    int64_t L;
    LLMSQ_TRY(check_caches(caches, B, T, &L));
    float *x = malloc((size_t)(B * T * m->cfg.hidden_size) * sizeof(float));
    if (!x) return llmsq_error(LLMSQ_STATUS_NOMEM, "forward: out of memory for %lld tokens", (long long)(B * T));
    llmsq_status st = llmsq_model_embed(m, tokens, B * T, x);
    for (int64_t l = 0; st == LLMSQ_OK && l < m->cfg.n_layers; l++) st = block_run(m, l, caches, B, x, T, NULL);
    for (int64_t s = 0; st == LLMSQ_OK && s < B; s++) st = llmsq_kv_cache_advance(caches[s], T);
    if (st == LLMSQ_OK && (logits || hidden)) st = llmsq_model_head(m, x, B * T, hidden, logits);
    free(x);
    return st;
}

llmsq_status llmsq_model_forward(const llmsq_model *m, llmsq_kv_cache *cache, const int32_t *tokens, int64_t T,
                                 float *logits, float *hidden)
{
    LLMSQ_ASSERT(m && cache && tokens && T > 0);
    return llmsq_model_forward_batch(m, &cache, 1, tokens, T, logits, hidden);
}
