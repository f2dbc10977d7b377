// AVX-512 sparse kernels (x86-64): the bitmask and packed 2:4 q8 x int16 decoding products on
// AVX512_VBMI2. Per 64 columns, `vpexpandb` places the next popcount(mask) stored values at their
// columns in one instruction (2:4: the mask made from 8 index bytes by two byte shuffles; the AVX2
// kernels need a table lookup, a shuffle and a widening per 16 columns): one cross-lane operation per
// 64 weights. With VNNI the expanded bytes meet the activations as bytes (`vpdpbusd` against their
// low and high byte planes; one token: four bitmask rows (two 2:4 rows) per pass, 16 rows' sums reduced together); without
// it, as int16 words by two shifts (even columns) and one (odd columns) against activations split
// even/odd per 64 columns (`vpmaddwd`). Also the bitmask row expansion
// of the many-token path (dispatch.c). Every function carries its own target attribute, so the file
// builds with the default flags and runs only where dispatch.c found the features.
//
// Built with EDGE_AVX512_EMULATED (scripts/test-avx512-emulated.sh only), the intrinsics come from
// SIMDe plus scripts/avx512-emulation/avx512_emulation.h, so the logic is tested on any AVX2 CPU.
#if defined(__x86_64__)
#include "dispatch.h"
#include <math.h>
#include <string.h>
#if defined(EDGE_AVX512_EMULATED)
#include "avx512_emulation.h"
#define VBMI2
#define VBMI2_INLINE static inline
#define VNNI
#define VNNI_INLINE static inline
#else
#include <immintrin.h>
#define VBMI2 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi2,avx2,fma,f16c,popcnt,bmi2")))
#define VBMI2_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vbmi2,avx2,fma,f16c,popcnt,bmi2")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi2,avx512vnni,avx2,fma,f16c,popcnt,bmi2")))
#define VNNI_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vbmi2,avx512vnni,avx2,fma,f16c,popcnt,bmi2")))
#endif

enum { BM512_MT = 4, BM512_XMAX = 16384, BM512_NB = BM512_XMAX / BM512_MT / EDGE_I16_BLOCK };

/// Bits [0, n) set (n <= 64).
static inline uint64_t low_bits(size_t n) { return n >= 64 ? ~0ULL : (1ULL << n) - 1; }

/// The mask (or index) bytes of the `n` rows 8 rows ahead of `m` (rows `stride` bytes apart), every
/// line of them: rows of 1536 columns hold three lines of mask each.
static inline void bm512_prefetch_meta(const uint8_t *m, size_t stride, size_t n, const uint8_t *end) {
    const uint8_t *q = m + 8 * stride, *stop = q + n * stride;
    if (stop > end) stop = end;
    for (q = (const uint8_t *)((uintptr_t)q & ~(uintptr_t)63); q < stop; q += 64) __builtin_prefetch(q, 0, 1);
}

/// The products read the expanded weights as 32 int16 words per 64 columns without widening them:
/// the low byte of word i is column 2i (sign-extended by shifting left then right by 8), the high
/// byte column 2i+1 (shifted right by 8). So the activations are laid out to match, per 64-column
/// chunk c: xe[c*64 + i] = x[64c + 2i], xe[c*64 + 32 + i] = x[64c + 2i + 1], zero past the last column.
static void bm512_split_even_odd(const int16_t *x, size_t cols, int16_t *xe) {
    size_t chunks = (cols + 63) / 64;
    for (size_t c = 0; c < chunks; c++)
        for (size_t i = 0; i < 32; i++) {
            size_t k = 64 * c + 2 * i;
            xe[c * 64 + i] = k < cols ? x[k] : 0;
            xe[c * 64 + 32 + i] = k + 1 < cols ? x[k + 1] : 0;
        }
}

/// The mask bits of columns k..k1 (k a multiple of 64, k1 - k <= 64) of a packed 2:4 row with index
/// bytes `id`, and how many values they hold: 64 whole columns from 8 index bytes with two byte
/// shuffles (the indices of a group are strictly increasing, so the values are in column order and
/// the bits place them); fewer (the row's end) slot by slot.
VBMI2_INLINE uint64_t nm24_bits(const uint8_t *id, size_t k, size_t k1, size_t slots, size_t *count) {
    if (k1 - k == 64) {
        const __m128i lut = _mm_loadu_si128((const __m128i *)edge_nm24_nibble_bits), low = _mm_set1_epi8(0x0F);
        __m128i ib = _mm_loadl_epi64((const __m128i *)(id + k / 8));
        __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(ib, low));
        __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(ib, 4), low));
        *count = 32;
        return (uint64_t)_mm_cvtsi128_si64(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
    }
    uint64_t bits = 0;
    size_t c = 0;
    for (size_t sl = k / 2; sl < slots && (sl / 2) * 4 < k1; sl++, c++)
        bits |= 1ULL << ((sl / 2) * 4 + ((id[sl / 4] >> (2 * (sl % 4))) & 3) - k);
    *count = c;
    return bits;
}

