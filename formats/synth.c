/* Synthetic checkpoints with the exact shapes of real models, for speed work and tests:
 * timings do not depend on weight values, and the real weights cannot be shipped. Weights
 * are streamed tensor by tensor (a 7B model never sits in memory) from a counter-based
 * generator, so any chunk can be produced independently and in parallel, and the bytes
 * depend only on (seed, tensor name, element index). */
#include "formats/outdir.h"
#include "formats/safetensors_write.h"
#include "llmsq/runtime.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Shard limit for llmsq_synth_write: "4GB" in huggingface_hub's decimal units. */
#define SYNTH_MAX_SHARD 4000000000ull
#define CHUNK_ELEMS     (1u << 20)

typedef struct synth_shape {
    const char  *name;
    llmsq_config cfg;
} synth_shape;

/* In g_shapes' order; a separate constant so llmsq_synth_shapes needs no initialization. */
static const char *const g_names[] = {"tiny", "smollm2-135m", "llama-3.2-1b", "llama-2-7b",
                                      "qwen2.5-0.5b", NULL};

/* Dimensions as in each model's published config.json. bos/eos are those of the
 * SentencePiece vocabulary written beside the weights, not of the real tokenizer. */
static const synth_shape g_shapes[] = {
    {"tiny",
     {.arch = LLMSQ_ARCH_LLAMA, .arch_name = "LlamaForCausalLM", .vocab_size = 512,
      .hidden_size = 64, .intermediate_size = 172, .n_layers = 2, .n_heads = 8, .n_kv_heads = 4,
      .head_dim = 8, .max_position = 512, .rms_eps = 1e-5, .rope_theta = 10000.0,
      .bos_id = 1, .eos_id = 2, .tie_embeddings = true}},
    {"smollm2-135m", /* HuggingFaceTB/SmolLM2-135M */
     {.arch = LLMSQ_ARCH_LLAMA, .arch_name = "LlamaForCausalLM", .vocab_size = 49152,
      .hidden_size = 576, .intermediate_size = 1536, .n_layers = 30, .n_heads = 9,
      .n_kv_heads = 3, .head_dim = 64, .max_position = 8192, .rms_eps = 1e-5,
      .rope_theta = 100000.0, .bos_id = 1, .eos_id = 2, .tie_embeddings = true}},
    {"llama-3.2-1b", /* meta-llama/Llama-3.2-1B */
     {.arch = LLMSQ_ARCH_LLAMA, .arch_name = "LlamaForCausalLM", .vocab_size = 128256,
      .hidden_size = 2048, .intermediate_size = 8192, .n_layers = 16, .n_heads = 32,
      .n_kv_heads = 8, .head_dim = 64, .max_position = 131072, .rms_eps = 1e-5,
      .rope_theta = 500000.0, .rope_type = LLMSQ_ROPE_LLAMA3, .rope_factor = 32.0,
      .rope_low_freq_factor = 1.0, .rope_high_freq_factor = 4.0,
      .rope_original_max_position = 8192, .bos_id = 1, .eos_id = 2, .tie_embeddings = true}},
    {"llama-2-7b", /* meta-llama/Llama-2-7b-hf */
     {.arch = LLMSQ_ARCH_LLAMA, .arch_name = "LlamaForCausalLM", .vocab_size = 32000,
      .hidden_size = 4096, .intermediate_size = 11008, .n_layers = 32, .n_heads = 32,
      .n_kv_heads = 32, .head_dim = 128, .max_position = 4096, .rms_eps = 1e-5,
      .rope_theta = 10000.0, .bos_id = 1, .eos_id = 2, .tie_embeddings = false}},
    {"qwen2.5-0.5b", /* Qwen/Qwen2.5-0.5B */
     {.arch = LLMSQ_ARCH_QWEN2, .arch_name = "Qwen2ForCausalLM", .vocab_size = 151936,
      .hidden_size = 896, .intermediate_size = 4864, .n_layers = 24, .n_heads = 14,
      .n_kv_heads = 2, .head_dim = 64, .max_position = 32768, .rms_eps = 1e-6,
      .rope_theta = 1000000.0, .bos_id = 1, .eos_id = 2, .tie_embeddings = true,
      .qkv_bias = true}},
};
#define N_SHAPES (sizeof g_shapes / sizeof g_shapes[0])

