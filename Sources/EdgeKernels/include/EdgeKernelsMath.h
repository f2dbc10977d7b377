// EdgeKernelsMath: matrix products over every weight encoding, norms, softmax, RoPE and the
// element-wise ops of the supported architectures.
//
// Conventions (all kernels):
// - Row-major. Weights W are [rows = out features, cols = in features]; activations X are
//   [T, cols] (T tokens); outputs Y are [T, rows], so Y[t*rows + r] = dot(W[r, :], X[t, :]).
// - A row range [r0, r1) (0 <= r0 <= r1 <= rows) selects the output rows computed, so callers can
//   split rows across threads: a call writes Y[t*rows + r] for r in [r0, r1) and nothing else.
// - Pointers need no particular alignment (beyond their element type) and lengths may be anything,
//   zero included; cols == 0 gives zeros.
// - `edge_X` goes through the dispatch table (the SIMD level chosen at first use); `edge_X_ref` is
//   the plain scalar reference, the oracle the tests compare every variant with.
#ifndef EDGE_KERNELS_MATH_H
#define EDGE_KERNELS_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Dispatch -------------------------------------------------------------------------------
/// A SIMD level of the kernels. The active level is chosen at first use: the best the CPU and OS
/// support; only edge_kernels_force changes it (the tools' --kernels option), never the environment.
typedef enum edge_kernel_level {
    /// Re-run the automatic choice (CPU features); only meaningful for `edge_kernels_force`.
    EDGE_KERNELS_AUTO = 0,
    /// Portable scalar C (the `_ref` kernels).
    EDGE_KERNELS_REF = 1,
    /// x86-64 AVX2 + FMA + F16C.
    EDGE_KERNELS_AVX2 = 2,
    /// x86-64 AVX-512 F/BW/VL (+ VNNI for the integer products where the CPU has it).
    EDGE_KERNELS_AVX512 = 3,
    /// AArch64 Advanced SIMD.
    EDGE_KERNELS_NEON = 4,
} edge_kernel_level;

/// Makes `level` the active one for every later call (process-wide). Returns false, changing
/// nothing, when this CPU/OS/build cannot run it. Not meant to race with running kernels.
bool edge_kernels_force(edge_kernel_level level);
/// Whether this CPU/OS/build can run `level` (EDGE_KERNELS_AUTO and EDGE_KERNELS_REF: always).
bool edge_kernels_available(edge_kernel_level level);
/// The active level (never EDGE_KERNELS_AUTO).
edge_kernel_level edge_kernels_level(void);
/// "auto", "ref", "avx2", "avx512" or "neon" ("?" for anything else); a static string.
const char *edge_kernels_level_name(edge_kernel_level level);
/// Whether the active level computes int8 x int8 and int8 x int16 products with VNNI dot-product instructions.
bool edge_kernels_uses_vnni(void);
/// Switches the active AVX-512 level between its VNNI integer kernels and its AVX-512BW ones (the two
/// give bit-identical results), so tests run both forms on a VNNI CPU. Returns false, changing nothing,
/// when the active level is not AVX-512, or `vnni` asks for VNNI that the CPU lacks. edge_kernels_force
/// restores the CPU's choice. edge_kernels_gemm_name names the form in force for the active level.
bool edge_kernels_set_vnni(bool vnni);

/// Which micro-kernel the SIMD levels' float-activation GEMMs (f32, f16, q8 x f32, q4 x f32, q3 x f32, q3s x f32,
/// q4k x f32 weights) run. The two sum in different orders, so outputs differ in the last bits: a benchmarking switch,
/// reported by edge_kernels_gemm_mode / edge_kernels_gemm_name. The initial mode is EDGE_GEMM_AUTO;
/// only edge_kernels_set_gemm_mode changes it (the tools' --gemm option), never the environment.
typedef enum edge_gemm_mode {
    /// The packed outer-product kernel from the level's token threshold up (12), the dot-product one below.
    EDGE_GEMM_AUTO = 0,
    /// The dot-product kernel for every token count (the benchmarks' baseline).
    EDGE_GEMM_DOT = 1,
} edge_gemm_mode;

/// Sets the GEMM mode for every later call (process-wide, atomic: a call already running finishes
/// in the mode it started with). Returns false, changing nothing, for an unknown mode.
bool edge_kernels_set_gemm_mode(edge_gemm_mode mode);
/// The GEMM mode in force.
edge_gemm_mode edge_kernels_gemm_mode(void);
/// "auto" or "dot" ("?" for anything else); a static string.
const char *edge_gemm_mode_name(edge_gemm_mode mode);

