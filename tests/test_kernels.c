/* CPU matmul kernels (eval/kernels/, include/llmsq/kernels.h): every optimized path against its
 * scalar reference over odd shapes, the scalar references against a dequantize-then-double-dot
 * reference, pack round trips, W8A8 integer exactness, 2:4 rejection, thread-count independence,
 * and a check that the comparisons do fail on a one-code error.
 *
 * Tolerances come from the format and the accumulation order, never tuned by hand: with
 * u = 2^-24 and gamma(n) = n u / (1 - n u), any f32 sum of n products (FMA or not, any order)
 * is within gamma(n) * sum |terms| of the exact sum (Higham, Accuracy and Stability, 3.1). Two
 * f32 results are compared with the sum of their bounds. The dequantized weights are exact in
 * f32 (an f16 scale times a 4-bit integer has at most 15 significant bits), so the weights add
 * no error. The int4 GEMV subtracts zero * sum(x) per group, so its terms are
 * |x| * scale * (code + zero) instead of |x w|; W8A8 accumulates in int32 and must be exact. */
#include "testutil.h"

#include "llmsq/kernels.h"

#include <math.h>
#include <string.h>

static const int64_t batches[] = {1, 2, 3, 7, 8, 9, 17};
#define N_BATCHES ((int)(sizeof batches / sizeof batches[0]))

static double gamma_n(double n)
{
    const double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

static float *rand_x(int64_t B, int64_t in)
{
    float *x = malloc((size_t)(B * in) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < B * in; i++) x[i] = (float)tu_nrand();
    return x;
}

static float *alloc_f(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Elements with |y - ref| > tol (tol [n]); prints the first few. A NaN difference counts. */
static int64_t count_bad(const char *what, const float *y, const float *ref, const double *tol, int64_t n, bool quiet)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)ref[i]);
        if (!(d <= tol[i])) {
            if (!quiet && bad < 3)
                fprintf(stderr, "%s: element %lld: %.9g vs %.9g (|diff| %.3g > tol %.3g), seed %llu\n", what,
                        (long long)i, (double)y[i], (double)ref[i], d, tol[i],
                        (unsigned long long)tu_seed_from_env());
            bad++;
        }
    }
    return bad;
}

/* Exact double reference y [B, out] = x W^T and the sums of |x||w| (W [out, in] f32). */
static void ref_double(const float *W, const float *x, int64_t out, int64_t in, int64_t B, float *y, double *absum)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < out; o++) {
            double s = 0, a = 0;
            for (int64_t i = 0; i < in; i++) {
                double t = (double)W[o * in + i] * (double)x[b * in + i];
                s += t;
                a += fabs(t);
            }
            y[b * out + o] = (float)s;
            absum[b * out + o] = a;
        }
}

/* The double reference is rounded once to f32: allow half an ulp of it on top of gamma. */
static void tol_from(const double *absum, const float *ref, int64_t n, double g, double *tol)
{
    for (int64_t i = 0; i < n; i++) tol[i] = g * absum[i] + 0.5 * 0x1p-23 * fabs((double)ref[i]) + 1e-30;
}

/* ---- random canonical quantized linears ------------------------------------------------------- */

static float f16_round(double v) { return llmsq_f16_to_f32(llmsq_f32_to_f16((float)v)); }

static llmsq_qlinear *rand_qlinear(int64_t out, int64_t in, int bits, int64_t gs, bool act_order)
{
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(out, in, bits, gs, LLMSQ_QGRID_MINMAX, act_order, &q), LLMSQ_OK);
    const int maxq = (1 << bits) - 1;
    for (int64_t i = 0; i < out * in; i++) q->codes[i] = (uint8_t)(tu_urand() * (maxq + 1));
    for (int64_t k = 0; k < out * q->n_groups; k++) {
        q->scales[k] = f16_round(0.002 + 0.02 * tu_urand());
        q->zeros[k] = (int32_t)(tu_urand() * (maxq + 1));
    }
    if (act_order) {
        /* a random column order; group of the k-th column of that order = k / gs */
        int64_t *p = malloc((size_t)in * sizeof *p);
        for (int64_t i = 0; i < in; i++) p[i] = i;
        for (int64_t i = in - 1; i > 0; i--) {
            int64_t j = (int64_t)(tu_urand() * (double)(i + 1));
            int64_t t = p[i];
            p[i] = p[j], p[j] = t;
        }
        for (int64_t k = 0; k < in; k++) q->g_idx[p[k]] = (int32_t)(k / q->group_size);
        q->act_order = true;
        free(p);
    }
    return q;
}

static float *dequant(const llmsq_qlinear *q)
{
    float *W = alloc_f(q->out * q->in);
    llmsq_qlinear_dequant(q, W);
    return W;
}

static void assert_qlinear_eq(const llmsq_qlinear *a, const llmsq_qlinear *b)
{
    ck_assert_int_eq(a->out, b->out);
    ck_assert_int_eq(a->in, b->in);
    ck_assert_int_eq(a->bits, b->bits);
    ck_assert_int_eq(a->group_size, b->group_size);
    ck_assert_int_eq(a->n_groups, b->n_groups);
    ck_assert(memcmp(a->codes, b->codes, (size_t)(a->out * a->in)) == 0);
    for (int64_t k = 0; k < a->out * a->n_groups; k++) {
        ck_assert(a->scales[k] == b->scales[k]);
        ck_assert_int_eq(a->zeros[k], b->zeros[k]);
    }
    ck_assert((a->g_idx == NULL) == (b->g_idx == NULL));
    if (a->g_idx) ck_assert(memcmp(a->g_idx, b->g_idx, (size_t)a->in * sizeof *a->g_idx) == 0);
}

