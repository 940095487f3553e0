/* Quantized checkpoints (GPTQ, compressed-tensors): packing checked by an independent decoder
 * written from FORMATS.md 2.4 / 4.5, the hand-worked vectors, full round trips through the
 * directory writer and llmsq_model_open, determinism, and bad input. */
#include "testutil.h"
#include "../formats/qpack.h" /* encoder side and the sharded writer; never used to decode */

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------------------------------ */

/* ---- the independent decoder (FORMATS.md 2.4 and 4.5, from the text) ---------------------------- */

static uint32_t w32(const uint8_t *p, int64_t k)
{
    p += 4 * k;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f16(const uint8_t *p, int64_t k)
{
    unsigned h = p[2 * k] | p[2 * k + 1] << 8, e = (h >> 10) & 31, m = h & 1023;
    float v = e ? ldexpf((float)(1024 + m), (int)e - 25) : ldexpf((float)m, -24);
    ck_assert_uint_ne(e, 31);
    return (h & 0x8000) ? -v : v;
}

/* Value j of a GPTQ packed line whose words sit `stride` words apart. 3-bit follows the
 * W0/W1/W2 table of 2.4 literally. */
static int gptq_field(const uint8_t *base, int64_t stride, int64_t j, int b)
{
    if (b != 3) {
        int per = 32 / b;
        return (int)((w32(base, (j / per) * stride) >> (j % per * b)) & ((1u << b) - 1));
    }
    int64_t u = j / 32 * 3;
    uint32_t W0 = w32(base, u * stride), W1 = w32(base, (u + 1) * stride), W2 = w32(base, (u + 2) * stride);
    int r = (int)(j % 32);
    if (r <= 9) return (W0 >> (3 * r)) & 7;
    if (r == 10) return (int)((W0 >> 30) | (W1 & 1) << 2);
    if (r <= 20) return (W1 >> (3 * (r - 11) + 1)) & 7;
    if (r == 21) return (int)((W1 >> 31) | (W2 & 3) << 1);
    return (W2 >> (3 * (r - 22) + 2)) & 7;
}

/* GPTQ v1: w[o][i] = scales[g][o] * (q[i][o] - (qzeros[g][o] + 1)), g = g_idx[i]. */
static void gptq_decode(int b, int64_t out, int64_t in, const uint8_t *qw, const uint8_t *qz, const uint8_t *sc,
                        const uint8_t *gi, float *W)
{
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            int64_t g = (int32_t)w32(gi, i);
            int q = gptq_field(qw + 4 * o, out, i, b);
            int z = gptq_field(qz + 4 * g * (out * b / 32), 1, o, b) + 1;
            W[o * in + i] = f16(sc, g * out + o) * (float)(q - z);
        }
}

/* compressed-tensors: signed code q - 2^(b-1) and signed zero point (0 when symmetric). */
static void ct_decode(int b, int64_t out, int64_t in, int64_t G, const uint8_t *wp, const uint8_t *ws,
                      const uint8_t *zp, const uint8_t *gi, float *W)
{
    const int per = 32 / b, mid = 1 << (b - 1), mask = (1 << b) - 1;
    const int64_t cols = (in + per - 1) / per, ng = (in + G - 1) / G;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            int64_t g = gi ? (int32_t)w32(gi, i) : i / G;
            int q = (int)((w32(wp, o * cols + i / per) >> (i % per * b)) & mask) - mid;
            int z = zp ? (int)((w32(zp, (o / per) * ng + g) >> (o % per * b)) & mask) - mid : 0;
            W[o * in + i] = f16(ws, o * ng + g) * (float)(q - z);
        }
}

/* ---- random canonical linears ------------------------------------------------------------------ */

static llmsq_qlinear *rand_q(uint64_t *rng, int64_t out, int64_t in, int b, int64_t G, bool sym, bool act, int zmin)
{
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(out, in, b, G, sym ? LLMSQ_QGRID_SYM : LLMSQ_QGRID_MINMAX, act, &q), LLMSQ_OK);
    q->act_order = act;
    for (int64_t k = 0; k < out * in; k++) q->codes[k] = (uint8_t)(tu_lcg_next(rng) % (1u << b));
    for (int64_t k = 0; k < out * q->n_groups; k++) {
        q->zeros[k] = sym ? 1 << (b - 1) : zmin + (int32_t)(tu_lcg_next(rng) % (uint64_t)((1 << b) - zmin));
        q->scales[k] = llmsq_f16_to_f32((uint16_t)(0x1400 + tu_lcg_next(rng) % 0x2400)); /* ~6e-5 .. 1 */
    }
    if (act) { /* groups formed over a random column order, as act-order does */
        int64_t *perm = malloc((size_t)in * sizeof *perm);
        for (int64_t i = 0; i < in; i++) perm[i] = i;
        for (int64_t i = in - 1; i > 0; i--) {
            int64_t j = (int64_t)(tu_lcg_next(rng) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int64_t k = 0; k < in; k++) q->g_idx[perm[k]] = (int32_t)(k / q->group_size);
        free(perm);
    }
    return q;
}

