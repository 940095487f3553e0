/* llmsq quantize end to end (fast cases; the perplexity table is test_quality_quant.c):
 * bad input, determinism across runs and thread counts, the written checkpoint equal to the
 * in-memory quantized model, the manifest. */
#include "testutil.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

#define HF "models/stories260K/hf"
#define TRAIN "data/tinystories/train_prefix.txt"

static int run(const char *fmt, const char *a, const char *b, const char *c, char **err)
{
    char args[8192];
    snprintf(args, sizeof args, fmt, a, b, c);
    char *out;
    int rc = tu_run_cli(args, &out, err);
    free(out);
    return rc;
}

static void expect_error(int want_rc, const char *args, const char *needle)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == want_rc, "llmsq %s: exit %d (want %d): %s", args, rc, want_rc, err);
    ck_assert_msg(strstr(err, needle), "llmsq %s: '%s' not in: %s", args, needle, err);
    ck_assert_msg(!strstr(err, "AddressSanitizer") && !strstr(err, "runtime error"), "%s", err);
    free(out), free(err);
}

START_TEST(test_bad_parameters)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(train, TRAIN);
    char *dir = tu_tmpdir("qbad");
    char args[8192];
    snprintf(args, sizeof args, "quantize --model %s --method rtn --group-size 0 --out %s/o", model, dir);
    expect_error(2, args, "group size");
    snprintf(args, sizeof args, "quantize --model %s --method rtn --group-size -2 --out %s/o", model, dir);
    expect_error(2, args, "group size");
    snprintf(args, sizeof args, "quantize --model %s --method rtn --bits 5 --out %s/o", model, dir);
    expect_error(2, args, "bits");
    snprintf(args, sizeof args, "quantize --model %s --method gptq --out %s/o", model, dir);
    expect_error(2, args, "--calib");
    snprintf(args, sizeof args, "quantize --model %s --method rtn --ignore 'a(' --out %s/o", model, dir);
    expect_error(1, args, "--ignore");
    /* formats that cannot hold the result are refused before any work */
    snprintf(args, sizeof args, "quantize --model %s --method rtn --bits 3 --out %s/o", model, dir);
    expect_error(1, args, "4- or 8-bit");
    snprintf(args, sizeof args, "quantize --model %s --method rtn --format gptq --out %s/o", model, dir);
    expect_error(1, args, "divisible by 8");
    /* calibration text too short for one window */
    char shortp[4096];
    snprintf(shortp, sizeof shortp, "%s/short.txt", dir);
    tu_write_file(shortp, "Once upon a time.", 17);
    snprintf(args, sizeof args, "quantize --model %s --method gptq --calib %s --seqlen 128 --out %s/o", model, shortp, dir);
    expect_error(1, args, "too short");
    ck_assert_msg(access(strcat(strcpy(shortp, dir), "/o"), F_OK) != 0, "output left behind after a failure");
    free(dir), free(model), free(train);
}
END_TEST

