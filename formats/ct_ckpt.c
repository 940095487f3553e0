/* compressed-tensors pack-quantized checkpoints (FORMATS.md 4): the canonical quantized
 * linear to and from weight_packed / weight_scale / weight_shape / weight_zero_point /
 * weight_g_idx; the config side of int-quantized (W8A8) groups, whose tensors ct_int8.c
 * translates. compressed-tensors keeps signed codes and zero points and stores them plus
 * 2^(b-1), which is exactly our unsigned code and zero point, so no offset is applied here. */
#include "formats/qpack.h"
#include "formats/sparse_ckpt.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static llmsq_qckpt_tensor mk(llmsq_qckpt_kind kind, const char *suffix, llmsq_dtype dt, int ndim,
                             int64_t d0, int64_t d1)
{
    llmsq_qckpt_tensor t = {kind, suffix, dt, ndim, {d0, d1}, 0};
    t.nbytes = llmsq_dtype_nbytes(dt, ndim == 1 ? d0 : d0 * d1);
    return t;
}

int llmsq_ct_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                     llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS])
{
    const int64_t per = 32 / sc->bits, ng = q->n_groups;
    int n = 0;
    out[n++] = mk(LLMSQ_QK_CT_PACKED, "weight_packed", LLMSQ_DTYPE_I32, 2, q->out, (q->in + per - 1) / per);
    out[n++] = mk(LLMSQ_QK_CT_SCALE, "weight_scale", sc->scale_dtype, 2, q->out, ng);
    out[n++] = mk(LLMSQ_QK_CT_SHAPE, "weight_shape", LLMSQ_DTYPE_I64, 1, 2, 0);
    if (!sc->sym) out[n++] = mk(LLMSQ_QK_CT_ZERO, "weight_zero_point", LLMSQ_DTYPE_I32, 2, (q->out + per - 1) / per, ng);
    if (sc->g_idx) out[n++] = mk(LLMSQ_QK_CT_GIDX, "weight_g_idx", LLMSQ_DTYPE_I32, 1, q->in, 0);
    return n;
}

llmsq_status llmsq_ct_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q)
{
    (void)q;
    if (sc->bits != 4 && sc->bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "compressed-tensors cannot store %s: pack-quantized (W4A16/W8A16) takes 4 or 8 bits, not "
                           "%d (use GPTQ for 2- and 3-bit)", name, sc->bits);
    return LLMSQ_OK;
}

