// EdgeKernelsSparse: matrix products straight from the sparse payloads of docs/edge-format.md
// ("csr", "bitmask" and "nm"; SparseLayout and NMLayout in Sources/EdgeFormat/).
//
// Conventions as in EdgeKernelsMath.h: W is [rows, cols], X is [T, cols], Y is [T, rows] and a call
// writes Y[t*rows + r] = dot(W[r, :], X[t, :]) for t < T, r in [r0, r1), nothing else.
// W is given by its sub-arrays:
// - mask (bitmask): rows * ceil(cols/8) bytes; bit j%8 of byte j/8 of row r (LSB first) says W[r, j] is stored.
// - row_ptr: rows + 1 u32; the stored values of row r are values[row_ptr[r] .. row_ptr[r+1]).
// - col_idx (csr): index_width 8: u8 gaps, column c_k = c_(k-1) + col_idx[k] + 1 with c_(-1) = -1 within a row;
//   index_width 16: u16 absolute columns.
// - values: f32, f16 (binary16 bits) or q8 (int8 with zero == NULL: w = scale[r] * q; uint8 with zero:
//   w = scale[r] * (u - zero[r])), one per stored element, in row order.
// The structure must be valid (the .edge reader checks it before any kernel sees it): row_ptr starts
// at 0 and never decreases, mask popcounts match row_ptr, columns are in range and increasing.
//
// nm (packed N:M, 1 <= n < m <= 256): every row has groups of m columns (the last, the tail, has
// cols % m columns when that is not 0), and stores n slots per full group, min(n, tail) for the tail:
// slots = (cols / m) * n + min(n, cols % m) per row, in group order.
// - idx: rows * ceil(slots * bits / 8) bytes, bits = ceil(log2 m); row r starts at byte
//   r * ceil(slots * bits / 8); slot s of the row is the bits s*bits ..< (s+1)*bits of that bit
//   stream (bit i = bit i%8 of byte i/8, LSB first): its column within its group (slot s is in
//   group s / n), strictly increasing within a group and below the group's length.
// - values: rows * slots, row r's at r * slots, in slot order; encoded as for csr/bitmask.
#ifndef EDGE_KERNELS_SPARSE_H
#define EDGE_KERNELS_SPARSE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- bitmask --------------------------------------------------------------------------------
/// bitmask with q8 values (per-row scale, optional zero point) x f32 activations.
void edge_spmm_bitmask_q8_f32(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                              const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1);
void edge_spmm_bitmask_q8_f32_ref(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                  const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                                  size_t r0, size_t r1);
/// bitmask with symmetric q8 values (per-row scale, no zero point) x int16 activations from
/// edge_quantize_rows_i16 (Xq [T, edge_i16_stride(cols)], xscale [T, ceil(cols/256)]): exactly
/// edge_matmul_q8_i16 of the dense matrix (0 where a mask bit is clear), i.e. per 256-column block b
/// the exact int32 sum s_b over the stored elements of the block, acc = fmaf((float)s_b, xscale[t*nb + b],
/// acc) over b = 0, 1, ..., then Y = acc * scale[r]. Every level gives bit-identical results. The AVX2
/// kernel streams each row once for up to 4 tokens (decoding), expanding 16 stored values per step
/// with one byte shuffle chosen by the two mask bytes; on AVX512_VBMI2 CPUs the AVX-512 level
/// expands 64 per step with vpexpandb (edge_kernels_bitmask_q8_i16_name says which runs). From 5
/// tokens up (every level but the reference) the rows are expanded to dense int8, 128 rows
/// at a time, for the level's packed q8 x int16 GEMM (prompt processing).
void edge_spmm_bitmask_q8_i16(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                              const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1);
void edge_spmm_bitmask_q8_i16_ref(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                  const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                  size_t r0, size_t r1);
/// Name of the active level's edge_spmm_bitmask_q8_i16 kernel: "ref", "avx2-bitmask-i16" or
/// "avx512-vbmi2-bitmask-i16".
const char *edge_kernels_bitmask_q8_i16_name(void);
/// Whether the active level decodes (one token) bitmask and packed 2:4 q8 payloads faster than the
/// dense q8 payload of the same weights: true on the AVX-512 VBMI2 level (one vpexpandb per 64 columns);
/// false on AVX2 (a table lookup, a shuffle and a widening per 16 columns: 0.64-0.68x the dense file on a
/// Zen 4, docs/performance.md), NEON and the scalar reference. The runtime's `SparseWeights.auto` asks it.
bool edge_kernels_sparse_decode_fast(void);
/// The dense int8 matrix [rows, cols] (row-major, zeros where nothing is stored) that a bitmask payload
/// of q8 values stands for (`mask`, `row_ptr`, `values` as in edge_spmm_bitmask_q8_i16): with the same
/// row scales, a dense q8 matrix whose products are bit-identical to the payload's.
void edge_bitmask_q8_to_dense(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t rows, size_t cols,
                              int8_t *out);