/// The matrix products whose kernel edge_kernels_gemm_name names.
typedef enum edge_gemm_op {
    EDGE_GEMM_OP_F32 = 0,      ///< edge_matmul_f32 / edge_matvec_f32
    EDGE_GEMM_OP_F16 = 1,      ///< edge_matmul_f16
    EDGE_GEMM_OP_Q8_F32 = 2,   ///< edge_matmul_q8_f32
    EDGE_GEMM_OP_Q4_F32 = 3,   ///< edge_matmul_q4_f32
    EDGE_GEMM_OP_Q8_Q8 = 4,    ///< edge_matmul_q8_q8
    EDGE_GEMM_OP_Q8_Q8B32 = 5, ///< edge_matmul_q8_q8b32
    EDGE_GEMM_OP_Q8_I16 = 6,   ///< edge_matmul_q8_i16
    EDGE_GEMM_OP_Q3_F32 = 7,   ///< edge_matmul_q3_f32
    EDGE_GEMM_OP_Q4_I16 = 8,   ///< edge_matmul_q4_i16
    EDGE_GEMM_OP_Q4_Q8B32 = 9, ///< edge_matmul_q4_q8b32
    EDGE_GEMM_OP_Q4_I16_GEMM = 10, ///< edge_gemm_q4_i16
    EDGE_GEMM_OP_Q4K_F32 = 11, ///< edge_matmul_q4k_f32
    EDGE_GEMM_OP_Q4K_I16 = 12, ///< edge_matmul_q4k_i16
    EDGE_GEMM_OP_Q4K_I16_GEMM = 13, ///< edge_gemm_q4k_i16
    EDGE_GEMM_OP_Q4K_Q8B32 = 14, ///< edge_matmul_q4k_q8b32
    EDGE_GEMM_OP_Q3S_F32 = 15, ///< edge_matmul_q3s_f32
} edge_gemm_op;

/// The kernel `level` runs for `op` with T tokens in the current GEMM mode, as "<level>-<kind>-<MxN>"
/// (tokens x rows per micro-kernel tile), e.g. "avx2-packed-6x16", "avx2-dot-4x3", "avx512-vnni-q8q8-4x4",
/// "avx512-vnni-packed-i16-12x32", "avx512-bw-rows-i16-4x1",
/// "avx2-fused-1x1" (one token straight from the stored weights, bit-identical to the dot kernel; q4 with
/// groups that are a multiple of 8, else the dot kernel; never q3, q3s or q4k, which run the dot kernel);
/// "ref" for the scalar reference. EDGE_KERNELS_AUTO names the active level's. NULL when this
/// CPU/OS/build cannot run `level` or `op` is unknown. A static string.
const char *edge_kernels_gemm_name(edge_kernel_level level, edge_gemm_op op, size_t T);

