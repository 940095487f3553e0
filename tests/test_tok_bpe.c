/* Hugging Face BPE tokenizers on real vocabularies: llama.cpp's GPT-2 vectors, token
 * streams of whole corpora against the tokenizers library (sha256 of the ids, computed
 * once with tokenizers 0.23 on the very tokenizer.json files these tests write), round
 * trips, and the speed of GPT-2 BPE.
 *
 * The tokenizer.json files are built here from ../shared (never copied into the repo):
 * GPT-2's vocab.json + merges.txt under three pipelines (GPT-2's own, Llama-3's and
 * Qwen2's), and Llama-2's tokenizer.model converted as transformers' LlamaConverter
 * does, in its legacy form (Prepend + Replace normalizer) and its Metaspace form. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static char *slurp(const char *path, size_t *n)
{
    char *d = NULL;
    ck_assert_msg(llmsq_read_file(path, &d, n) == LLMSQ_OK, "%s", llmsq_last_error());
    return d;
}

static json_t *added(int id, const char *content)
{
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0, "lstrip", 0,
                     "rstrip", 0, "normalized", 0, "special", 1);
}

static json_t *byte_level(bool prefix, bool regex)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", prefix, "trim_offsets", 1,
                     "use_regex", regex);
}

static const char k_re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
                                  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                                 "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static json_t *split_then_bytes(const char *re)
{
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Split",
                     "pattern", "Regex", re, "behavior", "Isolated", "invert", 0, byte_level(false, false));
}

/* TemplateProcessing "<bos> $A" (tokenizers also insists on a "pair" template). */
static json_t *bos_template(const char *bos, int id)
{
    return json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], "
                     "s:[s]}}}", "type", "TemplateProcessing", "single", "SpecialToken", "id", bos, "type_id", 0,
                     "Sequence", "id", "A", "type_id", 0, "pair", "Sequence", "id", "A", "type_id", 0, "Sequence", "id",
                     "B", "type_id", 1, "special_tokens", bos, "id", bos, "ids", id, "tokens", bos);
}

/* A tokenizer.json around GPT-2's vocabulary: "gpt2", "llama3" or "qwen2" pipelines. */
static char *gpt2_json(const char *dir, const char *variant)
{
    char *vp = llmsq_path_join(dir, "vocab.json"), *mp = llmsq_path_join(dir, "merges.txt");
    json_error_t jerr;
    json_t *vocab = json_load_file(vp, 0, &jerr);
    ck_assert_msg(vocab != NULL, "%s: %s", vp, jerr.text);
    size_t mn;
    char *mtxt = slurp(mp, &mn);
    json_t *merges = json_array();
    for (char *line = strtok(mtxt, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "#version", 8) != 0) json_array_append_new(merges, json_string(line));
    free(mtxt);
    bool l3 = strcmp(variant, "llama3") == 0, q2 = strcmp(variant, "qwen2") == 0;
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                              "byte_fallback", 0, "ignore_merges", l3, "vocab", vocab, "merges", merges);
    json_t *add = json_pack("[o]", added(50256, "<|endoftext|>"));
    if (l3) {
        json_array_append_new(add, added(50257, "<|begin_of_text|>"));
        json_array_append_new(add, added(50258, "<|eot_id|>"));
    } else if (q2) {
        json_array_append_new(add, added(50257, "<|im_start|>"));
        json_array_append_new(add, added(50258, "<|im_end|>"));
    }
    json_t *root = json_pack("{s:s, s:o, s:o}", "version", "1.0", "added_tokens", add, "model", model);
    json_object_set_new(root, "normalizer", q2 ? json_pack("{s:s}", "type", "NFC") : json_null());
    json_object_set_new(root, "pre_tokenizer", l3 ? split_then_bytes(k_re_llama3) : q2 ? split_then_bytes(k_re_qwen2)
                                                                                        : byte_level(false, true));
    json_object_set_new(root, "decoder", byte_level(true, true));
    if (l3)
        json_object_set_new(root, "post_processor", bos_template("<|begin_of_text|>", 50257));
    else
        json_object_set_new(root, "post_processor", byte_level(true, true));
    char *tmp = tu_tmpdir(variant), *path = llmsq_path_join(tmp, "tokenizer.json");
    ck_assert_int_eq(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
    free(tmp);
    free(vp);
    free(mp);
    return path;
}

typedef struct merge_rec {
    int32_t l, r;
    float   score;
    size_t  order;
} merge_rec;