/// The bitmask bytes of `bytes` index bytes of packed 2:4 rows (each byte two groups: its low nibble's
/// two 2-bit indices make the low 4 mask bits, its high nibble's the high 4), 64 at a time: what
/// nm24_bits makes for one 64-column step, for whole rows at once, so that the two-row pass reads
/// them as a bitmask row's (every whole step of a 2:4 row then holds exactly 32 values).
VBMI2_INLINE void nm24_row_masks(const uint8_t *id, size_t bytes, uint8_t *out) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)edge_nm24_nibble_bits)), low = _mm512_set1_epi8(0x0F);
    for (size_t i = 0; i < bytes; i += 64) {
        __mmask64 keep = (__mmask64)low_bits(bytes - i);
        __m512i ib = _mm512_maskz_loadu_epi8(keep, id + i);
        __m512i lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(ib, low));
        __m512i hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(ib, 4), low));
        _mm512_mask_storeu_epi8(out + i, keep, _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)));
    }
}

/// The mask bits of columns k..k+n (n <= 64, k a multiple of 64: its mask bits start a byte) of a
/// bitmask row (nm = 0; only the mask bytes of those columns are read) or packed 2:4 row (nm = 1,
/// nm24_bits), and in *count how many stored values they hold.
VBMI2_INLINE uint64_t bm512_step_bits(const int nm, const uint8_t *m, size_t k, size_t n, size_t slots, size_t *count) {
    if (nm) return nm24_bits(m, k, k + n, slots, count);
    uint64_t bits = 0;
    if (n == 64) memcpy(&bits, m + k / 8, 8);
    else {
        memcpy(&bits, m + k / 8, (n + 7) / 8);
        bits &= low_bits(n);
    }
    *count = (size_t)__builtin_popcountll(bits);
    return bits;
}

/// acc = fmaf((float)s_b, xscale[b], acc) for b = 0..nb in order, s_b the sum of the 8 int32 lanes of
/// part[b] (exact), less 32768 hsum[b] where `hsum` is given (the byte form: 32-bit wrap-around, the
/// result fits): four blocks' sums at a time by a tree of horizontal adds, not one reduction each.
VBMI2_INLINE float bm512_fold(const __m256i *part, const float *xscale, const int32_t *hsum, size_t nb) {
    float acc = 0;
    for (size_t b = 0; b < nb; b += 4) {
        __m256i p[4];
        for (size_t j = 0; j < 4; j++) p[j] = b + j < nb ? part[b + j] : _mm256_setzero_si256();
        __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));  // lane j: block b + j
        uint32_t sums[4];
        _mm_storeu_si128((__m128i *)sums, s4);
        for (size_t j = 0; j < 4 && b + j < nb; j++) {
            uint32_t sb = hsum ? sums[j] - 32768u * (uint32_t)hsum[b + j] : sums[j];
            acc = fmaf((float)(int32_t)sb, xscale[b + j], acc);
        }
    }
    return acc;
}

/// Rows r0..r1 of a bitmask (nm = 0: `meta` the mask, `row_ptr` the row starts) or packed 2:4
/// (nm = 1: `meta` the index bytes) payload for T tokens; T and nm are constants. DP(acc, a, b) adds
/// the int16 pair products of a and b to the int32 lanes of acc (vpdpwssd on VNNI, vpmaddwd +
/// vpaddd otherwise).
#define BM512_ROWS(NAME, INLINE_ATTR, DP)                                                                                   \
    INLINE_ATTR void NAME(const size_t T, const int nm, const uint8_t *meta, const uint32_t *row_ptr, const int8_t *values, \
                          const float *scale, const int16_t *xe, size_t lde, const float *xscale, size_t nb, float *Y,       \
                          size_t rows, size_t cols, size_t r0, size_t r1) {                                                 \
        size_t slots = edge_nm24_slots(cols), stride = nm ? (slots * 2 + 7) / 8 : (cols + 7) / 8;                                \
        const int8_t *vend = values + (nm ? rows * slots : row_ptr[rows]);                                                  \
        for (size_t r = r0; r < r1; r++) {                                                                                  \
            const uint8_t *m = meta + r * stride;                                                                           \
            const int8_t *v = values + (nm ? r * slots : row_ptr[r]);                                                       \
            edge_prefetch_ahead(v, nm ? slots : row_ptr[r + 1] - row_ptr[r], vend);                                         \
            __builtin_prefetch(m + 8 * stride, 0, 1);                                                                       \
            __m256i part[BM512_MT][BM512_NB]; /* each block's lanes folded to 8, summed at the row's end */               \
            for (size_t b = 0; b < nb; b++) {                                                                               \
                size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;               \
                __m512i s0[BM512_MT], s1[BM512_MT];                                                                         \
                for (size_t t = 0; t < T; t++) s0[t] = s1[t] = _mm512_setzero_si512();                                      \
                for (size_t k = k0; k < k1; k += 64) { /* k is a multiple of 64: its mask bits start a byte */              \
                    size_t n = k1 - k < 64 ? k1 - k : 64, c;                                                                \
                    uint64_t bits = bm512_step_bits(nm, m, k, n, slots, &c);                                                \
                    __m512i packed = vend - v >= 64 ? _mm512_loadu_si512((const void *)v)                                   \
                                                    : _mm512_maskz_loadu_epi8((__mmask64)low_bits(c), v);                   \
                    v += c;                                                                                                 \
                    __m512i w = _mm512_maskz_expand_epi8((__mmask64)bits, packed);                                          \
                    __m512i even = _mm512_srai_epi16(_mm512_slli_epi16(w, 8), 8), odd = _mm512_srai_epi16(w, 8);            \
                    for (size_t t = 0; t < T; t++) {                                                                        \
                        const int16_t *x = xe + t * lde + k;                                                                \
                        s0[t] = DP(s0[t], even, _mm512_loadu_si512((const void *)x));                                       \
                        s1[t] = DP(s1[t], odd, _mm512_loadu_si512((const void *)(x + 32)));                                 \
                    }                                                                                                       \
                }                                                                                                           \
                for (size_t t = 0; t < T; t++) {                                                                            \
                    __m512i sum = _mm512_add_epi32(s0[t], s1[t]);                                                           \
                    part[t][b] = _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));           \
                }                                                                                                           \
            }                                                                                                               \
            for (size_t t = 0; t < T; t++) Y[t * rows + r] = bm512_fold(part[t], xscale + t * nb, NULL, nb) * scale[r];          \
        }                                                                                                                   \
    }

