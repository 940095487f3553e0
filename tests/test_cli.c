/* The llmsq command end to end: the acceptance commands on stories260K, and bad input
 * (truncated or corrupt files, wrong shapes, NaN weights, unknown architectures, bad flags),
 * each of which must give one clear error line naming the file, a non-zero exit code and
 * no crash. The suite runs under ASan/UBSan in scripts/test.sh. */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF "models/stories260K/hf"

/* Copies the stories260K HF directory into a fresh temp dir and returns it. */
static char *copy_hf(const char *tag)
{
    char *src = tu_shared(HF);
    if (!src) return NULL;
    char *dir = tu_tmpdir(tag);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s'/config.json '%s'/model.safetensors '%s'/tokenizer.model '%s'/", src, src, src, dir);
    ck_assert_int_eq(system(cmd), 0);
    free(src);
    return dir;
}

/* Runs the command, expects exit code 1, exactly one stderr line containing every needle. */
static void expect_error(const char *args, const char *needle1, const char *needle2)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 1, "llmsq %s: exit code %d (want 1); stderr: %s", args, rc, err);
    size_t lines = 0;
    for (const char *p = err; *p; p++) lines += *p == '\n';
    ck_assert_msg(lines == 1, "llmsq %s: want one error line, got: %s", args, err);
    ck_assert_msg(strstr(err, needle1), "llmsq %s: '%s' not in: %s", args, needle1, err);
    if (needle2) ck_assert_msg(strstr(err, needle2), "llmsq %s: '%s' not in: %s", args, needle2, err);
    ck_assert_msg(strstr(err, "AddressSanitizer") == NULL && strstr(err, "runtime error") == NULL, "%s", err);
    free(out), free(err);
}

static void truncate_file(const char *path, long size)
{
    ck_assert_int_eq(truncate(path, size), 0);
}

START_TEST(test_generate_acceptance_command)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(fix, "refs/stories260K-fixture.json");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "generate --model '%s' --max-tokens 64", model);
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    json_error_t jerr;
    json_t *f = json_load_file(fix, 0, &jerr);
    const char *want = json_string_value(json_object_get(f, "greedy_from_bos_text"));
    size_t n = strlen(out);
    ck_assert_msg(n > 0 && out[n - 1] == '\n', "no trailing newline");
    out[n - 1] = '\0';
    ck_assert_str_eq(out, want);
    json_decref(f);
    free(out), free(err), free(model), free(fix);
}
END_TEST

START_TEST(test_inspect)
{
    TU_SHARED_OR_SKIP(model, HF);
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "inspect '%s'", model);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "LlamaForCausalLM"));
    ck_assert_ptr_nonnull(strstr(out, "parameters       260032 (config implies 260032)"));
    ck_assert_ptr_nonnull(strstr(out, "F32:260032"));
    free(out), free(err), free(model);
}
END_TEST

START_TEST(test_missing_model)
{
    expect_error("eval --model /nonexistent/model --ppl /dev/null", "/nonexistent/model", "no such file");
    expect_error("inspect /nonexistent/x.gguf", "/nonexistent/x.gguf", NULL);
}
END_TEST

START_TEST(test_truncated_safetensors)
{
    char *dir = copy_hf("trunc");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(args, sizeof args, "inspect '%s'", dir);
    long sizes[] = {0, 5, 8, 100, 4000, 900000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        truncate_file(path, sizes[i]);
        expect_error(args, "model.safetensors", sizes[i] < 8 ? "truncated" : NULL);
    }
    free(dir);
}
END_TEST

/* A hand-made safetensors whose tensor claims bytes past the end of the file. */
START_TEST(test_offsets_past_end)
{
    char *dir = copy_hf("offsets");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *hdr = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256]}}";
    size_t hl = strlen(hdr);
    unsigned char buf[512] = {0};
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    tu_write_file(path, buf, 8 + hl + 16); /* only 16 of the 256 data bytes */
    snprintf(args, sizeof args, "inspect '%s'", dir);
    expect_error(args, "model.safetensors", "past the end");
    free(dir);
}
END_TEST

START_TEST(test_invalid_json_config)
{
    char *dir = copy_hf("badjson");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_write_file(path, "{\"architectures\": [\"LlamaForCausalLM\"], ", 40);
    snprintf(args, sizeof args, "eval --model '%s' --ppl /dev/null", dir);
    expect_error(args, "config.json", "invalid JSON");
    free(dir);
}
END_TEST

START_TEST(test_unknown_architecture)
{
    char *dir = copy_hf("arch");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"architectures\": [\"FalconForCausalLM\"], \"hidden_size\": 64}";
    tu_write_file(path, cfg, strlen(cfg));
    snprintf(args, sizeof args, "inspect '%s'", dir);
    expect_error(args, "config.json", "FalconForCausalLM");
    free(dir);
}
END_TEST

