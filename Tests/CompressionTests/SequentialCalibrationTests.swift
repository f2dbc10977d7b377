import Checkpoint
@testable import Compression
import EdgeFormat
import EdgeRuntime
import TestSupport
import XCTest

/// Records the column norms of its inputs that the pipeline gives it, per tensor (in its record).
struct ToyRecordNorms: Pass {
    static let id = "toy_record_norms"
    static let stage = PassStage.quantize
    let selector: TensorSelector
    private var seen: [String: [Float]] = [:]
    init(fields f: inout RecipeFields) throws { selector = try f.selector(defaultKinds: [.linear, .output]) }
    var calibrationNeeds: CalibrationNeeds { .columnNorms }
    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        seen[t.name] = context.calibration?.columnNorms(for: t.name)
    }
    func record() -> JSONValue {
        .object(["pass": .string(Self.id), "norms": .object(seen.mapValues { .array($0.map { .number(Double($0)) }) })])
    }
}

/// Reads every selected tensor in `prepare` (as a global threshold or training does) and records the
/// fraction of zeros it saw there.
struct ToyReadInPrepare: Pass {
    static let id = "toy_read_in_prepare"
    static let stage = PassStage.prune
    let selector: TensorSelector
    private var zeros: [String: Double] = [:]
    init(fields f: inout RecipeFields) throws { selector = try f.selector(defaultKinds: [.linear]) }
    var readsWeightsInPrepare: Bool { true }
    mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        for t in graph.tensors where selector.selects(t.name, numLayers: graph.config.numLayers) {
            let v = try t.floats()
            zeros[t.name] = Double(v.filter { $0 == 0 }.count) / Double(v.count)
        }
    }
    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {}
    func record() -> JSONValue { .object(["pass": .string(Self.id), "zeros": .object(zeros.mapValues { .number($0) })]) }
}

/// `ToyRecordNorms` that also scales each tensor it calibrates by `factor` (a calibrated pass that
/// changes the weights, as GPTQ does).
struct ToyRecordNormsAndScale: Pass {
    static let id = "toy_record_norms_scale"
    static let stage = PassStage.quantize
    let selector: TensorSelector
    let factor: Float
    private var seen: [String: [Float]] = [:]
    init(fields f: inout RecipeFields) throws {
        selector = try f.selector(defaultKinds: [.linear])
        factor = Float(try f.double("factor", default: 0.5, range: -100 ... 100))
    }
    var calibrationNeeds: CalibrationNeeds { .columnNorms }
    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        seen[t.name] = context.calibration?.columnNorms(for: t.name)
        let f = factor
        t.values = t.values.map { $0 * f }
    }
    func record() -> JSONValue {
        .object(["pass": .string(Self.id), "norms": .object(seen.mapValues { .array($0.map { .number(Double($0)) }) })])
    }
}

final class SequentialCalibrationTests: XCTestCase {
    static let toys: [any Pass.Type] = [ToyScale.self, ToyRecordNorms.self, ToyReadInPrepare.self, ToyRecordNormsAndScale.self]
    var tmp: URL!
    let text = packageRoot().appendingPathComponent("Fixtures/text/us-declaration.txt").path
    let model = packageRoot().appendingPathComponent("Fixtures/tiny-llama").path

    override func setUpWithError() throws { tmp = try makeTemporaryFolder(prefix: "sequential") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func run(_ passes: String, trueSequential: Bool = false, spread: Bool = false) throws -> (CompressSummary, EdgeFile) {
        let calibration = #"{"tokens": 192, "ctx": 64, "true_sequential": \#(trueSequential), "spread": \#(spread)}"#
        let recipe = try Recipe.parse(Data(#"{"calibration": \#(calibration), "passes": [\#(passes)]}"#.utf8),
                                      file: "toy.json", passes: Self.toys)
        let out = tmp.appendingPathComponent("out-\(UUID().uuidString.prefix(6)).edge").path
        let summary = try Pipeline(recipe: recipe, recipeFile: "toy.json").run(input: model, output: out, calibrationText: text)
        return (summary, try EdgeFile(path: out))
    }

    func norms(_ record: JSONValue) throws -> [String: [Float]] {
        guard case let .object(o) = record, case let .object(n)? = o["norms"] else { throw XCTSkip("no norms") }
        return n.mapValues { v in
            guard case let .array(a) = v else { return [] }
            return a.map { Float($0.doubleValue ?? .nan) }
        }
    }

    /// Equal to 1e-4 relative (1e-4 absolute below 1).
    func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }
    }

