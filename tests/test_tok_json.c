/* Hugging Face tokenizer.json details on small hand-made fixtures (tests/data/tok_*.json:
 * a byte-level BPE with a Llama-3 Split, NFKC + Replace normalizer, added tokens with
 * lstrip/rstrip/single_word, a BOS/EOS template; and a SentencePiece-style BPE with
 * Lowercase, Digits, Metaspace, byte fallback, fused unknowns and the Llama decoder).
 * Expected ids and texts come from the tokenizers library 0.23.3 on the same files.
 * Then malformed tokenizer files of every kind, and the tokenize command. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef struct tok_case {
    const char *text, *ids, *ids_special, *decoded;
} tok_case;

/* Generated with tokenizers: encode(text, add_special_tokens=False/True).ids and
 * decode(ids, skip_special_tokens=True). */
static const tok_case k_bytelevel[] = {
    {"Hello world", "72 266 111 272", "282 72 266 111 272 283", "Hello world"},
    {" hello  world ", "269 32 272 32", "282 269 32 272 32 283", " hello  world "},
    {"the\x09""\x09""world<|eos|>", "116 257 272 283", "282 116 257 272 283 283", "the world"},
    {"<|bos|>hello [M]  the", "282 268 284 116 257", "282 282 268 284 116 257 283", "hellothe"},
    {"x [M]y", "120 284 121", "282 120 284 121 283", "xy"},
    {"cafe caf\xC3""\xA9"" 'S cafe's", "285 32 279 32 39 83 32 285 280", "282 285 32 279 32 39 83 32 285 280 283", "cafe caf\xC3""\xA9"" 'S cafe's"},
    {"\xEF""\xBD""\x88""\xEF""\xBD""\x85""\xEF""\xBD""\x8C""\xEF""\xBD""\x8C""\xEF""\xBD""\x8F"" \xE2""\x91""\xA0""\xE2""\x91""\xA1"" 12345", "268 32 273 32 273 51 52 53", "282 268 32 273 32 273 51 52 53 283", "hello 12 12345"},
    {"\x0A""\x0A""\x09"" ok\x0D""\x0A""", "275 32 32 111 107 13 10", "282 275 32 32 111 107 13 10 283", "\x0A""\x0A""  ok\x0D""\x0A"""},
    {"", "", "282 283", ""},
    {"a\xC3""\xA9""\xF0""\x9F""\xA6""\x99""\xE2""\x96""\x81""", "97 276 240 159 166 153 226 150 129", "282 97 276 240 159 166 153 226 150 129 283", "a\xC3""\xA9""\xF0""\x9F""\xA6""\x99""\xE2""\x96""\x81"""},
    {"Hello, World. 3 hellos <s></s>", "72 266 111 44 32 87 264 108 100 46 32 51 32 257 265 111 115 32 60 115 62 60 47 115 62", "282 72 266 111 44 32 87 264 108 100 46 32 51 32 257 265 111 115 32 60 115 62 60 47 115 62 283", "Hello, World. 3 hellos <s></s>"},
};
static const tok_case k_spmstyle[] = {
    {"Hello world", "259 274 276 267 285", "1 259 274 276 267 285", "hello world"},
    {" hello  world ", "259 274 276 267 259 285 259", "1 259 274 276 267 259 285 259", "hello  world "},
    {"the\x09""\x09""world<|eos|>", "275 12 12 270 280 266 263 63 127 264 267 118 127 65", "1 275 12 12 270 280 266 263 63 127 264 267 118 127 65", "the\x09""\x09""world<|eos|>"},
    {"<|bos|>hello [M]  the", "259 63 127 261 267 118 127 65 274 276 267 259 94 112 96 259 275", "1 259 63 127 261 267 118 127 65 274 276 267 259 94 112 96 259 275", "<|bos|>hello [m]  the"},
    {"x [M]y", "259 123 259 94 112 96 124", "1 259 123 259 94 112 96 124", "x [m]y"},
    {"cafe caf\xC3""\xA9"" 'S cafe's", "259 262 260 105 264 259 262 260 105 198 172 259 42 118 259 262 260 105 264 42 118", "1 259 262 260 105 264 259 262 260 105 198 172 259 42 118 259 262 260 105 264 42 118", "cafe caf\xC3""\xA9"" 's cafe's"},
    {"\xEF""\xBD""\x88""\xEF""\xBD""\x85""\xEF""\xBD""\x8C""\xEF""\xBD""\x8C""\xEF""\xBD""\x8F"" \xE2""\x91""\xA0""\xE2""\x91""\xA1"" 12345", "259 242 192 139 242 192 136 242 192 143 242 192 143 242 192 146 259 229 148 163 229 148 164 259 52 53 54 55 56", "1 259 242 192 139 242 192 136 242 192 143 242 192 143 242 192 146 259 229 148 163 229 148 164 259 52 53 54 55 56", "\xEF""\xBD""\x88""\xEF""\xBD""\x85""\xEF""\xBD""\x8C""\xEF""\xBD""\x8C""\xEF""\xBD""\x8F"" \xE2""\x91""\xA0""\xE2""\x91""\xA1"" 12345"},
    {"\x0A""\x0A""\x09"" ok\x0D""\x0A""", "259 13 13 12 259 267 110 16 13", "1 259 13 13 12 259 267 110 16 13", "\x0A""\x0A""\x09"" ok\x0D""\x0A"""},
    {"", "", "1", ""},
    {"a\xC3""\xA9""\xF0""\x9F""\xA6""\x99""\xE2""\x96""\x81""", "282 198 172 243 162 169 156 259", "1 282 198 172 243 162 169 156 259", "a\xC3""\xA9""\xF0""\x9F""\xA6""\x99"" "},
    {"Hello, World. 3 hellos <s></s>", "259 274 276 267 272 285 271 259 54 259 274 276 267 118 259 1 2", "1 259 274 276 267 272 285 271 259 54 259 274 276 267 118 259 1 2", "hello, world. 3 hellos "},
};

