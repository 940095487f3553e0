/* The layer-wise sequential block runner (DESIGN.md "Data flow"): calibration activations
 * enter block 0; each block is observed, its linears rewritten by the pass, and run again
 * with the new weights to produce the next block's inputs. */
#include "calib/actstore.h"
#include "llmsq/calib.h"
#include "llmsq/prune.h"
#include "llmsq/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* True-sequential order inside a block (AutoGPTQ's): each group is observed with the
 * groups before it already rewritten. */
static const llmsq_linear_id k_groups[4][4] = {
    {LLMSQ_LINEAR_Q, LLMSQ_LINEAR_K, LLMSQ_LINEAR_V, LLMSQ_LINEAR_COUNT},
    {LLMSQ_LINEAR_O, LLMSQ_LINEAR_COUNT},
    {LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP, LLMSQ_LINEAR_COUNT},
    {LLMSQ_LINEAR_DOWN, LLMSQ_LINEAR_COUNT}};
static const llmsq_linear_id k_all[8] = {LLMSQ_LINEAR_Q,    LLMSQ_LINEAR_K,  LLMSQ_LINEAR_V,    LLMSQ_LINEAR_O,
                                         LLMSQ_LINEAR_GATE, LLMSQ_LINEAR_UP, LLMSQ_LINEAR_DOWN, LLMSQ_LINEAR_COUNT};

typedef struct observe_ctx {
    bool                want[LLMSQ_INPUT_COUNT];
    bool                hessian, stats; /* what to accumulate for each wanted input */
    llmsq_hessian       h[LLMSQ_INPUT_COUNT];
    llmsq_channel_stats cs[LLMSQ_INPUT_COUNT];
} observe_ctx;

llmsq_status llmsq_channel_stats_init(llmsq_channel_stats *s, int64_t n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->abs_sum = calloc((size_t)n, sizeof *s->abs_sum);
    s->abs_max = calloc((size_t)n, sizeof *s->abs_max);
    s->sq_sum = calloc((size_t)n, sizeof *s->sq_sum);
    if (!s->abs_sum || !s->abs_max || !s->sq_sum) {
        llmsq_channel_stats_free(s);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for channel statistics");
    }
    return LLMSQ_OK;
}

void llmsq_channel_stats_add(llmsq_channel_stats *s, const float *X, int64_t T)
{
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * s->n;
        for (int64_t j = 0; j < s->n; j++) {
            const double a = fabs((double)x[j]);
            s->abs_sum[j] += a;
            s->sq_sum[j] += a * a;
            s->abs_max[j] = a > s->abs_max[j] ? a : s->abs_max[j];
        }
    }
    s->rows += T;
}

void llmsq_channel_stats_free(llmsq_channel_stats *s)
{
    free(s->abs_sum);
    free(s->abs_max);
    free(s->sq_sum);
    memset(s, 0, sizeof *s);
}

/* One sample's observed inputs: the forward runs samples in parallel, so inputs are captured
 * per sample and added to the Hessians afterwards in sample order (a fixed reduction order,
 * whatever the thread count). */
typedef struct capture {
    const observe_ctx *obs;
    float             *buf[LLMSQ_INPUT_COUNT]; /* [T, n] each, for the wanted inputs */
} capture;

static llmsq_status on_input(void *user, llmsq_block_input which, const float *X, int64_t T, int64_t n)
{
    capture *c = user;
    if (!c->obs->want[which]) return LLMSQ_OK;
    LLMSQ_ASSERT(c->buf[which]);
    (void)n;
    memcpy(c->buf[which], X, (size_t)(T * n) * sizeof(float));
    return LLMSQ_OK;
}

static int64_t input_width(const llmsq_config *c, llmsq_block_input in)
{
    switch (in) {
    case LLMSQ_INPUT_O: return c->n_heads * c->head_dim;
    case LLMSQ_INPUT_DOWN: return c->intermediate_size;
    default: return c->hidden_size;
    }
}

