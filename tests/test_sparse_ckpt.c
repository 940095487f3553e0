/* Sparse compressed-tensors checkpoints (FORMATS.md 4.5 sparse-bitmask / sparse-24-bitmask, 4.7
 * sparsity_config): an independent scalar decoder written from the text, hand-worked vectors,
 * random pruned matrices, round trips of a pruned stories260K through the directory writer and
 * llmsq_model_open, sparse + quantized, determinism, N:M verification on load, bad input. */
#include "testutil.h"
#include "../formats/sparse_ckpt.h" /* encoder side; never used to decode */
#include "../formats/qpack.h"       /* llmsq_qckpt_write_sharded */

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------------------------------ */

/* ---- the independent decoder (FORMATS.md 4.5, from the text) -------------------------------------- */

static float f32_at(const uint8_t *p, int64_t k)
{
    p += 4 * k;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int64_t i64_at(const uint8_t *p, int64_t k)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = v << 8 | p[8 * k + b];
    return (int64_t)v;
}

/* "bit k of byte b in row r is 1 iff element (r, 8b+k) is non-zero (little bit order)" */
static int bit(const uint8_t *bm, int64_t C, int64_t r, int64_t c)
{
    return bm[r * ((C + 7) / 8) + c / 8] >> (c % 8) & 1;
}

/* sparse-bitmask: row r's values start at row_offsets[r], in column order. */
static void dec_bitmask(int64_t R, int64_t C, const uint8_t *vals, const uint8_t *bm, const uint8_t *ro, float *W)
{
    for (int64_t r = 0; r < R; r++) {
        int64_t k = i64_at(ro, r);
        for (int64_t c = 0; c < C; c++) W[r * C + c] = bit(bm, C, r, c) ? f32_at(vals, k++) : 0.0f;
    }
}

/* sparse-24-bitmask: compressed [R, C/2] holds the kept values of each row, in column order. */
static void dec_24(int64_t R, int64_t C, const uint8_t *vals, const uint8_t *bm, float *W)
{
    for (int64_t r = 0; r < R; r++) {
        int64_t k = 0;
        for (int64_t c = 0; c < C; c++) W[r * C + c] = bit(bm, C, r, c) ? f32_at(vals, r * (C / 2) + k++) : 0.0f;
        ck_assert_int_eq(k, C / 2);
    }
}

/* Encodes W [R, C] (F32) in fmt with the library's encoder: bufs[kind] (malloc'd). */
static void encode(int fmt, float *W, int64_t R, int64_t C, uint8_t *bufs[4], llmsq_sparse_tensor pt[4], int *n)
{
    llmsq_tensor t = {.name = "m.weight", .dtype = LLMSQ_DTYPE_F32, .ndim = 2, .shape = {R, C}, .data = W,
                      .nbytes = (size_t)(R * C) * 4};
    ck_assert_msg(llmsq_sparse_tensors(fmt, &t, pt, n) == LLMSQ_OK, "%s", llmsq_last_error());
    for (int i = 0; i < 4; i++) bufs[i] = NULL;
    for (int i = 0; i < *n; i++) {
        bufs[pt[i].kind] = malloc(pt[i].nbytes ? pt[i].nbytes : 1);
        ck_assert_int_eq(llmsq_sparse_fill(fmt, &t, &pt[i], bufs[pt[i].kind]), LLMSQ_OK);
    }
}

/* ---- hand-worked vectors --------------------------------------------------------------------------- */

/* W = [[0, 1.5, 0, 0, -2, 0, 0, 3],
 *      [4, 0,   0, 0,  0, 0, 5, 6]]
 * sparse-bitmask: row 0 nonzeros at columns 1, 4, 7 -> 0b10010010 = 0x92; row 1 at 0, 6, 7 ->
 * 0b11000001 = 0xC1; compressed [1.5, -2, 3, 4, 5, 6]; row_offsets [0, 3]; shape [2, 8].
 * sparse-24-bitmask (kept: the nonzeros, then the first zeros of the group): row 0 groups keep
 * {0, 1} and {4, 7} -> 0b10010011 = 0x93, values [0, 1.5, -2, 3]; row 1 keeps {0, 1} and {6, 7} ->
 * 0b11000011 = 0xC3, values [4, 0, 5, 6]; shape [[2], [8]]. */
static const float k_W[16] = {0, 1.5f, 0, 0, -2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 5, 6};

