// AArch64 Advanced SIMD kernels (baseline on every arm64 CPU, so no run-time check). The float-
// activation GEMMs run through the shared driver (gemm_driver.c) with this file's weight unpacker and
// dot-product tile (MT tokens x NR rows of 4-lane partial dot products; column tails of fewer than 4
// finished with scalar code); there is no packed NEON micro-kernel yet, so every token count takes
// the dot-product path. The int16-activation products of q8 weights (every token count) and of q4 /
// q4k weights (decoding) are here too, bit-identical to their references. Kernels without a NEON
// version here (softmax, layernorm, gelu, silu, the sparse products, the q4 / q4k int16 GEMMs) keep
// the reference ones.
#if defined(__aarch64__)
#include "dispatch.h"
#include <arm_neon.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MT = 4, NR = 4 };  // tokens x rows: 16 accumulators + 4 weights + 1 activation of 32 q-registers

// ---- f32 micro-kernel -----------------------------------------------------------------------

/// y[t*ldy + r] (+)= dot(w[r*ldw ..], x[t*ldx ..]) over kc columns, t < mt, r < nr (constants at each use).
static inline __attribute__((always_inline)) void tile_f32(const int mt, const int nr, const float *w, size_t ldw,
                                                           const float *x, size_t ldx, float *y, size_t ldy, size_t kc,
                                                           bool accumulate) {
    float32x4_t acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = vdupq_n_f32(0.0f);
    size_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        float32x4_t wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = vld1q_f32(w + r * ldw + k);
        for (int t = 0; t < mt; t++) {
            float32x4_t xv = vld1q_f32(x + t * ldx + k);
            for (int r = 0; r < nr; r++) acc[t][r] = vfmaq_f32(acc[t][r], wv[r], xv);
        }
    }
    for (int t = 0; t < mt; t++) {
        float *yt = y + t * ldy;
        for (int r = 0; r < nr; r++) {
            float s = vaddvq_f32(acc[t][r]);
            for (size_t kk = k; kk < kc; kk++) s += w[r * ldw + kk] * x[t * ldx + kk];
            yt[r] = accumulate ? yt[r] + s : s;
        }
    }
}

#define TILE_CASE(a, b) \
    case (a) * 8 + (b): tile_f32(a, b, w, ldw, x, ldx, y, ldy, kc, accumulate); break;

static void tile_f32_any(int mt, int nr, const float *w, size_t ldw, const float *x, size_t ldx, float *y, size_t ldy,
                         size_t kc, bool accumulate) {
    switch (mt * 8 + nr) {
        EDGE_TILES_4X4(TILE_CASE)
    }
}
#undef TILE_CASE

// ---- Weight unpackers (gemm_driver.h) ----------------------------------------------------

/// dst[i] = f32 of binary16 src[i] for whole vectors of 4; returns how many it converted.
static size_t unpack_f16(const uint16_t *src, size_t n, float *dst) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    return i;
}

/// dst[i] = scale * (float)(q[i] - zero) (q unsigned when asymmetric, else signed with zero 0) for
/// whole vectors of 8; returns how many it converted.
static size_t unpack_q8(const uint8_t *src, size_t n, float scale, bool asymmetric, int zero, float *dst) {
    size_t i = 0;
    if (asymmetric) {
        int16x8_t vz = vdupq_n_s16((int16_t)zero);
        for (; i + 8 <= n; i += 8) {
            int16x8_t q = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(src + i))), vz);
            vst1q_f32(dst + i, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), scale));
            vst1q_f32(dst + i + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q))), scale));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            int16x8_t q = vmovl_s8(vld1_s8((const int8_t *)src + i));
            vst1q_f32(dst + i, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), scale));
            vst1q_f32(dst + i + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q))), scale));
        }
    }
    return i;
}

