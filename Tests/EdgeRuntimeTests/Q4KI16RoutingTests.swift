import EdgeFormat
import EdgeKernels
import EdgeRuntime
import XCTest

/// q4k Linears under `.i16` (the default activations): int16 activations through `edge_matmul_q4k_i16` up to
/// `Linear.q4I16MaxTokens` tokens and `edge_gemm_q4k_i16` above (the same quantizer and thresholds as q4),
/// within a tight relative tolerance of the f32 path; under `.q8`, decoding (up to `Linear.q4I16MaxTokens`
/// tokens) runs the int8 block quantizer + `edge_matmul_q4k_q8b32` (bit for bit its reference at every
/// level and thread count, within the int8 activations' tolerance of f32), more tokens the f32 path.
final class Q4KI16RoutingTests: XCTestCase {
    private struct Case {
        let linear: Linear, tensor: EncodedTensor, layout: Q4KLayout, x: [Float]
    }

    private func makeCase(rows: Int, cols: Int, group: Int, bits: Int, seed: UInt64) throws -> Case {
        var s = seed
        func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        let layout = Q4KLayout(rows: rows, cols: cols, groupSize: group, subBits: bits)
        let top = UInt64(1 << bits)
        let u = (0 ..< rows * cols).map { _ in UInt8(next() % 16) }
        let sc = (0 ..< rows * layout.groups).map { _ in UInt8(next() % top) }
        let mn = (0 ..< rows * layout.groups).map { _ in UInt8(next() % top) }
        // Binary16-exact super values: D so that d = D * sc spans ~[0, 0.01], M so that m ~ 7.5 d on average
        // (the grid's midpoint, as a Q4_1-style min would be).
        let D = (0 ..< rows).map { _ in Float(Float16(Float(next() % 1000 + 200) / Float(top) / 100_000)) }
        let M = (0 ..< rows).map { r in r % 7 == 6 ? 0 : Float(Float16(Float(next() % 1000 + 200) / Float(top) / 13_000)) }
        let tensor = EncodedTensor.q4k(name: "w", rows: rows, cols: cols, groupSize: group, subBits: bits, u: u, sc: sc, mn: mn,
                                       superScale: D, superMin: M)
        let linear = try Linear(name: "w", source: .encoded(tensor))
        let x = (0 ..< 33 * cols).map { i in (Float(next() % 2001) / 1000 - 1) * Float(1 + (i % cols) / 32 % 4) }
        return Case(linear: linear, tensor: tensor, layout: layout, x: x)
    }

    /// The int16 kernels called directly on the int16-quantized activations (the reference kernels, so any
    /// level's dispatched result must equal them bit for bit).
    private func direct(_ c: Case, tokens T: Int) -> [Float] {
        let cols = c.layout.cols, rows = c.layout.rows, ld = edge_i16_stride(cols), nb = (cols + 255) / 256
        var xq = [Int16](repeating: 0, count: T * ld), xs = [Float](repeating: 0, count: T * nb)
        edge_quantize_rows_i16_ref(Array(c.x[0 ..< T * cols]), &xq, &xs, T, cols)
        var y = [Float](repeating: 0, count: T * rows)
        c.tensor.payload.withUnsafeBytes { b in
            let base = b.baseAddress!
            let wq = base.assumingMemoryBound(to: UInt8.self), sub = (base + c.layout.subOffset).assumingMemoryBound(to: UInt8.self)
            let sup = (base + c.layout.superOffset).assumingMemoryBound(to: UInt16.self)
            let f = T <= Linear.q4I16MaxTokens ? edge_matmul_q4k_i16_ref : edge_gemm_q4k_i16_ref
            f(wq, sub, sup, c.layout.groupSize, c.layout.subBits, xq, xs, &y, T, rows, cols, 0, rows)
        }
        return y
    }

    /// The int8 block quantizer + `edge_matmul_q4k_q8b32_ref` (`.q8` decoding).
    private func directQ8(_ c: Case, tokens T: Int) -> [Float] {
        let cols = c.layout.cols, rows = c.layout.rows, nb = (cols + 31) / 32
        var xq = [Int8](repeating: 0, count: T * cols), xs = [Float](repeating: 0, count: T * nb)
        for t in 0 ..< T {
            xq.withUnsafeMutableBufferPointer { q in
                xs.withUnsafeMutableBufferPointer { s in
                    c.x.withUnsafeBufferPointer { edge_quantize_row_q8_b32_ref($0.baseAddress! + t * cols, q.baseAddress! + t * cols, s.baseAddress! + t * nb, cols) }
                }
            }
        }
        var y = [Float](repeating: 0, count: T * rows)
        c.tensor.payload.withUnsafeBytes { b in
            let base = b.baseAddress!
            let wq = base.assumingMemoryBound(to: UInt8.self), sub = (base + c.layout.subOffset).assumingMemoryBound(to: UInt8.self)
            let sup = (base + c.layout.superOffset).assumingMemoryBound(to: UInt16.self)
            edge_matmul_q4k_q8b32_ref(wq, sub, sup, c.layout.groupSize, c.layout.subBits, xq, xs, &y, T, rows, cols, 0, rows)
        }
        return y
    }

