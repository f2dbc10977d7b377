import EdgeKernels
import XCTest

/// The kernels training adds: the product with transposed weights (edge_matmul_f32_wt) and the
/// transpose; every level against the reference, over odd shapes and partial row ranges.
final class TrainingKernelTests: XCTestCase {
    /// Both GEMM kernels (dot below 12 tokens, packed from 12), panels past 16 rows and column blocks past 256.
    private let tokens = [1, 3, 5, 12, 13, 20]
    private let rowCounts = [1, 3, 8, 13, 17, 40]
    private let colCounts = [1, 2, 3, 7, 16, 17, 33, 65, 257, 300]

    /// W^T given: the reference against the dense product; each level against the reference and
    /// bit-identical to edge_matmul_f32 on W itself (the packed panels hold the same values).
    func testMatmulF32WithTransposedWeights() {
        var rng = TestRNG(seed: 71)
        forEachKernelLevel { level in
            for cols in colCounts {
                for rows in rowCounts {
                    for T in tokens {
                        let wv = rng.floats(rows * cols), xv = rng.floats(T * cols)
                        var wt = [Float](repeating: 0, count: rows * cols)
                        for r in 0 ..< rows { for k in 0 ..< cols { wt[k * rows + r] = wv[r * cols + k] } }
                        let w = Misaligned(wv), wT = Misaligned(wt), x = Misaligned(xv)
                        let expected = denseProduct(wv, xv, T: T, rows: rows, cols: cols)
                        for (r0, r1) in Sweep.rowRanges(rows) {
                            checkGEMM("matmul_f32_wt", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                      expected: expected, tolerance: Tolerance.gemm,
                                      run: { edge_matmul_f32_wt(wT.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                                      ref: { edge_matmul_f32_wt_ref(wT.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                            var a = [Float](repeating: 0, count: T * rows), b = a
                            edge_matmul_f32_wt(wT.pointer, x.pointer, &a, T, rows, cols, r0, r1)
                            edge_matmul_f32(w.pointer, x.pointer, &b, T, rows, cols, r0, r1)
                            XCTAssertEqual(a, b, "matmul_f32_wt vs matmul_f32 [\(level)] T=\(T) rows=\(rows) cols=\(cols) r=\(r0)..<\(r1)")
                        }
                    }
                }
            }
        }
    }

    /// Exact: the reference against the definition, each level against the reference; rows
    /// outside [r0, r1) are not written.
    func testTranspose() {
        var rng = TestRNG(seed: 72)
        let sentinel: Float = 12345.5
        forEachKernelLevel { level in
            for rows in [1, 2, 7, 8, 15, 16, 17, 33, 40] {
                for cols in Sweep.cols {
                    let src = Misaligned(rng.floats(rows * cols))
                    for (r0, r1) in Sweep.rowRanges(rows) {
                        let dst = Misaligned(repeating: sentinel, count: rows * cols)
                        let ref = Misaligned(repeating: sentinel, count: rows * cols)
                        edge_transpose_f32(src.pointer, dst.pointer, rows, cols, r0, r1)
                        edge_transpose_f32_ref(src.pointer, ref.pointer, rows, cols, r0, r1)
                        let tag = "transpose [\(level)] rows=\(rows) cols=\(cols) r=\(r0)..<\(r1)"
                        XCTAssertEqual(dst.array, ref.array, tag)
                        var want = [Float](repeating: sentinel, count: rows * cols)
                        for r in r0 ..< r1 { for c in 0 ..< cols { want[c * rows + r] = src.pointer[r * cols + c] } }
                        XCTAssertEqual(ref.array, want, tag + " (reference)")
                    }
                }
            }
        }
    }

    /// edge_bf16_round against its definition, written here on the bits: round to nearest, ties to
    /// even, subnormals to a signed zero, NaN kept, overflow to infinity.
    func testBF16Round() {
        func expected(_ v: Float) -> Float {
            if v.isNaN { return .nan }
            if v.isSubnormal || v == 0 { return v.sign == .minus ? -0.0 : 0.0 }
            let bits = v.bitPattern, low = bits & 0xFFFF, up = bits & 0xFFFF_0000
            let roundUp = low > 0x8000 || (low == 0x8000 && (bits >> 16) & 1 == 1)
            return Float(bitPattern: roundUp ? up &+ 0x10000 : up)
        }
        var rng = TestRNG(seed: 73)
        var values: [Float] = [1, -1, 1 + 1.0 / 256, 1 + 3.0 / 256, 1 + 1.0 / 512, 1 + 3.0 / 512,
                               Float(bitPattern: 0x0001_16c2), Float(bitPattern: 0x8020_aac8),  // the subnormals 1e-40, -3e-39
                               .leastNormalMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, 0, -0.0]
        values += (0 ..< 2000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        for v in values {
            let got = edge_bf16_round(v), want = expected(v)
            if want.isNaN { XCTAssertTrue(got.isNaN, "bf16(\(v))"); continue }
            XCTAssertEqual(got.bitPattern, want.bitPattern, "bf16(\(v)) = \(got), want \(want)")
        }
        // bfloat16 values near 1 are 1/128 apart: ties go to the even neighbour, others to the nearest.
        XCTAssertEqual(edge_bf16_round(1 + 1.0 / 256), 1)
        XCTAssertEqual(edge_bf16_round(1 + 3.0 / 256), 1 + 2.0 / 128)
        XCTAssertEqual(edge_bf16_round(1 + 3.0 / 512), 1 + 1.0 / 128)
        XCTAssertEqual(edge_bf16_round(1 + 1.0 / 512), 1)
    }

    /// The bfloat16 products: the reference against the double product of the rounded operands; every
    /// level (and, where the CPU has AVX512_BF16, the AVX-512 level with and without vdpbf16ps)
    /// bit-identical to the reference, for W and for W^T, over odd shapes, several column blocks
    /// and partial row ranges.
    func testMatmulBF16() {
        var rng = TestRNG(seed: 74)
        var forms: [String] = []
        forEachKernelLevel { level in
            var runs = [level]
            if String(cString: edge_kernels_bf16_name()).contains("-bf16-") { runs.append(level + " without vdpbf16ps") }
            for form in runs {
                if form != level { XCTAssertTrue(edge_kernels_set_bf16_native(false)) }
                defer { _ = edge_kernels_set_bf16_native(true) }
                forms.append(form + ": " + String(cString: edge_kernels_bf16_name()))
                for cols in [1, 2, 3, 17, 256, 257, 600] {
                    for rows in [1, 13, 33, 40] {
                        for T in [1, 5, 13, 20] {
                            let wv = rng.floats(rows * cols, -2, 2), xv = rng.floats(T * cols, -3, 3)
                            var wt = [Float](repeating: 0, count: rows * cols)
                            for r in 0 ..< rows { for k in 0 ..< cols { wt[k * rows + r] = wv[r * cols + k] } }
                            let w = Misaligned(wv), wT = Misaligned(wt), x = Misaligned(xv)
                            let expected = denseProduct(wv.map { edge_bf16_round($0) }, xv.map { edge_bf16_round($0) },
                                                        T: T, rows: rows, cols: cols)
                            for (r0, r1) in Sweep.rowRanges(rows) {
                                checkGEMM("matmul_bf16", level: form, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                          expected: expected, tolerance: 0,
                                          run: { edge_matmul_bf16(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                                          ref: { edge_matmul_bf16_ref(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                                checkGEMM("matmul_bf16_wt", level: form, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                          expected: expected, tolerance: 0,
                                          run: { edge_matmul_bf16_wt(wT.pointer, x.pointer, $0, T, rows, cols, r0, r1) },
                                          ref: { edge_matmul_bf16(w.pointer, x.pointer, $0, T, rows, cols, r0, r1) })
                            }
                        }
                    }
                }
            }
        }
        print("bf16 products checked: " + forms.joined(separator: "; "))
        XCTAssertTrue(forms.contains { $0.hasPrefix("ref") })
    }
}