#define BM512_DP_BW(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
BM512_ROWS(bm512_rows_bw, VBMI2_INLINE, BM512_DP_BW)

/// The VNNI form works on bytes and needs no shift: each int16 activation is x = 256 h + l (h = x >> 8
/// signed, l = x & 255 unsigned), laid out per token as a plane of l and a plane of h in column order
/// (`xl`, `xh`, zero past the last column). Per 64 columns, after the expansion, one `vpdpbusd` takes
/// the l-plane (unsigned) against the weights (signed), and one takes the weights plus 128 (w xor
/// 0x80, unsigned) against the h-plane (signed). So a block's exact sum is
///     s = 256 (A_h - 128 H) + A_l,     H = the sum of h over the block's columns (`hsum`),
/// computed in 32-bit wrap-around arithmetic: the terms may wrap, the result fits (|s| <= 2^30).
/// Per 64 columns: one expansion, one xor and two dot products, against three shifts and two dot
/// products for the int16 form above.
VNNI_INLINE void bm512_rows_vnni(const size_t T, const int nm, const uint8_t *meta, const uint32_t *row_ptr,
                                 const int8_t *values, const float *scale, const uint8_t *xl, const int8_t *xh, size_t lde,
                                 const float *xscale, const int32_t *hsum, size_t nb, float *Y, size_t rows, size_t cols,
                                 size_t r0, size_t r1) {
    size_t slots = edge_nm24_slots(cols), stride = nm ? (slots * 2 + 7) / 8 : (cols + 7) / 8;
    const int8_t *vend = values + (nm ? rows * slots : row_ptr[rows]);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (size_t rr = r0; rr < r1; rr++) {
        const uint8_t *m = meta + rr * stride;
        const int8_t *v = values + (nm ? rr * slots : row_ptr[rr]);
        edge_prefetch_ahead(v, nm ? slots : row_ptr[rr + 1] - row_ptr[rr], vend);
        __builtin_prefetch(m + 8 * stride, 0, 1);
        __m256i part[BM512_MT][BM512_NB]; /* each block's lanes folded to 8, summed at the row's end */
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
            __m512i ah[BM512_MT], al[BM512_MT];
            for (size_t t = 0; t < T; t++) ah[t] = al[t] = _mm512_setzero_si512();
            for (size_t k = k0; k < k1; k += 64) { /* k is a multiple of 64: its mask bits start a byte */
                size_t n = k1 - k < 64 ? k1 - k : 64, c;
                uint64_t bits = bm512_step_bits(nm, m, k, n, slots, &c);
                __m512i packed = vend - v >= 64 ? _mm512_loadu_si512((const void *)v)
                                                : _mm512_maskz_loadu_epi8((__mmask64)low_bits(c), v);
                v += c;
                __m512i w = _mm512_maskz_expand_epi8((__mmask64)bits, packed);
                __m512i wu = _mm512_xor_si512(w, flip);
                for (size_t t = 0; t < T; t++) {
                    al[t] = _mm512_dpbusd_epi32(al[t], _mm512_loadu_si512((const void *)(xl + t * lde + k)), w);
                    ah[t] = _mm512_dpbusd_epi32(ah[t], wu, _mm512_loadu_si512((const void *)(xh + t * lde + k)));
                }
            }
            for (size_t t = 0; t < T; t++) {
                __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(ah[t], 8), al[t]);
                part[t][b] = _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));
            }
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + rr] = bm512_fold(part[t], xscale + t * nb, hsum + t * nb, nb) * scale[rr];
    }
}