    func testI16MatchesF32AndRoutesToTheInt16Kernels() throws {
        for (rows, cols, group, bits) in [(300, 576, 32, 6), (257, 200, 32, 8), (130, 1001, 64, 6), (96, 600, 256, 8)] {
            let c = try makeCase(rows: rows, cols: cols, group: group, bits: bits, seed: UInt64(0x5EED_0000 + rows))
            var weights = [Float](repeating: 0, count: rows * cols)
            weights.withUnsafeMutableBufferPointer { p in for r in 0 ..< rows { c.linear.row(r, into: p.baseAddress! + r * cols) } }
            for T in [1, 3, 5, 33] {
                let xt = Array(c.x[0 ..< T * cols])
                let f32 = c.linear.matmul(xt, tokens: T, threads: 2, activations: .f32)
                let i16 = c.linear.matmul(xt, tokens: T, threads: 2, activations: .i16)
                let tag = "rows \(rows) cols \(cols) g\(group) b\(bits) T \(T)"
                // Tight relative agreement: the only difference is the activations' int16 rounding (2^-16 of
                // each block's largest value) and float summation order.
                var num = 0.0, den = 0.0, worst = 0.0
                for t in 0 ..< T {
                    for r in 0 ..< rows {
                        let i = t * rows + r, e = Double(i16[i]) - Double(f32[i])
                        num += e * e
                        den += Double(f32[i]) * Double(f32[i])
                        var mass = 0.0  // sum |w x|: the scale of an output's rounding
                        for k in 0 ..< cols { mass += abs(Double(weights[r * cols + k]) * Double(xt[t * cols + k])) }
                        worst = max(worst, abs(e) / mass)
                    }
                }
                XCTAssertLessThan((num / den).squareRoot(), 1e-4, tag)
                XCTAssertLessThan(worst, 3e-4, tag)
                let q8 = c.linear.matmul(xt, tokens: T, threads: 2, activations: .q8)
                if T <= Linear.q4I16MaxTokens {
                    // int8 activations per block of 32: about 2^-8 of each block's largest value.
                    var qnum = 0.0, qworst = 0.0
                    for t in 0 ..< T {
                        for r in 0 ..< rows {
                            let i = t * rows + r, e = Double(q8[i]) - Double(f32[i])
                            qnum += e * e
                            var mass = 0.0
                            for k in 0 ..< cols { mass += abs(Double(weights[r * cols + k]) * Double(xt[t * cols + k])) }
                            qworst = max(qworst, abs(e) / mass)
                        }
                    }
                    XCTAssertLessThan((qnum / den).squareRoot(), 2e-2, "\(tag): .q8")
                    XCTAssertLessThan(qworst, 2e-2, "\(tag): .q8")
                    XCTAssertNotEqual(q8, f32, "\(tag): .q8 decodes with int8 activations")
                    let want = directQ8(c, tokens: T)
                    for level in [EDGE_KERNELS_REF, EDGE_KERNELS_AVX2, EDGE_KERNELS_AVX512] where edge_kernels_force(level) {
                        for threads in [1, 3] {
                            XCTAssertEqual(c.linear.matmul(xt, tokens: T, threads: threads, activations: .q8), want,
                                           "\(tag) level \(level) threads \(threads): .q8 is edge_matmul_q4k_q8b32")
                        }
                    }
                    _ = edge_kernels_force(EDGE_KERNELS_AUTO)
                } else {
                    XCTAssertEqual(q8, f32, "\(tag): .q8 keeps f32 activations for many tokens")
                }
                if T <= Linear.q4I16MaxTokens ? Linear.i16Q4RowsAccelerated : Linear.i16Q4Accelerated {
                    XCTAssertNotEqual(i16, f32, "\(tag): int16 activations")
                    let want = direct(c, tokens: T)
                    for threads in [1, 3] {
                        XCTAssertEqual(c.linear.matmul(xt, tokens: T, threads: threads, activations: .i16), want, "\(tag) threads \(threads)")
                    }
                } else {
                    XCTAssertEqual(i16, f32, "\(tag): no int16 kernel at this level")
                }
            }
        }
    }

    /// Group sizes the int16 and int8 kernels do not take keep the f32 path under `.i16` and `.q8`.
    func testUnsupportedGroupKeepsF32() throws {
        let c = try makeCase(rows: 40, cols: 100, group: 10, bits: 6, seed: 99)
        for T in [1, 5] {
            let xt = Array(c.x[0 ..< T * 100])
            XCTAssertEqual(c.linear.matmul(xt, tokens: T, threads: 2, activations: .i16),
                           c.linear.matmul(xt, tokens: T, threads: 2, activations: .f32))
            XCTAssertEqual(c.linear.matmul(xt, tokens: T, threads: 2, activations: .q8),
                           c.linear.matmul(xt, tokens: T, threads: 2, activations: .f32), "no int8 kernel for groups of 10")
        }
    }
}
