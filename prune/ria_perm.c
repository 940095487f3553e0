/*
 * RIA's channel permutation for N:M sparsity (Zhang et al., ICLR 2024, "Plug-and-Play: An
 * Efficient Post-training Pruning Method for LLMs", channel permutation), the linear sum
 * assignment it relies on, and the store operations that fold a permutation into a model.
 *
 * Why permute: N:M keeps the n best of every m consecutive input columns of a row. When
 * several important channels share a block of m, some of them must go even though a block
 * elsewhere keeps weights of little importance. Reordering the input channels of a linear
 * (and the output channels of its producer the same way) changes which channels share a block
 * without changing the function, so a better order keeps more of the total importance.
 *
 * Objective, for score S [out, in] and order perm (position k holds column perm[k]), with
 * K = in / m blocks:
 *     F(perm) = sum over rows i, blocks b of top_n { S[i, perm[b m + t]] : t < m }
 * (the sum of the n largest of the block's m scores in row i; ties do not change the sum).
 *
 * Algorithm as implemented:
 *  1. Heuristic channel reallocation (the paper's first step). Channel importance = its column
 *     sum of S; channels sorted ascending (ties: lower index first) are cut into m chunks of K.
 *     Chunk t fills slot t of the blocks, in block order for even t and reversed for odd t (a
 *     snake), so every block receives one channel of each importance band and the heaviest
 *     channels land in different blocks.
 *  2. Linear-sum-assignment refinement (the paper's second step). Fix every slot but one, c.
 *     Let a[r, i] be the n-th largest of block r's other m-1 scores in row i and T[r, i] the
 *     sum of their n largest. A candidate channel v placed in slot c enters the block's top n
 *     exactly when v_i > a[r, i], displacing a, so the block keeps T + max(0, v_i - a[r, i]).
 *     sum T does not depend on which block receives which slot-c channel, so the best
 *     reassignment of the slot-c channels maximizes sum_r G[r, sigma(r)] with
 *         G[r, b] = sum_i max(0, S[i, slot-c channel of block b] - a[r, i]),
 *     a linear sum assignment, solved exactly (Hungarian below). Keeping every channel where
 *     it is (sigma = identity) is feasible, so F never decreases. One sweep visits c = 0..m-1;
 *     up to `iters` sweeps run, stopping early when one changes nothing.
 *  3. Groups. A full K x K gain matrix costs K^2 out hinge terms per slot: 3.1e10 for
 *     in = 11008 (K = 2752), out = 4096, far too slow on a CPU. As the reference's "fast" mode
 *     (which solves 4 to 16 parts separately), the blocks are split into groups of at most
 *     LSA_GROUP and each group's assignment is solved exactly. Sweep 0 groups blocks by stride
 *     (block b in group b mod the group count: after the snake every group spans all
 *     importance bands); later sweeps use a fixed-seed shuffle, so channels can move between
 *     groups over sweeps.
 *     Groups are disjoint and a group's moves only touch its own blocks, so the groups of a
 *     sweep are refined independently, in parallel (one thread per group, O(LSA_GROUP^2)
 *     memory each), with the same result as one after the other. Each sweep first gathers S
 *     into P (one [out, in] copy) with the groups' columns contiguous, so a group reads
 *     stretches of rows instead of scattered columns.
 *  4. Exactness guard. Gains are accumulated in float over chunks of rows, on scores scaled by
 *     a power of two (exact) so no float sum can overflow; each chunk's sum is added in double.
 *     A proposed reassignment is re-evaluated from the scores in double (the change
 *     max(0, v_new - a) - max(0, v_old - a) of every moved block and row) and applied only
 *     when it strictly raises the kept total, so rounding can never make the result worse.
 *  5. The refinement starts from the better of the identity and the reallocation; the
 *     identity is returned when the final order is not strictly better.
 * Every sum runs in a fixed order (per-row partial sums reduced serially; a group's sums on
 * one thread), so the result does not depend on the thread count.
 *
 * Differences from the reference (RIA lib/prune.py): it ranks channels by column sum too (its
 * "sum" importance) and solves the same per-slot assignments with scipy's
 * linear_sum_assignment, over all blocks or over 4 to 16 contiguous parts ("fast"); here
 * groups are strided then shuffled, each proposal is checked exactly, the start is the better
 * of identity and reallocation, and up to `iters` sweeps run (the reference does one).
 */
