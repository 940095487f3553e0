/* Internal to formats/: packing of integer codes into 32-bit words (FORMATS.md 2.4, 3.3, 4.5)
 * and the translation between the canonical quantized linear (quant.h) and the tensor groups
 * of GPTQ, AutoAWQ GEMM and compressed-tensors (pack-quantized, int-quantized) checkpoints.
 * Shared by the directory writer (quant_ckpt_write.c) and the importer (quant_import.c). */
#ifndef LLMSQ_FORMATS_QPACK_H
#define LLMSQ_FORMATS_QPACK_H

#include "llmsq/formats.h"
#include "llmsq/quant.h"

#include <jansson.h>

/* ---- bit packing --------------------------------------------------------------------------- */

/* Words that hold n values of `bits` bits: ceil(n * bits / 32). */
int64_t llmsq_qpack_words(int64_t n, int bits);

/* Packs v[0], v[vs], ..., v[(n-1)*vs] (each < 2^bits; higher bits are dropped) as one
 * little-endian bit stream: value j occupies bits [j*bits, (j+1)*bits) of the concatenated
 * 32-bit words at byte offsets 0, 4*ws, 8*ws, ... of w. That single rule is the GPTQ layout
 * for 2/4/8 bits (32/b slots a word, slot 0 least significant), the GPTQ 3-bit layout (32
 * values in 3 words, v10 and v21 straddling words) and compressed-tensors pack-quantized (the
 * tail of the last word zero). Writes llmsq_qpack_words(n, bits) words, little-endian whatever
 * the host; w need not be aligned. */
void llmsq_qpack(const uint8_t *v, int64_t vs, int64_t n, int bits, void *w, int64_t ws);

/* The inverse: v[j*vs] = value j of the stream (w need not be aligned). */
void llmsq_qunpack(const void *w, int64_t ws, int64_t n, int bits, uint8_t *v, int64_t vs);

/* Little-endian scalar loads and stores on unaligned bytes. */
uint32_t llmsq_ld_u32(const void *p, int64_t i);
void     llmsq_st_u32(void *p, int64_t i, uint32_t v);

/* ---- one scheme for the whole checkpoint --------------------------------------------------- */

typedef struct llmsq_qckpt_scheme {
    llmsq_ckpt_format format;
    int      bits;
    int64_t  group_size;  /* -1: one group per output row (channel) */
    bool     sym;         /* every zero point is 2^(bits-1) */
    bool     act_order;   /* GPTQ desc_act / compressed-tensors actorder */
    bool     g_idx;       /* compressed-tensors: weight_g_idx tensors (actorder "group") */
    bool     gptq_v2;     /* GPTQ zero points stored as z (v2), else z - 1 (v1); read only */
    llmsq_dtype scale_dtype; /* F16 (GPTQ, AWQ always), BF16 or F32: the narrowest that holds every scale exactly */
    /* compressed-tensors only: 8 = int-quantized W8A8 (every linear has act_bits 8), 0 = weight-only */
    int      act_bits;
    bool     act_static;  /* W8A8 with per-tensor static input scales (input_scale tensors) */
} llmsq_qckpt_scheme;

/* What a packed tensor holds. */
typedef enum llmsq_qckpt_kind {
    LLMSQ_QK_GPTQ_QWEIGHT, LLMSQ_QK_GPTQ_QZEROS, LLMSQ_QK_GPTQ_SCALES, LLMSQ_QK_GPTQ_GIDX,
    LLMSQ_QK_CT_PACKED, LLMSQ_QK_CT_SCALE, LLMSQ_QK_CT_SHAPE, LLMSQ_QK_CT_ZERO, LLMSQ_QK_CT_GIDX,
    LLMSQ_QK_AWQ_QWEIGHT, LLMSQ_QK_AWQ_QZEROS, LLMSQ_QK_AWQ_SCALES,
    LLMSQ_QK_I8_WEIGHT, LLMSQ_QK_I8_SCALE, LLMSQ_QK_I8_INPUT_SCALE
} llmsq_qckpt_kind;

/* One tensor of the group that stands for a linear "<prefix>.weight": "<prefix>.<suffix>". */
typedef struct llmsq_qckpt_tensor {
    llmsq_qckpt_kind kind;
    const char      *suffix;   /* "qweight", "weight_packed", ... */
    llmsq_dtype      dtype;
    int              ndim;
    int64_t          shape[2];
    size_t           nbytes;
} llmsq_qckpt_tensor;

#define LLMSQ_QCKPT_MAX_TENSORS 5

/* Suffixes of every packed tensor any format writes besides "weight" itself (NULL-terminated),
 * so a writer can drop the stale packed tensors of an imported checkpoint. */
extern const char *const llmsq_qckpt_suffixes[];

