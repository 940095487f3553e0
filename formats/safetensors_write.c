/* safetensors writer (FORMATS.md 1.1-1.3), laid out as the reference Rust writer does so
 * that our files are byte-comparable with those of other tools. */
#include "formats/safetensors_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The reference reader's limit on the header length. */
#define ST_MAX_HEADER 100000000u

/* Position of a dtype in the reference Dtype enum (its derived Ord): the writer sorts by
 * it descending so that every tensor starts at a multiple of its element size. */
static int dtype_rank(llmsq_dtype t)
{
    switch (t) {
    case LLMSQ_DTYPE_U8:   return 4;
    case LLMSQ_DTYPE_I8:   return 5;
    case LLMSQ_DTYPE_F16:  return 13;
    case LLMSQ_DTYPE_BF16: return 14;
    case LLMSQ_DTYPE_I32:  return 15;
    case LLMSQ_DTYPE_F32:  return 17;
    case LLMSQ_DTYPE_I64:  return 20;
    default:               return -1; /* no safetensors spelling (Q8_0) */
    }
}

/* ---- a growable byte buffer ------------------------------------------------------------ */

typedef struct sbuf {
    char  *p;
    size_t len, cap;
    bool   oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal escaped as serde_json does (the reference writer): only '"', '\\'
 * and control characters are escaped; UTF-8 passes through unchanged. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"':  sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* The header must be UTF-8 JSON; names are checked here so a bad one fails with ARG naming
 * it instead of producing a file every reader rejects. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int extra;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += extra + 1;
    }
    return true;
}

/* ---- validation and ordering ----------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    const llmsq_tensor *x = *(const llmsq_tensor *const *)a;
    const llmsq_tensor *y = *(const llmsq_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_layout(const void *a, const void *b)
{
    const llmsq_tensor *x = *(const llmsq_tensor *const *)a;
    const llmsq_tensor *y = *(const llmsq_tensor *const *)b;
    int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
    if (rx != ry) return rx > ry ? -1 : 1;
    return strcmp(x->name, y->name);
}

static llmsq_status check_tensor(const char *path, const llmsq_tensor *t, bool need_data)
{
    LLMSQ_ASSERT(t != NULL && t->name != NULL);
    if (!t->name[0] || strcmp(t->name, "__metadata__") == 0 || !utf8_valid(t->name))
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: invalid tensor name \"%s\"", path, t->name);
    if ((unsigned)t->dtype >= LLMSQ_DTYPE_COUNT || dtype_rank(t->dtype) < 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: dtype %s has no safetensors encoding",
                           path, t->name,
                           (unsigned)t->dtype < LLMSQ_DTYPE_COUNT ? llmsq_dtype_info(t->dtype)->name
                                                                  : "(invalid)");
    if (t->ndim < 0 || t->ndim > LLMSQ_MAX_DIMS)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: rank %d out of range", path, t->name,
                           t->ndim);
    uint64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: negative dimension %lld", path,
                               t->name, (long long)t->shape[d]);
        if (t->shape[d] && numel > UINT64_MAX / 8 / (uint64_t)t->shape[d]) overflow = true;
        numel *= (uint64_t)t->shape[d];
    }
    if (overflow || numel > (uint64_t)INT64_MAX / 8)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: shape too large", path, t->name);
    size_t want = llmsq_dtype_nbytes(t->dtype, (int64_t)numel);
    if (t->nbytes != want)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: nbytes %zu, shape and dtype need %zu",
                           path, t->name, t->nbytes, want);
    if (need_data && want && !t->data)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: no data", path, t->name);
    return LLMSQ_OK;
}

static llmsq_status check_meta(const char *path, const char *const *meta, size_t n_meta)
{
    LLMSQ_ASSERT(n_meta == 0 || meta != NULL);
    for (size_t i = 0; i < n_meta; i++) {
        const char *k = meta[2 * i], *v = meta[2 * i + 1];
        LLMSQ_ASSERT(k != NULL && v != NULL);
        if (!utf8_valid(k) || !utf8_valid(v))
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: metadata pair %zu is not UTF-8", path, i);
        if (strcmp(k, "format") == 0)
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: metadata key \"format\" is reserved (always \"pt\")",
                               path);
        for (size_t j = 0; j < i; j++)
            if (strcmp(k, meta[2 * j]) == 0)
                return llmsq_error(LLMSQ_STATUS_ARG, "%s: duplicate metadata key \"%s\"", path, k);
    }
    return LLMSQ_OK;
}

/* ---- output ------------------------------------------------------------------------------ */

struct llmsq_st_out {
    FILE       *f;
    const char *tmp;
    const char *name;  /* tensor being emitted */
    size_t      left;  /* bytes it still owes */
};

llmsq_status llmsq_st_out_write(llmsq_st_out *o, const void *buf, size_t n)
{
    LLMSQ_ASSERT(o != NULL && (n == 0 || buf != NULL));
    if (n > o->left)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: %zu bytes more than its size",
                           o->tmp, o->name, n - o->left);
    if (n && fwrite(buf, 1, n, o->f) != n)
        return llmsq_error(LLMSQ_STATUS_IO, "%s: write failed: %s", o->tmp, strerror(errno));
    o->left -= n;
    return LLMSQ_OK;
}