/* Packs q with the library's encoder: bufs[k] holds tensor pt[k]. */
static int encode(const llmsq_qckpt_scheme *sc, const llmsq_qlinear *q, llmsq_qckpt_tensor *pt, uint8_t **bufs)
{
    int n = sc->format == LLMSQ_CKPT_GPTQ ? llmsq_gptq_tensors(sc, q, pt) : llmsq_ct_tensors(sc, q, pt);
    for (int k = 0; k < n; k++) {
        bufs[k] = malloc(pt[k].nbytes);
        llmsq_status st = sc->format == LLMSQ_CKPT_GPTQ ? llmsq_gptq_fill(sc, q, &pt[k], bufs[k])
                                                        : llmsq_ct_fill(sc, q, &pt[k], bufs[k]);
        ck_assert_int_eq(st, LLMSQ_OK);
    }
    return n;
}

static uint8_t *find_buf(const llmsq_qckpt_tensor *pt, uint8_t **bufs, int n, const char *suffix)
{
    for (int k = 0; k < n; k++)
        if (strcmp(pt[k].suffix, suffix) == 0) return bufs[k];
    return NULL;
}

static void assert_same_dequant(const llmsq_qlinear *a, const float *W, const char *what)
{
    float *ref = malloc((size_t)(a->out * a->in) * sizeof *ref);
    llmsq_qlinear_dequant(a, ref);
    for (int64_t k = 0; k < a->out * a->in; k++)
        ck_assert_msg(memcmp(&ref[k], &W[k], 4) == 0, "%s: element [%lld, %lld]: %.9g vs %.9g", what,
                      (long long)(k / a->in), (long long)(k % a->in), (double)ref[k], (double)W[k]);
    free(ref);
}

/* ---- packing against the decoder --------------------------------------------------------------- */

typedef struct pcase {
    llmsq_ckpt_format fmt;
    int b;
    int64_t out, in, G;
    bool sym, act;
} pcase;

static const pcase k_cases[] = {
    {LLMSQ_CKPT_GPTQ, 2, 16, 48, 20, false, true},  {LLMSQ_CKPT_GPTQ, 3, 32, 64, 24, false, false},
    {LLMSQ_CKPT_GPTQ, 3, 64, 96, -1, true, false},  {LLMSQ_CKPT_GPTQ, 3, 32, 128, 32, true, true},
    {LLMSQ_CKPT_GPTQ, 4, 24, 40, 16, false, true},  {LLMSQ_CKPT_GPTQ, 4, 8, 56, -1, false, false},
    {LLMSQ_CKPT_GPTQ, 8, 12, 36, 10, true, true},   {LLMSQ_CKPT_GPTQ, 8, 4, 20, -1, false, false},
    {LLMSQ_CKPT_COMPRESSED_TENSORS, 4, 13, 37, 8, false, true},
    {LLMSQ_CKPT_COMPRESSED_TENSORS, 4, 7, 64, -1, true, false},
    {LLMSQ_CKPT_COMPRESSED_TENSORS, 8, 9, 30, 7, false, false},
    {LLMSQ_CKPT_COMPRESSED_TENSORS, 8, 5, 11, 4, true, true},
};

