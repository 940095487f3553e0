/* Quantized checkpoint directories (FORMATS.md 1.4, 2, 3, 4, 8.1): the store's quantized linears
 * packed as GPTQ, AutoAWQ GEMM or compressed-tensors (pack-quantized, or int-quantized for W8A8),
 * every other tensor as it is stored, config.json with quantization_config, tokenizer files,
 * and a manifest with the sha256 of every output. */
#include "formats/outdir.h"
#include "formats/qpack.h"
#include "formats/safetensors_write.h"
#include "formats/sparse_ckpt.h"
#include "llmsq/runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* huggingface_hub's default max_shard_size, "5GB". */
#define QCKPT_MAX_SHARD 5000000000ull

/* Source files a serving stack needs beside the weights (FORMATS.md 8.1 item 3), plus the
 * GPT-2-style vocabulary files and the chat template newer transformers keeps apart. */
static const char *const k_copied[] = {
    "tokenizer.model", "tokenizer.json",   "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", NULL,
};

typedef struct wdesc {
    llmsq_tensor        t;   /* first member: the emit callback gets &t back */
    const llmsq_tensor *src; /* a tensor written unchanged (or widened to F32), else NULL */
    const llmsq_qlinear *q;  /* the linear a packed tensor stands for */
    llmsq_qckpt_tensor  pt;
    const llmsq_tensor *sw;  /* the dense weight a sparse tensor stands for (sp), else NULL */
    llmsq_sparse_tensor sp;
    uint32_t            shard;
} wdesc;

typedef struct plan {
    llmsq_qckpt_scheme sc;
    wdesc  *d;
    size_t  n, cap;
    json_t *ignore;    /* compressed-tensors: the Linear modules left in float */
    json_t *in_block;  /* GPTQ modules_in_block_to_quantize, NULL when every block linear is quantized */
    bool    lm_head_q; /* lm_head is quantized */
    size_t  nq;        /* quantized linears */
    int     sp_fmt;    /* sparsity format written (LLMSQ_SPARSE_*); NONE: no sparsity_config */
    char  **sp_mods;   /* the pruned modules, sorted, unique */
    size_t  n_sp;
    int     sp_n, sp_m;
    json_t *sp_cfg;    /* the sparsity_config object */
    char  **files;     /* outputs written so far, relative to the directory */
    size_t  n_files, cap_files;
} plan;

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---- the per-format translation of one linear ------------------------------------------------- */

typedef struct codec {
    int (*tensors)(const llmsq_qckpt_scheme *, const llmsq_qlinear *, llmsq_qckpt_tensor *);
    llmsq_status (*check)(const llmsq_qckpt_scheme *, const char *, const llmsq_qlinear *);
    llmsq_status (*fill)(const llmsq_qckpt_scheme *, const llmsq_qlinear *, const llmsq_qckpt_tensor *, void *);
} codec;

static const codec k_gptq = {llmsq_gptq_tensors, llmsq_gptq_check, llmsq_gptq_fill};
static const codec k_awq = {llmsq_awq_tensors, llmsq_awq_check, llmsq_awq_fill};
static const codec k_ct = {llmsq_ct_tensors, llmsq_ct_check, llmsq_ct_fill};
static const codec k_ct_int8 = {llmsq_ct_int8_tensors, llmsq_ct_int8_check, llmsq_ct_int8_fill};

static const codec *codec_of(const llmsq_qckpt_scheme *sc)
{
    switch (sc->format) {
    case LLMSQ_CKPT_GPTQ: return &k_gptq;
    case LLMSQ_CKPT_AWQ: return &k_awq;
    default: return sc->act_bits ? &k_ct_int8 : &k_ct;
    }
}

static const char *format_name(llmsq_ckpt_format f)
{
    return f == LLMSQ_CKPT_GPTQ ? "GPTQ" : f == LLMSQ_CKPT_AWQ ? "AWQ" : "compressed-tensors";
}

/* ---- the scheme every quantized linear must share ------------------------------------------ */

typedef struct qent {
    const char          *name;
    const llmsq_qlinear *q;
} qent;

static int cmp_qent(const void *a, const void *b)
{
    return strcmp(((const qent *)a)->name, ((const qent *)b)->name);
}

static bool exact_f16(float s) { return llmsq_f16_to_f32(llmsq_f32_to_f16(s)) == s; }
static bool exact_bf16(float s) { return llmsq_bf16_to_f32(llmsq_f32_to_bf16(s)) == s; }

/* The canonical invariants the packers rely on: a code or zero point outside its field would
 * spill into its neighbours, and a scale the scale dtype cannot hold would not read back
 * bit-exactly. */
static llmsq_status check_canonical(const char *name, const llmsq_qlinear *q, llmsq_dtype scale_dtype)
{
    const int32_t top = (1 << q->bits) - 1;
    for (int64_t k = 0; k < q->out * q->in; k++)
        if (q->codes[k] > top)
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: code %d at [%lld, %lld] exceeds %d bits", name, q->codes[k],
                               (long long)(k / q->in), (long long)(k % q->in), q->bits);
    for (int64_t k = 0; k < q->out * q->n_groups; k++) {
        float s = q->scales[k];
        if (q->zeros[k] < 0 || q->zeros[k] > top)
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: zero point %d (row %lld) outside [0, %d]", name, q->zeros[k],
                               (long long)(k / q->n_groups), top);
        if (!isfinite(s) || (scale_dtype == LLMSQ_DTYPE_F16 && !exact_f16(s)) ||
            (scale_dtype == LLMSQ_DTYPE_BF16 && !exact_bf16(s)))
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: scale %.9g (row %lld) is not a %s value (GPTQ and AWQ "
                               "checkpoints store f16 scales: quantize with an f16 scale dtype)", name, (double)s,
                               (long long)(k / q->n_groups), llmsq_dtype_info(scale_dtype)->name);
    }
    if (q->g_idx)
        for (int64_t i = 0; i < q->in; i++)
            if (q->g_idx[i] < 0 || q->g_idx[i] >= q->n_groups)
                return llmsq_error(LLMSQ_STATUS_ARG, "%s: g_idx[%lld] = %d outside [0, %lld)", name, (long long)i,
                                   q->g_idx[i], (long long)q->n_groups);
    return LLMSQ_OK;
}

