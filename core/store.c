/* The tensor store: named tensors, file mappings, lazy F32 materialization. */
#include "llmsq/store.h"
#include "llmsq/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct store_entry {
    llmsq_tensor t;
    float       *f32;      /* cached conversion, NULL when none or when t is F32 */
    char        *file_copy;
    bool         evicted;  /* data released by llmsq_store_evict */
} store_entry;

typedef struct store_mapping {
    void  *addr;
    size_t size;
} store_mapping;

struct llmsq_store {
    store_entry   *entries;
    size_t         n, cap;
    size_t        *slots;   /* open addressing: index+1 into entries, 0 = empty */
    size_t         n_slots; /* power of two */
    store_mapping *maps;
    size_t         n_maps, cap_maps;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

llmsq_store *llmsq_store_create(void)
{
    llmsq_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n_slots = 64;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    return s;
}

static void entry_free(store_entry *e)
{
    llmsq_qlinear_free((llmsq_qlinear *)e->t.qlinear);
    if (e->t.owned) free(e->t.data);
    free(e->f32);
    free(e->t.name);
    free(e->file_copy);
}

void llmsq_store_destroy(llmsq_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) entry_free(&s->entries[i]);
    for (size_t i = 0; i < s->n_maps; i++) munmap(s->maps[i].addr, s->maps[i].size);
    free(s->entries);
    free(s->slots);
    free(s->maps);
    free(s);
}

llmsq_status llmsq_store_map_file(llmsq_store *s, const char *path, const uint8_t **data,
                                  size_t *size)
{
    LLMSQ_ASSERT(s && path && data && size);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return llmsq_error(LLMSQ_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return llmsq_error(LLMSQ_STATUS_IO, "%s: not a regular file", path);
    }
    *size = (size_t)st.st_size;
    *data = NULL;
    if (st.st_size == 0) {
        close(fd);
        return LLMSQ_OK;
    }
    void *addr = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (addr == MAP_FAILED) return llmsq_error(LLMSQ_STATUS_IO, "%s: mmap failed: %s", path, strerror(err));
    if (s->n_maps == s->cap_maps) {
        size_t cap = s->cap_maps ? 2 * s->cap_maps : 4;
        store_mapping *m = realloc(s->maps, cap * sizeof *m);
        if (!m) {
            munmap(addr, *size);
            return llmsq_error(LLMSQ_STATUS_NOMEM, "%s: out of memory", path);
        }
        s->maps = m;
        s->cap_maps = cap;
    }
    s->maps[s->n_maps++] = (store_mapping){addr, *size};
    *data = addr;
    return LLMSQ_OK;
}

static size_t *find_slot(const llmsq_store *s, const char *name)
{
    size_t mask = s->n_slots - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        size_t v = s->slots[i];
        if (v == 0 || strcmp(s->entries[v - 1].t.name, name) == 0) return &s->slots[i];
    }
}

static llmsq_status grow(llmsq_store *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        store_entry *e = realloc(s->entries, cap * sizeof *e);
        if (!e) return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor store: out of memory");
        s->entries = e;
        s->cap = cap;
    }
    if (2 * (s->n + 1) > s->n_slots) {
        size_t n_slots = 2 * s->n_slots;
        size_t *slots = calloc(n_slots, sizeof *slots);
        if (!slots) return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor store: out of memory");
        free(s->slots);
        s->slots = slots;
        s->n_slots = n_slots;
        for (size_t i = 0; i < s->n; i++) *find_slot(s, s->entries[i].t.name) = i + 1;
    }
    return LLMSQ_OK;
}

static llmsq_status check_shape(const char *name, llmsq_dtype dtype, int ndim, const int64_t *shape,
                                size_t nbytes, const char *file)
{
    if ((unsigned)dtype >= LLMSQ_DTYPE_COUNT)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor '%s': bad dtype", file ? file : "store", name);
    if (ndim < 0 || ndim > LLMSQ_MAX_DIMS)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor '%s': rank %d not supported (max %d)",
                           file ? file : "store", name, ndim, LLMSQ_MAX_DIMS);
    const llmsq_dtype_traits *tr = llmsq_dtype_info(dtype);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > INT64_MAX / shape[i]))
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor '%s': bad dimension %lld",
                               file ? file : "store", name, (long long)shape[i]);
        numel *= shape[i];
    }
    if (numel % tr->block != 0 || (ndim > 0 && shape[ndim - 1] % tr->block != 0))
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor '%s': last dimension is not a multiple of the %s block",
                           file ? file : "store", name, tr->name);
    if ((uint64_t)(numel / tr->block) > SIZE_MAX / tr->block_bytes ||
        (size_t)(numel / tr->block) * tr->block_bytes != nbytes)
        return llmsq_error(LLMSQ_STATUS_ARG, "%s: tensor '%s': %zu bytes do not match %s x %lld elements",
                           file ? file : "store", name, nbytes, tr->name, (long long)numel);
    return LLMSQ_OK;
}

