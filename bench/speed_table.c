/* Model-level speed table: `llmsq eval --speed` (llmsq_speed_run) over several checkpoints
 * of one model, as ratios against the first row, all in one run on one machine.
 *
 *   OMP_NUM_THREADS=2 build/bench/bench_speed_table [--prefill 128] [--decode 64] [--batch 1]
 *       LABEL=PATH[@KERNELS] ...
 *
 * KERNELS: ref (the f32 OpenBLAS forward over dequantized weights), or f32, f16, bf16, auto
 * (packed, float weights that stay dense in that dtype; default auto). Each model is opened
 * and timed in its own child process, one after the other, so peak RSS is that model's; the
 * parent never runs OpenMP code, so forking is safe.
 * Prints a markdown table: prefill and decode tokens/s, the ratios to row 1, decode as a
 * fraction of the bandwidth roofline measured in the same call, and the weight bytes.
 * bench/speed_models.sh builds the checkpoints of one synthetic shape and calls this. */
#include "llmsq/llmsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct row {
    char               label[64];
    llmsq_speed_result r;
    char               layout[64];
} row;

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--prefill N] [--decode N] [--batch N] LABEL=PATH[@ref|f32|f16|bf16|auto] ...\n",
            argv0);
    return 2;
}

/* Opens and times one LABEL=PATH[@KERNELS] spec. */
static int run_spec(const char *spec, const llmsq_speed_params *sp, row *out)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    char *eq = strchr(buf, '='), *at = strrchr(buf, '@');
    if (!eq) return fprintf(stderr, "bad spec '%s' (LABEL=PATH)\n", spec), 2;
    *eq = 0;
    if (at && at > eq) *at++ = 0;
    else at = NULL;
    snprintf(out->label, sizeof out->label, "%.63s", buf);
    const char *path = eq + 1, *k = at ? at : "auto";
    llmsq_model *m;
    llmsq_status st;
    if (!strcmp(k, "ref")) {
        st = llmsq_model_open(path, &m);
    } else {
        llmsq_pack_opts o = llmsq_pack_default_opts();
        if (!strcmp(k, "f32")) o.dense_dtype = LLMSQ_DTYPE_F32;
        else if (!strcmp(k, "f16")) o.dense_dtype = LLMSQ_DTYPE_F16;
        else if (!strcmp(k, "bf16")) o.dense_dtype = LLMSQ_DTYPE_BF16;
        else if (strcmp(k, "auto")) return fprintf(stderr, "bad kernels '%s'\n", k), 2;
        st = llmsq_model_open_packed(path, &o, &m);
    }
    if (st == LLMSQ_OK) st = llmsq_speed_run(m, sp, &out->r);
    if (st != LLMSQ_OK) return fprintf(stderr, "%s: %s\n", spec, llmsq_last_error()), 1;
    if (!out->r.packed) {
        snprintf(out->layout, sizeof out->layout, "f32 OpenBLAS (reference)");
    } else {
        int n = 0;
        for (int i = 0; i < LLMSQ_PLINEAR_KIND_COUNT; i++)
            if (out->r.pack.linears[i])
                n += snprintf(out->layout + n, sizeof out->layout - (size_t)n, "%s%s", n ? "+" : "",
                              llmsq_plinear_kind_name((llmsq_plinear_kind)i, out->r.pack.dense_dtype));
        snprintf(out->layout + n, sizeof out->layout - (size_t)n, ", head %s",
                 llmsq_plinear_kind_name(LLMSQ_PLINEAR_DENSE, out->r.pack.dense_dtype));
    }
    fprintf(stderr, "%-12s prefill %8.1f tok/s  decode %7.1f tok/s  (%s)\n", out->label, out->r.prefill_tps,
            out->r.decode_tps, out->layout);
    llmsq_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    llmsq_speed_params sp = llmsq_speed_default_params();
    sp.prefill = 128, sp.decode = 64;
    int first = 1;
    for (; first + 1 < argc && !strncmp(argv[first], "--", 2); first += 2) {
        if (!strcmp(argv[first], "--prefill")) sp.prefill = atoll(argv[first + 1]);
        else if (!strcmp(argv[first], "--decode")) sp.decode = atoll(argv[first + 1]);
        else if (!strcmp(argv[first], "--batch")) sp.batch = atoll(argv[first + 1]);
        else return usage(argv[0]);
    }
    if (first >= argc) return usage(argv[0]);
    llmsq_set_quiet(true);
    const int n = argc - first;
    row *rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++) {
        int fd[2];
        if (pipe(fd) != 0) return perror("pipe"), 1;
        pid_t pid = fork();
        if (pid < 0) return perror("fork"), 1;
        if (pid == 0) { /* child: time the model, send the row back */
            close(fd[0]);
            int rc = run_spec(argv[first + i], &sp, &rows[i]);
            if (!rc && write(fd[1], &rows[i], sizeof rows[i]) != (ssize_t)sizeof rows[i]) rc = 1;
            _exit(rc);
        }
        close(fd[1]);
        ssize_t got = read(fd[0], &rows[i], sizeof rows[i]);
        close(fd[0]);
        int status;
        waitpid(pid, &status, 0);
        if (got != (ssize_t)sizeof rows[i] || !WIFEXITED(status) || WEXITSTATUS(status))
            return fprintf(stderr, "%s failed\n", argv[first + i]), 1;
    }
    printf("prefill %lld tokens, decode %lld steps, batch %lld, %d threads, isa %s\n\n", (long long)sp.prefill,
           (long long)sp.decode, (long long)sp.batch, rows[0].r.threads, llmsq_kern_isa_name(llmsq_kern_isa_get()));
    printf("| model | layouts | weight MiB | prefill tok/s | x row 1 | decode tok/s | x row 1 | decode / bw roofline "
           "| bw GB/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const llmsq_speed_result *r = &rows[i].r, *b = &rows[0].r;
        printf("| %s | %s | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.0f%% of %.1f | %.1f | %.0f |\n", rows[i].label,
               rows[i].layout, (double)r->weight_bytes / 1048576.0, r->prefill_tps, r->prefill_tps / b->prefill_tps,
               r->decode_tps, r->decode_tps / b->decode_tps, 100.0 * r->decode_tps / r->decode_roofline_tps,
               r->decode_roofline_tps, r->bandwidth_gbs, (double)r->peak_rss / 1048576.0);
    }
    free(rows);
    return 0;
}
