/* AutoAWQ GEMM and compressed-tensors int-quantized (W8A8) checkpoints: the AWQ packing checked
 * by an independent scalar decoder written from FORMATS.md 3.3 / 3.4 and against hand-worked
 * words, write -> import round trips of a synthetic model compared field by field, the
 * config.json each writer emits, and the errors of both directions. */
#include "testutil.h"
#include "../formats/qpack.h" /* encoder side only; every decode here is the test's own */

#include <jansson.h>
#include <math.h>
#include <string.h>

/* ---- the independent decoder (FORMATS.md 3.3, 3.4) ------------------------------------------- */

static uint32_t w32(const uint8_t *p, int64_t k)
{
    p += 4 * k;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f16(const uint8_t *p, int64_t k)
{
    unsigned h = p[2 * k] | p[2 * k + 1] << 8, e = (h >> 10) & 31, m = h & 1023;
    ck_assert_uint_ne(e, 31);
    float v = e ? ldexpf((float)(1024 + m), (int)e - 25) : ldexpf((float)m, -24);
    return (h & 0x8000) ? -v : v;
}

/* Output column 8c + j of a row of AWQ words lives in slot AWQ_REVERSE[j] of word c. */
static const int AWQ_REVERSE[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static int awq_nibble(const uint8_t *row, int64_t o)
{
    return (int)((w32(row, o / 8) >> (4 * AWQ_REVERSE[o % 8])) & 15);
}

/* W[o, i] = scales[i/G, o] * (q[i, o] - z[i/G, o]); qweight [in, out/8], qzeros [in/G, out/8],
 * scales [in/G, out] F16. */
static void awq_decode(int64_t out, int64_t in, int64_t G, const uint8_t *qw, const uint8_t *qz, const uint8_t *sc,
                       float *W)
{
    const int64_t words = out / 8;
    for (int64_t i = 0; i < in; i++)
        for (int64_t o = 0; o < out; o++) {
            int64_t g = i / G;
            int q = awq_nibble(qw + 4 * i * words, o), z = awq_nibble(qz + 4 * g * words, o);
            W[o * in + i] = f16(sc, g * out + o) * (float)(q - z);
        }
}

/* ---- canonical linears ------------------------------------------------------------------------ */

static llmsq_qlinear *rand_awq(uint64_t *rng, int64_t out, int64_t in, int64_t G)
{
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(out, in, 4, G, LLMSQ_QGRID_AWQ, false, &q), LLMSQ_OK);
    for (int64_t k = 0; k < out * in; k++) q->codes[k] = (uint8_t)(tu_lcg_next(rng) % 16);
    for (int64_t k = 0; k < out * q->n_groups; k++) {
        q->zeros[k] = (int32_t)(tu_lcg_next(rng) % 16);
        q->scales[k] = llmsq_f16_to_f32((uint16_t)(0x1400 + tu_lcg_next(rng) % 0x2400)); /* ~6e-5 .. 1 */
    }
    return q;
}

/* Every field of the canonical form, bit for bit. */
static void assert_same_qlinear(const llmsq_qlinear *a, const llmsq_qlinear *b, const char *what)
{
    ck_assert_msg(a->out == b->out && a->in == b->in && a->bits == b->bits, "%s: shape or bits differ", what);
    ck_assert_msg(a->group_size == b->group_size && a->n_groups == b->n_groups, "%s: group size %lld vs %lld", what,
                  (long long)a->group_size, (long long)b->group_size);
    ck_assert_msg(a->grid == b->grid, "%s: grid %d vs %d", what, a->grid, b->grid);
    ck_assert_msg(memcmp(a->codes, b->codes, (size_t)(a->out * a->in)) == 0, "%s: codes differ", what);
    ck_assert_msg(memcmp(a->scales, b->scales, (size_t)(a->out * a->n_groups) * 4) == 0, "%s: scales differ", what);
    ck_assert_msg(memcmp(a->zeros, b->zeros, (size_t)(a->out * a->n_groups) * 4) == 0, "%s: zeros differ", what);
    ck_assert_msg(!a->g_idx && !b->g_idx, "%s: unexpected g_idx", what);
    ck_assert_msg(a->act_bits == b->act_bits && a->act_static == b->act_static, "%s: act_bits %d/%d static %d/%d",
                  what, a->act_bits, b->act_bits, a->act_static, b->act_static);
    ck_assert_msg(memcmp(&a->act_scale, &b->act_scale, 4) == 0, "%s: act_scale %.9g vs %.9g", what,
                  (double)a->act_scale, (double)b->act_scale);
}

static void assert_same_dequant(const llmsq_qlinear *q, const float *W, const char *what)
{
    float *ref = malloc((size_t)(q->out * q->in) * sizeof *ref);
    llmsq_qlinear_dequant(q, ref);
    for (int64_t k = 0; k < q->out * q->in; k++)
        ck_assert_msg(memcmp(&ref[k], &W[k], 4) == 0, "%s: element [%lld, %lld]: %.9g vs %.9g", what,
                      (long long)(k / q->in), (long long)(k % q->in), (double)ref[k], (double)W[k]);
    free(ref);
}

/* Packs q as AWQ with the library's encoder: bufs[k] holds pt[k]. */
static int encode_awq(const llmsq_qlinear *q, llmsq_qckpt_tensor *pt, uint8_t **bufs)
{
    llmsq_qckpt_scheme sc = {.format = LLMSQ_CKPT_AWQ, .bits = 4, .group_size = q->group_size,
                             .scale_dtype = LLMSQ_DTYPE_F16};
    ck_assert_msg(llmsq_awq_check(&sc, "t", q) == LLMSQ_OK, "%s", llmsq_last_error());
    int n = llmsq_awq_tensors(&sc, q, pt);
    for (int k = 0; k < n; k++) {
        bufs[k] = malloc(pt[k].nbytes);
        ck_assert_int_eq(llmsq_awq_fill(&sc, q, &pt[k], bufs[k]), LLMSQ_OK);
    }
    return n;
}

static uint8_t *find_buf(const llmsq_qckpt_tensor *pt, uint8_t **bufs, int n, const char *suffix)
{
    for (int k = 0; k < n; k++)
        if (strcmp(pt[k].suffix, suffix) == 0) return bufs[k];
    ck_abort_msg("no tensor %s", suffix);
    return NULL;
}

/* ---- AWQ packing ------------------------------------------------------------------------------ */

START_TEST(test_awq_vectors)
{
    /* The decoder reads FORMATS.md's word back: codes equal to their column index. */
    const uint8_t word[4] = {0x20, 0x64, 0x31, 0x75}; /* 0x75316420 little-endian */
    for (int o = 0; o < 8; o++) ck_assert_int_eq(awq_nibble(word, o), o);

    /* out 16, in 2, one group. Row 0: code = column index mod 8 -> 0x75316420 in both words.
     * Row 1: code = 7 - (column mod 8): slots hold 7-[0,2,4,6,1,3,5,7] = 7,5,3,1,6,4,2,0,
     * i.e. nibbles from slot 7 down: 0,2,4,6,1,3,5,7 -> 0x02461357.
     * qzeros: columns 0..7 hold z = column + 1, so slots hold 1,3,5,7,2,4,6,8 -> 0x86427531;
     * columns 8..15 hold z = 15 - (column - 8): slots 15,13,11,9,14,12,10,8 -> 0x8ACE9BDF. */
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(16, 2, 4, -1, LLMSQ_QGRID_AWQ, false, &q), LLMSQ_OK);
    for (int o = 0; o < 16; o++) {
        q->codes[o * 2 + 0] = (uint8_t)(o % 8);
        q->codes[o * 2 + 1] = (uint8_t)(7 - o % 8);
        q->zeros[o] = o < 8 ? o + 1 : 15 - (o - 8);
        q->scales[o] = 1.0f;
    }
    llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
    uint8_t *bufs[LLMSQ_QCKPT_MAX_TENSORS];
    int n = encode_awq(q, pt, bufs);
    ck_assert_int_eq(n, 3);
    const uint8_t *qw = find_buf(pt, bufs, n, "qweight"), *qz = find_buf(pt, bufs, n, "qzeros"),
                  *sc = find_buf(pt, bufs, n, "scales");
    ck_assert_uint_eq(w32(qw, 0), 0x75316420u);
    ck_assert_uint_eq(w32(qw, 1), 0x75316420u);
    ck_assert_uint_eq(w32(qw, 2), 0x02461357u);
    ck_assert_uint_eq(w32(qw, 3), 0x02461357u);
    ck_assert_uint_eq(w32(qz, 0), 0x86427531u);
    ck_assert_uint_eq(w32(qz, 1), 0x8ACE9BDFu);
    for (int o = 0; o < 16; o++) ck_assert_uint_eq(sc[2 * o] | sc[2 * o + 1] << 8, 0x3C00u); /* f16 1.0 */
    /* ... and the decoder agrees with the hand-worked zero words. */
    for (int o = 0; o < 16; o++) ck_assert_int_eq(awq_nibble(qz, o), o < 8 ? o + 1 : 15 - (o - 8));
    for (int k = 0; k < n; k++) free(bufs[k]);
    llmsq_qlinear_free(q);
}
END_TEST

