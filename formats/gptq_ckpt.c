/* GPTQ checkpoints (FORMATS.md 2): the canonical quantized linear to and from the
 * qweight / qzeros / scales / g_idx tensor group, v1 (stored zero = z - 1) on write, v1 or v2
 * on read. */
#include "formats/qpack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values per packing unit along a packed dimension: 3-bit packs 32 values into 3 words. */
static int64_t pack_unit(int bits) { return bits == 3 ? 32 : 32 / bits; }

static llmsq_qckpt_tensor mk(llmsq_qckpt_kind kind, const char *suffix, llmsq_dtype dt, int ndim,
                             int64_t d0, int64_t d1)
{
    llmsq_qckpt_tensor t = {kind, suffix, dt, ndim, {d0, d1}, 0};
    t.nbytes = llmsq_dtype_nbytes(dt, ndim == 1 ? d0 : d0 * d1);
    return t;
}

int llmsq_gptq_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                       llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS])
{
    const int b = sc->bits;
    out[0] = mk(LLMSQ_QK_GPTQ_QWEIGHT, "qweight", LLMSQ_DTYPE_I32, 2, q->in * b / 32, q->out);
    out[1] = mk(LLMSQ_QK_GPTQ_QZEROS, "qzeros", LLMSQ_DTYPE_I32, 2, q->n_groups, q->out * b / 32);
    out[2] = mk(LLMSQ_QK_GPTQ_SCALES, "scales", LLMSQ_DTYPE_F16, 2, q->n_groups, q->out);
    out[3] = mk(LLMSQ_QK_GPTQ_GIDX, "g_idx", LLMSQ_DTYPE_I32, 1, q->in, 0);
    return 4;
}

llmsq_status llmsq_gptq_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q)
{
    const int64_t unit = pack_unit(sc->bits);
    if (q->in % unit)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "GPTQ cannot store %s: %d-bit qweight packs %lld input features per unit and "
                           "in_features = %lld is not a multiple (keep it in float or use compressed-tensors)",
                           name, sc->bits, (long long)unit, (long long)q->in);
    if (q->out % unit)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "GPTQ cannot store %s: %d-bit qzeros packs %lld output features per unit and "
                           "out_features = %lld is not a multiple (keep it in float or use compressed-tensors)",
                           name, sc->bits, (long long)unit, (long long)q->out);
    for (int64_t k = 0; k < q->out * q->n_groups; k++)
        if (q->zeros[k] < 1)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                               "GPTQ v1 cannot store %s: row %lld group %lld has zero point %d, and v1 "
                               "stores zero - 1 (quantize with zero_min_one, or a symmetric grid)",
                               name, (long long)(k / q->n_groups), (long long)(k % q->n_groups), q->zeros[k]);
    return LLMSQ_OK;
}

