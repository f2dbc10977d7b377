import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// The library side of `compress verify`: KL divergence and argmax on hand-made logit rows against
/// an independent computation, the budget check, and `Verifier` on the tiny fixtures.
final class VerifyTests: TempDirTestCase {
    /// KL(p || q) the textbook way: p = exp(x) / sum exp(x) without any shift, sum p * log(p / q).
    func naiveKL(_ x: [Float], _ y: [Float]) -> Double {
        let ex = x.map { exp(Double($0)) }, ey = y.map { exp(Double($0)) }
        let sx = ex.reduce(0, +), sy = ey.reduce(0, +)
        var kl = 0.0
        for i in x.indices {
            let p = ex[i] / sx, q = ey[i] / sy
            kl += p * log(p / q)
        }
        return kl
    }

    func testKLMatchesIndependentComputation() {
        let cases: [([Float], [Float])] = [
            ([1, 2, 3], [3, 2, 1]),
            ([0.5, -1.25, 2, 0], [0.4, -1, 2.5, 0.1]),
            ([0, 0], [0, 1]),
            ([-3, 7, 0.25, 1, 1, -2, 4], [-2.5, 6, 0.5, 1.5, 0, -2, 5]),
            ([10], [-10]),
        ]
        for (x, y) in cases {
            let kl = LogitComparison.klDivergence(before: x, after: y)
            XCTAssertEqual(kl, naiveKL(x, y), accuracy: 1e-12, "\(x) vs \(y)")
            if x.count > 1 { XCTAssertGreaterThan(kl, 0, "\(x) vs \(y)") }
        }
        // A hand-worked value: p = softmax(0, 0) = (1/2, 1/2), q = softmax(0, ln 3) = (1/4, 3/4):
        // KL = 1/2 ln 2 + 1/2 ln(2/3).
        let kl = LogitComparison.klDivergence(before: [0, 0], after: [0, Float(log(3.0))])
        XCTAssertEqual(kl, 0.5 * log(2.0) + 0.5 * log(2.0 / 3.0), accuracy: 1e-7)
        // KL is not symmetric.
        XCTAssertNotEqual(LogitComparison.klDivergence(before: [0, 0], after: [0, 2]),
                          LogitComparison.klDivergence(before: [0, 2], after: [0, 0]), accuracy: 1e-6)
    }

    func testKLIsShiftInvariantStableAndZeroForIdenticalRows() {
        let x: [Float] = [0.3, -2, 1.5, 0.7, -0.1], y: [Float] = [0.2, -1.5, 1.9, 0.1, 0]
        let base = LogitComparison.klDivergence(before: x, after: y)
        // Logits shifted by a constant give the same distributions; large shifts would overflow exp() unshifted.
        for shift: Float in [-500, 100, 1000] {
            let kl = LogitComparison.klDivergence(before: x.map { $0 + shift }, after: y.map { $0 - shift / 2 })
            XCTAssertTrue(kl.isFinite, "shift \(shift)")
            XCTAssertEqual(kl, base, accuracy: 1e-4, "shift \(shift)")
        }
        for row in [x, y, [Float](repeating: 3, count: 17), [1000, -1000]] {
            XCTAssertEqual(LogitComparison.klDivergence(before: row, after: row), 0)
        }
    }

    func testArgmaxTakesTheFirstOfTies() {
        for (row, expected) in [([Float](arrayLiteral: 1, 3, 3, 2), 1), ([5], 0), ([-1, -2, -0.5], 2), ([], 0)] {
            XCTAssertEqual(row.withUnsafeBufferPointer { LogitComparison.argmax($0) }, expected, "\(row)")
        }
    }

    func testBudgetCheck() {
        XCTAssertTrue(BudgetCheck(budget: nil, pplIncrease: 9, bytes: .max).ok)
        let b = Budget(maxPPLIncrease: 0.05, maxBytes: 1000)
        XCTAssertTrue(BudgetCheck(budget: b, pplIncrease: 0.05, bytes: 1000).ok)
        XCTAssertEqual(BudgetCheck(budget: b, pplIncrease: 0.071, bytes: 1000).violations, ["ppl increase 7.1% > max 5.0%"])
        XCTAssertEqual(BudgetCheck(budget: b, pplIncrease: -0.5, bytes: 1001).violations, ["size 1001 bytes > max 1000 bytes"])
        XCTAssertEqual(BudgetCheck(budget: b, pplIncrease: .nan, bytes: 2000).violations.count, 2)
        // Small increases are not shown as 0.0%.
        XCTAssertEqual(BudgetCheck(budget: Budget(maxPPLIncrease: 0), pplIncrease: 5.87e-5, bytes: 1).violations,
                       ["ppl increase 0.0059% > max 0.0%"])
    }

    func testEmbeddedBudgetIsParsedAndValidated() throws {
        XCTAssertNil(try Verifier.budget(in: ["name": "x", "passes": []], file: "f.edge"))
        let b = try Verifier.budget(in: ["passes": [], "budget": ["max_bytes": 5, "max_ppl_increase": 0.25]], file: "f.edge")
        XCTAssertEqual(b, Budget(maxPPLIncrease: 0.25, maxBytes: 5))
        XCTAssertThrowsError(try Verifier.budget(in: ["budget": ["max_bytes": -1]], file: "f.edge")) { e in
            XCTAssertTrue("\(e)".contains("budget.max_bytes"), "\(e)")
        }
    }