/// dst[i] = scale * (float)(nibble i - zero) (low nibble of bytes[i/2] first) for whole vectors of 16
/// (8 bytes); returns how many it converted.
static size_t unpack_q4(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    int16x8_t vz = vdupq_n_s16((int16_t)zero);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x8_t b = vld1_u8(bytes + i / 2);
        uint8x8x2_t u = vzip_u8(vand_u8(b, vdup_n_u8(0x0F)), vshr_n_u8(b, 4));  // element order
        int16x8_t q0 = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(u.val[0])), vz);
        int16x8_t q1 = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(u.val[1])), vz);
        float *d = dst + i;
        vst1q_f32(d, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q0))), scale));
        vst1q_f32(d + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q0))), scale));
        vst1q_f32(d + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q1))), scale));
        vst1q_f32(d + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q1))), scale));
    }
    return i;
}

/// dst[i] = scale * (float)(code i - zero) (code i in bits 3i...3i+2 of the bit stream at bytes) for whole
/// vectors of 8 (3 bytes each); returns how many it converted. Reads at most ceil(3n/8) bytes.
static size_t unpack_q3(const uint8_t *bytes, size_t n, float scale, int zero, float *dst) {
    const int32_t sh_lo[4] = {0, -3, -6, -9}, sh_hi[4] = {-12, -15, -18, -21};
    const int32x4_t s0 = vld1q_s32(sh_lo), s1 = vld1q_s32(sh_hi), vz = vdupq_n_s32(zero);
    const uint32x4_t seven = vdupq_n_u32(7);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint8_t *b = bytes + i / 8 * 3;
        uint32x4_t v = vdupq_n_u32((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16);
        int32x4_t q0 = vsubq_s32(vreinterpretq_s32_u32(vandq_u32(vshlq_u32(v, s0), seven)), vz);
        int32x4_t q1 = vsubq_s32(vreinterpretq_s32_u32(vandq_u32(vshlq_u32(v, s1), seven)), vz);
        vst1q_f32(dst + i, vmulq_n_f32(vcvtq_f32_s32(q0), scale));
        vst1q_f32(dst + i + 4, vmulq_n_f32(vcvtq_f32_s32(q1), scale));
    }
    return i;
}

/// dst[i] = d * (float)(nibble i) - m (low nibble of bytes[i/2] first) for whole vectors of 16 (8 bytes);
/// returns how many it converted. d * u is exact, so the product then the subtraction (one rounding) gives
/// the scalar formula's bits, as an fma would.
static size_t unpack_q4k(const uint8_t *bytes, size_t n, float d, float m, float *dst) {
    const float32x4_t vm = vdupq_n_f32(m);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x8_t b = vld1_u8(bytes + i / 2);
        uint8x8x2_t u = vzip_u8(vand_u8(b, vdup_n_u8(0x0F)), vshr_n_u8(b, 4));  // element order
        uint16x8_t q0 = vmovl_u8(u.val[0]), q1 = vmovl_u8(u.val[1]);
        float *o = dst + i;
        vst1q_f32(o, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(q0))), d), vm));
        vst1q_f32(o + 4, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(q0))), d), vm));
        vst1q_f32(o + 8, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(q1))), d), vm));
        vst1q_f32(o + 12, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(q1))), d), vm));
    }
    return i;
}

/// The NEON micro-kernel and unpacker of the shared GEMM driver (gemm_driver.c): dot-product only.
static const edge_gemm_isa k_gemm_neon = {
    .dot_name = "neon-dot-4x4", .packed_name = NULL,
    .unpack_f16 = unpack_f16, .unpack_q8 = unpack_q8, .unpack_q4 = unpack_q4, .unpack_q3 = unpack_q3,
    .unpack_q4k = unpack_q4k,
    .dot_tile = tile_f32_any, .dot_mt = MT, .dot_nr = NR,
    .packed_tile = NULL,
};

// ---- int8 x int8 ----------------------------------------------------------------------------

