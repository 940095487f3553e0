/* Packing of 2:4 sparse weights (f16 values, or int4 codes) into the layouts of kernels.h. */
#include "kern-impl.h"

#include <math.h>

/* Kept offsets of one group of 4: the nonzero ones (nz[c] for c < n, n <= 4 columns present),
 * completed with the lowest free offsets (possibly past the row's end). Returns false when the
 * group has more than 2 nonzeros. */
static bool s24_pick(const bool nz[4], int n, int off[2])
{
    int k = 0;
    for (int c = 0; c < n; c++)
        if (nz[c]) {
            if (k == 2) return false;
            off[k++] = c;
        }
    for (int c = 0; c < 4 && k < 2; c++) {
        bool used = false;
        for (int t = 0; t < k; t++) used |= off[t] == c;
        if (!used) off[k++] = c;
    }
    if (off[0] > off[1]) {
        int t = off[0];
        off[0] = off[1];
        off[1] = t;
    }
    return true;
}

static llmsq_status s24_reject(int64_t o, int64_t k, int64_t in)
{
    return llmsq_error(LLMSQ_STATUS_ARG,
                       "weights are not 2:4 sparse: row %lld has more than 2 nonzeros in columns %lld..%lld",
                       (long long)o, (long long)(4 * k), (long long)(4 * k + 3 < in ? 4 * k + 3 : in - 1));
}

/* ---- 2:4, f16 values ---------------------------------------------------------------------------- */

void llmsq_kern_s24_free(llmsq_kern_s24 *s)
{
    if (!s) return;
    free(s->values);
    free(s->meta);
    free(s);
}

llmsq_status llmsq_kern_s24_pack(const float *W, int64_t out, int64_t in, llmsq_kern_s24 **s)
{
    LLMSQ_ASSERT(W && s);
    *s = NULL;
    if (out <= 0 || in <= 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "2:4 weights [%lld, %lld] are empty", (long long)out, (long long)in);
    llmsq_kern_s24 *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = out;
    r->in = in;
    r->in_pad = kern_round_up(in, LLMSQ_KERN_S24_UNIT);
    r->values = kern_alloc((size_t)(out * r->in_pad / 2) * sizeof(uint16_t));
    r->meta = kern_alloc((size_t)(out * r->in_pad / 8));
    if (!r->values || !r->meta) {
        llmsq_kern_s24_free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a [%lld, %lld] 2:4 layout", (long long)out,
                           (long long)in);
    }
    const int64_t ngr = r->in_pad / 4;
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < ngr; k++) {
            const int64_t c0 = 4 * k;
            const int n = c0 >= in ? 0 : in - c0 < 4 ? (int)(in - c0) : 4;
            bool nz[4] = {false, false, false, false};
            for (int c = 0; c < n; c++) nz[c] = W[o * in + c0 + c] != 0.0f;
            int off[2];
            if (!s24_pick(nz, n, off)) {
                llmsq_kern_s24_free(r);
                return s24_reject(o, k, in);
            }
            for (int v = 0; v < 2; v++)
                r->values[o * (r->in_pad / 2) + 2 * k + v] =
                    off[v] < n ? llmsq_f32_to_f16(W[o * in + c0 + off[v]]) : 0;
            r->meta[o * (r->in_pad / 8) + k / 2] |= (uint8_t)((off[0] | off[1] << 2) << (4 * (k % 2)));
        }
    *s = r;
    return LLMSQ_OK;
}

void llmsq_kern_s24_unpack(const llmsq_kern_s24 *s, float *W)
{
    LLMSQ_ASSERT(s && W);
    kern_s24_dequant(s, 0, s->out, W);
}

size_t llmsq_kern_s24_bytes(const llmsq_kern_s24 *s)
{
    return (size_t)(s->out * s->in_pad / 2) * sizeof(uint16_t) + (size_t)(s->out * s->in_pad / 8);
}

/* ---- 2:4 + int4 ------------------------------------------------------------------------------------- */

void llmsq_kern_s24w4_free(llmsq_kern_s24w4 *s)
{
    if (!s) return;
    free(s->codes);
    free(s->meta);
    free(s->scales);
    free(s->zeros);
    free(s);
}

