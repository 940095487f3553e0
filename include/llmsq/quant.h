/*
 * Quantization: the canonical quantized linear, round-to-nearest and GPTQ.
 *
 * Canonical form (DESIGN.md "Store"): for a linear W [out, in], unsigned integer codes
 * q in [0, 2^bits - 1], and for each output row o and group g an f32 scale s[o, g] and an
 * integer zero point z[o, g] in [0, 2^bits - 1]:
 *
 *     W'[o, i] = s[o, g(i)] * (q[o, i] - z[o, g(i)]),   g(i) = g_idx ? g_idx[i] : i / group_size
 *
 * Groups run along the input dimension; the last group is partial when group_size does not
 * divide `in` (as in GPTQ's reference code). Scales are exactly representable in the scale
 * dtype the quantizer was given (F16 for GPTQ checkpoints; the model's float type for
 * compressed-tensors), and codes are computed with the rounded scale, so a checkpoint
 * reproduces the in-memory model bit for bit.
 * Symmetric grids have z = 2^(bits-1) everywhere. Writers translate this form into each
 * format; readers translate each format back.
 */
#ifndef LLMSQ_QUANT_H
#define LLMSQ_QUANT_H

#include "llmsq/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_qgrid {
    /* asymmetric, GPTQ's min/max grid: lo = min(0, min w), hi = max(0, max w),
     * s = (hi - lo) / (2^b - 1) (s = 1 when hi == lo), z = round(-lo / s) */
    LLMSQ_QGRID_MINMAX = 0,
    /* symmetric as GPTQ's reference quantizer: amax = max(|lo|, hi), hi = amax; when the group
     * has a negative value lo = -amax (s = 2 amax / (2^b - 1)), else lo stays 0;
     * s = (hi - lo) / (2^b - 1); z = 2^(b-1) */
    LLMSQ_QGRID_SYM,
    /* symmetric absmax: s = amax / (2^(b-1) - 1), z = 2^(b-1) (codes 1 .. 2^b - 1); AutoAWQ's
     * zero_point=False quantizer and SmoothQuant's per-channel int8 weights */
    LLMSQ_QGRID_ABSMAX,
    /* AutoAWQ's asymmetric quantizer (FORMATS.md 3.4): the group's own min/max, 0 not forced
     * into the range: s = max(wmax - wmin, 1e-5) / (2^b - 1), z = clamp(-round(wmin / s), 0, 2^b - 1) */
    LLMSQ_QGRID_AWQ
} llmsq_qgrid;

typedef struct llmsq_qlinear {
    int64_t  out, in;
    int      bits;        /* 2, 3, 4 or 8 */
    int64_t  group_size;  /* columns per group, in [1, in]; per channel = in */
    int64_t  n_groups;    /* ceil(in / group_size) */
    llmsq_qgrid grid;
    bool     act_order;   /* columns were processed in act-order (desc_act) */
    uint8_t *codes;       /* [out, in] */
    float   *scales;      /* [out, n_groups], f16-representable */
    int32_t *zeros;       /* [out, n_groups] */
    int32_t *g_idx;       /* [in] group of each input column, NULL = i / group_size */
    /* Activation quantization of this linear's input at inference (W8A8). act_bits 0: weight-only.
     * act_bits 8: int8 symmetric, per token (dynamic, s_t = max|x_t| / 127) or, when act_static,
     * per tensor with the calibrated scale act_scale; see llmsq_act_quant_i8. */
    int      act_bits;
    bool     act_static;
    float    act_scale;
} llmsq_qlinear;

/* Allocates a zeroed qlinear (codes, scales, zeros; g_idx when with_g_idx).
 * group_size -1 means per channel. Errors: ARG (bits, group size), NOMEM. */
LLMSQ_API llmsq_status llmsq_qlinear_create(int64_t out, int64_t in, int bits, int64_t group_size,
                                            llmsq_qgrid grid, bool with_g_idx, llmsq_qlinear **q);
LLMSQ_API void llmsq_qlinear_free(llmsq_qlinear *q);
LLMSQ_API llmsq_status llmsq_qlinear_clone(const llmsq_qlinear *q, llmsq_qlinear **out);

/* W [out, in] = dequantized weights (scalar reference). */
LLMSQ_API void llmsq_qlinear_dequant(const llmsq_qlinear *q, float *W);

/* Group of input column i. */
static inline int64_t llmsq_qlinear_group(const llmsq_qlinear *q, int64_t i)
{
    return q->g_idx ? q->g_idx[i] : i / q->group_size;
}

/* Symmetric int8 quantization of one activation row x [n] (W8A8 inference): with
 * static_scale > 0 it is the scale, otherwise s = max|x| / 127 (s = 1 when x is all zero).
 * q[i] = clamp(rint(x[i] / s), -128, 127) (round half to even, as vLLM's int8 kernels).
 * Returns s, so that x[i] ~ s * q[i]. */
LLMSQ_API float llmsq_act_quant_i8(const float *x, int64_t n, float static_scale, int8_t *q);