#include "llmsq/prune.h"
#include "llmsq/runtime.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Blocks per assignment problem. The gains cost LSA_GROUP * K * out hinge terms per slot and
 * the Hungarian LSA_GROUP^2 * K operations. Measured on [4096, 11008] 2:4 scores |W| ||X||
 * (W gaussian, ||X|| log-normal), kept score over the identity after 3 sweeps: +3.078%,
 * +3.098%, +3.114%, +3.130% with groups of 128, 256, 512, 1024 blocks, taking about 1, 1, 1.7
 * and 3 times as long: past 256 the time grows faster than the gain. */
#ifndef LSA_GROUP
#define LSA_GROUP 256
#endif
/* Gain tiles: RT receiving blocks x BT donor blocks, rows in chunks of CH (float partial sums,
 * then double). BT is a multiple of the SIMD width and of RT. */
#define RT 4
#define BT 8
#define CH 64

/* ---- linear sum assignment ------------------------------------------------------------- */

/* Scratch of the solver for problems up to n (n + 1 entries each). */
typedef struct lsa_ws {
    double *u, *v, *minv;
    int64_t *col_row, *way;
    unsigned char *in_tree;
} lsa_ws;

static void lsa_ws_free(lsa_ws *w)
{
    free(w->u);
    free(w->v);
    free(w->minv);
    free(w->col_row);
    free(w->way);
    free(w->in_tree);
    memset(w, 0, sizeof *w);
}

static bool lsa_ws_init(lsa_ws *w, int64_t n)
{
    const size_t N = (size_t)n + 1;
    w->u = malloc(N * sizeof *w->u);
    w->v = malloc(N * sizeof *w->v);
    w->minv = malloc(N * sizeof *w->minv);
    w->col_row = malloc(N * sizeof *w->col_row);
    w->way = malloc(N * sizeof *w->way);
    w->in_tree = malloc(N);
    if (w->u && w->v && w->minv && w->col_row && w->way && w->in_tree) return true;
    lsa_ws_free(w);
    return false;
}

/*
 * Hungarian method in its shortest-augmenting-path form with dual potentials (Kuhn 1955,
 * Munkres 1957; the O(n^3) variant of Tomizawa / Edmonds-Karp), minimizing sign * cost.
 * Rows are inserted one at a time. Invariants: u[r] + v[c] <= cost[r, c] for all r, c, with
 * equality on matched pairs, so the matching of the rows inserted so far is optimal for them.
 * Inserting row r grows a Dijkstra tree over columns with reduced costs cost - u - v >= 0
 * (minv[c] = the cheapest reduced cost of reaching column c from the tree); the cheapest
 * unreached column joins the tree, the potentials shift by that amount (keeping tree edges
 * tight), and when the column reached is free the alternating path back to r (way[]) is
 * flipped. Each insertion is O(n^2). Column n is a virtual column holding the row being
 * inserted. Does not record errors (it runs on worker threads); false when reduced costs
 * overflow (finite costs near DBL_MAX).
 */
static bool lsa_run(const double *cost, int64_t n, double sign, int32_t *assign, lsa_ws *w)
{
    double *u = w->u, *v = w->v, *minv = w->minv;
    int64_t *col_row = w->col_row, *way = w->way;
    unsigned char *in_tree = w->in_tree;
    for (int64_t c = 0; c <= n; c++) {
        u[c] = v[c] = 0.0;
        col_row[c] = -1;
    }
    for (int64_t r = 0; r < n; r++) {
        col_row[n] = r;
        int64_t c0 = n;
        for (int64_t c = 0; c <= n; c++) {
            minv[c] = INFINITY;
            in_tree[c] = 0;
        }
        do {
            in_tree[c0] = 1;
            const int64_t r0 = col_row[c0];
            const double *row = cost + r0 * n;
            double delta = INFINITY;
            int64_t c1 = -1;
            for (int64_t c = 0; c < n; c++) {
                if (in_tree[c]) continue;
                const double red = sign * row[c] - u[r0] - v[c];
                if (red < minv[c]) {
                    minv[c] = red;
                    way[c] = c0;
                }
                if (minv[c] < delta) { /* strict: the lowest column wins ties (determinism) */
                    delta = minv[c];
                    c1 = c;
                }
            }
            /* c1 exists while fewer than n real columns are in the tree (row r is unmatched),
             * unless reduced costs overflowed to infinity */
            if (c1 < 0) return false;
            for (int64_t c = 0; c <= n; c++) {
                if (in_tree[c]) {
                    u[col_row[c]] += delta;
                    v[c] -= delta;
                } else {
                    minv[c] -= delta;
                }
            }
            c0 = c1;
        } while (col_row[c0] >= 0);
        do { /* flip the alternating path: every column on it takes its predecessor's row */
            const int64_t c1 = way[c0];
            col_row[c0] = col_row[c1];
            c0 = c1;
        } while (c0 != n);
    }
    for (int64_t c = 0; c < n; c++) assign[col_row[c]] = (int32_t)c;
    return true;
}

