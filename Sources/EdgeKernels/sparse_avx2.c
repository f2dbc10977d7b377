// AVX2 + FMA + F16C sparse kernels (x86-64), for the csr, bitmask and nm payloads (EdgeKernelsSparse.h).
//
// Shape: a block of NR weight rows is expanded from its sparse form into an L1-resident f32 buffer
// (bitmask: 8 columns per step, the mask byte selecting a lane permutation of the next 8 stored
// values; csr: zero the row, scatter the stored values; nm 2:4: 8 columns per index byte, the byte
// selecting a lane permutation of its 4 slot values, no gathers; other n:m: zero the row, scatter
// the slots), then a register tile of MT tokens x NR rows
// of 8-lane FMA accumulators streams the columns, exactly like the dense drivers in avx2.c. The
// expansion is paid once per weight row, not once per token; the file stored bytes are never
// expanded beyond one row block. Every function carries its own target attribute.
#if defined(__x86_64__)
#include "dispatch.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

enum { SMT = 4, SNR = 3 };  // tile: tokens x rows (12 accumulators + 3 weights + 1 activation = 16 ymm)

static const int32_t k_lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/// For mask byte m: lane i takes source lane popcount(m & ((1 << i) - 1)) (the rank of bit i among the set bits).
static uint8_t g_expand[256][8];

static void build_expand_table(void) {
    for (int m = 0; m < 256; m++)
        for (int i = 0; i < 8; i++) g_expand[m][i] = (uint8_t)__builtin_popcount((unsigned)m & ((1u << i) - 1));
}

/// For an index byte of a 2:4 row (2 bits per slot, LSB first: slots 0, 1 of a group in bits 0-3, slots 2, 3
/// of the next group in bits 4-7), lane i (column i of the two groups) takes slot g_nm24[byte][i], -1: none.
static int8_t g_nm24[256][8];

static void build_nm24_table(void) {
    for (int v = 0; v < 256; v++)
        for (int i = 0; i < 8; i++) {
            int g = i / 4, p = -1;
            for (int k = 2 * g; k < 2 * g + 2; k++)
                if (((v >> (2 * k)) & 3) == i % 4) p = k;
            g_nm24[v][i] = (int8_t)p;
        }
}

/// Lane mask with the first n (0...8) lanes set.
AVX2_INLINE __m256i lanes(size_t n) { return _mm256_loadu_si256((const __m256i *)(k_lanes + 8 - n)); }

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Stored value k decoded (as sparse_ref.c does); z < 0 means symmetric q8.
AVX2_INLINE float value1(edge_sparse_kind kind, const void *values, size_t k, float s, int z) {
    switch (kind) {
    case EDGE_SPARSE_F32: return ((const float *)values)[k];
    case EDGE_SPARSE_F16: return _cvtsh_ss(((const uint16_t *)values)[k]);
    case EDGE_SPARSE_Q8:
        if (z < 0) return s * (float)((const int8_t *)values)[k];
        return s * (float)((int)((const uint8_t *)values)[k] - z);
    }
    return 0.0f;
}

/// Stored values k ... k+7 decoded (all 8 must exist).
AVX2_INLINE __m256 value8(edge_sparse_kind kind, const void *values, size_t k, __m256 s, __m256 z, bool symmetric) {
    switch (kind) {
    case EDGE_SPARSE_F32: return _mm256_loadu_ps((const float *)values + k);
    case EDGE_SPARSE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)values + k)));
    case EDGE_SPARSE_Q8: {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)values + k));
        if (symmetric) return _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)));
        return _mm256_mul_ps(s, _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), z));
    }
    }
    return _mm256_setzero_ps();
}

