/* The forward pass against a plain double-precision scalar reference written from the
 * papers and transformers' modeling code, on small random models that exercise every
 * architecture option: GQA, q/k/v and o biases (Qwen2, Llama attention_bias), per-head
 * q/k RMSNorm (Qwen3), head_dim != hidden/heads, linear and llama3 RoPE scaling, untied
 * lm_head, Mistral's sliding window. No shared data needed. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static double urand(void) /* splitmix64 -> [0, 1) */
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Adds a random [rows, cols] (cols == 0: [rows]) tensor; norms get 1 + noise. */
static void put(llmsq_store *s, const char *name, int64_t rows, int64_t cols, double scale, double center)
{
    int64_t n = rows * (cols ? cols : 1);
    float *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(center + scale * (2 * urand() - 1));
    int64_t shape[2] = {rows, cols};
    ck_assert_int_eq(llmsq_store_put(s, name, LLMSQ_DTYPE_F32, cols ? 2 : 1, shape, d), LLMSQ_OK);
}

static llmsq_store *random_store(const llmsq_config *c)
{
    llmsq_store *s = llmsq_store_create();
    int64_t d = c->hidden_size, F = c->intermediate_size, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    put(s, "model.embed_tokens.weight", c->vocab_size, d, 1.0, 0);
    put(s, "model.norm.weight", d, 0, 0.2, 1);
    if (!c->tie_embeddings) put(s, "lm_head.weight", c->vocab_size, d, 0.3, 0);
    char n[128];
    for (int64_t l = 0; l < c->n_layers; l++) {
#define P_(suffix, r, k, sc, ce) snprintf(n, sizeof n, "model.layers.%lld.%s", (long long)l, suffix), put(s, n, r, k, sc, ce)
        P_("input_layernorm.weight", d, 0, 0.2, 1);
        P_("post_attention_layernorm.weight", d, 0, 0.2, 1);
        P_("self_attn.q_proj.weight", q, d, 0.4, 0);
        P_("self_attn.k_proj.weight", kv, d, 0.4, 0);
        P_("self_attn.v_proj.weight", kv, d, 0.4, 0);
        P_("self_attn.o_proj.weight", d, q, 0.3, 0);
        P_("mlp.gate_proj.weight", F, d, 0.3, 0);
        P_("mlp.up_proj.weight", F, d, 0.3, 0);
        P_("mlp.down_proj.weight", d, F, 0.3, 0);
        if (c->qkv_bias) {
            P_("self_attn.q_proj.bias", q, 0, 0.2, 0);
            P_("self_attn.k_proj.bias", kv, 0, 0.2, 0);
            P_("self_attn.v_proj.bias", kv, 0, 0.2, 0);
        }
        if (c->o_bias) { P_("self_attn.o_proj.bias", d, 0, 0.2, 0); }
        if (c->mlp_bias) {
            P_("mlp.gate_proj.bias", F, 0, 0.2, 0);
            P_("mlp.up_proj.bias", F, 0, 0.2, 0);
            P_("mlp.down_proj.bias", d, 0, 0.2, 0);
        }
        if (c->qk_norm) {
            P_("self_attn.q_norm.weight", c->head_dim, 0, 0.2, 1);
            P_("self_attn.k_norm.weight", c->head_dim, 0, 0.2, 1);
        }
#undef P_
    }
    return s;
}

static const float *W(llmsq_store *s, const char *fmt, long long l)
{
    char n[128];
    snprintf(n, sizeof n, fmt, l);
    const llmsq_tensor *t = llmsq_store_get(s, n);
    return t ? t->data : NULL;
}

/* y[n] = W[n, k] x[k] + b */
static void ref_linear(const float *Wt, const float *b, const double *x, int64_t n, int64_t k, double *y)
{
    for (int64_t i = 0; i < n; i++) {
        double acc = b ? b[i] : 0;
        for (int64_t j = 0; j < k; j++) acc += (double)Wt[i * k + j] * x[j];
        y[i] = acc;
    }
}

