/* RIA channel permutation for N:M (llmsq_nm_permutation), the Hungarian solver against brute
 * force, and folding a permutation into a store (llmsq_store_permute_rows / _cols). */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* ---- references ------------------------------------------------------------------------- */

/* Kept score of N:M selection of S [out, in] under perm: per row and block, the n largest of
 * m, by repeated maximum search (independent of the library's sort). */
static double ref_kept(const float *S, int64_t out, int64_t in, int n, int m, const int32_t *perm)
{
    double total = 0;
    for (int64_t i = 0; i < out; i++)
        for (int64_t b = 0; b < in; b += m) {
            unsigned char used[64] = {0};
            for (int t = 0; t < n; t++) {
                int best = -1;
                for (int u = 0; u < m; u++)
                    if (!used[u] && (best < 0 || S[i * in + perm[b + u]] > S[i * in + perm[b + best]])) best = u;
                used[best] = 1;
                total += S[i * in + perm[b + best]];
            }
        }
    return total;
}

static void assert_perm(const int32_t *p, int64_t n)
{
    unsigned char *seen = calloc((size_t)n, 1);
    ck_assert_ptr_nonnull(seen);
    for (int64_t k = 0; k < n; k++) {
        ck_assert_msg(p[k] >= 0 && p[k] < n && !seen[p[k]], "perm[%lld] = %d is not a permutation entry",
                      (long long)k, p[k]);
        seen[p[k]] = 1;
    }
    free(seen);
}

/* Best assignment by enumerating all n! permutations (Heap's algorithm). */
static double brute_lsa(const double *C, int n, bool maximize)
{
    int a[8], c[8] = {0};
    for (int k = 0; k < n; k++) a[k] = k;
    double best = 0;
    for (int r = 0; r < n; r++) best += C[r * n + a[r]];
    int k = 1;
    while (k < n) {
        if (c[k] < k) {
            const int j = k % 2 ? c[k] : 0, t = a[j];
            a[j] = a[k];
            a[k] = t;
            double s = 0;
            for (int r = 0; r < n; r++) s += C[r * n + a[r]];
            if (maximize ? s > best : s < best) best = s;
            c[k]++;
            k = 1;
        } else {
            c[k++] = 0;
        }
    }
    return best;
}

/* scores |W| * ||X||: gaussian W, log-normal channel norms (as real activations) */
static float *realistic_scores(int64_t out, int64_t in, uint64_t seed)
{
    tu_rng = seed;
    double *xn = malloc((size_t)in * sizeof *xn);
    float *S = malloc((size_t)(out * in) * sizeof *S);
    ck_assert(xn && S);
    for (int64_t j = 0; j < in; j++) xn[j] = exp(tu_nrand());
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++) S[i * in + j] = (float)(fabs(tu_nrand()) * xn[j]);
    free(xn);
    return S;
}

/* ---- the assignment solver ----------------------------------------------------------------- */

START_TEST(test_lsa_vs_brute_force)
{
    tu_rng = tu_seed_from_env();
    for (int n = 1; n <= 7; n++)
        for (int rep = 0; rep < 30; rep++) {
            double C[49];
            for (int k = 0; k < n * n; k++) /* every third matrix: small integers, so ties abound */
                C[k] = rep % 3 == 0 ? (double)(int)(tu_urand() * 4) : 100.0 * tu_nrand();
            for (int mx = 0; mx < 2; mx++) {
                int32_t as[7];
                double tot = -1;
                ck_assert_int_eq(llmsq_linear_assignment(C, n, mx, as, &tot), LLMSQ_OK);
                assert_perm(as, n);
                double s = 0;
                for (int r = 0; r < n; r++) s += C[r * n + as[r]];
                ck_assert_double_eq_tol(s, tot, 1e-9);
                const double want = brute_lsa(C, n, mx);
                ck_assert_msg(fabs(tot - want) <= 1e-9 * (1 + fabs(want)), "n %d rep %d %s: %.12g, brute force %.12g",
                              n, rep, mx ? "max" : "min", tot, want);
            }
        }
}
END_TEST

