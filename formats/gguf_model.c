/*
 * GGUF `llama` model reader (FORMATS.md 5.3-5.5): hyper-parameters into llmsq_config, tensors
 * into the store under Hugging Face names with the Q/K rows permuted back to rotate-half, and
 * the embedded tokenizer.ggml.* vocabulary (SentencePiece `llama` or byte-level `gpt2`). The
 * container itself is parsed and validated by gguf.c (gguf-impl.h).
 */
#include "formats/gguf-impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is borrowed from the mapping as-is, which needs a little-endian host"
#endif


/* ---- the `llama` model reader ----------------------------------------------------------- */

/* Integer hyper-parameter. llama.cpp insists on UINT32, but any integer type carries the
 * value unambiguously, so it is accepted. Per-layer arrays are accepted when uniform. */
static llmsq_status kv_int(const llmsq_gguf_file *f, const char *key, bool required, int64_t def,
                           int64_t *out)
{
    const llmsq_gguf_kv *kv = llmsq_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing required key '%s'", f->path, key);
        *out = def;
        return LLMSQ_OK;
    }
    const llmsq_gguf_value *v = &kv->v;
    bool ok;
    if (v->type == LLMSQ_GGUF_ARRAY && llmsq_gguf_vtype_size(v->elem_type) && v->n > 0) {
        llmsq_gguf_value e0 = llmsq_gguf_array_elem(v, 0);
        ok = llmsq_gguf_get_int(&e0, out);
        for (uint64_t i = 1; ok && i < v->n; i++) {
            llmsq_gguf_value e = llmsq_gguf_array_elem(v, i);
            int64_t x;
            ok = llmsq_gguf_get_int(&e, &x);
            if (ok && x != *out)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: key '%s' has per-layer values that differ "
                                   "(layer 0: %" PRId64 ", layer %" PRIu64 ": %" PRId64 ")",
                                   f->path, key, *out, i, x);
        }
    } else {
        ok = v->type != LLMSQ_GGUF_BOOL && llmsq_gguf_get_int(v, out);
    }
    if (!ok)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key '%s' at byte offset %" PRIu64
                           " has type %s, expected an integer (UINT32)", f->path, key, kv->offset,
                           llmsq_gguf_vtype_name(v->type));
    return LLMSQ_OK;
}

static llmsq_status kv_float(const llmsq_gguf_file *f, const char *key, bool required, double def,
                             double *out)
{
    const llmsq_gguf_kv *kv = llmsq_gguf_find_kv(f, key);
    if (!kv) {
        if (required) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing required key '%s'", f->path, key);
        *out = def;
        return LLMSQ_OK;
    }
    if (!llmsq_gguf_get_float(&kv->v, out))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key '%s' at byte offset %" PRIu64
                           " has type %s, expected FLOAT32", f->path, key, kv->offset,
                           llmsq_gguf_vtype_name(kv->v.type));
    /* Converters narrow the decimal of config.json to FLOAT32 (1e-5 arrives as
     * 9.99999975e-06). The shortest decimal that narrows to the same float is the value
     * the converter started from; using it keeps a GGUF load numerically identical to
     * the Hugging Face checkpoint it was made from. */
    if (kv->v.type == LLMSQ_GGUF_FLOAT32 && isfinite(*out)) {
        for (int prec = 1; prec <= 9; prec++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.*g", prec, *out);
            double d = strtod(buf, NULL);
            if ((float)d == (float)*out) {
                *out = d;
                break;
            }
        }
    }
    return LLMSQ_OK;
}

/* Borrowed, not NUL-terminated; *s = NULL when the key is absent. */
static llmsq_status kv_str(const llmsq_gguf_file *f, const char *key, const char **s, size_t *len)
{
    *s = NULL;
    *len = 0;
    const llmsq_gguf_kv *kv = llmsq_gguf_find_kv(f, key);
    if (!kv) return LLMSQ_OK;
    if (kv->v.type != LLMSQ_GGUF_STRING)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key '%s' at byte offset %" PRIu64
                           " has type %s, expected STRING", f->path, key, kv->offset,
                           llmsq_gguf_vtype_name(kv->v.type));
    *s = (const char *)kv->v.raw;
    *len = (size_t)kv->v.n;
    return LLMSQ_OK;
}

