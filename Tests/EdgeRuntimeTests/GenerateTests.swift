import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

final class GenerateTests: XCTestCase {
    func model(_ name: String) throws -> EdgeModel {
        let fixture = try FixtureModel(name)
        return try EdgeModel(config: fixture.config, tensors: fixture.floatSources, tokenizer: try Tokenizer(json: fixture.tokenizerJSON))
    }

    /// Greedy tokens through the KV cache equal the arg-max of a fresh full-window forward at each step.
    func testGreedyMatchesFullWindowArgmax() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let m = try model(name)
            let prompt: [Int32] = [5, 80, 300, 12]
            var streamed: [Int32] = []
            let out = try m.generate(prompt: prompt, options: .init(maxTokens: 10, stopAtEOS: false)) { streamed.append($0); return true }
            XCTAssertEqual(out.count, 10)
            XCTAssertEqual(streamed, out)
            var seq = prompt
            for tok in out {
                let logits = try m.logits(seq)
                let last = Array(logits[(seq.count - 1) * m.config.vocabSize ..< logits.count])
                XCTAssertEqual(Int32(last.indices.max { last[$0] < last[$1] }!), tok, "\(name) after \(seq.count) tokens")
                seq.append(tok)
            }
        }
    }

    func testSamplingIsSeededAndStops() throws {
        let m = try model("tiny-llama")
        let opts = GenerationOptions(maxTokens: 12, temperature: 1.0, seed: 42, stopAtEOS: false)
        let a = try m.generate(prompt: [1, 2, 3], options: opts)
        let b = try m.generate(prompt: [1, 2, 3], options: opts)
        XCTAssertEqual(a, b, "same seed, same tokens")
        var other = opts
        other.seed = 43
        XCTAssertNotEqual(try m.generate(prompt: [1, 2, 3], options: other), a, "a near-uniform random model: another seed differs")
        other.topK = 1
        XCTAssertEqual(try m.generate(prompt: [1, 2, 3], options: other), try m.generate(prompt: [1, 2, 3], options: .init(maxTokens: 12, stopAtEOS: false)),
                       "top-1 sampling is greedy")
        // The callback stops generation; the context limit (128) stops it too.
        var n = 0
        XCTAssertEqual(try m.generate(prompt: [1], options: opts) { _ in n += 1; return n < 3 }.count, 3)
        let long = try m.generate(prompt: [Int32](repeating: 7, count: 120), options: .init(maxTokens: 50, stopAtEOS: false))
        XCTAssertEqual(long.count, 9, "128 positions: the 9th token comes from position 127")
    }

    func testTextGenerationStreamsDecodedText() throws {
        let m = try model("tiny-gpt2")
        var pieces: [String] = []
        let text = try m.generate(text: "We the People", options: .init(maxTokens: 8, stopAtEOS: false)) { pieces.append($0) }
        XCTAssertEqual(pieces.joined(), text)
        let ids = try m.generate(prompt: m.tokenize("We the People"), options: .init(maxTokens: 8, stopAtEOS: false))
        XCTAssertEqual(text, m.tokenizer!.decode(ids))
    }
}
