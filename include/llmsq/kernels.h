/*
 * CPU matmul kernels for compressed linears, and the packed weight layouts they read.
 *
 * Every entry point computes y [B, out] = x [B, in] W^T for f32 activations x (row-major,
 * token b at x + b * in) and nothing else (no bias, no activation function). W is one of:
 *
 *   layout            bytes per weight        struct            built from
 *   dense F32         4                       llmsq_kern_dense  f32 W [out, in]
 *   dense F16, BF16   2                       llmsq_kern_dense  f32 W (rounded to nearest even)
 *   W4A16             0.5 + 3 / group_size    llmsq_kern_w4     llmsq_qlinear, bits <= 4
 *   W8A8              1 + 4 / in              llmsq_kern_w8     llmsq_qlinear, bits 8, per channel
 *   2:4, f16 values   1.125                   llmsq_kern_s24    f32 W [out, in] that is 2:4
 *   2:4 + int4        0.375 + 3 / group_size  llmsq_kern_s24w4  llmsq_qlinear whose W' is 2:4
 *
 * The layouts are plain structs of fixed-width fields and pointers to planar arrays, so the
 * CUDA kernels include this header and read the same bytes (the pointers then hold device
 * memory). All multi-byte words are little-endian (x86 and every CUDA GPU). Arrays allocated
 * by the pack functions are 64-byte aligned; each row starts on a 32-byte boundary.
 *
 * Paths. Each layout has one entry point, `llmsq_kern_<layout>_matmul`, that picks:
 *   - GEMV (decode), B <= LLMSQ_KERN_GEMV_MAX_BATCH: the weights are streamed once from memory
 *     and unpacked in registers (AVX2/FMA/F16C, and AVX-512 for int4 and 2:4 f16, where the CPU
 *     has them, chosen at run time);
 *   - GEMM (prefill), B > LLMSQ_KERN_GEMV_MAX_BATCH: tiles of rows are dequantized to f32 and
 *     multiplied with single-threaded OpenBLAS sgemm calls spread over the threads (weight-only
 *     layouts), or, for W8A8, cache-blocked integer tiles (int32 accumulation stays exact).
 * and `llmsq_kern_<layout>_matmul_scalar`, the plain-C reference (the specification: f32
 * products accumulated in column order, one accumulator). Tests compare the two with
 * tolerances derived from the format and the accumulation order.
 *
 * Threads: output rows are split across OpenMP threads (single-threaded when called inside a
 * parallel region). Every output is computed by one thread in an order fixed by the layout
 * and the shape, so results do not depend on the thread count (the GEMM tiles have a size
 * fixed by the shape and each is one single-threaded sgemm). The plain OpenBLAS baseline
 * llmsq_kern_f32_openblas is the one exception. All matmul functions are safe to call
 * concurrently on the same packed weights (they only read them).
 *
 * Misuse (NULL pointers, B < 0) aborts through LLMSQ_ASSERT. The matmul functions return
 * LLMSQ_OK or NOMEM (a scratch buffer could not be allocated: activations, O(B * in); GEMM
 * tiles, at most 8 MiB per thread).
 */
#ifndef LLMSQ_KERNELS_H
#define LLMSQ_KERNELS_H

#include "llmsq/quant.h"