START_TEST(test_vectors)
{
    float W[16], D[16];
    uint8_t *b[4];
    llmsq_sparse_tensor pt[4];
    int n;
    memcpy(W, k_W, sizeof W);
    encode(LLMSQ_SPARSE_BITMASK, W, 2, 8, b, pt, &n);
    ck_assert_int_eq(n, 4);
    const float cv[6] = {1.5f, -2, 3, 4, 5, 6};
    ck_assert_int_eq(pt[0].shape[0], 6);
    for (int i = 0; i < 6; i++) ck_assert(f32_at(b[LLMSQ_SPK_COMPRESSED], i) == cv[i]);
    ck_assert_uint_eq(b[LLMSQ_SPK_BITMASK][0], 0x92);
    ck_assert_uint_eq(b[LLMSQ_SPK_BITMASK][1], 0xC1);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_ROW_OFFSETS], 0), 0);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_ROW_OFFSETS], 1), 3);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_SHAPE], 0), 2);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_SHAPE], 1), 8);
    dec_bitmask(2, 8, b[LLMSQ_SPK_COMPRESSED], b[LLMSQ_SPK_BITMASK], b[LLMSQ_SPK_ROW_OFFSETS], D);
    ck_assert(memcmp(D, W, sizeof W) == 0);
    for (int i = 0; i < 4; i++) free(b[i]);

    encode(LLMSQ_SPARSE_24_BITMASK, W, 2, 8, b, pt, &n);
    ck_assert_int_eq(n, 3);
    ck_assert(pt[0].ndim == 2 && pt[0].shape[0] == 2 && pt[0].shape[1] == 4);
    ck_assert(pt[2].ndim == 2 && pt[2].shape[0] == 2 && pt[2].shape[1] == 1 && pt[2].dtype == LLMSQ_DTYPE_I64);
    const float c24[8] = {0, 1.5f, -2, 3, 4, 0, 5, 6};
    for (int i = 0; i < 8; i++) ck_assert(f32_at(b[LLMSQ_SPK_COMPRESSED], i) == c24[i]);
    ck_assert_uint_eq(b[LLMSQ_SPK_BITMASK][0], 0x93);
    ck_assert_uint_eq(b[LLMSQ_SPK_BITMASK][1], 0xC3);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_SHAPE], 0), 2);
    ck_assert_int_eq(i64_at(b[LLMSQ_SPK_SHAPE], 1), 8);
    dec_24(2, 8, b[LLMSQ_SPK_COMPRESSED], b[LLMSQ_SPK_BITMASK], D);
    ck_assert(memcmp(D, W, sizeof W) == 0);
    for (int i = 0; i < 4; i++) free(b[i]);

    /* Three nonzeros in a group of four, and a width not a multiple of 4: refused, named. */
    W[2] = 7, W[3] = 8;
    llmsq_tensor t = {.name = "x.weight", .dtype = LLMSQ_DTYPE_F32, .ndim = 2, .shape = {2, 8}, .data = W, .nbytes = 64};
    ck_assert_int_eq(llmsq_sparse_tensors(LLMSQ_SPARSE_24_BITMASK, &t, pt, &n), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "x.weight") && strstr(llmsq_last_error(), "row 0"), "%s", llmsq_last_error());
    ck_assert_int_eq(llmsq_sparse_tensors(LLMSQ_SPARSE_BITMASK, &t, pt, &n), LLMSQ_OK);
    t.shape[0] = 4, t.shape[1] = 4 - 2; /* [4, 2] */
    ck_assert_int_eq(llmsq_sparse_tensors(LLMSQ_SPARSE_24_BITMASK, &t, pt, &n), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "multiple of 4"), "%s", llmsq_last_error());
}
END_TEST

/* Random pruned matrices (odd widths, empty rows, all-zero groups) through the encoder and the
 * test's decoder. */
START_TEST(test_random)
{
    uint64_t rng = 42;
    for (int it = 0; it < 40; it++) {
        const bool two4 = it % 2;
        int64_t R = 1 + (int64_t)(tu_lcg_next(&rng) % 9), C = two4 ? 4 * (1 + (int64_t)(tu_lcg_next(&rng) % 9))
                                                                  : 1 + (int64_t)(tu_lcg_next(&rng) % 37);
        float *W = malloc((size_t)(R * C) * 4), *D = malloc((size_t)(R * C) * 4);
        for (int64_t i = 0; i < R * C; i++) W[i] = ((float)(tu_lcg_next(&rng) % 2001) - 1000.0f) / 128.0f;
        if (two4) {
            for (int64_t g = 0; g < R * C; g += 4) { /* keep 0, 1 or 2 of 4 at random places */
                int keep = (int)(tu_lcg_next(&rng) % 3);
                int a = (int)(tu_lcg_next(&rng) % 4), b2 = (a + 1 + (int)(tu_lcg_next(&rng) % 3)) % 4;
                for (int j = 0; j < 4; j++)
                    if (!((keep >= 1 && j == a) || (keep == 2 && j == b2))) W[g + j] = 0;
            }
        } else {
            for (int64_t i = 0; i < R * C; i++)
                if (tu_lcg_next(&rng) % 2) W[i] = 0;
            if (R > 2)
                for (int64_t c = 0; c < C; c++) W[C + c] = 0; /* an empty row */
        }
        uint8_t *b[4];
        llmsq_sparse_tensor pt[4];
        int n;
        int fmt = two4 ? LLMSQ_SPARSE_24_BITMASK : LLMSQ_SPARSE_BITMASK;
        encode(fmt, W, R, C, b, pt, &n);
        int64_t nnz = 0;
        for (int64_t i = 0; i < R * C; i++) nnz += W[i] != 0;
        if (two4) {
            dec_24(R, C, b[LLMSQ_SPK_COMPRESSED], b[LLMSQ_SPK_BITMASK], D);
        } else {
            ck_assert_int_eq(pt[0].shape[0], nnz);
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) ck_assert_int_eq(bit(b[1], C, r, c), W[r * C + c] != 0);
            dec_bitmask(R, C, b[LLMSQ_SPK_COMPRESSED], b[LLMSQ_SPK_BITMASK], b[LLMSQ_SPK_ROW_OFFSETS], D);
        }
        ck_assert_msg(memcmp(D, W, (size_t)(R * C) * 4) == 0, "iteration %d", it);
        /* padding bits past C stay clear */
        for (int64_t r = 0; C % 8 && r < R; r++) ck_assert_uint_eq(b[1][r * ((C + 7) / 8) + (C + 7) / 8 - 1] >> (C % 8), 0);
        for (int i = 0; i < 4; i++) free(b[i]);
        free(W), free(D);
    }
}
END_TEST

