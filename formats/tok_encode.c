/*
 * Encoding through the Hugging Face pipeline (see tok_impl.h for the steps): added tokens,
 * normalizer, pre-tokenizers, the BPE model with a per-call word cache, post-processor.
 *
 * The word cache lives in the call, not in the tokenizer, so a tokenizer stays immutable
 * and shareable between threads; one call over a whole corpus still sees every repeated
 * word only once.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

/* Words longer than this are not cached (tokenizers' cache has the same kind of cap), so a
 * pathological input cannot grow the cache without bound. */
#define CACHE_MAX_WORD 256

typedef struct cache_ent {
    uint32_t hash, woff, wlen, ioff, ilen;
} cache_ent;

typedef struct tok_enc {
    const llmsq_tokenizer *t;
    const struct tok_hf   *h;
    tok_scratch            sc, nsc; /* pre-tokenizers; normalizer */
    tok_pieces             pa, pb;
    tok_bpe_work           w;

    uint32_t  *slot; /* index + 1 into ent */
    uint32_t   mask;
    cache_ent *ent;
    size_t     n_ent, cap_ent;
    tok_buf    words;
    int32_t   *cids;
    size_t     n_cids, cap_cids;

    int32_t *ids;
    size_t   n, cap;
    bool     oom;
} tok_enc;

static void emit(tok_enc *e, int32_t id)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 1024;
        int32_t *p = realloc(e->ids, cap * sizeof *p);
        if (!p) {
            e->oom = true;
            return;
        }
        e->ids = p;
        e->cap = cap;
    }
    e->ids[e->n++] = id;
}

static uint32_t word_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static bool cache_grow(tok_enc *e)
{
    uint32_t cap = e->mask ? (e->mask + 1) * 2 : 4096;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    for (size_t i = 0; i < e->n_ent; i++) {
        uint32_t k = e->ent[i].hash & (cap - 1);
        while (slot[k]) k = (k + 1) & (cap - 1);
        slot[k] = (uint32_t)i + 1;
    }
    free(e->slot);
    e->slot = slot;
    e->mask = cap - 1;
    return true;
}

static void cache_put(tok_enc *e, uint32_t h, const char *s, size_t n, const int32_t *ids, size_t k)
{
    if ((e->n_ent + 1) * 2 > (size_t)e->mask + 1 && !cache_grow(e)) return;
    if (e->n_ent == e->cap_ent) {
        size_t cap = e->cap_ent ? e->cap_ent * 2 : 1024;
        cache_ent *p = realloc(e->ent, cap * sizeof *p);
        if (!p) return;
        e->ent = p;
        e->cap_ent = cap;
    }
    if (e->n_cids + k > e->cap_cids) {
        size_t cap = e->cap_cids ? e->cap_cids : 1024;
        while (cap < e->n_cids + k) cap *= 2;
        int32_t *p = realloc(e->cids, cap * sizeof *p);
        if (!p) return;
        e->cids = p;
        e->cap_cids = cap;
    }
    size_t woff = e->words.n;
    tok_buf_put(&e->words, s, n);
    if (e->words.oom) return;
    if (k) memcpy(e->cids + e->n_cids, ids, k * sizeof *ids);
    e->ent[e->n_ent] = (cache_ent){h, (uint32_t)woff, (uint32_t)n, (uint32_t)e->n_cids, (uint32_t)k};
    e->n_cids += k;
    uint32_t i = h & e->mask;
    while (e->slot[i]) i = (i + 1) & e->mask;
    e->slot[i] = (uint32_t)++e->n_ent;
}

static void encode_word(tok_enc *e, const char *s, size_t n)
{
    uint32_t h = 0;
    if (n <= CACHE_MAX_WORD && e->mask) {
        h = word_hash(s, n);
        for (uint32_t i = h & e->mask; e->slot[i]; i = (i + 1) & e->mask) {
            const cache_ent *c = &e->ent[e->slot[i] - 1];
            if (c->hash == h && c->wlen == n && memcmp(e->words.p + c->woff, s, n) == 0) {
                for (uint32_t k = 0; k < c->ilen; k++) emit(e, e->cids[c->ioff + k]);
                return;
            }
        }
    }
    tok_bpe_word(e->t, &e->w, s, n);
    if (e->w.oom) {
        e->oom = true;
        return;
    }
    for (size_t k = 0; k < e->w.out_n; k++) emit(e, e->w.out[k]);
    if (n <= CACHE_MAX_WORD && e->mask) cache_put(e, h, s, n, e->w.out, e->w.out_n);
}

static llmsq_status pretokenize(tok_enc *e, const char *s, size_t n, bool first)
{
    const struct tok_hf *h = e->h;
    if (n == 0) return LLMSQ_OK;
    if (h->n_pre == 0) {
        encode_word(e, s, n);
        return LLMSQ_OK;
    }
    tok_pieces *cur = &e->pa, *next = &e->pb;
    tok_pieces_clear(cur);
    tok_pieces_add(cur, s, n, first);
    for (int k = 0; k < h->n_pre; k++) {
        LLMSQ_TRY(tok_pretokenize_step(&h->pre[k], cur, next, &e->sc));
        tok_pieces *tmp = cur;
        cur = next;
        next = tmp;
    }
    for (size_t i = 0; i < cur->n && !e->oom; i++) encode_word(e, cur->buf.p + cur->v[i].off, cur->v[i].len);
    return LLMSQ_OK;
}

/* Rust regex's \w, closely enough for single_word: alphanumeric or '_'. */
static bool is_word_char(uint32_t c) { return c == '_' || tok_is_alnum(c); }