START_TEST(test_lsa_larger_and_errors)
{
    /* a known optimum: C[r, c] = (r - sigma(c))^2 has the unique minimum 0 at sigma^-1 */
    enum { N = 300 };
    static int32_t sigma[N], as[N];
    static double C[N * N];
    for (int k = 0; k < N; k++) sigma[k] = (int32_t)((k * 7 + 3) % N);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++) C[r * N + c] = (double)(r - sigma[c]) * (double)(r - sigma[c]);
    double tot = -1;
    ck_assert_int_eq(llmsq_linear_assignment(C, N, false, as, &tot), LLMSQ_OK);
    ck_assert_double_eq(tot, 0.0);
    for (int r = 0; r < N; r++) ck_assert_int_eq(sigma[as[r]], r);

    double bad[4] = {1, 2, NAN, 4};
    ck_assert_int_eq(llmsq_linear_assignment(bad, 2, false, as, NULL), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_linear_assignment(bad, 0, false, as, NULL), LLMSQ_STATUS_ARG);
}
END_TEST

/* ---- the permutation --------------------------------------------------------------------- */

static void check_case(const float *S, int64_t out, int64_t in, int n, int m, int iters)
{
    int32_t *p = malloc((size_t)in * sizeof *p), *id = malloc((size_t)in * sizeof *id);
    ck_assert(p && id);
    for (int64_t j = 0; j < in; j++) id[j] = (int32_t)j;
    double before = -1, after = -1;
    ck_assert_msg(llmsq_nm_permutation(S, out, in, n, m, iters, p, &before, &after) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    assert_perm(p, in);
    const double rb = ref_kept(S, out, in, n, m, id), ra = ref_kept(S, out, in, n, m, p);
    ck_assert_msg(fabs(before - rb) <= 1e-9 * rb && fabs(after - ra) <= 1e-9 * ra,
                  "[%lld, %lld] %d:%d: kept %.12g / %.12g, reference %.12g / %.12g", (long long)out, (long long)in, n,
                  m, before, after, rb, ra);
    ck_assert_msg(after >= before, "kept fell from %.12g to %.12g", before, after);
    if (after == before) /* nothing better found: the identity */
        for (int64_t j = 0; j < in; j++) ck_assert_int_eq(p[j], j);
    free(p);
    free(id);
}

START_TEST(test_valid_and_never_worse)
{
    static const int shapes[][4] = {/* out, in, n, m */
                                    {16, 64, 2, 4}, {7, 96, 1, 4}, {5, 48, 4, 8}, {9, 60, 2, 3}, {3, 32, 1, 2},
                                    {1, 8, 2, 4},   {12, 40, 3, 4}, {4, 128, 16, 64}, {2, 4, 2, 4}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int iters = 0; iters <= 2; iters++) {
            float *S = realistic_scores(shapes[k][0], shapes[k][1], 1000 + k);
            check_case(S, shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], iters);
            free(S);
        }
    /* uniform scores: every order keeps the same, so the identity comes back */
    float U[6 * 16];
    for (int k = 0; k < 6 * 16; k++) U[k] = 1.0f;
    check_case(U, 6, 16, 2, 4, 3);
    /* all zero */
    memset(U, 0, sizeof U);
    check_case(U, 6, 16, 2, 4, 3);
}
END_TEST

START_TEST(test_clustered_heavy_channels)
{
    /* 16 heavy channels packed 4 to a block in blocks 0..3: the identity keeps only 2 of each
     * block's 4 under 2:4, while 16 blocks can hold them 1 or 2 apiece, all kept. */
    const int64_t out = 8, in = 64;
    tu_rng = 77;
    float S[8 * 64];
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++) S[i * in + j] = (float)(j < 16 ? 10.0 + tu_urand() : 0.1 * tu_urand());
    for (int iters = 0; iters <= 2; iters++) {
        int32_t p[64];
        double before, after;
        ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, iters, p, &before, &after), LLMSQ_OK);
        assert_perm(p, in);
        ck_assert_msg(after > before, "iters %d: kept %.9g, identity %.9g", iters, after, before);
        for (int64_t b = 0; b < in; b += 4) {
            int heavy = 0;
            for (int t = 0; t < 4; t++) heavy += p[b + t] < 16;
            ck_assert_msg(heavy <= 2, "iters %d: block %lld holds %d heavy channels", iters, (long long)b / 4, heavy);
        }
    }
}
END_TEST