/* ---- round trips on stories260K --------------------------------------------------------------------- */

static const char *const k_lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

static int cmp_absf(const void *a, const void *b)
{
    float x = fabsf(**(float *const *)a), y = fabsf(**(float *const *)b);
    return x < y ? -1 : x > y;
}

/* Magnitude pruning of every block linear: 2:4 (two smallest |w| of every 4 along the input) or
 * 50% of each row. Returns the module names (static storage). */
static size_t prune_store(llmsq_store *s, int64_t n_layers, bool two4, char names[][96])
{
    size_t k = 0;
    for (int64_t l = 0; l < n_layers; l++)
        for (int j = 0; j < 7; j++) {
            char name[128];
            snprintf(names[k], 96, "model.layers.%lld.%s", (long long)l, k_lin[j]);
            snprintf(name, sizeof name, "%.96s.weight", names[k]);
            const llmsq_tensor *t = llmsq_store_get(s, name);
            const int64_t R = t->shape[0], C = t->shape[1];
            const float *src;
            ck_assert_int_eq(llmsq_store_get_f32(s, name, &src), LLMSQ_OK);
            float *W = malloc((size_t)(R * C) * 4);
            memcpy(W, src, (size_t)(R * C) * 4);
            float **ptr = malloc((size_t)C * sizeof *ptr);
            for (int64_t r = 0; r < R; r++) {
                int64_t step = two4 ? 4 : C;
                for (int64_t c0 = 0; c0 < C; c0 += step) {
                    for (int64_t c = 0; c < step; c++) ptr[c] = &W[r * C + c0 + c];
                    qsort(ptr, (size_t)step, sizeof *ptr, cmp_absf);
                    for (int64_t c = 0; c < step / 2; c++) *ptr[c] = 0.0f;
                }
            }
            free(ptr);
            int64_t shape[2] = {R, C};
            ck_assert_int_eq(llmsq_store_put(s, name, LLMSQ_DTYPE_F32, 2, shape, W), LLMSQ_OK);
            k++;
        }
    return k;
}

/* Symmetric 4-bit RTN (group 32, f16 scales) of every block linear: pruned zeros get the zero
 * point as their code. */
static void quantize_store(llmsq_store *s, char names[][96], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%.96s.weight", names[i]);
        const llmsq_tensor *t = llmsq_store_get(s, name);
        const float *W;
        ck_assert_int_eq(llmsq_store_get_f32(s, name, &W), LLMSQ_OK);
        llmsq_qlinear *q;
        ck_assert_int_eq(llmsq_qlinear_create(t->shape[0], t->shape[1], 4, 32, LLMSQ_QGRID_SYM, false, &q), LLMSQ_OK);
        for (int64_t o = 0; o < q->out; o++)
            for (int64_t g = 0; g < q->n_groups; g++) {
                float amax = 0;
                for (int64_t c = g * 32; c < q->in && c < (g + 1) * 32; c++) amax = fmaxf(amax, fabsf(W[o * q->in + c]));
                float sc = llmsq_f16_to_f32(llmsq_f32_to_f16(fmaxf(amax / 7, 1e-4f)));
                q->scales[o * q->n_groups + g] = sc;
                q->zeros[o * q->n_groups + g] = 8;
                for (int64_t c = g * 32; c < q->in && c < (g + 1) * 32; c++)
                    q->codes[o * q->in + c] = (uint8_t)fminf(fmaxf(rintf(W[o * q->in + c] / sc) + 8, 0), 15);
            }
        ck_assert_int_eq(llmsq_store_put_qlinear(s, name, q), LLMSQ_OK);
    }
}

