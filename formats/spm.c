/*
 * SentencePiece BPE tokenizer: the vocabulary, encode and decode.
 *
 * Every rule here mirrors the sentencepiece library (normalizer.cc, bpe_model.cc,
 * model_interface.cc, sentencepiece_processor.cc), including its corner cases, because
 * perplexities are only comparable when the token streams are identical.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

llmsq_spm_options llmsq_spm_default_options(void)
{
    /* The proto2 defaults of NormalizerSpec and TrainerSpec. */
    return (llmsq_spm_options){
        .add_dummy_prefix = true,
        .remove_extra_whitespaces = true,
        .escape_whitespaces = true,
        .byte_fallback = false,
        .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
    };
}

/* ---- vocabulary ------------------------------------------------------------------------ */

uint32_t spm_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t spm_lookup(const llmsq_tokenizer *t, const char *s, size_t n)
{
    for (uint32_t i = spm_hash(s, n) & t->hmask; t->htab[i]; i = (i + 1) & t->hmask) {
        int32_t id = (int32_t)t->htab[i] - 1;
        if (t->len[id] == n && memcmp(t->piece[id], s, n) == 0) return id;
    }
    return -1;
}

int spm_piece_to_byte(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

static bool spm_mergeable(int32_t type)
{
    /* sentencepiece's pieces_ map; CONTROL, UNKNOWN and BYTE live in reserved_id_map_
     * and are never the result of a merge. */
    return type == LLMSQ_TOKEN_NORMAL || type == LLMSQ_TOKEN_USER_DEFINED ||
           type == LLMSQ_TOKEN_UNUSED;
}

void spm_free(llmsq_tokenizer *t)
{
    if (!t) return;
    free(t->piece);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->arena);
    free(t->unk_surface);
    free(t->htab);
    spm_unigram_free(t->ug);
    spm_charsmap_free(t->charsmap);
    spm_charsmap_free(t->denorm);
    free(t);
}

static llmsq_status spm_check_id(const char *source, const char *what, int32_t id, int64_t n)
{
    if (id < -1 || id >= n)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s %d out of range for a vocabulary of %lld",
                           source, what, (int)id, (long long)n);
    return LLMSQ_OK;
}