START_TEST(test_deterministic_and_grouped)
{
    /* 600 blocks: three assignment groups per slot, and shuffled groups from sweep 1 */
    const int64_t out = 24, in = 2400;
    float *S = realistic_scores(out, in, 4242);
    int32_t *a = malloc((size_t)in * sizeof *a), *b = malloc((size_t)in * sizeof *b);
    ck_assert(a && b);
    double ba, aa, bb, ab;
    omp_set_num_threads(1);
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 3, a, &ba, &aa), LLMSQ_OK);
    omp_set_num_threads(3);
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 3, b, &bb, &ab), LLMSQ_OK);
    ck_assert(memcmp(a, b, (size_t)in * sizeof *a) == 0);
    ck_assert(ba == bb && aa == ab);
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 3, b, &bb, &ab), LLMSQ_OK);
    ck_assert(memcmp(a, b, (size_t)in * sizeof *a) == 0);
    assert_perm(a, in);
    ck_assert(aa > ba);
    /* more sweeps never lose (reallocation only <= 1 sweep <= 3 sweeps), and the assignment
     * refinement gains over the reallocation alone */
    double k0, k1;
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 0, b, NULL, &k0), LLMSQ_OK);
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 1, b, NULL, &k1), LLMSQ_OK);
    ck_assert(k0 < k1 && k1 <= aa);
    fprintf(stderr, "[24, 2400] 2:4 kept: identity %.6g, reallocation %.6g (%+.3f%%), 1 sweep %+.3f%%, 3 sweeps "
                    "%+.3f%%\n",
            ba, k0, 100 * (k0 / ba - 1), 100 * (k1 / ba - 1), 100 * (aa / ba - 1));
    free(S);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_realistic_gain)
{
    /* |W| * ||X||, W gaussian, ||X|| log-normal: the permutation keeps measurably more */
    const int64_t out = 256, in = 1024;
    float *S = realistic_scores(out, in, 99);
    int32_t *p = malloc((size_t)in * sizeof *p);
    double before, after;
    ck_assert_int_eq(llmsq_nm_permutation(S, out, in, 2, 4, 2, p, &before, &after), LLMSQ_OK);
    ck_assert_double_eq_tol(after, ref_kept(S, out, in, 2, 4, p), 1e-9 * after);
    fprintf(stderr, "[256, 1024] 2:4 kept %.6g -> %.6g (%+.3f%%)\n", before, after, 100 * (after / before - 1));
    ck_assert(after > before * 1.001);
    free(S);
    free(p);
}
END_TEST

START_TEST(test_perm_errors)
{
    float S[4 * 10];
    for (int k = 0; k < 40; k++) S[k] = (float)k;
    int32_t p[10];
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 10, 2, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG); /* 10 % 4 */
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "multiple"));
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 4, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG);  /* N = M */
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 0, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 2, 4, -1, p, NULL, NULL), LLMSQ_STATUS_ARG); /* iters */
    ck_assert_int_eq(llmsq_nm_permutation(S, 0, 8, 2, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG);
    S[5] = -1.0f;
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 2, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG);
    S[5] = NAN;
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 2, 4, 1, p, NULL, NULL), LLMSQ_STATUS_ARG);
    S[5] = 5.0f;
    ck_assert_int_eq(llmsq_nm_permutation(S, 4, 8, 2, 4, 1, p, NULL, NULL), LLMSQ_OK);
}
END_TEST

/* ---- folding into the store ------------------------------------------------------------------ */