/// Stored values k ... k+3 decoded into lanes 0...3 (all 4 must exist; lanes 4...7 are not meaningful).
AVX2_INLINE __m256 value4(edge_sparse_kind kind, const void *values, size_t k, __m256 s, __m256 z, bool symmetric) {
    switch (kind) {
    case EDGE_SPARSE_F32: return _mm256_castps128_ps256(_mm_loadu_ps((const float *)values + k));
    case EDGE_SPARSE_F16: return _mm256_cvtph_ps(_mm_loadl_epi64((const __m128i *)((const uint16_t *)values + k)));
    case EDGE_SPARSE_Q8: {
        int32_t w;
        memcpy(&w, (const uint8_t *)values + k, 4);
        __m128i b = _mm_cvtsi32_si128(w);
        if (symmetric) return _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)));
        return _mm256_mul_ps(s, _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), z));
    }
    }
    return _mm256_setzero_ps();
}

/// Expands nm row r into out[0..cols): 2:4 eight columns (one index byte, four slots) per step
/// through g_nm24, the rest (and every other n:m) slot by slot.
AVX2_INLINE void expand_nm_row(edge_sparse_kind kind, const uint8_t *idx, const void *values, const float *scale,
                               const uint8_t *zero, size_t n, size_t m, size_t cols, size_t r, float *out) {
    unsigned bits = edge_nm_bits(m);
    size_t slots = edge_nm_slots(n, m, cols), row_bytes = (slots * bits + 7) / 8, k0 = r * slots;
    const uint8_t *row = idx + r * row_bytes;
    float s1 = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
    int z1 = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
    size_t j = 0, k = 0;  // first column and slot left to the slot-by-slot loop
    if (n == 2 && m == 4) {
        __m256 s = _mm256_set1_ps(s1), z = _mm256_set1_ps((float)z1);
        const __m256i none = _mm256_set1_epi32(-1);
        size_t steps = cols / 8;
        for (size_t b = 0; b < steps; b++) {
            __m256 v = value4(kind, values, k0 + 4 * b, s, z, z1 < 0);
            int64_t p;
            memcpy(&p, g_nm24[row[b]], 8);
            __m256i perm = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(p));
            __m256i keep = _mm256_cmpgt_epi32(perm, none);
            _mm256_storeu_ps(out + 8 * b, _mm256_and_ps(_mm256_permutevar8x32_ps(v, perm), _mm256_castsi256_ps(keep)));
        }
        j = steps * 8;
        k = steps * 4;
    }
    memset(out + j, 0, (cols - j) * sizeof(float));
    for (; k < slots; k++) out[(k / n) * m + edge_nm_index(row, k, bits)] = value1(kind, values, k0 + k, s1, z1);
}

/// Expands bitmask row r into out[0..cols).
AVX2_INLINE void expand_bitmask_row(edge_sparse_kind kind, const uint8_t *mask, const uint32_t *row_ptr, const void *values,
                                    const float *scale, const uint8_t *zero, size_t rows, size_t cols, size_t r, float *out) {
    size_t mb = (cols + 7) / 8, nnz = row_ptr[rows];
    const uint8_t *m = mask + r * mb;
    float s1 = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
    int z1 = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
    __m256 s = _mm256_set1_ps(s1), z = _mm256_set1_ps((float)z1);
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    size_t k = row_ptr[r];
    for (size_t b = 0; b < mb; b++) {
        unsigned byte = m[b];
        size_t j = b * 8;
        if (j + 8 <= cols && k + 8 <= nnz) {
            __m256 v = value8(kind, values, k, s, z, z1 < 0);
            __m256i perm = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)g_expand[byte]));
            __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)byte), bit), bit);
            _mm256_storeu_ps(out + j, _mm256_and_ps(_mm256_permutevar8x32_ps(v, perm), _mm256_castsi256_ps(set)));
        } else {
            size_t n = cols - j < 8 ? cols - j : 8;
            for (size_t i = 0; i < n; i++) out[j + i] = (byte >> i) & 1 ? value1(kind, values, k + g_expand[byte][i], s1, z1) : 0.0f;
        }
        k += (size_t)__builtin_popcount(byte);
    }
}

