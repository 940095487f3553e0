/*
 * Internal GGUF v3 container API (FORMATS.md 5.1-5.2), shared by the `llama` model reader
 * in gguf.c and by a future GGUF writer. Not installed.
 *
 * llmsq_gguf_parse validates the whole container against the file size before anything
 * reads through it: every string length, array count and nesting level, every tensor
 * info, the alignment and each tensor's byte range. After a successful parse the raw
 * pointers below can be walked without further bounds checks.
 */
#ifndef LLMSQ_FORMATS_GGUF_IMPL_H
#define LLMSQ_FORMATS_GGUF_IMPL_H

#include <string.h>

#include "llmsq/status.h"

#define LLMSQ_GGUF_MAGIC             0x46554747u /* "GGUF" read as a little-endian uint32 */
#define LLMSQ_GGUF_VERSION           3u
#define LLMSQ_GGUF_DEFAULT_ALIGNMENT 32u
#define LLMSQ_GGUF_MAX_DIMS          4
#define LLMSQ_GGUF_MAX_NAME          64 /* ggml: tensor names are shorter than this */
#define LLMSQ_GGUF_MAX_ARRAY_DEPTH   8  /* nested arrays; bounds the parser's recursion */

/* Metadata value types (the ids are the on-disk encoding). */
typedef enum llmsq_gguf_vtype {
    LLMSQ_GGUF_UINT8 = 0, LLMSQ_GGUF_INT8 = 1, LLMSQ_GGUF_UINT16 = 2, LLMSQ_GGUF_INT16 = 3,
    LLMSQ_GGUF_UINT32 = 4, LLMSQ_GGUF_INT32 = 5, LLMSQ_GGUF_FLOAT32 = 6, LLMSQ_GGUF_BOOL = 7,
    LLMSQ_GGUF_STRING = 8, LLMSQ_GGUF_ARRAY = 9, LLMSQ_GGUF_UINT64 = 10, LLMSQ_GGUF_INT64 = 11,
    LLMSQ_GGUF_FLOAT64 = 12,
    LLMSQ_GGUF_VTYPE_COUNT
} llmsq_gguf_vtype;

/* The ggml tensor type ids llmsq names (the full list lives in gguf.c's size table). */
enum {
    LLMSQ_GGML_F32 = 0, LLMSQ_GGML_F16 = 1, LLMSQ_GGML_Q4_0 = 2, LLMSQ_GGML_Q8_0 = 8,
    LLMSQ_GGML_BF16 = 30
};

typedef struct llmsq_ggml_type_info {
    const char *name;       /* "Q4_K" */
    int64_t     block;      /* elements per block */
    size_t      block_bytes;
} llmsq_ggml_type_info;

/* Size table entry for a ggml type id; NULL for ids removed from ggml or unknown here. */
const llmsq_ggml_type_info *llmsq_ggml_type(uint32_t type);

/* Fixed size in bytes of a scalar metadata type; 0 for STRING, ARRAY and invalid ids. */
size_t llmsq_gguf_vtype_size(uint32_t vtype);
const char *llmsq_gguf_vtype_name(uint32_t vtype);

/* One metadata value, pointing into the mapped file. */
typedef struct llmsq_gguf_value {
    uint32_t       type;      /* llmsq_gguf_vtype */
    uint32_t       elem_type; /* ARRAY: type of the elements */
    uint64_t       n;         /* ARRAY: element count; STRING: byte length */
    const uint8_t *raw;       /* scalar: its bytes; STRING: the characters; ARRAY: first element */
    uint64_t       raw_len;   /* bytes covered by raw (for an ARRAY, all its elements) */
} llmsq_gguf_value;

typedef struct llmsq_gguf_kv {
    char            *key;    /* owned, NUL-terminated */
    uint64_t         offset; /* file offset of the key's record */
    llmsq_gguf_value v;
} llmsq_gguf_kv;

typedef struct llmsq_gguf_tensor_info {
    char    *name;                      /* owned, NUL-terminated */
    uint32_t n_dims;                    /* 1..4 */
    int64_t  ne[LLMSQ_GGUF_MAX_DIMS];   /* ggml order: ne[0] innermost; unused dims are 1 */
    uint32_t type;                      /* ggml type id, known to llmsq_ggml_type */
    uint64_t offset;                    /* relative to the data section */
    uint64_t nbytes;
    uint64_t info_offset;               /* file offset of this tensor-info record */
} llmsq_gguf_tensor_info;