llmsq_status llmsq_ct_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q, const llmsq_qckpt_tensor *t,
                           void *dst)
{
    const int b = sc->bits;
    const int64_t out = q->out, in = q->in, ng = q->n_groups;
    uint8_t *p = dst;
    memset(dst, 0, t->nbytes);
    switch (t->kind) {
    case LLMSQ_QK_CT_PACKED: /* row o is the bit stream of its input columns, tail zero */
        for (int64_t o = 0; o < out; o++) llmsq_qpack(q->codes + o * in, 1, in, b, p + 4 * o * t->shape[1], 1);
        break;
    case LLMSQ_QK_CT_SCALE:
        for (int64_t k = 0; k < out * ng; k++) llmsq_qckpt_st_float(p, k, sc->scale_dtype, q->scales[k]);
        break;
    case LLMSQ_QK_CT_SHAPE:
        for (int i = 0; i < 8; i++) {
            p[i] = (uint8_t)((uint64_t)out >> (8 * i));
            p[8 + i] = (uint8_t)((uint64_t)in >> (8 * i));
        }
        break;
    case LLMSQ_QK_CT_ZERO: { /* packed along the output dimension: column g of [ceil(out/per), ng] */
        uint8_t *tmp = malloc((size_t)out);
        if (!tmp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory packing zero points");
        for (int64_t g = 0; g < ng; g++) {
            for (int64_t o = 0; o < out; o++) tmp[o] = (uint8_t)q->zeros[o * ng + g];
            llmsq_qpack(tmp, 1, out, b, p + 4 * g, ng);
        }
        free(tmp);
        break;
    }
    case LLMSQ_QK_CT_GIDX:
        for (int64_t i = 0; i < in; i++) llmsq_st_u32(dst, i, (uint32_t)llmsq_qlinear_group(q, i));
        break;
    default:
        LLMSQ_ASSERT(!"not a compressed-tensors tensor");
    }
    return LLMSQ_OK;
}

json_t *llmsq_ct_wrap_config(const char *format, json_t *weights, json_t *input_act, const json_t *ignore)
{
    if (!weights) {
        json_decref(input_act);
        return NULL;
    }
    if (!input_act) input_act = json_null();
    return json_pack("{s:s, s:s, s:s, s:n, s:O, s:n, s:{}, s:{s:{s:[s], s:o, s:o, s:n}}}", "quant_method",
                     "compressed-tensors", "format", format, "quantization_status", "compressed",
                     "global_compression_ratio", "ignore", ignore, "kv_cache_scheme", "sparsity_config",
                     "config_groups", "group_0", "targets", "Linear", "weights", weights, "input_activations",
                     input_act, "output_activations");
}

json_t *llmsq_ct_config(const llmsq_qckpt_scheme *sc, const json_t *ignore)
{
    if (sc->act_bits) return llmsq_ct_int8_config(sc, ignore);
    const bool channel = sc->group_size == -1;
    json_t *actorder = sc->g_idx                        ? json_string("group")
                       : sc->act_order && !channel ? json_string("weight")
                                                    : json_null();
    /* Only the long-standing QuantizationArgs keys: readers validate with extra="forbid". */
    json_t *w = json_pack("{s:i, s:s, s:b, s:s, s:o, s:b, s:o}", "num_bits", sc->bits, "type", "int", "symmetric",
                          sc->sym, "strategy", channel ? "channel" : "group", "group_size",
                          channel ? json_null() : json_integer(sc->group_size), "dynamic", 0, "actorder", actorder);
    return llmsq_ct_wrap_config("pack-quantized", w, NULL, ignore);
}

/* ---- import ------------------------------------------------------------------------------------- */

typedef struct ct_group {
    const char   *name;
    const json_t *targets;
    bool          packed;     /* pack-quantized; false: weights stored dense, or int8 */
    bool          int8;       /* int-quantized (W8A8 or int8 weight-only) */
    llmsq_ct_int8_args i8;
    int           bits;
    int64_t       group_size; /* -1: channel */
    bool          sym;
    int           actorder;   /* 0 none, 1 group (weight_g_idx), 2 weight */
} ct_group;

static llmsq_status parse_args(const char *path, ct_group *g, const json_t *w)
{
    json_t *v;
    const char *type = json_string_value(json_object_get(w, "type"));
    if (type && strcmp(type, "int") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s: weight type \"%s\" is not supported "
                           "(integer only)", path, g->name, type);
    v = json_object_get(w, "num_bits");
    g->bits = v ? (int)json_integer_value(v) : 8;
    if (g->bits != 2 && g->bits != 4 && g->bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s: num_bits %d is not supported "
                           "(pack-quantized 2, 4, 8)", path, g->name, g->bits);
    v = json_object_get(w, "symmetric");
    g->sym = !v || json_is_true(v);
    json_t *gs = json_object_get(w, "group_size");
    int64_t G = json_is_integer(gs) ? json_integer_value(gs) : 0;
    const char *strategy = json_string_value(json_object_get(w, "strategy"));
    if (!strategy) strategy = G > 0 ? "group" : G == -1 ? "channel" : "tensor";
    if (strcmp(strategy, "group") == 0 && G > 0) {
        g->group_size = G;
    } else if (strcmp(strategy, "channel") == 0) {
        g->group_size = -1;
    } else {
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s: strategy \"%s\"%s is not supported "
                           "(group or channel)", path, g->name, strategy,
                           strcmp(strategy, "group") == 0 ? " without a positive group_size" : "");
    }
    if (json_is_true(json_object_get(w, "dynamic")))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s: dynamic weight quantization",
                           path, g->name);
    v = json_object_get(w, "actorder");
    const char *ao = json_string_value(v);
    if (!v || json_is_null(v) || json_is_false(v)) g->actorder = 0;
    else if (json_is_true(v) || (ao && (strcmp(ao, "group") == 0 || strcmp(ao, "dynamic") == 0))) g->actorder = 1;
    else if (ao && (strcmp(ao, "weight") == 0 || strcmp(ao, "static") == 0)) g->actorder = 2;
    else return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors group %s: unknown actorder", path, g->name);
    return LLMSQ_OK;
}

