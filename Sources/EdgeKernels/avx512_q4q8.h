// Private to avx512.c, which includes it twice: the q4 and q4k x int8 (blocks of 32) decoding rows of
// edge_matmul_q4_q8b32 / edge_matmul_q4k_q8b32, once with VNNI (Q4_DP2 = two vpdpbusd: unsigned nibble bytes times signed
// activation bytes, four products summed into each int32 lane) and once with AVX-512BW only
// (vpmaddubsw per plane, the two int16 results added, vpmaddwd with ones). The integer sums are the
// same either way, so both forms are bit-identical to the reference. Before each inclusion avx512.c
// defines Q4_FN(name), Q4_ATTR / Q4_INLINE (target attributes) and Q4_DP2(acc, lo, xe, hi, xo).

/// edge_matmul_q4_q8b32 and edge_matmul_q4k_q8b32 (k4) for T <= 4 tokens (a constant at each use)
/// against the activations of edge_q4q8_prepare: per row and 128-column block, one 64-byte load (masked
/// on the row's last block), the nibbles masked into the even (low) and odd (high) planes, plus 16 - z
/// per lane when asymmetric (zero points widened, permuted to their lanes and replicated to the lane's
/// four bytes; q4k: the codes as they are); the group scales (q4k: d_g and m_g, unpacked once per row
/// into a->gd / a->gm) permuted to their lanes the same way; per token two byte dot products (q4: into
/// the prepared init), converted and folded with fmaf as the reference does, q4k's min term then one
/// fnmadd against the prepared (float)sx * xs.
Q4_INLINE void Q4_FN(q4_q8_rows)(const size_t T, const bool asym, const bool k4, const edge_q4x *w,
                                 const edge_q4q8_act *a, float *Y, size_t rows, size_t cols, size_t r0, size_t r1) {
    const uint8_t *Wq = w->Wq, *zero = w->zero;
    const uint16_t *scale_f16 = w->scale_f16;
    const int8_t *planes = a->planes;
    const int32_t *init = a->init;
    const float *xs = a->xs, *sxs = a->sxs;
    size_t gs = w->gs, nblk = (cols + 127) / 128, G = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2;
    size_t srb = (2 * w->sub_bits * G + 7) / 8;
    size_t per_block = gs <= 128 ? 128 / gs : 1;  // groups a full block spans
    int32_t lane_group[16], lane_dm[32];
    for (int l = 0; l < 16; l++) {
        lane_group[l] = edge_q4q8_lane_group(gs, l);
        lane_dm[l] = 2 * lane_group[l], lane_dm[16 + l] = 2 * lane_group[l] + 1;
    }
    const __m512i idx = _mm512_loadu_si512((const void *)lane_group);
    // q4k, groups of 32 or more (at most 4 per block, 2b bits each: within 64 bits of the row's
    // sub-code stream from the block's first group, shifted down 0 or 4): the block's d_g, m_g straight
    // from those bits, 64-bit lane k = the bits shifted down k*b, masked, narrowed to
    // (sc_0, mn_0, sc_1, mn_1, ...) and times (D, M, D, M, ...), then permuted to the lanes.
    // Smaller groups: the row's d_g, m_g unpacked once per row into a->gd / a->gm.
    const bool direct = k4 && gs >= 32;
    const size_t sb = w->sub_bits;
    const __m512i idx_d = _mm512_loadu_si512((const void *)lane_dm), idx_m = _mm512_loadu_si512((const void *)(lane_dm + 16));
    const __m512i shifts = _mm512_set_epi64((long long)(7 * sb), (long long)(6 * sb), (long long)(5 * sb), (long long)(4 * sb),
                                            (long long)(3 * sb), (long long)(2 * sb), (long long)sb, 0);
    const __m512i bmask = _mm512_set1_epi64(sb == 8 ? 0xFF : 0x3F);
    const __m512i m4 = _mm512_set1_epi8(0x0F), c16 = _mm512_set1_epi8(16);
    const __m512i rep = _mm512_set_epi8(12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0, 12, 12, 12, 12, 8, 8, 8, 8, 4,
                                        4, 4, 4, 0, 0, 0, 0, 12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0, 12, 12,
                                        12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *q = Wq + r * row_bytes;
        edge_prefetch_ahead(q, row_bytes, Wq + r1 * row_bytes);
        const uint8_t *srow = k4 ? w->sub + r * srb : NULL;
        size_t savail = (rows - r) * srb;  // sub-code bytes readable from srow
        __m256 dm = _mm256_setzero_ps();
        if (k4) {
            uint32_t dmbits;
            memcpy(&dmbits, w->super_f16 + 2 * r, 4);
            __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dmbits));  // D, M: exact, as edge_f16_to_f32
            dm = _mm256_castpd_ps(_mm256_broadcastsd_pd(_mm_castps_pd(v)));
            if (!direct) edge_q4k_row_dm_avx2(srow, savail, sb, _mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)), G, a->gd, a->gm);
        }
        __m512 acc[4];
        for (size_t t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (size_t j = 0; j < nblk; j++) {
            size_t c0 = 128 * j, nbytes = row_bytes - c0 / 2, g0 = c0 / gs, ng = G - g0 < per_block ? G - g0 : per_block;
            __m512i v = nbytes >= 64 ? _mm512_loadu_si512((const void *)(q + c0 / 2))
                                     : _mm512_maskz_loadu_epi8(mask64(nbytes), q + c0 / 2);
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            size_t gi = r * G + g0;
            __m512 ws, wm = _mm512_setzero_ps();
            if (direct) {
                size_t bit = 2 * sb * g0, off = bit / 8;  // off < savail: group g0 is in the row
                uint64_t bits = 0;
                if (savail - off >= 8) memcpy(&bits, srow + off, 8);
                else memcpy(&bits, srow + off, savail - off);  // the tensor's last bytes
                bits >>= bit & 7;
                __m512i f = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64((long long)bits), shifts), bmask);
                __m512 p = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(f)), dm));
                ws = _mm512_permutexvar_ps(idx_d, p);
                wm = _mm512_permutexvar_ps(idx_m, p);
            } else if (k4) {
                ws = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(mask16(ng), a->gd + g0));
                wm = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(mask16(ng), a->gm + g0));
            } else {
                ws = _mm512_permutexvar_ps(idx, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(ng), scale_f16 + gi)));
            }
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
                __m512i s = k4 ? _mm512_setzero_si512() : _mm512_loadu_si512((const void *)(init + o * 16));
                s = Q4_DP2(s, lo, _mm512_loadu_si512((const void *)p), hi, _mm512_loadu_si512((const void *)(p + 64)));
                // Lanes without columns: s is 0 (zero planes and init) and d is made exactly 0, so
                // fmaf(0, 0, a) leaves a (never -0) as it is, whatever scale the lane was given; q4k's
                // min term there is fnmadd(m, 0, a) with m finite (0 past the row's groups), which leaves a too.
                __m512 d = _mm512_maskz_mul_ps(live, ws, _mm512_loadu_ps(xs + o * 16));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[t]);
                if (k4) acc[t] = _mm512_fnmadd_ps(wm, _mm512_loadu_ps(sxs + o * 16), acc[t]);
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

/// Q4_FN(q4_q8_rows) with the token count and form constants.
static Q4_ATTR void Q4_FN(q4_q8_rows_any)(size_t T, const edge_q4x *w, const edge_q4q8_act *a, float *Y, size_t rows,
                                          size_t cols, size_t r0, size_t r1) {
#define Q4Q8(t) \
    if (w->sub) Q4_FN(q4_q8_rows)(t, false, true, w, a, Y, rows, cols, r0, r1); \
    else if (w->zero) Q4_FN(q4_q8_rows)(t, true, false, w, a, Y, rows, cols, r0, r1); \
    else Q4_FN(q4_q8_rows)(t, false, false, w, a, Y, rows, cols, r0, r1)
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
    edge_q4x w = edge_q4x_q4(Wq, scale_f16, zero, gs);
    edge_q4q8_chunks(Q4_FN(q4_q8_rows_any), &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static Q4_ATTR void Q4_FN(matmul_q4k_q8b32)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs,
                                            size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T,
                                            size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_q4x w = edge_q4x_q4k(Wq, sub, super_f16, gs, sub_bits);
    edge_q4q8_chunks(Q4_FN(q4_q8_rows_any), &w, Xq, xscale, Y, T, rows, cols, r0, r1);
}