static bool str_is(const char *s, size_t len, const char *lit)
{
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Token ids are UINT32 in GGUF, and writers store "none" as 0xFFFFFFFF. */
static llmsq_status kv_token_id(const llmsq_gguf_file *f, const char *key, int32_t *out)
{
    int64_t v;
    LLMSQ_TRY(kv_int(f, key, false, -1, &v));
    *out = (v < 0 || v > INT32_MAX) ? -1 : (int32_t)v;
    return LLMSQ_OK;
}

/* A required-or-defaulted size, which must be positive and fit the int32 arithmetic of
 * the kernels. */
static llmsq_status kv_size(const llmsq_gguf_file *f, const char *key, bool required, int64_t def, int64_t *out)
{
    LLMSQ_TRY(kv_int(f, key, required, def, out));
    if (*out > 0 && *out <= INT32_MAX) return LLMSQ_OK;
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key '%s' = %" PRId64 " must be in [1, 2^31)", f->path, key, *out);
}

static llmsq_status read_config(const llmsq_gguf_file *f, llmsq_config *c)
{
    const char *arch;
    size_t arch_len;
    LLMSQ_TRY(kv_str(f, "general.architecture", &arch, &arch_len));
    if (!arch) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing required key 'general.architecture'", f->path);
    if (!str_is(arch, arch_len, "llama"))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: GGUF architecture '%.*s' is not supported (only 'llama')",
                           f->path, (int)(arch_len > 64 ? 64 : arch_len), arch);

    memset(c, 0, sizeof *c);
    c->arch = LLMSQ_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM");
    int64_t head_dim, rope_dim, value_len, vocab;
    LLMSQ_TRY(kv_size(f, "llama.context_length", true, 0, &c->max_position));
    LLMSQ_TRY(kv_size(f, "llama.embedding_length", true, 0, &c->hidden_size));
    LLMSQ_TRY(kv_size(f, "llama.block_count", true, 0, &c->n_layers));
    LLMSQ_TRY(kv_size(f, "llama.feed_forward_length", true, 0, &c->intermediate_size));
    LLMSQ_TRY(kv_size(f, "llama.attention.head_count", true, 0, &c->n_heads));
    LLMSQ_TRY(kv_size(f, "llama.attention.head_count_kv", false, c->n_heads, &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama.attention.head_count %" PRId64
                           " is not a multiple of head_count_kv %" PRId64, f->path, c->n_heads, c->n_kv_heads);
    if (!llmsq_gguf_find_kv(f, "llama.attention.key_length") && c->hidden_size % c->n_heads != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama.embedding_length %" PRId64 " is not a multiple of "
                           "head_count %" PRId64 " and no key_length is given", f->path, c->hidden_size, c->n_heads);
    LLMSQ_TRY(kv_size(f, "llama.attention.key_length", false, c->hidden_size / c->n_heads, &head_dim));
    if (head_dim % 2 != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: head size %" PRId64 " must be even for RoPE", f->path, head_dim);
    c->head_dim = head_dim;
    LLMSQ_TRY(kv_int(f, "llama.attention.value_length", false, head_dim, &value_len));
    if (value_len != head_dim)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: llama.attention.value_length %" PRId64
                           " differs from key_length %" PRId64, f->path, value_len, head_dim);
    LLMSQ_TRY(kv_int(f, "llama.rope.dimension_count", false, head_dim, &rope_dim));
    if (rope_dim != head_dim)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: llama.rope.dimension_count %" PRId64
                           " differs from the head size %" PRId64 " (partial RoPE)", f->path, rope_dim, head_dim);
    LLMSQ_TRY(kv_float(f, "llama.attention.layer_norm_rms_epsilon", true, 0, &c->rms_eps));
    LLMSQ_TRY(kv_float(f, "llama.rope.freq_base", false, 10000.0, &c->rope_theta));

    c->rope_type = LLMSQ_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    const char *rs;
    size_t rs_len;
    LLMSQ_TRY(kv_str(f, "llama.rope.scaling.type", &rs, &rs_len));
    if (str_is(rs, rs_len, "linear")) {
        LLMSQ_TRY(kv_float(f, "llama.rope.scaling.factor", true, 0, &c->rope_factor));
        c->rope_type = LLMSQ_ROPE_LINEAR;
    } else if (rs && !str_is(rs, rs_len, "none")) {
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: llama.rope.scaling.type '%.*s' is not supported "
                           "(only none and linear)", f->path, (int)(rs_len > 64 ? 64 : rs_len), rs);
    } else if (!rs && llmsq_gguf_find_kv(f, "llama.rope.scale_linear")) {
        /* Files written before rope.scaling.* existed. */
        LLMSQ_TRY(kv_float(f, "llama.rope.scale_linear", true, 1.0, &c->rope_factor));
        if (c->rope_factor != 1.0) c->rope_type = LLMSQ_ROPE_LINEAR;
    }
    if (c->rope_type == LLMSQ_ROPE_LINEAR && !(c->rope_factor > 0 && isfinite(c->rope_factor)))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rope scaling factor %g must be positive", f->path, c->rope_factor);

    const llmsq_gguf_tensor_info *emb = llmsq_gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: no tensor 'token_embd.weight'", f->path);
    LLMSQ_TRY(kv_int(f, "llama.vocab_size", false, emb->ne[1], &vocab));
    if (vocab != emb->ne[1] || emb->n_dims != 2)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama.vocab_size %" PRId64 " does not match token_embd.weight "
                           "(%" PRIu32 " dims, %" PRId64 " rows)", f->path, vocab, emb->n_dims, emb->ne[1]);
    c->vocab_size = vocab;
    c->tie_embeddings = llmsq_gguf_find_tensor(f, "output.weight") == NULL;
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.bos_token_id", &c->bos_id));
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.eos_token_id", &c->eos_id));
    return llmsq_config_validate(c, f->path);
}

