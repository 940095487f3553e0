/* Packed linears: picks the kernel layout for a store weight and packs it (plinear.h). */
#include "llmsq/plinear.h"
#include "llmsq/prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

llmsq_pack_opts llmsq_pack_default_opts(void)
{
    return (llmsq_pack_opts){.dense_dtype = LLMSQ_DTYPE_COUNT, .sparse = true, .fuse = true};
}

const char *llmsq_plinear_kind_name(llmsq_plinear_kind k, llmsq_dtype dense_dtype)
{
    switch (k) {
    case LLMSQ_PLINEAR_DENSE:
        return dense_dtype == LLMSQ_DTYPE_F16 ? "f16" : dense_dtype == LLMSQ_DTYPE_BF16 ? "bf16" : "f32";
    case LLMSQ_PLINEAR_W4: return "w4a16";
    case LLMSQ_PLINEAR_W8: return "w8a8";
    case LLMSQ_PLINEAR_S24: return "2:4-f16";
    case LLMSQ_PLINEAR_S24W4: return "2:4-w4a16";
    default: return "unknown";
    }
}

static llmsq_status new_plinear(llmsq_plinear_kind kind, int64_t out, int64_t in, llmsq_plinear **p)
{
    *p = calloc(1, sizeof **p);
    if (!*p) return llmsq_error(LLMSQ_STATUS_NOMEM, "packing: out of memory");
    (*p)->kind = kind;
    (*p)->out = out;
    (*p)->in = in;
    return LLMSQ_OK;
}

static llmsq_dtype dense_dtype_for(const llmsq_pack_opts *o, llmsq_dtype stored)
{
    if (o->dense_dtype != LLMSQ_DTYPE_COUNT) return o->dense_dtype;
    return stored == LLMSQ_DTYPE_F16 || stored == LLMSQ_DTYPE_BF16 ? stored : LLMSQ_DTYPE_F32;
}

llmsq_status llmsq_plinear_pack_f32(const float *W, int64_t out, int64_t in, llmsq_dtype dtype,
                                    const llmsq_pack_opts *opts, llmsq_plinear **p)
{
    LLMSQ_ASSERT(W && p && out > 0 && in > 0);
    llmsq_pack_opts o = opts ? *opts : llmsq_pack_default_opts();
    *p = NULL;
    int64_t bad_row;
    llmsq_status st;
    if (o.sparse && llmsq_check_nm(W, out, in, 2, 4, &bad_row)) {
        LLMSQ_TRY(new_plinear(LLMSQ_PLINEAR_S24, out, in, p));
        st = llmsq_kern_s24_pack(W, out, in, &(*p)->u.s24);
    } else {
        LLMSQ_TRY(new_plinear(LLMSQ_PLINEAR_DENSE, out, in, p));
        st = llmsq_kern_dense_pack(W, out, in, dense_dtype_for(&o, dtype), &(*p)->u.dense);
    }
    if (st != LLMSQ_OK) {
        llmsq_plinear_free(*p);
        *p = NULL;
    }
    return st;
}

/* Dense F32 holding q's exact dequantized values, for quantized weights no kernel serves. */
static llmsq_status pack_fallback(const llmsq_qlinear *q, const char *why, llmsq_plinear **p)
{
    float *W = malloc((size_t)(q->out * q->in) * sizeof *W);
    if (!W) return llmsq_error(LLMSQ_STATUS_NOMEM, "packing: out of memory");
    llmsq_qlinear_dequant(q, W);
    llmsq_pack_opts o = {LLMSQ_DTYPE_F32, false, false};
    llmsq_status st = llmsq_plinear_pack_f32(W, q->out, q->in, LLMSQ_DTYPE_F32, &o, p);
    free(W);
    if (st == LLMSQ_OK) snprintf((*p)->fallback, sizeof (*p)->fallback, "%s", why);
    return st;
}