static llmsq_status insert(llmsq_store *s, const char *name, llmsq_dtype dtype, int ndim,
                           const int64_t *shape, void *data, size_t nbytes, bool owned,
                           const char *file, uint64_t file_offset, bool replace)
{
    size_t *slot = find_slot(s, name);
    if (*slot) {
        if (!replace) {
            if (owned) free(data);
            return llmsq_error(LLMSQ_STATUS_ARG, "%s: duplicate tensor '%s'", file ? file : "store", name);
        }
        store_entry *e = &s->entries[*slot - 1];
        e->evicted = false;
        if (e->t.owned) free(e->t.data);
        llmsq_qlinear_free((llmsq_qlinear *)e->t.qlinear);
        e->t.qlinear = NULL;
        free(e->f32);
        e->f32 = NULL;
        e->t.dtype = dtype;
        e->t.ndim = ndim;
        memset(e->t.shape, 0, sizeof e->t.shape);
        memcpy(e->t.shape, shape, (size_t)ndim * sizeof *shape);
        e->t.data = data;
        e->t.nbytes = nbytes;
        e->t.owned = owned;
        return LLMSQ_OK;
    }
    llmsq_status st = grow(s);
    if (st != LLMSQ_OK) {
        if (owned) free(data);
        return st;
    }
    store_entry *e = &s->entries[s->n];
    memset(e, 0, sizeof *e);
    e->t.name = strdup(name);
    e->file_copy = file ? strdup(file) : NULL;
    if (!e->t.name || (file && !e->file_copy)) {
        free(e->t.name);
        free(e->file_copy);
        if (owned) free(data);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor store: out of memory");
    }
    e->t.dtype = dtype;
    e->t.ndim = ndim;
    memcpy(e->t.shape, shape, (size_t)ndim * sizeof *shape);
    e->t.data = data;
    e->t.nbytes = nbytes;
    e->t.owned = owned;
    e->t.file = e->file_copy;
    e->t.file_offset = file_offset;
    s->n++;
    *find_slot(s, name) = s->n;
    return LLMSQ_OK;
}

llmsq_status llmsq_store_add(llmsq_store *s, const char *name, llmsq_dtype dtype, int ndim,
                             const int64_t *shape, const void *data, size_t nbytes,
                             const char *file, uint64_t file_offset)
{
    LLMSQ_ASSERT(s && name && (shape || ndim == 0));
    LLMSQ_TRY(check_shape(name, dtype, ndim, shape, nbytes, file));
    return insert(s, name, dtype, ndim, shape, (void *)data, nbytes, false, file, file_offset, false);
}

llmsq_status llmsq_store_put(llmsq_store *s, const char *name, llmsq_dtype dtype, int ndim,
                             const int64_t *shape, void *data)
{
    LLMSQ_ASSERT(s && name && (shape || ndim == 0));
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    const llmsq_dtype_traits *tr = llmsq_dtype_info(dtype);
    size_t nbytes = (size_t)(numel / tr->block) * tr->block_bytes;
    llmsq_status st = check_shape(name, dtype, ndim, shape, nbytes, NULL);
    if (st != LLMSQ_OK) {
        free(data);
        return st;
    }
    return insert(s, name, dtype, ndim, shape, data, nbytes, true, NULL, 0, true);
}

const llmsq_tensor *llmsq_store_get(const llmsq_store *s, const char *name)
{
    LLMSQ_ASSERT(s && name);
    size_t v = *find_slot(s, name);
    return v ? &s->entries[v - 1].t : NULL;
}

size_t llmsq_store_count(const llmsq_store *s) { return s->n; }

const llmsq_tensor *llmsq_store_at(const llmsq_store *s, size_t i)
{
    LLMSQ_ASSERT(i < s->n);
    return &s->entries[i].t;
}

