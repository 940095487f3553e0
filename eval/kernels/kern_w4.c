/* W4A16 matmul: scalar reference, AVX2 GEMV, dequantization for the GEMM path. */
#include "kern_simd.h"

#include <omp.h>

/* Code of packed column k of row o. */
static inline uint32_t w4_code(const llmsq_kern_w4 *w, int64_t o, int64_t k)
{
    const uint32_t word = w->codes[llmsq_kern_w4_word(w, o, k / 64) + k % 8];
    return (word >> (4 * ((k % 64) / 8))) & 0xf;
}

/* ---- scalar reference -------------------------------------------------------------------------- */

llmsq_status llmsq_kern_w4_matmul_scalar(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (x && y)));
    const int64_t out = w->out, in = w->in, ng = w->n_groups;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)out * (double)in))
    for (int64_t o = 0; o < out; o++)
        for (int64_t b = 0; b < B; b++) {
            const float *xb = x + b * in;
            float acc = 0.0f;
            for (int64_t k = 0; k < in; k++) {
                const int64_t g = k / w->group_size;
                const float s = llmsq_f16_to_f32(w->scales[o * ng + g]);
                const float wk = s * (float)((int32_t)w4_code(w, o, k) - (int32_t)w->zeros[o * ng + g]);
                acc += wk * xb[w->perm ? w->perm[k] : k];
            }
            y[b * out + o] = acc;
        }
    return LLMSQ_OK;
}

/* ---- dequantization (GEMM path) ---------------------------------------------------------------- */

KERN_AVX2 static void w4_dequant_avx2(const llmsq_kern_w4 *w, int64_t o0, int64_t o1, float *Wt)
{
    const int64_t in = w->in, ng = w->n_groups, full = in / 8;
    const int64_t gsl = ng == 1 ? full + 1 : w->group_size / 8; /* slices per group */
    const __m256i nib = _mm256_set1_epi32(0xf);
    for (int64_t o = o0; o < o1; o++) {
        float *dst = Wt + (o - o0) * in;
        int64_t g = 0, gend = gsl;
        __m256 z = _mm256_set1_ps((float)w->zeros[o * ng]), s = _mm256_set1_ps(llmsq_f16_to_f32(w->scales[o * ng]));
        for (int64_t t = 0; t < full; t++) { /* slice t: columns 8t..8t+7, all in group g */
            if (t == gend) {
                g++, gend += gsl;
                z = _mm256_set1_ps((float)w->zeros[o * ng + g]);
                s = _mm256_set1_ps(llmsq_f16_to_f32(w->scales[o * ng + g]));
            }
            __m256i c = _mm256_load_si256((const __m256i *)(w->codes + llmsq_kern_w4_word(w, o, t / 8)));
            c = _mm256_and_si256(_mm256_srlv_epi32(c, _mm256_set1_epi32((int)(4 * (t % 8)))), nib);
            _mm256_storeu_ps(dst + 8 * t, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(c), z), s));
        }
        for (int64_t k = full * 8; k < in; k++) {
            const int64_t gk = k / w->group_size;
            dst[k] = llmsq_f16_to_f32(w->scales[o * ng + gk]) *
                     (float)((int32_t)w4_code(w, o, k) - (int32_t)w->zeros[o * ng + gk]);
        }
    }
}

void kern_w4_dequant(const void *p, int64_t o0, int64_t o1, float *Wt)
{
    const llmsq_kern_w4 *w = p;
    const int64_t in = w->in, ng = w->n_groups;
    if (!w->perm && llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) {
        w4_dequant_avx2(w, o0, o1, Wt);
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        float *dst = Wt + (o - o0) * in;
        for (int64_t g = 0, k0 = 0; k0 < in; g++, k0 += w->group_size) {
            const int64_t k1 = k0 + w->group_size < in ? k0 + w->group_size : in;
            const float s = llmsq_f16_to_f32(w->scales[o * ng + g]);
            const int32_t z = w->zeros[o * ng + g];
            for (int64_t k = k0; k < k1; k++)
                dst[w->perm ? w->perm[k] : k] = s * (float)((int32_t)w4_code(w, o, k) - z);
        }
    }
}

