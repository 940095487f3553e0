/* The CUDA backend API in a build without CUDA: nothing is compiled in, so callers see no
 * devices and fall back to the CPU. */
#include "llmsq/backend.h"

bool llmsq_cuda_compiled(void) { return false; }

int llmsq_cuda_device_count(void) { return 0; }

llmsq_status llmsq_cuda_device_info(int index, llmsq_device_info *info)
{
    LLMSQ_ASSERT(info != NULL);
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                       "cuda device %d: this build has no CUDA backend (rebuild with -DLLMSQ_CUDA=ON)",
                       index);
}

llmsq_status llmsq_cuda_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                                 float *c)
{
    (void)m, (void)n, (void)k, (void)a, (void)b, (void)c;
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                       "cuda sgemm: this build has no CUDA backend (rebuild with -DLLMSQ_CUDA=ON)");
}
