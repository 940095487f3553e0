/* Speed of the CPU matmul kernels (include/llmsq/kernels.h) on real linear shapes.
 *
 *   OMP_NUM_THREADS=2 build/bench/bench_kernel_speed [--threads N] [--quick] [--layout NAME]
 *                                                    [--shape I] [--no-gemm]
 *
 * (--layout: a prefix of a layout name ("W4", "2:4 f16"; OpenBLAS f32 always runs as the
 * baseline); --shape: index 0-10 of the shapes below, 11 = the decode step only; threads: as
 * OMP_NUM_THREADS, or --threads.)
 *
 * Per layout and shape: GEMV (decode) at batch 1, 4 and 8 and GEMM (prefill) at 512 tokens,
 * for the SmolLM2-135M linears ([576x576] q/o, [192x576] k/v, [1536x576] gate/up, [576x1536]
 * down), a Llama-2-7B block ([4096x4096], [11008x4096], [4096x11008]) and the Llama-3.2-1B
 * linears ([2048x2048] q/o, [512x2048] k/v, [8192x2048] gate/up, [2048x8192] down), plus a SmolLM2 decode
 * step: the 7 linears of all 30 blocks at batch 1, one after the other as a forward runs them.
 *
 * Decode is memory-bound, so the GEMV figures are taken with cold weights: each timed call reads
 * its own copy of the matrix, cycling through enough copies to fill 256 MiB (8x a 32 MiB
 * L3) -- as in a real decode step, where no matrix is seen again before the rest of the model
 * has gone through the cache. GB/s counts the packed weight bytes (codes, metadata, scales) read
 * per call; the roofline is the read bandwidth of a STREAM-like sum over a 512 MiB buffer,
 * measured in the same run with the same threads. "x f32" is the speed-up over OpenBLAS f32
 * (cblas_sgemv / cblas_sgemm as they are). GEMM reports GFLOP/s (2 B out in / time).
 * The memory bandwidth of a cloud VM drifts (a 2-vCPU Zen 5 VM read 47..87 GB/s within an
 * hour), so all layouts of a shape are measured round-robin 3 times, each measurement next to
 * one of the read bandwidth, keeping the best of each: percentages and ratios then compare
 * best with best (a layout can still catch a fast moment the bandwidth samples missed). A
 * measurement is the fastest of >= 3 passes over the copies (>= 2 ms each, 0.15 s per round;
 * one GEMM is a pass). Weight values do not affect timings; they are seeded random (int4
 * groups of 128, asymmetric; W8A8 symmetric per channel, dynamic per-token activation
 * scales). */
#include "llmsq/kernels.h"
#include "llmsq/runtime.h"
#include "llmsq/speed.h"

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
        const int64_t out4 = (w->out + 3) / 4 * 4;
        r->codes = dup(w->codes, (size_t)(out4 * w->in_pad / 2));
        r->scales = dup(w->scales, (size_t)(out4 * w->n_groups) * 2 + 32);
        r->zeros = dup(w->zeros, (size_t)(out4 * w->n_groups) + 32);
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

/* The read bandwidth is llmsq_speed_read_bw (include/llmsq/speed.h), the measurement behind
 * `llmsq eval --speed`'s roofline, over the 512 MiB buffer: bytes/s, best of `reps` passes. */
static double stream_read_bw(const float *a, size_t n, int reps) { return llmsq_speed_read_bw(a, n, reps); }

/* ---- timing ------------------------------------------------------------------------------------------- */

static double g_budget = 0.15; /* seconds per measurement and round */

/* Seconds per call: rounds of one pass over `ncopies` weight copies (each call its own copy,
 * at least 2 ms a round), repeated for g_budget seconds and at least 3 times; the fastest round
 * counts (other processes only ever make a round slower). */
