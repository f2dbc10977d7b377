import EdgeFormat
import EdgeRuntime
import TestSupport
import XCTest
@testable import Training

/// The memory savers of training (issue 14): fake-quantized weights kept in their encoding,
/// bf16 AdamW moments with stochastic rounding, one-bit masks. Each is checked against the plain
/// f32 form it replaces.
final class LeanTrainingTests: XCTestCase {
    /// Symmetric int8 per row, as the quantize pass stores it: the dequantized values and their q8 encoding.
    static func int8(_ name: String, shape: [Int]) -> ([Float]) throws -> FakeQuantized<Float> {
        { values in
            let rows = shape[0], cols = shape[1]
            var q = [UInt8](repeating: 0, count: values.count), scales = [Float](repeating: 0, count: rows)
            var out = values
            for r in 0 ..< rows {
                let maxAbs = (0 ..< cols).map { abs(values[r * cols + $0]) }.max() ?? 0
                let s = maxAbs > 0 ? maxAbs / 127 : 1
                scales[r] = s
                for j in 0 ..< cols {
                    let c = max(-127, min(127, (values[r * cols + j] / s).rounded()))
                    q[r * cols + j] = UInt8(bitPattern: Int8(c))
                    out[r * cols + j] = c * s
                }
            }
            return FakeQuantized(values: out, encoded: .q8(name: name, rows: rows, cols: cols, q: q, scales: scales, zeros: nil))
        }
    }

    func quantizedStudent(_ f: Fixture, keepEncoded: Bool) throws -> TrainModel<Float> {
        let m = try f.student(trainable: { _ in true })
        m.keepsEncodedWeights = keepEncoded
        for p in m.params where p.shape.count == 2 { m.quantizers[p.name] = Self.int8(p.name, shape: p.shape) }
        try m.refresh()
        return m
    }

    /// Keeping the fake-quantized weights encoded changes nothing: the same logits and gradients,
    /// bit for bit, as keeping them as f32 values; and the matrices are held encoded (a quarter of the bytes).
    func testEncodedFakeQuantizedWeightsGiveTheSameGradients() throws {
        let f = try Fixture("tiny-llama")
        let a = try quantizedStudent(f, keepEncoded: true), b = try quantizedStudent(f, keepEncoded: false)
        var encoded = 0
        for p in a.params where p.shape.count == 2 {
            if case .encoded = p.effective { encoded += 1 } else { XCTFail("\(p.name) is not kept encoded") }
        }
        XCTAssertGreaterThan(encoded, 0)
        for p in b.params where p.shape.count == 2 {
            guard case .values = p.effective else { return XCTFail("\(p.name): keepsEncodedWeights off keeps values") }
        }
        let ids = Array(try f.tokens().prefix(48))
        for m in [a, b] { m.zeroGrad() }
        let (la, ca) = a.forward([ids]), (lb, cb) = b.forward([ids])
        XCTAssertEqual(la.array, lb.array, "logits")
        XCTAssertNotEqual(la.array, try f.student(trainable: { _ in true }).forward([ids]).logits.array, "fake quantization changes the logits")
        a.backward(la, cache: ca)
        b.backward(lb, cache: cb)
        for (pa, pb) in zip(a.params, b.params) { XCTAssertEqual(pa.grad?.array, pb.grad?.array, pa.name) }
    }

    /// An encoding that does not decode to the fake-quantized values is not trusted: the values are kept.
    func testAnEncodingThatDisagreesIsNotKept() throws {
        let f = try Fixture("tiny-llama")
        let m = try f.student(trainable: { _ in true })
        let p = try XCTUnwrap(m.params.first { $0.shape.count == 2 && $0.name.hasPrefix("blk.") })
        let q = Self.int8(p.name, shape: p.shape)
        m.quantizers[p.name] = { v in
            var r = try q(v)
            r.values[0] += 1  // no longer what the payload holds
            return r
        }
        try m.refresh()
        guard case .values = p.effective else { return XCTFail("kept an encoding that decodes to other values") }
    }

    /// 12 steps of 2 x 32 tokens at lr 1e-3, no evaluation between: the runs the "tracks f32" tests compare.
    static var shortRun: TrainOptions {
        var o = TrainOptions()
        o.steps = 12
        o.batch = 2
        o.length = 32
        o.lr = 1e-3
        o.evalEvery = 0
        return o
    }

    /// How far the reference run's weights moved from `start` and how far the other run's ended from
    /// them (sums of squares over every trained tensor).
    static func drift(_ reference: [[Float]], _ other: [[Float]], from start: [[Float]]) -> (moved: Double, apart: Double) {
        var moved = 0.0, apart = 0.0
        for (i, s) in start.enumerated() {
            for j in s.indices {
                let a = Double(reference[i][j]), b = Double(other[i][j])
                moved += (a - Double(s[j])) * (a - Double(s[j]))
                apart += (a - b) * (a - b)
            }
        }
        return (moved, apart)
    }

