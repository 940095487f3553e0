/*
 * Internals of the Hugging Face `tokenizers` pipeline (tokenizer.json, GPT-2 vocab.json +
 * merges.txt, GGUF gpt2 vocabularies), shared by the tok_*.c files.
 *
 * Encoding follows tokenizers' Tokenizer::encode step by step, because only the same
 * steps give the same ids in every corner case:
 *   1. added tokens with normalized=false are cut out of the raw text (leftmost-longest);
 *   2. each remaining part is normalized, then added tokens with normalized=true are cut
 *      out of the normalized text;
 *   3. each remaining part goes through the pre-tokenizers (a list of pieces, each step
 *      splitting or rewriting every piece);
 *   4. each piece goes through the BPE model (merge ranks, with a per-call word cache);
 *   5. with add_special, the post-processor's template wraps the ids.
 * Decoding turns ids into token strings, drops special tokens, runs the decoder chain
 * and joins the result (tokenizers' decode with skip_special_tokens=true).
 */
#ifndef LLMSQ_TOK_IMPL_H
#define LLMSQ_TOK_IMPL_H

#include "spm-impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>

/* Offsets are uint32: texts are capped well below 4 GiB (ByteLevel doubles bytes). */
#define TOK_MAX_TEXT ((size_t)INT32_MAX / 4)

/* ---- byte buffers (tok_util.c) ------------------------------------------------------------ */

typedef struct tok_buf {
    char  *p;
    size_t n, cap;
    bool   oom; /* sticky: set by the first failed growth, later puts do nothing */
} tok_buf;

bool tok_buf_reserve(tok_buf *b, size_t extra);
void tok_buf_put(tok_buf *b, const void *s, size_t n);
void tok_buf_put_cp(tok_buf *b, uint32_t cp);

/* ---- UTF-8 and Unicode (tok_util.c) -------------------------------------------------------- */

/* Decodes the character at s (n > 0 bytes, well-formed UTF-8). */
uint32_t tok_utf8_get(const char *s, size_t n, size_t *len);
size_t   tok_utf8_put(uint32_t cp, char out[4]);
/* Byte length of the character whose first byte is c (1 for stray bytes). */
static inline size_t tok_utf8_clen(uint8_t c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
/* *out = s when s is well-formed (nothing allocated); otherwise a malloc'd copy in which
 * each maximal ill-formed subsequence became U+FFFD, as Python's errors="replace" and
 * Rust's from_utf8_lossy do (tokenizers only ever sees valid strings). */
llmsq_status tok_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_n);
/* Appends s to b with ill-formed subsequences replaced as above. */
void tok_utf8_put_lossy(tok_buf *b, const char *s, size_t n);
bool tok_utf8_valid(const char *s, size_t n);

bool tok_is_whitespace(uint32_t cp); /* Rust char::is_whitespace (White_Space) */
bool tok_is_numeric(uint32_t cp);    /* Rust char::is_numeric (Nd, Nl, No) */
bool tok_is_alnum(uint32_t cp);      /* Rust char::is_alphanumeric, approximately (L*, M*, N*) */
bool tok_is_punct(uint32_t cp);      /* ASCII punctuation or Unicode P* */

/* ---- patterns and splitting (tok_util.c) --------------------------------------------------- */

/* A literal string (lit != NULL) or a regex in Oniguruma's dialect run through PCRE2. */
typedef struct tok_pattern {
    char       *lit;
    size_t      lit_len;
    pcre2_code *re;
} tok_pattern;

llmsq_status tok_pattern_literal(tok_pattern *p, const char *s, size_t n);
llmsq_status tok_pattern_regex(tok_pattern *p, const char *re, size_t n, const char *source);
void         tok_pattern_free(tok_pattern *p);

typedef struct tok_span {
    uint32_t start, end;
    bool     match;
} tok_span;

typedef struct tok_spans {
    tok_span *v;
    size_t    n, cap;
    bool      oom;
} tok_spans;

void tok_spans_push(tok_spans *s, uint32_t start, uint32_t end, bool match);

/* Splits s[0..n) into spans that alternate between matches and gaps, as tokenizers'
 * Pattern::find_matches (for regexes: Oniguruma's find_iter rules for empty matches).
 * An empty s gives one empty non-match. Errors: NOMEM, FORMAT (regex engine limits). */
llmsq_status tok_pattern_find(const tok_pattern *p, const char *s, size_t n, pcre2_match_data *md,
                              tok_spans *out);

/* Replaces every match of p in s by `with`, appending to out. */
llmsq_status tok_pattern_replace(const tok_pattern *p, const char *s, size_t n, const char *with,
                                 size_t with_len, pcre2_match_data *md, tok_spans *sp, tok_buf *out);

