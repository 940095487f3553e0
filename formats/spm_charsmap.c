/*
 * SentencePiece's precompiled charsmap (normalizer_spec.precompiled_charsmap), the form in
 * which "nmt_nfkc" and the other normalization rules ship inside a .model:
 *
 *   uint32 (little-endian) trie_size | Darts-clone double array (trie_size bytes) |
 *   replacement strings, each NUL-terminated
 *
 * The trie maps UTF-8 keys to byte offsets of replacement strings. Normalizer::
 * NormalizePrefix takes the longest key prefixing the input (commonPrefixSearch).
 *
 * A model file is untrusted input, and the double array is a set of raw indices, so
 * spm_charsmap_parse walks every path the matcher could ever take and refuses the blob
 * when one leaves the array or names a string outside the blob. After that, matching
 * reads only checked indices.
 */
#include "spm-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Normalizer::kMaxTrieResultsSize: NormalizePrefix looks at the first 32 matches only.
 * Builders never make deeper chains; a hostile blob could, and sentencepiece >= 0.2.1
 * caps the count the same way. */
#define CHARSMAP_MAX_RESULTS 32

struct spm_charsmap {
    uint32_t *unit;   /* the double array */
    uint32_t  n_unit; /* a multiple of 256 */
    char     *str;    /* replacement strings, the last byte NUL */
    uint32_t  n_str;
};

/* Darts-clone's DoubleArrayUnit accessors. A value unit has bit 31 set, so its label
 * never equals an input byte. */
static inline bool unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline uint32_t unit_label(uint32_t u) { return u & 0x800000FFu; }
static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void spm_charsmap_free(struct spm_charsmap *m)
{
    if (!m) return;
    free(m->unit);
    free(m->str);
    free(m);
}

static llmsq_status cm_fail(const char *source, size_t offset, const char *what, ...)
    __attribute__((format(printf, 3, 4)));

static llmsq_status cm_fail(const char *source, size_t offset, const char *what, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, what);
    vsnprintf(msg, sizeof msg, what, ap);
    va_end(ap);
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: malformed precompiled_charsmap at byte offset %zu: %s", source,
                       offset, msg);
}

/* Depth-first over every node commonPrefixSearch can stand on: the root (unit 0) and each
 * unit whose label matches the byte that leads to it. For each, the 256 child slots and
 * the value slot (base ^ 0) must lie inside the array, and a leaf's value must be the
 * offset of a string in the blob. The array is a whole number of 256-unit blocks, so
 * `base | 0xFF < n_unit` covers every slot. */
static llmsq_status cm_validate(const struct spm_charsmap *m, const char *source, size_t offset)
{
    const size_t trie_off = offset + 4;
    uint32_t *stack = malloc((size_t)m->n_unit * sizeof *stack);
    uint8_t *seen = calloc((size_t)m->n_unit / 8 + 1, 1);
    if (!stack || !seen) {
        free(stack);
        free(seen);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory checking the precompiled_charsmap", source);
    }
    llmsq_status st = LLMSQ_OK;
    size_t sp = 0;
    stack[sp++] = 0;
    seen[0] |= 1;
    while (sp > 0 && st == LLMSQ_OK) {
        uint32_t x = stack[--sp], u = m->unit[x];
        uint32_t base = x ^ unit_offset(u);
        if ((base | 0xFFu) >= m->n_unit) {
            st = cm_fail(source, trie_off + 4 * (size_t)x, "trie unit %u leads to units %u..%u, past the %u units of the trie",
                         x, base & ~0xFFu, base | 0xFFu, m->n_unit);
            break;
        }
        if (x != 0 && unit_has_leaf(u) && unit_value(m->unit[base]) >= m->n_str) {
            st = cm_fail(source, trie_off + 4 * (size_t)base,
                         "replacement offset %u is past the end of the %u-byte string table",
                         unit_value(m->unit[base]), m->n_str);
            break;
        }
        for (uint32_t c = 0; c < 256; c++) {
            uint32_t y = base ^ c;
            if (unit_label(m->unit[y]) != c) continue;
            /* The root can be entered again as a child (fuzzing found it); then its leaf
             * counts, which it never does as the start. Its base was checked first. */
            if (y == 0 && unit_has_leaf(m->unit[0]) && unit_value(m->unit[unit_offset(m->unit[0])]) >= m->n_str) {
                st = cm_fail(source, trie_off, "the root, entered again by byte %u, has a replacement offset past the strings", c);
                break;
            }
            if (seen[y >> 3] >> (y & 7) & 1) continue;
            seen[y >> 3] |= (uint8_t)(1u << (y & 7));
            stack[sp++] = y;
        }
    }
    free(stack);
    free(seen);
    return st;
}

llmsq_status spm_charsmap_parse(const uint8_t *blob, size_t size, const char *source, size_t offset,
                                struct spm_charsmap **out)
{
    LLMSQ_ASSERT(blob && source && out);
    *out = NULL;
    /* The layout checks of sentencepiece's DecodePrecompiledCharsMap (0.2.1), stricter than
     * older releases, which read past the blob when they failed. */
    if (size <= 4) return cm_fail(source, offset, "%zu bytes, too short for a trie size and strings", size);
    uint32_t trie_size = rd_u32(blob);
    if (trie_size >= size - 4)
        return cm_fail(source, offset, "trie size %u leaves no string table in %zu bytes", trie_size, size);
    if (trie_size < 1024 || trie_size % 1024 != 0)
        return cm_fail(source, offset, "trie size %u is not a positive multiple of 1024", trie_size);
    size_t n_str = size - 4 - trie_size;
    if (n_str > UINT32_MAX) return cm_fail(source, offset, "string table of %zu bytes is too large", n_str);
    if (blob[size - 1] != 0)
        return cm_fail(source, offset + size - 1, "the string table does not end with a NUL byte");

    struct spm_charsmap *m = calloc(1, sizeof *m);
    if (m) {
        m->n_unit = trie_size / 4;
        m->n_str = (uint32_t)n_str;
        m->unit = malloc(trie_size);
        m->str = malloc(n_str);
    }
    if (!m || !m->unit || !m->str) {
        spm_charsmap_free(m);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for a %zu-byte precompiled_charsmap", source, size);
    }
    for (uint32_t i = 0; i < m->n_unit; i++) m->unit[i] = rd_u32(blob + 4 + 4 * (size_t)i);
    memcpy(m->str, blob + 4 + trie_size, n_str);
    llmsq_status st = cm_validate(m, source, offset);
    if (st != LLMSQ_OK) {
        spm_charsmap_free(m);
        return st;
    }
    *out = m;
    return LLMSQ_OK;
}

size_t spm_charsmap_match(const struct spm_charsmap *m, const char *s, size_t n, const char **rep)
{
    const uint32_t *a = m->unit;
    uint32_t id = unit_offset(a[0]); /* the root is unit 0 */
    size_t best = 0;
    int found = 0;
    for (size_t i = 0; i < n && found < CHARSMAP_MAX_RESULTS; i++) {
        uint8_t c = (uint8_t)s[i];
        id ^= c;
        uint32_t u = a[id];
        if (unit_label(u) != c) break;
        id ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            best = i + 1;
            *rep = m->str + unit_value(a[id]);
            found++;
        }
    }
    return best;
}
