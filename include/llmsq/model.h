/*
 * Model: configuration, weights view over a store, and the Llama-family forward pass.
 *
 * Conventions:
 *  - Q/K projections are in the Hugging Face rotate-half RoPE layout (element i of a head
 *    pairs with i + head_dim/2). Readers of interleaved formats (GGUF `llama`, llama2.c)
 *    permute rows on load, so the forward pass has exactly one convention.
 *  - Activations are f32 row-major [T, width]; matmuls go through OpenBLAS sgemm.
 *    Reductions that feed a result (RMSNorm sums, softmax, NLL) accumulate in double.
 */
#ifndef LLMSQ_MODEL_H
#define LLMSQ_MODEL_H

#include "llmsq/plinear.h"
#include "llmsq/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_arch {
    LLMSQ_ARCH_LLAMA = 0, /* LlamaForCausalLM (also llama2.c and GGUF `llama`) */
    LLMSQ_ARCH_MISTRAL,   /* MistralForCausalLM */
    LLMSQ_ARCH_QWEN2,     /* Qwen2ForCausalLM: q/k/v bias */
    LLMSQ_ARCH_QWEN3,     /* Qwen3ForCausalLM: per-head RMSNorm on q and k */
    LLMSQ_ARCH_COUNT
} llmsq_arch;

typedef enum llmsq_rope_type {
    LLMSQ_ROPE_DEFAULT = 0,
    LLMSQ_ROPE_LINEAR,    /* positions divided by factor */
    LLMSQ_ROPE_LLAMA3     /* per-frequency smoothing of Llama 3.1 */
} llmsq_rope_type;

typedef struct llmsq_config {
    llmsq_arch arch;
    char       arch_name[64];       /* architectures[0] as written in the source ("LlamaForCausalLM") */
    int64_t    vocab_size;
    int64_t    hidden_size;         /* d */
    int64_t    intermediate_size;   /* F */
    int64_t    n_layers;
    int64_t    n_heads;             /* query heads */
    int64_t    n_kv_heads;          /* key/value heads (GQA); divides n_heads */
    int64_t    head_dim;            /* hd; q_proj is [n_heads*hd, d] */
    int64_t    max_position;        /* context length */
    double     rms_eps;
    double     rope_theta;
    llmsq_rope_type rope_type;
    double     rope_factor;
    double     rope_low_freq_factor;   /* llama3 */
    double     rope_high_freq_factor;  /* llama3 */
    int64_t    rope_original_max_position; /* llama3 */
    int64_t    sliding_window;      /* attend to at most this many latest positions; 0 = unlimited */
    int32_t    bos_id;              /* -1 when none */
    int32_t    eos_id;              /* -1 when none */
    bool       tie_embeddings;      /* lm_head shares model.embed_tokens.weight */
    bool       qkv_bias;            /* q/k/v projections have a bias (Qwen2, attention_bias) */
    bool       o_bias;              /* o_proj has a bias (Llama attention_bias) */
    bool       mlp_bias;            /* gate/up/down have a bias (Llama mlp_bias) */
    bool       qk_norm;             /* Qwen3 q_norm/k_norm [hd] */
} llmsq_config;

LLMSQ_API const char *llmsq_arch_name(llmsq_arch a);

/* Checks internal consistency (positive sizes, heads divide, head_dim even...).
 * Errors: FORMAT with a message naming `source` and the field. */
LLMSQ_API llmsq_status llmsq_config_validate(const llmsq_config *c, const char *source);

/* Number of parameters the config implies (embeddings counted once when tied). */
LLMSQ_API int64_t llmsq_config_param_count(const llmsq_config *c);

typedef struct llmsq_tokenizer llmsq_tokenizer;
typedef struct llmsq_model     llmsq_model;

/* Builds a model over `store` (ownership of store and tok passes to the model, also on
 * failure; tok may be NULL). Checks that every tensor the config needs is present with
 * the right shape, materializes them as F32 and checks they are finite.
 * `source` names the checkpoint in messages.
 * Errors: NOT_FOUND (missing tensor), SHAPE, NUMERIC (NaN/Inf weight), UNSUPPORTED. */