static llmsq_status derive_scheme(llmsq_ckpt_format fmt, const qent *e, size_t n, llmsq_qckpt_scheme *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->format = fmt;
    sc->bits = e[0].q->bits;
    sc->group_size = -1;
    sc->sym = true;
    /* W8A8 (activations quantized too) is compressed-tensors' int-quantized scheme, and a
     * checkpoint holds one scheme: every linear W8A8, or none. */
    sc->act_bits = e[0].q->act_bits;
    sc->act_static = e[0].q->act_static;
    for (size_t i = 0; i < n; i++) {
        const llmsq_qlinear *q = e[i].q;
        if (q->act_bits != 0 && q->act_bits != 8)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: act_bits %d (int8 activations or none)", e[i].name,
                               q->act_bits);
        if (q->act_bits != sc->act_bits)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the store mixes W8A8 and weight-only quantized linears (%s: "
                               "act_bits %d, %s: act_bits %d); a checkpoint holds one scheme", e[0].name, sc->act_bits,
                               e[i].name, q->act_bits);
    }
    if (sc->act_bits && fmt != LLMSQ_CKPT_COMPRESSED_TENSORS)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s checkpoints are weight-only but %s quantizes its activations "
                           "(W8A8, act_bits %d): write compressed-tensors (int-quantized)", format_name(fmt), e[0].name,
                           sc->act_bits);
    /* GPTQ and AWQ readers expect f16 scales; compressed-tensors takes the model's float type,
     * so use the narrowest one that holds every scale exactly (f32 models quantized with f32
     * scales keep them: the reference RTN/GPTQ grids are not f16-rounded). W8A8 static input
     * scales share the dtype. */
    bool all_f16 = true, all_bf16 = true;
    for (size_t i = 0; i < n && (all_f16 || all_bf16); i++) {
        for (int64_t k = 0; k < e[i].q->out * e[i].q->n_groups; k++) {
            all_f16 = all_f16 && exact_f16(e[i].q->scales[k]);
            all_bf16 = all_bf16 && exact_bf16(e[i].q->scales[k]);
        }
        if (e[i].q->act_bits && e[i].q->act_static) {
            all_f16 = all_f16 && exact_f16(e[i].q->act_scale);
            all_bf16 = all_bf16 && exact_bf16(e[i].q->act_scale);
        }
    }
    sc->scale_dtype = fmt != LLMSQ_CKPT_COMPRESSED_TENSORS || all_f16 ? LLMSQ_DTYPE_F16
                      : all_bf16                                      ? LLMSQ_DTYPE_BF16
                                                                      : LLMSQ_DTYPE_F32;
    const qent *grouped = NULL; /* a linear with more than one group fixes the group size */
    for (size_t i = 0; i < n; i++) {
        const llmsq_qlinear *q = e[i].q;
        if (q->bits != sc->bits)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "quantized linears differ in bits (%s: %d, %s: %d); a checkpoint "
                               "holds one scheme", e[0].name, sc->bits, e[i].name, q->bits);
        if (q->n_groups > 1) {
            if (grouped && q->group_size != grouped->q->group_size)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "quantized linears differ in group size (%s: %lld, %s: "
                                   "%lld); a checkpoint holds one scheme", grouped->name,
                                   (long long)grouped->q->group_size, e[i].name, (long long)q->group_size);
            grouped = &e[i];
            sc->group_size = q->group_size;
        }
        for (int64_t k = 0; k < q->out * q->n_groups && sc->sym; k++) sc->sym = q->zeros[k] == 1 << (sc->bits - 1);
        sc->act_order |= q->act_order;
        for (int64_t j = 0; q->g_idx && j < q->in && !sc->g_idx; j++) sc->g_idx = q->g_idx[j] != j / q->group_size;
    }
    /* A one-group linear reads back as one group only when the shared size covers its width. */
    for (size_t i = 0; grouped && i < n; i++)
        if (e[i].q->n_groups == 1 && e[i].q->in > sc->group_size)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s has one group over its %lld columns but %s uses groups of "
                               "%lld; a checkpoint holds one scheme", e[i].name, (long long)e[i].q->in, grouped->name,
                               (long long)sc->group_size);
    if (sc->group_size == -1) sc->act_order = sc->g_idx = false; /* one group: the order changes nothing */
    /* AWQ spells one group per row as group_size = in_features (AutoAWQ's mapping of -1), a
     * single number for the whole checkpoint. */
    if (fmt == LLMSQ_CKPT_AWQ && sc->group_size == -1) {
        for (size_t i = 1; i < n; i++)
            if (e[i].q->in != e[0].q->in)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ writes per-channel quantization as group_size = "
                                   "in_features, one value per checkpoint, but %s has %lld input features and %s %lld "
                                   "(quantize with a group size that divides both)", e[0].name,
                                   (long long)e[0].q->in, e[i].name, (long long)e[i].q->in);
        sc->group_size = e[0].q->in;
    }
    return LLMSQ_OK;
}

