// AVX2 + FMA + F16C kernels (x86-64). Every function carries its own target attribute, so the file
// builds with the default flags and runs only where dispatch.c found the features.
//
// The float-activation GEMMs run through the shared driver (gemm_driver.c); this file gives it the
// weight unpacker (f16/q8/q4 rows to f32) and two micro-kernels: the dot-product tile (MT tokens x NR
// rows of 8-lane partial dot products, reduced horizontally once per tile) for few tokens, and the
// packed 6x16 outer-product tile for many. The int8 x int8 and int8 x int16 products keep their own
// loops here.
#if defined(__x86_64__)
#include "dispatch.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

enum { MT = 4, NR = 3 };  // f32 tile: tokens x rows (12 accumulators + 3 weights + 1 activation = 16 ymm)
enum { QMT = 4, QNR = 2 };  // int8 x int8 tile (8 accumulators, plus widened operands and products)

static const int32_t k_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/// Lane mask with the first n (0...8) lanes set.
AVX2_INLINE __m256i mask8(size_t n) { return _mm256_loadu_si256((const __m256i *)(k_mask_table + 8 - n)); }
/// Lane mask with the first n (0...4) lanes set.
AVX2_INLINE __m128i mask4(size_t n) { return _mm_loadu_si128((const __m128i *)(k_mask_table + 8 - n)); }

/// [sum(a), sum(b), sum(c), sum(d)].
AVX2_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

AVX2_INLINE __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

AVX2_INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Writes (or adds to) y[0..n) from the first n (1...4) lanes of s.
AVX2_INLINE void store_n(float *y, __m128 s, int n, bool accumulate) {
    __m128i m = mask4((size_t)n);
    if (accumulate) s = _mm_add_ps(s, _mm_maskload_ps(y, m));
    _mm_maskstore_ps(y, m, s);
}

// ---- f32 micro-kernel -----------------------------------------------------------------------

/// y[t*ldy + r] (+)= dot(w[r*ldw ..], x[t*ldx ..]) over kc columns, t < mt, r < nr.
/// Called with constant mt/nr, so the loops unroll and the accumulators live in registers.
AVX2_INLINE void tile_f32(const int mt, const int nr, const float *w, size_t ldw, const float *x, size_t ldx,
                          float *y, size_t ldy, size_t kc, bool accumulate) {
    __m256 acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm256_loadu_ps(w + r * ldw + k);
        for (int t = 0; t < mt; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * ldx + k);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm256_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    if (k < kc) {
        __m256i m = mask8(kc - k);
        __m256 wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm256_maskload_ps(w + r * ldw + k, m);
        for (int t = 0; t < mt; t++) {
            __m256 xv = _mm256_maskload_ps(x + t * ldx + k, m);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm256_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    __m256 z = _mm256_setzero_ps();
    for (int t = 0; t < mt; t++) {
        __m128 s = hsum4(acc[t][0], nr > 1 ? acc[t][1] : z, nr > 2 ? acc[t][2] : z, z);
        store_n(y + t * ldy, s, nr, accumulate);
    }
}

#define TILE_CASE(a, b) \
    case (a) * 8 + (b): tile_f32(a, b, w, ldw, x, ldx, y, ldy, kc, accumulate); break;

static AVX2 void tile_f32_any(int mt, int nr, const float *w, size_t ldw, const float *x, size_t ldx, float *y, size_t ldy,
                              size_t kc, bool accumulate) {
    switch (mt * 8 + nr) {
        TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)
    }
}
#undef TILE_CASE

// ---- Weight unpackers (gemm_driver.h) ----------------------------------------------------

/// dst[i] = f32 of binary16 src[i] for whole vectors of 8; returns how many it converted.
static AVX2 size_t unpack_f16(const uint16_t *src, size_t n, float *dst) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    return i;
}

/// dst[i] = scale * (float)(q[i] - zero) (q unsigned when asymmetric, else signed with zero 0) for
/// whole vectors of 8; returns how many it converted.
static AVX2 size_t unpack_q8(const uint8_t *src, size_t n, float scale, bool asymmetric, int zero, float *dst) {
    __m256 vs = _mm256_set1_ps(scale);
    size_t i = 0;
    if (asymmetric) {
        __m256i vz = _mm256_set1_epi32(zero);
        for (; i + 8 <= n; i += 8) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz))));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(q)));
        }
    }
    return i;
}

/// dst[i] = scale * (float)(nibble i - zero) (low nibble of bytes[i/2] first) for whole vectors of 8
/// (4 bytes); returns how many it converted.
static AVX2 size_t unpack_q4(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    const __m128i lo4 = _mm_set1_epi8(0x0F);
    __m256 vs = _mm256_set1_ps(scale);
    __m256i vz = _mm256_set1_epi32(zero);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int32_t b4;
        memcpy(&b4, bytes + i / 2, 4);
        __m128i b = _mm_cvtsi32_si128(b4);
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(u), vz);
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(q)));
    }
    return i;
}

/// dst[i] = scale * (float)(code i - zero) (code i in bits 3i...3i+2 of the bit stream at bytes) for whole
/// vectors of 8 (3 bytes each); returns how many it converted. Reads at most ceil(3n/8) bytes.
static AVX2 size_t unpack_q3(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    const __m256i shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21), seven = _mm256_set1_epi32(7);
    __m256 vs = _mm256_set1_ps(scale);
    __m256i vz = _mm256_set1_epi32(zero);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {  // two units, bytes 0...5: all inside the run
        const uint8_t *b = bytes + i / 8 * 3;
        uint32_t v0, v1;
        memcpy(&v0, b, 4);  // bytes 0...3 (byte 3 is the second unit's; the shifts never reach it)
        v1 = (uint32_t)b[3] | (uint32_t)b[4] << 8 | (uint32_t)b[5] << 16;
        __m256i q0 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v0), shifts), seven);
        __m256i q1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v1), shifts), seven);
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(q0, vz))));
        _mm256_storeu_ps(dst + i + 8, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(q1, vz))));
    }
    if (i + 8 <= n) {
        const uint8_t *b = bytes + i / 8 * 3;
        uint32_t v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
        __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v), shifts), seven);
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz))));
        i += 8;
    }
    return i;
}

/// dst[i] = d * (float)(nibble i) - m (low nibble of bytes[i/2] first) for whole vectors of 8 (4 bytes);
/// returns how many it converted. One fused multiply-subtract: d * u is exact, so the scalar formula's bits.
static AVX2 size_t unpack_q4k(const uint8_t *bytes, size_t n, float d, float m, float *dst) {
    const __m128i lo4 = _mm_set1_epi8(0x0F);
    __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int32_t b4;
        memcpy(&b4, bytes + i / 2, 4);
        __m128i b = _mm_cvtsi32_si128(b4);
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        _mm256_storeu_ps(dst + i, _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(u)), vm));
    }
    return i;
}

// ---- Packed outer-product micro-kernel (many tokens) ----------------------------------------
// The driver packs weights into panels of 16 rows stored k-major ([k][16], zero-padded), so the 6x16
// micro-kernel reads two aligned vectors of 16 outputs' weights per k and broadcasts 6 tokens'
// activations: 12 accumulators, 12 FMAs per 2 loads + 6 broadcasts.

enum { PMT = 6, PNR = 16, PRB = 128 };  // PRB: rows per packed block of the int16 GEMM

#define MK_ROW(i) \
    a = _mm256_broadcast_ss(x##i + k); \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0); \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);

#define MK_STORE(i) \
    if (i < mt) { \
        float *yr = y + (size_t)i * ldy; \
        if (nr == PNR) { \
            if (accumulate) { c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(yr)); c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(yr + 8)); } \
            _mm256_storeu_ps(yr, c##i##0); _mm256_storeu_ps(yr + 8, c##i##1); \
        } else { \
            __m256i m0 = mask8(nr < 8 ? (size_t)nr : 8), m1 = mask8(nr > 8 ? (size_t)(nr - 8) : 0); \
            if (accumulate) { c##i##0 = _mm256_add_ps(c##i##0, _mm256_maskload_ps(yr, m0)); c##i##1 = _mm256_add_ps(c##i##1, _mm256_maskload_ps(yr + 8, m1)); } \
            _mm256_maskstore_ps(yr, m0, c##i##0); _mm256_maskstore_ps(yr + 8, m1, c##i##1); \
        } \
    }

/// y[t*ldy + r] (+)= sum_k x[t*ldx + k] * p[k*16 + r] for t < mt (<= 6), r < nr (<= 16).
static AVX2 void micro_6x16(int mt, int nr, const float *x, size_t ldx, const float *p, size_t kc, float *y, size_t ldy,
                            bool accumulate) {
    // Rows past mt read row 0 again (valid memory); their sums are not stored.
    const float *x0 = x, *x1 = mt > 1 ? x + ldx : x, *x2 = mt > 2 ? x + 2 * ldx : x;
    const float *x3 = mt > 3 ? x + 3 * ldx : x, *x4 = mt > 4 ? x + 4 * ldx : x, *x5 = mt > 5 ? x + 5 * ldx : x;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(p + k * PNR), b1 = _mm256_load_ps(p + k * PNR + 8), a;
        MK_ROW(0) MK_ROW(1) MK_ROW(2) MK_ROW(3) MK_ROW(4) MK_ROW(5)
    }
    MK_STORE(0) MK_STORE(1) MK_STORE(2) MK_STORE(3) MK_STORE(4) MK_STORE(5)
}
#undef MK_ROW
#undef MK_STORE

// ---- Fused one-token kernel (decoding) ------------------------------------------------------
// T == 1 streams each weight row once: unpacked in registers (the values unpack_* give) and summed
// with tile_f32's float operations (8 lanes over the column block, masked tail, hsum4), one row at a
// time, so the outputs are bit-identical to the dot path's while no dequantized buffer is written
// and read back.

/// 8 weights of row r, columns [j, j + 8), for a whole vector inside the row (and, for q4, inside one
/// group); `vs` / `vz` hold the row's (q8) or the group's (q4) scale and zero.
AVX2_INLINE __m256 fused_w8(const edge_wkind kind, const edge_wsource *s, size_t cols, size_t r, size_t j, __m256 vs,
                            __m256i vz) {
    switch (kind) {
    case EDGE_W_F32: return _mm256_loadu_ps((const float *)s->W + r * cols + j);
    case EDGE_W_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)s->W + r * cols + j)));
    case EDGE_W_Q8: {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)s->W + r * cols + j));
        if (s->zero) return _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(b), vz)));
        return _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)));
    }
    case EDGE_W_Q4: {
        int32_t b4;
        memcpy(&b4, (const uint8_t *)s->W + r * s->row_bytes + j / 2, 4);
        const __m128i lo4 = _mm_set1_epi8(0x0F);
        __m128i b = _mm_cvtsi32_si128(b4);
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        return _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(u), vz)));
    }
    default: return _mm256_setzero_ps();
    }
}

