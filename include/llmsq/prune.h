/*
 * Pruning: magnitude, Wanda, SparseGPT and RIA; unstructured sparsity and N:M patterns.
 *
 * A pruned linear stays a dense F32 weight [out, in] with exact zeros where weights were
 * removed (or, pruned and quantized together, a quantized linear whose removed entries have
 * code == zero point). N:M means: in every group of M consecutive input columns of a row, at
 * most N weights are nonzero (2:4 keeps 2 of every 4), groups starting at column 0; a last
 * partial group (in % M != 0) keeps at most N as well.
 *
 * Scores (the papers' definitions), compared within each output row unless noted:
 *   magnitude  |W_ij| (per row, as Wanda's baseline)
 *   Wanda      |W_ij| * ||X_j||_2                       (Sun et al. 2023)
 *   RIA        (|W_ij| / sum_k |W_ik| + |W_ij| / sum_k |W_kj|) * ||X_j||_2^a   (Zhang et al. 2024)
 *   SparseGPT  OBS saliency w^2 / [H^-1]_jj with lazy block updates and adaptive masks per
 *              block of 128 columns (Frantar & Alistarh 2023); the remaining weights are updated
 *              to compensate, and may be quantized in the same sweep (joint sparse + quantized).
 */
#ifndef LLMSQ_PRUNE_H
#define LLMSQ_PRUNE_H

#include "llmsq/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_prune_method {
    LLMSQ_PRUNE_MAGNITUDE = 0,
    LLMSQ_PRUNE_WANDA,
    LLMSQ_PRUNE_SPARSEGPT,
    LLMSQ_PRUNE_RIA
} llmsq_prune_method;

typedef struct llmsq_prune_params {
    llmsq_prune_method method;
    double  sparsity;     /* unstructured: fraction removed per row, range [0, 1); ignored for N:M */
    int     nm_n, nm_m;   /* N:M pattern (keep N of M), 0:0 = unstructured; 0 < N < M <= 64 */
    double  damp;         /* SparseGPT dampening, fraction of mean(diag H); default 0.01 */
    int64_t block_size;   /* SparseGPT lazy-update and mask block; default 128 */
    double  ria_alpha;    /* RIA activation exponent a; default 0.5 */
    bool    ria_permute;  /* RIA channel permutation before N:M, for down_proj (folded into gate/up
                             rows; the other linears' inputs cannot be permuted) */
    bool    quantize;     /* SparseGPT only: quantize inside the sweep with `quant` */
    llmsq_quant_params quant;
} llmsq_prune_params;

LLMSQ_API llmsq_prune_params llmsq_prune_default_params(void);

/* Ranges: sparsity in [0, 1), N:M with 0 < N < M <= 64 (so 3:2 is an error), method known.
 * Errors: ARG naming the field. */
LLMSQ_API llmsq_status llmsq_prune_params_validate(const llmsq_prune_params *p);

/* Magnitude, Wanda and RIA prune W [out, in] in place (no update of the kept weights).
 * sq_norm [in] = sum over calibration tokens of x_j^2 (NULL for magnitude).
 * Errors: ARG, NOMEM, NUMERIC (non-finite weight). */
LLMSQ_API llmsq_status llmsq_prune_scored(float *W, int64_t out, int64_t in, const double *sq_norm,
                                          const llmsq_prune_params *p);

/* score [out, in] = the importance llmsq_prune_scored ranks W [out, in] by (rounded to f32);
 * the input of RIA's channel permutation. Errors as llmsq_prune_scored. */
LLMSQ_API llmsq_status llmsq_prune_score_matrix(const float *W, int64_t out, int64_t in, const double *sq_norm,
                                                const llmsq_prune_params *p, float *score);

typedef struct llmsq_sparsegpt_stats {
    double  damp_used;
    int     damp_raises;
    double  loss;       /* sum of the OBS errors */
    double  seconds;
} llmsq_sparsegpt_stats;

/* SparseGPT of W [out, in] (pruned in place) with the Hessian H [in, in] (scratch). When
 * p->quantize, *q receives the joint sparse + quantized linear (and W its dequantized
 * values); else q may be NULL. Errors: ARG, NOMEM, NUMERIC. */
LLMSQ_API llmsq_status llmsq_sparsegpt_prune(float *W, int64_t out, int64_t in, double *H,
                                             const llmsq_prune_params *p, llmsq_qlinear **q,
                                             llmsq_sparsegpt_stats *stats);

/* Fraction of exact zeros in W [n]; and whether every row of W [out, in] satisfies N:M (the
 * index of the first offending row in *bad_row, -1 when all do). */
LLMSQ_API double llmsq_sparsity(const float *W, int64_t n);
LLMSQ_API bool   llmsq_check_nm(const float *W, int64_t out, int64_t in, int n, int m, int64_t *bad_row);

/* ---- pruning as a calibration pass ------------------------------------------------------ */

struct llmsq_calib_pass;
typedef struct llmsq_prune_pass llmsq_prune_pass;

