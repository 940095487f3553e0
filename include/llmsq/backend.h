/*
 * Compute backends. The CPU (OpenBLAS) backend is always present; the CUDA backend is
 * compiled when the build finds nvcc (-DLLMSQ_CUDA=AUTO|ON) and used only when a GPU is
 * found at run time, so a CUDA build runs on CPU-only machines. The kernels behind this
 * table land with the GPU evaluator issue; this header is the boundary they plug into.
 */
#ifndef LLMSQ_BACKEND_H
#define LLMSQ_BACKEND_H

#include "llmsq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmsq_device_kind {
    LLMSQ_DEVICE_CPU = 0,
    LLMSQ_DEVICE_CUDA
} llmsq_device_kind;

typedef struct llmsq_device_info {
    llmsq_device_kind kind;
    int    index;
    char   name[128];
    size_t memory_bytes;
    int    cc_major, cc_minor;  /* CUDA compute capability */
} llmsq_device_info;

/* True when this build contains the CUDA backend. */
LLMSQ_API bool llmsq_cuda_compiled(void);

/* Number of usable CUDA devices: 0 when not compiled, no driver or no GPU (never an
 * error: the caller falls back to the CPU). */
LLMSQ_API int llmsq_cuda_device_count(void);

/* Describes CUDA device `index`. Errors: UNSUPPORTED (not compiled), ARG (bad index),
 * BACKEND (driver error, message from the CUDA runtime). */
LLMSQ_API llmsq_status llmsq_cuda_device_info(int index, llmsq_device_info *info);

/* Runs a cuBLAS SGEMM C[m,n] = A[m,k] * B[n,k]^T on the device (row-major, as a linear
 * layer y = x W^T) through host buffers: the smoke test that the CUDA path and cuBLAS are
 * linked and working. Errors: UNSUPPORTED, BACKEND. */
LLMSQ_API llmsq_status llmsq_cuda_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a,
                                           const float *b, float *c);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_BACKEND_H */
