/* Status strings and the per-thread error context. */
#include "llmsq/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_last_error[2048];

const char *llmsq_status_str(llmsq_status s)
{
    switch (s) {
#define LLMSQ_STATUS_CASE_(name, value, msg) case LLMSQ_STATUS_##name: return msg;
        LLMSQ_STATUS_MAP(LLMSQ_STATUS_CASE_)
#undef LLMSQ_STATUS_CASE_
    }
    return "unknown status";
}

llmsq_status llmsq_errorv(llmsq_status s, const char *fmt, va_list ap)
{
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    return s;
}

llmsq_status llmsq_error(llmsq_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    llmsq_errorv(s, fmt, ap);
    va_end(ap);
    return s;
}

llmsq_status llmsq_error_prefix(llmsq_status s, const char *fmt, ...)
{
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the current message right to make room for "<prefix>: ". */
    size_t plen = strlen(prefix), mlen = strlen(g_last_error);
    if (mlen == 0) {
        const char *d = llmsq_status_str(s);
        mlen = strlen(d) < sizeof g_last_error - 1 ? strlen(d) : sizeof g_last_error - 1;
        memcpy(g_last_error, d, mlen);
        g_last_error[mlen] = '\0';
    }
    if (plen + 2 >= sizeof g_last_error) plen = sizeof g_last_error - 3;
    if (plen + 2 + mlen >= sizeof g_last_error) mlen = sizeof g_last_error - 3 - plen;
    memmove(g_last_error + plen + 2, g_last_error, mlen);
    memcpy(g_last_error, prefix, plen);
    memcpy(g_last_error + plen, ": ", 2);
    g_last_error[plen + 2 + mlen] = '\0';
    return s;
}

const char *llmsq_last_error(void) { return g_last_error; }

void llmsq_clear_error(void) { g_last_error[0] = '\0'; }

void llmsq_abort(const char *file, int line, const char *fmt, ...)
{
    fflush(stdout);
    fprintf(stderr, "llmsq: %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
