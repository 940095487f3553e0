/* The speed report (`llmsq eval --speed`, llmsq_speed_run) on stories260K: structure and
 * consistency of the figures (the roofline formulas, weight bytes against the pack info, the
 * token counts), both kernels, ppl and speed in one JSON object, and bad flags. Timings are
 * never compared with each other or with a threshold: they depend on the machine and on what
 * else it runs. Small prefill/decode sizes and a 16 MiB bandwidth buffer keep it fast under
 * the sanitizers. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define VALID "data/tinystories/valid_prefix.txt"
#define SMALL "--prefill 32 --decode 8 --bandwidth-buffer 16M --quiet"

/* a == b up to rounding of the last few bits (both are computed in double) */
static void ck_close(double a, double b, const char *what)
{
    ck_assert_msg(fabs(a - b) <= 1e-9 * fabs(b), "%s: %.17g != %.17g", what, a, b);
}

static llmsq_speed_params small_params(int64_t batch)
{
    llmsq_speed_params p = llmsq_speed_default_params();
    p.prefill = 32, p.decode = 8, p.batch = batch;
    p.bandwidth_bytes = (size_t)16 << 20, p.sgemm_n = 128, p.progress = false;
    return p;
}

static double linear_params(const llmsq_config *c)
{
    const double d = (double)c->hidden_size, q = (double)(c->n_heads * c->head_dim),
                 kv = (double)(c->n_kv_heads * c->head_dim), F = (double)c->intermediate_size;
    return (double)c->n_layers * (2 * q * d + 2 * kv * d + 3 * F * d);
}

/* KV bytes one decode step reads for one sequence, at the mean context P + D/2. */
static double kv_bytes(const llmsq_config *c, int64_t P, int64_t D)
{
    return (double)c->n_layers * 2 * (double)(c->n_kv_heads * c->head_dim) * 4 * ((double)P + (double)D / 2);
}

static size_t pack_sum(const llmsq_model_pack_info *pi)
{
    return pi->linear_bytes + pi->head_bytes + pi->embed_bytes + pi->other_bytes;
}

/* The figures every run must satisfy, whatever the kernels: counts as asked, timings positive
 * and the rates their quotients, the rooflines the documented formulas. */
static void check_result(const llmsq_model *m, const llmsq_speed_params *p, const llmsq_speed_result *r,
                         double weights_read)
{
    const llmsq_config *c = llmsq_model_config(m);
    ck_assert_int_eq(r->prefill, p->prefill);
    ck_assert_int_eq(r->decode, p->decode);
    ck_assert_int_eq(r->batch, p->batch);
    ck_assert_int_eq(r->threads, llmsq_threads_get());
    ck_assert(r->ttft_s > 0 && r->decode_s > 0);
    ck_close(r->prefill_tps, (double)(p->batch * p->prefill) / r->ttft_s, "prefill_tps");
    ck_close(r->decode_tps, (double)(p->batch * p->decode) / r->decode_s, "decode_tps");
    ck_assert(r->bandwidth_gbs > 0 && r->sgemm_gflops > 0);
    ck_close(r->decode_bytes_per_step, weights_read + (double)p->batch * kv_bytes(c, p->prefill, p->decode),
             "decode_bytes_per_step");
    ck_close(r->decode_roofline_tps, (double)p->batch * r->bandwidth_gbs * 1e9 / r->decode_bytes_per_step,
             "decode_roofline_tps");
    const double flops = 2 * linear_params(c) +
                         4.0 * (double)(c->n_layers * c->n_heads * c->head_dim) * ((double)p->prefill + 1) / 2 +
                         2.0 * (double)(c->vocab_size * c->hidden_size) / (double)p->prefill;
    ck_close(r->prefill_flops_per_token, flops, "prefill_flops_per_token");
    ck_close(r->prefill_roofline_tps, r->sgemm_gflops * 1e9 / flops, "prefill_roofline_tps");
    ck_assert(r->peak_rss > 0);
}

