/* GPTQ speed on SmolLM2-135M linear shapes, with Hessians from synthetic activations.
 *
 *   build/bench/bench_gptq [--threads 2] [--seqs 128] [--seqlen 512] [--reps 3]
 *
 * For each linear [out, in] prints the seconds per llmsq_gptq_quantize call (best of
 * --reps) and the CPU seconds of all threads in that call, the part that does not scale
 * with `out` (wall seconds of an out = 1 call: checks, permutation, factorization), and the
 * share of the CPU time spent inside BLAS. The BLAS time is measured by interposing the
 * cblas_d* entry points llmsq calls: this executable defines them, the static library binds
 * to these definitions, and each forwards to OpenBLAS through dlsym(RTLD_NEXT) while adding
 * the calling thread's CPU time to a counter (CPU, not wall, time: the shares stay right on
 * a loaded machine; llmsq's BLAS calls are single-threaded, so the calling thread's time is
 * the call's). The shim costs a syscall per call, which inflates the totals slightly. */
#include "llmsq/llmsq.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- BLAS timing shims ----------------------------------------------------------------- */

static double g_blas_seconds; /* CPU seconds, summed over threads */

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *next_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "bench_gptq: cannot find %s in the BLAS library\n", name);
        abort();
    }
    return f;
}

#define BLAS_SHIM(name, params, args)                                                                   \
    void name params                                                                                    \
    {                                                                                                   \
        static void(*real) params;                                                                      \
        if (!real) *(void **)&real = next_symbol(#name);                                                \
        const double t0 = thread_cpu_now();                                                             \
        real args;                                                                                      \
        const double dt = thread_cpu_now() - t0;                                                        \
        _Pragma("omp atomic") g_blas_seconds += dt;                                                     \
    }

BLAS_SHIM(cblas_dgemm,
          (const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb, const blasint m,
           const blasint n, const blasint k, const double alpha, const double *a, const blasint lda, const double *b,
           const blasint ldb, const double beta, double *c, const blasint ldc),
          (o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
BLAS_SHIM(cblas_dsyrk,
          (const enum CBLAS_ORDER o, const enum CBLAS_UPLO u, const enum CBLAS_TRANSPOSE t, const blasint n,
           const blasint k, const double alpha, const double *a, const blasint lda, const double beta, double *c,
           const blasint ldc),
          (o, u, t, n, k, alpha, a, lda, beta, c, ldc))
BLAS_SHIM(cblas_dtrsm,
          (const enum CBLAS_ORDER o, const enum CBLAS_SIDE s, const enum CBLAS_UPLO u, const enum CBLAS_TRANSPOSE t,
           const enum CBLAS_DIAG d, const blasint m, const blasint n, const double alpha, const double *a,
           const blasint lda, double *b, const blasint ldb),
          (o, s, u, t, d, m, n, alpha, a, lda, b, ldb))
BLAS_SHIM(cblas_dtrmm,
          (const enum CBLAS_ORDER o, const enum CBLAS_SIDE s, const enum CBLAS_UPLO u, const enum CBLAS_TRANSPOSE t,
           const enum CBLAS_DIAG d, const blasint m, const blasint n, const double alpha, const double *a,
           const blasint lda, double *b, const blasint ldb),
          (o, s, u, t, d, m, n, alpha, a, lda, b, ldb))

/* ---- synthetic data ----------------------------------------------------------------------- */

static uint64_t g_rng = 0x5eed;

static float frand(void) /* xorshift64*, uniform in [-1, 1) */
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (float)((double)((g_rng * 0x2545f4914f6cdd1dull) >> 11) * 0x1p-52 - 1.0);
}

/* H from seqs x seqlen tokens: neighbouring channels correlated, every 64th channel 20x
 * larger (the outlier channels of LLM activations). */
static double *make_hessian(int64_t n, int64_t seqs, int64_t seqlen, double *seconds)
{
    llmsq_hessian h;
    float *X = malloc((size_t)(seqlen * n) * sizeof *X);
    if (!X || llmsq_hessian_init(&h, n) != LLMSQ_OK) abort();
    double t = 0;
    for (int64_t s = 0; s < seqs; s++) {
        for (int64_t r = 0; r < seqlen; r++) {
            float prev = frand();
            for (int64_t j = 0; j < n; j++) {
                const float z = frand();
                X[r * n + j] = (z + 0.6f * prev) * (j % 64 == 7 ? 20.0f : 1.0f);
                prev = z;
            }
        }
        const double t0 = llmsq_time_now();
        if (llmsq_hessian_add(&h, X, seqlen) != LLMSQ_OK) abort();
        t += llmsq_time_now() - t0;
    }
    double *H;
    if (llmsq_hessian_finalize(&h, &H) != LLMSQ_OK) abort();
    llmsq_hessian_free(&h);
    free(X);
    *seconds = t;
    return H;
}

/* CPU seconds of all threads of the process: less disturbed than wall time by other loads. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of reps: wall seconds, process CPU seconds and BLAS thread-seconds of that run. */
static void time_gptq(const float *W, int64_t out, int64_t in, const double *H, const llmsq_quant_params *p, int reps,
                      double *wall, double *cpu, double *blas)
{
    double *Hs = malloc((size_t)(in * in) * sizeof *Hs);
    *wall = INFINITY;
    for (int r = 0; r < reps; r++) {
        memcpy(Hs, H, (size_t)(in * in) * sizeof *Hs);
        llmsq_qlinear *q;
        g_blas_seconds = 0;
        const double t0 = llmsq_time_now(), c0 = cpu_now();
        if (llmsq_gptq_quantize(W, out, in, Hs, p, &q, NULL) != LLMSQ_OK) {
            fprintf(stderr, "gptq failed: %s\n", llmsq_last_error());
            exit(1);
        }
        const double t = llmsq_time_now() - t0, tc = cpu_now() - c0;
        if (t < *wall) {
            *wall = t;
            *cpu = tc;
            *blas = g_blas_seconds;
        }
        llmsq_qlinear_free(q);
    }
    free(Hs);
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 3;
    int64_t seqs = 128, seqlen = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seqs")) seqs = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--seqlen")) seqlen = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    llmsq_threads_set(threads);
    static const struct {
        const char *name;
        int64_t out, in;
    } shapes[] = {
        {"q_proj/o_proj", 576, 576},
        {"k_proj/v_proj", 192, 576},
        {"gate/up_proj", 1536, 576},
        {"down_proj", 576, 1536},
    };
    double hs576, hs1536;
    double *H576 = make_hessian(576, seqs, seqlen, &hs576), *H1536 = make_hessian(1536, seqs, seqlen, &hs1536);
    printf("GPTQ on SmolLM2-135M shapes, %d threads, H from %lld x %lld synthetic tokens\n", llmsq_threads_get(),
           (long long)seqs, (long long)seqlen);
    printf("Hessian accumulation: %.3f s (in 576), %.3f s (in 1536) for %lld rows\n", hs576, hs1536,
           (long long)(seqs * seqlen));
    printf("%-14s %11s %4s %9s %9s %9s %10s %10s\n", "linear", "[out, in]", "act", "s/linear", "cpu s", "fixed s",
           "BLAS cpu s", "BLAS share");
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int64_t out = shapes[k].out, in = shapes[k].in;
        float *W = malloc((size_t)(out * in) * sizeof *W);
        for (int64_t i = 0; i < out * in; i++) W[i] = 0.02f * frand();
        for (int act = 0; act < 2; act++) {
            llmsq_quant_params p = llmsq_quant_default_params();
            p.act_order = act;
            double wall, cpu, blas, wall1, cpu1, blas1;
            time_gptq(W, out, in, in == 576 ? H576 : H1536, &p, reps, &wall, &cpu, &blas);
            time_gptq(W, 1, in, in == 576 ? H576 : H1536, &p, reps, &wall1, &cpu1, &blas1);
            char shape[32];
            snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)out, (long long)in);
            printf("%-14s %11s %4d %9.4f %9.4f %9.4f %10.4f %9.1f%%\n", shapes[k].name, shape, act, wall, cpu, wall1,
                   blas, 100.0 * blas / cpu);
        }
        free(W);
    }
    free(H576);
    free(H1536);
    return 0;
}
