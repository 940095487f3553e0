/* Speed report: prefill and decode timings with their bandwidth and sgemm rooflines
 * (include/llmsq/speed.h). */
#include "llmsq/speed.h"
#include "llmsq/runtime.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)
#define WARMUP_TOKENS 8 /* per sequence: enough to run every code path (and allocate scratch) once */
#define BW_REPS 5       /* read-bandwidth passes: a VM's bandwidth drifts, the best pass counts */
#define SGEMM_REPS 3

llmsq_speed_params llmsq_speed_default_params(void)
{
    return (llmsq_speed_params){.prefill = 512, .decode = 128, .batch = 1, .seed = 1,
                                .bandwidth_bytes = 256 * MIB, .sgemm_n = 1024, .progress = true};
}

/* ---- read bandwidth ----------------------------------------------------------------------- */

/* Sum of the 32-float blocks [0, nblk) of a, each thread its own contiguous range (static
 * schedule), 4 independent 256-bit accumulators so the adds never wait on each other. */
__attribute__((target("avx2"))) static double read_sum_avx2(const float *a, size_t nblk)
{
    double tot = 0;
#pragma omp parallel reduction(+ : tot)
    {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for schedule(static)
        for (size_t b = 0; b < nblk; b++) {
            const float *p = a + b * 32;
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + 8));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + 16));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + 24));
        }
        float f[8];
        _mm256_storeu_ps(f, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        for (int k = 0; k < 8; k++) tot += f[k];
    }
    return tot;
}

/* The same with SSE (every x86-64 CPU): 16-byte loads still saturate memory on most cores. */
static double read_sum_sse(const float *a, size_t nblk)
{
    double tot = 0;
#pragma omp parallel reduction(+ : tot)
    {
        __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for schedule(static)
        for (size_t b = 0; b < nblk; b++) {
            const float *p = a + b * 32;
            for (int k = 0; k < 32; k += 16) {
                s0 = _mm_add_ps(s0, _mm_loadu_ps(p + k));
                s1 = _mm_add_ps(s1, _mm_loadu_ps(p + k + 4));
                s2 = _mm_add_ps(s2, _mm_loadu_ps(p + k + 8));
                s3 = _mm_add_ps(s3, _mm_loadu_ps(p + k + 12));
            }
        }
        float f[4];
        _mm_storeu_ps(f, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
        for (int k = 0; k < 4; k++) tot += f[k];
    }
    return tot;
}

static double read_sum(const float *a, size_t n)
{
    const size_t nblk = n / 32;
    double tot = __builtin_cpu_supports("avx2") ? read_sum_avx2(a, nblk) : read_sum_sse(a, nblk);
    for (size_t i = nblk * 32; i < n; i++) tot += a[i]; /* the tail (< 32 floats) */
    return tot;
}

double llmsq_speed_read_bw(const float *a, size_t n, int reps)
{
    LLMSQ_ASSERT(a && n > 0 && reps >= 1);
    double best = 1e300;
    /* volatile: the sums must be computed although nothing reads them */
    volatile double sink = 0;
    for (int r = 0; r < reps; r++) {
        double t = llmsq_time_now();
        sink = sink + read_sum(a, n);
        t = llmsq_time_now() - t;
        if (t < best) best = t;
    }
    (void)sink;
    return (double)n * sizeof(float) / (best > 0 ? best : 1e-9);
}

llmsq_status llmsq_speed_bandwidth(size_t bytes, int reps, double *gbs)
{
    if (bytes < MIB || reps < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: bandwidth buffer of %zu bytes (at least 1 MiB) and %d passes "
                           "(at least 1)", bytes, reps);
    const size_t n = bytes / sizeof(float);
    float *a = aligned_alloc(64, n * sizeof *a); /* n * 4 is a multiple of 64: bytes >= 1 MiB, 4-aligned */
    if (!a) return llmsq_error(LLMSQ_STATUS_NOMEM, "speed: cannot allocate the %zu-byte bandwidth buffer", bytes);
    /* touched by the threads that will read it (first-touch NUMA placement), and so that page
     * faults stay out of the timing */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 1.0f;
    *gbs = llmsq_speed_read_bw(a, n, reps) / 1e9;
    free(a);
    return LLMSQ_OK;
}

/* ---- sgemm FLOP rate ------------------------------------------------------------------------- */

llmsq_status llmsq_speed_sgemm(int64_t n, int reps, double *gflops)
{
    if (n < 16 || n > 16384 || reps < 1)
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: sgemm size %lld (range [16, 16384]) and %d passes (at least 1)",
                           (long long)n, reps);
    const size_t nn = (size_t)n * (size_t)n;
    float *A = malloc(nn * sizeof *A), *B = malloc(nn * sizeof *B), *C = malloc(nn * sizeof *C);
    if (!A || !B || !C) {
        free(A), free(B), free(C);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "speed: cannot allocate the %lld x %lld sgemm operands", (long long)n,
                           (long long)n);
    }
    /* small finite values: the FLOP rate of denormals or infinities is not the one measured */
    for (size_t i = 0; i < nn; i++) A[i] = (float)(i % 7) * 0.125f, B[i] = (float)(i % 5) * 0.25f;
    llmsq_threads_get(); /* applies the thread count to OpenBLAS when nobody set it yet */
    double best = 1e300;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (thread pool start, caches) */
        double t = llmsq_time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, (blasint)n, (blasint)n, 1.0f, A,
                    (blasint)n, B, (blasint)n, 0.0f, C, (blasint)n);
        t = llmsq_time_now() - t;
        if (r >= 0 && t < best) best = t;
    }
    free(A), free(B), free(C);
    *gflops = 2.0 * (double)n * (double)n * (double)n / (best > 0 ? best : 1e-9) / 1e9;
    return LLMSQ_OK;
}

