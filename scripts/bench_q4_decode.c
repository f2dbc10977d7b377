// One-thread decoding sweep of SmolLM2-135M's linear shapes (LAYERS x q, k, v, o, gate, up, down;
// one token) with asymmetric int4 weights in groups of GROUP: the q4 x int16 decoding product
// (edge_matmul_q4_i16, the default) or q4 x int8 blocks of 32 (edge_matmul_q4_q8b32, --activations q8),
// or the same two for q4k weights (k16: edge_matmul_q4k_i16, k8: edge_matmul_q4k_q8b32; scale and min
// codes of SUBBITS bits, default 6), the activations quantized per matrix as the runtime does. Every matrix its own memory: 30 layers
// (53 MB at g64) stream from memory as in decoding, 4 layers (7 MB) stay in the last-level cache and
// show the kernel's compute. Prints the median of REPS sweeps in milliseconds and the kernel's name.
// BENCH_LEVEL=avx2 in the environment forces the AVX2 kernels (else the best level this CPU runs).
// Usage (from the repository root):
//   cc -O2 -I Sources/EdgeKernels/include -I Sources/EdgeKernels scripts/bench_q4_decode.c
//      Sources/EdgeKernels/*.c -o bench_q4 -lm -lpthread && ./bench_q4 i16|q8|k16|k8 [LAYERS [GROUP [REPS [SUBBITS]]]]
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
    if (argc < 2 || (strcmp(argv[1], "i16") != 0 && strcmp(argv[1], "q8") != 0 && strcmp(argv[1], "k16") != 0 &&
                     strcmp(argv[1], "k8") != 0)) {
        fprintf(stderr, "usage: %s i16|q8|k16|k8 [LAYERS [GROUP [REPS [SUBBITS]]]]\n", argv[0]);
        return 2;
    }
    const char *lv = getenv("BENCH_LEVEL");
    if (lv && strcmp(lv, "avx2") == 0 && !edge_kernels_force(EDGE_KERNELS_AVX2)) {
        fprintf(stderr, "bench_q4: AVX2 not available\n");
        return 2;
    }
    int q8 = strcmp(argv[1], "q8") == 0 || strcmp(argv[1], "k8") == 0, k = argv[1][0] == 'k';
    size_t b = argc > 5 ? (size_t)atoi(argv[5]) : 6;
    int layers = argc > 2 ? atoi(argv[2]) : 30, reps = argc > 4 ? atoi(argv[4]) : 9;
    size_t gs = argc > 3 ? (size_t)atoi(argv[3]) : 64;
    if (layers < 1 || reps < 1 || !edge_q4_i16_supported(gs) || !edge_q4_q8_supported(gs) ||
        !edge_q4k_i16_supported(gs, b) || !edge_q4k_q8_supported(gs, b)) {
        fprintf(stderr, "bench_q4: LAYERS and REPS must be positive, GROUP one of 32, 64, 128, 256, SUBBITS 6 or 8\n");
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
        // q4: S = f16 scales, Z = zero points; q4k: Z = the sub-code rows, S = the per-row D and M.
        size_t zbytes = k ? rows * ((2 * b * G + 7) / 8) : rows * G, sn = k ? 2 * rows : rows * G;
        W[m] = malloc(rows * ((cols + 1) / 2));
        S[m] = malloc(sn * sizeof(uint16_t));
        Z[m] = malloc(zbytes);
        if (!W[m] || !S[m] || !Z[m]) return 1;
        for (size_t i = 0; i < rows * ((cols + 1) / 2); i++) W[m][i] = (uint8_t)rnd();
        for (size_t i = 0; i < sn; i++) S[m][i] = edge_f32_to_f16(k ? 0.001f : 0.01f);
        for (size_t i = 0; i < zbytes; i++) Z[m][i] = (uint8_t)(k ? rnd() : rnd() % 16);
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
                if (k) edge_matmul_q4k_q8b32(W[m], Z[m], S[m], gs, b, x8, xs, y, 1, rows, cols, 0, rows);
                else edge_matmul_q4_q8b32(W[m], S[m], Z[m], gs, x8, xs, y, 1, rows, cols, 0, rows);
            } else {
                edge_quantize_rows_i16(x, x16, xs, 1, cols);
                if (k) edge_matmul_q4k_i16(W[m], Z[m], S[m], gs, b, x16, xs, y, 1, rows, cols, 0, rows);
                else edge_matmul_q4_i16(W[m], S[m], Z[m], gs, x16, xs, y, 1, rows, cols, 0, rows);
            }
        }
        t[r] = (now() - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    int op = k ? (q8 ? EDGE_GEMM_OP_Q4K_Q8B32 : EDGE_GEMM_OP_Q4K_I16) : (q8 ? EDGE_GEMM_OP_Q4_Q8B32 : EDGE_GEMM_OP_Q4_I16);
    printf("%s g%zu%s, %d layers: %.2f ms per sweep (median of %d), %s\n",
           k ? (q8 ? "q4k_q8b32" : "q4k_i16") : (q8 ? "q4_q8b32" : "q4_i16"), gs, k ? (b == 8 ? " b8" : " b6") : "", layers,
           t[reps / 2], reps, edge_kernels_gemm_name(EDGE_KERNELS_AUTO, op, 1));
    return 0;
}
