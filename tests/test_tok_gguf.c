/* GGUF `tokenizer.ggml.model = "gpt2"` vocabularies. The test writes GGUF files holding
 * only a tokenizer, from GPT-2's vocab.json + merges.txt in ../shared, under each
 * tokenizer.ggml.pre it supports; each must give the ids of the matching tokenizer.json
 * pipeline (test_tok_bpe.c, checked there against the tokenizers library). Then broken
 * vocabularies. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gbuf {
    uint8_t *p;
    size_t   n, cap;
} gbuf;

static void put(gbuf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); } /* little-endian host */
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gbuf *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

enum { G_U32 = 4, G_I32 = 5, G_BOOL = 7, G_STR = 8, G_ARR = 9 };

typedef struct gguf_w {
    gbuf     kv;
    uint64_t n_kv;
} gguf_w;

static void kv_key(gguf_w *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

static void kv_str(gguf_w *w, const char *key, const char *v)
{
    kv_key(w, key, G_STR);
    put_str(&w->kv, v, strlen(v));
}

static void kv_u32(gguf_w *w, const char *key, uint32_t v)
{
    kv_key(w, key, G_U32);
    put_u32(&w->kv, v);
}

static void kv_strs(gguf_w *w, const char *key, const char *const *v, size_t n)
{
    kv_key(w, key, G_ARR);
    put_u32(&w->kv, G_STR);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_str(&w->kv, v[i], strlen(v[i]));
}

static void kv_i32s(gguf_w *w, const char *key, const int32_t *v, size_t n)
{
    kv_key(w, key, G_ARR);
    put_u32(&w->kv, G_I32);
    put_u64(&w->kv, n);
    put(&w->kv, v, 4 * n);
}

/* The whole file: header, key-values, no tensors, padding to the default alignment. */
static gbuf gguf_image(gguf_w *w)
{
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.p, w->kv.n);
    while (b.n % 32) put(&b, "", 1);
    free(w->kv.p);
    return b;
}

/* GPT-2's vocabulary as GGUF arrays. */
typedef struct gpt2_vocab {
    char   **tokens, **merges;
    int32_t *types;
    size_t   n, n_merges;
    json_t  *json;
    char    *merges_txt;
} gpt2_vocab;

static void gpt2_load(const char *dir, gpt2_vocab *v)
{
    char *vp = llmsq_path_join(dir, "vocab.json"), *mp = llmsq_path_join(dir, "merges.txt");
    v->json = json_load_file(vp, 0, NULL);
    ck_assert_ptr_nonnull(v->json);
    v->n = json_object_size(v->json);
    v->tokens = calloc(v->n, sizeof *v->tokens);
    v->types = malloc(v->n * sizeof *v->types);
    const char *key;
    json_t *val;
    json_object_foreach(v->json, key, val) v->tokens[json_integer_value(val)] = (char *)key;
    for (size_t i = 0; i < v->n; i++) v->types[i] = strcmp(v->tokens[i], "<|endoftext|>") == 0 ? 3 : 1;
    size_t mn;
    ck_assert_int_eq(llmsq_read_file(mp, &v->merges_txt, &mn), LLMSQ_OK);
    v->merges = malloc(60000 * sizeof *v->merges);
    for (char *line = strtok(v->merges_txt, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "#version", 8) != 0 && v->n_merges < 60000) v->merges[v->n_merges++] = line;
    free(vp);
    free(mp);
}

static void gpt2_free(gpt2_vocab *v)
{
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->merges_txt);
    json_decref(v->json);
}

static llmsq_status gguf_tokenizer(const gpt2_vocab *v, const char *pre, llmsq_tokenizer **t)
{
    gguf_w w = {0};
    kv_str(&w, "general.architecture", "gpt2");
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(&w, "tokenizer.ggml.pre", pre);
    kv_strs(&w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->n);
    kv_i32s(&w, "tokenizer.ggml.token_type", v->types, v->n);
    kv_strs(&w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", 50256);
    kv_u32(&w, "tokenizer.ggml.eos_token_id", 50256);
    gbuf b = gguf_image(&w);
    llmsq_status st = llmsq_tokenizer_from_gguf(b.p, b.n, "gpt2.gguf", t);
    free(b.p);
    return st;
}

static void expect_sha(const llmsq_tokenizer *t, const char *text, size_t len, const char *want, const char *what)
{
    int32_t *ids;
    size_t n;
    char hex[65];
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, len, false, &ids, &n), LLMSQ_OK);
    llmsq_token_sha256(ids, n, hex);
    fprintf(stderr, "gguf %-9s wiki.test.raw -> %zu tokens, sha256 %s\n", what, n, hex);
    if (want) ck_assert_msg(strcmp(hex, want) == 0, "%s: token stream differs", what);
    char *back;
    size_t back_len;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, ids, n, &back, &back_len), LLMSQ_OK);
    ck_assert_msg(back_len == len && memcmp(back, text, len) == 0, "%s: decode(encode(x)) != x", what);
    free(back);
    free(ids);
}