/* Every tensor of `orig` reads back from `dir` bit for bit (quantized ones as their dequant). */
static void assert_model_equal(llmsq_store *orig, const char *dir, bool quantized)
{
    llmsq_model *m;
    ck_assert_msg(llmsq_model_open(dir, &m) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_store *s2 = llmsq_model_store(m);
    for (size_t i = 0; i < llmsq_store_count(orig); i++) {
        const llmsq_tensor *t = llmsq_store_at(orig, i);
        const float *a, *b;
        ck_assert_msg(llmsq_store_get(s2, t->name) != NULL, "%s missing", t->name);
        ck_assert_int_eq(llmsq_store_get_f32(orig, t->name, &a), LLMSQ_OK);
        ck_assert_int_eq(llmsq_store_get_f32(s2, t->name, &b), LLMSQ_OK);
        ck_assert_msg(memcmp(a, b, (size_t)llmsq_tensor_numel(t) * 4) == 0, "%s differs", t->name);
        ck_assert((t->qlinear != NULL) == (llmsq_store_get_qlinear(s2, t->name) != NULL));
        if (strstr(t->name, "mlp.down_proj")) ck_assert(quantized == (t->qlinear != NULL));
    }
    llmsq_model_free(m);
}

static llmsq_status open_status(const char *dir)
{
    llmsq_model *m = NULL;
    llmsq_status st = llmsq_model_open(dir, &m);
    if (st == LLMSQ_OK) llmsq_model_free(m);
    return st;
}

/* Overwrites `n` bytes of tensor `name` of dir/model.safetensors at byte `at` of its data. */
static void patch_tensor(const char *dir, const char *name, size_t at, const void *bytes, size_t n)
{
    llmsq_store *s = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(s, dir), LLMSQ_OK);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    ck_assert_msg(t != NULL, "%s", name);
    ck_assert_uint_le(at + n, t->nbytes);
    uint64_t off = t->file_offset + at;
    llmsq_store_destroy(s);
    char *p = tu_path(dir, "model.safetensors");
    FILE *f = fopen(p, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (long)off, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(p);
}

static void read_tensor(const char *dir, const char *name, size_t at, void *bytes, size_t n)
{
    llmsq_store *s = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(s, dir), LLMSQ_OK);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    ck_assert_msg(t != NULL, "%s", name);
    memcpy(bytes, (const uint8_t *)t->data + at, n);
    llmsq_store_destroy(s);
}

static const char *const *name_ptrs(char names[][96], size_t n)
{
    static const char *p[64];
    for (size_t i = 0; i < n; i++) p[i] = names[i];
    return p;
}

