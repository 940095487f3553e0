/*
 * Runtime services: threads, progress reporting, logging, timing, hashing, memory.
 */
#ifndef LLMSQ_RUNTIME_H
#define LLMSQ_RUNTIME_H

#include "llmsq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Worker threads for OpenMP regions and OpenBLAS (default: all cores, or $LLMSQ_THREADS). */
LLMSQ_API void llmsq_threads_set(int n);
LLMSQ_API int  llmsq_threads_get(void);

/* Quiet mode silences progress bars and informational logs (errors still print). */
LLMSQ_API void llmsq_set_quiet(bool quiet);
LLMSQ_API bool llmsq_is_quiet(void);

/* Informational message on stderr ("llmsq: ...\n"), unless quiet. */
LLMSQ_API void llmsq_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Warning on stderr ("llmsq: warning: ...\n"), printed even when quiet. */
LLMSQ_API void llmsq_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A progress bar on stderr, drawn only when stderr is a TTY and not quiet, at most ~10
 * times a second. update() may be called from any one thread at a time. */
typedef struct llmsq_progress llmsq_progress;
LLMSQ_API llmsq_progress *llmsq_progress_begin(const char *label, int64_t total);
LLMSQ_API void            llmsq_progress_update(llmsq_progress *p, int64_t done);
LLMSQ_API void            llmsq_progress_end(llmsq_progress *p); /* NULL is fine */

/* splitmix64: the next value of a seeded stream, the same on every platform (so a seed names
 * one calibration set, one permutation sweep order, one speed-test prompt). */
static inline uint64_t llmsq_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Monotonic seconds. */
LLMSQ_API double llmsq_time_now(void);

/* Peak resident set size of the process in bytes (0 when unknown). */
LLMSQ_API size_t llmsq_peak_rss(void);

/* SHA-256 (FIPS 180-4). */
typedef struct llmsq_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t  buf[64];
    size_t   buf_len;
} llmsq_sha256;
LLMSQ_API void llmsq_sha256_init(llmsq_sha256 *c);
LLMSQ_API void llmsq_sha256_update(llmsq_sha256 *c, const void *data, size_t n);
LLMSQ_API void llmsq_sha256_final(llmsq_sha256 *c, uint8_t out[32]);
/* One-shot, lowercase hex into out[65]. */
LLMSQ_API void llmsq_sha256_hex(const void *data, size_t n, char out[65]);

/* The token-stream fingerprint of every report and manifest: sha256 of ids [n] as int32
 * little-endian (whatever the host's byte order), lowercase hex into out[65]. */
LLMSQ_API void llmsq_token_sha256(const int32_t *ids, size_t n, char out[65]);

/* sha256 of a file's contents, streamed (constant memory). Errors: IO naming the path. */
LLMSQ_API llmsq_status llmsq_sha256_file(const char *path, char out[65]);

/* Reads a whole file into a malloc'd NUL-terminated buffer. Errors: IO naming the path. */
LLMSQ_API llmsq_status llmsq_read_file(const char *path, char **data, size_t *size);

/* Path helpers: join dir and name into a malloc'd string; test for a regular file/directory. */
LLMSQ_API char *llmsq_path_join(const char *dir, const char *name);
LLMSQ_API bool  llmsq_is_file(const char *path);
LLMSQ_API bool  llmsq_is_dir(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_RUNTIME_H */
