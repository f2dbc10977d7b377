// Private to avx512.c, which includes it twice: the int8 x int16 kernels, once with
// VNNI (I16_DP = vpdpwssd: int16 pairs multiplied and summed into int32 lanes in one instruction) and
// once with AVX-512BW only (I16_DP = vpmaddwd + vpaddd). The integer sums are the same either way, so
// both forms are bit-identical to the reference. Before each inclusion avx512.c defines I16_FN(name)
// (the form's function name), I16_ATTR / I16_INLINE (its target attributes) and I16_DP(acc, a, b).

// ---- Packed micro-kernel (many tokens) -------------------------------------------------------

/// One 256-column block for mt (a constant, <= 12) tokens and nr (<= 32) rows of a packed panel p
/// ([kp][32][2] int16 pairs): y[t*ldy + r] = fmaf((float)sum_{q < kp} x[t][2q..2q+1] . p[q][r][0..1],
/// xs[t*ldxs], first ? 0 : y), times ws[r] when last (the order of edge_matmul_q8_i16_ref). The
/// accumulators are named variables (c<token><half>), so every compiler keeps them in registers.
I16_INLINE void I16_FN(tile_i16)(const int mt, int nr, const int16_t *x, size_t ldx, const int16_t *p, size_t kp,
                                 const float *xs, size_t ldxs, const float *ws, float *y, size_t ldy, bool first, bool last,
                                 bool grouped, const edge_i16_mins *mins) {
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
    __m512i c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, c100 = z, c101 = z, c110 = z, c111 = z;
    for (size_t q = 0; q < kp; q++) {
        __m512i b0 = _mm512_load_si512((const void *)(p + q * 64)), b1 = _mm512_load_si512((const void *)(p + q * 64 + 32)), a;
#define I16_ROW(i) \
    if (i < mt) { \
        a = _mm512_set1_epi32(load_pair(x + (size_t)i * ldx + 2 * q)); \
        c##i##0 = I16_DP(c##i##0, a, b0); \
        c##i##1 = I16_DP(c##i##1, a, b1); \
    }
        I16_ROW(0) I16_ROW(1) I16_ROW(2) I16_ROW(3) I16_ROW(4) I16_ROW(5)
        I16_ROW(6) I16_ROW(7) I16_ROW(8) I16_ROW(9) I16_ROW(10) I16_ROW(11)
#undef I16_ROW
    }
    const bool full = nr == I16_PNR;
    __mmask16 m0 = mask16(nr < 16 ? (size_t)nr : 16), m1 = mask16(nr > 16 ? (size_t)(nr - 16) : 0);
    __m512 ws0 = _mm512_setzero_ps(), ws1 = ws0;
    if (last || grouped) {
        ws0 = full ? _mm512_loadu_ps(ws) : _mm512_maskz_loadu_ps(m0, ws);
        ws1 = full ? _mm512_loadu_ps(ws + 16) : _mm512_maskz_loadu_ps(m1, ws + 16);
    }
    __m512 ms0 = _mm512_setzero_ps(), ms1 = ms0;
    if (mins) {
        ms0 = full ? _mm512_loadu_ps(mins->m) : _mm512_maskz_loadu_ps(m0, mins->m);
        ms1 = full ? _mm512_loadu_ps(mins->m + 16) : _mm512_maskz_loadu_ps(m1, mins->m + 16);
    }
#define I16_STORE(i) \
    if (i < mt) { \
        float *yr = y + (size_t)i * ldy; \
        __m512 vs = _mm512_set1_ps(xs[(size_t)i * ldxs]), y0 = _mm512_setzero_ps(), y1 = y0; \
        __m512 vs0 = grouped ? _mm512_mul_ps(ws0, vs) : vs, vs1 = grouped ? _mm512_mul_ps(ws1, vs) : vs; \
        if (!first) { \
            y0 = full ? _mm512_loadu_ps(yr) : _mm512_maskz_loadu_ps(m0, yr); \
            y1 = full ? _mm512_loadu_ps(yr + 16) : _mm512_maskz_loadu_ps(m1, yr + 16); \
        } \
        y0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c##i##0), vs0, y0); \
        y1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c##i##1), vs1, y1); \
        if (mins) { /* q4k: y = fmaf(-m, sx * xs, y) */ \
            __m512 sx = _mm512_set1_ps(mins->sx[(size_t)i * mins->ldsx]); \
            y0 = _mm512_fnmadd_ps(ms0, sx, y0); \
            y1 = _mm512_fnmadd_ps(ms1, sx, y1); \
        } \
        if (last && !grouped) { \
            y0 = _mm512_mul_ps(y0, ws0); \
            y1 = _mm512_mul_ps(y1, ws1); \
        } \
        if (full) { \
            _mm512_storeu_ps(yr, y0); \
            _mm512_storeu_ps(yr + 16, y1); \
        } else { \
            _mm512_mask_storeu_ps(yr, m0, y0); \
            _mm512_mask_storeu_ps(yr + 16, m1, y1); \
        } \
    }
    I16_STORE(0) I16_STORE(1) I16_STORE(2) I16_STORE(3) I16_STORE(4) I16_STORE(5)
    I16_STORE(6) I16_STORE(7) I16_STORE(8) I16_STORE(9) I16_STORE(10) I16_STORE(11)
#undef I16_STORE
}