/// Expands csr row r into out[0..cols).
AVX2_INLINE void expand_csr_row(edge_sparse_kind kind, const uint32_t *row_ptr, const void *col_idx, size_t index_width,
                                const void *values, const float *scale, const uint8_t *zero, size_t cols, size_t r, float *out) {
    memset(out, 0, cols * sizeof(float));
    float s = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
    int z = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
    size_t k0 = row_ptr[r], k1 = row_ptr[r + 1];
    if (index_width == 8) {
        const uint8_t *gap = (const uint8_t *)col_idx;
        size_t c = (size_t)-1;
        for (size_t k = k0; k < k1; k++) {
            c += (size_t)gap[k] + 1;
            out[c] = value1(kind, values, k, s, z);
        }
    } else {
        const uint16_t *col = (const uint16_t *)col_idx;
        for (size_t k = k0; k < k1; k++) out[col[k]] = value1(kind, values, k, s, z);
    }
}

/// Y[t0+i, r+j] = dot(w[j*cols ..], X[(t0+i)*cols ..]) for i < mt, j < nr (compile-time constants after inlining).
AVX2_INLINE void tile(const float *w, const float *X, float *Y, size_t rows, size_t cols, size_t r, const int mt, const int nr) {
    __m256 acc[SMT][SNR];
    for (int i = 0; i < mt; i++)
        for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 wv[SNR];
        for (int j = 0; j < nr; j++) wv[j] = _mm256_loadu_ps(w + j * cols + k);
        for (int i = 0; i < mt; i++) {
            __m256 xv = _mm256_loadu_ps(X + i * cols + k);
            for (int j = 0; j < nr; j++) acc[i][j] = _mm256_fmadd_ps(wv[j], xv, acc[i][j]);
        }
    }
    if (k < cols) {
        __m256i m = lanes(cols - k);
        __m256 wv[SNR];
        for (int j = 0; j < nr; j++) wv[j] = _mm256_maskload_ps(w + j * cols + k, m);
        for (int i = 0; i < mt; i++) {
            __m256 xv = _mm256_maskload_ps(X + i * cols + k, m);
            for (int j = 0; j < nr; j++) acc[i][j] = _mm256_fmadd_ps(wv[j], xv, acc[i][j]);
        }
    }
    for (int i = 0; i < mt; i++)
        for (int j = 0; j < nr; j++) Y[i * rows + r + j] = hsum8(acc[i][j]);
}

/// Every token against the nr expanded rows in `w` (rows r ... r+nr-1).
AVX2 static void tokens_times_block(const float *w, size_t nr, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r) {
    size_t t = 0;
    for (; t + SMT <= T; t += SMT) {
        const float *x = X + t * cols;
        float *y = Y + t * rows;
        if (nr == 3) tile(w, x, y, rows, cols, r, SMT, 3);
        else if (nr == 2) tile(w, x, y, rows, cols, r, SMT, 2);
        else tile(w, x, y, rows, cols, r, SMT, 1);
    }
    for (; t < T; t++) {
        const float *x = X + t * cols;
        float *y = Y + t * rows;
        if (nr == 3) tile(w, x, y, rows, cols, r, 1, 3);
        else if (nr == 2) tile(w, x, y, rows, cols, r, 1, 2);
        else tile(w, x, y, rows, cols, r, 1, 1);
    }
}

AVX2 static void spmm_bitmask(edge_sparse_kind kind, const uint8_t *mask, const uint32_t *row_ptr, const void *values,
                              const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                              size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    float *buf = cols ? malloc(SNR * cols * sizeof(float)) : NULL;
    if (!buf) {
        edge_spmm_bitmask_any_ref(kind, mask, row_ptr, values, scale, zero, X, Y, T, rows, cols, r0, r1);
        return;
    }
    for (size_t r = r0; r < r1; r += SNR) {
        size_t nr = r1 - r < SNR ? r1 - r : SNR;
        for (size_t j = 0; j < nr; j++) expand_bitmask_row(kind, mask, row_ptr, values, scale, zero, rows, cols, r + j, buf + j * cols);
        tokens_times_block(buf, nr, X, Y, T, rows, cols, r);
    }
    free(buf);
}

