import EdgeFormat
import EdgeKernels
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
        let q = (0 ..< nh * hd).map { _ in next() }
        let keys = (0 ..< nkv * capacity * hd).map { _ in next() }
        let values = (0 ..< nkv * capacity * hd).map { _ in next() }
        // The same keys and values in binary16 (a float16 KV cache), and widened back.
        let keys16 = keys.map { edge_f32_to_f16($0) }, values16 = values.map { edge_f32_to_f16($0) }
        let keysWide = keys16.map { edge_f16_to_f32($0) }, valuesWide = values16.map { edge_f16_to_f32($0) }
        XCTAssertNotEqual(keysWide, keys)

        func run(_ f16: Bool, threads: Int) -> [Float] {
            f16 ? attention(config, q: q, keys: keys16, values: values16, f16: true, capacity: capacity, tokens: 1, start: start,
                            heads: nh, kvHeads: nkv, headDim: hd, threads: threads)
                : attention(config, q: q, keys: keys, values: values, f16: false, capacity: capacity, tokens: 1, start: start,
                            heads: nh, kvHeads: nkv, headDim: hd, threads: threads)
        }
        for f16 in [false, true] {
            let one = run(f16, threads: 1)
            for threads in [2, 3] { XCTAssertEqual(run(f16, threads: threads), one, "f16 \(f16)") }
            let kr = f16 ? keysWide : keys, vr = f16 ? valuesWide : values
            for head in 0 ..< nh {
                let g = head / group
                var scores = [Double](repeating: 0, count: n)
                for p in 0 ..< n {
                    var dot = 0.0
                    for d in 0 ..< hd { dot += Double(q[head * hd + d]) * Double(kr[(g * capacity + p) * hd + d]) }
                    scores[p] = dot / Double(hd).squareRoot()
                }
                let top = scores.max()!
                let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
                for d in 0 ..< hd {
                    var o = 0.0
                    for p in 0 ..< n { o += weights[p] / total * Double(vr[(g * capacity + p) * hd + d]) }
                    XCTAssertEqual(Double(one[head * hd + d]), o, accuracy: 1e-5 * max(1, abs(o)), "f16 \(f16), head \(head), dimension \(d)")
                }
            }
        }
    }

    /// A prompt's tiles over a float16 cache widen each KV head's keys and values and run the float32
    /// products on them: the bits of the float32 cache holding the widened values, on any thread count.
    func testPromptAttentionOverAFloat16CacheIsTheWidenedFloat32One() throws {
        let config = try FixtureModel("tiny-llama").config
        let nh = 9, nkv = 3, hd = 64, capacity = 300, start = 130, T = 150  // three tiles, the last of 22 queries
        var rng = XorShiftRandom(7)
        let q = (0 ..< T * nh * hd).map { _ in rng.float(-4, 4) }
        let keys16 = (0 ..< nkv * capacity * hd).map { _ in edge_f32_to_f16(rng.float(-4, 4)) }
        let values16 = (0 ..< nkv * capacity * hd).map { _ in edge_f32_to_f16(rng.float(-4, 4)) }
        let wide = attention(config, q: q, keys: keys16.map { edge_f16_to_f32($0) }, values: values16.map { edge_f16_to_f32($0) },
                             f16: false, capacity: capacity, tokens: T, start: start, heads: nh, kvHeads: nkv, headDim: hd, threads: 2)
        XCTAssertFalse(wide.contains { $0.isNaN })
        for threads in [1, 2, 3] {
            let half = attention(config, q: q, keys: keys16, values: values16, f16: true, capacity: capacity, tokens: T, start: start,
                                 heads: nh, kvHeads: nkv, headDim: hd, threads: threads)
            XCTAssertEqual(half.map(\.bitPattern), wide.map(\.bitPattern), "\(threads) threads")
        }
    }

    /// `ForwardStep.attention` over keys and values held as float32 (`[Float]`) or binary16 (`[UInt16]`).
    private func attention<K>(_ config: ModelConfig, q: [Float], keys: [K], values: [K], f16: Bool, capacity: Int, tokens: Int, start: Int,
                              heads nh: Int, kvHeads nkv: Int, headDim hd: Int, threads: Int) -> [Float] {
        let step = ForwardStep(config: config, threads: threads, activations: .default)
        var q = q, keys = keys, values = values
        var out = [Float](repeating: .nan, count: tokens * nh * hd)
        let precision: KVCachePrecision = f16 ? .f16 : .f32
        q.withUnsafeMutableBufferPointer { qp in
            keys.withUnsafeMutableBytes { kp in
                values.withUnsafeMutableBytes { vp in
                    out.withUnsafeMutableBufferPointer { op in
                        step.attention(q: qp.baseAddress!, keys: KVStore(base: kp.baseAddress!, precision: precision),
                                       values: KVStore(base: vp.baseAddress!, precision: precision), capacity: capacity,
                                       out: op.baseAddress!, tokens: tokens, start: start, heads: nh, kvHeads: nkv, headDim: hd)
                    }
                }
            }
        }
        return out
    }
}
