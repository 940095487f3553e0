/* Element types: traits table and conversions to f32. */
#include "llmsq/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const llmsq_dtype_traits g_traits[LLMSQ_DTYPE_COUNT] = {
    [LLMSQ_DTYPE_F32]  = {"F32", 1, 4, true},
    [LLMSQ_DTYPE_F16]  = {"F16", 1, 2, true},
    [LLMSQ_DTYPE_BF16] = {"BF16", 1, 2, true},
    [LLMSQ_DTYPE_I8]   = {"I8", 1, 1, false},
    [LLMSQ_DTYPE_I32]  = {"I32", 1, 4, false},
    [LLMSQ_DTYPE_U8]   = {"U8", 1, 1, false},
    [LLMSQ_DTYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [LLMSQ_DTYPE_I64]  = {"I64", 1, 8, false},
};

const llmsq_dtype_traits *llmsq_dtype_info(llmsq_dtype t)
{
    LLMSQ_ASSERT((unsigned)t < LLMSQ_DTYPE_COUNT);
    return &g_traits[t];
}

size_t llmsq_dtype_nbytes(llmsq_dtype t, int64_t n)
{
    const llmsq_dtype_traits *tr = llmsq_dtype_info(t);
    LLMSQ_ASSERT(n >= 0 && n % tr->block == 0);
    return (size_t)(n / tr->block) * tr->block_bytes;
}

float llmsq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t llmsq_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal f16: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = absx - 0x38000000u; /* rebias exponent */
    uint32_t rem = q & 0x1fff;
    q >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

float llmsq_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t llmsq_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

llmsq_status llmsq_dtype_to_f32(llmsq_dtype t, const void *src, float *dst, int64_t n)
{
    const llmsq_dtype_traits *tr = llmsq_dtype_info(t);
    if (!tr->is_float)
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "cannot convert %s to F32", tr->name);
    if (n % tr->block != 0)
        return llmsq_error(LLMSQ_STATUS_ARG, "%lld elements is not a multiple of the %s block (%lld)",
                           (long long)n, tr->name, (long long)tr->block);
    const uint8_t *p = src;
    switch (t) {
    case LLMSQ_DTYPE_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case LLMSQ_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = llmsq_f16_to_f32(h);
        }
        break;
    case LLMSQ_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = llmsq_bf16_to_f32(h);
        }
        break;
    case LLMSQ_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = p + b * 34;
            uint16_t h;
            memcpy(&h, blk, 2);
            float d = llmsq_f16_to_f32(h);
            for (int j = 0; j < 32; j++) dst[b * 32 + j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    default:
        return llmsq_error(LLMSQ_STATUS_UNSUPPORTED, "cannot convert %s to F32", tr->name);
    }
    return LLMSQ_OK;
}

int64_t llmsq_tensor_numel(const llmsq_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const char *llmsq_shape_str(const llmsq_tensor *t, char *buf, size_t cap)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, cap - off, "[");
    for (int i = 0; i < t->ndim && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (off < cap) snprintf(buf + off, cap - off, "]");
    return buf;
}

int64_t llmsq_f32_first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}