AVX2 static void spmm_csr(edge_sparse_kind kind, const uint32_t *row_ptr, const void *col_idx, size_t index_width,
                          const void *values, const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T,
                          size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    float *buf = cols ? malloc(SNR * cols * sizeof(float)) : NULL;
    if (!buf) {
        edge_spmm_csr_any_ref(kind, row_ptr, col_idx, index_width, values, scale, zero, X, Y, T, rows, cols, r0, r1);
        return;
    }
    for (size_t r = r0; r < r1; r += SNR) {
        size_t nr = r1 - r < SNR ? r1 - r : SNR;
        for (size_t j = 0; j < nr; j++) expand_csr_row(kind, row_ptr, col_idx, index_width, values, scale, zero, cols, r + j, buf + j * cols);
        tokens_times_block(buf, nr, X, Y, T, rows, cols, r);
    }
    free(buf);
}

AVX2 static void spmm_nm(edge_sparse_kind kind, const uint8_t *idx, const void *values, const float *scale, const uint8_t *zero,
                         size_t n, size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    float *buf = cols ? malloc(SNR * cols * sizeof(float)) : NULL;
    if (!buf) {
        edge_spmm_nm_any_ref(kind, idx, values, scale, zero, n, m, X, Y, T, rows, cols, r0, r1);
        return;
    }
    for (size_t r = r0; r < r1; r += SNR) {
        size_t nr = r1 - r < SNR ? r1 - r : SNR;
        for (size_t j = 0; j < nr; j++) expand_nm_row(kind, idx, values, scale, zero, n, m, cols, r + j, buf + j * cols);
        tokens_times_block(buf, nr, X, Y, T, rows, cols, r);
    }
    free(buf);
}

// ---- bitmask q8 x int16 activations, few tokens (decoding) ---------------------------------------
// Each row streamed once: per 16 columns the two mask bytes pick a byte shuffle that places the next
// stored values at their columns (zeros elsewhere), widened to int16 and multiplied with vpmaddwd
// against each token's int16 activations; exact int32 block sums, so bit-identical to the reference.

/// pshufb control for mask byte m: byte i = rank of bit i among the set bits, 0x80 (zero) when clear.
static uint64_t g_shuf_z[256];

static void build_shuf_table(void) {
    for (unsigned m = 0; m < 256; m++) {
        uint64_t c = 0;
        for (unsigned i = 0; i < 8; i++) {
            uint64_t b = (m >> i) & 1 ? (uint64_t)__builtin_popcount(m & ((1u << i) - 1)) : 0x80;
            c |= b << (8 * i);
        }
        g_shuf_z[m] = c;
    }
}

/// edge_bitmask_expand_q8 by byte shuffles: each mask byte's control places the next popcount(byte)
/// stored values in its 8 columns (16-byte loads while they stay inside the payload; the rest byte by
/// byte as the reference does).
static __attribute__((target("avx2,fma,f16c,popcnt"))) void bitmask_expand_q8(const uint8_t *mask, const uint32_t *row_ptr,
                                                                             const int8_t *values, size_t cols, size_t r0,
                                                                             size_t r1, int8_t *out) {
    size_t mb = (cols + 7) / 8;
    const int8_t *vend = values + row_ptr[r1];  // 16-byte loads stay below the last row's values
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *m = mask + r * mb;
        const int8_t *v = values + row_ptr[r];
        int8_t *o = out + (r - r0) * cols;
        size_t k = 0;
        for (; k + 8 <= cols && v + 16 <= vend; k += 8) {
            unsigned byte = m[k >> 3];
            __m128i w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)v), _mm_cvtsi64_si128((long long)g_shuf_z[byte]));
            _mm_storel_epi64((__m128i *)(o + k), w);
            v += __builtin_popcount(byte);
        }
        for (; k < cols; k++) o[k] = (m[k >> 3] >> (k & 7)) & 1 ? *v++ : 0;
    }
}

