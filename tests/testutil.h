/* Shared helpers for the Check suites. */
#ifndef LLMSQ_TESTUTIL_H
#define LLMSQ_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include "llmsq/llmsq.h"

/* Path under $LLMSQ_SHARED (malloc'd), or NULL when the shared folder is absent. */
char *tu_shared(const char *rel);

/* Skips the current test (prints why) when the shared path is missing; returns the path. */
#define TU_SHARED_OR_SKIP(var, rel)                                                   \
    char *var = tu_shared(rel);                                                       \
    if (!var) {                                                                       \
        fprintf(stderr, "SKIP %s: ../shared/%s not found (set LLMSQ_SHARED)\n",       \
                __func__, rel);                                                       \
        return;                                                                       \
    }

/* A fresh, empty temporary directory for this test (malloc'd path). */
char *tu_tmpdir(const char *tag);

/* Runs `build/llmsq` with the given argument string through /bin/sh; captures stdout and
 * stderr into malloc'd strings (either may be NULL) and returns the exit code. */
int tu_run_cli(const char *args, char **out, char **err);

/* Writes n bytes to path (aborts the test on failure). */
void tu_write_file(const char *path, const void *data, size_t n);

/* Max |a-b| over n floats. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Seeded random fixtures (splitmix64: the same stream everywhere). tu_rng is the state; tests
 * seed it from tu_seed_from_env() ($LLMSQ_TEST_SEED, else a fixed default) and print it when
 * they fail. */
extern uint64_t tu_rng;
uint64_t tu_seed_from_env(void);
double   tu_urand(void); /* [0, 1) */
double   tu_nrand(void); /* standard normal (Box-Muller) */

/* H [n, n] = 2/T X^T X (double, malloc'd) for T rows of correlated activations with a few
 * large-magnitude channels (as LLM activations have); the columns listed in dead[n_dead] are
 * all zero, so their H row and column are. */
double *tu_random_hessian(int64_t n, int64_t T, const int64_t *dead, int n_dead);

/* A small LCG for fixture bytes: state advanced in place, 31 bits out. */
uint64_t tu_lcg_next(uint64_t *s);
bool tu_exists(const char *p);
/* llmsq_path_join that fails the test when out of memory (malloc'd). */
char *tu_path(const char *a, const char *b);
/* Runs a shell command built from fmt with two string arguments; fails the test when it fails. */
void tu_sh(const char *fmt, const char *a, const char *b);
/* dir/name parsed as JSON (the test fails on error); caller json_decref()s. */
struct json_t *tu_load_json(const char *dir, const char *name);
/* Writes text to dir/name. */
void tu_put_json(const char *dir, const char *name, const char *text);

/* Asserts that every file of directory a exists in b with the same bytes, and that a holds at
 * least min_files files (dot files skipped). */
void tu_assert_dirs_identical(const char *a, const char *b, size_t min_files);

/* Copies model directory src to dst (replacing dst) and opens it for writing tests: the store
 * and config of the copy (the tokenizer is dropped). */
llmsq_store *tu_checkpoint_copy(const char *src, const char *dst, llmsq_config *cfg);

/* Logits [T, vocab] (malloc'd) of one forward of tok [T] from an empty cache. */
float *tu_logits(llmsq_model *m, const int32_t *tok, int64_t T);

/* Standard runner: runs the suite, prints the summary, returns the exit code. */
int tu_run_suite(Suite *s);

#endif
