/* AWQ's activation-aware scale search and clipping search for one block (awq.h), after the
 * AWQ paper (Lin et al., MLSys 2024) and AutoAWQ's quantizer: the same statistics, grids,
 * losses and folding, computed in double where they are reduced. */
#include "quant/awq.h"

#include "quant/block_io.h"
#include "quant/grid.h"
#include "llmsq/runtime.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    llmsq_block_input in;
    int               n;
    llmsq_linear_id   lin[3];
} k_groups[LLMSQ_AWQ_GROUPS] = {
    {LLMSQ_INPUT_ATTN, 3, {LLMSQ_LINEAR_Q, LLMSQ_LINEAR_K, LLMSQ_LINEAR_V}},
    {LLMSQ_INPUT_O, 1, {LLMSQ_LINEAR_O}},
    {LLMSQ_INPUT_MLP, 2, {LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP}},
    {LLMSQ_INPUT_DOWN, 1, {LLMSQ_LINEAR_DOWN}}};

/* Float copies of the block tensors AWQ rewrites. */
typedef struct awq_block {
    llmsq_model *m;
    int64_t      layer, L, N;
    float       *W[LLMSQ_LINEAR_COUNT];
    int64_t      rows[LLMSQ_LINEAR_COUNT], cols[LLMSQ_LINEAR_COUNT];
    float       *attn_norm, *ffn_norm, *bv, *bu; /* bv/bu NULL without biases */
    llmsq_block_acts acts;
} awq_block;

static void block_free(awq_block *b)
{
    for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) free(b->W[i]);
    free(b->attn_norm), free(b->ffn_norm), free(b->bv), free(b->bu);
    llmsq_block_acts_free(&b->acts);
}

/* Wq [out, in] = Q(W) dequantized with the quantizer of p (RTN on p's grid). */
static llmsq_status fake_quant(const float *W, int64_t out, int64_t in, const llmsq_quant_params *p, float *Wq)
{
    llmsq_qlinear *q;
    LLMSQ_TRY(llmsq_rtn_quantize(W, out, in, p, &q));
    llmsq_qlinear_dequant(q, Wq);
    llmsq_qlinear_free(q);
    return LLMSQ_OK;
}

/* Y [rows, out] = X [rows, in] W^T (+ bias), one window per thread (single-threaded BLAS) so
 * the bytes do not depend on the thread count. */
static void linear_windows(const float *X, int64_t N, int64_t L, int64_t in, const float *W, const float *bias,
                           int64_t out, float *Y)
{
#pragma omp parallel for schedule(static, 1) if (N > 1)
    for (int64_t s = 0; s < N; s++) {
        const float *x = X + s * L * in;
        float *y = Y + s * L * out;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)L, (blasint)out, (blasint)in, 1.0f, x,
                    (blasint)in, W, (blasint)in, 0.0f, y, (blasint)out);
        if (bias)
            for (int64_t t = 0; t < L; t++)
                for (int64_t o = 0; o < out; o++) y[t * out + o] += bias[o];
    }
}

/* The output of group g's module with weights Wg[] (replacing the group's linears) on the
 * group's captured inputs: Y [N*L, d]. */
