/* safetensors reader (FORMATS.md 1.1-1.4): single files and sharded directories. */
#include "llmsq/formats.h"
#include "llmsq/runtime.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000ull /* the reference reader's limit */

typedef struct st_range {
    uint64_t begin, end;
    const char *name;
} st_range;

static int cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static bool parse_dtype(const char *s, llmsq_dtype *out)
{
    static const struct { const char *name; llmsq_dtype t; } map[] = {
        {"F32", LLMSQ_DTYPE_F32}, {"F16", LLMSQ_DTYPE_F16}, {"BF16", LLMSQ_DTYPE_BF16},
        {"I8", LLMSQ_DTYPE_I8},   {"I32", LLMSQ_DTYPE_I32}, {"U8", LLMSQ_DTYPE_U8},
        {"BOOL", LLMSQ_DTYPE_U8}, {"I64", LLMSQ_DTYPE_I64},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(s, map[i].name) == 0) {
            *out = map[i].t;
            return true;
        }
    return false;
}

llmsq_status llmsq_safetensors_read(llmsq_store *s, const char *path)
{
    const uint8_t *data;
    size_t size;
    LLMSQ_TRY(llmsq_store_map_file(s, path, &data, &size));
    if (size < 8)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: truncated safetensors file (%zu bytes, need at least 8)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > ST_MAX_HEADER || hlen > size - 8)
        return llmsq_error(LLMSQ_STATUS_FORMAT,
                           "%s: header length %llu at offset 0 exceeds the file (%zu bytes): truncated or not safetensors",
                           path, (unsigned long long)hlen, size);
    if (hlen == 0 || data[8] != '{')
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: header at offset 8 is not a JSON object", path);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: invalid JSON header at byte %d: %s", path,
                           8 + jerr.position, jerr.text);
    llmsq_status st = LLMSQ_OK;
    const uint8_t *buf = data + 8 + hlen;
    uint64_t buf_len = size - 8 - hlen;
    size_t n_ranges = 0;
    st_range *ranges = NULL;
    if (!json_is_object(root)) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    ranges = malloc((json_object_size(root) + 1) * sizeof *ranges);
    if (!ranges) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *name;
    json_t *ent;
    json_object_foreach(root, name, ent) {
        if (strcmp(name, "__metadata__") == 0) continue;
        json_t *jd = json_object_get(ent, "dtype"), *js = json_object_get(ent, "shape"),
               *jo = json_object_get(ent, "data_offsets");
        if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2 ||
            !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1))) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets [begin, end]",
                             path, name);
            goto done;
        }
        llmsq_dtype dt;
        if (!parse_dtype(json_string_value(jd), &dt)) {
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", path, name,
                             json_string_value(jd));
            goto done;
        }
        size_t ndim = json_array_size(js);
        if (ndim > LLMSQ_MAX_DIMS) {
            st = llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "%s: tensor '%s': rank %zu above %d", path, name, ndim,
                             LLMSQ_MAX_DIMS);
            goto done;
        }
        int64_t shape[LLMSQ_MAX_DIMS];
        uint64_t numel = 1;
        for (size_t i = 0; i < ndim; i++) {
            json_t *d = json_array_get(js, i);
            if (!json_is_integer(d) || json_integer_value(d) < 0) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': shape must hold non-negative integers", path, name);
                goto done;
            }
            shape[i] = json_integer_value(d);
            if (shape[i] && numel > (UINT64_MAX >> 4) / (uint64_t)shape[i]) {
                st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': shape overflows", path, name);
                goto done;
            }
            numel *= (uint64_t)shape[i];
        }
        json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
        if (b < 0 || e < b) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': bad data_offsets [%lld, %lld]", path, name,
                             (long long)b, (long long)e);
            goto done;
        }
        if ((uint64_t)e > buf_len) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT,
                             "%s: tensor '%s': data_offsets [%lld, %lld] past the end of the data (%llu bytes at offset %llu): truncated file?",
                             path, name, (long long)b, (long long)e, (unsigned long long)buf_len,
                             (unsigned long long)(8 + hlen));
            goto done;
        }
        uint64_t want = numel * llmsq_dtype_info(dt)->block_bytes;
        if ((uint64_t)(e - b) != want) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': %lld bytes but shape and %s need %llu", path, name,
                             (long long)(e - b), json_string_value(jd), (unsigned long long)want);
            goto done;
        }
        ranges[n_ranges++] = (st_range){(uint64_t)b, (uint64_t)e, name};
        st = llmsq_store_add(s, name, dt, (int)ndim, shape, buf + b, (size_t)(e - b), path, 8 + hlen + (uint64_t)b);
        if (st != LLMSQ_OK) goto done;
    }
    /* The reference reader requires the tensors to tile the data buffer exactly. */
    qsort(ranges, n_ranges, sizeof *ranges, cmp_range);
    uint64_t at = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        if (ranges[i].begin != at) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' starts at data offset %llu, expected %llu (%s)", path,
                             ranges[i].name, (unsigned long long)ranges[i].begin, (unsigned long long)at,
                             ranges[i].begin > at ? "hole" : "overlap");
            goto done;
        }
        at = ranges[i].end;
    }
    if (at != buf_len)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: %llu trailing bytes after the last tensor", path,
                         (unsigned long long)(buf_len - at));
