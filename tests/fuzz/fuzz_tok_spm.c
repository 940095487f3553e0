/* libFuzzer target: SentencePiece ModelProto (.model) read from memory. */
#include "formats/spm-impl.h"
#include "llmsq/llmsq.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llmsq_tokenizer *t;
    if (spm_load_buf((const char *)data, size, "fuzz.model", &t) == LLMSQ_OK) {
        static const char sample[] = " Hello  world!\n\t123 caf\xC3\xA9 \xE2\x96\x81x \xF0\x9F\xA6\x99\xFF";
        int32_t *ids;
        size_t n;
        if (llmsq_tokenizer_encode(t, sample, sizeof sample - 1, true, &ids, &n) == LLMSQ_OK) {
            char *back;
            if (llmsq_tokenizer_decode(t, ids, n, &back, NULL) == LLMSQ_OK) free(back);
            free(ids);
        }
        llmsq_tokenizer_free(t);
    }
    llmsq_clear_error();
    return 0;
}
