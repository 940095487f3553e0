#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_shared(const char *rel)
{
    const char *root = getenv("LLMSQ_SHARED");
    if (!root || !*root) root = "../shared";
    char *p = llmsq_path_join(root, rel);
    struct stat st;
    if (stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

char *tu_tmpdir(const char *tag)
{
    const char *base = getenv("LLMSQ_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    char *path = malloc(strlen(base) + strlen(tag) + 32);
    ck_assert_ptr_nonnull(path);
    sprintf(path, "%s/%s-%ld", base, tag, (long)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    ck_assert_int_eq(system(cmd), 0);
    return path;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t n = 0;
    if (llmsq_read_file(path, &data, &n) != LLMSQ_OK) return strdup("");
    return data;
}

int tu_run_cli(const char *args, char **out, char **err)
{
    const char *bin = getenv("LLMSQ_BIN");
    ck_assert_msg(bin && *bin, "LLMSQ_BIN not set (run through ctest)");
    char *dir = tu_tmpdir("cli");
    size_t cap = strlen(bin) + strlen(args) + 2 * strlen(dir) + 128;
    char *cmd = malloc(cap);
    snprintf(cmd, cap, "'%s' %s >'%s/out' 2>'%s/err' </dev/null", bin, args, dir, dir);
    int rc = system(cmd);
    int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/out", dir);
    if (out) *out = slurp(path);
    snprintf(path, sizeof path, "%s/err", dir);
    if (err) *err = slurp(path);
    snprintf(cmd, cap, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    free(cmd);
    free(dir);
    return code;
}

void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        if (d < 0) d = -d;
        if (d > m || d != d) m = d != d ? 1e30 : d;
    }
    return m;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

uint64_t tu_rng;

uint64_t tu_seed_from_env(void)
{
    const char *env = getenv("LLMSQ_TEST_SEED");
    return env ? strtoull(env, NULL, 0) : 20240607;
}

double tu_urand(void)
{
    uint64_t z = (tu_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53;
}

double tu_nrand(void)
{
    double u = tu_urand(), v = tu_urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* H = 2/T X^T X for correlated activations with a few large-magnitude channels (as LLM
 * activations have); the columns in `dead` are all zero, so their H row and column are. */
double *tu_random_hessian(int64_t n, int64_t T, const int64_t *dead, int n_dead)
{
    double *X = malloc((size_t)(T * n) * sizeof *X), *H = calloc((size_t)(n * n), sizeof *H);
    ck_assert(X && H);
    for (int64_t t = 0; t < T; t++) {
        double prev = tu_nrand();
        for (int64_t i = 0; i < n; i++) {
            const double z = tu_nrand();
            X[t * n + i] = (z + 0.8 * prev) * (i % 17 == 3 ? 25.0 : 1.0);
            prev = z;
        }
        for (int d = 0; d < n_dead; d++) X[t * n + dead[d]] = 0;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += X[t * n + i] * X[t * n + j];
            H[i * n + j] = 2.0 * s / (double)T;
        }
    free(X);
    return H;
}

uint64_t tu_lcg_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

bool tu_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

char *tu_path(const char *a, const char *b)
{
    char *p = llmsq_path_join(a, b);
    ck_assert_ptr_nonnull(p);
    return p;
}

void tu_sh(const char *fmt, const char *a, const char *b)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

json_t *tu_load_json(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", p, e.text);
    free(p);
    return j;
}

void tu_put_json(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    tu_write_file(p, text, strlen(text));
    free(p);
}

void tu_assert_dirs_identical(const char *a, const char *b, size_t min_files)
{
    DIR *d = opendir(a);
    ck_assert_msg(d != NULL, "cannot open %s", a);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *pa = tu_path(a, e->d_name), *pb = tu_path(b, e->d_name), *da, *db;
        size_t na, nb;
        ck_assert_int_eq(llmsq_read_file(pa, &da, &na), LLMSQ_OK);
        ck_assert_msg(llmsq_read_file(pb, &db, &nb) == LLMSQ_OK, "%s", pb);
        ck_assert_msg(na == nb && memcmp(da, db, na) == 0, "%s differs between writes", e->d_name);
        free(da), free(db), free(pa), free(pb);
        n++;
    }
    closedir(d);
    ck_assert_uint_ge(n, min_files);
}

llmsq_store *tu_checkpoint_copy(const char *src, const char *dst, llmsq_config *cfg)
{
    tu_sh("rm -rf '%s'%s", dst, "");
    tu_sh("cp -r '%s' '%s'", src, dst);
    llmsq_store *s;
    llmsq_tokenizer *tok;
    ck_assert_msg(llmsq_checkpoint_open(dst, &s, cfg, &tok) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_tokenizer_free(tok);
    return s;
}

float *tu_logits(llmsq_model *m, const int32_t *tok, int64_t T)
{
    float *lg = malloc((size_t)(T * llmsq_model_config(m)->vocab_size) * sizeof *lg);
    ck_assert_ptr_nonnull(lg);
    llmsq_kv_cache *cache;
    ck_assert_int_eq(llmsq_kv_cache_create(llmsq_model_config(m), T, &cache), LLMSQ_OK);
    ck_assert_msg(llmsq_model_forward(m, cache, tok, T, lg, NULL) == LLMSQ_OK, "%s", llmsq_last_error());
    llmsq_kv_cache_free(cache);
    return lg;
}
