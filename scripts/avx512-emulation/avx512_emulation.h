// AVX-512 intrinsics without AVX-512 hardware, for scripts/test-avx512-emulated.sh only: SIMDe's
// portable implementations under the native names, plus the ones SIMDe 0.7 lacks, written here lane
// by lane from Intel's definitions (masked loads read only the lanes their mask selects, as the
// hardware does, so tails past a buffer's end are not touched).
#ifndef EDGE_AVX512_EMULATION_H
#define EDGE_AVX512_EMULATION_H
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

// SIMDe 0.7 aliases the 2-operand form to its 4-operand masked one.
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)

/// Zero-masked load of `lanes` elements of `elem` into a `vec`: lane i read only when bit i of k is set.
#define EMU_MASKZ_LOAD(name, vec, elem, lanes, masktype)                                   \
    static inline vec emu_##name(masktype k, const void *p) {                              \
        elem v[lanes];                                                                     \
        memset(v, 0, sizeof v);                                                            \
        for (int i = 0; i < (lanes); i++)                                                  \
            if (((uint64_t)k >> i) & 1) memcpy(&v[i], (const elem *)p + i, sizeof(elem));  \
        vec r;                                                                             \
        memcpy(&r, v, sizeof r);                                                           \
        return r;                                                                          \
    }
/// Masked store: lane i written only when bit i of k is set.
#define EMU_MASK_STORE(name, vec, elem, lanes, masktype)                                   \
    static inline void emu_##name(void *p, masktype k, vec a) {                            \
        elem v[lanes];                                                                     \
        memcpy(v, &a, sizeof v);                                                           \
        for (int i = 0; i < (lanes); i++)                                                  \
            if (((uint64_t)k >> i) & 1) memcpy((elem *)p + i, &v[i], sizeof(elem));        \
    }

EMU_MASKZ_LOAD(mm512_maskz_loadu_ps, __m512, float, 16, __mmask16)
EMU_MASKZ_LOAD(mm512_maskz_loadu_epi8, __m512i, int8_t, 64, __mmask64)
EMU_MASKZ_LOAD(mm256_maskz_loadu_epi8, __m256i, int8_t, 32, __mmask32)
EMU_MASKZ_LOAD(mm256_maskz_loadu_epi16, __m256i, int16_t, 16, __mmask16)
EMU_MASKZ_LOAD(mm512_maskz_loadu_epi16, __m512i, int16_t, 32, __mmask32)
EMU_MASKZ_LOAD(mm_maskz_loadu_epi8, __m128i, int8_t, 16, __mmask16)
EMU_MASKZ_LOAD(mm_maskz_loadu_epi16, __m128i, int16_t, 8, __mmask8)
EMU_MASKZ_LOAD(mm_maskz_loadu_epi32, __m128i, int32_t, 4, __mmask8)
EMU_MASKZ_LOAD(mm_maskz_loadu_ps, __m128, float, 4, __mmask8)
EMU_MASK_STORE(mm512_mask_storeu_ps, __m512, float, 16, __mmask16)
EMU_MASK_STORE(mm_mask_storeu_ps, __m128, float, 4, __mmask8)
EMU_MASK_STORE(mm512_mask_storeu_epi8, __m512i, int8_t, 64, __mmask64)
EMU_MASK_STORE(mm512_mask_storeu_epi32, __m512i, int32_t, 16, __mmask16)

/// Lane-wise conversion of `in_lanes` of `in_t` (the low ones of `a`) to `out_t`, by `expr` of `x`.
#define EMU_CONVERT(name, vec_out, out_t, vec_in, in_t, lanes, expr) \
    static inline vec_out emu_##name(vec_in a) {                     \
        in_t in[sizeof(vec_in) / sizeof(in_t)];                      \
        out_t out[lanes];                                            \
        memcpy(in, &a, sizeof in);                                   \
        for (int i = 0; i < (lanes); i++) {                          \
            in_t x = in[i];                                          \
            out[i] = (expr);                                         \
        }                                                            \
        vec_out r;                                                   \
        memcpy(&r, out, sizeof r);                                   \
        return r;                                                    \
    }

/// cvtps2dq: round to nearest even; NaN and out of range give INT_MIN.
static inline int32_t emu_cvt_round(float x) {
    float r = nearbyintf(x);
    return r >= -2147483648.0f && r < 2147483648.0f ? (int32_t)r : INT_MIN;
}
/// binary16 bits to float (exact).
static inline float emu_half(uint16_t h) { return _cvtsh_ss(h); }

EMU_CONVERT(mm512_cvtepi32_ps, __m512, float, __m512i, int32_t, 16, (float)x)
EMU_CONVERT(mm512_cvtps_epi32, __m512i, int32_t, __m512, float, 16, emu_cvt_round(x))
EMU_CONVERT(mm512_cvtepi8_epi32, __m512i, int32_t, __m128i, int8_t, 16, (int32_t)x)
EMU_CONVERT(mm512_cvtepu8_epi32, __m512i, int32_t, __m128i, uint8_t, 16, (int32_t)x)
EMU_CONVERT(mm512_cvtph_ps, __m512, float, __m256i, uint16_t, 16, emu_half(x))
EMU_CONVERT(mm512_cvtepi32_epi16, __m256i, int16_t, __m512i, int32_t, 16, (int16_t)x)  // vpmovdw: truncation
EMU_CONVERT(mm512_cvtepi32_epi8, __m128i, int8_t, __m512i, int32_t, 16, (int8_t)x)     // vpmovdb: truncation

