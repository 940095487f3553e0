/*
 * Internal: the quantization grids of quant.h, shared by RTN and GPTQ so that both produce
 * the same scale, zero point and code for the same group values.
 *
 * A group's grid depends only on its smallest and largest value. The exact recipe (the
 * tests' scalar references repeat it):
 *
 *   lo = min(0, wmin), hi = max(0, wmax), maxq = 2^bits - 1, all in double;
 *   MINMAX: s = (hi - lo) / maxq, z = nearbyint(-lo / s16), clamped to [0, maxq]
 *   SYM:    amax = max(-lo, hi); hi = amax; lo = (lo < 0) ? -amax : 0;
 *           s = (hi - lo) / maxq, z = 2^(bits-1)
 *   ABSMAX: amax = max(|wmin|, |wmax|); s = amax / (2^(bits-1) - 1), z = 2^(bits-1)
 *   AWQ:    s = max(wmax - wmin, 1e-5) / maxq (the raw extremes, 0 not forced in),
 *           z = clamp(-nearbyint(wmin / s16), 0, maxq)
 *   s16 = s rounded to the scale dtype (F16 by default; BF16; F32 = (float)s) before the
 *   zero point and the codes are computed, so a checkpoint storing scales in that dtype
 *   reproduces the codes exactly. A group whose range is empty (all zero) gets s16 = 1. A nonzero range
 *   whose scale underflows f16 gets the smallest f16 subnormal (2^-24); one that overflows
 *   is a NUMERIC error.
 *   zero_min_one (MINMAX only): a zero point that rounds to 0 becomes 1 and the scale is
 *   refitted to s = hi / (maxq - 1), so the grid [-s, (maxq - 1) s] still covers [lo, hi]
 *   (GPTQ v1 checkpoints store z - 1 and cannot hold z = 0).
 *
 *   code(w) = clamp(nearbyint(w / s16) + z, 0, maxq)   (round half to even, as torch.round)
 */
#ifndef LLMSQ_QUANT_GRID_H
#define LLMSQ_QUANT_GRID_H

#include "llmsq/quant.h"

#include <math.h>

/* Scale and zero point of one group with finite extremes wmin <= wmax. Errors: NUMERIC
 * (non-finite extremes, or a scale beyond the f16 range); the message does not say which
 * group, callers prefix it. */
llmsq_status llmsq_grid_fit(llmsq_qgrid grid, int bits, bool zero_min_one, llmsq_dtype scale_dtype, double wmin, double wmax,
                            float *scale, int32_t *zero);

/* Code of w on the grid (scale, zero). NaN maps to 0; callers reject non-finite weights. */
static inline int llmsq_grid_code(double w, double scale, int32_t zero, int maxq)
{
    const double q = nearbyint(w / scale) + (double)zero;
    if (!(q >= 0.0)) return 0;
    return q > (double)maxq ? maxq : (int)q;
}

/* Range checks of quant.h's llmsq_quant_params_validate; the GPTQ-only fields (damp,
 * block_size) are checked only when `gptq` is true, so RTN ignores them. Errors: ARG. */
llmsq_status llmsq_quant_params_check(const llmsq_quant_params *p, int64_t in, bool gptq);

#endif /* LLMSQ_QUANT_GRID_H */
