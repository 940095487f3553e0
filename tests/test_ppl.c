/* Perplexity protocols against ../shared/refs/stories260K.json and against a direct
 * log-softmax over forward logits. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define TEXT "data/tinystories/valid_prefix.txt"
#define REF "refs/stories260K.json"

static llmsq_model *g_model;
static int32_t *g_ids;
static size_t g_n;

/* Loads the model and the gptq-encoded stream once per process (each test forks). */
static bool setup_stream(void)
{
    char *dir = tu_shared(HF), *text = tu_shared(TEXT);
    if (!dir || !text) {
        fprintf(stderr, "SKIP: ../shared/%s or ../shared/%s not found (set LLMSQ_SHARED)\n", HF, TEXT);
        free(dir), free(text);
        return false;
    }
    if (!g_model) {
        ck_assert_msg(llmsq_model_open(dir, &g_model) == LLMSQ_OK, "%s", llmsq_last_error());
        llmsq_dataset d;
        ck_assert_int_eq(llmsq_dataset_load(text, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
        llmsq_ppl_params p = llmsq_ppl_default_params();
        ck_assert_int_eq(llmsq_ppl_encode(g_model, &d, &p, &g_ids, &g_n), LLMSQ_OK);
        llmsq_dataset_free(&d);
    }
    free(dir), free(text);
    return true;
}

static llmsq_ppl_params params(const char *proto, int64_t seqlen, int64_t max_windows)
{
    llmsq_ppl_params p = llmsq_ppl_default_params();
    ck_assert_int_eq(llmsq_ppl_parse_protocol(proto, &p), LLMSQ_OK);
    p.seqlen = seqlen;
    p.max_windows = max_windows;
    p.progress = false;
    return p;
}

/* The first window's NLL recomputed from forward logits with a plain double log-softmax. */
START_TEST(test_window_nll_matches_direct_softmax)
{
    if (!setup_stream()) return;
    const llmsq_config *c = llmsq_model_config(g_model);
    const int64_t T = 128, V = c->vocab_size;
    llmsq_ppl_params p = params("gptq", T, 1);
    llmsq_ppl_result r;
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &p, &r), LLMSQ_OK);
    float *lg = malloc((size_t)(T * V) * sizeof *lg);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(c, T, &cache), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_forward(g_model, cache, g_ids, T, lg, NULL), LLMSQ_OK);
    double nll = 0;
    for (int64_t t = 0; t + 1 < T; t++) {
        double se = 0;
        for (int64_t v = 0; v < V; v++) se += exp((double)lg[t * V + v]);
        nll += log(se) - lg[t * V + g_ids[t + 1]];
    }
    ck_assert_int_eq(r.tokens, T - 1);
    /* The scorer computes logits 64 rows at a time, the forward all 128 at once: sgemm may
     * round the f32 dot products differently per tile (a few ulp of logits up to ~30), so
     * the sums agree to ~1e-6 relative, not bit for bit. */
    fprintf(stderr, "window NLL %.9f, direct %.9f\n", r.nll_sum, nll);
    ck_assert_double_eq_tol(r.nll_sum, nll, 1e-6 * fabs(nll));
    llmsq_kv_cache_free(cache);
    free(lg);
}
END_TEST

START_TEST(test_thread_count_does_not_change_result)
{
    if (!setup_stream()) return;
    llmsq_ppl_params p = params("gptq", 256, 12);
    llmsq_ppl_result a, b;
    llmsq_threads_set(1);
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &p, &a), LLMSQ_OK);
    llmsq_threads_set(2);
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &p, &b), LLMSQ_OK);
    ck_assert(a.nll_sum == b.nll_sum);
}
END_TEST

START_TEST(test_llamacpp_scores_second_half)
{
    if (!setup_stream()) return;
    llmsq_ppl_params p = params("llamacpp", 0, 4);
    llmsq_ppl_result r;
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &p, &r), LLMSQ_OK);
    ck_assert_int_eq(r.seqlen, 512);
    ck_assert_int_eq(r.windows, 4);
    ck_assert_int_eq(r.tokens, 4 * 255); /* positions 256..510 predict 257..511 */
    ck_assert(isfinite(r.ppl) && r.ppl > 1);
}
END_TEST

/* stride == seqlen reproduces gptq windows; a real stride scores every token once. */
START_TEST(test_stride_protocol)
{
    if (!setup_stream()) return;
    llmsq_ppl_result g, s, t;
    llmsq_ppl_params pg = params("gptq", 128, 5), ps = params("stride:128", 128, 5);
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &pg, &g), LLMSQ_OK);
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &ps, &s), LLMSQ_OK);
    ck_assert(g.nll_sum == s.nll_sum && g.tokens == s.tokens);
    /* a short stream: every token after the first is scored exactly once */
    size_t n = 1000;
    llmsq_ppl_params pt = params("stride:64", 256, 0);
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, n, &pt, &t), LLMSQ_OK);
    ck_assert_int_eq(t.tokens, (int64_t)n - 1);
    llmsq_ppl_params bad = llmsq_ppl_default_params();
    ck_assert_int_eq(llmsq_ppl_parse_protocol("stride:0", &bad), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_ppl_parse_protocol("stride:x", &bad), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_ppl_parse_protocol("wikitext", &bad), LLMSQ_STATUS_ARG);
}
END_TEST

/* docs: each blank-line document starts with BOS. */
START_TEST(test_docs_protocol_bos_per_document)
{
    TU_SHARED_OR_SKIP(text, TEXT);
    if (!setup_stream()) return;
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(text, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    llmsq_ppl_params p = params("docs", 512, 0);
    int32_t *ids;
    size_t n, bos = 0;
    ck_assert_int_eq(llmsq_ppl_encode(g_model, &d, &p, &ids, &n), LLMSQ_OK);
    for (size_t i = 0; i < n; i++) bos += ids[i] == 1;
    ck_assert_int_eq(ids[0], 1);
    ck_assert_uint_eq(bos, d.n_docs);
    ck_assert_uint_gt(d.n_docs, 100);
    free(ids);
    llmsq_dataset_free(&d);
    free(text);
}
END_TEST

START_TEST(test_too_short_and_too_long)
{
    if (!setup_stream()) return;
    llmsq_ppl_params p = params("gptq", 512, 0);
    llmsq_ppl_result r;
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, 100, &p, &r), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "fewer than one window"));
    p.seqlen = 4096;
    ck_assert_int_eq(llmsq_ppl_score(g_model, g_ids, g_n, &p, &r), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "context"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ppl");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_window_nll_matches_direct_softmax);
    tcase_add_test(tc, test_thread_count_does_not_change_result);
    tcase_add_test(tc, test_llamacpp_scores_second_half);
    tcase_add_test(tc, test_stride_protocol);
    tcase_add_test(tc, test_docs_protocol_bos_per_document);
    tcase_add_test(tc, test_too_short_and_too_long);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