/* tests/data beside this file. */
static char *data_path(const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char *d = llmsq_path_join(dir, "data");
    char *p = llmsq_path_join(d, name);
    free(d);
    return p;
}

static void ids_str(const int32_t *ids, size_t n, char *out, size_t cap)
{
    out[0] = 0;
    for (size_t i = 0, k = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(out + k, cap - k, i ? " %d" : "%d", (int)ids[i]);
}

static void run_cases(const char *file, const tok_case *cases, size_t n_cases)
{
    char *path = data_path(file);
    llmsq_tokenizer *t;
    ck_assert_msg(llmsq_tokenizer_load(path, &t) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(llmsq_tokenizer_get_kind(t), LLMSQ_TOKENIZER_BPE);
    for (size_t i = 0; i < n_cases; i++) {
        const tok_case *c = &cases[i];
        int32_t *ids;
        size_t n;
        char got[4096];
        ck_assert_int_eq(llmsq_tokenizer_encode(t, c->text, strlen(c->text), false, &ids, &n), LLMSQ_OK);
        ids_str(ids, n, got, sizeof got);
        ck_assert_msg(strcmp(got, c->ids) == 0, "%s case %zu: ids '%s', want '%s'", file, i, got, c->ids);
        char *text;
        size_t len;
        ck_assert_int_eq(llmsq_tokenizer_decode(t, ids, n, &text, &len), LLMSQ_OK);
        ck_assert_msg(strcmp(text, c->decoded) == 0, "%s case %zu: decoded '%s', want '%s'", file, i, text, c->decoded);
        free(text);
        free(ids);
        ck_assert_int_eq(llmsq_tokenizer_encode_special(t, c->text, strlen(c->text), &ids, &n), LLMSQ_OK);
        ids_str(ids, n, got, sizeof got);
        ck_assert_msg(strcmp(got, c->ids_special) == 0, "%s case %zu: special ids '%s', want '%s'", file, i, got,
                      c->ids_special);
        free(ids);
    }
    llmsq_tokenizer_free(t);
    free(path);
}

START_TEST(test_bytelevel_fixture)
{
    run_cases("tok_bytelevel.json", k_bytelevel, sizeof k_bytelevel / sizeof *k_bytelevel);
    char *path = data_path("tok_bytelevel.json");
    llmsq_tokenizer *t;
    ck_assert_int_eq(llmsq_tokenizer_load(path, &t), LLMSQ_OK);
    ck_assert_int_eq(llmsq_tokenizer_bos(t), 282); /* from the template */
    ck_assert_int_eq(llmsq_tokenizer_eos(t), 283);
    ck_assert_int_eq(llmsq_tokenizer_type(t, 282), LLMSQ_TOKEN_CONTROL);
    ck_assert_int_eq(llmsq_tokenizer_type(t, 285), LLMSQ_TOKEN_USER_DEFINED);
    ck_assert_int_eq(llmsq_tokenizer_find(t, "\xC4\xA0t", 3), 256); /* "Ġt" */
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "hello", 5, true, &ids, &n), LLMSQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 282);
    free(ids);
    /* Invalid UTF-8 is repaired with U+FFFD first, as a Python caller's errors="replace". */
    int32_t *a, *b;
    size_t na, nb;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "a\xFF\xC3", 3, false, &a, &na), LLMSQ_OK);
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "a\xEF\xBF\xBD\xEF\xBF\xBD", 7, false, &b, &nb), LLMSQ_OK);
    ck_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(a);
    free(b);
    int32_t bad = 100000;
    char *text;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, &bad, 1, &text, NULL), LLMSQ_STATUS_ARG);
    llmsq_tokenizer_free(t);
    free(path);
}
END_TEST

