/* GGUF reader: stories260K against the HF checkpoint, the Q/K permutation, synthetic files
 * for dtypes, biases and metadata variants, and malformed input (bad magic, versions,
 * truncation at many offsets, patched counts, lengths and offsets). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_REL "models/stories260K/gguf/stories260K.gguf"
#define HF_REL "models/stories260K/hf/model.safetensors"
#define SPM_REL "models/stories260K/hf/tokenizer.model"

/* ---- helpers ---------------------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n)
{
    char *data = NULL;
    ck_assert_msg(llmsq_read_file(path, &data, n) == LLMSQ_OK, "%s", llmsq_last_error());
    return (uint8_t *)data;
}

/* Writes bytes to a temp file and reads it as GGUF; returns the status and keeps the
 * message. Every failure must name the file. */
static llmsq_status read_bytes(const char *dir, const void *bytes, size_t n, llmsq_config *cfg)
{
    char *path = llmsq_path_join(dir, "t.gguf");
    tu_write_file(path, bytes, n);
    llmsq_store *s = llmsq_store_create();
    llmsq_tokenizer *tok = NULL;
    llmsq_config c;
    llmsq_status st = llmsq_gguf_read_model(path, s, cfg ? cfg : &c, &tok);
    if (st != LLMSQ_OK) {
        ck_assert_ptr_null(tok);
        ck_assert_msg(strstr(llmsq_last_error(), path) != NULL, "message lacks the path: %s", llmsq_last_error());
    }
    llmsq_tokenizer_free(tok);
    llmsq_store_destroy(s);
    free(path);
    return st;
}

#define EXPECT_FAIL(dir, b, n, code, needle)                                                        \
    do {                                                                                            \
        llmsq_status st_ = read_bytes(dir, b, n, NULL);                                             \
        ck_assert_msg(st_ == (code), "expected %s, got %s (%s)", llmsq_status_str(code),            \
                      llmsq_status_str(st_), llmsq_last_error());                                   \
        ck_assert_msg(strstr(llmsq_last_error(), needle) != NULL, "'%s' not in: %s", needle,        \
                      llmsq_last_error());                                                          \
    } while (0)

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* Offset of the first occurrence of a length-prefixed GGUF string (the length field). */
static size_t find_gguf_str(const uint8_t *b, size_t n, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i + 8 + len <= n; i++) {
        uint64_t l = 0;
        for (int k = 0; k < 8; k++) l |= (uint64_t)b[i + k] << (8 * k);
        if (l == len && memcmp(b + i + 8, s, len) == 0) return i;
    }
    ck_abort_msg("string %s not found", s);
    return 0;
}

/* ---- a tiny GGUF writer for synthetic files --------------------------------------------- */

typedef struct buf { uint8_t *b; size_t n, cap; } buf;

static void bput(buf *x, const void *p, size_t n)
{
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 64;
        x->b = realloc(x->b, x->cap);
    }
    if (n) memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void bu32(buf *x, uint32_t v) { uint8_t t[4]; put32(t, v); bput(x, t, 4); }
static void bu64(buf *x, uint64_t v) { uint8_t t[8]; put64(t, v); bput(x, t, 8); }
static void bstr(buf *x, const char *s) { bu64(x, strlen(s)); bput(x, s, strlen(s)); }

typedef struct gb {
    buf      kv, info, data;
    uint64_t n_kv, n_t;
    uint32_t align;
} gb;

static void kv_u32(gb *g, const char *k, uint32_t v) { bstr(&g->kv, k); bu32(&g->kv, 4); bu32(&g->kv, v); g->n_kv++; }
static void kv_str(gb *g, const char *k, const char *v) { bstr(&g->kv, k); bu32(&g->kv, 8); bstr(&g->kv, v); g->n_kv++; }
static void kv_f32(gb *g, const char *k, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    bstr(&g->kv, k);
    bu32(&g->kv, 6);
    bu32(&g->kv, u);
    g->n_kv++;
}

