// EdgeKernels: the numeric kernels shared by the runtime and the compressor.
// Every kernel has a scalar reference (`*_ref`); SIMD variants are reached through
// dispatch tables filled from CPU features detected at run time.
#ifndef EDGE_KERNELS_H
#define EDGE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- Number conversions (IEEE binary16 and bfloat16 <-> binary32) -------------------------
/// binary16 bits -> float (exact; handles subnormals, Inf, NaN).
float edge_f16_to_f32(uint16_t h);
/// float -> binary16 bits, round to nearest even; overflow gives Inf, NaN stays NaN.
uint16_t edge_f32_to_f16(float f);
/// bfloat16 bits -> float (exact).
float edge_bf16_to_f32(uint16_t h);
/// float -> bfloat16 bits, round to nearest even; NaN stays NaN.
uint16_t edge_f32_to_bf16(float f);

/// Row conversions; `src` may be unaligned (bytes read little-endian).
void edge_f16_to_f32_row(const void *src, float *dst, size_t n);
void edge_bf16_to_f32_row(const void *src, float *dst, size_t n);
void edge_f32_to_f16_row(const float *src, void *dst, size_t n);
void edge_f32_to_bf16_row(const float *src, void *dst, size_t n);

/// Hands the heap's free pages back to the system (glibc's malloc_trim; a no-op with other C
/// libraries). The runtime calls it once the tokenizer is parsed: the parse peaks at about 17 MB of
/// heap for a 49152-token BPE vocabulary and frees about 9 MB of it, which would otherwise stay
/// resident beside the weights.
void edge_heap_trim(void);

/// Counts the values of `x` that are NaN or +-Inf; writes the index of the first to `first` (or n).
size_t edge_count_nonfinite(const float *x, size_t n, size_t *first);
/// Counts the values of `x` that are not zero (+0 and -0 are zero; NaN is not).
size_t edge_count_nonzero(const float *x, size_t n);

// ---- SHA-256 (FIPS 180-4), for provenance ---------------------------------------------------
typedef struct {
    uint32_t state[8];
    uint64_t bitlen;
    uint8_t buffer[64];
    size_t buflen;
} edge_sha256_ctx;

void edge_sha256_init(edge_sha256_ctx *ctx);
void edge_sha256_update(edge_sha256_ctx *ctx, const void *data, size_t len);
void edge_sha256_final(edge_sha256_ctx *ctx, uint8_t out[32]);
/// Whether this CPU has the x86 SHA extensions the block function can run on.
bool edge_sha256_accelerated_available(void);
/// Makes every later hash use the SHA extensions (true) or the scalar code (false); the default is
/// the extensions where the CPU has them. Returns false, changing nothing, for true without them.
/// The two give the same digests (tests compare them); a switch for tests and benchmarks.
bool edge_sha256_use_accelerated(bool on);

#ifdef __cplusplus
}
#endif

// ---- Matrix products, norms, softmax, RoPE, activations (dispatched SIMD) -------------------
#include "EdgeKernelsMath.h"

// ---- Sparse (csr / bitmask) matrix products (dispatched SIMD) -------------------------------
#include "EdgeKernelsSparse.h"

// ---- Persistent worker threads for the parallel loops ------------------------------------------
#include "EdgeKernelsPool.h"

#endif
