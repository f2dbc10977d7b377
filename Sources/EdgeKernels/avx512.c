// AVX-512 kernels (x86-64): F + BW + VL everywhere, VNNI (vpdpbusd, vpdpwssd) for the integer products where present.
// Every function carries its own target attribute, so the file builds with the default flags and
// runs only where dispatch.c found the features (and the OS saving the ZMM/opmask state).
//
// The float-activation GEMMs run through the shared driver (gemm_driver.c); this file gives it the
// weight unpacker and two zmm micro-kernels: the dot-product tile (MT tokens x NR rows of 16-lane
// partial dot products, masked column tails) for few tokens, and the packed 12x32 outer-product tile
// for many. int8 x int8, int8 x int16 and q4 x int8 keep their own loops (int8 x int16 in avx512_i16.h,
// q4 and q4k x int8 in avx512_q4q8.h, each with VNNI or AVX-512BW); q4 and q4k x int16 for one token
// on byte dot products with VNNI (AVX2's rows otherwise, and for more tokens); the block-q8 product is AVX2's.
//
// Built with EDGE_AVX512_EMULATED (scripts/test-avx512-emulated.sh only), the intrinsics come from
// SIMDe's portable implementation instead, so the file's logic is tested on CPUs without AVX-512.
#if defined(__x86_64__)
#include "dispatch.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(EDGE_AVX512_EMULATED)
#include "avx512_emulation.h"
#define AVX512
#define AVX512_INLINE static inline
#define VNNI
#define VNNI_INLINE static inline
#define BF16
/// vdpbf16ps by its definition (SIMDe's orders its two products differently): per lane, the odd
/// bfloat16 pair element's product first, then the even one's, each an fma.
static inline __m512 bf16_dp(__m512 acc, __m512i a, __m512i b) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, hi)), _mm512_castsi512_ps(_mm512_and_si512(b, hi)), acc);
    return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
}
#define BF16_DP(acc, a, b) bf16_dp(acc, a, b)
#else
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define VNNI_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define BF16_DP(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))
#endif

#define Q4K_DM_INLINE VNNI_INLINE
#include "q4k_dm.h"
#undef Q4K_DM_INLINE

enum { MT = 4, NR = 4 };  // tokens x rows: 16 accumulators + 4 weights + 1 activation of 32 zmm

/// The first n (0...16) lanes.
static inline __mmask16 mask16(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }
/// The first n (0...64) bytes.
static inline __mmask64 mask64(size_t n) { return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1); }

/// [sum(a), sum(b), sum(c), sum(d)].
AVX512_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(HALF(a), HALF(b)), _mm256_hadd_ps(HALF(c), HALF(d)));
#undef HALF
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

AVX512_INLINE __m128i hsum4_epi32(__m512i a, __m512i b, __m512i c, __m512i d) {
#define HALF(v) _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1))
    __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(HALF(a), HALF(b)), _mm256_hadd_epi32(HALF(c), HALF(d)));
#undef HALF
    return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

// ---- f32 micro-kernel -----------------------------------------------------------------------

/// y[t*ldy + r] (+)= dot(w[r*ldw ..], x[t*ldx ..]) over kc columns, t < mt, r < nr (constants at each use).
AVX512_INLINE void tile_f32(const int mt, const int nr, const float *w, size_t ldw, const float *x, size_t ldx,
                            float *y, size_t ldy, size_t kc, bool accumulate) {
    __m512 acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm512_loadu_ps(w + r * ldw + k);
        for (int t = 0; t < mt; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + k);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    if (k < kc) {
        __mmask16 m = mask16(kc - k);
        __m512 wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm512_maskz_loadu_ps(m, w + r * ldw + k);
        for (int t = 0; t < mt; t++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + k);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    __m512 z = _mm512_setzero_ps();
    __mmask8 m = (__mmask8)((1u << nr) - 1);
    for (int t = 0; t < mt; t++) {
        __m128 s = hsum4(acc[t][0], nr > 1 ? acc[t][1] : z, nr > 2 ? acc[t][2] : z, nr > 3 ? acc[t][3] : z);
        float *yt = y + t * ldy;
        if (accumulate) s = _mm_add_ps(s, _mm_maskz_loadu_ps(m, yt));
        _mm_mask_storeu_ps(yt, m, s);
    }
}

#define TILE_CASE(a, b) \
    case (a) * 8 + (b): tile_f32(a, b, w, ldw, x, ldx, y, ldy, kc, accumulate); break;

static AVX512 void tile_f32_any(int mt, int nr, const float *w, size_t ldw, const float *x, size_t ldx, float *y,
                                size_t ldy, size_t kc, bool accumulate) {
    switch (mt * 8 + nr) {
        EDGE_TILES_4X4(TILE_CASE)
    }
}
#undef TILE_CASE

// ---- Weight unpackers (gemm_driver.h) ----------------------------------------------------

/// dst[i] = f32 of binary16 src[i] for every i < n (masked tail); returns n.
static AVX512 size_t unpack_f16(const uint16_t *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
    return n;
}

/// dst[i] = scale * (float)(q[i] - zero) (q unsigned when asymmetric, else signed with zero 0) for
/// every i < n (masked tail); returns n.
static AVX512 size_t unpack_q8(const uint8_t *src, size_t n, float scale, bool asymmetric, int zero, float *dst) {
    __m512 vs = _mm512_set1_ps(scale);
    if (asymmetric) {
        __m512i vz = _mm512_set1_epi32(zero);
        for (size_t i = 0; i < n; i += 16) {
            __mmask16 m = mask16(n - i);
            __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src + i)), vz);
            _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
        }
    } else {
        for (size_t i = 0; i < n; i += 16) {
            __mmask16 m = mask16(n - i);
            __m512i q = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, src + i));
            _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
        }
    }
    return n;
}

/// dst[i] = scale * (float)(nibble i - zero) (low nibble of bytes[i/2] first) for whole vectors of 16
/// (8 bytes); returns how many it converted.
static AVX512 size_t unpack_q4(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    const __m128i lo4 = _mm_set1_epi8(0x0F);
    __m512 vs = _mm512_set1_ps(scale);
    __m512i vz = _mm512_set1_epi32(zero);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(bytes + i / 2));
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(u), vz);
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
    }
    return i;
}