static void *dup_f32_as(const float *x, int64_t n, llmsq_dtype dt)
{
    if (dt == LLMSQ_DTYPE_F32) {
        float *d = malloc((size_t)n * sizeof *d);
        memcpy(d, x, (size_t)n * sizeof *d);
        return d;
    }
    uint16_t *h = malloc((size_t)n * sizeof *h);
    for (int64_t k = 0; k < n; k++) h[k] = dt == LLMSQ_DTYPE_F16 ? llmsq_f32_to_f16(x[k]) : llmsq_f32_to_bf16(x[k]);
    return h;
}

static void put_dense(llmsq_store *s, const char *name, const float *x, int ndim, int64_t d0, int64_t d1,
                      llmsq_dtype dt)
{
    const int64_t shape[2] = {d0, d1};
    ck_assert_int_eq(llmsq_store_put(s, name, dt, ndim, shape, dup_f32_as(x, ndim == 1 ? d0 : d0 * d1, dt)), LLMSQ_OK);
}

static const float *f32(llmsq_store *s, const char *name)
{
    const float *p = NULL;
    ck_assert_msg(llmsq_store_get_f32(s, name, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    return p;
}

/* y [T, d] = D (silu(G x + bg) * (U x)) in double, for X [T, d]; G, U [h, d], bg [h], D [d, h]. */
static void mlp(llmsq_store *s, const float *X, int64_t T, int64_t d, int64_t h, double *y)
{
    const float *G = f32(s, "mlp.gate_proj.weight"), *U = f32(s, "mlp.up_proj.weight"),
                *bg = f32(s, "mlp.gate_proj.bias"), *D = f32(s, "mlp.down_proj.weight");
    double *a = malloc((size_t)h * sizeof *a);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t k = 0; k < h; k++) {
            double g = bg[k], u = 0;
            for (int64_t j = 0; j < d; j++) {
                g += (double)G[k * d + j] * X[t * d + j];
                u += (double)U[k * d + j] * X[t * d + j];
            }
            a[k] = g / (1.0 + exp(-g)) * u;
        }
        for (int64_t o = 0; o < d; o++) {
            double acc = 0;
            for (int64_t k = 0; k < h; k++) acc += (double)D[o * h + k] * a[k];
            y[t * d + o] = acc;
        }
    }
    free(a);
}

static double max_diff(const double *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t k = 0; k < n; k++) m = fmax(m, fabs(a[k] - b[k]));
    return m;
}

/* Builds the MLP in a store, gets a permutation of the hidden channels from down_proj's
 * scores, folds it and checks that the function is unchanged. quant: up and down quantized. */