/// Rows [r, r + nr) (nr <= 4), columns [k0, k0 + kc): y[r + i] (+)= the block's dot product.
AVX2_INLINE void fused_rows(const edge_wkind kind, const int nr, const edge_wsource *s, const float *x, float *y,
                            size_t cols, size_t r, size_t k0, size_t kc, bool accumulate) {
    __m256 acc[4], vs[4];
    __m256i vz[4];
    for (int i = 0; i < 4; i++) {
        acc[i] = _mm256_setzero_ps();
        vs[i] = _mm256_setzero_ps();
        vz[i] = _mm256_setzero_si256();
    }
    if (kind == EDGE_W_Q8)
        for (int i = 0; i < nr; i++) {
            vs[i] = _mm256_set1_ps(s->scale[r + i]);
            vz[i] = _mm256_set1_epi32(s->zero ? (int)s->zero[r + i] : 0);
        }
    size_t k = 0, next_group = 0;
    for (; k + 8 <= kc; k += 8) {
        size_t j = k0 + k;
        if (kind == EDGE_W_Q4 && j >= next_group) {  // a new group (group_size is a multiple of 8)
            size_t g = j / s->group_size;
            next_group = (g + 1) * s->group_size;
            for (int i = 0; i < nr; i++) {
                size_t gi = (r + i) * s->groups + g;
                vs[i] = _mm256_set1_ps(edge_f16_to_f32(s->scale_f16[gi]));
                vz[i] = _mm256_set1_epi32(s->zero ? (int)s->zero[gi] : 8);
            }
        }
        __m256 xv = _mm256_loadu_ps(x + j);
        for (int i = 0; i < nr; i++) acc[i] = _mm256_fmadd_ps(fused_w8(kind, s, cols, r + i, j, vs[i], vz[i]), xv, acc[i]);
    }
    if (k < kc) {  // the block's last columns: the scalar formula, zero lanes past them (as the masked loads)
        size_t n = kc - k;
        __m256i m = mask8(n);
        __m256 xv = _mm256_maskload_ps(x + k0 + k, m);
        for (int i = 0; i < nr; i++) {
            float w[8] = {0};
            for (size_t l = 0; l < n; l++) w[l] = edge_weight_at(kind, s, cols, r + i, k0 + k + l);
            acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(w), xv, acc[i]);
        }
    }
    __m256 z = _mm256_setzero_ps();
    __m128 sum = hsum4(acc[0], nr > 1 ? acc[1] : z, nr > 2 ? acc[2] : z, nr > 3 ? acc[3] : z);
    store_n(y + r, sum, nr, accumulate);
}

/// One row at a time (q4: four): the weight bytes are read strictly in order, which this memory system streams
/// at several times the rate of 4 interleaved rows (whose shorter per-row streams defeat the hardware
/// prefetcher), with software prefetches EDGE_PREFETCH_BYTES ahead, except for f32 rows: on an AVX2-only
/// AMD Zen 3 f32 decoding ran 10-20% faster without them, while f16, q8 and q4 rows ran 7-18% slower
/// (docs/performance.md, "Session 27").
AVX2_INLINE void fused_kind(const edge_wkind kind, const edge_wsource *s, const float *x, float *y, size_t cols,
                            size_t r0, size_t r1) {
    size_t kstep = edge_column_block(cols);
    size_t row_bytes = kind == EDGE_W_F32 ? cols * 4 : kind == EDGE_W_F16 ? cols * 2 : kind == EDGE_W_Q8 ? cols : s->row_bytes;
    size_t r = r0;
    if (kind == EDGE_W_Q4)  // half a byte per weight: unpacking, not memory, is the limit; 4 rows interleaved
        for (; r + 4 <= r1; r += 4) {
            edge_prefetch_ahead((const uint8_t *)s->W + r * row_bytes, 4 * row_bytes, (const uint8_t *)s->W + r1 * row_bytes);
            for (size_t k0 = 0; k0 < cols; k0 += kstep)
                fused_rows(kind, 4, s, x, y, cols, r, k0, cols - k0 < kstep ? cols - k0 : kstep, k0 > 0);
        }
    for (; r < r1; r++) {
        if (kind != EDGE_W_F32)
            edge_prefetch_ahead((const uint8_t *)s->W + r * row_bytes, row_bytes, (const uint8_t *)s->W + r1 * row_bytes);
        for (size_t k0 = 0; k0 < cols; k0 += kstep)
            fused_rows(kind, 1, s, x, y, cols, r, k0, cols - k0 < kstep ? cols - k0 : kstep, k0 > 0);
    }
}

static AVX2 bool matvec_fused(const edge_wsource *s, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    switch (s->kind) {
    case EDGE_W_F32: fused_kind(EDGE_W_F32, s, x, y, cols, r0, r1); return true;
    case EDGE_W_F16: fused_kind(EDGE_W_F16, s, x, y, cols, r0, r1); return true;
    case EDGE_W_Q8: fused_kind(EDGE_W_Q8, s, x, y, cols, r0, r1); return true;
    case EDGE_W_Q4:
        if (s->group_size == 0 || s->group_size % 8 != 0) return false;
        fused_kind(EDGE_W_Q4, s, x, y, cols, r0, r1);
        return true;
    default: return false;
    }
}

/// edge_bf16_round of 8 floats' bits, as f32 bits (the low halves cleared).
AVX2_INLINE __m256i bf16_round8(__m256i x) {
    const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_and_si256(_mm256_add_epi32(x, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), high);
    __m256i nan = _mm256_cmpgt_epi32(  // both non-negative as int32
        _mm256_and_si256(x, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    r = _mm256_blendv_epi8(r, _mm256_and_si256(_mm256_or_si256(x, _mm256_set1_epi32(0x00400000)), high), nan);
    __m256i tiny = _mm256_cmpeq_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7F800000)), _mm256_setzero_si256());
    return _mm256_blendv_epi8(r, _mm256_and_si256(x, _mm256_set1_epi32((int)0x80000000u)), tiny);
}

/// edge_gemm_isa.round_bf16: 8 at a time.
static AVX2 size_t round_bf16(const float *src, size_t n, bool swap, float *dst) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        if (swap) x = _mm256_shuffle_epi32(x, 0xB1);  // [1 0 3 2] in each lane
        _mm256_storeu_si256((__m256i *)(dst + i), bf16_round8(x));
    }
    return i;
}

/// edge_gemm_isa.pack_rows for PNR = 16 rows: per 8 columns, two 8 x 8 register transposes.
static AVX2 size_t pack_rows16(const float *src, size_t ld, size_t kc, float *panel) {
    size_t k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8)
        for (size_t h = 0; h < 2; h++) {
            __m256 r[8], t[8], u[8];
            for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(src + (8 * h + (size_t)j) * ld + k0);
            for (int j = 0; j < 4; j++) t[2 * j] = _mm256_unpacklo_ps(r[2 * j], r[2 * j + 1]), t[2 * j + 1] = _mm256_unpackhi_ps(r[2 * j], r[2 * j + 1]);
            for (int g = 0; g < 2; g++) {  // u[4g + c]: column c (low half) and c + 4 (high half) of rows 4g..4g+3
                u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44), u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
                u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44), u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
            }
            for (int c = 0; c < 4; c++) {
                float *p = panel + (k0 + (size_t)c) * PNR + 8 * h;
                _mm256_storeu_ps(p, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
                _mm256_storeu_ps(p + 4 * PNR, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
            }
        }
    return k0;
}

/// The AVX2 micro-kernels and unpacker of the shared GEMM driver (gemm_driver.c).
static const edge_gemm_isa k_gemm_avx2 = {
    .dot_name = "avx2-dot-4x3", .packed_name = "avx2-packed-6x16",
    .unpack_f16 = unpack_f16, .unpack_q8 = unpack_q8, .unpack_q4 = unpack_q4, .unpack_q3 = unpack_q3,
    .unpack_q4k = unpack_q4k,
    .dot_tile = tile_f32_any, .dot_mt = MT, .dot_nr = NR,
    .packed_tile = micro_6x16, .packed_mt = PMT, .packed_nr = PNR, .packed_min_t = 12,
    .matvec = matvec_fused, .matvec_name = "avx2-fused-1x1",
    .round_bf16 = round_bf16, .pack_rows = pack_rows16,
};

// ---- int8 x int8 ----------------------------------------------------------------------------

/// 16 int8 at p (n < 16: the first n, zero-padded) widened to int16.
AVX2_INLINE __m256i load16_i8(const int8_t *p, size_t n) {
    if (n >= 16) return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    int8_t tmp[16] = {0};
    memcpy(tmp, p, n);
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)tmp));
}

/// y[t*ldy + r] = ((float)sum_k w[r][k] x[t][k] * ws[r]) * xs[t]; exact int32 sums via vpmaddwd.
AVX2_INLINE void tile_q8q8(const int mt, const int nr, const int8_t *w, const int8_t *x, size_t cols,
                           const float *ws, const float *xs, float *y, size_t ldy) {
    __m256i acc[QMT][QNR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm256_setzero_si256();
    for (size_t k = 0; k < cols; k += 16) {
        size_t n = cols - k;
        __m256i wv[QNR];
        for (int r = 0; r < nr; r++) wv[r] = load16_i8(w + r * cols + k, n);
        for (int t = 0; t < mt; t++) {
            __m256i xv = load16_i8(x + t * cols + k, n);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm256_add_epi32(acc[t][r], _mm256_madd_epi16(wv[r], xv));
        }
    }
    __m256i z = _mm256_setzero_si256();
    __m128i m = mask4((size_t)nr);
    __m128 vws = _mm_maskload_ps(ws, m);
    for (int t = 0; t < mt; t++) {
        __m128i s = hsum4_epi32(acc[t][0], nr > 1 ? acc[t][1] : z, z, z);
        __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(s), vws), _mm_set1_ps(xs[t]));
        _mm_maskstore_ps(y + t * ldy, m, v);
    }
}

#define Q_CASE(a, b) \
    case (a) * 8 + (b): tile_q8q8(a, b, w, x, cols, ws, xs, y, ldy); break;

static AVX2 void tile_q8q8_any(int mt, int nr, const int8_t *w, const int8_t *x, size_t cols, const float *ws,
                               const float *xs, float *y, size_t ldy) {
    switch (mt * 8 + nr) {
        Q_CASE(4, 2) Q_CASE(4, 1) Q_CASE(3, 2) Q_CASE(3, 1) Q_CASE(2, 2) Q_CASE(2, 1) Q_CASE(1, 2) Q_CASE(1, 1)
    }
}
#undef Q_CASE

static AVX2 void matmul_q8_q8(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                              size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += QNR) {
        int nr = r1 - r < QNR ? (int)(r1 - r) : QNR;
        for (size_t t = 0; t < T; t += QMT) {
            int mt = T - t < QMT ? (int)(T - t) : QMT;
            tile_q8q8_any(mt, nr, Wq + r * cols, Xq + t * cols, cols, wscale + r, xscale + t, Y + t * rows + r, rows);
        }
    }
}

static AVX2 void quantize_row_q8(const float *x, int8_t *xq, float *xscale, size_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmax = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vmax);  // NaN ignored
    float amax = hmax(vmax);
    for (; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        if (a > amax) amax = a;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_max_ps(_mm256_min_ps(hi, v), lo);  // operand order sends NaN to -127, as the reference does
        __m256i q = _mm256_cvtps_epi32(v);
        __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(xq + i), _mm_packs_epi16(q16, q16));
    }
    for (; i < n; i++) {
        float v = nearbyintf(x[i] * id);
        if (v > 127.0f) v = 127.0f;
        if (!(v >= -127.0f)) v = -127.0f;
        xq[i] = (int8_t)v;
    }
    *xscale = d;
}

/// Int32 lane j = sum of w[k] * x[k] over bytes 4j...4j+3 of 32 int8 (values in -127...127): |x| as
/// unsigned times w with x's sign, pairs summed to int16 (at most 2 * 127 * 127, no saturation), then quads.
AVX2_INLINE __m256i dot32_i8(__m256i w, __m256i x, __m256i ax, __m256i ones) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x)), ones);
}

/// One block of 32 columns for an mt x nr tile: w rows at w + r * ldw, x rows at x + t * ldx, the
/// tokens' block scales at xs[t * ldxs]; acc[t][r] += (float)lanes * scale, fused.
AVX2_INLINE void block_q8q8b32(const int mt, const int nr, const int8_t *w, size_t ldw, const int8_t *x, size_t ldx,
                               const float *xs, size_t ldxs, __m256 acc[QMT][QNR]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i wv[QNR];
    for (int r = 0; r < nr; r++) wv[r] = _mm256_loadu_si256((const __m256i *)(w + r * ldw));
    for (int t = 0; t < mt; t++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x + t * ldx));
        __m256i ax = _mm256_sign_epi8(xv, xv);
        __m256 vs = _mm256_set1_ps(xs[t * ldxs]);
        for (int r = 0; r < nr; r++)
            acc[t][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_i8(wv[r], xv, ax, ones)), vs, acc[t][r]);
    }
}

