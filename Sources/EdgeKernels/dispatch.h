// Private to EdgeKernels: the dispatch table every SIMD level fills, and the shared constants.
#ifndef EDGE_KERNELS_DISPATCH_H
#define EDGE_KERNELS_DISPATCH_H

#include "EdgeKernels.h"
#include <math.h>
#include <string.h>
#include "gemm_driver.h"

/// How a sparse payload stores its values (scale/zero are used by EDGE_SPARSE_Q8 only).
typedef enum edge_sparse_kind { EDGE_SPARSE_F32 = 0, EDGE_SPARSE_F16 = 1, EDGE_SPARSE_Q8 = 2 } edge_sparse_kind;

/// One function pointer per dispatched kernel; signatures as in EdgeKernelsMath.h.
/// (edge_matvec_f32 goes through matmul_f32 with T = 1.)
/// The float-activation products (matmul_f32, matmul_f16, matmul_q8_f32, matmul_q4_f32, matmul_q3_f32,
/// matmul_q3s_f32, matmul_q4k_f32) go through
/// the shared GEMM driver with `gemm`'s micro-kernels where it is set, else through the pointers.
typedef struct edge_kernel_table {
    edge_kernel_level level;
    bool vnni;
    const edge_gemm_isa *gemm;
    /// Names of the kernels behind matmul_q8_q8, matmul_q8_q8b32, matmul_q8_i16 (edge_kernels_gemm_name).
    const char *q8_q8_name, *q8_q8b32_name, *q8_i16_name;
    /// Names of the few-token (decoding) kernels of matmul_q8_i16 and matmul_q4_i16, used up to
    /// i16_rows_max_t tokens (NULL: the level has none; q4_i16 then reports "ref").
    const char *q8_i16_rows_name, *q4_i16_name, *q4k_i16_name;
    /// Where matmul_q4_i16 / matmul_q4k_i16 run another kernel for two tokens and more (AVX-512 VNNI:
    /// one token on byte dot products, more on AVX2's rows), its name; else NULL.
    const char *q4_i16_multi_name, *q4k_i16_multi_name;
    size_t i16_rows_max_t;
    void (*matmul_f32)(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*matmul_f32_wt)(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*transpose_f32)(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1);
    /// edge_matmul_bf16 / _wt with vdpbf16ps (f32 and f32t sources; NULL where the CPU lacks AVX512_BF16:
    /// the level's f32 packed tile on rounded operands, edge_gemm_bf16, or the reference where it has none).
    void (*matmul_bf16_native)(const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                               size_t r0, size_t r1);
    void (*matmul_f16)(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*matmul_q8_f32)(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                          size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*quantize_row_q8)(const float *x, int8_t *xq, float *xscale, size_t n);
    void (*matmul_q8_q8)(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                         size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*quantize_row_q8_b32)(const float *x, int8_t *xq, float *xscale, size_t n);
    void (*matmul_q8_q8b32)(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                            size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*quantize_rows_i16)(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols);
    void (*minmax)(const float *x, size_t n, float *lo, float *hi);
    void (*round_to_grid)(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                          uint8_t *stored, double *sums);
    void (*matmul_q4_i16)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                          size_t r0, size_t r1);
    void (*matmul_q8_i16)(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                          size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*gemm_q4_i16)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                        size_t r0, size_t r1);
    /// Name of the kernel behind gemm_q4_i16 ("ref" where the level has none).
    const char *gemm_q4_i16_name;
    void (*matmul_q4_q8b32)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                            size_t r0, size_t r1);
    /// Name of the kernel behind matmul_q4_q8b32 ("ref" where the level has none).
    const char *q4_q8b32_name;
    void (*matmul_q4k_q8b32)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                             size_t cols, size_t r0, size_t r1);
    /// Name of the kernel behind matmul_q4k_q8b32 ("ref" where the level has none).
    const char *q4k_q8b32_name;
    void (*matmul_q4_f32)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*matmul_q3_f32)(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*matmul_q3s_f32)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                           size_t r1);
    void (*matmul_q4k_f32)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                           size_t r1);
    /// edge_matmul_q4k_i16 (named by q4k_i16_name) and edge_gemm_q4k_i16 (gemm_q4k_i16_name; "ref" where the level has none).
    void (*matmul_q4k_i16)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1);
    void (*gemm_q4k_i16)(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                         size_t cols, size_t r0, size_t r1);
    const char *gemm_q4k_i16_name;
    void (*rmsnorm)(const float *x, const float *w, float *out, size_t n, float eps);
    void (*layernorm)(const float *x, const float *w, const float *b, float *out, size_t n, float eps);
    void (*softmax)(float *x, size_t n);
    void (*gelu_tanh)(float *x, size_t n);
    void (*silu_mul)(const float *gate, const float *up, float *out, size_t n);
    void (*add)(float *a, const float *b, size_t n);
    void (*axpy)(float *y, float a, const float *x, size_t n);
    void (*vecmat_f32)(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d);
    void (*vecmat_f16)(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d);
    void (*f16_widen)(const uint16_t *src, float *dst, size_t n);
    void (*f16_narrow)(const float *src, uint16_t *dst, size_t n);
    void (*scale)(float *x, float s, size_t n);
    float (*dot_f32)(const float *a, const float *b, size_t n);
    /// Sparse products (EdgeKernelsSparse.h), one entry per layout, the value encoding as an argument.
    void (*spmm_bitmask)(edge_sparse_kind kind, const uint8_t *mask, const uint32_t *row_ptr, const void *values,
                         const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                         size_t cols, size_t r0, size_t r1);
    void (*spmm_nm24_q8_i16)(const uint8_t *idx, const int8_t *values, const float *scale, const int16_t *Xq,
                             const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
    void (*spmm_bitmask_q8_i16)(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                size_t r0, size_t r1);
    /// Name of the kernel behind spmm_bitmask_q8_i16 (edge_kernels_bitmask_q8_i16_name).
    const char *bitmask_q8_i16_name;
    /// edge_bitmask_expand_q8 (the dense int8 rows of a bitmask payload), for the many-token products.
    void (*bitmask_expand_q8)(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t cols, size_t r0,
                              size_t r1, int8_t *out);
    void (*spmm_csr)(edge_sparse_kind kind, const uint32_t *row_ptr, const void *col_idx, size_t index_width,
                     const void *values, const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T,
                     size_t rows, size_t cols, size_t r0, size_t r1);
    void (*spmm_nm)(edge_sparse_kind kind, const uint8_t *idx, const void *values, const float *scale, const uint8_t *zero,
                    size_t n, size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
} edge_kernel_table;

/// Fills `t` with the scalar reference kernels (the starting point of every other table).
void edge_fill_table_ref(edge_kernel_table *t);
/// Fills the sparse entries of `t` with the scalar reference kernels (sparse_ref.c).
void edge_fill_table_sparse_ref(edge_kernel_table *t);
/// The reference sparse kernels behind the table entries (sparse_ref.c); the SIMD ones fall back to them.
void edge_spmm_bitmask_any_ref(edge_sparse_kind kind, const uint8_t *mask, const uint32_t *row_ptr, const void *values,
                               const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                               size_t cols, size_t r0, size_t r1);
void edge_spmm_csr_any_ref(edge_sparse_kind kind, const uint32_t *row_ptr, const void *col_idx, size_t index_width,
                           const void *values, const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T,
                           size_t rows, size_t cols, size_t r0, size_t r1);
void edge_spmm_nm_any_ref(edge_sparse_kind kind, const uint8_t *idx, const void *values, const float *scale, const uint8_t *zero,
                         size_t n, size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// Stored values per row of a packed 2:4 payload of `cols` columns: two per whole group of 4 and
/// min(cols % 4, 2) for a short last group.
static inline size_t edge_nm24_slots(size_t cols) { return (cols / 4) * 2 + (cols % 4 < 2 ? cols % 4 : 2); }
/// The mask bits of a 2:4 index nibble (two slots' 2-bit indices a, b in bits 0-1 and 2-3): (1 << a) | (1 << b).
/// An index byte holds two groups, so its nibbles' bits make the mask byte of its 8 columns.
extern const uint8_t edge_nm24_nibble_bits[16];

/// The dense int8 rows r0..r1 [r1 - r0, cols] that a bitmask / packed 2:4 payload of q8 values
/// stands for (zeros where nothing is stored), for the many-token products (dispatch.c).
void edge_bitmask_expand_q8(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t cols, size_t r0,
                            size_t r1, int8_t *out);
void edge_nm24_expand_q8(const uint8_t *idx, const int8_t *values, size_t cols, size_t r0, size_t r1, int8_t *out);
#if defined(__x86_64__)
/// Overwrites the entries AVX2 + FMA + F16C speeds up.
void edge_fill_table_avx2(edge_kernel_table *t);
/// Overwrites the sparse entries with the AVX2 + FMA + F16C kernels (sparse_avx2.c).
void edge_fill_table_sparse_avx2(edge_kernel_table *t);
/// Overwrites the entries AVX-512 F/BW/VL speeds up; `vnni` picks the vpdpbusd int8 x int8 kernel.
void edge_fill_table_avx512(edge_kernel_table *t, bool vnni);
/// Sets the vdpbf16ps product (matmul_bf16_native); only where the CPU has AVX512_BF16.
void edge_fill_table_bf16_avx512(edge_kernel_table *t);
/// Overwrites the sparse entries AVX512_VBMI2 speeds up (sparse_avx512.c); nothing when `vbmi2` is false.
void edge_fill_table_sparse_avx512(edge_kernel_table *t, bool vbmi2);
/// A row-streaming int8 x int16 kernel (few tokens) and a packed micro-kernel (mt tokens x nr rows of a
/// panel of int16 pairs; first / last: the first / last 256-column block), as avx2.c and avx512.c give them.
typedef void (*edge_q8_i16_rows_fn)(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale,
                                    float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
/// The q4k min term of a packed micro-kernel call (edge_gemm_q4k_i16): after the grouped product,
/// y = fmaf(-m[r], sx[t*ldsx], y), with m the panel rows' group mins m_g and sx the tokens'
/// (float)(activation sum over the group) * xs.
typedef struct edge_i16_mins {
    const float *m, *sx;
    size_t ldsx;
} edge_i16_mins;
/// One block of int16 pairs for mt tokens x nr rows of a packed panel: y = fmaf((float)sum, xs[t*ldxs], first ? 0 : y),
/// times ws[r] when last; `grouped` (q4 group scales): y = fmaf((float)sum, ws[r] * xs[t*ldxs], first ? 0 : y), no product
/// after, then the min term when `mins` is not NULL (grouped only).
typedef void (*edge_i16_micro_fn)(int mt, int nr, const int16_t *x, size_t ldx, const int16_t *p, size_t kp,
                                  const float *xs, size_t ldxs, const float *ws, float *y, size_t ldy, bool first, bool last,
                                  bool grouped, const edge_i16_mins *mins);
/// A full tile (pmt tokens x pnr rows) over `ng` whole groups of `gs` columns of one block, each group as one
/// grouped `micro` call would fold it into y (the same operations in the same order, so the same bits): group g's
/// pairs at p + g * (gs / 2) * 2 * pnr, its row scales at ws + g * ws_stride, mins (when mins_m is not NULL) at
/// mins_m + g * ws_stride and the tokens' sums at mins_sx[t * ldsx + g]; `first` for group 0 only.
typedef void (*edge_i16_groups_fn)(const int16_t *x, size_t ldx, const int16_t *p, size_t gs, size_t ng,
                                   const float *xs, size_t ldxs, const float *ws, size_t ws_stride, float *y, size_t ldy,
                                   bool first, const float *mins_m, const float *mins_sx, size_t ldsx);
/// avx2.c's edge_matmul_q8_i16 driver, shared with avx512.c: up to 4 tokens `rows_fn`; more, per
/// 256-column block and block of 128 rows, the rows packed into panels of `pnr` (edge_pack_panel_i16),
/// then every `pmt` tokens against every panel with `micro`.
void edge_matmul_q8_i16_driver(edge_q8_i16_rows_fn rows_fn, edge_i16_micro_fn micro, int pmt, int pnr, const int8_t *Wq,
                               const float *wscale, const int16_t *Xq, const float *xscale, float *Y, size_t T,
                               size_t rows, size_t cols, size_t r0, size_t r1);
/// avx2.c's int16 panel packer, shared with avx512.c: rows [r, r + nr) (nr <= width, 16 or 32), columns
/// [k0, k0 + kc) of int8 Wq as ceil(kc/2) pairs of `width` rows x (w[k], w[k+1]) int16, zero-padded.
void edge_pack_panel_i16(const int8_t *Wq, size_t cols, size_t r, size_t nr, size_t k0, size_t kc, size_t width,
                         int16_t *panel);
#endif

#if defined(__aarch64__)
/// Overwrites the entries Advanced SIMD speeds up.
void edge_fill_table_neon(edge_kernel_table *t);
#endif

/// Most columns per cache block in the blocked GEMM drivers: a block of weight rows (dequantized
/// to f32 where needed) stays in L1 while every token's slice of X streams past it.
#define EDGE_KC 1024

/// The column block for a row of `cols`: cols split into equal blocks of at most EDGE_KC, rounded
/// up to a multiple of 16 (so blocks start on whole bytes of q4 rows and full SIMD vectors).
static inline size_t edge_column_block(size_t cols) {
    size_t blocks = (cols + EDGE_KC - 1) / EDGE_KC;
    if (blocks == 0) return EDGE_KC;
    return ((cols + blocks - 1) / blocks + 15) & ~(size_t)15;
}

/// Decoding streams weight rows in order; the hardware prefetcher alone keeps too few lines in flight
/// for rows of a few hundred bytes. Called once per row starting at `row` (`bytes` long): prefetches
/// the lines EDGE_PREFETCH_BYTES ahead that this row's reads move the window over (never past `end`),
/// into L2 (`prefetcht1`), not L1: on a Zen 4 that made the pruned int8 files decode 9-13% faster
/// (`edge-run bench -p 0 -n 128`, docs/performance.md, "Prefetching into L2"), the dense files within the noise.
/// The AVX2 one-token kernel skips it for f32 rows, which an AVX2-only Zen 3 decoded 10-20% faster
/// without it (docs/performance.md, "Session 27").
#define EDGE_PREFETCH_BYTES 8192
static inline void edge_prefetch_ahead(const void *row, size_t bytes, const void *end) {
    const char *p = (const char *)row + EDGE_PREFETCH_BYTES, *stop = p + bytes;
    if (stop > (const char *)end) stop = (const char *)end;
    for (; p < stop; p += 64) __builtin_prefetch(p, 0, 1);
}

/// Value i of edge_round_to_grid, the reference's steps (every level runs them for the values its
/// vectors leave): rounded in place, its stored byte, its squared error and square added to lane i % 8.
static inline void edge_round_one(float *x, uint8_t *stored, size_t i, float scale, float zero, float qmin, float qmax,
                                  int offset, double *se, double *sq) {
    float v = x[i], c = zero;
    if (scale > 0) {
        c = nearbyintf(v / scale) + zero;
        c = c < qmax ? c : qmax;
        c = c > qmin ? c : qmin;
    }
    float y = scale * (c - zero);
    stored[i] = (uint8_t)((int)c + offset);
    x[i] = y;
    double e = (double)(v - y), d = (double)v;
    double p = e * e, q = d * d;  // separate statements: no contraction into an FMA
    se[i % 8] += p;
    sq[i % 8] += q;
}

/// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)): edge_round_to_grid's lane reduction.
static inline double edge_reduce8(const double *l) { return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])); }