typedef struct acase {
    int64_t out, in, G;
} acase;

static const acase k_cases[] = {{8, 16, 16}, {16, 64, 32}, {24, 48, 16}, {64, 64, -1}, {40, 96, 8}, {8, 8, 1}};

/* Encoder bytes decode (independently) to the canonical dequantization, and the importer reads
 * the same bytes back into the same canonical linear. */
START_TEST(test_awq_pack_vs_decoder)
{
    const acase *c = &k_cases[_i];
    uint64_t rng = 500 + (uint64_t)_i;
    llmsq_qlinear *q = rand_awq(&rng, c->out, c->in, c->G);
    const int64_t G = q->group_size, ng = c->in / G;
    llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
    uint8_t *bufs[LLMSQ_QCKPT_MAX_TENSORS];
    int n = encode_awq(q, pt, bufs);
    ck_assert_int_eq(n, 3);
    const int64_t want[3][2] = {{c->in, c->out / 8}, {ng, c->out / 8}, {ng, c->out}};
    const llmsq_dtype wdt[3] = {LLMSQ_DTYPE_I32, LLMSQ_DTYPE_I32, LLMSQ_DTYPE_F16};
    const char *const names[3] = {"qweight", "qzeros", "scales"};
    for (int k = 0; k < 3; k++) {
        ck_assert_str_eq(pt[k].suffix, names[k]);
        ck_assert_int_eq(pt[k].dtype, wdt[k]);
        ck_assert_int_eq(pt[k].ndim, 2);
        ck_assert_int_eq(pt[k].shape[0], want[k][0]);
        ck_assert_int_eq(pt[k].shape[1], want[k][1]);
    }
    float *W = malloc((size_t)(c->out * c->in) * sizeof *W);
    awq_decode(c->out, c->in, G, bufs[0], bufs[1], bufs[2], W);
    char what[64];
    snprintf(what, sizeof what, "case %d", _i);
    assert_same_dequant(q, W, what);

    llmsq_store *s = llmsq_store_create();
    for (int k = 0; k < n; k++) {
        char name[96];
        snprintf(name, sizeof name, "m.lin.%s", pt[k].suffix);
        ck_assert_int_eq(llmsq_store_put(s, name, pt[k].dtype, pt[k].ndim, pt[k].shape, bufs[k]), LLMSQ_OK);
    }
    llmsq_qckpt_scheme sc = {.format = LLMSQ_CKPT_AWQ, .bits = 4, .group_size = G, .scale_dtype = LLMSQ_DTYPE_F16};
    json_t *skip = json_array(), *root = json_pack("{s:o}", "quantization_config", llmsq_awq_config(&sc, skip));
    char *dir = tu_tmpdir("awq_pack"), *cfgp = tu_path(dir, "config.json");
    ck_assert_int_eq(json_dump_file(root, cfgp, 0), 0);
    ck_assert_msg(llmsq_quantized_checkpoint_import(s, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_qlinear *r = llmsq_store_get_qlinear(s, "m.lin.weight");
    ck_assert_ptr_nonnull(r);
    assert_same_qlinear(q, r, what);
    json_decref(skip), json_decref(root);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(dir), free(cfgp), free(W);
    llmsq_qlinear_free(q);
}
END_TEST

/* ---- a synthetic model ------------------------------------------------------------------------- */

static const char *const k_lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

/* synth "tiny": hidden 64, intermediate 172, 2 layers, 8 heads / 4 kv heads of 8, tied
 * embeddings. Attention linears are [64, 64] / [32, 64] (out % 8 == 0), gate/up [172, 64]
 * (172 % 8 == 4: not AWQ-packable), down [64, 172] (in 172 = 4 * 43). */
static char *synth_tiny(const char *root)
{
    char *src = tu_path(root, "synth");
    ck_assert_msg(llmsq_synth_write("tiny", src, LLMSQ_DTYPE_F32, 5) == LLMSQ_OK, "%s", llmsq_last_error());
    return src;
}

static void lin_name(char *buf, size_t cap, int64_t layer, int k)
{
    snprintf(buf, cap, "model.layers.%lld.%s.weight", (long long)layer, k_lin[k]);
}

/* AutoAWQ's quantizer (FORMATS.md 3.4) with f16 scales: the group's own min/max. */
static void awq_quantize(llmsq_store *s, const char *name, int64_t G)
{
    const llmsq_tensor *t = llmsq_store_get(s, name);
    ck_assert_ptr_nonnull(t);
    const float *W;
    ck_assert_int_eq(llmsq_store_get_f32(s, name, &W), LLMSQ_OK);
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(t->shape[0], t->shape[1], 4, G, LLMSQ_QGRID_AWQ, false, &q), LLMSQ_OK);
    const int64_t in = q->in, gs = q->group_size;
    for (int64_t o = 0; o < q->out; o++)
        for (int64_t g = 0; g < q->n_groups; g++) {
            const float *w = W + o * in + g * gs;
            const int64_t len = in - g * gs < gs ? in - g * gs : gs;
            float lo = w[0], hi = w[0];
            for (int64_t i = 1; i < len; i++) lo = fminf(lo, w[i]), hi = fmaxf(hi, w[i]);
            float sc = llmsq_f16_to_f32(llmsq_f32_to_f16(fmaxf(hi - lo, 1e-5f) / 15.0f));
            float z = fminf(fmaxf(-rintf(lo / sc), 0), 15);
            q->scales[o * q->n_groups + g] = sc;
            q->zeros[o * q->n_groups + g] = (int32_t)z;
            for (int64_t i = 0; i < len; i++) q->codes[o * in + g * gs + i] = (uint8_t)fminf(fmaxf(rintf(w[i] / sc) + z, 0), 15);
        }
    llmsq_store_release_f32(s, name);
    ck_assert_int_eq(llmsq_store_put_qlinear(s, name, q), LLMSQ_OK);
}

/* Symmetric int8 per output channel (zero point 128), W8A8 activation fields as given. */
static void w8a8_quantize(llmsq_store *s, const char *name, bool act_static, float act_scale, bool f16_scales)
{
    const llmsq_tensor *t = llmsq_store_get(s, name);
    ck_assert_ptr_nonnull(t);
    const float *W;
    ck_assert_int_eq(llmsq_store_get_f32(s, name, &W), LLMSQ_OK);
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(t->shape[0], t->shape[1], 8, -1, LLMSQ_QGRID_ABSMAX, false, &q), LLMSQ_OK);
    for (int64_t o = 0; o < q->out; o++) {
        float amax = 0;
        for (int64_t i = 0; i < q->in; i++) amax = fmaxf(amax, fabsf(W[o * q->in + i]));
        float sc = amax > 0 ? amax / 127.0f : 1.0f;
        if (f16_scales) sc = llmsq_f16_to_f32(llmsq_f32_to_f16(sc));
        q->scales[o] = sc;
        q->zeros[o] = 128;
        for (int64_t i = 0; i < q->in; i++)
            q->codes[o * q->in + i] = (uint8_t)(fminf(fmaxf(rintf(W[o * q->in + i] / sc), -127), 127) + 128);
    }
    q->act_bits = 8;
    q->act_static = act_static;
    q->act_scale = act_static ? act_scale : 0;
    llmsq_store_release_f32(s, name);
    ck_assert_int_eq(llmsq_store_put_qlinear(s, name, q), LLMSQ_OK);
}

