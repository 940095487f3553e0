/*
 * SentencePiece ModelProto (sentencepiece_model.proto, proto2) read and written by hand:
 * the few fields that change encoding are decoded, everything else is skipped by wire type.
 * Every length is checked against the bytes left, so a truncated or hostile file ends in
 * LLMSQ_STATUS_FORMAT naming the file and the byte offset, never in a read past the end.
 */
#include "spm-impl.h"

#include "llmsq/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_SGROUP = 3, PB_EGROUP = 4, PB_I32 = 5 };

typedef struct pb_reader {
    const uint8_t *base, *p, *end;
    const char    *path;
} pb_reader;

static llmsq_status pb_fail(const pb_reader *r, const uint8_t *at, const char *what)
{
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: malformed SentencePiece model at byte offset %zu: %s",
                       r->path, (size_t)(at - r->base), what);
}

static llmsq_status pb_varint(pb_reader *r, uint64_t *v)
{
    const uint8_t *at = r->p;
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return pb_fail(r, at, "truncated varint");
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return pb_fail(r, at, "varint overflows 64 bits");
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return LLMSQ_OK;
        }
    }
    return pb_fail(r, at, "varint longer than 10 bytes");
}

/* Reads a field key; *field 0 means the end of this message's bytes. */
static llmsq_status pb_key(pb_reader *r, uint32_t *field, int *wt)
{
    *field = 0;
    if (r->p >= r->end) return LLMSQ_OK;
    const uint8_t *at = r->p;
    uint64_t k;
    LLMSQ_TRY(pb_varint(r, &k));
    if ((k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF) return pb_fail(r, at, "invalid field number");
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    return LLMSQ_OK;
}

static llmsq_status pb_len(pb_reader *r, const uint8_t **s, size_t *n)
{
    const uint8_t *at = r->p;
    uint64_t l;
    LLMSQ_TRY(pb_varint(r, &l));
    if (l > (uint64_t)(r->end - r->p)) {
        char what[96];
        snprintf(what, sizeof what, "length %llu runs past the end of its message (%zu bytes left)",
                 (unsigned long long)l, (size_t)(r->end - r->p));
        return pb_fail(r, at, what);
    }
    *s = r->p;
    *n = (size_t)l;
    r->p += l;
    return LLMSQ_OK;
}

static llmsq_status pb_fixed(pb_reader *r, size_t n, uint8_t *out)
{
    if ((size_t)(r->end - r->p) < n) return pb_fail(r, r->p, "truncated fixed-width field");
    memcpy(out, r->p, n);
    r->p += n;
    return LLMSQ_OK;
}

static llmsq_status pb_skip(pb_reader *r, uint32_t field, int wt, int depth)
{
    uint64_t v;
    uint8_t tmp[8];
    const uint8_t *s;
    size_t n;
    switch (wt) {
    case PB_VARINT: return pb_varint(r, &v);
    case PB_I64: return pb_fixed(r, 8, tmp);
    case PB_I32: return pb_fixed(r, 4, tmp);
    case PB_LEN: return pb_len(r, &s, &n);
    case PB_SGROUP:
        if (depth > 64) return pb_fail(r, r->p, "groups nested too deeply");
        for (;;) {
            const uint8_t *at = r->p;
            uint32_t f;
            int w;
            LLMSQ_TRY(pb_key(r, &f, &w));
            if (f == 0) return pb_fail(r, at, "unterminated group");
            if (w == PB_EGROUP) {
                if (f != field) return pb_fail(r, at, "mismatched end of group");
                return LLMSQ_OK;
            }
            LLMSQ_TRY(pb_skip(r, f, w, depth + 1));
        }
    default: return pb_fail(r, r->p, wt == PB_EGROUP ? "unexpected end of group" : "invalid wire type");
    }
}

static pb_reader pb_sub(const pb_reader *r, const uint8_t *s, size_t n)
{
    return (pb_reader){r->base, s, s + n, r->path};
}

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct spm_proto {
    const char **piece;
    uint32_t    *len;
    float       *score;
    int32_t     *type;
    int64_t      n, cap;
    int32_t      model_type;
    bool         treat_ws_as_suffix;
    char        *unk_surface;
    const uint8_t *charsmap[2]; /* normalizer, denormalizer; last occurrence wins, as in protobuf */
    size_t       charsmap_len[2];
    bool         has_trainer, has_normalizer;
    llmsq_spm_options opt, denorm_opt;
} spm_proto;

static llmsq_status spm_read_piece(pb_reader *r, spm_proto *m)
{
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 1024;
        const char **piece = realloc(m->piece, (size_t)cap * sizeof *piece);
        if (piece) m->piece = piece;
        uint32_t *len = realloc(m->len, (size_t)cap * sizeof *len);
        if (len) m->len = len;
        float *score = realloc(m->score, (size_t)cap * sizeof *score);
        if (score) m->score = score;
        int32_t *type = realloc(m->type, (size_t)cap * sizeof *type);
        if (type) m->type = type;
        if (!piece || !len || !score || !type)
            return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory reading pieces", r->path);
        m->cap = cap;
    }
    int64_t i = m->n;
    m->piece[i] = "";
    m->len[i] = 0;
    m->score[i] = 0.0f;
    m->type[i] = LLMSQ_TOKEN_NORMAL;
    for (;;) {
        const uint8_t *at = r->p, *s;
        uint32_t f;
        int wt;
        size_t n;
        uint64_t v;
        LLMSQ_TRY(pb_key(r, &f, &wt));
        if (f == 0) break;
        if (f == 1 && wt == PB_LEN) {
            LLMSQ_TRY(pb_len(r, &s, &n));
            if (n > UINT32_MAX) return pb_fail(r, at, "piece too long");
            m->piece[i] = (const char *)s;
            m->len[i] = (uint32_t)n;
        } else if (f == 2 && wt == PB_I32) {
            uint8_t b[4] = {0};
            LLMSQ_TRY(pb_fixed(r, 4, b));
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&m->score[i], &u, 4);
        } else if (f == 3 && wt == PB_VARINT) {
            LLMSQ_TRY(pb_varint(r, &v));
            int32_t ty = (int32_t)(uint32_t)v;
            if (ty < LLMSQ_TOKEN_NORMAL || ty > LLMSQ_TOKEN_BYTE) return pb_fail(r, at, "invalid piece type");
            m->type[i] = ty;
        } else {
            LLMSQ_TRY(pb_skip(r, f, wt, 0));
        }
    }
    if (m->len[i] == 0) return pb_fail(r, r->p, "empty piece");
    m->n++;
    return LLMSQ_OK;
}

