/* llmsq eval: perplexity under a named protocol, and the speed report (prefill, decode and
 * their rooflines) on the reference f32 forward or the packed kernels. */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq eval --model M [--ppl FILE] [--speed] [options]\n\n"
          "Perplexity of model M (Hugging Face directory, .gguf, or llama2.c .bin) on FILE\n"
          "(plain text; .jsonl with a \"text\" field; wiki.*.raw WikiText), and/or its speed on\n"
          "this machine: prefill and decode tokens/s against the memory-bandwidth and sgemm\n"
          "rooflines measured in the same run.\n\n"
          "Perplexity:\n"
          "  --ppl FILE       text to score\n"
          "  --protocol P     gptq (default): text encoded once with one BOS, non-overlapping windows\n"
          "                   docs: each blank-line-separated document with its own BOS, then windows\n"
          "                   llamacpp: windows with BOS first, second half scored (as llama-perplexity)\n"
          "                   stride:N: sliding windows advancing N tokens, every token scored once\n"
          "  --seqlen N       window length (default: the model's context; llamacpp: 512)\n"
          "  --max-windows N  score only the first N windows\n"
          "  --tokenizer PATH use this tokenizer (tokenizer.json, .model, .gguf, or a directory)\n"
          "Speed:\n"
          "  --speed          time a prefill of random prompts and greedy decode steps\n"
          "  --prefill N      prompt tokens per sequence (default 512)\n"
          "  --decode N       decode steps (default 128)\n"
          "  --batch N        sequences run together (default 1)\n"
          "  --bandwidth-buffer SIZE  buffer of the read-bandwidth test (default 256M)\n"
          "Kernels:\n"
          "  --kernels K      packed: block linears and lm_head in the packed CPU layouts (W4A16,\n"
          "                   W8A8, 2:4, dense f32/f16/bf16), no dequantized copy in memory;\n"
          "                   reference: the f32 OpenBLAS forward over dequantized weights.\n"
          "                   Default: packed with --speed or a packing flag below, else reference\n"
          "  --dense D        dtype of float weights that stay dense: auto (default: f16/bf16 as\n"
          "                   stored, else f32), f32, f16, bf16\n"
          "  --no-sparse      keep 2:4 weights in dense layouts\n"
          "  --no-fuse        one matmul per linear (no stacked q/k/v and gate/up)\n"
          "Output:\n"
          "  --json           print one JSON object instead of text\n"
          "  --threads N      worker threads (default: all cores)\n"
          "  --quiet          no progress bar\n",
          f);
}

typedef enum kernels { KERNELS_DEFAULT = 0, KERNELS_PACKED, KERNELS_REFERENCE } kernels;

typedef struct eval_args {
    const char *model, *file, *tokenizer;
    bool json, speed;
    int64_t threads;
    llmsq_ppl_params ppl;
    llmsq_speed_params sp;
    const char *speed_flag;    /* a speed option given (for the error without --speed), else NULL */
    kernels kernels;
    llmsq_pack_opts pack;
    const char *pack_flag;     /* a packing option given (for the error with reference), else NULL */
} eval_args;

enum { OPT_SPEED = 256, OPT_PREFILL, OPT_DECODE, OPT_BATCH, OPT_BWBUF, OPT_KERNELS, OPT_DENSE, OPT_NO_SPARSE,
       OPT_NO_FUSE };

/* --dense: "auto" is LLMSQ_DTYPE_COUNT (plinear.h). */
static bool parse_dense(const char *s, llmsq_dtype *out)
{
    static const struct { const char *name; llmsq_dtype t; } tab[] = {
        {"auto", LLMSQ_DTYPE_COUNT}, {"f32", LLMSQ_DTYPE_F32}, {"f16", LLMSQ_DTYPE_F16}, {"bf16", LLMSQ_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].name)) {
            *out = tab[i].t;
            return true;
        }
    cli_usage_error("eval", "--dense must be auto, f32, f16 or bf16, not '%s'", s);
    return false;
}