LLMSQ_API llmsq_status llmsq_model_create(const llmsq_config *cfg, llmsq_store *store,
                                          llmsq_tokenizer *tok, const char *source,
                                          llmsq_model **out);
LLMSQ_API void llmsq_model_free(llmsq_model *m);

LLMSQ_API const llmsq_config    *llmsq_model_config(const llmsq_model *m);
LLMSQ_API llmsq_store           *llmsq_model_store(llmsq_model *m);
LLMSQ_API const llmsq_tokenizer *llmsq_model_tokenizer(const llmsq_model *m); /* may be NULL */
LLMSQ_API const char            *llmsq_model_source(const llmsq_model *m);

/* Replaces the model's tokenizer (ownership passes to the model, also on error; the old one
 * is freed). Errors: SHAPE when the tokenizer has more pieces than the model has embeddings. */
LLMSQ_API llmsq_status llmsq_model_set_tokenizer(llmsq_model *m, llmsq_tokenizer *tok);

/* ---- packed inference ------------------------------------------------------------------ */

/* As llmsq_model_create, but every block linear and the lm_head are packed into the CPU
 * kernel layouts of plinear.h as they are bound (q/k/v and gate/up stacked when opts->fuse),
 * and each source tensor is then released from the store (its quantized form, owned data,
 * F32 view, and the resident pages of a file mapping), so memory holds the packed weights
 * and one tensor's source at a time. Embedding rows are read from the packed dense lm_head
 * when embeddings are tied, else from their own dense packing. Norms and biases stay F32.
 * A packed model serves llmsq_model_forward(_batch), the head functions and perplexity;
 * calibration passes (rebind/unbind, llmsq_model_layer's float pointers) need an unpacked
 * model. opts NULL = llmsq_pack_default_opts(). Errors as llmsq_model_create. */
LLMSQ_API llmsq_status llmsq_model_create_packed(const llmsq_config *cfg, llmsq_store *store,
                                                 llmsq_tokenizer *tok, const char *source,
                                                 const llmsq_pack_opts *opts, llmsq_model **out);

typedef struct llmsq_model_pack_info {
    int64_t linears[LLMSQ_PLINEAR_KIND_COUNT]; /* block linears by layout (before stacking) */
    int64_t matmuls;          /* packed matmuls per token in the blocks (after stacking) */
    int64_t fallbacks;        /* quantized linears kept dense (plinear.h) */
    char    fallback[256];    /* the first fallback: "<tensor>: <reason>" */
    llmsq_dtype dense_dtype;  /* dtype of the dense lm_head */
    size_t  linear_bytes;     /* packed block linears */
    size_t  head_bytes;       /* packed lm_head */
    size_t  embed_bytes;      /* embeddings when not tied to the head (0 when tied) */
    size_t  other_bytes;      /* norms and biases (F32) */
} llmsq_model_pack_info;

/* Fills *info and returns true for a packed model; false (info untouched) otherwise. */
LLMSQ_API bool llmsq_model_pack_info_get(const llmsq_model *m, llmsq_model_pack_info *info);

/* ---- KV cache ---------------------------------------------------------------------- */

typedef struct llmsq_kv_cache llmsq_kv_cache;

/* A cache for up to max_tokens positions of every layer: K and V [max_tokens, n_kv*hd] f32. */
LLMSQ_API llmsq_status llmsq_kv_cache_create(const llmsq_config *cfg, int64_t max_tokens,
                                             llmsq_kv_cache **out);
LLMSQ_API void    llmsq_kv_cache_free(llmsq_kv_cache *c);
LLMSQ_API void    llmsq_kv_cache_reset(llmsq_kv_cache *c);     /* length back to 0 */
LLMSQ_API int64_t llmsq_kv_cache_len(const llmsq_kv_cache *c); /* positions filled */
LLMSQ_API int64_t llmsq_kv_cache_capacity(const llmsq_kv_cache *c);

/* ---- forward ----------------------------------------------------------------------- */

/* Runs T new tokens at positions len..len+T-1 of the cache (len = llmsq_kv_cache_len),
 * appending their K/V, so a whole sequence (fresh cache), a prefill and a one-token
 * decode step are the same call. Outputs (either may be NULL):
 *   logits [T, vocab_size] f32,
 *   hidden [T, hidden_size] f32, the final-normed hidden states.
 * Errors: ARG (token id out of range, cache full), NOMEM. */