/* The next added token of set in s at or after *pos (AddedVocabulary::find_matches):
 * leftmost, then longest; single_word, lstrip and rstrip applied. [*ms, *me) is the split
 * to emit as the token, never starting before `done` (the end of the previous one). */
static bool next_added(const struct tok_hf *h, const tok_addset *set, const char *s, size_t n, size_t *pos,
                       size_t done, size_t *ms, size_t *me, int32_t *id)
{
    if (set->start[256] == 0) return false;
    for (size_t i = *pos; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        uint32_t b = set->start[c], e = set->start[c + 1];
        const tok_added *hit = NULL;
        for (uint32_t k = b; k < e && !hit; k++) {
            const tok_added *a = &h->added[set->idx[k]];
            if (a->len <= n - i && memcmp(s + i, a->s, a->len) == 0) hit = a;
        }
        if (!hit) continue;
        size_t start = i, stop = i + hit->len, l;
        if (hit->single_word) {
            bool word_before = false, word_after = false;
            if (start > 0) {
                size_t k = start - 1;
                while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
                word_before = is_word_char(tok_utf8_get(s + k, start - k, &l));
            }
            if (stop < n) word_after = is_word_char(tok_utf8_get(s + stop, n - stop, &l));
            if (word_before || word_after) {
                i = stop - 1; /* the automaton resumes after the discarded match */
                continue;
            }
        }
        if (hit->lstrip) {
            size_t k = start;
            while (k > 0) {
                size_t j = k - 1;
                while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                if (!tok_is_whitespace(tok_utf8_get(s + j, k - j, &l))) break;
                k = j;
            }
            start = k > done ? k : done;
        }
        if (hit->rstrip)
            while (stop < n && tok_is_whitespace(tok_utf8_get(s + stop, n - stop, &l))) stop += l;
        *ms = start;
        *me = stop;
        *pos = stop;
        *id = hit->id;
        return true;
    }
    *pos = n;
    return false;
}

static llmsq_status encode_raw_part(tok_enc *e, const char *s, size_t n, bool first)
{
    const char *ns;
    size_t nn;
    LLMSQ_TRY(tok_normalize(e->h->norm, e->h->n_norm, s, n, &e->nsc, &ns, &nn));
    size_t pos = 0, done = 0, ms, me;
    int32_t id;
    while (next_added(e->h, &e->h->normed, ns, nn, &pos, done, &ms, &me, &id)) {
        if (ms > done) LLMSQ_TRY(pretokenize(e, ns + done, ms - done, first && done == 0));
        emit(e, id);
        done = me;
    }
    if (done < nn) LLMSQ_TRY(pretokenize(e, ns + done, nn - done, first && done == 0));
    return LLMSQ_OK;
}

static llmsq_status encode_text(tok_enc *e, const char *s, size_t n)
{
    size_t pos = 0, done = 0, ms, me;
    int32_t id;
    while (next_added(e->h, &e->h->raw, s, n, &pos, done, &ms, &me, &id)) {
        if (ms > done) LLMSQ_TRY(encode_raw_part(e, s + done, ms - done, done == 0));
        emit(e, id);
        done = me;
    }
    if (done < n) LLMSQ_TRY(encode_raw_part(e, s + done, n - done, done == 0));
    return LLMSQ_OK;
}

static void scratch_free(tok_scratch *sc)
{
    free(sc->a.p);
    free(sc->b.p);
    free(sc->spans.v);
}

llmsq_status tok_hf_encode(const llmsq_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids,
                           size_t *n_ids)
{
    if (len > TOK_MAX_TEXT)
        return llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: text of %zu bytes is too long to encode at once", len);
    char *clean;
    size_t n;
    LLMSQ_TRY(tok_utf8_sanitize(text, len, &clean, &n));
    const char *s = clean ? clean : text;

    tok_enc e = {.t = t, .h = t->hf};
    e.sc.md = pcre2_match_data_create(1, NULL);
    e.nsc.md = e.sc.md;
    llmsq_status st = LLMSQ_OK;
    if (!e.sc.md || !cache_grow(&e)) e.oom = true;

    const struct tok_hf *h = t->hf;
    if (!e.oom && (flags & TOK_ADD_SPECIAL) && h->n_tmpl > 0) {
        for (int i = 0; i < h->n_tmpl && st == LLMSQ_OK; i++) {
            if (h->tmpl[i] < 0) st = encode_text(&e, s, n);
            else emit(&e, h->tmpl[i]);
        }
    } else if (!e.oom) {
        if ((flags & TOK_ADD_BOS) && t->opt.bos_id >= 0) emit(&e, t->opt.bos_id);
        st = encode_text(&e, s, n);
    }
    if (st == LLMSQ_OK && (e.oom || e.pa.buf.oom || e.pb.buf.oom))
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);

    free(clean);
    scratch_free(&e.sc);
    scratch_free(&e.nsc);
    pcre2_match_data_free(e.sc.md);
    tok_pieces_free(&e.pa);
    tok_pieces_free(&e.pb);
    tok_bpe_work_free(&e.w);
    free(e.slot);
    free(e.ent);
    free(e.words.p);
    free(e.cids);
    if (st != LLMSQ_OK) {
        free(e.ids);
        return st;
    }
    if (!e.ids) e.ids = malloc(sizeof *e.ids); /* a valid pointer even for no ids */
    if (!e.ids) return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory");
    *ids = e.ids;
    *n_ids = e.n;
    return LLMSQ_OK;
}
