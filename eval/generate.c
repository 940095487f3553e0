/* Greedy decoding with the KV cache (prefill once, then one token per step). */
#include "llmsq/eval.h"

#include <stdlib.h>
#include <string.h>

llmsq_status llmsq_generate_greedy(const llmsq_model *m, const int32_t *prompt, size_t n_prompt, int64_t max_new,
                                   int32_t **out, size_t *n_out)
{
    const llmsq_config *c = llmsq_model_config(m);
    if (n_prompt == 0) return llmsq_error(LLMSQ_STATUS_ARG, "generate: empty prompt");
    if ((int64_t)n_prompt >= c->max_position)
        return llmsq_error(LLMSQ_STATUS_ARG, "generate: the prompt (%zu tokens) fills the context (%lld)", n_prompt,
                           (long long)c->max_position);
    int64_t total = (int64_t)n_prompt + max_new;
    if (total > c->max_position) total = c->max_position;
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    llmsq_kv_cache *cache = NULL;
    llmsq_status st = llmsq_kv_cache_create(c, total, &cache);
    if (st == LLMSQ_OK && (!ids || !logits)) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    size_t n = n_prompt;
    if (st == LLMSQ_OK) {
        memcpy(ids, prompt, n_prompt * sizeof *ids);
        /* prefill all but the last prompt token; each step then feeds one token */
        if (n_prompt > 1) st = llmsq_model_forward(m, cache, ids, (int64_t)n_prompt - 1, NULL, NULL);
    }
    while (st == LLMSQ_OK && (int64_t)n < total) {
        st = llmsq_model_forward(m, cache, &ids[n - 1], 1, logits, NULL);
        if (st != LLMSQ_OK) break;
        int32_t best = 0;
        for (int64_t v = 1; v < c->vocab_size; v++)
            if (logits[v] > logits[best]) best = (int32_t)v;
        ids[n++] = best;
        if (best == c->eos_id) break;
    }
    free(logits);
    llmsq_kv_cache_free(cache);
    if (st != LLMSQ_OK) {
        free(ids);
        return st;
    }
    *out = ids;
    *n_out = n;
    return LLMSQ_OK;
}
