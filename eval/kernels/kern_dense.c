/* Dense F32, F16 and BF16 matmul: scalar reference, AVX2 GEMV, GEMM by (dequantized) tiles +
 * sgemm, and the plain OpenBLAS f32 baseline. */
#include "kern_simd.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>

static inline float dense_at(const llmsq_kern_dense *d, int64_t o, int64_t i)
{
    switch (d->dtype) {
    case LLMSQ_DTYPE_F32: return ((const float *)d->data)[o * d->ld + i];
    case LLMSQ_DTYPE_F16: return llmsq_f16_to_f32(((const uint16_t *)d->data)[o * d->ld + i]);
    default: return llmsq_bf16_to_f32(((const uint16_t *)d->data)[o * d->ld + i]);
    }
}

/* ---- scalar reference -------------------------------------------------------------------------- */

llmsq_status llmsq_kern_dense_matmul_scalar(const llmsq_kern_dense *d, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(d && B >= 0 && (B == 0 || (x && y)));
    const int64_t out = d->out, in = d->in;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)out * (double)in))
    for (int64_t o = 0; o < out; o++)
        for (int64_t b = 0; b < B; b++) {
            const float *xb = x + b * in;
            float acc = 0.0f;
            for (int64_t i = 0; i < in; i++) acc += dense_at(d, o, i) * xb[i];
            y[b * out + o] = acc;
        }
    return LLMSQ_OK;
}

/* ---- dequantization (GEMM path, unpack) ---------------------------------------------------------- */

KERN_AVX2 static void dense_dequant_avx2(const llmsq_kern_dense *d, int64_t o0, int64_t o1, float *Wt)
{
    const int64_t in = d->in, n8 = in / 8 * 8;
    for (int64_t o = o0; o < o1; o++) {
        const uint16_t *h = (const uint16_t *)d->data + o * d->ld;
        float *w = Wt + (o - o0) * in;
        int64_t i = 0;
        if (d->dtype == LLMSQ_DTYPE_F16)
            for (; i < n8; i += 8) _mm256_storeu_ps(w + i, kern_ld_f16x8(h + i));
        else
            for (; i < n8; i += 8) {
                __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
                _mm256_storeu_ps(w + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
            }
        for (; i < in; i++) w[i] = dense_at(d, o, i);
    }
}

void kern_dense_dequant(const void *p, int64_t o0, int64_t o1, float *Wt)
{
    const llmsq_kern_dense *d = p;
    if (d->dtype == LLMSQ_DTYPE_F32) {
        for (int64_t o = o0; o < o1; o++)
            memcpy(Wt + (o - o0) * d->in, (const float *)d->data + o * d->ld, (size_t)d->in * sizeof(float));
        return;
    }
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) {
        dense_dequant_avx2(d, o0, o1, Wt);
        return;
    }
    for (int64_t o = o0; o < o1; o++)
        for (int64_t i = 0; i < d->in; i++) Wt[(o - o0) * d->in + i] = dense_at(d, o, i);
}

/* ---- AVX2 GEMV ------------------------------------------------------------------------------------ */

/* Activations for the GEMV: [B, ld] f32, zero padded. F32, F16: column order. BF16: each chunk of 16
 * columns as its 8 even columns then its 8 odd columns (a 32-byte load of 16 bf16 gives the
 * even ones by << 16 and the odd ones by & 0xffff0000, lane l holding columns 2l and 2l+1). */
static void dense_prep_x(const llmsq_kern_dense *d, const float *x, int64_t B, float *xs)
{
    const int64_t in = d->in, ld = d->ld;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * in;
        float *dst = xs + b * ld;
        if (d->dtype != LLMSQ_DTYPE_BF16) {
            memcpy(dst, xb, (size_t)in * sizeof(float));
            continue;
        }
        for (int64_t i = 0; i < in; i++) {
            int64_t c = i / 16, r = i % 16;
            dst[c * 16 + (r % 2) * 8 + r / 2] = xb[i];
        }
    }
}

enum { DENSE_F16, DENSE_BF16, DENSE_F32 };
/* 16 columns [i, i + 16) of row W (dtype `kind`) times B tokens, into chains a0 (first 8
 * columns) and a1 (last 8). */