enum { PERM_NONE, PERM_Q, PERM_K };

/* GGUF tensor name -> HF name (FORMATS.md 5.4). Returns false for names llmsq does not
 * know; *perm says whether the rows are in the interleaved RoPE layout. */
static bool hf_name(const char *g, char *out, size_t cap, int64_t *layer, int *perm, char *role)
{
    static const struct { const char *g, *hf; } glob[] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
    };
    /* role: which config bias flag a .bias sets (0: the tensor has no bias form) */
    static const struct { const char *g, *hf; int perm; char role; } blk[] = {
        {"attn_norm", "input_layernorm", PERM_NONE, 0},
        {"ffn_norm", "post_attention_layernorm", PERM_NONE, 0},
        {"attn_q", "self_attn.q_proj", PERM_Q, 'q'},
        {"attn_k", "self_attn.k_proj", PERM_K, 'q'},
        {"attn_v", "self_attn.v_proj", PERM_NONE, 'q'},
        {"attn_output", "self_attn.o_proj", PERM_NONE, 'o'},
        {"ffn_gate", "mlp.gate_proj", PERM_NONE, 'm'},
        {"ffn_up", "mlp.up_proj", PERM_NONE, 'm'},
        {"ffn_down", "mlp.down_proj", PERM_NONE, 'm'},
    };
    *layer = -1;
    *perm = PERM_NONE;
    *role = 0;
    for (size_t i = 0; i < sizeof glob / sizeof glob[0]; i++)
        if (strcmp(g, glob[i].g) == 0) return snprintf(out, cap, "%s", glob[i].hf) < (int)cap;
    if (strncmp(g, "blk.", 4) != 0) return false;
    const char *p = g + 4;
    int64_t n = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) n = n * 10 + (*p++ - '0'), digits++;
    if (digits == 0 || *p != '.' || (digits > 1 && g[4] == '0')) return false;
    const char *base = p + 1, *dot = strrchr(base, '.');
    if (!dot) return false;
    size_t blen = (size_t)(dot - base);
    bool is_bias = strcmp(dot, ".bias") == 0;
    if (!is_bias && strcmp(dot, ".weight") != 0) return false;
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
        if (strlen(blk[i].g) != blen || memcmp(base, blk[i].g, blen) != 0) continue;
        if (is_bias && !blk[i].role) return false;
        *layer = n;
        *perm = blk[i].perm;
        *role = is_bias ? blk[i].role : 0;
        return snprintf(out, cap, "model.layers.%" PRId64 ".%s%s", n, blk[i].hf, dot) < (int)cap;
    }
    return false;
}