static int cmp_local(const void *a, const void *b)
{
    const merge_rec *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

/* Python's stable sorted(..., key=score, reverse=True). */
static int cmp_score(const void *a, const void *b)
{
    const merge_rec *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Llama-2's tokenizer.model as transformers' LlamaConverter writes it: merges from
 * SentencePieceExtractor (every split of every piece into two pieces, by score). */
static char *spm_json(const char *model_path, bool legacy)
{
    llmsq_tokenizer *spm;
    ck_assert_msg(llmsq_tokenizer_load_spm(model_path, &spm) == LLMSQ_OK, "%s", llmsq_last_error());
    int32_t n = (int32_t)llmsq_tokenizer_vocab_size(spm);
    json_t *vocab = json_object();
    size_t cap = 1 << 16, nm = 0;
    merge_rec *m = malloc(cap * sizeof *m);
    for (int32_t id = 0; id < n; id++) {
        const char *p = llmsq_tokenizer_piece(spm, id);
        json_object_set_new(vocab, p, json_integer(id));
        size_t len = strlen(p), first = nm;
        for (size_t k = 1; k < len; k++) {
            if (((uint8_t)p[k] & 0xC0) == 0x80) continue; /* split between code points */
            int32_t l = llmsq_tokenizer_find(spm, p, k), r = llmsq_tokenizer_find(spm, p + k, len - k);
            if (l < 0 || r < 0) continue;
            if (nm == cap) m = realloc(m, (cap *= 2) * sizeof *m);
            m[nm++] = (merge_rec){l, r, llmsq_tokenizer_score(spm, id), 0};
        }
        qsort(m + first, nm - first, sizeof *m, cmp_local);
    }
    for (size_t i = 0; i < nm; i++) m[i].order = i;
    qsort(m, nm, sizeof *m, cmp_score);
    json_t *merges = json_array();
    for (size_t i = 0; i < nm; i++)
        json_array_append_new(merges, json_pack("[s, s]", llmsq_tokenizer_piece(spm, m[i].l),
                                                llmsq_tokenizer_piece(spm, m[i].r)));
    free(m);
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                              "unk_token", "<unk>", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1,
                              "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *root = json_pack("{s:s, s:[o, o, o], s:o}", "version", "1.0", "added_tokens", added(0, "<unk>"),
                             added(1, "<s>"), added(2, "</s>"), "model", model);
    if (legacy) {
        json_object_set_new(root, "normalizer",
                            json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers",
                                      "type", "Prepend", "prepend", "\xE2\x96\x81", "type", "Replace", "pattern",
                                      "String", " ", "content", "\xE2\x96\x81"));
        json_object_set_new(root, "pre_tokenizer", json_null());
    } else {
        json_object_set_new(root, "normalizer", json_null());
        json_object_set_new(root, "pre_tokenizer", json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                                                             "\xE2\x96\x81", "prepend_scheme", "first", "split", 0));
    }
    json_object_set_new(root, "post_processor", bos_template("<s>", 1));
    json_object_set_new(root, "decoder",
                        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type",
                                  "Sequence", "decoders", "type", "Replace", "pattern", "String", "\xE2\x96\x81",
                                  "content", " ", "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ",
                                  "start", 1, "stop", 0));
    llmsq_tokenizer_free(spm);
    char *tmp = tu_tmpdir(legacy ? "spm-legacy" : "spm-meta"), *path = llmsq_path_join(tmp, "tokenizer.json");
    ck_assert_int_eq(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
    free(tmp);
    return path;
}

static llmsq_tokenizer *load(const char *path)
{
    llmsq_tokenizer *t = NULL;
    ck_assert_msg(llmsq_tokenizer_load(path, &t) == LLMSQ_OK, "load %s: %s", path, llmsq_last_error());
    return t;
}

