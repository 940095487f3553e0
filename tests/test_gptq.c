/* GPTQ against a scalar reference (quant/gptq.c). */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* ---- seeded data ------------------------------------------------------------------------ */


static float *make_weights(int64_t out, int64_t in)
{
    float *W = malloc((size_t)(out * in) * sizeof *W);
    ck_assert_ptr_nonnull(W);
    for (int64_t k = 0; k < out * in; k++) W[k] = (float)(0.05 * tu_nrand() * (tu_urand() < 0.01 ? 10 : 1));
    return W;
}

static double *dup_h(const double *H, int64_t n)
{
    double *c = malloc((size_t)(n * n) * sizeof *c);
    memcpy(c, H, (size_t)(n * n) * sizeof *c);
    return c;
}

/* ---- scalar reference: the plain column loop of the paper, full H^-1, no BLAS ----------- */

static float f16_round(double s)
{
    float r = llmsq_f16_to_f32(llmsq_f32_to_f16((float)s));
    return r == 0.0f ? 0x1p-24f : r;
}

static void ref_fit(const llmsq_quant_params *p, const double *w, int64_t n, float *s, int32_t *z)
{
    const int maxq = (1 << p->bits) - 1, mid = 1 << (p->bits - 1);
    double mn = w[0], mx = w[0];
    for (int64_t i = 1; i < n; i++) {
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    const double lo = mn < 0 ? mn : 0, hi = mx > 0 ? mx : 0;
    if (p->grid == LLMSQ_QGRID_MINMAX) {
        if (lo == hi) {
            *s = 1;
            *z = p->zero_min_one;
            return;
        }
        *s = f16_round((hi - lo) / maxq);
        double zz = nearbyint(-lo / *s);
        zz = zz < 0 ? 0 : zz > maxq ? maxq : zz;
        if (p->zero_min_one && zz == 0) {
            *s = f16_round(hi / (maxq - 1));
            zz = 1;
        }
        *z = (int32_t)zz;
    } else if (p->grid == LLMSQ_QGRID_SYM) {
        const double amax = -lo > hi ? -lo : hi;
        *s = amax == 0 ? 1.0f : f16_round((amax - (lo < 0 ? -amax : 0)) / maxq);
        *z = mid;
    } else {
        const double amax = fabs(mn) > fabs(mx) ? fabs(mn) : fabs(mx);
        *s = amax == 0 ? 1.0f : f16_round(amax / (mid - 1));
        *z = mid;
    }
}

static int ref_code(double w, double s, int32_t z, int maxq)
{
    const double q = nearbyint(w / s) + z;
    return q < 0 ? 0 : q > maxq ? maxq : (int)q;
}

typedef struct ref_out {
    uint8_t *codes;  /* [out, in] */
    float   *scales; /* [out, ng] */
    int32_t *zeros;
    int32_t *g_idx;  /* [in] */
    int64_t  G, ng;
    double   loss;
} ref_out;

static void ref_free(ref_out *r)
{
    free(r->codes);
    free(r->scales);
    free(r->zeros);
    free(r->g_idx);
}

static ref_out ref_gptq(const float *W, int64_t out, int64_t n, const double *H0, const llmsq_quant_params *p)
{
    ref_out r = {0};
    r.G = p->group_size == -1 || p->group_size > n ? n : p->group_size;
    r.ng = (n + r.G - 1) / r.G;
    r.codes = malloc((size_t)(out * n));
    r.scales = calloc((size_t)(out * r.ng), sizeof *r.scales);
    r.zeros = calloc((size_t)(out * r.ng), sizeof *r.zeros);
    r.g_idx = malloc((size_t)n * sizeof *r.g_idx);
    double *H = dup_h(H0, n), *Wd = malloc((size_t)(out * n) * sizeof *Wd);
    for (int64_t k = 0; k < out * n; k++) Wd[k] = W[k];
    double mean = 0;
    for (int64_t j = 0; j < n; j++) {
        if (H[j * n + j] == 0) {
            H[j * n + j] = 1;
            for (int64_t o = 0; o < out; o++) Wd[o * n + j] = 0;
        }
        mean += H[j * n + j];
    }
    mean /= (double)n;
    if (p->static_groups)
        for (int64_t o = 0; o < out; o++)
            for (int64_t g = 0; g < r.ng; g++) {
                const int64_t c0 = g * r.G, c1 = c0 + r.G < n ? c0 + r.G : n;
                ref_fit(p, Wd + o * n + c0, c1 - c0, &r.scales[o * r.ng + g], &r.zeros[o * r.ng + g]);
            }
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    for (int64_t j = 0; j < n; j++) perm[j] = j;
    if (p->act_order) /* stable insertion sort by decreasing diagonal */
        for (int64_t j = 1; j < n; j++) {
            const int64_t v = perm[j];
            int64_t k = j;
            for (; k > 0 && H[perm[k - 1] * n + perm[k - 1]] < H[v * n + v]; k--) perm[k] = perm[k - 1];
            perm[k] = v;
        }
    double *A = malloc((size_t)(n * n) * sizeof *A), *L = calloc((size_t)(n * n), sizeof *L);
    double *Li = calloc((size_t)(n * n), sizeof *Li), *U = calloc((size_t)(n * n), sizeof *U);
    double *Wp = malloc((size_t)(out * n) * sizeof *Wp);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) A[a * n + b] = H[perm[a] * n + perm[b]];
    for (int64_t o = 0; o < out; o++)
        for (int64_t a = 0; a < n; a++) Wp[o * n + a] = Wd[o * n + perm[a]];
    for (int64_t a = 0; a < n; a++) A[a * n + a] += p->damp * mean;
    /* Cholesky A = L L^T */
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
        ck_assert_msg(d > 0, "reference Cholesky failed at %lld", (long long)j);
        L[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = s / L[j * n + j];
        }
    }
    /* L^-1 by forward substitution, then H^-1 = L^-T L^-1 into A */
    for (int64_t c = 0; c < n; c++)
        for (int64_t i = c; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int64_t k = c; k < i; k++) s -= L[i * n + k] * Li[k * n + c];
            Li[i * n + c] = s / L[i * n + i];
        }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = i > j ? i : j; k < n; k++) s += Li[k * n + i] * Li[k * n + j];
            A[i * n + j] = s;
        }
    /* upper Cholesky H^-1 = U^T U */
    for (int64_t i = 0; i < n; i++) {
        double d = A[i * n + i];
        for (int64_t k = 0; k < i; k++) d -= U[k * n + i] * U[k * n + i];
        U[i * n + i] = sqrt(d);
        for (int64_t j = i + 1; j < n; j++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < i; k++) s -= U[k * n + i] * U[k * n + j];
            U[i * n + j] = s / U[i * n + i];
        }
    }
    const int maxq = (1 << p->bits) - 1;
    /* The reference code fits a group on its outer W, which holds every earlier block's
     * update but none of the current block's (those go to a copy): Snap is W as the block of
     * block_size columns containing j began. */
    double *Snap = malloc((size_t)(out * n) * sizeof *Snap);
    for (int64_t j = 0; j < n; j++) {
        if (j % p->block_size == 0) memcpy(Snap, Wp, (size_t)(out * n) * sizeof *Snap);
        for (int64_t o = 0; o < out; o++) {
            double *w = Wp + o * n;
            int64_t g = p->static_groups ? perm[j] / r.G : j / r.G;
            if (!p->static_groups && j % r.G == 0)
                ref_fit(p, Snap + o * n + j, (j + r.G < n ? j + r.G : n) - j, &r.scales[o * r.ng + g],
                        &r.zeros[o * r.ng + g]);
            const double s = r.scales[o * r.ng + g];
            const int32_t z = r.zeros[o * r.ng + g];
            const int c = ref_code(w[j], s, z, maxq);
            r.codes[o * n + perm[j]] = (uint8_t)c;
            const double diff = w[j] - s * (c - z), e = diff / U[j * n + j];
            r.loss += diff * diff / (U[j * n + j] * U[j * n + j]) / 2;
            for (int64_t k = j + 1; k < n; k++) w[k] -= e * U[j * n + k];
        }
    }
    free(Snap);
    for (int64_t j = 0; j < n; j++)
        r.g_idx[perm[j]] = (int32_t)((p->act_order && !p->static_groups ? j : perm[j]) / r.G);
    free(H);
    free(Wd);
    free(perm);
    free(A);
    free(L);
    free(Li);
    free(U);
    free(Wp);
    return r;
}

