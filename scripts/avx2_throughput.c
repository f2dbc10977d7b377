// Instruction throughput on this CPU, for decisions about kernels (docs/performance.md, "Issue 15's
// lines again on an AVX2-only Zen 3"): 8-lane f32 FMA against vpmaddwd + vpaddd (ten independent
// chains each, in inline assembly so the compiler cannot fold them), and vpgatherdd of 8 int32 from
// a 16 KB table (four gathers in flight). Rough figures: run it twice on an idle machine.
//
//   cc -O2 -mavx2 -mfma scripts/avx2_throughput.c -o /tmp/avx2_throughput && /tmp/avx2_throughput
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TEN(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9)
#define FMA(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define MADD(i, t) "vpmaddwd %%ymm14, %%ymm15, %%ymm" #t "\n\tvpaddd %%ymm" #t ", %%ymm" #i ", %%ymm" #i "\n\t"

int main(void) {
    const long n = 100000000;
    double t = now();
    for (long k = 0; k < n; k++)
        __asm__ volatile(TEN(FMA) ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9");
    double fma = now() - t;
    t = now();
    for (long k = 0; k < n; k++)
        __asm__ volatile(MADD(0, 10) MADD(1, 11) MADD(2, 12) MADD(3, 13) MADD(4, 10) MADD(5, 11) MADD(6, 12) MADD(7, 13)
                         MADD(8, 10) MADD(9, 11) ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                         "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13");
    double madd = now() - t;
    printf("vfmadd231ps ymm:        %.2f G/s = %.1f G f32 multiply-adds/s\n", n * 10 / fma / 1e9, n * 80 / fma / 1e9);
    printf("vpmaddwd + vpaddd ymm:  %.2f G/s = %.1f G int16 multiply-adds/s\n", n * 10 / madd / 1e9, n * 160 / madd / 1e9);

    static int32_t table[4096];
    for (int i = 0; i < 4096; i++) table[i] = i * 3 + 1;
    const long g = 50000000;
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    __m256i idx = _mm256_setr_epi32(0, 7, 13, 19, 26, 31, 38, 44);
    const __m256i step = _mm256_set1_epi32(48), wrap = _mm256_set1_epi32(4095);
    t = now();
    for (long k = 0; k < g; k++)
        for (int i = 0; i < 4; i++) {
            __m256i v = _mm256_i32gather_epi32(table, idx, 4);
            acc[i] = _mm256_add_epi32(acc[i], v);
            idx = _mm256_and_si256(_mm256_add_epi32(idx, step), wrap);
        }
    double gather = now() - t;
    int32_t sum = 0;
    for (int i = 0; i < 4; i++) sum += _mm256_extract_epi32(acc[i], 0);
    printf("vpgatherdd ymm:         %.2f ns each (%d)\n", gather / (g * 4) * 1e9, sum);
    return 0;
}
