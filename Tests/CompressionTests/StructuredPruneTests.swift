import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import Foundation
import TestSupport
import XCTest

/// Structured pruning: units made irrelevant are the ones removed, the pruned model computes the
/// same logits, the config records the new sizes, and the recipes work end to end.
final class StructuredPruneTests: XCTestCase {
    // MARK: in-memory models

    /// A random model whose `irrelevantNeurons[l]` and `irrelevantGroups[l]` (KV groups) contribute
    /// nothing: their down-projection / output-projection columns are zero, and everything else
    /// they own is scaled down so the l2 ranking picks them.
    private func model(_ config: ModelConfig, irrelevantNeurons: [[Int]], irrelevantGroups: [[Int]], seed: UInt64) -> [String: (shape: [Int], values: [Float])] {
        var g = SplitMix(seed)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for (name, shape) in config.expectedTensors() {
            let n = shape.reduce(1, *)
            let isNorm = TensorName.kind(of: name) == .norm && name.hasSuffix(".weight")
            tensors[name] = (shape, (0 ..< n).map { _ in isNorm ? 1 + Float(g.nextDouble() - 0.5) * 0.2 : Float(g.nextDouble() * 2 - 1) * 0.3 })
        }
        let hd = config.headDim
        func scaleRows(_ name: String, _ rows: [Int], by s: Float) {
            guard var t = tensors[name] else { return }
            let cols = t.shape.count == 2 ? t.shape[1] : 1
            for r in rows { for c in 0 ..< cols { t.values[r * cols + c] *= s } }
            tensors[name] = t
        }
        func zeroColumns(_ name: String, _ cols: [Int]) {
            guard var t = tensors[name] else { return }
            for r in 0 ..< t.shape[0] { for c in cols { t.values[r * t.shape[1] + c] = 0 } }
            tensors[name] = t
        }
        for l in 0 ..< config.numLayers {
            let b = TensorName.block(l), s = config.sizes(layer: l)
            let neurons = irrelevantNeurons[l]
            for role in ["ffn_gate.weight", "ffn_up.weight", "ffn_up.bias"] { scaleRows(b + role, neurons, by: 0.01) }
            zeroColumns(b + "ffn_down.weight", neurons)
            let width = s.numHeads / s.numKVHeads * hd
            let qRows = irrelevantGroups[l].flatMap { Array($0 * width ..< ($0 + 1) * width) }
            let kvRows = irrelevantGroups[l].flatMap { Array($0 * hd ..< ($0 + 1) * hd) }
            for role in ["attn_q.weight", "attn_q.bias"] { scaleRows(b + role, qRows, by: 0.01) }
            for role in ["attn_k.weight", "attn_k.bias", "attn_v.weight", "attn_v.bias"] { scaleRows(b + role, kvRows, by: 0.01) }
            zeroColumns(b + "attn_output.weight", qRows)
        }
        return tensors
    }

    private func graph(_ config: ModelConfig, _ tensors: [String: (shape: [Int], values: [Float])]) throws -> ModelGraph {
        let sources = config.expectedTensors().map { name, shape in
            SourceTensor(name: name, sourceName: name, file: "memory", shape: shape, storage: "F32", storedBytes: shape.reduce(4, *)) {
                tensors[name]!.values
            }
        }
        return ModelGraph(Checkpoint(path: "memory", format: .safetensors, config: config, tokenizerJSON: nil, tensors: sources, files: []))
    }

