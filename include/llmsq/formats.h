/*
 * Checkpoint readers and writers (byte layouts: ../shared/docs/FORMATS.md).
 *
 * Every reader validates lengths and offsets against the file size before touching
 * data and fails with FORMAT and a message naming the file, the tensor or key, and the
 * byte offset. Tensor data is mapped, not copied, wherever the layout allows.
 * Every writer writes to a temporary name and renames it when complete.
 */
#ifndef LLMSQ_FORMATS_H
#define LLMSQ_FORMATS_H

#include "llmsq/model.h"
#include "llmsq/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors (FORMATS.md 1.1-1.4) ------------------------------------------------ */

/* Adds every tensor of one safetensors file to the store (data borrowed from a mapping). */
LLMSQ_API llmsq_status llmsq_safetensors_read(llmsq_store *s, const char *path);

/* A model directory: model.safetensors, or the shards listed in
 * model.safetensors.index.json (every weight_map entry must be found in its shard). */
LLMSQ_API llmsq_status llmsq_safetensors_read_dir(llmsq_store *s, const char *dir);

/* Writes tensors[0..n) as one safetensors file with __metadata__ {"format":"pt"} plus the
 * optional extra string pairs meta[0..2*n_meta) (key, value, key, value...). Layout as the
 * reference writer: sorted by dtype alignment then name, header padded to 8 bytes.
 * Written to "<path>.tmp" and renamed. Errors: IO, ARG (duplicate name, unsupported dtype). */
LLMSQ_API llmsq_status llmsq_safetensors_write(const char *path,
                                               const llmsq_tensor *const *tensors, size_t n,
                                               const char *const *meta, size_t n_meta);

/* OK when `dir` is absent or an empty directory (where a writer may create its output).
 * Errors: ARG (not a directory, or not empty: writers never overwrite), IO. */
LLMSQ_API llmsq_status llmsq_output_dir_check(const char *dir);

/* ---- Hugging Face config.json (FORMATS.md 1.6-1.8) ----------------------------------- */

/* Parses config.json for Llama, Mistral, Qwen2 and Qwen3 causal LMs.
 * Errors: IO, FORMAT (invalid JSON, missing or mistyped field), UNSUPPORTED (unknown
 * architecture or rope_scaling type; the message names it). */
LLMSQ_API llmsq_status llmsq_hf_config_read(const char *path, llmsq_config *cfg);

/* Writes config.json for cfg (legacy rope_theta/rope_scaling keys), atomically.
 * torch_dtype: "float32", "bfloat16" or "float16". */
LLMSQ_API llmsq_status llmsq_hf_config_write(const char *path, const llmsq_config *cfg,
                                             const char *torch_dtype);

/* ---- GGUF v3 (FORMATS.md 5) ------------------------------------------------------------ */

/* Reads a GGUF `llama` model: tensors (F32, F16, BF16, Q8_0) into the store under HF names,
 * with q/k rows permuted back to the HF rotate-half layout (5.5); hyper-parameters into cfg;
 * the embedded tokenizer.ggml.* vocabulary into *tok (NULL when the file has none).
 * Errors: IO, FORMAT (bad magic, version, truncated, offsets out of range, wrong key type),
 * UNSUPPORTED (architecture or tensor type). */
LLMSQ_API llmsq_status llmsq_gguf_read_model(const char *path, llmsq_store *s,
                                             llmsq_config *cfg, llmsq_tokenizer **tok);

/* ---- llama2.c legacy v0 .bin (FORMATS.md 6.1) ------------------------------------------ */

/* Reads a llama2.c checkpoint into the store under HF names (q/k rows permuted from the
 * interleaved to the rotate-half layout) and cfg. *tok receives the tokenizer found beside
 * the file (tokenizer.model, tok<vocab>.model, tokenizer.bin or tok<vocab>.bin), or NULL.
 * Errors: IO, FORMAT (header values, size mismatch). */
LLMSQ_API llmsq_status llmsq_llama2c_read_model(const char *path, llmsq_store *s,
                                                llmsq_config *cfg, llmsq_tokenizer **tok);

/* ---- shared helpers ------------------------------------------------------------------- */

/* Permutes the rows of a [n_heads*head_dim, row_bytes] matrix between the interleaved
 * RoPE layout (Meta, llama2.c, GGUF llama) and HF rotate-half, in place.
 * to_hf: HF_row[h*hd + j*(hd/2) + i] = IL_row[h*hd + 2i + j]; !to_hf is the inverse.
 * Also applies to bias vectors (row_bytes = element size). Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_permute_qk_rows(void *data, int64_t n_heads, int64_t head_dim,
                                             size_t row_bytes, bool to_hf);

/* ---- quantized checkpoints (FORMATS.md 2, 3, 4) ----------------------------------------- */

struct llmsq_quant_params;