enum tok_behavior { TB_REMOVED, TB_ISOLATED, TB_MERGED_PREV, TB_MERGED_NEXT, TB_CONTIGUOUS };

/* NormalizedString::split: rewrites the spans in place by behavior (and invert). Spans
 * flagged `match` afterwards are the ones to drop. */
void tok_spans_apply(tok_spans *s, int behavior, bool invert);

/* ---- pieces ----------------------------------------------------------------------------- */

typedef struct tok_piece {
    uint32_t off, len; /* in the owning list's buffer */
    bool     first;    /* starts at offset 0 of the original text (Metaspace "first") */
} tok_piece;

typedef struct tok_pieces {
    tok_piece *v;
    size_t     n, cap;
    tok_buf    buf;
} tok_pieces;

/* Appends a piece whose bytes are copied into the list's buffer; empty pieces are dropped
 * (tokenizers never keeps an empty split). */
void tok_pieces_add(tok_pieces *l, const char *s, size_t n, bool first);
/* The same, keeping empty pieces (decoders pass empty tokens along). */
void tok_pieces_push(tok_pieces *l, const char *s, size_t n, bool first);
void tok_pieces_clear(tok_pieces *l);
void tok_pieces_free(tok_pieces *l);

/* ---- normalizers (tok_normalize.c) ------------------------------------------------------ */

enum tok_norm_kind { TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_LOWERCASE, TN_STRIP, TN_REPLACE, TN_PREPEND,
                     TN_BYTELEVEL };

typedef struct tok_norm {
    int         kind;
    bool        left, right; /* Strip */
    tok_pattern pat;         /* Replace */
    char       *str;         /* Replace: content; Prepend: prepend */
    size_t      str_len;
} tok_norm;

/* Scratch shared by the pipeline stages of one encode call. */
typedef struct tok_scratch {
    pcre2_match_data *md;
    tok_spans         spans;
    tok_buf           a, b;
} tok_scratch;

/* Runs the normalizer chain over s; the result is in *res (one of sc->a / sc->b, or s
 * itself when there are no steps). */
llmsq_status tok_normalize(const tok_norm *steps, int n_steps, const char *s, size_t n, tok_scratch *sc,
                           const char **res, size_t *res_n);
void tok_norm_free(tok_norm *n);

/* ---- pre-tokenizers (tok_pretok.c) -------------------------------------------------------- */

enum tok_pre_kind { TP_BYTELEVEL, TP_SPLIT, TP_METASPACE, TP_DIGITS, TP_WHITESPACE, TP_WHITESPACE_SPLIT,
                    TP_PUNCTUATION };
enum tok_prepend_scheme { TS_ALWAYS, TS_FIRST, TS_NEVER };

typedef struct tok_pretok {
    int         kind;
    int         behavior;                  /* Split, Punctuation */
    bool        invert;                    /* Split */
    bool        add_prefix_space, use_regex; /* ByteLevel */
    bool        individual_digits;         /* Digits */
    bool        split;                     /* Metaspace */
    int         scheme;                    /* Metaspace */
    char        rep[5];                    /* Metaspace replacement (UTF-8) */
    uint8_t     rep_len;
    tok_pattern pat;                       /* Split; ByteLevel with use_regex; Whitespace */
} tok_pretok;

/* Runs one step over every piece of in, writing the result to out (cleared first). */
llmsq_status tok_pretokenize_step(const tok_pretok *p, const tok_pieces *in, tok_pieces *out, tok_scratch *sc);
void tok_pretok_free(tok_pretok *p);
/* Compiles the regex of the Whitespace pre-tokenizer (\w+|[^\w\s]+) into p->pat. */
llmsq_status tok_pretok_whitespace(tok_pretok *p, const char *source);

/* GPT-2's byte-to-unicode map: byte b is written as the UTF-8 of tok_byte_char[b]. */
extern const uint16_t tok_byte_char[256];
/* The inverse, for decoding: code point -> byte, or -1. */
int tok_char_byte(uint32_t cp);

/* The regexes of the pre-tokenizers that GGUF names and tokenizer.json files spell out. */
extern const char tok_re_gpt2[], tok_re_llama3[], tok_re_qwen2[];

/* ---- decoders (tok_decode.c) ------------------------------------------------------------- */

enum tok_dec_kind { TD_BYTELEVEL, TD_METASPACE, TD_REPLACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP };

typedef struct tok_dec {
    int         kind;
    tok_pattern pat;     /* Replace */
    char       *str;     /* Replace: content */
    size_t      str_len;
    uint32_t    ch;      /* Metaspace replacement; Strip content */
    int         start, stop, scheme;
} tok_dec;