static llmsq_status module_out(const awq_block *b, int g, float *const *Wg, float *Y)
{
    const llmsq_config *c = llmsq_model_config(b->m);
    const int64_t d = c->hidden_size, N = b->N, L = b->L;
    const llmsq_block_input in = k_groups[g].in;
    const float *X = b->acts.X[in];
    const int64_t w = b->acts.width[in];
    llmsq_layer_weights lw = *llmsq_model_layer(b->m, b->layer);
    if (g == LLMSQ_AWQ_O) {
        linear_windows(X, N, L, w, Wg[0], lw.bo, d, Y);
        return LLMSQ_OK;
    }
    if (g == LLMSQ_AWQ_DOWN) {
        linear_windows(X, N, L, w, Wg[0], lw.bd, d, Y);
        return LLMSQ_OK;
    }
    if (g == LLMSQ_AWQ_QKV) lw.wq = Wg[0], lw.wk = Wg[1], lw.wv = Wg[2];
    else lw.wg = Wg[0], lw.wu = Wg[1];
    llmsq_status *sts = calloc((size_t)N, sizeof *sts);
    if (!sts) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
#pragma omp parallel for schedule(static, 1) if (N > 1)
    for (int64_t s = 0; s < N; s++)
        sts[s] = g == LLMSQ_AWQ_QKV ? llmsq_attn_forward(b->m, &lw, X + s * L * w, L, Y + s * L * d)
                                    : llmsq_mlp_forward(b->m, &lw, X + s * L * w, L, Y + s * L * d);
    llmsq_status st = LLMSQ_OK;
    for (int64_t s = 0; s < N && st == LLMSQ_OK; s++) st = sts[s];
    free(sts);
    return st == LLMSQ_OK ? st : llmsq_error(st, "layer %lld: AWQ module forward failed", (long long)b->layer);
}

/* Mean squared difference of A and B [n], summed in fixed-size chunks in order. */
static double mse(const float *A, const float *B, int64_t n)
{
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
        double part = 0;
        const int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
        for (int64_t i = i0; i < i1; i++) part += ((double)A[i] - B[i]) * ((double)A[i] - B[i]);
        total += part;
    }
    return total / (double)n;
}

/* Channel j's class: o_proj input channels of query heads that share a key/value head are
 * tied to that head's v_proj row (GQA); every other group has one class per channel. */
static int64_t tie_class(const llmsq_config *c, int g, int64_t j)
{
    if (g != LLMSQ_AWQ_O) return j;
    const int64_t hd = c->head_dim, per_kv = c->n_heads / c->n_kv_heads;
    return (j / hd / per_kv) * hd + j % hd;
}

/* Scales at one ratio: per tie class r, sc[r] = x^a / (w^(1-a) + 1e-4) (duo) or x^a, clamped to
 * >= 1e-4 and normalised by sqrt(max * min), non-finite ones replaced by 1 (plain: all 1); then
 * expanded to the channels, s [n]. xc, wc [ncls] are the class means of x_mean and w_mean. */
static void ratio_scales(const llmsq_config *c, int g, const double *xc, const double *wc, int64_t ncls, int64_t n,
                         double ratio, bool duo, bool plain, double *sc, float *s)
{
    double smax = 0, smin = DBL_MAX;
    for (int64_t r = 0; r < ncls; r++) {
        const double v = duo ? pow(xc[r], ratio) / (pow(wc[r], 1 - ratio) + 1e-4) : pow(xc[r], ratio);
        sc[r] = v < 1e-4 ? 1e-4 : v;
        smax = fmax(smax, sc[r]);
        smin = fmin(smin, sc[r]);
    }
    const double norm = sqrt(smax * smin);
    for (int64_t r = 0; r < ncls; r++) {
        sc[r] = plain ? 1.0 : sc[r] / norm;
        if (!isfinite(sc[r])) sc[r] = 1.0;
    }
    for (int64_t j = 0; j < n; j++) s[j] = (float)sc[tie_class(c, g, j)];
}