/// y[t*ldy + r] = ws[r] * sum_b xs[t*nb + b] * (block b of w[r] . x[t]), in the order of edge_matmul_q8_q8b32_ref.
AVX2_INLINE void tile_q8q8b32(const int mt, const int nr, const int8_t *w, const int8_t *x, size_t cols, size_t nb,
                              const float *ws, const float *xs, float *y, size_t ldy) {
    __m256 acc[QMT][QNR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm256_setzero_ps();
    size_t full = cols / EDGE_Q8_BLOCK;
    for (size_t b = 0; b < full; b++)
        block_q8q8b32(mt, nr, w + b * EDGE_Q8_BLOCK, cols, x + b * EDGE_Q8_BLOCK, cols, xs + b, nb, acc);
    if (full < nb) {  // short last block, zero-padded (zeros add nothing to the exact integer sums)
        size_t k = full * EDGE_Q8_BLOCK, n = cols - k;
        int8_t wt[QNR][EDGE_Q8_BLOCK] = {{0}}, xt[QMT][EDGE_Q8_BLOCK] = {{0}};
        for (int r = 0; r < nr; r++) memcpy(wt[r], w + r * cols + k, n);
        for (int t = 0; t < mt; t++) memcpy(xt[t], x + t * cols + k, n);
        block_q8q8b32(mt, nr, wt[0], EDGE_Q8_BLOCK, xt[0], EDGE_Q8_BLOCK, xs + full, nb, acc);
    }
    __m256 zz = _mm256_setzero_ps();
    __m128i m = mask4((size_t)nr);
    __m128 vws = _mm_maskload_ps(ws, m);
    for (int t = 0; t < mt; t++) {
        __m128 s = hsum4(acc[t][0], nr > 1 ? acc[t][1] : zz, zz, zz);
        _mm_maskstore_ps(y + t * ldy, m, _mm_mul_ps(s, vws));
    }
}

#define Q_CASE(a, b) \
    case (a) * 8 + (b): tile_q8q8b32(a, b, w, x, cols, nb, ws, xs, y, ldy); break;

static AVX2 void tile_q8q8b32_any(int mt, int nr, const int8_t *w, const int8_t *x, size_t cols, size_t nb,
                                  const float *ws, const float *xs, float *y, size_t ldy) {
    switch (mt * 8 + nr) {
        Q_CASE(4, 2) Q_CASE(4, 1) Q_CASE(3, 2) Q_CASE(3, 1) Q_CASE(2, 2) Q_CASE(2, 1) Q_CASE(1, 2) Q_CASE(1, 1)
    }
}
#undef Q_CASE

static AVX2 void matmul_q8_q8b32(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                                 size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    for (size_t r = r0; r < r1; r += QNR) {
        int nr = r1 - r < QNR ? (int)(r1 - r) : QNR;
        for (size_t t = 0; t < T; t += QMT) {
            int mt = T - t < QMT ? (int)(T - t) : QMT;
            tile_q8q8b32_any(mt, nr, Wq + r * cols, Xq + t * cols, cols, nb, wscale + r, xscale + t * nb,
                             Y + t * rows + r, rows);
        }
    }
}

/// quantize_row_q8 on each block of 32 (edge_quantize_row_q8_b32).
static AVX2 void quantize_row_q8_b32(const float *x, int8_t *xq, float *xscale, size_t n) {
    for (size_t k = 0, b = 0; k < n; k += EDGE_Q8_BLOCK, b++)
        quantize_row_q8(x + k, xq + k, xscale + b, n - k < EDGE_Q8_BLOCK ? n - k : EDGE_Q8_BLOCK);
}

// ---- int8 weights x int16 activations (packed, vpmaddwd) -------------------------------------
// Activations are quantized to int16 per (token, block of 256 columns). Weights are packed, per block
// of PRB rows x 256 columns, into panels of 16 rows holding int16 pairs k-major ([k/2][16][2],
// zero-padded), so one vpmaddwd of a broadcast activation pair (x[k], x[k+1]) against a panel vector
// gives 8 rows' int32 sums over 2 k (16 multiply-adds per instruction; an f32 FMA does 8). The 6x16
// micro-kernel keeps 12 int32 accumulators over one 256-column block (exact: 32767*127*256 < 2^31),
// then folds them into Y as fmaf((float)sum, block scale, y), and scales by the weight row scale
// after the last block: the order of edge_matmul_q8_i16_ref, so results are bit-identical.

/// edge_quantize_rows_i16 (bit-identical to the reference).
static AVX2 void quantize_rows_i16(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    const __m256 sign = _mm256_set1_ps(-0.0f), hi = _mm256_set1_ps(32767.0f), lo = _mm256_set1_ps(-32767.0f);
    for (size_t t = 0; t < T; t++) {
        const float *xr = X + t * cols;
        int16_t *qr = Xq + t * ld;
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, n = cols - k0 < EDGE_I16_BLOCK ? cols - k0 : EDGE_I16_BLOCK;
            const float *x = xr + k0;
            int16_t *q = qr + k0;
            __m256 vmax = _mm256_setzero_ps();
            size_t i = 0;
            for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vmax);
            float amax = hmax(vmax);
            for (; i < n; i++) {
                float a = fabsf(x[i]);
                if (a > amax) amax = a;
            }
            float d = amax / 32767.0f;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            const __m256 vid = _mm256_set1_ps(id);
            for (i = 0; i + 8 <= n; i += 8) {
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v = _mm256_max_ps(_mm256_min_ps(hi, v), lo);  // NaN -> -32767, as the reference
                __m256i qi = _mm256_cvtps_epi32(v);
                _mm_storeu_si128((__m128i *)(q + i), _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1)));
            }
            for (; i < n; i++) {
                float v = nearbyintf(x[i] * id);
                if (v > 32767.0f) v = 32767.0f;
                if (!(v >= -32767.0f)) v = -32767.0f;
                q[i] = (int16_t)v;
            }
            xscale[t * nb + b] = d;
        }
        if (ld > cols) qr[cols] = 0;
    }
}

/// edge_minmax: eight running minima and maxima, then their own minimum and maximum.
static AVX2 void minmax(const float *x, size_t n, float *lo, float *hi) {
    __m256 l = _mm256_set1_ps(*lo), h = _mm256_set1_ps(*hi);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        l = _mm256_min_ps(v, l);  // v < l ? v : l
        h = _mm256_max_ps(v, h);  // v > h ? v : h
    }
    float a[8], b[8];
    _mm256_storeu_ps(a, l);
    _mm256_storeu_ps(b, h);
    float lv = a[0], hv = b[0];
    for (int j = 1; j < 8; j++) {
        lv = a[j] < lv ? a[j] : lv;
        hv = b[j] > hv ? b[j] : hv;
    }
    for (; i < n; i++) {
        lv = x[i] < lv ? x[i] : lv;
        hv = x[i] > hv ? x[i] : hv;
    }
    *lo = lv;
    *hi = hv;
}

/// edge_round_to_grid (bit-identical to the reference): eight values per step, the error sums in
/// two vectors of four double lanes (lanes 0-3 and 4-7 of i % 8).
static AVX2 void round_to_grid(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                               uint8_t *stored, double *sums) {
    if (!(scale > 0)) {
        edge_round_to_grid_ref(x, n, scale, zero, qmin, qmax, offset, stored, sums);
        return;
    }
    const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero), lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
    const __m256i voff = _mm256_set1_epi32(offset);
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256d se0 = _mm256_setzero_pd(), se1 = se0, sq0 = se0, sq1 = se0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 c = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(v, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
        c = _mm256_max_ps(_mm256_min_ps(c, hi), lo);  // min: c < hi ? c : hi; max: c > lo ? c : lo
        __m256 y = _mm256_mul_ps(vs, _mm256_sub_ps(c, vz));
        _mm256_storeu_ps(x + i, y);
        __m256i b = _mm256_shuffle_epi8(_mm256_add_epi32(_mm256_cvtps_epi32(c), voff), low_bytes);
        _mm_storel_epi64((__m128i *)(stored + i), _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
        __m256 e = _mm256_sub_ps(v, y);
        __m256d e0 = _mm256_cvtps_pd(_mm256_castps256_ps128(e)), e1 = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        se0 = _mm256_add_pd(se0, _mm256_mul_pd(e0, e0));
        se1 = _mm256_add_pd(se1, _mm256_mul_pd(e1, e1));
        sq0 = _mm256_add_pd(sq0, _mm256_mul_pd(d0, d0));
        sq1 = _mm256_add_pd(sq1, _mm256_mul_pd(d1, d1));
    }
    double se[8], sq[8];
    _mm256_storeu_pd(se, se0);
    _mm256_storeu_pd(se + 4, se1);
    _mm256_storeu_pd(sq, sq0);
    _mm256_storeu_pd(sq + 4, sq1);
    for (; i < n; i++) edge_round_one(x, stored, i, scale, zero, qmin, qmax, offset, se, sq);  // the last values
    sums[0] += edge_reduce8(se);
    sums[1] += edge_reduce8(sq);
}

AVX2_INLINE int32_t load_i32(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#define IK_ROW(i) \
    a = _mm256_set1_epi32(load_i32(x##i + 2 * q)); \
    c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(a, b0)); \
    c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(a, b1));

#define IK_STORE(i) \
    if (i < mt) { \
        float *yr = y + (size_t)i * ldy; \
        __m256 vs = _mm256_set1_ps(xs[(size_t)i * ldxs]), vs0 = grouped ? _mm256_mul_ps(ws0, vs) : vs; \
        __m256 vs1 = grouped ? _mm256_mul_ps(ws1, vs) : vs; \
        __m256 y0 = _mm256_setzero_ps(), y1 = y0; \
        if (!first) { \
            if (full) { y0 = _mm256_loadu_ps(yr); y1 = _mm256_loadu_ps(yr + 8); } \
            else { y0 = _mm256_maskload_ps(yr, m0); y1 = _mm256_maskload_ps(yr + 8, m1); } \
        } \
        y0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c##i##0), vs0, y0); \
        y1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c##i##1), vs1, y1); \
        if (mins) { \
            __m256 sx = _mm256_set1_ps(mins->sx[(size_t)i * mins->ldsx]); \
            y0 = _mm256_fnmadd_ps(ms0, sx, y0); \
            y1 = _mm256_fnmadd_ps(ms1, sx, y1); \
        } \
        if (last && !grouped) { y0 = _mm256_mul_ps(y0, ws0); y1 = _mm256_mul_ps(y1, ws1); } \
        if (full) { _mm256_storeu_ps(yr, y0); _mm256_storeu_ps(yr + 8, y1); } \
        else { _mm256_maskstore_ps(yr, m0, y0); _mm256_maskstore_ps(yr + 8, m1, y1); } \
    }

/// One 256-column block for t < mt (<= 6) tokens and r < nr (<= 16) rows: y[t*ldy + r] =
/// fmaf((float)sum_{q < kp} x[t][2q..2q+1] . p[q][r][0..1], xs[t*ldxs], first ? 0 : y), times ws[r] when last;
/// grouped: fmaf(sum, ws[r] * xs[t*ldxs], first ? 0 : y) and no product after (edge_gemm_q4_i16), then with
/// mins (edge_gemm_q4k_i16) y = fmaf(-m[r], sx[t*ldsx], y) (fnmadd: the same single rounding).
static AVX2 void micro_i16_6x16(int mt, int nr, const int16_t *x, size_t ldx, const int16_t *p, size_t kp,
                                const float *xs, size_t ldxs, const float *ws, float *y, size_t ldy, bool first, bool last,
                                bool grouped, const edge_i16_mins *mins) {
    const int16_t *x0 = x, *x1 = mt > 1 ? x + ldx : x, *x2 = mt > 2 ? x + 2 * ldx : x;
    const int16_t *x3 = mt > 3 ? x + 3 * ldx : x, *x4 = mt > 4 ? x + 4 * ldx : x, *x5 = mt > 5 ? x + 5 * ldx : x;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t q = 0; q < kp; q++) {
        __m256i b0 = _mm256_load_si256((const __m256i *)(p + q * 32)), b1 = _mm256_load_si256((const __m256i *)(p + q * 32 + 16)), a;
        IK_ROW(0) IK_ROW(1) IK_ROW(2) IK_ROW(3) IK_ROW(4) IK_ROW(5)
    }
    // Full panels use plain loads and stores (vmaskmovps stores are slow on AMD).
    const bool full = nr == PNR;
    __m256i m0 = mask8(nr < 8 ? (size_t)nr : 8), m1 = mask8(nr > 8 ? (size_t)(nr - 8) : 0);
    __m256 ws0 = _mm256_setzero_ps(), ws1 = ws0;
    if (last || grouped) {
        if (full) { ws0 = _mm256_loadu_ps(ws); ws1 = _mm256_loadu_ps(ws + 8); }
        else { ws0 = _mm256_maskload_ps(ws, m0); ws1 = _mm256_maskload_ps(ws + 8, m1); }
    }
    __m256 ms0 = _mm256_setzero_ps(), ms1 = ms0;
    if (mins) {
        if (full) { ms0 = _mm256_loadu_ps(mins->m); ms1 = _mm256_loadu_ps(mins->m + 8); }
        else { ms0 = _mm256_maskload_ps(mins->m, m0); ms1 = _mm256_maskload_ps(mins->m + 8, m1); }
    }
    IK_STORE(0) IK_STORE(1) IK_STORE(2) IK_STORE(3) IK_STORE(4) IK_STORE(5)
}