static void check_fold(bool quant)
{
    const int64_t d = 24, h = 64, T = 5;
    tu_rng = quant ? 11 : 12;
    float *G = malloc(sizeof(float) * h * d), *U = malloc(sizeof(float) * h * d), *D = malloc(sizeof(float) * d * h),
          *bg = malloc(sizeof(float) * h), *X = malloc(sizeof(float) * T * d);
    for (int64_t k = 0; k < h * d; k++) {
        G[k] = (float)(0.2 * tu_nrand());
        U[k] = (float)(0.2 * tu_nrand());
        D[k] = (float)(0.2 * tu_nrand());
    }
    for (int64_t k = 0; k < h; k++) bg[k] = (float)(0.1 * tu_nrand());
    for (int64_t k = 0; k < T * d; k++) X[k] = (float)tu_nrand();
    llmsq_store *s = llmsq_store_create();
    put_dense(s, "mlp.gate_proj.weight", G, 2, h, d, LLMSQ_DTYPE_F32);
    put_dense(s, "mlp.gate_proj.bias", bg, 1, h, 0, LLMSQ_DTYPE_F32);
    put_dense(s, "mlp.up_proj.weight", U, 2, h, d, LLMSQ_DTYPE_BF16);
    put_dense(s, "mlp.down_proj.weight", D, 2, d, h, LLMSQ_DTYPE_F16);
    if (quant) {
        llmsq_quant_params qp = llmsq_quant_default_params();
        qp.group_size = 16;
        llmsq_qlinear *qu, *qd;
        ck_assert_int_eq(llmsq_rtn_quantize(f32(s, "mlp.up_proj.weight"), h, d, &qp, &qu), LLMSQ_OK);
        ck_assert_int_eq(llmsq_rtn_quantize(f32(s, "mlp.down_proj.weight"), d, h, &qp, &qd), LLMSQ_OK);
        ck_assert_int_eq(llmsq_store_put_qlinear(s, "mlp.up_proj.weight", qu), LLMSQ_OK);
        ck_assert_int_eq(llmsq_store_put_qlinear(s, "mlp.down_proj.weight", qd), LLMSQ_OK);
    }
    double *y0 = malloc(sizeof(double) * T * d), *y1 = malloc(sizeof(double) * T * d);
    mlp(s, X, T, d, h, y0); /* also fills the F32 caches, which must not survive the permutation */
    float *Dold = malloc(sizeof(float) * d * h), *Uold = malloc(sizeof(float) * h * d);
    memcpy(Dold, f32(s, "mlp.down_proj.weight"), sizeof(float) * d * h);
    memcpy(Uold, f32(s, "mlp.up_proj.weight"), sizeof(float) * h * d);

    /* the permutation of down_proj's input channels (Wanda-like scores, norms from X's path) */
    float *S = malloc(sizeof(float) * d * h);
    for (int64_t o = 0; o < d; o++)
        for (int64_t k = 0; k < h; k++) S[o * h + k] = fabsf(Dold[o * h + k]) * (float)(1 + (k % 7 == 2 ? 20 : k % 3));
    int32_t perm[64];
    double before, after;
    ck_assert_int_eq(llmsq_nm_permutation(S, d, h, 2, 4, 2, perm, &before, &after), LLMSQ_OK);
    ck_assert(after > before);

    ck_assert_int_eq(llmsq_store_permute_rows(s, "mlp.gate_proj.weight", perm, h), LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_permute_rows(s, "mlp.gate_proj.bias", perm, h), LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_permute_rows(s, "mlp.up_proj.weight", perm, h), LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_permute_cols(s, "mlp.down_proj.weight", perm, h), LLMSQ_OK);

    /* exact moves, seen through fresh F32 views */
    const float *Dn = f32(s, "mlp.down_proj.weight"), *Un = f32(s, "mlp.up_proj.weight");
    for (int64_t o = 0; o < d; o++)
        for (int64_t k = 0; k < h; k++) ck_assert(Dn[o * h + k] == Dold[o * h + perm[k]]);
    for (int64_t k = 0; k < h; k++) ck_assert(memcmp(Un + k * d, Uold + perm[k] * d, sizeof(float) * d) == 0);
    if (quant) {
        const llmsq_qlinear *qd = llmsq_store_get_qlinear(s, "mlp.down_proj.weight"),
                            *qu = llmsq_store_get_qlinear(s, "mlp.up_proj.weight");
        ck_assert_ptr_nonnull(qd);
        ck_assert_ptr_nonnull(qu);
        ck_assert_ptr_nonnull(qd->g_idx); /* channels moved across groups of 16 */
        ck_assert(qd->act_order);
        for (int64_t k = 0; k < h; k++) ck_assert_int_eq(qd->g_idx[k], perm[k] / 16);
        ck_assert_ptr_null(qu->g_idx); /* rows moved, columns did not */
    } else {
        ck_assert_int_eq(llmsq_store_get(s, "mlp.up_proj.weight")->dtype, LLMSQ_DTYPE_BF16);
        ck_assert_int_eq(llmsq_store_get(s, "mlp.down_proj.weight")->dtype, LLMSQ_DTYPE_F16);
    }
    mlp(s, X, T, d, h, y1);
    const double diff = max_diff(y0, y1, T * d);
    ck_assert_msg(diff <= 1e-5, "%s MLP changed by %g after folding the permutation", quant ? "quantized" : "dense",
                  diff);
    /* and the inverse permutation restores the original tensors */
    int32_t inv[64];
    for (int k = 0; k < 64; k++) inv[perm[k]] = k;
    ck_assert_int_eq(llmsq_store_permute_cols(s, "mlp.down_proj.weight", inv, h), LLMSQ_OK);
    ck_assert(memcmp(f32(s, "mlp.down_proj.weight"), Dold, sizeof(float) * d * h) == 0);
    if (quant) ck_assert_ptr_null(llmsq_store_get_qlinear(s, "mlp.down_proj.weight")->g_idx);
    llmsq_store_destroy(s);
    free(G);
    free(U);
    free(D);
    free(bg);
    free(X);
    free(y0);
    free(y1);
    free(Dold);
    free(Uold);
    free(S);
}

