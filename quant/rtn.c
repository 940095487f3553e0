/* Round-to-nearest quantization of a linear on the grids of grid.h. */
#include "quant/grid.h"

#include <math.h>
#include <stdint.h>

/* Quantizes row o of W [out, in] into q (codes, scales, zeros of that row). */
static llmsq_status rtn_row(const float *w, int64_t in, const llmsq_quant_params *p, llmsq_qlinear *q, int64_t o)
{
    const int64_t G = q->group_size;
    const int maxq = (1 << p->bits) - 1;
    uint8_t *codes = q->codes + o * in;
    for (int64_t g = 0; g < q->n_groups; g++) {
        const int64_t c0 = g * G, c1 = c0 + G < in ? c0 + G : in;
        double wmin = w[c0], wmax = w[c0];
        for (int64_t i = c0 + 1; i < c1; i++) {
            wmin = fmin(wmin, w[i]);
            wmax = fmax(wmax, w[i]);
        }
        float s;
        int32_t z;
        const llmsq_status st = llmsq_grid_fit(p->grid, p->bits, p->zero_min_one, p->scale_dtype, wmin, wmax, &s, &z);
        if (st != LLMSQ_OK) return st;
        q->scales[o * q->n_groups + g] = s;
        q->zeros[o * q->n_groups + g] = z;
        for (int64_t i = c0; i < c1; i++) codes[i] = (uint8_t)llmsq_grid_code(w[i], s, z, maxq);
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_rtn_quantize(const float *W, int64_t out, int64_t in, const llmsq_quant_params *p,
                                llmsq_qlinear **q)
{
    LLMSQ_ASSERT(W != NULL && q != NULL);
    *q = NULL;
    LLMSQ_TRY(llmsq_quant_params_check(p, in, false));
    if (out < 1) return llmsq_error(LLMSQ_STATUS_ARG, "RTN: the linear has %lld output rows", (long long)out);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            if (!isfinite(W[o * in + i]))
                return llmsq_error(LLMSQ_STATUS_NUMERIC, "RTN: weight [%lld, %lld] is not finite (%g)",
                                   (long long)o, (long long)i, (double)W[o * in + i]);

    llmsq_qlinear *r;
    LLMSQ_TRY(llmsq_qlinear_create(out, in, p->bits, p->group_size, p->grid, false, &r));
    /* Rows are independent, so any thread count gives the same bytes. The error message is
     * thread-local: workers only record the first failing row, the caller's thread reports. */
    int64_t bad = INT64_MAX;
#pragma omp parallel for schedule(static) if (out * in >= (1 << 16))
    for (int64_t o = 0; o < out; o++) {
        if (rtn_row(W + o * in, in, p, r, o) != LLMSQ_OK) {
#pragma omp critical(llmsq_rtn_bad)
            if (o < bad) bad = o;
        }
    }
    if (bad != INT64_MAX) {
        const llmsq_status st = rtn_row(W + bad * in, in, p, r, bad);
        llmsq_qlinear_free(r);
        return llmsq_error_prefix(st, "RTN: row %lld", (long long)bad);
    }
    *q = r;
    return LLMSQ_OK;
}
