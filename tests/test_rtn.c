/* Round-to-nearest quantization against an independent scalar reference (quant/rtn.c, grid.c). */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* ---- seeded data ------------------------------------------------------------------------ */


/* Weights with the awkward cases: rows that are all non-negative (the SYM quirk), all
 * non-positive, one all-zero stretch, outliers, and plain Gaussian rows. */
static float *make_weights(int64_t out, int64_t in)
{
    float *W = malloc((size_t)(out * in) * sizeof *W);
    ck_assert_ptr_nonnull(W);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double x = 0.05 * tu_nrand();
            if (o % 5 == 1) x = fabs(x);
            if (o % 5 == 2) x = -fabs(x);
            if (o % 5 == 3 && i >= in / 3 && i < in / 3 + 40) x = 0;
            if (tu_urand() < 0.01) x *= 20;
            W[o * in + i] = (float)x;
        }
    return W;
}

/* ---- independent scalar reference ---------------------------------------------------------- */

static float f16_round(double s) { return llmsq_f16_to_f32(llmsq_f32_to_f16((float)s)); }

/* Spacing of f16 values around x > 0 (subnormals: 2^-24). */
static double f16_ulp(double x)
{
    int e;
    frexp(x, &e); /* x in [2^(e-1), 2^e) */
    return e - 1 < -14 ? 0x1p-24 : ldexp(1.0, e - 1 - 10);
}

static float ref_scale(double s) /* f16, with the documented underflow floor */
{
    float r = f16_round(s);
    return r == 0.0f ? 0x1p-24f : r;
}

/* grid.h's recipe, written out again in plain double arithmetic. */
static void ref_fit(llmsq_qgrid grid, int bits, bool zmo, const float *w, int64_t n, float *s, int32_t *z)
{
    const int maxq = (1 << bits) - 1, mid = 1 << (bits - 1);
    double mn = w[0], mx = w[0];
    for (int64_t i = 1; i < n; i++) {
        if (w[i] < mn) mn = w[i];
        if (w[i] > mx) mx = w[i];
    }
    double lo = mn < 0 ? mn : 0, hi = mx > 0 ? mx : 0;
    if (grid == LLMSQ_QGRID_MINMAX) {
        if (lo == hi) {
            *s = 1;
            *z = zmo ? 1 : 0;
            return;
        }
        *s = ref_scale((hi - lo) / maxq);
        double zz = nearbyint(-lo / *s);
        zz = zz < 0 ? 0 : zz > maxq ? maxq : zz;
        if (zmo && zz == 0) {
            *s = ref_scale(hi / (maxq - 1));
            zz = 1;
        }
        *z = (int32_t)zz;
    } else if (grid == LLMSQ_QGRID_SYM) {
        double amax = -lo > hi ? -lo : hi;
        double l2 = lo < 0 ? -amax : 0;
        *s = amax == 0 ? 1.0f : ref_scale((amax - l2) / maxq);
        *z = mid;
    } else {
        double amax = fabs(mn) > fabs(mx) ? fabs(mn) : fabs(mx);
        *s = amax == 0 ? 1.0f : ref_scale(amax / (mid - 1));
        *z = mid;
    }
}

static int ref_code(double w, double s, int32_t z, int maxq)
{
    double q = nearbyint(w / s) + z;
    return q < 0 ? 0 : q > maxq ? maxq : (int)q;
}

typedef struct ref_q {
    uint8_t *codes;
    float   *scales;
    int32_t *zeros;
    int64_t  G, ng;
} ref_q;

static ref_q ref_rtn(const float *W, int64_t out, int64_t in, const llmsq_quant_params *p)
{
    ref_q r;
    r.G = p->group_size == -1 || p->group_size > in ? in : p->group_size;
    r.ng = (in + r.G - 1) / r.G;
    r.codes = malloc((size_t)(out * in));
    r.scales = malloc((size_t)(out * r.ng) * sizeof(float));
    r.zeros = malloc((size_t)(out * r.ng) * sizeof(int32_t));
    for (int64_t o = 0; o < out; o++)
        for (int64_t g = 0; g < r.ng; g++) {
            int64_t c0 = g * r.G, c1 = c0 + r.G < in ? c0 + r.G : in;
            float s;
            int32_t z;
            ref_fit(p->grid, p->bits, p->zero_min_one, W + o * in + c0, c1 - c0, &s, &z);
            r.scales[o * r.ng + g] = s;
            r.zeros[o * r.ng + g] = z;
            for (int64_t i = c0; i < c1; i++)
                r.codes[o * in + i] = (uint8_t)ref_code(W[o * in + i], s, z, (1 << p->bits) - 1);
        }
    return r;
}

