/* llmsq quantize: RTN, GPTQ, AWQ (+GPTQ), SmoothQuant or naive W8A8 over a model's block
 * linears, written as a compressed-tensors, GPTQ or AWQ checkpoint with a manifest. */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: llmsq quantize --model M --method METHOD --out DIR [options]\n\n"
          "Quantizes every linear of the decoder blocks (lm_head and embeddings stay as they are)\n"
          "and writes a checkpoint that vLLM and transformers load as it is.\n\n"
          "methods: rtn, gptq, awq (activation-aware scales + clipping, then RTN), awq+gptq (then GPTQ),\n"
          "         smoothquant (smoothing + W8A8: int8 per-channel weights, int8 per-token activations),\n"
          "         w8a8 (W8A8 without smoothing)\n\n"
          "  --bits B             2, 3, 4 or 8 (default 4; W8A8 methods: 8)\n"
          "  --group-size G       columns per scale, or -1 for one per output channel (default 128;\n"
          "                       W8A8: -1); a group that does not divide in_features is partial\n"
          "  --sym | --asym       symmetric grid (zero 2^(B-1)) or asymmetric (default --asym: GPTQ's\n"
          "                       min/max grid; for awq AutoAWQ's zero-point grid)\n"
          "  --no-clip            AWQ: skip the clipping search\n"
          "  --no-duo             AWQ: scales x^a (llm-awq) instead of x^a / w^(1-a) (AutoAWQ)\n"
          "  --alpha A            SmoothQuant migration strength in [0, 1] (default 0.5)\n"
          "  --static             W8A8: static per-tensor activation scales (calibrated) instead of\n"
          "                       dynamic per-token\n"
          "  --act-order          GPTQ: columns in decreasing Hessian-diagonal order (desc_act)\n"
          "  --static-groups      GPTQ with --act-order: groups fixed before reordering\n"
          "  --damp D             GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
          "  --no-true-sequential GPTQ: observe a whole block at once instead of q/k/v, o, gate/up, down\n"
          "  --calib FILE         calibration text (plain, .jsonl, wiki.*.raw); required for every\n"
          "                       method but rtn and dynamic w8a8\n"
          "  --nsamples N         calibration windows (default 128)\n"
          "  --seqlen L           tokens per window (default 512)\n"
          "  --seed S             sampling seed (default 0)\n"
          "  --tokenizer PATH     encode --calib with this tokenizer instead of the model's\n"
          "  --max-memory SIZE    RAM for calibration activations (e.g. 2G); above it they spill to disk\n"
          "  --ignore REGEX       leave linears whose name matches unquantized (POSIX extended regex,\n"
          "                       e.g. 'mlp\\.down_proj')\n"
          "  --format F           compressed-tensors (default; pack-quantized bits 4 or 8, int-quantized\n"
          "                       for W8A8), gptq, or awq (AutoAWQ GEMM: 4-bit, out % 8 == 0)\n"
          "  --scale-dtype T      compressed-tensors: auto (the model's float type, default), f16, bf16\n"
          "                       or f32 (f16 scales let an f32 model run on the packed int4 kernels)\n"
          "  --dry-run            print the memory plan and stop\n"
          "  --threads N          worker threads (default: all cores)\n"
          "  --quiet              no progress bar or per-linear report\n",
          f);
}

