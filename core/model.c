/* Model construction: config checks, weight binding and validation, RoPE frequencies. */
#include "core/model-impl.h"
#include "llmsq/quant.h"
#include "llmsq/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_arch_names[LLMSQ_ARCH_COUNT] = {
    [LLMSQ_ARCH_LLAMA] = "llama", [LLMSQ_ARCH_MISTRAL] = "mistral",
    [LLMSQ_ARCH_QWEN2] = "qwen2", [LLMSQ_ARCH_QWEN3] = "qwen3"};

const char *llmsq_arch_name(llmsq_arch a)
{
    return (unsigned)a < LLMSQ_ARCH_COUNT ? k_arch_names[a] : "unknown";
}

llmsq_status llmsq_config_validate(const llmsq_config *c, const char *src)
{
#define POS_(f) \
    if (c->f <= 0 || c->f > (int64_t)1 << 40) \
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s must be positive (got %lld)", src, #f, (long long)c->f)
    POS_(vocab_size);
    POS_(hidden_size);
    POS_(intermediate_size);
    POS_(n_layers);
    POS_(n_heads);
    POS_(n_kv_heads);
    POS_(head_dim);
    POS_(max_position);
#undef POS_
    if (c->n_heads % c->n_kv_heads != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %lld attention heads is not a multiple of %lld key/value heads", src,
                           (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: head_dim %lld must be even for RoPE", src, (long long)c->head_dim);
    if (!(c->rms_eps > 0) || !(c->rms_eps < 1))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rms_norm_eps %g out of range", src, c->rms_eps);
    if (!(c->rope_theta > 1))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rope_theta %g out of range", src, c->rope_theta);
    return LLMSQ_OK;
}

int64_t llmsq_config_param_count(const llmsq_config *c)
{
    int64_t d = c->hidden_size, F = c->intermediate_size, q = c->n_heads * c->head_dim,
            kv = c->n_kv_heads * c->head_dim;
    int64_t per = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * F;
    if (c->qkv_bias) per += q + 2 * kv;
    if (c->o_bias) per += d;
    if (c->mlp_bias) per += 2 * F + d;
    if (c->qk_norm) per += 2 * c->head_dim;
    return c->n_layers * per + c->vocab_size * d * (c->tie_embeddings ? 1 : 2) + d;
}

/* RoPE inverse frequencies, with the scaling of transformers' rope utils. */
static double *rope_inv_freq(const llmsq_config *c)
{
    int64_t half = c->head_dim / 2;
    double *f = malloc((size_t)half * sizeof *f);
    if (!f) return NULL;
    for (int64_t i = 0; i < half; i++) {
        double inv = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        if (c->rope_type == LLMSQ_ROPE_LINEAR) {
            inv /= c->rope_factor;
        } else if (c->rope_type == LLMSQ_ROPE_LLAMA3) {
            double old = (double)c->rope_original_max_position;
            double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
            double wl = 2 * M_PI / inv;
            if (wl > low_wl) {
                inv /= c->rope_factor; /* long wavelengths: interpolate fully */
            } else if (wl >= high_wl) {
                double s = (old / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1 - s) * inv / c->rope_factor + s * inv;
            }
        }
        f[i] = inv;
    }
    return f;
}

/* Checks that `name` exists with the expected shape ([n] when cols == 0). */
llmsq_status llmsq__model_check_shape(const llmsq_model *m, const char *name, int64_t rows, int64_t cols)
{
    const llmsq_tensor *t = llmsq_store_get(m->store, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: missing tensor '%s'", m->source, name);
    bool ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                   : (t->ndim == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[96];
        if (cols)
            return llmsq_error(LLMSQ_STATUS_SHAPE, "%s: tensor '%s' has shape %s, the config implies [%lld, %lld]",
                               m->source, name, llmsq_shape_str(t, got, sizeof got), (long long)rows, (long long)cols);
        return llmsq_error(LLMSQ_STATUS_SHAPE, "%s: tensor '%s' has shape %s, the config implies [%lld]", m->source,
                           name, llmsq_shape_str(t, got, sizeof got), (long long)rows);
    }
    return LLMSQ_OK;
}

/* Binds `name` as f32 with the expected shape ([n] when cols == 0), checked finite. */
llmsq_status llmsq__model_bind(llmsq_model *m, const char *name, int64_t rows, int64_t cols, const float **out)
{
    LLMSQ_TRY(llmsq__model_check_shape(m, name, rows, cols));
    llmsq_status st = llmsq_store_get_f32(m->store, name, out);
    if (st != LLMSQ_OK) return llmsq_error_prefix(st, "%s", m->source);
    int64_t n = rows * (cols ? cols : 1);
    int64_t bad = llmsq_f32_first_nonfinite(*out, n);
    if (bad >= 0)
        return llmsq_error(LLMSQ_STATUS_NUMERIC, "%s: tensor '%s' has a non-finite value (%g) at element %lld",
                           m->source, name, (double)(*out)[bad], (long long)bad);
    return LLMSQ_OK;
}

#define B_(suffix, rows, cols, dst) \
    do { \
        char name_[160]; \
        snprintf(name_, sizeof name_, "model.layers.%lld.%s", (long long)l, suffix); \
        LLMSQ_TRY(llmsq__model_bind(m, name_, rows, cols, &w->dst)); \
    } while (0)

llmsq_status llmsq__model_bind_vectors(llmsq_model *m, int64_t l)
{
    const llmsq_config *c = &m->cfg;
    llmsq_layer_weights *w = &m->layers[l];
    int64_t d = c->hidden_size, F = c->intermediate_size, q = c->n_heads * c->head_dim,
            kv = c->n_kv_heads * c->head_dim;
    B_("input_layernorm.weight", d, 0, attn_norm);
    if (c->qkv_bias) {
        B_("self_attn.q_proj.bias", q, 0, bq);
        B_("self_attn.k_proj.bias", kv, 0, bk);
        B_("self_attn.v_proj.bias", kv, 0, bv);
    }
    if (c->o_bias) B_("self_attn.o_proj.bias", d, 0, bo);
    if (c->qk_norm) {
        B_("self_attn.q_norm.weight", c->head_dim, 0, q_norm);
        B_("self_attn.k_norm.weight", c->head_dim, 0, k_norm);
    }
    B_("post_attention_layernorm.weight", d, 0, ffn_norm);
    if (c->mlp_bias) {
        B_("mlp.gate_proj.bias", F, 0, bg);
        B_("mlp.up_proj.bias", F, 0, bu);
        B_("mlp.down_proj.bias", d, 0, bd);
    }
    return LLMSQ_OK;
}

void llmsq__linear_shape(const llmsq_config *c, llmsq_linear_id id, int64_t *out, int64_t *in)
{
    const int64_t d = c->hidden_size, F = c->intermediate_size, q = c->n_heads * c->head_dim,
                  kv = c->n_kv_heads * c->head_dim;
    static const int rows_in[LLMSQ_LINEAR_COUNT][2] = {{0, 1}, {2, 1}, {2, 1}, {1, 0}, {3, 1}, {3, 1}, {1, 3}};
    const int64_t dim[4] = {q, d, kv, F};
    *out = dim[rows_in[id][0]];
    *in = dim[rows_in[id][1]];
}

/* W8A8 linears quantize their inputs at inference. */
llmsq_status llmsq__model_bind_act(llmsq_model *m, int64_t l)
{
    llmsq_layer_weights *w = &m->layers[l];
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
        char name[160];
        llmsq_linear_weight_name(l, (llmsq_linear_id)i, name, sizeof name);
        const llmsq_qlinear *ql = llmsq_store_get_qlinear(m->store, name);
        w->act[i] = (llmsq_act_quant){0, 0.0f};
        if (ql && ql->act_bits) {
            if (ql->act_bits != 8)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: '%s' quantizes its inputs to %d bits (int8 only)",
                                   m->source, name, ql->act_bits);
            w->act[i] = (llmsq_act_quant){8, ql->act_static ? ql->act_scale : 0.0f};
        }
    }
    return LLMSQ_OK;
}

static llmsq_status bind_layer(llmsq_model *m, int64_t l)
{
    llmsq_layer_weights *w = &m->layers[l];
    LLMSQ_TRY(llmsq__model_bind_vectors(m, l));
    const float **dst[LLMSQ_LINEAR_COUNT] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->wg, &w->wu, &w->wd};
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
        char name[160];
        int64_t out, in;
        llmsq__linear_shape(&m->cfg, (llmsq_linear_id)i, &out, &in);
        llmsq_linear_weight_name(l, (llmsq_linear_id)i, name, sizeof name);
        LLMSQ_TRY(llmsq__model_bind(m, name, out, in, dst[i]));
    }
    return llmsq__model_bind_act(m, l);
}
#undef B_