/* The library and the reference differ only in the order floating-point updates are summed
 * (lazy GEMMs, tiled factorization through the reversed matrix): updated weights agree to a
 * few ulps. A code can differ only where a weight sits within those ulps of a rounding
 * boundary (or a group extreme sits at an f16 rounding boundary of its scale): we allow
 * 0.1% of the codes (at least 1), each off by one step, and count them. In practice 0. */
static int64_t compare(const llmsq_qlinear *q, const ref_out *r, const llmsq_quant_params *p, const char *what)
{
    const int64_t out = q->out, n = q->in;
    ck_assert_int_eq(q->group_size, r->G);
    ck_assert_int_eq(q->n_groups, r->ng);
    ck_assert_int_eq(q->act_order, p->act_order);
    ck_assert_int_eq(q->g_idx != NULL, p->act_order);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(llmsq_qlinear_group(q, i), r->g_idx[i]);
    int64_t bad_codes = 0, bad_groups = 0;
    for (int64_t k = 0; k < out * n; k++) {
        const int d = (int)q->codes[k] - (int)r->codes[k];
        if (d == 0) continue;
        bad_codes++;
        ck_assert_msg(d == 1 || d == -1, "%s: code [%lld, %lld] %d vs reference %d", what, (long long)(k / n),
                      (long long)(k % n), q->codes[k], r->codes[k]);
    }
    for (int64_t k = 0; k < out * r->ng; k++) {
        ck_assert_float_eq(q->scales[k], llmsq_f16_to_f32(llmsq_f32_to_f16(q->scales[k])));
        if (q->scales[k] != r->scales[k] || q->zeros[k] != r->zeros[k]) bad_groups++;
    }
    const int64_t allow_codes = out * n / 1000 > 1 ? out * n / 1000 : 1;
    const int64_t allow_groups = out * r->ng / 1000 > 1 ? out * r->ng / 1000 : 1;
    fprintf(stderr, "%s: %lld/%lld codes and %lld/%lld groups differ from the reference\n", what, (long long)bad_codes,
            (long long)(out * n), (long long)bad_groups, (long long)(out * r->ng));
    ck_assert_msg(bad_codes <= allow_codes, "%s: %lld codes differ", what, (long long)bad_codes);
    ck_assert_msg(bad_groups <= allow_groups, "%s: %lld groups differ", what, (long long)bad_groups);
    return bad_codes;
}