START_TEST(test_stories_24)
{
    TU_SHARED_OR_SKIP(src, "models/stories260K/hf");
    char *dir = tu_tmpdir("sp_24"), *model = tu_path(dir, "src"), *out = tu_path(dir, "out"), *out2 = tu_path(dir, "out2");
    char *dense = tu_path(dir, "dense");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    static char names[64][96];
    size_t n = prune_store(s, cfg.n_layers, true, names);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model,
                                 .sparse_format = LLMSQ_SPARSE_24_BITMASK, .sparse_modules = name_ptrs(names, n),
                                 .n_sparse_modules = n, .sparse_n = 2, .sparse_m = 4, .global_sparsity = 0.4};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out, false);
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    json_t *sp = json_object_get(qc, "sparsity_config");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "quant_method")), "compressed-tensors");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "format")), "sparse-24-bitmask");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "sparsity_structure")), "2:4");
    ck_assert(fabs(json_real_value(json_object_get(sp, "global_sparsity")) - 0.4) < 1e-12);
    json_t *want = json_pack("[s]", "Linear"), *ign = json_pack("[s]", "lm_head");
    ck_assert(json_equal(json_object_get(sp, "targets"), want) && json_equal(json_object_get(sp, "ignore"), ign));
    ck_assert_uint_eq(json_object_size(json_object_get(qc, "config_groups")), 0);
    json_decref(want), json_decref(ign), json_decref(c);

    /* The raw tensors: no .weight for pruned modules; shapes per 4.5; decoded by the test. */
    llmsq_store *raw = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(raw, out), LLMSQ_OK);
    ck_assert_ptr_null(llmsq_store_get(raw, "model.layers.0.mlp.down_proj.weight"));
    const llmsq_tensor *cp = llmsq_store_get(raw, "model.layers.0.mlp.down_proj.compressed"),
                       *bm = llmsq_store_get(raw, "model.layers.0.mlp.down_proj.bitmask"),
                       *shp = llmsq_store_get(raw, "model.layers.0.mlp.down_proj.shape");
    ck_assert(cp && bm && shp);
    ck_assert(cp->dtype == LLMSQ_DTYPE_F32 && cp->shape[0] == 64 && cp->shape[1] == 86);
    ck_assert(bm->dtype == LLMSQ_DTYPE_U8 && bm->shape[0] == 64 && bm->shape[1] == 22);
    ck_assert(shp->dtype == LLMSQ_DTYPE_I64 && shp->ndim == 2 && shp->shape[0] == 2 && shp->shape[1] == 1);
    float *D = malloc(64 * 172 * 4);
    dec_24(64, 172, cp->data, bm->data, D);
    const float *W;
    ck_assert_int_eq(llmsq_store_get_f32(s, "model.layers.0.mlp.down_proj.weight", &W), LLMSQ_OK);
    ck_assert(memcmp(W, D, 64 * 172 * 4) == 0);
    free(D);
    llmsq_store_destroy(raw);

    /* Determinism; inspect reports the sparsity. */
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p), LLMSQ_OK);
    tu_assert_dirs_identical(out, out2, 3);
    char args[4200], *so = NULL, *se = NULL;
    snprintf(args, sizeof args, "inspect '%s'", out);
    ck_assert_int_eq(tu_run_cli(args, &so, &se), 0);
    ck_assert_msg(so && strstr(so, "sparsity") && strstr(so, "model.layers.4.mlp.up_proj.weight") &&
                  strstr(so, "50.00%  2:4"), "%s", so ? so : "");
    free(so), free(se);
    snprintf(args, sizeof args, "inspect '%s'", src);
    ck_assert_int_eq(tu_run_cli(args, &so, &se), 0);
    ck_assert_msg(so && !strstr(so, "sparsity"), "%s", so ? so : "");
    free(so), free(se);

    /* A flipped bitmask bit: the load fails naming the tensor and the row. */
    uint8_t byte;
    read_tensor(out, "model.layers.2.self_attn.k_proj.bitmask", 8 * 3 + 1, &byte, 1);
    byte ^= 0x10;
    patch_tensor(out, "model.layers.2.self_attn.k_proj.bitmask", 8 * 3 + 1, &byte, 1);
    ck_assert_int_eq(open_status(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.2.self_attn.k_proj.bitmask") &&
                  strstr(llmsq_last_error(), "row 3"), "%s", llmsq_last_error());

    /* Dense storage with sparsity_config 2:4; an edited value breaks it and the load says where. */
    p.sparse_format = LLMSQ_SPARSE_DENSE;
    ck_assert_msg(llmsq_quantized_checkpoint_write(dense, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, dense, false);
    c = tu_load_json(dense, "config.json");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(c, "quantization_config"),
                                                                       "sparsity_config"), "format")), "dense");
    json_decref(c);
    ck_assert_int_eq(llmsq_store_get_f32(s, "model.layers.1.mlp.gate_proj.weight", &W), LLMSQ_OK);
    int64_t zc = -1;
    for (int64_t c2 = 0; c2 < 64 && zc < 0; c2++)
        if (W[5 * 64 + c2] == 0) zc = c2;
    ck_assert_int_ge(zc, 0);
    float one = 1.0f;
    patch_tensor(dense, "model.layers.1.mlp.gate_proj.weight", (size_t)(5 * 64 + zc) * 4, &one, 4);
    ck_assert_int_eq(open_status(dense), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.1.mlp.gate_proj.weight") &&
                  strstr(llmsq_last_error(), "row 5") && strstr(llmsq_last_error(), "2:4"), "%s", llmsq_last_error());

    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(src), free(dir), free(model), free(out), free(out2), free(dense);
}
END_TEST

