/*
 * Calibration: text datasets, calibration windows (GPTQ's sampling recipe), and the
 * layer-wise sequential block runner that feeds passes (quantizers, pruners) with each
 * linear's weights and Hessian.
 */
#ifndef LLMSQ_CALIB_H
#define LLMSQ_CALIB_H

#include "llmsq/model.h"
#include "llmsq/quant.h"
#include "llmsq/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_text_kind {
    LLMSQ_TEXT_AUTO = 0,  /* by extension: .jsonl -> JSONL, wiki.*.raw / *.tokens -> WIKITEXT, else PLAIN */
    LLMSQ_TEXT_PLAIN,     /* documents separated by blank lines */
    LLMSQ_TEXT_JSONL,     /* one JSON object per line, document in its "text" field */
    LLMSQ_TEXT_WIKITEXT   /* WikiText raw/tokens files: one dataset row per line */
} llmsq_text_kind;

typedef struct llmsq_dataset {
    llmsq_text_kind kind;
    char   *raw;       /* the file as read (plain and wikitext) */
    size_t  raw_len;
    size_t  n_docs;
    char  **docs;      /* documents (NUL-terminated, owned) */
    size_t *doc_lens;
} llmsq_dataset;

/* Loads a text file. Errors: IO, FORMAT (invalid UTF-8 is accepted; a JSONL line that is
 * not an object with a string "text" field is rejected with its line number). */
LLMSQ_API llmsq_status llmsq_dataset_load(const char *path, llmsq_text_kind kind,
                                          llmsq_dataset *out);
LLMSQ_API void llmsq_dataset_free(llmsq_dataset *d);

/* The text a whole-corpus protocol encodes once: plain files as they are; WikiText rows
 * joined with "\n\n" (GPTQ's recipe); JSONL documents joined with "\n\n". malloc'd. */
LLMSQ_API char *llmsq_dataset_joined(const llmsq_dataset *d, size_t *len);

/* ---- calibration windows and the block runner ------------------------------------------ */

typedef struct llmsq_calib_params {
    int64_t  nsamples;        /* windows; default 128, range [1, 1e6] */
    int64_t  seqlen;          /* tokens per window; default 512, range [2, model context] */
    uint64_t seed;            /* default 0 */
    bool     true_sequential; /* within a block: q/k/v, then o, then gate/up, then down, each
                                 observed with the earlier groups already compressed (default true) */
    size_t   max_memory;      /* bytes of activations kept in RAM; above it they spill to a
                                 zstd-compressed temporary file. 0 = no limit (default) */
    bool     progress;        /* progress bar on a TTY */
} llmsq_calib_params;

LLMSQ_API llmsq_calib_params llmsq_calib_default_params(void);

/* GPTQ's recipe for nsamples windows of seqlen tokens, seeded: JSONL documents are drawn at
 * random until one has more than seqlen tokens, then a random offset in it; plain text and
 * WikiText are encoded once (with BOS) and each window takes a random offset.
 * tokens [nsamples * seqlen] is malloc'd. Errors: ARG (no document or text long enough for
 * one window, the message says how long it is), and the tokenizer's errors. */
LLMSQ_API llmsq_status llmsq_calib_sample(const llmsq_tokenizer *tok, const llmsq_dataset *d,
                                          const llmsq_calib_params *p, int32_t **tokens);

/* Per-input-channel statistics of a linear's calibration inputs (AWQ, SmoothQuant, Wanda). */
typedef struct llmsq_channel_stats {
    int64_t n;        /* channels (in_features) */
    int64_t rows;     /* tokens accumulated */
    double *abs_sum;  /* [n] sum |x_j| (mean = abs_sum / rows) */
    double *abs_max;  /* [n] max |x_j| */
    double *sq_sum;   /* [n] sum x_j^2 (the squared L2 norm Wanda uses) */
} llmsq_channel_stats;

/* One linear handed to a pass. */
typedef struct llmsq_linear_job {
    int64_t         layer;
    llmsq_linear_id id;
    const char     *module;  /* "model.layers.3.self_attn.q_proj" */
    const float    *W;       /* current weights [out, in] */
    int64_t         out, in;
    double         *H;       /* [in, in] = 2/N sum x x^T over the calibration tokens; the pass may
                                overwrite it; NULL when the pass does not need it */
    const llmsq_channel_stats *stats; /* statistics of the same inputs; NULL unless requested */
} llmsq_linear_job;