/* Every failing linear is named, so one run tells the user everything to change. */
static llmsq_status check_all(const llmsq_qckpt_scheme *sc, const qent *e, size_t n)
{
    llmsq_status first = LLMSQ_OK;
    char msg[1024] = "", more[768] = "";
    size_t n_more = 0;
    for (size_t i = 0; i < n; i++) {
        LLMSQ_TRY(check_canonical(e[i].name, e[i].q, sc->scale_dtype));
        llmsq_status st = codec_of(sc)->check(sc, e[i].name, e[i].q);
        if (st == LLMSQ_OK) continue;
        if (first == LLMSQ_OK) {
            first = st;
            snprintf(msg, sizeof msg, "%s", llmsq_last_error());
        } else if (n_more++ < 12) {
            size_t l = strlen(more);
            snprintf(more + l, sizeof more - l, "%s%s", l ? ", " : "", e[i].name);
        }
    }
    if (first == LLMSQ_OK) return LLMSQ_OK;
    if (n_more)
        return llmsq_error(first, "%s; %zu more linear(s) fail the same way: %s%s", msg, n_more, more,
                           n_more > 12 ? ", ..." : "");
    return llmsq_error(first, "%s", msg);
}

/* ---- which Linear modules stay in float ------------------------------------------------------ */

/* Linear modules are the 2-D ".weight" tensors other than embeddings; lm_head counts even when
 * tied (transformers still builds the module, and compressed-tensors would target it). */
static llmsq_status linear_modules(const llmsq_store *s, const llmsq_config *cfg, plan *pl)
{
    char **names;
    size_t n;
    LLMSQ_TRY(llmsq_qckpt_names(s, ".weight", &names, &n));
    llmsq_status st = LLMSQ_OK;
    json_t *blocks = json_object(); /* layer index -> its quantized block-relative names */
    json_t *quantized = json_array(); /* the quantized modules (AWQ's substring rule) */
    bool block_float = false, lm_head_seen = false;
    pl->ignore = json_array();
    if (!blocks || !quantized || !pl->ignore) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, names[i]);
        if (t->ndim != 2 || strstr(names[i], "embed")) continue;
        names[i][strlen(names[i]) - 7] = '\0';
        const bool quant = t->qlinear != NULL;
        if (strcmp(names[i], "lm_head") == 0) {
            lm_head_seen = true;
            pl->lm_head_q = quant;
        }
        if (json_array_append_new(quant ? quantized : pl->ignore, json_string(names[i])) != 0)
            st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        const char *rest = strncmp(names[i], "model.layers.", 13) == 0 ? strchr(names[i] + 13, '.') : NULL;
        if (!rest || st != LLMSQ_OK) continue;
        char layer[32];
        snprintf(layer, sizeof layer, "%.*s", (int)(rest - names[i] - 13), names[i] + 13);
        json_t *arr = json_object_get(blocks, layer);
        if (!arr && json_object_set_new(blocks, layer, arr = json_array()) != 0) arr = NULL;
        if (!arr || (quant && json_array_append_new(arr, json_string(rest + 1)) != 0))
            st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        block_float |= !quant;
    }
    if (st == LLMSQ_OK && !lm_head_seen && json_array_append_new(pl->ignore, json_string("lm_head")) != 0)
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    /* Sorted like every other list we write (lm_head was appended last). */
    for (size_t i = 1; st == LLMSQ_OK && i < json_array_size(pl->ignore); i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(pl->ignore, j - 1), *b = json_array_get(pl->ignore, j);
            if (strcmp(json_string_value(a), json_string_value(b)) <= 0) break;
            json_incref(a);
            json_array_set(pl->ignore, j - 1, b);
            json_array_set_new(pl->ignore, j, a);
        }
    if (st == LLMSQ_OK && pl->lm_head_q && cfg->tie_embeddings)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "lm_head.weight is quantized but tie_word_embeddings is true: a "
                         "quantized head needs its own tensor (untie the embeddings first)");
    /* AWQ readers (AutoAWQ, transformers, vLLM) keep lm_head in float and have no key to say
     * otherwise; modules_to_not_convert is matched by substring. */
    if (st == LLMSQ_OK && pl->sc.format == LLMSQ_CKPT_AWQ && pl->lm_head_q)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store a quantized lm_head (AWQ readers always load it in "
                         "float): keep lm_head unquantized or use GPTQ / compressed-tensors");
    if (st == LLMSQ_OK && pl->sc.format == LLMSQ_CKPT_AWQ) st = llmsq_awq_check_skips(pl->ignore, quantized);
    /* GPTQ names the quantized linears once for every block (modules_in_block_to_quantize). */
    if (st == LLMSQ_OK && pl->sc.format == LLMSQ_CKPT_GPTQ && block_float) {
        const char *key0 = NULL, *key;
        json_t *arr;
        json_object_foreach(blocks, key, arr) {
            if (!key0) {
                key0 = key;
                pl->in_block = json_incref(arr);
            } else if (!json_equal(arr, pl->in_block)) {
                st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "GPTQ cannot store a model whose blocks quantize different "
                                 "linears (layer %s vs layer %s; GPTQ's modules_in_block_to_quantize is one list for "
                                 "every block): quantize the same linears in every block or use compressed-tensors",
                                 key0, key);
                break;
            }
        }
    }
    json_decref(blocks);
    json_decref(quantized);
    llmsq_qckpt_free_names(names, n);
    return st;
}

/* ---- sparsity (FORMATS.md 4.5, 4.7) ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_sparse_module(const plan *pl, const char *module)
{
    return pl->n_sp && bsearch(&module, pl->sp_mods, pl->n_sp, sizeof *pl->sp_mods, cmp_str) != NULL;
}

typedef struct nz_ctx {
    const llmsq_tensor  *t;
    const llmsq_qlinear *q;
} nz_ctx;

/* A quantized weight is zero where its code equals the zero point (or the scale is zero). */
static bool nz_elem(const void *ctx, int64_t i)
{
    const nz_ctx *c = ctx;
    if (!c->q) return llmsq_sparse_nonzero(c->t, i);
    const llmsq_qlinear *q = c->q;
    int64_t o = i / q->in, g = o * q->n_groups + llmsq_qlinear_group(q, i % q->in);
    return q->codes[i] != q->zeros[g] && q->scales[g] != 0.0f;
}

