/* W8A8 matmul: per-token int8 activation quantization, exact int32 accumulation (scalar
 * reference, AVX2 GEMV, cache-blocked AVX2 GEMM), f32 scaling. */
#include "kern_simd.h"

#include <math.h>
#include <omp.h>

/* ---- activation quantization ---------------------------------------------------------------------- */

/* Same arithmetic as llmsq_act_quant_i8: amax ignoring NaN, s = amax / 127, q = clamp(rint(x / s)). */
KERN_AVX2 static float act_quant_avx2(const float *x, int64_t n, float static_scale, int8_t *q)
{
    float s = static_scale;
    const int64_t n32 = n / 32 * 32;
    if (!(s > 0.0f)) {
        const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 m = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) /* max(new, m): a NaN in new keeps m, as the scalar compare does */
            m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absm), m);
        float lanes[8];
        _mm256_storeu_ps(lanes, m);
        float amax = 0.0f;
        for (int l = 0; l < 8; l++) amax = lanes[l] > amax ? lanes[l] : amax;
        for (; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        s = amax > 0.0f ? amax / 127.0f : 1.0f;
    }
    const __m256 vs = _mm256_set1_ps(s), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-128.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int64_t i = 0;
    for (; i < n32; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), vs),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v[k] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(r, hi), lo));
        }
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p, order));
    }
    for (; i < n; i++) {
        float v = rintf(x[i] / s);
        q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
    }
    return s;
}

float llmsq_kern_act_quant_i8(const float *x, int64_t n, float static_scale, int8_t *q)
{
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) return act_quant_avx2(x, n, static_scale, q);
    return llmsq_act_quant_i8(x, n, static_scale, q);
}

static float w8_static_scale(const llmsq_kern_w8 *w) { return w->act_static ? w->act_scale : 0.0f; }

/* ---- scalar reference ------------------------------------------------------------------------------ */

llmsq_status llmsq_kern_w8_matmul_i32_scalar(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B, int32_t *acc)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (xq && acc)));
    const int64_t out = w->out, in = w->in;
#pragma omp parallel for schedule(static) if (kern_parallel((double)B * (double)out * (double)in))
    for (int64_t o = 0; o < out; o++)
        for (int64_t b = 0; b < B; b++) {
            const int8_t *wr = w->w + o * w->in_pad, *xb = xq + b * in;
            int32_t a = 0;
            for (int64_t i = 0; i < in; i++) a += (int32_t)wr[i] * (int32_t)xb[i];
            acc[b * out + o] = a;
        }
    return LLMSQ_OK;
}

/* y = (float)acc * (s_x * s_w): the one scaling rule of both paths. */
static void w8_scale(const llmsq_kern_w8 *w, const int32_t *acc, const float *sx, int64_t B, float *y)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < w->out; o++)
            y[b * w->out + o] = (float)acc[b * w->out + o] * (sx[b] * w->scales[o]);
}

llmsq_status llmsq_kern_w8_matmul_scalar(const llmsq_kern_w8 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    int8_t *xq = kern_alloc((size_t)(B * w->in));
    float *sx = kern_alloc((size_t)B * sizeof(float));
    int32_t *acc = kern_alloc((size_t)(B * w->out) * sizeof(int32_t));
    if (!xq || !sx || !acc) {
        free(xq), free(sx), free(acc);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for W8A8 activations");
    }
    for (int64_t b = 0; b < B; b++)
        sx[b] = llmsq_act_quant_i8(x + b * w->in, w->in, w8_static_scale(w), xq + b * w->in);
    llmsq_kern_w8_matmul_i32_scalar(w, xq, B, acc);
    w8_scale(w, acc, sx, B, y);
    free(xq), free(sx), free(acc);
    return LLMSQ_OK;
}

/* ---- AVX2 integer tiles ------------------------------------------------------------------------------ */

/* Rows o..o+R-1 x B tokens: 16 weights sign-extended to int16 (vpmovsxbw), multiplied with
 * int16 activations and summed in pairs (vpmaddwd: |pair| <= 2^15, exact), then added into int32
 * lanes. Activations x16 [B, ldx] int16, zero padded to in_pad. */
KERN_AVX2 KERN_INLINE void w8_tile(const llmsq_kern_w8 *w, int64_t o, const int R, const int B, const int16_t *x16,
                                   int64_t ldx, int32_t *acc_out, int64_t ldacc)
{
    const int64_t ld = w->in_pad;
    __m256i acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) acc[r][b] = _mm256_setzero_si256();
    for (int64_t i = 0; i < ld; i += 16) {
        if (i % 64 == 0) /* keep KERN_PF_BYTES of the row stream in flight */
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)(w->w + (o + r) * ld + i) + KERN_PF_BYTES, _MM_HINT_T0);
        __m256i wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(w->w + (o + r) * ld + i)));
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) {
            const __m256i xv = _mm256_load_si256((const __m256i *)(x16 + b * ldx + i));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][b] = _mm256_add_epi32(acc[r][b], _mm256_madd_epi16(wv[r], xv));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int b = 0; b < B; b++) acc_out[b * ldacc + o + r] = kern_hsum_i32(acc[r][b]);
}

typedef void (*w8_tile_fn)(const llmsq_kern_w8 *w, int64_t o, const int16_t *x16, int64_t ldx, int32_t *acc,
                           int64_t ldacc);