/// edge_i16_groups_fn for the 6 x 16 tile: per group, micro_i16_6x16's loop and grouped store (IK_STORE) for a
/// full tile, whose constants below drop the masks and the token-count branches; one call for all of a
/// block's whole groups (with groups of 32 columns the per-call work was about a third of micro_i16_6x16's time).
static AVX2 void micro_i16_6x16_groups(const int16_t *x, size_t ldx, const int16_t *p, size_t gs, size_t ng,
                                       const float *xs, size_t ldxs, const float *ws, size_t ws_stride, float *y,
                                       size_t ldy, bool first_block, const float *mins_m, const float *mins_sx, size_t ldsx) {
    const size_t kp = gs / 2;
    const int mt = PMT;
    const bool full = true, grouped = true, last = false;
    const __m256i m0 = _mm256_setzero_si256(), m1 = m0;  // unused: full tiles
    for (size_t g = 0; g < ng; g++) {
        const int16_t *x0 = x + g * gs, *x1 = x0 + ldx, *x2 = x0 + 2 * ldx, *x3 = x0 + 3 * ldx, *x4 = x0 + 4 * ldx,
                      *x5 = x0 + 5 * ldx;
        const int16_t *pg = p + g * kp * 2 * PNR;
        __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (size_t q = 0; q < kp; q++) {
            __m256i b0 = _mm256_load_si256((const __m256i *)(pg + q * 32)), b1 = _mm256_load_si256((const __m256i *)(pg + q * 32 + 16)), a;
            IK_ROW(0) IK_ROW(1) IK_ROW(2) IK_ROW(3) IK_ROW(4) IK_ROW(5)
        }
        const edge_i16_mins group_mins = {mins_m ? mins_m + g * ws_stride : NULL, mins_m ? mins_sx + g : NULL, ldsx};
        const edge_i16_mins *mins = mins_m ? &group_mins : NULL;
        const float *wg = ws + g * ws_stride;
        const __m256 ws0 = _mm256_loadu_ps(wg), ws1 = _mm256_loadu_ps(wg + 8);
        const __m256 ms0 = mins ? _mm256_loadu_ps(mins->m) : _mm256_setzero_ps(), ms1 = mins ? _mm256_loadu_ps(mins->m + 8) : ms0;
        const bool first = first_block && g == 0;
        IK_STORE(0) IK_STORE(1) IK_STORE(2) IK_STORE(3) IK_STORE(4) IK_STORE(5)
    }
}
#undef IK_ROW
#undef IK_STORE

/// Packs rows [r, r + nr) (nr <= width: 16 for AVX2's micro-kernel, 32 for AVX-512's), columns
/// [k0, k0 + kc) of Wq into one panel: kp = ceil(kc/2) pairs of `width` rows x (w[k], w[k+1]) int16,
/// zeros past nr rows and past kc.
AVX2 void edge_pack_panel_i16(const int8_t *Wq, size_t cols, size_t r, size_t nr, size_t k0, size_t kc, size_t width,
                              int16_t *panel) {
    size_t kp = (kc + 1) / 2, stride = 2 * width;
    if (nr == width && kc % 16 == 0) {
        // 16 columns (8 pairs) of 4 rows at a time: widen to int16, then a 4x4 transpose of int32 pairs.
        for (size_t k = 0; k < kc; k += 16) {
            for (size_t g = 0; g < width / 4; g++) {
                const int8_t *w = Wq + (r + 4 * g) * cols + k0 + k;
                __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
                __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + cols)));
                __m256i a2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 2 * cols)));
                __m256i a3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 3 * cols)));
                // lanes: each ai holds pairs 0..3 (low 128) and 4..7 (high 128) of row i.
                __m256i t0 = _mm256_unpacklo_epi32(a0, a1), t1 = _mm256_unpackhi_epi32(a0, a1);
                __m256i t2 = _mm256_unpacklo_epi32(a2, a3), t3 = _mm256_unpackhi_epi32(a2, a3);
                __m256i p0 = _mm256_unpacklo_epi64(t0, t2), p1 = _mm256_unpackhi_epi64(t0, t2);
                __m256i p2 = _mm256_unpacklo_epi64(t1, t3), p3 = _mm256_unpackhi_epi64(t1, t3);
                // p0 = pair 0 (low) / pair 4 (high) of rows 4g..4g+3, p1 = pairs 1/5, p2 = 2/6, p3 = 3/7.
                int16_t *o = panel + (k / 2) * stride + 8 * g;
                _mm_store_si128((__m128i *)(o + 0 * stride), _mm256_castsi256_si128(p0));
                _mm_store_si128((__m128i *)(o + 1 * stride), _mm256_castsi256_si128(p1));
                _mm_store_si128((__m128i *)(o + 2 * stride), _mm256_castsi256_si128(p2));
                _mm_store_si128((__m128i *)(o + 3 * stride), _mm256_castsi256_si128(p3));
                _mm_store_si128((__m128i *)(o + 4 * stride), _mm256_extracti128_si256(p0, 1));
                _mm_store_si128((__m128i *)(o + 5 * stride), _mm256_extracti128_si256(p1, 1));
                _mm_store_si128((__m128i *)(o + 6 * stride), _mm256_extracti128_si256(p2, 1));
                _mm_store_si128((__m128i *)(o + 7 * stride), _mm256_extracti128_si256(p3, 1));
            }
        }
        return;
    }
    for (size_t i = 0; i < width; i++) {
        const int8_t *w = i < nr ? Wq + (r + i) * cols + k0 : NULL;
        for (size_t q = 0; q < kp; q++) {
            panel[q * stride + 2 * i] = w ? w[2 * q] : 0;
            panel[q * stride + 2 * i + 1] = w && 2 * q + 1 < kc ? w[2 * q + 1] : 0;
        }
    }
}

/// The few-token form of matmul_q8_i16 (decoding): no packing; each weight row is streamed once, in
/// order (one row at a time keeps the reads sequential, which this memory system streams at several
/// times the rate of interleaved rows), widened 16 bytes at a time (vpmovsxbw) and multiplied against
/// each token's int16 activations with vpmaddwd into two int32 accumulators per token. The block sums
/// are exact, so the result is bit-identical to the reference whatever the lane order. T <= I16_ROW_MT.
enum { I16_ROW_MT = 4 };
AVX2_INLINE void q8_i16_rows(const size_t T, const int8_t *Wq, const float *wscale, const int16_t *Xq,
                             const float *xscale, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        const int8_t *w = Wq + r * cols;
        edge_prefetch_ahead((const uint8_t *)w, cols, (const uint8_t *)(Wq + r1 * cols));
        float acc[I16_ROW_MT] = {0};
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
            __m256i s0[I16_ROW_MT], s1[I16_ROW_MT];
            for (size_t t = 0; t < T; t++) s0[t] = s1[t] = _mm256_setzero_si256();
            size_t k = k0;
            for (; k + 32 <= k1; k += 32) {
                __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + k)));
                __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + k + 16)));
                for (size_t t = 0; t < T; t++) {
                    const int16_t *x = Xq + t * ld + k;
                    s0[t] = _mm256_add_epi32(s0[t], _mm256_madd_epi16(w0, _mm256_loadu_si256((const __m256i *)x)));
                    s1[t] = _mm256_add_epi32(s1[t], _mm256_madd_epi16(w1, _mm256_loadu_si256((const __m256i *)(x + 16))));
                }
            }
            for (size_t t = 0; t < T; t++) {
                __m256i v = _mm256_add_epi32(s0[t], s1[t]);
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
                int32_t sum = _mm_cvtsi128_si32(h);
                const int16_t *x = Xq + t * ld;
                for (size_t j = k; j < k1; j++) sum += (int32_t)w[j] * (int32_t)x[j];
                acc[t] = fmaf((float)sum, xscale[t * nb + b], acc[t]);
            }
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = acc[t] * wscale[r];
    }
}