/* True when every group of 4 columns has at most 2 entries that dequantize to nonzero. */
static bool qlinear_is_24(const llmsq_qlinear *q)
{
    for (int64_t o = 0; o < q->out; o++) {
        const uint8_t *c = q->codes + o * q->in;
        for (int64_t i0 = 0; i0 < q->in; i0 += 4) {
            int nz = 0;
            for (int64_t i = i0; i < i0 + 4 && i < q->in; i++) {
                int64_t g = llmsq_qlinear_group(q, i);
                nz += q->scales[o * q->n_groups + g] != 0.0f && (int32_t)c[i] != q->zeros[o * q->n_groups + g];
            }
            if (nz > 2) return false;
        }
    }
    return true;
}

/* Tries a kernel packer; UNSUPPORTED (the layout cannot hold q) becomes a dense fallback. */
#define TRY_KERNEL_(call, q, p) \
    do { \
        llmsq_status st_ = (call); \
        if (st_ == LLMSQ_STATUS_UNSUPPORTED) { \
            char why_[160]; \
            snprintf(why_, sizeof why_, "%s", llmsq_last_error()); \
            llmsq_plinear_free(*(p)); \
            *(p) = NULL; \
            return pack_fallback((q), why_, (p)); \
        } \
        if (st_ != LLMSQ_OK) { \
            llmsq_plinear_free(*(p)); \
            *(p) = NULL; \
        } \
        return st_; \
    } while (0)

static llmsq_status pack_qlinear(const llmsq_qlinear *q, const llmsq_pack_opts *o, llmsq_plinear **p)
{
    *p = NULL;
    if (q->bits <= 4 && o->sparse && qlinear_is_24(q)) {
        LLMSQ_TRY(new_plinear(LLMSQ_PLINEAR_S24W4, q->out, q->in, p));
        llmsq_status st = llmsq_kern_s24w4_pack(q, &(*p)->u.s24w4);
        if (st != LLMSQ_STATUS_UNSUPPORTED) { /* else the dense int4 layout may still hold it */
            if (st != LLMSQ_OK) llmsq_plinear_free(*p), *p = NULL;
            return st;
        }
        llmsq_plinear_free(*p);
        *p = NULL;
    }
    if (q->bits <= 4) {
        LLMSQ_TRY(new_plinear(LLMSQ_PLINEAR_W4, q->out, q->in, p));
        TRY_KERNEL_(llmsq_kern_w4_pack(q, &(*p)->u.w4), q, p);
    }
    if (q->bits == 8 && q->act_bits == 8) {
        LLMSQ_TRY(new_plinear(LLMSQ_PLINEAR_W8, q->out, q->in, p));
        TRY_KERNEL_(llmsq_kern_w8_pack(q, &(*p)->u.w8), q, p);
    }
    char why[96];
    snprintf(why, sizeof why, "%d-bit weights with %s activations have no kernel", q->bits,
             q->act_bits ? "int8" : "float");
    return pack_fallback(q, why, p);
}

static bool same_q_params(const llmsq_qlinear *a, const llmsq_qlinear *b)
{
    if (a->in != b->in || a->bits != b->bits || a->group_size != b->group_size || a->act_bits != b->act_bits ||
        a->act_static != b->act_static || a->act_scale != b->act_scale || !a->g_idx != !b->g_idx)
        return false;
    return !a->g_idx || memcmp(a->g_idx, b->g_idx, (size_t)a->in * sizeof *a->g_idx) == 0;
}