enum { BM_I16_MT = 4 };

static inline __attribute__((always_inline, target("avx2,fma,f16c,popcnt"))) void bm_q8_i16_rows(const size_t T, const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values,
                                const float *scale, const int16_t *Xq, const float *xscale, float *Y, size_t rows,
                                size_t cols, size_t r0, size_t r1) {
    size_t mb = (cols + 7) / 8, ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    const int8_t *vend = values + row_ptr[rows];  // 16-byte loads stay below it
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *m = mask + r * mb;
        const int8_t *v = values + row_ptr[r];
        // The stored values ahead (rows are a few hundred bytes), and the mask some rows ahead.
        edge_prefetch_ahead(v, row_ptr[r + 1] - row_ptr[r], vend);
        _mm_prefetch((const char *)(m + 8 * mb), _MM_HINT_T0);
        float acc[BM_I16_MT] = {0};
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
            __m256i s[BM_I16_MT];
            for (size_t t = 0; t < T; t++) s[t] = _mm256_setzero_si256();
            size_t k = k0;
            for (; k + 16 <= k1 && v + 16 <= vend; k += 16) {
                uint16_t m01;
                memcpy(&m01, m + (k >> 3), 2);
                unsigned m0 = m01 & 0xFF, m1 = m01 >> 8;
                unsigned c0 = (unsigned)__builtin_popcount(m0);
                __m128i ctrl = _mm_set_epi64x((long long)(g_shuf_z[m1] + 0x0101010101010101ULL * c0), (long long)g_shuf_z[m0]);
                __m256i w = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)v), ctrl));
                for (size_t t = 0; t < T; t++)
                    s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(Xq + t * ld + k))));
                v += __builtin_popcount(m01);
            }
            int32_t sum[BM_I16_MT];
            for (size_t t = 0; t < T; t++) {
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s[t]), _mm256_extracti128_si256(s[t], 1));
                h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
                sum[t] = _mm_cvtsi128_si32(h);
            }
            for (; k < k1; k++)  // the block's last columns (fewer than 16, or near the end of the values)
                if (m[k >> 3] & (1u << (k & 7))) {
                    int32_t w = *v++;
                    for (size_t t = 0; t < T; t++) sum[t] += w * (int32_t)Xq[t * ld + k];
                }
            for (size_t t = 0; t < T; t++) acc[t] = fmaf((float)sum[t], xscale[t * nb + b], acc[t]);
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = acc[t] * scale[r];
    }
}

static __attribute__((target("avx2,fma,f16c,popcnt"))) void spmm_bitmask_q8_i16(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                     const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                     size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t t = 0; t < T; t += BM_I16_MT) {  // more tokens: the rows are read once per 4
        size_t n = T - t < BM_I16_MT ? T - t : BM_I16_MT;
        const int16_t *x = Xq + t * ld;
        const float *xs = xscale + t * nb;
        float *y = Y + t * rows;
        switch (n) {
        case 1: bm_q8_i16_rows(1, mask, row_ptr, values, scale, x, xs, y, rows, cols, r0, r1); break;
        case 2: bm_q8_i16_rows(2, mask, row_ptr, values, scale, x, xs, y, rows, cols, r0, r1); break;
        case 3: bm_q8_i16_rows(3, mask, row_ptr, values, scale, x, xs, y, rows, cols, r0, r1); break;
        default: bm_q8_i16_rows(4, mask, row_ptr, values, scale, x, xs, y, rows, cols, r0, r1); break;
        }
    }
}

// ---- nm 2:4 q8 x int16 activations, few tokens (decoding) ---------------------------------------
// Each row streamed once: per 16 columns (4 groups, 8 stored values, two index bytes) each index byte
// picks a byte shuffle placing its groups' 4 values at their columns (zeros elsewhere); widened to
// int16 and multiplied with vpmaddwd; exact int32 block sums, so bit-identical to the reference. One
// token (decoding) takes 32 columns at a time the other way round: the activations the indices pick
// are gathered next to the 16 stored values, so no product is spent on a zero (about 20% less time
// per sweep on a Zen 3; docs/performance.md, "Session 27").