    func testF32FileMatchesItsSourceExactlyAndThePerplexityRun() throws {
        let text = try TextFile.load(path: fixture("text/us-constitution.txt"), purpose: "evaluation text")
        for name in ["tiny-llama", "tiny-gpt2"] {
            let out = try compress(name, recipe: "f32")
            let v = try Verifier(input: fixture(name), output: out, threads: 2)
            var seen: [Int] = []
            let r = try v.run(text: text, ctx: 64, maxChunks: 3, budget: nil) { done, total in
                XCTAssertEqual(total, 3)
                seen.append(done)
            }
            XCTAssertEqual(seen, [1, 2, 3])
            XCTAssertEqual(r.kl, 0, accuracy: 1e-9, name)
            XCTAssertEqual(r.top1Agreement, 1, name)
            XCTAssertEqual(r.before.ppl, r.after.ppl, name)
            XCTAssertEqual(r.scoredTokens, 3 * (64 - 32 - 1))
            XCTAssertEqual(r.chunks, 3)
            XCTAssertTrue(r.budget.ok)
            // The same numbers as the runtime's own perplexity run over the float model.
            let ppl = try v.before.perplexity(text: text, ctx: 64, maxChunks: 3)
            XCTAssertEqual(r.before.ppl, ppl.ppl, "\(name): the same loop and summation order, equal to the bit")
            XCTAssertEqual(r.after.ppl, try v.after.perplexity(text: text, ctx: 64, maxChunks: 3).ppl, name)
            XCTAssertEqual(r.tokens, ppl.tokens)
            XCTAssertEqual(r.activations, .i16, "the default is recorded")
            XCTAssertEqual(r.json["activations"], "i16")
            // Sizes: the input's weight files and the .edge file.
            let weights = try FileManager.default.contentsOfDirectory(atPath: fixture(name)).filter { $0.hasSuffix(".safetensors") }
                .reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: fixture(name) + "/" + $1)[.size] as! Int) }
            XCTAssertEqual(r.before.bytes, weights)
            XCTAssertEqual(r.after.bytes, try FileManager.default.attributesOfItem(atPath: out)[.size] as! Int)
            XCTAssertEqual(r.before.bitsPerWeight, Double(weights) * 8 / Double(v.before.parameterCount), accuracy: 1e-12)
        }
    }

    func testQuantizedFileDiverges() throws {
        let text = try TextFile.load(path: fixture("text/us-constitution.txt"), purpose: "evaluation text")
        let out = try compress("tiny-llama", recipe: "int8")
        let r = try Verifier(input: fixture("tiny-llama"), output: out, threads: 2).run(text: text, ctx: 64, maxChunks: 2, budget: nil)
        XCTAssertGreaterThan(r.kl, 0)
        XCTAssertLessThan(r.kl, 0.05)
        XCTAssertNotEqual(r.before.ppl, r.after.ppl)
        XCTAssertLessThan(r.after.bytes, r.before.bytes)
        // The activation precision is an explicit option: q8 activations change the int8 model's numbers
        // (not the float model's) and are recorded in the report.
        let q8 = try Verifier(input: fixture("tiny-llama"), output: out, threads: 2, activations: .q8)
            .run(text: text, ctx: 64, maxChunks: 2, budget: nil)
        XCTAssertEqual(q8.activations, .q8)
        XCTAssertEqual(q8.json["activations"], "q8")
        XCTAssertEqual(q8.before.ppl, r.before.ppl)
        XCTAssertNotEqual(q8.after.ppl, r.after.ppl)
    }

    func testRefusals() throws {
        let text = try TextFile.load(path: fixture("text/us-constitution.txt"), purpose: "evaluation text")
        let llama = try compress("tiny-llama", recipe: "f32")
        // Different tokenizers (same vocabulary size).
        XCTAssertThrowsError(try Verifier(input: fixture("tiny-gpt2"), output: llama).run(text: text, ctx: 64, budget: nil)) { e in
            guard case VerifyError.tokenizerMismatch = e else { return XCTFail("\(e)") }
        }
        let v = try Verifier(input: fixture("tiny-llama"), output: llama)
        XCTAssertThrowsError(try v.run(text: "We the People", ctx: 64, budget: nil)) { e in
            guard case RuntimeError.textTooShort = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try v.run(text: text, ctx: 64, maxChunks: 0, budget: nil)) { e in
            XCTAssertEqual(e as? VerifyError, .badOption(name: "chunks", value: 0, why: "at least 1 chunk is needed"))
        }
        XCTAssertThrowsError(try TextFile.load(path: tmp.appendingPathComponent("none.txt").path, purpose: "evaluation text")) { e in
            XCTAssertTrue("\(e)".contains("none.txt"), "\(e)")
        }
    }

    // MARK: helpers

    var root: URL { packageRoot() }

    func fixture(_ name: String) -> String { fixturePath(name) }

    /// Runs `Recipes/<recipe>.json` over a fixture and returns the `.edge` path.
    func compress(_ name: String, recipe: String) throws -> String {
        let recipePath = root.appendingPathComponent("Recipes/\(recipe).json").path
        let out = tmp.appendingPathComponent("\(name)-\(recipe).edge").path
        _ = try Pipeline(recipe: try Recipe.load(path: recipePath), recipeFile: recipePath).run(input: fixture(name), output: out)
        return out
    }
}
