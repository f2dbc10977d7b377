// The one-token q4 / q4k x int16 byte-plane driver, included by avx2.c and avx512.c after their
// q4b_planes and q4b_pass (with Q4B_ATTR / Q4B_INLINE their target attributes): the planes (and q4's
// lane sums, or q4k's (float)sx_g * xs) built once per call, then the rows two at a time.

/// Whether the byte-plane kernel takes the call: one token, groups of 32 or 64, whole 64-column units.
static inline bool q4b_takes(size_t T, size_t gs, size_t cols) { return T == 1 && cols % 64 == 0 && (gs == 32 || gs == 64); }

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
    if (k4)
        for (size_t g = 0; g < Gp; g++) {
            int32_t sx = 0;
            if (g < groups)
                for (size_t k = g * gs; k < (g + 1) * gs; k++) sx += Xq[k];
            sxs[g] = g < groups ? (float)sx * xscale[g * gs / EDGE_I16_BLOCK] : 0.0f;
        }
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