static void ref_rmsnorm(double *x, const float *w, int64_t n, double eps, double *y)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1 / sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

/* transformers' _compute_default/linear/llama3 rope parameters, re-derived. */
static double ref_inv_freq(const llmsq_config *c, int64_t i)
{
    double f = pow(c->rope_theta, -2.0 * (double)i / (double)c->head_dim);
    if (c->rope_type == LLMSQ_ROPE_LINEAR) return f / c->rope_factor;
    if (c->rope_type != LLMSQ_ROPE_LLAMA3) return f;
    double wavelen = 2 * M_PI / f, old = (double)c->rope_original_max_position;
    if (wavelen < old / c->rope_high_freq_factor) return f;
    if (wavelen > old / c->rope_low_freq_factor) return f / c->rope_factor;
    double smooth = (old / wavelen - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
    return (1 - smooth) * f / c->rope_factor + smooth * f;
}

static void ref_rope(double *v, int64_t hd, int64_t pos, const llmsq_config *c)
{
    for (int64_t i = 0; i < hd / 2; i++) {
        double a = pos * ref_inv_freq(c, i), x0 = v[i], x1 = v[i + hd / 2];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + hd / 2] = x1 * cos(a) + x0 * sin(a);
    }
}

/* Whole-sequence logits [T, V] in double, one token at a time with explicit K/V history. */
static double *ref_forward(llmsq_store *s, const llmsq_config *c, const int32_t *ids, int64_t T)
{
    const int64_t d = c->hidden_size, F = c->intermediate_size, hd = c->head_dim, nh = c->n_heads,
                  nkv = c->n_kv_heads, V = c->vocab_size;
    double *X = calloc((size_t)(T * d), sizeof *X);
    double *K = calloc((size_t)(T * nkv * hd), sizeof *K), *Vv = calloc((size_t)(T * nkv * hd), sizeof *Vv);
    double *xn = malloc((size_t)d * sizeof *xn), *q = malloc((size_t)(nh * hd) * sizeof *q);
    double *att = malloc((size_t)(nh * hd) * sizeof *att), *o = malloc((size_t)d * sizeof *o);
    double *g = malloc((size_t)F * sizeof *g), *u = malloc((size_t)F * sizeof *u), *p = malloc((size_t)T * sizeof *p);
    const float *emb = llmsq_store_get(s, "model.embed_tokens.weight")->data;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++) X[t * d + i] = emb[(int64_t)ids[t] * d + i];
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int64_t t = 0; t < T; t++) { /* K/V of this layer for every position first */
            ref_rmsnorm(X + t * d, W(s, "model.layers.%lld.input_layernorm.weight", l), d, c->rms_eps, xn);
            ref_linear(W(s, "model.layers.%lld.self_attn.k_proj.weight", l), W(s, "model.layers.%lld.self_attn.k_proj.bias", l),
                       xn, nkv * hd, d, K + t * nkv * hd);
            ref_linear(W(s, "model.layers.%lld.self_attn.v_proj.weight", l), W(s, "model.layers.%lld.self_attn.v_proj.bias", l),
                       xn, nkv * hd, d, Vv + t * nkv * hd);
            for (int64_t h = 0; h < nkv; h++) {
                if (c->qk_norm)
                    ref_rmsnorm(K + t * nkv * hd + h * hd, W(s, "model.layers.%lld.self_attn.k_norm.weight", l), hd,
                                c->rms_eps, K + t * nkv * hd + h * hd);
                ref_rope(K + t * nkv * hd + h * hd, hd, t, c);
            }
        }
        for (int64_t t = 0; t < T; t++) {
            double *x = X + t * d;
            ref_rmsnorm(x, W(s, "model.layers.%lld.input_layernorm.weight", l), d, c->rms_eps, xn);
            ref_linear(W(s, "model.layers.%lld.self_attn.q_proj.weight", l), W(s, "model.layers.%lld.self_attn.q_proj.bias", l),
                       xn, nh * hd, d, q);
            for (int64_t h = 0; h < nh; h++) {
                double *qh = q + h * hd;
                if (c->qk_norm) ref_rmsnorm(qh, W(s, "model.layers.%lld.self_attn.q_norm.weight", l), hd, c->rms_eps, qh);
                ref_rope(qh, hd, t, c);
                int64_t kvh = h / (nh / nkv), lo = c->sliding_window && t + 1 > c->sliding_window ? t + 1 - c->sliding_window : 0;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = lo; j <= t; j++) {
                    double dot = 0;
                    for (int64_t i = 0; i < hd; i++) dot += qh[i] * K[j * nkv * hd + kvh * hd + i];
                    p[j] = dot / sqrt((double)hd);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = lo; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
                for (int64_t i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int64_t j = lo; j <= t; j++) acc += p[j] / sum * Vv[j * nkv * hd + kvh * hd + i];
                    att[h * hd + i] = acc;
                }
            }
            ref_linear(W(s, "model.layers.%lld.self_attn.o_proj.weight", l), W(s, "model.layers.%lld.self_attn.o_proj.bias", l),
                       att, d, nh * hd, o);
            for (int64_t i = 0; i < d; i++) x[i] += o[i];
            ref_rmsnorm(x, W(s, "model.layers.%lld.post_attention_layernorm.weight", l), d, c->rms_eps, xn);
            ref_linear(W(s, "model.layers.%lld.mlp.gate_proj.weight", l), W(s, "model.layers.%lld.mlp.gate_proj.bias", l), xn, F, d, g);
            ref_linear(W(s, "model.layers.%lld.mlp.up_proj.weight", l), W(s, "model.layers.%lld.mlp.up_proj.bias", l), xn, F, d, u);
            for (int64_t i = 0; i < F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_linear(W(s, "model.layers.%lld.mlp.down_proj.weight", l), W(s, "model.layers.%lld.mlp.down_proj.bias", l), g, d, F, o);
            for (int64_t i = 0; i < d; i++) x[i] += o[i];
        }
    }
    double *logits = malloc((size_t)(T * V) * sizeof *logits);
    const llmsq_tensor *head = llmsq_store_get(s, c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    for (int64_t t = 0; t < T; t++) {
        ref_rmsnorm(X + t * d, llmsq_store_get(s, "model.norm.weight")->data, d, c->rms_eps, xn);
        ref_linear(head->data, NULL, xn, V, d, logits + t * V);
    }
    free(X), free(K), free(Vv), free(xn), free(q), free(att), free(o), free(g), free(u), free(p);
    return logits;
}