START_TEST(test_pack_vs_decoder)
{
    const pcase *c = &k_cases[_i];
    uint64_t seed = 1000 + (uint64_t)_i, rng = seed;
    llmsq_qlinear *q = rand_q(&rng, c->out, c->in, c->b, c->G, c->sym, c->act, c->fmt == LLMSQ_CKPT_GPTQ ? 1 : 0);
    llmsq_qckpt_scheme sc = {.format = c->fmt, .bits = c->b, .group_size = c->G, .sym = c->sym, .act_order = c->act,
                             .g_idx = c->act && c->G != -1, .scale_dtype = LLMSQ_DTYPE_F16};
    llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
    uint8_t *bufs[LLMSQ_QCKPT_MAX_TENSORS];
    int n = encode(&sc, q, pt, bufs);
    float *W = malloc((size_t)(c->out * c->in) * sizeof *W);
    if (c->fmt == LLMSQ_CKPT_GPTQ) {
        ck_assert_int_eq(n, 4);
        ck_assert_int_eq(pt[0].shape[0], c->in * c->b / 32);
        gptq_decode(c->b, c->out, c->in, find_buf(pt, bufs, n, "qweight"), find_buf(pt, bufs, n, "qzeros"),
                    find_buf(pt, bufs, n, "scales"), find_buf(pt, bufs, n, "g_idx"), W);
    } else {
        ct_decode(c->b, c->out, c->in, c->G == -1 ? c->in : c->G, find_buf(pt, bufs, n, "weight_packed"),
                  find_buf(pt, bufs, n, "weight_scale"), find_buf(pt, bufs, n, "weight_zero_point"),
                  find_buf(pt, bufs, n, "weight_g_idx"), W);
        ck_assert(c->sym == (find_buf(pt, bufs, n, "weight_zero_point") == NULL));
    }
    char what[64];
    snprintf(what, sizeof what, "case %d (seed %llu)", _i, (unsigned long long)seed);
    assert_same_dequant(q, W, what);

    /* The importer reads the same bytes back into the same linear. */
    llmsq_store *s = llmsq_store_create();
    for (int k = 0; k < n; k++) {
        char name[96];
        snprintf(name, sizeof name, "m.lin.%s", pt[k].suffix);
        ck_assert_int_eq(llmsq_store_put(s, name, pt[k].dtype, pt[k].ndim, pt[k].shape, bufs[k]), LLMSQ_OK);
        bufs[k] = NULL;
    }
    char *dir = tu_tmpdir("qck_pack");
    json_t *ign = json_pack("[s]", "lm_head");
    json_t *qc = c->fmt == LLMSQ_CKPT_GPTQ ? llmsq_gptq_config(&sc, NULL, true, false, NULL)
                                           : llmsq_ct_config(&sc, ign);
    json_decref(ign);
    json_t *root = json_pack("{s:o}", "quantization_config", qc);
    char *cfgp = tu_path(dir, "config.json");
    ck_assert_int_eq(json_dump_file(root, cfgp, 0), 0);
    ck_assert_msg(llmsq_quantized_checkpoint_import(s, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_qlinear *r = llmsq_store_get_qlinear(s, "m.lin.weight");
    ck_assert_ptr_nonnull(r);
    llmsq_qlinear_dequant(r, W);
    assert_same_dequant(q, W, what);
    ck_assert_int_eq(r->grid, c->sym ? LLMSQ_QGRID_SYM : LLMSQ_QGRID_MINMAX);
    ck_assert(r->g_idx != NULL || !sc.g_idx);
    json_decref(root);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(cfgp);
    free(dir);
    for (int k = 0; k < n; k++) free(bufs[k]);
    free(W);
    llmsq_qlinear_free(q);
}
END_TEST

/* ---- FORMATS.md's hand-worked vectors --------------------------------------------------------------- */

static uint32_t first_word(llmsq_ckpt_format fmt, int b, int64_t out, int64_t in, int code, int64_t word,
                           const char *suffix)
{
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_qlinear_create(out, in, b, -1, LLMSQ_QGRID_SYM, false, &q), LLMSQ_OK);
    for (int64_t k = 0; k < out * in; k++) q->codes[k] = (uint8_t)(code >= 0 ? code : k % in);
    for (int64_t k = 0; k < out; k++) {
        q->zeros[k] = 1 << (b - 1);
        q->scales[k] = 1;
    }
    llmsq_qckpt_scheme sc = {.format = fmt, .bits = b, .group_size = -1, .sym = true, .scale_dtype = LLMSQ_DTYPE_F16};
    llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
    uint8_t *bufs[LLMSQ_QCKPT_MAX_TENSORS];
    int n = encode(&sc, q, pt, bufs);
    uint32_t w = w32(find_buf(pt, bufs, n, suffix), word);
    for (int k = 0; k < n; k++) free(bufs[k]);
    llmsq_qlinear_free(q);
    return w;
}

START_TEST(test_vectors)
{
    /* 3-bit, 32 values of 3: qweight column 0 is words 0, 1, 2 (stride out = 32). */
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 3, 32, 32, 3, 0, "qweight"), 0xDB6DB6DBu);
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 3, 32, 32, 3, 32, "qweight"), 0xB6DB6DB6u);
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 3, 32, 32, 3, 64, "qweight"), 0x6DB6DB6Du);
    /* sym 3-bit v1 qzeros store 3 everywhere: the same three words along the row. */
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 3, 32, 32, 0, 1, "qzeros"), 0xB6DB6DB6u);
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 4, 8, 8, 0, 0, "qzeros"), 0x77777777u);
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 8, 4, 4, 0, 0, "qzeros"), 0x7F7F7F7Fu);
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_GPTQ, 2, 16, 16, 0, 0, "qzeros"), 0x55555555u);
    /* int4 codes -8..-1 (unsigned 0..7) for input columns 0..7. */
    ck_assert_uint_eq(first_word(LLMSQ_CKPT_COMPRESSED_TENSORS, 4, 1, 8, -1, 0, "weight_packed"), 0x76543210u);
    /* The decoder itself agrees with the table. */
    const uint32_t words[3] = {0xDB6DB6DBu, 0xB6DB6DB6u, 0x6DB6DB6Du};
    uint8_t bytes[12];
    for (int k = 0; k < 12; k++) bytes[k] = (uint8_t)(words[k / 4] >> (8 * (k % 4)));
    for (int j = 0; j < 32; j++) ck_assert_int_eq(gptq_field(bytes, 1, j, 3), 3);
}
END_TEST

