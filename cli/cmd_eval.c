/* llmsq eval: perplexity under a named protocol. */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq eval --model M --ppl FILE [--protocol P] [--seqlen N] [--max-windows N]\n"
          "                  [--json] [--threads N] [--quiet]\n\n"
          "Perplexity of model M (Hugging Face directory, .gguf, or llama2.c .bin) on FILE\n"
          "(plain text; .jsonl with a \"text\" field; wiki.*.raw WikiText).\n\n"
          "  --protocol P     gptq (default): text encoded once with one BOS, non-overlapping windows\n"
          "                   docs: each blank-line-separated document with its own BOS, then windows\n"
          "                   llamacpp: windows with BOS first, second half scored (as llama-perplexity)\n"
          "                   stride:N: sliding windows advancing N tokens, every token scored once\n"
          "  --seqlen N       window length (default: the model's context; llamacpp: 512)\n"
          "  --max-windows N  score only the first N windows\n"
          "  --tokenizer PATH use this tokenizer (tokenizer.json, .model, .gguf, or a directory)\n"
          "  --json           print one JSON object instead of text\n"
          "  --threads N      worker threads (default: all cores)\n"
          "  --quiet          no progress bar\n",
          f);
}

int llmsq_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"ppl", required_argument, 0, 'p'},
        {"protocol", required_argument, 0, 'P'}, {"seqlen", required_argument, 0, 's'},
        {"max-windows", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"tokenizer", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = NULL, *file = NULL;
    bool json = false;
    int64_t threads = 0;
    llmsq_ppl_params p = llmsq_ppl_default_params();
    const char *tokenizer = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': file = optarg; break;
        case 'P':
            if (llmsq_ppl_parse_protocol(optarg, &p) != LLMSQ_OK) return cli_usage_error("eval", "%s", llmsq_last_error());
            break;
        case 's': if (!cli_parse_i64("eval", "--seqlen", optarg, 2, 1 << 24, &p.seqlen)) return 2; break;
        case 'w': if (!cli_parse_i64("eval", "--max-windows", optarg, 1, INT64_MAX, &p.max_windows)) return 2; break;
        case 'j': json = true; break;
        case 't': if (!cli_parse_i64("eval", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'q': llmsq_set_quiet(true); break;
        case 'k': tokenizer = optarg; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("eval", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("eval", "--model is required");
    if (!file) return cli_usage_error("eval", "--ppl FILE is required");
    llmsq_threads_set((int)threads);
    p.progress = !llmsq_is_quiet();

    llmsq_model *m;
    llmsq_status st = llmsq_model_open(model, &m);
    if (st != LLMSQ_OK) return cli_fail("eval", st);
    if ((st = cli_override_tokenizer(m, tokenizer)) != LLMSQ_OK) {
        llmsq_model_free(m);
        return cli_fail("eval", st);
    }
    if (!json && (st = cli_report_sparsity(llmsq_model_store(m), false)) != LLMSQ_OK) {
        llmsq_model_free(m);
        return cli_fail("eval", st);
    }
    llmsq_ppl_result r;
    st = llmsq_ppl_file(m, file, &p, &r);
    llmsq_model_free(m);
    if (st != LLMSQ_OK) return cli_fail("eval", st);
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:f, s:f, s:f, s:f, s:i}", "model", model,
                              "text", file, "protocol", r.protocol, "seqlen", (json_int_t)r.seqlen, "windows",
                              (json_int_t)r.windows, "tokens", (json_int_t)r.tokens, "stream_tokens",
                              (json_int_t)r.stream_tokens, "token_sha256", r.token_sha256, "nll",
                              r.nll_sum / (double)r.tokens, "ppl", r.ppl, "seconds", r.seconds, "tokenize_seconds",
                              r.tokenize_seconds, "threads", llmsq_threads_get());
        char *text = o ? json_dumps(o, JSON_REAL_PRECISION(10)) : NULL;
        if (!text) return cli_fail("eval", llmsq_error(LLMSQ_STATUS_NOMEM, "cannot format JSON"));
        puts(text);
        free(text);
        json_decref(o);
    } else {
        printf("model         %s\ntext          %s\nprotocol      %s (seqlen %lld)\nwindows       %lld\n"
               "tokens        %lld scored of %lld in the stream\ntoken_sha256  %s\nppl           %.6f\n"
               "time          %.2f s forward + %.2f s tokenize, %d threads\n",
               model, file, r.protocol, (long long)r.seqlen, (long long)r.windows, (long long)r.tokens,
               (long long)r.stream_tokens, r.token_sha256, r.ppl, r.seconds, r.tokenize_seconds, llmsq_threads_get());
    }
    return 0;
}