/* A NaN weight is refused with the tensor named, and nothing is written. */
START_TEST(test_nan_weight)
{
    TU_SHARED_OR_SKIP(src, HF);
    char *dir = tu_tmpdir("qnan");
    char cmd[8192], args[8192], path[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/m && cp %s/* %s/m/", dir, src, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/m/model.safetensors", dir);
    FILE *f = fopen(path, "r+b");
    ck_assert_int_eq(fseek(f, -8, SEEK_END), 0);
    const unsigned char nan[4] = {0, 0, 0xc0, 0x7f};
    fwrite(nan, 1, 4, f);
    fclose(f);
    snprintf(args, sizeof args, "quantize --model %s/m --method rtn --out %s/o", dir, dir);
    expect_error(1, args, "non-finite");
    snprintf(path, sizeof path, "%s/o", dir);
    ck_assert(!llmsq_is_dir(path));
    free(dir), free(src);
}
END_TEST

static char *read_all(const char *path)
{
    char *d;
    size_t n;
    ck_assert_msg(llmsq_read_file(path, &d, &n) == LLMSQ_OK, "%s", llmsq_last_error());
    return d;
}

/* Same inputs: byte-identical checkpoints over two runs and with 1 vs 2 threads. */
START_TEST(test_gptq_deterministic)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(train, TRAIN);
    char *dir = tu_tmpdir("qdet");
    const char *fmt = "quantize --model %s --method gptq --bits 4 --group-size 32 --calib %s --nsamples 8 "
                      "--seqlen 128 --quiet --out %s";
    char o1[4096], o2[4096], o3[4096], *err;
    snprintf(o1, sizeof o1, "%s/a --threads 1", dir);
    snprintf(o2, sizeof o2, "%s/b --threads 2", dir);
    /* the third run spills its activations to disk (zstd): same bytes expected */
    snprintf(o3, sizeof o3, "%s/c --threads 2 --max-memory 64K", dir);
    ck_assert_msg(run(fmt, model, train, o1, &err) == 0, "%s", err);
    free(err);
    ck_assert_msg(run(fmt, model, train, o2, &err) == 0, "%s", err);
    free(err);
    ck_assert_msg(run(fmt, model, train, o3, &err) == 0, "%s", err);
    free(err);
    const char *files[] = {"model.safetensors", "config.json", "manifest.json", "tokenizer.model"};
    for (size_t i = 0; i < 4; i++) {
        char pa[4096], pb[4096], pc[4096];
        snprintf(pa, sizeof pa, "%s/a/%s", dir, files[i]);
        snprintf(pb, sizeof pb, "%s/b/%s", dir, files[i]);
        snprintf(pc, sizeof pc, "%s/c/%s", dir, files[i]);
        char ha[65], hb[65], hc[65];
        ck_assert_int_eq(llmsq_sha256_file(pa, ha), LLMSQ_OK);
        ck_assert_int_eq(llmsq_sha256_file(pb, hb), LLMSQ_OK);
        ck_assert_int_eq(llmsq_sha256_file(pc, hc), LLMSQ_OK);
        ck_assert_msg(!strcmp(ha, hb), "%s differs between 1 and 2 threads", files[i]);
        ck_assert_msg(!strcmp(hb, hc), "%s differs between two runs (the second spilling to disk)", files[i]);
    }
    /* the manifest records the calibration stream and every output file */
    char mp[4096];
    snprintf(mp, sizeof mp, "%s/a/manifest.json", dir);
    char *text = read_all(mp);
    json_error_t jerr;
    json_t *man = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(man);
    ck_assert_int_eq(json_string_length(json_object_get(json_object_get(man, "calibration"), "token_sha256")), 64);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(man, "inputs"), "model.safetensors"));
    json_t *outs = json_object_get(man, "outputs");
    char want[65], p[4096];
    snprintf(p, sizeof p, "%s/a/model.safetensors", dir);
    ck_assert_int_eq(llmsq_sha256_file(p, want), LLMSQ_OK);
    ck_assert_str_eq(json_string_value(json_object_get(outs, "model.safetensors")), want);
    json_decref(man);
    free(text), free(dir), free(model), free(train);
}
END_TEST

/* The checkpoint read back dequantizes to exactly the in-memory quantized weights, so its
 * perplexity is exactly the in-memory one. */
