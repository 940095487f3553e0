// CUDA backend entry points (include/llmsq/backend.h). Every CUDA or cuBLAS failure
// becomes LLMSQ_STATUS_BACKEND with the runtime's own message: the evaluator must be able to
// report it and fall back to the CPU, never abort. A build with this file still runs on
// machines without a GPU or driver: the device count is then 0.
#include "llmsq/backend.h"

#include <climits>
#include <cstring>

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace {

llmsq_status cuda_fail(cudaError_t e, const char *what)
{
    (void)cudaGetLastError(); // clear a non-sticky error so later calls start clean
    return llmsq_error(LLMSQ_STATUS_BACKEND, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                       cudaGetErrorName(e));
}

llmsq_status cublas_fail(cublasStatus_t st, const char *what)
{
    return llmsq_error(LLMSQ_STATUS_BACKEND, "cublas: %s: %s (%s)", what,
                       cublasGetStatusString(st), cublasGetStatusName(st));
}

} // namespace

#define CUDA_CHECK(expr, what)                                 \
    do {                                                       \
        cudaError_t e_ = (expr);                               \
        if (e_ != cudaSuccess) {                               \
            s = cuda_fail(e_, what);                           \
            goto out;                                          \
        }                                                      \
    } while (0)

#define CUBLAS_CHECK(expr, what)                               \
    do {                                                       \
        cublasStatus_t st_ = (expr);                           \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                    \
            s = cublas_fail(st_, what);                        \
            goto out;                                          \
        }                                                      \
    } while (0)

extern "C" bool llmsq_cuda_compiled(void) { return true; }

extern "C" int llmsq_cuda_device_count(void)
{
    int n = 0;
    // No driver, no device or a driver older than the runtime all mean "use the CPU".
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0 ? n : 0;
}

extern "C" llmsq_status llmsq_cuda_device_info(int index, llmsq_device_info *info)
{
    LLMSQ_ASSERT(info != NULL);
    const int count = llmsq_cuda_device_count();
    if (index < 0 || index >= count)
        return llmsq_error(LLMSQ_STATUS_ARG, "cuda device %d does not exist (%d found)", index, count);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) return cuda_fail(e, "cudaGetDeviceProperties");
    std::memset(info, 0, sizeof *info);
    info->kind = LLMSQ_DEVICE_CUDA;
    info->index = index;
    /* device names are short; a longer one is cut to fit (memset above left the NUL) */
    size_t n = strnlen(p.name, sizeof p.name);
    std::memcpy(info->name, p.name, n < sizeof info->name ? n : sizeof info->name - 1);
    info->memory_bytes = p.totalGlobalMem;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    return LLMSQ_OK;
}

extern "C" llmsq_status llmsq_cuda_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *a,
                                            const float *b, float *c)
{
    llmsq_status s = LLMSQ_OK;
    float *da = nullptr, *db = nullptr, *dc = nullptr;
    cublasHandle_t h = nullptr;
    size_t bytes_a = 0, bytes_b = 0, bytes_c = 0;
    const float one = 1.0f, zero = 0.0f;

    if (m < 0 || n < 0 || k < 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "cuda sgemm: sizes m=%lld n=%lld k=%lld out of range",
                           (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return LLMSQ_OK;
    LLMSQ_ASSERT(c != NULL);
    if (k == 0) { // an empty sum; cuBLAS need not be asked
        std::memset(c, 0, (size_t)m * (size_t)n * sizeof *c);
        return LLMSQ_OK;
    }
    LLMSQ_ASSERT(a != NULL && b != NULL);
    if (llmsq_cuda_device_count() == 0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "cuda sgemm: no CUDA device available");

    bytes_a = (size_t)m * (size_t)k * sizeof(float);
    bytes_b = (size_t)n * (size_t)k * sizeof(float);
    bytes_c = (size_t)m * (size_t)n * sizeof(float);
    CUDA_CHECK(cudaMalloc(&da, bytes_a), "cudaMalloc A");
    CUDA_CHECK(cudaMalloc(&db, bytes_b), "cudaMalloc B");
    CUDA_CHECK(cudaMalloc(&dc, bytes_c), "cudaMalloc C");
    CUDA_CHECK(cudaMemcpy(da, a, bytes_a, cudaMemcpyHostToDevice), "copy A to device");
    CUDA_CHECK(cudaMemcpy(db, b, bytes_b, cudaMemcpyHostToDevice), "copy B to device");
    CUBLAS_CHECK(cublasCreate(&h), "cublasCreate");
    // Plain FP32: TF32 would change results beyond the CPU reference's tolerance.
    CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    // cuBLAS is column-major: the row-major C[m,n] is column-major C^T[n,m] = B[n,k] A^T[k,m],
    // and row-major A[m,k], B[n,k] are column-major A^T[k,m], B^T[k,n] with leading dim k.
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, db, (int)k,
                             da, (int)k, &zero, dc, (int)n),
                 "cublasSgemm");
    CUDA_CHECK(cudaMemcpy(c, dc, bytes_c, cudaMemcpyDeviceToHost), "copy C to host");

out:
    if (h) cublasDestroy(h);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    return s;
}