static void ref_free(ref_q *r)
{
    free(r->codes);
    free(r->scales);
    free(r->zeros);
}

/* ---- tests ------------------------------------------------------------------------------ */

static const int64_t k_rows[] = {1, 3, 7, 33};
static const int64_t k_ins[] = {1, 31, 33, 172, 257};
static const int64_t k_groups[] = {1, 32, 128, -1, 50}; /* 50 divides none of k_ins except 1-wide */
static const int k_bits[] = {2, 3, 4, 8};

/* Loop index -> (grid, zero_min_one): MINMAX, MINMAX+zmo, SYM, ABSMAX. */
static void config_of(int k, llmsq_quant_params *p)
{
    *p = llmsq_quant_default_params();
    p->grid = k == 0 || k == 1 ? LLMSQ_QGRID_MINMAX : k == 2 ? LLMSQ_QGRID_SYM : LLMSQ_QGRID_ABSMAX;
    p->zero_min_one = k == 1;
}

START_TEST(test_rtn_matches_reference)
{
    llmsq_quant_params p;
    config_of(_i, &p);
    tu_rng = tu_seed_from_env() + (uint64_t)_i;
    int64_t clipped = 0, total = 0;
    for (size_t a = 0; a < sizeof k_rows / sizeof *k_rows; a++)
        for (size_t b = 0; b < sizeof k_ins / sizeof *k_ins; b++) {
            const int64_t out = k_rows[a], in = k_ins[b];
            float *W = make_weights(out, in);
            float *D = malloc((size_t)(out * in) * sizeof *D);
            for (size_t c = 0; c < sizeof k_groups / sizeof *k_groups; c++)
                for (size_t d = 0; d < sizeof k_bits / sizeof *k_bits; d++) {
                    p.group_size = k_groups[c];
                    p.bits = k_bits[d];
                    const int maxq = (1 << p.bits) - 1;
                    llmsq_qlinear *q;
                    ck_assert_int_eq(llmsq_rtn_quantize(W, out, in, &p, &q), LLMSQ_OK);
                    ref_q r = ref_rtn(W, out, in, &p);
                    ck_assert_int_eq(q->group_size, r.G);
                    ck_assert_int_eq(q->n_groups, r.ng);
                    ck_assert_ptr_null(q->g_idx);
                    for (int64_t k = 0; k < out * r.ng; k++) {
                        ck_assert_msg(q->scales[k] == r.scales[k] && q->zeros[k] == r.zeros[k],
                                      "grid %d bits %d [%lld x %lld] G %lld group %lld: (%a, %d) vs ref (%a, %d)",
                                      p.grid, p.bits, (long long)out, (long long)in, (long long)p.group_size,
                                      (long long)k, q->scales[k], q->zeros[k], r.scales[k], r.zeros[k]);
                        ck_assert_float_eq(q->scales[k], f16_round(q->scales[k])); /* f16-representable */
                        ck_assert(q->zeros[k] >= (p.zero_min_one ? 1 : 0) && q->zeros[k] <= maxq);
                    }
                    ck_assert_msg(memcmp(q->codes, r.codes, (size_t)(out * in)) == 0,
                                  "codes differ: grid %d bits %d [%lld x %lld] G %lld", p.grid, p.bits,
                                  (long long)out, (long long)in, (long long)p.group_size);
                    /* Reconstruction: within s/2 wherever the code is not at a clamp. */
                    llmsq_qlinear_dequant(q, D);
                    for (int64_t o = 0; o < out; o++)
                        for (int64_t i = 0; i < in; i++) {
                            const int64_t g = i / q->group_size;
                            const double s = q->scales[o * q->n_groups + g];
                            const double err = fabs((double)W[o * in + i] - D[o * in + i]);
                            const int code = q->codes[o * in + i];
                            total++;
                            if (code == 0 || code == maxq) {
                                clipped++;
                                /* MINMAX covers [lo, hi] up to the f16 rounding of s, which
                                 * moves the far end of the grid by at most maxq half-ulps. */
                                if (p.grid == LLMSQ_QGRID_MINMAX)
                                    ck_assert_msg(err <= 0.5 * s + maxq * 0.5 * f16_ulp(s) * (1 + 1e-9),
                                                  "clipped error %g, s %g", err, s);
                                continue;
                            }
                            ck_assert_msg(err <= 0.5 * s * (1 + 1e-12), "error %g > s/2 (s %g) at [%lld, %lld]", err,
                                          s, (long long)o, (long long)i);
                        }
                    ref_free(&r);
                    llmsq_qlinear_free(q);
                }
            free(W);
            free(D);
        }
    fprintf(stderr, "rtn config %d: %lld of %lld codes at a clamp\n", _i, (long long)clipped, (long long)total);
}
END_TEST

