/* Forward pass against the float64 reference fixture, across the three checkpoint formats,
 * and consistency between whole-sequence, incremental (KV cache) and per-block forwards. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define GGUF "models/stories260K/gguf/stories260K.gguf"
#define L2C "models/stories260K/llama2c/stories260K.bin"
#define FIXTURE "refs/stories260K-fixture.json"

static llmsq_model *open_model(const char *path)
{
    llmsq_model *m = NULL;
    llmsq_status st = llmsq_model_open(path, &m);
    ck_assert_msg(st == LLMSQ_OK, "open %s: %s", path, llmsq_last_error());
    return m;
}

/* Logits [T, V] of a fresh whole-sequence forward. */
static float *logits_of(const llmsq_model *m, const int32_t *ids, int64_t T)
{
    const llmsq_config *c = llmsq_model_config(m);
    float *lg = malloc((size_t)(T * c->vocab_size) * sizeof *lg);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(c, T, &cache), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_forward(m, cache, ids, T, lg, NULL), LLMSQ_OK);
    llmsq_kv_cache_free(cache);
    return lg;
}

typedef struct fixture {
    json_t  *root;
    int32_t *ids;
    int64_t  T;
} fixture;

static bool load_fixture(fixture *f)
{
    char *path = tu_shared(FIXTURE);
    if (!path) return false;
    json_error_t err;
    f->root = json_load_file(path, 0, &err);
    ck_assert_msg(f->root != NULL, "%s: %s", path, err.text);
    json_t *ids = json_object_get(f->root, "first_ids");
    f->T = (int64_t)json_array_size(ids);
    ck_assert_int_gt(f->T, 0);
    f->ids = malloc((size_t)f->T * sizeof *f->ids);
    for (int64_t i = 0; i < f->T; i++) f->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    free(path);
    return true;
}

static void free_fixture(fixture *f)
{
    json_decref(f->root);
    free(f->ids);
}

START_TEST(test_logits_match_float64_reference)
{
    TU_SHARED_OR_SKIP(dir, HF);
    fixture f;
    ck_assert(load_fixture(&f));
    llmsq_model *m = open_model(dir);
    const int64_t V = llmsq_model_config(m)->vocab_size;
    float *lg = logits_of(m, f.ids, f.T);
    json_t *ref = json_object_get(f.root, "logits_first_positions");
    ck_assert_int_eq((int64_t)json_array_size(ref), f.T);
    double worst = 0;
    for (int64_t t = 0; t < f.T; t++) {
        json_t *row = json_array_get(ref, (size_t)t);
        ck_assert_int_eq((int64_t)json_array_size(row), V);
        for (int64_t v = 0; v < V; v++) {
            double d = fabs(json_number_value(json_array_get(row, (size_t)v)) - (double)lg[t * V + v]);
            worst = d > worst ? d : worst;
        }
    }
    fprintf(stderr, "max |logit - float64 reference| over %lld positions: %.3g\n", (long long)f.T, worst);
    ck_assert_msg(worst <= 1e-3, "max abs logit diff %g > 1e-3", worst);
    free(lg);
    llmsq_model_free(m);
    free_fixture(&f);
    free(dir);
}
END_TEST

START_TEST(test_three_formats_same_logits)
{
    TU_SHARED_OR_SKIP(hf, HF);
    TU_SHARED_OR_SKIP(gguf, GGUF);
    TU_SHARED_OR_SKIP(l2c, L2C);
    fixture f;
    ck_assert(load_fixture(&f));
    llmsq_model *a = open_model(hf), *b = open_model(gguf), *c = open_model(l2c);
    const int64_t V = llmsq_model_config(a)->vocab_size;
    ck_assert_int_eq(llmsq_model_config(b)->vocab_size, V);
    ck_assert_int_eq(llmsq_model_config(c)->vocab_size, V);
    float *la = logits_of(a, f.ids, f.T), *lb = logits_of(b, f.ids, f.T), *lc = logits_of(c, f.ids, f.T);
    double dab = tu_max_abs_diff(la, lb, (size_t)(f.T * V)), dac = tu_max_abs_diff(la, lc, (size_t)(f.T * V));
    fprintf(stderr, "max |logit diff| hf vs gguf %.3g, hf vs llama2c %.3g\n", dab, dac);
    ck_assert_msg(dab <= 1e-4, "hf vs gguf: %g", dab);
    ck_assert_msg(dac <= 1e-4, "hf vs llama2c: %g", dac);
    free(la), free(lb), free(lc);
    llmsq_model_free(a), llmsq_model_free(b), llmsq_model_free(c);
    free_fixture(&f);
    free(hf), free(gguf), free(l2c);
}
END_TEST