void tok_dec_free(tok_dec *d);

/* ---- the tokenizer -------------------------------------------------------------------------- */

typedef struct tok_added {
    int32_t  id;
    char    *s;
    uint32_t len;
    bool     special, single_word, lstrip, rstrip, normalized;
} tok_added;

/* Added tokens of one kind (raw or normalized), bucketed by first byte, longest first. */
typedef struct tok_addset {
    int32_t *idx;        /* into tok_hf.added */
    uint32_t start[257]; /* bucket of first byte c: idx[start[c] .. start[c+1]) */
} tok_addset;

struct tok_hf {
    /* BPE model */
    uint8_t  *in_model;     /* [n] 1 where the id is in model.vocab */
    uint64_t *mkey;         /* merges: (left id << 32 | right id) + 1, 0 = empty */
    uint32_t *mrank;
    int32_t  *mnew;
    uint32_t  mmask;
    int64_t   n_merges;
    int32_t   unk;          /* model.unk_token id, -1 if none */
    int32_t   byte_id[256]; /* "<0xXX>" ids for byte_fallback, -1 when missing */
    bool      byte_fallback, fuse_unk, ignore_merges;

    tok_norm   *norm;
    int         n_norm;
    tok_pretok *pre;
    int         n_pre;
    tok_dec    *dec;
    int         n_dec;
    bool        has_decoder; /* without one, tokens are joined by spaces */

    tok_added *added;
    int        n_added;
    tok_addset raw, normed;

    /* [n] or NULL: what decoding prints for an id, where it is not the token's piece.
     * tokenizers decodes a normalized=true added token as its normalized content. */
    char **dec_piece;

    int32_t *tmpl; /* with add_special: ids to emit, -1 where the text goes */
    int      n_tmpl;
};

/* Vocabulary setup shared by all loaders: fills the piece table, hash and types of t
 * (a zeroed llmsq_tokenizer with t->hf allocated). pieces[i] may be NULL for a hole. */
llmsq_status tok_vocab_init(llmsq_tokenizer *t, int64_t n, const char *const *pieces, const uint32_t *lens,
                            const char *source);
/* Adds a merge (ids of both halves, by rank order). Later duplicates keep the later rank,
 * as tokenizers' HashMap collect does. */
llmsq_status tok_merges_init(struct tok_hf *h, int64_t n_merges, const char *source);
void         tok_merge_add(struct tok_hf *h, int32_t a, int32_t b, uint32_t rank, int32_t merged);
/* Splits "left right" (or a two-element pair already split) and adds it; FORMAT error
 * naming the merge when either side or the result is not in the vocabulary. */
llmsq_status tok_merge_add_pair(llmsq_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn,
                                uint32_t rank, const char *source);
/* Builds the added-token buckets and types once tok_hf.added is filled. */
llmsq_status tok_added_finish(llmsq_tokenizer *t, const char *source);
/* Final checks and derived fields (byte ids, types); the tokenizer is usable after this. */
llmsq_status tok_finish(llmsq_tokenizer *t, const char *source);

void tok_hf_free(struct tok_hf *h);

/* Working memory of the BPE merge loop, reused across words of one encode call. */
typedef struct tok_bpe_work {
    void    *sym, *heap;
    size_t   sym_n, sym_cap, heap_n, heap_cap;
    int32_t *out; /* the ids of the last word */
    size_t   out_n, out_cap;
    bool     oom;
} tok_bpe_work;

/* Encodes one pre-token (the BPE model's tokenize) into w->out. */
void tok_bpe_word(const llmsq_tokenizer *t, tok_bpe_work *w, const char *s, size_t n);
void tok_bpe_emit(tok_bpe_work *w, int32_t id);
void tok_bpe_work_free(tok_bpe_work *w);

/* Pipelines for the pre-tokenizer names GGUF uses ("gpt-2", "llama-bpe", "qwen2", ...). */
llmsq_status tok_pre_from_name(struct tok_hf *h, const char *name, size_t len, const char *source);

llmsq_status tok_hf_encode(const llmsq_tokenizer *t, const char *text, size_t len, int specials,
                           int32_t **ids, size_t *n_ids);
llmsq_status tok_hf_decode(const llmsq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

/* The SentencePiece halves of the public functions (spm.c). */
llmsq_status spm_encode(const llmsq_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        size_t *n_ids);
llmsq_status spm_decode(const llmsq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);
void         spm_free(llmsq_tokenizer *t);

/* Encode flags. */
enum { TOK_ADD_BOS = 1, TOK_ADD_SPECIAL = 2 };

#endif /* LLMSQ_TOK_IMPL_H */
