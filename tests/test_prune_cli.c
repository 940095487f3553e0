/* llmsq prune end to end: bad parameters, the 2:4 structure of a written checkpoint read
 * back, determinism. */
#include "testutil.h"

#include <string.h>

#define HF "models/stories260K/hf"
#define TRAIN "data/tinystories/train_prefix.txt"

static void expect_rc(int want, const char *args, const char *needle)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == want, "llmsq %s: exit %d (want %d): %s", args, rc, want, err);
    if (needle) ck_assert_msg(strstr(err, needle), "llmsq %s: '%s' not in: %s", args, needle, err);
    ck_assert_msg(!strstr(err, "AddressSanitizer") && !strstr(err, "runtime error"), "%s", err);
    free(out), free(err);
}

START_TEST(test_bad_parameters)
{
    TU_SHARED_OR_SKIP(model, HF);
    char *dir = tu_tmpdir("pbad");
    char a[8192];
    snprintf(a, sizeof a, "prune --model %s --method magnitude --nm 3:2 --out %s/o", model, dir);
    expect_rc(2, a, "3:2");
    snprintf(a, sizeof a, "prune --model %s --method magnitude --sparsity 1 --out %s/o", model, dir);
    expect_rc(2, a, "sparsity");
    snprintf(a, sizeof a, "prune --model %s --method magnitude --skip 'x(' --out %s/o", model, dir);
    expect_rc(1, a, "--skip");
    snprintf(a, sizeof a, "prune --model %s --method wanda --out %s/o", model, dir);
    expect_rc(2, a, "--calib");
    snprintf(a, sizeof a, "prune --model %s --method wanda --then-quantize gptq --calib x --out %s/o", model, dir);
    expect_rc(2, a, "sparsegpt");
    snprintf(a, sizeof a, "%s/o", dir);
    ck_assert(!llmsq_is_dir(a));
    free(dir), free(model);
}
END_TEST

/* 2:4 SparseGPT checkpoint: read back, every block linear has at most 2 nonzeros in each group
 * of 4 along the input dimension; two runs give the same bytes. */
START_TEST(test_24_checkpoint)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(train, TRAIN);
    char *dir = tu_tmpdir("p24");
    char a[8192], *out, *err;
    for (int k = 0; k < 2; k++) {
        snprintf(a, sizeof a, "prune --model %s --method sparsegpt --nm 2:4 --calib %s --nsamples 8 --seqlen 128 "
                 "--quiet --out %s/o%d", model, train, dir, k);
        int rc = tu_run_cli(a, &out, &err);
        ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
        free(out), free(err);
    }
    snprintf(a, sizeof a, "%s/o0", dir);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(a, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_config *c = llmsq_model_config(m);
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char w[160];
            llmsq_linear_weight_name(l, i, w, sizeof w);
            const llmsq_tensor *t = llmsq_store_get(llmsq_model_store(m), w);
            const float *W;
            ck_assert_int_eq(llmsq_store_get_f32(llmsq_model_store(m), w, &W), LLMSQ_OK);
            for (int64_t r = 0; r < t->shape[0]; r++)
                for (int64_t g = 0; g < t->shape[1]; g += 4) {
                    int nz = 0;
                    for (int64_t j = g; j < g + 4 && j < t->shape[1]; j++) nz += W[r * t->shape[1] + j] != 0.0f;
                    ck_assert_msg(nz <= 2, "%s row %lld group %lld: %d nonzeros", w, (long long)r, (long long)g, nz);
                }
        }
    llmsq_model_free(m);
    char h0[65], h1[65], p0[4096], p1[4096];
    snprintf(p0, sizeof p0, "%s/o0/model.safetensors", dir);
    snprintf(p1, sizeof p1, "%s/o1/model.safetensors", dir);
    ck_assert_int_eq(llmsq_sha256_file(p0, h0), LLMSQ_OK);
    ck_assert_int_eq(llmsq_sha256_file(p1, h1), LLMSQ_OK);
    ck_assert_str_eq(h0, h1);
    free(dir), free(model), free(train);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prune_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bad_parameters);
    tcase_add_test(tc, test_24_checkpoint);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