    /// Layer by layer, the whole model: embeddings, each block, the final norm and the head give
    /// the logits of `EdgeModel.forward`.
    func testLayerwiseForwardMatchesTheWholeForward() throws {
        let graph = ModelGraph(try Checkpoint.open(model))
        let whole = try EdgeModel.floatModel(graph: graph)
        let tokens: [Int32] = [1, 17, 300, 42, 5, 99, 7, 250, 3]
        let want = try whole.logits(tokens)
        var tensors: [String: WeightSource] = [:]
        for t in graph.tensors { tensors[t.name] = .floats(try t.floats(), shape: t.shape) }
        let layerwise = try LayerwiseForward(config: graph.config)
        var x = try layerwise.embed(tokens, tokenEmbedding: tensors["token_embd.weight"]!, positionEmbedding: nil)
        for l in 0 ..< graph.config.numLayers { try layerwise.block(l, tensors: tensors, x: &x) }
        let normed = try layerwise.finalNorm(x, tensors: tensors)
        let head = try Linear(name: "head", source: tensors[graph.config.tiedEmbeddings ? "token_embd.weight" : "output.weight"]!)
        let got = head.matmul(normed, tokens: tokens.count)
        XCTAssertEqual(got.count, want.count)
        for i in want.indices { XCTAssertEqual(got[i], want[i], accuracy: 1e-4 * max(1, abs(want[i])), "logit \(i)") }
        XCTAssertThrowsError(try layerwise.block(0, tensors: ["blk.0.attn_q.weight": tensors["blk.0.attn_q.weight"]!], x: &x)) {
            XCTAssertTrue("\($0)".contains("blk.0.attn_norm.weight"), "\($0)")
        }
    }

