/*
 * Evaluation: perplexity under named protocols (DESIGN.md, "Evaluation protocols").
 *
 *  gptq      the text encoded once with one BOS, non-overlapping windows of seqlen tokens,
 *            tail dropped, each window scored from scratch on its seqlen-1 predictions.
 *  docs      documents (blank-line separated; JSONL rows) each encoded with its own BOS,
 *            streams concatenated, then windows as gptq.
 *  llamacpp  windows of seqlen (default 512) as llama.cpp's perplexity tool: the first
 *            token of each window replaced by BOS, only the second half scored.
 *  stride:N  sliding windows of seqlen advancing by N; every token after the first is
 *            scored exactly once, with up to seqlen-1 tokens of context.
 * ppl = exp(sum NLL / scored tokens), NLL accumulated in double in a fixed order, so the
 * result does not depend on the thread count.
 */
#ifndef LLMSQ_EVAL_H
#define LLMSQ_EVAL_H

#include "llmsq/model.h"
#include "llmsq/calib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_ppl_kind {
    LLMSQ_PPL_GPTQ = 0,
    LLMSQ_PPL_DOCS,
    LLMSQ_PPL_LLAMACPP,
    LLMSQ_PPL_STRIDE
} llmsq_ppl_kind;

typedef struct llmsq_ppl_params {
    llmsq_ppl_kind kind;
    int64_t stride;       /* stride:N only, range [1, seqlen] */
    int64_t seqlen;       /* window length; 0 = the model's context (llamacpp: 512) */
    int64_t max_windows;  /* 0 = all */
    bool    progress;     /* draw a progress bar (stderr TTY only) */
} llmsq_ppl_params;

LLMSQ_API llmsq_ppl_params llmsq_ppl_default_params(void);

/* Parses "gptq", "docs", "llamacpp" or "stride:N". Errors: ARG naming the bad value. */
LLMSQ_API llmsq_status llmsq_ppl_parse_protocol(const char *s, llmsq_ppl_params *p);

typedef struct llmsq_ppl_result {
    char    protocol[32];       /* "gptq", "stride:256", ... */
    int64_t seqlen;
    int64_t stream_tokens;      /* tokens in the encoded stream (BOS included) */
    int64_t windows;
    int64_t tokens;             /* scored (predicted) tokens */
    char    token_sha256[65];   /* sha256 of the stream as int32 little-endian ids */
    double  nll_sum;
    double  ppl;
    double  seconds;            /* forward time (tokenization excluded) */
    double  tokenize_seconds;
} llmsq_ppl_result;

/* Encodes a dataset the way protocol p wants (one BOS for gptq/llamacpp/stride, one per
 * document for docs). *ids is malloc'd. Errors: ARG (model has no tokenizer). */
LLMSQ_API llmsq_status llmsq_ppl_encode(const llmsq_model *m, const llmsq_dataset *d,
                                        const llmsq_ppl_params *p, int32_t **ids, size_t *n);

/* Scores an encoded stream ids [n] under p. Errors: ARG (stream shorter than one window,
 * seqlen above the model's context), NOMEM. */
LLMSQ_API llmsq_status llmsq_ppl_score(const llmsq_model *m, const int32_t *ids, size_t n,
                                       const llmsq_ppl_params *p, llmsq_ppl_result *r);

/* Loads, encodes and scores a text file (kind auto-detected). */
LLMSQ_API llmsq_status llmsq_ppl_file(const llmsq_model *m, const char *path,
                                      const llmsq_ppl_params *p, llmsq_ppl_result *r);

/* Greedy generation: appends up to max_new tokens after prompt ids [n_prompt] (stops at
 * EOS). *out (malloc'd) holds the prompt followed by the generated ids. */
LLMSQ_API llmsq_status llmsq_generate_greedy(const llmsq_model *m, const int32_t *prompt,
                                             size_t n_prompt, int64_t max_new,
                                             int32_t **out, size_t *n_out);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_EVAL_H */
