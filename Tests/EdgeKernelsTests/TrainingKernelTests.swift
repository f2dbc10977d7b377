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
}