/* ---- dense F32 / F16 / BF16 ------------------------------------------------------------------------ */

/* ... and rows longer than 4096 (the 4-row GEMV) with 3 tail rows */
static const int64_t dense_shapes[][2] = {{1, 1},   {13, 15}, {37, 16}, {5, 33},
                                          {29, 100}, {9, 257}, {64, 64}, {7, 4100}};
#define N_DENSE ((int)(sizeof dense_shapes / sizeof dense_shapes[0]))

START_TEST(test_dense_matches_scalar)
{
    static const llmsq_dtype dts[] = {LLMSQ_DTYPE_F32, LLMSQ_DTYPE_F16, LLMSQ_DTYPE_BF16};
    const llmsq_dtype dt = dts[_i % 3];
    tu_rng = tu_seed_from_env() + 11 + (uint64_t)_i;
    for (int s = 0; s < N_DENSE; s++) {
        const int64_t out = dense_shapes[s][0], in = dense_shapes[s][1];
        float *W = rand_x(out, in);
        llmsq_kern_dense *d;
        ck_assert_int_eq(llmsq_kern_dense_pack(W, out, in, dt, &d), LLMSQ_OK);
        float *Wq = alloc_f(out * in); /* the stored weights */
        llmsq_kern_dense_unpack(d, Wq);
        /* F16/BF16 round to nearest (half an ulp: 2^-11, 2^-8 relative); F32 is exact */
        const float half_ulp = dt == LLMSQ_DTYPE_F32 ? 0.0f : dt == LLMSQ_DTYPE_F16 ? 0x1p-11f : 0x1p-8f;
        for (int64_t i = 0; i < out * in; i++) ck_assert(fabsf(Wq[i] - W[i]) <= half_ulp * fabsf(W[i]) + 0x1p-24f);
        for (int bi = 0; bi < N_BATCHES; bi++) {
            const int64_t B = batches[bi], n = B * out;
            float *x = rand_x(B, in), *y = alloc_f(n), *ys = alloc_f(n), *yr = alloc_f(n);
            double *ab = malloc((size_t)n * sizeof *ab), *tol = malloc((size_t)n * sizeof *tol);
            ref_double(Wq, x, out, in, B, yr, ab);
            ck_assert_int_eq(llmsq_kern_dense_matmul(d, x, B, y), LLMSQ_OK);
            ck_assert_int_eq(llmsq_kern_dense_matmul_scalar(d, x, B, ys), LLMSQ_OK);
            char what[96];
            snprintf(what, sizeof what, "dense %s [%lld,%lld] B=%lld", llmsq_dtype_info(dt)->name,
                     (long long)out, (long long)in, (long long)B);
            tol_from(ab, yr, n, gamma_n((double)in), tol);
            ck_assert_int_eq(count_bad(what, ys, yr, tol, n, false), 0); /* scalar vs exact */
            for (int64_t i = 0; i < n; i++) tol[i] = 2 * gamma_n((double)in + 4) * ab[i] + 1e-30;
            ck_assert_int_eq(count_bad(what, y, ys, tol, n, false), 0); /* optimized vs scalar */
            free(x), free(y), free(ys), free(yr), free(ab), free(tol);
        }
        llmsq_kern_dense_free(d);
        free(W), free(Wq);
    }
}
END_TEST

/* ---- W4A16 ------------------------------------------------------------------------------------------ */

/* Pack round trip, scalar vs exact, optimized (GEMV and GEMM by batch) vs scalar. */
static void check_w4(const llmsq_qlinear *q, const char *tag)
{
    llmsq_kern_w4 *w;
    ck_assert_msg(llmsq_kern_w4_pack(q, &w) == LLMSQ_OK, "%s: %s", tag, llmsq_last_error());
    llmsq_qlinear *back;
    ck_assert_int_eq(llmsq_kern_w4_unpack(w, &back), LLMSQ_OK);
    assert_qlinear_eq(q, back); /* round trip */
    llmsq_qlinear_free(back);
    const int64_t out = q->out, in = q->in;
    float *W = dequant(q);
    for (int bi = 0; bi < N_BATCHES; bi++) {
        const int64_t B = batches[bi], n = B * out;
        float *x = rand_x(B, in), *y = alloc_f(n), *ys = alloc_f(n), *yr = alloc_f(n);
        double *ab = malloc((size_t)n * sizeof *ab), *tol = malloc((size_t)n * sizeof *tol);
        ref_double(W, x, out, in, B, yr, ab);
        ck_assert_int_eq(llmsq_kern_w4_matmul_scalar(w, x, B, ys), LLMSQ_OK);
        char what[128];
        snprintf(what, sizeof what, "w4 %s [%lld,%lld] gs=%lld B=%lld scalar", tag, (long long)out, (long long)in,
                 (long long)q->group_size, (long long)B);
        tol_from(ab, yr, n, gamma_n((double)in), tol);
        ck_assert_int_eq(count_bad(what, ys, yr, tol, n, false), 0);
        /* GEMV: terms |x| s (code + zero), plus the per-group flushes; GEMM: |x w| */
        for (int64_t b = 0; b < B; b++)
            for (int64_t o = 0; o < out; o++) {
                double t = 0;
                for (int64_t i = 0; i < in; i++) {
                    int64_t g = llmsq_qlinear_group(q, i);
                    t += fabs((double)x[b * in + i]) * q->scales[o * q->n_groups + g] *
                         (q->codes[o * in + i] + q->zeros[o * q->n_groups + g]);
                }
                double big = B <= LLMSQ_KERN_GEMV_MAX_BATCH ? t : ab[b * out + o];
                const double g = gamma_n((double)in + 2.0 * (double)q->n_groups + 8);
                tol[b * out + o] = g * (big + ab[b * out + o]) + 1e-30;
            }
        /* every optimized instruction set this CPU has (AVX2, and AVX-512 for the int4 GEMV) */
        const llmsq_kern_isa best = llmsq_kern_isa_best();
        for (int isa = LLMSQ_KERN_ISA_AVX2; isa <= (int)best || isa == LLMSQ_KERN_ISA_AVX2; isa++) {
            llmsq_kern_isa_set((llmsq_kern_isa)isa);
            snprintf(what, sizeof what, "w4 %s [%lld,%lld] gs=%lld B=%lld %s", tag, (long long)out, (long long)in,
                     (long long)q->group_size, (long long)B, llmsq_kern_isa_name(llmsq_kern_isa_get()));
            ck_assert_int_eq(llmsq_kern_w4_matmul(w, x, B, y), LLMSQ_OK);
            ck_assert_int_eq(count_bad(what, y, ys, tol, n, false), 0);
        }
        llmsq_kern_isa_set(best);
        free(x), free(y), free(ys), free(yr), free(ab), free(tol);
    }
    free(W);
    llmsq_kern_w4_free(w);
}

