/*
 * Hugging Face tokenizer.json reader. Every field that changes the ids is read; a
 * component type that would change them in a way not implemented here (WordPiece,
 * Unigram, Precompiled charsmaps, BERT normalizers, ...) is an UNSUPPORTED error naming
 * it, never a silent approximation. Field defaults are tokenizers' serde defaults.
 */
#include "tok_impl.h"

#include "llmsq/runtime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jctx {
    const char      *src;
    llmsq_tokenizer *t;
    struct tok_hf   *h;
} jctx;

static llmsq_status bad(const jctx *c, const char *what, const char *detail)
{
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s%s%s", c->src, what, detail ? ": " : "", detail ? detail : "");
}

static const char *jtype(const json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "type"));
    return s ? s : "";
}

static bool jbool(const json_t *o, const char *key, bool def)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static llmsq_status jstr(const jctx *c, const json_t *o, const char *key, const char **s, size_t *n)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        char what[96];
        snprintf(what, sizeof what, "\"%s\" of a %s must be a string", key, jtype(o)[0] ? jtype(o) : "component");
        return bad(c, what, NULL);
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    return LLMSQ_OK;
}

static llmsq_status dupstr(const jctx *c, const char *s, size_t n, char **out, size_t *out_n)
{
    *out = malloc(n + 1);
    if (!*out) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    memcpy(*out, s, n);
    (*out)[n] = 0;
    if (out_n) *out_n = n;
    return LLMSQ_OK;
}

/* {"String": s} or {"Regex": r}. */
static llmsq_status jpattern(const jctx *c, const json_t *o, tok_pattern *p)
{
    const json_t *pat = json_object_get(o, "pattern");
    const json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) return tok_pattern_literal(p, json_string_value(s), json_string_length(s));
    if (json_is_string(r)) return tok_pattern_regex(p, json_string_value(r), json_string_length(r), c->src);
    return bad(c, "a pattern must be {\"String\": ...} or {\"Regex\": ...}", jtype(o));
}

/* One character given as a string (Metaspace replacement, Strip content). */
static llmsq_status jchar(const jctx *c, const json_t *o, const char *key, uint32_t *cp, char rep[5], uint8_t *rep_len)
{
    const char *s;
    size_t n, l;
    LLMSQ_TRY(jstr(c, o, key, &s, &n));
    if (n == 0 || n > 4 || !tok_utf8_valid(s, n) || (tok_utf8_get(s, n, &l), l != n))
        return bad(c, "expected a single character", key);
    *cp = tok_utf8_get(s, n, &l);
    if (rep) {
        memcpy(rep, s, n);
        rep[n] = 0;
        *rep_len = (uint8_t)n;
    }
    return LLMSQ_OK;
}

static int jbehavior(const json_t *o, const char *def)
{
    const char *b = json_string_value(json_object_get(o, "behavior"));
    if (!b) b = def;
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (strcmp(b, names[i]) == 0) return i;
    return -1;
}

static int jscheme(const json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "prepend_scheme"));
    if (!s) return jbool(o, "add_prefix_space", true) ? TS_ALWAYS : TS_NEVER;
    return strcmp(s, "always") == 0 ? TS_ALWAYS : strcmp(s, "first") == 0 ? TS_FIRST : strcmp(s, "never") == 0 ? TS_NEVER : -1;
}

static llmsq_status unsupported(const jctx *c, const char *kind, const char *type)
{
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: %s type '%s' is not supported", c->src, kind,
                       type[0] ? type : "(missing)");
}

static void *grow(void *p, int n, size_t size)
{
    return realloc(p, (size_t)(n + 1) * size);
}

/* ---- normalizer ----------------------------------------------------------------------------------- */