static llmsq_status spm_read_trainer(pb_reader *r, spm_proto *m)
{
    for (;;) {
        const uint8_t *s;
        uint32_t f;
        int wt;
        size_t n;
        uint64_t v;
        LLMSQ_TRY(pb_key(r, &f, &wt));
        if (f == 0) return LLMSQ_OK;
        if (wt == PB_VARINT && (f == 3 || f == 24 || f == 35 || (f >= 40 && f <= 43))) {
            LLMSQ_TRY(pb_varint(r, &v));
            int32_t x = (int32_t)(uint32_t)v;
            switch (f) {
            case 3: m->model_type = x; break;
            case 24: m->treat_ws_as_suffix = v != 0; break;
            case 35: m->opt.byte_fallback = v != 0; break;
            case 40: m->opt.unk_id = x; break;
            case 41: m->opt.bos_id = x; break;
            case 42: m->opt.eos_id = x; break;
            default: m->opt.pad_id = x; break;
            }
        } else if (f == 44 && wt == PB_LEN) {
            LLMSQ_TRY(pb_len(r, &s, &n));
            free(m->unk_surface);
            m->unk_surface = strndup((const char *)s, n);
            if (!m->unk_surface) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", r->path);
        } else {
            LLMSQ_TRY(pb_skip(r, f, wt, 0));
        }
    }
}

static llmsq_status spm_read_normalizer(pb_reader *r, spm_proto *m, bool denorm)
{
    for (;;) {
        const uint8_t *s;
        uint32_t f;
        int wt;
        size_t n;
        uint64_t v;
        LLMSQ_TRY(pb_key(r, &f, &wt));
        if (f == 0) return LLMSQ_OK;
        if (f == 2 && wt == PB_LEN) {
            LLMSQ_TRY(pb_len(r, &s, &n));
            m->charsmap[denorm] = s;
            m->charsmap_len[denorm] = n;
        } else if (f >= 3 && f <= 5 && wt == PB_VARINT) {
            LLMSQ_TRY(pb_varint(r, &v));
            llmsq_spm_options *o = denorm ? &m->denorm_opt : &m->opt;
            bool *b = f == 3 ? &o->add_dummy_prefix
                    : f == 4 ? &o->remove_extra_whitespaces : &o->escape_whitespaces;
            *b = v != 0;
        } else {
            LLMSQ_TRY(pb_skip(r, f, wt, 0));
        }
    }
}

