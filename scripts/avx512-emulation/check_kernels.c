// SIMD levels against the scalar `_ref` kernels, over odd sizes, through the public dispatch
// (edge_kernels_force), plus the GEMM kernel names the dispatch reports.
// Usage: check_kernels [LEVEL...]   (default: avx2 avx512). Prints failures and "N passed, M failed".
// Built by scripts/test-avx512-emulated.sh with avx512.c on SIMDe (EDGE_AVX512_EMULATED), so the
// AVX-512 level runs, emulated, on a CPU without AVX-512; built for arm64 and run under qemu-aarch64
// the same file checks the NEON level.
#include "EdgeKernels.h"
#include "EdgeKernelsSparse.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what, const char *level, size_t T, size_t rows, size_t cols, const char *detail) {
    if (ok) { passed++; return; }
    failed++;
    if (failed <= 30) printf("FAIL %s [%s] T=%zu rows=%zu cols=%zu: %s\n", what, level, T, rows, cols, detail);
}

// ---- Inputs ---------------------------------------------------------------------------------

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static unsigned long long next_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
/// Uniform in [lo, hi).
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u64() >> 40) / (float)(1 << 24); }

/// n elements of `size` bytes with 64 bytes of slack on both sides, so an overrun reads memory that
/// exists (the comparison with the reference, not a crash, should catch it).
static void *alloc_slack(size_t n, size_t size) {
    unsigned char *p = malloc(n * size + 128);
    if (!p) abort();
    memset(p, 0, n * size + 128);
    return p + 64;
}
static void free_slack(void *p) { free((unsigned char *)p - 64); }

// ---- GEMM sweeps ----------------------------------------------------------------------------

/// The weight encodings of the float-activation products, with their decoded f32 values (WQ3SC6/8:
/// q3s, the q3 codes with sub-coded group scales and zero points, b = 6 / 8).
typedef enum { WF32, WF16, WQ8S, WQ8A, WQ4S, WQ4A, WQ3S, WQ3A, WQ4K6, WQ4K8, WQ3SC6, WQ3SC8 } wtype;
static const char *wtype_name[] = {"matmul_f32", "matmul_f16", "matmul_q8_f32 sym", "matmul_q8_f32 asym",
                                   "matmul_q4_f32 sym", "matmul_q4_f32 asym", "matmul_q3_f32 sym", "matmul_q3_f32 asym",
                                   "matmul_q4k_f32 b=6", "matmul_q4k_f32 b=8", "matmul_q3s_f32 b=6", "matmul_q3s_f32 b=8"};

typedef struct {
    wtype type;
    size_t rows, cols, group;
    float *W;          // f32 weights / decoded values [rows, cols]
    uint16_t *Wh;      // f16 [rows, cols]
    int8_t *Wq;        // q8 [rows, cols]
    uint8_t *W4;       // q4 [rows, (cols + 1) / 2] / q3, q3s [rows, (3 * cols + 7) / 8]
    float *scale;      // q8 [rows]
    uint16_t *scale4;  // q4/q3 [rows, groups]
    uint8_t *zero;     // q8 [rows] / q4/q3 [rows, groups]
    size_t sub_bits;   // q4k, q3s: b
    uint8_t *sub;      // q4k [rows, ceil(2 * b * groups / 8)] bit streams of (sc, mn) / q3s [rows, ceil((b + 3) * groups / 8)] of (sc, z)
    uint16_t *super;   // q4k [rows, 2] binary16 (D, M) / q3s [rows] binary16 D
} weights;

/// Writes `bits` bits of v at bit `pos` of a little-endian bit stream (the bits there are 0).
static void put_bits(uint8_t *stream, size_t pos, unsigned bits, unsigned v) {
    for (unsigned b = 0; b < bits; b++)
        if ((v >> b) & 1) stream[(pos + b) / 8] |= (uint8_t)(1u << ((pos + b) % 8));
}

/// Reads `bits` bits at bit `pos` of a little-endian bit stream, one bit at a time (the spec's layout,
/// written out here rather than through the kernels' reader).
static unsigned get_bits(const uint8_t *stream, size_t pos, unsigned bits) {
    unsigned v = 0;
    for (unsigned b = 0; b < bits; b++) v |= (unsigned)((stream[(pos + b) / 8] >> ((pos + b) % 8)) & 1) << b;
    return v;
}

/// Random weights of `type`, rows x cols; `group` (q4, q3, q3s, q4k): the group size, 0 for the default by cols.
static weights make_weights(wtype type, size_t rows, size_t cols, size_t group) {
    bool q3s = type == WQ3SC6 || type == WQ3SC8, q3 = type == WQ3S || type == WQ3A || q3s, q4k = type == WQ4K6 || type == WQ4K8;
    // q3 groups are multiples of 8; 8 and 24 also start groups inside a 16-column block. q4k groups are
    // even (the format's): 6 and 10 start groups inside vectors, so the unpackers get short runs.
    weights w = {.type = type, .rows = rows, .cols = cols,
                 .group = group ? group
                          : q3 ? (cols % 3 == 0 ? 8 : cols % 2 ? 24 : 32) : q4k ? (cols % 3 == 0 ? 6 : cols % 2 ? 10 : 32)
                               : cols % 3 == 0 ? 7 : 32};
    size_t groups = (cols + w.group - 1) / w.group, row_bytes = q3 ? (3 * cols + 7) / 8 : (cols + 1) / 2;
    w.sub_bits = type == WQ4K6 || type == WQ3SC6 ? 6 : 8;
    size_t field = q3s ? w.sub_bits + 3 : 2 * w.sub_bits, sub_row_bytes = (field * groups + 7) / 8;
    w.sub = alloc_slack(rows * sub_row_bytes, 1);
    w.super = alloc_slack(2 * rows, 2);
    // q3s D: extremes on every fifth row (+0, subnormals, the least normal, 65504), else [0.0005, 0.01).
    static const uint16_t d_extremes[] = {0x0000, 0x0001, 0x03FF, 0x0400, 0x7BFF};
    for (size_t r = 0; r < rows; r++) {
        if (q3s) {
            w.super[r] = r % 5 == 4 ? d_extremes[next_u64() % 5] : edge_f32_to_f16(uniform(0.0005f, 0.01f));
        } else {
            w.super[2 * r] = edge_f32_to_f16(uniform(0.0005f, 0.01f));
            w.super[2 * r + 1] = r % 5 == 4 ? 0 : edge_f32_to_f16(uniform(0.0f, 0.05f));  // some rows M = +0
        }
        for (size_t g = 0; g < groups; g++) {
            unsigned hi = 1u << w.sub_bits, a = (unsigned)(next_u64() % hi), b = (unsigned)(next_u64() % hi);
            if (q3s) {  // (sc, z), their ends included
                b %= 8;
                if (g % 5 == 1) a = hi - 1, b = 7;
                if (g % 5 == 2) b = 0;
            }
            put_bits(w.sub + r * sub_row_bytes, field * g, (unsigned)w.sub_bits, a);
            put_bits(w.sub + r * sub_row_bytes, field * g + w.sub_bits, q3s ? 3 : (unsigned)w.sub_bits, b);
        }
    }
    w.W = alloc_slack(rows * cols, 4);
    w.Wh = alloc_slack(rows * cols, 2);
    w.Wq = alloc_slack(rows * cols, 1);
    w.W4 = alloc_slack(rows * row_bytes, 1);
    w.scale = alloc_slack(rows, 4);
    w.scale4 = alloc_slack(rows * groups, 2);
    w.zero = alloc_slack(rows * (groups > 1 ? groups : 1), 1);
    for (size_t r = 0; r < rows; r++) {
        w.scale[r] = uniform(0.001f, 0.02f);
        for (size_t g = 0; g < groups; g++) w.scale4[r * groups + g] = edge_f32_to_f16(uniform(0.01f, 0.1f));
    }
    for (size_t i = 0; i < rows * (groups > 1 ? groups : 1); i++)
        w.zero[i] = (uint8_t)(type == WQ4A ? next_u64() % 16 : type == WQ3A ? next_u64() % 8 : next_u64() % 256);
    for (size_t i = 0; i < rows * row_bytes; i++) w.W4[i] = (uint8_t)next_u64();
    if (q4k && cols % 2)  // the format's padding nibble ending an odd row is 0
        for (size_t r = 0; r < rows; r++) w.W4[r * row_bytes + row_bytes - 1] &= 0x0F;
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < cols; k++) {
            size_t i = r * cols + k;
            float v = uniform(-1, 1);
            w.Wh[i] = edge_f32_to_f16(v);
            w.Wq[i] = (int8_t)(next_u64() % 255 - 127);
            size_t gi = r * groups + k / w.group;
            unsigned nib = (k & 1) ? (unsigned)(w.W4[r * row_bytes + k / 2] >> 4) : (unsigned)(w.W4[r * row_bytes + k / 2] & 15);
            const uint8_t *row3 = w.W4 + r * row_bytes;
            unsigned code3 = (unsigned)((row3[3 * k / 8] | (3 * k / 8 + 1 < row_bytes ? row3[3 * k / 8 + 1] << 8 : 0)) >> (3 * k % 8)) & 7;
            switch (type) {
            case WF32: w.W[i] = v; break;
            case WF16: w.W[i] = edge_f16_to_f32(w.Wh[i]); break;
            case WQ8S: w.W[i] = w.scale[r] * (float)w.Wq[i]; break;
            case WQ8A: w.W[i] = w.scale[r] * (float)((int)(uint8_t)w.Wq[i] - (int)w.zero[r]); break;
            case WQ4S: w.W[i] = edge_f16_to_f32(w.scale4[gi]) * (float)((int)nib - 8); break;
            case WQ4A: w.W[i] = edge_f16_to_f32(w.scale4[gi]) * (float)((int)nib - (int)w.zero[gi]); break;
            case WQ3S: w.W[i] = edge_f16_to_f32(w.scale4[gi]) * (float)((int)code3 - 4); break;
            case WQ3A: w.W[i] = edge_f16_to_f32(w.scale4[gi]) * (float)((int)code3 - (int)w.zero[gi]); break;
            case WQ4K6:
            case WQ4K8: {  // the spec's formula, written out here: d = D * sc, m = M * mn, w = d * u - m
                const uint8_t *sr = w.sub + r * sub_row_bytes;
                size_t g = k / w.group, b = w.sub_bits;
                unsigned sc = 0, mn = 0;
                for (size_t i2 = 0; i2 < b; i2++) {
                    size_t ps = 2 * b * g + i2, pm = 2 * b * g + b + i2;
                    sc |= (unsigned)((sr[ps / 8] >> (ps % 8)) & 1) << i2;
                    mn |= (unsigned)((sr[pm / 8] >> (pm % 8)) & 1) << i2;
                }
                float d = edge_f16_to_f32(w.super[2 * r]) * (float)sc, m = edge_f16_to_f32(w.super[2 * r + 1]) * (float)mn;
                w.W[i] = (float)((double)d * (double)nib - (double)m);  // exact product, one rounding
                break;
            }
            case WQ3SC6:
            case WQ3SC8: {  // the spec's formula: s = D * sc, w = s * (u - z), exact in double and in binary32
                size_t pos = (w.sub_bits + 3) * (k / w.group);
                unsigned sc = get_bits(w.sub + r * sub_row_bytes, pos, (unsigned)w.sub_bits);
                unsigned z = get_bits(w.sub + r * sub_row_bytes, pos + w.sub_bits, 3);
                w.W[i] = (float)((double)edge_f16_to_f32(w.super[r]) * (double)sc * (double)((int)code3 - (int)z));
                break;
            }
            }
        }
    }
    return w;
}