typedef enum llmsq_ckpt_format {
    LLMSQ_CKPT_COMPRESSED_TENSORS = 0, /* pack-quantized (W4A16/W8A16), group or channel; int-quantized
                                          (W8A8) for linears with act_bits 8 (FORMATS.md 4) */
    LLMSQ_CKPT_GPTQ,                   /* AutoGPTQ/GPTQModel layout, v1 zero points (FORMATS.md 2) */
    LLMSQ_CKPT_AWQ                     /* AutoAWQ GEMM: 4-bit, zero points, interleaved (FORMATS.md 3) */
} llmsq_ckpt_format;

typedef struct llmsq_ckpt_write_params {
    llmsq_ckpt_format format;
    const char *source;           /* the model path the store was opened from: for a HF directory its
                                     config.json is extended and its tokenizer/generation files copied */
    const struct llmsq_quant_params *quant; /* what produced the quantized linears */
    bool        true_sequential;  /* recorded in the GPTQ quantization_config */
    const char *manifest_json;    /* a JSON object (flags, inputs, calibration) to which the writer adds
                                     "outputs": {file: sha256} and writes as manifest.json; NULL: none */
    /* Sparsity (FORMATS.md 4.5, 4.7): the pruned linears (module names, e.g.
     * "model.layers.0.mlp.down_proj") and how to store them. SPARSE_NONE: no sparsity_config. */
    enum { LLMSQ_SPARSE_NONE = 0, LLMSQ_SPARSE_DENSE, LLMSQ_SPARSE_BITMASK, LLMSQ_SPARSE_24_BITMASK } sparse_format;
    const char *const *sparse_modules;
    size_t      n_sparse_modules;
    int         sparse_n, sparse_m;  /* N:M of the pruned linears, 0:0 = unstructured */
    double      global_sparsity;     /* recorded in sparsity_config */
} llmsq_ckpt_write_params;

/* Writes the store as a Hugging Face directory: every tensor with a quantized linear
 * (llmsq_store_get_qlinear) in the packed layout of p->format, every other tensor unchanged
 * (lm_head omitted when tied), config.json with quantization_config (and, for GPTQ,
 * quantize_config.json), tokenizer and generation files copied from p->source, and the
 * manifest. Built in "<out_dir>.tmp" and renamed when complete; nothing is left behind on
 * failure. Errors: UNSUPPORTED when the format cannot represent a linear (e.g. GPTQ needs
 * in_features divisible by the pack factor; the message names the tensor), IO, ARG (out_dir
 * exists and is not empty). */
LLMSQ_API llmsq_status llmsq_quantized_checkpoint_write(const char *out_dir, const llmsq_store *s,
                                                        const llmsq_config *cfg,
                                                        const llmsq_ckpt_write_params *p);

/* Called by the HF directory reader after the safetensors are in the store: when config.json
 * (cfg_path) has a quantization_config of quant_method "gptq", "awq" (GEMM) or
 * "compressed-tensors" (pack-quantized, int-quantized with its input_activations), translates
 * every packed linear into the canonical form under "<prefix>.weight"
 * (llmsq_store_put_qlinear). No quantization_config: nothing to do.
 * Errors: UNSUPPORTED (other methods or formats, naming them), FORMAT (inconsistent shapes
 * or fields, naming the tensor). */
LLMSQ_API llmsq_status llmsq_quantized_checkpoint_import(llmsq_store *s, const char *cfg_path);

/* ---- any checkpoint -------------------------------------------------------------------- */

/* Opens a model from a Hugging Face directory (config.json + safetensors + tokenizer.model),
 * a .gguf file, or a llama2.c .bin file, and builds it (llmsq_model_create).
 * Errors: NOT_FOUND (missing path), UNSUPPORTED (unknown format), and the readers' errors. */
LLMSQ_API llmsq_status llmsq_model_open(const char *path, llmsq_model **out);

/* Same, built with llmsq_model_create_packed (opts NULL = defaults): the packed inference model. */
LLMSQ_API llmsq_status llmsq_model_open_packed(const char *path, const llmsq_pack_opts *opts, llmsq_model **out);

/* Same, but stops before llmsq_model_create: store, config and tokenizer for inspection
 * (the caller owns all three; *tok may be NULL). */
LLMSQ_API llmsq_status llmsq_checkpoint_open(const char *path, llmsq_store **store,
                                             llmsq_config *cfg, llmsq_tokenizer **tok);

/* ---- synthetic models ----------------------------------------------------------------- */

/* Names of the shapes llmsq synth knows ("tiny", "smollm2-135m", "llama-3.2-1b", ...),
 * NULL-terminated. */
LLMSQ_API const char *const *llmsq_synth_shapes(void);

/* Writes a Hugging Face-layout model directory with the exact shapes of `shape`, random
 * weights from `seed` (deterministic), config.json and a SentencePiece tokenizer.model.
 * dtype: F32 or BF16. Built in "<dir>.tmp" and renamed. Errors: ARG (unknown shape), IO. */
LLMSQ_API llmsq_status llmsq_synth_write(const char *shape, const char *dir, llmsq_dtype dtype,
                                         uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_FORMATS_H */
