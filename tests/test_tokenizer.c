/* SentencePiece tokenizer: real vocabularies against reference token streams and
 * llama.cpp's test vectors, round trips, and malformed files. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static llmsq_tokenizer *load_spm(const char *path)
{
    llmsq_tokenizer *t = NULL;
    llmsq_status st = llmsq_tokenizer_load_spm(path, &t);
    ck_assert_msg(st == LLMSQ_OK, "load %s: %s", path, llmsq_last_error());
    return t;
}

static char *slurp(const char *path, size_t *n)
{
    char *d = NULL;
    ck_assert_msg(llmsq_read_file(path, &d, n) == LLMSQ_OK, "%s", llmsq_last_error());
    return d;
}

static void expect_ids(const llmsq_tokenizer *t, const char *text, const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, strlen(text), false, &ids, &n), LLMSQ_OK);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        fprintf(stderr, "encode '%s':", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    ck_assert_msg(same, "encode '%s' differs from sentencepiece", text);
    free(ids);
}

static void expect_text(const llmsq_tokenizer *t, const int32_t *ids, size_t n, const char *want)
{
    char *s;
    size_t len;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, ids, n, &s, &len), LLMSQ_OK);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_str_eq(s, want);
    free(s);
}

/* The whole TinyStories validation prefix as one string gives the reference stream. */
START_TEST(test_stories260k_stream)
{
    TU_SHARED_OR_SKIP(model, "models/stories260K/hf/tokenizer.model");
    TU_SHARED_OR_SKIP(text_path, "data/tinystories/valid_prefix.txt");
    TU_SHARED_OR_SKIP(ref_path, "refs/stories260K.json");
    json_error_t jerr;
    json_t *ref = json_load_file(ref_path, 0, &jerr);
    ck_assert_msg(ref != NULL, "%s: %s", ref_path, jerr.text);
    json_t *tv = json_object_get(ref, "tinystories_valid");
    ck_assert(json_is_integer(json_object_get(tv, "tokens")));
    ck_assert(json_is_string(json_object_get(tv, "token_sha256")));

    llmsq_tokenizer *t = load_spm(model);
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(t), 512);
    ck_assert_int_eq(llmsq_tokenizer_bos(t), 1);
    ck_assert_int_eq(llmsq_tokenizer_eos(t), 2);
    ck_assert(llmsq_tokenizer_options(t)->byte_fallback);
    ck_assert(llmsq_tokenizer_options(t)->remove_extra_whitespaces); /* proto2 default, not set in the file */

    size_t len;
    char *text = slurp(text_path, &len);
    int32_t *ids;
    size_t n;
    double t0 = llmsq_time_now();
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, len, true, &ids, &n), LLMSQ_OK);
    double dt = llmsq_time_now() - t0;
    fprintf(stderr, "stories260K: encoded %zu bytes into %zu tokens in %.3f s\n", len, n, dt);
    char hex[65];
    llmsq_token_sha256(ids, n, hex);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq((long long)n, (long long)json_integer_value(json_object_get(tv, "tokens")));
    ck_assert_str_eq(hex, json_string_value(json_object_get(tv, "token_sha256")));
    /* A quadratic merge loop takes minutes here; sanitizer builds stay well under this. */
    ck_assert_msg(dt < 10.0, "encoding took %.2f s", dt);
    free(ids);
    free(text);
    llmsq_tokenizer_free(t);
    json_decref(ref);
    free(model);
    free(text_path);
    free(ref_path);
}
END_TEST

/* llama.cpp's test-tokenizer-0 vectors: the .inp holds inputs each followed by
 * "\n__ggml_vocab_test__\n"; the .out one line of ids per input. */
