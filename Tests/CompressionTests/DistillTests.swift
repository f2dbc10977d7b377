import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import TestSupport
import Training
import XCTest

/// The distill pass inside the pipeline, on the trained fixtures (trained on the Constitution;
/// the Declaration is the text nobody trained on).
final class DistillTests: TempDirTestCase {
    func fixture(_ name: String) -> String { fixturePath(name) }

    func recipe(_ passes: String) throws -> (Recipe, String) {
        let path = tmp.appendingPathComponent("r\(UUID().uuidString.prefix(6)).json").path
        try Data("{\"passes\": [\(passes)]}".utf8).write(to: URL(fileURLWithPath: path))
        return (try Recipe.load(path: path), path)
    }

    static let prune = #"{"pass": "magnitude_prune", "sparsity": 0.5, "kinds": ["linear"], "include": ["blk.*"]}"#
    static let int8 = #"{"pass": "quantize", "bits": 8, "symmetric": true}"#
    static let distill = #"{"pass": "distill", "steps": 30, "batch": 4, "length": 64, "lr": 3e-3, "alpha": 0.5, "eval_every": 0}"#
    static let pack = #"{"pass": "pack", "format": "auto"}"#

    func run(_ passes: String, model: String, out: String, checkpointDir: String? = nil) throws -> CompressSummary {
        let (r, path) = try recipe(passes)
        return try Pipeline(recipe: r, recipeFile: path).run(input: fixture(model), output: tmp.appendingPathComponent(out).path,
                                                            calibrationText: fixture("text/us-constitution.txt"),
                                                            checkpointDir: checkpointDir)
    }

    /// Distilled magnitude-pruned int8 is closer to the float model (KL, perplexity) on unseen text
    /// than the pruned int8 model alone; the output keeps the sparsity and the int8 encodings.
    func testDistillRecoversWhatPruningCost() throws {
        let text = try TextFile.load(path: fixture("text/us-declaration.txt"), purpose: "evaluation text")
        for model in ["tiny-llama", "tiny-gpt2"] {
            _ = try run([Self.prune, Self.int8, Self.pack].joined(separator: ","), model: model, out: "plain.edge")
            let s = try run([Self.prune, Self.int8, Self.distill, Self.pack].joined(separator: ","), model: model, out: "distilled.edge")
            let plain = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("plain.edge").path, threads: 2)
                .run(text: text, ctx: 64, budget: nil)
            let distilled = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("distilled.edge").path, threads: 2)
                .run(text: text, ctx: 64, budget: nil)
            XCTAssertLessThan(distilled.kl, plain.kl * 0.8, "\(model): KL \(plain.kl) -> \(distilled.kl)")
            // Closer to the float model's perplexity (pruning may cost little perplexity on a fixture,
            // as it does on the GPT-2 one, but it always moves it).
            XCTAssertLessThan(abs(distilled.after.ppl - distilled.before.ppl), abs(plain.after.ppl - plain.before.ppl),
                              "\(model): ppl float \(plain.before.ppl), pruned \(plain.after.ppl), distilled \(distilled.after.ppl)")
            let record = try XCTUnwrap(s.records.first { $0["pass"]?.stringValue == "distill" })
            XCTAssertLessThan(try XCTUnwrap(record["held_out_ppl_after"]?.doubleValue), try XCTUnwrap(record["held_out_ppl_before"]?.doubleValue))
            // Wall time and throughput are reported, never recorded in the file.
            XCTAssertNil(record["seconds"])
            XCTAssertNil(record["train_tokens_per_second"])
            let timing = try XCTUnwrap(s.timings.first { $0["pass"]?.stringValue == "distill" })
            XCTAssertEqual(timing["index"]?.doubleValue, 2)
            XCTAssertGreaterThan(try XCTUnwrap(timing["seconds"]?.doubleValue), 0)
            XCTAssertGreaterThan(try XCTUnwrap(timing["train_tokens_per_second"]?.doubleValue), 0)

