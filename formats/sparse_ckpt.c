/* compressed-tensors sparsity compressors (FORMATS.md 4.5): sparse-bitmask (values, bitmask,
 * row offsets, shape) and sparse-24-bitmask (2 kept values of every 4, bitmask, shape), both
 * ways. Bit k of byte b of row r stands for column 8b + k (little bit order). */
#include "formats/sparse_ckpt.h"
#include "formats/qpack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const llmsq_sparse_suffixes[] = {"compressed", "bitmask", "row_offsets", "shape", NULL};

const char *llmsq_sparse_format_name(int fmt)
{
    switch (fmt) {
    case LLMSQ_SPARSE_DENSE: return "dense";
    case LLMSQ_SPARSE_BITMASK: return "sparse-bitmask";
    case LLMSQ_SPARSE_24_BITMASK: return "sparse-24-bitmask";
    default: return NULL;
    }
}

static size_t esize(llmsq_dtype dt) { return dt == LLMSQ_DTYPE_F32 ? 4 : 2; }

static bool is_float(llmsq_dtype dt)
{
    return dt == LLMSQ_DTYPE_F32 || dt == LLMSQ_DTYPE_F16 || dt == LLMSQ_DTYPE_BF16;
}

bool llmsq_sparse_nonzero(const llmsq_tensor *w, int64_t i)
{
    const uint8_t *b = (const uint8_t *)w->data + (size_t)i * esize(w->dtype);
    if (w->dtype == LLMSQ_DTYPE_F32) return (llmsq_ld_u32(b, 0) & 0x7FFFFFFFu) != 0;
    return ((b[0] | b[1] << 8) & 0x7FFF) != 0; /* F16 and BF16: +-0 have every other bit clear */
}

/* keep[c] for row r of w; returns -1, or the first column of a group with more than 2 nonzeros. */
static int64_t row_keep(int fmt, const llmsq_tensor *w, int64_t r, uint8_t *keep)
{
    const int64_t C = w->shape[1];
    for (int64_t c = 0; c < C; c++) keep[c] = llmsq_sparse_nonzero(w, r * C + c);
    if (fmt != LLMSQ_SPARSE_24_BITMASK) return -1;
    for (int64_t c = 0; c < C; c += 4) {
        int k = keep[c] + keep[c + 1] + keep[c + 2] + keep[c + 3];
        if (k > 2) return c;
        for (int j = 0; j < 4 && k < 2; j++)
            if (!keep[c + j]) keep[c + j] = 1, k++;
    }
    return -1;
}

static llmsq_sparse_tensor mk(llmsq_sparse_kind kind, const char *suffix, llmsq_dtype dt, int ndim, int64_t d0,
                              int64_t d1)
{
    llmsq_sparse_tensor t = {kind, suffix, dt, ndim, {d0, d1}, 0};
    t.nbytes = llmsq_dtype_nbytes(dt, ndim == 1 ? d0 : d0 * d1);
    return t;
}