/// y[t*ldy + r] = ((float)sum_k w[r][k] x[t][k] * ws[r]) * xs[t]; exact int32 sums (vmull + vpadal).
static inline __attribute__((always_inline)) void tile_q8q8(const int mt, const int nr, const int8_t *w, const int8_t *x,
                                                            size_t cols, const float *ws, const float *xs, float *y,
                                                            size_t ldy) {
    int32x4_t acc[MT][NR];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = vdupq_n_s32(0);
    size_t k = 0;
    for (; k + 16 <= cols; k += 16) {
        int8x16_t wv[NR];
        for (int r = 0; r < nr; r++) wv[r] = vld1q_s8(w + r * cols + k);
        for (int t = 0; t < mt; t++) {
            int8x16_t xv = vld1q_s8(x + t * cols + k);
            for (int r = 0; r < nr; r++) {
                acc[t][r] = vpadalq_s16(acc[t][r], vmull_s8(vget_low_s8(wv[r]), vget_low_s8(xv)));
                acc[t][r] = vpadalq_s16(acc[t][r], vmull_high_s8(wv[r], xv));
            }
        }
    }
    for (int t = 0; t < mt; t++) {
        for (int r = 0; r < nr; r++) {
            int32_t s = vaddvq_s32(acc[t][r]);
            for (size_t kk = k; kk < cols; kk++) s += (int32_t)w[r * cols + kk] * (int32_t)x[t * cols + kk];
            y[t * ldy + r] = ((float)s * ws[r]) * xs[t];
        }
    }
}

#define Q_CASE(a, b) \
    case (a) * 8 + (b): tile_q8q8(a, b, w, x, cols, ws, xs, y, ldy); break;

static void tile_q8q8_any(int mt, int nr, const int8_t *w, const int8_t *x, size_t cols, const float *ws,
                          const float *xs, float *y, size_t ldy) {
    switch (mt * 8 + nr) {
        EDGE_TILES_4X4(Q_CASE)
    }
}
#undef Q_CASE

static void matmul_q8_q8(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                         size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += NR) {
        int nr = r1 - r < NR ? (int)(r1 - r) : NR;
        for (size_t t = 0; t < T; t += MT) {
            int mt = T - t < MT ? (int)(T - t) : MT;
            tile_q8q8_any(mt, nr, Wq + r * cols, Xq + t * cols, cols, wscale + r, xscale + t, Y + t * rows + r, rows);
        }
    }
}

// ---- int8 weights x int16 activations (exact) ----------------------------------------------
// The int16-activation product (edge_matmul_q8_i16) that AVX2 and AVX-512 run with vpmaddwd, here with
// widening multiply-adds: 16 weights of a row widened to int16 (sxtl), then vmlal / vmlal_high of each
// half against a token's int16 activations into int32 lanes. Every block of EDGE_I16_BLOCK columns is
// summed exactly (|sum| <= 256 * 127 * 32767 < 2^31, so lane order does not matter) and folded as
// fmaf((float)sum, block scale, acc), then scaled by the row's scale after the last block: the order
// of edge_matmul_q8_i16_ref, so the result is bit-identical to it (and to the x86 levels). Weight rows
// are read straight from the file's row-major int8 (no packing): up to 4 tokens (decoding) each row is
// streamed once, 4 rows at a time for 1-2 tokens and 2 for 3-4 (enough independent accumulators to
// keep the multiply-add pipes busy); more tokens take blocks of 16 rows (a few KB, L1-resident) and run
// every group of 4 tokens over each block.
enum { I16_ROW_MT = 4, I16_ROW_BLOCK = 16 };

