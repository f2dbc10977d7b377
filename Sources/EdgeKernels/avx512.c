// AVX-512 kernels (x86-64): F + BW + VL everywhere, VNNI (vpdpbusd) for int8 x int8 where present.
// Every function carries its own target attribute, so the file builds with the default flags and
// runs only where dispatch.c found the features (and the OS saving the ZMM/opmask state).
//
// Same structure as avx2.c: MT tokens x NR rows of 16-lane partial dot products per tile,
// masked loads for the column tail, EDGE_KC column blocks, non-f32 weights dequantized one
// NR x EDGE_KC block at a time into an L1 buffer shared by every token.
#if defined(__x86_64__)
#include "dispatch.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define VNNI_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

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
        TILE_CASE(4, 4) TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 4) TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 4) TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 4) TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)
    }
}
#undef TILE_CASE

// ---- Weight sources and their dequantization to f32 ----------------------------------------

enum wkind { W_F32, W_F16, W_Q8, W_Q4 };

/// Where a GEMM's weights come from and how to turn them into f32.
typedef struct {
    enum wkind kind;
    const void *W;
    const float *scale;        // q8: per row
    const uint16_t *scale_f16; // q4: per (row, group)
    const uint8_t *zero;       // q8: per row / q4: per (row, group); NULL = symmetric
    size_t group_size, groups, row_bytes;
} wsource;

/// dst[0..kc) = f32 weights of row r, columns [k0, k0 + kc).
static AVX512 void dequant_row(const wsource *s, size_t cols, size_t r, size_t k0, size_t kc, float *dst) {
    switch (s->kind) {
    case W_F32: break;
    case W_F16: {
        const uint16_t *src = (const uint16_t *)s->W + r * cols + k0;
        for (size_t i = 0; i < kc; i += 16) {
            __mmask16 m = mask16(kc - i);
            _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
        }
        break;
    }
    case W_Q8: {
        const uint8_t *src = (const uint8_t *)s->W + r * cols + k0;
        __m512 vs = _mm512_set1_ps(s->scale[r]);
        if (s->zero) {
            __m512i vz = _mm512_set1_epi32(s->zero[r]);
            for (size_t i = 0; i < kc; i += 16) {
                __mmask16 m = mask16(kc - i);
                __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src + i)), vz);
                _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
            }
        } else {
            for (size_t i = 0; i < kc; i += 16) {
                __mmask16 m = mask16(kc - i);
                __m512i q = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, src + i));
                _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
            }
        }
        break;
    }
    case W_Q4: {
        const uint8_t *row = (const uint8_t *)s->W + r * s->row_bytes;
        const __m128i lo4 = _mm_set1_epi8(0x0F);
        size_t end = k0 + kc;
        for (size_t j = k0; j < end;) {
            size_t g = j / s->group_size;
            size_t ge = (g + 1) * s->group_size;
            if (ge > end) ge = end;
            size_t gi = r * s->groups + g;
            float sc = edge_f16_to_f32(s->scale_f16[gi]);
            int z = s->zero ? (int)s->zero[gi] : 8;
            __m512 vs = _mm512_set1_ps(sc);
            __m512i vz = _mm512_set1_epi32(z);
            if ((j & 1) && j < ge) { dst[j - k0] = sc * (float)((int)edge_q4_nibble(row, j) - z); j++; }
            for (; j + 16 <= ge; j += 16) {  // j even: 16 nibbles = 8 whole bytes
                __m128i b = _mm_loadl_epi64((const __m128i *)(row + j / 2));
                __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, lo4), _mm_and_si128(_mm_srli_epi16(b, 4), lo4));
                __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(u), vz);
                _mm512_storeu_ps(dst + (j - k0), _mm512_mul_ps(vs, _mm512_cvtepi32_ps(q)));
            }
            for (; j < ge; j++) dst[j - k0] = sc * (float)((int)edge_q4_nibble(row, j) - z);
        }
        break;
    }
    }
}

/// The blocked GEMM over any weight source: column blocks outside, NR-row blocks (dequantized into
/// an L1 buffer) in the middle, MT-token tiles inside.
static AVX512 void gemm(const wsource *s, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    if (cols == 0) {
        for (size_t t = 0; t < T; t++) memset(Y + t * rows + r0, 0, (r1 - r0) * sizeof(float));
        return;
    }
    float buf[NR * EDGE_KC];
    size_t kstep = edge_column_block(cols);
    for (size_t k0 = 0; k0 < cols; k0 += kstep) {
        size_t kc = cols - k0 < kstep ? cols - k0 : kstep;
        for (size_t r = r0; r < r1; r += NR) {
            int nr = r1 - r < NR ? (int)(r1 - r) : NR;
            const float *w;
            size_t ldw;
            if (s->kind == W_F32) {
                w = (const float *)s->W + r * cols + k0;
                ldw = cols;
            } else {
                for (int i = 0; i < nr; i++) dequant_row(s, cols, r + i, k0, kc, buf + i * EDGE_KC);
                w = buf;
                ldw = EDGE_KC;
            }
            for (size_t t = 0; t < T; t += MT) {
                int mt = T - t < MT ? (int)(T - t) : MT;
                tile_f32_any(mt, nr, w, ldw, X + t * cols + k0, cols, Y + t * rows + r, rows, kc, k0 > 0);
            }
        }
    }
}

static AVX512 void matmul_f32(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    wsource s = {.kind = W_F32, .W = W};
    gemm(&s, X, Y, T, rows, cols, r0, r1);
}

static AVX512 void matmul_f16(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    wsource s = {.kind = W_F16, .W = W};
    gemm(&s, X, Y, T, rows, cols, r0, r1);
}

static AVX512 void matmul_q8_f32(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                                 size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    wsource s = {.kind = W_Q8, .W = Wq, .scale = scale, .zero = zero};
    gemm(&s, X, Y, T, rows, cols, r0, r1);
}

static AVX512 void matmul_q4_f32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                                 const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (group_size == 0) return;
    wsource s = {.kind = W_Q4, .W = Wq, .scale_f16 = scale_f16, .zero = zero, .group_size = group_size,
                 .groups = (cols + group_size - 1) / group_size, .row_bytes = (cols + 1) / 2};
    gemm(&s, X, Y, T, rows, cols, r0, r1);
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

#define Q_CASES(CALL)                                                                                      \
    CALL(4, 4) CALL(4, 3) CALL(4, 2) CALL(4, 1) CALL(3, 4) CALL(3, 3) CALL(3, 2) CALL(3, 1) CALL(2, 4) CALL(2, 3) \
    CALL(2, 2) CALL(2, 1) CALL(1, 4) CALL(1, 3) CALL(1, 2) CALL(1, 1)

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
            switch (mt * 8 + nr) { Q_CASES(CALL) }
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
            switch (mt * 8 + nr) { Q_CASES(CALL) }
#undef CALL
        }
    }
}
#undef Q_CASES

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
    t->matmul_f32 = matmul_f32;
    t->matmul_f16 = matmul_f16;
    t->matmul_q8_f32 = matmul_q8_f32;
    t->quantize_row_q8 = quantize_row_q8;
    t->matmul_q8_q8 = vnni ? matmul_q8_q8_vnni : matmul_q8_q8_bw;
    t->matmul_q4_f32 = matmul_q4_f32;
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