#define W8_TILE(name, R, B)                                                                                 \
    KERN_AVX2 static void name(const llmsq_kern_w8 *w, int64_t o, const int16_t *x16, int64_t ldx,         \
                               int32_t *acc, int64_t ldacc)                                                \
    {                                                                                                       \
        w8_tile(w, o, R, B, x16, ldx, acc, ldacc);                                                          \
    }
W8_TILE(w8_r1b1, 1, 1) W8_TILE(w8_r1b2, 1, 2) W8_TILE(w8_r1b3, 1, 3) W8_TILE(w8_r1b4, 1, 4)
W8_TILE(w8_r1b5, 1, 5) W8_TILE(w8_r1b6, 1, 6) W8_TILE(w8_r1b7, 1, 7) W8_TILE(w8_r1b8, 1, 8)

/* One row at a time: a thread's rows are then one contiguous stream, which the hardware
 * prefetchers follow (4 rows at a time, 4 short streams of `in` bytes, streamed [4096 x 4096]
 * at 27 GB/s against 44 GB/s on a 2-thread Zen 5 VM; the int8 dot
 * product is cheap enough not to need the shared activation loads). */
static const w8_tile_fn w8_tiles[9] = {0, w8_r1b1, w8_r1b2, w8_r1b3, w8_r1b4, w8_r1b5, w8_r1b6, w8_r1b7, w8_r1b8};

/* Rows [o0, o1) for tokens [b0, b0 + nb), nb <= 8. */
static void w8_rows(const llmsq_kern_w8 *w, int64_t o0, int64_t o1, const int16_t *x16, int64_t b0, int64_t nb,
                    int32_t *acc)
{
    const int16_t *xb = x16 + b0 * w->in_pad;
    int32_t *ab = acc + b0 * w->out;
    for (int64_t o = o0; o < o1; o++) w8_tiles[nb](w, o, xb, w->in_pad, ab, w->out);
}

KERN_AVX2 static void w8_widen(const int8_t *xq, int64_t B, int64_t in, int64_t ld, int16_t *x16)
{
    for (int64_t b = 0; b < B; b++) {
        int64_t i = 0;
        for (; i + 16 <= in; i += 16)
            _mm256_store_si256((__m256i *)(x16 + b * ld + i),
                               _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xq + b * in + i))));
        for (; i < in; i++) x16[b * ld + i] = xq[b * in + i];
    }
}

static llmsq_status w8_i32_avx2(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B, int32_t *acc)
{
    int16_t *x16 = kern_alloc((size_t)(B * w->in_pad) * sizeof(int16_t));
    if (!x16) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for W8A8 activations");
    w8_widen(xq, B, w->in, w->in_pad, x16);
    const double work = (double)B * (double)w->out * (double)w->in_pad;
    if (B <= LLMSQ_KERN_GEMV_MAX_BATCH) {
        /* GEMV: each weight row is read once for all tokens */
#pragma omp parallel if (kern_parallel(work))
        {
            int64_t o0, o1; /* this thread's rows: one contiguous stream, its start prefetched */
            kern_split(w->out, omp_get_num_threads(), omp_get_thread_num(), &o0, &o1);
            if (o0 < o1) kern_prefetch(w->w + o0 * w->in_pad, KERN_PF_BYTES);
            for (int64_t o = o0; o < o1; o++) w8_tiles[B](w, o, x16, w->in_pad, acc, w->out);
        }
    } else {
        /* GEMM: a tile of rows (~256 KiB of weights, L2-resident) meets every block of 8 tokens */
        int64_t TR = (256 << 10) / w->in_pad;
        TR = TR < 4 ? 4 : TR / 4 * 4;
        const int64_t nt = (w->out + TR - 1) / TR;
#pragma omp parallel for schedule(dynamic, 1) if (kern_parallel(work))
        for (int64_t t = 0; t < nt; t++) {
            const int64_t o0 = t * TR, o1 = o0 + TR < w->out ? o0 + TR : w->out;
            for (int64_t b0 = 0; b0 < B; b0 += 8) w8_rows(w, o0, o1, x16, b0, B - b0 < 8 ? B - b0 : 8, acc);
        }
    }
    free(x16);
    return LLMSQ_OK;
}

/* ---- entry points ------------------------------------------------------------------------------------- */

llmsq_status llmsq_kern_w8_matmul_i32(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B, int32_t *acc)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (xq && acc)));
    if (B == 0) return LLMSQ_OK;
    if (llmsq_kern_isa_get() >= LLMSQ_KERN_ISA_AVX2) return w8_i32_avx2(w, xq, B, acc);
    return llmsq_kern_w8_matmul_i32_scalar(w, xq, B, acc);
}

llmsq_status llmsq_kern_w8_matmul(const llmsq_kern_w8 *w, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(w && B >= 0 && (B == 0 || (x && y)));
    if (B == 0) return LLMSQ_OK;
    int8_t *xq = kern_alloc((size_t)(B * w->in));
    float *sx = kern_alloc((size_t)B * sizeof(float));
    int32_t *acc = kern_alloc((size_t)(B * w->out) * sizeof(int32_t));
    llmsq_status st = LLMSQ_OK;
    if (!xq || !sx || !acc) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for W8A8 activations");
    if (st == LLMSQ_OK) {
        for (int64_t b = 0; b < B; b++)
            sx[b] = llmsq_kern_act_quant_i8(x + b * w->in, w->in, w8_static_scale(w), xq + b * w->in);
        st = llmsq_kern_w8_matmul_i32(w, xq, B, acc);
    }
    if (st == LLMSQ_OK) w8_scale(w, acc, sx, B, y);
    free(xq), free(sx), free(acc);
    return st;
}