llmsq_status spm_build(int64_t n, const char *const *pieces, const uint32_t *lens,
                       const float *scores, const int32_t *types,
                       const llmsq_spm_options *opt, const char *unk_surface,
                       const char *source, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(out && (n == 0 || pieces));
    *out = NULL;
    if (!source) source = "tokenizer";
    llmsq_spm_options o = opt ? *opt : llmsq_spm_default_options();
    if (n <= 0) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: empty vocabulary", source);
    if (n >= INT32_MAX / 4)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: vocabulary of %lld pieces is too large",
                           source, (long long)n);
    LLMSQ_TRY(spm_check_id(source, "unk_id", o.unk_id, n));
    LLMSQ_TRY(spm_check_id(source, "bos_id", o.bos_id, n));
    LLMSQ_TRY(spm_check_id(source, "eos_id", o.eos_id, n));
    LLMSQ_TRY(spm_check_id(source, "pad_id", o.pad_id, n));

    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!pieces[i]) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld is NULL", source, (long long)i);
        size_t l = lens ? lens[i] : strlen(pieces[i]);
        if (l == 0) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld is empty", source, (long long)i);
        if (lens && memchr(pieces[i], 0, l))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld contains a NUL byte", source, (long long)i);
        if (types && (types[i] < LLMSQ_TOKEN_NORMAL || types[i] > LLMSQ_TOKEN_BYTE))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece %lld has invalid type %d", source,
                               (long long)i, (int)types[i]);
        total += l + 1;
    }

    llmsq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    uint32_t cap = 1;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    t->n = n;
    t->opt = o;
    t->piece = malloc((size_t)n * sizeof *t->piece);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->type = malloc((size_t)n * sizeof *t->type);
    t->arena = malloc(total);
    t->htab = calloc(cap, sizeof *t->htab);
    t->hmask = cap - 1;
    t->unk_surface = strdup(unk_surface ? unk_surface : SPM_UNK_SURFACE);
    if (!t->piece || !t->len || !t->score || !t->type || !t->arena || !t->htab || !t->unk_surface) {
        spm_free(t);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for %lld pieces", source, (long long)n);
    }
    for (int i = 0; i < 256; i++) t->byte_piece[i] = -1;
    t->unk = -1;

    llmsq_status st = LLMSQ_OK;
    char *dst = t->arena;
    for (int64_t i = 0; i < n && st == LLMSQ_OK; i++) {
        size_t l = lens ? lens[i] : strlen(pieces[i]);
        memcpy(dst, pieces[i], l);
        dst[l] = 0;
        t->piece[i] = dst;
        t->len[i] = (uint32_t)l;
        dst += l + 1;
        t->score[i] = scores ? scores[i] : 0.0f;
        int b = spm_piece_to_byte(t->piece[i], l);
        t->type[i] = types ? types[i] : (b >= 0 ? LLMSQ_TOKEN_BYTE : LLMSQ_TOKEN_NORMAL);

        int32_t dup = spm_lookup(t, t->piece[i], l);
        if (dup >= 0) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: piece '%s' is defined twice (ids %d and %lld)",
                             source, t->piece[i], (int)dup, (long long)i);
            break;
        }
        uint32_t h = spm_hash(t->piece[i], l) & t->hmask;
        while (t->htab[h]) h = (h + 1) & t->hmask;
        t->htab[h] = (uint32_t)i + 1;

        switch (t->type[i]) {
        case LLMSQ_TOKEN_BYTE:
            if (b < 0)
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: byte piece %lld '%s' is not <0x00>..<0xFF>",
                                 source, (long long)i, t->piece[i]);
            else
                t->byte_piece[b] = (int32_t)i;
            break;
        case LLMSQ_TOKEN_UNKNOWN:
            if (t->unk >= 0)
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: two unknown pieces (ids %d and %lld)",
                                 source, (int)t->unk, (long long)i);
            t->unk = (int32_t)i;
            break;
        case LLMSQ_TOKEN_USER_DEFINED:
            if (l > t->max_user_len) t->max_user_len = (uint32_t)l;
            t->user_first[(uint8_t)t->piece[i][0] >> 6] |= 1ull << ((uint8_t)t->piece[i][0] & 63);
            break;
        case LLMSQ_TOKEN_UNUSED:
            t->has_unused = true;
            break;
        default:
            break;
        }
        if (spm_mergeable(t->type[i]))
            for (size_t k = 0; k + 1 < l; k++) {
                unsigned ab = (uint8_t)t->piece[i][k] << 8 | (uint8_t)t->piece[i][k + 1];
                t->pair_bits[ab >> 6] |= 1ull << (ab & 63);
            }
    }
    /* sentencepiece takes the UNKNOWN-typed piece; a vocabulary given without types
     * (GGUF with no token_type) only has the id the caller names. */
    if (st == LLMSQ_OK && t->unk < 0) t->unk = o.unk_id;
    if (st == LLMSQ_OK && o.byte_fallback) {
        for (int b = 0; b < 256 && st == LLMSQ_OK; b++)
            if (t->byte_piece[b] < 0)
                st = llmsq_error(LLMSQ_STATUS_FORMAT,
                                 "%s: byte_fallback is set but piece <0x%02X> is missing", source, b);
    }
    if (st == LLMSQ_OK && t->unk < 0 && !o.byte_fallback)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: no unknown piece and no byte fallback", source);
    if (st != LLMSQ_OK) {
        spm_free(t);
        return st;
    }
    *out = t;
    return LLMSQ_OK;
}

llmsq_status llmsq_tokenizer_from_vocab(int64_t n, const char *const *pieces, const float *scores,
                                        const int32_t *types, const llmsq_spm_options *opt,
                                        const char *source, llmsq_tokenizer **out)
{
    return spm_build(n, pieces, NULL, scores, types, opt, NULL, source, out);
}

/* ---- accessors ------------------------------------------------------------------------- */

int64_t llmsq_tokenizer_vocab_size(const llmsq_tokenizer *t) { return t->n; }
int32_t llmsq_tokenizer_bos(const llmsq_tokenizer *t) { return t->opt.bos_id; }
int32_t llmsq_tokenizer_eos(const llmsq_tokenizer *t) { return t->opt.eos_id; }
const llmsq_spm_options *llmsq_tokenizer_options(const llmsq_tokenizer *t) { return &t->opt; }

const char *llmsq_tokenizer_piece(const llmsq_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n ? t->piece[id] : NULL;
}

