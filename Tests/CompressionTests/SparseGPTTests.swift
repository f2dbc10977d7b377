import Checkpoint
@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

final class SparseGPTTests: XCTestCase {
    /// `Fixtures/sparsegpt-reference/obs-8x64.json`, written by `scripts/sparsegpt_reference.py`.
    private struct Reference: Decodable {
        let rows: Int, cols: Int, tokens: Int
        let block_size: Int
        let damp: Double
        let weights: [[Double]]
        let inputs: [[Double]]
        let cases: [PruneReferenceCase]
    }

    /// Mask and weights as the numpy transcription of the reference implementation computes them
    /// (float64; ours sweeps in float32 as GPTQ does), for unstructured per_row and per_tensor and
    /// for 2:4, with a dead input.
    func testMatchesNumpyReference() throws {
        let url = packageRoot().appendingPathComponent("Fixtures/sparsegpt-reference/obs-8x64.json")
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        XCTAssertEqual(ref.cases.count, 3)
        // Weights ~0.05: float32 sweeps against float64.
        try checkPruneReference(weights: ref.weights, inputs: ref.inputs, rows: ref.rows, cols: ref.cols, tokens: ref.tokens,
                                cases: ref.cases, tolerance: 2e-6) { w, h, c in
            var o = SparseGPT.Options(sparsity: c.sparsity ?? 0, blockSize: ref.block_size, damp: ref.damp)
            if let p = c.pattern { o.pattern = try XCTUnwrap(NMPattern(parsing: p)) }
            if let s = c.scope { o.scope = try XCTUnwrap(SparseGPTPrune.Scope(rawValue: s)) }
            return try SparseGPT.prune(weights: w, rows: ref.rows, cols: ref.cols, hessian: h, options: o)
        }
    }

