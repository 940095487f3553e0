/*
 * The BPE model of tokenizers (models/bpe): vocabulary, merge ranks in a hash table, and
 * the word merge loop. The loop is tokenizers' Word::merge_all: a min-heap on (rank,
 * position), entries checked for staleness when popped, one merge at a time.
 */
#include "tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vocabulary ----------------------------------------------------------------------------- */

llmsq_status tok_vocab_init(llmsq_tokenizer *t, int64_t n, const char *const *pieces, const uint32_t *lens,
                            const char *source)
{
    if (n <= 0) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: empty vocabulary", source);
    if (n >= INT32_MAX / 4)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: vocabulary of %lld tokens is too large", source, (long long)n);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) total += (pieces[i] ? (lens ? lens[i] : strlen(pieces[i])) : 0) + 1;
    uint32_t cap = 1;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    t->n = n;
    t->piece = malloc((size_t)n * sizeof *t->piece);
    t->len = calloc((size_t)n, sizeof *t->len);
    t->score = calloc((size_t)n, sizeof *t->score);
    t->type = malloc((size_t)n * sizeof *t->type);
    t->arena = malloc(total);
    t->htab = calloc(cap, sizeof *t->htab);
    t->hmask = cap - 1;
    t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_piece[i] = -1;
    if (!t->piece || !t->len || !t->score || !t->type || !t->arena || !t->htab)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for %lld tokens", source, (long long)n);
    char *dst = t->arena;
    for (int64_t i = 0; i < n; i++) {
        size_t l = pieces[i] ? (lens ? lens[i] : strlen(pieces[i])) : 0;
        if (l) memcpy(dst, pieces[i], l);
        dst[l] = 0;
        t->piece[i] = dst;
        t->len[i] = (uint32_t)l;
        dst += l + 1;
        t->type[i] = pieces[i] ? LLMSQ_TOKEN_NORMAL : LLMSQ_TOKEN_UNUSED;
        if (!pieces[i]) continue; /* a hole in the id space */
        if (l == 0) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: token %lld is empty", source, (long long)i);
        if (memchr(t->piece[i], 0, l))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: token %lld contains a NUL byte", source, (long long)i);
        int32_t dup = spm_lookup(t, t->piece[i], l);
        if (dup >= 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: token '%.64s' is defined twice (ids %d and %lld)", source,
                               t->piece[i], (int)dup, (long long)i);
        uint32_t h = spm_hash(t->piece[i], l) & t->hmask;
        while (t->htab[h]) h = (h + 1) & t->hmask;
        t->htab[h] = (uint32_t)i + 1;
    }
    t->hf->in_model = calloc((size_t)n, 1);
    if (!t->hf->in_model) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    return LLMSQ_OK;
}

/* ---- merges ---------------------------------------------------------------------------------- */

static uint32_t merge_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (uint32_t)key;
}

llmsq_status tok_merges_init(struct tok_hf *h, int64_t n_merges, const char *source)
{
    if (n_merges < 0 || n_merges > INT32_MAX / 4)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %lld merges", source, (long long)n_merges);
    uint32_t cap = 16;
    while (cap < (uint64_t)n_merges * 2) cap <<= 1;
    h->mkey = calloc(cap, sizeof *h->mkey);
    h->mrank = malloc(cap * sizeof *h->mrank);
    h->mnew = malloc(cap * sizeof *h->mnew);
    h->mmask = cap - 1;
    if (!h->mkey || !h->mrank || !h->mnew)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for %lld merges", source, (long long)n_merges);
    return LLMSQ_OK;
}

static bool merge_get(const struct tok_hf *h, int32_t a, int32_t b, uint32_t *rank, int32_t *merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t i = merge_hash(key) & h->mmask; h->mkey[i]; i = (i + 1) & h->mmask) {
        if (h->mkey[i] == key) {
            *rank = h->mrank[i];
            *merged = h->mnew[i];
            return true;
        }
    }
    return false;
}

