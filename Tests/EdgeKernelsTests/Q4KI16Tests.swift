import EdgeKernels
import XCTest

/// q4k weights x int16 activations (`edge_matmul_q4k_i16`, the decoding kernel, and `edge_gemm_q4k_i16`, the
/// many-token one): every level (and AVX-512's BW form) bit-identical to the reference on odd shapes
/// (cols not a multiple of 64, a short last group, b = 6 and 8, inner row ranges, misaligned pointers),
/// the reference within float rounding of the double product of the decoded weights and the quantized
/// activations, extreme operands, and unsupported parameters refused (nothing written).
final class Q4KI16Tests: XCTestCase {
    static let cols = [1, 15, 33, 63, 64, 100, 200, 257, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 3, 4, 5, 9, 14, 33]

    /// The double product of the decoded weights and the dequantized activations, its scale the sum of
    /// the two terms' magnitudes (|d u x| + |m x|: the kernels sum them apart, so their rounding is
    /// relative to that, not to |w x|, which cancels where d u is near m).
    static func expected(_ w: Q4KKernelTests.Q4K, _ xf: [Float], T: Int) -> (value: [Double], scale: [Double]) {
        let rows = w.rows, cols = w.cols
        var mag = [Double](repeating: 0, count: rows * cols)  // |d u| + |m| per weight
        for r in 0 ..< rows {
            let D = Double(f16Value(w.superBits[2 * r])), M = Double(f16Value(w.superBits[2 * r + 1]))
            for k in 0 ..< cols {
                let byte = w.codes[r * w.rowBytes + k / 2], u = Double(k % 2 == 0 ? byte & 15 : byte >> 4)
                let (sc, mn) = subCodes(w, r, k / w.group)
                mag[r * cols + k] = abs(D * Double(sc) * u) + abs(M * Double(mn))
            }
        }
        var value = [Double](repeating: 0, count: T * rows), scale = value
        for t in 0 ..< T {
            for r in 0 ..< rows {
                var s = 0.0, a = 0.0
                for k in 0 ..< cols {
                    let x = Double(xf[t * cols + k])
                    s += Double(w.decoded[r * cols + k]) * x
                    a += mag[r * cols + k] * abs(x)
                }
                value[t * rows + r] = s
                scale[t * rows + r] = a
            }
        }
        return (value, scale)
    }

    static func subCodes(_ w: Q4KKernelTests.Q4K, _ r: Int, _ k: Int) -> (Int, Int) {
        func bits(_ pos: Int) -> Int {
            var v = 0
            for b in 0 ..< w.bits where w.sub[r * w.subRowBytes + (pos + b) / 8] >> ((pos + b) % 8) & 1 == 1 { v |= 1 << b }
            return v
        }
        return (bits(2 * w.bits * k), bits(2 * w.bits * k + w.bits))
    }

