/* Helpers shared by the commands that write checkpoints (quantize, prune). */
#include "cli/cli.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cli_parse_size(const char *cmd, const char *flag, const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end), mul = 1;
    bool ok = end != s && v >= 0;
    if (ok && *end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; break;
        case 'm': case 'M': mul = 1048576.0; break;
        case 'g': case 'G': mul = 1073741824.0; break;
        default: ok = false;
        }
        if (ok && end[1] && strcasecmp(end + 1, "b") && strcasecmp(end + 1, "ib")) ok = false;
    }
    if (!ok) {
        cli_usage_error(cmd, "%s expects a size like 512M or 2G, got '%s'", flag, s);
        return false;
    }
    *out = (size_t)(v * mul);
    return true;
}

bool cli_parse_f64(const char *cmd, const char *flag, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) {
        cli_usage_error(cmd, "%s expects a number, got '%s'", flag, s);
        return false;
    }
    *out = v;
    return true;
}

/* sha256 of every regular file of a model (a directory's files, sorted, or the one file). */
llmsq_status cli_hash_inputs(const char *model, json_t *obj)
{
    char hex[65];
    if (!llmsq_is_dir(model)) {
        LLMSQ_TRY(llmsq_sha256_file(model, hex));
        json_object_set_new(obj, model, json_string(hex));
        return LLMSQ_OK;
    }
    struct dirent **names;
    int n = scandir(model, &names, NULL, alphasort);
    if (n < 0) return llmsq_error(LLMSQ_STATUS_IO, "%s: cannot list the directory", model);
    llmsq_status st = LLMSQ_OK;
    for (int i = 0; i < n; i++) {
        char *p = llmsq_path_join(model, names[i]->d_name);
        if (st == LLMSQ_OK && names[i]->d_name[0] != '.' && llmsq_is_file(p)) {
            st = llmsq_sha256_file(p, hex);
            if (st == LLMSQ_OK) json_object_set_new(obj, names[i]->d_name, json_string(hex));
        }
        free(p);
        free(names[i]);
    }
    free(names);
    return st;
}


typedef struct sp_row {
    const char *name;
    double      sparsity;
    const char *pattern;
} sp_row;

llmsq_status cli_report_sparsity(llmsq_store *s, bool release)
{
    size_t n = llmsq_store_count(s), k = 0;
    sp_row *rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    double top = 0;
    int64_t zeros_all = 0, numel_all = 0;
    for (size_t i = 0; i < n; i++) {
        const llmsq_tensor *t = llmsq_store_at(s, i);
        size_t len = strlen(t->name);
        if (t->ndim != 2 || strncmp(t->name, "model.layers.", 13) != 0 || len < 7 ||
            strcmp(t->name + len - 7, ".weight") != 0 || (t->dtype != LLMSQ_DTYPE_F32 && t->dtype != LLMSQ_DTYPE_F16 &&
                                                          t->dtype != LLMSQ_DTYPE_BF16 && t->dtype != LLMSQ_DTYPE_Q8_0))
            continue;
        const float *W;
        llmsq_status st = llmsq_store_get_f32(s, t->name, &W);
        if (st != LLMSQ_OK) {
            free(rows);
            return st;
        }
        const int64_t numel = llmsq_tensor_numel(t);
        int64_t zeros = 0;
        for (int64_t j = 0; j < numel; j++) zeros += W[j] == 0.0f;
        if (zeros) {
            double f = (double)zeros / (double)numel;
            int64_t bad;
            rows[k++] = (sp_row){t->name, f, llmsq_check_nm(W, t->shape[0], t->shape[1], 2, 4, &bad)   ? "2:4"
                                             : llmsq_check_nm(W, t->shape[0], t->shape[1], 4, 8, &bad) ? "4:8"
                                                                                                       : "unstructured"};
            if (f > top) top = f;
        }
        zeros_all += zeros;
        numel_all += numel;
        if (release) llmsq_store_release_f32(s, t->name);
    }
    if (top >= 0.10) {
        printf("sparsity         %.2f%% of block linear weights are zero\n",
               numel_all ? 100.0 * (double)zeros_all / (double)numel_all : 0.0);
        for (size_t i = 0; i < k; i++)
            printf("  %-56s %6.2f%%  %s\n", rows[i].name, 100.0 * rows[i].sparsity, rows[i].pattern);
    }
    free(rows);
    return LLMSQ_OK;
}


llmsq_status cli_calibration(const llmsq_model *m, const char *model, const char *calib,
                             const llmsq_calib_params *cp, struct json_t *manifest, int32_t **tokens)
{
    if (!llmsq_model_tokenizer(m))
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: the model has no tokenizer to encode --calib", model);
    llmsq_dataset d;
    LLMSQ_TRY(llmsq_dataset_load(calib, LLMSQ_TEXT_AUTO, &d));
    char hex[65], thex[65];
    llmsq_sha256_hex(d.raw, d.raw_len, hex);
    llmsq_status st = llmsq_calib_sample(llmsq_model_tokenizer(m), &d, cp, tokens);
    llmsq_dataset_free(&d);
    if (st != LLMSQ_OK) return llmsq_error_prefix(st, "%s", calib);
    llmsq_token_sha256(*tokens, (size_t)(cp->nsamples * cp->seqlen), thex);
    json_object_set_new(manifest, "calibration",
                        json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "file", calib, "file_sha256", hex, "nsamples",
                                  (json_int_t)cp->nsamples, "seqlen", (json_int_t)cp->seqlen, "seed",
                                  (json_int_t)cp->seed, "token_sha256", thex));
    return LLMSQ_OK;
}

llmsq_status cli_override_tokenizer(llmsq_model *m, const char *path)
{
    if (!path) return LLMSQ_OK;
    llmsq_tokenizer *tok;
    LLMSQ_TRY(llmsq_tokenizer_load(path, &tok));
    return llmsq_model_set_tokenizer(m, tok);
}