void tok_merge_add(struct tok_hf *h, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = merge_hash(key) & h->mmask;
    while (h->mkey[i] && h->mkey[i] != key) i = (i + 1) & h->mmask;
    if (!h->mkey[i]) h->n_merges++;
    h->mkey[i] = key;
    h->mrank[i] = rank;
    h->mnew[i] = merged;
}

static int32_t model_lookup(const llmsq_tokenizer *t, const char *s, size_t n)
{
    int32_t id = spm_lookup(t, s, n);
    return id >= 0 && t->hf->in_model[id] ? id : -1;
}

llmsq_status tok_merge_add_pair(llmsq_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn,
                                uint32_t rank, const char *source)
{
    struct tok_hf *h = t->hf;
    if ((uint64_t)h->n_merges * 2 + 2 > (uint64_t)h->mmask + 1)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: more merges than announced", source);
    int32_t a = model_lookup(t, l, ln), b = model_lookup(t, r, rn), m = -1;
    char stack[256], *cat = ln + rn <= sizeof stack ? stack : malloc(ln + rn);
    if (!cat) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    memcpy(cat, l, ln);
    memcpy(cat + ln, r, rn);
    if (a >= 0 && b >= 0) m = model_lookup(t, cat, ln + rn);
    if (cat != stack) free(cat);
    if (a < 0 || b < 0 || m < 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: merge %u ('%.*s' '%.*s') refers to a token that is not in the "
                           "vocabulary ('%.*s%s')", source, rank, (int)(ln > 64 ? 64 : ln), l, (int)(rn > 64 ? 64 : rn),
                           r, (int)(a < 0 ? (ln > 64 ? 64 : ln) : b < 0 ? (rn > 64 ? 64 : rn) : 0),
                           a < 0 ? l : r, a < 0 || b < 0 ? "" : "<the merged token>");
    tok_merge_add(h, a, b, rank, m);
    return LLMSQ_OK;
}

/* ---- final checks ------------------------------------------------------------------------------ */

void tok_hf_free(struct tok_hf *h)
{
    if (!h) return;
    free(h->in_model);
    free(h->mkey);
    free(h->mrank);
    free(h->mnew);
    for (int i = 0; i < h->n_norm; i++) tok_norm_free(&h->norm[i]);
    for (int i = 0; i < h->n_pre; i++) tok_pretok_free(&h->pre[i]);
    for (int i = 0; i < h->n_dec; i++) tok_dec_free(&h->dec[i]);
    free(h->norm);
    free(h->pre);
    free(h->dec);
    free(h->raw.idx);
    free(h->normed.idx);
    free(h->tmpl);
    if (h->dec_piece) {
        for (int i = 0; i < h->n_added; i++) {
            free(h->dec_piece[h->added[i].id]);
            h->dec_piece[h->added[i].id] = NULL; /* two entries may share an id */
        }
    }
    free(h->dec_piece);
    for (int i = 0; i < h->n_added; i++) free(h->added[i].s);
    free(h->added);
    free(h);
}

typedef struct added_key {
    uint8_t  first;
    uint32_t len;
    int32_t  id, idx;
} added_key;