/* The sparse modules exist, are linears, keep their N:M; the sparsity_config block. */
static llmsq_status plan_sparse(plan *pl, const llmsq_store *s, const llmsq_config *cfg, const llmsq_ckpt_write_params *p)
{
    const int fmt = p->sparse_format;
    if (fmt == LLMSQ_SPARSE_NONE) return LLMSQ_OK;
    if (!llmsq_sparse_format_name(fmt))
        return llmsq_error(LLMSQ_STATUS_ARG, "sparse_format %d is not a sparsity format", fmt);
    if (p->format != LLMSQ_CKPT_COMPRESSED_TENSORS)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s checkpoints cannot record sparsity (no sparsity_config): "
                           "write compressed-tensors", format_name(p->format));
    int n = p->sparse_n, m = p->sparse_m;
    if (!((n == 0 && m == 0) || (n > 0 && n < m && m <= 64)))
        return llmsq_error(LLMSQ_STATUS_ARG, "sparsity %d:%d is not N:M with 0 < N < M <= 64 (nor 0:0, unstructured)",
                           n, m);
    if (fmt == LLMSQ_SPARSE_24_BITMASK && m && !(n == 2 && m == 4))
        return llmsq_error(LLMSQ_STATUS_ARG, "sparse-24-bitmask stores 2:4 sparsity, not %d:%d (use sparse-bitmask or "
                           "dense)", n, m);
    if (fmt == LLMSQ_SPARSE_24_BITMASK) n = 2, m = 4;
    if (!(p->global_sparsity >= 0 && p->global_sparsity <= 1))
        return llmsq_error(LLMSQ_STATUS_ARG, "global_sparsity %g is outside [0, 1]", p->global_sparsity);
    if (p->n_sparse_modules == 0 || !p->sparse_modules)
        return llmsq_error(LLMSQ_STATUS_ARG, "sparse_format %s but no sparse module listed", llmsq_sparse_format_name(fmt));
    pl->sp_n = n;
    pl->sp_m = m;
    if (!(pl->sp_mods = calloc(p->n_sparse_modules, sizeof *pl->sp_mods)))
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n_sparse_modules; i++) {
        if (!p->sparse_modules[i]) return llmsq_error(LLMSQ_STATUS_ARG, "sparse_modules[%zu] is NULL", i);
        if (!(pl->sp_mods[pl->n_sp] = strdup(p->sparse_modules[i]))) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        pl->n_sp++;
    }
    qsort(pl->sp_mods, pl->n_sp, sizeof *pl->sp_mods, cmp_str);
    size_t k = 0; /* drop duplicates */
    for (size_t i = 0; i < pl->n_sp; i++) {
        if (k && strcmp(pl->sp_mods[k - 1], pl->sp_mods[i]) == 0) {
            free(pl->sp_mods[i]);
            continue;
        }
        pl->sp_mods[k++] = pl->sp_mods[i];
    }
    pl->n_sp = k;
    /* The bitmask compressors replace m.weight, which pack-quantized linears do not have
     * (FORMATS.md 4.5): with any quantized linear the weights stay as they are and only
     * sparsity_config says they are sparse. */
    pl->sp_fmt = fmt;
    if (pl->nq && fmt != LLMSQ_SPARSE_DENSE) {
        llmsq_log("sparsity: %s requested but the checkpoint holds pack-quantized linears; writing sparsity_config "
                  "format \"dense\" (the bitmask compressors replace m.weight, which pack-quantized does not have)",
                  llmsq_sparse_format_name(fmt));
        pl->sp_fmt = LLMSQ_SPARSE_DENSE;
    }
    bool lm_head = false;
    for (size_t i = 0; i < pl->n_sp; i++) {
        char name[512];
        const char *mod = pl->sp_mods[i];
        snprintf(name, sizeof name, "%s.weight", mod);
        const llmsq_tensor *t = llmsq_store_get(s, name);
        if (!t || t->ndim != 2 || strstr(mod, "embed"))
            return llmsq_error(LLMSQ_STATUS_ARG, "sparse module %s: %s", mod, !t ? "no such weight in the model (expected "
                               "a module name such as model.layers.0.mlp.down_proj)" : "not a Linear weight");
        if (strcmp(mod, "lm_head") == 0) {
            if (cfg->tie_embeddings)
                return llmsq_error(LLMSQ_STATUS_ARG, "sparse module lm_head is tied to the embeddings and is not written");
            lm_head = true;
        }
        if (!t->qlinear && !(t->dtype == LLMSQ_DTYPE_F32 || t->dtype == LLMSQ_DTYPE_F16 || t->dtype == LLMSQ_DTYPE_BF16))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "sparse module %s: weight dtype %s (F32, F16, BF16 or a "
                               "quantized linear)", mod, llmsq_dtype_info(t->dtype)->name);
        nz_ctx c = {t, t->qlinear};
        int64_t row, col;
        if (m && !llmsq_sparse_nm_check(nz_elem, &c, t->shape[0], t->shape[1], n, m, &row, &col))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s is not %d:%d sparse: row %lld, columns %lld..%lld hold more "
                               "than %d nonzeros", name, n, m, (long long)row, (long long)col,
                               (long long)(col + m - 1 < t->shape[1] ? col + m - 1 : t->shape[1] - 1), n);
    }
    /* targets: "Linear" when every block linear (and nothing else but maybe lm_head) is sparse. */
    bool all = true;
    for (size_t i = 0; i < llmsq_store_count(s) && all; i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        size_t len = strlen(t->name);
        if (t->ndim != 2 || strncmp(t->name, "model.layers.", 13) != 0 || !ends_with(t->name, ".weight") ||
            strstr(t->name, "embed"))
            continue;
        char mod[512];
        snprintf(mod, sizeof mod, "%.*s", (int)(len - 7), t->name);
        all = is_sparse_module(pl, mod);
    }
    json_t *targets = json_array(), *ignore = json_array();
    bool oom = !targets || !ignore;
    if (all && !oom) oom = json_array_append_new(targets, json_string("Linear")) != 0;
    for (size_t i = 0; !all && !oom && i < pl->n_sp; i++) oom = json_array_append_new(targets, json_string(pl->sp_mods[i])) != 0;
    if (!lm_head && !oom) oom = json_array_append_new(ignore, json_string("lm_head")) != 0;
    char structure[32];
    if (m) snprintf(structure, sizeof structure, "%d:%d", n, m);
    else snprintf(structure, sizeof structure, "unstructured");
    if (!oom)
        pl->sp_cfg = json_pack("{s:s, s:o, s:o, s:f, s:s}", "format", llmsq_sparse_format_name(pl->sp_fmt), "targets",
                               targets, "ignore", ignore, "global_sparsity", p->global_sparsity, "sparsity_structure",
                               structure);
    else
        json_decref(targets), json_decref(ignore);
    return pl->sp_cfg ? LLMSQ_OK : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
}

