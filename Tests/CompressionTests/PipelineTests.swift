import Checkpoint
@testable import Compression
import EdgeFormat
import TestSupport
import XCTest

/// A pass defined outside the Compression module: multiplies the tensors it selects by `factor`.
/// Registered with the recipe parser only; the pipeline runs it from its declarations.
struct ToyScale: Pass {
    static let id = "toy_scale"
    static let stage = PassStage.prune
    let factor: Double
    let selector: TensorSelector
    private var tensors = 0
    private(set) var prepared = false

    init(fields f: inout RecipeFields) throws {
        factor = try f.double("factor", default: 2, range: -100 ... 100)
        selector = try f.selector(defaultKinds: [.linear])
    }

    mutating func prepare(graph: ModelGraph, context: PassContext) throws { prepared = true }

    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        precondition(prepared, "the pipeline applies a pass only after preparing it")
        for i in t.values.indices { t.values[i] *= Float(factor) }
        tensors += 1
    }

    func record() -> JSONValue {
        .object(["pass": .string(Self.id), "factor": .number(factor), "tensors": .number(Double(tensors))])
    }
}

/// A toy rewrite pass, listed after the quantize pass (like distill) but running before it in the
/// data flow: it replaces every selected weight by a ramp, so the file must hold the quantized ramp.
/// It declares the same needs as distill and checks in `prepare` that the pipeline provided them.
struct ToyRewrite: Pass {
    static let id = "toy_rewrite"
    static let stage = PassStage.distill
    static let phase = PassPhase.rewrite
    let selector: TensorSelector
    /// What `prepare` saw.
    private(set) var sawInput = false
    private(set) var masked: Set<String> = []
    private(set) var encoded: [String: [Float]] = [:]
    private var timesApplied = 0

    init(fields f: inout RecipeFields) throws { selector = try f.selector(defaultKinds: [.linear]) }

    var needs: PassNeeds { [.inputModel, .encoders] }

    static func ramp(_ n: Int) -> [Float] { (0 ..< n).map { Float($0 % 97) / 97 - 0.5 } }

    mutating func prepare(graph: ModelGraph, context: PassContext) throws {
        sawInput = context.input != nil
        masked = context.masked
        for t in graph.tensors where context.encoders[t.name] != nil {
            encoded[t.name] = try context.encoders[t.name]!(Self.ramp(t.count)).values
        }
    }

    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        XCTAssertNil(t.encoded, "\(t.name): a rewrite runs before the encode passes")
        t.values = Self.ramp(t.values.count)
        timesApplied += 1
    }

    func record() -> JSONValue {
        .object(["pass": .string(Self.id), "tensors": .number(Double(timesApplied)), "saw_input": .bool(sawInput),
                 "masked": .number(Double(masked.count)), "encoders": .number(Double(encoded.count))])
    }

    func timings() -> JSONValue? { .object(["seconds": .number(0.25)]) }
}

/// A toy encode pass that claims the encoding of matrices (like quantize): the plan refuses it on a 1-D tensor.
struct ToyEncode: Pass {
    static let id = "toy_encode"
    static let stage = PassStage.quantize
    let selector: TensorSelector
    init(fields f: inout RecipeFields) throws { selector = try f.selector(defaultKinds: [.linear]) }
    var encodesMatrices: Bool { true }
    mutating func apply(_ t: inout WorkTensor, context: PassContext) throws {
        t.encoded = .f16(name: t.name, shape: t.shape, values: t.values)
    }
    func record() -> JSONValue { .object(["pass": .string(Self.id)]) }
}

