import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// llama-perplexity's convention: non-overlapping chunks of ctx, BOS substituted at each chunk
/// start when the vocabulary adds one, only the second half of each chunk scored.
final class PerplexityTests: XCTestCase {
    func testPlanCountsLikeLlamaCpp() throws {
        let p = try PerplexityPlan(tokens: 1000, ctx: 128)
        XCTAssertEqual(p.chunks, 7)
        XCTAssertEqual(p.first, 64)
        XCTAssertEqual(p.scoredPerChunk, 63)
        XCTAssertEqual(p.scoredTokens, 7 * 63)
        XCTAssertEqual(try PerplexityPlan(tokens: 1000, ctx: 128, maxChunks: 3).chunks, 3)
        XCTAssertEqual(try PerplexityPlan(tokens: 35, ctx: 17).scoredTokens, 2 * (17 - 8 - 1))
        XCTAssertThrowsError(try PerplexityPlan(tokens: 255, ctx: 128)) { e in
            XCTAssertEqual(e as? RuntimeError, .textTooShort(tokens: 255, needed: 256, why: "to evaluate perplexity with a context of 128"))
        }
    }

    func testPerplexityOfTextFollowsConvention() throws {
        let fixture = try FixtureModel("tiny-llama")
        let tokenizer = try Tokenizer(json: fixture.tokenizerJSON)
        let model = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, tokenizer: tokenizer)
        XCTAssertFalse(model.addsBOS, "the fixture's tokenizer has no BOS template")
        let text = try String(contentsOf: URL(fileURLWithPath: fixturePath("text/us-declaration.txt")), encoding: .utf8)
        let tokens = tokenizer.encode(text)
        let ctx = 32
        var chunks: [PerplexityChunk] = []
        let r = try model.perplexity(text: text, ctx: ctx, maxChunks: 5, onChunk: { chunks.append($0) })
        XCTAssertEqual(r.tokens, tokens.count)
        XCTAssertEqual(r.chunks, 5)
        XCTAssertEqual(r.scoredTokens, 5 * (ctx - ctx / 2 - 1))
        XCTAssertEqual(chunks.map(\.index), [0, 1, 2, 3, 4])

        // Recompute from whole-window logits: chunk i is tokens[i*ctx ..< (i+1)*ctx], rows first ..< ctx-1.
        var nll = 0.0
        for (i, c) in chunks.enumerated() {
            let window = Array(tokens[i * ctx ..< (i + 1) * ctx])
            XCTAssertEqual(c.tokens, window)
            let full = try model.logits(window)
            let vocab = fixture.config.vocabSize
            XCTAssertEqual(c.logits, Array(full[16 * vocab ..< 31 * vocab]))
            full.withUnsafeBufferPointer { p in
                for j in 16 ..< 31 {
                    nll += EdgeModel.negativeLogLikelihood(UnsafeBufferPointer(rebasing: p[j * vocab ..< (j + 1) * vocab]), target: Int(window[j + 1]))
                }
            }
        }
        XCTAssertEqual(r.nll, nll / Double(r.scoredTokens), accuracy: 1e-9)
        XCTAssertEqual(r.ppl, exp(r.nll), accuracy: 1e-9)
        // A model trained on the Constitution (Fixtures/README.md): far better than the 512-token
        // vocabulary's uniform guess on text it never saw, far from perfect.
        XCTAssertGreaterThan(r.ppl, 5)
        XCTAssertLessThan(r.ppl, 200)
    }

    /// `stepwise` scores the same tokens through the decoding path (one token at a time, KV cache):
    /// the same perplexity to float rounding, for float weights and for q8 / q4 weights with their
    /// int16-activation decoding kernels, whose tokens are quantized exactly as in a window.
    func testStepwiseMatchesWindows() throws {
        let fixture = try FixtureModel("tiny-llama")
        let tokenizer = try Tokenizer(json: fixture.tokenizerJSON)
        let text = try String(contentsOf: URL(fileURLWithPath: fixturePath("text/us-declaration.txt")), encoding: .utf8)
        var sources = fixture.floatSources
        let float = try EdgeModel(config: fixture.config, tensors: sources, tokenizer: tokenizer)
        // The matrices of the blocks as q4 (groups of 32, so the q4 x int16 decoding kernel runs).
        for (name, src) in fixture.floatSources where name.hasPrefix("blk.") && src.shape.count == 2 {
            guard case let .floats(values, shape) = src else { continue }
            let rows = shape[0], cols = shape[1], group = 32, groups = (cols + group - 1) / group
            var u = [UInt8](repeating: 8, count: rows * cols), scales = [Float](repeating: 0, count: rows * groups)
            for r in 0 ..< rows {
                for g in 0 ..< groups {
                    let range = r * cols + g * group ..< r * cols + min(cols, (g + 1) * group)
                    let s = (values[range].map(abs).max() ?? 0) / 7
                    scales[r * groups + g] = s
                    for i in range where s > 0 { u[i] = UInt8(max(0, min(15, (values[i] / s).rounded() + 8))) }
                }
            }
            sources[name] = .encoded(.q4(name: name, rows: rows, cols: cols, groupSize: group, u: u, scales: scales, zeros: nil))
        }
        let q4 = try EdgeModel(config: fixture.config, tensors: sources, tokenizer: tokenizer)
        for model in [float, q4] {
            let windows = try model.perplexity(text: text, ctx: 32, maxChunks: 3)
            let steps = try model.perplexity(text: text, ctx: 32, maxChunks: 3, stepwise: true)
            XCTAssertEqual(steps.scoredTokens, windows.scoredTokens)
            XCTAssertEqual(steps.ppl, windows.ppl, accuracy: windows.ppl * 1e-4)
        }
    }

    func testBOSReplacesEachChunksFirstToken() throws {
        let fixture = try FixtureModel("tiny-gpt2")
        let tokenizer = try Tokenizer(json: fixture.tokenizerJSON, bosTokenID: 0)
        let model = try EdgeModel(config: fixture.config, tensors: fixture.floatSources, tokenizer: tokenizer)
        XCTAssertTrue(model.addsBOS)
        let body: [Int32] = (0 ..< 70).map { Int32(1 + ($0 * 37) % 500) }
        XCTAssertEqual(try model.tokenize("We"), [0] + tokenizer.encode("We"))
        let tokens = [Int32(0)] + body  // as tokenize gives: BOS first
        var firsts: [[Int32]] = []
        let r = try model.perplexity(tokens: tokens, ctx: 20, onChunk: { firsts.append($0.tokens) })
        XCTAssertEqual(r.chunks, 3)
        XCTAssertEqual(r.scoredTokens, 3 * 9)
        for (i, c) in firsts.enumerated() {
            XCTAssertEqual(c[0], 0)
            XCTAssertEqual(Array(c[1...]), Array(tokens[i * 20 + 1 ..< (i + 1) * 20]))
        }
    }

    func testRefusesShortTextAndOversizedContext() throws {
        let fixture = try FixtureModel("tiny-gpt2")
        let model = try EdgeModel(config: fixture.config, tensors: fixture.floatSources)
        XCTAssertThrowsError(try model.perplexity(tokens: [Int32](repeating: 1, count: 39), ctx: 20)) { e in
            guard case .textTooShort(39, 40, _)? = e as? RuntimeError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try model.perplexity(tokens: [Int32](repeating: 1, count: 600), ctx: 256)) { e in
            guard case .badContext(256, 128, _)? = e as? RuntimeError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try model.perplexity(text: "x", ctx: 20)) { XCTAssertEqual($0 as? RuntimeError, .noTokenizer(source: "")) }
    }
}
