/* SentencePiece unigram models and precompiled charsmaps: small models trained with the
 * sentencepiece library against what the library does with them (tests/data/
 * spm_unigram_cases.txt, made by spm_unigram_gen.py), an exhaustive best-segmentation
 * reference on a hand-built vocabulary, and corrupt charsmaps. */
#include "testutil.h"

#include "../formats/spm-impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

/* tests/data beside this file. */
static char *data_path(const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char *d = llmsq_path_join(dir, "data");
    char *p = llmsq_path_join(d, name);
    free(d);
    return p;
}

static char *slurp(const char *path, size_t *n)
{
    char *d = NULL;
    ck_assert_msg(llmsq_read_file(path, &d, n) == LLMSQ_OK, "%s", llmsq_last_error());
    return d;
}

static char *fixture_bytes(const char *name, size_t *n)
{
    char *path = data_path(name);
    char *d = slurp(path, n);
    free(path);
    return d;
}

/* A fixture model on disk, decompressed into dir when it is stored as .zst. */
static char *fixture_model(const char *name, const char *dir)
{
    char zname[256];
    snprintf(zname, sizeof zname, "%s.zst", name);
    char *zpath = data_path(zname);
    if (!llmsq_is_file(zpath)) {
        free(zpath);
        return data_path(name);
    }
    size_t zn;
    char *z = slurp(zpath, &zn);
    unsigned long long n = ZSTD_getFrameContentSize(z, zn);
    ck_assert(n != ZSTD_CONTENTSIZE_ERROR && n != ZSTD_CONTENTSIZE_UNKNOWN);
    char *raw = malloc(n);
    ck_assert_uint_eq(ZSTD_decompress(raw, n, z, zn), n);
    char *out = llmsq_path_join(dir, name);
    tu_write_file(out, raw, n);
    free(raw);
    free(z);
    free(zpath);
    return out;
}

static llmsq_tokenizer *load(const char *path)
{
    llmsq_tokenizer *t = NULL;
    ck_assert_msg(llmsq_tokenizer_load_spm(path, &t) == LLMSQ_OK, "load %s: %s", path, llmsq_last_error());
    return t;
}

/* Undoes spm_unigram_gen.py's esc(): \\ \t \n \r \xNN. Returns the length. */
static size_t unescape(const char *s, char *out)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 't': out[n++] = '\t'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 'x': {
            unsigned v;
            ck_assert(sscanf(s + 1, "%2x", &v) == 1);
            out[n++] = (char)v;
            s += 2;
            break;
        }
        default: out[n++] = *s; break;
        }
    }
    return n;
}

/* Splits line into at most max tab-separated fields in place. */
static int split_tabs(char *line, char **f, int max)
{
    int k = 0;
    f[k++] = line;
    for (char *p = line; *p && k < max; p++)
        if (*p == '\t') {
            *p = 0;
            f[k++] = p + 1;
        }
    return k;
}

/* ---- the library's outputs ---------------------------------------------------------------- */

typedef struct model_cache {
    char            *dir;
    char            *name[16];
    llmsq_tokenizer *tok[16];
    int              n;
} model_cache;

static llmsq_tokenizer *cached(model_cache *mc, const char *name)
{
    for (int i = 0; i < mc->n; i++)
        if (strcmp(mc->name[i], name) == 0) return mc->tok[i];
    ck_assert_int_lt(mc->n, 16);
    char *path = fixture_model(name, mc->dir);
    mc->name[mc->n] = strdup(name);
    mc->tok[mc->n] = load(path);
    free(path);
    return mc->tok[mc->n++];
}

static void cache_free(model_cache *mc)
{
    for (int i = 0; i < mc->n; i++) {
        free(mc->name[i]);
        llmsq_tokenizer_free(mc->tok[i]);
    }
    free(mc->dir);
}