static void free_weights(weights *w) {
    free_slack(w->W); free_slack(w->Wh); free_slack(w->Wq); free_slack(w->W4);
    free_slack(w->scale); free_slack(w->scale4); free_slack(w->zero); free_slack(w->sub); free_slack(w->super);
}

static void run_gemm(const weights *w, int ref, const float *X, float *Y, size_t T, size_t r0, size_t r1) {
    size_t rows = w->rows, cols = w->cols;
    switch (w->type) {
    case WF32:
        if (T == 1) (ref ? edge_matvec_f32_ref : edge_matvec_f32)(w->W, X, Y, rows, cols, r0, r1);
        else (ref ? edge_matmul_f32_ref : edge_matmul_f32)(w->W, X, Y, T, rows, cols, r0, r1);
        break;
    case WF16: (ref ? edge_matmul_f16_ref : edge_matmul_f16)(w->Wh, X, Y, T, rows, cols, r0, r1); break;
    case WQ8S: (ref ? edge_matmul_q8_f32_ref : edge_matmul_q8_f32)(w->Wq, w->scale, NULL, X, Y, T, rows, cols, r0, r1); break;
    case WQ8A: (ref ? edge_matmul_q8_f32_ref : edge_matmul_q8_f32)(w->Wq, w->scale, w->zero, X, Y, T, rows, cols, r0, r1); break;
    case WQ4S:
        (ref ? edge_matmul_q4_f32_ref : edge_matmul_q4_f32)(w->W4, w->scale4, NULL, w->group, X, Y, T, rows, cols, r0, r1);
        break;
    case WQ4A:
        (ref ? edge_matmul_q4_f32_ref : edge_matmul_q4_f32)(w->W4, w->scale4, w->zero, w->group, X, Y, T, rows, cols, r0, r1);
        break;
    case WQ3S:
        (ref ? edge_matmul_q3_f32_ref : edge_matmul_q3_f32)(w->W4, w->scale4, NULL, w->group, X, Y, T, rows, cols, r0, r1);
        break;
    case WQ3A:
        (ref ? edge_matmul_q3_f32_ref : edge_matmul_q3_f32)(w->W4, w->scale4, w->zero, w->group, X, Y, T, rows, cols, r0, r1);
        break;
    case WQ4K6:
    case WQ4K8:
        (ref ? edge_matmul_q4k_f32_ref : edge_matmul_q4k_f32)(w->W4, w->sub, w->super, w->group, w->sub_bits, X, Y, T, rows,
                                                              cols, r0, r1);
        break;
    case WQ3SC6:
    case WQ3SC8:
        (ref ? edge_matmul_q3s_f32_ref : edge_matmul_q3s_f32)(w->W4, w->sub, w->super, w->group, w->sub_bits, X, Y, T, rows,
                                                              cols, r0, r1);
        break;
    }
}

/// The level's product against the reference: |y - ref| <= 1e-5 * sum_k |w x| inside [r0, r1), the
/// sentinel untouched outside.
static void check_gemm(const char *level, const weights *w, size_t T, size_t r0, size_t r1) {
    size_t rows = w->rows, cols = w->cols;
    const float sentinel = 12345.5f;
    float *X = alloc_slack(T * cols, 4), *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
    for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-1, 1);
    for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = sentinel;
    run_gemm(w, 0, X, Y, T, r0, r1);
    run_gemm(w, 1, X, R, T, r0, r1);
    char detail[200] = "";
    int ok = 1;
    for (size_t t = 0; t < T && ok; t++) {
        for (size_t r = 0; r < rows && ok; r++) {
            size_t i = t * rows + r;
            if (r < r0 || r >= r1) {
                if (Y[i] != sentinel) { ok = 0; snprintf(detail, sizeof detail, "wrote row %zu outside %zu..<%zu", r, r0, r1); }
                continue;
            }
            double bound = 0;
            for (size_t k = 0; k < cols; k++) bound += fabs((double)w->W[r * cols + k] * X[t * cols + k]);
            if (!(fabs((double)Y[i] - R[i]) <= 1e-5 * bound + 1e-30)) {
                ok = 0;
                snprintf(detail, sizeof detail, "t=%zu r=%zu got %g ref %g bound %g (r=%zu..<%zu)", t, r, Y[i], R[i], bound, r0, r1);
            }
        }
    }
    check(ok, wtype_name[w->type], level, T, rows, cols, detail);
    free_slack(X); free_slack(Y); free_slack(R);
}

/// The weights a level unpacks, bit for bit: X = the identity (T = cols one-hot tokens), so every
/// Y[t, r] = w[r][t] exactly whatever the summation order (the other terms are exact zeros), for the
/// level and the reference alike; compared with the decoded values (make_weights' own formula).
static void check_unpacked(const char *level, const weights *w, size_t r0, size_t r1) {
    size_t rows = w->rows, cols = w->cols, T = cols;
    float *X = alloc_slack(T * cols, 4), *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
    for (size_t t = 0; t < T; t++) X[t * cols + t] = 1;
    for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
    run_gemm(w, 0, X, Y, T, r0, r1);
    run_gemm(w, 1, X, R, T, r0, r1);
    char detail[200] = "";
    int ok = 1;
    for (size_t t = 0; t < T && ok; t++)
        for (size_t r = r0; r < r1 && ok; r++) {
            float want = w->W[r * cols + t], got = Y[t * rows + r], ref = R[t * rows + r];
            if (got != want || ref != want) {
                ok = 0;
                snprintf(detail, sizeof detail, "w[%zu][%zu]: level %a ref %a decoded %a (g=%zu)", r, t, got, ref, want, w->group);
            }
        }
    char what[80];
    snprintf(what, sizeof what, "%s unpacked weights", wtype_name[w->type]);
    check(ok, what, level, T, rows, cols, detail);
    free_slack(X); free_slack(Y); free_slack(R);
}

