// Scalar reference kernels: the oracle every SIMD variant is tested against, and the fallback
// level. Plain loops, float accumulation, no cleverness.
#include "dispatch.h"
#include <math.h>
#include <string.h>

// ---- Matrix products ------------------------------------------------------------------------

// W is (rows, cols), x is (cols), y is (rows)
void edge_matvec_f32_ref(const float *W, const float *x, float *y, size_t rows, size_t cols, size_t r0, size_t r1) {
    (void)rows;
    for (size_t r = r0; r < r1; r++) {
        const float *w = W + r * cols;
        float acc = 0.0f;
        for (size_t k = 0; k < cols; k++) acc += w[k] * x[k];
        y[r] = acc;
    }
}

// W is (rows, cols), X is (T, cols), Y is (T, rows)
void edge_matmul_f32_ref(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const float *w = W + r * cols;
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) acc += w[k] * x[k];
            Y[t * rows + r] = acc;
        }
    }
}

// Wt is (cols, rows) = W^T, X is (T, cols), Y is (T, rows)
void edge_matmul_f32_wt_ref(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                            size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) acc += Wt[k * rows + r] * x[k];
            Y[t * rows + r] = acc;
        }
    }
}

/// Weight (r, k) of a bf16 product's W: W [rows, cols], or W^T [cols, rows] when `wt`.
static inline float bf16_weight(const float *W, bool wt, size_t rows, size_t cols, size_t r, size_t k) {
    return wt ? W[k * rows + r] : W[r * cols + k];
}

static void matmul_bf16_any_ref(const float *W, bool wt, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                                size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            float y = 0.0f;
            for (size_t k0 = 0; k0 < cols; k0 += EDGE_BF16_BLOCK) {
                size_t k1 = cols - k0 < EDGE_BF16_BLOCK ? cols : k0 + EDGE_BF16_BLOCK;
                float s = 0.0f;
                for (size_t k = k0; k < k1; k += 2) {
                    float xo = 0.0f, wo = 0.0f;
                    if (k + 1 < k1) {
                        xo = edge_bf16_round_inline(x[k + 1]);
                        wo = edge_bf16_round_inline(bf16_weight(W, wt, rows, cols, r, k + 1));
                    }
                    s = fmaf(xo, wo, s);
                    s = fmaf(edge_bf16_round_inline(x[k]), edge_bf16_round_inline(bf16_weight(W, wt, rows, cols, r, k)), s);
                }
                y = k0 == 0 ? s : s + y;
            }
            Y[t * rows + r] = y;
        }
    }
}

void edge_matmul_bf16_ref(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    matmul_bf16_any_ref(W, false, X, Y, T, rows, cols, r0, r1);
}

void edge_matmul_bf16_wt_ref(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1) {
    matmul_bf16_any_ref(Wt, true, X, Y, T, rows, cols, r0, r1);
}

// src is (rows, cols), dst is (cols, rows); 32 x 32 tiles so both sides stay in cache
void edge_transpose_f32_ref(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1) {
    enum { TILE = 32 };
    for (size_t rb = r0; rb < r1; rb += TILE) {
        size_t re = rb + TILE < r1 ? rb + TILE : r1;
        for (size_t cb = 0; cb < cols; cb += TILE) {
            size_t ce = cb + TILE < cols ? cb + TILE : cols;
            for (size_t r = rb; r < re; r++)
                for (size_t c = cb; c < ce; c++) dst[c * rows + r] = src[r * cols + c];
        }
    }
}

// W is (rows, cols) binary16, X is (T, cols), Y is (T, rows)
void edge_matmul_f16_ref(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint16_t *w = W + r * cols;
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) acc += edge_f16_to_f32(w[k]) * x[k];
            Y[t * rows + r] = acc;
        }
    }
}

