/* compressed-tensors "int-quantized" (W8A8-int8, FORMATS.md 4.2-4.6): the canonical quantized
 * linear with act_bits 8 to and from
 *
 *     <m>.weight        I8 [out, in]        signed code = canonical code - 128
 *     <m>.weight_scale  float [out, 1]      per output channel ([1] for strategy "tensor")
 *     <m>.input_scale   float [1]           static per-tensor activation scale only
 *
 * compressed-tensors' symmetric int8 has zero point 0 on the signed code, which is our unsigned
 * code with zero point 128: the grid is LLMSQ_QGRID_ABSMAX, one group per row. */
#include "formats/qpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static llmsq_qckpt_tensor mk(llmsq_qckpt_kind kind, const char *suffix, llmsq_dtype dt, int ndim, int64_t d0,
                             int64_t d1)
{
    llmsq_qckpt_tensor t = {kind, suffix, dt, ndim, {d0, d1}, 0};
    t.nbytes = llmsq_dtype_nbytes(dt, ndim == 1 ? d0 : d0 * d1);
    return t;
}

int llmsq_ct_int8_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                          llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS])
{
    int n = 0;
    out[n++] = mk(LLMSQ_QK_I8_WEIGHT, "weight", LLMSQ_DTYPE_I8, 2, q->out, q->in);
    out[n++] = mk(LLMSQ_QK_I8_SCALE, "weight_scale", sc->scale_dtype, 2, q->out, 1);
    if (sc->act_static) out[n++] = mk(LLMSQ_QK_I8_INPUT_SCALE, "input_scale", sc->scale_dtype, 1, 1, 0);
    return n;
}

static bool exact_in(llmsq_dtype dt, float v)
{
    if (dt == LLMSQ_DTYPE_F16) return llmsq_f16_to_f32(llmsq_f32_to_f16(v)) == v;
    if (dt == LLMSQ_DTYPE_BF16) return llmsq_bf16_to_f32(llmsq_f32_to_bf16(v)) == v;
    return true;
}

llmsq_status llmsq_ct_int8_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q)
{
    const char *why = "compressed-tensors int-quantized (W8A8) cannot store";
    if (q->act_bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: act_bits %d (int8 activations only; a checkpoint holds one "
                           "scheme, weight-only linears cannot sit beside W8A8 ones)", why, name, q->act_bits);
    if (q->bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: %d-bit weights (int8 only)", why, name, q->bits);
    if (q->n_groups != 1)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: %lld groups per row (group_size %lld < in %lld); W8A8 "
                           "weights are per channel", why, name, (long long)q->n_groups, (long long)q->group_size,
                           (long long)q->in);
    for (int64_t o = 0; o < q->out; o++)
        if (q->zeros[o] != 128)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: row %lld has zero point %d; int-quantized weights are "
                               "symmetric (zero point 128 on the unsigned code)", why, name, (long long)o, q->zeros[o]);
    if (q->act_static != sc->act_static)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: %s activation scales while other linears use %s ones (one "
                           "config group per checkpoint)", why, name, q->act_static ? "static" : "dynamic",
                           sc->act_static ? "static" : "dynamic");
    if (q->act_static && (!isfinite(q->act_scale) || q->act_scale <= 0 || !exact_in(sc->scale_dtype, q->act_scale)))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s %s: static activation scale %.9g is not a positive %s value",
                           why, name, (double)q->act_scale, llmsq_dtype_info(sc->scale_dtype)->name);
    return LLMSQ_OK;
}

llmsq_status llmsq_ct_int8_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q, const llmsq_qckpt_tensor *t,
                                void *dst)
{
    uint8_t *p = dst;
    switch (t->kind) {
    case LLMSQ_QK_I8_WEIGHT: /* two's complement byte of code - 128 */
        for (int64_t k = 0; k < q->out * q->in; k++) p[k] = (uint8_t)(q->codes[k] ^ 0x80);
        break;
    case LLMSQ_QK_I8_SCALE:
        for (int64_t o = 0; o < q->out; o++) llmsq_qckpt_st_float(p, o, sc->scale_dtype, q->scales[o]);
        break;
    case LLMSQ_QK_I8_INPUT_SCALE:
        llmsq_qckpt_st_float(p, 0, sc->scale_dtype, q->act_scale);
        break;
    default:
        LLMSQ_ASSERT(!"not an int-quantized tensor");
    }
    return LLMSQ_OK;
}