typedef struct llmsq_gguf_file {
    const char            *path;        /* borrowed, for messages */
    const uint8_t         *data;        /* the whole file (borrowed mapping) */
    uint64_t               size;
    uint32_t               version;
    llmsq_gguf_kv         *kv;          /* [n_kv], file order */
    uint64_t               n_kv;
    llmsq_gguf_tensor_info *tensors;    /* [n_tensors], file order */
    uint64_t               n_tensors;
    uint64_t               alignment;
    uint64_t               data_offset; /* absolute offset of the data section */
} llmsq_gguf_file;

/* Parses and validates the container in data[0..size). `path` must outlive `out`.
 * On failure *out is left empty (nothing to free). Errors: FORMAT (every message names
 * path and a byte offset, key or tensor), UNSUPPORTED (unknown ggml type id), NOMEM. */
llmsq_status llmsq_gguf_parse(const char *path, const uint8_t *data, uint64_t size,
                              llmsq_gguf_file *out);
void llmsq_gguf_file_free(llmsq_gguf_file *f);

/* Lookups by exact name; NULL when absent. */
const llmsq_gguf_kv          *llmsq_gguf_find_kv(const llmsq_gguf_file *f, const char *key);
const llmsq_gguf_tensor_info *llmsq_gguf_find_tensor(const llmsq_gguf_file *f, const char *name);

/* Little-endian loads (the file may put any value at any byte offset). */
static inline uint32_t llmsq_gguf_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t llmsq_gguf_rd64(const uint8_t *p)
{
    return (uint64_t)llmsq_gguf_rd32(p) | (uint64_t)llmsq_gguf_rd32(p + 4) << 32;
}

/* Typed reads of a scalar value. Each returns false when the value's type does not fit:
 * get_int accepts every integer type (and BOOL; UINT64 above INT64_MAX fails), get_float
 * FLOAT32/FLOAT64. array_elem views element i of a numeric ARRAY as a scalar value;
 * array_next_string walks a STRING array (*cursor starts at 0). Only valid on values that
 * llmsq_gguf_parse accepted. */
static inline bool llmsq_gguf_get_int(const llmsq_gguf_value *v, int64_t *out)
{
    const uint8_t *p = v->raw;
    switch (v->type) {
    case LLMSQ_GGUF_UINT8: case LLMSQ_GGUF_BOOL: *out = p[0]; return true;
    case LLMSQ_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case LLMSQ_GGUF_UINT16: *out = (uint16_t)(p[0] | p[1] << 8); return true;
    case LLMSQ_GGUF_INT16: *out = (int16_t)(uint16_t)(p[0] | p[1] << 8); return true;
    case LLMSQ_GGUF_UINT32: *out = llmsq_gguf_rd32(p); return true;
    case LLMSQ_GGUF_INT32: *out = (int32_t)llmsq_gguf_rd32(p); return true;
    case LLMSQ_GGUF_INT64: *out = (int64_t)llmsq_gguf_rd64(p); return true;
    case LLMSQ_GGUF_UINT64: {
        uint64_t u = llmsq_gguf_rd64(p);
        if (u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)u;
        return true;
    }
    default: return false;
    }
}

static inline bool llmsq_gguf_get_float(const llmsq_gguf_value *v, double *out)
{
    if (v->type == LLMSQ_GGUF_FLOAT32) {
        uint32_t u = llmsq_gguf_rd32(v->raw);
        float x;
        memcpy(&x, &u, 4);
        *out = x;
        return true;
    }
    if (v->type == LLMSQ_GGUF_FLOAT64) {
        uint64_t u = llmsq_gguf_rd64(v->raw);
        memcpy(out, &u, 8);
        return true;
    }
    return false;
}

static inline llmsq_gguf_value llmsq_gguf_array_elem(const llmsq_gguf_value *arr, uint64_t i)
{
    size_t sz = llmsq_gguf_vtype_size(arr->elem_type);
    LLMSQ_ASSERT(arr->type == LLMSQ_GGUF_ARRAY && sz && i < arr->n);
    return (llmsq_gguf_value){.type = arr->elem_type, .raw = arr->raw + i * sz, .raw_len = sz};
}

static inline void llmsq_gguf_array_next_string(const llmsq_gguf_value *arr, uint64_t *cursor,
                                                const char **s, uint64_t *len)
{
    LLMSQ_ASSERT(arr->type == LLMSQ_GGUF_ARRAY && arr->elem_type == LLMSQ_GGUF_STRING);
    LLMSQ_ASSERT(*cursor + 8 <= arr->raw_len);
    *len = llmsq_gguf_rd64(arr->raw + *cursor);
    *s = (const char *)arr->raw + *cursor + 8;
    *cursor += 8 + *len;
}

#endif /* LLMSQ_FORMATS_GGUF_IMPL_H */