typedef struct llmsq_prune_record {
    char    module[128];
    int64_t out, in;
    double  sparsity;  /* fraction of zeros after pruning */
    double  rel_err;   /* ||W - W'||_F / ||W||_F (W' includes quantization when joint) */
    double  loss;      /* SparseGPT's OBS loss (0 for the scored methods) */
    double  seconds;
} llmsq_prune_record;

/* A pass pruning every block linear whose module name does not match `skip` (POSIX extended
 * regex; NULL = none). then_rtn: quantize the pruned weights with RTN on p->quant (zeros stay
 * zeros); joint quantization inside SparseGPT is p->quantize. Errors: ARG. */
LLMSQ_API llmsq_status llmsq_prune_pass_create(const llmsq_prune_params *p, bool then_rtn, const char *skip,
                                               llmsq_prune_pass **out);
LLMSQ_API const struct llmsq_calib_pass *llmsq_prune_pass_calib(llmsq_prune_pass *pp);
LLMSQ_API size_t llmsq_prune_pass_records(const llmsq_prune_pass *pp, const llmsq_prune_record **records);
LLMSQ_API void   llmsq_prune_pass_free(llmsq_prune_pass *pp);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_PRUNE_H */

/* ---- channel permutation for N:M sparsity (RIA, Zhang et al. 2024) -----------------------
 * Appended section with its own guard: it needs the tensor store, which the pruning API above
 * does not. Implemented in prune/ria_perm.c. */
#ifndef LLMSQ_PRUNE_PERM_H
#define LLMSQ_PRUNE_PERM_H

#include "llmsq/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A permutation of the input columns of a score matrix for N:M selection.
 * score [out, in] row-major, finite and >= 0 (an importance such as RIA's or Wanda's).
 * perm [in] receives the order: position k of the permuted matrix holds original column
 * perm[k]. The objective is the total score kept when every row keeps the n largest of each
 * consecutive m permuted columns; *kept_before (identity) and *kept_after (perm) receive it,
 * either pointer may be NULL. Heuristic channel reallocation, then up to `iters` sweeps of
 * linear-sum-assignment refinement (iters 0: reallocation only; 1 to 3 get most of the gain,
 * sweeps stop early when one changes nothing); deterministic, independent of the thread count,
 * never worse than the identity (perm is the identity when nothing better was found). With
 * iters > 0 it allocates a second [out, in] float matrix. Errors: ARG (in % m != 0,
 * 0 < n < m <= 64 violated, iters < 0, in > INT32_MAX, negative or non-finite score), NOMEM,
 * NUMERIC (never for finite scores: the assignment costs are scaled to stay finite). */
LLMSQ_API llmsq_status llmsq_nm_permutation(const float *score, int64_t out, int64_t in, int n, int m, int iters,
                                            int32_t *perm, double *kept_before, double *kept_after);

/* Linear sum assignment (Hungarian method, O(n^3), in double): assign[r] = the column given to
 * row r of cost [n, n] (row-major), a permutation minimizing (maximize: maximizing) the sum of
 * cost[r, assign[r]]; *total (may be NULL) receives that sum. Ties resolve deterministically.
 * Errors: ARG (n < 1 or > INT32_MAX, non-finite cost), NOMEM. */
LLMSQ_API llmsq_status llmsq_linear_assignment(const double *cost, int64_t n, bool maximize, int32_t *assign,
                                               double *total);

/* Permute the tensor `name` in place in the store: new row k = old row perm[k] (dim 0), or for
 * _cols new column k = old column perm[k] (dim 1 of a 2-D tensor); perm [n] must be a
 * permutation of 0..n-1 with n the permuted dimension. Folding a channel permutation into a
 * model permutes the producer's output rows (and bias) and the consumer's input columns the
 * same way, e.g. rows of gate_proj and up_proj and columns of down_proj.
 *   rows: F32/F16/BF16 tensors of any rank (1-D biases included), Q8_0 tensors of rank >= 2
 *         (blocks run along the last dimension), and quantized linears (codes, scales and zero
 *         points move with their row; g_idx indexes columns and is unchanged).
 *   cols: 2-D F32/F16/BF16 tensors, and quantized linears: codes move with their column and
 *         g_idx becomes g_idx'[k] = group(perm[k]) (scales and zero points are per group and
 *         do not move), so the dequantized weights are exactly the permuted ones. A
 *         non-trivial g_idx also sets act_order, as GPTQ kernels only honour g_idx with
 *         desc_act; writers without g_idx support (AWQ) refuse such a linear.
 * The tensor is replaced through llmsq_store_put / llmsq_store_put_qlinear, which drop its F32
 * cache; pointers from earlier llmsq_store_get_f32 calls on `name` become invalid.
 * Errors: NOT_FOUND, ARG (perm not a permutation), SHAPE (n is not the dimension, or cols of a
 * tensor that is not 2-D), UNSUPPORTED (integer dtypes, whose layout may be packed; Q8_0
 * columns or 1-D Q8_0), NOMEM. On error the tensor is unchanged. */
LLMSQ_API llmsq_status llmsq_store_permute_rows(llmsq_store *s, const char *name, const int32_t *perm, int64_t n);
LLMSQ_API llmsq_status llmsq_store_permute_cols(llmsq_store *s, const char *name, const int32_t *perm, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_PRUNE_PERM_H */