static llmsq_status read_normalizer(jctx *c, const json_t *o, int depth)
{
    if (json_is_null(o) || !o) return LLMSQ_OK;
    if (!json_is_object(o) || depth > 16) return bad(c, "normalizer must be an object", NULL);
    const char *ty = jtype(o);
    if (strcmp(ty, "Sequence") == 0) {
        const json_t *list = json_object_get(o, "normalizers");
        if (!json_is_array(list)) return bad(c, "Sequence normalizer without a \"normalizers\" array", NULL);
        for (size_t i = 0; i < json_array_size(list); i++) LLMSQ_TRY(read_normalizer(c, json_array_get(list, i), depth + 1));
        return LLMSQ_OK;
    }
    tok_norm n = {0};
    const char *s;
    size_t l;
    if (strcmp(ty, "NFC") == 0) n.kind = TN_NFC;
    else if (strcmp(ty, "NFD") == 0) n.kind = TN_NFD;
    else if (strcmp(ty, "NFKC") == 0) n.kind = TN_NFKC;
    else if (strcmp(ty, "NFKD") == 0) n.kind = TN_NFKD;
    else if (strcmp(ty, "Lowercase") == 0) n.kind = TN_LOWERCASE;
    else if (strcmp(ty, "ByteLevel") == 0) n.kind = TN_BYTELEVEL;
    else if (strcmp(ty, "Strip") == 0) {
        n.kind = TN_STRIP;
        n.left = jbool(o, "strip_left", true);
        n.right = jbool(o, "strip_right", true);
    } else if (strcmp(ty, "Prepend") == 0) {
        n.kind = TN_PREPEND;
        LLMSQ_TRY(jstr(c, o, "prepend", &s, &l));
        LLMSQ_TRY(dupstr(c, s, l, &n.str, &n.str_len));
    } else if (strcmp(ty, "Replace") == 0) {
        n.kind = TN_REPLACE;
        llmsq_status st = jstr(c, o, "content", &s, &l);
        if (st == LLMSQ_OK) st = dupstr(c, s, l, &n.str, &n.str_len);
        if (st == LLMSQ_OK) st = jpattern(c, o, &n.pat);
        if (st != LLMSQ_OK) {
            tok_norm_free(&n);
            return st;
        }
    } else {
        return unsupported(c, "normalizer", ty);
    }
    tok_norm *v = grow(c->h->norm, c->h->n_norm, sizeof *v);
    if (!v) {
        tok_norm_free(&n);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    }
    c->h->norm = v;
    c->h->norm[c->h->n_norm++] = n;
    return LLMSQ_OK;
}

/* ---- pre-tokenizer --------------------------------------------------------------------------------- */

static llmsq_status read_pretok(jctx *c, const json_t *o, int depth)
{
    if (json_is_null(o) || !o) return LLMSQ_OK;
    if (!json_is_object(o) || depth > 16) return bad(c, "pre_tokenizer must be an object", NULL);
    const char *ty = jtype(o);
    if (strcmp(ty, "Sequence") == 0) {
        const json_t *list = json_object_get(o, "pretokenizers");
        if (!json_is_array(list)) return bad(c, "Sequence pre-tokenizer without a \"pretokenizers\" array", NULL);
        for (size_t i = 0; i < json_array_size(list); i++) LLMSQ_TRY(read_pretok(c, json_array_get(list, i), depth + 1));
        return LLMSQ_OK;
    }
    tok_pretok p = {0};
    llmsq_status st = LLMSQ_OK;
    if (strcmp(ty, "ByteLevel") == 0) {
        p.kind = TP_BYTELEVEL;
        p.add_prefix_space = jbool(o, "add_prefix_space", true);
        p.use_regex = jbool(o, "use_regex", true);
        if (p.use_regex) st = tok_pattern_regex(&p.pat, tok_re_gpt2, strlen(tok_re_gpt2), c->src);
    } else if (strcmp(ty, "Split") == 0) {
        p.kind = TP_SPLIT;
        p.behavior = jbehavior(o, "");
        p.invert = jbool(o, "invert", false);
        if (p.behavior < 0) return bad(c, "Split pre-tokenizer has an unknown behavior", NULL);
        st = jpattern(c, o, &p.pat);
    } else if (strcmp(ty, "Metaspace") == 0) {
        p.kind = TP_METASPACE;
        uint32_t cp;
        LLMSQ_TRY(jchar(c, o, "replacement", &cp, p.rep, &p.rep_len));
        p.scheme = jscheme(o);
        p.split = jbool(o, "split", true);
        if (p.scheme < 0) return bad(c, "Metaspace pre-tokenizer has an unknown prepend_scheme", NULL);
        st = tok_pattern_literal(&p.pat, p.rep, p.rep_len);
    } else if (strcmp(ty, "Digits") == 0) {
        p.kind = TP_DIGITS;
        p.individual_digits = jbool(o, "individual_digits", false);
    } else if (strcmp(ty, "Whitespace") == 0) {
        p.kind = TP_WHITESPACE;
        st = tok_pretok_whitespace(&p, c->src);
    } else if (strcmp(ty, "WhitespaceSplit") == 0) {
        p.kind = TP_WHITESPACE_SPLIT;
    } else if (strcmp(ty, "Punctuation") == 0) {
        p.kind = TP_PUNCTUATION;
        p.behavior = jbehavior(o, "Isolated");
        if (p.behavior < 0) return bad(c, "Punctuation pre-tokenizer has an unknown behavior", NULL);
    } else {
        return unsupported(c, "pre-tokenizer", ty);
    }
    tok_pretok *v = st == LLMSQ_OK ? grow(c->h->pre, c->h->n_pre, sizeof *v) : NULL;
    if (!v) {
        tok_pretok_free(&p);
        return st != LLMSQ_OK ? st : llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    }
    c->h->pre = v;
    c->h->pre[c->h->n_pre++] = p;
    return LLMSQ_OK;
}