/* ---- round trips on stories260K ------------------------------------------------------------------ */

static const char *const k_lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

/* Round to nearest on a min/max grid (zero points kept >= 1 for GPTQ v1) or a symmetric one;
 * groups follow g_idx when act. */
static void rtn_store(llmsq_store *s, int64_t n_layers, int b, int64_t G, bool sym, bool attn_only, bool act,
                      uint64_t seed)
{
    uint64_t rng = seed;
    for (int64_t l = 0; l < n_layers; l++)
        for (int k = 0; k < (attn_only ? 4 : 7); k++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, k_lin[k]);
            const llmsq_tensor *t = llmsq_store_get(s, name);
            const float *W;
            ck_assert_int_eq(llmsq_store_get_f32(s, name, &W), LLMSQ_OK);
            llmsq_qlinear *q = rand_q(&rng, t->shape[0], t->shape[1], b, G, sym, act && k == 0, 1);
            const int top = (1 << b) - 1;
            for (int64_t o = 0; o < q->out; o++)
                for (int64_t g = 0; g < q->n_groups; g++) {
                    float lo = 0, hi = 0;
                    for (int64_t i = 0; i < q->in; i++)
                        if (llmsq_qlinear_group(q, i) == g) {
                            lo = fminf(lo, W[o * q->in + i]);
                            hi = fmaxf(hi, W[o * q->in + i]);
                        }
                    float amax = fmaxf(-lo, hi), sc = sym ? amax / (float)((1 << (b - 1)) - 1) : (hi - lo) / (float)top;
                    sc = llmsq_f16_to_f32(llmsq_f32_to_f16(sc > 1e-4f ? sc : 1e-4f));
                    int z = sym ? 1 << (b - 1) : (int)fminf(fmaxf(rintf(-lo / sc), 1), (float)top);
                    q->scales[o * q->n_groups + g] = sc;
                    q->zeros[o * q->n_groups + g] = z;
                }
            for (int64_t o = 0; o < q->out; o++)
                for (int64_t i = 0; i < q->in; i++) {
                    int64_t g = o * q->n_groups + llmsq_qlinear_group(q, i);
                    float c = rintf(W[o * q->in + i] / q->scales[g]) + (float)q->zeros[g];
                    q->codes[o * q->in + i] = (uint8_t)fminf(fmaxf(c, 0), (float)top);
                }
            llmsq_store_release_f32(s, name);
            ck_assert_int_eq(llmsq_store_put_qlinear(s, name, q), LLMSQ_OK);
        }
}

/* Every weight of `orig` reads back from `dir` bit for bit (quantized ones as their dequant). */
static void assert_model_equal(llmsq_store *orig, const char *dir)
{
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(dir, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_store *s2 = llmsq_model_store(m);
    ck_assert_ptr_null(llmsq_store_get(s2, "lm_head.weight")); /* tied: omitted */
    size_t n_q = 0;
    for (size_t i = 0; i < llmsq_store_count(orig); i++) {
        const llmsq_tensor *t = llmsq_store_at(orig, i);
        const float *a, *b;
        ck_assert_msg(llmsq_store_get(s2, t->name) != NULL, "%s missing", t->name);
        ck_assert_int_eq(llmsq_store_get_f32(orig, t->name, &a), LLMSQ_OK);
        ck_assert_int_eq(llmsq_store_get_f32(s2, t->name, &b), LLMSQ_OK);
        ck_assert_msg(memcmp(a, b, (size_t)llmsq_tensor_numel(t) * 4) == 0, "%s differs", t->name);
        n_q += t->qlinear != NULL;
        ck_assert((t->qlinear != NULL) == (llmsq_store_get_qlinear(s2, t->name) != NULL));
    }
    ck_assert_uint_gt(n_q, 0);
    llmsq_model_free(m);
}

/* manifest.json lists every other file with its sha256, recomputed here in one shot. */
static void assert_manifest(const char *dir)
{
    json_t *man = tu_load_json(dir, "manifest.json"), *outs = json_object_get(man, "outputs");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(man, "flags"), "bits")), 4);
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "manifest.json") == 0) continue;
        char *p = tu_path(dir, e->d_name), *data, hex[65];
        size_t n;
        ck_assert_int_eq(llmsq_read_file(p, &data, &n), LLMSQ_OK);
        llmsq_sha256_hex(data, n, hex);
        ck_assert_str_eq(json_string_value(json_object_get(outs, e->d_name)), hex);
        files++;
        free(data);
        free(p);
    }
    closedir(d);
    ck_assert_uint_eq(json_object_size(outs), files);
    json_decref(man);
}

