/* SparseGPT against an independent scalar reference (prune/sparsegpt.c). */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* ---- seeded data ------------------------------------------------------------------------ */


static void seed(uint64_t s)
{
    const char *env = getenv("LLMSQ_TEST_SEED");
    tu_rng = (env ? strtoull(env, NULL, 0) : 20240607) + s;
}

static float *make_weights(int64_t out, int64_t in)
{
    float *W = malloc((size_t)(out * in) * sizeof *W);
    ck_assert_ptr_nonnull(W);
    for (int64_t k = 0; k < out * in; k++) W[k] = (float)(0.05 * tu_nrand() * (tu_urand() < 0.01 ? 10 : 1));
    return W;
}

static double *dup_d(const double *a, int64_t n)
{
    double *b = malloc((size_t)n * sizeof *b);
    ck_assert_ptr_nonnull(b);
    memcpy(b, a, (size_t)n * sizeof *b);
    return b;
}

static float *dup_f(const float *a, int64_t n)
{
    float *b = malloc((size_t)n * sizeof *b);
    ck_assert_ptr_nonnull(b);
    memcpy(b, a, (size_t)n * sizeof *b);
    return b;
}

/* ---- scalar reference: sparsegpt.py fasterprune, plain loops, full Hinv ------------------- */

/* Lower Cholesky in place (row-major); false when not positive definite. */
static bool ref_chol(double *A, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0)) return false;
        d = sqrt(d);
        A[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / d;
        }
        for (int64_t i = 0; i < j; i++) A[i * n + j] = 0;
    }
    return true;
}

/* U with (H + damp mean I)^-1 = U^T U: Cholesky, explicit inverse, Cholesky again (as
 * torch.linalg.cholesky, cholesky_inverse, cholesky(upper=True)). */
static double *ref_hinv_upper(const double *H0, int64_t n, double damp, bool *dead)
{
    double *H = dup_d(H0, n * n), *Inv = calloc((size_t)(n * n), sizeof *Inv), *col = malloc((size_t)n * sizeof *col);
    ck_assert(Inv && col);
    double mean = 0;
    for (int64_t j = 0; j < n; j++) {
        dead[j] = H[j * n + j] == 0;
        if (dead[j]) H[j * n + j] = 1;
        mean += H[j * n + j];
    }
    mean /= (double)n;
    for (int64_t j = 0; j < n; j++) H[j * n + j] += damp * mean;
    ck_assert(ref_chol(H, n));
    for (int64_t c = 0; c < n; c++) { /* solve L L^T x = e_c */
        for (int64_t i = 0; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int64_t k = 0; k < i; k++) s -= H[i * n + k] * col[k];
            col[i] = s / H[i * n + i];
        }
        for (int64_t i = n - 1; i >= 0; i--) {
            double s = col[i];
            for (int64_t k = i + 1; k < n; k++) s -= H[k * n + i] * Inv[k * n + c];
            Inv[i * n + c] = s / H[i * n + i];
        }
    }
    ck_assert(ref_chol(Inv, n)); /* Inv = L2 L2^T, U = L2^T */
    double *U = calloc((size_t)(n * n), sizeof *U);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) U[i * n + j] = Inv[j * n + i];
    free(H);
    free(Inv);
    free(col);
    return U;
}

typedef struct refkey {
    double  v;
    int64_t i;
} refkey;

