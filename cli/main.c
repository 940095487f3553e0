/* llmsq: command dispatch and the helpers every subcommand shares. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} k_cmds[] = {
    {"inspect", llmsq_cmd_inspect, "show a checkpoint's architecture, tensors, dtypes and sizes"},
    {"eval", llmsq_cmd_eval, "perplexity of a model on a text file under a named protocol"},
    {"generate", llmsq_cmd_generate, "greedy text generation"},
    {"quantize", llmsq_cmd_quantize, "quantize a model (RTN, GPTQ) into a compressed-tensors or GPTQ checkpoint"},
    {"prune", llmsq_cmd_prune, "prune a model (magnitude, Wanda, SparseGPT, RIA; unstructured or N:M)"},
    {"synth", llmsq_cmd_synth, "write a synthetic model with the shapes of a real one"},
    {"tokenize", llmsq_cmd_tokenize, "text on stdin to token ids with a model's tokenizer"},
};

static void usage(FILE *f)
{
    fprintf(f, "llmsq %s — offline compression toolkit for large language models\n\n"
               "usage: llmsq <command> [options]   (llmsq <command> --help for details)\n\ncommands:\n",
            LLMSQ_VERSION_STRING);
    for (size_t i = 0; i < sizeof k_cmds / sizeof *k_cmds; i++) fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].help);
}

int cli_fail(const char *cmd, llmsq_status s)
{
    const char *msg = llmsq_last_error();
    fprintf(stderr, "llmsq %s: error: %s\n", cmd, msg && *msg ? msg : llmsq_status_str(s));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "llmsq %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see llmsq %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

bool cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects an integer in [%lld, %lld], got '%s'", flag, (long long)lo, (long long)hi,
                        s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llmsq %s\n", LLMSQ_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof *k_cmds; i++)
        if (strcmp(argv[1], k_cmds[i].name) == 0) return k_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "llmsq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
