/* Progress bar on stderr (TTY only), logging, timing and memory figures. */
#include "llmsq/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static bool g_quiet = false;

void llmsq_set_quiet(bool quiet) { g_quiet = quiet; }
bool llmsq_is_quiet(void) { return g_quiet; }

void llmsq_log(const char *fmt, ...)
{
    if (g_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("llmsq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void llmsq_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("llmsq: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double llmsq_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t llmsq_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

struct llmsq_progress {
    char    label[64];
    int64_t total;
    double  start, last_draw;
    bool    drawn;
};

llmsq_progress *llmsq_progress_begin(const char *label, int64_t total)
{
    if (g_quiet || !isatty(STDERR_FILENO)) return NULL;
    llmsq_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->start = llmsq_time_now();
    return p;
}

static void draw(llmsq_progress *p, int64_t done, double now)
{
    double frac = (double)done / (double)p->total;
    if (frac > 1) frac = 1;
    int width = 30, filled = (int)(frac * width);
    char bar[31];
    memset(bar, '=', (size_t)filled);
    memset(bar + filled, ' ', (size_t)(width - filled));
    bar[width] = '\0';
    double el = now - p->start;
    double eta = frac > 0 ? el / frac - el : 0;
    fprintf(stderr, "\r%s [%s] %lld/%lld %5.1fs eta %5.1fs", p->label, bar, (long long)done,
            (long long)p->total, el, eta);
    fflush(stderr);
    p->last_draw = now;
    p->drawn = true;
}

void llmsq_progress_update(llmsq_progress *p, int64_t done)
{
    if (!p) return;
    double now = llmsq_time_now();
    if (now - p->last_draw < 0.1 && done < p->total) return;
    draw(p, done, now);
}

void llmsq_progress_end(llmsq_progress *p)
{
    if (!p) return;
    if (p->drawn) fputs("\r\033[K", stderr);
    free(p);
}