/* By first byte, then longest first (leftmost-longest matching), then by id. */
static int cmp_added(const void *pa, const void *pb)
{
    const added_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static llmsq_status build_set(const struct tok_hf *h, bool normalized, tok_addset *set, const char *source)
{
    /* Text is valid UTF-8 by then, so a token that is not (GGUF allows any bytes) can never
     * match; leaving it out also keeps matches on character boundaries. */
#define IN_SET(a) ((a)->normalized == normalized && tok_utf8_valid((a)->s, (a)->len))
    int n = 0;
    for (int i = 0; i < h->n_added; i++) n += IN_SET(&h->added[i]);
    set->idx = malloc(((size_t)n + 1) * sizeof *set->idx);
    added_key *keys = malloc(((size_t)n + 1) * sizeof *keys);
    if (!set->idx || !keys) {
        free(keys);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    }
    int k = 0;
    for (int i = 0; i < h->n_added; i++)
        if (IN_SET(&h->added[i]))
            keys[k++] = (added_key){(uint8_t)h->added[i].s[0], h->added[i].len, h->added[i].id, i};
    qsort(keys, (size_t)n, sizeof *keys, cmp_added);
    memset(set->start, 0, sizeof set->start);
    for (int i = 0; i < n; i++) {
        set->idx[i] = keys[i].idx;
        set->start[keys[i].first + 1]++;
    }
    for (int c = 0; c < 256; c++) set->start[c + 1] += set->start[c];
    free(keys);
    return LLMSQ_OK;
#undef IN_SET
}

llmsq_status tok_added_finish(llmsq_tokenizer *t, const char *source)
{
    struct tok_hf *h = t->hf;
    for (int i = 0; i < h->n_added; i++) {
        const tok_added *a = &h->added[i];
        LLMSQ_ASSERT(a->id >= 0 && a->id < t->n && a->len > 0);
        t->type[a->id] = a->special ? LLMSQ_TOKEN_CONTROL : LLMSQ_TOKEN_USER_DEFINED;
    }
    LLMSQ_TRY(build_set(h, false, &h->raw, source));
    return build_set(h, true, &h->normed, source);
}

llmsq_status tok_finish(llmsq_tokenizer *t, const char *source)
{
    struct tok_hf *h = t->hf;
    for (int b = 0; b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        h->byte_id[b] = model_lookup(t, p, 6);
        if (h->byte_fallback && h->byte_id[b] >= 0 && t->type[h->byte_id[b]] == LLMSQ_TOKEN_NORMAL) {
            t->type[h->byte_id[b]] = LLMSQ_TOKEN_BYTE;
            t->byte_piece[b] = h->byte_id[b];
        }
    }
    if (h->unk >= 0) {
        if (h->unk >= t->n) return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: unk id %d out of range", source, (int)h->unk);
        if (t->type[h->unk] == LLMSQ_TOKEN_NORMAL) t->type[h->unk] = LLMSQ_TOKEN_UNKNOWN;
    }
    t->unk = h->unk;
    t->opt.unk_id = h->unk;
    const int32_t ids[3] = {t->opt.bos_id, t->opt.eos_id, t->opt.pad_id};
    static const char *const what[3] = {"bos", "eos", "pad"};
    for (int i = 0; i < 3; i++)
        if (ids[i] < -1 || ids[i] >= t->n)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s id %d out of range for a vocabulary of %lld", source, what[i],
                               (int)ids[i], (long long)t->n);
    for (int i = 0; i < h->n_tmpl; i++)
        if (h->tmpl[i] < -1 || h->tmpl[i] >= t->n)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: post-processor id %d out of range", source, (int)h->tmpl[i]);
    return LLMSQ_OK;
}

/* ---- the merge loop ------------------------------------------------------------------------------ */

typedef struct bpe_sym {
    int32_t  id, prev, next;
    uint32_t len; /* 0: merged into its left neighbour */
} bpe_sym;

typedef struct bpe_ent {
    uint32_t rank, pos;
    int32_t  merged;
} bpe_ent;