/* Out-of-range ids read as score 0 and type 0 (no such type), mirroring piece() -> NULL. */
float llmsq_tokenizer_score(const llmsq_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n ? t->score[id] : 0.0f;
}

llmsq_token_type llmsq_tokenizer_type(const llmsq_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n ? (llmsq_token_type)t->type[id] : (llmsq_token_type)0;
}

/* ---- normalization --------------------------------------------------------------------- */

/* Byte length of the well-formed character at s, or 0 when malformed: sentencepiece's
 * DecodeUTF8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t spm_utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
#define TRAIL(x) (((x) & 0xC0) == 0x80)
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return TRAIL(s[1]) && cp >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return TRAIL(s[1]) && TRAIL(s[2]) && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000) ? 3 : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return TRAIL(s[1]) && TRAIL(s[2]) && TRAIL(s[3]) && cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
#undef TRAIL
    return 0;
}

/* Length of the longest USER_DEFINED piece that prefixes s[0..n), 0 if none. */
static size_t spm_user_prefix(const llmsq_tokenizer *t, const char *s, size_t n)
{
    uint8_t c = (uint8_t)s[0];
    if (!(t->user_first[c >> 6] >> (c & 63) & 1)) return 0;
    for (size_t m = n < t->max_user_len ? n : t->max_user_len; m > 0; m--) {
        int32_t id = spm_lookup(t, s, m);
        if (id >= 0 && t->type[id] == LLMSQ_TOKEN_USER_DEFINED) return m;
    }
    return 0;
}

/* One normalizer: the normalizer_spec (user-defined pieces kept whole) or the
 * denormalizer_spec (no prefix matcher, as in sentencepiece). */
typedef struct spm_normalizer {
    const llmsq_tokenizer     *t;
    const llmsq_spm_options   *o;
    const struct spm_charsmap *map;
    bool                       user;
} spm_normalizer;

/* Normalizer::NormalizePrefix: a user-defined piece as is, else the longest charsmap rule,
 * else one well-formed character as is, else U+FFFD for one malformed byte. Returns the
 * input bytes consumed; *chunk[0..*chunk_len) is what they become. */
static size_t spm_chunk(const spm_normalizer *nz, const char *s, size_t n, const char **chunk, size_t *chunk_len)
{
    size_t m = nz->user && nz->t->max_user_len ? spm_user_prefix(nz->t, s, n) : 0;
    if (!m && nz->map) {
        const char *rep;
        m = spm_charsmap_match(nz->map, s, n, &rep);
        if (m) {
            *chunk = rep;
            *chunk_len = strlen(rep);
            return m;
        }
    }
    if (!m) m = spm_utf8_len((const uint8_t *)s, n);
    if (!m) {
        *chunk = "\xEF\xBF\xBD";
        *chunk_len = 3;
        return 1;
    }
    *chunk = s;
    *chunk_len = m;
    return m;
}

typedef struct spm_buf {
    char  *p;
    size_t n, cap;
} spm_buf;

