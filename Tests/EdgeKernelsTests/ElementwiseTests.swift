import EdgeKernels
import Foundation
import XCTest

/// Norms, softmax, RoPE and activations: the reference kernels against plain double-precision
/// Swift, then every level against the reference.
final class ElementwiseTests: XCTestCase {
    private let sizes = Sweep.cols + [576, 1000]

    // MARK: reference vs double-precision math

    func testRMSNormMath() {
        var rng = TestRNG(seed: 11)
        for n in sizes {
            let x = rng.floats(n, -4, 4), w = rng.floats(n)
            var out = [Float](repeating: 0, count: n)
            edge_rmsnorm_ref(x, w, &out, n, 1e-5)
            let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
            let want = (0 ..< n).map { Double(w[$0]) * Double(x[$0]) / (ms + 1e-5).squareRoot() }
            assertClose(out, want, tol: Tolerance.math, "rmsnorm n=\(n)")
        }
    }

    func testLayerNormMath() {
        var rng = TestRNG(seed: 12)
        for n in sizes {
            let x = rng.floats(n, -4, 6), w = rng.floats(n), b = rng.floats(n)
            var out = [Float](repeating: 0, count: n)
            edge_layernorm_ref(x, w, b, &out, n, 1e-5)
            let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
            let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
            let want = (0 ..< n).map { (Double(x[$0]) - mean) / (variance + 1e-5).squareRoot() * Double(w[$0]) + Double(b[$0]) }
            assertClose(out, want, tol: Tolerance.math * 4, "layernorm n=\(n)")
        }
    }

    func testSoftmaxMath() {
        var rng = TestRNG(seed: 13)
        for n in sizes {
            var x = rng.floats(n, -20, 20)
            if n > 3 { x[1] = -.infinity }  // a masked position
            let m = Double(x.max()!)
            let e = x.map { exp(Double($0) - m) }
            let sum = e.reduce(0, +)
            edge_softmax_ref(&x, n)
            assertClose(x, e.map { $0 / sum }, tol: Tolerance.math, "softmax n=\(n)")
            if n > 3 { XCTAssertEqual(x[1], 0) }
            XCTAssertEqual(x.reduce(0.0) { $0 + Double($1) }, 1, accuracy: 1e-5)
        }
    }

    /// Hugging Face rotate_half: q*cos + rotate_half(q)*sin, rotate_half(q) = cat(-q2, q1).
    func testRopeMath() {
        var rng = TestRNG(seed: 14)
        for (headDim, heads, pos, theta) in [(4, 1, 1, Float(10000)), (64, 3, 0, 10000), (64, 9, 37, 10000), (96, 2, 5, 500000), (8, 2, 1000, 10000)] {
            let q = rng.floats(headDim * heads)
            var out = q
            edge_rope_ref(&out, headDim, heads, pos, theta)
            var want = [Double](repeating: 0, count: q.count)
            let half = headDim / 2
            for h in 0 ..< heads {
                for i in 0 ..< half {
                    let angle = Double(pos) / pow(Double(theta), Double(2 * i) / Double(headDim))
                    let a = Double(q[h * headDim + i]), b = Double(q[h * headDim + i + half])
                    want[h * headDim + i] = a * cos(angle) - b * sin(angle)
                    want[h * headDim + i + half] = b * cos(angle) + a * sin(angle)
                }
            }
            // float angles (as Hugging Face computes them) lose ~pos * 6e-8 radians
            assertClose(out, want, tol: max(Tolerance.math, Float(pos) * 5e-7), "rope d=\(headDim) pos=\(pos)")
            if pos == 0 { XCTAssertEqual(out, q) }
        }
        // By hand: d=4, pos=1: pair (0,2) turns by 1 rad, pair (1,3) by 0.01 rad.
        var v: [Float] = [1, 0, 0, 1]
        edge_rope_ref(&v, 4, 1, 1, 10000)
        assertClose(v, [cos(1.0), -sin(0.01), sin(1.0), cos(0.01)], tol: 1e-6, "rope by hand")
    }

