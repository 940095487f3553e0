/*
 * The tensor store: the named tensors of one model, shared by every pass.
 *
 * Ownership and lifetimes:
 *  1. The store owns every tensor's metadata and, for owned tensors, the data. Borrowed
 *     data points into file mappings that the store also owns (llmsq_store_map_file);
 *     mappings live until the store is destroyed.
 *  2. Lookups return borrowed pointers, valid until the store is destroyed or the entry
 *     is replaced by llmsq_store_put* with the same name.
 *  3. llmsq_store_get_f32 materializes a tensor as F32 on first use (lazy conversion; an
 *     F32 tensor is returned in place, without a copy) and caches it; release it with
 *     llmsq_store_release_f32 when the pass is done so memory stays bounded.
 *  4. Tensor names are the Hugging Face names (model.layers.0.self_attn.q_proj.weight)
 *     whatever the source format: readers translate GGUF and llama2.c names and layouts.
 * A store is not thread-safe for mutation; concurrent lookups are fine.
 */
#ifndef LLMSQ_STORE_H
#define LLMSQ_STORE_H

#include "llmsq/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmsq_store llmsq_store;

LLMSQ_API llmsq_store *llmsq_store_create(void);
LLMSQ_API void         llmsq_store_destroy(llmsq_store *s);

/* Maps `path` read-only for the lifetime of the store. *data is NULL for an empty file.
 * Errors: IO (with the path and errno text). */
LLMSQ_API llmsq_status llmsq_store_map_file(llmsq_store *s, const char *path,
                                            const uint8_t **data, size_t *size);

/* Adds a tensor whose data is borrowed (from a mapping of this store). `file` is kept
 * (copied) for error messages. Errors: ARG for a duplicate name or nbytes that do not
 * match dtype and shape (message names the tensor and file). */
LLMSQ_API llmsq_status llmsq_store_add(llmsq_store *s, const char *name, llmsq_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data,
                                       size_t nbytes, const char *file, uint64_t file_offset);

/* Adds or replaces a tensor; the store takes ownership of `data` (malloc'd) even on error. */
LLMSQ_API llmsq_status llmsq_store_put(llmsq_store *s, const char *name, llmsq_dtype dtype,
                                       int ndim, const int64_t *shape, void *data);

/* Borrowed lookup; NULL when absent. */
LLMSQ_API const llmsq_tensor *llmsq_store_get(const llmsq_store *s, const char *name);

/* Number of tensors and positional access (insertion order). */
LLMSQ_API size_t              llmsq_store_count(const llmsq_store *s);
LLMSQ_API const llmsq_tensor *llmsq_store_at(const llmsq_store *s, size_t i);

/* The tensor as F32 (numel floats), converted on first call and cached.
 * Errors: NOT_FOUND, UNSUPPORTED (integer dtype), NUMERIC never (NaN is kept; callers
 * that need finite weights check with llmsq_f32_all_finite). */
LLMSQ_API llmsq_status llmsq_store_get_f32(llmsq_store *s, const char *name, const float **out);

/* ---- quantized linears (canonical form of include/llmsq/quant.h) ----------------------- */
struct llmsq_qlinear;

/* Stores `q` as the content of weight `name` ([out, in]); the store takes ownership (also
 * on error). A tensor of that name is replaced: its F32 view becomes the dequantized weights
 * (computed lazily by llmsq_store_get_f32). Errors: SHAPE when an existing tensor of that
 * name has another shape. */
LLMSQ_API llmsq_status llmsq_store_put_qlinear(llmsq_store *s, const char *name, struct llmsq_qlinear *q);

/* The quantized linear stored under `name`, or NULL. */
LLMSQ_API const struct llmsq_qlinear *llmsq_store_get_qlinear(const llmsq_store *s, const char *name);

/* Frees the F32 copy made by llmsq_store_get_f32 (no-op for F32 tensors and unknown names). */
LLMSQ_API void llmsq_store_release_f32(llmsq_store *s, const char *name);

/* Releases everything held for `name` -- its quantized form, owned data, F32 copy, and the
 * resident pages of its file mapping -- once a consumer has its own copy (packed inference).
 * The entry keeps its name, dtype and shape; its data pointer becomes NULL and
 * llmsq_store_get_f32 fails (NOT_FOUND) until the name is put again. Unknown names: no-op. */
LLMSQ_API void llmsq_store_evict(llmsq_store *s, const char *name);

/* Bytes held by owned tensors and F32 caches (for memory reports). */
LLMSQ_API size_t llmsq_store_resident_bytes(const llmsq_store *s);

/* Index of the first non-finite value in x[0..n), or -1. */
LLMSQ_API int64_t llmsq_f32_first_nonfinite(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_STORE_H */
