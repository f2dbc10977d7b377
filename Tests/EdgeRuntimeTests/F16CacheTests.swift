import EdgeKernels
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// A float16 KV cache (`EdgeModel.kvCache = .f16`): half the bytes, logits within binary16's
/// rounding of the float32 cache's, the same whether a window runs at once or token by token (the
/// prompt's widened products against the decoding step's in-place f16 kernels), and the same bits
/// on any thread count.
final class F16CacheTests: XCTestCase {
    private func model(_ fixture: FixtureModel, threads: Int = 2, cache: KVCachePrecision) throws -> EdgeModel {
        let m = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, threads: threads)
        m.kvCache = cache
        return m
    }

    private func tokens(_ fixture: FixtureModel, _ count: Int) throws -> [Int32] {
        let text = try String(contentsOfFile: packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path, encoding: .utf8)
        return Array(try Tokenizer(json: fixture.tokenizerJSON).encode(text).prefix(count))
    }

    private func maxRelative(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.map { Double($0.magnitude) }.max() ?? 1
        return zip(a, b).map { Double(($0 - $1).magnitude) }.max()! / scale
    }

    func testCacheHoldsHalfTheBytes() throws {
        let fixture = try FixtureModel("tiny-llama")
        let c = fixture.config
        let f32 = try model(fixture, cache: .f32).makeCache(capacity: 100)
        let f16 = try model(fixture, cache: .f16).makeCache(capacity: 100)
        XCTAssertEqual(f32.precision, .f32)
        XCTAssertEqual(f16.precision, .f16)
        XCTAssertEqual(f32.bytes, 2 * c.numLayers * 100 * c.numKVHeads * c.headDim * 4)
        XCTAssertEqual(f16.bytes * 2, f32.bytes)
    }

    func testLogitsCloseToTheFloat32Cache() throws {
        for name in ["tiny-llama", "tiny-gpt2"] {
            let fixture = try FixtureModel(name)
            let ids = try tokens(fixture, 100)
            let exact = try model(fixture, cache: .f32).logits(ids)
            let half = try model(fixture, cache: .f16).logits(ids)
            let err = maxRelative(half, exact)
            XCTAssertGreaterThan(err, 0, "\(name): the f16 cache changed nothing: is it used?")
            XCTAssertLessThan(err, 5e-3, name)
        }
    }

    /// A window at once (tiles widened from f16) against one token at a time (f16 read in place):
    /// the same cached values, so the same logits up to the products' summation order.
    func testPromptAndDecodingAgree() throws {
        let fixture = try FixtureModel("tiny-llama")
        let ids = try tokens(fixture, 80)
        let m = try model(fixture, cache: .f16)
        let window = try m.logits(ids)
        let cache = try m.makeCache(capacity: ids.count)
        var stepwise: [Float] = []
        for t in ids { stepwise += try m.forward([t], cache: cache) }
        XCTAssertEqual(cache.count, ids.count)
        XCTAssertLessThan(maxRelative(stepwise, window), 1e-5)
    }

    func testThreadCountDoesNotChangeTheBits() throws {
        let fixture = try FixtureModel("tiny-llama")
        let ids = try tokens(fixture, 100)
        let one = try model(fixture, threads: 1, cache: .f16).logits(ids)
        let four = try model(fixture, threads: 4, cache: .f16).logits(ids)
        XCTAssertEqual(one.map(\.bitPattern), four.map(\.bitPattern))
    }
}
