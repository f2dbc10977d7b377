import Checkpoint
@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class LayerSparsityTests: XCTestCase {
    /// The outlier ratio counts scores |w| * norm above threshold x the mean score over all the
    /// block's matrices (computed here directly in double).
    func testOutlierRatioCountsScoresAboveThresholdTimesTheMean() {
        var rng = SplitMix(7)
        let a = (0 ..< 6 * 8).map { _ in Float(rng.nextDouble() * 2 - 1) }
        let b = (0 ..< 3 * 4).map { _ in Float(rng.nextDouble() * 2 - 1) * 4 }
        let na = (0 ..< 8).map { j in Float(j == 3 ? 20 : 1) }, nb = [Float](repeating: 0.5, count: 4)
        var scores: [Double] = []
        for (i, v) in a.enumerated() { scores.append(Double(abs(v) * na[i % 8])) }
        for (i, v) in b.enumerated() { scores.append(Double(abs(v) * nb[i % 4])) }
        let mean = scores.reduce(0, +) / Double(scores.count)
        for m in [1.0, 2.0, 5.0] {
            let want = Double(scores.filter { $0 > m * mean }.count) / Double(scores.count)
            XCTAssertEqual(LayerSparsity.outlierRatio([(a, na), (b, nb)], threshold: m), want, accuracy: 1e-12, "M = \(m)")
        }
        XCTAssertGreaterThan(LayerSparsity.outlierRatio([(a, na), (b, nb)], threshold: 2), 0, "column 3 holds outliers")
    }

    /// More outliers, less pruning; the spread is 2 lambda; the weighted mean is the target.
    func testOWLSparsitiesKeepTheTargetAndFollowTheOutliers() {
        let ratios: [Int: (ratio: Double, weights: Int)] = [0: (0.010, 100), 1: (0.002, 100), 2: (0.006, 300), 3: (0.004, 100)]
        let s = LayerSparsity.owlSparsities(ratios: ratios, target: 0.5, lambda: 0.08)
        XCTAssertLessThan(s[0]!, s[2]!)
        XCTAssertLessThan(s[2]!, s[3]!)
        XCTAssertLessThan(s[3]!, s[1]!)
        XCTAssertEqual(s[1]! - s[0]!, 0.16, accuracy: 1e-12)
        let mean = (s[0]! * 100 + s[1]! * 100 + s[2]! * 300 + s[3]! * 100) / 600
        XCTAssertEqual(mean, 0.5, accuracy: 1e-12)
        let flat = LayerSparsity.owlSparsities(ratios: [0: (0.01, 5), 1: (0.01, 5)], target: 0.4, lambda: 0.1)
        XCTAssertEqual(flat[0]!, 0.4, accuracy: 1e-12)
        XCTAssertEqual(flat[1]!, 0.4, accuracy: 1e-12)
    }

    /// SparseGPT with OWL on the tiny model: every block gets its own sparsity, recorded, and the
    /// selected weights lose half overall; OWL with a pattern is refused, naming the field.
    func testSparseGPTWithOWLPrunesTheTargetOverall() throws {
        let dir = try makeTemporaryFolder(prefix: "owl")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let text = packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let json = #"{"calibration": {"tokens": 256, "ctx": 64}, "passes": [{"pass": "sparsegpt_prune", "sparsity": 0.5, "layer_sparsity": "owl", "owl_lambda": 0.1, "owl_threshold": 3, "include": ["blk.*"]}]}"#
        let recipe = try Recipe.parse(Data(json.utf8), file: "owl.json")
        let summary = try Pipeline(recipe: recipe, recipeFile: "owl.json").run(input: input, output: dir.appendingPathComponent("o.edge").path,
                                                                              calibrationText: text)
        let rec = summary.records[0]
        guard case let .array(blocks)? = rec["block_sparsity"] else { return XCTFail("no block_sparsity in \(rec)") }
        let s = blocks.compactMap(\.doubleValue)
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(abs(s[0] - s[1]), 0.2, accuracy: 1e-6, "two blocks: one at each end of the spread")
        XCTAssertEqual(rec["achieved_sparsity"]?.doubleValue ?? 0, 0.5, accuracy: 0.01)
        XCTAssertEqual(rec["per_tensor_sparsity"]?["blk.0.ffn_down.weight"]?.doubleValue ?? 0, s[0], accuracy: 0.01)

        let bad = #"{"passes": [{"pass": "sparsegpt_prune", "pattern": "2:4", "layer_sparsity": "owl"}]}"#
        XCTAssertThrowsError(try Recipe.parse(Data(bad.utf8), file: "bad.json")) {
            XCTAssertTrue("\($0)".contains("passes[0].layer_sparsity"), "\($0)")
        }
    }
}
