/*
 * llmsq — offline compression toolkit for large language models.
 *
 * Version and the status contract shared by every module.
 *
 * Status contract (see ../shared/docs/DESIGN.md, "Core contracts"):
 *  1. Every fallible function returns llmsq_status. LLMSQ_OK is 0, errors are negative
 *     and their values never change once published.
 *  2. A failing function records a one-line message saying what failed and where
 *     (file, tensor name, byte offset) in the calling thread's error context; read it
 *     with llmsq_last_error(). The message is valid until the next failing call on
 *     the same thread.
 *  3. Library code never exits the process. Misuse by the caller (NULL where forbidden,
 *     broken invariants) aborts through LLMSQ_ASSERT with file and line.
 */
#ifndef LLMSQ_STATUS_H
#define LLMSQ_STATUS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMSQ_API __attribute__((visibility("default")))

#define LLMSQ_VERSION_MAJOR 0
#define LLMSQ_VERSION_MINOR 1
#define LLMSQ_VERSION_PATCH 0
#define LLMSQ_VERSION_STRING "0.1.0"

/* X-macro: code name, pinned value, static description. Grouped with gaps:
 * I/O and format -1..-19, shapes and numerics -20..-39, resources -40..-49,
 * arguments -50..-59, backends -60..-69. */
#define LLMSQ_STATUS_MAP(X)                                              \
    X(OK,          0,  "success")                                        \
    X(IO,         -1,  "I/O error")                                      \
    X(FORMAT,     -2,  "malformed or corrupt input")                     \
    X(UNSUPPORTED,-3,  "unsupported feature")                            \
    X(NOT_FOUND,  -4,  "not found")                                      \
    X(SHAPE,      -20, "shape mismatch")                                 \
    X(NUMERIC,    -30, "numerical failure")                              \
    X(NOMEM,      -40, "out of memory")                                  \
    X(ARG,        -50, "invalid argument")                               \
    X(BACKEND,    -60, "backend failure")

typedef enum llmsq_status {
#define LLMSQ_STATUS_ENUM_(name, value, msg) LLMSQ_STATUS_##name = value,
    LLMSQ_STATUS_MAP(LLMSQ_STATUS_ENUM_)
#undef LLMSQ_STATUS_ENUM_
} llmsq_status;

#define LLMSQ_OK LLMSQ_STATUS_OK

/* Static description of a status code ("malformed or corrupt input"). Never NULL. */
LLMSQ_API const char *llmsq_status_str(llmsq_status s);

/* Records a formatted message in the thread's error context and returns `s`, so
 * that readers can write `return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: ...", path)`. */
LLMSQ_API llmsq_status llmsq_error(llmsq_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
LLMSQ_API llmsq_status llmsq_errorv(llmsq_status s, const char *fmt, va_list ap);

/* Prefixes the current message with "<prefix>: " (adds context on the way up)
 * and returns `s`. */
LLMSQ_API llmsq_status llmsq_error_prefix(llmsq_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread ("" when none). */
LLMSQ_API const char *llmsq_last_error(void);
LLMSQ_API void llmsq_clear_error(void);

/* Misuse handler: prints "llmsq: file:line: assertion failed: cond" and aborts.
 * Active in every build type. */
LLMSQ_API void llmsq_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define LLMSQ_ASSERT(cond)                                                     \
    do {                                                                       \
        if (!(cond)) llmsq_abort(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

/* Forward a non-OK status to the caller. */
#define LLMSQ_TRY(expr)                                                        \
    do {                                                                       \
        llmsq_status llmsq_try_s_ = (expr);                                    \
        if (llmsq_try_s_ != LLMSQ_OK) return llmsq_try_s_;                     \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_STATUS_H */