/* The directory reads back (through llmsq_checkpoint_open, i.e. the importer) to `orig`:
 * quantized linears field by field, everything else bit for bit. Returns the quantized count. */
static size_t assert_reads_back(llmsq_store *orig, const char *dir)
{
    llmsq_store *s2;
    llmsq_config cfg;
    llmsq_tokenizer *tok;
    ck_assert_msg(llmsq_checkpoint_open(dir, &s2, &cfg, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_tokenizer_free(tok);
    ck_assert_ptr_null(llmsq_store_get(s2, "lm_head.weight")); /* tied: never written */
    size_t nq = 0;
    for (size_t i = 0; i < llmsq_store_count(orig); i++) {
        const llmsq_tensor *t = llmsq_store_at(orig, i);
        ck_assert_msg(llmsq_store_get(s2, t->name) != NULL, "%s missing", t->name);
        const llmsq_qlinear *b = llmsq_store_get_qlinear(s2, t->name);
        if (t->qlinear) {
            ck_assert_msg(b != NULL, "%s was not imported as a quantized linear", t->name);
            assert_same_qlinear(t->qlinear, b, t->name);
            nq++;
            continue;
        }
        ck_assert_msg(b == NULL, "%s became quantized", t->name);
        const float *fa, *fb;
        ck_assert_int_eq(llmsq_store_get_f32(orig, t->name, &fa), LLMSQ_OK);
        ck_assert_int_eq(llmsq_store_get_f32(s2, t->name, &fb), LLMSQ_OK);
        ck_assert_msg(memcmp(fa, fb, (size_t)llmsq_tensor_numel(t) * 4) == 0, "%s differs", t->name);
    }
    llmsq_store_destroy(s2);
    return nq;
}

/* Copies a written checkpoint, opens it (importing every quantized linear) and writes it again:
 * the packed tensors of the import must be replaced, not duplicated, and the bytes must agree. */
static void assert_rewrite_identical(const char *root, const char *out, llmsq_ckpt_format fmt)
{
    char *copy = tu_path(root, "reimported"), *out2 = tu_path(root, "rewritten");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(out, copy, &cfg);
    llmsq_ckpt_write_params p = {.format = fmt, .source = copy};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    tu_assert_dirs_identical(out, out2, 3);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s' '%s'", copy, out2);
    free(copy), free(out2);
}

static const llmsq_tensor *raw_get(llmsq_store *raw, const char *name, llmsq_dtype dt, int64_t d0, int64_t d1)
{
    const llmsq_tensor *t = llmsq_store_get(raw, name);
    ck_assert_msg(t != NULL, "%s missing from the safetensors", name);
    ck_assert_msg(t->dtype == dt, "%s: dtype %s", name, llmsq_dtype_info(t->dtype)->name);
    ck_assert_msg(t->ndim == (d1 ? 2 : 1) && t->shape[0] == d0 && (!d1 || t->shape[1] == d1), "%s: shape [%lld, %lld]",
                  name, (long long)t->shape[0], (long long)t->shape[1]);
    return t;
}

static bool raw_has(llmsq_store *raw, const char *prefix, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    return llmsq_store_get(raw, name) != NULL;
}

/* ---- AWQ round trips ------------------------------------------------------------------------------ */

START_TEST(test_awq_roundtrip)
{
    char *root = tu_tmpdir("awq_rt"), *src = synth_tiny(root), *model = tu_path(root, "model"), *out = tu_path(root, "out");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    ck_assert_int_eq(cfg.hidden_size, 64);
    ck_assert_int_eq(cfg.intermediate_size, 172);
    char name[128];
    /* Attention and down_proj at G = 4 (divides 64 and 172); gate/up stay float (out 172). */
    for (int64_t l = 0; l < cfg.n_layers; l++)
        for (int k = 0; k < 7; k++)
            if (k != 4 && k != 5) {
                lin_name(name, sizeof name, l, k);
                awq_quantize(s, name, 4);
            }
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_AWQ, .source = model};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_uint_eq(assert_reads_back(s, out), (size_t)(5 * cfg.n_layers));

    /* config.json: exactly FORMATS.md 3.1's keys, the float MLP linears named. */
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    json_t *want = json_pack("{s:s, s:i, s:i, s:b, s:s, s:[s,s,s,s]}", "quant_method", "awq", "bits", 4, "group_size", 4,
                             "zero_point", 1, "version", "gemm", "modules_to_not_convert", "model.layers.0.mlp.gate_proj",
                             "model.layers.0.mlp.up_proj", "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj");
    char *got = json_dumps(qc, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(qc, want), "%s", got);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "hidden_size")), 64); /* the source's fields stay */
    free(got);
    json_decref(want), json_decref(c);
    char *qcf = tu_path(out, "quantize_config.json");
    ck_assert(!tu_exists(qcf)); /* AutoAWQ writes config.json only */
    free(qcf);

    /* The raw tensors: shapes of 3.2, no g_idx, no float weight, and the independent decoder
     * reproduces every quantized linear. */
    llmsq_store *raw = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(raw, out), LLMSQ_OK);
    for (int64_t l = 0; l < cfg.n_layers; l++)
        for (int k = 0; k < 7; k++) {
            char pre[128];
            snprintf(pre, sizeof pre, "model.layers.%lld.%s", (long long)l, k_lin[k]);
            lin_name(name, sizeof name, l, k);
            const llmsq_qlinear *q = llmsq_store_get_qlinear(s, name);
            if (!q) {
                ck_assert(raw_has(raw, pre, ".weight") && !raw_has(raw, pre, ".qweight"));
                continue;
            }
            ck_assert(!raw_has(raw, pre, ".weight") && !raw_has(raw, pre, ".g_idx"));
            char qw[160], qz[160], sc[160];
            snprintf(qw, sizeof qw, "%s.qweight", pre);
            snprintf(qz, sizeof qz, "%s.qzeros", pre);
            snprintf(sc, sizeof sc, "%s.scales", pre);
            const llmsq_tensor *tw = raw_get(raw, qw, LLMSQ_DTYPE_I32, q->in, q->out / 8);
            const llmsq_tensor *tz = raw_get(raw, qz, LLMSQ_DTYPE_I32, q->in / 4, q->out / 8);
            const llmsq_tensor *ts = raw_get(raw, sc, LLMSQ_DTYPE_F16, q->in / 4, q->out);
            float *W = malloc((size_t)(q->out * q->in) * sizeof *W);
            awq_decode(q->out, q->in, 4, tw->data, tz->data, ts->data, W);
            assert_same_dequant(q, W, pre);
            free(W);
        }
    llmsq_store_destroy(raw);
    assert_rewrite_identical(root, out, LLMSQ_CKPT_AWQ);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s' '%s'", model, out);

    /* Per channel, attention only: written as G = in = 64; all six MLP linears are listed. */
    s = tu_checkpoint_copy(src, model, &cfg);
    for (int64_t l = 0; l < cfg.n_layers; l++)
        for (int k = 0; k < 4; k++) {
            lin_name(name, sizeof name, l, k);
            awq_quantize(s, name, -1);
        }
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_uint_eq(assert_reads_back(s, out), (size_t)(4 * cfg.n_layers));
    c = tu_load_json(out, "config.json");
    qc = json_object_get(c, "quantization_config");
    ck_assert_int_eq(json_integer_value(json_object_get(qc, "group_size")), 64);
    ck_assert_uint_eq(json_array_size(json_object_get(qc, "modules_to_not_convert")), (size_t)(3 * cfg.n_layers));
    json_decref(c);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(src), free(model), free(out);
}
END_TEST