/// dst[i] = scale * (float)(code i - zero) (code i in bits 3i...3i+2 of the bit stream at bytes) for whole
/// units of 8 (3 bytes each), 16 per vector and a last unit of 8 masked; returns how many it converted.
/// Reads at most ceil(3n/8) bytes.
static AVX512 size_t unpack_q3(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    const __m512i shifts = _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21);
    const __m512i seven = _mm512_set1_epi32(7);
    __m512 vs = _mm512_set1_ps(scale);
    __m512i vz = _mm512_set1_epi32(zero);
    size_t i = 0;
    for (; i + 8 <= n; i += 16) {
        const uint8_t *b = bytes + i / 8 * 3;
        uint32_t v0 = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16, v1 = 0;
        bool two = i + 16 <= n;
        if (two) v1 = (uint32_t)b[3] | (uint32_t)b[4] << 8 | (uint32_t)b[5] << 16;
        __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32((int)v0)), _mm256_set1_epi32((int)v1), 1);
        __m512i q = _mm512_sub_epi32(_mm512_and_si512(_mm512_srlv_epi32(w, shifts), seven), vz);
        __m512 f = _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q));
        if (two) {
            _mm512_storeu_ps(dst + i, f);
        } else {
            _mm512_mask_storeu_ps(dst + i, (__mmask16)0x00FF, f);
            return i + 8;
        }
    }
    return i;
}

/// dst[i] = d * (float)(nibble i) - m (low nibble of bytes[i/2] first) for whole vectors of 16 (8 bytes);
/// returns how many it converted. One fused multiply-subtract: d * u is exact, so the scalar formula's bits.
static AVX512 size_t unpack_q4k(const uint8_t *bytes, size_t n, float d, float m, float *dst) {
    const __m128i lo4 = _mm_set1_epi8(0x0F);
    __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(bytes + i / 2));
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        _mm512_storeu_ps(dst + i, _mm512_fmsub_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(u)), vm));
    }
    return i;
}

// ---- Packed outer-product micro-kernel (many tokens) ----------------------------------------
// The driver packs weights into panels of 32 rows stored k-major ([k][32], zero-padded, 64-byte
// aligned), so the 12x32 micro-kernel reads two aligned zmm of 32 outputs' weights per k and
// broadcasts 12 tokens' activations: 24 accumulators, 24 FMAs per 2 loads + 12 broadcasts.

enum { PMT = 12, PNR = 32 };

/// The start of a 12x32 packed tile: x0 ... x11, the token rows of x (`type` elements, rows ldx apart;
/// rows past mt read row 0 again, valid memory, their sums not stored), and the 24 accumulators c<token><half>.
#define PK_TILE_START(type) \
    const type *x0 = x, *x1 = mt > 1 ? x + ldx : x, *x2 = mt > 2 ? x + 2 * ldx : x, *x3 = mt > 3 ? x + 3 * ldx : x; \
    const type *x4 = mt > 4 ? x + 4 * ldx : x, *x5 = mt > 5 ? x + 5 * ldx : x, *x6 = mt > 6 ? x + 6 * ldx : x; \
    const type *x7 = mt > 7 ? x + 7 * ldx : x, *x8 = mt > 8 ? x + 8 * ldx : x, *x9 = mt > 9 ? x + 9 * ldx : x; \
    const type *x10 = mt > 10 ? x + 10 * ldx : x, *x11 = mt > 11 ? x + 11 * ldx : x; \
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00; \
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00; \
    __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00, c100 = c00, c101 = c00, c110 = c00, c111 = c00;

#define PK_ROW(i) \
    a = _mm512_set1_ps(x##i[k]); \
    c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0); \
    c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);

#define PK_STORE(i) \
    if (i < mt) { \
        float *yr = y + (size_t)i * ldy; \
        if (accumulate) { \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_maskz_loadu_ps(m0, yr)); \
            c##i##1 = _mm512_add_ps(c##i##1, _mm512_maskz_loadu_ps(m1, yr + 16)); \
        } \
        _mm512_mask_storeu_ps(yr, m0, c##i##0); \
        _mm512_mask_storeu_ps(yr + 16, m1, c##i##1); \
    }

/// y[t*ldy + r] (+)= sum_k x[t*ldx + k] * p[k*32 + r] for t < mt (<= 12), r < nr (<= 32).
static AVX512 void micro_12x32(int mt, int nr, const float *x, size_t ldx, const float *p, size_t kc, float *y,
                               size_t ldy, bool accumulate) {
    PK_TILE_START(float)
    for (size_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(p + k * PNR), b1 = _mm512_load_ps(p + k * PNR + 16), a;
        PK_ROW(0) PK_ROW(1) PK_ROW(2) PK_ROW(3) PK_ROW(4) PK_ROW(5)
        PK_ROW(6) PK_ROW(7) PK_ROW(8) PK_ROW(9) PK_ROW(10) PK_ROW(11)
    }
    __mmask16 m0 = mask16(nr < 16 ? (size_t)nr : 16), m1 = mask16(nr > 16 ? (size_t)(nr - 16) : 0);
    PK_STORE(0) PK_STORE(1) PK_STORE(2) PK_STORE(3) PK_STORE(4) PK_STORE(5)
    PK_STORE(6) PK_STORE(7) PK_STORE(8) PK_STORE(9) PK_STORE(10) PK_STORE(11)
}
#undef PK_ROW

// ---- One token, straight from the stored weights (decoding) ------------------------------

/// 16 weights of row r, columns [j, j + 16) inside the row (and, for q4, inside one group), as the
/// unpackers give them; `vs` / `vz` hold the row's (q8) or the group's (q4) scale and zero.
AVX512_INLINE __m512 fused_w16(const edge_wkind kind, const edge_wsource *s, size_t cols, size_t r, size_t j,
                               __m512 vs, __m512i vz) {
    switch (kind) {
    case EDGE_W_F32: return _mm512_loadu_ps((const float *)s->W + r * cols + j);
    case EDGE_W_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)s->W + r * cols + j)));
    case EDGE_W_Q8: {
        __m128i b = _mm_loadu_si128((const __m128i *)((const uint8_t *)s->W + r * cols + j));
        if (s->zero) return _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), vz)));
        return _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)));
    }
    case EDGE_W_Q4: {
        const __m128i lo4 = _mm_set1_epi8(0x0F);
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)s->W + r * s->row_bytes + j / 2));
        __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
        return _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(u), vz)));
    }
    default: return _mm512_setzero_ps();
    }
}