static llmsq_status spm_read_model(pb_reader *r, spm_proto *m)
{
    for (;;) {
        const uint8_t *s;
        uint32_t f;
        int wt;
        size_t n;
        LLMSQ_TRY(pb_key(r, &f, &wt));
        if (f == 0) return LLMSQ_OK;
        if (wt == PB_LEN && f >= 1 && f <= 5 && f != 4) {
            LLMSQ_TRY(pb_len(r, &s, &n));
            pb_reader sub = pb_sub(r, s, n);
            if (f == 1) {
                LLMSQ_TRY(spm_read_piece(&sub, m));
            } else if (f == 2) {
                m->has_trainer = true;
                LLMSQ_TRY(spm_read_trainer(&sub, m));
            } else {
                m->has_normalizer |= f == 3;
                LLMSQ_TRY(spm_read_normalizer(&sub, m, f == 5));
            }
        } else {
            LLMSQ_TRY(pb_skip(r, f, wt, 0));
        }
    }
}

llmsq_status spm_load_buf(const char *data, size_t size, const char *path, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT((data || size == 0) && path && out);
    *out = NULL;
    if (!data) data = "";
    spm_proto m = {.model_type = SPM_MODEL_UNIGRAM, .opt = llmsq_spm_default_options(),
                   .denorm_opt = llmsq_spm_default_options()};
    pb_reader r = {(const uint8_t *)data, (const uint8_t *)data, (const uint8_t *)data + size, path};
    llmsq_status st = spm_read_model(&r, &m);
    if (st == LLMSQ_OK && m.n == 0)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: not a SentencePiece model (no pieces in %zu bytes)", path, size);
    /* Protobuf has no end marker: a file cut between two fields parses. The trainer
     * writes pieces, trainer_spec, normalizer_spec in that order, so insist on both specs. */
    if (st == LLMSQ_OK && (!m.has_trainer || !m.has_normalizer))
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: SentencePiece model without %s (truncated at byte offset %zu?)",
                         path, m.has_trainer ? "normalizer_spec" : "trainer_spec", size);
    if (st == LLMSQ_OK && m.model_type != SPM_MODEL_BPE && m.model_type != SPM_MODEL_UNIGRAM)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED,
                         "%s: SentencePiece model type %d (%s) is not supported, only unigram (1) and BPE (2)", path,
                         (int)m.model_type, m.model_type == SPM_MODEL_WORD ? "word"
                                            : m.model_type == SPM_MODEL_CHAR ? "char" : "unknown");
    if (st == LLMSQ_OK && m.treat_ws_as_suffix)
        st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", path);
    struct spm_charsmap *maps[2] = {NULL, NULL};
    for (int k = 0; k < 2 && st == LLMSQ_OK; k++)
        if (m.charsmap_len[k] > 0)
            st = spm_charsmap_parse(m.charsmap[k], m.charsmap_len[k], path, (size_t)(m.charsmap[k] - r.base), &maps[k]);
    if (st == LLMSQ_OK) st = spm_build(m.n, m.piece, m.len, m.score, m.type, &m.opt, m.unk_surface, path, out);
    if (st == LLMSQ_OK && m.model_type == SPM_MODEL_UNIGRAM) {
        st = spm_unigram_init(*out, path);
        if (st != LLMSQ_OK) {
            llmsq_tokenizer_free(*out);
            *out = NULL;
        }
    }
    if (st == LLMSQ_OK) {
        (*out)->charsmap = maps[0];
        (*out)->denorm = maps[1];
        (*out)->denorm_opt = m.denorm_opt;
    } else {
        spm_charsmap_free(maps[0]);
        spm_charsmap_free(maps[1]);
    }

    free(m.piece);
    free(m.len);
    free(m.score);
    free(m.type);
    free(m.unk_surface);
    return st;
}

