/* Packed inference on real checkpoints of stories260K: each compressed form (W4A16, W8A8,
 * 2:4, 2:4 + int4, and a quantized checkpoint no kernel holds) is packed into the layout
 * that serves it, and its perplexity through the packed kernels equals the dequantized f32
 * evaluation within 1e-3 relative (the bar). The differences are f32 accumulation
 * order, f16 rounding of the 2:4 values, and for W8A8 the int8 activation rounding: an
 * activation within an ulp of a rounding boundary may land on the other int8 value when the
 * upstream f32 sums were added in another order (measured 2.4e-4 relative, against ~1e-8
 * for the weight-only layouts). */
#include "testutil.h"

#include "llmsq/eval.h"
#include "llmsq/formats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF "models/stories260K/hf"
#define VALID "data/tinystories/valid_prefix.txt"
#define TRAIN "data/tinystories/train_prefix.txt"

static void cli(const char *args)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    ck_assert_msg(rc == 0, "llmsq %s: exit %d: %s", args, rc, err);
    free(out), free(err);
}

static double ppl_of(const llmsq_model *m, const char *valid)
{
    llmsq_ppl_params p = llmsq_ppl_default_params();
    p.seqlen = 256;
    p.max_windows = 16;
    llmsq_ppl_result r;
    ck_assert_msg(llmsq_ppl_file(m, valid, &p, &r) == LLMSQ_OK, "%s", llmsq_last_error());
    return r.ppl;
}

/* Opens ckpt both ways, checks the layout the packer chose for all 35 block linears and the
 * perplexity agreement; returns the packed model's info. */
