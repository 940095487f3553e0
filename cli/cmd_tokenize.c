/* llmsq tokenize: text on stdin -> token ids (or pieces) on stdout. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq tokenize --tokenizer PATH [--add-special] [--pieces]\n\n"
          "Reads text on stdin and prints its token ids on one line, separated by spaces.\n"
          "PATH is a tokenizer.json, a SentencePiece .model, a .gguf file, GPT-2's vocab.json\n"
          "(with merges.txt beside it), or a model directory holding one of them.\n\n"
          "  --tokenizer PATH  the tokenizer to use\n"
          "  --add-special     add the special tokens the tokenizer adds by default (BOS, the\n"
          "                    tokenizer.json post-processor's template); none without it\n"
          "  --pieces          print the token strings instead of the ids\n",
          f);
}

static char *read_stdin(size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

int llmsq_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {{"tokenizer", required_argument, 0, 't'},
                                         {"add-special", no_argument, 0, 's'},
                                         {"pieces", no_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL;
    bool special = false, pieces = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': path = optarg; break;
        case 's': special = true; break;
        case 'p': pieces = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("tokenize", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!path) return cli_usage_error("tokenize", "--tokenizer PATH is required");

    llmsq_tokenizer *tok;
    llmsq_status st = llmsq_tokenizer_load(path, &tok);
    if (st != LLMSQ_OK) return cli_fail("tokenize", st);
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        llmsq_tokenizer_free(tok);
        return cli_fail("tokenize", llmsq_error(LLMSQ_STATUS_IO, "cannot read standard input"));
    }
    int32_t *ids;
    size_t n;
    st = special ? llmsq_tokenizer_encode_special(tok, text, len, &ids, &n)
                 : llmsq_tokenizer_encode(tok, text, len, false, &ids, &n);
    free(text);
    if (st != LLMSQ_OK) {
        llmsq_tokenizer_free(tok);
        return cli_fail("tokenize", st);
    }
    for (size_t i = 0; i < n; i++) {
        if (i) putchar(' ');
        if (pieces) fputs(llmsq_tokenizer_piece(tok, ids[i]), stdout);
        else printf("%d", (int)ids[i]);
    }
    putchar('\n');
    free(ids);
    llmsq_tokenizer_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail("tokenize", llmsq_error(LLMSQ_STATUS_IO, "cannot write standard output"));
    return 0;
}