/* ---- AVX2 GEMV ------------------------------------------------------------------------------------ */

/* 2^-4j for slices j < 7 (exact scaling), 1 for slice 7 (extracted by a shift) */
static const float w4_xscale[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f};

KERN_AVX2 static void w4_prep_x(const llmsq_kern_w4 *w, const float *x, int64_t B, const kern_w4_act *a)
{
    const int64_t in = w->in, gs = w->group_size;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * in;
        float *xs = a->xs + b * w->in_pad, *xsum = a->xsum + b * a->ng_pad;
        if (w->perm) /* gather into xs first, then scale in place */
            for (int64_t k = 0; k < in; k++) xs[k] = xb[w->perm[k]];
        const float *src = w->perm ? xs : xb;
        /* groups start on slice boundaries (multiples of 8 columns), so each 8-column chunk
         * has one scale; the sums run 8 lanes wide then across lanes */
        for (int64_t g = 0, k0 = 0; k0 < in; g++, k0 += gs) {
            const int64_t k1 = k0 + gs < in ? k0 + gs : in;
            __m256 vs = _mm256_setzero_ps();
            int64_t k = k0;
            for (; k + 8 <= k1; k += 8) {
                const __m256 v = _mm256_loadu_ps(src + k);
                vs = _mm256_add_ps(vs, v);
                _mm256_store_ps(xs + k, _mm256_mul_ps(v, _mm256_set1_ps(w4_xscale[(k % 64) / 8])));
            }
            float sum = kern_hsum(vs);
            for (; k < k1; k++) {
                sum += src[k];
                xs[k] = src[k] * w4_xscale[(k % 64) / 8];
            }
            xsum[g] = sum;
        }
        for (int64_t k = in; k < w->in_pad; k++) xs[k] = 0.0f;
        for (int64_t g = w->n_groups; g < a->ng_pad; g++) xsum[g] = 0.0f;
    }
}

llmsq_status kern_w4_act_init(const llmsq_kern_w4 *w, const float *x, int64_t B, kern_w4_act *a)
{
    a->ng_pad = kern_round_up(w->n_groups, 8);
    const size_t nxs = (size_t)(B * w->in_pad), nsum = (size_t)(B * a->ng_pad);
    a->xs = aligned_alloc(64, ((nxs + nsum) * sizeof(float) + 63) / 64 * 64);
    if (!a->xs) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    a->xsum = a->xs + nxs; /* in_pad is a multiple of 64: stays 32-byte aligned */
    w4_prep_x(w, x, B, a);
    return LLMSQ_OK;
}

void kern_w4_act_free(kern_w4_act *a) { free(a->xs); }

static const uint32_t w4_mask[7] = {0xfu, 0xf0u, 0xf00u, 0xf000u, 0xf0000u, 0xf00000u, 0xf000000u};

/* Slice j of one block (columns (t0 + j) * 8 ..) for R rows and B tokens: chain j % A. */
KERN_AVX2 KERN_INLINE void w4_slice(const __m256i c[4], const float *xs, int64_t ldx, int64_t t0, const int j,
                                    const int R, const int B, const int A, __m256 acc[4][8][2])
{
    __m256 f[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        f[r] = _mm256_cvtepi32_ps(j < 7 ? _mm256_and_si256(c[r], _mm256_set1_epi32((int)w4_mask[j % 7]))
                                        : _mm256_srli_epi32(c[r], 28));
#pragma GCC unroll 8
    for (int b = 0; b < B; b++) {
        const __m256 xv = _mm256_load_ps(xs + b * ldx + (t0 + j) * 8);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[r][b][j % A] = _mm256_fmadd_ps(f[r], xv, acc[r][b][j % A]);
    }
}

/* End of group g: tot += scale * sum of the chains; next group; f32 scales (sb) refreshed
 * every 8 groups. */
KERN_AVX2 KERN_INLINE void w4_flush(const llmsq_kern_w4 *w, int64_t o, const int R, const int B, const int A,
                                    __m256 acc[4][8][2], __m256 tot[4][8], float sb[4][8], int64_t *g, int64_t *gend,
                                    int64_t gsl, int64_t nsl)
{
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const __m256 s = _mm256_broadcast_ss(&sb[r][*g % 8]);
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            const __m256 sum = A == 2 ? _mm256_add_ps(acc[r][b][0], acc[r][b][1]) : acc[r][b][0];
            tot[r][b] = _mm256_fmadd_ps(s, sum, tot[r][b]);
#pragma GCC unroll 2
            for (int a = 0; a < A; a++) acc[r][b][a] = _mm256_setzero_ps();
        }
    }
    ++*g;
    *gend = *gend + gsl < nsl ? *gend + gsl : nsl;
    if (*g % 8 == 0 && *g < w->n_groups)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) _mm256_store_ps(sb[r], kern_ld_f16x8(w->scales + (o + r) * w->n_groups + *g));
}