// Wq is (rows, cols) int8 (or uint8 with zero), scale/zero are (rows), X is (T, cols), Y is (T, rows)
void edge_matmul_q8_f32_ref(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                            size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const int8_t *q = Wq + r * cols;
            const uint8_t *u = (const uint8_t *)q;
            float s = scale[r];
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) {
                int v = zero ? (int)u[k] - (int)zero[r] : (int)q[k];
                acc += (s * (float)v) * x[k];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// x is (n) -> xq is (n) int8, *xscale
void edge_quantize_row_q8_ref(const float *x, int8_t *xq, float *xscale, size_t n) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * id);  // default rounding mode: to nearest, ties to even
        if (v > 127.0f) v = 127.0f;
        if (!(v >= -127.0f)) v = -127.0f;  // NaN (from a NaN or Inf input) lands here, as in the SIMD min/max
        xq[i] = (int8_t)v;
    }
    *xscale = d;
}

// Wq is (rows, cols) int8, wscale (rows), Xq is (T, cols) int8, xscale (T), Y is (T, rows)
void edge_matmul_q8_q8_ref(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const int8_t *x = Xq + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const int8_t *w = Wq + r * cols;
            int32_t acc = 0;
            for (size_t k = 0; k < cols; k++) acc += (int32_t)w[k] * (int32_t)x[k];
            Y[t * rows + r] = ((float)acc * wscale[r]) * xscale[t];
        }
    }
}

// x is (n) -> xq is (n) int8, xscale is (ceil(n/32)): edge_quantize_row_q8_ref on each block of 32
void edge_quantize_row_q8_b32_ref(const float *x, int8_t *xq, float *xscale, size_t n) {
    for (size_t k = 0, b = 0; k < n; k += EDGE_Q8_BLOCK, b++)
        edge_quantize_row_q8_ref(x + k, xq + k, xscale + b, n - k < EDGE_Q8_BLOCK ? n - k : EDGE_Q8_BLOCK);
}

// Wq is (rows, cols) int8, wscale (rows), Xq is (T, cols) int8, xscale (T, nb), Y is (T, rows).
// Eight float lanes per output, lane j taking columns 4j...4j+3 of every block (the SIMD order).
void edge_matmul_q8_q8b32_ref(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                              size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    for (size_t t = 0; t < T; t++) {
        const int8_t *x = Xq + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const int8_t *w = Wq + r * cols;
            float lane[8] = {0};
            for (size_t b = 0; b < nb; b++) {
                float xs = xscale[t * nb + b];
                for (size_t j = 0; j < 8; j++) {
                    int32_t s = 0;
                    for (size_t k = b * EDGE_Q8_BLOCK + 4 * j; k < b * EDGE_Q8_BLOCK + 4 * j + 4 && k < cols; k++)
                        s += (int32_t)w[k] * (int32_t)x[k];
                    lane[j] = fmaf((float)s, xs, lane[j]);
                }
            }
            float sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
            Y[t * rows + r] = sum * wscale[r];
        }
    }
}

// X is (T, cols) -> Xq is (T, edge_i16_stride(cols)) int16, xscale is (T, ceil(cols/256))
void edge_quantize_rows_i16_ref(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        int16_t *q = Xq + t * ld;
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * EDGE_I16_BLOCK, k1 = cols - k0 < EDGE_I16_BLOCK ? cols : k0 + EDGE_I16_BLOCK;
            float amax = 0.0f;
            for (size_t k = k0; k < k1; k++) {
                float a = fabsf(x[k]);
                if (a > amax) amax = a;
            }
            float d = amax / 32767.0f;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            for (size_t k = k0; k < k1; k++) {
                float v = nearbyintf(x[k] * id);  // to nearest, ties to even
                if (v > 32767.0f) v = 32767.0f;
                if (!(v >= -32767.0f)) v = -32767.0f;  // NaN lands here, as in the SIMD min/max
                q[k] = (int16_t)v;
            }
            xscale[t * nb + b] = d;
        }
        if (ld > cols) q[cols] = 0;
    }
}