void llmsq_calib_plan_bytes(const llmsq_config *c, const llmsq_calib_params *p, bool needs_hessian,
                            llmsq_calib_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (!needs_hessian) return;
    const size_t L = (size_t)p->seqlen, d = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    const size_t qd = (size_t)(c->n_heads * c->head_dim), kvd = (size_t)(c->n_kv_heads * c->head_dim);
    size_t act = (size_t)p->nsamples * L * d * sizeof(float);
    if (p->max_memory && act > p->max_memory) {
        plan->spilled = act;
        act = 0;
    }
    plan->activations = act;
    /* one window through a block: x, xn, q, att, gate, up, scores (one thread's), KV cache */
    size_t threads = (size_t)llmsq_threads_get();
    plan->block_scratch = (2 * L * d + 2 * L * qd + 2 * L * F + threads * L * L + 2 * L * kvd * (size_t)c->n_layers) *
                          sizeof(float);
    /* the widest group's Hessian sums plus one finalized copy handed to the pass */
    size_t hd = d * d * sizeof(double), ho = qd * qd * sizeof(double), hf = F * F * sizeof(double);
    size_t widest = hd > ho ? hd : ho;
    widest = widest > hf ? widest : hf;
    plan->hessians = p->true_sequential ? 2 * widest : hd + ho + hd + hf + widest;
}

/* Asks the pass for a permutation of down_proj's input channels and folds it into the model
 * (calib.h, permute_input): gate/up rows and biases, down columns, then the job's W (re-read),
 * H rows and columns, and channel statistics. */
static llmsq_status permute_down(llmsq_model *m, int64_t l, const llmsq_calib_pass *pass, llmsq_linear_job *job,
                                 const char *wname)
{
    const int64_t n = job->in;
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    bool use = false;
    llmsq_status st = pass->permute_input(pass->user, job, perm, &use);
    llmsq_store *s = llmsq_model_store(m);
    const llmsq_config *c = llmsq_model_config(m);
    static const char *const rows[] = {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.gate_proj.bias",
                                       "mlp.up_proj.bias"};
    for (int i = 0; use && st == LLMSQ_OK && i < (c->mlp_bias ? 4 : 2); i++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, rows[i]);
        st = llmsq_store_permute_rows(s, name, perm, n);
    }
    if (use && st == LLMSQ_OK) st = llmsq_store_permute_cols(s, wname, perm, n);
    if (use && st == LLMSQ_OK) st = llmsq_store_get_f32(s, wname, &job->W);
    double *tmp = use && st == LLMSQ_OK ? malloc((size_t)n * sizeof *tmp) : NULL;
    if (use && st == LLMSQ_OK && !tmp) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    if (tmp) {
        if (job->stats) {
            double *v[3] = {job->stats->abs_sum, job->stats->abs_max, job->stats->sq_sum};
            for (int k = 0; k < 3; k++) {
                for (int64_t j = 0; j < n; j++) tmp[j] = v[k][perm[j]];
                memcpy(v[k], tmp, (size_t)n * sizeof *tmp);
            }
        }
        if (job->H) { /* H' = P^T H P: rows, then columns */
            double *H2 = malloc((size_t)(n * n) * sizeof *H2);
            if (!H2) {
                st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory permuting the Hessian");
            } else {
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) H2[i * n + j] = job->H[(int64_t)perm[i] * n + perm[j]];
                memcpy(job->H, H2, (size_t)(n * n) * sizeof *H2);
                free(H2);
            }
        }
    }
    free(tmp);
    free(perm);
    return st;
}

