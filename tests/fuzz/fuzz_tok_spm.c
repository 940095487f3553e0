/* libFuzzer target: SentencePiece ModelProto (.model, BPE or unigram, with or without a
 * precompiled charsmap) read from memory. Seeds: tests/data/spm_*.model; dictionary:
 * tests/fuzz/spm_model.dict. */
#include "formats/spm-impl.h"
#include "llmsq/llmsq.h"

#include <stdlib.h>

static void encode_decode(llmsq_tokenizer *t, const char *text, size_t n)
{
    int32_t *ids;
    size_t k;
    if (llmsq_tokenizer_encode(t, text, n, true, &ids, &k) == LLMSQ_OK) {
        char *back;
        if (llmsq_tokenizer_decode(t, ids, k, &back, NULL) == LLMSQ_OK) free(back);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llmsq_tokenizer *t;
    if (spm_load_buf((const char *)data, size, "fuzz.model", &t) == LLMSQ_OK) {
        /* Full-width letters, ligatures, circled digits and spaces that charsmaps rewrite. */
        static const char sample[] = " Hello  world!\n\t123 caf\xC3\xA9 \xE2\x96\x81x \xF0\x9F\xA6\x99\xFF"
                                     "\xEF\xBD\x88\xEF\xBD\x85\xE3\x80\x80\xEF\xAC\x81\xE2\x91\xA0\xE2\x84\xA2"
                                     "e\xCC\x81 qqq <sep>\xE3\x8C\x94";
        encode_decode(t, sample, sizeof sample - 1);
        /* The input's own tail as text: bytes the fuzzer steers, through the same trie. */
        size_t tail = size < 64 ? size : 64;
        encode_decode(t, (const char *)data + size - tail, tail);
        llmsq_tokenizer_free(t);
    }
    llmsq_clear_error();
    return 0;
}
