/* Packing of dense (F32/F16/BF16), W4A16 and W8A8 weights into the layouts of kernels.h, and
 * back to the canonical forms. */
#include "kern-impl.h"

#include <math.h>
#include <stdio.h>

/* ---- dense ----------------------------------------------------------------------------------- */

static size_t dense_elem(llmsq_dtype t) { return t == LLMSQ_DTYPE_F32 ? 4 : 2; }

llmsq_status llmsq_kern_dense_pack(const float *W, int64_t out, int64_t in, llmsq_dtype dtype,
                                   llmsq_kern_dense **d)
{
    LLMSQ_ASSERT(W && d);
    *d = NULL;
    if (dtype != LLMSQ_DTYPE_F32 && dtype != LLMSQ_DTYPE_F16 && dtype != LLMSQ_DTYPE_BF16)
        return llmsq_error(LLMSQ_STATUS_ARG, "dense kernel weights must be F32, F16 or BF16 (got %s)",
                           llmsq_dtype_info(dtype)->name);
    if (out <= 0 || in <= 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "dense weights [%lld, %lld] are empty", (long long)out,
                           (long long)in);
    llmsq_kern_dense *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = out;
    r->in = in;
    r->ld = kern_round_up(in, LLMSQ_KERN_DENSE_PAD);
    r->dtype = dtype;
    r->data = kern_alloc((size_t)(out * r->ld) * dense_elem(dtype));
    if (!r->data) {
        free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for [%lld, %lld] dense weights", (long long)out,
                           (long long)in);
    }
    for (int64_t o = 0; o < out; o++) {
        const float *w = W + o * in;
        if (dtype == LLMSQ_DTYPE_F32) {
            memcpy((float *)r->data + o * r->ld, w, (size_t)in * sizeof(float));
        } else {
            uint16_t *h = (uint16_t *)r->data + o * r->ld;
            for (int64_t i = 0; i < in; i++)
                h[i] = dtype == LLMSQ_DTYPE_F16 ? llmsq_f32_to_f16(w[i]) : llmsq_f32_to_bf16(w[i]);
        }
    }
    *d = r;
    return LLMSQ_OK;
}

void llmsq_kern_dense_free(llmsq_kern_dense *d)
{
    if (!d) return;
    free(d->data);
    free(d);
}

void llmsq_kern_dense_unpack(const llmsq_kern_dense *d, float *W)
{
    LLMSQ_ASSERT(d && W);
    kern_dense_dequant(d, 0, d->out, W);
}

size_t llmsq_kern_dense_bytes(const llmsq_kern_dense *d)
{
    return (size_t)(d->out * d->ld) * dense_elem(d->dtype);
}

/* ---- W4A16 ------------------------------------------------------------------------------------ */

/* perm such that g_idx[perm[k]] == k / gs for every k (columns sorted by group, stable), or
 * false when no such order exists (groups of unequal sizes, out-of-range entries). */
static bool w4_perm_from_gidx(const llmsq_qlinear *q, int32_t *perm, bool *identity)
{
    const int64_t in = q->in, gs = q->group_size, ng = q->n_groups;
    int64_t *start = calloc((size_t)ng + 1, sizeof *start);
    if (!start) return false;
    bool ok = true;
    for (int64_t i = 0; i < in && ok; i++) {
        int32_t g = q->g_idx[i];
        if (g < 0 || g >= ng) ok = false;
        else start[g + 1]++;
    }
    for (int64_t g = 0; g < ng && ok; g++) {
        int64_t want = (g + 1) * gs <= in ? gs : in - g * gs;
        if (start[g + 1] != want) ok = false;
        start[g + 1] += start[g];
    }
    *identity = true;
    if (ok) {
        for (int64_t i = 0; i < in; i++) {
            int64_t k = start[q->g_idx[i]]++;
            perm[k] = (int32_t)i;
            if (k != i) *identity = false;
        }
    }
    free(start);
    return ok;
}

/* Scales to f16 bit patterns, every one exact. */
static llmsq_status scales_to_f16(const llmsq_qlinear *q, uint16_t *h)
{
    const int64_t n = q->out * q->n_groups;
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(q->scales[k]) || !kern_f16_exact(q->scales[k], &h[k]))
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                               "scale %g (row %lld, group %lld) is not an f16 value; packed int4 layouts "
                               "store f16 scales (quantize with scale dtype F16)",
                               (double)q->scales[k], (long long)(k / q->n_groups), (long long)(k % q->n_groups));
    return LLMSQ_OK;
}

