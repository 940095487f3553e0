/*
 * llama2.c legacy v0 checkpoint reader (FORMATS.md 6.1): a 7 x int32 header, then f32
 * tensors stacked over layers. Each layer's slice is borrowed from the mapping under its
 * Hugging Face name; wq/wk are copied and permuted to the rotate-half layout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is borrowed from the mapping as-is, which needs a little-endian host"
#endif

#define L2C_HEADER_BYTES 28
#define L2C_V1_MAGIC     0x616b3432u /* "ak42": export.py --version 1/2 */

typedef struct l2c_hdr {
    int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    bool    shared; /* vocab header > 0: no wcls stored */
    int64_t head_size, kv_dim;
} l2c_hdr;

/* Offsets (in floats from byte 28) of each stacked tensor, in file order. */
enum { T_EMB, T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, T_RMS_FINAL,
       T_FREQ_RE, T_FREQ_IM, T_WCLS, T_COUNT };

static int32_t rd_i32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static llmsq_status parse_header(const char *path, const uint8_t *data, size_t size, l2c_hdr *h)
{
    if (size < L2C_HEADER_BYTES)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %zu bytes is too small for a llama2.c header (28 bytes)",
                           path, size);
    if ((uint32_t)rd_i32(data) == L2C_V1_MAGIC)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: llama2.c v1/v2 (\"ak42\") checkpoints are not supported; "
                           "export with export.py --version 0", path);
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                         "vocab_size", "seq_len"};
    int64_t v[7];
    for (int i = 0; i < 7; i++) {
        v[i] = rd_i32(data + 4 * i);
        /* vocab_size's sign is the shared-classifier flag; only its magnitude must be non-zero. */
        int64_t mag = i == 5 ? (v[i] < 0 ? -v[i] : v[i]) : v[i];
        if (mag <= 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama2.c header field %s (byte offset %d) is %" PRId64
                               ", must be %s", path, names[i], 4 * i, v[i], i == 5 ? "non-zero" : "positive");
    }
    *h = (l2c_hdr){.dim = v[0], .hidden = v[1], .n_layers = v[2], .n_heads = v[3], .n_kv_heads = v[4],
                   .vocab = v[5] < 0 ? -v[5] : v[5], .seq_len = v[6], .shared = v[5] > 0};
    if (h->dim % h->n_heads != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama2.c header: n_heads %" PRId64 " does not divide dim %" PRId64,
                           path, h->n_heads, h->dim);
    if (h->n_heads % h->n_kv_heads != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama2.c header: n_kv_heads %" PRId64 " does not divide n_heads %"
                           PRId64, path, h->n_kv_heads, h->n_heads);
    h->head_size = h->dim / h->n_heads;
    if (h->head_size % 2 != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama2.c header: head size %" PRId64 " must be even for RoPE",
                           path, h->head_size);
    h->kv_dim = h->n_kv_heads * h->head_size;
    return LLMSQ_OK;
}

/* Element counts of every stacked tensor and their start offsets. Header fields are below
 * 2^31, so products of three can pass 2^64: each step is overflow-checked. */
static bool layout(const l2c_hdr *h, uint64_t off[T_COUNT + 1])
{
    const uint64_t d = (uint64_t)h->dim, f = (uint64_t)h->hidden, L = (uint64_t)h->n_layers,
                   V = (uint64_t)h->vocab, kv = (uint64_t)h->kv_dim;
    uint64_t n[T_COUNT][3] = {
        [T_EMB] = {V, d, 1},        [T_RMS_ATT] = {L, d, 1},    [T_WQ] = {L, d, d},
        [T_WK] = {L, kv, d},        [T_WV] = {L, kv, d},        [T_WO] = {L, d, d},
        [T_RMS_FFN] = {L, d, 1},    [T_W1] = {L, f, d},         [T_W2] = {L, d, f},
        [T_W3] = {L, f, d},         [T_RMS_FINAL] = {d, 1, 1},
        [T_FREQ_RE] = {(uint64_t)h->seq_len, (uint64_t)h->head_size / 2, 1},
        [T_FREQ_IM] = {(uint64_t)h->seq_len, (uint64_t)h->head_size / 2, 1},
        [T_WCLS] = {h->shared ? 0 : V, d, 1},
    };
    off[0] = 0;
    for (int t = 0; t < T_COUNT; t++) {
        uint64_t c;
        if (__builtin_mul_overflow(n[t][0], n[t][1], &c) || __builtin_mul_overflow(c, n[t][2], &c) ||
            __builtin_add_overflow(off[t], c, &off[t + 1]))
            return false;
    }
    uint64_t bytes;
    return !__builtin_mul_overflow(off[T_COUNT], (uint64_t)4, &bytes) &&
           !__builtin_add_overflow(bytes, (uint64_t)L2C_HEADER_BYTES, &bytes);
}