llmsq_status llmsq_linear_assignment(const double *cost, int64_t n, bool maximize, int32_t *assign, double *total)
{
    LLMSQ_ASSERT(cost != NULL && assign != NULL);
    if (n < 1 || n > INT32_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "linear assignment: n = %lld, need 1 <= n <= %d", (long long)n, INT32_MAX);
    for (int64_t k = 0; k < n * n; k++)
        if (!isfinite(cost[k]))
            return llmsq_error(LLMSQ_STATUS_ARG, "linear assignment: cost [%lld, %lld] is not finite (%g)",
                               (long long)(k / n), (long long)(k % n), cost[k]);
    lsa_ws w;
    if (!lsa_ws_init(&w, n))
        return llmsq_error(LLMSQ_STATUS_NOMEM, "linear assignment: out of memory for n = %lld", (long long)n);
    /* maximizing cost = minimizing -cost: the sign is applied as entries are read */
    const bool ok = lsa_run(cost, n, maximize ? -1.0 : 1.0, assign, &w);
    lsa_ws_free(&w);
    if (!ok) return llmsq_error(LLMSQ_STATUS_NUMERIC, "linear assignment: reduced costs overflow (costs near DBL_MAX)");
    if (total) {
        double t = 0;
        for (int64_t r = 0; r < n; r++) t += cost[r * n + assign[r]];
        *total = t;
    }
    return LLMSQ_OK;
}

/* ---- the N:M objective ------------------------------------------------------------------ */

/* Sorts x [len] descending (insertion sort: len <= 64). */
static inline void sort_desc(float *x, int len)
{
    for (int a = 1; a < len; a++) {
        const float t = x[a];
        int b = a;
        for (; b > 0 && x[b - 1] < t; b--) x[b] = x[b - 1];
        x[b] = t;
    }
}

/* Kept score of one block: the n largest of the m scores row[cols[0..m)], summed in double
 * in descending order (a fixed order, so equal inputs give equal sums). */
static inline double block_kept(const float *row, const int32_t *cols, int n, int m)
{
    float x[64];
    for (int t = 0; t < m; t++) x[t] = row[cols[t]];
    sort_desc(x, m);
    double s = 0;
    for (int t = 0; t < n; t++) s += x[t];
    return s;
}

/* a of step 2: the n-th largest of a block's m scores x [m] other than slot c (n <= m - 1). */
static inline float nth_other(const float *x, int n, int m, int c)
{
    float y[64];
    int k = 0;
    for (int t = 0; t < m; t++)
        if (t != c) y[k++] = x[t];
    sort_desc(y, m - 1);
    return y[n - 1];
}

/* F(perm), the total kept score; rowsum [out] is scratch (per-row sums reduced serially). */
static double kept_total(const float *S, int64_t out, int64_t in, int n, int m, const int32_t *perm, double *rowsum)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < out; i++) {
        const float *row = S + i * in;
        double s = 0;
        for (int64_t b = 0; b < in; b += m) s += block_kept(row, perm + b, n, m);
        rowsum[i] = s;
    }
    double t = 0;
    for (int64_t i = 0; i < out; i++) t += rowsum[i];
    return t;
}

/* ---- refinement -------------------------------------------------------------------------- */

typedef struct perm_prob {
    const float *S;
    float *P;     /* [out, in] S with columns in the sweep's block order (see sweep_gather) */
    int64_t out, in;
    int n, m;
    float scale;  /* power of two: scaled scores are <= 1, so float gain sums stay finite */
    int64_t Gp;   /* padded group width (multiple of BT) */
    int64_t gmax; /* largest group */
} perm_prob;

/* One thread's scratch for refining one group at a time. */
typedef struct group_ws {
    float *VT;       /* [CH, Gp] per row of a chunk: scaled slot-c score of each block (padding 0) */
    float *AT;       /* [CH, Gp] per row of a chunk: scaled a[r, i] (padding FLT_MAX) */
    double *gain;    /* [Gp, Gp] G[r, b] */
    double *cost;    /* [gmax, gmax] compact copy for the solver */
    int32_t *assign; /* [gmax] */
    int32_t *slot;   /* [gmax] the group's slot-c channels before a move */
    float *tmp;      /* [gmax] one row's slot-c scores before a move */
    lsa_ws lsa;
} group_ws;

