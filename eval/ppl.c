/* Perplexity under the named protocols of DESIGN.md. Windows are scored independently
 * (in parallel for small models), each window's NLL summed in double, and the window sums
 * added in window order, so the result does not depend on the thread count. */
#include "llmsq/eval.h"
#include "llmsq/runtime.h"
#include "llmsq/tokenizer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIT_ROWS 64 /* lm_head rows computed at a time: bounds memory for big vocabularies */

llmsq_ppl_params llmsq_ppl_default_params(void)
{
    return (llmsq_ppl_params){.kind = LLMSQ_PPL_GPTQ, .stride = 0, .seqlen = 0, .max_windows = 0, .progress = true};
}

llmsq_status llmsq_ppl_parse_protocol(const char *s, llmsq_ppl_params *p)
{
    if (strcmp(s, "gptq") == 0) p->kind = LLMSQ_PPL_GPTQ;
    else if (strcmp(s, "docs") == 0) p->kind = LLMSQ_PPL_DOCS;
    else if (strcmp(s, "llamacpp") == 0) p->kind = LLMSQ_PPL_LLAMACPP;
    else if (strncmp(s, "stride:", 7) == 0) {
        char *end;
        long long n = strtoll(s + 7, &end, 10);
        if (end == s + 7 || *end || n <= 0)
            return llmsq_error(LLMSQ_STATUS_ARG, "protocol '%s': the stride must be a positive integer", s);
        p->kind = LLMSQ_PPL_STRIDE;
        p->stride = n;
    } else {
        return llmsq_error(LLMSQ_STATUS_ARG, "unknown protocol '%s' (gptq, docs, llamacpp, stride:N)", s);
    }
    return LLMSQ_OK;
}

/* A window: ids[start .. start+len) fed to the model (first id replaced by BOS when
 * bos_first); targets at window positions first..len-1 are scored from position t-1. */
typedef struct ppl_window {
    int64_t start, len, first;
    bool    bos_first;
} ppl_window;

static llmsq_status plan_windows(const llmsq_ppl_params *p, int64_t n, int64_t seqlen, ppl_window **out, int64_t *nw)
{
    int64_t cap = 0;
    ppl_window *w = NULL;
    if (p->kind == LLMSQ_PPL_STRIDE) {
        if (p->stride > seqlen)
            return llmsq_error(LLMSQ_STATUS_ARG, "stride %lld is larger than the window (%lld)", (long long)p->stride,
                               (long long)seqlen);
        cap = n / p->stride + 2;
    } else {
        cap = n / seqlen;
    }
    if (cap == 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "the text has %lld tokens, fewer than one window of %lld", (long long)n,
                           (long long)seqlen);
    w = calloc((size_t)cap, sizeof *w);
    if (!w) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    int64_t k = 0;
    if (p->kind == LLMSQ_PPL_STRIDE) {
        int64_t prev_end = 0;
        for (int64_t begin = 0; begin < n; begin += p->stride) {
            int64_t end = begin + seqlen < n ? begin + seqlen : n;
            int64_t first = prev_end - begin > 1 ? prev_end - begin : 1;
            if (end - begin >= 2 && first < end - begin) w[k++] = (ppl_window){begin, end - begin, first, false};
            prev_end = end;
            if (end == n) break;
        }
    } else {
        int64_t first = p->kind == LLMSQ_PPL_LLAMACPP ? seqlen / 2 + 1 : 1;
        for (; k < cap; k++) w[k] = (ppl_window){k * seqlen, seqlen, first, p->kind == LLMSQ_PPL_LLAMACPP};
    }
    if (p->max_windows > 0 && k > p->max_windows) k = p->max_windows;
    *out = w;
    *nw = k;
    return LLMSQ_OK;
}

