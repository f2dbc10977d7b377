// Private to EdgeKernels: the one blocked GEMM driver every SIMD level shares (gemm_driver.c).
//
// Y[t, r] = dot(W[r, :], X[t, :]) for f32, f16, q8, q4, q3 (and q3s) and q4k weights. The driver owns the blocking,
// the packing and the choice between the two kernels; a SIMD level contributes only what touches
// registers, in an `edge_gemm_isa`:
// - `unpack_f16`, `unpack_q8`, `unpack_q4`, `unpack_q3`, `unpack_q4k`: the weight unpackers, a run of one
//   row's weights to f32 (the driver walks rows, column blocks and q4/q3/q4k groups, reads the groups'
//   scales, and converts what an unpacker leaves with the same scalar formula; q3s is q3 with each
//   group's scale and zero point read from sub-codes, through the same unpack_q3);
// - `dot_tile`: the dot-product micro-kernel (few tokens): mt <= dot_mt tokens x nr <= dot_nr rows,
//   both operands contiguous along k, horizontal sums once per tile;
// - `packed_tile` (optional): the outer-product micro-kernel (many tokens): mt <= packed_mt tokens x
//   nr <= packed_nr rows against a panel of packed_nr rows stored k-major ([k][packed_nr], zero-padded,
//   64-byte aligned), so each k loads whole vectors of weights and broadcasts one activation per token.
// Threading is the caller's: each thread calls with its own row range [r0, r1).
#ifndef EDGE_KERNELS_GEMM_DRIVER_H
#define EDGE_KERNELS_GEMM_DRIVER_H

#include "EdgeKernels.h"

/// How a GEMM's weights are stored. EDGE_W_F32T: f32 stored transposed, W^T [cols, rows] (training's
/// input gradients dx = dy . W and weight gradients read their operands this way, without a copy).
/// EDGE_W_Q3 with `sub` set is q3s (edge_wsource_q3s): the q3 codes, sub-coded group scales and zeros.
typedef enum edge_wkind { EDGE_W_F32, EDGE_W_F16, EDGE_W_Q8, EDGE_W_Q4, EDGE_W_Q3, EDGE_W_F32T, EDGE_W_Q4K } edge_wkind;

/// Where a GEMM's weights come from and how to turn them into f32. W is [rows, cols] in `kind`
/// ([cols, rows] for EDGE_W_F32T).
typedef struct edge_wsource {
    edge_wkind kind;
    const void *W;
    size_t ld;                 // f32t: the row stride of W^T (= rows)
    const float *scale;        // q8: [rows]
    const uint16_t *scale_f16; // q4/q3: [rows, groups] binary16
    const uint8_t *zero;       // q8: [rows] / q4/q3: [rows, groups]; NULL = symmetric
    size_t group_size, groups, row_bytes;  // q4/q3/q4k only
    const uint8_t *sub;        // q4k: [rows, sub_row_bytes] little-endian bit streams of (sc, mn) per group;
                               // q3s: of (sc, z) per group; NULL for plain q3
    const uint16_t *super_f16; // q4k: [rows, 2] binary16 (D, M); q3s: [rows] binary16 D
    size_t sub_bits, sub_row_bytes;  // q4k / q3s only: b (6 or 8), ceil(2 * b * groups / 8) / ceil((b + 3) * groups / 8)
} edge_wsource;

