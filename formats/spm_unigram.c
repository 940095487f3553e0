/*
 * SentencePiece unigram model: Viterbi segmentation of normalized text, as
 * unigram_model.cc's Model::EncodeOptimized (the default encoder) and the id loop of
 * SentencePieceProcessor::Encode.
 *
 * The rules that decide ties and rounding are those of the library the fixtures were made
 * with (sentencepiece 0.2.3; read from its compiled EncodeOptimized, which differs from
 * the older published source in the last three points), kept on purpose:
 *  - best paths are found per byte position in one left-to-right pass; a candidate
 *    replaces the stored one only when strictly better, so among equal scores the piece
 *    that starts earliest (the longest last piece) wins;
 *  - a character with no single-character piece gets an unknown node scored
 *    min_score - 10 (kUnkPenalty), min_score the lowest NORMAL score (FLT_MAX if none);
 *  - UNUSED pieces are in the trie but never become nodes;
 *  - all path arithmetic is float (older releases formed candidates in double);
 *  - a USER_DEFINED piece of n bytes scores (float)((n - 1) * 0.1), whatever the other
 *    scores (older releases: n * max_score - 0.1);
 *  - when the best score at the current start leaves [-1e5, 1e5], it is subtracted (in
 *    float) from every path already ending between there and the furthest end reached,
 *    and the pass goes on from 0. Long texts cross that bound every few thousand pieces,
 *    so this decides ties on real corpora, and it keeps hostile scores from overflowing.
 * Pieces are found with a trie over NORMAL, USER_DEFINED and UNUSED pieces (the library's
 * pieces_ map); CONTROL, UNKNOWN and BYTE pieces are never matched in text.
 */
#include "spm-impl.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define UNK_PENALTY 10.0f

/* A trie whose edges live in one hash table keyed by (parent node, byte): one probe per
 * input byte, whatever the fan-out, and no per-node arrays. */
struct spm_unigram {
    float     min_score, unk_score;
    int32_t  *value;      /* [n_nodes] piece id ending at the node, -1 */
    uint32_t  n_nodes;
    uint32_t  root[256];  /* children of the root (node 0), 0 = none */
    uint64_t *edge_key;   /* (parent << 8 | byte) + 1, 0 = empty */
    uint32_t *edge_child;
    uint32_t  emask;
};

void spm_unigram_free(struct spm_unigram *u)
{
    if (!u) return;
    free(u->value);
    free(u->edge_key);
    free(u->edge_child);
    free(u);
}

static inline uint32_t edge_slot(const struct spm_unigram *u, uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & u->emask;
}

static inline uint32_t trie_child(const struct spm_unigram *u, uint32_t node, uint8_t c)
{
    if (node == 0) return u->root[c];
    uint64_t key = ((uint64_t)node << 8 | c) + 1;
    for (uint32_t i = edge_slot(u, key);; i = (i + 1) & u->emask) {
        if (u->edge_key[i] == key) return u->edge_child[i];
        if (u->edge_key[i] == 0) return 0;
    }
}

static bool in_trie(int32_t type)
{
    return type == LLMSQ_TOKEN_NORMAL || type == LLMSQ_TOKEN_USER_DEFINED || type == LLMSQ_TOKEN_UNUSED;
}

llmsq_status spm_unigram_init(llmsq_tokenizer *t, const char *source)
{
    if (t->unk < 0 || t->type[t->unk] != LLMSQ_TOKEN_UNKNOWN)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: unigram model without an unknown piece", source);

    size_t total = 1;
    for (int64_t i = 0; i < t->n; i++)
        if (in_trie(t->type[i])) total += t->len[i];
    if (total >= UINT32_MAX / 4)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: unigram pieces too long in total (%zu bytes)", source, total);
    uint32_t cap = 16;
    while (cap < total * 2) cap <<= 1;

    struct spm_unigram *u = calloc(1, sizeof *u);
    if (u) {
        u->value = malloc(total * sizeof *u->value);
        u->edge_key = calloc(cap, sizeof *u->edge_key);
        u->edge_child = malloc(cap * sizeof *u->edge_child);
        u->emask = cap - 1;
    }
    if (!u || !u->value || !u->edge_key || !u->edge_child) {
        spm_unigram_free(u);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for the unigram trie", source);
    }
    u->value[0] = -1;
    u->n_nodes = 1;
    u->min_score = FLT_MAX;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->type[i] == LLMSQ_TOKEN_NORMAL) {
            /* As std::min, so a NaN score changes nothing. */
            if (t->score[i] < u->min_score) u->min_score = t->score[i];
        }
        if (!in_trie(t->type[i])) continue;
        uint32_t node = 0;
        for (uint32_t k = 0; k < t->len[i]; k++) {
            uint8_t c = (uint8_t)t->piece[i][k];
            uint32_t next = trie_child(u, node, c);
            if (!next) {
                next = u->n_nodes++;
                u->value[next] = -1;
                if (node == 0) {
                    u->root[c] = next;
                } else {
                    uint64_t key = ((uint64_t)node << 8 | c) + 1;
                    uint32_t s = edge_slot(u, key);
                    while (u->edge_key[s]) s = (s + 1) & u->emask;
                    u->edge_key[s] = key;
                    u->edge_child[s] = next;
                }
            }
            node = next;
        }
        u->value[node] = (int32_t)i; /* pieces are unique (spm_build) */
    }
    u->unk_score = u->min_score - UNK_PENALTY;
    t->ug = u;
    return LLMSQ_OK;
}