static llmsq_status parse_group(const char *path, const char *top_format, const char *name, const json_t *v,
                                ct_group *g)
{
    memset(g, 0, sizeof *g);
    g->name = name;
    if (json_is_array(v)) { /* a preset name mapped to its targets */
        g->targets = v;
        if (strcmp(name, "W8A8") == 0 || strcmp(name, "INT8") == 0) {
            /* int8 per-channel weights, int8 dynamic per-token activations (FORMATS.md 4.6) */
            if (!top_format || strcmp(top_format, "int-quantized") != 0)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors preset scheme \"%s\" with format "
                                   "\"%s\" is not supported (int-quantized)", path, name,
                                   top_format ? top_format : "(none)");
            g->int8 = true;
            g->i8 = (llmsq_ct_int8_args){.per_tensor = false, .act_bits = 8, .act_static = false};
            return LLMSQ_OK;
        }
        g->packed = true;
        g->bits = strcmp(name, "W8A16") == 0 ? 8 : 4;
        g->group_size = g->bits == 8 ? -1 : 128;
        g->sym = strcmp(name, "W4A16_ASYM") != 0;
        if (strcmp(name, "W4A16") != 0 && strcmp(name, "W4A16_ASYM") != 0 && strcmp(name, "W8A16") != 0)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors preset scheme \"%s\" is not supported "
                               "(W4A16, W4A16_ASYM, W8A16, W8A8)", path, name);
        if (!top_format || strcmp(top_format, "pack-quantized") != 0)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors format \"%s\" is not supported "
                               "(pack-quantized only)", path, top_format ? top_format : "(none)");
        return LLMSQ_OK;
    }
    if (!json_is_object(v))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors config_groups.%s is not an object", path, name);
    g->targets = json_object_get(v, "targets");
    const char *fmt = json_string_value(json_object_get(v, "format"));
    if (!fmt) fmt = top_format;
    if (!fmt || (strcmp(fmt, "pack-quantized") != 0 && strcmp(fmt, "int-quantized") != 0 && strcmp(fmt, "dense") != 0))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors format \"%s\" (group %s) is not supported "
                           "(pack-quantized, int-quantized)", path, fmt ? fmt : "(none)", name);
    json_t *in = json_object_get(v, "input_activations"), *outa = json_object_get(v, "output_activations");
    if (strcmp(fmt, "int-quantized") == 0) {
        g->int8 = true;
        return llmsq_ct_int8_parse(path, name, json_object_get(v, "weights"), in, outa, &g->i8);
    }
    if ((in && !json_is_null(in)) || (outa && !json_is_null(outa)))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s quantizes activations "
                           "(only weight-only schemes are supported)", path, name);
    json_t *w = json_object_get(v, "weights");
    g->packed = strcmp(fmt, "pack-quantized") == 0 && w && !json_is_null(w);
    return g->packed ? parse_args(path, g, w) : LLMSQ_OK;
}

/* Python's re.match (anchored at the start) in POSIX ERE, for the patterns these configs use. */
static llmsq_status py_re_match(const char *path, const char *pat, const char *name, bool *hit)
{
    size_t n = strlen(pat);
    char *ere = malloc(3 * n + 8); /* "\d" grows to "[0-9]" */
    if (!ere) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    size_t k = 0;
    ere[k++] = '^';
    ere[k++] = '(';
    for (size_t i = 0; i < n; i++) {
        if (strncmp(pat + i, "(?:", 3) == 0) {
            ere[k++] = '(';
            i += 2;
        } else if (strncmp(pat + i, "\\d", 2) == 0) {
            memcpy(ere + k, "[0-9]", 5);
            k += 5;
            i++;
        } else {
            ere[k++] = pat[i];
        }
    }
    ere[k++] = ')';
    ere[k] = '\0';
    regex_t re;
    int rc = regcomp(&re, ere, REG_EXTENDED | REG_NOSUB);
    free(ere);
    if (rc != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors target \"re:%s\" is not a regular "
                           "expression llmsq can evaluate", path, pat);
    *hit = regexec(&re, name, 0, NULL, 0) == 0;
    regfree(&re);
    return LLMSQ_OK;
}