typedef struct adder {
    llmsq_store   *s;
    const char    *path;
    const uint8_t *base; /* first tensor float (byte 28) */
} adder;

static llmsq_status add(const adder *a, const char *name, uint64_t off_floats, int ndim, int64_t r, int64_t c)
{
    int64_t shape[2] = {r, c};
    uint64_t n = (uint64_t)r * (uint64_t)(ndim == 2 ? c : 1);
    return llmsq_store_add(a->s, name, LLMSQ_DTYPE_F32, ndim, shape, a->base + 4 * off_floats, (size_t)(4 * n),
                           a->path, L2C_HEADER_BYTES + 4 * off_floats);
}

static llmsq_status add_permuted(const adder *a, const char *name, uint64_t off_floats, int64_t heads,
                                 int64_t head_size, int64_t cols)
{
    int64_t shape[2] = {heads * head_size, cols};
    size_t nbytes = (size_t)(4 * heads * head_size * cols);
    void *copy = malloc(nbytes);
    if (!copy) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: %s: out of memory", a->path, name);
    memcpy(copy, a->base + 4 * off_floats, nbytes);
    llmsq_status st = llmsq_permute_qk_rows(copy, heads, head_size, (size_t)(4 * cols), true);
    if (st != LLMSQ_OK) {
        free(copy);
        return llmsq_error_prefix(st, "%s: %s", a->path, name);
    }
    return llmsq_store_put(a->s, name, LLMSQ_DTYPE_F32, 2, shape, copy);
}

static llmsq_status add_tensors(const adder *a, const l2c_hdr *h, const uint64_t *off)
{
    const int64_t d = h->dim, f = h->hidden, kv = h->kv_dim;
    char name[96];
    LLMSQ_TRY(add(a, "model.embed_tokens.weight", off[T_EMB], 2, h->vocab, d));
    for (int64_t l = 0; l < h->n_layers; l++) {
        const uint64_t L = (uint64_t)l;
#define NAME_(suffix) (snprintf(name, sizeof name, "model.layers.%" PRId64 ".%s", l, suffix), name)
        LLMSQ_TRY(add(a, NAME_("input_layernorm.weight"), off[T_RMS_ATT] + L * d, 1, d, 0));
        LLMSQ_TRY(add_permuted(a, NAME_("self_attn.q_proj.weight"), off[T_WQ] + L * d * d, h->n_heads,
                               h->head_size, d));
        LLMSQ_TRY(add_permuted(a, NAME_("self_attn.k_proj.weight"), off[T_WK] + L * kv * d, h->n_kv_heads,
                               h->head_size, d));
        LLMSQ_TRY(add(a, NAME_("self_attn.v_proj.weight"), off[T_WV] + L * kv * d, 2, kv, d));
        LLMSQ_TRY(add(a, NAME_("self_attn.o_proj.weight"), off[T_WO] + L * d * d, 2, d, d));
        LLMSQ_TRY(add(a, NAME_("post_attention_layernorm.weight"), off[T_RMS_FFN] + L * d, 1, d, 0));
        LLMSQ_TRY(add(a, NAME_("mlp.gate_proj.weight"), off[T_W1] + L * f * d, 2, f, d));
        LLMSQ_TRY(add(a, NAME_("mlp.down_proj.weight"), off[T_W2] + L * d * f, 2, d, f));
        LLMSQ_TRY(add(a, NAME_("mlp.up_proj.weight"), off[T_W3] + L * f * d, 2, f, d));
#undef NAME_
    }
    LLMSQ_TRY(add(a, "model.norm.weight", off[T_RMS_FINAL], 1, d, 0));
    if (!h->shared) LLMSQ_TRY(add(a, "lm_head.weight", off[T_WCLS], 2, h->vocab, d));
    return LLMSQ_OK;
}