/// q8_i16_rows with the token count a constant (the accumulators then stay in registers).
static AVX2 void matmul_q8_i16_rows(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale,
                                    float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    switch (T) {
    case 1: q8_i16_rows(1, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    case 2: q8_i16_rows(2, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    case 3: q8_i16_rows(3, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    default: q8_i16_rows(4, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    }
}

#define Q4K_DM_INLINE AVX2_INLINE
#include "q4k_dm.h"
#undef Q4K_DM_INLINE

/// edge_matmul_q4_i16 and edge_matmul_q4k_i16 (k4) for up to I16_ROW_MT tokens: each row's nibbles
/// streamed once, 64 at a time (32 bytes). Each 16-bit lane m of those bytes holds the nibbles of
/// columns 4m..4m+3; three shifts and masks give them as four int16 planes (plane a: column 4m + a in
/// lane m) without widening or shuffling, against activations reordered the same way per 64 columns
/// (`xp`). Four vpmaddwd then put columns 8l..8l+7 of each 64 in int32 lane l, the reference's s_l
/// (q4k: su_l), as sums of u * x; the row's last columns (fewer than 64) are added one by one. q4
/// subtracts the zero points once per unit of max(group, 64) columns as z times the activations' lane
/// sums over the unit (`xl`, every column below cols), so the lanes are the exact sums of (u - z) * x.
/// Per unit the lanes are folded as fmaf((float)s_l, d_l, a_l) with d_l the scale of the group lane l
/// belongs to (two per unit for groups of 32; q4k: d_g, read once per row into `gd`) times the token's.
/// q4k then takes off, per token, the dot product of the row's m_g (`gm`) with the call's
/// (float)sx_g * xs (`sxs`, Gp = G rounded up to 8 per token, zeros past G) in eight lanes. The final
/// sum is the reference's order.
AVX2_INLINE void q4_i16_rows(const size_t T, const bool two, const bool k4, const edge_q4x *w, float *gd, float *gm,
                             const float *sxs, size_t Gp, const int16_t *Xq, const int16_t *xp, const int32_t *xl,
                             const float *xscale, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    const uint8_t *Wq = w->Wq, *zero = w->zero;
    const uint16_t *scale_f16 = w->scale_f16;
    size_t gs = w->gs, ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, full = cols & ~(size_t)63;
    size_t unit = two ? 64 : gs, units = (cols + unit - 1) / unit;  // two: groups of 32, two per unit
    size_t groups = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2, srb = (2 * w->sub_bits * groups + 7) / 8;
    const __m256i m4 = _mm256_set1_epi16(0x000F);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *q = Wq + r * row_bytes;
        edge_prefetch_ahead(q, row_bytes, Wq + r1 * row_bytes);
        if (k4)
            q4k_row_dm(w->sub + r * srb, (rows - r) * srb, w->sub_bits, _cvtsh_ss(w->super_f16[2 * r]), _cvtsh_ss(w->super_f16[2 * r + 1]),
                       groups, gd, gm);
        __m256 acc[I16_ROW_MT];
        for (size_t t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (size_t u = 0; u < units; u++) {
            size_t c0 = u * unit, c1 = c0 + unit < cols ? c0 + unit : cols, s1 = c1 < full ? c1 : full;
            __m256i sl[I16_ROW_MT];
            for (size_t t = 0; t < T; t++) sl[t] = _mm256_setzero_si256();
            for (size_t k = c0; k < s1; k += 64) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(q + k / 2));
                __m256i p0 = _mm256_and_si256(v, m4), p1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                __m256i p2 = _mm256_and_si256(_mm256_srli_epi16(v, 8), m4), p3 = _mm256_srli_epi16(v, 12);
                for (size_t t = 0; t < T; t++) {
                    const int16_t *x = xp + t * full + k;
                    __m256i e = _mm256_add_epi32(_mm256_madd_epi16(p0, _mm256_loadu_si256((const __m256i *)x)),
                                                 _mm256_madd_epi16(p1, _mm256_loadu_si256((const __m256i *)(x + 16))));
                    __m256i o = _mm256_add_epi32(_mm256_madd_epi16(p2, _mm256_loadu_si256((const __m256i *)(x + 32))),
                                                 _mm256_madd_epi16(p3, _mm256_loadu_si256((const __m256i *)(x + 48))));
                    sl[t] = _mm256_add_epi32(sl[t], _mm256_add_epi32(e, o));
                }
            }
            if (s1 < c1) {  // the row's last columns (fewer than 64): u * x added to their lanes one by one
                for (size_t t = 0; t < T; t++) {
                    int32_t lanes[8];
                    _mm256_storeu_si256((__m256i *)lanes, sl[t]);
                    const int16_t *x = Xq + t * ld;
                    for (size_t j = s1; j < c1; j++) lanes[(j % 64) / 8] += (int32_t)edge_q4_nibble(q, j) * (int32_t)x[j];
                    sl[t] = _mm256_loadu_si256((const __m256i *)lanes);
                }
            }
            // Scales of the unit's lanes: one group, or two groups of 32 (lanes 0-3, 4-7).
            size_t g0 = two ? 2 * u : u, gi = r * groups + g0;
            bool second = two && g0 + 1 < groups;
            float sc0, sc1;
            if (k4) {
                sc0 = gd[g0], sc1 = second ? gd[g0 + 1] : 0.0f;
            } else {
                int z0 = zero ? (int)zero[gi] : 8, z1 = second ? (zero ? (int)zero[gi + 1] : 8) : 0;
                __m256i zv = two ? _mm256_set_m128i(_mm_set1_epi32(z1), _mm_set1_epi32(z0)) : _mm256_set1_epi32(z0);
                sc0 = _cvtsh_ss(scale_f16[gi]), sc1 = second ? _cvtsh_ss(scale_f16[gi + 1]) : 0.0f;  // exact, as edge_f16_to_f32
                for (size_t t = 0; t < T; t++)
                    sl[t] = _mm256_sub_epi32(sl[t], _mm256_mullo_epi32(zv, _mm256_loadu_si256((const __m256i *)(xl + (t * units + u) * 8))));
            }
            for (size_t t = 0; t < T; t++) {
                float xs = xscale[t * nb + c0 / EDGE_I16_BLOCK];
                __m256 d = two ? _mm256_set_m128(_mm_set1_ps(sc1 * xs), _mm_set1_ps(sc0 * xs)) : _mm256_set1_ps(sc0 * xs);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sl[t]), d, acc[t]);
            }
        }
        if (k4) {  // the min terms: e_(g % 8) = fmaf(m_g, sxs_g, e_(g % 8)), then c_l = a_l - e_l
            for (size_t t = 0; t < T; t++) {
                __m256 e = _mm256_setzero_ps();
                for (size_t g = 0; g < groups; g += 8)
                    e = _mm256_fmadd_ps(_mm256_loadu_ps(gm + g), _mm256_loadu_ps(sxs + t * Gp + g), e);
                acc[t] = _mm256_sub_ps(acc[t], e);
            }
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = hsum(acc[t]);
    }
}

/// Builds the reordered activations (see q4_i16_rows) for up to I16_ROW_MT tokens, and q4's lane sums
/// or q4k's (float)sx_g * xs, and runs q4_i16_rows with the token count and the q4 / q4k form constants
/// (the accumulators then stay in registers); q4k's per-row d_g / m_g arrays on the stack when small.
static AVX2 void q4x_i16_rows(const edge_q4x *w, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                              size_t cols, size_t r0, size_t r1) {
    size_t gs = w->gs, ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, full = cols & ~(size_t)63;
    size_t unit = gs < 64 ? 64 : gs, units = (cols + unit - 1) / unit, groups = (cols + gs - 1) / gs;
    size_t Gp = (groups + 7) & ~(size_t)7;
    bool two = gs == 32, k4 = w->sub != NULL;
    int16_t stack[I16_ROW_MT * 2048];
    int32_t lstack[I16_ROW_MT * 8 * 40];
    float dstack[2 * 256], sstack[I16_ROW_MT * 256];
    int16_t *xp = T * full <= sizeof stack / sizeof *stack ? stack : (int16_t *)malloc(sizeof(int16_t) * (T * full + 1));
    int32_t *xl = k4 ? NULL
                : T * units * 8 <= sizeof lstack / sizeof *lstack ? lstack : (int32_t *)malloc(sizeof(int32_t) * T * units * 8);
    float *gd = !k4 ? NULL : 2 * Gp <= sizeof dstack / sizeof *dstack ? dstack : (float *)malloc(sizeof(float) * 2 * Gp);
    float *sxs = !k4 ? NULL : T * Gp <= sizeof sstack / sizeof *sstack ? sstack : (float *)malloc(sizeof(float) * T * Gp);
    if (!xp || (!k4 && !xl) || (k4 && (!gd || !sxs))) abort();
    float *gm = k4 ? gd + Gp : NULL;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t k = 0; k < full; k += 64)
            for (size_t a = 0; a < 4; a++)
                for (size_t m = 0; m < 16; m++) xp[t * full + k + 16 * a + m] = x[k + 4 * m + a];
        if (k4) {
            edge_q4k_group_sums(x, xscale + t * nb, cols, gs, Gp, sxs + t * Gp);
        } else {
            for (size_t u = 0; u < units; u++) {
                int32_t *l = xl + (t * units + u) * 8;
                for (size_t i = 0; i < 8; i++) l[i] = 0;
                size_t c1 = (u + 1) * unit < cols ? (u + 1) * unit : cols;
                for (size_t k = u * unit; k < c1; k++) l[(k % 64) / 8] += x[k];
            }
        }
    }
#define Q4_ROWS(t, two, k4) q4_i16_rows(t, two, k4, w, gd, gm, sxs, Gp, Xq, xp, xl, xscale, Y, rows, cols, r0, r1)
#define Q4_FORMS(t) \
    if (k4) { if (two) Q4_ROWS(t, true, true); else Q4_ROWS(t, false, true); } \
    else { if (two) Q4_ROWS(t, true, false); else Q4_ROWS(t, false, false); }
    switch (T) {
    case 1: Q4_FORMS(1); break;
    case 2: Q4_FORMS(2); break;
    case 3: Q4_FORMS(3); break;
    default: Q4_FORMS(4); break;
    }
#undef Q4_FORMS
#undef Q4_ROWS
    if (xp != stack) free(xp);
    if (xl && xl != lstack) free(xl);
    if (gd && gd != dstack) free(gd);
    if (sxs && sxs != sstack) free(sxs);
}

/// Tokens in chunks of I16_ROW_MT, the weights read once per chunk.
static AVX2 void q4x_i16_chunks(const edge_q4x *w, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                                size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t t = 0; t < T; t += I16_ROW_MT)
        q4x_i16_rows(w, Xq + t * ld, xscale + t * nb, Y + t * rows, T - t < I16_ROW_MT ? T - t : I16_ROW_MT, rows, cols, r0, r1);
}

// ---- q4 and q4k x int16, one token: byte dot products ------------------------------------------
// edge_matmul_q4_i16 / edge_matmul_q4k_i16 for one token, groups of 32 or 64 and a multiple of 64
// columns (two tokens and more, and other shapes: q4x_i16_chunks above). The AVX-512 VNNI kernel's
// scheme (avx512.c) in 64-column halves: each int16 activation split once per call into x = 256 h + l,
// stored per 128 columns as four 64-byte planes [l even, h even, l odd, h odd] (byte i of a plane:
// column 2i or 2i + 1 of the block, as byte i of a row's nibbles holds column 2i low and 2i + 1 high);
// per 64 columns one 32-byte load gives the nibbles u as two byte vectors, vpmaddubsw makes int16
// pair sums of u h (u unsigned, h signed: at most 2 x 15 x 128 in magnitude) and of l u (l unsigned,
// u signed: at most 2 x 255 x 15), the even and odd columns' pairs added (still within int16), and
// vpmaddwd by 256 and by 1 gives in int32 lane k (columns 8k..8k+7 of the 64) the exact sum of u x,
// the reference's s_k. q4 takes off z times the lane's activation sum, and the unit is folded into
// the eight float lanes as q4_i16_rows does (the same scales, the same order). Bit-identical.

/// The planes of x[0 ..< cols] (cols a multiple of 64; see above), and with xl the sums of x over each
/// int32 lane's eight columns, 16 per 128 columns.
static AVX2 void q4b_planes(const int16_t *x, size_t cols, uint8_t *pl, int32_t *xl) {
    // Per 128-bit lane (columns c..c+7): [l0 l2 l4 l6 | h0 h2 h4 h6 | l1 l3 l5 l7 | h1 h3 h5 h7].
    const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                          0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), one = _mm256_set1_epi16(1);
    for (size_t c = 0; c < cols; c += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(x + c)), b = _mm256_loadu_si256((const __m256i *)(x + c + 16));
        // As 64-bit elements: [l even, h even, l odd, h odd] of 16 columns each.
        __m256i A = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(a, shuf), perm);
        __m256i B = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(b, shuf), perm);
        __m256i lo = _mm256_unpacklo_epi64(A, B), hi = _mm256_unpackhi_epi64(A, B);  // [le | lo], [he | ho]
        uint8_t *d = pl + (c / 128) * 256 + (c % 128) / 2;
        _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(lo));
        _mm_storeu_si128((__m128i *)(d + 64), _mm256_castsi256_si128(hi));
        _mm_storeu_si128((__m128i *)(d + 128), _mm256_extracti128_si256(lo, 1));
        _mm_storeu_si128((__m128i *)(d + 192), _mm256_extracti128_si256(hi, 1));
        if (xl) {  // sums over eight columns: pairs, then fours (lane 0: 0-3, 4-7, 16-19, 20-23), then eights
            __m256i s = _mm256_hadd_epi32(_mm256_madd_epi16(a, one), _mm256_madd_epi16(b, one));
            __m256i t = _mm256_hadd_epi32(s, s);  // lane 0: [0-7, 16-23, ...], lane 1: [8-15, 24-31, ...]
            __m128i r = _mm_unpacklo_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            _mm_storeu_si128((__m128i *)(xl + (c / 128) * 16 + (c % 128) / 8), r);
        }
    }
}