/* Rewrites the wanted linears among ids[] (terminated by LLMSQ_LINEAR_COUNT) of layer l. */
static llmsq_status rewrite(llmsq_model *m, int64_t l, const llmsq_linear_id *ids, observe_ctx *obs,
                            const llmsq_calib_pass *pass, const bool *wanted)
{
    llmsq_store *s = llmsq_model_store(m);
    const llmsq_config *c = llmsq_model_config(m);
    for (; *ids != LLMSQ_LINEAR_COUNT; ids++) {
        if (!wanted[*ids]) continue;
        char module[128], wname[160];
        llmsq_linear_module(l, *ids, module, sizeof module);
        snprintf(wname, sizeof wname, "%s.weight", module);
        const llmsq_tensor *t = llmsq_store_get(s, wname);
        const float *W;
        LLMSQ_TRY(llmsq_store_get_f32(s, wname, &W));
        llmsq_linear_job job = {.layer = l, .id = *ids, .module = module, .W = W, .out = t->shape[0],
                                .in = t->shape[1], .H = NULL, .stats = NULL};
        llmsq_block_input in = llmsq_linear_input(*ids);
        LLMSQ_ASSERT(!obs || (obs->want[in] && input_width(c, in) == job.in));
        if (pass->needs_hessian) LLMSQ_TRY(llmsq_hessian_finalize(&obs->h[in], &job.H));
        if (pass->needs_channel_stats) job.stats = &obs->cs[in];
        if (*ids == LLMSQ_LINEAR_DOWN && pass->permute_input) {
            llmsq_status pst = permute_down(m, l, pass, &job, wname);
            if (pst != LLMSQ_OK) {
                free(job.H);
                return llmsq_error_prefix(pst, "%s", module);
            }
            W = job.W;
        }
        llmsq_qlinear *q = NULL;
        float *dense = NULL;
        llmsq_status st;
        if (pass->run_dense) {
            dense = malloc((size_t)(job.out * job.in) * sizeof *dense);
            if (!dense) {
                free(job.H);
                return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", module);
            }
            memcpy(dense, W, (size_t)(job.out * job.in) * sizeof *dense);
            st = pass->run_dense(pass->user, &job, dense, &q);
        } else {
            st = pass->run(pass->user, &job, &q);
        }
        free(job.H);
        if (st != LLMSQ_OK) {
            free(dense);
            llmsq_qlinear_free(q);
            return llmsq_error_prefix(st, "%s", module);
        }
        if (q) {
            free(dense);
            LLMSQ_TRY(llmsq_store_put_qlinear(s, wname, q));
        } else {
            int64_t shape[2] = {job.out, job.in};
            LLMSQ_ASSERT(dense);
            LLMSQ_TRY(llmsq_store_put(s, wname, LLMSQ_DTYPE_F32, 2, shape, dense));
        }
    }
    return llmsq_model_rebind_layer(m, l);
}

static void free_obs(observe_ctx *o)
{
    for (int i = 0; i < LLMSQ_INPUT_COUNT; i++) {
        llmsq_hessian_free(&o->h[i]);
        llmsq_channel_stats_free(&o->cs[i]);
    }
    bool hessian = o->hessian, stats = o->stats;
    memset(o, 0, sizeof *o);
    o->hessian = hessian;
    o->stats = stats;
}

/* Per-thread state of the parallel forwards. */
typedef struct worker {
    float          *x;     /* [L, d] */
    llmsq_kv_cache *cache;
    capture         cap;
    llmsq_status    st;
} worker;

/* Runs block l on samples [c, c + nc) in parallel, one sample per worker, each with
 * single-threaded BLAS: OpenBLAS's threaded sgemm rounds differently with the thread
 * count, a single-threaded call does not. With an observer (o != NULL) the observed
 * inputs are added to the Hessians in sample order; otherwise the outputs are stored. */
