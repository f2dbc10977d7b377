import EdgeKernels
import XCTest

/// q4k weights x int8 activations in blocks of 32 (`edge_matmul_q4k_q8b32`, the decoding kernel of q4k
/// under `.q8`): every level (and AVX-512's BW form) bit-identical to the reference on odd shapes
/// (partial 128-column blocks, a short last group, groups of 8 to 384, b = 6 and 8, inner row ranges,
/// misaligned pointers), the reference within float rounding of the double product of the decoded
/// weights and the quantized activations, extreme operands, and unsupported parameters refused.
final class Q4KQ8Tests: XCTestCase {
    static let cols = [1, 8, 15, 33, 64, 100, 127, 128, 129, 200, 257, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 3, 4, 5, 9]

    func testMatchesReferenceAndDoubleProduct() {
        var rng = TestRNG(seed: 71)
        let levels = forEachIntegerKernelForm { level in
            for group in [8, 16, 32, 64, 128, 256, 384] {
                for bits in [6, 8] {
                    for cols in Q4KQ8Tests.cols {
                        for rows in Q4KQ8Tests.rows {
                            for T in Q4KQ8Tests.tokens where rows * cols * T < 25_000 {
                                let w = Q4KKernelTests.Q4K.random(rows: rows, cols: cols, group: group, bits: bits, &rng)
                                let nb = (cols + 31) / 32
                                let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k % cols / 32) % 3 * 9) }
                                var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T * nb)
                                for t in 0 ..< T {
                                    xq.withUnsafeMutableBufferPointer { q in
                                        xs.withUnsafeMutableBufferPointer { s in
                                            x.withUnsafeBufferPointer { edge_quantize_row_q8_b32_ref($0.baseAddress! + t * cols, q.baseAddress! + t * cols, s.baseAddress! + t * nb, cols) }
                                        }
                                    }
                                }
                                let xf = (0 ..< T * cols).map { i in Float(xq[i]) * xs[(i / cols) * nb + (i % cols) / 32] }
                                let want = Q4KI16Tests.expected(w, xf, T: T)
                                let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits)
                                let xb = Misaligned(xq), sx = Misaligned(xs)
                                for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                                    checkGEMM("matmul_q4k_q8b32 g\(group) b\(bits)", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: want, tolerance: 0,
                                              run: { edge_matmul_q4k_q8b32(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_matmul_q4k_q8b32_ref(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// Extreme operands: codes 15 with the largest sub-codes against activations of +-127 everywhere; the
    /// int16 sums of the AVX-512BW / AVX2 forms (15 * 127 * 2 per pair) must not saturate.
    func testExtremeValues() {
        let rows = 3, cols = 1001, nb = (cols + 31) / 32
        for group in [32, 64] {
            let groups = (cols + group - 1) / group
            for bits in [6, 8] {
                let top = (1 << bits) - 1
                let w = Q4KKernelTests.Q4K(rows: rows, cols: cols, group: group, bits: bits,
                                           u: [UInt8](repeating: 15, count: rows * cols),
                                           sc: [Int](repeating: top, count: rows * groups), mn: [Int](repeating: top, count: rows * groups),
                                           D: [UInt16](repeating: f16Bits(0.5), count: rows), M: [UInt16](repeating: f16Bits(0.25), count: rows))
                for fill: Int8 in [127, -127] {
                    let xq = [Int8](repeating: fill, count: cols), xs = [Float](repeating: 1, count: nb)
                    _ = forEachIntegerKernelForm { level in
                        var y = [Float](repeating: 0, count: rows), yRef = y
                        edge_matmul_q4k_q8b32(w.codes, w.sub, w.superBits, group, bits, xq, xs, &y, 1, rows, cols, 0, rows)
                        edge_matmul_q4k_q8b32_ref(w.codes, w.sub, w.superBits, group, bits, xq, xs, &yRef, 1, rows, cols, 0, rows)
                        XCTAssertEqual(y, yRef, "\(level) g\(group) b\(bits) \(fill)")
                        let wv = 0.5 * Double(top) * 15 - 0.25 * Double(top), exact = wv * Double(fill) * Double(cols)
                        XCTAssertEqual(Double(yRef[0]), exact, accuracy: 1e-5 * abs(exact) + 1e-3, "\(level) g\(group) b\(bits) \(fill)")
                    }
                }
            }
        }
    }

    /// Groups edge_q4_q8_supported refuses, and sub_bits other than 6 or 8, write nothing.
    func testUnsupportedParametersWriteNothing() {
        let rows = 2, cols = 64
        let codes = [UInt8](repeating: 0x99, count: rows * cols / 2), sub = [UInt8](repeating: 1, count: rows * 64)
        let sup = [UInt16](repeating: f16Bits(0.5), count: 2 * rows)
        let xq = [Int8](repeating: 100, count: cols), xs: [Float] = [0.01, 0.01]
        for (group, bits) in [(0, 6), (4, 6), (12, 8), (24, 6), (48, 8), (96, 6), (200, 8), (32, 4), (32, 7), (64, 0)] {
            XCTAssertFalse(edge_q4k_q8_supported(group, bits), "g\(group) b\(bits)")
            _ = forEachIntegerKernelForm { level in
                var y = [Float](repeating: 7, count: rows), yRef = y
                edge_matmul_q4k_q8b32(codes, sub, sup, group, bits, xq, xs, &y, 1, rows, cols, 0, rows)
                edge_matmul_q4k_q8b32_ref(codes, sub, sup, group, bits, xq, xs, &yRef, 1, rows, cols, 0, rows)
                XCTAssertEqual(y, [7, 7], "\(level) g\(group) b\(bits)")
                XCTAssertEqual(yRef, [7, 7], "\(level) g\(group) b\(bits)")
            }
        }
        for group in [8, 16, 32, 64, 128, 256, 384] {
            XCTAssertTrue(edge_q4k_q8_supported(group, 6))
            XCTAssertTrue(edge_q4k_q8_supported(group, 8))
        }
    }
}