static void sweep_gemm(const char *level) {
    static const size_t cols_list[] = {1, 3, 16, 17, 31, 65, 257, 300, 1100};
    static const size_t rows_list[] = {1, 3, 17, 32, 33, 130};
    static const size_t tokens[] = {1, 2, 5, 11, 12, 13, 25, 40};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        for (size_t r = 0; r < sizeof rows_list / sizeof *rows_list; r++) {
            for (int type = WF32; type <= WQ3SC8; type++) {
                size_t rows = rows_list[r], cols = cols_list[c];
                weights w = make_weights((wtype)type, rows, cols, 0);
                for (size_t t = 0; t < sizeof tokens / sizeof *tokens; t++) {
                    check_gemm(level, &w, tokens[t], 0, rows);
                    if (rows >= 3) check_gemm(level, &w, tokens[t], 1, rows - 1);
                }
                if ((type == WQ4K6 || type == WQ4K8 || type == WQ3SC6 || type == WQ3SC8) && cols <= 300) {
                    check_unpacked(level, &w, 0, rows);
                    if (rows >= 3) check_unpacked(level, &w, 1, rows - 1);
                }
                free_weights(&w);
            }
        }
    }
}

/// q3s (edge_matmul_q3s_f32) over every group size the kernels see differently: 8, 16, 24 (groups
/// starting inside a 16-column vector), 32 and 64, most not dividing cols (a short last group), b = 6
/// and 8, odd shapes, T from 1 to 25 (the packed kernel from 12 in auto mode), r0 > 0; the level against
/// the reference, the unpacked weights bit-identical to the formula; refused parameters write nothing.
static void sweep_q3s(const char *level) {
    static const size_t cols_list[] = {1, 7, 8, 9, 23, 24, 25, 40, 63, 64, 65, 100, 129, 200, 255, 257, 300};
    static const size_t rows_list[] = {1, 2, 5, 13, 33};
    static const size_t group_list[] = {8, 16, 24, 32, 64};
    static const size_t tokens[] = {1, 2, 5, 12, 13, 25};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++)
            for (size_t gi = 0; gi < sizeof group_list / sizeof *group_list; gi++)
                for (int type = WQ3SC6; type <= WQ3SC8; type++) {
                    size_t rows = rows_list[ri], cols = cols_list[c];
                    weights w = make_weights((wtype)type, rows, cols, group_list[gi]);
                    for (size_t t = 0; t < sizeof tokens / sizeof *tokens; t++) {
                        check_gemm(level, &w, tokens[t], 0, rows);
                        if (rows >= 2) check_gemm(level, &w, tokens[t], rows / 2, rows);
                        if (rows >= 3) check_gemm(level, &w, tokens[t], 1, rows - 1);
                    }
                    if (ri % 2 == 0 || cols <= 65) {
                        check_unpacked(level, &w, 0, rows);
                        if (rows >= 3) check_unpacked(level, &w, 1, rows - 1);
                    }
                    free_weights(&w);
                }
    // Refused parameters (group 0 or not a multiple of 8, b not 6 or 8): neither the level nor the reference writes.
    static const size_t bad[][2] = {{0, 6}, {0, 8}, {4, 6}, {12, 8}, {7, 6}, {20, 8}, {8, 0}, {8, 4}, {16, 5}, {16, 7}, {32, 9}, {32, 16}};
    uint8_t W[16], sub[16];
    uint16_t sup[2] = {0x3C00, 0x3C00};
    float X[32], Y[4];
    memset(W, 0x77, sizeof W);
    memset(sub, 0x5A, sizeof sub);
    for (size_t i = 0; i < 32; i++) X[i] = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char what[64];
        snprintf(what, sizeof what, "matmul_q3s_f32 refuses g=%zu b=%zu", bad[i][0], bad[i][1]);
        for (size_t k = 0; k < 4; k++) Y[k] = 7.0f;
        edge_matmul_q3s_f32(W, sub, sup, bad[i][0], bad[i][1], X, Y, 2, 2, 16, 0, 2);
        edge_matmul_q3s_f32_ref(W, sub, sup, bad[i][0], bad[i][1], X, Y, 2, 2, 16, 0, 2);
        check(Y[0] == 7.0f && Y[1] == 7.0f && Y[2] == 7.0f && Y[3] == 7.0f, what, level, 2, 2, 16, "wrote an output");
    }
}

// ---- int8 products and activation quantizers (exact: bit-identical to the reference) --------

static void sweep_int8(const char *level) {
    static const size_t cols_list[] = {1, 3, 15, 17, 31, 32, 33, 63, 64, 65, 257, 300, 1001};
    static const size_t tokens[] = {1, 3, 4, 5, 12, 13};
    static const size_t rows_list[] = {1, 3, 13, 33};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        size_t cols = cols_list[c], nb = (cols + 31) / 32, nb16 = (cols + 255) / 256, ld = edge_i16_stride(cols);
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
            for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                size_t T = tokens[ti], rows = rows_list[ri];
                float *X = alloc_slack(T * cols, 4), *ws = alloc_slack(rows, 4);
                int8_t *Wq = alloc_slack(rows * cols, 1), *Xq = alloc_slack(T * cols, 1), *Xr = alloc_slack(T * cols, 1);
                float *xs = alloc_slack(T * nb, 4), *xsr = alloc_slack(T * nb, 4);
                int16_t *Xi = alloc_slack(T * ld, 2), *Xir = alloc_slack(T * ld, 2);
                float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-4, 4);
                if (cols >= 4) { X[0] = 127; X[1] = 0.5f; X[2] = -0.5f; X[3] = 2.5f; }  // ties at scale 1
                for (size_t i = 0; i < rows * cols; i++) Wq[i] = (int8_t)(next_u64() % 255 - 127);
                for (size_t i = 0; i < rows; i++) ws[i] = uniform(0.001f, 0.05f);
                int ok = 1;
                // Per-row q8.
                for (size_t t = 0; t < T; t++) {
                    edge_quantize_row_q8(X + t * cols, Xq + t * cols, xs + t, cols);
                    edge_quantize_row_q8_ref(X + t * cols, Xr + t * cols, xsr + t, cols);
                }
                ok = memcmp(Xq, Xr, T * cols) == 0 && memcmp(xs, xsr, T * 4) == 0;
                check(ok, "quantize_row_q8", level, T, 1, cols, "differs from the reference");
                edge_matmul_q8_q8(Wq, ws, Xr, xsr, Y, T, rows, cols, 0, rows);
                edge_matmul_q8_q8_ref(Wq, ws, Xr, xsr, R, T, rows, cols, 0, rows);
                check(memcmp(Y, R, T * rows * 4) == 0, "matmul_q8_q8", level, T, rows, cols, "differs from the reference");
                // Per-block q8.
                for (size_t t = 0; t < T; t++) {
                    edge_quantize_row_q8_b32(X + t * cols, Xq + t * cols, xs + t * nb, cols);
                    edge_quantize_row_q8_b32_ref(X + t * cols, Xr + t * cols, xsr + t * nb, cols);
                }
                ok = memcmp(Xq, Xr, T * cols) == 0 && memcmp(xs, xsr, T * nb * 4) == 0;
                check(ok, "quantize_row_q8_b32", level, T, 1, cols, "differs from the reference");
                edge_matmul_q8_q8b32(Wq, ws, Xr, xsr, Y, T, rows, cols, 0, rows);
                edge_matmul_q8_q8b32_ref(Wq, ws, Xr, xsr, R, T, rows, cols, 0, rows);
                check(memcmp(Y, R, T * rows * 4) == 0, "matmul_q8_q8b32", level, T, rows, cols, "differs from the reference");
                // int16 activations.
                edge_quantize_rows_i16(X, Xi, xs, T, cols);
                edge_quantize_rows_i16_ref(X, Xir, xsr, T, cols);
                ok = memcmp(Xi, Xir, T * ld * 2) == 0 && memcmp(xs, xsr, T * nb16 * 4) == 0;
                check(ok, "quantize_rows_i16", level, T, 1, cols, "differs from the reference");
                edge_matmul_q8_i16(Wq, ws, Xir, xsr, Y, T, rows, cols, 0, rows);
                edge_matmul_q8_i16_ref(Wq, ws, Xir, xsr, R, T, rows, cols, 0, rows);
                check(memcmp(Y, R, T * rows * 4) == 0, "matmul_q8_i16", level, T, rows, cols, "differs from the reference");
                free_slack(X); free_slack(ws); free_slack(Wq); free_slack(Xq); free_slack(Xr); free_slack(xs);
                free_slack(xsr); free_slack(Xi); free_slack(Xir); free_slack(Y); free_slack(R);
            }
        }
    }
}

// ---- bitmask q8 x int16 (exact: bit-identical to the reference) ---------------------------