START_TEST(test_llamacpp_vectors)
{
    TU_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
    TU_SHARED_OR_SKIP(inp_path, "tokenizers/tests/ggml-vocab-llama-spm.gguf.inp");
    TU_SHARED_OR_SKIP(out_path, "tokenizers/tests/ggml-vocab-llama-spm.gguf.out");
    llmsq_tokenizer *t = load_spm(model);
    ck_assert(!llmsq_tokenizer_options(t)->remove_extra_whitespaces);
    size_t inp_len, out_len;
    char *inp = slurp(inp_path, &inp_len), *out = slurp(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";

    /* Like Python's split(): the text after the last separator (empty here) is one more
     * input, matched by the empty line after the last newline of the .out. */
    char *in = inp, *line = out;
    int count = 0, passed = 0;
    for (;;) {
        char *end = strstr(in, sep);
        size_t in_len = end ? (size_t)(end - in) : strlen(in);
        char *eol = strchr(line, '\n');
        ck_assert_msg(eol || !end, "more inputs than output lines");
        if (eol) *eol = 0;

        int32_t want[4096];
        size_t n_want = 0;
        for (char *p = line, *q;; p = q) {
            long v = strtol(p, &q, 10);
            if (q == p) break;
            ck_assert(n_want < 4096);
            want[n_want++] = (int32_t)v;
        }
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(llmsq_tokenizer_encode(t, in, in_len, false, &ids, &n), LLMSQ_OK);
        bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        if (!same) fprintf(stderr, "vector %d ('%.*s'): %zu ids, expected %zu\n", count, (int)in_len, in, n, n_want);
        passed += same;
        count++;
        free(ids);
        if (!end) break;
        in = end + strlen(sep);
        line = eol + 1;
    }
    ck_assert_msg(strchr(line, '\n') == NULL && *line == 0, "more output lines than inputs");
    fprintf(stderr, "llama-spm vectors: %d/%d\n", passed, count);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, "a\0b", 3, false, &ids, &n), LLMSQ_OK);
    ck_assert_uint_eq(n, 3); /* NUL is an ordinary character: byte piece <0x00> */
    ck_assert(ids[0] == 263 && ids[1] == 3 && ids[2] == 29890);
    free(ids);
    ck_assert_int_eq(count, 47);
    ck_assert_int_eq(passed, count);
    free(inp);
    free(out);
    llmsq_tokenizer_free(t);
    free(model);
    free(inp_path);
    free(out_path);
}
END_TEST

/* Llama-2 keeps whitespace as is, so decode(encode(x)) is x, byte for byte. */
START_TEST(test_wikitext_roundtrip)
{
    TU_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
    TU_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
    llmsq_tokenizer *t = load_spm(model);
    size_t len;
    char *text = slurp(wiki, &len);
    int32_t *ids;
    size_t n;
    double t0 = llmsq_time_now();
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, len, true, &ids, &n), LLMSQ_OK);
    fprintf(stderr, "wikitext-2 test: %zu bytes -> %zu tokens in %.3f s\n", len, n, llmsq_time_now() - t0);
    ck_assert_uint_gt(n, len / 8);
    char *back;
    size_t back_len;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, ids, n, &back, &back_len), LLMSQ_OK);
    ck_assert_uint_eq(back_len, len);
    ck_assert(memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    free(text);
    llmsq_tokenizer_free(t);
    free(model);
    free(wiki);
}
END_TEST

START_TEST(test_fixture_decode)
{
    TU_SHARED_OR_SKIP(model, "models/stories260K/hf/tokenizer.model");
    TU_SHARED_OR_SKIP(fix_path, "refs/stories260K-fixture.json");
    json_error_t jerr;
    json_t *fix = json_load_file(fix_path, 0, &jerr);
    ck_assert_msg(fix != NULL, "%s: %s", fix_path, jerr.text);
    json_t *arr = json_object_get(fix, "greedy_from_bos_ids");
    const char *want = json_string_value(json_object_get(fix, "greedy_from_bos_text"));
    ck_assert(json_is_array(arr) && json_array_size(arr) > 1 && want);
    ck_assert_int_eq(json_integer_value(json_array_get(arr, 0)), 1);
    size_t n = json_array_size(arr) - 1;
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i + 1));

    llmsq_tokenizer *t = load_spm(model);
    expect_text(t, ids, n, want);
    /* With the BOS kept in, the control piece decodes to nothing. */
    ids = realloc(ids, (n + 1) * sizeof *ids);
    memmove(ids + 1, ids, n * sizeof *ids);
    ids[0] = 1;
    expect_text(t, ids, n + 1, want);

    int32_t bad = 512;
    char *s = NULL;
    ck_assert_int_eq(llmsq_tokenizer_decode(t, &bad, 1, &s, NULL), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(s);
    free(ids);
    llmsq_tokenizer_free(t);
    json_decref(fix);
    free(model);
    free(fix_path);
}
END_TEST

