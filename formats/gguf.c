/*
 * GGUF v3 container parser (FORMATS.md 5.1-5.2): a validating reader of the header, the
 * metadata key-value pairs and the tensor infos (gguf-impl.h). The `llama` model reader is
 * gguf_model.c.
 */
#include "formats/gguf-impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is borrowed from the mapping as-is, which needs a little-endian host"
#endif

/* ---- type tables ------------------------------------------------------------------------ */

/* Block sizes from gguf-py's GGML_QUANT_SIZES. Every id a file may use must be sized here,
 * or its byte range could not be checked; Q8_1 is left out because its size changed
 * between ggml versions (and it is never a storage type). */
static const llmsq_ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4},       [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},    [6] = {"Q5_0", 32, 22},    [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},    [10] = {"Q2_K", 256, 84},  [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176}, [14] = {"Q6_K", 256, 210},
    [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50}, [20] = {"IQ4_NL", 32, 18},
    [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82}, [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},      [26] = {"I32", 1, 4},
    [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},      [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},     [34] = {"TQ1_0", 256, 54}, [35] = {"TQ2_0", 256, 66},
    [39] = {"MXFP4", 32, 17},
};

const llmsq_ggml_type_info *llmsq_ggml_type(uint32_t type)
{
    if (type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[type].name) return NULL;
    return &ggml_types[type];
}

static const struct { const char *name; size_t size; } vtypes[LLMSQ_GGUF_VTYPE_COUNT] = {
    {"UINT8", 1}, {"INT8", 1},    {"UINT16", 2}, {"INT16", 2},  {"UINT32", 4},
    {"INT32", 4}, {"FLOAT32", 4}, {"BOOL", 1},   {"STRING", 0}, {"ARRAY", 0},
    {"UINT64", 8}, {"INT64", 8},  {"FLOAT64", 8},
};

size_t llmsq_gguf_vtype_size(uint32_t t) { return t < LLMSQ_GGUF_VTYPE_COUNT ? vtypes[t].size : 0; }
const char *llmsq_gguf_vtype_name(uint32_t t) { return t < LLMSQ_GGUF_VTYPE_COUNT ? vtypes[t].name : "?"; }

/* ---- container parser ------------------------------------------------------------------- */

typedef struct rd {
    const char    *path;
    const uint8_t *p;
    uint64_t       size;
    uint64_t       pos;
    char           ctx[160]; /* what is being read, for messages ("key 'general.name'") */
} rd;

static uint64_t left(const rd *r) { return r->size - r->pos; }

static llmsq_status need(rd *r, uint64_t n, const char *what)
{
    if (n <= left(r)) return LLMSQ_OK;
    return llmsq_error(LLMSQ_STATUS_FORMAT,
                       "%s: truncated at byte offset %" PRIu64 " reading %s of %s "
                       "(%" PRIu64 " bytes needed, %" PRIu64 " left)",
                       r->path, r->pos, what, r->ctx, n, left(r));
}

static llmsq_status rd_u32(rd *r, const char *what, uint32_t *v)
{
    LLMSQ_TRY(need(r, 4, what));
    *v = llmsq_gguf_rd32(r->p + r->pos);
    r->pos += 4;
    return LLMSQ_OK;
}

static llmsq_status rd_u64(rd *r, const char *what, uint64_t *v)
{
    LLMSQ_TRY(need(r, 8, what));
    *v = llmsq_gguf_rd64(r->p + r->pos);
    r->pos += 8;
    return LLMSQ_OK;
}

/* A string's bytes stay in the mapping; the length is checked before it is trusted. */
static llmsq_status rd_str(rd *r, const char *what, const uint8_t **s, uint64_t *len)
{
    uint64_t at = r->pos;
    LLMSQ_TRY(rd_u64(r, what, len));
    if (*len > left(r))
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: %s of %s at byte offset %" PRIu64 " claims %" PRIu64
                           " bytes but only %" PRIu64 " remain in the file",
                           r->path, what, r->ctx, at, *len, left(r));
    *s = r->p + r->pos;
    r->pos += *len;
    return LLMSQ_OK;
}

/* Copies a key or tensor name, which must be non-empty and free of NUL bytes so that
 * lookups by C string cannot be fooled. */
static llmsq_status dup_name(rd *r, const uint8_t *s, uint64_t len, uint64_t at, char **out)
{
    if (len == 0 || memchr(s, 0, len))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s at byte offset %" PRIu64 " is %s",
                           r->path, r->ctx, at, len ? "a name containing a NUL byte" : "an empty name");
    *out = malloc(len + 1);
    if (!*out) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", r->path);
    memcpy(*out, s, len);
    (*out)[len] = '\0';
    return LLMSQ_OK;
}