llmsq_status llmsq_gptq_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q, const llmsq_qckpt_tensor *t,
                             void *dst)
{
    const int b = sc->bits;
    const int64_t out = q->out, in = q->in, ng = q->n_groups;
    memset(dst, 0, t->nbytes);
    switch (t->kind) {
    case LLMSQ_QK_GPTQ_QWEIGHT: /* column o is the bit stream of input rows 0..in-1 */
        for (int64_t o = 0; o < out; o++) llmsq_qpack(q->codes + o * in, 1, in, b, (uint8_t *)dst + 4 * o, out);
        break;
    case LLMSQ_QK_GPTQ_QZEROS: {
        const int64_t words = out * b / 32;
        uint8_t *tmp = malloc((size_t)out);
        if (!tmp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory packing qzeros");
        for (int64_t g = 0; g < ng; g++) {
            for (int64_t o = 0; o < out; o++) tmp[o] = (uint8_t)(q->zeros[o * ng + g] - 1);
            llmsq_qpack(tmp, 1, out, b, (uint8_t *)dst + 4 * g * words, 1);
        }
        free(tmp);
        break;
    }
    case LLMSQ_QK_GPTQ_SCALES: {
        uint8_t *p = dst;
        for (int64_t g = 0; g < ng; g++)
            for (int64_t o = 0; o < out; o++) {
                uint16_t h = llmsq_f32_to_f16(q->scales[o * ng + g]);
                p[2 * (g * out + o)] = (uint8_t)h;
                p[2 * (g * out + o) + 1] = (uint8_t)(h >> 8);
            }
        break;
    }
    case LLMSQ_QK_GPTQ_GIDX:
        for (int64_t i = 0; i < in; i++) llmsq_st_u32(dst, i, (uint32_t)llmsq_qlinear_group(q, i));
        break;
    default:
        LLMSQ_ASSERT(!"not a GPTQ tensor");
    }
    return LLMSQ_OK;
}

json_t *llmsq_gptq_config(const llmsq_qckpt_scheme *sc, const llmsq_quant_params *qp, bool true_sequential,
                          bool lm_head, const json_t *in_block)
{
    json_t *o = json_pack("{s:s, s:i, s:I, s:b, s:b, s:b, s:f, s:b, s:s, s:b}", "quant_method", "gptq", "bits",
                          sc->bits, "group_size", (json_int_t)sc->group_size, "desc_act", sc->act_order, "sym",
                          sc->sym, "true_sequential", true_sequential, "damp_percent", qp ? qp->damp : 0.01,
                          "static_groups", qp ? qp->static_groups : false, "checkpoint_format", "gptq",
                          "lm_head", lm_head);
    if (o && in_block) {
        json_t *outer = json_array();
        if (!outer || json_array_append(outer, (json_t *)in_block) != 0) {
            json_decref(outer);
            json_decref(o);
            return NULL;
        }
        if (json_object_set_new(o, "modules_in_block_to_quantize", outer) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- import ----------------------------------------------------------------------------------- */

typedef struct gq_cfg {
    const char *path;
    int         bits;
    int64_t     group_size; /* -1: per channel */
    bool        v2, desc_act;
} gq_cfg;

static llmsq_status parse_cfg(const json_t *qc, const char *path, gq_cfg *c)
{
    c->path = path;
    json_t *jb = json_object_get(qc, "bits"), *jg = json_object_get(qc, "group_size");
    if (!json_is_integer(jb))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: GPTQ quantization_config needs an integer \"bits\"", path);
    json_int_t bits = json_integer_value(jb);
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: GPTQ bits %lld (supported: 2, 3, 4, 8)", path,
                           (long long)bits);
    c->bits = (int)bits;
    c->group_size = jg ? (json_is_integer(jg) ? json_integer_value(jg) : 0) : -1;
    if (c->group_size == 0 || c->group_size < -1)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: GPTQ \"group_size\" must be a positive integer or -1", path);
    c->desc_act = json_is_true(json_object_get(qc, "desc_act"));
    /* GPTQModel spells the zero-point convention "format"; everyone else "checkpoint_format". */
    json_t *jf = json_object_get(qc, "checkpoint_format");
    if (!jf) jf = json_object_get(qc, "format");
    const char *fmt = json_is_string(jf) ? json_string_value(jf) : jf && !json_is_null(jf) ? "(not a string)" : "gptq";
    if (strcmp(fmt, "gptq") != 0 && strcmp(fmt, "gptq_v2") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "%s: GPTQ checkpoint_format \"%s\" is not supported (only \"gptq\" and \"gptq_v2\")", path, fmt);
    c->v2 = strcmp(fmt, "gptq_v2") == 0;
    json_t *pd = json_object_get(qc, "pack_dtype");
    if (pd && !(json_is_string(pd) && strcmp(json_string_value(pd), "int32") == 0))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: GPTQ pack_dtype other than \"int32\" is not supported", path);
    /* Per-module overrides can change bits or group size per linear: reading them with the
     * global values would misread the codes. */
    json_t *dyn = json_object_get(qc, "dynamic");
    if (dyn && !json_is_null(dyn) && !(json_is_object(dyn) && json_object_size(dyn) == 0))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: GPTQ \"dynamic\" per-module overrides are not supported", path);
    return LLMSQ_OK;
}

static const llmsq_tensor *need(const llmsq_store *s, const gq_cfg *c, const char *prefix, const char *suffix,
                                bool required, llmsq_status *st)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t && required)
        *st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: GPTQ tensor '%s' is missing (%s.qweight needs it)", c->path,
                          name, prefix);
    return t;
}

static llmsq_status bad_shape(const gq_cfg *c, const llmsq_tensor *t, const char *want)
{
    char got[96];
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: GPTQ tensor '%s' (%s) is %s %s, expected %s", c->path, t->name,
                       t->file ? t->file : "store", llmsq_dtype_info(t->dtype)->name, llmsq_shape_str(t, got, sizeof got),
                       want);
}