/* A hand-made vocabulary exercising user-defined pieces (frozen), an UNUSED merge that
 * must be split again, unknown runs without byte fallback, and the normalizer flags.
 * Expected ids and texts come from sentencepiece 0.2 on the same ModelProto. */
static const char *const syn_pieces[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "c", "ab", "bc", "abc",
                                         "\342\226\201a", "<x>", "d", "cd", "\xE2\x96\x81\xE2\x96\x81"};
static const float syn_scores[] = {0, 0, 0, -4, -5, -5, -5, -1, 0, -2, -0.5f, 0, -6, -3, -0.25f};
static const int32_t syn_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 5, 1, 1, 4, 1, 1, 1};

static llmsq_tokenizer *syn_tokenizer(bool adp, bool rew)
{
    llmsq_spm_options o = llmsq_spm_default_options();
    o.add_dummy_prefix = adp;
    o.remove_extra_whitespaces = rew;
    llmsq_tokenizer *t;
    ck_assert_int_eq(llmsq_tokenizer_from_vocab(15, syn_pieces, syn_scores, syn_types, &o, "syn", &t), LLMSQ_OK);
    return t;
}

#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

START_TEST(test_synthetic_vocab)
{
    llmsq_tokenizer *t = syn_tokenizer(true, true);
    expect_ids(t, "abc", IDS(10, 5, 6)); /* "bc" is UNUSED: merged, then split back */
    expect_ids(t, "  a<x>bc  dd ", IDS(10, 11, 5, 6, 3, 12, 12));
    expect_ids(t, "zz\xC3\xA9 a", IDS(3, 0, 10)); /* one <unk> for the run "zzé" */
    expect_ids(t, "<x><x>abcd", IDS(3, 11, 11, 9, 12));
    expect_ids(t, "a  b", IDS(10, 3, 5));
    expect_ids(t, "   ", NULL, 0);
    expect_ids(t, "", NULL, 0);
    expect_text(t, IDS(1, 3, 3, 4, 0, 0, 2, 14, 4), "a \xE2\x81\x87  \xE2\x81\x87   a");
    expect_text(t, IDS(14, 14, 4), "   a");
    llmsq_tokenizer_free(t);

    t = syn_tokenizer(true, false);
    expect_ids(t, "  a<x>bc  dd ", IDS(14, 10, 11, 5, 6, 14, 12, 12, 3));
    expect_ids(t, "a  b", IDS(10, 14, 5));
    expect_text(t, IDS(1, 3, 3, 4, 0, 0, 2, 14, 4), " a \xE2\x81\x87  \xE2\x81\x87   a");
    llmsq_tokenizer_free(t);

    t = syn_tokenizer(false, false);
    expect_ids(t, "abc", IDS(9));
    expect_ids(t, "zz\xC3\xA9 a", IDS(0, 10));
    expect_text(t, IDS(10, 5, 6), " abc");
    llmsq_tokenizer_free(t);

    /* Vocabularies sentencepiece refuses. */
    const char *dup[] = {"<unk>", "a", "a"};
    const char *empty[] = {"<unk>", ""};
    llmsq_spm_options o = llmsq_spm_default_options();
    ck_assert_int_eq(llmsq_tokenizer_from_vocab(3, dup, NULL, NULL, &o, "dup", &t), LLMSQ_STATUS_FORMAT);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "dup"));
    ck_assert_int_eq(llmsq_tokenizer_from_vocab(2, empty, NULL, NULL, &o, "empty", &t), LLMSQ_STATUS_FORMAT);
    o.byte_fallback = true; /* but no <0xXX> pieces */
    ck_assert_int_eq(llmsq_tokenizer_from_vocab(15, syn_pieces, syn_scores, syn_types, &o, "nobytes", &t),
                     LLMSQ_STATUS_FORMAT);
    o = llmsq_spm_default_options();
    o.bos_id = 15;
    ck_assert_int_eq(llmsq_tokenizer_from_vocab(15, syn_pieces, syn_scores, syn_types, &o, "bos", &t),
                     LLMSQ_STATUS_FORMAT);
}
END_TEST

/* ---- malformed input ------------------------------------------------------------------ */

static void expect_format_error(const char *path, const char *what)
{
    llmsq_tokenizer *t = (llmsq_tokenizer *)1;
    llmsq_status st = llmsq_tokenizer_load_spm(path, &t);
    ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "%s: status %d (%s)", what, st, llmsq_last_error());
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(llmsq_last_error(), path) != NULL, "%s: message lacks the path: %s", what,
                  llmsq_last_error());
}