/// One row at a time, its bytes read strictly in order with software prefetches EDGE_PREFETCH_BYTES
/// ahead: per column block, y[r] (+)= the row's dot product with exactly the float operations of
/// tile_f32 for one row (16-lane FMAs, a masked tail whose lanes past the block are zero, hsum4), on
/// the weights the unpackers and the scalar formula give, so the result is the dot path's bit for bit.
AVX512_INLINE void fused_kind(const edge_wkind kind, const edge_wsource *s, const float *x, float *y, size_t cols,
                              size_t r0, size_t r1) {
    size_t kstep = edge_column_block(cols);
    size_t row_bytes = kind == EDGE_W_F32 ? cols * 4 : kind == EDGE_W_F16 ? cols * 2 : kind == EDGE_W_Q8 ? cols : s->row_bytes;
    const __m512 z = _mm512_setzero_ps();
    for (size_t r = r0; r < r1; r++) {
        edge_prefetch_ahead((const uint8_t *)s->W + r * row_bytes, row_bytes, (const uint8_t *)s->W + r1 * row_bytes);
        __m512 vs = z;
        __m512i vz = _mm512_setzero_si512();
        if (kind == EDGE_W_Q8) {
            vs = _mm512_set1_ps(s->scale[r]);
            vz = _mm512_set1_epi32(s->zero ? (int)s->zero[r] : 0);
        }
        size_t next_group = 0;
        for (size_t k0 = 0; k0 < cols; k0 += kstep) {
            size_t kc = cols - k0 < kstep ? cols - k0 : kstep, k = 0;
            __m512 acc = z;
            for (; k + 16 <= kc; k += 16) {
                size_t j = k0 + k;
                if (kind == EDGE_W_Q4 && j >= next_group) {  // a new group (group_size is a multiple of 16)
                    size_t g = j / s->group_size, gi = r * s->groups + g;
                    next_group = (g + 1) * s->group_size;
                    vs = _mm512_set1_ps(edge_f16_to_f32(s->scale_f16[gi]));
                    vz = _mm512_set1_epi32(s->zero ? (int)s->zero[gi] : 8);
                }
                acc = _mm512_fmadd_ps(fused_w16(kind, s, cols, r, j, vs, vz), _mm512_loadu_ps(x + j), acc);
            }
            if (k < kc) {  // the block's last columns: the scalar formula, zero lanes past them (as the masked loads)
                __mmask16 m = mask16(kc - k);
                float w[16] = {0};
                for (size_t l = 0; l < kc - k; l++) w[l] = edge_weight_at(kind, s, cols, r, k0 + k + l);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w), _mm512_maskz_loadu_ps(m, x + k0 + k), acc);
            }
            float sum = _mm_cvtss_f32(hsum4(acc, z, z, z));
            y[r] = k0 > 0 ? sum + y[r] : sum;
        }
    }
}

static AVX512 bool matvec_fused(const edge_wsource *s, const float *x, float *y, size_t cols, size_t r0, size_t r1) {
    switch (s->kind) {
    case EDGE_W_F32: fused_kind(EDGE_W_F32, s, x, y, cols, r0, r1); return true;
    case EDGE_W_F16: fused_kind(EDGE_W_F16, s, x, y, cols, r0, r1); return true;
    case EDGE_W_Q8: fused_kind(EDGE_W_Q8, s, x, y, cols, r0, r1); return true;
    case EDGE_W_Q4:
        if (s->group_size == 0 || s->group_size % 16 != 0) return false;
        fused_kind(EDGE_W_Q4, s, x, y, cols, r0, r1);
        return true;
    default: return false;
    }
}

/// edge_bf16_round of 16 floats' bits, as f32 bits (the low halves left as the sum leaves them).
AVX512_INLINE __m512i bf16_round16_bits(__m512i x) {
    const __m512i expo = _mm512_and_si512(x, _mm512_set1_epi32(0x7F800000));
    __mmask16 tiny = _mm512_cmpeq_epi32_mask(expo, _mm512_setzero_si512());
    __mmask16 nan = _mm512_cmpgt_epi32_mask(  // both non-negative as int32
        _mm512_and_si512(x, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(x, _mm512_set1_epi32(0x00400000)));
    return _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(x, _mm512_set1_epi32((int)0x80000000u)));
}

/// edge_gemm_isa.round_bf16: 16 at a time (the level's f32 tile on rounded operands: a CPU with
/// AVX-512 but not AVX512_BF16, or edge_kernels_set_bf16_native(false)).
static AVX512 size_t round_bf16(const float *src, size_t n, bool swap, float *dst) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i x = _mm512_loadu_si512((const void *)(src + i));
        if (swap) {  // [1 0 3 2] in each 128 bits
            __m512 f = _mm512_castsi512_ps(x);
            x = _mm512_castps_si512(_mm512_shuffle_ps(f, f, 0xB1));
        }
        __m512i r = _mm512_and_si512(bf16_round16_bits(x), _mm512_set1_epi32((int)0xFFFF0000u));
        _mm512_storeu_si512((void *)(dst + i), r);
    }
    return i;
}

/// edge_gemm_isa.pack_rows for PNR = 32 rows: per 16 columns, two 16 x 16 register transposes.
static AVX512 size_t pack_rows32(const float *src, size_t ld, size_t kc, float *panel) {
    size_t k0 = 0;
    for (; k0 + 16 <= kc; k0 += 16)
        for (size_t h = 0; h < 2; h++) {
            __m512 r[16], a[16], b[16], d[16];
            for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(src + (16 * h + (size_t)j) * ld + k0);
            for (int j = 0; j < 8; j++) a[2 * j] = _mm512_unpacklo_ps(r[2 * j], r[2 * j + 1]), a[2 * j + 1] = _mm512_unpackhi_ps(r[2 * j], r[2 * j + 1]);
            for (int j = 0; j < 4; j++) {
                b[4 * j] = _mm512_shuffle_ps(a[4 * j], a[4 * j + 2], 0x44), b[4 * j + 1] = _mm512_shuffle_ps(a[4 * j], a[4 * j + 2], 0xEE);
                b[4 * j + 2] = _mm512_shuffle_ps(a[4 * j + 1], a[4 * j + 3], 0x44), b[4 * j + 3] = _mm512_shuffle_ps(a[4 * j + 1], a[4 * j + 3], 0xEE);
            }
            // b[4g + c]: in 128-bit lane L, column 4L + c of rows 4g..4g+3.
            for (int c = 0; c < 4; c++) {
                d[4 * c] = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), d[4 * c + 1] = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
                d[4 * c + 2] = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88), d[4 * c + 3] = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
            }
            for (int c = 0; c < 4; c++) {
                float *p = panel + (k0 + (size_t)c) * PNR + 16 * h;
                _mm512_storeu_ps(p, _mm512_shuffle_f32x4(d[4 * c], d[4 * c + 2], 0x88));
                _mm512_storeu_ps(p + 8 * PNR, _mm512_shuffle_f32x4(d[4 * c], d[4 * c + 2], 0xDD));
                _mm512_storeu_ps(p + 4 * PNR, _mm512_shuffle_f32x4(d[4 * c + 1], d[4 * c + 3], 0x88));
                _mm512_storeu_ps(p + 12 * PNR, _mm512_shuffle_f32x4(d[4 * c + 1], d[4 * c + 3], 0xDD));
            }
        }
    return k0;
}