    /// The two-step form the forward pass uses (angles once per position, then every layer's Q and
    /// K rotated by them) gives edge_rope_ref's bits.
    func testRopeTablesMatchRopeExactly() {
        var rng = TestRNG(seed: 16)
        for (headDim, heads, pos, theta) in [(4, 1, 1, Float(10000)), (64, 9, 0, 10000), (64, 3, 511, 10000), (96, 2, 4097, 500000), (8, 5, 100_000, 10000)] {
            let q = rng.floats(headDim * heads, -8, 8)
            var want = q, got = q
            edge_rope_ref(&want, headDim, heads, pos, theta)
            var c = [Float](repeating: .nan, count: headDim / 2), s = c
            edge_rope_angles(&c, &s, headDim, pos, theta)
            edge_rope_apply(&got, headDim, heads, c, s)
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "rope tables d=\(headDim) heads=\(heads) pos=\(pos)")
        }
    }

    func testGeluTanhMath() {
        var rng = TestRNG(seed: 15)
        for n in sizes {
            var x = rng.floats(n, -6, 6)
            let want = x.map { v -> Double in
                let d = Double(v)
                return 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            }
            edge_gelu_tanh_ref(&x, n)
            assertClose(x, want, tol: Tolerance.math, "gelu n=\(n)")
        }
    }

    func testSiluMulMath() {
        var rng = TestRNG(seed: 16)
        for n in sizes {
            let g = rng.floats(n, -10, 10), u = rng.floats(n, -2, 2)
            var out = [Float](repeating: 0, count: n)
            edge_silu_mul_ref(g, u, &out, n)
            let want = (0 ..< n).map { Double(g[$0]) / (1 + exp(-Double(g[$0]))) * Double(u[$0]) }
            assertClose(out, want, tol: Tolerance.math, "silu_mul n=\(n)")
        }
    }

    func testAddAxpyScaleDotMath() {
        var rng = TestRNG(seed: 17)
        for n in sizes {
            let a = rng.floats(n), b = rng.floats(n)
            var s = a
            edge_add_ref(&s, b, n)
            assertClose(s, (0 ..< n).map { Double(a[$0]) + Double(b[$0]) }, tol: 1e-7, "add n=\(n)")
            s = a
            edge_axpy_ref(&s, 0.25, b, n)
            assertClose(s, (0 ..< n).map { Double(a[$0]) + 0.25 * Double(b[$0]) }, tol: 1e-7, "axpy n=\(n)")
            s = a
            edge_scale_ref(&s, -3, n)
            assertClose(s, a.map { -3 * Double($0) }, tol: 1e-7, "scale n=\(n)")
            let dot = (0 ..< n).reduce(0.0) { $0 + Double(a[$1]) * Double(b[$1]) }
            XCTAssertEqual(Double(edge_dot_f32_ref(a, b, n)), dot, accuracy: 1e-6 * Double(n), "dot n=\(n)")
        }
    }

    // MARK: every level vs the reference

    func testAllLevelsMatchReference() {
        var rng = TestRNG(seed: 18)
        forEachKernelLevel { level in
            for n in sizes {
                let xv = rng.floats(n, -8, 8), wv = rng.floats(n), bv = rng.floats(n), uv = rng.floats(n)
                let x = Misaligned(xv), w = Misaligned(wv), b = Misaligned(bv), u = Misaligned(uv)
                func compare(_ what: String, tol: Float = Tolerance.elementwise, start: [Float]? = nil,
                             _ f: (UnsafeMutablePointer<Float>) -> Void, _ g: (UnsafeMutablePointer<Float>) -> Void) {
                    let o = Misaligned(start ?? [Float](repeating: 0, count: n)), oRef = Misaligned(start ?? [Float](repeating: 0, count: n))
                    f(o.pointer)
                    g(oRef.pointer)
                    assertClose(o.array, oRef.array.map(Double.init), tol: tol, "\(what) [\(level)] n=\(n)")
                }
                compare("rmsnorm", { edge_rmsnorm(x.pointer, w.pointer, $0, n, 1e-5) }, { edge_rmsnorm_ref(x.pointer, w.pointer, $0, n, 1e-5) })
                compare("layernorm", tol: Tolerance.elementwise * 4,
                        { edge_layernorm(x.pointer, w.pointer, b.pointer, $0, n, 1e-5) },
                        { edge_layernorm_ref(x.pointer, w.pointer, b.pointer, $0, n, 1e-5) })
                var masked = xv
                if n > 3 { masked[2] = -.infinity }
                compare("softmax", start: masked, { edge_softmax($0, n) }, { edge_softmax_ref($0, n) })
                if n > 3 {
                    let o = Misaligned(masked)
                    edge_softmax(o.pointer, n)
                    XCTAssertEqual(o.array[2], 0, "softmax [\(level)] masked entry")
                }
                compare("gelu_tanh", start: xv, { edge_gelu_tanh($0, n) }, { edge_gelu_tanh_ref($0, n) })
                compare("silu_mul", { edge_silu_mul(x.pointer, u.pointer, $0, n) }, { edge_silu_mul_ref(x.pointer, u.pointer, $0, n) })
                compare("add", tol: 0, start: xv, { edge_add($0, w.pointer, n) }, { edge_add_ref($0, w.pointer, n) })
                compare("axpy", start: xv, { edge_axpy($0, 0.3, w.pointer, n) }, { edge_axpy_ref($0, 0.3, w.pointer, n) })
                compare("scale", tol: 0, start: xv, { edge_scale($0, 0.7, n) }, { edge_scale_ref($0, 0.7, n) })
                let d = edge_dot_f32(x.pointer, w.pointer, n), dRef = edge_dot_f32_ref(x.pointer, w.pointer, n)
                let bound = (0 ..< n).reduce(Float(0)) { $0 + abs(xv[$1] * wv[$1]) }
                XCTAssertLessThanOrEqual(abs(d - dRef), Float(Tolerance.gemm) * bound + 1e-30, "dot [\(level)] n=\(n)")
                let q = Misaligned(xv)
                edge_rope(q.pointer, n & ~1, 1, 7, 10000)
                let qRef = Misaligned(xv)
                edge_rope_ref(qRef.pointer, n & ~1, 1, 7, 10000)
                XCTAssertEqual(q.array, qRef.array, "rope [\(level)] n=\(n)")
            }
            // The SIMD exponentials at the ends of their range: large negatives underflow to 0, large
            // positives do not overflow in silu, -Inf stays masked.
            let ends: [Float] = [-200, -100, -87.5, -80, 80, 87, 100, 200, -.infinity, 0]
            let e = Misaligned(ends), o = Misaligned(repeating: Float(0), count: ends.count)
            let ones = Misaligned([Float](repeating: 1, count: ends.count))
            edge_silu_mul(e.pointer, ones.pointer, o.pointer, ends.count)
            let silu = o.array
            for (i, v) in ends.enumerated() where v.isFinite {
                let want = Double(v) / (1 + exp(-Double(v)))
                XCTAssertEqual(Double(silu[i]), want, accuracy: max(1e-6 * abs(want), 1e-30), "silu [\(level)] x=\(v)")
            }
        }
    }
}