/// edge_bf16_round (EdgeKernelsMath.h), inline for the kernels' loops.
static inline float edge_bf16_round_inline(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    if ((x & 0x7F800000u) == 0) x &= 0x80000000u;                          // zero or subnormal: a signed zero
    else if ((x & 0x7FFFFFFFu) > 0x7F800000u) x = (x | 0x00400000u) & 0xFFFF0000u;  // NaN: quiet
    else x = (x + 0x7FFFu + ((x >> 16) & 1u)) & 0xFFFF0000u;
    float r;
    memcpy(&r, &x, 4);
    return r;
}
/// Q4 element j of a row: low nibble of byte j/2 for even j, high nibble for odd j.
static inline unsigned edge_q4_nibble(const uint8_t *row, size_t j) {
    uint8_t b = row[j >> 1];
    return (j & 1) ? (unsigned)(b >> 4) : (unsigned)(b & 0x0F);
}

/// Weight (r, j) of a float-activation GEMM source by the scalar formula (the driver's dequant_row;
/// the fused one-token kernels use it for the columns their vectors leave). f32, f16, q8, q4 only.
static inline float edge_weight_at(edge_wkind kind, const edge_wsource *s, size_t cols, size_t r, size_t j) {
    switch (kind) {
    case EDGE_W_F32: return ((const float *)s->W)[r * cols + j];
    case EDGE_W_F16: return edge_f16_to_f32(((const uint16_t *)s->W)[r * cols + j]);
    case EDGE_W_Q8: {
        uint8_t q = ((const uint8_t *)s->W)[r * cols + j];
        return s->zero ? s->scale[r] * (float)((int)q - (int)s->zero[r]) : s->scale[r] * (float)(int8_t)q;
    }
    case EDGE_W_Q4: {
        size_t gi = r * s->groups + j / s->group_size;
        int z = s->zero ? (int)s->zero[gi] : 8;
        return edge_f16_to_f32(s->scale_f16[gi]) * (float)((int)edge_q4_nibble((const uint8_t *)s->W + r * s->row_bytes, j) - z);
    }
    default: return 0;
    }
}