/* ---- tests -------------------------------------------------------------------------------- */

typedef struct gcase {
    const char *name;
    int64_t     out, in, group, block;
    int         bits;
    llmsq_qgrid grid;
    bool        act, stat, zmo;
} gcase;

static const gcase k_cases[] = {
    {"minmax4 G32 block24", 13, 100, 32, 24, 4, LLMSQ_QGRID_MINMAX, false, false, false},
    {"minmax4 G32 block24 act", 13, 100, 32, 24, 4, LLMSQ_QGRID_MINMAX, true, false, false},
    {"minmax4 G32 block24 act static", 13, 100, 32, 24, 4, LLMSQ_QGRID_MINMAX, true, true, false},
    {"sym3 per-channel block16 act", 9, 77, -1, 16, 3, LLMSQ_QGRID_SYM, true, false, false},
    {"minmax2 G20 block>in zmo", 11, 90, 20, 128, 2, LLMSQ_QGRID_MINMAX, false, false, true},
    {"absmax8 G7 block10 act", 5, 61, 7, 10, 8, LLMSQ_QGRID_ABSMAX, true, false, false},
    {"minmax4 G128 block128 act tiles", 70, 300, 128, 128, 4, LLMSQ_QGRID_MINMAX, true, false, false},
    {"sym4 G16 block40 static", 17, 130, 16, 40, 4, LLMSQ_QGRID_SYM, false, true, false},
    {"minmax3 G50 block37 act", 40, 257, 50, 37, 3, LLMSQ_QGRID_MINMAX, true, false, false},
    {"minmax4 G16 block64 tall (32-row chunks)", 520, 64, 16, 64, 4, LLMSQ_QGRID_MINMAX, false, false, false},
};