/* ---- roofline models ---------------------------------------------------------------------- */

/* Weights of the seven block linears of all layers. */
static double block_linear_params(const llmsq_config *c)
{
    const double d = (double)c->hidden_size, q = (double)(c->n_heads * c->head_dim),
                 kv = (double)(c->n_kv_heads * c->head_dim), F = (double)c->intermediate_size;
    return (double)c->n_layers * (2 * q * d + 2 * kv * d + 3 * F * d);
}

/* Bytes one decode step reads: block linears and lm_head (packed sizes, or f32 from the
 * config) once for the whole batch, plus each sequence's K and V at the mean context of the
 * decode, P + D/2 positions (at most the sliding window). */
static double decode_bytes_per_step(const llmsq_config *c, const llmsq_speed_result *r)
{
    double weights = r->packed ? (double)(r->pack.linear_bytes + r->pack.head_bytes)
                               : 4.0 * (block_linear_params(c) + (double)c->vocab_size * (double)c->hidden_size);
    double ctx = (double)r->prefill + (double)r->decode / 2;
    if (c->sliding_window > 0 && ctx > (double)c->sliding_window) ctx = (double)c->sliding_window;
    const double kv_per_seq = (double)c->n_layers * 2 * (double)(c->n_kv_heads * c->head_dim) * 4 * ctx;
    return weights + (double)r->batch * kv_per_seq;
}

/* FLOPs per prefill token: the block linears (2 per weight), attention scores and values at
 * the mean causal context (P + 1)/2 (2 matmuls of 2 FLOPs per head element), and the lm_head
 * on the last row only, spread over the P tokens. */
static double prefill_flops_per_token(const llmsq_config *c, int64_t P)
{
    double ctx = ((double)P + 1) / 2;
    if (c->sliding_window > 0 && ctx > (double)c->sliding_window) ctx = (double)c->sliding_window;
    const double attn = 4.0 * (double)c->n_layers * (double)c->n_heads * (double)c->head_dim * ctx;
    const double head = 2.0 * (double)c->vocab_size * (double)c->hidden_size / (double)P;
    return 2.0 * block_linear_params(c) + attn + head;
}

static size_t weight_bytes(const llmsq_config *c, const llmsq_speed_result *r)
{
    if (r->packed) return r->pack.linear_bytes + r->pack.head_bytes + r->pack.embed_bytes + r->pack.other_bytes;
    return 4 * (size_t)llmsq_config_param_count(c);
}

/* ---- timed runs ------------------------------------------------------------------------- */

/* Buffers of one run, all sized from B, P and the config. */
typedef struct speed_bufs {
    llmsq_kv_cache **caches; /* [B], capacity P + D each */
    int32_t *prompt;         /* [B, P] random ids */
    int32_t *next;           /* [B] the token each sequence feeds next */
    float   *hidden;         /* [B * P, d] prefill hidden states */
    float   *last;           /* [B, d] last hidden row of each sequence */
    float   *logits;         /* [B, V] */
} speed_bufs;