/* The calibration inputs of one block, for block-level passes: window s's residual-stream
 * input x [seqlen, hidden_size] is copied out by get(ctx, s, x). */
typedef struct llmsq_block_calib {
    int64_t nsamples, seqlen;
    llmsq_status (*get)(void *ctx, int64_t s, float *x);
    void *ctx;
} llmsq_block_calib;

/* A pass that rewrites linears, e.g. GPTQ: the runner observes the inputs it needs, calls
 * run for each wanted linear, stores the result and re-runs the block with it. */
typedef struct llmsq_calib_pass {
    const char *name;
    bool        needs_hessian;
    bool        needs_channel_stats;
    /* false leaves the linear unchanged (ignore lists); NULL = every linear */
    bool (*wants)(void *user, const char *module);
    /* *out receives the new linear (the store takes it) */
    llmsq_status (*run)(void *user, const llmsq_linear_job *job, llmsq_qlinear **out);
    /* Alternative for passes whose result is a dense weight (pruning): W_out [out, in] arrives
     * as a copy of job->W; the pass rewrites it in place and the runner stores it (F32). When
     * set, it is called instead of run; it may set *q to a quantized result instead. */
    llmsq_status (*run_dense)(void *user, const llmsq_linear_job *job, float *W_out, llmsq_qlinear **q);
    /* Optional: a permutation of down_proj's input channels, asked for before down_proj is
     * rewritten (RIA's channel permutation for N:M). perm [in]: new column k = old column
     * perm[k]; *use = false keeps the order. The runner folds it into the model exactly: rows
     * of gate_proj and up_proj (and their biases) and columns of down_proj are permuted in the
     * store, and the job's W, H and statistics are permuted before run/run_dense. Only
     * down_proj is offered: other linears read the residual stream or attention heads, whose
     * channel order cannot be changed for one layer alone. */
    llmsq_status (*permute_input)(void *user, const llmsq_linear_job *job, int32_t *perm, bool *use);
    /* Optional block-level step (AWQ, SmoothQuant), called once per layer before the per-linear
     * rewrite with the block's calibration inputs: it may replace any of the block's tensors in
     * the store (the runner rebinds the layer afterwards). */
    llmsq_status (*run_block)(void *user, llmsq_model *m, int64_t layer, const llmsq_block_calib *in);
    /* The next block's inputs are this block's outputs as it was before the pass touched it (the
     * float model, as AWQ's and SmoothQuant's reference code calibrate), not the rewritten
     * block's (GPTQ's sequential recipe). */
    bool fp_propagate;
    void *user;
} llmsq_calib_pass;

/* Runs `pass` over every block, layer by layer: the calibration windows tokens
 * [nsamples * seqlen] enter block 0; each block is observed (Hessians and/or channel
 * statistics, accumulated in window order), its linears
 * rewritten, and it is run again with the new weights to produce the next block's inputs.
 * Only one block's weights stay converted to F32 (earlier blocks are unbound; rebind them
 * with llmsq_model_rebind_layer before evaluating). Passes without Hessians skip the
 * forward passes entirely. Errors: from the pass, NOMEM, IO (spill file). */
LLMSQ_API llmsq_status llmsq_calib_run(llmsq_model *m, const int32_t *tokens,
                                       const llmsq_calib_params *p, const llmsq_calib_pass *pass);

/* Bytes the runner keeps per phase for this model and params (for --dry-run). */
typedef struct llmsq_calib_plan {
    size_t activations;     /* calibration activations in RAM (after the max_memory cap) */
    size_t spilled;         /* uncompressed bytes that go to the spill file */
    size_t block_scratch;   /* one block forward on one window (attention scores, MLP) */
    size_t hessians;        /* the Hessians alive at once (largest group) */
} llmsq_calib_plan;

/* Accumulates X [T, n] into the statistics (s->n == n); init/free allocate and release. */
LLMSQ_API llmsq_status llmsq_channel_stats_init(llmsq_channel_stats *s, int64_t n);
LLMSQ_API void         llmsq_channel_stats_add(llmsq_channel_stats *s, const float *X, int64_t T);
LLMSQ_API void         llmsq_channel_stats_free(llmsq_channel_stats *s);

LLMSQ_API void llmsq_calib_plan_bytes(const llmsq_config *c, const llmsq_calib_params *p,
                                      bool needs_hessian, llmsq_calib_plan *plan);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_CALIB_H */