/* One option (getopt_long code c, value optarg) into *a; false after a usage message. */
static bool parse_speed_option(int c, eval_args *a)
{
    switch (c) {
    case OPT_PREFILL:
        a->speed_flag = "--prefill";
        return cli_parse_i64("eval", "--prefill", optarg, 1, 1 << 20, &a->sp.prefill);
    case OPT_DECODE:
        a->speed_flag = "--decode";
        return cli_parse_i64("eval", "--decode", optarg, 1, 1 << 20, &a->sp.decode);
    case OPT_BATCH:
        a->speed_flag = "--batch";
        return cli_parse_i64("eval", "--batch", optarg, 1, 4096, &a->sp.batch);
    case OPT_BWBUF:
        a->speed_flag = "--bandwidth-buffer";
        if (!cli_parse_size("eval", "--bandwidth-buffer", optarg, &a->sp.bandwidth_bytes)) return false;
        if (a->sp.bandwidth_bytes < ((size_t)1 << 20)) {
            cli_usage_error("eval", "--bandwidth-buffer must be at least 1M, got '%s'", optarg);
            return false;
        }
        return true;
    case OPT_KERNELS:
        if (!strcmp(optarg, "packed")) a->kernels = KERNELS_PACKED;
        else if (!strcmp(optarg, "reference")) a->kernels = KERNELS_REFERENCE;
        else {
            cli_usage_error("eval", "--kernels must be packed or reference, not '%s'", optarg);
            return false;
        }
        return true;
    case OPT_DENSE: a->pack_flag = "--dense"; return parse_dense(optarg, &a->pack.dense_dtype);
    case OPT_NO_SPARSE: a->pack_flag = "--no-sparse", a->pack.sparse = false; return true;
    case OPT_NO_FUSE: a->pack_flag = "--no-fuse", a->pack.fuse = false; return true;
    default: return false;
    }
}

/* Flags that only make sense together: checked once all are read. Returns 0 or 2. */
static int check_combination(eval_args *a)
{
    if (!a->model) return cli_usage_error("eval", "--model is required");
    if (!a->file && !a->speed) return cli_usage_error("eval", "--ppl FILE or --speed is required");
    if (a->speed_flag && !a->speed) return cli_usage_error("eval", "%s applies to --speed", a->speed_flag);
    if (a->kernels == KERNELS_DEFAULT) a->kernels = a->speed || a->pack_flag ? KERNELS_PACKED : KERNELS_REFERENCE;
    if (a->pack_flag && a->kernels == KERNELS_REFERENCE)
        return cli_usage_error("eval", "%s applies to --kernels packed, not reference", a->pack_flag);
    return 0;
}

/* Returns -1 when the run should go on, else the exit code (help, usage error). */
static int parse_args(int argc, char **argv, eval_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"ppl", required_argument, 0, 'p'},
        {"protocol", required_argument, 0, 'P'}, {"seqlen", required_argument, 0, 's'},
        {"max-windows", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"tokenizer", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},
        {"speed", no_argument, 0, OPT_SPEED},   {"prefill", required_argument, 0, OPT_PREFILL},
        {"decode", required_argument, 0, OPT_DECODE}, {"batch", required_argument, 0, OPT_BATCH},
        {"bandwidth-buffer", required_argument, 0, OPT_BWBUF}, {"kernels", required_argument, 0, OPT_KERNELS},
        {"dense", required_argument, 0, OPT_DENSE}, {"no-sparse", no_argument, 0, OPT_NO_SPARSE},
        {"no-fuse", no_argument, 0, OPT_NO_FUSE}, {0, 0, 0, 0}};
    *a = (eval_args){.ppl = llmsq_ppl_default_params(), .sp = llmsq_speed_default_params(),
                     .pack = llmsq_pack_default_opts()};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'p': a->file = optarg; break;
        case 'P':
            if (llmsq_ppl_parse_protocol(optarg, &a->ppl) != LLMSQ_OK)
                return cli_usage_error("eval", "%s", llmsq_last_error());
            break;
        case 's': if (!cli_parse_i64("eval", "--seqlen", optarg, 2, 1 << 24, &a->ppl.seqlen)) return 2; break;
        case 'w':
            if (!cli_parse_i64("eval", "--max-windows", optarg, 1, INT64_MAX, &a->ppl.max_windows)) return 2;
            break;
        case 'j': a->json = true; break;
        case 't': if (!cli_parse_i64("eval", "--threads", optarg, 1, 1024, &a->threads)) return 2; break;
        case 'q': llmsq_set_quiet(true); break;
        case 'k': a->tokenizer = optarg; break;
        case 'h': help(stdout); return 0;
        case OPT_SPEED: a->speed = true; break;
        case OPT_PREFILL: case OPT_DECODE: case OPT_BATCH: case OPT_BWBUF: case OPT_KERNELS: case OPT_DENSE:
        case OPT_NO_SPARSE: case OPT_NO_FUSE:
            if (!parse_speed_option(c, a)) return 2;
            break;
        default: return cli_usage_error("eval", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    int rc = check_combination(a);
    return rc ? rc : -1;
}