/* GPTQ (gptq_ckpt.c): qweight I32 [in*b/32, out], qzeros I32 [ngroups, out*b/32],
 * scales F16 [ngroups, out], g_idx I32 [in]. */
int          llmsq_gptq_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                                llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS]);
/* Whether q can be stored: pack factors divide in and out, v1 zero points >= 1.
 * Errors: UNSUPPORTED naming `name`. */
llmsq_status llmsq_gptq_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q);
/* Fills dst (t->nbytes) with the bytes of t. Errors: NOMEM. */
llmsq_status llmsq_gptq_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                             const llmsq_qckpt_tensor *t, void *dst);
/* The quantization_config object (FORMATS.md 2.2). in_block: the block-relative names of the
 * quantized linears when not every linear of a block is quantized (modules_in_block_to_quantize),
 * else NULL. Returns NULL when out of memory. */
json_t *llmsq_gptq_config(const llmsq_qckpt_scheme *sc, const struct llmsq_quant_params *qp,
                          bool true_sequential, bool lm_head, const json_t *in_block);
/* Translates every "<prefix>.qweight" of the store. Errors: UNSUPPORTED, FORMAT, NOMEM. */
llmsq_status llmsq_gptq_import(llmsq_store *s, const json_t *qc, const char *cfg_path);

/* compressed-tensors pack-quantized (ct_ckpt.c): weight_packed I32 [out, ceil(in/(32/b))],
 * weight_scale F16 [out, ngroups], weight_shape I64 [2], weight_zero_point I32
 * [ceil(out/(32/b)), ngroups] (asymmetric only), weight_g_idx I32 [in] (actorder group). */
int          llmsq_ct_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                              llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS]);
/* Whether q can be stored: 4 or 8 bits (what vLLM's WNA16 kernels take). Errors: UNSUPPORTED. */
llmsq_status llmsq_ct_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q);
/* Fills dst (t->nbytes) with the bytes of t. Errors: NOMEM. */
llmsq_status llmsq_ct_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                           const llmsq_qckpt_tensor *t, void *dst);
/* The quantization_config object (FORMATS.md 4.1, 4.6); ignore: the module names left in
 * float (a JSON array, borrowed). NULL when out of memory. */
json_t *llmsq_ct_config(const llmsq_qckpt_scheme *sc, const json_t *ignore);
/* Translates every "<module>.weight_packed" of the store, matching each module to its config
 * group (by name, "re:" regex, then "Linear"). Errors: UNSUPPORTED, FORMAT, NOMEM. */
llmsq_status llmsq_ct_import(llmsq_store *s, const json_t *qc, const char *cfg_path);

/* compressed-tensors output helper (ct_ckpt.c): the quantization_config object of top-level
 * `format` around one config group "group_0" targeting "Linear" with these weights and
 * input_activations (both taken; input_act NULL writes null); ignore is borrowed. The group
 * carries no "format" key of its own (older readers reject it). NULL when out of memory. */
json_t *llmsq_ct_wrap_config(const char *format, json_t *weights, json_t *input_act, const json_t *ignore);

/* AutoAWQ GEMM (awq_ckpt.c, FORMATS.md 3), G the scheme's group size (never -1 here: the writer
 * turns per-channel into G = in): qweight I32 [in, out/8] and qzeros I32 [in/G, out/8], both
 * packed along the output dimension with slot k of word c holding column 8c + AWQ_ORDER[k];
 * scales F16 [in/G, out]. */
int          llmsq_awq_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                               llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS]);
/* Whether q can be stored: 4 bits, contiguous groups (no act-order g_idx), in % G == 0,
 * out % 8 == 0. Errors: UNSUPPORTED naming `name` and the reason. */
llmsq_status llmsq_awq_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q);
/* Fills dst (t->nbytes) with the bytes of t. */
llmsq_status llmsq_awq_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                            const llmsq_qckpt_tensor *t, void *dst);
/* The quantization_config object (FORMATS.md 3.1). skip: module names of Linear layers left in
 * float (a JSON array, borrowed; "lm_head" is dropped from it, AWQ readers never convert it),
 * written as modules_to_not_convert, null when empty. NULL when out of memory. */
json_t *llmsq_awq_config(const llmsq_qckpt_scheme *sc, const json_t *skip);
/* AWQ readers skip a module when any modules_to_not_convert entry is a substring of its name:
 * fails when an entry of skip would also skip a name of quantized. Errors: UNSUPPORTED. */
llmsq_status llmsq_awq_check_skips(const json_t *skip, const json_t *quantized);
/* Translates every "<prefix>.qweight" of the store. Errors: UNSUPPORTED (bits, version),
 * FORMAT (shapes, naming the tensor), NOMEM. */
llmsq_status llmsq_awq_import(llmsq_store *s, const json_t *qc, const char *cfg_path);

