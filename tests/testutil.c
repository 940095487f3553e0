#include "testutil.h"

#include <errno.h>
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
