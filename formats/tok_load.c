/*
 * The public face of the tokenizer module: the functions every kind shares (free, encode,
 * decode), the BPE builder GGUF vocabularies use, and llmsq_tokenizer_load, which finds
 * and loads whatever tokenizer a path holds.
 */
#include "tok_impl.h"

#include "llmsq/runtime.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llmsq_tokenizer_free(llmsq_tokenizer *t)
{
    if (!t) return;
    tok_hf_free(t->hf);
    t->hf = NULL;
    spm_free(t);
}

llmsq_tokenizer_kind llmsq_tokenizer_get_kind(const llmsq_tokenizer *t)
{
    LLMSQ_ASSERT(t);
    return t->hf ? LLMSQ_TOKENIZER_BPE : LLMSQ_TOKENIZER_SPM;
}

int32_t llmsq_tokenizer_find(const llmsq_tokenizer *t, const char *piece, size_t len)
{
    LLMSQ_ASSERT(t && (piece || len == 0));
    return len ? spm_lookup(t, piece, len) : -1;
}

llmsq_status llmsq_tokenizer_encode(const llmsq_tokenizer *t, const char *text, size_t len, bool add_bos,
                                    int32_t **ids, size_t *n_ids)
{
    LLMSQ_ASSERT(t && ids && n_ids && (text || len == 0));
    *ids = NULL;
    *n_ids = 0;
    if (!t->hf) return spm_encode(t, text ? text : "", len, add_bos, ids, n_ids);
    return tok_hf_encode(t, text ? text : "", len, add_bos ? TOK_ADD_BOS : 0, ids, n_ids);
}

llmsq_status llmsq_tokenizer_encode_special(const llmsq_tokenizer *t, const char *text, size_t len, int32_t **ids,
                                            size_t *n_ids)
{
    LLMSQ_ASSERT(t && ids && n_ids && (text || len == 0));
    *ids = NULL;
    *n_ids = 0;
    if (!t->hf) return spm_encode(t, text ? text : "", len, true, ids, n_ids);
    return tok_hf_encode(t, text ? text : "", len, TOK_ADD_SPECIAL, ids, n_ids);
}

llmsq_status llmsq_tokenizer_decode(const llmsq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    LLMSQ_ASSERT(t && text && (ids || n == 0));
    *text = NULL;
    if (len) *len = 0;
    return t->hf ? tok_hf_decode(t, ids, n, text, len) : spm_decode(t, ids, n, text, len);
}

/* ---- GGUF gpt2 vocabularies ------------------------------------------------------------------------ */

llmsq_bpe_vocab llmsq_bpe_vocab_default(void)
{
    return (llmsq_bpe_vocab){.pre = "default", .bos_id = -1, .eos_id = -1, .unk_id = -1, .pad_id = -1};
}

