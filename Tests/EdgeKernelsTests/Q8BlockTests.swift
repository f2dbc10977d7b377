import EdgeKernels
import XCTest

/// int8 activations quantized in blocks of 32 (`edge_quantize_row_q8_b32`) times int8 weights
/// (`edge_matmul_q8_q8b32`): every level against the reference (bit-identical), and the reference
/// against a double-precision product of the dequantized values, over odd shapes and tails.
final class Q8BlockTests: XCTestCase {
    static let cols = [1, 5, 31, 32, 33, 63, 64, 65, 127, 576, 1536]
    static let rows = [1, 3, 8]
    static let tokens = [1, 3, 5]

    private func blocks(_ n: Int) -> Int { (n + Int(EDGE_Q8_BLOCK) - 1) / Int(EDGE_Q8_BLOCK) }

    /// Activations whose magnitude changes from block to block, so per-block scales matter.
    private func activations(_ rng: inout TestRNG, _ n: Int) -> [Float] {
        (0 ..< n).map { k in rng.float(-1, 1) * Float(1 + (k / 32) % 5 * 7) }
    }

    /// Per-block quantization with the reference quantizer: Xq [T, cols], scales [T, nb].
    private func quantize(_ x: [Float], T: Int, cols: Int) -> (q: [Int8], s: [Float]) {
        let nb = blocks(cols)
        var q = [Int8](repeating: 0, count: T * cols), s = [Float](repeating: 0, count: T * nb)
        x.withUnsafeBufferPointer { xp in
            q.withUnsafeMutableBufferPointer { qp in
                s.withUnsafeMutableBufferPointer { sp in
                    for t in 0 ..< T {
                        edge_quantize_row_q8_b32_ref(xp.baseAddress! + t * cols, qp.baseAddress! + t * cols,
                                                     sp.baseAddress! + t * nb, cols)
                    }
                }
            }
        }
        return (q, s)
    }

    /// Every level's block quantizer is bit-identical to the reference, writes exactly ceil(n/32)
    /// scales, and the reference follows its spec block by block.
    func testQuantizeRowQ8B32() {
        var rng = TestRNG(seed: 31)
        var inputs: [[Float]] = (Q8BlockTests.cols + [0, 2, 95, 96, 97]).map { activations(&rng, $0) }
        inputs.append([Float](repeating: 0, count: 40) + [0.5, -2, 1])  // an all-zero block, then a short one
        inputs.append([127, 0.5, -0.5, 1.5, 2.5, -127])                  // exact ties at scale 1: half-even
        let sentinel: Float = -7
        forEachKernelLevel { level in
            for x in inputs {
                let n = x.count, nb = blocks(n)
                let xb = Misaligned(x)
                let q = Misaligned(repeating: Int8(99), count: n), qRef = Misaligned(repeating: Int8(99), count: n)
                let s = Misaligned(repeating: sentinel, count: nb + 1), sRef = Misaligned(repeating: sentinel, count: nb + 1)
                edge_quantize_row_q8_b32(xb.pointer, q.pointer, s.pointer, n)
                edge_quantize_row_q8_b32_ref(xb.pointer, qRef.pointer, sRef.pointer, n)
                XCTAssertEqual(s.array.map(\.bitPattern), sRef.array.map(\.bitPattern), "[\(level)] n=\(n)")
                XCTAssertEqual(q.array, qRef.array, "[\(level)] n=\(n)")
                XCTAssertEqual(sRef.array[nb], sentinel, "n=\(n): wrote past ceil(n/32) scales")
                for b in 0 ..< nb {
                    let block = Array(x[b * 32 ..< min(n, b * 32 + 32)])
                    let d = (block.map(abs).max() ?? 0) / 127
                    XCTAssertEqual(sRef.array[b], d, "n=\(n) block \(b)")
                    let inv: Float = d == 0 ? 0 : 1 / d
                    XCTAssertEqual(Array(qRef.array[b * 32 ..< min(n, b * 32 + 32)]),
                                   block.map { Int8(($0 * inv).rounded(.toNearestOrEven)) }, "n=\(n) block \(b)")
                }
            }
        }
        let ties = Misaligned([Float](arrayLiteral: 127, 0.5, -0.5, 1.5, 2.5, -127)), q = Misaligned(repeating: Int8(0), count: 6)
        var s: Float = 0
        edge_quantize_row_q8_b32_ref(ties.pointer, q.pointer, &s, 6)
        XCTAssertEqual(q.array, [127, 0, 0, 2, 2, -127])
    }