/* ---- W8A8 round trips ------------------------------------------------------------------------------ */

static void w8a8_config_check(const char *out, bool act_static)
{
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "quant_method")), "compressed-tensors");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "format")), "int-quantized");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "quantization_status")), "compressed");
    json_t *g = json_object_get(json_object_get(qc, "config_groups"), "group_0");
    json_t *tw = json_pack("{s:i, s:s, s:b, s:s, s:n, s:b, s:n}", "num_bits", 8, "type", "int", "symmetric", 1,
                           "strategy", "channel", "group_size", "dynamic", 0, "actorder");
    json_t *ti = json_pack("{s:i, s:s, s:b, s:s, s:b}", "num_bits", 8, "type", "int", "symmetric", 1, "strategy",
                           act_static ? "tensor" : "token", "dynamic", !act_static);
    json_t *targets = json_pack("[s]", "Linear"), *ign = json_pack("[s]", "lm_head");
    char *got = json_dumps(g, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(json_object_get(g, "weights"), tw), "%s", got);
    ck_assert_msg(json_equal(json_object_get(g, "input_activations"), ti), "%s", got);
    ck_assert_msg(json_is_null(json_object_get(g, "output_activations")), "%s", got);
    ck_assert(json_equal(json_object_get(g, "targets"), targets));
    ck_assert(json_equal(json_object_get(qc, "ignore"), ign));
    free(got);
    json_decref(tw), json_decref(ti), json_decref(targets), json_decref(ign), json_decref(c);
}