/* The model in the kernels asked for, its tokenizer replaced when --tokenizer says so. */
static llmsq_status open_model(const eval_args *a, llmsq_model **m)
{
    llmsq_status st = a->kernels == KERNELS_PACKED ? llmsq_model_open_packed(a->model, &a->pack, m)
                                                   : llmsq_model_open(a->model, m);
    if (st != LLMSQ_OK) return st;
    if ((st = cli_override_tokenizer(*m, a->tokenizer)) != LLMSQ_OK) {
        llmsq_model_free(*m);
        *m = NULL;
    }
    return st;
}

/* ---- output ----------------------------------------------------------------------------- */

static const char *kernels_name(kernels k) { return k == KERNELS_PACKED ? "packed" : "reference"; }

/* {layout name: block linears} of a speed result (reference: every block linear is f32). */
static json_t *layouts_json(const llmsq_model *m, const llmsq_speed_result *r)
{
    json_t *o = json_object();
    if (!r->packed) {
        json_object_set_new(o, "f32", json_integer((json_int_t)(llmsq_model_config(m)->n_layers * LLMSQ_LINEAR_COUNT)));
        return o;
    }
    for (int k = 0; k < LLMSQ_PLINEAR_KIND_COUNT; k++)
        if (r->pack.linears[k])
            json_object_set_new(o, llmsq_plinear_kind_name((llmsq_plinear_kind)k, r->pack.dense_dtype),
                                json_integer((json_int_t)r->pack.linears[k]));
    return o;
}

static void json_add_ppl(json_t *o, const char *file, const llmsq_ppl_result *r)
{
    json_object_set_new(o, "text", json_string(file));
    json_object_set_new(o, "protocol", json_string(r->protocol));
    json_object_set_new(o, "seqlen", json_integer((json_int_t)r->seqlen));
    json_object_set_new(o, "windows", json_integer((json_int_t)r->windows));
    json_object_set_new(o, "tokens", json_integer((json_int_t)r->tokens));
    json_object_set_new(o, "stream_tokens", json_integer((json_int_t)r->stream_tokens));
    json_object_set_new(o, "token_sha256", json_string(r->token_sha256));
    json_object_set_new(o, "nll", json_real(r->nll_sum / (double)r->tokens));
    json_object_set_new(o, "ppl", json_real(r->ppl));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "tokenize_seconds", json_real(r->tokenize_seconds));
}

static void json_add_speed(json_t *o, const llmsq_model *m, const llmsq_speed_result *r)
{
    static const struct { const char *key; size_t off; } reals[] = {
#define R_(f) {#f, offsetof(llmsq_speed_result, f)}
        R_(prefill_tps), R_(decode_tps), R_(ttft_s), R_(decode_s), R_(decode_roofline_tps), R_(prefill_roofline_tps),
        R_(bandwidth_gbs), R_(sgemm_gflops), R_(decode_bytes_per_step), R_(prefill_flops_per_token),
#undef R_
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        json_object_set_new(o, reals[i].key, json_real(*(const double *)((const char *)r + reals[i].off)));
    json_object_set_new(o, "weight_bytes", json_integer((json_int_t)r->weight_bytes));
    json_object_set_new(o, "peak_rss", json_integer((json_int_t)r->peak_rss));
    json_object_set_new(o, "batch", json_integer((json_int_t)r->batch));
    json_object_set_new(o, "prefill", json_integer((json_int_t)r->prefill));
    json_object_set_new(o, "decode", json_integer((json_int_t)r->decode));
    json_object_set_new(o, "layouts", layouts_json(m, r));
    json_object_set_new(o, "fallbacks", json_integer((json_int_t)r->pack.fallbacks));
    if (r->pack.fallbacks) json_object_set_new(o, "fallback", json_string(r->pack.fallback));
}

static int print_json(const eval_args *a, const llmsq_model *m, const llmsq_ppl_result *pr,
                      const llmsq_speed_result *sr)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(a->model));
    json_object_set_new(o, "kernels", json_string(kernels_name(a->kernels)));
    if (pr) json_add_ppl(o, a->file, pr);
    if (sr) {
        json_object_set_new(o, "isa", json_string(llmsq_kern_isa_name(llmsq_kern_isa_get())));
        json_add_speed(o, m, sr);
    }
    json_object_set_new(o, "threads", json_integer(llmsq_threads_get()));
    char *text = json_dumps(o, JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!text) return cli_fail("eval", llmsq_error(LLMSQ_STATUS_NOMEM, "cannot format JSON"));
    puts(text);
    free(text);
    return 0;
}

static void print_ppl_text(const eval_args *a, const llmsq_ppl_result *r)
{
    printf("text          %s\nprotocol      %s (seqlen %lld)\nwindows       %lld\n"
           "tokens        %lld scored of %lld in the stream\ntoken_sha256  %s\nppl           %.6f\n"
           "time          %.2f s forward + %.2f s tokenize, %d threads\n",
           a->file, r->protocol, (long long)r->seqlen, (long long)r->windows, (long long)r->tokens,
           (long long)r->stream_tokens, r->token_sha256, r->ppl, r->seconds, r->tokenize_seconds, llmsq_threads_get());
}