START_TEST(test_w4_matches_scalar)
{
    /* group sizes: multiples of 8 and per channel; in: whole groups, partial last group, odd */
    static const int64_t gss[] = {8, 16, 32, 40, 64, 128, 256, -1};
    const int64_t gs = gss[_i % 8];
    tu_rng = tu_seed_from_env() + 200 + (uint64_t)_i;
    const int64_t g = gs > 0 ? gs : 48;
    const int64_t ins[] = {g, 3 * g, 5 * g + 5, 2 * g + 7};
    const int64_t outs[] = {1, 3, 13, 37};
    for (int k = 0; k < 4; k++) {
        llmsq_qlinear *q = rand_qlinear(outs[k], ins[k], k == 3 ? 3 : 4, gs, false);
        check_w4(q, k == 3 ? "3-bit" : "4-bit");
        llmsq_qlinear_free(q);
    }
}
END_TEST

START_TEST(test_w4_act_order)
{
    tu_rng = tu_seed_from_env() + 300;
    llmsq_qlinear *q = rand_qlinear(9, 3 * 128 + 17, 4, 128, true); /* AVX-512 path where there is one */
    check_w4(q, "act-order");
    llmsq_qlinear_free(q);
    q = rand_qlinear(11, 4 * 32 + 9, 4, 32, true);
    check_w4(q, "act-order");
    llmsq_kern_w4 *w;
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_OK);
    ck_assert_ptr_nonnull(w->perm);
    llmsq_kern_w4_free(w);
    /* g_idx equal to i / gs packs without a permutation */
    for (int64_t i = 0; i < q->in; i++) q->g_idx[i] = (int32_t)(i / q->group_size);
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_OK);
    ck_assert_ptr_null(w->perm);
    llmsq_kern_w4_free(w);
    /* groups of unequal sizes cannot be gathered into contiguous groups */
    q->g_idx[0] = 1;
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_ptr_null(w);
    llmsq_qlinear_free(q);
}
END_TEST

START_TEST(test_w4_unsupported)
{
    tu_rng = tu_seed_from_env() + 310;
    llmsq_kern_w4 *w;
    llmsq_qlinear *q = rand_qlinear(4, 48, 4, 12, false); /* 4 groups of 12 */
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert(strstr(llmsq_last_error(), "multiple of 8") != NULL);
    llmsq_qlinear_free(q);
    q = rand_qlinear(4, 44, 4, -1, false); /* per channel: any width */
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_OK);
    llmsq_kern_w4_free(w);
    q->scales[3] = 0.1f; /* not an f16 value */
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    llmsq_qlinear_free(q);
    q = rand_qlinear(4, 64, 8, 32, false);
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    llmsq_qlinear_free(q);
}
END_TEST

/* ---- W8A8 ------------------------------------------------------------------------------------------ */

static llmsq_qlinear *rand_w8(int64_t out, int64_t in, bool extreme)
{
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(out, in, 8, -1, LLMSQ_QGRID_ABSMAX, false, &q), LLMSQ_OK);
    for (int64_t i = 0; i < out * in; i++) q->codes[i] = extreme ? 0 : (uint8_t)(tu_urand() * 256);
    for (int64_t o = 0; o < out; o++) {
        q->scales[o] = (float)(0.001 + 0.01 * tu_urand());
        q->zeros[o] = 128;
    }
    q->act_bits = 8;
    return q;
}

