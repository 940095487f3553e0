/* libFuzzer target: the tokenizer of a GGUF image (tokenizer.ggml.*, llama and gpt2). */
#include "llmsq/llmsq.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llmsq_tokenizer *t;
    if (llmsq_tokenizer_from_gguf(data, size, "fuzz.gguf", &t) == LLMSQ_OK) {
        static const char sample[] = " Hello  world!\n\t123 caf\xC3\xA9 \xF0\x9F\xA6\x99 <|endoftext|>\xFF";
        int32_t *ids;
        size_t n;
        if (llmsq_tokenizer_encode_special(t, sample, sizeof sample - 1, &ids, &n) == LLMSQ_OK) {
            char *back;
            if (llmsq_tokenizer_decode(t, ids, n, &back, NULL) == LLMSQ_OK) free(back);
            free(ids);
        }
        llmsq_tokenizer_free(t);
    }
    llmsq_clear_error();
    return 0;
}
