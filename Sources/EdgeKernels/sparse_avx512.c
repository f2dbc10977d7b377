// AVX-512 sparse kernels (x86-64): the bitmask and packed 2:4 q8 x int16 decoding products on
// AVX512_VBMI2. Per 64 columns, `vpexpandb` places the next popcount(mask) stored values at their
// columns in one instruction (2:4: the mask made from 8 index bytes by two byte shuffles; the AVX2
// kernels need a table lookup, a shuffle and a widening per 16 columns), and the expanded bytes are
// used as int16 words by two shifts (even columns) and one (odd columns) against activations split
// even/odd per 64 columns: one cross-lane operation per 64 weights. Also the bitmask row expansion
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

/// Mask bits of two slots' 2-bit indices (a nibble: a in bits 0-1, b in bits 2-3): (1 << a) | (1 << b).
static const uint8_t g_nm24_nibble[16] = {1, 3, 5, 9, 3, 2, 6, 10, 5, 6, 4, 12, 9, 10, 12, 8};

/// The mask bits of columns k..k1 (k a multiple of 64, k1 - k <= 64) of a packed 2:4 row with index
/// bytes `id`, and how many values they hold: 64 whole columns from 8 index bytes with two byte
/// shuffles (the indices of a group are strictly increasing, so the values are in column order and
/// the bits place them); fewer (the row's end) slot by slot.
VBMI2_INLINE uint64_t nm24_bits(const uint8_t *id, size_t k, size_t k1, size_t slots, size_t *count) {
    if (k1 - k == 64) {
        const __m128i lut = _mm_loadu_si128((const __m128i *)g_nm24_nibble), low = _mm_set1_epi8(0x0F);
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

/// acc = fmaf((float)s_b, xscale[b], acc) for b = 0..nb in order, s_b the sum of the 8 int32 lanes of
/// part[b] (exact): four blocks' sums at a time by a tree of horizontal adds, not one reduction each.
VBMI2_INLINE float bm512_fold(const __m256i *part, const float *xscale, size_t nb) {
    float acc = 0;
    for (size_t b = 0; b < nb; b += 4) {
        __m256i p[4];
        for (size_t j = 0; j < 4; j++) p[j] = b + j < nb ? part[b + j] : _mm256_setzero_si256();
        __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));  // lane j: block b + j
        int32_t sums[4];
        _mm_storeu_si128((__m128i *)sums, s4);
        for (size_t j = 0; j < 4 && b + j < nb; j++) acc = fmaf((float)sums[j], xscale[b + j], acc);
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
            __builtin_prefetch(m + 8 * stride, 0, 3);                                                                       \
            __m256i part[BM512_MT][BM512_NB]; /* each block's lanes folded to 8, summed at the row's end */               \
            for (size_t b = 0; b < nb; b++) {                                                                               \
                size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;               \
                __m512i s0[BM512_MT], s1[BM512_MT];                                                                         \
                for (size_t t = 0; t < T; t++) s0[t] = s1[t] = _mm512_setzero_si512();                                      \
                for (size_t k = k0; k < k1; k += 64) { /* k is a multiple of 64: its mask bits start a byte */              \
                    size_t n = k1 - k < 64 ? k1 - k : 64, c;                                                                \
                    uint64_t bits = 0;                                                                                      \
                    if (nm) bits = nm24_bits(m, k, k + n, slots, &c);                                                       \
                    else {                                                                                                  \
                        if (n == 64) memcpy(&bits, m + k / 8, 8);                                                           \
                        else { /* the block's last columns (fewer than 64): only their mask bytes are read */              \
                            memcpy(&bits, m + k / 8, (n + 7) / 8);                                                          \
                            bits &= low_bits(n);                                                                            \
                        }                                                                                                   \
                        c = (size_t)__builtin_popcountll(bits);                                                             \
                    }                                                                                                       \
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
            for (size_t t = 0; t < T; t++) Y[t * rows + r] = bm512_fold(part[t], xscale + t * nb, nb) * scale[r];          \
        }                                                                                                                   \
    }

#define BM512_DP_BW(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
#define BM512_DP_VNNI(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
BM512_ROWS(bm512_rows_bw, VBMI2_INLINE, BM512_DP_BW)
BM512_ROWS(bm512_rows_vnni, VNNI_INLINE, BM512_DP_VNNI)

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
BM512_ENTRIES(vbmi2_vnni, VNNI, bm512_rows_vnni)

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
