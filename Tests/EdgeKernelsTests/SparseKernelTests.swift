import EdgeKernels
import XCTest

/// The csr and bitmask products at every level this CPU runs, against their `_ref` kernels and
/// against a dense double-precision product of the decoded weights, over odd shapes, sparsities
/// (empty and full rows included), inner row ranges and misaligned pointers.
final class SparseKernelTests: XCTestCase {
    /// A sparse matrix in both layouts, with its values in each value encoding.
    private struct Sparse {
        let rows: Int, cols: Int
        var mask: [UInt8] = []
        var rowPtr: [UInt32] = [0]
        var gaps: [UInt8] = []       // csr index_width 8 (nil-equivalent when some gap exceeds 256: `gapsFit`)
        var columns: [UInt16] = []   // csr index_width 16
        var gapsFit = true
        var f32: [Float] = []
        var f16: [UInt16] = []
        var q8: [Int8] = []          // symmetric codes
        var u8: [UInt8] = []         // asymmetric codes
        var scale: [Float] = []
        var zero: [UInt8] = []
        /// Decoded dense matrices per value encoding: f32, f16, q8 symmetric, q8 asymmetric.
        var dense: [[Float]] = [[], [], [], []]

        init(rows: Int, cols: Int, sparsity: Double, rng: inout TestRNG) {
            self.rows = rows
            self.cols = cols
            let mb = (cols + 7) / 8
            mask = [UInt8](repeating: 0, count: rows * mb)
            for i in 0 ..< 4 { dense[i] = [Float](repeating: 0, count: rows * cols) }
            for r in 0 ..< rows {
                let s = rng.float(0.001, 0.02), z = UInt8(rng.int(0 ... 255))
                scale.append(s)
                zero.append(z)
                let emptyRow = rows > 2 && r == 1
                var last = -1
                for j in 0 ..< cols where !emptyRow && Double(rng.int(0 ... 999)) / 1000 >= sparsity {
                    mask[r * mb + j / 8] |= 1 << (j % 8)
                    if j - last > 256 { gapsFit = false }
                    gaps.append(UInt8(truncatingIfNeeded: j - last - 1))
                    columns.append(UInt16(j))
                    last = j
                    let v = rng.float(-1, 1)
                    let h = f16Bits(v == 0 ? 0.5 : v)
                    var q = Int8(rng.int(-127 ... 127))
                    if q == 0 { q = 1 }
                    var u = UInt8(rng.int(0 ... 255))
                    if u == z { u = z &+ 1 }
                    f32.append(v); f16.append(h); q8.append(q); u8.append(u)
                    let k = r * cols + j
                    dense[0][k] = v
                    dense[1][k] = f16Value(h)
                    dense[2][k] = s * Float(q)
                    dense[3][k] = s * (Float(u) - Float(z))
                }
                rowPtr.append(UInt32(f32.count))
            }
        }
    }

    private let sparsities = [0.0, 0.5, 0.9, 1.0]

    /// Calls `body` for every shape of the sweep and every sparsity.
    private func sweep(_ body: (Sparse, [Float], Int, Int, Int) -> Void) {
        var rng = TestRNG(seed: 41)
        for cols in Sweep.cols + [1100] {
            for rows in Sweep.rows {
                for sparsity in sparsities {
                    let m = Sparse(rows: rows, cols: cols, sparsity: sparsity, rng: &rng)
                    for T in [1, 5] {
                        let x = rng.floats(T * cols)
                        for (r0, r1) in Sweep.rowRanges(rows) { body(m, x, T, r0, r1) }
                    }
                }
            }
        }
    }