    func testMatchesReferenceAndDoubleProduct() {
        var rng = TestRNG(seed: 61)
        let levels = forEachIntegerKernelForm { level in
            for group in [32, 64, 128, 256] {
                for bits in [6, 8] {
                    for cols in Q4KI16Tests.cols {
                        for rows in Q4KI16Tests.rows {
                            for T in Q4KI16Tests.tokens where rows * cols * T < 50_000 {
                                let w = Q4KKernelTests.Q4K.random(rows: rows, cols: cols, group: group, bits: bits, &rng)
                                let ld = edge_i16_stride(cols), nb = (cols + 255) / 256
                                let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k % cols / 256) % 3 * 9) }
                                var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
                                edge_quantize_rows_i16_ref(x, &xq, &xs, T, cols)
                                let xf = (0 ..< T * cols).map { i in Float(xq[(i / cols) * ld + i % cols]) * xs[(i / cols) * nb + (i % cols) / 256] }
                                let want = Q4KI16Tests.expected(w, xf, T: T)
                                let wq = Misaligned(w.codes), sub = Misaligned(w.sub), sup = Misaligned(w.superBits)
                                let xb = Misaligned(xq), sx = Misaligned(xs)
                                for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                                    checkGEMM("matmul_q4k_i16 g\(group) b\(bits)", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: want, tolerance: 0,
                                              run: { edge_matmul_q4k_i16(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_matmul_q4k_i16_ref(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                    checkGEMM("gemm_q4k_i16 g\(group) b\(bits)", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: want, tolerance: 0,
                                              run: { edge_gemm_q4k_i16(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_gemm_q4k_i16_ref(wq.pointer, sub.pointer, sup.pointer, group, bits, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// Extreme operands: codes 15 with the largest sub-codes and D, M against activations at the ends of
    /// the int16 range (and with every low byte 255), through both kernels; the integer sums must not wrap.
    /// 1001 columns in groups of 256 (the row kernel) and 1024 in groups of 32 (the one-token byte-plane kernel).
    func testExtremeValues() {
        for (cols, group) in [(1001, 256), (1024, 32)] { extremeValues(cols: cols, group: group) }
    }

    private func extremeValues(cols: Int, group: Int) {
        let rows = 3, groups = (cols + group - 1) / group, ld = edge_i16_stride(cols), nb = (cols + 255) / 256
        for bits in [6, 8] {
            let top = (1 << bits) - 1
            let u = [UInt8](repeating: 15, count: rows * cols)
            let w = Q4KKernelTests.Q4K(rows: rows, cols: cols, group: group, bits: bits, u: u,
                                       sc: [Int](repeating: top, count: rows * groups), mn: [Int](repeating: top, count: rows * groups),
                                       D: [UInt16](repeating: f16Bits(0.5), count: rows), M: [UInt16](repeating: f16Bits(0.25), count: rows))
            for fill: Int16 in [-1, 255, -32767 + 254, 32767, -32767] {
                var xq = [Int16](repeating: fill, count: ld)
                if cols % 2 == 1 { xq[ld - 1] = 0 }
                let xs = [Float](repeating: 1, count: nb)
                _ = forEachIntegerKernelForm { level in
                    var y = [Float](repeating: 0, count: rows), yRef = y, g = y, gRef = y
                    edge_matmul_q4k_i16(w.codes, w.sub, w.superBits, group, bits, xq, xs, &y, 1, rows, cols, 0, rows)
                    edge_matmul_q4k_i16_ref(w.codes, w.sub, w.superBits, group, bits, xq, xs, &yRef, 1, rows, cols, 0, rows)
                    edge_gemm_q4k_i16(w.codes, w.sub, w.superBits, group, bits, xq, xs, &g, 1, rows, cols, 0, rows)
                    edge_gemm_q4k_i16_ref(w.codes, w.sub, w.superBits, group, bits, xq, xs, &gRef, 1, rows, cols, 0, rows)
                    XCTAssertEqual(y, yRef, "\(level) b\(bits) \(fill)")
                    XCTAssertEqual(g, gRef, "\(level) b\(bits) \(fill)")
                    let wv = 0.5 * Double(top) * 15 - 0.25 * Double(top), exact = wv * Double(fill) * Double(cols)
                    XCTAssertEqual(Double(yRef[0]), exact, accuracy: 1e-5 * abs(exact) + 1e-3, "\(level) b\(bits) \(fill)")
                    XCTAssertEqual(Double(gRef[0]), exact, accuracy: 1e-5 * abs(exact) + 1e-3, "\(level) b\(bits) \(fill)")
                }
            }
        }
    }

    /// Groups edge_q4_i16_supported refuses, and sub_bits other than 6 or 8, write nothing.
    func testUnsupportedParametersWriteNothing() {
        let rows = 2, cols = 64, T = 1
        let nib = [UInt8](repeating: 0x99, count: rows * cols / 2), sub = [UInt8](repeating: 0x41, count: rows * 64)
        let sup = [UInt16](repeating: edge_f32_to_f16(0.5), count: 2 * rows)
        let xq = [Int16](repeating: 100, count: cols), xs: [Float] = [0.01]
        for (group, bits) in [(0, 6), (8, 6), (16, 8), (48, 6), (96, 8), (512, 6), (32, 0), (32, 4), (32, 7), (64, 16)] {
            XCTAssertFalse(edge_q4k_i16_supported(group, bits), "\(group) \(bits)")
            _ = forEachIntegerKernelForm { level in
                for f in [edge_matmul_q4k_i16, edge_matmul_q4k_i16_ref, edge_gemm_q4k_i16, edge_gemm_q4k_i16_ref] {
                    var y = [Float](repeating: 7, count: T * rows)
                    f(nib, sub, sup, group, bits, xq, xs, &y, T, rows, cols, 0, rows)
                    XCTAssertEqual(y, [7, 7], "\(level) group \(group) bits \(bits)")
                }
            }
        }
        for group in [32, 64, 128, 256] {
            for bits in [6, 8] { XCTAssertTrue(edge_q4k_i16_supported(group, bits)) }
        }
    }
}