_Static_assert(sizeof g_names / sizeof g_names[0] == N_SHAPES + 1, "g_names and g_shapes differ");

const char *const *llmsq_synth_shapes(void) { return g_names; }

static const synth_shape *find_shape(const char *name)
{
    for (size_t i = 0; i < N_SHAPES; i++) {
        LLMSQ_ASSERT(strcmp(g_names[i], g_shapes[i].name) == 0);
        if (strcmp(g_shapes[i].name, name) == 0) return &g_shapes[i];
    }
    return NULL;
}

/* ---- deterministic values ------------------------------------------------------------ */

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

typedef enum init_kind { INIT_NORMAL, INIT_ONES } init_kind;

typedef struct synth_tensor {
    llmsq_tensor t;         /* descriptor handed to the writer; name points at name[] */
    char         name[96];
    init_kind    init;
    float        std;
    uint64_t     key;       /* splitmix64 stream of this tensor */
    uint32_t     shard;
} synth_tensor;

/* Elements [e0, e0+n) of N(0, std^2) by Marsaglia's polar method: pair j (elements 2j and
 * 2j+1) draws its attempts from its own substream of the tensor's splitmix64 stream, so
 * chunks may start anywhere and run in parallel. (Polar rather than Box-Muller: no
 * trigonometry, twice as fast, which is most of synth's time.) */
static void gen_normal(uint64_t key, float std, uint64_t e0, size_t n, float *out)
{
    const uint64_t j0 = e0 / 2, j1 = (e0 + n + 1) / 2;
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t jj = (int64_t)j0; jj < (int64_t)j1; jj++) {
        const uint64_t j = (uint64_t)jj;
        const uint64_t pk = mix64(key + (j + 1) * GOLDEN);
        uint64_t t = 0;
        double u, v, s;
        do {
            u = (double)(int64_t)mix64(pk + ++t * GOLDEN) * 0x1.0p-63; /* [-1, 1) */
            v = (double)(int64_t)mix64(pk + ++t * GOLDEN) * 0x1.0p-63;
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        const double f = sqrt(-2.0 * log(s) / s) * std;
        if (2 * j >= e0 && 2 * j < e0 + n) out[2 * j - e0] = (float)(u * f);
        if (2 * j + 1 >= e0 && 2 * j + 1 < e0 + n) out[2 * j + 1 - e0] = (float)(v * f);
    }
}

typedef struct emit_ctx {
    float          *f32;
    uint16_t       *b16;
    llmsq_progress *progress;
    int64_t         done;
} emit_ctx;

static llmsq_status emit_tensor(void *vctx, const llmsq_tensor *t, llmsq_st_out *o)
{
    emit_ctx *ctx = vctx;
    const synth_tensor *st = (const synth_tensor *)((const char *)t - offsetof(synth_tensor, t));
    const uint64_t numel = (uint64_t)llmsq_tensor_numel(t);
    for (uint64_t e0 = 0; e0 < numel; e0 += CHUNK_ELEMS) {
        size_t n = numel - e0 < CHUNK_ELEMS ? (size_t)(numel - e0) : CHUNK_ELEMS;
        if (st->init == INIT_ONES)
            for (size_t i = 0; i < n; i++) ctx->f32[i] = 1.0f;
        else
            gen_normal(st->key, st->std, e0, n, ctx->f32);
        if (t->dtype == LLMSQ_DTYPE_BF16) {
            for (size_t i = 0; i < n; i++) ctx->b16[i] = llmsq_f32_to_bf16(ctx->f32[i]);
            LLMSQ_TRY(llmsq_st_out_write(o, ctx->b16, n * 2));
        } else {
            LLMSQ_TRY(llmsq_st_out_write(o, ctx->f32, n * 4));
        }
        ctx->done += (int64_t)(n * (t->dtype == LLMSQ_DTYPE_BF16 ? 2 : 4));
        llmsq_progress_update(ctx->progress, ctx->done);
    }
    return LLMSQ_OK;
}