/* Quantizing the dequantized weights again: on the same grid the codes always come back
 * (this is how AutoGPTQ's packer recomputes them); a full re-run of RTN reproduces
 * everything for ABSMAX (normal f16 scales), and for MINMAX in every group whose grid ends are both used
 * (otherwise the refitted range shrinks, legitimately). */
START_TEST(test_rtn_idempotent)
{
    tu_rng = tu_seed_from_env() + 100;
    const int64_t out = 33, in = 257;
    float *W = make_weights(out, in), *D = malloc((size_t)(out * in) * sizeof *D);
    const llmsq_qgrid grids[] = {LLMSQ_QGRID_MINMAX, LLMSQ_QGRID_SYM, LLMSQ_QGRID_ABSMAX};
    for (int gi = 0; gi < 3; gi++)
        for (int bi = 0; bi < 4; bi++) {
            llmsq_quant_params p = llmsq_quant_default_params();
            p.grid = grids[gi];
            p.bits = k_bits[bi];
            p.group_size = 32;
            const int maxq = (1 << p.bits) - 1;
            llmsq_qlinear *q, *q2;
            ck_assert_int_eq(llmsq_rtn_quantize(W, out, in, &p, &q), LLMSQ_OK);
            llmsq_qlinear_dequant(q, D);
            for (int64_t o = 0; o < out; o++)
                for (int64_t i = 0; i < in; i++) {
                    const int64_t k = o * q->n_groups + i / 32;
                    ck_assert_int_eq(ref_code(D[o * in + i], q->scales[k], q->zeros[k], maxq), q->codes[o * in + i]);
                }
            ck_assert_int_eq(llmsq_rtn_quantize(D, out, in, &p, &q2), LLMSQ_OK);
            int64_t checked = 0;
            for (int64_t o = 0; o < out; o++)
                for (int64_t g = 0; g < q->n_groups; g++) {
                    const int64_t k = o * q->n_groups + g, c0 = g * 32, c1 = c0 + 32 < in ? c0 + 32 : in;
                    int cmin = maxq, cmax = 0;
                    for (int64_t i = c0; i < c1; i++) {
                        const int c = q->codes[o * in + i];
                        cmin = c < cmin ? c : cmin;
                        cmax = c > cmax ? c : cmax;
                    }
                    const int32_t z = q->zeros[k];
                    /* ABSMAX needs amax / s to round back to 2^(b-1) - 1, true while s has
                     * f16's 11 significant bits, not for subnormal scales. */
                    const bool ends_used = (cmin == 0 || z == 0) && (cmax == maxq || z == maxq);
                    const bool fixed = (p.grid == LLMSQ_QGRID_ABSMAX && q->scales[k] >= 0x1p-14f) ||
                                       (p.grid == LLMSQ_QGRID_MINMAX && ends_used && q->scales[k] != 1.0f);
                    if (!fixed) continue;
                    checked++;
                    ck_assert_msg(q2->scales[k] == q->scales[k] && q2->zeros[k] == q->zeros[k],
                                  "grid %d bits %d row %lld group %lld: (%a, %d) -> (%a, %d)", p.grid, p.bits,
                                  (long long)o, (long long)g, q->scales[k], z, q2->scales[k], q2->zeros[k]);
                    ck_assert(memcmp(q->codes + o * in + c0, q2->codes + o * in + c0, (size_t)(c1 - c0)) == 0);
                }
            if (p.grid != LLMSQ_QGRID_SYM) /* the property must not hold vacuously */
                ck_assert_msg(checked >= out * q->n_groups / 2, "grid %d bits %d: only %lld groups checked", p.grid,
                              p.bits, (long long)checked);
            llmsq_qlinear_free(q);
            llmsq_qlinear_free(q2);
        }
    free(W);
    free(D);
}
END_TEST