/// The kernels the table held before this file's (AVX2's), for matrices wider than BM512_XMAX allows.
static void (*g_wide)(const uint8_t *, const uint32_t *, const int8_t *, const float *, const int16_t *, const float *,
                      float *, size_t, size_t, size_t, size_t, size_t);
static void (*g_wide_nm24)(const uint8_t *, const int8_t *, const float *, const int16_t *, const float *, float *, size_t,
                           size_t, size_t, size_t, size_t);

/// An entry point's body: the activations split even/odd 4 tokens at a time, then ROWS for each group.
#define BM512_BODY(ROWS, NM, META, ROW_PTR, WIDE)                                                                           \
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, lde = (cols + 63) / 64 * 64;      \
    if (lde * BM512_MT > BM512_XMAX) { /* more than 4096 columns: the level's previous kernel (AVX2's) */                  \
        WIDE;                                                                                                               \
        return;                                                                                                             \
    }                                                                                                                       \
    int16_t xe[BM512_XMAX] __attribute__((aligned(64)));                                                                    \
    for (size_t t = 0; t < T; t += BM512_MT) { /* more tokens: the rows are read once per 4 */                             \
        size_t n = T - t < BM512_MT ? T - t : BM512_MT;                                                                     \
        for (size_t j = 0; j < n; j++) bm512_split_even_odd(Xq + (t + j) * ld, cols, xe + j * lde);                         \
        const float *xs = xscale + t * nb;                                                                                  \
        float *y = Y + t * rows;                                                                                            \
        switch (n) {                                                                                                        \
        case 1: ROWS(1, NM, META, ROW_PTR, values, scale, xe, lde, xs, nb, y, rows, cols, r0, r1); break;                   \
        case 2: ROWS(2, NM, META, ROW_PTR, values, scale, xe, lde, xs, nb, y, rows, cols, r0, r1); break;                   \
        case 3: ROWS(3, NM, META, ROW_PTR, values, scale, xe, lde, xs, nb, y, rows, cols, r0, r1); break;                   \
        default: ROWS(4, NM, META, ROW_PTR, values, scale, xe, lde, xs, nb, y, rows, cols, r0, r1); break;                  \
        }                                                                                                                   \
    }

#define BM512_ENTRIES(SUFFIX, ATTR, ROWS)                                                                                   \
    static ATTR void spmm_bitmask_q8_i16_##SUFFIX(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values,       \
                                                  const float *scale, const int16_t *Xq, const float *xscale, float *Y,     \
                                                  size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {               \
        BM512_BODY(ROWS, 0, mask, row_ptr, g_wide(mask, row_ptr, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1))      \
    }                                                                                                                       \
    static ATTR void spmm_nm24_q8_i16_##SUFFIX(const uint8_t *idx, const int8_t *values, const float *scale,                \
                                               const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,     \
                                               size_t cols, size_t r0, size_t r1) {                                         \
        BM512_BODY(ROWS, 1, idx, NULL, g_wide_nm24(idx, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1))              \
    }

BM512_ENTRIES(vbmi2, VBMI2, bm512_rows_bw)

/// Lane i of the result: the sum of the 16 int32 lanes of v[i] (exact, 32-bit wrap-around), by a
/// transposing tree: 45 operations for 16 rows instead of a reduction of its own for each.
VNNI_INLINE __m512i bm512_reduce16(const __m512i *v) {
    __m512i a[8], b[4], c[2];
    for (int i = 0; i < 8; i++)  // per 128-bit lane: rows 2i, 2i+1, 2i, 2i+1
        a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)  // per 128-bit lane: rows 4i .. 4i+3
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++)  // 128-bit lanes: b[2i] lanes 0+1, 2+3, b[2i+1] lanes 0+1, 2+3
        c[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88), _mm512_shuffle_i32x4(c[0], c[1], 0xDD));
}

/// Columns k0..k1 of one row for one token in the byte form (see bm512_rows_vnni): the row's values
/// from *v on (advanced past those used), its block sum's 16 lanes as 256 A_h + A_l (the 32768 hsum
/// correction comes later).
VNNI_INLINE __m512i bm512_row1_block(const int nm, const uint8_t *m, const int8_t **vp, const int8_t *vend, size_t slots,
                                     const uint8_t *xl, const int8_t *xh, size_t k0, size_t k1) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int8_t *v = *vp;
    __m512i ah = _mm512_setzero_si512(), al = _mm512_setzero_si512();
    for (size_t k = k0; k < k1; k += 64) {
        size_t n = k1 - k < 64 ? k1 - k : 64, c;
        uint64_t bits = bm512_step_bits(nm, m, k, n, slots, &c);
        __m512i packed = vend - v >= 64 ? _mm512_loadu_si512((const void *)v) : _mm512_maskz_loadu_epi8((__mmask64)low_bits(c), v);
        v += c;
        __m512i w = _mm512_maskz_expand_epi8((__mmask64)bits, packed);
        al = _mm512_dpbusd_epi32(al, _mm512_loadu_si512((const void *)(xl + k)), w);
        ah = _mm512_dpbusd_epi32(ah, _mm512_xor_si512(w, flip), _mm512_loadu_si512((const void *)(xh + k)));
    }
    *vp = v;
    return _mm512_add_epi32(_mm512_slli_epi32(ah, 8), al);
}

