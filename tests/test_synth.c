/* safetensors writer layout, config.json writer, and llmsq synth: exact bytes, read-back
 * through the project's own readers, determinism, and refusal to clobber user data. */
#include "testutil.h"
#include "../formats/safetensors_write.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *join(const char *dir, const char *name)
{
    char *p = llmsq_path_join(dir, name);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Tests clean up after themselves only on success: a failure leaves its files to look at. */
static void rm_tree(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp(const char *path, size_t *n)
{
    char *d = NULL;
    size_t len = 0;
    ck_assert_msg(llmsq_read_file(path, &d, &len) == LLMSQ_OK, "%s", llmsq_last_error());
    if (n) *n = len;
    return d;
}

static llmsq_tensor mk(const char *name, llmsq_dtype dt, int ndim, int64_t d0, int64_t d1,
                       void *data)
{
    llmsq_tensor t = {0};
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = ndim;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.data = data;
    t.nbytes = llmsq_dtype_nbytes(dt, ndim == 0 ? 1 : ndim == 1 ? d0 : d0 * d1);
    return t;
}

/* ---- safetensors writer ----------------------------------------------------------------- */

START_TEST(test_st_layout_roundtrip)
{
    char *dir = tu_tmpdir("st_layout");
    char *path = join(dir, "t.safetensors");
    float f32[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f}, scalar = 42.0f;
    uint16_t f16[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000};
    uint16_t bf16[3] = {0x3f80, 0xbf80, 0x7f7f};
    int32_t i32[4] = {-1, 0, 2147483647, -2147483647 - 1};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[7] = {0, 1, 2, 3, 250, 255, 7};
    uint8_t dummy = 0;
    llmsq_tensor ts[] = {
        mk("u8", LLMSQ_DTYPE_U8, 1, 7, 0, u8),        mk("f16", LLMSQ_DTYPE_F16, 1, 5, 0, f16),
        mk("scalar", LLMSQ_DTYPE_F32, 0, 0, 0, &scalar), mk("empty", LLMSQ_DTYPE_U8, 2, 0, 3, &dummy),
        mk("i8", LLMSQ_DTYPE_I8, 1, 3, 0, i8),        mk("bf16", LLMSQ_DTYPE_BF16, 2, 3, 1, bf16),
        mk("i32", LLMSQ_DTYPE_I32, 1, 4, 0, i32),     mk("f32", LLMSQ_DTYPE_F32, 2, 2, 3, f32),
    };
    const size_t n = sizeof ts / sizeof ts[0];
    const llmsq_tensor *ptrs[8];
    for (size_t i = 0; i < n; i++) ptrs[i] = &ts[i];
    const char *meta[] = {"note", "a \"q\"\n\\"};
    ck_assert_msg(llmsq_safetensors_write(path, ptrs, n, meta, 1) == LLMSQ_OK, "%s", llmsq_last_error());
    char *tmp = join(dir, "t.safetensors.tmp");
    ck_assert(!exists(tmp));

    /* The reference writer's layout: dtype rank descending then name; compact JSON. */
    const char *want_hdr =
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"q\\\"\\n\\\\\"},"
        "\"f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]},"
        "\"i32\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[28,44]},"
        "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[3,1],\"data_offsets\":[44,50]},"
        "\"f16\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[50,60]},"
        "\"i8\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[60,63]},"
        "\"empty\":{\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[63,63]},"
        "\"u8\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[63,70]}}";
    size_t size = 0;
    unsigned char *file = (unsigned char *)slurp(path, &size);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)file[i] << (8 * i);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(8 + hlen + 70, size);
    size_t wl = strlen(want_hdr);
    ck_assert_uint_ge(hlen, wl);
    ck_assert_uint_lt(hlen - wl, 8);
    ck_assert_int_eq(memcmp(file + 8, want_hdr, wl), 0);
    for (size_t i = wl; i < hlen; i++) ck_assert_int_eq(file[8 + i], ' ');
    unsigned char want_data[70], *p = want_data;
    memcpy(p, f32, 24), p += 24;
    memcpy(p, &scalar, 4), p += 4;
    memcpy(p, i32, 16), p += 16;
    memcpy(p, bf16, 6), p += 6;
    memcpy(p, f16, 10), p += 10;
    memcpy(p, i8, 3), p += 3;
    memcpy(p, u8, 7);
    ck_assert_int_eq(memcmp(file + 8 + hlen, want_data, 70), 0);
    free(file);

    llmsq_store *s = llmsq_store_create();
    ck_assert_msg(llmsq_safetensors_read(s, path) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_uint_eq(llmsq_store_count(s), n);
    for (size_t i = 0; i < n; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, ts[i].name);
        ck_assert_msg(t != NULL, "%s missing", ts[i].name);
        ck_assert_int_eq(t->dtype, ts[i].dtype);
        ck_assert_int_eq(t->ndim, ts[i].ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(t->shape[d], ts[i].shape[d]);
        ck_assert_uint_eq(t->nbytes, ts[i].nbytes);
        if (t->nbytes) ck_assert_int_eq(memcmp(t->data, ts[i].data, t->nbytes), 0);
    }
    llmsq_store_destroy(s);
    free(tmp);
    free(path);
    rm_tree(dir);
}
END_TEST

START_TEST(test_st_names_escaped)
{
    char *dir = tu_tmpdir("st_names");
    char *path = join(dir, "n.safetensors");
    float v[2] = {1, 2};
    const char *names[] = {"q\"uote", "back\\slash", "new\nline", "caf\xC3\xA9", "tab\t\x01"};
    llmsq_tensor ts[5];
    const llmsq_tensor *ptrs[5];
    for (int i = 0; i < 5; i++) {
        ts[i] = mk(names[i], LLMSQ_DTYPE_F32, 1, 2, 0, v);
        ptrs[i] = &ts[i];
    }
    ck_assert_msg(llmsq_safetensors_write(path, ptrs, 5, NULL, 0) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_store *s = llmsq_store_create();
    ck_assert_msg(llmsq_safetensors_read(s, path) == LLMSQ_OK, "%s", llmsq_last_error());
    for (int i = 0; i < 5; i++) ck_assert_msg(llmsq_store_get(s, names[i]) != NULL, "name %d", i);
    llmsq_store_destroy(s);
    free(path);
    rm_tree(dir);
}
END_TEST

START_TEST(test_st_errors)
{
    char *dir = tu_tmpdir("st_errors");
    char *path = join(dir, "e.safetensors");
    char *tmp = join(dir, "e.safetensors.tmp");
    float v[4] = {0};
    llmsq_tensor a = mk("w", LLMSQ_DTYPE_F32, 1, 4, 0, v), b = mk("w", LLMSQ_DTYPE_F16, 1, 2, 0, v);
    const llmsq_tensor *dup[2] = {&a, &b};
    ck_assert_int_eq(llmsq_safetensors_write(path, dup, 2, NULL, 0), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "duplicate"));

    llmsq_tensor q = mk("q", LLMSQ_DTYPE_Q8_0, 1, 32, 0, v);
    q.nbytes = 34;
    const llmsq_tensor *pq[1] = {&q};
    ck_assert_int_eq(llmsq_safetensors_write(path, pq, 1, NULL, 0), LLMSQ_STATUS_ARG);

    llmsq_tensor bad = mk("x", LLMSQ_DTYPE_F32, 1, 4, 0, v);
    bad.nbytes = 12;
    const llmsq_tensor *pb[1] = {&bad};
    ck_assert_int_eq(llmsq_safetensors_write(path, pb, 1, NULL, 0), LLMSQ_STATUS_ARG);

    llmsq_tensor md = mk("__metadata__", LLMSQ_DTYPE_F32, 1, 4, 0, v);
    const llmsq_tensor *pm[1] = {&md};
    ck_assert_int_eq(llmsq_safetensors_write(path, pm, 1, NULL, 0), LLMSQ_STATUS_ARG);

    const llmsq_tensor *pa[1] = {&a};
    const char *meta[] = {"format", "np"};
    ck_assert_int_eq(llmsq_safetensors_write(path, pa, 1, meta, 1), LLMSQ_STATUS_ARG);
    const char *bad_utf8[] = {"k", "\xC3("};
    ck_assert_int_eq(llmsq_safetensors_write(path, pa, 1, bad_utf8, 1), LLMSQ_STATUS_ARG);

    ck_assert(!exists(path));
    ck_assert(!exists(tmp));
    char *nodir = join(dir, "missing/e.safetensors");
    ck_assert_int_eq(llmsq_safetensors_write(nodir, pa, 1, NULL, 0), LLMSQ_STATUS_IO);

    /* An empty file is still a valid safetensors file. */
    ck_assert_int_eq(llmsq_safetensors_write(path, NULL, 0, NULL, 0), LLMSQ_OK);
    size_t size = 0;
    char *d = slurp(path, &size);
    ck_assert_uint_eq(size, 8 + 32);
    ck_assert_int_eq(memcmp(d + 8, "{\"__metadata__\":{\"format\":\"pt\"}}", 31), 0);
    free(d);
    free(nodir);
    free(tmp);
    free(path);
    rm_tree(dir);
}
END_TEST

/* ---- config.json ------------------------------------------------------------------------ */

START_TEST(test_config_roundtrip)
{
    char *dir = tu_tmpdir("cfg");
    char *path = join(dir, "config.json");
    llmsq_config c = {.arch = LLMSQ_ARCH_QWEN2, .vocab_size = 1000, .hidden_size = 128,
                      .intermediate_size = 300, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                      .head_dim = 32, .max_position = 2048, .rms_eps = 1e-6, .rope_theta = 1e6,
                      .rope_type = LLMSQ_ROPE_LLAMA3, .rope_factor = 8, .rope_low_freq_factor = 1,
                      .rope_high_freq_factor = 4, .rope_original_max_position = 1024,
                      .bos_id = -1, .eos_id = 7, .tie_embeddings = false, .qkv_bias = true};
    ck_assert_msg(llmsq_hf_config_write(path, &c, "bfloat16") == LLMSQ_OK, "%s", llmsq_last_error());
    char *text = slurp(path, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"rms_norm_eps\": 1e-"));
    ck_assert_ptr_null(strstr(text, "0000000")); /* shortest round-trip reals */
    ck_assert_ptr_nonnull(strstr(text, "\"torch_dtype\": \"bfloat16\""));
    ck_assert_ptr_nonnull(strstr(text, "\"tie_word_embeddings\": false"));
    ck_assert_ptr_nonnull(strstr(text, "\"Qwen2ForCausalLM\""));
    free(text);

    llmsq_config r;
    memset(&r, 0x5a, sizeof r);
    ck_assert_msg(llmsq_hf_config_read(path, &r) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(r.arch, c.arch);
    ck_assert_int_eq(r.vocab_size, c.vocab_size);
    ck_assert_int_eq(r.hidden_size, c.hidden_size);
    ck_assert_int_eq(r.intermediate_size, c.intermediate_size);
    ck_assert_int_eq(r.n_layers, c.n_layers);
    ck_assert_int_eq(r.n_heads, c.n_heads);
    ck_assert_int_eq(r.n_kv_heads, c.n_kv_heads);
    ck_assert_int_eq(r.head_dim, c.head_dim);
    ck_assert_int_eq(r.max_position, c.max_position);
    ck_assert(r.rms_eps == c.rms_eps && r.rope_theta == c.rope_theta);
    ck_assert_int_eq(r.rope_type, LLMSQ_ROPE_LLAMA3);
    ck_assert(r.rope_factor == 8 && r.rope_low_freq_factor == 1 && r.rope_high_freq_factor == 4);
    ck_assert_int_eq(r.rope_original_max_position, 1024);
    ck_assert_int_eq(r.bos_id, -1);
    ck_assert_int_eq(r.eos_id, 7);
    ck_assert(!r.tie_embeddings && r.qkv_bias && !r.o_bias && !r.mlp_bias && !r.qk_norm);

    /* The other architectures, each with its own switches. */
    llmsq_config others[3] = {c, c, c};
    others[0].arch = LLMSQ_ARCH_LLAMA, others[0].qkv_bias = others[0].o_bias = true;
    others[0].mlp_bias = true, others[0].rope_type = LLMSQ_ROPE_LINEAR, others[0].rope_factor = 2.5;
    others[1].arch = LLMSQ_ARCH_MISTRAL, others[1].qkv_bias = false, others[1].rope_type = LLMSQ_ROPE_DEFAULT;
    others[2].arch = LLMSQ_ARCH_QWEN3, others[2].qkv_bias = false, others[2].qk_norm = true;
    others[2].head_dim = 64; /* Qwen3's head_dim need not be hidden / heads */
    for (int i = 0; i < 3; i++) {
        others[i].arch_name[0] = '\0';
        ck_assert_msg(llmsq_hf_config_write(path, &others[i], "float16") == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert_msg(llmsq_hf_config_read(path, &r) == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert_int_eq(r.arch, others[i].arch);
        ck_assert_int_eq(r.head_dim, others[i].head_dim);
        ck_assert_int_eq(r.rope_type, others[i].rope_type);
        ck_assert(r.rope_type == LLMSQ_ROPE_DEFAULT || r.rope_factor == others[i].rope_factor);
        ck_assert(r.qkv_bias == others[i].qkv_bias && r.o_bias == others[i].o_bias);
        ck_assert(r.mlp_bias == others[i].mlp_bias && r.qk_norm == others[i].qk_norm);
    }

    ck_assert_int_eq(llmsq_hf_config_write(path, &c, "float64"), LLMSQ_STATUS_ARG);
    c.qkv_bias = false; /* qwen2 cannot drop its q/k/v bias */
    ck_assert_int_eq(llmsq_hf_config_write(path, &c, "float32"), LLMSQ_STATUS_ARG);
    char *tmp = join(dir, "config.json.tmp");
    ck_assert(!exists(tmp));
    free(tmp);
    free(path);
    rm_tree(dir);
}
END_TEST

/* ---- synth ------------------------------------------------------------------------------ */

static const char *const SYNTH_FILES[] = {"config.json", "generation_config.json",
                                          "tokenizer.model", "model.safetensors"};

static void assert_same_files(const char *a, const char *b, const char *name)
{
    char *pa = join(a, name), *pb = join(b, name);
    size_t na = 0, nb = 0;
    char *da = slurp(pa, &na), *db = slurp(pb, &nb);
    ck_assert_msg(na == nb && memcmp(da, db, na) == 0, "%s differs between %s and %s", name, a, b);
    free(da);
    free(db);
    free(pa);
    free(pb);
}

static llmsq_store *read_dir(const char *dir)
{
    llmsq_store *s = llmsq_store_create();
    ck_assert_msg(llmsq_safetensors_read_dir(s, dir) == LLMSQ_OK, "%s", llmsq_last_error());
    return s;
}

static void check_tiny_tensors(llmsq_store *s, llmsq_dtype dt)
{
    ck_assert_uint_eq(llmsq_store_count(s), 1 + 2 * 9 + 1);
    ck_assert_ptr_null(llmsq_store_get(s, "lm_head.weight")); /* tied */
    struct { const char *name; int64_t d0, d1; } want[] = {
        {"model.embed_tokens.weight", 512, 64},
        {"model.norm.weight", 64, -1},
        {"model.layers.1.self_attn.q_proj.weight", 64, 64},
        {"model.layers.1.self_attn.k_proj.weight", 32, 64},
        {"model.layers.1.self_attn.v_proj.weight", 32, 64},
        {"model.layers.1.self_attn.o_proj.weight", 64, 64},
        {"model.layers.0.mlp.gate_proj.weight", 172, 64},
        {"model.layers.0.mlp.up_proj.weight", 172, 64},
        {"model.layers.0.mlp.down_proj.weight", 64, 172},
        {"model.layers.0.input_layernorm.weight", 64, -1},
        {"model.layers.1.post_attention_layernorm.weight", 64, -1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const llmsq_tensor *t = llmsq_store_get(s, want[i].name);
        ck_assert_msg(t != NULL, "%s missing", want[i].name);
        ck_assert_int_eq(t->dtype, dt);
        ck_assert_int_eq(t->ndim, want[i].d1 < 0 ? 1 : 2);
        ck_assert_int_eq(t->shape[0], want[i].d0);
        if (want[i].d1 >= 0) ck_assert_int_eq(t->shape[1], want[i].d1);
    }
}

START_TEST(test_synth_tiny)
{
    char *root = tu_tmpdir("synth_tiny");
    char *a = join(root, "a"), *b = join(root, "b"), *c = join(root, "c"), *bf = join(root, "bf");
    ck_assert_msg(llmsq_synth_write("tiny", a, LLMSQ_DTYPE_F32, 7) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_synth_write("tiny", b, LLMSQ_DTYPE_F32, 7) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_synth_write("tiny", c, LLMSQ_DTYPE_F32, 8) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_synth_write("tiny", bf, LLMSQ_DTYPE_BF16, 7) == LLMSQ_OK, "%s", llmsq_last_error());
    for (size_t i = 0; i < 4; i++) assert_same_files(a, b, SYNTH_FILES[i]);
    char *atmp = join(root, "a.tmp");
    ck_assert(!exists(atmp));
    free(atmp);

    char *cfgp = join(a, "config.json");
    llmsq_config cfg;
    ck_assert_msg(llmsq_hf_config_read(cfgp, &cfg) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(cfg.arch, LLMSQ_ARCH_LLAMA);
    ck_assert_int_eq(cfg.vocab_size, 512);
    ck_assert_int_eq(cfg.hidden_size, 64);
    ck_assert_int_eq(cfg.intermediate_size, 172);
    ck_assert_int_eq(cfg.n_layers, 2);
    ck_assert_int_eq(cfg.n_heads, 8);
    ck_assert_int_eq(cfg.n_kv_heads, 4);
    ck_assert_int_eq(cfg.head_dim, 8);
    ck_assert_int_eq(cfg.max_position, 512);
    ck_assert(cfg.tie_embeddings && !cfg.qkv_bias && cfg.rope_type == LLMSQ_ROPE_DEFAULT);
    ck_assert(cfg.rms_eps == 1e-5 && cfg.rope_theta == 10000.0);
    ck_assert_int_eq(cfg.bos_id, 1);
    ck_assert_int_eq(cfg.eos_id, 2);
    free(cfgp);

    llmsq_store *sa = read_dir(a), *sc = read_dir(c), *sb = read_dir(bf);
    check_tiny_tensors(sa, LLMSQ_DTYPE_F32);
    check_tiny_tensors(sb, LLMSQ_DTYPE_BF16);

    const llmsq_tensor *norm = llmsq_store_get(sa, "model.layers.0.input_layernorm.weight");
    for (int i = 0; i < 64; i++) ck_assert_float_eq(((const float *)norm->data)[i], 1.0f);
    const llmsq_tensor *emb = llmsq_store_get(sa, "model.embed_tokens.weight");
    const float *e = emb->data;
    const int64_t ne = 512 * 64;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < ne; i++) {
        ck_assert(isfinite(e[i]));
        sum += e[i];
        sq += (double)e[i] * e[i];
    }
    double mean = sum / ne, sd = sqrt(sq / ne - mean * mean);
    ck_assert_msg(fabs(mean) < 0.001 && fabs(sd - 0.02) < 0.001, "mean %g std %g", mean, sd);
    /* Every tensor has its own stream, and the seed changes every stream. */
    const float *q = llmsq_store_get(sa, "model.layers.0.self_attn.q_proj.weight")->data;
    const float *q1 = llmsq_store_get(sa, "model.layers.1.self_attn.q_proj.weight")->data;
    const float *qc = llmsq_store_get(sc, "model.layers.0.self_attn.q_proj.weight")->data;
    ck_assert(memcmp(q, q1, 64 * sizeof *q) != 0 && memcmp(q, qc, 64 * sizeof *q) != 0);
    /* BF16 is the F32 stream rounded, element for element. */
    for (size_t i = 0; i < llmsq_store_count(sa); i++) {
        const llmsq_tensor *tf = llmsq_store_at(sa, i);
        const llmsq_tensor *tb = llmsq_store_get(sb, tf->name);
        ck_assert_ptr_nonnull(tb);
        const float *vf = tf->data;
        const uint16_t *vb = tb->data;
        for (int64_t k = 0; k < llmsq_tensor_numel(tf); k++)
            ck_assert_uint_eq(vb[k], llmsq_f32_to_bf16(vf[k]));
    }
    char *bcfg = join(bf, "config.json");
    char *text = slurp(bcfg, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"torch_dtype\": \"bfloat16\""));
    free(text);
    free(bcfg);
    llmsq_store_destroy(sa);
    llmsq_store_destroy(sb);
    llmsq_store_destroy(sc);
    free(a);
    free(b);
    free(c);
    free(bf);
    rm_tree(root);
}
END_TEST

START_TEST(test_synth_tokenizer)
{
    char *root = tu_tmpdir("synth_tok");
    char *a = join(root, "a");
    ck_assert_msg(llmsq_synth_write("tiny", a, LLMSQ_DTYPE_F32, 1) == LLMSQ_OK, "%s", llmsq_last_error());
    char *tp = join(a, "tokenizer.model");
    llmsq_tokenizer *tok = NULL;
    ck_assert_msg(llmsq_tokenizer_load_spm(tp, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(tok), 512);
    ck_assert_int_eq(llmsq_tokenizer_bos(tok), 1);
    ck_assert_int_eq(llmsq_tokenizer_eos(tok), 2);
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 0), "<unk>");
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 3), "<0x00>");
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 258), "<0xFF>");
    ck_assert_int_eq(llmsq_tokenizer_type(tok, 3), LLMSQ_TOKEN_BYTE);
    ck_assert_str_eq(llmsq_tokenizer_piece(tok, 259), "\xE2\x96\x81");
    const char *text = "hello world, Zebra 42!";
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_msg(llmsq_tokenizer_encode(tok, text, strlen(text), true, &ids, &n) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    ck_assert_uint_gt(n, 2);
    ck_assert_int_eq(ids[0], 1);
    char *back = NULL;
    ck_assert(llmsq_tokenizer_decode(tok, ids, n, &back, NULL) == LLMSQ_OK);
    ck_assert_str_eq(back, text);
    free(back);
    free(ids);
    llmsq_tokenizer_free(tok);
    free(tp);
    free(a);
    rm_tree(root);
}
END_TEST

