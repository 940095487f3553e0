/* Magnitude, Wanda and RIA against scalar references; parameters; N:M and sparsity helpers. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <string.h>


static float *make_weights(int64_t out, int64_t in, uint64_t seed)
{
    tu_rng = seed;
    float *W = malloc((size_t)(out * in) * sizeof *W);
    ck_assert_ptr_nonnull(W);
    for (int64_t k = 0; k < out * in; k++) {
        W[k] = (float)(0.05 * tu_nrand() * (tu_urand() < 0.02 ? 10 : 1));
        if (W[k] == 0.0f) W[k] = 1e-3f;
    }
    return W;
}

/* squared channel norms spanning several orders of magnitude (outlier channels) */
static double *make_norms(int64_t in)
{
    double *s = malloc((size_t)in * sizeof *s);
    for (int64_t j = 0; j < in; j++) s[j] = (0.1 + tu_urand()) * (j % 13 == 5 ? 400.0 : 1.0) * 37.0;
    return s;
}

/* ---- scalar reference ------------------------------------------------------------------ */

static double ref_score(const float *W, int64_t out, int64_t in, const double *sq, llmsq_prune_method m, double alpha,
                        int64_t o, int64_t j)
{
    const double a = fabs((double)W[o * in + j]);
    if (m == LLMSQ_PRUNE_MAGNITUDE) return a;
    if (m == LLMSQ_PRUNE_WANDA) return a * sqrt(sq[j]);
    double rs = 0, cs = 0;
    for (int64_t k = 0; k < in; k++) rs += fabs((double)W[o * in + k]);
    for (int64_t k = 0; k < out; k++) cs += fabs((double)W[k * in + j]);
    return ((rs > 0 ? a / rs : 0) + (cs > 0 ? a / cs : 0)) * pow(sqrt(sq[j]), alpha);
}

/* keep[o * in + j] = 1 when kept: within each row (or each group of M), remove the `k`
 * lowest scores, ties to the lower column, by repeated minimum search (O(n^2), independent
 * of the library's selection). */
static void ref_mask(const float *W, int64_t out, int64_t in, const double *sq, const llmsq_prune_params *p,
                     unsigned char *keep)
{
    double *sc = malloc((size_t)in * sizeof *sc);
    for (int64_t o = 0; o < out; o++) {
        for (int64_t j = 0; j < in; j++) sc[j] = ref_score(W, out, in, sq, p->method, p->ria_alpha, o, j);
        const int64_t M = p->nm_m > 0 ? p->nm_m : in;
        for (int64_t g = 0; g < in; g += M) {
            const int64_t L = g + M < in ? M : in - g;
            int64_t k = p->nm_m > 0 ? L - p->nm_n : (int64_t)(p->sparsity * (double)in);
            for (int64_t j = g; j < g + L; j++) keep[o * in + j] = 1;
            for (; k > 0; k--) {
                int64_t best = -1;
                for (int64_t j = g; j < g + L; j++)
                    if (keep[o * in + j] && (best < 0 || sc[j] < sc[best])) best = j;
                keep[o * in + best] = 0;
            }
        }
    }
    free(sc);
}

static void check_method(llmsq_prune_method m, int64_t out, int64_t in, double sp, int n, int mm, uint64_t seed)
{
    float *W = make_weights(out, in, seed), *W0 = malloc((size_t)(out * in) * sizeof *W0);
    memcpy(W0, W, (size_t)(out * in) * sizeof *W);
    double *sq = make_norms(in);
    llmsq_prune_params p = llmsq_prune_default_params();
    p.method = m;
    p.sparsity = sp;
    p.nm_n = n;
    p.nm_m = mm;
    unsigned char *keep = malloc((size_t)(out * in));
    ref_mask(W0, out, in, sq, &p, keep);
    ck_assert_msg(llmsq_prune_scored(W, out, in, m == LLMSQ_PRUNE_MAGNITUDE ? NULL : sq, &p) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    for (int64_t o = 0; o < out; o++) {
        int64_t zeros = 0;
        for (int64_t j = 0; j < in; j++) {
            const int64_t k = o * in + j;
            ck_assert_msg(keep[k] ? W[k] == W0[k] : W[k] == 0.0f, "method %d %d:%d row %lld col %lld: mask differs",
                          (int)m, n, mm, (long long)o, (long long)j);
            zeros += W[k] == 0.0f;
        }
        if (mm == 0) ck_assert_int_eq(zeros, (int64_t)(sp * (double)in));
    }
    if (mm > 0) {
        int64_t bad = 0;
        ck_assert(llmsq_check_nm(W, out, in, n, mm, &bad));
        ck_assert_int_eq(bad, -1);
        for (int64_t o = 0; o < out; o++) /* exactly M - N removed per full group */
            for (int64_t g = 0; g + mm <= in; g += mm) {
                int z = 0;
                for (int64_t j = g; j < g + mm; j++) z += W[o * in + j] == 0.0f;
                ck_assert_int_eq(z, mm - n);
            }
    }
    free(W);
    free(W0);
    free(sq);
    free(keep);
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_unstructured_vs_ref)
{
    static const llmsq_prune_method ms[] = {LLMSQ_PRUNE_MAGNITUDE, LLMSQ_PRUNE_WANDA, LLMSQ_PRUNE_RIA};
    for (int k = 0; k < 3; k++) {
        check_method(ms[k], 17, 64, 0.5, 0, 0, 100 + (uint64_t)k);
        check_method(ms[k], 9, 101, 0.37, 0, 0, 200 + (uint64_t)k); /* odd width */
        check_method(ms[k], 5, 33, 0.9, 0, 0, 300 + (uint64_t)k);
        check_method(ms[k], 4, 7, 0.1, 0, 0, 400 + (uint64_t)k); /* floor(0.7) = 0 removed */
        check_method(ms[k], 40, 300, 0.6, 0, 0, 500 + (uint64_t)k);
    }
}
END_TEST

START_TEST(test_nm_vs_ref)
{
    static const llmsq_prune_method ms[] = {LLMSQ_PRUNE_MAGNITUDE, LLMSQ_PRUNE_WANDA, LLMSQ_PRUNE_RIA};
    static const int pat[][2] = {{2, 4}, {4, 8}, {1, 4}, {3, 4}, {2, 3}, {16, 64}};
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 6; t++) {
            check_method(ms[k], 11, 128, 0, pat[t][0], pat[t][1], 600 + (uint64_t)(k * 10 + t));
            check_method(ms[k], 7, 131, 0, pat[t][0], pat[t][1], 700 + (uint64_t)(k * 10 + t)); /* in % M != 0 */
        }
}
END_TEST