    /// bf16 moments follow f32 moments: on the fixture, 30 AdamW steps from the same gradients stay
    /// within a small fraction of the distance the weights moved.
    func testBF16MomentsTrackF32() throws {
        let f = try Fixture("tiny-llama")
        var opts = Self.shortRun
        var finals: [MomentPrecision: [[Float]]] = [:]
        for precision in MomentPrecision.allCases {
            opts.moments = precision
            let m = try f.student()
            let t = try Trainer(model: m, tokens: try f.tokens(), options: opts) { try f.runtime.logits($0) }
            XCTAssertEqual(t.optimizer.momentBytes, t.optimizer.params.reduce(0) { $0 + $1.value.count } * (precision == .f32 ? 8 : 4))
            _ = try t.run()
            finals[precision] = m.params.filter(\.trainable).map(\.value.array)
        }
        let (moved, apart) = Self.drift(finals[.f32]!, finals[.bf16]!, from: try f.student().params.filter(\.trainable).map(\.value.array))
        XCTAssertGreaterThan(moved, 0)
        XCTAssertLessThan(apart.squareRoot(), 0.05 * moved.squareRoot(), "bf16 moments drift from f32: \(apart.squareRoot()) vs moved \(moved.squareRoot())")
    }

    /// bfloat16 products in the linear layers (`--matmul bf16`): training follows the f32 run closely
    /// but not exactly (the products are rounded), and the held-out figure is measured with float
    /// products whatever the training uses.
    func testBF16MatmulTracksF32() throws {
        let f = try Fixture("tiny-llama")
        let opts = Self.shortRun
        var finals: [Bool: [[Float]]] = [:]
        for bf16 in [false, true] {
            let m = try f.student()
            m.bf16Matmul = bf16
            let t = try Trainer(model: m, tokens: try f.tokens(), options: opts) { try f.runtime.logits($0) }
            let metric = try t.heldOutMetric()
            XCTAssertEqual(m.bf16Matmul, bf16, "heldOutMetric restores the setting")
            m.bf16Matmul = false
            XCTAssertEqual(try t.heldOutMetric(), metric, "the held-out figure uses float products")
            m.bf16Matmul = bf16
            _ = try t.run()
            finals[bf16] = m.params.filter(\.trainable).map(\.value.array)
        }
        let (moved, apart) = Self.drift(finals[false]!, finals[true]!, from: try f.student().params.filter(\.trainable).map(\.value.array))
        XCTAssertGreaterThan(moved, 0)
        XCTAssertGreaterThan(apart, 0, "bf16 products changed nothing: the bf16 path did not run")
        XCTAssertLessThan(apart.squareRoot(), 0.05 * moved.squareRoot(), "bf16 products drift from f32: \(apart.squareRoot()) vs moved \(moved.squareRoot())")
    }

    /// Stochastic rounding keeps the second moment growing where round-to-nearest bf16 would stall:
    /// a constant gradient of 1 for 3000 steps gives v = 1 - 0.999^3000 = 0.95; nearest rounding
    /// stops near 0.4 (the increments fall below half a bf16 step).
    func testStochasticRoundingDoesNotStall() throws {
        let n = 1024
        let p = Param<Float>(name: "w", shape: [n], values: [Float](repeating: 0, count: n), trainable: true, mask: nil)
        var c = AdamW<Float>.Config(lr: 0)
        c.moments = .bf16
        c.clip = 0
        c.totalSteps = 3000
        let o = AdamW(params: [p], config: c)
        for _ in 0 ..< 3000 {
            p.grad!.p.update(repeating: 1, count: n)
            o.update()
        }
        let v = o.v[0].floats
        let mean = v.reduce(0) { $0 + Double($1) } / Double(n)
        let exact = 1 - pow(0.999, 3000.0)
        XCTAssertEqual(mean, exact, accuracy: 0.01 * exact, "mean second moment \(mean), exact \(exact)")
        // Nearest rounding of the same recurrence stalls well below.
        var nearest: Float = 0
        for _ in 0 ..< 3000 { nearest = Float(bitPattern: UInt32(roundBF16(0.999 * nearest + 0.001, noise: 0x7FFF)) << 16) }
        XCTAssertLessThan(Double(nearest), 0.8 * exact, "the test would not tell stochastic from nearest rounding")
        let m = o.m[0].floats
        XCTAssertEqual(m.reduce(0) { $0 + Double($1) } / Double(n), 1, accuracy: 0.01)
    }

    /// A bf16 checkpoint restores the moments exactly (they are written widened to f32).
    func testBF16MomentsRoundTripThroughF32() {
        let values: [Float] = [0, 1, -1, 3.140625, 1e-30, -7.5e12, .infinity]
        let m = AdamW<Float>.Moment(count: values.count, precision: .bf16)
        values.withUnsafeBufferPointer { m.load($0) }
        let once = m.floats
        once.withUnsafeBufferPointer { m.load($0) }
        XCTAssertEqual(m.floats, once)
        XCTAssertEqual(once[1], 1)
        XCTAssertEqual(once[3], 3.140625)
    }