/* ---- the tensor list, in transformers' state-dict order ------------------------------ */

typedef struct tlist {
    synth_tensor *v;
    size_t        n, cap;
} tlist;

static llmsq_status add(tlist *l, llmsq_dtype dt, uint64_t seed, init_kind init, float std,
                        int ndim, int64_t d0, int64_t d1, const char *fmt, int64_t layer)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        synth_tensor *v = realloc(l->v, cap * sizeof *v);
        if (!v) return llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");
        l->v = v;
        l->cap = cap;
    }
    synth_tensor *st = &l->v[l->n++];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, fmt, (long long)layer);
    st->init = init;
    st->std = std;
    st->key = mix64(fnv1a(st->name) ^ mix64(seed + GOLDEN));
    st->t.dtype = dt;
    st->t.ndim = ndim;
    st->t.shape[0] = d0;
    st->t.shape[1] = d1;
    st->t.nbytes = llmsq_dtype_nbytes(dt, ndim == 1 ? d0 : d0 * d1);
    return LLMSQ_OK;
}

static llmsq_status build_list(const llmsq_config *c, llmsq_dtype dt, uint64_t seed, tlist *l)
{
    const float w = 0.02f, bias = 0.01f;
    const int64_t d = c->hidden_size, F = c->intermediate_size, hd = c->head_dim;
    const int64_t q = c->n_heads * hd, kv = c->n_kv_heads * hd;
    LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, c->vocab_size, d, "model.embed_tokens.weight", 0));
    for (int64_t L = 0; L < c->n_layers; L++) {
#define P "model.layers.%lld."
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, q, d, P "self_attn.q_proj.weight", L));
        if (c->qkv_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, q, 0, P "self_attn.q_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, kv, d, P "self_attn.k_proj.weight", L));
        if (c->qkv_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, kv, 0, P "self_attn.k_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, kv, d, P "self_attn.v_proj.weight", L));
        if (c->qkv_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, kv, 0, P "self_attn.v_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, d, q, P "self_attn.o_proj.weight", L));
        if (c->o_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, d, 0, P "self_attn.o_proj.bias", L));
        if (c->qk_norm) {
            LLMSQ_TRY(add(l, dt, seed, INIT_ONES, 0, 1, hd, 0, P "self_attn.q_norm.weight", L));
            LLMSQ_TRY(add(l, dt, seed, INIT_ONES, 0, 1, hd, 0, P "self_attn.k_norm.weight", L));
        }
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, F, d, P "mlp.gate_proj.weight", L));
        if (c->mlp_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, F, 0, P "mlp.gate_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, F, d, P "mlp.up_proj.weight", L));
        if (c->mlp_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, F, 0, P "mlp.up_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, d, F, P "mlp.down_proj.weight", L));
        if (c->mlp_bias) LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, bias, 1, d, 0, P "mlp.down_proj.bias", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_ONES, 0, 1, d, 0, P "input_layernorm.weight", L));
        LLMSQ_TRY(add(l, dt, seed, INIT_ONES, 0, 1, d, 0, P "post_attention_layernorm.weight", L));
#undef P
    }
    LLMSQ_TRY(add(l, dt, seed, INIT_ONES, 0, 1, d, 0, "model.norm.weight", 0));
    if (!c->tie_embeddings)
        LLMSQ_TRY(add(l, dt, seed, INIT_NORMAL, w, 2, c->vocab_size, d, "lm_head.weight", 0));
    for (size_t i = 0; i < l->n; i++) l->v[i].t.name = l->v[i].name; /* after the last realloc */
    return LLMSQ_OK;
}

/* ---- tokenizer ------------------------------------------------------------------------- */

static const char *const g_singles[] = {
    "\xE2\x96\x81", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o",
    "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "A", "B", "C", "D", "E", "F", "G",
    "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y",
    "Z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ".", ",", "!", "?", ";", ":", "'",
    "\"", "(", ")", "-"};