/* ---- tensor descriptors ------------------------------------------------------------------------ */

static wdesc *add_desc(plan *pl)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 256;
        wdesc *d = realloc(pl->d, cap * sizeof *d);
        if (!d) return NULL;
        pl->d = d;
        pl->cap = cap;
    }
    wdesc *d = &pl->d[pl->n++];
    memset(d, 0, sizeof *d);
    return d;
}

/* Packed tensors of an imported checkpoint whose linear now lives in canonical form: they are
 * rewritten from it, never copied. */
static bool stale_packed(const llmsq_store *s, const char *name)
{
    for (const char *const *suf = llmsq_qckpt_suffixes; *suf; suf++) {
        size_t n = strlen(name), k = strlen(*suf);
        if (n <= k + 1 || name[n - k - 1] != '.' || strcmp(name + n - k, *suf) != 0) continue;
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s.weight", (int)(n - k - 1), name);
        if (llmsq_store_get_qlinear(s, buf)) return true;
    }
    /* ... and the bitmask tensors of an imported sparse checkpoint, rebuilt as "<m>.weight". */
    for (const char *const *suf = llmsq_sparse_suffixes; *suf; suf++) {
        size_t n = strlen(name), k = strlen(*suf);
        if (n <= k + 1 || name[n - k - 1] != '.' || strcmp(name + n - k, *suf) != 0) continue;
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s.weight", (int)(n - k - 1), name);
        if (llmsq_store_get(s, buf)) return true;
    }
    return false;
}

static llmsq_status build_descs(const llmsq_store *s, const llmsq_config *cfg, plan *pl)
{
    for (size_t i = 0; i < llmsq_store_count(s); i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        if (t->qlinear) {
            llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
            int k = codec_of(&pl->sc)->tensors(&pl->sc, t->qlinear, pt);
            size_t base = strlen(t->name) - 7; /* "<prefix>.weight" */
            for (int j = 0; j < k; j++) {
                wdesc *d = add_desc(pl);
                char *name = malloc(base + strlen(pt[j].suffix) + 2);
                if (!d || !name) {
                    free(name);
                    if (d) pl->n--;
                    return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
                }
                sprintf(name, "%.*s.%s", (int)base, t->name, pt[j].suffix);
                d->t.name = name;
                d->t.dtype = pt[j].dtype;
                d->t.ndim = pt[j].ndim;
                d->t.shape[0] = pt[j].shape[0];
                d->t.shape[1] = pt[j].shape[1];
                d->t.nbytes = pt[j].nbytes;
                d->q = t->qlinear;
                d->pt = pt[j];
            }
            continue;
        }
        if ((cfg->tie_embeddings && strcmp(t->name, "lm_head.weight") == 0) || stale_packed(s, t->name)) continue;
        if ((pl->sp_fmt == LLMSQ_SPARSE_BITMASK || pl->sp_fmt == LLMSQ_SPARSE_24_BITMASK) && ends_with(t->name, ".weight")) {
            char mod[512];
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(t->name) - 7), t->name);
            if (is_sparse_module(pl, mod)) {
                llmsq_sparse_tensor spt[LLMSQ_SPARSE_MAX_TENSORS];
                int k;
                LLMSQ_TRY(llmsq_sparse_tensors(pl->sp_fmt, t, spt, &k));
                for (int j = 0; j < k; j++) {
                    wdesc *d = add_desc(pl);
                    char *name = malloc(strlen(mod) + strlen(spt[j].suffix) + 2);
                    if (!d || !name) {
                        free(name);
                        if (d) pl->n--;
                        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
                    }
                    sprintf(name, "%s.%s", mod, spt[j].suffix);
                    d->t.name = name;
                    d->t.dtype = spt[j].dtype;
                    d->t.ndim = spt[j].ndim;
                    d->t.shape[0] = spt[j].shape[0];
                    d->t.shape[1] = spt[j].shape[1];
                    d->t.nbytes = spt[j].nbytes;
                    d->sw = t;
                    d->sp = spt[j];
                }
                continue;
            }
        }
        wdesc *d = add_desc(pl);
        if (!d) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        d->t = *t;
        d->t.qlinear = NULL;
        d->src = t;
        /* Block types safetensors cannot spell (GGUF Q8_0) are widened to F32, which is exact. */
        if (llmsq_dtype_info(t->dtype)->block != 1) {
            d->t.dtype = LLMSQ_DTYPE_F32;
            d->t.nbytes = (size_t)llmsq_tensor_numel(t) * sizeof(float);
        }
    }
    return LLMSQ_OK;
}