/// acc[t][i] = fmaf(block sums ..., xscale) over every block for rows r..r+nr and tokens 0..mt of x,
/// then Y[t * rows + r + i] = acc * wscale[r + i]. mt <= 4 and nr <= 4 are constants at each use.
static inline __attribute__((always_inline)) void tile_q8i16(const int mt, const int nr, const int8_t *Wq,
                                                             const float *wscale, const int16_t *x, size_t ld,
                                                             const float *xscale, size_t nb, float *Y, size_t rows,
                                                             size_t cols, size_t r) {
    const int8_t *w = Wq + r * cols;
    float acc[I16_ROW_MT][4] = {{0}};
    for (size_t b = 0; b < nb; b++) {
        size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
        int32x4_t a[I16_ROW_MT][4][2];
        for (int t = 0; t < mt; t++)
            for (int i = 0; i < nr; i++) a[t][i][0] = a[t][i][1] = vdupq_n_s32(0);
        size_t k = k0;
        for (; k + 16 <= k1; k += 16) {
            int16x8_t wl[4], wh[4];
            for (int i = 0; i < nr; i++) {
                int8x16_t v = vld1q_s8(w + i * cols + k);
                wl[i] = vmovl_s8(vget_low_s8(v));
                wh[i] = vmovl_high_s8(v);
            }
            for (int t = 0; t < mt; t++) {
                int16x8_t x0 = vld1q_s16(x + t * ld + k), x1 = vld1q_s16(x + t * ld + k + 8);
                for (int i = 0; i < nr; i++) {
                    a[t][i][0] = vmlal_s16(a[t][i][0], vget_low_s16(wl[i]), vget_low_s16(x0));
                    a[t][i][0] = vmlal_high_s16(a[t][i][0], wl[i], x0);
                    a[t][i][1] = vmlal_s16(a[t][i][1], vget_low_s16(wh[i]), vget_low_s16(x1));
                    a[t][i][1] = vmlal_high_s16(a[t][i][1], wh[i], x1);
                }
            }
        }
        for (int t = 0; t < mt; t++)
            for (int i = 0; i < nr; i++) {
                int32_t s = vaddvq_s32(vaddq_s32(a[t][i][0], a[t][i][1]));
                for (size_t j = k; j < k1; j++) s += (int32_t)w[i * cols + j] * (int32_t)x[t * ld + j];
                acc[t][i] = fmaf((float)s, xscale[t * nb + b], acc[t][i]);
            }
    }
    for (int t = 0; t < mt; t++)
        for (int i = 0; i < nr; i++) Y[t * rows + r + i] = acc[t][i] * wscale[r + i];
}

#define I16_CASE(a, b) \
    case (a) * 8 + (b): tile_q8i16(a, b, Wq, wscale, x, ld, xscale, nb, Y, rows, cols, r); break;

static void tile_q8i16_any(int mt, int nr, const int8_t *Wq, const float *wscale, const int16_t *x, size_t ld,
                           const float *xscale, size_t nb, float *Y, size_t rows, size_t cols, size_t r) {
    switch (mt * 8 + nr) {
        EDGE_TILES_4X4(I16_CASE)
    }
}
#undef I16_CASE

static void matmul_q8_i16(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                          size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    size_t block = T <= I16_ROW_MT ? r1 - r0 : I16_ROW_BLOCK;
    for (size_t rb = r0; rb < r1; rb += block) {
        size_t re = r1 - rb < block ? r1 : rb + block;
        for (size_t t0 = 0; t0 < T; t0 += I16_ROW_MT) {
            int mt = T - t0 < I16_ROW_MT ? (int)(T - t0) : I16_ROW_MT;
            size_t step = mt <= 2 ? 4 : 2;
            for (size_t r = rb; r < re;) {
                size_t left = re - r;
                int nr = (int)(left >= step ? step : left >= 2 ? 2 : 1);
                tile_q8i16_any(mt, nr, Wq, wscale, Xq + t0 * ld, ld, xscale + t0 * nb, nb, Y + t0 * rows, rows, cols, r);
                r += (size_t)nr;
            }
        }
    }
}

// ---- q4 and q4k weights x int16 activations, few tokens (decoding) ---------------------------
// edge_matmul_q4_i16 / edge_matmul_q4k_i16: each row's nibbles are read once per token, 32 columns
// (16 bytes) at a time: the low and high nibbles of 8 bytes, widened to int16, are the even and odd
// columns of 16, against the activations loaded de-interleaved (vld2q_s16); widening multiply-adds put
// each 8 columns' products in one int32x4 and pairwise adds fold them into the reference's lanes s_l
// (l = (k % 64) / 8). q4's zero points come off as z times the activations' lane sums over the group
// (`xl`, once per call per token: the identity sum (u - z) x = sum u x - z sum x is exact in int32).
// The float steps are the reference's, in its order (scalar fmaf per lane per group, the final tree),
// so the result is bit-identical to edge_matmul_q4_i16_ref / edge_matmul_q4k_i16_ref.