START_TEST(test_spmstyle_fixture)
{
    run_cases("tok_spmstyle.json", k_spmstyle, sizeof k_spmstyle / sizeof *k_spmstyle);
}
END_TEST

static void expect_json_error(const char *json, llmsq_status want, const char *needle)
{
    llmsq_tokenizer *t = NULL;
    llmsq_status st = llmsq_tokenizer_from_hf_json(json, strlen(json), "bad.json", &t);
    ck_assert_msg(st == want, "status %d (want %d) for %s: %s", st, want, json, llmsq_last_error());
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(llmsq_last_error(), needle) && strstr(llmsq_last_error(), "bad.json"),
                  "message '%s' lacks '%s'", llmsq_last_error(), needle);
}

#define MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

START_TEST(test_malformed_json)
{
    expect_json_error("", LLMSQ_STATUS_FORMAT, "not valid JSON");
    expect_json_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {", LLMSQ_STATUS_FORMAT, "not valid JSON");
    expect_json_error("[1, 2]", LLMSQ_STATUS_FORMAT, "not a JSON object");
    expect_json_error("{\"version\": \"1.0\", \"normalizer\": null}", LLMSQ_STATUS_FORMAT, "no \"model\"");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", LLMSQ_STATUS_UNSUPPORTED, "'WordPiece'");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", LLMSQ_STATUS_FORMAT, "\"vocab\"");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", LLMSQ_STATUS_FORMAT, "\"merges\"");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", LLMSQ_STATUS_FORMAT, "empty vocabulary");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":\"x\"},\"merges\":[]}}", LLMSQ_STATUS_FORMAT,
                      "non-negative integers");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", LLMSQ_STATUS_FORMAT,
                      "two tokens");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":2000000000},\"merges\":[]}}", LLMSQ_STATUS_FORMAT,
                      "far larger");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                      LLMSQ_STATUS_FORMAT, "not in the vocabulary");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}",
                      LLMSQ_STATUS_FORMAT, "'c'");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b c\"]}}", LLMSQ_STATUS_FORMAT,
                      "one space");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}", LLMSQ_STATUS_FORMAT, "merge 0");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}",
                      LLMSQ_STATUS_FORMAT, "unk_token");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}",
                      LLMSQ_STATUS_UNSUPPORTED, "dropout");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"continuing_subword_prefix\":\"##\"}}",
                      LLMSQ_STATUS_UNSUPPORTED, "continuing_subword_prefix");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"FancySplit\"}}", LLMSQ_STATUS_UNSUPPORTED,
                      "pre-tokenizer type 'FancySplit'");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{}]}}",
                      LLMSQ_STATUS_UNSUPPORTED, "pre-tokenizer type '(missing)'");
    expect_json_error("{" MODEL ",\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AA==\"}}",
                      LLMSQ_STATUS_UNSUPPORTED, "normalizer type 'Precompiled'");
    expect_json_error("{" MODEL ",\"decoder\":{\"type\":\"WordPiece\"}}", LLMSQ_STATUS_UNSUPPORTED, "decoder type");
    expect_json_error("{" MODEL ",\"post_processor\":{\"type\":\"Magic\"}}", LLMSQ_STATUS_UNSUPPORTED, "post-processor");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":"
                      "\"Isolated\"}}", LLMSQ_STATUS_FORMAT, "does not compile");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}",
                      LLMSQ_STATUS_FORMAT, "behavior");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Glob\":\"a\"},\"behavior\":\"Isolated\"}}",
                      LLMSQ_STATUS_FORMAT, "pattern");
    expect_json_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}}", LLMSQ_STATUS_FORMAT,
                      "single character");
    expect_json_error("{" MODEL ",\"normalizer\":{\"type\":\"Replace\",\"content\":\"x\"}}", LLMSQ_STATUS_FORMAT, "pattern");
    expect_json_error("{" MODEL ",\"normalizer\":{\"type\":\"Prepend\"}}", LLMSQ_STATUS_FORMAT, "\"prepend\"");
    expect_json_error("{" MODEL ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                      "{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}}",
                      LLMSQ_STATUS_FORMAT, "does not define");
    expect_json_error("{" MODEL ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[]}}", LLMSQ_STATUS_FORMAT,
                      "$A once");
    expect_json_error("{" MODEL ",\"added_tokens\":[{\"id\":3}]}", LLMSQ_STATUS_FORMAT, "\"content\"");
    expect_json_error("{" MODEL ",\"added_tokens\":[{\"id\":2,\"content\":\"zz\"}]}", LLMSQ_STATUS_FORMAT, "share id");
    /* Nesting deeper than any real file is refused rather than recursed into. */
    char deep[4096] = "{" MODEL ",\"normalizer\":";
    for (int i = 0; i < 40; i++) strcat(deep, "{\"type\":\"Sequence\",\"normalizers\":[");
    strcat(deep, "{\"type\":\"NFC\"}");
    for (int i = 0; i < 40; i++) strcat(deep, "]}");
    strcat(deep, "}");
    expect_json_error(deep, LLMSQ_STATUS_FORMAT, "normalizer");
}
END_TEST

