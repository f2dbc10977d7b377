// A zero-skipping q8 x int16 GEMM for prompt processing of pruned weights, measured against the
// dense packed GEMM (edge_matmul_q8_i16) on the same int8 weights: built, exact, and not kept
// (docs/performance.md, "A zero-skipping sparse GEMM for prompt processing").
//
// Tokens lie across the vector lanes. Per group of 4 columns, the activations of every pair of
// columns (6 pairs) are laid out as int16 pairs for 128 tokens; a weight row's nonzeros in the group
// are covered by one or two pairs (a group with 1 or 2 nonzeros: one pair; 3 or 4: two), each pair
// one `vpdpwssd` per 16 tokens against its weights broadcast: 1.25 instructions per group at 50%
// random sparsity and 1.0 at 2:4, against the dense GEMM's 2.0. Per-256-column integer sums, then
// the float steps of edge_matmul_q8_i16_ref in its order, so the output is bit-identical to the
// dense product (the program counts mismatches).
//
// Usage (from the repository root; an AVX-512 VNNI CPU):
//   clang -O2 -I Sources/EdgeKernels/include -I Sources/EdgeKernels scripts/bench_sparse_pairs.c \
//      Sources/EdgeKernels/*.c -o bench_sparse_pairs -lm -lpthread
//   ./bench_sparse_pairs ROWS COLS TOKENS PATTERN [REPS]    (PATTERN 0: 50% random, 1: 2:4)
// Prints the mismatch count and the best of REPS (default 5) one-thread times of both products.
#include "EdgeKernels.h"
#include "EdgeKernelsMath.h"
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define PG_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,bmi2")))
enum { PG_TT = 128, PG_TV = PG_TT / 16, PG_BLOCK = 256, PG_GB = PG_BLOCK / 4, PG_SCG = 4, PG_NSC = PG_GB / PG_SCG, PG_RG = 32 };
static const uint8_t pg_pa[6] = {0, 0, 0, 1, 1, 2}, pg_pb[6] = {1, 2, 3, 2, 3, 3};
static const uint8_t pg_n[16] = {0, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 2, 2, 2};
static const uint8_t pg_p0[16] = {0, 0, 0, 0, 5, 1, 3, 0, 5, 2, 4, 0, 5, 0, 0, 0};

static inline int32_t pg_w(uint32_t u, int a, int b) {
    return (int32_t)((uint32_t)(uint16_t)(int16_t)(int8_t)(u >> (8 * a)) | ((uint32_t)(uint16_t)(int16_t)(int8_t)(u >> (8 * b)) << 16));
}