/* Searches group g's scales s [width] (AutoAWQ _search_best_scale / _compute_best_scale). */
static llmsq_status search_scales(const awq_block *b, int g, const llmsq_quant_params *p, float *s,
                                  llmsq_awq_layer_report *rep)
{
    const llmsq_config *c = llmsq_model_config(b->m);
    const llmsq_block_input in = k_groups[g].in;
    const int64_t n = b->acts.width[in], rows = b->acts.rows, d = c->hidden_size;
    const int64_t G = p->group_size > 0 && p->group_size < n ? p->group_size : n;
    const int64_t ncls = g == LLMSQ_AWQ_O ? c->n_kv_heads * c->head_dim : n;
    double *w_mean = calloc((size_t)n, sizeof *w_mean), *x_mean = calloc((size_t)n, sizeof *x_mean);
    double *wc = calloc((size_t)ncls, sizeof *wc), *xc = calloc((size_t)ncls, sizeof *xc);
    double *cnt = calloc((size_t)ncls, sizeof *cnt), *sc = malloc((size_t)ncls * sizeof *sc);
    float *Y0 = malloc((size_t)(rows * d) * sizeof *Y0), *Y = malloc((size_t)(rows * d) * sizeof *Y);
    float *Wq[3] = {0};
    llmsq_status st = LLMSQ_OK;
    for (int k = 0; k < k_groups[g].n; k++)
        if (!(Wq[k] = malloc((size_t)(b->rows[k_groups[g].lin[k]] * n) * sizeof(float)))) st = LLMSQ_STATUS_NOMEM;
    if (st != LLMSQ_OK || !w_mean || !x_mean || !wc || !xc || !cnt || !sc || !Y0 || !Y) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "layer %lld: out of memory for the AWQ search", (long long)b->layer);
        goto done;
    }
    /* w_mean: |w| normalised by its quantization group's max, averaged over all output rows */
    int64_t total_rows = 0;
    for (int k = 0; k < k_groups[g].n; k++) {
        const llmsq_linear_id id = k_groups[g].lin[k];
        const float *W = b->W[id];
        for (int64_t o = 0; o < b->rows[id]; o++) {
            for (int64_t c0 = 0; c0 < n; c0 += G) {
                const int64_t c1 = c0 + G < n ? c0 + G : n;
                double amax = 0;
                for (int64_t j = c0; j < c1; j++) amax = fmax(amax, fabs(W[o * n + j]));
                for (int64_t j = c0; j < c1; j++) w_mean[j] += fabs(W[o * n + j]) / (amax + 1e-6);
            }
        }
        total_rows += b->rows[id];
    }
    /* x_mean: mean |x| per channel, summed window by window in order */
    const float *X = b->acts.X[in];
    for (int64_t t = 0; t < rows; t++)
        for (int64_t j = 0; j < n; j++) x_mean[j] += fabs(X[t * n + j]);
    for (int64_t j = 0; j < n; j++) {
        const int64_t r = tie_class(c, g, j);
        wc[r] += w_mean[j] / (double)total_rows;
        xc[r] += x_mean[j] / (double)rows;
        cnt[r] += 1;
    }
    for (int64_t r = 0; r < ncls; r++) wc[r] /= cnt[r], xc[r] /= cnt[r];

    float *Worig[3];
    for (int k = 0; k < k_groups[g].n; k++) Worig[k] = b->W[k_groups[g].lin[k]];
    if ((st = module_out(b, g, Worig, Y0)) != LLMSQ_OK) goto done;

    double best = DBL_MAX;
    int best_i = -1;
    for (int i = 0; i <= p->awq_grid && st == LLMSQ_OK; i++) {
        /* i == awq_grid is not a ratio: it scores plain RTN (s = 1) for the report */
        const bool plain = i == p->awq_grid;
        const double ratio = (double)i / p->awq_grid;
        ratio_scales(c, g, xc, wc, ncls, n, ratio, p->awq_duo, plain, sc, s);
        for (int k = 0; k < k_groups[g].n && st == LLMSQ_OK; k++) {
            const llmsq_linear_id id = k_groups[g].lin[k];
            const int64_t out = b->rows[id];
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < n; j++) Wq[k][o * n + j] = b->W[id][o * n + j] * s[j];
            st = fake_quant(Wq[k], out, n, p, Wq[k]);
            for (int64_t o = 0; st == LLMSQ_OK && o < out; o++)
                for (int64_t j = 0; j < n; j++) Wq[k][o * n + j] /= s[j];
        }
        if (st == LLMSQ_OK) st = module_out(b, g, Wq, Y);
        if (st != LLMSQ_OK) break;
        const double loss = mse(Y0, Y, rows * d);
        if (plain) {
            rep->loss_plain[g] = loss;
        } else if (loss < best) {
            best = loss;
            best_i = i;
        }
    }
    if (st == LLMSQ_OK && best_i < 0)
        st = llmsq_error(LLMSQ_STATUS_NUMERIC, "layer %lld: AWQ found no finite loss for group %d", (long long)b->layer,
                         g);
    if (st == LLMSQ_OK) { /* the winner's scales */
        const double ratio = (double)best_i / p->awq_grid;
        ratio_scales(c, g, xc, wc, ncls, n, ratio, p->awq_duo, false, sc, s);
        rep->searched[g] = true;
        rep->ratio[g] = ratio;
        rep->loss[g] = best;
    }