/// Saturates 16 int32 lanes to int8 and stores the lanes k selects.
static inline void emu_mm512_mask_cvtsepi32_storeu_epi8(void *p, __mmask16 k, __m512i a) {
    int32_t v[16];
    memcpy(v, &a, sizeof v);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) ((int8_t *)p)[i] = (int8_t)(v[i] > 127 ? 127 : v[i] < -128 ? -128 : v[i]);
}

/// Reductions in the tree order of GCC's avx512fintrin.h: 256-bit halves, 128-bit halves, then pairs.
#define EMU_REDUCE(name, vec, elem, op)                                                                 \
    static inline elem emu_##name(vec a) {                                                              \
        elem v[16];                                                                                     \
        memcpy(v, &a, sizeof v);                                                                        \
        for (int i = 0; i < 8; i++) v[i] = op(v[i + 8], v[i]);                                          \
        for (int i = 0; i < 4; i++) v[i] = op(v[i + 4], v[i]);                                          \
        elem t0 = op(v[0], v[2]), t1 = op(v[1], v[3]);                                                  \
        return op(t0, t1);                                                                              \
    }
#define EMU_ADD(a, b) ((a) + (b))
#define EMU_MAX(a, b) ((a) > (b) ? (a) : (b))
EMU_REDUCE(mm512_reduce_add_ps, __m512, float, EMU_ADD)
EMU_REDUCE(mm512_reduce_max_ps, __m512, float, EMU_MAX)
EMU_REDUCE(mm512_reduce_add_epi32, __m512i, int32_t, EMU_ADD)

/// vpexpandb (AVX512_VBMI2, absent from SIMDe 0.7): lane i takes the next unused byte of a, in
/// order, when bit i of k is set, else 0.
static inline __m512i emu_mm512_maskz_expand_epi8(__mmask64 k, __m512i a) {
    uint8_t in[64], out[64];
    memcpy(in, &a, 64);
    for (int i = 0, j = 0; i < 64; i++) out[i] = ((uint64_t)k >> i) & 1 ? in[j++] : 0;
    __m512i r;
    memcpy(&r, out, 64);
    return r;
}

#define _mm512_maskz_expand_epi8 emu_mm512_maskz_expand_epi8
#define _mm512_maskz_loadu_ps emu_mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_epi8 emu_mm512_maskz_loadu_epi8
#define _mm256_maskz_loadu_epi8 emu_mm256_maskz_loadu_epi8
#define _mm256_maskz_loadu_epi16 emu_mm256_maskz_loadu_epi16
#define _mm512_maskz_loadu_epi16 emu_mm512_maskz_loadu_epi16
#define _mm_maskz_loadu_epi8 emu_mm_maskz_loadu_epi8
/// vshuff32x4 (absent from SIMDe 0.7 under the native name): 128-bit lanes 0 and 1 of the result
/// from a, lanes 2 and 3 from b, each chosen by two bits of imm, low bits first.
static inline __m512 emu_mm512_shuffle_f32x4(__m512 a, __m512 b, int imm) {
    float in_a[16], in_b[16], out[16];
    memcpy(in_a, &a, 64);
    memcpy(in_b, &b, 64);
    for (int lane = 0; lane < 4; lane++) {
        const float *src = lane < 2 ? in_a : in_b;
        memcpy(out + 4 * lane, src + 4 * ((imm >> (2 * lane)) & 3), 16);
    }
    __m512 r;
    memcpy(&r, out, 64);
    return r;
}

#define _mm_maskz_loadu_epi16 emu_mm_maskz_loadu_epi16
#define _mm_maskz_loadu_epi32 emu_mm_maskz_loadu_epi32
#define _mm_maskz_loadu_ps emu_mm_maskz_loadu_ps
#define _mm512_mask_storeu_ps emu_mm512_mask_storeu_ps
#define _mm_mask_storeu_ps emu_mm_mask_storeu_ps
#define _mm512_mask_storeu_epi8 emu_mm512_mask_storeu_epi8
#define _mm512_mask_storeu_epi32 emu_mm512_mask_storeu_epi32
#define _mm512_cvtepi32_epi16 emu_mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi8 emu_mm512_cvtepi32_epi8
#define _mm512_cvtepi32_ps emu_mm512_cvtepi32_ps
#define _mm512_cvtps_epi32 emu_mm512_cvtps_epi32
#define _mm512_cvtepi8_epi32 emu_mm512_cvtepi8_epi32
#define _mm512_cvtepu8_epi32 emu_mm512_cvtepu8_epi32
#define _mm512_cvtph_ps emu_mm512_cvtph_ps
#define _mm512_mask_cvtsepi32_storeu_epi8 emu_mm512_mask_cvtsepi32_storeu_epi8
#define _mm512_reduce_add_ps emu_mm512_reduce_add_ps
#define _mm512_reduce_max_ps emu_mm512_reduce_max_ps
#define _mm512_reduce_add_epi32 emu_mm512_reduce_add_epi32
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 emu_mm512_shuffle_f32x4

#endif