/// Y[t, r] for rows r0 ..< r1 of the dense int8 rows W (zeros skipped), as edge_matmul_q8_i16 computes it:
/// per row and 256-column block the entries (weight pair, offset of its activation pairs), then per 128
/// tokens and block the activation pairs (through a token-major copy of the block), rows 32 at a time
/// over 16-column chunks whose activation pairs stay in L1, and the float steps per block.
PG_ATTR static void pg_gemm_q8_i16(const int8_t *W, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                                   size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = (cols + 1) & ~(size_t)1, nb = (cols + PG_BLOCK - 1) / PG_BLOCK, m = r1 - r0, ng = (cols + 3) / 4;
    uint8_t *cnt = malloc(m * nb * PG_NSC);
    int32_t *ew = malloc(sizeof(int32_t) * (m * ng * 2 + 32));
    uint32_t *eo = malloc(sizeof(uint32_t) * (m * ng * 2 + 32));
    uint32_t *rowstart = malloc(sizeof(uint32_t) * (m * nb + 1));
    size_t ne = 0;
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i base = _mm512_set_epi32(0x0C800C80, 0x08800880, 0x04800480, 0x00800080, 0x0C800C80, 0x08800880, 0x04800480, 0x00800080,
                                          0x0C800C80, 0x08800880, 0x04800480, 0x00800080, 0x0C800C80, 0x08800880, 0x04800480, 0x00800080);
    __m512i ctrl0t, p0t, ntab;
    {
        int32_t c0[16], p0[16], nn[16];
        for (int n = 0; n < 16; n++) {
            int p = pg_p0[n];
            c0[n] = (int32_t)(0x80u | (uint32_t)pg_pa[p] << 8 | 0x80u << 16 | (uint32_t)pg_pb[p] << 24);
            p0[n] = p, nn[n] = pg_n[n];
        }
        ctrl0t = _mm512_loadu_si512(c0), p0t = _mm512_loadu_si512(p0), ntab = _mm512_loadu_si512(nn);
    }
    const __m512i ctrl1 = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(0x80u | 2u << 8 | 0x80u << 16 | 3u << 24)), _mm512_sub_epi32(base, _mm512_set1_epi32(0x00800080)));
    const __m512i bitsel = _mm512_set1_epi32(0x08040201);
    const __m512i idxA = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i idxB = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    for (size_t i = 0; i < m; i++) {
        const int8_t *w = W + (r0 + i) * cols;
        for (size_t b = 0; b < nb; b++) {
            rowstart[i * nb + b] = (uint32_t)ne;
            uint8_t *cn = cnt + (i * nb + b) * PG_NSC;
            size_t k0 = b * PG_BLOCK, kn = cols - k0 < PG_BLOCK ? cols - k0 : PG_BLOCK, sc = 0;
            for (size_t s = 0; s + 64 <= kn; s += 64, sc += 4) {
                __m512i wv = _mm512_loadu_si512((const void *)(w + k0 + s));
                __m512i nzb = _mm512_movm_epi8(_mm512_test_epi8_mask(wv, wv));
                __m512i x = _mm512_and_si512(nzb, bitsel);
                x = _mm512_or_si512(x, _mm512_srli_epi32(x, 16));
                x = _mm512_and_si512(_mm512_or_si512(x, _mm512_srli_epi32(x, 8)), _mm512_set1_epi32(15));
                __m512i c0 = _mm512_add_epi32(_mm512_permutexvar_epi32(x, ctrl0t), _mm512_sub_epi32(base, _mm512_set1_epi32(0x00800080)));
                __m512i w0 = _mm512_srai_epi16(_mm512_shuffle_epi8(wv, c0), 8);
                __m512i w1 = _mm512_srai_epi16(_mm512_shuffle_epi8(wv, ctrl1), 8);
                __m512i gl6 = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)(s / 4))), _mm512_set1_epi32(6));
                __m512i o0 = _mm512_slli_epi32(_mm512_add_epi32(gl6, _mm512_permutexvar_epi32(x, p0t)), 9);
                __m512i o1 = _mm512_slli_epi32(_mm512_add_epi32(gl6, _mm512_set1_epi32(5)), 9);
                unsigned v0 = _mm512_test_epi32_mask(x, x);
                unsigned v1 = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(x, ntab), _mm512_set1_epi32(2));
                unsigned mA = (v0 & 0xF) | (v1 & 0xF) << 4 | (v0 & 0xF0) << 4 | (v1 & 0xF0) << 8;
                unsigned mB = (v0 >> 8 & 0xF) | (v1 >> 8 & 0xF) << 4 | (v0 >> 12 & 0xF) << 8 | (v1 >> 12 & 0xF) << 12;
                cn[sc] = (uint8_t)__builtin_popcount(mA & 0xFF), cn[sc + 1] = (uint8_t)__builtin_popcount(mA >> 8);
                cn[sc + 2] = (uint8_t)__builtin_popcount(mB & 0xFF), cn[sc + 3] = (uint8_t)__builtin_popcount(mB >> 8);
                _mm512_storeu_si512(ew + ne, _mm512_maskz_compress_epi32((__mmask16)mA, _mm512_permutex2var_epi32(w0, idxA, w1)));
                _mm512_storeu_si512(eo + ne, _mm512_maskz_compress_epi32((__mmask16)mA, _mm512_permutex2var_epi32(o0, idxA, o1)));
                ne += __builtin_popcount(mA);
                _mm512_storeu_si512(ew + ne, _mm512_maskz_compress_epi32((__mmask16)mB, _mm512_permutex2var_epi32(w0, idxB, w1)));
                _mm512_storeu_si512(eo + ne, _mm512_maskz_compress_epi32((__mmask16)mB, _mm512_permutex2var_epi32(o0, idxB, o1)));
                ne += __builtin_popcount(mB);
            }
            for (; sc < PG_NSC; sc++) {  // the block's last columns: group by group
                size_t before = ne;
                for (size_t gg = 0; gg < PG_SCG; gg++) {
                    size_t gl = sc * PG_SCG + gg, k = k0 + 4 * gl;
                    if (k >= cols) break;
                    uint32_t u = 0;
                    memcpy(&u, w + k, cols - k < 4 ? cols - k : 4);
                    uint32_t t = ((u & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) | u;
                    unsigned nib = _pext_u32(t, 0x80808080u);
                    if (!nib) continue;
                    int p = pg_p0[nib];
                    ew[ne] = pg_w(u, pg_pa[p], pg_pb[p]);
                    eo[ne++] = (uint32_t)(gl * 6 + p) * PG_TT * 4;
                    if (pg_n[nib] == 2) {
                        ew[ne] = pg_w(u, 2, 3);
                        eo[ne++] = (uint32_t)(gl * 6 + 5) * PG_TT * 4;
                    }
                }
                cn[sc] = (uint8_t)(ne - before);
            }
        }
    }
    rowstart[m * nb] = (uint32_t)ne;
    int32_t *x6 = aligned_alloc(64, (size_t)PG_GB * 6 * PG_TT * 4);
    int16_t *xt = aligned_alloc(64, (size_t)PG_BLOCK * PG_TT * 2);
    float *xs = aligned_alloc(64, nb * PG_TT * 4);
    float *facc = aligned_alloc(64, m * PG_TT * 4);
    __m512i *acc = aligned_alloc(64, PG_RG * PG_TV * 64);
    for (size_t t0 = 0; t0 < T; t0 += PG_TT) {
        size_t tn = T - t0 < PG_TT ? T - t0 : PG_TT;
        for (size_t b = 0; b < nb; b++)
            for (size_t t = 0; t < PG_TT; t++) xs[b * PG_TT + t] = t < tn ? xscale[(t0 + t) * nb + b] : 0.0f;
        for (size_t b = 0; b < nb; b++) {
            size_t k0 = b * PG_BLOCK, kn = cols - k0 < PG_BLOCK ? cols - k0 : PG_BLOCK, gn = (kn + 3) / 4;
            memset(xt, 0, (size_t)PG_BLOCK * PG_TT * 2);
            for (size_t t = 0; t < tn; t++) {
                const int16_t *x = Xq + (t0 + t) * ld + k0;
                for (size_t k = 0; k < kn; k++) xt[k * PG_TT + t] = x[k];
            }
            for (size_t g = 0; g < gn; g++)
                for (int p = 0; p < 6; p++) {
                    const int16_t *xa = xt + (4 * g + pg_pa[p]) * PG_TT, *xb = xt + (4 * g + pg_pb[p]) * PG_TT;
                    int32_t *o = x6 + (g * 6 + p) * PG_TT;
                    for (int v = 0; v < PG_TV; v++) {
                        __m512i a = _mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(xa + 16 * v)));
                        __m512i c = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(xb + 16 * v))), 16);
                        _mm512_store_si512((void *)(o + 16 * v), _mm512_or_si512(a, c));
                    }
                }
            const __m512 *xsb = (const __m512 *)(xs + b * PG_TT);
            size_t nsc = (gn + PG_SCG - 1) / PG_SCG;
            for (size_t g0 = 0; g0 < m; g0 += PG_RG) {
                size_t rn = m - g0 < PG_RG ? m - g0 : PG_RG;
                size_t ep[PG_RG];
                for (size_t j = 0; j < rn; j++) ep[j] = rowstart[(g0 + j) * nb + b];
                memset(acc, 0, rn * PG_TV * 64);
                for (size_t sc = 0; sc < nsc; sc++) {
                    const char *xsc = (const char *)x6;
                    for (size_t j = 0; j < rn; j++) {
                        size_t c = cnt[((g0 + j) * nb + b) * PG_NSC + sc];
                        if (!c) continue;
                        __m512i *a = acc + j * PG_TV;
                        __m512i s0 = a[0], s1 = a[1], s2 = a[2], s3 = a[3], s4 = a[4], s5 = a[5], s6 = a[6], s7 = a[7];
                        size_t p = ep[j], pe = p + c;
                        for (; p < pe; p++) {
                            __m512i wv = _mm512_set1_epi32(ew[p]);
                            const __m512i *xp = (const __m512i *)(xsc + eo[p]);
                            s0 = _mm512_dpwssd_epi32(s0, xp[0], wv);
                            s1 = _mm512_dpwssd_epi32(s1, xp[1], wv);
                            s2 = _mm512_dpwssd_epi32(s2, xp[2], wv);
                            s3 = _mm512_dpwssd_epi32(s3, xp[3], wv);
                            s4 = _mm512_dpwssd_epi32(s4, xp[4], wv);
                            s5 = _mm512_dpwssd_epi32(s5, xp[5], wv);
                            s6 = _mm512_dpwssd_epi32(s6, xp[6], wv);
                            s7 = _mm512_dpwssd_epi32(s7, xp[7], wv);
                        }
                        ep[j] = pe;
                        a[0] = s0, a[1] = s1, a[2] = s2, a[3] = s3, a[4] = s4, a[5] = s5, a[6] = s6, a[7] = s7;
                    }
                }
                for (size_t j = 0; j < rn; j++) {
                    __m512 *f = (__m512 *)(facc + (g0 + j) * PG_TT);
                    const __m512i *a = acc + j * PG_TV;
                    for (int v = 0; v < PG_TV; v++) f[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[v]), xsb[v], b ? f[v] : _mm512_setzero_ps());
                }
            }
        }
        for (size_t i0 = 0; i0 < m; i0 += 16) {
            size_t in = m - i0 < 16 ? m - i0 : 16;
            __mmask16 rm = (__mmask16)((1u << in) - 1);
            for (size_t tt = 0; tt < tn; tt += 16) {
                __m512 r[16], a[16], bq[16], d[16];
                for (int j = 0; j < 16; j++)
                    r[j] = (size_t)j < in ? _mm512_mul_ps(_mm512_load_ps(facc + (i0 + j) * PG_TT + tt), _mm512_set1_ps(wscale[r0 + i0 + j])) : _mm512_setzero_ps();
                for (int k = 0; k < 8; k++) a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]), a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
                for (int k = 0; k < 4; k++) {
                    bq[4 * k] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44), bq[4 * k + 1] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
                    bq[4 * k + 2] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44), bq[4 * k + 3] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
                }
                for (int j = 0; j < 4; j++) {
                    d[4 * j] = _mm512_shuffle_f32x4(bq[j], bq[4 + j], 0x88), d[4 * j + 1] = _mm512_shuffle_f32x4(bq[j], bq[4 + j], 0xDD);
                    d[4 * j + 2] = _mm512_shuffle_f32x4(bq[8 + j], bq[12 + j], 0x88), d[4 * j + 3] = _mm512_shuffle_f32x4(bq[8 + j], bq[12 + j], 0xDD);
                }
                __m512 o[16];
                for (int j = 0; j < 4; j++) {
                    o[j] = _mm512_shuffle_f32x4(d[4 * j], d[4 * j + 2], 0x88), o[8 + j] = _mm512_shuffle_f32x4(d[4 * j], d[4 * j + 2], 0xDD);
                    o[4 + j] = _mm512_shuffle_f32x4(d[4 * j + 1], d[4 * j + 3], 0x88), o[12 + j] = _mm512_shuffle_f32x4(d[4 * j + 1], d[4 * j + 3], 0xDD);
                }
                size_t tcount = tn - tt < 16 ? tn - tt : 16;
                for (size_t j = 0; j < tcount; j++) _mm512_mask_storeu_ps(Y + (t0 + tt + j) * rows + r0 + i0, rm, o[j]);
            }
        }
    }
    free(cnt); free(ew); free(eo); free(rowstart); free(x6); free(xt); free(xs); free(facc); free(acc);
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ULL;
static unsigned rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (unsigned)st; }
int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_sparse_pairs ROWS COLS TOKENS PATTERN(0: 50%% random, 1: 2:4) [REPS]\n");
        return 2;
    }
    size_t R = atoi(argv[1]), C = atoi(argv[2]), T = atoi(argv[3]); int mode = atoi(argv[4]); // 0 random50, 1 2:4
    int reps = argc > 5 ? atoi(argv[5]) : 5;
    int8_t *W = malloc(R * C); float *ws = malloc(4 * R);
    for (size_t r = 0; r < R; r++) { ws[r] = 0.01f + (rnd() % 100) * 1e-4f;
        for (size_t k = 0; k < C; k += 4) {
            int keep[4] = {0};
            if (mode == 1) { int a = rnd() % 4, b; do b = rnd() % 4; while (b == a); keep[a] = keep[b] = 1; }
            else for (int j = 0; j < 4; j++) keep[j] = rnd() & 1;
            for (int j = 0; j < 4 && k + j < C; j++) { int v = (int)(rnd() % 255) - 127; if (v == 0) v = 1; W[r * C + k + j] = keep[j] ? v : 0; }
        } }
    float *X = malloc(4 * T * C); for (size_t i = 0; i < T * C; i++) X[i] = ((int)(rnd() % 20001) - 10000) * 1e-4f;
    size_t ld = edge_i16_stride(C), nb = (C + 255) / 256;
    int16_t *Xq = malloc(2 * T * ld); float *xs = malloc(4 * T * nb);
    edge_quantize_rows_i16(X, Xq, xs, T, C);
    float *Y1 = calloc(T * R, 4), *Y2 = calloc(T * R, 4);
    edge_matmul_q8_i16(W, ws, Xq, xs, Y1, T, R, C, 0, R);
    pg_gemm_q8_i16(W, ws, Xq, xs, Y2, T, R, C, 0, R);
    size_t bad = 0; for (size_t i = 0; i < T * R; i++) if (memcmp(&Y1[i], &Y2[i], 4)) bad++;
    printf("mismatches %zu of %zu\n", bad, T * R);
    double bd = 1e9, bp = 1e9;
    for (int i = 0; i < reps; i++) {
        double t = now(); edge_matmul_q8_i16(W, ws, Xq, xs, Y1, T, R, C, 0, R); t = now() - t; if (t < bd) bd = t;
        t = now(); pg_gemm_q8_i16(W, ws, Xq, xs, Y2, T, R, C, 0, R); t = now() - t; if (t < bp) bp = t;
    }
    printf("%zux%zu T=%zu %s: dense %.3f ms, pairs %.3f ms, ratio %.2fx\n", R, C, T, mode ? "2:4" : "50%", bd * 1e3, bp * 1e3, bd / bp);
}