// Wq is (rows, cols) int8, wscale (rows), Xq is (T, edge_i16_stride(cols)) int16, xscale (T, nb), Y is (T, rows).
void edge_matmul_q8_i16_ref(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                            size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const int8_t *w = Wq + r * cols;
            float acc = 0.0f;
            for (size_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (size_t k = b * EDGE_I16_BLOCK; k < cols && k < (b + 1) * EDGE_I16_BLOCK; k++)
                    s += (int32_t)w[k] * (int32_t)x[k];
                acc = fmaf((float)s, xscale[t * nb + b], acc);
            }
            Y[t * rows + r] = acc * wscale[r];
        }
    }
}

void edge_minmax_ref(const float *x, size_t n, float *lo, float *hi) {
    float l = *lo, h = *hi;
    for (size_t i = 0; i < n; i++) {
        l = x[i] < l ? x[i] : l;
        h = x[i] > h ? x[i] : h;
    }
    *lo = l;
    *hi = h;
}

void edge_round_to_grid_ref(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                            uint8_t *stored, double *sums) {
    double se[8] = {0}, sq[8] = {0};
    for (size_t i = 0; i < n; i++) edge_round_one(x, stored, i, scale, zero, qmin, qmax, offset, se, sq);
    sums[0] += edge_reduce8(se);
    sums[1] += edge_reduce8(sq);
}

void edge_matmul_q4_i16_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                            size_t r0, size_t r1) {
    if (!edge_q4_i16_supported(group_size)) return;
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float a[8] = {0};
            for (size_t g = 0; g < groups; g++) {
                size_t c0 = g * group_size, c1 = c0 + group_size < cols ? c0 + group_size : cols;
                size_t gi = r * groups + g;
                int z = zero ? (int)zero[gi] : 8;
                float d = edge_f16_to_f32(scale_f16[gi]) * xscale[t * nb + c0 / EDGE_I16_BLOCK];
                int32_t sl[8] = {0};
                for (size_t k = c0; k < c1; k++) sl[(k % 64) / 8] += ((int32_t)edge_q4_nibble(q, k) - z) * (int32_t)x[k];
                // A group of 32 has the four lanes of its half of the 64 columns; larger groups all eight.
                int l0 = group_size == 32 ? (int)((c0 % 64) / 8) : 0, l1 = group_size == 32 ? l0 + 4 : 8;
                for (int l = l0; l < l1; l++) a[l] = fmaf((float)sl[l], d, a[l]);
            }
            Y[t * rows + r] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        }
    }
}

void edge_gemm_q4_i16_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                          size_t r0, size_t r1) {
    if (!edge_q4_i16_supported(group_size)) return;
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float acc = 0.0f;
            for (size_t g = 0; g < groups; g++) {
                size_t c0 = g * group_size, c1 = c0 + group_size < cols ? c0 + group_size : cols, gi = r * groups + g;
                int z = zero ? (int)zero[gi] : 8;
                int32_t s = 0;
                for (size_t k = c0; k < c1; k++) s += ((int32_t)edge_q4_nibble(q, k) - z) * (int32_t)x[k];
                acc = fmaf((float)s, edge_f16_to_f32(scale_f16[gi]) * xscale[t * nb + c0 / EDGE_I16_BLOCK], acc);
            }
            Y[t * rows + r] = acc;
        }
    }
}

