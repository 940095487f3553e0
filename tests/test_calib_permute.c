/* The runner's permute_input hook (calib.h): a permutation of down_proj's input channels is
 * folded into gate/up rows exactly, so a pass that changes nothing else leaves the model's
 * function unchanged while down_proj's columns are permuted; and RIA with --ria-permute keeps
 * every 2:4 group valid. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define TRAIN "data/tinystories/train_prefix.txt"

/* A reversing permutation in blocks of 3: nontrivial and its own kind of scramble. */
static llmsq_status permute(void *user, const llmsq_linear_job *job, int32_t *perm, bool *use)
{
    (void)user;
    for (int64_t k = 0; k < job->in; k++) perm[k] = (int32_t)(job->in - 1 - k);
    for (int64_t k = 0; k + 3 <= job->in; k += 3) {
        int32_t t = perm[k];
        perm[k] = perm[k + 2];
        perm[k + 2] = t;
    }
    *use = true;
    return LLMSQ_OK;
}

/* Keeps W; checks that the statistics arrived permuted the same way as W's columns. */
static llmsq_status keep(void *user, const llmsq_linear_job *job, float *W, llmsq_qlinear **q)
{
    (void)W;
    *q = NULL;
    double *ref_sq = user;
    if (job->id == LLMSQ_LINEAR_DOWN && job->layer == 0) {
        int32_t perm[4096];
        bool use;
        ck_assert_int_lt(job->in, 4096);
        permute(NULL, job, perm, &use);
        for (int64_t j = 0; j < job->in; j++)
            ck_assert_msg(fabs(job->stats->sq_sum[j] - ref_sq[perm[j]]) <= 1e-6 * (1 + ref_sq[perm[j]]),
                          "statistic of column %lld not permuted", (long long)j);
    }
    return LLMSQ_OK;
}

static llmsq_status record(void *user, const llmsq_linear_job *job, float *W, llmsq_qlinear **q)
{
    (void)W;
    *q = NULL;
    if (job->id == LLMSQ_LINEAR_DOWN && job->layer == 0) memcpy(user, job->stats->sq_sum, (size_t)job->in * sizeof(double));
    return LLMSQ_OK;
}

START_TEST(test_permutation_folds_exactly)
{
    TU_SHARED_OR_SKIP(hf, HF);
    char *train = tu_shared(TRAIN);
    llmsq_model *ref, *m;
    ck_assert_int_eq(llmsq_model_open(hf, &ref), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_open(hf, &m), LLMSQ_OK);
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.nsamples = 2;
    cp.seqlen = 64;
    cp.progress = false;
    llmsq_dataset ds;
    int32_t *tok;
    ck_assert_int_eq(llmsq_dataset_load(train, LLMSQ_TEXT_AUTO, &ds), LLMSQ_OK);
    ck_assert_int_eq(llmsq_calib_sample(llmsq_model_tokenizer(m), &ds, &cp, &tok), LLMSQ_OK);
    llmsq_dataset_free(&ds);
    const int64_t F = llmsq_model_config(m)->intermediate_size, d = llmsq_model_config(m)->hidden_size;
    double *sq = calloc((size_t)F, sizeof *sq);
    /* the down_proj statistics without permutation, then with it */
    llmsq_calib_pass rec = {.name = "record", .needs_channel_stats = true, .run_dense = record, .user = sq};
    ck_assert_int_eq(llmsq_calib_run(ref, tok, &cp, &rec), LLMSQ_OK);
    llmsq_calib_pass p = {.name = "permute", .needs_channel_stats = true, .run_dense = keep, .permute_input = permute,
                          .user = sq};
    ck_assert_msg(llmsq_calib_run(m, tok, &cp, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++) {
        ck_assert_int_eq(llmsq_model_rebind_layer(m, l), LLMSQ_OK);
        ck_assert_int_eq(llmsq_model_rebind_layer(ref, l), LLMSQ_OK);
    }
    /* down_proj columns and gate rows moved */
    const llmsq_layer_weights *a = llmsq_model_layer(m, 3), *b = llmsq_model_layer(ref, 3);
    int32_t perm[4096];
    bool use;
    llmsq_linear_job job = {.in = F};
    permute(NULL, &job, perm, &use);
    for (int64_t o = 0; o < d; o++)
        for (int64_t k = 0; k < F; k++) ck_assert(a->wd[o * F + k] == b->wd[o * F + perm[k]]);
    for (int64_t k = 0; k < F; k++) ck_assert(a->wg[k * d] == b->wg[(int64_t)perm[k] * d]);
    ck_assert_msg(tu_max_abs_diff(a->wd, b->wd, (size_t)(d * F)) > 0, "down_proj unchanged");
    /* the function did not change (down_proj's sums run in another order: f32 round-off only) */
    float *l0 = tu_logits(ref, tok, 64), *l1 = tu_logits(m, tok, 64);
    double diff = tu_max_abs_diff(l0, l1, (size_t)(64 * llmsq_model_config(m)->vocab_size));
    ck_assert_msg(diff <= 1e-4, "folded permutation changed logits by %g", diff);
    free(l0), free(l1), free(tok), free(sq), free(train), free(hf);
    llmsq_model_free(m);
    llmsq_model_free(ref);
}
END_TEST

START_TEST(test_ria_permute_cli)
{
    TU_SHARED_OR_SKIP(hf, HF);
    char *train = tu_shared(TRAIN), *dir = tu_tmpdir("ria_perm"), *o = tu_path(dir, "out"), args[2048];
    snprintf(args, sizeof args,
             "prune --model %s --method ria --nm 2:4 --ria-permute --calib %s --nsamples 4 --seqlen 128 --quiet --out %s",
             hf, train, o);
    char *out = NULL, *err = NULL;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 0, "%s: %s", args, err);
    free(out), free(err);
    /* the checkpoint reader verifies every 2:4 group on load */
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(o, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_layer_weights *w = llmsq_model_layer(m, 0);
    const int64_t F = llmsq_model_config(m)->intermediate_size, d = llmsq_model_config(m)->hidden_size;
    for (int64_t r = 0; r < d; r++)
        for (int64_t g = 0; g < F; g += 4) {
            int nz = 0;
            for (int k = 0; k < 4; k++) nz += w->wd[r * F + g + k] != 0.0f;
            ck_assert_int_le(nz, 2);
        }
    llmsq_model_free(m);
    snprintf(args, sizeof args, "prune --model %s --method wanda --nm 2:4 --ria-permute --calib %s --out %s", hf, train, o);
    rc = tu_run_cli(args, &out, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(err, "--ria-permute applies"), "%s", err);
    free(out), free(err), free(o), free(dir), free(train), free(hf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("calib_permute");
    TCase *tc = tcase_create("permute");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_permutation_folds_exactly);
    tcase_add_test(tc, test_ria_permute_cli);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
