// Instruction-level timings behind docs/performance.md, "Weights in huge pages; the sparse kernel's
// whole blocks" (AVX-512 VBMI2 + VNNI CPUs only): throughput of vpexpandb at three widths, vpermb and
// vpdpbusd; the zero-masking vpexpandb's wait on its destination register (with and without a vpxord
// of the register first); and the bitmask decoding kernel's two-row step as a stand-alone loop over
// L1-resident data (ns per row-step), with and without the expansion, and with two sets of
// accumulators (alternate steps) to show whether the sums' latency binds. One thread; nanoseconds, and
// cycles at the clock measured by a chain of dependent adds.
// Build and run (x86-64):  clang -O2 scripts/bench_vpexpandb.c -o bench_vpexpandb && ./bench_vpexpandb
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define T "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,popcnt"
#define N 100000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double ghz(void) {
    long x = 0;
    double t0 = now();
    for (long i = 0; i < 200000000L; i++) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    return 8e8 / (now() - t0) / 1e9;
}

#define CHAINS8(stmt, regs)                                                                                          \
    for (long i = 0; i < N; i++) {                                                                                   \
        for (int j = 0; j < 8; j++) stmt;                                                                            \
        __asm__ volatile("" : "+v"(regs[0]), "+v"(regs[1]), "+v"(regs[2]), "+v"(regs[3]), "+v"(regs[4]), "+v"(regs[5]), \
                         "+v"(regs[6]), "+v"(regs[7]));                                                              \
    }

enum { STEPS = 256 };
static uint64_t ma[STEPS], mb[STEPS];
static int8_t va0[STEPS * 32 + 64], vb0[STEPS * 32 + 64], xh[STEPS * 64];
static uint8_t xl[STEPS * 64];

__attribute__((target(T), noinline)) static __m512i two_rows(int expand) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i ala = _mm512_setzero_si512(), aha = ala, alb = ala, ahb = ala;
    const int8_t *va = va0, *vb = vb0;
    for (int k = 0; k < STEPS; k++) {
        uint64_t ba = ma[k], bb = mb[k];
        __m512i pl = _mm512_loadu_si512(xl + 64 * k), ph = _mm512_loadu_si512(xh + 64 * k);
        __m512i wa = _mm512_loadu_si512(va), wb = _mm512_loadu_si512(vb);
        if (expand) wa = _mm512_maskz_expand_epi8(ba, wa), wb = _mm512_maskz_expand_epi8(bb, wb);
        va += __builtin_popcountll(ba), vb += __builtin_popcountll(bb);
        ala = _mm512_dpbusd_epi32(ala, pl, wa);
        aha = _mm512_dpbusd_epi32(aha, _mm512_xor_si512(wa, flip), ph);
        alb = _mm512_dpbusd_epi32(alb, pl, wb);
        ahb = _mm512_dpbusd_epi32(ahb, _mm512_xor_si512(wb, flip), ph);
    }
    return _mm512_add_epi32(_mm512_add_epi32(ala, aha), _mm512_add_epi32(alb, ahb));
}

__attribute__((target(T), noinline)) static __m512i two_rows_2chains(void) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    const int8_t *va = va0, *vb = vb0;
    for (int k = 0; k < STEPS; k += 2) {
        for (int u = 0; u < 2; u++) {
            uint64_t ba = ma[k + u], bb = mb[k + u];
            __m512i pl = _mm512_loadu_si512(xl + 64 * (k + u)), ph = _mm512_loadu_si512(xh + 64 * (k + u));
            __m512i wa = _mm512_maskz_expand_epi8(ba, _mm512_loadu_si512(va)), wb = _mm512_maskz_expand_epi8(bb, _mm512_loadu_si512(vb));
            va += __builtin_popcountll(ba), vb += __builtin_popcountll(bb);
            if (u == 0) {
                a0 = _mm512_dpbusd_epi32(a0, pl, wa); a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(wa, flip), ph);
                a2 = _mm512_dpbusd_epi32(a2, pl, wb); a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(wb, flip), ph);
            } else {
                c0 = _mm512_dpbusd_epi32(c0, pl, wa); c1 = _mm512_dpbusd_epi32(c1, _mm512_xor_si512(wa, flip), ph);
                c2 = _mm512_dpbusd_epi32(c2, pl, wb); c3 = _mm512_dpbusd_epi32(c3, _mm512_xor_si512(wb, flip), ph);
            }
        }
    }
    return _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                            _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)));
}