/* A config whose shapes disagree with the tensors: the tensor is named. */
START_TEST(test_wrong_shape)
{
    char *dir = copy_hf("shape");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    json_object_set_new(cfg, "intermediate_size", json_integer(176));
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    snprintf(args, sizeof args, "generate --model '%s' --max-tokens 2", dir);
    expect_error(args, "gate_proj.weight", "176");
    free(dir);
}
END_TEST

/* A NaN weight is refused before any forward runs. */
START_TEST(test_nan_weight)
{
    char *dir = copy_hf("nan");
    if (!dir) return;
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, -4, SEEK_END), 0);
    const unsigned char nan[4] = {0x00, 0x00, 0xc0, 0x7f};
    ck_assert_uint_eq(fwrite(nan, 1, 4, f), 4);
    fclose(f);
    snprintf(args, sizeof args, "generate --model '%s' --max-tokens 2", dir);
    expect_error(args, "non-finite", NULL);
    free(dir);
}
END_TEST

START_TEST(test_gguf_bad_magic)
{
    char *dir = tu_tmpdir("gguf");
    char path[4096], args[8300];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    tu_write_file(path, "GGUX\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 24);
    snprintf(args, sizeof args, "inspect '%s'", path);
    expect_error(args, "model.gguf", "magic");
    free(dir);
}
END_TEST

/* --tokenizer overrides the model's tokenizer: the llama2.c checkpoint with the HF directory's
 * tokenizer.model encodes the reference token stream; a tokenizer larger than the embedding
 * table is refused. */
START_TEST(test_tokenizer_override)
{
    TU_SHARED_OR_SKIP(model, "models/stories260K/llama2c/stories260K.bin");
    TU_SHARED_OR_SKIP(tok, "models/stories260K/hf/tokenizer.model");
    TU_SHARED_OR_SKIP(big, "tokenizers/llama2/tokenizer.model");
    TU_SHARED_OR_SKIP(text, "data/tinystories/valid_prefix.txt");
    TU_SHARED_OR_SKIP(refp, "refs/stories260K.json");
    char args[8192], *out, *err;
    snprintf(args, sizeof args, "eval --model '%s' --tokenizer '%s' --ppl '%s' --seqlen 512 --max-windows 2 --json",
             model, tok, text);
    ck_assert_msg(tu_run_cli(args, &out, &err) == 0, "%s", err);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr), *ref = json_load_file(refp, 0, &jerr);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "token_sha256")),
                     json_string_value(json_object_get(json_object_get(ref, "tinystories_valid"), "token_sha256")));
    json_decref(o), json_decref(ref);
    free(out), free(err);
    snprintf(args, sizeof args, "eval --model '%s' --tokenizer '%s' --ppl '%s'", model, big, text);
    expect_error(args, "32000 pieces", NULL);
    free(model), free(tok), free(big), free(text), free(refp);
}
END_TEST

START_TEST(test_bad_flags)
{
    char *out, *err;
    ck_assert_int_eq(tu_run_cli("eval --model x --ppl y --protocol nonsense", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "nonsense"));
    free(out), free(err);
    ck_assert_int_eq(tu_run_cli("eval --seqlen -3 --model x --ppl y", &out, &err), 2);
    free(out), free(err);
    ck_assert_int_eq(tu_run_cli("eval --frobnicate", &out, &err), 2);
    free(out), free(err);
    ck_assert_int_eq(tu_run_cli("frobnicate", &out, &err), 2);
    free(out), free(err);
    const char *cmds[] = {"inspect", "eval", "generate", "synth"};
    for (size_t i = 0; i < 4; i++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        ck_assert_int_eq(tu_run_cli(args, &out, &err), 0);
        ck_assert_ptr_nonnull(strstr(out, "usage: llmsq"));
        free(out), free(err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *ok = tcase_create("acceptance");
    tcase_set_timeout(ok, 300);
    tcase_add_test(ok, test_generate_acceptance_command);
    tcase_add_test(ok, test_inspect);
    suite_add_tcase(s, ok);
    TCase *bad = tcase_create("bad_input");
    tcase_set_timeout(bad, 120);
    tcase_add_test(bad, test_missing_model);
    tcase_add_test(bad, test_truncated_safetensors);
    tcase_add_test(bad, test_offsets_past_end);
    tcase_add_test(bad, test_invalid_json_config);
    tcase_add_test(bad, test_unknown_architecture);
    tcase_add_test(bad, test_wrong_shape);
    tcase_add_test(bad, test_nan_weight);
    tcase_add_test(bad, test_gguf_bad_magic);
    tcase_add_test(bad, test_bad_flags);
    tcase_add_test(bad, test_tokenizer_override);
    suite_add_tcase(s, bad);
    return tu_run_suite(s);
}