/// A SIMD level's micro-kernels and weight unpacker (see the top of this file).
typedef struct edge_gemm_isa {
    /// Kernel names as edge_kernels_gemm_name reports them, e.g. "avx2-dot-4x3", "avx2-packed-6x16".
    const char *dot_name, *packed_name;
    /// Unpackers: each converts a leading part of dst[0..n) (whole vectors, or all n) and returns its
    /// length; the driver converts the rest with the scalar formula, the same float operations.
    /// f16: dst[i] = f32 of binary16 src[i].
    size_t (*unpack_f16)(const uint16_t *src, size_t n, float *dst);
    /// q8: dst[i] = scale * (float)(q[i] - zero), q[i] unsigned when `asymmetric`, else signed (zero 0).
    size_t (*unpack_q8)(const uint8_t *src, size_t n, float scale, bool asymmetric, int zero, float *dst);
    /// q4: dst[i] = scale * (float)(nibble i - zero), nibble 2b the low and 2b + 1 the high half of bytes[b].
    size_t (*unpack_q4)(const uint8_t *bytes, size_t n, float scale, int zero, float *dst);
    /// q3: dst[i] = scale * (float)(code i - zero), code i in bits 3i...3i+2 of the little-endian bit
    /// stream at bytes (bytes starts a unit of 8 codes; at most ceil(3n/8) bytes may be read).
    size_t (*unpack_q3)(const uint8_t *bytes, size_t n, float scale, int zero, float *dst);
    /// q4k: dst[i] = d * (float)(nibble i) - m, nibbles as q4's (one group's run: d = D * sc, m = M * mn).
    /// d * u is exact in binary32, so a fused multiply-subtract gives the scalar formula's bits.
    size_t (*unpack_q4k)(const uint8_t *bytes, size_t n, float d, float m, float *dst);
    /// y[t*ldy + r] (+)= dot(w[r*ldw ..], x[t*ldx ..]) over kc columns, t < mt <= dot_mt, r < nr <= dot_nr.
    void (*dot_tile)(int mt, int nr, const float *w, size_t ldw, const float *x, size_t ldx, float *y, size_t ldy,
                     size_t kc, bool accumulate);
    int dot_mt, dot_nr;
    /// y[t*ldy + r] (+)= sum_k x[t*ldx + k] * p[k*packed_nr + r], t < mt <= packed_mt, r < nr <= packed_nr.
    /// NULL: this level has no packed kernel and always runs dot_tile.
    void (*packed_tile)(int mt, int nr, const float *x, size_t ldx, const float *p, size_t kc, float *y, size_t ldy,
                        bool accumulate);
    int packed_mt, packed_nr;
    /// Tokens from which packing the weights pays (EDGE_GEMM_AUTO).
    size_t packed_min_t;
    /// Optional (NULL: none): one token (T == 1, decoding) computed straight from the stored weights,
    /// no dequantized buffer. Each row's weights are unpacked to exactly the values `unpack_*` and the
    /// scalar formula give, and summed with exactly the float operations of `dot_tile` over the same
    /// column blocks, so the outputs are bit-identical to the dot path's. Returns false, computing
    /// nothing, for a source it does not take (the driver then runs the dot path).
    bool (*matvec)(const edge_wsource *s, const float *x, float *y, size_t cols, size_t r0, size_t r1);
    /// Its name as edge_kernels_gemm_name reports it, e.g. "avx2-fused-1x1".
    const char *matvec_name;
    /// Optional (NULL: the driver's scalar formula for all of it): the bfloat16 rounding of
    /// edge_gemm_bf16, dst[i] = edge_bf16_round(src[i]) as f32 bits (the same bits), over a leading part
    /// of [0, n) in whole vectors, whose length it returns; with `swap`, elements 2q and 2q + 1 trade
    /// places (a vector holds whole pairs).
    size_t (*round_bf16)(const float *src, size_t n, bool swap, float *dst);
    /// Optional (NULL: the driver's scalar copy for all of it): packs packed_nr whole rows (row i at
    /// src + i * ld) into panel[k * packed_nr + i] for k in a leading part of [0, kc) in whole blocks
    /// (register transposes), whose length it returns; a copy, so the same panel.
    size_t (*pack_rows)(const float *src, size_t ld, size_t kc, float *panel);
} edge_gemm_isa;

/// Expands CASE(mt, nr) for every micro-kernel tile shape up to 4 tokens x 4 rows, as the `case`s
/// of a `switch (mt * 8 + nr)` that calls an always-inline tile with constant shapes.
#define EDGE_TILES_4X4(CASE)                                                                           \
    CASE(4, 4) CASE(4, 3) CASE(4, 2) CASE(4, 1) CASE(3, 4) CASE(3, 3) CASE(3, 2) CASE(3, 1) CASE(2, 4) \
    CASE(2, 3) CASE(2, 2) CASE(2, 1) CASE(1, 4) CASE(1, 3) CASE(1, 2) CASE(1, 1)

/// Whether edge_gemm runs `isa`'s packed kernel for T tokens in `mode`.
static inline bool edge_gemm_uses_packed(const edge_gemm_isa *isa, edge_gemm_mode mode, size_t T) {
    return isa->packed_tile && mode == EDGE_GEMM_AUTO && T >= isa->packed_min_t;
}