static llmsq_status parse_value(rd *r, uint32_t type, int depth, llmsq_gguf_value *v)
{
    uint64_t at = r->pos;
    memset(v, 0, sizeof *v);
    v->type = type;
    size_t sz = llmsq_gguf_vtype_size(type);
    if (sz) {
        LLMSQ_TRY(need(r, sz, "the value"));
        v->raw = r->p + r->pos;
        v->raw_len = sz;
        r->pos += sz;
        if (type == LLMSQ_GGUF_BOOL && *v->raw > 1)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s: BOOL value %u at byte offset %" PRIu64
                               " is neither 0 nor 1", r->path, r->ctx, *v->raw, at);
        return LLMSQ_OK;
    }
    if (type == LLMSQ_GGUF_STRING) {
        LLMSQ_TRY(rd_str(r, "the string length", &v->raw, &v->n));
        v->raw_len = v->n;
        return LLMSQ_OK;
    }
    if (type != LLMSQ_GGUF_ARRAY)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s: unknown value type %" PRIu32
                           " at byte offset %" PRIu64, r->path, r->ctx, type, at - 4);
    if (depth >= LLMSQ_GGUF_MAX_ARRAY_DEPTH)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s: arrays nested deeper than %d at byte offset %" PRIu64,
                           r->path, r->ctx, LLMSQ_GGUF_MAX_ARRAY_DEPTH, at);
    LLMSQ_TRY(rd_u32(r, "the array element type", &v->elem_type));
    LLMSQ_TRY(rd_u64(r, "the array count", &v->n));
    if (v->elem_type >= LLMSQ_GGUF_VTYPE_COUNT)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s: unknown array element type %" PRIu32
                           " at byte offset %" PRIu64, r->path, r->ctx, v->elem_type, at);
    /* Bound the count by the smallest encoding of one element before looping, so a huge
     * count fails here instead of spinning. */
    size_t esz = llmsq_gguf_vtype_size(v->elem_type);
    uint64_t min_elem = esz ? esz : (v->elem_type == LLMSQ_GGUF_STRING ? 8 : 12);
    if (v->n > left(r) / min_elem)
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: %s: array of %" PRIu64 " %s at byte offset %" PRIu64
                           " cannot fit in the %" PRIu64 " bytes left",
                           r->path, r->ctx, v->n, llmsq_gguf_vtype_name(v->elem_type), at, left(r));
    v->raw = r->p + r->pos;
    if (esz) {
        v->raw_len = v->n * esz;
        if (v->elem_type == LLMSQ_GGUF_BOOL)
            for (uint64_t i = 0; i < v->n; i++)
                if (v->raw[i] > 1)
                    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %s: BOOL element %" PRIu64
                                       " is neither 0 nor 1", r->path, r->ctx, i);
        r->pos += v->raw_len;
        return LLMSQ_OK;
    }
    for (uint64_t i = 0; i < v->n; i++) {
        llmsq_gguf_value e;
        LLMSQ_TRY(parse_value(r, v->elem_type, depth + 1, &e));
    }
    v->raw_len = (uint64_t)(r->p + r->pos - v->raw);
    return LLMSQ_OK;
}

/* Amortized growth so that memory follows what the file really contains, not the count
 * its header claims. */
