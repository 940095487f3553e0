/* llmsq prune: magnitude, Wanda, SparseGPT or RIA pruning (unstructured or N:M), optionally
 * quantized (inside SparseGPT, or RTN afterwards), written as a compressed-tensors checkpoint
 * with a sparsity_config. */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq prune --model M --method magnitude|wanda|sparsegpt|ria (--sparsity S | --nm N:M)\n"
          "                   --out DIR [options]\n\n"
          "Prunes every linear of the decoder blocks (lm_head and embeddings stay dense).\n\n"
          "  --sparsity S         unstructured: fraction of each row removed, in [0, 1) (default 0.5)\n"
          "  --nm N:M             keep N of every M consecutive input weights (2:4, 4:8, ...)\n"
          "  --skip REGEX         leave linears whose name matches dense (POSIX extended regex)\n"
          "  --calib FILE         calibration text (wanda, sparsegpt, ria); --nsamples, --seqlen, --seed,\n"
          "                       --max-memory as for llmsq quantize (defaults 128, 512, 0)\n"
          "  --tokenizer PATH     encode --calib with this tokenizer instead of the model's\n"
          "  --damp D             SparseGPT dampening (default 0.01)\n"
          "  --ria-alpha A        RIA activation exponent (default 0.5)\n"
          "  --ria-permute        RIA with --nm: permute down_proj's input channels to keep more score\n"
          "                       (folded into gate/up rows; the other linears cannot be permuted)\n"
          "  --then-quantize Q    rtn (any method; zeros stay zeros) or gptq (sparsegpt only: quantized\n"
          "                       inside SparseGPT's sweep, as in the SparseGPT paper)\n"
          "  --bits B, --group-size G, --sym|--asym   the quantization, as for llmsq quantize\n"
          "  --sparse-format F    24-bitmask (default for 2:4), bitmask (default otherwise) or dense;\n"
          "                       quantized models are stored pack-quantized with a dense sparsity_config\n"
          "  --true-sequential    observe q/k/v, o, gate/up, down one after another (default: a whole block\n"
          "                       at once, as the SparseGPT and Wanda reference code do)\n"
          "  --threads N, --quiet\n",
          f);
}

