/* W4A16 GEMV with 512-bit vectors (AVX-512 F/BW/VL), on the same packed layout as the AVX2
 * kernel. The int4 GEMV is the one kernel whose AVX2 version is bound by instruction
 * throughput rather than memory (three vector ops per 8 weights: and, int->float, FMA), so
 * twice the lanes per op is what lets it stream at memory speed on CPUs with 512-bit units.
 *
 * One 64-byte load takes two consecutive blocks (b = 2p, 2p + 1): lane l < 8 holds word l of
 * block 2p, lane 8 + l word l of block 2p + 1, so slice j of both blocks is again one and (or
 * shift) + one conversion. The activations are rearranged once per call to match: per pair
 * p and slice j, 16 floats = columns 128p + 8j + (0..7) then 128p + 64 + 8j + (0..7), scaled by
 * 2^-4j as in the AVX2 kernel. Both blocks of a pair must share a group, so this path takes
 * group sizes that are multiples of 128 and whole-row groups; the others stay on AVX2. */
#include "kern-impl.h"

#include <immintrin.h>
#include <omp.h>

#define KERN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

bool kern_w4_avx512_ok(const llmsq_kern_w4 *w)
{
    return w->n_groups == 1 || w->group_size % 128 == 0;
}

typedef struct w4z_act {
    float  *xs;     /* [B, npair * 128], pair-interleaved and scaled */
    float  *xsum;   /* [B, ng_pad] */
    int64_t ldx, ng_pad;
} w4z_act;

static const float w4z_xscale[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f};

static void w4z_prep_x(const llmsq_kern_w4 *w, const float *x, int64_t B, const w4z_act *a)
{
    const int64_t in = w->in, gs = w->group_size;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * in;
        float *xs = a->xs + b * a->ldx, *xsum = a->xsum + b * a->ng_pad;
        for (int64_t g = 0, k0 = 0; k0 < in; g++, k0 += gs) {
            const int64_t k1 = k0 + gs < in ? k0 + gs : in;
            float sum = 0.0f;
            for (int64_t k = k0; k < k1; k++) {
                const float v = w->perm ? xb[w->perm[k]] : xb[k];
                /* column k = 128 p + 64 h + 8 j + l  ->  p * 128 + j * 16 + h * 8 + l */
                const int64_t p = k / 128, h = (k % 128) / 64, j = (k % 64) / 8, l = k % 8;
                xs[p * 128 + j * 16 + h * 8 + l] = v * w4z_xscale[j];
                sum += v;
            }
            xsum[g] = sum;
        }
    }
}

static const uint32_t w4z_mask[7] = {0xfu, 0xf0u, 0xf00u, 0xf000u, 0xf0000u, 0xf00000u, 0xf000000u};

KERN_AVX512 static inline float w4z_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows o..o+R-1, B tokens, A chains per (row, token); as w4_tile (kern_w4.c) on pairs of blocks. */
KERN_AVX512 static inline __attribute__((always_inline)) void
w4z_tile(const llmsq_kern_w4 *w, int64_t o, const int R, const int B, const int A, const w4z_act *act, float *y)
{
    const int64_t words = w->in_pad / 8, ng = w->n_groups, out = w->out;
    const int64_t nblk = w->in_pad / 64, npair = (nblk + 1) / 2;
    const int64_t gp = ng == 1 ? npair : w->group_size / 128; /* pairs per group */
    __m512 acc[4][8][2], tot[4][8];
    float sb[4][8] __attribute__((aligned(32)));
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        _mm256_store_ps(sb[r], _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + (o + r) * ng))));
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            tot[r][b] = _mm512_setzero_ps();
#pragma GCC unroll 2
            for (int a = 0; a < A; a++) acc[r][b][a] = _mm512_setzero_ps();
        }
    }
    int64_t g = 0, gend = gp < npair ? gp : npair;
    for (int64_t p = 0; p < npair; p++) {
        __m512i c[4];
        /* an odd last block: the upper half is masked off (reads nothing past the row) */
        const __mmask16 lm = 2 * p + 1 < nblk ? (__mmask16)0xffff : (__mmask16)0x00ff;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) c[r] = _mm512_maskz_loadu_epi32(lm, w->codes + (o + r) * words + 16 * p);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512 f[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                f[r] = _mm512_cvtepi32_ps(j < 7 ? _mm512_and_si512(c[r], _mm512_set1_epi32((int)w4z_mask[j < 7 ? j : 0]))
                                                : _mm512_srli_epi32(c[r], 28));
#pragma GCC unroll 8
            for (int b = 0; b < B; b++) {
                const __m512 xv = _mm512_load_ps(act->xs + b * act->ldx + p * 128 + j * 16);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) acc[r][b][j % A] = _mm512_fmadd_ps(f[r], xv, acc[r][b][j % A]);
            }
        }
        if (p + 1 == gend) {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m512 s = _mm512_set1_ps(sb[r][g % 8]);
#pragma GCC unroll 8
                for (int b = 0; b < B; b++) {
                    const __m512 sum = A == 2 ? _mm512_add_ps(acc[r][b][0], acc[r][b][1]) : acc[r][b][0];
                    tot[r][b] = _mm512_fmadd_ps(s, sum, tot[r][b]);
#pragma GCC unroll 2
                    for (int a = 0; a < A; a++) acc[r][b][a] = _mm512_setzero_ps();
                }
            }
            g++;
            gend = gend + gp < npair ? gend + gp : npair;
            if (g % 8 == 0 && g < ng)
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    _mm256_store_ps(sb[r],
                                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + (o + r) * ng + g))));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m256 cz[8];
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) cz[b] = _mm256_setzero_ps();
        for (int64_t g8 = 0; g8 < ng; g8 += 8) {
            const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->scales + (o + r) * ng + g8)));
            const __m128i zb = _mm_loadl_epi64((const __m128i *)(w->zeros + (o + r) * ng + g8));
            const __m256 sz = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(zb)));
