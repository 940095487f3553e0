/*
 * Shared machinery of the Hugging Face tokenizer pipeline: byte buffers, UTF-8, the
 * Unicode predicates Rust's char methods define, and patterns (literal or regex) with
 * tokenizers' splitting rules.
 *
 * tokenizers compiles its regexes with Oniguruma; PCRE2 with UTF and UCP agrees on the
 * patterns that tokenizer.json files use once `\s` is spelled out as Oniguruma's
 * White_Space set (PCRE2's \s also takes U+180E).
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- buffers -------------------------------------------------------------------------------- */

bool tok_buf_reserve(tok_buf *b, size_t extra)
{
    if (b->oom) return false;
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tok_buf_put(tok_buf *b, const void *s, size_t n)
{
    if (!tok_buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

void tok_buf_put_cp(tok_buf *b, uint32_t cp)
{
    char u[4];
    tok_buf_put(b, u, tok_utf8_put(cp, u));
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

uint32_t tok_utf8_get(const char *s, size_t n, size_t *len)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t l = tok_utf8_clen(u[0]);
    if (l > n) l = n;
    *len = l;
    switch (l) {
    case 1: return u[0];
    case 2: return (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
    case 3: return (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    default: return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 | (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
    }
}

size_t tok_utf8_put(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed character at s, or 0 with *bad set to the length of the
 * maximal ill-formed subpart (Unicode 3.9, "U+FFFD substitution of maximal subparts"). */
static size_t utf8_scan(const uint8_t *s, size_t n, size_t *bad)
{
    uint8_t c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n || s[k] < lo || s[k] > hi) {
            *bad = k;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

bool tok_utf8_valid(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t bad;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_scan(u + i, n - i, &bad);
        if (!l) return false;
        i += l;
    }
    return true;
}

void tok_utf8_put_lossy(tok_buf *b, const char *s, size_t n)
{
    if (n == 0) return; /* s may be NULL then */
    const uint8_t *u = (const uint8_t *)s;
    size_t bad, run = 0;
    for (size_t i = 0; i < n;) {
        size_t l = u[i] < 0x80 ? 1 : utf8_scan(u + i, n - i, &bad);
        if (l) {
            i += l;
            run += l;
            continue;
        }
        tok_buf_put(b, s + i - run, run);
        tok_buf_put(b, "\xEF\xBF\xBD", 3);
        run = 0;
        i += bad;
    }
    tok_buf_put(b, s + n - run, run);
}

llmsq_status tok_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_n)
{
    *out = NULL;
    *out_n = n;
    if (tok_utf8_valid(s, n)) return LLMSQ_OK;
    tok_buf b = {0};
    tok_utf8_put_lossy(&b, s, n);
    if (b.oom) {
        free(b.p);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory for %zu bytes of text", n);
    }
    *out = b.p;
    *out_n = b.n;
    return LLMSQ_OK;
}

/* ---- Unicode predicates ----------------------------------------------------------------------- */

bool tok_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

bool tok_is_numeric(uint32_t c)
{
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool tok_is_alnum(uint32_t c)
{
    if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_ME) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

bool tok_is_punct(uint32_t c)
{
    if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                         (c >= 0x7B && c <= 0x7E);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* ---- patterns -------------------------------------------------------------------------------- */

llmsq_status tok_pattern_literal(tok_pattern *p, const char *s, size_t n)
{
    memset(p, 0, sizeof *p);
    p->lit = malloc(n + 1);
    if (!p->lit) return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory");
    if (n) memcpy(p->lit, s, n);
    p->lit[n] = 0;
    p->lit_len = n;
    return LLMSQ_OK;
}

/* Oniguruma's \s under Unicode: the White_Space property, written for a character class. */
static const char k_ws_class[] = "\\t\\n\\x0B\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
                                 "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

/* Rewrites \s (anywhere) and \S (outside classes) into explicit White_Space sets. */
static char *translate_regex(const char *re, size_t n, size_t *out_n)
{
    tok_buf b = {0};
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char e = re[i + 1];
            if (e == 's') {
                if (!in_class) tok_buf_put(&b, "[", 1);
                tok_buf_put(&b, k_ws_class, sizeof k_ws_class - 1);
                if (!in_class) tok_buf_put(&b, "]", 1);
            } else if (e == 'S' && !in_class) {
                tok_buf_put(&b, "[^", 2);
                tok_buf_put(&b, k_ws_class, sizeof k_ws_class - 1);
                tok_buf_put(&b, "]", 1);
            } else {
                tok_buf_put(&b, re + i, 2);
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            tok_buf_put(&b, re + i, 1);
            /* A ']' right after '[' or '[^' is a literal member. */
            if (i + 1 < n && re[i + 1] == '^') tok_buf_put(&b, re + ++i, 1);
            if (i + 1 < n && re[i + 1] == ']') tok_buf_put(&b, re + ++i, 1);
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && re[i + 1] == ':') {
            const char *end = strstr(re + i, ":]");
            size_t l = end && (size_t)(end - re) < n ? (size_t)(end - re) + 2 - i : 1;
            tok_buf_put(&b, re + i, l);
            i += l - 1;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        tok_buf_put(&b, &c, 1);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    tok_buf_put(&b, "", 0);
    *out_n = b.n;
    return b.p ? b.p : strdup("");
}

llmsq_status tok_pattern_regex(tok_pattern *p, const char *re, size_t n, const char *source)
{
    memset(p, 0, sizeof *p);
    size_t tn;
    char *t = translate_regex(re, n, &tn);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    int err;
    PCRE2_SIZE off;
    p->re = pcre2_compile((PCRE2_SPTR)t, tn, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    free(t);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: regex '%.*s' does not compile: %s", source,
                           (int)(n > 200 ? 200 : n), re, (const char *)msg);
    }
    /* Without JIT the interpreter still gives the same matches, only slower. */
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);
    return LLMSQ_OK;
}

void tok_pattern_free(tok_pattern *p)
{
    free(p->lit);
    pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

void tok_spans_push(tok_spans *s, uint32_t start, uint32_t end, bool match)
{
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        tok_span *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->oom = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (tok_span){start, end, match};
}

static llmsq_status regex_find(const tok_pattern *p, const char *s, size_t n, pcre2_match_data *md, tok_spans *out)
{
    size_t prev = 0, last_end = 0, last_match_end = 0;
    bool have_last = false;
    while (last_end <= n) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return llmsq_error(LLMSQ_STATUS_FORMAT, "tokenizer: regex match failed at byte %zu: %s", last_end,
                               (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms < last_end || me < ms || me > n) /* \K and friends: not a split a pattern can make */
            return llmsq_error(LLMSQ_STATUS_FORMAT, "tokenizer: regex match [%zu, %zu) is not a forward split", ms, me);
        /* Oniguruma's find_iter: an empty match where the previous match ended is skipped
         * by moving the search one character forward. */
        if (ms == me && have_last && me == last_match_end) {
            if (last_end >= n) break;
            last_end += tok_utf8_clen((uint8_t)s[last_end]);
            continue;
        }
        if (prev != ms) tok_spans_push(out, (uint32_t)prev, (uint32_t)ms, false);
        tok_spans_push(out, (uint32_t)ms, (uint32_t)me, true);
        prev = last_end = last_match_end = me;
        have_last = true;
    }
    if (prev != n) tok_spans_push(out, (uint32_t)prev, (uint32_t)n, false);
    return LLMSQ_OK;
}

llmsq_status tok_pattern_find(const tok_pattern *p, const char *s, size_t n, pcre2_match_data *md, tok_spans *out)
{
    out->n = 0;
    if (n == 0) {
        tok_spans_push(out, 0, 0, false);
    } else if (p->re) {
        LLMSQ_TRY(regex_find(p, s, n, md, out));
    } else if (p->lit_len == 0) {
        tok_spans_push(out, 0, (uint32_t)n, false);
    } else {
        size_t prev = 0;
        for (size_t i = 0; i + p->lit_len <= n;) {
            const char *hit = memmem(s + i, n - i, p->lit, p->lit_len);
            if (!hit) break;
            size_t ms = (size_t)(hit - s);
            if (prev != ms) tok_spans_push(out, (uint32_t)prev, (uint32_t)ms, false);
            tok_spans_push(out, (uint32_t)ms, (uint32_t)(ms + p->lit_len), true);
            prev = i = ms + p->lit_len;
        }
        if (prev != n) tok_spans_push(out, (uint32_t)prev, (uint32_t)n, false);
    }
    if (out->oom) return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory splitting %zu bytes", n);
    return LLMSQ_OK;
}

llmsq_status tok_pattern_replace(const tok_pattern *p, const char *s, size_t n, const char *with, size_t with_len,
                                 pcre2_match_data *md, tok_spans *sp, tok_buf *out)
{
    LLMSQ_TRY(tok_pattern_find(p, s, n, md, sp));
    for (size_t i = 0; i < sp->n; i++) {
        if (sp->v[i].match) tok_buf_put(out, with, with_len);
        else tok_buf_put(out, s + sp->v[i].start, sp->v[i].end - sp->v[i].start);
    }
    return LLMSQ_OK;
}

void tok_spans_apply(tok_spans *s, int behavior, bool invert)
{
    if (invert)
        for (size_t i = 0; i < s->n; i++) s->v[i].match = !s->v[i].match;
    size_t w = 0;
    bool prev_match = false;
    switch (behavior) {
    case TB_REMOVED: return;
    case TB_ISOLATED:
        for (size_t i = 0; i < s->n; i++) s->v[i].match = false;
        return;
    case TB_MERGED_PREV:
        for (size_t i = 0; i < s->n; i++) {
            tok_span c = s->v[i];
            if (c.match && !prev_match && w > 0) s->v[w - 1].end = c.end;
            else s->v[w++] = (tok_span){c.start, c.end, false};
            prev_match = c.match;
        }
        break;
    case TB_MERGED_NEXT:
        /* Folded from the right, as tokenizers does. */
        for (size_t i = s->n; i-- > 0;) {
            tok_span c = s->v[i];
            if (c.match && !prev_match && w > 0) s->v[s->n - w].start = c.start;
            else s->v[s->n - ++w] = (tok_span){c.start, c.end, false};
            prev_match = c.match;
        }
        memmove(s->v, s->v + s->n - w, w * sizeof *s->v);
        break;
    case TB_CONTIGUOUS:
        for (size_t i = 0; i < s->n; i++) {
            tok_span c = s->v[i];
            if (c.match == prev_match && w > 0) s->v[w - 1].end = c.end;
            else s->v[w++] = (tok_span){c.start, c.end, false};
            prev_match = c.match;
        }
        break;
    default: break;
    }
    s->n = w;
}

/* ---- pieces ----------------------------------------------------------------------------------- */

void tok_pieces_add(tok_pieces *l, const char *s, size_t n, bool first)
{
    if (n) tok_pieces_push(l, s, n, first);
}

void tok_pieces_push(tok_pieces *l, const char *s, size_t n, bool first)
{
    if (l->buf.oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        tok_piece *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->buf.oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    size_t off = l->buf.n;
    tok_buf_put(&l->buf, s, n);
    l->v[l->n++] = (tok_piece){(uint32_t)off, (uint32_t)n, first};
}

void tok_pieces_clear(tok_pieces *l)
{
    l->n = 0;
    l->buf.n = 0;
}

void tok_pieces_free(tok_pieces *l)
{
    free(l->v);
    free(l->buf.p);
    memset(l, 0, sizeof *l);
}
