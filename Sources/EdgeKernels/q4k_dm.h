// q4k_row_dm, included by avx2.c and avx512.c with Q4K_DM_INLINE defined as their inline attribute
// after their intrinsics header (the function uses SSE4.1, AVX2 and F16C intrinsics only).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/// q4k: d_g = D * sc and m_g = M * mn of a row's G groups into gd / gm, eight groups per step (16-bit
/// lane k of a step holds group k's 2b bits: b = 8 the bytes (sc, mn) as they are, b = 6 the 12 bits
/// at byte 1.5k, shifted down 4 for odd k); entries up to the next multiple of 8 are written (those past
/// G from whatever bytes follow: finite, never used by d and times 0 by m). `avail`: the sub-code bytes
/// readable from s (to the end of the tensor's), copied through a zeroed buffer at the end.
Q4K_DM_INLINE void q4k_row_dm(const uint8_t *s, size_t avail, size_t b, float D, float M, size_t G, float *gd, float *gm) {
    const __m256 vD = _mm256_set1_ps(D), vM = _mm256_set1_ps(M);
    const __m128i shuf6 = _mm_setr_epi8(0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 10, 11);
    const __m128i lo = _mm_set1_epi16(b == 8 ? 0xFF : 63);
    size_t step = b == 8 ? 16 : 12;
    for (size_t g = 0, o = 0; g < G; g += 8, o += step) {
        __m128i v;
        if (o + 16 <= avail) v = _mm_loadu_si128((const __m128i *)(s + o));
        else {
            uint8_t tmp[16] = {0};
            memcpy(tmp, s + o, avail > o ? avail - o : 0);
            v = _mm_loadu_si128((const __m128i *)tmp);
        }
        __m128i sc, mn;
        if (b == 8) {
            sc = _mm_and_si128(v, lo);
            mn = _mm_srli_epi16(v, 8);
        } else {
            __m128i w = _mm_shuffle_epi8(v, shuf6);
            w = _mm_blend_epi16(w, _mm_srli_epi16(w, 4), 0xAA);
            sc = _mm_and_si128(w, lo);
            mn = _mm_and_si128(_mm_srli_epi16(w, 6), lo);
        }
        _mm256_storeu_ps(gd + g, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(sc)), vD));
        _mm256_storeu_ps(gm + g, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(mn)), vM));
    }
}
