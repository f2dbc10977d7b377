// Scalar reference kernels for the sparse payloads (EdgeKernelsSparse.h): the oracle the SIMD
// variants are tested against. Each output is a sum over the stored elements (nm: slots) of the row
// only, in column order, of (w * x) with w decoded exactly as the dense reference kernels decode it.
#include "dispatch.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/// Stored value k decoded to float; q8 uses the row's scale s and zero point z (z < 0: symmetric).
static inline float sparse_value(edge_sparse_kind kind, const void *values, size_t k, float s, int z) {
    switch (kind) {
    case EDGE_SPARSE_F32: return ((const float *)values)[k];
    case EDGE_SPARSE_F16: return edge_f16_to_f32(((const uint16_t *)values)[k]);
    case EDGE_SPARSE_Q8:
        if (z < 0) return s * (float)((const int8_t *)values)[k];
        return s * (float)((int)((const uint8_t *)values)[k] - z);
    }
    return 0.0f;
}

// mask is (rows, ceil(cols/8)), row_ptr (rows+1), values (nnz), X (T, cols), Y (T, rows)
void edge_spmm_bitmask_any_ref(edge_sparse_kind kind, const uint8_t *mask, const uint32_t *row_ptr, const void *values,
                               const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                               size_t cols, size_t r0, size_t r1) {
    size_t mb = (cols + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            float s = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
            int z = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
            const uint8_t *m = mask + r * mb;
            size_t k = row_ptr[r];
            float acc = 0.0f;
            for (size_t j = 0; j < cols; j++) {
                if (m[j >> 3] & (1u << (j & 7))) acc += sparse_value(kind, values, k++, s, z) * x[j];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// row_ptr (rows+1), col_idx (nnz u8 gaps or u16 columns), values (nnz), X (T, cols), Y (T, rows)
void edge_spmm_csr_any_ref(edge_sparse_kind kind, const uint32_t *row_ptr, const void *col_idx, size_t index_width,
                           const void *values, const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T,
                           size_t rows, size_t cols, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            float s = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
            int z = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
            float acc = 0.0f;
            size_t c = (size_t)-1;
            for (size_t k = row_ptr[r]; k < row_ptr[r + 1]; k++) {
                if (index_width == 8) c += (size_t)((const uint8_t *)col_idx)[k] + 1;
                else c = ((const uint16_t *)col_idx)[k];
                acc += sparse_value(kind, values, k, s, z) * x[c];
            }
            Y[t * rows + r] = acc;
        }
    }
}

// idx (rows, ceil(slots*bits/8)), values (rows, slots), X (T, cols), Y (T, rows); slots and bits as in EdgeKernelsSparse.h
void edge_spmm_nm_any_ref(edge_sparse_kind kind, const uint8_t *idx, const void *values, const float *scale, const uint8_t *zero,
                          size_t n, size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    unsigned bits = edge_nm_bits(m);
    size_t slots = edge_nm_slots(n, m, cols), row_bytes = (slots * bits + 7) / 8;
    for (size_t t = 0; t < T; t++) {
        const float *x = X + t * cols;
        for (size_t r = r0; r < r1; r++) {
            float s = kind == EDGE_SPARSE_Q8 ? scale[r] : 1.0f;
            int z = kind == EDGE_SPARSE_Q8 && zero ? (int)zero[r] : -1;
            const uint8_t *row = idx + r * row_bytes;
            float acc = 0.0f;
            for (size_t k = 0; k < slots; k++) {
                size_t c = (k / n) * m + edge_nm_index(row, k, bits);
                acc += sparse_value(kind, values, r * slots + k, s, z) * x[c];
            }
            Y[t * rows + r] = acc;
        }
    }
}

void edge_spmm_bitmask_q8_f32_ref(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                  const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows, size_t cols,
                                  size_t r0, size_t r1) {
    edge_spmm_bitmask_any_ref(EDGE_SPARSE_Q8, mask, row_ptr, values, scale, zero, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_bitmask_f16_ref(const uint8_t *mask, const uint32_t *row_ptr, const uint16_t *values, const float *X, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_bitmask_any_ref(EDGE_SPARSE_F16, mask, row_ptr, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_bitmask_f32_ref(const uint8_t *mask, const uint32_t *row_ptr, const float *values, const float *X, float *Y,
                               size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_bitmask_any_ref(EDGE_SPARSE_F32, mask, row_ptr, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_q8_f32_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const int8_t *values,
                              const float *scale, const uint8_t *zero, const float *X, float *Y, size_t T, size_t rows,
                              size_t cols, size_t r0, size_t r1) {
    edge_spmm_csr_any_ref(EDGE_SPARSE_Q8, row_ptr, col_idx, index_width, values, scale, zero, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_f16_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const uint16_t *values,
                           const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_csr_any_ref(EDGE_SPARSE_F16, row_ptr, col_idx, index_width, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_csr_f32_ref(const uint32_t *row_ptr, const void *col_idx, size_t index_width, const float *values,
                           const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_csr_any_ref(EDGE_SPARSE_F32, row_ptr, col_idx, index_width, values, NULL, NULL, X, Y, T, rows, cols, r0, r1);
}

void edge_spmm_nm_q8_f32_ref(const uint8_t *idx, const int8_t *values, const float *scale, const uint8_t *zero, size_t n,
                             size_t m, const float *X, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_nm_any_ref(EDGE_SPARSE_Q8, idx, values, scale, zero, n, m, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_nm_f16_ref(const uint8_t *idx, const uint16_t *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                          size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_nm_any_ref(EDGE_SPARSE_F16, idx, values, NULL, NULL, n, m, X, Y, T, rows, cols, r0, r1);
}
void edge_spmm_nm_f32_ref(const uint8_t *idx, const float *values, size_t n, size_t m, const float *X, float *Y, size_t T,
                          size_t rows, size_t cols, size_t r0, size_t r1) {
    edge_spmm_nm_any_ref(EDGE_SPARSE_F32, idx, values, NULL, NULL, n, m, X, Y, T, rows, cols, r0, r1);
}

void edge_spmm_bitmask_q8_i16_ref(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, const float *scale,
                                  const int16_t *Xq, const float *xscale, float *Y, size_t T, size_t rows, size_t cols,
                                  size_t r0, size_t r1) {
    size_t mb = (cols + 7) / 8, ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    for (size_t t = 0; t < T; t++) {
        const int16_t *x = Xq + t * ld;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *m = mask + r * mb;
            size_t k = row_ptr[r];
            float acc = 0.0f;
            for (size_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (size_t j = b * EDGE_I16_BLOCK; j < cols && j < (b + 1) * EDGE_I16_BLOCK; j++)
                    if (m[j >> 3] & (1u << (j & 7))) s += (int32_t)values[k++] * (int32_t)x[j];
                acc = fmaf((float)s, xscale[t * nb + b], acc);
            }
            Y[t * rows + r] = acc * scale[r];
        }
    }
}

void edge_bitmask_expand_q8(const uint8_t *mask, const uint32_t *row_ptr, const int8_t *values, size_t cols, size_t r0,
                            size_t r1, int8_t *out) {
    size_t mb = (cols + 7) / 8;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *m = mask + r * mb;
        const int8_t *v = values + row_ptr[r];
        int8_t *o = out + (r - r0) * cols;
        size_t k = 0;
        for (; k + 8 <= cols; k += 8) {  // whole mask bytes: runs of 8 stored or 8 zeros copied at once
            uint8_t byte = m[k >> 3];
            if (byte == 0xFF) {
                memcpy(o + k, v, 8);
                v += 8;
            } else if (byte == 0) {
                memset(o + k, 0, 8);
            } else {
                for (size_t j = 0; j < 8; j++) o[k + j] = (byte >> j) & 1 ? *v++ : 0;
            }
        }
        for (; k < cols; k++) o[k] = (m[k >> 3] >> (k & 7)) & 1 ? *v++ : 0;
    }
}

const uint8_t edge_nm24_nibble_bits[16] = {1, 3, 5, 9, 3, 2, 6, 10, 5, 6, 4, 12, 9, 10, 12, 8};

void edge_nm24_expand_q8(const uint8_t *idx, const int8_t *values, size_t cols, size_t r0, size_t r1, int8_t *out) {
    size_t slots = edge_nm24_slots(cols), ib = (slots * 2 + 7) / 8;
    for (size_t r = r0; r < r1; r++) {
        int8_t *w = out + (r - r0) * cols;
        memset(w, 0, cols);
        const uint8_t *id = idx + r * ib;
        const int8_t *v = values + r * slots;
        for (size_t s = 0; s < slots; s++) w[(s / 2) * 4 + ((id[s / 4] >> (2 * (s % 4))) & 3)] = v[s];
    }
}

void edge_spmm_nm24_q8_i16_ref(const uint8_t *idx, const int8_t *values, const float *scale, const int16_t *Xq,
                               const float *xscale, float *Y, size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t ld = edge_i16_stride(cols), nb = (cols + EDGE_I16_BLOCK - 1) / EDGE_I16_BLOCK;
    int8_t *w = (int8_t *)malloc(cols ? cols : 1);
    if (!w) abort();
    for (size_t r = r0; r < r1; r++) {
        edge_nm24_expand_q8(idx, values, cols, r, r + 1, w);  // the dense int8 row the payload stands for
        for (size_t t = 0; t < T; t++) {
            const int16_t *x = Xq + t * ld;
            float acc = 0.0f;
            for (size_t b = 0; b < nb; b++) {
                int32_t sum = 0;
                for (size_t k = b * EDGE_I16_BLOCK; k < cols && k < (b + 1) * EDGE_I16_BLOCK; k++) sum += (int32_t)w[k] * (int32_t)x[k];
                acc = fmaf((float)sum, xscale[t * nb + b], acc);
            }
            Y[t * rows + r] = acc * scale[r];
        }
    }
    free(w);
}

void edge_fill_table_sparse_ref(edge_kernel_table *t) {
    t->spmm_bitmask_q8_i16 = edge_spmm_bitmask_q8_i16_ref;
    t->bitmask_q8_i16_name = "ref";
    t->bitmask_expand_q8 = edge_bitmask_expand_q8;
    t->spmm_nm24_q8_i16 = edge_spmm_nm24_q8_i16_ref;
    t->spmm_bitmask = edge_spmm_bitmask_any_ref;
    t->spmm_csr = edge_spmm_csr_any_ref;
    t->spmm_nm = edge_spmm_nm_any_ref;
}