/* compressed-tensors prefers a module's own name over a regex over its class; among equals the
 * first group (in key order) wins. */
static llmsq_status find_group(const char *path, ct_group *groups, size_t n, const char *module, ct_group **out)
{
    *out = NULL;
    if (n == 1) {
        *out = &groups[0];
        return LLMSQ_OK;
    }
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        json_t *t;
        json_array_foreach(groups[i].targets, j, t) {
            const char *s = json_string_value(t);
            int rank = 0;
            bool hit = false;
            if (!s) continue;
            if (strcmp(s, module) == 0) rank = 3;
            else if (strncmp(s, "re:", 3) == 0) {
                LLMSQ_TRY(py_re_match(path, s + 3, module, &hit));
                rank = hit ? 2 : 0;
            } else if (strcmp(s, "Linear") == 0) rank = 1;
            if (rank > best) {
                best = rank;
                *out = &groups[i];
            }
        }
    }
    return LLMSQ_OK;
}

static llmsq_status bad(const char *path, const llmsq_tensor *t, const char *want)
{
    char got[96];
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s' (%s) is %s %s, expected %s", path,
                       t->name, t->file ? t->file : "store", llmsq_dtype_info(t->dtype)->name,
                       llmsq_shape_str(t, got, sizeof got), want);
}

static const llmsq_tensor *get(const llmsq_store *s, const char *module, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    return llmsq_store_get(s, name);
}