done:
    free(w_mean), free(x_mean), free(wc), free(xc), free(cnt), free(sc), free(Y0), free(Y);
    for (int k = 0; k < 3; k++) free(Wq[k]);
    return st;
}

/* Folds group g's scales s [width]: the preceding operation divided, the group's weight
 * columns multiplied, and the captured inputs divided (the clip search sees scaled inputs). */
static void apply_scales(awq_block *b, int g, const float *s)
{
    const llmsq_config *c = llmsq_model_config(b->m);
    const llmsq_block_input in = k_groups[g].in;
    const int64_t n = b->acts.width[in];
    switch (g) {
    case LLMSQ_AWQ_QKV:
        for (int64_t j = 0; j < n; j++) b->attn_norm[j] /= s[j];
        break;
    case LLMSQ_AWQ_GATE_UP:
        for (int64_t j = 0; j < n; j++) b->ffn_norm[j] /= s[j];
        break;
    case LLMSQ_AWQ_O: { /* v_proj row r carries class r's scale */
        const int64_t kvd = c->n_kv_heads * c->head_dim, dd = b->cols[LLMSQ_LINEAR_V];
        float *sr = malloc((size_t)kvd * sizeof *sr);
        LLMSQ_ASSERT(sr);
        for (int64_t j = 0; j < n; j++) sr[tie_class(c, g, j)] = s[j];
        for (int64_t r = 0; r < kvd; r++) {
            for (int64_t k = 0; k < dd; k++) b->W[LLMSQ_LINEAR_V][r * dd + k] /= sr[r];
            if (b->bv) b->bv[r] /= sr[r];
        }
        free(sr);
        break;
    }
    case LLMSQ_AWQ_DOWN: {
        const int64_t dd = b->cols[LLMSQ_LINEAR_UP];
        for (int64_t r = 0; r < n; r++) {
            for (int64_t k = 0; k < dd; k++) b->W[LLMSQ_LINEAR_UP][r * dd + k] /= s[r];
            if (b->bu) b->bu[r] /= s[r];
        }
        break;
    }
    }
    for (int k = 0; k < k_groups[g].n; k++) {
        const llmsq_linear_id id = k_groups[g].lin[k];
        for (int64_t o = 0; o < b->rows[id]; o++)
            for (int64_t j = 0; j < n; j++) b->W[id][o * n + j] *= s[j];
    }
    float *X = b->acts.X[in];
    for (int64_t t = 0; t < b->acts.rows; t++)
        for (int64_t j = 0; j < n; j++) X[t * n + j] /= s[j];
}

/* AutoAWQ's clipping search for linear id (_compute_best_clip): per output row and quantization
 * group, max |w| shrunk by (1 - i/20), i < 10, keeping the shrink whose quantized group output
 * on up to ~512 sampled tokens is closest to the float one. Rows are independent (threaded). */