static int cmp_refkey(const void *pa, const void *pb)
{
    const refkey *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The reference sweep; W [out, n] in double (updated to the result), codes/scales/zeros when
 * p->quantize (group_size G). mask_out [out, n]: 1 where removed. Returns the loss. */
static double ref_sparsegpt(double *W, int64_t out, int64_t n, const double *H, const llmsq_prune_params *p,
                            uint8_t *codes, float *scales, int32_t *zeros, unsigned char *mask_out)
{
    bool *dead = malloc((size_t)n * sizeof *dead);
    double *U = ref_hinv_upper(H, n, p->damp, dead);
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < n; j++)
            if (dead[j]) W[o * n + j] = 0;
    const int M = p->nm_m, N = p->nm_n;
    int64_t bs = p->block_size < n ? p->block_size : n;
    if (M > 0 && bs % M && bs < n) bs = bs < M ? M : bs - bs % M;
    const int64_t G = p->quant.group_size == -1 || p->quant.group_size > n ? n : p->quant.group_size;
    const int64_t ng = (n + G - 1) / G;
    const int maxq = (1 << p->quant.bits) - 1;
    double *W1 = malloc((size_t)(out * bs) * sizeof *W1), *Err = malloc((size_t)(out * bs) * sizeof *Err);
    unsigned char *mask = calloc((size_t)(out * bs), 1);
    refkey *keys = malloc((size_t)(out * bs) * sizeof *keys);
    double loss = 0;
    for (int64_t i1 = 0; i1 < n; i1 += bs) {
        const int64_t i2 = i1 + bs < n ? i1 + bs : n, cnt = i2 - i1;
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < cnt; i++) W1[o * cnt + i] = W[o * n + i1 + i];
        memset(mask, 0, (size_t)(out * cnt));
        if (p->quantize)
            for (int64_t j0 = ((i1 + G - 1) / G) * G; j0 < i2; j0 += G)
                for (int64_t o = 0; o < out; o++) { /* on the outer W, as GPTQ's reference */
                    double lo = W[o * n + j0], hi = lo;
                    for (int64_t k = j0; k < j0 + G && k < n; k++) {
                        lo = fmin(lo, W[o * n + k]);
                        hi = fmax(hi, W[o * n + k]);
                    }
                    /* the grid recipe of quant/grid.h, MINMAX F32 scales (the tests use those) */
                    ck_assert_int_eq(p->quant.grid, LLMSQ_QGRID_MINMAX);
                    ck_assert_int_eq(p->quant.scale_dtype, LLMSQ_DTYPE_F32);
                    lo = fmin(0, lo);
                    hi = fmax(0, hi);
                    double s = (hi - lo) / maxq;
                    float s32 = hi == lo ? 1.0f : (float)s;
                    double z = nearbyint(-lo / (double)s32);
                    z = z < 0 ? 0 : z > maxq ? maxq : z;
                    scales[o * ng + j0 / G] = s32;
                    zeros[o * ng + j0 / G] = (int32_t)z;
                }
        if (M == 0) {
            for (int64_t o = 0; o < out; o++)
                for (int64_t i = 0; i < cnt; i++) {
                    const double w = W1[o * cnt + i], d = U[(i1 + i) * n + i1 + i];
                    keys[o * cnt + i] = (refkey){w * w / (d * d), o * cnt + i};
                }
            qsort(keys, (size_t)(out * cnt), sizeof *keys, cmp_refkey);
            const int64_t k = (int64_t)((double)(out * cnt) * p->sparsity);
            for (int64_t t = 0; t < k; t++) mask[keys[t].i] = 1;
        }
        for (int64_t i = 0; i < cnt; i++) {
            const int64_t j = i1 + i;
            const double d = U[j * n + j];
            if (M > 0 && j % M == 0) {
                const int64_t L = n - j < M ? n - j : M;
                for (int64_t o = 0; o < out; o++) {
                    refkey kk[64];
                    for (int64_t t = 0; t < L; t++) {
                        const double w = W1[o * cnt + i + t], dd = U[(j + t) * n + j + t];
                        kk[t] = (refkey){w * w / (dd * dd), t};
                    }
                    qsort(kk, (size_t)L, sizeof *kk, cmp_refkey);
                    for (int64_t t = 0; t < L - N; t++) mask[o * cnt + i + kk[t].i] = 1;
                }
            }
            for (int64_t o = 0; o < out; o++) {
                const double w = W1[o * cnt + i];
                double q = mask[o * cnt + i] ? 0.0 : w;
                if (p->quantize) {
                    const double s = scales[o * ng + j / G];
                    const int32_t z = zeros[o * ng + j / G];
                    double c = nearbyint(q / s) + z;
                    c = c < 0 ? 0 : c > maxq ? maxq : c;
                    codes[o * n + j] = (uint8_t)c;
                    q = s * (c - z);
                }
                const double e = (w - q) / d;
                loss += e * e / 2;
                Err[o * cnt + i] = e;
                for (int64_t k = i; k < cnt; k++) W1[o * cnt + k] -= e * U[j * n + i1 + k];
                W1[o * cnt + i] = q;
                mask_out[o * n + j] = mask[o * cnt + i];
            }
        }
        for (int64_t o = 0; o < out; o++) {
            for (int64_t i = 0; i < cnt; i++) W[o * n + i1 + i] = W1[o * cnt + i];
            for (int64_t c = i2; c < n; c++) {
                double s = 0;
                for (int64_t i = 0; i < cnt; i++) s += Err[o * cnt + i] * U[(i1 + i) * n + c];
                W[o * n + c] -= s;
            }
        }
    }
    free(dead);
    free(U);
    free(W1);
    free(Err);
    free(mask);
    free(keys);
    return loss;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static llmsq_prune_params sgpt_params(double sparsity, int n, int m)
{
    llmsq_prune_params p = llmsq_prune_default_params();
    p.method = LLMSQ_PRUNE_SPARSEGPT;
    p.sparsity = sparsity;
    p.nm_n = n;
    p.nm_m = m;
    return p;
}

