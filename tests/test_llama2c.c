/* llama2.c reader: stories260K against the HF checkpoint, a synthetic unshared-classifier
 * file with two layers, tokenizer discovery, and malformed headers and sizes. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define L2C_REL "models/stories260K/llama2c/stories260K.bin"
#define TOKBIN_REL "models/stories260K/llama2c/tok512.bin"
#define HF_REL "models/stories260K/hf/model.safetensors"

static uint8_t *slurp(const char *path, size_t *n)
{
    char *data = NULL;
    ck_assert_msg(llmsq_read_file(path, &data, n) == LLMSQ_OK, "%s", llmsq_last_error());
    return (uint8_t *)data;
}

static void put32(uint8_t *p, int32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)((uint32_t)v >> (8 * i));
}

/* Writes bytes to dir/name and reads them; failures must name the file and leave no tokenizer. */
static llmsq_status read_bytes(const char *dir, const char *name, const void *b, size_t n, llmsq_store **keep,
                               llmsq_config *cfg, llmsq_tokenizer **tok_out)
{
    char *path = llmsq_path_join(dir, name);
    tu_write_file(path, b, n);
    llmsq_store *s = llmsq_store_create();
    llmsq_tokenizer *tok = (llmsq_tokenizer *)1;
    llmsq_config c;
    llmsq_status st = llmsq_llama2c_read_model(path, s, cfg ? cfg : &c, &tok);
    if (st != LLMSQ_OK) {
        ck_assert_ptr_null(tok);
        ck_assert_msg(strstr(llmsq_last_error(), path) != NULL, "message lacks the path: %s", llmsq_last_error());
    }
    if (tok_out) *tok_out = tok;
    else llmsq_tokenizer_free(tok);
    if (keep) *keep = s;
    else llmsq_store_destroy(s);
    free(path);
    return st;
}

#define EXPECT_FAIL(dir, b, n, code, needle)                                                        \
    do {                                                                                            \
        llmsq_status st_ = read_bytes(dir, "m.bin", b, n, NULL, NULL, NULL);                        \
        ck_assert_msg(st_ == (code), "expected %s, got %s (%s)", llmsq_status_str(code),            \
                      llmsq_status_str(st_), llmsq_last_error());                                   \
        ck_assert_msg(strstr(llmsq_last_error(), needle) != NULL, "'%s' not in: %s", needle,        \
                      llmsq_last_error());                                                          \
    } while (0)

START_TEST(test_stories_config_and_tokenizer)
{
    TU_SHARED_OR_SKIP(path, L2C_REL);
    llmsq_store *s = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok = NULL;
    ck_assert_msg(llmsq_llama2c_read_model(path, s, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(c.arch, LLMSQ_ARCH_LLAMA);
    ck_assert_str_eq(c.arch_name, "LlamaForCausalLM");
    ck_assert_int_eq(c.hidden_size, 64);
    ck_assert_int_eq(c.intermediate_size, 172);
    ck_assert_int_eq(c.n_layers, 5);
    ck_assert_int_eq(c.n_heads, 8);
    ck_assert_int_eq(c.n_kv_heads, 4);
    ck_assert_int_eq(c.head_dim, 8);
    ck_assert_int_eq(c.vocab_size, 512);
    ck_assert_int_eq(c.max_position, 512);
    ck_assert_double_eq(c.rms_eps, 1e-5);
    ck_assert_double_eq(c.rope_theta, 10000.0);
    ck_assert_int_eq(c.bos_id, 1);
    ck_assert_int_eq(c.eos_id, 2);
    ck_assert(c.tie_embeddings);
    ck_assert_uint_eq(llmsq_store_count(s), 47);
    ck_assert_ptr_null(llmsq_store_get(s, "lm_head.weight"));
    ck_assert(!llmsq_store_get(s, "model.layers.2.mlp.up_proj.weight")->owned);
    ck_assert(llmsq_store_get(s, "model.layers.2.self_attn.k_proj.weight")->owned);
    /* tok512.model sits beside the file (there is no tokenizer.model) */
    ck_assert_ptr_nonnull(tok);
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(tok), 512);
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 2), "</s>");
    llmsq_tokenizer_free(tok);
    llmsq_store_destroy(s);
    free(path);
}
END_TEST