/// The AVX-512 micro-kernels and unpacker of the shared GEMM driver (gemm_driver.c).
static const edge_gemm_isa k_gemm_avx512 = {
    .dot_name = "avx512-dot-4x4", .packed_name = "avx512-packed-12x32",
    .unpack_f16 = unpack_f16, .unpack_q8 = unpack_q8, .unpack_q4 = unpack_q4, .unpack_q3 = unpack_q3,
    .unpack_q4k = unpack_q4k,
    .dot_tile = tile_f32_any, .dot_mt = MT, .dot_nr = NR,
    .packed_tile = micro_12x32, .packed_mt = PMT, .packed_nr = PNR, .packed_min_t = 12,
    .matvec = matvec_fused, .matvec_name = "avx512-fused-1x1",
    .round_bf16 = round_bf16, .pack_rows = pack_rows32,
};

// ---- bfloat16 products (edge_matmul_bf16, where the CPU has AVX512_BF16) ----------------------
// Per EDGE_BF16_BLOCK columns: every token's activations rounded to bfloat16 and stored as column pairs
// (one 32-bit word per pair, column 2q in the low half), weights packed into panels of 32 rows
// [pair][32 rows] of such words, and a 12x32 tile of vdpbf16ps: per pair two zmm of weights and one
// broadcast word per token, each instruction 32 multiply-adds (16 lanes x 2).

/// edge_bf16_round of 16 floats, the bfloat16 bits in each 32-bit lane's low half.
AVX512_INLINE __m512i bf16_round16(__m512 v) { return _mm512_srli_epi32(bf16_round16_bits(_mm512_castps_si512(v)), 16); }

/// dst[q] = pair words of src[0..n) (n <= 32 columns; columns past n are 0), ceil(n / 2) words written.
AVX512_INLINE void bf16_pairs32(const float *src, size_t n, uint32_t *dst) {
    __m512 a = _mm512_maskz_loadu_ps(mask16(n), src), b = _mm512_maskz_loadu_ps(mask16(n > 16 ? n - 16 : 0), src + 16);
    __m256i lo = _mm512_cvtepi32_epi16(bf16_round16(a)), hi = _mm512_cvtepi32_epi16(bf16_round16(b));
    __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm512_mask_storeu_epi32(dst, mask16((n + 1) / 2), w);
}

/// One block's pair words of a whole row of n columns (n <= EDGE_BF16_BLOCK).
AVX512_INLINE void bf16_pairs_row(const float *src, size_t n, uint32_t *dst) {
    for (size_t j = 0; j < n; j += 32) bf16_pairs32(src + j, n - j < 32 ? n - j : 32, dst + j / 2);
}

enum { BMT = 12, BNR = 32, BRB = 128 };

#define BF_ROW(i) \
    a = _mm512_set1_epi32((int)x##i[q]); \
    c##i##0 = BF16_DP(c##i##0, a, b0); \
    c##i##1 = BF16_DP(c##i##1, a, b1);

/// y[t*ldy + r] (+)= the pair sums of x[t*ldx + q] . p[q*32 + r] over q < qn, t < mt (<= 12), r < nr (<= 32):
/// the sum starts at 0 and is added to y when `accumulate`.
static BF16 void micro_bf16(int mt, int nr, const uint32_t *x, size_t ldx, const uint32_t *p, size_t qn, float *y,
                            size_t ldy, bool accumulate) {
    PK_TILE_START(uint32_t)
    for (size_t q = 0; q < qn; q++) {
        __m512i b0 = _mm512_load_si512((const void *)(p + q * BNR)), b1 = _mm512_load_si512((const void *)(p + q * BNR + 16)), a;
        BF_ROW(0) BF_ROW(1) BF_ROW(2) BF_ROW(3) BF_ROW(4) BF_ROW(5)
        BF_ROW(6) BF_ROW(7) BF_ROW(8) BF_ROW(9) BF_ROW(10) BF_ROW(11)
    }
    __mmask16 m0 = mask16(nr < 16 ? (size_t)nr : 16), m1 = mask16(nr > 16 ? (size_t)(nr - 16) : 0);
    PK_STORE(0) PK_STORE(1) PK_STORE(2) PK_STORE(3) PK_STORE(4) PK_STORE(5)
    PK_STORE(6) PK_STORE(7) PK_STORE(8) PK_STORE(9) PK_STORE(10) PK_STORE(11)
}
#undef BF_ROW
#undef PK_STORE
#undef PK_TILE_START

/// Rows [r, r + nr) (nr <= 32), columns [k0, k0 + kc) of an f32 or f32t source as a panel [qn][32] of pair
/// words (zero past nr rows and past kc columns); `tmp` holds EDGE_BF16_BLOCK / 2 words.
AVX512_INLINE void bf16_pack_panel(const edge_wsource *s, size_t cols, size_t r, size_t nr, size_t k0, size_t kc,
                                   uint32_t *tmp, uint32_t *panel) {
    size_t qn = (kc + 1) / 2;
    if (s->kind == EDGE_W_F32T) {
        const float *w = (const float *)s->W;
        __mmask16 m0 = mask16(nr < 16 ? nr : 16), m1 = mask16(nr > 16 ? nr - 16 : 0);
        for (size_t q = 0; q < qn; q++) {
            const float *e = w + (k0 + 2 * q) * s->ld + r;
            __m512i lo0 = bf16_round16(_mm512_maskz_loadu_ps(m0, e)), lo1 = bf16_round16(_mm512_maskz_loadu_ps(m1, e + 16));
            __m512i hi0 = _mm512_setzero_si512(), hi1 = hi0;
            if (2 * q + 1 < kc) {
                hi0 = bf16_round16(_mm512_maskz_loadu_ps(m0, e + s->ld));
                hi1 = bf16_round16(_mm512_maskz_loadu_ps(m1, e + s->ld + 16));
            }
            _mm512_store_si512((void *)(panel + q * BNR), _mm512_or_si512(lo0, _mm512_slli_epi32(hi0, 16)));
            _mm512_store_si512((void *)(panel + q * BNR + 16), _mm512_or_si512(lo1, _mm512_slli_epi32(hi1, 16)));
        }
        return;
    }
    for (size_t i = 0; i < BNR; i++) {
        if (i < nr) bf16_pairs_row((const float *)s->W + (r + i) * cols + k0, kc, tmp);
        for (size_t q = 0; q < qn; q++) panel[q * BNR + i] = i < nr ? tmp[q] : 0;
    }
}

/// edge_matmul_bf16 / _wt with vdpbf16ps: per column block the tokens' pair words (a per-thread buffer),
/// then per block of 128 rows four panels of 32, then every 12 tokens against every panel.
static BF16 void matmul_bf16_native(const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                                    size_t r0, size_t r1) {
    const size_t QB = EDGE_BF16_BLOCK / 2;
    uint32_t *pack = (uint32_t *)aligned_alloc(64, sizeof(uint32_t) * BRB * QB), tmp[EDGE_BF16_BLOCK / 2];
    uint32_t *xp = (uint32_t *)edge_thread_buffer(T * QB);  // pair words of one column block, [T][qn]
    if (!pack || !xp) abort();
    for (size_t k0 = 0; k0 < cols; k0 += EDGE_BF16_BLOCK) {
        size_t kc = cols - k0 < EDGE_BF16_BLOCK ? cols - k0 : EDGE_BF16_BLOCK, qn = (kc + 1) / 2;
        for (size_t t = 0; t < T; t++) bf16_pairs_row(X + t * cols + k0, kc, xp + t * qn);
        for (size_t rb = r0; rb < r1; rb += BRB) {
            size_t nrb = r1 - rb < BRB ? r1 - rb : BRB;
            for (size_t j = 0; j < nrb; j += BNR)
                bf16_pack_panel(s, cols, rb + j, nrb - j < BNR ? nrb - j : BNR, k0, kc, tmp, pack + j * qn);
            for (size_t t = 0; t < T; t += BMT) {
                int mt = (int)(T - t < BMT ? T - t : BMT);
                for (size_t j = 0; j < nrb; j += BNR) {
                    int nr = (int)(nrb - j < BNR ? nrb - j : BNR);
                    micro_bf16(mt, nr, xp + t * qn, qn, pack + j * qn, qn, Y + t * rows + rb + j, rows, k0 > 0);
                }
            }
        }
    }
    free(pack);
}

void edge_fill_table_bf16_avx512(edge_kernel_table *t) {
    t->matmul_bf16_native = matmul_bf16_native;
}

// ---- int8 x int8 ----------------------------------------------------------------------------

/// Writes y[t*ldy + r] = ((float)isum[t][r] * ws[r]) * xs[t] for the tile (r < nr lanes of each s).
AVX512_INLINE void store_q8q8(__m128i s, int nr, const float *ws, float xs, float *y) {
    __mmask8 m = (__mmask8)((1u << nr) - 1);
    __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(s), _mm_maskz_loadu_ps(m, ws)), _mm_set1_ps(xs));
    _mm_mask_storeu_ps(y, m, v);
}