LLMSQ_API llmsq_status llmsq_model_forward(const llmsq_model *m, llmsq_kv_cache *cache,
                                           const int32_t *tokens, int64_t T,
                                           float *logits, float *hidden);

/* B sequences advanced together: tokens [B, T] (row b = T new tokens of sequence b, at
 * positions len_b..len_b+T-1 of caches[b], each cache at its own length), so every linear
 * runs once on B*T rows (the batched decode step is T = 1) while attention reads each
 * sequence's own cache. Outputs [B*T, ...] as llmsq_model_forward, row b*T + t. B = 1 is
 * llmsq_model_forward. Errors: as llmsq_model_forward (no cache is advanced on error). */
LLMSQ_API llmsq_status llmsq_model_forward_batch(const llmsq_model *m, llmsq_kv_cache *const *caches,
                                                 int64_t B, const int32_t *tokens, int64_t T,
                                                 float *logits, float *hidden);

/* Token embeddings: x [T, hidden_size] = embed_tokens[tokens]. Errors: ARG (id out of range). */
LLMSQ_API llmsq_status llmsq_model_embed(const llmsq_model *m, const int32_t *tokens, int64_t T,
                                         float *x);

/* One decoder block, in place: x [T, hidden_size] holds the block input (residual stream)
 * and receives its output. Positions are len..len+T-1 of the cache; only `layer`'s slot
 * of the cache is written, and the cache length is not advanced (the caller advances it
 * with llmsq_kv_cache_advance after the last layer). This is the calibration entry point. */
LLMSQ_API llmsq_status llmsq_model_block_forward(const llmsq_model *m, int64_t layer,
                                                 llmsq_kv_cache *cache, float *x, int64_t T);
LLMSQ_API llmsq_status llmsq_kv_cache_advance(llmsq_kv_cache *c, int64_t T);

/* The four activations that feed a block's linears (calibration observers). */
typedef enum llmsq_block_input {
    LLMSQ_INPUT_ATTN = 0, /* normed residual [T, d]      -> q_proj, k_proj, v_proj */
    LLMSQ_INPUT_O,        /* attention output [T, nh*hd]  -> o_proj */
    LLMSQ_INPUT_MLP,      /* normed residual [T, d]      -> gate_proj, up_proj */
    LLMSQ_INPUT_DOWN,     /* silu(gate) * up [T, F]      -> down_proj */
    LLMSQ_INPUT_COUNT
} llmsq_block_input;

typedef struct llmsq_block_observer {
    /* Called with each input X [T, n] as the block computes it; a non-OK status aborts the
     * forward and is returned. */
    llmsq_status (*fn)(void *user, llmsq_block_input which, const float *X, int64_t T, int64_t n);
    void *user;
    /* The block returns right after observing this input (x is then left partly updated):
     * observation passes need not run the rest of the block. LLMSQ_INPUT_COUNT = run it all. */
    llmsq_block_input stop_after;
} llmsq_block_observer;

/* llmsq_model_block_forward with an observer (obs may be NULL). */
LLMSQ_API llmsq_status llmsq_model_block_forward_observed(const llmsq_model *m, int64_t layer,
                                                          llmsq_kv_cache *cache, float *x, int64_t T,
                                                          const llmsq_block_observer *obs);

/* The seven linears of a block. */
typedef enum llmsq_linear_id {
    LLMSQ_LINEAR_Q = 0, LLMSQ_LINEAR_K, LLMSQ_LINEAR_V, LLMSQ_LINEAR_O,
    LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP, LLMSQ_LINEAR_DOWN, LLMSQ_LINEAR_COUNT
} llmsq_linear_id;

/* ---- one block's weights, for passes that transform a block (AWQ, SmoothQuant) ---------- */

/* Activation quantization of one linear's input (from the quantized linear's act_bits). */
typedef struct llmsq_act_quant {
    int   bits;      /* 0: none; 8: int8 symmetric (llmsq_act_quant_i8) */
    float scale;     /* static per-tensor scale; 0 = dynamic per token */
} llmsq_act_quant;

