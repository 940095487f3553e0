/* 2:4 sparse (f16 values) GEMV with AVX-512 F/VL. Per 32 columns (8 groups, 16 kept values):
 * the vpermt2ps index of the 16 kept columns is assembled from four 4-lane table entries (one
 * per metadata byte, the column offset of its 8-column quarter baked in), and one vpermt2ps
 * gathers the kept activations of each token from its two 16-column halves; the 16 f16 values
 * convert in one vcvtph2ps. Six vector ops per 32 columns at batch 1, where the AVX2 gather
 * needs ten, and the index is shared by every token of a batch.
 * (vexpandps would decompress without any table but is microcoded on Zen 4/5: 2x slower.) */
#include "kern-impl.h"

#include <immintrin.h>
#include <omp.h>

#define KERN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

/* s24z_idx[q][m] = {8q + i0, 8q + i1, 8q + 4 + j0, 8q + 4 + j1} for metadata byte m (groups
 * 2q', 2q' + 1 of a 32-column unit, q = which of its four bytes). */
#define S24Z_E(q, m)                                                                                      \
    {8 * (q) + ((m) & 3), 8 * (q) + (((m) >> 2) & 3), 8 * (q) + 4 + (((m) >> 4) & 3), 8 * (q) + 4 + (((m) >> 6) & 3)}
#define S24Z_R4(q, m) S24Z_E(q, m), S24Z_E(q, (m) + 1), S24Z_E(q, (m) + 2), S24Z_E(q, (m) + 3)
#define S24Z_R16(q, m) S24Z_R4(q, m), S24Z_R4(q, (m) + 4), S24Z_R4(q, (m) + 8), S24Z_R4(q, (m) + 12)
#define S24Z_R64(q, m) S24Z_R16(q, m), S24Z_R16(q, (m) + 16), S24Z_R16(q, (m) + 32), S24Z_R16(q, (m) + 48)
#define S24Z_T(q) {S24Z_R64(q, 0), S24Z_R64(q, 64), S24Z_R64(q, 128), S24Z_R64(q, 192)}
__attribute__((aligned(64))) static const int32_t s24z_idx[4][256][4] = {S24Z_T(0), S24Z_T(1), S24Z_T(2), S24Z_T(3)};

/* Unit u (columns 32u..32u+31) of one row into chain a of each token. */
KERN_AVX512 static inline __attribute__((always_inline)) void s24z_unit(const uint8_t *meta, const uint16_t *val,
                                                                       int64_t u, const int B, const float *xp,
                                                                       int64_t ld, __m512 acc[8][2], const int a)
{
    const uint8_t *m = meta + 4 * u;
    __m512i idx = _mm512_castsi128_si512(_mm_load_si128((const __m128i *)s24z_idx[0][m[0]]));
    idx = _mm512_inserti32x4(idx, _mm_load_si128((const __m128i *)s24z_idx[1][m[1]]), 1);
    idx = _mm512_inserti32x4(idx, _mm_load_si128((const __m128i *)s24z_idx[2][m[2]]), 2);
    idx = _mm512_inserti32x4(idx, _mm_load_si128((const __m128i *)s24z_idx[3][m[3]]), 3);
    const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(val + 16 * u)));
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        const float *xc = xp + b * ld + 32 * u;
        const __m512 xk = _mm512_permutex2var_ps(_mm512_load_ps(xc), idx, _mm512_load_ps(xc + 16));
        acc[b][a] = _mm512_fmadd_ps(v, xk, acc[b][a]);
    }
}

/* Row o x B tokens, A chains per token (unit u feeds chain u % A); activations xp [B, in_pad],
 * zero padded. */
KERN_AVX512 static inline __attribute__((always_inline)) void s24z_row(const llmsq_kern_s24 *s, int64_t o, const int B,
                                                                      const int A, const float *xp, float *y)
{
    const int64_t nu = (s->in + 31) / 32, ld = s->in_pad;
    const uint8_t *meta = s->meta + o * (s->in_pad / 8);
    const uint16_t *val = s->values + o * (s->in_pad / 2);
    __m512 acc[8][2];
#pragma GCC unroll 8
    for (int b = 0; b < B; b++)
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) acc[b][a] = _mm512_setzero_ps();
    int64_t u = 0;
    for (; u + A <= nu; u += A) {
        /* 32 values bytes (+4 metadata bytes) a unit: keep KERN_PF_BYTES of values in flight */
        _mm_prefetch((const char *)(val + 16 * u) + KERN_PF_BYTES, _MM_HINT_T0);
        if (u % 16 == 0) _mm_prefetch((const char *)(meta + 4 * u) + KERN_PF_BYTES / 8, _MM_HINT_T0);
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) s24z_unit(meta, val, u + a, B, xp, ld, acc, a);
    }
    for (; u < nu; u++) s24z_unit(meta, val, u, B, xp, ld, acc, 0);
#pragma GCC unroll 8
    for (int b = 0; b < B; b++)
        y[b * s->out + o] = _mm512_reduce_add_ps(A == 2 ? _mm512_add_ps(acc[b][0], acc[b][1]) : acc[b][0]);
}

typedef void (*s24z_row_fn)(const llmsq_kern_s24 *s, int64_t o, const float *xp, float *y);
#define S24Z_ROW(name, B, A)                                                                               \
    KERN_AVX512 static void name(const llmsq_kern_s24 *s, int64_t o, const float *xp, float *y)          \
    {                                                                                                      \
        s24z_row(s, o, B, A, xp, y);                                                                       \
    }
S24Z_ROW(s24z_b1, 1, 2) S24Z_ROW(s24z_b2, 2, 2) S24Z_ROW(s24z_b3, 3, 2) S24Z_ROW(s24z_b4, 4, 2)
S24Z_ROW(s24z_b5, 5, 1) S24Z_ROW(s24z_b6, 6, 1) S24Z_ROW(s24z_b7, 7, 1) S24Z_ROW(s24z_b8, 8, 1)
static const s24z_row_fn s24z_rows[9] = {0, s24z_b1, s24z_b2, s24z_b3, s24z_b4, s24z_b5, s24z_b6, s24z_b7, s24z_b8};

llmsq_status kern_s24_gemv_avx512(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(B >= 1 && B <= LLMSQ_KERN_GEMV_MAX_BATCH);
    float *xp = kern_alloc((size_t)(B * s->in_pad) * sizeof(float));
    if (!xp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    for (int64_t b = 0; b < B; b++) memcpy(xp + b * s->in_pad, x + b * s->in, (size_t)s->in * sizeof(float));
    const s24z_row_fn fn = s24z_rows[B];
#pragma omp parallel if (kern_parallel((double)B * (double)s->out * (double)s->in_pad / 2))
    {
        int64_t o0, o1; /* this thread's rows: contiguous streams, their starts prefetched */
        kern_split(s->out, omp_get_num_threads(), omp_get_thread_num(), &o0, &o1);
        if (o0 < o1) {
            kern_prefetch(s->values + o0 * (s->in_pad / 2), KERN_PF_BYTES);
            kern_prefetch(s->meta + o0 * (s->in_pad / 8), KERN_PF_BYTES / 8);
        }
        for (int64_t o = o0; o < o1; o++) fn(s, o, xp, y);
    }
    free(xp);
    return LLMSQ_OK;
}
