import EdgeKernels
import XCTest

/// int16 activations quantized per (token, block of 256) (`edge_quantize_rows_i16`) times int8
/// weights (`edge_matmul_q8_i16`): every level bit-identical to the reference on random and odd
/// shapes, the reference against the double product of the dequantized operands, and the whole
/// quantized product against the exact f32 product within the int8-weight error alone.
final class Q8I16Tests: XCTestCase {
    static let cols = [1, 2, 7, 15, 31, 33, 255, 256, 257, 513, 576, 1001]
    static let rows = [1, 5, 16, 17, 33, 40, 131]
    static let tokens = [1, 2, 3, 4, 5, 6, 7, 12, 13]

    private func blocks(_ n: Int) -> Int { (n + Int(EDGE_I16_BLOCK) - 1) / Int(EDGE_I16_BLOCK) }

    /// Activations whose magnitude changes from block to block.
    private func activations(_ rng: inout TestRNG, _ n: Int) -> [Float] {
        (0 ..< n).map { k in rng.float(-1, 1) * Float(1 + (k / 256) % 3 * 9) }
    }

    private func quantize(_ x: [Float], T: Int, cols: Int) -> (q: [Int16], s: [Float]) {
        let ld = edge_i16_stride(cols), nb = blocks(cols)
        var q = [Int16](repeating: 99, count: T * ld), s = [Float](repeating: 0, count: T * nb)
        edge_quantize_rows_i16_ref(x, &q, &s, T, cols)
        return (q, s)
    }

    /// Every level's quantizer is bit-identical to the reference, which follows its spec.
    func testQuantizeRowsI16() {
        var rng = TestRNG(seed: 41)
        forEachKernelLevel { level in
            for cols in Q8I16Tests.cols + [0, 8, 9] {
                for T in [1, 3] {
                    var x = activations(&rng, T * cols)
                    if cols > 4 { x[2] = 0.5; x[3] = -0.5 }
                    let ld = edge_i16_stride(cols), nb = blocks(cols)
                    let xb = Misaligned(x)
                    let q = Misaligned(repeating: Int16(99), count: T * ld), qRef = Misaligned(repeating: Int16(99), count: T * ld)
                    let s = Misaligned(repeating: Float(-7), count: T * nb + 1), sRef = Misaligned(repeating: Float(-7), count: T * nb + 1)
                    edge_quantize_rows_i16(xb.pointer, q.pointer, s.pointer, T, cols)
                    edge_quantize_rows_i16_ref(xb.pointer, qRef.pointer, sRef.pointer, T, cols)
                    XCTAssertEqual(q.array, qRef.array, "[\(level)] cols=\(cols)")
                    XCTAssertEqual(s.array.map(\.bitPattern), sRef.array.map(\.bitPattern), "[\(level)] cols=\(cols)")
                    XCTAssertEqual(sRef.array[T * nb], -7, "wrote past the scales")
                    for t in 0 ..< T {
                        if ld > cols { XCTAssertEqual(qRef.array[t * ld + cols], 0, "pad") }
                        for b in 0 ..< nb {
                            let blk = Array(x[t * cols + b * 256 ..< t * cols + min(cols, b * 256 + 256)])
                            let d = (blk.map(abs).max() ?? 0) / 32767
                            XCTAssertEqual(sRef.array[t * nb + b], d)
                            let inv: Float = d == 0 ? 0 : 1 / d
                            XCTAssertEqual(Array(qRef.array[t * ld + b * 256 ..< t * ld + min(cols, b * 256 + 256)]),
                                           blk.map { Int16(($0 * inv).rounded(.toNearestOrEven)) })
                        }
                    }
                }
            }
        }
    }