START_TEST(test_gptq_matches_reference)
{
    const gcase *c = &k_cases[_i];
    tu_rng = tu_seed_from_env() + 1000 * (uint64_t)_i;
    const int64_t dead[2] = {5, c->in - 2};
    float *W = make_weights(c->out, c->in);
    double *H = tu_random_hessian(c->in, 2 * c->in + 16, dead, 2), *Hs = dup_h(H, c->in);
    llmsq_quant_params p = llmsq_quant_default_params();
    p.bits = c->bits;
    p.group_size = c->group;
    p.block_size = c->block;
    p.grid = c->grid;
    p.act_order = c->act;
    p.static_groups = c->stat;
    p.zero_min_one = c->zmo;
    ref_out r = ref_gptq(W, c->out, c->in, H, &p);
    llmsq_qlinear *q;
    llmsq_gptq_stats st;
    ck_assert_int_eq(llmsq_gptq_quantize(W, c->out, c->in, Hs, &p, &q, &st), LLMSQ_OK);
    ck_assert_int_eq(st.dead_cols, 2);
    ck_assert_int_eq(st.damp_raises, 0);
    ck_assert_double_eq(st.damp_used, p.damp);
    const int64_t bad = compare(q, &r, &p, c->name);
    if (bad == 0) ck_assert_double_eq_tol(st.loss, r.loss, 1e-9 * r.loss);
    /* dead columns dequantize to exactly 0 */
    for (int64_t o = 0; o < c->out; o++) {
        const int64_t g = llmsq_qlinear_group(q, dead[0]);
        ck_assert_int_eq(q->codes[o * c->in + dead[0]], q->zeros[o * q->n_groups + g]);
    }
    ref_free(&r);
    llmsq_qlinear_free(q);
    free(W);
    free(H);
    free(Hs);
}
END_TEST

/* Same bytes with 1, 2 and 3 threads: several factorization tiles and row chunks, then one
 * tile row and one chunk (regions that run on one thread, BLAS calls still serial). */
START_TEST(test_gptq_thread_independent)
{
    tu_rng = tu_seed_from_env() + 7 + (uint64_t)_i;
    const int64_t out = _i == 0 ? 100 : 12, in = _i == 0 ? 300 : 200, dead[1] = {17};
    float *W = make_weights(out, in);
    double *H = tu_random_hessian(in, 400, dead, 1);
    llmsq_quant_params p = llmsq_quant_default_params();
    p.group_size = 32;
    p.block_size = 50;
    p.act_order = _i == 0;
    llmsq_qlinear *q[3];
    llmsq_gptq_stats st[3];
    for (int t = 0; t < 3; t++) {
        llmsq_threads_set(t + 1);
        double *Hs = dup_h(H, in);
        ck_assert_int_eq(llmsq_gptq_quantize(W, out, in, Hs, &p, &q[t], &st[t]), LLMSQ_OK);
        free(Hs);
    }
    for (int t = 1; t < 3; t++) {
        ck_assert(memcmp(q[0]->codes, q[t]->codes, (size_t)(out * in)) == 0);
        ck_assert(memcmp(q[0]->scales, q[t]->scales, (size_t)(out * q[0]->n_groups) * sizeof(float)) == 0);
        ck_assert(memcmp(q[0]->zeros, q[t]->zeros, (size_t)(out * q[0]->n_groups) * sizeof(int32_t)) == 0);
        if (p.act_order) ck_assert(memcmp(q[0]->g_idx, q[t]->g_idx, (size_t)in * sizeof(int32_t)) == 0);
        ck_assert(memcmp(&st[0].loss, &st[t].loss, sizeof(double)) == 0);
        llmsq_qlinear_free(q[t]);
    }
    llmsq_qlinear_free(q[0]);
    free(W);
    free(H);
}
END_TEST