/// The same for a packed 2:4 payload of q8 values (`idx`, `values` as in edge_spmm_nm24_q8_i16).
void edge_nm24_q8_to_dense(const uint8_t *idx, const int8_t *values, size_t rows, size_t cols, int8_t *out);
/// bitmask with f16 values x f32 activations.
void edge_spmm_bitmask_f16(const uint8_t *mask, const uint32_t *row_ptr, const uint16_t *values, const float *X, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_bitmask_f16_ref(const uint8_t *mask, const uint32_t *row_ptr, const uint16_t *values, const float *X, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// bitmask with f32 values x f32 activations.
void edge_spmm_bitmask_f32(const uint8_t *mask, const uint32_t *row_ptr, const float *values, const float *X, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_bitmask_f32_ref(const uint8_t *mask, const uint32_t *row_ptr, const float *values, const float *X, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

// ---- csr ------------------------------------------------------------------------------------
/// csr (index_width 8 or 16) with q8 values x f32 activations.
void edge_spmm_csr_q8_f32(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const int8_t *values,
                          const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                          size_t cols, size_t r0, size_t r1);
void edge_spmm_csr_q8_f32_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const int8_t *values,
                              const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                              size_t cols, size_t r0, size_t r1);
/// csr with f16 values x f32 activations.
void edge_spmm_csr_f16(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const uint16_t *values,
                       const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_csr_f16_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const uint16_t *values,
                           const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// csr with f32 values x f32 activations.
void edge_spmm_csr_f32(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const float *values,
                       const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_csr_f32_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const float *values,
                           const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

// ---- nm ---------------------------------------------------------------------------------------
/// nm with q8 values (per-row scale, optional zero point) x f32 activations.
void edge_spmm_nm_q8_f32(const uint8_t *idx, const int8_t *values, const float *scale, const uint8_t *zero, size_t n, size_t m,
                         const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_nm_q8_f32_ref(const uint8_t *idx, const int8_t *values, const float *scale, const uint8_t *zero, size_t n,
                             size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// nm 2:4 with symmetric q8 values (per-row scale) x int16 activations from edge_quantize_rows_i16
/// (Xq [T, edge_i16_stride(cols)], xscale [T, ceil(cols/256)]): exactly edge_matmul_q8_i16_ref of the
/// dense int8 rows the payload stands for (exact int32 sums per 256-column block, folded with fmaf,
/// times the row scale), so bit-identical to it at every level. The AVX2 kernel streams each row once
/// for up to 4 tokens, placing 8 stored values in 16 columns with one byte shuffle chosen by the
/// two index bytes; on AVX512_VBMI2 CPUs the AVX-512 level turns 8 index bytes into the mask of 64
/// columns and places their 32 values with vpexpandb. From 5 tokens up (every level but the
/// reference) the rows are expanded to dense int8 for the level's packed q8 x int16 GEMM.
void edge_spmm_nm24_q8_i16(const uint8_t *idx, const int8_t *values, const float *scale, const int16_t *Xq,
                           const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_nm24_q8_i16_ref(const uint8_t *idx, const int8_t *values, const float *scale, const int16_t *Xq,
                               const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// nm with f16 values x f32 activations.
void edge_spmm_nm_f16(const uint8_t *idx, const uint16_t *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                      size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_nm_f16_ref(const uint8_t *idx, const uint16_t *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                          size_t rows, size_t cols, size_t r0, size_t r1);
/// nm with f32 values x f32 activations.
void edge_spmm_nm_f32(const uint8_t *idx, const float *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                      size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_nm_f32_ref(const uint8_t *idx, const float *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                          size_t rows, size_t cols, size_t r0, size_t r1);

#ifdef __cplusplus
}
#endif
#endif