static void bufs_free(speed_bufs *b, int64_t B)
{
    if (b->caches)
        for (int64_t i = 0; i < B; i++) llmsq_kv_cache_free(b->caches[i]);
    free(b->caches), free(b->prompt), free(b->next), free(b->hidden), free(b->last), free(b->logits);
}

static llmsq_status bufs_alloc(const llmsq_config *c, const llmsq_speed_params *p, speed_bufs *b)
{
    const size_t B = (size_t)p->batch, P = (size_t)p->prefill, d = (size_t)c->hidden_size;
    *b = (speed_bufs){.caches = calloc(B, sizeof *b->caches), .prompt = malloc(B * P * sizeof *b->prompt),
                      .next = malloc(B * sizeof *b->next), .hidden = malloc(B * P * d * sizeof *b->hidden),
                      .last = malloc(B * d * sizeof *b->last),
                      .logits = malloc(B * (size_t)c->vocab_size * sizeof *b->logits)};
    if (!b->caches || !b->prompt || !b->next || !b->hidden || !b->last || !b->logits)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "speed: cannot allocate the buffers of %zu x %zu tokens", B, P);
    for (size_t i = 0; i < B; i++) LLMSQ_TRY(llmsq_kv_cache_create(c, p->prefill + p->decode, &b->caches[i]));
    uint64_t s = p->seed;
    for (size_t i = 0; i < B * P; i++) b->prompt[i] = (int32_t)(llmsq_splitmix64(&s) % (uint64_t)c->vocab_size);
    return LLMSQ_OK;
}

static void caches_reset(speed_bufs *b, int64_t B)
{
    for (int64_t i = 0; i < B; i++) llmsq_kv_cache_reset(b->caches[i]);
}

/* next[b] = argmax of logits row b [V] (first index on ties). */
static void argmax_rows(const float *logits, int64_t B, int64_t V, int32_t *next)
{
    for (int64_t b = 0; b < B; b++) {
        const float *l = logits + b * V;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (l[v] > l[best]) best = v;
        next[b] = (int32_t)best;
    }
}

/* A few prompt tokens and one decode step, untimed: first-call costs (scratch allocation,
 * thread pools, page faults of the packed weights) stay out of the timings. */
static llmsq_status warm_up(const llmsq_model *m, const llmsq_speed_params *p, speed_bufs *b)
{
    const int64_t B = p->batch, T = p->prefill < WARMUP_TOKENS ? p->prefill : WARMUP_TOKENS;
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids);
    if (!ids) return llmsq_error(LLMSQ_STATUS_NOMEM, "speed: out of memory");
    for (int64_t i = 0; i < B; i++) memcpy(ids + i * T, b->prompt + i * p->prefill, (size_t)T * sizeof *ids);
    llmsq_status st = llmsq_model_forward_batch(m, b->caches, B, ids, T, NULL, b->hidden);
    /* one decode step: any B valid ids will do, the first B of ids */
    if (st == LLMSQ_OK) st = llmsq_model_forward_batch(m, b->caches, B, ids, 1, b->logits, NULL);
    free(ids);
    caches_reset(b, B);
    return st;
}

/* The timed prefill: hidden states of the B x P prompt, then the lm_head on each sequence's
 * last row; its argmax is the first decode input. Fills r->ttft_s and r->prefill_tps. */
static llmsq_status timed_prefill(const llmsq_model *m, const llmsq_speed_params *p, speed_bufs *b,
                                  llmsq_speed_result *r)
{
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t B = p->batch, P = p->prefill, d = c->hidden_size;
    double t = llmsq_time_now();
    LLMSQ_TRY(llmsq_model_forward_batch(m, b->caches, B, b->prompt, P, NULL, b->hidden));
    for (int64_t i = 0; i < B; i++)
        memcpy(b->last + i * d, b->hidden + (i * P + P - 1) * d, (size_t)d * sizeof(float));
    LLMSQ_TRY(llmsq_model_lm_head(m, b->last, B, b->logits));
    argmax_rows(b->logits, B, c->vocab_size, b->next);
    r->ttft_s = llmsq_time_now() - t;
    r->prefill_tps = (double)(B * P) / r->ttft_s;
    return LLMSQ_OK;
}