static char *tmp_name(const char *path)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp) {
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp", 5);
    }
    return tmp;
}

/* fflush + fsync + fclose: the data is durable before the rename makes it visible. */
static llmsq_status finish_file(FILE *f, const char *tmp)
{
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) return llmsq_error(LLMSQ_STATUS_IO, "%s: write failed: %s", tmp, strerror(err));
    return LLMSQ_OK;
}

static llmsq_status commit(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0)
        return llmsq_error(LLMSQ_STATUS_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    return LLMSQ_OK;
}

llmsq_status llmsq_fmt_write_atomic(const char *path, const void *data, size_t n)
{
    LLMSQ_ASSERT(path != NULL && (n == 0 || data != NULL));
    char *tmp = tmp_name(path);
    if (!tmp) return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
    llmsq_status s = LLMSQ_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        s = llmsq_error(LLMSQ_STATUS_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (n && fwrite(data, 1, n, f) != n) {
        s = llmsq_error(LLMSQ_STATUS_IO, "%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
    } else {
        s = finish_file(f, tmp);
    }
    if (s == LLMSQ_OK) s = commit(tmp, path);
    if (s != LLMSQ_OK) unlink(tmp);
done:
    free(tmp);
    return s;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

llmsq_status llmsq_safetensors_write_stream(const char *path, const llmsq_tensor *const *tensors,
                                            size_t n, const char *const *meta, size_t n_meta,
                                            llmsq_st_emit_fn emit, void *ctx)
{
    LLMSQ_ASSERT(path != NULL && (n == 0 || tensors != NULL));
    for (size_t i = 0; i < n; i++) LLMSQ_TRY(check_tensor(path, tensors[i], emit == NULL));
    LLMSQ_TRY(check_meta(path, meta, n_meta));

    llmsq_status s = LLMSQ_OK;
    const llmsq_tensor **order = malloc((n ? n : 1) * sizeof *order);
    char *tmp = tmp_name(path);
    sbuf h = {0};
    FILE *f = NULL;
    bool created = false;
    if (!order || !tmp) {
        s = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for %zu tensors", path, n);
        goto out;
    }
    if (n) memcpy(order, tensors, n * sizeof *order);
    qsort(order, n, sizeof *order, cmp_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            s = llmsq_error(LLMSQ_STATUS_ARG, "%s: duplicate tensor name %s", path, order[i]->name);
            goto out;
        }
    }
    qsort(order, n, sizeof *order, cmp_layout);

    sb_str(&h, "{\"__metadata__\":{\"format\":\"pt\"");
    for (size_t i = 0; i < n_meta; i++) {
        sb_str(&h, ",");
        sb_json_str(&h, meta[2 * i]);
        sb_str(&h, ":");
        sb_json_str(&h, meta[2 * i + 1]);
    }
    sb_str(&h, "}");
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const llmsq_tensor *t = order[i];
        sb_str(&h, ",");
        sb_json_str(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, llmsq_dtype_info(t->dtype)->name);
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_str(&h, ",");
        if (t->nbytes > UINT64_MAX - off) {
            s = llmsq_error(LLMSQ_STATUS_ARG, "%s: total tensor size overflows", path);
            goto out;
        }
        off += t->nbytes;
        sb_u64(&h, off);
        sb_str(&h, "]}");
    }
    sb_str(&h, "}");
    while (!h.oom && h.len % 8) sb_str(&h, " ");
    if (h.oom) {
        s = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory for the header", path);
        goto out;
    }
    if (h.len > ST_MAX_HEADER) {
        s = llmsq_error(LLMSQ_STATUS_ARG, "%s: header of %zu bytes exceeds the %u-byte limit", path,
                        h.len, ST_MAX_HEADER);
        goto out;
    }

    f = fopen(tmp, "wb");
    if (!f) {
        s = llmsq_error(LLMSQ_STATUS_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    created = true;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    unsigned char len8[8];
    put_le64(len8, h.len);
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.p, 1, h.len, f) != h.len) {
        s = llmsq_error(LLMSQ_STATUS_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const llmsq_tensor *t = order[i];
        llmsq_st_out o = {f, tmp, t->name, t->nbytes};
        s = emit ? emit(ctx, t, &o) : llmsq_st_out_write(&o, t->data, t->nbytes);
        if (s != LLMSQ_OK) goto out;
        if (o.left) {
            s = llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor %s: %zu of its %zu bytes never written",
                            tmp, t->name, o.left, t->nbytes);
            goto out;
        }
    }
    s = finish_file(f, tmp);
    f = NULL;
    if (s == LLMSQ_OK) s = commit(tmp, path);

out:
    if (f) fclose(f);
    if (s != LLMSQ_OK && created) unlink(tmp);
    free(h.p);
    free(tmp);
    free(order);
    return s;
}

llmsq_status llmsq_safetensors_write(const char *path, const llmsq_tensor *const *tensors, size_t n,
                                     const char *const *meta, size_t n_meta)
{
    return llmsq_safetensors_write_stream(path, tensors, n, meta, n_meta, NULL, NULL);
}