/* Rows o..o+R-1 (within one group of 4), B tokens, A accumulators per (row, token). Per group:
 * acc = sum code * x over its slices (A chains, slice j feeding chain j % A), then
 * tot += scale * acc; at the end y = sum(tot - the group terms scale * zero * xsum). */
KERN_AVX2 KERN_INLINE void w4_tile(const llmsq_kern_w4 *w, int64_t o, const int R, const int B, const int A,
                                   const kern_w4_act *act, float *y)
{
    const int64_t ng = w->n_groups, out = w->out, ldx = w->in_pad;
    const int64_t nsl = (w->in + 7) / 8;                                /* slices holding columns */
    const int64_t gsl = w->n_groups == 1 ? nsl : w->group_size / 8;     /* slices per group */
    const uint32_t *codes = w->codes + llmsq_kern_w4_word(w, o, 0);     /* row o, block 0 */
    __m256 acc[4][8][2], tot[4][8];
    float sb[4][8] __attribute__((aligned(32))); /* f32 scales of groups g - g % 8 .. + 7 */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            tot[r][b] = _mm256_setzero_ps();
#pragma GCC unroll 2
            for (int a = 0; a < A; a++) acc[r][b][a] = _mm256_setzero_ps();
        }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) _mm256_store_ps(sb[r], kern_ld_f16x8(w->scales + (o + r) * ng));
    int64_t g = 0, gend = gsl < nsl ? gsl : nsl, t0 = 0;
    __m256i c[4];
    /* Whole blocks whose groups end on block boundaries (groups of 64k columns, or one group):
     * no per-slice checks. */
    if (ng == 1 || gsl % 8 == 0)
        for (; t0 + 8 <= nsl; t0 += 8, codes += 8 * LLMSQ_KERN_W4_ROWS) {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) c[r] = _mm256_load_si256((const __m256i *)(codes + 8 * r));
            if (R == 4) { /* the tile is one stream of 128 bytes a block: keep KERN_PF_BYTES in flight */
                _mm_prefetch((const char *)codes + KERN_PF_BYTES, _MM_HINT_T0);
                _mm_prefetch((const char *)codes + KERN_PF_BYTES + 64, _MM_HINT_T0);
            }
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) w4_slice(c, act->xs, ldx, t0, j, R, B, A, acc);
            if (t0 + 8 == gend) w4_flush(w, o, R, B, A, acc, tot, sb, &g, &gend, gsl, nsl);
        }
    /* Any other group size, and the last partial block: checks per slice. */
    for (; t0 < nsl; t0 += 8, codes += 8 * LLMSQ_KERN_W4_ROWS) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) c[r] = _mm256_load_si256((const __m256i *)(codes + 8 * r));
        if (R == 4) {
            _mm_prefetch((const char *)codes + KERN_PF_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)codes + KERN_PF_BYTES + 64, _MM_HINT_T0);
        }
        const int jn = nsl - t0 < 8 ? (int)(nsl - t0) : 8;
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (j >= jn) break;
            w4_slice(c, act->xs, ldx, t0, j, R, B, A, acc);
            if (t0 + j + 1 == gend) w4_flush(w, o, R, B, A, acc, tot, sb, &g, &gend, gsl, nsl);
        }
    }
    /* zero points: the group terms scale * zero * xsum, 8 groups to a vector, subtracted lane
     * by lane before the one horizontal sum (xsum is zero beyond ng; the scales and zeros read
     * past a row's end are finite) */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (o + r >= out) break; /* padding rows of the last group of 4 */
        __m256 cz[8];
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) cz[b] = _mm256_setzero_ps();
        for (int64_t g8 = 0; g8 < ng; g8 += 8) {
            const __m256 s = kern_ld_f16x8(w->scales + (o + r) * ng + g8);
            const __m128i zb = _mm_loadl_epi64((const __m128i *)(w->zeros + (o + r) * ng + g8));
            const __m256 sz = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(zb)));