START_TEST(test_stories_unstructured)
{
    TU_SHARED_OR_SKIP(src, "models/stories260K/hf");
    char *dir = tu_tmpdir("sp_un"), *model = tu_path(dir, "src"), *out = tu_path(dir, "out"), *out2 = tu_path(dir, "out2");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    static char names[64][96];
    size_t n = prune_store(s, cfg.n_layers, false, names);
    /* Only the MLP of every block is listed: targets are names. */
    const char *mods[16];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strstr(names[i], "mlp.")) mods[k++] = names[i];
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model,
                                 .sparse_format = LLMSQ_SPARSE_BITMASK, .sparse_modules = mods,
                                 .n_sparse_modules = k, .global_sparsity = 0.25};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out, false);
    json_t *c = tu_load_json(out, "config.json"), *sp = json_object_get(json_object_get(c, "quantization_config"),
                                                                      "sparsity_config");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "format")), "sparse-bitmask");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "sparsity_structure")), "unstructured");
    json_t *tg = json_object_get(sp, "targets");
    ck_assert_uint_eq(json_array_size(tg), 15);
    ck_assert_str_eq(json_string_value(json_array_get(tg, 0)), "model.layers.0.mlp.down_proj");
    json_decref(c);
    llmsq_store *raw = llmsq_store_create();
    ck_assert_int_eq(llmsq_safetensors_read_dir(raw, out), LLMSQ_OK);
    ck_assert_ptr_nonnull(llmsq_store_get(raw, "model.layers.0.self_attn.q_proj.weight")); /* not listed: dense */
    const llmsq_tensor *cp = llmsq_store_get(raw, "model.layers.3.mlp.up_proj.compressed"),
                       *bm = llmsq_store_get(raw, "model.layers.3.mlp.up_proj.bitmask"),
                       *ro = llmsq_store_get(raw, "model.layers.3.mlp.up_proj.row_offsets");
    ck_assert(cp && bm && ro && cp->ndim == 1 && cp->shape[0] == 172 * 32 && ro->shape[0] == 172);
    float *D = malloc(172 * 64 * 4);
    dec_bitmask(172, 64, cp->data, bm->data, ro->data, D);
    const float *W;
    ck_assert_int_eq(llmsq_store_get_f32(s, "model.layers.3.mlp.up_proj.weight", &W), LLMSQ_OK);
    ck_assert(memcmp(W, D, 172 * 64 * 4) == 0);
    free(D);
    int64_t ro2 = i64_at(ro->data, 2);
    llmsq_store_destroy(raw);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p), LLMSQ_OK);
    tu_assert_dirs_identical(out, out2, 3);

    /* Row offsets not monotonic / inconsistent with the bitmask. */
    int64_t bad = ro2 + 5;
    uint8_t le[8];
    for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)bad >> (8 * b));
    patch_tensor(out, "model.layers.3.mlp.up_proj.row_offsets", 8, le, 8); /* row 1 starts after row 2 */
    ck_assert_int_eq(open_status(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.3.mlp.up_proj.row_offsets"), "%s", llmsq_last_error());
    /* Bitmask popcount != len(compressed). */
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    uint8_t byte;
    read_tensor(out, "model.layers.0.mlp.gate_proj.bitmask", 0, &byte, 1);
    byte ^= 1;
    patch_tensor(out, "model.layers.0.mlp.gate_proj.bitmask", 0, &byte, 1);
    ck_assert_int_eq(open_status(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.gate_proj"), "%s", llmsq_last_error());

    /* A config that claims 2:4 for an unstructured checkpoint fails on load, naming a tensor. */
    tu_sh("rm -rf '%s'%s", out, "");
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_OK);
    c = tu_load_json(out, "config.json");
    sp = json_object_get(json_object_get(c, "quantization_config"), "sparsity_config");
    json_object_set_new(sp, "sparsity_structure", json_string("2:4"));
    char *cp2 = tu_path(out, "config.json");
    ck_assert_int_eq(json_dump_file(c, cp2, JSON_INDENT(2)), 0);
    free(cp2);
    json_decref(c);
    ck_assert_int_eq(open_status(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.down_proj.weight") &&
                  strstr(llmsq_last_error(), "2:4") && strstr(llmsq_last_error(), "row "), "%s", llmsq_last_error());

    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(src), free(dir), free(model), free(out), free(out2);
}
END_TEST

START_TEST(test_stories_sparse_quant)
{
    TU_SHARED_OR_SKIP(src, "models/stories260K/hf");
    char *dir = tu_tmpdir("sp_q"), *model = tu_path(dir, "src"), *out = tu_path(dir, "out"), *out2 = tu_path(dir, "out2");
    llmsq_config cfg;
    llmsq_store *s = tu_checkpoint_copy(src, model, &cfg);
    static char names[64][96];
    size_t n = prune_store(s, cfg.n_layers, true, names);
    quantize_store(s, names, n);
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model,
                                 .sparse_format = LLMSQ_SPARSE_24_BITMASK, .sparse_modules = name_ptrs(names, n),
                                 .n_sparse_modules = n, .sparse_n = 2, .sparse_m = 4, .global_sparsity = 0.45};
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    assert_model_equal(s, out, true);
    json_t *c = tu_load_json(out, "config.json"), *qc = json_object_get(c, "quantization_config");
    ck_assert_str_eq(json_string_value(json_object_get(qc, "format")), "pack-quantized");
    json_t *sp = json_object_get(qc, "sparsity_config");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "format")), "dense");
    ck_assert_str_eq(json_string_value(json_object_get(sp, "sparsity_structure")), "2:4");
    ck_assert_uint_eq(json_object_size(json_object_get(qc, "config_groups")), 1);
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out2, s, &cfg, &p), LLMSQ_OK);
    tu_assert_dirs_identical(out, out2, 3);
    /* 1:4 is not what the quantized linears hold: the load fails on the first one. */
    json_object_set_new(sp, "sparsity_structure", json_string("1:4"));
    char *cp = tu_path(out, "config.json");
    ck_assert_int_eq(json_dump_file(c, cp, JSON_INDENT(2)), 0);
    free(cp);
    json_decref(c);
    ck_assert_int_eq(open_status(out), LLMSQ_STATUS_FORMAT);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.down_proj.weight") &&
                  strstr(llmsq_last_error(), "quantized"), "%s", llmsq_last_error());
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(src), free(dir), free(model), free(out), free(out2);
}
END_TEST

/* ---- bad input ----------------------------------------------------------------------------------- */

