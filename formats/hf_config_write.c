/* config.json writer (FORMATS.md 1.6-1.8): the fields transformers, vLLM, SGLang and
 * llama.cpp's converter read, in the legacy rope_theta/rope_scaling spelling that all of
 * them accept, keys sorted and indented as transformers' save_pretrained does. */
#include "formats/safetensors_write.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jb {
    json_t *root;
    bool    oom;
    int     precision; /* fewest significant digits that round-trip every real written */
} jb;

static void set(jb *b, const char *key, json_t *v)
{
    if (!v || json_object_set_new(b->root, key, v) != 0) b->oom = true;
}

/* jansson prints reals with one fixed precision; tracking the largest shortest-round-trip
 * precision keeps 1e-05 from coming out as 1.0000000000000001e-05. */
static json_t *real(jb *b, double v)
{
    char tmp[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* Whole numbers get all their digits, so rope_theta reads 500000.0 as Python writes it,
     * not 5e5. */
    if (v == floor(v) && fabs(v) < 1e16) {
        int digits = snprintf(tmp, sizeof tmp, "%.0f", fabs(v));
        if (digits > p) p = digits;
    }
    if (p > b->precision) b->precision = p;
    return json_real(v);
}

static json_t *token_id(int32_t id) { return id < 0 ? json_null() : json_integer(id); }

static const char *default_arch_name(llmsq_arch a)
{
    switch (a) {
    case LLMSQ_ARCH_LLAMA:   return "LlamaForCausalLM";
    case LLMSQ_ARCH_MISTRAL: return "MistralForCausalLM";
    case LLMSQ_ARCH_QWEN2:   return "Qwen2ForCausalLM";
    case LLMSQ_ARCH_QWEN3:   return "Qwen3ForCausalLM";
    default:                 return NULL;
    }
}

static const char *model_type(llmsq_arch a)
{
    switch (a) {
    case LLMSQ_ARCH_LLAMA:   return "llama";
    case LLMSQ_ARCH_MISTRAL: return "mistral";
    case LLMSQ_ARCH_QWEN2:   return "qwen2";
    case LLMSQ_ARCH_QWEN3:   return "qwen3";
    default:                 return NULL;
    }
}

/* Each architecture's config class has a fixed set of bias and norm switches; a config
 * that needs one it lacks cannot be written truthfully. */
static llmsq_status check_arch_flags(const char *path, const llmsq_config *c)
{
    const char *why = NULL;
    switch (c->arch) {
    case LLMSQ_ARCH_LLAMA:
        if (c->qkv_bias != c->o_bias) why = "attention_bias covers q/k/v and o_proj together";
        else if (c->qk_norm) why = "llama has no q/k norm";
        break;
    case LLMSQ_ARCH_MISTRAL:
        if (c->qkv_bias || c->o_bias || c->mlp_bias) why = "mistral has no biases";
        else if (c->qk_norm) why = "mistral has no q/k norm";
        break;
    case LLMSQ_ARCH_QWEN2:
        if (!c->qkv_bias || c->o_bias || c->mlp_bias)
            why = "qwen2 has q/k/v biases and no other biases";
        else if (c->qk_norm) why = "qwen2 has no q/k norm";
        break;
    case LLMSQ_ARCH_QWEN3:
        if (c->qkv_bias != c->o_bias) why = "attention_bias covers q/k/v and o_proj together";
        else if (c->mlp_bias) why = "qwen3 has no mlp bias";
        else if (!c->qk_norm) why = "qwen3 always has q/k norm";
        break;
    default:
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: cannot write architecture %d", path,
                           (int)c->arch);
    }
    if (why) return llmsq_error(LLMSQ_STATUS_ARG, "%s: config not expressible: %s", path, why);
    return LLMSQ_OK;
}

static llmsq_status check_finite(const char *path, const llmsq_config *c)
{
    const double v[] = {c->rms_eps, c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                        c->rope_high_freq_factor};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!isfinite(v[i]))
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: non-finite rope/eps value in config", path);
    return LLMSQ_OK;
}

static json_t *rope_scaling(jb *b, const llmsq_config *c)
{
    if (c->rope_type == LLMSQ_ROPE_DEFAULT) return json_null();
    json_t *o = json_object();
    if (!o) return NULL;
    jb sub = {o, false, b->precision};
    set(&sub, "factor", real(&sub, c->rope_factor));
    if (c->rope_type == LLMSQ_ROPE_LINEAR) {
        set(&sub, "rope_type", json_string("linear"));
    } else {
        set(&sub, "rope_type", json_string("llama3"));
        set(&sub, "low_freq_factor", real(&sub, c->rope_low_freq_factor));
        set(&sub, "high_freq_factor", real(&sub, c->rope_high_freq_factor));
        set(&sub, "original_max_position_embeddings", json_integer(c->rope_original_max_position));
    }
    b->precision = sub.precision;
    if (sub.oom) {
        json_decref(o);
        return NULL;
    }
    return o;
}