START_TEST(test_synth_sharded)
{
    char *root = tu_tmpdir("synth_shard");
    char *a = join(root, "a"), *s = join(root, "s");
    ck_assert(llmsq_synth_write("tiny", a, LLMSQ_DTYPE_F32, 5) == LLMSQ_OK);
    ck_assert_msg(llmsq_synth_write_sharded("tiny", s, LLMSQ_DTYPE_F32, 5, 100000) == LLMSQ_OK, "%s",
                  llmsq_last_error());
    char *single = join(s, "model.safetensors"), *idx = join(s, "model.safetensors.index.json");
    ck_assert(!exists(single));
    json_error_t jerr;
    json_t *j = json_load_file(idx, 0, &jerr);
    ck_assert_msg(j != NULL, "%s", jerr.text);
    json_t *map = json_object_get(j, "weight_map");
    ck_assert_uint_eq(json_object_size(map), 20);
    const char *last = json_string_value(json_object_get(map, "model.norm.weight"));
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(strncmp(last, "model-0000", 10), 0);
    ck_assert_ptr_nonnull(strstr(last, "-of-0000"));
    /* The embedding alone (131072 bytes) exceeds the limit, so it fills the first shard. */
    const char *first = json_string_value(json_object_get(map, "model.embed_tokens.weight"));
    ck_assert_ptr_nonnull(first);
    ck_assert_int_eq(strncmp(first, "model-00001-of-", 15), 0);
    ck_assert_str_ne(first, json_string_value(json_object_get(map, "model.layers.0.self_attn.q_proj.weight")));
    llmsq_store *sa = read_dir(a), *ss = read_dir(s);
    uint64_t total = 0;
    ck_assert_uint_eq(llmsq_store_count(ss), llmsq_store_count(sa));
    for (size_t i = 0; i < llmsq_store_count(sa); i++) {
        const llmsq_tensor *x = llmsq_store_at(sa, i), *y = llmsq_store_get(ss, x->name);
        ck_assert_msg(y != NULL, "%s missing from shards", x->name);
        ck_assert_uint_eq(x->nbytes, y->nbytes);
        ck_assert_int_eq(memcmp(x->data, y->data, x->nbytes), 0);
        total += x->nbytes;
    }
    ck_assert_uint_eq(json_integer_value(json_object_get(json_object_get(j, "metadata"), "total_size")),
                      total);
    json_decref(j);
    llmsq_store_destroy(sa);
    llmsq_store_destroy(ss);
    free(single);
    free(idx);
    free(a);
    free(s);
    rm_tree(root);
}
END_TEST