/* Weights of one decoder block, all f32 (borrowed from the store's F32 views, or from a
 * pass's own buffers in a copy). Bias and norm pointers are NULL when the architecture has none. */
typedef struct llmsq_layer_weights {
    const float *attn_norm;          /* [d] */
    const float *wq, *wk, *wv, *wo;  /* [nh*hd, d], [nkv*hd, d], [nkv*hd, d], [d, nh*hd] */
    const float *bq, *bk, *bv, *bo;  /* [nh*hd], [nkv*hd], [nkv*hd], [d] */
    const float *q_norm, *k_norm;    /* [hd] (Qwen3) */
    const float *ffn_norm;           /* [d] */
    const float *wg, *wu, *wd;       /* [F, d], [F, d], [d, F] */
    const float *bg, *bu, *bd;       /* [F], [F], [d] */
    llmsq_act_quant act[LLMSQ_LINEAR_COUNT]; /* input quantization of each linear (W8A8) */
    /* Packed models only (llmsq_model_create_packed): the packed linears, used instead of the
     * float pointers above (which are then NULL). Stacked: pl[Q] computes the rows of q, k
     * and v ([nh*hd + 2*nkv*hd, d]) with pl[K] = pl[V] = NULL; pl[GATE] those of gate and up
     * ([2F, d]) with pl[UP] = NULL. Biases are added after the packed matmul. */
    const llmsq_plinear *pl[LLMSQ_LINEAR_COUNT];
    bool qkv_stacked, gate_up_stacked;
} llmsq_layer_weights;

/* Layer `layer`'s bound weights (NULL pointers while the layer is unbound). */
LLMSQ_API const llmsq_layer_weights *llmsq_model_layer(const llmsq_model *m, int64_t layer);

/* The attention half of a block without its residual: out [T, d] = o_proj(attention(q, k, v))
 * for the normed inputs xn [T, d] of one sequence at positions 0..T-1, with the weights w
 * (typically a copy of llmsq_model_layer's with some pointers replaced). Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_attn_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn,
                                          int64_t T, float *out);

/* The MLP half without its residual: out [T, d] = down(silu(gate(xn)) * up(xn)), xn [T, d].
 * Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_mlp_forward(const llmsq_model *m, const llmsq_layer_weights *w, const float *xn,
                                         int64_t T, float *out);

/* Re-reads layer `layer`'s weights from the store (after a pass replaced some of them, e.g.
 * with quantized linears). Errors as llmsq_model_create. */
LLMSQ_API llmsq_status llmsq_model_rebind_layer(llmsq_model *m, int64_t layer);

/* Releases the F32 copies of layer `layer` (llmsq_store_release_f32) and clears its weight
 * pointers, so a runner keeps one block in memory; rebind before running the layer again. */
LLMSQ_API void llmsq_model_unbind_layer(llmsq_model *m, int64_t layer);

/* Name of linear `which` ("q_proj", ... "down_proj"), the input that feeds it, and its module
 * name in layer l. */
LLMSQ_API const char *llmsq_linear_short_name(llmsq_linear_id id);
LLMSQ_API llmsq_block_input llmsq_linear_input(llmsq_linear_id id);
/* "model.layers.<l>.self_attn.q_proj" (no ".weight") into buf. */
LLMSQ_API const char *llmsq_linear_module(int64_t layer, llmsq_linear_id id, char *buf, size_t cap);
/* Its weight's tensor name: "model.layers.<l>.self_attn.q_proj.weight" into buf. */
LLMSQ_API const char *llmsq_linear_weight_name(int64_t layer, llmsq_linear_id id, char *buf, size_t cap);

/* Final RMSNorm then lm_head: x [T, hidden_size] residual stream -> logits [T, vocab_size].
 * hidden_out [T, hidden_size] (may be NULL) receives the normed states. */
LLMSQ_API llmsq_status llmsq_model_head(const llmsq_model *m, const float *x, int64_t T,
                                        float *hidden_out, float *logits);

/* lm_head only: hidden [T, hidden_size] (already normed) -> logits [T, vocab_size].
 * Errors: NOMEM (scratch of a packed head). */
LLMSQ_API llmsq_status llmsq_model_lm_head(const llmsq_model *m, const float *hidden, int64_t T,
                                   float *logits);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_MODEL_H */