/// The four lane sums of u * x over 32 columns (the lanes (k % 64) / 8 .. + 3 of their first column k):
/// q holds the 16 bytes of those columns, x their 32 activations.
static inline __attribute__((always_inline)) int32x4_t q4_half_sums(const uint8_t *q, const int16_t *x) {
    const uint8x8_t m4 = vdup_n_u8(0x0F);
    int32x4_t s[4];
    for (int h = 0; h < 2; h++) {
        uint8x8_t b = vld1_u8(q + 8 * h);
        int16x8_t e = vreinterpretq_s16_u16(vmovl_u8(vand_u8(b, m4))), o = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(b, 4)));
        int16x8x2_t xx = vld2q_s16(x + 16 * h);  // val[0]: the even columns, val[1]: the odd ones
        s[2 * h] = vmlal_s16(vmull_s16(vget_low_s16(e), vget_low_s16(xx.val[0])), vget_low_s16(o), vget_low_s16(xx.val[1]));
        s[2 * h + 1] = vmlal_high_s16(vmull_high_s16(e, xx.val[0]), o, xx.val[1]);
    }
    return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
}

/// xl[u * 8 + l]: the sum of x over lane l of the unit of 64 columns u (columns below cols), every unit.
static void q4_lane_sums(const int16_t *x, size_t cols, int32_t *xl) {
    for (size_t u = 0; u < (cols + 63) / 64; u++)
        for (size_t l = 0; l < 8; l++) {
            int32_t s = 0;
            for (size_t k = u * 64 + 8 * l; k < u * 64 + 8 * l + 8 && k < cols; k++) s += x[k];
            xl[u * 8 + l] = s;
        }
}

/// One row and one token of edge_matmul_q4_i16 (k4 = false) or edge_matmul_q4k_i16 (k4 = true); `xs`
/// the token's block scales, `xl` its lane sums (q4_lane_sums).
static inline __attribute__((always_inline)) float q4_i16_row(const bool k4, const uint8_t *q, const uint16_t *scale_f16,
                                                              const uint8_t *zero, const uint8_t *sub_row, float D, float M,
                                                              unsigned sub_bits, size_t gs, size_t groups, const int16_t *x,
                                                              const int32_t *xl, const float *xs, size_t cols) {
    float a[8] = {0}, e[8] = {0};
    for (size_t g = 0; g < groups; g++) {
        size_t c0 = g * gs, c1 = c0 + gs < cols ? c0 + gs : cols;
        int32_t su[8] = {0};
        size_t k = c0;
        for (; k + 32 <= c1; k += 32) {
            int32x4_t v = q4_half_sums(q + k / 2, x + k);
            int32_t *dst = su + (k % 64) / 8;
            vst1q_s32(dst, vaddq_s32(vld1q_s32(dst), v));
        }
        for (; k < c1; k++) su[(k % 64) / 8] += (int32_t)edge_q4_nibble(q, k) * (int32_t)x[k];
        int l0 = gs == 32 ? (int)((c0 % 64) / 8) : 0, l1 = gs == 32 ? l0 + 4 : 8;
        float xsb = xs[c0 / EDGE_I16_BLOCK];
        if (k4) {
            float d, m;
            edge_q4k_group(sub_row, g, sub_bits, D, M, &d, &m);
            float dx = d * xsb;
            int32_t sx = 0;
            for (size_t u = c0 / 64; u * 64 < c1; u++)
                for (int l = l0; l < l1; l++) sx += xl[u * 8 + l];
            for (int l = l0; l < l1; l++) a[l] = fmaf((float)su[l], dx, a[l]);
            e[g % 8] = fmaf(m, (float)sx * xsb, e[g % 8]);
        } else {
            int32_t z = zero ? (int32_t)zero[g] : 8;
            float d = edge_f16_to_f32(scale_f16[g]) * xsb;
            for (int l = l0; l < l1; l++) {
                int32_t xsum = 0;
                for (size_t u = c0 / 64; u * 64 < c1; u++) xsum += xl[u * 8 + l];
                a[l] = fmaf((float)(su[l] - z * xsum), d, a[l]);
            }
        }
    }
    float c[8];
    for (int l = 0; l < 8; l++) c[l] = k4 ? a[l] - e[l] : a[l];
    return ((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7]));
}