START_TEST(test_synth_out_dir)
{
    char *root = tu_tmpdir("synth_dir");
    char *full = join(root, "full"), *junk = join(root, "full/keep.txt");
    char *fulltmp = join(root, "full.tmp");
    ck_assert_int_eq(mkdir(full, 0755), 0);
    tu_write_file(junk, "x", 1);
    ck_assert_int_eq(llmsq_synth_write("tiny", full, LLMSQ_DTYPE_F32, 0), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "not empty"));
    ck_assert(exists(junk));
    ck_assert(!exists(fulltmp));

    char *empty = join(root, "empty/"), *emptycfg = join(root, "empty/config.json");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    ck_assert_msg(llmsq_synth_write("tiny", empty, LLMSQ_DTYPE_F32, 0) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert(exists(emptycfg));

    /* A stale build directory of ours is replaced; one holding anything else is kept. */
    char *g = join(root, "g"), *gtmp = join(root, "g.tmp"), *gstale = join(root, "g.tmp/config.json");
    ck_assert_int_eq(mkdir(gtmp, 0755), 0);
    tu_write_file(gstale, "{", 1);
    ck_assert_msg(llmsq_synth_write("tiny", g, LLMSQ_DTYPE_F32, 0) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert(!exists(gtmp));
    char *h = join(root, "h"), *htmp = join(root, "h.tmp"), *hmine = join(root, "h.tmp/mine.txt");
    ck_assert_int_eq(mkdir(htmp, 0755), 0);
    tu_write_file(hmine, "x", 1);
    ck_assert_int_eq(llmsq_synth_write("tiny", h, LLMSQ_DTYPE_F32, 0), LLMSQ_STATUS_ARG);
    ck_assert(exists(hmine));
    ck_assert(!exists(h));

    char *u = join(root, "u");
    ck_assert_int_eq(llmsq_synth_write("no-such-model", u, LLMSQ_DTYPE_F32, 0), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "smollm2-135m"));
    ck_assert_int_eq(llmsq_synth_write("tiny", u, LLMSQ_DTYPE_F16, 0), LLMSQ_STATUS_ARG);
    ck_assert(!exists(u));

    const char *const *names = llmsq_synth_shapes();
    bool seen[3] = {false, false, false};
    for (; *names; names++) {
        seen[0] |= strcmp(*names, "tiny") == 0;
        seen[1] |= strcmp(*names, "smollm2-135m") == 0;
        seen[2] |= strcmp(*names, "llama-3.2-1b") == 0;
    }
    ck_assert(seen[0] && seen[1] && seen[2]);
    free(u);
    free(h);
    free(htmp);
    free(hmine);
    free(g);
    free(gtmp);
    free(gstale);
    free(empty);
    free(emptycfg);
    free(fulltmp);
    free(full);
    free(junk);
    rm_tree(root);
}
END_TEST