/* ---- decoder ---------------------------------------------------------------------------------------- */

static llmsq_status read_decoder(jctx *c, const json_t *o, int depth)
{
    if (json_is_null(o) || !o) return LLMSQ_OK;
    if (!json_is_object(o) || depth > 16) return bad(c, "decoder must be an object", NULL);
    c->h->has_decoder = true;
    const char *ty = jtype(o);
    if (strcmp(ty, "Sequence") == 0) {
        const json_t *list = json_object_get(o, "decoders");
        if (!json_is_array(list)) return bad(c, "Sequence decoder without a \"decoders\" array", NULL);
        for (size_t i = 0; i < json_array_size(list); i++) LLMSQ_TRY(read_decoder(c, json_array_get(list, i), depth + 1));
        return LLMSQ_OK;
    }
    tok_dec d = {0};
    llmsq_status st = LLMSQ_OK;
    if (strcmp(ty, "ByteLevel") == 0) d.kind = TD_BYTELEVEL;
    else if (strcmp(ty, "ByteFallback") == 0) d.kind = TD_BYTEFALLBACK;
    else if (strcmp(ty, "Fuse") == 0) d.kind = TD_FUSE;
    else if (strcmp(ty, "Metaspace") == 0) {
        d.kind = TD_METASPACE;
        LLMSQ_TRY(jchar(c, o, "replacement", &d.ch, NULL, NULL));
        d.scheme = jscheme(o);
        if (d.scheme < 0) return bad(c, "Metaspace decoder has an unknown prepend_scheme", NULL);
    } else if (strcmp(ty, "Strip") == 0) {
        d.kind = TD_STRIP;
        LLMSQ_TRY(jchar(c, o, "content", &d.ch, NULL, NULL));
        json_int_t a = json_integer_value(json_object_get(o, "start")), b = json_integer_value(json_object_get(o, "stop"));
        if (a < 0 || b < 0 || a > 1 << 20 || b > 1 << 20) return bad(c, "Strip decoder start/stop out of range", NULL);
        d.start = (int)a;
        d.stop = (int)b;
    } else if (strcmp(ty, "Replace") == 0) {
        d.kind = TD_REPLACE;
        const char *s;
        size_t l;
        st = jstr(c, o, "content", &s, &l);
        if (st == LLMSQ_OK) st = dupstr(c, s, l, &d.str, &d.str_len);
        if (st == LLMSQ_OK) st = jpattern(c, o, &d.pat);
    } else {
        return unsupported(c, "decoder", ty);
    }
    tok_dec *v = st == LLMSQ_OK ? grow(c->h->dec, c->h->n_dec, sizeof *v) : NULL;
    if (!v) {
        tok_dec_free(&d);
        return st != LLMSQ_OK ? st : llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    }
    c->h->dec = v;
    c->h->dec[c->h->n_dec++] = d;
    return LLMSQ_OK;
}

/* ---- post-processor --------------------------------------------------------------------------------- */

/* Wraps the current template: `outer` holds ids and one -1 where the current one goes. */
static llmsq_status wrap_template(jctx *c, const int32_t *outer, int n_outer)
{
    struct tok_hf *h = c->h;
    int inner_n = h->n_tmpl ? h->n_tmpl : 1;
    int32_t *t = malloc((size_t)(n_outer + inner_n) * sizeof *t);
    if (!t) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    int k = 0;
    for (int i = 0; i < n_outer; i++) {
        if (outer[i] >= 0) t[k++] = outer[i];
        else if (h->n_tmpl)
            for (int j = 0; j < h->n_tmpl; j++) t[k++] = h->tmpl[j];
        else t[k++] = -1;
    }
    free(h->tmpl);
    h->tmpl = t;
    h->n_tmpl = k;
    return LLMSQ_OK;
}

