/*
 * Pre-tokenizers of tokenizer.json (ByteLevel, Split, Metaspace, Digits, Whitespace,
 * WhitespaceSplit, Punctuation) and the named pipelines of GGUF's tokenizer.ggml.pre.
 * Each step maps a list of pieces to a new list, exactly as tokenizers'
 * PreTokenizedString::split does: every piece is split (or rewritten) on its own, and
 * empty pieces vanish.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
 * bytes are numbered from U+0100 up in byte order. */
const uint16_t tok_byte_char[256] = {
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10A, 0x10B,
    0x10C, 0x10D, 0x10E, 0x10F, 0x110, 0x111, 0x112, 0x113, 0x114, 0x115, 0x116, 0x117,
    0x118, 0x119, 0x11A, 0x11B, 0x11C, 0x11D, 0x11E, 0x11F, 0x120, 0x21, 0x22, 0x23,
    0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B,
    0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
    0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0x53,
    0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F,
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B,
    0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
    0x78, 0x79, 0x7A, 0x7B, 0x7C, 0x7D, 0x7E, 0x121, 0x122, 0x123, 0x124, 0x125,
    0x126, 0x127, 0x128, 0x129, 0x12A, 0x12B, 0x12C, 0x12D, 0x12E, 0x12F, 0x130, 0x131,
    0x132, 0x133, 0x134, 0x135, 0x136, 0x137, 0x138, 0x139, 0x13A, 0x13B, 0x13C, 0x13D,
    0x13E, 0x13F, 0x140, 0x141, 0x142, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0x143, 0xAE, 0xAF, 0xB0, 0xB1, 0xB2, 0xB3,
    0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF,
    0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB,
    0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7,
    0xD8, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xE0, 0xE1, 0xE2, 0xE3,
    0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xEB, 0xEC, 0xED, 0xEE, 0xEF,
    0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB,
    0xFC, 0xFD, 0xFE, 0xFF,
};

int tok_char_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 0x100 || cp > 0x143) return -1;
    static int16_t inv[68];
    static bool init;
    if (!__atomic_load_n(&init, __ATOMIC_ACQUIRE)) {
        int16_t tmp[68];
        for (int b = 0; b < 256; b++)
            if (tok_byte_char[b] >= 0x100) tmp[tok_byte_char[b] - 0x100] = (int16_t)b;
        memcpy(inv, tmp, sizeof tmp); /* every thread writes the same values */
        __atomic_store_n(&init, true, __ATOMIC_RELEASE);
    }
    return inv[cp - 0x100];
}

const char tok_re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char tok_re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
                             "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tok_re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                            "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_whitespace[] = "\\w+|[^\\w\\s]+";

void tok_pretok_free(tok_pretok *p)
{
    tok_pattern_free(&p->pat);
    memset(p, 0, sizeof *p);
}

/* tokenizers' Pattern for Fn(char) -> bool: every matching character is a match of its own. */
static void find_chars(const char *s, size_t n, bool (*pred)(uint32_t), tok_spans *out)
{
    out->n = 0;
    if (n == 0) {
        tok_spans_push(out, 0, 0, false);
        return;
    }
    size_t last = 0, l;
    for (size_t i = 0; i < n; i += l) {
        uint32_t c = tok_utf8_get(s + i, n - i, &l);
        if (!pred(c)) continue;
        if (last < i) tok_spans_push(out, (uint32_t)last, (uint32_t)i, false);
        tok_spans_push(out, (uint32_t)i, (uint32_t)(i + l), true);
        last = i + l;
    }
    if (last < n) tok_spans_push(out, (uint32_t)last, (uint32_t)n, false);
}

/* Adds the kept spans of s as pieces; a piece keeps `first` only at offset 0. */
static void add_spans(tok_pieces *out, const tok_spans *sp, const char *s, bool first)
{
    for (size_t i = 0; i < sp->n; i++)
        if (!sp->v[i].match)
            tok_pieces_add(out, s + sp->v[i].start, sp->v[i].end - sp->v[i].start, first && sp->v[i].start == 0);
}

static void add_bytelevel(tok_pieces *out, const char *s, size_t n, bool first, tok_buf *tmp)
{
    tmp->n = 0;
    for (size_t k = 0; k < n; k++) tok_buf_put_cp(tmp, tok_byte_char[(uint8_t)s[k]]);
    if (tmp->oom) out->buf.oom = true;
    else tok_pieces_add(out, tmp->p, tmp->n, first);
}

