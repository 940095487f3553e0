/* AWQ, SmoothQuant and W8A8 inference (fast checks; perplexity targets are in
 * test_quality_quant.c):
 *  - AutoAWQ's quantization grid and the int8 activation quantizer against hand-worked vectors;
 *  - the attention and MLP halves used by the AWQ search recompose the block forward;
 *  - the AWQ-scaled float model (scales folded, before quantization) keeps the logits within 1e-4;
 *  - W8A8 activations are really quantized at inference;
 *  - AWQ bytes do not depend on the thread count; CLI errors. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define TRAIN "data/tinystories/train_prefix.txt"

START_TEST(test_awq_grid_vectors)
{
    /* group 1 spans 0: s = (0.9 + 0.3) / 15 = 0.08, z = -round(-0.3 / 0.08) = 4 */
    /* group 2 is all positive: 0 is not forced into the range, so z = -round(0.25 / s) clamps to 0
     * and 1.05 / s = 19.7 clamps to code 15 (AutoAWQ clips it too) */
    const float W[8] = {-0.3f, 0.1f, 0.5f, 0.9f, 0.25f, 0.45f, 0.6f, 1.05f};
    llmsq_quant_params p = llmsq_quant_default_params();
    p.bits = 4;
    p.group_size = 4;
    p.grid = LLMSQ_QGRID_AWQ;
    p.scale_dtype = LLMSQ_DTYPE_F32;
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 1, 8, &p, &q), LLMSQ_OK);
    ck_assert_float_eq_tol(q->scales[0], 0.08f, 1e-7f);
    ck_assert_int_eq(q->zeros[0], 4);
    ck_assert_float_eq_tol(q->scales[1], 0.8f / 15, 1e-7f);
    ck_assert_int_eq(q->zeros[1], 0);
    const uint8_t want[8] = {0, 5, 10, 15, 5, 8, 11, 15};
    for (int i = 0; i < 8; i++) ck_assert_msg(q->codes[i] == want[i], "code %d: %d, want %d", i, q->codes[i], want[i]);
    llmsq_qlinear_free(q);
    /* MINMAX (GPTQ's) forces 0 into group 2: z = 0 and s = 1.05 / 15, no clipping */
    p.grid = LLMSQ_QGRID_MINMAX;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 1, 8, &p, &q), LLMSQ_OK);
    ck_assert_float_eq_tol(q->scales[1], 1.05f / 15, 1e-7f);
    ck_assert_int_eq(q->codes[7], 15);
    ck_assert_int_eq(q->codes[4], 4); /* 0.25 / 0.07 = 3.57 */
    llmsq_qlinear_free(q);
}
END_TEST

START_TEST(test_act_quant_vectors)
{
    const float x[5] = {0.5f, -1.27f, 0.0f, 1.27f, 0.6349f};
    int8_t q[5];
    float s = llmsq_act_quant_i8(x, 5, 0.0f, q);
    ck_assert_float_eq_tol(s, 0.01f, 1e-8f);
    const int8_t want[5] = {50, -127, 0, 127, 63};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(q[i], want[i]);
    /* a static scale saturates at the int8 range */
    const float y[3] = {3.0f, -3.0f, 0.03f};
    s = llmsq_act_quant_i8(y, 3, 0.02f, q);
    ck_assert_float_eq(s, 0.02f);
    ck_assert_int_eq(q[0], 127);
    ck_assert_int_eq(q[1], -128);
    ck_assert_int_eq(q[2], 2); /* 1.5 rounds half to even */
    const float z[2] = {0, 0};
    ck_assert_float_eq(llmsq_act_quant_i8(z, 2, 0.0f, q), 1.0f);
    ck_assert_int_eq(q[0], 0);
}
END_TEST

static void rmsnorm_ref(const float *x, const float *w, int64_t T, int64_t d, double eps, float *y)
{
    for (int64_t t = 0; t < T; t++) {
        double ss = 0;
        for (int64_t i = 0; i < d; i++) ss += (double)x[t * d + i] * x[t * d + i];
        const float inv = (float)(1.0 / sqrt(ss / (double)d + eps));
        for (int64_t i = 0; i < d; i++) y[t * d + i] = x[t * d + i] * inv * w[i];
    }
}