int llmsq_cmd_prune(int argc, char **argv)
{
    enum { O_SPARSITY = 256, O_NM, O_SKIP, O_CALIB, O_NS, O_SEQ, O_SEED, O_MAXMEM, O_DAMP, O_ALPHA, O_PERM, O_THENQ, O_BITS,
           O_GROUP, O_SYM, O_ASYM, O_SFMT, O_THREADS, O_QUIET, O_TS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"method", required_argument, 0, 'M'},
        {"out", required_argument, 0, 'o'}, {"sparsity", required_argument, 0, O_SPARSITY},
        {"nm", required_argument, 0, O_NM}, {"skip", required_argument, 0, O_SKIP},
        {"calib", required_argument, 0, O_CALIB}, {"nsamples", required_argument, 0, O_NS},
        {"seqlen", required_argument, 0, O_SEQ}, {"seed", required_argument, 0, O_SEED},
        {"max-memory", required_argument, 0, O_MAXMEM}, {"damp", required_argument, 0, O_DAMP},
        {"ria-alpha", required_argument, 0, O_ALPHA}, {"ria-permute", no_argument, 0, O_PERM}, {"then-quantize", required_argument, 0, O_THENQ},
        {"bits", required_argument, 0, O_BITS}, {"group-size", required_argument, 0, O_GROUP},
        {"sym", no_argument, 0, O_SYM}, {"asym", no_argument, 0, O_ASYM},
        {"sparse-format", required_argument, 0, O_SFMT}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET}, {"true-sequential", no_argument, 0, O_TS},
        {"tokenizer", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *method = NULL, *out = NULL, *calib = NULL, *skip = NULL, *thenq = NULL, *sfmt = NULL;
    llmsq_prune_params pp = llmsq_prune_default_params();
    llmsq_calib_params cp = llmsq_calib_default_params();
    cp.true_sequential = false; /* the SparseGPT and Wanda harnesses observe a block at once */
    int64_t v, threads = 0;
    const char *tokenizer = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'M': method = optarg; break;
        case 'o': out = optarg; break;
        case O_SPARSITY: if (!cli_parse_f64("prune", "--sparsity", optarg, &pp.sparsity)) return 2; break;
        case O_NM:
            if (sscanf(optarg, "%d:%d%c", &pp.nm_n, &pp.nm_m, (char[2]){0}) != 2)
                return cli_usage_error("prune", "--nm expects N:M such as 2:4, got '%s'", optarg);
            break;
        case O_SKIP: skip = optarg; break;
        case O_CALIB: calib = optarg; break;
        case O_NS: if (!cli_parse_i64("prune", "--nsamples", optarg, 1, 1000000, &cp.nsamples)) return 2; break;
        case O_SEQ: if (!cli_parse_i64("prune", "--seqlen", optarg, 2, 1 << 24, &cp.seqlen)) return 2; break;
        case O_SEED:
            if (!cli_parse_i64("prune", "--seed", optarg, 0, INT64_MAX, &v)) return 2;
            cp.seed = (uint64_t)v;
            break;
        case O_MAXMEM: if (!cli_parse_size("prune", "--max-memory", optarg, &cp.max_memory)) return 2; break;
        case O_DAMP: if (!cli_parse_f64("prune", "--damp", optarg, &pp.damp)) return 2; break;
        case O_ALPHA: if (!cli_parse_f64("prune", "--ria-alpha", optarg, &pp.ria_alpha)) return 2; break;
        case O_PERM: pp.ria_permute = true; break;
        case O_THENQ: thenq = optarg; break;
        case O_BITS:
            if (!cli_parse_i64("prune", "--bits", optarg, INT32_MIN, INT32_MAX, &v)) return 2;
            pp.quant.bits = (int)v;
            break;
        case O_GROUP: if (!cli_parse_i64("prune", "--group-size", optarg, INT32_MIN, INT64_MAX, &pp.quant.group_size)) return 2; break;
        case O_SYM: pp.quant.grid = LLMSQ_QGRID_SYM; break;
        case O_ASYM: pp.quant.grid = LLMSQ_QGRID_MINMAX; break;
        case O_SFMT: sfmt = optarg; break;
        case O_THREADS: if (!cli_parse_i64("prune", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case O_QUIET: llmsq_set_quiet(true); break;
        case O_TS: cp.true_sequential = true; break;
        case 'k': tokenizer = optarg; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("prune", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("prune", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("prune", "--model is required");
    if (!out) return cli_usage_error("prune", "--out DIR is required");
    static const char *const methods[] = {"magnitude", "wanda", "sparsegpt", "ria"};
    int mi = -1;
    for (int i = 0; method && i < 4; i++)
        if (!strcmp(method, methods[i])) mi = i;
    if (mi < 0) return cli_usage_error("prune", "--method magnitude|wanda|sparsegpt|ria is required");
    pp.method = (llmsq_prune_method)mi;
    if (pp.ria_permute && (pp.method != LLMSQ_PRUNE_RIA || !pp.nm_m))
        return cli_usage_error("prune", "--ria-permute applies to --method ria with --nm N:M");
    bool then_rtn = false;
    if (thenq) {
        if (!strcmp(thenq, "rtn")) then_rtn = true;
        else if (!strcmp(thenq, "gptq")) {
            if (pp.method != LLMSQ_PRUNE_SPARSEGPT)
                return cli_usage_error("prune", "--then-quantize gptq quantizes inside SparseGPT's sweep: use it with "
                                       "--method sparsegpt (or --then-quantize rtn)");
            pp.quantize = true;
        } else return cli_usage_error("prune", "--then-quantize expects rtn or gptq, got '%s'", thenq);
        if (llmsq_quant_params_validate(&pp.quant, 1 << 30) != LLMSQ_OK)
            return cli_usage_error("prune", "%s", llmsq_last_error());
        if (pp.quant.bits != 4 && pp.quant.bits != 8)
            return cli_usage_error("prune", "compressed-tensors stores 4- or 8-bit weights, not %d-bit", pp.quant.bits);
    }
    if (llmsq_prune_params_validate(&pp) != LLMSQ_OK) return cli_usage_error("prune", "%s", llmsq_last_error());
    int sparse_format = pp.nm_n == 2 && pp.nm_m == 4 ? LLMSQ_SPARSE_24_BITMASK : LLMSQ_SPARSE_BITMASK;
    if (sfmt) {
        if (!strcmp(sfmt, "24-bitmask")) sparse_format = LLMSQ_SPARSE_24_BITMASK;
        else if (!strcmp(sfmt, "bitmask")) sparse_format = LLMSQ_SPARSE_BITMASK;
        else if (!strcmp(sfmt, "dense")) sparse_format = LLMSQ_SPARSE_DENSE;
        else return cli_usage_error("prune", "--sparse-format expects 24-bitmask, bitmask or dense, got '%s'", sfmt);
        if (sparse_format == LLMSQ_SPARSE_24_BITMASK && !(pp.nm_n == 2 && pp.nm_m == 4) && !(pp.nm_m == 4 && pp.nm_n < 2))
            return cli_usage_error("prune", "--sparse-format 24-bitmask needs a 2:4 pattern (--nm 2:4)");
    }
    if (pp.method != LLMSQ_PRUNE_MAGNITUDE && !calib)
        return cli_usage_error("prune", "--method %s needs --calib FILE", method);
    llmsq_status out_st = llmsq_output_dir_check(out);
    if (out_st != LLMSQ_OK) return cli_fail("prune", out_st);
    llmsq_threads_set((int)threads);
    cp.progress = !llmsq_is_quiet();

    llmsq_model *m = NULL;
    llmsq_prune_pass *pass = NULL;
    int32_t *tokens = NULL;
    json_t *manifest = json_object(), *flags = json_object(), *inputs = json_object();
    char *manifest_text = NULL;
    const char **modules = NULL;
    size_t n_modules = 0;
    llmsq_status st = llmsq_model_open(model, &m);
    if (st != LLMSQ_OK) goto fail;
    if ((st = cli_override_tokenizer(m, tokenizer)) != LLMSQ_OK) goto fail;
    const llmsq_config *cfg = llmsq_model_config(m);
    /* an f32 model keeps f32 scales when quantized (see docs/quantization.md) */
    const llmsq_tensor *emb = llmsq_store_get(llmsq_model_store(m), "model.embed_tokens.weight");
    pp.quant.scale_dtype = emb->dtype == LLMSQ_DTYPE_BF16 ? LLMSQ_DTYPE_BF16
                           : emb->dtype == LLMSQ_DTYPE_F16 ? LLMSQ_DTYPE_F16 : LLMSQ_DTYPE_F32;
    json_object_set_new(manifest, "tool", json_string("llmsq " LLMSQ_VERSION_STRING));
    json_object_set_new(flags, "method", json_string(method));
    json_object_set_new(flags, "sparsity", pp.nm_m ? json_null() : json_real(pp.sparsity));
    char nm[32];
    snprintf(nm, sizeof nm, "%d:%d", pp.nm_n, pp.nm_m);
    json_object_set_new(flags, "nm", pp.nm_m ? json_string(nm) : json_null());
    json_object_set_new(flags, "skip", skip ? json_string(skip) : json_null());
    if (pp.ria_permute) json_object_set_new(flags, "ria_permute", json_true());
    json_object_set_new(flags, "then_quantize", thenq ? json_string(thenq) : json_null());
    json_object_set_new(flags, "true_sequential", json_boolean(cp.true_sequential));
    if (thenq) {
        json_object_set_new(flags, "bits", json_integer(pp.quant.bits));
        json_object_set_new(flags, "group_size", json_integer(pp.quant.group_size));
        json_object_set_new(flags, "sym", json_boolean(pp.quant.grid != LLMSQ_QGRID_MINMAX));
    }
    json_object_set_new(manifest, "flags", flags);
    json_object_set_new(manifest, "inputs", inputs);
    if ((st = cli_hash_inputs(model, inputs)) != LLMSQ_OK) goto fail;
    if (calib && (st = cli_calibration(m, model, calib, &cp, manifest, &tokens)) != LLMSQ_OK) goto fail;
    if ((st = llmsq_prune_pass_create(&pp, then_rtn, skip, &pass)) != LLMSQ_OK) goto fail;
    double t0 = llmsq_time_now();
    if ((st = llmsq_calib_run(m, tokens, &cp, llmsq_prune_pass_calib(pass))) != LLMSQ_OK) goto fail;
    double secs = llmsq_time_now() - t0;
    const llmsq_prune_record *rec;
    size_t n_rec = llmsq_prune_pass_records(pass, &rec);
    double zeros = 0, total = 0;
    modules = calloc(n_rec + 1, sizeof *modules);
    for (size_t i = 0; i < n_rec; i++) {
        zeros += rec[i].sparsity * (double)(rec[i].out * rec[i].in);
        total += (double)(rec[i].out * rec[i].in);
        modules[n_modules++] = rec[i].module;
    }
    if (!llmsq_is_quiet()) {
        printf("%-40s %12s %9s %10s %12s %8s\n", "linear", "shape", "sparsity", "rel err", "obs loss", "seconds");
        for (size_t i = 0; i < n_rec; i++) {
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)rec[i].out, (long long)rec[i].in);
            printf("%-40s %12s %9.4f %10.5f %12.4g %8.3f\n", rec[i].module, shape, rec[i].sparsity, rec[i].rel_err,
                   rec[i].loss, rec[i].seconds);
        }
    }
    printf("pruned %zu linears (%s, %s) to %.2f%% zeros in %.2f s\n", n_rec, method, pp.nm_m ? nm : "unstructured",
           total > 0 ? 100 * zeros / total : 0.0, secs);

    manifest_text = json_dumps(manifest, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    llmsq_ckpt_write_params wp = {.format = LLMSQ_CKPT_COMPRESSED_TENSORS, .source = model,
                                  .quant = thenq ? &pp.quant : NULL, .true_sequential = cp.true_sequential,
                                  .manifest_json = manifest_text, .sparse_format = sparse_format,
                                  .sparse_modules = modules, .n_sparse_modules = n_modules,
                                  .sparse_n = pp.nm_n, .sparse_m = pp.nm_m,
                                  .global_sparsity = total > 0 ? zeros / total : 0};
    if ((st = llmsq_quantized_checkpoint_write(out, llmsq_model_store(m), cfg, &wp)) != LLMSQ_OK) goto fail;
    printf("wrote %s\n", out);
fail:
    free(modules);
    free(manifest_text);
    json_decref(manifest);
    free(tokens);
    llmsq_prune_pass_free(pass);
    llmsq_model_free(m);
    return st == LLMSQ_OK ? 0 : cli_fail("prune", st);
}