/// Unit u (64 columns) of rows r ..< r + NR into their float lanes a[i] (see above); the activation
/// planes loaded once for the NR rows. two: groups of 32; q4k: dm holds each row's d_g then m_g.
AVX2_INLINE void q4b_unit(const size_t NR, const bool k4, const bool two, const edge_q4x *w, const uint8_t *q0,
                          size_t row_bytes, size_t groups, size_t u, const uint8_t *pl, const int32_t *xl, const float *dm,
                          size_t Gp, const float *xscale, size_t r, __m256 *a) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), k256 = _mm256_set1_epi16(256), one = _mm256_set1_epi16(1);
    const uint8_t *x = pl + 256 * (u / 2) + 32 * (u % 2);
    __m256i le = _mm256_loadu_si256((const __m256i *)x), he = _mm256_loadu_si256((const __m256i *)(x + 64));
    __m256i lo_ = _mm256_loadu_si256((const __m256i *)(x + 128)), ho = _mm256_loadu_si256((const __m256i *)(x + 192));
    size_t g0 = two ? 2 * u : u;
    float xs = xscale[64 * u / EDGE_I16_BLOCK];
    for (size_t i = 0; i < NR; i++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(q0 + i * row_bytes + 32 * u));
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        __m256i H = _mm256_add_epi16(_mm256_maddubs_epi16(lo, he), _mm256_maddubs_epi16(hi, ho));
        __m256i L = _mm256_add_epi16(_mm256_maddubs_epi16(le, lo), _mm256_maddubs_epi16(lo_, hi));
        __m256i S = _mm256_add_epi32(_mm256_madd_epi16(H, k256), _mm256_madd_epi16(L, one));
        float sc0, sc1;
        if (k4) {
            sc0 = dm[2 * i * Gp + g0], sc1 = two ? dm[2 * i * Gp + g0 + 1] : 0.0f;
        } else {
            size_t gi = (r + i) * groups + g0;
            const uint8_t *zero = w->zero;
            int z0 = zero ? (int)zero[gi] : 8, z1 = two ? (zero ? (int)zero[gi + 1] : 8) : 0;
            __m256i zv = two ? _mm256_set_m128i(_mm_set1_epi32(z1), _mm_set1_epi32(z0)) : _mm256_set1_epi32(z0);
            S = _mm256_sub_epi32(S, _mm256_mullo_epi32(zv, _mm256_loadu_si256((const __m256i *)(xl + 8 * u))));
            sc0 = _cvtsh_ss(w->scale_f16[gi]), sc1 = two ? _cvtsh_ss(w->scale_f16[gi + 1]) : 0.0f;
        }
        __m256 d = two ? _mm256_set_m128(_mm_set1_ps(sc1 * xs), _mm_set1_ps(sc0 * xs)) : _mm256_set1_ps(sc0 * xs);
        a[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S), d, a[i]);
    }
}

/// Every unit of rows r ..< r + NR into their float lanes a[i] (q4b_driver.h's q4b_pass calls it).
AVX2_INLINE void q4b_span(const size_t NR, const bool k4, const bool two, const edge_q4x *w, const uint8_t *q0,
                          size_t row_bytes, size_t groups, size_t cols, const uint8_t *pl, const int32_t *xl, const float *dm,
                          size_t Gp, const float *xscale, size_t r, __m256 *a) {
    for (size_t u = 0; u < cols / 64; u++) q4b_unit(NR, k4, two, w, q0, row_bytes, groups, u, pl, xl, dm, Gp, xscale, r, a);
}

#define Q4B_ATTR AVX2
#define Q4B_INLINE AVX2_INLINE
#include "q4b_driver.h"
#undef Q4B_ATTR
#undef Q4B_INLINE

static AVX2 void matmul_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                               const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                               size_t r0, size_t r1) {
    if (!edge_q4_i16_supported(gs)) return;
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    if (q4b_takes(T, gs, cols)) q4b_matmul(&w, Xq, xscale, Y, rows, cols, r0, r1);
    else q4x_i16_chunks(&w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static AVX2 void matmul_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs, size_t sub_bits,
                                const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(gs, sub_bits)) return;
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    if (q4b_takes(T, gs, cols)) q4b_matmul(&w, Xq, xscale, Y, rows, cols, r0, r1);
    else q4x_i16_chunks(&w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

// ---- q4 x int8 blocks of 32 (decoding) --------------------------------------------------------

/// Eight binary16 values from src[i ..< i + 8] (total values in the array; those past it read as 0).
AVX2_INLINE __m128i load8_u16(const uint16_t *src, size_t i, size_t total) {
    if (i + 8 <= total) return _mm_loadu_si128((const __m128i *)(src + i));
    uint16_t tmp[8] = {0};
    for (size_t k = 0; i + k < total && k < 8; k++) tmp[k] = src[i + k];
    return _mm_loadu_si128((const __m128i *)tmp);
}

/// Eight bytes from src[i ..< i + 8] as the low half of a vector (past total: 0).
AVX2_INLINE __m128i load8_u8(const uint8_t *src, size_t i, size_t total) {
    if (i + 8 <= total) return _mm_loadl_epi64((const __m128i *)(src + i));
    uint8_t tmp[8] = {0};
    for (size_t k = 0; i + k < total && k < 8; k++) tmp[k] = src[i + k];
    return _mm_loadl_epi64((const __m128i *)tmp);
}

/// edge_matmul_q4_q8b32 and edge_matmul_q4k_q8b32 (k4) for T <= 4 tokens (a constant at each use)
/// with the activations of edge_q4q8_prepare: per row and 128-column block, the 64 weight bytes in two
/// halves of 32 (lanes 0-7 and 8-15); the nibbles masked into an even (low) and an odd (high) plane of
/// unsigned bytes, plus 16 - z per lane when asymmetric (q4k: the codes as they are); vpmaddubsw
/// against the activation planes (no saturation: 31 * 127 * 2 per int16), the two planes' int16 sums
/// added and widened by vpmaddwd with ones, so int32 lane l holds the exact sum over its eight columns;
/// q4: the prepared init takes the zero points' share off. Per-lane scales come from the group scales
/// (q4k: d_g, and m_g, unpacked once per row into a->gd / a->gm) by one permute per half; q4k then takes
/// the min term off each lane with one fnmadd against the prepared (float)sx * xs.
AVX2_INLINE void q4_q8_rows(const size_t T, const bool asym, const bool k4, const edge_q4x *w, const edge_q4q8_act *a,
                            float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    const uint8_t *Wq = w->Wq, *zero = w->zero;
    const uint16_t *scale_f16 = w->scale_f16;
    const int8_t *planes = a->planes;
    const int32_t *init = a->init;
    const float *xs = a->xs, *sxs = a->sxs;
    size_t gs = w->gs, nblk = (cols + 127) / 128, G = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2, total = rows * G;
    size_t srb = (2 * w->sub_bits * G + 7) / 8;
    int base[2];
    __m256i idx[2];
    for (int h = 0; h < 2; h++) {
        int32_t v[8];
        base[h] = edge_q4q8_lane_group(gs, 8 * h);
        for (int l = 0; l < 8; l++) v[l] = edge_q4q8_lane_group(gs, 8 * h + l) - base[h];
        idx[h] = _mm256_loadu_si256((const __m256i *)v);
    }
    // q4k, groups of 32 or more (at most 4 per block, 2b bits each: within 64 bits of the row's
    // sub-code stream from the block's first group, shifted down 0 or 4): the block's d_g, m_g straight
    // from those bits, int32 lane k < 4 the low 4b bits shifted down k*b, lane 4 + k the high ones,
    // masked to (sc_0, mn_0, ..., sc_3, mn_3) and times (D, M, D, M, ...), then permuted to each half's
    // lanes. Smaller groups: the row's d_g, m_g unpacked once per row into a->gd / a->gm.
    const bool direct = k4 && gs >= 32;
    const size_t sb = w->sub_bits;
    __m256i idx_d[2], idx_m[2];
    for (int h = 0; h < 2; h++) {
        int32_t vd[8], vm[8];
        for (int l = 0; l < 8; l++) vd[l] = 2 * edge_q4q8_lane_group(gs, 8 * h + l), vm[l] = vd[l] + 1;
        idx_d[h] = _mm256_loadu_si256((const __m256i *)vd);
        idx_m[h] = _mm256_loadu_si256((const __m256i *)vm);
    }
    const __m256i shifts = _mm256_setr_epi32(0, (int)sb, (int)(2 * sb), (int)(3 * sb), 0, (int)sb, (int)(2 * sb), (int)(3 * sb));
    const __m256i bmask = _mm256_set1_epi32(sb == 8 ? 0xFF : 0x3F);
    const __m256i m4 = _mm256_set1_epi8(0x0F), c16 = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
    const __m256i rep = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,
                                         0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *q = Wq + r * row_bytes;
        edge_prefetch_ahead(q, row_bytes, Wq + r1 * row_bytes);
        const uint8_t *srow = k4 ? w->sub + r * srb : NULL;
        size_t savail = (rows - r) * srb;  // sub-code bytes readable from srow
        __m256 dm = _mm256_setzero_ps();
        if (k4) {
            float D = _cvtsh_ss(w->super_f16[2 * r]), M = _cvtsh_ss(w->super_f16[2 * r + 1]);  // exact
            dm = _mm256_setr_ps(D, M, D, M, D, M, D, M);
            if (!direct) q4k_row_dm(srow, savail, sb, D, M, G, a->gd, a->gm);
        }
        __m256 acc[I16_ROW_MT][2];
        for (size_t t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (size_t j = 0; j < nblk; j++) {
            size_t c0 = 128 * j, nbytes = row_bytes - c0 / 2;
            const uint8_t *wp = q + c0 / 2;
            uint8_t tail[64];
            if (nbytes < 64) {  // the row's last block: its bytes, then zeros
                memset(tail, 0, sizeof tail);
                memcpy(tail, wp, nbytes);
                wp = tail;
            }
            bool partial = c0 + 128 > cols;
            __m256 bdm = _mm256_setzero_ps();  // direct: (d, m) of the block's groups
            if (direct) {
                size_t bit = 2 * sb * (c0 / gs), off = bit / 8;  // off < savail: the block's first group is in the row
                uint64_t bits = 0;
                if (savail - off >= 8) memcpy(&bits, srow + off, 8);
                else memcpy(&bits, srow + off, savail - off);  // the tensor's last bytes
                bits >>= bit & 7;
                __m256i f = _mm256_set_m128i(_mm_set1_epi32((int)(uint32_t)(bits >> (4 * sb))), _mm_set1_epi32((int)(uint32_t)bits));
                f = _mm256_and_si256(_mm256_srlv_epi32(f, shifts), bmask);
                bdm = _mm256_mul_ps(_mm256_cvtepi32_ps(f), dm);
            }
            for (int h = 0; h < 2; h++) {
                // Lanes without columns (the last block): s is 0 (zero planes and init) and d is made
                // exactly 0, so fmaf(0, 0, a) leaves a (never -0) as it is, whatever scale they were given;
                // q4k's min term there is fnmadd(m, 0, a) with m finite (the scratch is), which leaves a too.
                __m256 keep = _mm256_setzero_ps();
                if (partial) {
                    size_t lanes = (cols - c0 + 7) / 8, live = lanes > 8 * (size_t)h ? lanes - 8 * (size_t)h : 0;
                    keep = _mm256_castsi256_ps(mask8(live < 8 ? live : 8));
                }
                __m256i v = _mm256_loadu_si256((const __m256i *)(wp + 32 * h));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                size_t gr = c0 / gs + (size_t)base[h], gi = r * G + gr;
                __m256 ws, wm = _mm256_setzero_ps();
                if (direct) {
                    ws = _mm256_permutevar8x32_ps(bdm, idx_d[h]);
                    wm = _mm256_permutevar8x32_ps(bdm, idx_m[h]);
                } else if (k4) {
                    ws = _mm256_permutevar8x32_ps(_mm256_loadu_ps(a->gd + gr), idx[h]);
                    wm = _mm256_permutevar8x32_ps(_mm256_loadu_ps(a->gm + gr), idx[h]);
                } else {
                    ws = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(load8_u16(scale_f16, gi, total)), idx[h]);
                }
                if (asym) {
                    __m256i z = _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(load8_u8(zero, gi, total)), idx[h]);
                    __m256i zb = _mm256_sub_epi8(c16, _mm256_shuffle_epi8(z, rep));
                    lo = _mm256_add_epi8(lo, zb);
                    hi = _mm256_add_epi8(hi, zb);
                }
                for (size_t t = 0; t < T; t++) {
                    size_t o = t * nblk + j;
                    const int8_t *p = planes + o * 128 + 32 * h;
                    __m256i m = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)p)),
                                                 _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(p + 64))));
                    __m256i sum = _mm256_madd_epi16(m, ones);
                    if (!k4) sum = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(init + o * 16 + 8 * h)), sum);
                    __m256 d = _mm256_mul_ps(ws, _mm256_loadu_ps(xs + o * 16 + 8 * h));
                    if (partial) d = _mm256_and_ps(d, keep);
                    acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[t][h]);
                    if (k4) acc[t][h] = _mm256_fnmadd_ps(wm, _mm256_loadu_ps(sxs + o * 16 + 8 * h), acc[t][h]);
                }
            }
        }
        for (size_t t = 0; t < T; t++) {  // the reference's order: (l, l+8), then (l, l+4), (l, l+2), (0, 1)
            __m256 b = _mm256_add_ps(acc[t][0], acc[t][1]);
            __m128 c = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
            __m128 e = _mm_add_ps(c, _mm_movehl_ps(c, c));
            Y[t * rows + r] = _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
        }
    }
}