/* The timed decode: D greedy steps of the B sequences together. Fills r->decode_s and
 * r->decode_tps. */
static llmsq_status timed_decode(const llmsq_model *m, const llmsq_speed_params *p, speed_bufs *b,
                                 llmsq_speed_result *r)
{
    const llmsq_config *c = llmsq_model_config(m);
    llmsq_progress *bar = p->progress ? llmsq_progress_begin("decode", p->decode) : NULL;
    llmsq_status st = LLMSQ_OK;
    double t = llmsq_time_now();
    for (int64_t s = 0; s < p->decode && st == LLMSQ_OK; s++) {
        st = llmsq_model_forward_batch(m, b->caches, p->batch, b->next, 1, b->logits, NULL);
        if (st == LLMSQ_OK) argmax_rows(b->logits, p->batch, c->vocab_size, b->next);
        llmsq_progress_update(bar, s + 1);
    }
    r->decode_s = llmsq_time_now() - t;
    llmsq_progress_end(bar);
    r->decode_tps = (double)(p->batch * p->decode) / r->decode_s;
    return st;
}

/* ---- the report ----------------------------------------------------------------------------- */

static llmsq_status check_params(const llmsq_speed_params *p)
{
    if (p->prefill < 1 || p->prefill > (1 << 20))
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: prefill %lld outside [1, 1048576]", (long long)p->prefill);
    if (p->decode < 1 || p->decode > (1 << 20))
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: decode %lld outside [1, 1048576]", (long long)p->decode);
    if (p->batch < 1 || p->batch > 4096)
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: batch %lld outside [1, 4096]", (long long)p->batch);
    if (p->bandwidth_bytes < MIB)
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: bandwidth buffer of %zu bytes (at least 1 MiB)",
                           p->bandwidth_bytes);
    if (p->sgemm_n < 16 || p->sgemm_n > 16384)
        return llmsq_error(LLMSQ_STATUS_ARG, "speed: sgemm size %lld outside [16, 16384]", (long long)p->sgemm_n);
    return LLMSQ_OK;
}

/* The rooflines from the machine measurements (taken after the timings: their buffers would
 * otherwise dominate the peak RSS of a small model). */
static llmsq_status rooflines(const llmsq_config *c, const llmsq_speed_params *p, llmsq_speed_result *r)
{
    LLMSQ_TRY(llmsq_speed_bandwidth(p->bandwidth_bytes, BW_REPS, &r->bandwidth_gbs));
    LLMSQ_TRY(llmsq_speed_sgemm(p->sgemm_n, SGEMM_REPS, &r->sgemm_gflops));
    r->decode_bytes_per_step = decode_bytes_per_step(c, r);
    r->prefill_flops_per_token = prefill_flops_per_token(c, p->prefill);
    r->decode_roofline_tps = (double)p->batch * r->bandwidth_gbs * 1e9 / r->decode_bytes_per_step;
    r->prefill_roofline_tps = r->sgemm_gflops * 1e9 / r->prefill_flops_per_token;
    return LLMSQ_OK;
}

llmsq_status llmsq_speed_run(const llmsq_model *m, const llmsq_speed_params *p, llmsq_speed_result *r)
{
    LLMSQ_ASSERT(m && p && r);
    LLMSQ_TRY(check_params(p));
    const llmsq_config *c = llmsq_model_config(m);
    if (p->prefill + p->decode > c->max_position)
        llmsq_log("speed: prefill + decode = %lld positions, past the model's context (%lld): timed all the same",
                  (long long)(p->prefill + p->decode), (long long)c->max_position);
    *r = (llmsq_speed_result){.prefill = p->prefill, .decode = p->decode, .batch = p->batch,
                              .threads = llmsq_threads_get()};
    r->packed = llmsq_model_pack_info_get(m, &r->pack);
    r->weight_bytes = weight_bytes(c, r);

    speed_bufs b;
    llmsq_status st = bufs_alloc(c, p, &b);
    if (st == LLMSQ_OK) st = warm_up(m, p, &b);
    if (st == LLMSQ_OK) st = timed_prefill(m, p, &b, r);
    if (st == LLMSQ_OK) st = timed_decode(m, p, &b, r);
    bufs_free(&b, p->batch);
    r->peak_rss = llmsq_peak_rss();
    if (st == LLMSQ_OK) st = rooflines(c, p, r);
    return st;
}