/// Q3 element j of a row: bits 3j...3j+2 of the row's little-endian bit stream (may straddle two bytes).
static inline unsigned edge_q3_code(const uint8_t *row, size_t j) {
    size_t bit = 3 * j;
    unsigned shift = (unsigned)(bit & 7), v = (unsigned)row[bit >> 3] >> shift;
    if (shift > 5) v |= (unsigned)row[(bit >> 3) + 1] << (8 - shift);
    return v & 7u;
}

/// q4k: the parameters edge_matmul_q4k_f32 takes (any other writes nothing).
static inline bool edge_q4k_params_ok(size_t group_size, size_t sub_bits) {
    return group_size > 0 && (sub_bits == 6 || sub_bits == 8);
}

/// q4k, q3s: `bits` (1...8) bits of a little-endian bit stream from bit `pos` (bit i = bit i%8 of byte i/8),
/// lowest first; reads the next byte only when the field straddles it.
static inline unsigned edge_bits_at(const uint8_t *stream, size_t pos, unsigned bits) {
    unsigned shift = (unsigned)(pos & 7), v = (unsigned)stream[pos >> 3] >> shift;
    if (shift + bits > 8) v |= (unsigned)stream[(pos >> 3) + 1] << (8 - shift);
    return v & ((1u << bits) - 1u);
}

