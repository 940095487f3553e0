/* Hugging Face config.json reader for the Llama family (FORMATS.md 1.6-1.8). */
#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    llmsq_arch  arch;
} k_archs[] = {
    {"LlamaForCausalLM", LLMSQ_ARCH_LLAMA},
    {"MistralForCausalLM", LLMSQ_ARCH_MISTRAL},
    {"Qwen2ForCausalLM", LLMSQ_ARCH_QWEN2},
    {"Qwen3ForCausalLM", LLMSQ_ARCH_QWEN3},
};

/* Reads an integer field; absent -> def (or an error when def < 0 means required). */
static llmsq_status get_int(json_t *root, const char *path, const char *key, int64_t def, bool required,
                            int64_t *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing required field \"%s\"", path, key);
        *out = def;
        return LLMSQ_OK;
    }
    if (!json_is_integer(v))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: field \"%s\" must be an integer", path, key);
    *out = json_integer_value(v);
    return LLMSQ_OK;
}

static llmsq_status get_num(json_t *root, const char *path, const char *key, double def, double *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return LLMSQ_OK;
    }
    if (!json_is_number(v)) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: field \"%s\" must be a number", path, key);
    *out = json_number_value(v);
    return LLMSQ_OK;
}

static llmsq_status get_bool(json_t *root, const char *path, const char *key, bool def, bool *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return LLMSQ_OK;
    }
    if (!json_is_boolean(v)) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: field \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return LLMSQ_OK;
}

/* bos/eos may be an int, a list (first entry is used) or null. */
static int32_t get_token_id(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

static llmsq_status parse_rope_scaling(json_t *rs, const char *path, llmsq_config *c)
{
    if (!rs || json_is_null(rs)) return LLMSQ_OK;
    if (!json_is_object(rs)) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rope_scaling must be an object or null", path);
    json_t *t = json_object_get(rs, "rope_type");
    if (!t) t = json_object_get(rs, "type");
    if (!json_is_string(t)) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rope_scaling has no rope_type", path);
    const char *type = json_string_value(t);
    if (strcmp(type, "default") == 0) return LLMSQ_OK;
    LLMSQ_TRY(get_num(rs, path, "factor", NAN, &c->rope_factor));
    if (!(c->rope_factor >= 1.0))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: rope_scaling.factor must be a number >= 1", path);
    if (strcmp(type, "linear") == 0) {
        c->rope_type = LLMSQ_ROPE_LINEAR;
        return LLMSQ_OK;
    }
    if (strcmp(type, "llama3") == 0) {
        c->rope_type = LLMSQ_ROPE_LLAMA3;
        LLMSQ_TRY(get_num(rs, path, "low_freq_factor", 1.0, &c->rope_low_freq_factor));
        LLMSQ_TRY(get_num(rs, path, "high_freq_factor", 4.0, &c->rope_high_freq_factor));
        LLMSQ_TRY(get_int(rs, path, "original_max_position_embeddings", 8192, false, &c->rope_original_max_position));
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_original_max_position <= 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: llama3 rope_scaling needs high_freq_factor > low_freq_factor", path);
        return LLMSQ_OK;
    }
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: rope_scaling type \"%s\" is not supported (linear, llama3)", path,
                       type);
}

llmsq_status llmsq_hf_config_read(const char *path, llmsq_config *c)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (!llmsq_is_file(path)) return llmsq_error(LLMSQ_STATUS_IO, "%s: cannot open", path);
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: invalid JSON at line %d column %d: %s", path, jerr.line,
                           jerr.column, jerr.text);
    }
    llmsq_status st = LLMSQ_OK;
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    json_t *archs = json_object_get(root, "architectures");
    const char *an = json_string_value(json_array_get(archs, 0));
    if (!an) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing \"architectures\" list", path);
        goto done;
    }
    size_t k = 0;
    while (k < sizeof k_archs / sizeof *k_archs && strcmp(k_archs[k].name, an) != 0) k++;
    if (k == sizeof k_archs / sizeof *k_archs) {
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                         "%s: unknown architecture \"%s\" (supported: LlamaForCausalLM, MistralForCausalLM, "
                         "Qwen2ForCausalLM, Qwen3ForCausalLM)",
                         path, an);
        goto done;
    }
    c->arch = k_archs[k].arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", an);

#define TRY_(e) do { st = (e); if (st != LLMSQ_OK) goto done; } while (0)
    TRY_(get_int(root, path, "vocab_size", 0, true, &c->vocab_size));
    TRY_(get_int(root, path, "hidden_size", 0, true, &c->hidden_size));
    TRY_(get_int(root, path, "intermediate_size", 0, true, &c->intermediate_size));
    TRY_(get_int(root, path, "num_hidden_layers", 0, true, &c->n_layers));
    TRY_(get_int(root, path, "num_attention_heads", 0, true, &c->n_heads));
    TRY_(get_int(root, path, "num_key_value_heads", c->n_heads, false, &c->n_kv_heads));
    TRY_(get_int(root, path, "head_dim", c->n_heads > 0 ? c->hidden_size / c->n_heads : 0, false, &c->head_dim));
    TRY_(get_int(root, path, "max_position_embeddings", 2048, false, &c->max_position));
    TRY_(get_num(root, path, "rms_norm_eps", 1e-6, &c->rms_eps));
    TRY_(get_num(root, path, "rope_theta", 10000.0, &c->rope_theta));
    c->rope_type = LLMSQ_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    TRY_(parse_rope_scaling(json_object_get(root, "rope_scaling"), path, c));
    /* transformers' default for tie_word_embeddings is false for these classes. */
    TRY_(get_bool(root, path, "tie_word_embeddings", false, &c->tie_embeddings));
    bool attn_bias = false;
    TRY_(get_bool(root, path, "attention_bias", false, &attn_bias));
    TRY_(get_bool(root, path, "mlp_bias", false, &c->mlp_bias));
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu)", path,
                         json_is_string(act) ? json_string_value(act) : "?");
        goto done;
    }
#undef TRY_
    switch (c->arch) {
    case LLMSQ_ARCH_QWEN2:
        c->qkv_bias = true; /* always, no flag */
        break;
    case LLMSQ_ARCH_QWEN3:
        c->qk_norm = true;
        c->qkv_bias = c->o_bias = attn_bias;
        break;
    case LLMSQ_ARCH_LLAMA:
        c->qkv_bias = c->o_bias = attn_bias;
        break;
    default:
        c->mlp_bias = false;
        break;
    }
    /* Mistral attends within sliding_window; Qwen2/3 only when use_sliding_window is set. */
    if (c->arch == LLMSQ_ARCH_MISTRAL) {
        /* absent: MistralConfig's default of 4096; null: no window */
        json_t *sw = json_object_get(root, "sliding_window");
        if (!sw) c->sliding_window = 4096;
        else st = get_int(root, path, "sliding_window", 0, false, &c->sliding_window);
    } else if (c->arch == LLMSQ_ARCH_QWEN2 || c->arch == LLMSQ_ARCH_QWEN3) {
        bool use = false;
        st = get_bool(root, path, "use_sliding_window", false, &use);
        if (st == LLMSQ_OK && use) {
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                             "%s: use_sliding_window with max_window_layers is not supported yet", path);
        }
    }
    if (st != LLMSQ_OK) goto done;
    if (c->sliding_window < 0) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: sliding_window must be positive or null", path);
        goto done;
    }
    c->bos_id = get_token_id(root, "bos_token_id");
    c->eos_id = get_token_id(root, "eos_token_id");
    st = llmsq_config_validate(c, path);
done:
    json_decref(root);
    return st;
}