llmsq_status llmsq_store_get_f32(llmsq_store *s, const char *name, const float **out)
{
    LLMSQ_ASSERT(s && name && out);
    size_t v = *find_slot(s, name);
    if (!v) return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "tensor '%s' not found", name);
    store_entry *e = &s->entries[v - 1];
    if (e->evicted)
        return llmsq_error(LLMSQ_STATUS_NOT_FOUND, "tensor '%s' was released from the store (packed model)", name);
    /* F32 data in a mapping is used in place when aligned (safetensors guarantees only
     * byte alignment, so an unaligned tensor is copied). */
    if (!e->t.qlinear && e->t.dtype == LLMSQ_DTYPE_F32 && ((uintptr_t)e->t.data % sizeof(float)) == 0) {
        *out = e->t.data;
        return LLMSQ_OK;
    }
    if (!e->f32) {
        int64_t n = llmsq_tensor_numel(&e->t);
        float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
        if (!f) return llmsq_error(LLMSQ_STATUS_NOMEM, "tensor '%s': out of memory", name);
        if (e->t.qlinear) {
            llmsq_qlinear_dequant(e->t.qlinear, f);
            e->f32 = f;
            *out = f;
            return LLMSQ_OK;
        }
        llmsq_status st = llmsq_dtype_to_f32(e->t.dtype, e->t.data, f, n);
        if (st != LLMSQ_OK) {
            free(f);
            return llmsq_error_prefix(st, "tensor '%s'", name);
        }
        e->f32 = f;
    }
    *out = e->f32;
    return LLMSQ_OK;
}

void llmsq_store_release_f32(llmsq_store *s, const char *name)
{
    size_t v = *find_slot(s, name);
    if (!v) return;
    free(s->entries[v - 1].f32);
    s->entries[v - 1].f32 = NULL;
}

void llmsq_store_evict(llmsq_store *s, const char *name)
{
    size_t v = *find_slot(s, name);
    if (!v) return;
    store_entry *e = &s->entries[v - 1];
    if (e->evicted) return;
    llmsq_qlinear_free((llmsq_qlinear *)e->t.qlinear);
    e->t.qlinear = NULL;
    free(e->f32);
    e->f32 = NULL;
    if (e->t.owned) {
        free(e->t.data);
    } else if (e->t.data && e->t.nbytes) {
        /* Pages of a read-only file mapping can be dropped: they leave the resident set and
         * would be read back from the file if touched again. Only whole pages inside the
         * tensor, since neighbours may share the edge pages. */
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)e->t.data + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)e->t.data + e->t.nbytes) & ~(page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    e->t.data = NULL;
    e->t.owned = false;
    e->evicted = true;
}

llmsq_status llmsq_store_put_qlinear(llmsq_store *s, const char *name, llmsq_qlinear *q)
{
    LLMSQ_ASSERT(s && name && q);
    size_t v = *find_slot(s, name);
    if (v) {
        const llmsq_tensor *t = &s->entries[v - 1].t;
        if (t->ndim != 2 || t->shape[0] != q->out || t->shape[1] != q->in) {
            char sh[96];
            llmsq_status st = llmsq_error(LLMSQ_STATUS_SHAPE, "tensor '%s': quantized [%lld, %lld] does not match %s", name,
                                          (long long)q->out, (long long)q->in, llmsq_shape_str(t, sh, sizeof sh));
            llmsq_qlinear_free(q);
            return st;
        }
    }
    int64_t shape[2] = {q->out, q->in};
    llmsq_status st = insert(s, name, LLMSQ_DTYPE_F32, 2, shape, NULL, 0, false, NULL, 0, true);
    if (st != LLMSQ_OK) {
        llmsq_qlinear_free(q);
        return st;
    }
    s->entries[*find_slot(s, name) - 1].t.qlinear = q;
    return LLMSQ_OK;
}

const llmsq_qlinear *llmsq_store_get_qlinear(const llmsq_store *s, const char *name)
{
    size_t v = *find_slot(s, name);
    return v ? s->entries[v - 1].t.qlinear : NULL;
}

size_t llmsq_store_resident_bytes(const llmsq_store *s)
{
    size_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        const store_entry *e = &s->entries[i];
        if (e->t.owned) total += e->t.nbytes;
        if (e->t.qlinear) {
            const llmsq_qlinear *q = e->t.qlinear;
            total += (size_t)(q->out * q->in) + (size_t)(q->out * q->n_groups) * 8 + (q->g_idx ? (size_t)q->in * 4 : 0);
        }
        if (e->f32) total += (size_t)llmsq_tensor_numel(&e->t) * sizeof(float);
    }
    return total;
}
