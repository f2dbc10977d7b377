// The one-token q4 / q4k x int16 byte-plane driver, included by avx2.c and avx512.c after their
// q4b_planes (the activation planes) and q4b_span (a row pair's columns), with Q4B_ATTR / Q4B_INLINE
// their target attributes: the planes (and q4's lane sums, or q4k's (float)sx_g * xs) built once per
// call, then the rows two at a time, each pass's per-row work (q4k's d_g / m_g, min terms, final sum) here.

/// Whether the byte-plane kernel takes the call: one token, groups of 32 or 64, whole 64-column units.
static inline bool q4b_takes(size_t T, size_t gs, size_t cols) { return T == 1 && cols % 64 == 0 && (gs == 32 || gs == 64); }

/// The eight float lanes' sum ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), the reference's order.
Q4B_INLINE float q4b_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Rows r ..< r + NR (NR = 1 or 2) for one token: q4k's d_g and m_g of each row (dm: d then m, Gp
/// apiece per row), the level's q4b_span over the row's columns, q4k's min terms, the final sum.
Q4B_INLINE void q4b_pass(const size_t NR, const bool k4, const bool two, const edge_q4x *w, const uint8_t *pl,
                         const int32_t *xl, float *dm, const float *sxs, size_t Gp, const float *xscale, float *Y,
                         size_t rows, size_t cols, size_t r, size_t r1) {
    size_t groups = cols / w->gs, row_bytes = cols / 2, srb = (2 * w->sub_bits * groups + 7) / 8;
    const uint8_t *q0 = w->Wq + r * row_bytes;
    edge_prefetch_ahead(q0, NR * row_bytes, w->Wq + r1 * row_bytes);
    if (k4)
        for (size_t i = 0; i < NR; i++)
            q4k_row_dm(w->sub + (r + i) * srb, (rows - r - i) * srb, w->sub_bits, _cvtsh_ss(w->super_f16[2 * (r + i)]),
                       _cvtsh_ss(w->super_f16[2 * (r + i) + 1]), groups, dm + 2 * i * Gp, dm + (2 * i + 1) * Gp);
    __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    q4b_span(NR, k4, two, w, q0, row_bytes, groups, cols, pl, xl, dm, Gp, xscale, r, a);
    for (size_t i = 0; i < NR; i++) {
        if (k4) {  // the min terms, as q4_i16_rows: e_(g % 8) = fmaf(m_g, sxs_g, e_(g % 8)), then a_l - e_l
            const float *gm = dm + (2 * i + 1) * Gp;
            __m256 e = _mm256_setzero_ps();
            for (size_t g = 0; g < groups; g += 8) e = _mm256_fmadd_ps(_mm256_loadu_ps(gm + g), _mm256_loadu_ps(sxs + g), e);
            a[i] = _mm256_sub_ps(a[i], e);
        }
        Y[r + i] = q4b_hsum(a[i]);
    }
}

/// Rows r0 ..< r1, two at a time, with the form constants.
Q4B_INLINE void q4b_rows(const bool k4, const bool two, const edge_q4x *w, const uint8_t *pl, const int32_t *xl,
                         float *dm, const float *sxs, size_t Gp, const float *xscale, float *Y, size_t rows, size_t cols,
                         size_t r0, size_t r1) {
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) q4b_pass(2, k4, two, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r, r1);
    if (r < r1) q4b_pass(1, k4, two, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r, r1);
}

static Q4B_ATTR void q4b_matmul(const edge_q4x *w, const int16_t *Xq, const float *xscale, float *Y, size_t rows,
                                size_t cols, size_t r0, size_t r1) {
    size_t gs = w->gs, groups = cols / gs, Gp = (groups + 7) & ~(size_t)7, blocks = (cols + 127) / 128;
    bool two = gs == 32, k4 = w->sub != NULL;
    uint8_t pstack[256 * 24];
    int32_t lstack[16 * 24];
    float fstack[5 * 256];
    uint8_t *pl = blocks <= 24 ? pstack : (uint8_t *)malloc(256 * blocks);
    int32_t *xl = k4 ? NULL : blocks <= 24 ? lstack : (int32_t *)malloc(sizeof(int32_t) * 16 * blocks);
    float *dm = !k4 ? NULL : 5 * Gp <= sizeof fstack / sizeof *fstack ? fstack : (float *)malloc(sizeof(float) * 5 * Gp);
    if (!pl || (!k4 && !xl) || (k4 && !dm)) abort();
    float *sxs = k4 ? dm + 4 * Gp : NULL;  // dm: d and m of two rows, then the group sums
    q4b_planes(Xq, cols, pl, xl);
    if (k4) edge_q4k_group_sums(Xq, xscale, cols, gs, Gp, sxs);
    if (k4) {
        if (two) q4b_rows(true, true, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r0, r1);
        else q4b_rows(true, false, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r0, r1);
    } else {
        if (two) q4b_rows(false, true, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r0, r1);
        else q4b_rows(false, false, w, pl, xl, dm, sxs, Gp, xscale, Y, rows, cols, r0, r1);
    }
    if (pl != pstack) free(pl);
    if (xl && xl != lstack) free(xl);
    if (dm && dm != fstack) free(dm);
}
