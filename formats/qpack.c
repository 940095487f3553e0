/* Bit packing of quantized codes (FORMATS.md 2.4, 4.5) and helpers shared by the GPTQ, AWQ
 * and compressed-tensors translations. */
#include "formats/qpack.h"

#include <stdlib.h>
#include <string.h>

int64_t llmsq_qpack_words(int64_t n, int bits)
{
    LLMSQ_ASSERT(n >= 0 && bits >= 1 && bits <= 8);
    return (n * bits + 31) / 32;
}

uint32_t llmsq_ld_u32(const void *p, int64_t i)
{
    const uint8_t *b = (const uint8_t *)p + 4 * i;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

void llmsq_st_u32(void *p, int64_t i, uint32_t v)
{
    uint8_t *b = (uint8_t *)p + 4 * i;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* Both directions stream through a 64-bit accumulator: every layout the formats use is a
 * plain little-endian bit stream, so one loop serves 2, 3, 4 and 8 bits alike. */
void llmsq_qpack(const uint8_t *v, int64_t vs, int64_t n, int bits, void *w, int64_t ws)
{
    LLMSQ_ASSERT(bits >= 1 && bits <= 8);
    const uint64_t mask = (1u << bits) - 1;
    uint64_t acc = 0;
    int have = 0;
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) {
        acc |= ((uint64_t)v[j * vs] & mask) << have;
        have += bits;
        if (have >= 32) {
            llmsq_st_u32(w, k++ * ws, (uint32_t)acc);
            acc >>= 32;
            have -= 32;
        }
    }
    if (have > 0) llmsq_st_u32(w, k * ws, (uint32_t)acc);
}

void llmsq_qunpack(const void *w, int64_t ws, int64_t n, int bits, uint8_t *v, int64_t vs)
{
    LLMSQ_ASSERT(bits >= 1 && bits <= 8);
    const uint64_t mask = (1u << bits) - 1;
    uint64_t acc = 0;
    int have = 0;
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) {
        if (have < bits) {
            acc |= (uint64_t)llmsq_ld_u32(w, k++ * ws) << have;
            have += 32;
        }
        v[j * vs] = (uint8_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
}

const char *const llmsq_qckpt_suffixes[] = {
    "qweight",      "qzeros",       "scales",      "g_idx",        "weight_packed",
    "weight_scale", "weight_shape", "weight_zero_point", "weight_g_idx", "input_scale", NULL,
};

void llmsq_qckpt_st_float(void *dst, int64_t k, llmsq_dtype dt, float v)
{
    uint8_t *p = dst;
    if (dt == LLMSQ_DTYPE_F32) {
        uint32_t u;
        memcpy(&u, &v, 4);
        llmsq_st_u32(p, k, u);
        return;
    }
    LLMSQ_ASSERT(dt == LLMSQ_DTYPE_F16 || dt == LLMSQ_DTYPE_BF16);
    uint16_t h = dt == LLMSQ_DTYPE_BF16 ? llmsq_f32_to_bf16(v) : llmsq_f32_to_f16(v);
    p[2 * k] = (uint8_t)h;
    p[2 * k + 1] = (uint8_t)(h >> 8);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void llmsq_qckpt_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

llmsq_status llmsq_qckpt_names(const llmsq_store *s, const char *suffix, char ***names, size_t *n)
{
    size_t count = llmsq_store_count(s), k = 0, sl = strlen(suffix);
    char **v = malloc((count ? count : 1) * sizeof *v);
    if (!v) return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const char *name = llmsq_store_at(s, i)->name;
        size_t nl = strlen(name);
        if (nl <= sl || strcmp(name + nl - sl, suffix) != 0) continue;
        if (!(v[k] = strdup(name))) {
            llmsq_qckpt_free_names(v, k);
            return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
        }
        k++;
    }
    qsort(v, k, sizeof *v, cmp_str);
    *names = v;
    *n = k;
    return LLMSQ_OK;
}

llmsq_status llmsq_qckpt_import_each(llmsq_store *s, const char *suffix, const char *method, const char *cfg_path,
                                     llmsq_status (*one)(llmsq_store *s, const void *cfg, const char *prefix),
                                     const void *cfg)
{
    char **names;
    size_t n;
    LLMSQ_TRY(llmsq_qckpt_names(s, suffix, &names, &n));
    llmsq_status st = LLMSQ_OK;
    for (size_t i = 0; i < n && st == LLMSQ_OK; i++) {
        names[i][strlen(names[i]) - strlen(suffix)] = '\0';
        st = one(s, cfg, names[i]);
    }
    if (st == LLMSQ_OK && n == 0)
        st = llmsq_error(LLMSQ_STATUS_FORMAT, "%s: quant_method %s but no tensor ends in %s", cfg_path, method, suffix);
    llmsq_qckpt_free_names(names, n);
    return st;
}

llmsq_status llmsq_qckpt_to_f32(const llmsq_tensor *t, float *dst)
{
    int64_t n = llmsq_tensor_numel(t);
    const uint8_t *b = t->data;
    /* Element by element through bytes: mapped tensors carry no alignment guarantee. */
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case LLMSQ_DTYPE_F32: {
            uint32_t u = llmsq_ld_u32(b, i);
            memcpy(&dst[i], &u, 4);
            break;
        }
        case LLMSQ_DTYPE_F16:
            dst[i] = llmsq_f16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        case LLMSQ_DTYPE_BF16:
            dst[i] = llmsq_bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        default:
            return llmsq_error(LLMSQ_STATUS_FORMAT, "%s: tensor '%s': dtype %s is not a float type",
                               t->file ? t->file : "store", t->name, llmsq_dtype_info(t->dtype)->name);
        }
    }
    return LLMSQ_OK;
}

llmsq_status llmsq_qckpt_put_as(llmsq_store *s, const char *prefix, llmsq_qlinear *q)
{
    size_t n = strlen(prefix);
    char *name = malloc(n + 8);
    if (!name) {
        llmsq_qlinear_free(q);
        return llmsq_error(LLMSQ_STATUS_NOMEM, "out of memory");
    }
    memcpy(name, prefix, n);
    memcpy(name + n, ".weight", 8);
    llmsq_status st = llmsq_store_put_qlinear(s, name, q);
    free(name);
    return st;
}

llmsq_status llmsq_qckpt_put(llmsq_store *s, const char *prefix, llmsq_qlinear *q)
{
    const int32_t mid = 1 << (q->bits - 1);
    bool sym = true;
    for (int64_t k = 0; k < q->out * q->n_groups && sym; k++) sym = q->zeros[k] == mid;
    q->grid = sym ? LLMSQ_QGRID_SYM : LLMSQ_QGRID_MINMAX;
    if (q->g_idx) {
        bool trivial = true;
        for (int64_t i = 0; i < q->in && trivial; i++) trivial = q->g_idx[i] == i / q->group_size;
        if (trivial) {
            free(q->g_idx);
            q->g_idx = NULL;
        }
    }
    return llmsq_qckpt_put_as(s, prefix, q);
}