/* The tokenizer beside the checkpoint, in the order llama2.c's tooling names them. A
 * `.model` whose vocabulary has another size is skipped (llama2.c's repository keeps the
 * 32000-piece Llama 2 tokenizer.model next to the tok<N> files of its small models); a
 * file that is found but cannot be read is an error, not a silent fallback. */
static llmsq_status find_tokenizer(const char *path, int64_t vocab, llmsq_tokenizer **tok)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 1;
    char *dir = malloc(dlen + 2);
    if (!dir) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    memcpy(dir, slash ? path : ".", dlen);
    dir[dlen] = '\0';
    if (slash == path) strcpy(dir, "/");

    char names[4][48];
    snprintf(names[0], sizeof names[0], "tokenizer.model");
    snprintf(names[1], sizeof names[1], "tok%" PRId64 ".model", vocab);
    snprintf(names[2], sizeof names[2], "tokenizer.bin");
    snprintf(names[3], sizeof names[3], "tok%" PRId64 ".bin", vocab);
    llmsq_status st = LLMSQ_OK;
    for (int i = 0; i < 4 && !*tok && st == LLMSQ_OK; i++) {
        char *p = llmsq_path_join(dir, names[i]);
        if (!p) {
            st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
            break;
        }
        if (llmsq_is_file(p)) {
            st = i < 2 ? llmsq_tokenizer_load_spm(p, tok) : llmsq_tokenizer_load_llama2c(p, vocab, tok);
            if (st != LLMSQ_OK) llmsq_error_prefix(st, "%s: tokenizer beside the checkpoint", path);
            if (st == LLMSQ_OK && llmsq_tokenizer_vocab_size(*tok) != vocab) {
                llmsq_log("%s: skipping %s: %" PRId64 " pieces, the model has %" PRId64, path, p,
                          llmsq_tokenizer_vocab_size(*tok), vocab);
                llmsq_tokenizer_free(*tok);
                *tok = NULL;
            }
        }
        free(p);
    }
    free(dir);
    return st;
}

llmsq_status llmsq_llama2c_read_model(const char *path, llmsq_store *s, llmsq_config *cfg, llmsq_tokenizer **tok)
{
    LLMSQ_ASSERT(path && s && cfg && tok);
    *tok = NULL;
    const uint8_t *data;
    size_t size;
    LLMSQ_TRY(llmsq_store_map_file(s, path, &data, &size));
    l2c_hdr h = {0};
    LLMSQ_TRY(parse_header(path, data, size, &h));
    uint64_t off[T_COUNT + 1];
    if (!layout(&h, off))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama2.c header (dim=%" PRId64 ", hidden_dim=%" PRId64
                           ", n_layers=%" PRId64 ", vocab=%" PRId64 ") implies more than 2^64 bytes",
                           path, h.dim, h.hidden, h.n_layers, h.vocab);
    uint64_t expected = L2C_HEADER_BYTES + 4 * off[T_COUNT];
    if (expected != (uint64_t)size)
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: llama2.c checkpoint size mismatch: the header (dim=%" PRId64 ", hidden_dim=%" PRId64
                           ", n_layers=%" PRId64 ", n_heads=%" PRId64 ", n_kv_heads=%" PRId64 ", vocab_size=%s%" PRId64
                           ", seq_len=%" PRId64 ") implies %" PRIu64 " bytes, the file has %zu",
                           path, h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.shared ? "" : "-", h.vocab,
                           h.seq_len, expected, size);

    llmsq_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLMSQ_ARCH_LLAMA;
    snprintf(c.arch_name, sizeof c.arch_name, "LlamaForCausalLM");
    c.vocab_size = h.vocab;
    c.hidden_size = h.dim;
    c.intermediate_size = h.hidden;
    c.n_layers = h.n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.head_dim = h.head_size;
    c.max_position = h.seq_len;
    c.rms_eps = 1e-5;      /* hard-coded in run.c */
    c.rope_theta = 10000.0;
    c.rope_type = LLMSQ_ROPE_DEFAULT;
    c.rope_factor = 1.0;
    c.bos_id = 1;
    c.eos_id = 2;
    c.tie_embeddings = h.shared;
    LLMSQ_TRY(llmsq_config_validate(&c, path));

    adder a = {s, path, data + L2C_HEADER_BYTES};
    LLMSQ_TRY(add_tensors(&a, &h, off));
    LLMSQ_TRY(find_tokenizer(path, h.vocab, tok));
    *cfg = c;
    return LLMSQ_OK;
}