static void free_plan(plan *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        if (pl->d[i].q || pl->d[i].sw) free(pl->d[i].t.name);
    free(pl->d);
    for (size_t i = 0; i < pl->n_sp; i++) free(pl->sp_mods[i]);
    free(pl->sp_mods);
    json_decref(pl->sp_cfg);
    for (size_t i = 0; i < pl->n_files; i++) free(pl->files[i]);
    free(pl->files);
    json_decref(pl->ignore);
    json_decref(pl->in_block);
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(((const wdesc *)a)->t.name, ((const wdesc *)b)->t.name);
}

/* ---- writing ------------------------------------------------------------------------------------ */

typedef struct emit_ctx {
    const plan     *pl;
    llmsq_progress *progress;
    int64_t         done;
} emit_ctx;

static llmsq_status emit(void *ctx, const llmsq_tensor *t, llmsq_st_out *o)
{
    emit_ctx *e = ctx;
    const wdesc *d = (const wdesc *)t;
    llmsq_status st = LLMSQ_OK;
    if (d->q) {
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory (%zu bytes)", t->name, t->nbytes);
        st = codec_of(&e->pl->sc)->fill(&e->pl->sc, d->q, &d->pt, buf);
        if (st == LLMSQ_OK) st = llmsq_st_out_write(o, buf, t->nbytes);
        free(buf);
    } else if (d->sw) {
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory (%zu bytes)", t->name, t->nbytes);
        st = llmsq_sparse_fill(e->pl->sp_fmt, d->sw, &d->sp, buf);
        if (st == LLMSQ_OK) st = llmsq_st_out_write(o, buf, t->nbytes);
        free(buf);
    } else if (d->t.dtype == d->src->dtype) {
        st = llmsq_st_out_write(o, d->src->data, t->nbytes);
    } else {
        enum { CHUNK = 32 * 1024 };
        const llmsq_dtype_traits *tr = llmsq_dtype_info(d->src->dtype);
        float *f = malloc(CHUNK * sizeof *f);
        if (!f) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", t->name);
        const int64_t n = llmsq_tensor_numel(d->src);
        for (int64_t i = 0; i < n && st == LLMSQ_OK; i += CHUNK) {
            int64_t m = n - i < CHUNK ? n - i : CHUNK;
            const uint8_t *src = (const uint8_t *)d->src->data + (size_t)(i / tr->block) * tr->block_bytes;
            st = llmsq_dtype_to_f32(d->src->dtype, src, f, m);
            if (st == LLMSQ_OK) st = llmsq_st_out_write(o, f, (size_t)m * sizeof *f);
        }
        free(f);
    }
    e->done += (int64_t)t->nbytes;
    llmsq_progress_update(e->progress, e->done);
    return st;
}

/* Fewest significant digits that round-trip every real of the tree, so 1e-05 is written as
 * Python writes it; whole numbers keep all their digits (10000.0, not 1e+04). */
static int real_precision(const json_t *j)
{
    int p = 1;
    if (json_is_real(j)) {
        double v = json_real_value(j);
        char tmp[40];
        for (; p < 17; p++) {
            snprintf(tmp, sizeof tmp, "%.*g", p, v);
            if (strtod(tmp, NULL) == v) break;
        }
        if (v == floor(v) && fabs(v) < 1e16) {
            int digits = snprintf(tmp, sizeof tmp, "%.0f", fabs(v));
            if (digits > p) p = digits;
        }
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            int q = real_precision(v);
            if (q > p) p = q;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            int q = real_precision(v);
            if (q > p) p = q;
        }
    }
    return p;
}

static llmsq_status note_file(plan *pl, const char *rel)
{
    for (size_t i = 0; i < pl->n_files; i++)
        if (strcmp(pl->files[i], rel) == 0) return LLMSQ_OK;
    if (pl->n_files == pl->cap_files) {
        size_t cap = pl->cap_files ? 2 * pl->cap_files : 16;
        char **f = realloc(pl->files, cap * sizeof *f);
        if (!f) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        pl->files = f;
        pl->cap_files = cap;
    }
    if (!(pl->files[pl->n_files] = strdup(rel))) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    pl->n_files++;
    return LLMSQ_OK;
}

/* Sorted keys, two-space indent, a final newline: the bytes depend only on the content. */
static llmsq_status write_json(plan *pl, const char *dir, const char *rel, const json_t *root)
{
    char *path = llmsq_path_join(dir, rel);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(real_precision(root)))
                      : NULL;
    llmsq_status st;
    char *t2 = text ? realloc(text, strlen(text) + 2) : NULL;
    if (!path || !t2) {
        free(t2 ? t2 : text);
        free(path);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", rel);
    }
    size_t n = strlen(t2);
    t2[n] = '\n';
    st = llmsq_fmt_write_atomic(path, t2, n + 1);
    if (st == LLMSQ_OK) st = note_file(pl, rel);
    free(t2);
    free(path);
    return st;
}

static void shard_name(char *buf, size_t cap, uint32_t i, uint32_t n)
{
    if (n == 1) snprintf(buf, cap, "model.safetensors");
    else snprintf(buf, cap, "model-%05u-of-%05u.safetensors", i + 1, n);
}