static bool ent_before(bpe_ent a, bpe_ent b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(tok_bpe_work *w, bpe_ent e)
{
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        void *p = realloc(w->heap, cap * sizeof(bpe_ent));
        if (!p) {
            w->oom = true;
            return;
        }
        w->heap = p;
        w->heap_cap = cap;
    }
    bpe_ent *hp = w->heap;
    size_t i = w->heap_n++;
    while (i > 0 && ent_before(e, hp[(i - 1) / 2])) {
        hp[i] = hp[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    hp[i] = e;
}

static bpe_ent heap_pop(tok_bpe_work *w)
{
    bpe_ent *hp = w->heap;
    bpe_ent top = hp[0], last = hp[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ent_before(hp[c + 1], hp[c])) c++;
        if (!ent_before(hp[c], last)) break;
        hp[i] = hp[c];
        i = c;
    }
    if (n > 0) hp[i] = last;
    return top;
}

static void sym_add(tok_bpe_work *w, int32_t id, uint32_t len)
{
    if (w->sym_n == w->sym_cap) {
        size_t cap = w->sym_cap ? w->sym_cap * 2 : 64;
        void *p = realloc(w->sym, cap * sizeof(bpe_sym));
        if (!p) {
            w->oom = true;
            return;
        }
        w->sym = p;
        w->sym_cap = cap;
    }
    bpe_sym *s = w->sym;
    int32_t i = (int32_t)w->sym_n++;
    s[i] = (bpe_sym){id, i - 1, -1, len};
    if (i > 0) s[i - 1].next = i;
}

void tok_bpe_word(const llmsq_tokenizer *t, tok_bpe_work *w, const char *s, size_t n)
{
    const struct tok_hf *h = t->hf;
    w->out_n = 0;
    if (n == 0) return;
    if (h->ignore_merges) {
        int32_t id = model_lookup(t, s, n);
        if (id >= 0) {
            tok_bpe_emit(w, id);
            return;
        }
    }
    /* Characters to symbols: the character's token, else its bytes' <0xXX> tokens, else
     * the unknown token (consecutive ones fused with fuse_unk). */
    w->sym_n = 0;
    w->heap_n = 0;
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0, l; i < n && !w->oom; i += l) {
        l = tok_utf8_clen((uint8_t)s[i]);
        if (l > n - i) l = n - i;
        int32_t id = model_lookup(t, s + i, l);
        if (id >= 0) {
            if (unk_pending >= 0) sym_add(w, unk_pending, unk_len);
            unk_pending = -1;
            sym_add(w, id, (uint32_t)l);
            continue;
        }
        if (h->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < l; k++) all = all && h->byte_id[(uint8_t)s[i + k]] >= 0;
            if (all) {
                /* tokenizers leaves a pending unknown in place here, so it lands after. */
                for (size_t k = 0; k < l; k++) sym_add(w, h->byte_id[(uint8_t)s[i + k]], 1);
                continue;
            }
        }
        if (h->unk < 0) continue;
        if (unk_pending >= 0 && h->fuse_unk) {
            unk_len += (uint32_t)l;
        } else {
            if (unk_pending >= 0) sym_add(w, unk_pending, unk_len);
            unk_pending = h->unk;
            unk_len = (uint32_t)l;
        }
    }
    if (unk_pending >= 0) sym_add(w, unk_pending, unk_len);
    if (w->oom) return;

    bpe_sym *sym = w->sym;
    uint32_t rank;
    int32_t merged;
    for (size_t i = 0; i + 1 < w->sym_n; i++)
        if (merge_get(h, sym[i].id, sym[i + 1].id, &rank, &merged)) heap_push(w, (bpe_ent){rank, (uint32_t)i, merged});
    while (w->heap_n > 0 && !w->oom) {
        bpe_ent top = heap_pop(w);
        bpe_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        bpe_sym right = sym[cur->next];
        /* Stale when the pair at this position no longer merges into the same token. */
        if (!merge_get(h, cur->id, right.id, &rank, &merged) || merged != top.merged) continue;
        sym[cur->next].len = 0;
        cur->id = top.merged;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next >= 0) sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && merge_get(h, sym[cur->prev].id, cur->id, &rank, &merged))
            heap_push(w, (bpe_ent){rank, (uint32_t)cur->prev, merged});
        if (cur->next >= 0 && merge_get(h, cur->id, sym[cur->next].id, &rank, &merged))
            heap_push(w, (bpe_ent){rank, top.pos, merged});
    }
    for (size_t i = 0; i < w->sym_n; i++)
        if (sym[i].len) tok_bpe_emit(w, sym[i].id);
}

void tok_bpe_emit(tok_bpe_work *w, int32_t id)
{
    if (w->out_n == w->out_cap) {
        size_t cap = w->out_cap ? w->out_cap * 2 : 64;
        int32_t *p = realloc(w->out, cap * sizeof *p);
        if (!p) {
            w->oom = true;
            return;
        }
        w->out = p;
        w->out_cap = cap;
    }
    w->out[w->out_n++] = id;
}

void tok_bpe_work_free(tok_bpe_work *w)
{
    free(w->sym);
    free(w->heap);
    free(w->out);
    memset(w, 0, sizeof *w);
}