static llmsq_status clip_search(awq_block *b, llmsq_linear_id id, const llmsq_quant_params *p, int64_t *clipped)
{
    enum { N_GRID = 20, N_SHRINK = 10, N_SAMPLE = 512 };
    const llmsq_block_input in = llmsq_linear_input(id);
    const int64_t n = b->cols[id], out = b->rows[id], rows = b->acts.rows;
    const int64_t G = p->group_size > 0 && p->group_size < n ? p->group_size : n;
    const int64_t step = rows / N_SAMPLE > 1 ? rows / N_SAMPLE : 1, T = (rows + step - 1) / step;
    const int maxq = (1 << p->bits) - 1;
    float *Xs = malloc((size_t)(T * n) * sizeof *Xs); /* sampled tokens, transposed: [n, T] */
    if (!Xs) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for the AWQ clip search");
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < n; j++) Xs[j * T + t] = b->acts.X[in][t * step * n + j];
    float *W = b->W[id];
    int64_t nclip = 0;
    int bad = 0;
#pragma omp parallel reduction(+ : nclip, bad)
    {
        double *org = malloc((size_t)T * sizeof *org), *cur = malloc((size_t)T * sizeof *cur);
        float *dq = malloc((size_t)G * sizeof *dq);
        if (!org || !cur || !dq) bad++;
#pragma omp for schedule(static)
        for (int64_t o = 0; o < out; o++) {
            if (!org || !cur || !dq) continue;
            for (int64_t c0 = 0; c0 < n; c0 += G) {
                const int64_t c1 = c0 + G < n ? c0 + G : n;
                float *w = W + o * n;
                double amax = 0;
                for (int64_t t = 0; t < T; t++) org[t] = 0;
                for (int64_t j = c0; j < c1; j++) {
                    amax = fmax(amax, fabs(w[j]));
                    for (int64_t t = 0; t < T; t++) org[t] += (double)Xs[j * T + t] * w[j];
                }
                double best_err = DBL_MAX;
                float best = (float)amax;
                for (int i = 0; i < N_SHRINK; i++) {
                    const float mv = (float)(amax * (1.0 - (double)i / N_GRID));
                    double lo = DBL_MAX, hi = -DBL_MAX;
                    for (int64_t j = c0; j < c1; j++) {
                        const float v = w[j] > mv ? mv : w[j] < -mv ? -mv : w[j];
                        lo = fmin(lo, v), hi = fmax(hi, v);
                    }
                    float sc;
                    int32_t z;
                    if (llmsq_grid_fit(p->grid, p->bits, p->zero_min_one, p->scale_dtype, lo, hi, &sc, &z) != LLMSQ_OK) {
                        bad++;
                        break;
                    }
                    for (int64_t j = c0; j < c1; j++) {
                        const float v = w[j] > mv ? mv : w[j] < -mv ? -mv : w[j];
                        dq[j - c0] = sc * (float)(llmsq_grid_code(v, sc, z, maxq) - z);
                    }
                    for (int64_t t = 0; t < T; t++) cur[t] = 0;
                    for (int64_t j = c0; j < c1; j++)
                        for (int64_t t = 0; t < T; t++) cur[t] += (double)Xs[j * T + t] * dq[j - c0];
                    double err = 0;
                    for (int64_t t = 0; t < T; t++) err += (cur[t] - org[t]) * (cur[t] - org[t]);
                    err /= (double)T;
                    if (err < best_err) best_err = err, best = mv;
                }
                if (best < (float)amax) nclip++;
                for (int64_t j = c0; j < c1; j++) w[j] = w[j] > best ? best : w[j] < -best ? -best : w[j];
            }
        }
        free(org), free(cur), free(dq);
    }
    free(Xs);
    *clipped += nclip;
    if (bad)
        return llmsq_error(LLMSQ_STATUS_NUMERIC, "layer %lld: AWQ clip search: a group's range is not representable "
                           "in the scale dtype", (long long)b->layer);
    return LLMSQ_OK;
}

