/*
 * Speed report: prefill and decode throughput of a model on this machine, next to the
 * rooflines measured in the same run (`llmsq eval --speed`).
 *
 *  prefill   B sequences of P seeded random token ids, one llmsq_model_forward_batch call
 *            (hidden states only), then the lm_head on the last row of each sequence: the
 *            time to first token. P x vocab logits are never computed, as a server would not.
 *  decode    D steps of llmsq_model_forward_batch with T = 1 on the B sequences, logits out,
 *            next token = argmax (greedy), so every step reads all weights once.
 *  rooflines decode: B tokens per (bytes read per step / read bandwidth), bytes per step =
 *            packed block linears + lm_head + the KV cache at the mean context P + D/2;
 *            prefill: sgemm FLOP rate / FLOPs per token (2 x block linear params + attention
 *            at the mean causal context (P + 1)/2 + the lm_head's 2 V d shared by P tokens).
 *            Both are upper bounds of a kernel that streams its operands exactly once; a model
 *            whose weights fit in the CPU caches can decode above its bandwidth roofline.
 *
 * Timings run first; peak RSS is read right after them, before the bandwidth buffer and the
 * sgemm operands are allocated, so it is the model's (and the evaluation's) footprint.
 */
#ifndef LLMSQ_SPEED_H
#define LLMSQ_SPEED_H

#include "llmsq/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmsq_speed_params {
    int64_t  prefill;          /* P: prompt tokens per sequence, [1, 1 << 20] (default 512) */
    int64_t  decode;           /* D: decode steps, [1, 1 << 20] (default 128) */
    int64_t  batch;            /* B: sequences run together, [1, 4096] (default 1) */
    uint64_t seed;             /* random prompt ids (default 1) */
    size_t   bandwidth_bytes;  /* buffer of the read-bandwidth test, >= 1 MiB (default 256 MiB:
                                  8x a large L3, so the caches cannot serve it) */
    int64_t  sgemm_n;          /* size of the n x n x n sgemm of the FLOP rate, [16, 16384]
                                  (default 1024) */
    bool     progress;         /* progress bar over the decode steps (stderr TTY only) */
} llmsq_speed_params;

LLMSQ_API llmsq_speed_params llmsq_speed_default_params(void);

typedef struct llmsq_speed_result {
    int64_t prefill, decode, batch;  /* as run */
    int     threads;
    bool    packed;                  /* the model is packed (pack below is filled) */
    llmsq_model_pack_info pack;      /* llmsq_model_pack_info_get (zeros when not packed) */

    double  ttft_s;                  /* prefill + lm_head of the last rows, seconds */
    double  prefill_tps;             /* B * P / ttft_s */
    double  decode_s;                /* the D decode steps, seconds */
    double  decode_tps;              /* B * D / decode_s */

    double  bandwidth_gbs;           /* read bandwidth, 1e9 bytes/s */
    double  sgemm_gflops;            /* sgemm FLOP rate, 1e9 FLOP/s */
    double  decode_bytes_per_step;   /* weights + KV cache read by one decode step */
    double  prefill_flops_per_token;
    double  decode_roofline_tps;     /* B * bandwidth / decode_bytes_per_step */
    double  prefill_roofline_tps;    /* sgemm rate / prefill_flops_per_token */

    size_t  weight_bytes;            /* packed: linear + head + embed + other bytes of the pack
                                        info; unpacked: 4 x llmsq_config_param_count */
    size_t  peak_rss;                /* llmsq_peak_rss() after the timed runs (0 when unknown) */
} llmsq_speed_result;

/* Read bandwidth in bytes/s of a STREAM-like sum of a [n] (any alignment; 32-byte aligned is
 * fastest): each OpenMP thread sums its own contiguous part with independent vector
 * accumulators, so loads are the only limit. Best of `reps` (>= 1) passes; the caller touches
 * a beforehand, so page faults are not timed. */
LLMSQ_API double llmsq_speed_read_bw(const float *a, size_t n, int reps);

/* Allocates and touches `bytes` (>= 1 MiB) and measures llmsq_speed_read_bw over it, best of
 * `reps`: *gbs in 1e9 bytes/s. Errors: ARG (bytes < 1 MiB, reps < 1), NOMEM. */
LLMSQ_API llmsq_status llmsq_speed_bandwidth(size_t bytes, int reps, double *gbs);

/* FLOP rate of OpenBLAS cblas_sgemm on n x n x n (all llmsq threads), one warm-up call then
 * best of `reps`: *gflops = 2 n^3 / seconds / 1e9. Errors: ARG (n outside [16, 16384],
 * reps < 1), NOMEM. */
LLMSQ_API llmsq_status llmsq_speed_sgemm(int64_t n, int reps, double *gflops);

/* Runs the prefill and decode timings on model m (packed or not; the module header says
 * what is timed), then the bandwidth and sgemm measurements, and fills *r.
 * Errors: ARG (a parameter outside its range, naming it), NOMEM, and the forward's errors. */
LLMSQ_API llmsq_status llmsq_speed_run(const llmsq_model *m, const llmsq_speed_params *p,
                                       llmsq_speed_result *r);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_SPEED_H */