/* Every linear of the tiny model (no packing constraint for int8), dynamic then static. */
START_TEST(test_w8a8_roundtrip)
{
    char *root = tu_tmpdir("w8a8_rt"), *src = synth_tiny(root), *model = tu_path(root, "model"), *out = tu_path(root, "out");
    char name[128];
    for (int pass = 0; pass < 2; pass++) {
        const bool st = pass == 1;
        llmsq_config cfg;
        llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
        /* dynamic: f16 scales -> F16 tensors; static: raw f32 scales -> F32 tensors. */
        for (int64_t l = 0; l < cfg.n_layers; l++)
            for (int k = 0; k < 7; k++) {
                lin_name(name, sizeof name, l, k);
                w8a8_quantize(s, name, st, 0.01171875f * (float)(1 + l * 7 + k) + 1e-7f, !st);
            }
        llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model};
        ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
        ck_assert_uint_eq(assert_reads_back(s, out), (size_t)(7 * cfg.n_layers));
        w8a8_config_check(out, st);

        llmsq_store *raw = llmsq_store_create();
        ck_assert_int_eq(llmsq_safetensors_read_dir(raw, out), LLMSQ_OK);
        const llmsq_dtype sdt = st ? LLMSQ_DTYPE_F32 : LLMSQ_DTYPE_F16;
        for (int64_t l = 0; l < cfg.n_layers; l++)
            for (int k = 0; k < 7; k++) {
                char pre[128], nm[160];
                snprintf(pre, sizeof pre, "model.layers.%lld.%s", (long long)l, k_lin[k]);
                lin_name(name, sizeof name, l, k);
                const llmsq_qlinear *q = llmsq_store_get_qlinear(s, name);
                const llmsq_tensor *w = raw_get(raw, name, LLMSQ_DTYPE_I8, q->out, q->in);
                for (int64_t e = 0; e < q->out * q->in; e++)
                    ck_assert_int_eq(((const int8_t *)w->data)[e], (int)q->codes[e] - 128);
                snprintf(nm, sizeof nm, "%s.weight_scale", pre);
                const llmsq_tensor *ws = raw_get(raw, nm, sdt, q->out, 1);
                float s0;
                if (st) memcpy(&s0, ws->data, 4);
                else s0 = f16(ws->data, 0);
                ck_assert(memcmp(&s0, &q->scales[0], 4) == 0);
                ck_assert(!raw_has(raw, pre, ".weight_packed") && !raw_has(raw, pre, ".weight_shape") &&
                          !raw_has(raw, pre, ".weight_zero_point"));
                ck_assert(raw_has(raw, pre, ".input_scale") == st);
                if (st) {
                    snprintf(nm, sizeof nm, "%s.input_scale", pre);
                    const llmsq_tensor *is = raw_get(raw, nm, sdt, 1, 0);
                    ck_assert(memcmp(is->data, &q->act_scale, 4) == 0);
                }
            }
        llmsq_store_destroy(raw);
        /* The imported input_scale / weight_scale tensors are rewritten, not carried twice. */
        assert_rewrite_identical(root, out, LLMSQ_CKPT_COMPRESSED_TENSORS);
        llmsq_store_destroy(s);
        tu_sh("rm -rf '%s' '%s'", model, out);
    }
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(src), free(model), free(out);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------------------ */

/* Rewrites dir/model.safetensors with `drop` removed, or `reshape` one smaller along `dim`. */
static void rewrite_st(const char *dir, const char *drop, const char *reshape, int dim)
{
    llmsq_store *s = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(s, dir), LLMSQ_OK);
    size_t n = llmsq_store_count(s), k = 0;
    llmsq_tensor *ts = calloc(n, sizeof *ts);
    const llmsq_tensor **ptrs = calloc(n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        ts[k] = *t;
        if (reshape && strcmp(t->name, reshape) == 0) {
            ts[k].shape[dim]--;
            ts[k].nbytes = llmsq_dtype_nbytes(t->dtype, ts[k].ndim == 1 ? ts[k].shape[0] : ts[k].shape[0] * ts[k].shape[1]);
        }
        ptrs[k] = &ts[k];
        k++;
    }
    char *path = tu_path(dir, "model.safetensors"), *tmp = tu_path(dir, "new.safetensors");
    ck_assert_int_eq(llmsq_safetensors_write(tmp, ptrs, k, NULL, 0), LLMSQ_OK);
    ck_assert_int_eq(rename(tmp, path), 0);
    free(path), free(tmp), free(ts), free(ptrs);
    llmsq_store_destroy(s);
}

static llmsq_status import_dir(const char *dir)
{
    llmsq_store *s = llmsq_store_create();
    llmsq_status st = llmsq_safetensors_read_dir(s, dir);
    char *cfg = tu_path(dir, "config.json");
    if (st == LLMSQ_OK) st = llmsq_quantized_checkpoint_import(s, cfg);
    free(cfg);
    llmsq_store_destroy(s);
    return st;
}

#define ASSERT_ERR(expr, status, needle)                                                                  \
    do {                                                                                                  \
        llmsq_status st_ = (expr);                                                                        \
        ck_assert_msg(st_ == (status), "%s: status %d, expected %d (%s)", #expr, st_, status,              \
                      st_ ? llmsq_last_error() : "ok");                                                   \
        ck_assert_msg(strstr(llmsq_last_error(), needle), "'%s' not in: %s", needle, llmsq_last_error()); \
    } while (0)