static llmsq_model_pack_info check_ckpt(const char *ckpt, const char *valid, llmsq_plinear_kind kind, bool fallback)
{
    llmsq_model *ref, *pk;
    ck_assert_msg(llmsq_model_open(ckpt, &ref) == LLMSQ_OK, "%s", llmsq_last_error());
    ck_assert_msg(llmsq_model_open_packed(ckpt, NULL, &pk) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_model_pack_info info;
    ck_assert(llmsq_model_pack_info_get(pk, &info));
    const int64_t n = 7 * llmsq_model_config(pk)->n_layers;
    ck_assert_msg(info.linears[kind] == n, "%s: %lld of %lld linears are %s", ckpt, (long long)info.linears[kind],
                  (long long)n, llmsq_plinear_kind_name(kind, LLMSQ_DTYPE_F32));
    ck_assert_int_eq(info.fallbacks, fallback ? n : 0);
    /* no dequantized or canonical copy left behind: only the norms (F32 in the file) */
    ck_assert_uint_le(llmsq_store_resident_bytes(llmsq_model_store(pk)), info.other_bytes);
    const double a = ppl_of(ref, valid), b = ppl_of(pk, valid);
    fprintf(stderr, "%-40s %-10s ppl dequantized f32 %.6f, packed %.6f, rel diff %.2e, linear bytes %zu\n",
            strrchr(ckpt, '/') + 1, llmsq_plinear_kind_name(kind, LLMSQ_DTYPE_F32), a, b, fabs(b - a) / a,
            info.linear_bytes);
    ck_assert_msg(fabs(b - a) <= 1e-3 * a, "%s: packed ppl %.6f vs %.6f", ckpt, b, a);
    llmsq_model_free(ref);
    llmsq_model_free(pk);
    return info;
}

START_TEST(test_packed_ppl_matches_dequantized)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(valid, VALID);
    TU_SHARED_OR_SKIP(train, TRAIN);
    char *dir = tu_tmpdir("packed");
    char a[8192], p[4096];

    /* W4A16 (f16 scales; the GPTQ format cannot hold stories260K's 172-wide MLP) */
    snprintf(a, sizeof a, "quantize --model %s --method rtn --bits 4 --group-size 32 --scale-dtype f16 --quiet "
             "--out %s/w4", model, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/w4", dir);
    llmsq_model_pack_info w4 = check_ckpt(p, valid, LLMSQ_PLINEAR_W4, false);
    const int64_t params = 5 * (4 * 64 * 64 + 3 * 64 * 172); /* stories260K block linears */
    ck_assert_msg(w4.linear_bytes * 5 < (size_t)params * 4, "int4 bytes %zu", w4.linear_bytes);
    ck_assert_int_eq(w4.matmuls, 5 * 4); /* q/k/v and gate/up stacked */

    /* k_proj left in float: q/k/v cannot share a layout, so they run as three matmuls */
    snprintf(a, sizeof a, "quantize --model %s --method rtn --bits 4 --group-size 32 --scale-dtype f16 "
             "--ignore 'self_attn\\.k_proj' --quiet --out %s/mixed", model, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/mixed", dir);
    llmsq_model *mixed;
    ck_assert_msg(llmsq_model_open_packed(p, NULL, &mixed) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_model_pack_info mi;
    ck_assert(llmsq_model_pack_info_get(mixed, &mi));
    ck_assert_int_eq(mi.linears[LLMSQ_PLINEAR_W4], 30);
    ck_assert_int_eq(mi.linears[LLMSQ_PLINEAR_DENSE], 5);
    ck_assert_int_eq(mi.matmuls, 5 * 6);
    llmsq_model_free(mixed);

    /* the same weights in compressed-tensors keep f32 scales (an f32 model): no kernel
     * holds them, so they stay dense with their exact dequantized values */
    snprintf(a, sizeof a, "quantize --model %s --method rtn --bits 4 --group-size 32 --quiet --out %s/ct", model, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/ct", dir);
    llmsq_model_pack_info ct = check_ckpt(p, valid, LLMSQ_PLINEAR_DENSE, true);
    ck_assert_ptr_nonnull(strstr(ct.fallback, "f16"));

    /* W8A8, dynamic per-token activations */
    snprintf(a, sizeof a, "quantize --model %s --method w8a8 --quiet --out %s/w8", model, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/w8", dir);
    check_ckpt(p, valid, LLMSQ_PLINEAR_W8, false);

    /* 2:4 in f32 (values become f16 in the sparse layout), then 2:4 + int4 */
    snprintf(a, sizeof a, "prune --model %s --method wanda --nm 2:4 --calib %s --nsamples 8 --seqlen 128 --quiet "
             "--out %s/s24", model, train, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/s24", dir);
    check_ckpt(p, valid, LLMSQ_PLINEAR_S24, false);
    snprintf(a, sizeof a, "quantize --model %s/s24 --method rtn --bits 4 --group-size 32 --scale-dtype f16 --quiet "
             "--out %s/s24w4", dir, dir);
    cli(a);
    snprintf(p, sizeof p, "%s/s24w4", dir);
    check_ckpt(p, valid, LLMSQ_PLINEAR_S24W4, false);
    free(dir), free(model), free(valid), free(train);
}
END_TEST

/* The unquantized model: F32 dense layouts by default (the checkpoint's dtype), F16 and BF16
 * on request; perplexity within the rounding those dtypes imply. */
START_TEST(test_packed_dense_dtypes)
{
    TU_SHARED_OR_SKIP(model, HF);
    TU_SHARED_OR_SKIP(valid, VALID);
    llmsq_model *ref;
    ck_assert_msg(llmsq_model_open(model, &ref) == LLMSQ_OK, "%s", llmsq_last_error());
    const double base = ppl_of(ref, valid);
    llmsq_model_free(ref);
    const llmsq_dtype dts[3] = {LLMSQ_DTYPE_COUNT, LLMSQ_DTYPE_F16, LLMSQ_DTYPE_BF16};
    /* f32: accumulation order only; f16 (11-bit significand) and bf16 (8-bit) weight rounding */
    const double tol[3] = {1e-5, 1e-3, 1e-2};
    for (int i = 0; i < 3; i++) {
        llmsq_pack_opts o = llmsq_pack_default_opts();
        o.dense_dtype = dts[i];
        llmsq_model *m;
        ck_assert_msg(llmsq_model_open_packed(model, &o, &m) == LLMSQ_OK, "%s", llmsq_last_error());
        llmsq_model_pack_info info;
        ck_assert(llmsq_model_pack_info_get(m, &info));
        ck_assert_int_eq(info.linears[LLMSQ_PLINEAR_DENSE], 35);
        ck_assert_int_eq(info.dense_dtype, i == 0 ? LLMSQ_DTYPE_F32 : dts[i]);
        const double pp = ppl_of(m, valid);
        fprintf(stderr, "dense %-5s ppl %.6f vs f32 reference %.6f (rel %.2e)\n",
                llmsq_plinear_kind_name(LLMSQ_PLINEAR_DENSE, info.dense_dtype), pp, base, fabs(pp - base) / base);
        ck_assert_msg(fabs(pp - base) <= tol[i] * base, "dtype %d: %.6f vs %.6f", i, pp, base);
        llmsq_model_free(m);
    }
    free(model), free(valid);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("packed_model");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_packed_ppl_matches_dequantized);
    tcase_add_test(tc, test_packed_dense_dtypes);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