static bool ggml_to_dtype(uint32_t type, llmsq_dtype *dt)
{
    switch (type) {
    case LLMSQ_GGML_F32: *dt = LLMSQ_DTYPE_F32; return true;
    case LLMSQ_GGML_F16: *dt = LLMSQ_DTYPE_F16; return true;
    case LLMSQ_GGML_BF16: *dt = LLMSQ_DTYPE_BF16; return true;
    case LLMSQ_GGML_Q8_0: *dt = LLMSQ_DTYPE_Q8_0; return true;
    default: return false;
    }
}

typedef struct plan {
    char        hf[96];
    llmsq_dtype dtype;
    int         perm;
} plan;

/* Checks every tensor before the store is touched, so that a file that fails leaves no
 * half-translated model behind it for a forgiving caller to use. */
static llmsq_status plan_tensors(const llmsq_gguf_file *f, llmsq_config *c, plan *pl)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const llmsq_gguf_tensor_info *t = &f->tensors[i];
        int64_t layer;
        char role;
        if (strcmp(t->name, "rope_freqs.weight") == 0)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor 'rope_freqs.weight' (Llama 3 RoPE frequency "
                               "factors) is not supported", f->path);
        if (!hf_name(t->name, pl[i].hf, sizeof pl[i].hf, &layer, &pl[i].perm, &role))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s' is not a llama tensor llmsq knows",
                               f->path, t->name);
        if (layer >= c->n_layers)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' names layer %" PRId64 " but llama.block_count is %"
                               PRId64, f->path, t->name, layer, c->n_layers);
        if (!ggml_to_dtype(t->type, &pl[i].dtype))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s' has ggml type %s; llmsq reads F32, F16, "
                               "BF16 and Q8_0", f->path, t->name, llmsq_ggml_type(t->type)->name);
        if (role == 'q') c->qkv_bias = true;
        if (role == 'o') c->o_bias = true;
        if (role == 'm') c->mlp_bias = true;
        if (pl[i].perm == PERM_NONE) continue;
        int64_t rows = (pl[i].perm == PERM_Q ? c->n_heads : c->n_kv_heads) * c->head_dim;
        bool bias = role != 0;
        bool ok = bias ? (t->n_dims == 1 && t->ne[0] == rows && llmsq_ggml_type(t->type)->block == 1)
                       : (t->n_dims == 2 && t->ne[1] == rows);
        if (!ok)
            return llmsq_error(LLMSQ_STATUS_SHAPE, "%s: tensor '%s' has ne {%" PRId64 ", %" PRId64 "} %s; its RoPE "
                               "rows cannot be permuted as %" PRId64 " rows of %" PRId64 "-element heads",
                               f->path, t->name, t->ne[0], t->ne[1], llmsq_ggml_type(t->type)->name, rows, c->head_dim);
    }
    return LLMSQ_OK;
}

static llmsq_status add_tensors(const llmsq_gguf_file *f, const llmsq_config *c, const plan *pl, llmsq_store *s)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const llmsq_gguf_tensor_info *t = &f->tensors[i];
        int64_t shape[LLMSQ_GGUF_MAX_DIMS];
        for (uint32_t d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d];
        uint64_t file_off = f->data_offset + t->offset;
        const uint8_t *src = f->data + file_off;
        size_t elem = llmsq_dtype_info(pl[i].dtype)->block == 1 ? llmsq_dtype_info(pl[i].dtype)->block_bytes : 1;
        /* A small general.alignment can leave data misaligned for its element type; those
         * tensors are copied rather than handed out as misaligned pointers. */
        bool misaligned = (uintptr_t)src % elem != 0;
        if (pl[i].perm == PERM_NONE && !misaligned) {
            LLMSQ_TRY(llmsq_store_add(s, pl[i].hf, pl[i].dtype, (int)t->n_dims, shape, src, (size_t)t->nbytes,
                                      f->path, file_off));
            continue;
        }
        void *copy = malloc(t->nbytes ? (size_t)t->nbytes : 1);
        if (!copy) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: tensor '%s': out of memory", f->path, t->name);
        memcpy(copy, src, (size_t)t->nbytes);
        if (pl[i].perm != PERM_NONE) {
            int64_t heads = pl[i].perm == PERM_Q ? c->n_heads : c->n_kv_heads;
            size_t row_bytes = (size_t)(t->nbytes / (uint64_t)(heads * c->head_dim));
            llmsq_status st = llmsq_permute_qk_rows(copy, heads, c->head_dim, row_bytes, true);
            if (st != LLMSQ_OK) {
                free(copy);
                return llmsq_error_prefix(st, "%s: tensor '%s'", f->path, t->name);
            }
        }
        LLMSQ_TRY(llmsq_store_put(s, pl[i].hf, pl[i].dtype, (int)t->n_dims, shape, copy));
    }
    return LLMSQ_OK;
}