/* A one-linear sparse checkpoint built by hand (the hand-worked 2x8 matrix). */
static char *hand_dir(const char *dir, const char *fmt, const char *structure, bool drop_shape, int64_t ncomp,
                      uint8_t bm1, int64_t ro1)
{
    char *d = tu_path(dir, "hand");
    tu_sh("rm -rf '%s'; mkdir -p '%s'", d, d);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": "
             "\"dense\", \"config_groups\": {}, \"sparsity_config\": {\"format\": \"%s\", \"targets\": [\"Linear\"], "
             "\"ignore\": [\"lm_head\"], \"sparsity_structure\": \"%s\"}}}", fmt, structure);
    tu_put_json(d, "config.json", cfg);
    const bool two4 = strcmp(fmt, "sparse-24-bitmask") == 0;
    float c4[8] = {0, 1.5f, -2, 3, 4, 0, 5, 6}, cb[8] = {1.5f, -2, 3, 4, 5, 6, 7, 8};
    uint8_t bm[2] = {two4 ? 0x93 : 0x92, bm1};
    int64_t ro[2] = {0, ro1}, shp[2] = {2, 8};
    llmsq_tensor t[4] = {
        {.name = "l.compressed", .dtype = LLMSQ_DTYPE_F32, .ndim = two4 ? 2 : 1, .shape = {two4 ? 2 : ncomp, 4},
         .data = two4 ? c4 : cb},
        {.name = "l.bitmask", .dtype = LLMSQ_DTYPE_U8, .ndim = 2, .shape = {2, 1}, .data = bm, .nbytes = 2},
        {.name = "l.shape", .dtype = LLMSQ_DTYPE_I64, .ndim = two4 ? 2 : 1, .shape = {2, 1}, .data = shp, .nbytes = 16},
        {.name = "l.row_offsets", .dtype = LLMSQ_DTYPE_I64, .ndim = 1, .shape = {2}, .data = ro, .nbytes = 16},
    };
    t[0].nbytes = two4 ? 32 : (size_t)ncomp * 4;
    const llmsq_tensor *ptrs[4] = {&t[0], &t[1], &t[2], &t[3]};
    size_t n = two4 ? 3 : 4;
    if (drop_shape) ptrs[2] = ptrs[--n];
    char *p = tu_path(d, "model.safetensors");
    ck_assert_int_eq(llmsq_safetensors_write(p, ptrs, n, NULL, 0), LLMSQ_OK);
    free(p);
    return d;
}

static llmsq_status import_dir(const char *dir, llmsq_store **keep)
{
    llmsq_store *s = llmsq_store_create();
    llmsq_status st = llmsq_safetensors_read_dir(s, dir);
    char *cfg = tu_path(dir, "config.json");
    if (st == LLMSQ_OK) st = llmsq_quantized_checkpoint_import(s, cfg);
    free(cfg);
    if (keep && st == LLMSQ_OK) *keep = s;
    else llmsq_store_destroy(s);
    return st;
}

