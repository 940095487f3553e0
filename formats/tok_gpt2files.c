/*
 * GPT-2's original tokenizer files: vocab.json ({token: id}) and merges.txt (a "#version"
 * line, then one "left right" merge per line, highest priority first). They load into the
 * pipeline transformers' GPT2TokenizerFast builds from them: ByteLevel pre-tokenizer
 * without prefix space, ByteLevel decoder, <|endoftext|> as the special token that is
 * both BOS and EOS.
 */
#include "tok_impl.h"

#include "llmsq/runtime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static llmsq_status read_vocab(llmsq_tokenizer *t, const char *data, size_t size, const char *source)
{
    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", size, 0, &jerr);
    if (!root)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: not valid JSON (line %d, column %d): %s", source, jerr.line,
                           jerr.column, jerr.text);
    llmsq_status st = LLMSQ_OK;
    const char *key;
    json_t *v;
    json_int_t max_id = -1;
    if (!json_is_object(root)) st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: expected a JSON object {token: id}", source);
    if (st == LLMSQ_OK) {
        json_object_foreach(root, key, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: the id of '%.64s' is not a non-negative integer", source, key);
                break;
            }
            if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
        }
    }
    if (st == LLMSQ_OK && (max_id < 0 || (uint64_t)max_id >= 4 * (uint64_t)json_object_size(root) + 65536 ||
                           max_id >= INT32_MAX / 4))
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s", source,
                         max_id < 0 ? "empty vocabulary" : "token ids are far larger than the vocabulary");
    const char **pieces = NULL;
    if (st == LLMSQ_OK) {
        pieces = calloc((size_t)max_id + 1, sizeof *pieces);
        if (!pieces) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    }
    if (st == LLMSQ_OK) {
        json_object_foreach(root, key, v) {
            json_int_t id = json_integer_value(v);
            if (pieces[id]) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: id %lld is given to two tokens", source, (long long)id);
                break;
            }
            pieces[id] = key;
        }
    }
    if (st == LLMSQ_OK) st = tok_vocab_init(t, (int64_t)max_id + 1, pieces, NULL, source);
    if (st == LLMSQ_OK)
        for (json_int_t i = 0; i <= max_id; i++) t->hf->in_model[i] = pieces[i] != NULL;
    free(pieces);
    json_decref(root);
    return st;
}

/* tokenizers' BPE::read_file: "#version" lines skipped, every other line exactly two
 * tokens around one space; lines end in "\n" or "\r\n". */
static llmsq_status read_merges(llmsq_tokenizer *t, const char *data, size_t size, const char *source)
{
    int64_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    LLMSQ_TRY(tok_merges_init(t->hf, lines + 1, source));
    uint32_t rank = 0;
    size_t line_no = 0;
    for (size_t i = 0; i < size;) {
        const char *s = data + i, *nl = memchr(s, '\n', size - i);
        size_t n = nl ? (size_t)(nl - s) : size - i;
        i += n + (nl != NULL);
        line_no++;
        if (n && s[n - 1] == '\r') n--;
        if (n >= 8 && memcmp(s, "#version", 8) == 0) continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)) || memchr(s, 0, n))
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: line %zu is not two tokens separated by one space: '%.*s'", source,
                               line_no, (int)(n > 80 ? 80 : n), s);
        LLMSQ_TRY(tok_merge_add_pair(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), rank++, source));
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_tokenizer_from_gpt2(const char *vocab, size_t vocab_size, const char *merges, size_t merges_size,
                                       const char *source, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT((vocab || vocab_size == 0) && (merges || merges_size == 0) && source && out);
    *out = NULL;
    llmsq_tokenizer *t = calloc(1, sizeof *t);
    struct tok_hf *h = t ? calloc(1, sizeof *h) : NULL;
    if (!t || !h) {
        free(t);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    }
    t->hf = h;
    h->unk = -1;
    t->opt = llmsq_spm_default_options();
    t->opt.add_dummy_prefix = t->opt.remove_extra_whitespaces = t->opt.escape_whitespaces = false;
    t->opt.unk_id = t->opt.bos_id = t->opt.eos_id = t->opt.pad_id = -1;

    llmsq_status st = read_vocab(t, vocab, vocab_size, source);
    if (st == LLMSQ_OK) st = read_merges(t, merges, merges_size, source);
    if (st == LLMSQ_OK) {
        tok_pretok p = {.kind = TP_BYTELEVEL, .use_regex = true};
        h->pre = malloc(sizeof *h->pre);
        h->dec = malloc(sizeof *h->dec);
        h->added = calloc(1, sizeof *h->added);
        if (!h->pre || !h->dec || !h->added) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
        if (st == LLMSQ_OK) st = tok_pattern_regex(&p.pat, tok_re_gpt2, strlen(tok_re_gpt2), source);
        if (st == LLMSQ_OK) {
            h->pre[h->n_pre++] = p;
            h->dec[h->n_dec++] = (tok_dec){.kind = TD_BYTELEVEL};
            h->has_decoder = true;
        }
    }
    static const char eot[] = "<|endoftext|>";
    int32_t eot_id = st == LLMSQ_OK ? spm_lookup(t, eot, sizeof eot - 1) : -1;
    if (eot_id >= 0) {
        h->added[0] = (tok_added){.id = eot_id, .s = strdup(eot), .len = sizeof eot - 1, .special = true};
        if (!h->added[0].s) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
        else h->n_added = 1;
        t->opt.bos_id = t->opt.eos_id = eot_id;
    }
    if (st == LLMSQ_OK) st = tok_added_finish(t, source);
    if (st == LLMSQ_OK) st = tok_finish(t, source);
    if (st != LLMSQ_OK) {
        llmsq_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLMSQ_OK;
}

llmsq_status llmsq_tokenizer_load_gpt2(const char *vocab_json, const char *merges_txt, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(vocab_json && merges_txt && out);
    *out = NULL;
    char *v = NULL, *m = NULL;
    size_t vn, mn;
    LLMSQ_TRY(llmsq_read_file(vocab_json, &v, &vn));
    llmsq_status st = llmsq_read_file(merges_txt, &m, &mn);
    if (st == LLMSQ_OK) {
        size_t l = strlen(vocab_json) + strlen(merges_txt) + 4;
        char *src = malloc(l);
        if (!src) st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        else {
            snprintf(src, l, "%s + %s", vocab_json, merges_txt);
            st = llmsq_tokenizer_from_gpt2(v, vn, m, mn, src, out);
            free(src);
        }
    }
    free(v);
    free(m);
    return st;
}
