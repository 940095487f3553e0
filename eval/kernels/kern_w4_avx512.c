/* W4A16 GEMV with 512-bit vectors (AVX-512 F/BW/VL/DQ), on the same packed layout as the AVX2
 * kernel. The int4 GEMV is bound by instruction throughput rather than memory (three vector
 * ops per 8 weights with AVX2: and, int->float, FMA -- about 14 GB/s of int4 per Zen 5 core
 * against ~25 GB/s of memory bandwidth per core), so twice the lanes per op is what brings it
 * near memory speed on CPUs with 512-bit units.
 *
 * The layout interleaves 4 rows block by block, so one 64-byte load takes the same block of
 * two rows: lanes 0-7 row r, lanes 8-15 row r + 1. Slice j of both is again one and (or shift)
 * plus one conversion, multiplied by the 8 activations of the slice broadcast to both halves.
 * The per-group flush scales the halves by their own rows' scales. Any group size the layout
 * takes works here (both halves always share their columns). */
#include "kern-impl.h"

#include <immintrin.h>
#include <omp.h>

#define KERN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

static const uint32_t w4z_mask[7] = {0xfu, 0xf0u, 0xf00u, 0xf000u, 0xf0000u, 0xf00000u, 0xf000000u};

KERN_AVX512 static inline float w4z_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Slice j of one block (columns (t0 + j) * 8 ..) for P row pairs and B tokens: chain j % A. */
KERN_AVX512 static inline __attribute__((always_inline)) void
w4z_slices(const __m512i c[2], const float *xs, int64_t ldx, int64_t t0, const int j, const int P, const int B,
           const int A, __m512 acc[2][8][4])
{
    __m512 f[2];
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        const __m512i q = j < 7 ? _mm512_and_si512(c[p], _mm512_set1_epi32((int)w4z_mask[j % 7]))
                                : _mm512_srli_epi32(c[p], 28);
        f[p] = _mm512_cvtepi32_ps(q);
    }
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        const __m512 xv = _mm512_broadcast_f32x8(_mm256_load_ps(xs + b * ldx + (t0 + j) * 8));
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) acc[p][b][j % A] = _mm512_fmadd_ps(f[p], xv, acc[p][b][j % A]);
    }
}

/* End of group g: tot += scale * sum of the chains (each half of a pair by its own row's
 * scale); next group; the f32 scales of rows (sb) refreshed every 8 groups. */
KERN_AVX512 static inline __attribute__((always_inline)) void
w4z_flush(const llmsq_kern_w4 *w, int64_t r0, const int P, const int B, const int A, __m512 acc[2][8][4],
          __m512 tot[2][8], float sb[4][8], int64_t *g, int64_t *gend, int64_t gsl, int64_t nsl)
{
    const int64_t ng = w->n_groups;
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        const __m512 s =
            _mm512_insertf32x8(_mm512_set1_ps(sb[2 * p][*g % 8]), _mm256_set1_ps(sb[2 * p + 1][*g % 8]), 1);
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            __m512 sum = acc[p][b][0];
#pragma GCC unroll 3
            for (int a = 1; a < A; a++) sum = _mm512_add_ps(sum, acc[p][b][a]);
            tot[p][b] = _mm512_fmadd_ps(s, sum, tot[p][b]);
#pragma GCC unroll 4
            for (int a = 0; a < A; a++) acc[p][b][a] = _mm512_setzero_ps();
        }
    }
    ++*g;
    *gend = *gend + gsl < nsl ? *gend + gsl : nsl;
    if (*g % 8 == 0 && *g < ng)
#pragma GCC unroll 4
        for (int r = 0; r < 2 * P; r++)
            _mm256_store_ps(sb[r], _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + (r0 + r) * ng + *g))));
}

/* Row pairs p0 .. p0 + P - 1 of the group of 4 rows starting at row o4 (pair p = rows
 * o4 + 2p, o4 + 2p + 1), B tokens, A chains per (pair, token). */
KERN_AVX512 static inline __attribute__((always_inline)) void
w4z_tile(const llmsq_kern_w4 *w, int64_t o4, const int p0, const int P, const int B, const int A,
         const kern_w4_act *act, float *y)
{
    const int64_t ng = w->n_groups, out = w->out, ldx = w->in_pad, r0 = o4 + 2 * p0;
    const int64_t nsl = (w->in + 7) / 8;
    const int64_t gsl = ng == 1 ? nsl : w->group_size / 8;
    const uint32_t *codes = w->codes + llmsq_kern_w4_word(w, r0, 0);
    __m512 acc[2][8][4], tot[2][8];
    float sb[4][8] __attribute__((aligned(32))); /* f32 scales of rows r0.., groups g - g % 8 .. + 7 */
#pragma GCC unroll 4
    for (int r = 0; r < 2 * P; r++)
        _mm256_store_ps(sb[r], _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + (r0 + r) * ng))));
