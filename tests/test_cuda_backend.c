/* The CUDA backend boundary: a build with or without CUDA, on a machine with or without a
 * GPU, must report devices truthfully and never fail at device discovery. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

START_TEST(test_discovery)
{
    int n = llmsq_cuda_device_count();
    ck_assert_int_ge(n, 0);
    if (!llmsq_cuda_compiled()) ck_assert_int_eq(n, 0);
    ck_assert_int_eq(llmsq_cuda_device_count(), n); /* stable across calls */

    llmsq_device_info info;
    llmsq_status want = llmsq_cuda_compiled() ? LLMSQ_STATUS_ARG : LLMSQ_STATUS_UNSUPPORTED;
    ck_assert_int_eq(llmsq_cuda_device_info(-1, &info), want);
    ck_assert_int_eq(llmsq_cuda_device_info(n, &info), want);
    ck_assert_str_ne(llmsq_last_error(), "");

    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(llmsq_cuda_device_info(i, &info), LLMSQ_OK);
        ck_assert_int_eq(info.kind, LLMSQ_DEVICE_CUDA);
        ck_assert_int_eq(info.index, i);
        ck_assert_str_ne(info.name, "");
        ck_assert_uint_gt(info.memory_bytes, 0);
        ck_assert_int_ge(info.cc_major, 1);
        fprintf(stderr, "cuda device %d: %s, %.1f GiB, sm_%d%d\n", i, info.name,
                info.memory_bytes / 1073741824.0, info.cc_major, info.cc_minor);
    }
    fprintf(stderr, "cuda backend: compiled=%s, %d device(s)\n",
            llmsq_cuda_compiled() ? "yes" : "no", n);
}
END_TEST

static float frand(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* C = A B^T against a double-precision loop. Budget: the standard bound for a length-k
 * float dot product, |err| <= k * u * sum|a||b| with u = FLT_EPSILON/2, times 2 for slack
 * on blocked or split-k summation orders. */
static void check_sgemm(int64_t m, int64_t n, int64_t k)
{
    unsigned st = (unsigned)(m * 131 + n * 17 + k);
    float *a = malloc((size_t)(m * k + 1) * sizeof *a);
    float *b = malloc((size_t)(n * k + 1) * sizeof *b);
    float *c = malloc((size_t)(m * n + 1) * sizeof *c);
    ck_assert(a && b && c);
    for (int64_t i = 0; i < m * k; i++) a[i] = frand(&st);
    for (int64_t i = 0; i < n * k; i++) b[i] = frand(&st);
    for (int64_t i = 0; i < m * n; i++) c[i] = NAN;
    ck_assert_msg(llmsq_cuda_sgemm_nt(m, n, k, a, b, c) == LLMSQ_OK, "%s", llmsq_last_error());
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
                ref += (double)a[i * k + p] * b[j * k + p];
                mag += fabs((double)a[i * k + p] * b[j * k + p]);
            }
            double tol = 2.0 * (double)k * (FLT_EPSILON / 2) * mag + FLT_MIN;
            double got = c[i * n + j];
            ck_assert_msg(fabs(got - ref) <= tol, "sgemm %lldx%lldx%lld: C[%lld,%lld] = %.9g, want %.9g (tol %.3g)",
                          (long long)m, (long long)n, (long long)k, (long long)i, (long long)j, got, ref, tol);
        }
    }
    free(a);
    free(b);
    free(c);
}

START_TEST(test_sgemm)
{
    if (llmsq_cuda_device_count() == 0) {
        float a[2] = {1, 2}, b[2] = {3, 4}, c[1];
        llmsq_status s = llmsq_cuda_sgemm_nt(1, 1, 2, a, b, c);
        ck_assert_int_eq(s, LLMSQ_STATUS_UNSUPPORTED);
        fprintf(stderr, "SKIP test_sgemm device part: no CUDA device (%s)\n", llmsq_last_error());
        return;
    }
    check_sgemm(1, 1, 1);
    check_sgemm(3, 5, 7);
    check_sgemm(67, 129, 257);
    check_sgemm(128, 64, 4095);
    float c[6] = {1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(llmsq_cuda_sgemm_nt(2, 3, 0, NULL, NULL, c), LLMSQ_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(c[i], 0.0f);
    ck_assert_int_eq(llmsq_cuda_sgemm_nt(-1, 3, 2, NULL, NULL, c), LLMSQ_STATUS_ARG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_backend");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_discovery);
    tcase_add_test(tc, test_sgemm);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
