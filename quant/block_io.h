/*
 * Internal to quant/: what the block-level passes (AWQ, SmoothQuant) share: capturing the
 * four inputs of a block's linears over every calibration window, and copying block tensors
 * out of and back into the store.
 */
#ifndef LLMSQ_QUANT_BLOCK_IO_H
#define LLMSQ_QUANT_BLOCK_IO_H

#include "llmsq/calib.h"

/* Tensor suffix of each linear's weight within a layer ("self_attn.q_proj.weight", ...). */
extern const char *const llmsq_block_weight_suffix[LLMSQ_LINEAR_COUNT];

/* The inputs of a block's linears over all calibration windows, windows back to back:
 * X[LLMSQ_INPUT_ATTN] [N*L, d], X[LLMSQ_INPUT_O] [N*L, nh*hd], X[LLMSQ_INPUT_MLP] [N*L, d],
 * X[LLMSQ_INPUT_DOWN] [N*L, F]; NULL for the inputs not asked for. */
typedef struct llmsq_block_acts {
    int64_t rows;                       /* N * L tokens */
    int64_t width[LLMSQ_INPUT_COUNT];
    float  *X[LLMSQ_INPUT_COUNT];
} llmsq_block_acts;

/* Runs layer `layer` (as currently bound) on every window of `in` and keeps the inputs marked
 * in want[]. Windows run in parallel, one per thread with single-threaded BLAS, so the bytes do
 * not depend on the thread count. Errors: NOMEM (the message gives the size), the forward's. */
llmsq_status llmsq_block_capture(llmsq_model *m, int64_t layer, const llmsq_block_calib *in,
                                 const bool want[LLMSQ_INPUT_COUNT], llmsq_block_acts *a);
void llmsq_block_acts_free(llmsq_block_acts *a);

/* A malloc'd f32 copy of tensor `name` of layer `layer` ("self_attn.v_proj.weight"); *n gets
 * its element count. Errors: NOT_FOUND, NOMEM. */
llmsq_status llmsq_block_tensor_copy(llmsq_model *m, int64_t layer, const char *suffix, float **out, int64_t *n);

/* Replaces tensor `suffix` of layer `layer` with data (f32, same shape), stored in the tensor's
 * own float dtype (F32, or rounded to F16/BF16) so that the output checkpoint keeps the
 * model's dtypes. A quantized linear under that name is dropped. Errors: NOMEM. */
llmsq_status llmsq_block_tensor_put(llmsq_model *m, int64_t layer, const char *suffix, const float *data);

#endif
