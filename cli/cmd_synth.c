/* llmsq synth: writes a synthetic Hugging Face model directory with the shapes of a real
 * model, so speed and memory work can run without downloading weights. */
#include "cli/cli.h"

#include <string.h>

static const char *const CMD = "synth";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: llmsq synth --shape NAME --out DIR [--dtype f32|bf16] [--seed N]\n"
            "\n"
            "Writes a Hugging Face-layout model directory (config.json, generation_config.json,\n"
            "tokenizer.model, model.safetensors or shards + index) with the exact tensor shapes\n"
            "of a real model and deterministic random weights (normal, std 0.02; norms 1).\n"
            "\n"
            "  --shape NAME    model to imitate (see below)\n"
            "  --out DIR       output directory; must not exist or be empty\n"
            "  --dtype T       f32 (default) or bf16\n"
            "  --seed N        weight seed, 0..2^63-1 (default 0); same seed, same bytes\n"
            "\n"
            "shapes:\n");
    for (const char *const *s = llmsq_synth_shapes(); *s; s++) fprintf(f, "  %s\n", *s);
}

/* Accepts "--name VALUE" and "--name=VALUE"; *i advances past what it consumed. */
static bool opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *val = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    *val = (*i + 1 < argc) ? argv[++*i] : NULL;
    return true;
}

int llmsq_cmd_synth(int argc, char **argv)
{
    const char *shape = NULL, *out = NULL, *dtype_s = "f32", *seed_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (opt_value(argc, argv, &i, "--shape", &v)) {
            shape = v;
        } else if (opt_value(argc, argv, &i, "--out", &v)) {
            out = v;
        } else if (opt_value(argc, argv, &i, "--dtype", &v)) {
            dtype_s = v;
        } else if (opt_value(argc, argv, &i, "--seed", &v)) {
            seed_s = v;
        } else {
            return cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
        if (!v) return cli_usage_error(CMD, "%s needs a value", argv[i]);
    }
    if (!shape) return cli_usage_error(CMD, "--shape is required");
    if (!out || !*out) return cli_usage_error(CMD, "--out is required");

    bool known = false;
    for (const char *const *s = llmsq_synth_shapes(); *s; s++)
        if (strcmp(*s, shape) == 0) known = true;
    if (!known) return cli_usage_error(CMD, "unknown shape '%s' (see --help)", shape);

    llmsq_dtype dtype;
    if (strcmp(dtype_s, "f32") == 0) dtype = LLMSQ_DTYPE_F32;
    else if (strcmp(dtype_s, "bf16") == 0) dtype = LLMSQ_DTYPE_BF16;
    else return cli_usage_error(CMD, "--dtype must be f32 or bf16, not '%s'", dtype_s);

    int64_t seed = 0;
    if (seed_s && !cli_parse_i64(CMD, "--seed", seed_s, 0, INT64_MAX, &seed)) return 2;

    double t0 = llmsq_time_now();
    llmsq_status s = llmsq_synth_write(shape, out, dtype, (uint64_t)seed);
    if (s != LLMSQ_OK) return cli_fail(CMD, s);
    printf("llmsq synth: wrote %s (shape %s, %s, seed %lld) in %.1f s\n", out, shape, dtype_s,
           (long long)seed, llmsq_time_now() - t0);
    return 0;
}