static size_t put_varint(uint8_t *b, uint64_t v)
{
    size_t n = 0;
    do {
        b[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

START_TEST(test_bad_spm_files)
{
    TU_SHARED_OR_SKIP(model, "models/stories260K/hf/tokenizer.model");
    char *dir = tu_tmpdir("tok-bad");
    char path[4096];
    snprintf(path, sizeof path, "%s/bad.model", dir);
    size_t size;
    char *data = slurp(model, &size);

    /* Prefixes of a real model, the empty file included: every length through the first
     * pieces and the trailing specs, every 5th in between. */
    for (size_t n = 0; n < size; n += n < 400 || n + 400 > size ? 1 : 5) {
        char what[64];
        snprintf(what, sizeof what, "first %zu bytes", n);
        tu_write_file(path, data, n);
        expect_format_error(path, what);
    }
    tu_write_file(path, data, size / 2);
    expect_format_error(path, "half");
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "byte offset"));

    /* Garbage, random and hand-made. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint8_t *junk = malloc(4096);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(round * 37) % 4000;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        tu_write_file(path, junk, n);
        expect_format_error(path, "random bytes");
    }
    static const struct { const char *bytes; size_t n; const char *what; } crafted[] = {
        {"\x0a\xff\xff\xff\xff\x0f", 6, "length past the end"},
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "11-byte varint"},
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11, "varint over 64 bits"},
        {"\x08\x80", 2, "truncated varint"},
        {"\x0f", 1, "wire type 7"},
        {"\x0b\x08\x01", 3, "unterminated group"},
        {"\x0b\x14", 2, "mismatched group end"},
        {"\x0c", 1, "stray group end"},
        {"\x00", 1, "field number 0"},
        {"\x0a\x03\x0a\x0a\x41", 5, "inner length past its message"},
        {"\x0a\x02\x15\x00", 4, "truncated float"},
        {"\x0a\x02\x18\x09", 4, "piece type 9"},
        {"\x0a\x00\x12\x02\x18\x02\x1a\x00", 8, "empty piece"},
        {"\x0a\x03\x0a\x01\x41\x12\x02\x18\x02", 9, "no normalizer_spec"},
        {"\x0a\x03\x0a\x01\x41\x1a\x00", 7, "no trainer_spec"},
    };
    for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) {
        tu_write_file(path, crafted[i].bytes, crafted[i].n);
        expect_format_error(path, crafted[i].what);
    }

    /* Appended fields merge into the message: unknown ones of every wire type are skipped. */
    uint8_t *buf = malloc(size + 256);
    memcpy(buf, data, size);
    size_t n = size;
    n += put_varint(buf + n, 100 << 3 | 0);
    n += put_varint(buf + n, 12345);
    n += put_varint(buf + n, 101 << 3 | 1);
    memset(buf + n, 7, 8), n += 8;
    n += put_varint(buf + n, 102 << 3 | 5);
    memset(buf + n, 7, 4), n += 4;
    n += put_varint(buf + n, 103 << 3 | 2);
    n += put_varint(buf + n, 3);
    memcpy(buf + n, "abc", 3), n += 3;
    n += put_varint(buf + n, 104 << 3 | 3);
    n += put_varint(buf + n, 1 << 3 | 0);
    n += put_varint(buf + n, 1);
    n += put_varint(buf + n, 104 << 3 | 4);
    tu_write_file(path, buf, n);
    llmsq_tokenizer *t = load_spm(path);
    expect_ids(t, "Once upon a time", IDS(403, 407, 261, 378));
    llmsq_tokenizer_free(t);

    /* the same pieces read as a unigram model load (unigram encoding is tested in
     * test_spm_unigram.c); a 2-byte charsmap cannot hold its trie size: corrupt */
    memcpy(buf + size, "\x12\x02\x18\x01", 4); /* trainer_spec { model_type: UNIGRAM } */
    tu_write_file(path, buf, size + 4);
    ck_assert_msg(llmsq_tokenizer_load_spm(path, &t) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_tokenizer_free(t);
    memcpy(buf + size, "\x1a\x04\x12\x02xy", 6); /* normalizer_spec { precompiled_charsmap: "xy" } */
    tu_write_file(path, buf, size + 6);
    ck_assert_int_eq(llmsq_tokenizer_load_spm(path, &t), LLMSQ_STATUS_FORMAT);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "charsmap"));

    ck_assert_int_eq(llmsq_tokenizer_load_spm("/nonexistent/tokenizer.model", &t), LLMSQ_STATUS_IO);
    free(buf);
    free(junk);
    free(data);
    free(dir);
    free(model);
}
END_TEST

