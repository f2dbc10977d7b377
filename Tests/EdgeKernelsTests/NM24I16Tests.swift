import EdgeKernels
import XCTest

/// Packed 2:4 payloads of symmetric q8 values x int16 activations (`edge_spmm_nm24_q8_i16`, the
/// decoding kernel of the 2:4-pruned int8 files): every level bit-identical to the reference, and the
/// reference bit-identical to the dense `edge_matmul_q8_i16_ref` of the same weights, over odd shapes
/// (tail groups of 1, 2 and 3 columns) and token counts.
final class NM24I16Tests: XCTestCase {
    static let cols = [1, 2, 3, 4, 5, 15, 16, 17, 33, 255, 256, 257, 258, 576, 1001]
    static let rows = [1, 3, 8, 37]
    static let tokens = [1, 2, 4, 5, 9]

    func testNM24Q8I16() {
        var rng = TestRNG(seed: 46)
        let levels = forEachKernelLevel { level in
            for cols in Self.cols {
                for rows in Self.rows {
                    for T in Self.tokens where rows * cols * T < 150_000 {
                        let slots = (cols / 4) * 2 + min(2, cols % 4), ib = (slots * 2 + 7) / 8
                        let ld = edge_i16_stride(cols), nb = (cols + 255) / 256
                        var idx = [UInt8](repeating: 0, count: rows * ib), values = [Int8](repeating: 0, count: rows * slots)
                        var dense = [Int8](repeating: 0, count: rows * cols)
                        for r in 0 ..< rows {
                            var g = 0
                            while g * 4 < cols {
                                let len = min(4, cols - g * 4)
                                // min(2, len) distinct in-group columns, increasing.
                                var picks = Array(0 ..< len)
                                while picks.count > min(2, len) { picks.remove(at: rng.int(0 ... picks.count - 1)) }
                                for (j, c) in picks.enumerated() {
                                    let s = g * 2 + j, w = Int8(rng.int(-127 ... 127))
                                    idx[r * ib + s / 4] |= UInt8(c << (2 * (s % 4)))
                                    values[r * slots + s] = w
                                    dense[r * cols + g * 4 + c] = w
                                }
                                g += 1
                            }
                        }
                        let scale = rng.floats(rows, 0.001, 0.05)
                        let x = (0 ..< T * cols).map { k in rng.float(-1, 1) * Float(1 + (k / 256) % 3 * 9) }
                        var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
                        edge_quantize_rows_i16_ref(x, &xq, &xs, T, cols)
                        var want = [Float](repeating: 0, count: T * rows), got = want
                        edge_matmul_q8_i16_ref(dense, scale, xq, xs, &want, T, rows, cols, 0, rows)
                        edge_spmm_nm24_q8_i16_ref(idx, values, scale, xq, xs, &got, T, rows, cols, 0, rows)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "ref vs dense: rows \(rows) cols \(cols) T \(T)")
                        let wf = (0 ..< rows * cols).map { Float(dense[$0]) * scale[$0 / cols] }
                        let xf = (0 ..< T * cols).map { i in Float(xq[(i / cols) * ld + i % cols]) * xs[(i / cols) * nb + (i % cols) / 256] }
                        let expected = denseProduct(wf, xf, T: T, rows: rows, cols: cols)
                        let ix = Misaligned(idx), v = Misaligned(values), s = Misaligned(scale), xb = Misaligned(xq), sx = Misaligned(xs)
                        for (r0, r1) in [(0, rows), (rows / 3, rows - rows / 4)] where r0 < r1 {
                            checkGEMM("spmm_nm24_q8_i16", level: level, T: T, rows: rows, cols: cols,
                                      r0: r0, r1: r1, expected: expected, tolerance: 0,
                                      run: { edge_spmm_nm24_q8_i16(ix.pointer, v.pointer, s.pointer, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) },
                                      ref: { edge_spmm_nm24_q8_i16_ref(ix.pointer, v.pointer, s.pointer, xb.pointer, sx.pointer, $0, T, rows, cols, r0, r1) })
                        }
                    }
                }
            }
        }
        XCTAssertTrue(levels.contains("ref"))
    }
}