/// pshufb control for index byte b (slots 0-3: two groups of 4 columns): byte c = the slot whose
/// index is column c, 0x80 (zero) when none.
static uint64_t g_nm24_shuf[256];

static void build_nm24_shuf_table(void) {
    for (unsigned b = 0; b < 256; b++) {
        uint64_t c = 0x8080808080808080ULL;
        for (unsigned s = 0; s < 4; s++) {
            unsigned col = (s / 2) * 4 + ((b >> (2 * s)) & 3);
            c &= ~((uint64_t)0xFF << (8 * col));
            c |= (uint64_t)s << (8 * col);
        }
        g_nm24_shuf[b] = c;
    }
}

/// One token: per 32 columns the 16 stored values meet the 16 activations their indices pick, gathered
/// by two byte shuffles from a copy of the activations in which each 32 columns are ordered 0-7, 16-23,
/// 8-15, 24-31 (so that each 128-bit lane holds the 8 columns one index byte covers): g_nm24_gather[0][b]
/// moves index byte b's 4 picked activations into bytes 0-7 of a lane, [1][b] into bytes 8-15.
static uint8_t g_nm24_gather[2][256][16] __attribute__((aligned(16)));

static void build_nm24_gather_table(void) {
    for (unsigned b = 0; b < 256; b++) {
        memset(g_nm24_gather[0][b], 0x80, 16);
        memset(g_nm24_gather[1][b], 0x80, 16);
        for (unsigned s = 0; s < 4; s++) {
            unsigned col = (s / 2) * 4 + ((b >> (2 * s)) & 3);
            g_nm24_gather[0][b][2 * s] = g_nm24_gather[1][b][8 + 2 * s] = (uint8_t)(2 * col);
            g_nm24_gather[0][b][2 * s + 1] = g_nm24_gather[1][b][8 + 2 * s + 1] = (uint8_t)(2 * col + 1);
        }
    }
}

static inline __attribute__((always_inline, target("avx2,fma,f16c"))) void nm24_i16_rows(const size_t T, const uint8_t *idx, const int8_t *values, const float *scale,
                                const int16_t *Xq, const float *xscale, float *Y, size_t rows, size_t cols, size_t r0, size_t r1,
                                const int16_t *xp) {
    size_t slots = edge_nm24_slots(cols), ib = (slots * 2 + 7) / 8, full = cols & ~(size_t)15, full32 = cols & ~(size_t)31;
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    const int8_t *vend = values + rows * slots;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *id = idx + r * ib;
        const int8_t *v = values + r * slots;
        edge_prefetch_ahead(v, slots, vend);
        _mm_prefetch((const char *)(id + 8 * ib), _MM_HINT_T0);
        float acc[BM_I16_MT] = {0};
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
            __m256i s[BM_I16_MT];
            for (size_t t = 0; t < T; t++) s[t] = _mm256_setzero_si256();
            size_t k = k0;
            if (T == 1 && xp)
                for (; k + 32 <= k1 && k + 32 <= full32; k += 32) {
                    uint32_t b4;
                    memcpy(&b4, id + k / 8, 4);
                    __m256i ca = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_load_si128((const __m128i *)g_nm24_gather[0][b4 & 0xFF])),
                                                         _mm_load_si128((const __m128i *)g_nm24_gather[0][(b4 >> 16) & 0xFF]), 1);
                    __m256i cb = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_load_si128((const __m128i *)g_nm24_gather[1][(b4 >> 8) & 0xFF])),
                                                         _mm_load_si128((const __m128i *)g_nm24_gather[1][b4 >> 24]), 1);
                    __m256i xs = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(xp + k)), ca),
                                                 _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(xp + k + 16)), cb));
                    __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(v + k / 2)));
                    s[0] = _mm256_add_epi32(s[0], _mm256_madd_epi16(w, xs));
                }
            for (; k + 16 <= k1 && k + 16 <= full; k += 16) {
                __m128i ctrl = _mm_set_epi64x((long long)(g_nm24_shuf[id[k / 8 + 1]] + 0x0404040404040404ULL), (long long)g_nm24_shuf[id[k / 8]]);
                __m256i w = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(v + k / 2)), ctrl));
                for (size_t t = 0; t < T; t++)
                    s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(Xq + t * ld + k))));
            }
            int32_t sum[BM_I16_MT];
            for (size_t t = 0; t < T; t++) {
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s[t]), _mm256_extracti128_si256(s[t], 1));
                h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
                sum[t] = _mm_cvtsi128_si32(h);
            }
            // The block's last columns (fewer than 16, or the row's tail group): slot by slot. Groups
            // of 4 never straddle a block (256 is a multiple of 4), so slots k/2 ... belong to it.
            for (size_t sl = k / 2; sl < slots && (sl / 2) * 4 < k1; sl++) {
                size_t col = (sl / 2) * 4 + ((id[sl / 4] >> (2 * (sl % 4))) & 3);
                int32_t w = v[sl];
                for (size_t t = 0; t < T; t++) sum[t] += w * (int32_t)Xq[t * ld + col];
            }
            for (size_t t = 0; t < T; t++) acc[t] = fmaf((float)sum[t], xscale[t * nb + b], acc[t]);
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = acc[t] * scale[r];
    }
}