    /// Every level (and the AVX-512 level's VNNI and AVX-512BW forms) bit-identical to the reference
    /// (odd shapes: T up to 4 (the row-streaming kernels) and not a multiple of 6 or 12, rows not a
    /// multiple of 16 or 32, cols odd and not a multiple of 256), only rows [r0, r1) written; the
    /// reference within 1e-5 * sum|w x| of the double product of the dequantized operands.
    func testMatmulQ8I16() {
        var rng = TestRNG(seed: 42)
        let levels = forEachIntegerKernelForm { level in
            for cols in Q8I16Tests.cols {
                for rows in Q8I16Tests.rows {
                    for T in Q8I16Tests.tokens where rows * cols * T < 400_000 || T == 7 {
                        for (r0, r1) in Sweep.rowRanges(rows) {
                            let wq = (0 ..< rows * cols).map { _ in Int8(rng.int(-127 ... 127)) }
                            let ws = rng.floats(rows, 0.001, 0.05)
                            let (xq, xs) = quantize(activations(&rng, T * cols), T: T, cols: cols)
                            let ld = edge_i16_stride(cols), nb = blocks(cols)
                            let wf = (0 ..< rows * cols).map { Float(wq[$0]) * ws[$0 / cols] }
                            let xf = (0 ..< T * cols).map { i in Float(xq[(i / cols) * ld + i % cols]) * xs[(i / cols) * nb + (i % cols) / 256] }
                            let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                            let w = Misaligned(wq), s = Misaligned(ws), x = Misaligned(xq), sx = Misaligned(xs)
                            checkGEMM("matmul_q8_i16", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                      expected: expected, tolerance: 0,
                                      run: { edge_matmul_q8_i16(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                      ref: { edge_matmul_q8_i16_ref(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }

    /// Extremes: +-32767 activations times -127 weights over full 256-column blocks (the largest
    /// int32 block sums) stay exact.
    func testMatmulQ8I16Extremes() {
        forEachIntegerKernelForm { level in
            for cols in [1, 255, 256, 257, 768] {
                for T in [1, 7, 13] {
                    let rows = 37, ld = edge_i16_stride(cols), nb = blocks(cols)
                    let w = [Int8](repeating: -127, count: rows * cols)
                    var x = [Int16](repeating: -32767, count: T * ld)
                    if ld > cols { for t in 0 ..< T { x[t * ld + cols] = 0 } }
                    var y = [Float](repeating: 0, count: T * rows)
                    edge_matmul_q8_i16(w, [Float](repeating: 1, count: rows), x, [Float](repeating: 1, count: T * nb), &y, T, rows, cols, 0, rows)
                    XCTAssertEqual(y, [Float](repeating: Float(127 * 32767 * cols), count: T * rows), "[\(level)] T=\(T) cols=\(cols)")
                }
            }
        }
    }

    /// Error bound against the exact f32 product: quantizing activations to int16 adds at most
    /// sum_k |w_k| * scale_b / 2 (scale_b = max|x in block| / 32767) to the int8-weight-only error;
    /// on Gaussian-like data the added error is under 1% of the weight-quantization error itself.
    func testMatmulQ8I16ErrorBound() {
        var rng = TestRNG(seed: 43)
        let T = 13, rows = 37, cols = 700, nb = blocks(cols), ld = edge_i16_stride(cols)
        let wq = (0 ..< rows * cols).map { _ in Int8(rng.int(-127 ... 127)) }
        let ws = rng.floats(rows, 0.001, 0.05)
        let x = activations(&rng, T * cols)
        let wf = (0 ..< rows * cols).map { Float(wq[$0]) * ws[$0 / cols] }
        let exactQW = denseProduct(wf, x, T: T, rows: rows, cols: cols)  // int8 weights, f32 activations
        let (xq, xs) = quantize(x, T: T, cols: cols)
        forEachKernelLevel { level in
            var y = [Float](repeating: 0, count: T * rows)
            edge_matmul_q8_i16(wq, ws, xq, xs, &y, T, rows, cols, 0, rows)
            for t in 0 ..< T {
                for r in 0 ..< rows {
                    var bound = 0.0
                    for k in 0 ..< cols { bound += Double(abs(wf[r * cols + k])) * Double(xs[t * nb + k / 256]) / 2 }
                    let i = t * rows + r
                    let err = abs(Double(y[i]) - exactQW.value[i])
                    XCTAssertLessThanOrEqual(err, bound + 1e-5 * exactQW.scale[i], "[\(level)] t=\(t) r=\(r)")
                }
            }
        }
        _ = ld
        // Against the f32 weights (before int8 rounding) the int16 step is negligible next to the int8 one.
        let wTrue = (0 ..< rows * cols).map { Float(wq[$0]) * ws[$0 / cols] + rng.float(-0.5, 0.5) * ws[$0 / cols] }
        let exact = denseProduct(wTrue, x, T: T, rows: rows, cols: cols).value
        var y = [Float](repeating: 0, count: T * rows)
        edge_matmul_q8_i16(wq, ws, xq, xs, &y, T, rows, cols, 0, rows)
        var e16 = 0.0, e8 = 0.0
        for i in 0 ..< T * rows {
            e16 += abs(Double(y[i]) - exactQW.value[i])
            e8 += abs(exactQW.value[i] - exact[i])
        }
        XCTAssertLessThan(e16, 0.01 * e8, "int16 activation error \(e16) vs int8 weight error \(e8)")
    }
}
