/* 2:4 sparse matmul (f16 values, and int4 codes): scalar references, AVX2 GEMVs, dequantization
 * for the GEMM path. (The AVX-512 GEMV of f16 values is kern_s24_avx512.c.) */
#include "kern_simd.h"

#include <omp.h>

/* ---- permutation tables (indexed by a metadata byte: groups A = bits 0-3, B = bits 4-7) ---------- */

#define S24_I0(m) ((m) & 3)
#define S24_I1(m) (((m) >> 2) & 3)
#define S24_J0(m) (((m) >> 4) & 3)
#define S24_J1(m) (((m) >> 6) & 3)
#define S24_G(m)                                                                                          \
    {S24_I0(m), S24_I1(m), 4 + S24_J0(m), 4 + S24_J1(m), S24_I0(m), S24_I1(m), 4 + S24_J0(m), 4 + S24_J1(m)}
#define S24_EA(m, p) ((p) == S24_I0(m) ? 0 : (p) == S24_I1(m) ? 1 : 4)
#define S24_EB(m, p) ((p) == S24_J0(m) ? 2 : (p) == S24_J1(m) ? 3 : 4)
#define S24_E(m)                                                                                          \
    {S24_EA(m, 0), S24_EA(m, 1), S24_EA(m, 2), S24_EA(m, 3), S24_EB(m, 0), S24_EB(m, 1), S24_EB(m, 2), S24_EB(m, 3)}
#define S24_R4(F, m) F(m), F((m) + 1), F((m) + 2), F((m) + 3)
#define S24_R16(F, m) S24_R4(F, m), S24_R4(F, (m) + 4), S24_R4(F, (m) + 8), S24_R4(F, (m) + 12)
#define S24_R64(F, m) S24_R16(F, m), S24_R16(F, (m) + 16), S24_R16(F, (m) + 32), S24_R16(F, (m) + 48)
#define S24_R256(F) S24_R64(F, 0), S24_R64(F, 64), S24_R64(F, 128), S24_R64(F, 192)

__attribute__((aligned(32))) const int32_t kern_s24_gather_idx[256][8] = {S24_R256(S24_G)};
__attribute__((aligned(32))) const int32_t kern_s24_expand_idx[256][8] = {S24_R256(S24_E)};

/* Column offset (0..3) of kept value v (0, 1) of group k in row o. */
static inline int s24_off(const uint8_t *meta_row, int64_t k, int v)
{
    return (meta_row[k / 2] >> (4 * (k % 2) + 2 * v)) & 3;
}

/* ---- scalar references ------------------------------------------------------------------------------ */

llmsq_status llmsq_kern_s24_matmul_scalar(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(s && B >= 0 && (B == 0 || (x && y)));
    const int64_t out = s->out, in = s->in, ngr = (in + 3) / 4;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)out * (double)in / 2))
    for (int64_t o = 0; o < out; o++)
        for (int64_t b = 0; b < B; b++) {
            const uint8_t *meta = s->meta + o * (s->in_pad / 8);
            const uint16_t *val = s->values + o * (s->in_pad / 2);
            float acc = 0.0f;
            for (int64_t k = 0; k < ngr; k++)
                for (int v = 0; v < 2; v++) {
                    const int64_t i = 4 * k + s24_off(meta, k, v);
                    if (i < in) acc += llmsq_f16_to_f32(val[2 * k + v]) * x[b * in + i];
                }
            y[b * out + o] = acc;
        }
    return LLMSQ_OK;
}

static inline uint32_t s24w4_code(const llmsq_kern_s24w4 *s, int64_t o, int64_t k, int v)
{
    return (s->codes[o * (s->in_pad / 16) + k / 4] >> (4 * (2 * (k % 4) + v))) & 0xf;
}