static __attribute__((target("avx2,fma,f16c"))) void spmm_nm24_q8_i16(const uint8_t *idx, const int8_t *values, const float *scale,
                                     const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                     size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    // One token: the activations in the gather order (nm24_i16_rows), on the stack for rows of up to 4096
    // columns (no allocation per product while decoding).
    int16_t local[4096], *xp = NULL;
    size_t full32 = cols & ~(size_t)31;
    if (T == 1 && full32 && (xp = full32 <= 4096 ? local : (int16_t *)malloc(full32 * sizeof(int16_t))))
        for (size_t k = 0; k < full32; k += 32) {
            memcpy(xp + k, Xq + k, 8 * sizeof(int16_t));
            memcpy(xp + k + 8, Xq + k + 16, 8 * sizeof(int16_t));
            memcpy(xp + k + 16, Xq + k + 8, 8 * sizeof(int16_t));
            memcpy(xp + k + 24, Xq + k + 24, 8 * sizeof(int16_t));
        }
    for (size_t t = 0; t < T; t += BM_I16_MT) {  // more tokens: the rows are read once per 4
        size_t n = T - t < BM_I16_MT ? T - t : BM_I16_MT;
        const int16_t *x = Xq + t * ld;
        const float *xs = xscale + t * nb;
        float *y = Y + t * rows;
        switch (n) {
        case 1: nm24_i16_rows(1, idx, values, scale, x, xs, y, rows, cols, r0, r1, xp); break;
        case 2: nm24_i16_rows(2, idx, values, scale, x, xs, y, rows, cols, r0, r1, NULL); break;
        case 3: nm24_i16_rows(3, idx, values, scale, x, xs, y, rows, cols, r0, r1, NULL); break;
        default: nm24_i16_rows(4, idx, values, scale, x, xs, y, rows, cols, r0, r1, NULL); break;
        }
    }
    if (xp != local) free(xp);
}

void edge_fill_table_sparse_avx2(edge_kernel_table *t) {
    build_shuf_table();
    t->spmm_bitmask_q8_i16 = spmm_bitmask_q8_i16;
    t->bitmask_q8_i16_name = "avx2-bitmask-i16";
    t->bitmask_expand_q8 = bitmask_expand_q8;
    build_nm24_shuf_table();
    build_nm24_gather_table();
    t->spmm_nm24_q8_i16 = spmm_nm24_q8_i16;
    build_expand_table();
    build_nm24_table();
    t->spmm_bitmask = spmm_bitmask;
    t->spmm_csr = spmm_csr;
    t->spmm_nm = spmm_nm;
}
#endif