/* tokenizer.ggml.tokens as NUL-terminated copies in one buffer (*text), with lengths. */
static llmsq_status read_tokens(const llmsq_gguf_file *f, const llmsq_gguf_kv *ktok, char ***pieces, uint32_t **lens,
                                char **text)
{
    uint64_t n = ktok->v.n;
    *pieces = malloc(n * sizeof **pieces);
    *lens = malloc(n * sizeof **lens);
    *text = malloc(ktok->v.raw_len - 8 * n + n);
    if (!*pieces || !*lens || !*text) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: tokenizer: out of memory", f->path);
    uint64_t cur = 0;
    char *w = *text;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        llmsq_gguf_array_next_string(&ktok->v, &cur, &s, &len);
        if (memchr(s, 0, len) || len > UINT32_MAX)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.tokens[%" PRIu64 "] contains a NUL byte",
                               f->path, i);
        memcpy(w, s, len);
        w[len] = '\0';
        (*pieces)[i] = w;
        (*lens)[i] = (uint32_t)len;
        w += len + 1;
    }
    return LLMSQ_OK;
}

static llmsq_status kv_bool(const llmsq_gguf_file *f, const char *key, bool def, bool *out)
{
    const llmsq_gguf_kv *kv = llmsq_gguf_find_kv(f, key);
    *out = def;
    if (!kv) return LLMSQ_OK;
    if (kv->v.type != LLMSQ_GGUF_BOOL)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key '%s' at byte offset %" PRIu64 " has type %s, expected BOOL",
                           f->path, key, kv->offset, llmsq_gguf_vtype_name(kv->v.type));
    *out = kv->v.raw[0] != 0;
    return LLMSQ_OK;
}

/* tokenizer.ggml.model = "gpt2": byte-level BPE with merges and a named pre-tokenizer. */
static llmsq_status read_bpe_tokenizer(const llmsq_gguf_file *f, const llmsq_gguf_kv *ktok, const int32_t *types,
                                       llmsq_tokenizer **tok)
{
    const llmsq_gguf_kv *kmerge = llmsq_gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!kmerge || kmerge->v.type != LLMSQ_GGUF_ARRAY || kmerge->v.elem_type != LLMSQ_GGUF_STRING)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.merges is %s, expected an ARRAY of STRING",
                           f->path, kmerge ? llmsq_gguf_vtype_name(kmerge->v.type) : "missing");
    if (kmerge->v.n > INT32_MAX)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.merges has %" PRIu64 " entries", f->path,
                           kmerge->v.n);
    llmsq_bpe_vocab v = llmsq_bpe_vocab_default();
    const char *pre;
    size_t pre_len;
    LLMSQ_TRY(kv_str(f, "tokenizer.ggml.pre", &pre, &pre_len));
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.unknown_token_id", &v.unk_id));
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.bos_token_id", &v.bos_id));
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.eos_token_id", &v.eos_id));
    LLMSQ_TRY(kv_token_id(f, "tokenizer.ggml.padding_token_id", &v.pad_id));
    /* llama.cpp adds BOS by default only for Llama-3's pre-tokenizer; the keys override. */
    bool llama3 = str_is(pre, pre_len, "llama-bpe") || str_is(pre, pre_len, "llama3") || str_is(pre, pre_len, "llama-v3");
    LLMSQ_TRY(kv_bool(f, "tokenizer.ggml.add_bos_token", llama3, &v.add_bos));
    LLMSQ_TRY(kv_bool(f, "tokenizer.ggml.add_eos_token", false, &v.add_eos));

    char **pieces = NULL, **merges = NULL, *text = NULL, *mtext = NULL, pre_name[64];
    uint32_t *lens = NULL, *mlens = NULL;
    snprintf(pre_name, sizeof pre_name, "%.*s", (int)(pre ? pre_len : 7), pre ? pre : "default");
    llmsq_status st = read_tokens(f, ktok, &pieces, &lens, &text);
    if (st == LLMSQ_OK && kmerge->v.n > 0) st = read_tokens(f, kmerge, &merges, &mlens, &mtext);
    if (st == LLMSQ_OK) {
        v.n = (int64_t)ktok->v.n;
        v.pieces = (const char *const *)pieces;
        v.piece_lens = lens;
        v.types = types;
        v.n_merges = (int64_t)kmerge->v.n;
        v.merges = (const char *const *)merges;
        v.merge_lens = mlens;
        v.pre = pre_name;
        st = llmsq_tokenizer_from_bpe_vocab(&v, f->path, tok);
    }
    free(pieces);
    free(lens);
    free(text);
    free(merges);
    free(mlens);
    free(mtext);
    return st;
}