START_TEST(test_stories_gptq)
{
    TU_SHARED_OR_SKIP(src, "models/stories260K/hf");
    char *dir = tu_tmpdir("qck_gptq"), *model = tu_path(dir, "src"), *out = tu_path(dir, "out"), *out2 = tu_path(dir, "out2");
    char *tmp = tu_path(dir, "out.tmp");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    llmsq_quant_params qp = {.bits = 4, .group_size = 32, .damp = 0.01, .block_size = 128};
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_GPTQ, .source = model, .quant = &qp, .true_sequential = true, .manifest_json = "{\"flags\": {\"bits\": 4}}"};

    /* Every linear at 4 bits: down_proj (in 172) and gate/up (out 172) do not pack. */
    rtn_store(s, cfg.n_layers, 4, 32, false, false, false, 1);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.down_proj.weight") &&
                  strstr(llmsq_last_error(), "in_features = 172") && strstr(llmsq_last_error(), "gate_proj"),
                  "%s", llmsq_last_error());
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", model, "");

    /* Attention only, 4-bit asymmetric, act-order on q_proj: the MLP stays float. */
    s = tu_checkpoint_copy(src, model, &cfg);
    rtn_store(s, cfg.n_layers, 4, 32, false, true, true, 2);
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out);
    assert_manifest(out);
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    json_t *qc2 = tu_load_json(out, "quantize_config.json");
    ck_assert(json_equal(qc, qc2));
    ck_assert_str_eq(json_string_value(json_object_get(qc, "quant_method")), "gptq");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq");
    ck_assert_int_eq(json_integer_value(json_object_get(qc, "bits")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(qc, "group_size")), 32);
    ck_assert(json_is_false(json_object_get(qc, "sym")) && json_is_true(json_object_get(qc, "desc_act")));
    ck_assert(json_is_false(json_object_get(qc, "lm_head")) && json_is_true(json_object_get(qc, "true_sequential")));
    ck_assert(json_is_false(json_object_get(qc, "static_groups")) && json_is_real(json_object_get(qc, "damp_percent")));
    json_t *want = json_pack("[[s,s,s,s]]", "self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj");
    ck_assert(json_equal(json_object_get(qc, "modules_in_block_to_quantize"), want));
    ck_assert_int_eq(json_integer_value(json_object_get(c, "hidden_size")), 64); /* the source's fields stay */
    ck_assert(json_is_true(json_object_get(c, "tie_word_embeddings")));
    for (const char *f = "tokenizer.model"; f; f = strcmp(f, "tokenizer.model") == 0 ? "generation_config.json" : NULL) {
        char *a = tu_path(model, f), *b = tu_path(out, f), *da, *db;
        size_t na, nb;
        ck_assert_int_eq(llmsq_read_file(a, &da, &na), LLMSQ_OK);
        ck_assert_int_eq(llmsq_read_file(b, &db, &nb), LLMSQ_OK);
        ck_assert(na == nb && memcmp(da, db, na) == 0);
        free(a), free(b), free(da), free(db);
    }
    json_decref(want), json_decref(c), json_decref(qc2);

    /* Determinism, and the same model in small shards. */
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p), LLMSQ_OK);
    tu_assert_dirs_identical(out, out2, 5);
    tu_sh("rm -rf '%s'%s", out2, "");
    ck_assert_int_eq(llmsq_qckpt_write_sharded(out2, s, &cfg, &p, 60000), LLMSQ_OK);
    char *idx = tu_path(out2, "model.safetensors.index.json");
    ck_assert(tu_exists(idx) && !tu_exists(tmp));
    assert_model_equal(s, out2);
    free(idx);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s' '%s'", model, out);
    tu_sh("rm -rf '%s'%s", out2, "");

    /* 8-bit symmetric, every linear (172 = 43 * 4 packs), partial last group of down_proj. */
    s = tu_checkpoint_copy(src, model, &cfg);
    rtn_store(s, cfg.n_layers, 8, 32, true, false, false, 3);
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out);
    c = tu_load_json(out, "config.json");
    qc = json_object_get(c, "quantization_config");
    ck_assert(json_is_true(json_object_get(qc, "sym")) && !json_object_get(qc, "modules_in_block_to_quantize"));
    json_decref(c);
    llmsq_store *raw = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(raw, out), LLMSQ_OK);
    const llmsq_tensor *qz = llmsq_store_get(raw, "model.layers.3.mlp.down_proj.qzeros");
    ck_assert_ptr_nonnull(qz);
    ck_assert_int_eq(qz->shape[0], 6); /* ceil(172 / 32) */
    ck_assert_uint_eq(w32(qz->data, 5), 0x7F7F7F7Fu);
    llmsq_store_destroy(raw);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(src), free(dir), free(model), free(out), free(out2), free(tmp);
}
END_TEST

