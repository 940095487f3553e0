/* llmsq generate: greedy continuation of a prompt. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq generate --model M [--prompt TEXT] --max-tokens N [--ids] [--threads N] [--quiet]\n\n"
          "Greedy decoding with the KV cache. The prompt is encoded with BOS (an empty or absent\n"
          "prompt starts from BOS alone); the prompt and its continuation are printed as text.\n\n"
          "  --max-tokens N  tokens to generate (stops early at EOS or the model's context)\n"
          "  --ids           also print the token ids on a second line\n"
          "  --tokenizer PATH  use this tokenizer instead of the model's (tokenizer.json, .model, .gguf, dir)\n",
          f);
}

int llmsq_cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"max-tokens", required_argument, 0, 'n'}, {"ids", no_argument, 0, 'i'},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"tokenizer", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *prompt = "";
    int64_t max_tokens = -1, threads = 0;
    bool show_ids = false;
    const char *tokenizer = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (!cli_parse_i64("generate", "--max-tokens", optarg, 0, 1 << 24, &max_tokens)) return 2; break;
        case 'i': show_ids = true; break;
        case 't': if (!cli_parse_i64("generate", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'q': llmsq_set_quiet(true); break;
        case 'k': tokenizer = optarg; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("generate", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("generate", "--model is required");
    if (max_tokens < 0) return cli_usage_error("generate", "--max-tokens is required");
    llmsq_threads_set((int)threads);

    llmsq_model *m;
    llmsq_status st = llmsq_model_open(model, &m);
    if (st != LLMSQ_OK) return cli_fail("generate", st);
    if ((st = cli_override_tokenizer(m, tokenizer)) != LLMSQ_OK) {
        llmsq_model_free(m);
        return cli_fail("generate", st);
    }
    const llmsq_tokenizer *tok = llmsq_model_tokenizer(m);
    int32_t *ids = NULL, *out = NULL;
    size_t n = 0, n_out = 0;
    char *text = NULL;
    if (!tok) {
        st = llmsq_error(LLMSQ_STATUS_ARG, "%s: the model has no tokenizer", model);
        goto done;
    }
    if ((st = llmsq_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n)) != LLMSQ_OK) goto done;
    if (n == 0) {
        st = llmsq_error(LLMSQ_STATUS_ARG, "%s: the tokenizer has no BOS and the prompt is empty", model);
        goto done;
    }
    if ((st = llmsq_generate_greedy(m, ids, n, max_tokens, &out, &n_out)) != LLMSQ_OK) goto done;
    if ((st = llmsq_tokenizer_decode(tok, out, n_out, &text, NULL)) != LLMSQ_OK) goto done;
    printf("%s\n", text);
    if (show_ids) {
        for (size_t i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
        printf("\n");
    }
done:
    free(ids);
    free(out);
    free(text);
    llmsq_model_free(m);
    return st == LLMSQ_OK ? 0 : cli_fail("generate", st);
}