/* Refuses, before any work, a linear the output format cannot store (FORMATS.md 2.3, 4.5). */
static llmsq_status check_format(llmsq_ckpt_format fmt, const llmsq_quant_params *qp, const llmsq_store *s,
                                 const llmsq_config *cfg, llmsq_quant_pass *pass)
{
    const llmsq_calib_pass *cp = llmsq_quant_pass_calib(pass);
    if (fmt == LLMSQ_CKPT_AWQ) {
        if (qp->bits != 4)
            return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "the AWQ format stores 4-bit weights, not %d-bit", qp->bits);
        for (int64_t l = 0; l < cfg->n_layers; l++)
            for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
                char mod[128], w[160];
                llmsq_linear_module(l, i, mod, sizeof mod);
                if (cp->wants && !cp->wants(cp->user, mod)) continue;
                snprintf(w, sizeof w, "%s.weight", mod);
                const llmsq_tensor *t = llmsq_store_get(s, w);
                const int64_t G = qp->group_size > 0 ? qp->group_size : t->shape[1];
                if (t->shape[0] % 8 || t->shape[1] % G)
                    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                                       "%s [%lld, %lld]: the AWQ GEMM format packs 8 output features per word and "
                                       "needs whole groups of %lld input features; leave it out with --ignore or use "
                                       "--format compressed-tensors",
                                       w, (long long)t->shape[0], (long long)t->shape[1], (long long)G);
            }
        return LLMSQ_OK;
    }
    if (fmt == LLMSQ_CKPT_COMPRESSED_TENSORS && qp->bits != 4 && qp->bits != 8)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                           "compressed-tensors pack-quantized stores 4- or 8-bit weights, not %d-bit (use --format gptq)",
                           qp->bits);
    if (fmt != LLMSQ_CKPT_GPTQ) {
        /* Representable (ceil(in / G) groups), but serving kernels want whole groups. */
        int64_t partial = 0;
        char first[160] = "";
        for (int64_t l = 0; l < cfg->n_layers; l++)
            for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
                char mod[128], w[160];
                llmsq_linear_module(l, i, mod, sizeof mod);
                if (cp->wants && !cp->wants(cp->user, mod)) continue;
                snprintf(w, sizeof w, "%s.weight", mod);
                const llmsq_tensor *t = llmsq_store_get(s, w);
                if (qp->group_size > 0 && t->shape[1] % qp->group_size && !partial++) snprintf(first, sizeof first, "%s", w);
            }
        if (partial)
            llmsq_warn("%s (and %lld more) has an input width that is not a multiple of the group size "
                      "%lld: its last group is partial. The checkpoint is valid compressed-tensors, but vLLM's "
                      "kernels require whole groups; choose a group size that divides every width to serve it there",
                      first, (long long)(partial - 1), (long long)qp->group_size);
        return LLMSQ_OK;
    }
    const int64_t pack = qp->bits == 3 ? 32 : 32 / qp->bits;
    for (int64_t l = 0; l < cfg->n_layers; l++)
        for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
            char mod[128], w[160];
            llmsq_linear_module(l, i, mod, sizeof mod);
            if (cp->wants && !cp->wants(cp->user, mod)) continue;
            snprintf(w, sizeof w, "%s.weight", mod);
            const llmsq_tensor *t = llmsq_store_get(s, w);
            if (t->shape[1] % pack || t->shape[0] % pack)
                return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                                   "%s [%lld, %lld]: the GPTQ format packs %lld values per word along both dimensions, "
                                   "so %d-bit needs in and out features divisible by %lld; leave it out with --ignore "
                                   "or use --format compressed-tensors",
                                   w, (long long)t->shape[0], (long long)t->shape[1], (long long)pack, qp->bits,
                                   (long long)pack);
        }
    return LLMSQ_OK;
}

static void mib(char *buf, size_t cap, size_t bytes) { snprintf(buf, cap, "%10.1f MiB", (double)bytes / 1048576.0); }

