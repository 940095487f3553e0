/*
 * Packed linears: one store weight (or several stacked) in the CPU kernel layout that suits it,
 * so the model forward runs on packed weights with no dequantized copy in memory.
 *
 * Layout chosen for a weight W [out, in] (first that applies):
 *   quantized, bits <= 4, dequantized matrix 2:4 (opts.sparse)   -> 2:4 + int4  (LLMSQ_PLINEAR_S24W4)
 *   quantized, bits <= 4                                          -> W4A16       (LLMSQ_PLINEAR_W4)
 *   quantized, bits 8, per channel, int8 activations (act_bits 8) -> W8A8        (LLMSQ_PLINEAR_W8)
 *   float, every group of 4 columns with at most 2 nonzeros (opts.sparse)
 *                                                                 -> 2:4, f16 values (LLMSQ_PLINEAR_S24)
 *   float                                                         -> dense, opts.dense_dtype
 * A quantized weight no kernel serves (W8A16; scales not representable in f16, e.g. f32 scales
 * of a compressed-tensors checkpoint of an f32 model; group sizes the layouts cannot hold)
 * falls back to dense F32 holding its exact dequantized values; `fallback` says why, so
 * reports can name it. Float weights keep their values bit for bit in F32; F16/BF16 and the
 * 2:4 f16 values round to nearest even.
 *
 * Outputs equal the dequantized f32 linear up to f32 accumulation order (W8A8: the int8
 * activation quantization is part of the kernel, exactly as the reference forward fakes it).
 */
#ifndef LLMSQ_PLINEAR_H
#define LLMSQ_PLINEAR_H

#include "llmsq/kernels.h"
#include "llmsq/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_plinear_kind {
    LLMSQ_PLINEAR_DENSE = 0,
    LLMSQ_PLINEAR_W4,
    LLMSQ_PLINEAR_W8,
    LLMSQ_PLINEAR_S24,
    LLMSQ_PLINEAR_S24W4,
    LLMSQ_PLINEAR_KIND_COUNT
} llmsq_plinear_kind;

/* "f32", "f16", "bf16" (dense, by dtype), "w4a16", "w8a8", "2:4-f16", "2:4-w4a16". */
LLMSQ_API const char *llmsq_plinear_kind_name(llmsq_plinear_kind k, llmsq_dtype dense_dtype);

typedef struct llmsq_pack_opts {
    /* Layout of float weights that stay dense: F32, F16 or BF16; LLMSQ_DTYPE_COUNT (the
     * default, "auto") = the tensor's stored dtype when it is F16 or BF16, else F32.
     * Quantized fallbacks are always F32. */
    llmsq_dtype dense_dtype;
    bool        sparse;  /* 2:4 weights into the 2:4 layouts (default true) */
    bool        fuse;    /* q/k/v and gate/up stacked into one matmul each (default true) */
} llmsq_pack_opts;

LLMSQ_API llmsq_pack_opts llmsq_pack_default_opts(void);

typedef struct llmsq_plinear {
    llmsq_plinear_kind kind;
    int64_t            out, in;
    union {
        llmsq_kern_dense  *dense;
        llmsq_kern_w4     *w4;
        llmsq_kern_w8     *w8;
        llmsq_kern_s24    *s24;
        llmsq_kern_s24w4  *s24w4;
    } u;
    char fallback[160]; /* why a quantized weight is dense ("" when it is not a fallback) */
} llmsq_plinear;

/* Packs the weights names[0..n) of store s, stacked by rows into one matrix
 * [sum out_i, in] (n = 1: one weight). Stacking needs every weight to take the same layout
 * with the same parameters (in; quantized: bits, group size, g_idx, activation
 * quantization); otherwise UNSUPPORTED, and the caller packs them one by one.
 * Errors: NOT_FOUND, SHAPE (2-D [out_i, in] expected), NUMERIC (a non-finite weight or
 * scale: the message names the tensor and the element), UNSUPPORTED, NOMEM. */
LLMSQ_API llmsq_status llmsq_plinear_pack(llmsq_store *s, const char *const *names, int n,
                                          const llmsq_pack_opts *opts, llmsq_plinear **p);

/* Packs a float matrix W [out, in] (2:4 detection and dtype as above; `dtype` is the
 * stored dtype used by the automatic dense choice). */
LLMSQ_API llmsq_status llmsq_plinear_pack_f32(const float *W, int64_t out, int64_t in, llmsq_dtype dtype,
                                              const llmsq_pack_opts *opts, llmsq_plinear **p);

LLMSQ_API void llmsq_plinear_free(llmsq_plinear *p); /* NULL is fine */

/* y [B, out] = x [B, in] W^T through the layout's kernel. Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_plinear_matmul(const llmsq_plinear *p, const float *x, int64_t B, float *y);

/* Bytes of packed weight data (what a batch-1 matmul streams). */
LLMSQ_API size_t llmsq_plinear_bytes(const llmsq_plinear *p);

/* Dtype of a dense plinear's data (F32 for the other kinds). */
LLMSQ_API llmsq_dtype llmsq_plinear_dtype(const llmsq_plinear *p);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_PLINEAR_H */