START_TEST(test_stories_ct)
{
    TU_SHARED_OR_SKIP(src, "models/stories260K/hf");
    char *dir = tu_tmpdir("qck_ct"), *model = tu_path(dir, "src"), *out = tu_path(dir, "out"), *out2 = tu_path(dir, "out2");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model, .manifest_json = "{\"flags\": {\"bits\": 4}}"};
    rtn_store(s, cfg.n_layers, 4, 32, false, false, true, 4);
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out);
    assert_manifest(out);
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    json_t *w = json_object_get(json_object_get(json_object_get(qc, "config_groups"), "group_0"), "weights");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "quant_method")), "compressed-tensors");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "format")), "pack-quantized");
    ck_assert_int_eq(json_integer_value(json_object_get(w, "num_bits")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "group_size")), 32);
    ck_assert(json_is_false(json_object_get(w, "symmetric")));
    ck_assert_str_eq(json_string_value(json_object_get(w, "strategy")), "group");
    ck_assert_str_eq(json_string_value(json_object_get(w, "actorder")), "group");
    json_t *ign = json_pack("[s]", "lm_head");
    ck_assert(json_equal(json_object_get(qc, "ignore"), ign));
    char *qcf = tu_path(out, "quantize_config.json");
    ck_assert(!tu_exists(qcf));
    free(qcf);
    json_decref(ign), json_decref(c);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p), LLMSQ_OK);
    tu_assert_dirs_identical(out, out2, 5);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s' '%s'", model, out);

    /* 8-bit per channel, symmetric: no zero points, group_size null. */
    s = tu_checkpoint_copy(src, model, &cfg);
    rtn_store(s, cfg.n_layers, 8, -1, true, false, false, 5);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    assert_model_equal(s, out);
    c = tu_load_json(out, "config.json");
    w = json_object_get(json_object_get(json_object_get(json_object_get(c, "quantization_config"), "config_groups"),
                                        "group_0"), "weights");
    ck_assert_str_eq(json_string_value(json_object_get(w, "strategy")), "channel");
    ck_assert(json_is_null(json_object_get(w, "group_size")) && json_is_true(json_object_get(w, "symmetric")));
    json_decref(c);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(src), free(dir), free(model), free(out), free(out2);
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------------------- */

/* A two-linear store (4-bit, group 16) and a source directory with a bare config.json. */
static llmsq_store *small_store(const char *dir, int zmin, char **source)
{
    *source = tu_path(dir, "src");
    tu_sh("mkdir -p '%s'%s", *source, "");
    tu_put_json(*source, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}");
    llmsq_store *s = llmsq_store_create();
    uint64_t rng = 7;
    ck_assert_int_eq(llmsq_store_put_qlinear(s, "model.layers.0.self_attn.q_proj.weight",
                                             rand_q(&rng, 16, 32, 4, 16, false, true, zmin)), LLMSQ_OK);
    ck_assert_int_eq(llmsq_store_put_qlinear(s, "model.layers.0.self_attn.k_proj.weight",
                                             rand_q(&rng, 8, 32, 4, 16, false, false, zmin)), LLMSQ_OK);
    int64_t shp[1] = {16};
    uint16_t *bias = calloc(16, 2);
    ck_assert_int_eq(llmsq_store_put(s, "model.layers.0.self_attn.q_proj.bias", LLMSQ_DTYPE_F16, 1, shp, bias), LLMSQ_OK);
    return s;
}

/* Rewrites model.safetensors of dir with tensor `drop` removed, or `reshape` given one row less. */
static void rewrite_st(const char *dir, const char *drop, const char *reshape)
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
            ts[k].shape[0]--;
            ts[k].nbytes = llmsq_dtype_nbytes(t->dtype, ts[k].shape[0] * ts[k].shape[1]);
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