static void tensor(gb *g, const char *name, uint32_t type, int nd, const int64_t *ne, const void *d, size_t nb)
{
    size_t a = g->align ? g->align : 32;
    while (g->data.n % a) bput(&g->data, "\0", 1);
    bstr(&g->info, name);
    bu32(&g->info, (uint32_t)nd);
    for (int i = 0; i < nd; i++) bu64(&g->info, (uint64_t)ne[i]);
    bu32(&g->info, type);
    bu64(&g->info, g->data.n);
    bput(&g->data, d, nb);
    g->n_t++;
}

static uint8_t *finish(gb *g, size_t *n)
{
    buf out = {0};
    bput(&out, "GGUF", 4);
    bu32(&out, 3);
    bu64(&out, g->n_t);
    bu64(&out, g->n_kv);
    bput(&out, g->kv.b, g->kv.n);
    bput(&out, g->info.b, g->info.n);
    size_t a = g->align ? g->align : 32;
    while (out.n % a) bput(&out, "\0", 1);
    bput(&out, g->data.b, g->data.n);
    free(g->kv.b);
    free(g->info.b);
    free(g->data.b);
    *n = out.n;
    return out.b;
}

/* Tiny llama: d 32, 4 heads of 8, 2 kv heads, ff 64, vocab 16, 1 layer. q is Q8_0, k F16,
 * v BF16, with q/k biases; every byte of every tensor is distinct per row so permutations
 * are visible. */
enum { TD = 32, TH = 4, TKV = 2, THD = 8, TFF = 64, TV = 16 };

static void *rows(int64_t nrows, size_t row_bytes, unsigned seed)
{
    uint8_t *p = malloc((size_t)nrows * row_bytes);
    for (int64_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < row_bytes; c++) p[(size_t)r * row_bytes + c] = (uint8_t)(seed + 37 * r + c);
    return p;
}

static void tiny_hparams(gb *g, const char *omit)
{
#define U32_(k, v) if (!omit || strcmp(omit, k)) kv_u32(g, k, v)
    if (!omit || strcmp(omit, "general.architecture")) kv_str(g, "general.architecture", "llama");
    U32_("llama.context_length", 128);
    U32_("llama.embedding_length", TD);
    U32_("llama.block_count", 1);
    U32_("llama.feed_forward_length", TFF);
    U32_("llama.attention.head_count", TH);
    U32_("llama.attention.head_count_kv", TKV);
    if (!omit || strcmp(omit, "llama.attention.layer_norm_rms_epsilon"))
        kv_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
#undef U32_
}

static void tiny_tensors(gb *g, const char *extra_name)
{
    struct { const char *n; uint32_t type; int nd; int64_t ne0, ne1; size_t row_bytes; } t[] = {
        {"token_embd.weight", 0, 2, TD, TV, 4 * TD},
        {"output_norm.weight", 0, 1, TD, 1, 4 * TD},
        {"blk.0.attn_norm.weight", 0, 1, TD, 1, 4 * TD},
        {"blk.0.attn_q.weight", 8, 2, TD, TH * THD, 34},
        {"blk.0.attn_q.bias", 0, 1, TH * THD, 1, 4},
        {"blk.0.attn_k.weight", 1, 2, TD, TKV * THD, 2 * TD},
        {"blk.0.attn_k.bias", 0, 1, TKV * THD, 1, 4},
        {"blk.0.attn_v.weight", 30, 2, TD, TKV * THD, 2 * TD},
        {"blk.0.attn_output.weight", 0, 2, TH * THD, TD, 4 * TH * THD},
        {"blk.0.ffn_norm.weight", 0, 1, TD, 1, 4 * TD},
        {"blk.0.ffn_gate.weight", 0, 2, TD, TFF, 4 * TD},
        {"blk.0.ffn_up.weight", 0, 2, TD, TFF, 4 * TD},
        {"blk.0.ffn_down.weight", 0, 2, TFF, TD, 4 * TFF},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        /* biases are 1-D: one "row" per element */
        int64_t nrows = t[i].nd == 1 && t[i].row_bytes == 4 ? t[i].ne0 : t[i].nd == 1 ? 1 : t[i].ne1;
        void *d = rows(nrows, t[i].row_bytes, (unsigned)i);
        tensor(g, t[i].n, t[i].type, t[i].nd, ne, d, (size_t)nrows * t[i].row_bytes);
        free(d);
    }
    if (extra_name) {
        int64_t ne[1] = {TD};
        float z[TD] = {0};
        tensor(g, extra_name, 0, 1, ne, z, sizeof z);
    }
}