/* Parameters shared by RTN and GPTQ. */
typedef struct llmsq_quant_params {
    int         bits;          /* 2, 3, 4, 8; default 4 */
    int64_t     group_size;    /* > 0, or -1 per channel; default 128 */
    llmsq_qgrid grid;          /* default LLMSQ_QGRID_MINMAX (asymmetric) */
    llmsq_dtype scale_dtype;   /* F16 (default), BF16 or F32: scales are rounded to it before the
                                  zero points and codes are computed (F32: no rounding) */
    bool        zero_min_one;  /* keep asymmetric zero points >= 1 (GPTQ v1 checkpoints) */
    /* GPTQ only */
    double      damp;          /* dampening as a fraction of mean(diag H); default 0.01, range (0, 1) */
    int64_t     block_size;    /* lazy-batch columns; default 128 */
    bool        act_order;     /* desc_act: columns by decreasing H diagonal */
    bool        static_groups; /* with act_order: groups fixed on the unpermuted order */
    /* AWQ only (Lin et al. 2024; AutoAWQ's search) */
    int         awq_grid;      /* ratios alpha = i / awq_grid, i in [0, awq_grid); default 20 */
    bool        awq_duo;       /* scales x_mean^a / w_mean^(1-a) (AutoAWQ duo_scaling, default);
                                  false: x_mean^a (llm-awq) */
    bool        awq_clip;      /* clipping search after scaling (default true) */
    bool        awq_apply_only;/* fold scales (and clipping) into the float model, do not quantize
                                  (AutoAWQ's export_compatible; tests use it for the equivalence) */
    /* SmoothQuant / W8A8 only */
    double      sq_alpha;      /* migration strength in [0, 1]; default 0.5 */
    bool        act_static;    /* per-tensor static activation scales instead of per-token dynamic */
} llmsq_quant_params;

LLMSQ_API llmsq_quant_params llmsq_quant_default_params(void);

/* Checks ranges for a linear with `in` columns (bits, group size 0 or < -1...).
 * Errors: ARG naming the field and the accepted range. */
LLMSQ_API llmsq_status llmsq_quant_params_validate(const llmsq_quant_params *p, int64_t in);

/* Round-to-nearest (half to even) of W [out, in] on the grid of p. Errors: ARG, NOMEM,
 * NUMERIC (non-finite weight; the message gives the element). */
LLMSQ_API llmsq_status llmsq_rtn_quantize(const float *W, int64_t out, int64_t in,
                                          const llmsq_quant_params *p, llmsq_qlinear **q);

typedef struct llmsq_gptq_stats {
    double  damp_used;   /* final dampening fraction (raised when Cholesky failed) */
    int     damp_raises; /* how many times it was raised */
    int64_t dead_cols;   /* columns with H_jj == 0 (their weights are zeroed, as GPTQ does) */
    double  loss;        /* GPTQ's objective: sum over rows of (w - q)^2 / [H^-1]_jj / 2 */
    double  seconds;
} llmsq_gptq_stats;

/* GPTQ (Frantar et al. 2022, and its reference code) of W [out, in] with the Hessian
 * H [in, in] (double, row-major, symmetric; overwritten as scratch). Errors: ARG, NOMEM,
 * NUMERIC (H not positive definite even after raising the dampening). */
LLMSQ_API llmsq_status llmsq_gptq_quantize(const float *W, int64_t out, int64_t in, double *H,
                                           const llmsq_quant_params *p, llmsq_qlinear **q,
                                           llmsq_gptq_stats *stats);

/* Hessian accumulator H = 2/N sum_t x_t x_t^T over N accumulated rows, in double. */
typedef struct llmsq_hessian {
    int64_t n;        /* columns (in_features) */
    int64_t rows;     /* rows accumulated */
    double *sum;      /* [n, n] sum of x x^T (upper and lower filled by finalize) */
} llmsq_hessian;

LLMSQ_API llmsq_status llmsq_hessian_init(llmsq_hessian *h, int64_t n);
LLMSQ_API void         llmsq_hessian_free(llmsq_hessian *h);
/* Adds X [T, n] f32 (converted to double, accumulated with dsyrk). */
LLMSQ_API llmsq_status llmsq_hessian_add(llmsq_hessian *h, const float *X, int64_t T);
/* H [n, n] = 2/rows * sum, both triangles filled; caller owns the malloc'd result. */
LLMSQ_API llmsq_status llmsq_hessian_finalize(const llmsq_hessian *h, double **H);

/* ---- quantization as a calibration pass ---------------------------------------------- */

typedef enum llmsq_quant_method {
    LLMSQ_QUANT_RTN = 0,
    LLMSQ_QUANT_GPTQ,
    LLMSQ_QUANT_AWQ,         /* AWQ scale + clip search, then RTN on the AWQ grid */
    LLMSQ_QUANT_AWQ_GPTQ,    /* AWQ scale + clip search, then GPTQ */
    LLMSQ_QUANT_SMOOTHQUANT, /* smoothing folded into the norms, then W8A8 */
    LLMSQ_QUANT_W8A8         /* naive W8A8: int8 per-channel weights, int8 activations, no smoothing */
} llmsq_quant_method;

struct llmsq_calib_pass;
typedef struct llmsq_quant_pass llmsq_quant_pass;

/* One quantized linear's figures, for the report. */
typedef struct llmsq_quant_record {
    char    module[128];
    int64_t out, in;
    double  rel_err;    /* ||W - Q||_F / ||W||_F */
    double  gptq_loss;  /* GPTQ's objective (0 for RTN) */
    double  damp;       /* dampening used (GPTQ) */
    double  seconds;
} llmsq_quant_record;

/* A pass quantizing every block linear whose module name ("model.layers.0.mlp.down_proj")
 * does not match `ignore` (a POSIX extended regex, searched anywhere in the name; NULL =
 * none). Errors: ARG (bad regex, params out of range). */
LLMSQ_API llmsq_status llmsq_quant_pass_create(llmsq_quant_method method, const llmsq_quant_params *p,
                                               const char *ignore, llmsq_quant_pass **out);
LLMSQ_API const struct llmsq_calib_pass *llmsq_quant_pass_calib(llmsq_quant_pass *qp);
LLMSQ_API size_t llmsq_quant_pass_records(const llmsq_quant_pass *qp, const llmsq_quant_record **records);
LLMSQ_API void   llmsq_quant_pass_free(llmsq_quant_pass *qp);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_QUANT_H */