    /// The reference is within 1e-5 * sum|w x| of the double product of the dequantized weights and
    /// activations; every level is bit-identical to the reference and writes only rows [r0, r1).
    func testMatmulQ8Q8B32() {
        var rng = TestRNG(seed: 32)
        forEachKernelLevel { level in
            for cols in Q8BlockTests.cols {
                for rows in Q8BlockTests.rows {
                    for T in Q8BlockTests.tokens {
                        for (r0, r1) in Sweep.rowRanges(rows) {
                            let wq = (0 ..< rows * cols).map { _ in Int8(rng.int(-127 ... 127)) }
                            let ws = rng.floats(rows, 0.001, 0.05)
                            let (xq, xs) = quantize(activations(&rng, T * cols), T: T, cols: cols)
                            let nb = blocks(cols)
                            let wf = (0 ..< rows * cols).map { Float(wq[$0]) * ws[$0 / cols] }
                            let xf = (0 ..< T * cols).map { i in Float(xq[i]) * xs[(i / cols) * nb + (i % cols) / 32] }
                            let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                            let w = Misaligned(wq), s = Misaligned(ws), x = Misaligned(xq), sx = Misaligned(xs)
                            checkGEMM("matmul_q8_q8b32", level: level, T: T, rows: rows, cols: cols, r0: r0, r1: r1,
                                      expected: expected, tolerance: 0,
                                      run: { edge_matmul_q8_q8b32(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                      ref: { edge_matmul_q8_q8b32_ref(w.pointer, s.pointer, x.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                        }
                    }
                }
            }
        }
    }

    /// Extreme int8 values: -127 * -127 everywhere (the largest products, the maddubs pairs closest
    /// to saturation) stays exact, tails included.
    func testMatmulQ8Q8B32Extremes() {
        forEachKernelLevel { level in
            for cols in [1, 31, 33, 64, 65, 1000] {
                let rows = 5, T = 3, nb = blocks(cols)
                let w = Misaligned([Int8](repeating: -127, count: rows * cols)), x = Misaligned([Int8](repeating: -127, count: T * cols))
                let s = Misaligned([Float](repeating: 1, count: rows)), sx = Misaligned([Float](repeating: 1, count: T * nb))
                let y = Misaligned(repeating: Float(0), count: T * rows)
                edge_matmul_q8_q8b32(w.pointer, s.pointer, x.pointer, sx.pointer, y.pointer, T, rows, cols, 0, rows)
                XCTAssertEqual(y.array, [Float](repeating: Float(127 * 127 * cols), count: T * rows), "[\(level)] cols=\(cols)")
            }
        }
    }

    /// With one large activation per row, block scales keep the other blocks' precision: the
    /// block-quantized product is over ten times closer to the f32 product than the per-row one.
    func testBlockScalesBeatRowScaleOnOutliers() {
        var rng = TestRNG(seed: 33)
        let rows = 8, cols = 256
        // Zero weights beside the outlier in its block, whose small activations round to 0 under either scale.
        let wq = (0 ..< rows * cols).map { i in i % cols < 32 && i % cols != 3 ? 0 : Int8(rng.int(-127 ... 127)) }
        let ws = [Float](repeating: 0.01, count: rows)
        var xv = rng.floats(cols, -0.05, 0.05)
        xv[3] = 60
        let wf = (0 ..< rows * cols).map { Float(wq[$0]) * ws[$0 / cols] }
        let exact = denseProduct(wf, xv, T: 1, rows: rows, cols: cols).value
        let (xq, xs) = quantize(xv, T: 1, cols: cols)
        var yBlock = [Float](repeating: 0, count: rows), yRow = yBlock
        edge_matmul_q8_q8b32(wq, ws, xq, xs, &yBlock, 1, rows, cols, 0, rows)
        var rq = [Int8](repeating: 0, count: cols), rs: Float = 0
        edge_quantize_row_q8(xv, &rq, &rs, cols)
        edge_matmul_q8_q8(wq, ws, rq, &rs, &yRow, 1, rows, cols, 0, rows)
        let errBlock = (0 ..< rows).map { abs(Double(yBlock[$0]) - exact[$0]) }.reduce(0, +)
        let errRow = (0 ..< rows).map { abs(Double(yRow[$0]) - exact[$0]) }.reduce(0, +)
        XCTAssertLessThan(errBlock * 10, errRow, "block error \(errBlock), row error \(errRow)")
    }
}
