/*
 * Tokenizers. This module holds the SentencePiece family (BPE with byte fallback) that
 * Llama-2-style models use, loaded from a SentencePiece `.model` (protobuf), from a GGUF
 * `tokenizer.ggml.*` vocabulary, or from a llama2.c `tokenizer.bin`. Encoding and
 * decoding follow the sentencepiece library exactly (normalization of whitespace, dummy
 * prefix, highest-score-first merges with leftmost tie-break, byte fallback).
 *
 * A tokenizer is immutable after loading and safe to use from several threads.
 */
#ifndef LLMSQ_TOKENIZER_H
#define LLMSQ_TOKENIZER_H

#include "llmsq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmsq_tokenizer llmsq_tokenizer;

/* Piece types, numbered as in sentencepiece's ModelProto.SentencePiece.Type
 * (and GGUF tokenizer.ggml.token_type). */
typedef enum llmsq_token_type {
    LLMSQ_TOKEN_NORMAL       = 1,
    LLMSQ_TOKEN_UNKNOWN      = 2,
    LLMSQ_TOKEN_CONTROL      = 3,
    LLMSQ_TOKEN_USER_DEFINED = 4,
    LLMSQ_TOKEN_UNUSED       = 5,
    LLMSQ_TOKEN_BYTE         = 6
} llmsq_token_type;

/* The normalizer and trainer settings that change encoding. */
typedef struct llmsq_spm_options {
    bool    add_dummy_prefix;         /* prepend U+2581 to the text (default true) */
    bool    remove_extra_whitespaces; /* strip leading/trailing spaces, collapse runs (default true) */
    bool    escape_whitespaces;       /* spaces become U+2581 (default true) */
    bool    byte_fallback;            /* unknown characters become <0xXX> pieces */
    int32_t unk_id, bos_id, eos_id, pad_id; /* -1 when absent */
} llmsq_spm_options;

LLMSQ_API llmsq_spm_options llmsq_spm_default_options(void);

/* Loads a SentencePiece ModelProto file. Errors: IO, FORMAT (truncated or malformed
 * protobuf, message names the file and byte offset), UNSUPPORTED (a unigram model, or a
 * normalizer with a precompiled charsmap, until the tokenizer issue lands). */
LLMSQ_API llmsq_status llmsq_tokenizer_load_spm(const char *path, llmsq_tokenizer **out);

/* Loads a llama2.c tokenizer.bin holding `vocab_size` entries (the count is not stored in
 * the file). Pieces are restored to SentencePiece spelling (space -> U+2581, "\n<s>\n" ->
 * "<s>") and typed as FORMATS.md section 6.3 says. */
LLMSQ_API llmsq_status llmsq_tokenizer_load_llama2c(const char *path, int64_t vocab_size,
                                                    llmsq_tokenizer **out);

/* Builds a SentencePiece-BPE tokenizer from a vocabulary (e.g. GGUF tokenizer.ggml.*).
 * pieces[i] is NUL-terminated UTF-8; scores and types have n entries (types may be NULL:
 * all NORMAL except <0xXX> pieces, which become BYTE). `source` names the origin in
 * messages. Errors: FORMAT (duplicate or empty piece, bad ids). */
LLMSQ_API llmsq_status llmsq_tokenizer_from_vocab(int64_t n, const char *const *pieces,
                                                  const float *scores, const int32_t *types,
                                                  const llmsq_spm_options *opt,
                                                  const char *source, llmsq_tokenizer **out);

LLMSQ_API void llmsq_tokenizer_free(llmsq_tokenizer *t);

LLMSQ_API int64_t     llmsq_tokenizer_vocab_size(const llmsq_tokenizer *t);
LLMSQ_API int32_t     llmsq_tokenizer_bos(const llmsq_tokenizer *t); /* -1 when none */
LLMSQ_API int32_t     llmsq_tokenizer_eos(const llmsq_tokenizer *t); /* -1 when none */
LLMSQ_API const char *llmsq_tokenizer_piece(const llmsq_tokenizer *t, int32_t id); /* NULL if out of range */
LLMSQ_API float       llmsq_tokenizer_score(const llmsq_tokenizer *t, int32_t id);
LLMSQ_API llmsq_token_type llmsq_tokenizer_type(const llmsq_tokenizer *t, int32_t id);
LLMSQ_API const llmsq_spm_options *llmsq_tokenizer_options(const llmsq_tokenizer *t);

/* Encodes text[0..len) (UTF-8; invalid bytes go through byte fallback). With add_bos a
 * BOS id is prepended (when the tokenizer has one). *ids is malloc'd; the caller frees.
 * Runs in O(n log n) so whole evaluation corpora can be encoded as one string. */
LLMSQ_API llmsq_status llmsq_tokenizer_encode(const llmsq_tokenizer *t, const char *text,
                                              size_t len, bool add_bos,
                                              int32_t **ids, size_t *n_ids);

/* Decodes ids as sentencepiece's DecodeIds does: control and unknown-type pieces are
 * dropped (unk decodes as " \xE2\x81\x87 "), byte pieces become raw bytes, U+2581 becomes
 * a space, and the dummy-prefix space at the start of the text is removed.
 * *text is malloc'd and NUL-terminated; *len excludes the NUL (may be NULL). */
LLMSQ_API llmsq_status llmsq_tokenizer_decode(const llmsq_tokenizer *t, const int32_t *ids,
                                              size_t n, char **text, size_t *len);

/* Writes a SentencePiece ModelProto (BPE) with the given pieces and options, atomically
 * (temporary name, then rename). Used by `llmsq synth` and by writers that copy tokenizers. */
LLMSQ_API llmsq_status llmsq_spm_write(const char *path, int64_t n, const char *const *pieces,
                                       const float *scores, const int32_t *types,
                                       const llmsq_spm_options *opt);

#ifdef __cplusplus
}
#endif

#endif /* LLMSQ_TOKENIZER_H */