static llmsq_status grow(rd *r, void **arr, uint64_t *cap, uint64_t n, size_t elem)
{
    if (n < *cap) return LLMSQ_OK;
    uint64_t nc = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", r->path);
    memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return LLMSQ_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort-based, so a file with millions of entries is checked in O(n log n). The names are
 * the char * at byte `off` of each `stride`-byte record. */
static llmsq_status check_unique(const char *path, const void *base, uint64_t n, size_t stride, size_t off,
                                 const char *what)
{
    if (n < 2) return LLMSQ_OK;
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) memcpy(&sorted[i], (const char *)base + i * stride + off, sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    llmsq_status st = LLMSQ_OK;
    for (uint64_t i = 1; i < n && st == LLMSQ_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: duplicate %s '%s'", path, what, sorted[i]);
    free(sorted);
    return st;
}

static llmsq_status check_header(rd *r, uint32_t *version)
{
    if (r->size < 4 || llmsq_gguf_rd32(r->p) != LLMSQ_GGUF_MAGIC) {
        uint8_t m[4] = {0};
        if (r->size) memcpy(m, r->p, r->size < 4 ? r->size : 4);
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: not a GGUF file (bad magic %02x %02x %02x %02x, expected 47 47 55 46 \"GGUF\"%s)",
                           r->path, m[0], m[1], m[2], m[3], r->size < 4 ? "; file shorter than 4 bytes" : "");
    }
    r->pos = 4;
    snprintf(r->ctx, sizeof r->ctx, "the header");
    LLMSQ_TRY(rd_u32(r, "the version", version));
    uint32_t v = *version;
    if (v == 3) return LLMSQ_OK;
    if (v == 1 || v == 2)
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: GGUF version %" PRIu32 " is not supported (only version 3; "
                           "re-convert the model with a current llama.cpp)", r->path, v);
    if ((v & 0xFFFFu) == 0 && v != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: GGUF version field 0x%08" PRIx32 " looks byte-swapped: big-endian GGUF "
                           "files are not supported", r->path, v);
    return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: unknown GGUF version %" PRIu32
                       " (only version 3 is supported)", r->path, v);
}

static llmsq_status parse_kvs(rd *r, llmsq_gguf_file *f, uint64_t n_kv)
{
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t at = r->pos;
        snprintf(r->ctx, sizeof r->ctx, "metadata key %" PRIu64, i);
        LLMSQ_TRY(grow(r, (void **)&f->kv, &cap, f->n_kv, sizeof *f->kv));
        llmsq_gguf_kv *kv = &f->kv[f->n_kv];
        const uint8_t *s;
        uint64_t len;
        LLMSQ_TRY(rd_str(r, "the key length", &s, &len));
        LLMSQ_TRY(dup_name(r, s, len, at, &kv->key));
        f->n_kv++;
        kv->offset = at;
        snprintf(r->ctx, sizeof r->ctx, "key '%.100s'", kv->key);
        uint32_t type;
        LLMSQ_TRY(rd_u32(r, "the value type", &type));
        LLMSQ_TRY(parse_value(r, type, 0, &kv->v));
    }
    return check_unique(r->path, f->kv, f->n_kv, sizeof *f->kv, offsetof(llmsq_gguf_kv, key), "metadata key");
}

static llmsq_status parse_alignment(rd *r, llmsq_gguf_file *f)
{
    f->alignment = LLMSQ_GGUF_DEFAULT_ALIGNMENT;
    const llmsq_gguf_kv *kv = llmsq_gguf_find_kv(f, "general.alignment");
    if (!kv) return LLMSQ_OK;
    int64_t a;
    if (!llmsq_gguf_get_int(&kv->v, &a) || kv->v.type == LLMSQ_GGUF_BOOL)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: key 'general.alignment' at byte offset %" PRIu64
                           " has type %s, expected UINT32", r->path, kv->offset,
                           llmsq_gguf_vtype_name(kv->v.type));
    /* The cap keeps every align-up below free of overflow. */
    if (a <= 0 || (a & (a - 1)) != 0 || a > (1 << 30))
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: general.alignment %" PRId64
                           " is not a power of two in [1, 2^30]", r->path, a);
    f->alignment = (uint64_t)a;
    return LLMSQ_OK;
}

static llmsq_status parse_tensor_info(rd *r, llmsq_gguf_file *f, uint64_t i)
{
    llmsq_gguf_tensor_info *t = &f->tensors[i];
    uint64_t at = r->pos;
    t->info_offset = at;
    snprintf(r->ctx, sizeof r->ctx, "tensor info %" PRIu64, i);
    const uint8_t *s;
    uint64_t len;
    LLMSQ_TRY(rd_str(r, "the name length", &s, &len));
    if (len >= LLMSQ_GGUF_MAX_NAME)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor info %" PRIu64 " at byte offset %" PRIu64
                           ": name of %" PRIu64 " bytes (ggml allows at most %d)",
                           r->path, i, at, len, LLMSQ_GGUF_MAX_NAME - 1);
    LLMSQ_TRY(dup_name(r, s, len, at, &t->name));
    snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", t->name);
    LLMSQ_TRY(rd_u32(r, "n_dims", &t->n_dims));
    if (t->n_dims == 0 || t->n_dims > LLMSQ_GGUF_MAX_DIMS)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' at byte offset %" PRIu64
                           ": n_dims %" PRIu32 " not in [1, %d]",
                           r->path, t->name, at, t->n_dims, LLMSQ_GGUF_MAX_DIMS);
    for (int d = 0; d < LLMSQ_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        LLMSQ_TRY(rd_u64(r, "a dimension", &ne));
        if (ne > (uint64_t)INT64_MAX)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': ne[%" PRIu32 "] = %" PRIu64
                               " is out of range", r->path, t->name, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    LLMSQ_TRY(rd_u32(r, "the type", &t->type));
    LLMSQ_TRY(rd_u64(r, "the data offset", &t->offset));
    const llmsq_ggml_type_info *ti = llmsq_ggml_type(t->type);
    if (!ti)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s' has unknown ggml type id %" PRIu32,
                           r->path, t->name, t->type);
    if (t->ne[0] % ti->block != 0)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': ne[0] = %" PRId64
                           " is not a multiple of the %s block size %" PRId64,
                           r->path, t->name, t->ne[0], ti->name, ti->block);
    uint64_t nb = (uint64_t)(t->ne[0] / ti->block), numel = (uint64_t)t->ne[0];
    bool ovf = __builtin_mul_overflow(nb, (uint64_t)ti->block_bytes, &nb);
    for (int d = 1; d < LLMSQ_GGUF_MAX_DIMS; d++) {
        ovf |= __builtin_mul_overflow(nb, (uint64_t)t->ne[d], &nb);
        ovf |= __builtin_mul_overflow(numel, (uint64_t)t->ne[d], &numel);
    }
    if (ovf || numel > (uint64_t)INT64_MAX)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': shape overflows 64 bits",
                           r->path, t->name);
    t->nbytes = nb;
    return LLMSQ_OK;
}