/* llama.cpp's vectors: inputs separated by "\n__ggml_vocab_test__\n", one line of ids each. */
static int run_vectors(const llmsq_tokenizer *t, const char *name, int *count)
{
    char *inp_path = tu_shared("tokenizers/tests/ggml-vocab-gpt-2.gguf.inp");
    char *out_path = tu_shared("tokenizers/tests/ggml-vocab-gpt-2.gguf.out");
    size_t a, b;
    char *inp = slurp(inp_path, &a), *out = slurp(out_path, &b), *in = inp, *line = out;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int passed = 0;
    *count = 0;
    for (;;) {
        char *end = strstr(in, sep), *eol = strchr(line, '\n');
        size_t in_len = end ? (size_t)(end - in) : strlen(in);
        ck_assert_msg(eol || !end, "more inputs than output lines");
        if (eol) *eol = 0;
        char want[65536] = "", got[65536] = "";
        snprintf(want, sizeof want, "%s", line[0] == ' ' ? line + 1 : line);
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(llmsq_tokenizer_encode(t, in, in_len, false, &ids, &n), LLMSQ_OK);
        for (size_t i = 0, k = 0; i < n && k < sizeof got - 16; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d" : "%d", (int)ids[i]);
        free(ids);
        if (strcmp(want, got) != 0)
            fprintf(stderr, "%s: vector %d '%.*s'\n  expected %s\n  got      %s\n", name, *count, (int)in_len, in, want, got);
        else passed++;
        ++*count;
        if (!end) break;
        in = end + strlen(sep);
        line = eol + 1;
    }
    free(inp);
    free(out);
    free(inp_path);
    free(out_path);
    return passed;
}

START_TEST(test_gpt2_vectors)
{
    TU_SHARED_OR_SKIP(dir, "tokenizers/gpt2");
    TU_SHARED_OR_SKIP(inp, "tokenizers/tests/ggml-vocab-gpt-2.gguf.inp");
    char *json = gpt2_json(dir, "gpt2");
    const char *paths[2] = {dir, json};
    for (int k = 0; k < 2; k++) {
        llmsq_tokenizer *t = load(paths[k]);
        ck_assert_int_eq(llmsq_tokenizer_get_kind(t), LLMSQ_TOKENIZER_BPE);
        int count, passed = run_vectors(t, k ? "tokenizer.json" : "vocab.json+merges.txt", &count);
        fprintf(stderr, "gpt-2 vectors (%s): %d/%d\n", k ? "tokenizer.json" : "vocab.json + merges.txt", passed, count);
        ck_assert_int_eq(count, 47);
        ck_assert_int_eq(passed, count);
        llmsq_tokenizer_free(t);
    }
    free(json);
    free(dir);
    free(inp);
}
END_TEST

/* C4's first 1000 documents joined by blank lines. */
static char *c4_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    json_t *o = NULL;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t got;
    while ((got = getline(&buf, &bcap, f)) > 0) {
        o = json_loads(buf, 0, NULL);
        ck_assert_ptr_nonnull(o);
        const char *s = json_string_value(json_object_get(o, "text"));
        size_t l = json_string_length(json_object_get(o, "text"));
        while (n + l + 3 > cap) out = realloc(out, cap *= 2);
        if (n) memcpy(out + n, "\n\n", 2), n += 2;
        memcpy(out + n, s, l);
        n += l;
        json_decref(o);
    }
    free(buf);
    fclose(f);
    out[n] = 0;
    *len = n;
    return out;
}

/* sha256 of the ids tokenizers 0.23.3 gives (add_special_tokens=False) for wiki.test.raw
 * and the joined C4 sample, on the tokenizer.json written by gpt2_json / spm_json. */
static const struct {
    const char *name, *wiki, *c4;
} k_ref[] = {
    {"gpt2", "91b9603eafb80ba78f417de40b17c20cf87f84ea64dd5ee5ea9e2e49cb748188",
     "b73f5126dceb2165f665df9a7b3712ae3aa301e35280a3d88884e393b6ee0e47"},
    {"llama3", "89f9e13bb84180bb203d619e3642d5399f95700b8d86f50bec066247da139903",
     "4d98c613f5e07525398355559a8ec06e5968789cb5bd3f199b9a64008e8db4cc"},
    {"qwen2", "c4d02cfad68ff3dc318601fc5faa1fa2dfccc72ef62811baa82d04a972f01722",
     "ba573bc712db06f9ff208fbfe5dbe08e045b8e0e67897041d850230e127952d1"},
    {"spm-legacy", "2115c2febc5a0616e00011635a26f6cab215cf7508e5893de0ef469b7475f3ca",
     "f5ec25871ea1838cf2b58f373c9d2607ded6757c6ca2e8a8091bcaedfd55f9e6"},
    {"spm-meta", "a5be7c37c78cd916e15a05c8d4deff13fc653eed933d60685323c3ed347500c3",
     "f5ec25871ea1838cf2b58f373c9d2607ded6757c6ca2e8a8091bcaedfd55f9e6"},
};

/* What decode(encode(x)) gives back in tokenizers, and so here: x itself; its NFC form
 * under Qwen2's NFC normalizer; for the Metaspace ("legacy": false) Llama tokenizer, x
 * without a leading space (nothing is prepended to a text that starts with one, and the
 * decoder's Strip then removes it). */
static char *expected_roundtrip(const char *name, const char *text, size_t len, size_t *out_len)
{
    if (strcmp(name, "spm-meta") == 0 && len > 0 && text[0] == ' ') {
        *out_len = len - 1;
        return strndup(text + 1, len - 1);
    }
    if (strcmp(name, "qwen2") != 0) {
        *out_len = len;
        return NULL;
    }
    char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
    ck_assert_ptr_nonnull(nfc);
    *out_len = strlen(nfc);
    return nfc;
}