static void group_ws_free(group_ws *w)
{
    free(w->VT);
    free(w->AT);
    free(w->gain);
    free(w->cost);
    free(w->assign);
    free(w->slot);
    free(w->tmp);
    lsa_ws_free(&w->lsa);
}

static bool group_ws_init(group_ws *w, const perm_prob *p)
{
    memset(w, 0, sizeof *w);
    w->VT = malloc((size_t)(CH * p->Gp) * sizeof *w->VT);
    w->AT = malloc((size_t)(CH * p->Gp) * sizeof *w->AT);
    w->gain = malloc((size_t)(p->Gp * p->Gp) * sizeof *w->gain);
    w->cost = malloc((size_t)(p->gmax * p->gmax) * sizeof *w->cost);
    w->assign = malloc((size_t)p->gmax * sizeof *w->assign);
    w->slot = malloc((size_t)p->gmax * sizeof *w->slot);
    w->tmp = malloc((size_t)p->gmax * sizeof *w->tmp);
    if (w->VT && w->AT && w->gain && w->cost && w->assign && w->slot && w->tmp && lsa_ws_init(&w->lsa, p->gmax))
        return true;
    group_ws_free(w);
    return false;
}

/* P[i, k m + t] = S[i, perm[order[k] m + t]]: one pass over S per sweep, after which every
 * group reads a contiguous stretch of each row of P instead of scattered columns of S (the
 * scattered reads, repeated per group and slot, cost more than the gains themselves). */
static void sweep_gather(perm_prob *p, const int32_t *perm, const int64_t *order)
{
    const int64_t K = p->in / p->m;
    const int m = p->m;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p->out; i++) {
        const float *src = p->S + i * p->in;
        float *dst = p->P + i * p->in;
        for (int64_t k = 0; k < K; k++) {
            const int32_t *cols = perm + order[k] * m;
            for (int t = 0; t < m; t++) dst[k * m + t] = src[cols[t]];
        }
    }
}

/* G[r, b] for the g blocks of the group at P columns [lo m, (lo + g) m), slot c: rows in
 * chunks of CH, whose VT and AT (2 CH Gp floats) stay in cache while every tile reads them. */
static void group_gains(const perm_prob *p, group_ws *w, int64_t lo, int64_t g, int c)
{
    const int64_t Gp = p->Gp;
    const int n = p->n, m = p->m;
    memset(w->gain, 0, (size_t)(Gp * Gp) * sizeof *w->gain);
    for (int64_t i0 = 0; i0 < p->out; i0 += CH) {
        const int64_t rows = i0 + CH < p->out ? CH : p->out - i0;
        for (int64_t i = 0; i < rows; i++) {
            const float *seg = p->P + (i0 + i) * p->in + lo * m;
            float *vt = w->VT + i * Gp, *at = w->AT + i * Gp;
            for (int64_t r = 0; r < g; r++) {
                vt[r] = seg[r * m + c] * p->scale;
                at[r] = nth_other(seg + r * m, n, m, c) * p->scale;
            }
            /* padding adds max(0, v - a) = 0: v = 0 <= every score, a = FLT_MAX >= every v */
            for (int64_t r = g; r < Gp; r++) {
                vt[r] = 0.0f;
                at[r] = FLT_MAX;
            }
        }
        for (int64_t rt = 0; rt < g; rt += RT)
            for (int64_t bt = 0; bt < g; bt += BT) {
                float acc[RT][BT] = {{0}};
                for (int64_t i = 0; i < rows; i++) {
                    const float *vt = w->VT + i * Gp + bt, *at = w->AT + i * Gp + rt;
                    for (int rr = 0; rr < RT; rr++) {
                        const float a = at[rr];
#pragma omp simd
                        for (int bb = 0; bb < BT; bb++) {
                            const float d = vt[bb] - a;
                            acc[rr][bb] += d > 0.0f ? d : 0.0f;
                        }
                    }
                }
                for (int rr = 0; rr < RT; rr++)
                    for (int bb = 0; bb < BT; bb++) w->gain[(rt + rr) * Gp + bt + bb] += acc[rr][bb];
            }
    }
}