/* Writer refusals on the synthetic model's own shapes, then on small hand-built stores. */
START_TEST(test_awq_write_errors)
{
    char *root = tu_tmpdir("awq_werr"), *src = synth_tiny(root), *model = tu_path(root, "model"), *out = tu_path(root, "out");
    char *tmp = tu_path(root, "out.tmp");
    llmsq_config cfg;
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_AWQ, .source = model};

    /* gate_proj: out 172 is not a multiple of 8. */
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    awq_quantize(s, "model.layers.0.self_attn.q_proj.weight", 32);
    awq_quantize(s, "model.layers.0.mlp.gate_proj.weight", 32);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "model.layers.0.mlp.gate_proj");
    ck_assert_msg(strstr(llmsq_last_error(), "out_features = 172") && strstr(llmsq_last_error(), "multiple of 8"), "%s",
                  llmsq_last_error());
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    llmsq_store_destroy(s);

    /* down_proj: in 172 is not a multiple of G = 32. */
    s = tu_checkpoint_copy(src, model, &cfg);
    awq_quantize(s, "model.layers.1.self_attn.o_proj.weight", 32);
    awq_quantize(s, "model.layers.1.mlp.down_proj.weight", 32);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "model.layers.1.mlp.down_proj");
    ck_assert_msg(strstr(llmsq_last_error(), "in_features = 172") && strstr(llmsq_last_error(), "group size 32"), "%s",
                  llmsq_last_error());
    llmsq_store_destroy(s);

    /* Per channel with different widths (64 and 172) has no single group_size. */
    s = tu_checkpoint_copy(src, model, &cfg);
    awq_quantize(s, "model.layers.1.self_attn.o_proj.weight", -1);
    awq_quantize(s, "model.layers.1.mlp.down_proj.weight", -1);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "group_size = in_features");
    llmsq_store_destroy(s);

    /* W8A8 linears are not weight-only: AWQ and GPTQ refuse them. */
    s = tu_checkpoint_copy(src, model, &cfg);
    w8a8_quantize(s, "model.layers.0.self_attn.q_proj.weight", false, 0, true);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "compressed-tensors");
    ck_assert_msg(strstr(llmsq_last_error(), "AWQ") && strstr(llmsq_last_error(), "q_proj"), "%s", llmsq_last_error());
    p.format = LLMSQ_CKPT_GPTQ;
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "GPTQ checkpoints are weight-only");
    p.format = LLMSQ_CKPT_AWQ;
    llmsq_store_destroy(s);

    /* Hand-built stores. */
    uint64_t rng = 3;
    s = llmsq_store_create();
    llmsq_qlinear *q3;
    ck_assert_int_eq(llmsq_qlinear_create(16, 32, 3, 16, LLMSQ_QGRID_MINMAX, false, &q3), LLMSQ_OK);
    llmsq_store_put_qlinear(s, "model.layers.0.mlp.up_proj.weight", q3);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "3-bit");
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.up_proj"), "%s", llmsq_last_error());
    llmsq_store_destroy(s);

    s = llmsq_store_create();
    llmsq_qlinear *ao;
    ck_assert_int_eq(llmsq_qlinear_create(16, 32, 4, 16, LLMSQ_QGRID_AWQ, true, &ao), LLMSQ_OK);
    for (int i = 0; i < 32; i++) ao->g_idx[i] = i % 2; /* interleaved groups: act-order */
    ao->act_order = true;
    llmsq_store_put_qlinear(s, "model.layers.0.self_attn.q_proj.weight", ao);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "act-order");
    llmsq_store_destroy(s);

    /* A quantized lm_head has no AWQ spelling. */
    llmsq_config untied = cfg;
    untied.tie_embeddings = false;
    s = llmsq_store_create();
    llmsq_store_put_qlinear(s, "lm_head.weight", rand_awq(&rng, 16, 32, 16));
    llmsq_store_put_qlinear(s, "model.layers.0.self_attn.q_proj.weight", rand_awq(&rng, 16, 32, 16));
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &untied, &p), LLMSQ_STATUS_UNSUPPORTED, "lm_head");
    llmsq_store_destroy(s);
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(src), free(model), free(out), free(tmp);
}
END_TEST

/* A two-linear AWQ checkpoint (G 16, F16 bias beside it) and a bare source config. */
static llmsq_store *small_awq(const char *root, char **source)
{
    *source = tu_path(root, "src");
    tu_sh("mkdir -p '%s'%s", *source, "");
    tu_put_json(*source, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}");
    llmsq_store *s = llmsq_store_create();
    uint64_t rng = 21;
    ck_assert_int_eq(llmsq_store_put_qlinear(s, "model.layers.0.self_attn.q_proj.weight", rand_awq(&rng, 16, 32, 16)),
                     LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_put_qlinear(s, "model.layers.0.self_attn.k_proj.weight", rand_awq(&rng, 8, 32, 16)),
                     LLMSQ_OK);
    int64_t shp[1] = {16};
    ck_assert_int_eq(llmsq_store_put(s, "model.layers.0.self_attn.q_proj.bias", LLMSQ_DTYPE_F16, 1, shp, calloc(16, 2)),
                     LLMSQ_OK);
    return s;
}

static void put_awq_cfg(const char *dir, const char *fields)
{
    char text[512];
    snprintf(text, sizeof text, "{\"quantization_config\": {\"quant_method\": \"awq\", %s}}", fields);
    tu_put_json(dir, "config.json", text);
}

