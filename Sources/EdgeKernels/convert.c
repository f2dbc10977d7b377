// Number conversions: binary16 / bfloat16 <-> binary32. Scalar, portable, exact.
#include "dispatch.h"
#include <string.h>
#include <math.h>

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float edge_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        // subnormal: value = man * 2^-24
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7F800000u | (man << 13));
    return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t edge_f32_to_f16(float f) {
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) {  // Inf or NaN
        return sign | 0x7C00u | (ax > 0x7F800000u ? (uint16_t)(0x200u | ((ax >> 13) & 0x3FFu)) : 0);
    }
    if (ax >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520 -> Inf
    if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        // value in units of 2^-24, rounded to nearest even
        float v = u2f(ax) * 16777216.0f;  // exact scaling by 2^24
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1u))) m++;
        return sign | (uint16_t)m;  // m == 0x400 becomes the smallest normal, which is correct
    }
    uint32_t e = ((ax >> 23) - 112u) << 10;
    uint32_t mant = ax & 0x7FFFFFu;
    uint32_t h = e | (mant >> 13);
    uint32_t rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

float edge_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t edge_f32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7FFFu + lsb;
    return (uint16_t)(x >> 16);
}

float edge_bf16_round(float v) { return edge_bf16_round_inline(v); }

static inline uint16_t load_u16le(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void store_u16le(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

void edge_f16_to_f32_row(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) dst[i] = edge_f16_to_f32(load_u16le(p + 2 * i));
}
void edge_bf16_to_f32_row(const void *src, float *dst, size_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < n; i++) dst[i] = edge_bf16_to_f32(load_u16le(p + 2 * i));
}
void edge_f32_to_f16_row(const float *src, void *dst, size_t n) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < n; i++) store_u16le(p + 2 * i, edge_f32_to_f16(src[i]));
}
void edge_f32_to_bf16_row(const float *src, void *dst, size_t n) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < n; i++) store_u16le(p + 2 * i, edge_f32_to_bf16(src[i]));
}

size_t edge_count_nonfinite(const float *x, size_t n, size_t *first) {
    size_t count = 0;
    *first = n;
    // Blocks of 4096: a branch-free scan (which the compiler vectorizes) finds whether the block holds
    // any NaN or Inf; only such blocks are walked value by value.
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = n - b < 4096 ? n : b + 4096;
        uint32_t any = 0;
        for (size_t i = b; i < e; i++) any |= (uint32_t)((f2u(x[i]) & 0x7F800000u) == 0x7F800000u);
        if (!any) continue;
        for (size_t i = b; i < e; i++) {
            if ((f2u(x[i]) & 0x7F800000u) == 0x7F800000u) {
                if (count == 0) *first = i;
                count++;
            }
        }
    }
    return count;
}

size_t edge_count_nonzero(const float *x, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += x[i] != 0.0f;  // a compare-and-add the compiler vectorizes
    return count;
}
