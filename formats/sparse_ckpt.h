/* Internal to formats/: compressed-tensors sparsity (FORMATS.md 4.5 sparse-bitmask and
 * sparse-24-bitmask, 4.7 sparsity_config). The encoder side is used by the directory writer
 * (quant_ckpt_write.c), the decoder and the N:M verification by the importer (ct_ckpt.c).
 *
 * Zeros are exact float zeros (-0.0 counts as zero, as the reference's `tensor != 0`).
 * 2:4 kept positions (our rule, deterministic): every nonzero of a group of 4 is kept (at most
 * 2 allowed), then the lowest-index zeros of the group until 2 are kept -- the reference's
 * top-2 by |value| with ties among equal zeros broken towards the first positions. */
#ifndef LLMSQ_FORMATS_SPARSE_CKPT_H
#define LLMSQ_FORMATS_SPARSE_CKPT_H

#include "llmsq/formats.h"

#include <jansson.h>

/* fmt is an LLMSQ_SPARSE_* of llmsq_ckpt_write_params.sparse_format.
 * "dense", "sparse-bitmask", "sparse-24-bitmask" (NULL for NONE / unknown). */
const char *llmsq_sparse_format_name(int fmt);

typedef enum llmsq_sparse_kind {
    LLMSQ_SPK_COMPRESSED, LLMSQ_SPK_BITMASK, LLMSQ_SPK_ROW_OFFSETS, LLMSQ_SPK_SHAPE
} llmsq_sparse_kind;

/* One tensor "<module>.<suffix>" standing for the dense "<module>.weight". */
typedef struct llmsq_sparse_tensor {
    llmsq_sparse_kind kind;
    const char       *suffix;
    llmsq_dtype       dtype;
    int               ndim;
    int64_t           shape[2];
    size_t            nbytes;
} llmsq_sparse_tensor;

#define LLMSQ_SPARSE_MAX_TENSORS 4

/* Suffixes the bitmask compressors write (NULL-terminated). */
extern const char *const llmsq_sparse_suffixes[];

/* Whether element i of w (F32/F16/BF16, read bytewise) is nonzero. */
bool llmsq_sparse_nonzero(const llmsq_tensor *w, int64_t i);

/* Plans the tensors of the dense weight w ([R, C], F32/F16/BF16) in fmt (BITMASK or
 * 24_BITMASK): checks it can be stored (2:4: C % 4 == 0 and at most 2 nonzeros in every group
 * of 4) and counts the nonzeros. Errors: UNSUPPORTED naming the tensor (and row). */
llmsq_status llmsq_sparse_tensors(int fmt, const llmsq_tensor *w, llmsq_sparse_tensor out[LLMSQ_SPARSE_MAX_TENSORS],
                                  int *n);
/* Fills dst (t->nbytes) with the bytes of t for the weight w. Errors: NOMEM, UNSUPPORTED. */
llmsq_status llmsq_sparse_fill(int fmt, const llmsq_tensor *w, const llmsq_sparse_tensor *t, void *dst);

/* N:M over the rows of a [R, C] matrix whose element (r, c) is nonzero iff nz(ctx, r*C + c):
 * groups of m starting at column 0 (a last partial group too) hold at most n nonzeros.
 * Returns true, or false with the first offending row and group start column. */
bool llmsq_sparse_nm_check(bool (*nz)(const void *ctx, int64_t i), const void *ctx, int64_t R, int64_t C, int n,
                           int m, int64_t *bad_row, int64_t *bad_col);

/* Parses "N:M" (0 < N < M <= 64), "unstructured" / "0:0" / NULL (0:0). false when malformed. */
bool llmsq_sparse_parse_structure(const char *s, int *n, int *m);

/* Rebuilds "<module>.weight" (F32) for every "<module>.bitmask" of the store in the format
 * spf ("sparse-bitmask" / "sparse-24-bitmask"), validating every shape and count. Errors:
 * FORMAT naming the tensor (and row), UNSUPPORTED (compressed values that are not float),
 * NOMEM. */
llmsq_status llmsq_sparse_import(llmsq_store *s, const char *spf, const char *path);

#endif
