/* Quantization grids shared by RTN and GPTQ (recipe in grid.h). */
#include "quant/grid.h"

#include "llmsq/tensor.h"

#include <math.h>

/* f16 rounding of a positive scale. Underflow keeps the smallest subnormal instead of 0 so
 * that w / s stays finite; overflow is reported because no f16 checkpoint could hold it. */
static llmsq_status scale_round(double s, llmsq_dtype dt, float *out)
{
    float r = (float)s;
    if (dt == LLMSQ_DTYPE_F16) r = llmsq_f16_to_f32(llmsq_f32_to_f16(r));
    else if (dt == LLMSQ_DTYPE_BF16) r = llmsq_bf16_to_f32(llmsq_f32_to_bf16(r));
    if (isinf(r) || isnan(r))
        return llmsq_error(LLMSQ_STATUS_NUMERIC, "quantization scale %g is beyond the %s range (|w| too large)", s,
                           llmsq_dtype_info(dt)->name);
    if (r == 0.0f) r = dt == LLMSQ_DTYPE_F16 ? 0x1p-24f : dt == LLMSQ_DTYPE_BF16 ? 0x1p-133f : 0x1p-149f;
    *out = r;
    return LLMSQ_OK;
}

llmsq_status llmsq_grid_fit(llmsq_qgrid grid, int bits, bool zero_min_one, llmsq_dtype scale_dtype, double wmin, double wmax,
                            float *scale, int32_t *zero)
{
    if (!isfinite(wmin) || !isfinite(wmax))
        return llmsq_error(LLMSQ_STATUS_NUMERIC, "group has a non-finite value");
    const int maxq = (1 << bits) - 1;
    const int32_t mid = 1 << (bits - 1);
    double lo = fmin(0.0, wmin), hi = fmax(0.0, wmax);
    switch (grid) {
    case LLMSQ_QGRID_MINMAX: {
        if (hi == lo) {
            *scale = 1.0f;
            *zero = zero_min_one ? 1 : 0;
            return LLMSQ_OK;
        }
        float s;
        LLMSQ_TRY(scale_round((hi - lo) / maxq, scale_dtype, &s));
        double z = nearbyint(-lo / (double)s);
        if (z < 0) z = 0;
        if (z > maxq) z = maxq;
        if (zero_min_one && z < 1) {
            /* z rounded to 0 means -lo < s/2 < hi / (maxq - 1), so the refitted grid
             * [-s', (maxq - 1) s'] still holds [lo, hi]. hi > 0 here since hi != lo. */
            LLMSQ_TRY(scale_round(hi / (maxq - 1), scale_dtype, &s));
            z = 1;
        }
        *scale = s;
        *zero = (int32_t)z;
        return LLMSQ_OK;
    }
    case LLMSQ_QGRID_SYM: {
        /* GPTQ's reference quantizer: a group without negative values keeps lo = 0, so only
         * half of the symmetric grid is used (AutoGPTQ behaves the same). */
        const double amax = fmax(-lo, hi);
        hi = amax;
        lo = lo < 0 ? -amax : 0.0;
        *zero = mid;
        if (hi == lo) {
            *scale = 1.0f;
            return LLMSQ_OK;
        }
        return scale_round((hi - lo) / maxq, scale_dtype, scale);
    }
    case LLMSQ_QGRID_ABSMAX: {
        const double amax = fmax(fabs(wmin), fabs(wmax));
        *zero = mid;
        if (amax == 0) {
            *scale = 1.0f;
            return LLMSQ_OK;
        }
        return scale_round(amax / (mid - 1), scale_dtype, scale);
    }
    case LLMSQ_QGRID_AWQ: {
        /* AutoAWQ pseudo_quantize_tensor: the group's own range (0 need not be inside it) */
        float s;
        LLMSQ_TRY(scale_round(fmax(wmax - wmin, 1e-5) / maxq, scale_dtype, &s));
        double z = -nearbyint(wmin / (double)s);
        *scale = s;
        *zero = (int32_t)(z < 0 ? 0 : z > maxq ? maxq : z);
        return LLMSQ_OK;
    }
    }
    return llmsq_error(LLMSQ_STATUS_ARG, "unknown quantization grid %d", (int)grid);
}