json_t *llmsq_ct_int8_config(const llmsq_qckpt_scheme *sc, const json_t *ignore)
{
    /* Only the long-standing QuantizationArgs keys (readers validate with extra="forbid"). */
    json_t *w = json_pack("{s:i, s:s, s:b, s:s, s:n, s:b, s:n}", "num_bits", 8, "type", "int", "symmetric", 1,
                          "strategy", "channel", "group_size", "dynamic", 0, "actorder");
    json_t *in = json_pack("{s:i, s:s, s:b, s:s, s:b}", "num_bits", 8, "type", "int", "symmetric", 1, "strategy",
                           sc->act_static ? "tensor" : "token", "dynamic", !sc->act_static);
    if (!in) {
        json_decref(w);
        return NULL;
    }
    return llmsq_ct_wrap_config("int-quantized", w, in, ignore);
}

/* ---- import ------------------------------------------------------------------------------------- */

/* "type", "num_bits", "symmetric" of one QuantizationArgs object, with the library's defaults
 * (int, 8, symmetric); `what` names the object in messages. */
static llmsq_status want_sym_int8(const char *path, const char *group, const char *what, const json_t *a)
{
    if (!json_is_object(a))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors group %s: %s is not an object", path, group, what);
    const json_t *jt = json_object_get(a, "type"), *jb = json_object_get(a, "num_bits"), *js = json_object_get(a, "symmetric");
    const char *type = jt && !json_is_null(jt) ? json_string_value(jt) : "int";
    if (!type || strcmp(type, "int") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: %s type \"%s\" is not "
                           "supported (int only)", path, group, what, type ? type : "(not a string)");
    json_int_t bits = jb && !json_is_null(jb) ? (json_is_integer(jb) ? json_integer_value(jb) : -1) : 8;
    if (bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: %s num_bits %lld is "
                           "not supported (int8 only)", path, group, what, (long long)bits);
    if (js && !json_is_null(js) && !json_is_true(js))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: asymmetric %s (zero "
                           "points) are not supported (symmetric only)", path, group, what);
    return LLMSQ_OK;
}

static const char *strategy_of(const json_t *a)
{
    const json_t *v = json_object_get(a, "strategy");
    if (v && !json_is_null(v)) return json_is_string(v) ? json_string_value(v) : "(not a string)";
    /* The library infers it from group_size: null -> tensor, -1 -> channel, > 0 -> group. */
    const json_t *g = json_object_get(a, "group_size");
    json_int_t G = json_is_integer(g) ? json_integer_value(g) : 0;
    return G > 0 ? "group" : G == -1 ? "channel" : "tensor";
}

llmsq_status llmsq_ct_int8_parse(const char *path, const char *group, const json_t *weights, const json_t *input_act,
                                 const json_t *output_act, llmsq_ct_int8_args *a)
{
    memset(a, 0, sizeof *a);
    if (!weights || json_is_null(weights))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors int-quantized group %s has no weights", path, group);
    LLMSQ_TRY(want_sym_int8(path, group, "weights", weights));
    const char *ws = strategy_of(weights);
    if (strcmp(ws, "channel") != 0 && strcmp(ws, "tensor") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: weight strategy \"%s\" "
                           "is not supported (channel or tensor)", path, group, ws);
    if (json_is_true(json_object_get(weights, "dynamic")))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: dynamic weight "
                           "quantization is not supported", path, group);
    a->per_tensor = strcmp(ws, "tensor") == 0;
    if (output_act && !json_is_null(output_act))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors group %s quantizes output activations (not "
                           "supported)", path, group);
    if (!input_act || json_is_null(input_act)) return LLMSQ_OK; /* int8 weight-only */
    LLMSQ_TRY(want_sym_int8(path, group, "input_activations", input_act));
    const char *is = strategy_of(input_act);
    const json_t *dyn = json_object_get(input_act, "dynamic");
    const bool dynamic = json_is_true(dyn);
    if (dyn && !json_is_boolean(dyn) && !json_is_null(dyn))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: input_activations "
                           "dynamic is neither true nor false", path, group);
    if (strcmp(is, "token") == 0 && dynamic) {
        a->act_static = false;
    } else if (strcmp(is, "tensor") == 0 && !dynamic) {
        a->act_static = true;
    } else {
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: compressed-tensors int-quantized group %s: input_activations "
                           "strategy \"%s\" with dynamic %s is not supported (token dynamic, or tensor static)", path,
                           group, is, dynamic ? "true" : "false");
    }
    a->act_bits = 8;
    return LLMSQ_OK;
}

