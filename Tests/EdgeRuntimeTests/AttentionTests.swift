@testable import EdgeRuntime
import TestSupport
import XCTest

final class AttentionTests: XCTestCase {
    /// One decoding step's attention at a length where it is split over the query heads
    /// (`ForwardStep.decodeAttentionThreshold`; SmolLM2's 9 heads of 64 over 3 KV heads): the same
    /// bits on 1, 2 and 3 threads, and softmax(q k^T / sqrt(hd)) v, computed in Double, to 1e-5.
    func testDecodingAttentionSplitsOverHeads() throws {
        let config = try FixtureModel("tiny-llama").config  // not read by the attention itself
        let nh = 9, nkv = 3, hd = 64, capacity = 320, start = 299, n = start + 1, group = nh / nkv
        XCTAssertGreaterThanOrEqual(nh * n * hd, ForwardStep.decodeAttentionThreshold)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int(state >> 40) % 2001 - 1000) / 250
        }
        var q = (0 ..< nh * hd).map { _ in next() }
        var keys = (0 ..< nkv * capacity * hd).map { _ in next() }
        var values = (0 ..< nkv * capacity * hd).map { _ in next() }
        func run(_ threads: Int) -> [Float] {
            let step = ForwardStep(config: config, threads: threads, activations: .default)
            var out = [Float](repeating: .nan, count: nh * hd)
            q.withUnsafeMutableBufferPointer { qp in
                keys.withUnsafeMutableBufferPointer { kp in
                    values.withUnsafeMutableBufferPointer { vp in
                        out.withUnsafeMutableBufferPointer { op in
                            step.attention(q: qp.baseAddress!, keys: kp.baseAddress!, values: vp.baseAddress!, capacity: capacity,
                                           out: op.baseAddress!, tokens: 1, start: start, heads: nh, kvHeads: nkv, headDim: hd)
                        }
                    }
                }
            }
            return out
        }
        let one = run(1)
        XCTAssertEqual(run(2), one)
        XCTAssertEqual(run(3), one)
        for head in 0 ..< nh {
            let g = head / group
            var scores = [Double](repeating: 0, count: n)
            for p in 0 ..< n {
                var dot = 0.0
                for d in 0 ..< hd { dot += Double(q[head * hd + d]) * Double(keys[(g * capacity + p) * hd + d]) }
                scores[p] = dot / Double(hd).squareRoot()
            }
            let top = scores.max()!
            let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
            for d in 0 ..< hd {
                var o = 0.0
                for p in 0 ..< n { o += weights[p] / total * Double(values[(g * capacity + p) * hd + d]) }
                XCTAssertEqual(Double(one[head * hd + d]), o, accuracy: 1e-5 * max(1, abs(o)), "head \(head), dimension \(d)")
            }
        }
    }
}
