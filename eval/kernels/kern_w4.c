/* W4A16 matmul: scalar reference, AVX2 GEMV, dequantization for the GEMM path. */
#include "kern_simd.h"

#include <omp.h>

/* Code of packed column k of row o. */
static inline uint32_t w4_code(const llmsq_kern_w4 *w, int64_t o, int64_t k)
{
    const uint32_t word = w->codes[o * (w->in_pad / 8) + (k / 64) * 8 + k % 8];
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
    const int64_t in = w->in, ng = w->n_groups, words = w->in_pad / 8, full = in / 8;
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
            __m256i c = _mm256_load_si256((const __m256i *)(w->codes + o * words + (t / 8) * 8));
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
    for (int64_t o = o0; o < o1; o++)
        for (int64_t k = 0; k < in; k++) {
            const int64_t g = k / w->group_size;
            Wt[(o - o0) * in + (w->perm ? w->perm[k] : k)] =
                llmsq_f16_to_f32(w->scales[o * ng + g]) *
                (float)((int32_t)w4_code(w, o, k) - (int32_t)w->zeros[o * ng + g]);
        }
}

/* ---- AVX2 GEMV ------------------------------------------------------------------------------------ */

/* Per token b: xs [in_pad] = the (gathered) activations with slice j of every block scaled by
 * 2^-4j (j < 7; the kernel leaves code * 2^4j there), zero beyond in; xsum [ng_pad] = sum of
 * the activations of each group (zero beyond ng). */
typedef struct w4_act {
    float  *xs;   /* [B, in_pad] */
    float  *xsum; /* [B, ng_pad] */
    int64_t ng_pad;
} w4_act;

/* 2^-4j for slices j < 7 (exact scaling), 1 for slice 7 (extracted by a shift) */
static const float w4_xscale[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f};

static void w4_prep_x(const llmsq_kern_w4 *w, const float *x, int64_t B, const w4_act *a)
{
    const int64_t in = w->in, gs = w->group_size;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * in;
        float *xs = a->xs + b * w->in_pad, *xsum = a->xsum + b * a->ng_pad;
        for (int64_t g = 0, k0 = 0; k0 < in; g++, k0 += gs) {
            const int64_t k1 = k0 + gs < in ? k0 + gs : in;
            float sum = 0.0f;
            for (int64_t k = k0; k < k1; k++) {
                const float v = w->perm ? xb[w->perm[k]] : xb[k];
                xs[k] = v * w4_xscale[(k % 64) / 8];
                sum += v;
            }
            xsum[g] = sum;
        }
    }
}

static const uint32_t w4_mask[7] = {0xfu, 0xf0u, 0xf00u, 0xf000u, 0xf0000u, 0xf00000u, 0xf000000u};

/* Rows o..o+R-1, B tokens, A accumulators per (row, token). Per group: acc = sum code * x over
 * its slices (A chains, slice j feeding chain j % A), then tot += scale * acc; at the end
 * y = sum(tot) - sum_g scale * zero * xsum. */
KERN_AVX2 KERN_INLINE void w4_tile(const llmsq_kern_w4 *w, int64_t o, const int R, const int B, const int A,
                                   const w4_act *act, float *y)
{
    const int64_t words = w->in_pad / 8, ng = w->n_groups, out = w->out;
    const int64_t nsl = (w->in + 7) / 8;                                /* slices holding columns */
    const int64_t gsl = w->n_groups == 1 ? nsl : w->group_size / 8;     /* slices per group */
    const float *xs = act->xs;
    __m256 acc[2][8][4], tot[2][8];
    float sb[2][8] __attribute__((aligned(32))); /* f32 scales of groups g - g % 8 .. + 7 */
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            tot[r][b] = _mm256_setzero_ps();
#pragma GCC unroll 4
            for (int a = 0; a < A; a++) acc[r][b][a] = _mm256_setzero_ps();
        }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) _mm256_store_ps(sb[r], kern_ld_f16x8(w->scales + (o + r) * ng));
    int64_t g = 0, gend = gsl < nsl ? gsl : nsl;
    for (int64_t t0 = 0; t0 < nsl; t0 += 8) {
        __m256i c[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) c[r] = _mm256_load_si256((const __m256i *)(w->codes + (o + r) * words + t0));
        const int jn = nsl - t0 < 8 ? (int)(nsl - t0) : 8;
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (j >= jn) break;
            __m256 f[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                f[r] = _mm256_cvtepi32_ps(j < 7 ? _mm256_and_si256(c[r], _mm256_set1_epi32((int)w4_mask[j < 7 ? j : 0]))
                                                : _mm256_srli_epi32(c[r], 28));
#pragma GCC unroll 8
            for (int b = 0; b < B; b++) {
                const __m256 xv = _mm256_load_ps(xs + b * w->in_pad + (t0 + j) * 8);
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) acc[r][b][j % A] = _mm256_fmadd_ps(f[r], xv, acc[r][b][j % A]);
            }
            if (t0 + j + 1 == gend) { /* group g ends after this slice */
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) {
                    const __m256 s = _mm256_broadcast_ss(&sb[r][g % 8]);
#pragma GCC unroll 8
                    for (int b = 0; b < B; b++) {
                        __m256 sum = acc[r][b][0];
#pragma GCC unroll 3
                        for (int a = 1; a < A; a++) sum = _mm256_add_ps(sum, acc[r][b][a]);
                        tot[r][b] = _mm256_fmadd_ps(s, sum, tot[r][b]);
#pragma GCC unroll 4
                        for (int a = 0; a < A; a++) acc[r][b][a] = _mm256_setzero_ps();
                    }
                }
                g++;
                gend = gend + gsl < nsl ? gend + gsl : nsl;
                if (g % 8 == 0 && g < ng)
#pragma GCC unroll 2
                    for (int r = 0; r < R; r++)
                        _mm256_store_ps(sb[r], kern_ld_f16x8(w->scales + (o + r) * ng + g));
            }
        }
    }
    /* zero points: sum_g scale * zero * xsum, 8 groups at a time (xsum is zero beyond ng, the
     * scales and zeros read past a row's end are finite) */
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
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
        for (int b = 0; b < B; b++) y[b * out + o + r] = kern_hsum(tot[r][b]) - kern_hsum(cz[b]);
    }
}