static uint8_t *tiny_file(size_t *n)
{
    gb g = {0};
    tiny_hparams(&g, NULL);
    tiny_tensors(&g, NULL);
    return finish(&g, n);
}

/* ---- stories260K ------------------------------------------------------------------------ */

START_TEST(test_stories_config)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    llmsq_store *s = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok = NULL;
    ck_assert_msg(llmsq_gguf_read_model(path, s, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(c.arch, LLMSQ_ARCH_LLAMA);
    ck_assert_str_eq(c.arch_name, "LlamaForCausalLM");
    ck_assert_int_eq(c.hidden_size, 64);
    ck_assert_int_eq(c.intermediate_size, 172);
    ck_assert_int_eq(c.n_layers, 5);
    ck_assert_int_eq(c.n_heads, 8);
    ck_assert_int_eq(c.n_kv_heads, 4);
    ck_assert_int_eq(c.head_dim, 8);
    ck_assert_int_eq(c.vocab_size, 512);
    ck_assert_int_eq(c.max_position, 2048); /* the GGUF metadata says 2048; llama2.c/HF say 512 */
    ck_assert_double_eq(c.rms_eps, 1e-5); /* stored as FLOAT32 9.99999975e-06 */
    ck_assert_double_eq(c.rope_theta, 10000.0);
    ck_assert_int_eq(c.rope_type, LLMSQ_ROPE_DEFAULT);
    ck_assert_int_eq(c.bos_id, 1);
    ck_assert_int_eq(c.eos_id, 2);
    ck_assert(!c.tie_embeddings); /* the file stores output.weight (a copy of token_embd) */
    ck_assert(!c.qkv_bias && !c.o_bias && !c.mlp_bias);
    ck_assert_uint_eq(llmsq_store_count(s), 48);
    /* q/k are permuted copies, the rest borrowed from the mapping */
    ck_assert(llmsq_store_get(s, "model.layers.3.self_attn.q_proj.weight")->owned);
    ck_assert(llmsq_store_get(s, "model.layers.3.self_attn.k_proj.weight")->owned);
    ck_assert(!llmsq_store_get(s, "model.layers.3.self_attn.v_proj.weight")->owned);
    ck_assert(!llmsq_store_get(s, "model.embed_tokens.weight")->owned);

    ck_assert_ptr_nonnull(tok);
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(tok), 512);
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 1), "<s>");
    ck_assert_int_eq(llmsq_tokenizer_bos(tok), 1);
    ck_assert_int_eq(llmsq_tokenizer_eos(tok), 2);
    const llmsq_spm_options *o = llmsq_tokenizer_options(tok);
    ck_assert(o->add_dummy_prefix && !o->remove_extra_whitespaces && o->escape_whitespaces && o->byte_fallback);
    ck_assert_int_eq(o->unk_id, 0);
    ck_assert_int_eq(o->pad_id, -1); /* stored as 0xFFFFFFFF */
    ck_assert_int_eq(llmsq_tokenizer_type(tok, 3), LLMSQ_TOKEN_BYTE);

    /* Same ids as the SentencePiece model on text that normalization does not touch. */
    char *spm_path = tu_shared(SPM_REL);
    if (spm_path) {
        llmsq_tokenizer *ref = NULL;
        ck_assert_msg(llmsq_tokenizer_load_spm(spm_path, &ref) == LLMSQ_OK, "%s", llmsq_last_error());
        const char *text = "Once upon a time, there was a little girl named Lily. \xe2\x82\xac!";
        int32_t *a, *b;
        size_t na, nb;
        ck_assert_int_eq(llmsq_tokenizer_encode(tok, text, strlen(text), true, &a, &na), LLMSQ_OK);
        ck_assert_int_eq(llmsq_tokenizer_encode(ref, text, strlen(text), true, &b, &nb), LLMSQ_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert_int_eq(memcmp(a, b, na * sizeof *a), 0);
        free(a);
        free(b);
        llmsq_tokenizer_free(ref);
        free(spm_path);
    }
    llmsq_tokenizer_free(tok);
    llmsq_store_destroy(s);
    free(path);
}
END_TEST

