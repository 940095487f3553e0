/*
 * Normalizers of tokenizer.json: Unicode normal forms through utf8proc, and the string
 * rewrites (Lowercase, Strip, Replace, Prepend, ByteLevel). Each step reads one scratch
 * buffer and writes the other, so a chain costs two buffers whatever its length.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void tok_norm_free(tok_norm *n)
{
    tok_pattern_free(&n->pat);
    free(n->str);
    memset(n, 0, sizeof *n);
}

static llmsq_status norm_unicode(int kind, const char *s, size_t n, tok_buf *out)
{
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (kind) {
    case TN_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TN_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TN_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (n == 0) return LLMSQ_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, opt);
    if (r < 0) {
        free(dst);
        return llmsq_error(r == UTF8PROC_ERROR_NOMEM ? LLMSQ_STATUS_NOMEM : LLMSQ_STATUS_FORMAT,
                           "tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    tok_buf_put(out, dst, (size_t)r);
    free(dst);
    return LLMSQ_OK;
}

/* Rust's char::to_lowercase: the simple mapping, except U+0130, the one character whose
 * unconditional lowercase is two characters (i + combining dot above). */
static void norm_lower(const char *s, size_t n, tok_buf *out)
{
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = tok_utf8_get(s + i, n - i, &l);
        if (c < 0x80) {
            char ch = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            tok_buf_put(out, &ch, 1);
        } else if (c == 0x130) {
            tok_buf_put(out, "i\xCC\x87", 3);
        } else {
            tok_buf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
        i += l;
    }
}

static void norm_strip(const char *s, size_t n, bool left, bool right, tok_buf *out)
{
    size_t a = 0, b = n, l;
    while (left && a < b && tok_is_whitespace(tok_utf8_get(s + a, b - a, &l))) a += l;
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
        if (!tok_is_whitespace(tok_utf8_get(s + k, b - k, &l))) break;
        b = k;
    }
    tok_buf_put(out, s + a, b - a);
}

llmsq_status tok_normalize(const tok_norm *steps, int n_steps, const char *s, size_t n, tok_scratch *sc,
                           const char **res, size_t *res_n)
{
    const char *cur = s;
    size_t cur_n = n;
    for (int i = 0; i < n_steps; i++) {
        /* Write to whichever scratch buffer does not hold the input. */
        tok_buf *out = cur == sc->a.p ? &sc->b : &sc->a;
        out->n = 0;
        const tok_norm *st = &steps[i];
        switch (st->kind) {
        case TN_NFC: case TN_NFD: case TN_NFKC: case TN_NFKD:
            LLMSQ_TRY(norm_unicode(st->kind, cur, cur_n, out));
            break;
        case TN_LOWERCASE: norm_lower(cur, cur_n, out); break;
        case TN_STRIP: norm_strip(cur, cur_n, st->left, st->right, out); break;
        case TN_REPLACE:
            LLMSQ_TRY(tok_pattern_replace(&st->pat, cur, cur_n, st->str, st->str_len, sc->md, &sc->spans, out));
            break;
        case TN_PREPEND:
            /* NormalizedString::prepend does nothing on an empty string. */
            if (cur_n) tok_buf_put(out, st->str, st->str_len);
            tok_buf_put(out, cur, cur_n);
            break;
        case TN_BYTELEVEL:
            for (size_t k = 0; k < cur_n; k++) tok_buf_put_cp(out, tok_byte_char[(uint8_t)cur[k]]);
            break;
        default: break;
        }
        tok_buf_reserve(out, 0);
        if (out->oom) return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory normalizing %zu bytes", cur_n);
        cur = out->p;
        cur_n = out->n;
    }
    *res = cur;
    *res_n = cur_n;
    return LLMSQ_OK;
}
