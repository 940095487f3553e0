/*
 * Q/K row permutation between the interleaved RoPE layout (Meta, llama2.c, GGUF `llama`:
 * a head's element 2i pairs with 2i+1) and Hugging Face rotate-half (element i pairs
 * with i + hd/2). FORMATS.md 5.5.
 */
#include <stdlib.h>
#include <string.h>

#include "llmsq/formats.h"

llmsq_status llmsq_permute_qk_rows(void *data, int64_t n_heads, int64_t head_dim, size_t row_bytes,
                                   bool to_hf)
{
    LLMSQ_ASSERT(n_heads >= 0 && head_dim > 0 && head_dim % 2 == 0 && row_bytes > 0);
    LLMSQ_ASSERT(data || n_heads == 0);
    if (n_heads == 0) return LLMSQ_OK;
    size_t head_bytes;
    LLMSQ_ASSERT(!__builtin_mul_overflow((size_t)head_dim, row_bytes, &head_bytes));
    /* One head at a time keeps the scratch small whatever the matrix size. */
    unsigned char *tmp = malloc(head_bytes);
    if (!tmp)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "permuting q/k rows: cannot allocate %zu bytes", head_bytes);
    const int64_t half = head_dim / 2;
    unsigned char *base = data;
    for (int64_t h = 0; h < n_heads; h++, base += head_bytes) {
        for (int64_t i = 0; i < half; i++) {
            for (int64_t j = 0; j < 2; j++) {
                size_t il = (size_t)(2 * i + j), hf = (size_t)(j * half + i);
                if (to_hf) memcpy(tmp + hf * row_bytes, base + il * row_bytes, row_bytes);
                else       memcpy(tmp + il * row_bytes, base + hf * row_bytes, row_bytes);
            }
        }
        memcpy(base, tmp, head_bytes);
    }
    free(tmp);
    return LLMSQ_OK;
}