/// I16_FN(tile_i16) with the token count a constant (the accumulators then stay in registers).
static I16_ATTR void I16_FN(micro_i16)(int mt, int nr, const int16_t *x, size_t ldx, const int16_t *p, size_t kp,
                                      const float *xs, size_t ldxs, const float *ws, float *y, size_t ldy, bool first, bool last,
                                      bool grouped, const edge_i16_mins *mins) {
    switch (mt) {
#define I16_CASE(m) \
    case m: I16_FN(tile_i16)(m, nr, x, ldx, p, kp, xs, ldxs, ws, y, ldy, first, last, grouped, mins); break;
        I16_CASE(1) I16_CASE(2) I16_CASE(3) I16_CASE(4) I16_CASE(5) I16_CASE(6)
        I16_CASE(7) I16_CASE(8) I16_CASE(9) I16_CASE(10) I16_CASE(11) I16_CASE(12)
#undef I16_CASE
    }
}

// ---- Row streaming (decoding) ----------------------------------------------------------------

/// The few-token form of matmul_q8_i16: each weight row streamed once, in order, 64 bytes at a time
/// widened to int16 (vpmovsxbw, two zmm), against each token's activations, two int32 accumulators per
/// token; the block's last columns with masked loads. T <= I16_ROW_MT.
I16_INLINE void I16_FN(q8_i16_rows)(const size_t T, const int8_t *Wq, const float *wscale, const int16_t *Xq,
                                    const float *xscale, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        const int8_t *w = Wq + r * cols;
        edge_prefetch_ahead((const uint8_t *)w, cols, (const uint8_t *)(Wq + r1 * cols));
        float acc[I16_ROW_MT] = {0};
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK, k = k0;
            __m512i s0[I16_ROW_MT], s1[I16_ROW_MT];
            for (size_t t = 0; t < T; t++) s0[t] = s1[t] = _mm512_setzero_si512();
            for (; k + 64 <= k1; k += 64) {
                __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + k)));
                __m512i w1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + k + 32)));
                for (size_t t = 0; t < T; t++) {
                    const int16_t *x = Xq + t * ld + k;
                    s0[t] = I16_DP(s0[t], w0, _mm512_loadu_si512((const void *)x));
                    s1[t] = I16_DP(s1[t], w1, _mm512_loadu_si512((const void *)(x + 32)));
                }
            }
            for (; k < k1; k += 32) {  // masked lanes are zero in both operands
                __mmask32 m = mask32(k1 - k);
                __m512i w0 = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, w + k));
                for (size_t t = 0; t < T; t++) s0[t] = I16_DP(s0[t], w0, _mm512_maskz_loadu_epi16(m, Xq + t * ld + k));
            }
            for (size_t t = 0; t < T; t++) {
                int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(s0[t], s1[t]));
                acc[t] = fmaf((float)sum, xscale[t * nb + b], acc[t]);
            }
        }
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = acc[t] * wscale[r];
    }
}

static I16_ATTR void I16_FN(matmul_q8_i16_rows)(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale,
                                               float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    switch (T) {
    case 1: I16_FN(q8_i16_rows)(1, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    case 2: I16_FN(q8_i16_rows)(2, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    case 3: I16_FN(q8_i16_rows)(3, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    default: I16_FN(q8_i16_rows)(4, Wq, wscale, Xq, xscale, Y, rows, cols, r0, r1); break;
    }
}

/// edge_matmul_q8_i16: up to I16_ROW_MT tokens the row-streaming form, more the packed 12x32 tiles
/// through the driver AVX2 shares (edge_matmul_q8_i16_driver: per 256-column block and block of 128
/// rows, the rows packed once into panels of 32, then every 12 tokens against every panel).
static I16_ATTR void I16_FN(matmul_q8_i16)(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale,
                                          float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_matmul_q8_i16_driver(I16_FN(matmul_q8_i16_rows), I16_FN(micro_i16), I16_PMT, I16_PNR, Wq, wscale, Xq, xscale, Y,
                              T, rows, cols, r0, r1);
}

/// edge_gemm_q4_i16 through the shared driver with this form's 12x32 tile.
static I16_ATTR void I16_FN(gemm_q4_i16)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                                        const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                                        size_t cols, size_t r0, size_t r1) {
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    edge_gemm_q4_i16_driver(I16_FN(micro_i16), NULL, I16_PMT, I16_PNR, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

/// edge_gemm_q4k_i16 through the same driver and tile (codes u, the min term in the tile's store).
static I16_ATTR void I16_FN(gemm_q4k_i16)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs,
                                         size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T,
                                         size_t rows, size_t cols, size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(gs, sub_bits)) return;
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    edge_gemm_q4_i16_driver(I16_FN(micro_i16), NULL, I16_PMT, I16_PNR, &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}