/* The rows of qs[0..n) stacked into one canonical qlinear (same parameters checked). */
static llmsq_status stack_qlinears(const llmsq_qlinear *const *qs, int n, llmsq_qlinear **out)
{
    int64_t rows = 0;
    for (int i = 0; i < n; i++) rows += qs[i]->out;
    const llmsq_qlinear *a = qs[0];
    LLMSQ_TRY(llmsq_qlinear_create(rows, a->in, a->bits, a->group_size, a->grid, a->g_idx != NULL, out));
    llmsq_qlinear *q = *out;
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        const llmsq_qlinear *s = qs[i];
        memcpy(q->codes + r * q->in, s->codes, (size_t)(s->out * s->in));
        memcpy(q->scales + r * q->n_groups, s->scales, (size_t)(s->out * s->n_groups) * sizeof *q->scales);
        memcpy(q->zeros + r * q->n_groups, s->zeros, (size_t)(s->out * s->n_groups) * sizeof *q->zeros);
        r += s->out;
    }
    if (a->g_idx) memcpy(q->g_idx, a->g_idx, (size_t)a->in * sizeof *q->g_idx);
    q->act_order = a->act_order;
    q->act_bits = a->act_bits;
    q->act_static = a->act_static;
    q->act_scale = a->act_scale;
    return LLMSQ_OK;
}

static llmsq_status check_scales(const llmsq_qlinear *q, const char *name)
{
    for (int64_t i = 0; i < q->out * q->n_groups; i++)
        if (!isfinite(q->scales[i]))
            return llmsq_error(LLMSQ_STATUS_NUMERIC, "tensor '%s': non-finite scale (%g) at row %lld, group %lld", name,
                               (double)q->scales[i], (long long)(i / q->n_groups), (long long)(i % q->n_groups));
    return LLMSQ_OK;
}

static llmsq_status pack_quantized(llmsq_store *s, const char *const *names, int n, const llmsq_pack_opts *o,
                                   llmsq_plinear **p)
{
    const llmsq_qlinear *qs[8];
    for (int i = 0; i < n; i++) {
        qs[i] = llmsq_store_get_qlinear(s, names[i]);
        if (!qs[i] || (i > 0 && !same_q_params(qs[0], qs[i])))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "'%s' and '%s' cannot be stacked (different layouts)",
                               names[0], names[i]);
        LLMSQ_TRY(check_scales(qs[i], names[i]));
    }
    if (n == 1) return pack_qlinear(qs[0], o, p);
    llmsq_qlinear *q;
    LLMSQ_TRY(stack_qlinears(qs, n, &q));
    llmsq_status st = pack_qlinear(q, o, p);
    llmsq_qlinear_free(q);
    return st;
}

/* The F32 view of a 2-D float weight, checked finite; *in_out holds the expected `in` (0: any). */
static llmsq_status float_weight(llmsq_store *s, const char *name, int64_t *in_out, const float **W, int64_t *out)
{
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "missing tensor '%s'", name);
    if (t->ndim != 2 || (*in_out && t->shape[1] != *in_out)) {
        char sh[96];
        return llmsq_error(LLMSQ_STATUS_SHAPE, "tensor '%s' has shape %s, expected [out, %lld]", name,
                           llmsq_shape_str(t, sh, sizeof sh), (long long)*in_out);
    }
    *out = t->shape[0];
    *in_out = t->shape[1];
    LLMSQ_TRY(llmsq_store_get_f32(s, name, W));
    int64_t bad = llmsq_f32_first_nonfinite(*W, *out * *in_out);
    if (bad >= 0)
        return llmsq_error(LLMSQ_STATUS_NUMERIC, "tensor '%s' has a non-finite value (%g) at row %lld, column %lld",
                           name, (double)(*W)[bad], (long long)(bad / *in_out), (long long)(bad % *in_out));
    return LLMSQ_OK;
}

static llmsq_status pack_float(llmsq_store *s, const char *const *names, int n, const llmsq_pack_opts *o,
                               llmsq_plinear **p)
{
    const llmsq_dtype dtype = llmsq_store_get(s, names[0])->dtype;
    int64_t in = 0, out;
    const float *W;
    if (n == 1) {
        LLMSQ_TRY(float_weight(s, names[0], &in, &W, &out));
        return llmsq_plinear_pack_f32(W, out, in, dtype, o, p);
    }
    int64_t rows[8], total = 0;
    for (int i = 0; i < n; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, names[i]);
        if (t->dtype != dtype)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "'%s' and '%s' cannot be stacked (dtypes differ)", names[0],
                               names[i]);
        LLMSQ_TRY(float_weight(s, names[i], &in, &W, &rows[i]));
        total += rows[i];
    }
    float *S = malloc((size_t)(total * in) * sizeof *S);
    if (!S) return llmsq_error(LLMSQ_STATUS_NOMEM, "packing: out of memory");
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        llmsq_store_get_f32(s, names[i], &W); /* cached above: cannot fail */
        memcpy(S + r * in, W, (size_t)(rows[i] * in) * sizeof *S);
        r += rows[i];
    }
    llmsq_status st = llmsq_plinear_pack_f32(S, total, in, dtype, o, p);
    free(S);
    return st;
}

