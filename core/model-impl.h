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
    /* packed models (llmsq_model_create_packed); embed/lm_head above are then NULL */
    bool                  packed;
    llmsq_plinear        *head_pl;   /* [V, d] */
    llmsq_plinear        *embed_pl;  /* [V, d] dense, NULL when tied (rows read from head_pl) */
    llmsq_plinear       **owned_pl;  /* [n_owned] every packed linear, for freeing */
    int64_t               n_owned;
    llmsq_model_pack_info info;
};

struct llmsq_kv_cache {
    int64_t n_layers, kv_dim, cap, len;
    float  *k; /* [n_layers, cap, kv_dim] */
    float  *v; /* [n_layers, cap, kv_dim] */
};

/* Shared by model.c (float binding) and model_pack.c (packed binding). */
llmsq_status llmsq__model_init(const llmsq_config *cfg, llmsq_store *store, llmsq_tokenizer *tok, const char *source,
                               llmsq_model **out);
llmsq_status llmsq__model_check_shape(const llmsq_model *m, const char *name, int64_t rows, int64_t cols);
llmsq_status llmsq__model_bind(llmsq_model *m, const char *name, int64_t rows, int64_t cols, const float **out);
llmsq_status llmsq__model_bind_vectors(llmsq_model *m, int64_t layer); /* norms and biases */
llmsq_status llmsq__model_bind_act(llmsq_model *m, int64_t layer);     /* W8A8 input quantization */
llmsq_status llmsq__model_head_name(const llmsq_model *m, const char **name);
void         llmsq__model_embed_row(const llmsq_model *m, int32_t id, float *x); /* packed: x [d] */
void         llmsq__linear_shape(const llmsq_config *c, llmsq_linear_id id, int64_t *out, int64_t *in);

#endif
