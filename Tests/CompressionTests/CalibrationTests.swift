import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeKernels
import EdgeRuntime
import TestSupport
import XCTest

final class CalibrationTests: XCTestCase {
    private var text: String { packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path }

    /// Layer 0's attention input is rmsnorm(embedding rows): computed here without the runtime,
    /// it must give the statistics the observer gathered.
    func testLayer0StatisticsMatchAnIndependentComputation() throws {
        let ckpt = try Checkpoint.open(packageRoot().appendingPathComponent("Fixtures/tiny-llama").path)
        let graph = ModelGraph(ckpt)
        let q = "blk.0.attn_q.weight"
        let stats = try Calibration.collect(graph: graph, text: try CalibrationText.load(path: text), wanted: [q: [.columnNorms, .hessians]], maxTokens: 100, ctx: 50)
        XCTAssertEqual(stats.tokens, 100)

        let model = try EdgeModel.floatModel(graph: graph)
        let ids = Array(try model.tokenize(String(contentsOfFile: text, encoding: .utf8)).prefix(100))
        let h = graph.config.hiddenSize
        let emb = try XCTUnwrap(graph.source.tensor(named: "token_embd.weight")).floats()
        let w = try XCTUnwrap(graph.source.tensor(named: "blk.0.attn_norm.weight")).floats()
        var x = [Double](repeating: 0, count: ids.count * h)
        for (t, id) in ids.enumerated() {
            let row: [Double] = emb[Int(id) * h ..< (Int(id) + 1) * h].map { Double($0) }
            var ss = 0.0
            for v in row { ss += v * v }
            let rms = (ss / Double(h) + graph.config.normEps).squareRoot()
            for j in 0 ..< h { x[t * h + j] = row[j] / rms * Double(w[j]) }
        }
        let norms = try XCTUnwrap(stats.columnNorms(for: q))
        XCTAssertEqual(norms, try XCTUnwrap(stats.columnNorms(for: "blk.0.attn_v.weight")), "Q and V share their input")
        let hess = try XCTUnwrap(stats.hessian(for: q))
        for j in 0 ..< h {
            var ref = 0.0
            for t in 0 ..< ids.count { ref += x[t * h + j] * x[t * h + j] }
            ref = ref.squareRoot()
            XCTAssertEqual(Double(norms[j]), ref, accuracy: ref * 1e-4)
            for k in [0, 7, j] {
                var hr = 0.0
                for t in 0 ..< ids.count { hr += x[t * h + j] * x[t * h + k] }
                hr *= 2 / Double(ids.count)
                XCTAssertEqual(hess[j * h + k], hr, accuracy: 1e-4 * max(1, abs(hr)))
            }
        }
        XCTAssertNil(stats.hessian(for: "blk.1.ffn_down.weight"), "only what was asked for is gathered")
    }

    /// Weights that read the same activations share one site: Q/K/V per layer, gate/up per layer;
    /// the others (attention output, down, head) each have their own.
    /// The Hessian's Gram product computed as a triangle and mirrored is the full product, bit for
    /// bit, on widths that take the blocked path (odd sizes, block edges inside the kernel's tiles)
    /// and on a narrow one that takes the full product; and it is symmetric.
    func testSymmetricGramIsTheFullProduct() {
        var rng = SplitMix64(seed: 77)
        for (cols, rows) in [(300, 70), (577, 33), (1031, 129), (64, 40)] {
            let a = (0 ..< cols * rows).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
            var full: [Float] = [], sym: [Float] = []
            CalibrationStats.gram(a, a, into: &full, cols: cols, rows: rows)
            CalibrationStats.symmetricGram(a, into: &sym, cols: cols, rows: rows)
            XCTAssertEqual(sym.count, cols * cols)
            var mismatches = 0
            for i in 0 ..< full.count where full[i].bitPattern != sym[i].bitPattern { mismatches += 1 }
            XCTAssertEqual(mismatches, 0, "\(cols) x \(rows)")
            var asymmetric = 0
            for t in 0 ..< cols { for r in 0 ..< t where sym[t * cols + r] != sym[r * cols + t] { asymmetric += 1 } }
            XCTAssertEqual(asymmetric, 0, "\(cols) x \(rows)")
            // And against a double-precision dot product, as a check on both.
            for (t, r) in [(0, 0), (cols - 1, 0), (cols / 2, cols / 3), (cols - 1, cols - 1)] {
                var d = 0.0
                for k in 0 ..< rows { d += Double(a[r * rows + k]) * Double(a[t * rows + k]) }
                XCTAssertEqual(Double(sym[t * cols + r]), d, accuracy: 1e-4 * max(1, abs(d)))
            }
        }
    }