llmsq_status llmsq_hf_config_write(const char *path, const llmsq_config *cfg, const char *torch_dtype)
{
    LLMSQ_ASSERT(path != NULL && cfg != NULL && torch_dtype != NULL);
    if (strcmp(torch_dtype, "float32") != 0 && strcmp(torch_dtype, "bfloat16") != 0 &&
        strcmp(torch_dtype, "float16") != 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: torch_dtype \"%s\" is not float32, bfloat16 or float16",
                           path, torch_dtype);
    LLMSQ_TRY(llmsq_config_validate(cfg, path));
    LLMSQ_TRY(check_arch_flags(path, cfg));
    LLMSQ_TRY(check_finite(path, cfg));
    if (cfg->rope_type != LLMSQ_ROPE_DEFAULT && cfg->rope_type != LLMSQ_ROPE_LINEAR &&
        cfg->rope_type != LLMSQ_ROPE_LLAMA3)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: cannot write rope type %d", path,
                           (int)cfg->rope_type);

    jb b = {json_object(), false, 1};
    if (!b.root) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    const llmsq_arch a = cfg->arch;
    const char *arch_name = cfg->arch_name[0] ? cfg->arch_name : default_arch_name(a);

    json_t *archs = json_array();
    if (!archs || json_array_append_new(archs, json_string(arch_name)) != 0) b.oom = true;
    set(&b, "architectures", archs);
    set(&b, "model_type", json_string(model_type(a)));
    set(&b, "vocab_size", json_integer(cfg->vocab_size));
    set(&b, "hidden_size", json_integer(cfg->hidden_size));
    set(&b, "intermediate_size", json_integer(cfg->intermediate_size));
    set(&b, "num_hidden_layers", json_integer(cfg->n_layers));
    set(&b, "num_attention_heads", json_integer(cfg->n_heads));
    set(&b, "num_key_value_heads", json_integer(cfg->n_kv_heads));
    set(&b, "head_dim", json_integer(cfg->head_dim));
    set(&b, "hidden_act", json_string("silu"));
    set(&b, "max_position_embeddings", json_integer(cfg->max_position));
    set(&b, "rms_norm_eps", real(&b, cfg->rms_eps));
    set(&b, "rope_theta", real(&b, cfg->rope_theta));
    set(&b, "rope_scaling", rope_scaling(&b, cfg));
    set(&b, "tie_word_embeddings", json_boolean(cfg->tie_embeddings));
    set(&b, "bos_token_id", token_id(cfg->bos_id));
    set(&b, "eos_token_id", token_id(cfg->eos_id));
    set(&b, "torch_dtype", json_string(torch_dtype));
    set(&b, "attention_dropout", real(&b, 0.0));
    set(&b, "initializer_range", real(&b, 0.02));
    set(&b, "use_cache", json_true());

    switch (a) {
    case LLMSQ_ARCH_LLAMA:
        set(&b, "attention_bias", json_boolean(cfg->qkv_bias));
        set(&b, "mlp_bias", json_boolean(cfg->mlp_bias));
        set(&b, "pretraining_tp", json_integer(1));
        break;
    case LLMSQ_ARCH_MISTRAL:
        /* null means the whole context; an absent key would mean the class default, 4096. */
        set(&b, "sliding_window", cfg->sliding_window > 0 ? json_integer(cfg->sliding_window) : json_null());
        break;
    case LLMSQ_ARCH_QWEN2:
        set(&b, "use_sliding_window", json_false());
        set(&b, "sliding_window", json_integer(cfg->max_position));
        set(&b, "max_window_layers", json_integer(cfg->n_layers));
        break;
    case LLMSQ_ARCH_QWEN3:
        set(&b, "attention_bias", json_boolean(cfg->qkv_bias));
        set(&b, "use_sliding_window", json_false());
        set(&b, "sliding_window", json_null());
        set(&b, "max_window_layers", json_integer(cfg->n_layers));
        break;
    default:
        break;
    }

    llmsq_status s = LLMSQ_OK;
    char *text = NULL;
    if (!b.oom)
        text = json_dumps(b.root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(b.precision));
    if (!text) {
        s = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory building config.json", path);
    } else {
        size_t n = strlen(text);
        char *withnl = realloc(text, n + 2);
        if (!withnl) {
            s = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
        } else {
            text = withnl;
            text[n] = '\n';
            text[n + 1] = '\0';
            s = llmsq_fmt_write_atomic(path, text, n + 1);
        }
    }
    free(text);
    json_decref(b.root);
    return s;
}
