// Run-time dispatch: one table per SIMD level, built once from the CPU's features (and the OS's
// support for the wider register state), the active one chosen at first use and switchable with
// edge_kernels_force. Every public `edge_X` forwards through the active table.
#include "dispatch.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

/// XCR0 (which register state the OS saves on context switches); 0 when OSXSAVE is off.
static uint64_t read_xcr0(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static bool cpu_has_avx2(void) {
    __builtin_cpu_init();
    uint64_t xcr0 = read_xcr0();
    bool ymm_state = (xcr0 & 0x6) == 0x6;  // SSE + AVX state
    return ymm_state && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt");
}

#if defined(EDGE_AVX512_EMULATED)
// Test builds only (scripts/test-avx512-emulated.sh): avx512.c is compiled against SIMDe's portable
// AVX-512, so the level runs on any AVX2 CPU; EDGE_EMULATE_VNNI=1 picks its VNNI int8 kernel.
static bool cpu_has_avx512(void) { return cpu_has_avx2(); }
static bool cpu_has_avx512_vnni(void) {
    const char *e = getenv("EDGE_EMULATE_VNNI");
    return cpu_has_avx512() && e && strcmp(e, "1") == 0;
}
static bool cpu_has_avx512_vbmi2(void) { return cpu_has_avx512(); }
static bool cpu_has_avx512_bf16(void) { return cpu_has_avx512(); }
#else
static bool cpu_has_avx512(void) {
    uint64_t xcr0 = read_xcr0();
    bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // SSE, AVX, opmask, ZMM0-15 upper halves, ZMM16-31
    return cpu_has_avx2() && zmm_state && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

static bool cpu_has_avx512_vnni(void) { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }
static bool cpu_has_avx512_vbmi2(void) { return cpu_has_avx512() && __builtin_cpu_supports("avx512vbmi2"); }
static bool cpu_has_avx512_bf16(void) { return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16"); }
#endif
#endif

/// Tables by level (index = edge_kernel_level), filled once; `available[i]` says whether this CPU runs table i.
static edge_kernel_table g_tables[5];
static bool g_available[5];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/// The AVX-512 level with its AVX-512BW integer kernels, on a VNNI CPU only (edge_kernels_set_vnni).
static edge_kernel_table g_avx512_bw;
static bool g_avx512_bw_filled;
static _Atomic(const edge_kernel_table *) g_active;
/// Whether edge_matmul_bf16 may use vdpbf16ps where the level has it (edge_kernels_set_bf16_native).
static atomic_bool g_bf16_native = true;
/// The GEMM mode (edge_gemm_mode): EDGE_GEMM_AUTO until edge_kernels_set_gemm_mode changes it.
static _Atomic int g_gemm_mode = EDGE_GEMM_AUTO;

static edge_kernel_level best_level(void) {
    for (int l = EDGE_KERNELS_NEON; l > EDGE_KERNELS_REF; l--)
        if (g_available[l]) return (edge_kernel_level)l;
    return EDGE_KERNELS_REF;
}

/// The automatic choice: the best available level. No environment variable changes it (choices
/// that change results are explicit: edge_kernels_force, the tools' --kernels option).
static edge_kernel_level auto_level(void) { return best_level(); }

static void build_tables(void) {
    edge_fill_table_ref(&g_tables[EDGE_KERNELS_REF]);
    edge_fill_table_sparse_ref(&g_tables[EDGE_KERNELS_REF]);
    g_available[EDGE_KERNELS_REF] = true;
#if defined(__x86_64__)
    if (cpu_has_avx2()) {
        g_tables[EDGE_KERNELS_AVX2] = g_tables[EDGE_KERNELS_REF];
        edge_fill_table_avx2(&g_tables[EDGE_KERNELS_AVX2]);
        edge_fill_table_sparse_avx2(&g_tables[EDGE_KERNELS_AVX2]);
        g_available[EDGE_KERNELS_AVX2] = true;
        if (cpu_has_avx512()) {
            g_tables[EDGE_KERNELS_AVX512] = g_tables[EDGE_KERNELS_AVX2];
            edge_fill_table_avx512(&g_tables[EDGE_KERNELS_AVX512], cpu_has_avx512_vnni());
            edge_fill_table_sparse_avx512(&g_tables[EDGE_KERNELS_AVX512], cpu_has_avx512_vbmi2());
            if (cpu_has_avx512_bf16()) edge_fill_table_bf16_avx512(&g_tables[EDGE_KERNELS_AVX512]);
            g_available[EDGE_KERNELS_AVX512] = true;
            if (g_tables[EDGE_KERNELS_AVX512].vnni) {
                g_avx512_bw = g_tables[EDGE_KERNELS_AVX2];
                edge_fill_table_avx512(&g_avx512_bw, false);
                edge_fill_table_sparse_avx512(&g_avx512_bw, cpu_has_avx512_vbmi2());
                if (cpu_has_avx512_bf16()) edge_fill_table_bf16_avx512(&g_avx512_bw);
                g_avx512_bw_filled = true;
            }
        }
    }
#endif
#if defined(__aarch64__)
    g_tables[EDGE_KERNELS_NEON] = g_tables[EDGE_KERNELS_REF];
    edge_fill_table_neon(&g_tables[EDGE_KERNELS_NEON]);
    g_available[EDGE_KERNELS_NEON] = true;
#endif
    atomic_store_explicit(&g_active, &g_tables[auto_level()], memory_order_release);
}

static inline const edge_kernel_table *table(void) {
    const edge_kernel_table *t = atomic_load_explicit(&g_active, memory_order_acquire);
    if (t) return t;
    pthread_once(&g_once, build_tables);
    return atomic_load_explicit(&g_active, memory_order_acquire);
}

bool edge_kernels_available(edge_kernel_level level) {
    pthread_once(&g_once, build_tables);
    if (level == EDGE_KERNELS_AUTO) return true;
    if ((int)level < EDGE_KERNELS_REF || (int)level > EDGE_KERNELS_NEON) return false;
    return g_available[level];
}

bool edge_kernels_force(edge_kernel_level level) {
    if (!edge_kernels_available(level)) return false;
    if (level == EDGE_KERNELS_AUTO) level = auto_level();
    atomic_store_explicit(&g_active, &g_tables[level], memory_order_release);
    return true;
}

edge_kernel_level edge_kernels_level(void) { return table()->level; }

bool edge_kernels_uses_vnni(void) { return table()->vnni; }

bool edge_kernels_set_vnni(bool vnni) {
    const edge_kernel_table *t = table();
    if (t->level != EDGE_KERNELS_AVX512) return false;
    if (vnni && !g_tables[EDGE_KERNELS_AVX512].vnni) return false;
    const edge_kernel_table *want = vnni || !g_avx512_bw_filled ? &g_tables[EDGE_KERNELS_AVX512] : &g_avx512_bw;
    atomic_store_explicit(&g_active, want, memory_order_release);
    return true;
}

const char *edge_kernels_level_name(edge_kernel_level level) {
    switch (level) {
    case EDGE_KERNELS_AUTO: return "auto";
    case EDGE_KERNELS_REF: return "ref";
    case EDGE_KERNELS_AVX2: return "avx2";
    case EDGE_KERNELS_AVX512: return "avx512";
    case EDGE_KERNELS_NEON: return "neon";
    }
    return "?";
}

bool edge_kernels_set_gemm_mode(edge_gemm_mode mode) {
    if (mode != EDGE_GEMM_AUTO && mode != EDGE_GEMM_DOT) return false;
    atomic_store_explicit(&g_gemm_mode, mode, memory_order_relaxed);
    return true;
}

edge_gemm_mode edge_kernels_gemm_mode(void) {
    pthread_once(&g_once, build_tables);
    return (edge_gemm_mode)atomic_load_explicit(&g_gemm_mode, memory_order_relaxed);
}

const char *edge_gemm_mode_name(edge_gemm_mode mode) {
    switch (mode) {
    case EDGE_GEMM_AUTO: return "auto";
    case EDGE_GEMM_DOT: return "dot";
    }
    return "?";
}

const char *edge_kernels_gemm_name(edge_kernel_level level, edge_gemm_op op, size_t T) {
    if (!edge_kernels_available(level)) return NULL;
    // The active level's table may be its AVX-512BW variant (edge_kernels_set_vnni).
    const edge_kernel_table *t = level == EDGE_KERNELS_AUTO || level == table()->level ? table() : &g_tables[level];
    switch (op) {
    case EDGE_GEMM_OP_F32:
    case EDGE_GEMM_OP_F16:
    case EDGE_GEMM_OP_Q8_F32:
    case EDGE_GEMM_OP_Q4_F32:
    case EDGE_GEMM_OP_Q3_F32:
    case EDGE_GEMM_OP_Q3S_F32:
    case EDGE_GEMM_OP_Q4K_F32:
        if (!t->gemm) return "ref";
        if (T == 1 && t->gemm->matvec && op != EDGE_GEMM_OP_Q3_F32 && op != EDGE_GEMM_OP_Q3S_F32 && op != EDGE_GEMM_OP_Q4K_F32)
            return t->gemm->matvec_name;  // q3, q3s and q4k have no fused kernel: the dot path
        return edge_gemm_uses_packed(t->gemm, edge_kernels_gemm_mode(), T) ? t->gemm->packed_name : t->gemm->dot_name;
    case EDGE_GEMM_OP_Q8_Q8: return t->q8_q8_name;
    case EDGE_GEMM_OP_Q8_Q8B32: return t->q8_q8b32_name;
    case EDGE_GEMM_OP_Q8_I16: return t->q8_i16_rows_name && T <= t->i16_rows_max_t ? t->q8_i16_rows_name : t->q8_i16_name;
    case EDGE_GEMM_OP_Q4_I16:
        if (T > 1 && t->q4_i16_multi_name) return t->q4_i16_multi_name;
        return t->q4_i16_name ? t->q4_i16_name : "ref";
    case EDGE_GEMM_OP_Q4_Q8B32: return t->q4_q8b32_name ? t->q4_q8b32_name : "ref";
    case EDGE_GEMM_OP_Q4_I16_GEMM: return t->gemm_q4_i16_name ? t->gemm_q4_i16_name : "ref";
    case EDGE_GEMM_OP_Q4K_I16:
        if (T > 1 && t->q4k_i16_multi_name) return t->q4k_i16_multi_name;
        return t->q4k_i16_name ? t->q4k_i16_name : "ref";
    case EDGE_GEMM_OP_Q4K_I16_GEMM: return t->gemm_q4k_i16_name ? t->gemm_q4k_i16_name : "ref";
    case EDGE_GEMM_OP_Q4K_Q8B32: return t->q4k_q8b32_name ? t->q4k_q8b32_name : "ref";
    }
    return NULL;
}

// ---- Forwarders -----------------------------------------------------------------------------

/// The shared GEMM driver with the level's micro-kernels, in the mode in force at the call.
static inline void driver_gemm(const edge_kernel_table *t, edge_wsource s, const float *X, float *Y, size_t T,
                               size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_gemm_mode mode = (edge_gemm_mode)atomic_load_explicit(&g_gemm_mode, memory_order_relaxed);
    edge_gemm(t->gemm, mode, &s, X, Y, T, rows, cols, r0, r1);
}

void edge_matvec_f32(const float *W, const float *x, float *y, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_matmul_f32(W, x, y, 1, rows, cols, r0, r1);
}
void edge_matmul_f32(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (t->gemm) driver_gemm(t, edge_wsource_f32(W), X, Y, T, rows, cols, r0, r1);
    else t->matmul_f32(W, X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_f32_wt(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (t->gemm) driver_gemm(t, edge_wsource_f32t(Wt, rows), X, Y, T, rows, cols, r0, r1);
    else t->matmul_f32_wt(Wt, X, Y, T, rows, cols, r0, r1);
}
/// edge_matmul_bf16 / _wt on an f32 or f32t source: vdpbf16ps, else the level's f32 packed tile on rounded
/// operands, else the reference (the two drivers take T, cols and the row range non-empty).
static void matmul_bf16(edge_wsource s, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    if (cols == 0) {  // every form's empty sum
        for (size_t t = 0; t < T; t++) memset(Y + t * rows + r0, 0, (r1 - r0) * sizeof(float));
        return;
    }
    const edge_kernel_table *t = table();
    if (t->matmul_bf16_native && atomic_load_explicit(&g_bf16_native, memory_order_relaxed))
        t->matmul_bf16_native(&s, X, Y, T, rows, cols, r0, r1);
    else if (t->gemm && t->gemm->packed_tile) edge_gemm_bf16(t->gemm, &s, X, Y, T, rows, cols, r0, r1);
    else if (s.kind == EDGE_W_F32T) edge_matmul_bf16_wt_ref((const float *)s.W, X, Y, T, rows, cols, r0, r1);
    else edge_matmul_bf16_ref((const float *)s.W, X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_bf16(const float *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    matmul_bf16(edge_wsource_f32(W), X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_bf16_wt(const float *Wt, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    matmul_bf16(edge_wsource_f32t(Wt, rows), X, Y, T, rows, cols, r0, r1);
}
bool edge_kernels_set_bf16_native(bool on) {
    if (on && !table()->matmul_bf16_native) return false;
    atomic_store_explicit(&g_bf16_native, on, memory_order_relaxed);
    return true;
}
const char *edge_kernels_bf16_name(void) {
    const edge_kernel_table *t = table();
    if (t->matmul_bf16_native && atomic_load_explicit(&g_bf16_native, memory_order_relaxed)) return "avx512-bf16-packed-12x32";
    if (t->gemm && t->gemm->packed_tile) return t->gemm->packed_name;
    return "ref";
}
void edge_transpose_f32(const float *src, float *dst, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->transpose_f32(src, dst, rows, cols, r0, r1);
}
void edge_matmul_f16(const uint16_t *W, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (t->gemm) driver_gemm(t, edge_wsource_f16(W), X, Y, T, rows, cols, r0, r1);
    else t->matmul_f16(W, X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q8_f32(const int8_t *Wq, const float *scale, const uint8_t *zero, const float *X, float *Y,
                        size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (t->gemm) driver_gemm(t, edge_wsource_q8(Wq, scale, zero), X, Y, T, rows, cols, r0, r1);
    else t->matmul_q8_f32(Wq, scale, zero, X, Y, T, rows, cols, r0, r1);
}
void edge_quantize_row_q8(const float *x, int8_t *xq, float *xscale, size_t n) {
    table()->quantize_row_q8(x, xq, xscale, n);
}
void edge_matmul_q8_q8(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                       size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->matmul_q8_q8(Wq, wscale, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_quantize_row_q8_b32(const float *x, int8_t *xq, float *xscale, size_t n) {
    table()->quantize_row_q8_b32(x, xq, xscale, n);
}
void edge_matmul_q8_q8b32(const int8_t *Wq, const float *wscale, const int8_t *Xq, const float *xscale, float *Y,
                          size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->matmul_q8_q8b32(Wq, wscale, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_quantize_rows_i16(const float *X, int16_t *Xq, float *xscale, size_t T, size_t cols) {
    table()->quantize_rows_i16(X, Xq, xscale, T, cols);
}

void edge_minmax(const float *x, size_t n, float *lo, float *hi) { table()->minmax(x, n, lo, hi); }

void edge_round_to_grid(float *x, size_t n, float scale, float zero, float qmin, float qmax, int offset,
                        uint8_t *stored, double *sums) {
    table()->round_to_grid(x, n, scale, zero, qmin, qmax, offset, stored, sums);
}
void edge_matmul_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                        size_t r0, size_t r1) {
    table()->matmul_q4_i16(Wq, scale_f16, zero, group_size, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q8_i16(const int8_t *Wq, const float *wscale, const int16_t *Xq, const float *xscale, float *Y,
                        size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->matmul_q8_i16(Wq, wscale, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_gemm_q4_i16(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                      const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                      size_t r0, size_t r1) {
    table()->gemm_q4_i16(Wq, scale_f16, zero, group_size, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q4_q8b32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                          const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                          size_t r0, size_t r1) {
    table()->matmul_q4_q8b32(Wq, scale_f16, zero, group_size, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q4_f32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (!t->gemm) t->matmul_q4_f32(Wq, scale_f16, zero, group_size, X, Y, T, rows, cols, r0, r1);
    else if (group_size > 0) driver_gemm(t, edge_wsource_q4(Wq, scale_f16, zero, group_size, cols), X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q3_f32(const uint8_t *Wq, const uint16_t *scale_f16, const uint8_t *zero, size_t group_size,
                        const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (!t->gemm) t->matmul_q3_f32(Wq, scale_f16, zero, group_size, X, Y, T, rows, cols, r0, r1);
    else if (group_size > 0 && group_size % 8 == 0)
        driver_gemm(t, edge_wsource_q3(Wq, scale_f16, zero, group_size, cols), X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q3s_f32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                         size_t r1) {
    const edge_kernel_table *t = table();
    if (!t->gemm) t->matmul_q3s_f32(Wq, sub, super_f16, group_size, sub_bits, X, Y, T, rows, cols, r0, r1);
    else if (edge_q3s_params_ok(group_size, sub_bits))
        driver_gemm(t, edge_wsource_q3s(Wq, sub, super_f16, group_size, sub_bits, cols), X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q4k_f32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0,
                         size_t r1) {
    const edge_kernel_table *t = table();
    if (!t->gemm) t->matmul_q4k_f32(Wq, sub, super_f16, group_size, sub_bits, X, Y, T, rows, cols, r0, r1);
    else if (edge_q4k_params_ok(group_size, sub_bits))
        driver_gemm(t, edge_wsource_q4k(Wq, sub, super_f16, group_size, sub_bits, cols), X, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                         size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                         size_t cols, size_t r0, size_t r1) {
    table()->matmul_q4k_i16(Wq, sub, super_f16, group_size, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_gemm_q4k_i16(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                       size_t sub_bits, const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                       size_t cols, size_t r0, size_t r1) {
    table()->gemm_q4k_i16(Wq, sub, super_f16, group_size, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_matmul_q4k_q8b32(const uint8_t *Wq, const uint8_t *sub, const uint16_t *super_f16, size_t group_size,
                           size_t sub_bits, const int8_t *Xq, const float *xscale, float *Y, size_t T, size_t rows,
                           size_t cols, size_t r0, size_t r1) {
    table()->matmul_q4k_q8b32(Wq, sub, super_f16, group_size, sub_bits, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_rmsnorm(const float *x, const float *w, float *out, size_t n, float eps) { table()->rmsnorm(x, w, out, n, eps); }
void edge_layernorm(const float *x, const float *w, const float *b, float *out, size_t n, float eps) {
    table()->layernorm(x, w, b, out, n, eps);
}
void edge_softmax(float *x, size_t n) { table()->softmax(x, n); }
void edge_rope(float *q, size_t head_dim, size_t n_heads, size_t pos, float theta) {
    edge_rope_ref(q, head_dim, n_heads, pos, theta);  // O(head_dim) trig per head and token: not worth SIMD
}
void edge_gelu_tanh(float *x, size_t n) { table()->gelu_tanh(x, n); }
void edge_silu_mul(const float *gate, const float *up, float *out, size_t n) { table()->silu_mul(gate, up, out, n); }
void edge_add(float *a, const float *b, size_t n) { table()->add(a, b, n); }
void edge_axpy(float *y, float a, const float *x, size_t n) { table()->axpy(y, a, x, n); }
void edge_vecmat_f32(const float *x, const float *V, size_t ldv, float *y, size_t n, size_t d) {
    table()->vecmat_f32(x, V, ldv, y, n, d);
}
void edge_vecmat_f16(const float *x, const uint16_t *V, size_t ldv, float *y, size_t n, size_t d) {
    table()->vecmat_f16(x, V, ldv, y, n, d);
}
void edge_f16_widen(const uint16_t *src, float *dst, size_t n) { table()->f16_widen(src, dst, n); }
void edge_f16_narrow(const float *src, uint16_t *dst, size_t n) { table()->f16_narrow(src, dst, n); }
void edge_scale(float *x, float s, size_t n) { table()->scale(x, s, n); }
float edge_dot_f32(const float *a, const float *b, size_t n) { return table()->dot_f32(a, b, n); }

// ---- Sparse forwarders (EdgeKernelsSparse.h) --------------------------------------------------

void edge_spmm_bitmask_q8_f32(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                              const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1) {
    table()->spmm_bitmask(EDGE_SPARSE_Q8, mask, row_ptr, values, scale, zero, X, Y, T, rows, cols, r0, r1);
}
/// Many tokens (prompt processing): a sparse q8 payload's rows expanded to dense int8, up to
/// SPARSE_TILE_ROWS at a time, through the level's dense q8 x int16 product (the packed GEMM): the
/// same exact integer sums, so bit-identical to the row kernels and the references. The scalar
/// reference level, and fewer than SPARSE_DENSE_MIN_T tokens, keep the row-streaming kernels.
/// SPARSE_TILE_ROWS is the GEMM's own block of rows (PRB, 128): a tile of a thread's whole share (up to
/// 768 x 576 bytes in SmolLM2) filled most of a Zen 4 core's 1 MB L2, which the GEMM needs for a block
/// of activations; 2:4 prompt processing went from 1.00x to 1.03x the dense file's (medians of 15
/// rounds, docs/performance.md), at the cost of reading the activations once per 128 rows.
enum { SPARSE_DENSE_MIN_T = 5, SPARSE_TILE_ROWS = 128 };

/// Scratch bytes nm24_expand_tile needs for up to m rows of `cols` columns: m + 1 row starts, then
/// the rows' mask bytes.
static size_t nm24_scratch_bytes(size_t m, size_t cols) { return sizeof(uint32_t) * (m + 1) + m * (cols / 8); }

/// Rows r0..r0+m of a packed 2:4 payload of q8 values expanded to dense int8 rows `w` [m, cols] by the
/// level's bitmask expansion: with cols a multiple of 8 a row's index bytes are its mask bytes, one
/// each (edge_nm24_nibble_bits), and its values start at r * slots. `scratch` (malloc-aligned, at
/// least nm24_scratch_bytes(m, cols)) holds the row starts and mask bytes. Other widths, or no
/// scratch: the scalar expansion.
static void nm24_expand_tile(const edge_kernel_table *t, const uint8_t *idx, const int8_t *values, size_t cols, size_t r0,
                             size_t m, void *scratch, int8_t *w) {
    if (cols % 8 != 0 || !scratch) {
        edge_nm24_expand_q8(idx, values, cols, r0, r0 + m, w);
        return;
    }
    uint32_t *rp = (uint32_t *)scratch;
    uint8_t *mb = (uint8_t *)(rp + m + 1);
    size_t bytes = m * (cols / 8), slots = edge_nm24_slots(cols);
    const uint8_t *id = idx + r0 * (cols / 8);  // ceil(slots * 2 / 8) = cols / 8 index bytes per row
    for (size_t i = 0; i < bytes; i++)
        mb[i] = (uint8_t)(edge_nm24_nibble_bits[id[i] & 15] | edge_nm24_nibble_bits[id[i] >> 4] << 4);
    for (size_t i = 0; i <= m; i++) rp[i] = (uint32_t)(i * slots);
    t->bitmask_expand_q8(mb, rp, values + r0 * slots, cols, 0, m, w);
}

static bool sparse_dense_tiles(const edge_kernel_table *t, const uint8_t *mask, const uint32_t *row_ptr, const uint8_t *idx,
                               const int8_t *values, const float *scale, const int16_t *Xq, const float *xscale, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T < SPARSE_DENSE_MIN_T || t->level == EDGE_KERNELS_REF || r0 >= r1 || cols == 0) return false;
    size_t n = r1 - r0 < SPARSE_TILE_ROWS ? r1 - r0 : SPARSE_TILE_ROWS;
    int8_t *w = malloc(n * cols);
    if (!w) return false;
    void *scratch = !mask && cols % 8 == 0 ? malloc(nm24_scratch_bytes(n, cols)) : NULL;  // 2:4 tiles only
    for (size_t r = r0; r < r1; r += n) {
        size_t m = r1 - r < n ? r1 - r : n;
        if (mask) t->bitmask_expand_q8(mask, row_ptr, values, cols, r, r + m, w);
        else nm24_expand_tile(t, idx, values, cols, r, m, scratch, w);
        // Rows 0..m of the tile are rows r..r+m: Y and the scales start at row r, Y keeps its stride.
        t->matmul_q8_i16(w, scale + r, Xq, xscale, Y + r, T, rows, cols, 0, m);
    }
    free(scratch);
    free(w);
    return true;
}

void edge_spmm_nm24_q8_i16(const uint8_t *idx, const int8_t *values, const float *scale, const int16_t *Xq,
                           const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (sparse_dense_tiles(t, NULL, NULL, idx, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1)) return;
    t->spmm_nm24_q8_i16(idx, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1);
}

const char *edge_kernels_bitmask_q8_i16_name(void) { return table()->bitmask_q8_i16_name; }
bool edge_kernels_sparse_decode_fast(void) { return strncmp(table()->bitmask_q8_i16_name, "avx512", 6) == 0; }
void edge_bitmask_q8_to_dense(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t rows, size_t cols,
                              int8_t *out) {
    if (rows > 0 && cols > 0) table()->bitmask_expand_q8(mask, row_ptr, values, cols, 0, rows, out);
}
void edge_nm24_q8_to_dense(const uint8_t *idx, const int8_t *values, size_t rows, size_t cols, int8_t *out) {
    if (rows == 0 || cols == 0) return;
    void *scratch = cols % 8 == 0 ? malloc(nm24_scratch_bytes(rows, cols)) : NULL;
    nm24_expand_tile(table(), idx, values, cols, 0, rows, scratch, out);
    free(scratch);
}

void edge_spmm_bitmask_q8_i16(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                              const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                              size_t r0, size_t r1) {
    const edge_kernel_table *t = table();
    if (sparse_dense_tiles(t, mask, row_ptr, NULL, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1)) return;
    t->spmm_bitmask_q8_i16(mask, row_ptr, values, scale, Xq, xscale, Y, T, rows, cols, r0, r1);
}
void edge_spmm_bitmask_f16(const uint8_t *mask, const uint32_t *row_ptr, const uint16_t *values, const float *X, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_bitmask(EDGE_SPARSE_F16, mask, row_ptr, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_bitmask_f32(const uint8_t *mask, const uint32_t *row_ptr, const float *values, const float *X, float *Y,
                           size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_bitmask(EDGE_SPARSE_F32, mask, row_ptr, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_q8_f32(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const int8_t *values,
                          const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                          size_t cols, size_t r0, size_t r1) {
    table()->spmm_csr(EDGE_SPARSE_Q8, row_ptr, col_idx, index_width, values, scale, zero, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_f16(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const uint16_t *values,
                       const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_csr(EDGE_SPARSE_F16, row_ptr, col_idx, index_width, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_f32(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const float *values,
                       const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_csr(EDGE_SPARSE_F32, row_ptr, col_idx, index_width, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_nm_q8_f32(const uint8_t *idx, const int8_t *values, const float *scale, const uint8_t *zero, size_t n, size_t m,
                         const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_nm(EDGE_SPARSE_Q8, idx, values, scale, zero, n, m, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_nm_f16(const uint8_t *idx, const uint16_t *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                      size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_nm(EDGE_SPARSE_F16, idx, values, NULL, NULL, n, m, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_nm_f32(const uint8_t *idx, const float *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                      size_t rows, size_t cols, size_t r0, size_t r1) {
    table()->spmm_nm(EDGE_SPARSE_F32, idx, values, NULL, NULL, n, m, X, Y, T, rows, cols, r0, r1);
}