llmsq_status tok_pretokenize_step(const tok_pretok *p, const tok_pieces *in, tok_pieces *out, tok_scratch *sc)
{
    tok_pieces_clear(out);
    tok_spans *sp = &sc->spans;
    for (size_t i = 0; i < in->n && !out->buf.oom; i++) {
        const char *s = in->buf.p + in->v[i].off;
        size_t n = in->v[i].len;
        bool first = in->v[i].first;
        switch (p->kind) {
        case TP_BYTELEVEL: {
            const char *t = s;
            size_t tn = n;
            if (p->add_prefix_space && s[0] != ' ') {
                sc->a.n = 0;
                tok_buf_put(&sc->a, " ", 1);
                tok_buf_put(&sc->a, s, n);
                if (sc->a.oom) break;
                t = sc->a.p;
                tn = sc->a.n;
            }
            if (!p->use_regex) {
                add_bytelevel(out, t, tn, first, &sc->b);
                break;
            }
            LLMSQ_TRY(tok_pattern_find(&p->pat, t, tn, sc->md, sp));
            for (size_t k = 0; k < sp->n; k++)
                add_bytelevel(out, t + sp->v[k].start, sp->v[k].end - sp->v[k].start, first && sp->v[k].start == 0,
                              &sc->b);
            break;
        }
        case TP_SPLIT:
        case TP_WHITESPACE:
            LLMSQ_TRY(tok_pattern_find(&p->pat, s, n, sc->md, sp));
            tok_spans_apply(sp, p->kind == TP_SPLIT ? p->behavior : TB_REMOVED, p->kind == TP_SPLIT ? p->invert : true);
            add_spans(out, sp, s, first);
            break;
        case TP_METASPACE: {
            tok_buf *m = &sc->a;
            m->n = 0;
            bool starts = n >= p->rep_len && memcmp(s, p->rep, p->rep_len) == 0;
            /* A leading ' ' becomes the replacement too, so test the rewritten start. */
            if (!starts && s[0] == ' ') starts = true;
            if (!starts && (p->scheme == TS_ALWAYS || (p->scheme == TS_FIRST && first))) tok_buf_put(m, p->rep, p->rep_len);
            for (size_t k = 0; k < n; k++) {
                if (s[k] == ' ') tok_buf_put(m, p->rep, p->rep_len);
                else tok_buf_put(m, s + k, 1);
            }
            if (m->oom) break;
            if (!p->split) {
                tok_pieces_add(out, m->p, m->n, first);
                break;
            }
            LLMSQ_TRY(tok_pattern_find(&p->pat, m->p, m->n, sc->md, sp));
            tok_spans_apply(sp, TB_MERGED_NEXT, false);
            add_spans(out, sp, m->p, first);
            break;
        }
        case TP_DIGITS:
            find_chars(s, n, tok_is_numeric, sp);
            tok_spans_apply(sp, p->individual_digits ? TB_ISOLATED : TB_CONTIGUOUS, false);
            add_spans(out, sp, s, first);
            break;
        case TP_WHITESPACE_SPLIT:
            find_chars(s, n, tok_is_whitespace, sp);
            add_spans(out, sp, s, first);
            break;
        case TP_PUNCTUATION:
            find_chars(s, n, tok_is_punct, sp);
            tok_spans_apply(sp, p->behavior, false);
            add_spans(out, sp, s, first);
            break;
        default: break;
        }
        if (sp->oom || sc->a.oom || sc->b.oom) out->buf.oom = true;
    }
    if (out->buf.oom) return llmsq_error(LLMSQ_STATUS_NOMEM, "tokenizer: out of memory in the pre-tokenizer");
    return LLMSQ_OK;
}

/* ---- named pipelines (GGUF tokenizer.ggml.pre) ------------------------------------------------ */

static llmsq_status add_pre(struct tok_hf *h, tok_pretok p, const char *re, const char *source)
{
    tok_pretok *v = realloc(h->pre, (size_t)(h->n_pre + 1) * sizeof *v);
    if (!v) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    h->pre = v;
    if (re) LLMSQ_TRY(tok_pattern_regex(&p.pat, re, strlen(re), source));
    h->pre[h->n_pre++] = p;
    return LLMSQ_OK;
}

llmsq_status tok_pre_from_name(struct tok_hf *h, const char *name, size_t len, const char *source)
{
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    tok_pretok split = {.kind = TP_SPLIT, .behavior = TB_ISOLATED};
    tok_pretok bytes = {.kind = TP_BYTELEVEL};
    if (IS("gpt-2") || IS("gpt2")) {
        bytes.use_regex = true;
        return add_pre(h, bytes, tok_re_gpt2, source);
    }
    if (IS("llama-bpe") || IS("llama3") || IS("llama-v3")) {
        h->ignore_merges = true; /* as llama.cpp, and Llama-3's tokenizer.json */
        LLMSQ_TRY(add_pre(h, split, tok_re_llama3, source));
        return add_pre(h, bytes, NULL, source);
    }
    if (IS("qwen2")) {
        LLMSQ_TRY(add_pre(h, split, tok_re_qwen2, source));
        return add_pre(h, bytes, NULL, source);
    }
    if (IS("default")) {
        /* llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT: four regexes applied one after the
         * other, each keeping matches and gaps as pieces. */
        static const char *const re[] = {
            "[\\p{P}\\$\\+<=>\\^~\\|]+",
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
            "\\p{N}+",
            "[0-9][0-9][0-9]",
        };
        for (int i = 0; i < 4; i++) LLMSQ_TRY(add_pre(h, split, re[i], source));
        return add_pre(h, bytes, NULL, source);
    }
#undef IS
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                       "%s: pre-tokenizer '%.*s' is not supported (known: gpt-2, llama-bpe, qwen2, default)", source,
                       (int)(len > 64 ? 64 : len), name);
}

llmsq_status tok_pretok_whitespace(tok_pretok *p, const char *source)
{
    return tok_pattern_regex(&p->pat, re_whitespace, sizeof re_whitespace - 1, source);
}
