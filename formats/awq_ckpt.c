/* AutoAWQ "GEMM" checkpoints (FORMATS.md 3): the canonical quantized linear to and from
 *
 *     <p>.qweight  I32 [in, out/8]     4-bit codes packed along the OUTPUT dimension
 *     <p>.qzeros   I32 [in/G, out/8]   4-bit zero points, same packing, stored as z (no -1)
 *     <p>.scales   F16 [in/G, out]
 *
 * Inside a word the eight output columns are interleaved: slot k (bits [4k, 4k+4)) of word c
 * holds column 8c + AWQ_ORDER[k]. Codes and zero points are the canonical unsigned ones, so
 * W[o, i] = scales[i/G, o] * (q[i, o] - z[i/G, o]) is the canonical formula transposed. */
#include "formats/qpack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Slot k of a word holds output column 8c + k_order[k] (AutoAWQ's packer order). */
static const int k_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static llmsq_qckpt_tensor mk(llmsq_qckpt_kind kind, const char *suffix, llmsq_dtype dt, int64_t d0, int64_t d1)
{
    llmsq_qckpt_tensor t = {kind, suffix, dt, 2, {d0, d1}, 0};
    t.nbytes = llmsq_dtype_nbytes(dt, d0 * d1);
    return t;
}

int llmsq_awq_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                      llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS])
{
    const int64_t ng = q->in / sc->group_size;
    out[0] = mk(LLMSQ_QK_AWQ_QWEIGHT, "qweight", LLMSQ_DTYPE_I32, q->in, q->out / 8);
    out[1] = mk(LLMSQ_QK_AWQ_QZEROS, "qzeros", LLMSQ_DTYPE_I32, ng, q->out / 8);
    out[2] = mk(LLMSQ_QK_AWQ_SCALES, "scales", LLMSQ_DTYPE_F16, ng, q->out);
    return 3;
}

llmsq_status llmsq_awq_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q)
{
    const int64_t G = sc->group_size;
    if (q->bits != 4)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store %s: %d-bit codes (AutoAWQ GEMM is 4-bit only; use "
                           "GPTQ or compressed-tensors)", name, q->bits);
    for (int64_t i = 0; q->g_idx && i < q->in; i++)
        if (q->g_idx[i] != i / q->group_size)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store %s: act-order groups (g_idx[%lld] = %d) and AWQ "
                               "has no g_idx, its groups are contiguous (quantize without act-order, or use GPTQ)", name,
                               (long long)i, q->g_idx[i]);
    if (q->out % 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store %s: qweight packs 8 output features per word and "
                           "out_features = %lld is not a multiple of 8 (keep it in float or use compressed-tensors)",
                           name, (long long)q->out);
    if (G <= 0 || q->in % G)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store %s: in_features = %lld is not a multiple of the "
                           "group size %lld (AWQ groups must tile the input; keep it in float or pick a group size that "
                           "divides it)", name, (long long)q->in, (long long)G);
    if (q->in / G != q->n_groups)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot store %s: it has %lld groups but the checkpoint's group "
                           "size %lld gives %lld", name, (long long)q->n_groups, (long long)G, (long long)(q->in / G));
    return LLMSQ_OK;
}

/* One row of 8-column words: word c of v[0..n) gathers v[(8c + k_order[k]) * vs] into slot k. */
static void pack_row(const uint8_t *v, int64_t vs, int64_t n, uint8_t *dst)
{
    for (int64_t c = 0; c < n / 8; c++) {
        uint32_t w = 0;
        for (int k = 0; k < 8; k++) w |= (uint32_t)(v[(8 * c + k_order[k]) * vs] & 15) << (4 * k);
        llmsq_st_u32(dst, c, w);
    }
}

llmsq_status llmsq_awq_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q, const llmsq_qckpt_tensor *t,
                            void *dst)
{
    (void)sc;
    const int64_t out = q->out, in = q->in, ng = q->n_groups, words = out / 8;
    uint8_t *p = dst;
    switch (t->kind) {
    case LLMSQ_QK_AWQ_QWEIGHT: /* row i gathers column i of codes [out, in] */
        for (int64_t i = 0; i < in; i++) pack_row(q->codes + i, in, out, p + 4 * i * words);
        break;
    case LLMSQ_QK_AWQ_QZEROS: {
        uint8_t *line = malloc((size_t)out);
        if (!line) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory packing qzeros");
        for (int64_t g = 0; g < ng; g++) {
            for (int64_t o = 0; o < out; o++) line[o] = (uint8_t)q->zeros[o * ng + g];
            pack_row(line, 1, out, p + 4 * g * words);
        }
        free(line);
        break;
    }
    case LLMSQ_QK_AWQ_SCALES:
        for (int64_t g = 0; g < ng; g++)
            for (int64_t o = 0; o < out; o++) llmsq_qckpt_st_float(p, g * out + o, LLMSQ_DTYPE_F16, q->scales[o * ng + g]);
        break;
    default:
        LLMSQ_ASSERT(!"not an AWQ tensor");
    }
    return LLMSQ_OK;
}