/// q4k group k of a row: d = D * sc, m = M * mn (exact in binary32: an 11-bit significand times an
/// integer below 256). `sub_row` is the row's sub-code stream, D and M the row's super values as f32.
static inline void edge_q4k_group(const uint8_t *sub_row, size_t k, unsigned bits, float D, float M, float *d, float *m) {
    size_t pos = 2 * (size_t)bits * k;
    *d = D * (float)edge_bits_at(sub_row, pos, bits);
    *m = M * (float)edge_bits_at(sub_row, pos + bits, bits);
}

/// q4k weight: d * u - m, one rounding (d * u is exact), so an fma gives the same bits.
static inline float edge_q4k_value(float d, unsigned u, float m) { return d * (float)u - m; }

/// q3s: the parameters edge_matmul_q3s_f32 takes (any other writes nothing).
static inline bool edge_q3s_params_ok(size_t group_size, size_t sub_bits) {
    return group_size > 0 && group_size % 8 == 0 && (sub_bits == 6 || sub_bits == 8);
}

/// q3s group k of a row: its scale D * sc (exact in binary32: an 11-bit significand times an integer
/// below 256) and zero point z, the (b + 3)-bit field k of the row's sub-code stream `sub_row`
/// (sc in its low `bits` bits, z in the 3 above). D is the row's super value as f32.
static inline void edge_q3s_group(const uint8_t *sub_row, size_t k, unsigned bits, float D, float *scale, int *zero) {
    size_t pos = (size_t)(bits + 3) * k;
    *scale = D * (float)edge_bits_at(sub_row, pos, bits);
    *zero = (int)edge_bits_at(sub_row, pos + bits, 3);
}