START_TEST(test_bad_input)
{
    char *dir = tu_tmpdir("qck_bad"), *source, *out = tu_path(dir, "out"), *tmp = tu_path(dir, "out.tmp");
    llmsq_store *s = small_store(dir, 1, &source);
    llmsq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_GPTQ, .source = source, .true_sequential = true};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_int_eq(import_dir(out), LLMSQ_OK);

    /* out dir not empty -> ARG, nothing left behind */
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    ck_assert(!tu_exists(tmp));

    rewrite_st(out, NULL, "model.layers.0.self_attn.q_proj.qweight");
    ck_assert_int_eq(import_dir(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.self_attn.q_proj.qweight"), "%s", llmsq_last_error());
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    rewrite_st(out, "model.layers.0.self_attn.k_proj.scales", NULL);
    ck_assert_int_eq(import_dir(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.self_attn.k_proj.scales"), "%s", llmsq_last_error());

    tu_put_json(out, "config.json", "{\"quantization_config\": {\"quant_method\": \"foo-quant\", \"bits\": 4}}");
    ck_assert_int_eq(import_dir(out), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "foo-quant"), "%s", llmsq_last_error());
    tu_put_json(out, "config.json", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
             "\"marlin-24\", \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": "
             "{\"num_bits\": 4}}}}}");
    ck_assert_int_eq(import_dir(out), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "marlin-24"), "%s", llmsq_last_error());
    tu_put_json(out, "config.json", "{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
             "\"group_size\": 16, \"checkpoint_format\": \"marlin\"}}");
    ck_assert_int_eq(import_dir(out), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "marlin"), "%s", llmsq_last_error());
    tu_sh("rm -rf '%s'%s", out, "");

    /* Compressed-tensors takes 4 and 8 bits only. */
    llmsq_store *s3 = llmsq_store_create();
    uint64_t rng = 9;
    llmsq_store_put_qlinear(s3, "model.layers.0.mlp.up_proj.weight", rand_q(&rng, 32, 32, 3, -1, true, false, 0));
    p.format = LLMSQ_CKPT_COMPRESSED_TENSORS;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s3, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "up_proj") && strstr(llmsq_last_error(), "4 or 8"), "%s",
                  llmsq_last_error());
    llmsq_qlinear *mixed = rand_q(&rng, 32, 32, 4, -1, true, false, 0);
    llmsq_store_put_qlinear(s3, "model.layers.0.mlp.gate_proj.weight", mixed);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s3, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "differ in bits"), "%s", llmsq_last_error());
    llmsq_store_destroy(s3);

    /* A v1 zero point of 0 cannot be stored. */
    free(source);
    llmsq_store *s0 = small_store(dir, 0, &source);
    llmsq_qlinear *z0 = (llmsq_qlinear *)llmsq_store_get_qlinear(s0, "model.layers.0.self_attn.k_proj.weight");
    z0->zeros[3] = 0;
    p.format = LLMSQ_CKPT_GPTQ;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s0, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "k_proj") && strstr(llmsq_last_error(), "zero_min_one"), "%s",
                  llmsq_last_error());
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    llmsq_store_destroy(s0);

    /* A failure after the directory was started (a name safetensors rejects) leaves nothing. */
    int64_t one[1] = {1};
    ck_assert_int_eq(llmsq_store_put(s, "__metadata__", LLMSQ_DTYPE_F32, 1, one, calloc(1, 4)), LLMSQ_OK);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    ck_assert_msg(strstr(llmsq_last_error(), "__metadata__"), "%s", llmsq_last_error());
    ck_assert(!tu_exists(out) && !tu_exists(tmp));
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(dir), free(source), free(out), free(tmp);
}
END_TEST

/* A GPTQ v2 checkpoint as GPTQModel writes it (true zeros, desc_act g_idx, F16 bias), built here
 * with the test's own packer, reads back to the linear it was made from. */