json_t *llmsq_awq_config(const llmsq_qckpt_scheme *sc, const json_t *skip)
{
    json_t *list = json_array();
    size_t i;
    json_t *v;
    bool oom = !list;
    json_array_foreach(skip, i, v) if (!oom && strcmp(json_string_value(v), "lm_head") != 0)
        oom = json_array_append(list, v) != 0;
    if (oom) {
        json_decref(list);
        return NULL;
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        list = json_null();
    }
    /* AutoAWQ's own keys are w_bit / q_group_size; bits / group_size are what transformers and
     * vLLM's awq_marlin check first, and every reader accepts them. */
    return json_pack("{s:s, s:i, s:I, s:b, s:s, s:o}", "quant_method", "awq", "bits", sc->bits, "group_size",
                     (json_int_t)sc->group_size, "zero_point", 1, "version", "gemm", "modules_to_not_convert", list);
}

llmsq_status llmsq_awq_check_skips(const json_t *skip, const json_t *quantized)
{
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(skip, i, a) {
        const char *sa = json_string_value(a);
        if (strcmp(sa, "lm_head") == 0) continue;
        json_array_foreach(quantized, j, b) if (strstr(json_string_value(b), sa))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "AWQ cannot record that %s stays in float: readers skip every "
                               "module whose name contains a modules_to_not_convert entry, and %s (quantized) does",
                               sa, json_string_value(b));
    }
    return LLMSQ_OK;
}

/* ---- import ------------------------------------------------------------------------------------- */

typedef struct awq_cfg {
    const char *path;
    int64_t     group_size; /* -1: one group spanning each linear's input */
} awq_cfg;

/* AutoAWQ spells bits "w_bit" and group_size "q_group_size"; the HF names win when both exist. */
static const json_t *get2(const json_t *qc, const char *a, const char *b)
{
    const json_t *v = json_object_get(qc, a);
    return v ? v : json_object_get(qc, b);
}

static llmsq_status parse_cfg(const json_t *qc, const char *path, awq_cfg *c)
{
    c->path = path;
    const json_t *jv = json_object_get(qc, "version");
    const char *version = !jv || json_is_null(jv) ? "gemm" : json_is_string(jv) ? json_string_value(jv) : NULL;
    if (!version)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ quantization_config \"version\" is not a string", path);
    if (strcasecmp(version, "gemm") != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: AWQ version \"%s\" is not supported (only \"gemm\"; GEMV and "
                           "the kernel-specific layouts store different shapes)", path, version);
    const json_t *jb = get2(qc, "bits", "w_bit"), *jg = get2(qc, "group_size", "q_group_size");
    if (!json_is_integer(jb))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ quantization_config needs an integer \"bits\" (or \"w_bit\")", path);
    if (json_integer_value(jb) != 4)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: AWQ bits %lld is not supported (GEMM is 4-bit)", path,
                           (long long)json_integer_value(jb));
    if (!json_is_integer(jg) || json_integer_value(jg) == 0 || json_integer_value(jg) < -1)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ \"group_size\" (or \"q_group_size\") must be a positive integer "
                           "or -1", path);
    c->group_size = json_integer_value(jg);
    const json_t *jz = json_object_get(qc, "zero_point");
    if (jz && !json_is_null(jz) && !json_is_true(jz))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: AWQ zero_point false is not supported (the GEMM layout stores "
                           "zero points)", path);
    const json_t *skip = json_object_get(qc, "modules_to_not_convert"), *v;
    size_t i;
    if (skip && !json_is_null(skip) && !json_is_array(skip))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ modules_to_not_convert is neither a list nor null", path);
    json_array_foreach(skip, i, v) if (!json_is_string(v))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ modules_to_not_convert[%zu] is not a string", path, i);
    return LLMSQ_OK;
}