/* Exact change (double, unscaled scores) of the kept total when block r of the group takes
 * the slot-c channel of block assign[r]: by the identity of step 2, block r's kept score in
 * row i changes by max(0, v_new - a) - max(0, v_old - a); unmoved blocks change by 0. */
static double group_delta(const perm_prob *p, const group_ws *w, int64_t lo, int64_t g, int c)
{
    const int m = p->m;
    double t = 0;
    for (int64_t i = 0; i < p->out; i++) {
        const float *seg = p->P + i * p->in + lo * m;
        double s = 0;
        for (int64_t r = 0; r < g; r++) {
            if (w->assign[r] == r) continue;
            const double a = nth_other(seg + r * m, p->n, m, c);
            s += fmax(0.0, (double)seg[w->assign[r] * m + c] - a) - fmax(0.0, (double)seg[r * m + c] - a);
        }
        t += s;
    }
    return t;
}

/* Refines the group order[lo .. lo + g) over the m slots; returns whether perm changed. Only
 * the group's own entries of perm and columns of P are read or written. */
static bool refine_group(perm_prob *p, group_ws *w, int32_t *perm, const int64_t *order, int64_t lo, int64_t g,
                         bool *overflow)
{
    const int m = p->m;
    bool changed = false;
    if (g < 2) return false;
    for (int c = 0; c < m; c++) {
        group_gains(p, w, lo, g, c);
        for (int64_t r = 0; r < g; r++)
            for (int64_t b = 0; b < g; b++) w->cost[r * g + b] = w->gain[r * p->Gp + b];
        if (!lsa_run(w->cost, g, -1.0, w->assign, &w->lsa)) {
            *overflow = true;
            return changed;
        }
        bool moves = false;
        for (int64_t r = 0; r < g && !moves; r++) moves = w->assign[r] != r;
        if (!moves || !(group_delta(p, w, lo, g, c) > 0.0)) continue;
        /* block r takes the slot-c channel that block assign[r] held, in perm and in P */
        for (int64_t r = 0; r < g; r++) w->slot[r] = perm[order[lo + r] * m + c];
        for (int64_t r = 0; r < g; r++) perm[order[lo + r] * m + c] = w->slot[w->assign[r]];
        for (int64_t i = 0; i < p->out; i++) {
            float *seg = p->P + i * p->in + lo * m;
            for (int64_t r = 0; r < g; r++) w->tmp[r] = seg[r * m + c];
            for (int64_t r = 0; r < g; r++) seg[r * m + c] = w->tmp[w->assign[r]];
        }
        changed = true;
    }
    return changed;
}

/* The blocks of sweep `sweep` in group order: group q is order[lo .. hi) with the bounds of
 * group_bounds. */
static void sweep_order(int64_t *order, int64_t K, int64_t ng, int sweep)
{
    if (sweep == 0) { /* strided: group q = blocks q, q + ng, q + 2 ng, ... */
        int64_t k = 0;
        for (int64_t q = 0; q < ng; q++)
            for (int64_t b = q; b < K; b += ng) order[k++] = b;
        return;
    }
    for (int64_t b = 0; b < K; b++) order[b] = b;
    uint64_t st = 0x52494150ull + (uint64_t)sweep; /* fixed seed per sweep ("RIAP") */
    for (int64_t b = K - 1; b > 0; b--) {          /* Fisher-Yates */
        const int64_t j = (int64_t)(llmsq_splitmix64(&st) % (uint64_t)(b + 1));
        const int64_t t = order[b];
        order[b] = order[j];
        order[j] = t;
    }
}

/* Bounds of group q in sweep_order's array: a strided group q holds the ceil((K - q) / ng)
 * blocks congruent to q; shuffled groups split the K blocks evenly. Either way a group has at
 * most ceil(K / ng) blocks. */
static void group_bounds(int64_t K, int64_t ng, int sweep, int64_t q, int64_t *lo, int64_t *hi)
{
    if (sweep == 0) {
        int64_t s = 0;
        for (int64_t p = 0; p < q; p++) s += (K - p + ng - 1) / ng;
        *lo = s;
        *hi = s + (K - q + ng - 1) / ng;
    } else {
        *lo = q * K / ng;
        *hi = (q + 1) * K / ng;
    }
}

typedef struct chan_key {
    double v;
    int32_t i;
} chan_key;