static llmsq_status zeros_to_u8(const llmsq_qlinear *q, uint8_t *z)
{
    const int64_t n = q->out * q->n_groups;
    for (int64_t k = 0; k < n; k++) {
        if (q->zeros[k] < 0 || q->zeros[k] > 15)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "zero point %d (row %lld) does not fit 4 bits",
                               (int)q->zeros[k], (long long)(k / q->n_groups));
        z[k] = (uint8_t)q->zeros[k];
    }
    return LLMSQ_OK;
}

void llmsq_kern_w4_free(llmsq_kern_w4 *w)
{
    if (!w) return;
    free(w->codes);
    free(w->scales);
    free(w->zeros);
    free(w->perm);
    free(w);
}

llmsq_status llmsq_kern_w4_pack(const llmsq_qlinear *q, llmsq_kern_w4 **w)
{
    LLMSQ_ASSERT(q && w);
    *w = NULL;
    if (q->bits > 4)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the int4 layout holds codes of at most 4 bits (got %d)",
                           q->bits);
    if (q->n_groups > 1 && q->group_size % 8 != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "the int4 kernels need a group size that is a multiple of 8 or the whole row "
                           "(got %lld for %lld columns)",
                           (long long)q->group_size, (long long)q->in);
    llmsq_kern_w4 *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = q->out;
    r->in = q->in;
    r->in_pad = kern_round_up(q->in, LLMSQ_KERN_W4_BLOCK);
    r->group_size = q->group_size;
    r->n_groups = q->n_groups;
    r->bits = q->bits;
    const int64_t out4 = kern_round_up(r->out, LLMSQ_KERN_W4_ROWS);
    r->codes = kern_alloc((size_t)(out4 * r->in_pad / 2));
    /* 32 bytes of slack: the kernels load 8 scales / zeros at a time past a row's last group */
    r->scales = kern_alloc((size_t)(out4 * r->n_groups) * sizeof(uint16_t) + 32);
    r->zeros = kern_alloc((size_t)(out4 * r->n_groups) + 32);
    if (!r->codes || !r->scales || !r->zeros) {
        llmsq_kern_w4_free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a [%lld, %lld] int4 layout", (long long)q->out,
                           (long long)q->in);
    }
    llmsq_status st = LLMSQ_OK;
    if (q->g_idx) {
        r->perm = kern_alloc((size_t)q->in * sizeof(int32_t));
        bool identity = true;
        if (!r->perm) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        else if (!w4_perm_from_gidx(q, r->perm, &identity))
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                             "g_idx is not a permutation of contiguous groups of %lld columns; the int4 "
                             "kernels cannot gather it",
                             (long long)q->group_size);
        else if (identity) {
            free(r->perm);
            r->perm = NULL;
        }
    }
    if (st == LLMSQ_OK) st = scales_to_f16(q, r->scales);
    if (st == LLMSQ_OK) st = zeros_to_u8(q, r->zeros);
    for (int64_t o = 0; o < r->out && st == LLMSQ_OK; o++) {
        const uint8_t *c = q->codes + o * q->in;
        for (int64_t k = 0; k < q->in; k++) {
            int64_t i = r->perm ? r->perm[k] : k;
            if (c[i] > 15) {
                st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "code %d at [%lld, %lld] does not fit 4 bits", c[i],
                                 (long long)o, (long long)i);
                break;
            }
            /* column k = 64 b + 8 j + l  ->  word l of block b, nibble j */
            int64_t b = k / 64, j = (k % 64) / 8, l = k % 8;
            r->codes[llmsq_kern_w4_word(r, o, b) + l] |= (uint32_t)c[i] << (4 * j);
        }
    }
    if (st != LLMSQ_OK) {
        llmsq_kern_w4_free(r);
        return st;
    }
    *w = r;
    return LLMSQ_OK;
}