static void check_w8_exact(const llmsq_kern_w8 *w, const int8_t *xq, int64_t B, const char *tag)
{
    const int64_t out = w->out, in = w->in;
    int32_t *acc = malloc((size_t)(B * out) * sizeof *acc), *accs = malloc((size_t)(B * out) * sizeof *accs);
    ck_assert_int_eq(llmsq_kern_w8_matmul_i32(w, xq, B, acc), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_w8_matmul_i32_scalar(w, xq, B, accs), LLMSQ_OK);
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < out; o++) {
            int64_t r = 0;
            for (int64_t i = 0; i < in; i++) r += (int64_t)w->w[o * w->in_pad + i] * (int64_t)xq[b * in + i];
            ck_assert_msg(acc[b * out + o] == r && accs[b * out + o] == r,
                          "w8 %s [%lld,%lld] B=%lld (%lld,%lld): %d / %d vs int64 %lld (seed %llu)", tag,
                          (long long)out, (long long)in, (long long)B, (long long)b, (long long)o,
                          acc[b * out + o], accs[b * out + o], (long long)r, (unsigned long long)tu_seed_from_env());
        }
    free(acc), free(accs);
}

START_TEST(test_w8_exact)
{
    static const int64_t shapes[][2] = {{1, 1}, {13, 31}, {37, 33}, {6, 100}, {19, 513}, {5, 4100}};
    tu_rng = tu_seed_from_env() + 400;
    for (int s = 0; s < 6; s++) {
        const int64_t out = shapes[s][0], in = shapes[s][1];
        for (int extreme = 0; extreme < 2; extreme++) {
            llmsq_qlinear *q = rand_w8(out, in, extreme);
            llmsq_kern_w8 *w;
            ck_assert_int_eq(llmsq_kern_w8_pack(q, &w), LLMSQ_OK);
            llmsq_qlinear *back;
            ck_assert_int_eq(llmsq_kern_w8_unpack(w, &back), LLMSQ_OK);
            assert_qlinear_eq(q, back);
            ck_assert_int_eq(back->act_bits, 8);
            llmsq_qlinear_free(back);
            for (int bi = 0; bi < N_BATCHES; bi++) {
                const int64_t B = batches[bi];
                int8_t *xq = malloc((size_t)(B * in));
                /* extreme: every weight -128 and every activation -128, the largest |acc| */
                for (int64_t i = 0; i < B * in; i++) xq[i] = extreme ? -128 : (int8_t)(tu_urand() * 256 - 128);
                check_w8_exact(w, xq, B, extreme ? "extreme" : "random");
                free(xq);
            }
            llmsq_kern_w8_free(w);
            llmsq_qlinear_free(q);
        }
    }
}
END_TEST

START_TEST(test_w8_float_path)
{
    tu_rng = tu_seed_from_env() + 410;
    static const int64_t shapes[][2] = {{13, 31}, {37, 64}, {7, 257}};
    for (int s = 0; s < 3; s++) {
        for (int stat = 0; stat < 2; stat++) {
            const int64_t out = shapes[s][0], in = shapes[s][1];
            llmsq_qlinear *q = rand_w8(out, in, false);
            q->act_static = stat;
            q->act_scale = stat ? 0.011f : 0.0f; /* static: some activations clamp at +-127/-128 */
            llmsq_kern_w8 *w;
            ck_assert_int_eq(llmsq_kern_w8_pack(q, &w), LLMSQ_OK);
            for (int bi = 0; bi < N_BATCHES; bi++) {
                const int64_t B = batches[bi], n = B * out;
                float *x = rand_x(B, in), *y = alloc_f(n), *ys = alloc_f(n);
                ck_assert_int_eq(llmsq_kern_w8_matmul(w, x, B, y), LLMSQ_OK);
                ck_assert_int_eq(llmsq_kern_w8_matmul_scalar(w, x, B, ys), LLMSQ_OK);
                for (int64_t i = 0; i < n; i++) ck_assert(y[i] == ys[i]); /* same integers, same scaling */
                /* scalar vs the double dot of the dequantized weights and quantized activations:
                 * (float)acc and two products round three times */
                int8_t *xq = malloc((size_t)in);
                for (int64_t b = 0; b < B; b++) {
                    float sx = llmsq_act_quant_i8(x + b * in, in, stat ? q->act_scale : 0, xq);
                    for (int64_t o = 0; o < out; o++) {
                        int64_t a = 0;
                        for (int64_t i = 0; i < in; i++) a += ((int64_t)q->codes[o * in + i] - 128) * xq[i];
                        const double r = (double)a * (double)sx * (double)q->scales[o];
                        ck_assert_msg(fabs(ys[b * out + o] - r) <= 4 * 0x1p-24 * fabs(r) + 1e-30,
                                      "w8 float [%lld,%lld] B=%lld: %.9g vs %.9g", (long long)out, (long long)in,
                                      (long long)B, (double)ys[b * out + o], r);
                    }
                }
                free(xq), free(x), free(y), free(ys);
            }
            llmsq_kern_w8_free(w);
            llmsq_qlinear_free(q);
        }
    }
}
END_TEST