done:
    free(ranges);
    json_decref(root);
    return st;
}

llmsq_status llmsq_safetensors_read_dir(llmsq_store *s, const char *dir)
{
    char *single = llmsq_path_join(dir, "model.safetensors");
    char *index = llmsq_path_join(dir, "model.safetensors.index.json");
    llmsq_status st = LLMSQ_OK;
    json_t *root = NULL;
    char **shards = NULL;
    size_t n_shards = 0;
    if (!single || !index) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        goto done;
    }
    if (llmsq_is_file(single)) {
        st = llmsq_safetensors_read(s, single);
        goto done;
    }
    if (!llmsq_is_file(index)) {
        st = llmsq_error(LLMSQ_STATUS_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
        goto done;
    }
    json_error_t jerr;
    root = json_load_file(index, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: invalid JSON at line %d: %s", index, jerr.line, jerr.text);
        goto done;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: missing \"weight_map\" object", index);
        goto done;
    }
    shards = calloc(json_object_size(wm) + 1, sizeof *shards);
    if (!shards) {
        st = llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", index);
        goto done;
    }
    const char *name;
    json_t *file;
    json_object_foreach(wm, name, file) {
        if (!json_is_string(file) || strchr(json_string_value(file), '/')) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: weight_map entry '%s' is not a shard file name", index, name);
            goto done;
        }
        bool seen = false;
        for (size_t i = 0; i < n_shards && !seen; i++) seen = strcmp(shards[i], json_string_value(file)) == 0;
        if (!seen) shards[n_shards++] = (char *)json_string_value(file);
    }
    size_t before = llmsq_store_count(s);
    for (size_t i = 0; i < n_shards; i++) {
        char *p = llmsq_path_join(dir, shards[i]);
        st = llmsq_safetensors_read(s, p);
        free(p);
        if (st != LLMSQ_OK) goto done;
    }
    /* Every indexed tensor must be present in the shard the index names. */
    json_object_foreach(wm, name, file) {
        const llmsq_tensor *t = llmsq_store_get(s, name);
        const char *f = t && t->file ? strrchr(t->file, '/') : NULL;
        f = f ? f + 1 : (t ? t->file : NULL);
        if (!t || !f || strcmp(f, json_string_value(file)) != 0) {
            st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s' is not in shard %s", index, name,
                             json_string_value(file));
            goto done;
        }
    }
    if (llmsq_store_count(s) - before != json_object_size(wm))
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: the shards hold %zu tensors but weight_map lists %zu", index,
                         llmsq_store_count(s) - before, json_object_size(wm));
done:
    free(shards);
    json_decref(root);
    free(single);
    free(index);
    return st;
}