/* strict: for llmsq_tokenizer_load_gguf. A model file (!strict) that names the gpt2
 * tokenizer but carries no vocabulary opens without a tokenizer, as it did before gpt2
 * vocabularies were read. */
static llmsq_status read_tokenizer(const llmsq_gguf_file *f, bool strict, llmsq_tokenizer **tok)
{
    const char *model;
    size_t model_len;
    LLMSQ_TRY(kv_str(f, "tokenizer.ggml.model", &model, &model_len));
    if (!model) return LLMSQ_OK;
    bool bpe = str_is(model, model_len, "gpt2");
    if (!bpe && !str_is(model, model_len, "llama"))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (llama, gpt2)",
                           f->path, (int)(model_len > 64 ? 64 : model_len), model);

    const llmsq_gguf_kv *ktok = llmsq_gguf_find_kv(f, "tokenizer.ggml.tokens");
    const llmsq_gguf_kv *kscore = llmsq_gguf_find_kv(f, "tokenizer.ggml.scores");
    const llmsq_gguf_kv *ktype = llmsq_gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (!ktok && bpe && !strict) {
        llmsq_log("%s: tokenizer.ggml.model is gpt2 but there is no tokenizer.ggml.tokens; no tokenizer", f->path);
        return LLMSQ_OK;
    }
    if (!ktok || ktok->v.type != LLMSQ_GGUF_ARRAY || ktok->v.elem_type != LLMSQ_GGUF_STRING)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.tokens is %s, expected an ARRAY of STRING",
                           f->path, ktok ? llmsq_gguf_vtype_name(ktok->v.type) : "missing");
    uint64_t n = ktok->v.n;
    if (n == 0 || n > INT32_MAX)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries", f->path, n);
    if (kscore && (kscore->v.type != LLMSQ_GGUF_ARRAY || kscore->v.elem_type != LLMSQ_GGUF_FLOAT32 ||
                   kscore->v.n != n))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.scores must be an ARRAY of %" PRIu64
                           " FLOAT32", f->path, n);
    if (ktype && (ktype->v.type != LLMSQ_GGUF_ARRAY || ktype->v.n != n ||
                  (ktype->v.elem_type != LLMSQ_GGUF_INT32 && ktype->v.elem_type != LLMSQ_GGUF_UINT32)))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tokenizer.ggml.token_type must be an ARRAY of %" PRIu64
                           " INT32", f->path, n);
    int32_t *types = ktype ? malloc(n * sizeof *types) : NULL;
    if (ktype && !types) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: tokenizer: out of memory", f->path);
    for (uint64_t i = 0; types && i < n; i++) types[i] = (int32_t)llmsq_gguf_rd32(ktype->v.raw + 4 * i);
    if (bpe) {
        llmsq_status st = read_bpe_tokenizer(f, ktok, types, tok);
        free(types);
        return st;
    }

    llmsq_spm_options opt = llmsq_spm_default_options();
    /* llama.cpp's SPM tokenizer adds the dummy prefix but never collapses or strips
     * whitespace, whatever the original normalizer said; encode as llama.cpp would. */
    opt.add_dummy_prefix = true;
    opt.remove_extra_whitespaces = false;
    opt.escape_whitespaces = true;
    opt.byte_fallback = true;
    char **pieces = NULL, *text = NULL;
    uint32_t *lens = NULL;
    float *scores = calloc(n, sizeof *scores);
    llmsq_status st = kv_token_id(f, "tokenizer.ggml.unknown_token_id", &opt.unk_id);
    if (st == LLMSQ_OK) st = kv_token_id(f, "tokenizer.ggml.bos_token_id", &opt.bos_id);
    if (st == LLMSQ_OK) st = kv_token_id(f, "tokenizer.ggml.eos_token_id", &opt.eos_id);
    if (st == LLMSQ_OK) st = kv_token_id(f, "tokenizer.ggml.padding_token_id", &opt.pad_id);
    if (st == LLMSQ_OK && !scores) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: tokenizer: out of memory", f->path);
    if (st == LLMSQ_OK) st = read_tokens(f, ktok, &pieces, &lens, &text);
    for (uint64_t i = 0; st == LLMSQ_OK && kscore && i < n; i++) {
        uint32_t u = llmsq_gguf_rd32(kscore->v.raw + 4 * i);
        memcpy(&scores[i], &u, 4);
    }
    if (st == LLMSQ_OK)
        st = llmsq_tokenizer_from_vocab((int64_t)n, (const char *const *)pieces, scores, types, &opt, f->path, tok);
    free(pieces);
    free(lens);
    free(text);
    free(scores);
    free(types);
    return st;
}