/// VNNI tile: vpdpbusd multiplies unsigned by signed bytes, so activations go in as x + 128
/// (x ^ 0x80) and the sum is corrected by 128 * sum(w) per row (wsum, computed once per row block).
VNNI_INLINE void tile_q8q8_vnni(const int mt, const int nr, const int8_t *w, const int8_t *x, size_t cols,
                                const int32_t *wsum, const float *ws, const float *xs, float *y, size_t ldy) {
    __m512i acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm512_setzero_si512();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (size_t k = 0; k < cols; k += 64) {
        __mmask64 m = mask64(cols - k);  // masked-off weights are 0, so the biased activations there add nothing
        __m512i wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm512_maskz_loadu_epi8(m, w + r * cols + k);
        for (int t = 0; t < mt; t++) {
            __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + t * cols + k), bias);
            for (int r = 0; r < nr; r++) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], xv, wv[r]);
        }
    }
    __m512i z = _mm512_setzero_si512();
    __m128i corr = _mm_slli_epi32(_mm_maskz_loadu_epi32((__mmask8)((1u << nr) - 1), wsum), 7);
    for (int t = 0; t < mt; t++) {
        __m128i s = hsum4_epi32(acc[t][0], nr > 1 ? acc[t][1] : z, nr > 2 ? acc[t][2] : z, nr > 3 ? acc[t][3] : z);
        store_q8q8(_mm_sub_epi32(s, corr), nr, ws, xs[t], y + t * ldy);
    }
}

/// AVX-512BW tile without VNNI: bytes widened to int16, vpmaddwd, exact int32 sums.
AVX512_INLINE void tile_q8q8_bw(const int mt, const int nr, const int8_t *w, const int8_t *x, size_t cols,
                                const float *ws, const float *xs, float *y, size_t ldy) {
    __m512i acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = _mm512_setzero_si512();
    for (size_t k = 0; k < cols; k += 32) {
        __mmask32 m = cols - k >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << (cols - k)) - 1);
        __m512i wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, w + r * cols + k));
        for (int t = 0; t < mt; t++) {
            __m512i xv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, x + t * cols + k));
            for (int r = 0; r < nr; r++) acc[t][r] = _mm512_add_epi32(acc[t][r], _mm512_madd_epi16(wv[r], xv));
        }
    }
    __m512i z = _mm512_setzero_si512();
    for (int t = 0; t < mt; t++) {
        __m128i s = hsum4_epi32(acc[t][0], nr > 1 ? acc[t][1] : z, nr > 2 ? acc[t][2] : z, nr > 3 ? acc[t][3] : z);
        store_q8q8(s, nr, ws, xs[t], y + t * ldy);
    }
}

static VNNI void matmul_q8_q8_vnni(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                                   size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (size_t r = r0; r < r1; r += NR) {
        int nr = r1 - r < NR ? (int)(r1 - r) : NR;
        const int8_t *w = Wq + r * cols;
        int32_t wsum[NR] = {0};
        for (int i = 0; i < nr; i++) {
            __m512i s = _mm512_setzero_si512();
            for (size_t k = 0; k < cols; k += 64)
                s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(mask64(cols - k), w + i * cols + k));
            wsum[i] = _mm512_reduce_add_epi32(s);
        }
        for (size_t t = 0; t < T; t += MT) {
            int mt = T - t < MT ? (int)(T - t) : MT;
#define CALL(a, b) \
    case (a) * 8 + (b): tile_q8q8_vnni(a, b, w, Xq + t * cols, cols, wsum, wscale + r, xscale + t, Y + t * rows + r, rows); break;
            switch (mt * 8 + nr) { EDGE_TILES_4X4(CALL) }
#undef CALL
        }
    }
}