static void check_corpus(const char *name, const llmsq_tokenizer *t, const char *what, const char *text, size_t len,
                         const char *want_sha)
{
    int32_t *ids;
    size_t n;
    double t0 = llmsq_time_now();
    ck_assert_msg(llmsq_tokenizer_encode(t, text, len, false, &ids, &n) == LLMSQ_OK, "%s", llmsq_last_error());
    double dt = llmsq_time_now() - t0;
    char hex[65];
    llmsq_token_sha256(ids, n, hex);
    fprintf(stderr, "%-10s %-5s %8zu bytes -> %7zu tokens in %.3f s  sha256 %s\n", name, what, len, n, dt, hex);
    if (want_sha) ck_assert_msg(strcmp(hex, want_sha) == 0, "%s on %s: token stream differs from tokenizers", name, what);
    char *back;
    size_t back_len, exp_len;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, ids, n, &back, &back_len), LLMSQ_OK);
    char *exp = expected_roundtrip(name, text, len, &exp_len);
    const char *want = exp ? exp : text;
    ck_assert_msg(back_len == exp_len && memcmp(back, want, exp_len) == 0, "%s on %s: decode(encode(x)) != x", name, what);
    free(exp);
    free(back);
    free(ids);
}

START_TEST(test_corpora_against_tokenizers)
{
    TU_SHARED_OR_SKIP(dir, "tokenizers/gpt2");
    TU_SHARED_OR_SKIP(spm, "tokenizers/llama2/tokenizer.model");
    TU_SHARED_OR_SKIP(wiki_path, "data/wikitext-2/wiki.test.raw");
    TU_SHARED_OR_SKIP(c4_path, "data/c4/c4-train.00000-of-01024.first1000.jsonl");
    size_t wiki_len, c4_len;
    char *wiki = slurp(wiki_path, &wiki_len), *c4 = c4_text(c4_path, &c4_len);
    for (size_t k = 0; k < sizeof k_ref / sizeof *k_ref; k++) {
        const char *name = k_ref[k].name;
        char *json = strncmp(name, "spm", 3) == 0 ? spm_json(spm, strcmp(name, "spm-legacy") == 0) : gpt2_json(dir, name);
        llmsq_tokenizer *t = load(json);
        check_corpus(name, t, "wiki", wiki, wiki_len, k_ref[k].wiki);
        check_corpus(name, t, "c4", c4, c4_len, k_ref[k].c4);
        llmsq_tokenizer_free(t);
        free(json);
    }
    /* The files themselves and the SentencePiece model round-trip too. */
    const char *plain[2] = {dir, spm};
    for (int k = 0; k < 2; k++) {
        llmsq_tokenizer *t = load(plain[k]);
        check_corpus(k ? "llama2" : "gpt2-files", t, "wiki", wiki, wiki_len, NULL);
        check_corpus(k ? "llama2" : "gpt2-files", t, "c4", c4, c4_len, NULL);
        llmsq_tokenizer_free(t);
    }
    free(wiki);
    free(c4);
    free(dir);
    free(spm);
    free(wiki_path);
    free(c4_path);
}
END_TEST

/* wiki.test.raw through GPT-2 BPE on one core: under 0.5 s (tokenizers 0.23.3 takes
 * 0.84-0.98 s and tiktoken 0.07 s on this machine). */
START_TEST(test_gpt2_speed)
{
    TU_SHARED_OR_SKIP(dir, "tokenizers/gpt2");
    TU_SHARED_OR_SKIP(wiki_path, "data/wikitext-2/wiki.test.raw");
    llmsq_tokenizer *t = load(dir);
    size_t len;
    char *wiki = slurp(wiki_path, &len);
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        int32_t *ids;
        size_t n;
        double t0 = llmsq_time_now();
        ck_assert_int_eq(llmsq_tokenizer_encode(t, wiki, len, false, &ids, &n), LLMSQ_OK);
        double dt = llmsq_time_now() - t0;
        if (dt < best) best = dt;
        ck_assert_uint_eq(n, 286221);
        free(ids);
    }
    fprintf(stderr, "gpt-2 BPE speed: wiki.test.raw (%zu bytes) in %.3f s (%.1f MB/s), best of 3, one thread\n", len, best,
            (double)len / best / 1e6);
#if !defined(__SANITIZE_ADDRESS__)
    ck_assert_msg(best < 0.5, "GPT-2 BPE took %.3f s on wiki.test.raw", best);
#endif
    free(wiki);
    llmsq_tokenizer_free(t);
    free(dir);
    free(wiki_path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tok_bpe");
    TCase *tc = tcase_create("real vocabularies");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_gpt2_vectors);
    tcase_add_test(tc, test_corpora_against_tokenizers);
    tcase_add_test(tc, test_gpt2_speed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