static llmsq_status read_template(jctx *c, const json_t *o)
{
    const json_t *single = json_object_get(o, "single"), *specials = json_object_get(o, "special_tokens");
    if (!json_is_array(single)) return bad(c, "TemplateProcessing without a \"single\" template", NULL);
    size_t n = json_array_size(single), total = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *sp = json_object_get(json_array_get(single, i), "SpecialToken");
        const json_t *ids = json_object_get(json_object_get(specials, json_string_value(json_object_get(sp, "id"))), "ids");
        total += sp ? json_array_size(ids) : 1;
    }
    if (total > 4096) return bad(c, "TemplateProcessing template is too long", NULL);
    int32_t *outer = malloc((total + 1) * sizeof *outer);
    if (!outer) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    int k = 0, seqs = 0;
    llmsq_status st = LLMSQ_OK;
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        const json_t *item = json_array_get(single, i);
        const json_t *sp = json_object_get(item, "SpecialToken"), *seq = json_object_get(item, "Sequence");
        if (seq) {
            outer[k++] = -1;
            seqs++;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        const json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids)) {
            st = bad(c, "TemplateProcessing names a special token it does not define", name);
            break;
        }
        for (size_t j = 0; j < json_array_size(ids); j++) {
            json_int_t id = json_integer_value(json_array_get(ids, j));
            if (!json_is_integer(json_array_get(ids, j)) || id < 0 || id >= c->t->n) {
                st = bad(c, "TemplateProcessing special token id out of range", name);
                break;
            }
            outer[k++] = (int32_t)id;
        }
    }
    if (st == LLMSQ_OK && seqs != 1) st = bad(c, "TemplateProcessing single template must hold $A once", NULL);
    if (st == LLMSQ_OK) st = wrap_template(c, outer, k);
    free(outer);
    return st;
}

/* BertProcessing / RobertaProcessing: "cls": [token, id], "sep": [token, id]. */
static llmsq_status read_cls_sep(jctx *c, const json_t *o)
{
    const json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
    json_int_t a = json_integer_value(json_array_get(cls, 1)), b = json_integer_value(json_array_get(sep, 1));
    if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1)) || a < 0 || b < 0 ||
        a >= c->t->n || b >= c->t->n)
        return bad(c, "post-processor cls/sep must be [token, id] with a valid id", jtype(o));
    int32_t outer[3] = {(int32_t)a, -1, (int32_t)b};
    return wrap_template(c, outer, 3);
}

static llmsq_status read_post(jctx *c, const json_t *o, int depth)
{
    if (json_is_null(o) || !o) return LLMSQ_OK;
    if (!json_is_object(o) || depth > 16) return bad(c, "post_processor must be an object", NULL);
    const char *ty = jtype(o);
    if (strcmp(ty, "Sequence") == 0) {
        const json_t *list = json_object_get(o, "processors");
        if (!json_is_array(list)) return bad(c, "Sequence post-processor without a \"processors\" array", NULL);
        for (size_t i = 0; i < json_array_size(list); i++) LLMSQ_TRY(read_post(c, json_array_get(list, i), depth + 1));
        return LLMSQ_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) return LLMSQ_OK; /* offsets only */
    if (strcmp(ty, "TemplateProcessing") == 0) return read_template(c, o);
    if (strcmp(ty, "BertProcessing") == 0 || strcmp(ty, "RobertaProcessing") == 0) return read_cls_sep(c, o);
    return unsupported(c, "post-processor", ty);
}

/* ---- model and added tokens ------------------------------------------------------------------------ */

