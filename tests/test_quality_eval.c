/* The foundation's acceptance runs on stories260K (full 767-window perplexity runs, so they
 * carry the "quality" label and run in the release build): the perplexity, windows and token
 * stream of ../shared/refs/stories260K.json through the library and through the llmsq command. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define TEXT "data/tinystories/valid_prefix.txt"
#define REF "refs/stories260K.json"

START_TEST(test_gptq_matches_reference)
{
    TU_SHARED_OR_SKIP(refp, REF);
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(text, TEXT);
    llmsq_model *g_model;
    ck_assert_msg(llmsq_model_open(model, &g_model) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(text, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    llmsq_ppl_params p0 = llmsq_ppl_default_params();
    int32_t *g_ids;
    size_t g_n;
    ck_assert_int_eq(llmsq_ppl_encode(g_model, &d, &p0, &g_ids, &g_n), LLMSQ_OK);
    llmsq_dataset_free(&d);
    json_error_t err;
    json_t *ref = json_load_file(refp, 0, &err);
    ck_assert_ptr_nonnull(ref);
    json_t *tv = json_object_get(ref, "tinystories_valid");
    llmsq_ppl_params p = llmsq_ppl_default_params();
    p.seqlen = 512;
    p.progress = false;
    llmsq_ppl_result r;
    ck_assert_msg(llmsq_ppl_score(g_model, g_ids, g_n, &p, &r) == LLMSQ_OK, "%s", llmsq_last_error());
    double want = json_real_value(json_object_get(tv, "ppl_fp32"));
    fprintf(stderr, "gptq/512: %lld windows, %lld scored, ppl %.6f (reference %.6f, rel %.2e), %.2f s\n",
            (long long)r.windows, (long long)r.tokens, r.ppl, want, fabs(r.ppl / want - 1), r.seconds);
    ck_assert_int_eq(r.stream_tokens, json_integer_value(json_object_get(tv, "tokens")));
    ck_assert_str_eq(r.token_sha256, json_string_value(json_object_get(tv, "token_sha256")));
    ck_assert_int_eq(r.windows, json_integer_value(json_object_get(tv, "windows")));
    ck_assert_int_eq(r.tokens, r.windows * 511);
    ck_assert_msg(fabs(r.ppl / want - 1) <= 5e-4, "ppl %.6f vs reference %.6f", r.ppl, want);
    json_decref(ref);
    free(refp), free(g_ids), free(model), free(text);
    llmsq_model_free(g_model);
}
END_TEST


START_TEST(test_eval_acceptance_command)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(text, "data/tinystories/valid_prefix.txt");
    TU_SHARED_OR_SKIP(refp, "refs/stories260K.json");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "eval --model '%s' --ppl '%s' --protocol gptq --seqlen 512 --json", model, text);
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr), *ref = json_load_file(refp, 0, &jerr);
    ck_assert_msg(o != NULL, "stdout is not one JSON object: %s", out);
    json_t *tv = json_object_get(ref, "tinystories_valid");
    ck_assert_str_eq(json_string_value(json_object_get(o, "protocol")), "gptq");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "windows")), json_integer_value(json_object_get(tv, "windows")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "tokens")), 767 * 511);
    ck_assert_str_eq(json_string_value(json_object_get(o, "token_sha256")),
                     json_string_value(json_object_get(tv, "token_sha256")));
    double ppl = json_real_value(json_object_get(o, "ppl")), want = json_real_value(json_object_get(tv, "ppl_fp32"));
    ck_assert_msg(ppl / want - 1 < 5e-4 && want / ppl - 1 < 5e-4, "ppl %f vs %f", ppl, want);
    fprintf(stderr, "eval: ppl %.6f in %.2f s\n", ppl, json_real_value(json_object_get(o, "seconds")));
    json_decref(o), json_decref(ref);
    free(out), free(err), free(model), free(text), free(refp);
}
END_TEST


int main(void)
{
    Suite *s = suite_create("quality_eval");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_gptq_matches_reference);
    tcase_add_test(tc, test_eval_acceptance_command);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