KERN_AVX2 KERN_INLINE void dense_step(const void *W, int64_t i, const int B, const int kind, const float *xs,
                                      int64_t ld, __m256 acc[8][4], const int a0, const int a1)
{
    __m256 w0, w1;
    if (kind == DENSE_F32) {
        w0 = _mm256_load_ps((const float *)W + i);
        w1 = _mm256_load_ps((const float *)W + i + 8);
    } else if (kind == DENSE_BF16) {
        const __m256i v = _mm256_load_si256((const __m256i *)((const uint16_t *)W + i));
        w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        w1 = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    } else {
        w0 = kern_ld_f16x8((const uint16_t *)W + i);
        w1 = kern_ld_f16x8((const uint16_t *)W + i + 8);
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        acc[b][a0] = _mm256_fmadd_ps(w0, _mm256_load_ps(xs + b * ld + i), acc[b][a0]);
        acc[b][a1] = _mm256_fmadd_ps(w1, _mm256_load_ps(xs + b * ld + i + 8), acc[b][a1]);
    }
}

/* Row o x B tokens with A chains per token (A = 4: two 16-column steps per iteration). One
 * row at a time: a thread's rows are then one contiguous stream for the hardware prefetchers
 * (rows of 1 KiB..8 KiB taken 4 at a time streamed 20-30% slower). */
KERN_AVX2 KERN_INLINE void dense_row(const llmsq_kern_dense *d, int64_t o, const int B, const int A, const int kind,
                                     const float *xs, float *y)
{
    const int64_t ld = d->ld;
    const void *W = kind == DENSE_F32 ? (const void *)((const float *)d->data + o * ld)
                                      : (const void *)((const uint16_t *)d->data + o * ld);
    __m256 acc[8][4];
#pragma GCC unroll 8
    for (int b = 0; b < B; b++)
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) acc[b][a] = _mm256_setzero_ps();
    int64_t i = 0;
    const size_t es = kind == DENSE_F32 ? 4 : 2;
    if (A == 4)
        for (; i + 32 <= ld; i += 32) { /* 64 or 128 bytes a step: keep KERN_PF_BYTES in flight */
            const char *pf = (const char *)W + (size_t)i * es + KERN_PF_BYTES;
            _mm_prefetch(pf, _MM_HINT_T0);
            if (kind == DENSE_F32) _mm_prefetch(pf + 64, _MM_HINT_T0);
            dense_step(W, i, B, kind, xs, ld, acc, 0, 1);
            dense_step(W, i + 16, B, kind, xs, ld, acc, 2, 3);
        }
    for (; i < ld; i += 16) dense_step(W, i, B, kind, xs, ld, acc, 0, A == 1 ? 0 : 1);
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        __m256 s = A == 1 ? acc[b][0] : _mm256_add_ps(acc[b][0], acc[b][1]);
        if (A == 4) s = _mm256_add_ps(s, _mm256_add_ps(acc[b][2], acc[b][3]));
        y[b * d->out + o] = kern_hsum(s);
    }
}

/* Rows o..o+3, batch 1, two chains per row (as dense_row with A = 2, so a row gives the same
 * bits either way): for rows longer than DENSE_QUAD_LD the activations no longer stay in L1
 * next to the weight stream, and sharing each activation load between 4 rows is what keeps the
 * GEMV at memory speed (4 rows at a time are 4 long streams, which the prefetchers follow). */
#define DENSE_QUAD_LD 4096
KERN_AVX2 KERN_INLINE void dense_quad(const llmsq_kern_dense *d, int64_t o, const int kind, const float *xs, float *y)
{
    const int64_t ld = d->ld;
    const size_t es = kind == DENSE_F32 ? 4 : 2;
    const char *W = (const char *)d->data + (size_t)(o * ld) * es;
    __m256 acc[4][8][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) acc[r][0][0] = acc[r][0][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < ld; i += 16)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) dense_step(W + (size_t)(r * ld) * es, i, 1, kind, xs, ld, acc[r], 0, 1);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) y[o + r] = kern_hsum(_mm256_add_ps(acc[r][0][0], acc[r][0][1]));
}

typedef void (*dense_row_fn)(const llmsq_kern_dense *d, int64_t o, const float *xs, float *y);

#define DENSE_ROW(name, B, A, K)                                                                           \
    KERN_AVX2 static void name(const llmsq_kern_dense *d, int64_t o, const float *xs, float *y)          \
    {                                                                                                      \
        dense_row(d, o, B, A, K, xs, y);                                                                   \
    }