#pragma GCC unroll 8
            for (int b = 0; b < B; b++)
                cz[b] = _mm256_fmadd_ps(sz, _mm256_load_ps(act->xsum + b * act->ng_pad + g8), cz[b]);
        }
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) y[b * out + o + r] = _mm512_reduce_add_ps(tot[r][b]) - w4z_hsum256(cz[b]);
    }
}

typedef void (*w4z_tile_fn)(const llmsq_kern_w4 *w, int64_t o, const w4z_act *act, float *y);
#define W4Z_TILE(name, R, B, A)                                                                            \
    KERN_AVX512 static void name(const llmsq_kern_w4 *w, int64_t o, const w4z_act *act, float *y)        \
    {                                                                                                      \
        w4z_tile(w, o, R, B, A, act, y);                                                                   \
    }
W4Z_TILE(w4z_r4b1, 4, 1, 2) W4Z_TILE(w4z_r1b1, 1, 1, 2) W4Z_TILE(w4z_r2b2, 2, 2, 2) W4Z_TILE(w4z_r1b2, 1, 2, 2)
W4Z_TILE(w4z_r1b3, 1, 3, 2) W4Z_TILE(w4z_r1b4, 1, 4, 2) W4Z_TILE(w4z_r1b5, 1, 5, 1) W4Z_TILE(w4z_r1b6, 1, 6, 1)
W4Z_TILE(w4z_r1b7, 1, 7, 1) W4Z_TILE(w4z_r1b8, 1, 8, 1)

static const struct {
    w4z_tile_fn full, tail;
    int rows;
} w4z_tiles[9] = {
    {0, 0, 0},
    {w4z_r4b1, w4z_r1b1, 4}, {w4z_r2b2, w4z_r1b2, 2}, {w4z_r1b3, w4z_r1b3, 1}, {w4z_r1b4, w4z_r1b4, 1},
    {w4z_r1b5, w4z_r1b5, 1}, {w4z_r1b6, w4z_r1b6, 1}, {w4z_r1b7, w4z_r1b7, 1}, {w4z_r1b8, w4z_r1b8, 1},
};

llmsq_status kern_w4_gemv_avx512(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(kern_w4_avx512_ok(w) && B >= 1 && B <= LLMSQ_KERN_GEMV_MAX_BATCH);
    w4z_act act;
    act.ldx = (w->in_pad / 64 + 1) / 2 * 128;
    act.ng_pad = kern_round_up(w->n_groups, 8);
    act.xs = kern_alloc((size_t)(B * act.ldx) * sizeof(float));
    act.xsum = kern_alloc((size_t)(B * act.ng_pad) * sizeof(float));
    if (!act.xs || !act.xsum) {
        free(act.xs);
        free(act.xsum);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    }
    w4z_prep_x(w, x, B, &act);
    const w4z_tile_fn full = w4z_tiles[B].full, tail = w4z_tiles[B].tail;
    const int64_t R = w4z_tiles[B].rows, nt = w->out / R;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)w->out * (double)w->in_pad))
    for (int64_t t = 0; t <= nt; t++) {
        if (t < nt) full(w, t * R, &act, y);
        else
            for (int64_t o = nt * R; o < w->out; o++) tail(w, o, &act, y);
    }
    free(act.xs);
    free(act.xsum);
    return LLMSQ_OK;
}