START_TEST(test_act_quant_identical)
{
    tu_rng = tu_seed_from_env() + 420;
    static const int64_t ns[] = {1, 7, 31, 32, 33, 100, 577};
    for (int k = 0; k < 7; k++) {
        const int64_t n = ns[k];
        float *x = rand_x(1, n);
        /* exact ties of x / s: amax = 127 gives s = 1, so x = m + 0.5 rounds half to even */
        x[0] = 127.0f;
        for (int64_t i = 1; i < n; i += 3) x[i] = (float)((int)(tu_urand() * 200) - 100) + 0.5f;
        int8_t *a = malloc((size_t)n), *b = malloc((size_t)n);
        for (int stat = 0; stat < 3; stat++) {
            const float ss = stat == 0 ? 0.0f : stat == 1 ? 0.3f : -1.0f; /* dynamic, clamping static, dynamic */
            float sa = llmsq_kern_act_quant_i8(x, n, ss, a), sb = llmsq_act_quant_i8(x, n, ss, b);
            ck_assert(sa == sb);
            ck_assert(memcmp(a, b, (size_t)n) == 0);
        }
        memset(x, 0, (size_t)n * sizeof *x); /* all zero: s = 1 */
        ck_assert(llmsq_kern_act_quant_i8(x, n, 0, a) == 1.0f);
        free(x), free(a), free(b);
    }
}
END_TEST

