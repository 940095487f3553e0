/* Internal model layout shared by core/model.c and core/forward.c. */
#ifndef LLMSQ_MODEL_IMPL_H
#define LLMSQ_MODEL_IMPL_H

#include "llmsq/model.h"
#include "llmsq/tokenizer.h"

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