START_TEST(test_scores_matter)
{
    /* the three scores pick different masks on the same weights */
    const int64_t out = 16, in = 64;
    float *W = make_weights(out, in, 42), *A = malloc(sizeof(float) * out * in), *B = malloc(sizeof(float) * out * in),
          *C = malloc(sizeof(float) * out * in);
    memcpy(A, W, sizeof(float) * out * in);
    memcpy(B, W, sizeof(float) * out * in);
    memcpy(C, W, sizeof(float) * out * in);
    double *sq = make_norms(in);
    llmsq_prune_params p = llmsq_prune_default_params();
    ck_assert(llmsq_prune_scored(A, out, in, NULL, &p) == LLMSQ_OK);
    p.method = LLMSQ_PRUNE_WANDA;
    ck_assert(llmsq_prune_scored(B, out, in, sq, &p) == LLMSQ_OK);
    p.method = LLMSQ_PRUNE_RIA;
    ck_assert(llmsq_prune_scored(C, out, in, sq, &p) == LLMSQ_OK);
    ck_assert(memcmp(A, B, sizeof(float) * out * in) != 0);
    ck_assert(memcmp(B, C, sizeof(float) * out * in) != 0);
    free(W);
    free(A);
    free(B);
    free(C);
    free(sq);
}
END_TEST

START_TEST(test_ties_lower_column_first)
{
    float W[2 * 10];
    for (int k = 0; k < 20; k++) W[k] = (k % 2) ? -0.5f : 0.5f;
    llmsq_prune_params p = llmsq_prune_default_params();
    ck_assert(llmsq_prune_scored(W, 2, 10, NULL, &p) == LLMSQ_OK);
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 10; j++) ck_assert((W[o * 10 + j] == 0.0f) == (j < 5));
    p.nm_n = 1;
    p.nm_m = 4;
    for (int k = 0; k < 20; k++) W[k] = 1.0f;
    ck_assert(llmsq_prune_scored(W, 2, 10, NULL, &p) == LLMSQ_OK);
    for (int o = 0; o < 2; o++) /* groups [0,4) [4,8) keep their last; [8,10) keeps column 9 */
        for (int j = 0; j < 10; j++) ck_assert((W[o * 10 + j] != 0.0f) == (j == 3 || j == 7 || j == 9));
}
END_TEST

START_TEST(test_threads_identical)
{
    const int64_t out = 301, in = 257;
    float *A = make_weights(out, in, 9), *B = malloc(sizeof(float) * out * in);
    memcpy(B, A, sizeof(float) * out * in);
    double *sq = make_norms(in);
    llmsq_prune_params p = llmsq_prune_default_params();
    p.method = LLMSQ_PRUNE_RIA;
    omp_set_num_threads(1);
    ck_assert(llmsq_prune_scored(A, out, in, sq, &p) == LLMSQ_OK);
    omp_set_num_threads(4);
    ck_assert(llmsq_prune_scored(B, out, in, sq, &p) == LLMSQ_OK);
    ck_assert(memcmp(A, B, sizeof(float) * out * in) == 0);
    free(A);
    free(B);
    free(sq);
}
END_TEST