AVX2 void edge_q4k_row_dm_avx2(const uint8_t *s, size_t avail, size_t b, float D, float M, size_t G, float *gd, float *gm) {
    q4k_row_dm(s, avail, b, D, M, G, gd, gm);
}

/// Runs `rows_fn` over chunks of up to 4 tokens, each with its activations prepared once
/// (edge_q4q8_prepare; on the stack when small); q4k's d_g / m_g scratch zeroed once.
void edge_q4q8_chunks(edge_q4q8_rows_fn rows_fn, const edge_q4x *w, const int8_t *Xq, const float *xscale, float *Y,
                      size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    bool k4 = w->sub != NULL;
    if (!(k4 ? edge_q4k_q8_supported(w->gs, w->sub_bits) : edge_q4_q8_supported(w->gs)) || T == 0 || r0 >= r1) return;
    size_t nblk = (cols + 127) / 128, nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    size_t mt = T < 4 ? T : 4, dl = k4 ? edge_q4q8_dm_len((cols + w->gs - 1) / w->gs) : 0;
    int8_t pstack[4 * 32 * 128];
    int32_t istack[4 * 32 * 16];
    float xstack[4 * 32 * 16], sstack[4 * 32 * 16], dstack[2 * 264];
    bool small = mt * nblk <= 4 * 32;
    int8_t *planes = small ? pstack : (int8_t *)malloc(mt * nblk * 128);
    int32_t *init = k4 ? NULL : small ? istack : (int32_t *)malloc(sizeof(int32_t) * mt * nblk * 16);
    float *lxs = small ? xstack : (float *)malloc(sizeof(float) * mt * nblk * 16);
    float *sxs = !k4 ? NULL : small ? sstack : (float *)malloc(sizeof(float) * mt * nblk * 16);
    float *gd = !k4 ? NULL : 2 * dl <= sizeof dstack / sizeof *dstack ? dstack : (float *)malloc(sizeof(float) * 2 * dl);
    if (!planes || (!k4 && !init) || !lxs || (k4 && (!sxs || !gd))) abort();
    if (k4) memset(gd, 0, sizeof(float) * 2 * dl);
    edge_q4q8_act act = {planes, init, lxs, sxs, gd, gd ? gd + dl : NULL};
    for (size_t t = 0; t < T; t += 4) {
        size_t n = T - t < 4 ? T - t : 4;
        edge_q4q8_prepare(Xq + t * cols, xscale + t * nb, n, cols, w->zero ? 16 : 8, planes, init, lxs, sxs);
        rows_fn(n, w, &act, Y + t * rows, rows, cols, r0, r1);
    }
    if (!small) {
        free(planes);
        free(init);
        free(lxs);
        free(sxs);
    }
    if (gd && gd != dstack) free(gd);
}

/// q4_q8_rows with the token count and form constants (the accumulators then stay in registers).
static AVX2 void q4_q8_rows_any(size_t T, const edge_q4x *w, const edge_q4q8_act *a, float *Y, size_t rows, size_t cols,
                                size_t r0, size_t r1) {
#define Q4Q8(t) \
    if (w->sub) q4_q8_rows(t, false, true, w, a, Y, rows, cols, r0, r1); \
    else if (w->zero) q4_q8_rows(t, true, false, w, a, Y, rows, cols, r0, r1); \
    else q4_q8_rows(t, false, false, w, a, Y, rows, cols, r0, r1)
    switch (T) {
    case 1: Q4Q8(1); break;
    case 2: Q4Q8(2); break;
    case 3: Q4Q8(3); break;
    default: Q4Q8(4); break;
    }
#undef Q4Q8
}

static AVX2 void matmul_q4_q8b32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                                 const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                 size_t r0, size_t r1) {
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    edge_q4q8_chunks(q4_q8_rows_any, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static AVX2 void matmul_q4k_q8b32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs,
                                  size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T,
                                  size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    edge_q4q8_chunks(q4_q8_rows_any, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

void edge_matmul_q8_i16_driver(edge_q8_i16_rows_fn rows_fn, edge_i16_micro_fn micro, int pmt, int pnr, const int8_t *Wq,
                               const float *wscale, const int16_t *Xq, const float *xscale, float *Y, size_t T,
                               size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    if (cols == 0) {
        for (size_t t = 0; t < T; t++) memset(Y + t * rows + r0, 0, (r1 - r0) * sizeof(float));
        return;
    }
    if (T <= I16_ROW_MT) {
        rows_fn(Wq, wscale, Xq, xscale, Y, T, rows, cols, r0, r1);
        return;
    }
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, nr_max = (size_t)pnr;
    int16_t *pack = (int16_t *)aligned_alloc(64, sizeof(int16_t) * PRB * EDGE_I16_BLOCK);
    if (!pack) abort();
    for (size_t b = 0; b < nb; b++) {
        size_t k0 = b * EDGE_I16_BLOCK, kc = cols - k0 < EDGE_I16_BLOCK ? cols - k0 : EDGE_I16_BLOCK, kp = (kc + 1) / 2;
        for (size_t rb = r0; rb < r1; rb += PRB) {
            size_t nrb = r1 - rb < PRB ? r1 - rb : PRB;
            for (size_t j = 0; j < nrb; j += nr_max)
                edge_pack_panel_i16(Wq, cols, rb + j, nrb - j < nr_max ? nrb - j : nr_max, k0, kc, nr_max, pack + j * kp * 2);
            for (size_t t = 0; t < T; t += (size_t)pmt) {
                int mt = T - t < (size_t)pmt ? (int)(T - t) : pmt;
                for (size_t j = 0; j < nrb; j += nr_max) {
                    int nr = nrb - j < nr_max ? (int)(nrb - j) : pnr;
                    micro(mt, nr, Xq + t * ld + k0, ld, pack + j * kp * 2, kp, xscale + t * nb + b, nb,
                          wscale + rb + j, Y + t * rows + rb + j, rows, b == 0, b + 1 == nb, false, NULL);
                }
            }
        }
    }
    free(pack);
}

/// dst[i] = nibble (k0 + i) of row q minus z, for i < n (k0 even): 32 at a time from 16 bytes
/// (low and high nibbles interleaved back into column order), the rest one by one.
static AVX2 void expand_q4_i8(const uint8_t *q, size_t k0, size_t n, int z, int8_t *dst) {
    const __m128i m4 = _mm_set1_epi8(0x0F), vz = _mm_set1_epi8((char)z);
    const uint8_t *b = q + k0 / 2;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m128i v = _mm_loadu_si128((const __m128i *)(b + i / 2));
        __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        _mm_storeu_si128((__m128i *)(dst + i), _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), vz));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), vz));
    }
    for (; i < n; i++) dst[i] = (int8_t)((int)edge_q4_nibble(q, k0 + i) - z);
}

void edge_gemm_q4_i16_driver(edge_i16_micro_fn micro, edge_i16_groups_fn groups, int pmt, int pnr, const edge_q4x *w, const int16_t *Xq,
                             const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t gs = w->gs;
    bool k4 = w->sub != NULL;
    if (T == 0 || r0 >= r1 || !edge_q4_i16_supported(gs)) return;
    if (cols == 0) {
        for (size_t t = 0; t < T; t++) memset(Y + t * rows + r0, 0, (r1 - r0) * sizeof(float));
        return;
    }
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, nr_max = (size_t)pnr;
    size_t groups_n = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2, per_block = EDGE_I16_BLOCK / gs;
    int16_t *pack = (int16_t *)aligned_alloc(64, sizeof(int16_t) * PRB * EDGE_I16_BLOCK);
    int8_t *w8 = (int8_t *)malloc((size_t)PRB * EDGE_I16_BLOCK);
    float *gsc = (float *)malloc(sizeof(float) * per_block * PRB * (k4 ? 2 : 1)), *gmn = gsc + per_block * PRB;
    // q4k: each token's activation sum over each group (exact: |sum| <= 32767 * 256 < 2^24) times its block scale.
    float *sx = k4 ? (float *)malloc(sizeof(float) * T * groups_n) : NULL;
    if (!pack || !w8 || !gsc || (k4 && !sx)) abort();
    for (size_t t = 0; k4 && t < T; t++) edge_q4k_group_sums(Xq + t * ld, xscale + t * nb, cols, gs, groups_n, sx + t * groups_n);
    for (size_t b = 0; b < nb; b++) {
        size_t k0 = b * EDGE_I16_BLOCK, kc = cols - k0 < EDGE_I16_BLOCK ? cols - k0 : EDGE_I16_BLOCK, kp = (kc + 1) / 2;
        size_t g0 = k0 / gs, ng = (kc + gs - 1) / gs;
        for (size_t rb = r0; rb < r1; rb += PRB) {
            size_t nrb = r1 - rb < PRB ? r1 - rb : PRB;
            for (size_t i = 0; i < nrb; i++) {  // the block's weights as int8 u - z (q4k: u), and the rows' group scales
                const uint8_t *q = w->Wq + (rb + i) * row_bytes;
                float dk[EDGE_I16_BLOCK / 32], mk[EDGE_I16_BLOCK / 32];
                if (k4) edge_q4k_row_dm(w, rb + i, groups_n, g0, ng, dk, mk);
                for (size_t g = 0; g < ng; g++) {
                    size_t gi = (rb + i) * groups_n + g0 + g, c1 = (g + 1) * gs < kc ? (g + 1) * gs : kc;
                    int z = k4 ? 0 : w->zero ? (int)w->zero[gi] : 8;
                    if (k4) {
                        gsc[g * PRB + i] = dk[g];
                        gmn[g * PRB + i] = mk[g];
                    } else {
                        gsc[g * PRB + i] = edge_f16_to_f32(w->scale_f16[gi]);
                    }
                    expand_q4_i8(q, k0 + g * gs, c1 - g * gs, z, w8 + i * kc + g * gs);
                }
            }
            for (size_t j = 0; j < nrb; j += nr_max)
                edge_pack_panel_i16(w8, kc, j, nrb - j < nr_max ? nrb - j : nr_max, 0, kc, nr_max, pack + j * kp * 2);
            for (size_t t = 0; t < T; t += (size_t)pmt) {
                int mt = T - t < (size_t)pmt ? (int)(T - t) : pmt;
                for (size_t j = 0; j < nrb; j += nr_max) {
                    int nr = nrb - j < nr_max ? (int)(nrb - j) : pnr;
                    size_t g = 0;
                    if (groups && mt == pmt && nr == pnr && kc / gs > 0) {  // the block's whole groups in one call
                        size_t whole = kc / gs;
                        groups(Xq + t * ld + k0, ld, pack + j * kp * 2, gs, whole, xscale + t * nb + b, nb, gsc + j, PRB,
                               Y + t * rows + rb + j, rows, b == 0, k4 ? gmn + j : NULL, k4 ? sx + t * groups_n + g0 : NULL,
                               groups_n);
                        g = whole;
                    }
                    for (; g < ng; g++) {
                        size_t c = g * gs, len = kc - c < gs ? kc - c : gs;
                        edge_i16_mins mins = {k4 ? gmn + g * PRB + j : NULL, k4 ? sx + t * groups_n + g0 + g : NULL, groups_n};
                        micro(mt, nr, Xq + t * ld + k0 + c, ld, pack + j * kp * 2 + (c / 2) * nr_max * 2, (len + 1) / 2,
                              xscale + t * nb + b, nb, gsc + g * PRB + j, Y + t * rows + rb + j, rows, b == 0 && g == 0,
                              false, true, k4 ? &mins : NULL);
                    }
                }
            }
        }
    }
    free(sx);
    free(gsc);
    free(w8);
    free(pack);
}