START_TEST(test_attn_mlp_recompose_block)
{
    TU_SHARED_OR_SKIP(hf, HF);
    llmsq_model *m;
    ck_assert_int_eq(llmsq_model_open(hf, &m), LLMSQ_OK);
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t T = 37, d = c->hidden_size;
    int32_t tok[37];
    for (int i = 0; i < T; i++) tok[i] = (i * 37 + 11) % (int32_t)c->vocab_size;
    float *x = malloc((size_t)(T * d) * sizeof *x), *y = malloc((size_t)(T * d) * sizeof *y);
    float *xn = malloc((size_t)(T * d) * sizeof *xn), *o = malloc((size_t)(T * d) * sizeof *o);
    ck_assert_int_eq(llmsq_model_embed(m, tok, T, x), LLMSQ_OK);
    memcpy(y, x, (size_t)(T * d) * sizeof *y);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(c, T, &cache), LLMSQ_OK);
    ck_assert_int_eq(llmsq_model_block_forward(m, 2, cache, x, T), LLMSQ_OK);
    const llmsq_layer_weights *w = llmsq_model_layer(m, 2);
    rmsnorm_ref(y, w->attn_norm, T, d, c->rms_eps, xn);
    ck_assert_int_eq(llmsq_attn_forward(m, w, xn, T, o), LLMSQ_OK);
    for (int64_t i = 0; i < T * d; i++) y[i] += o[i];
    rmsnorm_ref(y, w->ffn_norm, T, d, c->rms_eps, xn);
    ck_assert_int_eq(llmsq_mlp_forward(m, w, xn, T, o), LLMSQ_OK);
    for (int64_t i = 0; i < T * d; i++) y[i] += o[i];
    double diff = tu_max_abs_diff(x, y, (size_t)(T * d));
    ck_assert_msg(diff < 1e-5, "halves differ from the block by %g", diff);
    llmsq_kv_cache_free(cache);
    free(x), free(y), free(xn), free(o);
    llmsq_model_free(m);
    free(hf);
}
END_TEST

/* Runs `method` over stories260K in memory on a few calibration windows; returns the model
 * (layers rebound) and the calibration tokens. */
static llmsq_model *run_pass(llmsq_quant_method method, const llmsq_quant_params *qp, int32_t **tokens_out)
{
    char *hf = tu_shared(HF), *train = tu_shared(TRAIN);
    llmsq_model *m;
    ck_assert_int_eq(llmsq_model_open(hf, &m), LLMSQ_OK);
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.nsamples = 4;
    cp.seqlen = 128;
    cp.progress = false;
    llmsq_dataset ds;
    ck_assert_int_eq(llmsq_dataset_load(train, LLMSQ_TEXT_AUTO, &ds), LLMSQ_OK);
    ck_assert_int_eq(llmsq_calib_sample(llmsq_model_tokenizer(m), &ds, &cp, tokens_out), LLMSQ_OK);
    llmsq_dataset_free(&ds);
    llmsq_quant_pass *pass;
    ck_assert_int_eq(llmsq_quant_pass_create(method, qp, NULL, &pass), LLMSQ_OK);
    ck_assert_msg(llmsq_calib_run(m, *tokens_out, &cp, llmsq_quant_pass_calib(pass)) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++) ck_assert_int_eq(llmsq_model_rebind_layer(m, l), LLMSQ_OK);
    llmsq_quant_pass_free(pass);
    free(hf), free(train);
    return m;
}