START_TEST(test_w8_unsupported)
{
    tu_rng = tu_seed_from_env() + 430;
    llmsq_kern_w8 *w;
    llmsq_qlinear *q = rand_w8(3, 40, false);
    q->zeros[1] = 120;
    ck_assert_int_eq(llmsq_kern_w8_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_ptr_null(w);
    llmsq_qlinear_free(q);
    q = rand_qlinear(3, 64, 8, 32, false);
    ck_assert_int_eq(llmsq_kern_w8_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    llmsq_qlinear_free(q);
    q = rand_qlinear(3, 64, 4, -1, false);
    ck_assert_int_eq(llmsq_kern_w8_pack(q, &w), LLMSQ_STATUS_UNSUPPORTED);
    llmsq_qlinear_free(q);
}
END_TEST

/* ---- 2:4 sparse ----------------------------------------------------------------------------------- */

/* A 2:4 f32 matrix: groups with 0, 1 or 2 nonzeros at random offsets (the last group may be
 * partial). */
static float *rand_24(int64_t out, int64_t in)
{
    float *W = alloc_f(out * in);
    for (int64_t o = 0; o < out; o++)
        for (int64_t c = 0; c < in; c += 4) {
            const int n = in - c < 4 ? (int)(in - c) : 4;
            const double u = tu_urand();
            const int keep = u < 0.1 ? 0 : u < 0.2 ? 1 : 2;
            for (int t = 0; t < keep && t < n; t++) {
                int off = (int)(tu_urand() * n);
                while (W[o * in + c + off] != 0.0f) off = (off + 1) % n;
                W[o * in + c + off] = (float)tu_nrand();
            }
        }
    return W;
}

static const int64_t s24_shapes[][2] = {{1, 4}, {13, 31}, {37, 32}, {5, 65}, {29, 100}, {3, 255}, {16, 512}};
#define N_S24 ((int)(sizeof s24_shapes / sizeof s24_shapes[0]))

START_TEST(test_s24_matches_scalar)
{
    tu_rng = tu_seed_from_env() + 500;
    for (int s = 0; s < N_S24; s++) {
        const int64_t out = s24_shapes[s][0], in = s24_shapes[s][1];
        float *W = rand_24(out, in), *Wh = alloc_f(out * in), *Wu = alloc_f(out * in);
        for (int64_t i = 0; i < out * in; i++) Wh[i] = f16_round(W[i]);
        llmsq_kern_s24 *sp;
        ck_assert_int_eq(llmsq_kern_s24_pack(W, out, in, &sp), LLMSQ_OK);
        llmsq_kern_s24_unpack(sp, Wu);
        ck_assert(memcmp(Wu, Wh, (size_t)(out * in) * sizeof *Wu) == 0); /* round trip (f16 values) */
        for (int bi = 0; bi < N_BATCHES; bi++) {
            const int64_t B = batches[bi], n = B * out;
            float *x = rand_x(B, in), *y = alloc_f(n), *ys = alloc_f(n), *yr = alloc_f(n);
            double *ab = malloc((size_t)n * sizeof *ab), *tol = malloc((size_t)n * sizeof *tol);
            ref_double(Wh, x, out, in, B, yr, ab);
            ck_assert_int_eq(llmsq_kern_s24_matmul_scalar(sp, x, B, ys), LLMSQ_OK);
            char what[96];
            snprintf(what, sizeof what, "s24 [%lld,%lld] B=%lld scalar", (long long)out, (long long)in, (long long)B);
            tol_from(ab, yr, n, gamma_n((double)in / 2 + 2), tol); /* the kept products */
            ck_assert_int_eq(count_bad(what, ys, yr, tol, n, false), 0);
            for (int64_t i = 0; i < n; i++) tol[i] = 2 * gamma_n((double)in + 4) * ab[i] + 1e-30;
            const llmsq_kern_isa best = llmsq_kern_isa_best();
            for (int isa = LLMSQ_KERN_ISA_AVX2; isa <= (int)best || isa == LLMSQ_KERN_ISA_AVX2; isa++) {
                llmsq_kern_isa_set((llmsq_kern_isa)isa);
                snprintf(what, sizeof what, "s24 [%lld,%lld] B=%lld %s", (long long)out, (long long)in, (long long)B,
                         llmsq_kern_isa_name(llmsq_kern_isa_get()));
                ck_assert_int_eq(llmsq_kern_s24_matmul(sp, x, B, y), LLMSQ_OK);
                ck_assert_int_eq(count_bad(what, y, ys, tol, n, false), 0);
            }
            llmsq_kern_isa_set(best);
            free(x), free(y), free(ys), free(yr), free(ab), free(tol);
        }
        llmsq_kern_s24_free(sp);
        free(W), free(Wh), free(Wu);
    }
}
END_TEST

START_TEST(test_s24_rejects_dense)
{
    tu_rng = tu_seed_from_env() + 510;
    float *W = rand_24(6, 37);
    llmsq_kern_s24 *sp;
    /* three nonzeros in columns 8..11 of row 4 */
    W[4 * 37 + 8] = 1, W[4 * 37 + 9] = 2, W[4 * 37 + 11] = 3;
    ck_assert_int_eq(llmsq_kern_s24_pack(W, 6, 37, &sp), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(sp);
    ck_assert(strstr(llmsq_last_error(), "row 4") != NULL);
    free(W);
    /* the partial last group (columns 36..38 of 39) too */
    W = rand_24(2, 39);
    W[39 + 36] = 1, W[39 + 37] = 1, W[39 + 38] = 1;
    ck_assert_int_eq(llmsq_kern_s24_pack(W, 2, 39, &sp), LLMSQ_STATUS_ARG);
    free(W);
}
END_TEST

/* A canonical linear whose dequantized matrix is 2:4: code = zero point where pruned. */
static llmsq_qlinear *rand_qlinear_24(int64_t out, int64_t in, int bits, int64_t gs)
{
    llmsq_qlinear *q = rand_qlinear(out, in, bits, gs, false);
    float *W = rand_24(out, in);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            const int64_t g = i / q->group_size;
            uint8_t *c = &q->codes[o * in + i];
            if (W[o * in + i] == 0.0f) *c = (uint8_t)q->zeros[o * q->n_groups + g];
            else if (*c == q->zeros[o * q->n_groups + g]) *c = (uint8_t)((*c + 1) % (1 << bits));
        }
    free(W);
    return q;
}

START_TEST(test_s24w4_matches_scalar)
{
    static const int64_t gss[] = {16, 32, 128, -1};
    const int64_t gs = gss[_i];
    tu_rng = tu_seed_from_env() + 600 + (uint64_t)_i;
    const int64_t g = gs > 0 ? gs : 40;
    const int64_t shapes[][2] = {{1, g}, {13, 3 * g}, {37, 2 * g + 5}, {6, 5 * g + 13}};
    for (int s = 0; s < 4; s++) {
        const int64_t out = shapes[s][0], in = shapes[s][1];
        llmsq_qlinear *q = rand_qlinear_24(out, in, 4, gs);
        llmsq_kern_s24w4 *sp;
        ck_assert_msg(llmsq_kern_s24w4_pack(q, &sp) == LLMSQ_OK, "%s", llmsq_last_error());
        llmsq_qlinear *back;
        ck_assert_int_eq(llmsq_kern_s24w4_unpack(sp, &back), LLMSQ_OK);
        assert_qlinear_eq(q, back);
        llmsq_qlinear_free(back);
        float *W = dequant(q);
        for (int bi = 0; bi < N_BATCHES; bi++) {
            const int64_t B = batches[bi], n = B * out;
            float *x = rand_x(B, in), *y = alloc_f(n), *ys = alloc_f(n), *yr = alloc_f(n);
            double *ab = malloc((size_t)n * sizeof *ab), *tol = malloc((size_t)n * sizeof *tol);
            ref_double(W, x, out, in, B, yr, ab);
            ck_assert_int_eq(llmsq_kern_s24w4_matmul(sp, x, B, y), LLMSQ_OK);
            ck_assert_int_eq(llmsq_kern_s24w4_matmul_scalar(sp, x, B, ys), LLMSQ_OK);
            char what[96];
            snprintf(what, sizeof what, "s24w4 [%lld,%lld] gs=%lld B=%lld", (long long)out, (long long)in,
                     (long long)gs, (long long)B);
            tol_from(ab, yr, n, gamma_n((double)in / 2 + 2), tol);
            ck_assert_int_eq(count_bad(what, ys, yr, tol, n, false), 0);
            /* per group: sum of (code - zero) x, then scale: one more rounding per group */
            for (int64_t i = 0; i < n; i++)
                tol[i] = 2 * gamma_n((double)in + 2.0 * (double)q->n_groups + 4) * ab[i] + 1e-30;
            ck_assert_int_eq(count_bad(what, y, ys, tol, n, false), 0);
            free(x), free(y), free(ys), free(yr), free(ab), free(tol);
        }
        free(W);
        llmsq_kern_s24w4_free(sp);
        llmsq_qlinear_free(q);
    }
}
END_TEST

START_TEST(test_s24w4_rejects)
{
    tu_rng = tu_seed_from_env() + 610;
    llmsq_qlinear *q = rand_qlinear_24(4, 64, 4, 32);
    llmsq_kern_s24w4 *sp;
    /* row 2, columns 4..6 nonzero */
    for (int c = 4; c < 7; c++) q->codes[2 * 64 + c] = (uint8_t)((q->zeros[2 * 2] + 1) % 16);
    ck_assert_int_eq(llmsq_kern_s24w4_pack(q, &sp), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(sp);
    ck_assert(strstr(llmsq_last_error(), "row 2") != NULL);
    llmsq_qlinear_free(q);
    q = rand_qlinear_24(4, 64, 4, 8); /* group size 8 */
    ck_assert_int_eq(llmsq_kern_s24w4_pack(q, &sp), LLMSQ_STATUS_UNSUPPORTED);
    llmsq_qlinear_free(q);
}
END_TEST

/* ---- threads, instruction sets, and the tests' power to fail --------------------------------------- */

typedef struct all_layouts {
    llmsq_kern_dense *f32, *f16, *bf16;
    llmsq_kern_w4 *w4;
    llmsq_kern_w8 *w8;
    llmsq_kern_s24 *s24;
    llmsq_kern_s24w4 *s24w4;
} all_layouts;

static void all_pack(all_layouts *L, int64_t out, int64_t in)
{
    float *W = rand_x(out, in), *W24 = rand_24(out, in);
    ck_assert_int_eq(llmsq_kern_dense_pack(W, out, in, LLMSQ_DTYPE_F32, &L->f32), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_dense_pack(W, out, in, LLMSQ_DTYPE_F16, &L->f16), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_dense_pack(W, out, in, LLMSQ_DTYPE_BF16, &L->bf16), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_s24_pack(W24, out, in, &L->s24), LLMSQ_OK);
    llmsq_qlinear *q = rand_qlinear(out, in, 4, 32, false), *q8 = rand_w8(out, in, false),
                  *q24 = rand_qlinear_24(out, in, 4, 32);
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &L->w4), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_w8_pack(q8, &L->w8), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_s24w4_pack(q24, &L->s24w4), LLMSQ_OK);
    llmsq_qlinear_free(q), llmsq_qlinear_free(q8), llmsq_qlinear_free(q24);
    free(W), free(W24);
}

static void all_free(all_layouts *L)
{
    llmsq_kern_dense_free(L->f32), llmsq_kern_dense_free(L->f16), llmsq_kern_dense_free(L->bf16);
    llmsq_kern_w4_free(L->w4), llmsq_kern_w8_free(L->w8);
    llmsq_kern_s24_free(L->s24), llmsq_kern_s24w4_free(L->s24w4);
}

/* y [7][B * out] for the seven layouts. */
static void all_run(const all_layouts *L, const float *x, int64_t B, float *y[7], bool scalar)
{
    if (scalar) {
        ck_assert_int_eq(llmsq_kern_dense_matmul_scalar(L->f32, x, B, y[0]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_dense_matmul_scalar(L->f16, x, B, y[1]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_dense_matmul_scalar(L->bf16, x, B, y[2]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_w4_matmul_scalar(L->w4, x, B, y[3]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_w8_matmul_scalar(L->w8, x, B, y[4]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_s24_matmul_scalar(L->s24, x, B, y[5]), LLMSQ_OK);
        ck_assert_int_eq(llmsq_kern_s24w4_matmul_scalar(L->s24w4, x, B, y[6]), LLMSQ_OK);
        return;
    }
    ck_assert_int_eq(llmsq_kern_dense_matmul(L->f32, x, B, y[0]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_dense_matmul(L->f16, x, B, y[1]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_dense_matmul(L->bf16, x, B, y[2]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_w4_matmul(L->w4, x, B, y[3]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_w8_matmul(L->w8, x, B, y[4]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_s24_matmul(L->s24, x, B, y[5]), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_s24w4_matmul(L->s24w4, x, B, y[6]), LLMSQ_OK);
}

START_TEST(test_thread_count_independent)
{
    tu_rng = tu_seed_from_env() + 700;
    const int64_t out = 301, in = 544; /* enough work to fork */
    all_layouts L;
    all_pack(&L, out, in);
    static const int64_t Bs[] = {1, 4, 17};
    for (int bi = 0; bi < 3; bi++) {
        const int64_t B = Bs[bi], n = B * out;
        float *x = rand_x(B, in), *y1[7], *y3[7];
        for (int k = 0; k < 7; k++) y1[k] = alloc_f(n), y3[k] = alloc_f(n);
        llmsq_threads_set(1);
        all_run(&L, x, B, y1, false);
        llmsq_threads_set(3);
        all_run(&L, x, B, y3, false);
        for (int k = 0; k < 7; k++)
            ck_assert_msg(memcmp(y1[k], y3[k], (size_t)n * sizeof(float)) == 0,
                          "layout %d, B=%lld: 1 and 3 threads differ", k, (long long)B);
        for (int k = 0; k < 7; k++) free(y1[k]), free(y3[k]);
        free(x);
    }
    llmsq_threads_set(0);
    all_free(&L);
}
END_TEST

START_TEST(test_isa_scalar_fallback)
{
    tu_rng = tu_seed_from_env() + 710;
    const int64_t out = 45, in = 96;
    all_layouts L;
    all_pack(&L, out, in);
    const llmsq_kern_isa best = llmsq_kern_isa_best();
    fprintf(stderr, "test_kernels: best instruction set %s\n", llmsq_kern_isa_name(best));
    llmsq_kern_isa_set(LLMSQ_KERN_ISA_SCALAR);
    ck_assert_int_eq(llmsq_kern_isa_get(), LLMSQ_KERN_ISA_SCALAR);
    /* GEMV without AVX2 is the scalar reference itself, bit for bit */
    float *x = rand_x(3, in), *y[7], *ys[7];
    for (int k = 0; k < 7; k++) y[k] = alloc_f(3 * out), ys[k] = alloc_f(3 * out);
    all_run(&L, x, 3, y, false);
    all_run(&L, x, 3, ys, true);
    for (int k = 0; k < 7; k++) ck_assert(memcmp(y[k], ys[k], (size_t)(3 * out) * sizeof(float)) == 0);
    llmsq_kern_isa_set(best);
    ck_assert_int_eq(llmsq_kern_isa_get(), best);
    for (int k = 0; k < 7; k++) free(y[k]), free(ys[k]);
    free(x);
    all_free(&L);
}
END_TEST

/* The comparisons above must catch a single code off by one: change one weight of the packed
 * layout after computing the reference and expect the same check to report it. */
START_TEST(test_checks_can_fail)
{
    tu_rng = tu_seed_from_env() + 720;
    const int64_t out = 8, in = 64, B = 1;
    float *x = rand_x(B, in), *y = alloc_f(out), *ys = alloc_f(out);
    double tol[8];
    /* int4: column 17 of row 5 (block 0, word 1, nibble 2) gets code + 1. x[17] is made large
     * enough to stand out against the bound, as activations of real models do. */
    llmsq_qlinear *q = rand_qlinear(out, in, 4, 32, false);
    for (int64_t k = 0; k < out * q->n_groups; k++) q->zeros[k] = 8;
    for (int64_t i = 0; i < out * in; i++) q->codes[i] = (uint8_t)(4 + (i % 8)); /* room for +1 */
    x[17] = 3.0f;
    llmsq_kern_w4 *w;
    ck_assert_int_eq(llmsq_kern_w4_pack(q, &w), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_w4_matmul_scalar(w, x, B, ys), LLMSQ_OK);
    for (int64_t o = 0; o < out; o++) {
        double t = 0;
        for (int64_t i = 0; i < in; i++)
            t += fabs((double)x[i]) * q->scales[o * q->n_groups + i / 32] * (q->codes[o * in + i] + 8);
        tol[o] = 2 * gamma_n((double)in + 2.0 * (double)q->n_groups + 8) * t;
    }
    ck_assert_int_eq(llmsq_kern_w4_matmul(w, x, B, y), LLMSQ_OK);
    ck_assert_int_eq(count_bad("w4 intact", y, ys, tol, out, false), 0);
    w->codes[llmsq_kern_w4_word(w, 5, 0) + 1] += 1u << 8;
    ck_assert_int_eq(llmsq_kern_w4_matmul(w, x, B, y), LLMSQ_OK);
    ck_assert_int_eq(count_bad("w4 mutated", y, ys, tol, out, true), 1);
    llmsq_kern_w4_free(w);
    llmsq_qlinear_free(q);

    /* 2:4: the second kept offset of group 0 of row 3 moves to a free column */
    float *W = rand_24(out, in), *Wu = alloc_f(out * in);
    llmsq_kern_s24 *sp;
    ck_assert_int_eq(llmsq_kern_s24_pack(W, out, in, &sp), LLMSQ_OK);
    uint16_t *v = &sp->values[3 * (sp->in_pad / 2)];
    v[0] = llmsq_f32_to_f16(1.0f), v[1] = llmsq_f32_to_f16(2.0f);
    llmsq_kern_s24_unpack(sp, Wu);
    for (int64_t i = 0; i < in; i++) x[i] = 1.0f + (float)i; /* distinct activations */
    for (int64_t o = 0; o < out; o++) {
        double ab = 0;
        for (int64_t i = 0; i < in; i++) ab += fabs((double)Wu[o * in + i] * x[i]);
        tol[o] = 2 * gamma_n((double)in + 4) * ab;
    }
    ck_assert_int_eq(llmsq_kern_s24_matmul_scalar(sp, x, B, ys), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kern_s24_matmul(sp, x, B, y), LLMSQ_OK);
    ck_assert_int_eq(count_bad("s24 intact", y, ys, tol, out, false), 0);
    uint8_t *m = &sp->meta[3 * (sp->in_pad / 8)];
    const int i0 = *m & 3, i1 = (*m >> 2) & 3;
    int f = 0;
    while (f == i0 || f == i1) f++;
    *m = (uint8_t)((*m & 0xf0) | (i0 < f ? (i0 | f << 2) : (f | i0 << 2)));
    ck_assert_int_eq(llmsq_kern_s24_matmul(sp, x, B, y), LLMSQ_OK);
    ck_assert_int_eq(count_bad("s24 mutated", y, ys, tol, out, true), 1);
    llmsq_kern_s24_free(sp);
    free(W), free(Wu), free(x), free(y), free(ys);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_dense_matches_scalar, 0, 3);
    tcase_add_loop_test(tc, test_w4_matches_scalar, 0, 8);
    tcase_add_test(tc, test_w4_act_order);
    tcase_add_test(tc, test_w4_unsupported);
    tcase_add_test(tc, test_w8_exact);
    tcase_add_test(tc, test_w8_float_path);
    tcase_add_test(tc, test_act_quant_identical);
    tcase_add_test(tc, test_w8_unsupported);
    tcase_add_test(tc, test_s24_matches_scalar);
    tcase_add_test(tc, test_s24_rejects_dense);
    tcase_add_loop_test(tc, test_s24w4_matches_scalar, 0, 4);
    tcase_add_test(tc, test_s24w4_rejects);
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_test(tc, test_isa_scalar_fallback);
    tcase_add_test(tc, test_checks_can_fail);
    suite_add_tcase(s, tc);
    fprintf(stderr, "test_kernels: seed %llu (LLMSQ_TEST_SEED)\n", (unsigned long long)tu_seed_from_env());
    return tu_run_suite(s);
}
