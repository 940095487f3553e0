/* Instruction-set dispatch, scratch memory, threading policy and the dequantize + sgemm GEMM
 * driver shared by the weight-only layouts. */
#include "kern-impl.h"

#include <cblas.h>
#include <cpuid.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>

/* ---- instruction set ------------------------------------------------------------------------ */

/* cpuid result and current choice, -1 until first use. Relaxed atomics: threads racing on the
 * first call all compute the same value. */
static int g_best = -1;
static int g_isa = -1;

llmsq_kern_isa llmsq_kern_isa_best(void)
{
    int best = __atomic_load_n(&g_best, __ATOMIC_RELAXED);
    if (best < 0) {
        __builtin_cpu_init();
        /* F16C from cpuid leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports
         * knows it; the avx2 test already covers the OS saving the ymm state */
        unsigned a, b, c, d;
        bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
        bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
        best = avx512 ? LLMSQ_KERN_ISA_AVX512 : avx2 ? LLMSQ_KERN_ISA_AVX2 : LLMSQ_KERN_ISA_SCALAR;
        __atomic_store_n(&g_best, best, __ATOMIC_RELAXED);
    }
    return (llmsq_kern_isa)best;
}

llmsq_kern_isa llmsq_kern_isa_get(void)
{
    int isa = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = (int)llmsq_kern_isa_best();
        const char *e = getenv("LLMSQ_KERN_ISA");
        if (e && !strcmp(e, "scalar")) isa = LLMSQ_KERN_ISA_SCALAR;
        if (e && !strcmp(e, "avx2") && isa > LLMSQ_KERN_ISA_AVX2) isa = LLMSQ_KERN_ISA_AVX2;
        __atomic_store_n(&g_isa, isa, __ATOMIC_RELAXED);
    }
    return (llmsq_kern_isa)isa;
}

void llmsq_kern_isa_set(llmsq_kern_isa isa)
{
    int best = (int)llmsq_kern_isa_best();
    __atomic_store_n(&g_isa, (int)isa > best ? best : (int)isa, __ATOMIC_RELAXED);
}

const char *llmsq_kern_isa_name(llmsq_kern_isa isa)
{
    switch (isa) {
    case LLMSQ_KERN_ISA_SCALAR: return "scalar";
    case LLMSQ_KERN_ISA_AVX2: return "avx2";
    case LLMSQ_KERN_ISA_AVX512: return "avx512";
    }
    return "?";
}

/* ---- helpers ----------------------------------------------------------------------------------- */

void *kern_alloc(size_t n)
{
    size_t sz = (n + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    void *p = aligned_alloc(64, sz);
    if (p) memset(p, 0, sz);
    return p;
}

bool kern_parallel(double work)
{
    /* A fork/join costs about a microsecond: what 20k-60k multiply-adds take on one core. */
    return work >= 65536.0 && !omp_in_parallel() && omp_get_max_threads() > 1;
}

void kern_prefetch(const void *p, size_t bytes)
{
    if (bytes > KERN_PF_BYTES) bytes = KERN_PF_BYTES;
    for (size_t k = 0; k < bytes; k += 64) __builtin_prefetch((const char *)p + k, 0, 3);
}

bool kern_f16_exact(float f, uint16_t *h)
{
    uint16_t v = llmsq_f32_to_f16(f);
    float back = llmsq_f16_to_f32(v);
    if (h) *h = v;
    /* -0 and +0 both map back to a zero; anything else must round-trip bit for bit */
    return back == f && (back != 0.0f || f == 0.0f);
}

/* ---- GEMM: dequantized f32 tiles + sgemm ------------------------------------------------------ */

llmsq_status kern_gemm_tiles(const void *w, int64_t out, int64_t in, kern_dequant_fn dequant, const float *wf32,
                             int64_t ldw, const float *x, int64_t B, float *y)
{
    LLMSQ_ASSERT(B <= INT_MAX && out <= INT_MAX && in <= INT_MAX && ldw <= INT_MAX);
    /* About 8 tiles per matrix (so two to eight threads balance), 32..256 rows, at most 8 MiB of
     * f32 each: OpenBLAS packs x once per tile, which costs 1/(2 * tile) of the multiply. */
    int64_t tile = kern_round_up((out + 7) / 8, 16);
    tile = tile < 32 ? 32 : tile > 256 ? 256 : tile;
    const int64_t cap = ((int64_t)8 << 20) / (4 * in);
    if (tile > cap) tile = cap < 16 ? 16 : cap / 16 * 16;
    if (tile > out) tile = out;
    const int64_t nt = (out + tile - 1) / tile;
    int nomem = 0;
#pragma omp parallel if (kern_parallel((double)B * (double)out * (double)in))
    {
        /* this thread's OpenBLAS calls run single-threaded (OpenBLAS reads omp_get_max_threads();
         * the setting belongs to this region's implicit task and ends with it) */
        omp_set_num_threads(1);
        float *Wt = dequant ? kern_alloc((size_t)tile * (size_t)in * sizeof(float)) : NULL;
        if (dequant && !Wt) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < nt; t++) {
            if (dequant && !Wt) continue;
            const int64_t o0 = t * tile, n = out - o0 < tile ? out - o0 : tile;
            const float *Wp = Wt;
            int64_t ldb = in;
            if (dequant) dequant(w, o0, o0 + n, Wt);
            else Wp = wf32 + o0 * ldw, ldb = ldw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)n, (int)in, 1.0f, x, (int)in, Wp,
                        (int)ldb, 0.0f, y + o0, (int)out);
        }
        free(Wt);
    }
    if (nomem)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for [%lld, %lld] dequantized tiles", (long long)tile,
                           (long long)in);
    return LLMSQ_OK;
}
