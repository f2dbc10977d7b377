import EdgeFormat
import EdgeKernels
import EdgeRuntime
import XCTest

/// `Linear.matmul` over dense symmetric q8 weights quantizes the activations in blocks of 32 and
/// runs `edge_matmul_q8_q8b32`: its output is bit-identical to the reference kernels called directly,
/// whatever the thread count or the number of tokens per call.
final class Q8ActivationTests: XCTestCase {
    override func setUp() { Linear.q8Activations = .q8 }
    override func tearDown() { Linear.q8Activations = .f32 }

    func testDenseSymmetricQ8LinearIsTheBlockKernel() throws {
        // 200 x 300 x 8 multiply-adds: above Linear's threading threshold; 300 columns end in a short block.
        let rows = 200, cols = 300, T = 8, nb = (cols + 31) / 32
        var s: UInt64 = 0x1234_5678
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let q = (0 ..< rows * cols).map { _ in UInt8(bitPattern: Int8(Int(next() % 255) - 127)) }
        let scales = (0 ..< rows).map { _ in Float(next() % 1000 + 1) / 50_000 }
        let x = (0 ..< T * cols).map { i in (Float(next() % 2001) / 1000 - 1) * Float(1 + (i % cols) / 32) }
        let linear = try Linear(name: "w", source: .encoded(.q8(name: "w", rows: rows, cols: cols, q: q, scales: scales, zeros: nil)))

        var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T * nb)
        var want = [Float](repeating: 0, count: T * rows)
        let wq = q.map { Int8(bitPattern: $0) }
        x.withUnsafeBufferPointer { xp in
            xq.withUnsafeMutableBufferPointer { qp in
                xs.withUnsafeMutableBufferPointer { sp in
                    for t in 0 ..< T {
                        edge_quantize_row_q8_b32_ref(xp.baseAddress! + t * cols, qp.baseAddress! + t * cols, sp.baseAddress! + t * nb, cols)
                    }
                }
            }
        }
        edge_matmul_q8_q8b32_ref(wq, scales, xq, xs, &want, T, rows, cols, 0, rows)

        for threads in [1, 3, 4] {
            XCTAssertEqual(linear.matmul(x, tokens: T, threads: threads), want, "threads \(threads)")
        }
        for t in 0 ..< T {
            let one = linear.matmul(Array(x[t * cols ..< (t + 1) * cols]), tokens: 1, threads: 2)
            XCTAssertEqual(one, Array(want[t * rows ..< (t + 1) * rows]), "token \(t) alone")
        }
        // Sanity: close to the dequantized weights times the f32 activations (block quantization error only).
        var worst = 0.0
        for t in 0 ..< T {
            for r in 0 ..< rows {
                var exact = 0.0, mass = 0.0
                for k in 0 ..< cols {
                    let p = Double(Float(wq[r * cols + k]) * scales[r]) * Double(x[t * cols + k])
                    exact += p
                    mass += abs(p)
                }
                worst = max(worst, abs(Double(want[t * rows + r]) - exact) / mass)
            }
        }
        XCTAssertLessThan(worst, 1e-2)
        XCTAssertGreaterThan(worst, 0, "activations are quantized")
    }
}