llmsq_status llmsq_tokenizer_load_spm(const char *path, llmsq_tokenizer **out)
{
    LLMSQ_ASSERT(path && out);
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    LLMSQ_TRY(llmsq_read_file(path, &data, &size));
    llmsq_status st = spm_load_buf(data, size, path, out);
    free(data);
    return st;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct pb_writer {
    uint8_t *p;
    size_t   n, cap;
    bool     oom;
} pb_writer;

static void pb_put(pb_writer *w, const void *s, size_t n)
{
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n) cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void pb_put_varint(pb_writer *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(w, b, n);
}

static void pb_put_key(pb_writer *w, uint32_t field, int wt) { pb_put_varint(w, (uint64_t)field << 3 | (uint64_t)wt); }

/* int32 and enum values are sign-extended to 64 bits on the wire. */
static void pb_put_int(pb_writer *w, uint32_t field, int64_t v)
{
    pb_put_key(w, field, PB_VARINT);
    pb_put_varint(w, (uint64_t)v);
}

static void pb_put_bytes(pb_writer *w, uint32_t field, const void *s, size_t n)
{
    pb_put_key(w, field, PB_LEN);
    pb_put_varint(w, n);
    pb_put(w, s, n);
}

static void pb_put_msg(pb_writer *w, uint32_t field, pb_writer *sub)
{
    if (sub->oom) w->oom = true;
    pb_put_bytes(w, field, sub->p, sub->n);
    sub->n = 0;
}

llmsq_status llmsq_spm_write(const char *path, int64_t n, const char *const *pieces,
                             const float *scores, const int32_t *types, const llmsq_spm_options *opt)
{
    return spm_write_model(path, n, pieces, scores, types, opt, SPM_MODEL_BPE, NULL, NULL, 0);
}

llmsq_status spm_write_model(const char *path, int64_t n, const char *const *pieces, const float *scores,
                             const int32_t *types, const llmsq_spm_options *opt, int model_type,
                             const char *norm_name, const void *charsmap, size_t charsmap_len)
{
    LLMSQ_ASSERT(path && pieces && (charsmap || charsmap_len == 0));
    LLMSQ_ASSERT(model_type == SPM_MODEL_BPE || model_type == SPM_MODEL_UNIGRAM);
    llmsq_spm_options o = opt ? *opt : llmsq_spm_default_options();
    /* Only write what loads back: the same checks as a reader. */
    llmsq_tokenizer *check;
    LLMSQ_TRY(spm_build(n, pieces, NULL, scores, types, &o, NULL, path, &check));
    llmsq_status vst = model_type == SPM_MODEL_UNIGRAM ? spm_unigram_init(check, path) : LLMSQ_OK;
    if (vst == LLMSQ_OK && charsmap_len > 0) {
        struct spm_charsmap *cm;
        vst = spm_charsmap_parse(charsmap, charsmap_len, path, 0, &cm);
        spm_charsmap_free(cm);
    }
    if (vst != LLMSQ_OK) {
        llmsq_tokenizer_free(check);
        return vst;
    }

    pb_writer w = {0}, sub = {0};
    for (int64_t i = 0; i < n; i++) {
        pb_put_bytes(&sub, 1, check->piece[i], check->len[i]);
        uint32_t u;
        memcpy(&u, &check->score[i], 4);
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        pb_put_key(&sub, 2, PB_I32);
        pb_put(&sub, b, 4);
        pb_put_int(&sub, 3, check->type[i]);
        pb_put_msg(&w, 1, &sub);
    }
    llmsq_tokenizer_free(check);

    pb_put_int(&sub, 3, model_type);
    pb_put_int(&sub, 4, n); /* vocab_size */
    pb_put_int(&sub, 35, o.byte_fallback);
    pb_put_int(&sub, 40, o.unk_id);
    pb_put_int(&sub, 41, o.bos_id);
    pb_put_int(&sub, 42, o.eos_id);
    pb_put_int(&sub, 43, o.pad_id);
    pb_put_msg(&w, 2, &sub);

    if (!norm_name) norm_name = charsmap_len ? "user_defined" : "identity";
    pb_put_bytes(&sub, 1, norm_name, strlen(norm_name));
    if (charsmap_len) pb_put_bytes(&sub, 2, charsmap, charsmap_len);
    pb_put_int(&sub, 3, o.add_dummy_prefix);
    pb_put_int(&sub, 4, o.remove_extra_whitespaces);
    pb_put_int(&sub, 5, o.escape_whitespaces);
    pb_put_msg(&w, 3, &sub);
    free(sub.p);
    if (w.oom) {
        free(w.p);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory building the model", path);
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(w.p);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    llmsq_status st = LLMSQ_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = llmsq_error(LLMSQ_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        bool ok = fwrite(w.p, 1, w.n, f) == w.n;
        ok = (fflush(f) == 0) && ok;
        int err = errno;
        ok = (fclose(f) == 0) && ok;
        if (!ok) st = llmsq_error(LLMSQ_STATUS_IO, "%s: write failed: %s", tmp, strerror(err ? err : errno));
        else if (rename(tmp, path) != 0)
            st = llmsq_error(LLMSQ_STATUS_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        if (st != LLMSQ_OK) remove(tmp);
    }
    free(tmp);
    free(w.p);
    return st;
}