llmsq_status llmsq_kern_s24w4_matmul_scalar(const llmsq_kern_s24w4 *s, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(s && B >= 0 && (B == 0 || (x && y)));
    const int64_t out = s->out, in = s->in, ngr = (in + 3) / 4, ng = s->n_groups;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)out * (double)in / 2))
    for (int64_t o = 0; o < out; o++)
        for (int64_t b = 0; b < B; b++) {
            const uint8_t *meta = s->meta + o * (s->in_pad / 8);
            float acc = 0.0f;
            for (int64_t k = 0; k < ngr; k++)
                for (int v = 0; v < 2; v++) {
                    const int64_t i = 4 * k + s24_off(meta, k, v);
                    if (i >= in) continue;
                    const int64_t g = i / s->group_size;
                    const float wv = llmsq_f16_to_f32(s->scales[o * ng + g]) *
                                     (float)((int32_t)s24w4_code(s, o, k, v) - (int32_t)s->zeros[o * ng + g]);
                    acc += wv * x[b * in + i];
                }
            y[b * out + o] = acc;
        }
    return LLMSQ_OK;
}

/* ---- dequantization (GEMM path, unpack) --------------------------------------------------------------- */

KERN_AVX2 static void s24_dequant_avx2(const llmsq_kern_s24 *s, int64_t o0, int64_t o1, float *Wt)
{
    const int64_t in = s->in, n8 = in / 8;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *meta = s->meta + o * (s->in_pad / 8);
        const uint16_t *val = s->values + o * (s->in_pad / 2);
        float *dst = Wt + (o - o0) * in;
        for (int64_t q = 0; q < n8; q++) {
            const __m128 v4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(val + 4 * q)));
            const __m256i idx = _mm256_load_si256((const __m256i *)kern_s24_expand_idx[meta[q]]);
            _mm256_storeu_ps(dst + 8 * q, _mm256_permutevar8x32_ps(_mm256_zextps128_ps256(v4), idx));
        }
        for (int64_t i = 8 * n8; i < in; i++) dst[i] = 0.0f;
        for (int64_t k = 2 * n8; 4 * k < in; k++)
            for (int v = 0; v < 2; v++) {
                const int64_t i = 4 * k + s24_off(meta, k, v);
                if (i < in) dst[i] = llmsq_f16_to_f32(val[2 * k + v]);
            }
    }
}

void kern_s24_dequant(const void *p, int64_t o0, int64_t o1, float *Wt)
{
    const llmsq_kern_s24 *s = p;
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) {
        s24_dequant_avx2(s, o0, o1, Wt);
        return;
    }
    const int64_t in = s->in;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *meta = s->meta + o * (s->in_pad / 8);
        float *dst = Wt + (o - o0) * in;
        memset(dst, 0, (size_t)in * sizeof(float));
        for (int64_t k = 0; 4 * k < in; k++)
            for (int v = 0; v < 2; v++) {
                const int64_t i = 4 * k + s24_off(meta, k, v);
                if (i < in) dst[i] = llmsq_f16_to_f32(s->values[o * (s->in_pad / 2) + 2 * k + v]);
            }
    }
}

void kern_s24w4_dequant(const void *p, int64_t o0, int64_t o1, float *Wt)
{
    /* Scalar: the GEMM path spends O(B) times longer in sgemm than here. */
    const llmsq_kern_s24w4 *s = p;
    const int64_t in = s->in, ng = s->n_groups;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *meta = s->meta + o * (s->in_pad / 8);
        float *dst = Wt + (o - o0) * in;
        memset(dst, 0, (size_t)in * sizeof(float));
        for (int64_t k = 0; 4 * k < in; k++)
            for (int v = 0; v < 2; v++) {
                const int64_t i = 4 * k + s24_off(meta, k, v);
                if (i >= in) continue;
                const int64_t g = i / s->group_size;
                dst[i] = llmsq_f16_to_f32(s->scales[o * ng + g]) *
                         (float)((int32_t)s24w4_code(s, o, k, v) - (int32_t)s->zeros[o * ng + g]);
            }
    }
}

/* ---- AVX2 GEMV ---------------------------------------------------------------------------------------- */

/* Activations [B, in_pad], zero padded. */
static float *s24_prep_x(const float *x, int64_t B, int64_t in, int64_t in_pad)
{
    float *xp = kern_alloc((size_t)(B * in_pad) * sizeof(float));
    if (xp)
        for (int64_t b = 0; b < B; b++) memcpy(xp + b * in_pad, x + b * in, (size_t)in * sizeof(float));
    return xp;
}

