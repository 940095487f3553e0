/* llmsq inspect: what a checkpoint holds. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq inspect MODEL [--tensors]\n\n"
          "Architecture, hyper-parameters, parameter count and bytes of MODEL (Hugging Face\n"
          "directory, .gguf or llama2.c .bin); --tensors lists every tensor with shape and dtype.\n",
          f);
}

static void human(double bytes, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
}

int llmsq_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"tensors", no_argument, 0, 'T'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool list = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': list = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("inspect", "expects exactly one MODEL path");
    const char *path = argv[optind];
    llmsq_store *s;
    llmsq_config cfg;
    llmsq_tokenizer *tok;
    llmsq_status st = llmsq_checkpoint_open(path, &s, &cfg, &tok);
    if (st != LLMSQ_OK) return cli_fail("inspect", st);

    int64_t params = 0;
    size_t bytes = 0;
    int64_t by_dtype[LLMSQ_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < llmsq_store_count(s); i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        params += llmsq_tensor_numel(t);
        bytes += t->nbytes;
        by_dtype[t->dtype] += llmsq_tensor_numel(t);
    }
    char hb[32];
    human((double)bytes, hb, sizeof hb);
    printf("model            %s\n", path);
    printf("architecture     %s (%s)\n", cfg.arch_name, llmsq_arch_name(cfg.arch));
    printf("layers           %lld\nhidden           %lld\nintermediate     %lld\n", (long long)cfg.n_layers,
           (long long)cfg.hidden_size, (long long)cfg.intermediate_size);
    printf("heads            %lld query, %lld key/value, head_dim %lld\n", (long long)cfg.n_heads,
           (long long)cfg.n_kv_heads, (long long)cfg.head_dim);
    printf("vocab            %lld\ncontext          %lld\n", (long long)cfg.vocab_size, (long long)cfg.max_position);
    static const char *const rope_names[] = {"default", "linear", "llama3"};
    printf("rope             theta %g, scaling %s", cfg.rope_theta, rope_names[cfg.rope_type]);
    if (cfg.rope_type != LLMSQ_ROPE_DEFAULT) printf(" x%g", cfg.rope_factor);
    printf("\nrms_norm_eps     %g\ntied embeddings  %s\n", cfg.rms_eps, cfg.tie_embeddings ? "yes" : "no");
    printf("tokenizer        %s", tok ? "sentencepiece" : "none");
    if (tok) printf(" (%lld pieces)", (long long)llmsq_tokenizer_vocab_size(tok));
    printf("\ntensors          %zu\nparameters       %lld (config implies %lld)\nbytes            %zu (%s)\n",
           llmsq_store_count(s), (long long)params, (long long)llmsq_config_param_count(&cfg), bytes, hb);
    printf("dtypes          ");
    for (int d = 0; d < LLMSQ_DTYPE_COUNT; d++)
        if (by_dtype[d]) printf(" %s:%lld", llmsq_dtype_info((llmsq_dtype)d)->name, (long long)by_dtype[d]);
    printf("\n");
    if ((st = cli_report_sparsity(s, true)) != LLMSQ_OK) {
        llmsq_store_destroy(s);
        llmsq_tokenizer_free(tok);
        return cli_fail("inspect", st);
    }
    if (list) {
        for (size_t i = 0; i < llmsq_store_count(s); i++) {
            const llmsq_tensor *t = llmsq_store_at(s, i);
            char sh[96];
            printf("  %-56s %-5s %s\n", t->name, llmsq_dtype_info(t->dtype)->name, llmsq_shape_str(t, sh, sizeof sh));
        }
    }
    llmsq_store_destroy(s);
    llmsq_tokenizer_free(tok);
    return 0;
}