START_TEST(test_bad_llama2c_files)
{
    TU_SHARED_OR_SKIP(bin, "models/stories260K/llama2c/tok512.bin");
    char *dir = tu_tmpdir("tok-bad-l2c");
    char path[4096];
    snprintf(path, sizeof path, "%s/tok.bin", dir);
    size_t size;
    char *data = slurp(bin, &size);
    llmsq_tokenizer *t;
    for (size_t n = 0; n < size; n += 1 + n / 64) {
        tu_write_file(path, data, n);
        t = (llmsq_tokenizer *)1;
        ck_assert_int_eq(llmsq_tokenizer_load_llama2c(path, 512, &t), LLMSQ_STATUS_FORMAT);
        ck_assert_ptr_null(t);
        ck_assert_ptr_nonnull(strstr(llmsq_last_error(), path));
    }
    ck_assert_int_eq(llmsq_tokenizer_load_llama2c(bin, 511, &t), LLMSQ_STATUS_FORMAT);
    ck_assert_int_eq(llmsq_tokenizer_load_llama2c(bin, 513, &t), LLMSQ_STATUS_FORMAT);
    memcpy(data + 8, "\xff\xff\xff\x7f", 4); /* length of piece 0 */
    tu_write_file(path, data, size);
    ck_assert_int_eq(llmsq_tokenizer_load_llama2c(path, 512, &t), LLMSQ_STATUS_FORMAT);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "byte offset"));
    free(data);
    free(dir);
    free(bin);
}
END_TEST

/* ---- writing and llama2.c ------------------------------------------------------------- */

/* One check for the whole vocabulary: Check records every assertion, 32000x3 adds up. */
static void expect_same_vocab(const llmsq_tokenizer *a, const llmsq_tokenizer *b)
{
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(a), llmsq_tokenizer_vocab_size(b));
    int32_t bad = -1;
    for (int32_t i = 0; i < llmsq_tokenizer_vocab_size(a) && bad < 0; i++) {
        float sa = llmsq_tokenizer_score(a, i), sb = llmsq_tokenizer_score(b, i);
        if (strcmp(llmsq_tokenizer_piece(a, i), llmsq_tokenizer_piece(b, i)) != 0 ||
            memcmp(&sa, &sb, sizeof sa) != 0 || llmsq_tokenizer_type(a, i) != llmsq_tokenizer_type(b, i))
            bad = i;
    }
    ck_assert_msg(bad < 0, "piece %d differs: '%s' %g type %d vs '%s' %g type %d", bad,
                  llmsq_tokenizer_piece(a, bad), llmsq_tokenizer_score(a, bad), llmsq_tokenizer_type(a, bad),
                  llmsq_tokenizer_piece(b, bad), llmsq_tokenizer_score(b, bad), llmsq_tokenizer_type(b, bad));
}

static void write_copy(const llmsq_tokenizer *t, const char *path, const llmsq_spm_options *opt)
{
    int64_t n = llmsq_tokenizer_vocab_size(t);
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    for (int32_t i = 0; i < n; i++) {
        pieces[i] = llmsq_tokenizer_piece(t, i);
        scores[i] = llmsq_tokenizer_score(t, i);
        types[i] = (int32_t)llmsq_tokenizer_type(t, i);
    }
    llmsq_status st = llmsq_spm_write(path, n, pieces, scores, types, opt);
    ck_assert_msg(st == LLMSQ_OK, "%s", llmsq_last_error());
    free(pieces);
    free(scores);
    free(types);
}