typedef struct ug_best {
    float   score; /* best path score ending here */
    int32_t start; /* where its last piece starts, -1 = no path yet */
    int32_t id;
} ug_best;

llmsq_status spm_unigram_encode(const llmsq_tokenizer *t, const char *norm, size_t n, int32_t *ids, size_t *n_ids)
{
    static const uint8_t one_char_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    const struct spm_unigram *u = t->ug;
    if (n == 0) return LLMSQ_OK;
    if (n >= INT32_MAX)
        return llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: %zu bytes of normalized text are too many to encode", n);
    ug_best *best = malloc((n + 1) * sizeof *best);
    int32_t *path = malloc(n * sizeof *path);
    if (!best || !path) {
        free(best);
        free(path);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory encoding %zu bytes", n);
    }
    for (size_t i = 0; i <= n; i++) best[i] = (ug_best){0.0f, -1, -1};

    size_t max_end = 0; /* furthest position any candidate has reached */
    for (size_t start = 0; start < n;) {
        float here = best[start].score;
        if (here < -1e5f || here > 1e5f) {
            for (size_t k = start; k <= max_end; k++)
                if (k == start || best[k].start >= 0) best[k].score -= here;
            here = 0.0f;
        }
        size_t mblen = one_char_len[(uint8_t)norm[start] >> 4];
        if (mblen > n - start) mblen = n - start;
        bool has_single = false;
        uint32_t node = 0;
        for (size_t end = start; end < n;) {
            node = trie_child(u, node, (uint8_t)norm[end++]);
            if (!node) break;
            int32_t id = u->value[node];
            if (id < 0 || t->type[id] == LLMSQ_TOKEN_UNUSED) continue;
            if (end > max_end) max_end = end;
            size_t length = end - start;
            float score = t->type[id] == LLMSQ_TOKEN_USER_DEFINED ? (float)((double)(int)(length - 1) * 0.1)
                                                                    : t->score[id];
            float cand = score + here;
            ug_best *b = &best[end];
            if (b->start < 0 || cand > b->score) {
                b->score = cand;
                b->start = (int32_t)start;
                b->id = id;
            }
            if (length == mblen) has_single = true;
        }
        if (!has_single) {
            float cand = u->unk_score + here;
            ug_best *b = &best[start + mblen];
            if (b->start < 0 || cand > b->score) {
                b->score = cand;
                b->start = (int32_t)start;
                b->id = t->unk;
            }
            if (start + mblen > max_end) max_end = start + mblen;
        }
        start += mblen;
    }

    /* Backtrack; path[] holds the end offsets of the chosen pieces, last first. */
    size_t np = 0;
    for (size_t end = n; end > 0; end = (size_t)best[end].start) path[np++] = (int32_t)end;

    bool prev_unk = false;
    size_t k = *n_ids;
    while (np > 0) {
        size_t end = (size_t)path[--np], start = (size_t)best[end].start;
        int32_t id = best[end].id;
        bool is_unk = t->type[id] == LLMSQ_TOKEN_UNKNOWN;
        if (is_unk && t->opt.byte_fallback) {
            for (size_t i = start; i < end; i++) ids[k++] = t->byte_piece[(uint8_t)norm[i]];
        } else if (!(is_unk && prev_unk)) {
            /* Consecutive unknown characters become one unknown piece, as the processor does. */
            ids[k++] = id;
        }
        prev_unk = is_unk;
    }
    *n_ids = k;
    free(best);
    free(path);
    return LLMSQ_OK;
}