    /// On correlated inputs, compensating the pruned weights' error on the kept ones lowers the
    /// layer's output error well below magnitude pruning's and below Wanda's (which only choose).
    func testLowerOutputErrorThanMagnitudeAndWanda() throws {
        let rows = 24, cols = 96, tokens = 384
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 17)
        var g = SplitMix(23)
        let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
        let h = inputHessian(x, tokens: tokens, cols: cols)
        let norms = inputNorms(x, tokens: tokens, cols: cols)
        for (block, sparsity) in [(32, 0.5), (128, 0.5), (16, 0.7)] {
            let s = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h,
                                        options: .init(sparsity: sparsity, blockSize: block))
            var magnitude = w, wanda = w
            try WandaPrune.prune(&magnitude, rows: rows, cols: cols, norms: [Float](repeating: 1, count: cols), sparsity: sparsity)
            try WandaPrune.prune(&wanda, rows: rows, cols: cols, norms: norms, sparsity: sparsity)
            let es = outputError(w, s.values, x, rows: rows, cols: cols, tokens: tokens)
            let em = outputError(w, magnitude, x, rows: rows, cols: cols, tokens: tokens)
            let ew = outputError(w, wanda, x, rows: rows, cols: cols, tokens: tokens)
            print("block \(block) sparsity \(sparsity): output error sparsegpt \(es) wanda \(ew) magnitude \(em)")
            XCTAssertLessThan(es, em * 0.7, "block \(block) sparsity \(sparsity)")
            XCTAssertLessThan(es, ew * 0.9, "block \(block) sparsity \(sparsity)")
            let k = Int(Double(cols) * sparsity)
            for r in 0 ..< rows { XCTAssertEqual(s.values[r * cols ..< (r + 1) * cols].filter { $0 == 0 }.count, k, "row \(r)") }
        }
        // 2:4 against magnitude 2:4
        let p = try XCTUnwrap(NMPattern(parsing: "2:4"))
        let s = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h, options: .init(sparsity: 0, pattern: p))
        var magnitude = w
        p.apply(to: &magnitude, rows: rows, cols: cols)
        let es = outputError(w, s.values, x, rows: rows, cols: cols, tokens: tokens)
        let em = outputError(w, magnitude, x, rows: rows, cols: cols, tokens: tokens)
        XCTAssertLessThan(es, em * 0.7, "2:4")
    }

    /// shrink 1 leaves H's diagonal: nothing is compensated (kept weights unchanged) and, with
    /// damping 0, w^2 / U_jj^2 = w^2 H_jj, Wanda's score squared: the same mask as Wanda's.
    func testFullShrinkIsWanda() throws {
        let rows = 6, cols = 48, tokens = 128
        let x = correlatedInputs(tokens: tokens, cols: cols, seed: 8)
        var g = SplitMix(12)
        let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) }
        let norms = inputNorms(x, tokens: tokens, cols: cols)
        var wanda = w
        try WandaPrune.prune(&wanda, rows: rows, cols: cols, norms: norms, sparsity: 0.5)
        let r = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: inputHessian(x, tokens: tokens, cols: cols),
                                    options: .init(sparsity: 0.5, blockSize: cols, damp: 0, shrink: 1))
        XCTAssertEqual(r.values, wanda)
    }

    /// Every group of M holds at most N non-zeros, over odd shapes, block sizes and partial last
    /// groups, and weights already zero stay zero.
    func testNMPatternHoldsExactly() throws {
        var g = SplitMix(31)
        for (pattern, rows, cols, block) in [("2:4", 5, 70, 8), ("1:4", 3, 33, 128), ("4:8", 4, 64, 16), ("2:4", 7, 4, 4), ("1:2", 2, 1, 2)] {
            let p = try XCTUnwrap(NMPattern(parsing: pattern))
            let tokens = 2 * cols + 8
            let x = correlatedInputs(tokens: tokens, cols: cols, seed: UInt64(cols))
            var w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) * 0.05 }
            for i in stride(from: 3, to: w.count, by: 11) { w[i] = 0 }
            let r = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: inputHessian(x, tokens: tokens, cols: cols),
                                        options: .init(sparsity: 0, pattern: p, blockSize: block))
            XCTAssertTrue(p.isSatisfied(by: r.values, rows: rows, cols: cols), "\(pattern) \(rows)x\(cols) block \(block)")
            for i in w.indices where w[i] == 0 { XCTAssertEqual(r.values[i], 0, "\(pattern): a zero stays zero") }
            // each group drops exactly len - keep(len) unless it held more zeros
            for row in 0 ..< rows {
                var start = 0
                while start < cols {
                    let len = min(p.m, cols - start)
                    let zeros = (start ..< start + len).filter { w[row * cols + $0] == 0 }.count
                    let dropped = (start ..< start + len).filter { r.mask[row * cols + $0] }.count
                    XCTAssertEqual(dropped, max(len - p.keep(inGroupOf: len), zeros), "\(pattern) row \(row) group at \(start)")
                    start += len
                }
            }
        }
    }

    /// Unstructured: exact per-row (per-tensor) counts over odd shapes; earlier zeros stay zero
    /// and count towards a row's share.
    func testExactSparsityAndEarlierZeros() throws {
        var g = SplitMix(41)
        for (rows, cols, block) in [(1, 1, 128), (3, 7, 2), (5, 33, 16), (4, 64, 128)] {
            let tokens = 2 * cols + 8
            let h = inputHessian(correlatedInputs(tokens: tokens, cols: cols, seed: UInt64(cols) + 5), tokens: tokens, cols: cols)
            for s in [0.0, 0.3, 0.5, 0.9] {
                let w = (0 ..< rows * cols).map { _ in Float(g.nextDouble() * 2 - 1) }
                let r = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h, options: .init(sparsity: s, blockSize: block))
                for row in 0 ..< rows {
                    XCTAssertEqual(r.values[row * cols ..< (row + 1) * cols].filter { $0 == 0 }.count, Int(Double(cols) * s), "\(rows)x\(cols) s \(s)")
                }
                let t = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h,
                                            options: .init(sparsity: s, scope: .perTensor, blockSize: block))
                XCTAssertEqual(t.values.filter { $0 == 0 }.count, Int(Double(rows * cols) * s), "per_tensor \(rows)x\(cols) s \(s)")
            }
        }
        // Half of each row already zero (every other column), pruned to 30%: the zeros stay and
        // fill the share; to 75%: a quarter more.
        let rows = 6, cols = 40, tokens = 96
        let h = inputHessian(correlatedInputs(tokens: tokens, cols: cols, seed: 3), tokens: tokens, cols: cols)
        let w = (0 ..< rows * cols).map { i in i % 2 == 0 ? 0 : Float(g.nextDouble() * 2 - 1) }
        for (s, zeros) in [(0.3, 20), (0.75, 30)] {
            let r = try SparseGPT.prune(weights: w, rows: rows, cols: cols, hessian: h, options: .init(sparsity: s, blockSize: 8))
            for i in stride(from: 0, to: w.count, by: 2) { XCTAssertEqual(r.values[i], 0) }
            for row in 0 ..< rows { XCTAssertEqual(r.values[row * cols ..< (row + 1) * cols].filter { $0 == 0 }.count, zeros, "s \(s) row \(row)") }
        }
    }

    func testRecipeFieldsAreValidated() throws {
        assertRecipeRefused(#"{"pass": "sparsegpt_prune"}"#, field: "passes[0].sparsity", mentions: "is required (or give 'pattern'")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 1}"#, field: "passes[0].sparsity", mentions: "0 <= value < 1")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "pattern": "2:4", "sparsity": 0.5}"#, field: "passes[0].sparsity", mentions: "cannot be combined with 'pattern'")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "pattern": "2:4", "scope": "per_row"}"#, field: "passes[0].scope", mentions: "cannot be combined")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "pattern": "4:2"}"#, field: "passes[0].pattern", mentions: "expected \"N:M\"")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "pattern": "2:4", "block_size": 30}"#, field: "passes[0].block_size", mentions: "multiple of 4")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 0.5, "block_size": 0}"#, field: "passes[0].block_size", mentions: "expected 1...")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 0.5, "scope": "global"}"#, field: "passes[0].scope", mentions: "per_row, per_tensor")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 0.5, "damp": 2}"#, field: "passes[0].damp", mentions: "0 <= value <= 1")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 0.5, "shrink": -0.5}"#, field: "passes[0].shrink", mentions: "0 <= value <= 1")
        assertRecipeRefused(#"{"pass": "sparsegpt_prune", "sparsity": 0.5, "act_order": true}"#, field: "passes[0].act_order", mentions: "not a known field")
        let r = try Recipe.parse(Data(#"{"passes": [{"pass": "sparsegpt_prune", "pattern": "2:8"}]}"#.utf8), file: "r.json")
        let p = try XCTUnwrap(r.passes[0] as? SparseGPTPrune)
        XCTAssertEqual(p.blockSize, 128)
        XCTAssertEqual(p.sparsity, 0.75)
        XCTAssertEqual(p.selector, TensorSelector(kinds: [.linear]))
        XCTAssertEqual(p.calibrationNeeds, .hessians)
        let q = try XCTUnwrap(Recipe.parse(Data(#"{"passes": [{"pass": "sparsegpt_prune", "pattern": "3:5"}]}"#.utf8), file: "r.json").passes[0] as? SparseGPTPrune)
        XCTAssertEqual(q.blockSize, 125, "the default block is whole groups")
    }

    /// `Recipes/sparsegpt50-int8.json` and a 2:4 variant on the tiny Llama with calibration text:
    /// the pruned matrices (block 1's: the recipe keeps block 0 dense) lose exactly half of every
    /// row (2 of every 4 in the variant, which prunes both blocks), the int8 file keeps the zeros,
    /// and the record says what was reached.
    func testRecipesRunEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sgpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let text = packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path
        let file = packageRoot().appendingPathComponent("Recipes/sparsegpt50-int8.json").path
        var recipe = try Recipe.load(path: file)
        recipe.calibration = CalibrationOptions(tokens: 256, ctx: 64)
        let out = dir.appendingPathComponent("s.edge").path
        let summary = try Pipeline(recipe: recipe, recipeFile: file).run(input: input, output: out, calibrationText: text)
        let rec = summary.records[0]
        XCTAssertEqual(rec["pass"]?.stringValue, "sparsegpt_prune")
        XCTAssertEqual(rec["achieved_sparsity"]?.doubleValue ?? 0, 0.5, accuracy: 1e-12)
        XCTAssertEqual(rec["tensors"]?.doubleValue, 7, "the 7 linear weights of layer 1; layer 0 stays dense")
        XCTAssertEqual(rec["per_tensor_sparsity"]?["blk.1.ffn_down.weight"]?.doubleValue, 0.5)
        XCTAssertNil(rec["per_tensor_sparsity"]?["blk.0.attn_q.weight"])
        XCTAssertEqual(summary.timings.first?["pass"]?.stringValue, "sparsegpt_prune", "its time is reported")
        // int8 keeps every zero, and rounds a few kept weights that the compensation made tiny to zero too.
        let edge = try Checkpoint.open(out)
        for name in ["blk.1.attn_q.weight", "blk.1.ffn_down.weight"] {
            let t = try XCTUnwrap(edge.tensor(named: name))
            let w = try t.floats(), cols = t.shape[1]
            var extra = 0
            for r in 0 ..< t.shape[0] {
                let zeros = w[r * cols ..< (r + 1) * cols].filter { $0 == 0 }.count
                XCTAssertGreaterThanOrEqual(zeros, cols / 2, "\(name) row \(r)")
                extra += zeros - cols / 2
            }
            XCTAssertLessThan(extra * 200, w.count, "\(name): under 0.5% of the weights rounded to zero")
        }
        let dense = try XCTUnwrap(edge.tensor(named: "blk.0.attn_q.weight")).floats()
        XCTAssertLessThan(dense.filter { $0 == 0 }.count * 10, dense.count, "block 0 is not pruned")
        let embedding = try XCTUnwrap(edge.tensor(named: "token_embd.weight")).floats()
        XCTAssertLessThan(embedding.filter { $0 == 0 }.count * 10, embedding.count, "the embedding is not pruned")

        let nm = try Recipe.parse(Data(#"""
            {"calibration": {"tokens": 256, "ctx": 64}, "passes": [
              {"pass": "sparsegpt_prune", "pattern": "2:4", "include": ["blk.*"]},
              {"pass": "quantize", "bits": 8}, {"pass": "pack", "format": "auto"}]}
            """#.utf8), file: "nm.json")
        let out2 = dir.appendingPathComponent("nm.edge").path
        let s2 = try Pipeline(recipe: nm, recipeFile: "nm.json").run(input: input, output: out2, calibrationText: text)
        XCTAssertEqual(s2.records[0]["pattern"]?.stringValue, "2:4")
        let edge2 = try Checkpoint.open(out2)
        let p = try XCTUnwrap(NMPattern(parsing: "2:4"))
        for n in 0 ..< 2 {
            for name in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] {
                let t = try XCTUnwrap(edge2.tensor(named: "blk.\(n).\(name).weight"))
                XCTAssertTrue(p.isSatisfied(by: try t.floats(), rows: t.shape[0], cols: t.shape[1]), "blk.\(n).\(name)")
                XCTAssertEqual(t.storage, "nm", "blk.\(n).\(name)")
            }
        }
    }
}
