/* Internal to eval/kernels/: AVX2 helpers shared by the kernels (only used inside functions
 * compiled with KERN_AVX2). */
#ifndef LLMSQ_KERN_SIMD_H
#define LLMSQ_KERN_SIMD_H

#include "kern-impl.h"

#include <immintrin.h>

/* Sum of the 8 lanes (fixed order: halves, then pairs, then the last two). */
KERN_AVX2 KERN_INLINE float kern_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

KERN_AVX2 KERN_INLINE int32_t kern_hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 8 f16 -> 8 f32. */
KERN_AVX2 KERN_INLINE __m256 kern_ld_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

#endif /* LLMSQ_KERN_SIMD_H */