/* compressed-tensors int-quantized W8A8 (ct_int8.c, FORMATS.md 4.2-4.6): weight I8 [out, in]
 * (code - 128), weight_scale [out, 1] in the scale dtype, input_scale [1] when act_static. */
int          llmsq_ct_int8_tensors(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                                   llmsq_qckpt_tensor out[LLMSQ_QCKPT_MAX_TENSORS]);
/* Whether q can be stored: 8 bits, one group per row, every zero 128, act_bits 8 with the
 * scheme's act_static, a static act_scale finite, > 0 and exact in the scale dtype.
 * Errors: UNSUPPORTED naming `name`. */
llmsq_status llmsq_ct_int8_check(const llmsq_qckpt_scheme *sc, const char *name, const llmsq_qlinear *q);
llmsq_status llmsq_ct_int8_fill(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q,
                                const llmsq_qckpt_tensor *t, void *dst);
/* The quantization_config object (FORMATS.md 4.6 W8A8-int8); ignore as llmsq_ct_config. */
json_t *llmsq_ct_int8_config(const llmsq_qckpt_scheme *sc, const json_t *ignore);

/* What an int-quantized config group says (read side). */
typedef struct llmsq_ct_int8_args {
    bool per_tensor;  /* weights strategy "tensor": weight_scale [1]; else "channel": [out, 1] */
    int  act_bits;    /* 8, or 0 when input_activations is null (weight-only int8) */
    bool act_static;  /* strategy "tensor", dynamic false: input_scale [1] */
} llmsq_ct_int8_args;
/* Parses the weights / input_activations / output_activations of int-quantized group `group`.
 * Errors: UNSUPPORTED naming what was found (asymmetric, not int8, other strategies). */
llmsq_status llmsq_ct_int8_parse(const char *path, const char *group, const json_t *weights,
                                 const json_t *input_act, const json_t *output_act, llmsq_ct_int8_args *a);
/* Translates "<module>.weight" (I8) with its scales into the canonical form (grid ABSMAX,
 * zeros 128, act fields from a). Errors: FORMAT naming the tensor, NOMEM. */
llmsq_status llmsq_ct_int8_import(llmsq_store *s, const char *path, const char *group,
                                  const llmsq_ct_int8_args *a, const char *module);

/* ---- shared helpers -------------------------------------------------------------------------- */

/* dst[k] = v in dtype dt (F32, F16 or BF16), little-endian, dst need not be aligned. */
void llmsq_qckpt_st_float(void *dst, int64_t k, llmsq_dtype dt, float v);

/* Names of the store's tensors ending in `suffix`, sorted (malloc'd array of malloc'd strings;
 * free with llmsq_qckpt_free_names). Errors: NOMEM. */
llmsq_status llmsq_qckpt_names(const llmsq_store *s, const char *suffix, char ***names, size_t *n);
void         llmsq_qckpt_free_names(char **names, size_t n);

/* Calls one(s, cfg, prefix) for every tensor "<prefix><suffix>" in name order (the packed
 * linears of a GPTQ or AWQ checkpoint), stopping at the first error. Errors: FORMAT naming
 * cfg_path and `method` when no tensor ends in suffix; NOMEM; one's errors. */
llmsq_status llmsq_qckpt_import_each(llmsq_store *s, const char *suffix, const char *method, const char *cfg_path,
                                     llmsq_status (*one)(llmsq_store *s, const void *cfg, const char *prefix),
                                     const void *cfg);

/* dst[0..numel) = the tensor as f32, read bytewise (mapped data has no alignment guarantee).
 * Errors: FORMAT naming the tensor when its dtype is not F32/F16/BF16. */
llmsq_status llmsq_qckpt_to_f32(const llmsq_tensor *t, float *dst);

/* Finishes an imported linear: grid from the zero points (SYM or MINMAX), trivial g_idx
 * dropped, stored under "<prefix>.weight" (takes q). */
llmsq_status llmsq_qckpt_put(llmsq_store *s, const char *prefix, llmsq_qlinear *q);
/* Stores q under "<prefix>.weight" as it is, for formats whose grid is known from the method
 * (AWQ, int-quantized) rather than from the zero points (takes q). */
llmsq_status llmsq_qckpt_put_as(llmsq_store *s, const char *prefix, llmsq_qlinear *q);

/* ---- writer internals exposed for tests ------------------------------------------------------- */

/* llmsq_quantized_checkpoint_write with an explicit shard limit in bytes of tensor data. */
llmsq_status llmsq_qckpt_write_sharded(const char *out_dir, const llmsq_store *s,
                                       const llmsq_config *cfg, const llmsq_ckpt_write_params *p,
                                       uint64_t max_shard_bytes);

#endif