    func testSitesGroupWeightsByTheirInput() {
        typealias S = CalibrationStats
        XCTAssertEqual(S.site(of: "blk.0.attn_q.weight"), .attentionInput(layer: 0))
        XCTAssertEqual(S.site(of: "blk.0.attn_k.weight"), S.site(of: "blk.0.attn_v.weight"))
        XCTAssertEqual(S.site(of: "blk.0.attn_q.weight"), S.site(of: "blk.0.attn_v.weight"))
        XCTAssertNotEqual(S.site(of: "blk.0.attn_q.weight"), S.site(of: "blk.1.attn_q.weight"))
        XCTAssertEqual(S.site(of: "blk.2.ffn_gate.weight"), .mlpInput(layer: 2))
        XCTAssertEqual(S.site(of: "blk.2.ffn_up.weight"), .mlpInput(layer: 2))
        XCTAssertNotEqual(S.site(of: "blk.2.ffn_up.weight"), S.site(of: "blk.2.attn_q.weight"))
        for own in ["blk.0.attn_output.weight", "blk.0.ffn_down.weight", "output.weight", "token_embd.weight", "not.a.tensor"] {
            XCTAssertEqual(S.site(of: own), .tensor(own))
        }
    }

    /// Without --data a calibration recipe runs on the bundled set, and the output says so; with
    /// --data the file is used and named instead (and the statistics, so the weights, differ).
    /// Encoders read sentences: lines cut after '.', '!' or '?' (and closing quotes) before whitespace.
    func testSentences() {
        let text = "One two.  Three \"four!\" Five?\n\n  a line without an end\nWait... (yes.) 3.5 is a number. e.g.x\n"
        XCTAssertEqual(CalibrationText.sentences(of: text),
                       ["One two.", "Three \"four!\"", "Five?", "a line without an end", "Wait...", "(yes.)", "3.5 is a number.", "e.g.x"])
        XCTAssertEqual(CalibrationText.sentences(of: "\n \n"), [])
        XCTAssertGreaterThan(CalibrationText.bundled.sentences.count, 2000)
    }