static llmsq_status import_one(llmsq_store *s, const void *cfg, const char *prefix)
{
    const gq_cfg *c = cfg;
    llmsq_status st = LLMSQ_OK;
    const llmsq_tensor *qw = need(s, c, prefix, "qweight", true, &st);
    const llmsq_tensor *qz = need(s, c, prefix, "qzeros", true, &st);
    const llmsq_tensor *sc = need(s, c, prefix, "scales", true, &st);
    const llmsq_tensor *gi = need(s, c, prefix, "g_idx", false, &st);
    if (st != LLMSQ_OK || !qw || !qz || !sc) return st;
    const int b = c->bits;
    const int64_t unit = pack_unit(b);
    char want[160];
    /* g_idx, when present, states in_features outright; otherwise qweight's rows imply it. */
    if (gi && (gi->dtype != LLMSQ_DTYPE_I32 || gi->ndim != 1 || gi->shape[0] <= 0 || gi->shape[0] % unit != 0)) {
        snprintf(want, sizeof want, "I32 [in] with in a multiple of %lld", (long long)unit);
        return bad_shape(c, gi, want);
    }
    if (qw->dtype != LLMSQ_DTYPE_I32 || qw->ndim != 2 || qw->shape[1] <= 0 || qw->shape[0] <= 0 ||
        (gi ? qw->shape[0] != gi->shape[0] * b / 32
            : (qw->shape[0] * 32) % b != 0 || (qw->shape[0] * 32 / b) % unit != 0)) {
        if (gi)
            snprintf(want, sizeof want, "I32 [%lld, out] (in_features %lld from g_idx, %d bits)",
                     (long long)(gi->shape[0] * b / 32), (long long)gi->shape[0], b);
        else
            snprintf(want, sizeof want, "I32 [in*%d/32, out] with in a multiple of %lld", b, (long long)unit);
        return bad_shape(c, qw, want);
    }
    const int64_t out = qw->shape[1], in = qw->shape[0] * 32 / b;
    const int64_t gs = c->group_size == -1 || c->group_size > in ? in : c->group_size;
    const int64_t ng = (in + gs - 1) / gs;
    if (!(sc->dtype == LLMSQ_DTYPE_F16 || sc->dtype == LLMSQ_DTYPE_BF16 || sc->dtype == LLMSQ_DTYPE_F32) ||
        sc->ndim != 2 || sc->shape[0] != ng || sc->shape[1] != out) {
        snprintf(want, sizeof want, "F16 [%lld, %lld] (ceil(in %lld / group_size %lld) groups, out %lld)",
                 (long long)ng, (long long)out, (long long)in, (long long)gs, (long long)out);
        return bad_shape(c, sc, want);
    }
    if (qz->dtype != LLMSQ_DTYPE_I32 || qz->ndim != 2 || out % unit != 0 || qz->shape[0] != ng ||
        qz->shape[1] != out * b / 32) {
        snprintf(want, sizeof want, "I32 [%lld, out %lld * %d / 32] (out a multiple of %lld)", (long long)ng,
                 (long long)out, b, (long long)unit);
        return bad_shape(c, qz, want);
    }
    llmsq_qlinear *q;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, b, gs, LLMSQ_QGRID_MINMAX, gi != NULL, &q));
    q->act_order = c->desc_act;
    float *tmp = malloc((size_t)(ng * out) * sizeof *tmp);
    uint8_t *line = malloc((size_t)out);
    if (!tmp || !line) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory importing %s", prefix);
        goto fail;
    }
    for (int64_t o = 0; o < out; o++) llmsq_qunpack((const uint8_t *)qw->data + 4 * o, out, in, b, q->codes + o * in, 1);
    const int32_t add = c->v2 ? 0 : 1, zmax = (1 << b) - 1;
    for (int64_t g = 0; g < ng; g++) {
        llmsq_qunpack((const uint8_t *)qz->data + 4 * g * qz->shape[1], 1, out, b, line, 1);
        for (int64_t o = 0; o < out; o++) {
            int32_t z = line[o] + add;
            /* AutoGPTQ's v1 packer turns a zero point of 0 into an all-ones field (and corrupts
             * the fields above it); the resulting 2^b is outside every grid. */
            if (z > zmax) {
                st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                                 "%s: tensor '%s.qzeros' group %lld column %lld: v1 zero point %d exceeds %d (a zero "
                                 "of 0 wrapped by the packer); this checkpoint cannot be read faithfully",
                                 c->path, prefix, (long long)g, (long long)o, z, zmax);
                goto fail;
            }
            q->zeros[o * ng + g] = z;
        }
    }
    if ((st = llmsq_qckpt_to_f32(sc, tmp)) != LLMSQ_OK) goto fail;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out; o++) q->scales[o * ng + g] = tmp[g * out + o];
    if (gi) {
        for (int64_t i = 0; i < in; i++) {
            int32_t g = (int32_t)llmsq_ld_u32(gi->data, i);
            if (g < 0 || g >= ng) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' element %lld is group %d, outside [0, %lld)",
                                 c->path, gi->name, (long long)i, g, (long long)ng);
                goto fail;
            }
            q->g_idx[i] = g;
        }
    }
    free(tmp);
    free(line);
    return llmsq_qckpt_put(s, prefix, q);
fail:
    free(tmp);
    free(line);
    llmsq_qlinear_free(q);
    return st;
}

llmsq_status llmsq_gptq_import(llmsq_store *s, const json_t *qc, const char *cfg_path)
{
    gq_cfg c = {0};
    LLMSQ_TRY(parse_cfg(qc, cfg_path, &c));
    return llmsq_qckpt_import_each(s, ".qweight", "gptq", cfg_path, import_one, &c);
}
