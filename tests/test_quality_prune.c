/* Pruning quality on stories260K (full perplexity runs; "quality" label, release build):
 * at 50% unstructured and at 2:4, SparseGPT <= Wanda < magnitude, RIA beside them. */
#include "testutil.h"

#include <math.h>

#define HF "models/stories260K/hf"
#define VALID "data/tinystories/valid_prefix.txt"
#define TRAIN "data/tinystories/train_prefix.txt"

static double pruned_ppl(llmsq_prune_method method, int n, int m, double *zeros)
{
    char *model = tu_shared(HF), *valid = tu_shared(VALID), *train = tu_shared(TRAIN);
    llmsq_model *mo;
    ck_assert_int_eq(llmsq_model_open(model, &mo), LLMSQ_OK);
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.progress = false;
    cp.true_sequential = false; /* llmsq prune's default, as the reference harnesses */
    llmsq_dataset d;
    int32_t *tokens;
    ck_assert_int_eq(llmsq_dataset_load(train, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    ck_assert_int_eq(llmsq_calib_sample(llmsq_model_tokenizer(mo), &d, &cp, &tokens), LLMSQ_OK);
    llmsq_dataset_free(&d);
    llmsq_prune_params pp = llmsq_prune_default_params();
    pp.method = method;
    pp.sparsity = 0.5;
    pp.nm_n = n, pp.nm_m = m;
    llmsq_prune_pass *pass;
    ck_assert_int_eq(llmsq_prune_pass_create(&pp, false, NULL, &pass), LLMSQ_OK);
    ck_assert_msg(llmsq_calib_run(mo, tokens, &cp, llmsq_prune_pass_calib(pass)) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_config *c = llmsq_model_config(mo);
    double z = 0, t = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        ck_assert_int_eq(llmsq_model_rebind_layer(mo, l), LLMSQ_OK);
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char w[160];
            llmsq_linear_weight_name(l, i, w, sizeof w);
            const llmsq_tensor *tt = llmsq_store_get(llmsq_model_store(mo), w);
            const float *W;
            ck_assert_int_eq(llmsq_store_get_f32(llmsq_model_store(mo), w, &W), LLMSQ_OK);
            int64_t bad;
            if (m) ck_assert_msg(llmsq_check_nm(W, tt->shape[0], tt->shape[1], n, m, &bad), "%s row %lld", w, (long long)bad);
            z += llmsq_sparsity(W, tt->shape[0] * tt->shape[1]) * (double)(tt->shape[0] * tt->shape[1]);
            t += (double)(tt->shape[0] * tt->shape[1]);
        }
    }
    *zeros = z / t;
    llmsq_ppl_params p = llmsq_ppl_default_params();
    p.seqlen = 512;
    p.progress = false;
    llmsq_ppl_result r;
    ck_assert_int_eq(llmsq_ppl_file(mo, valid, &p, &r), LLMSQ_OK);
    llmsq_prune_pass_free(pass);
    llmsq_model_free(mo);
    free(tokens), free(model), free(valid), free(train);
    return r.ppl;
}

static void check_order(int n, int m)
{
    double zm, zw, zs, zr;
    double mag = pruned_ppl(LLMSQ_PRUNE_MAGNITUDE, n, m, &zm), wanda = pruned_ppl(LLMSQ_PRUNE_WANDA, n, m, &zw);
    double sgpt = pruned_ppl(LLMSQ_PRUNE_SPARSEGPT, n, m, &zs), ria = pruned_ppl(LLMSQ_PRUNE_RIA, n, m, &zr);
    fprintf(stderr, "%s: magnitude %.4f (%.1f%%) wanda %.4f (%.1f%%) sparsegpt %.4f (%.1f%%) ria %.4f (%.1f%%)\n",
            m ? "2:4" : "50%", mag, 100 * zm, wanda, 100 * zw, sgpt, 100 * zs, ria, 100 * zr);
    for (int i = 0; i < 4; i++) {
        double z = i == 0 ? zm : i == 1 ? zw : i == 2 ? zs : zr;
        ck_assert_msg(fabs(z - 0.5) < 0.01, "zeros %.4f, want 50%%", z);
    }
    ck_assert_msg(sgpt <= wanda, "SparseGPT %.4f above Wanda %.4f", sgpt, wanda);
    ck_assert_msg(wanda < mag, "Wanda %.4f not below magnitude %.4f", wanda, mag);
}

START_TEST(test_unstructured_order)
{
    TU_SHARED_OR_SKIP(p, HF);
    check_order(0, 0);
    free(p);
}
END_TEST

START_TEST(test_24_order)
{
    TU_SHARED_OR_SKIP(p, HF);
    check_order(2, 4);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quality_prune");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_unstructured_order);
    tcase_add_test(tc, test_24_order);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