    /// The held-out texts stay held out: no 200-byte run of any `Fixtures/text/eval-*.txt` occurs in
    /// the bundled calibration set (scripts/make_texts.py checks the same on characters when it
    /// builds them; this catches a later edit of either). A rolling hash finds candidates, bytes decide.
    func testEvaluationTextsShareNoWindowWithTheBundledSet() throws {
        let window = 200
        let cal = Array(CalibrationText.bundled.text.utf8)
        let base: UInt64 = 1_099_511_628_211
        var top: UInt64 = 1  // base^(window-1), wrapping
        for _ in 1 ..< window { top = top &* base }
        func hashes(_ b: [UInt8]) -> [UInt64] {
            guard b.count >= window else { return [] }
            var h: UInt64 = 0
            for i in 0 ..< window { h = h &* base &+ UInt64(b[i]) }
            var out = [h]
            out.reserveCapacity(b.count - window + 1)
            for i in window ..< b.count {
                h = (h &- UInt64(b[i - window]) &* top) &* base &+ UInt64(b[i])
                out.append(h)
            }
            return out
        }
        var starts: [UInt64: [Int]] = [:]
        for (i, h) in hashes(cal).enumerated() { starts[h, default: []].append(i) }
        let dir = packageRoot().appendingPathComponent("Fixtures/text")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("eval-") && $0.hasSuffix(".txt") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 4, "the committed evaluation texts")
        for name in names {
            let text = Array(try Data(contentsOf: dir.appendingPathComponent(name)))
            XCTAssertGreaterThan(text.count, 50_000, name)
            var shared = 0
            for (i, h) in hashes(text).enumerated() {
                guard let cands = starts[h] else { continue }
                if cands.contains(where: { cal[$0 ..< $0 + window].elementsEqual(text[i ..< i + window]) }) { shared += 1 }
            }
            XCTAssertEqual(shared, 0, "\(name): \(shared) 200-byte windows also in the bundled calibration set")
        }
        // The check can fail: a window copied from the set is found.
        let copied = Array(cal[100_000 ..< 100_000 + window])
        XCTAssertNotNil(starts[hashes(copied)[0]]?.first { cal[$0 ..< $0 + window].elementsEqual(copied) })
    }

    func testBundledSetIsUsedWithoutDataAndNamedInProvenance() throws {
        let bundled = CalibrationText.bundled
        XCTAssertGreaterThanOrEqual(bundled.text.utf8.count, 200_000, "at least 200 KB of calibration text")
        XCTAssertTrue(bundled.isBundled)
        let onDisk = try Data(contentsOf: packageRoot().appendingPathComponent("Sources/CalibrationSet/calibration.txt"))
        XCTAssertEqual(Data(bundled.text.utf8), onDisk, "the embedded bytes are the committed file's")

        let recipe = try Recipe.parse(Data(#"{"calibration": {"tokens": 256, "ctx": 64}, "passes":[{"pass":"wanda_prune","sparsity":0.5,"include":["blk.*"]}]}"#.utf8),
                                      file: "w.json")
        let dir = try makeTemporaryFolder(prefix: "bundled")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let a = dir.appendingPathComponent("bundled.edge").path, b = dir.appendingPathComponent("data.edge").path
        _ = try Pipeline(recipe: recipe, recipeFile: "w.json").run(input: input, output: a)
        _ = try Pipeline(recipe: recipe, recipeFile: "w.json").run(input: input, output: b, calibrationText: text)
        let ca = try XCTUnwrap(EdgeFile(path: a).provenance.metrics["calibration"])
        XCTAssertEqual(ca["source"]?.stringValue, "bundled")
        XCTAssertEqual(ca["sha256"]?.stringValue, bundled.sha256)
        XCTAssertEqual(ca["bytes"]?.doubleValue, Double(onDisk.count))
        let cb = try XCTUnwrap(EdgeFile(path: b).provenance.metrics["calibration"])
        XCTAssertEqual(cb["source"]?.stringValue, "us-declaration.txt")
        XCTAssertNotEqual(cb["sha256"]?.stringValue, bundled.sha256)
        let qa = try XCTUnwrap(Checkpoint.open(a).tensor(named: "blk.0.ffn_up.weight")).floats()
        let qb = try XCTUnwrap(Checkpoint.open(b).tensor(named: "blk.0.ffn_up.weight")).floats()
        XCTAssertNotEqual(qa.map { $0 == 0 }, qb.map { $0 == 0 }, "the two texts choose different masks")
    }

    func testWandaAndGPTQRunEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        for name in ["wanda50-int8", "gptq-int4-g64"] {
            let file = packageRoot().appendingPathComponent("Recipes/\(name).json").path
            var recipe = try Recipe.load(path: file)
            recipe.calibration = CalibrationOptions(tokens: 256, ctx: 64)
            let out = dir.appendingPathComponent(name + ".edge").path
            let summary = try Pipeline(recipe: recipe, recipeFile: file).run(input: input, output: out, calibrationText: text)
            let edge = try Checkpoint.open(out)
            if name == "wanda50-int8" {
                XCTAssertEqual(summary.records[0]["achieved_sparsity"]?.doubleValue ?? 0, 0.5, accuracy: 1e-9)
                let q = try XCTUnwrap(edge.tensor(named: "blk.1.attn_q.weight")).floats()
                for r in 0 ..< 64 { XCTAssertEqual(q[r * 64 ..< (r + 1) * 64].filter { $0 == 0 }.count, 32, "row \(r)") }
                let dense = try XCTUnwrap(edge.tensor(named: "blk.0.attn_q.weight")).floats()
                XCTAssertLessThan(dense.filter { $0 == 0 }.count * 10, dense.count, "the recipe keeps block 0 dense")
            } else {
                let rec = summary.records[0]
                XCTAssertEqual(rec["method"]?.stringValue, "gptq")
                XCTAssertEqual(rec["round_to_nearest"]?.arrayValue?.compactMap(\.stringValue), [],
                               "every linear weight had input statistics")
                XCTAssertEqual(edge.tensor(named: "blk.1.ffn_down.weight")?.storage, "q4")
                XCTAssertEqual(edge.tensor(named: "token_embd.weight")?.storage, "q8", "the embedding is int8 as in int4-g64")
            }
        }
    }

    /// The bundled quantization recipes run end to end on a tied model: every block's linear weight in
    /// the recipe's encoding, the tied embedding fitted as the head with GPTQ (no weight rounded to
    /// nearest), files ordered by size as their bits, and the q3s file (its head q4k) is format version 4,
    /// the q4k ones 3. `int3`'s block matrices are fitted by GPTQ in the distill pass's block-wise stage.
    func testQuantizationRecipesRunEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path
        let expected: [(String, linear: String, embedding: String)] =
            [("int3", "q3s", "q4k"), ("int4", "q4k", "q4k"), ("int4-mixed", "q4k", "q8")]
        var sizes: [Int] = []
        for (name, linear, embedding) in expected {
            let file = packageRoot().appendingPathComponent("Recipes/\(name).json").path
            var recipe = try Recipe.load(path: file)
            recipe.calibration = CalibrationOptions(tokens: 256, ctx: 64)
            let out = dir.appendingPathComponent(name + ".edge").path
            let summary = try Pipeline(recipe: recipe, recipeFile: file).run(input: input, output: out, calibrationText: text)
            let edge = try EdgeFile(path: out)
            for t in edge.tensors where t.name.hasPrefix("blk.") && t.name.hasSuffix(".weight") && t.shape.count == 2 {
                XCTAssertEqual(t.encoding.rawValue, linear, "\(name): \(t.name)")
            }
            XCTAssertEqual(edge.tensors.first { $0.name == "token_embd.weight" }?.encoding.rawValue, embedding, name)
            XCTAssertEqual(edge.preamble.version, linear == "q3s" ? 4 : linear == "q4k" ? 3 : 1, "\(name): q3s needs format version 4, q4k 3")
            for rec in summary.records {
                if rec["method"]?.stringValue == "gptq" {
                    XCTAssertEqual(rec["round_to_nearest"]?.arrayValue?.compactMap(\.stringValue), [], "\(name): every weight had statistics")
                }
            }
            let quantizeRecords = summary.records.filter { $0["pass"]?.stringValue == "quantize" }
            if embedding != "q8" { XCTAssertEqual(quantizeRecords.last?["tied_as_head"], .bool(true), name) }
            if name == "int3" {
                // Its linear weights are fitted by GPTQ in the block-wise stage, then trained on those grids.
                let fitted = quantizeRecords.dropLast().compactMap { $0["fitted_before_training"]?.doubleValue }.reduce(0, +)
                let matrices = edge.tensors.filter { $0.name.hasPrefix("blk.") && $0.shape.count == 2 }.count
                XCTAssertEqual(Int(fitted), matrices, "int3: every block matrix fitted before training")
            }
            sizes.append(edge.fileSize)
        }
        XCTAssertLessThan(sizes[0], sizes[1], "int3 is smaller than int4")
        XCTAssertLessThan(sizes[1], sizes[2], "int4 is smaller than int4-mixed")
    }
}