static llmsq_status read_vocab(jctx *c, const json_t *model, const json_t *added)
{
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return bad(c, "model has no \"vocab\" object", NULL);
    size_t count = json_object_size(vocab) + json_array_size(added);
    json_int_t max_id = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(c, "vocab ids must be non-negative integers", key);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_string(json_object_get(a, "content")))
            return bad(c, "each added token needs an integer \"id\" and a string \"content\"", NULL);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    /* Ids index arrays: a few huge ids in a small file must not allocate gigabytes. */
    if (max_id < 0 || (uint64_t)max_id >= 4 * (uint64_t)count + 65536 || max_id >= INT32_MAX / 4)
        return bad(c, max_id < 0 ? "empty vocabulary" : "token ids are far larger than the vocabulary", NULL);
    int64_t n = (int64_t)max_id + 1;
    const char **pieces = calloc((size_t)n, sizeof *pieces);
    uint32_t *lens = calloc((size_t)n, sizeof *lens);
    uint8_t *in_model = calloc((size_t)n, 1);
    llmsq_status st = LLMSQ_OK;
    if (!pieces || !lens || !in_model) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    json_object_foreach((json_t *)vocab, key, v) {
        if (st != LLMSQ_OK) break;
        json_int_t id = json_integer_value(v);
        if (pieces[id]) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: vocab id %lld is given to two tokens", c->src, (long long)id);
            break;
        }
        pieces[id] = key;
        lens[id] = (uint32_t)strlen(key);
        in_model[id] = 1;
    }
    /* tokenizers gives an added token the model's id for the same string, whatever the
     * file says; only new strings take the id written beside them. */
    for (size_t i = 0; st == LLMSQ_OK && i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const char *s = json_string_value(json_object_get(a, "content"));
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        const json_t *mv = json_object_get(vocab, s);
        if (mv) id = json_integer_value(mv);
        else if (pieces[id] && strcmp(pieces[id], s) != 0)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: added token '%.64s' and token '%.64s' share id %lld", c->src, s,
                             pieces[id], (long long)id);
        pieces[id] = s;
        lens[id] = (uint32_t)strlen(s);
    }
    if (st == LLMSQ_OK) st = tok_vocab_init(c->t, n, pieces, lens, c->src);
    if (st == LLMSQ_OK) memcpy(c->h->in_model, in_model, (size_t)n);
    free(pieces);
    free(lens);
    free(in_model);
    return st;
}

/* Needs the normalizer: a normalized=true token is matched, in the normalized text, by its
 * own normalized content (tokenizers' refresh_added_tokens). */
static llmsq_status read_added(jctx *c, const json_t *added)
{
    struct tok_hf *h = c->h;
    size_t n = json_array_size(added);
    h->added = calloc(n + 1, sizeof *h->added);
    if (!h->added) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    tok_scratch sc = {.md = pcre2_match_data_create(1, NULL)};
    llmsq_status st = sc.md ? LLMSQ_OK : llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        const json_t *a = json_array_get(added, i);
        const char *s = json_string_value(json_object_get(a, "content"));
        int32_t id = spm_lookup(c->t, s, strlen(s));
        tok_added x = {.id = id};
        x.special = jbool(a, "special", false);
        x.single_word = jbool(a, "single_word", false);
        x.lstrip = jbool(a, "lstrip", false);
        x.rstrip = jbool(a, "rstrip", false);
        /* tokenizers' default: special tokens are matched on the raw text. */
        x.normalized = jbool(a, "normalized", !x.special);
        const char *m = s;
        size_t mn = strlen(s);
        if (x.normalized) st = tok_normalize(h->norm, h->n_norm, s, strlen(s), &sc, &m, &mn);
        if (st != LLMSQ_OK || mn == 0 || id < 0) continue; /* an empty token never matches */
        st = dupstr(c, m, mn, &x.s, NULL);
        x.len = (uint32_t)mn;
        if (st == LLMSQ_OK) h->added[h->n_added++] = x;
        if (st == LLMSQ_OK && !h->in_model[id] && (mn != strlen(s) || memcmp(m, s, mn) != 0)) {
            if (!h->dec_piece) h->dec_piece = calloc((size_t)c->t->n, sizeof *h->dec_piece);
            if (!h->dec_piece) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", c->src);
            else if (!h->dec_piece[id]) st = dupstr(c, m, mn, &h->dec_piece[id], NULL);
        }
    }
    free(sc.a.p);
    free(sc.b.p);
    free(sc.spans.v);
    pcre2_match_data_free(sc.md);
    if (st != LLMSQ_OK) return st;
    return tok_added_finish(c->t, c->src);
}

static llmsq_status read_merges(jctx *c, const json_t *merges)
{
    if (!json_is_array(merges)) return bad(c, "BPE model has no \"merges\" array", NULL);
    size_t n = json_array_size(merges);
    LLMSQ_TRY(tok_merges_init(c->h, (int64_t)n, c->src));
    uint32_t rank = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *l, *r;
        size_t ln, rn;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (strncmp(s, "#version", 8) == 0) continue;
            if (!sp || strchr(sp + 1, ' ')) {
                char what[96];
                snprintf(what, sizeof what, "merge %zu is not two tokens separated by one space", i);
                return bad(c, what, s);
            }
            l = s;
            ln = (size_t)(sp - s);
            r = sp + 1;
            rn = strlen(r);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0));
            ln = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1));
            rn = json_string_length(json_array_get(m, 1));
        } else {
            char what[96];
            snprintf(what, sizeof what, "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
            return bad(c, what, NULL);
        }
        LLMSQ_TRY(tok_merge_add_pair(c->t, l, ln, r, rn, rank++, c->src));
    }
    return LLMSQ_OK;
}

