/* Thread count shared by OpenMP regions and OpenBLAS. */
#include "llmsq/runtime.h"

#include <omp.h>
#include <stdlib.h>

/* From OpenBLAS (cblas.h); declared here to keep cblas out of this file's includes. */
void openblas_set_num_threads(int num_threads);

static int g_threads = 0;

void llmsq_threads_set(int n)
{
    if (n <= 0) {
        const char *env = getenv("LLMSQ_THREADS");
        n = env ? atoi(env) : 0;
        if (n <= 0) n = omp_get_num_procs();
    }
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int llmsq_threads_get(void)
{
    if (g_threads <= 0) llmsq_threads_set(0);
    return g_threads;
}