static int chan_key_cmp(const void *a, const void *b)
{
    const chan_key *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Step 1: the snake reallocation of channels sorted by column sum. */
static llmsq_status reallocate(const float *S, int64_t out, int64_t in, int m, int32_t *perm)
{
    const int64_t K = in / m;
    chan_key *key = malloc((size_t)in * sizeof *key);
    double *col = calloc((size_t)in, sizeof *col);
    if (!key || !col) {
        free(key);
        free(col);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "N:M permutation: out of memory for %lld channels", (long long)in);
    }
    for (int64_t i = 0; i < out; i++) /* row order: a fixed summation order */
        for (int64_t j = 0; j < in; j++) col[j] += S[i * in + j];
    for (int64_t j = 0; j < in; j++) key[j] = (chan_key){col[j], (int32_t)j};
    qsort(key, (size_t)in, sizeof *key, chan_key_cmp); /* total order: deterministic */
    for (int t = 0; t < m; t++)
        for (int64_t b = 0; b < K; b++) {
            const int64_t rank = t * K + (t % 2 == 0 ? b : K - 1 - b);
            perm[b * m + t] = key[rank].i;
        }
    free(key);
    free(col);
    return LLMSQ_OK;
}

llmsq_status llmsq_nm_permutation(const float *score, int64_t out, int64_t in, int n, int m, int iters, int32_t *perm,
                                  double *kept_before, double *kept_after)
{
    LLMSQ_ASSERT(score != NULL && perm != NULL);
    if (m < 2 || m > 64 || n < 1 || n >= m)
        return llmsq_error(LLMSQ_STATUS_ARG, "N:M permutation: %d:%d: need 0 < N < M <= 64", n, m);
    if (out < 1 || in < m || in > INT32_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "N:M permutation: scores [%lld, %lld]: need out >= 1 and M <= in <= %d",
                           (long long)out, (long long)in, INT32_MAX);
    if (in % m != 0)
        return llmsq_error(LLMSQ_STATUS_ARG,
                           "N:M permutation: in = %lld is not a multiple of M = %d (a partial block cannot be permuted "
                           "into)", (long long)in, m);
    if (iters < 0) return llmsq_error(LLMSQ_STATUS_ARG, "N:M permutation: iters = %d, need >= 0", iters);
    float smax = 0.0f;
    for (int64_t k = 0; k < out * in; k++) {
        if (!(score[k] >= 0.0f) || !isfinite(score[k]))
            return llmsq_error(LLMSQ_STATUS_ARG, "N:M permutation: score [%lld, %lld] = %g (need finite and >= 0)",
                               (long long)(k / in), (long long)(k % in), (double)score[k]);
        smax = score[k] > smax ? score[k] : smax;
    }

    const int64_t K = in / m;
    const int64_t ng = (K + LSA_GROUP - 1) / LSA_GROUP; /* groups per sweep */
    perm_prob p = {.S = score, .out = out, .in = in, .n = n, .m = m, .gmax = (K + ng - 1) / ng};
    p.Gp = (p.gmax + BT - 1) / BT * BT;
    int e = 0;
    (void)frexpf(smax, &e); /* smax < 2^e */
    p.scale = smax > 0.0f ? ldexpf(1.0f, -e) : 1.0f;

    int32_t *id = malloc((size_t)in * sizeof *id), *cur = malloc((size_t)in * sizeof *cur);
    int64_t *order = malloc((size_t)K * sizeof *order);
    double *rowsum = malloc((size_t)out * sizeof *rowsum);
    p.P = iters > 0 ? malloc((size_t)(out * in) * sizeof *p.P) : NULL;
    llmsq_status st = LLMSQ_OK;
    if (!id || !cur || !order || !rowsum || (iters > 0 && !p.P)) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "N:M permutation: out of memory for scores [%lld, %lld]", (long long)out,
                         (long long)in);
        goto done;
    }
    for (int64_t j = 0; j < in; j++) id[j] = (int32_t)j;
    const double f_id = kept_total(score, out, in, n, m, id, rowsum);
    st = reallocate(score, out, in, m, cur);
    if (st != LLMSQ_OK) goto done;
    double f_cur = kept_total(score, out, in, n, m, cur, rowsum);
    if (!(f_cur > f_id)) { /* start from the better order */
        memcpy(cur, id, (size_t)in * sizeof *cur);
        f_cur = f_id;
    }

    for (int sweep = 0; sweep < iters; sweep++) {
        bool any = false, nomem = false, overflow = false;
        sweep_order(order, K, ng, sweep);
        sweep_gather(&p, cur, order);
        /* errors are recorded after the region: the error context is per thread */
#pragma omp parallel reduction(|| : any, nomem, overflow)
        {
            group_ws w;
            const bool ok = group_ws_init(&w, &p);
            nomem = !ok;
#pragma omp for schedule(dynamic, 1)
            for (int64_t q = 0; q < ng; q++) {
                if (!ok) continue;
                int64_t lo, hi;
                group_bounds(K, ng, sweep, q, &lo, &hi);
                any = refine_group(&p, &w, cur, order, lo, hi - lo, &overflow) || any;
            }
            if (ok) group_ws_free(&w);
        }
        if (nomem || overflow) {
            st = nomem ? llmsq_error(LLMSQ_STATUS_NOMEM, "N:M permutation: out of memory for the assignment scratch")
                       : llmsq_error(LLMSQ_STATUS_NUMERIC, "N:M permutation: assignment costs overflow");
            goto done;
        }
        if (!any) break; /* a sweep that moved nothing would repeat itself */
    }
    f_cur = kept_total(score, out, in, n, m, cur, rowsum);
    if (f_cur > f_id) {
        memcpy(perm, cur, (size_t)in * sizeof *perm);
    } else {
        memcpy(perm, id, (size_t)in * sizeof *perm);
        f_cur = f_id;
    }
    if (kept_before) *kept_before = f_id;
    if (kept_after) *kept_after = f_cur;