START_TEST(test_synth_model_runs)
{
    /* The written directory is a model llmsq itself opens and runs, in both dtypes. */
    char *root = tu_tmpdir("synth_run");
    const llmsq_dtype dts[2] = {LLMSQ_DTYPE_F32, LLMSQ_DTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        char *d = join(root, k ? "bf16" : "f32");
        ck_assert_msg(llmsq_synth_write("tiny", d, dts[k], 11) == LLMSQ_OK, "%s", llmsq_last_error());
        llmsq_model *m = NULL;
        ck_assert_msg(llmsq_model_open(d, &m) == LLMSQ_OK, "%s", llmsq_last_error());
        const llmsq_config *cfg = llmsq_model_config(m);
        ck_assert_int_eq(llmsq_config_param_count(cfg), 512 * 64 + 2 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64 + 2 * 64) + 64);
        ck_assert_ptr_nonnull(llmsq_model_tokenizer(m));
        llmsq_kv_cache *kv = NULL;
        ck_assert(llmsq_kv_cache_create(cfg, 8, &kv) == LLMSQ_OK);
        const int32_t toks[4] = {1, 300, 301, 511};
        float *logits = malloc(4 * 512 * sizeof *logits);
        ck_assert_msg(llmsq_model_forward(m, kv, toks, 4, logits, NULL) == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert_int_eq(llmsq_f32_first_nonfinite(logits, 4 * 512), -1);
        free(logits);
        llmsq_kv_cache_free(kv);
        llmsq_model_free(m);
        free(d);
    }
    rm_tree(root);
}
END_TEST