static llmsq_status read_model(jctx *c, const json_t *root)
{
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return bad(c, "no \"model\" object (not a tokenizers tokenizer.json?)", NULL);
    const char *ty = jtype(model);
    if (!ty[0] && json_object_get(model, "merges")) ty = "BPE"; /* files from before "type" was written */
    if (strcmp(ty, "BPE") != 0) return unsupported(c, "model", ty);
    const json_t *drop = json_object_get(model, "dropout");
    if (json_is_number(drop) && json_number_value(drop) > 0.0)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: BPE dropout %g makes encoding random", c->src,
                           json_number_value(drop));
    const char *k[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(model, k[i]));
        if (s && s[0]) return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: BPE %s is not supported", c->src, k[i]);
    }
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) return bad(c, "\"added_tokens\" must be an array", NULL);
    LLMSQ_TRY(read_vocab(c, model, added));
    struct tok_hf *h = c->h;
    h->byte_fallback = jbool(model, "byte_fallback", false);
    h->fuse_unk = jbool(model, "fuse_unk", false);
    h->ignore_merges = jbool(model, "ignore_merges", false);
    h->unk = -1;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk) {
        h->unk = spm_lookup(c->t, unk, strlen(unk));
        if (h->unk < 0 || !h->in_model[h->unk]) return bad(c, "unk_token is not in the vocabulary", unk);
    }
    return read_merges(c, json_object_get(model, "merges"));
}

/* BOS is the first id the template puts before the text, EOS the first after it. */
static void template_bos_eos(llmsq_tokenizer *t)
{
    const struct tok_hf *h = t->hf;
    t->opt.bos_id = t->opt.eos_id = -1;
    int i = 0;
    if (h->n_tmpl && h->tmpl[0] >= 0) t->opt.bos_id = h->tmpl[0];
    while (i < h->n_tmpl && h->tmpl[i] >= 0) i++;
    if (i + 1 < h->n_tmpl) t->opt.eos_id = h->tmpl[i + 1];
}

llmsq_status llmsq_tokenizer_from_hf_json(const char *data, size_t size, const char *source, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT((data || size == 0) && source && out);
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", size, 0, &jerr);
    if (!root)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: not valid JSON (line %d, column %d, byte offset %d): %s", source,
                           jerr.line, jerr.column, jerr.position, jerr.text);
    llmsq_tokenizer *t = calloc(1, sizeof *t);
    struct tok_hf *h = t ? calloc(1, sizeof *h) : NULL;
    llmsq_status st = LLMSQ_OK;
    if (!t || !h) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    else t->hf = h;
    jctx c = {source, t, h};
    if (st == LLMSQ_OK && !json_is_object(root)) st = bad(&c, "the top level is not a JSON object", NULL);
    if (st == LLMSQ_OK) {
        t->opt = llmsq_spm_default_options();
        t->opt.add_dummy_prefix = t->opt.remove_extra_whitespaces = t->opt.escape_whitespaces = false;
        t->opt.pad_id = -1;
        st = read_model(&c, root);
    }
    if (st == LLMSQ_OK) st = read_normalizer(&c, json_object_get(root, "normalizer"), 0);
    if (st == LLMSQ_OK) st = read_pretok(&c, json_object_get(root, "pre_tokenizer"), 0);
    if (st == LLMSQ_OK) st = read_post(&c, json_object_get(root, "post_processor"), 0);
    if (st == LLMSQ_OK) st = read_decoder(&c, json_object_get(root, "decoder"), 0);
    if (st == LLMSQ_OK) st = read_added(&c, json_object_get(root, "added_tokens"));
    if (st == LLMSQ_OK) {
        template_bos_eos(t);
        t->opt.byte_fallback = h->byte_fallback;
        st = tok_finish(t, source);
    }
    json_decref(root);
    if (st != LLMSQ_OK) {
        llmsq_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLMSQ_OK;
}

llmsq_status llmsq_tokenizer_load_hf_json(const char *path, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(path && out);
    *out = NULL;
    char *data;
    size_t size;
    LLMSQ_TRY(llmsq_read_file(path, &data, &size));
    llmsq_status st = llmsq_tokenizer_from_hf_json(data, size, path, out);
    free(data);
    return st;
}