/* <unk>, <s>, </s>, the 256 byte pieces, the single characters above, then every lower-case
 * string by length, each with and without the U+2581 word prefix: every piece's prefixes
 * come earlier, so BPE can reach all of them, and scores fall with the id. */
static llmsq_status write_tokenizer(const char *path, int64_t vocab)
{
    const int64_t n_single = (int64_t)(sizeof g_singles / sizeof g_singles[0]);
    llmsq_status s = LLMSQ_OK;
    const int PIECE_CAP = 16;
    char *arena = calloc((size_t)vocab, (size_t)PIECE_CAP);
    const char **pieces = malloc((size_t)vocab * sizeof *pieces);
    float *scores = malloc((size_t)vocab * sizeof *scores);
    int32_t *types = malloc((size_t)vocab * sizeof *types);
    if (!arena || !pieces || !scores || !types) {
        s = llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory for %lld pieces", (long long)vocab);
        goto out;
    }
    int64_t id = 0;
    static const char *const specials[3] = {"<unk>", "<s>", "</s>"};
    static const int32_t special_types[3] = {LLMSQ_TOKEN_UNKNOWN, LLMSQ_TOKEN_CONTROL,
                                             LLMSQ_TOKEN_CONTROL};
    for (int i = 0; i < 3 && id < vocab; i++, id++) {
        pieces[id] = specials[i];
        scores[id] = 0.0f;
        types[id] = special_types[i];
    }
    for (int b = 0; b < 256 && id < vocab; b++, id++) {
        char *p = arena + id * PIECE_CAP;
        snprintf(p, (size_t)PIECE_CAP, "<0x%02X>", b);
        pieces[id] = p;
        scores[id] = 0.0f;
        types[id] = LLMSQ_TOKEN_BYTE;
    }
    const int64_t first = id;
    for (int64_t i = 0; i < n_single && id < vocab; i++, id++) {
        pieces[id] = g_singles[i];
        scores[id] = -(float)(id - first);
        types[id] = LLMSQ_TOKEN_NORMAL;
    }
    char letters[9];
    for (int len = 1; len <= 8 && id < vocab; len++) {
        int digit[8] = {0};
        for (;;) {
            for (int k = 0; k < len; k++) letters[k] = (char)('a' + digit[k]);
            letters[len] = '\0';
            for (int prefixed = 1; prefixed >= 0 && id < vocab; prefixed--) {
                if (!prefixed && len == 1) continue; /* already a single */
                char *p = arena + id * PIECE_CAP;
                snprintf(p, (size_t)PIECE_CAP, "%s%s", prefixed ? "\xE2\x96\x81" : "", letters);
                pieces[id] = p;
                scores[id] = -(float)(id - first);
                types[id] = LLMSQ_TOKEN_NORMAL;
                id++;
            }
            int k = len - 1;
            while (k >= 0 && ++digit[k] == 26) digit[k--] = 0;
            if (k < 0 || id >= vocab) break;
        }
    }
    LLMSQ_ASSERT(id == vocab); /* 8-letter strings cover any vocabulary we could synthesize */
    llmsq_spm_options opt = llmsq_spm_default_options();
    opt.byte_fallback = true;
    opt.unk_id = 0;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.pad_id = -1;
    s = llmsq_spm_write(path, vocab, pieces, scores, types, &opt);
out:
    free(arena);
    free(pieces);
    free(scores);
    free(types);
    return s;
}

/* ---- small JSON files -------------------------------------------------------------------- */

static llmsq_status write_json(const char *path, json_t *root)
{
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    }
    t2[n] = '\n';
    t2[n + 1] = '\0';
    llmsq_status s = llmsq_fmt_write_atomic(path, t2, n + 1);
    free(t2);
    return s;
}

static llmsq_status write_generation_config(const char *path, const llmsq_config *c)
{
    return write_json(path, json_pack("{s:b, s:I, s:I}", "_from_model_config", 1, "bos_token_id",
                                      (json_int_t)c->bos_id, "eos_token_id", (json_int_t)c->eos_id));
}

