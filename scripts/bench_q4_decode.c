// One-thread decoding sweep of SmolLM2-135M's linear shapes (LAYERS x q, k, v, o, gate, up, down;
// one token) with asymmetric int4 weights in groups of GROUP: the q4 x int16 decoding product
// (edge_matmul_q4_i16, the default) or q4 x int8 blocks of 32 (edge_matmul_q4_q8b32, --activations q8),
// the activations quantized per matrix as the runtime does. Every matrix its own memory: 30 layers
// (53 MB at g64) stream from memory as in decoding, 4 layers (7 MB) stay in the last-level cache and
// show the kernel's compute. Prints the median of REPS sweeps in milliseconds and the kernel's name.
// Usage (from the repository root; the best kernel level this CPU runs):
//   cc -O2 -I Sources/EdgeKernels/include -I Sources/EdgeKernels scripts/bench_q4_decode.c
//      Sources/EdgeKernels/*.c -o bench_q4 -lm -lpthread && ./bench_q4 i16|q8 [LAYERS [GROUP [REPS]]]
#include "EdgeKernels.h"
#include "EdgeKernelsMath.h"
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

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "i16") != 0 && strcmp(argv[1], "q8") != 0)) {
        fprintf(stderr, "usage: %s i16|q8 [LAYERS [GROUP [REPS]]]\n", argv[0]);
        return 2;
    }
    int q8 = strcmp(argv[1], "q8") == 0;
    int layers = argc > 2 ? atoi(argv[2]) : 30, reps = argc > 4 ? atoi(argv[4]) : 9;
    size_t gs = argc > 3 ? (size_t)atoi(argv[3]) : 64;
    if (layers < 1 || reps < 1 || !edge_q4_i16_supported(gs) || !edge_q4_q8_supported(gs)) {
        fprintf(stderr, "bench_q4: LAYERS and REPS must be positive, GROUP one of 32, 64, 128, 256\n");
        return 2;
    }
    static const size_t shapes[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}};
    size_t n = (size_t)layers * 7;
    uint8_t **W = malloc(n * sizeof *W), **Z = malloc(n * sizeof *Z);
    uint16_t **S = malloc(n * sizeof *S);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!W || !Z || !S || !t) return 1;
    for (size_t m = 0; m < n; m++) {
        size_t rows = shapes[m % 7][0], cols = shapes[m % 7][1], G = (cols + gs - 1) / gs;
        W[m] = malloc(rows * ((cols + 1) / 2));
        S[m] = malloc(rows * G * sizeof(uint16_t));
        Z[m] = malloc(rows * G);
        if (!W[m] || !S[m] || !Z[m]) return 1;
        for (size_t i = 0; i < rows * ((cols + 1) / 2); i++) W[m][i] = (uint8_t)rnd();
        for (size_t i = 0; i < rows * G; i++) {
            S[m][i] = edge_f32_to_f16(0.01f);
            Z[m][i] = (uint8_t)(rnd() % 16);
        }
    }
    float x[1536], y[1536], xs[64];
    int16_t x16[1536];
    int8_t x8[1536];
    for (int i = 0; i < 1536; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 100.0f;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (size_t m = 0; m < n; m++) {
            size_t rows = shapes[m % 7][0], cols = shapes[m % 7][1];
            if (q8) {
                edge_quantize_row_q8_b32(x, x8, xs, cols);
                edge_matmul_q4_q8b32(W[m], S[m], Z[m], gs, x8, xs, y, 1, rows, cols, 0, rows);
            } else {
                edge_quantize_rows_i16(x, x16, xs, 1, cols);
                edge_matmul_q4_i16(W[m], S[m], Z[m], gs, x16, xs, y, 1, rows, cols, 0, rows);
            }
        }
        t[r] = (now() - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    printf("%s g%zu, %d layers: %.2f ms per sweep (median of %d), %s\n", q8 ? "q4_q8b32" : "q4_i16", gs, layers,
           t[reps / 2], reps,
           edge_kernels_gemm_name(EDGE_KERNELS_AUTO, q8 ? EDGE_GEMM_OP_Q4_Q8B32 : EDGE_GEMM_OP_Q4_I16, 1));
    return 0;
}