START_TEST(test_gguf_gpt2_pipelines)
{
    TU_SHARED_OR_SKIP(dir, "tokenizers/gpt2");
    TU_SHARED_OR_SKIP(wiki_path, "data/wikitext-2/wiki.test.raw");
    TU_SHARED_OR_SKIP(inp_path, "tokenizers/tests/ggml-vocab-gpt-2.gguf.inp");
    TU_SHARED_OR_SKIP(out_path, "tokenizers/tests/ggml-vocab-gpt-2.gguf.out");
    gpt2_vocab v = {0};
    gpt2_load(dir, &v);
    size_t len;
    char *wiki;
    ck_assert_int_eq(llmsq_read_file(wiki_path, &wiki, &len), LLMSQ_OK);
    /* The streams of test_tok_bpe.c's gpt2, llama3 and qwen2 tokenizer.json files (wiki is
     * already NFC, so Qwen2's normalizer, which GGUF does not carry, changes nothing). */
    static const struct {
        const char *pre, *sha;
    } pres[] = {
        {"gpt-2", "91b9603eafb80ba78f417de40b17c20cf87f84ea64dd5ee5ea9e2e49cb748188"},
        {"llama-bpe", "89f9e13bb84180bb203d619e3642d5399f95700b8d86f50bec066247da139903"},
        {"qwen2", "c4d02cfad68ff3dc318601fc5faa1fa2dfccc72ef62811baa82d04a972f01722"},
        {"default", NULL},
        {NULL, NULL}, /* no tokenizer.ggml.pre: llama.cpp's default */
    };
    for (size_t k = 0; k < sizeof pres / sizeof *pres; k++) {
        llmsq_tokenizer *t;
        ck_assert_msg(gguf_tokenizer(&v, pres[k].pre, &t) == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert_int_eq(llmsq_tokenizer_get_kind(t), LLMSQ_TOKENIZER_BPE);
        ck_assert_int_eq(llmsq_tokenizer_type(t, 50256), LLMSQ_TOKEN_CONTROL);
        expect_sha(t, wiki, len, pres[k].sha, pres[k].pre ? pres[k].pre : "(no pre)");
        /* llama.cpp adds BOS by default for llama-bpe only. */
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(llmsq_tokenizer_encode_special(t, "Hello", 5, &ids, &n), LLMSQ_OK);
        bool llama3 = pres[k].pre && strcmp(pres[k].pre, "llama-bpe") == 0;
        ck_assert_uint_eq(n, llama3 ? 2 : 1);
        ck_assert_int_eq(ids[0], llama3 ? 50256 : 15496);
        free(ids);
        llmsq_tokenizer_free(t);
    }

    /* llama.cpp's own gpt-2 vectors through the GGUF vocabulary. */
    llmsq_tokenizer *t;
    ck_assert_int_eq(gguf_tokenizer(&v, "gpt-2", &t), LLMSQ_OK);
    size_t a, b;
    char *inp, *out;
    ck_assert_int_eq(llmsq_read_file(inp_path, &inp, &a), LLMSQ_OK);
    ck_assert_int_eq(llmsq_read_file(out_path, &out, &b), LLMSQ_OK);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int count = 0, passed = 0;
    for (char *in = inp, *line = out;;) {
        char *end = strstr(in, sep), *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(llmsq_tokenizer_encode(t, in, end ? (size_t)(end - in) : strlen(in), false, &ids, &n), LLMSQ_OK);
        char got[65536] = "";
        for (size_t i = 0, k = 0; i < n && k < sizeof got - 16; i++) k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[i]);
        passed += strcmp(got, line) == 0; /* the .out lines are " id id ..." */
        count++;
        free(ids);
        if (!end || !eol) break;
        in = end + strlen(sep);
        line = eol + 1;
    }
    fprintf(stderr, "gpt-2 vectors through GGUF: %d/%d\n", passed, count);
    ck_assert_int_eq(count, 47);
    ck_assert_int_eq(passed, 47);
    llmsq_tokenizer_free(t);
    free(inp);
    free(out);
    free(wiki);
    gpt2_free(&v);
    free(dir);
    free(wiki_path);
    free(inp_path);
    free(out_path);
}
END_TEST

