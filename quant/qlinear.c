/* The canonical quantized linear: allocation, copy, dequantization (scalar reference). */
#include "llmsq/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

llmsq_status llmsq_qlinear_create(int64_t out, int64_t in, int bits, int64_t group_size, llmsq_qgrid grid,
                                  bool with_g_idx, llmsq_qlinear **q)
{
    *q = NULL;
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return llmsq_error(LLMSQ_STATUS_ARG, "bits must be 2, 3, 4 or 8 (got %d)", bits);
    if (out <= 0 || in <= 0) return llmsq_error(LLMSQ_STATUS_ARG, "quantized linear [%lld, %lld] is empty",
                                                (long long)out, (long long)in);
    if (group_size == -1) group_size = in;
    if (group_size <= 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "group size must be positive or -1 (per channel), got %lld",
                           (long long)group_size);
    if (group_size > in) group_size = in;
    llmsq_qlinear *r = calloc(1, sizeof *r);
    if (!r) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    r->out = out;
    r->in = in;
    r->bits = bits;
    r->group_size = group_size;
    r->n_groups = (in + group_size - 1) / group_size;
    r->grid = grid;
    r->codes = calloc((size_t)(out * in), 1);
    r->scales = calloc((size_t)(out * r->n_groups), sizeof *r->scales);
    r->zeros = calloc((size_t)(out * r->n_groups), sizeof *r->zeros);
    r->g_idx = with_g_idx ? calloc((size_t)in, sizeof *r->g_idx) : NULL;
    if (!r->codes || !r->scales || !r->zeros || (with_g_idx && !r->g_idx)) {
        llmsq_qlinear_free(r);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a [%lld, %lld] quantized linear", (long long)out,
                           (long long)in);
    }
    *q = r;
    return LLMSQ_OK;
}

void llmsq_qlinear_free(llmsq_qlinear *q)
{
    if (!q) return;
    free(q->codes);
    free(q->scales);
    free(q->zeros);
    free(q->g_idx);
    free(q);
}

llmsq_status llmsq_qlinear_clone(const llmsq_qlinear *q, llmsq_qlinear **out)
{
    LLMSQ_TRY(llmsq_qlinear_create(q->out, q->in, q->bits, q->group_size, q->grid, q->g_idx != NULL, out));
    llmsq_qlinear *r = *out;
    r->act_order = q->act_order;
    r->act_bits = q->act_bits;
    r->act_static = q->act_static;
    r->act_scale = q->act_scale;
    memcpy(r->codes, q->codes, (size_t)(q->out * q->in));
    memcpy(r->scales, q->scales, (size_t)(q->out * q->n_groups) * sizeof *r->scales);
    memcpy(r->zeros, q->zeros, (size_t)(q->out * q->n_groups) * sizeof *r->zeros);
    if (q->g_idx) memcpy(r->g_idx, q->g_idx, (size_t)q->in * sizeof *r->g_idx);
    return LLMSQ_OK;
}

void llmsq_qlinear_dequant(const llmsq_qlinear *q, float *W)
{
    for (int64_t o = 0; o < q->out; o++) {
        const float *s = q->scales + o * q->n_groups;
        const int32_t *z = q->zeros + o * q->n_groups;
        const uint8_t *c = q->codes + o * q->in;
        float *w = W + o * q->in;
        for (int64_t i = 0; i < q->in; i++) {
            int64_t g = llmsq_qlinear_group(q, i);
            w[i] = s[g] * (float)((int32_t)c[i] - z[g]);
        }
    }
}

float llmsq_act_quant_i8(const float *x, int64_t n, float static_scale, int8_t *q)
{
    float s = static_scale;
    if (!(s > 0.0f)) {
        float amax = 0.0f;
        for (int64_t i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        s = amax > 0.0f ? amax / 127.0f : 1.0f;
    }
    for (int64_t i = 0; i < n; i++) {
        float v = rintf(x[i] / s);
        q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
    }
    return s;
}