#pragma GCC unroll 2
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            tot[p][b] = _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int a = 0; a < A; a++) acc[p][b][a] = _mm512_setzero_ps();
        }
    int64_t g = 0, gend = gsl < nsl ? gsl : nsl, t0 = 0;
    __m512i c[2];
    /* Whole blocks whose groups end on block boundaries (groups of 64k columns, or one group):
     * no per-slice checks. */
    if (ng == 1 || gsl % 8 == 0)
        for (; t0 + 8 <= nsl; t0 += 8, codes += 8 * LLMSQ_KERN_W4_ROWS) {
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) c[p] = _mm512_load_si512((const void *)(codes + 16 * p));
            if (P == 2) { /* the tile is one stream of 128 bytes a block: keep KERN_PF_BYTES in flight */
                _mm_prefetch((const char *)codes + KERN_PF_BYTES, _MM_HINT_T0);
                _mm_prefetch((const char *)codes + KERN_PF_BYTES + 64, _MM_HINT_T0);
            }
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) w4z_slices(c, act->xs, ldx, t0, j, P, B, A, acc);
            if (t0 + 8 == gend) w4z_flush(w, r0, P, B, A, acc, tot, sb, &g, &gend, gsl, nsl);
        }
    /* Any other group size, and the last partial block: checks per slice. */
    for (; t0 < nsl; t0 += 8, codes += 8 * LLMSQ_KERN_W4_ROWS) {
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) c[p] = _mm512_load_si512((const void *)(codes + 16 * p));
        if (P == 2) {
            _mm_prefetch((const char *)codes + KERN_PF_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)codes + KERN_PF_BYTES + 64, _MM_HINT_T0);
        }
        const int jn = nsl - t0 < 8 ? (int)(nsl - t0) : 8;
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (j >= jn) break;
            w4z_slices(c, act->xs, ldx, t0, j, P, B, A, acc);
            if (t0 + j + 1 == gend) w4z_flush(w, r0, P, B, A, acc, tot, sb, &g, &gend, gsl, nsl);
        }
    }
    /* y = sum(tot) - sum_g scale * zero * xsum, for both rows of a pair at once: the 8 groups'
     * terms sit in the lanes of the row's half and are subtracted before the lanes are summed
     * (xsum is zero beyond ng; scales and zeros read past a row's end are finite) */
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        const int64_t o = r0 + 2 * p;
        __m512 cz[8];
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) cz[b] = _mm512_setzero_ps();
        for (int64_t g8 = 0; g8 < ng; g8 += 8) {
            const __m512 sc = _mm512_cvtph_ps(
                _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(w->scales + (o + 1) * ng + g8)),
                                 _mm_loadu_si128((const __m128i *)(w->scales + o * ng + g8))));
            const __m128i zb = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(w->zeros + o * ng + g8)),
                                                  _mm_loadl_epi64((const __m128i *)(w->zeros + (o + 1) * ng + g8)));
            const __m512 sz = _mm512_mul_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(zb)));
#pragma GCC unroll 8
            for (int b = 0; b < B; b++)
                cz[b] = _mm512_fmadd_ps(sz, _mm512_broadcast_f32x8(_mm256_load_ps(act->xsum + b * act->ng_pad + g8)),
                                        cz[b]);
        }
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            const __m512 t = _mm512_sub_ps(tot[p][b], cz[b]);
            if (o < out) y[b * out + o] = w4z_hsum256(_mm512_castps512_ps256(t));
            if (o + 1 < out) y[b * out + o + 1] = w4z_hsum256(_mm512_extractf32x8_ps(t, 1));
        }
    }
}

typedef void (*w4z_tile_fn)(const llmsq_kern_w4 *w, int64_t o4, const kern_w4_act *act, float *y);
/* Per batch: both pairs in one pass while the accumulators fit the 32 registers, else a pass
 * per pair. */
#define W4Z_TILE(name, p0, P, B, A)                                                                        \
    KERN_AVX512 static void name(const llmsq_kern_w4 *w, int64_t o4, const kern_w4_act *act, float *y)       \
    {                                                                                                      \
        w4z_tile(w, o4, p0, P, B, A, act, y);                                                              \
    }
#define W4Z_SPLIT(name, B, A)                                                                              \
    KERN_AVX512 static void name(const llmsq_kern_w4 *w, int64_t o4, const kern_w4_act *act, float *y)       \
    {                                                                                                      \
        w4z_tile(w, o4, 0, 1, B, A, act, y);                                                               \
        w4z_tile(w, o4, 1, 1, B, A, act, y);                                                               \
    }
W4Z_TILE(w4z_b1, 0, 2, 1, 4) W4Z_TILE(w4z_b2, 0, 2, 2, 2) W4Z_TILE(w4z_b3, 0, 2, 3, 1) W4Z_TILE(w4z_b4, 0, 2, 4, 1)
W4Z_SPLIT(w4z_b5, 5, 1) W4Z_SPLIT(w4z_b6, 6, 1) W4Z_SPLIT(w4z_b7, 7, 1) W4Z_SPLIT(w4z_b8, 8, 1)
static const w4z_tile_fn w4z_tiles[9] = {0, w4z_b1, w4z_b2, w4z_b3, w4z_b4, w4z_b5, w4z_b6, w4z_b7, w4z_b8};

llmsq_status kern_w4_gemv_avx512(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(B >= 1 && B <= LLMSQ_KERN_GEMV_MAX_BATCH);
    kern_w4_act act;
    LLMSQ_TRY(kern_w4_act_init(w, x, B, &act));
    const w4z_tile_fn fn = w4z_tiles[B];
    const int64_t ngrp = (w->out + 3) / 4;
#pragma omp parallel if (kern_parallel((double)B * (double)w->out * (double)w->in_pad))
    {
        /* a contiguous range of groups of 4 rows per thread; its first bytes are prefetched at
         * once, the tiles keep KERN_PF_BYTES ahead after that */
        int64_t G0, G1;
        kern_split(ngrp, omp_get_num_threads(), omp_get_thread_num(), &G0, &G1);
        if (G0 < G1) kern_prefetch(w->codes + llmsq_kern_w4_word(w, 4 * G0, 0), KERN_PF_BYTES);
        for (int64_t G = G0; G < G1; G++) fn(w, 4 * G, &act, y);
    }
    kern_w4_act_free(&act);
    return LLMSQ_OK;
}