/* trace((W - Q) H (W - Q)^T): the layer-output error GPTQ minimizes. */
static double output_error(const float *W, const llmsq_qlinear *q, const double *H)
{
    const int64_t out = q->out, n = q->in;
    float *D = malloc((size_t)(out * n) * sizeof *D);
    double *e = malloc((size_t)n * sizeof *e), tot = 0;
    llmsq_qlinear_dequant(q, D);
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < n; i++) e[i] = (double)W[o * n + i] - D[o * n + i];
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += H[i * n + j] * e[j];
            tot += e[i] * s;
        }
    }
    free(D);
    free(e);
    return tot;
}

/* GPTQ minimizes the layer-output error greedily, so it must not lose to RTN. One
 * exception is measured and only printed: at 2 bits with small groups (16, 32) and no
 * act-order, a group's grid is fitted before the error updates from its own columns
 * arrive, those updates then clip at 4 levels, and over 20 seeds GPTQ averaged 1.02x
 * RTN's error (worst 1.3x) on this fixture; with act-order or one group per row it is
 * 0.4-0.8x. Every other configuration is asserted. */
START_TEST(test_gptq_beats_rtn)
{
    tu_rng = tu_seed_from_env() + 11;
    const int64_t out = 64, in = 128;
    float *W = make_weights(out, in);
    double *H = tu_random_hessian(in, 256, NULL, 0);
    for (int bits = 2; bits <= 4; bits++)
        for (int k = 0; k < 4; k++) {
            llmsq_quant_params p = llmsq_quant_default_params();
            p.bits = bits;
            p.group_size = k < 2 ? 32 : -1;
            p.act_order = k % 2;
            const bool asserted = !(bits == 2 && p.group_size == 32 && !p.act_order);
            llmsq_qlinear *qr, *qg;
            double *Hs = dup_h(H, in);
            ck_assert_int_eq(llmsq_rtn_quantize(W, out, in, &p, &qr), LLMSQ_OK);
            ck_assert_int_eq(llmsq_gptq_quantize(W, out, in, Hs, &p, &qg, NULL), LLMSQ_OK);
            const double er = output_error(W, qr, H), eg = output_error(W, qg, H);
            fprintf(stderr, "bits %d G %lld act %d: output error GPTQ %.4g, RTN %.4g (ratio %.3f)%s\n", bits,
                    (long long)p.group_size, p.act_order, eg, er, eg / er, asserted ? "" : " (not asserted)");
            if (asserted) ck_assert_msg(eg <= er, "bits %d G %lld act %d: GPTQ %g > RTN %g", bits,
                                        (long long)p.group_size, p.act_order, eg, er);
            free(Hs);
            llmsq_qlinear_free(qr);
            llmsq_qlinear_free(qg);
        }
    free(W);
    free(H);
}
END_TEST