START_TEST(test_checkpoint_equals_in_memory)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(train, TRAIN);
    char *dir = tu_tmpdir("qmem");
    llmsq_model *m;
    ck_assert_int_eq(llmsq_model_open(model, &m), LLMSQ_OK);
    llmsq_quant_params qp = llmsq_quant_default_params();
    qp.bits = 4;
    qp.group_size = 32;
    qp.scale_dtype = LLMSQ_DTYPE_F32; /* as llmsq quantize does for an f32 model: f32 scales on disk */
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.nsamples = 8;
    cp.seqlen = 128;
    cp.progress = false;
    llmsq_dataset d;
    ck_assert_int_eq(llmsq_dataset_load(train, LLMSQ_TEXT_AUTO, &d), LLMSQ_OK);
    int32_t *tokens;
    ck_assert_int_eq(llmsq_calib_sample(llmsq_model_tokenizer(m), &d, &cp, &tokens), LLMSQ_OK);
    llmsq_dataset_free(&d);
    llmsq_quant_pass *pass;
    ck_assert_int_eq(llmsq_quant_pass_create(LLMSQ_QUANT_GPTQ, &qp, NULL, &pass), LLMSQ_OK);
    ck_assert_msg(llmsq_calib_run(m, tokens, &cp, llmsq_quant_pass_calib(pass)) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_config *c = llmsq_model_config(m);
    for (int64_t l = 0; l < c->n_layers; l++) ck_assert_int_eq(llmsq_model_rebind_layer(m, l), LLMSQ_OK);
    char out[4096];
    snprintf(out, sizeof out, "%s/ct", dir);
    llmsq_ckpt_write_params wp = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model, .quant = &qp,
                                  .true_sequential = true, .manifest_json = NULL};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, llmsq_model_store(m), c, &wp) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    llmsq_model *r;
    ck_assert_msg(llmsq_model_open(out, &r) == LLMSQ_OK, "%s", llmsq_last_error());
    /* every block linear: same dequantized weights, bit for bit */
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char w[160];
            llmsq_linear_weight_name(l, i, w, sizeof w);
            ck_assert_ptr_nonnull(llmsq_store_get_qlinear(llmsq_model_store(r), w));
            const float *a, *b;
            ck_assert_int_eq(llmsq_store_get_f32(llmsq_model_store(m), w, &a), LLMSQ_OK);
            ck_assert_int_eq(llmsq_store_get_f32(llmsq_model_store(r), w, &b), LLMSQ_OK);
            const llmsq_tensor *t = llmsq_store_get(llmsq_model_store(m), w);
            ck_assert_msg(memcmp(a, b, (size_t)llmsq_tensor_numel(t) * 4) == 0, "%s differs after reload", w);
        }
    /* and so the same perplexity on a few windows */
    llmsq_ppl_params pp = llmsq_ppl_default_params();
    pp.seqlen = 128;
    pp.max_windows = 8;
    pp.progress = false;
    llmsq_ppl_result ra, rb;
    ck_assert_int_eq(llmsq_ppl_score(m, tokens, (size_t)(cp.nsamples * cp.seqlen), &pp, &ra), LLMSQ_OK);
    ck_assert_int_eq(llmsq_ppl_score(r, tokens, (size_t)(cp.nsamples * cp.seqlen), &pp, &rb), LLMSQ_OK);
    ck_assert(ra.nll_sum == rb.nll_sum);
    llmsq_model_free(r);
    llmsq_model_free(m);
    llmsq_quant_pass_free(pass);
    free(tokens), free(dir), free(model), free(train);
}
END_TEST

/* --dry-run prints a plan and writes nothing. */
START_TEST(test_dry_run)
{
    TU_SHARED_OR_SKIP(model, HF);
    char *dir = tu_tmpdir("qdry");
    char args[8192], *out, *err;
    snprintf(args, sizeof args, "quantize --model %s --method gptq --calib x --dry-run --out %s/o", model, dir);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "predicted peak"));
    free(out), free(err);
    snprintf(args, sizeof args, "%s/o", dir);
    ck_assert(!llmsq_is_dir(args));
    free(dir), free(model);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bad_parameters);
    tcase_add_test(tc, test_nan_weight);
    tcase_add_test(tc, test_gptq_deterministic);
    tcase_add_test(tc, test_checkpoint_equals_in_memory);
    tcase_add_test(tc, test_dry_run);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