static void sweep_bitmask_i16(const char *level) {
    static const size_t cols_list[] = {1, 7, 63, 64, 65, 255, 256, 257, 576, 1001};
    static const size_t tokens[] = {1, 2, 4, 5};
    static const size_t rows_list[] = {1, 3, 13, 37};  // 37: two whole groups of 16 rows and a part
    static const unsigned density[] = {0, 30, 50, 100};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++)
            for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++)
                for (size_t di = 0; di < sizeof density / sizeof *density; di++) {
                    size_t cols = cols_list[c], rows = rows_list[ri], T = tokens[ti], mb = (cols + 7) / 8;
                    size_t ld = edge_i16_stride(cols), nb = (cols + 255) / 256, nv = 0;
                    uint8_t *mask = alloc_slack(rows * mb, 1);
                    uint32_t *row_ptr = alloc_slack(rows + 1, 4);
                    int8_t *values = alloc_slack(rows * cols + 1, 1);
                    float *X = alloc_slack(T * cols, 4), *ws = alloc_slack(rows, 4), *xs = alloc_slack(T * nb, 4);
                    float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                    int16_t *Xi = alloc_slack(T * ld, 2);
                    memset(mask, 0, rows * mb);
                    row_ptr[0] = 0;
                    for (size_t r = 0; r < rows; r++) {
                        for (size_t k = 0; k < cols; k++)
                            if (next_u64() % 100 < density[di]) {
                                mask[r * mb + k / 8] |= (uint8_t)(1u << (k % 8));
                                values[nv++] = (int8_t)(next_u64() % 255 - 127);
                            }
                        row_ptr[r + 1] = (uint32_t)nv;
                        ws[r] = uniform(0.001f, 0.05f);
                    }
                    for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-4, 4);
                    edge_quantize_rows_i16_ref(X, Xi, xs, T, cols);
                    edge_spmm_bitmask_q8_i16(mask, row_ptr, values, ws, Xi, xs, Y, T, rows, cols, 0, rows);
                    edge_spmm_bitmask_q8_i16_ref(mask, row_ptr, values, ws, Xi, xs, R, T, rows, cols, 0, rows);
                    check(memcmp(Y, R, T * rows * 4) == 0, "spmm_bitmask_q8_i16", level, T, rows, cols, "differs from the reference");
                    free_slack(mask); free_slack(row_ptr); free_slack(values); free_slack(X); free_slack(ws);
                    free_slack(xs); free_slack(Y); free_slack(R); free_slack(Xi);
                }
}

// ---- packed 2:4 q8 x int16 (exact: bit-identical to the reference) -------------------------

static void sweep_nm24_i16(const char *level) {
    static const size_t cols_list[] = {1, 2, 3, 5, 63, 64, 66, 255, 256, 258, 576, 1001, 1536};
    static const size_t tokens[] = {1, 2, 4, 5};
    static const size_t rows_list[] = {1, 3, 13, 37};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++)
            for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                size_t cols = cols_list[c], rows = rows_list[ri], T = tokens[ti];
                size_t slots = (cols / 4) * 2 + (cols % 4 < 2 ? cols % 4 : 2), ib = (slots * 2 + 7) / 8;
                size_t ld = edge_i16_stride(cols), nb = (cols + 255) / 256;
                uint8_t *idx = alloc_slack(rows * ib, 1);
                int8_t *values = alloc_slack(rows * slots + 1, 1);
                float *X = alloc_slack(T * cols, 4), *ws = alloc_slack(rows, 4), *xs = alloc_slack(T * nb, 4);
                float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                int16_t *Xi = alloc_slack(T * ld, 2);
                memset(idx, 0, rows * ib);
                for (size_t r = 0; r < rows; r++) {
                    for (size_t g = 0; g * 4 < cols; g++) {  // two increasing indices per group (one or two in a short last group)
                        size_t width = cols - g * 4 < 4 ? cols - g * 4 : 4, n = width < 2 ? width : 2;
                        size_t a = next_u64() % width, b = a;
                        if (n == 2) {
                            do b = next_u64() % width; while (b == a);
                            if (a > b) { size_t t = a; a = b; b = t; }
                        }
                        size_t pick[2] = {a, b};
                        for (size_t j = 0; j < n; j++) {
                            size_t sl = g * 2 + j;
                            idx[r * ib + sl / 4] |= (uint8_t)(pick[j] << (2 * (sl % 4)));
                            values[r * slots + sl] = (int8_t)(next_u64() % 255 - 127);
                        }
                    }
                    ws[r] = uniform(0.001f, 0.05f);
                }
                for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-4, 4);
                edge_quantize_rows_i16_ref(X, Xi, xs, T, cols);
                edge_spmm_nm24_q8_i16(idx, values, ws, Xi, xs, Y, T, rows, cols, 0, rows);
                edge_spmm_nm24_q8_i16_ref(idx, values, ws, Xi, xs, R, T, rows, cols, 0, rows);
                check(memcmp(Y, R, T * rows * 4) == 0, "spmm_nm24_q8_i16", level, T, rows, cols, "differs from the reference");
                free_slack(idx); free_slack(values); free_slack(X); free_slack(ws); free_slack(xs);
                free_slack(Y); free_slack(R); free_slack(Xi);
            }
}

// ---- q4 x int16 (exact: bit-identical to the reference) ------------------------------------

static void sweep_q4_i16(const char *level) {
    static const size_t cols_list[] = {1, 15, 33, 64, 127, 128, 129, 192, 200, 257, 576, 1001, 1536};
    static const size_t tokens[] = {1, 2, 3, 4, 5, 9, 14};
    static const size_t rows_list[] = {1, 3, 13, 45};
    static const size_t group_list[] = {32, 64, 128, 256};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        size_t cols = cols_list[c], nb = (cols + 255) / 256, ld = edge_i16_stride(cols), row_bytes = (cols + 1) / 2;
        for (size_t gi = 0; gi < sizeof group_list / sizeof *group_list; gi++) {
            size_t gs = group_list[gi], groups = (cols + gs - 1) / gs;
            for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                    size_t T = tokens[ti], rows = rows_list[ri];
                    float *X = alloc_slack(T * cols, 4), *xs = alloc_slack(T * nb, 4);
                    int16_t *Xi = alloc_slack(T * ld, 2);
                    uint8_t *W = alloc_slack(rows * row_bytes, 1), *zero = alloc_slack(rows * groups, 1);
                    uint16_t *sc = alloc_slack(rows * groups, 2);
                    float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                    for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-1, 1) * (float)(1 + (i % cols) / 256 % 3 * 9);
                    for (size_t i = 0; i < rows * row_bytes; i++) W[i] = (uint8_t)next_u64();
                    for (size_t i = 0; i < rows * groups; i++) {
                        zero[i] = (uint8_t)(next_u64() % 16);
                        sc[i] = edge_f32_to_f16(uniform(0.001f, 0.1f));
                    }
                    edge_quantize_rows_i16_ref(X, Xi, xs, T, cols);
                    for (int asym = 0; asym < 2; asym++) {
                        const uint8_t *z = asym ? zero : NULL;
                        size_t r0 = rows / 3, r1 = rows - rows / 4;
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_matmul_q4_i16(W, sc, z, gs, Xi, xs, Y, T, rows, cols, r0, r1);
                        edge_matmul_q4_i16_ref(W, sc, z, gs, Xi, xs, R, T, rows, cols, r0, r1);
                        check(memcmp(Y, R, T * rows * 4) == 0, gs == 32 ? "matmul_q4_i16 g32" : gs == 64 ? "matmul_q4_i16 g64"
                              : gs == 128 ? "matmul_q4_i16 g128" : "matmul_q4_i16 g256", level, T, rows, cols,
                              asym ? "differs from the reference (asymmetric)" : "differs from the reference");
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_gemm_q4_i16(W, sc, z, gs, Xi, xs, Y, T, rows, cols, r0, r1);
                        edge_gemm_q4_i16_ref(W, sc, z, gs, Xi, xs, R, T, rows, cols, r0, r1);
                        check(memcmp(Y, R, T * rows * 4) == 0, gs == 32 ? "gemm_q4_i16 g32" : gs == 64 ? "gemm_q4_i16 g64"
                              : gs == 128 ? "gemm_q4_i16 g128" : "gemm_q4_i16 g256", level, T, rows, cols,
                              asym ? "differs from the reference (asymmetric)" : "differs from the reference");
                    }
                    free_slack(X); free_slack(xs); free_slack(Xi); free_slack(W); free_slack(zero); free_slack(sc);
                    free_slack(Y); free_slack(R);
                }
            }
        }
    }
}

// ---- q4k x int16 (exact: bit-identical to the reference) -----------------------------------