START_TEST(test_stories_equals_hf)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    TU_SHARED_OR_SKIP(hf, HF_REL);
    llmsq_store *g = llmsq_store_create(), *h = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok = NULL;
    ck_assert_msg(llmsq_gguf_read_model(path, g, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_safetensors_read(h, hf) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_uint_eq(llmsq_store_count(h), 47);
    for (size_t i = 0; i < llmsq_store_count(h); i++) {
        const llmsq_tensor *a = llmsq_store_at(h, i), *b = llmsq_store_get(g, a->name);
        ck_assert_msg(b != NULL, "%s missing from the GGUF store", a->name);
        ck_assert_int_eq(a->dtype, b->dtype);
        ck_assert_int_eq(a->ndim, b->ndim);
        for (int d = 0; d < a->ndim; d++) ck_assert_int_eq(a->shape[d], b->shape[d]);
        ck_assert_uint_eq(a->nbytes, b->nbytes);
        ck_assert_msg(tu_max_abs_diff(a->data, b->data, a->nbytes / 4) == 0.0, "%s differs", a->name);
        ck_assert_msg(memcmp(a->data, b->data, a->nbytes) == 0, "%s not bit-identical", a->name);
    }
    /* Negative control: without the permutation q_proj would not match. */
    {
        const llmsq_tensor *hq = llmsq_store_get(h, "model.layers.0.self_attn.q_proj.weight");
        float *raw = malloc(hq->nbytes);
        memcpy(raw, llmsq_store_get(g, "model.layers.0.self_attn.q_proj.weight")->data, hq->nbytes);
        ck_assert_int_eq(llmsq_permute_qk_rows(raw, 8, 8, 64 * 4, false), LLMSQ_OK);
        ck_assert(tu_max_abs_diff(raw, hq->data, hq->nbytes / 4) > 0.01);
        free(raw);
    }
    const llmsq_tensor *lm = llmsq_store_get(g, "lm_head.weight"), *emb = llmsq_store_get(g, "model.embed_tokens.weight");
    ck_assert_ptr_nonnull(lm);
    ck_assert_int_eq(memcmp(lm->data, emb->data, emb->nbytes), 0);
    llmsq_tokenizer_free(tok);
    llmsq_store_destroy(g);
    llmsq_store_destroy(h);
    free(path);
    free(hf);
}
END_TEST

/* ---- permutation ------------------------------------------------------------------------ */

START_TEST(test_permute_hand_case)
{
    /* 2 heads of hd 4, one float per row: HF_row[h*4 + j*2 + i] = IL_row[h*4 + 2i + j]. */
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    ck_assert_int_eq(llmsq_permute_qk_rows(x, 2, 4, sizeof(float), true), LLMSQ_OK);
    const float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int i = 0; i < 8; i++) ck_assert_float_eq(x[i], want[i]);
    ck_assert_int_eq(llmsq_permute_qk_rows(x, 2, 4, sizeof(float), false), LLMSQ_OK);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(x[i], (float)i);

    /* hd 8, multi-byte rows: rows move whole. */
    uint16_t m[2 * 8 * 3];
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 3; c++) m[r * 3 + c] = (uint16_t)(r * 100 + c);
    ck_assert_int_eq(llmsq_permute_qk_rows(m, 2, 8, 3 * sizeof(uint16_t), true), LLMSQ_OK);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++)
                for (int c = 0; c < 3; c++)
                    ck_assert_int_eq(m[(h * 8 + j * 4 + i) * 3 + c], (h * 8 + 2 * i + j) * 100 + c);
}
END_TEST

START_TEST(test_permute_roundtrip)
{
    const int64_t heads[] = {1, 3, 8}, hds[] = {2, 6, 64};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            size_t n = (size_t)(heads[a] * hds[b]) * 5;
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            for (size_t i = 0; i < n; i++) x[i] = y[i] = (float)i * 0.5f - 7;
            ck_assert_int_eq(llmsq_permute_qk_rows(x, heads[a], hds[b], 5 * sizeof(float), true), LLMSQ_OK);
            if (hds[b] > 2) ck_assert(memcmp(x, y, n * sizeof *x) != 0);
            ck_assert_int_eq(llmsq_permute_qk_rows(x, heads[a], hds[b], 5 * sizeof(float), false), LLMSQ_OK);
            ck_assert_int_eq(memcmp(x, y, n * sizeof *x), 0);
            free(x);
            free(y);
        }
}
END_TEST