llmsq_status llmsq__model_init(const llmsq_config *cfg, llmsq_store *store, llmsq_tokenizer *tok, const char *source,
                               llmsq_model **out)
{
    *out = NULL;
    llmsq_model *m = calloc(1, sizeof *m);
    if (!m) {
        llmsq_store_destroy(store);
        llmsq_tokenizer_free(tok);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    m->cfg = *cfg;
    m->store = store;
    m->tok = tok;
    m->source = strdup(source ? source : "model");
    llmsq_status st = llmsq_config_validate(cfg, m->source);
    if (st == LLMSQ_OK && tok && llmsq_tokenizer_vocab_size(tok) > cfg->vocab_size)
        st = llmsq_error(LLMSQ_STATUS_SHAPE, "%s: tokenizer has %lld pieces but the model only %lld embeddings",
                         m->source, (long long)llmsq_tokenizer_vocab_size(tok), (long long)cfg->vocab_size);
    if (st == LLMSQ_OK) {
        m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
        m->inv_freq = rope_inv_freq(cfg);
        if (!m->layers || !m->inv_freq) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    if (st != LLMSQ_OK) {
        llmsq_model_free(m);
        return st;
    }
    *out = m;
    return LLMSQ_OK;
}

/* Name of the lm_head's weights: lm_head.weight, or the embeddings when tied. */
llmsq_status llmsq__model_head_name(const llmsq_model *m, const char **name)
{
    if (!m->cfg.tie_embeddings && llmsq_store_get(m->store, "lm_head.weight")) {
        *name = "lm_head.weight";
        return LLMSQ_OK;
    }
    *name = "model.embed_tokens.weight";
    if (!m->cfg.tie_embeddings)
        return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: missing tensor 'lm_head.weight' (tie_word_embeddings is false)",
                           m->source);
    return LLMSQ_OK;
}

llmsq_status llmsq_model_create(const llmsq_config *cfg, llmsq_store *store, llmsq_tokenizer *tok,
                                const char *source, llmsq_model **out)
{
    LLMSQ_ASSERT(cfg && store && out);
    llmsq_model *m;
    LLMSQ_TRY(llmsq__model_init(cfg, store, tok, source, &m));
    const int64_t d = cfg->hidden_size, V = cfg->vocab_size;
    const char *head;
    llmsq_status st = llmsq__model_bind(m, "model.embed_tokens.weight", V, d, &m->embed);
    if (st == LLMSQ_OK) st = llmsq__model_bind(m, "model.norm.weight", d, 0, &m->final_norm);
    if (st == LLMSQ_OK) st = llmsq__model_head_name(m, &head);
    if (st == LLMSQ_OK) st = llmsq__model_bind(m, head, V, d, &m->lm_head);
    for (int64_t l = 0; st == LLMSQ_OK && l < cfg->n_layers; l++) st = bind_layer(m, l);
    if (st != LLMSQ_OK) {
        llmsq_model_free(m);
        return st;
    }
    *out = m;
    return LLMSQ_OK;
}

llmsq_status llmsq_model_rebind_layer(llmsq_model *m, int64_t layer)
{
    LLMSQ_ASSERT(layer >= 0 && layer < m->cfg.n_layers && !m->packed);
    llmsq_status st = bind_layer(m, layer);
    if (st != LLMSQ_OK) memset(&m->layers[layer], 0, sizeof m->layers[layer]);
    return st;
}

const llmsq_layer_weights *llmsq_model_layer(const llmsq_model *m, int64_t layer)
{
    LLMSQ_ASSERT(layer >= 0 && layer < m->cfg.n_layers);
    return &m->layers[layer];
}

void llmsq_model_unbind_layer(llmsq_model *m, int64_t layer)
{
    LLMSQ_ASSERT(layer >= 0 && layer < m->cfg.n_layers && !m->packed);
    static const char *const suffixes[] = {
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "self_attn.q_proj.bias",
        "self_attn.k_proj.bias", "self_attn.v_proj.bias", "self_attn.o_proj.bias",
        "self_attn.q_norm.weight", "self_attn.k_norm.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "mlp.gate_proj.bias",
        "mlp.up_proj.bias", "mlp.down_proj.bias"};
    char name[160];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)layer, suffixes[i]);
        llmsq_store_release_f32(m->store, name);
    }
    memset(&m->layers[layer], 0, sizeof m->layers[layer]);
}