/// edge_matmul_q4k_i16 (decoding) and edge_gemm_q4k_i16 against their references on odd shapes: cols
/// not a multiple of 64 (a short last group, a last partial 64-column unit), b = 6 and 8, T = 1...4
/// and 5...40, sub-ranges of rows; sub-codes over their whole range (0 and 2^b - 1 included), M = +0
/// on some rows, activation blocks of different magnitudes.
static void sweep_q4k_i16(const char *level) {
    static const size_t cols_list[] = {1, 15, 33, 64, 100, 127, 128, 129, 192, 200, 257, 576, 1001, 1536};
    static const size_t tokens[] = {1, 2, 3, 4, 5, 7, 12, 13, 40};
    static const size_t rows_list[] = {1, 3, 13, 45};
    static const size_t group_list[] = {32, 64, 128, 256};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        size_t cols = cols_list[c], nb = (cols + 255) / 256, ld = edge_i16_stride(cols), row_bytes = (cols + 1) / 2;
        for (size_t gi = 0; gi < sizeof group_list / sizeof *group_list; gi++) {
            size_t gs = group_list[gi], groups = (cols + gs - 1) / gs;
            for (size_t b = 6; b <= 8; b += 2) {
                size_t sub_row_bytes = (2 * b * groups + 7) / 8;
                for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                    size_t rows = rows_list[ri];
                    uint8_t *W = alloc_slack(rows * row_bytes, 1), *sub = alloc_slack(rows * sub_row_bytes, 1);
                    uint16_t *sup = alloc_slack(2 * rows, 2);
                    for (size_t i = 0; i < rows * row_bytes; i++) W[i] = (uint8_t)next_u64();
                    if (cols % 2)
                        for (size_t r = 0; r < rows; r++) W[r * row_bytes + row_bytes - 1] &= 0x0F;
                    memset(sub, 0, rows * sub_row_bytes);
                    for (size_t r = 0; r < rows; r++) {
                        sup[2 * r] = edge_f32_to_f16(uniform(0.0001f, 0.01f));
                        sup[2 * r + 1] = r % 4 == 3 ? 0 : edge_f32_to_f16(uniform(0.0f, 0.02f));
                        for (size_t g = 0; g < groups; g++) {
                            unsigned hi = 1u << b, sc = (unsigned)(next_u64() % hi), mn = (unsigned)(next_u64() % hi);
                            if (g % 7 == 1) sc = hi - 1, mn = hi - 1;
                            if (g % 7 == 2) mn = 0;
                            put_bits(sub + r * sub_row_bytes, 2 * b * g, (unsigned)b, sc);
                            put_bits(sub + r * sub_row_bytes, 2 * b * g + b, (unsigned)b, mn);
                        }
                    }
                    for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                        size_t T = tokens[ti];
                        float *X = alloc_slack(T * cols, 4), *xs = alloc_slack(T * nb, 4);
                        int16_t *Xi = alloc_slack(T * ld, 2);
                        float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                        for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-1, 1) * (float)(1 + (i % cols) / 256 % 3 * 9);
                        edge_quantize_rows_i16_ref(X, Xi, xs, T, cols);
                        size_t r0 = T % 2 ? 0 : rows / 3, r1 = T % 2 ? rows : rows - rows / 4;
                        char what[64];
                        snprintf(what, sizeof what, "matmul_q4k_i16 g%zu b=%zu", gs, b);
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_matmul_q4k_i16(W, sub, sup, gs, b, Xi, xs, Y, T, rows, cols, r0, r1);
                        edge_matmul_q4k_i16_ref(W, sub, sup, gs, b, Xi, xs, R, T, rows, cols, r0, r1);
                        check(memcmp(Y, R, T * rows * 4) == 0, what, level, T, rows, cols, "differs from the reference");
                        snprintf(what, sizeof what, "gemm_q4k_i16 g%zu b=%zu", gs, b);
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_gemm_q4k_i16(W, sub, sup, gs, b, Xi, xs, Y, T, rows, cols, r0, r1);
                        edge_gemm_q4k_i16_ref(W, sub, sup, gs, b, Xi, xs, R, T, rows, cols, r0, r1);
                        check(memcmp(Y, R, T * rows * 4) == 0, what, level, T, rows, cols, "differs from the reference");
                        free_slack(X); free_slack(xs); free_slack(Xi); free_slack(Y); free_slack(R);
                    }
                    free_slack(W); free_slack(sub); free_slack(sup);
                }
            }
        }
    }
    // Unsupported parameters write nothing.
    {
        uint8_t W[8] = {0}, sub[8] = {0};
        uint16_t sup[2] = {0};
        int16_t Xi[16] = {0};
        float xs[1] = {1}, Y[1] = {7.0f};
        edge_matmul_q4k_i16(W, sub, sup, 16, 6, Xi, xs, Y, 1, 1, 16, 0, 1);
        edge_gemm_q4k_i16(W, sub, sup, 32, 7, Xi, xs, Y, 1, 1, 16, 0, 1);
        check(Y[0] == 7.0f, "q4k_i16 unsupported", level, 1, 1, 16, "wrote an output");
    }
}

// ---- q4k x int8 blocks of 32 (exact: bit-identical to the reference) ------------------------

/// edge_matmul_q4k_q8b32 against its reference on odd shapes: cols not a multiple of 128 (a short last
/// group, a partial last block, lanes without columns), every supported group from 8 to 384, b = 6 and
/// 8, T = 1...4 and 5, 9 (chunks of 4), sub-ranges of rows; sub-codes over their whole range, M = +0 on
/// some rows, activation blocks of different magnitudes, and the extremes (every nibble 15, every
/// activation +-127).
static void sweep_q4k_q8b32(const char *level) {
    static const size_t cols_list[] = {1, 8, 15, 33, 64, 100, 127, 128, 129, 200, 257, 576, 1001};
    static const size_t tokens[] = {1, 2, 3, 4, 5, 9};
    static const size_t rows_list[] = {1, 3, 13};
    static const size_t group_list[] = {8, 16, 32, 64, 128, 256, 384};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        size_t cols = cols_list[c], nb = (cols + 31) / 32, row_bytes = (cols + 1) / 2;
        for (size_t gi = 0; gi < sizeof group_list / sizeof *group_list; gi++) {
            size_t gs = group_list[gi], groups = (cols + gs - 1) / gs;
            for (size_t b = 6; b <= 8; b += 2) {
                size_t sub_row_bytes = (2 * b * groups + 7) / 8;
                for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                    size_t rows = rows_list[ri];
                    uint8_t *W = alloc_slack(rows * row_bytes, 1), *sub = alloc_slack(rows * sub_row_bytes, 1);
                    uint16_t *sup = alloc_slack(2 * rows, 2);
                    for (size_t i = 0; i < rows * row_bytes; i++) W[i] = (uint8_t)next_u64();
                    if (ri == 0) memset(W, 0xFF, rows * row_bytes);
                    if (cols % 2)
                        for (size_t r = 0; r < rows; r++) W[r * row_bytes + row_bytes - 1] &= 0x0F;
                    memset(sub, 0, rows * sub_row_bytes);
                    for (size_t r = 0; r < rows; r++) {
                        sup[2 * r] = edge_f32_to_f16(uniform(0.0001f, 0.01f));
                        sup[2 * r + 1] = r % 4 == 3 ? 0 : edge_f32_to_f16(uniform(0.0f, 0.02f));
                        for (size_t g = 0; g < groups; g++) {
                            unsigned hi = 1u << b, sc = (unsigned)(next_u64() % hi), mn = (unsigned)(next_u64() % hi);
                            if (g % 7 == 1) sc = hi - 1, mn = hi - 1;
                            if (g % 7 == 2) mn = 0;
                            put_bits(sub + r * sub_row_bytes, 2 * b * g, (unsigned)b, sc);
                            put_bits(sub + r * sub_row_bytes, 2 * b * g + b, (unsigned)b, mn);
                        }
                    }
                    for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                        size_t T = tokens[ti];
                        float *X = alloc_slack(T * cols, 4), *xs = alloc_slack(T * nb, 4);
                        int8_t *Xq = alloc_slack(T * cols, 1);
                        float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                        for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-1, 1) * (float)(1 + (i % cols) / 32 % 3 * 9);
                        if (ri == 0 && ti == 0)  // extremes: every activation +-127 against every nibble 15
                            for (size_t i = 0; i < T * cols; i++) X[i] = i % 3 ? 1.0f : -1.0f;
                        for (size_t t = 0; t < T; t++) edge_quantize_row_q8_b32_ref(X + t * cols, Xq + t * cols, xs + t * nb, cols);
                        size_t r0 = T % 2 ? 0 : rows / 3, r1 = T % 2 ? rows : rows - rows / 4;
                        char what[64];
                        snprintf(what, sizeof what, "matmul_q4k_q8b32 g%zu b=%zu", gs, b);
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_matmul_q4k_q8b32(W, sub, sup, gs, b, Xq, xs, Y, T, rows, cols, r0, r1);
                        edge_matmul_q4k_q8b32_ref(W, sub, sup, gs, b, Xq, xs, R, T, rows, cols, r0, r1);
                        check(memcmp(Y, R, T * rows * 4) == 0, what, level, T, rows, cols, "differs from the reference");
                        free_slack(X); free_slack(xs); free_slack(Xq); free_slack(Y); free_slack(R);
                    }
                    free_slack(W); free_slack(sub); free_slack(sup);
                }
            }
        }
    }
    // Unsupported parameters write nothing.
    {
        uint8_t W[8] = {0}, sub[8] = {0};
        uint16_t sup[2] = {0};
        int8_t Xq[16] = {0};
        float xs[1] = {1}, Y[1] = {7.0f};
        edge_matmul_q4k_q8b32(W, sub, sup, 12, 6, Xq, xs, Y, 1, 1, 16, 0, 1);
        edge_matmul_q4k_q8b32(W, sub, sup, 32, 7, Xq, xs, Y, 1, 1, 16, 0, 1);
        edge_matmul_q4k_q8b32_ref(W, sub, sup, 32, 4, Xq, xs, Y, 1, 1, 16, 0, 1);
        check(Y[0] == 7.0f, "q4k_q8b32 unsupported", level, 1, 1, 16, "wrote an output");
    }
}

