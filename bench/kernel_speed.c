/* Speed of the CPU matmul kernels (include/llmsq/kernels.h) on real linear shapes.
 *
 *   build/bench/bench_kernel_speed [--threads N] [--quick]
 *
 * Per layout and shape: GEMV (decode) at batch 1, 4 and 8 and GEMM (prefill) at 512 tokens,
 * for the SmolLM2-135M linears ([576x576] q/o, [192x576] k/v, [1536x576] gate/up, [576x1536]
 * down) and a Llama-2-7B block ([4096x4096], [11008x4096], [4096x11008]), plus a SmolLM2 decode
 * step: the 7 linears of all 30 blocks at batch 1, one after the other as a forward runs them.
 *
 * Decode is memory-bound, so the GEMV figures are taken with cold weights: each timed call reads
 * its own copy of the matrix, cycling through enough copies to fill 256 MiB (8x this machine's
 * L3) -- as in a real decode step, where no matrix is seen again before the rest of the model
 * has gone through the cache. GB/s counts the packed weight bytes (codes, metadata, scales) read
 * per call; the roofline is the read bandwidth of a STREAM-like sum over a 512 MiB buffer,
 * measured in the same run with the same threads. "x f32" is the speed-up over OpenBLAS f32
 * (cblas_sgemv / cblas_sgemm as they are). GEMM reports GFLOP/s (2 B out in / time).
 * Timings: the fastest of the rounds run in 0.4 s (at least 5), a round being one pass over the
 * copies (or one GEMM). Weight values do not affect timings; they are
 * seeded random (int4 groups of 128, asymmetric; W8A8 symmetric per channel, dynamic
 * per-token activation scales). */
#include "llmsq/kernels.h"
#include "llmsq/runtime.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- seeded random fixtures ------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnext(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static double runif(void) { return (double)(rnext() >> 11) * 0x1p-53; }

static float *rand_f32(int64_t n, double scale)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(scale * (runif() * 2 - 1));
    return p;
}

/* 2:4: two nonzeros at random offsets in every group of 4 */
static float *rand_24(int64_t out, int64_t in)
{
    float *W = calloc((size_t)(out * in), sizeof *W);
    for (int64_t o = 0; o < out; o++)
        for (int64_t c = 0; c + 4 <= in; c += 4) {
            int a = (int)(rnext() % 4), b = (a + 1 + (int)(rnext() % 3)) % 4;
            W[o * in + c + a] = (float)(runif() - 0.5), W[o * in + c + b] = (float)(runif() - 0.5);
        }
    return W;
}

static llmsq_qlinear *rand_q(int64_t out, int64_t in, int bits, int64_t gs, const float *W24)
{
    llmsq_qlinear *q;
    if (llmsq_qlinear_create(out, in, bits, gs, LLMSQ_QGRID_MINMAX, false, &q) != LLMSQ_OK) abort();
    const int64_t ng = q->n_groups;
    for (int64_t k = 0; k < out * ng; k++) {
        q->scales[k] = llmsq_f16_to_f32(llmsq_f32_to_f16((float)(0.001 + 0.01 * runif())));
        q->zeros[k] = bits == 8 ? 128 : (int32_t)(rnext() % 16);
    }
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            int32_t z = q->zeros[o * ng + i / q->group_size];
            uint8_t c = bits == 8 ? (uint8_t)(1 + rnext() % 255) : (uint8_t)(rnext() % 16);
            if (W24) c = W24[o * in + i] == 0.0f ? (uint8_t)z : (uint8_t)(c == z ? (c + 1) % 16 : c);
            q->codes[o * in + i] = c;
        }
    return q;
}

/* ---- layouts under test --------------------------------------------------------------------------- */

typedef enum { L_F32BLAS, L_F32, L_F16, L_BF16, L_W4, L_W8, L_S24, L_S24W4, L_COUNT } lay;
static const char *lay_name[L_COUNT] = {"f32 OpenBLAS", "f32", "f16", "bf16", "W4A16 g128",
                                        "W8A8", "2:4 f16", "2:4+int4 g128"};