START_TEST(test_run_packed)
{
    TU_SHARED_OR_SKIP(model, HF);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open_packed(model, NULL, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_model_pack_info pi;
    ck_assert(llmsq_model_pack_info_get(m, &pi));
    const int64_t batches[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        llmsq_speed_params p = small_params(batches[i]);
        llmsq_speed_result r;
        ck_assert_msg(llmsq_speed_run(m, &p, &r) == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert(r.packed);
        ck_assert_uint_eq(r.weight_bytes, pack_sum(&pi));
        ck_assert_int_eq(r.pack.linear_bytes, pi.linear_bytes);
        check_result(m, &p, &r, (double)(pi.linear_bytes + pi.head_bytes));
    }
    llmsq_model_free(m);
    free(model);
}
END_TEST

START_TEST(test_run_reference)
{
    TU_SHARED_OR_SKIP(model, HF);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(model, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_config *c = llmsq_model_config(m);
    llmsq_model_pack_info pi;
    ck_assert(!llmsq_model_pack_info_get(m, &pi));
    llmsq_speed_params p = small_params(2);
    llmsq_speed_result r;
    ck_assert_msg(llmsq_speed_run(m, &p, &r) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert(!r.packed);
    ck_assert_uint_eq(r.weight_bytes, 4 * (size_t)llmsq_config_param_count(c));
    check_result(m, &p, &r, 4.0 * (linear_params(c) + (double)(c->vocab_size * c->hidden_size)));
    llmsq_model_free(m);
    free(model);
}
END_TEST

/* Out-of-range parameters: ARG naming the parameter, nothing run. */
START_TEST(test_bad_params)
{
    TU_SHARED_OR_SKIP(model, HF);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(model, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_speed_result r;
    struct { llmsq_speed_params p; const char *needle; } bad[] = {
        {small_params(1), "prefill"}, {small_params(1), "decode"}, {small_params(0), "batch"},
        {small_params(1), "bandwidth"}, {small_params(1), "sgemm"}};
    bad[0].p.prefill = 0, bad[1].p.decode = -1, bad[3].p.bandwidth_bytes = 4096, bad[4].p.sgemm_n = 4;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(llmsq_speed_run(m, &bad[i].p, &r), LLMSQ_STATUS_ARG);
        ck_assert_msg(strstr(llmsq_last_error(), bad[i].needle), "'%s' not in: %s", bad[i].needle, llmsq_last_error());
    }
    double v;
    ck_assert_int_eq(llmsq_speed_bandwidth(1000, 1, &v), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_speed_sgemm(8, 1, &v), LLMSQ_STATUS_ARG);
    ck_assert_int_eq(llmsq_speed_sgemm(64, 0, &v), LLMSQ_STATUS_ARG);
    llmsq_model_free(m);
    free(model);
}
END_TEST

/* The machine measurements alone: positive rates, a buffer whose length is no multiple of the
 * vector block (the tail is read too). */
START_TEST(test_machine_rates)
{
    const size_t n = 100003;
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = 1.0f;
    ck_assert(llmsq_speed_read_bw(a, n, 2) > 0);
    free(a);
    double gbs = 0, gflops = 0;
    ck_assert_int_eq(llmsq_speed_bandwidth((size_t)4 << 20, 2, &gbs), LLMSQ_OK);
    ck_assert(gbs > 0 && isfinite(gbs));
    ck_assert_int_eq(llmsq_speed_sgemm(96, 2, &gflops), LLMSQ_OK);
    ck_assert(gflops > 0 && isfinite(gflops));
}
END_TEST

/* ---- the command ------------------------------------------------------------------------ */

static json_t *run_json(const char *args)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 0, "llmsq %s: exit %d: %s", args, rc, err);
    ck_assert_msg(!strstr(err, "AddressSanitizer") && !strstr(err, "runtime error"), "%s", err);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    ck_assert_msg(o, "llmsq %s: not JSON (%s): %s", args, jerr.text, out);
    free(out), free(err);
    return o;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_number(v), "'%s' missing or not a number", key);
    return json_number_value(v);
}

/* The speed fields of one JSON object: present, positive, counts as asked, the layouts
 * covering every block linear. */
static void check_speed_json(const json_t *o, const llmsq_config *c, const char *kernels)
{
    static const char *positive[] = {"prefill_tps", "decode_tps", "ttft_s", "weight_bytes", "peak_rss",
                                     "decode_roofline_tps", "prefill_roofline_tps", "bandwidth_gbs",
                                     "sgemm_gflops", "threads"};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        ck_assert_msg(num(o, positive[i]) > 0, "%s = %g", positive[i], num(o, positive[i]));
    ck_assert_str_eq(json_string_value(json_object_get(o, "kernels")), kernels);
    ck_assert_str_eq(json_string_value(json_object_get(o, "isa")), llmsq_kern_isa_name(llmsq_kern_isa_get()));
    ck_assert(num(o, "prefill") == 32 && num(o, "decode") == 8 && num(o, "batch") == 1);
    ck_assert(num(o, "fallbacks") == 0);
    const json_t *lay = json_object_get(o, "layouts");
    ck_assert(json_is_object(lay));
    double linears = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)lay, k, v) linears += json_number_value(v);
    ck_assert(linears == (double)(c->n_layers * LLMSQ_LINEAR_COUNT));
}

