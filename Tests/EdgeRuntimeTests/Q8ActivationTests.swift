import EdgeFormat
import EdgeKernels
import EdgeRuntime
import XCTest

/// `Linear.matmul` over dense symmetric q8 weights with `activations: .q8` quantizes the activations
/// in blocks of 32 and runs `edge_matmul_q8_q8b32`: its output is bit-identical to the reference kernels called directly,
/// whatever the thread count or the number of tokens per call.
final class Q8ActivationTests: XCTestCase {
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
            XCTAssertEqual(linear.matmul(x, tokens: T, threads: threads, activations: .q8), want, "threads \(threads)")
        }
        for t in 0 ..< T {
            let one = linear.matmul(Array(x[t * cols ..< (t + 1) * cols]), tokens: 1, threads: 2, activations: .q8)
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

    /// q4 weights when decoding (up to `Linear.q4I16MaxTokens` tokens): `.q8` is exactly the int8
    /// block quantizer + `edge_matmul_q4_q8b32` (any thread count, symmetric or not, at every level),
    /// `.i16` exactly `edge_matmul_q4_i16` where the level has it; more tokens stay on f32 activations.
    func testQ4DecodingRoutes() throws {
        let rows = 300, cols = 576, group = 64, groups = cols / group, nb = cols / 32
        var s: UInt64 = 0x9876_5431
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let u = (0 ..< rows * cols).map { _ in UInt8(next() % 16) }
        let scales = (0 ..< rows * groups).map { _ in Float(next() % 1000 + 1) / 50_000 }
        let zeros = (0 ..< rows * groups).map { _ in UInt8(next() % 16) }
        let x = (0 ..< 5 * cols).map { i in (Float(next() % 2001) / 1000 - 1) * Float(1 + (i % cols) / 32 % 4) }
        for symmetric in [true, false] {
            let tensor = EncodedTensor.q4(name: "w", rows: rows, cols: cols, groupSize: group, u: u, scales: scales, zeros: symmetric ? nil : zeros)
            let linear = try Linear(name: "w", source: .encoded(tensor))
            let layout = Q4Layout(rows: rows, cols: cols, groupSize: group, symmetric: symmetric)
            let bytes = tensor.payload
            func q4q8(_ T: Int) -> [Float] {
                var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T * nb)
                var out = [Float](repeating: 0, count: T * rows)
                for t in 0 ..< T {
                    xq.withUnsafeMutableBufferPointer { qp in
                        xs.withUnsafeMutableBufferPointer { sp in
                            x.withUnsafeBufferPointer { edge_quantize_row_q8_b32_ref($0.baseAddress! + t * cols, qp.baseAddress! + t * cols, sp.baseAddress! + t * nb, cols) }
                        }
                    }
                }
                bytes.withUnsafeBytes { b in
                    let base = b.baseAddress!
                    edge_matmul_q4_q8b32_ref(base.assumingMemoryBound(to: UInt8.self), (base + layout.scaleOffset).assumingMemoryBound(to: UInt16.self),
                                             symmetric ? nil : (base + layout.zeroOffset).assumingMemoryBound(to: UInt8.self), group,
                                             xq, xs, &out, T, rows, cols, 0, rows)
                }
                return out
            }
            for T in 1 ... Linear.q4I16MaxTokens {
                let want = q4q8(T), xt = Array(x[0 ..< T * cols])
                for level in [EDGE_KERNELS_REF, EDGE_KERNELS_AVX2, EDGE_KERNELS_AVX512] where edge_kernels_force(level) {
                    for threads in [1, 2, 3] {
                        XCTAssertEqual(linear.matmul(xt, tokens: T, threads: threads, activations: .q8), want,
                                       "T \(T) level \(level) threads \(threads) symmetric \(symmetric)")
                    }
                }
                _ = edge_kernels_force(EDGE_KERNELS_AUTO)
                if Linear.i16Q4RowsAccelerated {
                    XCTAssertNotEqual(linear.matmul(xt, tokens: T, threads: 2, activations: .i16), want, "i16 is its own kernel")
                }
            }
            // More tokens: `.q8` keeps f32 activations; `.i16` is the int16 quantizer + edge_gemm_q4_i16.
            let many = Array(x[0 ..< 5 * cols])
            XCTAssertEqual(linear.matmul(many, tokens: 5, threads: 2, activations: .q8), linear.matmul(many, tokens: 5, threads: 2, activations: .f32))
            if Linear.i16Q4Accelerated {
                let ld = edge_i16_stride(cols), nb16 = (cols + 255) / 256
                var xq = [Int16](repeating: 0, count: 5 * ld), xs = [Float](repeating: 0, count: 5 * nb16)
                edge_quantize_rows_i16_ref(many, &xq, &xs, 5, cols)
                var want = [Float](repeating: 0, count: 5 * rows)
                bytes.withUnsafeBytes { b in
                    let base = b.baseAddress!
                    edge_gemm_q4_i16_ref(base.assumingMemoryBound(to: UInt8.self), (base + layout.scaleOffset).assumingMemoryBound(to: UInt16.self),
                                         symmetric ? nil : (base + layout.zeroOffset).assumingMemoryBound(to: UInt8.self), group,
                                         xq, xs, &want, 5, rows, cols, 0, rows)
                }
                for threads in [1, 2, 3] {
                    XCTAssertEqual(linear.matmul(many, tokens: 5, threads: threads, activations: .i16), want, "gemm, threads \(threads)")
                }
            }
        }
    }

    /// `.i16`: from `Linear.i16MinTokens` tokens up (on AVX2 / AVX-512), `Linear.matmul` is the
    /// int16-activation kernel (bit-identical to the reference quantizer + kernel, any thread
    /// count); below, or without the SIMD kernel, the f32 path; `.f32` keeps it at every size.
    func testDenseSymmetricQ8LinearI16() throws {
        let rows = 200, cols = 300, nb = (cols + 255) / 256, ld = edge_i16_stride(cols)
        var s: UInt64 = 0x9876_5432
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let q = (0 ..< rows * cols).map { _ in UInt8(bitPattern: Int8(Int(next() % 255) - 127)) }
        let scales = (0 ..< rows).map { _ in Float(next() % 1000 + 1) / 50_000 }
        let linear = try Linear(name: "w", source: .encoded(.q8(name: "w", rows: rows, cols: cols, q: q, scales: scales, zeros: nil)))
        let wq = q.map { Int8(bitPattern: $0) }
        for T in [Linear.i16MinTokens, 4, 12, 29] {
            let x = (0 ..< T * cols).map { i in (Float(next() % 2001) / 1000 - 1) * Float(1 + (i % cols) / 32) }
            var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
            edge_quantize_rows_i16_ref(x, &xq, &xs, T, cols)
            var wantI16 = [Float](repeating: 0, count: T * rows), wantF32 = wantI16
            edge_matmul_q8_i16_ref(wq, scales, xq, xs, &wantI16, T, rows, cols, 0, rows)
            edge_matmul_q8_f32(wq, scales, nil, x, &wantF32, T, rows, cols, 0, rows)
            for threads in [1, 3] {
                let got = linear.matmul(x, tokens: T, threads: threads, activations: .i16)
                XCTAssertEqual(linear.matmul(x, tokens: T, threads: threads), got, "T \(T): .i16 is the default")
                if T >= Linear.i16MinTokens && Linear.i16Accelerated {
                    XCTAssertEqual(got, wantI16, "T \(T) threads \(threads)")
                    XCTAssertNotEqual(got, wantF32, "T \(T): activations are quantized")
                    // Within 1e-4 of sum_k |w x| (the int16 step: at most |w| * max|x| / 65534 per term).
                    for t in 0 ..< T {
                        for r in 0 ..< rows {
                            var mass: Float = 0
                            for k in 0 ..< cols { mass += abs(Float(wq[r * cols + k]) * scales[r] * x[t * cols + k]) }
                            XCTAssertEqual(got[t * rows + r], wantF32[t * rows + r], accuracy: 1e-4 * mass)
                        }
                    }
                } else {
                    XCTAssertEqual(got, wantF32, "T \(T) threads \(threads): below the threshold, f32")
                }
            }
            XCTAssertEqual(linear.matmul(x, tokens: T, threads: 2, activations: .f32), wantF32, "T \(T) .f32")
        }
    }

    /// Without a SIMD int16 kernel (the reference level forced) `.i16` keeps the f32 path.
    func testI16FallsBackWithoutSIMD() throws {
        let rows = 40, cols = 64, T = 16
        let q = (0 ..< rows * cols).map { UInt8(bitPattern: Int8($0 % 255 - 127)) }
        let scales = [Float](repeating: 0.01, count: rows)
        let linear = try Linear(name: "w", source: .encoded(.q8(name: "w", rows: rows, cols: cols, q: q, scales: scales, zeros: nil)))
        let x = (0 ..< T * cols).map { Float($0 % 17) / 7 - 1 }
        XCTAssertTrue(edge_kernels_force(EDGE_KERNELS_REF))
        defer { _ = edge_kernels_force(EDGE_KERNELS_AUTO) }
        XCTAssertFalse(Linear.i16Accelerated)
        var want = [Float](repeating: 0, count: T * rows)
        edge_matmul_q8_f32(q.map { Int8(bitPattern: $0) }, scales, nil, x, &want, T, rows, cols, 0, rows)
        XCTAssertEqual(linear.matmul(x, tokens: T, threads: 1, activations: .i16), want)
    }
}
