import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// Windows longer than one attention tile (64 queries): the blocked attention, its causal mask
/// across tiles and its offset into a filled KV cache, against the numpy reference.
final class LongWindowTests: XCTestCase {
    /// `count` token ids spread over the vocabulary (deterministic).
    func tokens(_ count: Int, vocab: Int) -> [Int32] {
        (0 ..< count).map { Int32(($0 * 37 + 11) % vocab) }
    }

    func check(_ name: String, count: Int, splits: [Int]) throws {
        let fixture = try FixtureModel(name)
        let ids = tokens(count, vocab: fixture.config.vocabSize)
        let reference = try referenceLogits(name, ids).flatMap { $0 }
        for threads in [1, 2] {
            let model = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, threads: threads)
            let whole = try model.logits(ids)
            XCTAssertLessThan(relativeError(whole, reference), ForwardTests.tolerance, "\(name) \(count) tokens, \(threads) threads")
            // The same tokens in windows through the cache: later windows start at p0 > 0 and span tiles.
            let cache = try model.makeCache(capacity: count)
            var pieces: [Float] = []
            var start = 0
            for end in splits + [count] {
                pieces += try model.forward(Array(ids[start ..< end]), cache: cache)
                start = end
            }
            XCTAssertLessThan(relativeError(pieces, reference), ForwardTests.tolerance, "\(name) windows \(splits), \(threads) threads")
        }
    }

    /// 2 tiles (64 + 56 queries) in one window; windows of 1, 69 and 50 tokens through the cache.
    func testLlamaWindowBeyondOneTileMatchesReference() throws {
        try check("tiny-llama", count: 120, splits: [1, 70])
    }

    /// GPT-2 (no RoPE, learned positions): its 128 positions fill 2 tiles; window boundaries off the tile grid.
    func testGPT2WindowBeyondOneTileMatchesReference() throws {
        let fixture = try FixtureModel("tiny-gpt2")
        let count = min(fixture.config.maxPositions, 150)
        try check("tiny-gpt2", count: count, splits: [count / 3, count / 3 + 1])
    }
}