llmsq_status llmsq_tokenizer_from_gguf(const uint8_t *data, size_t size, const char *source, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT((data || size == 0) && source && out);
    *out = NULL;
    llmsq_gguf_file f;
    LLMSQ_TRY(llmsq_gguf_parse(source, data ? data : (const uint8_t *)"", size, &f));
    llmsq_status st = read_tokenizer(&f, true, out);
    if (st == LLMSQ_OK && !*out)
        st = llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no tokenizer (tokenizer.ggml.model is missing)", source);
    llmsq_gguf_file_free(&f);
    return st;
}

llmsq_status llmsq_tokenizer_load_gguf(const char *path, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(path && out);
    *out = NULL;
    char *data;
    size_t size;
    LLMSQ_TRY(llmsq_read_file(path, &data, &size));
    llmsq_status st = llmsq_tokenizer_from_gguf((const uint8_t *)data, size, path, out);
    free(data);
    return st;
}

llmsq_status llmsq_gguf_read_model(const char *path, llmsq_store *s, llmsq_config *cfg, llmsq_tokenizer **tok)
{
    LLMSQ_ASSERT(path && s && cfg && tok);
    *tok = NULL;
    const uint8_t *data;
    size_t size;
    LLMSQ_TRY(llmsq_store_map_file(s, path, &data, &size));
    llmsq_gguf_file f;
    LLMSQ_TRY(llmsq_gguf_parse(path, data, size, &f));
    llmsq_config c;
    plan *pl = NULL;
    llmsq_status st = read_config(&f, &c);
    if (st == LLMSQ_OK) {
        pl = calloc(f.n_tensors ? f.n_tensors : 1, sizeof *pl);
        if (!pl) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    }
    if (st == LLMSQ_OK) st = plan_tensors(&f, &c, pl);
    if (st == LLMSQ_OK) st = add_tensors(&f, &c, pl, s);
    if (st == LLMSQ_OK) {
        /* A model whose tokenizer llmsq cannot run still opens (inspect, weights-only
         * passes); what needs text says that the tokenizer is missing. */
        st = read_tokenizer(&f, false, tok);
        if (st == LLMSQ_STATUS_UNSUPPORTED) {
            llmsq_log("%s; loading the model without a tokenizer", llmsq_last_error());
            st = LLMSQ_OK;
        }
    }
    if (st == LLMSQ_OK) *cfg = c;
    if (st != LLMSQ_OK && *tok) {
        llmsq_tokenizer_free(*tok);
        *tok = NULL;
    }
    free(pl);
    llmsq_gguf_file_free(&f);
    return st;
}