void edge_matmul_q4k_i16_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                             size_t cols, size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(group_size, sub_bits)) return;
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    size_t sub_row_bytes = (2 * sub_bits * groups + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = edge_f16_to_f32(super_f16[2 * r]), M = edge_f16_to_f32(super_f16[2 * r + 1]);
            float a[8] = {0}, e[8] = {0};
            for (size_t g = 0; g < groups; g++) {
                size_t c0 = g * group_size, c1 = c0 + group_size < cols ? c0 + group_size : cols;
                float d, m, xs = xscale[t * nb + c0 / EDGE_I16_BLOCK];
                edge_q4k_group(sub + r * sub_row_bytes, g, (unsigned)sub_bits, D, M, &d, &m);
                float dx = d * xs;
                int32_t su[8] = {0}, sx = 0;
                for (size_t k = c0; k < c1; k++) {
                    su[(k % 64) / 8] += (int32_t)edge_q4_nibble(q, k) * (int32_t)x[k];
                    sx += (int32_t)x[k];
                }
                // A group of 32 has the four lanes of its half of the 64 columns; larger groups all eight.
                int l0 = group_size == 32 ? (int)((c0 % 64) / 8) : 0, l1 = group_size == 32 ? l0 + 4 : 8;
                for (int l = l0; l < l1; l++) a[l] = fmaf((float)su[l], dx, a[l]);
                float sxs = (float)sx * xs;
                e[g % 8] = fmaf(m, sxs, e[g % 8]);
            }
            float c[8];
            for (int l = 0; l < 8; l++) c[l] = a[l] - e[l];
            Y[t * rows + r] = ((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7]));
        }
    }
}

void edge_gemm_q4k_i16_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1) {
    if (!edge_q4k_i16_supported(group_size, sub_bits)) return;
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    size_t sub_row_bytes = (2 * sub_bits * groups + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = edge_f16_to_f32(super_f16[2 * r]), M = edge_f16_to_f32(super_f16[2 * r + 1]);
            float acc = 0.0f;
            for (size_t g = 0; g < groups; g++) {
                size_t c0 = g * group_size, c1 = c0 + group_size < cols ? c0 + group_size : cols;
                float d, m, xs = xscale[t * nb + c0 / EDGE_I16_BLOCK];
                edge_q4k_group(sub + r * sub_row_bytes, g, (unsigned)sub_bits, D, M, &d, &m);
                int32_t su = 0, sx = 0;
                for (size_t k = c0; k < c1; k++) {
                    su += (int32_t)edge_q4_nibble(q, k) * (int32_t)x[k];
                    sx += (int32_t)x[k];
                }
                acc = fmaf((float)su, d * xs, acc);
                acc = fmaf(-m, (float)sx * xs, acc);
            }
            Y[t * rows + r] = acc;
        }
    }
}

void edge_matmul_q4_q8b32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                              const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1) {
    if (!edge_q4_q8_supported(group_size)) return;
    size_t nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    for (size_t t = 0; t < T; t++) {
        const int8_t *x = Xq + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float a[16] = {0};
            for (size_t c0 = 0; c0 < cols; c0 += 128) {
                for (size_t l = 0; l < 16 && c0 + 8 * l < cols; l++) {
                    size_t k0 = c0 + 8 * l, k1 = k0 + 8 < cols ? k0 + 8 : cols, gi = r * groups + k0 / group_size;
                    int z = zero ? (int)zero[gi] : 8;
                    int32_t s = 0;
                    for (size_t k = k0; k < k1; k++) s += ((int32_t)edge_q4_nibble(q, k) - z) * (int32_t)x[k];
                    float d = edge_f16_to_f32(scale_f16[gi]) * xscale[t * nb + k0 / EDGE_Q8_BLOCK];
                    a[l] = fmaf((float)s, d, a[l]);
                }
            }
            Y[t * rows + r] = (((a[0] + a[8]) + (a[4] + a[12])) + ((a[2] + a[10]) + (a[6] + a[14]))) +
                              (((a[1] + a[9]) + (a[5] + a[13])) + ((a[3] + a[11]) + (a[7] + a[15])));
        }
    }
}