/* Hand-built ties: w / s exactly k + 0.5 rounds to the even neighbour. */
START_TEST(test_rtn_half_to_even)
{
    /* MINMAX 4-bit, range [0, 1.875]: s = 0.125 exactly, z = 0. */
    const float w1[8] = {0.0f, 1.875f, 0.3125f /* 2.5 */, 0.4375f /* 3.5 */, 0.0625f /* 0.5 */, 0.1875f /* 1.5 */,
                         1.8125f /* 14.5 */, 1.0f};
    llmsq_quant_params p = llmsq_quant_default_params();
    p.group_size = -1;
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_rtn_quantize(w1, 1, 8, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], 0.125f);
    ck_assert_int_eq(q->zeros[0], 0);
    const uint8_t want1[8] = {0, 15, 2, 4, 0, 2, 14, 8};
    for (int i = 0; i < 8; i++) ck_assert_msg(q->codes[i] == want1[i], "code %d: %d != %d", i, q->codes[i], want1[i]);
    llmsq_qlinear_free(q);

    /* ABSMAX 4-bit, amax 1.75: s = 0.25, z = 8; ties on both signs (round(w/s) + z, not
     * round(w/s + z)). */
    const float w2[6] = {1.75f, -0.625f /* -2.5 */, 0.625f /* 2.5 */, 0.875f /* 3.5 */, -0.125f /* -0.5 */,
                         -1.625f /* -6.5 */};
    p.grid = LLMSQ_QGRID_ABSMAX;
    ck_assert_int_eq(llmsq_rtn_quantize(w2, 1, 6, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], 0.25f);
    ck_assert_int_eq(q->zeros[0], 8);
    const uint8_t want2[6] = {15, 6, 10, 12, 8, 2};
    for (int i = 0; i < 6; i++) ck_assert_msg(q->codes[i] == want2[i], "code %d: %d != %d", i, q->codes[i], want2[i]);
    llmsq_qlinear_free(q);
}
END_TEST

/* Degenerate groups and the documented grid shapes. */
START_TEST(test_rtn_degenerate_groups)
{
    const float zeros[4] = {0, 0, 0, 0};
    llmsq_quant_params p = llmsq_quant_default_params();
    p.group_size = -1;
    llmsq_qlinear *q;
    ck_assert_int_eq(llmsq_rtn_quantize(zeros, 1, 4, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], 1.0f);
    ck_assert_int_eq(q->zeros[0], 0);
    ck_assert_int_eq(q->codes[3], 0);
    llmsq_qlinear_free(q);
    p.zero_min_one = true;
    ck_assert_int_eq(llmsq_rtn_quantize(zeros, 1, 4, &p, &q), LLMSQ_OK);
    ck_assert_int_eq(q->zeros[0], 1);
    ck_assert_int_eq(q->codes[0], 1);
    llmsq_qlinear_free(q);
    p.zero_min_one = false;
    p.grid = LLMSQ_QGRID_SYM;
    ck_assert_int_eq(llmsq_rtn_quantize(zeros, 1, 4, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], 1.0f);
    ck_assert_int_eq(q->zeros[0], 8);
    ck_assert_int_eq(q->codes[1], 8);
    llmsq_qlinear_free(q);

    /* SYM quirk: an all non-negative group keeps lo = 0, s = amax / 15, and values above
     * 7 s clamp at code 15 (AutoGPTQ's quantizer does the same). */
    const float pos[4] = {0.0f, 0.5f, 1.0f, 1.5f};
    ck_assert_int_eq(llmsq_rtn_quantize(pos, 1, 4, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], f16_round(1.5 / 15));
    ck_assert_int_eq(q->codes[1], 13);
    ck_assert_int_eq(q->codes[0], 8);
    ck_assert_int_eq(q->codes[3], 15);
    llmsq_qlinear_free(q);

    /* zero_min_one refit: [0, 1.4] would have z = 0; z = 1 and s = f16(1.4 / 14). */
    const float pos2[3] = {0.0f, 0.7f, 1.4f};
    p.grid = LLMSQ_QGRID_MINMAX;
    p.zero_min_one = true;
    ck_assert_int_eq(llmsq_rtn_quantize(pos2, 1, 3, &p, &q), LLMSQ_OK);
    ck_assert_int_eq(q->zeros[0], 1);
    ck_assert_float_eq(q->scales[0], f16_round((double)1.4f / 14));
    ck_assert_int_eq(q->codes[0], 1);
    ck_assert_int_eq(q->codes[2], 15);
    llmsq_qlinear_free(q);

    /* Tiny weights: the scale would underflow f16 and keeps 2^-24. */
    const float tiny[2] = {1e-9f, -2e-9f};
    p.zero_min_one = false;
    ck_assert_int_eq(llmsq_rtn_quantize(tiny, 1, 2, &p, &q), LLMSQ_OK);
    ck_assert_float_eq(q->scales[0], 0x1p-24f);
    llmsq_qlinear_free(q);
}
END_TEST

