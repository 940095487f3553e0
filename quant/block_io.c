/* Block-level helpers for AWQ and SmoothQuant: input capture and tensor copies (block_io.h). */
#include "quant/block_io.h"

#include "llmsq/runtime.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const llmsq_block_weight_suffix[LLMSQ_LINEAR_COUNT] = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};

typedef struct cap_ctx {
    llmsq_block_acts *a;
    int64_t           row0; /* first row of this window in the X arrays */
} cap_ctx;

static llmsq_status on_input(void *user, llmsq_block_input which, const float *X, int64_t T, int64_t n)
{
    cap_ctx *c = user;
    if (c->a->X[which]) memcpy(c->a->X[which] + c->row0 * n, X, (size_t)(T * n) * sizeof(float));
    return LLMSQ_OK;
}

void llmsq_block_acts_free(llmsq_block_acts *a)
{
    for (int k = 0; k < LLMSQ_INPUT_COUNT; k++) free(a->X[k]);
    memset(a, 0, sizeof *a);
}

llmsq_status llmsq_block_capture(llmsq_model *m, int64_t layer, const llmsq_block_calib *in,
                                 const bool want[LLMSQ_INPUT_COUNT], llmsq_block_acts *a)
{
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t N = in->nsamples, L = in->seqlen, d = c->hidden_size;
    memset(a, 0, sizeof *a);
    a->rows = N * L;
    a->width[LLMSQ_INPUT_ATTN] = d;
    a->width[LLMSQ_INPUT_O] = c->n_heads * c->head_dim;
    a->width[LLMSQ_INPUT_MLP] = d;
    a->width[LLMSQ_INPUT_DOWN] = c->intermediate_size;
    llmsq_block_input last = LLMSQ_INPUT_ATTN;
    for (int k = 0; k < LLMSQ_INPUT_COUNT; k++) {
        if (!want[k]) continue;
        last = (llmsq_block_input)k;
        size_t bytes = (size_t)(a->rows * a->width[k]) * sizeof(float);
        a->X[k] = malloc(bytes);
        if (!a->X[k]) {
            llmsq_block_acts_free(a);
            return llmsq_error(LLMSQ_STATUS_NOMEM, "layer %lld: out of memory for %.1f MiB of block inputs "
                               "(use fewer --nsamples)", (long long)layer, (double)bytes / 1048576.0);
        }
    }
    const int64_t P = llmsq_threads_get() < N ? llmsq_threads_get() : N;
    llmsq_status *sts = calloc((size_t)N, sizeof *sts);
    if (!sts) {
        llmsq_block_acts_free(a);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    /* one window per thread, single-threaded BLAS inside (the runner's determinism rule) */
#pragma omp parallel num_threads((int)P) if (P > 1)
    {
        float *x = malloc((size_t)(L * d) * sizeof(float));
        llmsq_kv_cache *cache = NULL;
        llmsq_status st = x ? llmsq_kv_cache_create(c, L, &cache) : LLMSQ_STATUS_NOMEM;
#pragma omp for schedule(static, 1)
        for (int64_t s = 0; s < N; s++) {
            if (st != LLMSQ_OK) {
                sts[s] = st;
                continue;
            }
            cap_ctx cc = {a, s * L};
            llmsq_block_observer o = {.fn = on_input, .user = &cc, .stop_after = last};
            llmsq_kv_cache_reset(cache);
            sts[s] = in->get(in->ctx, s, x);
            if (sts[s] == LLMSQ_OK) sts[s] = llmsq_model_block_forward_observed(m, layer, cache, x, L, &o);
        }
        free(x);
        llmsq_kv_cache_free(cache);
    }
    int64_t bad = -1;
    for (int64_t s = 0; s < N && bad < 0; s++) bad = sts[s] != LLMSQ_OK ? s : -1;
    free(sts);
    if (bad >= 0) {
        /* error messages are per thread: redo the failing window here to report its own */
        float *x = malloc((size_t)(L * d) * sizeof(float));
        llmsq_kv_cache *cache = NULL;
        llmsq_status st = x ? llmsq_kv_cache_create(c, L, &cache)
                            : llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for a calibration window");
        cap_ctx cc = {a, bad * L};
        llmsq_block_observer o = {.fn = on_input, .user = &cc, .stop_after = last};
        if (st == LLMSQ_OK) st = in->get(in->ctx, bad, x);
        if (st == LLMSQ_OK) st = llmsq_model_block_forward_observed(m, layer, cache, x, L, &o);
        if (st == LLMSQ_OK) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory in a calibration worker");
        free(x);
        llmsq_kv_cache_free(cache);
        llmsq_block_acts_free(a);
        return llmsq_error_prefix(st, "layer %lld, calibration window %lld", (long long)layer, (long long)bad);
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_block_tensor_copy(llmsq_model *m, int64_t layer, const char *suffix, float **out, int64_t *n)
{
    char name[192];
    snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)layer, suffix);
    llmsq_store *s = llmsq_model_store(m);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "missing tensor '%s'", name);
    const float *f;
    LLMSQ_TRY(llmsq_store_get_f32(s, name, &f));
    *n = llmsq_tensor_numel(t);
    *out = malloc((size_t)*n * sizeof(float));
    if (!*out) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory copying '%s'", name);
    memcpy(*out, f, (size_t)*n * sizeof(float));
    return LLMSQ_OK;
}

llmsq_status llmsq_block_tensor_put(llmsq_model *m, int64_t layer, const char *suffix, const float *data)
{
    char name[192];
    snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)layer, suffix);
    llmsq_store *s = llmsq_model_store(m);
    const llmsq_tensor *t = llmsq_store_get(s, name);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "missing tensor '%s'", name);
    const int64_t n = llmsq_tensor_numel(t);
    int64_t shape[LLMSQ_MAX_DIMS];
    const int ndim = t->ndim;
    memcpy(shape, t->shape, (size_t)ndim * sizeof *shape);
    const llmsq_dtype dt = t->dtype == LLMSQ_DTYPE_F16 || t->dtype == LLMSQ_DTYPE_BF16 ? t->dtype : LLMSQ_DTYPE_F32;
    void *buf = malloc(llmsq_dtype_nbytes(dt, n));
    if (!buf) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory storing '%s'", name);
    if (dt == LLMSQ_DTYPE_F32) {
        memcpy(buf, data, (size_t)n * sizeof(float));
    } else {
        uint16_t *h = buf;
        for (int64_t i = 0; i < n; i++) h[i] = dt == LLMSQ_DTYPE_F16 ? llmsq_f32_to_f16(data[i]) : llmsq_f32_to_bf16(data[i]);
    }
    return llmsq_store_put(s, name, dt, ndim, shape, buf);
}