static void shard_name(char *buf, size_t cap, uint32_t i, uint32_t n)
{
    if (n == 1) snprintf(buf, cap, "model.safetensors");
    else snprintf(buf, cap, "model-%05u-of-%05u.safetensors", i + 1, n);
}

static llmsq_status write_index(const char *path, const tlist *l, uint32_t n_shards)
{
    json_t *map = json_object();
    uint64_t total = 0;
    bool oom = !map;
    char fname[64];
    for (size_t i = 0; i < l->n && !oom; i++) {
        shard_name(fname, sizeof fname, l->v[i].shard, n_shards);
        total += l->v[i].t.nbytes;
        if (json_object_set_new(map, l->v[i].name, json_string(fname)) != 0) oom = true;
    }
    if (oom) {
        json_decref(map);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    }
    return write_json(path, json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total,
                                      "weight_map", map));
}

/* ---- output directory -------------------------------------------------------------------- */

/* Names this writer (or a writer it calls, through "<name>.tmp") may leave in a directory;
 * the ".tmp" suffix is already removed (llmsq_outdir_remove_ours). */
static bool is_ours(const char *base)
{
    size_t n = strlen(base);
    if (strcmp(base, "config.json") == 0 || strcmp(base, "generation_config.json") == 0 ||
        strcmp(base, "model.safetensors.index.json") == 0 || strncmp(base, "tokenizer.model", 15) == 0)
        return true;
    return strncmp(base, "model", 5) == 0 && n > 12 && strcmp(base + n - 12, ".safetensors") == 0;
}

static llmsq_status write_weights(const char *tmpdir, tlist *l, uint64_t max_shard)
{
    /* huggingface_hub's split: a new shard when the next tensor would overflow this one. */
    uint32_t shard = 0;
    uint64_t cur = 0, total = 0;
    for (size_t i = 0; i < l->n; i++) {
        uint64_t nb = l->v[i].t.nbytes;
        if (cur > 0 && cur + nb > max_shard) {
            shard++;
            cur = 0;
        }
        l->v[i].shard = shard;
        cur += nb;
        total += nb;
    }
    const uint32_t n_shards = shard + 1;

    llmsq_status s = LLMSQ_OK;
    emit_ctx ctx = {0};
    const llmsq_tensor **sel = malloc(l->n * sizeof *sel);
    ctx.f32 = malloc(CHUNK_ELEMS * sizeof *ctx.f32);
    ctx.b16 = malloc(CHUNK_ELEMS * sizeof *ctx.b16);
    if (!sel || !ctx.f32 || !ctx.b16) {
        s = llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");
        goto out;
    }
    ctx.progress = llmsq_progress_begin("synth", (int64_t)total);
    for (uint32_t sh = 0; sh < n_shards && s == LLMSQ_OK; sh++) {
        size_t k = 0;
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].shard == sh) sel[k++] = &l->v[i].t;
        char fname[64];
        shard_name(fname, sizeof fname, sh, n_shards);
        char *path = llmsq_path_join(tmpdir, fname);
        if (!path) {
            s = llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");
            break;
        }
        s = llmsq_safetensors_write_stream(path, sel, k, NULL, 0, emit_tensor, &ctx);
        free(path);
    }
    llmsq_progress_end(ctx.progress);
    if (s == LLMSQ_OK && n_shards > 1) {
        char *path = llmsq_path_join(tmpdir, "model.safetensors.index.json");
        s = path ? write_index(path, l, n_shards) : llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");
        free(path);
    }
out:
    free(sel);
    free(ctx.f32);
    free(ctx.b16);
    return s;
}