done:
    free(id);
    free(cur);
    free(order);
    free(rowsum);
    free(p.P);
    return st;
}

/* ---- folding a permutation into the store ------------------------------------------------ */

/* perm [n] is a permutation of 0..n-1. */
static llmsq_status check_perm(const char *name, const int32_t *perm, int64_t n)
{
    unsigned char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!seen) return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor '%s': out of memory", name);
    for (int64_t k = 0; k < n; k++) {
        if (perm[k] < 0 || perm[k] >= n || seen[perm[k]]) {
            const char *why = perm[k] < 0 || perm[k] >= n ? "out of range" : "repeated";
            llmsq_status st = llmsq_error(LLMSQ_STATUS_ARG,
                                          "tensor '%s': perm[%lld] = %d is %s (need a permutation of 0..%lld)", name,
                                          (long long)k, perm[k], why, (long long)n - 1);
            free(seen);
            return st;
        }
        seen[perm[k]] = 1;
    }
    free(seen);
    return LLMSQ_OK;
}

static llmsq_status permute_qlinear_rows(llmsq_store *s, const char *name, const llmsq_qlinear *q, const int32_t *perm)
{
    llmsq_qlinear *r;
    LLMSQ_TRY(llmsq_qlinear_clone(q, &r)); /* keeps bits, grid, g_idx, activation settings */
    const int64_t G = q->n_groups;
    for (int64_t k = 0; k < q->out; k++) {
        const int64_t o = perm[k];
        memcpy(r->codes + k * q->in, q->codes + o * q->in, (size_t)q->in);
        memcpy(r->scales + k * G, q->scales + o * G, (size_t)G * sizeof *r->scales);
        memcpy(r->zeros + k * G, q->zeros + o * G, (size_t)G * sizeof *r->zeros);
    }
    return llmsq_store_put_qlinear(s, name, r); /* replaces q and drops the dequantized cache */
}

static llmsq_status permute_qlinear_cols(llmsq_store *s, const char *name, const llmsq_qlinear *q, const int32_t *perm)
{
    llmsq_qlinear *r;
    LLMSQ_TRY(llmsq_qlinear_clone(q, &r));
    for (int64_t o = 0; o < q->out; o++) {
        const uint8_t *src = q->codes + o * q->in;
        uint8_t *dst = r->codes + o * q->in;
        for (int64_t k = 0; k < q->in; k++) dst[k] = src[perm[k]];
    }
    /* W'[o, k] = s[o, g(perm[k])] (q[o, perm[k]] - z[o, g(perm[k])]): the group follows the column */
    bool trivial = true;
    for (int64_t k = 0; k < q->in && trivial; k++) trivial = llmsq_qlinear_group(q, perm[k]) == k / q->group_size;
    if (trivial) { /* e.g. one group, or a permutation within groups: no g_idx needed */
        free(r->g_idx);
        r->g_idx = NULL;
    } else {
        if (!r->g_idx) {
            r->g_idx = malloc((size_t)q->in * sizeof *r->g_idx);
            if (!r->g_idx) {
                llmsq_qlinear_free(r);
                return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor '%s': out of memory", name);
            }
        }
        for (int64_t k = 0; k < q->in; k++) r->g_idx[k] = (int32_t)llmsq_qlinear_group(q, perm[k]);
        r->act_order = true; /* GPTQ kernels read g_idx only for desc_act checkpoints */
    }
    return llmsq_store_put_qlinear(s, name, r);
}