START_TEST(test_library_cases)
{
    model_cache mc = {.dir = tu_tmpdir("spm-ug-cases")};
    size_t size;
    char *text = fixture_bytes("spm_unigram_cases.txt", &size);
    char *in = malloc(size), *want_norm = malloc(size), *want_dec = malloc(size);
    int n_cases = 0, n_bad = 0, n_models = 0;
    const char *last_model = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[6];
        int k = split_tabs(line, f, 6);
        if (strcmp(f[0], "case") != 0) continue;
        ck_assert_int_eq(k, 6);
        llmsq_tokenizer *t = cached(&mc, f[1]);
        if (strcmp(f[1], last_model) != 0) n_models++;
        last_model = f[1];
        size_t in_n = unescape(f[2], in);
        size_t norm_n = unescape(f[4], want_norm);
        size_t dec_n = unescape(f[5], want_dec);

        int32_t want[4096];
        size_t n_want = 0;
        for (char *p = f[3]; *p;) {
            char *end;
            long v = strtol(p, &end, 10);
            ck_assert(end != p && n_want < 4096);
            want[n_want++] = (int32_t)v;
            p = end + (*end == ' ');
        }

        int32_t *ids;
        size_t n;
        ck_assert_int_eq(llmsq_tokenizer_encode(t, in, in_n, false, &ids, &n), LLMSQ_OK);
        char *norm, *dec;
        size_t nn, dn;
        ck_assert_int_eq(spm_normalize_text(t, in, in_n, &norm, &nn), LLMSQ_OK);
        ck_assert_int_eq(llmsq_tokenizer_decode(t, want, n_want, &dec, &dn), LLMSQ_OK);
        bool ok_ids = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        bool ok_norm = nn == norm_n && memcmp(norm, want_norm, nn) == 0;
        bool ok_dec = dn == dec_n && memcmp(dec, want_dec, dn) == 0;
        if (!ok_ids || !ok_norm || !ok_dec) {
            if (++n_bad <= 10) {
                fprintf(stderr, "%s '%s': ids %s, normalized %s, decoded %s\n  got:", f[1], f[2], ok_ids ? "ok" : "DIFFER",
                        ok_norm ? "ok" : "DIFFER", ok_dec ? "ok" : "DIFFER");
                for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n  want: %s\n", f[3]);
            }
        }
        n_cases++;
        free(ids);
        free(norm);
        free(dec);
    }
    ck_assert_int_ge(n_models, 8);
    ck_assert_int_ge(n_cases, 400);
    ck_assert_msg(n_bad == 0, "%d of %d cases differ from sentencepiece", n_bad, n_cases);
    free(in);
    free(want_norm);
    free(want_dec);
    free(text);
    cache_free(&mc);
}
END_TEST

/* spm_unigram_gen.py's long_text(): ~200 KB of words from an LCG, long enough for path
 * scores to leave [-1e5, 1e5] many times (the library's rebase). */
static char *long_text(size_t *n_out)
{
    static const char *const words[] = {
        "the", "of", "and", "to", "in", "is", "was", "for", "on", "as", "with", "by", "he", "at", "from", "his",
        "an", "were", "are", "which", "this", "be", "or", "has", "had", "not", "but", "first", "one", "their",
        "its", "new", "after", "who", "they", "two", "her", "she", "been", "other", "when", "there", "all",
        "during", "into", "school", "time", "may", "years", "more", "most", "only", "over", "city", "some",
        "world", "would", "where", "later", "up", "such", "used", "many", "can", "state", "about", "national",
        "out", "known", "university", "united", "then", "made", "\xEF\xBD\x86\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C",
        "\xEF\xBD\x97\xEF\xBD\x89\xEF\xBD\x84\xEF\xBD\x94\xEF\xBD\x88", "caf\xC3\xA9", "na\xC3\xAFve",
        "\xE6\x9D\xB1\xE4\xBA\xAC", "\xE2\x91\xA0", "\xE2\x84\xA2", "\xEF\xAC\x81ne", "Stra\xC3\x9F\x65", "qq"};
    static const char *const seps[16] = {" ", " ", " ", " ", " ", " ", " ", " ", " ", " ", ", ", ". ", "  ", "\n", ".\n", "\t"};
    const uint32_t nw = sizeof words / sizeof words[0];
    size_t cap = 210000, n = 0;
    char *s = malloc(cap);
    uint32_t x = 0x2545F491u;
    while (n < 200000) {
        x = x * 1664525u + 1013904223u;
        const char *w = words[(x >> 16) % nw], *sep = seps[(x >> 8) & 15];
        size_t wl = strlen(w), sl = strlen(sep);
        memcpy(s + n, w, wl);
        memcpy(s + n + wl, sep, sl);
        n += wl + sl;
    }
    *n_out = n;
    return s;
}