/* Sum of -log p(target) over one window. */
static llmsq_status score_window(const llmsq_model *m, llmsq_kv_cache *cache, const int32_t *ids,
                                 const ppl_window *w, int32_t bos, float *hidden, float *logits, double *nll)
{
    const llmsq_config *c = llmsq_model_config(m);
    const int64_t V = c->vocab_size, d = c->hidden_size;
    int32_t *toks = malloc((size_t)w->len * sizeof *toks);
    if (!toks) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    memcpy(toks, ids + w->start, (size_t)w->len * sizeof *toks);
    if (w->bos_first && bos >= 0) toks[0] = bos;
    llmsq_kv_cache_reset(cache);
    llmsq_status st = llmsq_model_forward(m, cache, toks, w->len, NULL, hidden);
    double sum = 0;
    /* position t predicts toks[t+1]; only targets first..len-1 count */
    for (int64_t t0 = w->first - 1; st == LLMSQ_OK && t0 < w->len - 1; t0 += LOGIT_ROWS) {
        int64_t rows = w->len - 1 - t0 < LOGIT_ROWS ? w->len - 1 - t0 : LOGIT_ROWS;
        st = llmsq_model_lm_head(m, hidden + t0 * d, rows, logits);
        for (int64_t r = 0; st == LLMSQ_OK && r < rows; r++) {
            const float *lg = logits + r * V;
            float mx = lg[0];
            for (int64_t v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
            double se = 0;
            for (int64_t v = 0; v < V; v++) se += exp((double)lg[v] - mx);
            sum += log(se) + mx - (double)lg[toks[t0 + r + 1]];
        }
    }
    free(toks);
    *nll = sum;
    return st;
}

llmsq_status llmsq_ppl_score(const llmsq_model *m, const int32_t *ids, size_t n, const llmsq_ppl_params *p,
                             llmsq_ppl_result *r)
{
    const llmsq_config *c = llmsq_model_config(m);
    memset(r, 0, sizeof *r);
    int64_t seqlen = p->seqlen > 0 ? p->seqlen : (p->kind == LLMSQ_PPL_LLAMACPP ? 512 : c->max_position);
    if (seqlen > c->max_position)
        return llmsq_error(LLMSQ_STATUS_ARG, "seqlen %lld exceeds the model's context of %lld tokens", (long long)seqlen,
                           (long long)c->max_position);
    if (seqlen < 2) return llmsq_error(LLMSQ_STATUS_ARG, "seqlen must be at least 2");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return llmsq_error(LLMSQ_STATUS_ARG, "token %d at position %zu is outside the vocabulary", ids[i], i);
    ppl_window *win;
    int64_t nw;
    LLMSQ_TRY(plan_windows(p, (int64_t)n, seqlen, &win, &nw));

    switch (p->kind) {
    case LLMSQ_PPL_GPTQ: snprintf(r->protocol, sizeof r->protocol, "gptq"); break;
    case LLMSQ_PPL_DOCS: snprintf(r->protocol, sizeof r->protocol, "docs"); break;
    case LLMSQ_PPL_LLAMACPP: snprintf(r->protocol, sizeof r->protocol, "llamacpp"); break;
    case LLMSQ_PPL_STRIDE: snprintf(r->protocol, sizeof r->protocol, "stride:%lld", (long long)p->stride); break;
    }
    r->seqlen = seqlen;
    r->stream_tokens = (int64_t)n;
    r->windows = nw;
    llmsq_token_sha256(ids, n, r->token_sha256);

    double *sums = calloc((size_t)nw, sizeof *sums);
    if (!sums) {
        free(win);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    /* Small models: one window per thread, BLAS single-threaded inside. Big models: one
     * window at a time with threaded BLAS. */
    bool per_window = c->hidden_size * c->n_layers <= 4096 * 4 && nw > 1;
    int32_t bos = m ? c->bos_id : -1;
    if (llmsq_model_tokenizer(m) && llmsq_tokenizer_bos(llmsq_model_tokenizer(m)) >= 0)
        bos = llmsq_tokenizer_bos(llmsq_model_tokenizer(m));
    llmsq_progress *bar = p->progress ? llmsq_progress_begin("perplexity", nw) : NULL;
    int64_t done = 0;
    llmsq_status st = LLMSQ_OK;
    double t0 = llmsq_time_now();
#pragma omp parallel if (per_window)
    {
        llmsq_kv_cache *cache = NULL;
        float *hidden = malloc((size_t)(seqlen * c->hidden_size) * sizeof(float));
        float *logits = malloc((size_t)(LOGIT_ROWS * c->vocab_size) * sizeof(float));
        llmsq_status lst = llmsq_kv_cache_create(c, seqlen, &cache);
        if (lst == LLMSQ_OK && (!hidden || !logits)) lst = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
#pragma omp for schedule(dynamic)
        for (int64_t i = 0; i < nw; i++) {
            if (lst != LLMSQ_OK) continue;
            lst = score_window(m, cache, ids, &win[i], bos, hidden, logits, &sums[i]);
            int64_t now;
#pragma omp atomic capture
            now = ++done;
            if (omp_get_thread_num() == 0) llmsq_progress_update(bar, now);
        }
        if (lst != LLMSQ_OK) {
#pragma omp critical
            st = lst;
        }
        llmsq_kv_cache_free(cache);
        free(hidden);
        free(logits);
    }
    llmsq_progress_end(bar);
    r->seconds = llmsq_time_now() - t0;
    if (st == LLMSQ_OK) {
        for (int64_t i = 0; i < nw; i++) {
            r->nll_sum += sums[i];
            r->tokens += win[i].len - win[i].first;
        }
        r->ppl = exp(r->nll_sum / (double)r->tokens);
    }
    free(sums);
    free(win);
    return st;
}

llmsq_status llmsq_ppl_encode(const llmsq_model *m, const llmsq_dataset *d, const llmsq_ppl_params *p, int32_t **ids,
                              size_t *n)
{
    const llmsq_tokenizer *tok = llmsq_model_tokenizer(m);
    if (!tok)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: the model has no tokenizer (tokenizer.model not found)",
                           llmsq_model_source(m));
    if (p->kind != LLMSQ_PPL_DOCS) {
        size_t len;
        char *text = llmsq_dataset_joined(d, &len);
        if (!text) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        llmsq_status st = llmsq_tokenizer_encode(tok, text, len, true, ids, n);
        free(text);
        return st;
    }
    size_t cap = 0, total = 0;
    int32_t *all = NULL;
    for (size_t i = 0; i < d->n_docs; i++) {
        int32_t *part;
        size_t k;
        llmsq_status st = llmsq_tokenizer_encode(tok, d->docs[i], d->doc_lens[i], true, &part, &k);
        if (st != LLMSQ_OK) {
            free(all);
            return st;
        }
        if (total + k > cap) {
            cap = 2 * (total + k);
            int32_t *grown = realloc(all, cap * sizeof *grown);
            if (!grown) {
                free(part);
                free(all);
                return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
            }
            all = grown;
        }
        memcpy(all + total, part, k * sizeof *part);
        total += k;
        free(part);
    }
    *ids = all;
    *n = total;
    return LLMSQ_OK;
}

llmsq_status llmsq_ppl_file(const llmsq_model *m, const char *path, const llmsq_ppl_params *p, llmsq_ppl_result *r)
{
    llmsq_dataset d;
    LLMSQ_TRY(llmsq_dataset_load(path, LLMSQ_TEXT_AUTO, &d));
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = llmsq_time_now();
    llmsq_status st = llmsq_ppl_encode(m, &d, p, &ids, &n);
    double t_tok = llmsq_time_now() - t0;
    llmsq_dataset_free(&d);
    if (st == LLMSQ_OK) st = llmsq_ppl_score(m, ids, n, p, r);
    if (st != LLMSQ_OK) st = llmsq_error_prefix(st, "%s", path);
    r->tokenize_seconds = t_tok;
    free(ids);
    return st;
}
