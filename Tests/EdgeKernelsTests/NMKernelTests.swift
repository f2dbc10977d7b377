import EdgeKernels
import XCTest

/// The packed N:M products (`edge_spmm_nm_*`) at every level this CPU runs, against their `_ref`
/// kernels and against a dense double-precision product of the decoded weights: 2:4 (the SIMD fast
/// path) and other patterns (1- to 4-bit indices, some straddling bytes), column counts that are
/// not multiples of M (the tail group: min(N, cols % M) slots), groups with zero values in their
/// slots, inner row ranges and misaligned pointers.
final class NMKernelTests: XCTestCase {
    /// An nm matrix with its values in each value encoding.
    private struct NM {
        let rows: Int, cols: Int, n: Int, m: Int
        var idx: [UInt8] = []
        var f32: [Float] = []
        var f16: [UInt16] = []
        var q8: [Int8] = []          // symmetric codes
        var u8: [UInt8] = []         // asymmetric codes
        var scale: [Float] = []
        var zero: [UInt8] = []
        /// Decoded dense matrices per value encoding: f32, f16, q8 symmetric, q8 asymmetric.
        var dense: [[Float]] = [[], [], [], []]

        /// Bits per index: ceil(log2 m).
        var bits: Int { Int.bitWidth - (m - 1).leadingZeroBitCount }
        var slots: Int { (cols / m) * n + min(n, cols % m) }
        var rowBytes: Int { (slots * bits + 7) / 8 }

        init(rows: Int, cols: Int, n: Int, m: Int, rng: inout TestRNG) {
            self.rows = rows
            self.cols = cols
            self.n = n
            self.m = m
            for i in 0 ..< 4 { dense[i] = [Float](repeating: 0, count: rows * cols) }
            idx = [UInt8](repeating: 0, count: rows * rowBytes)
            let groups = (cols + m - 1) / m
            for r in 0 ..< rows {
                let s = rng.float(0.001, 0.02), z = UInt8(rng.int(0 ... 255))
                scale.append(s)
                zero.append(z)
                let zeroRow = rows > 2 && r == 1
                var slot = 0
                for g in 0 ..< groups {
                    let len = min(m, cols - g * m), want = min(n, len)
                    // `want` distinct in-group indices, increasing.
                    var chosen = Array(0 ..< len)
                    for i in 0 ..< want { chosen.swapAt(i, rng.int(i ... len - 1)) }
                    for c in chosen[0 ..< want].sorted() {
                        let bit = slot * bits
                        idx[r * rowBytes + bit / 8] |= UInt8(truncatingIfNeeded: c << (bit % 8))
                        if bit % 8 + bits > 8 { idx[r * rowBytes + bit / 8 + 1] |= UInt8(truncatingIfNeeded: c >> (8 - bit % 8)) }
                        let isZero = zeroRow || rng.int(0 ... 9) == 0
                        let v: Float = isZero ? 0 : rng.float(-1, 1)
                        let h = f16Bits(v)
                        let q = isZero ? Int8(0) : Int8(rng.int(-127 ... 127))
                        let u = isZero ? z : UInt8(rng.int(0 ... 255))
                        f32.append(v); f16.append(h); q8.append(q); u8.append(u)
                        let k = r * cols + g * m + c
                        dense[0][k] = v
                        dense[1][k] = f16Value(h)
                        dense[2][k] = s * Float(q)
                        dense[3][k] = s * (Float(u) - Float(z))
                        slot += 1
                    }
                }
            }
        }
    }

    private let patterns = [(2, 4), (1, 4), (3, 4), (1, 2), (2, 8), (4, 8), (3, 5), (5, 16), (7, 128)]

    /// Calls `body` for every pattern, shape of the sweep (cols that are and are not multiples of M), T and row range.
    private func sweep(_ body: (NM, [Float], Int, Int, Int) -> Void) {
        var rng = TestRNG(seed: 59)
        for (n, m) in patterns {
            for cols in Sweep.cols + [1100, 1027] {
                for rows in Sweep.rows {
                    let w = NM(rows: rows, cols: cols, n: n, m: m, rng: &rng)
                    for T in [1, 5] {
                        let x = rng.floats(T * cols)
                        for (r0, r1) in Sweep.rowRanges(rows) { body(w, x, T, r0, r1) }
                    }
                }
            }
        }
    }

    func testNMAllPatternsAllValueEncodings() {
        let ran = forEachKernelLevel { level in
            sweep { w, xv, T, r0, r1 in
                let rows = w.rows, cols = w.cols, n = w.n, m = w.m
                let idx = Misaligned(w.idx), x = Misaligned(xv)
                let f32 = Misaligned(w.f32), f16 = Misaligned(w.f16), q8 = Misaligned(w.q8), u8 = Misaligned(w.u8)
                let scale = Misaligned(w.scale), zero = Misaligned(w.zero)
                let uq = UnsafeRawPointer(u8.pointer).assumingMemoryBound(to: Int8.self)
                let tag = "nm\(n):\(m)"
                checkGEMM("\(tag)_f32", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(w.dense[0], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_nm_f32(idx.pointer, f32.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_nm_f32_ref(idx.pointer, f32.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) })
                checkGEMM("\(tag)_f16", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(w.dense[1], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_nm_f16(idx.pointer, f16.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_nm_f16_ref(idx.pointer, f16.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) })
                checkGEMM("\(tag)_q8_sym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(w.dense[2], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_nm_q8_f32(idx.pointer, q8.pointer, scale.pointer, nil, n, m, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_nm_q8_f32_ref(idx.pointer, q8.pointer, scale.pointer, nil, n, m, x.pointer, $0, T, rows, cols, r0, r1) })
                checkGEMM("\(tag)_q8_asym", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                          expected: denseProduct(w.dense[3], xv, T: T, rows: rows, cols: cols), tolerance: Tolerance.gemm,
                          run: { edge_spmm_nm_q8_f32(idx.pointer, uq, scale.pointer, zero.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) },
                          ref: { edge_spmm_nm_q8_f32_ref(idx.pointer, uq, scale.pointer, zero.pointer, n, m, x.pointer, $0, T, rows, cols, r0, r1) })
            }
        }
        XCTAssertTrue(ran.contains("ref"))
    }

    /// The 2:4 product equals the dense q8 kernel on the same (densified) codes.
    func testNM24MatchesDenseQ8Kernel() {
        var rng = TestRNG(seed: 78)
        forEachKernelLevel { level in
            for (rows, cols, T) in [(13, 256, 5), (8, 64, 1), (3, 1102, 9), (5, 7, 2)] {
                let w = NM(rows: rows, cols: cols, n: 2, m: 4, rng: &rng)
                var q = [Int8](repeating: 0, count: rows * cols)
                for i in q.indices where w.dense[2][i] != 0 { q[i] = Int8((w.dense[2][i] / w.scale[i / cols]).rounded()) }
                let xv = rng.floats(T * cols)
                var dense = [Float](repeating: 0, count: T * rows), packed = dense
                edge_matmul_q8_f32(q, w.scale, nil, xv, &dense, T, rows, cols, 0, rows)
                edge_spmm_nm_q8_f32(w.idx, w.q8, w.scale, nil, 2, 4, xv, &packed, T, rows, cols, 0, rows)
                for i in dense.indices { XCTAssertEqual(packed[i], dense[i], accuracy: 1e-5 * max(1, abs(dense[i])), "\(level) \(i)") }
            }
        }
    }
}