/* Per kind and batch: 4 chains up to 2 tokens, 2 up to 4, then one per token. */
#define DENSE_ROWS(p, K)                                                                                   \
    DENSE_ROW(p##_b1, 1, 4, K) DENSE_ROW(p##_b2, 2, 4, K) DENSE_ROW(p##_b3, 3, 2, K)                      \
    DENSE_ROW(p##_b4, 4, 2, K) DENSE_ROW(p##_b5, 5, 1, K) DENSE_ROW(p##_b6, 6, 1, K)                      \
    DENSE_ROW(p##_b7, 7, 1, K) DENSE_ROW(p##_b8, 8, 1, K)
DENSE_ROWS(h, DENSE_F16)
DENSE_ROWS(bf, DENSE_BF16)
DENSE_ROWS(f, DENSE_F32)
#define DENSE_SET(p) {0, p##_b1, p##_b2, p##_b3, p##_b4, p##_b5, p##_b6, p##_b7, p##_b8}
static const dense_row_fn dense_rows[3][9] = {DENSE_SET(h), DENSE_SET(bf), DENSE_SET(f)};
/* Long rows, batch 1: groups of 4 rows, and their tail rows one by one with the same chains. */
#define DENSE_QUADS(p, K)                                                                                  \
    KERN_AVX2 static void p##_q4(const llmsq_kern_dense *d, int64_t o, const float *xs, float *y)        \
    {                                                                                                      \
        dense_quad(d, o, K, xs, y);                                                                        \
    }                                                                                                      \
    DENSE_ROW(p##_q1, 1, 2, K)
DENSE_QUADS(h, DENSE_F16)
DENSE_QUADS(bf, DENSE_BF16)
DENSE_QUADS(f, DENSE_F32)
static const dense_row_fn dense_quads[3][2] = {{h_q4, h_q1}, {bf_q4, bf_q1}, {f_q4, f_q1}};

static llmsq_status dense_gemv_avx2(const llmsq_kern_dense *d, const float *x, int64_t B, float *y)
{
    float *xs = kern_alloc((size_t)(B * d->ld) * sizeof(float));
    if (!xs) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    dense_prep_x(d, x, B, xs);
    const int kind = d->dtype == LLMSQ_DTYPE_F16 ? DENSE_F16 : d->dtype == LLMSQ_DTYPE_BF16 ? DENSE_BF16 : DENSE_F32;
    const dense_row_fn fn = dense_rows[kind][B];
    const size_t row_bytes = (size_t)d->ld * (d->dtype == LLMSQ_DTYPE_F32 ? 4 : 2);
    const bool quad = B == 1 && d->ld > DENSE_QUAD_LD;
    const int64_t unit = quad ? 4 : 1, nunits = (d->out + unit - 1) / unit;
#pragma omp parallel if (kern_parallel((double)B * (double)d->out * (double)d->ld))
    {
        int64_t u0, u1; /* this thread's rows: one contiguous range, its start prefetched */
        kern_split(nunits, omp_get_num_threads(), omp_get_thread_num(), &u0, &u1);
        if (u0 < u1) kern_prefetch((const char *)d->data + (size_t)(u0 * unit) * row_bytes, KERN_PF_BYTES);
        for (int64_t u = u0; u < u1; u++) {
            if (!quad) fn(d, u, xs, y);
            else if (4 * u + 4 <= d->out) dense_quads[kind][0](d, 4 * u, xs, y);
            else
                for (int64_t o = 4 * u; o < d->out; o++) dense_quads[kind][1](d, o, xs, y);
        }
    }
    free(xs);
    return LLMSQ_OK;
}

/* ---- entry points ---------------------------------------------------------------------------------- */

llmsq_status llmsq_kern_dense_matmul(const llmsq_kern_dense *d, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(d && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    if (B > LLMSQ_KERN_GEMV_MAX_BATCH) {
        if (d->dtype == LLMSQ_DTYPE_F32) return kern_gemm_tiles(d, d->out, d->in, NULL, d->data, d->ld, x, B, y);
        return kern_gemm_tiles(d, d->out, d->in, kern_dense_dequant, NULL, 0, x, B, y);
    }
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) return dense_gemv_avx2(d, x, B, y);
    return llmsq_kern_dense_matmul_scalar(d, x, B, y);
}

llmsq_status llmsq_kern_f32_openblas(const llmsq_kern_dense *d, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(d && d->dtype == LLMSQ_DTYPE_F32 && B >= 0 && (B == 0 || (x && y)));
    LLMSQ_ASSERT(B <= INT_MAX && d->out <= INT_MAX && d->ld <= INT_MAX);
    if (B == 0) return LLMSQ_OK;
    if (B == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)d->out, (int)d->in, 1.0f, d->data, (int)d->ld, x, 1, 0.0f, y,
                    1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)d->out, (int)d->in, 1.0f, x, (int)d->in,
                    d->data, (int)d->ld, 0.0f, y, (int)d->out);
    return LLMSQ_OK;
}