static llmsq_config base_config(void)
{
    llmsq_config c = {0};
    c.arch = LLMSQ_ARCH_LLAMA;
    snprintf(c.arch_name, sizeof c.arch_name, "LlamaForCausalLM");
    c.vocab_size = 37;
    c.hidden_size = 24;
    c.intermediate_size = 40;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 6;
    c.max_position = 64;
    c.rms_eps = 1e-5;
    c.rope_theta = 10000;
    c.rope_factor = 1;
    c.tie_embeddings = true;
    c.bos_id = 1;
    c.eos_id = 2;
    return c;
}

static llmsq_config variant(int i)
{
    llmsq_config c = base_config();
    switch (i) {
    case 0: break; /* Llama with GQA, tied */
    case 1: /* Qwen2: q/k/v bias, untied, big theta */
        c.arch = LLMSQ_ARCH_QWEN2, c.qkv_bias = true, c.tie_embeddings = false, c.rope_theta = 1e6;
        break;
    case 2: /* Qwen3: q/k norm, head_dim != hidden/heads */
        c.arch = LLMSQ_ARCH_QWEN3, c.qk_norm = true, c.head_dim = 10, c.rms_eps = 1e-6;
        break;
    case 3: /* Llama attention_bias + mlp_bias, linear RoPE scaling, MHA */
        c.o_bias = c.qkv_bias = c.mlp_bias = true, c.n_kv_heads = 4, c.rope_type = LLMSQ_ROPE_LINEAR, c.rope_factor = 4;
        break;
    case 4: /* Llama 3 RoPE: the three frequency bands all occur at head_dim 16, theta 500000 */
        c.head_dim = 16, c.rope_theta = 500000, c.rope_type = LLMSQ_ROPE_LLAMA3, c.rope_factor = 32;
        c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_original_max_position = 64;
        break;
    case 5: /* Mistral: sliding window shorter than the sequence */
        c.arch = LLMSQ_ARCH_MISTRAL, c.sliding_window = 5;
        break;
    }
    return c;
}