/// nm: bits per in-group index, ceil(log2 m) for m >= 2.
static inline unsigned edge_nm_bits(size_t m) {
    unsigned b = 0;
    while (((size_t)1 << b) < m) b++;
    return b;
}

/// nm: slots per row, n per full group of m columns and min(n, cols % m) for the tail group.
static inline size_t edge_nm_slots(size_t n, size_t m, size_t cols) {
    size_t tail = cols % m;
    return (cols / m) * n + (tail < n ? tail : n);
}

/// nm: the index of slot s in a row's bit stream `row` of `bits`-bit indices (LSB first).
static inline unsigned edge_nm_index(const uint8_t *row, size_t s, unsigned bits) {
    size_t bit = s * bits;
    unsigned shift = (unsigned)(bit & 7), v = (unsigned)row[bit >> 3] >> shift;
    if (shift + bits > 8) v |= (unsigned)row[(bit >> 3) + 1] << (8 - shift);
    return v & ((1u << bits) - 1);
}

/// Every lane index l < 16 of a 128-column block -> the block's group it belongs to, relative to the
/// block's first group (8l / group_size, 0 for groups of 128 or more).
static inline int edge_q4q8_lane_group(size_t group_size, int l) {
    return group_size <= 128 ? (int)((size_t)(8 * l) / group_size) : 0;
}