llmsq_status llmsq_kern_s24w4_pack(const llmsq_qlinear *q, llmsq_kern_s24w4 **s)
{
    LLMSQ_ASSERT(q && s);
    *s = NULL;
    if (q->bits > 4)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the 2:4 int4 layout holds codes of at most 4 bits (got %d)",
                           q->bits);
    if (q->n_groups > 1 && q->group_size % 16 != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "the 2:4 int4 kernels need a group size that is a multiple of 16 or the whole row "
                           "(got %lld)",
                           (long long)q->group_size);
    if (q->g_idx)
        for (int64_t i = 0; i < q->in; i++)
            if (q->g_idx[i] != i / q->group_size)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the 2:4 int4 layout does not take act-order g_idx");
    const int64_t out = q->out, in = q->in, ng = q->n_groups;
    llmsq_kern_s24w4 *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = out;
    r->in = in;
    r->in_pad = kern_round_up(in, LLMSQ_KERN_S24_UNIT);
    r->group_size = q->group_size;
    r->n_groups = ng;
    r->bits = q->bits;
    r->codes = kern_alloc((size_t)(out * r->in_pad / 16) * sizeof(uint32_t));
    r->meta = kern_alloc((size_t)(out * r->in_pad / 8));
    /* 32 bytes of slack: the kernels load 8 scales at a time past a row's last group */
    r->scales = kern_alloc((size_t)(out * ng) * sizeof(uint16_t) + 32);
    r->zeros = kern_alloc((size_t)(out * ng) + 32);
    if (!r->codes || !r->meta || !r->scales || !r->zeros) {
        llmsq_kern_s24w4_free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a [%lld, %lld] 2:4 int4 layout",
                           (long long)out, (long long)in);
    }
    llmsq_status st = LLMSQ_OK;
    for (int64_t k = 0; k < out * ng && st == LLMSQ_OK; k++) {
        if (!isfinite(q->scales[k]) || !kern_f16_exact(q->scales[k], &r->scales[k]))
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "scale %g (row %lld) is not an f16 value",
                             (double)q->scales[k], (long long)(k / ng));
        else if (q->zeros[k] < 0 || q->zeros[k] > 15)
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "zero point %d does not fit 4 bits", (int)q->zeros[k]);
        else
            r->zeros[k] = (uint8_t)q->zeros[k];
    }
    const int64_t ngr = r->in_pad / 4;
    for (int64_t o = 0; o < out && st == LLMSQ_OK; o++)
        for (int64_t k = 0; k < ngr; k++) {
            const int64_t c0 = 4 * k;
            const int n = c0 >= in ? 0 : in - c0 < 4 ? (int)(in - c0) : 4;
            bool nz[4] = {false, false, false, false};
            for (int c = 0; c < n; c++) {
                const int64_t g = (c0 + c) / q->group_size;
                const uint8_t code = q->codes[o * in + c0 + c];
                if (code > 15) {
                    st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "code %d does not fit 4 bits", code);
                    break;
                }
                nz[c] = q->scales[o * ng + g] * (float)((int32_t)code - q->zeros[o * ng + g]) != 0.0f;
            }
            if (st != LLMSQ_OK) break;
            int off[2];
            if (!s24_pick(nz, n, off)) {
                st = s24_reject(o, k, in);
                break;
            }
            const int64_t gk = (c0 < in ? c0 : in - 1) / q->group_size; /* group of the fillers */
            for (int v = 0; v < 2; v++) {
                const uint32_t code = off[v] < n ? q->codes[o * in + c0 + off[v]] : (uint32_t)q->zeros[o * ng + gk];
                const int64_t slot = 2 * (k % 4) + v; /* value index within the 16-column word */
                r->codes[o * (r->in_pad / 16) + k / 4] |= code << (4 * slot);
            }
            r->meta[o * (r->in_pad / 8) + k / 2] |= (uint8_t)((off[0] | off[1] << 2) << (4 * (k % 2)));
        }
    if (st != LLMSQ_OK) {
        llmsq_kern_s24w4_free(r);
        return st;
    }
    *s = r;
    return LLMSQ_OK;
}

llmsq_status llmsq_kern_s24w4_unpack(const llmsq_kern_s24w4 *s, llmsq_qlinear **q)
{
    LLMSQ_ASSERT(s && q);
    LLMSQ_TRY(llmsq_qlinear_create(s->out, s->in, s->bits, s->group_size, LLMSQ_QGRID_MINMAX, false, q));
    llmsq_qlinear *r = *q;
    const int64_t ng = s->n_groups, in = s->in;
    for (int64_t k = 0; k < s->out * ng; k++) {
        r->scales[k] = llmsq_f16_to_f32(s->scales[k]);
        r->zeros[k] = s->zeros[k];
    }
    for (int64_t o = 0; o < s->out; o++) {
        for (int64_t i = 0; i < in; i++) r->codes[o * in + i] = (uint8_t)r->zeros[o * ng + i / s->group_size];
        for (int64_t k = 0; 4 * k < in; k++) {
            const uint8_t m = (uint8_t)(s->meta[o * (s->in_pad / 8) + k / 2] >> (4 * (k % 2)));
            const uint32_t word = s->codes[o * (s->in_pad / 16) + k / 4];
            for (int v = 0; v < 2; v++) {
                const int64_t i = 4 * k + ((m >> (2 * v)) & 3);
                if (i < in) r->codes[o * in + i] = (uint8_t)((word >> (4 * (2 * (k % 4) + v))) & 0xf);
            }
        }
    }
    return LLMSQ_OK;
}

size_t llmsq_kern_s24w4_bytes(const llmsq_kern_s24w4 *s)
{
    return (size_t)(s->out * s->in_pad / 16) * sizeof(uint32_t) + (size_t)(s->out * s->in_pad / 8) +
           (size_t)(s->out * s->n_groups) * 3;
}
