/*
 * llama2.c tokenizer.bin (FORMATS.md 6.3): uint32 max_token_length, then per piece
 * float32 score, int32 length, bytes. export.py rewrote the SentencePiece pieces (U+2581
 * -> ' ', BOS/EOS -> "\n<s>\n"/"\n</s>\n") and dropped the types and the normalizer; this
 * undoes the rewrite so the tokenizer encodes like the .model it came from.
 */
#include "spm-impl.h"

#include "llmsq/runtime.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

llmsq_status llmsq_tokenizer_load_llama2c(const char *path, int64_t vocab_size, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(path && out);
    *out = NULL;
    if (vocab_size < 3 || vocab_size > (1 << 24))
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: vocab_size %lld is not a llama2.c vocabulary", path,
                           (long long)vocab_size);
    char *data = NULL;
    size_t size = 0;
    LLMSQ_TRY(llmsq_read_file(path, &data, &size));

    /* Each ' ' grows to three bytes of U+2581, so the arena needs at most 3x the file. */
    char **pieces = malloc((size_t)vocab_size * sizeof *pieces);
    float *scores = malloc((size_t)vocab_size * sizeof *scores);
    int32_t *types = malloc((size_t)vocab_size * sizeof *types);
    char *arena = malloc(3 * size + (size_t)vocab_size + 1);
    llmsq_status st = LLMSQ_OK;
    if (!pieces || !scores || !types || !arena)
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);

    const uint8_t *p = (const uint8_t *)data, *end = p + size;
    if (st == LLMSQ_OK && size < 4)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: truncated at byte offset %zu: no max_token_length", path, size);
    uint32_t max_len = st == LLMSQ_OK ? rd_u32(p) : 0;
    p += st == LLMSQ_OK ? 4 : 0;
    char *dst = arena;
    bool all_bytes = true;
    int byte_seen[256] = {0};
    for (int64_t i = 0; i < vocab_size && st == LLMSQ_OK; i++) {
        size_t off = (size_t)(p - (const uint8_t *)data);
        if (end - p < 8) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: truncated at byte offset %zu in piece %lld of %lld",
                             path, off, (long long)i, (long long)vocab_size);
            break;
        }
        uint32_t u = rd_u32(p);
        memcpy(&scores[i], &u, 4);
        int32_t len = (int32_t)rd_u32(p + 4);
        p += 8;
        if (len <= 0 || len > end - p) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld at byte offset %zu has length %d (%zu bytes left)",
                             path, (long long)i, off, (int)len, (size_t)(end - p));
            break;
        }
        if (memchr(p, 0, (size_t)len))
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld at byte offset %zu contains a NUL byte",
                             path, (long long)i, off);
        else if ((uint32_t)len > max_len)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld at byte offset %zu is longer than max_token_length %u",
                             path, (long long)i, off, max_len);
        const char *s = (const char *)p;
        p += len;
        if ((len == 5 && memcmp(s, "\n<s>\n", 5) == 0) || (len == 6 && memcmp(s, "\n</s>\n", 6) == 0)) {
            s++;
            len -= 2;
        }
        pieces[i] = dst;
        for (int32_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(dst, SPM_SPACE, SPM_SPACE_LEN);
                dst += SPM_SPACE_LEN;
            } else {
                *dst++ = s[k];
            }
        }
        *dst++ = 0;
        int b = spm_piece_to_byte(pieces[i], strlen(pieces[i]));
        if (b >= 0) byte_seen[b] = 1;
        /* Llama-2 layout (FORMATS.md 6.3): 0 <unk>, 1 <s>, 2 </s>, then pieces and bytes. */
        types[i] = i == 0 ? LLMSQ_TOKEN_UNKNOWN : i <= 2 ? LLMSQ_TOKEN_CONTROL
                 : b >= 0 ? LLMSQ_TOKEN_BYTE : LLMSQ_TOKEN_NORMAL;
    }
    if (st == LLMSQ_OK && p != end)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %zu bytes left after %lld pieces (wrong vocab_size?)",
                         path, (size_t)(end - p), (long long)vocab_size);
    if (st == LLMSQ_OK) {
        for (int b = 0; b < 256; b++) all_bytes = all_bytes && byte_seen[b];
        /* llama2.c encodes like Llama-2's tokenizer: dummy prefix, whitespace kept as is. */
        llmsq_spm_options o = llmsq_spm_default_options();
        o.remove_extra_whitespaces = false;
        o.byte_fallback = all_bytes;
        o.unk_id = 0;
        o.bos_id = 1;
        o.eos_id = 2;
        o.pad_id = -1;
        st = spm_build(vocab_size, (const char *const *)pieces, NULL, scores, types, &o, NULL, path, out);
    }
    free(pieces);
    free(scores);
    free(types);
    free(arena);
    free(data);
    return st;
}
