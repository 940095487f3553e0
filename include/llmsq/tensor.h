/*
 * Tensors and element types.
 *
 * Layout convention (one for the whole project): row-major, the last dimension is
 * contiguous, shapes are int64_t. A linear weight is [out_features, in_features], as in
 * safetensors and PyTorch. Block-quantized types (Q8_0) pack `block` consecutive
 * elements of the last dimension into `block_bytes` bytes.
 */
#ifndef LLMSQ_TENSOR_H
#define LLMSQ_TENSOR_H

#include "llmsq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMSQ_MAX_DIMS 4

typedef enum llmsq_dtype {
    LLMSQ_DTYPE_F32 = 0,
    LLMSQ_DTYPE_F16,
    LLMSQ_DTYPE_BF16,
    LLMSQ_DTYPE_I8,
    LLMSQ_DTYPE_I32,
    LLMSQ_DTYPE_U8,
    LLMSQ_DTYPE_Q8_0,   /* ggml Q8_0: 32 values = f16 scale + 32 int8 (34 bytes) */
    LLMSQ_DTYPE_I64,    /* shapes (compressed-tensors weight_shape) */
    LLMSQ_DTYPE_COUNT
} llmsq_dtype;

typedef struct llmsq_dtype_traits {
    const char *name;        /* "F32", "BF16", "Q8_0", ... (safetensors spelling where one exists) */
    int64_t     block;       /* elements per block (1 for scalar types) */
    size_t      block_bytes; /* bytes per block */
    bool        is_float;    /* convertible to F32 by llmsq_dtype_to_f32 */
} llmsq_dtype_traits;

LLMSQ_API const llmsq_dtype_traits *llmsq_dtype_info(llmsq_dtype t);

/* Bytes of `n` elements of type t; n must be a multiple of the block size
 * (returns 0 and aborts never: callers validate first with llmsq_dtype_row_ok). */
LLMSQ_API size_t llmsq_dtype_nbytes(llmsq_dtype t, int64_t n);

/* Converts n elements of src (type t) to f32. Fails with UNSUPPORTED for integer
 * types and ARG when n is not a multiple of the block size. */
LLMSQ_API llmsq_status llmsq_dtype_to_f32(llmsq_dtype t, const void *src, float *dst, int64_t n);

/* IEEE binary16 and bfloat16 scalar conversions (round to nearest even on the way down). */
LLMSQ_API float    llmsq_f16_to_f32(uint16_t h);
LLMSQ_API uint16_t llmsq_f32_to_f16(float f);
LLMSQ_API float    llmsq_bf16_to_f32(uint16_t h);
LLMSQ_API uint16_t llmsq_f32_to_bf16(float f);

typedef struct llmsq_tensor {
    char       *name;
    llmsq_dtype dtype;
    int         ndim;
    int64_t     shape[LLMSQ_MAX_DIMS]; /* row-major; shape[ndim-1] is contiguous */
    void       *data;                  /* owned (owned == true) or borrowed from a mapping */
    size_t      nbytes;
    bool        owned;
    const char *file;                  /* file the tensor came from (for error messages), may be NULL */
    uint64_t    file_offset;           /* byte offset of data within `file` */
    const struct llmsq_qlinear *qlinear; /* non-NULL: a quantized linear [out, in] (quant.h);
                                            data is NULL and dtype F32 describes its F32 view */
} llmsq_tensor;

LLMSQ_API int64_t llmsq_tensor_numel(const llmsq_tensor *t);

/* "[576, 64]" style string of the shape into buf. */
LLMSQ_API const char *llmsq_shape_str(const llmsq_tensor *t, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_TENSOR_H */