/* trace((W - W') H (W - W')^T) */
static double out_err(const float *W0, const float *W1, int64_t out, int64_t n, const double *H)
{
    double *d = malloc((size_t)n * sizeof *d), tot = 0;
    for (int64_t o = 0; o < out; o++) {
        for (int64_t j = 0; j < n; j++) d[j] = (double)W0[o * n + j] - (double)W1[o * n + j];
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += H[i * n + j] * d[j];
            tot += d[i] * s;
        }
    }
    free(d);
    return tot;
}

/* Runs SparseGPT and the reference on the same data; compares masks, weights and loss. */
static void check_vs_ref(int64_t out, int64_t n, const llmsq_prune_params *p, const int64_t *dead, int n_dead,
                         uint64_t s)
{
    seed(s);
    float *W = make_weights(out, n);
    double *H = tu_random_hessian(n, 3 * n, dead, n_dead), *Hs = dup_d(H, n * n);
    double *R = malloc((size_t)(out * n) * sizeof *R);
    unsigned char *rmask = calloc((size_t)(out * n), 1);
    for (int64_t k = 0; k < out * n; k++) R[k] = W[k];
    const int64_t G = p->quant.group_size == -1 || p->quant.group_size > n ? n : p->quant.group_size;
    const int64_t ng = (n + G - 1) / G;
    uint8_t *codes = calloc((size_t)(out * n), 1);
    float *scales = calloc((size_t)(out * ng), sizeof *scales);
    int32_t *zeros = calloc((size_t)(out * ng), sizeof *zeros);
    const double rloss = ref_sparsegpt(R, out, n, H, p, codes, scales, zeros, rmask);

    llmsq_qlinear *q = NULL;
    llmsq_sparsegpt_stats st = {0};
    ck_assert_msg(llmsq_sparsegpt_prune(W, out, n, Hs, p, &q, &st) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(st.damp_raises, 0);
    int64_t mism = 0, pruned = 0;
    double maxrel = 0;
    for (int64_t k = 0; k < out * n; k++) {
        if (rmask[k]) {
            pruned++;
            if (W[k] != 0.0f) mism++;
            continue;
        }
        if (p->quantize) continue;
        const double rel = fabs((double)W[k] - (double)(float)R[k]) / (fabs(R[k]) + 1e-3);
        if (rel > maxrel) maxrel = rel;
    }
    ck_assert_msg(mism == 0, "%lld removed entries of the reference are nonzero", (long long)mism);
    ck_assert_msg(maxrel < 1e-6, "kept weights differ from the reference: max rel %g", maxrel);
    ck_assert_msg(fabs(st.loss - rloss) <= 1e-9 * fabs(rloss) + 1e-12, "loss %.17g vs reference %.17g", st.loss,
                  rloss);
    if (p->nm_m == 0) { /* exactly floor(sparsity * count) per block */
        int64_t want = 0;
        int64_t bs = p->block_size < n ? p->block_size : n;
        for (int64_t b = 0; b < n; b += bs) want += (int64_t)((double)(out * (b + bs < n ? bs : n - b)) * p->sparsity);
        ck_assert_int_eq(pruned, want);
    } else {
        int64_t bad = 0;
        ck_assert_msg(llmsq_check_nm(W, out, n, p->nm_n, p->nm_m, &bad), "row %lld breaks %d:%d", (long long)bad,
                      p->nm_n, p->nm_m);
    }
    if (p->quantize) {
        ck_assert_ptr_nonnull(q);
        int64_t cm = 0;
        for (int64_t k = 0; k < out * n; k++) cm += q->codes[k] != codes[k];
        ck_assert_msg(cm == 0, "%lld codes differ from the reference", (long long)cm);
        for (int64_t k = 0; k < out * ng; k++) {
            ck_assert_float_eq(q->scales[k], scales[k]);
            ck_assert_int_eq(q->zeros[k], zeros[k]);
        }
        float *D = malloc((size_t)(out * n) * sizeof *D);
        llmsq_qlinear_dequant(q, D);
        for (int64_t k = 0; k < out * n; k++) {
            ck_assert(D[k] == W[k]);
            if (rmask[k]) {
                ck_assert_float_eq(D[k], 0.0f);
                ck_assert_int_eq(q->codes[k], q->zeros[(k / n) * ng + (k % n) / G]);
            }
        }
        free(D);
    } else {
        ck_assert_ptr_null(q);
        /* float result vs the double reference within 1e-9 relative of the double value */
        double mr = 0;
        for (int64_t k = 0; k < out * n; k++)
            if (!rmask[k]) {
                const double rel = fabs((double)W[k] - R[k]) / fabs(R[k]);
                if (rel > mr) mr = rel;
            }
        ck_assert_msg(mr <= 0x1p-24 * (1 + 1e-9), "float rounding of the result: rel %g", mr);
    }
    llmsq_qlinear_free(q);
    free(W);
    free(H);
    free(Hs);
    free(R);
    free(rmask);
    free(codes);
    free(scales);
    free(zeros);
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(test_unstructured_vs_ref)
{
    llmsq_prune_params p = sgpt_params(0.5, 0, 0);
    check_vs_ref(24, 96, &p, NULL, 0, 1);
    p.block_size = 32; /* several blocks, and a last partial one */
    check_vs_ref(21, 150, &p, NULL, 0, 2);
    p.sparsity = 0.7;
    const int64_t dead[] = {5, 77};
    check_vs_ref(40, 300, &p, dead, 2, 3);
    p = sgpt_params(0.3, 0, 0); /* default block 128 over 300 columns: multi-tile factor */
    check_vs_ref(33, 300, &p, NULL, 0, 4);
}
END_TEST

START_TEST(test_nm_vs_ref)
{
    static const int pat[][2] = {{2, 4}, {4, 8}, {1, 4}, {3, 4}};
    for (int k = 0; k < 4; k++) {
        llmsq_prune_params p = sgpt_params(0.5, pat[k][0], pat[k][1]);
        check_vs_ref(20, 128, &p, NULL, 0, 10 + (uint64_t)k);
        p.block_size = 16;
        check_vs_ref(19, 99, &p, NULL, 0, 20 + (uint64_t)k); /* in % M != 0 */
    }
    llmsq_prune_params p = sgpt_params(0.5, 2, 3); /* block 128 % 3 != 0: shortened to 126 */
    check_vs_ref(17, 200, &p, NULL, 0, 30);
}
END_TEST

START_TEST(test_joint_quant_vs_ref)
{
    llmsq_prune_params p = sgpt_params(0.5, 0, 0);
    p.quantize = true;
    p.quant.bits = 4;
    p.quant.group_size = 32;
    p.quant.scale_dtype = LLMSQ_DTYPE_F32;
    p.block_size = 48; /* groups straddle blocks */
    check_vs_ref(18, 160, &p, NULL, 0, 40);
    p.nm_n = 2;
    p.nm_m = 4;
    p.quant.bits = 3;
    p.quant.group_size = -1;
    check_vs_ref(18, 100, &p, NULL, 0, 41);
}
END_TEST

static void run_scored(float *W, int64_t out, int64_t n, const double *H, llmsq_prune_method m, double sp, int nn,
                       int mm)
{
    llmsq_prune_params p = llmsq_prune_default_params();
    p.method = m;
    p.sparsity = sp;
    p.nm_n = nn;
    p.nm_m = mm;
    double *sq = malloc((size_t)n * sizeof *sq);
    for (int64_t j = 0; j < n; j++) sq[j] = H[j * n + j];
    ck_assert_msg(llmsq_prune_scored(W, out, n, sq, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    free(sq);
}

START_TEST(test_obs_beats_wanda_magnitude)
{
    const int64_t out = 64, n = 256;
    static const int pat[][2] = {{0, 0}, {2, 4}, {4, 8}};
    for (int k = 0; k < 3; k++) {
        seed(50 + (uint64_t)k);
        float *W = make_weights(out, n);
        double *H = tu_random_hessian(n, 2 * n, NULL, 0), *Hs = dup_d(H, n * n);
        float *Ws = dup_f(W, out * n), *Ww = dup_f(W, out * n), *Wm = dup_f(W, out * n);
        llmsq_prune_params p = sgpt_params(0.5, pat[k][0], pat[k][1]);
        ck_assert(llmsq_sparsegpt_prune(Ws, out, n, Hs, &p, NULL, NULL) == LLMSQ_OK);
        run_scored(Ww, out, n, H, LLMSQ_PRUNE_WANDA, 0.5, pat[k][0], pat[k][1]);
        run_scored(Wm, out, n, H, LLMSQ_PRUNE_MAGNITUDE, 0.5, pat[k][0], pat[k][1]);
        ck_assert_double_eq_tol(llmsq_sparsity(Ws, out * n), 0.5, 1e-12);
        ck_assert_double_eq_tol(llmsq_sparsity(Ww, out * n), 0.5, 1e-12);
        const double es = out_err(W, Ws, out, n, H), ew = out_err(W, Ww, out, n, H), em = out_err(W, Wm, out, n, H);
        fprintf(stderr, "%d:%d output error: sparsegpt %.4g wanda %.4g magnitude %.4g\n", pat[k][0], pat[k][1], es, ew,
                em);
        ck_assert_msg(es < ew && es < em, "SparseGPT %g, Wanda %g, magnitude %g", es, ew, em);
        free(W);
        free(H);
        free(Hs);
        free(Ws);
        free(Ww);
        free(Wm);
    }
}
END_TEST

START_TEST(test_threads_bitwise)
{
    const int64_t out = 72, n = 290;
    seed(60);
    float *W = make_weights(out, n);
    double *H = tu_random_hessian(n, 2 * n, NULL, 0);
    for (int k = 0; k < 2; k++) {
        llmsq_prune_params p = sgpt_params(0.5, k ? 2 : 0, k ? 4 : 0);
        p.quantize = k == 1;
        float *A = dup_f(W, out * n), *B = dup_f(W, out * n);
        double *H1 = dup_d(H, n * n), *H2 = dup_d(H, n * n);
        llmsq_qlinear *qa = NULL, *qb = NULL;
        llmsq_sparsegpt_stats sa = {0}, sb = {0};
        omp_set_num_threads(1);
        ck_assert(llmsq_sparsegpt_prune(A, out, n, H1, &p, &qa, &sa) == LLMSQ_OK);
        omp_set_num_threads(4);
        ck_assert(llmsq_sparsegpt_prune(B, out, n, H2, &p, &qb, &sb) == LLMSQ_OK);
        ck_assert(memcmp(A, B, (size_t)(out * n) * sizeof *A) == 0);
        ck_assert(sa.loss == sb.loss);
        if (k) ck_assert(memcmp(qa->codes, qb->codes, (size_t)(out * n)) == 0);
        llmsq_qlinear_free(qa);
        llmsq_qlinear_free(qb);
        free(A);
        free(B);
        free(H1);
        free(H2);
    }
    free(W);
    free(H);
}
END_TEST

START_TEST(test_bad_params)
{
    float W[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    double H[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    llmsq_prune_params p = sgpt_params(0.5, 3, 2);
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, NULL, NULL), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "N must be smaller than M"));
    p = sgpt_params(1.0, 0, 0);
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, NULL, NULL), LLMSQ_STATUS_ARG);
    p = sgpt_params(-0.1, 0, 0);
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, NULL, NULL), LLMSQ_STATUS_ARG);
    p = sgpt_params(0.5, 0, 0);
    p.damp = 0;
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, NULL, NULL), LLMSQ_STATUS_ARG);
    p = sgpt_params(0.5, 0, 0);
    p.quantize = true;
    p.quant.act_order = true;
    llmsq_qlinear *q = NULL;
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, &q, NULL), LLMSQ_STATUS_ARG);
    p = sgpt_params(0.5, 0, 0);
    W[5] = NAN;
    ck_assert_int_eq(llmsq_sparsegpt_prune(W, 4, 4, H, &p, NULL, NULL), LLMSQ_STATUS_NUMERIC);
    for (int k = 0; k < 16; k++) ck_assert(k == 5 || W[k] == (float)(k + 1)); /* untouched on error */
}
END_TEST