static bool float_dtype(llmsq_dtype d)
{
    return d == LLMSQ_DTYPE_F32 || d == LLMSQ_DTYPE_F16 || d == LLMSQ_DTYPE_BF16;
}

llmsq_status llmsq_store_permute_rows(llmsq_store *s, const char *name, const int32_t *perm, int64_t n)
{
    LLMSQ_ASSERT(s != NULL && name != NULL && perm != NULL);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "permute rows: tensor '%s' not found", name);
    char sh[96];
    if (t->ndim < 1 || t->shape[0] != n)
        return llmsq_error(LLMSQ_STATUS_SHAPE, "permute rows: tensor '%s' is %s, the permutation has %lld entries",
                           name, llmsq_shape_str(t, sh, sizeof sh), (long long)n);
    LLMSQ_TRY(check_perm(name, perm, n));
    const llmsq_qlinear *q = llmsq_store_get_qlinear(s, name);
    if (q) return permute_qlinear_rows(s, name, q, perm);
    if (!float_dtype(t->dtype) && !(t->dtype == LLMSQ_DTYPE_Q8_0 && t->ndim >= 2))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "permute rows: tensor '%s' is %s%s; rows of F32, F16, BF16 (and Q8_0 of rank >= 2) can be "
                           "permuted", name, llmsq_dtype_info(t->dtype)->name,
                           llmsq_dtype_info(t->dtype)->is_float ? " of rank 1" : " (integer data may be packed)");
    /* bytes per row: Q8_0 blocks run along the last dimension, so a row of rank >= 2 is whole blocks */
    const size_t row = n > 0 ? t->nbytes / (size_t)n : 0;
    void *d = malloc(t->nbytes > 0 ? t->nbytes : 1);
    if (!d) return llmsq_error(LLMSQ_STATUS_NOMEM, "permute rows: tensor '%s': out of memory", name);
    for (int64_t k = 0; k < n; k++)
        memcpy((uint8_t *)d + (size_t)k * row, (const uint8_t *)t->data + (size_t)perm[k] * row, row);
    int64_t shape[LLMSQ_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    /* put replaces the entry (borrowed or owned) and frees its F32 cache */
    return llmsq_store_put(s, name, t->dtype, t->ndim, shape, d);
}

llmsq_status llmsq_store_permute_cols(llmsq_store *s, const char *name, const int32_t *perm, int64_t n)
{
    LLMSQ_ASSERT(s != NULL && name != NULL && perm != NULL);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "permute columns: tensor '%s' not found", name);
    char sh[96];
    if (t->ndim != 2 || t->shape[1] != n)
        return llmsq_error(LLMSQ_STATUS_SHAPE,
                           "permute columns: tensor '%s' is %s, need 2-D with %lld columns (the permutation's length)",
                           name, llmsq_shape_str(t, sh, sizeof sh), (long long)n);
    LLMSQ_TRY(check_perm(name, perm, n));
    const llmsq_qlinear *q = llmsq_store_get_qlinear(s, name);
    if (q) return permute_qlinear_cols(s, name, q, perm);
    if (!float_dtype(t->dtype))
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "permute columns: tensor '%s' is %s; columns of F32, F16 and BF16 can be permuted%s", name,
                           llmsq_dtype_info(t->dtype)->name,
                           t->dtype == LLMSQ_DTYPE_Q8_0 ? " (Q8_0 blocks would need requantizing)" : "");
    const int64_t rows = t->shape[0];
    const size_t es = llmsq_dtype_info(t->dtype)->block_bytes; /* scalar types: one element per block */
    uint8_t *d = malloc(t->nbytes > 0 ? t->nbytes : 1);
    if (!d) return llmsq_error(LLMSQ_STATUS_NOMEM, "permute columns: tensor '%s': out of memory", name);
    const uint8_t *src = t->data;
    for (int64_t o = 0; o < rows; o++)
        for (int64_t k = 0; k < n; k++)
            memcpy(d + ((size_t)(o * n + k)) * es, src + ((size_t)(o * n + perm[k])) * es, es);
    int64_t shape[LLMSQ_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    return llmsq_store_put(s, name, t->dtype, 2, shape, d);
}