#pragma GCC unroll 8
            for (int b = 0; b < B; b++)
                cz[b] = _mm256_fmadd_ps(sz, _mm256_load_ps(act->xsum + b * act->ng_pad + g8), cz[b]);
        }
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) y[b * out + o + r] = kern_hsum(_mm256_sub_ps(tot[r][b], cz[b]));
    }
}

typedef void (*w4_tile_fn)(const llmsq_kern_w4 *w, int64_t o, const kern_w4_act *act, float *y);

#define W4_TILE(name, R, B, A)                                                                             \
    KERN_AVX2 static void name(const llmsq_kern_w4 *w, int64_t o, const kern_w4_act *act, float *y)           \
    {                                                                                                      \
        w4_tile(w, o, R, B, A, act, y);                                                                    \
    }
W4_TILE(w4_r4b1, 4, 1, 2) W4_TILE(w4_r2b2, 2, 2, 2) W4_TILE(w4_r1b3, 1, 3, 2) W4_TILE(w4_r1b4, 1, 4, 2)
W4_TILE(w4_r1b5, 1, 5, 1) W4_TILE(w4_r1b6, 1, 6, 1) W4_TILE(w4_r1b7, 1, 7, 1) W4_TILE(w4_r1b8, 1, 8, 1)

/* Per batch: the tile and how many rows of a group of 4 it takes (4 / rows passes per group). */
static const struct {
    w4_tile_fn fn;
    int rows;
} w4_tiles[9] = {{0, 0},       {w4_r4b1, 4}, {w4_r2b2, 2}, {w4_r1b3, 1}, {w4_r1b4, 1},
                 {w4_r1b5, 1}, {w4_r1b6, 1}, {w4_r1b7, 1}, {w4_r1b8, 1}};

static llmsq_status w4_gemv_avx2(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    kern_w4_act act;
    LLMSQ_TRY(kern_w4_act_init(w, x, B, &act));
    const w4_tile_fn fn = w4_tiles[B].fn;
    const int64_t R = w4_tiles[B].rows, ngrp = (w->out + 3) / 4;
#pragma omp parallel if (kern_parallel((double)B * (double)w->out * (double)w->in_pad))
    {
        int64_t G0, G1; /* this thread's groups of 4 rows, one contiguous stream */
        kern_split(ngrp, omp_get_num_threads(), omp_get_thread_num(), &G0, &G1);
        if (G0 < G1) kern_prefetch(w->codes + llmsq_kern_w4_word(w, 4 * G0, 0), KERN_PF_BYTES);
        for (int64_t G = G0; G < G1; G++)
            for (int64_t o = 4 * G; o < 4 * G + 4 && o < w->out; o += R) fn(w, o, &act, y);
    }
    kern_w4_act_free(&act);
    return LLMSQ_OK;
}

/* ---- entry point ----------------------------------------------------------------------------------- */

llmsq_status llmsq_kern_w4_matmul(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    if (B > LLMSQ_KERN_GEMV_MAX_BATCH) return kern_gemm_tiles(w, w->out, w->in, kern_w4_dequant, NULL, 0, x, B, y);
    const llmsq_kern_isa isa = llmsq_kern_isa_get();
    if (isa >= LLMSQ_KERN_ISA_AVX512) return kern_w4_gemv_avx512(w, x, B, y);
    if (isa >= LLMSQ_KERN_ISA_AVX2) return w4_gemv_avx2(w, x, B, y);
    return llmsq_kern_w4_matmul_scalar(w, x, B, y);
}