START_TEST(test_awq_import_errors)
{
    char *root = tu_tmpdir("awq_ierr"), *source, *out = tu_path(root, "out");
    llmsq_store *s = small_awq(root, &source);
    llmsq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_AWQ, .source = source};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    ck_assert(json_is_null(json_object_get(qc, "modules_to_not_convert"))); /* nothing left in float */
    ck_assert_int_eq(json_integer_value(json_object_get(qc, "group_size")), 16);
    json_decref(c);
    ck_assert_msg(import_dir(out) == LLMSQ_OK, "%s", llmsq_last_error());

    /* AutoAWQ's own key names and an upper-case version read the same. */
    put_awq_cfg(out, "\"w_bit\": 4, \"q_group_size\": 16, \"zero_point\": true, \"version\": \"GEMM\"");
    llmsq_store *r = llmsq_store_create();
    char *cfgp = tu_path(out, "config.json");
    ck_assert_int_eq(llmsq_safetensors_read_dir(r, out), LLMSQ_OK);
    ck_assert_msg(llmsq_quantized_checkpoint_import(r, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_same_qlinear(llmsq_store_get_qlinear(s, "model.layers.0.self_attn.q_proj.weight"),
                        llmsq_store_get_qlinear(r, "model.layers.0.self_attn.q_proj.weight"), "synonyms");
    ck_assert_ptr_nonnull(llmsq_store_get(r, "model.layers.0.self_attn.q_proj.bias"));
    llmsq_store_destroy(r);
    free(cfgp);

    put_awq_cfg(out, "\"bits\": 4, \"group_size\": 16, \"zero_point\": true, \"version\": \"gemv\"");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "\"gemv\"");
    put_awq_cfg(out, "\"bits\": 4, \"group_size\": 16, \"version\": \"exllama\"");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "\"exllama\"");
    put_awq_cfg(out, "\"bits\": 8, \"group_size\": 16, \"version\": \"gemm\"");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "bits 8");
    put_awq_cfg(out, "\"bits\": 4, \"group_size\": 64, \"version\": \"gemm\"");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.k_proj.qweight");
    put_awq_cfg(out, "\"bits\": 4, \"group_size\": 16, \"zero_point\": true, \"version\": \"gemm\", "
                     "\"modules_to_not_convert\": null");

    /* qweight truncated by one input row: 31 rows do not tile groups of 16. */
    rewrite_st(out, NULL, "model.layers.0.self_attn.q_proj.qweight", 0);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.q_proj.qweight");
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    /* qweight one word column short: out 8 no longer matches scales [2, 16]. */
    rewrite_st(out, NULL, "model.layers.0.self_attn.q_proj.qweight", 1);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.q_proj.scales");
    ck_assert_msg(strstr(llmsq_last_error(), "from qweight"), "%s", llmsq_last_error());
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    rewrite_st(out, "model.layers.0.self_attn.k_proj.qzeros", NULL, 0);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.k_proj.qzeros");
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    rewrite_st(out, NULL, "model.layers.0.self_attn.k_proj.qzeros", 0);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.k_proj.qzeros");

    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(source), free(out);
}
END_TEST

/* A small W8A8 store: two per-channel int8 linears with the given activation mode. */
static llmsq_store *small_w8a8(const char *root, char **source, bool act_static)
{
    *source = tu_path(root, "src");
    tu_sh("mkdir -p '%s'%s", *source, "");
    tu_put_json(*source, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}");
    llmsq_store *s = llmsq_store_create();
    uint64_t rng = 31;
    const char *names[2] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"};
    for (int l = 0; l < 2; l++) {
        llmsq_qlinear *q;
        ck_assert_int_eq(llmsq_qlinear_create(12 + 4 * l, 20, 8, -1, LLMSQ_QGRID_ABSMAX, false, &q), LLMSQ_OK);
        for (int64_t k = 0; k < q->out * q->in; k++) q->codes[k] = (uint8_t)(1 + tu_lcg_next(&rng) % 255);
        for (int64_t o = 0; o < q->out; o++) {
            q->zeros[o] = 128;
            q->scales[o] = llmsq_f16_to_f32((uint16_t)(0x1400 + tu_lcg_next(&rng) % 0x2400));
        }
        q->act_bits = 8;
        q->act_static = act_static;
        q->act_scale = act_static ? 0.25f + 0.125f * (float)l : 0;
        ck_assert_int_eq(llmsq_store_put_qlinear(s, names[l], q), LLMSQ_OK);
    }
    return s;
}

START_TEST(test_w8a8_write_errors)
{
    char *root = tu_tmpdir("w8a8_werr"), *source, *out = tu_path(root, "out"), *tmp = tu_path(root, "out.tmp");
    llmsq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = NULL};
    uint64_t rng = 41;

    /* W8A8 beside a weight-only 8-bit linear. */
    llmsq_store *s = small_w8a8(root, &source, false);
    llmsq_qlinear *wo;
    ck_assert_int_eq(llmsq_qlinear_create(8, 20, 8, -1, LLMSQ_QGRID_ABSMAX, false, &wo), LLMSQ_OK);
    for (int o = 0; o < 8; o++) wo->zeros[o] = 128, wo->scales[o] = 1;
    llmsq_store_put_qlinear(s, "model.layers.0.mlp.up_proj.weight", wo);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "mixes W8A8 and weight-only");
    ck_assert_msg(strstr(llmsq_last_error(), "up_proj"), "%s", llmsq_last_error());
    /* ... and beside a 4-bit weight-only one. */
    llmsq_store_put_qlinear(s, "model.layers.0.mlp.gate_proj.weight", rand_awq(&rng, 8, 32, 16));
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "mixes W8A8 and weight-only");
    llmsq_store_destroy(s);
    free(source);

    /* Static beside dynamic. */
    s = small_w8a8(root, &source, true);
    ((llmsq_qlinear *)llmsq_store_get_qlinear(s, "model.layers.0.self_attn.q_proj.weight"))->act_static = false;
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "static");
    llmsq_store_destroy(s);
    free(source);

    /* A static scale of 0 is no scale. */
    s = small_w8a8(root, &source, true);
    ((llmsq_qlinear *)llmsq_store_get_qlinear(s, "model.layers.0.mlp.down_proj.weight"))->act_scale = 0;
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "activation scale");
    llmsq_store_destroy(s);
    free(source);

    /* Asymmetric int8 weights. */
    s = small_w8a8(root, &source, false);
    ((llmsq_qlinear *)llmsq_store_get_qlinear(s, "model.layers.0.mlp.down_proj.weight"))->zeros[3] = 131;
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "symmetric");
    ck_assert_msg(strstr(llmsq_last_error(), "down_proj") && strstr(llmsq_last_error(), "row 3"), "%s", llmsq_last_error());
    llmsq_store_destroy(s);
    free(source);

    /* Grouped int8 weights. */
    s = llmsq_store_create();
    llmsq_qlinear *gq;
    ck_assert_int_eq(llmsq_qlinear_create(8, 20, 8, 10, LLMSQ_QGRID_ABSMAX, false, &gq), LLMSQ_OK);
    for (int k = 0; k < 16; k++) gq->zeros[k] = 128, gq->scales[k] = 1;
    gq->act_bits = 8;
    llmsq_store_put_qlinear(s, "model.layers.0.mlp.up_proj.weight", gq);
    ASSERT_ERR(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED, "per channel");
    llmsq_store_destroy(s);
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(out), free(tmp);
}
END_TEST

static void put_ct_cfg(const char *dir, const char *weights, const char *inputs)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
             "\"int-quantized\", \"quantization_status\": \"compressed\", \"config_groups\": {\"group_0\": {\"targets\": "
             "[\"Linear\"], \"weights\": %s, \"input_activations\": %s}}}}", weights, inputs);
    tu_put_json(dir, "config.json", text);
}