static bool spm_reserve(spm_buf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool spm_put(spm_buf *b, const char *s, size_t n)
{
    if (!spm_reserve(b, n)) return false;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

/* Normalizer::Normalize, appending to out. Only ' ' counts as whitespace (other spaces,
 * tabs and newlines are whitespace only after a charsmap maps them to ' '). A charsmap
 * rule may grow the text by any factor, hence the growing buffer. */
static bool spm_normalize(const spm_normalizer *nz, const char *in, size_t len, spm_buf *out)
{
    const llmsq_spm_options *o = nz->o;
    const char *c;
    size_t cl, used, i = 0;
    if (len == 0) return true;
    if (o->remove_extra_whitespaces) {
        while (i < len) {
            used = spm_chunk(nz, in + i, len - i, &c, &cl);
            if (cl != 1 || c[0] != ' ') break;
            i += used;
        }
        if (i == len) return true;
    }
    if (!spm_reserve(out, len - i + 3)) return false;
    if (o->add_dummy_prefix &&
        !spm_put(out, o->escape_whitespaces ? SPM_SPACE : " ", o->escape_whitespaces ? SPM_SPACE_LEN : 1))
        return false;
    bool prev_space = o->remove_extra_whitespaces;
    while (i < len) {
        used = spm_chunk(nz, in + i, len - i, &c, &cl);
        while (prev_space && cl > 0 && c[0] == ' ') {
            c++;
            cl--;
        }
        if (cl > 0) {
            if (!spm_reserve(out, 3 * cl)) return false;
            for (size_t k = 0; k < cl; k++) {
                if (o->escape_whitespaces && c[k] == ' ') {
                    memcpy(out->p + out->n, SPM_SPACE, SPM_SPACE_LEN);
                    out->n += SPM_SPACE_LEN;
                } else {
                    out->p[out->n++] = c[k];
                }
            }
            prev_space = c[cl - 1] == ' ';
        }
        i += used;
        if (!o->remove_extra_whitespaces) prev_space = false;
    }
    if (o->remove_extra_whitespaces) {
        /* On the escaped text, so a literal U+2581 at the end of the input (and the dummy
         * prefix of an all-U+2581 text) goes too, as in sentencepiece. */
        const char *sp = o->escape_whitespaces ? SPM_SPACE : " ";
        size_t sl = o->escape_whitespaces ? SPM_SPACE_LEN : 1;
        while (out->n >= sl && memcmp(out->p + out->n - sl, sp, sl) == 0) out->n -= sl;
    }
    return true;
}

llmsq_status spm_normalize_text(const llmsq_tokenizer *t, const char *in, size_t len, char **out, size_t *out_len)
{
    LLMSQ_ASSERT(t && !t->hf && (in || len == 0) && out && out_len);
    spm_normalizer nz = {t, &t->opt, t->charsmap, true};
    spm_buf b = {0};
    if (!spm_reserve(&b, 0) || !spm_normalize(&nz, in, len, &b)) {
        free(b.p);
        *out = NULL;
        *out_len = 0;
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory normalizing %zu bytes", len);
    }
    *out = b.p;
    *out_len = b.n;
    return LLMSQ_OK;
}

/* ---- BPE ------------------------------------------------------------------------------- */

typedef struct spm_sym {
    uint32_t start, len; /* len 0: merged into its left neighbour */
    int32_t  prev, next;
    bool     freeze;     /* user-defined: never merged */
} spm_sym;

typedef struct spm_pair {
    float    score;
    int32_t  left, right;
    uint32_t size;
} spm_pair;

typedef struct spm_enc {
    const llmsq_tokenizer *t;
    const char *text;
    spm_sym    *sym;
    spm_pair   *heap;
    size_t      heap_n, heap_cap;
    uint32_t   *rev_left; /* per UNUSED piece: length of the left part of its last proposed merge */
    int32_t    *ids;
    size_t      n_ids;
    bool        prev_unk;
    bool        oom;
} spm_enc;

/* Agenda order of bpe_model.cc: higher score first, then the leftmost pair. */
static bool spm_pair_before(const spm_pair *a, const spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void spm_heap_push(spm_enc *e, spm_pair p)
{
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 1024;
        spm_pair *h = realloc(e->heap, cap * sizeof *h);
        if (!h) {
            e->oom = true;
            return;
        }
        e->heap = h;
        e->heap_cap = cap;
    }
    size_t i = e->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!spm_pair_before(&p, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = p;
}

static spm_pair spm_heap_pop(spm_enc *e)
{
    spm_pair top = e->heap[0], last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && spm_pair_before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!spm_pair_before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

static void spm_try_pair(spm_enc *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || e->sym[l].freeze || e->sym[r].freeze) return;
    const llmsq_tokenizer *t = e->t;
    uint32_t size = e->sym[l].len + e->sym[r].len;
    int32_t id = spm_lookup(t, e->text + e->sym[l].start, size);
    if (id < 0 || !spm_mergeable(t->type[id])) return;
    spm_heap_push(e, (spm_pair){t->score[id], l, r, size});
    /* bpe_model.cc keeps the last split proposed for an unused piece, merged or not. */
    if (t->type[id] == LLMSQ_TOKEN_UNUSED) e->rev_left[id] = e->sym[l].len;
}

/* Output of one final symbol: UNUSED pieces are split back along rev_merge; unknown
 * symbols become byte pieces, or one unk id per run of unknown symbols. */
static void spm_emit(spm_enc *e, uint32_t start, uint32_t len)
{
    const llmsq_tokenizer *t = e->t;
    int32_t id = spm_lookup(t, e->text + start, len);
    if (id >= 0 && t->type[id] == LLMSQ_TOKEN_UNUSED) {
        uint32_t l = e->rev_left[id];
        if (l > 0 && l < len) {
            spm_emit(e, start, l);
            spm_emit(e, start + l, len - l);
            return;
        }
    }
    bool is_unk = id < 0 || t->type[id] == LLMSQ_TOKEN_UNKNOWN;
    if (id < 0) id = t->unk;
    if (is_unk && t->opt.byte_fallback) {
        for (uint32_t k = 0; k < len; k++) e->ids[e->n_ids++] = t->byte_piece[(uint8_t)e->text[start + k]];
    } else if (!(is_unk && e->prev_unk)) {
        e->ids[e->n_ids++] = id;
    }
    e->prev_unk = is_unk;
}

static bool spm_pair_possible(const llmsq_tokenizer *t, const char *s)
{
    unsigned ab = (uint8_t)s[0] << 8 | (uint8_t)s[1];
    return t->pair_bits[ab >> 6] >> (ab & 63) & 1;
}

/* bpe_model.cc's main loop over the symbols [first, last). */
static void spm_bpe_run(spm_enc *e, int32_t first, int32_t last)
{
    for (int32_t i = first + 1; i < last; i++) spm_try_pair(e, i - 1, i);
    while (!e->oom && e->heap_n > 0) {
        spm_pair p = spm_heap_pop(e);
        spm_sym *l = &e->sym[p.left], *r = &e->sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size) continue; /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = p.left;
        r->len = 0;
        spm_try_pair(e, l->prev, p.left);
        spm_try_pair(e, p.left, l->next);
    }
}

llmsq_status spm_encode(const llmsq_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t **ids,
                        size_t *n_ids)
{
    LLMSQ_ASSERT(t && ids && n_ids && (text || len == 0));
    *ids = NULL;
    *n_ids = 0;
    if (len > (INT32_MAX - 8) / 3)
        return llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: text of %zu bytes is too long to encode at once", len);

    spm_enc e = {.t = t};
    char *norm;
    size_t nlen;
    LLMSQ_TRY(spm_normalize_text(t, text, len, &norm, &nlen));
    if (nlen > INT32_MAX - 8) {
        free(norm);
        return llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: text of %zu bytes normalizes to %zu, too long to encode at once",
                           len, nlen);
    }
    if (t->ug) {
        llmsq_status st = LLMSQ_OK;
        e.ids = malloc((nlen + 2) * sizeof *e.ids);
        if (!e.ids) st = llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
        if (st == LLMSQ_OK && add_bos && t->opt.bos_id >= 0) e.ids[e.n_ids++] = t->opt.bos_id;
        if (st == LLMSQ_OK) st = spm_unigram_encode(t, norm, nlen, e.ids, &e.n_ids);
        free(norm);
        if (st != LLMSQ_OK) {
            free(e.ids);
            return st;
        }
        *ids = e.ids;
        *n_ids = e.n_ids;
        return LLMSQ_OK;
    }
    e.text = norm;
    e.sym = malloc((nlen + 1) * sizeof *e.sym);
    e.ids = malloc((nlen + 2) * sizeof *e.ids); /* at most one id per normalized byte, + BOS */
    if (t->has_unused) e.rev_left = calloc((size_t)t->n, sizeof *e.rev_left);
    if (!e.sym || !e.ids || (t->has_unused && !e.rev_left)) e.oom = true;

    if (!e.oom && add_bos && t->opt.bos_id >= 0) e.ids[e.n_ids++] = t->opt.bos_id;

    int32_t nsym = 0;
    for (size_t i = 0; !e.oom && i < nlen;) {
        static const uint8_t one_char_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
        size_t m = t->max_user_len ? spm_user_prefix(t, norm + i, nlen - i) : 0;
        bool freeze = m > 0;
        if (!m) {
            m = one_char_len[(uint8_t)norm[i] >> 4];
            if (m > nlen - i) m = nlen - i;
        }
        e.sym[nsym] = (spm_sym){(uint32_t)i, (uint32_t)m, nsym - 1, i + m < nlen ? nsym + 1 : -1, freeze};
        nsym++;
        i += m;
    }
    /* Where no mergeable piece holds the two bytes around a character boundary, no merge
     * can ever span it, and the text splits into independent runs whose agendas stay
     * small and in cache (newlines, for Llama-2). Not with UNUSED pieces: their split-back
     * rule is the last split proposed anywhere in the text, which couples the runs. */
    for (int32_t first = 0, i = 1; !e.oom && first < nsym; i++) {
        if (i < nsym && (t->has_unused || spm_pair_possible(t, norm + e.sym[i].start - 1))) continue;
        spm_bpe_run(&e, first, i);
        first = i;
    }

    if (!e.oom)
        for (int32_t i = nsym ? 0 : -1; i >= 0; i = e.sym[i].next) spm_emit(&e, e.sym[i].start, e.sym[i].len);

    free(norm);
    free(e.sym);
    free(e.heap);
    free(e.rev_left);
    if (e.oom) {
        free(e.ids);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    return LLMSQ_OK;
}

/* ---- decode ---------------------------------------------------------------------------- */

/* A run of byte pieces: each well-formed character as is, each malformed byte as U+FFFD
 * (sentencepiece's ProcessBytePieces). */
static bool spm_put_bytes(spm_buf *b, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t m = spm_utf8_len(s + i, n - i);
        if (!m) {
            if (!spm_put(b, "\xEF\xBF\xBD", 3)) return false;
            i++;
        } else {
            if (!spm_put(b, (const char *)s + i, m)) return false;
            i += m;
        }
    }
    return true;
}

llmsq_status spm_decode(const llmsq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    LLMSQ_ASSERT(t && text && (ids || n == 0));
    *text = NULL;
    if (len) *len = 0;
    spm_buf out = {0};
    uint8_t *bytes = malloc(n + 1);
    size_t n_bytes = 0;
    bool ok = bytes && spm_put(&out, "", 0);
    bool bos_ws = true, bos_ws_seen = false;
    const llmsq_spm_options *o = &t->opt;

    for (size_t i = 0; ok && i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n) {
            free(bytes);
            free(out.p);
            return llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: id %d at position %zu is outside the vocabulary (%lld)",
                               (int)id, i, (long long)t->n);
        }
        if (t->type[id] == LLMSQ_TOKEN_BYTE) {
            bytes[n_bytes++] = (uint8_t)spm_piece_to_byte(t->piece[id], t->len[id]);
            continue;
        }
        ok = spm_put_bytes(&out, bytes, n_bytes);
        n_bytes = 0;
        if (bos_ws_seen || out.n > 0) bos_ws = false;
        bos_ws_seen = false;
        if (t->type[id] == LLMSQ_TOKEN_CONTROL) continue;
        if (t->type[id] == LLMSQ_TOKEN_UNKNOWN) {
            ok = ok && spm_put(&out, t->unk_surface, strlen(t->unk_surface));
            continue;
        }
        const char *p = t->piece[id], *end = p + t->len[id];
        if (bos_ws && (o->add_dummy_prefix || o->remove_extra_whitespaces) &&
            end - p >= SPM_SPACE_LEN && memcmp(p, SPM_SPACE, SPM_SPACE_LEN) == 0) {
            p += SPM_SPACE_LEN;
            /* With remove_extra_whitespaces every leading space piece is stripped, not just one. */
            bos_ws_seen = !o->remove_extra_whitespaces;
        }
        while (ok && p < end) {
            const char *q = p;
            while (q < end && !(end - q >= SPM_SPACE_LEN && memcmp(q, SPM_SPACE, SPM_SPACE_LEN) == 0)) q++;
            ok = spm_put(&out, p, (size_t)(q - p));
            if (q < end) {
                ok = ok && spm_put(&out, " ", 1);
                q += SPM_SPACE_LEN;
            }
            p = q;
        }
    }
    ok = ok && spm_put_bytes(&out, bytes, n_bytes);
    free(bytes);
    if (ok && t->denorm) {
        /* sentencepiece runs the denormalizer's Normalize over the whole decoded text. */
        spm_normalizer nz = {t, &t->denorm_opt, t->denorm, false};
        spm_buf d = {0};
        ok = spm_reserve(&d, 0) && spm_normalize(&nz, out.p, out.n, &d);
        free(out.p);
        out = d;
    }
    if (!ok) {
        free(out.p);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
    }
    out.p[out.n] = 0;
    *text = out.p;
    if (len) *len = out.n;
    return LLMSQ_OK;
}
