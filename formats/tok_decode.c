/*
 * Decoding for the Hugging Face pipeline: ids -> token strings (special tokens skipped)
 * -> the decoder chain (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip) ->
 * joined text, as tokenizers' Tokenizer::decode(ids, skip_special_tokens=true).
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

void tok_dec_free(tok_dec *d)
{
    tok_pattern_free(&d->pat);
    free(d->str);
    memset(d, 0, sizeof *d);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ByteFallback's test: exactly "<0xXX>" (either case of hex digits, as from_str_radix). */
static int fallback_byte(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* One decoder step: the tokens of in become the tokens of out. */
static llmsq_status decode_step(const tok_dec *d, const tok_pieces *in, tok_pieces *out, tok_scratch *sc)
{
    tok_pieces_clear(out);
    tok_buf *t = &sc->a;
    switch (d->kind) {
    case TD_BYTELEVEL:
        /* All tokens become one: each token's characters mapped back to bytes (or its
         * own bytes when a character is outside the map), then read as lossy UTF-8. */
        t->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, start = t->n, l;
            bool ok = true;
            for (size_t k = 0; k < n && ok; k += l) {
                int b = tok_char_byte(tok_utf8_get(s + k, n - k, &l));
                if (b < 0) ok = false;
                else tok_buf_put(t, &(char){(char)b}, 1);
            }
            if (!ok) {
                t->n = start;
                tok_buf_put(t, s, n);
            }
        }
        sc->b.n = 0;
        tok_utf8_put_lossy(&sc->b, t->p, t->n);
        tok_pieces_push(out, sc->b.p, sc->b.n, true);
        break;
    case TD_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, l;
            t->n = 0;
            for (size_t k = 0; k < n; k += l) {
                uint32_t c = tok_utf8_get(s + k, n - k, &l);
                if (c != d->ch) tok_buf_put(t, s + k, l);
                else if (i != 0 || d->scheme == TS_NEVER) tok_buf_put(t, " ", 1);
            }
            tok_pieces_push(out, t->p, t->n, i == 0);
        }
        break;
    case TD_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            t->n = 0;
            LLMSQ_TRY(tok_pattern_replace(&d->pat, in->buf.p + in->v[i].off, in->v[i].len, d->str, d->str_len, sc->md,
                                          &sc->spans, t));
            tok_pieces_push(out, t->p, t->n, i == 0);
        }
        break;
    case TD_BYTEFALLBACK: {
        t->n = 0; /* the pending bytes */
        for (size_t i = 0; i <= in->n; i++) {
            const char *s = i < in->n ? in->buf.p + in->v[i].off : NULL;
            size_t n = i < in->n ? in->v[i].len : 0;
            int b = s ? fallback_byte(s, n) : -1;
            if (b >= 0) {
                tok_buf_put(t, &(char){(char)b}, 1);
                continue;
            }
            if (t->n) {
                /* A run that is not valid UTF-8 as a whole gives one U+FFFD per byte. */
                if (tok_utf8_valid(t->p, t->n)) tok_pieces_push(out, t->p, t->n, false);
                else
                    for (size_t k = 0; k < t->n; k++) tok_pieces_push(out, "\xEF\xBF\xBD", 3, false);
                t->n = 0;
            }
            if (s) tok_pieces_push(out, s, n, false);
        }
        break;
    }
    case TD_FUSE:
        t->n = 0;
        for (size_t i = 0; i < in->n; i++) tok_buf_put(t, in->buf.p + in->v[i].off, in->v[i].len);
        tok_pieces_push(out, t->p, t->n, true);
        break;
    case TD_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, a = 0, b = n, l;
            for (int k = 0; k < d->start && a < b; k++) {
                if (tok_utf8_get(s + a, b - a, &l) != d->ch) break;
                a += l;
            }
            for (int k = 0; k < d->stop && b > a; k++) {
                size_t j = b - 1;
                while (j > a && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                if (tok_utf8_get(s + j, b - j, &l) != d->ch) break;
                b = j;
            }
            tok_pieces_push(out, s + a, b - a, i == 0);
        }
        break;
    default: break;
    }
    if (out->buf.oom || t->oom || sc->b.oom || sc->spans.oom)
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory decoding");
    return LLMSQ_OK;
}

llmsq_status tok_hf_decode(const llmsq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    const struct tok_hf *h = t->hf;
    tok_pieces lists[2] = {{0}};
    tok_scratch sc = {0};
    llmsq_status st = LLMSQ_OK;
    sc.md = pcre2_match_data_create(1, NULL);
    if (!sc.md) st = llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n) {
            st = llmsq_error(LLMSQ_STATUS_ARG, "tokenizer: id %d at position %zu is outside the vocabulary (%lld)",
                             (int)id, i, (long long)t->n);
            break;
        }
        /* Holes in the id space decode to nothing, as tokenizers' id_to_token -> None. */
        if (t->type[id] == LLMSQ_TOKEN_CONTROL || t->len[id] == 0) continue;
        const char *piece = h->dec_piece && h->dec_piece[id] ? h->dec_piece[id] : t->piece[id];
        tok_pieces_push(&lists[0], piece, piece == t->piece[id] ? t->len[id] : strlen(piece), lists[0].n == 0);
    }
    int cur = 0;
    for (int k = 0; k < h->n_dec && st == LLMSQ_OK; k++) {
        st = decode_step(&h->dec[k], &lists[cur], &lists[1 - cur], &sc);
        cur = 1 - cur;
    }
    tok_buf out = {0};
    if (st == LLMSQ_OK) {
        for (size_t i = 0; i < lists[cur].n; i++) {
            if (i > 0 && !h->has_decoder) tok_buf_put(&out, " ", 1);
            tok_buf_put(&out, lists[cur].buf.p + lists[cur].v[i].off, lists[cur].v[i].len);
        }
        tok_buf_reserve(&out, 0);
        if (out.oom || lists[0].buf.oom) st = llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
    }
    tok_pieces_free(&lists[0]);
    tok_pieces_free(&lists[1]);
    free(sc.a.p);
    free(sc.b.p);
    free(sc.spans.v);
    pcre2_match_data_free(sc.md);
    if (st != LLMSQ_OK) {
        free(out.p);
        return st;
    }
    out.p[out.n] = 0;
    *text = out.p;
    if (len) *len = out.n;
    return LLMSQ_OK;
}