/* The 8 activations of the kept entries of columns c..c+15 (metadata bytes m0, m1). */
KERN_AVX2 KERN_INLINE __m256 s24_gather(const float *xc, unsigned m0, unsigned m1)
{
    const __m256 g0 = _mm256_permutevar8x32_ps(_mm256_load_ps(xc),
                                               _mm256_load_si256((const __m256i *)kern_s24_gather_idx[m0]));
    const __m256 g1 = _mm256_permutevar8x32_ps(_mm256_load_ps(xc + 8),
                                               _mm256_load_si256((const __m256i *)kern_s24_gather_idx[m1]));
    return _mm256_blend_ps(g0, g1, 0xf0);
}

/* Units of 16 columns of one row feed A chains, unit u chain u % A: the loops below step A
 * units at a time so that the chain index is a constant (a runtime index would keep the
 * accumulators in memory). */

/* f16 values, batch 1: per 16 columns gather the 8 kept activations. */
KERN_AVX2 KERN_INLINE void s24_gather_unit(const uint8_t *meta, const uint16_t *val, int64_t u, const float *xp,
                                           __m256 acc[4], const int a)
{
    const __m256 xk = s24_gather(xp + 16 * u, meta[2 * u], meta[2 * u + 1]);
    acc[a] = _mm256_fmadd_ps(kern_ld_f16x8(val + 8 * u), xk, acc[a]);
}

KERN_AVX2 KERN_INLINE void s24_row_gather(const llmsq_kern_s24 *s, int64_t o, const int A, const float *xp, float *y)
{
    const int64_t nu = (s->in + 15) / 16;
    const uint8_t *meta = s->meta + o * (s->in_pad / 8);
    const uint16_t *val = s->values + o * (s->in_pad / 2);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int a = 0; a < A; a++) acc[a] = _mm256_setzero_ps();
    int64_t u = 0;
    for (; u + A <= nu; u += A) { /* 16 bytes of values a unit: keep KERN_PF_BYTES in flight */
        _mm_prefetch((const char *)(val + 8 * u) + KERN_PF_BYTES, _MM_HINT_T0);
        if (u % 32 == 0) _mm_prefetch((const char *)(meta + 2 * u) + KERN_PF_BYTES / 8, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int a = 0; a < A; a++) s24_gather_unit(meta, val, u + a, xp, acc, a);
    }
    for (; u < nu; u++) s24_gather_unit(meta, val, u, xp, acc, 0);
    __m256 sum = acc[0];
#pragma GCC unroll 3
    for (int a = 1; a < A; a++) sum = _mm256_add_ps(sum, acc[a]);
    y[o] = kern_hsum(sum);
}

/* f16 values, batch 2..8: per 8 columns the 4 values are expanded to dense once (vpermps from
 * a register whose upper half is zero), then one FMA per token. */
KERN_AVX2 KERN_INLINE void s24_expand_step(const uint8_t *meta, const uint16_t *val, int64_t q, const int B,
                                           const float *xp, int64_t ld, __m256 acc[8][2], const int a)
{
    const __m128 v4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(val + 4 * q)));
    const __m256 dense = _mm256_permutevar8x32_ps(_mm256_zextps128_ps256(v4),
                                                  _mm256_load_si256((const __m256i *)kern_s24_expand_idx[meta[q]]));
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) acc[b][a] = _mm256_fmadd_ps(dense, _mm256_load_ps(xp + b * ld + 8 * q), acc[b][a]);
}

KERN_AVX2 KERN_INLINE void s24_row_expand(const llmsq_kern_s24 *s, int64_t o, const int B, const int A,
                                          const float *xp, float *y)
{
    const int64_t n8 = (s->in + 7) / 8, ld = s->in_pad;
    const uint8_t *meta = s->meta + o * (s->in_pad / 8);
    const uint16_t *val = s->values + o * (s->in_pad / 2);
    __m256 acc[8][2];
#pragma GCC unroll 8
    for (int b = 0; b < B; b++)
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) acc[b][a] = _mm256_setzero_ps();
    int64_t q = 0;
    for (; q + A <= n8; q += A)
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) s24_expand_step(meta, val, q + a, B, xp, ld, acc, a);
    for (; q < n8; q++) s24_expand_step(meta, val, q, B, xp, ld, acc, 0);