enum { MODE_FLOAT, MODE_PACKED, MODE_PACKED_UNSTACKED, MODE_PACKED_BATCH };

/* max |a - ref| over n logits must stay within a few hundred ulp of the largest logit. */
static void expect_close(const double *ref, const float *lg, int64_t n, double scale, const char *what, int variant)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(ref[i] - lg[i]));
    if (strcmp(what, "batched decode") != 0) /* once per step: too many lines */
        fprintf(stderr, "variant %d, %s: max |f32 - f64 reference| = %.3g (max |logit| %.3g)\n", variant, what,
                worst, scale);
    /* f32 activations through ~10 matmuls of width <= 40 */
    ck_assert_msg(worst <= 2e-5 * (1 + scale), "variant %d, %s: %g", variant, what, worst);
}

/* The model of variant i, float or packed (F32 dense layouts: exact weights, own kernels). */
static void check_variant(int i, int mode)
{
    llmsq_config c = variant(i);
    g_rng = 1000 + (uint64_t)i;
    llmsq_store *s = random_store(&c);
    enum { T = 19, B = 3 };
    const int64_t V = c.vocab_size;
    int32_t ids[T];
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)(urand() * (double)V);
    double *ref = ref_forward(s, &c, ids, T); /* before the model owns the store */
    double scale = 0;
    for (int64_t k = 0; k < T * V; k++) scale = fmax(scale, fabs(ref[k]));
    llmsq_model *m;
    llmsq_pack_opts o = llmsq_pack_default_opts();
    o.fuse = mode != MODE_PACKED_UNSTACKED;
    llmsq_status st = mode == MODE_FLOAT ? llmsq_model_create(&c, s, NULL, "random", &m)
                                         : llmsq_model_create_packed(&c, s, NULL, "random", &o, &m);
    ck_assert_msg(st == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_model_pack_info info;
    ck_assert(llmsq_model_pack_info_get(m, &info) == (mode != MODE_FLOAT));
    if (mode != MODE_FLOAT) {
        ck_assert_int_eq(info.linears[LLMSQ_PLINEAR_DENSE], 7 * c.n_layers);
        ck_assert_int_eq(info.matmuls, (o.fuse ? 4 : 7) * c.n_layers);
        ck_assert_int_eq(info.fallbacks, 0);
    }
    float *lg = malloc((size_t)(B * T * V) * sizeof *lg);
    llmsq_kv_cache *cache[B];
    for (int b = 0; b < B; b++) ck_assert_int_eq(llmsq_kv_cache_create(&c, T, &cache[b]), LLMSQ_OK);
    if (mode != MODE_PACKED_BATCH) {
        ck_assert_int_eq(llmsq_model_forward(m, cache[0], ids, T, lg, NULL), LLMSQ_OK);
        expect_close(ref, lg, T * V, scale, "prefill", i);
        /* the same logits through one-token decode steps */
        llmsq_kv_cache_reset(cache[0]);
        for (int64_t t = 0; t < T; t++)
            ck_assert_int_eq(llmsq_model_forward(m, cache[0], ids + t, 1, lg + t * V, NULL), LLMSQ_OK);
        expect_close(ref, lg, T * V, scale, "decode", i);
    } else {
        /* B copies of the sequence at staggered lengths: sequence b first gets b tokens
         * alone, then all advance together one token per step */
        for (int b = 1; b < B; b++) ck_assert_int_eq(llmsq_model_forward(m, cache[b], ids, b, NULL, NULL), LLMSQ_OK);
        float *step = malloc((size_t)(B * V) * sizeof *step);
        for (int64_t t = 0; t + B - 1 < T; t++) {
            int32_t tok[B];
            for (int b = 0; b < B; b++) tok[b] = ids[t + b];
            ck_assert_int_eq(llmsq_model_forward_batch(m, cache, B, tok, 1, step, NULL), LLMSQ_OK);
            for (int b = 0; b < B; b++) expect_close(ref + (t + b) * V, step + b * V, V, scale, "batched decode", i);
        }
        free(step);
        /* a batched prefill of B whole sequences */
        for (int b = 0; b < B; b++) llmsq_kv_cache_reset(cache[b]);
        int32_t all[B * T];
        for (int b = 0; b < B; b++) memcpy(all + b * T, ids, sizeof ids);
        ck_assert_int_eq(llmsq_model_forward_batch(m, cache, B, all, T, lg, NULL), LLMSQ_OK);
        for (int b = 0; b < B; b++) expect_close(ref, lg + b * T * V, T * V, scale, "batched prefill", i);
    }
    for (int b = 0; b < B; b++) llmsq_kv_cache_free(cache[b]);
    llmsq_model_free(m);
    free(ref), free(lg);
}