static llmsq_status write_all(const char *tmpdir, const llmsq_config *cfg, llmsq_dtype dtype,
                              uint64_t seed, uint64_t max_shard)
{
    llmsq_status s;
    char *p = NULL;
    tlist l = {0};
#define JOIN(name)                                                                     \
    do {                                                                               \
        free(p);                                                                       \
        p = llmsq_path_join(tmpdir, name);                                             \
        if (!p) {                                                                      \
            s = llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");               \
            goto out;                                                                  \
        }                                                                              \
    } while (0)
    JOIN("config.json");
    s = llmsq_hf_config_write(p, cfg, dtype == LLMSQ_DTYPE_BF16 ? "bfloat16" : "float32");
    if (s != LLMSQ_OK) goto out;
    JOIN("generation_config.json");
    if ((s = write_generation_config(p, cfg)) != LLMSQ_OK) goto out;
    JOIN("tokenizer.model");
    if ((s = write_tokenizer(p, cfg->vocab_size)) != LLMSQ_OK) goto out;
    if ((s = build_list(cfg, dtype, seed, &l)) != LLMSQ_OK) goto out;
    s = write_weights(tmpdir, &l, max_shard);
#undef JOIN
out:
    free(p);
    free(l.v);
    return s;
}

llmsq_status llmsq_synth_write_sharded(const char *shape, const char *dir, llmsq_dtype dtype,
                                       uint64_t seed, uint64_t max_shard_bytes)
{
    LLMSQ_ASSERT(shape != NULL && dir != NULL);
    const synth_shape *sh = find_shape(shape);
    if (!sh) {
        char known[256] = "";
        for (size_t i = 0; i < N_SHAPES; i++) {
            if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
            strncat(known, g_shapes[i].name, sizeof known - strlen(known) - 1);
        }
        return llmsq_error(LLMSQ_STATUS_ARG, "synth: unknown shape \"%s\" (known: %s)", shape, known);
    }
    if (dtype != LLMSQ_DTYPE_F32 && dtype != LLMSQ_DTYPE_BF16)
        return llmsq_error(LLMSQ_STATUS_ARG, "synth: dtype must be F32 or BF16");
    if (!dir[0]) return llmsq_error(LLMSQ_STATUS_ARG, "synth: empty output directory name");
    if (max_shard_bytes == 0) max_shard_bytes = SYNTH_MAX_SHARD;
    LLMSQ_TRY(llmsq_output_dir_check(dir));

    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--; /* "out/" must give "out.tmp", not "out/.tmp" */
    char *tmpdir = malloc(n + 5);
    if (!tmpdir) return llmsq_error(LLMSQ_STATUS_NOMEM, "synth: out of memory");
    memcpy(tmpdir, dir, n);
    memcpy(tmpdir + n, ".tmp", 5);

    llmsq_status s = LLMSQ_OK;
    struct stat st;
    if (lstat(tmpdir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            s = llmsq_error(LLMSQ_STATUS_ARG, "%s exists and is not a directory; remove it", tmpdir);
        else
            s = llmsq_outdir_remove_ours(tmpdir, is_ours, "llmsq synth"); /* left by an interrupted run */
    }
    if (s == LLMSQ_OK && mkdir(tmpdir, 0755) != 0)
        s = llmsq_error(LLMSQ_STATUS_IO, "cannot create %s: %s", tmpdir, strerror(errno));
    if (s != LLMSQ_OK) {
        free(tmpdir);
        return s;
    }
    s = write_all(tmpdir, &sh->cfg, dtype, seed, max_shard_bytes);
    if (s == LLMSQ_OK && rename(tmpdir, dir) != 0)
        s = llmsq_error(LLMSQ_STATUS_IO, "cannot rename %s to %s: %s", tmpdir, dir, strerror(errno));
    if (s != LLMSQ_OK) {
        llmsq_status keep = s;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", llmsq_last_error());
        llmsq_outdir_remove_ours(tmpdir, is_ours, "llmsq synth");
        llmsq_error(keep, "%s", msg); /* the cleanup must not replace the real error */
    }
    free(tmpdir);
    return s;
}

llmsq_status llmsq_synth_write(const char *shape, const char *dir, llmsq_dtype dtype, uint64_t seed)
{
    return llmsq_synth_write_sharded(shape, dir, dtype, seed, SYNTH_MAX_SHARD);
}