// ---- Matrix products ------------------------------------------------------------------------
/// y[r] = dot(W[r, :], x) for r in [r0, r1). W is [rows, cols] f32, x has cols values.
void edge_matvec_f32(const float *W, const float *x, float *y, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matvec_f32_ref(const float *W, const float *x, float *y, size_t rows, size_t cols, size_t r0, size_t r1);

/// Y[t, r] = dot(W[r, :], X[t, :]) for t < T, r in [r0, r1). W [rows, cols] f32, X [T, cols], Y [T, rows].
void edge_matmul_f32(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_f32_ref(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// As edge_matmul_f32 with W given transposed: Wt is W^T [cols, rows], Y[t, r] = dot(Wt[:, r], X[t, :]).
/// Same float operations (so the same bits) as edge_matmul_f32 on the transposed matrix. Training uses it
/// for dx = dy . W and for weight gradients without copying a transpose.
void edge_matmul_f32_wt(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_f32_wt_ref(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// bfloat16 products (training's linear layers, `compress train --matmul bf16`): as edge_matmul_f32 with
/// both operands rounded to bfloat16 and the exact products summed in f32, in blocks of
/// EDGE_BF16_BLOCK columns. Per output, with b(v) = edge_bf16_round(v) and a missing column 2q+1 (past
/// an odd `cols`) taken as 0: each block's sum s starts at 0 and takes its column pairs in order,
/// s = fmaf(b(x[2q+1]), b(w[2q+1]), s) then s = fmaf(b(x[2q]), b(w[2q]), s) (the order of AVX512_BF16's
/// vdpbf16ps); Y = s for the first block, s + Y after. Where the CPU has AVX512_BF16 the AVX-512 level
/// multiplies with vdpbf16ps (twice the f32 multiply-adds per instruction); every other level runs its
/// f32 kernels on the rounded operands. The bits are the same everywhere, except that vdpbf16ps
/// flushes a sum that falls below 2^-126 in magnitude to zero.
void edge_matmul_bf16(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_bf16_ref(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// edge_matmul_bf16 with W given transposed (Wt is W^T [cols, rows]), as edge_matmul_f32_wt.
void edge_matmul_bf16_wt(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_bf16_wt_ref(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1);
/// Columns per block of edge_matmul_bf16's sums.
#define EDGE_BF16_BLOCK 256
/// v rounded to the nearest bfloat16 (ties to even), as a float: binary32 subnormals become a zero of
/// their sign (vdpbf16ps treats such inputs as zero), NaN stays NaN, values past the largest
/// bfloat16 become infinities.
float edge_bf16_round(float v);
/// The kernel behind edge_matmul_bf16 at the active level: "avx512-bf16-packed-12x32" (vdpbf16ps),
/// "<level>-packed-MxN" (the level's f32 kernel on rounded operands) or "ref". A static string.
const char *edge_kernels_bf16_name(void);
/// Lets (true) or stops (false) the AVX-512 level using vdpbf16ps, so tests compare it with the f32
/// kernels on a CPU that has it. Returns false, changing nothing, for true where the CPU lacks it.
bool edge_kernels_set_bf16_native(bool on);

/// dst[c, r] = src[r, c] for rows r in [r0, r1) of a [rows, cols] matrix (dst is [cols, rows]), in tiles.
void edge_transpose_f32(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_transpose_f32_ref(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1);

/// As edge_matmul_f32 with W stored as IEEE binary16 bits (converted exactly on the fly).
void edge_matmul_f16(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_f16_ref(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// int8 per-row weights x f32 activations. Wq is [rows, cols] bytes, scale has rows values.
/// zero == NULL: symmetric, bytes are int8 q and w = scale[r] * q.
/// zero != NULL (rows values): asymmetric, bytes are uint8 u and w = scale[r] * (u - zero[r]).
/// (The q8 payload of docs/edge-format.md, Q8Layout in Encoding.swift.)
void edge_matmul_q8_f32(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                        size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q8_f32_ref(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                            size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// Symmetric per-row activation quantization: *xscale = max|x| / 127 and
/// xq[i] = round-to-nearest-even(x[i] / *xscale) in -127...127 (all zero, scale 0, for an all-zero row).
/// Every level gives bit-identical results.
void edge_quantize_row_q8(const float *x, int8_t *xq, float *xscale, size_t n);
void edge_quantize_row_q8_ref(const float *x, int8_t *xq, float *xscale, size_t n);

/// int8 x int8: Y[t, r] = ((float)sum_k Wq[r, k] * Xq[t, k] * wscale[r]) * xscale[t], the integer sum
/// exact, so every level gives bit-identical results. Symmetric weights (int8, as in the q8 payload
/// with zero == NULL); Xq/xscale from edge_quantize_row_q8 (one row per token). Values must be in
/// -127...127 (what both quantizers produce) and cols <= 65536 (the int32 sums cannot overflow).
void edge_matmul_q8_q8(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                       size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q8_q8_ref(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// Activation block size of edge_quantize_row_q8_b32 / edge_matmul_q8_q8b32 (as llama.cpp's Q8_0).
#define EDGE_Q8_BLOCK 32

/// Symmetric per-block activation quantization: edge_quantize_row_q8 on each block of EDGE_Q8_BLOCK
/// values (the last one possibly short), so xscale[b] = max|x in block b| / 127 and
/// xq = round-to-nearest-even(x * (1 / xscale[b])) in -127...127 (zeros, scale 0, for an all-zero
/// block). Writes n values to xq and ceil(n / 32) scales to xscale. Every level gives bit-identical results.
void edge_quantize_row_q8_b32(const float *x, int8_t *xq, float *xscale, size_t n);
void edge_quantize_row_q8_b32_ref(const float *x, int8_t *xq, float *xscale, size_t n);

/// int8 weights x int8 activations quantized in blocks of 32: with nb = ceil(cols / 32),
/// Y[t, r] = wscale[r] * sum_b xscale[t*nb + b] * (sum_{k in block b} Wq[r, k] * Xq[t, k]).
/// Symmetric weights (int8, the q8 payload with zero == NULL); Xq [T, cols] and xscale [T, nb] from
/// edge_quantize_row_q8_b32, one row per token. Integer sums are exact; the float accumulation runs
/// in a fixed order (eight lanes, lane j taking columns 4j...4j+3 of each block, fused multiply-add
/// with the block scale, then ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), times wscale[r]), so every level
/// gives bit-identical results. Values must be in -127...127 (what both quantizers produce).
void edge_matmul_q8_q8b32(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                          size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q8_q8b32_ref(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                              size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// Activation block of edge_quantize_rows_i16 / edge_matmul_q8_i16: one f32 scale per token and
/// block of 256 columns (the last one possibly short).
#define EDGE_I16_BLOCK 256

/// Row stride, in int16 elements, of the quantized activations of edge_quantize_rows_i16: cols
/// rounded up to even (the kernels read activations in (k, k+1) pairs; the pad is written as 0).
static inline size_t edge_i16_stride(size_t cols) { return (cols + 1) & ~(size_t)1; }

/// Symmetric int16 activation quantization of T rows of cols floats, per block of EDGE_I16_BLOCK:
/// xscale[t*nb + b] = max|x in block| / 32767 (nb = ceil(cols / 256)) and
/// Xq[t*ld + k] = round-to-nearest-even(x * (1 / scale)) in -32767...32767 (zeros, scale 0, for an
/// all-zero block), ld = edge_i16_stride(cols), the pad element (odd cols) set to 0. Every level
/// gives bit-identical results.
void edge_quantize_rows_i16(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols);
void edge_quantize_rows_i16_ref(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols);

/// int8 weights x int16 activations: with nb = ceil(cols / 256),
/// Y[t, r] = wscale[r] * sum_b xscale[t*nb + b] * (sum_{k in block b} Wq[r, k] * Xq[t, k]),
/// for r in [r0, r1). Symmetric weights (the q8 payload with zero == NULL, values in -127...127);
/// Xq [T, edge_i16_stride(cols)] and xscale [T, nb] from edge_quantize_rows_i16. Each block's
/// integer sum is exact (|sum| <= 32767 * 127 * 256 < 2^31); the float accumulation runs in a fixed
/// order (acc = fmaf((float)sum_b, xscale_b, acc) over b = 0, 1, ..., then acc * wscale[r]), so every
/// level gives bit-identical results. The AVX2 kernel packs the weights as int16 pairs and runs
/// vpmaddwd in a 6-token x 16-row tile, the AVX-512 one in a 12-token x 32-row tile with vpdpwssd
/// (VNNI) or vpmaddwd + vpaddd (AVX-512BW); up to 4 tokens both stream each weight row once
/// (docs/performance.md).
void edge_matmul_q8_i16(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                        size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q8_i16_ref(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                            size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// Rounds x[0..n) to nearest on one quantization grid, in place (the compressor's round-to-nearest:
/// QuantGrid in Sources/Compression/Quantize.swift), every step in f32: when scale > 0,
/// c = nearbyintf(x[i] / scale) + zero, then c = c < qmax ? c : qmax and c = c > qmin ? c : qmin;
/// otherwise c = zero. stored[i] = (uint8_t)((int)c + offset) (two's complement, truncated) and
/// x[i] = scale * (c - zero). Adds to sums[0] the squared errors (double)(x - y)^2 and to sums[1]
/// the squares (double)x^2, each accumulated in eight double lanes (lane i % 8) and reduced as
/// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). Every level gives bit-identical results.
/// *lo = min(*lo, x[i]) and *hi = max(*hi, x[i]) over x[0..n) (as `v < lo ? v : lo` and `v > hi ? v : hi`
/// value by value: the compressor's min/max grid fit). x must hold no NaN (the compressor refuses them
/// first); the results are the same at every level (min and max are exact; a +-0 tie may keep either zero).
void edge_minmax(const float *x, size_t n, float *lo, float *hi);
void edge_minmax_ref(const float *x, size_t n, float *lo, float *hi);

void edge_round_to_grid(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                        uint8_t *stored, double *sums);
void edge_round_to_grid_ref(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                            uint8_t *stored, double *sums);

/// Whether edge_matmul_q4_i16 takes q4 groups of `group_size`: a multiple of 32 that divides 256
/// (32, 64, 128, 256), so every group lies inside one int16 activation block.
static inline bool edge_q4_i16_supported(size_t group_size) {
    return group_size >= 32 && group_size % 32 == 0 && 256 % group_size == 0;
}

/// int4 groups (the q4 payload, as edge_matmul_q4_f32; group_size with edge_q4_i16_supported) x int16
/// activations from edge_quantize_rows_i16 (Xq [T, edge_i16_stride(cols)], xscale [T, ceil(cols/256)]).
/// For token t and row r, with G = ceil(cols / group_size), u the nibbles and z the group's zero point
/// (8 when zero == NULL): eight float lanes a_0..a_7 start at 0; for each group g (columns
/// c0 = g * group_size ..< min(cols, c0 + group_size), inside activation block b = c0 / 256),
/// d = f16(scale_f16[r*G + g]) * xscale[t*nb + b] and, for each lane l, the exact int32
/// s_l = sum over the group's columns k with (k % 64) / 8 == l of (u_k - z) * Xq[t, k], then
/// a_l = fmaf((float)s_l, d, a_l) for the lanes the group covers (a group of 32 the four lanes of its
/// half of the 64 columns, (c0 % 64) / 8 ..< + 4; larger groups all eight).
/// Y[t, r] = ((a_0 + a_4) + (a_2 + a_6)) + ((a_1 + a_5) + (a_3 + a_7)).
/// Every level gives bit-identical results. The AVX2 kernel streams each row's nibbles once for up
/// to 4 tokens (decoding), 64 at a time (32 bytes: four shift-and-mask steps give the four nibbles
/// of each 16-bit lane as int16), with vpmaddwd against activations it reorders per 64 columns into
/// the same four planes, and folds the zero points in once per group as z times the activations'
/// lane sums. The AVX-512 level keeps it (its 128-column form, avx512_i16.h, measured no faster on Zen 4).
void edge_matmul_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                        size_t r0, size_t r1);
void edge_matmul_q4_i16_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                            size_t r0, size_t r1);

/// int4 groups (the q4 payload; group_size with edge_q4_i16_supported) x int16 activations from
/// edge_quantize_rows_i16, for many tokens (prompt processing): for token t and row r, acc starts at
/// 0 and for each group g in order (columns c0 = g * group_size ..< min(cols, c0 + group_size), inside
/// activation block b = c0 / 256), with the exact int32 s = sum over the group of (u_k - z_g) * Xq[t, k]
/// (z_g = 8 when zero == NULL), acc = fmaf((float)s, f16(scale_f16[r*G + g]) * xscale[t*nb + b], acc);
/// Y[t, r] = acc. Every level gives bit-identical results (not those of edge_matmul_q4_i16, whose
/// lanes sum in another order). The SIMD levels expand each block of rows to int8 u - z once per call,
/// pack it as edge_matmul_q8_i16 packs int8 weights, and run its packed int16 tile (vpmaddwd, or
/// vpdpwssd with AVX-512 VNNI) once per group, the group scale folded in with the token's.
void edge_gemm_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                      const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                      size_t r0, size_t r1);
void edge_gemm_q4_i16_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                          size_t r0, size_t r1);

/// Whether edge_matmul_q4_q8b32 takes q4 groups of `group_size`: a multiple of 8 that divides 128
/// (8, 16, 32, 64, 128) or a multiple of 128, so no 8-column lane of a 128-column block straddles two groups.
static inline bool edge_q4_q8_supported(size_t group_size) {
    return group_size >= 8 && group_size % 8 == 0 && (128 % group_size == 0 || group_size % 128 == 0);
}

/// int4 groups (the q4 payload, as edge_matmul_q4_f32; group_size with edge_q4_q8_supported) x int8
/// activations in blocks of 32 from edge_quantize_row_q8_b32 (Xq [T, cols], xscale [T, nb], nb = ceil(cols / 32)).
/// For token t and row r, with G = ceil(cols / group_size), u the nibbles and z_g the zero point of group g
/// (8 when zero == NULL): sixteen float lanes a_0..a_15 start at 0; for each block of 128 columns
/// (c0 = 0, 128, ...) and each lane l whose first column k0 = c0 + 8 l is below cols, in that order,
/// with g = k0 / group_size: the exact int32 s = sum over k in [k0, min(k0 + 8, cols)) of (u_k - z_g) * Xq[t, k],
/// d = f16(scale_f16[r*G + g]) * xscale[t*nb + k0 / 32] and a_l = fmaf((float)s, d, a_l). Then
/// Y[t, r] = (((a_0 + a_8) + (a_4 + a_12)) + ((a_2 + a_10) + (a_6 + a_14)))
///         + (((a_1 + a_9) + (a_5 + a_13)) + ((a_3 + a_11) + (a_7 + a_15))).
/// Every level gives bit-identical results. The SIMD kernels stream each row's nibbles once per 4 tokens,
/// 128 columns (64 bytes) at a time: the low nibbles are the even columns and the high ones the odd
/// columns, so against activations split per block into an even and an odd plane, each int32 lane of
/// an unsigned-by-signed byte dot product (vpdpbusd on AVX-512 VNNI, vpmaddubsw + vpmaddwd elsewhere)
/// sums exactly lane l's eight columns. Zero points enter as bytes u + 16 - z (1...31, still unsigned),
/// the 16 * (sum of the lane's activations) taken off once per token (8 * ... when symmetric).
void edge_matmul_q4_q8b32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                          size_t r0, size_t r1);
void edge_matmul_q4_q8b32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                              const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1);

/// int4 groups x f32 activations, the q4 payload of docs/edge-format.md (Q4Layout in Encoding.swift):
/// row r starts at byte r * ceil(cols/2) of Wq; element j of a row is in byte j/2, the low nibble for
/// even j. Groups of group_size (> 0) elements along cols, the last one possibly short; groups per
/// row G = ceil(cols / group_size). scale_f16[r*G + g] is a binary16 scale; zero == NULL means zero
/// point 8 (symmetric), else zero[r*G + g] (0...15). w = scale * (u - zero).
void edge_matmul_q4_f32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q4_f32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// 3-bit groups x f32 activations, the q3 payload of docs/edge-format.md (Q3Layout in Q3Layout.swift):
/// row r starts at byte r * ceil(3*cols/8) of Wq and is a little-endian bit stream; element j of a row
/// is bits 3j...3j+2 (bit i = bit i%8 of byte i/8), so 8 elements fill 3 bytes. Groups of group_size
/// elements (a multiple of 8, > 0) along cols, the last one possibly short; G = ceil(cols / group_size).
/// scale_f16[r*G + g] is a binary16 scale; zero == NULL means zero point 4 (symmetric), else
/// zero[r*G + g] (0...7). w = scale * (u - zero). A group_size that is 0 or not a multiple of 8 writes nothing.
void edge_matmul_q3_f32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
void edge_matmul_q3_f32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// 3-bit codes with per-group scale codes and zero points under a per-row binary16 super-scale x f32
/// activations, the q3s payload of docs/edge-format.md (Q3SLayout in Q3SLayout.swift). Wq = the payload's
/// base: codes u (0...7) exactly as q3's (row r at byte r * ceil(3*cols/8), a little-endian bit stream,
/// element j in bits 3j...3j+2). Groups of group_size (a multiple of 8, > 0) elements along cols, the last
/// one possibly short; G = ceil(cols / group_size).
/// sub = base + sub_offset: row r's ceil((b+3)*G/8) bytes at r * ceil((b+3)*G/8) are a little-endian bit
/// stream (bit i = bit i%8 of byte i/8) holding, for group k, the scale code sc[r][k] in bits
/// (b+3)k...(b+3)k+b-1 and the zero point z[r][k] (0...7) in bits (b+3)k+b...(b+3)k+b+2, b = sub_bits
/// (6 or 8). super_f16 = base + super_offset: D[r] = binary16 super_f16[r].
/// w[r][j] = s * (u[r][j] - z[r][k]) with s = D[r] * sc[r][k] (exact in binary32), k = j / group_size:
/// q3's weight with that scale and zero point (every level's unpacked weights are these bits).
/// Y[t, r] = sum_j w[r][j] * X[t, j] for r in [r0, r1). A group_size that is 0 or not a multiple of 8, or
/// sub_bits other than 6 or 8, writes nothing.
void edge_matmul_q3s_f32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                         size_t r1);
void edge_matmul_q3s_f32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1);

/// 4-bit codes with per-group scale and min codes under per-row binary16 super-scales x f32 activations,
/// the q4k payload of docs/edge-format.md (Q4KLayout in Q4KLayout.swift). Wq = the payload's base: codes u
/// (0...15) exactly as q4's (row r at byte r * ceil(cols/2), element j in byte j/2, low nibble for even j).
/// Groups of group_size (> 0; the format's are even) elements along cols, the last one possibly short;
/// G = ceil(cols / group_size). sub = base + sub_offset: row r's ceil(2*b*G/8) bytes at r * ceil(2*b*G/8)
/// are a little-endian bit stream (bit i = bit i%8 of byte i/8) holding, for group k, the scale code
/// sc[r][k] in bits 2bk...2bk+b-1 and the min code mn[r][k] in bits 2bk+b...2bk+2b-1, b = sub_bits (6 or 8).
/// super_f16 = base + super_offset: D[r] = binary16 super_f16[2r], M[r] = super_f16[2r+1].
/// w[r][j] = d * u[r][j] - m with d = D[r] * sc[r][k], m = M[r] * mn[r][k], k = j / group_size (d, m and
/// d * u exact in binary32: one rounding, the subtraction; every level's unpacked weights are these bits).
/// Y[t, r] = sum_j w[r][j] * X[t, j] for r in [r0, r1). A group_size of 0 or sub_bits other than 6 or 8
/// writes nothing.
void edge_matmul_q4k_f32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                         size_t r1);
void edge_matmul_q4k_f32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1);

/// Whether edge_matmul_q4k_i16 / edge_gemm_q4k_i16 take q4k weights of `group_size` and `sub_bits`:
/// groups edge_q4_i16_supported takes (32, 64, 128, 256) and b = 6 or 8.
static inline bool edge_q4k_i16_supported(size_t group_size, size_t sub_bits) {
    return edge_q4_i16_supported(group_size) && (sub_bits == 6 || sub_bits == 8);
}

/// q4k weights (the payload of edge_matmul_q4k_f32: codes u, sub-codes, super values; group_size and
/// sub_bits with edge_q4k_i16_supported) x int16 activations from edge_quantize_rows_i16 (Xq
/// [T, edge_i16_stride(cols)], xscale [T, nb], nb = ceil(cols/256)), for few tokens (decoding):
/// per group, sum_c (d_g u_c - m_g) x_c = d_g * xs * sum u_c Xq_c - m_g * xs * sum Xq_c, the first term
/// in edge_matmul_q4_i16's lanes, the second one dot product per row. For token t and row r, with
/// G = ceil(cols / group_size) and d_g = D[r] * sc[r][g], m_g = M[r] * mn[r][g] (exact, as in
/// edge_matmul_q4k_f32): eight float lanes a_0..a_7 and eight e_0..e_7 start at 0; for each group
/// g = 0, 1, ..., G - 1 (columns c0 = g * group_size ..< min(cols, c0 + group_size), inside activation
/// block b = c0 / 256, xs = xscale[t*nb + b]):
///   - for each lane l the exact int32 su_l = sum over the group's columns k with (k % 64) / 8 == l of
///     u_k * Xq[t, k], and for the lanes the group covers (a group of 32 the four lanes of its half of
///     the 64 columns, (c0 % 64) / 8 ..< + 4; larger groups all eight) a_l = fmaf((float)su_l, d_g * xs, a_l)
///     (d_g * xs one binary32 product), as edge_matmul_q4_i16 with no zero point;
///   - with the exact int32 sx = sum over the group's columns of Xq[t, k],
///     e_{g % 8} = fmaf(m_g, (float)sx * xs, e_{g % 8}) ((float)sx * xs one binary32 product).
/// With c_l = a_l - e_l: Y[t, r] = ((c_0 + c_4) + (c_2 + c_6)) + ((c_1 + c_5) + (c_3 + c_7)), r in [r0, r1).
/// Every level gives bit-identical results. The AVX2 kernel (which the AVX-512 level keeps) is
/// edge_matmul_q4_i16's row kernel (nibbles streamed once for up to 4 tokens) with the row's d_g and
/// m_g unpacked once per row into a small array (eight groups per step), and (float)sx * xs computed
/// once per call per token and group. Unsupported parameters write nothing.
void edge_matmul_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                         size_t cols, size_t r0, size_t r1);
void edge_matmul_q4k_i16_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                             size_t cols, size_t r0, size_t r1);

/// q4k weights (group_size and sub_bits with edge_q4k_i16_supported) x int16 activations from
/// edge_quantize_rows_i16, for many tokens (prompt processing): the order of edge_gemm_q4_i16 with the
/// zero-point term made a float term. For token t and row r, acc starts at 0 and for each group g in
/// order (columns c0 = g * group_size ..< min(cols, c0 + group_size), inside activation block
/// b = c0 / 256), with xs = xscale[t*nb + b], d_g, m_g as in edge_matmul_q4k_i16 and the exact int32
/// su = sum over the group of u_k * Xq[t, k] and sx = sum over the group of Xq[t, k]:
/// acc = fmaf((float)su, d_g * xs, acc), then acc = fmaf(-m_g, (float)sx * xs, acc) (d_g * xs and
/// (float)sx * xs each one binary32 product). Y[t, r] = acc.
/// Every level gives bit-identical results (not those of edge_matmul_q4k_i16, whose lanes sum in
/// another order). The SIMD levels run edge_gemm_q4_i16's packed int16 tile on the codes u expanded to
/// int8 (no zero point), once per group with d_g times the token's scale, and fold the m term into the
/// tile's store from (float)sx * xs, computed once per call per token and group. Unsupported parameters
/// write nothing.
void edge_gemm_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                       size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                       size_t cols, size_t r0, size_t r1);
void edge_gemm_q4k_i16_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1);

/// Whether edge_matmul_q4k_q8b32 takes q4k weights of `group_size` and `sub_bits`: the groups
/// edge_q4_q8_supported takes (8, 16, 32, 64, 128 or a multiple of 128) and b = 6 or 8.
static inline bool edge_q4k_q8_supported(size_t group_size, size_t sub_bits) {
    return edge_q4_q8_supported(group_size) && (sub_bits == 6 || sub_bits == 8);
}

/// q4k weights (the payload of edge_matmul_q4k_f32; group_size and sub_bits with edge_q4k_q8_supported)
/// x int8 activations in blocks of 32 from edge_quantize_row_q8_b32 (Xq [T, cols], xscale [T, nb],
/// nb = ceil(cols / 32)), for few tokens (decoding): edge_matmul_q4_q8b32's lanes with the codes u as
/// they are (no zero point) and the group's min as a float term, as llama.cpp's Q4_1 x Q8_1:
/// sum_k (d_g u_k - m_g) x_k = d_g * xs * sum u_k Xq_k - m_g * xs * sum Xq_k. For token t and row r,
/// with G = ceil(cols / group_size), d_g = D[r] * sc[r][g] and m_g = M[r] * mn[r][g] (exact, as in
/// edge_matmul_q4k_f32): sixteen float lanes a_0..a_15 start at 0; for each block of 128 columns
/// (c0 = 0, 128, ...) and each lane l whose first column k0 = c0 + 8 l is below cols, in that order,
/// with g = k0 / group_size, xs = xscale[t*nb + k0 / 32] and the exact int32
/// su = sum over k in [k0, min(k0 + 8, cols)) of u_k * Xq[t, k] and sx = sum over the same k of Xq[t, k]:
///   a_l = fmaf((float)su, d_g * xs, a_l), then a_l = fmaf(-m_g, (float)sx * xs, a_l)
/// (d_g * xs and (float)sx * xs each one binary32 product). Then, as edge_matmul_q4_q8b32,
/// Y[t, r] = (((a_0 + a_8) + (a_4 + a_12)) + ((a_2 + a_10) + (a_6 + a_14)))
///         + (((a_1 + a_9) + (a_5 + a_13)) + ((a_3 + a_11) + (a_7 + a_15))), r in [r0, r1).
/// Every level gives bit-identical results. The SIMD kernels are edge_matmul_q4_q8b32's (one kernel
/// with a q4k form): the nibbles, 0...15, are the unsigned bytes of the dot products as they are; for
/// groups of 32 or more each 128-column block's d_g and m_g (at most four groups) come straight from one
/// 64-bit read of the row's sub-code stream (variable shifts, times (D, M)), smaller groups' once per
/// row (eight groups per step), and are permuted to the lanes as q4's group scales are; (float)sx * xs
/// is computed per lane once per call per 4 tokens with the activation planes, the min term one fnmadd
/// per lane vector. Unsupported parameters write nothing.
void edge_matmul_q4k_q8b32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1);
void edge_matmul_q4k_q8b32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                               size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                               size_t cols, size_t r0, size_t r1);

// ---- Norms, softmax, positions, activations (one row / vector per call) ---------------------
/// RMSNorm (Llama): out[i] = w[i] * (x[i] / sqrt(mean(x^2) + eps)). out may alias x.
void edge_rmsnorm(const float *x, const float *w, float *out, size_t n, float eps);
void edge_rmsnorm_ref(const float *x, const float *w, float *out, size_t n, float eps);

/// LayerNorm (GPT-2): out[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i], biased variance. out may alias x.
void edge_layernorm(const float *x, const float *w, const float *b, float *out, size_t n, float eps);
void edge_layernorm_ref(const float *x, const float *w, const float *b, float *out, size_t n, float eps);

/// In-place softmax, max-subtracted; -Inf entries (masked positions) become exactly 0.
void edge_softmax(float *x, size_t n);
void edge_softmax_ref(float *x, size_t n);

/// Rotary position embedding in place for one token: q is [n_heads, head_dim] (head_dim even),
/// Hugging Face rotate_half convention: element i pairs with i + head_dim/2 for i < head_dim/2,
/// angle = pos * inv_freq[i], inv_freq[i] = theta^(-2i/head_dim) (computed in float like HF).
/// (a, b) -> (a cos - b sin, b cos + a sin). Scalar at every level.
void edge_rope(float *q, size_t head_dim, size_t n_heads, size_t pos, float theta);
void edge_rope_ref(float *q, size_t head_dim, size_t n_heads, size_t pos, float theta);
/// edge_rope in two steps, for a forward pass that rotates every layer's queries and keys at the
/// same positions: the angles' cosines and sines of position `pos` (c[i], s[i], i < head_dim/2, the
/// same float operations as edge_rope), then the rotation of n_heads heads by them. The two together
/// give edge_rope's bits.
void edge_rope_angles(float *c, float *s, size_t head_dim, size_t pos, float theta);
void edge_rope_apply(float *q, size_t head_dim, size_t n_heads, const float *c, const float *s);

/// GPT-2 "gelu_new" in place: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void edge_gelu_tanh(float *x, size_t n);
void edge_gelu_tanh_ref(float *x, size_t n);

/// BERT's "gelu" in place, the exact form: 0.5 x (1 + erf(x / sqrt(2))). Scalar at every level
/// (C's erff; an encoder spends under 2% of its time here).
void edge_gelu_erf(float *x, size_t n);

/// SwiGLU: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void edge_silu_mul(const float *gate, const float *up, float *out, size_t n);
void edge_silu_mul_ref(const float *gate, const float *up, float *out, size_t n);

/// a[i] += b[i] (residual connections, biases).
void edge_add(float *a, const float *b, size_t n);
void edge_add_ref(float *a, const float *b, size_t n);

/// y[i] += a * x[i] (attention: weighted sum of value rows).
void edge_axpy(float *y, float a, const float *x, size_t n);
void edge_axpy_ref(float *y, float a, const float *x, size_t n);

/// y[c] = sum_j x[j] * V[j * ldv + c] for c < d (a row vector times an [n, d] matrix with row stride ldv):
/// each y[c] starts at 0 and takes y[c] = fmaf(x[j], V[j * ldv + c], y[c]) for j = 0, 1, ..., n - 1, in
/// that order, so every level gives bit-identical results (each output its own chain, vectorized over c).
/// The attention's decoding step (one query): probabilities times the cached values, read in place.
void edge_vecmat_f32(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d);
void edge_vecmat_f32_ref(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d);
/// edge_vecmat_f32 with V in binary16: y[c] = fmaf(x[j], edge_f16_to_f32(V[j * ldv + c]), y[c]) in the
/// same order, so the bits of edge_vecmat_f32 on the values widened to float, at every level (the
/// attention's decoding step over a float16 KV cache).
void edge_vecmat_f16(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d);
void edge_vecmat_f16_ref(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d);
/// dst[i] = edge_f16_to_f32(src[i]) for i < n, vectorized where the level converts in registers (F16C;
/// exact, but a signaling NaN comes back quiet there).
void edge_f16_widen(const uint16_t *src, float *dst, size_t n);
void edge_f16_widen_ref(const uint16_t *src, float *dst, size_t n);
/// dst[i] = edge_f32_to_f16(src[i]) for i < n (round to nearest even, Inf past 65504, NaN quieted),
/// the same bits at every level (F16C's vcvtps2ph rounds the same way).
void edge_f16_narrow(const float *src, uint16_t *dst, size_t n);
void edge_f16_narrow_ref(const float *src, uint16_t *dst, size_t n);

/// x[i] *= s.
void edge_scale(float *x, float s, size_t n);
void edge_scale_ref(float *x, float s, size_t n);

/// sum_i a[i] * b[i] in float (attention scores).
float edge_dot_f32(const float *a, const float *b, size_t n);
float edge_dot_f32_ref(const float *a, const float *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