static llmsq_status bad(const char *path, const llmsq_tensor *t, const char *want)
{
    char got[96];
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s' (%s) is %s %s, expected %s", path,
                       t->name, t->file ? t->file : "store", llmsq_dtype_info(t->dtype)->name,
                       llmsq_shape_str(t, got, sizeof got), want);
}

static bool is_float(llmsq_dtype dt)
{
    return dt == LLMSQ_DTYPE_F16 || dt == LLMSQ_DTYPE_BF16 || dt == LLMSQ_DTYPE_F32;
}

/* A one-element tensor: shape [] or [1] (or [1, 1]), as writers spell a per-tensor scale. */
static bool one_element(const llmsq_tensor *t)
{
    return t->ndim <= 2 && llmsq_tensor_numel(t) == 1;
}

llmsq_status llmsq_ct_int8_import(llmsq_store *s, const char *path, const char *group, const llmsq_ct_int8_args *a,
                                  const char *module)
{
    char name[512], want[160];
    snprintf(name, sizeof name, "%s.weight_scale", module);
    const llmsq_tensor *ws = llmsq_store_get(s, name);
    snprintf(name, sizeof name, "%s.input_scale", module);
    const llmsq_tensor *is = llmsq_store_get(s, name);
    snprintf(name, sizeof name, "%s.weight", module);
    const llmsq_tensor *w = llmsq_store_get(s, name);
    const char *missing = !ws ? "weight_scale" : a->act_static && !is ? "input_scale" : NULL;
    if (missing)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s.%s' is missing (group %s needs it)",
                           path, module, missing, group);
    if (w->dtype != LLMSQ_DTYPE_I8 || w->ndim != 2 || w->shape[0] <= 0 || w->shape[1] <= 0)
        return bad(path, w, "I8 [out, in]");
    const int64_t out = w->shape[0], in = w->shape[1];
    if (!is_float(ws->dtype) || (a->per_tensor ? !one_element(ws) : ws->ndim != 2 || ws->shape[0] != out || ws->shape[1] != 1)) {
        if (a->per_tensor) snprintf(want, sizeof want, "float [1] (weight strategy tensor)");
        else snprintf(want, sizeof want, "float [%lld, 1] (weight strategy channel)", (long long)out);
        return bad(path, ws, want);
    }
    if (a->act_static && (!is_float(is->dtype) || !one_element(is))) return bad(path, is, "float [1]");
    float act_scale = 0;
    if (a->act_static) {
        LLMSQ_TRY(llmsq_qckpt_to_f32(is, &act_scale));
        if (!isfinite(act_scale) || act_scale <= 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' holds %g, not a positive activation scale", path,
                               is->name, (double)act_scale);
    }
    llmsq_qlinear *q;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, 8, in, LLMSQ_QGRID_ABSMAX, false, &q));
    llmsq_status st = llmsq_qckpt_to_f32(ws, q->scales);
    if (st != LLMSQ_OK) {
        llmsq_qlinear_free(q);
        return st;
    }
    if (a->per_tensor)
        for (int64_t o = 1; o < out; o++) q->scales[o] = q->scales[0];
    const uint8_t *src = w->data;
    for (int64_t k = 0; k < out * in; k++) q->codes[k] = (uint8_t)(src[k] ^ 0x80);
    for (int64_t o = 0; o < out; o++) q->zeros[o] = 128;
    q->act_bits = a->act_bits;
    q->act_static = a->act_static;
    q->act_scale = act_scale;
    /* Replaces the I8 tensor of the same name (its mapping stays with the store's file). */
    return llmsq_qckpt_put_as(s, module, q);
}