/// One 64-column step of two rows at column K: the rows' mask bits, their expanded values against the
/// shared activation planes (names from the enclosing pass: ma, mb, va, vb, xl, xh, slots, flip and
/// the four sums).
#define BM512_STEP2(K)                                                                                             \
    do {                                                                                                           \
        size_t ca, cb;                                                                                             \
        uint64_t ba = bm512_step_bits(nm, ma, (K), 64, slots, &ca), bb = bm512_step_bits(nm, mb, (K), 64, slots, &cb); \
        __m512i pl = _mm512_loadu_si512((const void *)(xl + (K))), ph = _mm512_loadu_si512((const void *)(xh + (K))); \
        __m512i wa = _mm512_maskz_expand_epi8((__mmask64)ba, _mm512_loadu_si512((const void *)va));                \
        __m512i wb = _mm512_maskz_expand_epi8((__mmask64)bb, _mm512_loadu_si512((const void *)vb));                \
        va += ca, vb += cb;                                                                                        \
        ala = _mm512_dpbusd_epi32(ala, pl, wa);                                                                    \
        aha = _mm512_dpbusd_epi32(aha, _mm512_xor_si512(wa, flip), ph);                                            \
        alb = _mm512_dpbusd_epi32(alb, pl, wb);                                                                    \
        ahb = _mm512_dpbusd_epi32(ahb, _mm512_xor_si512(wb, flip), ph);                                            \
    } while (0)

/// bm512_row1_block for two consecutive rows at once, so each 64 columns' activations are loaded
/// once for both (three 64-byte loads per 64 columns for one row, two per row for two: a sweep of
/// SmolLM2's shapes in cache took 16% less time, scripts/bench_sparse_decode.c). Whole steps of 64 columns only, with 64 bytes readable past both
/// rows' values (the caller checks); a shorter last step goes through bm512_row1_block per row.
VNNI_INLINE void bm512_row2_block(const int nm, const uint8_t *ma, const uint8_t *mb, size_t slots, const int8_t **vpa,
                                  const int8_t **vpb, const int8_t *vend, const uint8_t *xl, const int8_t *xh, size_t k0,
                                  size_t k1, __m512i *outa, __m512i *outb) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int8_t *va = *vpa, *vb = *vpb;
    __m512i aha = _mm512_setzero_si512(), ala = _mm512_setzero_si512(), ahb = _mm512_setzero_si512(), alb = _mm512_setzero_si512();
    size_t k = k0;
    for (; k + 64 <= k1; k += 64) BM512_STEP2(k);
    __m512i ta = _mm512_add_epi32(_mm512_slli_epi32(aha, 8), ala), tb = _mm512_add_epi32(_mm512_slli_epi32(ahb, 8), alb);
    if (k < k1) {  // fewer than 64 columns left: each row's own step (exact integer sums, any order)
        ta = _mm512_add_epi32(ta, bm512_row1_block(nm, ma, &va, vend, slots, xl, xh, k, k1));
        tb = _mm512_add_epi32(tb, bm512_row1_block(nm, mb, &vb, vend, slots, xl, xh, k, k1));
    }
    *vpa = va, *vpb = vb;
    *outa = ta, *outb = tb;
}

/// bm512_row2_block over columns 0 ..< kend (a multiple of 64) of two consecutive rows, block by
/// block: four steps per whole 256-column block (a constant count the compiler unrolls), the last
/// block's fewer, and each block's two sums stored straight to out[16 b] and out[16 b + 1] (the
/// rows' slots in bm512_rows1_vnni's buffer). bm512_row2_block per block left its loop after at
/// most four steps, checked for a short last step and copied its sums through the stack: about a
/// fifth of the time of a sweep in L2 (scripts/bench_sparse_decode.c).
VNNI_INLINE void bm512_row2_steps(const int nm, const uint8_t *ma, const uint8_t *mb, size_t slots, const int8_t **vpa,
                                  const int8_t **vpb, const uint8_t *xl, const int8_t *xh, size_t kend, __m512i *out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int8_t *va = *vpa, *vb = *vpb;
    size_t b = 0;
    for (; (b + 1) * EDGE_I16_BLOCK <= kend; b++) {
        __m512i aha = _mm512_setzero_si512(), ala = _mm512_setzero_si512(), ahb = _mm512_setzero_si512(), alb = _mm512_setzero_si512();
        for (size_t k = b * EDGE_I16_BLOCK; k < (b + 1) * EDGE_I16_BLOCK; k += 64) BM512_STEP2(k);
        out[b * 16] = _mm512_add_epi32(_mm512_slli_epi32(aha, 8), ala);
        out[b * 16 + 1] = _mm512_add_epi32(_mm512_slli_epi32(ahb, 8), alb);
    }
    if (b * EDGE_I16_BLOCK < kend) {
        __m512i aha = _mm512_setzero_si512(), ala = _mm512_setzero_si512(), ahb = _mm512_setzero_si512(), alb = _mm512_setzero_si512();
        for (size_t k = b * EDGE_I16_BLOCK; k < kend; k += 64) BM512_STEP2(k);
        out[b * 16] = _mm512_add_epi32(_mm512_slli_epi32(aha, 8), ala);
        out[b * 16 + 1] = _mm512_add_epi32(_mm512_slli_epi32(ahb, 8), alb);
    }
    *vpa = va, *vpb = vb;
}