static llmsq_status run_chunk(llmsq_model *m, int64_t l, llmsq_act_store *acts, worker *w, int64_t c, int64_t nc,
                              int64_t L, observe_ctx *obs, const llmsq_block_observer *o)
{
    for (int64_t i = 0; i < nc; i++) LLMSQ_TRY(llmsq_act_get(acts, c + i, w[i].x));
#pragma omp parallel for schedule(static, 1) num_threads((int)nc) if (nc > 1)
    for (int64_t i = 0; i < nc; i++) {
        llmsq_kv_cache_reset(w[i].cache);
        llmsq_block_observer oi;
        if (o) {
            oi = *o;
            oi.user = &w[i].cap;
        }
        w[i].st = llmsq_model_block_forward_observed(m, l, w[i].cache, w[i].x, L, o ? &oi : NULL);
    }
    for (int64_t i = 0; i < nc; i++) {
        LLMSQ_TRY(w[i].st);
        if (!o) {
            LLMSQ_TRY(llmsq_act_put(acts, c + i, w[i].x));
            continue;
        }
        for (int k = 0; k < LLMSQ_INPUT_COUNT; k++) {
            if (!obs->want[k]) continue;
            if (obs->hessian) LLMSQ_TRY(llmsq_hessian_add(&obs->h[k], w[i].cap.buf[k], L));
            if (obs->stats) llmsq_channel_stats_add(&obs->cs[k], w[i].cap.buf[k], L);
        }
    }
    return LLMSQ_OK;
}

static llmsq_status block_input(void *ctx, int64_t s, float *x)
{
    llmsq_act_store *a = ctx;
    if (s < 0 || s >= a->n)
        return llmsq_error(LLMSQ_STATUS_ARG, "calibration window %lld out of range (%lld)", (long long)s, (long long)a->n);
    return llmsq_act_get(a, s, x);
}

static void free_workers(worker *w, int64_t n)
{
    for (int64_t i = 0; w && i < n; i++) {
        free(w[i].x);
        llmsq_kv_cache_free(w[i].cache);
        for (int k = 0; k < LLMSQ_INPUT_COUNT; k++) free(w[i].cap.buf[k]);
    }
    free(w);
}