// ---- q4 x int8 blocks of 32 (exact: bit-identical to the reference) -------------------------

static void sweep_q4_q8b32(const char *level) {
    static const size_t cols_list[] = {1, 8, 15, 33, 64, 127, 128, 129, 200, 257, 576, 1001};
    static const size_t tokens[] = {1, 2, 3, 4, 5, 9};
    static const size_t rows_list[] = {1, 3, 13};
    static const size_t group_list[] = {8, 16, 32, 64, 128, 256, 384};
    for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
        size_t cols = cols_list[c], nb = (cols + 31) / 32, row_bytes = (cols + 1) / 2;
        for (size_t gi = 0; gi < sizeof group_list / sizeof *group_list; gi++) {
            size_t gs = group_list[gi], groups = (cols + gs - 1) / gs;
            for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++) {
                for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                    size_t T = tokens[ti], rows = rows_list[ri];
                    float *X = alloc_slack(T * cols, 4), *xs = alloc_slack(T * nb, 4);
                    int8_t *Xq = alloc_slack(T * cols, 1);
                    uint8_t *W = alloc_slack(rows * row_bytes, 1), *zero = alloc_slack(rows * groups, 1);
                    uint16_t *sc = alloc_slack(rows * groups, 2);
                    float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                    for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-1, 1) * (float)(1 + (i % cols) / 32 % 3 * 9);
                    for (size_t i = 0; i < rows * row_bytes; i++) W[i] = (uint8_t)next_u64();
                    for (size_t i = 0; i < rows * groups; i++) {
                        zero[i] = (uint8_t)(next_u64() % 16);
                        sc[i] = edge_f32_to_f16(uniform(0.001f, 0.1f));
                    }
                    if (ri == 0 && ti == 0)  // extremes: every nibble 15 against +-127 activations, zero points 0
                        for (size_t i = 0; i < T * cols; i++) X[i] = 1.0f;
                    for (size_t t = 0; t < T; t++) edge_quantize_row_q8_b32_ref(X + t * cols, Xq + t * cols, xs + t * nb, cols);
                    if (ri == 0 && ti == 0) {
                        memset(W, 0xFF, rows * row_bytes);
                        memset(zero, 0, rows * groups);
                    }
                    for (int asym = 0; asym < 2; asym++) {
                        const uint8_t *z = asym ? zero : NULL;
                        size_t r0 = rows / 3, r1 = rows - rows / 4;
                        for (size_t i = 0; i < T * rows; i++) Y[i] = R[i] = 12345.5f;
                        edge_matmul_q4_q8b32(W, sc, z, gs, Xq, xs, Y, T, rows, cols, r0, r1);
                        edge_matmul_q4_q8b32_ref(W, sc, z, gs, Xq, xs, R, T, rows, cols, r0, r1);
                        char what[48];
                        snprintf(what, sizeof what, "matmul_q4_q8b32 g%zu", gs);
                        check(memcmp(Y, R, T * rows * 4) == 0, what, level, T, rows, cols,
                              asym ? "differs from the reference (asymmetric)" : "differs from the reference");
                    }
                    free_slack(X); free_slack(xs); free_slack(Xq); free_slack(W); free_slack(zero); free_slack(sc);
                    free_slack(Y); free_slack(R);
                }
            }
        }
    }
    // vecmat: bit-identical by construction (one fma chain per output).
    static const size_t dims[] = {1, 7, 8, 31, 32, 33, 64, 100};
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
        for (size_t n = 1; n < 300; n += 37) {
            size_t d = dims[di], ldv = d + 3;
            float *x = alloc_slack(n, 4), *V = alloc_slack(n * ldv, 4), *y = alloc_slack(d, 4), *r = alloc_slack(d, 4);
            for (size_t i = 0; i < n; i++) x[i] = uniform(0, 1);
            for (size_t i = 0; i < n * ldv; i++) V[i] = uniform(-2, 2);
            edge_vecmat_f32(x, V, ldv, y, n, d);
            edge_vecmat_f32_ref(x, V, ldv, r, n, d);
            check(memcmp(y, r, d * 4) == 0, "vecmat_f32", level, 1, n, d, "differs from the reference");
            free_slack(x); free_slack(V); free_slack(y); free_slack(r);
        }
}

// ---- Element-wise ---------------------------------------------------------------------------

/// |a - b| <= tol * max(|b|, 1) for every element.
static int close_all(const float *a, const float *b, size_t n, float tol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= tol * fmaxf(fabsf(b[i]), 1))) return 0;
    return 1;
}

static void sweep_elementwise(const char *level) {
    static const size_t sizes[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 200, 257};
    const float tol = 2e-6f;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *x = alloc_slack(n, 4), *w = alloc_slack(n, 4), *b = alloc_slack(n, 4), *u = alloc_slack(n, 4);
        float *o = alloc_slack(n, 4), *r = alloc_slack(n, 4);
        for (size_t i = 0; i < n; i++) { x[i] = uniform(-8, 8); w[i] = uniform(-1, 1); b[i] = uniform(-1, 1); u[i] = uniform(-1, 1); }
        edge_rmsnorm(x, w, o, n, 1e-5f); edge_rmsnorm_ref(x, w, r, n, 1e-5f);
        check(close_all(o, r, n, tol), "rmsnorm", level, 1, 1, n, "differs from the reference");
        edge_layernorm(x, w, b, o, n, 1e-5f); edge_layernorm_ref(x, w, b, r, n, 1e-5f);
        check(close_all(o, r, n, 4 * tol), "layernorm", level, 1, 1, n, "differs from the reference");
        memcpy(o, x, n * 4); memcpy(r, x, n * 4);
        if (n > 3) o[2] = r[2] = -INFINITY;
        edge_softmax(o, n); edge_softmax_ref(r, n);
        check(close_all(o, r, n, tol) && (n <= 3 || o[2] == 0), "softmax", level, 1, 1, n, "differs from the reference");
        memcpy(o, x, n * 4); memcpy(r, x, n * 4);
        edge_gelu_tanh(o, n); edge_gelu_tanh_ref(r, n);
        check(close_all(o, r, n, tol), "gelu_tanh", level, 1, 1, n, "differs from the reference");
        edge_silu_mul(x, u, o, n); edge_silu_mul_ref(x, u, r, n);
        check(close_all(o, r, n, tol), "silu_mul", level, 1, 1, n, "differs from the reference");
        memcpy(o, x, n * 4); memcpy(r, x, n * 4);
        edge_add(o, w, n); edge_add_ref(r, w, n);
        check(memcmp(o, r, n * 4) == 0, "add", level, 1, 1, n, "differs from the reference");
        memcpy(o, x, n * 4); memcpy(r, x, n * 4);
        edge_axpy(o, 0.3f, w, n); edge_axpy_ref(r, 0.3f, w, n);
        check(close_all(o, r, n, tol), "axpy", level, 1, 1, n, "differs from the reference");
        memcpy(o, x, n * 4); memcpy(r, x, n * 4);
        edge_scale(o, 0.7f, n); edge_scale_ref(r, 0.7f, n);
        check(memcmp(o, r, n * 4) == 0, "scale", level, 1, 1, n, "differs from the reference");
        double bound = 0;
        for (size_t i = 0; i < n; i++) bound += fabs((double)x[i] * w[i]);
        check(fabs((double)edge_dot_f32(x, w, n) - edge_dot_f32_ref(x, w, n)) <= 1e-5 * bound + 1e-30, "dot_f32", level, 1, 1, n,
              "differs from the reference");
        free_slack(x); free_slack(w); free_slack(b); free_slack(u); free_slack(o); free_slack(r);
    }
}

