/* Packed inference models: every block linear and the lm_head bound as packed kernel
 * layouts (plinear.h), their sources released from the store as they are packed. */
#include "core/model-impl.h"
#include "llmsq/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps p in the model's list (freed with the model). */
static llmsq_status own(llmsq_model *m, llmsq_plinear *p)
{
    llmsq_plinear **a = realloc(m->owned_pl, (size_t)(m->n_owned + 1) * sizeof *a);
    if (!a) {
        llmsq_plinear_free(p);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    m->owned_pl = a;
    m->owned_pl[m->n_owned++] = p;
    return LLMSQ_OK;
}

static void count(llmsq_model *m, const llmsq_plinear *p, const char *name, int n_linears)
{
    llmsq_model_pack_info *info = &m->info;
    info->linears[p->kind] += n_linears;
    info->matmuls++;
    info->linear_bytes += llmsq_plinear_bytes(p);
    if (p->fallback[0]) {
        if (!info->fallbacks) snprintf(info->fallback, sizeof info->fallback, "%s: %s", name, p->fallback);
        info->fallbacks += n_linears;
    }
}

/* Packs linears ids[0..n) of layer l stacked into one matmul (n > 1 falls back to one by one
 * when the weights cannot share a layout), sets w->pl and releases the sources. */
static llmsq_status pack_linears(llmsq_model *m, int64_t l, const llmsq_linear_id *ids, int n,
                                 const llmsq_pack_opts *o)
{
    llmsq_layer_weights *w = &m->layers[l];
    char names[3][160];
    const char *np[3];
    for (int i = 0; i < n; i++) {
        int64_t out, in;
        llmsq__linear_shape(&m->cfg, ids[i], &out, &in);
        llmsq_linear_weight_name(l, ids[i], names[i], sizeof names[i]);
        np[i] = names[i];
        LLMSQ_TRY(llmsq__model_check_shape(m, names[i], out, in));
    }
    llmsq_plinear *p = NULL;
    llmsq_status st = n > 1 && o->fuse ? llmsq_plinear_pack(m->store, np, n, o, &p) : LLMSQ_STATUS_UNSUPPORTED;
    if (st == LLMSQ_OK) {
        LLMSQ_TRY(own(m, p));
        w->pl[ids[0]] = p;
        count(m, p, names[0], n);
    } else if (st == LLMSQ_STATUS_UNSUPPORTED) {
        for (int i = 0; i < n; i++) {
            st = llmsq_plinear_pack(m->store, &np[i], 1, o, &p);
            if (st != LLMSQ_OK) return llmsq_error_prefix(st, "%s", m->source);
            LLMSQ_TRY(own(m, p));
            w->pl[ids[i]] = p;
            count(m, p, names[i], 1);
        }
    } else {
        return llmsq_error_prefix(st, "%s", m->source);
    }
    for (int i = 0; i < n; i++) llmsq_store_evict(m->store, names[i]);
    return LLMSQ_OK;
}

static llmsq_status pack_layer(llmsq_model *m, int64_t l, const llmsq_pack_opts *o)
{
    LLMSQ_TRY(llmsq__model_bind_vectors(m, l));
    LLMSQ_TRY(llmsq__model_bind_act(m, l));
    static const llmsq_linear_id qkv[3] = {LLMSQ_LINEAR_Q, LLMSQ_LINEAR_K, LLMSQ_LINEAR_V};
    static const llmsq_linear_id gu[2] = {LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP};
    static const llmsq_linear_id o_id = LLMSQ_LINEAR_O, d_id = LLMSQ_LINEAR_DOWN;
    LLMSQ_TRY(pack_linears(m, l, qkv, 3, o));
    LLMSQ_TRY(pack_linears(m, l, &o_id, 1, o));
    LLMSQ_TRY(pack_linears(m, l, gu, 2, o));
    LLMSQ_TRY(pack_linears(m, l, &d_id, 1, o));
    llmsq_layer_weights *w = &m->layers[l];
    w->qkv_stacked = w->pl[LLMSQ_LINEAR_K] == NULL;
    w->gate_up_stacked = w->pl[LLMSQ_LINEAR_UP] == NULL;
    return LLMSQ_OK;
}

/* lm_head and the embeddings: dense (never 2:4; a quantized lm_head keeps its kernel). */
static llmsq_status pack_head(llmsq_model *m, const llmsq_pack_opts *opts)
{
    const int64_t V = m->cfg.vocab_size, d = m->cfg.hidden_size;
    const char *head, *embed = "model.embed_tokens.weight";
    LLMSQ_TRY(llmsq__model_head_name(m, &head));
    LLMSQ_TRY(llmsq__model_check_shape(m, head, V, d));
    LLMSQ_TRY(llmsq__model_check_shape(m, embed, V, d));
    llmsq_pack_opts o = *opts;
    o.sparse = false;
    llmsq_status st = llmsq_plinear_pack(m->store, &head, 1, &o, &m->head_pl);
    if (st != LLMSQ_OK) return llmsq_error_prefix(st, "%s", m->source);
    m->info.head_bytes = llmsq_plinear_bytes(m->head_pl);
    m->info.dense_dtype = llmsq_plinear_dtype(m->head_pl);
    if (strcmp(head, embed) != 0 || m->head_pl->kind != LLMSQ_PLINEAR_DENSE) {
        if (llmsq_store_get_qlinear(m->store, embed))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: quantized embeddings are not supported", m->source);
        st = llmsq_plinear_pack(m->store, &embed, 1, &o, &m->embed_pl);
        if (st != LLMSQ_OK) return llmsq_error_prefix(st, "%s", m->source);
        m->info.embed_bytes = llmsq_plinear_bytes(m->embed_pl);
    }
    llmsq_store_evict(m->store, head);
    llmsq_store_evict(m->store, embed);
    return LLMSQ_OK;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Releases what the packed model does not read (raw checkpoint tensors such as GPTQ's
 * qweight, whose canonical form was imported), keeping the bound norms and biases. */
static size_t evict_rest(llmsq_model *m)
{
    size_t kept = 0;
    for (size_t i = 0; i < llmsq_store_count(m->store); i++) {
        const llmsq_tensor *t = llmsq_store_at(m->store, i);
        if (ends_with(t->name, "norm.weight") || ends_with(t->name, ".bias"))
            kept += (size_t)llmsq_tensor_numel(t) * sizeof(float);
        else
            llmsq_store_evict(m->store, t->name);
    }
    return kept;
}

llmsq_status llmsq_model_create_packed(const llmsq_config *cfg, llmsq_store *store, llmsq_tokenizer *tok,
                                       const char *source, const llmsq_pack_opts *opts, llmsq_model **out)
{
    LLMSQ_ASSERT(cfg && store && out);
    const llmsq_pack_opts o = opts ? *opts : llmsq_pack_default_opts();
    if (o.dense_dtype != LLMSQ_DTYPE_COUNT && o.dense_dtype != LLMSQ_DTYPE_F32 && o.dense_dtype != LLMSQ_DTYPE_F16 &&
        o.dense_dtype != LLMSQ_DTYPE_BF16) {
        llmsq_store_destroy(store);
        llmsq_tokenizer_free(tok);
        return llmsq_error(LLMSQ_STATUS_ARG, "packed model: dense weights must be f32, f16 or bf16");
    }
    llmsq_model *m;
    LLMSQ_TRY(llmsq__model_init(cfg, store, tok, source, &m));
    m->packed = true;
    llmsq_status st = llmsq__model_bind(m, "model.norm.weight", cfg->hidden_size, 0, &m->final_norm);
    if (st == LLMSQ_OK) st = pack_head(m, &o);
    llmsq_progress *bar = llmsq_progress_begin("packing", cfg->n_layers);
    for (int64_t l = 0; st == LLMSQ_OK && l < cfg->n_layers; l++) {
        st = pack_layer(m, l, &o);
        llmsq_progress_update(bar, l + 1);
    }
    llmsq_progress_end(bar);
    if (st != LLMSQ_OK) {
        llmsq_model_free(m);
        return st;
    }
    m->info.other_bytes = evict_rest(m);
    *out = m;
    return LLMSQ_OK;
}

bool llmsq_model_pack_info_get(const llmsq_model *m, llmsq_model_pack_info *info)
{
    if (!m->packed) return false;
    *info = m->info;
    return true;
}

/* Embedding row `id` as f32 from the packed dense embeddings (or the tied head). */
void llmsq__model_embed_row(const llmsq_model *m, int32_t id, float *x)
{
    const llmsq_kern_dense *e = (m->embed_pl ? m->embed_pl : m->head_pl)->u.dense;
    const size_t esize = e->dtype == LLMSQ_DTYPE_F32 ? 4 : 2;
    llmsq_dtype_to_f32(e->dtype, (const char *)e->data + (size_t)id * (size_t)e->ld * esize, x, e->in);
}