/// The pipeline schedules passes by what they declare: new passes defined here (outside the
/// Compression module) run without any change to `Pipeline`.
final class PipelineTests: XCTestCase {
    var tmp: URL!
    static let toys: [any Pass.Type] = [ToyScale.self, ToyRewrite.self, ToyEncode.self]

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("edge-pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func fixture(_ name: String) -> String { packageRoot().appendingPathComponent("Fixtures/\(name)").path }

    func recipe(_ passes: String) throws -> Recipe {
        try Recipe.parse(Data(#"{"passes": [\#(passes)]}"#.utf8), file: "toy.json", passes: Self.toys)
    }

    func compress(_ passes: String, model: String = "tiny-llama") throws -> (CompressSummary, EdgeFile) {
        let out = tmp.appendingPathComponent("out-\(UUID().uuidString.prefix(6)).edge").path
        let summary = try Pipeline(recipe: try recipe(passes), recipeFile: "toy.json").run(input: fixture(model), output: out)
        return (summary, try EdgeFile(path: out))
    }

    func testToyPassIsRegisteredThroughTheParserOnly() throws {
        let json = Data(#"{"passes": [{"pass": "toy_scale", "factor": 3}]}"#.utf8)
        XCTAssertThrowsError(try Recipe.parse(json, file: "toy.json")) {
            XCTAssertTrue("\($0)".contains("passes[0].pass") && "\($0)".contains("unknown pass 'toy_scale'"), "\($0)")
        }
        XCTAssertThrowsError(try recipe(#"{"pass": "toy_scale", "factor": 300}"#)) {
            XCTAssertTrue("\($0)".contains("passes[0].factor"), "\($0)")
        }
        XCTAssertThrowsError(try recipe(#"{"pass": "toy_scale", "colour": "red"}"#)) {
            XCTAssertTrue("\($0)".contains("passes[0].colour"), "\($0)")
        }
    }

    /// The toy pass runs through the whole pipeline into a file: its tensors are scaled, the rest
    /// untouched, and its record is in the provenance.
    func testToyPassRunsThroughThePipeline() throws {
        for model in ["tiny-llama", "tiny-gpt2"] {
            let (summary, file) = try compress(#"{"pass": "toy_scale", "factor": 3, "include": ["blk.0.*"]}"#, model: model)
            let input = try Checkpoint.open(fixture(model))
            var scaled = 0
            for t in input.tensors {
                let entry = try XCTUnwrap(file.tensors.first { $0.name == t.name }, t.name)
                let got = try file.floats(of: entry), want = try t.floats()
                if t.name.hasPrefix("blk.0."), TensorName.kind(of: t.name) == .linear {
                    XCTAssertEqual(got, want.map { $0 * 3 }, "\(model) \(t.name)")
                    scaled += 1
                } else {
                    XCTAssertEqual(got, want, "\(model) \(t.name)")
                }
            }
            XCTAssertGreaterThan(scaled, 0)
            XCTAssertEqual(summary.records.count, 1)
            XCTAssertEqual(file.provenance.passes, summary.records)
            XCTAssertEqual(summary.records[0]["tensors"]?.doubleValue, Double(scaled), model)
            XCTAssertEqual(summary.timings, [], "a pass without timings reports none")
        }
    }

    /// Listed after quantize, a rewrite pass runs before it: the file holds the quantized rewritten
    /// values. The pass got what it declared: the input model, the encoders of the tensors it
    /// trains through, the names of the tensors the prune pass changed.
    func testRewritePassRunsBeforeTheEncodePassesItFollowsInTheRecipe() throws {
        let passes = [#"{"pass": "magnitude_prune", "sparsity": 0.5, "include": ["blk.1.*"]}"#,
                      #"{"pass": "quantize", "bits": 8, "include": ["blk.*"]}"#,
                      #"{"pass": "toy_rewrite"}"#].joined(separator: ",")
        let r = try recipe(passes)
        let pipeline = Pipeline(recipe: r, recipeFile: "toy.json")
        XCTAssertEqual(pipeline.schedule, [0, 2, 1], "data flow: prune -> rewrite -> quantize")
        let (summary, file) = try compress(passes)
        let input = try Checkpoint.open(fixture("tiny-llama"))
        let linear = input.tensors.filter { TensorName.kind(of: $0.name) == .linear }
        let rec = summary.records[2]
        XCTAssertEqual(rec["saw_input"], .bool(true))
        XCTAssertEqual(rec["masked"]?.doubleValue, Double(linear.filter { $0.name.hasPrefix("blk.1.") }.count))
        XCTAssertEqual(rec["encoders"]?.doubleValue, Double(linear.count))
        XCTAssertEqual(rec["tensors"]?.doubleValue, Double(linear.count))
        for t in linear {
            let entry = try XCTUnwrap(file.tensors.first { $0.name == t.name })
            XCTAssertEqual(entry.encoding, .q8, t.name)
            let got = try file.floats(of: entry)
            let ramp = ToyRewrite.ramp(t.count)
            // int8 per row of values in [-0.5, 0.5): step <= 1/127
            for i in got.indices { XCTAssertEqual(got[i], ramp[i], accuracy: 0.5 / 127 + 1e-6, "\(t.name)[\(i)]") }
            XCTAssertNotEqual(got, ramp, "\(t.name) was quantized")
        }
        // Timings are reported by the run, not written into the file.
        XCTAssertEqual(summary.timings, [.object(["pass": "toy_rewrite", "index": 2, "seconds": 0.25])])
        XCTAssertNil(file.provenance.passes[2]["seconds"])
    }

    /// The encoders a rewrite pass trains through compute exactly what the encode pass stores.
    func testEncodersMatchWhatTheEncodePassStores() throws {
        let passes = [#"{"pass": "quantize", "bits": 4, "group_size": 32, "include": ["blk.*"]}"#, #"{"pass": "toy_rewrite"}"#]
        let r = try recipe(passes.joined(separator: ","))
        let pipeline = Pipeline(recipe: r, recipeFile: "toy.json")
        let graph = ModelGraph(try Checkpoint.open(fixture("tiny-gpt2")))
        let plan = try pipeline.plan(for: graph)
        var prepared = try pipeline.prepare(graph, plan: plan)
        let toy = try XCTUnwrap(prepared.passes[1] as? ToyRewrite)
        XCTAssertFalse(toy.encoded.isEmpty)
        for (n, source) in graph.tensors.enumerated() {
            guard let simulated = toy.encoded[source.name] else { continue }
            let t = try Pipeline.process(source, index: n, plan: plan, prepared: &prepared)
            XCTAssertEqual(t.encoded?.encoding, .q4, source.name)
            XCTAssertEqual(t.values, simulated, source.name)
        }
    }

    /// Plan and recipe checks come from the declarations too.
    func testDeclaredCapabilitiesAreChecked() throws {
        // encodesMatrices: a 1-D tensor is refused before any work, naming the pass.
        XCTAssertThrowsError(try compress(#"{"pass": "toy_encode", "kinds": ["norm"]}"#)) {
            XCTAssertTrue("\($0)".contains("passes[0]") && "\($0)".contains("1-D"), "\($0)")
        }
        // encoded twice
        XCTAssertThrowsError(try compress(#"{"pass": "toy_encode"}, {"pass": "quantize", "bits": 8}"#)) {
            XCTAssertTrue("\($0)".contains("passes[1]") && "\($0)".contains("second time"), "\($0)")
        }
        // a pass training through encoders cannot follow one that refuses it (GPTQ)
        XCTAssertThrowsError(try recipe(#"{"pass": "quantize", "bits": 4, "group_size": 32, "method": "gptq"}, {"pass": "toy_rewrite"}"#)) {
            XCTAssertTrue("\($0)".contains("passes[1].pass") && "\($0)".contains("'toy_rewrite' cannot follow passes[0] (GPTQ)"), "\($0)")
        }
        // nor one that fake-quantizes through q4k's grid search
        XCTAssertThrowsError(try recipe(#"{"pass": "quantize", "bits": 4, "group_size": 32, "symmetric": false, "sub_bits": 8}, {"pass": "toy_rewrite"}"#)) {
            XCTAssertTrue("\($0)".contains("'toy_rewrite' cannot follow passes[0] (sub_bits, q4k)"), "\($0)")
        }
        // the order check uses the declared stage: a prune-stage toy after quantize is refused
        XCTAssertThrowsError(try recipe(#"{"pass": "quantize", "bits": 8}, {"pass": "toy_scale"}"#)) {
            XCTAssertTrue("\($0)".contains("passes[1].pass") && "\($0)".contains("cannot come after"), "\($0)")
        }
    }

    /// The recipes in Recipes/ keep their data-flow order: distill (rewrite) before quantize (encode) before pack.
    func testBundledRecipesSchedule() throws {
        let r = try Recipe.load(path: packageRoot().appendingPathComponent("Recipes/distill-prune50-int8.json").path)
        let ids = Pipeline(recipe: r, recipeFile: "r").schedule.map { type(of: r.passes[$0]).id }
        XCTAssertEqual(ids, ["admm_prune", "distill", "quantize", "pack"])
    }

    /// A pass whose selector matches no tensor of the model is named in a warning (the run still
    /// succeeds); a recipe whose passes all select something gives none.
    func testPassSelectingNothingIsWarnedAbout() throws {
        let dir = try makeTemporaryFolder(prefix: "unselected")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o.edge").path
        let bad = try Recipe.parse(Data(#"{"passes": [{"pass": "magnitude_prune", "sparsity": 0.5, "include": ["token_embd.weight"]}, {"pass": "quantize", "bits": 8}]}"#.utf8), file: "bad.json")
        let s = try Pipeline(recipe: bad, recipeFile: "bad.json").run(input: fixture("tiny-llama"), output: out)
        XCTAssertEqual(s.warnings.filter { $0.contains("selects no tensor") },
                       ["bad.json: passes[0] ('magnitude_prune') selects no tensor of this model, so it did nothing (check its kinds / include / exclude)"])
        let good = try Recipe.parse(Data(#"{"passes": [{"pass": "magnitude_prune", "sparsity": 0.5, "kinds": ["embedding"], "include": ["token_embd.weight"]}, {"pass": "quantize", "bits": 8}]}"#.utf8), file: "good.json")
        let g = try Pipeline(recipe: good, recipeFile: "good.json").run(input: fixture("tiny-llama"), output: out)
        XCTAssertFalse(g.warnings.contains { $0.contains("selects no tensor") }, "\(g.warnings)")
    }
}