static llmsq_status write_weights(plan *pl, const char *dir, uint64_t max_shard)
{
    if (pl->n) qsort(pl->d, pl->n, sizeof *pl->d, cmp_desc);
    /* huggingface_hub's split: a new shard when the next tensor would overflow this one. */
    uint32_t shard = 0;
    uint64_t cur = 0, total = 0;
    for (size_t i = 0; i < pl->n; i++) {
        uint64_t nb = pl->d[i].t.nbytes;
        if (cur > 0 && cur + nb > max_shard) {
            shard++;
            cur = 0;
        }
        pl->d[i].shard = shard;
        cur += nb;
        total += nb;
    }
    const uint32_t n_shards = shard + 1;
    const llmsq_tensor **sel = malloc((pl->n ? pl->n : 1) * sizeof *sel);
    if (!sel) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    emit_ctx ctx = {pl, llmsq_progress_begin("write", (int64_t)total), 0};
    llmsq_status st = LLMSQ_OK;
    char fname[64];
    for (uint32_t sh = 0; sh < n_shards && st == LLMSQ_OK; sh++) {
        size_t k = 0;
        for (size_t i = 0; i < pl->n; i++)
            if (pl->d[i].shard == sh) sel[k++] = &pl->d[i].t;
        shard_name(fname, sizeof fname, sh, n_shards);
        char *path = llmsq_path_join(dir, fname);
        st = path ? llmsq_safetensors_write_stream(path, sel, k, NULL, 0, emit, &ctx)
                  : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        if (st == LLMSQ_OK) st = note_file(pl, fname);
        free(path);
    }
    llmsq_progress_end(ctx.progress);
    free(sel);
    if (st != LLMSQ_OK || n_shards == 1) return st;
    json_t *map = json_object();
    json_t *index = map ? json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map)
                        : NULL;
    bool oom = !index;
    for (size_t i = 0; i < pl->n && !oom; i++) {
        shard_name(fname, sizeof fname, pl->d[i].shard, n_shards);
        oom = json_object_set_new(map, pl->d[i].t.name, json_string(fname)) != 0;
    }
    st = oom ? llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory") : write_json(pl, dir, "model.safetensors.index.json", index);
    json_decref(map);
    json_decref(index);
    return st;
}

static const char *torch_dtype_of(const llmsq_store *s)
{
    const llmsq_tensor *e = llmsq_store_get(s, "model.embed_tokens.weight");
    if (e && e->dtype == LLMSQ_DTYPE_F16) return "float16";
    if (e && e->dtype == LLMSQ_DTYPE_BF16) return "bfloat16";
    return "float32";
}

static llmsq_status write_configs(plan *pl, const char *dir, const llmsq_store *s, const llmsq_config *cfg,
                                  const llmsq_ckpt_write_params *p)
{
    char *src = p->source && llmsq_is_dir(p->source) ? llmsq_path_join(p->source, "config.json") : NULL;
    char *gen = llmsq_path_join(dir, "config.json");
    llmsq_status st = LLMSQ_OK;
    json_t *root = NULL, *qc = NULL;
    json_error_t jerr;
    if (!gen) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        goto out;
    }
    /* The source's own config keeps every field we do not model; a GGUF or llama2.c source
     * has none, so one is generated from cfg. */
    const char *from = src && llmsq_is_file(src) ? src : gen;
    if (from == gen && (st = llmsq_hf_config_write(gen, cfg, torch_dtype_of(s))) != LLMSQ_OK) goto out;
    root = json_load_file(from, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: not a JSON object (line %d: %s)", from, jerr.line,
                         root ? "not an object" : jerr.text);
        goto out;
    }
    qc = pl->sc.format == LLMSQ_CKPT_GPTQ ? llmsq_gptq_config(&pl->sc, p->quant, p->true_sequential, pl->lm_head_q, pl->in_block)
         : pl->sc.format == LLMSQ_CKPT_AWQ ? llmsq_awq_config(&pl->sc, pl->ignore)
         : pl->nq ? llmsq_ct_config(&pl->sc, pl->ignore)
                  /* sparse only (FORMATS.md 4.7): still compressed-tensors, no config group */
                  : json_pack("{s:s, s:s, s:s, s:n, s:O, s:n, s:{}}", "quant_method", "compressed-tensors", "format",
                              "dense", "quantization_status", "compressed", "global_compression_ratio", "ignore",
                              json_object_get(pl->sp_cfg, "ignore"), "kv_cache_scheme", "config_groups");
    if (qc && pl->sp_cfg && json_object_set(qc, "sparsity_config", pl->sp_cfg) != 0) {
        json_decref(qc);
        qc = NULL;
    }
    if (!qc || json_object_set(root, "quantization_config", qc) != 0) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        goto out;
    }
    st = write_json(pl, dir, "config.json", root);
    /* AutoGPTQ reads quantize_config.json; vLLM's gptq loaders list it too (FORMATS.md 2.1). */
    if (st == LLMSQ_OK && pl->sc.format == LLMSQ_CKPT_GPTQ) st = write_json(pl, dir, "quantize_config.json", qc);
out:
    json_decref(root);
    json_decref(qc);
    free(src);
    free(gen);
    return st;
}

static llmsq_status copy_sources(plan *pl, const char *dir, const char *source)
{
    if (!source || !llmsq_is_dir(source)) return LLMSQ_OK;
    llmsq_status st = LLMSQ_OK;
    for (const char *const *f = k_copied; *f && st == LLMSQ_OK; f++) {
        char *from = llmsq_path_join(source, *f), *to = llmsq_path_join(dir, *f);
        char *data = NULL;
        size_t n = 0;
        if (!from || !to) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        else if (llmsq_is_file(from) && (st = llmsq_read_file(from, &data, &n)) == LLMSQ_OK &&
                 (st = llmsq_fmt_write_atomic(to, data, n)) == LLMSQ_OK)
            st = note_file(pl, *f);
        free(data);
        free(from);
        free(to);
    }
    return st;
}

static llmsq_status write_manifest(plan *pl, const char *dir, json_t *manifest)
{
    json_t *outs = json_object();
    if (!outs || json_object_set_new(manifest, "outputs", outs) != 0)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < pl->n_files; i++) {
        char hex[65], *path = llmsq_path_join(dir, pl->files[i]);
        llmsq_status st = path ? llmsq_sha256_file(path, hex) : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        free(path);
        if (st != LLMSQ_OK) return st;
        if (json_object_set_new(outs, pl->files[i], json_string(hex)) != 0)
            return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    return write_json(pl, dir, "manifest.json", manifest);
}

/* ---- the output directory ------------------------------------------------------------------------ */

/* Names this writer (or the atomic writers it calls, through "<name>.tmp") may leave; the
 * ".tmp" suffix is already removed (llmsq_outdir_remove_ours). */
