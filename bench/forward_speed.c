/* Forward-pass speed of the f32 CPU path: prefill of P tokens and decode of D tokens with the
 * KV cache, on any model llmsq opens (a real one, or `llmsq synth` shapes).
 *
 *   build/bench/bench_forward MODEL [--prefill 128] [--decode 32] [--threads N]
 *
 * Prints tokens/s and the time per decode token against a memory-bandwidth estimate: at batch
 * 1 every decode step reads all weights once, so weight_bytes / step_time is the bandwidth the
 * decode achieves. */
#include "llmsq/llmsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--prefill N] [--decode N] [--threads N]\n", argv[0]);
        return 2;
    }
    int64_t P = 128, D = 32;
    int threads = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prefill")) P = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) D = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    llmsq_threads_set(threads);
    llmsq_model *m;
    if (llmsq_model_open(argv[1], &m) != LLMSQ_OK) {
        fprintf(stderr, "error: %s\n", llmsq_last_error());
        return 1;
    }
    const llmsq_config *c = llmsq_model_config(m);
    if (P + D > c->max_position) P = c->max_position - D;
    int32_t *ids = malloc((size_t)(P + D) * sizeof *ids);
    for (int64_t i = 0; i < P + D; i++) ids[i] = (int32_t)((i * 7919) % c->vocab_size);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    llmsq_kv_cache *cache;
    if (llmsq_kv_cache_create(c, P + D, &cache) != LLMSQ_OK) return 1;

    double t0 = llmsq_time_now();
    if (llmsq_model_forward(m, cache, ids, P, NULL, NULL) != LLMSQ_OK) return 1;
    double t_prefill = llmsq_time_now() - t0;
    t0 = llmsq_time_now();
    for (int64_t i = 0; i < D; i++)
        if (llmsq_model_forward(m, cache, ids + P + i, 1, logits, NULL) != LLMSQ_OK) return 1;
    double t_decode = llmsq_time_now() - t0;

    double wbytes = 4.0 * (double)llmsq_config_param_count(c);
    printf("model %s: %lld params, %d threads\n", argv[1], (long long)llmsq_config_param_count(c), llmsq_threads_get());
    printf("prefill %lld tokens: %.3f s, %.1f tokens/s\n", (long long)P, t_prefill, (double)P / t_prefill);
    printf("decode  %lld tokens: %.3f s, %.2f tokens/s, %.2f GB/s of f32 weights read per step\n", (long long)D,
           t_decode, (double)D / t_decode, wbytes * (double)D / t_decode / 1e9);
    llmsq_kv_cache_free(cache);
    free(ids), free(logits);
    llmsq_model_free(m);
    return 0;
}