__attribute__((target(T))) int main(void) {
    if (!__builtin_cpu_supports("avx512vbmi2") || !__builtin_cpu_supports("avx512vnni")) {
        fprintf(stderr, "bench_vpexpandb: needs AVX512_VBMI2 and AVX512_VNNI\n");
        return 2;
    }
    double f = ghz();
    printf("clock %.2f GHz (dependent adds)\n", f);
#define REPORT(name, t, per) printf("%-52s %.3f ns  %.2f cycles\n", name, (t) * 1e9 / (per), (t) * f * 1e9 / (per))
    __m512i z[8];
    __m256i y[8];
    __m128i x[8];
    for (int i = 0; i < 8; i++) z[i] = _mm512_set1_epi32(i), y[i] = _mm256_set1_epi32(i), x[i] = _mm_set1_epi32(i);
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5), idx = _mm512_set1_epi8(1);
    const __mmask64 m64 = 0x5555aaaa3333ccccULL;
    const __mmask32 m32 = 0x3333ccccU;
    const __mmask16 m16 = 0x3c3c;
    double t0 = now();
    CHAINS8(z[j] = _mm512_dpbusd_epi32(z[j], a, b), z);
    REPORT("vpdpbusd zmm, throughput", now() - t0, N * 8.0);
    t0 = now();
    CHAINS8(y[j] = _mm256_dpbusd_epi32(y[j], _mm512_castsi512_si256(a), _mm512_castsi512_si256(b)), y);
    REPORT("vpdpbusd ymm, throughput", now() - t0, N * 8.0);
    t0 = now();
    CHAINS8(z[j] = _mm512_maskz_expand_epi8(m64, z[j]), z);
    REPORT("vpexpandb zmm, throughput", now() - t0, N * 8.0);
    t0 = now();
    CHAINS8(y[j] = _mm256_maskz_expand_epi8(m32, y[j]), y);
    REPORT("vpexpandb ymm, throughput", now() - t0, N * 8.0);
    t0 = now();
    CHAINS8(x[j] = _mm_maskz_expand_epi8(m16, x[j]), x);
    REPORT("vpexpandb xmm, throughput", now() - t0, N * 8.0);
    t0 = now();
    CHAINS8(z[j] = _mm512_maskz_permutexvar_epi8(m64, idx, z[j]), z);
    REPORT("vpermb zmm, throughput", now() - t0, N * 8.0);

    // Independent expansions into one destination register: a wait on its old value shows as latency.
    __m512i src = a, s = _mm512_setzero_si512(), w;
    t0 = now();
    for (long i = 0; i < N; i++) {
        w = _mm512_maskz_expand_epi8(m64, src);
        s = _mm512_add_epi32(s, w);
        __asm__ volatile("" : "+v"(src));
    }
    REPORT("vpexpandb zmm{z}, independent, one register", now() - t0, (double)N);
    t0 = now();
    for (long i = 0; i < N; i++) {
        __asm__("vpxord %0, %0, %0\n\tvpexpandb %1, %0%{%2%}%{z%}" : "=&v"(w) : "v"(src), "Yk"(m64));
        s = _mm512_add_epi32(s, w);
        __asm__ volatile("" : "+v"(src));
    }
    REPORT("the same after a vpxord of the register", now() - t0, (double)N);

    srand(1);
    for (int i = 0; i < STEPS; i++) {
        uint64_t p = 0, q = 0;  // one of each two columns kept, as 50% pruning per row on average
        for (int j = 0; j < 64; j += 2) p |= 1ULL << (j + (rand() & 1)), q |= 1ULL << (j + (rand() & 1));
        ma[i] = p, mb[i] = q;
    }
    for (int i = 0; i < STEPS * 32 + 64; i++) va0[i] = (int8_t)rand(), vb0[i] = (int8_t)rand();
    for (int i = 0; i < STEPS * 64; i++) xl[i] = (uint8_t)rand(), xh[i] = (int8_t)rand();
    for (int e = 1; e >= 0; e--) {
        const int R = 200000;
        t0 = now();
        for (int r = 0; r < R; r++) {
            __asm__ volatile("" ::: "memory");
            s = _mm512_add_epi32(s, two_rows(e));
        }
        REPORT(e ? "two-row bitmask step, per row-step" : "the same step without the expansion", now() - t0, (double)R * STEPS * 2);
    }
    {
        const int R = 200000;
        t0 = now();
        for (int r = 0; r < R; r++) {
            __asm__ volatile("" ::: "memory");
            s = _mm512_add_epi32(s, two_rows_2chains());
        }
        REPORT("two-row step, two accumulator sets, per row-step", now() - t0, (double)R * STEPS * 2);
    }
    int sum = _mm512_reduce_add_epi32(s);
    for (int j = 0; j < 8; j++) sum += _mm512_reduce_add_epi32(z[j]) + _mm256_extract_epi32(y[j], 0) + _mm_extract_epi32(x[j], 0);
    return sum == 42;  // keeps the results alive
}
