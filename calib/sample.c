/* Calibration windows: GPTQ's sampling recipe with a seeded, portable generator. */
#include "llmsq/calib.h"
#include "llmsq/runtime.h"

#include <stdlib.h>
#include <string.h>

llmsq_calib_params llmsq_calib_default_params(void)
{
    return (llmsq_calib_params){.nsamples = 128, .seqlen = 512, .seed = 0, .true_sequential = true,
                                .max_memory = 0, .progress = true};
}

/* Uniform integer in [0, n) without modulo bias. */
static uint64_t below(uint64_t *s, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do v = llmsq_splitmix64(s);
    while (v >= limit);
    return v % n;
}

llmsq_status llmsq_calib_sample(const llmsq_tokenizer *tok, const llmsq_dataset *d, const llmsq_calib_params *p,
                                int32_t **tokens)
{
    const int64_t N = p->nsamples, L = p->seqlen;
    if (N < 1 || L < 2) return llmsq_error(LLMSQ_STATUS_ARG, "calibration needs nsamples >= 1 and seqlen >= 2");
    int32_t *out = malloc((size_t)(N * L) * sizeof *out);
    if (!out) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory for %lld calibration tokens", (long long)(N * L));
    uint64_t rng = p->seed;
    llmsq_status st = LLMSQ_OK;
    if (d->kind == LLMSQ_TEXT_JSONL) {
        /* GPTQ's C4 loader: redraw documents until one is longer than the window. The
         * draw limit turns "no document is long enough" into an error, not a hang. */
        size_t longest = 0;
        for (int64_t s = 0; s < N && st == LLMSQ_OK; s++) {
            bool found = false;
            for (int tries = 0; tries < 10000 && !found && st == LLMSQ_OK; tries++) {
                size_t k = (size_t)below(&rng, d->n_docs);
                int32_t *ids;
                size_t n;
                st = llmsq_tokenizer_encode(tok, d->docs[k], d->doc_lens[k], true, &ids, &n);
                if (st != LLMSQ_OK) break;
                longest = n > longest ? n : longest;
                if ((int64_t)n > L) {
                    uint64_t off = below(&rng, (uint64_t)((int64_t)n - L));
                    memcpy(out + s * L, ids + off, (size_t)L * sizeof *out);
                    found = true;
                }
                free(ids);
            }
            if (st == LLMSQ_OK && !found)
                st = llmsq_error(LLMSQ_STATUS_ARG,
                                 "no calibration document is longer than %lld tokens (longest seen: %zu); use a "
                                 "smaller --seqlen",
                                 (long long)L, longest);
        }
    } else {
        size_t len, n;
        char *text = llmsq_dataset_joined(d, &len);
        int32_t *ids = NULL;
        if (!text) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        if (st == LLMSQ_OK) st = llmsq_tokenizer_encode(tok, text, len, true, &ids, &n);
        free(text);
        if (st == LLMSQ_OK && (int64_t)n <= L)
            st = llmsq_error(LLMSQ_STATUS_ARG,
                             "the calibration text has %zu tokens, too short for one window of %lld (+1)", n,
                             (long long)L);
        for (int64_t s = 0; st == LLMSQ_OK && s < N; s++) {
            uint64_t off = below(&rng, (uint64_t)((int64_t)n - L));
            memcpy(out + s * L, ids + off, (size_t)L * sizeof *out);
        }
        free(ids);
    }
    if (st != LLMSQ_OK) {
        free(out);
        return st;
    }
    *tokens = out;
    return LLMSQ_OK;
}
