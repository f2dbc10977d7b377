// One-thread decoding sweep of SmolLM2-135M's linear shapes (30 layers x q, k, v, o, gate, up, down;
// one token) at 2:4 sparsity: the dense int8 x int16 product against the same weights as a bitmask
// and as packed 2:4 (edge_matmul_q8_i16, edge_spmm_bitmask_q8_i16, edge_spmm_nm24_q8_i16), every
// matrix its own memory so the weights stream as in decoding. Milliseconds per sweep, one line per
// sweep, the three alternating.
// BENCH_LEVEL=avx2 in the environment forces the AVX2 kernels.
// Usage (from the repository root; the best kernel level this CPU runs; clang, as SwiftPM builds the
// kernels: gcc's code for the AVX-512 sparse kernels was up to 1.5x slower on a Zen 4):
//   clang -O2 -I Sources/EdgeKernels/include -I Sources/EdgeKernels scripts/bench_sparse_decode.c
//      Sources/EdgeKernels/*.c -o bench_sparse -lm -lpthread && ./bench_sparse [ROUNDS] [LAYERS]
// LAYERS (default 30, SmolLM2's): 3 keeps the weights in a 32 MB L3 (on a VM's shared L3 partly
// from memory), 30 streams them from memory. A third argument KIND (0..6: q, k, v, o, gate, up,
// down) times that one matrix 2000 times over, in L2, so the sweep times the arithmetic
// (`./bench_sparse 3 1 4`): microseconds per product and nanoseconds per 64 columns of a row.
#include "EdgeKernels.h"
#include "EdgeKernelsMath.h"
#include "EdgeKernelsSparse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t state = 88172645463325252ULL;
static unsigned rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)state;
}

enum { MAX_LAYERS = 30, KINDS = 7, MAX_N = MAX_LAYERS * KINDS };

int main(int argc, char **argv) {
    const char *lv = getenv("BENCH_LEVEL");  // avx2: the AVX2 kernels forced
    if (lv && strcmp(lv, "avx2") == 0 && !edge_kernels_force(EDGE_KERNELS_AVX2)) {
        fprintf(stderr, "bench_sparse: AVX2 not available\n");
        return 2;
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int layers = argc > 2 ? atoi(argv[2]) : MAX_LAYERS;  // fewer: the weights stay in cache
    if (layers < 1 || layers > MAX_LAYERS) layers = MAX_LAYERS;
    const int N = layers * KINDS;
    const size_t shape[KINDS][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}};
    int8_t *dense[MAX_N], *bval[MAX_N], *nval[MAX_N];
    uint8_t *mask[MAX_N], *idx[MAX_N];
    uint32_t *rowptr[MAX_N];
    float *scale[MAX_N];
    for (int id = 0; id < N; id++) {
        size_t R = shape[id % KINDS][0], C = shape[id % KINDS][1], mb = C / 8, slots = C / 2;
        dense[id] = calloc(R * C, 1);
        mask[id] = calloc(R * mb, 1);
        rowptr[id] = malloc(4 * (R + 1));
        bval[id] = malloc(R * slots);
        idx[id] = calloc(R * slots / 4, 1);
        nval[id] = malloc(R * slots);
        scale[id] = malloc(4 * R);
        if (!dense[id] || !mask[id] || !rowptr[id] || !bval[id] || !idx[id] || !nval[id] || !scale[id]) return 1;
        size_t nv = 0;
        rowptr[id][0] = 0;
        for (size_t r = 0; r < R; r++) {
            scale[id][r] = 0.01f;
            for (size_t g = 0; g < C / 4; g++) {  // two distinct increasing columns per group of 4
                unsigned a = rnd() % 4, b;
                do b = rnd() % 4; while (b == a);
                if (a > b) { unsigned t = a; a = b; b = t; }
                unsigned pick[2] = {a, b};
                for (int j = 0; j < 2; j++) {
                    size_t col = g * 4 + pick[j], s = g * 2 + j;
                    int8_t w = (int8_t)(rnd() % 200 + 1 - 100);
                    dense[id][r * C + col] = w;
                    mask[id][r * mb + col / 8] |= (uint8_t)(1u << (col % 8));
                    idx[id][r * (slots / 4) + s / 4] |= (uint8_t)(pick[j] << (2 * (s % 4)));
                    nval[id][r * slots + s] = w;
                }
            }
            for (size_t col = 0; col < C; col++)
                if (mask[id][r * mb + col / 8] & (1u << (col % 8))) bval[id][nv++] = dense[id][r * C + col];
            rowptr[id][r + 1] = (uint32_t)nv;
        }
    }
    float x[1536], y[1536], xs[8];
    int16_t xq[1600];
    for (int i = 0; i < 1536; i++) x[i] = (float)(i % 11) * 0.1f - 0.5f;
    const char *name[3] = {"dense-q8", "bitmask", "nm24"};
    printf("kernels %s\n", edge_kernels_level_name(edge_kernels_level()));
    if (argc > 3) {  // one matrix kind (argv[3] = 0..6) repeated, in L2
        int k = atoi(argv[3]);
        if (k < 0 || k >= KINDS) k = 0;
        size_t R = shape[k][0], C = shape[k][1];
        for (int round = 0; round < rounds; round++)
            for (int mode = 0; mode < 3; mode++) {
                double t0 = now();
                for (int it = 0; it < 2000; it++) {
                    edge_quantize_rows_i16(x, xq, xs, 1, C);
                    if (mode == 0) edge_matmul_q8_i16(dense[k], scale[k], xq, xs, y, 1, R, C, 0, R);
                    else if (mode == 1) edge_spmm_bitmask_q8_i16(mask[k], rowptr[k], bval[k], scale[k], xq, xs, y, 1, R, C, 0, R);
                    else edge_spmm_nm24_q8_i16(idx[k], nval[k], scale[k], xq, xs, y, 1, R, C, 0, R);
                }
                double dt = (now() - t0) / 2000;
                printf("%s %.2f us  %.2f ns per 64 columns of a row\n", name[mode], dt * 1e6, dt * 1e9 / (R * C / 64.0));
            }
        return 0;
    }
    for (int round = 0; round < rounds; round++) {
        for (int mode = 0; mode < 3; mode++) {
            double t0 = now();
            for (int id = 0; id < N; id++) {
                size_t R = shape[id % KINDS][0], C = shape[id % KINDS][1];
                edge_quantize_rows_i16(x, xq, xs, 1, C);
                if (mode == 0) edge_matmul_q8_i16(dense[id], scale[id], xq, xs, y, 1, R, C, 0, R);
                else if (mode == 1) edge_spmm_bitmask_q8_i16(mask[id], rowptr[id], bval[id], scale[id], xq, xs, y, 1, R, C, 0, R);
                else edge_spmm_nm24_q8_i16(idx[id], nval[id], scale[id], xq, xs, y, 1, R, C, 0, R);
            }
            printf("%s %.2f ms\n", name[mode], (now() - t0) * 1e3);
        }
    }
    return 0;
}