START_TEST(test_malformed_gpt2_files)
{
    static const char vocab[] = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|endoftext|>\": 3}";
    static const struct {
        const char *vocab, *merges;
        llmsq_status st;
        const char *needle;
    } cases[] = {
        {"", "#version: 0.2\n", LLMSQ_STATUS_FORMAT, "not valid JSON"},
        {"[1]", "", LLMSQ_STATUS_FORMAT, "{token: id}"},
        {"{\"a\": -1}", "", LLMSQ_STATUS_FORMAT, "non-negative"},
        {"{\"a\": 0, \"b\": 0}", "", LLMSQ_STATUS_FORMAT, "two tokens"},
        {vocab, "#version: 0.2\na c\n", LLMSQ_STATUS_FORMAT, "not in the vocabulary"},
        {vocab, "#version: 0.2\nab\n", LLMSQ_STATUS_FORMAT, "line 2"},
        {vocab, "a b\n\na b\n", LLMSQ_STATUS_FORMAT, "line 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        llmsq_tokenizer *t = NULL;
        llmsq_status st = llmsq_tokenizer_from_gpt2(cases[i].vocab, strlen(cases[i].vocab), cases[i].merges,
                                                    strlen(cases[i].merges), "gpt2 files", &t);
        ck_assert_msg(st == cases[i].st && strstr(llmsq_last_error(), cases[i].needle), "case %zu: %d %s", i, st,
                      llmsq_last_error());
        ck_assert_ptr_null(t);
    }
    llmsq_tokenizer *t;
    ck_assert_int_eq(llmsq_tokenizer_from_gpt2(vocab, strlen(vocab), "#version: 0.2\r\na b\r\n", 20, "ok", &t), LLMSQ_OK);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "ab<|endoftext|>", 15, false, &ids, &n), LLMSQ_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(ids[0] == 2 && ids[1] == 3);
    ck_assert_int_eq(llmsq_tokenizer_bos(t), 3);
    free(ids);
    llmsq_tokenizer_free(t);
}
END_TEST