/* ---- synthetic files -------------------------------------------------------------------- */

START_TEST(test_tiny_dtypes_and_bias)
{
    char *dir = tu_tmpdir("gguf-tiny");
    size_t n;
    uint8_t *b = tiny_file(&n);
    char *path = llmsq_path_join(dir, "tiny.gguf");
    tu_write_file(path, b, n);
    llmsq_store *s = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok = (llmsq_tokenizer *)1;
    ck_assert_msg(llmsq_gguf_read_model(path, s, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_ptr_null(tok); /* no tokenizer.ggml.* */
    ck_assert(c.tie_embeddings && c.qkv_bias && !c.o_bias && !c.mlp_bias);
    ck_assert_int_eq(c.head_dim, THD);
    ck_assert_int_eq(c.vocab_size, TV);
    ck_assert_int_eq(c.bos_id, -1);

    const llmsq_tensor *q = llmsq_store_get(s, "model.layers.0.self_attn.q_proj.weight");
    ck_assert_int_eq(q->dtype, LLMSQ_DTYPE_Q8_0);
    ck_assert_int_eq(q->shape[0], TH * THD);
    ck_assert_int_eq(q->shape[1], TD);
    const llmsq_tensor *k = llmsq_store_get(s, "model.layers.0.self_attn.k_proj.weight");
    ck_assert_int_eq(k->dtype, LLMSQ_DTYPE_F16);
    const llmsq_tensor *v = llmsq_store_get(s, "model.layers.0.self_attn.v_proj.weight");
    ck_assert_int_eq(v->dtype, LLMSQ_DTYPE_BF16);
    ck_assert(!v->owned);
    const llmsq_tensor *qb = llmsq_store_get(s, "model.layers.0.self_attn.q_proj.bias");
    const llmsq_tensor *kb = llmsq_store_get(s, "model.layers.0.self_attn.k_proj.bias");
    ck_assert_int_eq(qb->ndim, 1);
    ck_assert_int_eq(qb->shape[0], TH * THD);
    const llmsq_tensor *dn = llmsq_store_get(s, "model.layers.0.mlp.down_proj.weight");
    ck_assert_int_eq(dn->shape[0], TD);
    ck_assert_int_eq(dn->shape[1], TFF);

    /* Row r of the HF tensor is row perm(r) of the GGUF one, whose bytes rows() made. */
    struct { const llmsq_tensor *t; int heads; size_t rb; unsigned seed; } cases[] = {
        {q, TH, 34, 3}, {qb, TH, 4, 4}, {k, TKV, 2 * TD, 5}, {kb, TKV, 4, 6},
    };
    for (int ci = 0; ci < 4; ci++) {
        const uint8_t *d = cases[ci].t->data;
        for (int h = 0; h < cases[ci].heads; h++)
            for (int i = 0; i < THD / 2; i++)
                for (int j = 0; j < 2; j++) {
                    int hf = h * THD + j * THD / 2 + i, il = h * THD + 2 * i + j;
                    for (size_t col = 0; col < cases[ci].rb; col++)
                        ck_assert_uint_eq(d[(size_t)hf * cases[ci].rb + col],
                                          (uint8_t)(cases[ci].seed + 37 * il + col));
                }
    }
    llmsq_store_destroy(s);
    free(path);
    free(b);
    free(dir);
}
END_TEST

START_TEST(test_tiny_metadata_variants)
{
    char *dir = tu_tmpdir("gguf-meta");
    size_t n;
    uint8_t *b;
    llmsq_config c;
    gb g;

    /* Nested arrays, custom alignment, linear rope scaling, a foreign tokenizer model. */
    g = (gb){.align = 64};
    tiny_hparams(&g, NULL);
    kv_u32(&g, "general.alignment", 64);
    kv_str(&g, "llama.rope.scaling.type", "linear");
    kv_f32(&g, "llama.rope.scaling.factor", 4.0f);
    kv_f32(&g, "llama.rope.freq_base", 500000.0f);
    kv_str(&g, "tokenizer.ggml.model", "gpt2");
    bstr(&g.kv, "x.nested");
    bu32(&g.kv, 9);
    bu32(&g.kv, 9);
    bu64(&g.kv, 2);
    for (int i = 0; i < 2; i++) {
        bu32(&g.kv, 8);
        bu64(&g.kv, 1);
        bstr(&g.kv, "s");
    }
    g.n_kv++;
    tiny_tensors(&g, NULL);
    b = finish(&g, &n);
    ck_assert_msg(read_bytes(dir, b, n, &c) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(c.rope_type, LLMSQ_ROPE_LINEAR);
    ck_assert_double_eq(c.rope_factor, 4.0);
    ck_assert_double_eq(c.rope_theta, 500000.0);
    free(b);

    /* Arrays nested deeper than the parser allows. */
    g = (gb){0};
    tiny_hparams(&g, NULL);
    bstr(&g.kv, "x.deep");
    bu32(&g.kv, 9);
    for (int i = 0; i < 20; i++) {
        bu32(&g.kv, 9);
        bu64(&g.kv, 1);
    }
    bu32(&g.kv, 4);
    bu64(&g.kv, 0);
    g.n_kv++;
    tiny_tensors(&g, NULL);
    b = finish(&g, &n);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "nested deeper");
    free(b);

    /* Each required key, missing. */
    const char *req[] = {"general.architecture", "llama.embedding_length", "llama.block_count",
                         "llama.context_length", "llama.feed_forward_length", "llama.attention.head_count",
                         "llama.attention.layer_norm_rms_epsilon"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        g = (gb){0};
        tiny_hparams(&g, req[i]);
        tiny_tensors(&g, NULL);
        b = finish(&g, &n);
        EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, req[i]);
        free(b);
    }

    /* Wrong key type, bad alignment, yarn, a duplicate key, unknown and misplaced tensors. */
    struct { const char *k, *v; llmsq_status code; const char *needle; const char *extra_tensor; } bad[] = {
        {"llama.attention.head_count_kv", "two", LLMSQ_STATUS_FORMAT, "'llama.attention.head_count_kv'", NULL},
        {"llama.attention.layer_norm_rms_epsilon", "1e-5", LLMSQ_STATUS_FORMAT, "expected FLOAT32", NULL},
        {"llama.rope.scaling.type", "yarn", LLMSQ_STATUS_UNSUPPORTED, "yarn", NULL},
        {"llama.block_count", NULL, LLMSQ_STATUS_FORMAT, "duplicate metadata key 'llama.block_count'", NULL},
        {NULL, NULL, LLMSQ_STATUS_UNSUPPORTED, "blk.0.attn_qq.weight", "blk.0.attn_qq.weight"},
        {NULL, NULL, LLMSQ_STATUS_FORMAT, "blk.1.attn_norm.weight", "blk.1.attn_norm.weight"},
        {NULL, NULL, LLMSQ_STATUS_UNSUPPORTED, "rope_freqs.weight", "rope_freqs.weight"},
        {NULL, NULL, LLMSQ_STATUS_FORMAT, "duplicate tensor name 'output_norm.weight'", "output_norm.weight"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = (gb){0};
        /* replace the key, or (no value) add it a second time */
        tiny_hparams(&g, bad[i].v ? bad[i].k : NULL);
        if (bad[i].k) kv_str(&g, bad[i].k, bad[i].v ? bad[i].v : "dup");
        tiny_tensors(&g, bad[i].extra_tensor);
        b = finish(&g, &n);
        EXPECT_FAIL(dir, b, n, bad[i].code, bad[i].needle);
        free(b);
    }
    for (uint32_t a = 0; a < 2; a++) {
        g = (gb){0};
        tiny_hparams(&g, NULL);
        kv_u32(&g, "general.alignment", a ? 48 : 0);
        tiny_tensors(&g, NULL);
        b = finish(&g, &n);
        EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "general.alignment");
        free(b);
    }
    g = (gb){0};
    tiny_hparams(&g, "general.architecture");
    kv_str(&g, "general.architecture", "qwen2");
    tiny_tensors(&g, NULL);
    b = finish(&g, &n);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_UNSUPPORTED, "qwen2");
    free(b);
    free(dir);
}
END_TEST