static llmsq_status import_one(llmsq_store *s, const char *path, const ct_group *g, const char *module)
{
    const int b = g->bits;
    const int64_t per = 32 / b;
    char want[160];
    const llmsq_tensor *wp = get(s, module, "weight_packed"), *ws = get(s, module, "weight_scale"),
                       *sh = get(s, module, "weight_shape"), *zp = get(s, module, "weight_zero_point"),
                       *gi = get(s, module, "weight_g_idx");
    const char *missing = !ws ? "weight_scale" : !sh ? "weight_shape" : !g->sym && !zp ? "weight_zero_point"
                          : g->actorder == 1 && !gi ? "weight_g_idx" : NULL;
    if (missing)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s.%s' is missing (group %s needs it)",
                           path, module, missing, g->name);
    if (sh->dtype != LLMSQ_DTYPE_I64 || sh->ndim != 1 || sh->shape[0] != 2)
        return bad(path, sh, "I64 [2]");
    const uint8_t *sb = sh->data;
    int64_t dims[2] = {0, 0};
    for (int d = 0; d < 2; d++)
        for (int i = 7; i >= 0; i--) dims[d] = (int64_t)((uint64_t)dims[d] << 8 | sb[8 * d + i]);
    const int64_t out = dims[0], in = dims[1];
    if (out <= 0 || in <= 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' holds [%lld, %lld], not a weight shape", path, sh->name,
                           (long long)out, (long long)in);
    if (wp->dtype != LLMSQ_DTYPE_I32 || wp->ndim != 2 || wp->shape[0] != out || wp->shape[1] != (in + per - 1) / per) {
        snprintf(want, sizeof want, "I32 [%lld, %lld] for weight_shape [%lld, %lld] at %d bits", (long long)out,
                 (long long)((in + per - 1) / per), (long long)out, (long long)in, b);
        return bad(path, wp, want);
    }
    const int64_t gs = g->group_size == -1 || g->group_size > in ? in : g->group_size, ng = (in + gs - 1) / gs;
    if (!(ws->dtype == LLMSQ_DTYPE_F16 || ws->dtype == LLMSQ_DTYPE_BF16 || ws->dtype == LLMSQ_DTYPE_F32) ||
        ws->ndim != 2 || ws->shape[0] != out || ws->shape[1] != ng) {
        snprintf(want, sizeof want, "float [%lld, %lld]", (long long)out, (long long)ng);
        return bad(path, ws, want);
    }
    bool zp_packed = false;
    if (!g->sym) {
        zp_packed = zp->dtype == LLMSQ_DTYPE_I32 && zp->ndim == 2 && zp->shape[0] == (out + per - 1) / per &&
                    zp->shape[1] == ng;
        bool zp_plain = zp->dtype == LLMSQ_DTYPE_I8 && zp->ndim == 2 && zp->shape[0] == out && zp->shape[1] == ng;
        if (!zp_packed && !zp_plain) {
            snprintf(want, sizeof want, "I32 [%lld, %lld] (packed) or I8 [%lld, %lld]", (long long)((out + per - 1) / per),
                     (long long)ng, (long long)out, (long long)ng);
            return bad(path, zp, want);
        }
    }
    if (g->actorder == 1 && (gi->dtype != LLMSQ_DTYPE_I32 || gi->ndim != 1 || gi->shape[0] != in)) {
        snprintf(want, sizeof want, "I32 [%lld]", (long long)in);
        return bad(path, gi, want);
    }
    llmsq_qlinear *q;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, b, gs, LLMSQ_QGRID_MINMAX, g->actorder == 1, &q));
    q->act_order = g->actorder != 0;
    llmsq_status st = llmsq_qckpt_to_f32(ws, q->scales);
    uint8_t *line = malloc((size_t)out);
    if (st == LLMSQ_OK && !line) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory importing %s", module);
    if (st != LLMSQ_OK) goto fail;
    for (int64_t o = 0; o < out; o++)
        llmsq_qunpack((const uint8_t *)wp->data + 4 * o * wp->shape[1], 1, in, b, q->codes + o * in, 1);
    for (int64_t gg = 0; gg < ng; gg++) {
        if (g->sym) {
            for (int64_t o = 0; o < out; o++) q->zeros[o * ng + gg] = 1 << (b - 1);
        } else if (zp_packed) {
            llmsq_qunpack((const uint8_t *)zp->data + 4 * gg, ng, out, b, line, 1);
            for (int64_t o = 0; o < out; o++) q->zeros[o * ng + gg] = line[o];
        } else {
            for (int64_t o = 0; o < out; o++) {
                int32_t z = (int8_t)((const uint8_t *)zp->data)[o * ng + gg] + (1 << (b - 1));
                if (z < 0 || z >= 1 << b) {
                    st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' row %lld: zero point %d outside the %d-bit range",
                                     path, zp->name, (long long)o, z - (1 << (b - 1)), b);
                    goto fail;
                }
                q->zeros[o * ng + gg] = z;
            }
        }
    }
    if (g->actorder == 1) {
        for (int64_t i = 0; i < in; i++) {
            int32_t v = (int32_t)llmsq_ld_u32(gi->data, i);
            if (v < 0 || v >= ng) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' element %lld is group %d, outside [0, %lld)", path,
                                 gi->name, (long long)i, v, (long long)ng);
                goto fail;
            }
            q->g_idx[i] = v;
        }
    }
    free(line);
    return llmsq_qckpt_put(s, module, q);
fail:
    free(line);
    llmsq_qlinear_free(q);
    return st;
}

/* int-quantized linears keep "<m>.weight" (I8) beside "<m>.weight_scale"; every I8 weight must
 * belong to an int-quantized group, since nothing else could say what its scale means. */
static llmsq_status import_int8(llmsq_store *s, const char *path, ct_group *groups, size_t ng)
{
    char **names;
    size_t n;
    LLMSQ_TRY(llmsq_qckpt_names(s, ".weight", &names, &n));
    llmsq_status st = LLMSQ_OK;
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, names[i]);
        if (t->qlinear || t->dtype != LLMSQ_DTYPE_I8) continue;
        names[i][strlen(names[i]) - strlen(".weight")] = '\0';
        ct_group *g = NULL;
        if ((st = find_group(path, groups, ng, names[i], &g)) != LLMSQ_OK) break;
        if (!g || !g->int8)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s.weight' is I8 but matches no int-quantized config "
                             "group", path, names[i]);
        else
            st = llmsq_ct_int8_import(s, path, g->name, &g->i8, names[i]);
    }
    llmsq_qckpt_free_names(names, n);
    return st;
}