            let file = try EdgeFile(path: tmp.appendingPathComponent("distilled.edge").path)
            for e in file.tensors where e.name.hasPrefix("blk.") && e.shape.count == 2 {
                let v = try file.floats(of: e)
                let zeros = v.filter { $0 == 0 }.count
                XCTAssertGreaterThanOrEqual(Double(zeros) / Double(v.count), 0.5, "\(model) \(e.name) lost sparsity")
                XCTAssertNotEqual(e.encoding, .f32, "\(model) \(e.name) is no longer int8")
            }
        }
    }

    /// The block-wise stage alone (`steps: 0`): every block's recorded error falls, the model gets
    /// closer to the float one on unseen text, pruned weights stay zero and int8 stays int8.
    func testBlockwiseStageAloneRecovers() throws {
        let text = try TextFile.load(path: fixture("text/us-declaration.txt"), purpose: "evaluation text")
        for model in ["tiny-llama", "tiny-gpt2"] {
            let blockwise = #"{"pass": "distill", "steps": 0, "blockwise_epochs": 4, "blockwise_tokens": 2048, "blockwise_lr": 1e-3, "batch": 4, "length": 64}"#
            _ = try run([Self.prune, Self.int8, Self.pack].joined(separator: ","), model: model, out: "plain.edge")
            let s = try run([Self.prune, Self.int8, blockwise, Self.pack].joined(separator: ","), model: model, out: "blockwise.edge")
            let plain = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("plain.edge").path, threads: 2)
                .run(text: text, ctx: 64, budget: nil)
            let rebuilt = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("blockwise.edge").path, threads: 2)
                .run(text: text, ctx: 64, budget: nil)
            XCTAssertLessThan(rebuilt.kl, plain.kl, "\(model): KL \(plain.kl) -> \(rebuilt.kl)")
            let record = try XCTUnwrap(s.records.first { $0["pass"]?.stringValue == "distill" })
            let before = try XCTUnwrap(record["blockwise_error_before"]?.arrayValue).compactMap(\.doubleValue)
            let after = try XCTUnwrap(record["blockwise_error_after"]?.arrayValue).compactMap(\.doubleValue)
            XCTAssertEqual(before.count, after.count)
            XCTAssertGreaterThan(before.count, 0)
            for (l, (b, a)) in zip(before, after).enumerated() { XCTAssertLessThan(a, b, "\(model) block \(l)") }
            XCTAssertNil(record["held_out_ppl_after"], "steps 0: no end-to-end training")
            let a = try EdgeFile(path: tmp.appendingPathComponent("blockwise.edge").path)
            let b = try EdgeFile(path: tmp.appendingPathComponent("plain.edge").path)
            for e in b.tensors where e.name.hasPrefix("blk.") && e.shape.count == 2 {
                let pv = try b.floats(of: e), dv = try a.floats(of: a.tensors.first { $0.name == e.name }!)
                for i in pv.indices where pv[i] == 0 { XCTAssertEqual(dv[i], 0, "\(model) \(e.name)[\(i)] was pruned and moved") }
                XCTAssertNotEqual(e.encoding, .f32, "\(model) \(e.name) is no longer int8")
            }
        }
        XCTAssertThrowsError(try recipe(#"{"pass": "distill", "steps": 0}"#)) { XCTAssertTrue("\($0)".contains("passes[0].steps"), "\($0)") }
        XCTAssertThrowsError(try recipe(#"{"pass": "distill", "blockwise_target": "teacher"}"#)) {
            XCTAssertTrue("\($0)".contains("passes[0].blockwise_target"), "\($0)")
        }
    }

    /// GPTQ on q3s grids, then the block-wise stage: each block's encodings are fitted once, on the
    /// block's own inputs, before it trains, and stay fixed while it trains (its weights round on
    /// them). Every block's error falls, the file is q3s throughout and closer to the float model
    /// on unseen text than GPTQ alone; the quantize pass records the tensors so fitted. Training a
    /// tensor outside the blocks that such a pass encodes is refused, naming it.
    func testBlockwiseStageTrainsThroughGPTQ() throws {
        let text = try TextFile.load(path: fixture("text/us-declaration.txt"), purpose: "evaluation text")
        let gptq = #"{"pass": "quantize", "bits": 3, "group_size": 32, "symmetric": false, "sub_bits": 6, "method": "gptq", "kinds": ["linear"], "include": ["blk.*"]}"#
        let blockwise = #"{"pass": "distill", "steps": 0, "blockwise_epochs": 4, "blockwise_tokens": 2048, "blockwise_lr": 1e-3, "batch": 4, "length": 64, "include": ["blk.*"]}"#
        let model = "tiny-llama"
        _ = try run([gptq, Self.pack].joined(separator: ","), model: model, out: "gptq.edge")
        let s = try run([gptq, blockwise, Self.pack].joined(separator: ","), model: model, out: "trained.edge")
        let plain = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("gptq.edge").path, threads: 2)
            .run(text: text, ctx: 64, budget: nil)
        let trained = try Verifier(input: fixture(model), output: tmp.appendingPathComponent("trained.edge").path, threads: 2)
            .run(text: text, ctx: 64, budget: nil)
        XCTAssertLessThan(trained.kl, plain.kl, "KL \(plain.kl) -> \(trained.kl)")
        let record = try XCTUnwrap(s.records.first { $0["pass"]?.stringValue == "distill" })
        let before = try XCTUnwrap(record["blockwise_error_before"]?.arrayValue).compactMap(\.doubleValue)
        let after = try XCTUnwrap(record["blockwise_error_after"]?.arrayValue).compactMap(\.doubleValue)
        XCTAssertGreaterThan(before.count, 0)
        for (l, (b, a)) in zip(before, after).enumerated() { XCTAssertLessThan(a, b, "block \(l)") }
        let file = try EdgeFile(path: tmp.appendingPathComponent("trained.edge").path)
        let matrices = file.tensors.filter { $0.name.hasPrefix("blk.") && $0.shape.count == 2 }
        XCTAssertGreaterThan(matrices.count, 0)
        for e in matrices { XCTAssertEqual(e.encoding, .q3s, e.name) }
        let quantize = try XCTUnwrap(s.records.first { $0["pass"]?.stringValue == "quantize" })
        XCTAssertEqual(quantize["fitted_before_training"]?.doubleValue, Double(matrices.count))
        XCTAssertEqual(quantize["round_to_nearest"], .array([]), "every matrix was fitted by GPTQ")
        // The fitted grids belong to one run: the same pipeline run again writes the same bytes.
        let (r, path) = try recipe([gptq, blockwise, Self.pack].joined(separator: ","))
        let pipeline = Pipeline(recipe: r, recipeFile: path)
        for out in ["again1.edge", "again2.edge"] {
            _ = try pipeline.run(input: fixture(model), output: tmp.appendingPathComponent(out).path,
                                 calibrationText: fixture("text/us-constitution.txt"))
        }
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("again1.edge")),
                       try Data(contentsOf: tmp.appendingPathComponent("again2.edge")))
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("again1.edge")),
                       try Data(contentsOf: tmp.appendingPathComponent("trained.edge")))
        // Training the embedding that a GPTQ pass encodes: it is in no block, so nothing fits it.
        let gptqAll = #"{"pass": "quantize", "bits": 8, "method": "gptq", "kinds": ["linear", "embedding"]}"#
        let trainsEmbedding = #"{"pass": "distill", "steps": 0, "blockwise_epochs": 1, "blockwise_tokens": 512, "batch": 4, "length": 64, "kinds": ["linear", "embedding"]}"#
        XCTAssertThrowsError(try run([gptqAll, trainsEmbedding].joined(separator: ","), model: model, out: "refused.edge")) {
            XCTAssertTrue("\($0)".contains("token_embd.weight") && "\($0)".contains("in no block"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("refused.edge").path))
    }

    /// `"matmul": "bf16"`: both stages train with bfloat16 products, the record says so, the result
    /// still recovers (lower KL than pruning alone) and differs from the f32 run's; a bad value is refused.
    func testBF16MatmulDistillation() throws {
        let text = try TextFile.load(path: fixture("text/us-declaration.txt"), purpose: "evaluation text")
        let plainRun = #"{"pass": "distill", "steps": 4, "blockwise_epochs": 1, "blockwise_tokens": 1024, "blockwise_lr": 1e-3, "batch": 4, "length": 64, "lr": 1e-3, "eval_every": 0}"#
        let bf16Run = plainRun.replacingOccurrences(of: #""eval_every": 0"#, with: #""eval_every": 0, "matmul": "bf16""#)
        _ = try run([Self.prune, Self.int8, Self.pack].joined(separator: ","), model: "tiny-llama", out: "pruned.edge")
        let f = try run([Self.prune, Self.int8, plainRun, Self.pack].joined(separator: ","), model: "tiny-llama", out: "f32.edge")
        let b = try run([Self.prune, Self.int8, bf16Run, Self.pack].joined(separator: ","), model: "tiny-llama", out: "bf16.edge")
        XCTAssertNil(try XCTUnwrap(f.records.first { $0["pass"]?.stringValue == "distill" })["matmul"])
        XCTAssertEqual(try XCTUnwrap(b.records.first { $0["pass"]?.stringValue == "distill" })["matmul"]?.stringValue, "bf16")
        var kl: [String: Double] = [:]
        for name in ["pruned", "f32", "bf16"] {
            kl[name] = try Verifier(input: fixture("tiny-llama"), output: tmp.appendingPathComponent("\(name).edge").path, threads: 2)
                .run(text: text, ctx: 64, budget: nil).kl
        }
        XCTAssertLessThan(kl["bf16"]!, kl["pruned"]!, "\(kl)")
        XCTAssertNotEqual(kl["bf16"]!, kl["f32"]!, "the bf16 products changed nothing")
        XCTAssertThrowsError(try recipe(#"{"pass": "distill", "matmul": "f16"}"#)) {
            XCTAssertTrue("\($0)".contains("passes[0].matmul"), "\($0)")
        }
    }

    /// Pruned weights stay zero: the pruned positions of the plain and the distilled file agree.
    func testMasksAreKept() throws {
        _ = try run([Self.prune, Self.distill].joined(separator: ","), model: "tiny-llama", out: "a.edge")
        _ = try run(Self.prune, model: "tiny-llama", out: "b.edge")
        let a = try EdgeFile(path: tmp.appendingPathComponent("a.edge").path)
        let b = try EdgeFile(path: tmp.appendingPathComponent("b.edge").path)
        var changed = 0
        for e in b.tensors where e.name.hasPrefix("blk.") && e.shape.count == 2 {
            let pv = try b.floats(of: e), dv = try a.floats(of: a.tensors.first { $0.name == e.name }!)
            for i in pv.indices where pv[i] == 0 { XCTAssertEqual(dv[i], 0, "\(e.name)[\(i)] was pruned and moved") }
            if pv != dv { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 0, "distillation changed nothing")
        func embedding(_ f: EdgeFile) throws -> [Float] { try f.floats(of: f.tensors.first { $0.name == "token_embd.weight" }!) }
        XCTAssertEqual(try embedding(a), try embedding(b), "the embedding is frozen by default")
    }

    func testOrderAndCalibrationRules() throws {
        let gptq = #"{"pass": "quantize", "bits": 4, "group_size": 32, "method": "gptq"}"#
        for (passes, needle) in [([Self.distill, Self.prune], "cannot come after"),
                                 ([Self.pack, Self.distill], "cannot come after"),
                                 ([Self.distill, Self.distill], "distills a second time"),
                                 ([gptq, Self.distill], "GPTQ")] {
            XCTAssertThrowsError(try recipe(passes.joined(separator: ","))) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        XCTAssertThrowsError(try recipe(#"{"pass": "distill", "lr": 2}"#)) { XCTAssertTrue("\($0)".contains("passes[0].lr"), "\($0)") }
    }

    /// Same input + same recipe = byte-identical output, distillation included.
    func testTwoRunsWriteTheSameBytes() throws {
        let short = #"{"pass": "distill", "steps": 4, "batch": 2, "length": 32, "eval_every": 0}"#
        let passes = [Self.prune, Self.int8, short, Self.pack].joined(separator: ",")
        _ = try run(passes, model: "tiny-gpt2", out: "x.edge")
        _ = try run(passes, model: "tiny-gpt2", out: "y.edge")
        let x = try Data(contentsOf: tmp.appendingPathComponent("x.edge")), y = try Data(contentsOf: tmp.appendingPathComponent("y.edge"))
        XCTAssertEqual(x, y)
    }

    /// With a checkpoint folder, a finished run leaves its checkpoint; running again resumes at
    /// the end and writes the same tensors.
    func testCheckpointDirResumesToTheSameFile() throws {
        let dir = tmp.appendingPathComponent("ckpt").path
        let passes = [Self.prune, Self.int8, Self.distill].joined(separator: ",")
        _ = try run(passes, model: "tiny-llama", out: "one.edge", checkpointDir: dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/student.ckpt"))
        let again = try run(passes, model: "tiny-llama", out: "two.edge", checkpointDir: dir)
        let record = try XCTUnwrap(again.records.first { $0["pass"]?.stringValue == "distill" })
        XCTAssertEqual(record["resumed_from_step"]?.doubleValue, 30)
        let one = try EdgeFile(path: tmp.appendingPathComponent("one.edge").path)
        let two = try EdgeFile(path: tmp.appendingPathComponent("two.edge").path)
        XCTAssertEqual(one.tensors.count, two.tensors.count)
        for (x, y) in zip(one.tensors, two.tensors) { XCTAssertEqual(try one.floats(of: x), try two.floats(of: y), x.name) }
    }

    /// After layer-by-layer pruning (SparseGPT), the student takes the pruned model the pipeline
    /// holds instead of copying it; the file is the same, byte for byte, as when it copies.
    func testTakingThePrunedModelWritesTheSameFile() throws {
        let sparsegpt = #"{"pass": "sparsegpt_prune", "sparsity": 0.5, "kinds": ["linear"], "include": ["blk.*"]}"#
        let short = #"{"pass": "distill", "steps": 3, "batch": 2, "length": 32, "eval_every": 0, "kinds": ["linear", "norm", "embedding"]}"#
        let (r, path) = try recipe([sparsegpt, Self.int8, short, Self.pack].joined(separator: ","))
        var outputs: [Data] = []
        var records: [JSONValue] = []
        for offer in [true, false] {
            var pipeline = Pipeline(recipe: r, recipeFile: path)
            pipeline.offersLatentModel = offer
            let out = tmp.appendingPathComponent("o\(offer).edge").path
            let s = try pipeline.run(input: fixture("tiny-llama"), output: out, calibrationText: fixture("text/us-constitution.txt"))
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
            records.append(try XCTUnwrap(s.records.first { $0["pass"]?.stringValue == "distill" }))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(records[0], records[1])
        XCTAssertGreaterThan(try XCTUnwrap(records[0]["tensors"]?.doubleValue), 0)
    }

    /// The distill pass moves the values it is offered into the student and gives them back
    /// trained (frozen tensors unchanged), keeping no second copy of its own.
    func testDistillTakesAndGivesBackTheHeldModel() throws {
        let graph = ModelGraph(try Checkpoint.open(fixture("tiny-llama")))
        let store = LatentModel()
        var before: [String: [Float]] = [:]
        for t in graph.tensors {
            before[t.name] = try t.floats()
            store.give(t.name, before[t.name]!)
        }
        var context = PassContext(config: graph.config, index: 0, recipeFile: "test")
        context.calibrationText = try CalibrationText.load(path: fixture("text/us-constitution.txt"))
        context.input = graph
        context.latent = store
        var o = Training.TrainOptions()
        o.steps = 2
        o.batch = 2
        o.length = 32
        o.evalEvery = 0
        var d = Distill(options: o, selector: TensorSelector(kinds: [.linear]))
        try d.prepare(graph: graph, context: context)
        XCTAssertTrue(d.trained.isEmpty, "trained values went back to the held model, not into a copy")
        var changed = 0
        for t in graph.tensors {
            let after = try store.values(t.name)
            if d.trainedInStore.contains(t.name) {
                if after != before[t.name] { changed += 1 }
            } else {
                XCTAssertEqual(after, before[t.name], "\(t.name) is frozen")
            }
        }
        XCTAssertGreaterThan(changed, 0)
        XCTAssertEqual(d.trainedInStore.count, graph.tensors.filter { TensorName.kind(of: $0.name) == .linear }.count)
        XCTAssertNil(store.take("no.such.tensor"))
        _ = store.take(graph.tensors[0].name)
        XCTAssertThrowsError(try store.values(graph.tensors[0].name)) {
            XCTAssertTrue("\($0)".contains(graph.tensors[0].name), "\($0)")
        }
    }
}
