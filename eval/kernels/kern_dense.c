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

/* R rows x B tokens, A accumulators per (row, token) (A = 2: one per 8-column half). */
KERN_AVX2 KERN_INLINE void dense_tile(const llmsq_kern_dense *d, int64_t o, const int R, const int B, const int A,
                                      const int kind, const float *xs, float *y)
{
    const int64_t ld = d->ld, out = d->out;
    const uint16_t *W = (const uint16_t *)d->data + o * ld;
    const float *Wf = (const float *)d->data + o * ld;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[4][8][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++)
#pragma GCC unroll 2
            for (int a = 0; a < A; a++) acc[r][b][a] = _mm256_setzero_ps();
    for (int64_t i = 0; i < ld; i += 16) {
        __m256 w0[4], w1[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (kind == DENSE_F32) {
                w0[r] = _mm256_load_ps(Wf + r * ld + i);
                w1[r] = _mm256_load_ps(Wf + r * ld + i + 8);
            } else if (kind == DENSE_BF16) {
                __m256i v = _mm256_load_si256((const __m256i *)(W + r * ld + i));
                w0[r] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                w1[r] = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
            } else {
                w0[r] = kern_ld_f16x8(W + r * ld + i);
                w1[r] = kern_ld_f16x8(W + r * ld + i + 8);
            }
        }
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            __m256 x0 = _mm256_load_ps(xs + b * ld + i), x1 = _mm256_load_ps(xs + b * ld + i + 8);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                acc[r][b][0] = _mm256_fmadd_ps(w0[r], x0, acc[r][b][0]);
                acc[r][b][A - 1] = _mm256_fmadd_ps(w1[r], x1, acc[r][b][A - 1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            __m256 s = A == 2 ? _mm256_add_ps(acc[r][b][0], acc[r][b][1]) : acc[r][b][0];
            y[b * out + o + r] = kern_hsum(s);
        }
}

typedef void (*dense_tile_fn)(const llmsq_kern_dense *d, int64_t o, const float *xs, float *y);

#define DENSE_TILE(name, R, B, A, K)                                                                       \
    KERN_AVX2 static void name(const llmsq_kern_dense *d, int64_t o, const float *xs, float *y)          \
    {                                                                                                      \
        dense_tile(d, o, R, B, A, K, xs, y);                                                               \
    }
/* Per kind and batch: R rows, then the 1-row tail with the same per-row arithmetic. */
#define DENSE_TILES(p, K)                                                                                  \
    DENSE_TILE(p##_r4b1, 4, 1, 2, K) DENSE_TILE(p##_r1b1, 1, 1, 2, K) DENSE_TILE(p##_r2b2, 2, 2, 2, K)    \
    DENSE_TILE(p##_r1b2, 1, 2, 2, K) DENSE_TILE(p##_r1b3, 1, 3, 2, K) DENSE_TILE(p##_r1b4, 1, 4, 2, K)    \
    DENSE_TILE(p##_r1b5, 1, 5, 1, K) DENSE_TILE(p##_r1b6, 1, 6, 1, K) DENSE_TILE(p##_r1b7, 1, 7, 1, K)    \
    DENSE_TILE(p##_r1b8, 1, 8, 1, K)
DENSE_TILES(h, DENSE_F16)
DENSE_TILES(bf, DENSE_BF16)
DENSE_TILES(f, DENSE_F32)

typedef struct {
    dense_tile_fn full, tail;
    int rows;
} dense_tile_set;
#define DENSE_SET(p)                                                                                       \
    {{0, 0, 0}, {p##_r4b1, p##_r1b1, 4}, {p##_r2b2, p##_r1b2, 2}, {p##_r1b3, p##_r1b3, 1},               \
     {p##_r1b4, p##_r1b4, 1}, {p##_r1b5, p##_r1b5, 1}, {p##_r1b6, p##_r1b6, 1}, {p##_r1b7, p##_r1b7, 1},  \
     {p##_r1b8, p##_r1b8, 1}}
static const dense_tile_set dense_tiles[3][9] = {DENSE_SET(h), DENSE_SET(bf), DENSE_SET(f)};

static llmsq_status dense_gemv_avx2(const llmsq_kern_dense *d, const float *x, int64_t B, float *y)
{
    float *xs = kern_alloc((size_t)(B * d->ld) * sizeof(float));
    if (!xs) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    dense_prep_x(d, x, B, xs);
    const int kind = d->dtype == LLMSQ_DTYPE_F16 ? DENSE_F16 : d->dtype == LLMSQ_DTYPE_BF16 ? DENSE_BF16 : DENSE_F32;
    const dense_tile_fn full = dense_tiles[kind][B].full, tail = dense_tiles[kind][B].tail;
    const int64_t R = dense_tiles[kind][B].rows, nt = d->out / R;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)d->out * (double)d->ld))
    for (int64_t t = 0; t <= nt; t++) {
        if (t < nt) full(d, t * R, xs, y);
        else
            for (int64_t o = nt * R; o < d->out; o++) tail(d, o, xs, y);
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