START_TEST(test_bad_input)
{
    char *dir = tu_tmpdir("sp_bad");
    llmsq_store *s;
    /* The hand-worked checkpoints read back to the matrix. */
    for (int two4 = 0; two4 < 2; two4++) {
        char *d = hand_dir(dir, two4 ? "sparse-24-bitmask" : "sparse-bitmask", two4 ? "2:4" : "unstructured", false, 6,
                           two4 ? 0xC3 : 0xC1, 3);
        ck_assert_msg(import_dir(d, &s) == LLMSQ_OK, "%s", llmsq_last_error());
        const llmsq_tensor *w = llmsq_store_get(s, "l.weight");
        ck_assert(w && w->dtype == LLMSQ_DTYPE_F32 && w->shape[0] == 2 && w->shape[1] == 8);
        ck_assert(memcmp(w->data, k_W, sizeof k_W) == 0);
        llmsq_store_destroy(s);
        free(d);
    }
    struct {
        const char *fmt, *structure;
        bool        drop;
        int64_t     ncomp;
        uint8_t     bm1;
        int64_t     ro1;
        llmsq_status want;
        const char *needle;
    } cases[] = {
        {"sparse-bitmask", "unstructured", false, 5, 0xC1, 3, LLMSQ_STATUS_FORMAT, "l.compressed"},  /* popcount 6 */
        {"sparse-bitmask", "unstructured", false, 6, 0xC3, 3, LLMSQ_STATUS_FORMAT, "l.compressed"},  /* popcount 7 */
        {"sparse-bitmask", "unstructured", false, 6, 0xC1, -1, LLMSQ_STATUS_FORMAT, "not monotonic"},
        {"sparse-bitmask", "unstructured", false, 6, 0xC1, 2, LLMSQ_STATUS_FORMAT, "l.row_offsets"},
        {"sparse-bitmask", "unstructured", true, 6, 0xC1, 3, LLMSQ_STATUS_FORMAT, "l.shape"},
        {"sparse-bitmask", "1:4", false, 6, 0xC1, 3, LLMSQ_STATUS_FORMAT, "row 0"},
        {"sparse-bitmask", "3:2", false, 6, 0xC1, 3, LLMSQ_STATUS_FORMAT, "3:2"},
        {"sparse-24-bitmask", "2:4", false, 0, 0xC7, 0, LLMSQ_STATUS_FORMAT, "row 1"},
        {"sparse-24-bitmask", "2:4", false, 0, 0x43, 0, LLMSQ_STATUS_FORMAT, "l.bitmask"},
        {"marlin-24", "2:4", false, 0, 0xC3, 0, LLMSQ_STATUS_UNSUPPORTED, "marlin-24"},
        {"dense", "2:4", false, 6, 0xC1, 3, LLMSQ_STATUS_FORMAT, "l.bitmask"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = hand_dir(dir, cases[i].fmt, cases[i].structure, cases[i].drop, cases[i].ncomp, cases[i].bm1,
                           cases[i].ro1);
        ck_assert_msg(import_dir(d, NULL) == cases[i].want, "case %zu: %s", i, llmsq_last_error());
        ck_assert_msg(strstr(llmsq_last_error(), cases[i].needle), "case %zu: %s", i, llmsq_last_error());
        free(d);
    }
    /* Random garbage in every byte of the bitmask never crashes. */
    uint64_t rng = 3;
    for (int it = 0; it < 64; it++) {
        char *d = hand_dir(dir, it % 2 ? "sparse-24-bitmask" : "sparse-bitmask", it % 4 < 2 ? "2:4" : "unstructured",
                           false, (int64_t)(tu_lcg_next(&rng) % 8), (uint8_t)tu_lcg_next(&rng), (int64_t)(tu_lcg_next(&rng) % 9) - 2);
        llmsq_status st = import_dir(d, NULL);
        ck_assert(st == LLMSQ_OK || st == LLMSQ_STATUS_FORMAT);
        free(d);
    }

    /* Writer: bad parameters. */
    char *out = tu_path(dir, "out"), *source = tu_path(dir, "src");
    tu_sh("mkdir -p '%s'%s", source, "");
    tu_put_json(source, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}");
    llmsq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    s = llmsq_store_create();
    float *W = malloc(sizeof k_W);
    memcpy(W, k_W, sizeof k_W);
    int64_t shp[2] = {2, 8};
    ck_assert_int_eq(llmsq_store_put(s, "model.layers.0.mlp.up_proj.weight", LLMSQ_DTYPE_F32, 2, shp, W), LLMSQ_OK);
    const char *mods[] = {"model.layers.0.mlp.up_proj"}, *nosuch[] = {"model.layers.0.mlp.nope"};
    llmsq_ckpt_write_params p = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = source,
                                 .sparse_format = LLMSQ_SPARSE_24_BITMASK, .sparse_modules = mods, .n_sparse_modules = 1};
    p.sparse_n = 3, p.sparse_m = 2;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    ck_assert_msg(strstr(llmsq_last_error(), "3:2"), "%s", llmsq_last_error());
    p.sparse_n = 4, p.sparse_m = 8;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    p.sparse_n = 2, p.sparse_m = 4;
    p.global_sparsity = 1.5;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    p.global_sparsity = 0.5;
    p.sparse_modules = nosuch;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    ck_assert_msg(strstr(llmsq_last_error(), "mlp.nope"), "%s", llmsq_last_error());
    p.sparse_modules = mods;
    p.format = LLMSQ_CKPT_GPTQ;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    p.format = LLMSQ_CKPT_COMPRESSED_TENSORS;
    p.sparse_format = LLMSQ_SPARSE_NONE;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_ARG);
    ck_assert_msg(strstr(llmsq_last_error(), "no quantized linear"), "%s", llmsq_last_error());
    p.sparse_format = LLMSQ_SPARSE_24_BITMASK;
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    tu_sh("rm -rf '%s'%s", out, "");
    /* A third nonzero in a group: 2:4 refused (24-bitmask and dense alike), naming the tensor. */
    W[2] = 9, W[3] = 9;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_msg(strstr(llmsq_last_error(), "model.layers.0.mlp.up_proj.weight") && strstr(llmsq_last_error(), "row 0"),
                  "%s", llmsq_last_error());
    p.sparse_format = LLMSQ_SPARSE_DENSE;
    ck_assert_int_eq(llmsq_quantized_checkpoint_write(out, s, &cfg, &p), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert(!tu_exists(out));
    p.sparse_format = LLMSQ_SPARSE_BITMASK, p.sparse_n = p.sparse_m = 0;
    ck_assert_msg(llmsq_quantized_checkpoint_write(out, s, &cfg, &p) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_store *s2;
    ck_assert_msg(import_dir(out, &s2) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert(memcmp(llmsq_store_get(s2, "model.layers.0.mlp.up_proj.weight")->data, W, sizeof k_W) == 0);
    llmsq_store_destroy(s2);
    llmsq_store_destroy(s);
    tu_sh("rm -rf '%s'%s", dir, "");
    free(dir), free(out), free(source);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sparse_ckpt");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_stories_24);
    tcase_add_test(tc, test_stories_unstructured);
    tcase_add_test(tc, test_stories_sparse_quant);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