START_TEST(test_awq_scaled_model_is_equivalent)
{
    TU_SHARED_OR_SKIP(hf, HF);
    llmsq_model *ref;
    ck_assert_int_eq(llmsq_model_open(hf, &ref), LLMSQ_OK);
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.group_size = 32;
    qp.grid = LLMSQ_QGRID_AWQ;
    qp.awq_apply_only = true; /* fold the scales, keep float weights */
    qp.awq_clip = false;      /* clipping changes the function on purpose */
    int32_t *tok;
    llmsq_model *m = run_pass(LLMSQ_QUANT_AWQ, &qp, &tok);
    /* the folding did happen: every norm and v/up changed (o under GQA folds into v rows) */
    const llmsq_layer_weights *a = llmsq_model_layer(m, 1), *b = llmsq_model_layer(ref, 1);
    const int64_t d = llmsq_model_config(m)->hidden_size;
    ck_assert_msg(tu_max_abs_diff(a->attn_norm, b->attn_norm, (size_t)d) > 1e-3, "input_layernorm unchanged");
    ck_assert_msg(tu_max_abs_diff(a->ffn_norm, b->ffn_norm, (size_t)d) > 1e-3, "post_attention_layernorm unchanged");
    ck_assert_msg(tu_max_abs_diff(a->wv, b->wv, (size_t)(d * 32)) > 1e-4, "v_proj rows unchanged");
    ck_assert(llmsq_store_get_qlinear(llmsq_model_store(m), "model.layers.1.mlp.up_proj.weight") == NULL);
    const int64_t T = 128, V = llmsq_model_config(m)->vocab_size;
    float *l0 = tu_logits(ref, tok, T), *l1 = tu_logits(m, tok, T);
    double diff = tu_max_abs_diff(l0, l1, (size_t)(T * V));
    fprintf(stderr, "AWQ-scaled float model: max |logit difference| %.3g\n", diff);
    ck_assert_msg(diff <= 1e-4, "AWQ-scaled model changes logits by %g", diff);
    free(l0), free(l1), free(tok);
    llmsq_model_free(m);
    llmsq_model_free(ref);
    free(hf);
}
END_TEST

START_TEST(test_w8a8_quantizes_activations)
{
    TU_SHARED_OR_SKIP(hf, HF);
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.bits = 8;
    qp.group_size = -1;
    qp.grid = LLMSQ_QGRID_ABSMAX;
    qp.scale_dtype = LLMSQ_DTYPE_F32;
    int32_t *tok;
    qp.act_static = true; /* static: every linear gets a calibrated input scale */
    llmsq_model *m = run_pass(LLMSQ_QUANT_SMOOTHQUANT, &qp, &tok);
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
        char w[160];
        llmsq_linear_weight_name(4, i, w, sizeof w);
        const llmsq_qlinear *qs = llmsq_store_get_qlinear(llmsq_model_store(m), w);
        ck_assert_msg(qs && qs->act_bits == 8 && qs->act_static && qs->act_scale > 0, "%s: no static scale", w);
    }
    llmsq_model_free(m);
    free(tok);
    qp.act_static = false; /* dynamic per token from here on */
    m = run_pass(LLMSQ_QUANT_SMOOTHQUANT, &qp, &tok);
    llmsq_store *s = llmsq_model_store(m);
    llmsq_qlinear *q = (llmsq_qlinear *)llmsq_store_get_qlinear(s, "model.layers.0.mlp.down_proj.weight");
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(q->act_bits, 8);
    ck_assert(!q->act_static && q->act_scale == 0);
    ck_assert_int_eq(q->bits, 8);
    ck_assert_int_eq(q->n_groups, 1);
    const int64_t T = 64, V = llmsq_model_config(m)->vocab_size;
    float *l8 = tu_logits(m, tok, T);
    /* the same weights with float activations: outputs move, but only a little */
    for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++)
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char w[160];
            llmsq_linear_weight_name(l, i, w, sizeof w);
            ((llmsq_qlinear *)llmsq_store_get_qlinear(s, w))->act_bits = 0;
        }
    for (int64_t l = 0; l < llmsq_model_config(m)->n_layers; l++) ck_assert_int_eq(llmsq_model_rebind_layer(m, l), LLMSQ_OK);
    float *l16 = tu_logits(m, tok, T);
    double diff = tu_max_abs_diff(l8, l16, (size_t)(T * V));
    fprintf(stderr, "per-token W8A8 vs W8A16 logits: max difference %.3g\n", diff);
    ck_assert_msg(diff > 1e-4 && diff < 1.0, "activation quantization moved logits by %g", diff);
    free(l8), free(l16), free(tok);
    llmsq_model_free(m);
    free(hf);
}
END_TEST