/// A 4-bit weight source of the int16-activation kernels: q4 (sub == NULL: scale_f16 and zero, NULL for
/// zero point 8) or q4k (sub, super_f16 and sub_bits); the nibbles Wq and group size gs either way.
typedef struct edge_q4x {
    const uint8_t *Wq;
    const uint16_t *scale_f16;
    const uint8_t *zero;
    const uint8_t *sub;
    const uint16_t *super_f16;
    size_t gs, sub_bits;
} edge_q4x;

static inline edge_q4x edge_q4x_q4(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t gs) {
    edge_q4x w = {Wq, scale_f16, zero, NULL, NULL, gs, 0};
    return w;
}
static inline edge_q4x edge_q4x_q4k(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t gs,
                                    size_t sub_bits) {
    edge_q4x w = {Wq, NULL, NULL, sub, super_f16, gs, sub_bits};
    return w;
}

/// q4k's min term operands for one token x (int16 activations, block scales xs): out[g] = (float)sx_g *
/// xs[b] for each group g of gs columns below cols (sx_g its exact int32 activation sum, |sx_g| <= 32767
/// * 256 < 2^24; b the group's 256-column block), and 0 for g from the group count up to n.
static inline void edge_q4k_group_sums(const int16_t *x, const float *xs, size_t cols, size_t gs, size_t n, float *out) {
    size_t groups = (cols + gs - 1) / gs;
    for (size_t g = 0; g < n; g++) {
        int32_t sx = 0;
        if (g < groups) {
            size_t c1 = (g + 1) * gs < cols ? (g + 1) * gs : cols;
            for (size_t k = g * gs; k < c1; k++) sx += x[k];
        }
        out[g] = g < groups ? (float)sx * xs[g * gs / EDGE_I16_BLOCK] : 0.0f;
    }
}

/// Activations of the SIMD edge_matmul_q4_q8b32 / edge_matmul_q4k_q8b32 kernels, per token t < T and
/// 128-column block j < nblk (nblk = ceil(cols / 128)), with sum_l = the sum of Xq[t, k] over lane l's
/// columns 128j + 8l ..< + 8 below cols: planes[(t*nblk + j)*128 + i] = Xq[t, 128j + 2i] and
/// [... + 64 + i] = Xq[t, 128j + 2i + 1] for i < 64 (0 past cols); when init is not NULL,
/// init[(t*nblk + j)*16 + l] = -zc * sum_l (q4: zc = 16 when asymmetric, else 8); xs[... + l] =
/// xscale[t*nb + (128j + 8l) / 32] for lanes starting below cols, else 0; when sxs is not NULL (q4k),
/// sxs[... + l] = (float)sum_l * xs[... + l] (one binary32 product; 0 for lanes past cols).
void edge_q4q8_prepare(const int8_t *Xq, const float *xscale, size_t T, size_t cols, int32_t zc, int8_t *planes,
                       int32_t *init, float *xs, float *sxs);