#ifdef __cplusplus
extern "C" {
#define LLMSQ_KERN_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define LLMSQ_KERN_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* Bumped on any change of the bytes below (written next to any packed tensor saved to disk). */
#define LLMSQ_KERN_PACK_VERSION 1

/* Largest batch served by the GEMV path; larger batches take the GEMM path. */
#define LLMSQ_KERN_GEMV_MAX_BATCH 8

/* ---- instruction set ----------------------------------------------------------------------- */

typedef enum llmsq_kern_isa {
    LLMSQ_KERN_ISA_SCALAR = 0, /* plain C: the same code as the _scalar references */
    LLMSQ_KERN_ISA_AVX2   = 1, /* AVX2 + FMA + F16C (x86-64-v3): every layout */
    LLMSQ_KERN_ISA_AVX512 = 2  /* + AVX-512 F/BW/VL/DQ: the int4 and 2:4-f16 GEMVs; everything
                                  else runs its AVX2 kernel */
} llmsq_kern_isa;

/* The best instruction set this CPU supports (cpuid, checked once). */
LLMSQ_API llmsq_kern_isa llmsq_kern_isa_best(void);
/* The instruction set the matmul entry points use: the best one, unless lowered with
 * llmsq_kern_isa_set or $LLMSQ_KERN_ISA (scalar, avx2). */
LLMSQ_API llmsq_kern_isa llmsq_kern_isa_get(void);
/* Lowers (or restores) the instruction set; a request above llmsq_kern_isa_best() is clamped.
 * Not to be called while kernels run on other threads. */
LLMSQ_API void llmsq_kern_isa_set(llmsq_kern_isa isa);
LLMSQ_API const char *llmsq_kern_isa_name(llmsq_kern_isa isa);

/* ---- dense F32 / F16 / BF16 ---------------------------------------------------------------- */

#define LLMSQ_KERN_DENSE_PAD 16 /* row stride is a multiple of this many elements */

/* data: [out, ld] of dtype (F32: float; F16, BF16: uint16_t bit patterns), ld = in rounded up
 * to LLMSQ_KERN_DENSE_PAD, columns in..ld-1 zero. F16 rows are converted with F16C
 * (vcvtph2ps) in registers; BF16 rows by shifting each 16-bit half into the top of a 32-bit
 * lane (a 32-byte load gives even columns by << 16 and odd columns by & 0xffff0000, against
 * activations split into even and odd columns once per call); F32 rows are loaded as they are.
 * The GEMV takes one row at a time, so a thread's rows are one stream for the prefetchers, and
 * rows longer than 4096 four at a time (the activations then no longer stay in L1; four long
 * streams prefetch well). The GEMM path of F32 runs OpenBLAS sgemm on the rows in place. */
typedef struct llmsq_kern_dense {
    int64_t     out, in;
    int64_t     ld;    /* elements between rows */
    llmsq_dtype dtype; /* LLMSQ_DTYPE_F32, _F16 or _BF16 */
    void       *data;  /* [out, ld] */
} llmsq_kern_dense;

/* Copies W [out, in] f32 into the dense layout of `dtype` (F16/BF16: round to nearest even;
 * F16 overflows to +-inf as a cast would). Errors: ARG (dtype, empty shape), NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_dense_pack(const float *W, int64_t out, int64_t in, llmsq_dtype dtype,
                                             llmsq_kern_dense **d);
LLMSQ_API void         llmsq_kern_dense_free(llmsq_kern_dense *d); /* NULL is fine */
/* W [out, in] f32 = the stored weights (exact). */
LLMSQ_API void         llmsq_kern_dense_unpack(const llmsq_kern_dense *d, float *W);
LLMSQ_API llmsq_status llmsq_kern_dense_matmul(const llmsq_kern_dense *d, const float *x, int64_t B, float *y);
LLMSQ_API llmsq_status llmsq_kern_dense_matmul_scalar(const llmsq_kern_dense *d, const float *x, int64_t B,
                                                      float *y);
/* The speed baseline: OpenBLAS as it is (cblas_sgemv for B = 1, else one cblas_sgemm, with
 * OpenBLAS's own threading) on an F32 layout. Unlike every other entry point its results change
 * with the thread count (OpenBLAS 0.3.21 splits sums differently), which is why
 * llmsq_kern_dense_matmul does not call it. */
LLMSQ_API llmsq_status llmsq_kern_f32_openblas(const llmsq_kern_dense *d, const float *x, int64_t B, float *y);

/* ---- W4A16: int4 codes, per-group f16 scales and u8 zero points ---------------------------- */

#define LLMSQ_KERN_W4_BLOCK 64 /* columns per 32-byte block of codes */
#define LLMSQ_KERN_W4_ROWS  4  /* rows interleaved block by block */

/* One block: 64 codes in 8 little-endian 32-bit words. Nibble j (bits 4j..4j+3) of word l is
 * the code of column 64 b + 8 j + l. A 256-bit load of the block puts word l in lane l, so
 * slice j (8 consecutive columns) is `block & (0xf << 4j)` (or `block >> 28` for j = 7): one
 * integer op and one int->float conversion per 8 weights, no shuffles. The factor 2^(4j) left
 * on slice j is folded into a copy of the activations made once per call. */
typedef struct llmsq_kern_w4_block {
    uint32_t word[8];
} llmsq_kern_w4_block;
LLMSQ_KERN_STATIC_ASSERT(sizeof(llmsq_kern_w4_block) == 32, "int4 block is 32 bytes");

/* W[o, perm[k]] = f16(scales[o, g]) * (code(o, k) - zeros[o, g]),  g = k / group_size,
 * for packed column k < in (perm NULL: perm[k] = k).
 *
 * Blocks are stored in groups of 4 rows, interleaved block by block: block b of row
 * o = 4 G + r is llmsq_kern_w4_block number (G * nblk + b) * 4 + r, nblk = in_pad / 64, i.e.
 * rows 4G..4G+3 of block 0, then of block 1, ... (llmsq_kern_w4_word gives the word offset).
 * Why: the GEMV multiplies 4 rows at a time (one activation load serves 4 rows), and 4
 * separate row streams of 288 B to 5.5 KB (int4 rows are short) defeat the hardware
 * prefetchers -- measured on a 2-thread Zen 5 VM, [4096 x 4096] streamed at 9 GB/s that way
 * against 43 GB/s one row at a time. Interleaved, the 4 rows are one contiguous stream of 128
 * bytes per block and keep the shared loads. A 512-bit load takes rows (4G, 4G+1) or
 * (4G+2, 4G+3) of one block: two rows per vector, same columns.
 * Codes of columns in..in_pad-1 and of rows out..out4-1 (out4 = out rounded up to 4) are 0;
 * scales and zeros have out4 rows (the padding rows 0).
 * group_size is a multiple of 8 (slices never straddle groups) or the whole row
 * (n_groups == 1). Act-order checkpoints (qlinear g_idx) are packed with their columns sorted
 * by group: perm gathers the activations once per call.
 * Kernel: per group it accumulates sum code * x and subtracts zero * sum x (the group sums
 * of x are shared by all rows), so the rounding error is bounded by
 * gamma * sum |x| * scale * (code + zero) rather than sum |x w|. */
typedef struct llmsq_kern_w4 {
    int64_t  out, in;
    int64_t  in_pad;     /* in rounded up to LLMSQ_KERN_W4_BLOCK */
    int64_t  group_size; /* columns per group (in packed order) */
    int64_t  n_groups;   /* ceil(in / group_size) */
    int      bits;       /* bits of the canonical codes (2, 3 or 4), stored as nibbles */
    uint32_t *codes;     /* [out4 / 4, in_pad / 64, 4] blocks (llmsq_kern_w4_block) */
    uint16_t *scales;    /* [out4, n_groups] f16 bit patterns */
    uint8_t  *zeros;     /* [out4, n_groups], < 16 */
    int32_t  *perm;      /* [in] canonical column of packed column k, or NULL (identity) */
} llmsq_kern_w4;

/* Word offset in codes of block b (columns 64b..64b+63) of row o. */
static inline int64_t llmsq_kern_w4_word(const llmsq_kern_w4 *w, int64_t o, int64_t b)
{
    return (((o / LLMSQ_KERN_W4_ROWS) * (w->in_pad / LLMSQ_KERN_W4_BLOCK) + b) * LLMSQ_KERN_W4_ROWS +
            o % LLMSQ_KERN_W4_ROWS) * 8;
}

/* From a canonical quantized linear with bits <= 4. Errors: UNSUPPORTED (bits 8, group size
 * not a multiple of 8 with more than one group, g_idx that is not a column permutation of
 * equal contiguous groups, a scale not exactly representable in f16: message says which;
 * callers fall back to a dense layout), NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_w4_pack(const llmsq_qlinear *q, llmsq_kern_w4 **w);
LLMSQ_API void         llmsq_kern_w4_free(llmsq_kern_w4 *w);
/* The canonical form back (codes, scales, zeros, group size, g_idx when perm is set).
 * Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_w4_unpack(const llmsq_kern_w4 *w, llmsq_qlinear **q);
LLMSQ_API llmsq_status llmsq_kern_w4_matmul(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y);
LLMSQ_API llmsq_status llmsq_kern_w4_matmul_scalar(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y);

/* ---- W8A8: int8 weights per channel, int8 activations per token ----------------------------- */

#define LLMSQ_KERN_W8_PAD 32 /* row stride in bytes is a multiple of this */

/* W[o, i] = scales[o] * w[o, i] with w = code - 128 (symmetric canonical codes, z = 128).
 * Activations: token b is quantized as llmsq_act_quant_i8(x_b, in, act_static ? act_scale : 0),
 * giving int8 q_b and scale s_b; then
 *     acc[b, o] = sum_i q_b[i] * w[o, i]           (int32, exact: |acc| <= 128 * 128 * in)
 *     y[b, o]   = (float)acc[b, o] * (s_b * scales[o])   (f32, in that order)
 * so the optimized and scalar paths agree bit for bit. The AVX2 kernel sign-extends 16 weights
 * to int16 (vpmovsxbw) and multiplies with activations kept as int16 (vpmaddwd: pairs summed
 * into int32, no saturation for any int8 x int8), one row at a time (plain row-major rows: at
 * one int8 op per 5 weights the GEMV streams at memory speed without interleaving rows). */
typedef struct llmsq_kern_w8 {
    int64_t out, in;
    int64_t in_pad;     /* in rounded up to LLMSQ_KERN_W8_PAD; columns in.. are 0 */
    int8_t *w;          /* [out, in_pad] */
    float  *scales;     /* [out] */
    bool    act_static; /* per-tensor static activation scale act_scale, else per token */
    float   act_scale;
} llmsq_kern_w8;

/* From a canonical quantized linear with bits 8, one group per row, no g_idx, every zero
 * point 128 and in <= 2^17 (int32 accumulation cannot overflow); act_static and act_scale
 * are taken from q. Errors: UNSUPPORTED (saying which condition failed), NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_w8_pack(const llmsq_qlinear *q, llmsq_kern_w8 **w);
LLMSQ_API void         llmsq_kern_w8_free(llmsq_kern_w8 *w);
LLMSQ_API llmsq_status llmsq_kern_w8_unpack(const llmsq_kern_w8 *w, llmsq_qlinear **q);
LLMSQ_API llmsq_status llmsq_kern_w8_matmul(const llmsq_kern_w8 *w, const float *x, int64_t B, float *y);
LLMSQ_API llmsq_status llmsq_kern_w8_matmul_scalar(const llmsq_kern_w8 *w, const float *x, int64_t B, float *y);
/* The integer core: acc [B, out] = xq [B, in] w^T for int8 activations (row b at xq + b * in).
 * Exact. The matmul functions are quantize + this + scale. */
LLMSQ_API llmsq_status llmsq_kern_w8_matmul_i32(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B,
                                                int32_t *acc);
LLMSQ_API llmsq_status llmsq_kern_w8_matmul_i32_scalar(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B,
                                                       int32_t *acc);
/* llmsq_act_quant_i8, vectorized (identical results; the entry points use it). */
LLMSQ_API float llmsq_kern_act_quant_i8(const float *x, int64_t n, float static_scale, int8_t *q);

/* ---- 2:4 sparse: f16 values + 2-bit indices ------------------------------------------------ */

#define LLMSQ_KERN_S24_UNIT 32 /* dense columns per unit: 8 groups, 16 values, 4 metadata bytes */

/* Each group of 4 columns (4k..4k+3) keeps 2 entries. values[o, 2k], values[o, 2k+1] are the
 * kept entries of group k in column order. meta[o, m] describes groups 2m (bits 0-3) and
 * 2m+1 (bits 4-7); within a group's nibble, bits 0-1 = column offset (0..3) of the first
 * kept entry and bits 2-3 = that of the second, first < second. A group with fewer than 2
 * nonzeros keeps zero values at its lowest free offsets; padding groups (columns >= in) are
 * value 0 at offsets 0 and 1.
 * Why this layout: the same (value, 2-bit index) pairs as NVIDIA's sparse tensor cores (a
 * CUDA kernel reorders the metadata words into its fragment order on upload), and on the CPU
 * a metadata byte indexes a 256-entry table of permute indices. Rows are plain (not
 * interleaved): the kernels take one row at a time, so a thread's rows are one stream.
 * Kernels: AVX-512 (batch 1..8): per 32 columns one vpermt2ps gathers the 16 kept activations
 * of a token, the index assembled from four 4-lane table entries; AVX2: per 16 columns two
 * vpermps + blend at batch 1, and at batch 2..8 the values are expanded to dense 8-column
 * vectors (vpermps from a half-zero register) once and reused for every token. */
typedef struct llmsq_kern_s24 {
    int64_t   out, in;
    int64_t   in_pad; /* in rounded up to LLMSQ_KERN_S24_UNIT */
    uint16_t *values; /* [out, in_pad / 2] f16 bit patterns */
    uint8_t  *meta;   /* [out, in_pad / 8] */
} llmsq_kern_s24;

/* From W [out, in] f32 whose every group of 4 columns (the last may be partial) has at most 2
 * nonzeros; values are rounded to f16 (nearest even). Errors: ARG (a group with more than 2
 * nonzeros: the message gives row and columns; also empty shapes), NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_s24_pack(const float *W, int64_t out, int64_t in, llmsq_kern_s24 **s);
LLMSQ_API void         llmsq_kern_s24_free(llmsq_kern_s24 *s);
/* W [out, in] f32 (the f16 values at their columns, zeros elsewhere). */
LLMSQ_API void         llmsq_kern_s24_unpack(const llmsq_kern_s24 *s, float *W);
LLMSQ_API llmsq_status llmsq_kern_s24_matmul(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y);
LLMSQ_API llmsq_status llmsq_kern_s24_matmul_scalar(const llmsq_kern_s24 *s, const float *x, int64_t B,
                                                    float *y);

/* ---- 2:4 sparse + int4 ---------------------------------------------------------------------- */

/* As llmsq_kern_s24 for the sparsity, with int4 codes instead of f16 values:
 * codes[o, k] (32-bit word) holds the 8 kept codes of columns 16k..16k+15 (groups 4k..4k+3),
 * kept value v (0..7, groups in order, two per group in column order) in bits 4v..4v+3;
 * W[o, i] = f16(scales[o, g]) * (code - zeros[o, g]) at kept columns, g = i / group_size, and
 * 0 elsewhere. group_size is a multiple of 16 or the whole row. Padding: code = zero point.
 * Kernel (AVX2): per 16 columns, one broadcast word, vpsrlvd + and, minus the zero point,
 * int->float, times the gathered activations (as s24 at batch 1): eight vector ops per 16
 * columns, so unlike the other layouts this GEMV is bound by instructions, not memory. */
typedef struct llmsq_kern_s24w4 {
    int64_t   out, in;
    int64_t   in_pad;     /* in rounded up to LLMSQ_KERN_S24_UNIT */
    int64_t   group_size;
    int64_t   n_groups;
    int       bits;       /* bits of the canonical codes (2, 3 or 4) */
    uint32_t *codes;      /* [out, in_pad / 16] */
    uint8_t  *meta;       /* [out, in_pad / 8], as llmsq_kern_s24 */
    uint16_t *scales;     /* [out, n_groups] f16 */
    uint8_t  *zeros;      /* [out, n_groups] */
} llmsq_kern_s24w4;

/* From a canonical quantized linear (bits <= 4, no g_idx) whose dequantized matrix is 2:4:
 * an entry counts as nonzero when scale * (code - zero) != 0. Errors: ARG (not 2:4: row and
 * columns in the message), UNSUPPORTED (bits, g_idx, group size, scale not f16), NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_s24w4_pack(const llmsq_qlinear *q, llmsq_kern_s24w4 **s);
LLMSQ_API void         llmsq_kern_s24w4_free(llmsq_kern_s24w4 *s);
/* The canonical form back: codes at kept columns, the zero point elsewhere. Errors: NOMEM. */
LLMSQ_API llmsq_status llmsq_kern_s24w4_unpack(const llmsq_kern_s24w4 *s, llmsq_qlinear **q);
LLMSQ_API llmsq_status llmsq_kern_s24w4_matmul(const llmsq_kern_s24w4 *s, const float *x, int64_t B, float *y);
LLMSQ_API llmsq_status llmsq_kern_s24w4_matmul_scalar(const llmsq_kern_s24w4 *s, const float *x, int64_t B,
                                                      float *y);

/* Bytes of packed weight data one matmul streams (codes/values, metadata, scales, zeros; not
 * the struct): what the benchmarks divide by the time. */
LLMSQ_API size_t llmsq_kern_dense_bytes(const llmsq_kern_dense *d);
LLMSQ_API size_t llmsq_kern_w4_bytes(const llmsq_kern_w4 *w);
LLMSQ_API size_t llmsq_kern_w8_bytes(const llmsq_kern_w8 *w);
LLMSQ_API size_t llmsq_kern_s24_bytes(const llmsq_kern_s24 *s);
LLMSQ_API size_t llmsq_kern_s24w4_bytes(const llmsq_kern_s24w4 *s);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_KERNELS_H */