START_TEST(test_rtn_errors)
{
    float W[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    llmsq_quant_params p = llmsq_quant_default_params();
    llmsq_qlinear *q = (llmsq_qlinear *)1;

    p.group_size = 0;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_ARG);
    ck_assert_ptr_null(q);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "group size"));
    p.group_size = -2;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "-2"));
    p = llmsq_quant_default_params();
    p.bits = 5;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "bits"));
    p = llmsq_quant_default_params();
    p.grid = (llmsq_qgrid)7;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_ARG);

    p = llmsq_quant_default_params();
    p.damp = 0; /* GPTQ-only field: RTN ignores it, validate() does not */
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_OK);
    llmsq_qlinear_free(q);
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 3), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "damp"));

    p = llmsq_quant_default_params();
    W[4] = NAN;
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_NUMERIC);
    ck_assert_msg(strstr(llmsq_last_error(), "[1, 1]") != NULL, "message: %s", llmsq_last_error());
    W[4] = 0.5f;
    W[0] = 1e6f; /* scale 1e6/15 > f16 max */
    ck_assert_int_eq(llmsq_rtn_quantize(W, 2, 3, &p, &q), LLMSQ_STATUS_NUMERIC);
    ck_assert_msg(strstr(llmsq_last_error(), "row 0") != NULL, "message: %s", llmsq_last_error());
    ck_assert_ptr_null(q);
}
END_TEST

START_TEST(test_params_defaults)
{
    llmsq_quant_params p = llmsq_quant_default_params();
    ck_assert_int_eq(p.bits, 4);
    ck_assert_int_eq(p.group_size, 128);
    ck_assert_int_eq(p.grid, LLMSQ_QGRID_MINMAX);
    ck_assert_double_eq(p.damp, 0.01);
    ck_assert_int_eq(p.block_size, 128);
    ck_assert(!p.act_order && !p.static_groups && !p.zero_min_one);
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 576), LLMSQ_OK);
    p.block_size = 0;
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 576), LLMSQ_STATUS_ARG);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "block size"));
    p = llmsq_quant_default_params();
    p.damp = 1.0;
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 576), LLMSQ_STATUS_ARG);
    p.damp = NAN;
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 576), LLMSQ_STATUS_ARG);
    p = llmsq_quant_default_params();
    ck_assert_int_eq(llmsq_quant_params_validate(&p, 0), LLMSQ_STATUS_ARG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rtn");
    TCase *tc = tcase_create("rtn");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_rtn_matches_reference, 0, 4);
    tcase_add_test(tc, test_rtn_idempotent);
    tcase_add_test(tc, test_rtn_half_to_even);
    tcase_add_test(tc, test_rtn_degenerate_groups);
    tcase_add_test(tc, test_rtn_errors);
    tcase_add_test(tc, test_params_defaults);
    suite_add_tcase(s, tc);
    fprintf(stderr, "test_rtn: seed %llu (LLMSQ_TEST_SEED)\n", (unsigned long long)tu_seed_from_env());
    return tu_run_suite(s);
}