START_TEST(test_cli_packed_json)
{
    TU_SHARED_OR_SKIP(model, HF);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open_packed(model, NULL, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_model_pack_info pi;
    ck_assert(llmsq_model_pack_info_get(m, &pi));
    char a[4096];
    snprintf(a, sizeof a, "eval --model '%s' --speed " SMALL " --json", model);
    json_t *o = run_json(a);
    check_speed_json(o, llmsq_model_config(m), "packed");
    ck_assert(num(o, "weight_bytes") == (double)pack_sum(&pi));
    ck_assert(!json_object_get(o, "ppl"));
    json_decref(o);
    llmsq_model_free(m);
    free(model);
}
END_TEST

START_TEST(test_cli_reference_with_ppl)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(text, VALID);
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(model, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_config *c = llmsq_model_config(m);
    char a[4096];
    snprintf(a, sizeof a, "eval --model '%s' --kernels reference --ppl '%s' --seqlen 64 --max-windows 2 --speed "
             SMALL " --json", model, text);
    json_t *o = run_json(a);
    check_speed_json(o, c, "reference");
    ck_assert(num(o, "weight_bytes") == 4.0 * (double)llmsq_config_param_count(c));
    ck_assert(num(o, "ppl") > 1 && num(o, "windows") == 2 && num(o, "tokens") == 2 * 63);
    json_decref(o);
    llmsq_model_free(m);
    free(model), free(text);
}
END_TEST

/* --ppl alone keeps today's reference forward; the packing flags switch it to packed. */
START_TEST(test_cli_ppl_kernels)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(text, VALID);
    char a[4096];
    snprintf(a, sizeof a, "eval --model '%s' --ppl '%s' --seqlen 64 --max-windows 2 --quiet --json", model, text);
    json_t *ref = run_json(a);
    ck_assert_str_eq(json_string_value(json_object_get(ref, "kernels")), "reference");
    ck_assert(!json_object_get(ref, "decode_tps"));
    snprintf(a, sizeof a, "eval --model '%s' --ppl '%s' --seqlen 64 --max-windows 2 --no-fuse --quiet --json", model,
             text);
    json_t *packed = run_json(a);
    ck_assert_str_eq(json_string_value(json_object_get(packed, "kernels")), "packed");
    ck_assert_str_eq(json_string_value(json_object_get(packed, "token_sha256")),
                     json_string_value(json_object_get(ref, "token_sha256")));
    /* the same f32 weights (dense auto keeps f32), only the accumulation order differs */
    ck_assert_msg(fabs(num(packed, "ppl") / num(ref, "ppl") - 1) < 1e-4, "ppl packed %.8g, reference %.8g",
                  num(packed, "ppl"), num(ref, "ppl"));
    json_decref(ref), json_decref(packed);
    free(model), free(text);
}
END_TEST

START_TEST(test_cli_text)
{
    TU_SHARED_OR_SKIP(model, HF);
    char a[4096], *out, *err;
    snprintf(a, sizeof a, "eval --model '%s' --speed --dense f16 --no-sparse " SMALL, model);
    int rc = tu_run_cli(a, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    const char *lines[] = {"kernels       packed", "layouts", "weights", "prefill", "ttft", "decode", "peak_rss",
                           "bandwidth", "sgemm", "tokens/s", "roofline", "GB/s", "GFLOP/s", "f16"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(out, lines[i]), "'%s' not in: %s", lines[i], out);
    free(out), free(err), free(model);
}
END_TEST

static void expect_usage(const char *args, const char *needle)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 2, "llmsq %s: exit %d (want 2): %s", args, rc, err);
    ck_assert_msg(strstr(err, needle), "llmsq %s: '%s' not in: %s", args, needle, err);
    free(out), free(err);
}

START_TEST(test_cli_bad_flags)
{
    expect_usage("eval --model m --speed --kernels fast", "--kernels must be packed or reference");
    expect_usage("eval --model m --speed --dense f8", "--dense must be auto, f32, f16 or bf16");
    expect_usage("eval --model m --speed --prefill 0", "--prefill");
    expect_usage("eval --model m --speed --decode x", "--decode");
    expect_usage("eval --model m --speed --batch 5000", "--batch");
    expect_usage("eval --model m --speed --bandwidth-buffer 64K", "--bandwidth-buffer");
    expect_usage("eval --model m --ppl f --prefill 32", "--prefill applies to --speed");
    expect_usage("eval --model m --speed --kernels reference --no-sparse", "--no-sparse applies to --kernels packed");
    expect_usage("eval --model m", "--ppl FILE or --speed is required");
    expect_usage("eval --speed", "--model is required");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("speed");
    TCase *tc = tcase_create("speed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_run_packed);
    tcase_add_test(tc, test_run_reference);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_machine_rates);
    tcase_add_test(tc, test_cli_packed_json);
    tcase_add_test(tc, test_cli_reference_with_ppl);
    tcase_add_test(tc, test_cli_ppl_kernels);
    tcase_add_test(tc, test_cli_text);
    tcase_add_test(tc, test_cli_bad_flags);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
