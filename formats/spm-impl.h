/* Internals of the SentencePiece tokenizer shared by spm.c, spm_proto.c and spm_llama2c.c.
 * The piece table (piece, len, score, type, htab) is also the vocabulary of the Hugging
 * Face BPE tokenizers (tok_impl.h), which hang their pipeline off `hf`. */
#ifndef LLMSQ_SPM_IMPL_H
#define LLMSQ_SPM_IMPL_H

#include "llmsq/tokenizer.h"

#include <stdint.h>

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space. */
#define SPM_SPACE "\xE2\x96\x81"
#define SPM_SPACE_LEN 3
#define SPM_UNK_SURFACE " \xE2\x81\x87 "

struct llmsq_tokenizer {
    int64_t            n;
    char             **piece; /* NUL-terminated, all in `arena` */
    uint32_t          *len;
    float             *score;
    int32_t           *type;
    char              *arena;
    llmsq_spm_options  opt;
    char              *unk_surface;

    int32_t  unk;            /* id emitted for out-of-vocabulary symbols, -1 if none */
    int32_t  byte_piece[256];
    uint32_t max_user_len;   /* longest USER_DEFINED piece in bytes, 0 if none */
    uint64_t user_first[4];  /* first bytes of USER_DEFINED pieces */
    bool     has_unused;
    uint64_t pair_bits[1024]; /* byte pairs (a << 8 | b) found inside some mergeable piece */

    uint32_t *htab; /* open addressing: id + 1, 0 = empty */
    uint32_t  hmask;

    struct tok_hf *hf; /* NULL for SentencePiece; the BPE pipeline otherwise (tok_impl.h) */
};

/* FNV-1a over s[0..n): the hash of htab. */
uint32_t spm_hash(const char *s, size_t n);

/* Builds a tokenizer. lens may be NULL (strlen); types may be NULL (NORMAL, BYTE for
 * <0xXX>); unk_surface may be NULL (the default " \xE2\x81\x87 "). */
llmsq_status spm_build(int64_t n, const char *const *pieces, const uint32_t *lens,
                       const float *scores, const int32_t *types,
                       const llmsq_spm_options *opt, const char *unk_surface,
                       const char *source, llmsq_tokenizer **out);

/* Parses a SentencePiece ModelProto held in memory (spm_proto.c); source names it in messages. */
llmsq_status spm_load_buf(const char *data, size_t size, const char *source, llmsq_tokenizer **out);

/* Id of piece s[0..n), or -1. */
int32_t spm_lookup(const llmsq_tokenizer *t, const char *s, size_t n);

/* "<0xXX>" (upper-case hex, as sentencepiece's ByteToPiece) -> 0..255, else -1. */
int spm_piece_to_byte(const char *s, size_t n);

#endif /* LLMSQ_SPM_IMPL_H */