#pragma GCC unroll 8
    for (int b = 0; b < B; b++)
        y[b * s->out + o] = kern_hsum(A == 2 ? _mm256_add_ps(acc[b][0], acc[b][1]) : acc[b][0]);
}

typedef void (*s24_tile_fn)(const llmsq_kern_s24 *s, int64_t o, const float *xp, float *y);
KERN_AVX2 static void s24_g_r1(const llmsq_kern_s24 *s, int64_t o, const float *xp, float *y)
{
    s24_row_gather(s, o, 4, xp, y);
}
#define S24_EXPAND(name, B, A)                                                                             \
    KERN_AVX2 static void name(const llmsq_kern_s24 *s, int64_t o, const float *xp, float *y)            \
    {                                                                                                      \
        s24_row_expand(s, o, B, A, xp, y);                                                                 \
    }
S24_EXPAND(s24_e_b2, 2, 2) S24_EXPAND(s24_e_b3, 3, 2) S24_EXPAND(s24_e_b4, 4, 2) S24_EXPAND(s24_e_b5, 5, 1)
S24_EXPAND(s24_e_b6, 6, 1) S24_EXPAND(s24_e_b7, 7, 1) S24_EXPAND(s24_e_b8, 8, 1)
static const s24_tile_fn s24_expand_tiles[9] = {0,        0,        s24_e_b2, s24_e_b3, s24_e_b4,
                                                 s24_e_b5, s24_e_b6, s24_e_b7, s24_e_b8};

static llmsq_status s24_gemv_avx2(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y)
{
    float *xp = s24_prep_x(x, B, s->in, s->in_pad);
    if (!xp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    const s24_tile_fn fn = B == 1 ? s24_g_r1 : s24_expand_tiles[B];
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

/* int4 codes, one row x B tokens, A chains (unit u feeds chain u % A). Per 16 columns: the word
 * of 8 codes broadcast, shifted per lane, masked, minus the group's zero point, converted;
 * times the gathered activations of each token. Per group: tot += scale * acc. */
KERN_AVX2 KERN_INLINE void s24w4_unit(const llmsq_kern_s24w4 *s, int64_t o, int64_t u, const int B, const int A,
                                      const float *xp, __m256 acc[8][2], __m256 tot[8], __m256i *zv, int64_t *g,
                                      int64_t *gend, float *sb, const int a)
{
    const int64_t ng = s->n_groups, ld = s->in_pad, nu = (s->in + 15) / 16;
    const int64_t gu = ng == 1 ? nu : s->group_size / 16;
    const uint8_t *m = s->meta + o * (s->in_pad / 8) + 2 * u;
    const unsigned m0 = m[0], m1 = m[1];
    const __m256i c = _mm256_set1_epi32((int)s->codes[o * (s->in_pad / 16) + u]);
    const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(c, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)), _mm256_set1_epi32(0xf)),
        *zv));
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) acc[b][a] = _mm256_fmadd_ps(f, s24_gather(xp + b * ld + 16 * u, m0, m1), acc[b][a]);
    if (u + 1 == *gend) { /* group g ends with this unit */
        const __m256 sc = _mm256_broadcast_ss(&sb[*g % 8]);
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            const __m256 sum = A == 2 ? _mm256_add_ps(acc[b][0], acc[b][1]) : acc[b][0];
            tot[b] = _mm256_fmadd_ps(sc, sum, tot[b]);
#pragma GCC unroll 2
            for (int k = 0; k < A; k++) acc[b][k] = _mm256_setzero_ps();
        }
        ++*g;
        *gend = *gend + gu < nu ? *gend + gu : nu;
        if (*g < ng) {
            *zv = _mm256_set1_epi32(s->zeros[o * ng + *g]);
            if (*g % 8 == 0) _mm256_store_ps(sb, kern_ld_f16x8(s->scales + o * ng + *g));
        }
    }
}

