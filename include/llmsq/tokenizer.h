/*
 * Tokenizers. Two kinds sit behind one llmsq_tokenizer handle and one API:
 *
 *  - SentencePiece (LLMSQ_TOKENIZER_SPM), BPE as Llama-2-style models use, and unigram
 *    (Viterbi), loaded from a SentencePiece `.model` (protobuf, with its precompiled
 *    normalization charsmap and denormalizer), a GGUF `tokenizer.ggml.model = "llama"`
 *    vocabulary, or a llama2.c `tokenizer.bin`. Encoding and decoding follow the
 *    sentencepiece library (0.2.3) exactly (charsmap, whitespace normalization, dummy prefix,
 *    highest-score-first merges with leftmost tie-break or the unigram lattice, byte
 *    fallback).
 *  - Hugging Face `tokenizers` BPE (LLMSQ_TOKENIZER_BPE), loaded from a tokenizer.json,
 *    GPT-2's vocab.json + merges.txt, or a GGUF `tokenizer.ggml.model = "gpt2"` vocabulary.
 *    Encoding follows tokenizers exactly: added/special tokens cut out first (never
 *    split), normalizers (NFC/NFKC/..., Replace, Prepend, Lowercase, Strip), pre-tokenizers
 *    (ByteLevel, Split with Oniguruma-compatible regexes through PCRE2, Metaspace, Digits,
 *    ...), merge ranks, byte fallback; decoding runs the decoder chain with special tokens
 *    skipped. Text that is not valid UTF-8 is first repaired with U+FFFD (tokenizers only
 *    accepts valid strings).
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

/* Which pipeline a tokenizer runs. */
typedef enum llmsq_tokenizer_kind {
    LLMSQ_TOKENIZER_SPM = 1, /* SentencePiece (BPE or unigram) */
    LLMSQ_TOKENIZER_BPE = 2  /* Hugging Face tokenizers BPE (byte-level or SentencePiece-style) */
} llmsq_tokenizer_kind;

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

/* Loads a SentencePiece ModelProto file (BPE or unigram). Errors: IO, FORMAT (truncated or
 * malformed protobuf or charsmap, the message names the file and byte offset; a unigram model
 * without an unknown piece), UNSUPPORTED (word and char models). */
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

/* Loads whatever tokenizer `path` is or holds: a tokenizer.json, a SentencePiece .model, a
 * GGUF file, GPT-2's vocab.json (with merges.txt beside it), or a directory holding
 * tokenizer.json (preferred, as transformers does; BOS/EOS then come from
 * tokenizer_config.json when present), tokenizer.model, vocab.json + merges.txt, or exactly
 * one .gguf file. Errors: NOT_FOUND (nothing there, or several GGUF files to choose
 * from), IO, FORMAT, UNSUPPORTED, NOMEM. */
LLMSQ_API llmsq_status llmsq_tokenizer_load(const char *path, llmsq_tokenizer **out);

/* Loads a Hugging Face tokenizer.json (file, or `size` bytes in memory; `source` names it
 * in messages). Only BPE models load; each normalizer, pre-tokenizer, post-processor and
 * decoder type either is implemented exactly or is an UNSUPPORTED error naming it. Errors:
 * IO, FORMAT (invalid JSON, no model, merges naming tokens that are not in the vocabulary,
 * regexes that do not compile, ...), UNSUPPORTED, NOMEM. */
LLMSQ_API llmsq_status llmsq_tokenizer_load_hf_json(const char *path, llmsq_tokenizer **out);
LLMSQ_API llmsq_status llmsq_tokenizer_from_hf_json(const char *data, size_t size, const char *source,
                                                    llmsq_tokenizer **out);

/* Loads GPT-2's vocab.json + merges.txt (files, or buffers) as transformers'
 * GPT2TokenizerFast: byte-level BPE, <|endoftext|> special and both BOS and EOS. Errors:
 * IO, FORMAT (bad JSON, a merge line that is not "left right", a merge naming unknown
 * tokens), NOMEM. */
LLMSQ_API llmsq_status llmsq_tokenizer_load_gpt2(const char *vocab_json, const char *merges_txt,
                                                 llmsq_tokenizer **out);
LLMSQ_API llmsq_status llmsq_tokenizer_from_gpt2(const char *vocab, size_t vocab_size, const char *merges,
                                                 size_t merges_size, const char *source,
                                                 llmsq_tokenizer **out);

/* Loads only the tokenizer of a GGUF file (tokenizer.ggml.model "llama" or "gpt2"), or of
 * a GGUF image in memory. Errors: IO, FORMAT, UNSUPPORTED (another tokenizer model or
 * tokenizer.ggml.pre), NOT_FOUND (the file has no tokenizer), NOMEM. */
LLMSQ_API llmsq_status llmsq_tokenizer_load_gguf(const char *path, llmsq_tokenizer **out);
LLMSQ_API llmsq_status llmsq_tokenizer_from_gguf(const uint8_t *data, size_t size, const char *source,
                                                 llmsq_tokenizer **out);