START_TEST(test_forward_matches_scalar_reference) { check_variant(_i, MODE_FLOAT); }
END_TEST

START_TEST(test_packed_forward_matches_scalar_reference)
{
    check_variant(_i, MODE_PACKED);
    check_variant(_i, MODE_PACKED_UNSTACKED);
    check_variant(_i, MODE_PACKED_BATCH);
}
END_TEST

START_TEST(test_missing_bias_is_named)
{
    llmsq_config c = variant(1);
    llmsq_config no_bias = c;
    no_bias.qkv_bias = false;
    llmsq_store *s = random_store(&no_bias); /* the checkpoint lacks the biases the config needs */
    llmsq_model *m;
    ck_assert_int_eq(llmsq_model_create(&c, s, NULL, "ckpt", &m), LLMSQ_STATUS_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "model.layers.0.self_attn.q_proj.bias"));
}
END_TEST

/* Packing checks weights too: a NaN in a linear is named with its row and column, and a
 * float/quantized mix cannot be stacked but still packs (one matmul each). */
START_TEST(test_packed_rejects_nan)
{
    llmsq_config c = variant(0);
    g_rng = 7;
    llmsq_store *s = random_store(&c);
    const llmsq_tensor *t = llmsq_store_get(s, "model.layers.1.mlp.up_proj.weight");
    ((float *)t->data)[3 * t->shape[1] + 5] = NAN;
    llmsq_model *m;
    ck_assert_int_eq(llmsq_model_create_packed(&c, s, NULL, "ckpt", NULL, &m), LLMSQ_STATUS_NUMERIC);
    const char *e = llmsq_last_error();
    ck_assert_msg(strstr(e, "ckpt") && strstr(e, "model.layers.1.mlp.up_proj.weight") && strstr(e, "row 3, column 5"),
                  "%s", e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward_ref");
    TCase *tc = tcase_create("variants");
    tcase_add_loop_test(tc, test_forward_matches_scalar_reference, 0, 6);
    tcase_add_loop_test(tc, test_packed_forward_matches_scalar_reference, 0, 6);
    tcase_add_test(tc, test_missing_bias_is_named);
    tcase_add_test(tc, test_packed_rejects_nan);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