START_TEST(test_damp_raise)
{
    /* rank-deficient H (duplicate column) with a tiny damp: raised and reported */
    const int64_t out = 8, n = 16;
    seed(70);
    float *W = make_weights(out, n);
    double *H = tu_random_hessian(n, 64, NULL, 0);
    for (int64_t i = 0; i < n; i++) { /* column 1 := column 0, scaled: H singular */
        H[i * n + 1] = H[i * n + 0];
        H[1 * n + i] = H[0 * n + i];
    }
    H[1 * n + 1] = H[0];
    llmsq_prune_params p = sgpt_params(0.5, 0, 0);
    p.damp = 1e-18;
    llmsq_sparsegpt_stats st = {0};
    const llmsq_status s = llmsq_sparsegpt_prune(W, out, n, H, &p, NULL, &st);
    ck_assert_msg(s == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_ge(st.damp_raises, 1);
    ck_assert_double_eq_tol(st.damp_used, 1e-18 * pow(10, st.damp_raises), 1e-30);
    free(W);
    free(H);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sparsegpt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_unstructured_vs_ref);
    tcase_add_test(tc, test_nm_vs_ref);
    tcase_add_test(tc, test_joint_quant_vs_ref);
    tcase_add_test(tc, test_obs_beats_wanda_magnitude);
    tcase_add_test(tc, test_threads_bitwise);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_damp_raise);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
