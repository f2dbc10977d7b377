import EdgeKernels
import XCTest

/// q4 weights x int16 activations (`edge_matmul_q4_i16`, the decoding kernel of q4, and `edge_gemm_q4_i16`,
/// the many-token one): every level
/// bit-identical to the reference on odd shapes, the reference within float rounding of the double
/// product of the dequantized operands, and unsupported group sizes refused (nothing written).
final class Q4I16Tests: XCTestCase {
    static let cols = [1, 15, 31, 32, 33, 63, 64, 200, 256, 257, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 3, 4, 5, 9, 14]

    func testMatmulQ4I16() {
        var rng = TestRNG(seed: 44)
        let levels = forEachIntegerKernelForm { level in
            for group in [32, 64, 128, 256] {
                for cols in Q4I16Tests.cols {
                    for rows in Q4I16Tests.rows {
                        for T in Q4I16Tests.tokens where rows * cols * T < 150_000 {
                            let groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2
                            let ld = edge_i16_stride(cols), nb = (cols + 255) / 256
                            let nib = (0 ..< rows * rowBytes).map { _ in UInt8(rng.int(0 ... 255)) }
                            let sc = rng.floats(rows * groups, 0.001, 0.1).map { edge_f32_to_f16($0) }
                            let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 15)) }
                            let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k / 256) % 3 * 9) }
                            var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
                            edge_quantize_rows_i16_ref(x, &xq, &xs, T, cols)
                            for asym in [false, true] {
                                let zero: [UInt8]? = asym ? zeros : nil
                                let wf = dequantizedQ4(nib, scales: sc, zeros: zero, rows: rows, cols: cols, group: group)
                                let xf = (0 ..< T * cols).map { i in Float(xq[(i / cols) * ld + i % cols]) * xs[(i / cols) * nb + (i % cols) / 256] }
                                let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                                let w = Misaligned(nib), s = Misaligned(sc), xb = Misaligned(xq), sx = Misaligned(xs)
                                let z = zero.map { Misaligned($0) }
                                for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                                    checkGEMM("matmul_q4_i16 g\(group)\(asym ? " asym" : "")", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: expected, tolerance: 0,
                                              run: { edge_matmul_q4_i16(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_matmul_q4_i16_ref(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                    checkGEMM("gemm_q4_i16 g\(group)\(asym ? " asym" : "")", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: expected, tolerance: 0,
                                              run: { edge_gemm_q4_i16(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_gemm_q4_i16_ref(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// Extreme operands: nibbles 15 with zero point 0 against int16 activations at the ends of their
    /// range and with every low byte 255, through the decoding kernel and the packed GEMM; 1001 columns
    /// (the row kernel) and 1024 (the one-token byte-plane kernel, whose int16 pair sums these bound).
    func testExtremeValuesDoNotSaturate() {
        for cols in [1001, 1024] { extremeValues(cols: cols) }
    }

    private func extremeValues(cols: Int) {
        let rows = 3, group = 64, groups = (cols + group - 1) / group, ld = edge_i16_stride(cols), nb = (cols + 255) / 256
        let nib = [UInt8](repeating: 0xFF, count: rows * ((cols + 1) / 2))
        let sc = [UInt16](repeating: edge_f32_to_f16(0.5), count: rows * groups)
        let zero = [UInt8](repeating: 0, count: rows * groups)
        for fill: Int16 in [-1, 255, -32767 + 254, 32767] {
            let xq = [Int16](repeating: fill, count: ld), xs = [Float](repeating: 1, count: nb)
            _ = forEachIntegerKernelForm { level in
                var y = [Float](repeating: 0, count: rows), yRef = y, g = y, gRef = y
                edge_matmul_q4_i16(nib, sc, zero, group, xq, xs, &y, 1, rows, cols, 0, rows)
                edge_matmul_q4_i16_ref(nib, sc, zero, group, xq, xs, &yRef, 1, rows, cols, 0, rows)
                edge_gemm_q4_i16(nib, sc, zero, group, xq, xs, &g, 1, rows, cols, 0, rows)
                edge_gemm_q4_i16_ref(nib, sc, zero, group, xq, xs, &gRef, 1, rows, cols, 0, rows)
                XCTAssertEqual(y, yRef, "\(level) \(fill)")
                XCTAssertEqual(g, gRef, "\(level) \(fill)")
                XCTAssertEqual(Double(yRef[0]), 0.5 * 15 * Double(fill) * Double(cols), accuracy: 1e-5 * abs(Double(fill)) * Double(cols) * 7.5, "\(level) \(fill)")
            }
        }
    }

    /// Groups that are not a multiple of 32 dividing 256 are refused: nothing is written.
    func testUnsupportedGroupsWriteNothing() {
        for group in [0, 8, 12, 16, 48, 96, 512] {
            XCTAssertFalse(edge_q4_i16_supported(group), "\(group)")
            let rows = 2, cols = 64, T = 1
            let nib = [UInt8](repeating: 0x99, count: rows * cols / 2)
            let sc = [UInt16](repeating: edge_f32_to_f16(0.5), count: rows * 64)
            let xq = [Int16](repeating: 100, count: cols), xs: [Float] = [0.01]
            var y = [Float](repeating: 7, count: T * rows), yRef = y
            edge_matmul_q4_i16(nib, sc, nil, group, xq, xs, &y, T, rows, cols, 0, rows)
            edge_matmul_q4_i16_ref(nib, sc, nil, group, xq, xs, &yRef, T, rows, cols, 0, rows)
            XCTAssertEqual(y, [7, 7], "group \(group)")
            XCTAssertEqual(yRef, [7, 7], "group \(group)")
        }
        for group in [32, 64, 128, 256] { XCTAssertTrue(edge_q4_i16_supported(group)) }
    }
}