static llmsq_status bad_shape(const awq_cfg *c, const llmsq_tensor *t, const char *want)
{
    char got[96];
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ tensor '%s' (%s) is %s %s, expected %s", c->path, t->name,
                       t->file ? t->file : "store", llmsq_dtype_info(t->dtype)->name, llmsq_shape_str(t, got, sizeof got),
                       want);
}

static const llmsq_tensor *need(const llmsq_store *s, const awq_cfg *c, const char *prefix, const char *suffix,
                                llmsq_status *st)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t && *st == LLMSQ_OK)
        *st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: AWQ tensor '%s' is missing (%s.qweight needs it)", c->path, name,
                          prefix);
    return t;
}

/* One row of 8-column words back to columns: slot k of word c is column 8c + k_order[k]. */
static void unpack_row(const uint8_t *src, int64_t n, uint8_t *v, int64_t vs)
{
    for (int64_t c = 0; c < n / 8; c++) {
        uint32_t w = llmsq_ld_u32(src, c);
        for (int k = 0; k < 8; k++) v[(8 * c + k_order[k]) * vs] = (uint8_t)((w >> (4 * k)) & 15);
    }
}

static llmsq_status import_one(llmsq_store *s, const void *cfg, const char *prefix)
{
    const awq_cfg *c = cfg;
    llmsq_status st = LLMSQ_OK;
    const llmsq_tensor *qw = need(s, c, prefix, "qweight", &st), *qz = need(s, c, prefix, "qzeros", &st),
                       *sc = need(s, c, prefix, "scales", &st);
    if (st != LLMSQ_OK) return st;
    char want[160];
    if (qw->dtype != LLMSQ_DTYPE_I32 || qw->ndim != 2 || qw->shape[0] <= 0 || qw->shape[1] <= 0)
        return bad_shape(c, qw, "I32 [in, out/8]");
    const int64_t in = qw->shape[0], words = qw->shape[1], out = 8 * words;
    const int64_t G = c->group_size == -1 ? in : c->group_size;
    if (in % G) {
        snprintf(want, sizeof want, "I32 [in, out/8] with in a multiple of group_size %lld", (long long)G);
        return bad_shape(c, qw, want);
    }
    const int64_t ng = in / G;
    if (!(sc->dtype == LLMSQ_DTYPE_F16 || sc->dtype == LLMSQ_DTYPE_BF16 || sc->dtype == LLMSQ_DTYPE_F32) ||
        sc->ndim != 2 || sc->shape[0] != ng || sc->shape[1] != out) {
        snprintf(want, sizeof want, "F16 [%lld, %lld] (in %lld / group_size %lld, out %lld from qweight)", (long long)ng,
                 (long long)out, (long long)in, (long long)G, (long long)out);
        return bad_shape(c, sc, want);
    }
    if (qz->dtype != LLMSQ_DTYPE_I32 || qz->ndim != 2 || qz->shape[0] != ng || qz->shape[1] != words) {
        snprintf(want, sizeof want, "I32 [%lld, %lld] (in / group_size, out / 8)", (long long)ng, (long long)words);
        return bad_shape(c, qz, want);
    }
    llmsq_qlinear *q;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, 4, G, LLMSQ_QGRID_AWQ, false, &q));
    float *tmp = malloc((size_t)(ng * out) * sizeof *tmp);
    uint8_t *line = malloc((size_t)out);
    if (!tmp || !line) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory importing %s", prefix);
        goto fail;
    }
    for (int64_t i = 0; i < in; i++) unpack_row((const uint8_t *)qw->data + 4 * i * words, out, q->codes + i, in);
    for (int64_t g = 0; g < ng; g++) {
        unpack_row((const uint8_t *)qz->data + 4 * g * words, out, line, 1);
        for (int64_t o = 0; o < out; o++) q->zeros[o * ng + g] = line[o];
    }
    if ((st = llmsq_qckpt_to_f32(sc, tmp)) != LLMSQ_OK) goto fail;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out; o++) q->scales[o * ng + g] = tmp[g * out + o];
    free(tmp);
    free(line);
    return llmsq_qckpt_put_as(s, prefix, q);
fail:
    free(tmp);
    free(line);
    llmsq_qlinear_free(q);
    return st;
}

llmsq_status llmsq_awq_import(llmsq_store *s, const json_t *qc, const char *cfg_path)
{
    awq_cfg c = {0};
    LLMSQ_TRY(parse_cfg(qc, cfg_path, &c));
    return llmsq_qckpt_import_each(s, ".qweight", "awq", cfg_path, import_one, &c);
}