START_TEST(test_synth_cli)
{
    char *root = tu_tmpdir("synth_cli");
    char *out = NULL, *err = NULL, args[4096];
    ck_assert_int_eq(tu_run_cli("synth --help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "llama-3.2-1b"));
    free(out), free(err);
    ck_assert_int_eq(tu_run_cli("synth", &out, &err), 2);
    free(out), free(err);
    snprintf(args, sizeof args, "synth --shape nope --out '%s/x'", root);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 2);
    free(out), free(err);
    snprintf(args, sizeof args, "synth --shape tiny --out '%s/x' --dtype f16", root);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 2);
    free(out), free(err);
    snprintf(args, sizeof args, "synth --shape tiny --out '%s/x' --seed -3", root);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 2);
    free(out), free(err);
    snprintf(args, sizeof args, "synth --shape tiny --out '%s/x' --dtype bf16 --seed 3", root);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 0);
    free(out), free(err);
    ck_assert_int_eq(tu_run_cli(args, &out, &err), 1); /* now non-empty */
    ck_assert_msg(strncmp(err, "llmsq synth: error: ", 20) == 0, "stderr: %s", err);
    free(out), free(err);
    rm_tree(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_st_layout_roundtrip);
    tcase_add_test(tc, test_st_names_escaped);
    tcase_add_test(tc, test_st_errors);
    tcase_add_test(tc, test_config_roundtrip);
    tcase_add_test(tc, test_synth_tiny);
    tcase_add_test(tc, test_synth_tokenizer);
    tcase_add_test(tc, test_synth_sharded);
    tcase_add_test(tc, test_synth_out_dir);
    tcase_add_test(tc, test_synth_model_runs);
    tcase_add_test(tc, test_synth_cli);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