void edge_matmul_q4k_q8b32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                               size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                               size_t cols, size_t r0, size_t r1) {
    if (!edge_q4k_q8_supported(group_size, sub_bits)) return;
    size_t nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    size_t groups = (cols + group_size - 1) / group_size, row_bytes = (cols + 1) / 2;
    size_t sub_row_bytes = (2 * sub_bits * groups + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const int8_t *x = Xq + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = edge_f16_to_f32(super_f16[2 * r]), M = edge_f16_to_f32(super_f16[2 * r + 1]);
            float a[16] = {0};
            for (size_t c0 = 0; c0 < cols; c0 += 128) {
                for (size_t l = 0; l < 16 && c0 + 8 * l < cols; l++) {
                    size_t k0 = c0 + 8 * l, k1 = k0 + 8 < cols ? k0 + 8 : cols;
                    float d, m, xs = xscale[t * nb + k0 / EDGE_Q8_BLOCK];
                    edge_q4k_group(sub + r * sub_row_bytes, k0 / group_size, (unsigned)sub_bits, D, M, &d, &m);
                    int32_t su = 0, sx = 0;
                    for (size_t k = k0; k < k1; k++) {
                        su += (int32_t)edge_q4_nibble(q, k) * (int32_t)x[k];
                        sx += (int32_t)x[k];
                    }
                    a[l] = fmaf((float)su, d * xs, a[l]);
                    a[l] = fmaf(-m, (float)sx * xs, a[l]);
                }
            }
            Y[t * rows + r] = (((a[0] + a[8]) + (a[4] + a[12])) + ((a[2] + a[10]) + (a[6] + a[14]))) +
                              (((a[1] + a[9]) + (a[5] + a[13])) + ((a[3] + a[11]) + (a[7] + a[15])));
        }
    }
}

void edge_q4q8_prepare(const int8_t *Xq, const float *xscale, size_t T, size_t cols, int32_t zc, int8_t *planes,
                       int32_t *init, float *xs, float *sxs) {
    size_t nblk = (cols + 127) / 128, nb = (cols + EDGE_Q8_BLOCK - 1) / EDGE_Q8_BLOCK;
    for (size_t t = 0; t < T; t++) {
        const int8_t *x = Xq + t * cols;
        for (size_t j = 0; j < nblk; j++) {
            size_t c0 = 128 * j, o = t * nblk + j;
            int8_t *p = planes + o * 128;
            for (size_t i = 0; i < 64; i++) {
                p[i] = c0 + 2 * i < cols ? x[c0 + 2 * i] : 0;
                p[64 + i] = c0 + 2 * i + 1 < cols ? x[c0 + 2 * i + 1] : 0;
            }
            for (size_t l = 0; l < 16; l++) {
                size_t k0 = c0 + 8 * l, k1 = k0 + 8 < cols ? k0 + 8 : cols;
                int32_t sum = 0;
                for (size_t k = k0; k < k1; k++) sum += x[k];
                float s = k0 < cols ? xscale[t * nb + k0 / EDGE_Q8_BLOCK] : 0.0f;
                if (init) init[o * 16 + l] = -zc * sum;
                xs[o * 16 + l] = s;
                if (sxs) sxs[o * 16 + l] = k0 < cols ? (float)sum * s : 0.0f;
            }
        }
    }
}