static void *make(lay l, int64_t out, int64_t in)
{
    void *r = NULL;
    llmsq_status st = LLMSQ_OK;
    if (l <= L_BF16) {
        float *W = rand_f32(out * in, 0.05);
        llmsq_dtype dt = l == L_F16 ? LLMSQ_DTYPE_F16 : l == L_BF16 ? LLMSQ_DTYPE_BF16 : LLMSQ_DTYPE_F32;
        st = llmsq_kern_dense_pack(W, out, in, dt, (llmsq_kern_dense **)&r);
        free(W);
    } else if (l == L_S24) {
        float *W = rand_24(out, in);
        st = llmsq_kern_s24_pack(W, out, in, (llmsq_kern_s24 **)&r);
        free(W);
    } else {
        float *W24 = l == L_S24W4 ? rand_24(out, in) : NULL;
        llmsq_qlinear *q = rand_q(out, in, l == L_W8 ? 8 : 4, l == L_W8 ? -1 : 128, W24);
        if (l == L_W4) st = llmsq_kern_w4_pack(q, (llmsq_kern_w4 **)&r);
        else if (l == L_W8) st = llmsq_kern_w8_pack(q, (llmsq_kern_w8 **)&r);
        else st = llmsq_kern_s24w4_pack(q, (llmsq_kern_s24w4 **)&r);
        llmsq_qlinear_free(q);
        free(W24);
    }
    if (st != LLMSQ_OK) {
        fprintf(stderr, "pack %s [%lld x %lld]: %s\n", lay_name[l], (long long)out, (long long)in, llmsq_last_error());
        exit(1);
    }
    return r;
}

static void *dup(const void *p, size_t n)
{
    void *r = aligned_alloc(64, (n + 63) / 64 * 64);
    memcpy(r, p, n);
    return r;
}

/* Deep copy (fresh memory for every array). */
static void *clone(lay l, const void *p)
{
    if (l <= L_BF16) {
        const llmsq_kern_dense *d = p;
        llmsq_kern_dense *r = dup(d, sizeof *d);
        r->data = dup(d->data, llmsq_kern_dense_bytes(d));
        return r;
    }
    if (l == L_W4) {
        const llmsq_kern_w4 *w = p;
        llmsq_kern_w4 *r = dup(w, sizeof *w);
        r->codes = dup(w->codes, (size_t)(w->out * w->in_pad / 2));
        r->scales = dup(w->scales, (size_t)(w->out * w->n_groups) * 2 + 32);
        r->zeros = dup(w->zeros, (size_t)(w->out * w->n_groups) + 32);
        r->perm = NULL;
        return r;
    }
    if (l == L_W8) {
        const llmsq_kern_w8 *w = p;
        llmsq_kern_w8 *r = dup(w, sizeof *w);
        r->w = dup(w->w, (size_t)(w->out * w->in_pad));
        r->scales = dup(w->scales, (size_t)w->out * sizeof(float));
        return r;
    }
    if (l == L_S24) {
        const llmsq_kern_s24 *s = p;
        llmsq_kern_s24 *r = dup(s, sizeof *s);
        r->values = dup(s->values, (size_t)(s->out * s->in_pad / 2) * 2);
        r->meta = dup(s->meta, (size_t)(s->out * s->in_pad / 8));
        return r;
    }
    const llmsq_kern_s24w4 *s = p;
    llmsq_kern_s24w4 *r = dup(s, sizeof *s);
    r->codes = dup(s->codes, (size_t)(s->out * s->in_pad / 16) * 4);
    r->meta = dup(s->meta, (size_t)(s->out * s->in_pad / 8));
    r->scales = dup(s->scales, (size_t)(s->out * s->n_groups) * 2 + 32);
    r->zeros = dup(s->zeros, (size_t)(s->out * s->n_groups) + 32);
    return r;
}

static void destroy(lay l, void *p)
{
    if (l <= L_BF16) llmsq_kern_dense_free(p);
    else if (l == L_W4) llmsq_kern_w4_free(p);
    else if (l == L_W8) llmsq_kern_w8_free(p);
    else if (l == L_S24) llmsq_kern_s24_free(p);
    else llmsq_kern_s24w4_free(p);
}

static size_t wbytes(lay l, const void *p)
{
    if (l <= L_BF16) return llmsq_kern_dense_bytes(p);
    if (l == L_W4) return llmsq_kern_w4_bytes(p);
    if (l == L_W8) return llmsq_kern_w8_bytes(p);
    if (l == L_S24) return llmsq_kern_s24_bytes(p);
    return llmsq_kern_s24w4_bytes(p);
}