typedef void (*w4_tile_fn)(const llmsq_kern_w4 *w, int64_t o, const w4_act *act, float *y);

#define W4_TILE(name, R, B, A)                                                                             \
    KERN_AVX2 static void name(const llmsq_kern_w4 *w, int64_t o, const w4_act *act, float *y)           \
    {                                                                                                      \
        w4_tile(w, o, R, B, A, act, y);                                                                    \
    }
W4_TILE(w4_r2b1a4, 2, 1, 4) W4_TILE(w4_r1b1a4, 1, 1, 4)
W4_TILE(w4_r2b1a2, 2, 1, 2) W4_TILE(w4_r1b1a2, 1, 1, 2)
W4_TILE(w4_r1b2a4, 1, 2, 4) W4_TILE(w4_r1b2a2, 1, 2, 2)
W4_TILE(w4_r1b3a2, 1, 3, 2) W4_TILE(w4_r1b4a2, 1, 4, 2)
W4_TILE(w4_r1b5a1, 1, 5, 1) W4_TILE(w4_r1b6a1, 1, 6, 1)
W4_TILE(w4_r1b7a1, 1, 7, 1) W4_TILE(w4_r1b8a1, 1, 8, 1)

static llmsq_status w4_gemv_avx2(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    w4_act act;
    act.ng_pad = kern_round_up(w->n_groups, 8);
    act.xs = kern_alloc((size_t)(B * w->in_pad) * sizeof(float));
    act.xsum = kern_alloc((size_t)(B * act.ng_pad) * sizeof(float));
    if (!act.xs || !act.xsum) {
        free(act.xs);
        free(act.xsum);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for GEMV activations");
    }
    w4_prep_x(w, x, B, &act);
    /* long groups: 4 chains per (row, token); groups of 8..56 columns: 2, so a flush does not
     * cost more than the slices it closes */
    const bool long_groups = w->n_groups == 1 || w->group_size >= 64;
    w4_tile_fn full, tail;
    int64_t R = 1;
    switch (B) {
    case 1: R = 2, full = long_groups ? w4_r2b1a4 : w4_r2b1a2, tail = long_groups ? w4_r1b1a4 : w4_r1b1a2; break;
    case 2: full = tail = long_groups ? w4_r1b2a4 : w4_r1b2a2; break;
    case 3: full = tail = w4_r1b3a2; break;
    case 4: full = tail = w4_r1b4a2; break;
    case 5: full = tail = w4_r1b5a1; break;
    case 6: full = tail = w4_r1b6a1; break;
    case 7: full = tail = w4_r1b7a1; break;
    default: full = tail = w4_r1b8a1; break;
    }
    const int64_t nt = w->out / R;
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

/* ---- entry point ----------------------------------------------------------------------------------- */

llmsq_status llmsq_kern_w4_matmul(const llmsq_kern_w4 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    if (B > LLMSQ_KERN_GEMV_MAX_BATCH) return kern_gemm_tiles(w, w->out, w->in, kern_w4_dequant, NULL, 0, x, B, y);
    const llmsq_kern_isa isa = llmsq_kern_isa_get();
    if (isa >= LLMSQ_KERN_ISA_AVX512 && kern_w4_avx512_ok(w)) return kern_w4_gemv_avx512(w, x, B, y);
    if (isa >= LLMSQ_KERN_ISA_AVX2) return w4_gemv_avx2(w, x, B, y);
    return llmsq_kern_w4_matmul_scalar(w, x, B, y);
}