/* ---- malformed stories260K ------------------------------------------------------------- */

START_TEST(test_bad_header)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    char *dir = tu_tmpdir("gguf-hdr");
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_int_eq(read_bytes(dir, b, n, NULL), LLMSQ_OK); /* the patches below are what fails */

    b[0] = 'X';
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "not a GGUF file (bad magic");
    b[0] = 'G';
    const uint32_t versions[] = {1, 2, 4, 0, 0x03000000};
    const char *needles[] = {"version 1 is not supported", "version 2 is not supported", "unknown GGUF version 4",
                             "unknown GGUF version 0", "byte-swapped"};
    for (int i = 0; i < 5; i++) {
        put32(b + 4, versions[i]);
        EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, needles[i]);
    }
    put32(b + 4, 3);
    put64(b + 8, (uint64_t)1 << 60); /* tensor_count */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "cannot fit");
    put64(b + 8, 48);
    put64(b + 16, (uint64_t)1 << 60); /* kv count */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "cannot fit");
    put64(b + 16, 19);
    ck_assert_int_eq(read_bytes(dir, b, n, NULL), LLMSQ_OK);
    free(b);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_truncated)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    char *dir = tu_tmpdir("gguf-trunc");
    size_t n;
    uint8_t *b = slurp(path, &n);
    /* Every length in the header and first key, then a spread over the KV section, the
     * tensor infos (ending at 14152), the padding and the data. */
    size_t cuts[400];
    int nc = 0;
    for (size_t i = 0; i < 48; i++) cuts[nc++] = i;
    for (size_t i = 48; i < 14300; i += 97) cuts[nc++] = i;
    const size_t edge[] = {6470, 8563, 10660, 10705, 11347, 11351, 14151, 14152, 14153, 14175, 14176, 14177,
                           100000, 500000, 1185375};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) cuts[nc++] = edge[i];
    for (size_t i = 20000; i < n; i += 61031) cuts[nc++] = i;
    ck_assert_int_le(nc, 400);
    for (int i = 0; i < nc; i++) {
        ck_assert_uint_lt(cuts[i], n);
        llmsq_status st = read_bytes(dir, b, cuts[i], NULL);
        ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "cut at %zu: %s (%s)", cuts[i], llmsq_status_str(st),
                      llmsq_last_error());
    }
    free(b);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_patched_fields)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    char *dir = tu_tmpdir("gguf-patch");
    size_t n;
    uint8_t *b = slurp(path, &n), *orig = malloc(n);
    memcpy(orig, b, n);