#define W_OK "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"channel\"}"
#define I_STATIC "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"tensor\", \"dynamic\": false}"

START_TEST(test_w8a8_import_errors)
{
    char *root = tu_tmpdir("w8a8_ierr"), *source, *out = tu_path(root, "out");
    llmsq_store *s = small_w8a8(root, &source, true);
    llmsq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = source};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(import_dir(out) == LLMSQ_OK, "%s", llmsq_last_error());

    /* A hand-written config in the same spelling reads; the "W8A8" preset means dynamic. */
    put_ct_cfg(out, W_OK, I_STATIC);
    ck_assert_msg(import_dir(out) == LLMSQ_OK, "%s", llmsq_last_error());
    tu_put_json(out, "config.json", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
                "\"int-quantized\", \"config_groups\": {\"W8A8\": [\"Linear\"]}}}");
    llmsq_store *r = llmsq_store_create();
    char *cfgp = tu_path(out, "config.json");
    ck_assert_int_eq(llmsq_safetensors_read_dir(r, out), LLMSQ_OK);
    ck_assert_msg(llmsq_quantized_checkpoint_import(r, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_qlinear *q = llmsq_store_get_qlinear(r, "model.layers.0.mlp.down_proj.weight");
    ck_assert(q && q->act_bits == 8 && !q->act_static && q->grid == LLMSQ_QGRID_ABSMAX && q->zeros[0] == 128);
    llmsq_store_destroy(r);
    free(cfgp);

    put_ct_cfg(out, "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": false, \"strategy\": \"channel\"}", I_STATIC);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "asymmetric weights");
    put_ct_cfg(out, "{\"num_bits\": 4, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"channel\"}", I_STATIC);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "num_bits 4");
    put_ct_cfg(out, "{\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, \"strategy\": \"channel\"}", I_STATIC);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "type \"float\"");
    put_ct_cfg(out, "{\"num_bits\": 8, \"symmetric\": true, \"strategy\": \"group\", \"group_size\": 4}", I_STATIC);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "strategy \"group\"");
    put_ct_cfg(out, W_OK, "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": false, \"strategy\": \"tensor\", "
                          "\"dynamic\": false}");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "asymmetric input_activations");
    put_ct_cfg(out, W_OK, "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"token\", "
                          "\"dynamic\": false}");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "strategy \"token\" with dynamic false");
    put_ct_cfg(out, W_OK, "{\"num_bits\": 4, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"token\", "
                          "\"dynamic\": true}");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_UNSUPPORTED, "input_activations num_bits 4");

    /* Tensors that disagree with the config. */
    put_ct_cfg(out, W_OK, I_STATIC);
    rewrite_st(out, "model.layers.0.mlp.down_proj.input_scale", NULL, 0);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.mlp.down_proj.input_scale");
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    rewrite_st(out, NULL, "model.layers.0.self_attn.q_proj.weight_scale", 0);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "model.layers.0.self_attn.q_proj.weight_scale");
    /* An I8 weight outside every int-quantized group. */
    tu_put_json(out, "config.json", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
                "\"pack-quantized\", \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": "
                "{\"num_bits\": 8, \"strategy\": \"channel\"}}}}}");
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "is I8 but matches no int-quantized config group");

    /* Strategy "tensor" wants a one-element weight_scale. */
    put_ct_cfg(out, "{\"num_bits\": 8, \"symmetric\": true, \"strategy\": \"tensor\"}", I_STATIC);
    ASSERT_ERR(import_dir(out), LLMSQ_STATUS_FORMAT, "weight strategy tensor");

    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", root, "");
    free(root), free(source), free(out);
}
END_TEST

/* int8 weight-only with one per-tensor scale, as llm-compressor may write it by hand: the scale
 * is spread over the rows, no activation quantization. */
START_TEST(test_int8_per_tensor_foreign)
{
    int8_t w[4 * 8];
    for (int k = 0; k < 32; k++) w[k] = (int8_t)(k * 9 - 128);
    uint16_t sc = llmsq_f32_to_f16(0.0625f);
    llmsq_tensor ts[2] = {
        {.name = "m.l.weight", .dtype = LLMSQ_DTYPE_I8, .ndim = 2, .shape = {4, 8}, .data = w, .nbytes = 32},
        {.name = "m.l.weight_scale", .dtype = LLMSQ_DTYPE_F16, .ndim = 1, .shape = {1}, .data = &sc, .nbytes = 2},
    };
    const llmsq_tensor *ptrs[2] = {&ts[0], &ts[1]};
    char *dir = tu_tmpdir("int8_pt"), *st = tu_path(dir, "model.safetensors"), *cfgp = tu_path(dir, "config.json");
    ck_assert_int_eq(llmsq_safetensors_write(st, ptrs, 2, NULL, 0), LLMSQ_OK);
    put_ct_cfg(dir, "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"tensor\"}", "null");
    llmsq_store *s = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(s, dir), LLMSQ_OK);
    ck_assert_msg(llmsq_quantized_checkpoint_import(s, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_qlinear *q = llmsq_store_get_qlinear(s, "m.l.weight");
    ck_assert(q && q->bits == 8 && q->n_groups == 1 && q->act_bits == 0 && q->grid == LLMSQ_QGRID_ABSMAX);
    for (int o = 0; o < 4; o++) ck_assert(q->scales[o] == 0.0625f && q->zeros[o] == 128);
    for (int k = 0; k < 32; k++) ck_assert_int_eq(q->codes[k], w[k] + 128);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(dir), free(st), free(cfgp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("awq_ckpt");
    TCase *tc = tcase_create("pack");
    tcase_add_test(tc, test_awq_vectors);
    tcase_add_loop_test(tc, test_awq_pack_vs_decoder, 0, (int)(sizeof k_cases / sizeof k_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_awq_roundtrip);
    tcase_add_test(tc, test_w8a8_roundtrip);
    tcase_add_test(tc, test_awq_write_errors);
    tcase_add_test(tc, test_awq_import_errors);
    tcase_add_test(tc, test_w8a8_write_errors);
    tcase_add_test(tc, test_w8a8_import_errors);
    tcase_add_test(tc, test_int8_per_tensor_foreign);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