// Wq is (rows, ceil(cols/2)) nibbles, scale_f16/zero are (rows, groups), X is (T, cols), Y is (T, rows)
void edge_matmul_q4_f32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (group_size == 0) return;
    size_t groups = (cols + group_size - 1) / group_size;
    size_t row_bytes = (cols + 1) / 2;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) {
                size_t g = r * groups + k / group_size;
                float s = edge_f16_to_f32(scale_f16[g]);
                int z = zero ? (int)zero[g] : 8;
                acc += (s * (float)((int)edge_q4_nibble(q, k) - z)) * x[k];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// Wq is (rows, ceil(3*cols/8)) 3-bit codes, scale_f16/zero are (rows, groups), X is (T, cols), Y is (T, rows)
void edge_matmul_q3_f32_ref(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                            const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (group_size == 0 || group_size % 8 != 0) return;
    size_t groups = (cols + group_size - 1) / group_size;
    size_t row_bytes = (3 * cols + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float acc = 0.0f;
            for (size_t k = 0; k < cols; k++) {
                size_t g = r * groups + k / group_size;
                float s = edge_f16_to_f32(scale_f16[g]);
                int z = zero ? (int)zero[g] : 4;
                acc += (s * (float)((int)edge_q3_code(q, k) - z)) * x[k];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// Wq is (rows, ceil(3*cols/8)) 3-bit codes as q3's, sub is (rows, ceil((b+3)*groups/8)) bit streams of (sc, z)
// per group, super_f16 is (rows) binary16 D, X is (T, cols), Y is (T, rows)
void edge_matmul_q3s_f32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1) {
    if (!edge_q3s_params_ok(group_size, sub_bits)) return;
    size_t groups = (cols + group_size - 1) / group_size;
    size_t row_bytes = (3 * cols + 7) / 8, sub_row_bytes = ((sub_bits + 3) * groups + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = edge_f16_to_f32(super_f16[r]);
            float acc = 0.0f;
            for (size_t g = 0; g < groups; g++) {
                float s;
                int z;
                edge_q3s_group(sub + r * sub_row_bytes, g, (unsigned)sub_bits, D, &s, &z);
                size_t end = (g + 1) * group_size < cols ? (g + 1) * group_size : cols;
                for (size_t k = g * group_size; k < end; k++) acc += (s * (float)((int)edge_q3_code(q, k) - z)) * x[k];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// Wq is (rows, ceil(cols/2)) nibbles, sub is (rows, ceil(2*b*groups/8)) bit streams of (sc, mn) per group,
// super_f16 is (rows, 2) binary16 (D, M), X is (T, cols), Y is (T, rows)
void edge_matmul_q4k_f32_ref(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                             size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                             size_t r1) {
    if (!edge_q4k_params_ok(group_size, sub_bits)) return;
    size_t groups = (cols + group_size - 1) / group_size;
    size_t row_bytes = (cols + 1) / 2, sub_row_bytes = (2 * sub_bits * groups + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *q = Wq + r * row_bytes;
            float D = edge_f16_to_f32(super_f16[2 * r]), M = edge_f16_to_f32(super_f16[2 * r + 1]);
            float acc = 0.0f;
            for (size_t g = 0; g < groups; g++) {
                float d, m;
                edge_q4k_group(sub + r * sub_row_bytes, g, (unsigned)sub_bits, D, M, &d, &m);
                size_t end = (g + 1) * group_size < cols ? (g + 1) * group_size : cols;
                for (size_t k = g * group_size; k < end; k++) acc += edge_q4k_value(d, edge_q4_nibble(q, k), m) * x[k];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// ---- Norms, softmax, positions, activations -------------------------------------------------

void edge_rmsnorm_ref(const float *x, const float *w, float *out, size_t n, float eps) {
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

void edge_layernorm_ref(const float *x, const float *w, const float *b, float *out, size_t n, float eps) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    float var = 0.0f;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / (float)n + eps);
    for (size_t i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

void edge_softmax_ref(float *x, size_t n) {
    if (n == 0) return;
    float m = x[0];
    for (size_t i = 1; i < n; i++) if (x[i] > m) m = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

// q is (n_heads, head_dim)
void edge_rope_ref(float *q, size_t head_dim, size_t n_heads, size_t pos, float theta) {
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float angle = (float)pos * inv_freq;
        float c = cosf(angle), s = sinf(angle);
        for (size_t h = 0; h < n_heads; h++) {
            float *v = q + h * head_dim;
            float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

void edge_rope_angles(float *c, float *s, size_t head_dim, size_t pos, float theta) {
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float angle = (float)pos * inv_freq;
        c[i] = cosf(angle);
        s[i] = sinf(angle);
    }
}

void edge_rope_apply(float *q, size_t head_dim, size_t n_heads, const float *cs, const float *sn) {
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float c = cs[i], s = sn[i];
        for (size_t h = 0; h < n_heads; h++) {
            float *v = q + h * head_dim;
            float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

void edge_gelu_erf(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void edge_gelu_tanh_ref(float *x, size_t n) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void edge_silu_mul_ref(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void edge_add_ref(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

void edge_vecmat_f32_ref(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d) {
    for (size_t c = 0; c < d; c++) y[c] = 0.0f;
    for (size_t j = 0; j < n; j++)
        for (size_t c = 0; c < d; c++) y[c] = fmaf(x[j], V[j * ldv + c], y[c]);
}

void edge_vecmat_f16_ref(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d) {
    for (size_t c = 0; c < d; c++) y[c] = 0.0f;
    for (size_t j = 0; j < n; j++)
        for (size_t c = 0; c < d; c++) y[c] = fmaf(x[j], edge_f16_to_f32(V[j * ldv + c]), y[c]);
}

void edge_f16_widen_ref(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = edge_f16_to_f32(src[i]);
}

void edge_f16_narrow_ref(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = edge_f32_to_f16(src[i]);
}

void edge_axpy_ref(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void edge_scale_ref(float *x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

float edge_dot_f32_ref(const float *a, const float *b, size_t n) {
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

// ---- Table ----------------------------------------------------------------------------------

void edge_fill_table_ref(edge_kernel_table *t) {
    memset(t, 0, sizeof *t);
    t->level = EDGE_KERNELS_REF;
    t->vnni = false;
    t->gemm = NULL;
    t->q8_q8_name = t->q8_q8b32_name = t->q8_i16_name = "ref";
    t->matmul_f32 = edge_matmul_f32_ref;
    t->matmul_f32_wt = edge_matmul_f32_wt_ref;
    t->transpose_f32 = edge_transpose_f32_ref;
    t->matmul_f16 = edge_matmul_f16_ref;
    t->matmul_q8_f32 = edge_matmul_q8_f32_ref;
    t->quantize_row_q8 = edge_quantize_row_q8_ref;
    t->matmul_q8_q8 = edge_matmul_q8_q8_ref;
    t->quantize_row_q8_b32 = edge_quantize_row_q8_b32_ref;
    t->matmul_q8_q8b32 = edge_matmul_q8_q8b32_ref;
    t->quantize_rows_i16 = edge_quantize_rows_i16_ref;
    t->round_to_grid = edge_round_to_grid_ref;
    t->minmax = edge_minmax_ref;
    t->matmul_q8_i16 = edge_matmul_q8_i16_ref;
    t->matmul_q4_i16 = edge_matmul_q4_i16_ref;
    t->matmul_q4_q8b32 = edge_matmul_q4_q8b32_ref;
    t->gemm_q4_i16 = edge_gemm_q4_i16_ref;
    t->gemm_q4_i16_name = "ref";
    t->q4_q8b32_name = "ref";
    t->matmul_q4k_q8b32 = edge_matmul_q4k_q8b32_ref;
    t->q4k_q8b32_name = "ref";
    t->matmul_q4_f32 = edge_matmul_q4_f32_ref;
    t->matmul_q3_f32 = edge_matmul_q3_f32_ref;
    t->matmul_q3s_f32 = edge_matmul_q3s_f32_ref;
    t->matmul_q4k_f32 = edge_matmul_q4k_f32_ref;
    t->matmul_q4k_i16 = edge_matmul_q4k_i16_ref;
    t->gemm_q4k_i16 = edge_gemm_q4k_i16_ref;
    t->gemm_q4k_i16_name = "ref";
    t->rmsnorm = edge_rmsnorm_ref;
    t->layernorm = edge_layernorm_ref;
    t->softmax = edge_softmax_ref;
    t->gelu_tanh = edge_gelu_tanh_ref;
    t->silu_mul = edge_silu_mul_ref;
    t->add = edge_add_ref;
    t->axpy = edge_axpy_ref;
    t->vecmat_f32 = edge_vecmat_f32_ref;
    t->vecmat_f16 = edge_vecmat_f16_ref;
    t->f16_widen = edge_f16_widen_ref;
    t->f16_narrow = edge_f16_narrow_ref;
    t->scale = edge_scale_ref;
    t->dot_f32 = edge_dot_f32_ref;
}