START_TEST(test_stories_equals_hf)
{
    TU_SHARED_OR_SKIP(path, L2C_REL);
    TU_SHARED_OR_SKIP(hf, HF_REL);
    llmsq_store *l = llmsq_store_create(), *h = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok = NULL;
    ck_assert_msg(llmsq_llama2c_read_model(path, l, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_safetensors_read(h, hf) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_uint_eq(llmsq_store_count(h), llmsq_store_count(l));
    for (size_t i = 0; i < llmsq_store_count(h); i++) {
        const llmsq_tensor *a = llmsq_store_at(h, i), *b = llmsq_store_get(l, a->name);
        ck_assert_msg(b != NULL, "%s missing from the llama2.c store", a->name);
        ck_assert_int_eq(a->dtype, b->dtype);
        ck_assert_int_eq(a->ndim, b->ndim);
        for (int d = 0; d < a->ndim; d++) ck_assert_int_eq(a->shape[d], b->shape[d]);
        ck_assert_uint_eq(a->nbytes, b->nbytes);
        ck_assert_msg(tu_max_abs_diff(a->data, b->data, a->nbytes / 4) == 0.0, "%s differs", a->name);
        ck_assert_msg(memcmp(a->data, b->data, a->nbytes) == 0, "%s not bit-identical", a->name);
    }
    llmsq_tokenizer_free(tok);
    llmsq_store_destroy(l);
    llmsq_store_destroy(h);
    free(path);
    free(hf);
}
END_TEST

/* dim 16, hidden 12, 2 layers, 2 heads of 8 (with hd 4 the permutation is its own
 * inverse), 1 kv head, vocab 5 unshared (wcls stored), seq_len 3; float k of the file
 * holds the value k. */
enum { D = 16, HID = 12, NL = 2, NH = 2, NKV = 1, V = 5, SEQ = 3, HS = D / NH, KVD = NKV * HS };

static float *tiny(size_t *nbytes, int32_t vocab_hdr, bool with_wcls)
{
    size_t nf = (size_t)V * D + NL * D + NL * D * D + 2 * NL * KVD * D + NL * D * D + NL * D + 3 * NL * HID * D + D +
                SEQ * HS + (with_wcls ? V * D : 0);
    *nbytes = 28 + 4 * nf;
    uint8_t *b = malloc(*nbytes);
    int32_t hdr[7] = {D, HID, NL, NH, NKV, vocab_hdr, SEQ};
    for (int i = 0; i < 7; i++) put32(b + 4 * i, hdr[i]);
    for (size_t k = 0; k < nf; k++) {
        float f = (float)k;
        memcpy(b + 28 + 4 * k, &f, 4);
    }
    return (float *)b;
}

START_TEST(test_tiny_unshared)
{
    char *dir = tu_tmpdir("l2c-tiny");
    size_t n;
    float *b = tiny(&n, -V, true);
    llmsq_store *s;
    llmsq_config c;
    llmsq_tokenizer *tok;
    ck_assert_msg(read_bytes(dir, "m.bin", b, n, &s, &c, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_ptr_null(tok); /* nothing beside it */
    ck_assert(!c.tie_embeddings);
    ck_assert_int_eq(c.vocab_size, V);
    ck_assert_int_eq(c.n_kv_heads, NKV);
    ck_assert_uint_eq(llmsq_store_count(s), 3 + 9 * NL);

    /* Offsets (in floats) of each stacked tensor, as FORMATS.md 6.1 orders them. */
    size_t o_emb = 0, o_att = o_emb + V * D, o_wq = o_att + NL * D, o_wk = o_wq + NL * D * D,
           o_wv = o_wk + NL * KVD * D, o_wo = o_wv + NL * KVD * D, o_ffn = o_wo + NL * D * D,
           o_w1 = o_ffn + NL * D, o_w2 = o_w1 + NL * HID * D, o_w3 = o_w2 + NL * D * HID, o_fin = o_w3 + NL * HID * D,
           o_cls = o_fin + D + SEQ * HS;
    struct { const char *name; size_t off; int64_t r, c; } want[] = {
        {"model.embed_tokens.weight", o_emb, V, D},
        {"model.layers.1.input_layernorm.weight", o_att + D, D, 0},
        {"model.layers.1.self_attn.v_proj.weight", o_wv + KVD * D, KVD, D},
        {"model.layers.1.self_attn.o_proj.weight", o_wo + D * D, D, D},
        {"model.layers.1.post_attention_layernorm.weight", o_ffn + D, D, 0},
        {"model.layers.1.mlp.gate_proj.weight", o_w1 + HID * D, HID, D},
        {"model.layers.1.mlp.down_proj.weight", o_w2 + D * HID, D, HID},
        {"model.layers.1.mlp.up_proj.weight", o_w3 + HID * D, HID, D},
        {"model.layers.0.mlp.up_proj.weight", o_w3, HID, D},
        {"model.norm.weight", o_fin, D, 0},
        {"lm_head.weight", o_cls, V, D},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, want[i].name);
        ck_assert_msg(t != NULL, "%s", want[i].name);
        ck_assert(!t->owned);
        ck_assert_int_eq(t->ndim, want[i].c ? 2 : 1);
        ck_assert_int_eq(t->shape[0], want[i].r);
        if (want[i].c) ck_assert_int_eq(t->shape[1], want[i].c);
        ck_assert_uint_eq(t->file_offset, 28 + 4 * want[i].off);
        ck_assert_float_eq(((const float *)t->data)[0], (float)want[i].off);
    }
    /* q/k rows: HF row h*HS + j*HS/2 + i is file row h*HS + 2i + j of that layer. */
    for (int layer = 0; layer < NL; layer++) {
        struct { const char *p; size_t off; int heads; } qk[] = {
            {"q_proj", o_wq + (size_t)layer * D * D, NH}, {"k_proj", o_wk + (size_t)layer * KVD * D, NKV}};
        for (int w = 0; w < 2; w++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", layer, qk[w].p);
            const llmsq_tensor *t = llmsq_store_get(s, name);
            ck_assert(t->owned);
            ck_assert_int_eq(t->shape[0], qk[w].heads * HS);
            const float *x = t->data;
            for (int h = 0; h < qk[w].heads; h++)
                for (int i = 0; i < HS / 2; i++)
                    for (int j = 0; j < 2; j++)
                        for (int col = 0; col < D; col++)
                            ck_assert_float_eq(x[(h * HS + j * HS / 2 + i) * D + col],
                                               (float)(qk[w].off + (size_t)(h * HS + 2 * i + j) * D + col));
        }
    }
    llmsq_store_destroy(s);

    /* The same bytes with a positive (shared) vocab carry V*D floats too many. */
    put32((uint8_t *)b + 20, V);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "the file has");
    free(b);
    free(dir);
}
END_TEST

START_TEST(test_tokenizer_bin_beside)
{
    TU_SHARED_OR_SKIP(path, L2C_REL);
    TU_SHARED_OR_SKIP(tokbin, TOKBIN_REL);
    char *dir = tu_tmpdir("l2c-tok");
    size_t n, tn;
    uint8_t *b = slurp(path, &n), *t = slurp(tokbin, &tn);
    char *tp = llmsq_path_join(dir, "tok512.bin");
    tu_write_file(tp, t, tn);
    llmsq_tokenizer *tok;
    ck_assert_msg(read_bytes(dir, "stories260K.bin", b, n, NULL, NULL, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_ptr_nonnull(tok);
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(tok), 512);
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 1), "<s>");
    llmsq_tokenizer_free(tok);

    /* A tokenizer that is found but corrupt is an error, not a silent NULL. */
    tu_write_file(tp, t, 10);
    ck_assert_int_ne(read_bytes(dir, "stories260K.bin", b, n, NULL, NULL, NULL), LLMSQ_OK);
    free(tp);
    free(b);
    free(t);
    free(dir);
    free(path);
    free(tokbin);
}
END_TEST

START_TEST(test_bad_files)
{
    TU_SHARED_OR_SKIP(path, L2C_REL);
    char *dir = tu_tmpdir("l2c-bad");
    size_t n;
    uint8_t *b = slurp(path, &n), *orig = malloc(n), *big = malloc(n + 8);
    memcpy(orig, b, n);
    ck_assert_int_eq(read_bytes(dir, "m.bin", b, n, NULL, NULL, NULL), LLMSQ_OK);

    const size_t cuts[] = {0, 1, 4, 27, 28, 29, 100, 4096, 500000, 1056536, 1056539};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        llmsq_status st = read_bytes(dir, "m.bin", b, cuts[i], NULL, NULL, NULL);
        ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "cut %zu: %s", cuts[i], llmsq_last_error());
    }
    EXPECT_FAIL(dir, b, 1056536, LLMSQ_STATUS_FORMAT, "implies 1056540 bytes, the file has 1056536");
    memcpy(big, b, n);
    memset(big + n, 0, 8);
    EXPECT_FAIL(dir, big, n + 1, LLMSQ_STATUS_FORMAT, "the file has 1056541");
    EXPECT_FAIL(dir, big, n + 8, LLMSQ_STATUS_FORMAT, "size mismatch");

    const char *fields[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int f = 0; f < 7; f++) {
        const int32_t vals[] = {0, -1, INT32_MIN};
        for (int v = 0; v < 3; v++) {
            if (f == 5 && v == 1) continue; /* a negative vocab is the unshared flag: a size mismatch */
            memcpy(b, orig, 28);
            put32(b + 4 * f, vals[v]);
            EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, fields[f]);
        }
        memcpy(b, orig, 28);
        put32(b + 4 * f, INT32_MAX); /* huge: no overflow, just a size mismatch or a divisibility error */
        ck_assert_int_eq(read_bytes(dir, "m.bin", b, n, NULL, NULL, NULL), LLMSQ_STATUS_FORMAT);
    }
    memcpy(b, orig, 28);
    put32(b, 1 << 30);
    put32(b + 4, INT32_MAX);
    put32(b + 8, INT32_MAX);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "2^64");
    memcpy(b, orig, 28);
    put32(b + 20, -512);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "vocab_size=-512");
    memcpy(b, orig, 28);
    put32(b + 12, 3); /* n_heads does not divide 64 */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "does not divide");
    memcpy(b, orig, 28);
    put32(b + 16, 3); /* n_kv_heads does not divide 8 */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "n_kv_heads 3");
    memcpy(b, orig, 28);
    put32(b + 12, 64); /* head size 1: odd */
    put32(b + 16, 64);
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_FORMAT, "even");
    memcpy(b, orig, 28);
    memcpy(b, "24ka", 4); /* v1/v2 magic 0x616b3432 */
    EXPECT_FAIL(dir, b, n, LLMSQ_STATUS_UNSUPPORTED, "ak42");

    llmsq_store *s = llmsq_store_create();
    llmsq_config c;
    llmsq_tokenizer *tok;
    ck_assert_int_eq(llmsq_llama2c_read_model("/nonexistent/m.bin", s, &c, &tok), LLMSQ_STATUS_IO);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "/nonexistent/m.bin"));
    llmsq_store_destroy(s);
    free(big);
    free(orig);
    free(b);
    free(dir);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("llama2c");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stories_config_and_tokenizer);
    tcase_add_test(tc, test_stories_equals_hf);
    tcase_add_test(tc, test_tokenizer_bin_beside);
    suite_add_tcase(s, tc);
    tc = tcase_create("synthetic");
    tcase_add_test(tc, test_tiny_unshared);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_files);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