static const char *const k_linear_names[LLMSQ_LINEAR_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

const char *llmsq_linear_short_name(llmsq_linear_id id)
{
    LLMSQ_ASSERT((unsigned)id < LLMSQ_LINEAR_COUNT);
    return strchr(k_linear_names[id], '.') + 1;
}

llmsq_block_input llmsq_linear_input(llmsq_linear_id id)
{
    static const llmsq_block_input in[LLMSQ_LINEAR_COUNT] = {
        LLMSQ_INPUT_ATTN, LLMSQ_INPUT_ATTN, LLMSQ_INPUT_ATTN, LLMSQ_INPUT_O,
        LLMSQ_INPUT_MLP,  LLMSQ_INPUT_MLP,  LLMSQ_INPUT_DOWN};
    LLMSQ_ASSERT((unsigned)id < LLMSQ_LINEAR_COUNT);
    return in[id];
}

const char *llmsq_linear_module(int64_t layer, llmsq_linear_id id, char *buf, size_t cap)
{
    LLMSQ_ASSERT((unsigned)id < LLMSQ_LINEAR_COUNT);
    snprintf(buf, cap, "model.layers.%lld.%s", (long long)layer, k_linear_names[id]);
    return buf;
}

const char *llmsq_linear_weight_name(int64_t layer, llmsq_linear_id id, char *buf, size_t cap)
{
    LLMSQ_ASSERT((unsigned)id < LLMSQ_LINEAR_COUNT);
    snprintf(buf, cap, "model.layers.%lld.%s.weight", (long long)layer, k_linear_names[id]);
    return buf;
}

void llmsq_model_free(llmsq_model *m)
{
    if (!m) return;
    llmsq_store_destroy(m->store);
    llmsq_tokenizer_free(m->tok);
    for (int64_t i = 0; i < m->n_owned; i++) llmsq_plinear_free(m->owned_pl[i]);
    free(m->owned_pl);
    llmsq_plinear_free(m->head_pl);
    llmsq_plinear_free(m->embed_pl);
    free(m->layers);
    free(m->inv_freq);
    free(m->source);
    free(m);
}

const llmsq_config *llmsq_model_config(const llmsq_model *m) { return &m->cfg; }
llmsq_store *llmsq_model_store(llmsq_model *m) { return m->store; }
const llmsq_tokenizer *llmsq_model_tokenizer(const llmsq_model *m) { return m->tok; }
const char *llmsq_model_source(const llmsq_model *m) { return m->source; }

llmsq_status llmsq_model_set_tokenizer(llmsq_model *m, llmsq_tokenizer *tok)
{
    LLMSQ_ASSERT(m && tok);
    if (llmsq_tokenizer_vocab_size(tok) > m->cfg.vocab_size) {
        llmsq_status st = llmsq_error(LLMSQ_STATUS_SHAPE, "the tokenizer has %lld pieces but %s has only %lld embeddings",
                                      (long long)llmsq_tokenizer_vocab_size(tok), m->source,
                                      (long long)m->cfg.vocab_size);
        llmsq_tokenizer_free(tok);
        return st;
    }
    llmsq_tokenizer_free(m->tok);
    m->tok = tok;
    return LLMSQ_OK;
}

/* ---- KV cache -------------------------------------------------------------------------- */

llmsq_status llmsq_kv_cache_create(const llmsq_config *cfg, int64_t max_tokens, llmsq_kv_cache **out)
{
    LLMSQ_ASSERT(cfg && out && max_tokens > 0);
    llmsq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return llmsq_error(LLMSQ_STATUS_NOMEM, "KV cache: out of memory");
    c->n_layers = cfg->n_layers;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    c->cap = max_tokens;
    size_t n = (size_t)(c->n_layers * c->cap * c->kv_dim);
    c->k = malloc(n * sizeof(float));
    c->v = malloc(n * sizeof(float));
    if (!c->k || !c->v) {
        llmsq_kv_cache_free(c);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "KV cache: out of memory for %lld tokens", (long long)max_tokens);
    }
    *out = c;
    return LLMSQ_OK;
}

void llmsq_kv_cache_free(llmsq_kv_cache *c)
{
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c);
}

void llmsq_kv_cache_reset(llmsq_kv_cache *c) { c->len = 0; }
int64_t llmsq_kv_cache_len(const llmsq_kv_cache *c) { return c->len; }
int64_t llmsq_kv_cache_capacity(const llmsq_kv_cache *c) { return c->cap; }

llmsq_status llmsq_kv_cache_advance(llmsq_kv_cache *c, int64_t T)
{
    if (T < 0 || c->len + T > c->cap)
        return llmsq_error(LLMSQ_STATUS_ARG, "KV cache full: %lld + %lld tokens exceed its %lld positions",
                           (long long)c->len, (long long)T, (long long)c->cap);
    c->len += T;
    return LLMSQ_OK;
}