llmsq_status llmsq_tokenizer_from_bpe_vocab(const llmsq_bpe_vocab *v, const char *source, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(v && out && (v->n == 0 || v->pieces) && (v->n_merges == 0 || v->merges));
    *out = NULL;
    if (!source) source = "tokenizer";
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
    t->opt.bos_id = v->bos_id;
    t->opt.eos_id = v->eos_id;
    t->opt.pad_id = v->pad_id;

    llmsq_status st = tok_vocab_init(t, v->n, v->pieces, v->piece_lens, source);
    int64_t n_added = 0;
    for (int64_t i = 0; st == LLMSQ_OK && i < v->n; i++) {
        int32_t ty = v->types ? v->types[i] : LLMSQ_TOKEN_NORMAL;
        if (ty < LLMSQ_TOKEN_NORMAL || ty > LLMSQ_TOKEN_BYTE)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: token %lld has invalid type %d", source, (long long)i, (int)ty);
        else if (!v->pieces[i])
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: token %lld is NULL", source, (long long)i);
        /* Control and user-defined tokens are added tokens: matched in the text, never
         * produced by merges (Llama-3's specials are not in its BPE vocabulary). */
        h->in_model[i] = ty != LLMSQ_TOKEN_CONTROL && ty != LLMSQ_TOKEN_USER_DEFINED;
        n_added += ty == LLMSQ_TOKEN_CONTROL || ty == LLMSQ_TOKEN_USER_DEFINED;
    }
    if (st == LLMSQ_OK) {
        h->added = calloc((size_t)n_added + 1, sizeof *h->added);
        if (!h->added) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
        int k = 0;
        for (int64_t i = 0; st == LLMSQ_OK && i < v->n; i++) {
            int32_t ty = v->types ? v->types[i] : LLMSQ_TOKEN_NORMAL;
            if (ty != LLMSQ_TOKEN_CONTROL && ty != LLMSQ_TOKEN_USER_DEFINED) continue;
            tok_added *a = &h->added[k];
            a->s = strdup(t->piece[i]);
            if (!a->s) {
                st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
                break;
            }
            k++;
            *a = (tok_added){.id = (int32_t)i, .s = a->s, .len = t->len[i], .special = ty == LLMSQ_TOKEN_CONTROL};
        }
        h->n_added = k;
    }
    if (st == LLMSQ_OK) st = tok_merges_init(h, v->n_merges, source);
    for (int64_t i = 0; st == LLMSQ_OK && i < v->n_merges; i++) {
        const char *m = v->merges[i];
        size_t n = v->merge_lens ? v->merge_lens[i] : (m ? strlen(m) : 0);
        const char *sp = m ? memchr(m, ' ', n) : NULL;
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - m)))
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: merge %lld is not two tokens separated by one space", source,
                             (long long)i);
        else st = tok_merge_add_pair(t, m, (size_t)(sp - m), sp + 1, n - (size_t)(sp + 1 - m), (uint32_t)i, source);
    }
    const char *pre = v->pre ? v->pre : "default";
    if (st == LLMSQ_OK) st = tok_pre_from_name(h, pre, strlen(pre), source);
    if (st == LLMSQ_OK) {
        h->dec = malloc(sizeof *h->dec);
        h->tmpl = malloc(3 * sizeof *h->tmpl);
        if (!h->dec || !h->tmpl) st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", source);
    }
    if (st == LLMSQ_OK) {
        h->dec[h->n_dec++] = (tok_dec){.kind = TD_BYTELEVEL};
        h->has_decoder = true;
        if (v->add_bos && v->bos_id >= 0) h->tmpl[h->n_tmpl++] = v->bos_id;
        h->tmpl[h->n_tmpl++] = -1;
        if (v->add_eos && v->eos_id >= 0) h->tmpl[h->n_tmpl++] = v->eos_id;
        st = tok_added_finish(t, source);
    }
    if (st == LLMSQ_OK && v->types)
        for (int64_t i = 0; i < v->n; i++) t->type[i] = v->types[i];
    if (st == LLMSQ_OK) {
        st = tok_finish(t, source);
        t->opt.unk_id = v->unk_id >= 0 && v->unk_id < v->n ? v->unk_id : -1;
    }
    if (st != LLMSQ_OK) {
        llmsq_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLMSQ_OK;
}

/* ---- finding the tokenizer of a path ------------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int32_t config_token(const llmsq_tokenizer *t, const json_t *v, bool *present)
{
    *present = v != NULL;
    if (json_is_object(v)) v = json_object_get(v, "content");
    const char *s = json_string_value(v);
    return s ? llmsq_tokenizer_find(t, s, strlen(s)) : -1;
}

/* transformers' tokenizer_config.json names BOS and EOS (a string, {"content": ...} or
 * null); tokenizer.json only implies them through its post-processor. */