    func testBitmaskAllValueEncodings() {
        let ran = forEachKernelLevel { level in
            sweep { m, xv, T, r0, r1 in
                let rows = m.rows, cols = m.cols
                let mask = Misaligned(m.mask), rp = Misaligned(m.rowPtr), x = Misaligned(xv)
                let f32 = Misaligned(m.f32), f16 = Misaligned(m.f16), q8 = Misaligned(m.q8), u8 = Misaligned(m.u8)
                let scale = Misaligned(m.scale), zero = Misaligned(m.zero)
                checkGEMM("bitmask_f32", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(m.dense[0], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_bitmask_f32(mask.pointer, rp.pointer, f32.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_bitmask_f32_ref(mask.pointer, rp.pointer, f32.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                checkGEMM("bitmask_f16", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(m.dense[1], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_bitmask_f16(mask.pointer, rp.pointer, f16.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_bitmask_f16_ref(mask.pointer, rp.pointer, f16.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                checkGEMM("bitmask_q8_sym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(m.dense[2], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_bitmask_q8_f32(mask.pointer, rp.pointer, q8.pointer, scale.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_bitmask_q8_f32_ref(mask.pointer, rp.pointer, q8.pointer, scale.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) })
                let uq = UnsafeRawPointer(u8.pointer).assumingMemoryBound(to: Int8.self)
                checkGEMM("bitmask_q8_asym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(m.dense[3], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_bitmask_q8_f32(mask.pointer, rp.pointer, uq, scale.pointer, zero.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_bitmask_q8_f32_ref(mask.pointer, rp.pointer, uq, scale.pointer, zero.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
        XCTAssertTrue(ran.contains("ref"))
    }

    func testCSRBothIndexWidthsAllValueEncodings() {
        forEachKernelLevel { level in
            sweep { m, xv, T, r0, r1 in
                let rows = m.rows, cols = m.cols
                let rp = Misaligned(m.rowPtr), x = Misaligned(xv)
                let gaps = Misaligned(m.gaps), columns = Misaligned(m.columns)
                let f32 = Misaligned(m.f32), f16 = Misaligned(m.f16), q8 = Misaligned(m.q8), u8 = Misaligned(m.u8)
                let scale = Misaligned(m.scale), zero = Misaligned(m.zero)
                let uq = UnsafeRawPointer(u8.pointer).assumingMemoryBound(to: Int8.self)
                var widths: [(Int, UnsafeRawPointer)] = [(16, UnsafeRawPointer(columns.pointer))]
                if m.gapsFit { widths.append((8, UnsafeRawPointer(gaps.pointer))) }
                for (w, idx) in widths {
                    checkGEMM("csr\(w)_f32", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(m.dense[0], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_spmm_csr_f32(rp.pointer, idx, w, f32.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_spmm_csr_f32_ref(rp.pointer, idx, w, f32.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                    checkGEMM("csr\(w)_f16", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(m.dense[1], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_spmm_csr_f16(rp.pointer, idx, w, f16.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_spmm_csr_f16_ref(rp.pointer, idx, w, f16.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                    checkGEMM("csr\(w)_q8_sym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(m.dense[2], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_spmm_csr_q8_f32(rp.pointer, idx, w, q8.pointer, scale.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_spmm_csr_q8_f32_ref(rp.pointer, idx, w, q8.pointer, scale.pointer, nil, x.pointer, $0, T, rows, cols, r0, r1) })
                    checkGEMM("csr\(w)_q8_asym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                              expected: denseProduct(m.dense[3], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                              run: { edge_spmm_csr_q8_f32(rp.pointer, idx, w, uq, scale.pointer, zero.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                              ref: { edge_spmm_csr_q8_f32_ref(rp.pointer, idx, w, uq, scale.pointer, zero.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                }
            }
        }
    }

    /// The sparse product equals the dense q8 kernel on the same values (decoded per element the same way).
    func testSparseMatchesDenseQ8Kernel() {
        var rng = TestRNG(seed: 77)
        forEachKernelLevel { level in
            for (rows, cols, T) in [(13, 257, 5), (8, 64, 1), (3, 1100, 9)] {
                let m = Sparse(rows: rows, cols: cols, sparsity: 0.5, rng: &rng)
                var q = [Int8](repeating: 0, count: rows * cols)
                let mb = (cols + 7) / 8
                var k = 0
                for r in 0 ..< rows {
                    for j in 0 ..< cols where m.mask[r * mb + j / 8] & (1 << (j % 8)) != 0 { q[r * cols + j] = m.q8[k]; k += 1 }
                }
                let xv = rng.floats(T * cols)
                var dense = [Float](repeating: 0, count: T * rows), sparse = dense
                edge_matmul_q8_f32(q, m.scale, nil, xv, &dense, T, rows, cols, 0, rows)
                edge_spmm_bitmask_q8_f32(m.mask, m.rowPtr, m.q8, m.scale, nil, xv, &sparse, T, rows, cols, 0, rows)
                for i in dense.indices { XCTAssertEqual(sparse[i], dense[i], accuracy: 1e-5 * max(1, abs(dense[i])), "\(level) \(i)") }
            }
        }
    }
}