llmsq_status llmsq_sparse_tensors(int fmt, const llmsq_tensor *w, llmsq_sparse_tensor out[LLMSQ_SPARSE_MAX_TENSORS],
                                  int *n)
{
    LLMSQ_ASSERT(fmt == LLMSQ_SPARSE_BITMASK || fmt == LLMSQ_SPARSE_24_BITMASK);
    const char *fname = llmsq_sparse_format_name(fmt);
    if (w->qlinear || w->ndim != 2 || !is_float(w->dtype))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s cannot store %s: it takes a dense F32/F16/BF16 [out, in] "
                           "weight, not %s%s", fname, w->name, w->qlinear ? "a quantized linear " : "",
                           w->qlinear ? "" : llmsq_dtype_info(w->dtype)->name);
    const int64_t R = w->shape[0], C = w->shape[1];
    if (fmt == LLMSQ_SPARSE_24_BITMASK && C % 4 != 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "sparse-24-bitmask cannot store %s: in_features = %lld is not a "
                           "multiple of 4", w->name, (long long)C);
    uint8_t *keep = malloc((size_t)(C ? C : 1));
    if (!keep) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    int64_t nnz = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t bad = row_keep(fmt, w, r, keep);
        if (bad >= 0) {
            free(keep);
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "sparse-24-bitmask cannot store %s: row %lld, columns "
                               "%lld..%lld hold more than 2 nonzeros (not 2:4 sparse)", w->name, (long long)r,
                               (long long)bad, (long long)bad + 3);
        }
        for (int64_t c = 0; c < C; c++) nnz += keep[c];
    }
    free(keep);
    int k = 0;
    const int64_t bpr = (C + 7) / 8;
    if (fmt == LLMSQ_SPARSE_24_BITMASK) {
        out[k++] = mk(LLMSQ_SPK_COMPRESSED, "compressed", w->dtype, 2, R, C / 2);
        out[k++] = mk(LLMSQ_SPK_BITMASK, "bitmask", LLMSQ_DTYPE_U8, 2, R, bpr);
        out[k++] = mk(LLMSQ_SPK_SHAPE, "shape", LLMSQ_DTYPE_I64, 2, 2, 1);
    } else {
        out[k++] = mk(LLMSQ_SPK_COMPRESSED, "compressed", w->dtype, 1, nnz, 0);
        out[k++] = mk(LLMSQ_SPK_BITMASK, "bitmask", LLMSQ_DTYPE_U8, 2, R, bpr);
        out[k++] = mk(LLMSQ_SPK_ROW_OFFSETS, "row_offsets", LLMSQ_DTYPE_I64, 1, R, 0);
        out[k++] = mk(LLMSQ_SPK_SHAPE, "shape", LLMSQ_DTYPE_I64, 1, 2, 0);
    }
    *n = k;
    return LLMSQ_OK;
}

static void st_i64(uint8_t *p, int64_t i, int64_t v)
{
    for (int b = 0; b < 8; b++) p[8 * i + b] = (uint8_t)((uint64_t)v >> (8 * b));
}

static int64_t ld_i64(const void *p, int64_t i)
{
    const uint8_t *b = (const uint8_t *)p + 8 * i;
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | b[k];
    return (int64_t)v;
}

llmsq_status llmsq_sparse_fill(int fmt, const llmsq_tensor *w, const llmsq_sparse_tensor *t, void *dst)
{
    const int64_t R = w->shape[0], C = w->shape[1], bpr = (C + 7) / 8;
    const size_t es = esize(w->dtype);
    uint8_t *p = dst;
    memset(dst, 0, t->nbytes);
    if (t->kind == LLMSQ_SPK_SHAPE) {
        st_i64(p, 0, R);
        st_i64(p, 1, C);
        return LLMSQ_OK;
    }
    uint8_t *keep = malloc((size_t)(C ? C : 1));
    if (!keep) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    int64_t at = 0; /* values written so far (compressed) or the running offset (row_offsets) */
    for (int64_t r = 0; r < R; r++) {
        if (row_keep(fmt, w, r, keep) >= 0) {
            free(keep);
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s changed while it was written (row %lld)", w->name,
                               (long long)r);
        }
        int64_t cnt = 0;
        for (int64_t c = 0; c < C; c++) {
            if (!keep[c]) continue;
            if (t->kind == LLMSQ_SPK_BITMASK) p[r * bpr + c / 8] |= (uint8_t)(1u << (c % 8));
            else if (t->kind == LLMSQ_SPK_COMPRESSED && (size_t)(at + cnt + 1) * es <= t->nbytes)
                memcpy(p + (size_t)(at + cnt) * es, (const uint8_t *)w->data + (size_t)(r * C + c) * es, es);
            cnt++;
        }
        if (t->kind == LLMSQ_SPK_ROW_OFFSETS) st_i64(p, r, at);
        at += cnt;
    }
    free(keep);
    if (t->kind == LLMSQ_SPK_COMPRESSED && (size_t)at * es != t->nbytes)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s changed while it was written (%lld values, planned %zu)",
                           w->name, (long long)at, t->nbytes / es);
    return LLMSQ_OK;
}

