/* The llmsq command: each subcommand is `int llmsq_cmd_<name>(int argc, char **argv)` with
 * argv[0] the subcommand name; it handles --help itself and returns the process exit
 * code (0 success, 1 failure, 2 bad usage). Errors print one line to stderr:
 *   llmsq <cmd>: error: <llmsq_last_error()>                                         */
#ifndef LLMSQ_CLI_H
#define LLMSQ_CLI_H

#include "llmsq/llmsq.h"

#include <stdio.h>

int llmsq_cmd_inspect(int argc, char **argv);
int llmsq_cmd_eval(int argc, char **argv);
int llmsq_cmd_generate(int argc, char **argv);
int llmsq_cmd_synth(int argc, char **argv);
int llmsq_cmd_tokenize(int argc, char **argv);
int llmsq_cmd_quantize(int argc, char **argv);
int llmsq_cmd_prune(int argc, char **argv);

/* Prints "llmsq <cmd>: error: <last error or status text>" and returns 1. */
int cli_fail(const char *cmd, llmsq_status s);

/* Prints "llmsq <cmd>: <message>" plus a pointer to --help, returns 2 (bad usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a decimal integer in [lo, hi]; false (with a usage message) otherwise. */
bool cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi,
                   int64_t *out);

/* A size like "512M", "2G", "64K" or bytes; false (with a usage message) otherwise. */
bool cli_parse_size(const char *cmd, const char *flag, const char *s, size_t *out);

/* A decimal number; false (with a usage message) otherwise. Ranges are the params' validators' job. */
bool cli_parse_f64(const char *cmd, const char *flag, const char *s, double *out);

/* sha256 of every regular file of a model (a directory's files, sorted, or the one file)
 * into the JSON object obj (struct json_t from jansson). */
struct json_t;
llmsq_status cli_hash_inputs(const char *model, struct json_t *obj);

/* Samples the calibration windows of --calib for model m (tokens [nsamples * seqlen],
 * malloc'd) and records the file, its sha256 and the token stream's in manifest.calibration. */
llmsq_status cli_calibration(const llmsq_model *m, const char *model, const char *calib,
                             const llmsq_calib_params *cp, struct json_t *manifest, int32_t **tokens);

/* --tokenizer PATH: replaces the model's tokenizer with the one at PATH (a tokenizer.json, a
 * .model, a .gguf, or a directory holding one); NULL = keep the model's. */
llmsq_status cli_override_tokenizer(llmsq_model *m, const char *path);

/* Prints the actual sparsity of every block linear with exact zeros (and the overall share),
 * when some linear is at least 10% zeros; release: drop each F32 view after reading it (not
 * when a bound model still uses them). */
llmsq_status cli_report_sparsity(llmsq_store *s, bool release);

/* True when arg equals `--name` (and, for options with values, a value follows). */
bool cli_is_help(const char *arg);

#endif