// ---- Kernel names ---------------------------------------------------------------------------

static void expect_name(edge_kernel_level level, edge_gemm_op op, size_t T, const char *want) {
    const char *got = edge_kernels_gemm_name(level, op, T);
    char detail[160];
    snprintf(detail, sizeof detail, "op %d: got %s, want %s", (int)op, got ? got : "NULL", want);
    check(got && strcmp(got, want) == 0, "kernel name", edge_kernels_level_name(level), T, 0, 0, detail);
}

/// The kernels each level should report: f32-family dot-product and packed ones, then the integer ones
/// (the *_vnni names where the level runs VNNI; NULL: the same as without).
typedef struct {
    edge_kernel_level level;
    const char *dot, *packed, *q8_q8, *q8_q8_vnni, *q8_q8b32;
    const char *q8_i16, *q8_i16_vnni;            // many tokens
    const char *q8_i16_rows, *q8_i16_rows_vnni;  // up to 4 tokens
    const char *q4_i16, *q4_i16_vnni;
    const char *q4_q8b32, *q4_q8b32_vnni;
    const char *q4k_q8b32, *q4k_q8b32_vnni;
    const char *q4k_i16, *q4k_i16_vnni, *q4k_gemm, *q4k_gemm_vnni;
    const char *fused;  // one token (not q3, q3s or q4k), where the level has a fused kernel; NULL: the dot kernel
} expected_names;

static const expected_names k_expected[] = {
    {.level = EDGE_KERNELS_AVX2, .dot = "avx2-dot-4x3", .packed = "avx2-packed-6x16", .q8_q8 = "avx2-dot-q8q8-4x2",
     .q8_q8b32 = "avx2-dot-q8q8b32-4x2", .q8_i16 = "avx2-packed-i16-6x16", .q8_i16_rows = "avx2-rows-i16-4x1",
     .q4_i16 = "avx2-bytes-q4i16-1x2", .q4_q8b32 = "avx2-rows-q4q8b32-4x1",
     .q4k_q8b32 = "avx2-rows-q4kq8b32-4x1", .fused = "avx2-fused-1x1",
     .q4k_i16 = "avx2-bytes-q4ki16-1x2", .q4k_gemm = "avx2-packed-q4ki16-6x16"},
    {.level = EDGE_KERNELS_AVX512, .dot = "avx512-dot-4x4", .packed = "avx512-packed-12x32", .q8_q8 = "avx512-bw-q8q8-4x4",
     .q8_q8_vnni = "avx512-vnni-q8q8-4x4", .q8_q8b32 = "avx2-dot-q8q8b32-4x2",
     .q8_i16 = "avx512-bw-packed-i16-12x32", .q8_i16_vnni = "avx512-vnni-packed-i16-12x32",
     .q8_i16_rows = "avx512-bw-rows-i16-4x1", .q8_i16_rows_vnni = "avx512-vnni-rows-i16-4x1",
     .q4_i16 = "avx2-bytes-q4i16-1x2", .q4_i16_vnni = "avx512-vnni-bytes-q4i16-1x2", .q4_q8b32 = "avx512-bw-rows-q4q8b32-4x1",
     .q4_q8b32_vnni = "avx512-vnni-rows-q4q8b32-4x1", .q4k_q8b32 = "avx512-bw-rows-q4kq8b32-4x1",
     .q4k_q8b32_vnni = "avx512-vnni-rows-q4kq8b32-4x1", .fused = "avx512-fused-1x1",
     .q4k_i16 = "avx2-bytes-q4ki16-1x2", .q4k_i16_vnni = "avx512-vnni-bytes-q4ki16-1x2", .q4k_gemm = "avx512-bw-packed-q4ki16-12x32",
     .q4k_gemm_vnni = "avx512-vnni-packed-q4ki16-12x32"},
    {.level = EDGE_KERNELS_NEON, .dot = "neon-dot-4x4", .packed = "neon-dot-4x4", .q8_q8 = "neon-dot-q8q8-4x4",
     .q8_q8b32 = "ref", .q8_i16 = "neon-blocked-i16-4x2", .q8_i16_rows = "neon-rows-i16-4x2", .q4_i16 = "neon-rows-q4i16-1x1", .q4_q8b32 = "ref", .q4k_q8b32 = "ref",
     .q4k_i16 = "neon-rows-q4ki16-1x1", .q4k_gemm = "ref"},
};

/// `vnni` where the active level runs VNNI and has a VNNI name, else `plain`.
static const char *pick(const char *plain, const char *vnni) { return edge_kernels_uses_vnni() && vnni ? vnni : plain; }

static void check_names(edge_kernel_level level) {
    const expected_names *e = NULL;
    for (size_t i = 0; i < sizeof k_expected / sizeof *k_expected; i++)
        if (k_expected[i].level == level) e = &k_expected[i];
    if (!e) { check(0, "kernel name", edge_kernels_level_name(level), 0, 0, 0, "no expected names"); return; }
    static const edge_gemm_op float_ops[] = {EDGE_GEMM_OP_F32, EDGE_GEMM_OP_F16, EDGE_GEMM_OP_Q8_F32, EDGE_GEMM_OP_Q4_F32,
                                             EDGE_GEMM_OP_Q3_F32, EDGE_GEMM_OP_Q3S_F32, EDGE_GEMM_OP_Q4K_F32};
    for (size_t oi = 0; oi < sizeof float_ops / sizeof *float_ops; oi++) {
        edge_gemm_op op = float_ops[oi];
        bool fused = e->fused && op != EDGE_GEMM_OP_Q3_F32 && op != EDGE_GEMM_OP_Q3S_F32 && op != EDGE_GEMM_OP_Q4K_F32;
        expect_name(level, (edge_gemm_op)op, 1, fused ? e->fused : e->dot);
        expect_name(level, (edge_gemm_op)op, 11, e->dot);
        expect_name(level, (edge_gemm_op)op, 12, e->packed);
        expect_name(level, (edge_gemm_op)op, 1000, e->packed);
    }
    // The active level's names are the forced one's.
    expect_name(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, 64, e->packed);
    expect_name(level, EDGE_GEMM_OP_Q8_Q8, 1, pick(e->q8_q8, e->q8_q8_vnni));
    expect_name(level, EDGE_GEMM_OP_Q8_Q8B32, 1, e->q8_q8b32);
    expect_name(level, EDGE_GEMM_OP_Q8_I16, 64, pick(e->q8_i16, e->q8_i16_vnni));
    expect_name(level, EDGE_GEMM_OP_Q8_I16, 5, pick(e->q8_i16, e->q8_i16_vnni));
    expect_name(level, EDGE_GEMM_OP_Q8_I16, 4, pick(e->q8_i16_rows, e->q8_i16_rows_vnni));
    expect_name(level, EDGE_GEMM_OP_Q8_I16, 1, pick(e->q8_i16_rows, e->q8_i16_rows_vnni));
    expect_name(level, EDGE_GEMM_OP_Q4_I16, 1, pick(e->q4_i16, e->q4_i16_vnni));
    expect_name(level, EDGE_GEMM_OP_Q4_Q8B32, 1, pick(e->q4_q8b32, e->q4_q8b32_vnni));
    expect_name(level, EDGE_GEMM_OP_Q4K_Q8B32, 1, pick(e->q4k_q8b32, e->q4k_q8b32_vnni));
    expect_name(level, EDGE_GEMM_OP_Q4K_I16, 1, pick(e->q4k_i16, e->q4k_i16_vnni));
    expect_name(level, EDGE_GEMM_OP_Q4K_I16_GEMM, 64, pick(e->q4k_gemm, e->q4k_gemm_vnni));
    edge_kernels_set_gemm_mode(EDGE_GEMM_DOT);
    expect_name(level, EDGE_GEMM_OP_F32, 1000, e->dot);
    edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO);
    printf("%s: f32 GEMM %s from 12 tokens, %s below; q8 x q8 %s; q8 x i16 %s, %s up to 4 tokens; q4 x i16 %s\n",
           edge_kernels_level_name(level), edge_kernels_gemm_name(level, EDGE_GEMM_OP_F32, 12),
           edge_kernels_gemm_name(level, EDGE_GEMM_OP_F32, 1), edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q8_Q8, 1),
           edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q8_I16, 64), edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q8_I16, 1),
           edge_kernels_gemm_name(level, EDGE_GEMM_OP_Q4_I16, 1));
}

// ---- bfloat16 products ----------------------------------------------------------------------