START_TEST(test_import_v2_foreign)
{
    uint64_t rng = 11;
    const int64_t out = 16, in = 64, G = 16, ng = 4;
    llmsq_qlinear *q = rand_q(&rng, out, in, 4, G, false, true, 0);
    uint32_t *qw = calloc((size_t)(in / 8 * out), 4), *qz = calloc((size_t)(ng * out / 8), 4);
    uint16_t *sc = calloc((size_t)(ng * out), 2), *bias = calloc((size_t)out, 2);
    int32_t *gi = calloc((size_t)in, 4);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) qw[(i / 8) * out + o] |= (uint32_t)q->codes[o * in + i] << (4 * (i % 8));
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out; o++) {
            qz[g * (out / 8) + o / 8] |= (uint32_t)q->zeros[o * ng + g] << (4 * (o % 8));
            sc[g * out + o] = llmsq_f32_to_f16(q->scales[o * ng + g]);
        }
    for (int64_t i = 0; i < in; i++) gi[i] = q->g_idx[i];
    llmsq_tensor ts[5] = {
        {.name = "m.l.qweight", .dtype = LLMSQ_DTYPE_I32, .ndim = 2, .shape = {in / 8, out}, .data = qw},
        {.name = "m.l.qzeros", .dtype = LLMSQ_DTYPE_I32, .ndim = 2, .shape = {ng, out / 8}, .data = qz},
        {.name = "m.l.scales", .dtype = LLMSQ_DTYPE_F16, .ndim = 2, .shape = {ng, out}, .data = sc},
        {.name = "m.l.g_idx", .dtype = LLMSQ_DTYPE_I32, .ndim = 1, .shape = {in}, .data = gi},
        {.name = "m.l.bias", .dtype = LLMSQ_DTYPE_F16, .ndim = 1, .shape = {out}, .data = bias},
    };
    const llmsq_tensor *ptrs[5];
    for (int k = 0; k < 5; k++) {
        ts[k].nbytes = llmsq_dtype_nbytes(ts[k].dtype, ts[k].ndim == 1 ? ts[k].shape[0] : ts[k].shape[0] * ts[k].shape[1]);
        ptrs[k] = &ts[k];
    }
    char *dir = tu_tmpdir("qck_v2"), *st = tu_path(dir, "model.safetensors");
    ck_assert_int_eq(llmsq_safetensors_write(st, ptrs, 5, NULL, 0), LLMSQ_OK);
    tu_put_json(dir, "config.json", "{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 16, "
             "\"desc_act\": true, \"sym\": false, \"format\": \"gptq_v2\", \"pack_dtype\": \"int32\"}}");
    llmsq_store *s = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(s, dir), LLMSQ_OK);
    char *cfgp = tu_path(dir, "config.json");
    ck_assert_msg(llmsq_quantized_checkpoint_import(s, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    const llmsq_qlinear *r = llmsq_store_get_qlinear(s, "m.l.weight");
    ck_assert(r && r->act_order && r->g_idx);
    float *W = malloc((size_t)(out * in) * 4);
    llmsq_qlinear_dequant(r, W);
    assert_same_dequant(q, W, "gptq_v2 import");
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(W), free(cfgp), free(st), free(dir), free(qw), free(qz), free(sc), free(bias), free(gi);
    llmsq_qlinear_free(q);
}
END_TEST

/* Mixed precision as llm-compressor writes it: a regex group (8-bit) wins over the "Linear"
 * group (4-bit, group 128 wider than in = 64) for the modules it names. */
START_TEST(test_ct_multi_group)
{
    uint64_t rng = 13;
    llmsq_qlinear *a = rand_q(&rng, 8, 64, 8, -1, true, false, 0), *b = rand_q(&rng, 8, 64, 4, 128, false, false, 0);
    llmsq_qckpt_scheme sa = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .bits = 8, .group_size = -1, .sym = true,
                             .scale_dtype = LLMSQ_DTYPE_F16};
    llmsq_qckpt_scheme sb = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .bits = 4, .group_size = 128, .sym = false,
                             .scale_dtype = LLMSQ_DTYPE_F16};
    llmsq_store *s = llmsq_store_create();
    const struct { const char *mod; llmsq_qckpt_scheme *sc; llmsq_qlinear *q; } lin[2] = {
        {"model.layers.3.self_attn.q_proj", &sa, a}, {"model.layers.3.mlp.up_proj", &sb, b}};
    for (int l = 0; l < 2; l++) {
        llmsq_qckpt_tensor pt[LLMSQ_QCKPT_MAX_TENSORS];
        uint8_t *bufs[LLMSQ_QCKPT_MAX_TENSORS];
        int n = encode(lin[l].sc, lin[l].q, pt, bufs);
        for (int k = 0; k < n; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", lin[l].mod, pt[k].suffix);
            ck_assert_int_eq(llmsq_store_put(s, name, pt[k].dtype, pt[k].ndim, pt[k].shape, bufs[k]), LLMSQ_OK);
        }
    }
    char *dir = tu_tmpdir("qck_multi"), *cfgp = tu_path(dir, "config.json");
    tu_put_json(dir, "config.json", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
             "\"pack-quantized\", \"quantization_status\": \"compressed\", \"config_groups\": {"
             "\"group_1\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, \"symmetric\": false, "
             "\"strategy\": \"group\", \"group_size\": 128}},"
             "\"group_0\": {\"targets\": [\"re:.*self_attn\\\\.(q|k|v)_proj$\"], \"weights\": {\"num_bits\": 8, "
             "\"symmetric\": true, \"strategy\": \"channel\"}}}}}");
    ck_assert_msg(llmsq_quantized_checkpoint_import(s, cfgp) == LLMSQ_OK, "%s", llmsq_last_error());
    float W[8 * 64];
    for (int l = 0; l < 2; l++) {
        char name[128];
        snprintf(name, sizeof name, "%s.weight", lin[l].mod);
        const llmsq_qlinear *r = llmsq_store_get_qlinear(s, name);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->bits, lin[l].q->bits);
        llmsq_qlinear_dequant(r, W);
        assert_same_dequant(lin[l].q, W, name);
    }
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(dir), free(cfgp);
    llmsq_qlinear_free(a), llmsq_qlinear_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_ckpt");
    TCase *tc = tcase_create("pack");
    tcase_add_loop_test(tc, test_pack_vs_decoder, 0, (int)(sizeof k_cases / sizeof k_cases[0]));
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_import_v2_foreign);
    tcase_add_test(tc, test_ct_multi_group);
    suite_add_tcase(s, tc);
    tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_stories_gptq);
    tcase_add_test(tc, test_stories_ct);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
