/* Internal model layout shared by core/model.c and core/forward.c. */
#ifndef LLMSQ_MODEL_IMPL_H
#define LLMSQ_MODEL_IMPL_H

#include "llmsq/model.h"
#include "llmsq/tokenizer.h"

/* Weights of one decoder block, all f32, borrowed from the store's F32 views.
 * Bias and norm pointers are NULL when the architecture has none. */
typedef struct llmsq_layer_weights {
    const float *attn_norm;          /* [d] */
    const float *wq, *wk, *wv, *wo;  /* [nh*hd, d], [nkv*hd, d], [nkv*hd, d], [d, nh*hd] */
    const float *bq, *bk, *bv, *bo;  /* [nh*hd], [nkv*hd], [nkv*hd], [d] */
    const float *q_norm, *k_norm;    /* [hd] (Qwen3) */
    const float *ffn_norm;           /* [d] */
    const float *wg, *wu, *wd;       /* [F, d], [F, d], [d, F] */
    const float *bg, *bu, *bd;       /* [F], [F], [d] */
} llmsq_layer_weights;

struct llmsq_model {
    llmsq_config         cfg;
    llmsq_store         *store;
    llmsq_tokenizer     *tok;
    char                *source;
    const float         *embed;      /* [V, d] */
    const float         *final_norm; /* [d] */
    const float         *lm_head;    /* [V, d] (== embed when tied) */
    llmsq_layer_weights *layers;     /* [n_layers] */
    double              *inv_freq;   /* [hd/2] RoPE frequencies after scaling */
};

struct llmsq_kv_cache {
    int64_t n_layers, kv_dim, cap, len;
    float  *k; /* [n_layers, cap, kv_dim] */
    float  *v; /* [n_layers, cap, kv_dim] */
};

#endif