static void mm(lay l, const void *p, const float *x, int64_t B, float *y)
{
    llmsq_status st;
    switch (l) {
    case L_F32BLAS: st = llmsq_kern_f32_openblas(p, x, B, y); break;
    case L_F32: case L_F16: case L_BF16: st = llmsq_kern_dense_matmul(p, x, B, y); break;
    case L_W4: st = llmsq_kern_w4_matmul(p, x, B, y); break;
    case L_W8: st = llmsq_kern_w8_matmul(p, x, B, y); break;
    case L_S24: st = llmsq_kern_s24_matmul(p, x, B, y); break;
    default: st = llmsq_kern_s24w4_matmul(p, x, B, y); break;
    }
    if (st != LLMSQ_OK) {
        fprintf(stderr, "matmul %s: %s\n", lay_name[l], llmsq_last_error());
        exit(1);
    }
}

/* ---- roofline ---------------------------------------------------------------------------------------- */

__attribute__((target("avx2"))) static double read_sum(const float *a, size_t n)
{
    double tot = 0;
#pragma omp parallel reduction(+ : tot)
    {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i += 32) {
            s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
            s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
            s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
            s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
        }
        float f[8];
        _mm256_storeu_ps(f, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        for (int k = 0; k < 8; k++) tot += f[k];
    }
    return tot;
}

/* Read bandwidth in bytes/s over a 512 MiB buffer (best of 10). */
static double stream_read_bw(void)
{
    const size_t n = (size_t)512 << 20 >> 2;
    float *a = aligned_alloc(64, n * sizeof *a);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 1.0f;
    double best = 1e30, sink = 0;
    for (int r = 0; r < 10; r++) {
        double t = llmsq_time_now();
        sink += read_sum(a, n);
        t = llmsq_time_now() - t;
        if (t < best) best = t;
    }
    free(a);
    if (sink < 0) printf("%g\n", sink);
    return (double)n * sizeof(float) / best;
}

/* ---- timing ------------------------------------------------------------------------------------------- */

static double g_budget = 0.4; /* seconds per measurement */

/* Seconds per call: rounds of one pass over `ncopies` weight copies (each call its own copy,
 * at least 2 ms a round), repeated for g_budget seconds and at least 5 times; the fastest round
 * counts (other processes only ever make a round slower). */
static double time_calls(lay l, void **w, int ncopies, const float *x, int64_t B, float *y)
{
    for (int c = 0; c < ncopies; c++) mm(l, w[c], x, B, y); /* warm-up: page faults, thread pool */
    double best = 1e30, t_all = llmsq_time_now();
    for (int round = 0; round < 5 || llmsq_time_now() - t_all < g_budget; round++) {
        int64_t calls = 0;
        double t0 = llmsq_time_now(), t;
        do {
            for (int c = 0; c < ncopies; c++) mm(l, w[c], x, B, y);
            calls += ncopies;
            t = llmsq_time_now() - t0;
        } while (t < 2e-3);
        if (t / (double)calls < best) best = t / (double)calls;
    }
    return best;
}

typedef struct shape {
    const char *name;
    int64_t out, in;
} shape;

