import Checkpoint
@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class ADMMPruneTests: XCTestCase {
    /// `Fixtures/admm-reference/admm-8x64.json`, written by `scripts/admm_reference.py`.
    private struct Reference: Decodable {
        let rows: Int, cols: Int, tokens: Int
        let damp: Double, rho: Double
        let iterations: Int, gradual: Int
        let weights: [[Double]]
        let inputs: [[Double]]
        let cases: [PruneReferenceCase]
    }

    private func prune(_ w: [Float], rows: Int, cols: Int, hessian h: [Double], _ o: ADMM.Options) throws -> (values: [Float], mask: [Bool]) {
        let f = try ADMM.factor(hessian: h, cols: cols, damp: o.damp, rho: o.rho)
        return ADMM.prune(weights: w, rows: rows, cols: cols, factor: f, options: o)
    }

    /// Masks and weights as the numpy implementation (float64) computes them, for per_row,
    /// per_tensor and 2:4, with an input never active, an outlier input and a weight already zero.
    func testMatchesNumpyReference() throws {
        let url = packageRoot().appendingPathComponent("Fixtures/admm-reference/admm-8x64.json")
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        let rows = ref.rows, cols = ref.cols
        XCTAssertEqual(ref.cases.count, 3)
        // Weights ~0.05: float32 rounds over 20 rounds against float64.
        let out = try checkPruneReference(weights: ref.weights, inputs: ref.inputs, rows: rows, cols: cols, tokens: ref.tokens,
                                          cases: ref.cases, tolerance: 2e-6) { w, h, c in
            var o = ADMM.Options(sparsity: c.sparsity ?? 0, damp: ref.damp, rho: ref.rho, iterations: ref.iterations, gradual: ref.gradual)
            if let p = c.pattern { o.pattern = try XCTUnwrap(NMPattern(parsing: p)) }
            if let s = c.scope { o.scope = try XCTUnwrap(SparseGPTPrune.Scope(rawValue: s)) }
            return try prune(w, rows: rows, cols: cols, hessian: h, o)
        }
        for (label, values) in out {
            XCTAssertEqual(values[2 * cols + 11], 0, "\(label): a weight already zero stays zero")
            for row in 0 ..< rows { XCTAssertEqual(values[row * cols + 5], 0, "\(label): the dead input's weights are zero") }
        }
    }

    /// On correlated inputs the ADMM update leaves a smaller output error than SparseGPT's sweep, and
    /// far smaller than Wanda's and magnitude pruning's masks without an update.
    func testLowerOutputErrorThanSparseGPTAndWanda() throws {
        let rows = 24, cols = 96, tokens = 384
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 17)
        var g = SplitMix(23)
        let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
        let h = inputHessian(x, tokens: tokens, cols: cols)
        let norms = inputNorms(x, tokens: tokens, cols: cols)
        for sparsity in [0.5, 0.7] {
            let a = try prune(w, rows: rows, cols: cols, hessian: h, ADMM.Options(sparsity: sparsity))
            let s = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h, options: .init(sparsity: sparsity, blockSize: 32))
            var magnitude = w, wanda = w
            try WandaPrune.prune(&magnitude, rows: rows, cols: cols, norms: [Float](repeating: 1, count: cols), sparsity: sparsity)
            try WandaPrune.prune(&wanda, rows: rows, cols: cols, norms: norms, sparsity: sparsity)
            let ea = outputError(w, a.values, x, rows: rows, cols: cols, tokens: tokens)
            let es = outputError(w, s.values, x, rows: rows, cols: cols, tokens: tokens)
            let ew = outputError(w, wanda, x, rows: rows, cols: cols, tokens: tokens)
            let em = outputError(w, magnitude, x, rows: rows, cols: cols, tokens: tokens)
            print("sparsity \(sparsity): output error admm \(ea) sparsegpt \(es) wanda \(ew) magnitude \(em)")
            XCTAssertLessThan(ea, es, "sparsity \(sparsity)")
            XCTAssertLessThan(ea, ew * 0.7, "sparsity \(sparsity)")
            let k = Int(Double(cols) * sparsity)
            for r in 0 ..< rows { XCTAssertEqual(a.values[r * cols ..< (r + 1) * cols].filter { $0 == 0 }.count, k, "row \(r)") }
        }
    }

    /// Exact counts over odd shapes (per row, per tensor, N:M with partial groups); earlier zeros
    /// stay zero and count towards the share; no mask growth (`gradual` 0) and one iteration work.
    func testExactSparsityPatternsAndEarlierZeros() throws {
        var g = SplitMix(41)
        for (rows, cols) in [(1, 1), (3, 7), (5, 33), (4, 64)] {
            let tokens = 2 * cols + 8
            let h = inputHessian(correlatedInputs(tokens: tokens, cols: cols, seed: UInt64(cols) + 5), tokens: tokens, cols: cols)
            for s in [0.0, 0.3, 0.5, 0.9] {
                for (iterations, gradual) in [(20, 15), (1, 0), (3, 3)] {
                    var w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) }
                    let r = try prune(w, rows: rows, cols: cols, hessian: h, ADMM.Options(sparsity: s, iterations: iterations, gradual: gradual))
                    for row in 0 ..< rows {
                        XCTAssertEqual(r.values[row * cols ..< (row + 1) * cols].filter { $0 == 0 }.count, Int(Double(cols) * s), "\(rows)x\(cols) s \(s)")
                    }
                    let t = try prune(w, rows: rows, cols: cols, hessian: h, ADMM.Options(sparsity: s, scope: .perTensor, iterations: iterations, gradual: gradual))
                    XCTAssertEqual(t.values.filter { $0 == 0 }.count, Int(Double(rows * cols) * s), "per_tensor \(rows)x\(cols) s \(s)")
                    for i in stride(from: 3, to: w.count, by: 11) { w[i] = 0 }
                    for pattern in ["2:4", "1:4", "4:8"] {
                        let p = try XCTUnwrap(NMPattern(parsing: pattern))
                        let n = try prune(w, rows: rows, cols: cols, hessian: h, ADMM.Options(sparsity: 0, pattern: p, iterations: iterations, gradual: gradual))
                        XCTAssertTrue(p.isSatisfied(by: n.values, rows: rows, cols: cols), "\(pattern) \(rows)x\(cols)")
                        for i in w.indices where w[i] == 0 { XCTAssertEqual(n.values[i], 0, "\(pattern): a zero stays zero") }
                    }
                }
            }
        }
        // Half of each row already zero, pruned to 30%: the zeros fill the share; to 75%: a quarter more.
        let rows = 6, cols = 40, tokens = 96
        let h = inputHessian(correlatedInputs(tokens: tokens, cols: cols, seed: 3), tokens: tokens, cols: cols)
        let w = (0 ..< rows * cols).map { i in i % 2 == 0 ? 0 : Float(g.nextDouble() * 2 - 1) }
        for (s, zeros) in [(0.3, 20), (0.75, 30)] {
            let r = try prune(w, rows: rows, cols: cols, hessian: h, ADMM.Options(sparsity: s))
            for i in stride(from: 0, to: w.count, by: 2) { XCTAssertEqual(r.values[i], 0) }
            for row in 0 ..< rows { XCTAssertEqual(r.values[row * cols ..< (row + 1) * cols].filter { $0 == 0 }.count, zeros, "s \(s) row \(row)") }
        }
    }

    func testSelectSmallest() {
        var g = SplitMix(5)
        for n in [1, 2, 3, 10, 257] {
            let a = (0 ..< n).map { i in UInt64(g.nextDouble() * 50) << 32 | UInt64(i) }
            for k in [0, 1, n / 2, n - 1, n] {
                var b = a
                ADMM.selectSmallest(&b, k)
                XCTAssertEqual(Set(b.prefix(k)), Set(a.sorted().prefix(k)), "n \(n) k \(k)")
                XCTAssertEqual(b.sorted(), a.sorted(), "a permutation")
            }
        }
    }

    func testRecipeFieldsAreValidated() throws {
        assertRecipeRefused(#"{"pass": "admm_prune"}"#, field: "passes[0].sparsity", mentions: "is required (or give 'pattern'")
        assertRecipeRefused(#"{"pass": "admm_prune", "pattern": "2:4", "scope": "per_row"}"#, field: "passes[0].scope", mentions: "cannot be combined")
        assertRecipeRefused(#"{"pass": "admm_prune", "sparsity": 0.5, "iterations": 0}"#, field: "passes[0].iterations", mentions: "expected 1...")
        assertRecipeRefused(#"{"pass": "admm_prune", "sparsity": 0.5, "iterations": 10, "gradual": 12}"#, field: "passes[0].gradual", mentions: "at most 'iterations'")
        assertRecipeRefused(#"{"pass": "admm_prune", "sparsity": 0.5, "rho": 0}"#, field: "passes[0].rho", mentions: "value")
        assertRecipeRefused(#"{"pass": "admm_prune", "sparsity": 0.5, "block_size": 128}"#, field: "passes[0].block_size", mentions: "not a known field")
        let r = try Recipe.parse(Data(#"{"passes": [{"pass": "admm_prune", "sparsity": 0.5, "iterations": 8}]}"#.utf8), file: "r.json")
        let p = try XCTUnwrap(r.passes[0] as? ADMMPrune)
        XCTAssertEqual(p.gradual, 8, "the default growth is capped by the iterations")
        XCTAssertEqual(p.damp, 0.1)
        XCTAssertEqual(p.selector, TensorSelector(kinds: [.linear]))
        XCTAssertEqual(p.calibrationNeeds, .hessians)
    }

    /// The pass on the tiny Llama with calibration text (block 0 excluded): the pruned matrices lose
    /// exactly half of every row, the int8 file keeps the zeros, and the record says what was reached.
    func testPassRunsEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("admm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let text = packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let recipe = try Recipe.parse(Data(#"""
            {"calibration": {"tokens": 256, "ctx": 64}, "passes": [
              {"pass": "admm_prune", "sparsity": 0.5, "include": ["blk.*"], "exclude_layers": [0]},
              {"pass": "quantize", "bits": 8}, {"pass": "pack", "format": "auto"}]}
            """#.utf8), file: "a.json")
        let out = dir.appendingPathComponent("a.edge").path
        let summary = try Pipeline(recipe: recipe, recipeFile: "a.json").run(input: input, output: out, calibrationText: text)
        let rec = summary.records[0]
        XCTAssertEqual(rec["pass"]?.stringValue, "admm_prune")
        XCTAssertEqual(rec["achieved_sparsity"]?.doubleValue ?? 0, 0.5, accuracy: 1e-12)
        XCTAssertEqual(rec["tensors"]?.doubleValue, 7, "the 7 linear weights of layer 1; layer 0 stays dense")
        XCTAssertEqual(summary.timings.first?["pass"]?.stringValue, "admm_prune", "its time is reported")
        let edge = try Checkpoint.open(out)
        for name in ["blk.1.attn_q.weight", "blk.1.ffn_down.weight"] {
            let t = try XCTUnwrap(edge.tensor(named: name))
            let w = try t.floats(), cols = t.shape[1]
            for r in 0 ..< t.shape[0] {
                XCTAssertGreaterThanOrEqual(w[r * cols ..< (r + 1) * cols].filter { $0 == 0 }.count, cols / 2, "\(name) row \(r)")
            }
        }
        let dense = try XCTUnwrap(edge.tensor(named: "blk.0.attn_q.weight")).floats()
        XCTAssertLessThan(dense.filter { $0 == 0 }.count * 10, dense.count, "block 0 is not pruned")
    }
}
