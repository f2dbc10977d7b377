// Private to avx512.c, which includes it twice: the q4 x int8 (blocks of 32) decoding rows of
// edge_matmul_q4_q8b32, once with VNNI (Q4_DP2 = two vpdpbusd: unsigned nibble bytes times signed
// activation bytes, four products summed into each int32 lane) and once with AVX-512BW only
// (vpmaddubsw per plane, the two int16 results added, vpmaddwd with ones). The integer sums are the
// same either way, so both forms are bit-identical to the reference. Before each inclusion avx512.c
// defines Q4_FN(name), Q4_ATTR / Q4_INLINE (target attributes) and Q4_DP2(acc, lo, xe, hi, xo).

/// edge_matmul_q4_q8b32 for T <= 4 tokens (a constant at each use) against the activations of
/// edge_q4q8_prepare: per row and 128-column block, one 64-byte load (masked on the row's last block),
/// the nibbles masked into the even (low) and odd (high) planes, plus 16 - z per lane when asymmetric
/// (zero points widened, permuted to their lanes and replicated to the lane's four bytes); the group
/// scales permuted to their lanes the same way; per token two byte dot products into the prepared
/// init, converted and folded with fmaf as the reference does.
Q4_INLINE void Q4_FN(q4_q8_rows)(const size_t T, const bool asym, const uint8_t *Wq, const uint16_t *scale_f16,
                                 const uint8_t *zero, size_t gs, const int8_t *planes, const int32_t *init,
                                 const float *xs, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t nblk = (cols + 127) / 128, G = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2;
    size_t per_block = gs <= 128 ? 128 / gs : 1;  // groups a full block spans
    int32_t lane_group[16];
    for (int l = 0; l < 16; l++) lane_group[l] = edge_q4q8_lane_group(gs, l);
    const __m512i idx = _mm512_loadu_si512((const void *)lane_group);
    const __m512i m4 = _mm512_set1_epi8(0x0F), c16 = _mm512_set1_epi8(16);
    const __m512i rep = _mm512_set_epi8(12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0, 12, 12, 12, 12, 8, 8, 8, 8, 4,
                                        4, 4, 4, 0, 0, 0, 0, 12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0, 12, 12,
                                        12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *q = Wq + r * row_bytes;
        edge_prefetch_ahead(q, row_bytes, Wq + r1 * row_bytes);
        __m512 acc[4];
        for (size_t t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (size_t j = 0; j < nblk; j++) {
            size_t c0 = 128 * j, nbytes = row_bytes - c0 / 2, g0 = c0 / gs, ng = G - g0 < per_block ? G - g0 : per_block;
            __m512i v = nbytes >= 64 ? _mm512_loadu_si512((const void *)(q + c0 / 2))
                                     : _mm512_maskz_loadu_epi8(mask64(nbytes), q + c0 / 2);
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            size_t gi = r * G + g0;
            __m512 ws = _mm512_permutexvar_ps(idx, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(ng), scale_f16 + gi)));
            if (asym) {
                __m512i z = _mm512_permutexvar_epi32(idx, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask16(ng), zero + gi)));
                __m512i zb = _mm512_sub_epi8(c16, _mm512_shuffle_epi8(z, rep));
                lo = _mm512_add_epi8(lo, zb);
                hi = _mm512_add_epi8(hi, zb);
            }
            __mmask16 live = c0 + 128 <= cols ? (__mmask16)0xFFFF : mask16((cols - c0 + 7) / 8);
            for (size_t t = 0; t < T; t++) {
                size_t o = t * nblk + j;
                const int8_t *p = planes + o * 128;
                __m512i s = _mm512_loadu_si512((const void *)(init + o * 16));
                s = Q4_DP2(s, lo, _mm512_loadu_si512((const void *)p), hi, _mm512_loadu_si512((const void *)(p + 64)));
                // Lanes without columns: s is 0 (zero planes and init) and d is made exactly 0, so
                // fmaf(0, 0, a) leaves a (never -0) as it is, whatever scale the lane was given.
                __m512 d = _mm512_maskz_mul_ps(live, ws, _mm512_loadu_ps(xs + o * 16));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[t]);
            }
        }
        for (size_t t = 0; t < T; t++) {  // the reference's order: (l, l+8), then (l, l+4), (l, l+2), (0, 1)
            __m256 b = _mm256_add_ps(_mm512_castps512_ps256(acc[t]),
                                     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1)));
            __m128 c = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
            __m128 e = _mm_add_ps(c, _mm_movehl_ps(c, c));
            Y[t * rows + r] = _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
        }
    }
}

/// Q4_FN(q4_q8_rows) with the token count and symmetry constants.
static Q4_ATTR void Q4_FN(q4_q8_rows_any)(size_t T, const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero,
                                          size_t gs, const int8_t *planes, const int32_t *init, const float *xs,
                                          float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
#define Q4Q8(t) \
    if (zero) Q4_FN(q4_q8_rows)(t, true, Wq, scale_f16, zero, gs, planes, init, xs, Y, rows, cols, r0, r1); \
    else Q4_FN(q4_q8_rows)(t, false, Wq, scale_f16, zero, gs, planes, init, xs, Y, rows, cols, r0, r1)
    switch (T) {
    case 1: Q4Q8(1); break;
    case 2: Q4Q8(2); break;
    case 3: Q4Q8(3); break;
    default: Q4Q8(4); break;
    }
#undef Q4Q8
}

static Q4_ATTR void Q4_FN(matmul_q4_q8b32)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs,
                                           const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                                           size_t cols, size_t r0, size_t r1) {
    edge_q4q8_chunks(Q4_FN(q4_q8_rows_any), Wq, scale_f16, zero, gs, Xq, xscale, Y, T, rows, cols, r0, r1);
}
