import EdgeKernels
import XCTest

/// q4 weights x int8 activations in blocks of 32 (`edge_matmul_q4_q8b32`, the faster decoding kernel
/// of q4): every level and integer form bit-identical to the reference on odd shapes (partial blocks,
/// groups of 8 to 384, symmetric and not, row ranges), the reference within float rounding of the
/// double product of the dequantized operands, and unsupported group sizes refused (nothing written).
final class Q4Q8Tests: XCTestCase {
    static let cols = [1, 8, 15, 31, 33, 64, 127, 128, 129, 200, 257, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 4, 5, 9]

    func testMatmulQ4Q8B32() {
        var rng = TestRNG(seed: 45)
        let levels = forEachIntegerKernelForm { level in
            for group in [8, 16, 32, 64, 128, 256, 384] {
                for cols in Q4Q8Tests.cols {
                    for rows in Q4Q8Tests.rows {
                        for T in Q4Q8Tests.tokens where rows * cols * T < 100_000 {
                            let groups = (cols + group - 1) / group, rowBytes = (cols + 1) / 2, nb = (cols + 31) / 32
                            let nib = (0 ..< rows * rowBytes).map { _ in UInt8(rng.int(0 ... 255)) }
                            let sc = rng.floats(rows * groups, 0.001, 0.1).map { edge_f32_to_f16($0) }
                            let zeros = (0 ..< rows * groups).map { _ in UInt8(rng.int(0 ... 15)) }
                            let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k / 32) % 3 * 9) }
                            var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T * nb)
                            for t in 0 ..< T {
                                xq.withUnsafeMutableBufferPointer { q in
                                    xs.withUnsafeMutableBufferPointer { s in
                                        x.withUnsafeBufferPointer { edge_quantize_row_q8_b32_ref($0.baseAddress! + t * cols, q.baseAddress! + t * cols, s.baseAddress! + t * nb, cols) }
                                    }
                                }
                            }
                            for asym in [false, true] {
                                let zero: [UInt8]? = asym ? zeros : nil
                                let wf = dequantizedQ4(nib, scales: sc, zeros: zero, rows: rows, cols: cols, group: group)
                                let xf = (0 ..< T * cols).map { i in Float(xq[i]) * xs[(i / cols) * nb + (i % cols) / 32] }
                                let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                                let w = Misaligned(nib), s = Misaligned(sc), xb = Misaligned(xq), sx = Misaligned(xs)
                                let z = zero.map { Misaligned($0) }
                                for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                                    checkGEMM("matmul_q4_q8b32 g\(group)\(asym ? " asym" : "")", level: level, T: T, rows: rows, cols: cols,
                                              r0: r0, r1: r1, expected: expected, tolerance: 0,
                                              run: { edge_matmul_q4_q8b32(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                              ref: { edge_matmul_q4_q8b32_ref(w.pointer, s.pointer, z?.pointer, group, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// The largest sums: nibbles 15 with zero point 0 (bytes 31 after the zero-point offset) against
    /// activations of +127 everywhere; the int16 sums of the AVX-512BW / AVX2 forms must not saturate.
    func testExtremeValuesDoNotSaturate() {
        let rows = 3, cols = 1001, group = 64, groups = (cols + group - 1) / group, nb = (cols + 31) / 32
        let nib = [UInt8](repeating: 0xFF, count: rows * ((cols + 1) / 2))
        let sc = [UInt16](repeating: edge_f32_to_f16(0.5), count: rows * groups)
        let zero = [UInt8](repeating: 0, count: rows * groups)
        let xq = [Int8](repeating: 127, count: cols), xs = [Float](repeating: 1, count: nb)
        _ = forEachIntegerKernelForm { level in
            var y = [Float](repeating: 0, count: rows), yRef = y
            edge_matmul_q4_q8b32(nib, sc, zero, group, xq, xs, &y, 1, rows, cols, 0, rows)
            edge_matmul_q4_q8b32_ref(nib, sc, zero, group, xq, xs, &yRef, 1, rows, cols, 0, rows)
            XCTAssertEqual(y, yRef, level)
            XCTAssertEqual(yRef[0], Float(0.5 * 15 * 127 * Double(cols)), accuracy: 1, level)
        }
    }

    /// Groups that are not a multiple of 8 dividing 128 or a multiple of 128 are refused: nothing is written.
    func testUnsupportedGroupsWriteNothing() {
        for group in [0, 4, 12, 24, 48, 96, 200] {
            XCTAssertFalse(edge_q4_q8_supported(group), "\(group)")
            let rows = 2, cols = 64, T = 1
            let nib = [UInt8](repeating: 0x99, count: rows * cols / 2)
            let sc = [UInt16](repeating: edge_f32_to_f16(0.5), count: rows * 64)
            let xq = [Int8](repeating: 100, count: cols), xs: [Float] = [0.01, 0.01]
            var y = [Float](repeating: 7, count: T * rows), yRef = y
            edge_matmul_q4_q8b32(nib, sc, nil, group, xq, xs, &y, T, rows, cols, 0, rows)
            edge_matmul_q4_q8b32_ref(nib, sc, nil, group, xq, xs, &yRef, T, rows, cols, 0, rows)
            XCTAssertEqual(y, [7, 7], "group \(group)")
            XCTAssertEqual(yRef, [7, 7], "group \(group)")
        }
        for group in [8, 16, 32, 64, 128, 256, 384, 1024] { XCTAssertTrue(edge_q4_q8_supported(group)) }
    }

    /// `edge_vecmat_f32` (the attention's decoding step) is one fma chain per output at every level.
    func testVecmatBitIdentical() {
        var rng = TestRNG(seed: 46)
        for d in [1, 7, 8, 31, 32, 33, 64, 100] {
            for n in [1, 2, 37, 300] {
                let ldv = d + 3
                let x = rng.floats(n, 0, 1), v = rng.floats(n * ldv, -2, 2)
                var ref = [Float](repeating: .nan, count: d)
                edge_vecmat_f32_ref(x, v, ldv, &ref, n, d)
                var expected = [Float](repeating: 0, count: d)
                for j in 0 ..< n { for c in 0 ..< d { expected[c] = fmaf(x[j], v[j * ldv + c], expected[c]) } }
                XCTAssertEqual(ref, expected, "d \(d) n \(n)")
                for level in [EDGE_KERNELS_AVX2, EDGE_KERNELS_AVX512, EDGE_KERNELS_NEON] where edge_kernels_force(level) {
                    var y = [Float](repeating: .nan, count: d)
                    edge_vecmat_f32(x, v, ldv, &y, n, d)
                    XCTAssertEqual(y, ref, "level \(level) d \(d) n \(n)")
                }
                _ = edge_kernels_force(EDGE_KERNELS_AUTO)
            }
        }
    }
}