static void apply_config(llmsq_tokenizer *t, const char *dir)
{
    char *path = llmsq_path_join(dir, "tokenizer_config.json");
    json_t *root = path && llmsq_is_file(path) ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    bool present;
    int32_t id = config_token(t, json_object_get(root, "bos_token"), &present);
    if (present && (id >= 0 || json_is_null(json_object_get(root, "bos_token")))) t->opt.bos_id = id;
    id = config_token(t, json_object_get(root, "eos_token"), &present);
    if (present && id >= 0) t->opt.eos_id = id;
    json_decref(root);
}

static llmsq_status load_dir(const char *dir, llmsq_tokenizer **out)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    for (int i = 0; i < 2; i++) {
        char *p = llmsq_path_join(dir, names[i]);
        if (!p) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        llmsq_status st = LLMSQ_STATUS_NOT_FOUND;
        if (llmsq_is_file(p)) st = i == 0 ? llmsq_tokenizer_load_hf_json(p, out) : llmsq_tokenizer_load_spm(p, out);
        free(p);
        if (st == LLMSQ_OK && i == 0) apply_config(*out, dir);
        if (st != LLMSQ_STATUS_NOT_FOUND) return st;
    }
    char *v = llmsq_path_join(dir, "vocab.json"), *m = llmsq_path_join(dir, "merges.txt");
    llmsq_status st = LLMSQ_STATUS_NOT_FOUND;
    if (v && m && llmsq_is_file(v) && llmsq_is_file(m)) {
        st = llmsq_tokenizer_load_gpt2(v, m, out);
        if (st == LLMSQ_OK) apply_config(*out, dir);
    }
    free(v);
    free(m);
    if (st != LLMSQ_STATUS_NOT_FOUND) return st;

    /* Last, a directory holding exactly one GGUF file. */
    DIR *d = opendir(dir);
    char *gguf = NULL;
    int n_gguf = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!has_suffix(e->d_name, ".gguf")) continue;
        if (++n_gguf == 1) gguf = llmsq_path_join(dir, e->d_name);
    }
    if (d) closedir(d);
    if (n_gguf == 1 && gguf) st = llmsq_tokenizer_load_gguf(gguf, out);
    else if (n_gguf > 1)
        st = llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no tokenizer file, and %d GGUF files: name the one to use", dir,
                         n_gguf);
    else
        st = llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no tokenizer here (looked for tokenizer.json, tokenizer.model, "
                         "vocab.json + merges.txt, a .gguf file)", dir);
    free(gguf);
    return st;
}

llmsq_status llmsq_tokenizer_load(const char *path, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(path && out);
    *out = NULL;
    if (llmsq_is_dir(path)) return load_dir(path, out);
    if (!llmsq_is_file(path)) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no such file or directory", path);
    if (has_suffix(path, "vocab.json")) {
        /* GPT-2's pair: merges.txt must sit beside vocab.json. */
        size_t n = strlen(path) - strlen("vocab.json");
        char *m = malloc(n + sizeof "merges.txt");
        if (!m) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        memcpy(m, path, n);
        memcpy(m + n, "merges.txt", sizeof "merges.txt");
        llmsq_status st = llmsq_is_file(m) ? llmsq_tokenizer_load_gpt2(path, m, out)
                                           : llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: GPT-2's vocab.json needs %s beside it",
                                                         path, m);
        free(m);
        return st;
    }
    uint8_t head[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (has_suffix(path, ".gguf") || (got >= 4 && memcmp(head, "GGUF", 4) == 0)) return llmsq_tokenizer_load_gguf(path, out);
    size_t k = 0;
    while (k < got && (head[k] == ' ' || head[k] == '\n' || head[k] == '\r' || head[k] == '\t')) k++;
    if (has_suffix(path, ".json") || (k < got && head[k] == '{')) return llmsq_tokenizer_load_hf_json(path, out);
    if (has_suffix(path, ".model")) return llmsq_tokenizer_load_spm(path, out);
    return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: not a tokenizer file llmsq knows (expected tokenizer.json, a "
                       "SentencePiece .model, a .gguf file, or GPT-2's vocab.json)", path);
}
