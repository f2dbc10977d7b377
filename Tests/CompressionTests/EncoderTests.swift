import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// Encoders (BERT) end to end on Fixtures/tiny-bert: import, WordPiece ids and the forward against
/// the numpy reference (scripts/reference_bert.py), every encoding through the pipeline, verify,
/// export, and bad inputs.
final class EncoderTests: TempDirTestCase {
    struct Reference {
        let sentences: [String]
        let ids: [[Int32]]
        let embeddings: [[Double]]
    }

    static let folder = fixturePath("tiny-bert")

    func reference() throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("tiny-bert-reference.json")))
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let ids = try XCTUnwrap(o["ids"] as? [[Int]]).map { $0.map(Int32.init) }
        let emb = try XCTUnwrap(o["embeddings"] as? [[Double]])
        return Reference(sentences: try XCTUnwrap(o["sentences"] as? [String]), ids: ids, embeddings: emb)
    }

    func floatModel() throws -> EdgeModel {
        try EdgeModel.floatModel(graph: ModelGraph(try Checkpoint.open(Self.folder)))
    }

    /// Largest relative L2 difference between corresponding vectors.
    func maxRelativeDifference(_ a: [[Float]], _ b: [[Double]]) -> Double {
        zip(a, b).map { x, y in
            var d = 0.0, n = 0.0
            for i in y.indices { d += (Double(x[i]) - y[i]) * (Double(x[i]) - y[i]); n += y[i] * y[i] }
            return (d / n).squareRoot()
        }.max() ?? .infinity
    }

    func testImportReadsTheEncoderAndItsPooling() throws {
        let ckpt = try Checkpoint.open(Self.folder)
        let c = ckpt.config
        XCTAssertEqual(c.architecture, .bert)
        XCTAssertTrue(c.isEncoder)
        XCTAssertEqual(c.pooling, ModelConfig.Pooling(mode: .mean, normalize: true, maxTokens: 64))
        XCTAssertEqual(c.typeVocabSize, 2)
        XCTAssertEqual(c.normEps, 1e-12)
        // Post-norm blocks with biased Q/K/V/O, no output head; the pooler is dropped.
        let names = ckpt.tensors.map(\.name)
        XCTAssertEqual(Array(names.prefix(5)), ["token_embd.weight", "position_embd.weight", "token_types.weight",
                                                "token_embd_norm.weight", "token_embd_norm.bias"])
        XCTAssertTrue(names.contains("blk.1.attn_output_norm.bias"))
        XCTAssertTrue(names.contains("blk.1.layer_output_norm.weight"))
        XCTAssertFalse(names.contains { $0.hasPrefix("output") || $0.hasPrefix("cls") })
        XCTAssertEqual(names.count, 5 + 2 * 16)
    }

    func testFloatEmbeddingsMatchTheNumpyReference() throws {
        let ref = try reference()
        let model = try floatModel()
        XCTAssertEqual(try ref.sentences.map(model.sentenceTokens), ref.ids, "ids: Hugging Face tokenizers via the reference script")
        // Batched (all sentences in one forward) and one at a time give the reference.
        let batched = try model.embed(tokens: ref.ids)
        XCTAssertLessThan(maxRelativeDifference(batched, ref.embeddings), 1e-5)
        let single = try ref.ids.map { try model.embed(tokens: [$0])[0] }
        XCTAssertLessThan(maxRelativeDifference(single, ref.embeddings), 1e-5)
        // Unit norm (a Normalize module follows the pooling).
        for v in batched { XCTAssertEqual(v.reduce(0) { $0 + Double($1 * $1) }, 1, accuracy: 1e-5) }
        // The longest sentence is truncated to max_seq_length, [SEP] kept last.
        XCTAssertEqual(ref.ids.map(\.count).max(), 64)
    }

    func testAnEncoderHasNoLogitsAndADecoderNoEmbeddings() throws {
        let model = try floatModel()
        XCTAssertThrowsError(try model.logits([1, 2, 3])) { e in
            XCTAssertTrue("\(e)".contains("encoder"), "\(e)")
        }
        let llama = try EdgeModel.floatModel(graph: ModelGraph(try Checkpoint.open(fixturePath("tiny-llama"))))
        XCTAssertThrowsError(try llama.embed(["hello"])) { e in XCTAssertTrue("\(e)".contains("decoder"), "\(e)") }
    }

    /// Every encoding the pipeline makes runs in the encoder, close to the float embeddings.
    func testEveryEncodingRunsTheEncoder() throws {
        let ref = try reference()
        let float = try floatModel().embed(tokens: ref.ids)
        let cases: [(String, String, Double)] = [
            ("f32", #"[]"#, 0.999999),
            ("f16", #"[{"pass": "cast", "dtype": "f16"}]"#, 0.9999),
            ("int8", #"[{"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear", "embedding"]}]"#, 0.999),
            ("int4-g32", #"[{"pass": "quantize", "bits": 4, "group_size": 32, "kinds": ["linear"]}]"#, 0.95),
            ("prune-csr", #"[{"pass": "magnitude_prune", "sparsity": 0.3, "kinds": ["linear"]}, {"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear"]}, {"pass": "pack", "format": "csr", "kinds": ["linear"]}]"#, 0.9),
            ("prune-bitmask", #"[{"pass": "wanda_prune", "sparsity": 0.3, "kinds": ["linear"]}, {"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear"]}, {"pass": "pack", "format": "bitmask", "kinds": ["linear"]}]"#, 0.9),
            ("sparsegpt-2of4", #"[{"pass": "sparsegpt_prune", "pattern": "2:4", "kinds": ["linear"]}, {"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear"]}, {"pass": "pack", "format": "nm", "kinds": ["linear"]}]"#, 0.7),
            ("gptq", #"[{"pass": "quantize", "bits": 4, "group_size": 32, "method": "gptq", "kinds": ["linear"]}]"#, 0.95),
            ("structured", #"[{"pass": "structured_prune", "mlp": 0.25, "heads": 0.25, "ranking": "activation", "kinds": ["linear"], "include": ["blk.*"]}, {"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear"]}]"#, 0.7),
        ]
        let data = tmp.appendingPathComponent("calibration.txt").path
        try (ref.sentences + ref.sentences.map { $0.uppercased() }).joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        for (name, passes, minCosine) in cases {
            let recipeText = #"{"name": "\#(name)", "calibration": {"tokens": 4096}, "passes": \#(passes)}"#
            let recipe = try Recipe.parse(Data(recipeText.utf8), file: name)
            let out = tmp.appendingPathComponent("\(name).edge").path
            _ = try Pipeline(recipe: recipe, recipeFile: name).run(input: Self.folder, output: out, calibrationText: data)
            let model = try EdgeModel(path: out)
            let got = try model.embed(ref.sentences)
            let cosines = zip(float, got).map { EmbeddingComparison.cosine($0, $1) }
            XCTAssertGreaterThanOrEqual(cosines.min()!, minCosine, "\(name): \(cosines)")
            if name == "f32" { XCTAssertEqual(got, float, "f32 .edge is the float model") }
            if name == "structured" {  // one head of 4 and 32 neurons of 128 gone in every layer
                XCTAssertEqual(model.config.layers, Array(repeating: .init(numHeads: 3, numKVHeads: 3, intermediateSize: 96), count: 2))
            }
        }
    }

    static let prune50 = #"{"pass": "magnitude_prune", "sparsity": 0.5, "kinds": ["linear"], "include": ["blk.*"]}"#
    static let int8 = #"{"pass": "quantize", "bits": 8, "symmetric": true, "kinds": ["linear", "embedding"]}"#
    static let pack = #"{"pass": "pack", "format": "auto"}"#

    /// Magnitude pruning and int8, then packing, with and without the `distill` pass between them
    /// (calibration text: the US Constitution): the mean cosine of each against the float model on
    /// the reference sentences (which it did not train on), and the distill pass's record. Checks
    /// that every pruned block matrix keeps its zeros.
    func pruneWithAndWithout(distill: String) throws -> (plain: Double, distilled: Double, record: JSONValue) {
        let ref = try reference()
        let float = try floatModel().embed(tokens: ref.ids)
        var cosines: [String: Double] = [:]
        var record: JSONValue = .object([:])
        for (name, passes) in [("plain", [Self.prune50, Self.int8, Self.pack]), ("distilled", [Self.prune50, Self.int8, distill, Self.pack])] {
            let recipe = try Recipe.parse(Data(#"{"name": "\#(name)", "passes": [\#(passes.joined(separator: ","))]}"#.utf8), file: name)
            let out = tmp.appendingPathComponent("\(name).edge").path
            let s = try Pipeline(recipe: recipe, recipeFile: name).run(input: Self.folder, output: out,
                                                                      calibrationText: fixturePath("text/us-constitution.txt"))
            if let r = s.records.first(where: { $0["pass"]?.stringValue == "distill" }) { record = r }
            let got = try EdgeModel(path: out).embed(ref.sentences)
            cosines[name] = zip(float, got).map { EmbeddingComparison.cosine($0, $1) }.reduce(0, +) / Double(float.count)
            let file = try EdgeFile(path: out)
            for e in file.tensors where e.name.hasPrefix("blk.") && e.shape.count == 2 {
                let v = try file.floats(of: e)
                XCTAssertGreaterThanOrEqual(v.filter { $0 == 0 }.count * 2, v.count, "\(name) \(e.name) keeps its sparsity")
            }
        }
        return (try XCTUnwrap(cosines["plain"]), try XCTUnwrap(cosines["distilled"]), record)
    }

    /// Distillation after magnitude pruning and int8 brings the embeddings back toward the float
    /// model's (sentences it did not train on); pruned weights stay zero; the record has the held-out loss.
    func testDistillRecoversTheEmbeddingsPruningCost() throws {
        let distill = #"{"pass": "distill", "steps": 30, "batch": 4, "length": 32, "lr": 3e-3, "cosine": 1, "intermediate": 1, "eval_every": 0}"#
        let (plain, distilled, record) = try pruneWithAndWithout(distill: distill)
        XCTAssertGreaterThan(1 - plain, 2 * (1 - distilled), "mean cosine plain \(plain), distilled \(distilled)")
        let before = try XCTUnwrap(record["held_out_loss_before"]?.doubleValue), after = try XCTUnwrap(record["held_out_loss_after"]?.doubleValue)
        XCTAssertLessThan(after, before)
        XCTAssertNil(record["held_out_ppl_before"])
    }

    /// The block-wise stage alone (`steps: 0`) on an encoder: every block's error against the float
    /// encoder falls, the embeddings of sentences it did not train on come back toward the float
    /// model's, and pruned weights stay zero.
    func testBlockwiseStageRecoversTheEmbeddings() throws {
        let blockwise = #"{"pass": "distill", "steps": 0, "blockwise_epochs": 4, "blockwise_tokens": 2048, "blockwise_lr": 3e-3, "batch": 8, "length": 64}"#
        let (plain, recovered, record) = try pruneWithAndWithout(distill: blockwise)
        let before = try XCTUnwrap(record["blockwise_error_before"]?.arrayValue).compactMap(\.doubleValue)
        let after = try XCTUnwrap(record["blockwise_error_after"]?.arrayValue).compactMap(\.doubleValue)
        XCTAssertEqual(before.count, 2)
        for l in 0 ..< 2 { XCTAssertLessThan(after[l], before[l], "block \(l)") }
        XCTAssertGreaterThan(try XCTUnwrap(record["blockwise_windows"]?.doubleValue), 10)
        XCTAssertGreaterThan(1 - plain, 2 * (1 - recovered), "mean cosine plain \(plain), block-wise \(recovered)")
    }

    func testVerifyReportsCosineRetrievalAndTheBudget() throws {
        let ref = try reference()
        let recipeText = #"{"name": "q4", "budget": {"min_cosine": 0.9999999}, "passes": [{"pass": "quantize", "bits": 4, "group_size": 32, "kinds": ["linear"]}]}"#
        let out = tmp.appendingPathComponent("q4.edge").path
        _ = try Pipeline(recipe: try Recipe.parse(Data(recipeText.utf8), file: "q4"), recipeFile: "q4").run(input: Self.folder, output: out)
        let v = try Verifier(input: Self.folder, output: out)
        XCTAssertTrue(v.isEncoder)
        XCTAssertEqual(v.embeddedBudget?.minCosine, 0.9999999)
        let r = try v.runEncoder(sentences: ref.sentences, budget: v.embeddedBudget)
        XCTAssertEqual(r.sentences, ref.sentences.count)
        XCTAssertGreaterThan(r.meanCosine, 0.9)
        XCTAssertLessThan(r.meanCosine, 1)
        XCTAssertLessThanOrEqual(r.minCosine, r.meanCosine)
        XCTAssertLessThan(r.after.bytes, r.before.bytes)
        XCTAssertFalse(r.budget.ok)
        XCTAssertTrue(r.budget.violations[0].hasPrefix("mean cosine"), "\(r.budget.violations)")
        // Retrieval agreement against an independent nearest-neighbour search.
        let e0 = try v.before.embed(ref.sentences), e1 = try v.after.embed(ref.sentences)
        func nn(_ e: [[Float]], _ i: Int) -> Int {
            e.indices.filter { $0 != i }.max { EmbeddingComparison.cosine(e[i], e[$0]) < EmbeddingComparison.cosine(e[i], e[$1]) }!
        }
        let agree = ref.sentences.indices.filter { nn(e0, $0) == nn(e1, $0) }.count
        XCTAssertEqual(r.retrievalAgreement, Double(agree) / Double(ref.sentences.count), accuracy: 1e-12)
        let ok = try v.runEncoder(sentences: ref.sentences, budget: Budget(minCosine: 0.5))
        XCTAssertTrue(ok.budget.ok)
        XCTAssertThrowsError(try v.runEncoder(sentences: ["one"], budget: nil))
    }

    func testExportedFolderImportsToTheSameEmbeddings() throws {
        let ckpt = try Checkpoint.open(Self.folder)
        let dir = tmp.appendingPathComponent("export").path
        try HFExporter.export(ckpt, to: dir, dtype: .f32)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + f), f)
        }
        let again = try Checkpoint.open(dir)
        XCTAssertEqual(again.config, ckpt.config)
        let ref = try reference()
        XCTAssertEqual(try EdgeModel.floatModel(graph: ModelGraph(again)).embed(tokens: ref.ids), try floatModel().embed(tokens: ref.ids))
    }

    /// A copy of the fixture folder with `edit` applied, for the bad-input cases.
    func brokenCopy(_ name: String, _ edit: (URL) throws -> Void) throws -> String {
        let dir = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.folder), to: dir)
        try edit(dir)
        return dir.path
    }

    func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&o)
        try JSONSerialization.data(withJSONObject: o).write(to: url)
    }

    func testBadEncoderInputsEndInOneClearLine() throws {
        let noPooling = try brokenCopy("no-pooling") { d in
            try FileManager.default.removeItem(at: d.appendingPathComponent("1_Pooling"))
        }
        let badNormalizer = try brokenCopy("bad-normalizer") { d in
            try editJSON(d.appendingPathComponent("tokenizer.json")) { $0["normalizer"] = ["type": "Precompiled"] }
        }
        let vocabMismatch = try brokenCopy("vocab") { d in
            try editJSON(d.appendingPathComponent("config.json")) { $0["vocab_size"] = 5000 }
        }
        let twoModes = try brokenCopy("two-modes") { d in
            try editJSON(d.appendingPathComponent("1_Pooling/config.json")) { $0["pooling_mode_cls_token"] = true }
        }
        let noTokenizer = try brokenCopy("no-tokenizer") { d in
            try FileManager.default.removeItem(at: d.appendingPathComponent("tokenizer.json"))
        }
        let cases: [(String, String)] = [
            (noPooling, "pooling config"), (badNormalizer, "normalizer"), (vocabMismatch, "word_embeddings"),
            (twoModes, "pooling modes"), (noTokenizer, "tokenizer.json"),
        ]
        for (path, needle) in cases {
            XCTAssertThrowsError(try Checkpoint.open(path), needle) { e in
                let line = "\(e)"
                XCTAssertTrue(line.contains(needle), "\(path): \(line)")
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
    }
}