    /// Pool size classes: never below the request, at most a quarter above it (past 4 KiB), and
    /// buffers of nearby sizes (sentences of different lengths) share one block.
    func testBufPoolSizeClasses() {
        for bytes in [1, 63, 64, 65, 4096, 4097, 5000, 8191, 8192, 1 << 20, (1 << 20) + 1, 3_000_001] {
            let c = BufPool.sizeClass(bytes)
            XCTAssertGreaterThanOrEqual(c, bytes)
            XCTAssertEqual(c % 64, 0, "\(bytes)")
            if bytes > 4096 { XCTAssertLessThanOrEqual(Double(c), 1.25 * Double(bytes), "\(bytes)") }
        }
        let pool = BufPool()
        var a: Buf<Float>? = Buf(100_000, pool: pool, zeroed: false)
        let first = a!.p
        a = nil
        let b = Buf<Float>(101_000, pool: pool, zeroed: true)  // the same class: the same memory, zeroed
        XCTAssertEqual(b.p, first)
        XCTAssertTrue(b.array.allSatisfy { $0 == 0 })
        let c = Buf<Float>(100_000, pool: pool, zeroed: false)  // b is alive: fresh memory
        XCTAssertNotEqual(c.p, first)
    }

    func testBitMask() {
        let bools = (0 ..< 200).map { $0 % 3 == 0 || $0 == 199 }
        let m = BitMask(bools)
        XCTAssertEqual(m.count, 200)
        for i in bools.indices { XCTAssertEqual(m[i], bools[i], "bit \(i)") }
        XCTAssertEqual(m.words.count, 4)
        // zero(_:in:) clears exactly the cleared bits inside the range, over word edges and within one word.
        for range in [0 ..< 200, 1 ..< 199, 63 ..< 65, 64 ..< 128, 5 ..< 9, 130 ..< 131, 7 ..< 7] {
            var v = (0 ..< 200).map { Float($0) + 0.5 }
            v.withUnsafeMutableBufferPointer { m.zero($0.baseAddress!, in: range) }
            for i in 0 ..< 200 {
                XCTAssertEqual(v[i], range.contains(i) && !bools[i] ? 0 : Float(i) + 0.5, "element \(i), range \(range)")
            }
        }
    }

    /// A product added to C in blocks of rows (a small temporary) is the product added at once.
    func testAccumulatingByRowBlocksIsExact() {
        let m = 3000, n = 400, k = 24  // 1.2 M outputs: three blocks
        var rng = SplitMix64(seed: 7)
        func randoms(_ count: Int) -> [Float] { (0 ..< count).map { _ in Float(Int(rng.next() % 2001) - 1000) / 997 } }
        let a = randoms(m * k), bt = randoms(n * k), bn = randoms(k * n), c0 = randoms(m * n)
        for nn in [false, true] {
            var blocks = c0, whole = [Float](repeating: 0, count: m * n)
            let b = nn ? bn : bt
            if nn {
                Float.gemmNN(a, b, &blocks, m: m, n: n, k: k, accumulate: true, threads: 2)
                Float.gemmNN(a, b, &whole, m: m, n: n, k: k, accumulate: false, threads: 2)
            } else {
                Float.gemm(a, b, &blocks, m: m, n: n, k: k, accumulate: true, threads: 2)
                Float.gemm(a, b, &whole, m: m, n: n, k: k, accumulate: false, threads: 2)
            }
            for i in whole.indices { whole[i] += c0[i] }
            XCTAssertEqual(blocks, whole, nn ? "gemmNN" : "gemm")
        }
    }

    /// A weight gradient made in blocks of rows (dy transposed a block at a time) is the gradient
    /// made at once (whole transpose, one product), bit for bit, written or added.
    func testWeightGradientInRowBlocksIsExact() throws {
        let f = try Fixture("tiny-llama")
        let m = try f.student()
        let n = 300, out = 5000, inp = 8  // 1.5 M dy values: two blocks of rows
        var rng = SplitMix64(seed: 11)
        func randoms(_ count: Int) -> [Float] { (0 ..< count).map { _ in Float(Int(rng.next() % 2001) - 1000) / 997 } }
        let dy = Buf(randoms(n * out)), x = Buf(randoms(n * inp)), w0 = randoms(out * inp)
        let w = Param<Float>(name: "w", shape: [out, inp], values: w0, trainable: true, mask: nil)
        var dyT = [Float](repeating: 0, count: out * n), once = [Float](repeating: 0, count: out * inp)
        Float.transpose(dy.p, &dyT, rows: n, cols: out, threads: 2)
        Float.gemmNN(dyT, x.p, &once, m: out, n: inp, k: n, accumulate: false, threads: 2)
        w.gradPending = true
        m.linearBackward(dy, input: x, rows: n, w, nil, dx: Buf(n * inp), accumulate: false)
        XCTAssertEqual(w.grad!.array, once, "written")
        m.linearBackward(dy, input: x, rows: n, w, nil, dx: Buf(n * inp), accumulate: false)
        var twice = once
        Float.gemmNN(dyT, x.p, &twice, m: out, n: inp, k: n, accumulate: true, threads: 2)
        XCTAssertEqual(w.grad!.array, twice, "added")
    }
}