#define RESET_() memcpy(b, orig, n)

    /* Huge string length: the first key, and a token inside the tokens array. */
    put64(b + 24, (uint64_t)1 << 60);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "claims 1152921504606846976 bytes");
    RESET_();
    size_t tk = find_gguf_str(b, n, "tokenizer.ggml.tokens");
    put64(b + tk + 8 + 21 + 4 + 4, (uint64_t)1 << 60); /* the array count */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "cannot fit");
    RESET_();
    put64(b + tk + 8 + 21 + 4 + 4 + 8, (uint64_t)-1); /* length of tokens[0] */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "tokenizer.ggml.tokens");
    RESET_();
    put32(b + tk + 8 + 21, 13); /* value type */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "unknown value type 13");
    RESET_();

    /* Tensor info fields of the last tensor (blk.4.ffn_norm.weight, {64}, F32). */
    size_t ti = find_gguf_str(b, n, "blk.4.ffn_norm.weight");
    size_t nd_at = ti + 8 + 21, ne_at = nd_at + 4, type_at = ne_at + 8, off_at = type_at + 4;
    put64(b + off_at, 1171200); /* one alignment unit past its real offset: ends past EOF */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "extends past the end");
    put64(b + off_at, (uint64_t)1 << 63);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "blk.4.ffn_norm.weight");
    put64(b + off_at, 1170944 + 4);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "not a multiple of the alignment");
    RESET_();
    put64(b + ne_at, (uint64_t)1 << 62);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "blk.4.ffn_norm.weight");
    put64(b + ne_at, (uint64_t)-1);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "out of range");
    RESET_();
    put32(b + nd_at, 5);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "n_dims 5");
    RESET_();
    put32(b + type_at, 12); /* Q4_K: 64 is not a multiple of 256 */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "block size");
    put32(b + type_at, 2); /* Q4_0 fits in range but is not a type llmsq reads */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_UNSUPPORTED, "'blk.4.ffn_norm.weight' has ggml type Q4_0");
    put32(b + type_at, 77);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_UNSUPPORTED, "unknown ggml type id 77");
    RESET_();

    /* Duplicate tensor name: blk.0.attn_k.weight renamed to blk.0.attn_q.weight. */
    size_t kn = find_gguf_str(b, n, "blk.0.attn_k.weight");
    b[kn + 8 + 11] = 'q';
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "duplicate tensor name 'blk.0.attn_q.weight'");
    RESET_();

    /* Architecture and wrong-typed hyper-parameter. */
    size_t arch = find_gguf_str(b, n, "general.architecture");
    memcpy(b + arch + 8 + 20 + 4 + 8, "llamb", 5);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_UNSUPPORTED, "'llamb'");
    RESET_();
    size_t bc = find_gguf_str(b, n, "llama.block_count");
    put32(b + bc + 8 + 17, 6); /* UINT32 -> FLOAT32 */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "llama.block_count");
    RESET_();
    put32(b + bc + 8 + 17 + 4, 0);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "llama.block_count");
    RESET_();
    ck_assert_int_eq(read_bytes(dir, b, n, NULL), LLMSQ_OK);