    /// The statistics of layer l come from the inputs the *compressed* layers before it produce:
    /// with layer 0's matrices scaled by 0.5, layer 1's input norms are those of a float model whose
    /// layer 0 is scaled, not the input model's.
    func testStatisticsOfLaterLayersSeeTheCompressedEarlierLayers() throws {
        let (summary, _) = try run(#"{"pass": "toy_scale", "factor": 0.5, "include": ["blk.0.*"]}, {"pass": "toy_record_norms", "kinds": ["linear", "embedding"]}"#)
        let seen = try norms(summary.records[1])
        let graph = ModelGraph(try Checkpoint.open(model))
        var scaled = graph
        scaled.tensors = graph.tensors.map { t in
            guard t.name.hasPrefix("blk.0."), TensorName.kind(of: t.name) == .linear else { return t }
            return t.with { try t.floats().map { $0 * 0.5 } }
        }
        let wanted = Dictionary(uniqueKeysWithValues: seen.keys.map { ($0, CalibrationNeeds.columnNorms) })
        let calib = try CalibrationText.load(path: text)
        let float = try Calibration.collect(graph: graph, text: calib, wanted: wanted, maxTokens: 192, ctx: 64)
        let reference = try Calibration.collect(graph: scaled, text: calib, wanted: wanted, maxTokens: 192, ctx: 64)
        XCTAssertEqual(Set(seen.keys).count, 2 * 7 + 1, "every linear weight of both layers and the (tied) head")
        for (name, got) in seen {
            // Passes before the calibrated one (the scaling) apply to the layer whose statistics are
            // taken too, as to every layer before it: the float model with layer 0 scaled is the reference.
            XCTAssertTrue(close(got, try XCTUnwrap(reference.columnNorms(for: name), name)), "\(name): the compressed layer 0's outputs")
        }
        XCTAssertTrue(close(try XCTUnwrap(seen["blk.0.attn_q.weight"]), try XCTUnwrap(float.columnNorms(for: "blk.0.attn_q.weight"))),
                      "layer 0's first input is the embeddings'")
        for name in ["blk.1.attn_q.weight", "blk.1.ffn_down.weight", "blk.1.ffn_gate.weight"] {
            XCTAssertFalse(close(try XCTUnwrap(seen[name]), try XCTUnwrap(float.columnNorms(for: name))), "\(name): not the input model's statistics")
        }
    }

    /// `calibration.spread`: whole windows spread evenly over the text instead of its first tokens.
    func testSpreadWindowsCoverTheWholeText() {
        let ids = (0 ..< 1000).map { Int32($0) }
        XCTAssertEqual(Calibration.windows(ids, window: 64, maxTokens: 192, spread: false).map { $0.first! }, [0, 64, 128])
        let spread = Calibration.windows(ids, window: 64, maxTokens: 192, spread: true)
        // 15 whole windows of 64 in 1000 tokens: three of them, a third of the text apart.
        XCTAssertEqual(spread.map { $0.first! }, [0, 5 * 64, 10 * 64])
        XCTAssertTrue(spread.allSatisfy { $0 == Array(ids[Int($0[0]) ..< Int($0[0]) + 64]) })
        // A text no longer than the budget is read whole either way, its short last window included.
        let whole = Calibration.windows(ids, window: 64, maxTokens: 1000, spread: true)
        XCTAssertEqual(whole, Calibration.windows(ids, window: 64, maxTokens: 1000, spread: false))
        XCTAssertEqual(whole.flatMap { $0 }, ids)
        // A budget under one window: its tokens from the start, as without `spread`.
        XCTAssertEqual(Calibration.windows(ids, window: 64, maxTokens: 40, spread: true), [Array(ids[0 ..< 40])])
    }

    /// Layer by layer, `spread` reads the same windows as the one-shot collection with `spread`: layer
    /// 0's statistics (nothing compressed before it) are those of the spread windows, not the first ones.
    func testSequentialCalibrationReadsTheSpreadWindows() throws {
        let (summary, _) = try run(#"{"pass": "toy_record_norms", "include": ["blk.0.attn_q.weight"]}"#, spread: true)
        let got = try XCTUnwrap(try norms(summary.records[0])["blk.0.attn_q.weight"])
        let graph = ModelGraph(try Checkpoint.open(model))
        let calib = try CalibrationText.load(path: text)
        let wanted: [String: CalibrationNeeds] = ["blk.0.attn_q.weight": .columnNorms]
        let spread = try XCTUnwrap(try Calibration.collect(graph: graph, text: calib, wanted: wanted, maxTokens: 192, ctx: 64, spread: true)
            .columnNorms(for: "blk.0.attn_q.weight"))
        let first = try XCTUnwrap(try Calibration.collect(graph: graph, text: calib, wanted: wanted, maxTokens: 192, ctx: 64)
            .columnNorms(for: "blk.0.attn_q.weight"))
        XCTAssertTrue(close(got, spread), "the spread windows' statistics")
        XCTAssertFalse(close(got, first), "not the text's first 192 tokens'")
    }

    /// With `true_sequential`, each stage of a block (Q/K/V, attention output, gate/up, down) sees the
    /// block with the stages before it as compressed; without it, every weight of the block sees the
    /// block as it came in.
    func testTrueSequentialStagesSeeTheEarlierStagesCompressed() throws {
        let passes = #"{"pass": "toy_record_norms_scale", "factor": 0.5, "include": ["blk.0.*"]}"#
        let (staged, stagedFile) = try run(passes, trueSequential: true)
        let (whole, _) = try run(passes)
        let seen = try norms(staged.records[0]), seenWhole = try norms(whole.records[0])
        let graph = ModelGraph(try Checkpoint.open(model))
        let calib = try CalibrationText.load(path: text)
        /// The statistics of `name` in the input model with blk.0's `scaled` roles halved.
        func reference(_ name: String, scaled roles: [String]) throws -> [Float] {
            var g = graph
            g.tensors = graph.tensors.map { t in
                guard roles.contains(where: { t.name == "blk.0.\($0).weight" }) else { return t }
                return t.with { try t.floats().map { $0 * 0.5 } }
            }
            let stats = try Calibration.collect(graph: g, text: calib, wanted: [name: .columnNorms], maxTokens: 192, ctx: 64)
            return try XCTUnwrap(stats.columnNorms(for: name), name)
        }
        func close(_ a: [Float]?, _ b: [Float]) -> Bool { a.map { self.close($0, b) } ?? false }
        let qkv = ["attn_q", "attn_k", "attn_v"], gateUp = ["ffn_gate", "ffn_up"]
        let cases: [(String, [String])] = [("attn_q", []), ("attn_v", []), ("attn_output", qkv),
                                           ("ffn_gate", qkv + ["attn_output"]), ("ffn_down", qkv + ["attn_output"] + gateUp)]
        for (role, before) in cases {
            let name = "blk.0.\(role).weight"
            XCTAssertTrue(close(seen[name], try reference(name, scaled: before)), "\(name): staged, after \(before)")
            XCTAssertTrue(close(seenWhole[name], try reference(name, scaled: [])), "\(name): one stage, the block as it came")
        }
        XCTAssertFalse(close(seen["blk.0.ffn_down.weight"], try reference("blk.0.ffn_down.weight", scaled: [])),
                       "the staged statistics differ from the unstaged ones")
        XCTAssertEqual(stagedFile.tensors.map(\.name), graph.tensors.map(\.name), "the file keeps the schema's order")
    }

    func testTrueSequentialRefusesTheFloatTarget() {
        let json = #"{"calibration": {"true_sequential": true}, "passes": [{"pass": "sparsegpt_prune", "sparsity": 0.5, "target": "float"}]}"#
        XCTAssertThrowsError(try Recipe.parse(Data(json.utf8), file: "r.json")) {
            XCTAssertTrue("\($0)".contains("calibration.true_sequential"), "\($0)")
        }
    }

    /// A pass that reads the model in `prepare` after a sequentially calibrated one sees that pass's
    /// result (here, Wanda's zeros), and the file holds it.
    func testPassReadingTheModelInPrepareSeesTheSequentialResult() throws {
        let (summary, file) = try run(#"{"pass": "wanda_prune", "sparsity": 0.5, "include": ["blk.*"]}, {"pass": "toy_read_in_prepare", "include": ["blk.*"]}"#)
        guard case let .object(o) = summary.records[1], case let .object(zeros)? = o["zeros"] else { return XCTFail("no record") }
        XCTAssertFalse(zeros.isEmpty)
        for (name, z) in zeros {
            XCTAssertEqual(try XCTUnwrap(z.doubleValue), 0.5, accuracy: 0.02, name)
            let entry = try XCTUnwrap(file.tensors.first { $0.name == name })
            let v = try file.floats(of: entry)
            XCTAssertEqual(Double(v.filter { $0 == 0 }.count) / Double(v.count), 0.5, accuracy: 0.02, name)
        }
    }

    /// Sequential calibration keeps the file's tensor order (the schema's) and its determinism.
    func testOutputIsDeterministicAndInSchemaOrder() throws {
        let passes = #"{"pass": "sparsegpt_prune", "sparsity": 0.5, "include": ["blk.*"]}, {"pass": "quantize", "bits": 8, "method": "gptq", "kinds": ["linear"]}"#
        let (_, a) = try run(passes)
        let (_, b) = try run(passes)
        XCTAssertEqual(a.tensors.map(\.name), ModelGraph(try Checkpoint.open(model)).tensors.map(\.name))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a.path)), try Data(contentsOf: URL(fileURLWithPath: b.path)))
    }
}