static double time_calls(lay l, void **w, int ncopies, const float *x, int64_t B, float *y)
{
    double best = 1e30, t_all = llmsq_time_now();
    for (int round = 0; round < 3 || llmsq_time_now() - t_all < g_budget; round++) {
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
    {"L2-7B down 4096x11008", 4096, 11008},   {"L3.2-1B q/o 2048x2048", 2048, 2048},
    {"L3.2-1B k/v 512x2048", 512, 2048},      {"L3.2-1B gate/up 8192x2048", 8192, 2048},
    {"L3.2-1B down 2048x8192", 2048, 8192},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

int main(int argc, char **argv)
{
    int threads = 0, only_shape = -1;
    bool quick = false, gemm = true;
    const char *only_layout = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-gemm")) gemm = false;
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) only_layout = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) only_shape = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--quick] [--layout NAME] [--shape I] [--no-gemm]\n", argv[0]);
            return 2;
        }
    }
    if (threads > 0) llmsq_threads_set(threads); /* else OMP_NUM_THREADS, as OpenBLAS reads it */
    const int rounds = quick ? 1 : 3;
    const size_t cold_bytes = (size_t)256 << 20, sn = (size_t)512 << 20 >> 2;
    float *sbuf = aligned_alloc(64, sn * sizeof *sbuf);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < sn; i++) sbuf[i] = 1.0f;
    printf("kernel_speed: %d threads, instruction set %s, read bandwidth at start %.1f GB/s\n", omp_get_max_threads(),
           llmsq_kern_isa_name(llmsq_kern_isa_get()), stream_read_bw(sbuf, sn, 5) / 1e9);
    printf("GEMV: cold weights (each call reads its own copy, copies cycled over 256 MiB); all layouts of a\n"
           "shape measured round-robin %d times with the read bandwidth, best of each kept\n\n", rounds);

    static const int64_t gemv_b[] = {1, 4, 8};
    const int64_t P = 512;
    for (int s = 0; s < N_SHAPES; s++) {
        if (only_shape >= 0 && only_shape != s) continue;
        const int64_t out = shapes[s].out, in = shapes[s].in;
        float *x = rand_f32(P * in, 1.0), *y = malloc((size_t)(P * out) * sizeof *y);
        void **w[L_COUNT] = {0};
        int ncopies[L_COUNT] = {0};
        size_t bytes[L_COUNT] = {0};
        double tv[L_COUNT][3], tg[L_COUNT], bw = 0;
        for (lay l = 0; l < L_COUNT; l++) {
            tg[l] = tv[l][0] = tv[l][1] = tv[l][2] = 1e30;
            if (only_layout && l != L_F32BLAS && strncmp(lay_name[l], only_layout, strlen(only_layout))) continue;
            void *w0 = make(l, out, in);
            bytes[l] = wbytes(l, w0);
            ncopies[l] = (int)((cold_bytes + bytes[l] - 1) / bytes[l]);
            if (ncopies[l] > 4096) ncopies[l] = 4096;
            w[l] = malloc((size_t)ncopies[l] * sizeof *w[l]);
            w[l][0] = w0;
            for (int c = 1; c < ncopies[l]; c++) w[l][c] = clone(l, w0);
            for (int c = 0; c < ncopies[l]; c++) mm(l, w[l][c], x, 1, y); /* page faults, thread pool */
        }
        for (int round = 0; round < rounds; round++) {
            for (lay l = 0; l < L_COUNT; l++) {
                if (!w[l]) continue;
                const double b = stream_read_bw(sbuf, sn, 2); /* the bandwidth next to each layout */
                if (b > bw) bw = b;
                for (int k = 0; k < 3; k++) {
                    const double t = time_calls(l, w[l], ncopies[l], x, gemv_b[k], y);
                    if (t < tv[l][k]) tv[l][k] = t;
                }
                if (gemm) {
                    const double t = time_calls(l, w[l], 1, x, P, y);
                    if (t < tg[l]) tg[l] = t;
                }
            }
        }
        printf("%s: [%lld x %lld], read bandwidth (best of the rounds) %.1f GB/s\n", shapes[s].name, (long long)out,
               (long long)in, bw / 1e9);
        printf("  %-14s %8s | %9s %7s %6s %6s | %9s %6s | %9s %6s |", "layout", "MiB", "B=1 us", "GB/s", "%roof",
               "x f32", "B=4 us", "x f32", "B=8 us", "x f32");
        if (gemm) printf(" GEMM %lld: %8s %8s %6s", (long long)P, "ms", "GFLOP/s", "x f32");
        printf("\n");
        for (lay l = 0; l < L_COUNT; l++) {
            if (!w[l]) continue;
            const double gbs = (double)bytes[l] / tv[l][0];
            printf("  %-14s %8.2f | %9.1f %7.1f %5.0f%% %6.2f | %9.1f %6.2f | %9.1f %6.2f |", lay_name[l],
                   (double)bytes[l] / 1048576.0, tv[l][0] * 1e6, gbs / 1e9, 100.0 * gbs / bw,
                   tv[L_F32BLAS][0] / tv[l][0], tv[l][1] * 1e6, tv[L_F32BLAS][1] / tv[l][1], tv[l][2] * 1e6,
                   tv[L_F32BLAS][2] / tv[l][2]);
            if (gemm)
                printf("       %8.2f %8.1f %6.2f", tg[l] * 1e3,
                       2.0 * (double)P * (double)out * (double)in / tg[l] / 1e9, tg[L_F32BLAS] / tg[l]);
            printf("\n");
            for (int c = 0; c < ncopies[l]; c++) destroy(l, w[l][c]);
            free(w[l]);
        }
        printf("\n");
        fflush(stdout);
        free(x), free(y);
    }

    /* A SmolLM2-135M decode step: the 7 linears of 30 blocks, batch 1, in forward order. */
    if (only_shape >= 0 && only_shape != N_SHAPES) {
        free(sbuf);
        return 0;
    }
    static const int64_t blk[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576},
                                      {1536, 576}, {1536, 576}, {576, 1536}};
    float *x = rand_f32(1536, 1.0), *y = malloc(1536 * sizeof *y);
    void *w[L_COUNT][30][7] = {{{0}}};
    size_t bytes[L_COUNT] = {0};
    double best[L_COUNT], bw = 0;
    bool on[L_COUNT] = {false};
    for (lay l = 0; l < L_COUNT; l++) {
        best[l] = 1e30;
        if (only_layout && l != L_F32BLAS && strncmp(lay_name[l], only_layout, strlen(only_layout))) continue;
        on[l] = true;
        for (int b = 0; b < 30; b++)
            for (int k = 0; k < 7; k++) {
                w[l][b][k] = make(l, blk[k][0], blk[k][1]);
                bytes[l] += wbytes(l, w[l][b][k]);
            }
    }
    for (int round = 0; round < rounds + 2; round++) {
        for (lay l = 0; l < L_COUNT; l++) {
            if (!on[l]) continue;
            const double b = stream_read_bw(sbuf, sn, 2);
            if (b > bw) bw = b;
            for (int r = 0; r < 10; r++) {
                double t = llmsq_time_now();
                for (int bl = 0; bl < 30; bl++)
                    for (int k = 0; k < 7; k++) mm(l, w[l][bl][k], x, 1, y);
                t = llmsq_time_now() - t;
                if ((round > 0 || r > 0) && t < best[l]) best[l] = t;
            }
        }
    }
    printf("SmolLM2-135M decode step (batch 1): 30 blocks x {q, k, v, o, gate, up, down}, %d calls; read\n"
           "bandwidth (best of the rounds) %.1f GB/s\n", 30 * 7, bw / 1e9);
    printf("  %-14s %8s %9s %8s %6s %6s\n", "layout", "MiB", "ms", "GB/s", "%roof", "x f32");
    for (lay l = 0; l < L_COUNT; l++) {
        if (!on[l]) continue;
        const double gbs = (double)bytes[l] / best[l];
        printf("  %-14s %8.2f %9.3f %8.1f %5.0f%% %6.2f\n", lay_name[l], (double)bytes[l] / 1048576.0, best[l] * 1e3,
               gbs / 1e9, 100.0 * gbs / bw, best[L_F32BLAS] / best[l]);
        for (int b = 0; b < 30; b++)
            for (int k = 0; k < 7; k++) destroy(l, w[l][b][k]);
    }
    free(x), free(y), free(sbuf);
    return 0;
}