static AVX2 void gemm_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                             const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                             size_t r0, size_t r1) {
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    edge_gemm_q4_i16_driver(micro_i16_6x16, micro_i16_6x16_groups, PMT, PNR, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static AVX2 void gemm_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs, size_t sub_bits,
                              const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(gs, sub_bits)) return;
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    edge_gemm_q4_i16_driver(micro_i16_6x16, micro_i16_6x16_groups, PMT, PNR, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static AVX2 void matmul_q8_i16(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_matmul_q8_i16_driver(matmul_q8_i16_rows, micro_i16_6x16, PMT, PNR, Wq, wscale, Xq, xscale, Y, T, rows, cols, r0, r1);
}

// ---- Element-wise ---------------------------------------------------------------------------

/// exp(x) to ~2 ulp for x in [-87.3, 88]; above: exp(88); below (and -Inf): 0; NaN: NaN.
AVX2_INLINE __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.33654f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // below-range lanes -> 0, NaN stays NaN
    x = _mm256_max_ps(lo, _mm256_min_ps(hi, x));  // this operand order lets NaN through
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static AVX2 float dot_f32(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= n) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    if (i < n) {
        __m256i m = mask8(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum(_mm256_add_ps(s0, s1));
}

static AVX2 void scale_f32(float *x, float s, size_t n) {
    __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++) x[i] *= s;
}

static AVX2 void rmsnorm(const float *x, const float *w, float *out, size_t n, float eps) {
    float ss = dot_f32(x, x, n);
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    __m256 vi = _mm256_set1_ps(inv);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), vi)));
    for (; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

static AVX2 void layernorm(const float *x, const float *w, const float *b, float *out, size_t n, float eps) {
    __m256 s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    float sum = hsum(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m256 vm = _mm256_set1_ps(mean);
    s = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        s = _mm256_fmadd_ps(d, d, s);
    }
    float var = hsum(s);
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / (float)n + eps);
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi);
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

static AVX2 void softmax(float *x, size_t n) {
    if (n == 0) return;
    size_t i = 0;
    __m256 vm = _mm256_set1_ps(x[0]);
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float m = hmax(vm);
    for (; i < n; i++) if (x[i] > m) m = x[i];
    vm = _mm256_set1_ps(m);
    __m256 vs = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (i < n) {
        __m256i mk = mask8(n - i);
        __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), vm)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(x + i, mk, e);
        vs = _mm256_add_ps(vs, e);
    }
    scale_f32(x, 1.0f / hsum(vs), n);
}

/// x / (1 + exp(-a)), i.e. x * sigmoid(a).
AVX2_INLINE __m256 mul_sigmoid(__m256 x, __m256 a) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), a));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static AVX2 void gelu_tanh(float *x, size_t n) {
    // 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
    const __m256 k2 = _mm256_set1_ps(2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    size_t i = 0;
    for (; i < n; i += 8) {
        size_t left = n - i;
        __m256i mk = mask8(left < 8 ? left : 8);
        __m256 v = _mm256_maskload_ps(x + i, mk);
        __m256 a = _mm256_mul_ps(k2, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
        _mm256_maskstore_ps(x + i, mk, mul_sigmoid(v, a));
    }
}

static AVX2 void silu_mul(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        size_t left = n - i;
        __m256i mk = mask8(left < 8 ? left : 8);
        __m256 g = _mm256_maskload_ps(gate + i, mk);
        __m256 r = _mm256_mul_ps(mul_sigmoid(g, g), _mm256_maskload_ps(up + i, mk));
        _mm256_maskstore_ps(out + i, mk, r);
    }
}

static AVX2 void add_f32(float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(a + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) a[i] += b[i];
}

static AVX2 void axpy_f32(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/// The body of vecmat_f32 and vecmat_f16: 32 outputs at a time in four accumulators (each lane its own
/// fma chain over j, the reference's order), then 8, then one by one with fmaf; LOADV(p) is 8 values of V
/// from p as floats and ELEM(p) one.
#define VECMAT_BODY(T, LOADV, ELEM)                                                                        \
    size_t c = 0;                                                                                          \
    for (; c + 32 <= d; c += 32) {                                                                         \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(); \
        for (size_t j = 0; j < n; j++) {                                                                   \
            const T *v = V + j * ldv + c;                                                                  \
            __m256 xj = _mm256_set1_ps(x[j]);                                                              \
            a0 = _mm256_fmadd_ps(xj, LOADV(v), a0);                                                        \
            a1 = _mm256_fmadd_ps(xj, LOADV(v + 8), a1);                                                    \
            a2 = _mm256_fmadd_ps(xj, LOADV(v + 16), a2);                                                   \
            a3 = _mm256_fmadd_ps(xj, LOADV(v + 24), a3);                                                   \
        }                                                                                                  \
        _mm256_storeu_ps(y + c, a0);                                                                       \
        _mm256_storeu_ps(y + c + 8, a1);                                                                   \
        _mm256_storeu_ps(y + c + 16, a2);                                                                  \
        _mm256_storeu_ps(y + c + 24, a3);                                                                  \
    }                                                                                                      \
    for (; c + 8 <= d; c += 8) {                                                                           \
        __m256 a = _mm256_setzero_ps();                                                                    \
        for (size_t j = 0; j < n; j++) a = _mm256_fmadd_ps(_mm256_set1_ps(x[j]), LOADV(V + j * ldv + c), a); \
        _mm256_storeu_ps(y + c, a);                                                                        \
    }                                                                                                      \
    for (; c < d; c++) {                                                                                   \
        float a = 0.0f;                                                                                    \
        for (size_t j = 0; j < n; j++) a = fmaf(x[j], ELEM(V + j * ldv + c), a);                           \
        y[c] = a;                                                                                          \
    }

#define LOAD_F32(p) _mm256_loadu_ps(p)
#define ELEM_F32(p) (*(p))
#define LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define ELEM_F16(p) edge_f16_to_f32(*(p))

/// edge_vecmat_f32 (VECMAT_BODY).
static AVX2 void vecmat_f32(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d) {
    VECMAT_BODY(float, LOAD_F32, ELEM_F32)
}

/// edge_vecmat_f16: vecmat_f32's loops with each V vector widened from binary16 as it is loaded (vcvtph2ps
/// is exact), so the same fma chains in the same order as the reference.
static AVX2 void vecmat_f16(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d) {
    VECMAT_BODY(uint16_t, LOAD_F16, ELEM_F16)
}
#undef VECMAT_BODY
#undef LOAD_F32
#undef ELEM_F32
#undef LOAD_F16
#undef ELEM_F16

/// edge_f16_widen: 8 at a time with vcvtph2ps (exact), the rest by the scalar conversion.
static AVX2 void f16_widen(const uint16_t *src, float *dst, size_t n) {
    size_t i = unpack_f16(src, n, dst);
    for (; i < n; i++) dst[i] = edge_f16_to_f32(src[i]);
}

/// edge_f16_narrow: 8 at a time with vcvtps2ph, rounding to nearest even (the scalar conversion's rule), the
/// rest by the scalar conversion.
static AVX2 void f16_narrow(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = edge_f32_to_f16(src[i]);
}

// ---- Transpose ------------------------------------------------------------------------------

/// 8 x 8 block: dst[c * lds + r] = src[r * ldr + c] for r, c < 8 (unpack/shuffle/permute).
AVX2_INLINE void transpose8x8(const float *src, size_t ldr, float *dst, size_t lds) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ldr), r2 = _mm256_loadu_ps(src + 2 * ldr);
    __m256 r3 = _mm256_loadu_ps(src + 3 * ldr), r4 = _mm256_loadu_ps(src + 4 * ldr), r5 = _mm256_loadu_ps(src + 5 * ldr);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ldr), r7 = _mm256_loadu_ps(src + 7 * ldr);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3);
    __m256 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44);
    __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + lds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * lds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * lds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * lds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * lds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * lds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * lds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/// As edge_transpose_f32_ref: 16-row strips (each destination row gets 64 contiguous bytes) of
/// 8 x 8 blocks; the rows and columns past whole blocks by the scalar formula.
static AVX2 void transpose_f32(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t r = r0;
    for (; r + 16 <= r1; r += 16) {
        size_t c = 0;
        for (; c + 8 <= cols; c += 8) {
            transpose8x8(src + r * cols + c, cols, dst + c * rows + r, rows);
            transpose8x8(src + (r + 8) * cols + c, cols, dst + c * rows + r + 8, rows);
        }
        for (size_t i = r; i < r + 16; i++)
            for (size_t cc = c; cc < cols; cc++) dst[cc * rows + i] = src[i * cols + cc];
    }
    if (r < r1) edge_transpose_f32_ref(src, dst, rows, cols, r, r1);
}

void edge_fill_table_avx2(edge_kernel_table *t) {
    t->level = EDGE_KERNELS_AVX2;
    t->vnni = false;
    t->gemm = &k_gemm_avx2;
    t->q8_q8_name = "avx2-dot-q8q8-4x2";
    t->q8_q8b32_name = "avx2-dot-q8q8b32-4x2";
    t->q8_i16_name = "avx2-packed-i16-6x16";
    t->q8_i16_rows_name = "avx2-rows-i16-4x1";
    t->q4_i16_name = "avx2-bytes-q4i16-1x2";
    t->q4_i16_multi_name = "avx2-rows-q4i16-4x1";
    t->q4_q8b32_name = "avx2-rows-q4q8b32-4x1";
    t->gemm_q4_i16 = gemm_q4_i16;
    t->gemm_q4_i16_name = "avx2-packed-q4i16-6x16";
    t->matmul_q4k_i16 = matmul_q4k_i16;
    t->q4k_i16_name = "avx2-bytes-q4ki16-1x2";
    t->q4k_i16_multi_name = "avx2-rows-q4ki16-4x1";
    t->gemm_q4k_i16 = gemm_q4k_i16;
    t->gemm_q4k_i16_name = "avx2-packed-q4ki16-6x16";
    t->matmul_q4_q8b32 = matmul_q4_q8b32;
    t->matmul_q4k_q8b32 = matmul_q4k_q8b32;
    t->q4k_q8b32_name = "avx2-rows-q4kq8b32-4x1";
    t->i16_rows_max_t = I16_ROW_MT;
    t->quantize_row_q8 = quantize_row_q8;
    t->matmul_q8_q8 = matmul_q8_q8;
    t->quantize_row_q8_b32 = quantize_row_q8_b32;
    t->matmul_q8_q8b32 = matmul_q8_q8b32;
    t->quantize_rows_i16 = quantize_rows_i16;
    t->round_to_grid = round_to_grid;
    t->minmax = minmax;
    t->matmul_q8_i16 = matmul_q8_i16;
    t->matmul_q4_i16 = matmul_q4_i16;
    t->transpose_f32 = transpose_f32;
    t->rmsnorm = rmsnorm;
    t->layernorm = layernorm;
    t->softmax = softmax;
    t->gelu_tanh = gelu_tanh;
    t->silu_mul = silu_mul;
    t->add = add_f32;
    t->axpy = axpy_f32;
    t->vecmat_f32 = vecmat_f32;
    t->vecmat_f16 = vecmat_f16;
    t->f16_widen = f16_widen;
    t->f16_narrow = f16_narrow;
    t->scale = scale_f32;
    t->dot_f32 = dot_f32;
}
#endif