/* Every prefix of a real .model, tokenizer.json and GGUF vocabulary: an error, never a crash. */
START_TEST(test_truncated_files)
{
    char *json_path = data_path("tok_spmstyle.json");
    size_t jn;
    char *json;
    ck_assert_int_eq(llmsq_read_file(json_path, &json, &jn), LLMSQ_OK);
    for (size_t cut = 0; cut < jn; cut += 7) {
        llmsq_tokenizer *t = NULL;
        ck_assert_int_eq(llmsq_tokenizer_from_hf_json(json, cut, "cut.json", &t), LLMSQ_STATUS_FORMAT);
    }
    free(json);
    free(json_path);
    TU_SHARED_OR_SKIP(model, "models/stories260K/hf/tokenizer.model");
    size_t mn;
    char *data;
    ck_assert_int_eq(llmsq_read_file(model, &data, &mn), LLMSQ_OK);
    char *dir = tu_tmpdir("tok-trunc"), *p = llmsq_path_join(dir, "cut.model");
    int fails = 0;
    for (size_t cut = 0; cut < mn; cut += 97) {
        tu_write_file(p, data, cut);
        llmsq_tokenizer *t = NULL;
        llmsq_status st = llmsq_tokenizer_load(p, &t);
        ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "cut at %zu: %d %s", cut, st, llmsq_last_error());
        ck_assert_msg(strstr(llmsq_last_error(), "cut.model"), "%s", llmsq_last_error());
        fails++;
    }
    fprintf(stderr, "truncated .model: %d cuts, each a FORMAT error, e.g. %s\n", fails, llmsq_last_error());
    free(data);
    free(p);
    free(dir);
    free(model);
}
END_TEST

/* llmsq tokenize on the fixtures: ids, --add-special, --pieces, and its errors. */
START_TEST(test_tokenize_command)
{
    char *path = data_path("tok_bytelevel.json"), *dir = tu_tmpdir("tok-cli"), *in = llmsq_path_join(dir, "in.txt");
    tu_write_file(in, "Hello world", 11);
    char args[8192], *out, *err;
    snprintf(args, sizeof args, "tokenize --tokenizer '%s' < '%s'", path, in);
    /* tu_run_cli redirects stdin from /dev/null, so feed the file through sh -c. */
    const char *bin = getenv("LLMSQ_BIN");
    ck_assert_ptr_nonnull(bin);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' < '%s' > '%s/out'", bin, path, in, dir);
    ck_assert_int_eq(system(cmd), 0);
    char *o = llmsq_path_join(dir, "out"), *got;
    size_t gn;
    ck_assert_int_eq(llmsq_read_file(o, &got, &gn), LLMSQ_OK);
    ck_assert_str_eq(got, "72 266 111 272\n");
    free(got);
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' --add-special --pieces < '%s' > '%s/out'", bin, path, in, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(llmsq_read_file(o, &got, &gn), LLMSQ_OK);
    ck_assert_str_eq(got, "<|bos|> H ell o \xC4\xA0world <|eos|>\n");
    free(got);
    free(o);

    int rc = tu_run_cli("tokenize --help", &out, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert(strstr(out, "--tokenizer PATH") && strstr(out, "--add-special") && strstr(out, "--pieces"));
    free(out), free(err);
    rc = tu_run_cli("tokenize", &out, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert(strstr(err, "--tokenizer PATH is required"));
    free(out), free(err);
    rc = tu_run_cli("tokenize --tokenizer x --frobnicate", &out, &err);
    ck_assert_int_eq(rc, 2);
    free(out), free(err);
    rc = tu_run_cli("tokenize --tokenizer /nonexistent/tok.json", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "llmsq tokenize: error:") && strstr(err, "/nonexistent/tok.json"), "%s", err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s/bad.json", dir);
    tu_write_file(cmd, "{\"version\": \"1.0\"}", 18);
    snprintf(args, sizeof args, "tokenize --tokenizer '%s/bad.json'", dir);
    rc = tu_run_cli(args, &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "no \"model\"") && !strstr(err, "AddressSanitizer"), "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, "tokenize --tokenizer '%s'", dir);
    rc = tu_run_cli(args, &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "no tokenizer"), "%s", err);
    free(out), free(err);
    free(in);
    free(dir);
    free(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tok_json");
    TCase *tc = tcase_create("tokenizer.json");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bytelevel_fixture);
    tcase_add_test(tc, test_spmstyle_fixture);
    tcase_add_test(tc, test_malformed_json);
    tcase_add_test(tc, test_malformed_gpt2_files);
    tcase_add_test(tc, test_truncated_files);
    tcase_add_test(tc, test_tokenize_command);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