static void expect_cli(const char *args, int want, const char *needle)
{
    char *out = NULL, *err = NULL;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == want, "llmsq %s: exit %d (want %d): %s", args, rc, want, err);
    if (needle) ck_assert_msg(err && strstr(err, needle), "llmsq %s: '%s' not in: %s", args, needle, err);
    free(out), free(err);
}

START_TEST(test_awq_threads_identical)
{
    TU_SHARED_OR_SKIP(hf, HF);
    char *train = tu_shared(TRAIN), *dir = tu_tmpdir("awq_threads");
    char *a = tu_path(dir, "t1"), *b = tu_path(dir, "t2"), args[2048];
    const char *fmt = "quantize --model %s --method awq --group-size 32 --calib %s --nsamples 4 --seqlen 128 "
                      "--ignore 'mlp' --format awq --quiet --threads %d --out %s";
    snprintf(args, sizeof args, fmt, hf, train, 1, a);
    expect_cli(args, 0, NULL);
    snprintf(args, sizeof args, fmt, hf, train, 2, b);
    expect_cli(args, 0, NULL);
    tu_assert_dirs_identical(a, b, 3);
    /* the AWQ checkpoint reads back and evaluates */
    snprintf(args, sizeof args, "eval --model %s --ppl %s --max-windows 2 --quiet", a, train);
    expect_cli(args, 0, NULL);
    free(a), free(b), free(dir), free(train), free(hf);
}
END_TEST

START_TEST(test_cli_errors)
{
    TU_SHARED_OR_SKIP(hf, HF);
    char *train = tu_shared(TRAIN), *dir = tu_tmpdir("awq_cli"), *o = tu_path(dir, "out"), args[2048];
    static const struct { const char *flags; const char *needle; } cases[] = {
        {"--method awq", "needs --calib"},
        {"--method smoothquant --bits 4 --calib C", "8-bit, per channel"},
        {"--method smoothquant --format gptq --calib C", "int-quantized"},
        {"--method gptq --static --calib C", "--static applies"},
        {"--method rtn --alpha 0.3", "--alpha applies"},
        {"--method smoothquant --alpha 1.5 --calib C", "alpha"},
        {"--method awq --format gptq --calib C", "GPTQ v1"},
        {"--method awq --bits 3 --format awq --calib C", "4-bit"},
        {"--method gptq --no-clip --calib C", "apply to AWQ"},
        {"--method awq --group-size 32 --format awq --calib C", "AWQ GEMM"},
        {"--method awq+sparse --calib C", "unknown method"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char flags[256];
        const char *c = strstr(cases[i].flags, "--calib C");
        if (c) snprintf(flags, sizeof flags, "%.*s--calib %s%s", (int)(c - cases[i].flags), cases[i].flags, train, c + 9);
        else snprintf(flags, sizeof flags, "%s", cases[i].flags);
        snprintf(args, sizeof args, "quantize --model %s %s --out %s --quiet", hf, flags, o);
        char *out = NULL, *err = NULL;
        int rc = tu_run_cli(args, &out, &err);
        ck_assert_msg(rc != 0, "llmsq %s succeeded", args);
        ck_assert_msg(err && strstr(err, cases[i].needle), "llmsq %s: '%s' not in: %s", args, cases[i].needle, err);
        ck_assert_msg(!tu_exists(o), "llmsq %s left %s behind", args, o);
        free(out), free(err);
    }
    free(o), free(dir), free(train), free(hf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("awq");
    TCase *tc = tcase_create("awq");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_awq_grid_vectors);
    tcase_add_test(tc, test_act_quant_vectors);
    tcase_add_test(tc, test_attn_mlp_recompose_block);
    tcase_add_test(tc, test_awq_scaled_model_is_equivalent);
    tcase_add_test(tc, test_w8a8_quantizes_activations);
    tcase_add_test(tc, test_awq_threads_identical);
    tcase_add_test(tc, test_cli_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
