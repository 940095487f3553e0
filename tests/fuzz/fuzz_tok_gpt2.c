/* libFuzzer target: GPT-2's vocab.json + merges.txt. The input holds both, vocab.json
 * first, separated by the line "#MERGES" (without it, merges.txt is empty). */
#define _GNU_SOURCE /* memmem */
#include "llmsq/llmsq.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n#MERGES\n";
    const char *d = (const char *)data, *m = size ? memmem(d, size, sep, sizeof sep - 1) : NULL;
    size_t vn = m ? (size_t)(m - d) : size;
    const char *merges = m ? m + sizeof sep - 1 : "";
    size_t mn = m ? size - vn - (sizeof sep - 1) : 0;
    llmsq_tokenizer *t;
    if (llmsq_tokenizer_from_gpt2(d, vn, merges, mn, "fuzz vocab.json + merges.txt", &t) == LLMSQ_OK) {
        static const char sample[] = " Hello  world!\n\t123 caf\xC3\xA9 \xF0\x9F\xA6\x99 <|endoftext|>\xFF";
        int32_t *ids;
        size_t n;
        if (llmsq_tokenizer_encode(t, sample, sizeof sample - 1, false, &ids, &n) == LLMSQ_OK) {
            char *back;
            if (llmsq_tokenizer_decode(t, ids, n, &back, NULL) == LLMSQ_OK) free(back);
            free(ids);
        }
        llmsq_tokenizer_free(t);
    }
    llmsq_clear_error();
    return 0;
}