/* Prefill of k tokens then one-token decode steps must give the whole-sequence logits. */
START_TEST(test_kv_cache_decode_matches_full)
{
    TU_SHARED_OR_SKIP(dir, HF);
    fixture f;
    ck_assert(load_fixture(&f));
    llmsq_model *m = open_model(dir);
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t V = c->vocab_size, T = f.T;
    float *full = logits_of(m, f.ids, T);
    float *step = malloc((size_t)(T * V) * sizeof *step);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(c, T, &cache), LLMSQ_OK);
    int64_t k = 5;
    ck_assert_int_eq(llmsq_model_forward(m, cache, f.ids, k, step, NULL), LLMSQ_OK);
    for (int64_t t = k; t < T; t++)
        ck_assert_int_eq(llmsq_model_forward(m, cache, f.ids + t, 1, step + t * V, NULL), LLMSQ_OK);
    ck_assert_int_eq(llmsq_kv_cache_len(cache), T);
    double d = tu_max_abs_diff(full, step, (size_t)(T * V));
    fprintf(stderr, "incremental vs whole-sequence logits: %.3g\n", d);
    ck_assert_msg(d <= 1e-4, "incremental decode differs by %g", d);
    /* the cache is full now: one more token is an error, not an overflow */
    ck_assert_int_eq(llmsq_model_forward(m, cache, f.ids, 1, step, NULL), LLMSQ_STATUS_ARG);
    llmsq_kv_cache_free(cache);
    free(full), free(step);
    llmsq_model_free(m);
    free_fixture(&f);
    free(dir);
}
END_TEST

/* embed -> block_forward per layer -> head is the calibration path; it must equal forward. */
START_TEST(test_block_forward_composes)
{
    TU_SHARED_OR_SKIP(dir, HF);
    fixture f;
    ck_assert(load_fixture(&f));
    llmsq_model *m = open_model(dir);
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t V = c->vocab_size, T = f.T, d = c->hidden_size;
    float *full = logits_of(m, f.ids, T);
    float *x = malloc((size_t)(T * d) * sizeof *x), *lg = malloc((size_t)(T * V) * sizeof *lg);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(c, T, &cache), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_embed(m, f.ids, T, x), LLMSQ_OK);
    for (int64_t l = 0; l < c->n_layers; l++) ck_assert_int_eq(llmsq_model_block_forward(m, l, cache, x, T), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_head(m, x, T, NULL, lg), LLMSQ_OK);
    ck_assert(tu_max_abs_diff(full, lg, (size_t)(T * V)) == 0.0);
    llmsq_kv_cache_free(cache);
    free(full), free(x), free(lg);
    llmsq_model_free(m);
    free_fixture(&f);
    free(dir);
}
END_TEST

START_TEST(test_greedy_matches_reference)
{
    TU_SHARED_OR_SKIP(dir, HF);
    fixture f;
    ck_assert(load_fixture(&f));
    llmsq_model *m = open_model(dir);
    json_t *ref = json_object_get(f.root, "greedy_from_bos_ids");
    size_t n_ref = json_array_size(ref);
    ck_assert_int_gt(n_ref, 1);
    int32_t bos = (int32_t)json_integer_value(json_array_get(ref, 0));
    int32_t *out;
    size_t n;
    ck_assert_int_eq(llmsq_generate_greedy(m, &bos, 1, (int64_t)n_ref - 1, &out, &n), LLMSQ_OK);
    ck_assert_uint_eq(n, n_ref);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(out[i] == json_integer_value(json_array_get(ref, i)), "token %zu: %d vs %lld", i, out[i],
                      (long long)json_integer_value(json_array_get(ref, i)));
    free(out);
    llmsq_model_free(m);
    free_fixture(&f);
    free(dir);
}
END_TEST

/* A token id outside the vocabulary is an ARG error, not an out-of-bounds read. */
START_TEST(test_bad_token_rejected)
{
    TU_SHARED_OR_SKIP(dir, HF);
    llmsq_model *m = open_model(dir);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(llmsq_model_config(m), 4, &cache), LLMSQ_OK);
    int32_t ids[2] = {1, 100000};
    ck_assert_int_eq(llmsq_model_forward(m, cache, ids, 2, NULL, NULL), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "outside the vocabulary"));
    llmsq_kv_cache_free(cache);
    llmsq_model_free(m);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_logits_match_float64_reference);
    tcase_add_test(tc, test_three_formats_same_logits);
    tcase_add_test(tc, test_kv_cache_decode_matches_full);
    tcase_add_test(tc, test_block_forward_composes);
    tcase_add_test(tc, test_greedy_matches_reference);
    tcase_add_test(tc, test_bad_token_rejected);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