/* A byte-level BPE vocabulary as GGUF stores it (tokenizer.ggml.model = "gpt2"). */
typedef struct llmsq_bpe_vocab {
    int64_t            n;          /* tokens */
    const char *const *pieces;     /* [n] token strings (byte-level spelling) */
    const uint32_t    *piece_lens; /* [n] or NULL (NUL-terminated) */
    const int32_t     *types;      /* [n] llmsq_token_type or NULL (all NORMAL); CONTROL
                                    * tokens are special, USER_DEFINED ones added tokens */
    int64_t            n_merges;
    const char *const *merges;     /* [n_merges] "left right", highest priority first */
    const uint32_t    *merge_lens; /* [n_merges] or NULL */
    const char        *pre;        /* tokenizer.ggml.pre: "gpt-2", "llama-bpe", "qwen2" or
                                    * "default" (llama.cpp's default regexes) */
    int32_t            bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool               add_bos, add_eos; /* what llmsq_tokenizer_encode_special adds */
} llmsq_bpe_vocab;

/* Zero vocabulary, pre "default", ids -1, add_bos/add_eos false. */
LLMSQ_API llmsq_bpe_vocab llmsq_bpe_vocab_default(void);

/* Builds a byte-level BPE tokenizer from v (copied). Errors: FORMAT (duplicate or empty
 * tokens, bad types, a merge that is not "left right" or names unknown tokens),
 * UNSUPPORTED (unknown pre), NOMEM. */
LLMSQ_API llmsq_status llmsq_tokenizer_from_bpe_vocab(const llmsq_bpe_vocab *v, const char *source,
                                                      llmsq_tokenizer **out);

LLMSQ_API void llmsq_tokenizer_free(llmsq_tokenizer *t);

LLMSQ_API llmsq_tokenizer_kind llmsq_tokenizer_get_kind(const llmsq_tokenizer *t);
/* Id of the token spelled piece[0..len) (byte-level spelling for GPT-2-style BPE), or -1. */
LLMSQ_API int32_t llmsq_tokenizer_find(const llmsq_tokenizer *t, const char *piece, size_t len);

LLMSQ_API int64_t     llmsq_tokenizer_vocab_size(const llmsq_tokenizer *t);
/* BOS and EOS: SentencePiece's ids; for tokenizer.json the ids its post-processor puts
 * before and after the text, overridden by tokenizer_config.json; GPT-2's <|endoftext|>;
 * GGUF's tokenizer.ggml.bos/eos_token_id. */
LLMSQ_API int32_t     llmsq_tokenizer_bos(const llmsq_tokenizer *t); /* -1 when none */
LLMSQ_API int32_t     llmsq_tokenizer_eos(const llmsq_tokenizer *t); /* -1 when none */
LLMSQ_API const char *llmsq_tokenizer_piece(const llmsq_tokenizer *t, int32_t id); /* NULL if out of range */
LLMSQ_API float       llmsq_tokenizer_score(const llmsq_tokenizer *t, int32_t id);
LLMSQ_API llmsq_token_type llmsq_tokenizer_type(const llmsq_tokenizer *t, int32_t id);
/* The SentencePiece options; for BPE tokenizers all flags are false and only the ids and
 * byte_fallback carry meaning. */
LLMSQ_API const llmsq_spm_options *llmsq_tokenizer_options(const llmsq_tokenizer *t);

/* Encodes text[0..len) (UTF-8; for SentencePiece invalid bytes go through byte fallback).
 * Special tokens written in the text (e.g. "<|endoftext|>") are matched as such by BPE
 * tokenizers, as tokenizers does. With add_bos a BOS id is prepended (when the tokenizer
 * has one). *ids is malloc'd; the caller frees. Runs in O(n log n) so whole evaluation
 * corpora can be encoded as one string. Errors: ARG (text over 512 MiB), NOMEM, FORMAT (a
 * regex engine limit hit on pathological input). */
LLMSQ_API llmsq_status llmsq_tokenizer_encode(const llmsq_tokenizer *t, const char *text,
                                              size_t len, bool add_bos,
                                              int32_t **ids, size_t *n_ids);

/* Encodes with the special tokens the model's own tokenizer adds by default
 * (transformers' add_special_tokens=True): the tokenizer.json post-processor's template
 * (e.g. Llama-3's <|begin_of_text|>, nothing for GPT-2), GGUF's add_bos/add_eos, BOS for
 * SentencePiece. */
LLMSQ_API llmsq_status llmsq_tokenizer_encode_special(const llmsq_tokenizer *t, const char *text,
                                                      size_t len, int32_t **ids, size_t *n_ids);

/* Decodes ids. SentencePiece: as DecodeIds does: control and unknown-type pieces are
 * dropped (unk decodes as " \xE2\x81\x87 "), byte pieces become raw bytes, U+2581 becomes
 * a space, and the dummy-prefix space at the start of the text is removed. BPE: as
 * tokenizers' decode(ids, skip_special_tokens=true): the decoder chain over the pieces,
 * ill-formed UTF-8 replaced by U+FFFD.
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