llmsq_status llmsq_calib_run(llmsq_model *m, const int32_t *tokens, const llmsq_calib_params *p,
                             const llmsq_calib_pass *pass)
{
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t N = p->nsamples, L = p->seqlen, d = c->hidden_size;
    if (L > c->max_position)
        return llmsq_error(LLMSQ_STATUS_ARG, "calibration seqlen %lld exceeds the model's context (%lld)",
                           (long long)L, (long long)c->max_position);
    bool wanted[LLMSQ_LINEAR_COUNT];
    llmsq_status st = LLMSQ_OK;

    const bool observes = pass->needs_hessian || pass->needs_channel_stats;
    if (!observes && !pass->run_block) { /* e.g. RTN: no forward, one block at a time */
        for (int64_t l = 0; l < c->n_layers && st == LLMSQ_OK; l++) {
            for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
                char module[128];
                wanted[i] = !pass->wants || pass->wants(pass->user, llmsq_linear_module(l, i, module, sizeof module));
            }
            st = rewrite(m, l, k_all, NULL, pass, wanted);
            llmsq_model_unbind_layer(m, l);
        }
        return st;
    }

    llmsq_act_store acts;
    bool spill = p->max_memory && (size_t)(N * L * d) * sizeof(float) > p->max_memory;
    LLMSQ_TRY(llmsq_act_init(&acts, N, L * d, spill, pass->fp_propagate));
    if (spill) llmsq_log("calibration activations spill to disk (%.1f MiB above --max-memory)",
                         (double)((size_t)(N * L * d) * sizeof(float)) / 1048576.0);
    observe_ctx obs = {.hessian = pass->needs_hessian, .stats = pass->needs_channel_stats};
    const int64_t P = llmsq_threads_get() < N ? llmsq_threads_get() : N;
    worker *w = calloc((size_t)P, sizeof *w);
    if (!w) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (int64_t i = 0; st == LLMSQ_OK && i < P; i++) {
        w[i].cap.obs = &obs;
        w[i].x = malloc((size_t)(L * d) * sizeof(float));
        for (int k = 0; k < LLMSQ_INPUT_COUNT && w[i].x; k++) {
            w[i].cap.buf[k] = malloc((size_t)(L * input_width(c, k)) * sizeof(float));
            if (!w[i].cap.buf[k]) w[i].x = (free(w[i].x), NULL);
        }
        st = w[i].x ? llmsq_kv_cache_create(c, L, &w[i].cache) : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    for (int64_t s = 0; st == LLMSQ_OK && s < N; s++) {
        st = llmsq_model_embed(m, tokens + s * L, L, w[0].x);
        if (st == LLMSQ_OK) st = llmsq_act_put(&acts, s, w[0].x);
    }
    if (st == LLMSQ_OK) st = llmsq_act_swap(&acts);

    const int n_groups = p->true_sequential ? 4 : 1;
    llmsq_progress *bar = p->progress ? llmsq_progress_begin(pass->name, c->n_layers * (n_groups + 1) * N) : NULL;
    int64_t step = 0;
    for (int64_t l = 0; l < c->n_layers && st == LLMSQ_OK; l++) {
        st = llmsq_model_rebind_layer(m, l);
        /* the float block's outputs feed the next block (AWQ, SmoothQuant) */
        for (int64_t s = 0; pass->fp_propagate && st == LLMSQ_OK && s < N; s += P) {
            st = run_chunk(m, l, &acts, w, s, N - s < P ? N - s : P, L, NULL, NULL);
            llmsq_progress_update(bar, step += (N - s < P ? N - s : P));
        }
        if (pass->run_block && st == LLMSQ_OK) {
            const llmsq_block_calib in = {.nsamples = N, .seqlen = L, .get = block_input, .ctx = &acts};
            st = pass->run_block(pass->user, m, l, &in);
            if (st == LLMSQ_OK) st = llmsq_model_rebind_layer(m, l);
        }
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char module[128];
            wanted[i] = !pass->wants || pass->wants(pass->user, llmsq_linear_module(l, i, module, sizeof module));
        }
        for (int g = 0; g < n_groups && st == LLMSQ_OK; g++) {
            const llmsq_linear_id *ids = p->true_sequential ? k_groups[g] : k_all;
            llmsq_block_observer o = {.fn = on_input, .user = NULL, .stop_after = LLMSQ_INPUT_ATTN};
            bool any = false;
            for (const llmsq_linear_id *id = ids; *id != LLMSQ_LINEAR_COUNT && st == LLMSQ_OK; id++) {
                if (!wanted[*id]) continue;
                llmsq_block_input in = llmsq_linear_input(*id);
                if (!obs.want[in] && obs.hessian) st = llmsq_hessian_init(&obs.h[in], input_width(c, in));
                if (!obs.want[in] && obs.stats && st == LLMSQ_OK)
                    st = llmsq_channel_stats_init(&obs.cs[in], input_width(c, in));
                obs.want[in] = true;
                o.stop_after = in > o.stop_after ? in : o.stop_after;
                any = true;
            }
            for (int64_t s = 0; any && observes && st == LLMSQ_OK && s < N; s += P) {
                st = run_chunk(m, l, &acts, w, s, N - s < P ? N - s : P, L, &obs, &o);
                llmsq_progress_update(bar, step += (N - s < P ? N - s : P));
            }
            if (!any || !observes) step += N;
            if (any && st == LLMSQ_OK) st = rewrite(m, l, ids, &obs, pass, wanted);
            free_obs(&obs);
        }
        /* the block's output with its rewritten weights feeds the next block */
        for (int64_t s = 0; !pass->fp_propagate && st == LLMSQ_OK && s < N; s += P) {
            st = run_chunk(m, l, &acts, w, s, N - s < P ? N - s : P, L, NULL, NULL);
            llmsq_progress_update(bar, step += (N - s < P ? N - s : P));
        }
        if (st == LLMSQ_OK) st = llmsq_act_swap(&acts);
        llmsq_model_unbind_layer(m, l);
    }
    llmsq_progress_end(bar);
    free_obs(&obs);
    free_workers(w, P);
    llmsq_act_free(&acts);
    return st;
}
