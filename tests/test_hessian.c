/* Hessian accumulation (calib/hessian.c) against a naive double X^T X. */
#include "testutil.h"

#include <math.h>
#include <string.h>


/* Activations with a few large channels and a non-zero mean, as LLM inputs have. */
static float *make_x(int64_t T, int64_t n)
{
    float *X = malloc((size_t)(T * n) * sizeof *X);
    ck_assert_ptr_nonnull(X);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < n; j++) X[t * n + j] = (float)((tu_urand() - 0.4) * (j % 13 == 1 ? 40.0 : 1.0));
    return X;
}

/* Chunk sizes, summing to 2048 rows: odd, tiny, and bigger than the internal row chunk. */
static const int64_t k_chunks[] = {7, 1, 300, 600, 1140};

static void accumulate(llmsq_hessian *h, const float *X, int64_t n)
{
    int64_t t0 = 0;
    for (size_t c = 0; c < sizeof k_chunks / sizeof *k_chunks; c++) {
        ck_assert_int_eq(llmsq_hessian_add(h, X + t0 * n, k_chunks[c]), LLMSQ_OK);
        t0 += k_chunks[c];
    }
    ck_assert_int_eq(h->rows, t0);
}

START_TEST(test_hessian_matches_naive)
{
    static const int64_t ns[] = {1, 37, 300};
    const int64_t n = ns[_i], T = 2048;
    tu_rng = tu_seed_from_env() + (uint64_t)n;
    float *X = make_x(T, n);
    llmsq_hessian h;
    ck_assert_int_eq(llmsq_hessian_init(&h, n), LLMSQ_OK);
    accumulate(&h, X, n);
    double *H;
    ck_assert_int_eq(llmsq_hessian_finalize(&h, &H), LLMSQ_OK);
    double worst = 0, *norm2 = calloc((size_t)n, sizeof *norm2);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < n; j++) norm2[j] += (double)X[t * n + j] * X[t * n + j];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += (double)X[t * n + i] * (double)X[t * n + j];
            s *= 2.0 / (double)T;
            /* relative to sqrt(H_ii H_jj), which bounds the sum of |x_i x_j| (Cauchy-Schwarz) */
            const double scale = 2.0 / (double)T * sqrt(norm2[i] * norm2[j]), d = fabs(H[i * n + j] - s) / scale;
            worst = d > worst ? d : worst;
            ck_assert_msg(d <= 1e-12, "H[%lld, %lld] = %.17g, naive %.17g", (long long)i, (long long)j,
                          H[i * n + j], s);
            ck_assert(H[i * n + j] == H[j * n + i]);
            ck_assert(h.sum[i * n + j] == h.sum[j * n + i]);
        }
    fprintf(stderr, "hessian n=%lld: worst relative difference %.3g\n", (long long)n, worst);
    free(norm2);
    free(H);
    free(X);
    llmsq_hessian_free(&h);
    ck_assert_ptr_null(h.sum);
}
END_TEST

/* n = 300: several tiles; n = 100: one tile (a one-thread region, BLAS still serial). */
START_TEST(test_hessian_thread_independent)
{
    const int64_t n = _i == 0 ? 300 : 100, T = 2048;
    tu_rng = tu_seed_from_env() + 3 + (uint64_t)_i;
    float *X = make_x(T, n);
    double *H[3];
    for (int t = 0; t < 3; t++) {
        llmsq_threads_set(t + 1);
        llmsq_hessian h;
        ck_assert_int_eq(llmsq_hessian_init(&h, n), LLMSQ_OK);
        accumulate(&h, X, n);
        ck_assert_int_eq(llmsq_hessian_finalize(&h, &H[t]), LLMSQ_OK);
        llmsq_hessian_free(&h);
    }
    ck_assert(memcmp(H[0], H[1], (size_t)(n * n) * sizeof(double)) == 0);
    ck_assert(memcmp(H[0], H[2], (size_t)(n * n) * sizeof(double)) == 0);
    for (int t = 0; t < 3; t++) free(H[t]);
    free(X);
}
END_TEST

START_TEST(test_hessian_errors)
{
    llmsq_hessian h;
    ck_assert_int_eq(llmsq_hessian_init(&h, 0), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(h.sum);
    llmsq_hessian_free(&h); /* harmless after a failed init */
    ck_assert_int_eq(llmsq_hessian_init(&h, 3), LLMSQ_OK);
    double *H = (double *)1;
    ck_assert_int_eq(llmsq_hessian_finalize(&h, &H), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(H);
    ck_assert_int_eq(llmsq_hessian_add(&h, NULL, 0), LLMSQ_OK);
    ck_assert_int_eq(llmsq_hessian_add(&h, NULL, -1), LLMSQ_STATUS_ARG);
    float X[6] = {1, 2, 3, 4, NAN, 6};
    ck_assert_int_eq(llmsq_hessian_add(&h, X, 2), LLMSQ_STATUS_NUMERIC);
    ck_assert_msg(strstr(llmsq_last_error(), "[1, 1]") != NULL, "%s", llmsq_last_error());
    ck_assert_int_eq(h.rows, 0);
    for (int k = 0; k < 9; k++) ck_assert(h.sum[k] == 0); /* untouched */
    X[4] = 5;
    ck_assert_int_eq(llmsq_hessian_add(&h, X, 2), LLMSQ_OK);
    ck_assert_int_eq(llmsq_hessian_finalize(&h, &H), LLMSQ_OK);
    ck_assert_double_eq(H[0 * 3 + 1], 2.0 / 2 * (1 * 2 + 4 * 5));
    ck_assert_double_eq(H[2 * 3 + 0], 2.0 / 2 * (1 * 3 + 4 * 6));
    free(H);
    llmsq_hessian_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hessian");
    TCase *tc = tcase_create("hessian");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_hessian_matches_naive, 0, 3);
    tcase_add_loop_test(tc, test_hessian_thread_independent, 0, 2);
    tcase_add_test(tc, test_hessian_errors);
    suite_add_tcase(s, tc);
    fprintf(stderr, "test_hessian: seed %llu (LLMSQ_TEST_SEED)\n", (unsigned long long)tu_seed_from_env());
    return tu_run_suite(s);
}