static AVX512 void matmul_q8_q8_bw(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                                   size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += NR) {
        int nr = r1 - r < NR ? (int)(r1 - r) : NR;
        const int8_t *w = Wq + r * cols;
        for (size_t t = 0; t < T; t += MT) {
            int mt = T - t < MT ? (int)(T - t) : MT;
#define CALL(a, b) \
    case (a) * 8 + (b): tile_q8q8_bw(a, b, w, Xq + t * cols, cols, wscale + r, xscale + t, Y + t * rows + r, rows); break;
            switch (mt * 8 + nr) { EDGE_TILES_4X4(CALL) }
#undef CALL
        }
    }
}

// ---- int8 weights x int16 activations -------------------------------------------------------
// The products of edge_matmul_q8_i16 in two forms, from avx512_i16.h included
// twice: VNNI (vpdpwssd) and AVX-512BW (vpmaddwd + vpaddd), chosen with the int8 x int8 one. Many
// tokens (q8): the weights packed per block of 256 columns into panels of 32 rows of int16 pairs
// ([k/2][32][2], 64-byte aligned), so a 12-token x 32-row tile keeps 24 int32 accumulators (two zmm
// of 16 rows per token) and does 24 dot products per 2 panel loads + 12 activation-pair broadcasts;
// each block's exact int32 sums are folded into Y as fmaf((float)sum, block scale, y), the weight
// row scale after the last block: edge_matmul_q8_i16_ref's order. Up to 4 tokens (decoding): each
// weight row streamed once, 64 bytes per step. q4 x int16 keeps AVX2's kernel.

enum { I16_PMT = 12, I16_PNR = 32, I16_ROW_MT = 4 };

/// The first n (0...32) lanes.
static inline __mmask32 mask32(size_t n) { return n >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n) - 1); }

/// The int16 pair p[0], p[1] as one int32 (for a broadcast).
static inline int32_t load_pair(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/// acc + the dot products of the int16 pairs of a and b in each int32 lane.
#define I16_DP(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
#define I16_FN(name) name##_vnni
#define I16_ATTR VNNI
#define I16_INLINE VNNI_INLINE
#include "avx512_i16.h"
#undef I16_DP
#undef I16_FN
#undef I16_ATTR
#undef I16_INLINE
#define I16_DP(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
#define I16_FN(name) name##_bw
#define I16_ATTR AVX512
#define I16_INLINE AVX512_INLINE
#include "avx512_i16.h"
#undef I16_DP
#undef I16_FN
#undef I16_ATTR
#undef I16_INLINE

// ---- q4 weights x int8 activations (decoding) ------------------------------------------------
// edge_matmul_q4_q8b32's rows from avx512_q4q8.h included twice: VNNI (vpdpbusd) and AVX-512BW
// (vpmaddubsw + vpaddw + vpmaddwd), chosen with the other integer kernels.

/// acc + the byte dot products of (lo, xe) and (hi, xo) in each int32 lane.
#define Q4_DP2(acc, lo, xe, hi, xo) _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, lo, xe), hi, xo)
#define Q4_FN(name) name##_vnni
#define Q4_ATTR VNNI
#define Q4_INLINE VNNI_INLINE
#include "avx512_q4q8.h"
#undef Q4_DP2
#undef Q4_FN
#undef Q4_ATTR
#undef Q4_INLINE
#define Q4_DP2(acc, lo, xe, hi, xo) \
    _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_add_epi16(_mm512_maddubs_epi16(lo, xe), _mm512_maddubs_epi16(hi, xo)), \
                                            _mm512_set1_epi16(1)))
#define Q4_FN(name) name##_bw
#define Q4_ATTR AVX512
#define Q4_INLINE AVX512_INLINE
#include "avx512_q4q8.h"
#undef Q4_DP2
#undef Q4_FN
#undef Q4_ATTR
#undef Q4_INLINE

// ---- q4 and q4k weights x int16 activations, one token (decoding): byte dot products (VNNI) ------
// edge_matmul_q4_i16 / edge_matmul_q4k_i16 for one token, groups of 32 or 64 and a multiple of 64
// columns (SmolLM2's decoding products); every other call goes to AVX2's kernels (kept from the table
// before this level's entries replace it). Each int16 activation is split once per call into
// x = 256 h + l (h = x >> 8 signed, l = x & 255 unsigned), stored per 128 columns as four 64-byte
// planes, [l, h] of the even columns then [l, h] of the odd ones: byte i of a plane belongs to column
// 2i (even) or 2i + 1 (odd), as byte i of the row's nibbles holds column 2i in its low nibble and
// 2i + 1 in its high one. Per 128 columns one 64-byte load gives the nibbles u as two byte vectors
// (low: even columns, high: odd), and four vpdpbusd give, in int32 lane k (columns 8k..8k+7 of the
// 128), H_k = sum of u h (u the unsigned operand) and L_k = sum of l u (l unsigned, u signed, 0...15):
// 256 H_k + L_k is the exact sum of u x over the lane's eight columns (at most 3.9e6 in magnitude).
// Lanes 0-7 are then the reference's s_l of the first 64 columns and lanes 8-15 of the second; q4
// takes off z times the lane's activation sum (int32, exact); each half is folded into the eight
// float lanes as the reference does, fmaf((float)s_l, d_l, a_l), the first half before the second,
// with d_l = the lane's group scale (q4: f16(scale) * xs; q4k: d_g * xs) brought to its lanes by one
// permute; two rows per pass share the activation loads. The per-row work around it (q4k's d_g and m_g,
// its min term, the final sum) and the driver are q4b_driver.h's, shared with AVX2's byte form.
// Bit-identical to the reference.

/// The AVX2 table's q4 / q4k int16 kernels, for the calls the byte kernel does not take (set before
/// this level's entries overwrite them; the same functions in every table).
static void (*s_avx2_q4_i16)(const uint8_t *, const uint16_t *, const uint8_t *, size_t, const int16_t *, const float *,
                             float *, size_t, size_t, size_t, size_t, size_t);
static void (*s_avx2_q4k_i16)(const uint8_t *, const uint8_t *, const uint16_t *, size_t, size_t, const int16_t *,
                              const float *, float *, size_t, size_t, size_t, size_t, size_t);