bool llmsq_sparse_nm_check(bool (*nz)(const void *ctx, int64_t i), const void *ctx, int64_t R, int64_t C, int n,
                           int m, int64_t *bad_row, int64_t *bad_col)
{
    *bad_row = *bad_col = -1;
    if (m <= 0) return true;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c0 = 0; c0 < C; c0 += m) {
            int k = 0;
            for (int64_t c = c0; c < C && c < c0 + m; c++) k += nz(ctx, r * C + c);
            if (k > n) {
                *bad_row = r;
                *bad_col = c0;
                return false;
            }
        }
    return true;
}

bool llmsq_sparse_parse_structure(const char *s, int *n, int *m)
{
    *n = *m = 0;
    if (!s || strcmp(s, "unstructured") == 0 || strcmp(s, "0:0") == 0) return true;
    int a, b, used = 0;
    if (sscanf(s, "%d:%d%n", &a, &b, &used) != 2 || s[used] != '\0' || a <= 0 || a >= b || b > 64) return false;
    *n = a;
    *m = b;
    return true;
}

/* ---- import ----------------------------------------------------------------------------------- */

static llmsq_status bad(const char *path, const llmsq_tensor *t, const char *want)
{
    char got[96];
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s' (%s) is %s %s, expected %s", path,
                       t->name, t->file ? t->file : "store", llmsq_dtype_info(t->dtype)->name,
                       llmsq_shape_str(t, got, sizeof got), want);
}

static const llmsq_tensor *get(const llmsq_store *s, const char *module, const char *suffix, char *name, size_t cap)
{
    snprintf(name, cap, "%s.%s", module, suffix);
    return llmsq_store_get(s, name);
}

static int popcount8(uint8_t v)
{
    int k = 0;
    for (; v; v &= (uint8_t)(v - 1)) k++;
    return k;
}