START_TEST(test_fold_mlp_dense) { check_fold(false); }
END_TEST

START_TEST(test_fold_mlp_quantized) { check_fold(true); }
END_TEST

START_TEST(test_store_errors)
{
    llmsq_store *s = llmsq_store_create();
    const float w[6] = {1, 2, 3, 4, 5, 6};
    put_dense(s, "w", w, 2, 2, 3, LLMSQ_DTYPE_F32);
    put_dense(s, "b", w, 1, 3, 0, LLMSQ_DTYPE_F32);
    const int64_t shape[1] = {4};
    int32_t *iv = malloc(4 * sizeof *iv);
    for (int k = 0; k < 4; k++) iv[k] = k;
    ck_assert_int_eq(llmsq_store_put(s, "i", LLMSQ_DTYPE_I32, 1, shape, iv), LLMSQ_OK);
    const int32_t p2[2] = {1, 0}, p3[3] = {2, 0, 1}, dup[3] = {0, 0, 1}, oob[3] = {0, 3, 1}, p4[4] = {3, 2, 1, 0};

    ck_assert_int_eq(llmsq_store_permute_rows(s, "nope", p2, 2), LLMSQ_STATUS_NOT_FOUND);
    ck_assert_int_eq(llmsq_store_permute_rows(s, "w", p3, 3), LLMSQ_STATUS_SHAPE);
    ck_assert_int_eq(llmsq_store_permute_cols(s, "w", p2, 2), LLMSQ_STATUS_SHAPE);
    ck_assert_int_eq(llmsq_store_permute_cols(s, "b", p3, 3), LLMSQ_STATUS_SHAPE); /* 1-D has no columns */
    ck_assert_int_eq(llmsq_store_permute_cols(s, "w", dup, 3), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "repeated"));
    ck_assert_int_eq(llmsq_store_permute_cols(s, "w", oob, 3), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_store_permute_rows(s, "i", p4, 4), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert(memcmp(f32(s, "w"), w, sizeof w) == 0); /* unchanged by the failures */

    ck_assert_int_eq(llmsq_store_permute_rows(s, "w", p2, 2), LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_permute_cols(s, "w", p3, 3), LLMSQ_OK);
    const float want[6] = {6, 4, 5, 3, 1, 2}; /* rows swapped, then columns (2, 0, 1) */
    ck_assert(memcmp(f32(s, "w"), want, sizeof want) == 0);
    ck_assert_int_eq(llmsq_store_permute_rows(s, "b", p3, 3), LLMSQ_OK);
    const float wb[3] = {3, 1, 2};
    ck_assert(memcmp(f32(s, "b"), wb, sizeof wb) == 0);
    llmsq_store_destroy(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ria_perm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_lsa_vs_brute_force);
    tcase_add_test(tc, test_lsa_larger_and_errors);
    tcase_add_test(tc, test_valid_and_never_worse);
    tcase_add_test(tc, test_clustered_heavy_channels);
    tcase_add_test(tc, test_deterministic_and_grouped);
    tcase_add_test(tc, test_realistic_gain);
    tcase_add_test(tc, test_perm_errors);
    tcase_add_test(tc, test_fold_mlp_dense);
    tcase_add_test(tc, test_fold_mlp_quantized);
    tcase_add_test(tc, test_store_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