START_TEST(test_gptq_damp_raise)
{
    const float W[8] = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.25f, 0.15f, -0.1f};
    llmsq_quant_params p = llmsq_quant_default_params();
    p.group_size = -1;
    llmsq_qlinear *q;
    llmsq_gptq_stats st;

    /* Indefinite (eigenvalues -2 and 4 in the first block, mean diagonal 1): damp 0.01,
     * 0.1 and 1 fail, 10 succeeds. */
    double H1[16] = {1, 3, 0, 0, 3, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    ck_assert_int_eq(llmsq_gptq_quantize(W, 2, 4, H1, &p, &q, &st), LLMSQ_OK);
    ck_assert_int_eq(st.damp_raises, 3);
    ck_assert_double_eq_tol(st.damp_used, 10.0, 1e-12);
    llmsq_qlinear_free(q);

    /* Singular (rank 1) with a dampening below the rounding of its diagonal: the first
     * factorization meets an exact zero pivot. */
    double H2[16];
    for (int k = 0; k < 16; k++) H2[k] = 1.0;
    p.damp = 1e-17;
    ck_assert_int_eq(llmsq_gptq_quantize(W, 2, 4, H2, &p, &q, &st), LLMSQ_OK);
    ck_assert_int_ge(st.damp_raises, 1);
    ck_assert_double_eq_tol(st.damp_used, 1e-17 * pow(10, st.damp_raises), 1e-12 * st.damp_used);
    for (int64_t k = 0; k < q->out * q->n_groups; k++) ck_assert(isfinite(q->scales[k]));
    llmsq_qlinear_free(q);

    /* Beyond the raise limit. */
    double H3[4] = {1, 1e12, 1e12, 1};
    p.damp = 0.01;
    q = (llmsq_qlinear *)1;
    ck_assert_int_eq(llmsq_gptq_quantize(W, 4, 2, H3, &p, &q, &st), LLMSQ_STATUS_NUMERIC);
    ck_assert_ptr_null(q);
    ck_assert_msg(strstr(llmsq_last_error(), "positive definite") != NULL, "%s", llmsq_last_error());

    /* NaN in H, a negative mean diagonal, a non-finite weight. */
    double H4[4] = {1, 0, NAN, 1};
    ck_assert_int_eq(llmsq_gptq_quantize(W, 4, 2, H4, &p, &q, &st), LLMSQ_STATUS_NUMERIC);
    ck_assert_msg(strstr(llmsq_last_error(), "[1, 0]") != NULL, "%s", llmsq_last_error());
    double H5[4] = {-1, 0, 0, -1};
    ck_assert_int_eq(llmsq_gptq_quantize(W, 4, 2, H5, &p, &q, &st), LLMSQ_STATUS_NUMERIC);
    float Wn[4] = {0.1f, 0.2f, INFINITY, 0.3f};
    double H6[4] = {1, 0, 0, 1};
    ck_assert_int_eq(llmsq_gptq_quantize(Wn, 2, 2, H6, &p, &q, &st), LLMSQ_STATUS_NUMERIC);
    ck_assert_msg(strstr(llmsq_last_error(), "[1, 0]") != NULL, "%s", llmsq_last_error());
}
END_TEST

/* All-dead H (no activations reached the layer): every weight becomes 0. */
START_TEST(test_gptq_all_dead)
{
    const float W[6] = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.25f};
    double H[9] = {0};
    llmsq_quant_params p = llmsq_quant_default_params();
    llmsq_qlinear *q;
    llmsq_gptq_stats st;
    ck_assert_int_eq(llmsq_gptq_quantize(W, 2, 3, H, &p, &q, &st), LLMSQ_OK);
    ck_assert_int_eq(st.dead_cols, 3);
    float D[6];
    llmsq_qlinear_dequant(q, D);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(D[k], 0.0f);
    llmsq_qlinear_free(q);
}
END_TEST

START_TEST(test_gptq_bad_params)
{
    const float W[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    double H[4] = {1, 0, 0, 1};
    llmsq_qlinear *q = (llmsq_qlinear *)1;
    struct {
        int64_t group;
        int bits;
        double damp;
        int64_t block;
        const char *word;
    } bad[] = {
        {0, 4, 0.01, 128, "group size"}, {-2, 4, 0.01, 128, "group size"}, {128, 5, 0.01, 128, "bits"},
        {128, 4, 0.0, 128, "damp"},      {128, 4, 1.5, 128, "damp"},       {128, 4, 0.01, 0, "block size"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        llmsq_quant_params p = llmsq_quant_default_params();
        p.group_size = bad[k].group;
        p.bits = bad[k].bits;
        p.damp = bad[k].damp;
        p.block_size = bad[k].block;
        ck_assert_int_eq(llmsq_gptq_quantize(W, 2, 2, H, &p, &q, NULL), LLMSQ_STATUS_ARG);
        ck_assert_ptr_null(q);
        ck_assert_msg(strstr(llmsq_last_error(), bad[k].word) != NULL, "case %zu: %s", k, llmsq_last_error());
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gptq");
    TCase *tc = tcase_create("gptq");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_gptq_matches_reference, 0, (int)(sizeof k_cases / sizeof *k_cases));
    tcase_add_loop_test(tc, test_gptq_thread_independent, 0, 2);
    tcase_add_test(tc, test_gptq_beats_rtn);
    tcase_add_test(tc, test_gptq_damp_raise);
    tcase_add_test(tc, test_gptq_all_dead);
    tcase_add_test(tc, test_gptq_bad_params);
    suite_add_tcase(s, tc);
    fprintf(stderr, "test_gptq: seed %llu (LLMSQ_TEST_SEED)\n", (unsigned long long)tu_seed_from_env());
    return tu_run_suite(s);
}