static const shape shapes[] = {
    {"SmolLM2 q/o  576x576", 576, 576},      {"SmolLM2 k/v  192x576", 192, 576},
    {"SmolLM2 gate/up 1536x576", 1536, 576}, {"SmolLM2 down 576x1536", 576, 1536},
    {"L2-7B q/k/v/o 4096x4096", 4096, 4096},  {"L2-7B gate/up 11008x4096", 11008, 4096},
    {"L2-7B down 4096x11008", 4096, 11008},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

int main(int argc, char **argv)
{
    int threads = 0;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    llmsq_threads_set(threads);
    if (quick) g_budget = 0.1;
    const size_t cold_bytes = (size_t)256 << 20;
    const double bw = stream_read_bw();
    printf("kernel_speed: %d threads, instruction set %s, STREAM-like read bandwidth %.1f GB/s (512 MiB)\n",
           llmsq_threads_get(), llmsq_kern_isa_name(llmsq_kern_isa_get()), bw / 1e9);
    printf("GEMV: cold weights (each call reads its own copy, copies cycled over 256 MiB)\n\n");

    static const int64_t gemv_b[] = {1, 4, 8};
    const int64_t P = 512;
    double f32_gemv[N_SHAPES][3], f32_gemm[N_SHAPES];
    printf("%-14s %-26s %10s %10s %10s %8s %8s | %10s %9s %7s %7s\n", "layout", "shape", "MiB", "B=1 us",
           "GB/s", "%roof", "x f32", "B=4 us", "B=8 us", "B4 x", "B8 x");
    printf("%-14s %-26s | GEMM %lld tokens: %10s %9s %7s\n", "", "", (long long)P, "ms", "GFLOP/s", "x f32");
    for (int s = 0; s < N_SHAPES; s++) {
        const int64_t out = shapes[s].out, in = shapes[s].in;
        float *x = rand_f32(P * in, 1.0), *y = malloc((size_t)(P * out) * sizeof *y);
        for (lay l = 0; l < L_COUNT; l++) {
            void *w0 = make(l, out, in);
            const size_t bytes = wbytes(l, w0);
            int ncopies = (int)((cold_bytes + bytes - 1) / bytes);
            if (ncopies > 4096) ncopies = 4096;
            void **w = malloc((size_t)ncopies * sizeof *w);
            w[0] = w0;
            for (int c = 1; c < ncopies; c++) w[c] = clone(l, w0);
            double tv[3];
            for (int k = 0; k < 3; k++) tv[k] = time_calls(l, w, ncopies, x, gemv_b[k], y);
            for (int c = 1; c < ncopies; c++) {
                /* clones own their arrays; free them as the pack functions' free would */
                destroy(l, w[c]);
            }
            const double tg = time_calls(l, w, 1, x, P, y);
            destroy(l, w0);
            free(w);
            if (l == L_F32BLAS) {
                for (int k = 0; k < 3; k++) f32_gemv[s][k] = tv[k];
                f32_gemm[s] = tg;
            }
            const double gbs = (double)bytes / tv[0];
            printf("%-14s %-26s %10.2f %10.1f %10.1f %7.0f%% %8.2f | %10.1f %9.1f %7.2f %7.2f\n", lay_name[l],
                   shapes[s].name, (double)bytes / 1048576.0, tv[0] * 1e6, gbs / 1e9, 100.0 * gbs / bw,
                   f32_gemv[s][0] / tv[0], tv[1] * 1e6, tv[2] * 1e6, f32_gemv[s][1] / tv[1], f32_gemv[s][2] / tv[2]);
            printf("%-14s %-26s | GEMM %lld tokens: %10.2f %9.1f %7.2f\n", "", "", (long long)P, tg * 1e3,
                   2.0 * (double)P * (double)out * (double)in / tg / 1e9, f32_gemm[s] / tg);
            fflush(stdout);
        }
        printf("\n");
        free(x), free(y);
    }

    /* A SmolLM2-135M decode step: the 7 linears of 30 blocks, batch 1, in forward order. */
    printf("SmolLM2-135M decode step (batch 1): 30 blocks x {q, k, v, o, gate, up, down}\n");
    printf("%-14s %10s %10s %10s %8s %8s\n", "layout", "MiB", "ms", "GB/s", "%roof", "x f32");
    static const int64_t blk[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576},
                                      {1536, 576}, {1536, 576}, {576, 1536}};
    float *x = rand_f32(1536, 1.0), *y = malloc(1536 * sizeof *y);
    double f32_step = 0;
    for (lay l = 0; l < L_COUNT; l++) {
        void *w[30][7];
        size_t bytes = 0;
        for (int b = 0; b < 30; b++)
            for (int k = 0; k < 7; k++) {
                w[b][k] = make(l, blk[k][0], blk[k][1]);
                bytes += wbytes(l, w[b][k]);
            }
        double best = 1e30;
        for (int r = 0; r < (quick ? 10 : 40); r++) {
            double t = llmsq_time_now();
            for (int b = 0; b < 30; b++)
                for (int k = 0; k < 7; k++) mm(l, w[b][k], x, 1, y);
            t = llmsq_time_now() - t;
            if (r > 0 && t < best) best = t;
        }
        if (l == L_F32BLAS) f32_step = best;
        const double gbs = (double)bytes / best;
        printf("%-14s %10.2f %10.3f %10.1f %7.0f%% %8.2f\n", lay_name[l], (double)bytes / 1048576.0, best * 1e3,
               gbs / 1e9, 100.0 * gbs / bw, f32_step / best);
        fflush(stdout);
        for (int b = 0; b < 30; b++)
            for (int k = 0; k < 7; k++) destroy(l, w[b][k]);
    }
    free(x), free(y);
    return 0;
}
