// AArch64 Advanced SIMD kernels (baseline on every arm64 CPU, so no run-time check). The float-
// activation GEMMs run through the shared driver (gemm_driver.c) with this file's weight unpacker and
// dot-product tile (MT tokens x NR rows of 4-lane partial dot products; column tails of fewer than 4
// finished with scalar code); there is no packed NEON micro-kernel yet, so every token count takes
// the dot-product path. Kernels without a NEON version here (softmax, layernorm, gelu, silu) keep
// the reference ones.
#if defined(__aarch64__)
#include "dispatch.h"
#include <arm_neon.h>
#include <math.h>
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
    t->rmsnorm = rmsnorm;
    t->add = add_f32;
    t->axpy = axpy_f32;
    t->scale = scale_f32;
    t->dot_f32 = dot_f32;
}
#endif