    /// Runs `passes` (recipe JSON objects) over the graph in memory, as `Pipeline.run` does without the writer.
    private func compress(_ graph: ModelGraph, passes: String) throws -> (config: ModelConfig, tensors: [WorkTensor], records: [JSONValue]) {
        let recipe = try Recipe.parse(Data(#"{"passes": [\#(passes)]}"#.utf8), file: "r.json")
        let pipeline = Pipeline(recipe: recipe, recipeFile: "r.json")
        let plan = try pipeline.plan(for: graph)
        var prepared = try pipeline.prepare(graph, plan: plan)
        let out = try graph.tensors.enumerated().map { n, t in try Pipeline.process(t, index: n, plan: plan, prepared: &prepared) }
        return (prepared.config, out, prepared.passes.map { $0.record() })
    }

    private func logits(_ config: ModelConfig, _ tensors: [String: (shape: [Int], values: [Float])], tokens: [Int32]) throws -> [Float] {
        try EdgeModel(config: config, tensors: tensors.mapValues { .floats($0.values, shape: $0.shape) }, threads: 1).logits(tokens)
    }

    private let llama = ModelConfig(architecture: .llama, vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKVHeads: 2,
                                    headDim: 4, intermediateSize: 24, maxPositions: 32, normEps: 1e-5, ropeTheta: 10000,
                                    tiedEmbeddings: true, activation: "silu", bosTokenID: nil, eosTokenID: nil)
    private let gpt2 = ModelConfig(architecture: .gpt2, vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKVHeads: 4,
                                   headDim: 4, intermediateSize: 32, maxPositions: 32, normEps: 1e-5, ropeTheta: 0,
                                   tiedEmbeddings: false, activation: "gelu_new", bosTokenID: nil, eosTokenID: nil)
    private let tokens: [Int32] = [3, 17, 5, 39, 0, 22, 8, 8, 31, 12, 1]

    private func checkKeepsFunction(_ config: ModelConfig, neurons: [[Int]], groups: [[Int]], passes: String,
                                    expected: [ModelConfig.LayerSizes]) throws {
        let tensors = model(config, irrelevantNeurons: neurons, irrelevantGroups: groups, seed: 42)
        let before = try logits(config, tensors, tokens: tokens)
        let (pruned, out, records) = try compress(try graph(config, tensors), passes: passes)
        XCTAssertEqual(pruned.layers, expected)
        XCTAssertNoThrow(try pruned.validate(source: "pruned"))
        XCTAssertEqual(out.map(\.shape), pruned.expectedTensors().map(\.shape), "tensors have the shapes the config implies")
        var after: [String: (shape: [Int], values: [Float])] = [:]
        for t in out { after[t.name] = (t.shape, t.values) }
        let diff = zip(before, try logits(pruned, after, tokens: tokens)).map { ($0 - $1).magnitude }.max() ?? 1
        XCTAssertLessThan(diff, 1e-5, "\(config.architecture): removing irrelevant units must keep the logits")
        // Every kept row/column is an original one: the q rows of layer 0 are those of the kept groups.
        let width = config.numHeads / config.numKVHeads * config.headDim
        let keptGroups = (0 ..< config.numKVHeads).filter { !groups[0].contains($0) }
        let q = tensors["blk.0.attn_q.weight"]!
        XCTAssertEqual(after["blk.0.attn_q.weight"]!.values,
                       keptGroups.flatMap { Array(q.values[$0 * width * config.hiddenSize ..< ($0 + 1) * width * config.hiddenSize]) })
        guard case let .object(r) = records[0], case let .array(layers) = r["layers"] else { return XCTFail("no layers in record") }
        XCTAssertEqual(layers.count, config.numLayers)
        for (l, entry) in layers.enumerated() {
            guard case let .object(o) = entry else { return XCTFail("layer record") }
            XCTAssertEqual(o["removed_kv_heads"], .array(groups[l].sorted().map { .number(Double($0)) }))
        }
    }

    func testLlamaPrunedModelKeepsTheLogits() throws {
        // 25% of 24 neurons = 6; 25% of 2 KV groups rounds to 1 group = 2 query heads.
        try checkKeepsFunction(llama, neurons: [[0, 5, 6, 11, 17, 23], [1, 2, 3, 4, 20, 21]], groups: [[1], [0]],
                               passes: #"{"pass": "structured_prune", "mlp": 0.25, "heads": 0.25}"#,
                               expected: [.init(numHeads: 2, numKVHeads: 1, intermediateSize: 18),
                                          .init(numHeads: 2, numKVHeads: 1, intermediateSize: 18)])
    }

    func testGPT2PrunedModelKeepsTheLogits() throws {
        // 25% of 32 neurons = 8; 50% of 4 heads = 2 (GPT-2: a group is one head).
        try checkKeepsFunction(gpt2, neurons: [[0, 3, 4, 9, 10, 20, 30, 31], [7, 8, 9, 10, 11, 12, 13, 14]], groups: [[0, 3], [2, 1]],
                               passes: #"{"pass": "structured_prune", "mlp": 0.25, "heads": 0.5}"#,
                               expected: [.init(numHeads: 2, numKVHeads: 2, intermediateSize: 24),
                                          .init(numHeads: 2, numKVHeads: 2, intermediateSize: 24)])
    }

    func testExcludedLayerKeepsItsSizes() throws {
        let tensors = model(llama, irrelevantNeurons: [[], [0, 1, 2, 3, 4, 5]], irrelevantGroups: [[], [1]], seed: 7)
        let (pruned, out, _) = try compress(try graph(llama, tensors),
                                            passes: #"{"pass": "structured_prune", "mlp": 0.25, "heads": 0.25, "exclude_layers": [0]}"#)
        XCTAssertEqual(pruned.layers, [.init(numHeads: 4, numKVHeads: 2, intermediateSize: 24),
                                       .init(numHeads: 2, numKVHeads: 1, intermediateSize: 18)])
        for t in out where t.name.hasPrefix("blk.0.") { XCTAssertEqual(t.values, tensors[t.name]!.values, t.name) }
    }

    func testMLPOnlyLeavesAttentionAlone() throws {
        let tensors = model(llama, irrelevantNeurons: [[0, 1, 2], [3, 4, 5]], irrelevantGroups: [[], []], seed: 9)
        let (pruned, out, _) = try compress(try graph(llama, tensors), passes: #"{"pass": "structured_prune", "mlp": 0.1}"#)
        XCTAssertEqual(pruned.layers?.map(\.intermediateSize), [22, 22], "round(0.1 * 24) = 2")
        XCTAssertEqual(pruned.layers?.map(\.numKVHeads), [2, 2])
        for t in out where t.name.contains("attn_") { XCTAssertEqual(t.values, tensors[t.name]!.values, t.name) }
    }

    /// Later passes see the shrunk model: a global magnitude prune counts the remaining weights,
    /// and int8 quantizes the shrunk matrices.
    func testComposesWithLaterPasses() throws {
        let tensors = model(llama, irrelevantNeurons: [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]], irrelevantGroups: [[0], [0]], seed: 5)
        let (pruned, out, records) = try compress(try graph(llama, tensors), passes: """
            {"pass": "structured_prune", "mlp": 0.25, "heads": 0.25},
            {"pass": "magnitude_prune", "sparsity": 0.5, "scope": "global"},
            {"pass": "quantize", "bits": 8, "symmetric": true}
            """)
        let linear = pruned.expectedTensors().filter { TensorName.kind(of: $0.name) == .linear }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        guard case let .object(m) = records[1] else { return XCTFail("record") }
        XCTAssertEqual(m["weights"], .number(Double(linear)))
        XCTAssertEqual(m["achieved_sparsity"], .number(0.5))
        for t in out where TensorName.kind(of: t.name) == .linear {
            XCTAssertEqual(t.encoded?.encoding, .q8, t.name)
            XCTAssertEqual(t.encoded?.shape, t.shape, t.name)
        }
        guard case let .object(s) = records[0] else { return XCTFail("record") }
        XCTAssertEqual(s["removed_neurons"], .number(12))
        XCTAssertEqual(s["removed_heads"], .number(4))
    }

    func testRecipeErrorsNameTheField() {
        func check(_ pass: String, field: String, mentions: String, line: UInt = #line) {
            XCTAssertThrowsError(try Recipe.parse(Data(#"{"passes": [\#(pass)]}"#.utf8), file: "r.json"), line: line) { e in
                guard let r = e as? RecipeError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(r.field, field, "\(r)", line: line)
                XCTAssertTrue(r.description.contains(mentions), "\(r)", line: line)
            }
        }
        check(#"{"pass": "structured_prune", "mlp": 1}"#, field: "passes[0].mlp", mentions: "value < 1")
        check(#"{"pass": "structured_prune", "heads": -0.1}"#, field: "passes[0].heads", mentions: "-0.1")
        check(#"{"pass": "structured_prune"}"#, field: "passes[0].mlp", mentions: "both 0")
        check(#"{"pass": "structured_prune", "mlp": 0.2, "ranking": "l1"}"#, field: "passes[0].ranking", mentions: "activation")
        check(#"{"pass": "structured_prune", "mlp": 0.2, "neurons": 3}"#, field: "passes[0].neurons", mentions: "not a known field")
        check(#"{"pass": "quantize", "bits": 8}, {"pass": "structured_prune", "mlp": 0.2}"#, field: "passes[1].pass", mentions: "cannot come after")
    }

    func testActivationRankingRemovesQuietUnits() throws {
        // Random weights (the l2 ranking sees nothing special); the calibration inputs of some
        // neurons (ffn_down columns) and KV groups (attn_output columns) are almost silent.
        let tensors = model(llama, irrelevantNeurons: [[], []], irrelevantGroups: [[], []], seed: 3)
        let g = try graph(llama, tensors)
        let quietNeurons = [[2, 7, 8, 13, 19, 22], [0, 1, 5, 9, 10, 23]], quietGroups = [[0], [1]]
        let f = llama.intermediateSize, width = llama.numHeads / llama.numKVHeads * llama.headDim, hidden = llama.numHeads * llama.headDim
        var wanted: [String: CalibrationNeeds] = [:]
        for l in 0 ..< 2 { for role in ["ffn_down", "attn_output"] { wanted["blk.\(l).\(role).weight"] = .columnNorms } }
        let stats = CalibrationStats(wanted: wanted)
        for l in 0 ..< 2 {
            var x = [Float](repeating: 0, count: 4 * f), a = [Float](repeating: 0, count: 4 * hidden)
            for t in 0 ..< 4 {
                for i in 0 ..< f { x[t * f + i] = quietNeurons[l].contains(i) ? 0.001 : 1 + Float((i * 7 + t) % 5) }
                for c in 0 ..< hidden { a[t * hidden + c] = quietGroups[l].contains(c / width) ? 0.001 : 1 + Float((c * 3 + t) % 4) }
            }
            x.withUnsafeBufferPointer { stats.observe(weight: "blk.\(l).ffn_down.weight", x: $0.baseAddress!, rows: 4, cols: f) }
            a.withUnsafeBufferPointer { stats.observe(weight: "blk.\(l).attn_output.weight", x: $0.baseAddress!, rows: 4, cols: hidden) }
        }
        stats.endForward(tokens: 4)
        let recipe = try Recipe.parse(Data(#"{"passes": [{"pass": "structured_prune", "mlp": 0.25, "heads": 0.25, "ranking": "activation"}]}"#.utf8), file: "r.json")
        XCTAssertTrue(recipe.passes[0].prepareCalibrationNeeds.contains(.columnNorms))
        let pipeline = Pipeline(recipe: recipe, recipeFile: "r.json")
        let plan = try pipeline.plan(for: g)
        XCTAssertThrowsError(try pipeline.prepare(g, plan: plan)) { XCTAssertTrue("\($0)".contains("--data"), "\($0)") }
        var prepared = try pipeline.prepare(g, plan: plan, extras: Pipeline.Extras(calibration: stats))
        let out = try g.tensors.enumerated().map { n, t in try Pipeline.process(t, index: n, plan: plan, prepared: &prepared) }
        guard case let .object(r) = prepared.passes[0].record(), case let .array(layers) = r["layers"] else { return XCTFail("no layers in record") }
        for l in 0 ..< 2 {
            guard case let .object(o) = layers[l] else { return XCTFail("layer record") }
            XCTAssertEqual(o["removed_kv_heads"], .array(quietGroups[l].map { .number(Double($0)) }))
            // ffn_down keeps exactly the columns of the active neurons, in order.
            let down = tensors["blk.\(l).ffn_down.weight"]!, kept = (0 ..< f).filter { !quietNeurons[l].contains($0) }
            let after = try XCTUnwrap(out.first { $0.name == "blk.\(l).ffn_down.weight" })
            XCTAssertEqual(after.shape, [hidden, kept.count])
            XCTAssertEqual(after.values, (0 ..< hidden).flatMap { row in kept.map { down.values[row * f + $0] } })
        }
    }

    func testPartialSelectionIsRefused() throws {
        let tensors = model(llama, irrelevantNeurons: [[], []], irrelevantGroups: [[], []], seed: 1)
        XCTAssertThrowsError(try compress(try graph(llama, tensors),
                                          passes: #"{"pass": "structured_prune", "mlp": 0.25, "exclude": ["*ffn_down*"]}"#)) { e in
            XCTAssertEqual((e as? RecipeError)?.field, "passes[0]", "\(e)")
            XCTAssertTrue("\(e)".contains("blk.0.ffn_down.weight"), "\(e)")
        }
    }

    // MARK: end to end through the binaries

    func testRecipesEndToEnd() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("structured-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let text = root.appendingPathComponent("Fixtures/text/us-declaration.txt").path
        for fixture in ["tiny-llama", "tiny-gpt2"] {
            var sizes: [String: Int] = [:]
            for recipe in ["int8", "int8-structured25", "int8-2of4"] {
                let out = tmp.appendingPathComponent("\(fixture)-\(recipe).edge").path
                // int8-structured25 ranks by calibration activations: --data (a text other than the evaluation's).
                let data = recipe == "int8-structured25" ? ["--data", root.appendingPathComponent("Fixtures/text/us-constitution.txt").path] : []
                let r = try run("compress", ["--recipe", root.appendingPathComponent("Recipes/\(recipe).json").path] + data +
                                            [root.appendingPathComponent("Fixtures/\(fixture)").path, out])
                XCTAssertEqual(r.code, 0, "\(fixture) \(recipe): \(r.stderr)")
                sizes[recipe] = (try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
                let ppl = try run("edge-run", ["perplexity", out, "--text", text, "--ctx", "64", "--chunks", "2", "--threads", "2"])
                XCTAssertEqual(ppl.code, 0, "\(fixture) \(recipe): \(ppl.stderr)")
                let edge = try Checkpoint.open(out)
                if recipe == "int8-structured25" {
                    let layers = try XCTUnwrap(edge.config.layers, fixture)
                    XCTAssertTrue(layers.allSatisfy { $0.intermediateSize == edge.config.intermediateSize * 3 / 4 }, "\(layers)")
                    XCTAssertTrue(layers.allSatisfy { $0.numHeads < edge.config.numHeads }, "\(layers)")
                }
                if recipe == "int8-2of4" {
                    // Every block's linear weights are 2:4 but the first block's, which stays dense.
                    for t in edge.tensors where t.name.hasPrefix("blk.") && TensorName.kind(of: t.name) == .linear {
                        let v = try t.floats()
                        let pattern = NMPattern.detect(values: v, rows: t.shape[0], cols: t.shape[1]).map { [$0.n, $0.m] }
                        if t.name.hasPrefix("blk.0.") {
                            XCTAssertLessThan(v.filter { $0 == 0 }.count * 10, v.count, "\(t.name) is dense")
                        } else {
                            XCTAssertEqual(pattern, [2, 4], t.name)
                        }
                    }
                }
            }
            let int8 = Double(sizes["int8"]!), structured = Double(sizes["int8-structured25"]!)
            // tiny-llama loses 17.7%; tiny-gpt2 14.7% (its position embedding and biases do not shrink).
            XCTAssertLessThanOrEqual(structured, int8 * (fixture == "tiny-llama" ? 0.85 : 0.87), "\(fixture): structured25 \(structured) bytes vs int8 \(int8)")
            print("\(fixture): int8 \(Int(int8)) bytes, int8-structured25 \(Int(structured)) bytes (\(String(format: "%.1f", 100 * (1 - structured / int8)))% smaller), int8-2of4 \(sizes["int8-2of4"]!) bytes")
        }
    }

    private var root: URL { packageRoot() }

    private func run(_ tool: String, _ args: [String]) throws -> ToolResult { try runTool(tool, args) }
}