llmsq_status llmsq_plinear_pack(llmsq_store *s, const char *const *names, int n, const llmsq_pack_opts *opts,
                                llmsq_plinear **p)
{
    LLMSQ_ASSERT(s && names && n >= 1 && n <= 8 && p);
    *p = NULL;
    llmsq_pack_opts o = opts ? *opts : llmsq_pack_default_opts();
    int quantized = 0;
    for (int i = 0; i < n; i++) {
        if (!llmsq_store_get(s, names[i])) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "missing tensor '%s'", names[i]);
        quantized += llmsq_store_get_qlinear(s, names[i]) != NULL;
    }
    if (quantized == n) return pack_quantized(s, names, n, &o, p);
    if (quantized) return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "'%s'...: quantized and float weights cannot be stacked",
                                      names[0]);
    return pack_float(s, names, n, &o, p);
}

void llmsq_plinear_free(llmsq_plinear *p)
{
    if (!p) return;
    switch (p->kind) {
    case LLMSQ_PLINEAR_DENSE: llmsq_kern_dense_free(p->u.dense); break;
    case LLMSQ_PLINEAR_W4: llmsq_kern_w4_free(p->u.w4); break;
    case LLMSQ_PLINEAR_W8: llmsq_kern_w8_free(p->u.w8); break;
    case LLMSQ_PLINEAR_S24: llmsq_kern_s24_free(p->u.s24); break;
    case LLMSQ_PLINEAR_S24W4: llmsq_kern_s24w4_free(p->u.s24w4); break;
    default: break;
    }
    free(p);
}

llmsq_status llmsq_plinear_matmul(const llmsq_plinear *p, const float *x, int64_t B, float *y)
{
    switch (p->kind) {
    case LLMSQ_PLINEAR_DENSE: return llmsq_kern_dense_matmul(p->u.dense, x, B, y);
    case LLMSQ_PLINEAR_W4: return llmsq_kern_w4_matmul(p->u.w4, x, B, y);
    case LLMSQ_PLINEAR_W8: return llmsq_kern_w8_matmul(p->u.w8, x, B, y);
    case LLMSQ_PLINEAR_S24: return llmsq_kern_s24_matmul(p->u.s24, x, B, y);
    case LLMSQ_PLINEAR_S24W4: return llmsq_kern_s24w4_matmul(p->u.s24w4, x, B, y);
    default: LLMSQ_ASSERT(!"unknown packed layout"); return LLMSQ_STATUS_ARG;
    }
}

size_t llmsq_plinear_bytes(const llmsq_plinear *p)
{
    switch (p->kind) {
    case LLMSQ_PLINEAR_DENSE: return llmsq_kern_dense_bytes(p->u.dense);
    case LLMSQ_PLINEAR_W4: return llmsq_kern_w4_bytes(p->u.w4);
    case LLMSQ_PLINEAR_W8: return llmsq_kern_w8_bytes(p->u.w8);
    case LLMSQ_PLINEAR_S24: return llmsq_kern_s24_bytes(p->u.s24);
    case LLMSQ_PLINEAR_S24W4: return llmsq_kern_s24w4_bytes(p->u.s24w4);
    default: return 0;
    }
}

llmsq_dtype llmsq_plinear_dtype(const llmsq_plinear *p)
{
    return p->kind == LLMSQ_PLINEAR_DENSE ? p->u.dense->dtype : LLMSQ_DTYPE_F32;
}