/// Y[t, r0..r1) = X[t, :] . W[r, :] over any weight source, with the kernel edge_gemm_uses_packed picks.
/// X [T, cols], Y [T, rows].
void edge_gemm(const edge_gemm_isa *isa, edge_gemm_mode mode, const edge_wsource *s, const float *X, float *Y,
               size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// edge_matmul_bf16 (EdgeKernelsMath.h) on the level's f32 packed tile (isa->packed_tile, not NULL): per
/// EDGE_BF16_BLOCK columns the tokens' activations and the weights (f32 or f32t sources) are rounded to
/// bfloat16 and each column pair swapped, so the tile's one fma per column in order runs column 2q + 1
/// before 2q, as vdpbf16ps does. T, cols and [r0, r1) are not empty (dispatch.c answers those). Threading
/// is the caller's, as edge_gemm's.
void edge_gemm_bf16(const edge_gemm_isa *isa, const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows,
                    size_t cols, size_t r0, size_t r1);
/// A 64-byte-aligned buffer of at least n floats owned by the calling thread, grown as needed, reused
/// by later calls on that thread (so a caller must not hold it across another call that uses it) and
/// freed when the thread exits. NULL when memory runs out.
float *edge_thread_buffer(size_t n);

/// The weight sources of the public float-activation products (arguments as in EdgeKernelsMath.h).
static inline edge_wsource edge_wsource_f32(const float *W) { return (edge_wsource){.kind = EDGE_W_F32, .W = W}; }
/// Wt is W^T [cols, rows]: W[r, k] = Wt[k * rows + r].
static inline edge_wsource edge_wsource_f32t(const float *Wt, size_t rows) {
    return (edge_wsource){.kind = EDGE_W_F32T, .W = Wt, .ld = rows};
}
static inline edge_wsource edge_wsource_f16(const uint16_t *W) { return (edge_wsource){.kind = EDGE_W_F16, .W = W}; }
static inline edge_wsource edge_wsource_q8(const int8_t *Wq, const float *scale, const uint8_t *zero) {
    return (edge_wsource){.kind = EDGE_W_Q8, .W = Wq, .scale = scale, .zero = zero};
}
/// group_size > 0.
static inline edge_wsource edge_wsource_q4(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero,
                                           size_t group_size, size_t cols) {
    return (edge_wsource){.kind = EDGE_W_Q4, .W = Wq, .scale_f16 = scale_f16, .zero = zero, .group_size = group_size,
                          .groups = (cols + group_size - 1) / group_size, .row_bytes = (cols + 1) / 2};
}
/// group_size > 0, a multiple of 8.
static inline edge_wsource edge_wsource_q3(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero,
                                           size_t group_size, size_t cols) {
    return (edge_wsource){.kind = EDGE_W_Q3, .W = Wq, .scale_f16 = scale_f16, .zero = zero, .group_size = group_size,
                          .groups = (cols + group_size - 1) / group_size, .row_bytes = (3 * cols + 7) / 8};
}
/// group_size > 0, a multiple of 8; sub_bits 6 or 8. super_f16: [rows] binary16 D. q3's codes and unpacker,
/// each group's scale D * sc and zero point z read from the sub-codes (edge_q3s_group).
static inline edge_wsource edge_wsource_q3s(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16,
                                            size_t group_size, size_t sub_bits, size_t cols) {
    edge_wsource s = edge_wsource_q3(Wq, NULL, NULL, group_size, cols);
    s.sub = sub;
    s.super_f16 = super_f16;
    s.sub_bits = sub_bits;
    s.sub_row_bytes = ((sub_bits + 3) * s.groups + 7) / 8;
    return s;
}
/// group_size > 0, sub_bits 6 or 8. super_f16: [rows, 2] binary16 (D, M).
static inline edge_wsource edge_wsource_q4k(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16,
                                            size_t group_size, size_t sub_bits, size_t cols) {
    size_t groups = (cols + group_size - 1) / group_size;
    return (edge_wsource){.kind = EDGE_W_Q4K, .W = Wq, .sub = sub, .super_f16 = super_f16, .group_size = group_size,
                          .groups = groups, .row_bytes = (cols + 1) / 2, .sub_bits = sub_bits,
                          .sub_row_bytes = (2 * sub_bits * groups + 7) / 8};
}

#endif
