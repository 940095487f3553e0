/* libFuzzer target: Hugging Face tokenizer.json. A file that loads must also encode and
 * decode without trouble, so the pipeline it describes is exercised too. */
#include "llmsq/llmsq.h"

#include <stdlib.h>
#include <string.h>

static void exercise(const llmsq_tokenizer *t, const char *text, size_t len)
{
    int32_t *ids;
    size_t n;
    if (llmsq_tokenizer_encode_special(t, text, len, &ids, &n) != LLMSQ_OK) return;
    char *back;
    if (llmsq_tokenizer_decode(t, ids, n, &back, NULL) == LLMSQ_OK) free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llmsq_tokenizer *t;
    if (llmsq_tokenizer_from_hf_json((const char *)data, size, "fuzz.json", &t) == LLMSQ_OK) {
        static const char sample[] = " Hello  world!\n\t<s> 123 caf\xC3\xA9 \xE2\x96\x81x \xF0\x9F\xA6\x99 <|endoftext|>\xFF";
        exercise(t, sample, sizeof sample - 1);
        exercise(t, (const char *)data, size < 256 ? size : 256);
        llmsq_tokenizer_free(t);
    }
    llmsq_clear_error();
    return 0;
}