KERN_AVX2 KERN_INLINE void s24w4_row(const llmsq_kern_s24w4 *s, int64_t o, const int B, const int A, const float *xp,
                                     float *y)
{
    const int64_t ng = s->n_groups, nu = (s->in + 15) / 16, gu = ng == 1 ? nu : s->group_size / 16;
    float sb[8] __attribute__((aligned(32))); /* f32 scales of groups g - g % 8 .. + 7 */
    __m256 acc[8][2], tot[8];
    __m256i zv = _mm256_set1_epi32(s->zeros[o * ng]);
    int64_t g = 0, gend = gu < nu ? gu : nu;
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        tot[b] = _mm256_setzero_ps();
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) acc[b][a] = _mm256_setzero_ps();
    }
    _mm256_store_ps(sb, kern_ld_f16x8(s->scales + o * ng));
    int64_t u = 0;
    for (; u + A <= nu; u += A)
#pragma GCC unroll 2
        for (int a = 0; a < A; a++) s24w4_unit(s, o, u + a, B, A, xp, acc, tot, &zv, &g, &gend, sb, a);
    for (; u < nu; u++) s24w4_unit(s, o, u, B, A, xp, acc, tot, &zv, &g, &gend, sb, 0);
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) y[b * s->out + o] = kern_hsum(tot[b]);
}

typedef void (*s24w4_tile_fn)(const llmsq_kern_s24w4 *s, int64_t o, const float *xp, float *y);
#define S24W4_ROW(name, B, A)                                                                              \
    KERN_AVX2 static void name(const llmsq_kern_s24w4 *s, int64_t o, const float *xp, float *y)          \
    {                                                                                                      \
        s24w4_row(s, o, B, A, xp, y);                                                                      \
    }
S24W4_ROW(s24w4_b1, 1, 2) S24W4_ROW(s24w4_b2, 2, 2) S24W4_ROW(s24w4_b3, 3, 2) S24W4_ROW(s24w4_b4, 4, 2)
S24W4_ROW(s24w4_b5, 5, 1) S24W4_ROW(s24w4_b6, 6, 1) S24W4_ROW(s24w4_b7, 7, 1) S24W4_ROW(s24w4_b8, 8, 1)
static const s24w4_tile_fn s24w4_tiles[9] = {0, s24w4_b1, s24w4_b2, s24w4_b3, s24w4_b4,
                                             s24w4_b5, s24w4_b6, s24w4_b7, s24w4_b8};

static llmsq_status s24w4_gemv_avx2(const llmsq_kern_s24w4 *s, const float *x, int64_t B, float *y)
{
    float *xp = s24_prep_x(x, B, s->in, s->in_pad);
    if (!xp) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    const s24w4_tile_fn fn = s24w4_tiles[B];
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)s->out * (double)s->in_pad / 2))
    for (int64_t o = 0; o < s->out; o++) fn(s, o, xp, y);
    free(xp);
    return LLMSQ_OK;
}

/* ---- entry points --------------------------------------------------------------------------------------- */

llmsq_status llmsq_kern_s24_matmul(const llmsq_kern_s24 *s, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(s && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    if (B > LLMSQ_KERN_GEMV_MAX_BATCH) return kern_gemm_tiles(s, s->out, s->in, kern_s24_dequant, NULL, 0, x, B, y);
    const llmsq_kern_isa isa = llmsq_kern_isa_get();
    if (isa >= LLMSQ_KERN_ISA_AVX512) return kern_s24_gemv_avx512(s, x, B, y);
    if (isa >= LLMSQ_KERN_ISA_AVX2) return s24_gemv_avx2(s, x, B, y);
    return llmsq_kern_s24_matmul_scalar(s, x, B, y);
}

llmsq_status llmsq_kern_s24w4_matmul(const llmsq_kern_s24w4 *s, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(s && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    if (B > LLMSQ_KERN_GEMV_MAX_BATCH) return kern_gemm_tiles(s, s->out, s->in, kern_s24w4_dequant, NULL, 0, x, B, y);
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) return s24w4_gemv_avx2(s, x, B, y);
    return llmsq_kern_s24w4_matmul_scalar(s, x, B, y);
}
