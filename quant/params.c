/* Parameters shared by RTN and GPTQ: defaults and range checks. */
#include "quant/grid.h"

#include <math.h>

llmsq_quant_params llmsq_quant_default_params(void)
{
    return (llmsq_quant_params){
        .bits = 4,
        .group_size = 128,
        .grid = LLMSQ_QGRID_MINMAX,
        .scale_dtype = LLMSQ_DTYPE_F16,
        .zero_min_one = false,
        .damp = 0.01,
        .block_size = 128,
        .act_order = false,
        .static_groups = false,
        .awq_grid = 20,
        .awq_duo = true,
        .awq_clip = true,
        .awq_apply_only = false,
        .sq_alpha = 0.5,
        .act_static = false,
    };
}

llmsq_status llmsq_quant_params_check(const llmsq_quant_params *p, int64_t in, bool gptq)
{
    LLMSQ_ASSERT(p != NULL);
    if (in < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: the linear has %lld input columns, need at least 1",
                           (long long)in);
    if (p->bits != 2 && p->bits != 3 && p->bits != 4 && p->bits != 8)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: bits must be 2, 3, 4 or 8 (got %d)", p->bits);
    if (p->group_size == 0 || p->group_size < -1)
        return llmsq_error(LLMSQ_STATUS_ARG,
                           "quantization: group size must be a positive number of columns or -1 (per channel), "
                           "got %lld",
                           (long long)p->group_size);
    if (p->grid != LLMSQ_QGRID_MINMAX && p->grid != LLMSQ_QGRID_SYM && p->grid != LLMSQ_QGRID_ABSMAX &&
        p->grid != LLMSQ_QGRID_AWQ)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: grid must be MINMAX, SYM, ABSMAX or AWQ (got %d)",
                           (int)p->grid);
    if (p->awq_grid < 1 || p->awq_grid > 1000)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: the AWQ grid must have 1 to 1000 points (got %d)",
                           p->awq_grid);
    if (!(p->sq_alpha >= 0.0 && p->sq_alpha <= 1.0))
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: SmoothQuant alpha must be in [0, 1] (got %g)", p->sq_alpha);
    if (p->scale_dtype != LLMSQ_DTYPE_F16 && p->scale_dtype != LLMSQ_DTYPE_BF16 && p->scale_dtype != LLMSQ_DTYPE_F32)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: the scale dtype must be F16, BF16 or F32");
    if (!gptq) return LLMSQ_OK;
    if (!(p->damp > 0.0 && p->damp < 1.0)) /* also rejects NaN */
        return llmsq_error(LLMSQ_STATUS_ARG,
                           "quantization: damp must be in (0, 1), a fraction of mean(diag H) (got %g)", p->damp);
    if (p->block_size < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "quantization: block size must be at least 1 column (got %lld)",
                           (long long)p->block_size);
    return LLMSQ_OK;
}

llmsq_status llmsq_quant_params_validate(const llmsq_quant_params *p, int64_t in)
{
    return llmsq_quant_params_check(p, in, true);
}
