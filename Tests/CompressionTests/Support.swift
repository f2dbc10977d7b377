@testable import Compression
import EdgeFormat
import Foundation
import TestSupport
import XCTest

// The compression tests' own helpers; paths, temporary folders, running the tools and seeded
// randomness come from TestSupport.

/// A pass context over a toy Llama config (hidden 8, 2 heads, 1 KV head, MLP 16), for passes run
/// on hand-made tensors; `index` is the pass's position in its recipe.
func toyPassContext(index: Int = 0) -> PassContext {
    PassContext(config: ModelConfig(architecture: .llama, vocabSize: 8, hiddenSize: 8, numLayers: 1, numHeads: 2,
                                    numKVHeads: 1, headDim: 4, intermediateSize: 16, maxPositions: 16, normEps: 1e-5,
                                    ropeTheta: 10000, tiedEmbeddings: true, activation: "silu", bosTokenID: nil, eosTokenID: nil),
                index: index, recipeFile: "test")
}

/// The layer-output error ||(W - W') X^T||^2 of replacing `w` by `approx` (both [rows, cols]) on
/// the inputs `x` [tokens, cols], in double.
func outputError(_ w: [Float], _ approx: [Float], _ x: [Float], rows: Int, cols: Int, tokens: Int) -> Double {
    var e = 0.0
    for t in 0 ..< tokens {
        for r in 0 ..< rows {
            var s = 0.0
            for j in 0 ..< cols { s += Double(w[r * cols + j] - approx[r * cols + j]) * Double(x[t * cols + j]) }
            e += s * s
        }
    }
    return e
}

/// Correlated inputs [tokens, cols], as real activations are: 4 latent factors plus noise, every
/// 7th channel 4x (a few dominant input channels); deterministic in `seed`.
func correlatedInputs(tokens: Int, cols: Int, seed: UInt64) -> [Float] {
    var g = SplitMix(seed)
    let mix = (0 ..< cols * 4).map { _ in Float(g.nextDouble() * 2 - 1) }
    var x = [Float](repeating: 0, count: tokens * cols)
    for t in 0 ..< tokens {
        let z = (0 ..< 4).map { _ in Float(g.nextDouble() * 2 - 1) }
        for j in 0 ..< cols {
            var v = Float(g.nextDouble() * 2 - 1) * 0.3
            for k in 0 ..< 4 { v += mix[j * 4 + k] * z[k] }
            x[t * cols + j] = v * (j % 7 == 0 ? 4 : 1)
        }
    }
    return x
}

/// H = 2 X^T X / n of the inputs `x` [tokens, cols], as calibration gathers it (`GPTQ.Hessian`).
func inputHessian(_ x: [Float], tokens: Int, cols: Int) -> [Double] {
    var h = GPTQ.Hessian(cols: cols)
    x.withUnsafeBufferPointer { h.add($0, tokens: tokens) }
    return h.matrix()
}

/// ||X_j|| of every input column of `x` [tokens, cols] (Wanda's input norms), summed in double.
func inputNorms(_ x: [Float], tokens: Int, cols: Int) -> [Float] {
    (0 ..< cols).map { j in Float((0 ..< tokens).reduce(0.0) { $0 + Double(x[$1 * cols + j] * x[$1 * cols + j]) }.squareRoot()) }
}

/// Asserts that a recipe holding the one pass `pass` (JSON) is refused with a message naming
/// `field` (quoted) and containing `mentions`.
func assertRecipeRefused(_ pass: String, field: String, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json"), file: file, line: line) { e in
        let text = "\(e)"
        XCTAssertTrue(text.contains("'\(field)'") && text.contains(mentions), text, file: file, line: line)
    }
}

/// One case of a pruning reference fixture (`scripts/sparsegpt_reference.py`, `scripts/admm_reference.py`):
/// unstructured (`sparsity`, `scope`) or N:M (`pattern`), the mask (1: pruned) and the pruned weights.
struct PruneReferenceCase: Decodable {
    let sparsity: Double?
    let scope: String?
    let pattern: String?
    let mask: [[Int]]
    let expected: [[Double]]
}

/// Checks a pruner against a reference fixture: `prune` gets the fixture's weights [rows, cols], the
/// Hessian of its inputs [tokens, cols] and one case, and must give the case's mask exactly, its
/// weights to `tolerance` and exact zeros where it prunes. Returns the pruned weights by case label
/// (the pattern, else the scope).
@discardableResult
func checkPruneReference(weights: [[Double]], inputs: [[Double]], rows: Int, cols: Int, tokens: Int, cases: [PruneReferenceCase],
                         tolerance: Double, file: StaticString = #filePath, line: UInt = #line,
                         prune: ([Float], [Double], PruneReferenceCase) throws -> (values: [Float], mask: [Bool])) throws -> [String: [Float]] {
    let w = weights.flatMap { $0.map { Float($0) } }
    let x = inputs.flatMap { $0.map { Float($0) } }
    XCTAssertEqual(w.count, rows * cols, file: file, line: line)
    XCTAssertEqual(x.count, tokens * cols, file: file, line: line)
    let h = inputHessian(x, tokens: tokens, cols: cols)
    var out: [String: [Float]] = [:]
    for c in cases {
        let r = try prune(w, h, c)
        let label = c.pattern ?? c.scope ?? "?"
        XCTAssertEqual(r.mask.map { $0 ? 1 : 0 }, c.mask.flatMap { $0 }, "\(label): mask", file: file, line: line)
        var worst = 0.0
        for (got, want) in zip(r.values, c.expected.flatMap { $0 }) { worst = max(worst, abs(Double(got) - want)) }
        print("\(label): largest weight difference from the reference \(worst)")
        XCTAssertLessThan(worst, tolerance, "\(label): largest weight difference", file: file, line: line)
        for i in r.mask.indices where r.mask[i] { XCTAssertEqual(r.values[i], 0, "\(label): pruned weights are exact zeros", file: file, line: line) }
        out[label] = r.values
    }
    return out
}