START_TEST(test_params)
{
    llmsq_prune_params p = llmsq_prune_default_params();
    ck_assert_int_eq(p.method, LLMSQ_PRUNE_MAGNITUDE);
    ck_assert_double_eq(p.sparsity, 0.5);
    ck_assert_int_eq(p.nm_n, 0);
    ck_assert_int_eq(p.nm_m, 0);
    ck_assert_double_eq(p.damp, 0.01);
    ck_assert_int_eq(p.block_size, 128);
    ck_assert_double_eq(p.ria_alpha, 0.5);
    ck_assert(!p.ria_permute && !p.quantize);
    ck_assert_int_eq(p.quant.bits, llmsq_quant_default_params().bits);
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_OK);

    p.nm_n = 3;
    p.nm_m = 2;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "N:M 3:2: N must be smaller than M"));
    p.nm_n = 2;
    p.nm_m = 2;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    p.nm_n = 0;
    p.nm_m = 4;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    p.nm_n = 2;
    p.nm_m = 128;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    p = llmsq_prune_default_params();
    p.sparsity = 1.0;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "sparsity"));
    p.sparsity = -0.1;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    p.sparsity = NAN;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    p = llmsq_prune_default_params();
    p.method = (llmsq_prune_method)17;
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "method"));
    p = llmsq_prune_default_params();
    p.quantize = true; /* magnitude cannot quantize */
    ck_assert_int_eq(llmsq_prune_params_validate(&p), LLMSQ_STATUS_ARG);

    float W[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    p = llmsq_prune_default_params();
    p.sparsity = 1.0;
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, NULL, &p), LLMSQ_STATUS_ARG);
    p = llmsq_prune_default_params();
    p.method = LLMSQ_PRUNE_WANDA;
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, NULL, &p), LLMSQ_STATUS_ARG); /* no norms */
    double sq[4] = {1, -1, 1, 1};
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, sq, &p), LLMSQ_STATUS_ARG);
    p.method = LLMSQ_PRUNE_SPARSEGPT;
    sq[1] = 1;
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, sq, &p), LLMSQ_STATUS_ARG);
    p.method = LLMSQ_PRUNE_RIA;
    p.ria_permute = true; /* the pass permutes down_proj before; scoring itself ignores the flag */
    float S[8];
    sq[2] = sq[3] = 0;
    ck_assert_int_eq(llmsq_prune_score_matrix(W, 2, 4, sq, &p, S), LLMSQ_OK);
    /* RIA by hand for W = [[1 2 3 4], [5 6 7 8]], sq = [1 1 0 0]: (|w|/rowsum + |w|/colsum) * sqrt(sq)^0.5 */
    ck_assert_float_eq_tol(S[0], (float)(1.0 / 10 + 1.0 / 6), 1e-6f);
    ck_assert_float_eq_tol(S[5], (float)(6.0 / 26 + 6.0 / 8), 1e-6f);
    ck_assert_float_eq(S[2], 0.0f);
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, sq, &p), LLMSQ_OK);
    for (int k = 0; k < 8; k++) W[k] = (float)(k + 1);
    p = llmsq_prune_default_params();
    W[3] = INFINITY;
    ck_assert_int_eq(llmsq_prune_scored(W, 2, 4, NULL, &p), LLMSQ_STATUS_NUMERIC);
    for (int k = 0; k < 8; k++) ck_assert(k == 3 || W[k] == (float)(k + 1));
}
END_TEST

START_TEST(test_helpers)
{
    const float W[2 * 9] = {1, 0, 2, 0, 0, 0, 3, 4, 5, /* row 0: 2:4 ok, last group (1) ok */
                            1, 2, 3, 0, 0, 0, 0, 1, 0};
    ck_assert_double_eq_tol(llmsq_sparsity(W, 18), 9.0 / 18.0, 1e-15);
    ck_assert_double_eq(llmsq_sparsity(W, 0), 0.0);
    int64_t bad = 7;
    ck_assert(!llmsq_check_nm(W, 2, 9, 2, 4, &bad));
    ck_assert_int_eq(bad, 1);
    ck_assert(llmsq_check_nm(W, 1, 9, 2, 4, &bad));
    ck_assert_int_eq(bad, -1);
    ck_assert(llmsq_check_nm(W, 2, 9, 3, 4, &bad));
    const float V[5] = {0, 0, 0, 1, 1}; /* partial last group [4, 5) of 1:4 holds 1 */
    ck_assert(llmsq_check_nm(V, 1, 5, 1, 4, &bad));
    ck_assert(!llmsq_check_nm(V, 1, 5, 1, 3, &bad)); /* [3, 5) holds 2 */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prune");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_unstructured_vs_ref);
    tcase_add_test(tc, test_nm_vs_ref);
    tcase_add_test(tc, test_scores_matter);
    tcase_add_test(tc, test_ties_lower_column_first);
    tcase_add_test(tc, test_threads_identical);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_helpers);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