/* ---- sparsity_config (FORMATS.md 4.7) --------------------------------------------------------------- */

static llmsq_status parse_sparsity(const char *path, const json_t *sp, const char **spf, int *n, int *m)
{
    *spf = NULL;
    *n = *m = 0;
    if (!sp || json_is_null(sp)) return LLMSQ_OK;
    if (!json_is_object(sp))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_config is not an object", path);
    if (json_object_size(sp) == 0) return LLMSQ_OK;
    const json_t *jf = json_object_get(sp, "format");
    const char *f = json_string_value(jf);
    if (!f)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_config has no \"format\" string", path);
    if (strcmp(f, "dense") != 0 && strcmp(f, "sparse-bitmask") != 0 && strcmp(f, "sparse-24-bitmask") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors sparsity format \"%s\" is not supported "
                           "(dense, sparse-bitmask, sparse-24-bitmask)", path, f);
    const json_t *js = json_object_get(sp, "sparsity_structure");
    if (js && !json_is_null(js) && !json_is_string(js))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_config.sparsity_structure is not a "
                           "string", path);
    if (!llmsq_sparse_parse_structure(json_string_value(js), n, m))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_structure \"%s\" is neither N:M "
                           "(0 < N < M <= 64) nor \"unstructured\"", path, json_string_value(js));
    for (const char *key = "targets"; key; key = strcmp(key, "targets") == 0 ? "ignore" : NULL) {
        const json_t *a = json_object_get(sp, key), *v;
        size_t i;
        if (a && !json_is_null(a) && !json_is_array(a))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_config.%s is not a list", path, key);
        json_array_foreach(a, i, v) if (!json_is_string(v))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors sparsity_config.%s[%zu] is not a string",
                               path, key, i);
    }
    *spf = f;
    return LLMSQ_OK;
}

/* Whether a Linear module matches a target list: its name, a "re:" regex, or "Linear". */
static llmsq_status list_matches(const char *path, const json_t *list, const char *module, bool *hit)
{
    size_t i;
    const json_t *v;
    *hit = false;
    json_array_foreach(list, i, v) {
        const char *t = json_string_value(v);
        if (strcmp(t, module) == 0 || strcmp(t, "Linear") == 0) *hit = true;
        else if (strncmp(t, "re:", 3) == 0) LLMSQ_TRY(py_re_match(path, t + 3, module, hit));
        if (*hit) return LLMSQ_OK;
    }
    return LLMSQ_OK;
}

typedef struct f32_rows {
    const float *w;
} f32_rows;

static bool f32_nz(const void *ctx, int64_t i) { return ((const f32_rows *)ctx)->w[i] != 0.0f; }

/* Every targeted linear (dense, decoded from a bitmask, or quantized: through its F32 view, one
 * at a time) keeps the recorded N:M structure. */