static bool is_ours(const char *base)
{
    static const char *const fixed[] = {"config.json", "quantize_config.json", "manifest.json",
                                        "model.safetensors.index.json", NULL};
    for (const char *const *f = fixed; *f; f++)
        if (strcmp(base, *f) == 0) return true;
    for (const char *const *f = k_copied; *f; f++)
        if (strcmp(base, *f) == 0) return true;
    return strncmp(base, "model", 5) == 0 && ends_with(base, ".safetensors");
}

static llmsq_status plan_store(plan *pl, const llmsq_store *s, const llmsq_config *cfg, const llmsq_ckpt_write_params *p)
{
    const llmsq_ckpt_format fmt = p->format;
    size_t nq = 0, total = llmsq_store_count(s);
    qent *e = malloc((total ? total : 1) * sizeof *e);
    if (!e) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < total; i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        if (t->qlinear) e[nq++] = (qent){t->name, t->qlinear};
    }
    llmsq_status st = LLMSQ_OK;
    for (size_t i = 0; i < nq && st == LLMSQ_OK; i++)
        if (!ends_with(e[i].name, ".weight") || strlen(e[i].name) == 7)
            st = llmsq_error(LLMSQ_STATUS_ARG, "quantized tensor '%s' is not named \"<module>.weight\"", e[i].name);
    qsort(e, nq, sizeof *e, cmp_qent);
    pl->nq = nq;
    pl->sc.format = fmt;
    if (st == LLMSQ_OK && nq == 0 && p->sparse_format == LLMSQ_SPARSE_NONE)
        st = llmsq_error(LLMSQ_STATUS_ARG, "the store holds no quantized linear to write (and no sparsity was requested)");
    if (st == LLMSQ_OK && nq) st = derive_scheme(fmt, e, nq, &pl->sc);
    if (st == LLMSQ_OK && nq) st = check_all(&pl->sc, e, nq);
    free(e);
    if (st == LLMSQ_OK) st = linear_modules(s, cfg, pl);
    if (st == LLMSQ_OK) st = plan_sparse(pl, s, cfg, p);
    if (st == LLMSQ_OK) st = build_descs(s, cfg, pl);
    return st;
}

llmsq_status llmsq_qckpt_write_sharded(const char *out_dir, const llmsq_store *s, const llmsq_config *cfg,
                                       const llmsq_ckpt_write_params *p, uint64_t max_shard_bytes)
{
    LLMSQ_ASSERT(out_dir && s && cfg && p);
    LLMSQ_ASSERT(p->format == LLMSQ_CKPT_GPTQ || p->format == LLMSQ_CKPT_AWQ ||
                 p->format == LLMSQ_CKPT_COMPRESSED_TENSORS);
    if (!out_dir[0]) return llmsq_error(LLMSQ_STATUS_ARG, "empty output directory name");
    LLMSQ_TRY(llmsq_output_dir_check(out_dir));
    json_t *manifest = NULL;
    if (p->manifest_json) {
        json_error_t jerr;
        manifest = json_loads(p->manifest_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(manifest)) {
            json_decref(manifest);
            return llmsq_error(LLMSQ_STATUS_ARG, "manifest_json is not a JSON object%s%s", manifest ? "" : ": ",
                               manifest ? "" : jerr.text);
        }
    }
    plan pl;
    memset(&pl, 0, sizeof pl);
    char *tmpdir = NULL;
    llmsq_status st = plan_store(&pl, s, cfg, p);
    if (st != LLMSQ_OK) goto out;

    size_t n = strlen(out_dir);
    while (n > 1 && out_dir[n - 1] == '/') n--; /* "out/" must give "out.tmp", not "out/.tmp" */
    if (!(tmpdir = malloc(n + 5))) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        goto out;
    }
    memcpy(tmpdir, out_dir, n);
    memcpy(tmpdir + n, ".tmp", 5);
    struct stat sb;
    if (lstat(tmpdir, &sb) == 0)
        st = S_ISDIR(sb.st_mode) ? llmsq_outdir_remove_ours(tmpdir, is_ours, "llmsq") /* left by an interrupted run */
                                 : llmsq_error(LLMSQ_STATUS_ARG, "%s exists and is not a directory; remove it", tmpdir);
    if (st == LLMSQ_OK && mkdir(tmpdir, 0755) != 0)
        st = llmsq_error(LLMSQ_STATUS_IO, "cannot create %s: %s", tmpdir, strerror(errno));
    if (st != LLMSQ_OK) goto out;

    st = write_weights(&pl, tmpdir, max_shard_bytes ? max_shard_bytes : QCKPT_MAX_SHARD);
    if (st == LLMSQ_OK) st = write_configs(&pl, tmpdir, s, cfg, p);
    if (st == LLMSQ_OK) st = copy_sources(&pl, tmpdir, p->source);
    if (st == LLMSQ_OK && manifest) st = write_manifest(&pl, tmpdir, manifest);
    if (st == LLMSQ_OK && rename(tmpdir, out_dir) != 0)
        st = llmsq_error(LLMSQ_STATUS_IO, "cannot rename %s to %s: %s", tmpdir, out_dir, strerror(errno));
    if (st != LLMSQ_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", llmsq_last_error());
        llmsq_outdir_remove_ours(tmpdir, is_ours, "llmsq");
        llmsq_error(st, "%s", msg); /* the cleanup must not replace the real error */
    }
out:
    json_decref(manifest);
    free(tmpdir);
    free_plan(&pl);
    return st;
}

llmsq_status llmsq_quantized_checkpoint_write(const char *out_dir, const llmsq_store *s, const llmsq_config *cfg,
                                              const llmsq_ckpt_write_params *p)
{
    return llmsq_qckpt_write_sharded(out_dir, s, cfg, p, QCKPT_MAX_SHARD);
}