/// [l, h] planes of the even and the odd columns of x[0 ..< cols] (cols a multiple of 64), 256 bytes
/// per 128 columns (a last half block fills the first 32 bytes of each plane); with xl, the sums of x
/// over each int32 lane's eight columns, 16 per 128 columns.
static VNNI void q4b_planes(const int16_t *x, size_t cols, uint8_t *pl, int32_t *xl) {
    for (size_t c = 0; c < cols; c += 32) {
        __m512i v = _mm512_loadu_si512((const void *)(x + c));  // dword i: columns c + 2i, c + 2i + 1
        uint8_t *d = pl + (c / 128) * 256 + (c % 128) / 2;
        _mm_storeu_si128((__m128i *)d, _mm512_cvtepi32_epi8(v));                                  // l even
        _mm_storeu_si128((__m128i *)(d + 64), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8)));    // h even
        _mm_storeu_si128((__m128i *)(d + 128), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 16)));  // l odd
        _mm_storeu_si128((__m128i *)(d + 192), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 24)));  // h odd
        if (xl) {  // four lanes of eight columns: pairs summed, then pairs of pairs, then once more
            __m512i s = _mm512_madd_epi16(v, _mm512_set1_epi16(1));
            __m128i q0 = _mm512_castsi512_si128(s), q1 = _mm512_extracti32x4_epi32(s, 1);
            __m128i q2 = _mm512_extracti32x4_epi32(s, 2), q3 = _mm512_extracti32x4_epi32(s, 3);
            __m128i h = _mm_hadd_epi32(_mm_hadd_epi32(q0, q1), _mm_hadd_epi32(q2, q3));
            _mm_storeu_si128((__m128i *)(xl + (c / 128) * 16 + (c % 128) / 8), h);
        }
    }
}

/// n (1...4) binary16 values from p as floats in the low lanes (the rest 0).
AVX512_INLINE __m128 q4b_load_f16(const uint16_t *p, size_t n) {
    uint64_t v;
    if (n == 4) memcpy(&v, p, 8);
    else if (n == 2) {
        uint32_t h;
        memcpy(&h, p, 4);
        v = h;
    } else v = p[0];
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/// n (1, 2 or 4) bytes from p in the low bytes of an int32 (the rest 0).
AVX512_INLINE int q4b_load_bytes(const uint8_t *p, size_t n) {
    uint32_t v;
    if (n == 4) memcpy(&v, p, 4);
    else if (n == 2) {
        uint16_t h;
        memcpy(&h, p, 2);
        v = h;
    } else v = p[0];
    return (int)v;
}

/// Block j (128 columns; half: the row's last 64, alone in their block) of rows r ..< r + NR into
/// their float lanes a[i] (see above); the activation planes loaded once for the NR rows.
VNNI_INLINE void q4b_block(const size_t NR, const bool half, const bool k4, const bool two, const edge_q4x *w,
                           const uint8_t *q0, size_t row_bytes, size_t groups, size_t j, const uint8_t *pl,
                           const int32_t *xl, const float *dm, size_t Gp, const float *xscale, size_t r, __m256 *a) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    // Lane k's group within the block: k / 4 for groups of 32, k / 8 for 64.
    const __m512i gidx = two ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                             : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const size_t per = two ? 4 : 2, g0 = per * j, n = half ? per / 2 : per;  // the block's first group, its groups
    const uint8_t *x = pl + 256 * j;
    __m512i le = _mm512_loadu_si512((const void *)x), he = _mm512_loadu_si512((const void *)(x + 64));
    __m512i lo_ = _mm512_loadu_si512((const void *)(x + 128)), ho = _mm512_loadu_si512((const void *)(x + 192));
    __m128 xs = _mm_set1_ps(xscale[128 * j / EDGE_I16_BLOCK]);
    for (size_t i = 0; i < NR; i++) {
        const uint8_t *q = q0 + i * row_bytes + 64 * j;
        __m512i v = half ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, q) : _mm512_loadu_si512((const void *)q);
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        __m512i H = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, he), hi, ho);
        __m512i L = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), le, lo), lo_, hi);
        __m512i S = _mm512_add_epi32(_mm512_slli_epi32(H, 8), L);
        __m128 d4;
        if (k4) {
            const float *gd = dm + 2 * i * Gp + g0;
            d4 = _mm_mul_ps(n == 4 ? _mm_loadu_ps(gd) : n == 2 ? _mm_castpd_ps(_mm_load_sd((const double *)gd)) : _mm_load_ss(gd), xs);
        } else {
            size_t gi = (r + i) * groups + g0;
            __m512i z = w->zero ? _mm512_permutexvar_epi32(gidx, _mm512_cvtepu8_epi32(_mm_cvtsi32_si128(q4b_load_bytes(w->zero + gi, n))))
                                : _mm512_set1_epi32(8);
            S = _mm512_sub_epi32(S, _mm512_mullo_epi32(z, _mm512_loadu_si512((const void *)(xl + 16 * j))));
            d4 = _mm_mul_ps(q4b_load_f16(w->scale_f16 + gi, n), xs);
        }
        __m512 D = _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(d4));
        __m512 Sf = _mm512_cvtepi32_ps(S);
        a[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(Sf), _mm512_castps512_ps256(D), a[i]);
        if (!half)
            a[i] = _mm256_fmadd_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(Sf), 1)),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(D), 1)), a[i]);
    }
}

/// Every block of rows r ..< r + NR into their float lanes a[i], the last half block apart
/// (q4b_driver.h's q4b_pass calls it).
VNNI_INLINE void q4b_span(const size_t NR, const bool k4, const bool two, const edge_q4x *w, const uint8_t *q0,
                          size_t row_bytes, size_t groups, size_t cols, const uint8_t *pl, const int32_t *xl, const float *dm,
                          size_t Gp, const float *xscale, size_t r, __m256 *a) {
    size_t full = cols / 128;
    for (size_t j = 0; j < full; j++) q4b_block(NR, false, k4, two, w, q0, row_bytes, groups, j, pl, xl, dm, Gp, xscale, r, a);
    if (cols % 128) q4b_block(NR, true, k4, two, w, q0, row_bytes, groups, full, pl, xl, dm, Gp, xscale, r, a);
}

#define Q4B_ATTR VNNI
#define Q4B_INLINE VNNI_INLINE
#include "q4b_driver.h"
#undef Q4B_ATTR
#undef Q4B_INLINE

static VNNI void matmul_q4_i16_bytes(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                                     const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                     size_t r0, size_t r1) {
    if (!q4b_takes(T, gs, cols)) {
        s_avx2_q4_i16(Wq, scale_f16, zero, gs, Xq, xscale, Y, T, rows, cols, r0, r1);
        return;
    }
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    q4b_matmul(&w, Xq, xscale, Y, rows, cols, r0, r1);
}