#undef RESET_
    free(orig);
    free(b);
    free(dir);
    free(path);
}
END_TEST

/* Random byte flips in the metadata and tensor-info region: any status is fine as long as
 * nothing crashes (ASan builds) and failures name the file. LLMSQ_TEST_SEED reproduces. */
START_TEST(test_random_flips)
{
    TU_SHARED_OR_SKIP(path, GGUF_REL);
    char *dir = tu_tmpdir("gguf-flip");
    size_t n;
    uint8_t *b = slurp(path, &n), *orig = malloc(n);
    memcpy(orig, b, n);
    const char *env = getenv("LLMSQ_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 12345, x = seed;
    int iters = getenv("LLMSQ_FLIP_ITERS") ? atoi(getenv("LLMSQ_FLIP_ITERS")) : 150;
    for (int it = 0; it < iters; it++) {
        memcpy(b, orig, 14176);
        int flips = 1 + (int)((x >> 60) & 3);
        for (int k = 0; k < flips; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((x >> 33) % 14176);
            b[at] = (x >> 13) & 1 ? (uint8_t)(x >> 20) : (uint8_t)(b[at] ^ (1u << ((x >> 24) & 7)));
        }
        llmsq_config c;
        llmsq_status st = read_bytes(dir, b, n, &c);
        if (st == LLMSQ_OK) ck_assert_int_gt(c.hidden_size, 0);
    }
    fprintf(stderr, "test_random_flips: seed %llu, %d files\n", (unsigned long long)seed, iters);
    free(orig);
    free(b);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_missing_file)
{
    llmsq_store *s = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok;
    ck_assert_int_eq(llmsq_gguf_read_model("/nonexistent/x.gguf", s, &c, &tok), LLMSQ_STATUS_IO);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "/nonexistent/x.gguf"));
    ck_assert_ptr_null(tok);
    llmsq_store_destroy(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_stories_config);
    tcase_add_test(tc, test_stories_equals_hf);
    suite_add_tcase(s, tc);
    tc = tcase_create("permute");
    tcase_add_test(tc, test_permute_hand_case);
    tcase_add_test(tc, test_permute_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("synthetic");
    tcase_add_test(tc, test_tiny_dtypes_and_bias);
    tcase_add_test(tc, test_tiny_metadata_variants);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bad_header);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_patched_fields);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_random_flips);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