/// edge_matmul_bf16 and edge_matmul_bf16_wt against their references, bit for bit, over odd shapes (odd
/// column counts leave half a pair; more than EDGE_BF16_BLOCK columns, several blocks), with values that
/// round in every direction, subnormals (flushed), and a NaN and infinities in one case each.
static void sweep_bf16(const char *level) {
    static const size_t Ts[] = {1, 5, 12, 13, 30}, Rs[] = {1, 17, 32, 33, 130}, Cs[] = {1, 2, 3, 31, 256, 257, 600};
    for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
        for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++)
            for (size_t c = 0; c < sizeof Cs / sizeof *Cs; c++) {
                size_t T = Ts[a], rows = Rs[b], cols = Cs[c];
                float *W = alloc_slack(rows * cols, 4), *Wt = alloc_slack(rows * cols, 4), *X = alloc_slack(T * cols, 4);
                float *Y = alloc_slack(T * rows, 4), *R = alloc_slack(T * rows, 4);
                for (size_t i = 0; i < rows * cols; i++) W[i] = uniform(-2, 2);
                for (size_t i = 0; i < T * cols; i++) X[i] = uniform(-3, 3);
                if (rows * cols > 5) W[3] = 1e-40f, W[4] = -3e-39f;  // subnormals
                if (T * cols > 2) X[1] = 1.0f + 3.0f / 256;  // a tie between two bfloat16 values (1/128 apart here)
                for (size_t r = 0; r < rows; r++)
                    for (size_t k = 0; k < cols; k++) Wt[k * rows + r] = W[r * cols + k];
                size_t r0 = rows > 2 ? 1 : 0, r1 = rows;
                edge_matmul_bf16_ref(W, X, R, T, rows, cols, r0, r1);
                edge_matmul_bf16(W, X, Y, T, rows, cols, r0, r1);
                int ok = 1;
                for (size_t t = 0; t < T; t++)
                    for (size_t r = r0; r < r1; r++) ok &= memcmp(&Y[t * rows + r], &R[t * rows + r], 4) == 0;
                check(ok, "matmul_bf16", level, T, rows, cols, edge_kernels_bf16_name());
                edge_matmul_bf16_wt_ref(Wt, X, R, T, rows, cols, r0, r1);
                int same = 1;  // the transposed source is the same matrix: the same bits
                for (size_t t = 0; t < T; t++)
                    for (size_t r = r0; r < r1; r++) same &= memcmp(&Y[t * rows + r], &R[t * rows + r], 4) == 0;
                check(same, "matmul_bf16_wt_ref vs matmul_bf16_ref", level, T, rows, cols, "");
                edge_matmul_bf16_wt(Wt, X, Y, T, rows, cols, r0, r1);
                ok = 1;
                for (size_t t = 0; t < T; t++)
                    for (size_t r = r0; r < r1; r++) ok &= memcmp(&Y[t * rows + r], &R[t * rows + r], 4) == 0;
                check(ok, "matmul_bf16_wt", level, T, rows, cols, edge_kernels_bf16_name());
                free_slack(W), free_slack(Wt), free_slack(X), free_slack(Y), free_slack(R);
            }
}

/// The rounding itself, value by value: with W the identity (one 1.0 per row, exact in bfloat16), the
/// product returns each activation as the level rounds it (on a CPU without vdpbf16ps, its vector
/// rounding; the other side's rounding is then checked by the transposed source). Finite activations of
/// every class the rounding treats apart (signed zeros, subnormals, ties to even and their neighbours,
/// the smallest normals, the largest values that stay finite) at every column position, so the vector
/// part and the scalar tail both see each; then rows of ones with one value that is or rounds to an
/// infinity, at several positions: that output is the infinity, the others NaN (inf x 0).
static void sweep_bf16_rounding(const char *level) {
    static const uint32_t finite[] = {
        0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00400000u,  // zeros, subnormals
        0x3F808000u, 0x3F818000u, 0xBF808000u, 0x3F807FFFu, 0x3F808001u,  // ties (down, up), neighbours
        0x7F7F7FFFu, 0xFF7E8000u, 0x00800000u, 0x0080FFFFu, 0x4B3F8000u,  // largest finite, smallest normals
        0xC2FE8000u, 0x3E2AAAABu, 0x3F800000u, 0xC0490FDBu,
    }, infinite[] = {0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0xFF7F8000u};  // and max float, a tie: round to inf
    const size_t nf = sizeof finite / sizeof *finite, ni = sizeof infinite / sizeof *infinite;
    static const size_t Cs[] = {8, 17, 31, 40, 257};
    for (size_t c = 0; c < sizeof Cs / sizeof *Cs; c++) {
        size_t cols = Cs[c], rows = cols, T = nf + 4 * ni;
        float *W = alloc_slack(rows * cols, 4), *X = alloc_slack(T * cols, 4), *Y = alloc_slack(T * rows, 4);
        for (size_t i = 0; i < rows * cols; i++) W[i] = 0;
        for (size_t r = 0; r < rows; r++) W[r * cols + r] = 1;
        size_t at[4] = {0, 1, cols / 2, cols - 1};  // the infinity rows' positions
        for (size_t t = 0; t < T; t++)
            for (size_t k = 0; k < cols; k++) {
                uint32_t bits = 0x3F800000u;
                if (t < nf) bits = finite[(t + k) % nf];
                else if (k == at[(t - nf) % 4]) bits = infinite[(t - nf) / 4];
                memcpy(&X[t * cols + k], &bits, 4);
            }
        for (int side = 0; side < 2; side++) {
            if (side == 0) edge_matmul_bf16(W, X, Y, T, rows, cols, 0, rows);
            else edge_matmul_bf16_wt(W, X, Y, T, rows, cols, 0, rows);  // W is symmetric: W^T = W
            int ok = 1;
            for (size_t t = 0; t < T; t++)
                for (size_t r = 0; r < rows; r++) {
                    float want = edge_bf16_round(X[t * cols + r]), got = Y[t * rows + r];
                    if (t >= nf && r != at[(t - nf) % 4]) ok &= isnan(got) != 0;
                    else if (want == 0) ok &= got == 0;  // -0 plus the +0 products: +0
                    else ok &= memcmp(&want, &got, 4) == 0;
                }
            check(ok, side == 0 ? "matmul_bf16 rounding" : "matmul_bf16_wt rounding", level, T, rows, cols,
                  edge_kernels_bf16_name());
        }
        free_slack(W), free_slack(X), free_slack(Y);
    }
}

int main(int argc, char **argv) {
    // The levels to check, by name (each must be available): the arguments, default avx2 and avx512.
    const char *defaults[] = {"avx2", "avx512"};
    const char **names = argc > 1 ? (const char **)argv + 1 : defaults;
    int count = argc > 1 ? argc - 1 : 2;
    for (int i = 0; i < count; i++) {
        edge_kernel_level level = EDGE_KERNELS_AUTO;
        for (int l = EDGE_KERNELS_REF; l <= EDGE_KERNELS_NEON; l++)
            if (strcmp(names[i], edge_kernels_level_name((edge_kernel_level)l)) == 0) level = (edge_kernel_level)l;
        if (level == EDGE_KERNELS_AUTO || level == EDGE_KERNELS_REF || !edge_kernels_force(level)) {
            printf("FAIL %s: not a SIMD level this build runs\n", names[i]);
            failed++;
            continue;
        }
        const char *name = edge_kernels_level_name(level);
        check_names(level);
        for (int mode = EDGE_GEMM_AUTO; mode <= EDGE_GEMM_DOT; mode++) {
            edge_kernels_set_gemm_mode((edge_gemm_mode)mode);
            sweep_gemm(name);
            sweep_q3s(name);
        }
        edge_kernels_set_gemm_mode(EDGE_GEMM_AUTO);
        sweep_int8(name);
        sweep_q4_i16(name);
        sweep_q4k_i16(name);
        sweep_q4_q8b32(name);
        sweep_q4k_q8b32(name);
        sweep_bitmask_i16(name);
        sweep_nm24_i16(name);
        sweep_elementwise(name);
        sweep_bf16(name);
        sweep_bf16_rounding(name);
        if (strstr(edge_kernels_bf16_name(), "-bf16-") && edge_kernels_set_bf16_native(false)) {  // the f32 tile on rounded operands, where vdpbf16ps ran above
            sweep_bf16(name);
            sweep_bf16_rounding(name);
            edge_kernels_set_bf16_native(true);
        }
        if (edge_kernels_uses_vnni() && edge_kernels_set_vnni(false)) {
            // The same level with its AVX-512BW integer kernels.
            check_names(level);
            sweep_int8(name);
            sweep_q4_i16(name);
            sweep_q4k_i16(name);
            sweep_q4_q8b32(name);
            sweep_q4k_q8b32(name);
            sweep_bitmask_i16(name);
            sweep_nm24_i16(name);
            edge_kernels_force(level);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