/* "w4a16 28, f16 7" (block linears by layout) and the first fallback, if any. */
static void print_layouts_text(const llmsq_model *m, const llmsq_speed_result *r)
{
    printf("layouts      ");
    if (!r->packed) {
        printf(" f32 %lld (OpenBLAS)\n", (long long)(llmsq_model_config(m)->n_layers * LLMSQ_LINEAR_COUNT));
        return;
    }
    const char *sep = " ";
    for (int k = 0; k < LLMSQ_PLINEAR_KIND_COUNT; k++)
        if (r->pack.linears[k]) {
            printf("%s%s %lld", sep, llmsq_plinear_kind_name((llmsq_plinear_kind)k, r->pack.dense_dtype),
                   (long long)r->pack.linears[k]);
            sep = ", ";
        }
    printf(" block linears in %lld matmuls; lm_head %s\n", (long long)r->pack.matmuls,
           llmsq_plinear_kind_name(LLMSQ_PLINEAR_DENSE, r->pack.dense_dtype));
    if (r->pack.fallbacks)
        printf("fallbacks     %lld quantized linears kept dense, first: %s\n", (long long)r->pack.fallbacks,
               r->pack.fallback);
}

static void print_speed_text(const eval_args *a, const llmsq_model *m, const llmsq_speed_result *r)
{
    const double MiB = 1048576.0;
    printf("kernels       %s, isa %s, %d threads\n", kernels_name(a->kernels),
           llmsq_kern_isa_name(llmsq_kern_isa_get()), r->threads);
    print_layouts_text(m, r);
    printf("weights       %zu bytes (%.2f MiB)\n", r->weight_bytes, (double)r->weight_bytes / MiB);
    printf("prefill       %.1f tokens/s (%lld x %lld tokens), %.1f%% of the sgemm roofline %.1f tokens/s\n",
           r->prefill_tps, (long long)r->batch, (long long)r->prefill, 100 * r->prefill_tps / r->prefill_roofline_tps,
           r->prefill_roofline_tps);
    printf("ttft          %.4f s\n", r->ttft_s);
    printf("decode        %.1f tokens/s (%lld x %lld steps), %.1f%% of the bandwidth roofline %.1f tokens/s "
           "(%.2f MiB read per step)\n",
           r->decode_tps, (long long)r->batch, (long long)r->decode, 100 * r->decode_tps / r->decode_roofline_tps,
           r->decode_roofline_tps, r->decode_bytes_per_step / MiB);
    printf("peak_rss      %.1f MiB\n", (double)r->peak_rss / MiB);
    printf("bandwidth     %.1f GB/s read (STREAM-like sum, %.0f MiB buffer)\n", r->bandwidth_gbs,
           (double)a->sp.bandwidth_bytes / MiB);
    printf("sgemm         %.1f GFLOP/s (%lld^3, OpenBLAS)\n", r->sgemm_gflops, (long long)a->sp.sgemm_n);
}

/* ---- the command ------------------------------------------------------------------------ */

int llmsq_cmd_eval(int argc, char **argv)
{
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    llmsq_threads_set((int)a.threads);
    a.ppl.progress = a.sp.progress = !llmsq_is_quiet();

    llmsq_model *m;
    llmsq_status st = open_model(&a, &m);
    if (st != LLMSQ_OK) return cli_fail("eval", st);
    /* the sparsity table reads the store's float weights, which a packed model has released
     * (its layouts line says which linears went 2:4) */
    if (!a.json && a.kernels == KERNELS_REFERENCE) st = cli_report_sparsity(llmsq_model_store(m), false);
    llmsq_ppl_result pr;
    llmsq_speed_result sr;
    if (st == LLMSQ_OK && a.file) st = llmsq_ppl_file(m, a.file, &a.ppl, &pr);
    if (st == LLMSQ_OK && a.speed) st = llmsq_speed_run(m, &a.sp, &sr);
    if (st == LLMSQ_OK) {
        if (a.json) {
            rc = print_json(&a, m, a.file ? &pr : NULL, a.speed ? &sr : NULL);
        } else {
            printf("model         %s\n", a.model);
            if (a.file) print_ppl_text(&a, &pr);
            if (a.speed) print_speed_text(&a, m, &sr);
            rc = 0;
        }
    }
    llmsq_model_free(m);
    return st == LLMSQ_OK ? rc : cli_fail("eval", st);
}