/// _mm512_maskz_expand_epi8(bits, 64 bytes at v) into a register zeroed first: on a Zen 4 the
/// zero-masking vpexpandb waits for its destination's old value, and with four rows a step clang
/// gave all four expansions one register, a chain (2.7 against 1.7 ns per row-step in L2).
#if defined(EDGE_AVX512_EMULATED)
#define bm512_expand_fresh(bits, v) _mm512_maskz_expand_epi8((__mmask64)(bits), _mm512_loadu_si512((const void *)(v)))
#else
VBMI2_INLINE __m512i bm512_expand_fresh(uint64_t bits, const int8_t *v) {
    __m512i w;
    __mmask64 k = (__mmask64)bits;
    __asm__("vpxord %0, %0, %0\n\tvpexpandb %2, %0 %{%1%}%{z%}" : "=&v"(w) : "Yk"(k), "m"(*(const int8_t(*)[64])v));
    return w;
}
#endif

/// One 64-column step of four bitmask rows at column K (bm512_row4_steps' names): the activation
/// planes loaded once for the four.
#define BM512_ROW4(I, K)                                                                                           \
    do {                                                                                                           \
        uint64_t bits;                                                                                             \
        memcpy(&bits, m[I] + (K) / 8, 8);                                                                          \
        __m512i w = bm512_expand_fresh(bits, v[I]);                                                                \
        v[I] += __builtin_popcountll(bits);                                                                        \
        al[I] = _mm512_dpbusd_epi32(al[I], pl, w);                                                                 \
        ah[I] = _mm512_dpbusd_epi32(ah[I], _mm512_xor_si512(w, flip), ph);                                         \
    } while (0)

/// bm512_row2_steps for four consecutive bitmask rows (`m`: their mask rows, `vp`: their value
/// pointers, advanced): each 64 columns' activation planes loaded once for the four instead of once
/// per two (a row-step reads its 40 bytes of weights and a quarter of the 128 bytes of activations,
/// not half). Columns 0 ..< kend (a multiple of 64); 64 bytes readable past the fourth row's values.
VNNI_INLINE void bm512_row4_steps(const uint8_t *m[4], const int8_t *vp[4], const uint8_t *xl, const int8_t *xh,
                                  size_t kend, __m512i *out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int8_t *v[4] = {vp[0], vp[1], vp[2], vp[3]};
    for (size_t b = 0; b * EDGE_I16_BLOCK < kend; b++) {
        size_t k1 = (b + 1) * EDGE_I16_BLOCK < kend ? (b + 1) * EDGE_I16_BLOCK : kend;
        __m512i al[4], ah[4];
        for (int i = 0; i < 4; i++) al[i] = ah[i] = _mm512_setzero_si512();
        for (size_t k = b * EDGE_I16_BLOCK; k < k1; k += 64) {
            __m512i pl = _mm512_loadu_si512((const void *)(xl + k)), ph = _mm512_loadu_si512((const void *)(xh + k));
            BM512_ROW4(0, k);
            BM512_ROW4(1, k);
            BM512_ROW4(2, k);
            BM512_ROW4(3, k);
        }
        for (int i = 0; i < 4; i++) out[b * 16 + i] = _mm512_add_epi32(_mm512_slli_epi32(ah[i], 8), al[i]);
    }
    for (int i = 0; i < 4; i++) vp[i] = v[i];
}