llmsq_status llmsq_awq_block(llmsq_model *m, int64_t layer, const llmsq_block_calib *in, const llmsq_quant_params *p,
                             const bool wanted[LLMSQ_LINEAR_COUNT], llmsq_awq_layer_report *rep)
{
    const llmsq_config *c = llmsq_model_config(m);
    memset(rep, 0, sizeof *rep);
    awq_block b = {.m = m, .layer = layer, .L = in->seqlen, .N = in->nsamples};
    const bool want_in[LLMSQ_INPUT_COUNT] = {true, true, true, true};
    llmsq_status st = llmsq_block_capture(m, layer, in, want_in, &b.acts);
    int64_t n;
    for (int i = 0; st == LLMSQ_OK && i < LLMSQ_LINEAR_COUNT; i++) {
        st = llmsq_block_tensor_copy(m, layer, llmsq_block_weight_suffix[i], &b.W[i], &n);
        b.cols[i] = b.acts.width[llmsq_linear_input((llmsq_linear_id)i)];
        b.rows[i] = n / b.cols[i];
        if (st == LLMSQ_OK && llmsq_f32_first_nonfinite(b.W[i], n) >= 0)
            st = llmsq_error(LLMSQ_STATUS_NUMERIC, "layer %lld: %s has a non-finite weight", (long long)layer,
                             llmsq_block_weight_suffix[i]);
    }
    if (st == LLMSQ_OK) st = llmsq_block_tensor_copy(m, layer, "input_layernorm.weight", &b.attn_norm, &n);
    if (st == LLMSQ_OK) st = llmsq_block_tensor_copy(m, layer, "post_attention_layernorm.weight", &b.ffn_norm, &n);
    if (st == LLMSQ_OK && c->qkv_bias) st = llmsq_block_tensor_copy(m, layer, "self_attn.v_proj.bias", &b.bv, &n);
    if (st == LLMSQ_OK && c->mlp_bias) st = llmsq_block_tensor_copy(m, layer, "mlp.up_proj.bias", &b.bu, &n);

    /* every group searched on the original weights, then all folded (AutoAWQ's order) */
    float *s[LLMSQ_AWQ_GROUPS] = {0};
    for (int g = 0; st == LLMSQ_OK && g < LLMSQ_AWQ_GROUPS; g++) {
        bool all = true;
        for (int k = 0; k < k_groups[g].n; k++) all = all && wanted[k_groups[g].lin[k]];
        if (!all) continue;
        s[g] = malloc((size_t)b.acts.width[k_groups[g].in] * sizeof(float));
        st = s[g] ? search_scales(&b, g, p, s[g], rep) : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    for (int g = 0; st == LLMSQ_OK && g < LLMSQ_AWQ_GROUPS; g++)
        if (s[g]) apply_scales(&b, g, s[g]);
    for (int g = 0; g < LLMSQ_AWQ_GROUPS; g++) free(s[g]);

    /* q/k are not clipped: their errors are amplified by the softmax (AutoAWQ skips them) */
    for (int i = LLMSQ_LINEAR_V; p->awq_clip && st == LLMSQ_OK && i < LLMSQ_LINEAR_COUNT; i++)
        if (wanted[i]) st = clip_search(&b, (llmsq_linear_id)i, p, &rep->clipped_groups);

    for (int i = 0; st == LLMSQ_OK && i < LLMSQ_LINEAR_COUNT; i++) st = llmsq_block_tensor_put(m, layer, llmsq_block_weight_suffix[i], b.W[i]);
    if (st == LLMSQ_OK) st = llmsq_block_tensor_put(m, layer, "input_layernorm.weight", b.attn_norm);
    if (st == LLMSQ_OK) st = llmsq_block_tensor_put(m, layer, "post_attention_layernorm.weight", b.ffn_norm);
    if (st == LLMSQ_OK && b.bv) st = llmsq_block_tensor_put(m, layer, "self_attn.v_proj.bias", b.bv);
    if (st == LLMSQ_OK && b.bu) st = llmsq_block_tensor_put(m, layer, "mlp.up_proj.bias", b.bu);
    block_free(&b);
    return st;
}