/* A small vocabulary: bytes a, b, c, their merges, and one control token. */
static llmsq_status small_gguf(const char *model, const char *pre, const char *const *merges, size_t n_merges,
                               int32_t bad_type, size_t cut, llmsq_tokenizer **t)
{
    static const char *const toks[] = {"a", "b", "c", "ab", "abc", "<|end|>"};
    int32_t types[6] = {1, 1, 1, 1, 1, 3};
    if (bad_type) types[2] = bad_type;
    gguf_w w = {0};
    if (model) kv_str(&w, "tokenizer.ggml.model", model);
    if (pre) kv_str(&w, "tokenizer.ggml.pre", pre);
    kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
    kv_i32s(&w, "tokenizer.ggml.token_type", types, 6);
    if (merges) kv_strs(&w, "tokenizer.ggml.merges", merges, n_merges);
    gbuf b = gguf_image(&w);
    llmsq_status st = llmsq_tokenizer_from_gguf(b.p, cut ? cut : b.n, "small.gguf", t);
    free(b.p);
    return st;
}

START_TEST(test_gguf_bad_vocabularies)
{
    static const char *const good[] = {"a b", "ab c"};
    llmsq_tokenizer *t;
    ck_assert_msg(small_gguf("gpt2", "gpt-2", good, 2, 0, 0, &t) == LLMSQ_OK, "%s", llmsq_last_error());
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "abcab<|end|>", 12, false, &ids, &n), LLMSQ_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(ids[0] == 4 && ids[1] == 3 && ids[2] == 5);
    free(ids);
    llmsq_tokenizer_free(t);

    static const char *const unknown[] = {"a b", "ab d"}, *const no_space[] = {"ab"};
    static const struct {
        const char *model, *pre;
        const char *const *merges;
        size_t n_merges;
        int32_t bad_type;
        llmsq_status st;
        const char *needle;
    } cases[] = {
        {"gpt2", "fancy-pre", good, 2, 0, LLMSQ_STATUS_UNSUPPORTED, "pre-tokenizer 'fancy-pre'"},
        {"bert", NULL, good, 2, 0, LLMSQ_STATUS_UNSUPPORTED, "'bert'"},
        {"gpt2", "gpt-2", NULL, 0, 0, LLMSQ_STATUS_FORMAT, "tokenizer.ggml.merges is missing"},
        {"gpt2", "gpt-2", unknown, 2, 0, LLMSQ_STATUS_FORMAT, "not in the vocabulary"},
        {"gpt2", "gpt-2", no_space, 1, 0, LLMSQ_STATUS_FORMAT, "one space"},
        {"gpt2", "gpt-2", good, 2, 9, LLMSQ_STATUS_FORMAT, "invalid type 9"},
        {NULL, NULL, good, 2, 0, LLMSQ_STATUS_NOT_FOUND, "no tokenizer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        t = NULL;
        llmsq_status st = small_gguf(cases[i].model, cases[i].pre, cases[i].merges, cases[i].n_merges, cases[i].bad_type,
                                     0, &t);
        ck_assert_msg(st == cases[i].st && strstr(llmsq_last_error(), cases[i].needle) &&
                          strstr(llmsq_last_error(), "small.gguf"),
                      "case %zu: %d %s", i, st, llmsq_last_error());
        ck_assert_ptr_null(t);
    }
    /* Every prefix of the file is a FORMAT error. */
    for (size_t cut = 1; cut < 200; cut++) {
        t = NULL;
        llmsq_status st = small_gguf("gpt2", "gpt-2", good, 2, 0, cut, &t);
        ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "cut %zu: %d %s", cut, st, llmsq_last_error());
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tok_gguf");
    TCase *tc = tcase_create("gguf gpt2 vocabularies");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_gguf_gpt2_pipelines);
    tcase_add_test(tc, test_gguf_bad_vocabularies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