/// bm512_rows_vnni for one token (decoding), 16 rows at a time: each row's blocks leave their
/// 16-lane sums in `buf` (rows two at a time, bm512_row2_block), and per group every block
/// is reduced for the 16 rows at once (bm512_reduce16), its correction, conversion and fma done on
/// 16 rows in one vector: the same operations in the same order per row as the scalar reference,
/// so the same bits.
VNNI_INLINE void bm512_rows1_vnni(const int nm, const uint8_t *meta, const uint32_t *row_ptr, const int8_t *values,
                                  const float *scale, const uint8_t *xl, const int8_t *xh, const float *xscale,
                                  const int32_t *hsum, size_t nb, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t slots = edge_nm24_slots(cols), stride = nm ? (slots * 2 + 7) / 8 : (cols + 7) / 8;
    const int8_t *vend = values + (nm ? rows * slots : row_ptr[rows]);
    __m512i buf[BM512_NB * 16];
    uint8_t mk[2][2 * BM512_XMAX / BM512_MT / 8];  // two pairs of 2:4 rows' masks (at most 4096 columns each)
    size_t ahead = (size_t)-1;  // the first row of the pair whose masks mk[cur] holds
    int cur = 0;
    for (size_t g = r0; g < r1; g += 16) {
        size_t gn = r1 - g < 16 ? r1 - g : 16, j = 0;
        while (j < gn) {
            size_t rr = g + j;
            const uint8_t *m = meta + rr * stride;
            if (!nm && cols % 64 == 0 && j + 3 < gn && vend - (values + row_ptr[rr + 4]) >= 64) {
                const uint8_t *ms[4] = {m, m + stride, m + 2 * stride, m + 3 * stride};
                const int8_t *vs[4] = {values + row_ptr[rr], values + row_ptr[rr + 1], values + row_ptr[rr + 2],
                                       values + row_ptr[rr + 3]};
                edge_prefetch_ahead(vs[0], row_ptr[rr + 4] - row_ptr[rr], vend);
                bm512_prefetch_meta(m, stride, 4, meta + rows * stride);
                bm512_row4_steps(ms, vs, xl, xh, cols, &buf[j]);
                j += 4;
                continue;
            }
            if (j + 1 < gn && vend - (values + (nm ? (rr + 2) * slots : row_ptr[rr + 2])) >= 64) {
                const int8_t *va = values + (nm ? rr * slots : row_ptr[rr]), *vb = values + (nm ? (rr + 1) * slots : row_ptr[rr + 1]);
                edge_prefetch_ahead(va, nm ? 2 * slots : row_ptr[rr + 2] - row_ptr[rr], vend);
                bm512_prefetch_meta(m, stride, 2, meta + rows * stride);
                if (cols % 64 == 0 && nm) {
                    // 2:4 rows of whole steps: their index bytes as bitmask bytes, converted one pair
                    // ahead (so the steps read masks stored long before, not stores still in flight).
                    uint8_t *now = mk[cur];
                    if (ahead != rr) nm24_row_masks(m, 2 * stride, now);
                    ahead = rr + 3 < rows ? rr + 2 : (size_t)-1;
                    if (ahead != (size_t)-1) nm24_row_masks(m + 2 * stride, 2 * stride, mk[cur ^ 1]);
                    cur ^= 1;
                    bm512_row2_steps(0, now, now + stride, slots, &va, &vb, xl, xh, cols, &buf[j]);
                } else if (cols % 64 == 0) {  // SmolLM2's shapes: whole steps only
                    bm512_row2_steps(nm, m, m + stride, slots, &va, &vb, xl, xh, cols, &buf[j]);
                } else {
                    for (size_t b = 0; b < nb; b++) {
                        size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
                        bm512_row2_block(nm, m, m + stride, slots, &va, &vb, vend, xl, xh, k0, k1, &buf[b * 16 + j], &buf[b * 16 + j + 1]);
                    }
                }
                j += 2;
                continue;
            }
            const int8_t *v = values + (nm ? rr * slots : row_ptr[rr]);
            edge_prefetch_ahead(v, nm ? slots : row_ptr[rr + 1] - row_ptr[rr], vend);
            bm512_prefetch_meta(m, stride, 1, meta + rows * stride);
            for (size_t b = 0; b < nb; b++) {
                size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
                buf[b * 16 + j] = bm512_row1_block(nm, m, &v, vend, slots, xl, xh, k0, k1);
            }
            j += 1;
        }
        for (; j < 16; j++)
            for (size_t b = 0; b < nb; b++) buf[b * 16 + j] = _mm512_setzero_si512();
        __m512 acc = _mm512_setzero_ps();
        for (size_t b = 0; b < nb; b++) {
            __m512i s = _mm512_sub_epi32(bm512_reduce16(buf + b * 16), _mm512_set1_epi32((int32_t)(32768u * (uint32_t)hsum[b])));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(xscale[b]), acc);
        }
        __mmask16 out = (__mmask16)((1u << gn) - 1);
        _mm512_mask_storeu_ps(Y + g, out, _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(out, scale + g)));
    }
}

/// Token row x (cols int16 values) as the byte form's planes: xl = x & 255, xh = x >> 8, zero up to
/// lde (a multiple of 64); hsum[b] = the sum of xh over block b's columns. 32 values at a time (the
/// same integers as a scalar loop, which took about 7% of a 576 x 576 product's time in L2).
VBMI2_INLINE void bm512_split_bytes(const int16_t *x, size_t cols, size_t lde, uint8_t *xl, int8_t *xh, int32_t *hsum) {
    const __m512i low = _mm512_set1_epi16(0xFF), ones = _mm512_set1_epi16(1);
    for (size_t k0 = 0; k0 < lde; k0 += EDGE_I16_BLOCK) {
        size_t k1 = lde - k0 < EDGE_I16_BLOCK ? lde : k0 + EDGE_I16_BLOCK;
        __m512i acc = _mm512_setzero_si512();
        for (size_t k = k0; k < k1; k += 32) {
            __m512i q = _mm512_maskz_loadu_epi16((__mmask32)low_bits(k < cols ? cols - k : 0), x + k);
            __m512i h = _mm512_srai_epi16(q, 8);
            _mm256_storeu_si256((__m256i *)(xl + k), _mm512_cvtepi16_epi8(_mm512_and_si512(q, low)));
            _mm256_storeu_si256((__m256i *)(xh + k), _mm512_cvtepi16_epi8(h));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(h, ones));
        }
        if (k0 < cols) hsum[k0 / EDGE_I16_BLOCK] = _mm512_reduce_add_epi32(acc);
    }
}