START_TEST(test_spm_write_roundtrip)
{
    TU_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
    char *dir = tu_tmpdir("tok-write");
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/copy.model", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    llmsq_tokenizer *t = load_spm(model);
    const llmsq_spm_options *o = llmsq_tokenizer_options(t);
    write_copy(t, path, o);
    ck_assert(llmsq_is_file(path) && !llmsq_is_file(tmp));
    llmsq_tokenizer *c = load_spm(path);
    expect_same_vocab(t, c);
    ck_assert_mem_eq(llmsq_tokenizer_options(c), o, sizeof *o);
    static const char text[] = "  The  quick brown\tfox, 日本語 🦙 \xff jumps.  ";
    int32_t *a, *b;
    size_t na, nb;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, sizeof text - 1, true, &a, &na), LLMSQ_OK);
    ck_assert_int_eq(llmsq_tokenizer_encode(c, text, sizeof text - 1, true, &b, &nb), LLMSQ_OK);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na * sizeof *a);
    free(a);
    free(b);
    llmsq_tokenizer_free(c);

    /* Every option survives, the non-default ones included. */
    llmsq_spm_options o2 = *o;
    o2.add_dummy_prefix = false;
    o2.remove_extra_whitespaces = true;
    o2.escape_whitespaces = false;
    o2.byte_fallback = false;
    o2.bos_id = -1;
    o2.eos_id = 2;
    o2.pad_id = 3;
    write_copy(t, path, &o2);
    c = load_spm(path);
    ck_assert_mem_eq(llmsq_tokenizer_options(c), &o2, sizeof o2);
    ck_assert_int_eq(llmsq_tokenizer_bos(c), -1);
    expect_same_vocab(t, c);
    llmsq_tokenizer_free(c);

    const char *dup[] = {"<unk>", "x", "x"};
    ck_assert_int_eq(llmsq_spm_write(path, 3, dup, NULL, NULL, o), LLMSQ_STATUS_FORMAT);
    snprintf(tmp, sizeof tmp, "%s/no/such/dir.model", dir);
    ck_assert_int_eq(llmsq_spm_write(tmp, 3, syn_pieces, syn_scores, syn_types, NULL), LLMSQ_STATUS_IO);
    llmsq_tokenizer_free(t);
    free(dir);
    free(model);
}
END_TEST

START_TEST(test_llama2c_tokenizer)
{
    TU_SHARED_OR_SKIP(bin, "models/stories260K/llama2c/tok512.bin");
    TU_SHARED_OR_SKIP(model, "models/stories260K/llama2c/tok512.model");
    llmsq_tokenizer *a, *b = load_spm(model);
    llmsq_status st = llmsq_tokenizer_load_llama2c(bin, 512, &a);
    ck_assert_msg(st == LLMSQ_OK, "%s", llmsq_last_error());
    expect_same_vocab(a, b);
    ck_assert_str_eq(llmsq_tokenizer_piece(a, 1), "<s>");
    ck_assert(llmsq_tokenizer_options(a)->byte_fallback);

    /* tokenizer.bin does not record remove_extra_whitespaces (tok512.model leaves it at
     * its default, true); the paragraph has no runs of spaces, so both agree. */
    static const char text[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "sunshine. One day, she saw a big, red ball in the park.\n\"Can I play?\" she asked her mom. "
        "Her mom said, \"Yes, but be careful!\" Lily smiled and ran to the ball. Zo\xC3\xAB ate 42 "
        "caf\xC3\xA9 treats \xF0\x9F\x8D\xAA.\n";
    int32_t *ia, *ib;
    size_t na, nb;
    ck_assert_int_eq(llmsq_tokenizer_encode(a, text, sizeof text - 1, true, &ia, &na), LLMSQ_OK);
    ck_assert_int_eq(llmsq_tokenizer_encode(b, text, sizeof text - 1, true, &ib, &nb), LLMSQ_OK);
    ck_assert_uint_gt(na, 40);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(ia, ib, na * sizeof *ia);
    char *back;
    ck_assert_int_eq(llmsq_tokenizer_decode(a, ia, na, &back, NULL), LLMSQ_OK);
    ck_assert_str_eq(back, text);
    free(back);
    free(ia);
    free(ib);
    llmsq_tokenizer_free(a);
    llmsq_tokenizer_free(b);
    free(bin);
    free(model);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("spm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_stories260k_stream);
    tcase_add_test(tc, test_llamacpp_vectors);
    tcase_add_test(tc, test_wikitext_roundtrip);
    tcase_add_test(tc, test_fixture_decode);
    tcase_add_test(tc, test_synthetic_vocab);
    tcase_add_test(tc, test_bad_spm_files);
    tcase_add_test(tc, test_bad_llama2c_files);
    tcase_add_test(tc, test_spm_write_roundtrip);
    tcase_add_test(tc, test_llama2c_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(tokenizer_suite());
}