static llmsq_status import_one(llmsq_store *s, const char *path, bool two_four, const char *module)
{
    char nb[512], nc[512], nr[512], ns[512], nw[512], want[800];
    const llmsq_tensor *bm = get(s, module, "bitmask", nb, sizeof nb), *cp = get(s, module, "compressed", nc, sizeof nc),
                       *ro = two_four ? NULL : get(s, module, "row_offsets", nr, sizeof nr),
                       *sh = get(s, module, "shape", ns, sizeof ns);
    const char *fname = two_four ? "sparse-24-bitmask" : "sparse-bitmask";
    const char *missing = !cp ? nc : !sh ? ns : !two_four && !ro ? nr : NULL;
    if (missing)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: compressed-tensors tensor '%s' is missing (%s module %s)", path,
                           missing, fname, module);
    if (get(s, module, "weight", nw, sizeof nw))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' and its %s form '%s' are both present", path, nw, fname,
                           nb);
    /* shape: I64 [2] (sparse-bitmask) or [2, 1] (sparse-24-bitmask); either is read. */
    if (sh->dtype != LLMSQ_DTYPE_I64 || llmsq_tensor_numel(sh) != 2 || !(sh->ndim == 1 || (sh->ndim == 2 && sh->shape[1] == 1)))
        return bad(path, sh, two_four ? "I64 [2, 1]" : "I64 [2]");
    const int64_t R = ld_i64(sh->data, 0), C = ld_i64(sh->data, 1);
    if (R <= 0 || C <= 0 || R > ((int64_t)1 << 40) || C > ((int64_t)1 << 40))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' holds [%lld, %lld], not a weight shape", path, ns,
                           (long long)R, (long long)C);
    const int64_t bpr = (C + 7) / 8;
    if (bm->dtype != LLMSQ_DTYPE_U8 || bm->ndim != 2 || bm->shape[0] != R || bm->shape[1] != bpr) {
        snprintf(want, sizeof want, "U8 [%lld, %lld] for shape [%lld, %lld]", (long long)R, (long long)bpr,
                 (long long)R, (long long)C);
        return bad(path, bm, want);
    }
    if (!is_float(cp->dtype))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s' holds %s values: sparsity combined with int- or "
                           "float-quantized weights is not supported (float values only)", path, nc,
                           llmsq_dtype_info(cp->dtype)->name);
    if (two_four && C % 4 != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' gives %lld columns, not a multiple of 4 as "
                           "sparse-24-bitmask needs", path, ns, (long long)C);
    const uint8_t *b = bm->data;
    int64_t total = 0;
    for (int64_t r = 0; r < R; r++) {
        const uint8_t *row = b + r * bpr;
        if (C % 8 && (row[bpr - 1] >> (C % 8)) != 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' row %lld marks columns past in_features = %lld",
                               path, nb, (long long)r, (long long)C);
        int64_t pc = 0;
        for (int64_t k = 0; k < bpr; k++) pc += popcount8(row[k]);
        if (two_four)
            for (int64_t c = 0; c < C; c += 4) {
                int kept = 0;
                for (int j = 0; j < 4; j++) kept += row[(c + j) / 8] >> ((c + j) % 8) & 1;
                if (kept != 2)
                    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' row %lld: columns %lld..%lld keep %d "
                                       "values, sparse-24-bitmask keeps exactly 2 of every 4 (2:4 structure broken)",
                                       path, nb, (long long)r, (long long)c, (long long)c + 3, kept);
            }
        if (ro) {
            if (r == 0 && (ro->dtype != LLMSQ_DTYPE_I64 || ro->ndim != 1 || ro->shape[0] != R)) {
                snprintf(want, sizeof want, "I64 [%lld]", (long long)R);
                return bad(path, ro, want);
            }
            int64_t off = ld_i64(ro->data, r);
            if (r > 0 && off < ld_i64(ro->data, r - 1))
                return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' is not monotonic: row %lld starts at %lld, "
                                   "before row %lld (%lld)", path, nr, (long long)r, (long long)off, (long long)r - 1,
                                   (long long)ld_i64(ro->data, r - 1));
            if (off != total)
                return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' row %lld starts at %lld but the bitmask '%s' "
                                   "marks %lld values before it", path, nr, (long long)r, (long long)off, nb,
                                   (long long)total);
        }
        total += pc;
    }
    if (two_four) {
        if (cp->ndim != 2 || cp->shape[0] != R || cp->shape[1] != C / 2) {
            snprintf(want, sizeof want, "[%lld, %lld] for shape [%lld, %lld]", (long long)R, (long long)C / 2,
                     (long long)R, (long long)C);
            return bad(path, cp, want);
        }
    } else if (cp->ndim != 1 || cp->shape[0] != total) {
        snprintf(want, sizeof want, "[%lld] (the bitmask '%s' marks %lld values)", (long long)total, nb,
                 (long long)total);
        return bad(path, cp, want);
    }
    float *vals = malloc((size_t)(total ? total : 1) * sizeof *vals);
    float *W = calloc((size_t)(R * C), sizeof *W);
    llmsq_status st = vals && W ? llmsq_qckpt_to_f32(cp, vals) : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory "
                                                                            "decoding %s", module);
    if (st != LLMSQ_OK) {
        free(vals);
        free(W);
        return st;
    }
    int64_t at = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            if (b[r * bpr + c / 8] >> (c % 8) & 1) W[r * C + c] = vals[at++];
    free(vals);
    int64_t shape[2] = {R, C};
    return llmsq_store_put(s, nw, LLMSQ_DTYPE_F32, 2, shape, W);
}

llmsq_status llmsq_sparse_import(llmsq_store *s, const char *spf, const char *path)
{
    const bool compressed = strcmp(spf, "sparse-bitmask") == 0 || strcmp(spf, "sparse-24-bitmask") == 0;
    char **names;
    size_t n;
    LLMSQ_TRY(llmsq_qckpt_names(s, ".bitmask", &names, &n));
    llmsq_status st = LLMSQ_OK;
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        if (!compressed) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' is a sparse bitmask but sparsity_config.format is "
                             "\"%s\"", path, names[i], spf);
            break;
        }
        names[i][strlen(names[i]) - strlen(".bitmask")] = '\0';
        st = import_one(s, path, strcmp(spf, "sparse-24-bitmask") == 0, names[i]);
    }
    llmsq_qckpt_free_names(names, n);
    return st;
}