/// The VNNI entry points' body: the activations split into byte planes 4 tokens at a time, then
/// bm512_rows1_vnni (one token) or bm512_rows_vnni (2 to 4) for each group.
#define BM512_BODY_BYTES(NM, META, ROW_PTR, WIDE)                                                                           \
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, lde = (cols + 63) / 64 * 64;      \
    if (lde * BM512_MT > BM512_XMAX) { /* more than 4096 columns: the level's previous kernel (AVX2's) */                  \
        WIDE;                                                                                                               \
        return;                                                                                                             \
    }                                                                                                                       \
    uint8_t xl[BM512_XMAX] __attribute__((aligned(64)));                                                                    \
    int8_t xh[BM512_XMAX] __attribute__((aligned(64)));                                                                     \
    int32_t hsum[BM512_MT * BM512_NB];                                                                                      \
    for (size_t t = 0; t < T; t += BM512_MT) { /* more tokens: the rows are read once per 4 */                             \
        size_t n = T - t < BM512_MT ? T - t : BM512_MT;                                                                     \
        for (size_t j = 0; j < n; j++) bm512_split_bytes(Xq + (t + j) * ld, cols, lde, xl + j * lde, xh + j * lde, hsum + j * nb); \
        const float *xs = xscale + t * nb;                                                                                  \
        float *y = Y + t * rows;                                                                                            \
        switch (n) {                                                                                                        \
        case 1: bm512_rows1_vnni(NM, META, ROW_PTR, values, scale, xl, xh, xs, hsum, nb, y, rows, cols, r0, r1); break;    \
        case 2: bm512_rows_vnni(2, NM, META, ROW_PTR, values, scale, xl, xh, lde, xs, hsum, nb, y, rows, cols, r0, r1); break; \
        case 3: bm512_rows_vnni(3, NM, META, ROW_PTR, values, scale, xl, xh, lde, xs, hsum, nb, y, rows, cols, r0, r1); break; \
        default: bm512_rows_vnni(4, NM, META, ROW_PTR, values, scale, xl, xh, lde, xs, hsum, nb, y, rows, cols, r0, r1); break; \
        }                                                                                                                   \
    }

static VNNI void spmm_bitmask_q8_i16_vbmi2_vnni(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values,
                                                const float *scale, const int16_t *Xq, const float *xscale, float *Y,
                                                size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    BM512_BODY_BYTES(0, mask, row_ptr, g_wide(mask, row_ptr, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1))
}
static VNNI void spmm_nm24_q8_i16_vbmi2_vnni(const uint8_t *idx, const int8_t *values, const float *scale,
                                             const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                                             size_t cols, size_t r0, size_t r1) {
    BM512_BODY_BYTES(1, idx, NULL, g_wide_nm24(idx, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1))
}

/// edge_bitmask_expand_q8 with vpexpandb: 64 columns per step.
static VBMI2 void bitmask_expand_q8_vbmi2(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t cols,
                                          size_t r0, size_t r1, int8_t *out) {
    size_t mb = (cols + 7) / 8;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *m = mask + r * mb;
        const int8_t *v = values + row_ptr[r];
        int8_t *o = out + (r - r0) * cols;
        for (size_t k = 0; k < cols; k += 64) {
            size_t n = cols - k < 64 ? cols - k : 64;
            uint64_t bits = 0;
            memcpy(&bits, m + k / 8, (n + 7) / 8);
            bits &= low_bits(n);
            size_t c = (size_t)__builtin_popcountll(bits);
            __m512i packed = _mm512_maskz_loadu_epi8((__mmask64)low_bits(c), v);  // never past the row's values
            __m512i w = _mm512_maskz_expand_epi8((__mmask64)bits, packed);
            if (n == 64) _mm512_storeu_si512((void *)(o + k), w);
            else _mm512_mask_storeu_epi8(o + k, (__mmask64)low_bits(n), w);
            v += c;
        }
    }
}

void edge_fill_table_sparse_avx512(edge_kernel_table *t, bool vbmi2) {
    if (!vbmi2) return;
    g_wide = t->spmm_bitmask_q8_i16;
    g_wide_nm24 = t->spmm_nm24_q8_i16;
    t->spmm_bitmask_q8_i16 = t->vnni ? spmm_bitmask_q8_i16_vbmi2_vnni : spmm_bitmask_q8_i16_vbmi2;
    t->spmm_nm24_q8_i16 = t->vnni ? spmm_nm24_q8_i16_vbmi2_vnni : spmm_nm24_q8_i16_vbmi2;
    t->bitmask_q8_i16_name = t->vnni ? "avx512-vbmi2-vnni-bitmask-i16" : "avx512-vbmi2-bitmask-i16";
    t->bitmask_expand_q8 = bitmask_expand_q8_vbmi2;
}
#endif