llmsq_status llmsq_kern_w4_unpack(const llmsq_kern_w4 *w, llmsq_qlinear **q)
{
    LLMSQ_ASSERT(w && q);
    LLMSQ_TRY(llmsq_qlinear_create(w->out, w->in, w->bits, w->group_size, LLMSQ_QGRID_MINMAX, w->perm != NULL, q));
    llmsq_qlinear *r = *q;
    r->act_order = w->perm != NULL;
    for (int64_t o = 0; o < w->out; o++)
        for (int64_t k = 0; k < w->in; k++) {
            int64_t b = k / 64, j = (k % 64) / 8, l = k % 8;
            int64_t i = w->perm ? w->perm[k] : k;
            r->codes[o * w->in + i] = (uint8_t)((w->codes[llmsq_kern_w4_word(w, o, b) + l] >> (4 * j)) & 0xf);
        }
    for (int64_t k = 0; k < w->out * w->n_groups; k++) {
        r->scales[k] = llmsq_f16_to_f32(w->scales[k]);
        r->zeros[k] = w->zeros[k];
    }
    if (w->perm)
        for (int64_t k = 0; k < w->in; k++) r->g_idx[w->perm[k]] = (int32_t)(k / w->group_size);
    return LLMSQ_OK;
}

size_t llmsq_kern_w4_bytes(const llmsq_kern_w4 *w)
{
    const int64_t out4 = kern_round_up(w->out, LLMSQ_KERN_W4_ROWS);
    return (size_t)(out4 * w->in_pad / 2) + (size_t)(out4 * w->n_groups) * 3;
}

/* ---- W8A8 ------------------------------------------------------------------------------------- */

void llmsq_kern_w8_free(llmsq_kern_w8 *w)
{
    if (!w) return;
    free(w->w);
    free(w->scales);
    free(w);
}

llmsq_status llmsq_kern_w8_pack(const llmsq_qlinear *q, llmsq_kern_w8 **w)
{
    LLMSQ_ASSERT(q && w);
    *w = NULL;
    if (q->bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the W8A8 layout needs 8-bit codes (got %d)", q->bits);
    if (q->n_groups != 1)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "the W8A8 layout has one scale per output channel (got %lld groups per row)",
                           (long long)q->n_groups);
    if (q->in > (1 << 17))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%lld input columns could overflow int32 accumulation",
                           (long long)q->in);
    for (int64_t o = 0; o < q->out; o++)
        if (q->zeros[o] != 128)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                               "the W8A8 layout needs symmetric weights (zero point 128; row %lld has %d)",
                               (long long)o, (int)q->zeros[o]);
    llmsq_kern_w8 *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = q->out;
    r->in = q->in;
    r->in_pad = kern_round_up(q->in, LLMSQ_KERN_W8_PAD);
    r->act_static = q->act_static;
    r->act_scale = q->act_scale;
    r->w = kern_alloc((size_t)(r->out * r->in_pad));
    r->scales = kern_alloc((size_t)r->out * sizeof(float));
    if (!r->w || !r->scales) {
        llmsq_kern_w8_free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a [%lld, %lld] int8 layout", (long long)q->out,
                           (long long)q->in);
    }
    for (int64_t o = 0; o < r->out; o++) {
        r->scales[o] = q->scales[o];
        for (int64_t i = 0; i < r->in; i++) r->w[o * r->in_pad + i] = (int8_t)((int)q->codes[o * q->in + i] - 128);
    }
    *w = r;
    return LLMSQ_OK;
}

llmsq_status llmsq_kern_w8_unpack(const llmsq_kern_w8 *w, llmsq_qlinear **q)
{
    LLMSQ_ASSERT(w && q);
    LLMSQ_TRY(llmsq_qlinear_create(w->out, w->in, 8, -1, LLMSQ_QGRID_ABSMAX, false, q));
    llmsq_qlinear *r = *q;
    r->act_bits = 8;
    r->act_static = w->act_static;
    r->act_scale = w->act_scale;
    for (int64_t o = 0; o < w->out; o++) {
        r->scales[o] = w->scales[o];
        r->zeros[o] = 128;
        for (int64_t i = 0; i < w->in; i++) r->codes[o * w->in + i] = (uint8_t)(w->w[o * w->in_pad + i] + 128);
    }
    return LLMSQ_OK;
}

size_t llmsq_kern_w8_bytes(const llmsq_kern_w8 *w)
{
    return (size_t)(w->out * w->in_pad) + (size_t)w->out * sizeof(float);
}