static inline __attribute__((always_inline)) void q4_i16_rows(const bool k4, const uint8_t *Wq, const uint16_t *scale_f16,
                                                              const uint8_t *zero, const uint8_t *sub,
                                                              const uint16_t *super_f16, size_t gs, size_t sub_bits,
                                                              const int16_t *Xq, const float *xscale, float *Y, size_t T,
                                                              size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK, units = (cols + 63) / 64;
    size_t groups = (cols + gs - 1) / gs, row_bytes = (cols + 1) / 2, srb = (2 * sub_bits * groups + 7) / 8;
    int32_t stack[8 * 64], *xl = units * 8 <= 8 * 64 ? stack : malloc(units * 8 * sizeof *xl);
    if (!xl) {  // out of memory: the reference needs none
        if (k4) edge_matmul_q4k_i16_ref(Wq, sub, super_f16, gs, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
        else edge_matmul_q4_i16_ref(Wq, scale_f16, zero, gs, Xq, xscale, Y, T, rows, cols, r0, r1);
        return;
    }
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        q4_lane_sums(x, cols, xl);
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = 0, M = 0;
            if (k4) { D = edge_f16_to_f32(super_f16[2 * r]); M = edge_f16_to_f32(super_f16[2 * r + 1]); }
            Y[t * rows + r] = q4_i16_row(k4, q, k4 ? NULL : scale_f16 + r * groups, k4 || !zero ? NULL : zero + r * groups,
                                         k4 ? sub + r * srb : NULL, D, M, (unsigned)sub_bits, gs, groups, x, xl,
                                         xscale + t * nb, cols);
        }
    }
    if (xl != stack) free(xl);
}

static void matmul_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                          size_t r1) {
    if (!edge_q4_i16_supported(group_size)) return;
    q4_i16_rows(false, Wq, scale_f16, zero, NULL, NULL, group_size, 0, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static void matmul_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(group_size, sub_bits)) return;
    q4_i16_rows(true, Wq, NULL, NULL, sub, super_f16, group_size, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
}

static void quantize_row_q8(const float *x, int8_t *xq, float *xscale, size_t n) {
    float amax = 0.0f;
    size_t i = 0;
    if (n >= 4) {
        float32x4_t vmax = vdupq_n_f32(0.0f);
        for (; i + 4 <= n; i += 4) vmax = vmaxnmq_f32(vmax, vabsq_f32(vld1q_f32(x + i)));  // maxnm ignores NaN
        amax = vmaxnmvq_f32(vmax);
    }
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * id);
        if (v > 127.0f) v = 127.0f;
        if (!(v >= -127.0f)) v = -127.0f;
        xq[i] = (int8_t)v;
    }
    *xscale = d;
}

// ---- Element-wise ---------------------------------------------------------------------------

static float dot_f32(const float *a, const float *b, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void rmsnorm(const float *x, const float *w, float *out, size_t n, float eps) {
    float inv = 1.0f / sqrtf(dot_f32(x, x, n) / (float)n + eps);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), inv)));
    for (; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

static void add_f32(float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(a + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    for (; i < n; i++) a[i] += b[i];
}

static void axpy_f32(float *y, float a, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

static void scale_f32(float *x, float s, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), s));
    for (; i < n; i++) x[i] *= s;
}

void edge_fill_table_neon(edge_kernel_table *t) {
    t->level = EDGE_KERNELS_NEON;
    t->vnni = false;
    t->gemm = &k_gemm_neon;
    t->quantize_row_q8 = quantize_row_q8;
    t->matmul_q8_q8 = matmul_q8_q8;
    t->q8_q8_name = "neon-dot-q8q8-4x4";
    t->matmul_q8_i16 = matmul_q8_i16;
    t->q8_i16_name = "neon-blocked-i16-4x2";
    t->q8_i16_rows_name = "neon-rows-i16-4x2";
    t->i16_rows_max_t = I16_ROW_MT;
    t->matmul_q4_i16 = matmul_q4_i16;
    t->q4_i16_name = "neon-rows-q4i16-1x1";
    t->matmul_q4k_i16 = matmul_q4k_i16;
    t->q4k_i16_name = "neon-rows-q4ki16-1x1";
    t->rmsnorm = rmsnorm;
    t->add = add_f32;
    t->axpy = axpy_f32;
    t->scale = scale_f32;
    t->dot_f32 = dot_f32;
}
#endif