static void expect_stream(llmsq_tokenizer *t, const char *what, const char *text, size_t n, const char *count,
                          const char *sha)
{
    int32_t *ids;
    size_t k;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, n, false, &ids, &k), LLMSQ_OK);
    char hex[65];
    llmsq_token_sha256(ids, k, hex);
    ck_assert_msg(k == (size_t)strtoull(count, NULL, 10) && strcmp(hex, sha) == 0,
                  "%s: %zu ids, sha256 %s; sentencepiece gives %s ids, %s", what, k, hex, count, sha);
    free(ids);
}

START_TEST(test_long_inputs)
{
    model_cache mc = {.dir = tu_tmpdir("spm-ug-long")};
    size_t size, n;
    char *text = fixture_bytes("spm_unigram_cases.txt", &size);
    char *lt = long_text(&n);
    int n_long = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[5];
        int k = split_tabs(line, f, 5);
        if (strcmp(f[0], "long") == 0) {
            ck_assert_int_eq(k, 4);
            expect_stream(cached(&mc, f[1]), f[1], lt, n, f[2], f[3]);
            n_long++;
        } else if (strcmp(f[0], "file") == 0) {
            ck_assert_int_eq(k, 5);
            char *path = tu_shared(f[2]);
            if (!path) {
                fprintf(stderr, "SKIP %s on %s: ../shared/%s not found\n", __func__, f[1], f[2]);
                continue;
            }
            size_t fn;
            char *data = slurp(path, &fn);
            llmsq_tokenizer *t = cached(&mc, f[1]);
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            expect_stream(t, path, data, fn, f[3], f[4]);
            clock_gettime(CLOCK_MONOTONIC, &b);
            fprintf(stderr, "%s: %s (%zu bytes) in %.3f s\n", f[1], f[2], fn,
                    (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
            free(data);
            free(path);
        }
    }
    ck_assert_int_eq(n_long, 4);
    free(lt);
    free(text);
    cache_free(&mc);
}
END_TEST

/* A megabyte in well under a second (release builds; sanitizers only have to finish). */
START_TEST(test_speed)
{
    char *dir = tu_tmpdir("spm-ug-speed");
    char *path = fixture_model("spm_ug_nmt.model", dir);
    llmsq_tokenizer *t = load(path);
    size_t n;
    char *part = long_text(&n);
    size_t total = 5 * n;
    char *text = malloc(total);
    for (int i = 0; i < 5; i++) memcpy(text + i * n, part, n);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int32_t *ids;
    size_t k;
    ck_assert_int_eq(llmsq_tokenizer_encode(t, text, total, true, &ids, &k), LLMSQ_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    fprintf(stderr, "unigram + nmt_nfkc: %zu bytes -> %zu ids in %.3f s\n", total, k, s);
    ck_assert_int_eq(ids[0], llmsq_tokenizer_bos(t));
#if !defined(__SANITIZE_ADDRESS__)
    ck_assert_msg(s < 0.5, "1 MB took %.3f s", s);
#endif
    free(ids);
    free(text);
    free(part);
    llmsq_tokenizer_free(t);
    free(path);
    free(dir);
}
END_TEST

/* Every Unicode scalar value through the normalizer, hashed as the generator does. */
START_TEST(test_charsmap_all_chars)
{
    model_cache mc = {.dir = tu_tmpdir("spm-ug-chars")};
    size_t size;
    char *text = fixture_bytes("spm_unigram_cases.txt", &size);
    int n_maps = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[3];
        if (split_tabs(line, f, 3) != 3 || strcmp(f[0], "allchars") != 0) continue;
        llmsq_tokenizer *t = cached(&mc, f[1]);
        llmsq_sha256 c;
        llmsq_sha256_init(&c);
        for (uint32_t cp = 0; cp < 0x110000; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            char u[4];
            size_t un = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
            for (size_t i = un; i-- > 1;) u[i] = (char)(0x80 | (cp >> 6 * (un - 1 - i) & 63));
            u[0] = (char)(lead[un] | cp >> 6 * (un - 1));
            char *norm;
            size_t nn;
            ck_assert_int_eq(spm_normalize_text(t, u, un, &norm, &nn), LLMSQ_OK);
            llmsq_sha256_update(&c, norm, nn);
            llmsq_sha256_update(&c, "", 1);
            free(norm);
        }
        uint8_t d[32];
        char hex[65];
        llmsq_sha256_final(&c, d);
        for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", d[i]);
        ck_assert_msg(strcmp(hex, f[2]) == 0, "%s: normalizing every character differs from sentencepiece", f[1]);
        n_maps++;
    }
    ck_assert_int_eq(n_maps, 2);
    free(text);
    cache_free(&mc);
}
END_TEST

/* ---- exhaustive reference ------------------------------------------------------------------ */

/* A hand-built vocabulary with scores in eighths, so every path sum is exact in float and
 * "best" needs no rounding rule: the reference enumerates every segmentation. */
static const struct { const char *s; float score; int32_t type; } bf_vocab[] = {
    {"<unk>", 0, LLMSQ_TOKEN_UNKNOWN}, {"<s>", 0, LLMSQ_TOKEN_CONTROL}, {"a", -1.0f, LLMSQ_TOKEN_NORMAL},
    {"b", -1.5f, LLMSQ_TOKEN_NORMAL}, {"ab", -2.5f, LLMSQ_TOKEN_NORMAL}, {"ba", -2.625f, LLMSQ_TOKEN_NORMAL},
    {"abc", -3.0f, LLMSQ_TOKEN_NORMAL}, {"\xC3\xA9", -2.0f, LLMSQ_TOKEN_NORMAL}, {"\xC3\xA9\x61", -2.75f, LLMSQ_TOKEN_NORMAL},
    {"cc", -0.5f, LLMSQ_TOKEN_UNUSED}, {"bb", -2.75f, LLMSQ_TOKEN_NORMAL}, {"aab", -3.375f, LLMSQ_TOKEN_NORMAL},
    {"ca", -3.5f, LLMSQ_TOKEN_NORMAL}, {"bcb", -4.125f, LLMSQ_TOKEN_NORMAL}, {"x", -7.875f, LLMSQ_TOKEN_UNUSED},
};
#define BF_N (int)(sizeof bf_vocab / sizeof bf_vocab[0])

typedef struct bf_state {
    const char *s;
    size_t      n;
    bool        bytes; /* byte fallback */
    int32_t     byte_base; /* id of <0x00> */
    double      best;
    int         n_best;
    int32_t     seg[64], best_ids[64][64];
    size_t      seg_n, best_n[64];
    uint32_t    seg_len[64];
} bf_state;

/* Unknown runs merge into one id; with byte fallback they become byte pieces. */
static size_t bf_ids(const bf_state *b, int32_t *out)
{
    size_t k = 0, pos = 0;
    for (size_t i = 0; i < b->seg_n; i++) {
        bool unk = b->seg[i] == 0;
        if (unk && b->bytes)
            for (uint32_t j = 0; j < b->seg_len[i]; j++) out[k++] = b->byte_base + (uint8_t)b->s[pos + j];
        else if (!(unk && i > 0 && b->seg[i - 1] == 0))
            out[k++] = b->seg[i];
        pos += b->seg_len[i];
    }
    return k;
}

static void bf_walk(bf_state *b, size_t pos, double score)
{
    if (pos == b->n) {
        int32_t ids[64];
        size_t k = bf_ids(b, ids);
        if (b->n_best > 0 && score < b->best) return;
        if (b->n_best == 0 || score > b->best) b->n_best = 0;
        b->best = score;
        for (int i = 0; i < b->n_best; i++)
            if (b->best_n[i] == k && memcmp(b->best_ids[i], ids, k * sizeof *ids) == 0) return;
        if (b->n_best < 64) {
            memcpy(b->best_ids[b->n_best], ids, k * sizeof *ids);
            b->best_n[b->n_best++] = k;
        }
        return;
    }
    size_t clen = (uint8_t)b->s[pos] >= 0xC0 ? 2 : 1; /* the alphabet below: ASCII and U+00E9 */
    bool single = false;
    for (int id = 2; id < BF_N; id++) {
        size_t l = strlen(bf_vocab[id].s);
        if (bf_vocab[id].type != LLMSQ_TOKEN_NORMAL || l > b->n - pos || memcmp(b->s + pos, bf_vocab[id].s, l) != 0)
            continue;
        if (l == clen) single = true;
        b->seg[b->seg_n] = id;
        b->seg_len[b->seg_n++] = (uint32_t)l;
        bf_walk(b, pos + l, score + bf_vocab[id].score);
        b->seg_n--;
    }
    if (!single) { /* the library's unknown node: one character, lowest NORMAL score - 10 */
        double min = 0;
        for (int id = 0; id < BF_N; id++)
            if (bf_vocab[id].type == LLMSQ_TOKEN_NORMAL && bf_vocab[id].score < min) min = bf_vocab[id].score;
        b->seg[b->seg_n] = 0;
        b->seg_len[b->seg_n++] = (uint32_t)clen;
        bf_walk(b, pos + clen, score + min - 10.0);
        b->seg_n--;
    }
}

START_TEST(test_exhaustive_reference)
{
    char *dir = tu_tmpdir("spm-ug-bf");
    for (int with_bytes = 0; with_bytes < 2; with_bytes++) {
        const char *pieces[BF_N + 256];
        float scores[BF_N + 256];
        int32_t types[BF_N + 256];
        char byte_names[256][8];
        int n = 0;
        for (int i = 0; i < BF_N; i++, n++) {
            pieces[n] = bf_vocab[i].s;
            scores[n] = bf_vocab[i].score;
            types[n] = bf_vocab[i].type;
        }
        /* "x" is UNUSED and has the lowest score: the unknown score must ignore it. */
        for (int b = 0; with_bytes && b < 256; b++, n++) {
            snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
            pieces[n] = byte_names[b];
            scores[n] = 0;
            types[n] = LLMSQ_TOKEN_BYTE;
        }
        llmsq_spm_options o = llmsq_spm_default_options();
        o.add_dummy_prefix = o.remove_extra_whitespaces = o.escape_whitespaces = false;
        o.byte_fallback = with_bytes;
        o.eos_id = -1;
        char *path = llmsq_path_join(dir, with_bytes ? "bf_bytes.model" : "bf.model");
        ck_assert_msg(spm_write_model(path, n, pieces, scores, types, &o, SPM_MODEL_UNIGRAM, NULL, NULL, 0) == LLMSQ_OK,
                      "%s", llmsq_last_error());
        llmsq_tokenizer *t = load(path);

        static const char *const alpha[] = {"a", "b", "c", "\xC3\xA9", "x"};
        uint64_t r = 88172645463325252ull;
        int n_unique = 0;
        for (int round = 0; round < 3000; round++) {
            char s[64];
            size_t len = 0;
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            int chars = 1 + (int)(r % 10);
            for (int c = 0; c < chars; c++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                const char *a = alpha[r % 5];
                memcpy(s + len, a, strlen(a));
                len += strlen(a);
            }
            bf_state b = {.s = s, .n = len, .bytes = with_bytes, .byte_base = BF_N};
            bf_walk(&b, 0, 0.0);
            ck_assert_int_gt(b.n_best, 0);
            int32_t *ids;
            size_t k;
            ck_assert_int_eq(llmsq_tokenizer_encode(t, s, len, false, &ids, &k), LLMSQ_OK);
            bool found = false;
            for (int i = 0; i < b.n_best && !found; i++)
                found = b.best_n[i] == k && memcmp(b.best_ids[i], ids, k * sizeof *ids) == 0;
            ck_assert_msg(found, "'%.*s': not one of the %d best segmentations (score %g)", (int)len, s, b.n_best,
                          b.best);
            n_unique += b.n_best == 1;
            free(ids);
        }
        ck_assert_int_gt(n_unique, 1000); /* most inputs have a single best path: compared exactly */
        llmsq_tokenizer_free(t);
        free(path);
    }
    free(dir);
}
END_TEST

/* ---- corrupt charsmaps ----------------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static uint64_t get_varint(const uint8_t **p)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return v;
    }
}

/* The precompiled_charsmap inside top-level field `spec` (3 normalizer, 5 denormalizer). */
static const uint8_t *find_charsmap(const uint8_t *m, size_t n, uint32_t spec, size_t *len)
{
    const uint8_t *p = m, *end = m + n;
    while (p < end) {
        uint64_t key = get_varint(&p);
        ck_assert_int_eq(key & 7, 2); /* the trainer writes only messages at the top level */
        uint64_t l = get_varint(&p);
        if ((key >> 3) == spec) {
            const uint8_t *q = p, *qend = p + l;
            while (q < qend) {
                uint64_t k = get_varint(&q);
                if ((k & 7) == 0) {
                    get_varint(&q);
                    continue;
                }
                ck_assert_int_eq(k & 7, 2);
                uint64_t kl = get_varint(&q);
                if ((k >> 3) == 2) {
                    *len = kl;
                    return q;
                }
                q += kl;
            }
        }
        p += l;
    }
    ck_abort_msg("no charsmap in field %u", spec);
    return NULL;
}

/* model + spec { precompiled_charsmap: blob }: protobuf merges it over the first one. */
static uint8_t *with_charsmap(const uint8_t *m, size_t n, uint32_t spec, const uint8_t *blob, size_t bn, size_t *out_n)
{
    uint8_t *o = malloc(n + bn + 32), hdr[12];
    memcpy(o, m, n);
    size_t k = n, h = 0;
    hdr[h++] = 0x12;
    h += put_varint(hdr + h, bn);
    k += put_varint(o + k, spec << 3 | 2);
    k += put_varint(o + k, h + bn);
    memcpy(o + k, hdr, h);
    k += h;
    memcpy(o + k, blob, bn);
    *out_n = k + bn;
    return o;
}

static llmsq_status load_bytes(const char *path, const uint8_t *d, size_t n, llmsq_tokenizer **t)
{
    tu_write_file(path, d, n);
    return llmsq_tokenizer_load_spm(path, t);
}

static void expect_format(const char *path, const uint8_t *d, size_t n, const char *what)
{
    llmsq_tokenizer *t = NULL;
    llmsq_status st = load_bytes(path, d, n, &t);
    ck_assert_msg(st == LLMSQ_STATUS_FORMAT, "%s: status %d, want FORMAT", what, (int)st);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(llmsq_last_error(), path) && strstr(llmsq_last_error(), "byte offset"), "%s: '%s'", what,
                  llmsq_last_error());
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Darts-clone: the index of the unit reached by key, or 0 when it is not in the trie. */
static uint32_t trie_walk(const uint8_t *trie, const char *key)
{
#define UNIT(i) rd32(trie + 4 * (size_t)(i))
#define OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    uint32_t id = OFFSET(UNIT(0)), u = 0;
    for (const char *c = key; *c; c++) {
        id ^= (uint8_t)*c;
        u = UNIT(id);
        if ((u & 0x800000FFu) != (uint8_t)*c) return 0;
        if (c[1]) id ^= OFFSET(u);
    }
    return id;
}

START_TEST(test_bad_charsmap)
{
    char *dir = tu_tmpdir("spm-ug-bad");
    char *path = llmsq_path_join(dir, "bad.model");
    size_t n, bn, m_n;
    uint8_t *model = (uint8_t *)fixture_bytes("spm_ug_rules.model", &n);
    const uint8_t *blob = find_charsmap(model, n, 3, &bn);
    ck_assert_uint_gt(bn, 1028);
    uint8_t *copy = malloc(bn), *m;
    llmsq_tokenizer *t;

    /* The blob itself, appended, loads; an empty one switches the charsmap off. */
    m = with_charsmap(model, n, 3, blob, bn, &m_n);
    ck_assert_int_eq(load_bytes(path, m, m_n, &t), LLMSQ_OK);
    char *norm;
    size_t nn;
    ck_assert_int_eq(spm_normalize_text(t, "\xEF\xBD\x81", 3, &norm, &nn), LLMSQ_OK); /* U+FF41 -> a */
    ck_assert(nn == 4 && memcmp(norm, SPM_SPACE "a", 4) == 0);
    free(norm);
    llmsq_tokenizer_free(t);
    free(m);
    m = with_charsmap(model, n, 3, blob, 0, &m_n);
    ck_assert_int_eq(load_bytes(path, m, m_n, &t), LLMSQ_OK);
    ck_assert_int_eq(spm_normalize_text(t, "\xEF\xBD\x81", 3, &norm, &nn), LLMSQ_OK);
    ck_assert(nn == 6 && memcmp(norm, SPM_SPACE "\xEF\xBD\x81", 6) == 0);
    free(norm);
    llmsq_tokenizer_free(t);
    free(m);

    /* Every truncation, of the normalizer's and of the denormalizer's charsmap. */
    for (size_t k = 1; k < bn; k++) {
        char what[96];
        snprintf(what, sizeof what, "charsmap cut to %zu of %zu bytes", k, bn);
        m = with_charsmap(model, n, 3, blob, k, &m_n);
        expect_format(path, m, m_n, what);
        free(m);
    }
    size_t dn;
    const uint8_t *dblob = find_charsmap(model, n, 5, &dn);
    for (size_t k = 1; k < dn; k += 7) {
        m = with_charsmap(model, n, 5, dblob, k, &m_n);
        expect_format(path, m, m_n, "denormalizer charsmap cut");
        free(m);
    }

    /* Hand-made damage, each at one field of the layout. */
    uint32_t trie_size = rd32(blob);
    const uint8_t *trie = blob + 4;
    uint32_t leaf_parent = trie_walk(trie, "\xEF\xBD\x81");
    ck_assert_uint_ne(leaf_parent, 0);
    uint32_t leaf = leaf_parent ^ OFFSET(UNIT(leaf_parent));
    uint32_t first = trie_walk(trie, "\xEF");
    ck_assert_uint_ne(first, 0);
    struct { size_t at; uint32_t value; bool byte; const char *what; } damage[] = {
        {0, trie_size + 1024, false, "trie size past the blob"},
        {0, trie_size - 4, false, "trie size not a multiple of 1024"},
        {0, 0, false, "trie size 0"},
        {bn - 1, 'x', true, "strings without a final NUL"},
        {4, 0x1FFFFFu << 10, false, "root offset past the trie"},
        {4, 0x100, false, "root entered again by byte 0, its leaf past the strings"}, /* found by fuzzing */
        {4 + 4 * (size_t)first, (UNIT(first) & 0x1FFu) | (0x1FFFFFu << 10), false, "child offset past the trie"},
        {4 + 4 * (size_t)leaf, 0x80000000u | 0x7FFFFFF0u, false, "replacement offset past the strings"},
        {4 + 4 * (size_t)leaf, 0x80000000u | (uint32_t)(bn - 4 - trie_size), false, "replacement offset at the end"},
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        memcpy(copy, blob, bn);
        if (damage[i].byte) copy[damage[i].at] = (uint8_t)damage[i].value;
        else wr32(copy + damage[i].at, damage[i].value);
        m = with_charsmap(model, n, 3, copy, bn, &m_n);
        expect_format(path, m, m_n, damage[i].what);
        free(m);
        /* The writer refuses what the reader would. */
        const char *one = "a";
        float zero = 0;
        int32_t unk = LLMSQ_TOKEN_UNKNOWN;
        llmsq_spm_options o = llmsq_spm_default_options();
        o.bos_id = o.eos_id = -1;
        ck_assert_int_eq(spm_write_model(path, 1, &one, &zero, &unk, &o, SPM_MODEL_UNIGRAM, NULL, copy, bn),
                         LLMSQ_STATUS_FORMAT);
    }

    /* Random damage: refused or loaded, and what loads encodes without going astray. */
    uint64_t r = 0x9E3779B97F4A7C15ull;
    int loaded = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        memcpy(copy, blob, bn);
        for (int k = 0; k < 1 + round % 4; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            copy[r % bn] ^= (uint8_t)(1u << (r >> 32) % 8);
        }
        m = with_charsmap(model, n, 3, copy, bn, &m_n);
        llmsq_status st = load_bytes(path, m, m_n, &t);
        ck_assert(st == LLMSQ_OK || st == LLMSQ_STATUS_FORMAT);
        if (st == LLMSQ_OK) {
            static const char sample[] = "\xEF\xBD\x88\xEF\xBD\x85 caf\xC3\xA9 \xEF\xAC\x81 q\xE2\x91\xA0 \xF0\x9F\x99\x82\xFF\t";
            int32_t *ids;
            size_t k;
            ck_assert_int_eq(llmsq_tokenizer_encode(t, sample, sizeof sample - 1, true, &ids, &k), LLMSQ_OK);
            free(ids);
            llmsq_tokenizer_free(t);
            loaded++;
        } else {
            refused++;
        }
        free(m);
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(loaded, 0);
#undef UNIT
#undef OFFSET
    free(copy);
    free(model);
    free(path);
    free(dir);
}
END_TEST

/* ---- writer, accessors, refusals -------------------------------------------------------------- */

START_TEST(test_write_unigram)
{
    char *dir = tu_tmpdir("spm-ug-write");
    char *src = data_path("spm_ug_rules.model"), *path = llmsq_path_join(dir, "copy.model");
    llmsq_tokenizer *t = load(src);
    ck_assert_int_eq(llmsq_tokenizer_get_kind(t), LLMSQ_TOKENIZER_SPM);
    ck_assert_int_eq(llmsq_tokenizer_vocab_size(t), 350);
    ck_assert_int_eq(llmsq_tokenizer_type(t, 0), LLMSQ_TOKEN_UNKNOWN);
    int32_t sep = llmsq_tokenizer_find(t, "<sep>", 5);
    ck_assert_int_ge(sep, 0);
    ck_assert_int_eq(llmsq_tokenizer_type(t, sep), LLMSQ_TOKEN_USER_DEFINED);

    /* Copy pieces, options and the charsmap into a new unigram model: same ids. */
    int64_t nv = llmsq_tokenizer_vocab_size(t);
    const char **pieces = malloc((size_t)nv * sizeof *pieces);
    float *scores = malloc((size_t)nv * sizeof *scores);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    for (int32_t i = 0; i < nv; i++) {
        pieces[i] = llmsq_tokenizer_piece(t, i);
        scores[i] = llmsq_tokenizer_score(t, i);
        types[i] = llmsq_tokenizer_type(t, i);
    }
    size_t n, bn;
    uint8_t *model = (uint8_t *)fixture_bytes("spm_ug_rules.model", &n);
    const uint8_t *blob = find_charsmap(model, n, 3, &bn);
    ck_assert_int_eq(spm_write_model(path, nv, pieces, scores, types, llmsq_tokenizer_options(t), SPM_MODEL_UNIGRAM,
                                     "rules", blob, bn), LLMSQ_OK);
    llmsq_tokenizer *c = load(path);
    static const char *const texts[] = {"ｈｅｌｌｏ　ｗｏｒｌｄ", "qqq <sep> Straße ①", "naïve A\xCC\x81", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *a, *b;
        size_t na, nb;
        ck_assert_int_eq(llmsq_tokenizer_encode(t, texts[i], strlen(texts[i]), true, &a, &na), LLMSQ_OK);
        ck_assert_int_eq(llmsq_tokenizer_encode(c, texts[i], strlen(texts[i]), true, &b, &nb), LLMSQ_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert(na == 0 || memcmp(a, b, na * sizeof *a) == 0);
        free(a);
        free(b);
    }
    llmsq_tokenizer_free(c);

    /* A unigram model needs an unknown piece (sentencepiece: "unk is not defined"). */
    types[0] = LLMSQ_TOKEN_CONTROL;
    ck_assert_int_eq(spm_write_model(path, nv, pieces, scores, types, llmsq_tokenizer_options(t), SPM_MODEL_UNIGRAM,
                                     NULL, NULL, 0), LLMSQ_STATUS_FORMAT);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "unknown piece"));

    /* Model types that stay unsupported say which. */
    size_t mn = n + 4;
    uint8_t *word = malloc(mn);
    memcpy(word, model, n);
    memcpy(word + n, "\x12\x02\x18\x03", 4); /* trainer_spec { model_type: WORD } */
    ck_assert_int_eq(load_bytes(path, word, mn, &c), LLMSQ_STATUS_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(llmsq_last_error(), "word"));
    free(word);

    free(pieces);
    free(scores);
    free(types);
    free(model);
    llmsq_tokenizer_free(t);
    free(src);
    free(path);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spm_unigram");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_library_cases);
    tcase_add_test(tc, test_long_inputs);
    tcase_add_test(tc, test_speed);
    tcase_add_test(tc, test_charsmap_all_chars);
    tcase_add_test(tc, test_exhaustive_reference);
    tcase_add_test(tc, test_bad_charsmap);
    tcase_add_test(tc, test_write_unigram);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