static VNNI void matmul_q4k_i16_bytes(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs,
                                      size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T,
                                      size_t rows, size_t cols, size_t r0, size_t r1) {
    if (!q4b_takes(T, gs, cols) || !edge_q4k_i16_supported(gs, sub_bits)) {
        s_avx2_q4k_i16(Wq, sub, super_f16, gs, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
        return;
    }
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    q4b_matmul(&w, Xq, xscale, Y, rows, cols, r0, r1);
}

static AVX512 void quantize_row_q8(const float *x, int8_t *xq, float *xscale, size_t n) {
    __m512 vmax = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16)
        vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mask16(n - i), x + i)), vmax);  // NaN ignored
    float amax = _mm512_reduce_max_ps(vmax);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vid),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_max_ps(_mm512_min_ps(hi, v), lo);  // operand order sends NaN to -127, as the reference does
        _mm512_mask_cvtsepi32_storeu_epi8(xq + i, m, _mm512_cvtps_epi32(v));
    }
    *xscale = d;
}

// ---- Element-wise ---------------------------------------------------------------------------

/// exp(x) to ~2 ulp for x in [-87.3, 88]; above: exp(88); below (and -Inf): 0; NaN: NaN.
AVX512_INLINE __m512 exp512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.33654f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);  // below-range lanes -> 0, NaN stays NaN
    x = _mm512_max_ps(lo, _mm512_min_ps(hi, x));  // this operand order lets NaN through
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, p, _mm512_castsi512_ps(e));
}

static AVX512 float dot_f32(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static AVX512 void scale_f32(float *x, float s, size_t n) {
    __m512 vs = _mm512_set1_ps(s);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
    }
}

static AVX512 void rmsnorm(const float *x, const float *w, float *out, size_t n, float eps) {
    float ss = dot_f32(x, x, n);
    __m512 vi = _mm512_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vi));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

static AVX512 void layernorm(const float *x, const float *w, const float *b, float *out, size_t n, float eps) {
    __m512 s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mask16(n - i), x + i));
    float mean = _mm512_reduce_add_ps(s) / (float)n;
    __m512 vm = _mm512_set1_ps(mean);
    s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
        s = _mm512_fmadd_ps(d, d, s);
    }
    __m512 vi = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(s) / (float)n + eps));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vi);
        __m512 v = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

static AVX512 void softmax(float *x, size_t n) {
    if (n == 0) return;
    __m512 vm = _mm512_set1_ps(x[0]);
    for (size_t i = 0; i < n; i += 16) vm = _mm512_mask_max_ps(vm, mask16(n - i), vm, _mm512_maskz_loadu_ps(mask16(n - i), x + i));
    vm = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    __m512 vs = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, e);
        vs = _mm512_add_ps(vs, e);
    }
    scale_f32(x, 1.0f / _mm512_reduce_add_ps(vs), n);
}

/// x / (1 + exp(-a)), i.e. x * sigmoid(a).
AVX512_INLINE __m512 mul_sigmoid(__m512 x, __m512 a) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), a));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static AVX512 void gelu_tanh(float *x, size_t n) {
    // 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
    const __m512 k2 = _mm512_set1_ps(2.0f * 0.7978845608028654f), c = _mm512_set1_ps(0.044715f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 a = _mm512_mul_ps(k2, _mm512_fmadd_ps(_mm512_mul_ps(c, v), _mm512_mul_ps(v, v), v));
        _mm512_mask_storeu_ps(x + i, m, mul_sigmoid(v, a));
    }
}

static AVX512 void silu_mul(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(mul_sigmoid(g, g), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

static AVX512 void add_f32(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(a + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
    }
}

static AVX512 void axpy_f32(float *y, float a, const float *x, size_t n) {
    __m512 va = _mm512_set1_ps(a);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void edge_fill_table_avx512(edge_kernel_table *t, bool vnni) {
    t->level = EDGE_KERNELS_AVX512;
    t->vnni = vnni;
    t->gemm = &k_gemm_avx512;  // matmul_q8_q8b32 and quantize_rows_i16 stay AVX2's (t starts as AVX2's table)
    t->quantize_row_q8 = quantize_row_q8;
    t->matmul_q8_q8 = vnni ? matmul_q8_q8_vnni : matmul_q8_q8_bw;
    t->q8_q8_name = vnni ? "avx512-vnni-q8q8-4x4" : "avx512-bw-q8q8-4x4";
    t->matmul_q8_i16 = vnni ? matmul_q8_i16_vnni : matmul_q8_i16_bw;
    t->q8_i16_name = vnni ? "avx512-vnni-packed-i16-12x32" : "avx512-bw-packed-i16-12x32";
    t->q8_i16_rows_name = vnni ? "avx512-vnni-rows-i16-4x1" : "avx512-bw-rows-i16-4x1";
    t->i16_rows_max_t = I16_ROW_MT;
    if (vnni) {  // one token on vpdpbusd; other calls on AVX2's kernels, kept here (their multi names stay)
        if (!s_avx2_q4_i16) s_avx2_q4_i16 = t->matmul_q4_i16, s_avx2_q4k_i16 = t->matmul_q4k_i16;
        t->matmul_q4_i16 = matmul_q4_i16_bytes;
        t->q4_i16_name = "avx512-vnni-bytes-q4i16-1x2";
        t->matmul_q4k_i16 = matmul_q4k_i16_bytes;
        t->q4k_i16_name = "avx512-vnni-bytes-q4ki16-1x2";
    }
    t->gemm_q4_i16 = vnni ? gemm_q4_i16_vnni : gemm_q4_i16_bw;
    t->gemm_q4_i16_name = vnni ? "avx512-vnni-packed-q4i16-12x32" : "avx512-bw-packed-q4i16-12x32";
    t->gemm_q4k_i16 = vnni ? gemm_q4k_i16_vnni : gemm_q4k_i16_bw;
    t->gemm_q4k_i16_name = vnni ? "avx512-vnni-packed-q4ki16-12x32" : "avx512-bw-packed-q4ki16-12x32";
    t->matmul_q4_q8b32 = vnni ? matmul_q4_q8b32_vnni : matmul_q4_q8b32_bw;
    t->q4_q8b32_name = vnni ? "avx512-vnni-rows-q4q8b32-4x1" : "avx512-bw-rows-q4q8b32-4x1";
    t->matmul_q4k_q8b32 = vnni ? matmul_q4k_q8b32_vnni : matmul_q4k_q8b32_bw;
    t->q4k_q8b32_name = vnni ? "avx512-vnni-rows-q4kq8b32-4x1" : "avx512-bw-rows-q4kq8b32-4x1";
    t->rmsnorm = rmsnorm;
    t->layernorm = layernorm;
    t->softmax = softmax;
    t->gelu_tanh = gelu_tanh;
    t->silu_mul = silu_mul;
    t->add = add_f32;
    t->axpy = axpy_f32;
    t->scale = scale_f32;
    t->dot_f32 = dot_f32;
}
#endif