/// The prepared activations of edge_q4q8_prepare (sxs NULL for q4, init NULL for q4k) and, for q4k,
/// per-row scratch for d_g (gd) and m_g (gm): edge_q4q8_dm_len(G) floats each, finite throughout
/// (zeros past the groups edge_q4k_row_dm_avx2 writes).
typedef struct edge_q4q8_act {
    const int8_t *planes;
    const int32_t *init;
    const float *xs, *sxs;
    float *gd, *gm;
} edge_q4q8_act;

/// Length of the q4k d_g / m_g scratch for G groups: G rounded up to 8, plus 8 (a full 8-lane load
/// from any group below G stays inside).
static inline size_t edge_q4q8_dm_len(size_t G) { return ((G + 7) & ~(size_t)7) + 8; }

/// A level's edge_matmul_q4_q8b32 / edge_matmul_q4k_q8b32 rows (w->sub != NULL: q4k) for T <= 4 tokens
/// against prepared activations.
typedef void (*edge_q4q8_rows_fn)(size_t T, const edge_q4x *w, const edge_q4q8_act *a, float *Y, size_t rows,
                                  size_t cols, size_t r0, size_t r1);
/// edge_matmul_q4_q8b32 / edge_matmul_q4k_q8b32 through `rows_fn`, chunks of up to 4 tokens, activations
/// prepared once per chunk (avx2.c); unsupported parameters write nothing.
void edge_q4q8_chunks(edge_q4q8_rows_fn rows_fn, const edge_q4x *w, const int8_t *Xq, const float *xscale, float *Y,
                      size_t T, size_t rows, size_t cols, size_t r0, size_t r1);

/// q4k: d_g = D * sc and m_g = M * mn of a row's G groups (sub-code stream s, `avail` bytes readable
/// from it, b = 6 or 8) into gd / gm, up to G rounded up to 8 entries (those past G finite) (avx2.c, AVX2).
void edge_q4k_row_dm_avx2(const uint8_t *s, size_t avail, size_t b, float D, float M, size_t G, float *gd, float *gm);

/// q4k: d_g and m_g (edge_q4k_group) of groups g0 ..< g0 + n of row r into d[0..n), m[0..n); b = 8 reads
/// the bytes (sc, mn) straight.
static inline void edge_q4k_row_dm(const edge_q4x *w, size_t r, size_t groups, size_t g0, size_t n, float *d, float *m) {
    size_t b = w->sub_bits, sub_row_bytes = (2 * b * groups + 7) / 8;
    const uint8_t *s = w->sub + r * sub_row_bytes;
    float D = edge_f16_to_f32(w->super_f16[2 * r]), M = edge_f16_to_f32(w->super_f16[2 * r + 1]);
    if (b == 8) {
        for (size_t i = 0; i < n; i++) {
            d[i] = D * (float)s[2 * (g0 + i)];
            m[i] = M * (float)s[2 * (g0 + i) + 1];
        }
    } else {
        for (size_t i = 0; i < n; i++) edge_q4k_group(s, g0 + i, (unsigned)b, D, M, d + i, m + i);
    }
}

/// avx2.c's edge_gemm_q4_i16 / edge_gemm_q4k_i16 driver, shared with avx512.c: per 256-column block and
/// block of 128 rows, the nibbles expanded to int8 (u - z for q4, u for q4k) and packed into panels of
/// `pnr` (edge_pack_panel_i16), the group scales (q4k: d_g, and m_g) gathered per row, then every `pmt`
/// tokens against every panel, one `micro` call per group (grouped: the group's scale times the token's
/// block scale; q4k: then the min term from the tokens' group activation sums), or, where `groups` is not
/// NULL, one `groups` call per full tile for the block's whole groups.
#if defined(__x86_64__)
void edge_gemm_q4_i16_driver(edge_i16_micro_fn micro, edge_i16_groups_fn groups, int pmt, int pnr, const edge_q4x *w, const int16_t *Xq,
                             const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1);
#endif

#endif