int llmsq_cmd_quantize(int argc, char **argv)
{
    enum { O_SYM = 256, O_ASYM, O_ACT, O_STATIC, O_DAMP, O_NOTS, O_CALIB, O_NS, O_SEQ, O_SEED, O_MAXMEM, O_IGNORE,
           O_FORMAT, O_DRY, O_THREADS, O_QUIET, O_BITS, O_GROUP, O_NOCLIP, O_NODUO, O_ALPHA, O_STATICACT, O_SCALEDT };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"method", required_argument, 0, 'M'},
        {"out", required_argument, 0, 'o'}, {"bits", required_argument, 0, O_BITS},
        {"group-size", required_argument, 0, O_GROUP}, {"sym", no_argument, 0, O_SYM},
        {"asym", no_argument, 0, O_ASYM}, {"act-order", no_argument, 0, O_ACT},
        {"static-groups", no_argument, 0, O_STATIC}, {"damp", required_argument, 0, O_DAMP},
        {"no-true-sequential", no_argument, 0, O_NOTS}, {"calib", required_argument, 0, O_CALIB},
        {"nsamples", required_argument, 0, O_NS}, {"seqlen", required_argument, 0, O_SEQ},
        {"seed", required_argument, 0, O_SEED}, {"max-memory", required_argument, 0, O_MAXMEM},
        {"ignore", required_argument, 0, O_IGNORE}, {"format", required_argument, 0, O_FORMAT},
        {"dry-run", no_argument, 0, O_DRY}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET}, {"no-clip", no_argument, 0, O_NOCLIP},
        {"no-duo", no_argument, 0, O_NODUO}, {"alpha", required_argument, 0, O_ALPHA},
        {"scale-dtype", required_argument, 0, O_SCALEDT},
        {"static", no_argument, 0, O_STATICACT}, {"tokenizer", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *method = NULL, *out = NULL, *calib = NULL, *ignore = NULL, *format = "compressed-tensors",
               *scale_dtype = "auto";
    llmsq_quant_params qp = llmsq_quant_default_params();
    llmsq_calib_params cp = llmsq_calib_default_params();
    bool dry = false, sym = false, bits_set = false, group_set = false, alpha_set = false;
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
        case O_BITS:
            if (!cli_parse_i64("quantize", "--bits", optarg, INT32_MIN, INT32_MAX, &v)) return 2;
            qp.bits = (int)v;
            bits_set = true;
            break;
        case O_GROUP:
            if (!cli_parse_i64("quantize", "--group-size", optarg, INT32_MIN, INT64_MAX, &qp.group_size)) return 2;
            group_set = true;
            break;
        case O_SYM: sym = true; break;
        case O_ASYM: sym = false; break;
        case O_NOCLIP: qp.awq_clip = false; break;
        case O_NODUO: qp.awq_duo = false; break;
        case O_ALPHA:
            if (!cli_parse_f64("quantize", "--alpha", optarg, &qp.sq_alpha)) return 2;
            alpha_set = true;
            break;
        case O_STATICACT: qp.act_static = true; break;
        case O_ACT: qp.act_order = true; break;
        case O_STATIC: qp.static_groups = true; break;
        case O_DAMP: if (!cli_parse_f64("quantize", "--damp", optarg, &qp.damp)) return 2; break;
        case O_NOTS: cp.true_sequential = false; break;
        case O_CALIB: calib = optarg; break;
        case O_NS: if (!cli_parse_i64("quantize", "--nsamples", optarg, 1, 1000000, &cp.nsamples)) return 2; break;
        case O_SEQ: if (!cli_parse_i64("quantize", "--seqlen", optarg, 2, 1 << 24, &cp.seqlen)) return 2; break;
        case O_SEED:
            if (!cli_parse_i64("quantize", "--seed", optarg, 0, INT64_MAX, &v)) return 2;
            cp.seed = (uint64_t)v;
            break;
        case O_MAXMEM: if (!cli_parse_size("quantize", "--max-memory", optarg, &cp.max_memory)) return 2; break;
        case O_IGNORE: ignore = optarg; break;
        case O_FORMAT: format = optarg; break;
        case O_SCALEDT: scale_dtype = optarg; break;
        case O_DRY: dry = true; break;
        case O_THREADS: if (!cli_parse_i64("quantize", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case O_QUIET: llmsq_set_quiet(true); break;
        case 'k': tokenizer = optarg; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("quantize", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("quantize", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("quantize", "--model is required");
    if (!method) return cli_usage_error("quantize", "--method is required (rtn, gptq, awq, awq+gptq, smoothquant, w8a8)");
    llmsq_quant_method qm;
    if (!strcmp(method, "rtn")) qm = LLMSQ_QUANT_RTN;
    else if (!strcmp(method, "gptq")) qm = LLMSQ_QUANT_GPTQ;
    else if (!strcmp(method, "awq")) qm = LLMSQ_QUANT_AWQ;
    else if (!strcmp(method, "awq+gptq")) qm = LLMSQ_QUANT_AWQ_GPTQ;
    else if (!strcmp(method, "smoothquant")) qm = LLMSQ_QUANT_SMOOTHQUANT;
    else if (!strcmp(method, "w8a8")) qm = LLMSQ_QUANT_W8A8;
    else return cli_usage_error("quantize", "unknown method '%s' (rtn, gptq, awq, awq+gptq, smoothquant, w8a8)", method);
    const bool awq = qm == LLMSQ_QUANT_AWQ || qm == LLMSQ_QUANT_AWQ_GPTQ;
    const bool w8a8 = qm == LLMSQ_QUANT_SMOOTHQUANT || qm == LLMSQ_QUANT_W8A8;
    llmsq_ckpt_format fmt;
    if (!strcmp(format, "compressed-tensors")) fmt = LLMSQ_CKPT_COMPRESSED_TENSORS;
    else if (!strcmp(format, "gptq")) fmt = LLMSQ_CKPT_GPTQ;
    else if (!strcmp(format, "awq")) fmt = LLMSQ_CKPT_AWQ;
    else return cli_usage_error("quantize", "unknown format '%s' (compressed-tensors, gptq, awq)", format);
    if (strcmp(scale_dtype, "auto") && strcmp(scale_dtype, "f16") && strcmp(scale_dtype, "bf16") &&
        strcmp(scale_dtype, "f32"))
        return cli_usage_error("quantize", "unknown --scale-dtype '%s' (auto, f16, bf16, f32)", scale_dtype);
    if (fmt != LLMSQ_CKPT_COMPRESSED_TENSORS && strcmp(scale_dtype, "auto") && strcmp(scale_dtype, "f16"))
        return cli_usage_error("quantize", "--format %s stores f16 scales (--scale-dtype %s is for compressed-tensors)",
                               format, scale_dtype);
    if (!out && !dry) return cli_usage_error("quantize", "--out DIR is required");
    const bool needs_calib = qm != LLMSQ_QUANT_RTN && !(qm == LLMSQ_QUANT_W8A8 && !qp.act_static);
    if (needs_calib && !calib) return cli_usage_error("quantize", "--method %s%s needs --calib FILE", method,
                                                      qm == LLMSQ_QUANT_W8A8 ? " --static" : "");
    if (w8a8) {
        if ((bits_set && qp.bits != 8) || (group_set && qp.group_size != -1) || sym)
            return cli_usage_error("quantize", "--method %s quantizes weights to 8-bit, per channel, symmetric: "
                                   "drop --bits/--group-size/--sym", method);
        if (fmt != LLMSQ_CKPT_COMPRESSED_TENSORS)
            return cli_usage_error("quantize", "W8A8 checkpoints are written as compressed-tensors int-quantized; "
                                   "--format %s cannot carry activation quantization", format);
        qp.bits = 8;
        qp.group_size = -1;
        qp.grid = LLMSQ_QGRID_ABSMAX;
    } else {
        if (qp.act_static) return cli_usage_error("quantize", "--static applies to the W8A8 methods (smoothquant, w8a8)");
        qp.grid = awq ? (sym ? LLMSQ_QGRID_ABSMAX : LLMSQ_QGRID_AWQ) : (sym ? LLMSQ_QGRID_SYM : LLMSQ_QGRID_MINMAX);
    }
    if (alpha_set && qm != LLMSQ_QUANT_SMOOTHQUANT) return cli_usage_error("quantize", "--alpha applies to --method smoothquant");
    if (!awq && (!qp.awq_clip || !qp.awq_duo)) return cli_usage_error("quantize", "--no-clip and --no-duo apply to AWQ");
    if (fmt == LLMSQ_CKPT_GPTQ && qp.grid == LLMSQ_QGRID_AWQ)
        return cli_usage_error("quantize", "AWQ's asymmetric zero points can be 0, which GPTQ v1 checkpoints cannot "
                               "store: use --format awq or compressed-tensors (or --sym)");
    if (fmt == LLMSQ_CKPT_AWQ && (qp.act_order || qp.grid == LLMSQ_QGRID_SYM))
        return cli_usage_error("quantize", "the AWQ format has contiguous groups and unsigned zero points: no "
                               "--act-order, and GPTQ's --sym grid only with --method awq");
    if (qp.static_groups && !qp.act_order) return cli_usage_error("quantize", "--static-groups needs --act-order");
    /* GPTQ v1 checkpoints cannot store an asymmetric zero point of 0 (FORMATS.md 2.4). */
    qp.zero_min_one = fmt == LLMSQ_CKPT_GPTQ && qp.grid == LLMSQ_QGRID_MINMAX;
    if (llmsq_quant_params_validate(&qp, 1 << 30) != LLMSQ_OK) return cli_usage_error("quantize", "%s", llmsq_last_error());
    llmsq_status out_st = out ? llmsq_output_dir_check(out) : LLMSQ_OK;
    if (out_st != LLMSQ_OK) return cli_fail("quantize", out_st);
    llmsq_threads_set((int)threads);
    cp.progress = !llmsq_is_quiet();

    llmsq_model *m = NULL;
    llmsq_quant_pass *pass = NULL;
    int32_t *tokens = NULL;
    json_t *manifest = NULL;
    char *manifest_text = NULL;
    llmsq_status st = llmsq_model_open(model, &m);
    if (st != LLMSQ_OK) goto fail;
    if ((st = cli_override_tokenizer(m, tokenizer)) != LLMSQ_OK) goto fail;
    const llmsq_config *cfg = llmsq_model_config(m);
    for (int64_t l = 0; l < cfg->n_layers && st == LLMSQ_OK; l++)
        for (int i = 0; i < LLMSQ_LINEAR_COUNT && st == LLMSQ_OK; i++) {
            char w[160];
            llmsq_linear_weight_name(l, i, w, sizeof w);
            st = llmsq_quant_params_validate(&qp, llmsq_store_get(llmsq_model_store(m), w)->shape[1]);
            if (st != LLMSQ_OK) st = llmsq_error_prefix(st, "%s", w);
        }
    if (st != LLMSQ_OK) goto fail;
    /* Scales in the checkpoint's dtype: GPTQ stores f16; compressed-tensors the model's own
     * float type (that of its embeddings), so an f32 model keeps exact f32 scales. */
    qp.scale_dtype = LLMSQ_DTYPE_F16;
    if (fmt == LLMSQ_CKPT_COMPRESSED_TENSORS && !strcmp(scale_dtype, "auto")) { /* (AWQ, GPTQ: f16) */
        const llmsq_tensor *emb = llmsq_store_get(llmsq_model_store(m), "model.embed_tokens.weight");
        qp.scale_dtype = emb->dtype == LLMSQ_DTYPE_BF16 ? LLMSQ_DTYPE_BF16
                         : emb->dtype == LLMSQ_DTYPE_F16 ? LLMSQ_DTYPE_F16 : LLMSQ_DTYPE_F32;
    } else if (fmt == LLMSQ_CKPT_COMPRESSED_TENSORS) {
        qp.scale_dtype = !strcmp(scale_dtype, "bf16") ? LLMSQ_DTYPE_BF16
                         : !strcmp(scale_dtype, "f32") ? LLMSQ_DTYPE_F32 : LLMSQ_DTYPE_F16;
    }
    if (cp.seqlen > cfg->max_position) {
        st = llmsq_error(LLMSQ_STATUS_ARG, "--seqlen %lld exceeds the model's context (%lld)", (long long)cp.seqlen,
                         (long long)cfg->max_position);
        goto fail;
    }

    if ((st = llmsq_quant_pass_create(qm, &qp, ignore, &pass)) != LLMSQ_OK) goto fail;
    if ((st = check_format(fmt, &qp, llmsq_model_store(m), cfg, pass)) != LLMSQ_OK) goto fail;

    if (dry) {
        llmsq_calib_plan plan;
        llmsq_calib_plan_bytes(cfg, &cp, needs_calib, &plan);
        size_t weights = 0, qbytes = 0, largest = 0;
        llmsq_store *s = llmsq_model_store(m);
        for (size_t i = 0; i < llmsq_store_count(s); i++) {
            const llmsq_tensor *t = llmsq_store_at(s, i);
            weights += t->nbytes + (t->dtype == LLMSQ_DTYPE_F32 ? 0 : (size_t)llmsq_tensor_numel(t) * 4);
            largest = t->nbytes > largest ? t->nbytes : largest;
        }
        /* codes (one byte each) and f32 scales/zeros of every block linear */
        for (int64_t l = 0; l < cfg->n_layers; l++)
            for (int i = 0; i < LLMSQ_LINEAR_COUNT; i++) {
                char w[160];
                llmsq_linear_weight_name(l, i, w, sizeof w);
                const llmsq_tensor *t = llmsq_store_get(s, w);
                int64_t g = qp.group_size > 0 ? qp.group_size : t->shape[1];
                qbytes += (size_t)(t->shape[0] * t->shape[1]) + (size_t)(t->shape[0] * ((t->shape[1] + g - 1) / g)) * 8;
            }
        /* GPTQ's per-linear workspace: W and error in double, H and its inverse factor */
        size_t gptq_ws = 0;
        if (qm == LLMSQ_QUANT_GPTQ || qm == LLMSQ_QUANT_AWQ_GPTQ) {
            int64_t F = cfg->intermediate_size, d = cfg->hidden_size;
            size_t a = (size_t)(F * d) * 16 + (size_t)(F * F) * 16, b = (size_t)(d * F) * 16 + (size_t)(d * d) * 16;
            gptq_ws = a > b ? a : b;
        }
        size_t calib_peak = weights + plan.activations + plan.block_scratch + plan.hessians + gptq_ws + qbytes;
        size_t write_peak = weights + qbytes + 2 * largest;
        char b1[32];
        printf("memory plan for %s (%s, %d-bit, group %lld, %lld x %lld calibration tokens)\n", model, method, qp.bits,
               (long long)qp.group_size, (long long)cp.nsamples, (long long)cp.seqlen);
        mib(b1, sizeof b1, weights); printf("  weights (mapped + f32 views)  %s\n", b1);
        mib(b1, sizeof b1, plan.activations); printf("  calibration activations      %s%s\n", b1, plan.spilled ? " (spilled to disk)" : "");
        mib(b1, sizeof b1, plan.block_scratch); printf("  one block forward            %s\n", b1);
        mib(b1, sizeof b1, plan.hessians); printf("  Hessians                     %s\n", b1);
        mib(b1, sizeof b1, gptq_ws); printf("  GPTQ workspace               %s\n", b1);
        mib(b1, sizeof b1, qbytes); printf("  quantized codes and scales   %s\n", b1);
        mib(b1, sizeof b1, calib_peak); printf("phase quantize: predicted peak %s\n", b1);
        mib(b1, sizeof b1, write_peak); printf("phase write:    predicted peak %s\n", b1);
        mib(b1, sizeof b1, calib_peak > write_peak ? calib_peak : write_peak);
        printf("predicted peak                %s\n", b1);
        llmsq_quant_pass_free(pass);
        llmsq_model_free(m);
        return 0;
    }

    manifest = json_object();
    json_t *flags = json_object(), *inputs = json_object();
    json_object_set_new(manifest, "tool", json_string("llmsq " LLMSQ_VERSION_STRING));
    json_object_set_new(flags, "method", json_string(method));
    json_object_set_new(flags, "bits", json_integer(qp.bits));
    json_object_set_new(flags, "group_size", json_integer(qp.group_size));
    json_object_set_new(flags, "sym", json_boolean(qp.grid != LLMSQ_QGRID_MINMAX && qp.grid != LLMSQ_QGRID_AWQ));
    if (awq) {
        json_object_set_new(flags, "awq_grid", json_integer(qp.awq_grid));
        json_object_set_new(flags, "awq_duo", json_boolean(qp.awq_duo));
        json_object_set_new(flags, "awq_clip", json_boolean(qp.awq_clip));
    }
    if (w8a8) {
        if (qm == LLMSQ_QUANT_SMOOTHQUANT) json_object_set_new(flags, "alpha", json_real(qp.sq_alpha));
        json_object_set_new(flags, "activations", json_string(qp.act_static ? "static per-tensor" : "dynamic per-token"));
    }
    json_object_set_new(flags, "format", json_string(format));
    json_object_set_new(flags, "ignore", ignore ? json_string(ignore) : json_null());
    if (qm == LLMSQ_QUANT_GPTQ || qm == LLMSQ_QUANT_AWQ_GPTQ) {
        json_object_set_new(flags, "act_order", json_boolean(qp.act_order));
        json_object_set_new(flags, "static_groups", json_boolean(qp.static_groups));
        json_object_set_new(flags, "damp", json_real(qp.damp));
        json_object_set_new(flags, "true_sequential", json_boolean(cp.true_sequential));
    }
    json_object_set_new(manifest, "flags", flags);
    json_object_set_new(manifest, "inputs", inputs);
    if ((st = cli_hash_inputs(model, inputs)) != LLMSQ_OK) goto fail;

    if (needs_calib && (st = cli_calibration(m, model, calib, &cp, manifest, &tokens)) != LLMSQ_OK) goto fail;

    double t0 = llmsq_time_now();
    if ((st = llmsq_calib_run(m, tokens, &cp, llmsq_quant_pass_calib(pass))) != LLMSQ_OK) goto fail;
    double secs = llmsq_time_now() - t0;
    const llmsq_quant_record *rec;
    size_t n_rec = llmsq_quant_pass_records(pass, &rec);
    if (!llmsq_is_quiet()) {
        printf("%-40s %12s %10s %12s %8s\n", "linear", "shape", "rel err", "gptq loss", "seconds");
        for (size_t i = 0; i < n_rec; i++) {
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)rec[i].out, (long long)rec[i].in);
            printf("%-40s %12s %10.5f %12.4g %8.3f\n", rec[i].module, shape, rec[i].rel_err, rec[i].gptq_loss,
                   rec[i].seconds);
        }
    }
    printf("quantized %zu linears (%s, %d-bit, group %lld) in %.2f s\n", n_rec, method, qp.bits, (long long)qp.group_size,
           secs);

    manifest_text = json_dumps(manifest, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    llmsq_ckpt_write_params wp = {.format = fmt, .source = model, .quant = &qp,
                                  .true_sequential = cp.true_sequential, .manifest_json = manifest_text};
    if ((st = llmsq_quantized_checkpoint_write(out, llmsq_model_store(m), cfg, &wp)) != LLMSQ_OK) goto fail;
    printf("wrote %s (%s)\n", out, format);
    free(manifest_text);
    json_decref(manifest);
    free(tokens);
    llmsq_quant_pass_free(pass);
    llmsq_model_free(m);
    return 0;
fail:
    free(manifest_text);
    json_decref(manifest);
    free(tokens);
    llmsq_quant_pass_free(pass);
    llmsq_model_free(m);
    return cli_fail("quantize", st);
}