static llmsq_status parse_tensors(rd *r, llmsq_gguf_file *f, uint64_t n_tensors)
{
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        LLMSQ_TRY(grow(r, (void **)&f->tensors, &cap, f->n_tensors, sizeof *f->tensors));
        f->n_tensors++; /* counted first so a half-parsed name is freed */
        LLMSQ_TRY(parse_tensor_info(r, f, i));
    }
    LLMSQ_TRY(check_unique(r->path, f->tensors, f->n_tensors, sizeof *f->tensors,
                           offsetof(llmsq_gguf_tensor_info, name), "tensor name"));

    uint64_t a = f->alignment, end_infos = r->pos;
    f->data_offset = (end_infos + a - 1) / a * a;
    if (f->n_tensors == 0) return LLMSQ_OK;
    if (f->data_offset > r->size)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: truncated: the data section would start at byte offset %"
                           PRIu64 " but the file has %" PRIu64 " bytes", r->path, f->data_offset, r->size);
    uint64_t data_size = r->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const llmsq_gguf_tensor_info *t = &f->tensors[i];
        if (t->offset % a != 0)
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': data offset %" PRIu64
                               " is not a multiple of the alignment %" PRIu64, r->path, t->name, t->offset, a);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return llmsq_error(LLMSQ_STATUS_FORMAT,
                               "%s: tensor '%s': data at byte offset %" PRIu64 " + %" PRIu64
                               " (%" PRIu64 " bytes) extends past the end of the file (%" PRIu64 " bytes)",
                               r->path, t->name, f->data_offset, t->offset, t->nbytes, r->size);
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_gguf_parse(const char *path, const uint8_t *data, uint64_t size, llmsq_gguf_file *out)
{
    LLMSQ_ASSERT(path && out && (data || size == 0));
    memset(out, 0, sizeof *out);
    rd r = {.path = path, .p = data, .size = size};
    llmsq_gguf_file f = {.path = path, .data = data, .size = size};
    uint64_t n_tensors = 0, n_kv = 0;
    llmsq_status st = check_header(&r, &f.version);
    if (st == LLMSQ_OK) st = rd_u64(&r, "tensor_count", &n_tensors);
    if (st == LLMSQ_OK) st = rd_u64(&r, "metadata_kv_count", &n_kv);
    /* A KV takes at least 13 bytes (key length, type, one value byte), a tensor info 24. */
    if (st == LLMSQ_OK && (n_kv > left(&r) / 13 || n_tensors > left(&r) / 24))
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: header claims %" PRIu64 " metadata keys and %" PRIu64
                         " tensors, which cannot fit in the %" PRIu64 " bytes after byte offset %" PRIu64,
                         path, n_kv, n_tensors, left(&r), r.pos);
    if (st == LLMSQ_OK) st = parse_kvs(&r, &f, n_kv);
    if (st == LLMSQ_OK) st = parse_alignment(&r, &f);
    if (st == LLMSQ_OK) st = parse_tensors(&r, &f, n_tensors);
    if (st != LLMSQ_OK) {
        llmsq_gguf_file_free(&f);
        return st;
    }
    *out = f;
    return LLMSQ_OK;
}

void llmsq_gguf_file_free(llmsq_gguf_file *f)
{
    if (!f) return;
    for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].key);
    for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const llmsq_gguf_kv *llmsq_gguf_find_kv(const llmsq_gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const llmsq_gguf_tensor_info *llmsq_gguf_find_tensor(const llmsq_gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
