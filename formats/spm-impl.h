/* Internals of the SentencePiece tokenizer shared by spm.c, spm_proto.c, spm_llama2c.c,
 * spm_unigram.c and spm_charsmap.c. The piece table (piece, len, score, type, htab) is also the vocabulary of the Hugging
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

    /* SentencePiece only; all NULL for the Hugging Face pipeline. */
    struct spm_unigram  *ug;          /* the unigram model; NULL: BPE */
    struct spm_charsmap *charsmap;    /* normalizer_spec.precompiled_charsmap; NULL: identity */
    struct spm_charsmap *denorm;      /* denormalizer_spec.precompiled_charsmap, run over decoded text */
    llmsq_spm_options    denorm_opt;  /* denormalizer_spec's whitespace flags */
};

/* ModelProto.TrainerSpec.ModelType. */
enum { SPM_MODEL_UNIGRAM = 1, SPM_MODEL_BPE = 2, SPM_MODEL_WORD = 3, SPM_MODEL_CHAR = 4 };

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

/* Writes a ModelProto of the given model type, with an optional normalizer charsmap
 * (charsmap_len 0: identity), after the same checks as a reader. llmsq_spm_write is the
 * BPE, identity case. */
llmsq_status spm_write_model(const char *path, int64_t n, const char *const *pieces, const float *scores,
                             const int32_t *types, const llmsq_spm_options *opt, int model_type,
                             const char *norm_name, const void *charsmap, size_t charsmap_len);

/* ---- normalization (spm.c) ---------------------------------------------------------------- */

/* Normalizer::Normalize over in[0..len) with t's normalizer: user-defined pieces kept whole,
 * the charsmap, whitespace rules. *out is malloc'd (not NUL-terminated). */
llmsq_status spm_normalize_text(const llmsq_tokenizer *t, const char *in, size_t len, char **out, size_t *out_len);

/* ---- precompiled charsmap (spm_charsmap.c) ------------------------------------------------- */

/* Parses normalizer_spec.precompiled_charsmap: uint32 trie size, a Darts-clone double array,
 * NUL-terminated replacement strings. Every trie path the matcher can take is checked up
 * front, so matching needs no bounds checks. `offset` is the blob's byte offset in `source`
 * for messages. Errors: FORMAT, NOMEM. */
llmsq_status spm_charsmap_parse(const uint8_t *blob, size_t size, const char *source, size_t offset,
                                struct spm_charsmap **out);
void spm_charsmap_free(struct spm_charsmap *m);
/* The longest rule prefixing s[0..n): returns the bytes it consumes (0: no rule) and sets
 * *rep to its NUL-terminated replacement. */
size_t spm_charsmap_match(const struct spm_charsmap *m, const char *s, size_t n, const char **rep);

/* ---- unigram (spm_unigram.c) ---------------------------------------------------------------- */

/* Turns a freshly built piece table into a unigram model (t->ug). Errors: FORMAT (no
 * unknown piece), NOMEM. */
llmsq_status spm_unigram_init(llmsq_tokenizer *t, const char *source);
void spm_unigram_free(struct spm_unigram *u);
/* Viterbi over norm[0..n) (normalized text), appending ids to ids[*n_ids..] as
 * SentencePieceProcessor::Encode does (byte fallback, runs of unknowns merged). ids must
 * hold n more entries. Errors: NOMEM. */
llmsq_status spm_unigram_encode(const llmsq_tokenizer *t, const char *norm, size_t n, int32_t *ids, size_t *n_ids);

#endif /* LLMSQ_SPM_IMPL_H */