static llmsq_status verify_nm(llmsq_store *s, const char *path, const json_t *sp, int n, int m)
{
    const json_t *targets = json_object_get(sp, "targets"), *ignore = json_object_get(sp, "ignore");
    json_t *linear = NULL;
    if (!json_is_array(targets)) targets = linear = json_pack("[s]", "Linear");
    char **names;
    size_t cnt;
    llmsq_status st = targets ? llmsq_qckpt_names(s, ".weight", &names, &cnt)
                              : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    if (st != LLMSQ_OK) {
        json_decref(linear);
        return st;
    }
    for (size_t i = 0; i < cnt && st == LLMSQ_OK; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, names[i]);
        if (t->ndim != 2 || strstr(names[i], "embed")) continue;
        size_t len = strlen(names[i]);
        names[i][len - 7] = '\0';
        bool hit = false, ign = false;
        st = list_matches(path, targets, names[i], &hit);
        if (st == LLMSQ_OK && hit && json_is_array(ignore)) st = list_matches(path, ignore, names[i], &ign);
        names[i][len - 7] = '.';
        if (st != LLMSQ_OK || !hit || ign) continue;
        const float *W;
        if ((st = llmsq_store_get_f32(s, names[i], &W)) != LLMSQ_OK) break;
        f32_rows ctx = {W};
        int64_t row, col;
        if (!llmsq_sparse_nm_check(f32_nz, &ctx, t->shape[0], t->shape[1], n, m, &row, &col)) {
            char from[600] = "";
            const char *sfx = ".weight";
            snprintf(from, sizeof from, "%.*s.bitmask", (int)(len - strlen(sfx)), names[i]);
            bool decoded = llmsq_store_get(s, from) != NULL;
            snprintf(from, sizeof from, "%s", t->qlinear ? " (quantized: codes equal to the zero point are zeros)"
                                              : decoded ? " (decoded from its sparse bitmask)" : "");
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s'%s breaks the %d:%d sparsity of sparsity_config: row "
                             "%lld, columns %lld..%lld hold more than %d nonzeros", path, names[i], from, n, m,
                             (long long)row, (long long)col, (long long)(col + m - 1 < t->shape[1] ? col + m - 1
                                                                                                   : t->shape[1] - 1), n);
        }
        llmsq_store_release_f32(s, names[i]);
    }
    llmsq_qckpt_free_names(names, cnt);
    json_decref(linear);
    return st;
}

llmsq_status llmsq_ct_import(llmsq_store *s, const json_t *qc, const char *path)
{
    json_t *tc = json_object_get(qc, "transform_config");
    if (tc && !json_is_null(tc) && !(json_is_object(tc) && json_object_size(tc) == 0))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors transform_config (online rotations) is "
                           "not supported", path);
    json_t *sp = json_object_get(qc, "sparsity_config");
    const char *spf = NULL;
    int nm_n = 0, nm_m = 0;
    LLMSQ_TRY(parse_sparsity(path, sp, &spf, &nm_n, &nm_m));
    const char *top = json_string_value(json_object_get(qc, "format"));
    json_t *cg = json_object_get(qc, "config_groups");
    if (cg && !json_is_object(cg))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors config_groups is not an object", path);
    /* Keys in sorted order, so "first group wins" does not depend on the file's key order. */
    size_t ng = cg ? json_object_size(cg) : 0, k = 0;
    const char **keys = calloc(ng ? ng : 1, sizeof *keys);
    ct_group *groups = calloc(ng ? ng : 1, sizeof *groups);
    char **names = NULL;
    size_t n = 0;
    llmsq_status st = LLMSQ_OK;
    if (!keys || !groups) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(cg, key, v) keys[k++] = key;
    for (size_t i = 1; i < ng; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < ng && st == LLMSQ_OK; i++)
        st = parse_group(path, top, keys[i], json_object_get(cg, keys[i]), &groups[i]);
    if (st == LLMSQ_OK && ng == 0 && top && strcmp(top, "dense") != 0)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors format \"%s\" without config_groups is not "
                         "supported", path, top);
    /* The bitmask compressors replace "<m>.weight": rebuild it before anything looks for it. */
    if (st == LLMSQ_OK && spf) st = llmsq_sparse_import(s, spf, path);
    if (st != LLMSQ_OK || (st = llmsq_qckpt_names(s, ".weight_packed", &names, &n)) != LLMSQ_OK) goto out;
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        names[i][strlen(names[i]) - strlen(".weight_packed")] = '\0';
        ct_group *g = NULL;
        if ((st = find_group(path, groups, ng, names[i], &g)) != LLMSQ_OK) break;
        if (!g || !g->packed)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s.weight_packed' matches no pack-quantized config group",
                             path, names[i]);
        else
            st = import_one(s, path, g, names[i]);
    }
    if (st == LLMSQ_OK) st = import_int8(s, path, groups, ng);
    if (st == LLMSQ_OK && nm_m > 0) st = verify_nm(s, path, sp, nm_n, nm_m);
out:
    if (names) llmsq_qckpt_free_names(names, n);
    free(keys);
    free(groups);
    return st;
}
